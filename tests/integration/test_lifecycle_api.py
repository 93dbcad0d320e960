"""create()/start()/load()/state(): runc's lifecycle from Python, sharing the CLI's state.

Real containers; the CLI (``python -m asyncinit --root R``) checks what the API
recorded and makes what ``load`` attaches to.  Nothing is left: no state
directory once the handle is closed, no process, no mount (``host_unchanged``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import anyio
import pytest

import asyncinit
from tests.support import CHECKOUT
from tests.support.containers import MakeConfig, needs_root, read_all

pytestmark = [pytest.mark.integration, pytest.mark.anyio, needs_root]


def cli(root: Path, *args: str) -> tuple[int, str]:
    """Files, not pipes: a created init keeps the stdio it inherited (as runc's)."""
    with tempfile.TemporaryFile("w+") as out:
        code = subprocess.run(
            [sys.executable, "-m", "asyncinit", "--root", str(root), *args],
            stdout=out, stderr=out, timeout=60, check=False, stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(CHECKOUT)},
        ).returncode  # fmt: skip
        out.seek(0)
        return code, out.read()


def cli_status(root: Path, container_id: str) -> str:
    code, out = cli(root, "state", container_id)
    return json.loads(out)["status"] if code == 0 else out


async def test_create_then_start(make_config: MakeConfig, tmp_path: Path) -> None:
    root = tmp_path / "root"
    config = make_config("sh", "-c", "echo started; read line; echo got $line")
    container = await asyncinit.create(
        config, root=root, container_id="api-1", stdin=asyncinit.PIPE, stdout=asyncinit.PIPE
    )
    async with container:
        assert container.state()["status"] == "created"
        assert cli_status(root, "api-1") == "created"
        cmdline = Path(f"/proc/{container.pid}/cmdline").read_bytes()
        assert not cmdline.startswith(b"sh")  # the init still waits on the exec fifo
        await container.start()
        assert container.state()["status"] == "running"
        assert cli_status(root, "api-1") == "running"
        assert container.stdin is not None
        await container.stdin.send(b"x\n")
        await container.stdin.aclose()
        assert await read_all(container.stdout) == "started\ngot x\n"
        assert await container.wait() == 0
        assert container.state()["status"] == "stopped"
        with pytest.raises(asyncinit.UsageError, match="stopped, not created"):
            await container.start()
    assert not (root / "api-1").exists()


async def test_start_is_for_created_containers(make_config: MakeConfig, tmp_path: Path) -> None:
    async with await asyncinit.spawn(make_config("true")) as spawned:
        with pytest.raises(asyncinit.UsageError, match="not created"):
            await spawned.start()
        assert await spawned.wait() == 0


async def test_a_failed_create_leaves_no_record(make_config: MakeConfig, tmp_path: Path) -> None:
    root = tmp_path / "root"
    config = make_config("true")
    config["hooks"] = {"prestart": [{"path": "/bin/false"}]}
    with pytest.raises(asyncinit.HookError):
        await asyncinit.create(config, root=root, container_id="api-2")
    assert not (root / "api-2").exists()
    with pytest.raises(asyncinit.UsageError, match="container does not exist"):
        asyncinit.load("api-2", root=root)


async def test_load_what_the_cli_created(
    bundle: Path, make_config: MakeConfig, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    config = make_config("sleep", "1000")
    config["root"]["path"] = "rootfs"
    (bundle / "config.json").write_text(json.dumps(config))
    assert cli(root, "create", "-b", str(bundle), "api-3")[0] == 0
    try:
        container = asyncinit.load("api-3", root=root)
    except BaseException:
        cli(root, "delete", "--force", "api-3")
        raise
    async with container:
        assert (container.state()["status"], container.bundle) == ("created", str(bundle))
        await container.start()
        assert cli_status(root, "api-3") == "running"
        for _ in range(100):
            if Path(f"/proc/{container.pid}/cmdline").read_bytes().startswith(b"sleep"):
                break
            await anyio.sleep(0.02)
        container.kill()
        assert await container.wait() == -1  # not our child: its parent has the status
        assert cli_status(root, "api-3") == "stopped"
    assert cli(root, "state", "api-3")[0] == 1  # the record went with the handle


async def test_the_cli_deletes_the_cgroup_of_what_create_made(
    make_config: MakeConfig, tmp_path: Path
) -> None:
    """create() records the container's cgroup as ``asyncinit create`` does: a CLI
    ``delete --force`` of it kills the container and removes its cgroup."""
    root = tmp_path / "root"
    config = make_config("sleep", "1000")
    container = await asyncinit.create(config, root=root, container_id="api-4")
    async with container:
        assert container.cgroup is not None
        directories = {h["directory"] for h in container.cgroup.plan["hierarchies"]}
        assert all(os.path.isdir(d) for d in directories)
        assert cli(root, "delete", "--force", "api-4")[0] == 0
        assert not any(os.path.exists(d) for d in directories)
        await container.wait()


async def test_a_loaded_handle_removes_the_cgroup_when_it_ends(
    bundle: Path, make_config: MakeConfig, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    config = make_config("sleep", "1000")
    config["root"]["path"] = "rootfs"
    (bundle / "config.json").write_text(json.dumps(config))
    assert cli(root, "create", "-b", str(bundle), "api-5")[0] == 0
    container = asyncinit.load("api-5", root=root)
    async with container:
        assert container.cgroup is not None
        directories = {h["directory"] for h in container.cgroup.plan["hierarchies"]}
        container.kill()
        await container.wait()
    assert not any(os.path.exists(d) for d in directories)
