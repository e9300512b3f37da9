#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
"""An OCI layout whose one layer has the tar headers whose reading Go's
archive/tar (and so containers/storage) defines, for seal-chunked.sh to
compare our zstd:chunked TOC with skopeo's: GNU long names and links,
PAX paths, times with fractions (a negative one too), atime and ctime
from PAX and from GNU headers, a USTAR prefix, '\\0' type flags (a file,
and a directory by its trailing slash), a mode field that carries the
type bits, a base-256 uid, devices, a FIFO, links, PAX xattrs with
binary values, and bytes after the end blocks.

Usage: go-tar-cases.py DIR
"""
import hashlib
import io
import json
import os
import sys
import tarfile


def checksum(block):
    block = bytearray(block)
    block[148:156] = b" " * 8
    s = sum(block)
    block[148:156] = b"%06o\0 " % s
    return bytes(block)


def patch(raw, at, data):
    """Overwrite @data at @at of the first header of @raw."""
    raw = bytearray(raw)
    raw[at:at + len(data)] = data
    return checksum(raw[:512]) + bytes(raw[512:])


def entry(name, fmt, typ=tarfile.REGTYPE, data=b"", **kw):
    ti = tarfile.TarInfo(name)
    ti.type = typ
    ti.size = len(data) if typ in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
    ti.mtime = kw.pop("mtime", 1700000000)
    ti.mode = kw.pop("mode", 0o644)
    ti.uid = kw.pop("uid", 0)
    ti.gid = kw.pop("gid", 0)
    for k, v in kw.items():
        setattr(ti, k, v)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        tf.addfile(ti, io.BytesIO(data) if data else None)
    out = buf.getvalue()
    end = len(out)
    while end >= 512 and out[end - 512:end] == b"\0" * 512:
        end -= 512
    return out[:end]


def layer():
    G, P, U = tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT
    D = tarfile.DIRTYPE
    long = "long/" + "n" * 120
    parts = [
        entry("long/", U, D, mode=0o755),
        entry("gnu/", G, D, mode=0o755),
        entry(long + "-gnu", G, data=b"gnu long name\n"),
        entry("gnu/link-to-long", G, tarfile.SYMTYPE,
              linkname="../" + long + "-gnu" + "x" * 10),
        entry(long + "-pax", P, data=b"pax long name\n" * 40),
        entry("pax/", P, D, mode=0o755),
        entry("pax/times", P, data=b"times\n",
              pax_headers={"mtime": "1700000000.123456789",
                           "atime": "1700000001.5",
                           "ctime": "1700000002.000000001"}),
        entry("pax/old", P, data=b"before 1970\n",
              pax_headers={"mtime": "-1.25"}),
        entry("pax/xattrs", P, data=b"x" * 100,
              pax_headers={"SCHILY.xattr.user.bin": "a\0b\xff".encode(
                  "latin1").decode("utf-8", "surrogateescape"),
                  "SCHILY.xattr.user.empty": "",
                  "SCHILY.xattr.security.capability": "\x01\0\0\x02"}),
        entry("ustar/" + "p" * 90 + "/" + "q" * 60, U, data=b"prefix\n"),
        entry("dev/", U, D, mode=0o755),
        entry("dev/null", U, tarfile.CHRTYPE, devmajor=1, devminor=3),
        entry("dev/loop0", U, tarfile.BLKTYPE, devmajor=7, devminor=0),
        entry("dev/fifo", U, tarfile.FIFOTYPE),
        entry("dev/hard", U, tarfile.LNKTYPE, linkname="pax/times"),
        entry("big-uid", G, data=b"uid\n", uid=3000000, gid=3000001),
    ]
    # '\0' type flags: a file, and a directory by its trailing slash
    parts.append(patch(entry("old-file", U, data=b"v7\n"), 156, b"\0"))
    parts.append(patch(entry("old-dir/", U, D, mode=0o755), 156, b"\0"))
    # the type bits in the mode field, as some writers put them
    parts.append(patch(entry("typed-mode", U, data=b"m\n"), 100,
                       b"0100644\0"))
    # a GNU header with atime and ctime
    g = entry("gnu/times", G, data=b"gnu times\n")
    g = patch(g, 345, b"%011o\0" % 1700000003)
    g = patch(g, 357, b"%011o\0" % 1700000004)
    parts.append(g)
    return b"".join(parts) + b"\0" * 1024 + b"\0" * 512 + b"trailing"


def blob(out, data):
    d = hashlib.sha256(data).hexdigest()
    with open(f"{out}/blobs/sha256/{d}", "wb") as f:
        f.write(data)
    return "sha256:" + d, len(data)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    os.makedirs(f"{out}/blobs/sha256")
    tar = layer()
    ld, ls = blob(out, tar)
    config = {"architecture": "amd64", "os": "linux",
              "rootfs": {"type": "layers", "diff_ids": [ld]},
              "config": {}}
    cd, cs = blob(out, json.dumps(config).encode())
    manifest = {"schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": cd, "size": cs},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                            "digest": ld, "size": ls}]}
    md, ms = blob(out, json.dumps(manifest).encode())
    with open(f"{out}/index.json", "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "digest": md, "size": ms,
             "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}, f)
    with open(f"{out}/oci-layout", "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)


if __name__ == "__main__":
    main()
