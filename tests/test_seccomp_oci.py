"""linux.seccomp.listenerPath through ``create``/``start``, asyncinit beside runc 1.1.5.

As runc, the listener reaches the agent during ``create`` (with noNewPrivileges
the filter is loaded before the exec fifo wait, while create's process is there
to send it): the agent holds it before ``start``, and answers the workload's
notified syscalls after it. A small agent in a thread of the test (its own
event loop) denies one mkdir with ENOSPC and lets the others run.
"""

from __future__ import annotations

import errno
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from asyncinit.seccomp import Notifications, receive_process_state

from .conftest import needs_root
from .seccomp_util import mkdir_path
from .test_oci_lifecycle import Runtime, new_id, runtime, write_config  # noqa: F401

pytestmark = [pytest.mark.integration, needs_root]

SCRIPT = "mkdir /denied; echo denied=$? > /result; mkdir /allowed; echo allowed=$? >> /result"


class Agent:
    """A seccomp agent on ``path``: one container, ENOSPC for mkdir of /denied."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.messages: list[dict[str, Any]] = []
        self.answered: list[str] = []
        self.listening = threading.Event()
        self.thread = threading.Thread(target=anyio.run, args=(self._serve,), daemon=True)

    def __enter__(self) -> Agent:
        self.thread.start()
        assert self.listening.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.thread.join(30)
        assert not self.thread.is_alive(), "the agent still waits for notifications"

    async def _serve(self) -> None:
        with anyio.fail_after(60):
            async with await anyio.create_unix_listener(self.path) as listener:
                self.listening.set()
                stream = await listener.accept()
                async with stream:
                    message, fds = await receive_process_state(stream)
                self.messages.append(message)
                async with Notifications(fds[0]) as notifications:
                    async for call in notifications:
                        path = mkdir_path(call)
                        self.answered.append(path.decode())
                        if path == b"/denied":
                            call.respond(errno=errno.ENOSPC)
                        else:
                            call.continue_()


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
    with Agent(socket_path) as agent:
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
