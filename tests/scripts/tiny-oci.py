#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
"""A small OCI layout for the store's fault tests: one uncompressed layer
of N files of random sizes, the same bytes for the same arguments.

Usage: tiny-oci.py DIR SEED N [--sizes A,B,...] [--dirs K] [--names FMT]
                   [--cmd]

  --sizes  the file sizes drawn from (default 100,3000,20000)
  --dirs   files go to d0 ... d(K-1) (default 8)
  --names  file name, a format of seed and i (default "f{seed}-{i}");
           different SEEDs then give disjoint content and names
  --cmd    the config gets "created" and a Cmd naming the seed, so that
           images differing only in SEED also differ in their config
"""
import argparse
import hashlib
import io
import json
import os
import random
import tarfile


def blob(out, data):
    d = hashlib.sha256(data).hexdigest()
    with open(f"{out}/blobs/sha256/{d}", "wb") as f:
        f.write(data)
    return "sha256:" + d, len(data)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("seed", type=int)
    ap.add_argument("n", type=int)
    ap.add_argument("--sizes", default="100,3000,20000")
    ap.add_argument("--dirs", type=int, default=8)
    ap.add_argument("--names", default="f{seed}-{i}")
    ap.add_argument("--cmd", action="store_true")
    a = ap.parse_args()
    out, seed = a.dir, a.seed
    sizes = [int(s) for s in a.sizes.split(",")]
    rnd = random.Random(seed)
    os.makedirs(f"{out}/blobs/sha256", exist_ok=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for i in range(a.n):
            data = rnd.randbytes(rnd.choice(sizes))
            ti = tarfile.TarInfo(f"d{i % a.dirs}/" + a.names.format(seed=seed, i=i))
            ti.size, ti.mtime, ti.mode = len(data), 1700000000, 0o644
            t.addfile(ti, io.BytesIO(data))
    ld, ls = blob(out, buf.getvalue())
    config = {"architecture": "amd64", "os": "linux"}
    if a.cmd:
        config["created"] = "2024-01-01T00:00:00Z"
        config["config"] = {"Cmd": ["/d0/f", str(seed)]}
    config["rootfs"] = {"type": "layers", "diff_ids": [ld]}
    cd, cs = blob(out, json.dumps(config).encode())
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": cd, "size": cs},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": ld, "size": ls}]}).encode()
    md, ms = blob(out, manifest)
    with open(f"{out}/index.json", "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": md, "size": ms}]}, f)
    with open(f"{out}/oci-layout", "w") as f:
        f.write('{"imageLayoutVersion": "1.0.0"}')


if __name__ == "__main__":
    main()
