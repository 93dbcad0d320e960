"""``process.terminal``: a pty of the container's own devpts, bound on /dev/console.

As runc's setupConsole: after the jail and before finalize, the init opens the
container's ``/dev/ptmx`` (resolved inside the root), gets the slave straight
from the master with ``TIOCGPTPEER`` (no ``/dev/pts/N`` path lookup an image
could redirect, CVE-2025-52565), checks both are what they claim to be, and
binds the slave onto ``/dev/console`` fd to fd.  The master crosses the sync
pipe (SCM_RIGHTS) once the parent has answered ``run``, and is closed here.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import socket
import stat
import struct
import termios
from collections.abc import Callable
from typing import Any

from .._errors import StepError
from .._fs._fdmount import bind_onto
from .._fs._path import create_file_in_root, open_in_root
from .._plan import ProcessPlan
from ..sync_pipe import Kind, Message, send_blocking

_TIOCSPTLCK = 0x40045431
_TIOCGPTPEER = 0x5441
_PTMX = os.makedev(5, 2)
_PTY_SLAVE_MAJORS = range(136, 144)  # UNIX98_PTY_SLAVE_MAJOR ... + UNIX98_PTY_MAJOR_COUNT


def _is_char(fd: int, check: Callable[[int], bool]) -> bool:
    info = os.fstat(fd)
    return stat.S_ISCHR(info.st_mode) and bool(check(info.st_rdev))


class Terminal:
    def __init__(self, master: int, slave: int) -> None:
        self.master = master
        self.slave = slave

    @classmethod
    def open(cls, rootfd: int, *, console: bool) -> Terminal:
        """Allocate the pty (after the jail); ``console`` binds it on /dev/console."""
        master = open_in_root(rootfd, "/dev/ptmx", os.O_RDWR | os.O_NOCTTY)
        try:
            if not _is_char(master, lambda rdev: rdev == _PTMX):
                raise StepError(
                    "/dev/ptmx is not the pty multiplexer", path="/dev/ptmx", errno=errno.EPERM
                )
            fcntl.ioctl(master, _TIOCSPTLCK, struct.pack("i", 0))
            slave = fcntl.ioctl(master, _TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        except BaseException:
            os.close(master)
            raise
        terminal = cls(master, slave)
        try:
            if not _is_char(slave, lambda rdev: os.major(rdev) in _PTY_SLAVE_MAJORS):
                raise StepError("the pty's peer is not a pty slave", path="/dev/ptmx")
            if console:
                terminal._bind_console(rootfd)
        except BaseException:
            terminal.close()
            raise
        return terminal

    def _bind_console(self, rootfd: int) -> None:
        target = create_file_in_root(rootfd, "/dev/console", 0o666)
        try:
            if not stat.S_ISREG(os.fstat(target).st_mode):
                raise StepError(
                    "/dev/console is not a regular file to bind the pty on",
                    path="/dev/console",
                    errno=errno.EEXIST,
                )
            bind_onto(self.slave, target, display_path="/dev/console")
        finally:
            os.close(target)

    def hand_over(self, process: ProcessPlan, sync: socket.socket) -> None:
        """Size the pty, give it to the workload's user, send the master to the parent."""
        if process["console_size"] is not None:
            rows, columns = process["console_size"]
            fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        os.fchown(self.slave, process["uid"], -1)  # the workload owns its terminal
        try:
            send_blocking(sync, Message(Kind.PTY, fds=[self.master]))
        finally:
            os.close(self.master)
            self.master = -1

    def close(self) -> None:
        for fd in (self.master, self.slave):
            if fd >= 0:
                os.close(fd)
        self.master = self.slave = -1

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
