"""Image store: content-addressed, flattened rootfs tarballs under $PODCTL_HOME/images.

Hosts run containers from an unpacked tree, so an image is stored as ONE flattened,
sanitised, uncompressed tar (what `tar -x --numeric-owner` on a host unpacks into
/var/lib/podctl/images/<digest>/rootfs) plus a small JSON config saying how to start it.

Layout (every file written as tmp + fsync + rename, so a crash never leaves half a store;
writers serialise on an fcntl lock so two podctl processes can import at once):

    root/blobs/sha256/<hex>     flattened rootfs tar; <hex> = its sha256 = ImageConfig.digest
    root/configs/<hex>.json     {entrypoint, cmd, env, working_dir, rootfs, size, created,
                                 source, dropped}; <hex> = sha256 of the file's bytes
    root/refs.json              {"name:tag": "<config hex>"}
    root/tmp/                   work space of running imports (same filesystem: rename works)
    root/lock                   flock: exclusive for writers, shared for readers

Sources (auto-detected, see `ImageStore.import_source`): OCI layout directories and
archives, `docker save` archives, rootfs directories and rootfs tarballs. Registry pulls
can later produce the same inputs (an OCI layout in tmp/) and reuse the whole pipeline.

Sanitisation policy (what a hostile archive can and cannot do); REJECT fails the import
naming the member, DROP leaves the member out and reports it (log + config "dropped"):

    REJECT  a member name or hard-link target with a `..` component or a NUL: no honest
            tool writes these; they are path-traversal attempts or corruption.
    strip   leading "/" and "./" (GNU tar does the same); "a//./b" becomes "a/b".
    ignore  the root itself ("." or "/"): the host creates the rootfs directory.
    DROP    an empty member name; character and block devices (the runtime provides
            /dev); sockets and unknown member types; symlinks with an empty target.
    DROP    any member whose parent, in the final flattened tree, is a symlink or not a
            directory: nothing is ever written through a symlink.
    DROP    a hard link whose target is not an earlier member of the tree (or is a
            directory). A hard link to a symlink becomes a copy of that symlink.
    keep    absolute and relative symlink targets (they resolve inside the container's
            root at run time), setuid/setgid/sticky bits (Docker keeps them), numeric
            uid/gid; uname/gname are cleared, xattrs and atime/ctime are not stored.

The output is deterministic: members sorted so parents come first, fixed header fields,
so the same tree always gives the same digest and an identical re-import stores nothing.
"""

from __future__ import annotations

import bz2
import fcntl
import gzip
import hashlib
import io
import json
import logging
import lzma
import math
import os
import platform as host_platform
import posixpath
import re
import shutil
import stat
import struct
import subprocess
import tarfile
import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import IO, Callable, Iterable, Iterator, Mapping, Sequence

from .errors import ImageError
from .model import EnvVar, ImageConfig

log = logging.getLogger(__name__)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_JSON_LIMIT = 16 << 20  # manifests and configs are small; refuse to load a JSON bomb
_TMP_MAX_AGE = 24 * 3600  # leftovers of crashed imports older than this are swept
_CHUNK = 1 << 20

# ---------------------------------------------------------------- references

_ALNUM = r"[a-z0-9]+"
_PATH_COMPONENT = re.compile(rf"{_ALNUM}(?:(?:[._]|__|-+){_ALNUM})*\Z")
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?\Z")
_TAG = re.compile(r"\w[\w.-]{0,127}\Z", re.ASCII)
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}\Z")
_HEX = re.compile(r"[0-9a-f]{64}\Z")
_REF_HELP = (
    "allowed: [HOST[:PORT]/]NAME[:TAG][@sha256:<64 hex>] where NAME is lowercase "
    "[a-z0-9] components joined by '.', '_', '__' or '-' and separated by '/', and TAG "
    "is [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
)


def parse_ref(ref: str) -> str:
    """Normalise an image reference the way Docker/Kubernetes read it.

    "busybox" -> "busybox:latest"; "localhost:5000/x" -> "localhost:5000/x:latest" (a
    colon in the registry host is a port, not a tag); "docker.io/library/x" -> "x:latest"
    (Docker's familiar form, so a pod saying either finds the same image);
    "name@sha256:<hex>" stays a digest reference ("name:tag@sha256:..." drops the tag,
    like containerd). Anything else raises ImageError naming the ref and the grammar.
    """
    name, tag, digest = _split_ref(ref)
    return f"{name}@{digest}" if digest else f"{name}:{tag or 'latest'}"


def _split_ref(ref: str) -> tuple[str, str | None, str | None]:
    """(repository name, tag or None, "sha256:<hex>" or None) of a reference."""

    def bad(why: str) -> ImageError:
        return ImageError(f"invalid image reference {ref!r}: {why}; {_REF_HELP}")

    if not isinstance(ref, str) or not ref:
        raise bad("it is empty")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in ref):
        raise bad("it contains whitespace or control characters")
    rest, at, digest = ref.partition("@")
    if at and not _DIGEST.match(digest):
        raise bad("a digest must be 'sha256:' and 64 lowercase hex digits")
    tag = None
    if rest.rfind(":") > rest.rfind("/"):  # a colon before the last '/' is a port
        rest, _, tag = rest.rpartition(":")
        if not _TAG.match(tag):
            raise bad(f"bad tag {tag!r}")
    parts = rest.split("/")
    domain = None
    first = parts[0]
    if len(parts) > 1 and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        domain = parts.pop(0)
        if not _DOMAIN.match(domain):
            raise bad(f"bad registry host {domain!r}")
    for part in parts:
        if not _PATH_COMPONENT.match(part):
            upper = " (uppercase is not allowed)" if part != part.lower() else ""
            raise bad(f"bad name component {part!r}{upper}")
    if domain in ("docker.io", "index.docker.io"):
        domain = None
    if domain is None and len(parts) == 2 and parts[0] == "library":
        parts = parts[1:]
    name = "/".join(([domain] if domain else []) + parts)
    if len(name) > 255:
        raise bad("the name is longer than 255 characters")
    return name, tag, digest or None


# ---------------------------------------------------------------- small I/O helpers


class _Hashing:
    """A stream wrapper that hashes and counts every byte read from or written to it."""

    def __init__(self, f: IO[bytes]):
        self.f = f
        self.hash = hashlib.sha256()
        self.n = 0

    def read(self, size: int = -1) -> bytes:
        data = self.f.read(size)
        self.hash.update(data)
        self.n += len(data)
        return data

    def write(self, data: bytes) -> int:
        self.f.write(data)
        self.hash.update(data)
        self.n += len(data)
        return len(data)

    def tell(self) -> int:  # tarfile asks where it is when writing
        return self.n

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass

    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


_MAGIC = ((b"\x1f\x8b", "gzip"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"))


def _compression(head: bytes) -> str | None:
    """The compression of a stream from its first bytes (names and media types lie)."""
    return next((kind for magic, kind in _MAGIC if head.startswith(magic)), None)


def _decompressor(kind: str, raw: object, label: str) -> IO[bytes]:
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[arg-type]
    if kind == "bzip2":
        return bz2.BZ2File(raw)  # type: ignore[arg-type]
    if kind == "xz":
        return lzma.LZMAFile(raw)  # type: ignore[arg-type]
    try:
        import zstandard  # optional: not a podctl dependency
    except ImportError:
        raise ImageError(
            f"{label} is zstd-compressed, which this installation cannot read: install the "
            "'zstandard' Python package (pip install zstandard, or apt-get install "
            "python3-zstandard) or re-export the image with gzip layers"
        ) from None
    return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)


def _decompress(f: IO[bytes], kind: str, dest: Path, label: str) -> tuple[_Hashing, _Hashing]:
    """Write the decompressed content of `f` to `dest`; return (compressed, plain) hashers."""
    raw = _Hashing(f)
    with open(dest, "wb") as out:
        plain = _Hashing(out)
        try:
            with _decompressor(kind, raw, label) as stream:
                shutil.copyfileobj(stream, plain, _CHUNK)  # type: ignore[arg-type]
            raw.drain()  # hash trailing bytes the decoder did not need
        except ImageError:
            raise
        except Exception as exc:  # decoders raise assorted types (zlib.error, LZMAError...)
            raise ImageError(f"{label}: corrupt {kind} data: {exc}") from exc
    return raw, plain


def _verify(label: str, what: str, expected: str | None, actual: str) -> None:
    if expected is not None and expected != actual:
        raise ImageError(f"{label}: {what} mismatch: the manifest says {expected}, the content is {actual}")


def _open_tar(f: IO[bytes], label: str) -> tarfile.TarFile:
    try:
        return tarfile.open(fileobj=f, mode="r:", encoding="utf-8", errors="surrogateescape")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ImageError(f"{label}: not a tar archive (plain, gzip, bzip2 or xz): {exc}") from exc


# ---------------------------------------------------------------- the flattened tree


def _clean(name: str, what: str) -> str:
    """'./a//./b/' -> 'a/b', '/etc' -> 'etc', '.' -> '' (the root). Rejects '..' and NUL."""
    if "\0" in name:
        raise ImageError(f"{what} {name!r} contains a NUL byte; rejected")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ImageError(f"{what} {name!r} has a '..' component (path traversal); rejected")
    return "/".join(parts)


def _sort_key(path: str) -> list[str]:
    return path.split("/")  # component-wise: a parent sorts before everything under it


class _Content:
    """Where a regular file's bytes come from. Hard links share one (same `key`)."""

    __slots__ = ("key", "open")

    def __init__(self, key: object, opener: Callable[[], IO[bytes]]):
        self.key = key
        self.open = opener


@dataclass
class _Node:
    info: tarfile.TarInfo  # metadata only; the node's path is the key it is stored under
    layer: int  # index of the layer that last wrote it (whiteouts hide lower layers only)
    content: _Content | None = None  # set for regular files (and hard links to them)


def _dir_info(mode: int = 0o755) -> tarfile.TarInfo:
    ti = tarfile.TarInfo()
    ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, mode, 0
    return ti


class _Tree:
    """Layers applied in order, overlayfs style, keeping metadata only (no file data)."""

    def __init__(self) -> None:
        self.nodes: dict[str, _Node] = {}
        self.children: dict[str, set[str]] = {}  # parent -> child paths ever added
        self.dropped: list[tuple[str, str]] = []

    def put(self, path: str, node: _Node) -> None:
        old = self.nodes.get(path)
        if old is not None and old.info.isdir() and not node.info.isdir():
            self.hide(path, math.inf, include_self=False)  # a file replacing a dir: no children
        self.nodes[path] = node
        self.children.setdefault(posixpath.dirname(path), set()).add(path)

    def hide(self, path: str, layer: float, include_self: bool) -> None:
        """Remove `path` and what is below it, if written by a layer under `layer`."""
        stack = [path]
        while stack:
            p = stack.pop()
            stack.extend(self.children.get(p, ()))
            node = self.nodes.get(p)
            if node is not None and node.layer < layer and (include_self or p != path):
                del self.nodes[p]

    def drop(self, path: str, reason: str) -> None:
        self.dropped.append((path, reason))

    def apply(self, ti: tarfile.TarInfo, layer: int, tf: tarfile.TarFile, whiteouts: bool, label: str) -> None:
        """Apply one member of layer `layer` (see the module docstring for the policy)."""
        path = _clean(ti.name, f"{label}: member")
        if not path:
            if not ti.name:
                self.drop("''", "empty member name")
            return  # "." or "/": the root itself
        base = posixpath.basename(path)
        if whiteouts and base.startswith(".wh."):
            self._whiteout(path, base, layer)
        elif ti.ischr() or ti.isblk():
            self.drop(path, "device node (the runtime provides /dev)")
        elif ti.islnk():
            self._hardlink(path, ti, layer, label)
        elif ti.issym() and not ti.linkname:
            self.drop(path, "symlink with an empty target")
        elif ti.isreg():
            self.put(path, _Node(ti, layer, _Content((layer, ti.offset), partial(tf.extractfile, ti))))
        elif ti.isdir() or ti.issym() or ti.isfifo():
            self.put(path, _Node(ti, layer))
        else:
            self.drop(path, f"unsupported member type {ti.type!r}")

    def _whiteout(self, path: str, base: str, layer: int) -> None:
        parent = posixpath.dirname(path)
        if base == ".wh..wh..opq":  # opaque dir: lower layers' content of parent is hidden
            self.hide(parent, layer, include_self=False)
        elif base.startswith(".wh..wh.") or base == ".wh.":
            pass  # aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): meaningless here
        else:
            self.hide(posixpath.join(parent, base[4:]), layer, include_self=True)

    def _hardlink(self, path: str, ti: tarfile.TarInfo, layer: int, label: str) -> None:
        target = _clean(ti.linkname, f"{label}: hard link {path!r} -> target")
        node = self.nodes.get(target)
        if node is None:
            self.drop(path, f"hard link to {ti.linkname!r}, which is not an earlier member")
        elif node.content is not None:
            self.put(path, _Node(node.info, layer, node.content))
        elif node.info.issym():
            self.put(path, _Node(node.info, layer))  # link to a symlink: an equal symlink
        else:
            self.drop(path, f"hard link to {ti.linkname!r}, which is not a file")


def _prune(nodes: dict[str, _Node], dropped: list[tuple[str, str]]) -> dict[str, _Node]:
    """Keep nodes whose every ancestor is a real directory; create missing ancestors.

    Paths are visited parents first, so an ancestor already decided is either kept
    (in `final`) or dropped (in `nodes` but not `final`).
    """
    final: dict[str, _Node] = {}
    for path in sorted(nodes, key=_sort_key):
        missing, q = [], posixpath.dirname(path)
        while q and q not in final and q not in nodes:
            missing.append(q)
            q = posixpath.dirname(q)
        if q and q not in final:
            dropped.append((path, f"its parent {q!r} was dropped"))
        elif q and not final[q].info.isdir():
            kind = "a symlink" if final[q].info.issym() else "not a directory"
            dropped.append((path, f"it would go through {q!r}, which is {kind}"))
        else:
            for m in missing:
                final[m] = _Node(_dir_info(), -1)
            final[path] = nodes[path]
    return final


def _out_info(path: str, src: tarfile.TarInfo) -> tarfile.TarInfo:
    """A fresh header with only the fields a rootfs needs: deterministic output."""
    ti = tarfile.TarInfo(path)
    ti.mode = src.mode & 0o7777  # keeps setuid/setgid/sticky
    ti.uid, ti.gid = max(src.uid, 0), max(src.gid, 0)
    ti.mtime = max(int(src.mtime), 0)
    ti.uname = ti.gname = ""  # numeric ids only: names mean nothing inside the container
    if src.isdir():
        ti.type = tarfile.DIRTYPE
    elif src.issym():
        ti.type, ti.linkname = tarfile.SYMTYPE, src.linkname
    elif src.isfifo():
        ti.type = tarfile.FIFOTYPE
    else:
        ti.type, ti.size = tarfile.REGTYPE, src.size
    return ti


@dataclass
class _Flat:
    path: Path
    digest: str  # hex
    size: int
    dropped: list[tuple[str, str]]


def _write_tree(nodes: dict[str, _Node], dropped: list[tuple[str, str]], dest: Path, label: str) -> _Flat:
    """Write the pruned tree as one sorted tar; the first path of a hard-link group
    carries the data and the others link to it (always an earlier member)."""
    final = _prune(nodes, dropped)
    first_path: dict[object, str] = {}
    with open(dest, "wb") as raw:
        out = _Hashing(raw)
        # GNU format: what hosts unpack with; long names use ././@LongLink and names that
        # are not UTF-8 stay raw bytes (PAX would add hdrcharset, which GNU tar warns about).
        with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT,  # type: ignore[call-overload]
                          encoding="utf-8", errors="surrogateescape") as tar:
            for path in sorted(final, key=_sort_key):
                node = final[path]
                ti = _out_info(path, node.info)
                try:
                    if node.content is None:
                        tar.addfile(ti)
                    elif first_path.setdefault(node.content.key, path) != path:
                        ti.type, ti.linkname, ti.size = tarfile.LNKTYPE, first_path[node.content.key], 0
                        tar.addfile(ti)
                    else:
                        with node.content.open() as data:
                            tar.addfile(ti, data)
                except (OSError, tarfile.TarError, EOFError) as exc:
                    raise ImageError(f"{label}: cannot read {path!r}: {exc}") from exc
        raw.flush()
        os.fsync(raw.fileno())
    if dropped:
        shown = "; ".join(f"{p} ({r})" for p, r in dropped[:5])
        log.warning("%s: dropped %d member(s): %s%s", label, len(dropped), shown, " ..." if len(dropped) > 5 else "")
    return _Flat(dest, out.hash.hexdigest(), out.n, dropped)


def _flatten(tars: Sequence[tuple[tarfile.TarFile, str]], whiteouts: bool, dest: Path, label: str) -> _Flat:
    """Pass 1 reads every layer's headers into a _Tree; pass 2 (writing) reads the data
    of the surviving files by random access, so no layer is ever held in memory."""
    tree = _Tree()
    for layer, (tf, layer_label) in enumerate(tars):
        try:
            for ti in tf:
                tree.apply(ti, layer, tf, whiteouts, layer_label)
        except (tarfile.TarError, EOFError) as exc:
            raise ImageError(f"{layer_label}: corrupt tar: {exc}") from exc
    return _write_tree(tree.nodes, tree.dropped, dest, label)


# ---------------------------------------------------------------- rootfs directories


def _dir_nodes(root: Path) -> tuple[dict[str, _Node], list[tuple[str, str]]]:
    """A directory as nodes, without following symlinks; hard links share content."""
    nodes: dict[str, _Node] = {}
    dropped: list[tuple[str, str]] = []

    def fail(exc: OSError) -> None:
        raise ImageError(f"cannot read {exc.filename}: {exc.strerror} (import as root, or import a tarball)")

    for dirpath, dirnames, filenames in os.walk(root, onerror=fail):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            try:
                st = os.lstat(full)
                node = _stat_node(full, st)
            except OSError as exc:
                fail(exc)
            if node is None:
                dropped.append((rel, "device node, socket or unknown file type"))
            else:
                nodes[rel] = node
    return nodes, dropped


def _stat_node(full: str, st: os.stat_result) -> _Node | None:
    ti = tarfile.TarInfo()
    ti.mode, ti.uid, ti.gid, ti.mtime = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, int(st.st_mtime)
    content = None
    if stat.S_ISREG(st.st_mode):
        ti.type, ti.size = tarfile.REGTYPE, st.st_size
        content = _Content(("inode", st.st_dev, st.st_ino), partial(open, full, "rb"))
    elif stat.S_ISDIR(st.st_mode):
        ti.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(st.st_mode):
        ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(full)
    elif stat.S_ISFIFO(st.st_mode):
        ti.type = tarfile.FIFOTYPE
    else:
        return None
    return _Node(ti, 0, content)


# ---------------------------------------------------------------- archive readers


class _DirReader:
    """Named files of an OCI layout directory; never reads outside it."""

    def __init__(self, root: Path):
        self.root = root.resolve()
        self.label = str(root)

    def _path(self, name: str) -> Path:
        p = (self.root / _clean(name, f"{self.label}: path")).resolve()
        if p != self.root and self.root not in p.parents:
            raise ImageError(f"{self.label}: {name!r} points outside the directory")
        return p

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()

    def open(self, name: str) -> IO[bytes]:
        p = self._path(name)
        if not p.is_file():
            raise ImageError(f"{self.label}: {name} is missing")
        return open(p, "rb")


class _TarReader:
    """Named files of an (uncompressed, seekable) archive, following its own links."""

    def __init__(self, tf: tarfile.TarFile, label: str):
        self.tf = tf
        self.label = label
        self.index: dict[str, tarfile.TarInfo] = {}
        for ti in tf.getmembers():
            try:
                self.index[_clean(ti.name, "member")] = ti
            except ImageError:
                continue  # we only ever look up the names manifests mention

    def exists(self, name: str) -> bool:
        try:
            return _clean(name, "path") in self.index
        except ImageError:
            return False

    def open(self, name: str) -> IO[bytes]:
        path = _clean(name, f"{self.label}: path")
        for _ in range(32):
            ti = self.index.get(path)
            if ti is None:
                raise ImageError(f"{self.label}: {name} is missing from the archive")
            if ti.isreg():
                return self.tf.extractfile(ti)  # type: ignore[return-value]
            if ti.issym():  # old `docker save` links duplicate layers: ../<id>/layer.tar
                path = posixpath.normpath(posixpath.join(posixpath.dirname(path), ti.linkname))
            elif ti.islnk():
                path = ti.linkname
            else:
                break
            path = _clean(path, f"{self.label}: link {name!r} ->")
        raise ImageError(f"{self.label}: {name} is not a regular file")


_Reader = _DirReader | _TarReader


def _read_json(reader: _Reader, name: str, digest: str | None = None, size: int | None = None) -> object:
    with reader.open(name) as f:
        data = f.read(_JSON_LIMIT + 1)
    if len(data) > _JSON_LIMIT:
        raise ImageError(f"{reader.label}: {name} is larger than {_JSON_LIMIT} bytes")
    _verify(f"{reader.label}: {name}", "sha256 digest", digest, "sha256:" + hashlib.sha256(data).hexdigest())
    if size is not None and size != len(data):
        raise ImageError(f"{reader.label}: {name}: size mismatch: the manifest says {size}, the content is {len(data)}")
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ImageError(f"{reader.label}: {name} is not valid JSON: {exc}") from exc


def _plain_layer(reader: _Reader, layer: "_Layer", label: str, tmp: Path) -> IO[bytes]:
    """A seekable uncompressed tar of one layer, its digests verified on the way."""
    f = reader.open(layer.name)
    result = f
    try:
        kind = _compression(f.read(8))
        f.seek(0)
        if kind is None:
            raw = plain = _Hashing(f)
            raw.drain()
            f.seek(0)
        else:
            with f:
                raw, plain = _decompress(f, kind, tmp, label)
            result = open(tmp, "rb")
        _verify(label, "sha256 digest", layer.digest, raw.digest())
        _verify(label, "uncompressed digest (diff_id)", layer.diff_id, plain.digest())
        if layer.size is not None and layer.size != raw.n:
            raise ImageError(f"{label}: size mismatch: the manifest says {layer.size}, the blob has {raw.n}")
    except BaseException:
        result.close()
        raise
    return result


# ---------------------------------------------------------------- OCI and docker-save


@dataclass
class _Layer:
    name: str  # path inside the layout / archive
    digest: str | None = None  # of the blob as stored (compressed)
    size: int | None = None
    diff_id: str | None = None  # of the uncompressed tar (image config rootfs.diff_ids)


@dataclass
class _Parsed:
    config: dict
    layers: list[_Layer]
    source: dict = field(default_factory=dict)


_INDEX_TYPES = {
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
}
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "armv6l": "arm", "i686": "386", "i386": "386"}


def _host_platform() -> str:
    machine = host_platform.machine().lower()
    return "linux/" + _ARCH.get(machine, machine)


def _blob_name(digest: object, label: str) -> str:
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise ImageError(f"{label}: unsupported or malformed digest {digest!r} (only sha256 is supported)")
    return "blobs/sha256/" + digest[7:]


def _platform_of(desc: dict) -> str:
    p = desc.get("platform") or {}
    parts = [p.get("os", "?"), p.get("architecture", "?")] + ([p["variant"]] if p.get("variant") else [])
    return "/".join(parts)


def _matches(desc: dict, want: str) -> bool:
    got = _platform_of(desc).split("/")
    w = want.split("/")
    return got[:2] == w[:2] and (len(w) < 3 or got[2:3] == w[2:3])


def _ref_names(desc: dict) -> str | None:
    ann = desc.get("annotations") or {}
    return ann.get("io.containerd.image.name") or ann.get("org.opencontainers.image.ref.name")


def _same_name(name: str, ref: str) -> bool:
    if name == ref.rpartition(":")[2]:  # ref.name annotations often hold only the tag
        return True
    try:
        return parse_ref(name) == ref
    except ImageError:
        return False


def _pick(descs: object, ref: str | None, platform: str | None, reader: _Reader) -> dict:
    """One manifest descriptor of an index: by image name when the index holds several
    images, then by platform (the wanted one, else the host's, else linux/amd64)."""
    label = reader.label
    if not isinstance(descs, list) or not descs:
        raise ImageError(f"{label}: the index lists no manifests")
    descs = [d for d in descs if isinstance(d, dict)
             and (d.get("annotations") or {}).get("vnd.docker.reference.type") != "attestation-manifest"
             and (d.get("platform") or {}).get("os") != "unknown"]
    names = {_ref_names(d) for d in descs}
    if ref and len(names) > 1:
        descs = [d for d in descs if _ref_names(d) and _same_name(_ref_names(d), ref)]
        if not descs:
            shown = ", ".join(sorted(n for n in names if n))
            raise ImageError(f"{label}: holds several images ({shown}) and none is named {ref}")
    present = [d for d in descs if reader.exists(_blob_name(d.get("digest"), label))]
    descs = present or descs  # `docker save` keeps only the saved platform's blobs
    if len(descs) == 1:
        return descs[0]
    wanted = [platform] if platform else [_host_platform(), "linux/amd64"]
    for want in wanted:
        for d in descs:
            if _matches(d, want):
                return d
    have = ", ".join(sorted({_platform_of(d) for d in descs}))
    raise ImageError(f"{label}: no manifest for platform {wanted[0]}; the image has {have}")


def _oci_image(reader: _Reader, ref: str, platform: str | None) -> _Parsed:
    """index.json -> (nested indexes ->) manifest -> config and layers, all verified."""
    label = reader.label
    _read_json(reader, "oci-layout")
    index = _read_json(reader, "index.json")
    desc = _pick(index.get("manifests") if isinstance(index, dict) else None, ref, platform, reader)
    for _ in range(8):
        doc = _read_json(reader, _blob_name(desc.get("digest"), label), desc["digest"], desc.get("size"))
        if not isinstance(doc, dict):
            raise ImageError(f"{label}: manifest {desc['digest']} is not a JSON object")
        if desc.get("mediaType") not in _INDEX_TYPES and "manifests" not in doc:
            break
        desc = _pick(doc.get("manifests"), None, platform, reader)
    else:
        raise ImageError(f"{label}: image indexes nested too deep")
    cdesc = doc.get("config")
    if not isinstance(cdesc, dict) or not isinstance(doc.get("layers"), list):
        raise ImageError(f"{label}: manifest {desc['digest']} has no config or layers")
    config = _read_json(reader, _blob_name(cdesc.get("digest"), label), cdesc["digest"], cdesc.get("size"))
    layers = [_Layer(_blob_name(d.get("digest"), label), d["digest"], d.get("size")) for d in doc["layers"]]
    source = {"manifest_digest": desc["digest"], "platform": _platform_of(desc) if desc.get("platform") else None}
    return _Parsed(_as_dict(config, label), layers, source)


def _digest_in_name(name: str) -> str | None:
    """`docker save` names configs <hex>.json and (since Docker 25) blobs blobs/sha256/<hex>."""
    m = re.search(r"(?:^|/)([0-9a-f]{64})(?:\.json)?\Z", name)
    return "sha256:" + m.group(1) if m else None


def _docker_image(reader: _Reader, ref: str, manifest: list) -> _Parsed:
    label = reader.label
    entries = [e for e in manifest if isinstance(e, dict)]
    chosen = [e for e in entries if any(_same_name(t, ref) for t in e.get("RepoTags") or [])]
    if not chosen and len(entries) == 1:
        chosen = entries
    if len(chosen) != 1:
        tags = ", ".join(t for e in entries for t in e.get("RepoTags") or []) or "untagged images"
        raise ImageError(f"{label}: holds several images ({tags}); import one under its name")
    entry = chosen[0]
    cname, names = entry.get("Config"), entry.get("Layers")
    if not isinstance(cname, str) or not isinstance(names, list):
        raise ImageError(f"{label}: manifest.json has no Config or Layers")
    config = _read_json(reader, cname, _digest_in_name(cname))
    layers = [_Layer(n, _digest_in_name(n)) for n in names]
    return _Parsed(_as_dict(config, label), layers, {"repo_tags": entry.get("RepoTags") or []})


def _as_dict(doc: object, label: str) -> dict:
    if not isinstance(doc, dict):
        raise ImageError(f"{label}: image config is not a JSON object")
    if doc.get("os") not in (None, "linux"):
        raise ImageError(f"{label}: the image is for {doc.get('os')!r}, not linux")
    return doc


def _flatten_image(reader: _Reader, parsed: _Parsed, tmp: Path, stack: ExitStack) -> _Flat:
    diff_ids = (parsed.config.get("rootfs") or {}).get("diff_ids")
    if diff_ids is not None and len(diff_ids) != len(parsed.layers):
        raise ImageError(f"{reader.label}: the config lists {len(diff_ids)} diff_ids for {len(parsed.layers)} layers")
    tars = []
    for i, layer in enumerate(parsed.layers):
        layer.diff_id = diff_ids[i] if diff_ids else None
        label = f"{reader.label}: layer {i + 1}/{len(parsed.layers)} ({layer.name})"
        f = stack.enter_context(_plain_layer(reader, layer, label, tmp / f"layer-{i}.tar"))
        tars.append((_open_tar(f, label), label))
    return _flatten(tars, whiteouts=True, dest=tmp / "rootfs.tar", label=reader.label)


# ---------------------------------------------------------------- runtime config


@dataclass(frozen=True)
class _Runtime:
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[EnvVar, ...] = (EnvVar("PATH", DEFAULT_PATH),)
    working_dir: str = ""


def _strings(value: object, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):  # type: ignore[union-attr]
        raise ImageError(f"{what} must be a list of strings, not {value!r}")
    return tuple(value)  # type: ignore[arg-type]


def _env_var(item: object) -> EnvVar:
    if isinstance(item, EnvVar):
        return item
    if isinstance(item, str) and item.partition("=")[0]:
        name, _, value = item.partition("=")
        return EnvVar(name, value)
    raise ImageError(f"bad environment entry {item!r} (expected NAME=VALUE)")


def _env_list(env: Mapping[str, str] | Iterable[str | EnvVar] | None) -> tuple[EnvVar, ...]:
    if env is None:
        return ()
    if isinstance(env, Mapping):
        return tuple(EnvVar(str(k), str(v)) for k, v in env.items())
    if isinstance(env, str):
        raise ImageError(f"env must be a mapping or a list of NAME=VALUE, not {env!r}")
    return tuple(_env_var(e) for e in env)


def _runtime_from_config(config: dict) -> _Runtime:
    """Entrypoint/Cmd/Env/WorkingDir of an image config; PATH added when missing, as the
    Docker daemon does at container creation, so PATH lookups work in every image."""
    c = config.get("config") or {}
    entrypoint = _strings(c.get("Entrypoint"), "Entrypoint")
    env = _env_list(c.get("Env") or [])
    if not any(v.name == "PATH" for v in env):
        env += (EnvVar("PATH", DEFAULT_PATH),)
    return _Runtime(
        entrypoint=() if entrypoint == ("",) else entrypoint,  # [""] means "no entrypoint"
        cmd=_strings(c.get("Cmd"), "Cmd"),
        env=env,
        # A relative WorkingDir means relative to the container's root (as containerd
        # reads it); stored absolute so no later step can resolve it against a host cwd.
        working_dir=_absolute_workdir(str(c.get("WorkingDir") or "")),
    )


def _absolute_workdir(path: str) -> str:
    return posixpath.normpath("/" + path) if path and not path.startswith("/") else path


def _override(rt: _Runtime, entrypoint: Sequence[str] | None, cmd: Sequence[str] | None,
              env: Mapping[str, str] | Iterable[str | EnvVar] | None, workdir: str | None) -> _Runtime:
    """Apply `docker import --change`-like overrides. Setting the entrypoint resets the
    image's cmd unless cmd is given too (Dockerfile ENTRYPOINT semantics); env entries
    override by name and append new names; workdir must be absolute."""
    if entrypoint is not None:
        rt = replace(rt, entrypoint=_strings(entrypoint, "entrypoint"), cmd=())
    if cmd is not None:
        rt = replace(rt, cmd=_strings(cmd, "cmd"))
    if env is not None:
        rt = replace(rt, env=merge_env(rt.env, _env_list(env)))
    if workdir is not None:
        if workdir and not workdir.startswith("/"):
            raise ImageError(f"workdir must be an absolute path, not {workdir!r}")
        rt = replace(rt, working_dir=workdir)
    return rt


# ---------------------------------------------------------------- source detection


def _load(ref: str, src: Path, tmp: Path, platform: str | None, stack: ExitStack) -> tuple[_Flat, _Runtime, dict]:
    """Flatten any supported source into tmp/rootfs.tar; see ImageStore.import_source."""
    source: dict = {"path": str(src)}
    if src.is_dir():
        if (src / "oci-layout").exists():
            reader = _DirReader(src)
            parsed = _oci_image(reader, ref, platform)
            flat = _flatten_image(reader, parsed, tmp, stack)
            return flat, _runtime_from_config(parsed.config), _source(parsed, "oci-layout", source)
        nodes, dropped = _dir_nodes(src)
        return _write_tree(nodes, dropped, tmp / "rootfs.tar", str(src)), _Runtime(), {"kind": "rootfs-dir", **source}
    if not src.is_file():
        raise ImageError(f"{src}: not a directory, tar archive or OCI/docker image")
    f = stack.enter_context(open(src, "rb"))
    kind = _compression(f.read(8))
    f.seek(0)
    if kind is not None:  # random access needs a plain tar: decompress once to tmp
        _decompress(f, kind, tmp / "source.tar", str(src))
        f = stack.enter_context(open(tmp / "source.tar", "rb"))
    tf = _open_tar(f, str(src))
    reader = _TarReader(tf, str(src))
    if reader.exists("oci-layout") and reader.exists("index.json"):
        parsed = _oci_image(reader, ref, platform)
        kind_name = "oci-archive"
    elif reader.exists("manifest.json") and isinstance(manifest := _try_json(reader, "manifest.json"), list):
        parsed = _docker_image(reader, ref, manifest)
        kind_name = "docker-save"
    else:
        flat = _flatten([(tf, str(src))], whiteouts=False, dest=tmp / "rootfs.tar", label=str(src))
        return flat, _Runtime(), {"kind": "rootfs-tar", **source}
    flat = _flatten_image(reader, parsed, tmp, stack)
    return flat, _runtime_from_config(parsed.config), _source(parsed, kind_name, source)


def _try_json(reader: _Reader, name: str) -> object:
    try:
        return _read_json(reader, name)
    except ImageError:
        return None  # a rootfs may hold a file of that name that is not docker's


def _source(parsed: _Parsed, kind: str, base: dict) -> dict:
    return {"kind": kind, **base, **{k: v for k, v in parsed.source.items() if v},
            "image_created": parsed.config.get("created")}


# ---------------------------------------------------------------- the store


class ImageStore:
    """Content-addressed image store rooted at `root` (normally $PODCTL_HOME/images)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._blobs = self.root / "blobs" / "sha256"
        self._configs = self.root / "configs"
        self._tmp = self.root / "tmp"
        self._refs = self.root / "refs.json"

    # ------------------------------------------------ public API

    def import_source(self, ref: str, source: Path, *, entrypoint: Sequence[str] | None = None,
                      cmd: Sequence[str] | None = None,
                      env: Mapping[str, str] | Iterable[str | EnvVar] | None = None,
                      workdir: str | None = None, platform: str | None = None,
                      origin: Mapping[str, object] | None = None) -> ImageConfig:
        """Import SOURCE as `ref`, detected by content, not by name:

        - a directory with `oci-layout`: an OCI image layout; another directory: a rootfs;
        - a tar file (plain, gzip, bzip2 or xz by magic bytes; zstd if the `zstandard`
          package is installed) holding `oci-layout`: an OCI archive; holding
          `manifest.json`: a `docker save` archive; anything else: a rootfs tarball.

        For OCI/docker images the config's Entrypoint/Cmd/Env/WorkingDir are taken and
        the keyword options override them; for rootfs sources the options are the whole
        config (default: no cmd, env PATH=DEFAULT_PATH). `platform` ("linux/arm64")
        picks from a multi-platform index; default the host's, then linux/amd64.
        Re-importing identical content under the same ref stores nothing new.
        `origin` is merged into the stored "source" (a registry pull records kind
        "registry", the registry and the repo digest there: registry.py).
        """
        norm = parse_ref(ref)
        src = Path(source)
        if not os.path.lexists(src):
            raise ImageError(f"{src}: no such file or directory")
        self._ensure_layout()
        with tempfile.TemporaryDirectory(prefix="import-", dir=self._tmp) as tmp, ExitStack() as stack:
            flat, rt, source_info = _load(norm, src, Path(tmp), platform, stack)
            source_info.update(origin or {})
            rt = _override(rt, entrypoint, cmd, env, workdir)
            return self._commit(norm, flat, rt, source_info)

    def get(self, ref: str) -> ImageConfig | None:
        """The image `ref` names (any spelling parse_ref accepts), or None.

        A digest reference "name@sha256:<hex>" matches an image stored under the same
        repository name whose rootfs digest, config digest or source manifest digest is
        <hex>; the returned ImageConfig carries the digest reference as its `ref`.
        """
        norm = parse_ref(ref)
        with self._lock(shared=True):
            refs = self._read_refs()
            found = self._lookup(refs, norm)
            return None if found is None else self._image(norm, found[1])

    def inspect(self, ref: str) -> dict | None:
        """The stored config document of `ref` plus its config digest (for `image inspect`)."""
        norm = parse_ref(ref)
        with self._lock(shared=True):
            found = self._lookup(self._read_refs(), norm)
        return None if found is None else {"ref": norm, "config_digest": found[0], **found[1]}

    def list(self) -> list[ImageConfig]:
        """Every stored ref, sorted by ref."""
        with self._lock(shared=True):
            refs = self._read_refs()
            return [self._image(r, self._read_config(c, r)) for r, c in sorted(refs.items())]

    def tag(self, existing_ref: str, new_ref: str) -> ImageConfig:
        """Make `new_ref` name the same image as `existing_ref` (replacing what it named)."""
        src, dst = parse_ref(existing_ref), parse_ref(new_ref)
        if "@" in dst:
            raise ImageError(f"cannot tag as {new_ref!r}: a digest reference names content; use name:tag")
        self._ensure_layout()
        with self._lock():
            refs = self._read_refs()
            found = self._lookup(refs, src)
            if found is None:
                raise ImageError(f"image {existing_ref} not found (podctl image ls lists images)")
            old = refs.get(dst)
            refs[dst] = found[0]
            self._write_refs(refs)
            if old and old != found[0]:
                self._gc(refs)
            return self._image(dst, found[1])

    def remove(self, ref: str) -> None:
        """Forget `ref`; configs and blobs no ref uses any more are deleted."""
        norm = parse_ref(ref)
        self._ensure_layout()
        with self._lock():
            refs = self._read_refs()
            if refs.pop(norm, None) is None:
                raise ImageError(f"image {ref} not found (podctl image ls lists images)")
            self._write_refs(refs)
            self._gc(refs)

    def blob_path(self, digest: str) -> Path:
        """Path of the flattened rootfs tar `digest` ("<hex>" or "sha256:<hex>")."""
        hexd = digest[7:] if digest.startswith("sha256:") else digest
        if not _HEX.match(hexd):
            raise ImageError(f"malformed image digest {digest!r} (expected 64 lowercase hex digits)")
        path = self._blobs / hexd
        if not path.is_file():
            raise ImageError(f"image blob {hexd} is not in the store {self.root}")
        return path

    def open_blob(self, digest: str) -> IO[bytes]:
        """The rootfs tar as a binary stream (for pushing to a host). An open stream stays
        valid even if a concurrent `remove` deletes the blob."""
        return open(self.blob_path(digest), "rb")

    # ------------------------------------------------ internals

    def _import_nodes(self, ref: str, nodes: dict[str, _Node], rt: _Runtime, source: dict) -> ImageConfig:
        """Commit a tree built in memory (the busybox image)."""
        norm = parse_ref(ref)
        self._ensure_layout()
        with tempfile.TemporaryDirectory(prefix="build-", dir=self._tmp) as tmp:
            flat = _write_tree(nodes, [], Path(tmp) / "rootfs.tar", ref)
            return self._commit(norm, flat, rt, source)

    def _commit(self, ref: str, flat: _Flat, rt: _Runtime, source: dict) -> ImageConfig:
        """Move the blob in, write the config, point the ref at it: all under the lock, so
        a concurrent GC never sees a blob without its ref."""
        _check_digest_ref(ref, flat, source)
        doc = {
            "rootfs": flat.digest, "size": flat.size,
            "entrypoint": list(rt.entrypoint), "cmd": list(rt.cmd),
            "env": [f"{e.name}={e.value}" for e in rt.env], "working_dir": rt.working_dir,
            "created": source.pop("image_created", None) or _now(), "source": source,
            "dropped": [f"{p}: {r}" for p, r in flat.dropped[:50]], "dropped_count": len(flat.dropped),
        }
        with self._lock():
            refs = self._read_refs()
            old = refs.get(ref)
            if old is not None and (self._configs / f"{old}.json").exists():
                existing = self._read_config(old, ref)
                if all(existing.get(k) == doc[k] for k in ("rootfs", "entrypoint", "cmd", "env", "working_dir")) \
                        and (existing.get("source") or {}).get("repo_digest") == source.get("repo_digest"):
                    return self._image(ref, existing)  # identical re-import: store nothing
            blob = self._blobs / flat.digest
            if not blob.exists():
                os.chmod(flat.path, 0o444)  # content-addressed: never modified in place
                os.replace(flat.path, blob)
                _fsync_dir(self._blobs)
            data = (json.dumps(doc, sort_keys=True, indent=1) + "\n").encode()
            chex = hashlib.sha256(data).hexdigest()
            if not (self._configs / f"{chex}.json").exists():
                self._atomic_write(self._configs / f"{chex}.json", data)
            refs[ref] = chex
            self._write_refs(refs)
            if old and old != chex:
                self._gc(refs)
        return self._image(ref, doc)

    def _lookup(self, refs: dict[str, str], norm: str) -> tuple[str, dict] | None:
        if norm in refs:
            return refs[norm], self._read_config(refs[norm], norm)
        name, _, digest = _split_ref(norm)
        if not digest:
            return None
        for ref, chex in sorted(refs.items()):
            if _split_ref(ref)[0] != name:
                continue
            doc = self._read_config(chex, ref)
            src = doc.get("source") or {}
            if digest[7:] in (doc.get("rootfs"), chex) or digest in (src.get("manifest_digest"), src.get("repo_digest")):
                return chex, doc
        return None

    @staticmethod
    def _image(ref: str, doc: dict) -> ImageConfig:
        return ImageConfig(
            ref=ref, digest=doc["rootfs"], entrypoint=tuple(doc["entrypoint"]), cmd=tuple(doc["cmd"]),
            env=tuple(_env_var(e) for e in doc["env"]), working_dir=doc["working_dir"], size=doc["size"],
        )

    def _ensure_layout(self) -> None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        for d in (self._blobs, self._configs, self._tmp):
            d.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def _lock(self, shared: bool = False) -> Iterator[None]:
        """Writers exclusive, readers shared. Readers of a store never written need none."""
        path = self.root / "lock"
        if shared and not path.exists():
            yield
            return
        with open(path, "a+b") as f:
            fcntl.flock(f, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _atomic_write(self, path: Path, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f"{path.name}.", dir=self._tmp)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)

    def _read_refs(self) -> dict[str, str]:
        try:
            refs = json.loads(self._refs.read_bytes())
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise ImageError(f"{self._refs} is corrupt: {exc}") from exc
        if not isinstance(refs, dict):
            raise ImageError(f"{self._refs} is corrupt: not a JSON object")
        return refs

    def _write_refs(self, refs: dict[str, str]) -> None:
        self._atomic_write(self._refs, (json.dumps(refs, sort_keys=True, indent=1) + "\n").encode())

    def _read_config(self, chex: str, ref: str) -> dict:
        try:
            return json.loads((self._configs / f"{chex}.json").read_bytes())
        except (OSError, ValueError) as exc:
            raise ImageError(f"image {ref}: config {chex} is missing or corrupt ({exc}); "
                             f"remove the image and import it again") from exc

    def _gc(self, refs: dict[str, str]) -> None:
        """Delete configs no ref names and blobs no kept config names (under the lock)."""
        live = set(refs.values())
        keep = set()
        for chex in live:
            try:
                keep.add(self._read_config(chex, chex)["rootfs"])
            except (ImageError, KeyError):
                return  # cannot tell which blob that config needs: delete nothing
        for cfg in self._configs.glob("*.json"):
            if cfg.stem not in live:
                cfg.unlink(missing_ok=True)
        for blob in self._blobs.iterdir():
            if blob.name not in keep:
                blob.unlink(missing_ok=True)
        cutoff = time.time() - _TMP_MAX_AGE
        for entry in self._tmp.iterdir():  # leftovers of crashed imports
            if entry.lstat().st_mtime >= cutoff:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def _check_digest_ref(ref: str, flat: _Flat, source: dict) -> None:
    """Importing as name@sha256:<hex> is allowed only when <hex> names that content."""
    _, _, digest = _split_ref(ref)
    if digest and digest[7:] != flat.digest and digest not in (source.get("manifest_digest"), source.get("repo_digest")):
        raise ImageError(f"cannot import as {ref}: the content's digest is sha256:{flat.digest}; "
                         "import under name:tag instead")


# ---------------------------------------------------------------- busybox image

_BUSYBOX_HINT = "install a static busybox (apt-get install busybox-static) or pass the path of one"
_BUSYBOX_DIRS = {"bin": 0o755, "dev": 0o755, "etc": 0o755, "home": 0o755, "proc": 0o555, "root": 0o700,
                 "run": 0o755, "sbin": 0o755, "sys": 0o555, "tmp": 0o1777, "usr": 0o755,
                 "usr/bin": 0o755, "usr/sbin": 0o755, "var": 0o755}
_PASSWD = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
_GROUP = b"root:x:0:\nnobody:x:65534:\n"


def build_busybox_image(store: ImageStore, ref: str = "busybox:latest",
                        busybox: str | Path = "/bin/busybox") -> ImageConfig:
    """A small realistic image from this machine's static busybox: /bin/busybox, a
    symlink to it for every applet, the usual top-level directories, /etc/passwd and
    /etc/group. Every mtime is 0, so the same busybox always gives the same digest."""
    path = Path(busybox)
    _check_static_elf(path)
    nodes: dict[str, _Node] = {}
    for d, mode in _BUSYBOX_DIRS.items():
        nodes[d] = _Node(_dir_info(mode), 0)
    nodes["bin/busybox"] = _file_node(path.stat().st_size, 0o755, ("busybox",), partial(open, path, "rb"))
    for name, data in (("etc/passwd", _PASSWD), ("etc/group", _GROUP)):
        nodes[name] = _file_node(len(data), 0o644, (name,), partial(io.BytesIO, data))
    for applet in _busybox_applets(path):
        if applet not in nodes:
            link = tarfile.TarInfo()
            link.type, link.linkname, link.mode, link.mtime = tarfile.SYMTYPE, "/bin/busybox", 0o777, 0
            nodes[applet] = _Node(link, 0)
    rt = _Runtime(cmd=("sh",))
    return store._import_nodes(ref, nodes, rt, {"kind": "busybox", "path": str(path)})


def _file_node(size: int, mode: int, key: object, opener: Callable[[], IO[bytes]]) -> _Node:
    ti = tarfile.TarInfo()
    ti.type, ti.size, ti.mode, ti.mtime = tarfile.REGTYPE, size, mode, 0
    return _Node(ti, 0, _Content(key, opener))


def _busybox_applets(path: Path) -> list[str]:
    """Applet paths from `busybox --list-full` ("bin/sh", "usr/bin/awk"...)."""
    try:
        out = subprocess.run([str(path), "--list-full"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise ImageError(f"{path} --list-full failed ({exc}): {_BUSYBOX_HINT}") from exc
    applets = []
    for line in out.splitlines():
        try:
            name = _clean(line.strip(), f"{path}: applet")
        except ImageError:
            continue
        if name:
            applets.append(name)
    return applets


def _check_static_elf(path: Path) -> None:
    """Refuse a busybox that needs a dynamic loader: it would not start in the image.

    Parses the ELF program headers and looks for PT_INTERP (no `file` or `ldd` needed).
    """
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if len(head) < 52 or head[:4] != b"\x7fELF" or head[4] not in (1, 2) or head[5] not in (1, 2):
                raise ImageError(f"{path} is not an ELF executable: {_BUSYBOX_HINT}")
            end = "<" if head[5] == 1 else ">"
            # e_phoff, then e_phentsize and e_phnum, at their ELF64 / ELF32 offsets
            off_fmt, off_at, num_at = ("Q", 32, 54) if head[4] == 2 else ("I", 28, 42)
            (phoff,) = struct.unpack_from(end + off_fmt, head, off_at)
            phentsize, phnum = struct.unpack_from(end + "HH", head, num_at)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except FileNotFoundError:
        raise ImageError(f"{path} not found: {_BUSYBOX_HINT}") from None
    except (OSError, struct.error) as exc:
        raise ImageError(f"cannot read {path}: {exc}: {_BUSYBOX_HINT}") from exc
    for i in range(0, len(table) - 3, phentsize or 1):
        if struct.unpack_from(end + "I", table, i)[0] == 3:  # PT_INTERP
            raise ImageError(f"{path} is dynamically linked (it names an ELF interpreter) and would not "
                             f"run inside the image: {_BUSYBOX_HINT}")


# ---------------------------------------------------------------- container start


def resolve_argv(command: Sequence[str] | None, args: Sequence[str] | None, image: ImageConfig) -> tuple[str, ...]:
    """The argv a container runs, by the Kubernetes rules (as containerd's CRI applies them):

    command set -> command + args; only args set -> image entrypoint + args; neither ->
    image entrypoint + image cmd. An empty list counts as unset, as in Kubernetes.
    $(VAR) references are not expanded here.
    """
    command, args = tuple(command or ()), tuple(args or ())
    if command:
        argv = command + args
    else:
        entrypoint = () if image.entrypoint == ("",) else image.entrypoint
        argv = entrypoint + (args or image.cmd)
    if not argv:
        raise ImageError("no command: the image has no entrypoint or cmd and the container sets none")
    return argv


def merge_env(image_env: Iterable[EnvVar | str], container_env: Iterable[EnvVar | str]) -> tuple[EnvVar, ...]:
    """Container variables override image variables of the same name in place; new names
    follow in the container's order (Docker's ReplaceOrAppendEnvValues)."""
    merged: dict[str, str] = {}
    for var in (*_env_list(image_env), *_env_list(container_env)):
        merged[var.name] = var.value
    return tuple(EnvVar(k, v) for k, v in merged.items())
