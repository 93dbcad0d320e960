"""Fixtures shared by the engine suites: the runtimes, the image tarball, an engine's world.

Each engine module builds one :class:`World` per runtime (module scope): a
sandbox, a tracing wrapper around the runtime, a cgroup snapshot.  Tests are
parametrized over the runtimes through the ``runtime`` fixture; a runtime that
cannot run here (runc missing, asyncinit without its runc command line yet) is
skipped with the reason.

Set ``ENGINE_TRACES=DIR`` to write each engine's calls, normalized and grouped
by test, to ``DIR/<engine>-<runtime>.txt`` (tests/engines/traces/ holds the
committed ones).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from asyncinit._demo import build_busybox_rootfs, busybox_is_static

from ._runtimes import Call, Runtime, read_trace, runtimes, tracing_wrapper
from ._sandbox import CgroupSnapshot, HostSnapshot, Sandbox, processes_mentioning

RUNTIME_NAMES = ("runc", "asyncinit")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "runc_commands(*names): runc commands the case sends beyond the lifecycle"
    )


@pytest.fixture(autouse=True)
def _commands_carried_out(request: pytest.FixtureRequest) -> None:
    """Skip a case whose runtime does not carry out a command it sends (yet)."""
    callspec = getattr(request.node, "callspec", None)
    name = callspec.params.get("runtime") if callspec is not None else None
    marker = request.node.get_closest_marker("runc_commands")
    if name is None or marker is None:
        return
    runtime = request.getfixturevalue("known_runtimes")[name]
    lacking = sorted(set(marker.args) & runtime.missing)
    if lacking:
        pytest.skip(f"{name} does not carry out {', '.join(lacking)} yet (issue 15: ocicmds)")


@pytest.fixture(scope="session")
def known_runtimes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Runtime]:
    return {r.name: r for r in runtimes(tmp_path_factory.mktemp("runtimes"))}


@pytest.fixture(scope="module", params=RUNTIME_NAMES)
def runtime(request: pytest.FixtureRequest, known_runtimes: dict[str, Runtime]) -> Runtime:
    found = known_runtimes[request.param]
    if found.skip_reason is not None:
        pytest.skip(found.skip_reason)
    return found


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tarball of tests/conftest.py's busybox rootfs (what `podman import` etc. take)."""
    if not busybox_is_static():
        pytest.skip("busybox-static is not installed (apt-get install busybox-static)")
    scratch = tmp_path_factory.mktemp("busybox")
    rootfs = scratch / "rootfs"
    build_busybox_rootfs(rootfs)
    (rootfs / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
    )
    (rootfs / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    tar = scratch / "busybox.tar"
    with tarfile.open(tar, "w") as archive:
        for entry in sorted(rootfs.iterdir()):
            archive.add(entry, arcname=entry.name)
    return tar


def require(*commands: str) -> pytest.MarkDecorator:
    missing = [c for c in commands if shutil.which(c) is None]
    return pytest.mark.skipif(
        bool(missing), reason=f"not installed: {', '.join(missing)} (see tests/engines/README.md)"
    )


class World:
    """One engine's private world: sandbox, traced runtime, cgroup snapshot, trace marks."""

    def __init__(self, engine: str, runtime: Runtime, workdir: Path) -> None:
        assert runtime.path is not None
        self.engine = engine
        self.runtime = runtime
        self.workdir = workdir
        self.trace_dir = workdir / "trace"
        self.wrapper = tracing_wrapper(runtime.path, workdir, self.trace_dir)
        self.cgroups = CgroupSnapshot()
        self.host = HostSnapshot()
        self.sandbox = Sandbox(workdir)
        self.started = time.monotonic()
        self.cases: list[tuple[str, list[Call]]] = []
        self._seen = 0

    def calls(self) -> list[Call]:
        return read_trace(self.trace_dir)

    def mark(self, case: str) -> None:
        """Attribute the calls made since the last mark to ``case``."""
        calls = self.calls()
        self.cases.append((case, calls[self._seen :]))
        self._seen = len(calls)

    def container_ids(self) -> set[str]:
        """Every container id the engine named to the runtime (its last argument on create)."""
        return {c.argv[-1] for c in self.calls() if c.command == "create"}

    def close(self) -> list[str]:
        """Kill the sandbox; remove the cgroups left; return the problems found.

        A container's cgroup that outlived the engine's delete is the runtime's leak;
        the engines' own parents (libpod_parent, docker, the containerd namespace)
        are removed here. Processes, links and firewall rules must be untouched.
        """
        problems = []
        leaked = [p for p in self.cgroups.new() if any(i in p.name for i in self.container_ids())]
        if leaked:
            problems.append(f"container cgroups left after delete: {sorted(map(str, leaked))}")
        self.sandbox.close()
        stuck = self.cgroups.remove_new()
        if stuck:
            problems.append(f"cgroups that could not be removed: {stuck}")
        if left := processes_mentioning(str(self.workdir)):
            problems.append(f"processes left: {left}")
        return problems + self.host.changes()

    def save_trace(self) -> None:
        directory = os.environ.get("ENGINE_TRACES")
        if not directory:
            return
        path = Path(directory) / f"{self.engine}-{self.runtime.name}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.render_trace())

    def render_trace(self) -> str:
        shapes = sorted({self.shape(call) for _, calls in self.cases for call in calls})
        lines = [
            f"# {self.engine} with {self.runtime.name}: every call of the runtime.",
            "# First the distinct command lines (values shown as <...>), then every call grouped",
            "# by test case: <exit code> <parent process> <fd 0,1,2> $ <argv>.",
            "",
            "## distinct command lines",
            *shapes,
        ]
        for case, calls in self.cases:
            lines.append(f"\n## {case}")
            lines.extend(self.render_call(call) for call in calls)
        return "\n".join(lines) + "\n"

    def render_call(self, call: Call) -> str:
        argv = " ".join(shlex.quote(self.normalize(a)) for a in call.argv)
        stdio = ",".join(_stdio_kind(s) for s in call.stdio)
        return f"{call.exit_code} {call.parent} {stdio} $ runtime {argv}"

    def normalize(self, text: str) -> str:
        text = text.replace(str(self.workdir), "$WORK")
        text = re.sub(r"\b[0-9a-f]{64}\b", "<id>", text)
        text = re.sub(r"\bc-[0-9a-f]{10}\b", "<id>", text)  # the tests' container names
        text = re.sub(r"^/tmp/(runc-process|pty|conmon-term\.)\w+", r"/tmp/\1<random>", text)
        return re.sub(r"/proc/\d+/", "/proc/<pid>/", text)

    def shape(self, call: Call) -> str:
        """The command line with its values generalized: <id>, <path>, <n>."""
        words = []
        signal = call.argv[-1] if call.command == "kill" else None
        for index, arg in enumerate(call.argv):
            if signal is not None and index == len(call.argv) - 1:
                words.append(signal)  # the signal as the engine spells it
                continue
            name, eq, value = arg.partition("=")
            if eq and name.startswith("-"):
                words.append(f"{name}={_placeholder(value)}")
            elif arg.startswith("-") or arg == call.command:
                words.append(arg)
            else:
                words.append(_placeholder(arg))
        return "runtime " + " ".join(words)


def _placeholder(value: str) -> str:
    if value.startswith("/"):
        return "<path>"
    if value.isdigit():
        return "<n>"
    if value == "-":
        return "-"
    if value in ("json", "table", "text"):
        return value
    return "<id>"


def _stdio_kind(target: str) -> str:
    if target.startswith(("pipe:", "socket:", "anon_inode:")):
        return target.split(":", maxsplit=1)[0]
    if target.startswith("/dev/pts/"):
        return "pty"
    return target if target in ("/dev/null", "closed") else "file"


@pytest.fixture(autouse=True)
def _trace_case(request: pytest.FixtureRequest) -> Iterator[None]:
    """Attribute the runtime calls each test makes to it in the trace."""
    yield
    for value in request.node.funcargs.values():
        world = getattr(value, "world", None)
        if isinstance(world, World):
            world.mark(request.node.name.split("[")[0])
