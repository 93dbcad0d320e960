"""What engines pay per runc command: ``asyncinit`` (installed launcher) against runc, paired.

podman and containerd run ``state``, ``kill``, ``delete`` and ``start`` as separate
processes, often.  This measures each as a whole process, the way an engine
runs it, on real containers:

* ``asyncinit`` is the installed command as pip lays it out (``scripts/asyncinit``
  in ``<venv>/bin``, the package in ``<venv>/lib/pythonX.Y/site-packages``, a
  ``pyvenv.cfg``), built here in a temporary venv-shaped directory whose
  ``bin/python3`` is the real interpreter (not a pyenv shim);
* ``asyncinit (pip entry point)`` is what ``[project.scripts]`` would give: the
  interpreter with site, then ``asyncinit.cli:main``;
* ``python -I -S`` (``-c pass``) is the floor: the interpreter alone.

Rounds alternate the commands (A B A B...); the medians and the median of the
paired ratios are printed.  Run as root, under the test lock:
``flock /tmp/asyncinit-tests.lock python bench/runc_commands.py --rounds 30``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from asyncinit._demo import build_busybox_rootfs
from tests.support.launcher_layout import installed_layout, real_python

REPO = Path(__file__).resolve().parent.parent
RUNC = shutil.which("runc")


def bundle(directory: Path) -> Path:
    build_busybox_rootfs(directory / "rootfs")
    from asyncinit import default_spec_dict

    spec = default_spec_dict()
    spec["process"].update(terminal=False, args=["sleep", "1000"])
    spec["root"]["path"] = "rootfs"
    del spec["linux"]["resources"]
    (directory / "config.json").write_text(json.dumps(spec))
    return directory


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def paired(rows: dict[str, Callable[[int], float]], rounds: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in rows}
    for index in range(rounds):
        order = list(rows) if index % 2 == 0 else list(reversed(rows))
        for name in order:
            samples[name].append(rows[name](index))
    return samples


def report(title: str, samples: dict[str, list[float]], reference: str) -> None:
    print(f"\n{title}")
    for name, values in samples.items():
        ratios = [a / b for a, b in zip(values, samples[reference], strict=True)]
        print(
            f"  {name:<34} median {statistics.median(values) * 1e3:6.2f} ms"
            f"   paired ratio vs {reference}: {statistics.median(ratios):5.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--one-shot", type=int, default=8, help="containers for start/delete")
    options = parser.parse_args()
    if RUNC is None:
        sys.exit("runc is not installed")
    with tempfile.TemporaryDirectory(prefix="asyncinit-bench-") as scratch:
        work = Path(scratch)
        (work / "venv").mkdir()
        ours = [str(installed_layout(work / "venv")), "--root", str(work / "ours")]
        entry = [
            real_python(), "-c", "import sys; from asyncinit.cli import main; sys.exit(main())",
            "--root", str(work / "ours"),
        ]  # fmt: skip
        runc = [RUNC, "--root", str(work / "runc")]
        config = bundle(work / "bundle")
        env_entry = {**os.environ, "PYTHONPATH": str(REPO)}
        runtimes = {"runc": runc, "asyncinit": ours}
        try:
            for argv in runtimes.values():
                subprocess.run([*argv, "run", "-d", "-b", str(config), "steady"], check=True)
            rows: dict[str, Callable[[int], float]] = {
                "runc": lambda _: timed([*runc, "state", "steady"]),
                "asyncinit": lambda _: timed([*ours, "state", "steady"]),
                "asyncinit (pip entry point)": lambda _: timed_env(
                    [*entry, "state", "steady"], env_entry
                ),
                "python -I -S -c pass": lambda _: timed([real_python(), "-I", "-S", "-c", "pass"]),
            }
            report("state ID", paired(rows, options.rounds), "runc")
            for command in (["kill", "steady", "CONT"], ["list"]):
                rows = {name: row(argv, *command) for name, argv in runtimes.items()}
                report(" ".join(command), paired(rows, options.rounds), "runc")
            one_shot(runtimes, config, options.one_shot)
        finally:
            for argv in runtimes.values():
                for cid in ["steady", *(f"b{i}" for i in range(options.one_shot))]:
                    subprocess.run(
                        [*argv, "delete", "--force", cid], capture_output=True, check=False
                    )


def timed_env(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
    return time.perf_counter() - start


def row(argv: list[str], *command: str) -> Callable[[int], float]:
    """A row running ``argv + command``; ``{i}`` in the command becomes the round number."""
    return lambda index: timed([*argv, *(word.format(i=index) for word in command)])


def one_shot(runtimes: dict[str, list[str]], config: Path, count: int) -> None:
    """start and delete: once per container, so ``count`` containers of each runtime."""
    for argv in runtimes.values():
        for index in range(count):
            subprocess.run([*argv, "create", "-b", str(config), f"b{index}"], check=True)
    starts = {name: row(argv, "start", "b{i}") for name, argv in runtimes.items()}
    report("start ID", paired(starts, count), "runc")
    deletes = {name: row(argv, "delete", "--force", "b{i}") for name, argv in runtimes.items()}
    report("delete --force ID (running)", paired(deletes, count), "runc")


if __name__ == "__main__":
    main()
