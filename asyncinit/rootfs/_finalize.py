"""The steps after the jail: read-only remounts, names, the workload's cwd.

Sysctls are in ``_sysctl``, read-only and masked paths in ``_masks``.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Sequence

from .._errors import StepError
from .._fs._path import mkdir_all_in_root
from .._plan import MountPlan
from .._syscalls._mount import MS_RDONLY
from .._syscalls._process import setdomainname
from ._remount import add_readonly_flag, remount_readonly


def finalize_rootfs(
    rootfd: int, mounts: Sequence[MountPlan], *, readonly_root: bool, umask: int
) -> None:
    """runc's finalizeRootfs: deferred read-only remounts, the read-only root, the umask."""
    for m in mounts:
        if m["flags"] & MS_RDONLY and (m["type"] == "tmpfs" or m["destination"] == "/dev"):
            remount_readonly(rootfd, m["destination"])
    if readonly_root:
        add_readonly_flag("/", display_path="/")
    os.umask(umask)  # 0022 unless process.user.umask says otherwise


def set_names(hostname: str | None, domainname: str | None) -> None:
    """The uts namespace's host and domain names, when the config sets them."""
    if hostname is not None:
        socket.sethostname(hostname)
    if domainname is not None:
        setdomainname(domainname)


def make_cwd(rootfd: int, cwd: str) -> None:
    """Create the workload's cwd if missing (runc does, inside the jail)."""
    try:
        os.close(mkdir_all_in_root(rootfd, cwd))
    except NotADirectoryError as exc:
        raise StepError("process.cwd is not a directory", path=cwd, errno=errno.ENOTDIR) from exc
