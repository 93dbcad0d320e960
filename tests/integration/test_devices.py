"""Integration: linux.devices, /dev setup, masked and read-only paths, sysctls."""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from asyncinit import DEVNULL, ConfigError, InitError, spawn
from asyncinit import _syscalls as sc
from tests.support.containers import MakeConfig, needs_root, read_all, run
from tests.support.hostile import make_sentinel, snapshot

pytestmark = [
    pytest.mark.integration,
    pytest.mark.anyio,
    needs_root,
    # One caller loop: devices are the init's work, test_container.py covers both loops.
    pytest.mark.caller_loop("asyncio"),
]

STAT = "stat -c '%n %F %t:%T %a %u %g'"


async def test_config_devices_of_every_type(make_config: MakeConfig) -> None:
    config = make_config(
        "sh", "-c", f"{STAT} /dev/fuse /dev/loop7 /dev/myfifo /dev/unbuffered /dev/null /dev/zero"
    )
    config["linux"]["devices"] = [
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o620, "uid": 7},
        {"path": "/dev/loop7", "type": "b", "major": 7, "minor": 7, "fileMode": 0o600, "gid": 6},
        {"path": "/dev/myfifo", "type": "p", "fileMode": 0o640, "uid": 1000, "gid": 1000},
        {"path": "/dev/unbuffered", "type": "u", "major": 1, "minor": 3, "fileMode": 0o644},
        # A config device replaces the default of the same path.
        {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600, "uid": 5},
    ]
    code, out, err = await run(config)
    assert code == 0, err
    assert out.splitlines() == [
        "/dev/fuse character special file a:e5 620 7 0",
        "/dev/loop7 block special file 7:7 600 0 6",
        "/dev/myfifo fifo 0:0 640 1000 1000",
        "/dev/unbuffered character special file 1:3 644 0 0",
        "/dev/null character special file 1:3 600 5 0",
        "/dev/zero character special file 1:5 666 0 0",
    ]


@pytest.fixture
def nodev_bundle(tmp_path: Path, busybox_image: Path) -> Iterator[Path]:
    """A bundle on a tmpfs mounted nosuid,nodev, as systemd mounts a tmpfs /tmp."""
    path = tmp_path / "nodev"
    path.mkdir()
    sc.mount("tmpfs", str(path), "tmpfs", sc.MS_NOSUID | sc.MS_NODEV, "mode=755")
    try:
        shutil.copytree(busybox_image, path / "rootfs", symlinks=True)
        yield path
    finally:
        sc.umount2(str(path), sc.MNT_DETACH)


async def test_devices_on_a_nodev_rootfs_can_be_opened(
    make_config: MakeConfig, nodev_bundle: Path
) -> None:
    """No tmpfs on /dev and the rootfs on a nodev mount: a node made there refuses every
    open (EACCES, the stdio reopen first); each one is bound onto itself without nodev."""
    rootfs = nodev_bundle / "rootfs"
    script = (
        f"{STAT} /dev/null /dev/tty; echo x > /dev/null && echo ok; "
        "awk '$2 ~ \"^/dev/(null|zero|full|random|urandom|tty|fifo)$\"' /proc/mounts | wc -l"
    )
    config = make_config("sh", "-c", script)
    config["root"]["path"] = str(rootfs)
    config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/dev"]
    config["linux"]["devices"] = [{"path": "/dev/fifo", "type": "p"}]  # not a device: no bind
    code, out, err = await run(config, stdin=DEVNULL)  # on the host's /dev/null: reopened
    assert code == 0, err
    assert out.splitlines() == [
        "/dev/null character special file 1:3 666 0 0",
        "/dev/tty character special file 5:0 666 0 0",
        "ok",
        "6",  # null, zero, full, random, urandom, tty
    ]


async def test_image_entries_are_replaced_not_trusted(
    make_config: MakeConfig, bundle: Path
) -> None:
    """Without a tmpfs on /dev the image's nodes are there: each one is recreated."""
    dev = bundle / "rootfs" / "dev"
    (dev / "null").write_text("a regular file\n")
    (dev / "zero").symlink_to("/etc/passwd")
    os.mknod(dev / "full", stat.S_IFCHR | 0o666, os.makedev(1, 3))  # the wrong device
    os.mkfifo(dev / "tty")
    (dev / "ptmx").mkdir()
    config = make_config(
        "sh", "-c", f"{STAT} /dev/null /dev/zero /dev/full /dev/tty; ls -l /dev/ptmx"
    )
    config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/dev"]
    code, out, err = await run(config)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[:4] == [
        "/dev/null character special file 1:3 666 0 0",
        "/dev/zero character special file 1:5 666 0 0",
        "/dev/full character special file 1:7 666 0 0",
        "/dev/tty character special file 5:0 666 0 0",
    ]
    assert lines[4].endswith("/dev/ptmx -> pts/ptmx")
    assert (bundle / "rootfs" / "etc" / "passwd").read_text().startswith("root:")


async def test_a_directory_in_the_way_of_a_device_is_an_error(
    make_config: MakeConfig, bundle: Path
) -> None:
    (bundle / "rootfs" / "dev" / "zero").mkdir()
    config = make_config("true")
    config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/dev"]
    with pytest.raises(InitError) as caught:
        await run(config)
    assert caught.value.errno == errno.EISDIR
    assert caught.value.field == "linux.devices"
    assert caught.value.path == "/dev/zero"


async def test_ptmx_in_linux_devices_stays_a_symlink(make_config: MakeConfig) -> None:
    config = make_config("readlink", "/dev/ptmx")
    config["linux"]["devices"] = [{"path": "/dev/ptmx", "type": "c", "major": 5, "minor": 2}]
    code, out, _ = await run(config)
    assert (code, out.strip()) == (0, "pts/ptmx")


async def test_dev_core_only_where_proc_kcore_exists(make_config: MakeConfig) -> None:
    code, out, _ = await run(make_config("sh", "-c", "readlink /dev/core || echo none"))
    assert code == 0
    assert out.strip() == ("/proc/kcore" if os.path.exists("/proc/kcore") else "none")


async def test_dev_bind_mount_skips_device_setup(
    make_config: MakeConfig, tmp_path_factory: pytest.TempPathFactory
) -> None:
    host_dev = make_sentinel(tmp_path_factory.mktemp("host") / "dev")
    before = snapshot(host_dev)
    config = make_config("ls", "/dev")
    config["mounts"] = [m for m in config["mounts"] if not m["destination"].startswith("/dev")]
    config["mounts"].append(
        {"destination": "/dev", "type": "bind", "source": str(host_dev), "options": ["rbind"]}
    )
    # Its "null" is a regular file: masking files with it is refused (CVE-2025-31133).
    with pytest.raises(InitError, match="not the 1:3 character device"):
        await run(config)
    config["linux"]["maskedPaths"] = []
    code, out, err = await run(config)
    assert code == 0, err
    assert sorted(out.split()) == ["keep", "null", "ptmx", "sub"]  # nothing added, as runc
    assert snapshot(host_dev) == before


async def test_stdio_on_dev_null_moves_to_the_containers_node(make_config: MakeConfig) -> None:
    script = "stat -L -c %d /proc/self/fd/0; stat -c %d /dev/null; stat -c %d /dev"
    container = await spawn(make_config("sh", "-c", script), stdin=DEVNULL, stdout=-1)
    async with container:
        out = await read_all(container.stdout)
        assert await container.wait() == 0
    stdin_dev, null_dev, dev_dev = out.split()
    assert stdin_dev == null_dev == dev_dev  # the container's tmpfs /dev, not the host's


async def test_masks_share_one_tmpfs_and_hide_files(make_config: MakeConfig) -> None:
    script = (
        "grep -E ' /(proc/acpi|sys/firmware) ' /proc/self/mountinfo | cut -d' ' -f3,6;"
        " touch /proc/acpi/x 2>&1; cat /proc/keys /proc/timer_list | wc -c"
    )
    config = make_config("sh", "-c", script)
    config["linux"]["maskedPaths"].append("/proc/acpi")  # a duplicate is masked once
    code, out, err = await run(config)
    assert code == 0, err
    lines = out.splitlines()
    (acpi_dev, acpi_opts), (fw_dev, fw_opts) = (line.split() for line in lines[:2])
    assert acpi_dev == fw_dev  # one tmpfs superblock for every directory mask (runc #5275)
    assert acpi_opts.startswith("ro,")
    assert fw_opts.startswith("ro,")
    assert "Read-only file system" in lines[2]
    assert lines[3] == "0"


async def test_a_mask_error_other_than_enoent_stops_the_container(
    make_config: MakeConfig,
) -> None:
    config = make_config("true")
    config["linux"]["maskedPaths"] += ["/proc/no-such-file", "/etc/passwd/below-a-file"]
    with pytest.raises(InitError) as caught:
        await run(config)
    assert caught.value.errno == errno.ENOTDIR
    assert caught.value.field == "linux.maskedPaths"


async def test_readonly_path_keeps_nosuid_nodev_noexec(make_config: MakeConfig) -> None:
    config = make_config("sh", "-c", "grep ' /dev/shm ' /proc/self/mountinfo | cut -d' ' -f6")
    config["linux"]["readonlyPaths"].append("/dev/shm")
    code, out, _ = await run(config)
    assert code == 0
    options = out.split()[-1].split(",")
    assert options[0] == "ro"
    assert {"nosuid", "nodev", "noexec"} <= set(options)


async def test_namespaced_sysctls_are_applied(make_config: MakeConfig) -> None:
    host = {
        key: Path("/proc/sys", key.replace(".", "/")).read_text()
        for key in ("net.ipv4.ip_forward", "kernel.shmmni")
    }
    config = make_config(
        "cat",
        "/proc/sys/net/ipv4/ip_forward",
        "/proc/sys/net/ipv4/conf/lo/forwarding",
        "/proc/sys/kernel/shmmni",
        "/proc/sys/kernel/domainname",
    )
    config["linux"]["sysctl"] = {
        "net.ipv4.ip_forward": "1",
        "net/ipv4/conf/lo/forwarding": "1",
        "kernel.shmmni": "1234",
        "kernel.domainname": "example.org",
    }
    code, out, err = await run(config)
    assert code == 0, err
    assert out.split() == ["1", "1", "1234", "example.org"]
    for key, value in host.items():
        assert Path("/proc/sys", key.replace(".", "/")).read_text() == value


async def test_unknown_sysctl_is_an_error_naming_it(make_config: MakeConfig) -> None:
    config = make_config("true")
    config["linux"]["sysctl"] = {"net.ipv4.no_such_knob": "1"}
    with pytest.raises(InitError) as caught:
        await run(config)
    assert caught.value.errno == errno.ENOENT
    assert caught.value.field == "linux.sysctl"
    assert caught.value.path == "/proc/sys/net/ipv4/no_such_knob"


async def test_names_and_paths_are_validated_before_the_first_mount(
    make_config: MakeConfig, bundle: Path
) -> None:
    config = make_config("true")
    config["linux"]["namespaces"] = [{"type": "pid"}]
    config["mounts"] = []
    config["hostname"] = "box"
    config["linux"]["maskedPaths"].append("relative/path")
    before = sorted(p.name for p in (bundle / "rootfs").iterdir())
    with pytest.raises(ConfigError) as caught:
        await spawn(config)
    errors = "\n".join(caught.value.errors)
    assert "hostname: requires a uts namespace" in errors
    assert "linux.maskedPaths: requires a mount namespace" in errors
    assert 'must be an absolute path, got "relative/path"' in errors
    assert sorted(p.name for p in (bundle / "rootfs").iterdir()) == before
    shutil.rmtree(bundle / "rootfs" / "dev")  # nothing was created inside either
