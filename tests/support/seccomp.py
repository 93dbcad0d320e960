"""Helpers for the seccomp tests: moby's profile in OCI form, a probing child."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

from asyncinit.seccomp import Notification, Notifications, SeccompPlan, receive_process_state

from . import CHECKOUT, DATA, TIMEOUT_SCALE

#: runc spec's default capabilities (bounding/effective/permitted)
RUNC_DEFAULT_CAPS = ("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE")
_GO_ARCH = {"SCMP_ARCH_X86_64": "amd64", "SCMP_ARCH_X86": "x86", "SCMP_ARCH_X32": "x32"}


def moby_default(
    caps: Iterable[str] = RUNC_DEFAULT_CAPS,
    kernel: tuple[int, int] = (6, 1),
    source: Path = DATA / "moby-default.json",
) -> dict[str, Any]:
    """moby's default profile as docker hands it to runc on x86_64 with ``caps``
    (or another profile in its format at ``source``: podman's seccomp.json).

    As moby's ``setupSeccomp``: architectures from ``archMap`` for the native one,
    a rule kept when all its ``includes`` hold (caps held, native arch listed,
    kernel new enough) and none of its ``excludes`` does.
    """
    moby = json.loads(source.read_text())
    held = set(caps)
    native = "SCMP_ARCH_X86_64"
    arches = next(a for a in moby["archMap"] if a["architecture"] == native)
    out: dict[str, Any] = {
        "defaultAction": moby["defaultAction"],
        "defaultErrnoRet": moby["defaultErrnoRet"],
        "architectures": [native, *arches["subArchitectures"]],
        "syscalls": [],
    }
    for rule in moby["syscalls"]:
        includes, excludes = rule.get("includes", {}), rule.get("excludes", {})
        if includes.get("caps") and not set(includes["caps"]) <= held:
            continue
        if includes.get("arches") and _GO_ARCH[native] not in includes["arches"]:
            continue
        if "minKernel" in includes and kernel < tuple(map(int, includes["minKernel"].split("."))):
            continue
        if excludes.get("caps") and set(excludes["caps"]) & held:
            continue
        if excludes.get("arches") and _GO_ARCH[native] in excludes["arches"]:
            continue
        keys = ("names", "action", "errnoRet", "args")
        oci = {key: rule[key] for key in keys if rule.get(key) is not None}
        out["syscalls"].append(oci)
    return out


def probe(
    plan: SeccompPlan | None, probes: Iterable[str] = (), **options: Any
) -> tuple[int, dict[str, Any]]:
    """Run tests/support/seccomp_probe.py: (exit status, its JSON report or {})."""
    spec = json.dumps({"plan": plan, "probes": list(probes), **options})
    env = {**os.environ, "PYTHONPATH": str(CHECKOUT)}
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.seccomp_probe", spec],
        cwd=CHECKOUT,
        env=env,
        capture_output=True,
        timeout=60 * TIMEOUT_SCALE,
        check=False,
    )
    report = json.loads(done.stdout) if done.stdout.strip() else {}
    return done.returncode, report


def run_bpf(program: bytes, nr: int, arch: int, args: Iterable[int] = ()) -> int:
    """Classic BPF as the kernel runs a seccomp filter, on one ``seccomp_data``.

    A reference interpreter for the opcodes libseccomp and the -ENOSYS stub emit
    (ld abs, and, ja, jeq/jgt/jge/jset, ret): pure logic, to check the program's
    decisions for architectures this machine cannot call (aarch64), and every
    branch of the stub.
    """
    import struct

    from asyncinit.seccomp._bpf import decode

    padded = [*args, 0, 0, 0, 0, 0, 0][:6]
    data = struct.pack("=iIQ6Q", nr if nr < 2**31 else nr - 2**32, arch, 0, *padded)
    code = decode(program)
    acc, pc = 0, 0
    while True:
        insn = code[pc]
        if insn.code == 0x20:
            (acc,) = struct.unpack_from("=I", data, insn.k)
        elif insn.code == 0x54:
            acc &= insn.k
        elif insn.code == 0x06:
            return insn.k
        elif insn.code == 0x05:
            pc += insn.k
        elif insn.code in (0x15, 0x25, 0x35, 0x45):
            taken = {
                0x15: acc == insn.k,
                0x25: acc > insn.k,
                0x35: acc >= insn.k,
                0x45: bool(acc & insn.k),
            }[insn.code]
            pc += insn.jt if taken else insn.jf
        else:
            raise ValueError(f"opcode {insn.code:#x} at {pc}")
        pc += 1


def mkdir_path(call: Notification) -> bytes:
    """The path a notified mkdir or mkdirat asks for (read from the caller's memory)."""
    return call.read_string(call.args[1 if call.syscall_name == "mkdirat" else 0])


class Agent:
    """A seccomp agent on ``path`` in a thread (its own event loop) for one container:
    ENOSPC for a mkdir of ``denied``, the other notified mkdirs run."""

    def __init__(self, path: Path, denied: bytes) -> None:
        self.path = path
        self.denied = denied
        self.messages: list[dict[str, Any]] = []
        self.answered: list[str] = []
        self.listening = threading.Event()
        self.thread = threading.Thread(target=anyio.run, args=(self._serve,), daemon=True)

    def __enter__(self) -> Agent:
        self.thread.start()
        assert self.listening.wait(10)
        return self

    def __exit__(self, failure: type[BaseException] | None, *exc: object) -> None:
        # a daemon thread: never blocks the end
        self.thread.join(30 * TIMEOUT_SCALE if failure is None else 1)
        assert failure is not None or not self.thread.is_alive(), "the agent still waits"

    async def _serve(self) -> None:
        with anyio.fail_after(60 * TIMEOUT_SCALE):
            async with await anyio.create_unix_listener(self.path) as listener:
                self.listening.set()
                stream = await listener.accept()
                assert isinstance(stream, anyio.abc.UNIXSocketStream)
                async with stream:
                    message, fds = await receive_process_state(stream)
                self.messages.append(message)
                async with Notifications(fds[0]) as notifications:
                    async for call in notifications:
                        path = mkdir_path(call)
                        self.answered.append(path.decode())
                        if path == self.denied:
                            call.respond(errno=errno.ENOSPC)
                        else:
                            call.continue_()
