"""``linux.resources`` of the runtime-spec as frozen attrs classes.

Attribute names are snake_case; each maps to the spec's JSON key the way
``asyncinit.config`` maps its own classes (camelCase, or the explicit
``asyncinit.json_key`` metadata where the spec's spelling is irregular), so the
config converter can structure ``linux.resources`` straight into ``Resources``
and every error names the JSON field.  ``None`` means "not given": the spec's
optional pointers, which runc leaves untouched (``runc update`` merges a partial
``Resources`` over the current one: :func:`merge`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, TypeVar

import attrs

#: the metadata key ``asyncinit.config._model.json_key`` reads
_JSON: Final = "asyncinit.json_key"
_T = TypeVar("_T", bound=attrs.AttrsInstance)


def _key(name: str) -> dict[str, str]:
    return {_JSON: name}


@attrs.frozen
class DeviceRule:
    """``linux.resources.devices[]``: a devices-cgroup rule (not a device node)."""

    allow: bool
    type: str | None = None
    major: int | None = None
    minor: int | None = None
    access: str | None = None


@attrs.frozen
class Memory:
    limit: int | None = None
    reservation: int | None = None
    swap: int | None = None
    kernel: int | None = None
    kernel_tcp: int | None = attrs.field(default=None, metadata=_key("kernelTCP"))
    swappiness: int | None = None
    disable_oom_killer: bool | None = attrs.field(default=None, metadata=_key("disableOOMKiller"))
    use_hierarchy: bool | None = None
    check_before_update: bool | None = None


@attrs.frozen
class CPU:
    shares: int | None = None
    quota: int | None = None
    burst: int | None = None
    period: int | None = None
    realtime_runtime: int | None = None
    realtime_period: int | None = None
    cpus: str | None = None
    mems: str | None = None
    idle: int | None = None


@attrs.frozen
class Pids:
    limit: int | None = None


@attrs.frozen
class WeightDevice:
    major: int
    minor: int
    weight: int | None = None
    leaf_weight: int | None = None


@attrs.frozen
class ThrottleDevice:
    major: int
    minor: int
    rate: int


@attrs.frozen
class BlockIO:
    weight: int | None = None
    leaf_weight: int | None = None
    weight_device: tuple[WeightDevice, ...] = ()
    throttle_read_bps_device: tuple[ThrottleDevice, ...] = ()
    throttle_write_bps_device: tuple[ThrottleDevice, ...] = ()
    throttle_read_iops_device: tuple[ThrottleDevice, ...] = attrs.field(
        default=(), metadata=_key("throttleReadIOPSDevice")
    )
    throttle_write_iops_device: tuple[ThrottleDevice, ...] = attrs.field(
        default=(), metadata=_key("throttleWriteIOPSDevice")
    )


@attrs.frozen
class HugepageLimit:
    page_size: str
    limit: int


@attrs.frozen
class InterfacePriority:
    name: str
    priority: int


@attrs.frozen
class Network:
    class_id: int | None = attrs.field(default=None, metadata=_key("classID"))
    priorities: tuple[InterfacePriority, ...] = ()


@attrs.frozen
class Rdma:
    hca_handles: int | None = None
    hca_objects: int | None = None


@attrs.frozen
class Resources:
    """``linux.resources`` (runtime-spec ``LinuxResources``)."""

    devices: tuple[DeviceRule, ...] = ()
    memory: Memory | None = None
    cpu: CPU | None = None
    pids: Pids | None = None
    block_io: BlockIO | None = attrs.field(default=None, metadata=_key("blockIO"))
    hugepage_limits: tuple[HugepageLimit, ...] = ()
    network: Network | None = None
    rdma: Mapping[str, Rdma] = attrs.field(factory=dict)
    unified: Mapping[str, str] = attrs.field(factory=dict)


def _merge_section(old: _T | None, new: _T | None) -> _T | None:
    """``new``'s given (non-None) fields over ``old``."""
    if old is None or new is None:
        return new if new is not None else old
    changes = {
        f.name: getattr(new, f.name)
        for f in attrs.fields(type(new))
        if getattr(new, f.name) is not None
    }
    return attrs.evolve(old, **changes)  # type: ignore[misc]  # mypy: TypeVar bound to attrs


def merge(current: Resources, update: Resources) -> Resources:
    """``update`` laid over ``current`` as ``runc update`` does.

    Scalar fields of memory, cpu, pids and blockIO replace the current ones only
    when given; a non-empty list or map replaces the whole current one (runc
    replaces device throttles, hugepage limits and unified keys the same way).
    Device rules are not updatable through ``runc update`` either: kept.
    """
    block_io = _merge_section(current.block_io, update.block_io)
    if current.block_io is not None and update.block_io is not None and block_io is not None:
        lists = {
            f.name: getattr(update.block_io, f.name) or getattr(current.block_io, f.name)
            for f in attrs.fields(BlockIO)
            if f.default == ()
        }
        block_io = attrs.evolve(block_io, **lists)
    return attrs.evolve(
        current,
        memory=_merge_section(current.memory, update.memory),
        cpu=_merge_section(current.cpu, update.cpu),
        pids=_merge_section(current.pids, update.pids),
        block_io=block_io,
        hugepage_limits=update.hugepage_limits or current.hugepage_limits,
        network=_merge_section(current.network, update.network),
        rdma=update.rdma or current.rdma,
        unified={**current.unified, **update.unified},
    )
