#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
"""Write hostile OCI images for oci2cfs (issue 7), and check the trees
that oci2cfs makes of those it must accept.

Usage: make-hostile.py OUTDIR [--no-bomb]
       make-hostile.py check EXPECT.json DUMP [OBJECTS]
       make-hostile.py verity FILE

OUTDIR must not exist or be empty. Written there: one OCI layout per
fixture (NAME/), expected/NAME.json for each fixture that must be
accepted, and cases.tsv, one line per fixture, tab separated:

    KIND  NAME  BUG  SECONDS  SOURCE-KIND  SUBSTRING...

KIND is "accept" or "refuse"; BUG is "-" or a short description of a
known bug (the case is expected to fail until it is fixed: the test
reports it as a failure, it is never skipped); SECONDS bounds each
conversion. For "refuse" the one line oci2cfs prints must contain every
SUBSTRING. SOURCE-KIND "oci" is the OCI layout OUTDIR/NAME, source
"oci:OUTDIR/NAME"; "oci-archive" and "docker-archive" are OUTDIR/NAME.tar. In expected/NAME.json, besides what "check" reads:
"objects": false (convert without an object directory), "rss": true
(measure and bound the peak RSS), "once": true (no second conversion),
"image_bytes": [...] (byte strings the image file must contain),
"alloc_max_kb": N (the object directory may take at most N KiB of
disk: sparse files must stay sparse).

The layouts are made with the tar and layout writers of
make-fixtures.py (hand-made tar headers, no tar library in the way).
The decompression bomb (2 GiB of zeros in one file, gzip) is written
streaming: neither the tar nor the blob is ever held in memory.

"check" compares a composefs-dump(5) file (oci2cfs --dump) with the
expectations the generator wrote: entries that must exist (with type,
size, owner, target, rdev, nlink, xattrs, content digest), entries that
must not, the number of entries below a directory, the greatest depth;
with OBJECTS, that every file's object is there with the file's size.

"verity" prints the fs-verity digest of FILE (hex), its holes hashed
without reading them (`fsverity digest` reads a 1 TiB hole).
"""
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
_spec = importlib.util.spec_from_file_location("make_fixtures",
                                               os.path.join(HERE, "make-fixtures.py"))
mf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mf)

E, Layer, tar_of, header, octal, pad, pax_record = (
    mf.E, mf.Layer, mf.tar_of, mf.header, mf.octal, mf.pad, mf.pax_record)
sha256, canonical_json, config_for = mf.sha256, mf.canonical_json, mf.config_for
T0, BLOCK, END = mf.T0, mf.BLOCK, mf.END_OF_ARCHIVE
c_constant = mf.c_constant

NAME_MAX = c_constant("include/cfs/image.h", "CFS_NAME_MAX")
TARGET_MAX = c_constant("include/cfs/image.h", "CFS_TARGET_MAX")
XATTRS_INODE_MAX = c_constant("include/cfs/image.h", "CFS_XATTRS_INODE_MAX")
PATH_MAX = c_constant("src/convert/apply.h", "CFS_LAYER_PATH_MAX")
FOLLOW_MAX = c_constant("src/convert/apply.h", "CFS_SYMLINK_FOLLOW_MAX")
DEPTH_MAX = c_constant("src/image/tree-internal.h", "CFS_TREE_DEPTH_MAX")
LAYERS_MAX = c_constant("src/convert/oci.h", "CFS_OCI_LAYERS_MAX")
INDEX_DEPTH_MAX = c_constant("src/convert/oci.h", "CFS_OCI_INDEX_DEPTH_MAX")
JSON_DEPTH_MAX = c_constant("src/common/json.h", "CFS_JSON_DEPTH_MAX")
JSON_CONTAINERS_MAX = c_constant("src/common/json.h", "CFS_JSON_CONTAINERS_MAX")
XATTRS_ENTRY_MAX = c_constant("src/convert/oci-convert.c", "CFS_ENTRY_XATTRS_MAX")

# Seconds a conversion may take (ten times what it takes today)
TIMEOUT = 60
# The bomb: one file of zeros this large, gzip (level 1: fastest to make)
BOMB_SIZE = 2 * 1024 ** 3
# The wide directory
WIDE = 200000
# Deep nesting: levels of "a/" in one path (4001 bytes, under the limit)
DEEP = 2000
# What a layer 82,000 levels deep may take to be refused (well under a
# second; linking in time quadratic in the depth took over 10 minutes)
DEEP_TIMEOUT = 10


def zero_verity(size):
    """fs-verity digest (SHA-256, 4 KiB blocks, no salt) of @size zero
    bytes, computed on runs of equal hashes: 2 GiB take microseconds."""
    return sparse_verity(size, [])


def sparse_verity(size, extents):
    """fs-verity digest of @size bytes that are zero but for @extents,
    (offset, bytes) pairs in order, not overlapping: the blocks of zeros
    between them are hashed as runs of equal hashes, so a 1 TiB sparse
    file with one data block takes milliseconds."""
    bs, per = 4096, 4096 // 32
    if size == 0:
        return verity_of(b"")
    blocks = {}
    for off, data in extents:
        for i in range(off // bs, -(-(off + len(data)) // bs)):
            blk = blocks.setdefault(i, bytearray(bs))
            lo, hi = max(off, i * bs), min(off + len(data), (i + 1) * bs)
            blk[lo - i * bs:hi - i * bs] = data[lo - off:hi - off]
    zero, runs, done = hashlib.sha256(bytes(bs)).digest(), [], 0
    for i in sorted(blocks) + [-(-size // bs)]:
        if i > done:
            runs.append((zero, i - done))
        if i in blocks:
            runs.append((hashlib.sha256(blocks[i]).digest(), 1))
        done = i + 1
    while sum(c for _, c in runs) > 1:
        nxt, part = [], b""

        def add(h, n):
            if nxt and nxt[-1][0] == h:
                nxt[-1] = (h, nxt[-1][1] + n)
            else:
                nxt.append((h, n))
        for h, c in runs:
            while c:
                if not part and c >= per:
                    add(hashlib.sha256(h * per).digest(), c // per)
                    c %= per
                    continue
                t = min(c, per - len(part) // 32)
                part += h * t
                c -= t
                if len(part) == bs:
                    add(hashlib.sha256(part).digest(), 1)
                    part = b""
        if part:
            add(hashlib.sha256(part.ljust(bs, b"\0")).digest(), 1)
        runs = nxt
    return descriptor_digest(size, runs[0][0])


def file_verity(path):
    """fs-verity digest of a file, its holes (SEEK_HOLE) hashed as runs
    of zeros: what `fsverity digest` prints, without reading 1 TiB of
    holes."""
    extents = []
    with open(path, "rb") as fi:
        size = os.fstat(fi.fileno()).st_size
        off = 0
        while off < size:
            try:
                off = os.lseek(fi.fileno(), off, os.SEEK_DATA)
            except OSError:
                break  # ENXIO: nothing but a hole up to the end
            end = os.lseek(fi.fileno(), off, os.SEEK_HOLE)
            fi.seek(off)
            extents.append((off, fi.read(end - off)))
            off = end
    return sparse_verity(size, extents)


def descriptor_digest(size, root):
    """SHA-256 of the fsverity_descriptor (version 1, SHA-256, 4 KiB)."""
    desc = bytes([1, 1, 12, 0]) + bytes(4) + size.to_bytes(8, "little") + root
    desc += bytes(64 - len(root)) + bytes(32) + bytes(144)
    assert len(desc) == 256
    return hashlib.sha256(desc).hexdigest()


def verity_of(data):
    """fs-verity digest of a small byte string, block by block."""
    bs = 4096
    if not data:
        return descriptor_digest(0, bytes(32))
    level = [hashlib.sha256(data[i:i + bs].ljust(bs, b"\0")).digest()
             for i in range(0, len(data), bs)]
    while len(level) > 1:
        joined = b"".join(level)
        level = [hashlib.sha256(joined[i:i + bs].ljust(bs, b"\0")).digest()
                 for i in range(0, len(joined), bs)]
    return descriptor_digest(len(data), level[0])


# ---- raw tar pieces -------------------------------------------------------

def pax_entry(records, name=b"PaxHeaders/x"):
    body = b"".join(pax_record(b(k), b(v)) for k, v in records)
    return header(name, 0o644, octal(0, 8), octal(0, 8), octal(len(body), 12),
                  octal(0, 12), b"x", b"", 0, 0) + pad(body)


def b(s):
    return s if isinstance(s, bytes) else s.encode()


def raw_file(name, data=b"", size=None, typeflag=b"0", mode=0o644, link=b"", pax=(),
             rdev=(0, 0)):
    """A ustar entry with a raw name (bytes, <= 100) and optional PAX
    records before it; @size overrides the header's size field (the data
    written is still @data)."""
    out = pax_entry(pax) if pax else b""
    sz = len(data) if size is None else size
    sfield = octal(sz, 12) if sz < 8 ** 11 else mf.base256(sz, 12)
    out += header(b(name), mode, octal(0, 8), octal(0, 8), sfield, octal(T0, 12), typeflag,
                  b(link), rdev[0], rdev[1])
    return out + pad(data)


def layer(entries, comp="gzip"):
    """A Layer of E entries and raw byte strings, in order."""
    data = b"".join(e if isinstance(e, bytes) else e.tar() for e in entries) + END
    return Layer(data, comp)


def base_layer():
    """What the traversal and hardlink cases build on: a small /etc."""
    return [E("etc/", "d"), E("etc/passwd", "f", data=b"root:x:0:0::/root:/bin/sh\n"),
            E("etc/shadow-ish", "f", data=b"image shadow\n"), E("tmp/", "d", mode=0o1777)]


# ---- the cases --------------------------------------------------------------

class Out:
    def __init__(self, out):
        self.out = out
        self.cases = []

    def layout(self, name, layers, **kw):
        mf.oci_layout(os.path.join(self.out, name), layers, tag=name, **kw)

    def accept(self, name, layers, expect, bug="-", timeout=TIMEOUT, kind="oci", **kw):
        if layers is not None:
            self.layout(name, layers, **kw)
        mf.write_file(os.path.join(self.out, "expected", name + ".json"),
                      json.dumps(expect, sort_keys=True, indent=1).encode())
        self.cases.append(["accept", name, bug, str(timeout), kind])

    def refuse(self, name, layers, expect, bug="-", timeout=TIMEOUT, kind="oci", **kw):
        if layers is not None:
            self.layout(name, layers, **kw)
        self.cases.append(["refuse", name, bug, str(timeout), kind] + expect)


def lay(l):
    return "layer " + l.digest


def f(size=None, data=None, **kw):
    """An expectation for one path."""
    d = dict(kw)
    if data is not None:
        d["size"] = len(data)
        if len(data) <= 64:
            d["content"] = data.hex()
        else:
            d["digest"] = verity_of(data)
    elif size is not None:
        d["size"] = size
    return d


def traversal(o):
    for name, path in (("dotdot-leading", "../escape"),
                       ("dotdot-deep", "etc/x/../../../../host"),
                       ("dotdot-trailing", "etc/.."),
                       ("dotdot-only", "..")):
        l = layer(base_layer() + [E(path, "f", data=b"x")])
        o.refuse(name, [l], [lay(l), path + ": path contains '..'"])
    l = layer(base_layer() + [E("etc/up/../../x", "l", link="/etc")])
    o.refuse("dotdot-symlink-name", [l], [lay(l), "etc/up/../../x: path contains '..'"])

    # absolute paths, "./", "//": all inside the image
    ents = [E("/abs/", "d"), E("/abs/file", "f", data=b"abs\n"),
            E("//dbl///slash//f", "f", data=b"dbl\n"), E("./dot/./f", "f", data=b"dot\n"),
            E("/./mixed/.//f", "f", data=b"mixed\n"), E("trail/", "d"), E("trail/./", "d")]
    o.accept("absolute-paths", [layer(ents)], {"has": {
        "/abs/file": f(data=b"abs\n", type="f"), "/dbl/slash/f": f(data=b"dbl\n", type="f"),
        "/dot/f": f(data=b"dot\n", type="f"), "/mixed/f": f(data=b"mixed\n", type="f"),
        "/trail": {"type": "d"}}, "count": 11})

    # symlinks of a lower layer followed by later paths: they resolve inside
    # the tree, ".." stopping at its root (containerd's fs.RootPath)
    l1 = layer(base_layer() + [
        E("up", "l", link="../../../../.."),
        E("abs", "l", link="/etc"),
        E("deep/a/b/", "d"),
        E("chain2", "l", link="/deep/a/b"),
        E("chain1", "l", link="chain2/../../.."),
        E("dotlink", "l", link="."),
        E("d1/d2/", "d"),
        E("d1/d2/upup", "l", link="../../../../../../../tmp"),
        E("hostroot", "l", link="/../../../"),
    ])
    l2 = layer([
        E("up/escaped", "f", data=b"up\n"),
        E("abs/shadow-new", "f", data=b"via abs\n"),
        E("abs/passwd", "f", data=b"replaced\n"),
        E("abs/sub/new", "f", data=b"implicit parent\n"),
        E("chain1/c1", "f", data=b"c1\n"),
        E("dotlink/dl", "f", data=b"dl\n"),
        E("d1/d2/upup/t", "f", data=b"t\n"),
        E("hostroot/etc/hr", "f", data=b"hr\n"),
        E("up/up/up/etc/x", "f", data=b"x\n"),
    ])
    o.accept("symlink-escape", [l1, l2], {"has": {
        "/escaped": f(data=b"up\n", type="f"),
        "/etc/shadow-new": f(data=b"via abs\n", type="f"),
        "/etc/passwd": f(data=b"replaced\n", type="f"),
        "/etc/sub/new": f(data=b"implicit parent\n", type="f"),
        "/c1": f(data=b"c1\n", type="f"), "/dl": f(data=b"dl\n", type="f"),
        "/tmp/t": f(data=b"t\n", type="f"), "/etc/hr": f(data=b"hr\n", type="f"),
        "/etc/x": f(data=b"x\n", type="f"),
        "/up": {"type": "l", "target": "../../../../.."},
        "/abs": {"type": "l", "target": "/etc"},
        "/hostroot": {"type": "l", "target": "/../../../"}},
        "absent": ["/abs/passwd", "/up/escaped", "/chain1/c1"]})

    # a whiteout reached through a symlink removes inside the tree
    l1 = layer(base_layer() + [E("s", "l", link="/etc"), E("u", "l", link="../../..")])
    l2 = layer([E("s/.wh.passwd", "f"), E("u/etc/.wh.shadow-ish", "f")])
    o.accept("symlink-whiteout", [l1, l2], {"has": {"/s": {"type": "l"}, "/etc": {"type": "d"}},
                                            "absent": ["/etc/passwd", "/etc/shadow-ish"]})

    # a symlink to a file in a parent position
    l = layer(base_layer() + [E("s", "l", link="etc/passwd"), E("s/x", "f", data=b"x")])
    o.refuse("symlink-to-file-parent", [l], [lay(l), "s/x: ", "is not a directory"])
    # a directory replaced by a symlink in a later layer: later paths go
    # where the symlink points, the old directory's entries are gone
    l1 = layer(base_layer() + [E("d/", "d"), E("d/old", "f", data=b"old")])
    l2 = layer([E("d", "l", link="/tmp"), E("d/new", "f", data=b"new")])
    o.accept("dir-to-symlink", [l1, l2], {"has": {"/d": {"type": "l", "target": "/tmp"},
                                                  "/tmp/new": f(data=b"new", type="f")},
                                          "absent": ["/d/old", "/d/new"]})
    # exactly CFS_SYMLINK_FOLLOW_MAX symlinks in a chain, then one more
    chain = [E("real/", "d")]
    for i in range(FOLLOW_MAX + 1):
        chain.append(E("s%d" % i, "l", link="s%d" % (i + 1) if i < FOLLOW_MAX else "real"))
    # s1 needs FOLLOW_MAX follows (s1..s40), s0 one more
    l = layer(chain + [E("s1/ok", "f", data=b"ok")])
    o.accept("symlink-chain-%d" % FOLLOW_MAX, [l],
             {"has": {"/real/ok": f(data=b"ok", type="f")}})
    l = layer(chain + [E("s0/bad", "f", data=b"bad")])
    o.refuse("symlink-chain-%d" % (FOLLOW_MAX + 1), [l],
             [lay(l), "s0/bad: too many levels of symbolic links"])
    l = layer(base_layer() + [E("self", "l", link="self/.."), E("self/x", "f")])
    o.refuse("symlink-self-loop", [l], [lay(l), "self/x: too many levels of symbolic links"])


def hardlinks(o):
    def one(name, link, expect, bug="-"):
        l = layer(base_layer() + [E("h", "h", link=link)])
        o.refuse(name, [l], [lay(l)] + expect, bug=bug)
    one("hardlink-missing", "etc/nothing", ["h: hardlink to 'etc/nothing', which does not exist"])
    one("hardlink-dotdot", "../../etc/passwd", ["../../etc/passwd", "'..'"])
    one("hardlink-dir", "etc", ["h: hardlink to directory 'etc'"])
    one("hardlink-dir-slash", "etc/", ["h: hardlink to directory 'etc/'"])
    one("hardlink-root", "./", ["h: hardlink to the root"])
    one("hardlink-through-file", "etc/passwd/x", ["h: 'passwd' is not a directory"])
    # a link to a name that only comes later in the same layer
    l = layer([E("h", "h", link="later"), E("later", "f", data=b"l")])
    o.refuse("hardlink-forward", [l], [lay(l), "h: hardlink to 'later', which does not exist"])
    # a link to a name a whiteout of this layer removed just before
    l1 = layer(base_layer())
    l2 = layer([E("etc/.wh.passwd", "f"), E("h", "h", link="etc/passwd")])
    o.refuse("hardlink-whiteouted", [l1, l2],
             [lay(l2), "h: hardlink to 'etc/passwd', which does not exist"])

    # absolute targets and targets through symlinks name inodes of the
    # image; a hardlink to a symlink links the symlink itself (link(2))
    l = layer(base_layer() + [
        E("h-abs", "h", link="/etc/passwd"),
        E("s", "l", link="/etc"),
        E("h-via", "h", link="s/shadow-ish"),
        E("h-sym", "h", link="s"),
        E("self", "f", data=b"self"), E("self", "h", link="self"),
        E("up", "l", link="../.."),
        E("h-up", "h", link="up/etc/passwd"),
    ])
    pw = b"root:x:0:0::/root:/bin/sh\n"
    o.accept("hardlink-inside", [l], {"has": {
        "/h-abs": f(data=pw, type="f", nlink=3), "/etc/passwd": f(data=pw, type="f", nlink=3),
        "/h-up": f(data=pw, type="f", nlink=3),
        "/h-via": f(data=b"image shadow\n", type="f", nlink=2),
        "/h-sym": {"type": "l", "target": "/etc", "nlink": 2},
        "/self": f(data=b"self", type="f", nlink=1)}})


def whiteouts(o):
    for name, path, what in (("whiteout-empty", "etc/.wh.", ""),
                             ("whiteout-dot", "etc/.wh..", "."),
                             ("whiteout-dotdot", ".wh...", "..")):
        l1 = layer(base_layer())
        l2 = layer([E(path, "f")])
        o.refuse(name, [l1, l2], [lay(l2), "%s: whiteout of '%s'" % (path, what)])
    l1 = layer(base_layer() + [E("d/...", "f", data=b"3"), E("d/....", "f", data=b"4"),
                               E("d/keep", "f", data=b"k"), E("o/a", "f"), E("o/b", "f")])
    l2 = layer([
        E("d/.wh....", "f"), E("d/.wh.....", "f"),        # "..." and "...."
        E(".wh./x", "f", data=b"in a dir named .wh."),     # ".wh." as a directory
        E("d/.wh.sub/y", "f", data=b"y"),                  # ".wh.sub" as a directory
        E(".wh..wh.plnk/123.456", "f", data=b"aufs"),      # aufs bookkeeping: skipped
        E("d/.wh..wh.aufs", "f"),
        E(".wh.nothing", "f"),                             # nothing to remove
        E("d/.wh.keep/", "d"),                             # a whiteout as a directory entry
        E("o/.wh..wh..opq", "f"), E("o/c", "f"),           # opaque
        E("etc/.wh.passwd", "l", link="whatever"),         # a whiteout as a symlink
    ])
    o.accept("whiteout-odd", [l1, l2], {"has": {
        "/.wh./x": f(data=b"in a dir named .wh.", type="f"),
        "/d/.wh.sub/y": f(data=b"y", type="f"), "/o/c": {"type": "f"}},
        "absent": ["/d/...", "/d/....", "/d/keep", "/.wh..wh.plnk", "/d/.wh..wh.aufs",
                   "/.wh.nothing", "/nothing", "/o/a", "/o/b", "/etc/passwd",
                   "/etc/.wh.passwd"],
        "children": {"/o": 1, "/d": 1}})
    # A file named with NAME_MAX bytes can be deleted by a later layer only
    # with a whiteout of NAME_MAX + 4 bytes: what docker and buildkit write
    # and what containerd applies (it never creates the whiteout's name).
    long = "w" * NAME_MAX
    l1 = layer(base_layer() + [E("etc/" + long, "f", data=b"long")])
    l2 = layer([E("etc/.wh." + long, "f")])
    o.accept("whiteout-long-name", [l1, l2], {"has": {"/etc/passwd": {"type": "f"}},
                                              "absent": ["/etc/" + long]})


def sizes(o):
    # 1 TiB declared (PAX size), 1000 bytes there, then the stream ends
    ents = base_layer()
    data = b"".join(e.tar() for e in ents)
    data += raw_file("big/file", b"z" * 1000, size=2 ** 40, pax=[("size", str(2 ** 40))])
    l = Layer(data)
    o.refuse("huge-size-pax", [l], [lay(l), "big/file"])
    # the largest octal size (8 GiB - 1), then the stream ends
    data = b"".join(e.tar() for e in ents) + raw_file("big/octal", b"q" * 512, size=8 ** 11 - 1)
    l = Layer(data)
    o.refuse("huge-size-octal", [l], [lay(l), "big/octal"])
    # a base-256 size that is negative
    h = bytearray(raw_file("big/neg", b""))
    h[124:136] = b"\xff" * 12
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % sum(h[:BLOCK])
    base = len(b"".join(e.tar() for e in ents))
    # the offset of the header libarchive refuses (not ARCHIVE_FATAL's -30)
    at = "tar offset %d:" % base
    l = Layer(b"".join(e.tar() for e in ents) + bytes(h) + END)
    o.refuse("negative-size", [l], [lay(l), at, "negative size"])
    # A PAX header whose own size is 1 TiB, then the stream ends: nothing
    # may try to hold it.
    hx = header(b"PaxHeaders/huge", 0o644, octal(0, 8), octal(0, 8), mf.base256(2 ** 40, 12),
                 octal(0, 12), b"x", b"", 0, 0)
    l = Layer(b"".join(e.tar() for e in ents) + hx + b"27 path=aaaaaaaaaaaaaaaaaa\n")
    o.refuse("huge-pax-header", [l], [lay(l), at, "too large"])
    # A GNU long name ('L') of 8 MiB (it compresses to nothing)
    ln = b"n" * (8 * 1024 * 1024)
    lh = header(b"././@LongLink", 0o644, octal(0, 8), octal(0, 8), octal(len(ln) + 1, 12),
                octal(0, 12), b"L", b"", 0, 0, magic=b"ustar  \0") + pad(ln + b"\0")
    l = Layer(b"".join(e.tar() for e in ents) + lh + raw_file("x", b"") + END)
    o.refuse("huge-gnu-longname", [l], [lay(l), at, "too large"])
    # A sparse file (PAX 1.0) of 1 TiB with one 512-byte extent: a tiny
    # layer whose content is 1 TiB of zeros. Its holes are hashed as runs
    # and stay holes in the object: the object directory must take less
    # than 1 MiB of disk (hostile.sh, "alloc_max_kb").
    realsize = 2 ** 40
    sparse_map = b"1\n0\n512\n"
    body = pad(sparse_map) + b"s" * 512
    recs = [("GNU.sparse.major", "1"), ("GNU.sparse.minor", "0"),
            ("GNU.sparse.name", "var/log/lastlog"), ("GNU.sparse.realsize", str(realsize))]
    data = b"".join(e.tar() for e in ents)
    data += pax_entry(recs) + header(b"var/log/GNUSparseFile.0/lastlog", 0o644, octal(0, 8),
                                     octal(0, 8), octal(len(body), 12), octal(T0, 12), b"0",
                                     b"", 0, 0) + body + END
    l = Layer(data)
    o.accept("sparse-1tib", [l], {"has": {"/var/log/lastlog": {
        "type": "f", "size": realsize,
        "digest": sparse_verity(realsize, [(0, b"s" * 512)])}}, "alloc_max_kb": 1024,
        "rss": True})


def make_bomb(o, out):
    # write to a side directory first, then the layout around it
    side = os.path.join(out, ".bomb-side")
    os.makedirs(side)
    h_tar, h_blob = hashlib.sha256(), hashlib.sha256()
    z = zlib.compressobj(1, zlib.DEFLATED, 16 + 15)
    tmp = os.path.join(side, "blob")
    size = 0
    with open(tmp, "wb") as fo:
        def put(data):
            nonlocal size
            h_tar.update(data)
            c = z.compress(data)
            if c:
                h_blob.update(c)
                fo.write(c)
                size += len(c)
        put(E("zeros/", "d").tar())
        put(header(b"zeros/two-gib", 0o644, octal(0, 8), octal(0, 8), octal(BOMB_SIZE, 12),
                   octal(T0, 12), b"0", b"", 0, 0))
        chunk = bytes(1024 * 1024)
        left = BOMB_SIZE
        while left:
            n = min(left, len(chunk))
            put(chunk if n == len(chunk) else chunk[:n])
            left -= n
        put(END)
        c = z.flush()
        h_blob.update(c)
        fo.write(c)
        size += len(c)
    fake = Layer(b"", "tar")
    fake.digest = "sha256:" + h_blob.hexdigest()
    fake.diff_id = "sha256:" + h_tar.hexdigest()
    fake.media_type = mf.MT_LAYER["gzip"]
    o.layout("gzip-bomb", [fake], descs=[{"size": size}], omit={fake.digest})
    os.rename(tmp, os.path.join(out, "gzip-bomb", "blobs", "sha256", fake.digest[7:]))
    os.rmdir(side)
    o.accept("gzip-bomb", None, {"has": {"/zeros/two-gib": {
        "type": "f", "size": BOMB_SIZE, "digest": zero_verity(BOMB_SIZE)}}, "count": 3,
        "rss": True, "once": True}, timeout=600)


def entries(o):
    # 200,000 empty files in one directory
    parts = [E("wide/", "d").tar()]
    for i in range(WIDE):
        parts.append(header(b"wide/f%06d" % i, 0o644, octal(0, 8), octal(0, 8), octal(0, 12),
                            octal(T0, 12), b"0", b"", 0, 0))
    o.accept("wide-dir", [Layer(b"".join(parts) + END)],
             {"children": {"/wide": WIDE}, "count": WIDE + 2, "rss": True,
              "has": {"/wide/f000000": {"type": "f", "size": 0},
                      "/wide/f%06d" % (WIDE - 1): {"type": "f", "size": 0}}})
    # DEEP levels in one path (implicit directories), a file at the bottom
    # (the image oci2cfs wrote and its own reader refused at 1024 levels)
    deep = "a/" * DEEP
    assert len(deep) + 1 <= PATH_MAX
    o.accept("deep-%d" % DEEP, [layer([E(deep + "f", "f", data=b"bottom")])],
             {"has": {"/" + deep + "f": f(data=b"bottom", type="f")}, "maxdepth": DEEP + 1,
              "count": DEEP + 2})
    # The depth limit (the root is level 0): the deepest file and the
    # deepest directory that paths of PATH_MAX bytes name
    top = "a/" * DEPTH_MAX
    assert len(top) == PATH_MAX
    o.accept("deep-%d" % DEPTH_MAX,
             [layer([E(top[:-2] + "f", "f", data=b"bottom"), E(top, "d")])],
             {"has": {"/" + top[:-2] + "f": f(data=b"bottom", type="f"),
                      "/" + top[:-1]: {"type": "d"}},
              "maxdepth": DEPTH_MAX, "count": DEPTH_MAX + 2})
    # One level more: no path is that long, a symlink to the bottom is
    l = layer([E(top, "d"), E("s", "l", link=top[:-1]), E("s/f", "f", data=b"x")])
    o.refuse("deep-%d" % (DEPTH_MAX + 1), [l],
             [lay(l), "s/f: deeper than %d levels" % DEPTH_MAX])
    # Deeper than any path: each entry goes through a symlink to the
    # bottom of the last chain and adds 2000 more levels, 40 times (the
    # symlink budget of one path): 82,000 levels from a 400 KiB layer,
    # refused where the second chain passes the limit.
    ents = [E("b0/" + "a/" * DEEP + "f", "f", data=b"0")]
    hops = FOLLOW_MAX
    for i in range(1, hops + 1):
        # bN points to the bottom of chain N-1, relative to the root
        ents.append(E("l%d" % i, "l", link="/" + "/".join(
            ["l%d" % (i - 1)] if i > 1 else ["b0"]) + "/" + "a/" * DEEP))
        ents.append(E("l%d/" % i + "a/" * DEEP + "f", "f", data=b"%d" % i))
    l = layer(ents)
    o.refuse("deep-symlinked", [l],
             [lay(l), ": l1/a/a/a/", "...: deeper than %d levels" % DEPTH_MAX],
             timeout=DEEP_TIMEOUT)


def names(o):
    n255 = "n" * NAME_MAX
    ents = base_layer() + [E(n255, "f", data=b"255"), E("d" * NAME_MAX + "/", "d"),
                           E("d" * NAME_MAX + "/" + n255, "l", link="t" * TARGET_MAX)]
    o.accept("name-%d" % NAME_MAX, [layer(ents)], {"has": {
        "/" + n255: f(data=b"255", type="f"),
        "/" + "d" * NAME_MAX + "/" + n255: {"type": "l", "target": "t" * TARGET_MAX}}})
    n256 = "x" * (NAME_MAX + 1)
    l = layer(base_layer() + [E(n256, "f", data=b"256")])
    o.refuse("name-%d" % (NAME_MAX + 1), [l],
             [lay(l), n256 + ": name of %d bytes (limit %d)" % (NAME_MAX + 1, NAME_MAX)])
    n256 = "y" * (NAME_MAX + 1)
    l = layer(base_layer() + [E("etc/" + n256 + "/f", "f", data=b"256")])
    o.refuse("name-%d-dir" % (NAME_MAX + 1), [l],
             [lay(l), "name of %d bytes (limit %d)" % (NAME_MAX + 1, NAME_MAX)])
    l = layer(base_layer() + [E("sym", "l", link="t" * (TARGET_MAX + 1))])
    o.refuse("symlink-target-%d" % (TARGET_MAX + 1), [l],
             [lay(l), "sym: symlink target of %d bytes" % (TARGET_MAX + 1)])

    # names with control characters, backslashes, '=', non-UTF-8 bytes in
    # the ustar header and in PAX records: accepted byte for byte
    odd = [b"new\nline", b"tab\tname", b"cr\rname", b"back\\slash", b"sp ace", b"=eq=",
           b"-", b"ctl\x01\x7f", b"\xff\xfe raw", b"caf\xc3\xa9"]
    raw = b"".join(e.tar() for e in base_layer())
    for i, n in enumerate(odd):
        raw += raw_file(b"odd/" + n, b"%d" % i)
    pax_names = [b"pax-caf\xc3\xa9-" + b"p" * 100, b"pax-bad-\xff\xfe-" + b"q" * 100]
    for i, n in enumerate(pax_names):
        raw += raw_file(b"odd/pax%d" % i, b"p%d" % i, pax=[(b"path", b"odd/" + n)])
    want = {}
    for i, n in enumerate(odd):
        want[esc_path(b"/odd/" + n)] = f(data=b"%d" % i, type="f")
    for i, n in enumerate(pax_names):
        want[esc_path(b"/odd/" + n)] = f(data=b"p%d" % i, type="f")
    o.accept("odd-names", [Layer(raw + END)], {"has": want,
                                                "children": {"/odd": len(odd) + len(pax_names)}})
    # an empty name
    l = Layer(b"".join(e.tar() for e in base_layer()) + raw_file(b"", b"e") + END)
    o.refuse("empty-name", [l], [lay(l)])
    # A NUL inside a PAX path or linkpath: the name must not silently
    # become "etc/passwd" while tools that read the whole record see
    # "etc/passwd\0.txt" (Go's archive/tar, so containerd, refuses it).
    # libarchive cuts the value at the NUL; the layer stream refuses the
    # entry, at the offset of its PAX header, before libarchive's name is
    # used.
    for name, pax in (("pax-path-nul", (b"path", b"etc/passwd\0.txt")),
                      ("pax-linkpath-nul", (b"linkpath", b"/etc/passwd\0.txt"))):
        base = b"".join(e.tar() for e in base_layer())
        l = Layer(base + raw_file(b"x", b"" if "link" in name else b"n", pax=[pax],
                                  typeflag=b"2" if "link" in name else b"0") + END)
        o.refuse(name, [l], [lay(l), "tar offset %d: " % len(base), "NUL",
                             "x: " if "link" in name else "etc/passwd: "])
    # the root as something else than a directory
    l = layer(base_layer() + [E("./", "f", data=b"r")])
    o.refuse("root-file-slash", [l], [lay(l), "tar offset"])
    for name, e in (("root-file", E(".", "f", data=b"r")),
                    ("root-symlink", E(".", "l", link="/etc")),
                    ("root-hardlink", E("/", "h", link="etc/passwd"))):
        l = layer(base_layer() + [e])
        o.refuse(name, [l], [lay(l), "the root must be a directory"])


def typeflags(o):
    """Typeflags libarchive would read as regular files: refused, as Go's
    archive/tar users (containerd, containers/storage) refuse them, except
    '7' (contiguous) and '\\0' (pre-POSIX), which are regular files."""
    base = b"".join(e.tar() for e in base_layer())
    for flag, name in ((b"Z", "Z"), (b"D", "D"), (b"M", "M"), (b"N", "N"), (b"\x01", "x01")):
        l = Layer(base + raw_file(b"odd/f", b"data of an odd entry", typeflag=flag) + END)
        shown = "'%s'" % name if len(name) == 1 else "\\" + name
        o.refuse("typeflag-" + name, [l],
                 [lay(l), "tar offset %d: " % len(base),
                  "odd/f: unsupported tar entry type " + shown])
    # the same behind a PAX header: refused at the PAX header's offset
    l = Layer(base + raw_file(b"odd/f", b"z", typeflag=b"Z", pax=[(b"path", b"odd/pax-z")]) + END)
    o.refuse("typeflag-Z-pax", [l], [lay(l), "tar offset %d: " % len(base),
                                     "odd/pax-z: unsupported tar entry type 'Z'"])
    # a GNU volume label: no layer holds one
    label = header(b"label", 0o644, octal(0, 8), octal(0, 8), octal(0, 12), octal(T0, 12),
                   b"V", b"", 0, 0, magic=b"ustar  \0")
    l = Layer(base + label + raw_file(b"after-label", b"a") + END)
    o.refuse("typeflag-V", [l], [lay(l), "tar offset %d: a GNU volume header" % len(base)])
    l = Layer(base + raw_file(b"odd/contig", b"contiguous", typeflag=b"7")
              + raw_file(b"odd/v7", b"pre-posix", typeflag=b"\0") + END)
    o.accept("typeflag-7", [l], {"has": {"/odd/contig": f(data=b"contiguous", type="f"),
                                         "/odd/v7": f(data=b"pre-posix", type="f")}})


def esc_path(p):
    """A path as the expectations write it: the dump's escaping."""
    out = ""
    for c in p:
        if c == 0x5C:
            out += "\\\\"
        elif c == 0x0A:
            out += "\\n"
        elif c == 0x0D:
            out += "\\r"
        elif c == 0x09:
            out += "\\t"
        elif 0x21 <= c <= 0x7E:
            out += chr(c)
        else:
            out += "\\x%02x" % c
    return out


def xattrs(o):
    # the largest single value: the inode's xattr area holds
    # CFS_XATTRS_INODE_MAX bytes of 4-byte aligned entries (4-byte header,
    # the name without its "user." prefix, the value)
    vmax = (XATTRS_INODE_MAX // 4) * 4 - 4 - 1
    small = E("x/small", "f", data=b"s", xattrs=[("user.v", b"v" * vmax)])
    big = E("x/big", "f", data=mf.pattern("big", 5000), xattrs=[("user.v", b"w" * vmax)])
    many = E("x/many", "f", data=b"m",
             xattrs=[("user.%04d" % i, b"") for i in range(3000)])
    o.accept("xattr-max", [layer(base_layer() + [small])],
             {"has": {"/x/small": {"type": "f", "xattrs": {"user.v": "v" * vmax}}}})
    o.accept("xattr-max-object", [layer(base_layer() + [big])],
             {"has": {"/x/big": {"type": "f", "size": 5000, "xattrs": {"user.v": "w" * vmax}}}})
    o.accept("xattrs-3000", [layer(base_layer() + [many])],
             {"has": {"/x/many": {"type": "f", "nxattrs": 3000}}})
    l = layer(base_layer() + [E("x/over", "f", data=b"o",
                                xattrs=[("user.v", b"o" * (vmax + 1))])])
    o.refuse("xattr-over-inode", [l],
             [lay(l), "x/over: xattr user.v: more than %d bytes of xattrs" % XATTRS_INODE_MAX])
    l = layer(base_layer() + [E("x/n", "f", data=b"o",
                                xattrs=[("user.%05d" % i, b"") for i in range(XATTRS_ENTRY_MAX + 1)])])
    o.refuse("xattrs-%d" % (XATTRS_ENTRY_MAX + 1), [l],
             [lay(l), "x/n: more than %d xattrs" % XATTRS_ENTRY_MAX])
    l = layer(base_layer() + [E("x/long", "f", data=b"o",
                                xattrs=[("user." + "k" * (NAME_MAX - 4), b"")])])
    o.refuse("xattr-name-%d" % (NAME_MAX + 1), [l],
             [lay(l), "x/long", "xattr name of %d bytes" % (NAME_MAX + 1)])
    # overlayfs' own xattrs in a layer: image content, escaped by the
    # writer, never acted on by the mount (they would redirect the file to
    # another object, or hide a directory's lower entries)
    ov = E("x/ov", "f", data=b"ov", xattrs=[
        ("trusted.overlay.redirect", b"/etc/shadow"), ("trusted.overlay.metacopy", b""),
        ("trusted.overlay.whiteout", b""), ("user.overlay.redirect", b"/x")])
    ovd = E("x/ovd/", "d", xattrs=[("trusted.overlay.opaque", b"y")])
    o.accept("xattr-overlay", [layer(base_layer() + [ov, ovd])], {"has": {
        "/x/ov": {"type": "f", "xattrs": {"trusted.overlay.redirect": "/etc/shadow",
                                          "trusted.overlay.metacopy": "",
                                          "trusted.overlay.whiteout": "",
                                          "user.overlay.redirect": "/x"}},
        "/x/ovd": {"type": "d", "xattrs": {"trusted.overlay.opaque": "y"}}},
        # on disk they are escaped: trusted.overlay.X is stored as
        # trusted.overlay.overlay.X (name index "trusted.", then the rest)
        "image_bytes": ["overlay.overlay.redirect/etc/shadow", "overlay.overlay.metacopy",
                        "overlay.overlay.whiteout", "overlay.overlay.opaquey"]})


def ids(o):
    top = 2 ** 32 - 1
    ents = base_layer() + [E("id/max", "f", data=b"m", uid=top, gid=top),
                           E("id/b256", "f", data=b"b", uid=top, gid=top, b256=("uid", "gid"))]
    o.accept("uid-max", [layer(ents)], {"has": {
        "/id/max": {"type": "f", "uid": top, "gid": top},
        "/id/b256": {"type": "f", "uid": top, "gid": top}}})
    for name, kw, want in (("uid-2^32", dict(uid=2 ** 32), "4294967296/0"),
                           ("gid-2^32", dict(gid=2 ** 32), "0/4294967296"),
                           ("uid-2^63", dict(uid=2 ** 63 - 1), "9223372036854775807/0")):
        l = layer(base_layer() + [E("id/x", "f", data=b"x", **kw)])
        o.refuse(name, [l], [lay(l), "id/x: uid/gid %s out of range" % want])
    # major 12 bits, minor 20 bits: what the composefs (EROFS) inode keeps
    ents = base_layer() + [E("dev/max", "c", rdev=(4095, 2 ** 20 - 1)),
                           E("dev/bmax", "b", rdev=(4095, 2 ** 20 - 1)),
                           E("dev/zero", "c", rdev=(0, 0), mode=0o600)]
    o.accept("rdev-max", [layer(ents)], {"has": {
        "/dev/max": {"type": "c", "rdev": [4095, 2 ** 20 - 1]},
        "/dev/bmax": {"type": "b", "rdev": [4095, 2 ** 20 - 1]}}})
    for name, rdev in (("rdev-minor-2^20", (0, 2 ** 20)),
                       ("rdev-octal-max", (8 ** 7 - 1, 8 ** 7 - 1))):
        l = layer(base_layer() + [E("dev/bad", "c", rdev=rdev)])
        o.refuse(name, [l], ["dev/bad", "%d:%d" % rdev])
    # mtimes at the edges of what a PAX record can say
    ents = base_layer() + [E("t/big", "f", data=b"b", mtime="99999999999999999999.5"),
                           E("t/neg", "f", data=b"n", mtime="-99999999999999999999")]
    # (libarchive clamps them to +-(2^63 - 1) seconds; Go's archive/tar,
    # and so containerd, would refuse the layer)
    o.accept("mtime-extreme", [layer(ents)], {"has": {"/t/big": {"type": "f"},
                                                      "/t/neg": {"type": "f"}}})


def nested(n, opening=b"[", closing=b"]"):
    return opening * n + closing * n


def documents(o):
    good = layer(base_layer())
    # nesting far beyond CFS_JSON_DEPTH_MAX in the config, the manifest
    # and index.json (which no digest protects)
    cfg = canonical_json(config_for([good]))
    deep = cfg[:-1] + b',"x":' + nested(100000) + b"}"
    o.refuse("json-config-deep-arrays", [good],
             ["config " + sha256(deep), "invalid JSON at byte", "nesting too deep"], config_raw=deep)
    objs = b'{"a":' * 100000 + b"1" + b"}" * 100000
    o.refuse("json-config-deep-objects", [good],
             ["config " + sha256(objs), "nesting too deep"], config_raw=objs)
    man = b'{"schemaVersion":2,"x":' + nested(100000, b'{"y":', b"}").replace(b'{"y":}', b'{"y":0}') + b"}"
    o.refuse("json-manifest-deep", [good], ["manifest " + sha256(man), "nesting too deep"],
             manifest_raw=man)
    o.layout("json-index-deep", [good])
    with open(os.path.join(o.out, "json-index-deep", "index.json"), "wb") as fo:
        fo.write(b'{"schemaVersion":2,"manifests":' + nested(100000) + b"}")
    o.refuse("json-index-deep", None, ["index.json", "nesting too deep"])
    many = cfg[:-1] + b',"x":[' + b",".join([b"[]"] * (JSON_CONTAINERS_MAX + 1)) + b"]}"
    o.refuse("json-many-containers", [good],
             ["config " + sha256(many), "more than %d JSON objects and arrays" % JSON_CONTAINERS_MAX],
             config_raw=many)
    for name, raw in (("json-truncated", cfg[:-3]), ("json-bom", b"\xef\xbb\xbf" + cfg),
                      ("json-trailing", cfg + b"{}"), ("json-nul", cfg[:-1] + b',"\0":1}')):
        o.refuse(name, [good], ["config " + sha256(raw), "invalid JSON at byte"], config_raw=raw)
    # numbers: sizes that do not fit, are negative or are not integers
    for name, size in (("size-negative", -1), ("size-2^64", 2 ** 64), ("size-float", 1.5),
                       ("size-1e400", "1e400")):
        man = canonical_json({
            "schemaVersion": 2, "mediaType": mf.MT_MANIFEST,
            "config": {"mediaType": mf.MT_CONFIG, "digest": sha256(canonical_json(config_for([good]))),
                       "size": len(canonical_json(config_for([good])))},
            "layers": [{"mediaType": good.media_type, "digest": good.digest, "size": "@SIZE@"}]})
        man = man.replace(b'"@SIZE@"', str(size).encode())
        o.refuse(name, [good], ["manifest " + sha256(man),
                                "layers[0].size is negative" if size == -1 else "layers[0].size"],
                 manifest_raw=man)
    # digests that are paths: never used to open a file outside blobs/
    for name, dg in (("digest-traversal", "sha256:../../../../../../etc/passwd"),
                     ("digest-slash", "sha256:" + "a" * 32 + "/" + "a" * 31),
                     ("digest-upper", good.digest.upper().replace("SHA256", "sha256")),
                     ("digest-short", good.digest[:-1]),
                     ("digest-algo", "sha512:" + "a" * 128),
                     ("digest-algo-traversal", "../../..:" + "a" * 64)):
        o.refuse(name, [good], ["layer", dg[:60] if "/" not in dg else "digest"],
                 descs=[{"digest": dg}])
    # an index that names itself: nesting until the limit
    o.layout("index-nesting", [good])
    p = os.path.join(o.out, "index-nesting")
    # a chain of INDEX_DEPTH_MAX + 1 nested indexes ending in the image
    with open(os.path.join(p, "index.json"), "rb") as fi:
        top = json.load(fi)
    desc = top["manifests"][0]
    for i in range(INDEX_DEPTH_MAX + 1):
        idx = canonical_json({"schemaVersion": 2, "mediaType": mf.MT_INDEX, "manifests": [desc]})
        mf.write_file(os.path.join(p, "blobs", "sha256", sha256(idx)[7:]), idx)
        desc = {"mediaType": mf.MT_INDEX, "digest": sha256(idx), "size": len(idx)}
    top["manifests"] = [dict(desc, annotations={mf.REF_ANNOTATION: "index-nesting"})]
    mf.write_file(os.path.join(p, "index.json"), canonical_json(top))
    o.refuse("index-nesting", None, ["image indexes nested more than %d" % INDEX_DEPTH_MAX])
    # more layers than allowed (the same empty layer)
    empty = Layer(b"", "tar")
    o.refuse("too-many-layers", [empty] * (LAYERS_MAX + 1),
             ["%d layers" % (LAYERS_MAX + 1)])
    # blobs that are not what they claim
    junk = Layer(b"", "tar", blob=b"this is not a tar archive at all " * 100)
    junk.diff_id = sha256(junk.blob)
    o.refuse("layer-not-tar", [junk], [lay(junk)])
    # an empty blob declared gzip
    eg = Layer(b"", "gzip", blob=b"")
    o.refuse("layer-empty-gzip", [eg], [lay(eg), "truncated gzip stream"])
    # a zstd frame that asks for a 2 GiB window (without a content size,
    # zstd cannot shrink the window to the input)
    tar = tar_of(base_layer())
    zw = subprocess.run(["zstd", "-q", "-c", "--long=31", "--single-thread", "--no-progress",
                         "--no-content-size"], input=tar, stdout=subprocess.PIPE,
                        check=True).stdout
    zwl = Layer(tar, "zstd", blob=zw)
    o.refuse("zstd-window-2g", [zwl], [lay(zwl), "Frame requires too much memory"])
    # layers of nothing: an empty tar blob and a gzip of nothing are empty
    # layers (docker writes them for metadata-only steps)
    o.accept("empty-layers", [Layer(b"", "tar"), Layer(b"", "gzip"), layer(base_layer())],
             {"has": {"/etc/passwd": {"type": "f"}}})


def ambiguous(o):
    """index.json naming two images for one platform under two tags,
    converted without REF: an error listing the tags, never the first
    image taken silently (the same in an oci-archive)."""
    a, b2 = layer(base_layer()), layer(base_layer() + [E("only-in-b", "f", data=b"b")])
    name = "index-two-tags"
    path = os.path.join(o.out, name)
    mf.oci_layout(path, [a], tag="a")
    # the second image: its blobs beside the first one's
    cfg = canonical_json(config_for([b2]))
    man = canonical_json({
        "schemaVersion": 2, "mediaType": mf.MT_MANIFEST,
        "config": {"mediaType": mf.MT_CONFIG, "digest": sha256(cfg), "size": len(cfg)},
        "layers": [{"mediaType": b2.media_type, "digest": b2.digest, "size": len(b2.blob)}]})
    for data in (b2.blob, cfg, man):
        mf.write_file(os.path.join(path, "blobs", "sha256", sha256(data)[7:]), data)
    with open(os.path.join(path, "index.json"), "rb") as fi:
        index = json.load(fi)
    plat = {"architecture": "amd64", "os": "linux"}
    index["manifests"][0]["platform"] = plat
    index["manifests"].append({"mediaType": mf.MT_MANIFEST, "digest": sha256(man),
                               "size": len(man), "platform": plat,
                               "annotations": {mf.REF_ANNOTATION: "b"}})
    mf.write_file(os.path.join(path, "index.json"), canonical_json(index))
    o.refuse(name, None, ["index.json lists 2 images", "choose one with oci:PATH:REF",
                          "tags: a, b"])
    mf.oci_archive(os.path.join(o.out, name + "-archive.tar"), path)
    o.refuse(name + "-archive", None, ["index.json lists 2 images",
                                       "choose one with oci-archive:FILE:REF", "tags: a, b"],
             kind="oci-archive")


def archives(o):
    """Hostile oci-archive and docker-archive files: members are looked
    up in the archive only, symlinks between members are followed inside
    it and at most OCI_SYMLINK_MAX times."""
    good = layer(base_layer())
    cfg = canonical_json(config_for([good]))
    cfgname = "%s.json" % sha256(cfg)[7:]

    def docker(name, layer_names, extra, expect, bug="-"):
        manifest = [{"Config": cfgname, "RepoTags": ["hostile/%s:latest" % name],
                     "Layers": layer_names}]
        members = [("manifest.json", canonical_json(manifest)), (cfgname, cfg)] + extra
        mf.write_file(os.path.join(o.out, name + ".tar"), mf.archive_of(members))
        o.refuse(name, None, expect, bug=bug, kind="docker-archive")

    hexid = good.diff_id[7:]
    docker("docker-layer-traversal", ["../../../../../../etc/passwd"], [],
           ["../../../../../../etc/passwd"])
    docker("docker-layer-absolute", ["/etc/passwd"], [], ["/etc/passwd"])
    docker("docker-symlink-outside", ["%s/layer.tar" % hexid],
           [(hexid + "/", None), ("%s/layer.tar" % hexid, ("l", "../../../../../etc/passwd"))],
           ["%s/layer.tar" % hexid])
    docker("docker-symlink-absolute", ["%s/layer.tar" % hexid],
           [(hexid + "/", None), ("%s/layer.tar" % hexid, ("l", "/etc/passwd"))],
           ["%s/layer.tar" % hexid])
    docker("docker-symlink-loop", ["a.tar"], [("a.tar", ("l", "b.tar")), ("b.tar", ("l", "a.tar"))],
           ["a.tar"])
    # an oci-archive whose blob is a symlink out of the archive
    tmp = os.path.join(o.out, ".oci-archive")
    mf.oci_layout(tmp, [good], tag="latest")
    members = []
    for top, dirs, files in os.walk(tmp):
        dirs.sort()
        rel = os.path.relpath(top, tmp)
        if rel != ".":
            members.append((rel + "/", None))
        for fn in sorted(files):
            rp = os.path.normpath(os.path.join(rel, fn))
            if rp == "blobs/sha256/" + good.digest[7:]:
                members.append((rp, ("l", "../../../../../../../etc/hostname")))
            else:
                with open(os.path.join(top, fn), "rb") as fi:
                    members.append((rp, fi.read()))
    shutil.rmtree(tmp)
    mf.write_file(os.path.join(o.out, "ociarchive-symlink-outside.tar"), mf.archive_of(members))
    o.refuse("ociarchive-symlink-outside", None, [good.digest], kind="oci-archive")


# ---- check ------------------------------------------------------------------

def unescape(s):
    out = bytearray()
    i = 0
    while i < len(s):
        c = s[i]
        if c != "\\":
            out += c.encode()
            i += 1
            continue
        n = s[i + 1]
        if n == "x":
            out.append(int(s[i + 2:i + 4], 16))
            i += 4
            continue
        out += {"\\": b"\\", "n": b"\n", "r": b"\r", "t": b"\t"}[n]
        i += 2
    return bytes(out)


def parse_dump(path):
    """{path bytes: dict} of a composefs-dump(5) file."""
    entries = {}
    with open(path, "rb") as fi:
        for line in fi:
            line = line.rstrip(b"\n").decode("latin-1")
            fields = line.split(" ")
            p = unescape(fields[0])
            size, mode, nlink, uid, gid, rdev, mtime, payload, content, digest = fields[1:11]
            xattrs = {}
            for x in fields[11:]:
                k, _, v = x.partition("=")
                xattrs[unescape(k).decode("latin-1")] = unescape(v)
            if mode.startswith("@"):
                mode = mode[1:]
            m = int(mode, 8)
            typ = {0o100000: "f", 0o040000: "d", 0o120000: "l", 0o020000: "c", 0o060000: "b",
                   0o010000: "p"}.get(m & 0o170000, "?")
            entries[p] = {"size": int(size), "mode": m, "type": typ, "nlink": int(nlink),
                          "uid": int(uid), "gid": int(gid), "rdev": int(rdev),
                          "payload": unescape(payload) if payload != "-" else None,
                          "content": unescape(content) if content != "-" else None,
                          "digest": digest if digest != "-" else None, "xattrs": xattrs}
    return entries


def check(expect_path, dump_path, objects=None):
    with open(expect_path) as fi:
        want = json.load(fi)
    got = parse_dump(dump_path)
    errs = []
    if objects:
        for p, g in sorted(got.items()):
            if g["digest"] and g["type"] == "f":
                obj = os.path.join(objects, g["digest"][:2], g["digest"][2:])
                if not os.path.isfile(obj) or os.path.getsize(obj) != g["size"]:
                    errs.append("%r: object %s missing or of another size"
                                % (p[:120], g["digest"]))
    for p, w in sorted(want.get("has", {}).items()):
        key = unescape(p)
        g = got.get(key)
        if g is None:
            errs.append("%s: missing" % p[:120])
            continue
        for k, v in sorted(w.items()):
            if k == "target":
                ok = g["payload"] == v.encode()
                gv = g["payload"]
            elif k == "content":
                ok = (g["content"] or b"") == bytes.fromhex(v)
                gv = g["content"]
            elif k == "digest":
                ok = g["digest"] == v
                gv = g["digest"]
            elif k == "rdev":
                major, minor = v
                dev = ((major & 0xfff) << 8) | (minor & 0xff) | ((minor & ~0xff) << 12)
                glibc = ((major & 0xfff) << 8) | ((major & ~0xfff) << 32) | \
                    (minor & 0xff) | ((minor & ~0xff) << 12)
                ok = g["rdev"] in (dev, glibc)
                gv = g["rdev"]
            elif k == "xattrs":
                gx = {n: val for n, val in g["xattrs"].items()}
                ok = all(gx.get(n) == val.encode() for n, val in v.items())
                gv = {n: val[:20] for n, val in gx.items()}
            elif k == "nxattrs":
                ok = len(g["xattrs"]) == v
                gv = len(g["xattrs"])
            else:
                ok = g[k] == v
                gv = g[k]
            if not ok:
                errs.append("%s: %s is %r, expected %r" % (p[:120], k, str(gv)[:80], str(v)[:80]))
    for p in want.get("absent", []):
        if unescape(p) in got:
            errs.append("%s: present, expected absent" % p[:120])
    if "count" in want and len(got) != want["count"]:
        errs.append("%d entries, expected %d" % (len(got), want["count"]))
    for d, n in sorted(want.get("children", {}).items()):
        prefix = unescape(d).rstrip(b"/") + b"/"
        k = sum(1 for p in got if p.startswith(prefix) and b"/" not in p[len(prefix):])
        if k != n:
            errs.append("%s: %d entries, expected %d" % (d, k, n))
    if "maxdepth" in want:
        depth = max(p.count(b"/") for p in got if p != b"/")
        if depth != want["maxdepth"]:
            errs.append("depth %d, expected %d" % (depth, want["maxdepth"]))
    for e in errs:
        print(e)
    return 1 if errs else 0


def main():
    args = sys.argv[1:]
    if len(args) in (3, 4) and args[0] == "check":
        sys.exit(check(*args[1:]))
    if len(args) == 2 and args[0] == "verity":
        print(file_verity(args[1]))
        return
    no_bomb = "--no-bomb" in args
    args = [a for a in args if a != "--no-bomb"]
    if len(args) != 1 or args[0].startswith("-"):
        sys.exit(__doc__.split("\n\n")[1])
    out = args[0]
    if os.path.exists(out) and os.listdir(out):
        sys.exit("make-hostile: %s exists and is not empty" % out)
    if not shutil.which("zstd"):
        sys.exit("make-hostile: 'zstd' is needed (scripts/install-deps.sh installs it)")
    os.makedirs(os.path.join(out, "expected"), exist_ok=True)
    o = Out(out)
    traversal(o)
    hardlinks(o)
    whiteouts(o)
    sizes(o)
    entries(o)
    names(o)
    typeflags(o)
    xattrs(o)
    ids(o)
    documents(o)
    ambiguous(o)
    archives(o)
    if not no_bomb:
        make_bomb(o, out)
    o.cases.sort(key=lambda c: c[1])
    mf.write_file(os.path.join(out, "cases.tsv"),
                  "".join("\t".join(c) + "\n" for c in o.cases).encode())


if __name__ == "__main__":
    main()
