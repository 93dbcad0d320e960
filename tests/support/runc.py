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

from tests.support.cgroups import remove_runc_cgroup

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
    if uid is None:
        remove_runc_cgroup(container_id, config["linux"].get("cgroupsPath"))
    return result.returncode, result.stdout, result.stderr


def runc_run(bundle: Path, config: dict[str, Any], *, no_pivot: bool = False) -> str:
    """``runc run`` (default state directory) that must succeed; its stdout."""
    assert RUNC is not None
    (bundle / "config.json").write_text(json.dumps(config))
    command = [RUNC, "run", "--bundle", str(bundle)]
    if no_pivot:
        command.append("--no-pivot")
    name = f"diff-{uuid.uuid4().hex[:8]}"
    try:
        result = subprocess.run(
            [*command, name],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    finally:  # runc 1.1.5 leaves its cgroup under load (and always in the guest)
        remove_runc_cgroup(name, config["linux"].get("cgroupsPath"))
    assert result.returncode == 0, result.stderr
    return result.stdout


def block_device() -> tuple[int, int] | None:
    """A whole block device of the host (major, minor) for throttle and device rules."""
    for entry in sorted(os.listdir("/sys/dev/block")):
        if not os.path.exists(f"/sys/dev/block/{entry}/partition"):
            major, minor = entry.split(":")
            if major not in ("7", "1"):  # loop and ram devices take no throttle on some kernels
                return int(major), int(minor)
    return None  # the VM guest's root is 9p: no block device at all


def runc(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """runc with the container's stdio on /dev/null (create hands its own stdio over)."""
    assert RUNC is not None
    errors = root.with_name(root.name + ".stderr")
    with open(errors, "w+") as stderr:
        result = subprocess.run(
            [RUNC, "--root", str(root), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            text=True,
            timeout=60,
            check=False,
        )
        stderr.seek(0)
        result.stderr = stderr.read()
    return result
