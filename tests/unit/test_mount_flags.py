"""The flag arithmetic of the rootfs mount steps, against a recording fake of mount(2).

Pure logic, no root: which calls ``set_bind_flags``, ``add_readonly_flag``,
``_bind``, ``_mount_filesystem`` and ``_apply_propagation`` make, with which
flags.  The real kernel's verdict on the same cases is in test_mounts.py and
test_rootless.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asyncinit import _syscalls as sc
from asyncinit._plan import MountPlan
from asyncinit.rootfs import _mount
from asyncinit.rootfs._remount import add_readonly_flag, current_flags, set_bind_flags
from tests.support.fake_mount import TARGET, FakeMounts, MountCall, remount


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeMounts:
    return FakeMounts().install(monkeypatch)


@pytest.fixture
def directory(tmp_path: Path) -> Iterator[int]:
    """An fd of a directory of mode 0711 that a mount covers."""
    path = tmp_path / "covered"
    path.mkdir()
    path.chmod(0o711)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    yield fd
    os.close(fd)


def plan(destination: str, fstype: str, **fields: Any) -> MountPlan:
    entry: MountPlan = {
        "destination": destination,
        "type": fstype,
        "source": fstype,
        "flags": 0,
        "clear_flags": 0,
        "bind": fstype == "bind",
        "recursive": False,
        "propagation": [],
        "attr_set": 0,
        "attr_clr": 0,
        "data": "",
        "extensions": [],
        "idmap": False,
        "field": "mounts[0]",
        "premount": [],
        "postmount": [],
    }
    entry.update(fields)  # type: ignore[typeddict-item]  # MountPlan's own keys
    return entry


# --- current_flags: what a bind remount must keep ------------------------------------


def test_current_flags_name_strictatime_which_statvfs_cannot(fake: FakeMounts) -> None:
    fake.st_flags = os.ST_NOSUID | os.ST_NODEV
    assert current_flags("/x") == sc.MS_NOSUID | sc.MS_NODEV | sc.MS_STRICTATIME
    fake.st_flags = os.ST_RDONLY | os.ST_RELATIME
    assert current_flags("/x") == sc.MS_RDONLY | sc.MS_RELATIME


# --- set_bind_flags: the locked-flag retry -------------------------------------------


def test_a_bind_remount_sets_exactly_the_flags_asked(fake: FakeMounts) -> None:
    set_bind_flags("/x", sc.MS_NOSUID | sc.MS_REC, 0, display_path="/data")
    assert fake.calls == [MountCall(None, "/x", None, remount(sc.MS_NOSUID), None)]


def test_refused_for_locked_flags_it_retries_keeping_them(fake: FakeMounts) -> None:
    """In a user namespace the kernel refuses to drop flags a more privileged one set."""
    fake.st_flags = os.ST_NODEV | os.ST_NOEXEC | os.ST_SYNCHRONOUS
    fake.refuse = lambda call: not call.flags & sc.MS_NODEV
    set_bind_flags("/x", sc.MS_RDONLY, 0, display_path="/data")
    locked = sc.MS_NODEV | sc.MS_NOEXEC | sc.MS_STRICTATIME  # not MS_SYNCHRONOUS: not locked
    assert [call.flags for call in fake.calls] == [
        remount(sc.MS_RDONLY),
        remount(sc.MS_RDONLY | locked),
    ]


def test_no_retry_when_the_config_clears_a_locked_flag(fake: FakeMounts) -> None:
    """``dev`` asked for, ``nodev`` locked: the mount cannot be what the config says."""
    fake.st_flags = os.ST_NODEV
    fake.refuse = lambda call: True
    with pytest.raises(PermissionError):
        set_bind_flags("/x", 0, sc.MS_NODEV, display_path="/data")
    assert len(fake.calls) == 1


def test_no_retry_when_the_config_asks_for_another_atime_mode(fake: FakeMounts) -> None:
    fake.st_flags = os.ST_RELATIME
    fake.refuse = lambda call: True
    with pytest.raises(PermissionError):
        set_bind_flags("/x", sc.MS_NOATIME, 0, display_path="/data")
    assert len(fake.calls) == 1


def test_read_only_keeps_every_flag_the_mount_has(fake: FakeMounts) -> None:
    fake.st_flags = os.ST_NOSUID | os.ST_NOATIME
    add_readonly_flag("/x", display_path="/")
    expected = remount(sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NOATIME)
    assert fake.calls == [MountCall(None, "/x", None, expected, None)]


# --- _bind and _apply_propagation ----------------------------------------------------


def test_a_plain_bind_is_one_mount(fake: FakeMounts, directory: int) -> None:
    _mount._bind(-1, directory, plan("/data", "bind", source="/srv", recursive=True), None)
    (call,) = fake.calls
    assert (call.source, call.fstype, call.flags) == ("/srv", "bind", sc.MS_BIND | sc.MS_REC)


def test_bind_flags_take_a_remount(fake: FakeMounts, directory: int) -> None:
    """A bind ignores every flag but MS_BIND/MS_REC: ro,nosuid need a bind remount."""
    entry = plan("/data", "bind", source="/srv", flags=sc.MS_RDONLY | sc.MS_NOSUID)
    _mount._bind(-1, directory, entry, None)
    assert [(call.target, call.flags) for call in fake.calls] == [
        (f"/proc/self/fd/{directory}", sc.MS_BIND),
        (TARGET, remount(sc.MS_RDONLY | sc.MS_NOSUID)),
    ]


def test_clearing_a_flag_takes_a_remount_too(fake: FakeMounts, directory: int) -> None:
    entry = plan("/data", "bind", source="/srv", clear_flags=sc.MS_NOEXEC)
    _mount._bind(-1, directory, entry, None)
    assert [call.flags for call in fake.calls] == [sc.MS_BIND, remount(0)]


def test_propagation_is_one_call_per_flag_in_order(fake: FakeMounts) -> None:
    entry = plan("/data", "bind", propagation=[sc.MS_PRIVATE, sc.MS_SHARED | sc.MS_REC])
    _mount._apply_propagation(-1, entry)
    assert fake.calls == [
        MountCall(None, TARGET, None, sc.MS_PRIVATE, None),
        MountCall(None, TARGET, None, sc.MS_SHARED | sc.MS_REC, None),
    ]


# --- _mount_filesystem: deferred read-only, tmpfs mode= ------------------------------


def test_a_read_only_tmpfs_is_mounted_writable_first(fake: FakeMounts, directory: int) -> None:
    """finalize makes it read-only, after the steps that write into it (runc's order)."""
    entry = plan("/tmp", "tmpfs", flags=sc.MS_RDONLY | sc.MS_NOSUID, data="size=1m")
    _mount._mount_filesystem(-1, directory, entry, existed=False)
    assert fake.calls == [
        MountCall("tmpfs", f"/proc/self/fd/{directory}", "tmpfs", sc.MS_NOSUID, "size=1m")
    ]


def test_a_read_only_dev_is_mounted_writable_first(fake: FakeMounts, directory: int) -> None:
    _mount._mount_filesystem(-1, directory, plan("/dev", "devtmpfs", flags=sc.MS_RDONLY), False)
    assert fake.calls[0].flags == 0


def test_other_filesystems_are_mounted_read_only_at_once(fake: FakeMounts, directory: int) -> None:
    _mount._mount_filesystem(-1, directory, plan("/sys", "sysfs", flags=sc.MS_RDONLY), False)
    assert fake.calls[0].flags == sc.MS_RDONLY


def test_a_tmpfs_over_a_directory_takes_its_mode(fake: FakeMounts, directory: int) -> None:
    """runc: the covered directory's mode, unless the options say mode= (theirs come last)."""
    _mount._mount_filesystem(-1, directory, plan("/run", "tmpfs", data="size=1m"), existed=True)
    _mount._mount_filesystem(-1, directory, plan("/run", "tmpfs"), existed=True)
    _mount._mount_filesystem(-1, directory, plan("/run", "tmpfs", data="mode=755"), existed=True)
    _mount._mount_filesystem(-1, directory, plan("/run", "tmpfs"), existed=False)
    assert [call.data for call in fake.calls] == [
        "mode=0711,size=1m",
        "mode=0711",
        "mode=0711,mode=755",
        "",
    ]
