"""Tests for parse_mount_options (runc's specconv.parseMountOptions semantics)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asyncinit.config import KNOWN_MOUNT_OPTIONS, MountOptions, parse_mount_options
from asyncinit.config._mount_options import (
    MOUNT_ATTR__ATIME,
    MOUNT_ATTR_NOATIME,
    MOUNT_ATTR_NODEV,
    MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_RDONLY,
    MOUNT_ATTR_RELATIME,
    MOUNT_ATTR_STRICTATIME,
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_RELATIME,
    MS_SHARED,
    MS_SLAVE,
    MS_STRICTATIME,
    MS_UNBINDABLE,
)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ([], MountOptions()),
        (["ro"], MountOptions(flags=MS_RDONLY)),
        (["rw"], MountOptions(clear_flags=MS_RDONLY)),
        (["ro", "rw"], MountOptions(clear_flags=MS_RDONLY)),
        (["rw", "ro"], MountOptions(flags=MS_RDONLY)),
        (["nosuid"], MountOptions(flags=MS_NOSUID)),
        (["suid"], MountOptions(clear_flags=MS_NOSUID)),
        (["bind"], MountOptions(flags=MS_BIND)),
        (["rbind"], MountOptions(flags=MS_BIND | MS_REC)),
        (["rprivate"], MountOptions(propagation=(MS_PRIVATE | MS_REC,))),
        (
            ["shared", "rslave", "runbindable"],
            MountOptions(propagation=(MS_SHARED, MS_SLAVE | MS_REC, MS_UNBINDABLE | MS_REC)),
        ),
        (["rro"], MountOptions(attr_set=MOUNT_ATTR_RDONLY)),
        (["rro", "rrw"], MountOptions(attr_clr=MOUNT_ATTR_RDONLY)),
        (
            ["rnosuid", "rdev"],
            MountOptions(attr_set=MOUNT_ATTR_NOSUID, attr_clr=MOUNT_ATTR_NODEV),
        ),
        (["ratime"], MountOptions(attr_set=MOUNT_ATTR_RELATIME, attr_clr=MOUNT_ATTR__ATIME)),
        (["rnoatime"], MountOptions(attr_set=MOUNT_ATTR_NOATIME, attr_clr=MOUNT_ATTR__ATIME)),
        (
            ["rnoatime", "rstrictatime"],
            MountOptions(attr_set=MOUNT_ATTR_STRICTATIME, attr_clr=MOUNT_ATTR__ATIME),
        ),
        (["rnoatime", "rrelatime"], MountOptions(attr_clr=MOUNT_ATTR__ATIME)),
        (
            ["nosuid", "strictatime", "mode=755", "size=65536k"],
            MountOptions(flags=MS_NOSUID | MS_STRICTATIME, data="mode=755,size=65536k"),
        ),
        (
            ["nosuid", "noexec", "nodev", "relatime", "ro"],
            MountOptions(flags=MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RELATIME | MS_RDONLY),
        ),
        (["tmpcopyup"], MountOptions(extensions=frozenset({"tmpcopyup"}))),
        (["rbind", "idmap"], MountOptions(flags=MS_BIND | MS_REC, extensions=frozenset({"idmap"}))),
        (["defaults"], MountOptions()),
        (["acl", "", "x=1,y=2"], MountOptions(data="acl,,x=1,y=2")),
    ],
)
def test_parse_mount_options(options: list[str], expected: MountOptions) -> None:
    assert parse_mount_options(options) == expected


def test_bind_properties() -> None:
    assert parse_mount_options(["bind"]).is_bind
    assert not parse_mount_options(["bind"]).is_recursive_bind
    assert parse_mount_options(["rbind"]).is_recursive_bind
    assert not parse_mount_options(["ro", "rec"]).is_bind
    assert parse_mount_options(["rro"]).has_rec_attrs
    assert not parse_mount_options(["ro"]).has_rec_attrs


_options = st.lists(
    st.one_of(st.sampled_from(sorted(KNOWN_MOUNT_OPTIONS)), st.text(max_size=12)), max_size=12
)


@given(_options)
def test_data_is_exactly_the_unknown_options_in_order(options: list[str]) -> None:
    parsed = parse_mount_options(options)
    assert parsed.data == ",".join(o for o in options if o not in KNOWN_MOUNT_OPTIONS)
    assert parsed.flags & parsed.clear_flags == 0
    assert parsed.attr_set & parsed.attr_clr & ~MOUNT_ATTR__ATIME == 0
    assert parsed.extensions <= {"tmpcopyup", "idmap", "ridmap"}
    assert len(parsed.propagation) == sum(
        o
        in {
            "private",
            "rprivate",
            "slave",
            "rslave",
            "shared",
            "rshared",
            "unbindable",
            "runbindable",
        }
        for o in options
    )


@given(st.lists(st.sampled_from(sorted(KNOWN_MOUNT_OPTIONS)), max_size=8), st.data())
def test_last_flag_wins(options: list[str], data: st.DataObject) -> None:
    last = data.draw(st.sampled_from(["ro", "rw"]))
    parsed = parse_mount_options([*options, last])
    assert bool(parsed.flags & MS_RDONLY) == (last == "ro")
    assert bool(parsed.clear_flags & MS_RDONLY) == (last == "rw")
