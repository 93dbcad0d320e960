"""The runtime-spec's ``linux.seccomp`` as frozen attrs classes, and its validation.

Attribute names are the JSON keys in snake_case (``errno_ret`` is ``errnoRet``),
so the config's converter can structure config.json onto these classes and
speak the spec's names in its errors. :func:`parse_profile` does the same from
plain JSON without cattrs (for a profile file, or a test), and
:func:`profile_problems` reports every semantic problem at once as
``"linux.seccomp.syscalls[3].args[0].op: message"``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, Final

import attrs

from .._errors import AsyncInitError
from . import _kernel

__all__ = [
    "ACTIONS",
    "ARCHITECTURES",
    "FLAGS",
    "HANDSHAKE_SYSCALLS",
    "OPERATORS",
    "LinuxSeccomp",
    "LinuxSeccompArg",
    "LinuxSyscall",
    "SeccompProfileError",
    "parse_profile",
    "profile_problems",
    "profile_to_json",
]

ACTIONS: Final[Mapping[str, int]] = MappingProxyType(
    {
        "SCMP_ACT_KILL": _kernel.RET_KILL_THREAD,
        "SCMP_ACT_KILL_THREAD": _kernel.RET_KILL_THREAD,
        "SCMP_ACT_KILL_PROCESS": _kernel.RET_KILL_PROCESS,
        "SCMP_ACT_TRAP": _kernel.RET_TRAP,
        "SCMP_ACT_ERRNO": _kernel.RET_ERRNO,
        "SCMP_ACT_TRACE": _kernel.RET_TRACE,
        "SCMP_ACT_ALLOW": _kernel.RET_ALLOW,
        "SCMP_ACT_LOG": _kernel.RET_LOG,
        "SCMP_ACT_NOTIFY": _kernel.RET_USER_NOTIF,
    }
)
"""OCI action name -> SECCOMP_RET_* value (without its errno)."""

ERRNO_ACTIONS: Final = frozenset({"SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"})
"""The actions that carry an errno (``errnoRet``, EPERM when absent, as runc)."""

OPERATORS: Final[Mapping[str, int]] = MappingProxyType(
    {
        "SCMP_CMP_NE": 1,
        "SCMP_CMP_LT": 2,
        "SCMP_CMP_LE": 3,
        "SCMP_CMP_EQ": 4,
        "SCMP_CMP_GE": 5,
        "SCMP_CMP_GT": 6,
        "SCMP_CMP_MASKED_EQ": 7,
    }
)
"""OCI operator -> libseccomp's ``enum scmp_compare``."""

ARCHITECTURES: Final = frozenset(
    f"SCMP_ARCH_{name}"
    for name in (
        "X86",
        "X86_64",
        "X32",
        "ARM",
        "AARCH64",
        "MIPS",
        "MIPS64",
        "MIPS64N32",
        "MIPSEL",
        "MIPSEL64",
        "MIPSEL64N32",
        "PPC",
        "PPC64",
        "PPC64LE",
        "S390",
        "S390X",
        "PARISC",
        "PARISC64",
        "RISCV64",
        "LOONGARCH64",
        "M68K",
        "SH",
        "SHEB",
    )
)
"""The runtime-spec's architectures (libseccomp 2.6's list; the host's library may know fewer)."""

FLAGS: Final[Mapping[str, int]] = MappingProxyType(
    {
        "SECCOMP_FILTER_FLAG_TSYNC": _kernel.FLAG_TSYNC,
        "SECCOMP_FILTER_FLAG_LOG": _kernel.FLAG_LOG,
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW": _kernel.FLAG_SPEC_ALLOW,
        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": _kernel.FLAG_WAIT_KILLABLE_RECV,
    }
)
"""OCI flag name -> seccomp(2) filter flag."""

HANDSHAKE_SYSCALLS: Final = frozenset({"write", "sendmsg", "sendto"})
"""Syscalls SCMP_ACT_NOTIFY must not take: the init hands the listener fd to its
parent with them after loading the filter, and nobody could answer it yet (runc
refuses ``write`` for the same reason; our sync socket also sends)."""

_ARG_COUNT: Final = 6
_U64: Final = 2**64 - 1


class SeccompProfileError(AsyncInitError, ValueError):
    """An unusable seccomp profile; ``errors`` holds every problem as "json.path: message"."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        super().__init__(self.errors)

    def __str__(self) -> str:
        return "; ".join(self.errors)


@attrs.frozen
class LinuxSeccompArg:
    """``syscalls[].args[]``: compare argument ``index`` with ``op``.

    For ``SCMP_CMP_MASKED_EQ``, ``value`` is the mask and ``value_two`` the datum:
    ``(arg & value) == value_two``.
    """

    index: int
    value: int
    op: str
    value_two: int = 0


@attrs.frozen
class LinuxSyscall:
    """``syscalls[]``: one action for some syscall names, optionally on argument values."""

    names: tuple[str, ...]
    action: str
    errno_ret: int | None = None
    args: tuple[LinuxSeccompArg, ...] = ()


@attrs.frozen
class LinuxSeccomp:
    """``linux.seccomp``. ``flags`` is None when absent: runc then sets SPEC_ALLOW."""

    default_action: str
    default_errno_ret: int | None = None
    architectures: tuple[str, ...] = ()
    flags: tuple[str, ...] | None = None
    listener_path: str | None = None
    listener_metadata: str | None = None
    syscalls: tuple[LinuxSyscall, ...] = ()

    @property
    def uses_notify(self) -> bool:
        """True if a rule answers through a listener (SCMP_ACT_NOTIFY)."""
        return any(rule.action == "SCMP_ACT_NOTIFY" for rule in self.syscalls)


def profile_problems(profile: LinuxSeccomp, path: str = "linux.seccomp") -> list[str]:
    """Every semantic problem of ``profile``, as "json.path: message"."""
    problems: list[str] = []

    def error(where: str, message: str) -> None:
        problems.append(f"{where}: {message}")

    _check_action(error, f"{path}.defaultAction", profile.default_action)
    if profile.default_action == "SCMP_ACT_NOTIFY":
        error(f"{path}.defaultAction", "SCMP_ACT_NOTIFY cannot be the default action")
    _check_errno(
        error, f"{path}.defaultErrnoRet", profile.default_action, profile.default_errno_ret
    )
    for i, arch in enumerate(profile.architectures):
        if arch not in ARCHITECTURES:
            error(f"{path}.architectures[{i}]", f"unknown architecture {json.dumps(arch)}")
    for i, flag in enumerate(profile.flags or ()):
        if flag not in FLAGS:
            error(f"{path}.flags[{i}]", f"unknown flag {json.dumps(flag)}")
    if profile.listener_metadata and not profile.listener_path:
        error(f"{path}.listenerMetadata", "must not be set without listenerPath")
    if profile.listener_path == "":
        error(f"{path}.listenerPath", "must not be empty")
    for i, rule in enumerate(profile.syscalls):
        _check_rule(error, f"{path}.syscalls[{i}]", rule)
    return problems


_Report = Callable[[str, str], None]


def _check_action(error: _Report, where: str, action: str) -> None:
    if action not in ACTIONS:
        error(where, f"unknown action {json.dumps(action)}")


def _check_errno(error: _Report, where: str, action: str, errno: int | None) -> None:
    if errno is None:
        return
    if action in ACTIONS and action not in ERRNO_ACTIONS:
        error(where, f"{action} takes no errno (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)")
    elif not 0 <= errno <= _kernel.MAX_ERRNO:
        error(where, f"must be an errno between 0 and {_kernel.MAX_ERRNO}, got {errno}")


def _check_rule(error: _Report, path: str, rule: LinuxSyscall) -> None:
    if not rule.names:
        error(f"{path}.names", "must name at least one syscall")
    for k, name in enumerate(rule.names):
        if not name:
            error(f"{path}.names[{k}]", "must not be empty")
        elif rule.action == "SCMP_ACT_NOTIFY" and name in HANDSHAKE_SYSCALLS:
            error(
                f"{path}.names[{k}]",
                f"SCMP_ACT_NOTIFY cannot be used for {name}: the init needs it to hand"
                " the listener to its parent",
            )
    _check_action(error, f"{path}.action", rule.action)
    _check_errno(error, f"{path}.errnoRet", rule.action, rule.errno_ret)
    for j, arg in enumerate(rule.args):
        where = f"{path}.args[{j}]"
        if not 0 <= arg.index < _ARG_COUNT:
            error(f"{where}.index", f"must be between 0 and {_ARG_COUNT - 1}, got {arg.index}")
        if arg.op not in OPERATORS:
            error(f"{where}.op", f"unknown operator {json.dumps(arg.op)}")
        for key, value in (("value", arg.value), ("valueTwo", arg.value_two)):
            if not 0 <= value <= _U64:
                error(f"{where}.{key}", f"must be a uint64, got {value}")


# -- plain JSON <-> classes ---------------------------------------------------------


class _Reader:
    """Structural reading of JSON with every problem collected under its JSON path."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def error(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def obj(self, value: object, where: str) -> Mapping[str, Any] | None:
        if isinstance(value, Mapping):
            return value
        self.error(where, f"must be an object, got {_kind(value)}")
        return None

    def string(self, value: object, where: str) -> str | None:
        if isinstance(value, str):
            return value
        self.error(where, f"must be a string, got {_kind(value)}")
        return None

    def uint(self, value: object, where: str) -> int | None:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        self.error(where, f"must be an unsigned integer, got {_kind(value)}")
        return None

    def items(self, value: object, where: str) -> Iterator[tuple[int, object, str]]:
        if not isinstance(value, list):
            self.error(where, f"must be an array, got {_kind(value)}")
            return
        for i, item in enumerate(value):
            yield i, item, f"{where}[{i}]"

    def strings(self, value: object, where: str) -> tuple[str, ...]:
        found = (self.string(item, at) for _, item, at in self.items(value, where))
        return tuple(s for s in found if s is not None)


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return f"{value}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object" if isinstance(value, Mapping) else "a number"


def parse_profile(data: object, path: str = "linux.seccomp") -> LinuxSeccomp:
    """The profile in ``data`` (decoded JSON), checked; raises SeccompProfileError."""
    reader = _Reader()
    profile = _read_profile(reader, data, path)
    if profile is not None and not reader.problems:
        reader.problems.extend(profile_problems(profile, path))
    if reader.problems or profile is None:
        raise SeccompProfileError(reader.problems)
    return profile


def _read_profile(reader: _Reader, data: object, path: str) -> LinuxSeccomp | None:
    top = reader.obj(data, path)
    if top is None:
        return None
    if "defaultAction" not in top:
        reader.error(f"{path}.defaultAction", "required")
    default_action = reader.string(top.get("defaultAction", ""), f"{path}.defaultAction")

    syscalls = tuple(
        rule
        for _, item, at in reader.items(top.get("syscalls") or [], f"{path}.syscalls")
        if (rule := _read_rule(reader, item, at)) is not None
    )

    def at(key: str) -> str:
        return f"{path}.{key}"

    errno_ret, arches, flags = (top.get(k) for k in ("defaultErrnoRet", "architectures", "flags"))
    listener_path, metadata = top.get("listenerPath"), top.get("listenerMetadata")
    return LinuxSeccomp(
        default_action=default_action or "",
        default_errno_ret=None
        if errno_ret is None
        else reader.uint(errno_ret, at("defaultErrnoRet")),
        architectures=() if arches is None else reader.strings(arches, at("architectures")),
        flags=None if flags is None else reader.strings(flags, at("flags")),
        listener_path=None
        if listener_path is None
        else reader.string(listener_path, at("listenerPath")),
        listener_metadata=None
        if metadata is None
        else reader.string(metadata, at("listenerMetadata")),
        syscalls=syscalls,
    )


def _read_rule(reader: _Reader, item: object, path: str) -> LinuxSyscall | None:
    rule = reader.obj(item, path)
    if rule is None:
        return None
    for key in ("names", "action"):
        if key not in rule:
            reader.error(f"{path}.{key}", "required")
    errno_ret = rule.get("errnoRet")
    args = []
    for _, arg_item, at in reader.items(rule.get("args") or [], f"{path}.args"):
        arg = reader.obj(arg_item, at)
        if arg is None:
            continue
        for key in ("index", "value", "op"):
            if key not in arg:
                reader.error(f"{at}.{key}", "required")
        args.append(
            LinuxSeccompArg(
                index=reader.uint(arg.get("index", 0), f"{at}.index") or 0,
                value=reader.uint(arg.get("value", 0), f"{at}.value") or 0,
                op=reader.string(arg.get("op", ""), f"{at}.op") or "",
                value_two=reader.uint(arg.get("valueTwo") or 0, f"{at}.valueTwo") or 0,
            )
        )
    return LinuxSyscall(
        names=reader.strings(rule.get("names", []), f"{path}.names"),
        action=reader.string(rule.get("action", ""), f"{path}.action") or "",
        errno_ret=None if errno_ret is None else reader.uint(errno_ret, f"{path}.errnoRet"),
        args=tuple(args),
    )


def profile_to_json(profile: LinuxSeccomp) -> dict[str, Any]:
    """The profile as runtime-spec JSON (absent fields left out)."""
    out: dict[str, Any] = {"defaultAction": profile.default_action}
    optional = {
        "defaultErrnoRet": profile.default_errno_ret,
        "architectures": list(profile.architectures) or None,
        "flags": None if profile.flags is None else list(profile.flags),
        "listenerPath": profile.listener_path,
        "listenerMetadata": profile.listener_metadata,
    }
    out.update((key, value) for key, value in optional.items() if value is not None)
    if profile.syscalls:
        out["syscalls"] = [_rule_to_json(rule) for rule in profile.syscalls]
    return out


def _rule_to_json(rule: LinuxSyscall) -> dict[str, Any]:
    out: dict[str, Any] = {"names": list(rule.names), "action": rule.action}
    if rule.errno_ret is not None:
        out["errnoRet"] = rule.errno_ret
    if rule.args:
        out["args"] = [
            {"index": a.index, "value": a.value, "valueTwo": a.value_two, "op": a.op}
            for a in rule.args
        ]
    return out
