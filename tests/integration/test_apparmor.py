"""process.apparmorProfile on a kernel with AppArmor (the guest of tests/vm/run:
Debian 12's 6.1): a small profile loaded with apparmor_parser confines the
workload, /proc/self/attr/current names it, and runc 1.1.5 gives the same.

Skipped where AppArmor is off (this project's hosts): test_process_fields.py
covers that case, against runc too.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asyncinit import InitError
from tests.support.containers import MakeConfig, needs_root, run
from tests.support.runc import RUNC

ENABLED = Path("/sys/module/apparmor/parameters/enabled")
PARSER = shutil.which("apparmor_parser") or shutil.which("/sbin/apparmor_parser")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.anyio,
    needs_root,
    pytest.mark.skipif(
        not (ENABLED.is_file() and ENABLED.read_text().startswith("Y")),
        reason="AppArmor is not enabled in this kernel (tests/vm/run has it)",
    ),
    pytest.mark.skipif(PARSER is None, reason="apparmor_parser missing (Debian package apparmor)"),
    pytest.mark.skipif(
        not Path("/sys/kernel/security/apparmor").is_dir(), reason="securityfs is not mounted"
    ),
    pytest.mark.caller_loop("asyncio"),  # the guest is slow; the init's loop is spawn(backend=)
]

PROFILE = "asyncinit-test"
#: everything but reading or writing /secret (abi 3.0: unlisted classes are denied)
POLICY = f"""abi <abi/3.0>,
profile {PROFILE} flags=(attach_disconnected,mediate_deleted) {{
  file,
  capability,
  signal,
  unix,
  network,
  ptrace,
  deny /secret rw,
}}
"""
#: the label, the denied and the allowed file, then the fds the workload holds (the
#: init's private procfs, used for the write, must not be one of them)
PROBE = (
    "cat /proc/self/attr/current; cat /secret; echo rc=$?; cat /public; n=0; "
    "for fd in /proc/$$/fd/*; do readlink $fd >/dev/null && n=$((n + 1)); done; echo fds=$n"
)


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    assert PARSER is not None
    source = tmp_path_factory.mktemp("apparmor") / PROFILE
    source.write_text(POLICY)
    subprocess.run([PARSER, "--replace", "--skip-cache", str(source)], check=True)
    yield PROFILE
    subprocess.run([PARSER, "--remove", str(source)], check=False)


@pytest.fixture
def probe(make_config: MakeConfig, bundle: Path) -> dict[str, Any]:
    (bundle / "rootfs" / "secret").write_text("secret\n")
    (bundle / "rootfs" / "public").write_text("public\n")
    return without_cgroup_mount(make_config("sh", "-c", PROBE))


def without_cgroup_mount(config: dict[str, Any]) -> dict[str, Any]:
    """runc 1.1.5 mounts cgroup2 from the initial cgroup namespace, which clears the
    guest's nsdelegate,memory_recursiveprot machine-wide (runc#5258): not in these tests."""
    config["mounts"] = [m for m in config["mounts"] if m["type"] != "cgroup"]
    return config


@pytest.mark.parametrize(("mode", "backend"), [("exec", "asyncio"), ("supervise", "trio")])
async def test_workload_is_confined(
    probe: dict[str, Any], profile: str, mode: str, backend: str
) -> None:
    probe["process"]["apparmorProfile"] = profile
    code, out, err = await run(probe, init=mode, backend=backend)
    assert code == 0, err
    assert out == f"{profile} (enforce)\nrc=1\npublic\nfds=3\n"
    assert "Permission denied" in err


async def test_without_a_profile_the_same_probe_reads_the_secret(probe: dict[str, Any]) -> None:
    code, out, err = await run(probe)
    assert (code, out) == (0, "unconfined\nsecret\nrc=0\npublic\nfds=3\n"), err


def runc_run(bundle: Path, config: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    assert RUNC is not None
    (bundle / "config.json").write_text(json.dumps(config))
    return subprocess.run(
        [RUNC, "run", "--bundle", str(bundle), f"aa-{uuid.uuid4().hex[:8]}"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.skipif(RUNC is None, reason="runc is not installed")
async def test_same_confinement_as_runc(probe: dict[str, Any], profile: str, bundle: Path) -> None:
    probe["process"]["apparmorProfile"] = profile
    code, out, err = await run(probe)
    assert code == 0, err
    result = runc_run(bundle, probe)
    assert result.returncode == 0, result.stderr
    assert out == result.stdout


@pytest.mark.skipif(RUNC is None, reason="runc is not installed")
async def test_unknown_profile_fails_the_start_as_in_runc(
    make_config: MakeConfig, bundle: Path
) -> None:
    config = without_cgroup_mount(make_config("true"))
    config["process"]["apparmorProfile"] = "asyncinit-no-such-profile"
    with pytest.raises(InitError) as info:
        await run(config)
    assert info.value.field == "process.apparmorProfile"
    assert info.value.filename == "/proc/thread-self/attr/apparmor/exec"
    result = runc_run(bundle, config)
    assert result.returncode != 0
    assert "apparmor failed to apply profile" in result.stderr
