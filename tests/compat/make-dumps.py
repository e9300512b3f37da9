#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
"""
Write the compatibility dumps: composefs dump files (the text format of
`composefs-info dump`, read by `mkcomposefs --from-file` and by our
`dump:` source) that cover what a composefs image can hold, generated
from a fixed seed so that every run writes the same bytes.

    make-dumps.py DIR

tests/compat/record-digests.sh gives them to mkcomposefs 1.0.8 once and
keeps its digests in tests/compat/mkcomposefs-1.0.8.digests;
tests/scripts/compat.sh gives them to cfs-mkcomposefs and compares.
Change a dump and the digests must be recorded again.
"""
import os
import random
import sys

SAFE = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+,~"


def esc(b, eq=False):
    """The dump format's escaping: printable ASCII as is, except
    backslash, '=' in xattr names and space; everything else \\xNN."""
    out = []
    for c in b:
        if c == 0x5C:
            out.append("\\\\")
        elif 0x21 <= c <= 0x7E and not (eq and c == 0x3D):
            out.append(chr(c))
        else:
            out.append("\\x%02x" % c)
    return "".join(out)


class Dump:
    def __init__(self, rnd):
        self.rnd = rnd
        self.lines = []

    def digest(self):
        return "%064x" % self.rnd.getrandbits(256)

    def time(self):
        r = self.rnd.random()
        if r < 0.1:
            return "0.0"
        if r < 0.2:
            return "%d.0" % self.rnd.randrange(1, 2**31)
        return "%d.%d" % (self.rnd.randrange(1, 2**33), self.rnd.randrange(10**9))

    def xattrs(self, pool, n):
        chosen = self.rnd.sample(pool, min(n, len(pool)))
        return ["%s=%s" % (esc(k, True), esc(v)) for k, v in chosen]

    def add(self, path, size, mode, nlink, uid, gid, rdev, mtime, payload,
            content, digest, xattrs=()):
        f = [esc(path), str(size), mode, str(nlink), str(uid), str(gid),
             str(rdev), mtime, payload, content, digest] + list(xattrs)
        self.lines.append(" ".join(f))

    def dir(self, path, nlink=2, xattrs=(), mode=0o755):
        self.add(path, 0, "%o" % (0o40000 | mode), nlink,
                 self.rnd.choice([0, 0, 1000, 65534]),
                 self.rnd.choice([0, 0, 1000]), 0, self.time(), "-", "-",
                 "-", xattrs)

    def file(self, path, size=None, xattrs=(), mode=None, nlink=1):
        if size is None:
            size = self.rnd.choice([0, 1, 17, 63, 64, 65, 100, 4095, 4096,
                                    4097, 70000, 2**20 + 3])
        if mode is None:
            mode = self.rnd.choice([0o644, 0o755, 0o600, 0o4755, 0o2755,
                                    0o1777, 0o444])
        uid = self.rnd.choice([0, 0, 1000, 2**31 - 1, 4294967294])
        gid = self.rnd.choice([0, 0, 1000, 100])
        if 0 < size <= 64 and self.rnd.random() < 0.7:
            data = bytes(self.rnd.getrandbits(8) for _ in range(size))
            self.add(path, size, "%o" % (0o100000 | mode), nlink, uid, gid,
                     0, self.time(), "-", esc(data), "-", xattrs)
            return None
        if size == 0:
            self.add(path, 0, "%o" % (0o100000 | mode), nlink, uid, gid, 0,
                     self.time(), "-", "-", "-", xattrs)
            return None
        d = self.digest()
        self.add(path, size, "%o" % (0o100000 | mode), nlink, uid, gid, 0,
                 self.time(), d[:2] + "/" + d[2:], "-", d, xattrs)
        return d

    def write(self, path):
        # a directory's link count: 2 and one per subdirectory
        subdirs = {}
        for l in self.lines:
            f = l.split(" ")
            if f[2].startswith("4"):
                parent = f[0].rsplit("/", 1)[0] or "/"
                if f[0] != "/":
                    subdirs[parent] = subdirs.get(parent, 0) + 1
        with open(path, "w") as out:
            for l in self.lines:
                f = l.split(" ")
                if f[2].startswith("4"):
                    f[3] = str(2 + subdirs.get(f[0], 0))
                out.write(" ".join(f) + "\n")


def name(rnd, lo=1, hi=40):
    return bytes(rnd.choice(SAFE) for _ in range(rnd.randint(lo, hi)))


XATTR_POOL = [
    (b"user.mime_type", b"text/plain"),
    (b"user.comment", b"shared by many files"),
    (b"user.empty", b""),
    (b"user.binary", bytes(range(1, 40))),
    (b"user.long", b"L" * 3000),
    (b"security.capability",
     bytes.fromhex("0100000200300000000000000000000000000000")),
    (b"security.selinux", b"system_u:object_r:bin_t:s0"),
    (b"trusted.overlay.opaque", b"y"),
    (b"trusted.overlay.redirect", b"/elsewhere"),
    (b"trusted.other", b"value with spaces"),
    (b"user.a", b"1"), (b"user.b", b"2"), (b"user.c", b"3"),
]


def types(rnd):
    d = Dump(rnd)
    d.dir(b"/", nlink=6, xattrs=["user.root=the\\x20root"])
    d.dir(b"/etc")
    for i in range(40):
        d.file(b"/etc/" + name(rnd) + b"%d" % i)
    d.dir(b"/bin")
    first = d.file(b"/bin/tool", size=9000, mode=0o755, nlink=3)
    for n in (b"/bin/tool-link", b"/etc/tool-link"):
        d.add(n, 9000, "@100755", 3, 0, 0, 0, "0.0", "/bin/tool", "-",
              first)
    for i, target in enumerate([b"x", b"../etc", b"/an/absolute/target",
                                b"t" * 200, b"s p a c e", b"d" * 1000]):
        d.add(b"/bin/sym%d" % i, len(target), "120777", 1, 0, 0, 0,
              d.time(), esc(target), "-", "-")
    d.dir(b"/dev", nlink=2)
    for i, (kind, rdev) in enumerate([(0o20000, 0x0501), (0o60000, 0x0801),
                                      (0o20000, 0x10000001),
                                      (0o60000, 0)]):
        d.add(b"/dev/node%d" % i, 0, "%o" % (kind | 0o660), 1, 0, 6, rdev,
              d.time(), "-", "-", "-")
    d.add(b"/dev/fifo", 0, "10644", 1, 0, 0, 0, d.time(), "-", "-", "-")
    d.add(b"/dev/sock", 0, "140755", 1, 0, 0, 0, d.time(), "-", "-", "-")
    d.dir(b"/empty")
    return d


def xattrs(rnd):
    d = Dump(rnd)
    d.dir(b"/", nlink=3, xattrs=d.xattrs(XATTR_POOL, 2))
    d.dir(b"/x", xattrs=d.xattrs(XATTR_POOL, 4))
    for i in range(300):
        d.file(b"/x/f%04d" % i, xattrs=d.xattrs(XATTR_POOL, rnd.randint(0, 6)))
    d.dir(b"/y", xattrs=["trusted.overlay.opaque=y"])
    for i in range(20):
        d.file(b"/y/g%d" % i, xattrs=["user.own%d=%s" % (i, "v" * (i * 37))])
    return d


def bigdir(rnd):
    d = Dump(rnd)
    d.dir(b"/", nlink=3)
    d.dir(b"/big")
    names = set()
    while len(names) < 4000:
        names.add(name(rnd, 1, 255))
    for n in sorted(names):
        if rnd.random() < 0.1:
            d.add(b"/big/" + n, 1, "120777", 1, 0, 0, 0, "0.0", "x", "-",
                  "-")
        else:
            d.file(b"/big/" + n, size=rnd.choice([0, 10, 5000]))
    d.dir(b"/small")
    d.file(b"/small/only")
    return d


def whiteouts(rnd):
    d = Dump(rnd)
    d.dir(b"/", nlink=4)
    d.dir(b"/usr")
    for i in range(30):
        if i % 3 == 0:
            # an overlay whiteout: a character device 0:0
            d.add(b"/usr/gone%d" % i, 0, "20000", 1, 0, 0, 0, d.time(), "-",
                  "-", "-")
        else:
            d.file(b"/usr/kept%d" % i)
    d.dir(b"/opaque", xattrs=["trusted.overlay.opaque=y"])
    d.file(b"/opaque/new")
    d.add(b"/.wh.old", 0, "20000", 1, 0, 0, 0, "0.0", "-", "-", "-")
    d.dir(b"/var", xattrs=["trusted.overlay.whiteout=", "user.x=1"])
    return d


def deep(rnd):
    d = Dump(rnd)
    d.dir(b"/", nlink=3)
    path = b""
    for i in range(120):
        path += b"/d%03d" % i
        d.dir(path, nlink=3 if i < 119 else 2)
        d.file(path + b"/file")
    d.dir(b"/flat", nlink=2)
    return d


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for i, gen in enumerate((types, xattrs, bigdir, whiteouts, deep)):
        d = gen(random.Random(20261207 + i))
        d.write(os.path.join(out, gen.__name__ + ".dump"))


if __name__ == "__main__":
    main()
