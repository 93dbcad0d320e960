"""Every runc command, its flags and argument count (runc 1.1's, for a drop-in runtime).

The flags are runc's, names and kinds, so that whatever an engine sends parses;
what a flag does is the command's business.  asyncinit adds none here: its own
``run`` flags (``--backend``, ``--init``...) are for the wiring to merge.
"""

from __future__ import annotations

import os

from ._args import BOOL, INT, INTS, STRING, STRINGS, UINT, Command, Flag

DEFAULT_ROOT = "/run/asyncinit"
"""Where container state lives by default (runc: /run/runc); every call must find it."""

EXIT_ERROR = 1  # any failure (runc's fatal)
EXIT_UNKNOWN_COMMAND = 3  # urfave/cli's "No help topic"
EXIT_EXEC_FAILED = 255  # `runc exec` failing before the process ran ("exec failed: ...")


def default_root() -> str:
    """runc's rule: $XDG_RUNTIME_DIR/<name> for a non-root caller that has one, else /run/<name>."""
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if os.geteuid() != 0 and runtime_dir:
        return os.path.join(runtime_dir, "asyncinit")
    return DEFAULT_ROOT


GLOBAL_FLAGS = (
    Flag("debug", BOOL, "enable debug logging"),
    Flag("log", STRING, "set the log file to write logs to (default is '/dev/stderr')"),
    Flag("log-format", STRING, "set the log format ('text' (default), or 'json')", "text"),
    Flag("root", STRING, "root directory for storage of container state (on tmpfs)", ""),
    Flag("criu", STRING, "path to the criu binary (checkpoint/restore: not supported)", "criu"),
    Flag("systemd-cgroup", BOOL, "systemd cgroup driver (not supported: refused)"),
    Flag("rootless", STRING, "ignore cgroup permission errors ('true', 'false' or 'auto')", "auto"),
    Flag("help, h", BOOL, "show help"),
    Flag("version, v", BOOL, "print the version"),
)

_BUNDLE = Flag("bundle, b", STRING, "path to the root of the bundle directory (default: .)")
_CONSOLE = Flag(
    "console-socket", STRING, "AF_UNIX socket that receives the pty master (SCM_RIGHTS)"
)
_PID_FILE = Flag("pid-file", STRING, "file to write the process id to")
_NO_PIVOT = Flag("no-pivot", BOOL, "jail with MS_MOVE + chroot instead of pivot_root")
_NO_KEYRING = Flag("no-new-keyring", BOOL, "do not create a new session keyring")
_PRESERVE = Flag("preserve-fds", UINT, "pass N additional file descriptors (after stdio)")
_FORMAT = Flag("format, f", STRING, "select one of: table or json", "table")
_ID = "<container-id>"

_CREATE_FLAGS = (_BUNDLE, _CONSOLE, _PID_FILE, _NO_PIVOT, _NO_KEYRING, _PRESERVE)
_EXEC_FLAGS = (
    _CONSOLE,
    Flag("cwd", STRING, "current working directory in the container"),
    Flag("env, e", STRINGS, "set environment variables"),
    Flag("tty, t", BOOL, "allocate a pseudo-TTY"),
    Flag("user, u", STRING, "UID (format: <uid>[:<gid>])"),
    Flag("additional-gids, g", INTS, "additional gids"),
    Flag("process, p", STRING, "path to the process.json"),
    Flag("detach, d", BOOL, "detach from the container's process"),
    _PID_FILE,
    Flag("process-label", STRING, "SELinux process label (not supported)"),
    Flag("apparmor", STRING, "set the apparmor profile for the process"),
    Flag("no-new-privs", BOOL, "set no_new_privs for the process"),
    Flag("cap, c", STRINGS, "add a capability to the bounding set for the process"),
    _PRESERVE,
    Flag("cgroup", STRINGS, "run the process in an (existing) sub-cgroup: [<controller>:]<cgroup>"),
    Flag("ignore-paused", BOOL, "allow exec in a paused container"),
)
_UPDATE_FLAGS = (
    Flag("resources, r", STRING, "LinuxResources JSON file, '-' for stdin (other flags ignored)"),
    Flag("blkio-weight", INT, "per cgroup weight, 10 to 1000"),
    Flag("cpu-period", STRING, "CPU CFS period (usecs)"),
    Flag("cpu-quota", STRING, "CPU CFS quota (usecs)"),
    Flag("cpu-share", STRING, "CPU shares"),
    Flag("cpu-rt-period", STRING, "CPU realtime period (usecs)"),
    Flag("cpu-rt-runtime", STRING, "CPU realtime runtime (usecs)"),
    Flag("cpuset-cpus", STRING, "CPU(s) to use"),
    Flag("cpuset-mems", STRING, "memory node(s) to use"),
    Flag("kernel-memory", STRING, "kernel memory limit (ignored, as by runc)"),
    Flag("kernel-memory-tcp", STRING, "kernel TCP memory limit (ignored, as by runc)"),
    Flag("memory", STRING, "memory limit (bytes, or with a unit: 64m)"),
    Flag("memory-reservation", STRING, "memory soft limit"),
    Flag("memory-swap", STRING, "memory + swap limit; -1 for unlimited"),
    Flag("pids-limit", INT, "maximum number of pids"),
    Flag("l3-cache-schema", STRING, "Intel RDT L3 cache schema (not supported)"),
    Flag("mem-bw-schema", STRING, "Intel RDT memory bandwidth schema (not supported)"),
)

COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command("create", "create a container", _ID, _CREATE_FLAGS),
        Command("start", "executes the user defined process in a created container", _ID),
        Command("state", "output the state of a container", _ID),
        Command(
            "kill",
            "send a signal (default: SIGTERM) to the container's init process",
            f"{_ID} [signal]",
            (Flag("all, a", BOOL, "send the signal to all processes in the container"),),
            want="a minimum of",
            most=2,
        ),
        Command(
            "delete",
            "delete any resources held by the container",
            _ID,
            (Flag("force, f", BOOL, "kill (SIGKILL) and delete a created or running container"),),
        ),
        Command(
            "exec",
            "execute new process inside the container",
            f"{_ID} <command> [command options]  ||  -p process.json {_ID}",
            _EXEC_FLAGS,
            want="a minimum of",
            reorder=False,
        ),
        Command(
            "ps",
            "ps displays the processes running inside a container",
            f"{_ID} [ps options]",
            (_FORMAT,),
            want="a minimum of",
            reorder=False,
        ),
        Command(
            "list",
            "lists containers started by asyncinit with the given root",
            "",
            (_FORMAT, Flag("quiet, q", BOOL, "display only container IDs")),
            count=0,
        ),
        Command("pause", "pause suspends all processes inside the container", _ID),
        Command("resume", "resumes all processes that have been previously paused", _ID),
        Command(
            "events",
            "display container events such as OOM notifications, cpu, memory and IO usage",
            _ID,
            (
                Flag("interval", STRING, "set the stats collection interval", "5s"),
                Flag("stats", BOOL, "display the container's stats then exit"),
            ),
        ),
        Command("update", "update container resource constraints", _ID, _UPDATE_FLAGS),
        Command("features", "show the enabled features", "", count=0),
        Command(
            "run",
            "create and run a container",
            _ID,
            (
                *_CREATE_FLAGS,
                Flag("detach, d", BOOL, "detach from the container's process"),
                Flag("keep", BOOL, "do not delete the container after it exits"),
                Flag("no-subreaper", BOOL, "disable the use of the subreaper"),
            ),
        ),
        Command(
            "spec",
            "create a new specification file",
            "",
            (_BUNDLE, Flag("rootless", BOOL, "generate a configuration for a rootless container")),
            count=0,
        ),
        Command("checkpoint", "checkpoint a running container (not supported)", _ID),
        Command("restore", "restore a container from a previous checkpoint (not supported)", _ID),
    )
}
