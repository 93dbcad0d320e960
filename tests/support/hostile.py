"""Helpers for the attack and conformance suites: host snapshots, sentinels, strangers.

The same hostile bundle can be started by asyncinit or by the system's runc
(``tests.support.runc``), so a test shows both that asyncinit is safe and that
it would catch the bug in a runtime that has it (Debian's runc 1.1.5 still has
CVE-2026-41579 and CVE-2025-31133).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import CHECKOUT, TIMEOUT_SCALE
from .host import process_stats


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
    return {
        child for child, fields in process_stats() if int(fields[1]) == pid and fields[0] != "Z"
    }


def fork_server_pid() -> int | None:
    from asyncinit.parent import _launcher

    server = _launcher._server
    return None if server is None else server.process.pid


def unused_uid(start: int = 61000) -> int:
    """A uid (and gid) with no passwd/group entry and no process: a stranger to this host."""
    with open("/etc/passwd") as f:
        taken = {int(line.split(":")[2]) for line in f if line.count(":") >= 3}
    with open("/etc/group") as f:
        taken |= {int(line.split(":")[2]) for line in f if line.count(":") >= 3}
    owners = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                owners.add(os.stat(f"/proc/{entry}").st_uid)
    for uid in range(start, start + 1000):
        if uid not in taken and uid not in owners:
            return uid
    raise RuntimeError("no unused uid")


def processes_of(uid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    found.add(int(entry))
    return found


def give_to(path: Path, uid: int) -> None:
    """chown -R ``path`` to ``uid``."""
    for directory, dirs, files in os.walk(path):
        os.lchown(directory, uid, uid)
        for name in dirs + files:
            os.lchown(os.path.join(directory, name), uid, uid)


@contextlib.contextmanager
def public_bundle(image: Path) -> Iterator[Path]:
    """A bundle that other uids can reach: outside /tmp/pytest-of-root, whose mode any
    concurrently starting pytest session resets to 0700."""
    bundle = Path(tempfile.mkdtemp(prefix="asyncinit-bundle-", dir="/tmp"))
    try:
        bundle.chmod(0o711)
        shutil.copytree(image, bundle / "rootfs", symlinks=True)
        yield bundle
    finally:
        shutil.rmtree(bundle)


_SPAWN_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
import anyio
from asyncinit import PIPE, spawn

async def main() -> None:
    config = json.load(open(sys.argv[2]))
    result = {"code": None, "out": "", "err": "", "error": None, "error_type": None}
    try:
        container = await spawn(config, bundle=sys.argv[3], stdout=PIPE, stderr=PIPE)
    except Exception as exc:
        result.update(error=str(exc), error_type=type(exc).__name__)
    else:
        async with container:
            async def collect(stream, key):
                async for chunk in stream:
                    result[key] += chunk.decode()
            async with anyio.create_task_group() as tg:
                tg.start_soon(collect, container.stdout, "out")
                tg.start_soon(collect, container.stderr, "err")
            result["code"] = await container.wait()
    print(json.dumps(result))

anyio.run(main)
"""


def _interpreter_setup() -> str:
    """Shell commands making this interpreter reachable for another user, in a private
    mount namespace: a tmpfs over the first ancestor that is not world-traversable
    (pyenv under /root here), with the one subtree we need moved back under it."""
    prefix = Path(sys.prefix).resolve()
    for parent in reversed(prefix.parents):
        if parent != Path("/") and not os.stat(parent).st_mode & 0o001:
            child = prefix.relative_to(parent).parts[0]
            stash = "/tmp/.asyncinit-stash"
            return (
                f"mkdir -p {stash} && mount --bind {parent / child} {stash} && "
                f"mount -t tmpfs -o mode=755 tmpfs {parent} && mkdir {parent / child} && "
                f"mount --move {stash} {parent / child} && "
            )
    return ""


def spawn_as(uid: int, bundle: Path, config: dict[str, Any], setup: str = "") -> dict[str, Any]:
    """asyncinit.spawn() from a process running as ``uid`` (no capabilities, no groups);
    ``setup``: shell commands run as root first, in the same private mount namespace."""
    config_path = bundle / "asyncinit-config.json"
    config_path.write_text(json.dumps(config))
    script = bundle / "spawn_as.py"
    script.write_text(_SPAWN_SCRIPT)
    os.chown(config_path, uid, uid)
    os.chown(script, uid, uid)
    repo = CHECKOUT
    command = (
        setup
        + _interpreter_setup()
        + f"exec setpriv --reuid={uid} --regid={uid} --clear-groups"
        + f" {sys.executable} -I {script} {repo} {config_path} {bundle}"
    )
    result = subprocess.run(
        ["unshare", "--mount", "--propagation=private", "sh", "-c", command],
        capture_output=True,
        text=True,
        timeout=120 * TIMEOUT_SCALE,
        cwd="/",
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(bundle)},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    outcome: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return outcome


def probe_paths_script(masked: list[str], readonly: list[str]) -> str:
    """Shell that reports what the container can read of masked paths and write of
    read-only ones, writing nothing anywhere.

    A read-only path reports its mount's first option (ro/rw) and the error of a
    write attempt (``touch`` of a new name, or an append-open with no data): in a
    user namespace EACCES or ENOENT can come before EROFS, so the mount flag is
    the proof and the attempt shows what a process actually gets.  (busybox's
    ``test -w`` says yes to root whatever the mount, hence no ``-w``.)
    """
    lines = []
    for path in masked:
        lines.append(
            f"if [ -d {path} ]; then echo {path} dir $(ls -A {path} | wc -l);"
            f" elif [ -e {path} ]; then echo {path} file $(cat {path} 2>&1 | wc -c);"
            f" else echo {path} absent; fi"
        )
    for path in readonly:
        lines.append(
            f"if [ -d {path} ]; then r=$(touch {path}/.probe 2>&1);"
            f" elif [ -e {path} ]; then r=$( (: >> {path}) 2>&1); else r=absent; fi;"
            f' m=$(awk \'$5 == "{path}" {{split($6, o, ","); print o[1]}}\''
            f" /proc/self/mountinfo | tail -n 1);"
            f' echo {path} "${{m:-unmounted}}" "${{r##*: }}"'
        )
    return "\n".join(lines) + "\n"
