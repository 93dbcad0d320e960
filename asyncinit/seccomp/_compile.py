"""Profile -> BPF program, in the parent, once per profile (runc's InitSeccomp, split).

runc compiles the profile with libseccomp inside ``runc init`` for every
container. Here the parent compiles it (libseccomp through :mod:`._libseccomp`),
prepends runc's -ENOSYS stub (:mod:`._bpf`), and caches the result by the
profile's canonical JSON; the init only hands the bytes to ``seccomp()``.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import json
from typing import Final

import attrs

from .._syscalls._process import seccomp
from . import _bpf, _kernel
from ._libseccomp import ArgCmp, Filter, Libseccomp, libseccomp
from ._load import SeccompPlan, plan_of
from ._profile import (
    ACTIONS,
    ERRNO_ACTIONS,
    FLAGS,
    OPERATORS,
    LinuxSeccomp,
    LinuxSyscall,
    SeccompProfileError,
    parse_profile,
    profile_problems,
    profile_to_json,
)

__all__ = ["CompiledFilter", "action_supported", "compile_profile", "flag_supported"]

#: runc enables libseccomp's binary tree above this many syscall names (0 crash <= 2.5.4)
_OPTIMIZE_ABOVE: Final = 32
_PERMISSIVE: Final = frozenset({"SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE"})


@attrs.frozen
class CompiledFilter:
    """A loadable filter: ``program`` is ``struct sock_filter[]``, ``flags`` seccomp()'s."""

    program: bytes = attrs.field(repr=lambda p: f"<{len(p) // 8} instructions>")
    flags: int
    #: syscall names the host's libseccomp does not know, skipped as runc does
    skipped: tuple[str, ...] = ()

    @property
    def listener(self) -> bool:
        """True if loading returns a notification fd (a rule is SCMP_ACT_NOTIFY)."""
        return bool(self.flags & _kernel.FLAG_NEW_LISTENER)

    def to_plan(self) -> SeccompPlan:
        return plan_of(self.program, self.flags)


def compile_profile(profile: LinuxSeccomp, path: str = "linux.seccomp") -> CompiledFilter:
    """The filter for ``profile``; raises SeccompProfileError naming the JSON path.

    Cached by the canonical JSON of what reaches the BPF (not ``listenerPath``
    nor ``listenerMetadata``), so a thousand containers cost one compilation.
    """
    problems = profile_problems(profile, path)
    if problems:
        raise SeccompProfileError(problems)
    key = profile_to_json(attrs.evolve(profile, listener_path=None, listener_metadata=None))
    return _compile_cached(json.dumps(key, sort_keys=True, separators=(",", ":")), path)


@functools.lru_cache(maxsize=64)
def _compile_cached(canonical: str, path: str) -> CompiledFilter:
    return _compile(parse_profile(json.loads(canonical), path), path)


def _action(name: str, errno_ret: int | None) -> int:
    if name in ERRNO_ACTIONS:
        return ACTIONS[name] | (errno.EPERM if errno_ret is None else errno_ret)
    return ACTIONS[name]


def _compile(profile: LinuxSeccomp, path: str) -> CompiledFilter:
    lib = libseccomp()
    problems: list[str] = []
    default = _action(profile.default_action, profile.default_errno_ret)
    _check_kernel_actions(profile, path, problems)
    tokens = _arch_tokens(lib, profile, path, problems)
    flags = _flags(profile, path, problems)
    if problems:
        raise SeccompProfileError(problems)
    skipped: list[str] = []
    with lib.filter(default) as ctx:
        for token in tokens:
            ctx.add_arch(token)
        if sum(len(rule.names) for rule in profile.syscalls) > _OPTIMIZE_ABOVE:
            ctx.optimize(2)
        for i, rule in enumerate(profile.syscalls):
            action = _action(rule.action, rule.errno_ret)
            if action == default:
                continue  # libseccomp refuses a rule that repeats the default
            for k, name in enumerate(rule.names):
                number = lib.syscall(name)
                if number is None:
                    skipped.append(name)
                    continue
                try:
                    _add_rule(ctx, action, number, rule)
                except OSError as error:
                    problems.append(f"{path}.syscalls[{i}].names[{k}]: {name}: {error.strerror}")
        if problems:
            raise SeccompProfileError(problems)
        program = ctx.export_bpf()
    if profile.default_action not in _PERMISSIVE:
        program = _bpf.encode(_bpf.enosys_stub(_maxima(lib, profile, tokens))) + program
    return CompiledFilter(program, flags, tuple(dict.fromkeys(skipped)))


def _add_rule(ctx: Filter, action: int, number: int, rule: LinuxSyscall) -> None:
    """One rule, or (runc's rule) one per condition if two compare the same argument."""
    conditions = [
        ArgCmp(arg.index, OPERATORS[arg.op], arg.value, arg.value_two) for arg in rule.args
    ]
    indexes = [arg.index for arg in rule.args]
    groups = [[c] for c in conditions] if len(set(indexes)) < len(indexes) else [conditions]
    for group in groups:
        ctx.add_rule(action, number, group)


def _arch_tokens(
    lib: Libseccomp, profile: LinuxSeccomp, path: str, problems: list[str]
) -> list[int]:
    tokens = []
    for i, arch in enumerate(profile.architectures):
        token = lib.arch(arch.removeprefix("SCMP_ARCH_").lower())
        if token:
            tokens.append(token)
        else:
            version = ".".join(map(str, lib.version))
            problems.append(
                f"{path}.architectures[{i}]: {arch} is unknown to this host's libseccomp {version}"
            )
    return tokens


def _maxima(lib: Libseccomp, profile: LinuxSeccomp, tokens: list[int]) -> dict[int, dict[int, int]]:
    """AUDIT_ARCH -> {arch token: highest syscall number the profile names}.

    The native architecture counts even when ``architectures`` leaves it out
    (libseccomp always filters it; runc then adds no stub at all).
    """
    names = {name for rule in profile.syscalls for name in rule.names}
    maxima: dict[int, dict[int, int]] = {}
    for token in dict.fromkeys([lib.native_arch, *tokens]):
        resolved = (lib.syscall(name, token) for name in names)
        numbers = [n for n in resolved if n is not None and n >= 0]
        if numbers:
            audit = _kernel.AUDIT_ARCH_X86_64 if token == _bpf.X32_TOKEN else token
            maxima.setdefault(audit, {})[token] = max(numbers)
    return maxima


def _flags(profile: LinuxSeccomp, path: str, problems: list[str]) -> int:
    """seccomp() flags: the profile's (SPEC_ALLOW when absent, as runc), NEW_LISTENER for NOTIFY."""
    flags = 0
    names = ("SECCOMP_FILTER_FLAG_SPEC_ALLOW",) if profile.flags is None else profile.flags
    for i, name in enumerate(names):
        flag = FLAGS[name]
        if flag_supported(flag):
            flags |= flag
        elif profile.flags is not None:
            problems.append(f"{path}.flags[{i}]: {name} is not supported by this kernel")
    if profile.uses_notify:
        flags |= _kernel.FLAG_NEW_LISTENER
        if flags & _kernel.FLAG_TSYNC:
            flags |= _kernel.FLAG_TSYNC_ESRCH  # TSYNC and a listener need it (5.7)
    else:
        flags &= ~_kernel.FLAG_WAIT_KILLABLE_RECV  # meaningless without a listener: EINVAL
    return flags


def _check_kernel_actions(profile: LinuxSeccomp, path: str, problems: list[str]) -> None:
    used = {profile.default_action: f"{path}.defaultAction"}
    for i, rule in enumerate(profile.syscalls):
        used.setdefault(rule.action, f"{path}.syscalls[{i}].action")
    for name, where in used.items():
        if not action_supported(ACTIONS[name]):
            problems.append(f"{where}: {name} is not supported by this kernel")


@functools.cache
def flag_supported(flag: int) -> bool:
    """True if the kernel knows filter ``flag``: a NULL program then gives EFAULT, not EINVAL."""
    if flag & _kernel.FLAG_WAIT_KILLABLE_RECV:
        flag |= _kernel.FLAG_NEW_LISTENER  # EINVAL without it, known or not
    try:
        seccomp(_kernel.SET_MODE_FILTER, flag, None)
    except OSError as error:
        return error.errno == errno.EFAULT
    return True  # pragma: no cover - a NULL program cannot load


@functools.cache
def action_supported(action: int) -> bool:
    """SECCOMP_GET_ACTION_AVAIL: True if the kernel implements ``action``."""
    value = ctypes.c_uint32(action & ~_kernel.RET_DATA & 0xFFFFFFFF)
    try:
        seccomp(_kernel.GET_ACTION_AVAIL, 0, ctypes.byref(value))
    except OSError:
        return False
    return True
