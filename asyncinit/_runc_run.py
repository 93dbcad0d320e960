"""runc run: create + start, then (unless ``--detach``) wait, pass on the exit status, delete.

As runc 1.1.5's ``run``:

* ``--detach``/``-d``: returns 0 once the workload was started; a terminal then
  needs ``--console-socket`` (the master goes there, as for ``create``);
* otherwise this process stays the container's parent: signals it receives go
  to the init, a ``process.terminal`` pty is connected to our own stdio (raw
  mode when that is a terminal), and its exit status is ours (128 + signal for
  a signal death); then the container is deleted (poststop hooks, state
  directory) unless ``--keep``;
* ``--pid-file``, ``--bundle``, ``--no-pivot``, ``--preserve-fds`` as for create;
  ``--no-subreaper`` and ``--no-new-keyring`` are accepted (this process is a
  subreaper from the fork on, which keeps the init our child).
"""

from __future__ import annotations

import os

from ._runc_create import create_container
from .oci._control import destroy, start

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .oci._main import Context
    from .parent._streams import PtyStream


class _Foreground:
    """The init as our child: its pty (if any) and its exit status."""

    def __init__(self, pid: int, pty: PtyStream | None) -> None:
        self.pid = pid
        self.pty = pty
        self.pidfd = os.pidfd_open(pid)

    async def wait(self) -> int:
        import anyio

        await anyio.wait_readable(self.pidfd)
        _, status = os.waitpid(self.pid, 0)
        return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)

    def send_signal(self, signum: int) -> None:
        import contextlib
        import signal

        with contextlib.suppress(ProcessLookupError):  # exited meanwhile: wait() reports it
            signal.pidfd_send_signal(self.pidfd, signum)


async def _follow(container: _Foreground) -> int:
    """Forward signals to the init and, with a pty, connect it to our stdio, until it exits."""
    import signal

    import anyio

    from ._attach import attach_terminal, forward_signals
    from ._client import FORWARDED_SIGNALS

    with anyio.open_signal_receiver(*FORWARDED_SIGNALS, signal.SIGINT) as signals:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(forward_signals, container, signals)
            if container.pty is not None:
                code = await attach_terminal(container)
            else:
                code = await container.wait()
            tasks.cancel_scope.cancel()
    return code


def run(ctx: Context) -> int:
    detach = ctx.invocation.on("detach")
    master = create_container(ctx, detach=detach)
    container_id = ctx.args[0]
    try:
        start(ctx)
    except BaseException:
        if master is not None:
            os.close(master)
        raise
    if detach:
        return 0
    import anyio

    from .parent._streams import PtyStream

    state = ctx.state_dir.load(container_id)
    container = _Foreground(state.pid, PtyStream(master) if master is not None else None)
    try:
        code = anyio.run(_follow, container)
    finally:
        os.close(container.pidfd)
        if container.pty is not None:
            os.close(container.pty.fd)
    if not ctx.invocation.on("keep"):
        _delete_stopped(ctx, container_id)
    return code


def _delete_stopped(ctx: Context, container_id: str) -> None:
    """runc run's destroy of the container it ran: cgroup, poststop hooks, state directory."""
    with ctx.state_dir.lock(container_id):
        destroy(ctx, ctx.state_dir.load(container_id))
