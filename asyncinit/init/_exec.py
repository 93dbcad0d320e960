"""``exec``: the runtime's child that joins a running container and becomes the process.

Forked by the runtime (forkserver/_exec.py) straight into the container's pid
namespace, non-dumpable from its first instruction (CVE-2019-5736: this is a
host interpreter inside the container), with only stdio, the preserved fds, the
sync socket and the namespace fds open.  It takes process.execCPUAffinity's
``initial`` CPUs and opens a private procfs for process.apparmorProfile while
still in the host's namespaces, joins the other namespaces in runc's order (user
first), says ``ready`` and waits for ``run`` while the runtime moves it into the
container's cgroups, sets its ``final`` CPUs and its rlimits, then carries out
the process as PID 1 carries out its own (init/_process.py): seccomp before the
credentials (or right before execve with no_new_privs, as runc's setns init),
terminal, credentials, umask, cwd resolved inside the container (CVE-2024-21626),
every other fd closed, the AppArmor exec attribute, execve.  A failure goes to
the runtime as ``error``.

Everything this imports is imported by the runtime before the fork: once the
mount namespace is joined, a lazy import would read the container's files.
"""

from __future__ import annotations

import os
import socket
from typing import NoReturn

from .._errors import error_fields
from .._fs._procfs import open_private_procfs
from .._plan import ExecPlan, ProcessPlan
from .._syscalls._process import setns
from ..sync_pipe import Kind, Message, ProtocolError, receive_blocking, send_blocking
from ._attributes import set_cpu_affinity, set_io_priority, set_scheduler
from ._process import exec_workload, load_seccomp, prepare_process
from ._terminal import Terminal


def _join(plan: ExecPlan, join_fds: list[int]) -> None:
    """setns into each namespace but pid (the fork put us there), in the plan's order."""
    for fd, (name, nstype) in zip(join_fds, plan["join"], strict=True):
        if name != "pid":
            setns(fd, nstype, path=f"/proc/{plan['init_pid']}/ns/{name}")
        os.close(fd)


def _wait_run(sync: socket.socket) -> None:
    send_blocking(sync, Message(Kind.READY, {"pid": os.getpid()}))
    reply = receive_blocking(sync)
    if reply.kind != Kind.RUN:
        raise ProtocolError(f"expected {Kind.RUN!r}, got {reply.kind!r}")


def _open_terminal() -> Terminal:
    """The pty from the container's own /dev/ptmx, resolved inside its root."""
    root = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return Terminal.open(root, console=False)
    finally:
        os.close(root)


def _before_join(process: ProcessPlan) -> int:
    """What must happen in the host's namespaces: process.execCPUAffinity's ``initial``
    CPUs (runc 1.2: the runtime's child runs on them until it is in the cgroup), and
    process.apparmorProfile's private procfs (returned; -1 without a profile)."""
    affinity = process["exec_cpu_affinity"]
    if affinity is not None and affinity["initial"] is not None:
        set_cpu_affinity(affinity["initial"], "process.execCPUAffinity.initial")
    if process["apparmor_profile"] is None:
        return -1
    # A procfs of the container's pid namespace (the fork put us there), mounted by
    # nobody: nothing the container mounts can redirect the write (as the init's).
    return open_private_procfs()


def run_exec_child(plan: ExecPlan, sync: socket.socket, join_fds: list[int]) -> NoReturn:
    """Join, wait for the runtime, become the process; never returns."""
    process = plan["process"]
    stage = "process"
    try:
        procfd = _before_join(process)
        stage = "namespaces"
        _join(plan, join_fds)
        _wait_run(sync)
        stage = "scheduler"  # as the init: in the container's cgroup (SCHED_FIFO's budget)
        set_scheduler(process)
        set_io_priority(process)
        stage = "seccomp"
        if not process["no_new_privileges"]:
            listener = load_seccomp(process)
            if listener is not None:  # no agent for exec'd processes
                os.close(listener)
                raise ProtocolError("linux.seccomp.listenerPath: not supported by exec yet")
        stage = "process"
        terminal = _open_terminal() if process["terminal"] else None
        prepared = prepare_process(process, sync, terminal)._replace(procfd=procfd)
        prepared.env.pop("LISTEN_FDS", None)  # runc exec passes fds without it
        stage = "exec"
        exec_workload(process, prepared, sync)
    except BaseException as exc:
        try:
            send_blocking(sync, Message(Kind.ERROR, error_fields(exc, stage)))
        finally:
            os._exit(127)
