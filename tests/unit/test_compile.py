"""compile_spec is the one place where a start is decided: spawn()'s options included."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from asyncinit import Container, PythonHooks
from asyncinit.config import ConfigError, spec_from_dict
from asyncinit.parent._compile import Compiled, LaunchOptions, compile_spec
from asyncinit.parent._compile_hooks import REAP_TIMEOUT, REPLY_MARGIN
from tests.support.configs import base_config


async def nothing(container: Container) -> None:
    pass


def compiled(tmp_path: Path, config: dict[str, Any], **options: Any) -> Compiled:
    (tmp_path / "rootfs").mkdir(exist_ok=True)
    config["root"]["path"] = "rootfs"
    return compile_spec(spec_from_dict(config), tmp_path, "c1", LaunchOptions(**options))


def test_console_size_sizes_only_a_pty_without_console_size(tmp_path: Path) -> None:
    config = base_config()
    plan = compiled(tmp_path, config, console_size=(24, 80)).plan
    assert plan["process"]["console_size"] == (24, 80)
    config["process"]["consoleSize"] = {"height": 5, "width": 7}
    plan = compiled(tmp_path, config, console_size=(24, 80)).plan
    assert plan["process"]["console_size"] == (5, 7)


def test_python_create_runtime_hooks_are_in_the_plan(tmp_path: Path) -> None:
    """They make the init stop at ``hooks`` and wait for their time, as OCI ones do."""
    config = base_config()
    plan = compiled(tmp_path, config).plan
    assert not plan["parent_hooks"]
    assert plan["reply_timeouts"]["hooks_done"] == REPLY_MARGIN
    python = PythonHooks(create_runtime=[nothing, nothing])
    plan = compiled(tmp_path, config, python_hooks=python, hook_timeout=5).plan
    assert plan["parent_hooks"]
    assert plan["reply_timeouts"]["hooks_done"] == REPLY_MARGIN + 10
    plan = compiled(tmp_path, config, python_hooks=python, hook_timeout=None).plan
    assert plan["reply_timeouts"]["hooks_done"] is None
    config["hooks"] = {"prestart": [{"path": "/bin/true", "timeout": 3}]}
    plan = compiled(tmp_path, config, python_hooks=python, hook_timeout=5).plan
    assert plan["reply_timeouts"]["hooks_done"] == REPLY_MARGIN + 3 + 10


def test_python_poststart_and_poststop_hooks_do_not_stop_the_init(tmp_path: Path) -> None:
    python = PythonHooks(poststart=[nothing], poststop=[nothing])
    assert not compiled(tmp_path, base_config(), python_hooks=python).plan["parent_hooks"]


def test_every_hook_point_is_compiled(tmp_path: Path) -> None:
    config = base_config()
    points = (
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    )
    config["hooks"] = {
        point: [{"path": "/bin/true", "args": ["true", point], "timeout": 2}] for point in points
    }
    (tmp_path / "rootfs" / "bin").mkdir(parents=True)
    (tmp_path / "rootfs" / "bin" / "true").write_bytes(b"")
    (tmp_path / "rootfs" / "bin" / "true").chmod(0o755)
    python = PythonHooks(create_runtime=[nothing], poststart=[nothing], poststop=[nothing])
    result = compiled(tmp_path, config, python_hooks=python, hook_timeout=4)
    hooks = result.hooks
    by_point = {
        "prestart": hooks.prestart.commands,
        "createRuntime": hooks.create_runtime.commands,
        "createContainer": result.plan["create_container_hooks"],
        "startContainer": result.plan["start_container_hooks"],
        "poststart": hooks.poststart.commands,
        "poststop": hooks.poststop.commands,
    }
    for point, commands in by_point.items():
        (command,) = commands
        assert command["args"] == ["true", point]
        assert command["field"] == f"hooks.{point}[0]"
        assert command["timeout"] == 2
    for hook_point in (hooks.prestart, hooks.create_runtime, hooks.poststart, hooks.poststop):
        assert hook_point.kind in points
        assert len(hook_point.python) == (hook_point.kind != "prestart")
        assert hook_point.python_timeout == (None if hook_point.kind == "prestart" else 4)


@pytest.mark.parametrize(
    ("poststop", "python", "hook_timeout", "expected"),
    [
        ([], 0, 60, REAP_TIMEOUT),
        ([{"path": "/bin/true", "timeout": 3}, {"path": "/bin/true"}], 0, 60, 2 * REAP_TIMEOUT + 3),
        ([], 2, 7, REAP_TIMEOUT + 14),
        ([], 1, None, 2 * REAP_TIMEOUT),
    ],
)
def test_cleanup_timeout(
    tmp_path: Path,
    poststop: list[dict[str, Any]],
    python: int,
    hook_timeout: float | None,
    expected: float,
) -> None:
    """A failed start reaps PID 1, then gives each poststop hook its time (or the reap's)."""
    config = base_config()
    config["hooks"] = {"poststop": poststop}
    result = compiled(
        tmp_path,
        config,
        python_hooks=PythonHooks(poststop=[nothing] * python),
        hook_timeout=hook_timeout,
    )
    assert result.cleanup_timeout == expected


def test_spawn_options_reach_the_plan_and_the_launch_request(tmp_path: Path) -> None:
    options = {
        "backend": "trio",
        "init_mode": "supervise",
        "signal_group": True,
        "pass_fds": 2,
        "no_pivot_root": True,
    }
    result = compiled(tmp_path, base_config(), **options)
    process = result.plan["process"]
    assert (process["mode"], process["signal_group"], process["pass_fds"]) == ("supervise", True, 2)
    assert result.plan["no_pivot_root"]
    assert result.launch["backend"] == "trio"


def test_the_init_annotations_are_file_rules_and_options_override_them(tmp_path: Path) -> None:
    """A bad annotation is refused when the config loads; spawn()'s options are checked
    by compile, which names the option, and win over a good annotation."""
    config = base_config()
    config["annotations"] = {"io.asyncinit.init": "daemon"}
    with pytest.raises(ConfigError, match=r'annotations\.io\.asyncinit\.init: "daemon" is not'):
        spec_from_dict(config)
    with pytest.raises(ConfigError, match=r"init: 'daemon' is not one of .*spawn's init argument"):
        compiled(tmp_path, base_config(), init_mode="daemon")
    config["annotations"] = {
        "io.asyncinit.init": "supervise",
        "io.asyncinit.init.signal-group": "true",
    }
    process = compiled(tmp_path, config).plan["process"]
    assert (process["mode"], process["signal_group"]) == ("supervise", True)
    process = compiled(tmp_path, config, init_mode="exec", signal_group=False).plan["process"]
    assert (process["mode"], process["signal_group"]) == ("exec", False)
