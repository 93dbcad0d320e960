"""Run one hook or premount/postmount command: state on stdin, a timeout, output kept.

Shared by the parent (prestart, createRuntime, poststart, poststop) and the init
(createContainer, startContainer, premount, postmount), so a failing command
reads the same wherever it ran.
"""

from __future__ import annotations

import anyio

from ._errors import StepError
from ._plan import CommandPlan

_OUTPUT_TAIL = 2048


async def run_command(command: CommandPlan, stdin: bytes) -> None:
    """Run ``command``; raise StepError naming its path, status and output tail on failure."""
    argv = [command["path"], *command["args"][1:]]
    env = dict(entry.partition("=")[::2] for entry in command["env"])
    try:
        with anyio.fail_after(command["timeout"]):
            result = await anyio.run_process(argv, input=stdin, env=env, check=False)
    except TimeoutError:
        raise StepError(
            f"{command['path']} timed out after {command['timeout']}s and was killed",
            path=command["path"],
            field=command["field"],
        ) from None
    except OSError as exc:
        raise StepError(
            f"{command['path']} could not be started: {exc.strerror}",
            path=command["path"],
            field=command["field"],
            errno=exc.errno or 0,
        ) from exc
    if result.returncode != 0:
        output = (result.stderr or b"") or (result.stdout or b"")
        tail = output[-_OUTPUT_TAIL:].decode(errors="replace").strip()
        raise StepError(
            f"{command['path']} exited with status {result.returncode}"
            + (f": {tail}" if tail else ""),
            path=command["path"],
            field=command["field"],
        )
