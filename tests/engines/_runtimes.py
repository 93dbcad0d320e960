"""The runtimes under test, and a tracing wrapper that records what engines send them.

A runtime is the path of a runc-compatible executable.  ``runc`` is the
reference; ``asyncinit`` is a wrapper that runs ``python -m asyncinit`` from
this checkout, enabled once its CLI answers ``create --help`` and its wiring
declares the lifecycle commands working (``asyncinit._runc.WORKING``, issue 15);
a case that sends more (``exec``, ``pause``...) says so with
``@pytest.mark.runc_commands(...)`` and is skipped until those land too: cases
switch on as commands land, no flag to flip.

Every engine is pointed at a wrapper (:func:`tracing_wrapper`) that records
each invocation (argv, the parent's name, what fds 0-2 are) and its exit code
in a directory, one file per record, then the trace is read back with
:func:`read_trace`.  The wrapper runs the runtime as its child: the runtime's
own children (the container's init) are reparented to the engine's subreaper
exactly as without the wrapper.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]
RUNC = shutil.which("runc") or next(
    (p for p in ("/usr/sbin/runc", "/usr/bin/runc") if os.path.exists(p)), None
)


@dataclass(frozen=True)
class Runtime:
    name: str
    path: str | None
    skip_reason: str | None = None
    #: runc commands this runtime does not carry out yet (cases needing them are skipped)
    missing: frozenset[str] = frozenset()


def asyncinit_wrapper(directory: Path) -> Path:
    """A runc-compatible executable that runs this checkout's ``python -m asyncinit``."""
    path = directory / "asyncinit"
    path.write_text(
        f"#!/bin/sh\nexport PYTHONPATH='{CHECKOUT}'\nexec '{sys.executable}' -m asyncinit \"$@\"\n"
    )
    path.chmod(0o755)
    return path


#: The runc commands every engine case sends (tests/engines/traces); the others
#: (exec, pause, resume, update, ps) are named per case by its ``runc_commands`` mark.
LIFECYCLE_COMMANDS = frozenset({"create", "start", "state", "kill", "delete"})
ENGINE_COMMANDS = LIFECYCLE_COMMANDS | {"exec", "pause", "resume", "update", "ps"}


def missing_commands() -> frozenset[str]:
    """The engine commands this checkout's asyncinit does not carry out yet."""
    code = "import sys, asyncinit._runc as r; sys.stdout.write(' '.join(sorted(r.WORKING)))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, "PYTHONPATH": str(CHECKOUT)},
    )
    if result.returncode != 0:
        return ENGINE_COMMANDS
    return ENGINE_COMMANDS - frozenset(result.stdout.split())


def enforces_cgroups(path: Path) -> bool:
    """Whether ``features`` claims a cgroup driver (v1 or v2) for linux.resources."""
    try:
        result = subprocess.run(
            [str(path), "features"], capture_output=True, timeout=30, check=False
        )
        cgroup = json.loads(result.stdout)["linux"]["cgroup"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return bool(cgroup.get("v1") or cgroup.get("v2"))


def speaks_runc(path: Path) -> bool:
    """Whether the executable has runc's command line (``create`` at least)."""
    try:
        result = subprocess.run(
            [str(path), "create", "--help"],
            capture_output=True,
            timeout=30,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except OSError:
        return False
    return result.returncode == 0


def runtimes(scratch: Path) -> list[Runtime]:
    """runc and asyncinit, each with the reason it is skipped here, if any."""
    found = [Runtime("runc", RUNC, None if RUNC else "runc is not installed")]
    wrapper = asyncinit_wrapper(scratch)
    reason = None if speaks_runc(wrapper) else "asyncinit has no runc command line yet (issue 15)"
    missing = missing_commands()
    if reason is None and missing & LIFECYCLE_COMMANDS:
        lacking = ", ".join(sorted(missing & LIFECYCLE_COMMANDS))
        reason = f"asyncinit does not carry out {lacking} yet (issue 15)"
    if reason is None and not enforces_cgroups(wrapper):
        # every engine sends linux.resources (podman: pids.limit, containerd/docker: cpu)
        reason = "asyncinit's features say it has no cgroup driver yet: engines need one"
    found.append(Runtime("asyncinit", str(wrapper), reason, missing))
    return found


_WRAPPER = r"""#!/bin/sh
# Records each call of {runtime} in {log}, then runs it (as a child, to see its exit code).
rec="{log}/$(date +%s%N)-$$"
parent=$(cat /proc/$PPID/comm 2>/dev/null)
fd0=$(readlink /proc/$$/fd/0 2>/dev/null || echo closed)
fd1=$(readlink /proc/$$/fd/1 2>/dev/null || echo closed)
fd2=$(readlink /proc/$$/fd/2 2>/dev/null || echo closed)
{{
    printf 'E\0%s\0%s\0%s\0%s\0%s\0%s\0' "$$" "$parent" "$fd0" "$fd1" "$fd2" "$#"
    for arg in "$@"; do printf '%s\0' "$arg"; done
}} > "$rec.call"
forward() {{ kill -s "$1" "$child" 2>/dev/null; }}
for sig in TERM INT HUP QUIT USR1 USR2; do trap "forward $sig" "$sig"; done
# an asynchronous command's stdin is /dev/null unless redirected: give it ours
exec 3<&0
'{runtime}' "$@" 0<&3 3<&- &
child=$!
exec 3<&-
while :; do
    wait "$child"; rc=$?
    kill -0 "$child" 2>/dev/null || break
done
printf '%s' "$rc" > "$rec.exit"
exit "$rc"
"""


def tracing_wrapper(runtime: str, directory: Path, log: Path) -> Path:
    """An executable that logs every call into ``log`` and runs ``runtime``.

    It bears the runtime's own name: podman decides by the name alone whether
    the runtime takes ``--log-format=json`` (containers.conf's
    ``runtime_supports_json``: runc and crun do, an unknown name does not).
    """
    log.mkdir(parents=True, exist_ok=True)
    (directory / "traced").mkdir(exist_ok=True)
    path = directory / "traced" / Path(runtime).name
    path.write_text(_WRAPPER.format(runtime=runtime, log=log))
    path.chmod(0o755)
    return path


@dataclass(frozen=True)
class Call:
    """One invocation of the runtime, as the engine made it."""

    argv: tuple[str, ...]
    parent: str
    stdio: tuple[str, str, str]
    exit_code: int | None

    @property
    def command(self) -> str:
        """The subcommand (the first argument that is not a global flag or its value)."""
        args = list(self.argv)
        while args:
            arg = args.pop(0)
            if not arg.startswith("-"):
                return arg
            if "=" not in arg and arg.lstrip("-") in _GLOBAL_VALUE_FLAGS and args:
                args.pop(0)
        return ""


_GLOBAL_VALUE_FLAGS = {"root", "log", "log-format", "criu", "rootless"}


def read_trace(log: Path) -> list[Call]:
    """Every recorded call, in the order they started."""
    calls = []
    for record in sorted(log.glob("*.call"), key=lambda p: tuple(map(int, p.stem.split("-")))):
        fields = record.read_bytes().split(b"\0")
        _, _, parent, fd0, fd1, fd2, count = (f.decode() for f in fields[:7])
        argv = tuple(f.decode() for f in fields[7 : 7 + int(count)])
        exit_file = record.with_suffix(".exit")
        exit_code = int(exit_file.read_text()) if exit_file.exists() else None
        calls.append(Call(argv, parent, (fd0, fd1, fd2), exit_code))
    return calls
