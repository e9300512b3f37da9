#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
"""Write the OCI test fixtures of oci2cfs.

Usage: make-fixtures.py OUTDIR

OUTDIR must not exist or be empty. Written there:

  NAME/ (OCI image layouts), NAME.tar (archives)
      one per fixture; every byte is the same on each run (fixed mtimes,
      sorted JSON keys, gzip with mtime 0, zstd single-threaded)
  expected/NAME.tsv
      for each good fixture, the merged tree in the format of
      tests/corpus/tree-listing.py, derived here from the entries put in
      the layers (a small model of the OCI layer rules), never from
      oci2cfs output
  expected/NAME.mtime-ns
      "path<TAB>mtime in ns" for every path, for what the TSV's whole
      seconds cannot show
  cases.tsv
      one line per fixture, tab separated:
        good  NAME  SOURCE-KIND  RELPATH  [DROPPED]
        fail  NAME  SOURCE-KIND  RELPATH  SUBSTRING...
      SOURCE is "KIND:OUTDIR/RELPATH"; the error message of a should-fail
      fixture must contain every SUBSTRING. DROPPED is the number of
      xattrs the conversion must drop with a warning (user.* where Linux
      keeps none); without it, the conversion says nothing.

Good fixtures: hardlinks, sparse (GNU tar --sparse of a real sparse file,
old GNU and PAX 0.0/0.1/1.0), bigids, times, specials, xattrs,
xattrs-special (user.* xattrs of symlinks and special files), typechange,
zstd, docker (docker-archive of typechange), ociarchive (oci-archive of
xattrs), entries-max (exactly CFS_IMAGE_ENTRIES_MAX entries).
Should-fail fixtures: should-fail-*, see make_should_fail().

Needs python3, GNU tar (sparse entries) and zstd. Limits are read from
the C headers so that the boundary cases follow them.
"""
import base64
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.parse
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.normpath(os.path.join(HERE, "..", ".."))

MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = {
    "tar": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}
REF_ANNOTATION = "org.opencontainers.image.ref.name"
T0 = 1700000000  # default mtime of entries: 2023-11-14


def c_constant(header, name):
    """Value of '#define NAME (expr)' in a C header of the source tree."""
    with open(os.path.join(SRC, header)) as f:
        text = f.read()
    m = re.search(r"^#define\s+%s\s+(.+)$" % name, text, re.M)
    if not m:
        sys.exit("make-fixtures: %s not found in %s" % (name, header))
    expr = re.sub(r"(\d+)[uUlL]+", r"\1", m.group(1).split("/*")[0])
    if not re.fullmatch(r"[\d\s()*+-]+", expr):
        sys.exit("make-fixtures: cannot evaluate %s = %s" % (name, expr))
    return int(eval(expr))  # digits and arithmetic only, checked above


JSON_MAX = c_constant("src/convert/oci.h", "CFS_OCI_JSON_MAX")
ENTRIES_MAX = c_constant("src/convert/apply.h", "CFS_IMAGE_ENTRIES_MAX")
NAME_MAX = c_constant("include/cfs/image.h", "CFS_NAME_MAX")


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def b(s):
    return s if isinstance(s, bytes) else s.encode()


def pattern(label, size):
    """Deterministic, compressible but not trivial content."""
    out = bytearray()
    i = 0
    while len(out) < size:
        word = hashlib.md5(b"%s%d" % (b(label), i // 7)).hexdigest().encode()
        out += b"%s line %06d %s\n" % (b(label), i, word)
        i += 1
    return bytes(out[:size])


# ---- tar writing --------------------------------------------------------

BLOCK = 512
TYPEFLAG = {"f": b"0", "h": b"1", "l": b"2", "c": b"3", "b": b"4", "d": b"5", "p": b"6"}


def pad(data):
    return data + b"\0" * (-len(data) % BLOCK)


def parse_time(t):
    """PAX decimal time "S[.F]" or an int, as (sec, nsec), floor semantics."""
    if isinstance(t, int):
        return t, 0
    neg = t.startswith("-")
    whole, _, frac = t.lstrip("-").partition(".")
    ns = int(whole) * 10**9 + int((frac + "0" * 9)[:9] or 0)
    if neg:
        ns = -ns
    return ns // 10**9, ns % 10**9


class E:
    """One tar entry, and what the model needs to apply it.

    kind: f file, d dir, l symlink, h hardlink, c/b device, p fifo; g for
    raw bytes that are no entry (a PAX global header).
    mtime: int, or a PAX decimal string (forces a PAX mtime record).
    xattrs: [(name, value)] as SCHILY.xattr.NAME records; lxattrs: the same
    as LIBARCHIVE.xattr.URLNAME=BASE64 records (pad: keep '=' padding).
    b256: numeric fields ("uid", "gid", "mtime") written in GNU base-256.
    gnu_long: long names as GNU ././@LongLink entries ('L', 'K'), not PAX.
    raw: the entry's bytes as made elsewhere (GNU tar), used as is.
    """

    def __init__(self, path, kind, mode=None, uid=0, gid=0, mtime=T0, data=b"",
                 link=None, rdev=(0, 0), xattrs=(), lxattrs=(), lxattr_pad=False,
                 b256=(), gnu_long=False, raw=None):
        self.path = b(path)
        self.kind = kind
        self.mode = mode if mode is not None else {"d": 0o755, "l": 0o777}.get(kind, 0o644)
        self.uid, self.gid = uid, gid
        self.mtime = mtime
        self.data = data
        self.link = b(link) if link is not None else None
        self.rdev = rdev
        self.xattrs = [(b(n), b(v)) for n, v in xattrs]
        self.lxattrs = [(b(n), b(v)) for n, v in lxattrs]
        self.lxattr_pad = lxattr_pad
        self.b256 = set(b256)
        self.gnu_long = gnu_long
        self.raw = raw

    def tar(self):
        if self.raw is not None:
            return self.raw
        pax = []
        fields = {}
        size = len(self.data) if self.kind == "f" else 0
        for key, val, width in (("uid", self.uid, 8), ("gid", self.gid, 8),
                                ("mtime", self.mtime, 12), ("size", size, 12)):
            if key in self.b256:
                fields[key] = base256(val, width)
            elif isinstance(val, int) and 0 <= val < 8 ** (width - 1):
                fields[key] = octal(val, width)
            else:
                fields[key] = octal(0, width)
                pax.append((key.encode(), str(val).encode()))
        longs = b""
        name, prefix = ustar_split(self.path)
        if name is None and self.gnu_long:
            longs += gnu_long_entry(b"L", self.path)
            name, prefix = self.path[:100], b""
        elif name is None:
            pax.append((b"path", self.path))
            name, prefix = self.path[-100:].lstrip(b"/")[-99:], b""
        link = self.link or b""
        if len(link) > 100 and self.gnu_long:
            longs += gnu_long_entry(b"K", link)
            link = link[:100]
        elif len(link) > 100:
            pax.append((b"linkpath", link))
            link = link[:100]
        for n, v in self.xattrs:
            pax.append((b"SCHILY.xattr." + n, v))
        for n, v in self.lxattrs:
            enc = base64.b64encode(v)
            if not self.lxattr_pad:
                enc = enc.rstrip(b"=")
            key = urllib.parse.quote_from_bytes(n, safe="").encode()
            pax.append((b"LIBARCHIVE.xattr." + key, enc))
        out = longs
        if pax:
            body = b"".join(pax_record(k, v) for k, v in pax)
            pname = b"PaxHeaders/" + os.path.basename(self.path.rstrip(b"/"))
            out += header(pname[:100], 0o644, octal(0, 8), octal(0, 8), octal(len(body), 12),
                          octal(0, 12), b"x", b"", 0, 0)
            out += pad(body)
        out += header(name, self.mode, fields["uid"], fields["gid"], fields["size"],
                      fields["mtime"], TYPEFLAG[self.kind], link, self.rdev[0], self.rdev[1],
                      prefix=prefix)
        if self.kind == "f":
            out += pad(self.data)
        return out


def gnu_long_entry(typeflag, value):
    """GNU tar's way to carry a long name ('L') or link target ('K')."""
    data = value + b"\0"
    return header(b"././@LongLink", 0o644, octal(0, 8), octal(0, 8), octal(len(data), 12),
                  octal(0, 12), typeflag, b"", 0, 0, magic=b"ustar  \0") + pad(data)


def pax_global(records):
    """A PAX global header ('g'), as git archive writes first."""
    body = b"".join(pax_record(k, v) for k, v in records)
    return header(b"pax_global_header", 0o666, octal(0, 8), octal(0, 8), octal(len(body), 12),
                  octal(0, 12), b"g", b"", 0, 0) + pad(body)


def octal(v, width):
    s = b"%0*o" % (width - 1, v)
    assert len(s) == width - 1, (v, width)
    return s + b"\0"


def base256(v, width):
    assert v >= 0
    return bytes([0x80]) + v.to_bytes(width - 1, "big")


def ustar_split(path):
    if len(path) <= 100:
        return path, b""
    for i in range(len(path) - 1, 0, -1):
        if path[i:i + 1] == b"/" and i <= 155 and len(path) - i - 1 <= 100 and i < len(path) - 1:
            return path[i + 1:], path[:i]
    return None, None


def pax_record(key, value):
    body = b" " + key + b"=" + value + b"\n"
    n = len(body) + 1
    while len(str(n).encode()) + len(body) != n:
        n += 1
    return str(n).encode() + body


def header(name, mode, uid, gid, size, mtime, typeflag, linkname, major, minor,
           prefix=b"", magic=b"ustar\x0000"):
    h = bytearray(BLOCK)
    h[0:len(name)] = name
    h[100:108] = octal(mode & 0o7777, 8)
    h[108:116] = uid
    h[116:124] = gid
    h[124:136] = size
    h[136:148] = mtime
    h[148:156] = b" " * 8
    h[156:157] = typeflag
    h[157:157 + len(linkname)] = linkname
    h[257:265] = magic
    h[329:337] = octal(major, 8)
    h[337:345] = octal(minor, 8)
    h[345:345 + len(prefix)] = prefix
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


END_OF_ARCHIVE = b"\0" * (2 * BLOCK)


def tar_of(entries):
    return b"".join(e.tar() for e in entries) + END_OF_ARCHIVE


# ---- GNU tar sparse entries ---------------------------------------------

def gnu_sparse_entry(tmp, relpath, size, extents, mode, mtime, fmt_args):
    """Make a real sparse file (extents: [(offset, data)]) under @tmp and
    return GNU tar's entry for it (no end-of-archive blocks) and the full
    content, holes as zeros."""
    path = os.path.join(tmp, relpath)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    content = bytearray(size)
    with open(path, "wb") as f:
        f.truncate(size)
        for off, data in extents:
            f.seek(off)
            f.write(data)
            content[off:off + len(data)] = data
    os.chmod(path, mode)
    os.utime(path, (mtime, mtime))
    st = os.stat(path)
    if st.st_blocks * 512 >= size:
        sys.exit("make-fixtures: %s is not sparse on this file system" % path)
    # --hole-detection=raw: holes found by reading zeros in 512-byte
    # blocks, the same on every file system (extents are 64 KiB aligned
    # and have no zero block).
    out = subprocess.run(
        ["tar", "-c", "-f", "-", "-C", tmp, "--sparse", "--hole-detection=raw",
         "--numeric-owner", "--owner=0", "--group=0", "--mtime=@%d" % mtime,
         "--no-recursion"] + fmt_args + ["--", relpath],
        check=True, stdout=subprocess.PIPE).stdout
    os.unlink(path)
    return fix_gnu_tar(out), bytes(content)


def fix_gnu_tar(data):
    """Strip the end-of-archive blocks and replace the process id that GNU
    tar puts in PAX sparse names ("d/GNUSparseFile.1234/f"), so that the
    bytes are the same on each run."""
    while data.endswith(b"\0" * BLOCK):
        data = data[:-BLOCK]
    out = bytearray(data)
    off = 0
    while off < len(out):
        h = out[off:off + BLOCK]
        typeflag = h[156:157]
        size = int(h[124:136].rstrip(b"\0 ") or b"0", 8)
        name = bytes(h[0:100]).rstrip(b"\0")
        fixed = re.sub(rb"GNUSparseFile\.\d+/", b"GNUSparseFile.0/", name)
        if fixed != name:
            h[0:100] = fixed.ljust(100, b"\0")
            h[148:156] = b" " * 8
            h[148:156] = b"%06o\0 " % sum(h)
            out[off:off + BLOCK] = h
        off += BLOCK
        if typeflag == b"S" and h[482]:  # old GNU sparse: extension blocks
            while True:
                ext = out[off:off + BLOCK]
                off += BLOCK
                if not ext[504]:
                    break
        off += size + (-size % BLOCK)
    assert off == len(out), "unparsed GNU tar output"
    return bytes(out)


# ---- compression --------------------------------------------------------

def gz(data):
    return gzip.compress(data, compresslevel=6, mtime=0)


def zst(data):
    return subprocess.run(["zstd", "-q", "-c", "-3", "--single-thread", "--no-progress"],
                          input=data, check=True, stdout=subprocess.PIPE).stdout


def zstd_fails(data):
    return subprocess.run(["zstd", "-q", "-d", "-c"], input=data, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode != 0


def zstd_skippable(payload):
    return (0x184D2A5E).to_bytes(4, "little") + len(payload).to_bytes(4, "little") + payload


# ---- OCI layouts --------------------------------------------------------

class Layer:
    """A layer blob: @tar compressed as @comp, or @blob given as is."""

    def __init__(self, tar, comp="gzip", blob=None, diff_id=None):
        self.tar = tar
        self.comp = comp
        if blob is None:
            blob = {"tar": lambda d: d, "gzip": gz, "zstd": zst}[comp](tar)
        self.blob = blob
        self.digest = sha256(blob)
        self.diff_id = diff_id or sha256(tar)
        self.media_type = MT_LAYER[comp]


def write_file(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def config_for(layers, diff_ids=None, history=None):
    cfg = {
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "created": "2023-11-14T22:13:20Z",
        "rootfs": {"type": "layers", "diff_ids": diff_ids or [l.diff_id for l in layers]},
    }
    if history is not None:
        cfg["history"] = history
    return cfg


def oci_layout(path, layers, *, config=None, config_raw=None, descs=None,
               stored=None, omit=(), manifest_raw=None, tag="latest"):
    """Write an OCI image layout at @path with one image.

    descs: per-layer dict updates of the manifest's layer descriptors;
    stored: {digest: bytes} to store instead of a layer's blob; omit:
    digests whose blob is not written; config_raw / manifest_raw: the
    documents' bytes instead of canonical JSON. Returns the manifest
    digest and the config digest."""
    os.makedirs(path)
    blobs = {}
    for l in layers:
        blobs[l.digest] = l.blob
    config_bytes = config_raw if config_raw is not None else canonical_json(
        config or config_for(layers))
    blobs[sha256(config_bytes)] = config_bytes
    layer_descs = []
    for i, l in enumerate(layers):
        d = {"mediaType": l.media_type, "digest": l.digest, "size": len(l.blob)}
        if descs and descs[i]:
            d.update(descs[i])
        layer_descs.append(d)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": sha256(config_bytes),
                   "size": len(config_bytes)},
        "layers": layer_descs,
    }
    manifest_bytes = manifest_raw if manifest_raw is not None else canonical_json(manifest)
    blobs[sha256(manifest_bytes)] = manifest_bytes
    index = {
        "schemaVersion": 2,
        "mediaType": MT_INDEX,
        "manifests": [{
            "mediaType": MT_MANIFEST,
            "digest": sha256(manifest_bytes),
            "size": len(manifest_bytes),
            "annotations": {REF_ANNOTATION: tag},
        }],
    }
    for digest, data in sorted(blobs.items()):
        if digest in omit:
            continue
        if stored and digest in stored:
            data = stored[digest]
        write_file(os.path.join(path, "blobs", "sha256", digest[7:]), data)
    write_file(os.path.join(path, "oci-layout"), canonical_json({"imageLayoutVersion": "1.0.0"}))
    write_file(os.path.join(path, "index.json"), canonical_json(index))
    return sha256(manifest_bytes), sha256(config_bytes)


def archive_of(members):
    """A tar of [(name, bytes) | (name, None) for a dir | (name, ('l', target))]."""
    entries = []
    for name, data in members:
        if data is None:
            entries.append(E(name, "d", mtime=0))
        elif isinstance(data, tuple):
            entries.append(E(name, "l", link=data[1], mtime=0))
        else:
            entries.append(E(name, "f", data=data, mtime=0))
    return tar_of(entries)


def oci_archive(path, layout_dir):
    """An oci-archive: the layout directory @layout_dir as a tar."""
    members = []
    for top, dirs, files in os.walk(layout_dir):
        dirs.sort()
        rel = os.path.relpath(top, layout_dir)
        if rel != ".":
            members.append((rel + "/", None))
        for name in sorted(files):
            with open(os.path.join(top, name), "rb") as f:
                members.append((os.path.normpath(os.path.join(rel, name)), f.read()))
    write_file(path, archive_of(members))


def docker_archive(path, layers, repo_tag):
    """A 'docker save' archive: manifest.json, a <hex>.json config, and
    one layer in each form seen in the wild: a plain <id>/layer.tar
    (docker), <id>/layer.tar as a symlink to ../<diff_id>.tar (skopeo),
    and a gzip member whose compression the reader must sniff."""
    cfg = canonical_json(config_for(layers))
    members = [("%s.json" % sha256(cfg)[7:], cfg)]
    names = []
    for i, l in enumerate(layers):
        hexid = l.diff_id[7:]
        if i == 0:
            name = "%s/layer.tar" % hexid
            members += [(hexid + "/", None), (name, l.tar)]
        elif i == 1:
            members.append(("%s.tar" % hexid, l.tar))
            name = "%s/layer.tar" % hashlib.sha256(b"id" + hexid.encode()).hexdigest()
            members += [(os.path.dirname(name) + "/", None), (name, ("l", "../%s.tar" % hexid))]
        else:
            name = "blobs/sha256/%s" % sha256(gz(l.tar))[7:]
            members.append((name, gz(l.tar)))
        names.append(name)
    manifest = [{"Config": "%s.json" % sha256(cfg)[7:], "RepoTags": [repo_tag], "Layers": names}]
    members.insert(0, ("manifest.json", canonical_json(manifest)))
    write_file(path, archive_of(members))


# ---- the model: what the merged tree must be ----------------------------

class Inode:
    def __init__(self, kind, e=None):
        self.kind = kind
        self.mode, self.uid, self.gid = 0o755, 0, 0
        self.sec, self.nsec = 0, 0
        self.data, self.target, self.rdev = b"", b"", (0, 0)
        self.xattrs = {}
        self.children = {} if kind == "d" else None  # name -> [inode, layer]
        self.parent = None
        if e is not None:
            self.set_meta(e)

    def set_meta(self, e):
        self.mode = e.mode & 0o7777
        self.uid, self.gid = e.uid, e.gid
        self.sec, self.nsec = parse_time(e.mtime)
        # Linux keeps user.* xattrs on regular files and directories only:
        # the rest is dropped, as containerd drops what lsetxattr refuses
        self.xattrs = {n: v for n, v in e.xattrs + e.lxattrs
                       if self.kind in "fd" or not n.startswith(b"user.")}


class Model:
    """The OCI layer rules (image-spec layer.md, as containerd applies
    them): later entries replace earlier ones, a directory over a
    directory only changes its metadata, missing parents appear as 0755
    root mtime 0, ".wh.NAME" and ".wh..wh..opq" hide only what lower
    layers put there, symlinks in parent paths are followed inside the
    tree, hardlinks name an inode already in the tree."""

    def __init__(self):
        self.root = Inode("d")

    @staticmethod
    def split(path):
        comps = [c for c in path.split(b"/") if c not in (b"", b".")]
        assert b".." not in comps, path
        return comps

    def follow(self, d, link):
        cur = self.root if link.target.startswith(b"/") else d
        for c in link.target.split(b"/"):
            if c in (b"", b"."):
                continue
            if c == b"..":
                cur = cur.parent or self.root
            else:
                cur = self.walk([c], None, cur)
        return cur

    def walk(self, comps, layer, start=None):
        cur = start or self.root
        for c in comps:
            ent = cur.children.get(c)
            if ent is None:
                assert layer is not None, "model: implicit dir while following a symlink"
                child = Inode("d")
                child.parent = cur
                cur.children[c] = [child, layer]
            else:
                child = ent[0]
                if child.kind == "l":
                    child = self.follow(cur, child)
            assert child.kind == "d", comps
            cur = child
        return cur

    def lookup(self, path):
        comps = self.split(path)
        d = self.walk(comps[:-1], None)
        return d.children[comps[-1]][0]

    def apply(self, layer, entries):
        for e in entries:
            if e.kind == "g":
                continue
            comps = self.split(e.path)
            if not comps:
                self.root.set_meta(e)
                continue
            name = comps[-1]
            if name.startswith(b".wh."):
                d = self.walk(comps[:-1], layer)
                if name == b".wh..wh..opq":
                    for n in [n for n, (_, l) in d.children.items() if l < layer]:
                        del d.children[n]
                else:
                    ent = d.children.get(name[4:])
                    if ent and ent[1] < layer:
                        del d.children[name[4:]]
                continue
            d = self.walk(comps[:-1], layer)
            if e.kind == "h":
                d.children[name] = [self.lookup(e.link), layer]
                continue
            old = d.children.get(name)
            if e.kind == "d" and old and old[0].kind == "d":
                old[0].set_meta(e)
                old[1] = layer
                continue
            ino = Inode(e.kind, e)
            ino.data, ino.target, ino.rdev = e.data, e.link or b"", e.rdev
            ino.parent = d
            d.children[name] = [ino, layer]

    def rows(self):
        """(path, inode) for every name, root first."""
        out = [(b"/", self.root)]

        def visit(d, prefix):
            for name, (ino, _) in d.children.items():
                p = prefix + b"/" + name
                out.append((p, ino))
                if ino.kind == "d":
                    visit(ino, p)
        visit(self.root, b"")
        return sorted(out, key=lambda r: r[0])


def esc(bs):
    return "".join(chr(c) if 0x21 <= c <= 0x7E and c != 0x5C else "\\x%02x" % c for c in bs)


# How composefs shows an overlay whiteout (char 0:0) that is image
# content: overlayfs would act on a real one, so the image holds an
# empty regular file with the escaped "xwhiteout" xattrs, and its
# directory is marked as holding such files (kernel 6.7 "whiteouts",
# 6.8 "opaque=x", plus the user.overlay.* forms for userxattr mounts).
# The mount unescapes trusted.overlay.overlay.* to trusted.overlay.*.
XWHITEOUT = {b"trusted.overlay.whiteout": b"", b"user.overlay.whiteout": b""}
XWHITEOUT_PARENT = {b"trusted.overlay.opaque": b"x", b"trusted.overlay.whiteouts": b"",
                    b"user.overlay.opaque": b"x", b"user.overlay.whiteouts": b""}


def as_mounted(model):
    """Apply the composefs representation of whiteouts to @model."""
    def visit(d):
        for name, (ino, _) in d.children.items():
            if ino.kind == "c" and ino.rdev == (0, 0):
                ino.kind = "f"
                ino.xattrs.update(XWHITEOUT)
                d.xattrs.update(XWHITEOUT_PARENT)
            elif ino.kind == "d":
                visit(ino)
    visit(model.root)


def listing(model):
    """The tree as tree-listing.py prints it."""
    as_mounted(model)
    rows = model.rows()
    links = {}
    for _, ino in rows:
        if ino.kind == "f":
            links[id(ino)] = links.get(id(ino), 0) + 1
    lines = ["# path\ttype\tmode\tuid\tgid\tsize\tmtime\tnlink\tdata\txattrs"]
    for path, ino in rows:
        size, nl, data = 0, "-", "-"
        if ino.kind == "f":
            size, nl = len(ino.data), str(links[id(ino)])
            data = hashlib.sha256(ino.data).hexdigest()
        elif ino.kind == "l":
            data = esc(ino.target)
        elif ino.kind in "cb":
            data = "%d:%d" % ino.rdev
        xa = ",".join("%s=%s" % (esc(n), v.hex()) for n, v in sorted(ino.xattrs.items())) or "-"
        # os.stat's float st_mtime, truncated, as tree-listing.py prints it
        mtime = int(ino.sec + ino.nsec * 1e-9)
        lines.append("%s\t%s\t%04o\t%d\t%d\t%d\t%d\t%s\t%s\t%s" % (
            esc(path), {"p": "p"}.get(ino.kind, ino.kind), ino.mode, ino.uid, ino.gid, size,
            mtime, nl, data, xa))
    ns = ["%s\t%d" % (esc(path), ino.sec * 10**9 + ino.nsec) for path, ino in rows]
    return "\n".join(lines) + "\n", "\n".join(ns) + "\n"


# ---- good fixtures ------------------------------------------------------

def fx_hardlinks():
    big = pattern("hardlinks-big", 5000)
    l1 = [
        E("lower/", "d"),
        E("lower/big", "f", data=big),
        E("lower/small", "f", data=b"small lower file\n"),
        E("lower/gone", "f", data=pattern("gone", 300)),
        E("lower/replaced", "f", data=b"replaced by a link\n"),
        E("same/", "d"),
        E("same/a", "f", mode=0o640, uid=7, gid=8, data=pattern("same-a", 200)),
        E("same/b", "h", link="same/a"),
        E("same/c", "h", link="./same/b"),        # a link to a link name
        E("same/tiny", "f", data=b"tiny\n"),
        E("same/tiny-link", "h", link="same/tiny"),
        # a hardlink whose target path needs PAX linkpath
        E("long-" + "d" * 110 + "/", "d"),
        E("long-" + "d" * 110 + "/target", "f", data=pattern("long", 100)),
        E("long-link", "h", link="long-" + "d" * 110 + "/target"),
        # the same with GNU ././@LongLink entries for the name and the target
        E("gnu-long-" + "g" * 120, "f", data=pattern("gnu-long", 90), gnu_long=True),
        E("gnu-long-link-" + "k" * 120, "h", link="gnu-long-" + "g" * 120, gnu_long=True),
        E("symlinked", "l", link="same"),
        E("via-symlink", "h", link="symlinked/a"),   # the target's parent is a symlink
        # a link to a file that a later entry of the same layer replaces:
        # the link keeps the first inode
        E("repl/orig", "f", data=pattern("first-orig", 150)),
        E("repl/link-to-first", "h", link="repl/orig"),
        E("repl/orig", "f", data=pattern("second-orig", 170)),
        E("repl/small", "f", data=b"first\n"),
        E("repl/small-link", "h", link="repl/small"),
        E("repl/small", "f", data=b"second\n"),
    ]
    l2a = [
        E("upper/", "d"),
        E("upper/big-link", "h", link="lower/big"),        # lower layer target
        E("upper/small-link", "h", link="/lower/small"),
        E("upper/gone-link", "h", link="lower/gone"),
        E("lower/.wh.gone", "f"),          # the lower name goes, the link stays
        E("lower/replaced", "h", link="lower/big"),        # a name replaced by a link
    ]
    l2b = [
        E("upper/in-second-member", "f", data=pattern("member", 1000)),
        E("upper/member-link", "h", link="upper/in-second-member"),
    ]
    tar2 = b"".join(e.tar() for e in l2a + l2b) + END_OF_ARCHIVE
    cut = sum(len(e.tar()) for e in l2a)
    # two gzip members, as pigz -i and some tools write
    layer2 = Layer(tar2, blob=gz(tar2[:cut]) + gz(tar2[cut:]))
    # an empty layer as docker writes it: just the end-of-archive blocks
    return [(Layer(tar_of(l1)), l1), (layer2, l2a + l2b), (Layer(tar_of([])), [])]


def fx_sparse():
    tmp = tempfile.mkdtemp(prefix="make-fixtures-sparse.")
    try:
        K = 65536
        fill = lambda label, n: bytes((c % 255) + 1 for c in pattern(label, n))  # no zero byte
        specs = [
            # (name, size, extents, tar format arguments)
            ("sparse/gnu-old", 40 * K,
             [(i * 4 * K, fill("g%d" % i, 4096 + i * 512)) for i in range(7)]
             + [(39 * K, fill("end", K))],
             ["--format=gnu"]),  # 8 extents: old GNU header plus extension blocks
            ("sparse/gnu-hole-at-end", 48 * K, [(0, fill("start", 4096))], ["--format=gnu"]),
            ("sparse/pax-0.0", 10 * K, [(K, fill("p00", 2048)), (5 * K, fill("p00b", 512))],
             ["--format=posix", "--sparse-version=0.0"]),
            ("sparse/pax-0.1", 10 * K, [(2 * K, fill("p01", 3000)), (8 * K, fill("p01b", K))],
             ["--format=posix", "--sparse-version=0.1"]),
            ("sparse/pax-1.0", 48 * K,
             [(0, fill("p10", 1000)), (16 * K, fill("p10b", 5000)),
              (40 * K, fill("p10c", 100))],
             ["--format=posix", "--sparse-version=1.0"]),
            ("sparse/pax-1.0-all-hole", 8 * K, [], ["--format=posix", "--sparse-version=1.0"]),
        ]
        entries = [E("sparse/", "d")]
        for name, size, extents, args in specs:
            if args[0] == "--format=posix":
                args = args + ["--pax-option=delete=atime,delete=ctime,"
                               "exthdr.name=%d/PaxHeaders/%f"]
            raw, content = gnu_sparse_entry(tmp, name, size, extents, 0o644, T0, args)
            e = E(name, "f", data=content, raw=raw)
            entries.append(e)
        entries.append(E("sparse/plain", "f", data=b"not sparse\n"))
    finally:
        shutil.rmtree(tmp)
    check_with_tarfile(tar_of(entries), entries)
    return [(Layer(tar_of(entries)), entries)]


def check_with_tarfile(tar, entries):
    """python's tarfile must read the files as the model says (a check
    of this script and GNU tar, independent of oci2cfs)."""
    want = {e.path.rstrip(b"/").decode(): e for e in entries}
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        for m in tf.getmembers():
            e = want[m.name.rstrip("/")]
            if m.isfile():
                got = tf.extractfile(m).read()
                assert got == e.data, "tarfile reads %s differently" % m.name


def fx_bigids():
    l1 = [
        E("", "g", raw=pax_global([(b"comment", b"like git archive's commit id")])),
        E("ids/", "d", uid=3000000, gid=3000001, b256=("uid", "gid")),
        E("ids/octal-max", "f", uid=8**7 - 1, gid=8**7 - 1, data=b"2097151\n"),
        E("ids/pax-2-21", "f", uid=2**21, gid=2**21 + 1, data=b"2^21\n"),
        E("ids/pax-max", "f", uid=4294967294, gid=4294967294, data=pattern("max", 100)),
        E("ids/base256", "f", uid=123456789, gid=987654321, b256=("uid", "gid"), data=b"b256\n"),
        E("ids/link", "l", uid=4000000000, gid=3999999999, link="pax-max"),
        E("ids/fifo", "p", uid=2**31, gid=2**31 + 7),
        E("ids/dir-pax/", "d", uid=4294967294, gid=65536),
    ]
    return [(Layer(tar_of(l1)), l1)]


def fx_times():
    l1 = [
        E("t/", "d", mtime="1700000001.5"),
        E("t/zero", "f", mtime=0, data=b"epoch\n"),
        E("t/negative", "f", mtime="-86400", data=b"1969-12-31\n"),
        E("t/frac-ns", "f", mtime="1700000000.123456789", data=b"ns\n"),
        E("t/frac-short", "f", mtime="1234567890.5", data=pattern("short", 100)),
        E("t/frac-zero", "f", mtime="1600000000.000000000", data=b"z\n"),
        E("t/octal-max", "f", mtime=8**11 - 1, data=b"2^33-1\n"),
        E("t/pax-2-33", "f", mtime=8**11, data=b"2^33\n"),
        E("t/far-future", "f", mtime="32503680000.25", data=b"year 3000\n"),
        E("t/base256", "f", mtime=4102444800, b256=("mtime",), data=b"2100\n"),
        E("t/symlink", "l", mtime="1500000000.999999999", link="zero"),
        E("t/fifo", "p", mtime="1400000000.000000001"),
        E("t/dir-frac/", "d", mtime="1111111111.111111111"),
        E("t/dir-frac/f", "f", mtime=1, data=b"one\n"),
    ]
    return [(Layer(tar_of(l1)), l1)]


def fx_specials():
    l1 = [
        E("./", "d", mode=0o751, mtime=T0 + 1),  # the root's own metadata
        E("dev/", "d"),
        E("dev/null", "c", mode=0o666, rdev=(1, 3)),
        E("dev/sda1", "b", mode=0o660, gid=6, rdev=(8, 1)),
        E("dev/big", "c", mode=0o600, rdev=(4095, 1048575)),  # largest 32-bit encoding
        E("dev/loop0", "b", mode=0o660, rdev=(7, 0)),
        # an overlay whiteout as image content: kept, not acted on
        E("dev/whiteout", "c", mode=0o600, rdev=(0, 0)),
        E("dev/fifo", "p", mode=0o620),
        E("modes/", "d"),
        E("modes/setuid", "f", mode=0o4755, data=b"suid\n"),
        E("modes/setgid", "f", mode=0o2755, data=b"sgid\n"),
        E("modes/sticky-file", "f", mode=0o1644, data=b"sticky\n"),
        E("modes/all", "f", mode=0o7777, data=pattern("all", 100)),
        E("modes/none", "f", mode=0o000, data=b"none\n"),
        E("modes/tmp/", "d", mode=0o1777),
        E("modes/setgid-dir/", "d", mode=0o2775),
        E("modes/all-dir/", "d", mode=0o7755),
        E("modes/suid-fifo", "p", mode=0o4644),
        E("modes/sticky-dev", "c", mode=0o1600, rdev=(10, 200)),
        E("names/", "d"),
        E("names/sp ace", "f", data=b"1\n"),
        E(b"names/tab\tand\nnewline", "f", data=b"2\n"),
        E(b"names/latin1-\xe9\xff", "f", data=b"3\n"),
        E(b"names/back\\slash", "l", link=b"sp ace"),
        E("names/utf8-\u00e9\u4e2d", "p"),
        E("names/" + "m" * NAME_MAX, "f", data=b"longest name\n"),
        E("names/longest-target", "l", link="t" * 4095),   # PATH_MAX with its NUL
    ]
    return [(Layer(tar_of(l1)), l1)]


CAP = (0x02000001).to_bytes(4, "little") + (0x2000).to_bytes(4, "little") + bytes(4) + bytes(8)


def xattr_layers():
    binval = bytes(range(256))
    l1 = [
        E("x/", "d", xattrs=[("user.dir", "dir value")]),
        E("x/ping", "f", mode=0o755, data=pattern("ping", 1000),
          xattrs=[("security.capability", CAP)]),
        E("x/binary", "f", data=b"bin\n",
          xattrs=[("user.z-last", b"\x00\x01\xff\n=\x80"), ("user.all-bytes", binval),
                  ("user.empty", b"")]),
        E("x/trusted", "f", data=b"trusted\n",
          xattrs=[("trusted.test", "t"), ("trusted.overlay.custom", "escaped")]),
        E("x/libarchive", "f", data=pattern("libarchive", 300),
          lxattrs=[("user.lib name", b"\xff\xfe binary \x00"), ("user.unpadded", b"ab")]),
        E("x/libarchive-pad", "f", data=b"padded\n", lxattr_pad=True,
          lxattrs=[("user.padded", b"a"), ("user.pct%", b"xyz")]),
        E("x/replaced", "f", data=b"old\n", xattrs=[("user.old", "1")]),
        E("x/redone/", "d", xattrs=[("user.old", "1"), ("user.keep", "1")]),
    ]
    l2 = [
        # a file listed again has exactly the xattrs of its new entry
        E("x/replaced", "f", data=b"new\n", xattrs=[("user.new", "2")]),
        # a directory listed again too
        E("x/redone/", "d", mode=0o750, xattrs=[("user.keep", "2")]),
        E("x/noxattrs/", "d"),
    ]
    return [(Layer(tar_of(l1)), l1), (Layer(tar_of(l2), "tar"), l2)]


def xattr_special_layers():
    """user.* xattrs where Linux has none (symlinks, devices, fifos, and
    a whiteout device kept as content): dropped, XATTRS_DROPPED of them;
    other namespaces kept, user.* kept on files and directories."""
    l1 = [
        E("s/", "d", xattrs=[("user.dir", "kept")]),
        E("s/file", "f", data=b"file\n", xattrs=[("user.file", "kept")]),
        E("s/link", "l", link="file", xattrs=[("user.link", "dropped"),
                                               ("trusted.link", "kept")]),
        E("s/lxlink", "l", link="file", lxattrs=[("user.lx", b"dropped")]),
        E("s/fifo", "p", xattrs=[("user.fifo", "dropped"), ("trusted.fifo", "kept")]),
        E("s/null", "c", mode=0o666, rdev=(1, 3), xattrs=[("user.chr", "dropped"),
                                                          ("trusted.chr", "kept")]),
        E("s/loop", "b", mode=0o660, rdev=(7, 0), xattrs=[("user.blk", "dropped")]),
        E("s/whiteout", "c", mode=0o600, rdev=(0, 0), xattrs=[("user.wh", "dropped")]),
    ]
    return [(Layer(tar_of(l1)), l1)]


XATTRS_DROPPED = 6


def typechange_layers():
    l1 = [
        E("file-to-dir", "f", data=b"was a file\n"),
        E("dir-to-file/", "d"),
        E("dir-to-file/child", "f", data=pattern("child", 500)),
        E("dir-to-file/sub/", "d"),
        E("dir-to-file/sub/deep", "f", data=b"deep\n"),
        E("opaque/", "d", mode=0o700),
        E("opaque/lower1", "f", data=b"1\n"),
        E("opaque/lowerdir/", "d"),
        E("opaque/lowerdir/x", "f", data=b"x\n"),
        E("wh/", "d"),
        E("wh/file", "f", data=b"to be whited out\n"),
        E("wh/dir/", "d"),
        E("wh/dir/inner", "f", data=pattern("inner", 200)),
        E("wh/kept", "f", data=b"kept\n"),
        E("wh/recreated", "f", data=b"lower version\n"),
        E("file-to-link", "f", data=b"f\n"),
        E("link-to-file", "l", link="file-to-dir"),
        E("usr/", "d"),
        E("usr/lib/", "d"),
        E("usr/lib/old", "f", data=b"old\n"),
        E("lib", "l", link="usr/lib"),
        E("lib64", "l", link="/usr/../usr/lib"),
        E("up", "l", link="../../.."),   # clamped at the root when followed
    ]
    l2 = [
        E("file-to-dir/", "d", mode=0o711),
        E("file-to-dir/new", "f", data=b"new\n"),
        E("dir-to-file", "f", mode=0o600, data=b"now a file\n"),
        E("opaque/upper-before", "f", data=b"same layer, before the marker\n"),
        E("opaque/.wh..wh..opq", "f"),
        E("opaque/upper-after", "f", data=b"same layer, after the marker\n"),
        E("wh/.wh.file", "f"),
        E("wh/.wh.dir", "f"),
        E("wh/.wh.does-not-exist", "f"),
        E("wh/recreated", "f", data=b"upper version\n"),
        E("wh/.wh.recreated", "f"),      # same layer: must not hide it
        E("wh/.wh.new-here", "f"),
        E("wh/new-here", "f", data=b"whiteout first, then the file\n"),
        E("file-to-link", "l", link="wh/kept"),
        E("link-to-file", "f", data=b"was a link\n"),
        E("lib/via-symlink", "f", data=b"through lib -> usr/lib\n"),
        E("lib64/via-absolute", "f", data=b"through an absolute link\n"),
        E("up/escaped", "f", data=b"lands in the root, not above it\n"),
        E("implied/parent/file", "f", data=b"parents not listed\n"),
    ]
    l3 = [
        E("dir-to-file/", "d", mode=0o755),  # and back to a directory
        E("dir-to-file/again", "f", data=b"again\n"),
        E("wh/dir/", "d"),
        E("wh/dir/fresh", "f", data=b"fresh\n"),
        E(".wh.file-to-dir", "f"),
    ]
    return [(Layer(tar_of(l1)), l1), (Layer(tar_of(l2)), l2), (Layer(tar_of(l3), "tar"), l3)]


def fx_zstd():
    l1 = [E("z/", "d"), E("z/base", "f", data=pattern("base", 3000))]
    l2 = [E("z/frames", "f", data=pattern("frames", 200000)), E("z/small", "f", data=b"small\n")]
    l3 = [E("z/skippable", "f", data=pattern("skip", 70000)), E(".wh.nothing", "f")]
    tar2, tar3 = tar_of(l2), tar_of(l3)
    # two zstd frames with a skippable frame between them; a skippable
    # frame at the end, where zstd:chunked keeps its manifest
    blob2 = zst(tar2[:100000]) + zstd_skippable(b"between") + zst(tar2[100000:])
    blob3 = zst(tar3) + zstd_skippable(b'{"manifest": "like zstd:chunked"}')
    return [(Layer(tar_of(l1), "zstd"), l1), (Layer(tar2, "zstd", blob=blob2), l2),
            (Layer(tar3, "zstd", blob=blob3), l3)]


def dir_entries_layer(n, extra=0):
    """A gzip layer of @n + @extra identical "d/" directory entries, made
    of concatenated gzip members so that it stays small: 2 GiB of tar for
    4 Mi entries is some 2 MiB of gzip."""
    block = E("d/", "d").tar()
    per = 4096
    assert n % per == 0
    chunk = block * per
    member = gz(chunk)
    h = hashlib.sha256()
    for _ in range(n // per):
        h.update(chunk)
    tail = block * extra + END_OF_ARCHIVE
    h.update(tail)
    blob = member * (n // per) + gz(tail)
    return Layer(b"", blob=blob, diff_id="sha256:" + h.hexdigest())


# ---- should-fail fixtures -----------------------------------------------

def flip_middle(blob, fails):
    """Flip bytes in the middle of @blob until @fails(blob) says the
    decoder rejects it (deterministic: the first position that works)."""
    for delta in range(0, 4096, 97):
        pos = len(blob) // 2 + delta
        bad = bytearray(blob)
        for i in range(pos, pos + 8):
            bad[i] ^= 0x5A
        if fails(bytes(bad)):
            return bytes(bad)
    sys.exit("make-fixtures: no corruption found that the decoder rejects")


def gzip_fails_early(data):
    """Does inflate reject @data before its end (not only by the CRC)?"""
    try:
        d = zlib.decompressobj(31)
        d.decompress(data)
        d.flush()
        return False
    except zlib.error as e:
        return "incorrect data check" not in str(e)


def zstd_fails_early(data):
    """Does zstd reject @data for corrupt blocks (not only by the checksum)?"""
    p = subprocess.run(["zstd", "-q", "-d", "-c"], input=data, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    return p.returncode != 0 and b"checksum" not in p.stderr


def payload_layer(extra=(), big=3 * 1024 * 1024):
    """Entries before the bad part: files stored as objects, so a failure
    happens with objects already written and one being written."""
    return [E("ok/", "d"), E("ok/first", "f", data=pattern("first", 5000)),
            E("ok/big", "f", data=pattern("big", big))] + list(extra)


def make_should_fail(out, cases):
    def oci(name, layers, expect, **kw):
        oci_layout(os.path.join(out, name), layers, **kw)
        cases.append(["fail", name, "oci", name] + expect)

    def lay(l):
        return "layer " + l.digest

    # compressed data the decoder rejects, blob digest fixed to match
    tar = tar_of(payload_layer())
    good = Layer(tar)
    bad = Layer(tar, blob=flip_middle(good.blob, gzip_fails_early))
    oci("should-fail-corrupt-gzip", [bad],
        [lay(bad), "corrupt gzip data near compressed offset"])
    crc = bytearray(good.blob)
    crc[-8] ^= 0xFF   # the CRC32 of the trailer: found only at the end
    crc = Layer(tar, blob=bytes(crc))
    oci("should-fail-gzip-crc", [crc],
        [lay(crc), "corrupt gzip data near compressed offset", "incorrect data check"])

    cut = len(good.blob) // 2
    trunc = Layer(tar, blob=good.blob[:cut])
    oci("should-fail-truncated-gzip", [trunc],
        [lay(trunc), "truncated gzip stream (ends at compressed offset %d)" % cut])

    zgood = Layer(tar, "zstd")
    zbad = Layer(tar, "zstd", blob=flip_middle(zgood.blob, zstd_fails_early))
    oci("should-fail-corrupt-zstd", [zbad],
        [lay(zbad), "corrupt zstd data near compressed offset"])
    zsum = bytearray(zgood.blob)
    zsum[-1] ^= 0xFF  # the frame's content checksum
    zsum = Layer(tar, "zstd", blob=bytes(zsum))
    oci("should-fail-zstd-checksum", [zsum],
        [lay(zsum), "corrupt zstd data near compressed offset", "checksum"])

    cut = len(zgood.blob) // 2
    ztrunc = Layer(tar, "zstd", blob=zgood.blob[:cut])
    assert zstd_fails(ztrunc.blob)
    oci("should-fail-truncated-zstd", [ztrunc],
        [lay(ztrunc), "truncated zstd stream (ends at compressed offset %d)" % cut])

    # a tar that ends inside a file's data, in a complete gzip stream;
    # the file is larger than CFS_OBJECT_MEM_MAX, so that its object was
    # spilling to a temporary file in the object directory when the data
    # ran out
    mem_max = c_constant("src/convert/objects.h", "CFS_OBJECT_MEM_MAX")
    entries = payload_layer([E("ok/cut-here", "f", data=bytes(mem_max + 16 * 1024 * 1024))])
    full = tar_of(entries)
    cut_at = len(full) - len(END_OF_ARCHIVE) - 8 * 1024 * 1024
    ttrunc = Layer(full[:cut_at])
    oci("should-fail-truncated-tar", [ttrunc], [lay(ttrunc), "ok/cut-here"])

    # Two bad layers: the next layer is read ahead while the one below
    # is still applied (src/convert/oci-convert.c, start_ahead(): once
    # the lower blob is all read, so the lower layers here have many
    # small files after it is), yet the error is the lower one's, as if
    # they were read one by one.
    many = tar_of(payload_layer([E("ok/small%03d" % k, "f", data=pattern("s%d" % k, 100))
                                 for k in range(300)]))
    many = Layer(many)
    zbad_other = Layer(tar_of(payload_layer([E("ok/other", "f", data=b"x")])), "zstd")
    zbad_other = Layer(zbad_other.tar, "zstd",
                       blob=flip_middle(zbad_other.blob, zstd_fails_early))
    oci("should-fail-diff-id-then-corrupt", [many, zbad_other],
        [lay(many), "diff_id mismatch"],
        config=config_for([many, zbad_other], diff_ids=[sha256(b"not the tar"),
                                                        zbad_other.diff_id]))
    many_other = bytearray(many.blob)
    many_other[4:8] = b"\x01\x00\x00\x00"   # gzip header mtime: valid, same size
    oci("should-fail-blob-then-corrupt", [Layer(tar_of([E("lower/", "d")])), many, zbad_other],
        [lay(many), "blob digest mismatch"], stored={many.digest: bytes(many_other)})

    # digests and sizes that do not match the bytes
    other = bytearray(good.blob)
    other[4:8] = b"\x01\x00\x00\x00"   # gzip header mtime: still valid gzip, same size
    oci("should-fail-blob-digest", [good],
        [lay(good), "blob digest mismatch: expected %s, got %s"
         % (good.digest, sha256(bytes(other)))],
        stored={good.digest: bytes(other)})
    oci("should-fail-blob-size", [good],
        [lay(good), "blob has %d bytes, descriptor says %d" % (len(good.blob), len(good.blob) + 1)],
        descs=[{"size": len(good.blob) + 1}])
    wrong = sha256(b"not the tar")
    oci("should-fail-diff-id", [good],
        [lay(good), "diff_id mismatch: expected %s, got %s" % (wrong, good.diff_id)],
        config=config_for([good], diff_ids=[wrong]))

    # JSON documents
    bad_manifest = b'{"schemaVersion": 2, "mediaType": "' + MT_MANIFEST.encode() + b'", "config": {'
    oci("should-fail-manifest-json", [good],
        ["manifest " + sha256(bad_manifest), "invalid JSON at byte"], manifest_raw=bad_manifest)
    cfg = canonical_json(config_for([good], history=[{"comment": ""}]))
    cfg = cfg.replace(b'"comment":""', b'"comment":"' + b"x" * (JSON_MAX + 1 - len(cfg)) + b'"')
    assert len(cfg) == JSON_MAX + 1
    oci("should-fail-config-too-big", [good],
        ["config " + sha256(cfg), "%d bytes, limit %d" % (JSON_MAX + 1, JSON_MAX)], config_raw=cfg)

    oci("should-fail-missing-blob", [good], [lay(good), "No such file or directory"],
        omit={good.digest})
    bz = "application/vnd.oci.image.layer.v1.tar+bzip2"
    oci("should-fail-media-type", [good], [good.digest, "unsupported media type " + bz],
        descs=[{"mediaType": bz}])

    # entries the applier refuses, after some that it accepts
    def entries_case(name, bad_entries, expect, with_layer=True):
        layer = Layer(tar_of(payload_layer(bad_entries, big=200000)))
        oci(name, [layer], ([lay(layer)] if with_layer else []) + expect)

    entries_case("should-fail-dotdot", [E("a/../b", "f", data=b"x")],
                 ["a/../b: path contains '..'"])
    entries_case("should-fail-hardlink-missing", [E("ok/link", "h", link="nothing/here")],
                 ["ok/link: hardlink to 'nothing/here', which does not exist"])
    entries_case("should-fail-whiteout-dot", [E("ok/.wh..", "f")], ["ok/.wh..: whiteout of '.'"])
    long_name = "ok/" + "n" * (NAME_MAX + 1)
    entries_case("should-fail-long-name", [E(long_name, "f", data=b"x")],
                 [long_name + ": name of %d bytes (limit %d)" % (NAME_MAX + 1, NAME_MAX)])
    entries_case("should-fail-hardlink-dir", [E("ok/dirlink", "h", link="ok")],
                 ["ok/dirlink: hardlink to directory 'ok'"])

    entries_case("should-fail-symlink-loop",
                 [E("ok/l1", "l", link="l2"), E("ok/l2", "l", link="l1"), E("ok/l1/x", "f")],
                 ["ok/l1/x: too many levels of symbolic links"])
    entries_case("should-fail-not-a-dir", [E("ok/first/x", "f")],
                 ["ok/first/x: 'first' is not a directory"])
    long_path = "/".join(["p" * 240] * 17) + "x"
    entries_case("should-fail-path-too-long", [E(long_path, "f")],
                 ["path of %d bytes (limit 4096)" % len(long_path)])
    entries_case("should-fail-uid-range", [E("ok/uid", "f", uid=2**32, data=b"x")],
                 ["ok/uid: uid/gid 4294967296/0 out of range"])
    entries_case("should-fail-xattr-too-big",
                 [E("ok/xattr", "f", data=b"x", xattrs=[("user.big", b"v" * 70000)])],
                 ["ok/xattr: xattr user.big: value of 70000 bytes"])
    entries_case("should-fail-symlink-too-long", [E("ok/sym", "l", link="t" * 4096)],
                 ["ok/sym: symlink target of 4096 bytes"])
    # a sparse map (PAX 0.1) with data beyond the file's real size
    recs = b"".join(pax_record(k, v) for k, v in [
        (b"GNU.sparse.major", b"0"), (b"GNU.sparse.minor", b"1"),
        (b"GNU.sparse.name", b"ok/sparse"),
        (b"GNU.sparse.realsize", b"50"), (b"GNU.sparse.map", b"0,10,100,10")])
    raw = header(b"PaxHeaders/sparse", 0o644, octal(0, 8), octal(0, 8), octal(len(recs), 12),
                 octal(0, 12), b"x", b"", 0, 0) + pad(recs)
    raw += header(b"ok/GNUSparseFile.0/sparse", 0o644, octal(0, 8), octal(0, 8), octal(20, 12),
                  octal(T0, 12), b"0", b"", 0, 0) + pad(b"s" * 20)
    entries_case("should-fail-sparse-beyond-size", [E("ok/sparse", "f", raw=raw)],
                 ["ok/sparse: data block at 100 beyond size 50"])
    # a header whose checksum is wrong, after entries that were fine
    ents = payload_layer([E("ok/next", "f", data=b"n"), E("ok/bad-header", "f", data=b"b")],
                         big=200000)
    t = bytearray(tar_of(ents))
    pos = sum(len(e.tar()) for e in ents[:-1])
    t[pos + 148] ^= 1
    badsum = Layer(bytes(t))
    oci("should-fail-tar-checksum", [badsum], [lay(badsum), "tar offset %d" % pos])
    # a device number EROFS cannot store (major over 12 bits): found only
    # when the image is written, after its temporary file exists
    entries_case("should-fail-rdev-range", [E("ok/dev", "c", rdev=(4096, 0))],
                 ["ok/dev", "4096:0"], with_layer=False)
    # bytes after the last gzip member that are not another member; the
    # layer is small, so the error comes before libarchive reads a header
    small = tar_of([E("small", "f", data=b"small\n")])
    junk = Layer(small, blob=gz(small) + b"junk after the gzip member")
    oci("should-fail-gzip-trailing-garbage", [junk],
        [lay(junk), "corrupt gzip data near compressed offset", "incorrect header check"])

    # one entry too many, counted over all layers: the second layer's
    # last entry is number CFS_IMAGE_ENTRIES_MAX + 1
    half = ENTRIES_MAX // 2
    l1 = dir_entries_layer(half)
    l2 = dir_entries_layer(half, extra=1)
    oci("should-fail-too-many-entries", [l1, l2],
        [lay(l2), "more than %d entries in the image" % ENTRIES_MAX])
    return l1


# ---- main ---------------------------------------------------------------

def main():
    if len(sys.argv) != 2 or sys.argv[1].startswith("-"):
        sys.exit(__doc__.split("\n\n")[1])
    out = sys.argv[1]
    if os.path.exists(out) and os.listdir(out):
        sys.exit("make-fixtures: %s exists and is not empty" % out)
    for tool in ("tar", "zstd"):
        if not shutil.which(tool):
            sys.exit("make-fixtures: '%s' is needed (scripts/install-deps.sh installs it)"
                     % tool)
    os.makedirs(os.path.join(out, "expected"), exist_ok=True)
    cases = []

    def good(name, layer_entries, kind="oci", rel=None, write=True, dropped=0):
        model = Model()
        for i, (_, entries) in enumerate(layer_entries):
            model.apply(i + 1, entries)
        tsv, ns = listing(model)
        write_file(os.path.join(out, "expected", name + ".tsv"), tsv.encode())
        write_file(os.path.join(out, "expected", name + ".mtime-ns"), ns.encode())
        if write:
            oci_layout(os.path.join(out, name), [l for l, _ in layer_entries], tag=name)
        cases.append(["good", name, kind, rel or name] + ([str(dropped)] if dropped else []))

    good("hardlinks", fx_hardlinks())
    good("sparse", fx_sparse())
    good("bigids", fx_bigids())
    good("times", fx_times())
    good("specials", fx_specials())
    xa = xattr_layers()
    good("xattrs", xa)
    good("xattrs-special", xattr_special_layers(), dropped=XATTRS_DROPPED)
    tc = typechange_layers()
    good("typechange", tc)
    good("zstd", fx_zstd())

    docker_archive(os.path.join(out, "docker.tar"), [l for l, _ in tc],
                   "oci2cfs-fixtures/typechange:latest")
    good("docker", tc, "docker-archive", "docker.tar", write=False)
    tmp = tempfile.mkdtemp(prefix="make-fixtures-layout.", dir=out)
    try:
        oci_layout(os.path.join(tmp, "layout"), [l for l, _ in xa], tag="xattrs")
        oci_archive(os.path.join(out, "ociarchive.tar"), os.path.join(tmp, "layout"))
    finally:
        shutil.rmtree(tmp)
    good("ociarchive", xa, "oci-archive", "ociarchive.tar", write=False)

    half = make_should_fail(out, cases)
    # exactly CFS_IMAGE_ENTRIES_MAX entries: the same layer twice
    oci_layout(os.path.join(out, "entries-max"), [half, half])
    entries_max = [E("d/", "d")]
    good("entries-max", [(half, entries_max), (half, entries_max)], write=False)

    cases.sort(key=lambda c: (c[0] != "good", c[1]))
    write_file(os.path.join(out, "cases.tsv"),
               "".join("\t".join(c) + "\n" for c in cases).encode())


if __name__ == "__main__":
    main()
