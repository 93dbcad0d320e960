"""Container cgroups: a plan decided in the parent, steps and a manager to carry it out.

::

    plan = compute_plan(resources, container_id="web", cgroups_path=None)  # ConfigError
    manager = FsManager(plan, resources)
    manager.apply(pid)               # create, limit, move pid in
    ...
    manager.update(resources_from_dict({"memory": {"limit": 1 << 30}}))
    manager.destroy()                # kill everything left, remove the directories

docs/cgroups.md has the paths, drivers, every resource field and its files,
the conversions, events and what is refused.  Submodules are imported on first
use: the init needs only ``_steps`` and ``_plan``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._compute import SystemdDriverError as SystemdDriverError
    from ._compute import compute_plan as compute_plan
    from ._compute import update_plan as update_plan
    from ._events import OomEvents as OomEvents
    from ._host import Host as Host
    from ._host import detect_host as detect_host
    from ._load import resources_from_dict as resources_from_dict
    from ._manager import CgroupManager as CgroupManager
    from ._manager import FsManager as FsManager
    from ._plan import CgroupPlan as CgroupPlan
    from ._resources import Resources as Resources
    from ._resources import merge as merge

_WHERE = {
    "SystemdDriverError": "._compute",
    "compute_plan": "._compute",
    "update_plan": "._compute",
    "OomEvents": "._events",
    "Host": "._host",
    "detect_host": "._host",
    "CgroupManager": "._manager",
    "FsManager": "._manager",
    "CgroupPlan": "._plan",
    "Resources": "._resources",
    "merge": "._resources",
    "resources_from_dict": "._load",
}

__all__ = [
    "CgroupManager",
    "CgroupPlan",
    "FsManager",
    "Host",
    "OomEvents",
    "Resources",
    "SystemdDriverError",
    "compute_plan",
    "detect_host",
    "merge",
    "resources_from_dict",
    "update_plan",
]


def __getattr__(name: str) -> object:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_WHERE[name], __name__), name)
    globals()[name] = value
    return value
