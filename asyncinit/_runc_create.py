"""runc create's work, shared by ``create`` and ``run``: the init forked from this process.

Loads and compiles the config, makes the state directory and the exec fifo,
forks PID 1 here (the parentage rule: an engine's subreaper waits for it),
drives the sync pipe to ``created``, hands a pty master to ``--console-socket``,
writes ``--pid-file``; any failure removes the state directory.
"""

from __future__ import annotations

import os

from .oci._control import EXEC_FIFO
from .oci._store import write_pid_file

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket

    from .cgroups import CgroupManager
    from .config import Spec
    from .oci._main import Context
    from .oci._state import State
    from .parent._compile import Compiled


def create_container(ctx: Context, detach: bool) -> int | None:
    """create's work (also ``run``'s first half); the pty master when not ``detach``ed.

    Detached (``create``, ``run -d``), a terminal's master goes to ``--console-socket``.
    """
    from .config import spec_to_dict
    from .oci import _console
    from .oci._state import State, process_start_time
    from .parent._compile import LaunchOptions, compile_spec
    from .parent._create import fork_init, make_exec_fifo, parent_hook_commands
    from .parent._created import recorded_resources
    from .parent._spawn import _load, create_cgroup

    inv = ctx.invocation
    container_id = ctx.args[0]
    bundle = os.path.abspath(inv.text("bundle") or ".")
    spec, bundle_dir = _load(os.path.join(bundle, "config.json"), bundle)
    terminal = spec.process is not None and spec.process.terminal
    _console.check_terminal(terminal, inv.text("console-socket"), detach)
    fifo = ctx.state_dir.path(container_id, EXEC_FIFO)
    options = LaunchOptions(no_pivot_root=inv.on("no-pivot"), exec_fifo=fifo)
    compiled = compile_spec(spec, bundle_dir, container_id, options)
    console = _console.connect(inv.text("console-socket")) if inv.text("console-socket") else None
    state = State(
        container_id,
        bundle=bundle,
        rootfs=compiled.plan["rootfs"],
        annotations=dict(spec.annotations),
    )
    # the cgroup plan: delete removes the cgroup (docs/cgroups.md); the config as
    # created: exec's seccomp filter and defaults, whatever becomes of the bundle
    state.extra = {
        **parent_hook_commands(compiled),
        "cgroup": compiled.cgroup,
        "config": spec_to_dict(spec),
    }
    master = None
    cgroup = None
    try:
        lock = ctx.state_dir.create(state)
        try:
            cgroup, warnings = create_cgroup(compiled, spec)
            for warning in warnings:
                ctx.logger.warning(warning)
            if cgroup is not None and cgroup.shared:
                state.extra["cgroup_shared"] = True  # delete empties no shared cgroup
            state.extra.update(recorded_resources(cgroup))
            make_exec_fifo(fifo, spec)
            preserved = range(3, 3 + inv.number("preserve-fds"))
            sync, pid = fork_init(compiled, preserved, terminal)
            state.pid, state.pid_start = pid, process_start_time(pid) or 0
            master = _drive(spec, compiled, sync, state, cgroup)
            if console is not None and master is not None:
                _console.send_master(console, master)
                os.close(master)
                master = None
            state.status = "created"
            ctx.state_dir.save(state)
            if inv.text("pid-file"):
                write_pid_file(inv.text("pid-file"), pid)
        except BaseException:
            if master is not None:
                os.close(master)
            if cgroup is not None and cgroup.exists():
                cgroup.destroy()
            ctx.state_dir.remove(container_id)
            raise
        finally:
            lock.release()
    finally:
        if console is not None:
            console.close()
    return master


def _drive(
    spec: Spec, compiled: Compiled, sync: socket.socket, state: State, cgroup: CgroupManager | None
) -> int | None:
    """The sync-pipe conversation up to ``created``, in an event loop of its own."""
    import anyio

    from .parent._create import drive_to_created

    return anyio.run(drive_to_created, spec, state.id, compiled, sync, state.pid, cgroup)
