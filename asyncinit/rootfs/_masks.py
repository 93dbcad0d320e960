"""linux.readonlyPaths and linux.maskedPaths (runc's readonlyPath and maskPaths).

Both run after the jail, so every path resolves inside the container; each
target is opened once (``open_in_root``: symlinks stay inside the rootfs, magic
links are refused) and the mount lands on that fd.  Only a missing target is
skipped, as runc does: any other failure leaves a path unprotected, so it stops
the container.
"""

from __future__ import annotations

import os
import posixpath
import stat

from .._fs._devnull import open_dev_null
from .._fs._fdmount import bind_onto, new_mask_tmpfs
from .._fs._path import open_in_root
from .._syscalls._mount import attach_mount


def readonly_paths(rootfd: int, paths: list[str]) -> None:
    """Bind each path onto itself, read-only at the top, keeping nosuid/nodev/noexec."""
    for path in paths:
        try:
            target = open_in_root(rootfd, path)
        except FileNotFoundError:
            continue
        try:
            # The clone is taken from, and attached onto, the same pinned fd.
            bind_onto(target, target, recursive=True, readonly=True, display_path=path)
        finally:
            os.close(target)


def mask_paths(rootfd: int, paths: list[str]) -> None:
    """Hide files behind the verified /dev/null and directories behind one empty tmpfs."""
    dev_null: int | None = None
    dir_mask: int | None = None  # the mask tmpfs, attached on the first directory
    seen: set[str] = set()
    try:
        for path in paths:
            clean = posixpath.normpath(path)
            if clean in seen:
                continue
            seen.add(clean)
            try:
                target = open_in_root(rootfd, path)
            except FileNotFoundError:
                continue
            try:
                if stat.S_ISDIR(os.fstat(target).st_mode):
                    if dir_mask is None:
                        dir_mask = new_mask_tmpfs()
                        attach_mount(dir_mask, target, display_path=path)
                    else:
                        # One tmpfs serves every directory (runc #5275): fewer superblocks.
                        bind_onto(dir_mask, target, display_path=path)
                else:
                    if dev_null is None:
                        # CVE-2025-31133: never bind whatever the image calls /dev/null.
                        dev_null = open_dev_null(rootfd)
                    bind_onto(dev_null, target, display_path=path)
            finally:
                os.close(target)
    finally:
        for fd in (dev_null, dir_mask):
            if fd is not None:
                os.close(fd)
