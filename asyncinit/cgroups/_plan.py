"""The cgroup plan: plain JSON-able data, decided in the parent, carried out anywhere.

``compute_plan`` (``_compute``) turns ``Resources`` + ``cgroupsPath`` + the
container id + the host into a ``CgroupPlan``; the step functions (``_steps``)
and the ``Manager`` carry it out without any policy of their own.  Every write
names the config.json field it comes from, so a kernel refusal deep in a step
still says which field the host could not honour.
"""

from __future__ import annotations

from typing import Literal, TypedDict


class WriteOp(TypedDict):
    """One write of ``value`` into the cgroup file ``file``."""

    file: str
    value: str
    #: the config.json field this write carries out
    field: str
    #: EINVAL is retried once after the cgroup's other writes (runc's period/quota
    #: and memory/swap ordering: the new value may only fit once its partner is set)
    retry: bool
    #: [file, value] pairs tried in order when ``file`` does not exist
    #: (blkio.weight vs blkio.bfq.weight, io.bfq.weight vs io.weight)
    fallback: list[list[str]]
    #: a missing file is fine: the write only follows from another field
    #: (swap "max" with memory -1, hugetlb reservations on older kernels)
    optional: bool


class UsageCheck(TypedDict):
    """``checkBeforeUpdate``: refuse when the sum of ``files`` is at least ``limit``."""

    files: list[str]
    limit: int
    field: str


class HierarchyPlan(TypedDict):
    """One cgroup directory: a v1 hierarchy's, or the v2 one."""

    #: v1: the hierarchy's controllers (``["cpu", "cpuacct"]``, ``["name=systemd"]``);
    #: v2: ``[]``
    controllers: list[str]
    directory: str
    #: files copied from the parent directory into each created directory whose
    #: copy is empty (v1 cpuset: no task may join a cpuset without cpus and mems)
    inherit: list[str]
    writes: list[WriteOp]
    checks: list[UsageCheck]


class DevicesPlan(TypedDict):
    """The device rules, as runc's emulator leaves them."""

    #: True: everything allowed but ``rules`` (deny-list); False: allow-list
    default_allow: bool
    #: canonical rules ("c 1:3 rwm") that differ from the default
    rules: list[str]
    #: v1: [file, line] writes from a deny-all start (``devices.deny a *:* rwm`` first)
    v1_writes: list[list[str]]
    #: v2: the BPF_PROG_TYPE_CGROUP_DEVICE program, instructions as hex
    bpf: str
    license: str
    #: errors are ignored (rootless, as runc: devices are not expected to work there)
    ignore_errors: bool


class CgroupPlan(TypedDict):
    version: Literal[1, 2]
    driver: Literal["cgroupfs"]
    #: the cleaned cgroups path (absolute, or relative to our own cgroup)
    path: str
    #: ``linux.cgroupsPath`` was given (rootless: a failure to create it is an error)
    explicit_path: bool
    rootless: bool
    #: v2: the mount point, whose descendants down to each directory get
    #: ``enable`` written into their ``cgroup.subtree_control``
    v2_mount: str
    enable: str
    hierarchies: list[HierarchyPlan]
    #: None: device rules are not applied (rootless in a user namespace, as runc)
    devices: DevicesPlan | None


#: How PID 1 gets into its cgroup (``parent._compile.cgroup_entry``): born there
#: (v2 clone3), joined by the fork server's single-threaded child (v1 ``tasks``), or
#: moved by the parent while the init builds its rootfs (``plan["await_cgroup"]``).
CgroupEntry = Literal["clone", "join", "move"]
