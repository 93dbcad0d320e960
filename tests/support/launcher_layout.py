"""The ``asyncinit`` command as pip installs it, built from this checkout (tests and bench).

A venv-shaped prefix: ``pyvenv.cfg``, ``bin/python3`` (the real interpreter, not a
pyenv shim), ``bin/asyncinit`` (scripts/asyncinit, as hatchling's shared-scripts
puts it there unchanged), ``lib/pythonX.Y/site-packages/asyncinit`` (this checkout's
package).  ``include-system-site-packages`` lets ``site`` find the dependencies.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from . import CHECKOUT


def real_python() -> str:
    return str(Path(sys.executable).resolve())


def installed_layout(directory: Path) -> Path:
    """Lay the prefix out in ``directory``; returns its ``bin/asyncinit``."""
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    home = Path(real_python()).parent
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pyvenv.cfg").write_text(f"home = {home}\ninclude-system-site-packages = true\n")
    (directory / "bin").mkdir()
    (directory / "bin" / "python3").symlink_to(real_python())
    packages = directory / "lib" / version / "site-packages"
    packages.mkdir(parents=True)
    (packages / "asyncinit").symlink_to(CHECKOUT / "asyncinit")
    launcher = directory / "bin" / "asyncinit"
    shutil.copy(CHECKOUT / "scripts" / "asyncinit", launcher)
    return launcher
