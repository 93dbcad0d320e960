"""Helpers for the attack and conformance suites: host snapshots and ``runc run``.

The same hostile bundle can be started by asyncinit or by the system's runc, so
a test shows both that asyncinit is safe and that it would catch the bug in a
runtime that has it (Debian's runc 1.1.5 still has CVE-2026-41579 and
CVE-2025-31133).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import uuid
from pathlib import Path
from typing import Any

RUNC = shutil.which("runc") or "/usr/sbin/runc"


def runc_available() -> bool:
    return os.access(RUNC, os.X_OK)


def runc_version() -> str:
    result = subprocess.run([RUNC, "--version"], capture_output=True, text=True, check=False)
    return result.stdout.split("\n", 1)[0]


def run_runc(
    bundle: Path, config: dict[str, Any], state_dir: Path, *, uid: int | None = None
) -> tuple[int, str, str]:
    """``runc run`` the bundle with ``config``; (exit code, stdout, stderr).

    ``uid`` runs runc as that user (rootless), with a state directory it owns.
    """
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


def snapshot(root: Path) -> dict[str, tuple[str, int, bytes]]:
    """Every entry under ``root`` (not following symlinks): kind, mode and content."""
    entries: dict[str, tuple[str, int, bytes]] = {}
    for directory, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            path = Path(directory) / name
            info = path.lstat()
            relative = str(path.relative_to(root))
            if stat.S_ISLNK(info.st_mode):
                entries[relative] = ("link", 0, os.readlink(path).encode())
            elif stat.S_ISREG(info.st_mode):
                entries[relative] = ("file", info.st_mode, path.read_bytes())
            elif stat.S_ISDIR(info.st_mode):
                entries[relative] = ("dir", info.st_mode, b"")
            else:
                entries[relative] = ("other", info.st_mode, str(info.st_rdev).encode())
    return entries


def make_sentinel(directory: Path) -> Path:
    """A host directory with content an escaping runtime would change."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ptmx").write_text("host file named like a /dev entry\n")
    (directory / "null").write_text("not a device\n")
    (directory / "keep").write_text("host data\n")
    (directory / "sub").mkdir(exist_ok=True)
    (directory / "sub" / "deep").write_text("deeper host data\n")
    return directory


def children_of(pid: int) -> set[int]:
    """The live children of ``pid``."""
    found: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry))
    return found


def fork_server_pid() -> int | None:
    from asyncinit.parent import _launcher

    server = _launcher._server
    return None if server is None else server.process.pid
