"""asyncinit.oci's command line: runc's parsing, errors, exit codes, log, signals, features.

Pure: no container is started.  Where runc is installed, the same command lines
are run through runc 1.1 (with an empty temporary --root) and must fail the
same way; every command line recorded from podman, containerd and docker
(tests/engines/traces/) must parse.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from asyncinit.oci import is_runc_command, main
from asyncinit.oci._args import Invocation, parse, reorder_args
from asyncinit.oci._commands import COMMANDS, GLOBAL_FLAGS, default_root
from asyncinit.oci._control import HANDLERS
from asyncinit.oci._errors import OciUsageError as UsageError
from asyncinit.oci._errors import UnknownCommand
from asyncinit.oci._features import features
from asyncinit.oci._log import Logger, go_quote
from asyncinit.oci._main import Context
from asyncinit.oci._signals import SIGNALS, parse_signal
from tests.support import CHECKOUT
from tests.support.launcher_layout import installed_layout
from tests.support.runc import RUNC

TRACES = CHECKOUT / "tests" / "engines" / "traces"


def parsed(*argv: str) -> Invocation:
    return parse(list(argv), COMMANDS, GLOBAL_FLAGS)


def run_main(argv: list[str], capfd: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    out = io.StringIO()
    code = main(argv, HANDLERS, stdout=out)
    return code, out.getvalue(), capfd.readouterr().err


# --- parsing ----------------------------------------------------------------------------


def test_podman_create_line() -> None:
    inv = parsed(
        "--log-format=json", "--log", "/l", "create", "--bundle", "/b", "--pid-file", "/p",
        "--console-socket", "/s", "abc",
    )  # fmt: skip
    assert (inv.command, inv.args) == ("create", ["abc"])
    assert (inv.text("log-format"), inv.text("log")) == ("json", "/l")
    assert (inv.text("bundle"), inv.text("pid-file"), inv.text("console-socket")) == (
        "/b",
        "/p",
        "/s",
    )


def test_flag_spellings_are_gos() -> None:
    """-flag, --flag, =value or the next argument; a bool takes only =value."""
    for argv in (["-root", "/r"], ["--root=/r"], ["-root=/r"], ["--root", "/r"]):
        assert parsed(*argv, "list").text("root") == "/r"
    assert parsed("--debug=false", "list").on("debug") is False
    assert parsed("--debug", "list").on("debug") is True
    assert parsed("exec", "--cwd", "-weird", "x", "true").text("cwd") == "-weird"


def test_repeated_and_numeric_flags() -> None:
    inv = parsed("exec", "-e", "A=1", "--env=B=2", "-g", "10", "-g", "0x14", "id", "true")
    assert inv.strings("env") == ["A=1", "B=2"]
    assert inv.flags["additional-gids"] == [10, 20]
    assert parsed("create", "--preserve-fds=0x2", "x").number("preserve-fds") == 2
    assert parsed("create", "--preserve-fds", "010", "x").number("preserve-fds") == 8


def test_defined_flags_after_the_arguments_are_moved_except_for_exec_and_ps() -> None:
    assert parsed("delete", "abc", "--force").on("force") is True
    assert parsed("kill", "abc", "KILL", "--all").args == ["abc", "KILL"]
    # exec and ps keep everything after the id for the process
    assert parsed("exec", "abc", "sh", "-c", "x").args == ["abc", "sh", "-c", "x"]
    assert parsed("ps", "abc", "-f").args == ["abc", "-f"]
    # an unknown flag after the arguments stays an argument
    with pytest.raises(UsageError, match=r'"state" requires exactly 1 argument'):
        parsed("state", "abc", "--bogus")
    assert reorder_args(COMMANDS["create"].flags, ["x", "-b"]) == ["-b", "x"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["state"], 'asyncinit: "state" requires exactly 1 argument(s)'),
        (["state", "a", "b"], 'asyncinit: "state" requires exactly 1 argument(s)'),
        (["kill"], 'asyncinit: "kill" requires a minimum of 1 argument(s)'),
        (["kill", "a", "b", "c"], 'asyncinit: "kill" requires a maximum of 2 argument(s)'),
        (["list", "extra"], 'asyncinit: "list" requires exactly 0 argument(s)'),
        (["create", "nope", "-b"], 'asyncinit: "create" requires exactly 1 argument(s)'),
        (["exec", "--bogus", "x"], "flag provided but not defined: -bogus"),
        (["--root"], "flag needs an argument: -root"),
        (["--debug=maybe", "list"], 'invalid boolean value "maybe" for -debug: parse error'),
        (
            ["create", "--preserve-fds=x", "a"],
            'invalid value "x" for flag -preserve-fds: parse error',
        ),
        (["create", "---x", "a"], "bad flag syntax: ---x"),
        (["exec", "-dt", "a", "sh"], "flag provided but not defined: -dt"),
    ],
)
def test_usage_errors_in_runcs_words(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError) as info:
        parsed(*argv)
    assert str(info.value) == message


def test_unknown_command_exits_3(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UnknownCommand, match="No help topic for 'bogus'\n"):
        parsed("bogus")
    code, _, err = run_main(["bogus"], capfd)
    assert code == 3
    assert "No help topic for 'bogus'" in err


def test_help_and_version(capfd: pytest.CaptureFixture[str]) -> None:
    assert parsed("--version").command == "version"
    assert parsed("-v", "state", "x").command == "version"
    assert parsed().command == "help"
    inv = parsed("create", "--help")
    assert (inv.command, inv.args) == ("help", ["create"])
    code, out, _ = run_main(["--version"], capfd)
    assert code == 0
    assert out.startswith("asyncinit version ")
    code, out, _ = run_main(["kill", "-h"], capfd)
    assert code == 0
    assert "--all, -a" in out


def test_default_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert default_root() == "/run/user/1000/asyncinit"
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert default_root() == "/run/asyncinit"


def test_is_runc_command() -> None:
    assert is_runc_command(["create", "--bundle", "b", "x"])
    assert is_runc_command(["--log-format=json", "--log", "f", "exec", "x"])
    assert is_runc_command(["--version"])
    assert is_runc_command(["--debug", "state", "x"])
    assert not is_runc_command(["run", "x"])  # asyncinit's own run (daemon, --backend...)
    assert not is_runc_command(["--debug", "run", "-b", "b", "--init", "x"])
    for runc_only in ("--detach", "-d", "--keep", "--pid-file=p", "--console-socket", "-keep"):
        assert is_runc_command(["run", runc_only, "x"])
    assert is_runc_command(["--root", "r", "run", "x"])
    assert not is_runc_command(["daemon"])
    assert not is_runc_command(["init", "--sync-fd", "3"])


# --- signals ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "number"),
    [("KILL", 9), ("SIGKILL", 9), ("kill", 9), ("sigterm", 15), ("USR1", 10), ("SIGUSR2", 12),
     ("15", 15), ("9", 9), ("10", 10), ("+9", 9), ("SIGSYS", 31), ("WINCH", 28)],
)  # fmt: skip
def test_signals_as_runc_reads_them(text: str, number: int) -> None:
    assert parse_signal(text) == number


@pytest.mark.parametrize("text", ["FOO", "SIGIOT", "SIGPOLL", "RTMIN", "9x", " 9", "", "٣"])
def test_unknown_signals(text: str) -> None:
    with pytest.raises(UsageError, match=f'unknown signal "{text}"'):
        parse_signal(text)


def test_signal_table_matches_python() -> None:
    import signal

    for name, number in SIGNALS.items():
        assert getattr(signal, name, number) == number, name


# --- the log ----------------------------------------------------------------------------


def test_json_log_line_and_plain_stderr(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "log.json"
    code, _, err = run_main(
        ["--log-format=json", "--log", str(log), "--root", str(tmp_path), "state", "nope"], capfd
    )
    assert code == 1
    assert err == "container does not exist\n"
    (line,) = log.read_text().splitlines()
    record = json.loads(line)
    assert list(record) == ["level", "msg", "time"]
    assert record["level"] == "error"
    assert record["msg"] == "container does not exist"


def test_text_log_line(capfd: pytest.CaptureFixture[str]) -> None:
    Logger().error('say "hi"\n')
    err = capfd.readouterr().err
    assert err.startswith('time="')
    assert err.endswith(' level=error msg="say \\"hi\\"\\n"\n')
    Logger().error("bare")
    assert capfd.readouterr().err.endswith(" level=error msg=bare\n")


def test_invalid_log_format(capfd: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["--log-format=xml", "list"], capfd)
    assert code == 1
    assert 'msg="invalid log-format: xml"' in err


def test_go_quote() -> None:
    assert go_quote('a"b\\c\n\t\x01é') == '"a\\"b\\\\c\\n\\t\\x01é"'


# --- dispatch -----------------------------------------------------------------------------


def test_refusals_and_unwired_commands(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["--systemd-cgroup", "state", "x"], capfd)
    assert (code, "no systemd cgroup driver" in err) == (1, True)
    code, _, err = run_main(["--root", str(tmp_path), "checkpoint", "x"], capfd)
    assert (code, "not supported" in err) == (1, True)
    code, _, err = run_main(["--root", str(tmp_path), "create", "x"], capfd)
    assert (code, "create: not implemented by asyncinit yet" in err) == (1, True)


def test_handlers_from_the_wiring(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    seen = []

    def kill(ctx: Context) -> int:
        seen.append((ctx.args, ctx.state_dir.root))
        return 0

    def failing_exec(ctx: Context) -> int:
        raise ProcessLookupError(3, "No such process")

    handlers = {"kill": kill, "exec": failing_exec}
    assert main(["--root", str(tmp_path), "kill", "c1", "9"], handlers) == 0
    assert seen == [(["c1", "9"], str(tmp_path))]
    code = main(["--root", str(tmp_path), "exec", "c1", "true"], handlers)
    assert code == 255  # runc's exit status for a failed exec
    assert 'msg="exec failed: [Errno 3] No such process"' in capfd.readouterr().err


def test_features_document_is_truthful() -> None:
    from asyncinit.config import CAPABILITIES, KNOWN_MOUNT_OPTIONS

    doc = features()
    assert doc["ociVersionMax"] == "1.0.2-dev"
    assert doc["mountOptions"] == sorted(KNOWN_MOUNT_OPTIONS)
    assert "time" in doc["linux"]["namespaces"]  # time namespaces and linux.timeOffsets
    assert doc["linux"]["capabilities"][0] == "CAP_CHOWN"
    assert len(doc["linux"]["capabilities"]) == len(CAPABILITIES)
    assert doc["linux"]["seccomp"]["enabled"] is True
    assert "SCMP_ACT_NOTIFY" in doc["linux"]["seccomp"]["actions"]
    # the cgroupfs driver on both versions; no systemd driver
    assert doc["linux"]["cgroup"] == {
        "v1": True,
        "v2": True,
        "systemd": False,
        "systemdUser": False,
    }


def test_the_lean_commands_import_no_heavy_modules(tmp_path: Path) -> None:
    """`state` is a process of its own per call: no json, re, argparse or typing."""
    code = (
        f"import sys; sys.path.insert(0, {str(CHECKOUT)!r}); "
        "before = set(sys.modules); from asyncinit.oci import main; "
        f"main(['--root', {str(tmp_path)!r}, 'state', 'x']); "
        "print(sorted(m for m in ('re', 'json', 'argparse', 'typing', 'dataclasses',"
        " 'contextlib', 'signal', 'asyncinit.config') if m in set(sys.modules) - before))"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert result.stdout.strip() == "[]"


# --- the command lines real engines send (tests/engines/traces/) ----------------------------


def recorded_lines() -> list[str]:
    lines = []
    for trace in sorted(TRACES.glob("*.txt")):
        text = trace.read_text()
        section = text.split("## distinct command lines\n", 1)[1].split("\n\n", 1)[0]
        lines += [line for line in section.splitlines() if line.startswith("runtime ")]
    return lines


def test_traces_are_there() -> None:
    assert len(recorded_lines()) >= 30


@pytest.mark.parametrize("line", recorded_lines())
def test_every_recorded_engine_command_line_parses(line: str) -> None:
    words = line.split()[1:]
    values = {"<path>": "/tmp/x", "<id>": "c1", "<n>": "3"}
    argv = [
        "=".join([w.partition("=")[0], values.get(w.partition("=")[2], w.partition("=")[2])])
        if "=" in w
        else values.get(w, w)
        for w in words
    ]
    inv = parsed(*argv)
    assert inv.command in COMMANDS or inv.command == "version"
    if inv.command == "kill":
        assert 1 <= parse_signal(inv.args[1]) <= 31


# --- differential: runc's own command line --------------------------------------------------

DIFFERENTIAL = [
    ["state"],
    ["state", "nope"],
    ["state", "a", "b"],
    ["kill"],
    ["kill", "a", "b", "c"],
    ["start"],
    ["delete"],
    ["pause"],
    ["events"],
    ["list", "extra"],
    ["features", "x"],
    ["spec", "extra"],
    ["run"],
    ["create", "nope", "-b"],
    ["create", "--preserve-fds=x", "nope"],
    ["exec", "--bogus", "nope"],
    ["state", "nope", "--bogus"],
    ["--debug=maybe", "list"],
    ["--root"],
    ["--log-format=xml", "state", "x"],
    ["bogus"],
    ["list"],
    ["list", "-q"],
    ["list", "--format", "json"],
    ["list", "--format=yaml"],
    ["state", "--", "nope"],
    ["kill", "nope"],
    ["kill", "nope", "KILL"],
    ["kill", "--all", "nope", "BOGUS"],
    ["delete", "nope"],
    ["delete", "--force", "nope"],
    ["delete", "nope", "--force"],
]


def _runc_message(stderr: str) -> str:
    for line in stderr.splitlines():
        if " level=error msg=" in line:
            return str(json.loads(line.split(" msg=", 1)[1]))
    return ""


@pytest.mark.skipif(RUNC is None, reason="runc is not installed")
@pytest.mark.parametrize("argv", DIFFERENTIAL, ids=" ".join)
def test_same_outcome_as_runc(
    argv: list[str], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    assert RUNC is not None
    root = ["--root", str(tmp_path)] if argv[:1] != ["--root"] else []
    runc = subprocess.run(
        [RUNC, *root, *argv], capture_output=True, text=True, check=False, timeout=30
    )
    code, out, err = run_main([*root, *argv], capfd)
    assert code == runc.returncode
    expected = _runc_message(runc.stderr).replace(f"{RUNC}:", "asyncinit:")
    assert _runc_message(err) == expected
    if code == 0:
        assert out == runc.stdout


# --- the installed command (scripts/asyncinit) ---------------------------------------------


def test_the_installed_command_runs_lean_commands_without_site(tmp_path: Path) -> None:
    """``state``/``kill``... start with ``python -I -S`` and import neither site nor cli.py;
    other commands get site (the dependencies) and work as before."""
    launcher = installed_layout(tmp_path / "venv")
    root = str(tmp_path / "root")
    env = {"PATH": "/usr/bin:/bin"}  # no PYTHONPATH: the layout alone finds the package
    version = subprocess.run(
        [launcher, "--version"], capture_output=True, text=True, env=env, check=False
    )
    assert version.stdout.startswith("asyncinit version "), version.stderr
    state = subprocess.run(
        [launcher, "--root", root, "state", "x"], capture_output=True, env=env, check=False
    )
    assert (state.returncode, b"container does not exist" in state.stderr) == (1, True)
    spec = subprocess.run(
        [launcher, "spec", "-b", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert spec.returncode == 0, spec.stderr
    assert json.loads((tmp_path / "config.json").read_text())["ociVersion"]
    # what the shell line execs, with -X importtime to see every import
    python = str(tmp_path / "venv" / "bin" / "python3")
    traced = subprocess.run(
        [python, "-I", "-S", "-X", "importtime", launcher, "--root", root, "state", "x"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    imported = {line.rsplit("|", 1)[-1].strip() for line in traced.stderr.splitlines()}
    assert "asyncinit.oci._main" in imported
    assert not imported & {"site", "asyncinit.cli", "asyncinit._runc", "typing", "re"}
