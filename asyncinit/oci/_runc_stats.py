"""``runc events``' JSON: the cgroup's counters (``FsManager.stats()``) as runc 1.1.5's
``types.Event``/``types.Stats`` encode them.

Keys in runc's struct order, Go's ``omitempty`` where runc's struct tags have it
(a zero counter disappears, a zero limit or ``failcnt`` stays), maps with sorted
keys.  runc 1.1.5 reads less on cgroup v2 than the Python API reports: no peak
(``max``) and no ``failcnt`` for memory, no cpuset; those are left out here too.
"""

from __future__ import annotations

from .._leanjson import dumps
from ..cgroups._stats import CPUSET_FLAGS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_BLKIO_KEYS = (
    "ioServiceBytesRecursive",
    "ioServicedRecursive",
    "ioQueueRecursive",
    "ioServiceTimeRecursive",
    "ioWaitTimeRecursive",
    "ioMergedRecursive",
    "ioTimeRecursive",
    "sectorsRecursive",
)


def _given(pairs: dict[str, Any]) -> dict[str, Any]:
    """Go's omitempty: zero numbers, empty strings, lists and maps left out."""
    return {key: value for key, value in pairs.items() if value}


def _cpu(cpu: dict[str, Any]) -> dict[str, Any]:
    usage = cpu.get("usage", {})
    throttling = cpu.get("throttling", {})
    return {
        "usage": {
            **_given(
                {
                    "total": usage.get("total", 0),
                    "percpu": usage.get("percpu"),
                    "percpu_kernel": usage.get("percpu_kernel"),
                    "percpu_user": usage.get("percpu_user"),
                }
            ),
            "kernel": usage.get("kernel", 0),
            "user": usage.get("user", 0),
        },
        "throttling": _given(
            {
                key: throttling.get(key, 0)
                for key in ("periods", "throttledPeriods", "throttledTime")
            }
        ),
    }


def _cpuset(cpuset: dict[str, Any]) -> dict[str, Any]:
    out = _given({"cpus": cpuset.get("cpus")})
    out["cpu_exclusive"] = cpuset.get("cpu_exclusive", 0)
    out.update(_given({"mems": cpuset.get("mems")}))
    out.update({key: cpuset.get(key, 0) for key in CPUSET_FLAGS[1:]})
    return out


def _memory_entry(entry: dict[str, Any], version: int) -> dict[str, Any]:
    out = {"limit": entry.get("limit", 0)}
    out.update(_given({"usage": entry.get("usage", 0)}))
    if version == 1:
        out.update(_given({"max": entry.get("max", 0)}))
    out["failcnt"] = entry.get("failcnt", 0) if version == 1 else 0
    return out


def _memory(memory: dict[str, Any], version: int) -> dict[str, Any]:
    out = _given({"cache": memory.get("cache", 0)})
    for key in ("usage", "swap", "kernel", "kernelTCP"):
        out[key] = _memory_entry(memory.get(key, {}), version)
    out.update(_given({"raw": dict(sorted(memory.get("raw", {}).items()))}))
    return out


def _blkio(blkio: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key in _BLKIO_KEYS:
        entries = [
            _given({name: entry[name] for name in ("major", "minor", "op", "value")})
            for entry in blkio.get(key, ())
        ]
        if entries:
            out[key] = entries
    return out


def runc_stats(stats: dict[str, Any], version: int) -> dict[str, Any]:
    """runc 1.1.5's ``types.Stats`` of ``FsManager.stats()``."""
    pids = stats.get("pids", {})
    hugetlb = stats.get("hugetlb", {})
    return {
        "cpu": _cpu(stats.get("cpu", {})),
        "cpuset": _cpuset(stats.get("cpuset", {})),
        "memory": _memory(stats.get("memory", {}), version),
        "pids": _given({"current": pids.get("current", 0), "limit": pids.get("limit", 0)}),
        "blkio": _blkio(stats.get("blkio", {})),
        "hugetlb": {
            size: {
                **_given({"usage": entry.get("usage", 0), "max": entry.get("max", 0)}),
                "failcnt": entry.get("failcnt", 0),
            }
            for size, entry in sorted(hugetlb.items())
        },
        "intel_rdt": {},
        "network_interfaces": None,
    }


def event_line(kind: str, container_id: str, data: dict[str, Any] | None = None) -> str:
    """One ``types.Event`` as runc's json.Encoder writes it (``data`` omitted when empty)."""
    event: dict[str, Any] = {"type": kind, "id": container_id}
    if data is not None:
        event["data"] = data
    return dumps(event) + "\n"
