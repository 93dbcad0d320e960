"""Compiling ``linux.devices``: runc's default devices, then the config's over them."""

from __future__ import annotations

import os
from collections.abc import Sequence

from .._plan import DevicePlan, MountPlan
from .._rules import DEFAULT_DEVICES
from ..config import Linux


def compile_devices(linux: Linux) -> list[DevicePlan]:
    """The default devices (char, 0666, root), each replaced by a config entry at its path."""
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
    for device in linux.devices:
        devices[os.path.normpath(device.path)] = {
            "path": os.path.normpath(device.path),
            "type": device.type,
            "major": device.major or 0,
            "minor": device.minor or 0,
            "file_mode": 0o666 if device.file_mode is None else device.file_mode & 0o7777,
            "uid": device.uid or 0,
            "gid": device.gid or 0,
        }
    return list(devices.values())


def builds_dev(mounts: Sequence[MountPlan]) -> bool:
    """Whether the init builds /dev (nodes, symlinks, console): not on a bound /dev."""
    return not any(m["destination"] == "/dev" and m["bind"] for m in mounts)
