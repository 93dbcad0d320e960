"""Compiling ``linux.seccomp``: the BPF program the init hands to ``seccomp()``.

The profile is compiled here, in the parent, with libseccomp (cached per
profile by :func:`asyncinit.seccomp.compile_profile`); the init receives the
program as plain data and never loads libseccomp (docs/security.md).
"""

from __future__ import annotations

from ..seccomp import LibseccompUnavailable, LinuxSeccomp, SeccompProfileError, compile_profile
from ..seccomp._load import SeccompPlan

PATH = "linux.seccomp"


def compile_seccomp(
    profile: LinuxSeccomp | None, errors: list[str], *, handler: bool = False
) -> SeccompPlan | None:
    """The filter of ``profile`` for the plan; problems go to ``errors`` by JSON path.

    A SCMP_ACT_NOTIFY rule needs someone to answer it: ``listenerPath`` (runc's
    agent) or spawn()'s ``seccomp_handler`` (``handler``), exactly one of them;
    otherwise the workload would block for ever.
    """
    if profile is None:
        if handler:
            errors.append(f"{PATH}: seccomp_handler needs a profile with SCMP_ACT_NOTIFY rules")
        return None
    try:
        compiled = compile_profile(profile, PATH)
    except SeccompProfileError as exc:
        errors.extend(exc.errors)
        return None
    except LibseccompUnavailable as exc:
        errors.append(f"{PATH}: cannot compile the profile: {exc}")
        return None
    if handler and not compiled.listener:
        errors.append(f"{PATH}: seccomp_handler needs a profile with SCMP_ACT_NOTIFY rules")
    elif handler and profile.listener_path:
        errors.append(f"{PATH}.listenerPath: not with seccomp_handler (one answers the listener)")
    elif compiled.listener and not handler and not profile.listener_path:
        errors.append(f"{PATH}.listenerPath: required by SCMP_ACT_NOTIFY rules")
    return compiled.to_plan()
