"""Stand-in images for the names the Kubernetes documentation's examples use.

The machines podctl runs on often have no route to Docker Hub, and the examples only
need a shell and a few tools: Debian's busybox-static provides all of them. The
stand-ins are the lab's busybox image tagged under the examples' names, plus `nginx`:
the same rootfs with busybox `httpd` serving /usr/share/nginx/html on port 80 (the
nginx image's document root, so manifests that mount a volume there work unchanged).

A locally imported name is never pulled from a registry, so applying an example
whose image is one of these stays on this machine.
"""

from __future__ import annotations

import io
import tarfile
import tempfile
from pathlib import Path

from .images import ImageStore, build_busybox_image
from .model import ImageConfig

BASE = "busybox:latest"
# Names whose images start a shell by default in the real thing: the busybox image
# under another name behaves the same for what the examples do with them.
SHELL_IMAGES = ("busybox:1.28", "busybox:1.36", "registry.k8s.io/busybox:latest",
                "registry.k8s.io/busybox:1.27.2", "alpine:latest", "debian:latest",
                "ubuntu:latest")
NGINX = ("nginx:latest", "nginx:1.14.2", "nginx:1.25")
NGINX_ROOT = "usr/share/nginx/html"
NGINX_CMD = ("httpd", "-f", "-v", "-p", "80", "-h", "/" + NGINX_ROOT)
NGINX_INDEX = (b"<!DOCTYPE html>\n<html><head><title>Welcome to nginx!</title></head>\n"
               b"<body><h1>Welcome to nginx!</h1>\n<p>podctl stand-in: busybox httpd.</p></body></html>\n")


def _dir(name: str) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, 0
    return ti


def _nginx_rootfs(base_tar: Path, out: Path) -> None:
    """base_tar plus the nginx document root with its welcome page, as one rootfs tar
    (mtimes 0: the same busybox always gives the same digest)."""
    with tarfile.open(base_tar) as src, tarfile.open(out, "w") as dst:
        have = set()
        for ti in src:
            dst.addfile(ti, src.extractfile(ti) if ti.isreg() else None)
            have.add(ti.name.rstrip("/").removeprefix("./"))
        parts = NGINX_ROOT.split("/")
        for i in range(1, len(parts) + 1):
            name = "/".join(parts[:i])
            if name not in have:
                dst.addfile(_dir(name))
        index = tarfile.TarInfo(f"{NGINX_ROOT}/index.html")
        index.size, index.mode, index.mtime = len(NGINX_INDEX), 0o644, 0
        dst.addfile(index, io.BytesIO(NGINX_INDEX))


def build_standins(store: ImageStore, busybox: str | Path = "/bin/busybox") -> list[ImageConfig]:
    """Import the stand-ins (and busybox:latest if missing); returns every image made."""
    base = store.get(BASE) or build_busybox_image(store, BASE, busybox)
    made = [base] + [store.tag(BASE, ref) for ref in SHELL_IMAGES]
    with tempfile.TemporaryDirectory(prefix="podctl-standin-") as tmp:
        rootfs = Path(tmp) / "nginx-rootfs.tar"
        _nginx_rootfs(store.blob_path(base.digest), rootfs)
        nginx = store.import_source(NGINX[0], rootfs, cmd=list(NGINX_CMD))
    made.append(nginx)
    made += [store.tag(NGINX[0], ref) for ref in NGINX[1:]]
    return made
