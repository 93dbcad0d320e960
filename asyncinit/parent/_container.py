"""The handle spawn() returns: a started container's pid, signals, exit status, stdio."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import anyio
import anyio.to_thread
import attrs
from anyio.abc import ByteReceiveStream, ByteSendStream

from .. import _publish
from .._errors import ContainerStartError, UsageError, wrong_type
from .._lines import show
from .._rules import exit_code
from .._syscalls._fds import pidfd_getfd, pidfd_send_signal
from ..forkserver._wire import ServerKind
from ..sync_pipe import Channel, Kind, PeerGone, ProtocolError, receive_raw
from ._hooks import ParentHooks, oci_state, run_hooks_reporting
from ._streams import PtyStream
from ._workers import cleanup_in_worker

__all__ = ["Container"]  # public as asyncinit.Container

#: How long wait() watches PID 1 die after its fork server died.
_LOST_SERVER_GRACE = 10.0


def _pid_of(pidfd: int) -> int:
    """The pid a pidfd refers to, in our pid namespace (the init sent it from its own)."""
    with open(f"/proc/self/fdinfo/{pidfd}") as info:
        for line in info:
            if line.startswith("Pid:"):
                return int(line.split()[1])
    raise ProtocolError("the workload's pidfd names no process")


#: The files of /proc/PID/ns: what namespace_path() and open_namespace() take.
_NAMESPACE_FILES = (
    "cgroup", "ipc", "mnt", "net", "pid", "pid_for_children", "time", "time_for_children",
    "user", "uts",
)  # fmt: skip
#: What the kernel takes (ctypes would silently cut a larger int to 32 bits: 2**32 + 9 is 9).
_SIGNAL_RANGE = range(signal.NSIG)
_FD_RANGE = range(2**31)


def _check_int(function: str, name: str, value: object, valid: range) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise wrong_type(function, name, value, "an int")
    if value not in valid:
        raise UsageError(f"{function}(): {name} {show(value)} out of range")


if TYPE_CHECKING:
    from ..cgroups import CgroupManager, OomEvents, Resources
    from ..config import Process, Spec
    from ._created import Record
    from ._exec import ExecProcess
    from ._network import ContainerNetwork
    from ._seccomp import NotificationService


@attrs.frozen
class ContainerEvent:
    """What :meth:`Container.events` yields: OOM kills (``value``: how many since the
    last event) or the container's exit (``value``: its return code, always last)."""

    kind: Literal["oom", "exit"]
    value: int


class ContainerEvents:
    """What :meth:`Container.events` returns: an async iterator of :class:`ContainerEvent`.

    One epoll fd watches the cgroup's OOM notifier and PID 1's pidfd, so each wait
    is a single ``anyio.wait_readable``: no polling, no task group.
    """

    def __init__(self, container: Container, oom: OomEvents | None) -> None:
        self._container = container
        self._oom = oom
        self._done = False
        self._poller: select.epoll | None = None
        # Our own copy: wait() elsewhere closes the container's pidfd.
        self._pidfd = os.dup(container._pidfd) if container._pidfd >= 0 else -1
        if self._pidfd >= 0:
            self._poller = select.epoll(2)
            self._poller.register(self._pidfd, select.EPOLLIN)
            if oom is not None:
                self._poller.register(oom.fileno(), select.EPOLLIN)

    def __aiter__(self) -> ContainerEvents:
        return self

    async def __anext__(self) -> ContainerEvent:
        if self._done:
            raise StopAsyncIteration
        while self._poller is not None:
            await anyio.wait_readable(self._poller.fileno())
            ready = {fd for fd, _ in self._poller.poll(0)}
            exited = self._pidfd in ready
            # On PID 1's exit the counter is read once more: the kernel counts the
            # kill before the victim dies, but may signal the notifier after.
            if self._oom is not None and (exited or self._oom.fileno() in ready):
                count = self._oom.read()
                if count:
                    return ContainerEvent("oom", count)
            if exited:
                break  # PID 1 exited: the exit is next
        self.close()
        self._done = True
        return ContainerEvent("exit", await self._container.wait())

    def close(self) -> None:
        if self._poller is not None:
            self._poller.close()
            self._poller = None
        if self._oom is not None:
            self._oom.close()
            self._oom = None
        if self._pidfd >= 0:
            os.close(self._pidfd)
            self._pidfd = -1

    async def aclose(self) -> None:
        self.close()

    async def __aenter__(self) -> ContainerEvents:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class Container:
    """A running (or finished) container.  Use as ``async with`` to kill and reap on exit."""

    def __init__(
        self,
        *,
        container_id: str,
        spec: Spec,
        bundle: str,
        rootfs: str,
        pid: int,
        pidfd: int,
        status: Channel | None,
        hooks: ParentHooks,
        network: ContainerNetwork | None = None,
        cgroup: CgroupManager | None = None,
    ) -> None:
        self.id = container_id
        self.spec = spec
        self.bundle = bundle
        self.rootfs = rootfs
        #: PID 1 of the container, as the host sees it
        self.pid = pid
        self.stdin: ByteSendStream | None = None
        self.stdout: ByteReceiveStream | None = None
        self.stderr: ByteReceiveStream | None = None
        #: the pty master when process.terminal is true
        self.pty: PtyStream | None = None
        #: host pid of the workload: PID 1 itself in exec mode, its child in supervise mode
        self.workload_pid = pid
        #: supervise mode: the workload's exit code as the init reported it
        self.workload_returncode: int | None = None
        #: exit code (128 + signal for a signal death) once the container is reaped
        self.returncode: int | None = None
        #: failures of poststart/poststop hooks and network teardown: reported, not fatal
        self.warnings: list[str] = []
        #: the veths of asyncinit.network (docs/network.md), or None
        self.network = network
        #: the container's cgroup (docs/cgroups.md); destroyed when the container ends
        self.cgroup = cgroup
        #: PID 1's raw wait status once reaped (tells a signal death from an exit)
        self.wait_status: int | None = None
        self._pidfd = pidfd
        self._status = status
        self._hooks = hooks
        self._wait_lock = anyio.Lock()
        self._sync: Channel | None = None  # kept open in supervise mode for "exited"
        #: "created" (create(): waiting for start()), "running", "stopped" once reaped
        self.status = "running"
        #: create()/load(): where the container's runc state lives (parent/_created.py)
        self.record: Record | None = None
        self._notifications: NotificationService | None = None

    def __repr__(self) -> str:
        state = "running" if self.returncode is None else f"exited {self.returncode}"
        return f"<asyncinit.Container {self.id!r} pid={self.pid} {state}>"

    def namespace_path(self, kind: str) -> str:
        """``/proc/PID/ns/KIND`` of PID 1 (``net``, ``mnt``, ``pid``, ...)."""
        if not isinstance(kind, str):
            raise wrong_type("Container.namespace_path", "kind", kind, "a namespace name")
        if kind not in _NAMESPACE_FILES:  # "../root" would lead out of ns/
            raise UsageError(f"no namespace {show(kind)}: one of {', '.join(_NAMESPACE_FILES)}")
        return f"/proc/{self.pid}/ns/{kind}"

    def open_namespace(self, kind: str) -> int:
        """Open PID 1's namespace ``kind``; the fd is close-on-exec and yours to close.

        Checked through the pidfd after the open: had PID 1 died and its pid been
        reused, the fd could name a stranger's namespace (a veth handed to them).
        """
        fd = os.open(self.namespace_path(kind), os.O_RDONLY | os.O_CLOEXEC)
        try:
            if self._pidfd < 0:
                raise ProcessLookupError(f"container {self.id} has exited")
            pidfd_send_signal(self._pidfd, 0)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def copy_fd(self, fd: int) -> int:
        """A close-on-exec copy of PID 1's fd ``fd`` (pidfd_getfd, runc's pidGetFd)."""
        _check_int("Container.copy_fd", "fd", fd, _FD_RANGE)
        return pidfd_getfd(self._pidfd, fd)

    def state(self, status: str | None = None) -> dict[str, object]:
        """The OCI State (runtime-spec): ``status`` as given, else the container's own."""
        if status is None:
            status = "stopped" if self.returncode is not None else self.status
        return oci_state(self.spec, self.id, self.pid, self.bundle, status)

    async def start(self) -> None:
        """Run the workload of a created container (:func:`asyncinit.create`): the init,
        blocked on the exec fifo, goes on at once; then poststart hooks, as runc start."""
        if self.record is None or self.status != "created":
            raise UsageError(f"container {self.id} is {self.state()['status']}, not created")
        self.record.release()
        self.status = "running"
        self.record.saved("running")
        await self.poststart()

    def send_signal(self, signum: int) -> None:
        """Signal PID 1 through its pidfd: never a recycled pid."""
        _check_int("Container.send_signal", "signum", signum, _SIGNAL_RANGE)
        if self.returncode is not None or self._pidfd < 0:
            return
        with contextlib.suppress(ProcessLookupError):
            pidfd_send_signal(self._pidfd, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    async def wait(self) -> int:
        """Wait for PID 1 to exit (the whole container dies with it) and run poststop hooks."""
        async with self._wait_lock:
            if self.returncode is not None:
                return self.returncode
            if self._status is None:  # load(): no server reports it
                self.wait_status = await self._exit_by_pidfd()
                self.returncode = -1 if self.wait_status is None else exit_code(self.wait_status)
            else:
                try:
                    message = await self._status.expect(ServerKind.EXITED)
                except PeerGone as exc:
                    await self._lost_server()
                    await self._stopped()  # dead all the same: its veths and poststop hooks
                    raise ContainerStartError(
                        "the fork server died and took the container with it; "
                        "its exit status is lost"
                    ) from exc
                self.wait_status = message.fields["status"]
                self.returncode = exit_code(self.wait_status)
            self._release()
            await self._destroy_cgroup()
            await self._stopped()
            await self._stop_notifications()
            return self.returncode

    async def _exit_by_pidfd(self) -> int | None:
        """PID 1's end, seen through its pidfd; its wait status if it is our child."""
        await anyio.wait_readable(self._pidfd)
        try:
            result = os.waitid(os.P_PIDFD, self._pidfd, os.WEXITED)
        except ChildProcessError:
            return None  # the kernel gives the status to the parent only
        assert result is not None
        if result.si_code == os.CLD_EXITED:
            return result.si_status << 8
        return result.si_status  # killed (or dumped): the signal number

    @property
    def hooks(self) -> ParentHooks:
        """The hook points the parent runs (config.json's, then the Python hooks)."""
        return self._hooks

    async def _stopped(self) -> None:
        """PID 1 is gone (the return code is set): tear the network down, run poststop."""
        if self.network is not None:
            # Shielded: the return code is set, so a cancelled teardown never reruns.
            with anyio.CancelScope(shield=True):
                self.warnings.extend(await self.network.teardown())
        self.warnings += await run_hooks_reporting(self._hooks.poststop, self)

    def serve_notifications(self, service: NotificationService) -> None:
        """spawn(seccomp_handler=...): the service answering the filter's listener."""
        self._notifications = service

    async def _stop_notifications(self) -> None:
        """The container is gone: stop the seccomp handler; raise what it raised."""
        service, self._notifications = self._notifications, None
        if service is not None:
            with anyio.CancelScope(shield=True):
                await service.aclose()
            if service.error is not None:
                raise service.error

    async def exec(
        self,
        process: Sequence[str] | Process,
        *,
        env: Sequence[str] = (),
        cwd: str | None = None,
        user: tuple[int, int | None] | None = None,
        terminal: bool = False,
        stdin: int | None = subprocess.PIPE,
        stdout: int | None = subprocess.PIPE,
        stderr: int | None = subprocess.PIPE,
        pass_fds: Sequence[int] = (),
        console_size: tuple[int, int] | None = None,
    ) -> ExecProcess:
        """Run a process in this container, as ``runc exec`` does.

        ``process`` is a :class:`~asyncinit.config.Process` used as it is, or the
        args for the container's own ``process`` with ``env`` appended, ``cwd``
        and ``user`` (uid, gid or None) replaced and ``terminal`` set.  It joins
        every namespace and cgroup of PID 1 and gets the container's seccomp
        filter; fields a Process leaves unset (capabilities, apparmorProfile,
        oomScoreAdj, execCPUAffinity...) are the container's, as runc's.  With a
        terminal its stdio is a pty of the container, whose master is ``pty``
        (sized by ``process.consoleSize``, else ``console_size``, (rows, columns));
        the launcher's stdio is then /dev/null whatever ``stdin``/``stdout``/
        ``stderr`` say.  ``pass_fds`` reach it as fds 3, 4, ... (at most 15;
        without ``LISTEN_FDS``, as runc exec's ``--preserve-fds``).  Returns once
        the process runs (its ``pid``, ``stdin``/``stdout``/``stderr`` streams for
        PIPE, ``wait()``); raises :class:`~asyncinit.InitError` if it cannot start.
        """
        from ..config import Process as ProcessConfig
        from ..oci._state import process_start_time
        from ._exec import check_exec_arguments, exec_plan, process_from_args, start_exec

        check_exec_arguments(terminal, pass_fds, console_size)
        start = process_start_time(self.pid) if self.returncode is None else None
        if start is None:
            raise ContainerStartError(f"container {self.id}: PID 1 has exited")
        if not isinstance(process, ProcessConfig):
            if self.spec.process is None:
                raise ContainerStartError(f"container {self.id}: its config has no process")
            process = process_from_args(
                self.spec.process, process, env=env, cwd=cwd, user=user, terminal=terminal
            )
        plan = exec_plan(
            self.spec, process, self.pid, start, pass_fds=len(pass_fds), console_size=console_size
        )
        if process.terminal:
            stdin = stdout = stderr = subprocess.DEVNULL
        return await start_exec(plan, stdin=stdin, stdout=stdout, stderr=stderr, pass_fds=pass_fds)

    async def poststart(self) -> None:
        """Run the poststart hooks (spawn() does, once the workload was executed)."""
        self.warnings += await run_hooks_reporting(self._hooks.poststart, self)

    async def _lost_server(self) -> None:
        """The fork server died: make sure PID 1 is gone too, and forget it."""
        self.kill()  # PID 1 got SIGKILL with the server (PDEATHSIG); if not, now
        with anyio.move_on_after(_LOST_SERVER_GRACE):
            await anyio.wait_readable(self._pidfd)  # a pidfd reads ready once it exited
        self.returncode = 128 + signal.SIGKILL
        self._release()
        await self._destroy_cgroup()
        await self._stop_notifications()

    async def _destroy_cgroup(self) -> None:
        """Kill what is left of the container (a setsid daemon, processes of a shared
        pid namespace) and remove its cgroup; a failure is a warning, never lost."""
        cgroup, self.cgroup = self.cgroup, None
        if cgroup is None:
            return
        with anyio.CancelScope(shield=True):
            try:
                await cleanup_in_worker(cgroup.destroy)
            except OSError as exc:
                self.warnings.append(f"cgroup: {exc}")

    def _live_cgroup(self) -> CgroupManager:
        if self.cgroup is None:
            raise ProcessLookupError(f"container {self.id} has exited")
        return self.cgroup

    async def pause(self) -> None:
        """Freeze every process of the container (runc pause)."""
        await anyio.to_thread.run_sync(self._live_cgroup().freeze)

    async def resume(self) -> None:
        """Thaw a paused container (runc resume)."""
        await anyio.to_thread.run_sync(self._live_cgroup().thaw)

    async def update(self, resources: Resources) -> None:
        """Lay ``resources`` over the current limits and write them (runc update)."""
        await anyio.to_thread.run_sync(self._live_cgroup().update, resources)

    async def stats(self) -> dict[str, Any]:
        """runc's ``events --stats`` data: cpu, memory, pids, blkio, hugetlb."""
        return await anyio.to_thread.run_sync(self._live_cgroup().stats)

    def events(self) -> ContainerEvents:
        """OOM kills as they happen, then the exit (which ends the iteration).

        Subscribes at the call: every OOM kill from then on is reported.  Use as
        ``async with container.events() as events: async for event in events``
        (or iterate to the end), so that the notifier's fds are closed.
        """
        oom = None
        if self.returncode is None and self._pidfd >= 0 and self.cgroup is not None:
            try:
                oom = self.cgroup.oom_events()
            except OSError:  # no memory controller (rootless, skipped): only the exit
                oom = None
        return ContainerEvents(self, oom)

    def forget(self) -> None:
        """runc create: let go of a container that outlives this process (nothing killed;
        its cgroup stays, for ``delete``)."""
        self.cgroup = None
        self._release()

    def supervised(self, sync: Channel, workload_pidfd: int) -> None:
        """Supervise mode: remember the workload and keep the sync pipe for its status."""
        try:
            self.workload_pid = _pid_of(workload_pidfd)
        finally:
            os.close(workload_pidfd)
        self._sync = sync

    def _release(self) -> None:
        if self._pidfd >= 0:
            os.close(self._pidfd)
            self._pidfd = -1
        if self._status is not None:
            self._status.close()
        if self._sync is not None:
            # The init sent the workload's status just before it exited: it is buffered.
            with contextlib.suppress(OSError, PeerGone, ProtocolError):
                message = receive_raw(self._sync.socket)
                if message.kind == Kind.EXITED:
                    self.workload_returncode = exit_code(message.fields["status"])
            self._sync.close()
            self._sync = None

    async def aclose(self) -> None:
        """Kill the container if it still runs, reap it and close its streams."""
        with anyio.CancelScope(shield=True):
            if self.returncode is None:
                self.kill()
                await self.wait()
            for stream in (self.stdin, self.stdout, self.stderr, self.pty):
                if stream is not None:
                    await stream.aclose()
            if self.record is not None:  # create()/load(): the runc state goes with it
                self.record.remove()

    async def __aenter__(self) -> Container:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


_publish(Container)
