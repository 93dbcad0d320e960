"""Integration: premount/postmount commands (asyncinit's extension), around their mount."""

from __future__ import annotations

from pathlib import Path

import pytest

from asyncinit import InitError, spawn
from tests.support.containers import MakeConfig, needs_root, run
from tests.support.hooks import (
    FAIL,
    HANG,
    PATH_ENV,
    gone,
    hook,
    init_backend_for,
    script,
    state_of,
    with_log,
)

pytestmark = [pytest.mark.integration, pytest.mark.anyio, needs_root]

MOUNT_CHECK = """#!/bin/sh
cat > /dev/null
if grep -q " $3 " /proc/self/mountinfo; then state=mounted; else state=unmounted; fi
echo "$1 $2 $state $(pwd) $(readlink /proc/self/ns/mnt)" >> "$4/mounts"
"""


async def test_premount_postmount_order_and_mount_state(
    make_config: MakeConfig, bundle: Path, log: Path, tmp_path: Path
) -> None:
    check = script(tmp_path / "check", MOUNT_CHECK)
    rootfs = (bundle / "rootfs").resolve()
    config = with_log(make_config("readlink", "/proc/self/ns/mnt"), log)
    for name in ("a", "b"):
        target = str(rootfs / "mnt" / name)
        config["mounts"].append(
            {
                "destination": f"/mnt/{name}",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["size=1m"],
                "premount": [hook(check, "premount", name, target, str(log), dir=str(tmp_path))],
                "postmount": [hook(check, "postmount", name, target, str(log), timeout=5, dir="/")],
            }
        )
    code, out, err = await run(config)
    assert code == 0, err
    lines = [line.split() for line in (log / "mounts").read_text().splitlines()]
    assert [line[:4] for line in lines] == [
        ["premount", "a", "unmounted", str(tmp_path)],
        ["postmount", "a", "mounted", "/"],
        ["premount", "b", "unmounted", str(tmp_path)],
        ["postmount", "b", "mounted", "/"],
    ]
    # they run in the container's mount namespace, before pivot_root
    assert {line[4] for line in lines} == {out.strip()}


@pytest.mark.parametrize("where", ["premount", "postmount"])
@pytest.mark.parametrize("failure", ["exit", "timeout"])
async def test_failing_mount_command_stops_the_start(
    make_config: MakeConfig,
    log: Path,
    tmp_path: Path,
    where: str,
    failure: str,
    anyio_backend: str,
) -> None:
    backend = init_backend_for(failure, anyio_backend)
    bad = script(tmp_path / "bad", FAIL if failure == "exit" else HANG)
    config = with_log(make_config("touch", "/log/workload-ran"), log)
    index = len(config["mounts"])
    config["mounts"].append(
        {
            "destination": "/mnt",
            "type": "tmpfs",
            "source": "tmpfs",
            where: [hook(bad, where, str(log), timeout=1)],
        }
    )
    with pytest.raises(InitError) as caught:
        await spawn(config, backend=backend)
    error = caught.value
    assert error.stage == where
    assert error.field == f"mounts[{index}].{where}[0]"
    assert error.path == bad
    if failure == "exit":
        assert f"{bad} exited with status 3: boom from {where}" in str(error)
    else:
        assert f"{bad} timed out after 1s and was killed" in str(error)
        assert gone(state_of(log, where)["pid"])
    assert not (log / "workload-ran").exists()


async def test_mount_command_that_cannot_start(make_config: MakeConfig, tmp_path: Path) -> None:
    ok = script(tmp_path / "ok", "#!/bin/sh\nexit 0\n")
    config = make_config()
    config["mounts"].append(
        {
            "destination": "/mnt",
            "type": "tmpfs",
            "source": "tmpfs",
            "premount": [{"path": ok, "dir": str(tmp_path / "no-such-dir")}],
        }
    )
    with pytest.raises(InitError) as caught:
        await spawn(config)
    assert caught.value.stage == "premount"
    assert "could not be started: No such file or directory" in str(caught.value)
    assert str(tmp_path / "no-such-dir") in str(caught.value)


async def test_env_reaches_mount_commands(
    make_config: MakeConfig, log: Path, tmp_path: Path
) -> None:
    env_dump = script(tmp_path / "env", '#!/bin/sh\nenv | sort > "$1/env"\n')
    config = make_config()
    config["mounts"].append(
        {
            "destination": "/mnt",
            "type": "tmpfs",
            "source": "tmpfs",
            "premount": [{"path": env_dump, "args": ["env", str(log)], "env": [PATH_ENV, "A=1"]}],
        }
    )
    code, _, err = await run(config)
    assert code == 0, err
    assert "A=1" in (log / "env").read_text().split()
    assert "HOME" not in (log / "env").read_text()  # exactly the configured environment
