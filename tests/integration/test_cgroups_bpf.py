"""The cgroup plan's eBPF device program judged by the kernel's verifier.

Loading a program needs root (CAP_BPF, CAP_SYS_ADMIN), not cgroup v2: this v1
host checks what the guest's v2 cgroups would load.  The program's shape is
pure logic, in tests/unit/test_cgroups_plan.py.
"""

from __future__ import annotations

import os

import pytest

from asyncinit import _syscalls as sc
from asyncinit.cgroups import compute_plan, resources_from_dict
from asyncinit.cgroups._bpf import device_filter
from asyncinit.cgroups._devices import emulate
from tests.support.cgroups import V2
from tests.support.containers import needs_root

pytestmark = needs_root


def test_v2_plan_carries_a_program_the_kernel_verifier_accepts() -> None:
    plan = compute_plan(
        resources_from_dict({"devices": [{"allow": False, "type": "b", "access": "w"}]}),
        container_id="c",
        host=V2,
    )
    devices = plan["devices"]
    assert devices is not None
    assert devices["bpf"]
    code = bytes.fromhex(devices["bpf"])
    assert len(code) % 8 == 0
    assert code[-8:] == bytes([0x95]) + bytes(7)
    fd = sc.bpf_prog_load(sc.BPF_PROG_TYPE_CGROUP_DEVICE, code, devices["license"])
    os.close(fd)


def test_a_broken_program_is_refused_with_the_verifiers_words() -> None:
    without_exit = device_filter(emulate([]))[:-8]
    with pytest.raises(OSError, match="BPF_PROG_LOAD") as info:
        sc.bpf_prog_load(sc.BPF_PROG_TYPE_CGROUP_DEVICE, without_exit, "Apache")
    assert info.value.errno == 22
