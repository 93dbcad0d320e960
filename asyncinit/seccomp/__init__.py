"""seccomp for OCI containers: profile, compiler (parent), loader (init), notifications.

The runtime-spec's ``linux.seccomp`` as typed classes (:class:`LinuxSeccomp`),
compiled once per profile in the parent with libseccomp into a BPF program
(:func:`compile_profile`, with runc's -ENOSYS stub), loaded in the init by a bare
``seccomp()`` (:func:`install_filter`, no libseccomp there). A SCMP_ACT_NOTIFY
rule gives a listener fd: hand it to a runc-style agent (:func:`send_to_agent`)
or answer the syscalls from Python (:class:`Notifications`).

Names are imported on first use: the init imports ``asyncinit.seccomp._load``
only, and must not pay for attrs, anyio or libseccomp.
"""

from __future__ import annotations

from importlib import import_module

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._agent import AgentError as AgentError
    from ._agent import process_state as process_state
    from ._agent import receive_process_state as receive_process_state
    from ._agent import send_to_agent as send_to_agent
    from ._compile import CompiledFilter as CompiledFilter
    from ._compile import compile_profile as compile_profile
    from ._libseccomp import LibseccompUnavailable as LibseccompUnavailable
    from ._load import SeccompPlan as SeccompPlan
    from ._load import install_filter as install_filter
    from ._load import load_plan as load_plan
    from ._notify import Handler as Handler
    from ._notify import Notification as Notification
    from ._notify import Notifications as Notifications
    from ._notify import serve as serve
    from ._profile import LinuxSeccomp as LinuxSeccomp
    from ._profile import LinuxSeccompArg as LinuxSeccompArg
    from ._profile import LinuxSyscall as LinuxSyscall
    from ._profile import SeccompProfileError as SeccompProfileError
    from ._profile import parse_profile as parse_profile
    from ._profile import profile_problems as profile_problems
    from ._profile import profile_to_json as profile_to_json

_WHERE = {
    "AgentError": "._agent",
    "process_state": "._agent",
    "receive_process_state": "._agent",
    "send_to_agent": "._agent",
    "CompiledFilter": "._compile",
    "compile_profile": "._compile",
    "LibseccompUnavailable": "._libseccomp",
    "SeccompPlan": "._load",
    "install_filter": "._load",
    "load_plan": "._load",
    "Handler": "._notify",
    "Notification": "._notify",
    "Notifications": "._notify",
    "serve": "._notify",
    "LinuxSeccomp": "._profile",
    "LinuxSeccompArg": "._profile",
    "LinuxSyscall": "._profile",
    "SeccompProfileError": "._profile",
    "parse_profile": "._profile",
    "profile_problems": "._profile",
    "profile_to_json": "._profile",
}

__all__ = [
    "AgentError",
    "CompiledFilter",
    "Handler",
    "LibseccompUnavailable",
    "LinuxSeccomp",
    "LinuxSeccompArg",
    "LinuxSyscall",
    "Notification",
    "Notifications",
    "SeccompPlan",
    "SeccompProfileError",
    "compile_profile",
    "install_filter",
    "load_plan",
    "parse_profile",
    "process_state",
    "profile_problems",
    "profile_to_json",
    "receive_process_state",
    "send_to_agent",
    "serve",
]


def __getattr__(name: str) -> object:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value
