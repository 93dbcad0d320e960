"""The caller's side of the fork server: start it once, send it launch requests.

One server per calling process, started lazily and shared by every event loop
and thread of that process.  A request is a single SEQPACKET message, which the
kernel delivers atomically, so concurrent spawns need no lock to send; each gets
its answers on a status socket of its own.
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence

from ..forkserver._wire import LaunchRequest, ServerKind
from ..sync_pipe import Message, send_blocking

_lock = threading.Lock()
_server: ForkServer | None = None


class ForkServer:
    """A running fork server and the control socket that keeps it alive."""

    def __init__(self, backend: str = "asyncio") -> None:
        ours, theirs = socket.socketpair(
            socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC
        )
        # -S: the server gets our import path as it is, without re-running site's .pth
        # files (tens of ms on some machines); our package's own parent goes first.
        package_parent = os.path.dirname(
            os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        )
        path = os.pathsep.join([package_parent, *(p for p in sys.path if p)])
        code = (
            "import sys; sys.path[:] = sys.argv.pop(1).split(sys.argv.pop(1)); "
            "from asyncinit.forkserver._server import main; main()"
        )
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-I",
                "-S",
                "-c",
                code,
                path,
                os.pathsep,
                str(theirs.fileno()),
                backend,
            ],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            close_fds=True,
        )
        theirs.close()
        self.control = ours

    def request(self, fields: LaunchRequest, fds: Sequence[int]) -> None:
        send_blocking(self.control, Message(ServerKind.LAUNCH, fields, fds))

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        """Closing the control socket tells the server to kill its containers and exit."""
        self.control.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def fork_server(backend: str = "asyncio") -> ForkServer:
    """The process-wide fork server, started on first use and restarted if it died."""
    global _server
    with _lock:
        if _server is None or not _server.alive():
            if _server is not None:
                _server.control.close()  # the dead server's end: nothing reads it any more
            _server = ForkServer(backend)
        return _server


def launch(fields: LaunchRequest, fds: Sequence[int]) -> None:
    server = fork_server(fields["backend"])
    try:
        server.request(fields, fds)
    except (BrokenPipeError, ConnectionResetError):
        # The server died since we looked: one restart, then give up loudly.
        fork_server(fields["backend"]).request(fields, fds)


@atexit.register
def _shutdown() -> None:
    global _server
    if _server is not None:
        _server.close()
        _server = None
