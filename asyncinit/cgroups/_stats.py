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
    entries = []
    for line in (_read(directory, name) or "").splitlines():
        parts = line.split()
        if len(parts) == 3 and ":" in parts[0]:
            major, minor = parts[0].split(":")
            entries.append(
                {"major": int(major), "minor": int(minor), "op": parts[1], "value": int(parts[2])}
            )
    return entries


def stats_v1(directories: dict[str, str]) -> dict[str, Any]:
    """``directories``: controller -> its cgroup directory."""
    out: dict[str, Any] = {}
    if (d := directories.get("cpuacct")) is not None:
        ticks = _pairs(_read(d, "cpuacct.stat"))
        percpu = [int(v) for v in (_read(d, "cpuacct.usage_percpu") or "").split()]
        out["cpu"] = {
            "usage": {
                "total": _number(_read(d, "cpuacct.usage")),
                "percpu": percpu,
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
        out["blkio"] = {
            "ioServiceBytesRecursive": _blkio_v1(d, "blkio.throttle.io_service_bytes_recursive"),
            "ioServicedRecursive": _blkio_v1(d, "blkio.throttle.io_serviced_recursive"),
        }
    if (d := directories.get("hugetlb")) is not None:
        out["hugetlb"] = _hugetlb(
            d, os.listdir(d), ".usage_in_bytes", ".max_usage_in_bytes", ".failcnt"
        )
    return out


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
