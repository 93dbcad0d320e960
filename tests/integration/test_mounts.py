"""Integration: every mount type and option, checked from inside the container."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from asyncinit import DEVNULL, InitError
from asyncinit import _syscalls as sc
from asyncinit.parent._mount_sources import MountSource, build_mount, open_userns
from tests.support import CHECKOUT
from tests.support.configs import bind, tmpfs
from tests.support.containers import MakeConfig, needs_root, run
from tests.support.host import cgroup2_mount, cgroup_layout, traversable_by_everyone

pytestmark = [
    pytest.mark.integration,
    pytest.mark.anyio,
    needs_root,
    # One caller loop: mounts are the init's work, test_container.py covers both loops.
    pytest.mark.caller_loop("asyncio"),
]


EROFS = "Read-only file system"


class MountEntry(NamedTuple):
    root: str
    options: set[str]
    optional: list[str]
    fstype: str
    source: str
    super_options: set[str]


def mount_table(text: str) -> dict[str, MountEntry]:
    """Mount point -> its mountinfo fields (the last mount on a point wins)."""
    table = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 10 or "-" not in fields:
            continue
        sep = fields.index("-")
        table[fields[4]] = MountEntry(
            fields[3],
            set(fields[5].split(",")),
            fields[6:sep],
            fields[sep + 1],
            fields[sep + 2],
            set(fields[sep + 3].split(",")),
        )
    return table


#: Shell that prints a file's identity as :func:`identity` does on the host: compared
#: instead of mountinfo's root field, which is relative to the filesystem the path is
#: on (``/pytest-of-root/...`` where /tmp is a mount of its own).
IDENTITY = "stat -c 'file %d %i'"


def identity(path: Path) -> str:
    info = os.stat(path)
    return f"file {info.st_dev} {info.st_ino}"


@pytest.fixture
def tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A host directory with a file and a tmpfs submount (unmounted afterwards)."""
    source = tmp_path_factory.mktemp("tree")
    (source / "top.txt").write_text("top\n")
    os.chmod(source / "top.txt", 0o666)
    os.chmod(source, 0o755)  # idmapped, its owner (root) shows as nobody
    (source / "sub").mkdir()
    sc.mount("tmpfs", str(source / "sub"), "tmpfs", 0, "size=1m")
    try:
        (source / "sub" / "inner.txt").write_text("inner\n")
        os.chown(source / "sub" / "inner.txt", 1000, 1000)
        os.chown(source / "top.txt", 1000, 1000)
        yield source
    finally:
        sc.umount2(str(source / "sub"), sc.MNT_DETACH)


async def test_ro_bind_is_not_recursive_but_rro_is(make_config: MakeConfig, tree: Path) -> None:
    script = (
        "cat /proc/self/mountinfo; "
        "for f in /plain/new /plain/sub/new /rec/new /rec/sub/new; do"
        " (echo x > $f) 2>/dev/null && echo $f=written || echo $f=refused; done"
    )
    config = make_config("sh", "-c", script)
    config["mounts"] += [bind("/plain", tree, "rbind", "ro"), bind("/rec", tree, "rbind", "rro")]
    code, out, err = await run(config)
    assert code == 0, err
    results = dict(line.split("=") for line in out.splitlines() if "=" in line and " " not in line)
    assert results == {
        "/plain/new": "refused",
        "/plain/sub/new": "written",  # plain "ro" leaves the submount writable
        "/rec/new": "refused",
        "/rec/sub/new": "refused",  # rro reaches it
    }
    table = mount_table(out)
    assert "ro" in table["/plain"].options
    assert "rw" in table["/plain/sub"].options
    assert "ro" in table["/rec/sub"].options
    assert not (tree / "new").exists()


async def test_recursive_attributes_reach_submounts(make_config: MakeConfig, tree: Path) -> None:
    config = make_config("cat", "/proc/self/mountinfo")
    options = ["rbind", "rnosuid", "rnodev", "rnoexec", "rnoatime", "rnosymfollow", "rro", "rrw"]
    config["mounts"] += [bind("/t", tree, *options)]
    config["mounts"] += [bind("/s", tree, "rbind", "rstrictatime", "rnodiratime")]
    code, out, err = await run(config)
    assert code == 0, err
    table = mount_table(out)
    for point in ("/t", "/t/sub"):
        assert {"rw", "nosuid", "nodev", "noexec", "noatime", "nosymfollow"} <= table[point].options
    for point in ("/s", "/s/sub"):
        assert "nodiratime" in table[point].options
        assert not {"relatime", "noatime"} & table[point].options  # strictatime shows as neither


async def test_bind_flags_on_a_file_and_a_created_target(
    make_config: MakeConfig, tree: Path, bundle: Path
) -> None:
    script = (
        "cat /proc/self/mountinfo; cat /etc/new/top.txt; (echo x >> /etc/new/top.txt) 2>&1; "
        f"{IDENTITY} /etc/new/top.txt"
    )
    config = make_config("sh", "-c", script)
    config["mounts"] += [
        bind("/etc/new/top.txt", tree / "top.txt", "bind", "ro", "nosuid", "noexec")
    ]
    code, out, err = await run(config)
    assert code == 0, err
    entry = mount_table(out)["/etc/new/top.txt"]
    assert {"ro", "nosuid", "noexec"} <= entry.options
    assert identity(tree / "top.txt") in out.splitlines()  # the file itself is the mount's root
    assert "top" in out
    assert EROFS in out
    assert (bundle / "rootfs" / "etc" / "new" / "top.txt").is_file()  # a file, not a dir


async def test_bind_data_and_cleared_flags(make_config: MakeConfig, tree: Path) -> None:
    """Cleared flags trigger the remount too (runc >= 1.1.10): "dev,suid" undo the defaults."""
    config = make_config("cat", "/proc/self/mountinfo")
    config["mounts"] += [bind("/t", tree, "bind", "nosuid", "suid", "exec")]
    code, out, err = await run(config)
    assert code == 0, err
    assert not {"nosuid", "noexec"} & mount_table(out)["/t"].options


async def test_propagation_flags(make_config: MakeConfig, bundle: Path, tree: Path) -> None:
    config = make_config("cat", "/proc/self/mountinfo")
    (bundle / "rootfs" / "a").mkdir()
    config["mounts"] += [
        tmpfs("/a", "shared"),
        bind("/b", bundle / "rootfs" / "a", "bind", "slave"),
        tmpfs("/c", "unbindable"),
        tmpfs("/d", "private"),
        bind("/e", tree, "rbind", "rshared"),
        bind("/f", tree, "rbind", "runbindable"),
    ]
    code, out, err = await run(config)
    assert code == 0, err
    table = mount_table(out)
    kinds = {point: [f.split(":")[0] for f in table[point].optional] for point in table}
    assert kinds["/a"] == ["shared"]
    assert kinds["/b"] == ["master"]
    assert table["/b"].optional[0].split(":")[1] == table["/a"].optional[0].split(":")[1]
    assert kinds["/c"] == ["unbindable"]
    assert kinds["/d"] == []
    assert kinds["/e"] == kinds["/e/sub"] == ["shared"]
    assert kinds["/f"] == kinds["/f/sub"] == ["unbindable"]


async def test_tmpfs_mode_follows_the_directory(make_config: MakeConfig, bundle: Path) -> None:
    rootfs = bundle / "rootfs"
    (rootfs / "m").mkdir()
    os.chmod(rootfs / "m", 0o2710)
    (rootfs / "n").mkdir()
    os.chmod(rootfs / "n", 0o700)
    config = make_config("sh", "-c", "cat /proc/self/mountinfo; stat -c '%n %a' /m /n /new")
    config["mounts"] += [tmpfs("/m", "size=1m"), tmpfs("/n", "mode=1777"), tmpfs("/new")]
    code, out, err = await run(config)
    assert code == 0, err
    modes = dict(line.split() for line in out.splitlines() if line.startswith("/") and " " in line)
    assert modes == {"/m": "2710", "/n": "1777", "/new": "1777"}  # a new directory: tmpfs's own
    assert "mode=2710" in mount_table(out)["/m"].super_options


async def test_tmpcopyup_copies_the_covered_directory(
    make_config: MakeConfig, bundle: Path
) -> None:
    image = bundle / "rootfs" / "var" / "lib" / "app"
    (image / "dir").mkdir(parents=True)
    (image / "dir" / "data").write_bytes(b"\0payload" * 1000)
    os.chown(image / "dir" / "data", 123, 456)
    os.chmod(image / "dir" / "data", 0o4754)
    os.chmod(image / "dir", 0o701)
    (image / "link").symlink_to("dir/data")
    os.mkfifo(image / "fifo", 0o640)
    os.chmod(image, 0o751)
    script = (
        "cat /proc/self/mountinfo; cd /var/lib/app; "
        "stat -c '%n %a %u %g %F' . dir dir/data fifo; readlink link; "
        "wc -c < dir/data; tail -c 7 dir/data; echo; "
        "echo new > created && echo created"
    )
    config = make_config("sh", "-c", script)
    config["mounts"] += [tmpfs("/var/lib/app", "tmpcopyup", "size=1m")]
    code, out, err = await run(config)
    assert code == 0, err
    assert mount_table(out)["/var/lib/app"].fstype == "tmpfs"
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(". "))
    assert lines[start : start + 4] == [
        ". 751 0 0 directory",
        "dir 701 0 0 directory",
        "dir/data 4754 123 456 regular file",
        "fifo 640 0 0 fifo",
    ]
    assert lines[start + 4] == "dir/data"
    assert lines[start + 5 : start + 7] == ["8000", "payload"]
    assert "created" in lines
    assert not (image / "created").exists()  # the copy, not the image, was written


async def test_readonly_tmpfs_and_dev_are_made_readonly_after_setup(
    make_config: MakeConfig,
) -> None:
    script = (
        "cat /proc/self/mountinfo; stat -c %a /ro; test -c /dev/null && echo null-ok; "
        "(touch /ro/x) 2>&1; (touch /dev/x) 2>&1; echo x > /dev/null && echo null-writable"
    )
    config = make_config("sh", "-c", script)
    dev = next(m for m in config["mounts"] if m["destination"] == "/dev")
    dev["options"].append("ro")
    config["mounts"] += [tmpfs("/ro", "ro", "mode=555")]
    code, out, err = await run(config)
    assert code == 0, err
    table = mount_table(out)
    assert "ro" in table["/ro"].options
    assert "ro" in table["/dev"].options
    assert "strictatime" not in table["/dev"].options  # kept: neither relatime nor noatime
    assert "relatime" not in table["/dev"].options
    assert out.count(EROFS) == 2
    assert "555" in out.split()
    assert "null-ok" in out
    assert "null-writable" in out


async def test_sysfs_devpts_mqueue(make_config: MakeConfig) -> None:
    script = "cat /proc/self/mountinfo; (echo 1 > /sys/kernel/profiling) 2>&1; ls /dev/mqueue"
    code, out, err = await run(make_config("sh", "-c", script))
    assert code == 0, err
    table = mount_table(out)
    assert table["/sys"].fstype == "sysfs"
    assert "ro" in table["/sys"].options
    assert EROFS in out
    assert {"ptmxmode=666", "mode=620", "gid=5"} <= table["/dev/pts"].super_options
    assert table["/dev/mqueue"].fstype == "mqueue"


async def test_cgroup_mount_in_a_cgroup_namespace(make_config: MakeConfig) -> None:
    """Fresh mounts showing the namespace's root: each v1 hierarchy (v1, hybrid) or cgroup2."""
    layout = cgroup_layout()
    if layout == "none":
        pytest.skip("the host mounts no cgroup hierarchy")
    config = make_config("sh", "-c", "cat /proc/self/mountinfo; ls /sys/fs/cgroup")
    if {"type": "cgroup"} not in config["linux"]["namespaces"]:  # runc's spec has one on v2
        config["linux"]["namespaces"].append({"type": "cgroup"})
    code, out, err = await run(config)
    assert code == 0, err
    table = mount_table(out)
    hierarchies = {p: e for p, e in table.items() if p.startswith("/sys/fs/cgroup/")}
    if layout == "v2":
        assert not hierarchies
        hierarchies = {"/sys/fs/cgroup": table["/sys/fs/cgroup"]}
    assert hierarchies
    for entry in hierarchies.values():
        assert entry.fstype == ("cgroup2" if layout == "v2" else "cgroup")
        assert entry.root == "/"  # the namespace's root, not the host's path
        assert {"ro", "nosuid", "nodev", "noexec"} <= entry.options
    assert "ro" in table["/sys/fs/cgroup"].options


async def test_generic_filesystem_overlay(
    make_config: MakeConfig, tmp_path_factory: pytest.TempPathFactory
) -> None:
    base = tmp_path_factory.mktemp("overlay")
    for name in ("lower", "upper", "work"):
        (base / name).mkdir()
    (base / "lower" / "l.txt").write_text("lower\n")
    config = make_config("sh", "-c", "cat /proc/self/mountinfo; cat /ov/l.txt; echo u > /ov/u")
    config["mounts"].append(
        {
            "destination": "/ov",
            "type": "overlay",
            "source": "overlay",
            "options": [
                f"lowerdir={base / 'lower'}",
                f"upperdir={base / 'upper'}",
                f"workdir={base / 'work'}",
                "nodev",
            ],
        }
    )
    code, out, err = await run(config)
    assert code == 0, err
    assert mount_table(out)["/ov"].fstype == "overlay"
    assert "lower" in out
    assert (base / "upper" / "u").read_text() == "u\n"


def skip_unless_idmappable(path: Path, *, recursive: bool) -> None:
    """Skip with the product's reason where this kernel cannot idmap the filesystems
    under ``path`` (tmpfs: Linux 6.3; these tests' sources live in the temp dir)."""
    userns = open_userns("0 100000 65536", "0 100000 65536")
    try:
        os.close(build_mount(MountSource("probe", str(path), recursive, recursive), userns))
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        pytest.skip(f"{path}: {exc.strerror}")
    finally:
        os.close(userns)


@pytest.fixture
def ramfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("ramfs")
    sc.mount("ramfs", str(path), "ramfs", 0, "mode=755")
    try:
        yield path
    finally:
        sc.umount2(str(path), sc.MNT_DETACH)


async def test_idmap_refused_by_the_filesystem_says_which_and_the_kernel(
    make_config: MakeConfig, ramfs: Path
) -> None:
    """ramfs has no idmapped mounts (tmpfs only from Linux 6.3): not a bare EINVAL."""
    config = make_config()
    mapping = [{"containerID": 0, "hostID": 100000, "size": 10}]
    config["mounts"].append(bind("/r", ramfs, "bind", uidMappings=mapping, gidMappings=mapping))
    with pytest.raises(InitError) as caught:
        await run(config)
    assert caught.value.errno == errno.EINVAL
    assert caught.value.field == f"mounts[{len(config['mounts']) - 1}]"
    assert caught.value.path == str(ramfs)
    release = os.uname().release
    assert f"ramfs may not support idmapped mounts (this kernel is {release})" in str(caught.value)


async def test_idmapped_binds_show_mapped_owners(make_config: MakeConfig, tree: Path) -> None:
    skip_unless_idmappable(tree, recursive=True)
    mapping = [{"containerID": 1000, "hostID": 2000, "size": 10}]
    gid_mapping = [{"containerID": 1000, "hostID": 3000, "size": 10}]
    script = (
        "cat /proc/self/mountinfo; stat -c '%n %u %g' /i/top.txt /i/sub/inner.txt /r/sub/inner.txt"
    )
    config = make_config("sh", "-c", script)
    config["mounts"] += [
        bind("/i", tree, "rbind", "ro", uidMappings=mapping, gidMappings=gid_mapping),
        bind("/r", tree, "rbind", "ridmap", uidMappings=mapping, gidMappings=gid_mapping),
    ]
    code, out, err = await run(config)
    assert code == 0, err
    owners = {
        line.split()[0]: line.split()[1:] for line in out.splitlines() if line[:3] in ("/i/", "/r/")
    }
    assert owners == {
        "/i/top.txt": ["2000", "3000"],
        "/i/sub/inner.txt": ["1000", "1000"],  # idmap (not ridmap): the submount keeps its owners
        "/r/sub/inner.txt": ["2000", "3000"],
    }
    table = mount_table(out)
    assert {"idmapped", "ro"} <= table["/i"].options
    assert "idmapped" not in table["/i/sub"].options
    assert "idmapped" in table["/r/sub"].options


async def test_idmap_option_uses_the_container_user_namespace(
    make_config: MakeConfig, bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    traversable_by_everyone(bundle)
    shared = tmp_path_factory.mktemp("idmap-shared")
    skip_unless_idmappable(shared, recursive=False)
    traversable_by_everyone(shared)
    (shared / "owned-by-root").write_text("x")
    for name in ("plain", "mapped"):  # the mapped root may not create them in the image
        (bundle / "rootfs" / name).mkdir()
    config = make_config("sh", "-c", "stat -c '%n %u' /plain/owned-by-root /mapped/owned-by-root")
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    config["mounts"] += [bind("/plain", shared, "bind"), bind("/mapped", shared, "bind", "idmap")]
    code, out, err = await run(config)
    assert code == 0, err
    # host root is nobody in the container, unless the mount maps it to the container's root
    assert out.split() == ["/plain/owned-by-root", "65534", "/mapped/owned-by-root", "0"]


@pytest.mark.parametrize(
    ("propagation", "kind"), [("rshared", "shared"), ("shared", "shared"), ("rprivate", None)]
)
async def test_root_propagation_is_reapplied_after_pivot(
    make_config: MakeConfig, propagation: str, kind: str | None
) -> None:
    config = make_config("cat", "/proc/self/mountinfo")
    config["linux"]["rootfsPropagation"] = propagation
    code, out, err = await run(config)
    assert code == 0, err
    optional = [f.split(":")[0] for f in mount_table(out)["/"].optional]
    assert optional == ([kind] if kind else [])


async def test_no_pivot_root(make_config: MakeConfig, tmp_path: Path) -> None:
    config = make_config(
        "sh", "-c", f"cat /proc/self/mountinfo; ls /; test -e /tmp/host && echo leak; {IDENTITY} /"
    )
    code, out, err = await run(config, no_pivot_root=True)
    assert code == 0, err
    assert "leak" not in out
    table = mount_table(out)
    assert "/" in table
    assert identity(tmp_path / "rootfs") in out.splitlines()
    assert table["/proc"].fstype == "proc"


@pytest.mark.parametrize("dev_tmpfs", [True, False], ids=["dev-tmpfs", "image-dev"])
async def test_rootfs_on_overlayfs(
    make_config: MakeConfig, busybox_image: Path, tmp_path: Path, dev_tmpfs: bool
) -> None:
    """The rootfs an overlay mount of its own, as podman and docker make it."""
    layers = {name: tmp_path / name for name in ("upper", "work", "merged")}
    for path in layers.values():
        path.mkdir()
    data = f"lowerdir={busybox_image},upperdir={layers['upper']},workdir={layers['work']}"
    sc.mount("overlay", str(layers["merged"]), "overlay", 0, data)
    try:
        config = make_config(
            "sh", "-c", "stat -c '%t:%T' /dev/null; echo x > /dev/null && touch /new && echo ok"
        )
        config["root"] = {"path": str(layers["merged"]), "readonly": False}
        if not dev_tmpfs:
            config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/dev"]
        code, out, err = await run(config, stdin=DEVNULL)
    finally:
        sc.umount2(str(layers["merged"]), sc.MNT_DETACH)
    assert code == 0, err
    assert out.split() == ["1:3", "ok"]
    assert (layers["upper"] / "new").exists()


async def test_unbindable_root_fails_as_in_runc(make_config: MakeConfig) -> None:
    """runc 1.1.5 fails the same way: an unbindable / cannot be bound onto the rootfs."""
    config = make_config()
    config["linux"]["rootfsPropagation"] = "runbindable"
    with pytest.raises(InitError) as caught:
        await run(config)
    assert (caught.value.stage, caught.value.errno) == ("prepare_root", errno.EINVAL)


@pytest.mark.parametrize("user_namespace", [False, True], ids=["root", "user-namespace"])
def test_cgroup2_on_a_unified_host_leaves_the_hierarchy_alone(
    make_config: MakeConfig, bundle: Path, user_namespace: bool
) -> None:
    """Without a cgroup namespace the container gets the host's cgroup2 bound, read-only.

    A cgroup2 mount made from the initial cgroup namespace re-applies its options
    to the whole hierarchy: a plain one clears the nsdelegate and
    memory_recursiveprot systemd mounted it with, for the whole machine (runc
    1.1.5 does), and this config even asks for memory_localevents.  The
    hierarchy's options must be the same afterwards.  A hybrid host (this
    machine) is made unified in a private mount namespace, its cgroup2 bound on
    /sys/fs/cgroup (a fresh mount there would be the very damage looked for).
    """
    layout = cgroup_layout()
    hierarchy = cgroup2_mount()
    if layout not in ("v2", "hybrid") or hierarchy is None:
        pytest.skip(f"the host mounts no cgroup2 hierarchy (cgroup layout: {layout})")
    config = make_config("cat", "/proc/self/mountinfo")
    namespaces = config["linux"]["namespaces"]  # runc's spec has a cgroup one on v2
    config["linux"]["namespaces"] = [ns for ns in namespaces if ns["type"] != "cgroup"]
    for m in config["mounts"]:
        if m["type"] == "cgroup":
            m["options"].append("memory_localevents")
    if user_namespace:
        traversable_by_everyone(bundle)
        config["linux"]["namespaces"].append({"type": "user"})
        config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    (bundle / "config.json").write_text(json.dumps(config))
    point, options = hierarchy
    unify = ""
    if layout == "hybrid":
        unify = (
            f"d=$(mktemp -d) && mount --bind {point} $d && umount -l /sys/fs/cgroup && "
            "mount --move $d /sys/fs/cgroup && rmdir $d && "
        )
    shell = f'{unify}exec "$0" -m asyncinit run --bundle {bundle} cgroup2-test'
    try:
        result = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", shell, sys.executable],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=CHECKOUT,
        )
    finally:
        after = cgroup2_mount()
        if after != hierarchy:  # put the machine back before reporting
            restore = ",".join(o for o in options.split(",") if o not in ("rw", "ro"))
            sc.mount(None, point, None, sc.MS_REMOUNT, restore)
    assert after == hierarchy, "the host's cgroup2 hierarchy changed its options"
    assert result.returncode == 0, result.stderr
    entry = mount_table(result.stdout)["/sys/fs/cgroup"]
    assert entry.fstype == "cgroup2"
    assert {"ro", "nosuid", "nodev", "noexec"} <= entry.options
    assert not any(p.startswith("/sys/fs/cgroup/") for p in mount_table(result.stdout))


@pytest.fixture
def locked_source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A host tmpfs mounted nosuid,nodev,noexec: flags a user namespace inherits locked."""
    source = tmp_path_factory.mktemp("locked")
    os.chmod(source, 0o755)
    sc.mount("tmpfs", str(source), "tmpfs", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC, "mode=755")
    try:
        yield source
    finally:
        sc.umount2(str(source), sc.MNT_DETACH)


def in_user_namespace(config: dict[str, Any], bundle: Path, *mount_points: str) -> None:
    traversable_by_everyone(bundle)
    for point in mount_points:  # the mapped root may not create them in the image
        (bundle / "rootfs" / point.lstrip("/")).mkdir()
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]


async def test_bind_remount_keeps_locked_flags_in_a_user_namespace(
    make_config: MakeConfig, bundle: Path, locked_source: Path
) -> None:
    config = make_config("cat", "/proc/self/mountinfo")
    in_user_namespace(config, bundle, "/locked")
    config["mounts"].append(bind("/locked", locked_source, "bind", "ro"))
    code, out, err = await run(config)
    assert code == 0, err
    assert {"ro", "nosuid", "nodev", "noexec"} <= mount_table(out)["/locked"].options


async def test_clearing_a_locked_flag_is_refused(
    make_config: MakeConfig, bundle: Path, locked_source: Path
) -> None:
    """Asked for suid on a nosuid-locked mount: the error, not a silently different mount."""
    config = make_config()
    in_user_namespace(config, bundle, "/locked")
    config["mounts"].append(bind("/locked", locked_source, "bind", "ro", "suid"))
    with pytest.raises(InitError) as caught:
        await run(config)
    assert caught.value.errno == errno.EPERM, str(caught.value)
    assert caught.value.field == f"mounts[{len(config['mounts']) - 1}]"
    assert caught.value.path == "/locked"
