"""spawn(): validate, compile, launch through the fork server, drive the sync pipe."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import resource
import socket
import subprocess
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio

from .. import _publish
from .._commands import signal_name
from .._errors import (
    CgroupError,
    ContainerStartError,
    HookError,
    InitError,
    UsageError,
    failing_as,
)
from .._lines import show
from .._scm import MAX_FDS
from ..config import Spec, check_spec, load_config, spec_from_dict
from ..forkserver._wire import FIXED_FDS, ServerKind
from ..sync_pipe import Channel, Kind, PeerGone, ProtocolError, socketpair
from ._arguments import check_spawn_arguments
from ._compile import Compiled, LaunchOptions, compile_spec
from ._compile_hooks import DEFAULT_HOOK_TIMEOUT
from ._container import Container
from ._hooks import PythonHooks, run_hooks
from ._launcher import ForkServer, launch
from ._mount_sources import MountSources
from ._network import ContainerNetwork
from ._seccomp import take_listener
from ._streams import PipeReceiveStream, PipeSendStream, PtyStream
from ._workers import cleanup_in_worker, in_worker

if TYPE_CHECKING:
    from ..cgroups import FsManager
    from ..seccomp import Handler

__all__ = ["DEVNULL", "PIPE", "spawn"]  # public as asyncinit.NAME

PIPE = subprocess.PIPE
DEVNULL = subprocess.DEVNULL

StdioSpec = int | None
_CONTAINER_ID = re.compile(r"[\w+\-.]+", re.ASCII)


def _load(
    config: Spec | Mapping[str, Any] | str | os.PathLike[str], bundle: str | os.PathLike[str] | None
) -> tuple[Spec, str]:
    if isinstance(config, Spec):
        # A Spec may have been built or changed in Python: refuse what a file would be refused.
        return check_spec(config), os.fspath(bundle or os.getcwd())
    if isinstance(config, Mapping):
        return spec_from_dict(config), os.fspath(bundle or os.getcwd())
    path = os.fspath(config)
    if os.path.isdir(path):
        path = os.path.join(path, "config.json")
    return load_config(path), os.fspath(bundle or os.path.dirname(os.path.abspath(path)))


def _is_open(fd: int) -> bool:
    try:
        fcntl.fcntl(fd, fcntl.F_GETFD)
    except OSError:
        return False
    return True


class _Stdio:
    """The three fds handed to the init, and the parent ends of any pipes."""

    def __init__(self, stdin: StdioSpec, stdout: StdioSpec, stderr: StdioSpec) -> None:
        self.child: list[int] = []
        self.parent: list[int | None] = []
        self.to_close: list[int] = []
        try:
            for index, choice in enumerate((stdin, stdout, stderr)):
                self._add(index, choice)
        except BaseException:  # out of fds half-way: nothing stays open
            self.close_child_ends()
            self.close_parent_ends()
            raise

    def _add(self, index: int, choice: StdioSpec) -> None:
        if choice is None and not _is_open(index):
            choice = DEVNULL  # ours is closed: the null device, as runc (Go) gives
        if choice is None:
            self.child.append(index)
            self.parent.append(None)
        elif choice == DEVNULL:
            with failing_as("launch", f"open {os.devnull}"):
                fd = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            self.child.append(fd)
            self.to_close.append(fd)
            self.parent.append(None)
        elif choice == PIPE:
            with failing_as("launch", "pipe2"):
                read_end, write_end = os.pipe2(os.O_CLOEXEC)
            child, ours = (read_end, write_end) if index == 0 else (write_end, read_end)
            self.child.append(child)
            self.to_close.append(child)
            self.parent.append(ours)
        elif choice >= 0:
            self.child.append(choice)
            self.parent.append(None)
        else:
            raise ValueError(f"unsupported stdio choice {choice!r}")

    def close_child_ends(self) -> None:
        for fd in self.to_close:
            os.close(fd)
        self.to_close.clear()

    def close_parent_ends(self) -> None:
        for fd in self.parent:
            if fd is not None:
                os.close(fd)
        self.parent = [None, None, None]

    def attach(self, container: Container) -> None:
        stdin, stdout, stderr = self.parent
        container.stdin = PipeSendStream(stdin) if stdin is not None else None
        container.stdout = PipeReceiveStream(stdout) if stdout is not None else None
        container.stderr = PipeReceiveStream(stderr) if stderr is not None else None
        self.parent = [None, None, None]


async def spawn(
    config: Spec | Mapping[str, Any] | str | os.PathLike[str],
    *,
    bundle: str | os.PathLike[str] | None = None,
    container_id: str | None = None,
    stdin: StdioSpec = None,
    stdout: StdioSpec = None,
    stderr: StdioSpec = None,
    hooks: PythonHooks | None = None,
    hook_timeout: float | None = DEFAULT_HOOK_TIMEOUT,
    backend: str = "asyncio",
    init: str | None = None,
    signal_group: bool | None = None,
    pass_fds: Sequence[int] = (),
    no_pivot_root: bool = False,
    console_size: tuple[int, int] | None = None,
    seccomp_handler: Handler | None = None,
) -> Container:
    """Start a container and return once its workload has been executed.

    ``config`` is a loaded :class:`Spec`, a config.json dict, or a path to a
    config.json (or to the bundle directory holding it); relative paths in it
    resolve against ``bundle`` (default: the config's directory, or the cwd).
    stdio: ``None`` inherits the caller's, ``PIPE`` gives anyio streams on the
    handle, ``DEVNULL``, or an fd.  ``backend`` is the init's event loop (asyncio
    or trio), independent of the caller's.  ``hooks`` are Python hooks run beside
    the OCI ones; ``hook_timeout`` bounds each of them (None: no bound).
    ``init="supervise"`` keeps the init as PID 1 reaping orphans and forwarding
    signals (default "exec", or the ``io.asyncinit.init`` annotation);
    ``signal_group`` forwards to the workload's process group.  ``pass_fds`` reach
    the workload as fds 3, 4, ... with ``LISTEN_FDS`` set.  ``no_pivot_root`` is
    runc's ``--no-pivot``: jail with MS_MOVE + chroot (for a rootfs on a ramfs,
    where pivot_root is refused), after hiding the host's proc and sysfs mounts.
    ``console_size`` (rows, columns) sizes a ``process.terminal`` pty when the
    config has no ``process.consoleSize``: pass your terminal's, so that the
    workload never starts on a 0x0 terminal.
    ``seccomp_handler`` answers the syscalls that ``linux.seccomp``'s
    ``SCMP_ACT_NOTIFY`` rules match, instead of a ``listenerPath`` agent: an
    async callable given each :class:`asyncinit.seccomp.Notification`, run in
    this event loop (each in its own task) from the filter's load until the
    container is reaped; it answers with ``respond(errno=...)``,
    ``respond(value=...)`` or ``continue_()`` (docs/security.md: its race).
    Unanswered calls fail with EPERM; if it raises, the container is killed and
    ``wait()`` raises :class:`SeccompHandlerError`.

    Raises TypeError for an argument of the wrong type and :class:`UsageError` for
    one out of range, :class:`ConfigError` for a bad config (before anything starts),
    :class:`HookError` when a hook fails (OCI or Python, parent or init side),
    :class:`InitError` when the init fails and :class:`ContainerStartError` when
    it dies without a word or breaks the sync-pipe protocol (its subclass
    ``asyncinit.sync_pipe.ProtocolError``).  Then, and when the call is cancelled, the init and
    everything it started are killed and poststop hooks run: nothing is left
    running or mounted.  poststart/poststop failures are ``container.warnings``.
    """
    check_spawn_arguments(locals())  # first: locals() are the arguments, and only they
    spec, bundle_dir = _load(config, bundle)
    container_id = checked_id(container_id)
    options = LaunchOptions(
        backend=backend,
        init_mode=init,
        signal_group=signal_group,
        pass_fds=len(pass_fds),
        no_pivot_root=no_pivot_root,
        console_size=console_size,
        python_hooks=hooks or PythonHooks(),
        hook_timeout=hook_timeout,
        seccomp_handler=seccomp_handler,
    )
    return await bring_up(
        spec, bundle_dir, container_id, options, _Stdio(stdin, stdout, stderr), pass_fds
    )


def checked_id(container_id: str | None) -> str:
    """The id given (runc's rule: it names state files and cgroups), or a random one."""
    if container_id is None:  # not "": an id given empty is refused, as runc does
        container_id = uuid.uuid4().hex[:12]
    if not _CONTAINER_ID.fullmatch(container_id) or container_id in (".", ".."):
        raise UsageError(
            f"invalid container id {show(container_id)}: letters, digits, _ + - . only"
        )
    return container_id


async def bring_up(
    spec: Spec,
    bundle_dir: str,
    container_id: str,
    options: LaunchOptions,
    stdio: _Stdio,
    pass_fds: Sequence[int],
) -> Container:
    """Compile, launch, drive the sync pipe: to the workload's exec (and poststart), or,
    with ``options.exec_fifo``, to ``created``.  Any failure leaves nothing behind."""
    compiled = compile_spec(spec, bundle_dir, container_id, options)
    cgroup, cgroup_warnings = create_cgroup(compiled, spec)
    try:
        sync_parent, status_parent, server = _launch(compiled, stdio, pass_fds)
    except BaseException:
        if cgroup is not None:
            cgroup.destroy()
        raise
    status = Channel(status_parent)
    sync = Channel(sync_parent)
    container: Container | None = None
    try:
        container = await _started(status, server, spec, container_id, compiled)
        container.cgroup = cgroup
        container.warnings += cgroup_warnings
        stdio.attach(container)
        keep_sync = await _drive(sync, compiled, container)
        if not keep_sync:
            sync.close()
        if options.exec_fifo is None:
            await container.poststart()
        else:
            container.status = "created"
    except BaseException as exc:
        with anyio.CancelScope(shield=True):
            if container is not None:
                with anyio.move_on_after(compiled.cleanup_timeout):
                    await container.aclose()
                for warning in container.warnings:
                    exc.add_note(f"warning: {warning}")
            else:
                status.close()
                if cgroup is not None:
                    await cleanup_in_worker(cgroup.destroy)
            stdio.close_parent_ends()
            sync.close()
        raise
    return container


def create_cgroup(compiled: Compiled, spec: Spec) -> tuple[FsManager | None, list[str]]:
    """Create the container's cgroup and write its limits, before anything is forked;
    the warnings are those of a rootless container without a delegated cgroup."""
    if compiled.cgroup is None:
        return None, []
    from ..cgroups import FsManager

    manager = FsManager(compiled.cgroup, spec.linux.resources if spec.linux else None)
    warnings = manager.apply()
    if manager.shared:
        # Not the fork server's to empty if we die: the processes there are not ours.
        compiled.launch["cgroup"] = None
    if manager.skipped:  # rootless, no delegated cgroup: none to be born in or join
        compiled.launch["born_in_cgroup"] = False
        joins = compiled.launch["join_cgroups"]
        compiled.launch["join_cgroups"] = [d for d in joins if d not in manager.skipped]
    return manager, warnings


def cgroup_fds(compiled: Compiled) -> list[int]:
    """The cgroup directory the fork server's child is born in (``born_in_cgroup``)."""
    if not compiled.launch["born_in_cgroup"] or compiled.cgroup is None:
        return []
    from ..cgroups._steps import open_directory

    return [open_directory(compiled.cgroup)]


def _launch(
    compiled: Compiled, stdio: _Stdio, pass_fds: Sequence[int]
) -> tuple[socket.socket, socket.socket, ForkServer]:
    """Send the launch request with its fds; our ends of the sync and status sockets.

    Running out of fds on the way is an InitError of stage ``launch``; whatever was
    opened is closed again (the stdio's parent ends too, on failure).
    """
    room = MAX_FDS - FIXED_FDS - len(compiled.join_paths) - compiled.launch["born_in_cgroup"]
    sync_parent = sync_child = status_parent = status_child = None
    join_fds: list[int] = []
    try:
        if len(pass_fds) > room:  # the fork server would receive the request cut short
            raise UsageError(f"pass_fds: {len(pass_fds)} fds, at most {room} with this config")
        with failing_as("launch", "socketpair"):
            sync_parent, sync_child = socketpair()
            status_parent, status_child = socketpair()
        for path in compiled.join_paths:
            with failing_as("launch", "open"):
                join_fds.append(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
        join_fds += cgroup_fds(compiled)  # closed with them below
        fds = [sync_child.fileno(), *stdio.child, status_child.fileno(), *join_fds, *pass_fds]
        return sync_parent, status_parent, launch(compiled.launch, fds)
    except BaseException:
        for end in (sync_parent, status_parent):
            if end is not None:
                end.close()
        stdio.close_parent_ends()
        raise
    finally:
        for end in (sync_child, status_child):
            if end is not None:
                end.close()
        stdio.close_child_ends()
        for fd in join_fds:
            os.close(fd)


async def _started(
    status: Channel, server: ForkServer, spec: Spec, container_id: str, compiled: Compiled
) -> Container:
    """The fork server's answer: PID 1 started (its handle), or why it was not."""
    try:
        started = await status.receive()
    except PeerGone as exc:
        raise await cleanup_in_worker(server.lost) from exc
    if started.kind != ServerKind.STARTED:
        raise InitError.from_fields(started.fields)
    return Container(
        container_id=container_id,
        spec=spec,
        bundle=compiled.bundle,
        rootfs=compiled.plan["rootfs"],
        pid=started.fields["pid"],
        pidfd=started.fds[0],
        status=status,
        hooks=compiled.hooks,
        network=ContainerNetwork(compiled.network) if compiled.network else None,
    )


def _init_failure(fields: dict[str, Any]) -> Exception:
    """The exception for the init's ``error`` message: HookError for its own hooks."""
    stage = fields.get("stage")
    command = fields.get("command")
    field = fields.get("field") or ""
    if stage in ("createContainer", "startContainer") and isinstance(command, dict):
        index = field.rpartition("[")[2].rstrip("]")
        return HookError.from_command(stage, int(index) if index.isdigit() else 0, command)
    return InitError.from_fields(fields)


def _set_rlimits(pid: int, rlimits: Sequence[tuple[int, int, int]]) -> None:
    """process.rlimits, set on PID 1 from here, as runc does at procReady.

    Inside a user namespace the init cannot raise a hard limit above what it
    inherited (that needs CAP_SYS_RESOURCE in the initial namespace); we can.
    The workload inherits them across execve or posix_spawn.
    """
    for kind, soft, hard in rlimits:
        try:
            resource.prlimit(pid, kind, (soft, hard))
        except OSError as exc:
            raise InitError(
                f"prlimit: {exc.strerror}",
                errno=exc.errno,
                operation="prlimit",
                stage="rlimits",
                field="process.rlimits",
            ) from exc


def _died(container: Container) -> ContainerStartError:
    status = container.wait_status or 0
    if os.WIFSIGNALED(status):
        how = f"was killed by {signal_name(os.WTERMSIG(status))}"
    else:
        how = f"exited with status {os.waitstatus_to_exitcode(status)}"
    return ContainerStartError(f"the init {how} before the workload was executed")


async def _send(
    sync: Channel, kind: str, fields: dict[str, Any] | None = None, fds: Sequence[int] = ()
) -> None:
    """Send to the init; a vanished init is not an error here: its last words are queued."""
    with contextlib.suppress(PeerGone):
        await sync.send(kind, fields, fds)


async def _drive(sync: Channel, compiled: Compiled, container: Container) -> bool:
    """The parent's half of the sync-pipe conversation (docs/protocol.md).

    Returns True when the channel must stay open (supervise mode: "exited" follows).
    """
    mount_sources = MountSources(compiled.mount_sources, container.pid)
    try:
        return await _converse(sync, compiled, container, mount_sources)
    finally:
        mount_sources.close()


async def _converse(
    sync: Channel, compiled: Compiled, container: Container, mount_sources: MountSources
) -> bool:
    await _send(sync, Kind.PLAN, {"plan": compiled.plan, "state": container.state("creating")})
    if container.cgroup is not None and compiled.plan["await_cgroup"]:
        # While the init builds the rootfs: a move waits for an RCU grace period
        # (~10 ms on v1), which overlaps its work instead of delaying its start.
        # The init forks and execs nothing before "cgroup"; its requests wait here.
        try:
            await in_worker("cgroup", container.cgroup.enter, container.pid)
        except CgroupError as exc:
            if exc.errno != errno.ESRCH:
                raise
            # the init failed (and exited) first: its own error follows on the pipe
        else:
            await _send(sync, Kind.CGROUP)
    execing = False
    while True:
        try:
            message = await sync.receive()
        except PeerGone:
            if execing:
                return False  # the sync socket is close-on-exec: EOF after "exec": it ran
            await container.wait()
            raise _died(container) from None
        if message.kind == Kind.ERROR:
            raise _init_failure(message.fields)
        if execing:
            raise ProtocolError(f"unexpected {show(message.kind)} after 'exec'")
        if message.kind == Kind.HOOKS:
            # Before the hooks, so that they see the network (as CNI-style hooks expect).
            if container.network is not None:
                await container.network.setup(container)
            await run_hooks(compiled.hooks.prestart, container)
            await run_hooks(compiled.hooks.create_runtime, container)
            await _send(sync, Kind.HOOKS_DONE)
        elif message.kind == Kind.MOUNT_PLEASE:
            index = message.fields.get("index")
            if not isinstance(index, int):
                raise ProtocolError(f"malformed {show(message.kind)}: {show(message.fields, 200)}")
            fd = await in_worker("mount", mount_sources.open, index)
            try:
                await _send(sync, Kind.MOUNT_FD, fds=[fd])
            finally:
                os.close(fd)
        elif message.kind == Kind.READY:
            _set_rlimits(container.pid, compiled.plan["process"]["rlimits"])
            await _send(sync, Kind.RUN)
        elif message.kind == Kind.SECCOMP:
            await take_listener(container, message.fields.get("fd"), compiled.seccomp_handler)
            await _send(sync, Kind.SECCOMP_DONE)
        elif message.kind == Kind.EXEC:
            execing = True
        elif message.kind == Kind.CREATED and compiled.plan["exec_fifo"] is not None:
            return False  # runc create: the init waits on the exec fifo, we go
        elif message.kind == Kind.PTY and len(message.fds) == 1:
            container.pty = PtyStream(message.fds[0])
        elif message.kind == Kind.WORKLOAD and len(message.fds) == 1:
            container.supervised(sync, message.fds[0])
            return True
        else:
            for fd in message.fds:
                os.close(fd)
            raise ProtocolError(f"unexpected {show(message.kind)} on the sync pipe")


_publish(spawn)
