"""The attack suite: hostile images and configs, each proven harmless to the host.

Every test builds a hostile rootfs or config, starts it, and asserts a clear
error or a safe container, host sentinel directories byte-identical, the host's
mount table identical (the autouse ``host_unchanged`` fixture) and nothing of
the container left running.  Where Debian's runc 1.1.5 has the bug, the same
test runs against it and is expected to fail there (strict xfail): proof that
the test catches the bug rather than passing vacuously.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from asyncinit import ConfigError, InitError, PythonHooks, spawn
from asyncinit.parent import _launcher
from tests.support import CHECKOUT
from tests.support.configs import base_config, in_own_user_namespace
from tests.support.containers import MakeConfig, needs_root, run
from tests.support.exeseal import (
    PATIENCE,
    attack_config,
    listen,
    reopen_for_writing,
    sentinel_interpreter,
    wait_report,
)
from tests.support.hostile import children_of, fork_server_pid, make_sentinel, snapshot
from tests.support.oci import Runtime, new_id
from tests.support.runc import run_runc, runc_available, runc_version

pytestmark = [
    pytest.mark.integration,
    pytest.mark.anyio,
    needs_root,
    pytest.mark.caller_loop("asyncio"),  # the caller's event loop is not what these tests are about
]

_HAS_RUNC = runc_available()
_RUNC_1_1_5 = _HAS_RUNC and "1.1.5" in runc_version()


def runc_with_bug(cve: str) -> Any:
    """The runc variant of a test: it must fail there if the installed runc has ``cve``."""
    return pytest.param(
        "runc",
        marks=[
            pytest.mark.skipif(not _HAS_RUNC, reason="runc is not installed"),
            pytest.mark.xfail(
                _RUNC_1_1_5, strict=True, reason=f"runc 1.1.5 has {cve}: the test must catch it"
            ),
        ],
    )


RUNC_SAFE = pytest.param(
    "runc", marks=pytest.mark.skipif(not _HAS_RUNC, reason="runc is not installed")
)


@dataclass
class Outcome:
    code: int | None  # None: refused before the workload ran
    out: str
    err: str
    error: BaseException | None = None

    @property
    def refused(self) -> bool:
        return self.code is None


async def start(runtime: str, bundle: Path, config: dict[str, Any], **spawn_kwargs: Any) -> Outcome:
    """Start ``config`` with ``runtime``; the container has finished when this returns."""
    if runtime == "runc":
        state = bundle / "runc-state"
        state.mkdir(exist_ok=True)
        code, out, err = await anyio.to_thread.run_sync(run_runc, bundle, config, state)
        refused = code != 0 and "runc run failed" in err
        return Outcome(None if refused else code, out, err)
    try:
        code, out, err = await run(config, **spawn_kwargs)
    except (ConfigError, InitError) as exc:
        outcome = Outcome(None, "", "", exc)
    else:
        outcome = Outcome(code, out, err)
    await assert_nothing_left()
    return outcome


async def assert_nothing_left() -> None:
    """No container init survives: the fork server has no child left."""
    server = fork_server_pid()
    if server is None:
        return
    with anyio.fail_after(10):
        while children_of(server):
            await anyio.sleep(0.02)


@pytest.fixture
def sentinel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_sentinel(tmp_path_factory.mktemp("host") / "sentinel")


def without_dev_tmpfs(config: dict[str, Any]) -> dict[str, Any]:
    """The image's own /dev is used (no tmpfs over it): what the /dev attacks need."""
    config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/dev"]
    return config


# --- CVE-2026-41579: /dev is a symlink to a host directory ---------------------------


@pytest.mark.parametrize("form", ["absolute", "relative"])
@pytest.mark.parametrize("runtime", ["asyncinit", runc_with_bug("CVE-2026-41579")])
async def test_dev_symlink_to_host_directory(
    runtime: str, form: str, make_config: MakeConfig, bundle: Path, sentinel: Path
) -> None:
    """runc 1.1.5 string-joins rootfs + "/dev/ptmx": it unlinks and symlinks on the host."""
    rootfs = bundle / "rootfs"
    shutil.rmtree(rootfs / "dev")
    target = str(sentinel) if form == "absolute" else "../" * 40 + str(sentinel).lstrip("/")
    (rootfs / "dev").symlink_to(target)
    before = snapshot(sentinel)
    config = make_config(
        "sh", "-c", "readlink /dev/ptmx; readlink /dev/stdin; stat -c '%t:%T' /dev/null"
    )
    outcome = await start(runtime, bundle, config)
    assert snapshot(sentinel) == before, "the host directory behind /dev changed"
    assert not outcome.refused, outcome.error or outcome.err
    assert (outcome.code, outcome.out.split()) == (0, ["pts/ptmx", "/proc/self/fd/0", "1:3"])


@pytest.mark.parametrize("runtime", ["asyncinit", RUNC_SAFE])
async def test_device_parent_is_symlink_to_host_directory(
    runtime: str, make_config: MakeConfig, bundle: Path, sentinel: Path
) -> None:
    (bundle / "rootfs" / "hostlink").symlink_to(sentinel)
    before = snapshot(sentinel)
    config = make_config("sh", "-c", "stat -c '%F %t:%T' /hostlink/null /hostlink/sub/fifo")
    config["linux"]["devices"] = [
        {"path": "/hostlink/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666},
        {"path": "/hostlink/sub/fifo", "type": "p", "fileMode": 0o600},
    ]
    outcome = await start(runtime, bundle, config)
    assert snapshot(sentinel) == before
    assert outcome.code == 0, outcome.error or outcome.err
    assert outcome.out.splitlines() == ["character special file 1:3", "fifo 0:0"]


@pytest.mark.parametrize("runtime", ["asyncinit", runc_with_bug("CVE-2026-41579")])
async def test_dev_symlink_to_host_directory_in_user_namespace(
    runtime: str, make_config: MakeConfig, bundle: Path, sentinel: Path
) -> None:
    """Rootless: the nodes are bind mounts onto empty files, created inside the rootfs."""
    rootfs = bundle / "rootfs"
    shutil.rmtree(rootfs / "dev")
    (rootfs / "dev").symlink_to(sentinel)
    before = snapshot(sentinel)
    script = "readlink /dev/ptmx; stat -c '%F %t:%T' /dev/null /dev/zero"
    config = without_dev_tmpfs(in_own_user_namespace(make_config("sh", "-c", script)))
    outcome = await start(runtime, bundle, config)
    assert snapshot(sentinel) == before, "the host directory behind /dev changed"
    assert outcome.code == 0, outcome.error or outcome.err
    assert outcome.out.splitlines() == [
        "pts/ptmx",
        "character special file 1:3",
        "character special file 1:5",
    ]


# --- CVE-2025-31133: the image's /dev/null is a symlink into procfs ------------------


@pytest.mark.parametrize("runtime", ["asyncinit", runc_with_bug("CVE-2025-31133")])
async def test_dev_null_symlink_to_procfs_does_not_unmask(
    runtime: str, make_config: MakeConfig, bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Masks must not become binds of /proc/sys/kernel/hostname (no race needed in 1.1.5).

    The report goes to a bind-mounted host directory, not to stdout: runc 1.1.5
    also "reopens" stdio on that fake /dev/null and its output vanishes there.
    """
    dev = bundle / "rootfs" / "dev"
    (dev / "null").symlink_to("/proc/sys/kernel/hostname")
    results = tmp_path_factory.mktemp("results")
    script = (
        "{ for p in /proc/keys /proc/timer_list; do printf '%s=' $p; head -c 64 $p; echo; done;"
        " grep -E ' /proc/(keys|timer_list) ' /proc/self/mountinfo | cut -d' ' -f4;"
        " stat -c '%F %t:%T' /dev/null; } > /results/report 2>&1"
    )
    config = without_dev_tmpfs(make_config("sh", "-c", script))
    config["mounts"].append(
        {"destination": "/results", "type": "bind", "source": str(results), "options": ["rbind"]}
    )
    config["hostname"] = "unmasked-by-the-image"
    assert "/proc/keys" in config["linux"]["maskedPaths"]
    outcome = await start(runtime, bundle, config)
    if outcome.refused:  # a clear error is an acceptable answer too
        return
    assert outcome.code == 0, outcome.err
    report = (results / "report").read_text()
    lines = report.splitlines()
    assert lines[:2] == ["/proc/keys=", "/proc/timer_list="], f"a masked path is readable: {report}"
    assert "unmasked-by-the-image" not in report
    assert all(root.endswith("/null") for root in lines[2:4])  # binds of the real node
    assert lines[4] == "character special file 1:3"


# --- CVE-2024-21626: leaked fds and a cwd through /proc/self/fd ----------------------


_LEAKED_FD_MIN = 100


@pytest.fixture
def leaked_host_fd(sentinel: Path) -> Any:
    """A host directory fd left inheritable in the caller, as a careless embedder would.

    Numbered above any fd the init opens for itself (its path walk holds ~11): found
    open in the init, it can only be the leak.
    """
    _launcher._shutdown()  # the next fork server starts with the leaked fd present
    low = os.open(sentinel, os.O_RDONLY | os.O_DIRECTORY)
    fd = fcntl.fcntl(low, fcntl.F_DUPFD, _LEAKED_FD_MIN)
    os.close(low)
    os.set_inheritable(fd, True)
    yield fd
    os.close(fd)


async def test_cwd_through_proc_self_fd_is_refused(
    make_config: MakeConfig, bundle: Path, sentinel: Path, leaked_host_fd: int
) -> None:
    before = snapshot(sentinel)
    for fd in sorted({*range(3, 12), leaked_host_fd}):
        config = make_config("sh", "-c", "pwd; ls ..; touch escaped")
        config["root"]["readonly"] = False
        config["process"]["cwd"] = f"/proc/self/fd/{fd}"
        outcome = await start("asyncinit", bundle, config)
        assert outcome.refused, f"cwd /proc/self/fd/{fd} was accepted: {outcome.out}"
        assert isinstance(outcome.error, InitError)
        assert outcome.error.field == "process.cwd"
    assert snapshot(sentinel) == before


@pytest.mark.parametrize("fd", ["leaked", "0"])
async def test_cwd_symlink_to_proc_self_fd_is_refused(
    fd: str, make_config: MakeConfig, bundle: Path, sentinel: Path, leaked_host_fd: int
) -> None:
    """The image names the cwd through a magic link: openat2 refuses it (ELOOP) or it is gone."""
    before = snapshot(sentinel)
    number = leaked_host_fd if fd == "leaked" else 0
    (bundle / "rootfs" / "work").symlink_to(f"/proc/self/fd/{number}")
    config = make_config("sh", "-c", "pwd; touch escaped")
    config["root"]["readonly"] = False
    config["process"]["cwd"] = "/work"
    outcome = await start("asyncinit", bundle, config)
    assert outcome.refused
    assert isinstance(outcome.error, InitError)
    assert outcome.error.field == "process.cwd"
    # fd 0 exists in the init: the magic link itself is refused; the leak never got there.
    assert outcome.error.errno == (errno.ELOOP if fd == "0" else errno.ENOENT)
    assert snapshot(sentinel) == before


async def test_no_fd_beyond_stdio_reaches_the_workload(
    make_config: MakeConfig, leaked_host_fd: int
) -> None:
    config = make_config("sh", "-c", "ls /proc/self/fd; readlink /proc/self/fd/* || true")
    config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "0"}  # the init opens a procfs handle too
    outcome = await start("asyncinit", Path(), config)
    assert outcome.code == 0, outcome.error
    names = outcome.out.split()
    fds = sorted(int(name) for name in names if name.isdigit())
    assert fds == [0, 1, 2, 3]  # 3 is ls's own directory fd
    assert not any("sentinel" in name for name in names)


# --- /proc and /sys in the image are symlinks -----------------------------------------


@pytest.mark.parametrize("directory", ["proc", "sys"])
@pytest.mark.parametrize("runtime", ["asyncinit", RUNC_SAFE])
async def test_proc_or_sys_symlink_is_refused(
    runtime: str, directory: str, make_config: MakeConfig, bundle: Path, sentinel: Path
) -> None:
    rootfs = bundle / "rootfs"
    (rootfs / directory).rmdir()
    (rootfs / directory).symlink_to(sentinel)
    before = snapshot(sentinel)
    outcome = await start(runtime, bundle, make_config("true"))
    assert outcome.refused
    if runtime == "asyncinit":
        assert isinstance(outcome.error, InitError)
        assert outcome.error.errno == errno.ENOTDIR
        assert outcome.error.path == f"/{directory}"
    assert snapshot(sentinel) == before


# --- masked and read-only paths that are symlinks out of the rootfs -------------------


@pytest.mark.parametrize("runtime", ["asyncinit", RUNC_SAFE])
async def test_masked_and_readonly_symlinks_stay_inside(
    runtime: str, make_config: MakeConfig, bundle: Path, sentinel: Path
) -> None:
    rootfs = bundle / "rootfs"
    (rootfs / "etc" / "ro-dir").symlink_to("../" * 30 + str(sentinel).lstrip("/"))
    (rootfs / "etc" / "mask-dir").symlink_to(sentinel / "sub")
    (rootfs / "etc" / "mask-file").symlink_to(sentinel / "keep")
    # The same paths inside the rootfs, where the symlinks must resolve.
    inside = rootfs / str(sentinel).lstrip("/")
    (inside / "sub").mkdir(parents=True)
    (inside / "keep").write_text("inside copy\n")
    (inside / "null").write_text("inside null\n")
    (inside / "sub" / "deep").write_text("inside deep\n")
    before = snapshot(sentinel)
    script = (
        "ls -A /etc/mask-dir | wc -l; cat /etc/mask-file | wc -c;"
        " (echo x > /etc/ro-dir/null) 2>&1; cat /etc/ro-dir/null"
    )
    config = make_config("sh", "-c", script)
    config["root"]["readonly"] = False
    config["linux"]["maskedPaths"] += ["/etc/mask-dir", "/etc/mask-file"]
    config["linux"]["readonlyPaths"] += ["/etc/ro-dir"]
    outcome = await start(runtime, bundle, config)
    assert snapshot(sentinel) == before
    assert outcome.code == 0, outcome.error or outcome.err
    lines = outcome.out.splitlines()
    assert lines[0:2] == ["0", "0"]  # masked, inside the rootfs
    assert "Read-only file system" in lines[2]
    assert lines[3] == "inside null"


# --- sysctls --------------------------------------------------------------------------


def _swappiness() -> str:
    return Path("/proc/sys/vm/swappiness").read_text().strip()


@pytest.fixture
def swappiness_restored() -> Any:
    """Puts vm.swappiness back should a runtime with the bug change it."""
    before = _swappiness()
    yield before
    Path("/proc/sys/vm/swappiness").write_text(before)


@pytest.mark.parametrize("key", ["net.ipv4/../../vm/swappiness", "net/ipv4/../../vm/swappiness"])
@pytest.mark.parametrize("runtime", ["asyncinit", RUNC_SAFE])
async def test_sysctl_key_with_dotdot_is_refused(
    runtime: str, key: str, make_config: MakeConfig, bundle: Path, swappiness_restored: str
) -> None:
    """The key passes a "net." prefix check; joined as a path it would name vm.swappiness.

    (runc 1.1.5 is safe by accident: it turns every dot into a slash, ".." included.)
    """
    changed = "17" if swappiness_restored != "17" else "23"
    config = make_config("true")
    config["linux"]["sysctl"] = {key: changed}
    outcome = await start(runtime, bundle, config)
    assert _swappiness() == swappiness_restored, "a host-wide sysctl was written"
    assert outcome.refused
    if runtime == "asyncinit":
        assert isinstance(outcome.error, ConfigError)
        assert "linux.sysctl" in str(outcome.error)


@pytest.mark.parametrize("key", ["kernel.core_pattern", "vm.swappiness", "kernel/core_pattern"])
@pytest.mark.parametrize("runtime", ["asyncinit", RUNC_SAFE])
async def test_non_namespaced_sysctl_is_refused(
    runtime: str, key: str, make_config: MakeConfig, bundle: Path
) -> None:
    host_file = Path("/proc/sys/" + key.replace(".", "/"))
    before = host_file.read_text()
    config = make_config("true")
    config["linux"]["sysctl"] = {key: "|/tmp/pwned %p" if "core" in key else "1"}
    try:
        outcome = await start(runtime, bundle, config)
        assert host_file.read_text() == before
    finally:
        if host_file.read_text() != before:
            host_file.write_text(before)
    assert outcome.refused
    if runtime == "asyncinit":
        assert isinstance(outcome.error, ConfigError)
        assert "not namespaced" in str(outcome.error)


@pytest.mark.parametrize("runtime", ["asyncinit", runc_with_bug("CVE-2025-52881")])
async def test_sysctl_write_cannot_be_redirected(
    runtime: str, make_config: MakeConfig, bundle: Path, sentinel: Path
) -> None:
    """A mount over /proc/sys/... in the container's namespace must not catch the write.

    The createContainer hook stands in for anything that can reach the container's
    mount namespace before the sysctls are written (a shared mount, a racing
    process): it binds a host file over /proc/sys/net/ipv4/ip_forward.
    """
    target = sentinel / "keep"
    before = snapshot(sentinel)
    rootfs = bundle / "rootfs"
    hook = bundle / "redirect.sh"
    # (reads its state first: a hook that ignores stdin makes run_command fail on EPIPE)
    hook.write_text(
        "#!/bin/sh\ncat > /dev/null\n"
        f"exec mount --bind {target} {rootfs}/proc/sys/net/ipv4/ip_forward\n"
    )
    hook.chmod(0o755)
    config = make_config("cat", "/proc/sys/net/ipv4/conf/all/forwarding")
    config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    config["hooks"] = {"createContainer": [{"path": str(hook)}]}
    outcome = await start(runtime, bundle, config)
    assert snapshot(sentinel) == before, "the sysctl write landed in a host file"
    assert outcome.code == 0, getattr(outcome.error, "init_traceback", None) or outcome.err
    assert outcome.out.strip() == "1"  # and it did reach the container's own netns


# --- CVE-2019-5736: the host interpreter behind /proc/1/exe ----------------------------


_PROBE = """
import os, sys
pid = sys.argv[1]
for name, flags in (("path", os.O_PATH), ("read", os.O_RDONLY), ("write", os.O_WRONLY)):
    try:
        os.close(os.open(f"/proc/{pid}/exe", flags))
        print(name, "opened")
    except OSError as exc:
        print(name, exc.errno)
"""


async def probe_exe(pid: int, *namespaces: str) -> list[str]:
    """From inside ``pid``'s namespaces (as their root, with every capability of its
    user namespace), try to open ``pid``'s /proc/PID/exe."""
    command = ["nsenter", f"--target={pid}", *namespaces]
    command += [sys.executable, "-I", "-c", _PROBE, str(pid)]
    result = await anyio.run_process(command, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.decode().splitlines()


async def test_container_cannot_reach_the_init_interpreter(
    make_config: MakeConfig, bundle: Path
) -> None:
    """A process in the container cannot open PID 1's /proc/PID/exe (the host's Python).

    The mapping is the rootless one (container root = our own uid), where the
    kernel keeps a process dumpable across the switch to the namespace's root:
    only the init's PR_SET_DUMPABLE(0) stands between the container and the
    host's interpreter (an O_PATH fd of it could be reopened for writing once the
    init has exec-ed).  The control shows the probe does open the exe of an
    ordinary, dumpable process in such a namespace.
    """
    uid, gid = os.geteuid(), os.getegid()
    control = await anyio.open_process(
        ["unshare", f"--map-user={uid}", f"--map-group={gid}", "sleep", "30"]
    )
    try:
        await anyio.sleep(0.2)
        assert (await probe_exe(control.pid, "--user"))[0] == "path opened"
    finally:
        control.kill()
        await control.wait()

    config = in_own_user_namespace(make_config("true"))
    results: list[str] = []

    async def probe(container: Any) -> None:  # runs while PID 1 is still the interpreter
        results.extend(await probe_exe(container.pid, "--user", "--mount", "--pid"))

    outcome = await start("asyncinit", bundle, config, hooks=PythonHooks(create_runtime=[probe]))
    assert outcome.code == 0, outcome.error
    assert results == [f"{name} {errno.EACCES}" for name in ("path", "read", "write")]


async def test_supervising_init_stays_out_of_reach(make_config: MakeConfig) -> None:
    """In supervise mode PID 1 stays the host's interpreter for the container's life."""
    config = in_own_user_namespace(make_config("sleep", "30"))
    async with await spawn(config, init="supervise") as container:
        # as the container's root, with every capability of its user namespace
        results = await probe_exe(container.pid, "--user")
        container.kill()
        await container.wait()
    assert results == [f"{name} {errno.EACCES}" for name in ("path", "read", "write")]


# --- CVE-2019-5736 through #!/proc/self/exe: the runtime's own executable ------------


_SPAWN_AND_WAIT = """
import json, sys
import anyio
from asyncinit import spawn

async def main():
    async with await spawn(json.load(open(sys.argv[1]))) as container:
        sys.exit(await container.wait())

anyio.run(main)
"""


@pytest.fixture
def exe_attack(tmp_path_factory: pytest.TempPathFactory, bundle: Path) -> Any:
    """(sentinel interpreter, its bytes, results directory, the attack's config)."""
    sentinel_exe = sentinel_interpreter(tmp_path_factory.mktemp("runtime"))
    results = tmp_path_factory.mktemp("results")
    config = attack_config(base_config(), bundle / "rootfs", results)
    config["root"]["path"] = str(bundle / "rootfs")
    return sentinel_exe, sentinel_exe.read_bytes(), results, config


def assert_exe_sealed(report: dict[str, Any], sentinel_exe: Path, original: bytes) -> None:
    """Every write was refused for good (EROFS: overlayfs, EPERM: a sealed memfd)."""
    assert sentinel_exe.read_bytes() == original, f"the runtime's binary was rewritten: {report}"
    assert report["exe"] != str(sentinel_exe), report  # the container never saw the real file
    assert report["open_write"] in ("EROFS", "EPERM"), report
    assert report["truncate"] in ("EROFS", "EPERM"), report
    assert report["reopen"].endswith(("Read-only file system", "Operation not permitted")), report


def test_exe_overwrite_through_spawn(exe_attack: Any, tmp_path: Path) -> None:
    """spawn() from a caller running the sentinel: the fork server's inits run from it.

    While the caller and its fork server run, the kernel refuses writes to the
    file they execute (ETXTBSY), and the container dies with them.  So the
    container hands its O_PATH fd of /proc/self/exe to a process that outlives
    it (another container could be one), which tries once the caller is gone.
    """
    sentinel_exe, original, results, config = exe_attack
    config["process"]["env"].append("HANDOFF=/results/handoff")
    (tmp_path / "config.json").write_text(json.dumps(config))
    with listen(results) as server:
        caller = subprocess.Popen(
            [str(sentinel_exe), "-c", _SPAWN_AND_WAIT, str(tmp_path / "config.json")],
            env={**os.environ, "PYTHONPATH": str(CHECKOUT)},
        )
        try:
            connection, _ = server.accept()
            with connection:
                _, fds, _, _ = socket.recv_fds(connection, 16, 1)
        finally:
            assert caller.wait(timeout=PATIENCE) == 0
    report = json.loads((results / "python.json").read_text())
    try:
        report["reopen"] = reopen_for_writing(fds[0])
    finally:
        os.close(fds[0])
    assert_exe_sealed(report, sentinel_exe, original)


def test_exe_overwrite_through_create_start(exe_attack: Any, bundle: Path, tmp_path: Path) -> None:
    """``asyncinit create`` forks the init itself: it must run from a sealed file too."""
    sentinel_exe, original, results, config = exe_attack
    asyncinit = Runtime("asyncinit", tmp_path / "state")
    asyncinit.argv[0] = str(sentinel_exe)
    asyncinit.timeout = PATIENCE
    (bundle / "config.json").write_text(json.dumps(config))
    container_id = new_id()
    try:
        assert asyncinit("create", "--bundle", str(bundle), container_id)[0] == 0
        assert asyncinit("start", container_id)[0] == 0
        report = wait_report(results)
    finally:
        asyncinit("delete", "--force", container_id)
    assert_exe_sealed(report, sentinel_exe, original)


def test_exe_overwrite_through_exec(exe_attack: Any, bundle: Path, tmp_path: Path) -> None:
    """``asyncinit exec`` forks the joiner itself: the same attack as its process."""
    sentinel_exe, original, results, config = exe_attack
    asyncinit = Runtime("asyncinit", tmp_path / "state")
    asyncinit.argv[0] = str(sentinel_exe)
    asyncinit.timeout = PATIENCE
    config["process"]["args"] = ["sleep", "3600"]  # delete --force ends it
    (bundle / "config.json").write_text(json.dumps(config))
    container_id = new_id()
    try:
        assert asyncinit("run", "--detach", "--bundle", str(bundle), container_id)[0] == 0
        code, _, err = asyncinit("exec", "--detach", container_id, "/attack")
        assert code == 0, err
        report = wait_report(results)
    finally:
        asyncinit("delete", "--force", container_id)
    assert_exe_sealed(report, sentinel_exe, original)
