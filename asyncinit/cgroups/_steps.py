"""Plain synchronous steps that carry out a CgroupPlan: no policy, no asyncio.

Order for a new container: ``create`` (directories; joins a cgroup that
already holds processes with a warning and refuses a frozen one, as runc
1.1.5), ``apply_limits`` (every write, then the device rules), ``enter`` (a pid
into ``cgroup.procs``), ``join_self`` (v1: the caller's own thread into
``tasks``) or, on v2, ``open_directory`` for ``clone3(CLONE_INTO_CGROUP)``.  ``remove`` undoes
``create``.  Each failure is a ``CgroupError`` naming the field, file and errno.
Only the standard library and ``_syscalls`` are imported: these steps may run
in the init.
"""

from __future__ import annotations

import errno
import os
import posixpath
import time
from collections.abc import Iterable, Sequence
from typing import TypedDict

from .._errors import CgroupError
from .._syscalls import operation_of
from .._syscalls._bpf import (
    BPF_CGROUP_DEVICE,
    BPF_F_ALLOW_MULTI,
    BPF_PROG_TYPE_CGROUP_DEVICE,
    bpf_prog_attach,
    bpf_prog_detach,
    bpf_prog_get_fd_by_id,
    bpf_prog_load,
    bpf_prog_query,
)
from ._plan import CgroupPlan, DevicesPlan, HierarchyPlan, WriteOp

_ROOTLESS_IGNORED = (errno.EPERM, errno.EACCES, errno.EROFS)


class Created(TypedDict):
    """What ``create`` did: directories it made (deepest last), hierarchies it
    skipped (rootless without permission, as runc) and existing ones it shares
    with processes that were there before, with a warning for each."""

    created: list[str]
    skipped: list[str]
    #: existing directories that held processes: joined, never emptied by us
    shared: list[str]
    warnings: list[str]


def _error(
    exc: OSError, message: str, path: str, field: str | None = None, op: str = "write"
) -> CgroupError:
    return CgroupError(
        f"{message}: {exc.strerror or exc}",
        path=path,
        field=field,
        errno=exc.errno or 0,
        operation=op,
    )


def write_file(directory: str, name: str, value: str) -> None:
    """One write(2) of ``value``: cgroup files take one setting per write."""
    fd = os.open(posixpath.join(directory, name), os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def read_file(directory: str, name: str) -> str:
    with open(posixpath.join(directory, name)) as f:
        return f.read()


def _populated(directory: str) -> int:
    """How many processes the cgroup and its descendants hold (runc's GetAllPids)."""
    count = 0
    for path, _dirs, files in os.walk(directory):
        if "cgroup.procs" in files:
            count += len(read_file(path, "cgroup.procs").split())
    return count


def _frozen(directory: str) -> bool:
    for name, frozen in (("cgroup.freeze", "1"), ("freezer.state", "FROZEN")):
        try:
            return read_file(directory, name).strip() == frozen
        except FileNotFoundError:
            continue
    return False


def _check_reusable(directory: str, result: Created) -> None:
    """runc 1.1.5: a cgroup that already holds processes is joined with a warning
    (it is then *shared*: see ``Created``); a frozen one is refused."""
    try:
        count = _populated(directory)
        frozen = _frozen(directory)
    except OSError as exc:
        raise _error(exc, "cannot inspect the existing cgroup", directory, op="read") from exc
    if count and directory not in result["shared"]:
        result["shared"].append(directory)
        result["warnings"].append(
            f"the container's cgroup {directory} is not empty: {count} process(es) found;"
            " they are not the container's: they are neither limited away nor killed with it"
        )
    if frozen:
        raise CgroupError(
            "the container's cgroup is unexpectedly frozen",
            path=directory,
            errno=errno.EBUSY,
            operation="create",
        )


def _missing_ancestors(directory: str) -> list[str]:
    missing = []
    while not os.path.isdir(directory):
        missing.append(directory)
        directory = posixpath.dirname(directory)
    return missing[::-1]


def _inherit(directory: str, names: Sequence[str]) -> None:
    """v1 cpuset: copy the parent's cpus/mems where the new cgroup has none."""
    parent = posixpath.dirname(directory)
    for name in names:
        if not read_file(directory, name).strip():
            write_file(directory, name, read_file(parent, name))


def _enable_v2(plan: CgroupPlan, directory: str) -> None:
    """Enable the host's controllers in each ancestor's subtree_control."""
    mount = plan["v2_mount"]
    if not plan["enable"] or not mount:
        return
    relative = posixpath.relpath(posixpath.dirname(directory), mount)
    current = mount
    for part in [] if relative == "." else relative.split("/"):
        _enable_one(current, plan["enable"])
        current = posixpath.join(current, part)
    _enable_one(current, plan["enable"])


def _enable_one(directory: str, enable: str) -> None:
    try:
        if set(read_file(directory, "cgroup.subtree_control").split()) >= {
            c[1:] for c in enable.split()
        }:
            return
        write_file(directory, "cgroup.subtree_control", enable)
    except OSError:
        for controller in enable.split():  # one by one: some may not be delegated to us
            try:
                write_file(directory, "cgroup.subtree_control", controller)
            except OSError:
                continue  # caught where a limit needs it (runc's behaviour)


def _create_one(plan: CgroupPlan, hierarchy: HierarchyPlan, result: Created) -> None:
    directory = hierarchy["directory"]
    missing = _missing_ancestors(directory)
    if not missing:
        _check_reusable(directory, result)
    if plan["version"] == 2:
        _enable_v2(plan, directory)
    for path in missing:
        try:
            os.mkdir(path, 0o755)
        except FileExistsError:
            continue  # raced with another container creating the same parent
        result["created"].append(path)
        if hierarchy["inherit"]:
            _inherit(path, hierarchy["inherit"])
    if hierarchy["inherit"] and not missing:
        _inherit(directory, hierarchy["inherit"])


def create(plan: CgroupPlan) -> Created:
    """Create every directory of ``plan``; on failure, remove what was created."""
    result: Created = {"created": [], "skipped": [], "shared": [], "warnings": []}
    try:
        for hierarchy in plan["hierarchies"]:
            try:
                _create_one(plan, hierarchy, result)
            except OSError as exc:
                if (
                    plan["rootless"]
                    and not plan["explicit_path"]
                    and exc.errno in _ROOTLESS_IGNORED
                ):
                    result["skipped"].append(hierarchy["directory"])
                    result["warnings"].append(
                        f"cannot create cgroup {hierarchy['directory']} ({exc.strerror}): "
                        "rootless container without a delegated cgroup; no limits there"
                    )
                    continue
                raise _error(
                    exc,
                    "cannot create the cgroup",
                    getattr(exc, "filename", None) or hierarchy["directory"],
                    op="mkdir",
                ) from exc
    except BaseException:
        remove_directories(result["created"][::-1])
        raise
    return result


def _write_op(directory: str, op: WriteOp) -> None:
    try:
        write_file(directory, op["file"], op["value"])
        return
    except FileNotFoundError:
        if not op["fallback"] and not op["optional"]:
            raise
    for file, value in op["fallback"]:
        try:
            write_file(directory, file, value)
            return
        except FileNotFoundError:
            continue
    if not op["optional"]:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), op["file"])


def _write_failure(directory: str, op: WriteOp, exc: OSError) -> CgroupError:
    path = posixpath.join(directory, op["file"])
    if exc.errno == errno.ENOENT:
        files = " or ".join([op["file"], *(f for f, _ in op["fallback"])])
        message = f"not supported by this kernel or cgroup (no {files})"
        return CgroupError(
            message, path=path, field=op["field"], errno=exc.errno, operation="write"
        )
    hint = ""
    if exc.errno == errno.EBUSY and op["file"] in (
        "memory.limit_in_bytes",
        "memory.memsw.limit_in_bytes",
    ):
        hint = f" (usage is {read_file(directory, 'memory.usage_in_bytes').strip()} bytes)"
    return _error(exc, f"cannot write {op['value']!r} to {op['file']}{hint}", path, op["field"])


def write_all(directory: str, ops: Iterable[WriteOp]) -> None:
    """Write ``ops`` in order; EINVAL on a ``retry`` op is retried once at the end."""
    later: list[WriteOp] = []
    for op in ops:
        try:
            _write_op(directory, op)
        except OSError as exc:
            if op["retry"] and exc.errno == errno.EINVAL:
                later.append(op)
                continue
            raise _write_failure(directory, op, exc) from exc
    for op in later:
        try:
            _write_op(directory, op)
        except OSError as exc:
            raise _write_failure(directory, op, exc) from exc


def _usage_checks(hierarchy: HierarchyPlan) -> None:
    for check in hierarchy["checks"]:
        total = 0
        for name in check["files"]:
            try:
                total += int(read_file(hierarchy["directory"], name))
            except FileNotFoundError:
                continue
        if total >= check["limit"]:
            raise CgroupError(
                f"rejecting limit {check['limit']} below the current usage {total}"
                " (checkBeforeUpdate)",
                path=hierarchy["directory"],
                field=check["field"],
                errno=errno.EBUSY,
                operation="write",
            )


def apply_limits(plan: CgroupPlan, skipped: Sequence[str] = ()) -> None:
    """Every write of the plan, then the device rules."""
    for hierarchy in plan["hierarchies"]:
        if hierarchy["directory"] in skipped:
            if hierarchy["writes"]:
                op = hierarchy["writes"][0]
                raise CgroupError(
                    "cannot set this limit: the container could not create its cgroup "
                    "(rootless without a delegated cgroup)",
                    path=hierarchy["directory"],
                    field=op["field"],
                    errno=errno.EPERM,
                    operation="write",
                )
            continue
        _usage_checks(hierarchy)
        write_all(hierarchy["directory"], hierarchy["writes"])
    devices = plan["devices"]
    if devices is None:
        return
    try:
        v1 = plan["version"] == 1
        directory = devices_directory(plan) if v1 else plan["hierarchies"][0]["directory"]
        if directory not in skipped:
            (apply_devices_v1 if v1 else apply_devices_v2)(directory, devices)
    except CgroupError:
        if not devices["ignore_errors"]:
            raise


def devices_directory(plan: CgroupPlan) -> str:
    return next(h["directory"] for h in plan["hierarchies"] if "devices" in h["controllers"])


def apply_devices_v1(directory: str, devices: DevicesPlan) -> None:
    """Write the device rules, then check devices.list shows exactly the target (as runc)."""
    field = "linux.resources.devices"
    for file, line in devices["v1_writes"]:
        try:
            write_file(directory, file, line)
        except OSError as exc:
            raise _error(
                exc, f"cannot write {line!r} to {file}", posixpath.join(directory, file), field
            ) from exc
    shown = sorted(line for line in read_file(directory, "devices.list").split("\n") if line)
    # an allow-all cgroup lists only "a *:* rwm" whatever it denies: check the mode only
    expected = ["a *:* rwm"] if devices["default_allow"] else sorted(devices["rules"])
    if shown != expected:
        raise CgroupError(
            f"the devices cgroup does not show the rules asked for: {shown} instead of {expected}",
            path=posixpath.join(directory, "devices.list"),
            field=field,
            errno=errno.EIO,
            operation="verify",
        )


def apply_devices_v2(directory: str, devices: DevicesPlan) -> None:
    """Load the device filter and attach it; replace the one attached before, if any."""
    field = "linux.resources.devices"
    try:
        dirfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise _error(exc, "cannot open the cgroup", directory, field, "open") from exc
    try:
        try:
            old = bpf_prog_query(dirfd, BPF_CGROUP_DEVICE)
            prog = bpf_prog_load(
                BPF_PROG_TYPE_CGROUP_DEVICE, bytes.fromhex(devices["bpf"]), devices["license"]
            )
        except OSError as exc:
            raise _error(
                exc,
                "cannot load the device filter",
                directory,
                field,
                operation_of(exc) or "bpf",
            ) from exc
        try:
            _attach_replacing(dirfd, prog, old)
        except OSError as exc:
            raise _error(
                exc,
                "cannot attach the device filter",
                directory,
                field,
                operation_of(exc) or "bpf",
            ) from exc
        finally:
            os.close(prog)
    finally:
        os.close(dirfd)


def _attach_replacing(dirfd: int, prog: int, old: list[int]) -> None:
    bpf_prog_attach(dirfd, prog, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI)
    for prog_id in old:  # the new filter is in place before the old ones go: no open window
        old_fd = bpf_prog_get_fd_by_id(prog_id)
        try:
            bpf_prog_detach(dirfd, old_fd, BPF_CGROUP_DEVICE)
        finally:
            os.close(old_fd)


def enter(plan: CgroupPlan, pid: int, skipped: Sequence[str] = ()) -> None:
    """Move process ``pid`` (0: the caller) into every cgroup of the plan.

    EINVAL is retried as runc does: a process still in TASK_NEW cannot move yet.
    """
    for hierarchy in plan["hierarchies"]:
        directory = hierarchy["directory"]
        if directory in skipped:
            continue
        for attempt in range(5):
            try:
                write_file(directory, "cgroup.procs", str(pid))
                break
            except OSError as exc:
                if exc.errno == errno.EINVAL and attempt < 4:
                    time.sleep(0.03)
                    continue
                path = posixpath.join(directory, "cgroup.procs")
                raise _error(
                    exc, f"cannot move process {pid} into the cgroup", path, op="enter"
                ) from exc


def join_self(directories: Iterable[str]) -> None:
    """v1: move the calling thread into each directory by writing 0 to its ``tasks``.

    Call it single-threaded (the fork server's fresh child): the thread is then the
    whole process.  The kernel takes no threadgroup lock to move the caller's own
    thread, so unlike ``enter`` (another process's pid into ``cgroup.procs``) there is
    no RCU grace period to wait for (~14 ms on an idle host).
    """
    for directory in directories:
        path = posixpath.join(directory, "tasks")
        try:
            write_file(directory, "tasks", "0")
        except OSError as exc:
            raise _error(exc, "cannot join the cgroup", path, op="enter") from exc


def open_directory(plan: CgroupPlan) -> int:
    """An fd of the v2 cgroup directory, for clone3(CLONE_INTO_CGROUP)."""
    directory = plan["hierarchies"][0]["directory"]
    try:
        return os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise _error(exc, "cannot open the cgroup", directory, op="open") from exc


def _rmdir_tree(directory: str) -> None:
    """rmdir the cgroup and, first, any child cgroups the workload made (runc's RemovePath)."""
    try:
        os.rmdir(directory)
        return
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY):
            raise
    for entry in os.scandir(directory):
        if entry.is_dir(follow_symlinks=False):
            _rmdir_tree(entry.path)
    try:
        os.rmdir(directory)
    except FileNotFoundError:
        return


def remove_directories(directories: Iterable[str]) -> None:
    """rmdir each (deepest first given), retrying EBUSY 5 times from 10 ms, doubling (runc)."""
    left = list(directories)
    delay = 0.01
    failure: OSError | None = None
    for attempt in range(5):
        if attempt:
            time.sleep(delay)
            delay *= 2
        failure = None
        for directory in list(left):
            try:
                _rmdir_tree(directory)
                left.remove(directory)
            except OSError as exc:
                failure = exc
        if not left:
            return
    assert failure is not None
    raise _error(failure, "cannot remove the cgroup", left[0], op="rmdir") from failure


def remove(plan: CgroupPlan) -> None:
    """Remove the container's cgroup directories (not the parents: runc leaves them)."""
    remove_directories(h["directory"] for h in plan["hierarchies"])
