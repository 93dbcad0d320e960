"""Integration: exec and supervise modes, the workload's process, fds and the terminal."""

from __future__ import annotations

import os
import re
import signal
import stat
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from asyncinit import PIPE, InitError, spawn
from asyncinit.parent import _launcher
from tests.support.containers import MakeConfig, needs_root, read_all, run

pytestmark = [pytest.mark.integration, pytest.mark.anyio, needs_root]

ZOMBIES = "cat /proc/[0-9]*/stat | awk '{print $3}' | grep -c Z"


def processes_in_pid_namespace(namespace: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") == namespace:
                    found.append(int(entry))
            except OSError:
                continue
    return found


async def test_supervise_reaps_orphans(make_config: MakeConfig) -> None:
    script = (
        "for i in 1 2 3 4; do (sleep 0.05 &); done; sleep 0.6; "
        f"echo zombies=$({ZOMBIES}); echo pid1=$(cat /proc/1/comm); echo me=$$"
    )
    code, out, err = await run(make_config("sh", "-c", script), init="supervise")
    assert code == 0, err
    lines = dict(line.split("=") for line in out.split())
    assert lines["zombies"] == "0"
    assert lines["pid1"] != "sh"  # the init stayed PID 1
    assert lines["me"] != "1"


async def test_supervise_forwards_sigterm_and_reports_status(make_config: MakeConfig) -> None:
    config = make_config(
        "sh", "-c", "trap 'exit 42' TERM; echo ready; while :; do sleep 0.05; done"
    )
    async with await spawn(config, stdout=PIPE, init="supervise") as container:
        assert container.stdout is not None
        assert (await container.stdout.receive()).strip() == b"ready"
        assert container.workload_pid != container.pid
        with open(f"/proc/{container.workload_pid}/status") as status:
            nspid = next(line for line in status if line.startswith("NSpid:")).split()
        assert nspid[-1] != "1"  # a child of PID 1 inside the container
        container.send_signal(signal.SIGTERM)
        assert await container.wait() == 42
    assert container.workload_returncode == 42


@pytest.mark.parametrize("mode", ["exec", "supervise"])
async def test_workload_killed_by_sigkill(make_config: MakeConfig, mode: str) -> None:
    if mode == "exec":  # PID 1 cannot SIGKILL itself from inside: kill it from the handle
        async with await spawn(make_config("sleep", "60"), init=mode) as container:
            container.kill()
            assert await container.wait() == 137
        return
    code, _, _ = await run(make_config("sh", "-c", "kill -9 $$"), init=mode)
    assert code == 137


async def test_supervise_leaves_no_background_process(make_config: MakeConfig) -> None:
    config = make_config("sh", "-c", "sleep 300 & sleep 300 & echo started")
    async with await spawn(config, stdout=PIPE, init="supervise") as container:
        namespace = os.readlink(f"/proc/{container.pid}/ns/pid")
        assert (await read_all(container.stdout)).strip() == "started"
        assert await container.wait() == 0
    assert processes_in_pid_namespace(namespace) == []


async def test_signal_group_forwarding(make_config: MakeConfig) -> None:
    # The workload's child traps TERM too: only a group-wide signal reaches both.
    script = (
        "(trap 'echo child-got-term; exit 0' TERM; echo child-ready; "
        "while :; do sleep 0.05; done) & "
        "trap 'wait; exit 7' TERM; echo ready; while :; do sleep 0.05; done"
    )
    config = make_config("sh", "-c", script)
    async with await spawn(config, stdout=PIPE, init="supervise", signal_group=True) as container:
        assert container.stdout is not None
        output = b""
        with anyio.fail_after(10):
            while not {b"ready", b"child-ready"} <= set(output.split()):
                output += await container.stdout.receive()
        container.send_signal(signal.SIGTERM)
        output += (await read_all(container.stdout)).encode()
        assert await container.wait() == 7
    assert b"child-got-term" in output


@pytest.fixture
def asyncio_only_fork_server() -> Iterator[None]:
    """A fork server of its own: the shared one grows by trio once any test asked for it."""
    saved = _launcher._server
    _launcher._server = _launcher.ForkServer("asyncio")
    try:
        yield
    finally:
        _launcher._server.close()
        _launcher._server = saved


@pytest.mark.usefixtures("asyncio_only_fork_server")
async def test_supervising_init_memory(make_config: MakeConfig) -> None:
    """What a waiting supervisor holds: RSS counts the pages it shares with the fork server.

    Its own cost is its private memory (USS); PSS splits the shared pages among
    the processes that map them.
    """
    async with await spawn(make_config("sleep", "60"), init="supervise") as container:
        await anyio.sleep(0.2)
        with open(f"/proc/{container.pid}/smaps_rollup") as rollup:
            fields = {
                line.split(":")[0]: int(line.split()[1])
                for line in rollup
                if line.split(":")[0] in ("Rss", "Pss", "Private_Clean", "Private_Dirty")
            }
        container.kill()
    private = fields["Private_Clean"] + fields["Private_Dirty"]
    print(
        f"supervising init: RSS {fields['Rss']} KiB, PSS {fields['Pss']} KiB, private {private} KiB"
    )
    assert private <= 8 * 1024
    assert fields["Rss"] <= 16 * 1024  # issue 8's bound for a waiting supervisor


async def test_process_settings(make_config: MakeConfig) -> None:
    script = (
        "id -u; id -g; id -G; umask; pwd; echo $FOO; cat /proc/self/oom_score_adj; "
        "grep -E '^(Cap|NoNewPrivs)' /proc/self/status; grep 'Max open files' /proc/self/limits; "
        "grep 'Max processes' /proc/self/limits"
    )
    config = make_config("sh", "-c", script)
    process = config["process"]
    process["user"] = {"uid": 1234, "gid": 2345, "additionalGids": [5, 3456], "umask": 0o077}
    process["cwd"] = "/home/app"
    process["env"].append("FOO=bar baz")
    process["oomScoreAdj"] = 321
    process["noNewPrivileges"] = True
    process["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "soft": 77, "hard": 88},
        {"type": "RLIMIT_NPROC", "soft": 500, "hard": 600},
    ]
    caps = ["CAP_NET_BIND_SERVICE", "CAP_KILL"]
    process["capabilities"] = {
        "bounding": [*caps, "CAP_CHOWN"],
        "effective": caps,
        "permitted": caps,
        "inheritable": caps,
        "ambient": caps,
    }
    code, out, err = await run(config)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[:7] == ["1234", "2345", "2345 5 3456", "0077", "/home/app", "bar baz", "321"]
    fields = dict(line.split(":\t") for line in lines[7:13])
    mask = (1 << 10) | (1 << 5)
    assert int(fields["CapInh"], 16) == mask
    assert int(fields["CapPrm"], 16) == mask
    assert int(fields["CapEff"], 16) == mask
    assert int(fields["CapBnd"], 16) == mask | 1
    assert int(fields["CapAmb"], 16) == mask
    assert fields["NoNewPrivs"] == "1"
    assert lines[13].split()[3:5] == ["77", "88"]
    assert lines[14].split()[2:4] == ["500", "600"]


@pytest.mark.parametrize("mode", ["exec", "supervise"])
async def test_passed_fds_and_nothing_else(
    make_config: MakeConfig, mode: str, tmp_path: Path
) -> None:
    read_end, write_end = os.pipe()
    leaked = os.open(tmp_path, os.O_RDONLY)  # inheritable, but not passed: must not leak
    os.set_inheritable(leaked, True)
    try:
        config = make_config(
            "sh", "-c", "echo through-fd-3 >&3; echo $LISTEN_FDS; ls /proc/self/fd"
        )
        code, out, err = await run(config, init=mode, pass_fds=[write_end])
    finally:
        os.close(write_end)
        os.close(leaked)
    with os.fdopen(read_end) as pipe:
        assert pipe.read() == "through-fd-3\n"
    assert code == 0, err
    listen_fds, *fds = out.split()
    assert listen_fds == "1"
    assert sorted(fds) == ["0", "1", "2", "3", "4"]  # 4 is ls's own directory fd


@pytest.mark.parametrize("mode", ["exec", "supervise"])
async def test_terminal(make_config: MakeConfig, mode: str) -> None:
    script = (
        "tty; stty size; echo console=$(stat -c %t:%T /dev/console) "
        "tty=$(stat -c %t:%T $(tty)); read line; echo got:$line"
    )
    config = make_config("sh", "-c", script)
    config["process"]["terminal"] = True
    config["process"]["consoleSize"] = {"height": 33, "width": 111}
    async with await spawn(config, init=mode) as container:
        assert container.pty is not None
        output = b""
        with anyio.fail_after(10):
            # the whole line first: busybox's echo may write its newline separately,
            # and an input echoed before it would join this line
            while not re.search(rb"tty=\S+\r?\n", output):
                output += await container.pty.receive()
            await container.pty.send(b"hello\n")
            while b"got:hello" not in output:
                output += await container.pty.receive()
            assert await container.wait() == 0
    lines = output.decode().splitlines()
    assert lines[0].startswith("/dev/pts/")
    assert lines[1] == "33 111"
    # runc's setupConsole: the pty slave is bound on /dev/console
    console, tty = (part.split("=")[1] for part in lines[2].split())
    assert console == tty


async def test_terminal_on_a_bound_dev_creates_no_console(
    make_config: MakeConfig, tmp_path_factory: pytest.TempPathFactory
) -> None:
    host_dev = tmp_path_factory.mktemp("host-dev")
    (host_dev / "pts").mkdir()
    (host_dev / "ptmx").symlink_to("pts/ptmx")
    os.mknod(host_dev / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))  # for the masks
    config = make_config("sh", "-c", "tty")
    config["process"]["terminal"] = True
    config["mounts"] = [m for m in config["mounts"] if not m["destination"].startswith("/dev")]
    config["mounts"] += [
        {"destination": "/dev", "type": "bind", "source": str(host_dev), "options": ["rbind"]},
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["newinstance", "ptmxmode=0666", "mode=0620"],
        },
    ]
    async with await spawn(config) as container:
        assert container.pty is not None
        with anyio.fail_after(10):
            output = b""
            while b"/dev/pts/" not in output:
                output += await container.pty.receive()
        assert await container.wait() == 0
    assert sorted(p.name for p in host_dev.iterdir()) == ["null", "ptmx", "pts"]


@pytest.mark.parametrize(
    ("uid", "env", "home"),
    [(0, [], "/root"), (4242, [], "/"), (0, ["HOME=/elsewhere"], "/elsewhere")],
)
async def test_home_as_runc_sets_it(
    make_config: MakeConfig, uid: int, env: list[str], home: str
) -> None:
    """HOME, when process.env lacks it, comes from the container's /etc/passwd."""
    config = make_config("sh", "-c", "echo $HOME")
    config["process"]["user"] = {"uid": uid, "gid": uid}
    config["process"]["env"] += env
    code, out, err = await run(config)
    assert code == 0, err
    assert out.strip() == home


@pytest.mark.parametrize("ptmx", ["/proc/sys/kernel/hostname", "../../etc/passwd", "/dev/null"])
async def test_terminal_refuses_a_hostile_ptmx(
    make_config: MakeConfig, tmp_path_factory: pytest.TempPathFactory, ptmx: str
) -> None:
    """An image /dev (bound) whose ptmx is not the multiplexer: refused, nothing handed out.

    CVE-2025-52565's family: a runtime that trusted the image's /dev/ptmx (or a
    /dev/pts/N path) would give the parent, and /dev/console, whatever it points to.
    """
    host_dev = tmp_path_factory.mktemp("hostile-dev")
    os.mknod(host_dev / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    (host_dev / "ptmx").symlink_to(ptmx)
    config = make_config("true")
    config["process"]["terminal"] = True
    config["mounts"] = [m for m in config["mounts"] if not m["destination"].startswith("/dev")]
    config["mounts"].append(
        {"destination": "/dev", "type": "bind", "source": str(host_dev), "options": ["rbind"]}
    )
    with pytest.raises(InitError) as caught:
        await spawn(config)
    assert caught.value.field == "process.terminal"
    assert caught.value.path == "/dev/ptmx"
    assert sorted(p.name for p in host_dev.iterdir()) == ["null", "ptmx"]


async def test_fresh_session_keyring(make_config: MakeConfig) -> None:
    """As runc: a session keyring of the container's own, not the caller's."""
    config = make_config("sh", "-c", "grep ' _ses' /proc/keys")
    config["linux"]["maskedPaths"].remove("/proc/keys")
    code, out, err = await run(config, container_id="keyring-test")
    assert code == 0, err
    # other containers' session keyrings, root's too, show while anything holds them
    (line,) = [line for line in out.splitlines() if "_ses.keyring-test:" in line]
    assert line.split()[-2:] == ["_ses.keyring-test:", "empty"]
    assert line.split()[4] == "3f1b0000"  # runc's permissions: user may search it


def test_a_supervisor_drops_only_read_only_file_pages() -> None:
    """The ranges noted for a supervising init: unwritten library mappings, code among them."""
    from asyncinit.init import _supervise

    _supervise.note_clean_file_mappings()
    noted = list(_supervise._clean_file_mappings)
    with open("/proc/self/maps") as maps:
        mappings = {}
        for line in maps:
            fields = line.split(maxsplit=5)
            start, end = fields[0].split("-")
            mappings[int(start, 16), int(end, 16)] = (fields[1], fields[-1].strip())
    assert noted
    for noted_range in noted:
        perms, path = mappings[noted_range]
        assert perms[1] == "-", (perms, path)
        assert path.startswith("/"), (perms, path)
    assert any(mappings[r][0][2] == "x" for r in noted)  # the interpreter's code
