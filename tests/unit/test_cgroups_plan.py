"""The cgroup plan as pure logic: paths, conversions, writes, errors, device rules.

Hosts are built by hand (tests/support/cgroups.py: a v1 hybrid like this
machine's, a pure v2 like the guest's), so both drivers are checked on any
machine.  The kernel's verifier judges the eBPF program in
tests/integration/test_cgroups_bpf.py (loading needs root, not cgroup v2).
"""

from __future__ import annotations

from typing import Any

import pytest

from asyncinit.cgroups import compute_plan, merge, resources_from_dict, update_plan
from asyncinit.cgroups._compute import SystemdDriverError
from asyncinit.cgroups._convert import (
    blkio_weight_to_io_weight,
    cpu_shares_to_weight,
    cpu_shares_to_weight_linear,
    swap_to_v2,
)
from asyncinit.cgroups._devices import DEFAULT_RULES, Emulator, Rule, emulate, from_list, transition
from asyncinit.cgroups._host import Hierarchy, Host, clean_path, v1_directory, v2_directory
from asyncinit.cgroups._plan import CgroupPlan
from asyncinit.config import ConfigError
from tests.support.cgroups import V1, V2


def writes(plan: CgroupPlan, controller: str = "") -> dict[str, str]:
    for h in plan["hierarchies"]:
        if plan["version"] == 2 or controller in h["controllers"]:
            return {w["file"]: w["value"] for w in h["writes"]}
    raise AssertionError(controller)


def errors(resources: dict, host: Host = V1, **kwargs: object) -> list[str]:  # type: ignore[type-arg]
    with pytest.raises(ConfigError) as info:
        compute_plan(resources_from_dict(resources), container_id="c", host=host, **kwargs)  # type: ignore[arg-type]
    return info.value.errors


# -- paths ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("", ""),
        ("/a/b/", "/a/b"),
        ("a/../../b", "b"),
        ("../../etc", "etc"),
        ("/a/../..", "/"),
        ("./x", "x"),
    ],
)
def test_clean_path_never_climbs_out(raw: str, clean: str) -> None:
    assert clean_path(raw) == clean


def test_v1_paths_absolute_from_the_root_relative_under_our_own_cgroup() -> None:
    memory = V1.hierarchies[2]
    assert v1_directory(V1, memory, "/ctr") == "/sys/fs/cgroup/memory/ctr"
    assert v1_directory(V1, memory, "ctr") == "/sys/fs/cgroup/memory/sandbox/7/ctr"
    cpu = V1.hierarchies[0]
    assert v1_directory(V1, cpu, "ctr") == "/sys/fs/cgroup/cpu,cpuacct/user/1/ctr"
    nested = Hierarchy("/sys/fs/cgroup/memory", "/sandbox", ("memory",))
    assert v1_directory(V1, nested, "ctr") == "/sys/fs/cgroup/memory/7/ctr"  # mount root subtracted


def test_v2_relative_paths_go_under_the_parent_of_our_cgroup() -> None:
    assert v2_directory(V2, "/ctr") == "/sys/fs/cgroup/ctr"
    assert v2_directory(V2, "ctr") == "/sys/fs/cgroup/session/ctr"


def test_empty_cgroups_path_is_named_after_the_container() -> None:
    plan = compute_plan(None, container_id="web", host=V2)
    assert plan["path"] == "web"
    assert not plan["explicit_path"]
    assert plan["hierarchies"][0]["directory"] == "/sys/fs/cgroup/session/web"
    plan = compute_plan(None, container_id="web", cgroups_path="/pods/web", host=V1)
    assert [h["directory"] for h in plan["hierarchies"]][:2] == [
        "/sys/fs/cgroup/cpu,cpuacct/pods/web",
        "/sys/fs/cgroup/cpuset/pods/web",
    ]
    assert plan["explicit_path"]


@pytest.mark.parametrize("path", ["/", "..", "."])
def test_the_root_or_our_own_cgroup_is_refused(path: str) -> None:
    with pytest.raises(ConfigError, match=r"linux\.cgroupsPath"):
        compute_plan(None, container_id="c", cgroups_path=path, host=V1)


def test_systemd_driver_is_refused_clearly() -> None:
    with pytest.raises(SystemdDriverError, match="systemd cgroup driver is not available"):
        compute_plan(None, container_id="c", host=V2, systemd=True)


# -- conversions ---------------------------------------------------------------------------


def test_cpu_shares_to_weight_maps_the_defaults_onto_each_other() -> None:
    assert [cpu_shares_to_weight(s) for s in (0, 2, 1024, 262144)] == [0, 1, 100, 10000]
    assert cpu_shares_to_weight(512) == 59
    assert [cpu_shares_to_weight_linear(s) for s in (2, 1024, 262144)] == [1, 39, 10000]


def test_blkio_weight_and_swap_conversions() -> None:
    assert [blkio_weight_to_io_weight(w) for w in (0, 10, 500, 1000)] == [0, 1, 4950, 10000]
    assert swap_to_v2(0, -1) == -1  # unlimited memory: unlimited swap too
    assert swap_to_v2(-1, 100) == -1
    assert swap_to_v2(300, 100) == 200
    assert swap_to_v2(100, 100) == 0


# -- writes ------------------------------------------------------------------------------------


BROAD: dict[str, Any] = {
    "memory": {"limit": 1 << 30, "reservation": 1 << 29, "swap": 2 << 30, "swappiness": 10},
    "cpu": {
        "shares": 1024,
        "quota": 50000,
        "period": 100000,
        "burst": 1000,
        "cpus": "0-1",
        "mems": "0",
        "idle": 1,
    },
    "pids": {"limit": 100},
    "blockIO": {
        "weight": 500,
        "weightDevice": [{"major": 8, "minor": 0, "weight": 300}],
        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}],
        "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 30}],
    },
}


def test_v1_writes() -> None:
    plan = compute_plan(resources_from_dict(BROAD), container_id="c", host=V1)
    assert writes(plan, "memory") == {
        "memory.limit_in_bytes": str(1 << 30),
        "memory.memsw.limit_in_bytes": str(2 << 30),
        "memory.soft_limit_in_bytes": str(1 << 29),
        "memory.swappiness": "10",
    }
    assert writes(plan, "cpu") == {
        "cpu.shares": "1024",
        "cpu.cfs_period_us": "100000",
        "cpu.cfs_burst_us": "1000",
        "cpu.cfs_quota_us": "50000",
        "cpu.idle": "1",
    }
    assert writes(plan, "cpuset") == {"cpuset.cpus": "0-1", "cpuset.mems": "0"}
    assert writes(plan, "blkio") == {
        "blkio.weight": "500",
        "blkio.weight_device": "8:0 300",
        "blkio.throttle.read_bps_device": "8:0 1000",
        "blkio.throttle.write_iops_device": "8:0 30",
    }
    memory = next(h for h in plan["hierarchies"] if "memory" in h["controllers"])
    assert [w["retry"] for w in memory["writes"][:2]] == [True, True]  # either order fits
    assert next(h for h in plan["hierarchies"] if "cpuset" in h["controllers"])["inherit"]


def test_v2_writes_convert_v1_values() -> None:
    broad = {**BROAD, "memory": {k: v for k, v in BROAD["memory"].items() if k != "swappiness"}}
    plan = compute_plan(resources_from_dict(broad), container_id="c", host=V2)
    assert writes(plan) == {
        "pids.max": "100",
        "memory.swap.max": str(1 << 30),  # memory+swap 2 GiB - memory 1 GiB
        "memory.max": str(1 << 30),
        "memory.low": str(1 << 29),
        "io.bfq.weight": "8:0 300",  # the device weight (the plain weight comes first)
        "io.max": "8:0 wiops=30",
        "cpu.weight": "100",
        "cpu.idle": "1",
        "cpu.max.burst": "1000",
        "cpu.max": "50000 100000",
        "cpuset.cpus": "0-1",
        "cpuset.mems": "0",
    }
    ops = plan["hierarchies"][0]["writes"]
    weight = next(op for op in ops if op["field"] == "linux.resources.blockIO.weight")
    assert (weight["file"], weight["value"], weight["fallback"]) == (
        "io.bfq.weight",
        "500",
        [["io.weight", "4950"]],
    )
    assert [op["value"] for op in ops if op["file"] == "io.max"] == [
        "8:0 rbps=1000",
        "8:0 wiops=30",
    ]
    assert plan["enable"] == "+cpuset +cpu +io +memory +hugetlb +pids +rdma +misc"


def test_v2_swap_equal_to_memory_disables_swap_and_unlimited_memory_unlimits_it() -> None:
    plan = compute_plan(
        resources_from_dict({"memory": {"limit": 100, "swap": 100}}), container_id="c", host=V2
    )
    assert writes(plan)["memory.swap.max"] == "0"
    plan = compute_plan(resources_from_dict({"memory": {"limit": -1}}), container_id="c", host=V2)
    ops = plan["hierarchies"][0]["writes"]
    assert [(o["file"], o["value"], o["optional"]) for o in ops] == [
        ("memory.swap.max", "max", True),
        ("memory.max", "max", False),
    ]


def test_cpu_max_with_only_a_period_or_unlimited_quota() -> None:
    only_period = compute_plan(
        resources_from_dict({"cpu": {"period": 50000}}), container_id="c", host=V2
    )
    assert writes(only_period)["cpu.max"] == "max 50000"
    unlimited = compute_plan(resources_from_dict({"cpu": {"quota": -1}}), container_id="c", host=V2)
    assert writes(unlimited)["cpu.max"] == "max"


def test_unified_is_written_last_and_validated() -> None:
    plan = compute_plan(
        resources_from_dict(
            {"pids": {"limit": 5}, "unified": {"pids.max": "7", "memory.high": "1G"}}
        ),
        container_id="c",
        host=V2,
    )
    assert [(o["file"], o["value"]) for o in plan["hierarchies"][0]["writes"]] == [
        ("pids.max", "5"),
        ("pids.max", "7"),
        ("memory.high", "1G"),
    ]
    problems = errors(
        {"unified": {"cgroup.procs": "1", "../x": "1", "foo.bar": "1", "nodot": "1"}}, V2
    )
    name = 'must be a file name CONTROLLER.PARAMETER (no "/")'
    assert problems == [
        'linux.resources.unified["cgroup.procs"]: cgroup.procs is the runtime\'s, not a limit',
        f'linux.resources.unified["../x"]: {name}',
        "linux.resources.unified[\"foo.bar\"]: controller 'foo' is not available on this host",
        f'linux.resources.unified["nodot"]: {name}',
    ]


def test_fields_the_host_cannot_honour_are_errors_naming_them() -> None:
    v2 = errors(
        {
            "memory": {"limit": 100, "swappiness": 5, "disableOOMKiller": True, "kernelTCP": 10},
            "cpu": {"realtimeRuntime": 5, "realtimePeriod": 10},
            "blockIO": {"leafWeight": 100},
            "network": {"classID": 1},
        },
        V2,
    )
    assert [line.split(":")[0] for line in v2] == [
        "linux.resources.memory.swappiness",
        "linux.resources.memory.disableOOMKiller",
        "linux.resources.memory.kernelTCP",
        "linux.resources.blockIO.leafWeight",
        "linux.resources.cpu.realtimePeriod",
        "linux.resources.cpu.realtimeRuntime",
        "linux.resources.network.classID",
    ]
    v1 = errors(
        {
            "unified": {"memory.max": "1"},
            "network": {"classID": 1},
            "hugepageLimits": [{"pageSize": "3MB", "limit": 1}],
        }
    )
    assert v1[0].startswith(
        "linux.resources.hugepageLimits[0].pageSize: '3MB' is not a huge page size"
    )
    assert 'linux.resources.unified["memory.max"]: raw cgroup v2 settings need cgroup v2' in v1[1]
    assert v1[2] == (
        "linux.resources.network.classID: the net_cls cgroup controller is not mounted on this host"
    )


def test_bad_values_are_errors_naming_them() -> None:
    problems = errors(
        {
            "memory": {
                "limit": 100,
                "swap": 50,
                "kernel": 1000,
                "useHierarchy": False,
                "swappiness": 200,
            },
            "cpu": {"shares": 1, "idle": 3, "quota": -5},
            "blockIO": {"weight": 5, "weightDevice": [{"major": 8, "minor": 0, "weight": 2000}]},
            "devices": [{"allow": True, "type": "x", "access": "rwx"}],
        }
    )
    fields = [line.split(":")[0] for line in problems]
    assert fields == [
        "linux.resources.memory.swap",
        "linux.resources.memory.kernel",
        "linux.resources.memory.useHierarchy",
        "linux.resources.memory.swappiness",
        "linux.resources.blockIO.weight",
        "linux.resources.blockIO.weightDevice[0].weight",
        "linux.resources.cpu.shares",
        "linux.resources.cpu.idle",
        "linux.resources.cpu.quota",
        "linux.resources.devices[0].type",
        "linux.resources.devices[0].access",
    ]


def test_swap_without_a_memory_limit_is_refused() -> None:
    assert errors({"memory": {"swap": 100}}, V2) == [
        "linux.resources.memory.swap: a memory+swap limit needs a memory limit (memory.limit)"
    ]


def test_check_before_update_becomes_usage_checks_on_v2() -> None:
    resources = resources_from_dict(
        {"memory": {"limit": 100, "swap": 300, "checkBeforeUpdate": True}}
    )
    plan = compute_plan(resources, container_id="c", host=V2)
    assert plan["hierarchies"][0]["checks"] == [
        {"files": ["memory.current"], "limit": 100, "field": "linux.resources.memory.limit"},
        {
            "files": ["memory.current", "memory.swap.current"],
            "limit": 300,
            "field": "linux.resources.memory.swap",
        },
    ]


def test_update_keeps_directories_and_merges_like_runc_update() -> None:
    current = resources_from_dict({"memory": {"limit": 100, "swap": 200}, "pids": {"limit": 5}})
    update = resources_from_dict({"memory": {"limit": 150}, "cpu": {"shares": 2}})
    merged = merge(current, update)
    assert merged.memory is not None
    assert (merged.memory.limit, merged.memory.swap) == (150, 200)
    assert merged.pids is not None
    assert merged.pids.limit == 5
    plan = compute_plan(current, container_id="c", cgroups_path="/x", host=V1)
    updated = update_plan(plan, merged, V1)
    assert [h["directory"] for h in updated["hierarchies"]] == [
        h["directory"] for h in plan["hierarchies"]
    ]
    assert writes(updated, "memory")["memory.limit_in_bytes"] == "150"


def test_resources_from_dict_names_the_field() -> None:
    with pytest.raises(ConfigError) as info:
        resources_from_dict({"memory": {"limit": "1G"}, "devices": [{"access": "rwm"}]})
    assert info.value.errors == [
        "linux.resources.devices[0].allow: required field missing",
        'linux.resources.memory.limit: expected an integer, got "1G"',
    ]


# -- device rules ------------------------------------------------------------------------------


def test_default_rules_are_runcs_allow_list() -> None:
    emulator = emulate(DEFAULT_RULES)
    assert not emulator.default_allow
    assert [r.line() for r in emulator.rules()] == [
        "b *:* m",
        "c *:* m",
        "c 1:3 rwm",
        "c 1:5 rwm",
        "c 1:7 rwm",
        "c 1:8 rwm",
        "c 1:9 rwm",
        "c 5:0 rwm",
        "c 5:2 rwm",
        "c 10:200 rwm",
        "c 136:* rwm",
    ]


def test_emulator_follows_rules_in_order() -> None:
    rules = [
        Rule("a", -1, -1, "rwm", True),  # allow everything ...
        Rule("c", 1, 3, "rw", False),  # ... but reading and writing /dev/null
        Rule("c", 1, 3, "w", True),  # ... then writing it again
    ]
    emulator = emulate(rules)
    assert emulator.default_allow
    assert [r.line() for r in emulator.rules()] == ["c 1:3 r"]
    assert [r.allow for r in emulator.rules()] == [False]


def test_transition_is_minimal_from_an_allow_list() -> None:
    source = from_list("c 1:3 rwm\nc 1:5 rwm\n")
    target = emulate([Rule("c", 1, 3, "rwm", True), Rule("c", 1, 9, "r", True)])
    assert [(r.line(), r.allow) for r in transition(source, target)] == [
        ("c 1:5 rwm", False),
        ("c 1:9 r", True),
    ]
    assert next((r.line(), r.allow) for r in transition(Emulator(True), target)) == (
        "a *:* rwm",
        False,
    )


def test_plan_starts_v1_device_writes_with_a_reset() -> None:
    plan = compute_plan(None, container_id="c", host=V1)
    devices = plan["devices"]
    assert devices is not None
    assert devices["v1_writes"][0] == ["devices.deny", "a *:* rwm"]
    assert devices["v1_writes"][1:] == [["devices.allow", line] for line in devices["rules"]]
    assert not devices["default_allow"]
    assert devices["bpf"] == ""


def test_linux_devices_nodes_become_allow_rules_after_the_defaults() -> None:
    from asyncinit.cgroups._devices import node_rule

    extra = (*DEFAULT_RULES, node_rule("u", 10, 229), node_rule("b", 7, 0))
    plan = compute_plan(None, container_id="c", host=V1, default_devices=extra)
    devices = plan["devices"]
    assert devices is not None
    assert {"c 10:229 rwm", "b 7:0 rwm"} <= set(devices["rules"])
