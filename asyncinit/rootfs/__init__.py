"""Blocking, synchronous rootfs steps (runc's rootfs_linux.go), one concern per module."""
