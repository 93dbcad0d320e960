"""``await container.start()`` on a created container: time until the workload's first write.

Every engine pays a whole ``runc start`` process for this step (measured beside
it, same containers' shape: ``runc create`` then ``runc start`` until the first
byte).  Here: ``asyncinit.create()`` (not timed), then from the call of
``start()`` to the first byte the workload (busybox ``echo``) writes on its
stdout pipe.  Medians over ``--rounds`` containers.  Run as root, under the lock:
``flock /tmp/asyncinit-tests.lock python bench/api_start.py --rounds 50``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import anyio

import asyncinit
from asyncinit._demo import build_busybox_rootfs

RUNC = shutil.which("runc")


def config(rootfs: Path) -> dict[str, object]:
    spec = asyncinit.default_spec_dict()
    spec["process"].update(terminal=False, args=["echo", "x"])
    spec["root"]["path"] = str(rootfs)
    del spec["linux"]["resources"]
    return spec


async def ours(spec: dict[str, object], root: Path, rounds: int) -> list[float]:
    samples = []
    for index in range(rounds):
        container = await asyncinit.create(
            spec, root=root, container_id=f"s{index}", stdout=asyncinit.PIPE
        )
        async with container:
            assert container.stdout is not None
            start = time.perf_counter()
            await container.start()
            await container.stdout.receive(1)
            samples.append(time.perf_counter() - start)
            await container.wait()
    return samples


def runc_start(bundle: Path, root: Path, rounds: int) -> list[float]:
    """``runc create`` (not timed), then ``runc start`` until the first byte arrives."""
    assert RUNC is not None
    samples = []
    for index in range(rounds):
        read_end, write_end = os.pipe()
        cid = f"r{index}"
        subprocess.run(
            [RUNC, "--root", str(root), "create", "-b", str(bundle), cid],
            stdout=write_end, stderr=subprocess.DEVNULL, check=True,
        )  # fmt: skip
        os.close(write_end)
        start = time.perf_counter()
        subprocess.run([RUNC, "--root", str(root), "start", cid], check=True)
        os.read(read_end, 1)
        samples.append(time.perf_counter() - start)
        os.close(read_end)
        subprocess.run([RUNC, "--root", str(root), "delete", "--force", cid], check=False)
    return samples


def summary(samples: list[float]) -> str:
    median, low, high = (1e3 * v for v in (statistics.median(samples), min(samples), max(samples)))
    return f"median {median:.3f} ms (min {low:.3f}, max {high:.3f}, n={len(samples)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="asyncinit-bench-") as scratch:
        work = Path(scratch)
        build_busybox_rootfs(work / "rootfs")
        spec = config(work / "rootfs")
        (work / "config.json").write_text(json.dumps(spec))
        samples = anyio.run(ours, spec, work / "ours", options.rounds)
        print(f"asyncinit start() -> first write: {summary(samples)}")
        if RUNC:
            runc = runc_start(work, work / "runc", options.rounds)
            print(f"runc start (process) -> first write: {summary(runc)}")


if __name__ == "__main__":
    main()
