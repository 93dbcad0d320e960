"""podman 4.3 (through conmon) driving the runtime: the cases of issue 15.

Rootful podman with ``--runtime <traced wrapper> --cgroup-manager cgroupfs``,
all state under the module's temp directory, inside the sandbox (private
mounts, network and pids: see _sandbox.py).  The image is ``podman import`` of
the busybox rootfs tarball.  Everything is podman's default, its seccomp
profile included.
"""

from __future__ import annotations

import resource
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.containers import needs_root

from ._runtimes import Runtime
from ._sandbox import COMMAND_TIMEOUT
from .conftest import World, require

pytestmark = [pytest.mark.integration, needs_root, require("podman", "conmon", "nsenter")]

IMAGE = "localhost/busybox"
RUN: tuple[str, ...] = ()  # podman's default: its seccomp profile on
# What a container sees of its memory/pids limit, on cgroup v1 and on v2.
MEMORY_LIMIT = (
    "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max"
)
PIDS_LIMIT = "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max"


def _containers_conf(workdir: Path) -> Path:
    """Ulimits pinned to this process's hard limits: podman's defaults need CAP_SYS_RESOURCE."""
    limits = [
        f"{name}={hard}:{hard}"
        for name, which in (("nofile", resource.RLIMIT_NOFILE), ("nproc", resource.RLIMIT_NPROC))
        for hard in [resource.getrlimit(which)[1]]
    ]
    path = workdir / "containers.conf"
    path.write_text(
        f"[containers]\ndefault_ulimits = {limits!r}\n".replace("'", '"') + "[engine]\n"
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
        "[network]\n"
        f'network_config_dir = "{workdir}/networks"\n'
    )
    return path


class Podman:
    def __init__(self, world: World) -> None:
        self.world = world
        work = world.workdir
        (work / "registries.conf").write_text("")
        self.env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(work),
            "CONTAINERS_CONF": str(_containers_conf(work)),
            "CONTAINERS_REGISTRIES_CONF": str(work / "registries.conf"),
        }
        self.flags = [
            f"--root={work}/root",
            # podman refuses a runroot over 50 characters (a TMPDIR deeper than /tmp
            # makes the work dir's too long); the sandbox's /run is a private tmpfs.
            "--runroot=/run/podman-runroot",
            f"--tmpdir={work}/tmp",
            f"--runtime={world.wrapper}",
            "--cgroup-manager=cgroupfs",
            "--events-backend=file",
            "--storage-driver=overlay",
        ]

    def __call__(
        self,
        *args: str,
        input: str | None = None,
        timeout: float = COMMAND_TIMEOUT,
    ) -> subprocess.CompletedProcess[str]:
        return self.world.sandbox.run(
            ["podman", *self.flags, *args], input=input, timeout=timeout, env=self.env
        )

    def ok(self, *args: str, input: str | None = None) -> str:
        result = self(*args, input=input)
        assert result.returncode == 0, f"podman {' '.join(args)}: {result.stderr}"
        return result.stdout

    def run(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return self("run", "--rm", *RUN, *args, input=input)

    def detached(self, *args: str, command: str = "sleep 1000") -> str:
        name = f"c-{uuid.uuid4().hex[:10]}"
        self.ok("run", "-d", "--name", name, *RUN, *args, IMAGE, "sh", "-c", command)
        return name

    def status(self, name: str) -> str:
        return self.ok("inspect", "--format", "{{.State.Status}}", name).strip()


@pytest.fixture(scope="module")
def podman(
    runtime: Runtime, busybox_tar: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Podman]:
    world = World("podman", runtime, tmp_path_factory.mktemp("podman"))
    engine = Podman(world)
    try:
        engine.ok("import", str(busybox_tar), IMAGE)
        world.mark("setup: podman import")
        yield engine
        engine("rm", "--all", "--force", "--time=0")
        world.mark("teardown: podman rm --all --force")
    finally:
        problems = world.close()
        world.save_trace()
        print(f"podman suite with {runtime.name}: {time.monotonic() - world.started:.1f}s")
    assert not problems, problems


# --- run --rm: output and exit codes -------------------------------------------------


def test_run_output_and_exit_code(podman: Podman) -> None:
    result = podman.run(IMAGE, "echo", "hello from busybox")
    assert (result.returncode, result.stdout) == (0, "hello from busybox\n"), result.stderr


def test_run_exit_code_propagates(podman: Podman) -> None:
    assert podman.run(IMAGE, "sh", "-c", "exit 42").returncode == 42


def test_run_missing_command_is_127(podman: Podman) -> None:
    result = podman.run(IMAGE, "/no/such/command")
    assert result.returncode == 127, result.stderr


def test_run_non_executable_is_126(podman: Podman) -> None:
    result = podman.run(IMAGE, "/etc/passwd")
    assert result.returncode == 126, result.stderr


def test_run_rm_leaves_no_container(podman: Podman) -> None:
    podman.run(IMAGE, "true")
    assert podman.ok("ps", "--all", "--quiet") == ""


def test_run_piped_stdin(podman: Podman) -> None:
    result = podman.run("-i", IMAGE, "sh", "-c", "cat; echo done", input="one\ntwo\n")
    assert result.stdout == "one\ntwo\ndone\n", result.stderr


def test_run_tty(podman: Podman) -> None:
    result = podman.run("-t", IMAGE, "sh", "-c", "tty; test -t 0 && test -t 1 && echo both")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["/dev/pts/0", "both"]


def test_run_env_workdir_hostname(podman: Podman) -> None:
    result = podman.run(
        "-e", "GREETING=hi", "--workdir", "/tmp", "--hostname", "box", IMAGE,
        "sh", "-c", 'echo "$GREETING $(pwd) $(hostname)"',
    )  # fmt: skip
    assert result.stdout == "hi /tmp box\n", result.stderr


def test_run_user(podman: Podman) -> None:
    result = podman.run("--user", "65534:65534", IMAGE, "id")
    assert result.stdout.startswith("uid=65534(nobody) gid=65534(nogroup)"), result.stderr


def test_start_attach(podman: Podman) -> None:
    name = f"c-{uuid.uuid4().hex[:10]}"
    podman.ok("create", "--name", name, *RUN, IMAGE, "echo", "created then started")
    assert podman.status(name) == "created"
    assert podman.ok("start", "--attach", name) == "created then started\n"
    podman.ok("rm", name)


def test_concurrent_runs(podman: Podman) -> None:
    """Four containers started at once: the runtime's state directory is shared."""
    procs = [
        podman.world.sandbox.popen(
            ["podman", *podman.flags, "run", "--rm", *RUN, IMAGE, "sh", "-c", f"echo {i}"],
            env=podman.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        for i in range(4)
    ]
    outputs = [p.communicate(timeout=2 * COMMAND_TIMEOUT) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err for _, err in outputs]
    assert [out for out, _ in outputs] == [f"{i}\n".encode() for i in range(4)]


def test_info_shows_the_runtime_version(podman: Podman) -> None:
    world = podman.world
    assert world.runtime.path is not None
    first_line = subprocess.run(
        [world.runtime.path, "--version"], capture_output=True, text=True, check=True
    ).stdout.splitlines()[0]
    version = podman.ok("info", "--format", "{{.Host.OCIRuntime.Version}}")
    assert first_line in version


# --- resources and security options ------------------------------------------------------


def test_memory_limit(podman: Podman) -> None:
    result = podman.run("--memory", "64m", IMAGE, "sh", "-c", MEMORY_LIMIT)
    assert result.stdout.strip() == str(64 << 20), result.stderr


def test_pids_limit(podman: Podman) -> None:
    result = podman.run("--pids-limit", "10", IMAGE, "sh", "-c", PIDS_LIMIT)
    assert result.stdout.strip() == "10", result.stderr


def test_ulimit(podman: Podman) -> None:
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]  # --ulimit replaces default_ulimits
    result = podman.run(
        "--ulimit", "nofile=100:200", "--ulimit", f"nproc={nproc}:{nproc}", IMAGE,
        "sh", "-c", "ulimit -n; ulimit -Hn",
    )  # fmt: skip
    assert result.stdout.split() == ["100", "200"], result.stderr


def test_read_only(podman: Podman) -> None:
    script = "touch /x 2>/dev/null && echo root-writable; touch /tmp/x && echo tmp-writable"
    result = podman.run("--read-only", IMAGE, "sh", "-c", script)
    assert result.stdout == "tmp-writable\n", result.stderr


def _status_fields(output: str) -> dict[str, str]:
    return dict(line.split(":\t", 1) for line in output.splitlines() if ":\t" in line)


def test_cap_drop_all(podman: Podman) -> None:
    result = podman.run("--cap-drop", "all", IMAGE, "cat", "/proc/self/status")
    fields = _status_fields(result.stdout)
    assert fields["CapEff"] == fields["CapBnd"] == fields["CapPrm"] == "0" * 16, result.stderr


def test_cap_add_with_no_new_privileges(podman: Podman) -> None:
    result = podman.run(
        "--cap-drop", "all", "--cap-add", "NET_BIND_SERVICE",
        "--security-opt", "no-new-privileges", IMAGE, "cat", "/proc/self/status",
    )  # fmt: skip
    fields = _status_fields(result.stdout)
    assert fields["CapEff"] == fields["CapBnd"] == "0000000000000400", result.stderr
    assert fields["NoNewPrivs"] == "1"


def test_network_none(podman: Podman) -> None:
    result = podman.run("--network", "none", IMAGE, "ls", "/sys/class/net")
    assert result.stdout.split() == ["lo"], result.stderr


def test_default_network_has_eth0(podman: Podman) -> None:
    result = podman.run(IMAGE, "ls", "/sys/class/net")
    assert result.stdout.split() == ["eth0", "lo"], result.stderr


def test_sysctl(podman: Podman) -> None:
    result = podman.run(
        "--sysctl", "net.ipv4.ip_forward=1", "--sysctl", "kernel.msgmax=4096", IMAGE,
        "cat", "/proc/sys/net/ipv4/ip_forward", "/proc/sys/kernel/msgmax",
    )  # fmt: skip
    assert result.stdout.split() == ["1", "4096"], result.stderr


def test_bind_volumes(podman: Podman) -> None:
    host = podman.world.workdir / f"vol-{uuid.uuid4().hex[:8]}"
    host.mkdir()
    (host / "from-host").write_text("host says hi\n")
    result = podman.run(
        "-v", f"{host}:/data", "-v", f"{host}:/ro:ro", IMAGE, "sh", "-c",
        "cat /data/from-host; echo container > /data/from-container;"
        " touch /ro/x 2>/dev/null || echo ro-refused",
    )  # fmt: skip
    assert result.stdout == "host says hi\nro-refused\n", result.stderr
    assert (host / "from-container").read_text() == "container\n"


def test_tmpfs(podman: Podman) -> None:
    result = podman.run("--tmpfs", "/scratch:size=1m", IMAGE, "grep", " /scratch ", "/proc/mounts")
    fields = result.stdout.split()
    assert fields[:3] == ["tmpfs", "/scratch", "tmpfs"], result.stderr
    assert "size=1024k" in fields[3]


def test_device(podman: Podman) -> None:
    script = "stat -c '%F %t:%T' /dev/myzero; head -c 3 /dev/myzero | od -An -tx1"
    result = podman.run("--device", "/dev/zero:/dev/myzero", IMAGE, "sh", "-c", script)
    assert result.stdout.split("\n")[:2] == ["character special file 1:5", " 00 00 00"], (
        result.stderr
    )


def test_cgroup_is_the_containers_own(podman: Podman) -> None:
    # Read from outside: on v2 podman gives the container a private cgroup namespace,
    # where its /proc/self/cgroup reads "0::/" (and --cgroupns=host would have runc
    # 1.1.5 mount cgroup2 from the initial one, clearing the host's nsdelegate).
    name = podman.detached()
    pid = podman.ok("inspect", "--format", "{{.State.Pid}}", name).strip()
    cgroup = podman.world.sandbox.run(["cat", f"/proc/{pid}/cgroup"], check=True).stdout
    podman.ok("rm", "--force", "--time=0", name)
    assert "libpod-" in cgroup


# --- a detached container: exec, signals, pause, update, stop, rm, wait -------------------


@pytest.mark.runc_commands("exec")
def test_exec_output_and_exit_code(podman: Podman) -> None:
    name = podman.detached()
    assert podman.ok("exec", name, "echo", "exec'd") == "exec'd\n"
    assert podman("exec", name, "sh", "-c", "exit 7").returncode == 7
    podman.ok("rm", "--force", "--time=0", name)


@pytest.mark.runc_commands("exec")
def test_exec_tty(podman: Podman) -> None:
    name = podman.detached()
    result = podman("exec", "-t", name, "sh", "-c", "tty; test -t 0 && echo tty")
    assert result.stdout.split() == ["/dev/pts/0", "tty"], result.stderr
    podman.ok("rm", "--force", "--time=0", name)


@pytest.mark.runc_commands("exec")
def test_exec_stdin_user_env_workdir(podman: Podman) -> None:
    name = podman.detached()
    result = podman(
        "exec", "-i", "--user", "65534", "-e", "X=y", "--workdir", "/tmp", name,
        "sh", "-c", 'id -u; echo "$X $(pwd)"; cat',
        input="piped\n",
    )  # fmt: skip
    assert result.stdout == "65534\ny /tmp\npiped\n", result.stderr
    podman.ok("rm", "--force", "--time=0", name)


@pytest.mark.runc_commands("exec")
def test_exec_detached(podman: Podman) -> None:
    name = podman.detached()
    podman.ok("exec", "--detach", name, "touch", "/tmp/touched")
    deadline = time.monotonic() + 10
    while podman("exec", name, "test", "-e", "/tmp/touched").returncode != 0:
        assert time.monotonic() < deadline, "exec --detach never ran"
        time.sleep(0.1)
    podman.ok("rm", "--force", "--time=0", name)


@pytest.mark.runc_commands("exec")
def test_kill_usr1(podman: Podman) -> None:
    name = podman.detached(
        command="trap 'echo got-usr1 > /tmp/usr1' USR1; while :; do sleep 0.1; done"
    )
    podman.ok("kill", "--signal", "USR1", name)
    deadline = time.monotonic() + 10
    while (result := podman("exec", name, "cat", "/tmp/usr1")).returncode != 0:
        assert time.monotonic() < deadline, "USR1 never arrived"
        time.sleep(0.1)
    assert result.stdout == "got-usr1\n"
    assert podman.status(name) == "running"
    podman.ok("rm", "--force", "--time=0", name)


@pytest.mark.runc_commands("exec", "pause", "resume")
def test_pause_unpause(podman: Podman) -> None:
    name = podman.detached(command="while :; do date +%s%N > /tmp/tick; sleep 0.05; done")
    podman.ok("pause", name)
    assert podman.status(name) == "paused"
    podman.ok("unpause", name)
    assert podman.status(name) == "running"
    assert podman.ok("exec", name, "echo", "alive") == "alive\n"
    podman.ok("rm", "--force", "--time=0", name)


@pytest.mark.runc_commands("exec", "update")
def test_update_memory(podman: Podman) -> None:
    name = podman.detached("--memory", "64m")
    podman.ok("update", "--memory", "128m", name)
    assert podman.ok("exec", name, "sh", "-c", MEMORY_LIMIT).strip() == str(128 << 20)
    podman.ok("rm", "--force", "--time=0", name)


def test_stop_rm_wait(podman: Podman) -> None:
    """sh as PID 1 ignores SIGTERM: stop escalates to SIGKILL after its timeout."""
    name = podman.detached()
    started = time.monotonic()
    podman.ok("stop", "--time", "1", name)
    assert time.monotonic() - started < 30
    assert podman.status(name) == "exited"
    assert podman.ok("wait", name).strip() == "137"
    podman.ok("rm", name)
    assert podman("container", "exists", name).returncode == 1


def test_stop_with_a_term_handler(podman: Podman) -> None:
    name = podman.detached(command="trap 'exit 0' TERM; while :; do sleep 0.1; done")
    podman.ok("stop", "--time", "20", name)
    assert podman.ok("wait", name).strip() == "0"
    podman.ok("rm", name)


def test_logs_and_wait_of_a_finished_container(podman: Podman) -> None:
    name = podman.detached(command="echo to-the-log; exit 3")
    assert podman.ok("wait", name).strip() == "3"
    assert podman.ok("logs", name) == "to-the-log\n"
    assert podman.status(name) == "exited"
    assert podman("exec", name, "true").returncode != 0  # nothing to exec into
    podman.ok("rm", name)


def test_restart(podman: Podman) -> None:
    name = podman.detached(command="echo started; sleep 1000")
    podman.ok("restart", "--time", "0", name)
    assert podman.status(name) == "running"
    assert podman.ok("logs", name) == "started\nstarted\n"
    podman.ok("rm", "--force", "--time=0", name)


def test_kill_default_then_wait(podman: Podman) -> None:
    name = podman.detached()
    podman.ok("kill", name)
    assert podman.ok("wait", name).strip() == "137"
    podman.ok("rm", name)


def test_rm_force_of_a_running_container(podman: Podman) -> None:
    name = podman.detached()
    podman.ok("rm", "--force", "--time=0", name)
    assert podman("container", "exists", name).returncode == 1


def test_top(podman: Podman) -> None:
    name = podman.detached(command="exec sleep 1000")
    assert "sleep 1000" in podman.ok("top", name)
    podman.ok("rm", "--force", "--time=0", name)
