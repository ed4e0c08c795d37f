"""Image store: refs, sources (rootfs dir/tar, docker save, OCI), sanitisation, busybox.

Fixtures are built by hand with tarfile/json/hashlib; nothing needs root or a network.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest

from orchestrator.errors import ImageError
from orchestrator.images import (
    DEFAULT_PATH,
    ImageStore,
    build_busybox_image,
    merge_env,
    parse_ref,
    resolve_argv,
)
from orchestrator.model import EnvVar, ImageConfig

MTIME = 1_700_000_000

# ---------------------------------------------------------------- fixture builders


def tar_bytes(members, *, gz: bool = False) -> bytes:
    """members: (kind, name, arg) with kind file/dir/sym/link/chr/fifo; file arg = bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for kind, name, *rest in members:
            arg = rest[0] if rest else None
            ti = tarfile.TarInfo(name)
            ti.mtime, ti.uname, ti.gname = MTIME, "someone", "somegroup"
            data = None
            if kind == "file":
                data = arg or b""
                ti.size, ti.mode = len(data), (rest[1] if len(rest) > 1 else 0o644)
            elif kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            elif kind == "sym":
                ti.type, ti.linkname = tarfile.SYMTYPE, arg
            elif kind == "link":
                ti.type, ti.linkname = tarfile.LNKTYPE, arg
            elif kind == "chr":
                ti.type, ti.devmajor, ti.devminor = tarfile.CHRTYPE, 1, 3
            elif kind == "blk":
                ti.type, ti.devmajor, ti.devminor = tarfile.BLKTYPE, 8, 0
            elif kind == "fifo":
                ti.type = tarfile.FIFOTYPE
            tar.addfile(ti, io.BytesIO(data) if data is not None else None)
    raw = buf.getvalue()
    return gzip.compress(raw, mtime=0) if gz else raw


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def blob_members(store: ImageStore, image: ImageConfig) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(store.blob_path(image.digest)) as tar:
        return {ti.name.rstrip("/"): ti for ti in tar.getmembers()}


def blob_file(store: ImageStore, image: ImageConfig, name: str) -> bytes:
    with tarfile.open(store.blob_path(image.digest)) as tar:
        return tar.extractfile(name).read()


def gnu_untar(store: ImageStore, image: ImageConfig, dest: Path) -> Path:
    """Unpack like a host does; fail on any tar complaint."""
    dest.mkdir(parents=True)
    proc = subprocess.run(["tar", "-x", "--numeric-owner", "-f", str(store.blob_path(image.digest)), "-C", str(dest)],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return dest


CONFIG = {
    "architecture": "amd64",
    "os": "linux",
    "created": "2024-01-02T03:04:05Z",
    "config": {"Entrypoint": ["/bin/app"], "Cmd": ["--serve"], "Env": ["PATH=/bin", "FOO=bar"], "WorkingDir": "/srv"},
}

LAYER1 = [
    ("dir", "etc/"), ("file", "etc/keep", b"keep"), ("file", "etc/gone", b"gone"),
    ("dir", "opq/"), ("file", "opq/old", b"old"), ("dir", "opq/sub/"), ("file", "opq/sub/deep", b"deep"),
    ("dir", "bin/"), ("file", "bin/app", b"#!/bin/sh\n", 0o755), ("dir", "gonedir/"), ("file", "gonedir/x", b"x"),
]
LAYER2 = [
    ("file", "etc/.wh.gone"), ("file", ".wh.gonedir"), ("file", "opq/.wh..wh..opq"),
    ("file", "opq/new", b"new"), ("file", "etc/added", b"added"),
]


def docker_save(path: Path, layers, config=CONFIG, tags=("app:1",), corrupt_layer: int | None = None) -> Path:
    """A `docker save` archive in the classic layout (<id>/layer.tar, <hex>.json)."""
    blobs = [tar_bytes(m) for m in layers]
    cfg = json.loads(json.dumps(config))
    cfg["rootfs"] = {"type": "layers", "diff_ids": [sha(b) for b in blobs]}
    cfg_bytes = json.dumps(cfg).encode()
    if corrupt_layer is not None:
        blobs[corrupt_layer] = tar_bytes(layers[corrupt_layer] + [("file", "extra", b"!")])
    files = {f"{sha(cfg_bytes)[7:]}.json": cfg_bytes}
    names = []
    for i, b in enumerate(blobs):
        files[f"layer{i}/layer.tar"] = b
        names.append(f"layer{i}/layer.tar")
    entry = {"Config": f"{sha(cfg_bytes)[7:]}.json", "RepoTags": list(tags), "Layers": names}
    files["manifest.json"] = json.dumps([entry]).encode()
    return write(path, tar_bytes([("file", n, d) for n, d in files.items()]))


def oci_layout(root: Path, layers, config=CONFIG, platforms=(("linux", "amd64"),), nested=False) -> Path:
    """An OCI image layout directory with gzip layers; one manifest per platform."""
    root.mkdir(parents=True)

    def blob(data: bytes, media: str) -> dict:
        write(root / "blobs" / "sha256" / sha(data)[7:], data)
        return {"mediaType": media, "digest": sha(data), "size": len(data)}

    write(root / "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
    descs = []
    for os_, arch in platforms:
        plain = [tar_bytes(m + [("file", f"arch-{arch}", arch.encode())]) for m in layers]
        cfg = dict(config, architecture=arch, os=os_, rootfs={"type": "layers", "diff_ids": [sha(p) for p in plain]})
        cdesc = blob(json.dumps(cfg).encode(), "application/vnd.oci.image.config.v1+json")
        ldescs = [blob(gzip.compress(p, mtime=0), "application/vnd.oci.image.layer.v1.tar+gzip") for p in plain]
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": cdesc, "layers": ldescs}
        d = blob(json.dumps(manifest).encode(), "application/vnd.oci.image.manifest.v1+json")
        d["platform"] = {"os": os_, "architecture": arch}
        descs.append(d)
    if nested:
        inner = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": descs}
        descs = [blob(json.dumps(inner).encode(), "application/vnd.oci.image.index.v1+json")]
        descs[0]["annotations"] = {"org.opencontainers.image.ref.name": "latest"}
    write(root / "index.json", json.dumps({"schemaVersion": 2, "manifests": descs}).encode())
    return root


def tar_dir(src: Path, dest: Path, *, gz: bool = False) -> Path:
    with tarfile.open(dest, "w:gz" if gz else "w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(src, arcname=".")
    return dest


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "images")


def store_files(store: ImageStore) -> set[str]:
    return {str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_file() and p.name != "lock"}


# ---------------------------------------------------------------- references

@pytest.mark.parametrize("ref, expected", [
    ("busybox", "busybox:latest"),
    ("busybox:1.36", "busybox:1.36"),
    ("registry.k8s.io/busybox:1.27.2", "registry.k8s.io/busybox:1.27.2"),
    ("localhost:5000/x", "localhost:5000/x:latest"),
    ("localhost:5000/x:v1", "localhost:5000/x:v1"),
    ("localhost/x", "localhost/x:latest"),
    ("[::1]:5000/a/b", "[::1]:5000/a/b:latest"),
    ("docker.io/library/nginx", "nginx:latest"),
    ("library/nginx:1", "nginx:1"),
    ("docker.io/bitnami/redis", "bitnami/redis:latest"),
    ("my-org/my_app__x.y:V1.2-rc_3", "my-org/my_app__x.y:V1.2-rc_3"),
    ("a@sha256:" + "0" * 64, "a@sha256:" + "0" * 64),
    ("a:tag@sha256:" + "f" * 64, "a@sha256:" + "f" * 64),
])
def test_parse_ref_normalises(ref, expected):
    assert parse_ref(ref) == expected
    assert parse_ref(expected) == expected  # idempotent


@pytest.mark.parametrize("ref, why", [
    ("", "empty"),
    ("Busybox", "uppercase"),
    ("org/MyApp", "uppercase"),
    ("busy box", "whitespace"),
    ("busybox\n", "control"),
    ("busybox:", "bad tag"),
    ("busybox:-x", "bad tag"),
    ("busybox:" + "a" * 129, "bad tag"),
    ("a//b", "bad name component"),
    ("-a", "bad name component"),
    ("a_-b", "bad name component"),
    ("a@sha256:abc", "digest"),
    ("a@md5:" + "0" * 32, "digest"),
    ("bad_host:5000/x", "registry host"),
])
def test_parse_ref_rejects(ref, why):
    with pytest.raises(ImageError) as exc:
        parse_ref(ref)
    assert repr(ref) in str(exc.value) and why in str(exc.value) and "allowed:" in str(exc.value)


# ---------------------------------------------------------------- rootfs sources


def make_rootfs(root: Path) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "bin" / "tool").write_bytes(b"\x7fELF tool")
    (root / "bin" / "tool").chmod(0o4755)
    os.link(root / "bin" / "tool", root / "bin" / "tool-alias")
    (root / "bin" / "sh").symlink_to("/bin/tool")
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (root / "etc" / "abs").symlink_to("/etc/passwd")
    os.mkfifo(root / "fifo")
    (root / ("d" * 120)).mkdir()
    (root / ("d" * 120) / ("f" * 120)).write_bytes(b"long names need LongLink")
    os.mkdir(os.fsencode(root) + b"/not-utf8-\xff")  # names are bytes; they survive as such
    for p in sorted(root.rglob("*"), reverse=True):
        os.utime(p, (MTIME, MTIME), follow_symlinks=False)
    return root


def test_rootfs_dir_and_tarball_give_the_same_digest(store, tmp_path):
    root = make_rootfs(tmp_path / "rootfs")
    from_dir = store.import_source("app", root)
    plain = store.import_source("app-tar:1", tar_dir(root, tmp_path / "r.tar"))
    gz = store.import_source("app-tgz:1", tar_dir(root, tmp_path / "r.data", gz=True))  # magic, not name
    assert from_dir.digest == plain.digest == gz.digest
    assert from_dir.ref == "app:latest" and from_dir.cmd == () and from_dir.entrypoint == ()
    assert from_dir.env == (EnvVar("PATH", DEFAULT_PATH),)
    assert from_dir.size == store.blob_path(from_dir.digest).stat().st_size
    assert hashlib.sha256(store.blob_path(from_dir.digest).read_bytes()).hexdigest() == from_dir.digest

    members = blob_members(store, from_dir)
    assert members["bin/tool"].mode == 0o4755 and members["bin/tool"].isreg()  # setuid kept
    assert members["bin/tool-alias"].islnk() and members["bin/tool-alias"].linkname == "bin/tool"
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "/bin/tool"
    assert members["fifo"].isfifo()
    assert all(ti.uname == "" and ti.gname == "" for ti in members.values())
    names = [n for n in members]
    assert names == sorted(names, key=lambda n: n.split("/"))  # parents first, deterministic


def test_reimport_is_idempotent(store, tmp_path):
    root = make_rootfs(tmp_path / "rootfs")
    first = store.import_source("app", root)
    before = {p: (store.root / p).read_bytes() for p in store_files(store)}
    again = store.import_source("app:latest", tar_dir(root, tmp_path / "r.tar"))
    assert again == first
    assert {p: (store.root / p).read_bytes() for p in store_files(store)} == before
    assert not any((store.root / "tmp").iterdir())  # no work files left behind


def test_unpacks_cleanly_with_gnu_tar(store, tmp_path):
    image = store.import_source("app", make_rootfs(tmp_path / "rootfs"))
    out = gnu_untar(store, image, tmp_path / "out")
    assert (out / "bin" / "tool").stat().st_mode & 0o7777 == 0o4755
    assert (out / "bin" / "tool").stat().st_ino == (out / "bin" / "tool-alias").stat().st_ino
    assert os.readlink(out / "bin" / "sh") == "/bin/tool"
    assert stat.S_ISFIFO((out / "fifo").lstat().st_mode)
    assert os.path.isdir(os.fsencode(out) + b"/not-utf8-\xff")
    assert (out / ("d" * 120) / ("f" * 120)).read_bytes() == b"long names need LongLink"


# ---------------------------------------------------------------- sanitisation


def import_tar(store: ImageStore, tmp_path: Path, members, ref="evil:1") -> ImageConfig:
    return store.import_source(ref, write(tmp_path / "evil.tar", tar_bytes(members)))


@pytest.mark.parametrize("members, named", [
    ([("file", "../evil", b"x")], "../evil"),
    ([("dir", "a/"), ("file", "a/../../evil", b"x")], "a/../../evil"),
    ([("file", "x", b"x"), ("link", "h", "../../x")], "../../x"),
])
def test_traversal_is_rejected_naming_the_member(store, tmp_path, members, named):
    with pytest.raises(ImageError) as exc:
        import_tar(store, tmp_path, members)
    assert repr(named) in str(exc.value) and ".." in str(exc.value)
    assert store.list() == [] and not list((store.root / "blobs" / "sha256").iterdir())


def test_hostile_members_are_confined_or_dropped(store, tmp_path, caplog):
    image = import_tar(store, tmp_path, [
        ("file", "/etc/passwd", b"root:x:0:0::/:/bin/sh\n"),  # absolute: lands at etc/passwd
        ("file", "./etc/./group", b"root:x:0:\n"),
        ("sym", "a", "/etc"),  # absolute symlink target: fine, resolves in the container
        ("file", "a/passwd", b"pwned"),  # would go through the symlink: dropped
        ("sym", "rel", "../../.."),
        ("file", "rel/x", b"pwned"),
        ("link", "h", "etc/passwd"),  # hard link to an earlier member: kept
        ("link", "h2", "later"),  # target not (yet) in the tree: dropped
        ("file", "later", b"l"),
        ("link", "h3", "a/passwd"),  # target is in the archive (data comes from it)
        ("chr", "dev/null"), ("blk", "dev/sda"),  # devices: dropped
        ("file", "", b"?"),  # empty name: dropped
        ("dir", "./"),  # the root itself: ignored
        ("file", "usr/local/bin/x", b"x"),  # parents missing: synthesised
    ])
    members = blob_members(store, image)
    assert set(members) == {"etc", "etc/passwd", "etc/group", "a", "rel", "h", "later", "h3",
                            "usr", "usr/local", "usr/local/bin", "usr/local/bin/x"}
    assert members["a"].linkname == "/etc" and members["rel"].linkname == "../../.."
    assert members["h"].islnk() and members["h"].linkname == "etc/passwd"
    assert members["usr/local"].isdir() and members["usr/local"].mode == 0o755  # synthesised
    assert members["etc"].isdir() and members["etc"].uid == 0
    dropped = store.inspect("evil:1")["dropped"]
    assert any(d.startswith("a/passwd:") and "symlink" in d for d in dropped)
    assert any(d.startswith("dev/null:") and "device" in d for d in dropped)
    assert any(d.startswith("h2:") and "earlier member" in d for d in dropped)
    assert "dropped" in caplog.text

    out = gnu_untar(store, image, tmp_path / "sandbox" / "root")
    assert sorted(p.name for p in (tmp_path / "sandbox").iterdir()) == ["root"]  # nothing escaped
    assert (out / "etc" / "passwd").read_bytes().startswith(b"root:x")
    assert (out / "h3").read_bytes() == b"pwned"  # the archive's own bytes, a plain file
    assert not (out / "h3").is_symlink()


def test_a_symlink_replacing_a_dir_in_a_later_layer_hides_its_content(store, tmp_path):
    archive = docker_save(tmp_path / "s.tar", [
        [("dir", "etc/"), ("file", "etc/conf", b"1")],
        [("sym", "etc", "/host-etc"), ("file", "etc/conf2", b"2")],
    ])
    members = blob_members(store, store.import_source("app:1", archive))
    assert members["etc"].issym() and "etc/conf" not in members and "etc/conf2" not in members


# ---------------------------------------------------------------- docker save


def test_docker_save_two_layers_whiteouts_and_opaque_dir(store, tmp_path):
    image = store.import_source("app:1", docker_save(tmp_path / "save.tar", [LAYER1, LAYER2]))
    members = blob_members(store, image)
    assert set(members) == {"etc", "etc/keep", "etc/added", "opq", "opq/new", "bin", "bin/app"}
    assert blob_file(store, image, "opq/new") == b"new"
    assert not any(".wh." in n for n in members)
    assert image.entrypoint == ("/bin/app",) and image.cmd == ("--serve",)
    assert image.env == (EnvVar("PATH", "/bin"), EnvVar("FOO", "bar"))
    assert image.working_dir == "/srv"
    gnu_untar(store, image, tmp_path / "out")


def test_docker_save_whiteout_in_the_same_layer_does_not_hide_that_layer(store, tmp_path):
    archive = docker_save(tmp_path / "s.tar", [[("file", "x", b"lower")], [("file", "x", b"upper"), ("file", ".wh.x")]])
    image = store.import_source("app:1", archive)
    assert blob_file(store, image, "x") == b"upper"


def test_docker_save_duplicate_layer_stored_as_symlink(store, tmp_path):
    """Old `docker save` writes a repeated layer once and links the other copy to it."""
    layer = tar_bytes([("file", "same", b"1")])
    cfg = json.dumps(dict(CONFIG, rootfs={"type": "layers", "diff_ids": [sha(layer), sha(layer)]})).encode()
    manifest = [{"Config": f"{sha(cfg)[7:]}.json", "RepoTags": ["app:1"], "Layers": ["l0/layer.tar", "l1/layer.tar"]}]
    archive = write(tmp_path / "s.tar", tar_bytes([
        ("file", f"{sha(cfg)[7:]}.json", cfg), ("file", "l0/layer.tar", layer),
        ("sym", "l1/layer.tar", "../l0/layer.tar"), ("file", "manifest.json", json.dumps(manifest).encode()),
    ]))
    assert set(blob_members(store, store.import_source("app:1", archive))) == {"same"}


def test_docker_save_diff_id_mismatch_is_rejected(store, tmp_path):
    archive = docker_save(tmp_path / "s.tar", [LAYER1, LAYER2], corrupt_layer=1)
    with pytest.raises(ImageError, match=r"layer 2/2 .*diff_id.* mismatch"):
        store.import_source("app:1", archive)


def test_docker_save_with_several_images_picks_by_tag(store, tmp_path):
    archive = docker_save(tmp_path / "s.tar", [LAYER1], tags=("docker.io/library/app:1", "app:2"))
    assert store.import_source("app:1", archive).entrypoint == ("/bin/app",)


# ---------------------------------------------------------------- OCI


def test_oci_layout_dir_with_gzip_layers(store, tmp_path):
    image = store.import_source("app:1", oci_layout(tmp_path / "oci", [LAYER1, LAYER2]))
    members = blob_members(store, image)
    assert {"etc/keep", "etc/added", "opq/new", "arch-amd64"} <= set(members)
    assert "etc/gone" not in members and "opq/old" not in members and "gonedir" not in members
    assert image.entrypoint == ("/bin/app",) and image.working_dir == "/srv"
    assert store.inspect("app:1")["source"]["kind"] == "oci-layout"


@pytest.mark.parametrize("gz", [False, True])
def test_oci_archive_plain_or_gzip_gives_the_same_image(store, tmp_path, gz):
    layout = oci_layout(tmp_path / "oci", [LAYER1, LAYER2])
    from_dir = store.import_source("app:1", layout)
    from_tar = store.import_source("app:2", tar_dir(layout, tmp_path / "oci.bin", gz=gz))
    assert from_tar.digest == from_dir.digest
    assert store.inspect("app:2")["source"]["kind"] == "oci-archive"


def test_oci_multi_platform_nested_index_picks_amd64_or_the_asked_platform(store, tmp_path):
    layout = oci_layout(tmp_path / "oci", [LAYER1], platforms=(("linux", "arm64"), ("linux", "amd64")), nested=True)
    default = blob_members(store, store.import_source("app:1", layout))
    assert "arch-amd64" in default and "arch-arm64" not in default
    arm = blob_members(store, store.import_source("app:arm", layout, platform="linux/arm64"))
    assert "arch-arm64" in arm
    with pytest.raises(ImageError, match="no manifest for platform linux/s390x.*linux/amd64"):
        store.import_source("app:s390x", layout, platform="linux/s390x")


def test_oci_blob_digest_mismatch_is_rejected(store, tmp_path):
    layout = oci_layout(tmp_path / "oci", [LAYER1, LAYER2])
    manifest_desc = json.loads((layout / "index.json").read_text())["manifests"][0]
    manifest = json.loads((layout / "blobs" / "sha256" / manifest_desc["digest"][7:]).read_text())
    victim = layout / "blobs" / "sha256" / manifest["layers"][0]["digest"][7:]
    victim.write_bytes(gzip.compress(tar_bytes([("file", "evil", b"swapped")]), mtime=0))
    with pytest.raises(ImageError, match=r"layer 1/2 .*sha256 digest mismatch"):
        store.import_source("app:1", layout)
    archive = tar_dir(layout, tmp_path / "oci.tar")
    with pytest.raises(ImageError, match="digest mismatch"):
        store.import_source("app:1", archive)
    assert store.get("app:1") is None


def test_zstd_layer_without_zstandard_is_a_clear_error(store, tmp_path):
    try:
        import zstandard  # noqa: F401
        pytest.skip("zstandard installed: zstd layers are supported")
    except ImportError:
        pass
    layout = oci_layout(tmp_path / "oci", [LAYER1])
    manifest_desc = json.loads((layout / "index.json").read_text())["manifests"][0]
    manifest = json.loads((layout / "blobs" / "sha256" / manifest_desc["digest"][7:]).read_text())
    (layout / "blobs" / "sha256" / manifest["layers"][0]["digest"][7:]).write_bytes(b"\x28\xb5\x2f\xfd" + b"\0" * 16)
    with pytest.raises(ImageError, match="zstd-compressed.*zstandard"):
        store.import_source("app:1", layout)


# ---------------------------------------------------------------- overrides


def test_overrides_replace_the_archive_config(store, tmp_path):
    archive = docker_save(tmp_path / "s.tar", [LAYER1])
    image = store.import_source("app:1", archive, entrypoint=["/bin/sh", "-c"], env={"FOO": "baz", "NEW": "1"},
                                workdir="/tmp")
    assert image.entrypoint == ("/bin/sh", "-c") and image.cmd == ()  # entrypoint resets cmd
    assert image.env == (EnvVar("PATH", "/bin"), EnvVar("FOO", "baz"), EnvVar("NEW", "1"))
    assert image.working_dir == "/tmp"
    image = store.import_source("app:2", archive, cmd=["--debug"])
    assert image.entrypoint == ("/bin/app",) and image.cmd == ("--debug",)
    rootfs = store.import_source("r", make_rootfs(tmp_path / "rootfs"), cmd=["sh"], env=["A=1"])
    assert rootfs.cmd == ("sh",) and rootfs.env == (EnvVar("PATH", DEFAULT_PATH), EnvVar("A", "1"))
    with pytest.raises(ImageError, match="list of strings"):
        store.import_source("r", tmp_path / "rootfs", entrypoint="/bin/sh")
    with pytest.raises(ImageError, match="absolute"):
        store.import_source("r", tmp_path / "rootfs", workdir="srv")


# ---------------------------------------------------------------- store operations


def test_get_list_tag_remove_and_gc(store, tmp_path):
    assert store.get("app") is None and store.list() == []
    a = store.import_source("app", make_rootfs(tmp_path / "rootfs"))
    b = store.import_source("other:2", docker_save(tmp_path / "s.tar", [LAYER1]))
    assert store.get("docker.io/library/app") == a
    assert [i.ref for i in store.list()] == ["app:latest", "other:2"]
    assert store.get(f"app@sha256:{a.digest}").digest == a.digest
    assert store.get(f"other@sha256:{a.digest}") is None  # digest refs are per repository
    tagged = store.tag("app", "registry.local:5000/app:v1")
    assert tagged.digest == a.digest and tagged.ref == "registry.local:5000/app:v1"
    with pytest.raises(ImageError, match="not found"):
        store.tag("missing", "x")
    with pytest.raises(ImageError, match="digest"):
        store.tag("app", "x@sha256:" + "0" * 64)
    store.remove("app")
    assert store.blob_path(a.digest).exists()  # still used by the tag
    store.remove("registry.local:5000/app:v1")
    with pytest.raises(ImageError, match="not in the store"):
        store.blob_path(a.digest)
    with pytest.raises(ImageError, match="not found"):
        store.remove("app")
    with store.open_blob("sha256:" + b.digest) as stream:
        assert stream.read(512)
    assert len(list((store.root / "configs").iterdir())) == 1
    with pytest.raises(ImageError, match="malformed"):
        store.blob_path("../../etc/passwd")


def test_digest_refs(store, tmp_path):
    image = store.import_source("app:1", make_rootfs(tmp_path / "rootfs"))
    with pytest.raises(ImageError, match="content's digest is sha256:" + image.digest):
        store.import_source("app@sha256:" + "0" * 64, tmp_path / "rootfs")
    pinned = store.import_source(f"app@sha256:{image.digest}", tmp_path / "rootfs")
    assert pinned.ref == f"app@sha256:{image.digest}" and pinned.digest == image.digest
    config_digest = store.inspect("app:1")["config_digest"]
    assert store.get(f"app@sha256:{config_digest}").digest == image.digest


def test_reimport_with_new_content_replaces_and_collects_the_old_blob(store, tmp_path):
    root = make_rootfs(tmp_path / "rootfs")
    old = store.import_source("app", root)
    (root / "etc" / "passwd").write_text("changed\n")
    new = store.import_source("app", root)
    assert new.digest != old.digest
    assert sorted(p.name for p in (store.root / "blobs" / "sha256").iterdir()) == [new.digest]


def test_concurrent_imports_do_not_lose_refs(store, tmp_path):
    root = make_rootfs(tmp_path / "rootfs")
    errors = []

    def run(i):
        try:
            store.import_source(f"app:{i}", root, cmd=[str(i)])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert [i.ref for i in store.list()] == [f"app:{i}" for i in range(6)]
    assert len({i.digest for i in store.list()}) == 1


def test_missing_or_unknown_sources(store, tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        store.import_source("a", tmp_path / "nope")
    with pytest.raises(ImageError, match="not a tar archive"):
        store.import_source("a", write(tmp_path / "junk", b"hello, not a tar" * 100))
    with pytest.raises(ImageError, match="invalid image reference"):
        store.import_source("A", tmp_path)


# ---------------------------------------------------------------- busybox


@pytest.mark.skipif(not Path("/bin/busybox").exists(), reason="needs busybox-static")
def test_busybox_image(store, tmp_path):
    image = build_busybox_image(store)
    assert image.ref == "busybox:latest" and image.cmd == ("sh",) and image.env == (EnvVar("PATH", DEFAULT_PATH),)
    members = blob_members(store, image)
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "/bin/busybox"
    assert members["bin/busybox"].isreg() and members["bin/busybox"].mode == 0o755
    assert members["tmp"].mode == 0o1777
    assert blob_file(store, image, "etc/passwd").startswith(b"root:x:0:0:")
    assert b"nobody:x:65534" in blob_file(store, image, "etc/passwd")
    again = build_busybox_image(ImageStore(tmp_path / "elsewhere"), ref="bb:2")
    assert again.digest == image.digest  # deterministic
    out = gnu_untar(store, image, tmp_path / "out")
    assert os.readlink(out / "bin" / "sh") == "/bin/busybox"


def test_busybox_missing_or_dynamic(store, tmp_path):
    with pytest.raises(ImageError, match="busybox-static"):
        build_busybox_image(store, busybox=tmp_path / "nope")
    with pytest.raises(ImageError, match="not an ELF.*busybox-static"):
        build_busybox_image(store, busybox=write(tmp_path / "script", b"#!/bin/sh\necho\n" * 10))
    dynamic = shutil.which("ls")
    with pytest.raises(ImageError, match="dynamically linked.*busybox-static"):
        build_busybox_image(store, busybox=dynamic)


# ---------------------------------------------------------------- argv and env

IMG = ImageConfig(ref="x:1", digest="0" * 64, entrypoint=("/ep",), cmd=("c1", "c2"))
BARE = ImageConfig(ref="x:1", digest="0" * 64)


@pytest.mark.parametrize("command, args, image, expected", [
    (None, None, IMG, ("/ep", "c1", "c2")),
    (("/bin/sh",), None, IMG, ("/bin/sh",)),
    (("/bin/sh",), ("-c", "x"), IMG, ("/bin/sh", "-c", "x")),
    (None, ("a",), IMG, ("/ep", "a")),
    ((), (), IMG, ("/ep", "c1", "c2")),  # empty lists count as unset (Kubernetes)
    (None, ("a",), BARE, ("a",)),
    (None, None, ImageConfig(ref="x:1", digest="0" * 64, cmd=("sh",)), ("sh",)),
])
def test_resolve_argv(command, args, image, expected):
    assert resolve_argv(command, args, image) == expected


def test_resolve_argv_without_anything_to_run():
    with pytest.raises(ImageError, match="no command: the image has no entrypoint or cmd"):
        resolve_argv(None, None, BARE)


def test_merge_env_overrides_by_name_keeping_order():
    image = (EnvVar("PATH", "/bin"), EnvVar("A", "1"), EnvVar("B", "2"))
    merged = merge_env(image, (EnvVar("C", "3"), EnvVar("A", "x")))
    assert merged == (EnvVar("PATH", "/bin"), EnvVar("A", "x"), EnvVar("B", "2"), EnvVar("C", "3"))
    assert merge_env(["X=1"], ["X=2", "Y="]) == (EnvVar("X", "2"), EnvVar("Y", ""))


# ---------------------------------------------------------------- stand-ins


def test_standins_name_the_examples_images(store):
    from orchestrator.standins import NGINX_CMD, build_standins

    made = {i.ref: i for i in build_standins(store)}
    base = made["busybox:latest"]
    for ref in ("busybox:1.28", "registry.k8s.io/busybox:1.27.2", "alpine:latest", "debian:latest"):
        assert store.get(ref).digest == base.digest and store.get(ref).cmd == ("sh",)
    nginx = store.get("nginx")
    assert nginx.cmd == NGINX_CMD and nginx.digest != base.digest
    with tarfile.open(store.blob_path(nginx.digest)) as tf:
        names = set(tf.getnames())
        page = tf.extractfile("usr/share/nginx/html/index.html").read()
    assert {"bin/busybox", "usr/share/nginx/html"} <= names and b"Welcome to nginx!" in page
    # The same busybox always gives the same images: a second run stores nothing new.
    assert {i.ref: i.digest for i in build_standins(store)} == {r: i.digest for r, i in made.items()}
