"""compute_plan: Resources + cgroupsPath + container id + host -> CgroupPlan.

All policy lives here, in the parent: path semantics (runc's cgroupfs
driver), the driver (v1 or v2, from the host), value conversions, validation.
Problems are collected and raised together as one ``ConfigError`` whose lines
name the config.json field.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Final

from ..config._model import ConfigError
from . import _devices
from ._bpf import LICENSE, device_filter
from ._host import Host, clean_path, detect_host, v1_directory, v2_directory
from ._plan import CgroupPlan, DevicesPlan, HierarchyPlan, WriteOp
from ._resources import DeviceRule, Resources
from ._writes import ROOT, Writes, block_io, cpu, hugetlb, memory, network, pids, rdma

#: cgroup interface files ``unified`` may not write: they move processes, kill,
#: freeze or reshape the tree, which are the runtime's business, not a limit.
_UNIFIED_REFUSED: Final = frozenset(
    {
        "cgroup.procs",
        "cgroup.threads",
        "cgroup.kill",
        "cgroup.freeze",
        "cgroup.type",
        "cgroup.subtree_control",
    }
)


class SystemdDriverError(ValueError):
    """A systemd cgroup driver was asked for; there is none (yet)."""


def host_page_sizes() -> list[str]:
    """Huge page sizes as the cgroup files name them ("2MB", "1GB"), like runc's."""
    try:
        entries = os.listdir("/sys/kernel/mm/hugepages")
    except OSError:
        return []
    sizes = []
    for entry in sorted(entries):
        kib = int(entry.removeprefix("hugepages-").removesuffix("kB"))
        for unit, scale in (("GB", 1 << 20), ("MB", 1 << 10), ("KB", 1)):
            if kib % scale == 0:
                sizes.append(f"{kib // scale}{unit}")
                break
    return sizes


def device_rules(rules: Sequence[DeviceRule], report: _Report) -> list[_devices.Rule]:
    out = []
    for i, rule in enumerate(rules):
        field = f"{ROOT}.devices[{i}]"
        kind = rule.type or "a"
        if kind not in ("a", "b", "c"):
            report(f"{field}.type", f'must be "a", "b" or "c", got {kind!r}')
        if not rule.access or set(rule.access) - set("rwm"):
            report(
                f"{field}.access",
                f"must be a non-empty combination of r, w and m, got {rule.access!r}",
            )
        for key, number in (("major", rule.major), ("minor", rule.minor)):
            if number is not None and not 0 <= number <= 0xFFFFFFFF:
                report(f"{field}.{key}", f"must be between 0 and 4294967295, got {number}")
        major = -1 if rule.major is None else rule.major
        minor = -1 if rule.minor is None else rule.minor
        out.append(
            _devices.Rule(
                kind,
                major,
                minor,
                "".join(p for p in "rwm" if p in (rule.access or "")),
                rule.allow,
            )
        )
    return out


class _Report:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def __call__(self, field: str, message: str) -> None:
        self.errors.append(f"{field}: {message}")


def _devices_plan(
    resources: Resources,
    extra: Sequence[_devices.Rule],
    host: Host,
    rootless: bool,
    report: _Report,
) -> DevicesPlan | None:
    rules = device_rules(resources.devices, report) + list(extra)
    if rootless and host.in_userns and not host.unified:
        return None  # runc: no device cgroup from a user namespace (it cannot work there)
    try:
        emulator = _devices.emulate(rules)
    except _devices.DeviceRuleError as error:
        report(f"{ROOT}.devices", str(error))
        return None
    start = _devices.Emulator(default_allow=True)  # forces the explicit reset line first
    return {
        "default_allow": emulator.default_allow,
        "rules": [rule.line() for rule in emulator.rules()],
        "v1_writes": _devices.v1_writes(_devices.transition(start, emulator)),
        "bpf": device_filter(emulator).hex() if host.unified else "",
        "license": LICENSE,
        "ignore_errors": rootless,
    }


def build_writes(resources: Resources, host: Host, report: _Report) -> Writes:
    """The ordered writes of every typed field, then ``unified`` (which wins, as in runc)."""
    w = Writes(host.version, report)
    if resources.pids is not None:
        pids(w, resources.pids.limit)
    if resources.memory is not None:
        memory(w, resources.memory)
    if resources.block_io is not None:
        block_io(w, resources.block_io)
    if resources.cpu is not None:
        cpu(w, resources.cpu)
    if resources.hugepage_limits:
        hugetlb(w, resources, host_page_sizes())
    rdma(w, resources)
    network(w, resources)
    if resources.unified:
        _unified(w, resources, host)
    return w


def _unified(w: Writes, resources: Resources, host: Host) -> None:
    for key, value in resources.unified.items():
        field = f"{ROOT}.unified[{json.dumps(key)}]"
        if not host.unified:
            w.report(field, "raw cgroup v2 settings need cgroup v2; this host runs cgroup v1")
            continue
        controller, dot, rest = key.partition(".")
        if "/" in key or not dot or not controller or not rest or key.startswith("."):
            w.report(field, 'must be a file name CONTROLLER.PARAMETER (no "/")')
        elif key in _UNIFIED_REFUSED:
            w.report(field, f"{key} is the runtime's, not a limit")
        elif controller != "cgroup" and controller not in host.v2_controllers:
            w.report(field, f"controller {controller!r} is not available on this host")
        else:
            w.add(key, value, field)


def _controller_of(op: WriteOp) -> str:
    return op["file"].split(".", 1)[0]


def _place_v1(w: Writes, hierarchies: list[HierarchyPlan], report: _Report) -> None:
    by_controller = {c: h for h in hierarchies for c in h["controllers"]}
    for op in w.ops:
        controller = _controller_of(op)
        hierarchy = by_controller.get(controller)
        if hierarchy is None:
            report(op["field"], f"the {controller} cgroup controller is not mounted on this host")
        else:
            hierarchy["writes"].append(op)


def _check_v2(w: Writes, host: Host, report: _Report) -> None:
    for op in w.ops:
        controller = _controller_of(op)
        if controller not in ("cgroup", *host.v2_controllers):
            report(op["field"], f"the {controller} cgroup controller is not available on this host")


def _systemd_style(path: str) -> bool:
    parts = path.split(":")
    return len(parts) == 3 and "/" not in path


def inner_path(cgroups_path: str | None, container_id: str, report: _Report) -> str:
    """runc's cgroupfs rule: the cleaned cgroupsPath, else the container id (relative).

    A systemd unit path (``slice:prefix:name``, what runc's systemd driver takes)
    is refused: cgroupfs would make a directory of that literal name, which is
    not what its author meant."""
    if cgroups_path and _systemd_style(cgroups_path):
        report(
            "linux.cgroupsPath",
            f"{cgroups_path!r} is a systemd unit path (slice:prefix:name); asyncinit has "
            "only the cgroupfs driver: give a directory path",
        )
    inner = clean_path(cgroups_path) if cgroups_path else clean_path(container_id)
    if inner in ("/", ".", ""):
        field = "linux.cgroupsPath" if cgroups_path else "container id"
        report(
            field,
            f"{cgroups_path or container_id!r} names the root or our own cgroup, not a new one",
        )
    return inner


def compute_plan(
    resources: Resources | None,
    *,
    container_id: str,
    cgroups_path: str | None = None,
    host: Host | None = None,
    rootless: bool | None = None,
    systemd: bool = False,
    default_devices: Sequence[_devices.Rule] = _devices.DEFAULT_RULES,
) -> CgroupPlan:
    """The plan for a new container's cgroup.  Raises ConfigError naming each bad field.

    ``default_devices`` are appended after ``resources.devices`` (runc appends its
    default allowed devices and the config's ``linux.devices`` nodes there).
    ``rootless`` defaults to runc's choice: not root, or in a user namespace.
    """
    if systemd:
        raise SystemdDriverError(
            "the systemd cgroup driver is not available (no systemd on this host); "
            "asyncinit manages cgroups with the cgroupfs driver only"
        )
    host = host or detect_host()
    resources = resources or Resources()
    if rootless is None:
        rootless = os.geteuid() != 0 or host.in_userns
    report = _Report()
    inner = inner_path(cgroups_path, container_id, report)
    w = build_writes(resources, host, report)
    hierarchies = _hierarchies(host, inner)
    if host.unified:
        _check_v2(w, host, report)
        hierarchies[0]["writes"] = w.ops
        hierarchies[0]["checks"] = w.checks
    else:
        _place_v1(w, hierarchies, report)
    devices = _devices_plan(resources, default_devices, host, rootless, report)
    if not host.unified and devices is not None and host.hierarchy("devices") is None:
        report(f"{ROOT}.devices", "the devices cgroup controller is not mounted on this host")
    if report.errors:
        raise ConfigError(report.errors)
    return {
        "version": 2 if host.unified else 1,
        "driver": "cgroupfs",
        "path": inner,
        "explicit_path": bool(cgroups_path),
        "rootless": rootless,
        "v2_mount": host.v2_mount or "",
        "enable": " ".join(f"+{c}" for c in host.v2_controllers),
        "hierarchies": hierarchies,
        "devices": devices,
    }


def _hierarchies(host: Host, inner: str) -> list[HierarchyPlan]:
    if host.unified:
        directory = v2_directory(host, inner)
        return [
            {"controllers": [], "directory": directory, "inherit": [], "writes": [], "checks": []}
        ]
    return [
        {
            "controllers": list(h.controllers),
            "directory": v1_directory(host, h, inner),
            "inherit": ["cpuset.cpus", "cpuset.mems"] if "cpuset" in h.controllers else [],
            "writes": [],
            "checks": [],
        }
        for h in host.hierarchies
    ]


def update_plan(plan: CgroupPlan, resources: Resources, host: Host | None = None) -> CgroupPlan:
    """``plan`` with the writes of ``resources`` (the full, merged set): same directories."""
    host = host or detect_host()
    report = _Report()
    w = build_writes(resources, host, report)
    hierarchies: list[HierarchyPlan] = [
        {**h, "writes": [], "checks": []} for h in plan["hierarchies"]
    ]
    if plan["version"] == 2:
        _check_v2(w, host, report)
        hierarchies[0]["writes"], hierarchies[0]["checks"] = w.ops, w.checks
    else:
        _place_v1(w, hierarchies, report)
    if report.errors:
        raise ConfigError(report.errors)
    return {**plan, "hierarchies": hierarchies}
