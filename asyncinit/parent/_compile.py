"""Compile a validated Spec into the fork server's launch request and the init's plan.

Everything that needs policy or the host's filesystem is decided here, in the
parent, before a single namespace exists: option strings become flags, relative
paths are resolved against the bundle, bind sources and hook binaries are
checked.  The init then executes plain data.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from .. import _syscalls as sc
from .._plan import CommandPlan, DevicePlan, InitPlan, MountPlan, ProcessPlan
from ..config import (
    CAPABILITIES,
    RLIMITS,
    Command,
    ConfigError,
    Hook,
    Hooks,
    IDMapping,
    Linux,
    Mount,
    MountOptions,
    Namespace,
    Spec,
    parse_mount_options,
)
from ..devices._nodes import DEFAULT_DEVICES
from ..network._plan import VethPlan, plan_network
from ..rootfs._path import open_in_root
from ..rootfs._procmount import is_procfs_root
from ._mount_sources import MountSource

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


def _id_map(mappings: Sequence[IDMapping]) -> str:
    return "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in mappings)


#: Seconds the init gives the parent to answer, beyond the parent-side hooks' own
#: timeouts: a parent stuck for longer (blocked event loop, SIGSTOP) fails the start.
REPLY_MARGIN = 30.0


def _command(hook: Hook, field: str) -> CommandPlan:
    return {
        "path": hook.path,
        "args": list(hook.args) or [hook.path],
        "env": list(hook.env),
        "dir": hook.dir if isinstance(hook, Command) else None,
        "timeout": float(hook.timeout) if hook.timeout is not None else None,
        "field": field,
    }


def _check_executable_in_root(
    rootfs: Path, path: str, field: str, mounts: Sequence[MountPlan], errors: list[str]
) -> None:
    """A startContainer hook runs after pivot_root: its path resolves in the container.

    Resolved with RESOLVE_IN_ROOT so a symlink in the image cannot point the check
    at a host file.  A path under a mount destination may only appear once that
    mount is made: the init reports it then if it is missing.
    """
    if any(
        path == m["destination"] or path.startswith(m["destination"].rstrip("/") + "/")
        for m in mounts
    ):
        return
    try:
        rootfd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return  # root.path is reported on its own
    try:
        fd = open_in_root(rootfd, path, os.O_PATH | os.O_CLOEXEC)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        errors.append(f"{field}.path: {path}: {reason} in the container's rootfs")
        return
    finally:
        os.close(rootfd)
    try:
        info = os.fstat(fd)
    finally:
        os.close(fd)
    if not stat.S_ISREG(info.st_mode) or not info.st_mode & 0o111:
        errors.append(f"{field}.path: {path}: not an executable file in the container's rootfs")


def _reply_timeouts(hooks: Hooks | None) -> dict[str, float | None]:
    """How long the init waits for each reply: the parent-side hooks' timeouts + a margin."""
    parent_side = (*hooks.prestart, *hooks.create_runtime) if hooks else ()
    hooks_done: float | None = REPLY_MARGIN
    for hook in parent_side:
        hooks_done = (
            None if hook.timeout is None or hooks_done is None else hooks_done + hook.timeout
        )
    # mount_fd: the parent only opens and idmaps a tree, no user code runs.
    return {"hooks_done": hooks_done, "run": REPLY_MARGIN, "mount_fd": REPLY_MARGIN}


def _check_executable(path: str, field: str, errors: list[str]) -> None:
    try:
        info = os.stat(path)
    except OSError as exc:
        errors.append(f"{field}.path: {path}: {exc.strerror}")
        return
    if not stat.S_ISREG(info.st_mode) or not os.access(path, os.X_OK):
        errors.append(f"{field}.path: {path}: not an executable file")


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


def _procfs_bind_source(source: str) -> bool:
    try:
        fd = os.open(source, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return is_procfs_root(fd)
    finally:
        os.close(fd)


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

    mounts: list[MountPlan] = []
    mount_sources: dict[int, MountSource] = {}
    for index, m in enumerate(spec.mounts):
        field = f"mounts[{index}]"
        options = parse_mount_options(m.options)
        fstype = m.type or ("bind" if options.is_bind else "")
        bind = options.is_bind or fstype == "bind"
        source = m.source or ""
        if bind:
            source = str((bundle_path / source).resolve()) if source else ""
            if not source or not os.path.lexists(source):
                errors.append(f"{field}.source: {m.source}: bind source does not exist")
            elif os.path.normpath(m.destination) == "/proc" and not _procfs_bind_source(source):
                errors.append(f"{field}.source: {source}: only a procfs root may be bound on /proc")
        idmap = bind and bool(
            options.extensions & {"idmap", "ridmap"} or m.uid_mappings or m.gid_mappings
        )
        if idmap:
            mount_sources[index] = _mount_source(m, field, source, options, linux, namespaces)
        if not mount_ns:
            errors.append(f"{field}: mounts need a mount namespace (linux.namespaces)")
        mounts.append(
            {
                "destination": os.path.normpath(m.destination),
                "type": "bind" if bind else fstype,
                "source": source,
                "flags": options.flags & ~(sc.MS_BIND | sc.MS_REC) if bind else options.flags,
                "clear_flags": options.clear_flags,
                "bind": bind,
                "recursive": bool(options.flags & sc.MS_REC) if bind else False,
                "propagation": list(options.propagation),
                "attr_set": options.attr_set,
                "attr_clr": options.attr_clr,
                "data": options.data,
                "extensions": sorted(options.extensions),
                "idmap": idmap,
                "field": field,
                "premount": [
                    _command(h, f"{field}.premount[{i}]") for i, h in enumerate(m.premount)
                ],
                "postmount": [
                    _command(h, f"{field}.postmount[{i}]") for i, h in enumerate(m.postmount)
                ],
            }
        )
        for kind, commands in (("premount", m.premount), ("postmount", m.postmount)):
            for i, hook in enumerate(commands):
                _check_executable(hook.path, f"{field}.{kind}[{i}]", errors)
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
    for kind in (
        "prestart",
        "create_runtime",
        "create_container",
        "start_container",
        "poststart",
        "poststop",
    ):
        for index, hook in enumerate(getattr(hooks, kind) if hooks else ()):
            json_kind = {
                "create_runtime": "createRuntime",
                "create_container": "createContainer",
                "start_container": "startContainer",
            }.get(kind, kind)
            if kind == "start_container":
                _check_executable_in_root(
                    rootfs, hook.path, f"hooks.{json_kind}[{index}]", mounts, errors
                )
            else:
                _check_executable(hook.path, f"hooks.{json_kind}[{index}]", errors)

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
        "reply_timeouts": _reply_timeouts(hooks),
        "create_container_hooks": [
            _command(h, f"hooks.createContainer[{i}]")
            for i, h in enumerate(hooks.create_container if hooks else ())
        ],
        "start_container_hooks": [
            _command(h, f"hooks.startContainer[{i}]")
            for i, h in enumerate(hooks.start_container if hooks else ())
        ],
        "process": process_plan,
    }
    launch: dict[str, Any] = {
        "clone_flags": clone_flags,
        "join": [flag for _, flag in join],
        "uid_map": _id_map(linux.uid_mappings) if linux and user_ns else "",
        "gid_map": _id_map(linux.gid_mappings) if linux and user_ns else "",
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


def _mount_source(
    m: Mount,
    field: str,
    source: str,
    options: MountOptions,
    linux: Linux | None,
    namespaces: dict[str, Namespace],
) -> MountSource:
    """An idmapped bind's recipe: its own mappings, else the container's user namespace."""
    recursive = bool(options.flags & sc.MS_REC)
    idmap_recursive = "ridmap" in options.extensions
    if m.uid_mappings:
        return MountSource(
            field,
            source,
            recursive,
            idmap_recursive,
            _id_map(m.uid_mappings),
            _id_map(m.gid_mappings),
        )
    userns = namespaces.get("user")
    path = userns.path if userns is not None else None
    return MountSource(field, source, recursive, idmap_recursive, userns_path=path)
