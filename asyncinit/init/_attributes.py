"""Per-process attributes set on the thread that execs: AppArmor, scheduler, I/O
priority, personality, CPU affinity.

Each is a plain function of its compiled value (``ProcessPlan``), so the
container's init and a process exec'd into a running container use the same
code.  All act on the calling thread (the AppArmor exec attribute, the policy,
the I/O priority are per task): call them in the thread that then execs or
posix_spawns, which the workload inherits them from.  Imported only when a
config sets one of these fields (the init's start path stays as it was).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator

from .._errors import StepError
from .._fs._procfs import open_proc_file
from .._plan import ProcessPlan
from .._syscalls._process import ioprio_set, personality, sched_setattr


def apparmor_exec(procfd: int, profile: str) -> None:
    """runc's ``apparmor.ApplyProfile``: the next execve of this thread enters ``profile``.

    Writes ``exec PROFILE`` to our ``attr/apparmor/exec`` (``attr/exec`` before
    Linux 5.8), as libapparmor's aa_change_onexec.  ``procfd`` is a private procfs
    (``_fs._procfs.open_private_procfs``): this thread's entry is found through its
    ``thread-self`` link and opened with no symlink or mount crossing, so nothing
    mounted in the container can redirect the write.  Without AppArmor the kernel
    refuses it (EINVAL): runc fails the same way.
    """
    thread = os.readlink("thread-self", dir_fd=procfd)  # "PID/task/TID" in that procfs
    path = f"{thread}/attr/apparmor/exec"
    try:
        fd = open_proc_file(procfd, path, os.O_WRONLY)
    except FileNotFoundError:
        path = f"{thread}/attr/exec"  # the pre-5.8 interface, shared by every LSM
        fd = open_proc_file(procfd, path, os.O_WRONLY)
    try:
        os.write(fd, f"exec {profile}".encode())
    except OSError as exc:
        message = f"cannot apply AppArmor profile {profile!r}: write: {os.strerror(exc.errno or 0)}"
        if exc.errno == errno.EINVAL and path.endswith("/attr/exec"):
            message += " (AppArmor is not enabled on this host)"
        error = StepError(
            message,
            path="/proc/thread-self/" + path.split("/", 3)[3],
            errno=exc.errno or 0,
            field="process.apparmorProfile",
        )
        error.operation = "write"  # type: ignore[attr-defined]
        raise error from exc
    finally:
        os.close(fd)


@contextlib.contextmanager
def _carrying_out(field: str, operation: str) -> Iterator[None]:
    """An OSError in the block becomes a StepError naming the config field it carried out."""
    try:
        yield
    except OSError as exc:
        message = f"{operation}: {os.strerror(exc.errno or 0)}"
        error = StepError(message, errno=exc.errno or 0, field=field)
        error.operation = operation  # type: ignore[attr-defined]
        raise error from exc


def set_scheduler(process: ProcessPlan) -> None:
    """process.scheduler with sched_setattr (runc's setupScheduler); no-op without one."""
    s = process["scheduler"]
    if s is not None:
        with _carrying_out("process.scheduler", "sched_setattr"):
            sched_setattr(
                s["policy"], s["flags"], s["nice"], s["priority"],
                s["runtime"], s["deadline"], s["period"],
            )  # fmt: skip


def set_io_priority(process: ProcessPlan) -> None:
    """process.ioPriority with ioprio_set (runc's setupIOPriority); no-op without one."""
    value = process["io_priority"]
    if value is not None:
        with _carrying_out("process.ioPriority", "ioprio_set"):
            ioprio_set(value)


def set_personality(process: ProcessPlan) -> None:
    """linux.personality's domain (runc's setupPersonality); no-op without one."""
    persona = process["personality"]
    if persona is not None:
        with _carrying_out("linux.personality", "personality"):
            personality(persona)


def set_cpu_affinity(cpus: list[int] | None, field: str = "process.execCPUAffinity") -> None:
    """One list of process.execCPUAffinity (``initial`` or ``final``); None: left alone."""
    if cpus is not None:
        with _carrying_out(field, "sched_setaffinity"):
            os.sched_setaffinity(0, cpus)
