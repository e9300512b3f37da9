#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
"""Read the zstd:chunked TOCs of an OCI layout's layers, for the tests.

  chunked-toc.py compare OURS THEIRS
      The layers of the two layouts (same tars, e.g. oci2cfs seal
      --zstd-chunked and skopeo --dest-compress-format zstd:chunked) have
      TOCs that say the same of every entry: every member that
      containers/storage compares with the tar-split (type, name,
      linkName, mode, size, uid, gid, the times, devices, xattrs) and
      the content digest. Frame positions and chunks may differ.

  chunked-toc.py verity LAYOUT OBJECTS
      Every regular file with content names its fs-verity digest
      ("fsverityDigest"), and the objects directory OBJECTS (of a
      conversion of the same image) has exactly the objects those
      digests name, for the files it stores as objects (over 64 bytes).

  chunked-toc.py digests LAYOUT
      Print the layers' blob digests, one per line.

Exit status 1 with a message on the first difference.
"""
import datetime
import json
import os
import subprocess
import sys

PREFIXES = ("io.github.containers.zstd-chunked.", "io.containers.zstd-chunked.")


def fail(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)


def layers(layout):
    """(descriptor, blob path) of each layer of the layout's one image."""
    index = json.load(open(os.path.join(layout, "index.json")))
    d = index["manifests"][0]["digest"]
    m = json.load(open(os.path.join(layout, "blobs/sha256", d[7:])))
    return [(l, os.path.join(layout, "blobs/sha256", l["digest"][7:]))
            for l in m["layers"]]


def toc(desc, path):
    ann = desc.get("annotations") or {}
    pos = None
    for p in PREFIXES:
        pos = ann.get(p + "manifest-position")
        if pos:
            break
    if not pos:
        fail("%s: no zstd:chunked annotations" % desc["digest"])
    off, length = (int(x) for x in pos.split(":")[:2])
    with open(path, "rb") as f:
        f.seek(off)
        data = f.read(length)
    out = subprocess.run(["zstd", "-dc"], input=data, capture_output=True,
                         check=True).stdout
    return json.loads(out)


def when(s):
    """A TOC time as (seconds, nanoseconds), any zone; None for none or
    the Unix epoch (containers/storage takes them as the same)."""
    if s is None:
        return None
    frac = 0
    main, zone = s[:19], s[19:]
    if zone.startswith("."):
        digits = ""
        zone = zone[1:]
        while zone and zone[0].isdigit():
            digits += zone[0]
            zone = zone[1:]
        frac = int((digits + "000000000")[:9])
    t = datetime.datetime.fromisoformat(main + (zone.replace("Z", "+00:00") or "+00:00"))
    sec = int(t.timestamp())
    return None if (sec, frac) == (0, 0) else (sec, frac)


COMPARED = ("type", "name", "linkName", "mode", "size", "uid", "gid",
            "devMajor", "devMinor", "digest")


def describe(e):
    d = {k: e.get(k) or None for k in COMPARED}
    d["xattrs"] = e.get("xattrs") or None
    for k in ("modtime", "accesstime", "changetime"):
        d[k] = when(e.get(k))
    return d


def compare(ours, theirs):
    a, b = layers(ours), layers(theirs)
    if len(a) != len(b):
        fail("%d layers against %d" % (len(a), len(b)))
    for (da, pa), (db, pb) in zip(a, b):
        ea = [describe(e) for e in toc(da, pa)["entries"] or [] if e["type"] != "chunk"]
        eb = [describe(e) for e in toc(db, pb)["entries"] or [] if e["type"] != "chunk"]
        if len(ea) != len(eb):
            fail("%s: %d entries against %d" % (da["digest"], len(ea), len(eb)))
        for x, y in zip(ea, eb):
            if x != y:
                fail("%s: entry %s differs:\n  ours   %s\n  theirs %s"
                     % (da["digest"], x["name"], x, y))
        print("%s: %d entries as in %s" % (da["digest"], len(ea), db["digest"]))


def verity(layout, objects):
    have = set()
    for sub in os.listdir(objects):
        if len(sub) == 2:
            have |= {sub + n for n in os.listdir(os.path.join(objects, sub))}
    named = set()
    for desc, path in layers(layout):
        for e in toc(desc, path)["entries"] or []:
            if e["type"] != "reg" or not e.get("size"):
                continue
            v = e.get("fsverityDigest", "")
            if not v.startswith("sha256:") or len(v) != 71:
                fail("%s: %s: no fsverityDigest" % (desc["digest"], e["name"]))
            if e["size"] > 64:
                named.add(v[7:])
    if named != have:
        fail("the TOCs name %d objects, the conversion made %d; %d differ"
             % (len(named), len(have), len(named ^ have)))
    print("%d objects, each named by a TOC" % len(have))


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "compare":
        compare(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "verity":
        verity(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 3 and sys.argv[1] == "digests":
        for desc, _ in layers(sys.argv[2]):
            print(desc["digest"])
    else:
        fail(__doc__)


if __name__ == "__main__":
    main()
