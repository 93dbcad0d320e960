"""linux.seccomp.listenerPath through ``create``/``start``, asyncinit beside runc 1.1.5.

As runc, the listener reaches the agent during ``create`` (with noNewPrivileges
the filter is loaded before the exec fifo wait, while create's process is there
to send it): the agent holds it before ``start``, and answers the workload's
notified syscalls after it. A small agent in a thread of the test (its own
event loop) denies one mkdir with ENOSPC and lets the others run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.support import CHECKOUT
from tests.support.configs import base_config
from tests.support.containers import needs_root
from tests.support.runc import RUNC
from tests.support.seccomp import Agent

pytestmark = [pytest.mark.integration, needs_root]

SCRIPT = "mkdir /denied; echo denied=$? > /result; mkdir /allowed; echo allowed=$? >> /result"


def cli(runtime: str, root: Path, *args: str) -> tuple[int, str]:
    """One runc-style command of ``runtime`` with its own --root: (exit code, stdout)."""
    if runtime == "runc":
        assert RUNC is not None
        argv = [RUNC, "--root", str(root), *args]
    else:
        argv = [sys.executable, "-m", "asyncinit", "--root", str(root), *args]
    # Files, not pipes: the init inherits create's stdio and keeps it.
    done = subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if args[0] == "state" else subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(CHECKOUT)},
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout or ""


def state(runtime: str, root: Path, container_id: str) -> dict[str, object]:
    code, out = cli(runtime, root, "state", container_id)
    assert code == 0
    result: dict[str, object] = json.loads(out)
    return result


@pytest.mark.parametrize("runtime", ["asyncinit", *(["runc"] if RUNC else [])])
@pytest.mark.parametrize("nnp", [True, False], ids=["no_new_privs", "privileged-load"])
def test_listener_path_with_create_and_start(
    bundle: Path, tmp_path: Path, runtime: str, nnp: bool
) -> None:
    socket_path = tmp_path / "agent.sock"
    config = base_config("sh", "-c", SCRIPT)
    config["root"] = {"path": "rootfs", "readonly": False}
    config["process"]["noNewPrivileges"] = nnp
    config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": str(socket_path),
        "listenerMetadata": "oci-agent",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}],
    }
    (bundle / "config.json").write_text(json.dumps(config))
    root = tmp_path / "state"
    cid = f"sc-{uuid.uuid4().hex[:10]}"
    try:
        with Agent(socket_path, denied=b"/denied") as agent:
            assert cli(runtime, root, "create", "--bundle", str(bundle), cid)[0] == 0
            # The agent has the listener before start, as runc sends it during create.
            (message,) = agent.messages
            assert message["fds"] == ["seccompFd"]
            assert message["metadata"] == "oci-agent"
            assert message["state"]["id"] == cid
            assert message["state"]["status"] == "creating"
            assert message["pid"] == state(runtime, root, cid)["pid"]
            assert agent.answered == []
            assert cli(runtime, root, "start", cid)[0] == 0
            for _ in range(200):
                if state(runtime, root, cid)["status"] == "stopped":
                    break
                time.sleep(0.05)
        assert (bundle / "rootfs" / "result").read_text() == "denied=1\nallowed=0\n"
        assert agent.answered == ["/denied", "/allowed"]
        assert (bundle / "rootfs" / "allowed").is_dir()
    finally:
        assert cli(runtime, root, "delete", "--force", cid)[0] == 0
