"""Semantic checks on a structurally valid Spec, reporting every problem at once.

Unimplemented-fields policy: a field whose enforcement asyncinit lacks, and whose
silent omission would leave the container less isolated than its author asked
for, is REFUSED with an error naming it (process.selinuxLabel, linux.mountLabel,
linux.intelRdt). ``linux.resources`` and ``linux.cgroupsPath`` are enforced
through ``asyncinit.cgroups`` (the parent's compute_plan checks them against the
host). Fields that do not affect isolation and that asyncinit does not use
(process.consoleSize, annotations, ...) are accepted silently. Capabilities,
rlimits, noNewPrivileges, user, the scheduling fields, personality and time
offsets are implemented by the runtime and validated here (the last ones in
``_process_fields``).
"""

from __future__ import annotations

import itertools
import posixpath
import stat
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from .._lines import show
from .._rules import (
    INIT_MODE_ANNOTATION,
    INIT_MODES,
    SIGNAL_GROUP_ANNOTATION,
    dotted,
    proc_mount_problem,
    sysctl_components,
)
from ..seccomp._profile import profile_problems
from ._fs_options import option_ids, option_value_problems, unknown_options
from ._model import (
    CAPABILITIES,
    ID_MAX,
    RLIMITS,
    Command,
    Device,
    Hook,
    IDMapping,
    Linux,
    Mount,
    Process,
    Spec,
)
from ._mount_options import PROPAGATION
from ._network import check_network, is_host_netns
from ._process_fields import check_linux_fields, check_process_fields
from ._strings import string_problems

__all__ = ["NAMESPACE_TYPES", "validate"]

NAMESPACE_TYPES: Final = frozenset(
    {"pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"}
)
_DEVICE_TYPES: Final = ("b", "c", "p", "u")
_IPC_SYSCTLS: Final = frozenset(
    {
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    }
)
#: The kernel maps no id past this one (an extent must end before (u32)-1).
_MAPPED_ID_MAX: Final = 2**32 - 2
#: UID_GID_MAP_MAX_EXTENTS, and the kernel's limit on one write to uid_map (a page).
_MAX_EXTENTS: Final = 340
_MAP_TEXT_MAX: Final = 4095
#: A device number's parts as the kernel stores them (MINORBITS 20): larger ones
#: would be truncated (runc makes 4096:0 a 0:0 device) or refused by mknod.
_MAJOR_MAX: Final = 2**12 - 1
_MINOR_MAX: Final = 2**20 - 1
#: struct winsize holds unsigned shorts.
_WINSIZE_MAX: Final = 2**16 - 1
#: Longest hook timeout, in seconds (68 years; a larger one overflows timers).
_TIMEOUT_MAX: Final = 2**31 - 1
#: NGROUPS_MAX: setgroups refuses more.
_NGROUPS_MAX: Final = 65536
#: HOST_NAME_MAX: sethostname and setdomainname refuse longer names.
_UTS_NAME_MAX: Final = 64
_U64: Final = 2**64 - 1
_REFUSED: Final = "not supported by asyncinit; refused rather than silently ignored"


class _Report:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def error(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(f"{path}: {message}")

    def range(self, path: str, value: int | None, low: int, high: int) -> bool:
        """Report a value outside low..high; True when it is inside (or None)."""
        if value is not None and not low <= value <= high:
            self.error(path, f"must be between {low} and {high}, got {show(value)}")
            return False
        return True

    def absolute(self, path: str, value: str) -> bool:
        if not value.startswith("/"):
            self.error(path, f"must be an absolute path, got {show(value)}")
            return False
        return True


def _clean(path: str) -> str:
    """filepath.Clean for absolute paths (POSIX keeps a leading "//"; Go does not)."""
    return "/" + posixpath.normpath(path).lstrip("/")


def validate(spec: Spec, *, check_strings: bool = True) -> tuple[list[str], list[str]]:
    """Return (errors, warnings), each a list of "json.path: message".

    Strings that cannot become C strings are reported alone: the checks below
    hand strings to the OS (os.stat of a namespace path...), which would raise.
    ``check_strings=False`` skips that walk when the loader's scan of the raw
    data found no suspicious string.
    """
    problems = string_problems(spec) if check_strings else []
    if problems:
        return problems, []
    report = _Report()
    if not spec.oci_version:
        report.error("ociVersion", "must not be empty")
    if spec.root is None:
        report.error("root", "required field missing")
    elif not spec.root.path:
        report.error("root.path", "must not be empty")
    if spec.process is not None:
        _check_process(report, spec.process)
    linux = spec.linux if spec.linux is not None else Linux()
    namespaces = {ns.type: ns for ns in linux.namespaces}
    for i, mount in enumerate(spec.mounts):
        _check_mount(report, f"mounts[{i}]", mount, "user" in namespaces)
    if spec.mounts and "mount" not in namespaces:
        report.error("mounts", "requires a mount namespace in linux.namespaces")
    if spec.root is not None and spec.root.readonly and "mount" not in namespaces:
        # The read-only remount would hit the host's own mount of the rootfs.
        report.error("root.readonly", "requires a mount namespace in linux.namespaces")
    if spec.hooks is not None:
        for name, hooks in (
            ("prestart", spec.hooks.prestart),
            ("createRuntime", spec.hooks.create_runtime),
            ("createContainer", spec.hooks.create_container),
            ("startContainer", spec.hooks.start_container),
            ("poststart", spec.hooks.poststart),
            ("poststop", spec.hooks.poststop),
        ):
            _check_hooks(report, f"hooks.{name}", hooks)
    for field in ("hostname", "domainname"):
        name = getattr(spec, field)
        if name and "uts" not in namespaces:
            report.error(field, "requires a uts namespace in linux.namespaces")
        if name and len(name.encode()) > _UTS_NAME_MAX:
            report.error(field, f"longer than {_UTS_NAME_MAX} bytes")
    _check_linux(report, linux)
    _check_user_namespace(report, spec, linux)
    _check_annotations(report, spec.annotations)
    report.errors.extend(check_network(spec))
    return report.errors, report.warnings


def _check_annotations(report: _Report, annotations: Mapping[str, str]) -> None:
    """asyncinit's own annotations (other keys are the user's, passed on to hooks)."""
    mode = annotations.get(INIT_MODE_ANNOTATION)
    if mode is not None and mode not in INIT_MODES:
        expected = ", ".join(show(m) for m in INIT_MODES)
        path = f"annotations.{INIT_MODE_ANNOTATION}"
        report.error(path, f"{show(mode)} is not one of {expected}")
    group = annotations.get(SIGNAL_GROUP_ANNOTATION)
    if group is not None and group not in ("true", "false"):
        path = f"annotations.{SIGNAL_GROUP_ANNOTATION}"
        report.error(path, f'expected "true" or "false", got {show(group)}')


def _check_process(report: _Report, process: Process) -> None:
    if not process.args:
        report.error("process.args", "must not be empty")
    report.absolute("process.cwd", process.cwd)
    _check_env(report, "process.env", process.env)
    user = process.user
    report.range("process.user.uid", user.uid, 0, ID_MAX)
    report.range("process.user.gid", user.gid, 0, ID_MAX)
    report.range("process.user.umask", user.umask, 0, 0o777)
    for i, gid in enumerate(user.additional_gids):
        report.range(f"process.user.additionalGids[{i}]", gid, 0, ID_MAX)
    if len(user.additional_gids) > _NGROUPS_MAX:
        report.error("process.user.additionalGids", f"more than {_NGROUPS_MAX} groups")
    report.range("process.oomScoreAdj", process.oom_score_adj, -1000, 1000)
    if process.console_size is not None:
        report.range("process.consoleSize.height", process.console_size.height, 0, _WINSIZE_MAX)
        report.range("process.consoleSize.width", process.console_size.width, 0, _WINSIZE_MAX)
    if process.capabilities is not None:
        caps = process.capabilities
        for name, values in (
            ("bounding", caps.bounding),
            ("effective", caps.effective),
            ("inheritable", caps.inheritable),
            ("permitted", caps.permitted),
            ("ambient", caps.ambient),
        ):
            for i, cap in enumerate(values or ()):
                if cap not in CAPABILITIES:
                    report.error(
                        f"process.capabilities.{name}[{i}]", f"unknown capability {show(cap)}"
                    )
    seen: set[str] = set()
    for i, rlimit in enumerate(process.rlimits):
        path = f"process.rlimits[{i}]"
        if rlimit.type not in RLIMITS:
            report.error(f"{path}.type", f"unknown rlimit {show(rlimit.type)}")
        elif rlimit.type in seen:
            report.error(f"{path}.type", f"duplicate rlimit {show(rlimit.type)}")
        seen.add(rlimit.type)
        hard_ok = report.range(f"{path}.hard", rlimit.hard, 0, _U64)
        soft_ok = report.range(f"{path}.soft", rlimit.soft, 0, _U64)
        if hard_ok and soft_ok and rlimit.soft > rlimit.hard:
            report.error(f"{path}.soft", f"must not exceed hard ({rlimit.soft} > {rlimit.hard})")
    report.errors.extend(check_process_fields(process))


def _check_env(report: _Report, path: str, env: Iterable[str]) -> None:
    """NAME=VALUE with a name, as runc demands (a bare "FOO" is not "FOO=")."""
    for i, entry in enumerate(env):
        name, equals, _ = entry.partition("=")
        if not equals:
            report.error(f"{path}[{i}]", f"must be NAME=VALUE, got {show(entry)}")
        elif not name:
            report.error(f"{path}[{i}]", f"the variable's name is empty in {show(entry)}")


def _check_hooks(report: _Report, path: str, hooks: Iterable[Hook]) -> None:
    for i, hook in enumerate(hooks):
        report.absolute(f"{path}[{i}].path", hook.path)
        _check_env(report, f"{path}[{i}].env", hook.env)
        if hook.timeout is not None and hook.timeout <= 0:
            report.error(f"{path}[{i}].timeout", f"must be greater than 0, got {hook.timeout}")
        elif hook.timeout is not None and hook.timeout > _TIMEOUT_MAX:
            report.error(f"{path}[{i}].timeout", f"must be at most {_TIMEOUT_MAX} seconds")
        if isinstance(hook, Command) and hook.dir is not None:
            report.absolute(f"{path}[{i}].dir", hook.dir)


def _check_mappings(report: _Report, path: str, mappings: Sequence[IDMapping]) -> bool:
    """What the kernel's map_write() would refuse with a bare EINVAL, named here.

    True when the kernel would take the map."""
    if not mappings:
        return True
    errors = len(report.errors)
    if len(mappings) > _MAX_EXTENTS:
        report.error(path, f"more than {_MAX_EXTENTS} entries ({len(mappings)})")
    valid: list[tuple[int, IDMapping]] = []
    for i, mapping in enumerate(mappings):
        entry = f"{path}[{i}]"
        fits = report.range(f"{entry}.size", mapping.size, 1, _MAPPED_ID_MAX + 1)
        for key, first in (("containerID", mapping.container_id), ("hostID", mapping.host_id)):
            if not report.range(f"{entry}.{key}", first, 0, _MAPPED_ID_MAX):
                fits = False
            elif fits and first + mapping.size - 1 > _MAPPED_ID_MAX:
                report.error(
                    f"{entry}.size",
                    f"{key} {first} + size {mapping.size} runs past {_MAPPED_ID_MAX}, "
                    "the last id the kernel maps",
                )
                fits = False
        if fits:
            valid.append((i, mapping))
    for key in ("container_id", "host_id"):
        ordered = sorted(valid, key=lambda item: getattr(item[1], key))
        for (i, low), (j, high) in itertools.pairwise(ordered):
            if getattr(low, key) + low.size > getattr(high, key):
                side = "container" if key == "container_id" else "host"
                first, second = sorted((i, j))
                report.error(f"{path}[{second}]", f"its {side} ids overlap {path}[{first}]")
    if len(valid) == len(mappings) <= _MAX_EXTENTS:
        text = sum(len(f"{m.container_id} {m.host_id} {m.size}\n") for m in mappings)
        if text > _MAP_TEXT_MAX:
            report.error(path, f"{text} bytes as a map; the kernel takes at most {_MAP_TEXT_MAX}")
    return len(report.errors) == errors


def _check_mount(report: _Report, path: str, mount: Mount, has_userns: bool) -> None:
    absolute = report.absolute(f"{path}.destination", mount.destination)
    if absolute and _clean(mount.destination) == "/":
        report.error(f"{path}.destination", 'must not be "/" (use root.path for the rootfs)')
    options = mount.parsed_options
    bind = mount.is_bind
    if absolute:
        problem = proc_mount_problem(_clean(mount.destination), mount.type or "", bind=bind)
        if problem is not None:
            report.error(f"{path}.destination", problem)
    if not bind:
        for i, option in unknown_options(mount.type, mount.options):
            report.error(f"{path}.options[{i}]", f"unknown option {show(option)} for {mount.type}")
        for i, problem in option_value_problems(mount.type, mount.options):
            report.error(f"{path}.options[{i}]", problem)
    if bind and options.data:
        report.error(
            f"{path}.options",
            f"bind mounts take no filesystem data options, got {show(options.data)}",
        )
    for ext in sorted(options.extensions & {"idmap", "ridmap"}):
        if not bind:
            report.error(f"{path}.options", f"{show(ext)} is only valid on bind mounts")
        elif not (mount.uid_mappings or mount.gid_mappings or has_userns):
            report.error(
                f"{path}.options",
                f"{show(ext)} without uidMappings/gidMappings requires a user namespace",
            )
    for key, mappings in (("uidMappings", mount.uid_mappings), ("gidMappings", mount.gid_mappings)):
        if mappings and not bind:
            report.error(f"{path}.{key}", "only valid on bind mounts")
        _check_mappings(report, f"{path}.{key}", mappings)
    if bool(mount.uid_mappings) != bool(mount.gid_mappings):
        missing, given = (
            ("gidMappings", "uidMappings") if mount.uid_mappings else ("uidMappings", "gidMappings")
        )
        report.error(f"{path}.{missing}", f"required when {given} is given")
    _check_hooks(report, f"{path}.premount", mount.premount)
    _check_hooks(report, f"{path}.postmount", mount.postmount)


def _check_linux(report: _Report, linux: Linux) -> None:
    seen: dict[str, int] = {}
    for i, ns in enumerate(linux.namespaces):
        path = f"linux.namespaces[{i}]"
        if ns.type not in NAMESPACE_TYPES:
            expected = ", ".join(sorted(NAMESPACE_TYPES))
            report.error(
                f"{path}.type",
                f"unknown namespace type {show(ns.type)} (expected one of {expected})",
            )
        elif ns.type in seen:
            report.error(
                f"{path}.type",
                f"duplicate namespace {show(ns.type)} (see linux.namespaces[{seen[ns.type]}])",
            )
        seen.setdefault(ns.type, i)
        if ns.path is not None:
            report.absolute(f"{path}.path", ns.path)
    _check_devices(report, linux)
    if linux.rootfs_propagation and linux.rootfs_propagation not in PROPAGATION:
        expected = ", ".join(sorted(PROPAGATION))
        report.error(
            "linux.rootfsPropagation",
            f"unknown propagation {show(linux.rootfs_propagation)} (expected one of {expected})",
        )
    for key, paths in (
        ("maskedPaths", linux.masked_paths),
        ("readonlyPaths", linux.readonly_paths),
    ):
        for i, p in enumerate(paths):
            report.absolute(f"linux.{key}[{i}]", p)
        if paths and linux.namespace("mount") is None:
            report.error(f"linux.{key}", "requires a mount namespace in linux.namespaces")
    _check_sysctl(report, linux)
    if linux.seccomp is not None:
        report.errors.extend(profile_problems(linux.seccomp, "linux.seccomp"))
    report.errors.extend(check_linux_fields(linux))
    if linux.intel_rdt is not None and linux.intel_rdt != "":
        report.error("linux.intelRdt", _REFUSED)


_DEVICE_TYPE_BITS = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def permission_bits(device: Device) -> int | None:
    """``fileMode`` without the device's own file type bits: podman sends its host
    node's whole ``st_mode`` (``--device /dev/zero``: 0o20666), runc keeps the
    permissions.  Other bits above 0o7777 stay, for the range check to refuse."""
    mode = device.file_mode
    if mode is not None and mode >= 0 and mode & ~0o7777 == _DEVICE_TYPE_BITS.get(device.type):
        return mode & 0o7777
    return mode


def _check_devices(report: _Report, linux: Linux) -> None:
    paths: dict[str, int] = {}
    for i, dev in enumerate(linux.devices):
        path = f"linux.devices[{i}]"
        if dev.type not in _DEVICE_TYPES:
            report.error(
                f"{path}.type", f"must be one of {', '.join(_DEVICE_TYPES)}, got {show(dev.type)}"
            )
        elif dev.type != "p":
            for key, number in (("major", dev.major), ("minor", dev.minor)):
                if number is None:
                    report.error(f"{path}.{key}", "required for character and block devices")
        report.range(f"{path}.major", dev.major, 0, _MAJOR_MAX)
        report.range(f"{path}.minor", dev.minor, 0, _MINOR_MAX)
        report.range(f"{path}.fileMode", permission_bits(dev), 0, 0o7777)
        report.range(f"{path}.uid", dev.uid, 0, ID_MAX)
        report.range(f"{path}.gid", dev.gid, 0, ID_MAX)
        if report.absolute(f"{path}.path", dev.path):
            clean = _clean(dev.path)
            if clean in paths:
                report.error(
                    f"{path}.path",
                    f"duplicate device path {show(dev.path)} (see linux.devices[{paths[clean]}])",
                )
            paths.setdefault(clean, i)


def _mapped(mappings: Sequence[IDMapping], id_: int) -> bool:
    return any(m.container_id <= id_ < m.container_id + m.size for m in mappings)


def _check_user_namespace(report: _Report, spec: Spec, linux: Linux) -> None:
    """The maps, then, in a user namespace the container creates, every id it uses.

    setresuid, setgroups and the uid=/gid= of tmpfs/devpts refuse unmapped ids
    with a bare EINVAL (runc: "cannot set uid to unmapped user in user namespace").
    A joined namespace's maps are not known here.
    """
    userns = linux.namespace("user")
    maps_ok = True
    for key, mappings in (("uidMappings", linux.uid_mappings), ("gidMappings", linux.gid_mappings)):
        if userns is None and mappings:
            report.error(f"linux.{key}", "requires a user namespace in linux.namespaces")
        elif userns is not None and userns.path is None and not mappings:
            report.error(f"linux.{key}", "required when a user namespace is created")
        elif userns is not None and userns.path is not None and mappings:
            report.error(f"linux.{key}", "must not be given when joining a user namespace by path")
        maps_ok = _check_mappings(report, f"linux.{key}", mappings) and maps_ok
    if userns is None or userns.path is not None or not maps_ok:
        return
    uses: list[tuple[str, str, int]] = []  # (uid or gid, JSON path, id)
    if spec.process is not None:
        user = spec.process.user
        uses += [("uid", "process.user.uid", user.uid), ("gid", "process.user.gid", user.gid)]
        uses += [
            ("gid", f"process.user.additionalGids[{i}]", gid)
            for i, gid in enumerate(user.additional_gids)
        ]
    for m, mount in enumerate(spec.mounts):
        if not mount.is_bind:
            uses += [
                (kind, f"mounts[{m}].options[{i}]", id_)
                for i, kind, id_ in option_ids(mount.type, mount.options)
            ]
    for kind, path, id_ in uses:
        mappings = linux.uid_mappings if kind == "uid" else linux.gid_mappings
        if mappings and 0 <= id_ <= ID_MAX and not _mapped(mappings, id_):
            key = "uidMappings" if kind == "uid" else "gidMappings"
            report.error(path, f"{kind} {id_} is not mapped in linux.{key}")


def _check_sysctl(report: _Report, linux: Linux) -> None:
    """runc's rules: only sysctls isolated by a namespace the container owns."""
    for raw_key in linux.sysctl:
        path = f"linux.sysctl[{show(raw_key)}]"
        if sysctl_components(raw_key) is None:
            report.error(path, 'invalid sysctl name (empty, "." or ".." component)')
            continue
        key = dotted(raw_key)
        if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
            if linux.namespace("ipc") is None:
                report.error(path, "requires an ipc namespace in linux.namespaces")
        elif key.startswith("net."):
            netns = linux.namespace("network")
            if netns is None:
                report.error(path, "requires a network namespace in linux.namespaces")
            elif netns.path is not None and is_host_netns(netns.path):
                report.error(path, "not allowed in the host's network namespace")
        elif key == "kernel.domainname":
            if linux.namespace("uts") is None:
                report.error(path, "requires a uts namespace in linux.namespaces")
        elif key == "kernel.hostname":
            report.error(path, 'not allowed; use the "hostname" field')
        elif key.startswith("user."):
            if linux.namespace("user") is None:
                report.error(path, "requires a user namespace in linux.namespaces")
        else:
            report.error(path, "not namespaced (would change the host); refused")
