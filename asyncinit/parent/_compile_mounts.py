"""Compiling config.json mounts: flags from options, host-side checks, idmap recipes."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from .._fs._procfs import is_procfs_root
from .._plan import MountPlan
from .._syscalls._mount import MS_BIND, MS_REC
from ..config import Mount, MountOptions, Namespace, Spec
from ._compile_hooks import check_executable, command_plan
from ._compile_namespaces import id_map
from ._mount_sources import MountSource


def resolve(path: Path) -> tuple[Path, str | None]:
    """``path`` with symlinks resolved, and why it cannot be used (a loop, a name too long).

    Path.resolve() raises RuntimeError for a symlink loop before Python 3.13.
    """
    try:
        resolved = path.resolve()
        resolved.is_dir()  # ENAMETOOLONG shows only when the path is used
    except RuntimeError:
        return path, os.strerror(errno.ELOOP)
    except OSError as exc:
        return path, exc.strerror or str(exc)
    return resolved, None


def compile_mounts(
    spec: Spec, bundle_path: Path, userns: Namespace | None, errors: list[str]
) -> tuple[list[MountPlan], dict[int, MountSource]]:
    """Each mount as the init will make it, and how the parent builds idmapped sources.

    ``userns`` is the container's user namespace entry: an idmapped bind without
    mappings of its own maps through it.
    """
    mounts: list[MountPlan] = []
    mount_sources: dict[int, MountSource] = {}
    for index, m in enumerate(spec.mounts):
        field = f"mounts[{index}]"
        options = m.parsed_options
        bind = m.is_bind
        source = m.source or ""
        if bind:
            resolved, problem = resolve(bundle_path / source)
            source = str(resolved) if source else ""
            if problem is not None:
                errors.append(f"{field}.source: {m.source}: {problem}")
            elif not source or not os.path.lexists(source):
                errors.append(f"{field}.source: {m.source}: bind source does not exist")
            elif os.path.normpath(m.destination) == "/proc" and not _procfs_bind_source(source):
                errors.append(f"{field}.source: {source}: only a procfs root may be bound on /proc")
        idmap = bind and bool(
            options.extensions & {"idmap", "ridmap"} or m.uid_mappings or m.gid_mappings
        )
        if idmap:
            mount_sources[index] = _mount_source(m, field, source, options, userns)
        mounts.append(
            {
                "destination": os.path.normpath(m.destination),
                "type": "bind" if bind else m.type or "",
                "source": source,
                "flags": options.flags & ~(MS_BIND | MS_REC) if bind else options.flags,
                "clear_flags": options.clear_flags,
                "bind": bind,
                "recursive": bool(options.flags & MS_REC) if bind else False,
                "propagation": list(options.propagation),
                "attr_set": options.attr_set,
                "attr_clr": options.attr_clr,
                "data": options.data,
                "extensions": sorted(options.extensions),
                "idmap": idmap,
                "field": field,
                "premount": [
                    command_plan(h, f"{field}.premount[{i}]") for i, h in enumerate(m.premount)
                ],
                "postmount": [
                    command_plan(h, f"{field}.postmount[{i}]") for i, h in enumerate(m.postmount)
                ],
            }
        )
        for kind, commands in (("premount", m.premount), ("postmount", m.postmount)):
            for i, hook in enumerate(commands):
                check_executable(hook.path, f"{field}.{kind}[{i}]", errors)
    return mounts, mount_sources


def _procfs_bind_source(source: str) -> bool:
    try:
        fd = os.open(source, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return is_procfs_root(fd)
    finally:
        os.close(fd)


def _mount_source(
    m: Mount,
    field: str,
    source: str,
    options: MountOptions,
    userns: Namespace | None,
) -> MountSource:
    """An idmapped bind's recipe: its own mappings, else the container's user namespace."""
    recursive = bool(options.flags & MS_REC)
    idmap_recursive = "ridmap" in options.extensions
    if m.uid_mappings:
        return MountSource(
            field,
            source,
            recursive,
            idmap_recursive,
            id_map(m.uid_mappings),
            id_map(m.gid_mappings),
        )
    path = userns.path if userns is not None else None
    return MountSource(field, source, recursive, idmap_recursive, userns_path=path)
