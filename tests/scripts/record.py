#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
"""Read a layer record (format in src/convert/records.h), written here
from the format's description, for the tests.

  record.py objects RECORD       the objects its entries name, XX/<62 hex>
  record.py pairs RECORD         its SHA-256 pairs: "<sha256> <object>"
  record.py to-v1 RECORD OUT     the same record in format 1 (no pairs),
                                 uncompressed, as earlier versions wrote
  record.py zero-pair RECORD OUT the first pair's SHA-256 made zeros (a
                                 wrong pair that still sorts first),
                                 uncompressed, its checksum made again
  record.py swap-pairs RECORD OUT
                                 its first two pairs out of order
                                 (uncompressed, its checksum made again)
  record.py many-pairs RECORD OUT
                                 its count of pairs 2^40 (the same)
"""
import hashlib
import struct
import subprocess
import sys


def load(path):
    d = open(path, "rb").read()
    if d[:4] == b"\x28\xb5\x2f\xfd":
        d = subprocess.run(["zstd", "-q", "-dc", path], check=True,
                           stdout=subprocess.PIPE).stdout
    assert d[:8] in (b"CFSLREC1", b"CFSLREC2"), "bad magic"
    assert hashlib.sha256(d[:-32]).digest() == d[-32:], "bad checksum"
    return d


def parse(d):
    """(entries end, objects, pairs)"""
    _, _, n, _ = struct.unpack_from("<32sQQQ", d, 8)
    pos = 64
    objects = []

    def take(k):
        nonlocal pos
        pos += k
        return d[pos - k:pos]

    for _ in range(n):
        flags, = struct.unpack("<I", take(4))
        take(4 + 4 + 4 + 8 + 4 + 8)
        take(struct.unpack("<I", take(4))[0])
        if flags & 2:
            take(struct.unpack("<I", take(4))[0])
        for _ in range(struct.unpack("<I", take(4))[0]):
            take(struct.unpack("<I", take(4))[0])
            take(struct.unpack("<I", take(4))[0])
        size, = struct.unpack("<Q", take(8))
        if flags & 4:
            take(size)
        elif flags & 8:
            objects.append(take(32).hex())
    pairs = []
    if d[:8] == b"CFSLREC2":
        npairs, = struct.unpack_from("<Q", d, len(d) - 40)
        start = len(d) - 40 - 64 * npairs
        assert start == pos, "pairs do not follow the entries"
        for i in range(npairs):
            p = d[start + 64 * i:start + 64 * (i + 1)]
            pairs.append((p[:32].hex(), p[32:].hex()))
        assert pairs == sorted(set(pairs)), "pairs not sorted or repeated"
    else:
        assert pos == len(d) - 32
    return pos, objects, pairs


def main():
    cmd, path = sys.argv[1], sys.argv[2]
    d = load(path)
    end, objects, pairs = parse(d)
    if cmd == "objects":
        for h in objects:
            print(h[:2] + "/" + h[2:])
    elif cmd == "pairs":
        for sha, obj in pairs:
            print(sha, obj)
    elif cmd == "to-v1":
        v1 = b"CFSLREC1" + d[8:end]
        open(sys.argv[3], "wb").write(v1 + hashlib.sha256(v1).digest())
    elif cmd == "zero-pair":
        assert pairs, "no pairs"
        raw = d[:end] + bytes(32) + d[end + 32:-32]
        open(sys.argv[3], "wb").write(raw + hashlib.sha256(raw).digest())
    elif cmd == "swap-pairs":
        assert len(pairs) >= 2, "fewer than two pairs"
        raw = d[:end] + d[end + 64:end + 128] + d[end:end + 64] + \
            d[end + 128:-32]
        open(sys.argv[3], "wb").write(raw + hashlib.sha256(raw).digest())
    elif cmd == "many-pairs":
        raw = d[:-40] + struct.pack("<Q", 1 << 40)
        open(sys.argv[3], "wb").write(raw + hashlib.sha256(raw).digest())
    else:
        sys.exit("record.py: unknown command " + cmd)


if __name__ == "__main__":
    main()
