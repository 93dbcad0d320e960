"""Compile a validated Spec into the fork server's launch request and the init's plan.

Everything that needs policy or the host's filesystem is decided here, in the
parent, before a single namespace exists: option strings become flags, relative
paths are resolved against the bundle, bind sources and hook binaries are
checked, every timeout is computed.  spawn()'s own choices arrive as
:class:`LaunchOptions`, so nothing edits the result afterwards.  The init then
executes plain data.

What the file says is checked by ``config`` (validation); what the host says is
checked here.  The parts: namespaces (``_compile_namespaces``), mounts
(``_compile_mounts``), devices (``_compile_devices``), hooks and timeouts
(``_compile_hooks``), the process and the init's mode (``_compile_process``).
"""

from __future__ import annotations

import os
from pathlib import Path

import attrs

from .._errors import UsageError
from .._plan import InitPlan
from .._syscalls._clone import has_clone_into_cgroup
from .._syscalls._mount import MS_REC, MS_SLAVE
from ..cgroups._compute import compute_plan
from ..cgroups._devices import DEFAULT_RULES, node_rule
from ..cgroups._plan import CgroupEntry, CgroupPlan
from ..config import ConfigError, Hooks, Linux, Process, Root, Spec
from ..config._mount_options import PROPAGATION
from ..forkserver._wire import LaunchRequest
from ..network._plan import VethPlan, plan_network
from ._compile_devices import builds_dev, compile_devices
from ._compile_hooks import (
    DEFAULT_HOOK_TIMEOUT,
    check_hooks,
    cleanup_timeout,
    compile_hooks,
    has_hooks_before_pivot,
    reply_timeouts,
)
from ._compile_mounts import compile_mounts, resolve
from ._compile_namespaces import compile_namespaces, launch_request
from ._compile_process import compile_process, init_mode, signal_group
from ._compile_seccomp import compile_seccomp
from ._hooks import ParentHooks, PythonHooks
from ._mount_sources import MountSource

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..seccomp import Handler

__all__ = ["Compiled", "LaunchOptions", "compile_spec"]

#: linux.rootfsPropagation unset: runc's rslave (a set one is a mount option's word)
DEFAULT_ROOTFS_PROPAGATION = MS_SLAVE | MS_REC


@attrs.frozen
class LaunchOptions:
    """spawn()'s choices beside the config, all decided in :func:`compile_spec`."""

    #: the init's event loop: "asyncio" or "trio"
    backend: str = "asyncio"
    #: "exec" or "supervise"; None: the ``io.asyncinit.init`` annotation, else "exec"
    init_mode: str | None = None
    #: supervise mode: forward signals to the process group; None: the annotation
    signal_group: bool | None = None
    #: how many fds the caller passes (they become 3, 4, ...)
    pass_fds: int = 0
    #: runc's ``--no-pivot``: jail with MS_MOVE + chroot
    no_pivot_root: bool = False
    #: (rows, columns) of a pty when the config has no process.consoleSize
    console_size: tuple[int, int] | None = None
    python_hooks: PythonHooks = attrs.field(factory=PythonHooks)
    #: bound on each Python hook; None: unbounded
    hook_timeout: float | None = DEFAULT_HOOK_TIMEOUT
    #: runc create: the exec fifo the init waits on before its startContainer hooks
    exec_fifo: str | None = None
    #: answers SCMP_ACT_NOTIFY in the caller's event loop instead of ``listenerPath``
    seccomp_handler: Handler | None = None


def _option_errors(options: LaunchOptions, mode: str, propagation: str | None) -> list[str]:
    errors = []
    if options.no_pivot_root and propagation in ("private", "rprivate"):
        # runc refuses it too: with MS_MOVE + chroot the old root stays in the namespace.
        errors.append(f"linux.rootfsPropagation: {propagation!r} cannot be used without pivot_root")
    if options.exec_fifo is not None and mode == "supervise":
        errors.append("annotations: io.asyncinit.init=supervise is not supported by create yet")
    return errors


@attrs.frozen
class Compiled:
    """What spawn() needs: the fork server's request, the join fds' paths, the plan."""

    launch: LaunchRequest
    join_paths: tuple[str, ...]
    plan: InitPlan
    bundle: str
    #: what the parent runs at prestart, createRuntime, poststart and poststop
    hooks: ParentHooks
    #: how long a failed start may take to clean up (reap PID 1, run poststop hooks)
    cleanup_timeout: float
    #: veths the parent creates at the createRuntime point (asyncinit.network)
    network: tuple[VethPlan, ...] = ()
    #: how the parent builds each idmapped mount, by index in plan["mounts"]
    mount_sources: dict[int, MountSource] = attrs.field(factory=dict)
    #: spawn()'s seccomp_handler, given the listener at the init's ``seccomp``
    seccomp_handler: Handler | None = None
    #: the container's cgroup (linux.resources, linux.cgroupsPath; docs/cgroups.md)
    cgroup: CgroupPlan | None = None


def _cgroup_plan(
    linux: Linux, container_id: str, errors: list[str]
) -> tuple[CgroupPlan | None, CgroupEntry | None]:
    """runc's cgroup for the container: its limits, and device rules that allow the
    default devices and the ``linux.devices`` nodes (runc appends them the same way);
    and how PID 1 gets into it."""
    nodes = [
        node_rule(d.type, d.major or 0, d.minor or 0) for d in linux.devices if d.type != "p"
    ]
    try:
        plan = compute_plan(
            linux.resources,
            container_id=container_id,
            cgroups_path=linux.cgroups_path or None,
            default_devices=[*DEFAULT_RULES, *nodes],
        )
    except ConfigError as exc:
        errors.extend(exc.errors)
        return None, None
    return plan, cgroup_entry(plan)


def cgroup_entry(cgroup: CgroupPlan) -> CgroupEntry:
    """How PID 1 gets into its cgroup.  ``"clone"``: v2 with clone3(CLONE_INTO_CGROUP),
    the fork server's child is born there.  ``"join"``: v1, that child, still
    single-threaded, writes 0 into each ``tasks`` file (its own thread: no RCU grace
    period, unlike moving another process).  ``"move"``: v2 without the clone, the
    parent writes PID 1's pid while the init builds its rootfs, and the init forks and
    execs nothing before the ``cgroup`` word.  The first two leave nothing to wait for."""
    if cgroup["version"] == 1:
        return "join"
    return "clone" if has_clone_into_cgroup() else "move"


def _cgroup2_path(cgroup: CgroupPlan | None) -> str | None:
    """runc's cgroup2Path: the container's own directory in the unified hierarchy."""
    if cgroup is None or cgroup["version"] != 2:
        return None
    return cgroup["hierarchies"][0]["directory"]


def _rootfs(bundle_path: Path, path: str, errors: list[str]) -> Path:
    """root.path resolved against the bundle; it must be a directory."""
    rootfs, problem = resolve(bundle_path / path)
    if problem is not None:
        errors.append(f"root.path: {rootfs}: {problem}")
    elif not rootfs.is_dir():
        errors.append(f"root.path: {rootfs}: not a directory")
    return rootfs


def _required(spec: Spec) -> tuple[Root, Process]:
    if spec.root is None:
        raise ConfigError(["root: required to start a container"])
    if spec.process is None:
        raise ConfigError(["process: required to start a container"])
    return spec.root, spec.process


def compile_spec(
    spec: Spec,
    bundle: str | os.PathLike[str],
    container_id: str,
    options: LaunchOptions | None = None,
) -> Compiled:
    """Turn a loaded Spec into a launch request and an InitPlan, or raise ConfigError."""
    options = options or LaunchOptions()
    errors: list[str] = []
    bundle_path, problem = resolve(Path(bundle))
    if problem is not None:
        raise UsageError(f"bundle {os.fspath(bundle)!r}: {problem}")
    linux = spec.linux or Linux()
    hooks, (root, process) = spec.hooks or Hooks(), _required(spec)
    rootfs = _rootfs(bundle_path, root.path, errors)
    namespaces = compile_namespaces(linux, errors)
    user = namespaces.by_type.get("user")
    mounts, mount_sources = compile_mounts(spec, bundle_path, user, errors)
    check_hooks(hooks, rootfs, mounts, errors)
    mode = init_mode(spec.annotations, options.init_mode, errors)
    network = plan_network(spec, errors)
    seccomp = compile_seccomp(linux.seccomp, errors, handler=options.seccomp_handler is not None)
    cgroup, entry = _cgroup_plan(linux, container_id, errors)
    propagation = linux.rootfs_propagation
    errors += _option_errors(options, mode, propagation)
    if errors:
        raise ConfigError(errors)
    compiled_hooks = compile_hooks(hooks, options.python_hooks, options.hook_timeout)
    parent_hooks = compiled_hooks.parent
    plan: InitPlan = {
        "container_id": container_id,
        "rootfs": str(rootfs),
        "readonly_root": root.readonly,
        "root_propagation": PROPAGATION[propagation] if propagation else DEFAULT_ROOTFS_PROPAGATION,
        "reapply_propagation": propagation in ("shared", "rshared", "unbindable", "runbindable"),
        "no_pivot_root": options.no_pivot_root,
        "mounts": mounts,
        "setup_dev": builds_dev(mounts),
        "devices": compile_devices(linux),
        "mount_namespace": namespaces.has("mount"),
        "user_namespace": namespaces.has("user"),
        "cgroup_namespace": namespaces.has("cgroup"),
        "cgroup2_path": _cgroup2_path(cgroup),
        "rootless_cgroups": cgroup is not None and cgroup["rootless"],
        "new_network": namespaces.creates("network"),
        "masked_paths": list(linux.masked_paths),
        "readonly_paths": list(linux.readonly_paths),
        "hostname": spec.hostname,
        "domainname": spec.domainname,
        "sysctl": dict(linux.sysctl),
        "reply_timeouts": reply_timeouts(parent_hooks),
        "parent_rlimits": namespaces.has("user"),
        "await_cgroup": entry == "move",
        "parent_hooks": bool(network) or has_hooks_before_pivot(parent_hooks),
        "create_container_hooks": compiled_hooks.create_container,
        "start_container_hooks": compiled_hooks.start_container,
        "exec_fifo": options.exec_fifo,
        "process": compile_process(
            process,
            mode=mode,
            signal_group=signal_group(spec.annotations, options.signal_group),
            pass_fds=options.pass_fds,
            console_size=options.console_size,
            seccomp=seccomp,
            personality=linux.personality,
        ),
    }
    return Compiled(
        launch=launch_request(
            namespaces, linux, process.oom_score_adj, options.backend, cgroup, entry
        ),
        join_paths=tuple(path for path, _ in namespaces.join),
        plan=plan,
        bundle=str(bundle_path),
        hooks=parent_hooks,
        cleanup_timeout=cleanup_timeout(parent_hooks),
        network=network,
        mount_sources=mount_sources,
        seccomp_handler=options.seccomp_handler,
        cgroup=cgroup,
    )
