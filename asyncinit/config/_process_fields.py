"""Scheduling, personality, time-namespace and LSM fields: their tables and checks.

``process.scheduler`` (sched_setattr), ``process.ioPriority`` (ioprio_set),
``process.execCPUAffinity`` (CPU lists), ``linux.personality``,
``linux.timeOffsets`` and the LSM fields.  The name tables here are the kernel's
numbers (``<linux/sched.h>``, ``<linux/ioprio.h>``, ``<linux/personality.h>``),
shared by validation and the compiler (``parent/_compile_process``); the init
only ever sees numbers.  Checks follow runc's validator where it has one, and go
further where the kernel would refuse with a bare EINVAL at start.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Final

from .._lines import show
from ._model import Linux, Personality, Process, Scheduler, TimeOffset

__all__ = [
    "IOPRIO_CLASSES",
    "PERSONALITY_DOMAINS",
    "SCHED_FLAGS",
    "SCHED_POLICIES",
    "TIME_CLOCKS",
    "check_linux_fields",
    "check_process_fields",
    "parse_cpu_list",
]

SCHED_POLICIES: Final[Mapping[str, int]] = MappingProxyType(
    {
        "SCHED_OTHER": 0,
        "SCHED_FIFO": 1,
        "SCHED_RR": 2,
        "SCHED_BATCH": 3,
        "SCHED_ISO": 4,  # reserved by Linux, never implemented: refused below
        "SCHED_IDLE": 5,
        "SCHED_DEADLINE": 6,
    }
)
SCHED_FLAGS: Final[Mapping[str, int]] = MappingProxyType(
    {
        "SCHED_FLAG_RESET_ON_FORK": 0x01,
        "SCHED_FLAG_RECLAIM": 0x02,
        "SCHED_FLAG_DL_OVERRUN": 0x04,
        "SCHED_FLAG_KEEP_POLICY": 0x08,
        "SCHED_FLAG_KEEP_PARAMS": 0x10,
        "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
        "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40,
    }
)
IOPRIO_CLASSES: Final[Mapping[str, int]] = MappingProxyType(
    {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
)
#: PER_LINUX, PER_LINUX32 (uname(2) then reports a 32-bit machine, e.g. i686)
PERSONALITY_DOMAINS: Final[Mapping[str, int]] = MappingProxyType({"LINUX": 0x0, "LINUX32": 0x8})
#: the clocks a time namespace offsets (what /proc/PID/timens_offsets accepts)
TIME_CLOCKS: Final = ("monotonic", "boottime")

_I32 = (-(2**31), 2**31 - 1)
_U64 = (0, 2**64 - 1)
_I64 = (-(2**63), 2**63 - 1)
_NSEC_PER_SEC: Final = 10**9
#: highest CPU number accepted in a list (the kernel's NR_CPUS tops out at 8192)
_CPU_MAX: Final = 8191
#: real-time priorities of SCHED_FIFO and SCHED_RR (sched_get_priority_min/max)
_RT_PRIORITY: Final = (1, 99)
_SELINUX_PROCESS: Final = (
    "SELinux process labels are not supported by asyncinit (runc 1.1.5, SELinux disabled: "
    '"selinux label is specified in config, but selinux is disabled or not supported")'
)
_SELINUX_MOUNT: Final = (
    "SELinux mount labels are not supported by asyncinit (runc 1.1.5, SELinux disabled: "
    'adds context="..." to each mount\'s data, which the kernel refuses with EINVAL)'
)


def parse_cpu_list(text: str) -> list[int]:
    """Parse "0-3,7" as [0, 1, 2, 3, 7] (the kernel's cpulist format); ValueError names the part."""
    cpus: set[int] = set()
    for part in text.split(","):
        first, dash, last = part.partition("-")
        if not (first.isdigit() and first.isascii() and (not dash or last.isdigit())):
            raise ValueError(f"invalid CPU list {show(text)}: {show(part)} is not N or N-M")
        low, high = int(first), int(last) if dash else int(first)
        if low > high:
            raise ValueError(f"invalid CPU list {show(text)}: {show(part)} is a reversed range")
        if high > _CPU_MAX:
            raise ValueError(f"invalid CPU list {show(text)}: CPU {high} is above {_CPU_MAX}")
        cpus.update(range(low, high + 1))
    return sorted(cpus)


def _range(path: str, value: int, bounds: tuple[int, int]) -> Iterator[str]:
    low, high = bounds
    if not low <= value <= high:
        yield f"{path}: must be between {low} and {high}, got {show(value)}"


def _scheduler(s: Scheduler) -> Iterator[str]:
    path = "process.scheduler"
    if s.policy not in SCHED_POLICIES:
        expected = ", ".join(name for name in SCHED_POLICIES if name != "SCHED_ISO")
        yield f"{path}.policy: unknown policy {show(s.policy)} (expected one of {expected})"
    elif s.policy == "SCHED_ISO":
        yield f"{path}.policy: SCHED_ISO is reserved by Linux and not implemented"
    yield from _range(f"{path}.nice", s.nice, (-20, 19))
    yield from _range(f"{path}.priority", s.priority, _I32)
    realtime = s.policy in ("SCHED_FIFO", "SCHED_RR")
    if realtime:
        yield from _range(f"{path}.priority", s.priority, _RT_PRIORITY)
    elif s.priority != 0:
        yield f"{path}.priority: only SCHED_FIFO and SCHED_RR take a priority"
    for i, flag in enumerate(s.flags):
        if flag not in SCHED_FLAGS:
            yield f"{path}.flags[{i}]: unknown flag {show(flag)}"
    for key in ("runtime", "deadline", "period"):
        yield from _range(f"{path}.{key}", getattr(s, key), _U64)
    if s.policy != "SCHED_DEADLINE":
        if s.runtime or s.deadline or s.period:
            yield f"{path}: runtime, deadline and period are only for SCHED_DEADLINE"
    elif s.deadline == 0 or not s.runtime <= s.deadline <= (s.period or s.deadline):
        yield f"{path}: SCHED_DEADLINE needs 0 < runtime <= deadline <= period (period 0: deadline)"


def check_process_fields(process: Process) -> Iterator[str]:
    """Problems of ``process.scheduler``, ``ioPriority``, ``execCPUAffinity``, LSM labels."""
    if process.scheduler is not None:
        yield from _scheduler(process.scheduler)
    io = process.io_priority
    if io is not None:
        if io.class_ not in IOPRIO_CLASSES:
            expected = ", ".join(IOPRIO_CLASSES)
            yield f"process.ioPriority.class: unknown class {show(io.class_)} (expected {expected})"
        yield from _range("process.ioPriority.priority", io.priority, (0, 7))
    affinity = process.exec_cpu_affinity
    for key in ("initial", "final"):
        text = getattr(affinity, key) if affinity is not None else None
        if text:
            try:
                parse_cpu_list(text)
            except ValueError as exc:
                yield f"process.execCPUAffinity.{key}: {exc}"
    if process.selinux_label:
        yield f"process.selinuxLabel: {_SELINUX_PROCESS}"


def _personality(personality: Personality) -> Iterator[str]:
    if personality.domain not in PERSONALITY_DOMAINS:
        expected = ", ".join(PERSONALITY_DOMAINS)
        yield f"linux.personality.domain: unknown domain {show(personality.domain)} ({expected})"
    if personality.flags:
        yield "linux.personality.flags: the runtime-spec defines no flag values; none is accepted"


def _time_offsets(linux: Linux, offsets: Mapping[str, TimeOffset]) -> Iterator[str]:
    time_ns = linux.namespace("time")
    if time_ns is None:
        yield "linux.timeOffsets: requires a time namespace in linux.namespaces"
    elif time_ns.path:
        yield "linux.timeOffsets: cannot be set on a time namespace joined by path"
    for clock, offset in offsets.items():
        path = f"linux.timeOffsets[{show(clock)}]"
        if clock not in TIME_CLOCKS:
            yield f"{path}: unknown clock (expected one of {', '.join(TIME_CLOCKS)})"
        yield from _range(f"{path}.secs", offset.secs, _I64)
        yield from _range(f"{path}.nanosecs", offset.nanosecs, (0, _NSEC_PER_SEC - 1))


def check_linux_fields(linux: Linux) -> Iterator[str]:
    """Problems of ``linux.personality``, ``linux.timeOffsets`` and ``linux.mountLabel``."""
    if linux.personality is not None:
        yield from _personality(linux.personality)
    if linux.time_offsets:
        yield from _time_offsets(linux, linux.time_offsets)
    if linux.mount_label:
        yield f"linux.mountLabel: {_SELINUX_MOUNT}"
