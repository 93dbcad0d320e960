"""Idmapped bind mounts, the init's half: attach the mount the parent prepared.

An idmapped mount shows the files of its source with their owners translated
through a user namespace (``MOUNT_ATTR_IDMAP``).  The kernel lets only a caller
privileged over the *source filesystem's* user namespace set that attribute:
for a host directory that is the host's, which an init inside a user namespace
never is.  So the parent, on the host, builds the detached mount (``open_tree``
+ ``mount_setattr``, see ``parent/_mount_sources.py``) and hands its fd over the
sync pipe (runc's procMountPlease / procMountFd); the init only moves it onto
the target it opened inside the rootfs.
"""

from __future__ import annotations

from .._syscalls import MOVE_MOUNT_F_EMPTY_PATH, MOVE_MOUNT_T_EMPTY_PATH, move_mount


def attach_mount(mount_fd: int, target: int, destination: str) -> None:
    """Move the detached mount ``mount_fd`` onto the O_PATH fd ``target``."""
    try:
        move_mount(mount_fd, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH)
    except OSError as exc:
        exc.filename = destination
        raise
