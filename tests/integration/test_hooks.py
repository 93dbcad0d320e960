"""Integration: OCI hooks, Python hooks and premount/postmount commands on real containers."""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

import asyncinit
from asyncinit import ConfigError, HookError, PythonHooks, spawn
from tests.support.containers import MakeConfig, needs_root, run
from tests.support.hooks import (
    FAIL,
    HANG,
    RECORD,
    gone,
    hook,
    init_backend_for,
    script,
    state_of,
    with_log,
)

pytestmark = [pytest.mark.integration, pytest.mark.anyio, needs_root]

PARENT_SIDE = ("prestart", "createRuntime", "poststart", "poststop")
CONTAINER_SIDE = ("createContainer", "startContainer")


def hooks_at(
    kind: str, host_script: str, rootfs_script: str, log: Path, **options: Any
) -> dict[str, Any]:
    """A hook entry for ``kind``: startContainer's path and log resolve in the container."""
    if kind == "startContainer":
        return hook(rootfs_script, kind, "/log", **options)
    return hook(host_script, kind, str(log), **options)


async def test_hook_points_order_namespaces_root_and_state(
    make_config: MakeConfig, bundle: Path, log: Path, tmp_path: Path
) -> None:
    rootfs = bundle / "rootfs"
    (rootfs / "in-rootfs").write_text("")
    host_record = script(tmp_path / "record", RECORD)
    rootfs_record = "/" + Path(script(rootfs / "record", RECORD)).name
    config = with_log(
        make_config(
            "sh",
            "-c",
            "readlink /proc/self/ns/mnt > /log/workload.mnt; "
            "readlink /proc/self/ns/pid > /log/workload.pidns",
        ),
        log,
    )
    config["annotations"] = {"org.example.test": "hooks"}
    config["hooks"] = {
        kind: [hooks_at(kind, host_record, rootfs_record, log)]
        for kind in (*PARENT_SIDE, *CONTAINER_SIDE)
    }
    calls = 0

    async def python_hook(container: asyncinit.Container) -> None:
        nonlocal calls
        assert container.id == "hooked"
        with open(log / "order", "a") as f:
            f.write(f"python-{calls}\n")
        calls += 1

    hooks = PythonHooks(
        create_runtime=[python_hook], poststart=[python_hook], poststop=[python_hook]
    )
    container = await spawn(config, bundle=bundle, container_id="hooked", hooks=hooks)
    async with container:
        assert await container.wait() == 0
    assert container.warnings == []
    assert (log / "order").read_text().split() == [
        "prestart",
        "createRuntime",
        "python-0",
        "createContainer",
        "startContainer",
        "poststart",
        "python-1",
        "poststop",
        "python-2",
    ]
    host_mnt, host_pidns = os.readlink("/proc/self/ns/mnt"), os.readlink("/proc/self/ns/pid")
    container_mnt = (log / "workload.mnt").read_text().strip()
    container_pidns = (log / "workload.pidns").read_text().strip()
    assert container_mnt != host_mnt
    expected_status = {
        "prestart": "creating",
        "createRuntime": "creating",
        "createContainer": "creating",
        "startContainer": "created",
        "poststart": "running",
        "poststop": "stopped",
    }
    for kind in (*PARENT_SIDE, *CONTAINER_SIDE):
        inside = kind in CONTAINER_SIDE
        assert (log / f"{kind}.mnt").read_text().strip() == (
            container_mnt if inside else host_mnt
        ), kind
        assert (log / f"{kind}.pidns").read_text().strip() == (
            container_pidns if inside else host_pidns
        ), kind
        # Only startContainer runs after pivot_root; createContainer still sees the old root.
        assert (log / f"{kind}.root").read_text().strip() == (
            "new" if kind == "startContainer" else "old"
        ), kind
        expected = {
            "ociVersion": config["ociVersion"],
            "id": "hooked",
            "status": expected_status[kind],
            "pid": container.pid,
            "bundle": str(bundle.resolve()),
            "annotations": {"org.example.test": "hooks"},
        }
        if kind == "poststop":  # its pid may belong to someone else by now (runc omits it too)
            del expected["pid"]
        assert state_of(log, kind) == expected, kind


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer", "startContainer"])
@pytest.mark.parametrize("failure", ["exit", "timeout"])
async def test_failing_hook_stops_the_start(
    make_config: MakeConfig,
    bundle: Path,
    log: Path,
    tmp_path: Path,
    kind: str,
    failure: str,
    anyio_backend: str,
) -> None:
    backend = init_backend_for(failure, anyio_backend)
    rootfs = bundle / "rootfs"
    text = FAIL if failure == "exit" else HANG
    host_script = script(tmp_path / "bad", text)
    rootfs_script = "/" + Path(script(rootfs / "bad", text)).name
    record = script(tmp_path / "record", RECORD)
    record_in_rootfs = "/" + Path(script(rootfs / "record", RECORD)).name
    config = with_log(make_config("touch", "/log/workload-ran"), log)
    first = hooks_at(kind, record, record_in_rootfs, log)
    bad = hooks_at(kind, host_script, rootfs_script, log, timeout=1)
    config["hooks"] = {
        kind: [first, bad],
        "poststop": [hook(record, "poststop", str(log))],
    }
    with pytest.raises(HookError) as caught:
        await spawn(config, backend=backend, container_id="failing")
    error = caught.value
    assert (error.kind, error.index, error.path) == (kind, 1, bad["path"])
    assert f"{kind} hook 1 ({bad['path']})" in str(error)
    if failure == "exit":
        assert error.returncode == 3
        assert error.output == f"boom from {kind}"  # stderr wins over stdout
        assert "exited with status 3: boom from" in str(error)
    else:
        assert error.timed_out
        assert "timed out after 1s and was killed" in str(error)
        if kind in PARENT_SIDE:  # the hook and the child it started are both gone
            pids = (log / f"{kind}.pids").read_text().split()
            assert all(gone(int(pid)) for pid in pids), pids
    assert not (log / "workload-ran").exists()
    assert gone(state_of(log, kind)["pid"])
    assert state_of(log, "poststop")["id"] == "failing"  # the cleanup ran poststop hooks


@pytest.mark.parametrize("kind", ["poststart", "poststop"])
async def test_failing_poststart_poststop_are_warnings(
    make_config: MakeConfig, log: Path, tmp_path: Path, kind: str
) -> None:
    record = script(tmp_path / "record", RECORD)
    config = with_log(make_config("touch", "/log/workload-ran"), log)
    config["hooks"] = {
        kind: [
            hook(script(tmp_path / "bad", FAIL), kind),
            hook(script(tmp_path / "slow", HANG), kind, str(log), timeout=1),
            hook(record, kind, str(log)),
        ]
    }
    container = await spawn(config)
    async with container:
        assert await container.wait() == 0
    assert (log / "workload-ran").exists()
    assert len(container.warnings) == 2
    assert container.warnings[0].startswith(f"{kind} hook 0 (")
    assert f"exited with status 3: boom from {kind}" in container.warnings[0]
    assert container.warnings[1].startswith(f"{kind} hook 1 (")
    assert "timed out after 1s" in container.warnings[1]
    assert (log / "order").read_text().split() == [kind]  # the hooks after a failure ran


async def test_hook_args0_is_argv0_and_env_is_exact(make_config: MakeConfig, log: Path) -> None:
    """OCI: ``path`` is executed with ``args`` as its whole argv (busybox reads argv[0])."""
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("needs busybox on the host")
    config = make_config()
    config["hooks"] = {
        "prestart": [
            {
                "path": busybox,
                "args": ["sh", "-c", f'echo "$0 $GREETING ${{HOME:-nohome}}" > {log}/argv0'],
                "env": ["GREETING=hi"],
            }
        ]
    }
    code, _, _ = await run(config)
    assert code == 0
    assert (log / "argv0").read_text().split() == ["sh", "hi", "nohome"]


async def test_hook_validation_before_anything_starts(
    make_config: MakeConfig, bundle: Path, tmp_path: Path
) -> None:
    plain = tmp_path / "not-executable"
    plain.write_text("#!/bin/sh\n")
    plain.chmod(0o644)
    config = make_config("touch", "/tmp/ran")
    config["hooks"] = {
        "prestart": [{"path": "relative/hook"}],
        "createRuntime": [{"path": str(tmp_path / "missing")}],
        "createContainer": [{"path": str(plain)}],
        "poststart": [{"path": "/bin/true", "timeout": 0}],
        "poststop": [{"path": "/bin/true", "timeout": -5}],
        "startContainer": [{"path": sys.executable}],  # on the host, not in the image
    }
    with pytest.raises(ConfigError) as caught:
        await spawn(config)
    errors = "\n".join(caught.value.errors)
    assert 'hooks.prestart[0].path: must be an absolute path, got "relative/hook"' in errors
    assert "hooks.poststart[0].timeout: must be greater than 0, got 0" in errors
    assert "hooks.poststop[0].timeout: must be greater than 0, got -5" in errors
    # once the config is well-formed, the host checks name every bad executable at once
    del config["hooks"]["prestart"], config["hooks"]["poststart"], config["hooks"]["poststop"]
    with pytest.raises(ConfigError) as caught:
        await spawn(config)
    errors = "\n".join(caught.value.errors)
    assert f"hooks.createRuntime[0].path: {tmp_path / 'missing'}: No such file" in errors
    assert f"hooks.createContainer[0].path: {plain}: not an executable file" in errors
    # startContainer runs after pivot_root: its path is looked up in the rootfs
    assert f"hooks.startContainer[0].path: {sys.executable}: No such file" in errors
    assert not (bundle / "rootfs" / "tmp" / "ran").exists()


async def test_start_container_hook_found_in_the_rootfs_only(
    make_config: MakeConfig, bundle: Path, log: Path
) -> None:
    script(bundle / "rootfs" / "in-image-hook", "#!/bin/sh\necho $(id -u) > /log/start-uid\n")
    config = with_log(make_config(), log)
    config["process"]["user"] = {"uid": 1000, "gid": 1000}
    config["hooks"] = {"startContainer": [{"path": "/in-image-hook"}]}
    code, _, err = await run(config)
    assert code == 0, err
    # runc runs startContainer hooks after the switch to the workload's user
    assert (log / "start-uid").read_text().strip() == "1000"


async def test_python_create_runtime_hook_writes_into_the_rootfs(
    make_config: MakeConfig, bundle: Path
) -> None:
    async def provision(container: asyncinit.Container) -> None:
        Path(container.rootfs, "etc", "provisioned").write_text(f"by pid {container.pid}\n")
        # rlimits of PID 1 can be set from outside, and the workload inherits them
        resource.prlimit(container.pid, resource.RLIMIT_MSGQUEUE, (4242, 4242))
        assert os.readlink(container.namespace_path("mnt")) != os.readlink("/proc/self/ns/mnt")

    config = make_config("sh", "-c", "cat /etc/provisioned; ulimit -q")
    container = await spawn(
        config, hooks=PythonHooks(create_runtime=[provision]), stdout=asyncinit.PIPE
    )
    async with container:
        assert container.stdout is not None
        out = b""
        async for chunk in container.stdout:
            out += chunk
        assert await container.wait() == 0
    assert out.decode().split() == ["by", "pid", str(container.pid), "4242"]


async def test_python_hook_exception_and_timeout(make_config: MakeConfig, bundle: Path) -> None:
    marker = bundle / "rootfs" / "tmp" / "ran"
    config = make_config("touch", "/tmp/ran")
    config["root"]["readonly"] = False

    async def broken(container: asyncinit.Container) -> None:
        raise ValueError("no network for you")

    async def stuck(container: asyncinit.Container) -> None:
        await anyio.sleep(60)

    with pytest.raises(HookError) as caught:
        await spawn(config, hooks=PythonHooks(create_runtime=[broken]))
    assert (caught.value.kind, caught.value.index, caught.value.path) == ("createRuntime", 0, None)
    assert isinstance(caught.value.__cause__, ValueError)
    assert "raised ValueError: no network for you" in str(caught.value)
    with anyio.fail_after(10):
        with pytest.raises(HookError) as caught:
            await spawn(config, hooks=PythonHooks(create_runtime=[stuck]), hook_timeout=0.5)
    assert caught.value.timed_out
    assert "timed out after 0.5s" in str(caught.value)
    assert not marker.exists()


async def test_python_poststart_and_poststop_failures_are_warnings(make_config: MakeConfig) -> None:
    async def broken(container: asyncinit.Container) -> None:
        raise RuntimeError(f"cannot reach {container.id}")

    hooks = PythonHooks(poststart=[broken], poststop=[broken])
    container = await spawn(make_config(), container_id="warned", hooks=hooks)
    async with container:
        assert await container.wait() == 0
    assert container.warnings == [
        "poststart Python hook 0 (test_python_poststart_and_poststop_failures_are_warnings."
        "<locals>.broken) raised RuntimeError: cannot reach warned",
        "poststop Python hook 0 (test_python_poststart_and_poststop_failures_are_warnings."
        "<locals>.broken) raised RuntimeError: cannot reach warned",
    ]


def what_each_hook_saw(log: Path) -> dict[str, tuple[str, str, str]]:
    """kind -> (mount namespace: host/container, root: old/new, state status)."""
    host_mnt = os.readlink("/proc/self/ns/mnt")
    container_mnt = (log / "workload.mnt").read_text().strip()
    seen = {}
    for kind in (*PARENT_SIDE, *CONTAINER_SIDE):
        mnt = (log / f"{kind}.mnt").read_text().strip()
        where = {host_mnt: "host", container_mnt: "container"}.get(mnt, mnt)
        root = (log / f"{kind}.root").read_text().strip()
        seen[kind] = (where, root, state_of(log, kind)["status"])
    return seen


@pytest.mark.skipif(shutil.which("runc") is None, reason="needs runc")
async def test_hook_points_match_runc(
    make_config: MakeConfig, bundle: Path, log: Path, tmp_path: Path, anyio_backend: str
) -> None:
    """Same bundle under runc and asyncinit: each hook sees the same namespaces and root."""
    if anyio_backend != "asyncio":
        pytest.skip("runc runs once")
    rootfs = bundle / "rootfs"
    (rootfs / "in-rootfs").write_text("")
    host_record = script(tmp_path / "record", RECORD)
    rootfs_record = "/" + Path(script(rootfs / "record", RECORD)).name
    config = with_log(
        make_config("sh", "-c", "readlink /proc/self/ns/mnt > /log/workload.mnt"), log
    )
    config["root"]["path"] = "rootfs"
    config["hooks"] = {
        kind: [hooks_at(kind, host_record, rootfs_record, log)]
        for kind in (*PARENT_SIDE, *CONTAINER_SIDE)
    }
    (bundle / "config.json").write_text(json.dumps(config))
    runc = await anyio.run_process(
        ["runc", "--root", str(tmp_path / "runc-state"), "run", "-b", str(bundle), "cmp"],
        check=False,
    )
    assert runc.returncode == 0, runc.stderr
    by_runc = what_each_hook_saw(log)
    shutil.rmtree(log)
    log.mkdir(mode=0o777)
    log.chmod(0o777)
    container = await spawn(bundle / "config.json", container_id="cmp")
    async with container:
        assert await container.wait() == 0
    ours = what_each_hook_saw(log)
    # runc 1.1.5 labels poststart "created"; the runtime spec (and we) say "running"
    assert by_runc.pop("poststart") == ("host", "old", "created")
    assert ours.pop("poststart") == ("host", "old", "running")
    assert ours == by_runc
