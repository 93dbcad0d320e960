"""The fork server's wire: its message types and the launch request (docs/protocol.md).

Stdlib only: imported by the caller (``parent/``) and by the server, so that
mypy sees both ends of every message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, TypedDict

if TYPE_CHECKING:
    from ..cgroups._plan import CgroupPlan

#: fds at the head of every launch request: sync (init end), stdin, stdout, stderr,
#: status (server end); then one per ``join`` entry, the cgroup directory when
#: ``born_in_cgroup``, then the passed fds.
FIXED_FDS: Final = 5


class ServerKind:
    """Message types on the control and status sockets.  ``->`` gives the direction."""

    LAUNCH: Final = "launch"  # caller -> server (control socket): fork a PID 1
    STARTED: Final = "started"  # server -> caller (status socket): {"pid"} + a pidfd
    LAUNCH_ERROR: Final = "launch_error"  # server -> caller: error fields, nothing started
    EXITED: Final = "exited"  # server -> caller: {"status"}, PID 1's raw wait status
    #: server -> caller (control socket): error fields; it could not start, or could not
    #: receive a request (its fds did not fit), whose status socket then closes unanswered
    ERROR: Final = "error"


class LaunchRequest(TypedDict):
    """The fields of ``launch``, compiled by ``compile_spec``."""

    #: CLONE_NEW* bits of the namespaces to create
    clone_flags: int
    #: nstype of each joined namespace, in runc's order (their fds follow the fixed ones)
    join: list[int]
    #: /proc/PID/uid_map and gid_map contents; "" without a user namespace
    uid_map: str
    gid_map: str
    #: write "deny" to /proc/PID/setgroups first (user namespace, caller not root)
    deny_setgroups: bool
    oom_score_adj: int | None
    #: /proc/self/timens_offsets contents for a new time namespace (written after the
    #: unshare, before PID 1 is forked into it); "" for none
    time_offsets: str
    #: the init's event loop: "asyncio" or "trio"
    backend: str
    #: the container's cgroup: the server destroys it if the caller dies first
    cgroup: CgroupPlan | None
    #: cgroup v2 with clone3(CLONE_INTO_CGROUP): the server's child (PID 1, or the
    #: intermediate that forks it) is born in the cgroup whose directory fd follows the
    #: join fds; no move, no ``cgroup`` word (plan["await_cgroup"] is False)
    born_in_cgroup: bool
    #: cgroup v1: directories whose ``tasks`` the server's child, still single-threaded,
    #: writes 0 into before anything else (PID 1 on the direct path, the intermediate
    #: otherwise): no move by the parent, no ``cgroup`` word, no RCU grace period
    join_cgroups: list[str]
