"""``resources_from_dict``: a ``LinuxResources`` JSON object read on its own.

Apart from ``_resources`` because it needs the config's converter, and the
config's model needs ``Resources``: kept here, neither imports the other back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..config._converter import CONVERTER, structure_at
from ._resources import Resources


def resources_from_dict(data: Mapping[str, Any], *, path: str = "linux.resources") -> Resources:
    """Structure a runtime-spec ``LinuxResources`` JSON object (``runc update --resources``).

    Uses the config's strict converter, so a wrong type is a ConfigError naming
    the field (``linux.resources.memory.limit: expected an integer, got "1"``).
    """
    return structure_at(data, Resources, path)


def resources_to_dict(resources: Resources) -> dict[str, Any]:
    """The ``LinuxResources`` JSON object of ``resources`` (what ``runc update`` keeps)."""
    data: dict[str, Any] = CONVERTER.unstructure(resources)
    return data
