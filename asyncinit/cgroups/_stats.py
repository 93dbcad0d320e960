"""stats(): the cgroup's counters shaped like ``runc events --stats`` data.

Keys and units are runc's (``types.Stats``): cpu times in nanoseconds, memory in
bytes, "max" as 2^64-1 for memory limits and 0 for the pids limit.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable
from typing import Any

_MAX = (1 << 64) - 1
_NS_PER_TICK = 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def _read(directory: str, name: str) -> str | None:
    try:
        with open(posixpath.join(directory, name)) as f:
            return f.read()
    except (FileNotFoundError, OSError):
        return None


def _number(text: str | None) -> int:
    if text is None:
        return 0
    text = text.strip()
    return _MAX if text == "max" else int(text or 0)


def _pairs(text: str | None) -> dict[str, int]:
    out = {}
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def _memory_entry(directory: str, prefix: str) -> dict[str, int]:
    if _read(directory, f"{prefix}.usage_in_bytes") is None:
        return {}
    return {
        "limit": _number(_read(directory, f"{prefix}.limit_in_bytes")),
        "usage": _number(_read(directory, f"{prefix}.usage_in_bytes")),
        "max": _number(_read(directory, f"{prefix}.max_usage_in_bytes")),
        "failcnt": _number(_read(directory, f"{prefix}.failcnt")),
    }


def _blkio_v1(directory: str, name: str) -> list[dict[str, Any]]:
    """``8:0 Read 4096`` lines (``8:0 4096`` for the sector and time files); no Total."""
    entries = []
    for line in (_read(directory, name) or "").splitlines():
        parts = line.replace(":", " ").split()
        if len(parts) in (3, 4) and parts[0].isdigit() and parts[1].isdigit():
            op = parts[2] if len(parts) == 4 else ""
            entries.append(
                {"major": int(parts[0]), "minor": int(parts[1]), "op": op, "value": int(parts[-1])}
            )
    return entries


_CFQ = (
    ("sectors_recursive", "sectorsRecursive"),
    ("io_service_time_recursive", "ioServiceTimeRecursive"),
    ("io_wait_time_recursive", "ioWaitTimeRecursive"),
    ("io_merged_recursive", "ioMergedRecursive"),
    ("io_queued_recursive", "ioQueueRecursive"),
    ("time_recursive", "ioTimeRecursive"),
    ("io_serviced_recursive", "ioServicedRecursive"),
    ("io_service_bytes_recursive", "ioServiceBytesRecursive"),
)
#: runc's order: the first group whose first file has entries is the one reported
_BLKIO_GROUPS = (
    tuple((f"blkio.bfq.{name}", key) for name, key in _CFQ),
    tuple((f"blkio.bfq.{name}", key) for name, key in _CFQ[-2:]),
    tuple((f"blkio.{name}", key) for name, key in _CFQ),
    tuple((f"blkio.throttle.{name}", key) for name, key in _CFQ[-2:]),
    tuple((f"blkio.throttle.{name.removesuffix('_recursive')}", key) for name, key in _CFQ[-2:]),
)


def _blkio(directory: str) -> dict[str, list[dict[str, Any]]]:
    for group in _BLKIO_GROUPS:
        if _blkio_v1(directory, group[0][0]):
            return {key: _blkio_v1(directory, name) for name, key in group}
    return {"ioServiceBytesRecursive": [], "ioServicedRecursive": []}


def stats_v1(directories: dict[str, str]) -> dict[str, Any]:
    """``directories``: controller -> its cgroup directory."""
    out: dict[str, Any] = {}
    if (d := directories.get("cpuacct")) is not None:
        ticks = _pairs(_read(d, "cpuacct.stat"))
        percpu = [int(v) for v in (_read(d, "cpuacct.usage_percpu") or "").split()]
        percpu_user, percpu_kernel = _usage_all(_read(d, "cpuacct.usage_all"))
        out["cpu"] = {
            "usage": {
                "total": _number(_read(d, "cpuacct.usage")),
                "percpu": percpu,
                "percpu_kernel": percpu_kernel,
                "percpu_user": percpu_user,
                "kernel": ticks.get("system", 0) * _NS_PER_TICK,
                "user": ticks.get("user", 0) * _NS_PER_TICK,
            }
        }
    if (d := directories.get("cpu")) is not None:
        stat = _pairs(_read(d, "cpu.stat"))
        out.setdefault("cpu", {})["throttling"] = {
            "periods": stat.get("nr_periods", 0),
            "throttledPeriods": stat.get("nr_throttled", 0),
            "throttledTime": stat.get("throttled_time", 0),
        }
    if (d := directories.get("cpuset")) is not None:
        out["cpuset"] = _cpuset(d)
    if (d := directories.get("memory")) is not None:
        raw = _pairs(_read(d, "memory.stat"))
        out["memory"] = {
            "cache": raw.get("cache", 0),
            "usage": _memory_entry(d, "memory"),
            "swap": _memory_entry(d, "memory.memsw"),
            "kernel": _memory_entry(d, "memory.kmem"),
            "kernelTCP": _memory_entry(d, "memory.kmem.tcp"),
            "raw": raw,
        }
    if (d := directories.get("pids")) is not None:
        limit = _number(_read(d, "pids.max"))
        out["pids"] = {
            "current": _number(_read(d, "pids.current")),
            "limit": 0 if limit == _MAX else limit,
        }
    if (d := directories.get("blkio")) is not None:
        out["blkio"] = _blkio(d)
    if (d := directories.get("hugetlb")) is not None:
        out["hugetlb"] = _hugetlb(
            d, os.listdir(d), ".usage_in_bytes", ".max_usage_in_bytes", ".failcnt"
        )
    return out


def _usage_all(text: str | None) -> tuple[list[int], list[int]]:
    """cpuacct.usage_all (``cpu user system`` per line): per-cpu user and kernel ns."""
    user: list[int] = []
    kernel: list[int] = []
    for line in (text or "").splitlines()[1:]:
        fields = line.split()
        if len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit():
            user.append(int(fields[1]))
            kernel.append(int(fields[2]))
    return user, kernel


def _cpu_list(text: str | None) -> list[int]:
    """A cpuset list ("0-3,5") as its numbers."""
    numbers: list[int] = []
    for part in (text or "").strip().split(","):
        first, _, last = part.partition("-")
        if first.isdigit():
            numbers += range(int(first), int(last or first) + 1)
    return numbers


def _cpuset(directory: str) -> dict[str, Any]:
    """v1 cpuset's settings, as runc's ``CPUSetStats`` reports them."""
    out: dict[str, Any] = {
        "cpus": _cpu_list(_read(directory, "cpuset.cpus")),
        "mems": _cpu_list(_read(directory, "cpuset.mems")),
    }
    for key in CPUSET_FLAGS:
        out[key] = int((_read(directory, f"cpuset.{key}") or "0").strip() or 0)
    return out


#: the cpuset flag files, in runc's order (its stats JSON keeps it)
CPUSET_FLAGS = (
    "cpu_exclusive",
    "mem_hardwall",
    "mem_exclusive",
    "memory_migrate",
    "memory_spread_page",
    "memory_spread_slab",
    "memory_pressure",
    "sched_load_balance",
    "sched_relax_domain_level",
)


def _hugetlb(
    directory: str, names: Iterable[str], usage: str, peak: str, fail: str
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        if name.startswith("hugetlb.") and name.endswith(usage) and ".rsvd." not in name:
            size = name[len("hugetlb.") : -len(usage)]
            if fail == "events":
                failcnt = _pairs(_read(directory, f"hugetlb.{size}.events")).get("max", 0)
            else:
                failcnt = _number(_read(directory, f"hugetlb.{size}{fail}"))
            out[size] = {
                "usage": _number(_read(directory, name)),
                "max": _number(_read(directory, f"hugetlb.{size}{peak}")) if peak else 0,
                "failcnt": failcnt,
            }
    return out


def _io_v2(directory: str) -> dict[str, Any]:
    """io.stat -> runc's v1-shaped blkio entries (rbytes -> Read bytes...)."""
    service_bytes: list[dict[str, Any]] = []
    serviced: list[dict[str, Any]] = []
    for line in (_read(directory, "io.stat") or "").splitlines():
        device, *fields = line.split()
        major, minor = (int(n) for n in device.split(":"))
        values = dict(field.split("=", 1) for field in fields)
        for key, op, target in (
            ("rbytes", "Read", service_bytes),
            ("wbytes", "Write", service_bytes),
            ("rios", "Read", serviced),
            ("wios", "Write", serviced),
        ):
            if key in values:
                target.append({"major": major, "minor": minor, "op": op, "value": int(values[key])})
    return {"ioServiceBytesRecursive": service_bytes, "ioServicedRecursive": serviced}


def stats_v2(directory: str) -> dict[str, Any]:
    stat = _pairs(_read(directory, "cpu.stat"))
    raw = _pairs(_read(directory, "memory.stat"))
    events = _pairs(_read(directory, "memory.events"))
    usage = _number(_read(directory, "memory.current"))
    limit = _number(_read(directory, "memory.max"))
    swap_usage = _number(_read(directory, "memory.swap.current"))
    swap_limit = _number(_read(directory, "memory.swap.max"))
    pids_limit = _number(_read(directory, "pids.max"))
    return {
        "cpu": {
            "usage": {
                "total": stat.get("usage_usec", 0) * 1000,
                "kernel": stat.get("system_usec", 0) * 1000,
                "user": stat.get("user_usec", 0) * 1000,
            },
            "throttling": {
                "periods": stat.get("nr_periods", 0),
                "throttledPeriods": stat.get("nr_throttled", 0),
                "throttledTime": stat.get("throttled_usec", 0) * 1000,
            },
        },
        "memory": {
            "cache": raw.get("file", 0),
            "usage": {
                "limit": limit,
                "usage": usage,
                "max": _number(_read(directory, "memory.peak")),
                "failcnt": events.get("max", 0),
            },
            # v1's meaning (memory+swap), as runc reports it
            "swap": {
                "limit": swap_limit if _MAX in (swap_limit, limit) else swap_limit + limit,
                "usage": swap_usage + usage,
                "failcnt": 0,
            },
            "raw": raw,
            "event_count": events,
        },
        "pids": {
            "current": _number(_read(directory, "pids.current")),
            "limit": 0 if pids_limit == _MAX else pids_limit,
        },
        "blkio": _io_v2(directory),
        "hugetlb": _hugetlb(directory, os.listdir(directory), ".current", "", "events"),
    }
