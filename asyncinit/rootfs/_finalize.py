"""The steps after the jail: read-only remounts, names, the workload's cwd.

Sysctls are in ``_sysctl``, read-only and masked paths in ``_masks``.
"""

from __future__ import annotations

import errno
import os
import socket

from .._errors import StepError
from .._fs._path import mkdir_all_in_root
from .._plan import InitPlan
from .._syscalls import MS_RDONLY, setdomainname
from ._remount import add_readonly_flag, remount_readonly


def finalize_rootfs(rootfd: int, plan: InitPlan) -> None:
    """runc's finalizeRootfs: deferred read-only remounts, the read-only root, the umask."""
    for m in plan["mounts"]:
        if m["flags"] & MS_RDONLY and (m["type"] == "tmpfs" or m["destination"] == "/dev"):
            remount_readonly(rootfd, m["destination"])
    if plan["readonly_root"]:
        add_readonly_flag("/", display_path="/")
    os.umask(plan["process"]["umask"])  # 0022 unless process.user.umask says otherwise


def set_names(plan: InitPlan) -> None:
    if plan["hostname"] is not None:
        socket.sethostname(plan["hostname"])
    if plan["domainname"] is not None:
        setdomainname(plan["domainname"])


def make_cwd(rootfd: int, cwd: str) -> None:
    """Create the workload's cwd if missing (runc does, inside the jail)."""
    try:
        os.close(mkdir_all_in_root(rootfd, cwd))
    except NotADirectoryError as exc:
        raise StepError("process.cwd is not a directory", path=cwd, errno=errno.ENOTDIR) from exc
