"""The workload's process: limits, credentials, capabilities, fds, signals, execve.

Runs in the init's main thread after the event loop has finished: capabilities
and no_new_privs are per-thread, and only the thread that calls execve (or
posix_spawn) matters.  The order follows runc's finalizeNamespace: bounding set,
keep-caps across the uid switch, then the final capability sets.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import signal
import socket
from typing import NamedTuple, NoReturn

from .._errors import StepError
from .._plan import ProcessPlan
from .._syscalls import with_operation
from .._syscalls._fds import close_range_cloexec
from .._syscalls._process import (
    PR_CAP_AMBIENT,
    PR_CAP_AMBIENT_CLEAR_ALL,
    PR_CAP_AMBIENT_RAISE,
    PR_CAPBSET_DROP,
    PR_SET_KEEPCAPS,
    PR_SET_NO_NEW_PRIVS,
    capset,
    last_cap,
    prctl,
)
from ..sync_pipe import Kind, Message, ProtocolError, receive_blocking, send_blocking
from ._terminal import Terminal

#: First fd of the ones passed on purpose (LISTEN_FDS convention).
FIRST_PASSED_FD = 3


def apply_limits(process: ProcessPlan) -> None:
    """process.rlimits on ourselves; the workload inherits them across execve or posix_spawn.

    Inside a user namespace the parent has set them already (prlimit at ``ready``:
    only it may raise a hard limit there), and this sets the same values again.
    """
    for kind, soft, hard in process["rlimits"]:
        try:
            resource.prlimit(0, kind, (soft, hard))
        except OSError as exc:
            raise with_operation(exc, "prlimit") from None


def before_jail(process: ProcessPlan) -> None:
    """What must read the host's /proc, before the jail (the container may have none)."""
    last_cap()  # cached for apply_credentials
    adj = process["oom_score_adj"]
    if adj is not None:
        # Normally set already by the fork server's intermediate: opening the file for
        # writing would fail in a rootless init (it belongs to the host's root then).
        with open("/proc/self/oom_score_adj") as f:
            current = int(f.read())
        if current != adj:
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write(str(adj))


def apply_credentials(process: ProcessPlan) -> None:
    caps = process["capabilities"]
    if caps is not None:
        for cap in range(last_cap() + 1):
            if not caps["bounding"] & (1 << cap):
                prctl(PR_CAPBSET_DROP, cap)
        prctl(PR_SET_KEEPCAPS, 1)
    _set_groups(process["additional_gids"])
    os.setresgid(process["gid"], process["gid"], process["gid"])
    os.setresuid(process["uid"], process["uid"], process["uid"])
    if caps is not None:
        prctl(PR_SET_KEEPCAPS, 0)
        capset(caps["effective"], caps["permitted"], caps["inheritable"])
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
        for cap in range(last_cap() + 1):
            if caps["ambient"] & (1 << cap):
                # The kernel refuses an ambient cap missing from the inheritable set;
                # runc ignores that too (runc spec's default relies on it).
                with contextlib.suppress(PermissionError):
                    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)
    if process["no_new_privileges"]:
        prctl(PR_SET_NO_NEW_PRIVS, 1)


def _set_groups(gids: list[int]) -> None:
    """setgroups, skipped where the user namespace denies it (rootless, as runc).

    At this point the init holds every capability of its namespace, so EPERM
    means ``/proc/self/setgroups`` says "deny": the groups cannot be changed at
    all, which only matters if the config asked for additional ones.
    """
    try:
        os.setgroups(gids)
    except PermissionError as exc:
        if gids:
            raise StepError(
                "cannot set additional groups: setgroups is denied in this user namespace",
                errno=exc.errno or 0,
            ) from exc


def enter_cwd(cwd: str) -> None:
    """chdir, then make sure the cwd is inside the container (CVE-2024-21626).

    A leaked host directory fd could be named as cwd through /proc/self/fd/N;
    getcwd then reports a path outside our root ("(unreachable)...").
    """
    os.chdir(cwd)
    try:
        real = os.getcwd()
    except FileNotFoundError as exc:
        raise StepError("process.cwd is outside the container", path=cwd) from exc
    if not real.startswith("/"):
        raise StepError("process.cwd is outside the container", path=cwd)


def environment(process: ProcessPlan) -> dict[str, str]:
    env: dict[str, str] = {}
    for entry in process["env"]:
        key, _, value = entry.partition("=")
        env[key] = value
    if process["pass_fds"]:
        env["LISTEN_FDS"] = str(process["pass_fds"])
    if "HOME" not in env:
        env["HOME"] = home_directory(process["uid"])
    return env


def home_directory(uid: int, passwd: str = "/etc/passwd") -> str:
    """The uid's home in the container's passwd file, else "/" (runc sets HOME so too)."""
    try:
        with open(passwd, errors="replace") as entries:
            for line in entries:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 6 and fields[2] == str(uid) and fields[5]:
                    return fields[5]
    except OSError:
        pass
    return "/"


def find_executable(name: str, env: dict[str, str]) -> str:
    """Resolve ``args[0]`` with the container's PATH, as runc does."""
    if "/" in name:
        return name
    # No PATH in process.env: no search, as runc (Go's LookPath with an empty PATH).
    path = env.get("PATH", "")
    for directory in path.split(":") if path else ():
        candidate = f"{directory or '.'}/{name}"
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            return candidate
    # Go's words (engines match them: podman and docker exit 127)
    raise StepError(f'exec: "{name}": executable file not found in $PATH', path=name, errno=2)


def check_executable(path: str) -> None:
    """Go's ``exec.LookPath`` of the resolved ``args[0]``, which runc's init runs before
    it reports ``created``: a missing or non-executable program fails ``create``
    (engines turn the text into exit 127 or 126), not the workload after ``start``."""
    import stat

    # runc's words, which docker's and podman's clients match case-sensitively:
    # "no such file or directory" -> 127, "permission denied" -> 126
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:  # ENOENT, ENOTDIR, ELOOP... as they are
        number = exc.errno or errno.ENOENT
        reason = os.strerror(number).lower()  # Go's texts are strerror's, lower case
        raise StepError(f'exec: "{path}": stat {path}: {reason}', path=path, errno=number) from exc
    if stat.S_ISDIR(mode) or not os.access(path, os.X_OK, effective_ids=True):
        raise StepError(f'exec: "{path}": permission denied', path=path, errno=errno.EACCES)


def default_signals() -> set[signal.Signals]:
    """Signals the interpreter ignores (SIGPIPE, SIGXFSZ; SIGINT in the fork server).

    execve keeps an ignored disposition, so without this reset the workload
    would inherit Python's choices instead of the defaults any runtime gives it.
    """
    reset = set()
    for signum in signal.valid_signals():
        if signum in (signal.SIGKILL, signal.SIGSTOP):
            continue
        with contextlib.suppress(OSError, ValueError):
            if signal.getsignal(signum) is not signal.SIG_DFL:
                reset.add(signal.Signals(signum))
    return reset


class Prepared(NamedTuple):
    """The workload's executable (resolved with its PATH), environment and terminal."""

    executable: str
    env: dict[str, str]
    terminal: Terminal | None
    #: runc create: the O_PATH fd of the exec fifo to wait on before exec; -1: none
    exec_fifo: int = -1
    #: a private procfs for process.apparmorProfile's exec attribute; -1: none
    procfd: int = -1
    #: the noNewPrivileges filter is in force already (a created container's listener)
    seccomp_loaded: bool = False


def prepare_process(
    process: ProcessPlan, sync: socket.socket, terminal: Terminal | None
) -> Prepared:
    """Terminal, credentials, umask and cwd: the process as the workload will have it.

    Must run in the thread that calls execve or posix_spawn (capabilities are per
    thread).  startContainer hooks run after this, with the workload's
    credentials, as runc runs them after finalizeNamespace.
    """
    env = environment(process)
    if terminal is not None:
        terminal.hand_over(process, sync)
    apply_credentials(process)
    os.umask(process["umask"])
    enter_cwd(process["cwd"])
    # As runc: looked up as the workload's user, from its cwd (a relative PATH entry).
    executable = find_executable(process["args"][0], env)
    return Prepared(executable, env, terminal)


def load_seccomp(process: ProcessPlan) -> int | None:
    """linux.seccomp's filter on the calling thread; the listener fd if it has one.

    The workload inherits the filter across execve and posix_spawn (a vfork of
    this thread). Imported here: only containers with a profile pay for it (the
    fork server has it loaded already).
    """
    plan = process["seccomp"]
    if plan is None:
        return None
    from ..seccomp._load import load_plan

    try:
        return load_plan(plan)
    except OSError as exc:
        raise with_operation(exc, "seccomp") from None


def seccomp_before_exec(process: ProcessPlan, sync: socket.socket | None) -> None:
    """With noNewPrivileges, the filter as late as possible: right before the exec (runc).

    A listener fd is handed to the parent as runc's procSeccomp does: we send its
    number, the parent copies it with pidfd_getfd, and answers once it is done.
    """
    if not process["no_new_privileges"]:
        return  # loaded already, before the credentials changed (Lifecycle.finish_process)
    listener = load_seccomp(process)
    if listener is None:
        return
    if sync is None:  # a created container: no parent left to take the listener
        os.close(listener)
        raise ProtocolError("linux.seccomp.listenerPath: not supported with create/start yet")
    try:
        send_blocking(sync, Message(Kind.SECCOMP, {"fd": listener}))
        reply = receive_blocking(sync)
        if reply.kind != Kind.SECCOMP_DONE:
            raise ProtocolError(f"expected {Kind.SECCOMP_DONE!r}, got {reply.kind!r}")
    finally:
        os.close(listener)


def before_exec(process: ProcessPlan, prepared: Prepared, sync: socket.socket | None) -> None:
    """The last steps before execve or posix_spawn, in runc's order: the AppArmor
    profile for the exec, seccomp (with noNewPrivileges), the personality.

    The AppArmor attribute is written here, after the startContainer hooks (runc
    writes it before its sysctls: its hooks then enter the profile too): hooks are
    forked from a worker thread on trio, which would not inherit it.
    """
    profile = process["apparmor_profile"]
    if profile is not None:
        from ._attributes import apparmor_exec

        try:
            apparmor_exec(prepared.procfd, profile)
        finally:
            os.close(prepared.procfd)
    if not prepared.seccomp_loaded:
        seccomp_before_exec(process, sync)
    if process["personality"] is not None:
        from ._attributes import set_personality

        set_personality(process)


def close_unpassed_fds(process: ProcessPlan) -> None:
    """Nothing but stdio and the passed fds reaches the workload; the sync socket closes.

    One close_range call where it is allowed; a seccomp profile older than the call
    (loaded already when noNewPrivileges is off, as runc loads it) answers ENOSYS or
    EPERM: then each open fd is marked, as runc's CloseExecFrom does.
    """
    first = FIRST_PASSED_FD + process["pass_fds"]
    try:
        close_range_cloexec(first)
    except OSError as exc:
        if exc.errno not in (errno.ENOSYS, errno.EPERM):
            raise
        mark_cloexec_from(first)


def mark_cloexec_from(first: int) -> None:
    """Set FD_CLOEXEC on every open fd from ``first`` up (/proc/self/fd, else up to the limit)."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:  # no procfs in the container yet
        fds = list(range(first, resource.getrlimit(resource.RLIMIT_NOFILE)[0]))
    for fd in fds:
        if fd >= first:
            with contextlib.suppress(OSError):  # the listing's own fd, closed by now
                os.set_inheritable(fd, False)


def exec_workload(process: ProcessPlan, prepared: Prepared, sync: socket.socket | None) -> NoReturn:
    """Become the workload (exec mode); raises on failure, the caller reports it."""
    env = prepared.env
    if "LISTEN_FDS" in env:
        env["LISTEN_PID"] = str(os.getpid())
    if prepared.terminal is not None:
        prepared.terminal.become_controlling()
    for signum in default_signals():
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, ())
    close_unpassed_fds(process)
    before_exec(process, prepared, sync)
    if sync is not None:  # None: a created container's parent is long gone
        send_blocking(sync, Message(Kind.EXEC))
    try:
        os.execve(prepared.executable, process["args"], env)
    except OSError as exc:
        raise with_operation(exc, "execve") from None
