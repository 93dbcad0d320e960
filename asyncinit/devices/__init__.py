"""Device nodes and /dev symlinks inside the rootfs."""
