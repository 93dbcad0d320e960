"""``runc update``'s input read as runc 1.1.5 reads it: flags or a ``LinuxResources`` file.

The result is the ``LinuxResources`` JSON of what changes, with runc's rule that
a zero (or an empty cpuset list) changes nothing: runc 1.1.5 starts from zeros
and its cgroup drivers skip zero values, so an update names only what it sets
and the container's kept resources fill in the rest (``cgroups.merge``).
Only the fields runc's update honours are taken from a file (memory limit,
reservation and swap; cpu shares, quota, period, realtime and cpusets; the
blkio weight; the pids limit; ``unified``): the others are ignored, as by runc.
The values' messages are runc's (Go's strconv and docker/go-units words).
"""

from __future__ import annotations

import re

from ._errors import OciError
from ._errors import OciUsageError as UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ._args import Invocation
    from ._log import Logger

KERNEL_MEMORY_WARNING = "Kernel memory settings are ignored and will be removed"

_UPDATABLE = {
    "memory": ("limit", "reservation", "swap", "kernel", "kernelTCP"),
    "cpu": ("shares", "quota", "period", "realtimeRuntime", "realtimePeriod", "cpus", "mems"),
    "blockIO": ("weight",),
    "pids": ("limit",),
}
_UNSIGNED = (("cpu-period", "period"), ("cpu-rt-period", "realtimePeriod"), ("cpu-share", "shares"))
_SIGNED = (("cpu-quota", "quota"), ("cpu-rt-runtime", "realtimeRuntime"))
_MEMORY = (
    ("memory", "limit"),
    ("memory-swap", "swap"),
    ("kernel-memory", "kernel"),
    ("kernel-memory-tcp", "kernelTCP"),
    ("memory-reservation", "reservation"),
)
_RDT = (("l3-cache-schema", "CAT: l3 cache"), ("mem-bw-schema", "MBA: memory bandwidth"))
_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)*) ?([kKmMgGtTpP])?[iI]?[bB]?")
_POWERS = {"k": 1, "m": 2, "g": 3, "t": 4, "p": 5}
_INT64 = 1 << 63


def parse_uint(text: str) -> int:
    """Go's ``strconv.ParseUint(text, 10, 64)``."""
    if not text.isascii() or not text.isdigit():
        raise ValueError(f'strconv.ParseUint: parsing "{text}": invalid syntax')
    if int(text) >= 1 << 64:
        raise ValueError(f'strconv.ParseUint: parsing "{text}": value out of range')
    return int(text)


def parse_int(text: str) -> int:
    """Go's ``strconv.ParseInt(text, 10, 64)``."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits.isascii() or not digits.isdigit():
        raise ValueError(f'strconv.ParseInt: parsing "{text}": invalid syntax')
    value = int(text)
    if not -_INT64 <= value < _INT64:
        raise ValueError(f'strconv.ParseInt: parsing "{text}": value out of range')
    return value


def ram_in_bytes(text: str) -> int:
    """docker/go-units ``RAMInBytes``: ``64m``, ``1.5GiB``, ``512 kb`` (powers of 1024)."""
    match = _SIZE.fullmatch(text)
    if match is None:
        raise ValueError(f"invalid size: '{text}'")
    try:
        size = float(match[1])
    except ValueError:
        raise ValueError(f'strconv.ParseFloat: parsing "{match[1]}": invalid syntax') from None
    return int(size * 1024 ** _POWERS.get((match[2] or "").lower(), 0))


def _checked(flag: str, parse: Callable[[str], int], text: str) -> int:
    try:
        value = parse(text)
    except ValueError as exc:
        raise OciError(f"invalid value for {flag}: {exc}") from None
    return value


def from_flags(invocation: Invocation) -> dict[str, Any]:
    """The flags' ``LinuxResources``, checked in runc's order (the first bad one fails)."""
    memory: dict[str, Any] = {}
    cpu: dict[str, Any] = {}
    weight = invocation.number("blkio-weight")
    cpu["cpus"] = invocation.text("cpuset-cpus")
    cpu["mems"] = invocation.text("cpuset-mems")
    for flag, key in _UNSIGNED:
        if text := invocation.text(flag):
            cpu[key] = _checked(flag, parse_uint, text)
    for flag, key in _SIGNED:
        if text := invocation.text(flag):
            cpu[key] = _checked(flag, parse_int, text)
    for flag, key in _MEMORY:
        if text := invocation.text(flag):
            memory[key] = -1 if text == "-1" else _checked(flag, ram_in_bytes, text)
    return {
        "memory": memory,
        "cpu": cpu,
        "blockIO": {"weight": weight & 0xFFFF},  # runc: uint16(value)
        "pids": {"limit": invocation.number("pids-limit")},
    }


def from_file(path: str) -> dict[str, Any]:
    """``--resources FILE`` (``-`` for stdin): runc's updatable fields of the JSON object."""
    import json
    import sys

    try:
        if path == "-":
            data = json.load(sys.stdin)
        else:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
    except json.JSONDecodeError as exc:
        raise OciError(f"{path}: invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise OciError(f"{path}: expected a LinuxResources JSON object")
    taken: dict[str, Any] = {}
    for section, keys in _UPDATABLE.items():
        given = data.get(section)
        if given is None:
            continue
        if not isinstance(given, dict):
            taken[section] = given  # structuring names the field
            continue
        taken[section] = {key: given[key] for key in keys if key in given}
    if data.get("unified") is not None:
        taken["unified"] = data["unified"]
    return taken


def changes(invocation: Invocation, logger: Logger) -> dict[str, Any]:
    """What the command line asks to change: zeros and kernel memory dropped."""
    path = invocation.text("resources")
    requested = from_file(path) if path else from_flags(invocation)
    memory = requested.get("memory")
    if isinstance(memory, dict):
        kernel = memory.pop("kernel", 0), memory.pop("kernelTCP", 0)
        if any(kernel):
            logger.warning(KERNEL_MEMORY_WARNING)
    for section in _UPDATABLE:
        values = requested.get(section)
        if isinstance(values, dict):
            kept = {k: v for k, v in values.items() if v not in (0, "", None)}
            if kept:
                requested[section] = kept
            else:
                del requested[section]
    for flag, feature in _RDT:
        if invocation.text(flag):  # asyncinit has no Intel RDT support: as runc without it
            raise OciError(f"Intel RDT/{feature} schema is not enabled")
    return requested


def parse_duration(text: str, flag: str) -> float:
    """Go's ``time.ParseDuration`` in seconds; a bad one fails as Go's flag package does."""
    body = text[1:] if text[:1] in ("+", "-") else text
    parts = re.findall(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)", body)
    scale = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    valid = body == "0" or (
        bool(parts)
        and "".join(number + unit for number, unit in parts) == body
        and all(number.strip(".") for number, _ in parts)
    )
    if not valid:
        raise UsageError(f'invalid value "{text}" for flag -{flag}: parse error')
    seconds = sum(float(number) * scale[unit] for number, unit in parts)
    return -seconds if text.startswith("-") else seconds
