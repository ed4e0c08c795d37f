"""A real registry for the e2e tests: Debian's docker-registry on 127.0.0.1:<free port>,
its storage in a temp dir, filled with skopeo from OCI layouts built here.

Nothing here talks to any registry but the one it started (loopback only); the
registry process is stopped by its PID.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import socket
import subprocess
import tarfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REGISTRY_BIN = "/usr/bin/docker-registry"
SKOPEO = "/usr/bin/skopeo"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Registry:
    port: int
    root: Path
    proc: subprocess.Popen
    htpasswd: Path | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def push(self, layout: Path, tag: str, name: str, creds: str | None = None, all_platforms: bool = False) -> None:
        argv = [SKOPEO, "copy", "-q", "--dest-tls-verify=false", "--retry-times", "0"]
        if all_platforms:
            argv.append("--all")
        if creds:
            argv += ["--dest-authfile", str(_authfile(self.root, self.host, creds))]
        argv += [f"oci:{layout}:{tag}", f"docker://{self.host}/{name}"]
        subprocess.run(argv, check=True, capture_output=True, timeout=60)

    def blob_file(self, digest: str) -> Path:
        hexd = digest.removeprefix("sha256:")
        return self.root / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"


def _authfile(root: Path, host: str, creds: str) -> Path:
    import base64

    path = root.parent / "skopeo-auth.json"
    path.write_text(json.dumps({"auths": {host: {"auth": base64.b64encode(creds.encode()).decode()}}}))
    path.chmod(0o600)
    return path


def start_registry(tmp: Path, htpasswd: Path | None = None, auth_yaml: str = "") -> Registry:
    """`auth_yaml`: a ready `auth:` section (token auth: TokenServer.auth_yaml())."""
    port = free_port()
    root = tmp / f"storage-{port}"
    root.mkdir(parents=True)
    auth = (f"auth:\n  htpasswd:\n    realm: podctl-test\n    path: {htpasswd}\n") if htpasswd else auth_yaml
    conf = tmp / f"registry-{port}.yml"
    conf.write_text(f"""version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
  secret: podctl-e2e-secret
{auth}""")
    log = open(tmp / f"registry-{port}.log", "wb")
    proc = subprocess.Popen([REGISTRY_BIN, "serve", str(conf)], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    reg = Registry(port, root, proc, htpasswd)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                f"http://127.0.0.1:{port}/v2/", timeout=1)
            return reg
        except urllib.error.HTTPError:
            return reg  # 401 with auth: it is up
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError((tmp / f"registry-{port}.log").read_text())
            time.sleep(0.1)
    reg.stop()
    raise RuntimeError("docker-registry did not start in 15 s")


# ---------------------------------------------------------------- OCI layouts


def _blob(layout: Path, data: bytes) -> dict:
    hexd = hashlib.sha256(data).hexdigest()
    d = layout / "blobs" / "sha256"
    d.mkdir(parents=True, exist_ok=True)
    (d / hexd).write_bytes(data)
    return {"digest": "sha256:" + hexd, "size": len(data)}


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for name, data in sorted(files.items()):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), 0o644, 0
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def image_manifest(layout: Path, base_tar: Path, extra: dict[str, bytes], arch: str = "amd64",
                   cmd: list[str] | None = None) -> dict:
    """Blobs for an image (base layer = a plain rootfs tar, gzipped; a second layer with
    `extra` files); returns the manifest's descriptor."""
    layers, diff_ids = [], []
    for plain in (base_tar.read_bytes(), _tar(extra)):
        gz = gzip.compress(plain, mtime=0)
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **_blob(layout, gz)})
        diff_ids.append("sha256:" + hashlib.sha256(plain).hexdigest())
    config = {"architecture": arch, "os": "linux",
              "config": {"Cmd": cmd or ["sh"], "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "FROM_REGISTRY=yes"]},
              "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    cdesc = {"mediaType": "application/vnd.oci.image.config.v1+json", **_blob(layout, json.dumps(config).encode())}
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": cdesc, "layers": layers}
    return {"mediaType": "application/vnd.oci.image.manifest.v1+json",
            **_blob(layout, json.dumps(manifest).encode()),
            "platform": {"os": "linux", "architecture": arch}}


def write_layout(layout: Path, tag: str, descs: list[dict], as_index: bool) -> None:
    """index.json naming `tag`: one manifest, or an image index of several platforms."""
    layout.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    if as_index:
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": descs}
        top = {"mediaType": "application/vnd.oci.image.index.v1+json", **_blob(layout, json.dumps(index).encode())}
    else:
        top = {k: v for k, v in descs[0].items() if k != "platform"}
    top["annotations"] = {"org.opencontainers.image.ref.name": tag}
    index_path = layout / "index.json"
    existing = json.loads(index_path.read_text())["manifests"] if index_path.exists() else []
    existing = [m for m in existing if (m.get("annotations") or {}).get("org.opencontainers.image.ref.name") != tag]
    index_path.write_text(json.dumps({"schemaVersion": 2, "manifests": existing + [top]}))


def htpasswd_file(tmp: Path, user: str, password: str) -> Path:
    """A bcrypt htpasswd file (apache2-utils' htpasswd -B; the password goes on stdin)."""
    path = tmp / "htpasswd"
    subprocess.run(["htpasswd", "-B", "-i", "-c", str(path), user], input=password.encode(),
                   check=True, capture_output=True, timeout=30)
    return path


def manifest_digest(reg: Registry, name: str, tag: str, auth: str | None = None) -> str:
    req = urllib.request.Request(f"http://{reg.host}/v2/{name}/manifests/{tag}", method="HEAD", headers={
        "Accept": "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json"})
    if auth:
        import base64

        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=5) as r:
        return r.headers["Docker-Content-Digest"]


os.environ.setdefault("PODCTL_REGISTRY_LOOPBACK_ONLY", "1")
