"""The wiring of runc's command line: :func:`asyncinit.oci.main` with the commands that work.

``WORKING`` is the capability list the engine harness (tests/engines) reads: a
runc command is in it once asyncinit carries it out, so engine cases switch on
as commands land, never before (``create --help`` parses long before every
command works).  Lean: ``state``/``kill``/``delete``/``start`` import nothing of
the parent; ``create`` pays for the config and the compiler.
"""

from __future__ import annotations

import os

from .oci._control import EXEC_FIFO, HANDLERS
from .oci._main import BUILTIN

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from collections.abc import Sequence

    from .cgroups import CgroupManager
    from .config import Spec
    from .oci._main import Context
    from .oci._state import State
    from .parent._compile import Compiled


def _write_pid_file(path: str, pid: int) -> None:
    """runc's: the pid, no newline, written to a temporary file and renamed."""
    path = os.path.abspath(path)
    temporary = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}")
    with open(temporary, "w") as f:
        f.write(str(pid))
    os.rename(temporary, path)


def create(ctx: Context) -> int:
    """runc create: the container set up, its init waiting on the exec fifo for ``start``."""
    from .oci._errors import OciError
    from .oci._state import State, process_start_time
    from .parent._compile import LaunchOptions, compile_spec
    from .parent._create import fork_init, parent_hook_commands
    from .parent._spawn import _load, create_cgroup

    inv = ctx.invocation
    (container_id,) = ctx.args
    if inv.text("console-socket"):
        raise OciError("--console-socket: not implemented by asyncinit yet (issue 15)")
    bundle = os.path.abspath(inv.text("bundle") or ".")
    spec, bundle_dir = _load(os.path.join(bundle, "config.json"), bundle)
    if spec.process is not None and spec.process.terminal:
        raise OciError("cannot allocate tty if runc will detach without setting console socket")
    fifo = ctx.state_dir.path(container_id, EXEC_FIFO)
    options = LaunchOptions(no_pivot_root=inv.on("no-pivot"), exec_fifo=fifo)
    compiled = compile_spec(spec, bundle_dir, container_id, options)
    state = State(
        container_id,
        bundle=bundle,
        rootfs=compiled.plan["rootfs"],
        annotations=dict(spec.annotations),
    )
    # the cgroup plan: delete removes the cgroup, exec joins it (docs/cgroups.md)
    state.extra = {**parent_hook_commands(compiled), "cgroup": compiled.cgroup}
    lock = ctx.state_dir.create(state)
    cgroup = None
    try:
        cgroup, warnings = create_cgroup(compiled, spec)
        for warning in warnings:
            ctx.logger.warning(warning)
        if cgroup is not None and cgroup.shared:
            state.extra["cgroup_shared"] = True  # delete empties no shared cgroup
        os.mkfifo(fifo, 0o622)
        preserved = range(3, 3 + inv.number("preserve-fds"))
        sync, pid = fork_init(compiled, preserved)
        state.pid, state.pid_start = pid, process_start_time(pid) or 0
        _drive(spec, compiled, sync, state, cgroup)
        state.status = "created"
        ctx.state_dir.save(state)
        if inv.text("pid-file"):
            _write_pid_file(inv.text("pid-file"), pid)
    except BaseException:
        if cgroup is not None and cgroup.exists():
            cgroup.destroy()
        ctx.state_dir.remove(container_id)
        raise
    finally:
        lock.release()
    return 0


def _drive(
    spec: Spec, compiled: Compiled, sync: socket.socket, state: State, cgroup: CgroupManager | None
) -> None:
    """The sync-pipe conversation up to ``created``, in an event loop of its own."""
    import anyio

    from .parent._create import drive_to_created

    anyio.run(drive_to_created, spec, state.id, compiled, sync, state.pid, cgroup)


HANDLERS_WIRED = {**HANDLERS, "create": create}

WORKING = frozenset(BUILTIN) | frozenset(HANDLERS_WIRED)
"""The runc commands asyncinit carries out (the others fail with ``not implemented``)."""


def main(argv: Sequence[str], prog: str = "asyncinit") -> int:
    from .oci._main import main as oci_main

    return oci_main(argv, HANDLERS_WIRED, prog=prog)
