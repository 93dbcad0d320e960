"""The init plan: what PID 1 must do, already decided by the parent.

Plain JSON-able data (TypedDicts) so that the init needs neither cattrs nor any
policy to read it: the parent validated the config and compiled every option
string into flags.  ``field`` entries carry the config.json path of the element
a step works on, so an error raised deep in the init still names it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:
    from .seccomp._load import SeccompPlan


class CommandPlan(TypedDict):
    """A hook or premount/postmount command (runc's ``configs.Command``)."""

    path: str
    args: list[str]
    env: list[str]
    #: working directory (premount/postmount only; OCI hooks run in the runtime's cwd)
    dir: str | None
    timeout: float | None
    field: str


class MountPlan(TypedDict):
    destination: str
    type: str
    source: str
    flags: int
    clear_flags: int
    bind: bool
    recursive: bool
    propagation: list[int]
    attr_set: int
    attr_clr: int
    data: str
    extensions: list[str]
    #: the source is a detached idmapped mount that the parent builds on request
    idmap: bool
    field: str
    premount: list[CommandPlan]
    postmount: list[CommandPlan]


class DevicePlan(TypedDict):
    path: str
    type: str
    major: int
    minor: int
    file_mode: int
    uid: int
    gid: int


class SchedulerPlan(TypedDict):
    """process.scheduler as sched_setattr(2)'s ``struct sched_attr`` fields."""

    policy: int
    flags: int
    nice: int
    priority: int
    runtime: int
    deadline: int
    period: int


class CPUAffinityPlan(TypedDict):
    """process.execCPUAffinity as CPU numbers; None where the config gives no list."""

    #: before the process joins the container's cgroup
    initial: list[int] | None
    #: after it joined
    final: list[int] | None


class ProcessPlan(TypedDict):
    args: list[str]
    env: list[str]
    cwd: str
    uid: int
    gid: int
    additional_gids: list[int]
    umask: int
    #: capability sets as bit masks, or None to leave the init's capabilities alone
    capabilities: dict[str, int] | None
    rlimits: list[tuple[int, int, int]]
    no_new_privileges: bool
    oom_score_adj: int | None
    terminal: bool
    #: (rows, columns) of the pty, from process.consoleSize
    console_size: tuple[int, int] | None
    #: "exec": the init becomes the workload; "supervise": it stays PID 1 and reaps
    mode: str
    #: supervise mode: forward signals to the workload's process group, not just its pid
    signal_group: bool
    #: fds passed on purpose, at 3, 4, ... in the workload (LISTEN_FDS style)
    pass_fds: int
    #: linux.seccomp compiled to BPF; loaded before the credentials change, or right
    #: before execve/posix_spawn with no_new_privileges (runc's points)
    seccomp: SeccompPlan | None
    #: process.apparmorProfile: the profile execve switches to (runc's point: after the
    #: hostname, before sysctls); None: none asked
    apparmor_profile: str | None
    #: process.scheduler, set on the exec'ing thread after no_new_privs (runc)
    scheduler: SchedulerPlan | None
    #: process.ioPriority as ioprio_set's value: (class << 13) | level
    io_priority: int | None
    #: linux.personality's domain for personality(2), set right before the exec (runc)
    personality: int | None
    #: for processes exec'd into a running container; the runtime-spec excludes the
    #: container's init process, so the init leaves its affinity alone
    exec_cpu_affinity: CPUAffinityPlan | None


class InitPlan(TypedDict):
    container_id: str
    rootfs: str
    readonly_root: bool
    #: propagation flags applied to "/" before anything is mounted (runc: MS_SLAVE|MS_REC)
    root_propagation: int
    #: re-apply root_propagation after pivot_root (shared and unbindable only, as runc)
    reapply_propagation: bool
    #: runc --no-pivot: MS_MOVE the rootfs onto / and chroot instead of pivot_root
    no_pivot_root: bool
    mounts: list[MountPlan]
    setup_dev: bool
    devices: list[DevicePlan]
    mount_namespace: bool
    user_namespace: bool
    cgroup_namespace: bool
    #: the container's own cgroup v2 directory on the host (runc's cgroup2Path), None
    #: on cgroup v1: the ``cgroup`` mount's bind fallback shows it, not the whole
    #: hierarchy, when the container has a cgroup namespace (runc's cgroupns emulation)
    cgroup2_path: str | None
    #: runc's rootlessCgroups: when that directory was never created (no delegated
    #: cgroup), the fallback masks /sys/fs/cgroup with an empty read-only tmpfs
    rootless_cgroups: bool
    new_network: bool
    masked_paths: list[str]
    readonly_paths: list[str]
    hostname: str | None
    domainname: str | None
    sysctl: dict[str, str]
    #: seconds the init waits for the parent's reply to a message (keyed by the reply:
    #: "hooks_done", "run"); None waits for ever (a parent-side hook without timeout)
    reply_timeouts: dict[str, float | None]
    #: the parent has work at the hooks point (prestart or createRuntime hooks, OCI or
    #: Python; veths to create): without any, the init skips the hooks round trip
    parent_hooks: bool
    #: a user namespace: the parent sets process.rlimits at ``ready`` (prlimit from
    #: outside, as runc; the init could not raise a hard limit); otherwise the init
    #: sets them itself and skips the ready round trip
    parent_rlimits: bool
    #: the parent moves PID 1 into the container's cgroup while the init builds the
    #: rootfs, then says ``cgroup``: the init forks and execs nothing before that
    await_cgroup: bool
    create_container_hooks: list[CommandPlan]
    start_container_hooks: list[CommandPlan]
    #: runc create: the host path of the exec fifo the init opens (O_PATH) before the
    #: jail, and opens for writing after ``created``; ``start`` opening it releases the
    #: init to run its startContainer hooks and exec.  None: spawn (no waiting)
    exec_fifo: str | None
    process: ProcessPlan


class ExecPlan(TypedDict):
    """``exec``: a new process in a running container, decided by the caller.

    The runtime's child joins the namespaces (``join``, runc's order, user first;
    the pid namespace is entered by forking into it), waits while the caller moves
    it into every cgroup of the container's init and sets its rlimits, then
    carries out ``process`` as the init carries out its own (init/_exec.py).
    """

    process: ProcessPlan
    #: the container's init (host pid) and its start time (field 22 of /proc/PID/stat)
    init_pid: int
    init_start: int
    #: (namespace name, CLONE_NEW* flag) to join, in runc's order; "pid" included
    join: list[tuple[str, int]]
    #: host cgroup directories of the init, one per hierarchy (v1 and v2)
    cgroups: list[str]
