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

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import attrs
from anyio.abc import ByteReceiveStream, ByteSendStream, Process

from .._errors import InitError, UsageError, wrong_type
from .._lines import show
from .._plan import ExecPlan
from .._scm import MAX_FDS
from ..config import Capabilities, Spec, User, check_spec
from ..config import Process as ProcessConfig
from ..config._converter import structure_at
from ..sync_pipe import (
    Kind,
    Message,
    PeerGone,
    ProtocolError,
    receive_blocking,
    send_blocking,
    socketpair,
)
from ._compile_namespaces import JOIN_ORDER, NAMESPACE_FLAGS
from ._compile_process import compile_process
from ._compile_seccomp import compile_seccomp
from ._exec_cgroups import exec_cgroups
from ._streams import PtyStream

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


def checked_process(spec: Spec, process: ProcessConfig) -> ProcessConfig:
    """``process`` validated as config.json's would be (errors name ``process.*``)."""
    checked = check_spec(attrs.evolve(spec, process=process)).process
    assert checked is not None
    return checked


#: What a process exec'd into the container takes from the container's own process
#: when it leaves the field unset (runc's newInitConfig: capabilities, AppArmor;
#: its bootstrap data: oom_score_adj; runc 1.2: scheduler, ioPriority, execCPUAffinity).
_CONTAINER_DEFAULTS = (
    "capabilities",
    "apparmor_profile",
    "oom_score_adj",
    "scheduler",
    "io_priority",
    "exec_cpu_affinity",
)


def with_container_defaults(
    process: ProcessConfig, container: ProcessConfig | None
) -> ProcessConfig:
    """``process`` with the container's values where it sets none (runc's fallbacks).

    rlimits are not among them: runc 1.1.5 gives an exec'd process without rlimits
    the caller's limits, and so do we.
    """
    if container is None:
        return process
    changes = {
        name: getattr(container, name)
        for name in _CONTAINER_DEFAULTS
        if getattr(process, name) in (None, "") and getattr(container, name) not in (None, "")
    }
    return attrs.evolve(process, **changes) if changes else process


def exec_plan(
    spec: Spec,
    process: ProcessConfig,
    init_pid: int,
    init_start: int,
    pass_fds: int = 0,
    *,
    console_size: tuple[int, int] | None = None,
    sub_cgroups: Mapping[str, str] | None = None,
) -> ExecPlan:
    """The plan for ``process`` in the container ``spec`` describes, whose init is ``init_pid``.

    ``spec`` is the container's config as created (its seccomp filter, personality
    and the defaults of :func:`with_container_defaults`); ``sub_cgroups`` is runc
    exec's ``--cgroup`` (:func:`~._exec_cgroups.parse_sub_cgroups`).
    """
    from ..config import ConfigError

    process = checked_process(spec, with_container_defaults(process, spec.process))
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
            console_size=console_size,
            seccomp=seccomp,
            personality=spec.linux.personality if spec.linux else None,
        ),
        "init_pid": init_pid,
        "init_start": init_start,
        "join": joined_namespaces(init_pid),
        "cgroups": exec_cgroups(init_pid, sub_cgroups or {}),
    }


#: Fds Container.exec can pass: one sync-pipe message's, less a spilled plan's memfd.
MAX_PASS_FDS = MAX_FDS - 1


def check_exec_arguments(terminal: object, pass_fds: object, console_size: object) -> None:
    """TypeError or UsageError for a bad ``terminal``, ``pass_fds`` or ``console_size``."""
    from ._arguments import is_console_size

    name = "Container.exec"
    if not isinstance(terminal, bool):
        raise wrong_type(name, "terminal", terminal, "a bool")
    if not isinstance(pass_fds, Sequence) or isinstance(pass_fds, str | bytes):
        raise wrong_type(name, "pass_fds", pass_fds, "a sequence of fds")
    for index, fd in enumerate(pass_fds):
        if not isinstance(fd, int) or isinstance(fd, bool):
            raise wrong_type(name, f"pass_fds[{index}]", fd, "an fd (int)")
        if fd < 0:
            raise UsageError(f"{name}(): pass_fds[{index}] must be an fd, not {fd}")
    if len(pass_fds) > MAX_PASS_FDS:
        raise UsageError(f"{name}(): pass_fds: {len(pass_fds)} fds, at most {MAX_PASS_FDS}")
    if console_size is not None and not is_console_size(console_size):
        raise UsageError(
            f"{name}(): console_size must be (rows, columns), not {show(console_size)}"
        )


def recorded_spec(extra: Mapping[str, Any], bundle: str) -> Spec:
    """The container's config as created, from its state (``extra["config"]``).

    runc execs with the config it saved at create, whatever became of the bundle
    since.  A state written before the config was recorded: the bundle's.
    """
    from ..config import load_config

    if "config" in extra:
        return structure_at(extra["config"], Spec, "config")
    return load_config(os.path.join(bundle, "config.json"))


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


def _launcher_argv(sync_fd: int) -> list[str]:
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
    return [sys.executable, "-I", "-S", "-c", code, path, os.pathsep, str(sync_fd)]


class ExecProcess:
    """A process started by :meth:`Container.exec`: its pid, stdio or pty, and exit code.

    ``wait()`` returns the exit code, 128 + N for a death by signal N (runc's).
    """

    def __init__(self, launcher: Process, pid: int, pty: PtyStream | None = None) -> None:
        self._launcher = launcher
        #: host pid of the exec'd process
        self.pid = pid
        self.stdin: ByteSendStream | None = launcher.stdin
        self.stdout: ByteReceiveStream | None = launcher.stdout
        self.stderr: ByteReceiveStream | None = launcher.stderr
        #: the pty master when the process has a terminal (its stdio is the pty slave)
        self.pty = pty

    @property
    def returncode(self) -> int | None:
        return self._launcher.returncode

    async def wait(self) -> int:
        return await self._launcher.wait()

    def send_signal(self, signum: int) -> None:
        """Signal the process (through its launcher, which forwards every signal)."""
        self._launcher.send_signal(signal.Signals(signum))

    async def aclose(self) -> None:
        if self.pty is not None:
            await self.pty.aclose()
        await self._launcher.aclose()


async def start_exec(
    plan: ExecPlan,
    *,
    stdin: int | None = subprocess.PIPE,
    stdout: int | None = subprocess.PIPE,
    stderr: int | None = subprocess.PIPE,
    env: Mapping[str, str] | None = None,
    pass_fds: Sequence[int] = (),
) -> ExecProcess:
    """Start the launcher for ``plan``; returns once the process runs, or raises InitError.

    ``pass_fds`` travel with the plan (SCM_RIGHTS) and reach the process as 3, 4, ...
    """
    ours, theirs = socketpair()
    try:
        try:
            launcher = await anyio.open_process(
                _launcher_argv(theirs.fileno()),
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                pass_fds=(theirs.fileno(),),
                env=dict(env) if env is not None else None,
            )
        finally:
            theirs.close()
        fields, master = await anyio.to_thread.run_sync(_converse, ours, plan, pass_fds)
    finally:
        ours.close()
    if "pid" not in fields:
        await launcher.aclose()  # waits for it and closes our ends of its pipes
        raise InitError.from_fields(fields)
    pty = PtyStream(master) if master is not None else None
    return ExecProcess(launcher, int(fields["pid"]), pty)


def _converse(
    sock: socket.socket, plan: ExecPlan, pass_fds: Sequence[int]
) -> tuple[dict[str, Any], int | None]:
    """The launcher's side of the story: its report's fields and the pty master (if any)."""
    master: int | None = None
    try:
        send_blocking(sock, Message(Kind.PLAN, {"plan": plan}, pass_fds))
        while True:
            try:
                message = receive_blocking(sock)
            except PeerGone:
                fields: dict[str, Any] = {"message": "the exec launcher died"}
                break
            if message.kind == Kind.PTY and len(message.fds) == 1 and master is None:
                master = message.fds[0]
                continue
            for fd in message.fds:
                os.close(fd)
            if message.kind == Kind.WORKLOAD and isinstance(message.fields.get("pid"), int):
                return {"pid": message.fields["pid"]}, master
            if message.kind != Kind.ERROR:
                raise ProtocolError(f"unexpected {message.kind!r} from the exec launcher")
            fields = message.fields
            break
    except BaseException:
        if master is not None:
            os.close(master)
        raise
    if master is not None:
        os.close(master)
    return fields, None
