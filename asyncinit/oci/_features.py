"""``asyncinit features``: the runtime-spec Features document, truthful.

It lists what asyncinit accepts, taken from the config module that decides it
(mount options, namespaces, capabilities), and says ``enabled: false`` for
what config/ refuses today (SELinux, cgroup resource limits): a client that
reads it must not believe a label or a limit would be applied.  ``apparmor``
means what the runtime-spec says: support is built in (a profile is applied
where the host's kernel has AppArmor), not that this host has it.
Update CGROUP and the security entries when those land.
"""

from __future__ import annotations

from .._version import VERSION
from ._state import OCI_VERSION

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

HOOKS = (
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
)
# linux.resources is enforced on both versions by the cgroupfs driver; there is no
# systemd driver (--systemd-cgroup and slice:prefix:name paths are refused).
CGROUP = {"v1": True, "v2": True, "systemd": False, "systemdUser": False}


def features() -> dict[str, Any]:
    from ..config import CAPABILITIES, KNOWN_MOUNT_OPTIONS, NAMESPACE_TYPES
    from ..seccomp._profile import ACTIONS, ARCHITECTURES, FLAGS, OPERATORS

    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": list(HOOKS),
        "mountOptions": sorted(KNOWN_MOUNT_OPTIONS),
        "linux": {
            "namespaces": sorted(NAMESPACE_TYPES),
            "capabilities": sorted(CAPABILITIES, key=CAPABILITIES.__getitem__),
            "cgroup": dict(CGROUP),
            "seccomp": {
                "enabled": True,
                "actions": sorted(ACTIONS),
                "operators": sorted(OPERATORS),
                "archs": sorted(ARCHITECTURES),
                "supportedFlags": sorted(FLAGS),
            },
            "apparmor": {"enabled": True},
            "selinux": {"enabled": False},
        },
        "annotations": {"io.asyncinit.version": VERSION},
    }
