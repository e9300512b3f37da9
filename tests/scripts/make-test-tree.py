#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
"""Create the oci2cfs test tree.

Usage: make-test-tree.py [--order normal|reverse] DIR

DIR must not exist (or be empty). The tree holds every file type, xattrs in
several namespaces, hardlinks, awkward names, a 5,000-entry directory, 150
levels of nesting, odd modes and owners and nanosecond mtimes. Everything is
deterministic: contents come from a fixed seed, keyed by a label rather than
by creation order, so "--order reverse" (each directory's entries created in
reverse name order) yields the same tree with a different on-disk layout,
readdir order and inode numbering.

Needs root: device nodes, chown, trusted.* and security.capability.
"""
import argparse
import hashlib
import os
import random
import socket
import stat
import struct
import sys

SEED = "oci2cfs-test-tree-v1"
NS = 1000000000

# File types of the spec.
DIR, REG, LNK, CHR, BLK, FIFO, SOCK = "dir", "reg", "lnk", "chr", "blk", "fifo", "sock"


def content(label, size):
    """Pseudo-random bytes that depend only on the label and the size."""
    return random.Random(f"{SEED}:{label}:{size}").randbytes(size)


def default_mtime(key):
    """A distinct, deterministic mtime with nanoseconds, 2017..2023."""
    h = hashlib.sha256(SEED.encode() + b":mtime:" + key).digest()
    sec = 1500000000 + int.from_bytes(h[:8], "little") % 200000000
    nsec = int.from_bytes(h[8:16], "little") % NS
    return sec * NS + nsec


class Node:
    """One inode; a hardlinked inode is one Node under several names."""

    def __init__(self, kind, key, *, mode=None, uid=0, gid=0, mtime=None,
                 xattrs=(), data=b"", target=b"", rdev=(0, 0)):
        self.kind = kind
        if mode is None:
            mode = 0o755 if kind == DIR else 0o777 if kind == LNK else 0o644
        self.mode = mode
        self.uid, self.gid = uid, gid
        self.mtime = default_mtime(key) if mtime is None else mtime
        self.xattrs = list(xattrs)
        self.data = data
        self.target = target
        self.rdev = rdev
        self.children = {} if kind == DIR else None


class Tree:
    def __init__(self):
        self.root = Node(DIR, b"/", mode=0o755, mtime=1700000000 * NS + 123456789,
                         xattrs=[("user.root", b"root directory")])

    def _parent(self, path):
        parts = path.split(b"/")
        d = self.root
        for p in parts[:-1]:
            d = d.children[p]
            assert d.kind == DIR, path
        return d, parts[-1]

    def add(self, path, node):
        if isinstance(path, str):
            path = path.encode()
        parent, name = self._parent(path)
        assert name not in parent.children, path
        assert 0 < len(name) <= 255 and b"/" not in name, path
        parent.children[name] = node
        return node

    def mkdir(self, path, **kw):
        p = path.encode() if isinstance(path, str) else path
        return self.add(p, Node(DIR, p, **kw))

    def file(self, path, size=None, data=None, label=None, **kw):
        p = path.encode() if isinstance(path, str) else path
        if data is None:
            data = content(label or p.decode("utf-8", "surrogateescape"), size)
        return self.add(p, Node(REG, p, data=data, **kw))

    def symlink(self, path, target, **kw):
        p = path.encode() if isinstance(path, str) else path
        t = target.encode() if isinstance(target, str) else target
        return self.add(p, Node(LNK, p, target=t, **kw))

    def node(self, kind, path, **kw):
        p = path.encode() if isinstance(path, str) else path
        return self.add(p, Node(kind, p, **kw))


def capability_v2(permitted):
    """struct vfs_cap_data, revision 2, effective bit set."""
    VFS_CAP_REVISION_2 = 0x02000000
    VFS_CAP_FLAGS_EFFECTIVE = 0x000001
    return struct.pack("<IIIII", VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE,
                       permitted & 0xFFFFFFFF, 0, permitted >> 32, 0)


def build_spec():
    t = Tree()
    shared = ("user.shared", b"one value on many inodes")
    tshared = ("trusted.shared", b"trusted, shared too")

    # Regular files around the inline limit (64) and the block size.
    t.mkdir("files", mtime=1600000000 * NS + 1)
    for size in (0, 1, 63, 64, 65, 4095, 4096, 4097, 1048576 + 7):
        t.file(f"files/size-{size}", size)
    big = content("dup", 100000)
    t.file("files/dup-a", data=big, xattrs=[shared])
    t.file("files/dup-b", data=big, xattrs=[shared])
    t.file("files/same-as-size-4097", 4097, label="files/size-4097")
    t.file("files/inline-dup-a", data=b"tiny same", xattrs=[shared])
    t.file("files/inline-dup-b", data=b"tiny same", xattrs=[shared])
    t.file("files/zeros-8192", data=bytes(8192))

    # Names at the root that the writer also uses for its 256 synthetic
    # whiteouts, and an empty directory.
    t.file("0a", data=b"a file named like a root whiteout\n")
    t.mkdir("ff", mode=0o750)
    t.file("ff/inside", 10)
    t.mkdir("empty-dir")

    # Modes.
    t.mkdir("modes")
    t.file("modes/setuid", 100, mode=0o4755)
    t.file("modes/setgid", 3, mode=0o2755)
    t.file("modes/sticky-file", 3, mode=0o1644)
    t.file("modes/all-bits", 200, mode=0o7777)
    t.file("modes/mode-0000", 5, mode=0o000)
    t.file("modes/mode-0777", 5, mode=0o777)
    t.file("modes/mode-0400-empty", 0, mode=0o400)
    t.mkdir("modes/setgid-dir", mode=0o2775, gid=1000)
    t.file("modes/setgid-dir/child", 7)
    t.mkdir("modes/sticky-dir", mode=0o1777)
    t.file("modes/sticky-dir/child", 7)
    t.mkdir("modes/dir-0000", mode=0o000)
    t.file("modes/dir-0000/child", 70)
    t.mkdir("modes/dir-0700", mode=0o700)
    t.node(FIFO, "modes/fifo-0600", mode=0o600)
    t.node(CHR, "modes/chr-4777", mode=0o4777, rdev=(1, 7))

    # Owners: 70000 does not fit a compact inode; 4294967294 is the
    # largest valid id ((uid_t)-2).
    t.mkdir("owners", uid=70000, gid=70000)
    t.file("owners/uid-0", 5, uid=0, gid=0)
    t.file("owners/uid-1000", 5, uid=1000, gid=1000)
    t.file("owners/uid-70000-epoch", 5, uid=70000, gid=70000, mtime=0)
    t.file("owners/gid-70000-only", 5, uid=0, gid=70000, mtime=0)
    t.file("owners/uid-4294967294", 300, uid=4294967294, gid=4294967294)
    t.file("owners/uid-65535", 5, uid=65535, gid=65534, mtime=0)
    t.symlink("owners/symlink-1000", "uid-1000", uid=1000, gid=70000)
    t.node(FIFO, "owners/fifo-70000", uid=70000, gid=1)
    t.node(BLK, "owners/blk-4294967294", uid=4294967294, gid=0, rdev=(7, 1))

    # Timestamps.
    t.mkdir("times", mtime=1234567890 * NS + 987654321)
    t.file("times/epoch-0", 5, mtime=0)
    t.file("times/epoch-plus-1ns", 5, mtime=1)
    t.file("times/ns-999999999", 5, mtime=1600000000 * NS + 999999999)
    t.file("times/y2038-plus", 5, mtime=2147483648 * NS + 5)
    t.file("times/future-2100", 100, mtime=4102444800 * NS + 424242424)
    t.mkdir("times/dir-epoch-0", mtime=0)
    t.mkdir("times/dir-2100", mtime=4102444800 * NS + 1)
    t.symlink("times/symlink-2100", "epoch-0", mtime=4102444800 * NS + 2)

    # Device nodes, fifos and a socket.
    t.mkdir("devices")
    t.node(CHR, "devices/null", rdev=(1, 3), mode=0o666)
    t.node(BLK, "devices/sda1", rdev=(8, 1), mode=0o660, gid=6)
    t.node(CHR, "devices/chr-259-300000", rdev=(259, 300000))
    t.node(BLK, "devices/blk-4095-1048575", rdev=(4095, 1048575))
    t.node(CHR, "devices/chr-256-0", rdev=(256, 0))
    t.node(CHR, "devices/with-xattr", rdev=(10, 200),
           xattrs=[("trusted.dev", b"device xattr"), tshared])
    t.node(FIFO, "devices/fifo", xattrs=[("trusted.fifo", b"\x00fifo\x00")])
    t.node(SOCK, "devices/socket", mode=0o755,
           xattrs=[("trusted.sock", b"socket")])

    # Symlinks.
    t.mkdir("links")
    t.symlink("links/short", "x")
    t.symlink("links/to-file", "../files/size-1")
    t.symlink("links/to-dir", "../files")
    t.symlink("links/absolute", "/etc/passwd")
    t.symlink("links/dangling", "../does/not/exist")
    t.symlink("links/long-4000", ("long-target/" * 400)[:3999] + "x")
    t.symlink("links/long-4095", ("b" * 254 + "/") * 16 + "c" * 15)
    t.symlink("links/odd-target", b"sp ace\nnew\\line=\xff-x")
    t.symlink("links/with-xattr", "short",
              xattrs=[("trusted.link", b"symlink xattr"), tshared])

    # Hardlinks.
    t.mkdir("hardlinks")
    t.mkdir("hardlinks/a")
    t.mkdir("hardlinks/b")
    g3 = t.file("hardlinks/a/one", 5000, uid=1000, gid=1000,
                xattrs=[shared, ("user.hl", b"group of three")])
    t.add(b"hardlinks/b/two", g3)
    t.add(b"hl-three", g3)
    t.mkdir("hardlinks/mixed")
    mixed = t.file("hardlinks/mixed/aaa-link", 20)
    t.file("hardlinks/mixed/mmm-other", 20)
    t.add(b"hardlinks/mixed/zzz-link", mixed)
    t.add(b"hardlinks/mixed/-first", mixed)
    e = t.file("hardlinks/empty-1", 0)
    t.add(b"hardlinks/empty-2", e)
    s = t.symlink("hardlinks/sym-1", "target-of-hardlinked-symlink")
    t.add(b"hardlinks/sym-2", s)
    f = t.node(FIFO, "hardlinks/fifo-1")
    t.add(b"hardlinks/fifo-2", f)
    c = t.node(CHR, "hardlinks/chr-1", rdev=(1, 5))
    t.add(b"hardlinks/chr-2", c)
    b = t.file("hardlinks/big-1", 200000, mode=0o600)
    t.add(b"hardlinks/big-2", b)
    t.mkdir("hardlinks/many")
    m = t.file("hardlinks/many/n00", 1000)
    for i in range(1, 12):
        t.add(f"hardlinks/many/n{i:02d}".encode(), m)

    # Extended attributes.
    t.mkdir("xattrs", xattrs=[("user.dir", b"on a directory"), shared,
                              ("trusted.overlay.foo", b"escaped on a dir")])
    t.file("xattrs/binary", 10, xattrs=[("user.bin", bytes(range(256))),
                                        ("user.empty", b""),
                                        ("user.nul", b"\x00")])
    t.file("xattrs/trusted", 100, xattrs=[("trusted.plain", b"trusted value"),
                                          ("trusted.empty", b"")])
    t.file("xattrs/overlay-escaped", 100, xattrs=[
        ("trusted.overlay.foo", b"must show as trusted.overlay.foo"),
        ("trusted.overlay.overlay.bar", b"already escaped once"),
        ("trusted.overlay.metacopy", b""),
        ("trusted.overlay.redirect", b"/not/a/real/redirect")])
    t.file("xattrs/overlay-escaped-inline", 10, xattrs=[
        ("trusted.overlay.metacopy", b""),
        ("trusted.overlay.whiteout", b"")])
    t.mkdir("xattrs/escaped-opaque", xattrs=[("trusted.overlay.opaque", b"y")])
    t.file("xattrs/escaped-opaque/still-visible", 10)
    t.file("xattrs/capability", 4096 + 11, mode=0o755,
           xattrs=[("security.capability", capability_v2(1 << 10 | 1 << 13))])
    t.file("xattrs/many", 66, xattrs=[
        (f"user.many.{i:03d}", content(f"many-{i}", i % 23)) for i in range(60)])
    t.file("xattrs/long-name", 1, xattrs=[("user." + "n" * 250, b"long name")])
    t.file("xattrs/big-value", 1, xattrs=[("user.big", content("bigx", 3000))])
    t.mkdir("xattrs/shared")
    for i in range(24):
        t.file(f"xattrs/shared/f{i:02d}", i * 7,
               xattrs=[shared, tshared, ("user.own", f"own {i}".encode())])

    # Names.
    t.mkdir("names")
    name_list = [
        b"n" * 255,
        "\u00e9".encode() * 127 + b"x",
        b"with space", b" leading-space", b"trailing-space ",
        b"new\nline", b"back\\slash", b"a=b", b"=", b"-leading-dash", b"--",
        b"\xff\xfe-not-utf8-\xe9", b"\x80", b".hidden", b"..dots", b"tab\there",
        b"quote'\"", b"#hash", b"@at", b"%percent", b"*", b"?",
        "\u65e5\u672c\u8a9e".encode(), "\U0001f600".encode(), b"\x01ctrl",
        b"\x7fdel",
    ]
    for n in name_list:
        t.file(b"names/" + n, len(n) % 80, label="name:" + n.hex())
    t.mkdir(b"names/" + b"d" * 255)
    t.file(b"names/" + b"d" * 255 + b"/" + b"f" * 255, 100)
    t.symlink(b"names/symlink with\nnewline", b"new\nline")

    # A directory holding an overlay whiteout.
    t.mkdir("wh", mtime=1690000000 * NS + 55)
    t.node(CHR, "wh/gone", rdev=(0, 0), mode=0o000)
    t.file("wh/kept", 100)
    t.mkdir("wh/sub")
    t.file("wh/sub/deeper", 3)

    # 5,000 entries. Mostly empty files with mtime 0 and owner 0, the
    # inodes that fit the compact layout; some inline, some objects.
    t.mkdir("big-dir")
    for i in range(5000):
        name = f"e{i:05d}"
        if i % 500 == 499:
            t.file(f"big-dir/{name}", 65 + i, mtime=0)
        elif i % 7 == 3:
            t.file(f"big-dir/{name}", 1 + i % 64, mtime=0)
        elif i % 1000 == 1:
            t.mkdir(f"big-dir/{name}", mtime=0)
        else:
            t.file(f"big-dir/{name}", 0, mtime=0)

    # 150 levels.
    path = "deep"
    t.mkdir(path)
    for level in range(1, 151):
        path += f"/l{level:03d}"
        t.mkdir(path, mtime=1650000000 * NS + level)
        if level % 50 == 0:
            t.file(path + "/file", 5000 + level)
    t.symlink(path + "/up", "../" * 150)
    return t


def walk_spec(tree, reverse):
    """(path, node) pairs, parents before children, each directory's
    entries in (reverse) byte order."""
    stack = [(b"", tree.root)]
    while stack:
        path, node = stack.pop()
        yield path, node
        if node.kind == DIR:
            names = sorted(node.children, reverse=reverse)
            # the stack is LIFO: push in opposite order
            for name in reversed(names):
                stack.append((path + b"/" + name if path else name,
                              node.children[name]))


def create(top, tree, reverse):
    first = {}  # id(node) -> first created path
    order = []
    for rel, node in walk_spec(tree, reverse):
        path = os.path.join(top, rel) if rel else top
        if rel == b"":
            first[id(node)] = path
            order.append((rel, node))
            continue
        if id(node) in first:
            os.link(first[id(node)], path, follow_symlinks=False)
            continue
        first[id(node)] = path
        order.append((rel, node))
        if node.kind == DIR:
            os.mkdir(path, 0o700)
        elif node.kind == REG:
            with open(path, "xb") as f:
                f.write(node.data)
        elif node.kind == LNK:
            os.symlink(node.target, path)
        elif node.kind in (CHR, BLK):
            t = stat.S_IFCHR if node.kind == CHR else stat.S_IFBLK
            os.mknod(path, t | 0o600, os.makedev(*node.rdev))
        elif node.kind == FIFO:
            os.mkfifo(path, 0o600)
        elif node.kind == SOCK:
            # sun_path holds 108 bytes: bind relative to the directory.
            parent, name = os.path.split(path)
            cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.chdir(parent)
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sk:
                    sk.bind(name)
            finally:
                os.fchdir(cwd)
                os.close(cwd)
        else:
            raise AssertionError(node.kind)

    # Owners first (chown clears setuid/setgid and security.capability),
    # then modes, then xattrs. Content is already written.
    for rel, node in order:
        path = first[id(node)]
        os.chown(path, node.uid, node.gid, follow_symlinks=False)
        if node.kind != LNK:
            os.chmod(path, node.mode)
        for name, value in node.xattrs:
            os.setxattr(path, name, value, follow_symlinks=False)

    # Times last: non-directories, then directories deepest first (a new
    # entry would change its parent's mtime).
    for rel, node in order:
        if node.kind != DIR:
            os.utime(first[id(node)], ns=(node.mtime, node.mtime),
                     follow_symlinks=False)
    dirs = [(rel, node) for rel, node in order if node.kind == DIR]
    dirs.sort(key=lambda e: (-(e[0].count(b"/") + (1 if e[0] else 0)), e[0]))
    for rel, node in dirs:
        os.utime(first[id(node)], ns=(node.mtime, node.mtime),
                 follow_symlinks=False)
    return len(order)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--order", choices=("normal", "reverse"), default="normal",
                    help="creation order of each directory's entries")
    ap.add_argument("dir")
    args = ap.parse_args()

    if os.geteuid() != 0:
        sys.exit("make-test-tree.py: needs root (mknod, chown, trusted.* xattrs)")
    top = os.fsencode(os.path.abspath(args.dir))
    try:
        os.mkdir(top, 0o755)
    except FileExistsError:
        if os.listdir(top):
            sys.exit(f"make-test-tree.py: {args.dir}: exists and is not empty")
    os.umask(0)
    n = create(top, build_spec(), args.order == "reverse")
    print(f"make-test-tree.py: {n} inodes in {args.dir} (order {args.order})")


if __name__ == "__main__":
    main()
