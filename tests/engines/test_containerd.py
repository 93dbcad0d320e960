"""containerd 1.6 and its runc v2 shim driving the runtime (``ctr run --runc-binary``).

A private containerd (root, state and socket in the module's temp directory,
the CRI plugin off) runs inside the sandbox; the image is an OCI archive of
the busybox rootfs, imported with ``ctr images import``.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.containers import needs_root

from ._image import oci_archive
from ._runtimes import Runtime
from ._sandbox import COMMAND_TIMEOUT, run_in_pty
from .conftest import World, require

pytestmark = [
    pytest.mark.integration,
    needs_root,
    require("containerd", "ctr", "containerd-shim-runc-v2", "nsenter"),
]

IMAGE = "localhost/busybox:latest"


class Containerd:
    def __init__(self, world: World) -> None:
        self.world = world
        work = world.workdir
        self.socket = work / "containerd.sock"
        config = work / "containerd.toml"
        config.write_text(
            "version = 2\n"
            f'root = "{work}/root"\n'
            f'state = "{work}/state"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            "[grpc]\n"
            f'  address = "{self.socket}"\n'
        )
        self.log = (work / "containerd.log").open("wb")
        self.daemon = world.sandbox.popen(
            ["containerd", "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while self("version").returncode != 0:
            assert self.daemon.poll() is None, (work / "containerd.log").read_text()
            assert time.monotonic() < deadline, "containerd did not answer"
            time.sleep(0.1)

    def argv(self, *args: str) -> list[str]:
        return ["ctr", "--address", str(self.socket), "--namespace", "engines", *args]

    def __call__(
        self,
        *args: str,
        input: str | None = None,
        timeout: float = COMMAND_TIMEOUT,
    ) -> subprocess.CompletedProcess[str]:
        return self.world.sandbox.run(self.argv(*args), input=input, timeout=timeout)

    def ok(self, *args: str, input: str | None = None) -> str:
        result = self(*args, input=input)
        assert result.returncode == 0, f"ctr {' '.join(args)}: {result.stderr}"
        return result.stdout

    def run(
        self,
        *command: str,
        options: tuple[str, ...] = (),
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """``ctr run --rm`` of a fresh container."""
        name = f"c-{uuid.uuid4().hex[:10]}"
        return self(
            "run", "--rm", f"--runc-binary={self.world.wrapper}", *options, IMAGE, name, *command,
            input=input,
        )  # fmt: skip

    def detached(self, command: str = "sleep 1000", *options: str) -> str:
        name = f"c-{uuid.uuid4().hex[:10]}"
        self.ok(
            "run", "--detach", "--null-io", f"--runc-binary={self.world.wrapper}", *options,
            IMAGE, name, "sh", "-c", command,
        )  # fmt: skip
        return name

    def status(self, name: str) -> str:
        for line in self.ok("task", "ls").splitlines()[1:]:
            task, _, status = line.split()
            if task == name:
                return status
        return "none"

    def remove(self, name: str) -> None:
        """Kill, wait until stopped, delete the task and the container."""
        self("task", "kill", "--signal", "SIGKILL", name)
        deadline = time.monotonic() + 30
        while self.status(name) not in ("STOPPED", "none"):
            assert time.monotonic() < deadline, f"{name} did not stop"
            time.sleep(0.05)
        self("task", "delete", name)
        self("container", "delete", name)

    def remove_all(self) -> None:
        for line in self.ok("task", "ls").splitlines()[1:]:
            self.remove(line.split()[0])
        for name in self.ok("container", "ls", "--quiet").split():
            self("container", "delete", name)

    def stop(self) -> None:
        self.daemon.terminate()
        self.daemon.wait(timeout=30)
        self.log.close()


@pytest.fixture(scope="module")
def ctr(
    runtime: Runtime, busybox_tar: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Containerd]:
    world = World("containerd", runtime, tmp_path_factory.mktemp("containerd"))
    engine = None
    try:
        engine = Containerd(world)
        archive = world.workdir / "busybox-oci.tar"
        oci_archive(busybox_tar, archive, IMAGE, ["sh"])
        engine.ok("images", "import", str(archive))
        world.mark("setup: ctr images import")
        yield engine
        engine.remove_all()
        world.mark("teardown: kill and delete every task and container")
    finally:
        if engine is not None:
            engine.stop()
        problems = world.close()
        world.save_trace()
        print(f"containerd suite with {runtime.name}: {time.monotonic() - world.started:.1f}s")
    assert not problems, problems


def test_run_output_and_exit_code(ctr: Containerd) -> None:
    result = ctr.run("echo", "hello from containerd")
    assert (result.returncode, result.stdout) == (0, "hello from containerd\n"), result.stderr


def test_run_exit_code_propagates(ctr: Containerd) -> None:
    assert ctr.run("sh", "-c", "exit 42").returncode == 42


def test_run_piped_stdin(ctr: Containerd) -> None:
    """ctr never closes the task's stdin at EOF: read a known number of lines."""
    result = ctr.run("sh", "-c", "head -n 2; echo done", input="one\ntwo\n")
    assert result.stdout == "one\ntwo\ndone\n", result.stderr


def test_run_tty(ctr: Containerd) -> None:
    name = f"c-{uuid.uuid4().hex[:10]}"
    code, output = run_in_pty(
        ctr.world.sandbox.command(
            ctr.argv(
                "run", "--rm", "--tty", f"--runc-binary={ctr.world.wrapper}", IMAGE, name,
                "sh", "-c", "tty; test -t 0 && echo tty",
            )
        )
    )  # fmt: skip
    assert code == 0, output
    assert output.split() == ["/dev/pts/0", "tty"]


def host_memory_limit(cgroup: str) -> str:
    """The memory limit of ``cgroup`` as the host sees it (ctr mounts no cgroupfs inside)."""
    for path in (
        f"/sys/fs/cgroup/memory{cgroup}/memory.limit_in_bytes",
        f"/sys/fs/cgroup{cgroup}/memory.max",
    ):
        if os.path.exists(path):
            return Path(path).read_text().strip()
    raise AssertionError(f"no memory cgroup {cgroup}")


@pytest.mark.runc_commands("exec")
def test_memory_limit(ctr: Containerd) -> None:
    name = ctr.detached("sleep 1000", f"--memory-limit={64 << 20}")
    cgroup = ctr.ok("task", "exec", "--exec-id", "m", name, "cat", "/proc/self/cgroup")
    lines = cgroup.splitlines()
    path = next(x for x in lines if ":memory:" in x or x.startswith("0::")).split(":", 2)[2]
    assert host_memory_limit(path) == str(64 << 20)
    ctr.remove(name)


@pytest.mark.runc_commands("exec")
def test_exec_output_and_exit_code(ctr: Containerd) -> None:
    name = ctr.detached()
    assert ctr.ok("task", "exec", "--exec-id", "e1", name, "echo", "exec'd") == "exec'd\n"
    result = ctr("task", "exec", "--exec-id", "e2", name, "sh", "-c", "exit 7")
    assert result.returncode == 7, result.stderr
    ctr.remove(name)


@pytest.mark.runc_commands("exec")
def test_exec_tty(ctr: Containerd) -> None:
    name = ctr.detached()
    code, output = run_in_pty(
        ctr.world.sandbox.command(
            ctr.argv("task", "exec", "--tty", "--exec-id", "t1", name, "sh", "-c", "tty")
        )
    )
    # ctr may add "resize pty ... cannot resize a stopped container": its own race
    assert (code, output.split()[:1]) == (0, ["/dev/pts/0"]), output
    ctr.remove(name)


@pytest.mark.runc_commands("exec")
def test_kill_usr1(ctr: Containerd) -> None:
    name = ctr.detached("trap 'echo got-usr1 > /tmp/usr1' USR1; while :; do sleep 0.1; done")
    ctr.ok("task", "kill", "--signal", "SIGUSR1", name)
    deadline = time.monotonic() + 10
    while (result := ctr("task", "exec", "--exec-id", "r", name, "cat", "/tmp/usr1")).returncode:
        assert time.monotonic() < deadline, "USR1 never arrived"
        time.sleep(0.1)
    assert result.stdout == "got-usr1\n"
    assert ctr.status(name) == "RUNNING"
    ctr.remove(name)


@pytest.mark.runc_commands("pause", "resume")
def test_pause_resume(ctr: Containerd) -> None:
    name = ctr.detached()
    ctr.ok("task", "pause", name)
    assert ctr.status(name) == "PAUSED"
    ctr.ok("task", "resume", name)
    assert ctr.status(name) == "RUNNING"
    ctr.remove(name)


@pytest.mark.runc_commands("ps")
def test_ps_lists_the_init(ctr: Containerd) -> None:
    name = ctr.detached()
    pids = [line.split()[0] for line in ctr.ok("task", "ps", name).splitlines()[1:]]
    assert len(pids) == 1
    assert pids[0].isdigit()
    ctr.remove(name)


def test_kill_term_then_delete(ctr: Containerd) -> None:
    """A TERM handler runs; the task stops with its code; delete removes it."""
    name = ctr.detached("trap 'exit 3' TERM; while :; do sleep 0.1; done")
    ctr.ok("task", "kill", name)
    deadline = time.monotonic() + 10
    while ctr.status(name) != "STOPPED":
        assert time.monotonic() < deadline, "the task did not stop"
        time.sleep(0.05)
    ctr.ok("task", "delete", name)
    assert ctr.status(name) == "none"
    ctr.ok("container", "delete", name)


def test_delete_of_a_running_task_is_refused_then_forced(ctr: Containerd) -> None:
    name = ctr.detached()
    assert ctr("task", "delete", name).returncode != 0
    ctr.ok("task", "delete", "--force", name)
    assert ctr.status(name) == "none"
    ctr.ok("container", "delete", name)
