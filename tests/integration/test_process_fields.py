"""process.scheduler, ioPriority, execCPUAffinity, apparmorProfile, selinuxLabel,
linux.personality, mountLabel, timeOffsets and time namespaces: validation, the
compiled plan, and real containers read from inside (/proc, ionice, uname).

AppArmor confinement itself needs a kernel with AppArmor: tests/integration/test_apparmor.py
(run in the guest of tests/vm/run).  Here: what happens without it, against runc.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, TypeVar, cast

import anyio
import pytest

from asyncinit import ConfigError, InitError
from asyncinit.config import spec_from_dict
from asyncinit.config._process_fields import parse_cpu_list
from asyncinit.oci._features import features
from asyncinit.parent._compile import compile_spec
from tests.support import CHECKOUT
from tests.support.configs import base_config
from tests.support.containers import MakeConfig, needs_root, run
from tests.support.host import traversable_by_everyone
from tests.support.runc import RUNC, needs_runc
from tests.support.seccomp import moby_default

pytestmark = pytest.mark.caller_loop("asyncio")  # the init's loop is spawn(backend=)
APPARMOR_ON = Path("/sys/module/apparmor/parameters/enabled").is_file() and Path(
    "/sys/module/apparmor/parameters/enabled"
).read_text().startswith("Y")


def loaded(**fields: Any) -> dict[str, Any]:
    """runc's default config with ``process``/``linux`` fields set ("process.x": value)."""
    config = base_config()
    for dotted, value in fields.items():
        section, key = dotted.split("__")
        config[section][key] = value
    return config


def compiled(config: dict[str, Any]) -> Any:
    config["root"]["path"] = "/"
    return compile_spec(spec_from_dict(config), "/", "c")


def errors_of(config: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        spec_from_dict(config)
    return info.value.errors


TIME_NS = {"type": "time"}


def with_time_ns(config: dict[str, Any], offsets: Any) -> dict[str, Any]:
    config["linux"]["namespaces"].append(dict(TIME_NS))
    config["linux"]["timeOffsets"] = offsets
    return config


# --- validation -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"process__scheduler": {"policy": "SCHED_FAST"}},
            'process.scheduler.policy: unknown policy "SCHED_FAST" (expected one of SCHED_OTHER, '
            "SCHED_FIFO, SCHED_RR, SCHED_BATCH, SCHED_IDLE, SCHED_DEADLINE)",
        ),
        (
            {"process__scheduler": {"policy": "SCHED_ISO"}},
            "process.scheduler.policy: SCHED_ISO is reserved by Linux and not implemented",
        ),
        (
            {"process__scheduler": {"policy": "SCHED_OTHER", "nice": 20}},
            "process.scheduler.nice: must be between -20 and 19, got 20",
        ),
        (
            {"process__scheduler": {"policy": "SCHED_RR"}},
            "process.scheduler.priority: must be between 1 and 99, got 0",
        ),
        (
            {"process__scheduler": {"policy": "SCHED_BATCH", "priority": 5}},
            "process.scheduler.priority: only SCHED_FIFO and SCHED_RR take a priority",
        ),
        (
            {"process__scheduler": {"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_FAST"]}},
            'process.scheduler.flags[0]: unknown flag "SCHED_FLAG_FAST"',
        ),
        (
            {"process__scheduler": {"policy": "SCHED_OTHER", "runtime": 10}},
            "process.scheduler: runtime, deadline and period are only for SCHED_DEADLINE",
        ),
        (
            {"process__scheduler": {"policy": "SCHED_DEADLINE", "runtime": 10, "deadline": 5}},
            "process.scheduler: SCHED_DEADLINE needs 0 < runtime <= deadline <= period "
            "(period 0: deadline)",
        ),
        (
            {
                "process__scheduler": {
                    "policy": "SCHED_DEADLINE",
                    "runtime": 1,
                    "deadline": 2,
                    "period": 2**64,
                }
            },
            "process.scheduler.period: must be between 0 and 18446744073709551615, "
            "got 18446744073709551616",
        ),
        (
            {"process__ioPriority": {"class": "IOPRIO_CLASS_NONE", "priority": 0}},
            'process.ioPriority.class: unknown class "IOPRIO_CLASS_NONE" '
            "(expected IOPRIO_CLASS_RT, IOPRIO_CLASS_BE, IOPRIO_CLASS_IDLE)",
        ),
        (
            {"process__ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 8}},
            "process.ioPriority.priority: must be between 0 and 7, got 8",
        ),
        (
            {"process__ioPriority": {"class": "IOPRIO_CLASS_BE"}},
            "process.ioPriority.priority: required field missing",
        ),
        (
            {"process__execCPUAffinity": {"initial": "0-", "final": "1"}},
            'process.execCPUAffinity.initial: invalid CPU list "0-": "0-" is not N or N-M',
        ),
        (
            {"process__execCPUAffinity": {"final": "5-2"}},
            'process.execCPUAffinity.final: invalid CPU list "5-2": "5-2" is a reversed range',
        ),
        (
            {"process__execCPUAffinity": {"final": "9000"}},
            'process.execCPUAffinity.final: invalid CPU list "9000": CPU 9000 is above 8191',
        ),
        (
            {"linux__personality": {"domain": "LINUX64"}},
            'linux.personality.domain: unknown domain "LINUX64" (LINUX, LINUX32)',
        ),
        (
            {"linux__personality": {"domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE"]}},
            "linux.personality.flags: the runtime-spec defines no flag values; none is accepted",
        ),
        (
            {"linux__personality": {"flags": []}},
            "linux.personality.domain: required field missing",
        ),
        (
            {"linux__timeOffsets": {"monotonic": {"secs": 5}}},
            "linux.timeOffsets: requires a time namespace in linux.namespaces",
        ),
        (
            {"process__apparmorProfile": 5},
            "process.apparmorProfile: expected a string, got 5",
        ),
        (
            {"process__selinuxLabel": "system_u:system_r:container_t:s0"},
            "process.selinuxLabel: SELinux process labels are not supported by asyncinit "
            '(runc 1.1.5, SELinux disabled: "selinux label is specified in config, but selinux '
            'is disabled or not supported")',
        ),
        (
            {"linux__mountLabel": "system_u:object_r:container_file_t:s0"},
            "linux.mountLabel: SELinux mount labels are not supported by asyncinit (runc 1.1.5, "
            "SELinux disabled: adds context=\"...\" to each mount's data, which the kernel "
            "refuses with EINVAL)",
        ),
    ],
)
def test_bad_values_name_their_field(fields: dict[str, Any], expected: str) -> None:
    assert errors_of(loaded(**fields)) == [expected]


@pytest.mark.parametrize(
    ("offsets", "expected"),
    [
        ({"realtime": {"secs": 1}}, 'linux.timeOffsets["realtime"]: unknown clock'),
        ({"boottime": {"nanosecs": 10**9}}, 'linux.timeOffsets["boottime"].nanosecs: must be'),
        ({"monotonic": {"secs": 2**63}}, 'linux.timeOffsets["monotonic"].secs: must be'),
        ({"monotonic": {"secs": "1"}}, 'linux.timeOffsets["monotonic"].secs: expected an integer'),
    ],
)
def test_bad_time_offsets(offsets: dict[str, Any], expected: str) -> None:
    (error,) = errors_of(with_time_ns(base_config(), offsets))
    assert error.startswith(expected), error


def test_time_offsets_need_a_new_namespace() -> None:
    config = with_time_ns(base_config(), {"boottime": {"secs": 1}})
    config["linux"]["namespaces"][-1]["path"] = "/proc/1/ns/time"
    assert errors_of(config) == [
        "linux.timeOffsets: cannot be set on a time namespace joined by path"
    ]


def test_empty_strings_mean_unset() -> None:
    plan = compiled(loaded(process__apparmorProfile="", process__selinuxLabel="")).plan
    assert plan["process"]["apparmor_profile"] is None


@pytest.mark.parametrize(
    ("text", "cpus"),
    [("0", [0]), ("0-3,7", [0, 1, 2, 3, 7]), ("3,1-2,2", [1, 2, 3]), ("8191", [8191])],
)
def test_cpu_lists(text: str, cpus: list[int]) -> None:
    assert parse_cpu_list(text) == cpus


@pytest.mark.parametrize("text", ["", ",", "1,", "a", "-1", "1-2-3", " 1", "\u0661"])
def test_bad_cpu_lists(text: str) -> None:
    with pytest.raises(ValueError, match="invalid CPU list"):
        parse_cpu_list(text)


def test_compiled_plan() -> None:
    config = loaded(
        process__scheduler={
            "policy": "SCHED_DEADLINE",
            "flags": ["SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_DL_OVERRUN"],
            "runtime": 10_000_000,
            "deadline": 20_000_000,
            "period": 30_000_000,
        },
        process__ioPriority={"class": "IOPRIO_CLASS_IDLE", "priority": 7},
        process__execCPUAffinity={"initial": "0-1", "final": ""},
        process__apparmorProfile="docker-default",
        linux__personality={"domain": "LINUX32"},
    )
    with_time_ns(config, {"monotonic": {"secs": -5, "nanosecs": 7}, "boottime": {"secs": 9}})
    result = compiled(config)
    process = result.plan["process"]
    assert process["scheduler"] == {
        "policy": 6,
        "flags": 0x05,
        "nice": 0,
        "priority": 0,
        "runtime": 10_000_000,
        "deadline": 20_000_000,
        "period": 30_000_000,
    }
    assert process["io_priority"] == 3 << 13 | 7
    assert process["personality"] == 0x0008
    assert process["apparmor_profile"] == "docker-default"
    assert process["exec_cpu_affinity"] == {"initial": [0, 1], "final": None}
    assert result.launch["clone_flags"] & 0x80  # CLONE_NEWTIME
    assert result.launch["time_offsets"] == "monotonic -5 7\nboottime 9 0\n"


def test_unset_fields_compile_to_nothing() -> None:
    result = compiled(base_config())
    process = result.plan["process"]
    for key in ("scheduler", "io_priority", "personality", "apparmor_profile"):
        assert process[key] is None
    assert process["exec_cpu_affinity"] is None
    assert result.launch["time_offsets"] == ""


def test_features_are_truthful() -> None:
    linux = features()["linux"]
    assert "time" in linux["namespaces"]
    assert linux["apparmor"] == {"enabled": True}  # support compiled in (runc's meaning)
    assert linux["selinux"] == {"enabled": False}


def test_init_start_path_imports_nothing_new() -> None:
    """Without these fields the init never imports their module (the fork server
    preloads it, so a container that uses them does not pay for it either)."""
    code = (
        "import sys, asyncinit.init._entry, asyncinit.init._supervise; "
        "sys.exit('asyncinit.init._attributes' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(CHECKOUT)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


# --- real containers --------------------------------------------------------------

T = TypeVar("T")


def integration(test: T) -> T:
    """The marks of a test that starts real containers (this module also has unit tests)."""
    return cast(T, pytest.mark.integration(pytest.mark.anyio(needs_root(test))))


#: where the host schedules realtime tasks by cgroup (v1 with CONFIG_RT_GROUP_SCHED)
RT_GROUPS = Path("/sys/fs/cgroup/cpu/cpu.rt_runtime_us")

#: the shell's own /proc/PID/stat: nice is field 19, rt_priority 40, policy 41
STAT = "set -- $(cat /proc/$$/stat); shift 18; echo nice=$1; shift 21; echo rt=$1 policy=$2"


@pytest.mark.parametrize("mode", ["exec", "supervise"])
@pytest.mark.parametrize(
    ("scheduler", "expected"),
    [
        ({"policy": "SCHED_BATCH", "nice": 7}, "nice=7\nrt=0 policy=3\n"),
        ({"policy": "SCHED_FIFO", "priority": 10}, "nice=0\nrt=10 policy=1\n"),
        ({"policy": "SCHED_IDLE"}, "nice=0\nrt=0 policy=5\n"),
    ],
)
@integration
async def test_scheduler_seen_inside(
    make_config: MakeConfig, scheduler: dict[str, Any], expected: str, mode: str
) -> None:
    config = make_config("sh", "-c", STAT)
    config["process"]["scheduler"] = scheduler
    if scheduler["policy"] == "SCHED_FIFO" and RT_GROUPS.exists():
        # v1 with realtime group scheduling: the container's own cpu cgroup has no
        # realtime runtime unless given one (runc's SCHED_FIFO is refused the same way)
        config["linux"].setdefault("resources", {})["cpu"] = {"realtimeRuntime": 10000}
    code, out, err = await run(config, init=mode)
    assert (code, out) == (0, expected), err


@integration
async def test_without_scheduler_the_default(make_config: MakeConfig) -> None:
    code, out, err = await run(make_config("sh", "-c", STAT))
    assert (code, out) == (0, "nice=0\nrt=0 policy=0\n"), err


@integration
async def test_scheduler_refused_by_the_kernel_names_the_field(make_config: MakeConfig) -> None:
    # A deadline the kernel cannot admit (runtime below its 1024 ns resolution).
    config = make_config("true")
    config["process"]["scheduler"] = {"policy": "SCHED_DEADLINE", "runtime": 1, "deadline": 2}
    with pytest.raises(InitError) as info:
        await run(config)
    assert info.value.field == "process.scheduler"
    assert info.value.operation == "sched_setattr"


@integration
@pytest.mark.parametrize("mode", ["exec", "supervise"])
@pytest.mark.parametrize(
    ("io", "expected"),
    [
        ({"class": "IOPRIO_CLASS_IDLE", "priority": 0}, "idle"),
        ({"class": "IOPRIO_CLASS_BE", "priority": 3}, "best-effort: prio 3"),
        ({"class": "IOPRIO_CLASS_RT", "priority": 6}, "realtime: prio 6"),
        (None, "none: prio 0"),
    ],
)
async def test_io_priority_seen_inside(
    make_config: MakeConfig, io: dict[str, Any] | None, expected: str, mode: str
) -> None:
    config = make_config("sh", "-c", "ionice -p $$")
    if io is not None:
        config["process"]["ioPriority"] = io
    code, out, err = await run(config, init=mode)
    assert (code, out) == (0, expected + "\n"), err


@integration
@pytest.mark.parametrize("mode", ["exec", "supervise"])
@pytest.mark.parametrize(
    ("domain", "expected"), [("LINUX32", "i686 00000008"), ("LINUX", "x86_64 00000000")]
)
async def test_personality_seen_inside(
    make_config: MakeConfig, domain: str, expected: str, mode: str
) -> None:
    if os.uname().machine != "x86_64":
        pytest.skip("the expected machine names are x86_64's")
    config = make_config("sh", "-c", "echo $(uname -m) $(cat /proc/self/personality)")
    config["linux"]["personality"] = {"domain": domain}
    code, out, err = await run(config, init=mode)
    assert (code, out) == (0, expected + "\n"), err


@integration
async def test_personality_under_moby_seccomp_profile(make_config: MakeConfig) -> None:
    """Set after the filter, as runc: moby's profile allows personality(PER_LINUX32)."""
    config = make_config("uname", "-m")
    config["linux"]["personality"] = {"domain": "LINUX32"}
    config["linux"]["seccomp"] = moby_default(caps=[])
    config["process"]["noNewPrivileges"] = True
    code, out, err = await run(config)
    assert (code, out) == (0, "i686\n"), err


#: the offsets as the container reads them, its boottime in seconds, its time namespace
TIMENS = "cat /proc/self/timens_offsets; cut -d. -f1 /proc/uptime; readlink /proc/self/ns/time"


def host_time_ns() -> str:
    return os.readlink("/proc/self/ns/time")


@integration
@pytest.mark.parametrize("userns", [False, True], ids=["direct", "user-namespace"])
@pytest.mark.parametrize("mode", ["exec", "supervise"])
async def test_time_namespace_offsets_seen_inside(
    make_config: MakeConfig, bundle: Path, userns: bool, mode: str
) -> None:
    config = with_time_ns(
        make_config("sh", "-c", TIMENS),
        {"monotonic": {"secs": 86400, "nanosecs": 5}, "boottime": {"secs": 10**7}},
    )
    if userns:  # the fork server's intermediate creates it, after the user namespace
        traversable_by_everyone(bundle)
        config["linux"]["namespaces"].append({"type": "user"})
        for key in ("uidMappings", "gidMappings"):
            config["linux"][key] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    code, out, err = await run(config, init=mode)
    assert code == 0, err
    monotonic, boottime, uptime, namespace = out.splitlines()
    assert monotonic.split() == ["monotonic", "86400", "5"]
    assert boottime.split() == ["boottime", "10000000", "0"]
    with open("/proc/uptime") as f:
        host_uptime = int(f.read().split(".")[0])
    assert abs(int(uptime) - 10**7 - host_uptime) <= 60
    assert namespace != host_time_ns()


@integration
async def test_time_namespace_without_offsets_and_the_server_steps_back(
    make_config: MakeConfig,
) -> None:
    config = make_config("sh", "-c", TIMENS)
    config["linux"]["namespaces"].append(dict(TIME_NS))
    code, out, err = await run(config)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["monotonic", "0", "0"]
    assert lines[-1] != host_time_ns()
    # The fork server went back to its own time namespace: the next container is there.
    code, out, err = await run(make_config("readlink", "/proc/self/ns/time"))
    assert (code, out) == (0, host_time_ns() + "\n"), err


@integration
async def test_time_namespace_joined_by_path(make_config: MakeConfig) -> None:
    """A time namespace held by another process (util-linux unshare), joined with
    setns by the fork server's intermediate: its offsets show inside."""
    holder = subprocess.Popen(
        ["unshare", "--fork", "--time", "--boottime", "2000000", "sleep", "60"],
        stdin=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):  # the forked sleep is the one in the namespace
            children = Path(f"/proc/{holder.pid}/task/{holder.pid}/children").read_text().split()
            if children and os.readlink(f"/proc/{children[0]}/ns/time") != host_time_ns():
                break
            await anyio.sleep(0.01)
        else:
            pytest.fail("unshare --time did not start its child")
        config = make_config("sh", "-c", TIMENS)
        joined = {"type": "time", "path": f"/proc/{children[0]}/ns/time"}
        config["linux"]["namespaces"].append(joined)
        code, out, err = await run(config)
    finally:
        holder.kill()
        holder.wait()
    assert code == 0, err
    lines = out.splitlines()
    assert lines[1].split() == ["boottime", "2000000", "0"]
    assert lines[-1] != host_time_ns()


@integration
async def test_time_offset_refused_by_the_kernel_names_the_field(make_config: MakeConfig) -> None:
    # A boottime before the boot: the kernel says ERANGE when the offsets are written.
    config = with_time_ns(make_config("true"), {"boottime": {"secs": -(10**12)}})
    with pytest.raises(InitError) as info:
        await run(config)
    assert info.value.field == "linux.timeOffsets"
    assert info.value.errno == 34  # ERANGE
    code, out, err = await run(make_config("readlink", "/proc/self/ns/time"))
    assert (code, out) == (0, host_time_ns() + "\n"), err


# --- against runc 1.1.5 -----------------------------------------------------------


def without_cgroup_mount(config: dict[str, Any]) -> dict[str, Any]:
    """runc 1.1.5 mounts cgroup2 from the initial cgroup namespace, which clears a
    systemd host's nsdelegate,memory_recursiveprot machine-wide (runc#5258): the runc
    comparisons run without that mount."""
    config["mounts"] = [m for m in config["mounts"] if m["type"] != "cgroup"]
    return config


def runc(bundle: Path, config: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    assert RUNC is not None
    (bundle / "config.json").write_text(json.dumps(config))
    return subprocess.run(
        [RUNC, "run", "--bundle", str(bundle), f"lsm-{uuid.uuid4().hex[:8]}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


@integration
@needs_runc
@pytest.mark.skipif(APPARMOR_ON, reason="this host has AppArmor: test_apparmor.py")
async def test_apparmor_profile_without_apparmor_fails_as_in_runc(
    make_config: MakeConfig, bundle: Path
) -> None:
    config = make_config("true")
    config["process"]["apparmorProfile"] = "docker-default"
    with pytest.raises(InitError) as info:
        await run(config)
    error = info.value
    assert (error.field, error.errno, error.operation) == ("process.apparmorProfile", 22, "write")
    assert error.filename == "/proc/thread-self/attr/exec"
    assert "AppArmor is not enabled on this host" in str(error)
    result = runc(bundle, config)
    assert result.returncode != 0
    assert "unable to apply apparmor profile" in result.stderr
    assert "write /proc/self/attr/exec: invalid argument" in result.stderr


@integration
@needs_runc
@pytest.mark.parametrize(
    ("section", "key", "value", "runc_says"),
    [
        (
            "process",
            "selinuxLabel",
            "system_u:system_r:container_t:s0",
            "selinux label is specified in config, but selinux is disabled or not supported",
        ),
        (
            "linux",
            "mountLabel",
            "system_u:object_r:container_file_t:s0",
            'container_file_t:s0\\": invalid argument',
        ),
    ],
)
async def test_selinux_labels_refused_where_runc_errs(
    make_config: MakeConfig, bundle: Path, section: str, key: str, value: str, runc_says: str
) -> None:
    if Path("/sys/fs/selinux/enforce").exists():
        pytest.skip("this host has SELinux: runc would apply the label")
    config = make_config("true")
    config[section][key] = value
    with pytest.raises(ConfigError, match=f"{section}.{key}: SELinux"):
        await run(config)
    result = runc(bundle, config)
    assert result.returncode != 0
    assert runc_says in result.stderr


@integration
@needs_runc
async def test_exec_cpu_affinity_leaves_the_init_alone_as_runc(
    make_config: MakeConfig, bundle: Path
) -> None:
    """The runtime-spec: execCPUAffinity is "not applicable to the container's init
    process"; runc 1.1.5 and asyncinit both leave its affinity as it was."""
    config = without_cgroup_mount(make_config("grep", "Cpus_allowed_list", "/proc/self/status"))
    config["process"]["execCPUAffinity"] = {"initial": "0", "final": "0"}
    code, out, err = await run(config)
    assert code == 0, err
    result = runc(bundle, config)
    assert result.returncode == 0, result.stderr
    assert out == result.stdout
    own = ",".join(str(cpu) for cpu in sorted(os.sched_getaffinity(0)))
    assert parse_cpu_list(out.split()[1]) == parse_cpu_list(own)


@integration
@needs_runc
async def test_scheduler_and_ioprio_ignored_by_runc_1_1_5(
    make_config: MakeConfig, bundle: Path
) -> None:
    """runc 1.1.5 predates these fields (runc 1.2 applies them at the same point as we
    do): the differential is that runc leaves the defaults, where we apply them."""
    config = without_cgroup_mount(make_config("sh", "-c", STAT + "; ionice -p $$; uname -m"))
    config["process"]["scheduler"] = {"policy": "SCHED_BATCH", "nice": 3}
    config["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_BE", "priority": 2}
    config["linux"]["personality"] = {"domain": "LINUX32"}
    code, out, err = await run(config)
    assert code == 0, err
    result = runc(bundle, config)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"nice=0\nrt=0 policy=0\nnone: prio 0\n{os.uname().machine}\n"
    assert out == "nice=3\nrt=0 policy=3\nbest-effort: prio 2\ni686\n"
