"""docker 20.10 (dockerd, its managed containerd, the runc v2 shim) driving the runtime.

A private dockerd (``--data-root``/``--exec-root`` in the module's temp
directory, ``--iptables=false --bridge=none``, the runtime added as
``--add-runtime under-test=<traced wrapper>``) runs inside the sandbox; the
image is ``docker import`` of the busybox rootfs tarball.  The client is
Debian's /usr/bin/docker (another docker may come first on PATH).
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.containers import needs_root

from ._runtimes import Runtime
from ._sandbox import COMMAND_TIMEOUT, run_in_pty
from .conftest import World, require

DOCKER = "/usr/bin/docker"
pytestmark = [
    pytest.mark.integration,
    needs_root,
    require("dockerd", "containerd", "containerd-shim-runc-v2", "nsenter", DOCKER),
]

IMAGE = "localhost/busybox"
RUN = ("--runtime=under-test",)  # docker's default seccomp profile on
MEMORY_LIMIT = (
    "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max"
)


class Docker:
    def __init__(self, world: World) -> None:
        self.world = world
        work = world.workdir
        self.host = f"unix://{work}/docker.sock"
        (work / "daemon.json").write_text("{}\n")
        (work / "client").mkdir()
        self.env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(work),
            "DOCKER_CONFIG": str(work / "client"),
        }
        self.log = (work / "dockerd.log").open("wb")
        self.daemon = world.sandbox.popen(
            [
                "dockerd",
                f"--config-file={work}/daemon.json",
                f"--data-root={work}/data",
                f"--exec-root={work}/exec",
                f"--pidfile={work}/dockerd.pid",
                f"--host={self.host}",
                "--iptables=false",
                "--ip6tables=false",
                "--ip-masq=false",
                "--bridge=none",
                "--storage-driver=overlay2",
                f"--add-runtime=under-test={world.wrapper}",
            ],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while self("version").returncode != 0:
            assert self.daemon.poll() is None, (work / "dockerd.log").read_text()
            assert time.monotonic() < deadline, "dockerd did not answer"
            time.sleep(0.2)

    def argv(self, *args: str) -> list[str]:
        return [DOCKER, f"--host={self.host}", *args]

    def __call__(
        self,
        *args: str,
        input: str | None = None,
        timeout: float = COMMAND_TIMEOUT,
    ) -> subprocess.CompletedProcess[str]:
        return self.world.sandbox.run(self.argv(*args), input=input, timeout=timeout, env=self.env)

    def ok(self, *args: str, input: str | None = None) -> str:
        result = self(*args, input=input)
        assert result.returncode == 0, f"docker {' '.join(args)}: {result.stderr}"
        return result.stdout

    def run(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return self("run", "--rm", *RUN, *args, input=input)

    def detached(self, *args: str, command: str = "sleep 1000") -> str:
        name = f"c-{uuid.uuid4().hex[:10]}"
        self.ok("run", "-d", "--name", name, *RUN, *args, IMAGE, "sh", "-c", command)
        return name

    def status(self, name: str) -> str:
        return self.ok("inspect", "--format", "{{.State.Status}}", name).strip()

    def stop_daemon(self) -> None:
        self.daemon.terminate()
        self.daemon.wait(timeout=60)
        self.log.close()


@pytest.fixture(scope="module")
def docker(
    runtime: Runtime, busybox_tar: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Docker]:
    world = World("docker", runtime, tmp_path_factory.mktemp("docker"))
    engine = None
    try:
        engine = Docker(world)
        engine.ok("import", str(busybox_tar), IMAGE)
        world.mark("setup: docker import")
        yield engine
        names = engine.ok("ps", "--all", "--quiet").split()
        if names:
            engine.ok("rm", "--force", *names)
        world.mark("teardown: docker rm --force")
    finally:
        if engine is not None:
            engine.stop_daemon()
        problems = world.close()
        world.save_trace()
        print(f"docker suite with {runtime.name}: {time.monotonic() - world.started:.1f}s")
    assert not problems, problems


def test_run_output_and_exit_code(docker: Docker) -> None:
    result = docker.run(IMAGE, "echo", "hello from docker")
    assert (result.returncode, result.stdout) == (0, "hello from docker\n"), result.stderr


def test_run_exit_code_propagates(docker: Docker) -> None:
    assert docker.run(IMAGE, "sh", "-c", "exit 42").returncode == 42


def test_run_missing_command_is_127(docker: Docker) -> None:
    assert docker.run(IMAGE, "/no/such/command").returncode == 127


def test_run_non_executable_is_126(docker: Docker) -> None:
    assert docker.run(IMAGE, "/etc/passwd").returncode == 126


def test_run_piped_stdin(docker: Docker) -> None:
    result = docker.run("-i", IMAGE, "sh", "-c", "cat; echo done", input="one\ntwo\n")
    assert result.stdout == "one\ntwo\ndone\n", result.stderr


def test_run_tty(docker: Docker) -> None:
    code, output = run_in_pty(
        docker.world.sandbox.command(
            docker.argv("run", "--rm", "-t", *RUN, IMAGE, "sh", "-c", "tty; test -t 0 && echo tty")
        ),
        env=docker.env,
    )
    assert (code, output.split()) == (0, ["/dev/pts/0", "tty"]), output


def test_memory_limit(docker: Docker) -> None:
    result = docker.run("--memory", "64m", IMAGE, "sh", "-c", MEMORY_LIMIT)
    assert result.stdout.strip() == str(64 << 20), result.stderr


@pytest.mark.runc_commands("exec")
def test_detached_exec_stop_rm(docker: Docker) -> None:
    name = docker.detached()
    assert docker.status(name) == "running"
    assert docker.ok("exec", name, "echo", "exec'd") == "exec'd\n"
    assert docker("exec", name, "sh", "-c", "exit 7").returncode == 7
    docker.ok("stop", "--time", "1", name)  # sh as PID 1 ignores TERM: killed after 1 s
    assert docker.status(name) == "exited"
    assert docker.ok("wait", name).strip() == "137"
    docker.ok("rm", name)
    assert docker("inspect", name).returncode != 0


@pytest.mark.runc_commands("exec")
def test_exec_tty(docker: Docker) -> None:
    name = docker.detached()
    code, output = run_in_pty(
        docker.world.sandbox.command(docker.argv("exec", "-t", name, "tty")), env=docker.env
    )
    assert (code, output.split()) == (0, ["/dev/pts/0"]), output
    docker.ok("rm", "--force", name)


@pytest.mark.runc_commands("exec")
def test_kill_usr1(docker: Docker) -> None:
    name = docker.detached(
        command="trap 'echo got-usr1 > /tmp/usr1' USR1; while :; do sleep 0.1; done"
    )
    docker.ok("kill", "--signal", "USR1", name)
    deadline = time.monotonic() + 10
    while (result := docker("exec", name, "cat", "/tmp/usr1")).returncode != 0:
        assert time.monotonic() < deadline, "USR1 never arrived"
        time.sleep(0.1)
    assert result.stdout == "got-usr1\n"
    docker.ok("rm", "--force", name)


@pytest.mark.runc_commands("pause", "resume")
def test_pause_unpause(docker: Docker) -> None:
    name = docker.detached()
    docker.ok("pause", name)
    assert docker.status(name) == "paused"
    docker.ok("unpause", name)
    assert docker.status(name) == "running"
    docker.ok("rm", "--force", name)


@pytest.mark.runc_commands("exec", "update")
def test_update_memory(docker: Docker) -> None:
    name = docker.detached("--memory", "64m")
    docker.ok("update", "--memory", "128m", "--memory-swap", "256m", name)
    assert docker.ok("exec", name, "sh", "-c", MEMORY_LIMIT).strip() == str(128 << 20)
    docker.ok("rm", "--force", name)


def test_logs_and_wait_of_a_finished_container(docker: Docker) -> None:
    name = docker.detached(command="echo to-the-log; exit 3")
    assert docker.ok("wait", name).strip() == "3"
    assert docker.ok("logs", name) == "to-the-log\n"
    docker.ok("rm", name)
