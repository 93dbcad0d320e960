"""``--log F --log-format text|json``: runc's logging (logrus), errors included.

Every message goes to the log (stderr unless ``--log``), formatted as logrus
formats it: text ``time="..." level=error msg="..."``, or JSON
``{"level":"error","msg":"...","time":"..."}`` (podman and containerd's shim
read the JSON lines of the log file to report a runtime's error).  A fatal
error also goes to stderr as a plain line when the log is a file, as runc's
``fatal`` does, and the command exits 1.
"""

from __future__ import annotations

import os
import time

from .._leanjson import dumps
from ._errors import OciUsageError as UsageError

LEVELS = ("debug", "info", "warning", "error")
_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESCAPES.update({"\v": "\\v", '"': '\\"', "\\": "\\\\"})
_BARE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._/@^+")


def go_quote(text: str) -> str:
    """Go's ``%q`` of a string (strconv.Quote)."""
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif char.isprintable():
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


def _text_value(value: str) -> str:
    """logrus quotes a value unless every character is in its bare set."""
    return value if value and _BARE.issuperset(value) else go_quote(value)


def rfc3339_now() -> str:
    """Go's ``time.Now().Format(time.RFC3339)`` in local time (``Z`` for a zero offset)."""
    now = time.time()
    local = time.localtime(now)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", local)
    offset = local.tm_gmtoff or 0
    if offset == 0:
        return stamp + "Z"
    sign = "+" if offset > 0 else "-"
    hours, minutes = divmod(abs(offset) // 60, 60)
    return f"{stamp}{sign}{hours:02d}:{minutes:02d}"


class Logger:
    """Where the runc-style commands report; ``fatal`` for the error that ends a command."""

    def __init__(self, path: str = "", fmt: str = "text", debug: bool = False) -> None:
        if fmt not in ("text", "json"):
            raise UsageError(f"invalid log-format: {fmt}")
        self.format = fmt
        self.threshold = 0 if debug else 1
        self.to_stderr = not path or path == "/dev/stderr"
        self.fd = 2
        if not self.to_stderr:
            flags = os.O_CREAT | os.O_WRONLY | os.O_APPEND | os.O_SYNC | os.O_CLOEXEC
            self.fd = os.open(path, flags, 0o644)

    def line(self, level: str, message: str) -> str:
        when = rfc3339_now()
        if self.format == "json":
            return dumps({"level": level, "msg": message, "time": when}) + "\n"
        return f"time={go_quote(when)} level={level} msg={_text_value(message)}\n"

    def log(self, level: str, message: str) -> None:
        if LEVELS.index(level) < self.threshold:
            return
        data = self.line(level, message).encode()
        try:
            while data:
                data = data[os.write(self.fd, data) :]
        except OSError:
            pass  # a log that cannot be written must not turn into a second error

    def debug(self, message: str) -> None:
        self.log("debug", message)

    def warning(self, message: str) -> None:
        self.log("warning", message)

    def error(self, message: str) -> None:
        self.log("error", message)

    def fatal(self, message: str) -> None:
        """The command's error: to the log, and to stderr as a plain line if the log is a file."""
        self.error(message)
        if not self.to_stderr:
            try:  # noqa: SIM105  (contextlib is an import the lean commands do without)
                os.write(2, (message + "\n").encode())
            except OSError:
                pass

    def close(self) -> None:
        if self.fd != 2:
            os.close(self.fd)
            self.fd = 2
