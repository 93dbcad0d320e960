"""The private procfs handle used for sysctls, and the sysctl key syntax."""

from __future__ import annotations

import errno
import os

import pytest

from asyncinit import _syscalls as sc
from asyncinit._fs import _procfs
from asyncinit._fs._procfs import open_private_procfs, open_proc_file
from asyncinit._rules import dotted, sysctl_components
from tests.support.containers import needs_root


def _read(procfd: int, relative: str) -> str:
    fd = open_proc_file(procfd, relative, os.O_RDONLY)
    try:
        return os.read(fd, 4096).decode()
    finally:
        os.close(fd)


@needs_root
@pytest.mark.parametrize("fresh", [True, False])
def test_private_procfs_handle(fresh: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not fresh:  # fsopen refused: a detached clone of /proc stands in

        def refuse(fstype: str) -> int:
            raise OSError(errno.EPERM, "fsopen: refused")

        monkeypatch.setattr(_procfs, "fsopen", refuse)
    procfd = open_private_procfs()
    try:
        assert sc.fstatfs_type(procfd) == sc.PROC_SUPER_MAGIC
        assert _read(procfd, "sys/kernel/ostype") == "Linux\n"
        # Strict resolution: no symlink ("self"), nothing but this procfs.
        with pytest.raises(OSError, match="openat2") as caught:
            open_proc_file(procfd, "self/status", os.O_RDONLY)
        assert caught.value.errno == errno.ELOOP
        with pytest.raises(OSError, match="openat2") as caught:
            open_proc_file(procfd, "../etc/passwd", os.O_RDONLY)
        assert caught.value.errno == errno.EXDEV
    finally:
        os.close(procfd)
    # Detached: it never shows in the mount table.
    with open("/proc/self/mountinfo") as f:
        assert all(" - proc " not in line or " /proc " in line for line in f)


@pytest.mark.parametrize(
    ("key", "components"),
    [
        ("net.ipv4.ip_forward", ["net", "ipv4", "ip_forward"]),
        ("net/ipv4/ip_forward", ["net", "ipv4", "ip_forward"]),
        ("net.ipv4.conf.eth0/100.rp_filter", ["net", "ipv4", "conf", "eth0.100", "rp_filter"]),
        ("net/ipv4/conf/eth0.100/rp_filter", ["net", "ipv4", "conf", "eth0.100", "rp_filter"]),
        ("net.ipv4/../../vm/swappiness", None),
        ("net/ipv4/../../kernel/core_pattern", None),
        ("net..ipv4", None),
        (".net", None),
        ("net/", None),
        ("", None),
    ],
)
def test_sysctl_components(key: str, components: list[str] | None) -> None:
    assert sysctl_components(key) == components
    if components is not None:
        assert dotted(key).split(".")[0] == components[0]
