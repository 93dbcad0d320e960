"""``exec``: deciding a new process in a running container (runc exec's semantics).

Everything is decided here, in the caller: the process (a ``--process`` file, or
the container's own ``process`` with runc's command-line overrides) validated
and compiled as config.json's is, the container's seccomp filter (runc applies
the container's to every exec'd process), the namespaces of the init that
differ from ours (runc's order, user first), and the init's cgroup in every
hierarchy, v1 and v2.  The result is an :class:`~asyncinit._plan.ExecPlan`,
carried out by ``forkserver/_exec.py`` (fork, cgroups, rlimits) and
``init/_exec.py`` (join, credentials, execve).

:meth:`Container.exec <asyncinit.parent._container.Container.exec>` runs the
plan through a launcher process (the caller has threads: no fork here), which
is to the process what ``runc exec`` is: its parent, exit code and signals.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence

import anyio
import attrs
from anyio.abc import ByteReceiveStream, ByteSendStream, Process

from .._errors import InitError
from .._plan import ExecPlan
from ..config import Capabilities, Spec, User, check_spec
from ..config import Process as ProcessConfig
from ..config._converter import structure_at
from ._compile_namespaces import JOIN_ORDER, NAMESPACE_FLAGS
from ._compile_process import compile_process
from ._compile_seccomp import compile_seccomp

#: /proc/PID/ns/ file of each namespace kind, in runc's join order
_NS_FILES = {"network": "net", "mount": "mnt"}


def joined_namespaces(pid: int) -> list[tuple[str, int]]:
    """The init's namespaces that are not ours, as (ns file name, CLONE_NEW*), runc's order."""
    joined = []
    for kind in JOIN_ORDER:
        name = _NS_FILES.get(kind, kind)
        if os.stat(f"/proc/{pid}/ns/{name}").st_ino != os.stat(f"/proc/self/ns/{name}").st_ino:
            joined.append((name, NAMESPACE_FLAGS[kind]))
    return joined


def _cgroup_mounts() -> list[tuple[str, str, frozenset[str]]]:
    """(mount point, root in the hierarchy, options) of every cgroup mount; v2 has no options."""
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            rest = fields[fields.index("-") + 1 :]
            if rest[0] == "cgroup":
                mounts.append((fields[4], fields[3], frozenset(rest[2].split(","))))
            elif rest[0] == "cgroup2":
                mounts.append((fields[4], fields[3], frozenset()))
    return mounts


def cgroup_directories(pid: int) -> list[str]:
    """The host directory of the init's cgroup in each hierarchy it belongs to.

    From /proc/PID/cgroup (read from our cgroup namespace: host paths) and our
    mount table; a hierarchy not mounted here is skipped, as runc skips it.
    """
    mounts = _cgroup_mounts()
    directories = []
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            number, controllers, path = line.rstrip("\n").split(":", 2)
            wanted = frozenset(controllers.split(",")) if number != "0" else frozenset()
            for point, root, options in mounts:
                if (wanted and wanted <= options) or (not wanted and not options):
                    relative = os.path.relpath(path, root) if path != root else "."
                    if not relative.startswith(".."):
                        directories.append(os.path.normpath(os.path.join(point, relative)))
                        break
    return directories


def checked_process(spec: Spec, process: ProcessConfig) -> ProcessConfig:
    """``process`` validated as config.json's would be (errors name ``process.*``)."""
    checked = check_spec(attrs.evolve(spec, process=process)).process
    assert checked is not None
    return checked


def exec_plan(
    spec: Spec, process: ProcessConfig, init_pid: int, init_start: int, pass_fds: int = 0
) -> ExecPlan:
    """The plan for ``process`` in the container ``spec`` describes, whose init is ``init_pid``."""
    from ..config import ConfigError

    process = checked_process(spec, process)
    errors: list[str] = []
    seccomp = compile_seccomp(spec.linux.seccomp if spec.linux else None, errors)
    if errors:
        raise ConfigError(errors)
    return {
        "process": compile_process(
            process,
            mode="exec",
            signal_group=False,
            pass_fds=pass_fds,
            console_size=None,
            seccomp=seccomp,
        ),
        "init_pid": init_pid,
        "init_start": init_start,
        "join": joined_namespaces(init_pid),
        "cgroups": cgroup_directories(init_pid),
    }


def process_from_json(data: object, path: str) -> ProcessConfig:
    """A ``--process`` file's contents (runtime-spec Process), strictly structured."""
    return structure_at(data, ProcessConfig, path)


def process_from_args(
    base: ProcessConfig,
    args: Sequence[str],
    *,
    env: Sequence[str] = (),
    cwd: str | None = None,
    user: tuple[int, int | None] | None = None,
    additional_gids: Sequence[int] = (),
    terminal: bool = False,
    no_new_privileges: bool | None = None,
    caps: Sequence[str] = (),
) -> ProcessConfig:
    """runc exec without ``--process``: the container's process with the command line's changes.

    As runc 1.1: ``args`` replace, ``env`` is appended, ``--cap`` adds to the
    bounding, effective, permitted and ambient sets, ``--tty`` alone sets the
    terminal, ``--no-new-privs`` only when given.
    """
    capabilities = base.capabilities
    if caps:
        old = capabilities or Capabilities()
        capabilities = attrs.evolve(
            old,
            bounding=(*(old.bounding or ()), *caps),
            effective=(*(old.effective or ()), *caps),
            permitted=(*(old.permitted or ()), *caps),
            ambient=(*(old.ambient or ()), *caps),
        )
    uid, gid = user if user is not None else (base.user.uid, None)
    return attrs.evolve(
        base,
        args=tuple(args),
        env=(*base.env, *env),
        cwd=cwd or base.cwd,
        terminal=terminal,
        no_new_privileges=(
            base.no_new_privileges if no_new_privileges is None else no_new_privileges
        ),
        capabilities=capabilities,
        user=User(
            uid=uid,
            gid=base.user.gid if gid is None else gid,
            umask=base.user.umask,
            additional_gids=(*base.user.additional_gids, *additional_gids),
        ),
    )


def _launcher_argv(plan_fd: int, report_fd: int) -> list[str]:
    """The launcher, started as the fork server is (our import path, no site).

    It forks the process that execs into the container, so it first re-execs
    itself from the sealed interpreter (CVE-2019-5736, _exeseal.py): anyio
    cannot start a program apart from its argv[0].
    """
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.pathsep.join([package_parent, *(p for p in sys.path if p)])
    code = (
        "import sys; sys.path[:] = sys.argv[1].split(sys.argv[2]); "
        "from asyncinit._exeseal import reexec_sealed; reexec_sealed(); "
        "del sys.argv[1:3]; from asyncinit.forkserver._exec import main; main()"
    )
    return [sys.executable, "-I", "-S", "-c", code, path, os.pathsep, str(plan_fd), str(report_fd)]


class ExecProcess:
    """A process started by :meth:`Container.exec`: its pid, stdio and exit code.

    ``wait()`` returns the exit code, 128 + N for a death by signal N (runc's).
    """

    def __init__(self, launcher: Process, pid: int) -> None:
        self._launcher = launcher
        #: host pid of the exec'd process
        self.pid = pid
        self.stdin: ByteSendStream | None = launcher.stdin
        self.stdout: ByteReceiveStream | None = launcher.stdout
        self.stderr: ByteReceiveStream | None = launcher.stderr

    @property
    def returncode(self) -> int | None:
        return self._launcher.returncode

    async def wait(self) -> int:
        return await self._launcher.wait()

    def send_signal(self, signum: int) -> None:
        """Signal the process (through its launcher, which forwards every signal)."""
        self._launcher.send_signal(signal.Signals(signum))

    async def aclose(self) -> None:
        await self._launcher.aclose()


async def start_exec(
    plan: ExecPlan,
    *,
    stdin: int | None = subprocess.PIPE,
    stdout: int | None = subprocess.PIPE,
    stderr: int | None = subprocess.PIPE,
    env: Mapping[str, str] | None = None,
) -> ExecProcess:
    """Start the launcher for ``plan``; returns once the process runs, or raises InitError."""
    plan_read, plan_write = os.pipe()
    report_read, report_write = os.pipe()
    try:
        try:
            launcher = await anyio.open_process(
                _launcher_argv(plan_read, report_write),
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                pass_fds=(plan_read, report_write),
                env=dict(env) if env is not None else None,
            )
        finally:
            os.close(plan_read)
            os.close(report_write)
        fd, plan_write = plan_write, -1  # _write_all closes it
        await anyio.to_thread.run_sync(_write_all, fd, json.dumps(plan).encode())
        report = await anyio.to_thread.run_sync(_read_all, report_read)
    finally:
        os.close(report_read)
        if plan_write >= 0:
            os.close(plan_write)
    fields = json.loads(report) if report else {"message": "the exec launcher died"}
    if "pid" not in fields:
        await launcher.aclose()  # waits for it and closes our ends of its pipes
        raise InitError.from_fields(fields)
    return ExecProcess(launcher, int(fields["pid"]))


def _write_all(fd: int, data: bytes) -> None:
    with os.fdopen(fd, "wb") as f:  # closes fd: the launcher reads to end of file
        f.write(data)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)
