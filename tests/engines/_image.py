"""An OCI image archive (image layout in a tar) around a rootfs tarball, for `ctr images import`.

podman and docker import a bare rootfs tarball; containerd takes only image
archives, so the one layer, its config, manifest and index are written here.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import tarfile
from pathlib import Path
from typing import Any

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le"}


def _descriptor(media_type: str, data: bytes) -> dict[str, Any]:
    return {
        "mediaType": media_type,
        "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
        "size": len(data),
    }


def oci_archive(rootfs_tar: Path, out: Path, name: str, cmd: list[str]) -> None:
    """Write ``out``: an OCI image named ``name`` (``repo:tag``) of one uncompressed layer."""
    layer = rootfs_tar.read_bytes()
    layer_desc = _descriptor("application/vnd.oci.image.layer.v1.tar", layer)
    arch = _ARCH.get(platform.machine(), platform.machine())
    config = json.dumps(
        {
            "architecture": arch,
            "os": "linux",
            "config": {"Cmd": cmd, "Env": ["PATH=/bin:/sbin:/usr/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [layer_desc["digest"]]},
        }
    ).encode()
    config_desc = _descriptor("application/vnd.oci.image.config.v1+json", config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config_desc,
            "layers": [layer_desc],
        }
    ).encode()
    manifest_desc = _descriptor("application/vnd.oci.image.manifest.v1+json", manifest)
    manifest_desc["annotations"] = {
        "io.containerd.image.name": name,
        "org.opencontainers.image.ref.name": name.rpartition(":")[2],
    }
    manifest_desc["platform"] = {"architecture": arch, "os": "linux"}
    index = json.dumps({"schemaVersion": 2, "manifests": [manifest_desc]}).encode()
    files = {
        "oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
        "index.json": index,
    }
    for desc, data in ((layer_desc, layer), (config_desc, config), (manifest_desc, manifest)):
        files["blobs/sha256/" + desc["digest"].split(":")[1]] = data
    with tarfile.open(out, "w") as archive:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
