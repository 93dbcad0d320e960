"""What a kernel lacks, named with the release that has it (pure logic: the release is faked)."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable

import pytest

from asyncinit import _kernel


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Pretend the running kernel is another release."""

    def running(release: str) -> None:
        real = os.uname()
        fake = os.uname_result((real.sysname, real.nodename, release, real.version, real.machine))
        monkeypatch.setattr(os, "uname", lambda: fake)  # the os module _kernel calls

    return running


@pytest.mark.parametrize(
    ("release", "parsed"),
    [("6.1.0-57-amd64", (6, 1)), ("5.15.0-91-generic", (5, 15)), ("6.18", (6, 18)), ("7", (7, 0))],
)
def test_release(kernel: Callable[[str], None], release: str, parsed: tuple[int, int]) -> None:
    kernel(release)
    assert _kernel.release() == parsed


def test_a_missing_syscall_names_the_release_that_has_it(kernel: Callable[[str], None]) -> None:
    kernel("5.4.0-150-generic")
    assert _kernel.syscall_hint("openat2", errno.ENOSYS) == (
        "openat2 needs Linux 5.6 (this kernel is 5.4.0-150-generic)"
    )
    assert _kernel.syscall_hint("mount_setattr", errno.ENOSYS) == (
        "mount_setattr needs Linux 5.12 (this kernel is 5.4.0-150-generic)"
    )
    kernel("5.10.0-28-amd64")
    assert _kernel.syscall_hint("close_range", errno.EINVAL) == (
        "close_range(CLOSE_RANGE_CLOEXEC) needs Linux 5.11 (this kernel is 5.10.0-28-amd64)"
    )


def test_a_syscall_the_kernel_has_is_not_blamed_on_its_age(kernel: Callable[[str], None]) -> None:
    kernel("6.1.0-57-amd64")
    assert "seccomp" in str(_kernel.syscall_hint("openat2", errno.ENOSYS))
    assert _kernel.syscall_hint("close_range", errno.EINVAL) is None  # a real EINVAL
    assert _kernel.syscall_hint("mount", errno.ENOSYS) is None  # not in the table


def test_idmapped_mounts_per_filesystem(kernel: Callable[[str], None]) -> None:
    kernel("6.1.0-57-amd64")
    assert _kernel.idmap_hint(["ext4", "tmpfs"]) == (
        "an idmapped mount of tmpfs needs Linux 6.3 (this kernel is 6.1.0-57-amd64)"
    )
    assert str(_kernel.idmap_hint(["9p", "tmpfs"])).startswith("an idmapped mount of tmpfs")
    assert _kernel.idmap_hint(["9p"]) == (
        "9p may not support idmapped mounts (this kernel is 6.1.0-57-amd64)"
    )
    assert _kernel.idmap_hint(["ext4", "btrfs"]) is None  # refused for some other reason
    kernel("6.3.0")
    assert _kernel.idmap_hint(["tmpfs"]) is None
