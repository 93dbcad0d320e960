"""A child that loads a seccomp plan, then probes syscalls (tests/integration/test_seccomp_*.py).

Run as ``python -m tests.support.seccomp_probe SPEC``; SPEC is JSON: ``plan`` (a
SeccompPlan or null), ``probes`` (names below), ``before`` (probes run before
the filter), ``nnp`` (set no_new_privs first), ``drop_sys_admin`` (drop
CAP_SYS_ADMIN from the effective set first), ``idle_thread`` (start a thread
before loading, for TSYNC), ``print_fd`` (print the listener fd, then wait for
a line on stdin), ``run`` (a command to run under the filter, in ``cwd``), ``private_namespaces``
(new uts and mount namespaces first). Prints one JSON object: ``{"before": [...], "after": [...],
"listener": fd}``. A probe's result is the raw syscall's: a value >= 0, or -errno.
Every probe is a raw ``syscall()`` so that no libc wrapper picks another syscall.
"""

from __future__ import annotations

import ctypes
import json
import mmap
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

from asyncinit import _syscalls
from asyncinit.seccomp._load import load_plan

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long

X32_BIT = 0x40000000
CLONE_NEWUTS = 0x04000000
AT_FDCWD = -100
NR = {
    "read": 0,
    "getpid": 39,
    "mkdir": 83,
    "personality": 135,
    "acct": 163,
    "mount": 165,
    "kexec_load": 246,
    "keyctl": 250,
    "unshare": 272,
    "mkdirat": 258,
    "clone3": 435,
    "set_mempolicy_home_node": 450,
    "fchmodat2": 452,
}
# i386 numbers (int 0x80)
NR_I386 = {"getpid": 20, "mount": 21, "unshare": 310, "keyctl": 288, "acct": 51}


def _arg(value: object) -> object:
    if isinstance(value, bytes) or value is None:
        return value
    assert isinstance(value, int)
    return ctypes.c_long(value)


def raw(number: int, *args: object) -> int:
    """syscall(number, args...): the result, or -errno."""
    result = _syscall(ctypes.c_long(number), *(_arg(a) for a in args))
    return -ctypes.get_errno() if result == -1 else int(result)


# mov rax,rdi; mov rbx,rsi (rbx saved); mov r8,rcx; mov rcx,rdx; mov rdx,r8; int 0x80
_INT80 = bytes.fromhex("53 4889f8 4889f3 4989c8 4889d1 4c89c2 cd80 5b c3".replace(" ", ""))
_int80: Callable[..., int] | None = None


def _prepare_int80() -> None:
    """An executable page with an ``int 0x80`` trampoline: i386 syscalls from x86_64."""
    global _int80
    page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    page.write(_INT80)
    address = ctypes.addressof(ctypes.c_char.from_buffer(page))
    prototype = ctypes.CFUNCTYPE(ctypes.c_int, *[ctypes.c_long] * 4)
    _int80 = prototype(address)
    _int80.page = page  # type: ignore[attr-defined]  # keep it mapped


def i386(name: str, *args: int) -> int:
    assert _int80 is not None
    padded = [*args, 0, 0, 0][:3]
    return _int80(NR_I386[name], *padded)


def seccomp_status() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Seccomp:"):
                return int(line.split()[1])
    return -1


def _probe(name: str) -> Any:
    kind, _, arg = name.partition(":")
    simple: dict[str, Callable[[], Any]] = {
        "getpid": lambda: raw(NR["getpid"]),
        "unshare": lambda: raw(NR["unshare"], CLONE_NEWUTS),
        "mount": lambda: raw(NR["mount"], b"none", b"/nonexistent-probe", b"tmpfs", 0, None),
        "keyctl": lambda: raw(NR["keyctl"], 0, -3, 0),  # KEYCTL_GET_KEYRING_ID(session)
        "kexec_load": lambda: raw(NR["kexec_load"], 0, 0, None, 0xDEAD0000),  # EINVAL if run
        "acct": lambda: raw(NR["acct"], b"/nonexistent-probe"),
        "clone3": lambda: raw(NR["clone3"], None, 0),  # EINVAL if run
        "fchmodat2": lambda: raw(NR["fchmodat2"], AT_FDCWD, b"/nonexistent-probe", 0, 0),
        # Linux 6.0; the flags must be 0: EINVAL if it runs
        "set_mempolicy_home_node": lambda: raw(NR["set_mempolicy_home_node"], 0, 0, 0, 1),
        "seccomp_status": seccomp_status,
        "execve": _execve,
    }
    if kind in simple:
        return simple[kind]()
    if kind == "personality":
        return raw(NR["personality"], int(arg, 0))
    if kind in ("mkdir", "mkdirat"):
        path = arg.encode()
        return (
            raw(NR["mkdir"], path, 0o700)
            if kind == "mkdir"
            else raw(NR["mkdirat"], AT_FDCWD, path, 0o700)
        )
    if kind == "syscall":
        return raw(int(arg, 0))
    if kind == "x32":
        return raw(X32_BIT | NR[arg], *_X32_ARGS.get(arg, ()))
    if kind == "i386":
        return i386(arg, *_I386_ARGS.get(arg, ()))
    if kind == "thread":
        return _in_thread(arg)
    if kind == "trap":
        return _trapped(arg)
    if kind == "readfd":  # the probe returns an fd: what it reads
        fd = _probe(arg)
        return os.read(fd, 100).decode() if fd >= 0 else fd
    raise ValueError(f"unknown probe {name}")


_X32_ARGS: dict[str, tuple[object, ...]] = {"unshare": (CLONE_NEWUTS,)}
_I386_ARGS: dict[str, tuple[int, ...]] = {"unshare": (CLONE_NEWUTS,)}


def _execve() -> Any:
    try:
        os.execv("/bin/true", ["true"])
    except OSError as error:
        return -(error.errno or 0)
    return None  # pragma: no cover


def _in_thread(inner: str) -> Any:
    """Run a probe in a second thread: "killed" if the kernel killed that thread alone."""
    box: list[Any] = []
    thread = threading.Thread(target=lambda: box.append(_probe(inner)), daemon=True)
    thread.start()
    thread.join(2)
    return box[0] if box else "killed"


def _trapped(inner: str) -> Any:
    """Run a probe with a SIGSYS handler: "trapped" if SECCOMP_RET_TRAP fired."""
    hits: list[int] = []
    signal.signal(signal.SIGSYS, lambda signum, frame: hits.append(signum))
    result = _probe(inner)
    return "trapped" if hits else result


def _drop_sys_admin() -> None:
    """CAP_SYS_ADMIN out of the effective set (still permitted)."""
    with open("/proc/self/status") as f:
        caps = {
            k: int(v, 16)
            for k, _, v in (line.partition(":\t") for line in f)
            if k.startswith("Cap")
        }
    cap_sys_admin = 21
    _syscalls.capset(caps["CapEff"] & ~(1 << cap_sys_admin), caps["CapPrm"], caps["CapInh"])


def main() -> None:
    spec = json.loads(sys.argv[1])
    before = [_probe(p) for p in spec.get("before", ())]
    if any(p.startswith("i386:") or p.startswith("trap:i386") for p in spec.get("probes", ())):
        _prepare_int80()
    if spec.get("private_namespaces"):  # so that a filter that fails cannot touch the host
        _syscalls.unshare(_syscalls.CLONE_NEWUTS | _syscalls.CLONE_NEWNS)
        _syscalls.mount(None, "/", None, _syscalls.MS_REC | _syscalls.MS_PRIVATE)
    if spec.get("drop_sys_admin"):
        _drop_sys_admin()
    if spec.get("nnp"):
        _syscalls.prctl(_syscalls.PR_SET_NO_NEW_PRIVS, 1)
    if spec.get("idle_thread"):
        gate = threading.Event()
        results: list[Any] = []

        def idle() -> None:
            gate.wait()
            results.append(_probe(spec["idle_thread"]))

        worker = threading.Thread(target=idle)
        worker.start()
    listener = None
    if spec.get("plan") is not None:
        try:
            listener = load_plan(spec["plan"])
        except OSError as error:
            print(json.dumps({"load_error": error.errno}), flush=True)
            os._exit(0)
    if spec.get("print_fd"):
        os.write(1, f"{listener}\n".encode())
        os.read(0, 1)
    after = [_probe(p) for p in spec.get("probes", ())]
    out: dict[str, Any] = {"before": before, "after": after, "listener": listener}
    if spec.get("run"):
        done = subprocess.run(
            spec["run"], capture_output=True, text=True, check=False, cwd=spec.get("cwd")
        )
        out["run"] = [done.returncode, done.stdout]
    if spec.get("idle_thread"):
        gate.set()
        worker.join()
        out["thread"] = results[0]
    os.write(1, json.dumps(out).encode() + b"\n")
    os._exit(0)


if __name__ == "__main__":
    try:
        main()
    except OSError as error:  # pragma: no cover - reported to the test
        os.write(1, json.dumps({"error": error.errno, "message": str(error)}).encode() + b"\n")
        os._exit(3)
