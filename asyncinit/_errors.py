"""Errors that cross the sync pipe and the public exception types.

The init turns any exception into a plain dict (:func:`error_fields`); the parent
turns that dict back into :class:`InitError`, an :class:`OSError` subclass, so a
caller can ``except FileNotFoundError`` or read ``.errno``, ``.operation`` and
``.filename`` exactly as for a local syscall failure.
"""

from __future__ import annotations

import errno as errno_module
import os
import traceback
from typing import Any

from . import _publish

#: Public as asyncinit.NAME; the rest is shared inside the package.
__all__ = [
    "AsyncInitError",
    "CgroupError",
    "ContainerStartError",
    "HookError",
    "InitError",
    "NetworkError",
    "UsageError",
]


class AsyncInitError(Exception):
    """Base class of every error asyncinit raises on purpose."""


class UsageError(AsyncInitError, ValueError):
    """An argument to spawn() or the CLI is not acceptable (a bad container id...)."""


class InitError(AsyncInitError, OSError):
    """The container's init failed: carries errno, operation, path, stage and config field."""

    def __init__(
        self,
        message: str,
        *,
        errno: int | None = None,
        operation: str | None = None,
        path: str | None = None,
        path2: str | None = None,
        stage: str | None = None,
        field: str | None = None,
        init_traceback: str | None = None,
    ) -> None:
        super().__init__(errno or 0, message, path, None, path2)
        self.errno = errno
        self.message = message
        self.operation = operation
        self.path = path
        self.stage = stage
        self.field = field
        self.init_traceback = init_traceback

    def __str__(self) -> str:
        parts = []
        if self.stage:
            parts.append(f"[{self.stage}]")
        if self.field:
            parts.append(f"{self.field}:")
        parts.append(self.message)
        details = []
        if self.path:
            details.append(f"path {self.path!r}")
        if self.errno:
            details.append(f"errno {errno_module.errorcode.get(self.errno, self.errno)}")
        if details:
            parts.append(f"({', '.join(details)})")
        return " ".join(parts)

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> InitError:
        def text(key: str) -> str | None:
            value = fields.get(key)
            return value if isinstance(value, str) else None

        code = fields.get("errno")
        klass = _errno_class(cls, code) if isinstance(code, int) else cls
        return klass(
            text("message") or "the init failed",
            errno=code if isinstance(code, int) else None,
            operation=text("operation"),
            path=text("path"),
            path2=text("path2"),
            stage=text("stage"),
            field=text("field"),
            init_traceback=text("traceback"),
        )


_OS_ERROR_BY_ERRNO: dict[int, type[OSError]] = {
    errno_module.ENOENT: FileNotFoundError,
    errno_module.EEXIST: FileExistsError,
    errno_module.EACCES: PermissionError,
    errno_module.EPERM: PermissionError,
    errno_module.ENOTDIR: NotADirectoryError,
    errno_module.EISDIR: IsADirectoryError,
    errno_module.ESRCH: ProcessLookupError,
    errno_module.ETIMEDOUT: TimeoutError,
    errno_module.EINTR: InterruptedError,
}
_classes: dict[tuple[type[InitError], type[OSError]], type[InitError]] = {}


def _errno_class(base: type[InitError], code: int) -> type[InitError]:
    """InitError mixed with the OSError subclass Python would pick for ``code``.

    So that ``except FileNotFoundError`` works for an init failure as it does for a
    local syscall: ``OSError(errno, ...)`` picks a subclass, a subclass of it does not.
    """
    os_class = _OS_ERROR_BY_ERRNO.get(code)
    if os_class is None:
        return base
    key = (base, os_class)
    if key not in _classes:
        _classes[key] = type(base.__name__, (base, os_class), {"__module__": base.__module__})
    return _classes[key]


class StepError(AsyncInitError):
    """A rootfs or process step refused its input; raised in the init, names the field."""

    def __init__(
        self, message: str, *, path: str | None = None, field: str | None = None, errno: int = 0
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.field = field
        self.errno = errno


class CgroupError(StepError):
    """A cgroup step failed: ``field`` is the config.json field it carried out (when
    one), ``path`` the cgroup file or directory, ``errno`` the kernel's answer and
    ``operation`` what was attempted ("write", "mkdir", "rmdir", "bpf(BPF_PROG_LOAD)")."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        field: str | None = None,
        errno: int = 0,
        operation: str | None = None,
    ) -> None:
        super().__init__(message, path=path, field=field, errno=errno)
        self.operation = operation

    def __str__(self) -> str:
        text = f"{self.field}: {self.message}" if self.field else self.message
        details = [f"path {self.path!r}"] if self.path else []
        if self.errno:
            details.append(f"errno {errno_module.errorcode.get(self.errno, self.errno)}")
        return f"{text} ({', '.join(details)})" if details else text


class CommandError(StepError):
    """A hook or premount/postmount command failed, timed out or could not be started.

    ``reason`` says what went wrong ("exited with status 1: ..."), ``returncode``
    is the exit status (None when it did not exit by itself), ``signal`` the
    signal that killed it, ``output`` the tail of its stderr (or of its stdout
    when stderr was empty).
    """

    def __init__(
        self,
        reason: str,
        *,
        path: str,
        field: str | None = None,
        errno: int = 0,
        returncode: int | None = None,
        signal: int | None = None,
        timed_out: bool = False,
        output: str = "",
    ) -> None:
        super().__init__(f"{path} {reason}", path=path, field=field, errno=errno)
        self.reason = reason
        self.returncode = returncode
        self.signal = signal
        self.timed_out = timed_out
        self.output = output

    def details(self) -> dict[str, Any]:
        """The JSON-able facts a parent needs to rebuild this error (see ``HookError``)."""
        return {
            "path": self.path,
            "reason": self.reason,
            "returncode": self.returncode,
            "signal": self.signal,
            "timed_out": self.timed_out,
            "output": self.output,
        }


class HookError(AsyncInitError):
    """A hook failed: an OCI hook of config.json or a Python hook given to spawn().

    ``kind`` is the hook point ("prestart", "createRuntime", "createContainer",
    "startContainer", "poststart", "poststop"), ``index`` its position in that
    list, ``path`` the executable (None for a Python hook).  For an OCI hook,
    ``returncode``, ``signal``, ``timed_out`` and ``output`` (the tail of its
    stderr) say how it failed; a Python hook's exception is the ``__cause__``.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        index: int,
        path: str | None,
        returncode: int | None = None,
        signal: int | None = None,
        timed_out: bool = False,
        output: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.index = index
        self.path = path
        self.field = f"hooks.{kind}[{index}]"
        self.returncode = returncode
        self.signal = signal
        self.timed_out = timed_out
        self.output = output

    @classmethod
    def from_command(cls, kind: str, index: int, details: dict[str, Any]) -> HookError:
        """The error of OCI hook ``kind[index]`` from a CommandError's ``details()``."""
        path = details.get("path")
        return cls(
            f"{kind} hook {index} ({path}) {details.get('reason') or 'failed'}",
            kind=kind,
            index=index,
            path=path if isinstance(path, str) else None,
            returncode=details.get("returncode"),
            signal=details.get("signal"),
            timed_out=bool(details.get("timed_out")),
            output=details.get("output") or "",
        )


class ContainerStartError(AsyncInitError):
    """The container could not be started for a reason outside the init (launcher, hooks)."""


class NetworkError(ContainerStartError):
    """The parent could not set up the container's network (docs/network.md).

    ``field`` is the config path (``asyncinit.network.veth[0].bridge``), ``errno``
    the kernel's answer when there was one.  Whatever was created is gone again.
    """

    def __init__(self, message: str, *, field: str | None = None, errno: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.errno = errno

    def __str__(self) -> str:
        text = f"{self.field}: {self.message}" if self.field else self.message
        if self.errno:
            text += f" (errno {errno_module.errorcode.get(self.errno, self.errno)})"
        return text


def error_fields(exc: BaseException, stage: str, field: str | None = None) -> dict[str, Any]:
    """Describe ``exc`` as JSON-able fields for the sync pipe's ``error`` message."""
    fields: dict[str, Any] = {"stage": stage}
    if field:
        fields["field"] = field
    if isinstance(exc, StepError):
        fields.update(message=exc.message, path=exc.path, errno=exc.errno or None)
        fields["operation"] = getattr(exc, "operation", None)
        if exc.field:
            fields["field"] = exc.field
        if isinstance(exc, CommandError):
            fields["command"] = exc.details()
    elif isinstance(exc, OSError):
        operation = getattr(exc, "operation", None)
        strerror = exc.strerror or (os.strerror(exc.errno) if exc.errno else str(exc))
        fields.update(
            message=strerror
            if operation is None or strerror.startswith(operation)
            else f"{operation}: {strerror}",
            errno=exc.errno,
            operation=operation,
            path=os.fsdecode(exc.filename) if exc.filename is not None else None,
            path2=os.fsdecode(exc.filename2) if exc.filename2 is not None else None,
        )
    else:
        fields.update(
            message=f"{type(exc).__name__}: {exc}",
            traceback="".join(traceback.format_exception(exc)),
        )
    return {key: value for key, value in fields.items() if value is not None}


_publish(
    AsyncInitError,
    CgroupError,
    ContainerStartError,
    HookError,
    InitError,
    NetworkError,
    UsageError,
)
