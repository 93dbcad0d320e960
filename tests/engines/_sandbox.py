"""A private world for a container engine: its own mount, network and pid namespaces.

Engines leave traces wherever they run: podman's overlay driver leaves a bind
mount in its mount namespace, `podman import` writes /var/lib/containers/cache
whatever --root says, CNI builds a bridge, veths and iptables rules, dockerd and
containerd keep state under /run and /var/lib.  So every engine command runs
inside one holder process's namespaces (``nsenter``): mounts private, tmpfs over
/run and /var/lib, a network namespace with only
``lo``, a pid namespace with its own /proc.  Killing the holder (PID 1 there)
kills every process the engine left; the namespaces, their mounts, veths and
rules go with it.  What is shared with the host and must be checked by hand:
the cgroup hierarchies (see :class:`CgroupSnapshot`) and the files in the temp
directories, which pytest removes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

# Engines write below these whatever their flags say (/var/lib/containers/cache,
# /var/lib/cni, /run/runc, /run/containerd...), and a missing directory cannot be
# covered without creating it on the host: each of these gets a private tmpfs.
PRIVATE_DIRS = ("/run", "/var/lib")
CGROUP_ROOT = Path("/sys/fs/cgroup")
# One engine command (a whole `podman run`, `ctr task exec`...) takes a few seconds
# here even under load: a runtime that hangs an engine fails the case in this time,
# not in minutes (what is left running goes with the sandbox).
COMMAND_TIMEOUT = 30.0

_SETUP = """
set -e
for dir in "$@"; do
    if [ -d "$dir" ]; then mount -t tmpfs -o mode=755 tmpfs "$dir"; fi
done
ip link set lo up
echo ready
exec sleep infinity
"""


class Sandbox:
    """A holder process whose namespaces every :meth:`run` enters."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._holder = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--net",
                "--pid",
                "--fork",
                "--kill-child",
                "--propagation",
                "private",
                "--mount-proc",
                "sh",
                "-c",
                _SETUP,
                "sandbox",
                *PRIVATE_DIRS,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert self._holder.stdout is not None
        line = self._holder.stdout.readline()
        if line != "ready\n":
            self._holder.kill()
            _, err = self._holder.communicate()
            raise RuntimeError(f"sandbox setup failed: {line!r} {err}")
        self.pid = self._pid1()

    def _pid1(self) -> int:
        """The host pid of the sandbox's PID 1 (unshare's only child)."""
        path = f"/proc/{self._holder.pid}/task/{self._holder.pid}/children"
        for _ in range(100):
            children = Path(path).read_text().split()
            if children:
                return int(children[0])
            time.sleep(0.01)
        raise RuntimeError("the sandbox has no PID 1")

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` wrapped to run inside the sandbox."""
        return [
            "nsenter",
            f"--target={self.pid}",
            "--mount",
            "--net",
            "--pid",
            *argv,
        ]

    def run(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        timeout: float = COMMAND_TIMEOUT,
        env: Mapping[str, str] | None = None,
        check: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in the sandbox; an AssertionError naming it if it outlasts ``timeout``."""
        try:
            result = subprocess.run(
                self.command(argv),
                input=input,
                stdin=None if input is not None else subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=dict(env) if env is not None else None,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(
                f"{' '.join(argv)}: still running after {timeout:g} s (hung)\n"
                f"stdout: {_text(exc.stdout)}\nstderr: {_text(exc.stderr)}"
            ) from None
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)}: exit {result.returncode}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result

    def popen(
        self, argv: Sequence[str], env: Mapping[str, str] | None = None, **kwargs: object
    ) -> subprocess.Popen[bytes]:
        return subprocess.Popen(  # type: ignore[call-overload,no-any-return]
            self.command(argv), env=dict(env) if env is not None else None, **kwargs
        )

    def close(self) -> None:
        """Kill everything in the sandbox (PID 1 first: the kernel kills the rest)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._holder.pid, signal.SIGKILL)
        self._holder.communicate(timeout=30)
        _wait_gone(self.pid)


def _text(output: str | bytes | None) -> str:
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""


def _wait_gone(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.02)


class CgroupSnapshot:
    """The host's cgroup directories: engines share them with the host."""

    def __init__(self) -> None:
        self.dirs = self.scan()

    @staticmethod
    def scan() -> set[Path]:
        found: set[Path] = set()
        for top in CGROUP_ROOT.iterdir():
            if top.is_dir() and not top.is_symlink():
                for dirpath, _, _ in os.walk(top):
                    found.add(Path(dirpath))
        return found

    def new(self) -> list[Path]:
        """Directories made since the snapshot, deepest first."""
        return sorted(self.scan() - self.dirs, key=lambda p: len(p.parts), reverse=True)

    def remove_new(self, timeout: float = 10) -> list[Path]:
        """rmdir every new cgroup (once its processes are gone); returns the ones that stay."""
        deadline = time.monotonic() + timeout
        left = self.new()
        while left and time.monotonic() < deadline:
            for path in left:
                try:
                    path.rmdir()
                except FileNotFoundError:
                    pass
                except OSError:
                    continue
            left = self.new()
            if left:
                time.sleep(0.05)
        return left


def run_in_pty(
    argv: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = COMMAND_TIMEOUT
) -> tuple[int, str]:
    """Run ``argv`` with a new pty as its stdio (clients refuse ``-t`` without one)."""
    import pty
    import select

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        argv,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=dict(env) if env is not None else None,
        start_new_session=True,
    )
    os.close(slave)
    output = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: every slave fd is closed
                    break
                if not chunk:
                    break
                output += chunk
        try:
            code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{' '.join(argv)}: still running after {timeout:g} s (hung); "
                f"output: {output.decode(errors='replace')!r}"
            ) from None
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return code, output.decode(errors="replace")


class HostSnapshot:
    """What an engine could change on the host besides cgroups: links, firewall rules.

    The sandbox keeps both private (its own network namespace); this checks it.
    """

    def __init__(self) -> None:
        self.links = self.scan_links()
        self.rules = self.scan_rules()

    @staticmethod
    def scan_links() -> list[str]:
        return sorted(os.listdir("/sys/class/net"))

    @staticmethod
    def scan_rules() -> list[str]:
        rules = []
        for tool in ("iptables-save", "ip6tables-save"):
            if shutil.which(tool):
                output = subprocess.run([tool], capture_output=True, text=True, check=False)
                rules += [line for line in output.stdout.splitlines() if not line.startswith("#")]
        return rules

    def changes(self) -> list[str]:
        problems = []
        if (links := self.scan_links()) != self.links:
            problems.append(f"host network interfaces changed: {self.links} -> {links}")
        if (rules := self.scan_rules()) != self.rules:
            problems.append(f"host firewall rules changed: {self.rules} -> {rules}")
        return problems


def processes_mentioning(text: str) -> list[str]:
    """Command lines of host processes that name ``text`` (an engine's work directory)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if text.encode() in cmdline:
                found.append(f"{entry}: {cmdline.decode(errors='replace')[:200]}")
    return found
