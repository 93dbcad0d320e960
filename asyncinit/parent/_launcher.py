"""The caller's side of the fork server: start it once, send it launch requests.

One server per calling process, started lazily and shared by every event loop
and thread of that process.  A request is a single SEQPACKET message, which the
kernel delivers atomically, so concurrent spawns need no lock to send; each gets
its answers on a status socket of its own.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence

from .._commands import signal_name
from .._errors import ContainerStartError, InitError, failing_as
from .._exeseal import exec_path, sealed_interpreter
from ..forkserver._wire import LaunchRequest, ServerKind
from ..sync_pipe import Message, ProtocolError, receive_raw, send_blocking, socketpair

#: How long lost() waits for the server's report of a request it could not take.
_REPORT_WAIT_MS = 1000
_lock = threading.Lock()
_server: ForkServer | None = None


class ForkServer:
    """A running fork server and the control socket that keeps it alive."""

    def __init__(self, backend: str = "asyncio") -> None:
        with failing_as("launch", "start the fork server"):
            ours, theirs = socketpair()
            try:
                ours, theirs = _above_stdio(ours), _above_stdio(theirs)
                self.process = _start(theirs.fileno(), backend)
            except BaseException:
                ours.close()
                raise
            finally:
                theirs.close()
        self.control = ours

    def request(self, fields: LaunchRequest, fds: Sequence[int]) -> None:
        send_blocking(self.control, Message(ServerKind.LAUNCH, fields, fds))

    def alive(self) -> bool:
        return self.process.poll() is None

    def lost(self) -> Exception:
        """Why a request went unanswered: what the server reported, or how it ended.

        Blocking (up to ~1.5 s): call it from a thread.  A server that fails to start
        (out of fds or processes...) sends an ``error`` on the control socket before it
        exits, where it stays queued; one whose fd table could not take a request's
        fds sends it once recvmsg returned, a moment after the kernel closed the
        request's status socket, which is how the caller learnt something was wrong.
        """
        message = None
        # ValueError: closed by a restart; PeerGone: it died without a word.
        with contextlib.suppress(OSError, ValueError, ProtocolError):
            poller = select.poll()
            poller.register(self.control, select.POLLIN)
            if poller.poll(_REPORT_WAIT_MS):  # a report, or end of file: it exited
                self.control.setblocking(False)
                message = receive_raw(self.control)
        if message is not None and message.kind == ServerKind.ERROR:
            return InitError.from_fields(message.fields)
        try:  # its sockets close as it exits: it is a zombie by now, or about to be
            status = self.process.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            return ContainerStartError("the fork server dropped the launch request")
        how = f"was killed by {signal_name(-status)}" if status < 0 else f"exited ({status})"
        return ContainerStartError(f"the fork server {how} before starting the container")

    def close(self) -> None:
        """Closing the control socket tells the server to kill its containers and exit."""
        self.control.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _above_stdio(sock: socket.socket) -> socket.socket:
    """``sock`` on an fd above 2: a caller with stdio closed must not hand the control
    socket to a container as its stdin (``spawn(stdin=None)`` passes fd 0), nor the
    server's end to it as a stdio fd it replaces."""
    if sock.fileno() > 2:
        return sock
    try:
        return socket.socket(fileno=fcntl.fcntl(sock.fileno(), fcntl.F_DUPFD_CLOEXEC, 3))
    finally:
        sock.close()


def _start(control_fd: int, backend: str) -> subprocess.Popen[bytes]:
    # -S: the server gets our import path as it is, without re-running site's .pth
    # files (tens of ms on some machines); our package's own parent goes first.
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.pathsep.join([package_parent, *(p for p in sys.path if p)])
    # A Ctrl-C to the terminal's process group reaches the server too, and its owner
    # decides: SIGINT is blocked from before the fork (the mask survives fork and exec;
    # only this thread's changes) to the server's first line, which ignores it.  No
    # KeyboardInterrupt can hit the server's interpreter while it starts.
    code = (
        "import _signal; _signal.signal(2, _signal.SIG_IGN); "
        "_signal.pthread_sigmask(_signal.SIG_UNBLOCK, [2]); "
        "import sys, posix; posix.close(int(sys.argv.pop())); "
        "sys.path[:] = sys.argv.pop(1).split(sys.argv.pop(1)); "
        "from asyncinit.forkserver._server import main; main()"
    )
    # CVE-2019-5736: the server, and so every PID 1 it forks, runs from a sealed
    # interpreter (_exeseal.py); it closes its inherited fd of it first (the last argument).
    sealed = sealed_interpreter()
    argv = [sys.executable, "-I", "-S", "-c", code, path, os.pathsep, str(control_fd), backend]
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT])
    try:
        return subprocess.Popen(
            [*argv, str(sealed)],
            executable=exec_path(sealed),
            pass_fds=[control_fd, sealed],
            stdin=subprocess.DEVNULL,
            close_fds=True,
        )
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def fork_server(backend: str = "asyncio") -> ForkServer:
    """The process-wide fork server, started on first use and restarted if it died."""
    global _server
    with _lock:
        if _server is None or not _server.alive():
            if _server is not None:
                _server.control.close()  # the dead server's end: nothing reads it any more
            _server = ForkServer(backend)
        return _server


def launch(fields: LaunchRequest, fds: Sequence[int]) -> ForkServer:
    """Send a launch request; the server it went to (to ask why, should it vanish)."""
    backend = fields["backend"]
    server = fork_server(backend)
    try:
        server.request(fields, fds)
    except (BrokenPipeError, ConnectionResetError):
        # The server died since we looked: one restart, then give up with its reason.
        server = fork_server(backend)
        try:
            server.request(fields, fds)
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise server.lost() from exc
    return server


@atexit.register
def _shutdown() -> None:
    global _server
    if _server is not None:
        _server.close()
        _server = None
