"""linux.seccomp.listenerPath through ``create``/``start``, asyncinit beside runc 1.1.5.

As runc, the listener reaches the agent during ``create`` (with noNewPrivileges
the filter is loaded before the exec fifo wait, while create's process is there
to send it): the agent holds it before ``start``, and answers the workload's
notified syscalls after it. A small agent in a thread of the test (its own
event loop) denies one mkdir with ENOSPC and lets the others run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import needs_root
from .seccomp_util import Agent
from .test_oci_lifecycle import Runtime, new_id, runtime, write_config  # noqa: F401

pytestmark = [pytest.mark.integration, needs_root]

SCRIPT = "mkdir /denied; echo denied=$? > /result; mkdir /allowed; echo allowed=$? >> /result"


@pytest.mark.parametrize("nnp", [True, False], ids=["no_new_privs", "privileged-load"])
def test_listener_path_with_create_and_start(
    runtime: Runtime,  # noqa: F811
    write_config: Callable[..., Path],  # noqa: F811
    tmp_path: Path,
    nnp: bool,
) -> None:
    socket_path = tmp_path / "agent.sock"
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": str(socket_path),
        "listenerMetadata": "oci-agent",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}],
    }
    bundle = write_config("sh", "-c", SCRIPT, root={"path": "rootfs", "readonly": False})
    config = json.loads((bundle / "config.json").read_text())
    config["linux"]["seccomp"] = profile
    config["process"]["noNewPrivileges"] = nnp
    (bundle / "config.json").write_text(json.dumps(config))
    cid = new_id()
    with Agent(socket_path, denied=b"/denied") as agent:
        assert runtime("create", "--bundle", str(bundle), cid) == (0, "", "")
        # The agent has the listener before start, as runc's sends it during create.
        (message,) = agent.messages
        assert message["fds"] == ["seccompFd"]
        assert message["metadata"] == "oci-agent"
        assert message["state"]["id"] == cid
        assert message["state"]["status"] == "creating"
        assert message["pid"] == json.loads(runtime("state", cid)[1])["pid"]
        assert agent.answered == []
        assert runtime("start", cid)[0] == 0
        assert runtime.wait_stopped(cid) == "stopped"
    assert (bundle / "rootfs" / "result").read_text() == "denied=1\nallowed=0\n"
    assert agent.answered == ["/denied", "/allowed"]
    assert (bundle / "rootfs" / "allowed").is_dir()
    assert runtime("delete", cid)[0] == 0
