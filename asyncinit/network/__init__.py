"""Container networking (docs/network.md).

``_loopback``: ``lo`` up in the init, stdlib only.  ``_plan``: the parent's veth
plan from ``asyncinit.network``.  ``_veth``: pyroute2 (netlink) setup and
teardown, imported by the parent only, pyroute2 itself only on first use.
"""
