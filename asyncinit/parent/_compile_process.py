"""Compiling ``process`` and the init's mode: what the init's last steps carry out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .._plan import ProcessPlan
from .._rules import INIT_MODE_ANNOTATION, INIT_MODES, SIGNAL_GROUP_ANNOTATION
from ..config import CAPABILITIES, RLIMITS, Process
from ..seccomp._load import SeccompPlan


def _capability_mask(names: Sequence[str] | None) -> int:
    mask = 0
    for name in names or ():
        mask |= 1 << CAPABILITIES[name]
    return mask


def init_mode(annotations: Mapping[str, str], requested: str | None, errors: list[str]) -> str:
    """spawn()'s ``init``, else the ``io.asyncinit.init`` annotation, else "exec".

    The annotation's value is a rule of the file (config validation checked it).
    """
    if requested is not None and requested not in INIT_MODES:
        errors.append(f"init: {requested!r} is not one of {INIT_MODES} (spawn's init argument)")
    return requested or annotations.get(INIT_MODE_ANNOTATION, "exec")


def signal_group(annotations: Mapping[str, str], requested: bool | None) -> bool:
    """spawn()'s ``signal_group``, else the ``io.asyncinit.init.signal-group`` annotation
    (its value checked by config validation)."""
    if requested is not None:
        return requested
    return annotations.get(SIGNAL_GROUP_ANNOTATION, "false") == "true"


def compile_process(
    process: Process,
    *,
    mode: str,
    signal_group: bool,
    pass_fds: int,
    console_size: tuple[int, int] | None,
    seccomp: SeccompPlan | None = None,
) -> ProcessPlan:
    """``process`` as flags and masks; ``console_size`` sizes a pty without consoleSize."""
    caps = process.capabilities
    return {
        "args": list(process.args),
        "env": list(process.env),
        "cwd": process.cwd,
        "uid": process.user.uid,
        "gid": process.user.gid,
        "additional_gids": list(process.user.additional_gids),
        "umask": process.user.umask if process.user.umask is not None else 0o022,
        "capabilities": None
        if caps is None
        else {
            "bounding": _capability_mask(caps.bounding),
            "effective": _capability_mask(caps.effective),
            "permitted": _capability_mask(caps.permitted),
            "inheritable": _capability_mask(caps.inheritable),
            "ambient": _capability_mask(caps.ambient),
        },
        "rlimits": [(RLIMITS[r.type], r.soft, r.hard) for r in process.rlimits],
        "no_new_privileges": process.no_new_privileges,
        "oom_score_adj": process.oom_score_adj,
        "terminal": process.terminal,
        "console_size": (
            (process.console_size.height, process.console_size.width)
            if process.console_size
            else console_size
        ),
        "mode": mode,
        "signal_group": signal_group,
        "pass_fds": pass_fds,
        "seccomp": seccomp,
    }
