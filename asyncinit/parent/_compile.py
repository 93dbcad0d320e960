"""Compile a validated Spec into the fork server's launch request and the init's plan.

Everything that needs policy or the host's filesystem is decided here, in the
parent, before a single namespace exists: option strings become flags, relative
paths are resolved against the bundle, bind sources and hook binaries are
checked.  The init then executes plain data.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from .. import _syscalls as sc
from .._plan import DevicePlan, InitPlan, ProcessPlan
from .._rules import DEFAULT_DEVICES
from ..config import CAPABILITIES, RLIMITS, ConfigError, IDMapping, Spec
from ..network._plan import VethPlan, plan_network
from ._compile_hooks import check_hooks, command_plan, reply_timeouts
from ._compile_mounts import compile_mounts, id_map
from ._mount_sources import MountSource

__all__ = ["Compiled", "compile_spec"]

NAMESPACE_FLAGS = {
    "pid": sc.CLONE_NEWPID,
    "network": sc.CLONE_NEWNET,
    "mount": sc.CLONE_NEWNS,
    "ipc": sc.CLONE_NEWIPC,
    "uts": sc.CLONE_NEWUTS,
    "user": sc.CLONE_NEWUSER,
    "cgroup": sc.CLONE_NEWCGROUP,
}
#: The order runc joins existing namespaces in: user first, so the rest are permitted.
_JOIN_ORDER = ("user", "ipc", "uts", "network", "pid", "cgroup", "mount")

ROOTFS_PROPAGATION = {
    None: sc.MS_SLAVE | sc.MS_REC,
    "private": sc.MS_PRIVATE,
    "rprivate": sc.MS_PRIVATE | sc.MS_REC,
    "slave": sc.MS_SLAVE,
    "rslave": sc.MS_SLAVE | sc.MS_REC,
    "shared": sc.MS_SHARED,
    "rshared": sc.MS_SHARED | sc.MS_REC,
    "unbindable": sc.MS_UNBINDABLE,
    "runbindable": sc.MS_UNBINDABLE | sc.MS_REC,
}


@attrs.frozen
class Compiled:
    """What spawn() needs: the fork server's request, the join fds' paths, the plan."""

    launch: dict[str, Any]
    join_paths: tuple[str, ...]
    plan: InitPlan
    bundle: str
    #: veths the parent creates at the createRuntime point (asyncinit.network)
    network: tuple[VethPlan, ...] = ()
    #: how the parent builds each idmapped mount, by index in plan["mounts"]
    mount_sources: dict[int, MountSource] = attrs.field(factory=dict)


def _check_rootless_mappings(
    uid_mappings: Sequence[IDMapping], gid_mappings: Sequence[IDMapping], errors: list[str]
) -> None:
    """Without privileges the kernel accepts one map line: our own id, size 1.

    (runc would call newuidmap/newgidmap for more; asyncinit does not.)
    """
    for key, mappings, own in (
        ("uidMappings", uid_mappings, os.geteuid()),
        ("gidMappings", gid_mappings, os.getegid()),
    ):
        if len(mappings) != 1 or mappings[0].host_id != own or mappings[0].size != 1:
            errors.append(
                f"linux.{key}: without root only your own id ({own}) can be mapped, "
                "as a single entry of size 1"
            )


def _capability_mask(names: Sequence[str] | None) -> int:
    mask = 0
    for name in names or ():
        mask |= 1 << CAPABILITIES[name]
    return mask


#: Annotations that choose the init's mode per container (a spawn() argument overrides).
INIT_MODE_ANNOTATION = "io.asyncinit.init"
SIGNAL_GROUP_ANNOTATION = "io.asyncinit.init.signal-group"
INIT_MODES = ("exec", "supervise")


def compile_spec(
    spec: Spec,
    bundle: str | os.PathLike[str],
    container_id: str,
    backend: str = "asyncio",
    *,
    init_mode: str | None = None,
    signal_group: bool | None = None,
    pass_fds: int = 0,
    no_pivot_root: bool = False,
) -> Compiled:
    """Turn a loaded Spec into a launch request and an InitPlan, or raise ConfigError.

    ``no_pivot_root`` is runc's ``--no-pivot``: jail with MS_MOVE + chroot.
    """
    errors: list[str] = []
    bundle_path = Path(bundle).resolve()
    linux = spec.linux
    if spec.root is None:
        raise ConfigError(["root: required to start a container"])
    if spec.process is None:
        raise ConfigError(["process: required to start a container"])
    rootfs = (bundle_path / spec.root.path).resolve()
    if not rootfs.is_dir():
        errors.append(f"root.path: {rootfs}: not a directory")

    namespaces = {ns.type: ns for ns in (linux.namespaces if linux else ())}
    clone_flags = 0
    join: list[tuple[str, int]] = []
    for kind, ns in namespaces.items():
        if ns.path:
            join.append((ns.path, NAMESPACE_FLAGS[kind]))
        else:
            clone_flags |= NAMESPACE_FLAGS[kind]
    join.sort(
        key=lambda item: _JOIN_ORDER.index(
            next(k for k, v in NAMESPACE_FLAGS.items() if v == item[1])
        )
    )
    for path, _ in join:
        if not os.path.exists(path):
            errors.append(f"linux.namespaces: {path}: no such namespace file")
    user_ns = "user" in namespaces
    mount_ns = "mount" in namespaces
    if linux and user_ns and not namespaces["user"].path and os.geteuid() != 0:
        _check_rootless_mappings(linux.uid_mappings, linux.gid_mappings, errors)

    mounts, mount_sources = compile_mounts(spec, bundle_path, namespaces, errors)
    if spec.root.readonly and not mount_ns:
        # The read-only remount would hit the host's own mount of the rootfs.
        errors.append("root.readonly: needs a mount namespace (linux.namespaces)")

    devices: dict[str, DevicePlan] = {
        path: {
            "path": path,
            "type": "c",
            "major": major,
            "minor": minor,
            "file_mode": 0o666,
            "uid": 0,
            "gid": 0,
        }
        for path, major, minor in DEFAULT_DEVICES
    }
    for device in linux.devices if linux else ():
        devices[os.path.normpath(device.path)] = {
            "path": os.path.normpath(device.path),
            "type": device.type,
            "major": device.major or 0,
            "minor": device.minor or 0,
            "file_mode": device.file_mode if device.file_mode is not None else 0o666,
            "uid": device.uid or 0,
            "gid": device.gid or 0,
        }
    dev_is_bind = any(m["destination"] == "/dev" and m["bind"] for m in mounts)

    hooks = spec.hooks
    check_hooks(hooks, rootfs, mounts, errors)

    process = spec.process
    caps = process.capabilities
    rootfs_propagation = linux.rootfs_propagation if linux else None
    mode = init_mode or spec.annotations.get(INIT_MODE_ANNOTATION, "exec")
    if mode not in INIT_MODES:
        errors.append(f"annotations.{INIT_MODE_ANNOTATION}: {mode!r} is not one of {INIT_MODES}")
    if signal_group is None:
        group_value = spec.annotations.get(SIGNAL_GROUP_ANNOTATION, "false")
        if group_value not in ("true", "false"):
            errors.append(f'annotations.{SIGNAL_GROUP_ANNOTATION}: expected "true" or "false"')
        signal_group = group_value == "true"
    network = plan_network(spec, errors)
    if no_pivot_root and rootfs_propagation in ("private", "rprivate"):
        # runc refuses it too: with MS_MOVE + chroot the old root stays in the namespace.
        errors.append(
            f"linux.rootfsPropagation: {rootfs_propagation!r} cannot be used without pivot_root"
        )
    if errors:
        raise ConfigError(errors)

    process_plan: ProcessPlan = {
        "args": list(process.args),
        "env": list(process.env),
        "cwd": process.cwd,
        "uid": process.user.uid,
        "gid": process.user.gid,
        "additional_gids": list(process.user.additional_gids),
        "umask": process.user.umask if process.user.umask is not None else 0o022,
        "capabilities": None
        if caps is None
        else {
            "bounding": _capability_mask(caps.bounding),
            "effective": _capability_mask(caps.effective),
            "permitted": _capability_mask(caps.permitted),
            "inheritable": _capability_mask(caps.inheritable),
            "ambient": _capability_mask(caps.ambient),
        },
        "rlimits": [(RLIMITS[r.type], r.soft, r.hard) for r in process.rlimits],
        "no_new_privileges": process.no_new_privileges,
        "oom_score_adj": process.oom_score_adj,
        "terminal": process.terminal,
        "console_size": (
            (process.console_size.height, process.console_size.width)
            if process.console_size
            else None
        ),
        "mode": mode,
        "signal_group": signal_group,
        "pass_fds": pass_fds,
    }
    plan: InitPlan = {
        "container_id": container_id,
        "rootfs": str(rootfs),
        "readonly_root": spec.root.readonly,
        "root_propagation": ROOTFS_PROPAGATION[rootfs_propagation],
        "reapply_propagation": rootfs_propagation
        in ("shared", "rshared", "unbindable", "runbindable"),
        "no_pivot_root": no_pivot_root,
        "mounts": mounts,
        "setup_dev": not dev_is_bind,
        "devices": list(devices.values()),
        "mount_namespace": mount_ns,
        "user_namespace": user_ns,
        "cgroup_namespace": "cgroup" in namespaces,
        "new_network": "network" in namespaces and not namespaces["network"].path,
        "masked_paths": list(linux.masked_paths) if linux else [],
        "readonly_paths": list(linux.readonly_paths) if linux else [],
        "hostname": spec.hostname,
        "domainname": spec.domainname,
        "sysctl": dict(linux.sysctl) if linux else {},
        "reply_timeouts": reply_timeouts(hooks),
        "parent_rlimits": user_ns,
        "parent_hooks": bool(network) or bool(hooks and (hooks.prestart or hooks.create_runtime)),
        "create_container_hooks": [
            command_plan(h, f"hooks.createContainer[{i}]")
            for i, h in enumerate(hooks.create_container if hooks else ())
        ],
        "start_container_hooks": [
            command_plan(h, f"hooks.startContainer[{i}]")
            for i, h in enumerate(hooks.start_container if hooks else ())
        ],
        "process": process_plan,
    }
    launch: dict[str, Any] = {
        "clone_flags": clone_flags,
        "join": [flag for _, flag in join],
        "uid_map": id_map(linux.uid_mappings) if linux and user_ns else "",
        "gid_map": id_map(linux.gid_mappings) if linux and user_ns else "",
        # Without CAP_SETGID in our own namespace the kernel wants setgroups denied.
        "deny_setgroups": user_ns and os.geteuid() != 0,
        # Set by the intermediate while it may: a non-dumpable init's /proc files
        # belong to the host's root, out of reach of a rootless init.
        "oom_score_adj": process.oom_score_adj,
        "backend": backend,
    }
    return Compiled(
        launch, tuple(path for path, _ in join), plan, str(bundle_path), network, mount_sources
    )
