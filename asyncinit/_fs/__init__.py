"""The safe-filesystem library: lookups that stay inside a root, fd-to-fd mounts, procfs.

Shared by the compiler (host checks), the rootfs and devices steps and the
terminal: plain synchronous functions that import nothing from the packages
using them.
"""
