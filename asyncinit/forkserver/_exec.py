"""``exec``: fork the child that joins a running container, and see it through to execve.

Runs in a single-threaded process (``asyncinit exec`` itself, or the launcher
``Container.exec`` starts with :func:`main`), so the exec'd process is this
process's own child: conmon, a child subreaper, ``waitpid``s the pid it reads
from ``--pid-file``, and an engine's exit code is this child's.

The sequence (runc's setnsProcess): open the init's namespace files (the init
checked alive after, so a recycled pid is never joined), turn non-dumpable,
``setns`` our pid namespace *for children* only and fork: the child is born in
the container's pid namespace and joins the rest itself (init/_exec.py); on
``ready`` the runtime writes the child's pid into each of the init's cgroups
(v1 and v2) and sets its rlimits and oom_score_adj from outside (a child in a
user namespace could not raise a hard limit), answers ``run``; the child sends
its pty master if it has one, then ``exec`` and, once execve succeeded, end of
file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import resource
import select
import signal
import socket
import sys
from collections.abc import Sequence
from typing import NoReturn

from .._errors import InitError, error_fields
from .._plan import ExecPlan
from .._syscalls import with_operation
from .._syscalls._process import CLONE_NEWPID, PR_SET_DUMPABLE, prctl, setns
from ..init._exec import run_exec_child
from ..seccomp import _load as _preloaded_seccomp  # noqa: F401  (the child must import nothing)
from ..sync_pipe import (
    Kind,
    Message,
    PeerGone,
    ProtocolError,
    receive_blocking,
    send_blocking,
    socketpair,
)


class ExecChild:
    """The forked child: its pid, our end of its sync socket, its pty master once sent."""

    def __init__(self, pid: int, sync: socket.socket) -> None:
        self.pid = pid
        self.sync = sync
        self.pty_master: int | None = None

    def kill(self) -> None:
        """Kill and reap a child that failed before its execve."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        self.sync.close()


def _open_namespaces(plan: ExecPlan) -> list[int]:
    """The init's namespace fds, then proof that the init is still the same process."""
    pid = plan["init_pid"]
    pidfd = os.pidfd_open(pid)
    fds: list[int] = []
    try:
        for name, _ in plan["join"]:
            fds.append(os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC))
        if _start_time(pid) != plan["init_start"] or select.select([pidfd], [], [], 0)[0]:
            raise ProcessLookupError(3, "the container's init is gone")
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    finally:
        os.close(pidfd)
    return fds


def _start_time(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat[stat.rindex(b")") + 2 :].split()[19])


def _keep_only(keep: Sequence[int]) -> None:
    """Close every fd but stdio, the preserved ones (3..) and ``keep``."""
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 20)


def _child(plan: ExecPlan, sync: int, join_fds: list[int]) -> NoReturn:
    try:
        above = 3 + plan["process"]["pass_fds"]
        sync = fcntl.fcntl(sync, fcntl.F_DUPFD_CLOEXEC, above)
        join_fds = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, above) for fd in join_fds]
        _keep_only([*range(3, above), sync, *join_fds])
        run_exec_child(plan, socket.socket(fileno=sync), join_fds)
    except BaseException:
        os._exit(127)


def fork_exec(plan: ExecPlan) -> ExecChild:
    """Fork the child into the container's pid namespace; the caller must be single-threaded.

    The child inherits our fds 0-2 and 3 .. 3 + pass_fds (runc's ``--preserve-fds``).
    """
    join_fds = _open_namespaces(plan)
    names = [name for name, _ in plan["join"]]
    own_pid_ns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    ours, theirs = socketpair()
    try:
        # Before the child exists in the container's pid namespace: it inherits this.
        prctl(PR_SET_DUMPABLE, 0)
        if "pid" in names:
            setns(join_fds[names.index("pid")], CLONE_NEWPID)
        try:
            pid = os.fork()
            if pid == 0:
                ours.close()
                _child(plan, theirs.fileno(), join_fds)
        finally:
            if "pid" in names:
                setns(own_pid_ns, CLONE_NEWPID)
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
        os.close(own_pid_ns)
        for fd in join_fds:
            os.close(fd)
    return ExecChild(pid, ours)


def enter_cgroups(plan: ExecPlan, pid: int) -> None:
    """The child into each of the init's cgroups, process.execCPUAffinity's ``final``
    CPUs (runc 1.2: right after the cgroups, whose cpuset may have reset them), its
    rlimits and oom_score_adj (runc's order)."""
    for directory in plan["cgroups"]:
        with open(os.path.join(directory, "cgroup.procs"), "w") as procs:
            procs.write(str(pid))
    process = plan["process"]
    affinity = process["exec_cpu_affinity"]
    if affinity is not None and affinity["final"] is not None:
        try:
            os.sched_setaffinity(pid, affinity["final"])
        except OSError as exc:
            fields = error_fields(
                exc, "process", "process.execCPUAffinity.final", operation="sched_setaffinity"
            )
            raise InitError.from_fields(fields) from None
    for kind, soft, hard in process["rlimits"]:
        try:
            resource.prlimit(pid, kind, (soft, hard))
        except OSError as exc:
            raise with_operation(exc, "prlimit") from None
    if process["oom_score_adj"] is not None:
        with open(f"/proc/{pid}/oom_score_adj", "w") as f:
            f.write(str(process["oom_score_adj"]))


def drive(child: ExecChild, plan: ExecPlan) -> None:
    """From ``ready`` to the child's execve; raises the child's failure as InitError.

    The pty master (``process.terminal``) is kept on ``child.pty_master``.
    """
    execing = False
    while True:
        try:
            message = receive_blocking(child.sync)
        except PeerGone:
            if execing:
                return  # execve closed the sync socket: the process runs
            raise
        if message.kind == Kind.ERROR:
            raise InitError.from_fields(message.fields)
        if message.kind == Kind.READY and not execing:
            enter_cgroups(plan, child.pid)
            send_blocking(child.sync, Message(Kind.RUN))
        elif message.kind == Kind.PTY and len(message.fds) == 1:
            child.pty_master = message.fds[0]
        elif message.kind == Kind.EXEC:
            execing = True
        else:
            raise ProtocolError(f"unexpected {message.kind!r} from the exec child")


def start(plan: ExecPlan) -> ExecChild:
    """fork_exec + drive; on any failure the child is killed and reaped."""
    child = fork_exec(plan)
    try:
        drive(child, plan)
    except BaseException:
        if child.pty_master is not None:
            os.close(child.pty_master)
        child.kill()
        raise
    child.sync.close()
    return child


_FORWARDED = tuple(
    s
    for s in signal.Signals
    if s not in (signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD, signal.SIGWINCH, signal.SIGURG)
)


def forward_signals(pid: int) -> None:
    """runc's signal proxy: every signal we get goes to the process."""

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    for signum in _FORWARDED:
        with contextlib.suppress(OSError, ValueError):
            signal.signal(signum, forward)


def wait_exit_code(pid: int) -> int:
    """The process's exit code, 128 + N for a death by signal N (runc's)."""
    _, status = os.waitpid(pid, 0)
    return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _passed_in_place(fds: Sequence[int], sock: socket.socket) -> socket.socket:
    """The received fds at 3, 4, ... (inheritable), where :func:`fork_exec` passes them
    from; the socket moved above them. Returns the socket (maybe a new object)."""
    top = 3 + len(fds)
    moved = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, top) for fd in fds]
    for fd in fds:
        os.close(fd)
    if sock.fileno() < top:
        above = fcntl.fcntl(sock.fileno(), fcntl.F_DUPFD_CLOEXEC, top)
        sock.close()
        sock = socket.socket(fileno=above)
    for target, fd in enumerate(moved, 3):
        os.dup2(fd, target)
        os.close(fd)
    return sock


def main() -> NoReturn:
    """``Container.exec``'s launcher: ``plan`` (its fds: the ones to pass) from the
    sync socket on fd argv[1]; back: ``pty`` (the master) if any, then ``workload``
    (the pid) or ``error``.

    Exits with the process's exit code (255 when it never started), as ``runc exec``.
    """
    sock = socket.socket(fileno=int(sys.argv[1]))
    try:
        message = receive_blocking(sock)
        if message.kind != Kind.PLAN:
            raise ProtocolError(f"expected {Kind.PLAN!r}, got {message.kind!r}")
        plan: ExecPlan = message.fields["plan"]
        sock = _passed_in_place(message.fds, sock)
        child = start(plan)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            send_blocking(sock, Message(Kind.ERROR, error_fields(exc, "exec")))
        os._exit(255)
    forward_signals(child.pid)
    if child.pty_master is not None:
        send_blocking(sock, Message(Kind.PTY, fds=[child.pty_master]))
        os.close(child.pty_master)
    send_blocking(sock, Message(Kind.WORKLOAD, {"pid": child.pid}))
    sock.close()
    os._exit(wait_exit_code(child.pid))
