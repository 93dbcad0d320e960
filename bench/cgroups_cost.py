"""What a container's cgroup costs: create, limits, enter, remove; hot and idle.

Run as root: ``python bench/cgroups_cost.py --rounds 20``.  Each round creates a
test-named cgroup with a typical plan (pids, memory, cpu shares, runc's default
device rules), forks a child that waits, moves it in, and removes everything.
"Hot" rounds follow the previous one at once, "idle" rounds after a pause
(``--idle``, default 0.2 s): on cgroup v1 a move waits for an RCU grace period
unless another move has just happened.  Ways of entering compared:

* ``parent``: the parent writes the child's pid into every hierarchy;
* ``self``: the child writes 0 (itself) into every hierarchy's ``cgroup.procs``;
* ``join``: v1, the child, single-threaded, writes 0 into every ``tasks`` (what
  the fork server's child does: the kernel moves its own thread without the
  threadgroup lock, so no RCU grace period);
* ``overlap``: the parent writes the pid in a thread while the child works on
  (the child only blocks where it would fork or exec: the write's latency is
  hidden behind the child's own set-up, here a 10 ms stand-in).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from asyncinit.cgroups import _steps, compute_plan, detect_host, resources_from_dict
from asyncinit.cgroups._host import Host, is_cgroup2
from asyncinit.cgroups._plan import CgroupPlan

RESOURCES = {"pids": {"limit": 1000}, "memory": {"limit": 512 << 20}, "cpu": {"shares": 512}}


def _plan(host: Host | None = None) -> CgroupPlan:
    resources = resources_from_dict(RESOURCES if host is None or host.v2_controllers else {})
    name = f"asyncinit-bench-{uuid.uuid4().hex[:8]}"
    return compute_plan(resources, container_id=name, host=host)


def _v2_host() -> Host | None:
    """Pure v2, or the cgroup2 beside a hybrid host's v1 hierarchies (same kernel costs)."""
    host = detect_host()
    if host.unified:
        return host
    if is_cgroup2("/sys/fs/cgroup/unified"):
        return Host(True, (), "/sys/fs/cgroup/unified", (), {"": host.own.get("", "/")})
    return None


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def _per_hierarchy_enter(plan: CgroupPlan, pid: int) -> list[float]:
    times = []
    for hierarchy in plan["hierarchies"]:
        single: CgroupPlan = {**plan, "hierarchies": [hierarchy]}
        times.append(_timed(lambda p=single: _steps.enter(p, pid)))  # type: ignore[misc]
    return times


def one_round(mode: str) -> dict[str, Any]:
    plan = _plan()
    out: dict[str, Any] = {"create": _timed(lambda: _steps.create(plan))}
    out["limits"] = _timed(lambda: _steps.apply_limits(plan))
    go_r, go_w = os.pipe()
    done_r, done_w = os.pipe()
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # child
        os.close(go_w)
        os.close(done_r)
        if mode in ("self", "join"):
            dirs = [h["directory"] for h in plan["hierarchies"]]
            if mode == "self":
                t = _timed(lambda: _steps.enter(plan, 0))
            else:
                t = _timed(lambda: _steps.join_self(dirs))
            os.write(done_w, json.dumps(t).encode())
        elif mode == "overlap":
            time.sleep(0.010)  # stand-in for the init's own set-up before its first fork
            t = _timed(lambda: os.read(go_r, 1))  # blocked only for what was not hidden
            os.write(done_w, json.dumps(t).encode())
        os._exit(0)
    os.close(done_w)
    if mode == "parent":
        out["enter_each"] = _per_hierarchy_enter(plan, pid)
        out["enter"] = sum(out["enter_each"])
        os.write(go_w, b"g")
    elif mode == "overlap":
        thread = threading.Thread(target=lambda: (_steps.enter(plan, pid), os.write(go_w, b"g")))
        thread.start()
        thread.join()
    data = os.read(done_r, 100)
    if mode in ("self", "join", "overlap"):
        out["child_blocked" if mode == "overlap" else "enter"] = json.loads(data)
    os.waitpid(pid, 0)
    out["total"] = (time.perf_counter() - start) * 1000
    for fd in (go_r, go_w, done_r):
        os.close(fd)
    out["remove"] = _timed(lambda: _steps.remove(plan))
    return out


def clone_into_round(idle: float, host: Host) -> dict[str, float]:
    """v2: the parent's cost of a child born in the cgroup (clone3 CLONE_INTO_CGROUP,
    the project's ``fork_into_cgroup``), against fork() and writing its pid."""
    from asyncinit._syscalls._clone import fork_into_cgroup

    out = {}
    for how in ("clone_into", "fork_write"):
        time.sleep(idle)
        plan = _plan(host)
        _steps.create(plan)
        _steps.apply_limits(plan)
        fd = _steps.open_directory(plan)
        start = time.perf_counter()
        if how == "clone_into":
            pid = fork_into_cgroup(fd)
            if pid == 0:
                os._exit(0)
        else:
            pid = os.fork()
            if pid == 0:
                time.sleep(0.05)
                os._exit(0)
            _steps.enter(plan, pid)
        out[how] = (time.perf_counter() - start) * 1000
        os.close(fd)
        os.waitpid(pid, 0)
        _steps.remove(plan)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--idle", type=float, default=0.2)
    args = parser.parse_args()
    v2 = _v2_host()
    if v2 is not None:
        for idle in (0.0, args.idle):
            rounds = [clone_into_round(idle, v2) for _ in range(args.rounds)]
            cells = [f"{k} {statistics.median(r[k] for r in rounds):6.2f}" for k in rounds[0]]
            print(f"v2 parent cost, pause {idle}s: " + "  ".join(cells) + "  (ms, medians)")
    results: dict[str, list[dict[str, Any]]] = {}
    modes = ("parent", "self", "overlap") + (() if detect_host().unified else ("join",))
    for mode in modes:
        for temperature in ("hot", "idle"):
            rounds = []
            for _ in range(args.rounds):
                if temperature == "idle":
                    time.sleep(args.idle)
                rounds.append(one_round(mode))
            results[f"{mode}/{temperature}"] = rounds
    for key, rounds in results.items():
        cells = []
        for metric in ("create", "limits", "enter", "child_blocked", "remove"):
            values = [r[metric] for r in rounds if metric in r]
            if values:
                cells.append(f"{metric} {statistics.median(values):6.2f}")
        if "enter_each" in rounds[0]:
            each = [
                statistics.median(r["enter_each"][i] for r in rounds)
                for i in range(len(rounds[0]["enter_each"]))
            ]
            cells.append("per hierarchy " + " ".join(f"{t:.2f}" for t in each))
        print(f"{key:14} " + "  ".join(cells) + "  (ms, medians)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
