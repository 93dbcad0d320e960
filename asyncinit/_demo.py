"""A tiny root filesystem built on the fly, for ``asyncinit demo`` and the tests.

With Debian's busybox-static installed, the rootfs is one static binary and its
applet symlinks (~2 MB, nothing borrowed from the host).  Without it, the host's
``/usr`` is bind-mounted read-only into an otherwise empty rootfs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

BUSYBOX = "/bin/busybox"


def busybox_is_static(path: str = BUSYBOX) -> bool:
    try:
        with open(path, "rb") as f:
            elf = f.read(1 << 16)
    except OSError:
        return False
    return elf.startswith(b"\x7fELF") and b"/ld-linux" not in elf and b"ld.so" not in elf


def build_busybox_rootfs(rootfs: Path, busybox: str = BUSYBOX) -> None:
    """Copy a static busybox into ``rootfs/bin`` with one symlink per applet."""
    bin_dir = rootfs / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, bin_dir / "busybox")
    applets = subprocess.run([busybox, "--list"], check=True, capture_output=True, text=True)
    for applet in applets.stdout.split():
        if applet != "busybox" and not (bin_dir / applet).exists():
            (bin_dir / applet).symlink_to("busybox")
    for name in ("proc", "sys", "dev", "tmp", "etc", "root"):
        (rootfs / name).mkdir(exist_ok=True)
    (rootfs / "usr").mkdir(exist_ok=True)
    for link, target in ((rootfs / "sbin", "bin"), (rootfs / "usr" / "bin", "../bin")):
        if not link.is_symlink() and not link.exists():
            link.symlink_to(target)
    (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (rootfs / "etc" / "group").write_text("root:x:0:\n")


def build_host_usr_rootfs(rootfs: Path) -> list[dict[str, Any]]:
    """An empty rootfs that borrows the host's /usr read-only; returns the mounts to add."""
    for name in ("usr", "proc", "sys", "dev", "tmp", "etc"):
        (rootfs / name).mkdir(parents=True, exist_ok=True)
    for name in ("bin", "sbin", "lib", "lib64"):
        if os.path.islink(f"/{name}") or os.path.isdir(f"/usr/{name}"):
            (rootfs / name).symlink_to(f"usr/{name}")
    return [
        {
            "destination": "/usr",
            "type": "bind",
            "source": "/usr",
            "options": ["rbind", "ro", "nosuid", "nodev"],
        }
    ]


def build_demo_rootfs(rootfs: Path) -> list[dict[str, Any]]:
    """The best tiny rootfs this machine allows; returns extra mounts it needs."""
    if busybox_is_static():
        build_busybox_rootfs(rootfs)
        return []
    return build_host_usr_rootfs(rootfs)
