"""seccomp costs: compiling moby's default profile, loading it, and what it costs crun and runc.

Run as root from the repository: ``python bench/seccomp.py --rounds 30``.

* compile: in a fresh interpreter, the first ``compile_profile`` (dlopen of
  libseccomp included) and then the cached one;
* load: importing the loader (beyond what the fork server holds) and
  ``install_filter`` of the compiled program in a fresh child (the init's
  cost), and the per-syscall cost of the filter once loaded (getppid loop);
* crun/runc: ``run`` of a busybox ``/bin/true`` container with and without the
  same profile, alternated; the median of the paired differences is what
  seccomp costs each container there (crun and runc compile it every time).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from startup import REPO, build_bundle, real_python, timed_run, unshared

sys.path.insert(0, str(REPO))

from tests.support.seccomp import moby_default

COMPILE = """
import json, sys, time
start = time.perf_counter()
from asyncinit.seccomp import compile_profile, parse_profile
imported = time.perf_counter()
profile = parse_profile(json.loads(sys.argv[1]))
parsed = time.perf_counter()
compiled = compile_profile(profile)
cold = time.perf_counter()
for _ in range(1000):
    compile_profile(profile)
warm = (time.perf_counter() - cold) / 1000
print(json.dumps({"import": imported - start, "parse": parsed - imported, "cold": cold - parsed,
                  "cached": warm, "instructions": len(compiled.program) // 8,
                  "plan": compiled.to_plan()}))
"""

LOAD = """
import ctypes, json, os, sys, time
import asyncinit._syscalls._process  # the fork server has it already
start = time.perf_counter()
from asyncinit.seccomp._load import load_plan
imported = time.perf_counter()
plan = json.loads(sys.stdin.read())
loading = time.perf_counter()
if plan is not None:
    load_plan(plan)
loaded = time.perf_counter()
for _ in range(100):
    os.getppid()
t = time.perf_counter()
for _ in range(100000):
    os.getppid()
per_call = (time.perf_counter() - t) / 100000
print(json.dumps({"import": imported - start, "load": loaded - loading, "getppid": per_call}))
"""


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.3f} ms"


def us(values: list[float]) -> str:
    return f"{statistics.median(values) * 1e6:.3f} us"


def python(code: str, *args: str, stdin: str = "") -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([real_python(), "-c", code, *args], input=stdin, capture_output=True,
                         text=True, env=env, check=True)  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def runtime_rows(bundle: Path, rounds: int, plan_profile: dict[str, object]) -> None:
    config = json.loads((bundle / "config.json").read_text())
    config["linux"].pop("resources", None)
    plain = dict(config)
    filtered = json.loads(json.dumps(config))
    filtered.setdefault("linux", {})["seccomp"] = plan_profile
    plain_dir, filtered_dir = bundle / "plain", bundle / "filtered"
    for directory, spec in ((plain_dir, plain), (filtered_dir, filtered)):
        directory.mkdir()
        (directory / "rootfs").symlink_to(bundle / "rootfs")
        spec["root"] = {"path": str(bundle / "rootfs"), "readonly": True}
        (directory / "config.json").write_text(json.dumps(spec))
    runtimes = {
        "crun": lambda d, cid: unshared(f"crun run --bundle {d} {cid}"),
        "runc": lambda d, cid: ["runc", "run", "--bundle", str(d), cid],
    }
    for name, argv_of in runtimes.items():
        diffs, base = [], []
        for n in range(rounds):
            pair = [(plain_dir, "p"), (filtered_dir, "f")]
            random.shuffle(pair)
            cid = f"sb-{name}-{n}-{os.getpid()}"
            times = {kind: timed_run(argv_of(d, f"{cid}-{kind}")) for d, kind in pair}
            diffs.append(times["f"] - times["p"])
            base.append(times["p"])
        print(f"{name:<5} /bin/true: {ms(base)}, +{ms(diffs)} with moby's profile")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    profile = moby_default()
    compiles = [python(COMPILE, json.dumps(profile)) for _ in range(5)]
    first = compiles[0]
    size = len(json.dumps(first["plan"]))
    print(f"moby default: {first['instructions']} instructions, plan {size} bytes of JSON")
    for key in ("import", "parse", "cold", "cached"):
        print(f"compile {key:<7}: {ms([c[key] for c in compiles])}")
    plan = json.dumps(first["plan"])
    loads = [python(LOAD, stdin=plan) for _ in range(args.rounds)]
    bare = [python(LOAD, stdin="null") for _ in range(args.rounds)]
    print(
        f"load: import {ms([x['import'] for x in loads])},"
        f" seccomp() {ms([x['load'] for x in loads])}"
    )
    print(
        f"getppid: {us([x['getppid'] for x in bare])}, {us([x['getppid'] for x in loads])} filtered"
    )
    with tempfile.TemporaryDirectory() as directory:
        bundle = Path(directory)
        build_bundle(bundle)
        runtime_rows(bundle, args.rounds, profile)


if __name__ == "__main__":
    main()
