"""The fork server: a warm, single-threaded process that forks every container's init.

Why a separate process: the caller runs an event loop with worker threads, and
``fork()`` in a threaded process is unsafe while ``unshare(CLONE_NEWUSER)`` fails
outright.  This server is started once (fork+exec by ``subprocess``), imports the
init's modules once, and stays single-threaded, so each container costs one
``fork`` instead of an interpreter start and ~100 ms of imports.

Per request it forks PID 1 directly (``unshare(CLONE_NEWPID)`` first: the
next child is PID 1 of a new pid namespace, and unshares the other namespaces
itself), or, for a user namespace or a namespace joined by path, forks an
intermediate child that sets them up and forks PID 1, then exits; the server,
a child subreaper, inherits PID 1 either way and reports its exit status.  The
server exits, killing every container it started, when its owner closes the
control socket (or dies); a PID 1 it forked directly also dies with the server
itself (PR_SET_PDEATHSIG).

The wire (``_wire``, docs/protocol.md): a ``launch`` request (:class:`LaunchRequest`
+ fds) on the control socket; ``started`` + a pidfd or ``launch_error``, later
``exited``, on the request's own status socket.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import select
import signal
import socket
import sys
from typing import TYPE_CHECKING, Any, NoReturn, cast

from .._errors import CgroupError, error_fields, failing_as
from .._syscalls import with_operation
from .._syscalls._clone import fork_into_cgroup
from .._syscalls._process import (
    CLONE_NEWPID,
    CLONE_NEWTIME,
    CLONE_NEWUSER,
    PR_SET_CHILD_SUBREAPER,
    PR_SET_DUMPABLE,
    PR_SET_PDEATHSIG,
    prctl,
    setns,
    unshare,
)
from ..cgroups._steps import join_self
from ..sync_pipe import (
    Kind,
    Message,
    PeerGone,
    ProtocolError,
    Truncated,
    receive_blocking,
    send_blocking,
)
from ._boot import boot, load_trio
from ._wire import FIXED_FDS, LaunchRequest, ServerKind

if TYPE_CHECKING:
    from ..cgroups._plan import CgroupPlan


class _Launch:
    """One request's fds and fields, owned by the server until it forked."""

    def __init__(self, fields: LaunchRequest, fds: tuple[int, ...]) -> None:
        self.fields = fields
        self.sync_fd, self.stdin, self.stdout, self.stderr, self.status_fd = fds[:FIXED_FDS]
        joins = len(fields["join"])
        self.join_fds = fds[FIXED_FDS : FIXED_FDS + joins]
        cgroup = FIXED_FDS + joins
        #: the v2 cgroup directory the server's child is born in (``born_in_cgroup``)
        self.cgroup_fd = fds[cgroup] if fields["born_in_cgroup"] else -1
        self.pass_fds = fds[cgroup + (self.cgroup_fd >= 0) :]
        self.fds = fds

    def fork(self) -> int:
        """os.fork(), or clone3(CLONE_INTO_CGROUP): the child never runs outside its cgroup."""
        with failing_as("launch", "fork"):  # EAGAIN under a pids or nproc limit
            if self.cgroup_fd >= 0:
                return fork_into_cgroup(self.cgroup_fd)
            return os.fork()


def _close_all_except(keep: set[int]) -> None:
    low = 3
    for fd in sorted(fd for fd in keep if fd >= 3):
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 20)


def _write_id_maps(pid: int, fields: LaunchRequest) -> None:
    if fields["deny_setgroups"]:
        with open(f"/proc/{pid}/setgroups", "w") as f:
            f.write("deny")
    for name, mapping in (("uid_map", fields["uid_map"]), ("gid_map", fields["gid_map"])):
        with open(f"/proc/{pid}/{name}", "w") as f:
            f.write(mapping)


def _write_time_offsets(text: str) -> None:
    """linux.timeOffsets, into the time namespace our next children enter.

    Only before any process has entered it (the kernel then freezes the offsets):
    right after the unshare, before PID 1 is forked (runc's nsexec does the same).
    """
    if not text:
        return
    try:
        fd = os.open("/proc/self/timens_offsets", os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
    except OSError as exc:
        with_operation(exc, "write")
        raise _ChildError(error_fields(exc, "namespaces", "linux.timeOffsets")) from exc


def _has_exited(pidfd: int) -> bool:
    """A pidfd polls readable once its process has exited."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(0))


def _die_with_the_server(intermediate: int, server_pidfd: int) -> None:
    """PID 1 behind an intermediate: once reparented to the server, die with it.

    PR_SET_PDEATHSIG fires at every change of parent: set while the intermediate
    lives, it would kill PID 1 as soon as the intermediate exits.  So wait until the
    intermediate's pidfd reads ready (the kernel signals it after reparenting its
    children; end of file on a pipe would come too early, when its files close),
    then set it, then make sure the server did not die meanwhile.
    """
    poller = select.poll()
    poller.register(intermediate, select.POLLIN)
    while not poller.poll():
        pass
    os.close(intermediate)
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if _has_exited(server_pidfd):
        os._exit(127)


def _intermediate(launch: _Launch, report: int, go: int, server_pidfd: int) -> NoReturn:
    """Child of the server: enter the namespaces, fork PID 1, report its pid, exit."""
    try:
        fields = launch.fields
        flags = fields["clone_flags"]
        _join_cgroups(fields)  # first: PID 1, forked below, inherits them
        for fd, nstype in zip(launch.join_fds, fields["join"], strict=True):
            setns(fd, nstype)
        if flags & CLONE_NEWUSER:
            unshare(CLONE_NEWUSER)
            os.write(report, b"U")
            if os.read(go, 1) != b"G":
                os._exit(1)
        if flags & CLONE_NEWTIME:
            # PID 1's, owned by the new user namespace; the offsets written before the
            # uid changes, which makes us non-dumpable: /proc/self is then the host root's.
            unshare(CLONE_NEWTIME)
            _write_time_offsets(fields["time_offsets"])
        if flags & CLONE_NEWUSER:
            # Become the namespace's root, so files the init creates belong to it.
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        if fields["oom_score_adj"] is not None:  # inherited by PID 1 and the workload
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write(str(fields["oom_score_adj"]))
        # Like PID 1 (init/_entry.py), this host interpreter is now in the container's
        # namespaces: keep its /proc/PID/exe out of reach (CVE-2019-5736).  Not before
        # the maps and oom_score_adj are written: a non-dumpable process's /proc files
        # belong to the host's root.
        prctl(PR_SET_DUMPABLE, 0)
        unshare(flags & ~(CLONE_NEWUSER | CLONE_NEWTIME))
        with failing_as("namespaces", "pidfd_open"):
            intermediate = os.pidfd_open(os.getpid())
        with failing_as("namespaces", "fork"):  # EAGAIN under a pids or nproc limit
            pid = os.fork()
        if pid == 0:
            if server_pidfd >= 0:
                _die_with_the_server(intermediate, server_pidfd)
            else:
                os.close(intermediate)
            _become_init(launch)
        os.write(report, f"P{pid}".encode())
    except BaseException as exc:
        failure = exc.fields if isinstance(exc, _ChildError) else error_fields(exc, "namespaces")
        try:
            os.write(report, b"E" + json.dumps(failure).encode())
        finally:
            os._exit(1)
    os._exit(0)


def _join_cgroups(fields: LaunchRequest) -> None:
    """v1: the server's fresh child, single-threaded, joins the container's cgroups."""
    if fields["join_cgroups"]:
        try:
            join_self(fields["join_cgroups"])
        except CgroupError as exc:
            raise _ChildError(error_fields(exc, "cgroup")) from exc


def _become_init(launch: _Launch, unshare_flags: int | None = None) -> NoReturn:
    """PID 1: stdio and passed fds in place (0, 1, 2, then 3...), everything else closed.

    ``unshare_flags`` (the direct path: forked by the server itself) are the namespaces
    still to create, after the cgroups to join: an error there is reported on the sync
    pipe, where the parent is listening.
    """
    stage, sync_fd = "cgroup", launch.sync_fd
    try:
        if unshare_flags is not None and launch.fields["join_cgroups"]:
            join_self(launch.fields["join_cgroups"])
        stage = "namespaces"
        if unshare_flags:
            unshare(unshare_flags)
        stage = "launch"
        # Every fd out of the way first, above the numbers it will take: a passed fd
        # lands on 3, 4, ..., and a stdio fd of the server's (with its caller's stdio
        # closed) may sit on 0-2 now.  The lowest free fds: no RLIMIT_NOFILE is too low.
        high = 3 + len(launch.pass_fds)
        with failing_as(stage, "fcntl(F_DUPFD_CLOEXEC)"):
            sync_fd = fcntl.fcntl(launch.sync_fd, fcntl.F_DUPFD_CLOEXEC, high)
            ends = (launch.stdin, launch.stdout, launch.stderr, *launch.pass_fds)
            moved = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, high) for fd in ends]
        for target, fd in enumerate(moved):
            os.dup2(fd, target)
        _close_all_except({sync_fd, *range(3, high)})
        from ..init._entry import main

        main(sync_fd, launch.fields["backend"])
    except BaseException as exc:
        # The parent listens on the sync socket: tell it why, as the init would.
        with contextlib.suppress(BaseException):
            sync = socket.socket(fileno=sync_fd)
            send_blocking(sync, Message(Kind.ERROR, error_fields(exc, stage)))
        os._exit(127)


class Server:
    """``detached``: runc create's in-process launch (:func:`launch_here`): PID 1 must
    outlive the caller, so it gets no PR_SET_PDEATHSIG; ``control`` is then unused."""

    def __init__(self, control: socket.socket | None, detached: bool = False) -> None:
        self.control = control
        self.detached = detached
        self.containers: dict[int, socket.socket] = {}  # PID 1 host pid -> status socket
        self.intermediates: set[int] = set()
        # Cgroups of our containers, destroyed here if the caller dies without doing it.
        self.cgroups: dict[int, CgroupPlan] = {}  # PID 1 host pid -> its cgroup
        self.finished_cgroups: list[CgroupPlan] = []  # PID 1 reaped; the caller destroys
        self.own_pid_namespace = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        self.own_time_namespace_fd = -1  # opened at the first time namespace
        # getppid() is 0 in a child in a new pid namespace: its check uses this pidfd.
        self.own_pidfd = os.pidfd_open(os.getpid())

    def listen(self) -> None:
        """Become the caller's server: a subreaper, deaf to SIGINT, woken by SIGCHLD."""
        prctl(PR_SET_CHILD_SUBREAPER, 1)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the owner decides; we follow its EOF
        self.wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)

    def serve(self) -> NoReturn:
        assert self.control is not None
        poller = select.poll()
        poller.register(self.control, select.POLLIN)
        poller.register(self.wake_r, select.POLLIN)
        while True:
            for fd, _ in poller.poll():
                if fd == self.wake_r:
                    while True:
                        try:
                            if not os.read(self.wake_r, 512):
                                break
                        except BlockingIOError:
                            break
                    self.reap()
                else:
                    self.handle_request()

    def handle_request(self) -> None:
        assert self.control is not None
        try:
            message = receive_blocking(self.control)
        except (PeerGone, ConnectionResetError):  # reset: it left our report unread
            self.shutdown()
        except Truncated:
            # Its fds did not fit in our fd table, the status socket among them: the
            # caller hears why on the control socket instead (ForkServer.lost).
            full = OSError(errno.EMFILE, os.strerror(errno.EMFILE))
            fields = error_fields(full, "launch", operation="receive the launch request")
            with contextlib.suppress(OSError):  # never block on an owner that does not read
                self.control.setblocking(False)
                send_blocking(self.control, Message(ServerKind.ERROR, fields))
            return
        except ProtocolError:
            return
        if message.kind != ServerKind.LAUNCH or len(message.fds) < FIXED_FDS:
            for fd in message.fds:
                os.close(fd)
            return
        status_fd = message.fds[FIXED_FDS - 1]
        status = socket.socket(fileno=status_fd)
        try:
            pid = self.launch(_Launch(cast(LaunchRequest, message.fields), message.fds))
            try:
                with failing_as("launch", "pidfd_open"):
                    pidfd = os.pidfd_open(pid)
            except BaseException:
                os.kill(pid, signal.SIGKILL)  # not reaped yet: the pid is still PID 1's
                raise
        except BaseException as exc:
            fields = exc.fields if isinstance(exc, _ChildError) else error_fields(exc, "launch")
            self._send(status, Message(ServerKind.LAUNCH_ERROR, fields))
            status.close()
            return
        finally:
            for fd in message.fds:
                if fd != status_fd:
                    os.close(fd)
        try:
            self._send(status, Message(ServerKind.STARTED, {"pid": pid}, [pidfd]))
        finally:
            os.close(pidfd)
        # Registered before the next reap: PID 1 cannot be reaped unnoticed.
        self.containers[pid] = status
        cgroup = message.fields.get("cgroup")
        if cgroup is not None:
            self.cgroups[pid] = cgroup
            # Forget those the caller destroyed: one stat each, no growth.
            self.finished_cgroups = [c for c in self.finished_cgroups if _cgroup_exists(c)]

    def launch(self, launch: _Launch) -> int:
        if launch.fields["backend"] == "trio" and "anyio._backends._trio" not in sys.modules:
            load_trio()  # once, so every later fork has it
        flags = launch.fields["clone_flags"]
        if not launch.join_fds and not flags & CLONE_NEWUSER:
            return self.launch_direct(launch, flags)
        return self.launch_via_intermediate(launch)

    def open_own_time_namespace(self) -> int:
        if self.own_time_namespace_fd < 0:
            path = "/proc/self/ns/time"
            self.own_time_namespace_fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        return self.own_time_namespace_fd

    def launch_direct(self, launch: _Launch, flags: int) -> int:
        """One fork: our next child is PID 1 of a new pid namespace and unshares the rest.

        unshare(CLONE_NEWPID) only changes the namespace of the children to come, so
        the server stays where it is; it steps back right after the fork so that
        nothing else it forks lands in the container.  A time namespace works the
        same way, and its offsets are written before the fork: PID 1 itself is in it.
        """
        for_children = flags & (CLONE_NEWPID | CLONE_NEWTIME)
        if flags & CLONE_NEWTIME:
            self.open_own_time_namespace()  # before the unshare: a failure leaves nothing to undo
        if for_children:
            unshare(for_children)
        try:
            if flags & CLONE_NEWTIME:
                _write_time_offsets(launch.fields["time_offsets"])
            child = launch.fork()
            if child == 0:
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                # No container outlives a fork server killed outright (SIGKILL): the
                # kernel kills PID 1, and with it the whole pid namespace.
                if not self.detached:
                    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
                    if _has_exited(self.own_pidfd):  # it died before the prctl took effect
                        os._exit(127)
                _close_all_except(set(launch.fds))
                _become_init(launch, flags & ~for_children)
        finally:
            if flags & CLONE_NEWPID:
                setns(self.own_pid_namespace, CLONE_NEWPID)
            if flags & CLONE_NEWTIME:
                setns(self.own_time_namespace_fd, CLONE_NEWTIME)
        return child

    def launch_via_intermediate(self, launch: _Launch) -> int:
        """Joins and user namespaces: an intermediate child sets up, then forks PID 1.

        A user namespace must own the pid namespace (or mounting proc fails), and a
        joined namespace must not touch the server: both happen in the intermediate.
        """
        with failing_as("launch", "pipe2"):
            report_r, report_w = os.pipe2(os.O_CLOEXEC)
            try:
                go_r, go_w = os.pipe2(os.O_CLOEXEC)
            except BaseException:
                os.close(report_r)
                os.close(report_w)
                raise
        try:
            child = launch.fork()
        except BaseException:
            for fd in (report_r, report_w, go_r, go_w):
                os.close(fd)
            raise
        if child == 0:
            os.close(report_r)
            os.close(go_w)
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            _close_all_except({report_w, go_r, self.own_pidfd, *launch.fds})
            _intermediate(launch, report_w, go_r, -1 if self.detached else self.own_pidfd)
        self.intermediates.add(child)
        os.close(report_w)
        os.close(go_r)
        try:
            with os.fdopen(report_r, "rb", buffering=0) as report:
                answer = report.read(1)
                if answer == b"U":
                    try:
                        _write_id_maps(child, launch.fields)
                    except BaseException:
                        os.kill(child, signal.SIGKILL)
                        raise
                    os.write(go_w, b"G")
                    answer = report.read(1)
                rest = report.read()
        finally:
            os.close(go_w)
        if answer == b"P":
            return int(rest)
        if answer == b"E":
            raise _ChildError(json.loads(rest))
        raise OSError("the namespace helper died without a word")

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in self.containers:
                self._exited(pid, status)
            else:
                self.intermediates.discard(pid)

    def _exited(self, pid: int, status: int) -> None:
        sock = self.containers.pop(pid)
        cgroup = self.cgroups.pop(pid, None)
        if cgroup is not None:
            self.finished_cgroups.append(cgroup)
        self._send(sock, Message(ServerKind.EXITED, {"status": status}))
        sock.close()

    @staticmethod
    def _send(sock: socket.socket, message: Message) -> None:
        try:
            sock.setblocking(True)
            send_blocking(sock, message)
        except OSError:
            pass  # the caller stopped listening: nothing to tell

    def shutdown(self) -> NoReturn:
        """The owner is gone: no container outlives it, nor its cgroup."""
        for pid in list(self.containers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        cgroups = [*self.cgroups.values(), *self.finished_cgroups]
        if cgroups:
            for pid in self.cgroups:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)  # a zombie PID 1 would keep its cgroup busy
            from ..cgroups._manager import FsManager

            for cgroup in cgroups:
                if _cgroup_exists(cgroup):
                    # kill_all: whatever escaped PID 1's namespace (a setsid daemon) too
                    with contextlib.suppress(OSError):
                        FsManager(cgroup).destroy()
        os._exit(0)


def _cgroup_exists(cgroup: CgroupPlan) -> bool:
    return any(os.path.isdir(h["directory"]) for h in cgroup["hierarchies"])


class _ChildError(Exception):
    def __init__(self, fields: dict[str, Any]) -> None:
        super().__init__(fields.get("message", "namespace setup failed"))
        self.fields = fields


def main() -> NoReturn:
    """The server process's entry point (``parent/_launcher.py`` starts it).

    A failure to start (out of fds or processes, typically) goes to the owner as
    ``error`` on the control socket, which it reports: never a traceback here.
    """
    control = socket.socket(fileno=int(sys.argv[1]))
    try:
        boot(trio=len(sys.argv) > 2 and sys.argv[2] == "trio")
        server = Server(control)
        server.listen()
    except BaseException as exc:
        fields = error_fields(exc, "launch", operation="start the fork server")
        with contextlib.suppress(BaseException):
            send_blocking(control, Message(ServerKind.ERROR, fields))
        os._exit(1)
    server.serve()


if __name__ == "__main__":
    main()


def launch_here(fields: LaunchRequest, fds: tuple[int, ...]) -> int:
    """runc create: fork PID 1 from the calling process itself; returns its pid.

    No fork server: the init must descend from the ``create`` process (conmon, a
    child subreaper, waits for it) and outlive it.  The caller becomes a child
    subreaper, so that a PID 1 forked behind an intermediate (user or joined
    namespaces) is its child too; once the caller exits, PID 1 goes to the next
    subreaper up.  The caller must be single-threaded (it forks).
    """
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    server = Server(None, detached=True)
    try:
        if fields["backend"] == "trio" and "anyio._backends._trio" not in sys.modules:
            load_trio()
        return server.launch(_Launch(fields, fds))
    finally:
        for intermediate in server.intermediates:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(intermediate, 0)
        os.close(server.own_pidfd)
        os.close(server.own_pid_namespace)
        if server.own_time_namespace_fd >= 0:
            os.close(server.own_time_namespace_fd)
