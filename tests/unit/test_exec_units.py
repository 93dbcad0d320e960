"""exec's pure decisions: runc's ``--cgroup`` syntax, the container's defaults for the
fields a process.json leaves unset, Container.exec's argument checks."""

from __future__ import annotations

import pytest

from asyncinit import UsageError
from asyncinit.config import Capabilities, ExecCPUAffinity, Process, User
from asyncinit.parent._exec import check_exec_arguments, with_container_defaults
from asyncinit.parent._exec_cgroups import parse_sub_cgroups


def test_sub_cgroup_syntax_as_runc() -> None:
    assert parse_sub_cgroups([]) == {}
    assert parse_sub_cgroups(["sub"]) == {"": "sub"}
    assert parse_sub_cgroups(["pids,memory:a/b", "cpu:c"]) == {
        "pids": "a/b",
        "memory": "a/b",
        "cpu": "c",
    }
    with pytest.raises(UsageError, match=r"^invalid --cgroup argument: a:b:c$"):
        parse_sub_cgroups(["a:b:c"])
    with pytest.raises(
        UsageError, match=r"^invalid --cgroup argument: x \(missing <controller>: prefix\)$"
    ):
        parse_sub_cgroups(["x", "pids:y"])


def _process(**fields: object) -> Process:
    return Process(args=("true",), cwd="/", user=User(uid=0, gid=0), **fields)  # type: ignore[arg-type]


def test_unset_fields_take_the_containers() -> None:
    container = _process(
        capabilities=Capabilities(bounding=("CAP_KILL",)),
        apparmor_profile="ct",
        oom_score_adj=123,
        exec_cpu_affinity=ExecCPUAffinity(final="1"),
        no_new_privileges=True,
    )
    merged = with_container_defaults(_process(), container)
    assert merged.capabilities == container.capabilities
    assert (merged.apparmor_profile, merged.oom_score_adj) == ("ct", 123)
    assert merged.exec_cpu_affinity == ExecCPUAffinity(final="1")
    assert merged.no_new_privileges is False  # runc: always the process's own
    own = _process(capabilities=Capabilities(), apparmor_profile="mine", oom_score_adj=0)
    kept = with_container_defaults(own, container)
    assert (kept.capabilities, kept.apparmor_profile, kept.oom_score_adj) == (
        Capabilities(),
        "mine",
        0,
    )
    assert with_container_defaults(own, None) is own


def test_exec_argument_checks() -> None:
    check_exec_arguments(False, [3, 4], (24, 80))
    with pytest.raises(TypeError, match=r"terminal must be a bool, not int"):
        check_exec_arguments(1, [], None)
    with pytest.raises(TypeError, match=r"pass_fds\[0\] must be an fd"):
        check_exec_arguments(False, ["3"], None)
    with pytest.raises(UsageError, match=r"at most 15"):
        check_exec_arguments(False, list(range(3, 19)), None)
    with pytest.raises(UsageError, match=r"console_size"):
        check_exec_arguments(False, [], (1, 2, 3))
