"""runc create: PID 1 forked from this process, left waiting on the exec fifo.

Unlike :func:`~asyncinit.parent._spawn.spawn`, no fork server: the init must
descend from the ``create`` process (an engine's conmon, a child subreaper,
waits for it) and outlive it.  So this process forks it itself
(:func:`~asyncinit.forkserver._server.launch_here`, before any thread exists),
plays the fork server's part for its one container (reporting PID 1's exit on
the handle's status channel), drives the same sync-pipe conversation as spawn
(its cgroup, prestart/createRuntime hooks, mount sources, rlimits), and returns
once the init says ``created``: from then on the init blocks opening the exec fifo for
writing, until ``start`` opens it for reading (runc's exec.fifo).
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio

from ..config import IDMapping, Spec
from ..forkserver._server import launch_here
from ..forkserver._wire import ServerKind
from ..sync_pipe import Channel, Message, send_blocking, socketpair
from ._compile import Compiled
from ._container import Container
from ._network import ContainerNetwork
from ._spawn import DEVNULL, _drive, _Stdio, cgroup_fds

if TYPE_CHECKING:
    from ..cgroups import CgroupManager


def fork_init(
    compiled: Compiled, pass_fds: Sequence[int], terminal: bool = False
) -> tuple[socket.socket, int]:
    """Fork PID 1 here with our stdio; our end of the sync socket and its pid.

    A ``terminal`` init gets the null device instead (runc's setupIO): its stdio
    becomes the pty's slave, and our caller's pipes must see EOF once we exit
    (containerd's shim reads ``create``'s output to the end before it goes on).
    """
    null = (DEVNULL, DEVNULL, DEVNULL) if terminal else (None, None, None)
    stdio = _Stdio(*null)  # else the init keeps the stdio create was given
    sync_parent, sync_child = socketpair()
    unused_status = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)  # no server to report
    join_fds = [os.open(path, os.O_RDONLY | os.O_CLOEXEC) for path in compiled.join_paths]
    join_fds += cgroup_fds(compiled)  # closed with them below
    try:
        fds = (sync_child.fileno(), *stdio.child, unused_status, *join_fds, *pass_fds)
        pid = launch_here(compiled.launch, fds)
    except BaseException:
        sync_parent.close()
        raise
    finally:
        sync_child.close()
        stdio.close_child_ends()
        os.close(unused_status)
        for fd in join_fds:
            os.close(fd)
    return sync_parent, pid


def make_exec_fifo(path: str, spec: Spec) -> None:
    """runc's createExecFifo: mode 0622 whatever the umask, owned by the container's root.

    The init opens it for writing once it has the workload's credentials: made
    under a 022 umask, a non-root ``process.user`` (podman ``--user``) could not.
    """
    os.mkfifo(path, 0o622)
    os.chmod(path, 0o622)
    linux = spec.linux
    uid = _host_root(linux.uid_mappings if linux else ())
    gid = _host_root(linux.gid_mappings if linux else ())
    if (uid, gid) != (os.geteuid(), os.getegid()):
        with contextlib.suppress(PermissionError):  # rootless: 0622 lets the init write
            os.chown(path, uid, gid)


def _host_root(mappings: Sequence[IDMapping]) -> int:
    """The host id of the container's 0 (0 without a mapping of it)."""
    for mapping in mappings:
        if mapping.container_id <= 0 < mapping.container_id + mapping.size:
            return mapping.host_id - mapping.container_id
    return 0


async def _report_exit(pid: int, pidfd: int, status: socket.socket) -> None:
    """The fork server's ``exited`` for our one PID 1 (our child: we are a subreaper)."""
    await anyio.wait_readable(pidfd)
    try:
        _, wait_status = os.waitpid(pid, 0)
    except ChildProcessError:
        wait_status = 0x7F00  # not ours to reap: exit status 127, the init's failure code
    send_blocking(status, Message(ServerKind.EXITED, {"status": wait_status}))


async def drive_to_created(
    spec: Spec,
    container_id: str,
    compiled: Compiled,
    sync_sock: socket.socket,
    pid: int,
    cgroup: CgroupManager | None = None,
) -> int | None:
    """The sync-pipe conversation up to ``created`` (PID 1 moved into ``cgroup``
    first); on failure the init is killed and reaped, the cgroup removed and
    poststop hooks run (nothing is left), and the error raised.

    Returns the pty master (blocking, ours to close) when ``process.terminal`` made one.
    """
    pidfd = os.pidfd_open(pid)
    ours, reporter = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sync = Channel(sync_sock)
    container = Container(
        container_id=container_id,
        spec=spec,
        bundle=compiled.bundle,
        rootfs=compiled.plan["rootfs"],
        pid=pid,
        pidfd=pidfd,
        status=Channel(ours),
        hooks=compiled.hooks,
        network=ContainerNetwork(compiled.network) if compiled.network else None,
        cgroup=cgroup,
    )
    failure: BaseException | None = None
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(_report_exit, pid, pidfd, reporter)
        try:
            await _drive(sync, compiled, container)
        except Exception as exc:  # raised below, outside the task group (no group)
            failure = exc
            with anyio.CancelScope(shield=True), anyio.move_on_after(compiled.cleanup_timeout):
                await container.aclose()
            for warning in container.warnings:
                exc.add_note(f"warning: {warning}")
        finally:
            sync.close()
            tasks.cancel_scope.cancel()
    reporter.close()
    if failure is not None:
        raise failure
    container.forget()  # created: the init lives on without us
    return _take_master(container)


def _take_master(container: Container) -> int | None:
    """The pty master fd out of its stream, blocking again (as runc hands it over)."""
    if container.pty is None:
        return None
    master = os.dup(container.pty.fd)
    os.close(container.pty.fd)
    container.pty = None
    os.set_blocking(master, True)  # the flag is the open file's: the receiver gets it as is
    return master


def parent_hook_commands(compiled: Compiled) -> dict[str, Any]:
    """poststart and poststop commands, kept in the state file for ``start``/``delete``."""
    return {
        "poststart": list(compiled.hooks.poststart.commands),
        "poststop": list(compiled.hooks.poststop.commands),
    }
