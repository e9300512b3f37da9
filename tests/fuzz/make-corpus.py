#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
"""Write the seed corpora of the fuzz targets.

Usage: make-corpus.py BUILD_DIR OUT_DIR [CORPUS_DIR]

BUILD_DIR is a normal build (bin/oci2cfs, tests/fuzz-replay-oci-json);
OUT_DIR gets one directory per target (tests/fuzz/corpus/ is what it was
run with); CORPUS_DIR is the Debian image corpus (default
/work/corpus/out, skipped if missing). Seeds come from:

  - the OCI fixtures (tests/oci/make-fixtures.py, good and should-fail)
    and the corpus images: every JSON document (index.json, manifests,
    nested indexes, configs, oci-layout, docker manifest.json), small
    archives whole, and every layer as tar: whole when small, else its
    first and last entries cut at entry boundaries;
  - the harness' own valid image (fuzz-oci-json with CFS_FUZZ_SEED_DIR);
  - composefs images and their dumps, made by oci2cfs from the small
    fixtures and from examples/hello-rootfs;
  - the option strings of tests/unit/test-mount-options.c;
  - layer records (without their trailing checksum, which the harness
    adds), made by cfs-store imports of the good fixtures and edge-cases;
  - zstd:chunked TOCs and tar-splits of the fixtures' layers, written
    here as containers/storage writes them (the offsets are made up: the
    harness reads no blob).

Seed names say where they come from. Files named crash-* in OUT_DIR are
never touched. Needs python3, GNU tar and zstd (for the fixtures).
"""
import base64
import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.normpath(os.path.join(HERE, "..", ".."))
SEED_MAX = 64 * 1024  # larger inputs only slow the fuzzer down
EDGE_ENTRIES = 24  # entries kept from each end of a big layer

# fuzz-oci-json's first byte (see tests/fuzz/oci-json.c)
M_INDEX_JSON, M_BLOB, M_CONFIG, M_DOCKER_MANIFEST = 0, 1, 2, 3
M_DOCKER_CONFIG, M_OCI_LAYOUT, M_OCI_ARCHIVE, M_DOCKER_ARCHIVE = 4, 5, 6, 7
PACKED = 8


class Out:
    def __init__(self, root, target):
        self.dir = os.path.join(root, target)
        os.makedirs(self.dir, exist_ok=True)
        self.seen = set()
        for name in os.listdir(self.dir):
            with open(os.path.join(self.dir, name), "rb") as f:
                self.seen.add(hashlib.sha256(f.read()).digest())

    def add(self, name, data):
        if len(data) > SEED_MAX:
            return
        h = hashlib.sha256(data).digest()
        if h in self.seen:
            return
        self.seen.add(h)
        name = re.sub(r"[^A-Za-z0-9._+-]", "_", name)[:120]
        path = os.path.join(self.dir, name)
        if os.path.exists(path):
            path += "-" + h.hex()[:8]
        with open(path, "wb") as f:
            f.write(data)


def decompress(data):
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    if data[:4] == b"\x28\xb5\x2f\xfd":
        return subprocess.run(["zstd", "-dc"], input=data, check=True,
                              stdout=subprocess.PIPE).stdout
    return data


def member_bounds(tar):
    """(start, end) byte ranges of each member, headers included."""
    bounds = []
    try:
        with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as t:
            for m in t:
                end = m.offset_data + ((m.size + 511) // 512) * 512
                if m.issparse() and hasattr(m, "sparse") and m.sparse:
                    end = t.offset
                bounds.append((m.offset, end))
    except (tarfile.TarError, EOFError, OSError):
        pass
    return bounds


def layer_seeds(out, name, tar):
    """The layer whole if small, else its first and last entries."""
    zeros = b"\0" * 1024
    if len(tar) <= SEED_MAX:
        out.add("%s" % name, b"\0" + tar)
        return
    b = member_bounds(tar)
    # Where Python's tarfile gave up (a should-fail fixture's bad entry
    # after a good base): the rest from there, as is.
    stop = b[-1][1] if b else 0
    if len(tar) - stop > 1024 and tar[stop:].strip(b"\0"):
        out.add("%s-rest" % name, b"\0" + tar[stop:stop + SEED_MAX - 1])
    if not b:
        return
    for n in (EDGE_ENTRIES, 8, 2, 1):
        head = tar[:b[min(n, len(b)) - 1][1]] + zeros
        if len(head) <= SEED_MAX:
            out.add("%s-head%d" % (name, n), b"\0" + head)
            break
    for n in (EDGE_ENTRIES, 8, 2, 1):
        tail = tar[b[max(len(b) - n, 0)][0]:]
        if len(tail) <= SEED_MAX:
            out.add("%s-tail%d" % (name, n), b"\0" + tail)
            break


TOC_TYPES = {tarfile.REGTYPE: "reg", tarfile.AREGTYPE: "reg",
             tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink",
             tarfile.LNKTYPE: "hardlink", tarfile.CHRTYPE: "char",
             tarfile.BLKTYPE: "block", tarfile.FIFOTYPE: "fifo"}


def rfc3339(t):
    """A time as Go's time.Time marshals it (RFC 3339, nanoseconds)."""
    sec = int(t // 1)
    ns = int(round((t - sec) * 1e9))
    s = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    return s + (".%09d" % ns).rstrip("0") + "Z" if ns else s + "Z"


def toc_seed(out, name, tar):
    """The TOC, a NUL and the tar-split of the layer @tar."""
    entries, lines, pos, at = [], [], 0, 0
    try:
        with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as t:
            for m in t:
                if m.type not in TOC_TYPES or m.issparse():
                    return
                e = {"type": TOC_TYPES[m.type], "name": m.name,
                     "mode": m.mode & 0o7777, "uid": m.uid, "gid": m.gid,
                     "modtime": rfc3339(m.mtime)}
                if m.linkname:
                    e["linkName"] = m.linkname
                if m.type in (tarfile.CHRTYPE, tarfile.BLKTYPE):
                    e["devMajor"], e["devMinor"] = m.devmajor, m.devminor
                x = {k[13:]: base64.b64encode(
                        v.encode("utf-8", "surrogateescape")).decode()
                     for k, v in m.pax_headers.items()
                     if k.startswith("SCHILY.xattr.")}
                if x:
                    e["xattrs"] = x
                lines.append({"type": 2, "payload": base64.b64encode(
                    tar[pos:m.offset_data]).decode()})
                size = m.size if m.isreg() else 0
                lines.append({"type": 1, "name": m.name, "size": size})
                if size:
                    data = tar[m.offset_data:m.offset_data + size]
                    e["size"] = size
                    e["digest"] = "sha256:" + hashlib.sha256(data).hexdigest()
                    e["offset"], e["endOffset"] = at, at + size // 3 + 9
                    at = e["endOffset"] + 7
                entries.append(e)
                pos = m.offset_data + size
    except (tarfile.TarError, EOFError, OSError, ValueError):
        return
    lines.append({"type": 2, "payload": base64.b64encode(tar[pos:]).decode()})
    doc = json.dumps({"version": 1, "entries": entries or None},
                     separators=(",", ":"))
    data = (doc + "\0" + "".join(json.dumps(li, separators=(",", ":")) + "\n"
                                  for li in lines)).encode()
    if len(data) <= SEED_MAX:
        out.add(name, data)
    else:
        out.add(name + "-toc", doc.encode()[:SEED_MAX])


def blob_kind(data):
    try:
        doc = json.loads(data)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    if "manifests" in doc:
        return "index"
    if "layers" in doc:
        return "manifest"
    if "rootfs" in doc:
        return "config"
    return None


def layout_seeds(oj, tl, name, path, toc=None):
    for doc, mode in (("index.json", M_INDEX_JSON),
                      ("oci-layout", M_OCI_LAYOUT)):
        p = os.path.join(path, doc)
        if os.path.isfile(p) and os.path.getsize(p) <= SEED_MAX:
            with open(p, "rb") as f:
                data = f.read()
            oj.add("%s-%s" % (name, doc), bytes([mode]) + data)
    blobs = os.path.join(path, "blobs", "sha256")
    if not os.path.isdir(blobs):
        return
    for b in sorted(os.listdir(blobs)):
        p = os.path.join(blobs, b)
        size = os.path.getsize(p)
        with open(p, "rb") as f:
            head = f.read(min(size, 8 << 20) if size <= SEED_MAX else 4)
        kind = blob_kind(head) if size <= SEED_MAX else None
        if kind in ("index", "manifest"):
            oj.add("%s-%s-%s" % (name, kind, b[:8]), bytes([M_BLOB]) + head)
        elif kind == "config":
            oj.add("%s-config-%s" % (name, b[:8]),
                   bytes([M_CONFIG]) + head)
        elif head.lstrip()[:1] in (b"{", b"["):
            # broken JSON (should-fail-manifest-json)
            oj.add("%s-json-%s" % (name, b[:8]), bytes([M_BLOB]) + head)
        else:
            tar = decompress_file(p)
            layer_seeds(tl, "%s-layer-%s" % (name, b[:8]), tar)
            if toc:
                toc_seed(toc, "%s-layer-%s" % (name, b[:8]), tar)


def decompress_file(path):
    """The layer's tar; for big compressed layers only what the seeds
    need (the first SEED_MAX*16 bytes and the end) is kept."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return decompress(data)
    except Exception:
        return data


def archive_seeds(oj, tl, name, path):
    size = os.path.getsize(path)
    data = b""
    if size <= SEED_MAX:
        with open(path, "rb") as f:
            data = f.read()
    docker = False
    with tarfile.open(path, mode="r:") as t:
        names = t.getnames()
        docker = "manifest.json" in names
        if docker:
            m = t.extractfile("manifest.json").read()
            oj.add("%s-manifest.json" % name, bytes([M_DOCKER_MANIFEST]) + m)
            try:
                for e in json.loads(m):
                    c = t.extractfile(e["Config"]).read()
                    oj.add("%s-docker-config" % name,
                           bytes([M_DOCKER_CONFIG]) + c)
            except (KeyError, ValueError, TypeError):
                pass
        for mem in t.getmembers():
            if not mem.isfile() or mem.size > (64 << 20) or \
                    (size > (8 << 20) and mem.size > SEED_MAX):
                continue
            d = t.extractfile(mem).read()
            kind = blob_kind(d) if len(d) <= SEED_MAX else None
            if kind in ("index", "manifest"):
                oj.add("%s-%s" % (name, kind), bytes([M_BLOB]) + d)
            elif kind == "config" and not docker:
                oj.add("%s-config" % name, bytes([M_CONFIG]) + d)
            elif mem.name.endswith("index.json"):
                oj.add("%s-index.json" % name, bytes([M_INDEX_JSON]) + d)
            elif kind is None and not mem.name.endswith(".json") and \
                    mem.name != "oci-layout":
                try:
                    layer_seeds(tl, "%s-layer" % name, decompress(d))
                except Exception:
                    pass
    if size <= SEED_MAX:
        mode = M_DOCKER_ARCHIVE if docker else M_OCI_ARCHIVE
        oj.add("%s-archive" % name, bytes([mode]) + data)


def images(build, outs, name, source, tmp):
    img = os.path.join(tmp, name + ".cfs")
    dump = os.path.join(tmp, name + ".dump")
    r = subprocess.run([os.path.join(build, "bin", "oci2cfs"), "--dump",
                        dump, source, img], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    if r.returncode != 0:
        return
    with open(img, "rb") as f:
        outs["image-read"].add("%s.cfs" % name, f.read())
    with open(dump, "rb") as f:
        outs["dump-read"].add("%s.dump" % name, f.read())


def record_seeds(build, out, name, source, tmp):
    """The layer records a store import of @source makes."""
    root = os.path.join(tmp, "store-" + name)
    r = subprocess.run([os.path.join(build, "bin", "cfs-store"), "--root",
                        root, "import", source], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    layers = os.path.join(root, "layers")
    if r.returncode != 0 or not os.path.isdir(layers):
        return
    for i, n in enumerate(sorted(os.listdir(layers))):
        # stored as a zstd frame; the harness reads the record itself
        data = subprocess.run(["zstd", "-q", "-dc", os.path.join(layers, n)],
                              check=True, stdout=subprocess.PIPE).stdout
        out.add("%s-%d" % (name, i), data[:-32])


def mount_seeds(out):
    with open(os.path.join(SRC, "tests", "unit",
                           "test-mount-options.c")) as f:
        text = f.read()
    macros = dict(re.findall(r'#define (\w+) "([^"]*)"', text))
    # each call's first argument: adjacent string literals and macros
    for m in re.finditer(r'\b(?:parse\(&a,|bad\(|cfs_mount_args_parse\(&a,)'
                         r'\s*((?:"(?:[^"\\]|\\.)*"|\b[A-Z0-9]+\b|\s)+)',
                         text):
        parts = re.findall(r'"((?:[^"\\]|\\.)*)"|\b([A-Z0-9]+)\b',
                           m.group(1))
        s = "".join(lit.encode().decode("unicode_escape") if lit or not mac
                    else macros.get(mac, "") for lit, mac in parts)
        out.add("unit-" + (s[:48] or "empty"), s.encode())


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    build, root = sys.argv[1], sys.argv[2]
    corpus = sys.argv[3] if len(sys.argv) == 4 else "/work/corpus/out"
    outs = {t: Out(root, t) for t in ("oci-json", "tar-layer", "image-read",
                                       "dump-read", "mount-options",
                                       "record-read", "toc")}
    oj, tl = outs["oci-json"], outs["tar-layer"]

    with tempfile.TemporaryDirectory() as tmp:
        # the harness' own valid image, every mode
        seeds = os.path.join(tmp, "seeds")
        os.mkdir(seeds)
        subprocess.run([os.path.join(build, "tests",
                                     "fuzz-replay-oci-json"), "/dev/null"],
                       env=dict(os.environ, CFS_FUZZ_SEED_DIR=seeds),
                       check=True, stdout=subprocess.DEVNULL)
        for n in sorted(os.listdir(seeds)):
            with open(os.path.join(seeds, n), "rb") as f:
                oj.add(n, f.read())

        fix = os.path.join(tmp, "fixtures")
        subprocess.run([sys.executable, os.path.join(SRC, "tests", "oci",
                                                     "make-fixtures.py"),
                        fix], check=True, stdout=subprocess.DEVNULL)
        for n in sorted(os.listdir(fix)):
            p = os.path.join(fix, n)
            if n == "entries-max" or n == "expected":
                continue
            if os.path.isdir(p):
                layout_seeds(oj, tl, "fixture-" + n, p, outs["toc"])
                if not n.startswith("should-fail"):
                    images(build, outs, "fixture-" + n, "oci:" + p, tmp)
                    record_seeds(build, outs["record-read"], "fixture-" + n,
                                 "oci:" + p, tmp)
            elif n.endswith(".tar"):
                archive_seeds(oj, tl, "fixture-" + n[:-4], p)
                kind = "docker-archive" if n == "docker.tar" else \
                    "oci-archive"
                images(build, outs, "fixture-" + n[:-4],
                       "%s:%s" % (kind, p), tmp)

        if os.path.isdir(corpus):
            for n in sorted(os.listdir(corpus)):
                p = os.path.join(corpus, n)
                if os.path.isfile(os.path.join(p, "index.json")):
                    layout_seeds(oj, tl, "corpus-" + n, p)
            arcs = os.path.join(corpus, "archives")
            for n in sorted(os.listdir(arcs)) if os.path.isdir(arcs) else []:
                archive_seeds(oj, tl, "corpus-" + n[:-4],
                              os.path.join(arcs, n))
            edge = os.path.join(corpus, "edge-cases")
            if os.path.isdir(edge):
                images(build, outs, "corpus-edge-cases", "oci:" + edge, tmp)
                record_seeds(build, outs["record-read"], "corpus-edge-cases",
                             "oci:" + edge, tmp)

        images(build, outs, "hello-rootfs",
               "dir:" + os.path.join(SRC, "examples", "hello-rootfs"), tmp)

        # the harness' base layer with each option of fuzz-tar-layer
        t = io.BytesIO()
        with tarfile.open(fileobj=t, mode="w", format=tarfile.PAX_FORMAT) as tf:
            for path, data in (("etc/hello", b"hi\n"),
                               ("usr/bin/x", b"y" * 100)):
                ti = tarfile.TarInfo(path)
                ti.size = len(data)
                ti.mtime = 1700000000
                tf.addfile(ti, io.BytesIO(data))
            ti = tarfile.TarInfo("etc/.wh.hello")
            tf.addfile(ti, io.BytesIO(b""))
            ti = tarfile.TarInfo("usr/.wh..wh..opq")
            tf.addfile(ti, io.BytesIO(b""))
        for sel, what in ((0, "tar"), (1, "gzip"), (2, "zstd"),
                          (4, "two-layers"), (8, "layer-digests"),
                          (16, "docker-archive"), (5, "gzip-two-layers"),
                          (30, "zstd-docker-two-layers-digests")):
            tl.add("small-whiteouts-%s" % what, bytes([sel]) + t.getvalue())

    mount_seeds(outs["mount-options"])
    chunked_write_seeds(tl, Out(root, "chunked-write"))


def chunked_write_seeds(tl, cw):
    """fuzz-chunked-write reads the tars fuzz-tar-layer does: every one of
    its seeds, read whole (byte 0 255), and the small ones also in 7-byte
    pieces (byte 0 6)."""
    for n in sorted(os.listdir(tl.dir)):
        with open(os.path.join(tl.dir, n), "rb") as f:
            data = f.read()
        if len(data) < 32768:
            cw.add(n, b"\xff" + data[1:])
        if len(data) < 8192:
            cw.add(n + "-pieces", b"\x06" + data[1:])


if __name__ == "__main__":
    main()
