"""The wiring of runc's command line: :func:`asyncinit.oci.main` with the commands that work.

``WORKING`` is the capability list the engine harness (tests/engines) reads: a
runc command is in it once asyncinit carries it out, so engine cases switch on
as commands land, never before (``create --help`` parses long before every
command works).  Lean: ``state``/``kill``/``delete``/``start`` import nothing of
the parent; ``create`` pays for the config and the compiler.
"""

from __future__ import annotations

from .oci._cgroup_commands import HANDLERS as CGROUP_HANDLERS
from .oci._control import HANDLERS
from .oci._main import BUILTIN

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from .oci._main import Context


def create(ctx: Context) -> int:
    """runc create: the container set up, its init waiting on the exec fifo for ``start``."""
    from ._runc_create import create_container

    master = create_container(ctx, detach=True)
    assert master is None  # detached: the console socket has it
    return 0


def run(ctx: Context) -> int:
    """runc run (asyncinit/_runc_run.py): create + start, then wait unless detached."""
    from ._runc_run import run as run_container

    return run_container(ctx)


def exec_(ctx: Context) -> int:
    """runc exec (``_runc_exec.py``)."""
    from ._runc_exec import exec_command
    from .oci._store import write_pid_file

    return exec_command(ctx, write_pid_file)


HANDLERS_WIRED = {**HANDLERS, **CGROUP_HANDLERS, "create": create, "run": run, "exec": exec_}

WORKING = frozenset(BUILTIN) | frozenset(HANDLERS_WIRED)
"""The runc commands asyncinit carries out (the others fail with ``not implemented``)."""


def main(argv: Sequence[str], prog: str = "asyncinit") -> int:
    from .oci._main import main as oci_main

    return oci_main(argv, HANDLERS_WIRED, prog=prog)
