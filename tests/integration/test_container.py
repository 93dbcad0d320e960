"""Integration: real containers from runc's default config on a busybox rootfs."""

from __future__ import annotations

import errno
import os
import signal
from pathlib import Path

import anyio
import pytest

import asyncinit
from asyncinit import PIPE, ConfigError, InitError, spawn
from tests.support.containers import MakeConfig, needs_root, read_all, run

pytestmark = [pytest.mark.integration, pytest.mark.anyio, needs_root]

@pytest.mark.parametrize("init_backend", ["asyncio", "trio"])
async def test_pid1_hostname_and_proc(make_config: MakeConfig, init_backend: str) -> None:
    config = make_config("sh", "-c", "echo $$; hostname; cat /proc/1/comm; ls /proc/self/ns")
    config["hostname"] = "box"
    code, out, err = await run(config, backend=init_backend)
    assert (code, err) == (0, "")
    pid, hostname, comm, *namespaces = out.split()
    assert pid == "1"
    assert hostname == "box"
    assert comm == "sh"  # the init has become the workload (exec mode)
    assert "mnt" in namespaces


async def test_mount_table_matches_runc_defaults(make_config: MakeConfig) -> None:
    code, out, _ = await run(make_config("cat", "/proc/self/mountinfo"))
    assert code == 0
    mounts = {line.split()[4]: line.split() for line in out.splitlines()}
    for point in (
        "/",
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
        "/sys/fs/cgroup",
    ):
        assert point in mounts, point
    fstype = {point: fields[fields.index("-") + 1] for point, fields in mounts.items()}
    assert fstype["/proc"] == "proc"
    assert fstype["/dev"] == "tmpfs"
    assert fstype["/dev/pts"] == "devpts"
    assert fstype["/dev/mqueue"] == "mqueue"
    assert fstype["/sys"] == "sysfs"
    assert "ro" in mounts["/"][5].split(",")  # root.readonly
    assert "ro" in mounts["/sys"][5].split(",")
    assert {"nosuid", "noexec", "nodev"} <= set(mounts["/dev/shm"][5].split(","))
    # read-only and masked paths from runc's default config
    assert "ro" in mounts["/proc/sys"][5].split(",")
    assert fstype["/sys/firmware"] == "tmpfs"
    assert fstype["/proc/keys"] == "tmpfs"  # /dev/null of the container's /dev tmpfs


async def test_default_devices(make_config: MakeConfig) -> None:
    script = (
        "for d in null zero full random urandom tty; do stat -c '%n %t:%T %a' /dev/$d;"
        " test -c /dev/$d || echo not-a-char-device; done;"
        " for l in ptmx fd stdin stdout stderr; do readlink /dev/$l; done"
    )
    code, out, err = await run(make_config("sh", "-c", script))
    assert code == 0, err
    assert "not-a-char-device" not in out
    lines = out.splitlines()
    expected = {
        "null": "1:3",
        "zero": "1:5",
        "full": "1:7",
        "random": "1:8",
        "urandom": "1:9",
        "tty": "5:0",
    }
    for line, (name, numbers) in zip(lines, expected.items(), strict=False):
        path, major_minor, mode = line.split()
        assert path == f"/dev/{name}"
        assert major_minor == ":".join(f"{int(n):x}" for n in numbers.split(":"))
        assert mode == "666"
    assert lines[6:] == [
        "pts/ptmx",
        "/proc/self/fd",
        "/proc/self/fd/0",
        "/proc/self/fd/1",
        "/proc/self/fd/2",
    ]


async def test_host_paths_invisible_and_root_readonly(
    make_config: MakeConfig, tmp_path: Path
) -> None:
    sentinel = tmp_path / "host-sentinel"
    sentinel.write_text("host")
    script = (
        f"test -e {sentinel} && echo visible; test -e /work && echo work; "
        "(touch /newfile) 2>&1; echo status=$?"
    )
    code, out, _ = await run(make_config("sh", "-c", script))
    assert code == 0
    assert "visible" not in out
    assert "work" not in out.split()
    assert "Read-only file system" in out
    assert "status=1" in out
    assert not (tmp_path / "rootfs" / "newfile").exists()


async def test_readonly_root_erofs_from_python_side(make_config: MakeConfig) -> None:
    config = make_config("sh", "-c", "echo x > /etc/motd")
    code, _, err = await run(config)
    assert code != 0
    assert os.strerror(errno.EROFS) in err


@pytest.mark.parametrize("status", [0, 3, 255])
async def test_exit_status_propagates(make_config: MakeConfig, status: int) -> None:
    code, _, _ = await run(make_config("sh", "-c", f"exit {status}"))
    assert code == status


async def test_signal_death_and_handled_signal(make_config: MakeConfig) -> None:
    config = make_config(
        "sh", "-c", "trap 'exit 42' TERM; echo ready; while :; do sleep 0.05; done"
    )
    async with await spawn(config, stdout=PIPE) as container:
        assert container.stdout is not None
        assert (await container.stdout.receive()).strip() == b"ready"
        container.send_signal(signal.SIGTERM)
        assert await container.wait() == 42
    async with await spawn(make_config("sleep", "60")) as container:
        container.kill()
        assert await container.wait() == 128 + signal.SIGKILL


async def test_env_cwd_and_user(make_config: MakeConfig) -> None:
    config = make_config("sh", "-c", "echo $GREETING; pwd; id -u; id -g; umask")
    config["process"]["env"].append("GREETING=hello")
    config["process"]["cwd"] = "/work/dir"
    config["process"]["user"] = {"uid": 1000, "gid": 1000, "umask": 0o027}
    code, out, err = await run(config)
    assert code == 0, err
    assert out.split() == ["hello", "/work/dir", "1000", "1000", "0027"]


async def test_capabilities_and_limits(make_config: MakeConfig) -> None:
    config = make_config("sh", "-c", "grep -E '^(Cap|NoNewPrivs)' /proc/self/status; ulimit -n")
    config["process"]["noNewPrivileges"] = True
    code, out, _ = await run(config)
    assert code == 0
    fields = dict(line.split(":\t") for line in out.splitlines() if ":\t" in line)
    runc_default = (1 << 29) | (1 << 5) | (1 << 10)  # AUDIT_WRITE, KILL, NET_BIND_SERVICE
    assert int(fields["CapBnd"], 16) == runc_default
    assert int(fields["CapEff"], 16) == runc_default
    assert int(fields["CapPrm"], 16) == runc_default
    assert fields["NoNewPrivs"] == "1"
    assert out.split()[-1] == "1024"  # RLIMIT_NOFILE from runc's default config


async def test_only_stdio_reaches_the_workload(make_config: MakeConfig) -> None:
    code, out, _ = await run(make_config("ls", "/proc/self/fd"))
    assert code == 0
    assert sorted(out.split()) == ["0", "1", "2", "3"]  # 3 is ls's own directory fd


async def test_init_failure_is_raised_with_errno_operation_path(make_config: MakeConfig) -> None:
    config = make_config("/no/such/binary")
    with pytest.raises(InitError) as caught:
        await run(config)
    assert caught.value.errno == errno.ENOENT
    assert caught.value.operation == "execve"
    assert caught.value.stage == "exec"


async def test_mount_error_names_field_and_path(make_config: MakeConfig, bundle: Path) -> None:
    config = make_config()
    # A symlink inside the image that points at /proc: the mount would land under /proc.
    (bundle / "rootfs" / "sneaky").symlink_to("/proc/sys")
    config["mounts"].append(
        {"destination": "/sneaky/kernel", "type": "tmpfs", "source": "tmpfs", "options": []}
    )
    with pytest.raises(InitError) as caught:
        await run(config)
    error = caught.value
    assert error.field == f"mounts[{len(config['mounts']) - 1}]"
    assert error.errno == errno.EPERM
    assert error.path is not None
    assert error.path.startswith("/proc/sys")
    assert "allowlist" in str(error)


async def test_symlink_out_of_rootfs_stays_inside(
    make_config: MakeConfig, bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    host_dir = tmp_path_factory.mktemp("host-target")
    (bundle / "rootfs" / "escape").symlink_to(str(host_dir))
    config = make_config("sh", "-c", "ls -d /escape/sub")
    config["mounts"].append(
        {"destination": "/escape/sub", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}
    )
    code, _out, _ = await run(config)
    assert code == 0
    assert list(host_dir.iterdir()) == []  # nothing created or mounted on the host
    # the symlink resolved inside the rootfs: the mount point was created there
    assert (bundle / "rootfs" / str(host_dir).lstrip("/") / "sub").is_dir()


async def test_bad_config_refused_before_anything_happens(
    make_config: MakeConfig, bundle: Path
) -> None:
    config = make_config()
    config["mounts"].append(
        {
            "destination": "/new-mount-point",
            "type": "bind",
            "source": "/does/not/exist",
            "options": ["rbind"],
        }
    )
    config["process"]["user"]["uid"] = "0"
    before = sorted(p.name for p in (bundle / "rootfs").iterdir())
    with pytest.raises(ConfigError) as caught:
        await spawn(config)
    message = str(caught.value)
    assert "process.user.uid" in message
    assert sorted(p.name for p in (bundle / "rootfs").iterdir()) == before


async def test_bind_mount_readonly(
    make_config: MakeConfig, tmp_path_factory: pytest.TempPathFactory
) -> None:
    shared = tmp_path_factory.mktemp("shared")
    (shared / "data.txt").write_text("from the host\n")
    config = make_config("sh", "-c", "cat /data/data.txt; (echo x > /data/new) 2>&1; echo $?")
    config["mounts"].append(
        {"destination": "/data", "type": "bind", "source": str(shared), "options": ["rbind", "ro"]}
    )
    code, out, _ = await run(config)
    assert code == 0
    assert out.splitlines()[0] == "from the host"
    assert "Read-only file system" in out
    assert not (shared / "new").exists()


async def test_stdin_pipe(make_config: MakeConfig) -> None:
    async with await spawn(
        make_config("sh", "-c", "read line; echo got:$line"), stdin=PIPE, stdout=PIPE
    ) as container:
        assert container.stdin is not None
        await container.stdin.send(b"hello\n")
        await container.stdin.aclose()
        assert (await read_all(container.stdout)).strip() == "got:hello"
        assert await container.wait() == 0


async def test_concurrent_spawns(make_config: MakeConfig) -> None:
    results: list[tuple[int, str]] = []

    async def one(index: int) -> None:
        config = make_config("sh", "-c", f"echo $$ {index}; exit {index}")
        code, out, _ = await run(config)
        results.append((code, out.strip()))

    async with anyio.create_task_group() as tg:
        for index in range(8):
            tg.start_soon(one, index)
    assert sorted(results) == [(i, f"1 {i}") for i in range(8)]


async def test_cancelled_spawn_leaves_nothing(make_config: MakeConfig, tmp_path: Path) -> None:
    marker = tmp_path / "rootfs" / "tmp" / "ran"
    config = make_config("sh", "-c", "touch /tmp/ran")
    config["root"]["readonly"] = False
    hook_started = anyio.Event()

    async def slow_hook(container: asyncinit.Container) -> None:
        hook_started.set()
        await anyio.sleep(30)

    with anyio.move_on_after(5) as scope:
        async with anyio.create_task_group() as tg:

            async def start() -> None:
                await spawn(config, hooks=asyncinit.PythonHooks(create_runtime=[slow_hook]))

            tg.start_soon(start)
            await hook_started.wait()
            tg.cancel_scope.cancel()
    assert not scope.cancelled_caught
    assert not marker.exists()
