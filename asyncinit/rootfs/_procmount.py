"""checkProcMount: what may be mounted on and under the container's /proc.

A mount over a file of /proc hides what the kernel says about the container (or
lies about it: a bind of a writable file over /proc/sys/kernel/core_pattern
would hand the container the host's core dump helper).  runc allows procfs on
/proc itself and, under it, only the files lxcfs emulates.
"""

from __future__ import annotations

import errno
import os

from .._errors import StepError
from .._fs._procfs import is_procfs_root
from .._rules import proc_mount_problem


def check_proc_mount(
    destination: str, resolved: str, fstype: str, *, bind: bool, source: str = ""
) -> None:
    """Refuse the mount unless both its configured and its resolved target are allowed."""
    for path in dict.fromkeys((destination, resolved)):
        problem = proc_mount_problem(path, fstype, bind=bind)
        if problem is None and path == "/proc" and bind:
            problem = _bind_source_problem(source)
        if problem is not None:
            raise StepError(problem, path=path, errno=errno.EPERM)


def _bind_source_problem(source: str) -> str | None:
    try:
        fd = os.open(source, os.O_PATH | os.O_CLOEXEC)
    except OSError as exc:
        return f"cannot check the bind source {source}: {exc.strerror}"
    try:
        if is_procfs_root(fd):
            return None
    finally:
        os.close(fd)
    return "only a procfs root may be bind-mounted on /proc"
