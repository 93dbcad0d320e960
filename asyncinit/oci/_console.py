"""``--console-socket``: the pty master handed to the engine as runc hands it.

runc (``setupIO`` then the init's ``setupConsole``) connects to the AF_UNIX
stream socket before the container starts, and sends one message: the master's
name (``/dev/ptmx``, what Go's ``File.Name()`` gives for it) as the body and the
master fd as SCM_RIGHTS.  conmon, containerd's shim and runc's own ``recvtty``
read exactly that.  The container gets the slave as stdio and controlling
terminal (the init does that part: init/_terminal.py).
"""

from __future__ import annotations

import socket

from ._errors import OciError

PTY_NAME = b"/dev/ptmx"


def check_terminal(terminal: bool, console_socket: str, detach: bool) -> None:
    """runc's checkTerminal: a detached tty needs a socket; a socket needs a detached tty."""
    if detach and terminal and not console_socket:
        raise OciError("cannot allocate tty if runc will detach without setting console socket")
    if (not detach or not terminal) and console_socket:
        raise OciError("cannot use console socket if runc will not detach or allocate tty")


def connect(path: str) -> socket.socket:
    """Connected before anything starts, as runc dials it (a bad path fails ``create`` early)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        reason = reason[:1].lower() + reason[1:]  # Go's errno texts are lower case
        raise OciError(f"dial unix {path}: connect: {reason}") from None
    return sock


def send_master(sock: socket.socket, master: int) -> None:
    """One message, ``/dev/ptmx`` with the master as SCM_RIGHTS; the socket is closed after."""
    try:
        socket.send_fds(sock, [PTY_NAME], [master])
    finally:
        sock.close()
