"""runc's command line for asyncinit: a drop-in OCI runtime for podman, containerd, docker.

Pure groundwork (issue 15), importing nothing from parent/ or init/:

* ``_args``/``_commands``: runc 1.1's commands and flags, parsed as urfave/cli does;
* ``_state``/``_store``: the state directory (``/run/asyncinit`` by default),
  ``state.json`` written atomically, flock per container and for the root,
  the runtime-spec State, the live status of a container;
* ``_signals``: ``kill``'s signal names and numbers; ``_format``: ``list``,
  ``ps`` and ``state`` output; ``_log``: ``--log``/``--log-format json``;
  ``_features``: the Features document;
* ``_main``: ``main(argv, handlers)``; cli.py hands it a runc-style command line
  (``is_runc_command``) with the handlers of the commands that act on containers.

Every module here is lean (no argparse, json, re, typing at run time): ``state``,
``kill``, ``delete`` and ``start`` are separate processes whose cost is compared
with runc's.
"""

from __future__ import annotations

from ._main import Context, is_runc_command, main

__all__ = ["Context", "is_runc_command", "main"]
