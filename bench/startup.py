"""Container start-up benchmark: runc, crun, bwrap, asyncinit (cold CLI, daemon, warm spawn()).

Run as root: ``python bench/startup.py --rounds 30 --throughput 200 [--json samples.json]``;
``--seccomp moby`` (or ``podman``) gives every runtime that default profile.
Commands alternate every round (shuffled order) because on cgroup v1 a cgroup move
costs ~14 ms depending on what ran just before: compare with the paired ratios.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import anyio

import asyncinit
from asyncinit._demo import build_busybox_rootfs, busybox_is_static

HIDE_CGROUP2 = "umount /sys/fs/cgroup/unified 2>/dev/null"
REPO = Path(__file__).resolve().parent.parent
WARM = "asyncinit spawn (warm)"
UNSHARE = "unshare wrapper"
Sampler = Callable[[int], Awaitable[float]]


def real_python() -> str:
    """The interpreter itself, not a pyenv shim on PATH (which adds ~80 ms a start)."""
    return str(Path(sys.executable).resolve())


#: --seccomp choices: the profile files, in moby's format (converted as docker/podman do)
PROFILES = {
    "moby": REPO / "tests" / "data" / "moby-default.json",
    "podman": Path("/usr/share/containers/seccomp.json"),
}


def build_bundle(root: Path, seccomp: str = "none") -> None:
    build_busybox_rootfs(root / "rootfs")
    spec = asyncinit.default_spec_dict()
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["/bin/true"]
    spec["root"]["path"] = "rootfs"
    if seccomp != "none":
        sys.path.insert(0, str(REPO))
        from tests.support.seccomp import moby_default

        # runc spec's capabilities, as docker/podman select the profile's rules by them
        spec["linux"]["seccomp"] = moby_default(source=PROFILES[seccomp])
    (root / "config.json").write_text(json.dumps(spec, indent=2))


def unshared(script: str) -> list[str]:
    """crun 1.8.1 refuses hybrid cgroups: hide the v2 mount in a private mount namespace."""
    return ["unshare", "-m", "sh", "-c", f"{HIDE_CGROUP2}; exec {script}"]


@contextlib.contextmanager
def daemon(directory: Path) -> Iterator[str | None]:
    """`asyncinit daemon` on a temporary socket for the daemon rows; stopped at the end."""
    path = str(directory / "asyncinit.sock")
    process = subprocess.Popen(
        [real_python(), "-m", "asyncinit", "daemon", "--socket", path],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if "listening" not in line:
            print(f"note: asyncinit daemon did not start, rows skipped: {line!r}")
            yield None
        else:
            yield path
    finally:
        process.terminate()
        process.communicate(timeout=30)


def plain_venv(directory: Path) -> str:
    """A venv seeing only this checkout (a .pth file, no pip, no packages): a python whose
    start runs site without this machine's own site-packages .pth files."""
    subprocess.run([real_python(), "-m", "venv", "--without-pip", str(directory)], check=True)
    python = str(directory / "bin" / "python")
    where = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    purelib = subprocess.run(
        [python, "-c", where], check=True, capture_output=True, text=True
    ).stdout.strip()
    (Path(purelib) / "asyncinit-checkout.pth").write_text(f"{REPO}\n")
    return python


def commands(bundle: Path, socket: str | None) -> dict[str, Callable[[str], list[str]]]:
    """Subprocess commands by name; each maps a unique container id to an argv."""
    b, rootfs = str(bundle), str(bundle / "rootfs")
    found: dict[str, Callable[[str], list[str]]] = {}
    if shutil.which("runc"):
        found["runc"] = lambda cid: ["runc", "run", "--bundle", b, cid]
    if shutil.which("crun") and shutil.which("unshare"):
        found["crun"] = lambda cid: unshared(f"crun run --bundle {b} {cid}")
        found[UNSHARE] = lambda cid: unshared("true")
    python = real_python()
    found["asyncinit run (cold)"] = lambda cid: [
        "env", "ASYNCINIT_DAEMON=0", python, "-m", "asyncinit", "run", "-b", b, cid,
    ]  # fmt: skip
    if socket is not None:
        # A fresh CLI each time, served by the warm daemon; the -S row leaves out this
        # machine's site (.pth files importing certifi: ~50 ms of `python -c pass`).
        via = ["env", f"ASYNCINIT_SOCKET={socket}"]
        found["asyncinit run (daemon)"] = lambda cid: [
            *via, python, "-m", "asyncinit", "run", "-b", b, cid,
        ]  # fmt: skip
        found["run (daemon, -S)"] = lambda cid: [
            *via, f"PYTHONPATH={REPO}", python, "-S", "-m", "asyncinit", "run", "-b", b, cid,
        ]  # fmt: skip
        found["python -S -c pass"] = lambda cid: [python, "-S", "-c", "pass"]
        venv = plain_venv(bundle / "venv")
        found["run (daemon, venv)"] = lambda cid: [
            *via, venv, "-m", "asyncinit", "run", "-b", b, cid,
        ]  # fmt: skip
        found["venv python -c pass"] = lambda cid: [venv, "-c", "pass"]
    if shutil.which("bwrap"):
        found["bwrap"] = lambda cid: [
            "bwrap", "--unshare-all", "--ro-bind", rootfs, "/",
            "--proc", "/proc", "--dev", "/dev", "/bin/true",
        ]  # fmt: skip
    for name in ("runc", "crun", "bwrap"):
        if not shutil.which(name):
            print(f"note: {name} not installed, skipped")
    return found


def timed_run(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=True)  # fmt: skip
    return time.perf_counter() - start


async def warm_spawn(config: Path, cid: str) -> float:
    start = time.perf_counter()
    container = await asyncinit.spawn(
        config, container_id=cid, stdin=asyncinit.DEVNULL,
        stdout=asyncinit.DEVNULL, stderr=asyncinit.DEVNULL,
    )  # fmt: skip
    async with container:
        code = await container.wait()
    elapsed = time.perf_counter() - start
    if code != 0:
        raise RuntimeError(f"{cid}: /bin/true exited {code}")
    return elapsed


async def check(name: str, argv: list[str]) -> bool:
    """Run a command once; on failure print its stderr and say so."""
    done = await anyio.to_thread.run_sync(
        lambda: subprocess.run(
            argv, check=False, stdin=subprocess.DEVNULL, capture_output=True, text=True
        )
    )
    if done.returncode != 0:
        print(f"note: {name} failed (exit {done.returncode}), skipped:\n{done.stderr.strip()}")
    return done.returncode == 0


async def samplers(bundle: Path, prefix: str, socket: str | None) -> dict[str, Sampler]:
    found: dict[str, Sampler] = {}
    for name, argv_of in commands(bundle, socket).items():
        if await check(name, argv_of(f"{prefix}-check-{len(found)}")):

            async def sample(n: int, argv_of: Callable[[str], list[str]] = argv_of) -> float:
                argv = argv_of(f"{prefix}-{n}-{random.randrange(1 << 30)}")
                return await anyio.to_thread.run_sync(timed_run, argv)

            found[name] = sample
    config = bundle / "config.json"
    try:
        await warm_spawn(config, f"{prefix}-warmup")  # starts the fork server
    except Exception as exc:
        print(f"note: {WARM} failed, skipped: {type(exc).__name__}: {exc}")
    else:
        found[WARM] = lambda n: warm_spawn(config, f"{prefix}-w{n}")
    return found


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def paired(samples: dict[str, list[float]], name: str, ref: str) -> str:
    if ref not in samples or name == ref:
        return "-"
    ratios = [a / b for a, b in zip(samples[name], samples[ref], strict=True)]
    return f"{statistics.median(ratios):.2f}"


def report(samples: dict[str, list[float]]) -> None:
    ms = {k: [v * 1000 for v in vs] for k, vs in samples.items()}
    if "crun" in ms and UNSHARE in ms:
        overhead = statistics.median(ms[UNSHARE])
        ms["crun - wrapper"] = [v - overhead for v in ms["crun"]]
    head = f"{'command':<26}{'median':>9}{'p10':>9}{'p90':>9}{'vs crun':>9}{'vs runc':>9}"
    print(f"\n{head}  (ms; ratios = median of same-round pairs)\n{'-' * len(head)}")
    for name, values in ms.items():
        print(f"{name:<26}{statistics.median(values):>9.1f}{pct(values, 0.1):>9.1f}"
              f"{pct(values, 0.9):>9.1f}{paired(ms, name, 'crun'):>9}"
              f"{paired(ms, name, 'runc'):>9}")  # fmt: skip


async def supervisor_memory(bundle: Path) -> dict[str, int]:
    """Memory of a supervising init (``init="supervise"``) waiting for its workload, in KiB."""
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["args"] = ["sleep", "60"]
    spec["root"]["path"] = str(bundle / "rootfs")
    async with await asyncinit.spawn(spec, bundle=bundle, init="supervise") as container:
        await anyio.sleep(0.5)
        with open(f"/proc/{container.pid}/smaps_rollup") as rollup:
            lines = [line.split() for line in rollup if line.endswith("kB\n")]
            fields = {name.rstrip(":"): int(value) for name, value, _ in lines}
        container.kill()
        await container.wait()
    memory = {
        "rss": fields["Rss"],
        "pss": fields["Pss"],
        "private": fields["Private_Clean"] + fields["Private_Dirty"],
    }
    rss, pss, private = (memory[key] / 1024 for key in ("rss", "pss", "private"))
    print(f"\nsupervising init, waiting: RSS {rss:.1f} MiB, PSS {pss:.1f}, private {private:.1f}")
    return memory


async def throughput(bundle: Path, count: int, prefix: str, crun: bool) -> dict[str, float]:
    limiter = anyio.CapacityLimiter(8)
    config = bundle / "config.json"

    async def one_spawn(n: int) -> None:
        async with limiter:
            await warm_spawn(config, f"{prefix}-t{n}")

    async def one_crun(n: int) -> None:
        argv = unshared(f"crun run --bundle {bundle} {prefix}-c{n}")
        await anyio.to_thread.run_sync(timed_run, argv, limiter=limiter)

    jobs: dict[str, Callable[[int], Coroutine[Any, Any, None]]] = {WARM: one_spawn}
    if crun:
        jobs["crun"] = one_crun
    # Alternated (A B B A): neither side always runs first, after the other's cgroup churn.
    order = [*jobs, *reversed(jobs)]
    totals: dict[str, list[float]] = {name: [] for name in jobs}
    for round_number, name in enumerate(order):
        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for n in range(count):
                tg.start_soon(jobs[name], round_number * count + n)
        totals[name].append(time.perf_counter() - start)
    results = {name: statistics.median(values) for name, values in totals.items()}
    print(f"\nthroughput: {count} containers, 8 in flight (median of {len(order) // 2} runs each)")
    for name, total in results.items():
        print(f"  {name:<24}{total:>7.2f} s  {count / total:>7.1f} containers/s")
    if crun:
        print(f"  asyncinit / crun wall time: {results[WARM] / results['crun']:.2f}")
    return results


async def bench(args: argparse.Namespace, bundle: Path, socket: str | None) -> dict[str, object]:
    prefix = f"bench{random.randrange(1 << 20):x}"
    found = await samplers(bundle, prefix, socket)
    samples: dict[str, list[float]] = {name: [] for name in found}
    for n in range(args.rounds):
        order = list(found)
        random.shuffle(order)
        for name in order:
            samples[name].append(await found[name](n))
    report(samples)
    result: dict[str, object] = {"rounds": args.rounds, "samples_s": samples}
    result["supervisor_kib"] = await supervisor_memory(bundle)
    if args.throughput > 0 and WARM in found:
        crun = "crun" in found
        result["throughput_s"] = await throughput(bundle, args.throughput, prefix, crun)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="timed rounds (default 30)")
    parser.add_argument(
        "--throughput", type=int, default=200, metavar="K",
        help="containers for the 8-in-flight throughput run (default 200, 0 disables)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, metavar="FILE", help="write raw samples here")
    parser.add_argument(
        "--seccomp", choices=["none", *PROFILES], default="none",
        help="every runtime loads this default profile (docker's or podman's; default none)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if not busybox_is_static():
        sys.exit("needs a static /bin/busybox: apt-get install busybox-static")
    warnings.filterwarnings("ignore", category=asyncinit.ConfigWarning)
    # An installed package has its bytecode compiled; PYTHONDONTWRITEBYTECODE (set on
    # some machines) would otherwise make every cold CLI recompile the modules it imports.
    compileall.compile_dir(REPO / "asyncinit", quiet=1)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    with tempfile.TemporaryDirectory(prefix="asyncinit-bench-") as tmp, daemon(Path(tmp)) as sock:
        build_bundle(Path(tmp), args.seccomp)
        result = anyio.run(bench, args, Path(tmp), sock)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
