"""The guest of tests/vm/run is the host it stands for, so that its results mean something.

CI runs the files of tests/vm/guest-tests there to test Debian 12's kernel with
pure cgroup v2 and a tmpfs /tmp. Were the guest something else (the host's kernel,
a hybrid hierarchy), or were the container tests all skipped (not root, no static
busybox), that phase would pass while testing nothing: this test fails instead.
"""

from __future__ import annotations

import os
import shutil

import pytest

from asyncinit._demo import busybox_is_static
from tests.support.host import cgroup2_mount, cgroup_layout, mount_of

pytestmark = pytest.mark.skipif(
    os.environ.get("RUN_IN_VM") != "1", reason="describes the guest of tests/vm/run only"
)


def test_the_guest_is_debian_12_with_pure_cgroup_v2_and_a_tmpfs_tmp() -> None:
    assert os.uname().release.startswith("6.1."), os.uname().release
    assert cgroup_layout() == "v2"
    hierarchy = cgroup2_mount()
    assert hierarchy is not None
    assert {"nsdelegate", "memory_recursiveprot"} <= set(hierarchy[1].split(","))
    assert mount_of("/tmp").fstype == "tmpfs"
    with open("/sys/module/apparmor/parameters/enabled") as f:
        assert f.read().strip() == "Y"


def test_the_container_tests_can_run() -> None:
    assert os.geteuid() == 0
    assert busybox_is_static()
    assert shutil.which("runc") is not None  # the differential tests' reference
