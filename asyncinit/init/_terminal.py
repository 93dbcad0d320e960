"""``process.terminal``: a pty from the container's own devpts, its master sent to the parent.

The pty is allocated after the jail, so ``/dev/ptmx`` is the container's
``pts/ptmx`` and the slave lives in the container's devpts instance, as runc
does.  The master crosses the sync pipe (SCM_RIGHTS) and is closed here.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import struct
import termios
from typing import Any

from .._plan import ProcessPlan
from ..sync_pipe import Kind, Message, send_blocking


class Terminal:
    def __init__(self, slave: int) -> None:
        self.slave = slave

    @classmethod
    def open(cls, process: ProcessPlan, sync: socket.socket) -> Terminal:
        master, slave = os.openpty()
        try:
            if process["console_size"] is not None:
                rows, columns = process["console_size"]
                fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
            os.fchown(slave, process["uid"], -1)  # the workload owns its terminal
            send_blocking(sync, Message(Kind.PTY, fds=[master]))
        except BaseException:
            os.close(slave)
            raise
        finally:
            os.close(master)
        return cls(slave)

    def become_controlling(self) -> None:
        """Exec mode: this process starts a session whose controlling terminal is the pty."""
        os.setsid()
        fcntl.ioctl(self.slave, termios.TIOCSCTTY, 0)
        for fd in (0, 1, 2):
            os.dup2(self.slave, fd)
        os.close(self.slave)

    def spawn_actions(self) -> list[tuple[Any, ...]]:
        """posix_spawn file actions putting the pty on the workload's stdio."""
        return [(os.POSIX_SPAWN_DUP2, self.slave, fd) for fd in (0, 1, 2)]

    def hand_to(self, pgid: int) -> None:
        """Supervise mode: the init owns the session, the workload's group is in front."""
        previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
        try:
            os.tcsetpgrp(self.slave, pgid)
        finally:
            signal.signal(signal.SIGTTOU, previous)
            os.close(self.slave)

    def take_session(self) -> None:
        os.setsid()
        fcntl.ioctl(self.slave, termios.TIOCSCTTY, 0)
