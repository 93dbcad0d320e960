"""Standard fds for a command started with some of them closed."""

from __future__ import annotations

import os
import sys


def ensure_stdio() -> None:
    """Fds 0-2 open (the null device for a closed one), as the Go runtime makes sure for runc.

    A closed one would be taken by the next fd we open, the fork server's control
    socket say, and handed to the container as its stdin, stdout or stderr.  Python
    left ``sys.stdout`` (...) None for it: what we print goes to the null device.
    """
    for fd, name in enumerate(("stdin", "stdout", "stderr")):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)  # the lowest free fd: this one
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
        if getattr(sys, name) is None:
            setattr(sys, name, open(fd, "r" if fd == 0 else "w", closefd=False))  # noqa: SIM115
