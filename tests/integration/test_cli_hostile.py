"""Every command given hostile input ends with one error line and a non-zero exit.

Issue 12 asks for the class, not the examples: each command (run, create, start,
state, kill, delete, list, spec, daemon, init) with a missing, unreadable, huge
or too deeply nested config or state file, a bad id, a bad --root, stdout on
/dev/full, closed stdin or stdout.  asyncinit's own commands write
``asyncinit: error: ...``; the runc commands write runc's log line
(``time=... level=error msg=...``, docs/cli.md).  Never a traceback.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import CHECKOUT
from tests.support.configs import base_config
from tests.support.containers import needs_root

pytestmark = [pytest.mark.integration, needs_root]

OWN = "asyncinit: error: "
RUNC = r'time="[^"]+" level=error msg='
#: runc's prefix for a create that fails ("runc create failed: ...").
CREATE = RUNC + '"asyncinit create failed: '

#: id -> (arguments, shell redirections, the error line as a regex).  In the
#: arguments {NAME} is a path of the setup (see hostile_tree).
CASES: dict[str, tuple[str, str, str]] = {
    "run-missing-config": ("run --no-daemon -b {empty} c", "", OWN + "config.json: cannot read"),
    "run-config-fifo": ("run --no-daemon -b {fifo} c", "", OWN + "config.json: not a regular"),
    "run-config-huge": ("run --no-daemon -b {huge} c", "", OWN + r"config.json: larger than"),
    "run-config-deep": ("run --no-daemon -b {deep} c", "", OWN + "config.json: nested too deep"),
    "run-config-invalid": ("run --no-daemon -b {invalid} c", "", OWN + "config.json: invalid JSON"),
    "run-empty-id": ("run --no-daemon -b {valid} ''", "", OWN + 'invalid container id ""'),
    "run-bad-id": ("run --no-daemon -b {valid} a/b", "", OWN + 'invalid container id "a/b"'),
    "run-unknown-flag": ("run --bogus c", "", OWN + "unrecognized arguments: --bogus"),
    "run-no-id": ("run", "", OWN + "run: the following arguments are required: id"),
    "run-stdout-closed": ("run --no-daemon -b {empty} c", ">&-", OWN + "config.json: cannot"),
    "run-stdio-closed": ("run --no-daemon -b {fifo} c", "<&- >&-", OWN + "config.json: not a"),
    "run-stdout-full": ("run --no-daemon -b {deep} c", ">/dev/full", OWN + "config.json: nested"),
    "create-missing-config": (
        "--root {root} create -b {empty} c",
        "",
        CREATE + "config.json: cannot",
    ),
    "create-config-fifo": ("--root {root} create -b {fifo} c", "", CREATE + "config.json: not a"),
    "create-config-deep": ("--root {root} create -b {deep} c", "", CREATE + "config.json: nested"),
    "create-bad-id": ("--root {root} create -b {valid} ../x", "", CREATE + "invalid container ID"),
    "start-no-id": ("--root {root} start", "", RUNC + ".*requires exactly 1 argument"),
    "start-unknown": ("--root {root} start nope", "", RUNC + '"container does not exist"'),
    "start-deep-state": ("--root {root} start deep", "", RUNC + '".*: nested too deeply"'),
    "start-fifo-state": ("--root {root} start fifo", "", RUNC + '".*: not a regular file"'),
    "state-bad-id": ("--root {root} state a/b", "", RUNC + '"invalid container ID'),
    "state-deep-state": ("--root {root} state deep", "", RUNC + '".*: nested too deeply"'),
    "state-fifo-state": ("--root {root} state fifo", "", RUNC + '".*: not a regular file"'),
    "state-garbage-state": ("--root {root} state garbage", "", RUNC + '".*: corrupt state file'),
    "state-stdout-closed": ("--root {root} state deep", ">&-", RUNC + '".*: nested too deeply"'),
    "state-root-a-file": ("--root {afile} state c", "", RUNC + '"container does not exist"'),
    "kill-deep-state": ("--root {root} kill deep", "", RUNC + '".*: nested too deeply"'),
    "kill-fifo-state": ("--root {root} kill fifo KILL", "", RUNC + '".*: not a regular file"'),
    "delete-bad-id": ("--root {root} delete .", "", RUNC + '"invalid container ID'),
    "list-root-a-file": ("--root {afile} list", "", RUNC + '".*Not a directory'),
    "list-stdout-full": ("--root {empty} list", ">/dev/full", RUNC + '".*No space left'),
    "spec-bundle-missing": ("spec -b {empty}/nope", "", OWN + "cannot write .*: No such file"),
    "spec-bundle-a-file": ("spec -b {afile}", "", OWN + "cannot write .*: Not a directory"),
    "spec-exists": ("spec -b {valid}", "", OWN + ".*config.json already exists"),
    "daemon-socket-under-a-file": ("daemon --socket {afile}/d.sock", "", OWN + ".*File exists"),
    "daemon-socket-too-long": ("daemon --socket {empty}/{long}/d.sock", "", OWN + ".*too long"),
    "daemon-socket-dir-open": ("daemon --socket {open}/d.sock", "", OWN + ".*writable by others"),
    "daemon-stdout-full": (
        "daemon --socket {private}/d.sock",
        ">/dev/full",
        OWN + "cannot announce",
    ),
    "init-closed-fd": ("init --sync-fd 99", "", OWN + "--sync-fd 99: Bad file descriptor"),
    "init-huge-fd": ("init --sync-fd 99999999999999999999", "", OWN + ".*Bad file descriptor"),
    "init-fd-text": ("init --sync-fd x", "", OWN + "init: argument --sync-fd: invalid int"),
    "init-no-fd": ("init", "", OWN + "init: the following arguments are required: --sync-fd"),
    "unknown-command": ("bogus", "", OWN + "argument command: invalid choice: 'bogus'"),
    "no-command": ("", "", OWN + "the following arguments are required: command"),
    "log-format-bogus": ("--log-format bogus state c", "", RUNC + '"invalid log-format: bogus"'),
    "log-unwritable": ("--log {afile}/log state c", "", OWN + ".*Not a directory"),
}


def hostile_tree(tmp_path: Path, busybox_image: Path) -> dict[str, str]:
    """Bundles with broken configs, a state root with broken state files, odd paths."""
    paths: dict[str, str] = {"long": "d" * 200}
    for name in ("empty", "fifo", "huge", "deep", "invalid", "valid", "root", "private"):
        (tmp_path / name).mkdir(mode=0o700)
        paths[name] = str(tmp_path / name)
    os.mkfifo(tmp_path / "fifo" / "config.json")
    with (tmp_path / "huge" / "config.json").open("wb") as f:
        f.truncate(17 << 20)
    (tmp_path / "deep" / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    (tmp_path / "invalid" / "config.json").write_text("{")
    config = base_config("true")
    config["root"]["path"] = str(busybox_image)
    (tmp_path / "valid" / "config.json").write_text(json.dumps(config))
    states = {"deep": b"[" * 100_000, "garbage": b"\xff\x00"}
    for container_id, content in states.items():
        (tmp_path / "root" / container_id).mkdir()
        (tmp_path / "root" / container_id / "state.json").write_bytes(content)
    (tmp_path / "root" / "fifo").mkdir()
    os.mkfifo(tmp_path / "root" / "fifo" / "state.json")
    (tmp_path / "afile").write_text("")
    paths["afile"] = str(tmp_path / "afile")
    (tmp_path / "open").mkdir()
    (tmp_path / "open").chmod(0o1777)
    paths["open"] = str(tmp_path / "open")
    return paths


def asyncinit_redirected(words: list[str], redirections: str) -> subprocess.CompletedProcess[str]:
    """``asyncinit WORDS`` with the shell's ``redirections`` (``>&-``, ``>/dev/full``)."""
    command = shlex.join([sys.executable, "-m", "asyncinit", *words])
    return subprocess.run(
        ["sh", "-c", f"exec {command} {redirections}"],
        cwd=CHECKOUT,
        env={**os.environ, "PYTHONPATH": str(CHECKOUT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("case", CASES)
def test_hostile_input_is_one_error_line(case: str, tmp_path: Path, busybox_image: Path) -> None:
    arguments, redirections, expected = CASES[case]
    paths = hostile_tree(tmp_path, busybox_image)
    words = [word.format(**paths) for word in shlex.split(arguments)]
    result = asyncinit_redirected(words, redirections)
    lines = result.stderr.splitlines()
    assert result.returncode not in (0, None), result.stderr
    assert len(lines) == 1, result.stderr
    assert re.match(expected, lines[0]), lines[0]
    assert len(lines[0]) < 1000
    assert result.stdout == ""


@pytest.mark.parametrize("arguments", ["features", "--root {empty} list", "--version"])
def test_output_to_a_closed_stdout_is_lost_not_a_traceback(arguments: str, tmp_path: Path) -> None:
    """Python leaves sys.stdout None for a closed fd 1: the commands that print
    failed with AttributeError.  Now fd 1 is the null device, as Go makes it for runc."""
    (tmp_path / "empty").mkdir()
    words = [word.format(empty=tmp_path / "empty") for word in shlex.split(arguments)]
    result = asyncinit_redirected(words, ">&-")
    assert (result.returncode, result.stderr) == (0, "")
