"""runc's reOpenDevNull: stdio on the host's /dev/null moves to the container's own."""

from __future__ import annotations

import os

from .._fs._devnull import is_dev_null, open_dev_null


def reopen_dev_null(rootfd: int) -> None:
    """After the jail: stdio on the host's /dev/null moves to the container's own.

    runc's reOpenDevNull, with the container's node verified first, so that a
    swapped /dev/null cannot hand the workload some other file as its stdio.
    """
    container_null: int | None = None
    try:
        for fd in (0, 1, 2):
            try:
                info = os.fstat(fd)
            except OSError:
                continue
            if not is_dev_null(info):
                continue
            if container_null is None:
                container_null = open_dev_null(rootfd, os.O_RDWR)
            os.dup2(container_null, fd)
    finally:
        if container_null is not None:
            os.close(container_null)
