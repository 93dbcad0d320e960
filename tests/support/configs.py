"""config.json dicts for tests: runc's default config, dotted-path edits, mount entries."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest

from asyncinit.config import ConfigError, default_spec_dict, spec_from_dict

#: With :func:`edit`: remove the key or list item instead of setting it.
DELETE = object()

#: An id mapping a (rootful) user namespace can use.
MAPPING = [{"containerID": 0, "hostID": 100000, "size": 65536}]
#: :func:`edit` steps that add a user namespace with :data:`MAPPING` to :func:`good`'s config.
USERNS = [
    ("linux.namespaces.5", {"type": "user"}),
    ("linux.uidMappings", MAPPING),
    ("linux.gidMappings", MAPPING),
]


def good() -> dict[str, Any]:
    """runc's default config (its deny-all device rule is enforced, no warning)."""
    return default_spec_dict()


def base_config(*args: str) -> dict[str, Any]:
    """:func:`good` with the terminal off, running ``args`` (default ``true``)."""
    config = good()
    config["process"]["terminal"] = False
    config["process"]["args"] = list(args) or ["true"]
    return config


def edit(data: dict[str, Any], path: str, value: object) -> None:
    """Set (or, with DELETE, remove) a dotted path; numeric parts index lists."""
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    key: Any = int(last) if isinstance(node, list) else last
    if value is DELETE:
        del node[key]
        return
    value = copy.deepcopy(value)  # parameter tables are shared between tests
    if isinstance(node, list) and key == len(node):
        node.append(value)
    else:
        node[key] = value


def errors_of(*edits: tuple[str, object], base: dict[str, Any] | None = None) -> list[str]:
    """The ConfigError's lines for :func:`good` (or ``base``) after ``edits``."""
    data = good() if base is None else base
    for path, value in edits:
        edit(data, path, value)
    with pytest.raises(ConfigError) as info:
        spec_from_dict(data)
    return info.value.errors


def bind(destination: str, source: Path | str, *options: str, **extra: Any) -> dict[str, Any]:
    """A ``mounts`` entry of type bind."""
    return {
        "destination": destination,
        "type": "bind",
        "source": str(source),
        "options": list(options),
        **extra,
    }


def tmpfs(destination: str, *options: str) -> dict[str, Any]:
    """A ``mounts`` entry of type tmpfs."""
    return {
        "destination": destination,
        "type": "tmpfs",
        "source": "tmpfs",
        "options": list(options),
    }


def in_own_user_namespace(config: dict[str, Any]) -> dict[str, Any]:
    """A user namespace mapping container root to our own ids, as ``runc spec --rootless``."""
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": os.getegid(), "size": 1}]
    for m in config["mounts"]:  # gid 5 (tty) is not mapped
        m["options"] = [o for o in m.get("options", []) if not o.startswith("gid=")]
    return config
