"""The OCI runtime-spec config.json as frozen attrs classes.

Attribute names are snake_case; each maps to the spec's camelCase JSON key
(``json_key``), so error messages and ``spec_to_dict`` speak the spec's language.
Only the fields asyncinit reads or must refuse are modelled: unknown keys are
ignored as the spec requires. Fields asyncinit refuses or warns about whole
(``linux.resources`` limits, ``linux.intelRdt``) are kept as raw JSON (``Any``)
because their shape does not matter to a refusal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final

import attrs

from .._errors import AsyncInitError
from ..cgroups._resources import Resources
from ..seccomp._profile import LinuxSeccomp
from ._mount_options import MountOptions, parse_mount_options

__all__ = [
    "CAPABILITIES",
    "RLIMITS",
    "Capabilities",
    "Command",
    "ConfigError",
    "ConfigWarning",
    "ConsoleSize",
    "Device",
    "ExecCPUAffinity",
    "Extensions",
    "Hook",
    "Hooks",
    "IDMapping",
    "IOPriority",
    "Linux",
    "Mount",
    "Namespace",
    "NetworkConfig",
    "Personality",
    "Process",
    "Rlimit",
    "Root",
    "Scheduler",
    "Spec",
    "TimeOffset",
    "User",
    "Veth",
    "json_key",
]

_JSON: Final = "asyncinit.json_key"

_CAP_NAMES: Final = (
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
)

CAPABILITIES: Final[Mapping[str, int]] = MappingProxyType(
    {f"CAP_{name}": number for number, name in enumerate(_CAP_NAMES)}
)
"""Capability name -> number (<linux/capability.h>), CAP_CHOWN (0) .. CAP_CHECKPOINT_RESTORE."""

RLIMITS: Final[Mapping[str, int]] = MappingProxyType(
    {
        "RLIMIT_CPU": 0,
        "RLIMIT_FSIZE": 1,
        "RLIMIT_DATA": 2,
        "RLIMIT_STACK": 3,
        "RLIMIT_CORE": 4,
        "RLIMIT_RSS": 5,
        "RLIMIT_NPROC": 6,
        "RLIMIT_NOFILE": 7,
        "RLIMIT_MEMLOCK": 8,
        "RLIMIT_AS": 9,
        "RLIMIT_LOCKS": 10,
        "RLIMIT_SIGPENDING": 11,
        "RLIMIT_MSGQUEUE": 12,
        "RLIMIT_NICE": 13,
        "RLIMIT_RTPRIO": 14,
        "RLIMIT_RTTIME": 15,
    }
)
"""Rlimit name -> resource number for prlimit(2) (<asm-generic/resource.h>: x86, arm, riscv;
Python's ``resource`` module lacks RLIMIT_LOCKS, hence the table)."""


ID_MAX: Final = 2**31 - 1
"""The largest uid or gid accepted anywhere in a config: runc's bound ("uids and gids
must be in range 0-2147483647"). (uid_t)-1 means "leave unchanged" to setresuid,
chown and friends, so 4294967295 as a uid would keep the workload root."""


class ConfigError(AsyncInitError):
    """An invalid config; ``errors`` holds every problem found, as "json.path: message"."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors: list[str] = list(errors)
        super().__init__(self.errors)  # args round-trips through pickle

    def __str__(self) -> str:
        return "\n".join(self.errors)


class ConfigWarning(UserWarning):
    """A config field that is accepted but not acted upon."""


def json_key(field: attrs.Attribute[Any]) -> str:
    """The config.json key of an attrs field: explicit metadata, else camelCase."""
    explicit = field.metadata.get(_JSON)
    if isinstance(explicit, str):
        return explicit
    head, *rest = field.name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _key(name: str) -> dict[str, str]:
    return {_JSON: name}


@attrs.frozen
class Root:
    path: str
    readonly: bool = False


@attrs.frozen
class User:
    uid: int
    gid: int
    umask: int | None = None
    additional_gids: tuple[int, ...] = ()


@attrs.frozen
class ConsoleSize:
    height: int
    width: int


@attrs.frozen
class Capabilities:
    bounding: tuple[str, ...] | None = None
    effective: tuple[str, ...] | None = None
    inheritable: tuple[str, ...] | None = None
    permitted: tuple[str, ...] | None = None
    ambient: tuple[str, ...] | None = None


@attrs.frozen
class Rlimit:
    type: str
    hard: int
    soft: int


@attrs.frozen(kw_only=True)
class Scheduler:
    """``process.scheduler``: sched_setattr(2)'s attributes, by the spec's names."""

    policy: str
    nice: int = 0
    priority: int = 0
    flags: tuple[str, ...] = ()
    runtime: int = 0
    deadline: int = 0
    period: int = 0


@attrs.frozen
class IOPriority:
    """``process.ioPriority``: ioprio_set(2)'s class and level."""

    class_: str = attrs.field(metadata=_key("class"))
    priority: int


@attrs.frozen
class ExecCPUAffinity:
    """``process.execCPUAffinity``: CPU lists ("0-3,7") for processes exec'd into a
    running container (the spec: not for the container's init process)."""

    initial: str | None = None
    final: str | None = None


@attrs.frozen(kw_only=True)
class Process:
    """The container's process."""

    args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    cwd: str
    user: User
    terminal: bool = False
    console_size: ConsoleSize | None = None
    capabilities: Capabilities | None = None
    rlimits: tuple[Rlimit, ...] = ()
    no_new_privileges: bool = False
    oom_score_adj: int | None = None
    apparmor_profile: str | None = None
    selinux_label: str | None = None
    scheduler: Scheduler | None = None
    io_priority: IOPriority | None = None
    exec_cpu_affinity: ExecCPUAffinity | None = attrs.field(
        default=None, metadata=_key("execCPUAffinity")
    )


@attrs.frozen
class Hook:
    path: str
    args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    timeout: int | None = None


@attrs.frozen
class Command(Hook):
    """A premount/postmount command: a hook plus ``dir``, its working directory
    (runc's ``configs.Command``).  OCI hooks have no ``dir``: there the key is
    unknown and ignored, as the spec requires."""

    dir: str | None = None


@attrs.frozen
class Hooks:
    prestart: tuple[Hook, ...] = ()
    create_runtime: tuple[Hook, ...] = ()
    create_container: tuple[Hook, ...] = ()
    start_container: tuple[Hook, ...] = ()
    poststart: tuple[Hook, ...] = ()
    poststop: tuple[Hook, ...] = ()


@attrs.frozen
class IDMapping:
    container_id: int = attrs.field(metadata=_key("containerID"))
    host_id: int = attrs.field(metadata=_key("hostID"))
    size: int


@attrs.frozen
class Mount:
    """One entry of ``mounts``.

    ``premount`` and ``postmount`` are an asyncinit extension (JSON keys
    "premount"/"postmount", each a list of command objects: path, args, env, dir,
    timeout): commands run just before and just after this mount is made. runc
    dropped them in 1.2; other runtimes ignore the keys, so such a config stays
    portable.
    """

    destination: str
    type: str | None = None
    source: str | None = None
    options: tuple[str, ...] = ()
    uid_mappings: tuple[IDMapping, ...] = ()
    gid_mappings: tuple[IDMapping, ...] = ()
    premount: tuple[Command, ...] = ()
    postmount: tuple[Command, ...] = ()

    @property
    def parsed_options(self) -> MountOptions:
        """``options`` decoded into flags (parsed on each access; it is cheap)."""
        return parse_mount_options(self.options)

    @property
    def is_bind(self) -> bool:
        """A bind mount: type "bind" or a ``bind``/``rbind`` option."""
        return self.type == "bind" or self.parsed_options.is_bind


@attrs.frozen
class Namespace:
    type: str
    path: str | None = None


@attrs.frozen
class Device:
    type: str
    path: str
    major: int | None = None
    minor: int | None = None
    file_mode: int | None = None
    uid: int | None = None
    gid: int | None = None


@attrs.frozen
class Personality:
    """``linux.personality``: the execution domain (``flags``: the spec defines none)."""

    domain: str
    flags: tuple[str, ...] = ()


@attrs.frozen
class TimeOffset:
    """One clock's entry of ``linux.timeOffsets`` (keyed by the clock's name)."""

    secs: int = 0
    nanosecs: int = 0


@attrs.frozen
class Linux:
    """``linux``. ``resources`` is the cgroups library's ``Resources`` (enforced);
    ``seccomp`` the seccomp library's profile class (:mod:`asyncinit.seccomp`);
    ``intel_rdt`` is raw JSON: asyncinit refuses it whole."""

    namespaces: tuple[Namespace, ...] = ()
    uid_mappings: tuple[IDMapping, ...] = ()
    gid_mappings: tuple[IDMapping, ...] = ()
    devices: tuple[Device, ...] = ()
    masked_paths: tuple[str, ...] = ()
    readonly_paths: tuple[str, ...] = ()
    sysctl: Mapping[str, str] = attrs.field(factory=dict)
    rootfs_propagation: str | None = None
    resources: Resources | None = None
    cgroups_path: str | None = None
    seccomp: LinuxSeccomp | None = None
    mount_label: str | None = None
    intel_rdt: Any = None
    personality: Personality | None = None
    time_offsets: Mapping[str, TimeOffset] | None = None

    def namespace(self, type: str) -> Namespace | None:
        """The first namespace entry of this type, if any."""
        return next((ns for ns in self.namespaces if ns.type == type), None)


@attrs.frozen(kw_only=True)
class Veth:
    """One veth pair (``asyncinit.network.veth[N]``, docs/network.md).

    ``name`` is the container end; ``host_name`` the host end (generated when
    omitted).  Addresses are CIDR strings, gateways plain addresses: each gateway
    becomes the container's default route for its address family.
    """

    name: str = "eth0"
    host_name: str | None = None
    addresses: tuple[str, ...] = ()
    gateways: tuple[str, ...] = ()
    mtu: int | None = None
    host_addresses: tuple[str, ...] = ()
    bridge: str | None = None


@attrs.frozen
class NetworkConfig:
    """``asyncinit.network``: interfaces the parent creates for the container."""

    veth: tuple[Veth, ...] = ()


@attrs.frozen
class Extensions:
    """The top-level ``asyncinit`` object: settings only asyncinit reads.

    Other runtimes ignore the key (the spec says unknown fields are ignored), so
    the config stays portable; inside it, unknown keys are errors (a typo must
    not silently drop a network).
    """

    network: NetworkConfig | None = None


#: Our own sections: unknown keys in them are errors, unlike in the OCI part.
STRICT_CLASSES: Final = frozenset({Extensions, NetworkConfig, Veth})


@attrs.frozen
class Spec:
    """A whole config.json."""

    oci_version: str
    root: Root | None = None
    process: Process | None = None
    hostname: str | None = None
    domainname: str | None = None
    mounts: tuple[Mount, ...] = ()
    hooks: Hooks | None = None
    annotations: Mapping[str, str] = attrs.field(factory=dict)
    linux: Linux | None = None
    asyncinit: Extensions | None = None
