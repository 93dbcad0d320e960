"""Filesystem parameters of the mount types whose full list is known.

An option that is neither a mount flag (``_mount_options``) nor a parameter of
its filesystem would reach the kernel as data and fail there, inside the init,
as a bare EINVAL; refusing it here names the option and its JSON path before
anything is mounted.  Types not listed (overlay, fuse, nfs...) take any data.
The lists are the kernel's (6.x) ``fs_parameter_spec`` tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from ._mount_options import KNOWN_MOUNT_OPTIONS

#: LSM parameters every filesystem accepts.
_LSM: Final = frozenset({"context", "fscontext", "defcontext", "rootcontext", "seclabel"})

FS_PARAMETERS: Final[Mapping[str, frozenset[str]]] = {
    "tmpfs": frozenset(
        {
            "size",
            "nr_blocks",
            "nr_inodes",
            "mode",
            "uid",
            "gid",
            "huge",
            "mpol",
            "inode32",
            "inode64",
            "noswap",
            "quota",
            "usrquota",
            "grpquota",
            "usrquota_block_hardlimit",
            "usrquota_inode_hardlimit",
            "grpquota_block_hardlimit",
            "grpquota_inode_hardlimit",
            "casefold",
            "strict_encoding",
        }
    ),
    "devpts": frozenset({"uid", "gid", "mode", "ptmxmode", "newinstance", "max"}),
    "proc": frozenset({"hidepid", "gid", "subset", "pidns"}),
    "sysfs": frozenset(),
    "mqueue": frozenset(),
}


def unknown_options(fstype: str | None, options: tuple[str, ...]) -> list[tuple[int, str]]:
    """(index, option) of each option that ``fstype`` would reject as data."""
    known = FS_PARAMETERS.get(fstype or "")
    if known is None:
        return []
    return [
        (index, option)
        for index, option in enumerate(options)
        if option not in KNOWN_MOUNT_OPTIONS
        and option.split("=", 1)[0] not in known
        and option.split("=", 1)[0] not in _LSM
    ]
