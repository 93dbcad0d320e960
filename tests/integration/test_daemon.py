"""`asyncinit daemon` and the lean client: a real daemon, real containers, the real CLI.

Each integration test starts its own daemon on a temporary socket (the
``ASYNCINIT_SOCKET`` environment variable) and runs ``python -m asyncinit run``
in subprocesses, as a user would.  A run proves it went through the daemon by
what it did *not* import (``-X importtime``: no anyio), or by succeeding under
``python -S`` where the in-process path cannot import anyio at all.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import anyio
import anyio.to_thread
import pytest
from hypothesis import given
from hypothesis import strategies as st

from asyncinit import _client, _daemon, _peer, cli
from asyncinit._daemon import (
    MAX_WAITING_PER_PEER,
    request_refusal,
    signal_action,
    unsafe_directory,
)
from asyncinit._peer import Credentials, own_credentials, peer_credentials
from asyncinit._peer import refusal as peer_refusal
from asyncinit._version import VERSION
from asyncinit.oci._commands import DEFAULT_ROOT
from asyncinit.sync_pipe import Channel, Message
from tests.support import CHECKOUT
from tests.support.configs import base_config
from tests.support.containers import needs_root
from tests.support.hooks import HANG, RECORD, PidNamespace, gone, hook, script, state_of, wait_for

REPO = CHECKOUT
ASYNCINIT = [sys.executable, "-m", "asyncinit"]
#: What a CLI served by the daemon must never import (the point of the daemon).
HEAVY = ("anyio", "asyncio", "trio", "cattrs", "attrs", "asyncinit.parent", "asyncinit.config")


def integration(test: Any) -> Any:
    """Starts real daemons and containers: root, and the host's mount table checked."""
    return needs_root(pytest.mark.integration(test))


# --- unit tests: the pure message logic -------------------------------------------


def good_request(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {**_client.run_request("/b", "ctr"), **changes}
    return fields


def test_a_well_formed_request_is_served() -> None:
    assert request_refusal("run", good_request(), 3) is None
    assert request_refusal("run", good_request(init="supervise", signal_group=True), 3) is None
    assert request_refusal("run", good_request(console_size=[40, 120]), 3) is None


@pytest.mark.parametrize(
    ("kind", "changes", "fds", "why"),
    [
        ("run", {"version": "0.0.0-other"}, 3, "version mismatch"),
        ("exec", {}, 3, "unknown request"),
        ("run", {}, 2, "fds 0, 1 and 2"),
        ("run", {"bundle": "relative/bundle"}, 3, "bundle"),
        ("run", {"backend": "tokio"}, 3, "backend"),
        ("run", {"id": 5}, 3, "id"),
        ("run", {"no_pivot": "yes"}, 3, "no_pivot"),
        ("run", {"console_size": [0, 80]}, 3, "console_size"),
        ("run", {"console_size": [24]}, 3, "console_size"),
        ("run", {"console_size": "24x80"}, 3, "console_size"),
    ],
)
def test_a_bad_request_is_refused(kind: str, changes: dict[str, Any], fds: int, why: str) -> None:
    refusal = request_refusal(kind, good_request(**changes), fds)
    assert refusal is not None
    assert why in refusal


ROOT = Credentials(
    uid=0,
    user_ns=(4, 4026531837),
    cap_effective=(1 << 41) - 1,
    cap_bounding=(1 << 41) - 1,
    no_new_privs=False,
    seccomp=(0, 0),
    apparmor=None,
)


@pytest.mark.parametrize(
    ("peer", "why"),
    [
        (ROOT._replace(uid=65534), "uid 65534 may not use this daemon (it serves uid 0 only)"),
        (ROOT._replace(user_ns=(4, 1)), "the client is in another user namespace than the daemon"),
        (ROOT._replace(cap_effective=0), "the client lacks CAP_SYS_ADMIN, CAP_CHOWN, "),
        (
            ROOT._replace(cap_bounding=ROOT.cap_bounding & ~(1 << 12 | 1 << 16)),
            "the client's bounding set lacks CAP_NET_ADMIN, CAP_SYS_MODULE",
        ),
        (ROOT._replace(no_new_privs=True), "the client runs with no_new_privs"),
        (ROOT._replace(seccomp=(2, 1)), "the client runs under 1 seccomp filters (the daemon 0)"),
        (
            ROOT._replace(apparmor="docker-default (enforce)"),
            "the client is confined by AppArmor (docker-default (enforce))",
        ),
    ],
)
def test_a_peer_with_less_than_the_daemon_is_refused(peer: Credentials, why: str) -> None:
    refusal = peer_refusal(peer, ROOT)
    assert refusal is not None
    assert refusal.startswith(why)
    assert "\n" not in refusal


def test_a_peer_with_what_the_daemon_has_is_served() -> None:
    assert peer_refusal(ROOT, ROOT) is None
    # More than the daemon is fine; so is the confinement the daemon has itself.
    confined = ROOT._replace(cap_bounding=1, seccomp=(2, 3), apparmor="asyncinitd (enforce)")
    assert peer_refusal(ROOT._replace(seccomp=(2, 3)), confined) is None
    assert peer_refusal(confined._replace(cap_bounding=7), confined) is None
    assert peer_refusal(ROOT._replace(apparmor="unconfined"), ROOT) is None
    assert peer_refusal(ROOT._replace(apparmor="p (complain)"), ROOT) is None


def test_our_own_credentials_are_read_from_proc() -> None:
    own = own_credentials()
    assert own.uid == os.geteuid()
    assert own.user_ns[1] == os.stat("/proc/self/ns/user").st_ino
    with open("/proc/self/status") as f:
        status = dict(line.split(":", 1) for line in f)
    assert own.cap_effective == int(status["CapEff"], 16)
    assert peer_refusal(own, own) is None


@pytest.fixture(params=["SO_PEERPIDFD", "pidfd_open"])
def pidfd_source(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways to pin the peer: SO_PEERPIDFD (Linux 6.5), else pidfd_open of its pid."""
    if request.param == "pidfd_open":
        monkeypatch.setattr(_peer, "SO_PEERPIDFD", 0x7FFF)  # ENOPROTOOPT, as before 6.5
    return str(request.param)


def test_the_peer_of_a_socket_is_pinned_by_a_pidfd(pidfd_source: str) -> None:
    """Both ends of a socketpair are us: the same credentials as ours."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with ours, theirs:
        assert peer_credentials(ours) == own_credentials()


def test_a_peer_that_exited_is_not_judged_by_its_pid(pidfd_source: str) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind("\0" + tempfile.mktemp(prefix="aid-"))  # abstract: nothing to clean up
    listener.listen()
    with listener:
        pid = os.fork()
        if pid == 0:
            child = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            child.connect(listener.getsockname())
            os._exit(0)
        os.waitpid(pid, 0)  # reaped: its pid is free for anybody
        conn, _ = listener.accept()
        with conn, pytest.raises(_peer.PeerUnknown, match="the client exited"):
            peer_credentials(conn)


@pytest.mark.parametrize(
    ("layout", "why"),
    [
        ({"d": 0o700}, None),
        ({"d": 0o755}, None),
        ({"d": 0o1777, "d/s": 0o700}, None),  # a sticky parent, as /tmp
        ({"d": 0o777}, "d is writable by others (mode 0777)"),
        ({"d": 0o770}, "d is writable by others (mode 0770)"),
        ({"d": 0o1777}, "d is writable by others (mode 1777)"),  # not for the socket's own
        ({"d": 0o777, "d/s": 0o700}, "d is writable by others (mode 0777)"),
        ({"d": (0o700, 65534)}, "d belongs to uid 65534"),
        ({"d": (0o755, 65534), "d/s": 0o700}, "d belongs to uid 65534"),
        ({"d": 0o1777, "d/t": 0o700, "d/s": ("->t", 65534)}, "d/s belongs to uid 65534"),
        ({"d": 0o755, "d/t": 0o700, "d/s": ("->t", 0)}, None),
        ({"d": 0o755, "d/t": 0o777, "d/s": ("->t", 0)}, "d/t is writable by others"),
    ],
)
def test_the_socket_directory_must_be_ours_alone(
    socket_dir: Path, layout: dict[str, Any], why: str | None
) -> None:
    """Every directory on the way to the socket: root's or ours, writable by nobody else."""
    for name, spec in layout.items():
        mode, owner = spec if isinstance(spec, tuple) else (spec, 0)
        path = socket_dir / name
        if isinstance(mode, str):
            path.symlink_to(mode[2:])
        else:
            path.mkdir()
        os.lchown(path, owner, owner)
        if not isinstance(mode, str):
            path.chmod(mode)
    leaf = str(socket_dir / list(layout)[-1])
    problem = unsafe_directory(leaf, 0)
    if why is None:
        assert problem is None
    else:
        assert problem is not None
        assert problem.startswith(f"{socket_dir}/{why}")


@pytest.mark.anyio
async def test_a_client_that_stops_reading_is_given_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its connection's task would otherwise wait for room for ever, holding its fd."""
    monkeypatch.setattr(_daemon, "SEND_TIMEOUT", 0.2)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with theirs:
        session = _daemon._Connection(Channel(ours), _client.run_request("/b", "ctr"), ())
        for n in range(10000):
            await session._send(Message("warning", {"text": f"warning {n}"}))
            if session.client_gone:
                break
        assert session.client_gone
        assert n > 10  # the socket's queue filled first
        ours.close()


@pytest.mark.anyio
async def test_a_bug_serving_one_client_ends_only_that_connection(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """The serve loop outlives any exception of a connection's task (it ended the daemon)."""
    served: list[int] = []

    async def buggy_request(channel: Channel, gate: object) -> None:
        served.append(len(served))
        if len(served) == 1:
            raise RuntimeError("boom")
        await _daemon._refuse(channel, f"client {len(served)} served")

    def client() -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as conn:
            conn.settimeout(10)
            conn.connect(listener.getsockname())
            return conn.recv(4096).decode()

    monkeypatch.setattr(_daemon, "_request", buggy_request)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind("\0" + tempfile.mktemp(prefix="aid-"))
    listener.listen()
    listener.setblocking(False)
    with listener:
        async with anyio.create_task_group() as tg:
            gate = _daemon._Gate(own_credentials())
            tg.start_soon(_daemon._serve, listener, gate, lambda: None)
            assert await anyio.to_thread.run_sync(client) == ""  # closed: its task failed
            second = json.loads(await anyio.to_thread.run_sync(client))
            tg.cancel_scope.cancel()
    assert second == {"type": "refused", "reason": "client 2 served"}
    assert capfd.readouterr().err == (
        "asyncinit: internal error serving a client: RuntimeError: boom\n"
    )


def test_signals_follow_the_in_process_cli() -> None:
    # Before PID 1 exists: SIGINT cancels the start, the others wait for it.
    assert signal_action(False, signal.SIGINT) == "cancel"
    assert signal_action(False, signal.SIGTERM) == "queue"
    assert signal_action(True, signal.SIGINT) == "forward"
    assert signal_action(True, signal.SIGUSR1) == "forward"
    # Not something `asyncinit run` forwards: a client cannot make us send SIGKILL.
    assert signal_action(True, signal.SIGKILL) == "ignore"
    assert signal_action(False, signal.SIGWINCH) == "ignore"


def test_the_version_sent_is_the_package_version() -> None:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["version"] == VERSION
    assert _client.run_request(".", "x")["version"] == VERSION


def test_the_bundle_is_sent_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert _client.run_request("b", "x")["bundle"] == str(tmp_path / "b")


def test_socket_path_and_daemon_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASYNCINIT_SOCKET", raising=False)
    monkeypatch.delenv("ASYNCINIT_DAEMON", raising=False)
    assert _client.socket_path() == "/run/asyncinit-daemon/asyncinit.sock"
    # not under the runc state root (/run/asyncinit), where it would be a container id
    assert not _client.socket_path().startswith(DEFAULT_ROOT + "/")
    assert _client.socket_path("/x.sock") == "/x.sock"
    monkeypatch.setenv("ASYNCINIT_SOCKET", "/env.sock")
    assert _client.socket_path() == "/env.sock"
    assert _client.socket_path("/x.sock") == "/x.sock"
    assert _client.daemon_allowed(no_daemon=False)
    assert not _client.daemon_allowed(no_daemon=True)
    monkeypatch.setenv("ASYNCINIT_DAEMON", "0")
    assert not _client.daemon_allowed(no_daemon=False)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip


@given(st.text(), st.dictionaries(st.text(), json_values, max_size=5))
def test_the_client_codec_agrees_with_json(kind: str, fields: dict[str, Any]) -> None:
    """The client's own JSON (no json/re import) reads what json writes, and back."""
    message = {**fields, "type": kind}
    assert _client.decode(json.dumps(message).encode()) == message
    assert _client.decode(json.dumps(message, indent=1, ensure_ascii=False).encode()) == message
    assert json.loads(_client.encode(message)) == message


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"[]",
        b'{"type": 1}',
        b'{"type": "x"',
        b'{"type": "x"} x',
        b"{'type': 'x'}",
        b"[" * 150000,  # RecursionError before
        b'{"type": "x", "a": ' + b"[" * 150000,
        b'{"type": "x", "a": NaN}',
        b'{"type": "\xff"}',
    ],
)
def test_the_client_codec_refuses_garbage(raw: bytes) -> None:
    with pytest.raises(ValueError, match=r"."):
        _client.decode(raw)


def test_the_client_codec_refuses_garbage_without_json_imported() -> None:
    """As the lean client runs: no json module, where the bare C scanner raised SystemError."""
    code = (
        "import sys\n"
        "from asyncinit._client import decode\n"
        "assert 'json' not in sys.modules\n"
        'for raw in (b\'{"type": "a",}\', b\'{"type": "a\\x01"}\', b\'[1, 2\'):\n'
        "    try:\n"
        "        decode(raw)\n"
        "    except ValueError as exc:\n"
        "        print(type(exc).__name__)\n"
    )
    checkout = str(CHECKOUT)
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", f"import sys; sys.path.insert(0, {checkout!r})\n{code}"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert (result.stdout.split(), result.stderr) == (["ValueError"] * 3, "")


@pytest.mark.parametrize(
    "message",
    [
        {"type": "exit", "code": "7"},
        {"type": "exit", "code": 7.0},
        {"type": "exit", "code": True},
        {"type": "exit", "code": 256},
        {"type": "exit", "code": -1},
        {"type": "exit"},
        {"type": "error", "text": "asyncinit: error: x", "code": [1]},
    ],
)
def test_the_client_takes_only_an_exit_code_it_can_exit_with(
    message: dict[str, Any], capfd: pytest.CaptureFixture[str]
) -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with ours, theirs:
        theirs.send(json.dumps(message).encode())
        assert _client._Session(ours)._message() == 1
    assert "asyncinit: error: malformed exit code from the daemon" in capfd.readouterr().err


def test_the_client_reads_a_refusal_behind_a_reset() -> None:
    """The daemon answered and closed with our datagram unread: ECONNRESET, then the answer."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind("\0" + tempfile.mktemp(prefix="aid-"))  # abstract: nothing to clean up
    listener.listen()
    with listener:
        client = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        client.connect(listener.getsockname())
        server, _ = listener.accept()
        client.send(b'{"type": "signal", "signo": 15}')  # left unread
        server.send(b'{"type": "refused", "reason": "no"}')
        server.close()
        with client, pytest.raises(_client.Refused, match="the daemon declined: no"):
            _client._Session(client)._message()


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "x"],
        ["--debug", "run", "x"],
        ["run", "-b", "/bundle", "x"],
        ["run", "--bundle", "b", "--backend", "trio", "x"],
        ["run", "--bundle=b", "--backend=trio", "x"],
        ["run", "--init", "--signal-group", "--no-pivot", "--no-daemon", "x"],
        ["run", "x", "-b", "b"],
        ["run", ""],
    ],
)
def test_quick_run_parses_as_argparse_does(argv: list[str]) -> None:
    quick = cli._quick_run(argv)
    assert quick is not None
    full = cli._parser().parse_args(argv)
    assert vars(full) == {name: getattr(quick, name) for name in vars(full)}


@pytest.mark.parametrize(
    "argv",
    [
        ["run"],
        ["run", "-h"],
        ["run", "--bun", "b", "x"],  # an abbreviation: argparse's business
        ["run", "-bb", "x"],
        ["run", "-b", "-x", "x"],
        ["run", "--backend", "tokio", "x"],
        ["run", "x", "y"],
        ["run", "--", "x"],
        ["spec"],
        ["--debug", "spec"],
        [],
    ],
)
def test_quick_run_leaves_the_rest_to_argparse(argv: list[str]) -> None:
    assert cli._quick_run(argv) is None


# --- integration: a real daemon ---------------------------------------------------


class Daemon:
    """An `asyncinit daemon` subprocess on a socket of its own."""

    def __init__(self, path: str, wrapper: tuple[str, ...] = ()) -> None:
        self.path = path
        self.output = ("", "")  # its stdout and stderr, once stopped
        self.process = subprocess.Popen(
            [*wrapper, *ASYNCINIT, "daemon", "--socket", path],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], 30)
        line = self.process.stdout.readline() if ready else ""
        if "listening" not in line:
            self.stop()
            pytest.fail(f"the daemon did not start: {line!r} {self.process.communicate()}")

    def stop(self) -> int:
        if self.process.returncode is not None:
            return self.process.returncode
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.output = self.process.communicate()
        return self.process.wait()  # already reaped by communicate(): its exit code


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A short directory for sockets (a unix socket path is at most 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="aid-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path)


@pytest.fixture
def daemon(socket_dir: Path) -> Iterator[Daemon]:
    running = Daemon(str(socket_dir / "run" / "d.sock"))
    try:
        yield running
    finally:
        assert running.stop() == 0, "the daemon did not exit cleanly"
        assert not os.path.lexists(running.path), "the daemon left its socket behind"


def cli_env(socket_path: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ, ASYNCINIT_SOCKET=socket_path, **extra)
    env.pop("ASYNCINIT_DAEMON", None)
    return env


def lean_client(
    socket_path: str, bundle: Path, container_id: str, **popen: Any
) -> subprocess.Popen[str]:
    """`python -S -m asyncinit run` against the daemon at ``socket_path``: without site,
    only the daemon path can work (in-process would need site-packages); text pipes
    unless ``popen`` says otherwise."""
    options: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    options.update(popen)
    return subprocess.Popen(
        [sys.executable, "-S", "-m", "asyncinit", "run", "-b", str(bundle), container_id],
        cwd=REPO,
        env={**cli_env(socket_path), "PYTHONPATH": str(REPO)},
        **options,
    )


class Run:
    """A finished CLI run: exit code, stdout, stderr without -X importtime's lines."""

    def __init__(self, done: subprocess.CompletedProcess[str]) -> None:
        self.returncode = done.returncode
        self.stdout = done.stdout
        lines = done.stderr.splitlines(keepends=True)
        self.stderr = "".join(line for line in lines if not line.startswith("import time:"))
        self.imported = {
            line.rsplit("|", 1)[1].strip() for line in lines if line.startswith("import time:")
        }

    def heavy_imports(self) -> list[str]:
        return sorted(
            name for name in self.imported if any(name.split(".")[0] == h or
            name == h or name.startswith(h + ".") for h in HEAVY)
        )  # fmt: skip

    @property
    def result(self) -> tuple[int, str, str]:
        return self.returncode, self.stdout, self.stderr


def run_cli(socket_path: str, *args: str, no_site: bool = False, timeout: float = 60) -> Run:
    """``python [-S] -X importtime -m asyncinit ARGS`` (-S: only the repo on the path)."""
    python = [sys.executable, *(["-S"] if no_site else []), "-X", "importtime"]
    env = cli_env(socket_path, **({"PYTHONPATH": str(REPO)} if no_site else {}))
    done = subprocess.run(
        [*python, "-m", "asyncinit", *args],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Run(done)


def write_config(bundle: Path, *args: str, **changes: Any) -> dict[str, Any]:
    config = base_config(*args)
    config.update(changes)
    (bundle / "config.json").write_text(json.dumps(config))
    return config


@integration
@pytest.mark.parametrize(
    ("case", "args", "changes"),
    [
        ("exit code and both streams", ["sh", "-c", "echo out; echo err >&2; exit 7"], {}),
        ("missing binary in a shell", ["sh", "-c", "/no/such"], {}),
        ("missing binary", ["/no/such"], {}),
        ("killed by a signal", ["sh", "-c", "kill -USR1 $$; sleep 5"], {"init": "supervise"}),
        ("bad config", ["true"], {"linux": {"uidMappings": [{"hostID": 0, "size": 1}]}}),
        (
            "device rules",
            ["true"],
            {"linux": {"resources": {"devices": [{"allow": False, "access": "rwm"}]}}},
        ),
    ],
)
def test_the_daemon_answers_as_the_in_process_cli(
    daemon: Daemon, bundle: Path, case: str, args: list[str], changes: dict[str, Any]
) -> None:
    init = ["--init"] if changes.pop("init", None) else []
    if "linux" in changes:
        changes["linux"] = {**base_config()["linux"], **changes["linux"]}
    write_config(bundle, *args, **changes)
    served = run_cli(daemon.path, "run", *init, "-b", str(bundle), "same")
    local = run_cli(daemon.path, "run", "--no-daemon", *init, "-b", str(bundle), "same")
    assert served.heavy_imports() == [], case  # it did go through the daemon
    assert "anyio" in local.imported  # and this one did not
    assert served.result == local.result, case
    expected = {
        "exit code and both streams": (7, "out\n", "err\n"),
        "missing binary in a shell": (127, "", "sh: /no/such: not found\n"),
        "killed by a signal": (128 + signal.SIGUSR1, "", ""),
    }
    if case in expected:
        assert served.result == expected[case]
    elif case == "missing binary":
        assert served.returncode == 1
        assert served.stderr.startswith("asyncinit: error: [exec] process.args: execve: ")
    elif case == "bad config":
        assert served.returncode == 1
        assert "linux.uidMappings[0].containerID: required field missing" in served.stderr
    else:
        assert served.returncode == 0
        assert served.stderr == ""  # device rules are enforced by the cgroup: no warning


@integration
def test_hook_warnings_arrive_as_in_process(daemon: Daemon, bundle: Path, tmp_path: Path) -> None:
    from tests.support.hooks import FAIL

    bad = script(tmp_path / "bad", FAIL)
    config = base_config("sh", "-c", "echo workload ran")
    config["hooks"] = {"poststart": [hook(bad, "poststart")], "poststop": [hook(bad, "poststop")]}
    (bundle / "config.json").write_text(json.dumps(config))
    served = run_cli(daemon.path, "run", "-b", str(bundle), "warned")
    assert served.heavy_imports() == []
    assert served.result == (
        0,
        "workload ran\n",
        f"asyncinit: warning: poststart hook 0 ({bad}) exited with status 3: boom from poststart\n"
        f"asyncinit: warning: poststop hook 0 ({bad}) exited with status 3: boom from poststop\n",
    )


@integration
def test_the_served_cli_imports_nothing_heavy(daemon: Daemon, bundle: Path) -> None:
    write_config(bundle, "true")
    served = run_cli(daemon.path, "run", "-b", str(bundle), "lean")
    assert served.returncode == 0, served.stderr
    assert "asyncinit._client" in served.imported
    assert served.heavy_imports() == []
    # Without site (whose .pth files import what they like): not even the slow stdlib.
    bare = run_cli(daemon.path, "run", "-b", str(bundle), "lean", no_site=True)
    assert bare.result == (0, "", "")
    assert "asyncinit._client" in bare.imported
    assert not bare.imported & {"argparse", "typing", "json", "re", "socket", "enum", "signal"}


@integration
def test_the_client_runs_without_site_packages(daemon: Daemon, bundle: Path) -> None:
    """python -S cannot import anyio: only the daemon path can succeed."""
    write_config(bundle, "sh", "-c", "echo via daemon")
    python = [sys.executable, "-S"]
    env_path = str(REPO)
    done = subprocess.run(
        [*python, "-c", "import asyncinit; print(asyncinit.__file__)"],
        env={**cli_env(daemon.path), "PYTHONPATH": env_path},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == str(REPO / "asyncinit" / "__init__.py")
    result = subprocess.run(
        [*python, "-m", "asyncinit", "run", "-b", str(bundle), "nosite"],
        env={**cli_env(daemon.path), "PYTHONPATH": env_path},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "via daemon\n", "")


@integration
def test_sigterm_to_the_client_reaches_the_workload(daemon: Daemon, bundle: Path) -> None:
    write_config(
        bundle, "sh", "-c", "trap 'exit 42' TERM; echo ready; while :; do sleep 0.05; done"
    )
    process = lean_client(daemon.path, bundle, "forward")
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 42, err


@integration
def test_sigint_during_the_start_cancels_it(daemon: Daemon, bundle: Path, tmp_path: Path) -> None:
    """As the in-process CLI: Ctrl-C while a createRuntime hook runs: 130, cleaned up."""
    log = tmp_path / "log"
    log.mkdir()
    config = base_config("sh", "-c", "echo workload ran")
    config["hooks"] = {
        "createRuntime": [hook(script(tmp_path / "hang", HANG), "createRuntime", str(log))],
        "poststop": [hook(script(tmp_path / "record", RECORD), "poststop", str(log))],
    }
    (bundle / "config.json").write_text(json.dumps(config))
    process = lean_client(daemon.path, bundle, "held")
    try:
        wait_for(log / "createRuntime.ready")
        pid = state_of(log, "createRuntime")["pid"]
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert (process.returncode, out, err) == (130, "", "")
    assert gone(pid)
    hook_pids = [int(p) for p in (log / "createRuntime.pids").read_text().split()]
    assert all(gone(p) for p in hook_pids)
    assert state_of(log, "poststop")["id"] == "held"


@integration
@pytest.mark.parametrize("stage", ["createRuntime", "running"])
def test_a_killed_client_takes_its_container_down(
    daemon: Daemon, bundle: Path, tmp_path: Path, stage: str
) -> None:
    """SIGKILL the client while the container starts or runs: nothing is left."""
    log = tmp_path / "log"
    log.mkdir()
    record = script(tmp_path / "record", RECORD)
    config = base_config("sh", "-c", "sleep 600 & sleep 600")
    config["hooks"] = {
        "poststart": [hook(record, "poststart", str(log))],
        "poststop": [hook(record, "poststop", str(log))],
    }
    if stage == "createRuntime":
        config["hooks"]["createRuntime"] = [
            hook(script(tmp_path / "hang", HANG), "createRuntime", str(log))
        ]
    (bundle / "config.json").write_text(json.dumps(config))
    before = _daemon_family(daemon)
    process = lean_client(
        daemon.path, bundle, "doomed", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        ready = "createRuntime.ready" if stage == "createRuntime" else "poststart.state"
        wait_for(log / ready)
        pid = state_of(log, ready.split(".", maxsplit=1)[0])["pid"]
        namespace = PidNamespace(pid)
    finally:
        process.kill()
        process.wait()
    try:
        assert gone(pid, timeout=20)
        deadline = time.monotonic() + 20
        while namespace.processes():
            assert time.monotonic() < deadline, "processes of the container outlived the client"
            time.sleep(0.01)
    finally:
        namespace.close()
    # The cleanup ran (after the reaping, in the daemon: wait for the hook's file).
    assert json.loads(wait_for(log / "poststop.state"))["id"] == "doomed"
    if stage == "createRuntime":
        assert not (log / "poststart.state").exists()
        assert all(gone(int(p)) for p in (log / "createRuntime.pids").read_text().split())
    deadline = time.monotonic() + 10
    while _daemon_family(daemon) != before:  # the daemon forgot it: no process left
        assert time.monotonic() < deadline, (before, _daemon_family(daemon))
        time.sleep(0.05)


def _daemon_family(daemon: Daemon) -> set[int]:
    """The daemon's descendants (its fork server and whatever that runs)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append(int(entry))
    found: set[int] = set()
    todo = [daemon.process.pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


@integration
def test_without_a_daemon_the_cli_runs_in_process(socket_dir: Path, bundle: Path) -> None:
    write_config(bundle, "sh", "-c", "echo local; exit 3")
    absent = str(socket_dir / "none.sock")
    local = run_cli(absent, "run", "-b", str(bundle), "alone")
    assert local.result == (3, "local\n", "")  # no message without --debug
    assert "anyio" in local.imported
    debug = run_cli(absent, "--debug", "run", "-b", str(bundle), "alone")
    assert debug.returncode == 3
    assert debug.stderr == (
        f"asyncinit: debug: no daemon at {absent}: No such file or directory; running in-process\n"
    )


@integration
def test_a_version_mismatch_falls_back_to_in_process(daemon: Daemon, bundle: Path) -> None:
    write_config(bundle, "sh", "-c", "echo fell back; exit 5")
    code = (
        "import sys, asyncinit._version as v; v.VERSION = '0.0.0-old'; "
        "from asyncinit.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    argv = [sys.executable, "-X", "importtime", "-c", code, "--debug", "run", "-b", str(bundle)]
    done = subprocess.run(
        [*argv, "old"],
        cwd=REPO,
        env=cli_env(daemon.path),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    run = Run(done)
    assert (run.returncode, run.stdout) == (5, "fell back\n"), run.stderr
    assert "anyio" in run.imported  # it ran in-process
    assert run.stderr == (
        f"asyncinit: debug: the daemon declined: version mismatch: daemon {VERSION}, "
        "client '0.0.0-old'; running in-process\n"
    )


@integration
def test_a_non_root_peer_is_refused(daemon: Daemon) -> None:
    """Two layers: the 0600 socket in a 0700 directory, then the peer's credentials.

    The refusal always reaches the client: the daemon reads the request before
    it answers, so its close cannot reset the connection under the answer.
    """
    request = _client.run_request("/", "intruder")

    def as_nobody(attempts: int) -> set[str]:
        """Fork, become uid/gid 65534, run the real client's session: what it was told."""
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child only makes syscalls: everything it uses is imported
            answers = set()
            try:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
                for _ in range(attempts):
                    try:
                        conn = _client.connect(daemon.path)
                    except _client.Refused as exc:
                        answers.add(str(exc).rsplit(": ", 1)[-1])
                        continue
                    try:
                        answers.add(f"served: {_client._Session(conn).run(request.copy())}")
                    except _client.Refused as exc:
                        answers.add(str(exc))
                    finally:
                        conn.close()
            except BaseException as exc:
                answers.add(repr(exc))
            finally:
                os.write(write_end, "\n".join(sorted(answers)).encode())
                os._exit(0)
        os.close(write_end)
        try:
            with os.fdopen(read_end) as f:
                return set(f.read().splitlines())
        finally:
            os.waitpid(pid, 0)

    assert as_nobody(1) == {"Permission denied"}  # the file permissions stop it first
    directory = os.path.dirname(daemon.path)
    assert os.stat(directory).st_mode & 0o777 == 0o700
    assert os.stat(daemon.path).st_mode & 0o777 == 0o600
    os.chmod(os.path.dirname(directory), 0o755)  # the test's mkdtemp
    os.chmod(directory, 0o755)
    os.chmod(daemon.path, 0o666)  # as if they were wrong: the credentials check still refuses
    assert as_nobody(30) == {
        "the daemon declined: uid 65534 may not use this daemon (it serves uid 0 only)"
    }


@integration
def test_concurrent_clients_do_not_wait_for_each_other(
    daemon: Daemon, bundle: Path, tmp_path: Path
) -> None:
    """A barrier, not a stopwatch: each workload waits until all four run at once
    (a daemon serving one client at a time would never get there), whatever the
    machine's speed."""
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    workload = (
        "mktemp -p /barrier >/dev/null; i=0; "
        "while [ $(ls /barrier | wc -l) -lt 4 ]; do "
        "i=$((i+1)); [ $i -lt 300 ] || { echo alone; exit 9; }; sleep 0.1; done; echo done"
    )
    config = base_config("sh", "-c", workload)
    config["mounts"].append(
        {"destination": "/barrier", "type": "bind", "source": str(barrier), "options": ["bind"]}
    )
    (bundle / "config.json").write_text(json.dumps(config))
    processes = [lean_client(daemon.path, bundle, f"c{n}") for n in range(4)]
    results = [(p.wait(timeout=90), *p.communicate()) for p in processes]
    assert results == [(0, "done\n", "")] * 4


@integration
def test_terminal_through_the_daemon(daemon: Daemon, bundle: Path) -> None:
    """The pty master reaches the client, which attaches the user's terminal (raw, size).

    The client's size travels in the request, so the pty has it before the
    workload starts (its first `stty size`); we type only once "ready" came
    through (raw mode flushes what was typed ahead).
    """
    workload = (
        "stty size; echo ready; read a; tty; stty size; read b; stty size; echo got:$b; exit 3"
    )
    write_config(bundle, "sh", "-c", workload)
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["terminal"] = True
    (bundle / "config.json").write_text(json.dumps(config))
    master, slave = os.openpty()
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = lean_client(
        daemon.path, bundle, "tty",
        stdin=slave, stdout=slave, stderr=slave, text=False, start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    output = b""
    deadline = time.monotonic() + 30

    def read_until(wanted: bytes) -> None:
        nonlocal output
        while wanted not in output:
            assert time.monotonic() < deadline, output
            ready, _, _ = select.select([master], [], [], 1)
            if ready:
                output += os.read(master, 4096)

    try:
        read_until(b"ready")
        assert output.split(b"ready")[0].split() == [b"40", b"120"]  # sized from the start
        os.write(master, b"one\r")
        read_until(b"40 120")
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        # What the kernel sends a terminal's foreground job (the client has no ctty here).
        process.send_signal(signal.SIGWINCH)
        time.sleep(0.3)
        os.write(master, b"two\r")
        read_until(b"got:two")
        assert process.wait(timeout=30) == 3
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    assert b"/dev/pts/0" in output
    assert b"30 100" in output  # the window change was followed


@integration
def test_a_second_daemon_refuses_and_a_stale_socket_is_replaced(socket_dir: Path) -> None:
    path = str(socket_dir / "d.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    stale.bind(path)
    stale.close()  # the file stays; nothing listens: connect is refused
    first = Daemon(path)
    try:
        second = subprocess.run(
            [*ASYNCINIT, "daemon", "--socket", path],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert (second.returncode, second.stderr) == (
            1,
            f"asyncinit: error: another daemon is listening on {path}\n",
        )
        assert os.path.exists(path)  # the refused one did not remove the first one's socket
    finally:
        assert first.stop() == 0
    assert not os.path.lexists(path)


@integration
def test_a_stopped_daemon_takes_its_containers_down(socket_dir: Path, bundle: Path) -> None:
    """SIGTERM: the running container is killed and reaped, the client told, the socket gone."""
    running = Daemon(str(socket_dir / "d.sock"))
    try:
        write_config(bundle, "sh", "-c", "echo $$ started; exec sleep 600")
        client = lean_client(running.path, bundle, "orphan")
        assert client.stdout is not None
        assert client.stdout.readline() == "1 started\n"
        family = _daemon_family(running)
        assert family
        assert running.stop() == 0
        _, err = client.communicate(timeout=30)
    finally:
        running.stop()
    assert client.returncode != 0, err
    assert all(gone(pid) for pid in family)
    assert not os.path.lexists(running.path)


# --- hostile peers: whatever one client sends, it ends only its own connection


def raw_connection(path: str) -> socket.socket:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    conn.connect(path)
    return conn


def send_raw(conn: socket.socket, payload: bytes, fds: list[int] = ()) -> None:  # type: ignore[assignment]
    ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    conn.sendmsg([payload], ancillary)
    for fd in fds:
        os.close(fd)


def answer(conn: socket.socket, timeout: float = 10) -> dict[str, Any] | None:
    """The daemon's reply, or None when it closed without one (a reset fails the test)."""
    ready, _, _ = select.select([conn], [], [], timeout)
    assert ready, "the daemon neither answered nor closed"
    data, ancillary, _, _ = conn.recvmsg(1 << 16, socket.CMSG_SPACE(64))
    assert not ancillary
    reply: dict[str, Any] | None = json.loads(data) if data else None
    return reply


def memfd(body: bytes, size: int | None = None, seal: bool = True) -> int:
    fd = os.memfd_create("hostile", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    view = memoryview(body)
    while view:
        view = view[os.write(fd, view) :]
    if size is not None:
        os.ftruncate(fd, size)  # sparse
    if seal:
        fcntl.fcntl(fd, 1033, 0xF)  # F_ADD_SEALS: seal, shrink, grow, write
    return fd


def run_payload(bundle: Path, **changes: Any) -> bytes:
    request = {"type": "run", **_client.run_request(str(bundle), "hostile"), **changes}
    return json.dumps(request).encode()


def stdio() -> list[int]:
    return [os.open(os.devnull, os.O_RDWR) for _ in range(3)]


SPILLED = b'{"type": "run", "spilled": true}'
DEEP = b"[" * 800 + b"]" * 800  # about as deep as the daemon's parser goes
DEEP_FIELD = b'{"type": "run", "debug": ' + DEEP + b"}"
DEEP_VERSION = b'{"type": "run", "version": ' + DEEP + b"}"
DEEP_SPILLED = b'{"type": "run", "spilled": true, "x": ' + DEEP + b"}"


def hostile_requests(bundle: Path) -> list[tuple[str, bytes, list[int], str]]:
    """(what, datagram, fds, what the refusal says); built lazily: fds are opened here."""
    missing = Path("/nonexistent-bundle")
    return [
        ("deep nesting", b"[" * 150000, [], "malformed request"),  # RecursionError before
        ("deep nesting in a field", DEEP_FIELD, stdio(), "version mismatch"),
        ("deep nesting as version", DEEP_VERSION, stdio(), "client list"),
        ("deep nesting, spilled", DEEP_SPILLED, [memfd(b"{}")], "malformed request"),
        ("spilled: a pipe", SPILLED, [os.pipe()[0]], "malformed request"),  # ESPIPE
        ("spilled: a directory", SPILLED, [os.open("/", os.O_RDONLY)], "malformed request"),
        ("spilled: /dev/zero", SPILLED, [os.open("/dev/zero", os.O_RDONLY)], "malformed"),
        ("spilled: unsealed", SPILLED, [memfd(run_payload(bundle), seal=False)], "malformed"),
        ("spilled: 100 MB", SPILLED, [memfd(b"{", size=100 << 20)], "malformed request"),
        ("NaN", b'{"type": "run", "x": NaN}', [], "malformed request"),
        ("not an object", b"[1]", [], "malformed request"),
        ("invalid UTF-8", b'{"type": "\xff"}', [], "malformed request"),
        ("no bytes, one fd", b"", [os.open(os.devnull, os.O_RDONLY)], "malformed request"),
        ("17 fds", b'{"type": "run"}', [os.open("/", os.O_RDONLY) for _ in range(17)], "trunc"),
        ("over the bound", b" " * 200000, [], "truncated"),
        (
            "wrong types",
            run_payload(bundle, id=5, no_pivot=1, debug="yes", signal_group=0),
            stdio(),
            "malformed fields: id, signal_group, no_pivot, debug",
        ),
        ("unknown field", run_payload(bundle, privileged=True), stdio(), "unknown fields"),
        ("NUL in the bundle", run_payload(Path("/x\0y")), stdio(), "malformed fields: bundle"),
        ("not a run", b'{"type": "signal", "signo": 9}', stdio(), "unknown request 'signal'"),
        ("two fds", run_payload(bundle), stdio()[:2], "fds 0, 1 and 2"),
        ("a missing bundle", run_payload(missing), stdio(), "config.json: cannot read"),
    ]


@integration
def test_hostile_peers_end_only_themselves(daemon: Daemon, bundle: Path, tmp_path: Path) -> None:
    """Every bad input the issue found (and more) against a daemon running a container:
    each is refused with a reason; the container, the daemon and the next client go on."""
    write_config(
        bundle, "sh", "-c", "trap 'exit 42' TERM; echo ready; while :; do sleep 0.05; done"
    )
    running = lean_client(daemon.path, bundle, "survivor")
    other = echo_bundle(bundle, tmp_path)
    try:
        assert running.stdout is not None
        assert running.stdout.readline() == "ready\n"
        for what, payload, fds, reason in hostile_requests(bundle):
            with raw_connection(daemon.path) as conn:
                send_raw(conn, payload, fds)
                reply = answer(conn)
            assert reply is not None, what
            assert reason in reply.get("reason", reply.get("text", "")), (what, reply)
            assert daemon.process.poll() is None, what
        with raw_connection(daemon.path):
            pass  # connects and leaves at once
        with raw_connection(daemon.path) as conn:
            conn.shutdown(socket.SHUT_WR)  # end of file before any request
            assert answer(conn) is None
        _a_fifo_config_stalls_nobody(daemon, tmp_path / "fifo", other)
        _idle_connections_are_bounded_per_peer(daemon, other)
        next_client = lean_client(daemon.path, other, "next")
        assert (next_client.wait(timeout=30), *next_client.communicate()) == (0, "next\n", "")
        assert running.poll() is None, "the running container did not survive"
        running.send_signal(signal.SIGTERM)
        assert running.wait(timeout=30) == 42
    finally:
        if running.poll() is None:
            running.kill()
        running.communicate()


def echo_bundle(bundle: Path, tmp_path: Path) -> Path:
    """A second bundle on the same rootfs whose workload prints "next"."""
    other = tmp_path / "other"
    other.mkdir()
    config = write_config(other, "sh", "-c", "echo next")
    config["root"]["path"] = str(bundle / "rootfs")
    del config["process"]["rlimits"]  # runs under a daemon with a low RLIMIT_NOFILE too
    (other / "config.json").write_text(json.dumps(config))
    return other


@integration
def test_a_fifo_config_stalls_nobody(daemon: Daemon, bundle: Path, tmp_path: Path) -> None:
    _a_fifo_config_stalls_nobody(daemon, tmp_path / "fifo", echo_bundle(bundle, tmp_path))


@integration
def test_idle_connections_are_bounded_per_peer(
    daemon: Daemon, bundle: Path, tmp_path: Path
) -> None:
    _idle_connections_are_bounded_per_peer(daemon, echo_bundle(bundle, tmp_path))


def _a_fifo_config_stalls_nobody(daemon: Daemon, fifo: Path, other: Path) -> None:
    """config.json a FIFO: refused at once, not opened until a writer comes (every client
    stalled behind it before)."""
    fifo.mkdir()
    os.mkfifo(fifo / "config.json")
    stalled = lean_client(daemon.path, fifo, "fifo")
    try:
        meanwhile = lean_client(daemon.path, other, "meanwhile")
        assert (meanwhile.wait(timeout=30), *meanwhile.communicate()) == (0, "next\n", "")
        assert stalled.wait(timeout=30) == 1
        assert stalled.communicate() == ("", "asyncinit: error: config.json: not a regular file\n")
    finally:
        if stalled.poll() is None:  # release the daemon, if it is stuck in open()
            with contextlib.suppress(OSError):
                os.close(os.open(fifo / "config.json", os.O_WRONLY | os.O_NONBLOCK))
            stalled.kill()
            stalled.wait()


def _idle_connections_are_bounded_per_peer(daemon: Daemon, other: Path) -> None:
    """100 connections from one process that never ask: all but a few turned away at
    once, and another process is served meanwhile."""
    idle = [raw_connection(daemon.path) for _ in range(100)]
    try:
        waiting, turned_away = set(idle), 0
        deadline = time.monotonic() + 20
        while turned_away < 100 - MAX_WAITING_PER_PEER and time.monotonic() < deadline:
            for conn in select.select(list(waiting), [], [], 1)[0]:
                reply = answer(conn)
                assert reply is not None
                assert reply["reason"].startswith("too many connections waiting from pid")
                waiting.remove(conn)
                turned_away += 1
        assert turned_away == 100 - MAX_WAITING_PER_PEER
        assert select.select(list(waiting), [], [], 0.2)[0] == []  # the others still wait
        served = lean_client(daemon.path, other, "served")
        assert (served.wait(timeout=30), *served.communicate()) == (0, "next\n", "")
    finally:
        for conn in idle:
            conn.close()


def daemon_memory(daemon: Daemon) -> dict[str, int]:
    """VmRSS and VmHWM (its peak) of the daemon, in KiB."""
    with open(f"/proc/{daemon.process.pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return {key: int(fields[key].split()[0]) for key in ("VmRSS", "VmHWM")}


@integration
def test_a_huge_spilled_request_costs_the_daemon_no_memory(daemon: Daemon, bundle: Path) -> None:
    """100 MB in a sealed memfd: refused without being read (it stayed in the daemon before)."""
    before = daemon_memory(daemon)
    body = memfd(run_payload(bundle, padding="x" * (100 << 20)))
    with raw_connection(daemon.path) as conn:
        send_raw(conn, SPILLED, [body])
        reply = answer(conn)
    assert reply is not None
    assert reply["type"] == "refused"
    after = daemon_memory(daemon)
    assert after["VmHWM"] - before["VmHWM"] < 16 << 10, (before, after)  # never read
    assert after["VmRSS"] - before["VmRSS"] < 16 << 10, (before, after)


def capability_config(bundle: Path) -> None:
    """A workload that reports its capabilities, asking for CAP_SYS_ADMIN (the issue's repro)."""
    config = base_config("sh", "-c", "grep CapEff /proc/self/status")
    capabilities = config["process"]["capabilities"]
    for name in ("bounding", "effective", "permitted"):
        capabilities[name] = [*capabilities[name], "CAP_SYS_ADMIN"]
    (bundle / "config.json").write_text(json.dumps(config))


@integration
@pytest.mark.parametrize(
    ("jail", "reason", "failure"),
    [
        (
            ["setpriv", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--"],
            "the client lacks CAP_SYS_ADMIN, ",
            "cannot create the cgroup: Permission denied",  # runc: mkdir ...: permission denied
        ),
        (
            ["unshare", "-U", "-r", "--"],
            "the client is in another user namespace than the daemon",
            "Operation not permitted",
        ),
    ],
)
def test_a_caller_gets_no_more_than_it_could_take(
    daemon: Daemon, bundle: Path, jail: list[str], reason: str, failure: str
) -> None:
    """root without capabilities, or root of a user namespace: the daemon gave it a
    container with CapEff 0x82b10e3.  Now it declines, and the CLI runs in-process
    with the caller's own rights, which fails as runc does (EACCES creating the
    cgroup without capabilities, EPERM in a user namespace), nothing runs."""
    capability_config(bundle)
    done = subprocess.run(
        [*jail, sys.executable, "-m", "asyncinit", "--debug", "run", "-b", str(bundle), "jailed"],
        cwd=REPO,
        env=cli_env(daemon.path),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""  # no workload ran, with or without the daemon
    first_line = done.stderr.splitlines()[0]
    assert first_line.startswith(f"asyncinit: debug: the daemon declined: {reason}")
    assert first_line.endswith("; running in-process")
    assert failure in done.stderr  # the in-process start, as runc's
    # Served, the same bundle runs with what it asked for.
    served = run_cli(daemon.path, "run", "-b", str(bundle), "free", no_site=True)
    assert served.returncode == 0, served.stderr
    assert int(served.stdout.split()[1], 16) >> 21 & 1  # CAP_SYS_ADMIN


@integration
def test_the_client_trusts_no_other_users_server(socket_dir: Path, bundle: Path) -> None:
    """A server of uid 65534 at ASYNCINIT_SOCKET got root's fds 0-2 and made the client
    exit 0 with nothing run.  Now the client checks who listens before it sends anything,
    and runs in-process."""
    os.chmod(socket_dir, 0o755)
    fake_dir = socket_dir / "fake"
    fake_dir.mkdir(mode=0o700)
    os.chown(fake_dir, 65534, 65534)
    path = str(fake_dir / "d.sock")
    write_config(bundle, "sh", "-c", "echo ran here")
    report_read, report_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the fake server: only syscalls and what is imported already
        report: dict[str, object] = {"error": "?"}
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            server = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            server.bind(path)
            server.listen()
            os.write(report_write, b"L")
            server.settimeout(30)
            conn, _ = server.accept()
            conn.settimeout(30)
            data, ancillary, _, _ = conn.recvmsg(1 << 16, socket.CMSG_SPACE(64))
            with contextlib.suppress(OSError):
                conn.send(b'{"type": "exit", "code": 0}')  # "your container exited 0"
            report = {"bytes": len(data), "ancillary": len(ancillary)}
        except BaseException as exc:
            report = {"error": repr(exc)}
        finally:
            os.write(report_write, json.dumps(report).encode())
            os._exit(0)
    os.close(report_write)
    try:
        assert os.read(report_read, 1) == b"L"
        run = run_cli(path, "--debug", "run", "-b", str(bundle), "trusting")
        with os.fdopen(report_read) as f:
            report = json.loads(f.read())
    finally:
        os.waitpid(pid, 0)
    assert report == {"bytes": 0, "ancillary": 0}  # it heard nothing: not even a request
    assert run.result == (
        0,
        "ran here\n",
        f"asyncinit: debug: not trusting {path}: its server runs as uid 65534, not root or us;"
        " running in-process\n",
    )


@needs_root
@pytest.mark.parametrize(
    ("mode", "owner", "why"),
    [(0o777, 0, "is writable by others (mode 0777)"), (0o700, 65534, "belongs to uid 65534")],
)
def test_the_daemon_refuses_a_socket_directory_others_control(
    socket_dir: Path, mode: int, owner: int, why: str
) -> None:
    """Whoever can write the directory can rename the daemon's socket and bind theirs."""
    directory = socket_dir / "theirs"
    directory.mkdir()
    directory.chmod(mode)
    os.chown(directory, owner, owner)
    path = directory / "d.sock"
    done = subprocess.run(
        [*ASYNCINIT, "daemon", "--socket", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (
        1,
        f"asyncinit: error: {directory} {why}: refusing to put the daemon's socket under it\n",
    )
    assert not path.exists()


HOLDER = """
import socket, sys
held = [socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) for _ in range(int(sys.argv[2]))]
for conn in held:
    conn.connect(sys.argv[1])
print("holding", flush=True)
sys.stdin.read()
"""


def _holds_pipe(pid: int, pipe: IO[str]) -> bool:
    """Whether process ``pid`` has a copy of ``pipe`` open."""
    link = f"pipe:[{os.fstat(pipe.fileno()).st_ino}]"
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(FileNotFoundError):  # closed meanwhile
            if os.readlink(fd) == link:
                return True
    return False


@integration
def test_a_daemon_out_of_fds_rests_and_goes_on(
    socket_dir: Path, bundle: Path, tmp_path: Path
) -> None:
    """Under a low RLIMIT_NOFILE, running containers and idle connections use up the
    daemon's fds: a start fails cleanly with EMFILE, and accept() fails with it too,
    which ended the daemon.  Now it rests, and serves the client waiting in the
    backlog once there is room for a start again (not at the first free fd, where
    its start failed with EMFILE in turn)."""
    running = Daemon(str(socket_dir / "d.sock"), wrapper=("prlimit", "--nofile=40", "--"))
    loop = "trap 'exit 0' TERM; echo up; while :; do sleep 0.05; done"
    config = write_config(bundle, "sh", "-c", loop)
    del config["process"]["rlimits"]  # RLIMIT_NOFILE 1024 needs CAP_SYS_RESOURCE, missing here
    (bundle / "config.json").write_text(json.dumps(config))
    clients: list[subprocess.Popen[str]] = []
    holders: list[subprocess.Popen[str]] = []
    try:
        while True:  # containers until one cannot start: the daemon's fds are nearly gone
            assert len(clients) < 20, "the daemon never ran out of fds"
            client = lean_client(running.path, bundle, f"c{len(clients)}")
            clients.append(client)
            assert client.stdout is not None
            if client.stdout.readline() != "up\n":
                _, err = client.communicate(timeout=30)
                assert client.returncode == 1
                assert re.fullmatch(
                    r"asyncinit: error: \[launch\] \S+: Too many open files \(errno EMFILE\)\n", err
                )
                break
            # spawn() has returned once the daemon let go of the client's stdio: its
            # fds for the start are closed, and the next start finds the same room.
            deadline = time.monotonic() + 10
            while _holds_pipe(running.process.pid, client.stdout):
                assert time.monotonic() < deadline
                time.sleep(0.01)
        for count in (5, 4):  # idle connections from other processes take the last fds
            holder = subprocess.Popen(
                [sys.executable, "-S", "-c", HOLDER, running.path, str(count)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            holders.append(holder)
            assert holder.stdout is not None
            assert holder.stdout.readline() == "holding\n"
        assert running.process.stderr is not None
        assert select.select([running.process.stderr], [], [], 10)[0]
        assert running.process.stderr.readline() == (
            "asyncinit: warning: accept: Too many open files; retrying\n"
        )
        waiting = lean_client(running.path, echo_bundle(bundle, tmp_path), "waiting")
        time.sleep(0.5)
        assert waiting.poll() is None  # in the backlog
        assert running.process.poll() is None
        # fds come back a few at a time: first the idle connections', then each container's
        for process in holders:
            process.communicate("")  # end of its stdin: it exits, its connections close
        for client in clients[:-1]:
            client.send_signal(signal.SIGTERM)
            assert client.wait(timeout=30) == 0
        assert (waiting.wait(timeout=30), *waiting.communicate()) == (0, "next\n", "")
    finally:
        for process in [*clients, *holders]:
            if process.poll() is None:
                process.kill()
            process.communicate()
        assert running.stop() == 0
