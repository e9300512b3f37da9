#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
"""Write an OCI layout of one gzip layer of N files of random content.

Usage: make-files-layout.py DIR N [SIZE]

Files data/dXX/fNNN of SIZE (default 8000) bytes plus their number,
random from a fixed seed: the same bytes on every run, and content that
does not compress, so that each file takes its size in a zstd:chunked
blob (tests/scripts/registry-ranges.sh needs ranges that do not merge).
"""
import gzip
import hashlib
import io
import json
import os
import random
import sys
import tarfile


def blob(layout, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + digest, "size": len(data)}


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    layout, n = sys.argv[1], int(sys.argv[2])
    size = int(sys.argv[3]) if len(sys.argv) == 4 else 8000
    rnd = random.Random(7)
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w", format=tarfile.PAX_FORMAT) as t:
        for d in sorted({"data/d%02d" % (i % 10) for i in range(n)}):
            ti = tarfile.TarInfo(d)
            ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, 1700000000
            t.addfile(ti)
        for i in range(n):
            data = rnd.randbytes(size + i)
            ti = tarfile.TarInfo("data/d%02d/f%03d" % (i % 10, i))
            ti.size, ti.mode, ti.mtime = len(data), 0o644, 1700000000
            t.addfile(ti, io.BytesIO(data))
    raw = tar.getvalue()
    os.makedirs(os.path.join(layout, "blobs", "sha256"))
    layer = blob(layout, gzip.compress(raw, mtime=0))
    layer["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip"
    config = blob(layout, json.dumps({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers",
                   "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]},
    }, sort_keys=True).encode())
    config["mediaType"] = "application/vnd.oci.image.config.v1+json"
    manifest = blob(layout, json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config, "layers": [layer]}, sort_keys=True).encode())
    manifest["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
    manifest["annotations"] = {"org.opencontainers.image.ref.name": "latest"}
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [manifest]}, f)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)


if __name__ == "__main__":
    main()
