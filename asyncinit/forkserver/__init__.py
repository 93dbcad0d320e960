"""The fork server: the third process, between the caller and every container's PID 1.

Started by the caller (``parent/_launcher.py``), it boots once (``_boot``: the
init's modules imported and warmed, ``_warmup``), then forks each init on a
``launch`` request (``_server``).  Its wire to the caller is ``_wire``.
"""
