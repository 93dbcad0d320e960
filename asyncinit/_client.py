"""The lean half of ``asyncinit run``: hand the request to ``asyncinit daemon``.

A cold CLI pays for an interpreter and its imports on every run, and the parent
side (anyio, asyncio, cattrs) costs several times ``runc run``; the daemon paid
for it once.  So this module imports only the standard library: it connects,
sends the request with fds 0-2, forwards signals, attaches a pty, and returns the
exit code.  ``None`` from :func:`run_via_daemon` means "no daemon here, or it
declined": the CLI then runs in-process.  Wire format and lifecycle:
docs/protocol.md, "Daemon".
"""

from __future__ import annotations

# The C modules under socket, signal and json: their Python wrappers import enum
# and re, ~10 ms of a start that should cost an interpreter and a round trip.
import _json
import _socket as socket
import array
import errno
import os
import select

from ._daemon_wire import DaemonKind
from ._scm import FD_SPACE, MAX_MESSAGE, received_fds
from ._version import VERSION

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs a few ms at start-up: only for the type checker
    import signal  # _signal has no stubs; the same functions and constants
    from collections.abc import Sequence
    from typing import Any

    from ._daemon_wire import RunRequest
else:
    import _signal as signal

DEFAULT_SOCKET = "/run/asyncinit/asyncinit.sock"

#: What `asyncinit run` passes on to the container, like `runc run` does.  Caught
#: from before the start (queued until PID 1 exists), except SIGINT: Ctrl-C while
#: the container starts cancels the start, afterwards it is forwarded too.
FORWARDED_SIGNALS = (
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)


def socket_path(explicit: str | None = None) -> str:
    """``--socket``, else ``$ASYNCINIT_SOCKET``, else the system-wide default."""
    return explicit or os.environ.get("ASYNCINIT_SOCKET") or DEFAULT_SOCKET


def daemon_allowed(no_daemon: bool) -> bool:
    """``--no-daemon`` or ``ASYNCINIT_DAEMON=0`` keep ``asyncinit run`` in-process."""
    return not no_daemon and os.environ.get("ASYNCINIT_DAEMON", "1") != "0"


class Refused(Exception):
    """No daemon answers, or it declined the request: run in-process instead."""


class _JSONContext:
    """What ``_json``'s C scanner reads off ``json.JSONDecoder`` (json itself imports re)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name: str) -> object:
        raise ValueError(f"{name} is not valid JSON")


def _unencodable(value: object) -> object:
    raise TypeError(f"cannot encode {type(value).__name__} in a daemon message")


# typeshed types the context as a JSONDecoder; the C scanner only reads the attributes.
_scan = _json.make_scanner(_JSONContext)  # type: ignore[arg-type]
_encoder = _json.make_encoder(
    None, _unencodable, _json.encode_basestring_ascii, None, ":", ",", False, False, False
)


def encode(fields: dict[str, Any]) -> bytes:
    """Compact JSON of a message, by the C encoder behind json.dumps."""
    return "".join(_encoder(fields, 0)).encode()


def decode(raw: bytes) -> dict[str, Any]:
    """A message as a dict with a string ``type``; ValueError for anything else."""
    text = raw.decode().strip(" \t\n\r")
    try:
        data, end = _scan(text, 0)
    except (StopIteration, RecursionError):  # nothing there; nesting past the C scanner's bound
        raise ValueError(f"malformed daemon message: {raw[:80]!r}") from None
    if end != len(text) or not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise ValueError(f"malformed daemon message: {raw[:80]!r}")
    return data


def send(sock: socket.socket, fields: dict[str, Any], fds: Sequence[int] = ()) -> None:
    ancillary = []
    if fds:
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
    sock.sendmsg([encode(fields)], ancillary)


def receive(sock: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """One message and its fds (close-on-exec); EOFError when the peer closed."""
    data, ancillary, flags, _ = sock.recvmsg(MAX_MESSAGE, FD_SPACE, socket.MSG_CMSG_CLOEXEC)
    fds = received_fds(ancillary)
    try:
        if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            raise ValueError("daemon message truncated")
        if not data and not fds:
            raise EOFError("the daemon closed the connection")
        return decode(data), fds
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise


def terminal_size(fd: int = 0) -> tuple[int, int] | None:
    """(rows, columns) of the terminal on ``fd``, or None (not a terminal, or 0x0).

    Given to spawn() as the pty's size when the config sets no process.consoleSize:
    copied only once attached, the container's first `stty size` could read 0 0.
    """
    try:
        columns, rows = os.get_terminal_size(fd)
    except OSError:
        return None
    return (rows, columns) if rows and columns else None


def run_request(
    bundle: str,
    container_id: str,
    *,
    backend: str = "asyncio",
    init: str | None = None,
    signal_group: bool | None = None,
    no_pivot: bool = False,
    debug: bool = False,
) -> RunRequest:
    """The ``run`` request's fields; the bundle is made absolute (the daemon has its own cwd)."""
    return {
        "version": VERSION,
        "bundle": os.path.abspath(bundle),
        "id": container_id,
        "backend": backend,
        "init": init,
        "signal_group": signal_group,
        "no_pivot": no_pivot,
        "debug": debug,
        "console_size": terminal_size(),
    }


def connect(path: str) -> socket.socket:
    """A connection to the daemon; Refused when nothing (or nothing trusted) listens.

    Whoever listens gets our stdio and our container's output: it must be root
    or ourselves (SO_PEERCRED, checked before we send anything), not a user who
    bound a socket at a path we were pointed to.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        sock.connect(path)
        creds = array.array("i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    except OSError as exc:
        sock.close()
        raise Refused(f"no daemon at {path}: {exc.strerror or exc}") from None
    uid = creds[1]
    if uid not in (0, os.geteuid()):
        sock.close()
        raise Refused(f"not trusting {path}: its server runs as uid {uid}, not root or us")
    return sock


def run_via_daemon(request: RunRequest, path: str) -> int:
    """Run one container through the daemon at ``path``; its exit code.

    Raises Refused (nothing sent to the container yet) when the caller should
    run in-process instead.
    """
    sock = connect(path)
    try:
        return _Session(sock).run(request)
    finally:
        sock.close()


def _ignore(signum: int, frame: object) -> None:
    """A handler that does nothing: the signal number arrives on the wakeup pipe."""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            select.select([], [fd], [])


class _Session:
    """One run: the daemon's messages, the signals we catch, and a pty if there is one."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.answered = False
        self.master = -1  # the container's pty master, once received
        self.reading_master = False
        self.reading_stdin = False
        self.to_master = b""
        self.saved_tty: list[Any] | None = None

    def run(self, request: RunRequest) -> int:
        wake_read, wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        caught = (*FORWARDED_SIGNALS, signal.SIGINT, signal.SIGWINCH)
        previous = {signum: signal.signal(signum, _ignore) for signum in caught}
        old_wakeup = signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
        try:
            try:
                send(self.sock, {"type": DaemonKind.RUN, **request}, [0, 1, 2])
            except OSError as exc:  # not delivered: nothing started, in-process is safe
                raise Refused(self._early_refusal() or f"the daemon hung up: {exc}") from None
            return self._loop(wake_read)
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            os.close(wake_read)
            os.close(wake_write)
            self._detach()

    def _early_refusal(self) -> str | None:
        """The reason of a daemon that refused us before reading our request, if it said."""
        self.sock.setblocking(False)
        try:
            fields, fds = receive(self.sock)
        except (OSError, EOFError, ValueError):
            return None
        for fd in fds:
            os.close(fd)
        if fields["type"] != DaemonKind.REFUSED:
            return None
        return f"the daemon declined: {fields.get('reason')}"

    def _loop(self, wake: int) -> int:
        sock = self.sock.fileno()
        while True:
            readers = [sock, wake]
            writers = []
            if self.reading_master:
                readers.append(self.master)
            if self.to_master:
                writers.append(self.master)
            elif self.reading_stdin:
                readers.append(0)
            readable, writable, _ = select.select(readers, writers, [])
            if wake in readable:
                self._signals(wake)
            if self.master in readable:
                self._output()
            if self.master in writable:
                self._flush_input()
            if 0 in readable:
                self._input()
            if sock in readable:
                code = self._message()
                if code is not None:
                    return code

    def _message(self) -> int | None:
        try:
            try:
                fields, fds = receive(self.sock)
            except ConnectionResetError:
                # The daemon closed with something of ours unread: what it said
                # before closing is still queued behind the error.
                fields, fds = receive(self.sock)
        except (EOFError, ConnectionResetError):
            return self._lost("the daemon closed the connection before the container exited")
        except ValueError as exc:
            return self._lost(str(exc))
        kind = fields["type"]
        first, self.answered = not self.answered, True
        if kind == DaemonKind.REFUSED and first:
            raise Refused(f"the daemon declined: {fields.get('reason')}")
        if kind == DaemonKind.PTY and len(fds) == 1 and self.master < 0:
            self._attach(fds.pop())
        for fd in fds:
            os.close(fd)
        if kind == DaemonKind.WARNING:
            _write_all(2, f"{fields.get('text')}\n".encode())
        elif kind in (DaemonKind.EXIT, DaemonKind.ERROR):
            self._drain()
            if kind == DaemonKind.ERROR:
                _write_all(2, f"{fields.get('text')}\n".encode())
            code = fields.get("code")
            if type(code) is not int or not 0 <= code <= 255:
                return self._lost(f"malformed exit code from the daemon: {code!r:.40}")
            return code
        return None

    def _lost(self, why: str) -> int:
        _write_all(2, f"asyncinit: error: {why}\n".encode())
        return 1

    def _signals(self, wake: int) -> None:
        try:
            numbers = os.read(wake, 512)
        except BlockingIOError:
            return
        for signum in numbers:
            if signum == signal.SIGWINCH:
                self._copy_size()
                continue
            try:  # noqa: SIM105  (contextlib costs the lean client ~2 ms of imports)
                send(self.sock, {"type": DaemonKind.SIGNAL, "signo": signum})
            except OSError:
                pass  # the daemon is gone: its end of file tells the loop

    # --- the pty (process.terminal), as _attach.attach_terminal does in-process

    def _attach(self, master: int) -> None:
        os.set_blocking(master, False)
        self.master = master
        self.reading_master = self.reading_stdin = True
        if os.isatty(0):
            import termios
            import tty

            self.saved_tty = termios.tcgetattr(0)
            tty.setraw(0)
            self._copy_size()

    def _detach(self) -> None:
        if self.saved_tty is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, self.saved_tty)
            self.saved_tty = None
        if self.master >= 0:
            os.close(self.master)
            self.master = -1

    def _copy_size(self) -> None:
        if self.master < 0:
            return
        import fcntl
        import struct
        import termios

        try:
            size = os.get_terminal_size(0)
            winsize = struct.pack("HHHH", size.lines, size.columns, 0, 0)
            fcntl.ioctl(self.master, termios.TIOCSWINSZ, winsize)
        except OSError:
            pass

    def _output(self) -> bool:
        """Copy what the pty has to stdout; False once it has nothing more now."""
        try:
            data = os.read(self.master, 65536)
        except BlockingIOError:
            return False
        except OSError as exc:
            if exc.errno != errno.EIO:  # EIO: every slave closed, the pty's end of file
                raise
            data = b""
        if not data:
            self.reading_master = self.reading_stdin = False
            return False
        _write_all(1, data)
        return True

    def _drain(self) -> None:
        """The container exited: what it wrote to the pty is still buffered there."""
        while self.reading_master and self._output():
            pass

    def _input(self) -> None:
        data = os.read(0, 4096)
        if not data:
            self.reading_stdin = False
            return
        self.to_master = data
        self._flush_input()

    def _flush_input(self) -> None:
        try:
            written = os.write(self.master, self.to_master)
        except BlockingIOError:
            return
        except OSError:
            self.to_master = b""  # the container is gone
            self.reading_stdin = False
            return
        self.to_master = self.to_master[written:]
