"""Recursive mount attributes (``rro``, ``rnosuid``, ``rnoexec``, ``ratime``...).

``ro`` on a bind mount changes only the top mount: an ``rbind`` of a tree with
submounts leaves every submount writable.  The ``r*`` options go through
``mount_setattr(2)`` with ``AT_RECURSIVE``, which changes the whole tree at once.
"""

from __future__ import annotations

import os

from .._fs._path import open_in_root
from .._plan import MountPlan
from .._syscalls._mount import AT_EMPTY_PATH, AT_RECURSIVE, mount_setattr


def set_rec_attr(rootfd: int, m: MountPlan) -> None:
    """runc's setRecAttr: apply ``attr_set``/``attr_clr`` to the mount tree at the destination."""
    if not (m["attr_set"] or m["attr_clr"]):
        return
    fd = open_in_root(rootfd, m["destination"])
    try:
        mount_setattr(
            fd,
            "",
            AT_EMPTY_PATH | AT_RECURSIVE,
            m["attr_set"],
            m["attr_clr"],
            display_path=m["destination"],
        )
    finally:
        os.close(fd)
