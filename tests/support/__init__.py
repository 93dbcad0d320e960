"""What tests share: helpers here, fixtures in tests/conftest.py.

Test modules import helpers only from this package (never from another test
module or from a conftest), with absolute imports (``from tests.support.containers
import run``), so that they keep working wherever a test file lives.

- ``containers``: ``needs_root``, running a container to completion (``run``, ``read_all``)
- ``configs``: config dicts (runc's default config, edits, mount entries, id mappings)
- ``host``: the host's mount table and cgroup layout, directory modes
- ``hooks``: hook scripts and entries, polling for files and pids, a config held at a stage
- ``hostile``: snapshots, sentinels, strangers' uids, bundles other uids can reach
- ``runc``: the system's runc, for differential tests
- ``cgroups``: cgroup leak checks, test-named managers, forked probes
- ``seccomp``, ``seccomp_probe``: moby's profile, a probing child, a BPF interpreter
- ``fake_mount``: a recording mount(2)/statvfs for unit tests of the rootfs flag arithmetic
- ``launcher_layout``: the installed ``asyncinit`` command (scripts/asyncinit in a venv layout)
"""

from __future__ import annotations

import os
from pathlib import Path

#: Guard timeouts stop hangs and measure nothing: the guest of tests/vm/run runs
#: Python ~25 times slower (software emulation), so there they stretch this much.
TIMEOUT_SCALE = 5 if os.environ.get("RUN_IN_VM") == "1" else 1
#: The checkout (the directory holding asyncinit/ and tests/): wherever a test file lives.
CHECKOUT = Path(__file__).resolve().parents[2]
#: Data files the tests read (moby's seccomp profile, engine traces...).
DATA = CHECKOUT / "tests" / "data"
