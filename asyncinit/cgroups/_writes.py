"""Resources -> the ordered cgroup file writes of each driver, with runc's semantics.

Pure functions: no file is touched.  Every field the host cannot honour is
reported (``linux.resources.memory.swappiness: ...``), never skipped: runc
ignores a few of them on cgroup v2 without a word, asyncinit says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from ._convert import blkio_weight_to_io_weight, cpu_shares_to_weight, swap_to_v2
from ._plan import UsageCheck, WriteOp
from ._resources import CPU, BlockIO, Memory, Resources, ThrottleDevice

ROOT: Final = "linux.resources"
_U64_MAX: Final = (1 << 64) - 1
Report = Callable[[str, str], None]


def write(
    file: str,
    value: str | int,
    field: str,
    *,
    retry: bool = False,
    fallback: Sequence[tuple[str, str | int]] = (),
    optional: bool = False,
) -> WriteOp:
    return {
        "file": file,
        "value": str(value),
        "field": field,
        "retry": retry,
        "fallback": [[f, str(v)] for f, v in fallback],
        "optional": optional,
    }


class Writes:
    """The writes and usage checks built for one cgroup version, plus the problems."""

    def __init__(self, version: int, report: Report) -> None:
        self.version = version
        self.report = report
        self.ops: list[WriteOp] = []
        self.checks: list[UsageCheck] = []

    def add(self, *args: object, **kwargs: object) -> None:
        self.ops.append(write(*args, **kwargs))  # type: ignore[arg-type]

    def v1_only(self, field: str, value: object, what: str) -> bool:
        """False (and a report) when ``value`` is given on v2, which has no ``what``."""
        if value is None or self.version == 1:
            return value is not None
        self.report(field, f"cgroup v2 has no {what}; this host runs cgroup v2")
        return False


def _memory_v1(w: Writes, m: Memory, f: str) -> None:
    limit, swap = m.limit or 0, m.swap or 0
    if limit == -1 and swap == 0:
        swap = -1  # as runc: unlimited memory means unlimited memory+swap too
        if m.limit is not None:
            # optional: memsw files exist only with swap accounting
            w.add("memory.memsw.limit_in_bytes", -1, f"{f}.limit", retry=True, optional=True)
    if limit:
        w.add("memory.limit_in_bytes", limit, f"{f}.limit", retry=True)
    if swap and not (limit == -1 and (m.swap or 0) == 0):
        w.add("memory.memsw.limit_in_bytes", swap, f"{f}.swap", retry=True)
    if m.reservation:
        w.add("memory.soft_limit_in_bytes", m.reservation, f"{f}.reservation")
    if m.kernel_tcp:
        w.add("memory.kmem.tcp.limit_in_bytes", m.kernel_tcp, f"{f}.kernelTCP")
    if m.disable_oom_killer:
        w.add("memory.oom_control", 1, f"{f}.disableOOMKiller")
    if m.swappiness is not None and m.swappiness not in (-1, _U64_MAX):
        if 0 <= m.swappiness <= 100:
            w.add("memory.swappiness", m.swappiness, f"{f}.swappiness")
        else:
            w.report(f"{f}.swappiness", f"must be between 0 and 100, got {m.swappiness}")


def _memory_v2(w: Writes, m: Memory, f: str) -> None:
    limit, swap = m.limit or 0, m.swap or 0
    w.v1_only(f"{f}.swappiness", None if m.swappiness in (None, -1, _U64_MAX) else 1, "swappiness")
    w.v1_only(
        f"{f}.disableOOMKiller", m.disable_oom_killer or None, "switch to disable the OOM killer"
    )
    w.v1_only(
        f"{f}.kernelTCP",
        m.kernel_tcp or None,
        "kernel TCP limit (socket memory counts in memory.max)",
    )
    if m.check_before_update and (limit > 0 or swap > 0):
        if limit > 0:
            w.checks.append({"files": ["memory.current"], "limit": limit, "field": f"{f}.limit"})
        if swap > 0:
            files = ["memory.current", "memory.swap.current"]
            w.checks.append({"files": files, "limit": swap, "field": f"{f}.swap"})
    v2_swap = swap_to_v2(swap, limit)
    if v2_swap or (swap > 0 and swap == limit):
        value = "max" if v2_swap == -1 else v2_swap
        # implied by limit -1 alone: optional, absent without swap accounting
        field = f"{f}.swap" if m.swap else f"{f}.limit"
        w.add("memory.swap.max", value, field, optional=not m.swap)
    if limit:
        w.add("memory.max", "max" if limit == -1 else limit, f"{f}.limit")
    if m.reservation:
        w.add("memory.low", "max" if m.reservation == -1 else m.reservation, f"{f}.reservation")


def memory(w: Writes, m: Memory) -> None:
    f = f"{ROOT}.memory"
    limit, swap = m.limit or 0, m.swap or 0
    for key, value in (("limit", m.limit), ("reservation", m.reservation)):
        if value is not None and value < -1:
            w.report(f"{f}.{key}", f"must be -1 (unlimited) or a number of bytes, got {value}")
    if swap < -1:
        w.report(f"{f}.swap", f"must be -1 (unlimited) or a number of bytes, got {swap}")
    elif swap > 0 and limit in (0, -1) and not (limit == -1 and w.version == 1):
        w.report(f"{f}.swap", "a memory+swap limit needs a memory limit (memory.limit)")
    elif swap > 0 and 0 < swap < limit:
        w.report(f"{f}.swap", f"memory+swap ({swap}) must be at least memory.limit ({limit})")
    if m.kernel not in (None, 0, -1):
        w.report(f"{f}.kernel", "kernel memory limits are not supported (the kernel ignores them)")
    if m.use_hierarchy is False:
        w.report(
            f"{f}.useHierarchy",
            "cannot be false: the kernel's memory cgroups are always hierarchical",
        )
    (_memory_v1 if w.version == 1 else _memory_v2)(w, m, f)


def cpu(w: Writes, c: CPU) -> None:
    f = f"{ROOT}.cpu"
    if w.v1_only(f"{f}.realtimePeriod", c.realtime_period or None, "realtime scheduling budget"):
        w.add("cpu.rt_period_us", c.realtime_period, f"{f}.realtimePeriod", retry=True)
    if w.v1_only(f"{f}.realtimeRuntime", c.realtime_runtime or None, "realtime scheduling budget"):
        w.add("cpu.rt_runtime_us", c.realtime_runtime, f"{f}.realtimeRuntime")
    if c.shares:
        if not 2 <= c.shares <= 262144:
            w.report(f"{f}.shares", f"must be between 2 and 262144, got {c.shares}")
        elif w.version == 1:
            w.add("cpu.shares", c.shares, f"{f}.shares")
        else:
            w.add("cpu.weight", cpu_shares_to_weight(c.shares), f"{f}.shares")
    if c.idle is not None and c.idle not in (0, 1):
        w.report(f"{f}.idle", f"must be 0 or 1, got {c.idle}")
    if c.quota is not None and c.quota < -1:
        w.report(f"{f}.quota", f"must be -1 (unlimited) or microseconds, got {c.quota}")
    if w.version == 1:
        if c.period:
            w.add("cpu.cfs_period_us", c.period, f"{f}.period", retry=bool(c.quota))
        if c.burst is not None:
            w.add("cpu.cfs_burst_us", c.burst, f"{f}.burst", retry=bool(c.quota))
        if c.quota:
            w.add("cpu.cfs_quota_us", c.quota, f"{f}.quota")
        if c.idle is not None:
            w.add("cpu.idle", c.idle, f"{f}.idle")
    else:
        if c.idle is not None:
            w.add("cpu.idle", c.idle, f"{f}.idle")
        if c.burst is not None:
            w.add("cpu.max.burst", c.burst, f"{f}.burst", retry=bool(c.quota))
        if c.quota or c.period:
            value = str(c.quota) if c.quota and c.quota > 0 else "max"
            value += f" {c.period}" if c.period else ""
            w.add("cpu.max", value, f"{f}.quota" if c.quota else f"{f}.period")
    if c.cpus:
        w.add("cpuset.cpus", c.cpus, f"{f}.cpus")
    if c.mems:
        w.add("cpuset.mems", c.mems, f"{f}.mems")


def pids(w: Writes, limit: int | None) -> None:
    if limit:
        w.add("pids.max", limit if limit > 0 else "max", f"{ROOT}.pids.limit")


def _weight(w: Writes, field: str, value: int | None) -> bool:
    if value is None or value == 0:
        return False
    if not 10 <= value <= 1000:
        w.report(field, f"must be between 10 and 1000, got {value}")
        return False
    return True


_THROTTLES: Final = (
    ("throttleReadBpsDevice", "read_bps_device", "rbps"),
    ("throttleWriteBpsDevice", "write_bps_device", "wbps"),
    ("throttleReadIOPSDevice", "read_iops_device", "riops"),
    ("throttleWriteIOPSDevice", "write_iops_device", "wiops"),
)


def _throttles(b: BlockIO) -> list[tuple[str, str, str, Sequence[ThrottleDevice]]]:
    lists = (
        b.throttle_read_bps_device,
        b.throttle_write_bps_device,
        b.throttle_read_iops_device,
        b.throttle_write_iops_device,
    )
    return [(*names, devices) for names, devices in zip(_THROTTLES, lists, strict=True)]


def block_io(w: Writes, b: BlockIO) -> None:
    f = f"{ROOT}.blockIO"
    v1 = w.version == 1
    if _weight(w, f"{f}.weight", b.weight):
        if v1:
            w.add(
                "blkio.weight",
                b.weight,
                f"{f}.weight",
                fallback=[("blkio.bfq.weight", b.weight or 0)],
            )
        else:
            converted = blkio_weight_to_io_weight(b.weight or 0)
            w.add("io.bfq.weight", b.weight, f"{f}.weight", fallback=[("io.weight", converted)])
    if w.v1_only(f"{f}.leafWeight", b.leaf_weight or None, "leaf weights") and _weight(
        w, f"{f}.leafWeight", b.leaf_weight
    ):
        w.add("blkio.leaf_weight", b.leaf_weight, f"{f}.leafWeight")
    for i, d in enumerate(b.weight_device):
        field = f"{f}.weightDevice[{i}]"
        if _weight(w, f"{field}.weight", d.weight):
            line = f"{d.major}:{d.minor} {d.weight}"
            if v1:
                w.add(
                    "blkio.weight_device",
                    line,
                    f"{field}.weight",
                    fallback=[("blkio.bfq.weight_device", line)],
                )
            else:
                w.add("io.bfq.weight", line, f"{field}.weight")
        if w.v1_only(f"{field}.leafWeight", d.leaf_weight or None, "leaf weights") and _weight(
            w, f"{field}.leafWeight", d.leaf_weight
        ):
            w.add(
                "blkio.leaf_weight_device",
                f"{d.major}:{d.minor} {d.leaf_weight}",
                f"{field}.leafWeight",
            )
    for key, v1_file, v2_key, devices in _throttles(b):
        for i, t in enumerate(devices):
            field = f"{f}.{key}[{i}]"
            if v1:
                w.add(f"blkio.throttle.{v1_file}", f"{t.major}:{t.minor} {t.rate}", field)
            else:
                w.add("io.max", f"{t.major}:{t.minor} {v2_key}={t.rate}", field)


def hugetlb(w: Writes, r: Resources, page_sizes: Sequence[str]) -> None:
    for i, h in enumerate(r.hugepage_limits):
        field = f"{ROOT}.hugepageLimits[{i}]"
        if h.page_size not in page_sizes:
            sizes = ", ".join(page_sizes) or "none"
            w.report(
                f"{field}.pageSize",
                f"{h.page_size!r} is not a huge page size of this host ({sizes})",
            )
            continue
        suffix = ".limit_in_bytes" if w.version == 1 else ".max"
        w.add(f"hugetlb.{h.page_size}{suffix}", h.limit, f"{field}.limit")
        w.add(f"hugetlb.{h.page_size}.rsvd{suffix}", h.limit, f"{field}.limit", optional=True)


def network(w: Writes, r: Resources) -> None:
    n = r.network
    f = f"{ROOT}.network"
    if n is None:
        return
    if w.v1_only(f"{f}.classID", n.class_id, "net_cls controller"):
        w.add("net_cls.classid", n.class_id, f"{f}.classID")
    if w.v1_only(f"{f}.priorities", n.priorities or None, "net_prio controller"):
        for i, p in enumerate(n.priorities):
            w.add("net_prio.ifpriomap", f"{p.name} {p.priority}", f"{f}.priorities[{i}]")


def rdma(w: Writes, r: Resources) -> None:
    for device, limits in sorted(r.rdma.items()):
        line = device
        if limits.hca_handles is not None:
            line += f" hca_handle={limits.hca_handles}"
        if limits.hca_objects is not None:
            line += f" hca_object={limits.hca_objects}"
        w.add("rdma.max", line, f"{ROOT}.rdma[{device!r}]")
