"""The system's runc, the reference the differential and attack tests compare with."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

RUNC = shutil.which("runc") or next(
    (p for p in ("/usr/sbin/runc", "/usr/bin/runc") if os.access(p, os.X_OK)), None
)
needs_runc = pytest.mark.skipif(RUNC is None, reason="runc is not installed")


def runc_available() -> bool:
    return RUNC is not None


def runc_version() -> str:
    assert RUNC is not None
    result = subprocess.run([RUNC, "--version"], capture_output=True, text=True, check=False)
    return result.stdout.split("\n", 1)[0]


def run_runc(
    bundle: Path, config: dict[str, Any], state_dir: Path, *, uid: int | None = None
) -> tuple[int, str, str]:
    """``runc run`` the bundle with ``config``; (exit code, stdout, stderr).

    ``uid`` runs runc as that user (rootless), with a state directory it owns.
    """
    assert RUNC is not None
    (bundle / "config.json").write_text(json.dumps(config))
    container_id = "asyncinit-" + uuid.uuid4().hex[:8]
    command = [RUNC, "--root", str(state_dir), "run", "--bundle", str(bundle), container_id]
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(bundle)}
    if uid is not None:
        os.chown(state_dir, uid, uid)
        env["XDG_RUNTIME_DIR"] = str(state_dir)
        command = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *command]
    result = subprocess.run(
        command,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    subprocess.run(
        [RUNC, "--root", str(state_dir), "delete", "--force", container_id],
        capture_output=True,
        check=False,
    )
    return result.returncode, result.stdout, result.stderr


def runc_run(bundle: Path, config: dict[str, Any], *, no_pivot: bool = False) -> str:
    """``runc run`` (default state directory) that must succeed; its stdout."""
    assert RUNC is not None
    (bundle / "config.json").write_text(json.dumps(config))
    command = [RUNC, "run", "--bundle", str(bundle)]
    if no_pivot:
        command.append("--no-pivot")
    result = subprocess.run(
        [*command, f"diff-{uuid.uuid4().hex[:8]}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout
