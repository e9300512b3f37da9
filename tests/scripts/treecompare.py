#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
"""Compare a source tree with the mounted composefs image made from it.

Usage: treecompare.py SRC MOUNT
       treecompare.py --self-check SCRATCH

Compares names, file types, full st_mode, uid/gid, mtime (seconds and
nanoseconds, directories and the root included), sizes of non-directories,
link counts, symlink targets, device numbers, xattrs (names and bytes),
file contents (sha256) and hardlink groups (names that share an inode in SRC
must share one in MOUNT, and the other way round).

Overlay whiteouts: a character device 0:0 in SRC must show in MOUNT as an
empty regular file with the same permission bits carrying
trusted.overlay.whiteout="" and user.overlay.whiteout="", and its directory
must carry, besides its own xattrs, trusted.overlay.whiteouts="",
user.overlay.whiteouts="", trusted.overlay.opaque="x" and
user.overlay.opaque="x".

Prints each difference on one line ("DIFF path: what") and exits 1 if there
is any; else prints one summary line and exits 0. Exit 2 on usage errors.

--self-check builds small tree pairs under SCRATCH (needs root), checks that
an exact pair compares equal and that each of a list of single mutations is
reported with the expected kind of difference.
"""
import collections
import hashlib
import os
import stat
import sys

WHITEOUT_XATTRS = {
    "trusted.overlay.whiteout": b"",
    "user.overlay.whiteout": b"",
}
WHITEOUT_PARENT_XATTRS = {
    "trusted.overlay.whiteouts": b"",
    "user.overlay.whiteouts": b"",
    "trusted.overlay.opaque": b"x",
    "user.overlay.opaque": b"x",
}

TYPE_NAMES = {
    stat.S_IFDIR: "directory", stat.S_IFREG: "regular file",
    stat.S_IFLNK: "symlink", stat.S_IFCHR: "char device",
    stat.S_IFBLK: "block device", stat.S_IFIFO: "fifo",
    stat.S_IFSOCK: "socket",
}


def show(b):
    """Bytes (a name, a target, a value) as one printable line."""
    if isinstance(b, str):
        b = os.fsencode(b)
    out = []
    for c in b:
        if 0x20 <= c < 0x7F and c != 0x5C:
            out.append(chr(c))
        else:
            out.append("\\x%02x" % c)
    return "".join(out)


def show_value(v, limit=48):
    s = show(v)
    if len(s) > limit:
        s = s[:limit] + "...(%d bytes)" % len(v)
    return '"' + s + '"'


def is_whiteout(st):
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def has_whiteout_child(path):
    return any(is_whiteout(os.lstat(os.path.join(path, n)))
               for n in os.listdir(path))


def xattrs(path):
    out = {}
    for name in os.listxattr(path, follow_symlinks=False):
        out[name] = os.getxattr(path, name, follow_symlinks=False)
    return out


def sha256_file(path):
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            n += len(chunk)
            h.update(chunk)
    return h.hexdigest(), n


def fmt_time(ns):
    return "%d.%09d" % divmod(ns, 1000000000)


class Comparer:
    def __init__(self, src, dst):
        self.src = os.fsencode(src)
        self.dst = os.fsencode(dst)
        self.diffs = []
        self.counts = collections.Counter()
        # path -> inode number, for non-directories present on both sides
        self.src_ino = {}
        self.dst_ino = {}

    def diff(self, rel, what):
        self.diffs.append("DIFF %s: %s" % (show(b"/" + rel), what))

    def compare_node(self, rel, sst, dst_st, spath, dpath, whiteout_parent):
        """Compare one pair; returns True if both are directories."""
        stype = stat.S_IFMT(sst.st_mode)
        dtype = stat.S_IFMT(dst_st.st_mode)
        whiteout = is_whiteout(sst)

        if whiteout:
            self.counts["whiteouts"] += 1
            if dtype != stat.S_IFREG:
                self.diff(rel, "type: source whiteout (char 0:0) is a %s in "
                          "the mount, expected an empty regular file"
                          % TYPE_NAMES.get(dtype, oct(dtype)))
                return False
            if stat.S_IMODE(sst.st_mode) != stat.S_IMODE(dst_st.st_mode):
                self.diff(rel, "mode: whiteout permissions %04o != %04o"
                          % (stat.S_IMODE(sst.st_mode),
                             stat.S_IMODE(dst_st.st_mode)))
            if dst_st.st_size != 0:
                self.diff(rel, "size: whiteout is %d bytes in the mount"
                          % dst_st.st_size)
        else:
            self.counts[TYPE_NAMES.get(stype, "other")] += 1
            if stype != dtype:
                self.diff(rel, "type: %s != %s"
                          % (TYPE_NAMES.get(stype, oct(stype)),
                             TYPE_NAMES.get(dtype, oct(dtype))))
                return False
            if sst.st_mode != dst_st.st_mode:
                self.diff(rel, "mode: %07o != %07o"
                          % (sst.st_mode, dst_st.st_mode))

        if sst.st_uid != dst_st.st_uid:
            self.diff(rel, "uid: %d != %d" % (sst.st_uid, dst_st.st_uid))
        if sst.st_gid != dst_st.st_gid:
            self.diff(rel, "gid: %d != %d" % (sst.st_gid, dst_st.st_gid))
        if sst.st_mtime_ns != dst_st.st_mtime_ns:
            ss, sn = divmod(sst.st_mtime_ns, 1000000000)
            ds, dn = divmod(dst_st.st_mtime_ns, 1000000000)
            parts = []
            if ss != ds:
                parts.append("seconds")
            if sn != dn:
                parts.append("nanoseconds")
            self.diff(rel, "mtime (%s): %s != %s"
                      % (" and ".join(parts), fmt_time(sst.st_mtime_ns),
                         fmt_time(dst_st.st_mtime_ns)))
        if sst.st_nlink != dst_st.st_nlink:
            self.diff(rel, "nlink: %d != %d" % (sst.st_nlink, dst_st.st_nlink))

        if stype != stat.S_IFDIR and not whiteout:
            if sst.st_size != dst_st.st_size:
                self.diff(rel, "size: %d != %d" % (sst.st_size, dst_st.st_size))
        if stype in (stat.S_IFCHR, stat.S_IFBLK) and not whiteout:
            if sst.st_rdev != dst_st.st_rdev:
                self.diff(rel, "rdev: %d:%d != %d:%d"
                          % (os.major(sst.st_rdev), os.minor(sst.st_rdev),
                             os.major(dst_st.st_rdev), os.minor(dst_st.st_rdev)))
        if stype == stat.S_IFLNK:
            st_, dt_ = os.readlink(spath), os.readlink(dpath)
            if st_ != dt_:
                self.diff(rel, "symlink target: %s != %s"
                          % (show_value(st_), show_value(dt_)))

        # xattrs
        sx, dx = xattrs(spath), xattrs(dpath)
        expected = dict(sx)
        if whiteout:
            expected.update(WHITEOUT_XATTRS)
        if stype == stat.S_IFDIR and whiteout_parent:
            expected.update(WHITEOUT_PARENT_XATTRS)
        self.counts["xattrs"] += len(sx)
        for name in sorted(set(expected) | set(dx)):
            if name not in dx:
                self.diff(rel, "xattr %s: missing in the mount%s"
                          % (show(name), " (whiteout rule)"
                             if name not in sx else ""))
            elif name not in expected:
                self.diff(rel, "xattr %s: only in the mount (%s)"
                          % (show(name), show_value(dx[name])))
            elif expected[name] != dx[name]:
                self.diff(rel, "xattr %s: value %s != %s"
                          % (show(name), show_value(expected[name]),
                             show_value(dx[name])))

        if stype == stat.S_IFREG:
            sh, sn = sha256_file(spath)
            dh, dn = sha256_file(dpath)
            self.counts["content bytes"] += sn
            if sh != dh or sn != dn:
                self.diff(rel, "content: sha256 %s (%d bytes) != %s (%d bytes)"
                          % (sh[:16], sn, dh[:16], dn))
        elif whiteout:
            _, dn = sha256_file(dpath)
            if dn != 0:
                self.diff(rel, "content: whiteout has %d bytes in the mount" % dn)

        if stype != stat.S_IFDIR:
            self.src_ino[rel] = sst.st_ino
            self.dst_ino[rel] = dst_st.st_ino
        return stype == stat.S_IFDIR

    def run(self):
        sst = os.lstat(self.src)
        dst_st = os.lstat(self.dst)
        if not stat.S_ISDIR(sst.st_mode) or not stat.S_ISDIR(dst_st.st_mode):
            self.diff(b"", "both roots must be directories")
            return
        stack = [b""]
        first = True
        while stack:
            rel = stack.pop()
            spath = os.path.join(self.src, rel) if rel else self.src
            dpath = os.path.join(self.dst, rel) if rel else self.dst
            snames = set(os.listdir(spath))
            dnames = set(os.listdir(dpath))
            if first:
                # the root itself, with the mount root's own metadata
                self.compare_node(b"", sst, dst_st, spath, dpath,
                                  has_whiteout_child(spath))
                first = False
            for name in sorted(snames - dnames):
                self.diff(rel + b"/" + name if rel else name,
                          "missing in the mount")
            for name in sorted(dnames - snames):
                self.diff(rel + b"/" + name if rel else name,
                          "only in the mount")
            subdirs = []
            for name in sorted(snames & dnames):
                crel = rel + b"/" + name if rel else name
                cs, cd = os.path.join(spath, name), os.path.join(dpath, name)
                cst, cdt = os.lstat(cs), os.lstat(cd)
                child_wh = stat.S_ISDIR(cst.st_mode) and has_whiteout_child(cs)
                if self.compare_node(crel, cst, cdt, cs, cd, child_wh):
                    subdirs.append(crel)
            stack.extend(reversed(subdirs))
        self.check_hardlinks()

    def check_hardlinks(self):
        s2d = collections.defaultdict(set)
        d2s = collections.defaultdict(set)
        s_names = collections.defaultdict(list)
        d_names = collections.defaultdict(list)
        for rel, sino in self.src_ino.items():
            dino = self.dst_ino[rel]
            s2d[sino].add(dino)
            d2s[dino].add(sino)
            s_names[sino].append(rel)
            d_names[dino].append(rel)
        for sino, dinos in sorted(s2d.items()):
            names = sorted(s_names[sino])
            if len(names) > 1:
                self.counts["hardlink groups"] += 1
            if len(dinos) > 1:
                self.diff(names[0], "hardlink group split in the mount: %s"
                          % ", ".join(show(b"/" + n) for n in names))
        for dino, sinos in sorted(d2s.items()):
            if len(sinos) > 1:
                names = sorted(d_names[dino])
                self.diff(names[0], "names share one inode in the mount but "
                          "not in the source: %s"
                          % ", ".join(show(b"/" + n) for n in names))

    def summary(self):
        c = self.counts
        kinds = ["directory", "regular file", "symlink", "char device",
                 "block device", "fifo", "socket"]
        total = sum(c[k] for k in kinds) + c["whiteouts"]
        return ("treecompare: OK: %d entries (%s, %d whiteouts), %d xattrs, "
                "%d content bytes, %d hardlink groups"
                % (total, ", ".join("%d %s" % (c[k], k) for k in kinds),
                   c["whiteouts"], c["xattrs"], c["content bytes"],
                   c["hardlink groups"]))


def compare(src, dst):
    c = Comparer(src, dst)
    c.run()
    return c


# ---- self-check -------------------------------------------------------

def _mk_pair(base, mount_like):
    """A small tree; mount_like renders the whiteout the way a mounted
    image shows it."""
    os.mkdir(base)
    j = lambda *p: os.path.join(base, *p)
    os.mkdir(j("d"))
    os.mkdir(j("wh"))
    with open(j("d", "file"), "wb") as f:
        f.write(b"content of a file\n" * 10)
    with open(j("d", "small"), "wb") as f:
        f.write(b"x")
    for n in ("h1", "h2", "h3"):
        with open(j(n), "wb") as f:
            f.write(b"same content in three files")
    os.link(j("h1"), j("hl"))
    os.symlink("d/file", j("sym"))
    os.mkfifo(j("fifo"))
    os.mknod(j("chr"), stat.S_IFCHR | 0o640, os.makedev(259, 300000))
    if mount_like:
        with open(j("wh", "gone"), "wb"):
            pass
        for k, v in WHITEOUT_XATTRS.items():
            os.setxattr(j("wh", "gone"), k, v)
        for k, v in WHITEOUT_PARENT_XATTRS.items():
            os.setxattr(j("wh"), k, v)
    else:
        os.mknod(j("wh", "gone"), stat.S_IFCHR | 0o000, os.makedev(0, 0))
    os.chmod(j("wh", "gone"), 0o000)
    os.setxattr(j("d", "file"), "user.a", b"\x00\x01binary")
    os.setxattr(j("d", "file"), "user.empty", b"")
    os.setxattr(j("sym"), "trusted.t", b"on a symlink", follow_symlinks=False)
    os.chown(j("d", "file"), 1000, 70000)
    t = 1600000000 * 10**9
    for i, p in enumerate(["d/file", "d/small", "h1", "h2", "h3", "sym", "fifo",
                           "chr", "wh/gone"]):
        os.utime(j(p), ns=(t + i, t + i * 1000003), follow_symlinks=False)
    for i, p in enumerate(["d", "wh", ""]):
        os.utime(j(p) if p else base, ns=(t, t + 777 + i))


def _keep_times(path, fn):
    """Run fn, then restore the mtimes of path (if it still exists) and of
    its parent, so that a mutation changes only what it means to."""
    parent = os.path.dirname(path)
    saved = [(p, os.lstat(p)) for p in (path, parent) if os.path.lexists(p)]
    fn()
    for p, st in saved:
        if os.path.lexists(p):
            os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns),
                     follow_symlinks=False)


def _write(path, data, mode="r+b"):
    def do():
        with open(path, mode) as f:
            f.write(data)
    _keep_times(path, do)


def _replace(path, make):
    """Replace path by what make(path) creates, keeping its mtime and its
    parent's."""
    st = os.lstat(path)

    def do():
        os.unlink(path)
        make(path)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns),
                 follow_symlinks=False)
    _keep_times(path, do)


class _Outside:
    """Extra names outside the compared tree (same file system), so that a
    mutation can change hardlink grouping while keeping every link count."""

    def __init__(self, scratch):
        self.dir = os.path.join(scratch, "outside")
        os.makedirs(self.dir, exist_ok=True)
        self.n = 0

    def link(self, path):
        self.n += 1
        os.link(path, os.path.join(self.dir, "x%d" % self.n))


def _split_hardlink(base, outside):
    # source: h1 and hl are one inode (nlink 2). Now they are two inodes
    # with the same content and metadata, each with a second name outside
    # the tree: only the grouping differs.
    j = lambda p: os.path.join(base, p)

    def do():
        st = os.lstat(j("hl"))
        os.unlink(j("hl"))
        with open(j("hl"), "wb") as f:
            f.write(b"same content in three files")
        os.utime(j("hl"), ns=(st.st_atime_ns, st.st_mtime_ns))
        outside.link(j("hl"))
        outside.link(j("h1"))
    _keep_times(j("hl"), do)


def _join_files(base, outside):
    # source: h2 and h3 are separate; now they are one inode.
    j = lambda p: os.path.join(base, p)
    _keep_times(j("h3"), lambda: (os.unlink(j("h3")), os.link(j("h2"), j("h3"))))


def self_check(scratch):
    if os.geteuid() != 0:
        print("treecompare: self-check needs root (mknod, trusted.* xattrs)",
              file=sys.stderr)
        return 2
    scratch = os.path.abspath(scratch)
    os.makedirs(scratch, exist_ok=True)
    os.umask(0o022)

    outside = _Outside(scratch)

    def touch_ns(p, delta):
        st = os.lstat(p)
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + delta),
                 follow_symlinks=False)

    def remove(p):
        _keep_times(p, lambda: os.unlink(p))

    # (what, path in the mutated copy, mutation, text the report must hold)
    mutations = [
        ("mode bits", "d/file", lambda p: os.chmod(p, 0o600), "mode:"),
        ("setuid bit", "d/small", lambda p: os.chmod(p, 0o4644), "mode:"),
        ("uid", "d/file", lambda p: os.chown(p, 1001, -1), "uid:"),
        ("gid", "d/small", lambda p: os.chown(p, -1, 4294967294), "gid:"),
        ("mtime nanoseconds", "d/file", lambda p: touch_ns(p, 1),
         "mtime (nanoseconds)"),
        ("mtime seconds", "fifo", lambda p: touch_ns(p, 10**9),
         "mtime (seconds)"),
        ("directory mtime", "d", lambda p: touch_ns(p, -1), "mtime"),
        ("root mtime", "", lambda p: touch_ns(p, 5), "mtime"),
        ("symlink mtime", "sym", lambda p: touch_ns(p, 3), "mtime"),
        ("content, same size", "d/file", lambda p: _write(p, b"C"), "content:"),
        ("size", "d/small", lambda p: _write(p, b"more", "ab"), "size:"),
        ("xattr value", "d/file",
         lambda p: os.setxattr(p, "user.a", b"\x00\x01binarY"), "value"),
        ("xattr removed", "d/file",
         lambda p: os.removexattr(p, "user.empty"), "missing in the mount"),
        ("xattr added", "d/small",
         lambda p: os.setxattr(p, "user.new", b""), "only in the mount"),
        ("symlink xattr", "sym", lambda p: os.setxattr(
            p, "trusted.t", b"changed", follow_symlinks=False), "value"),
        ("entry missing", "d/small", remove, "missing in the mount"),
        ("extra entry", "d/extra", lambda p: _write(p, b"", "wb"),
         "only in the mount"),
        ("symlink target", "sym",
         lambda p: _replace(p, lambda q: os.symlink("d/filE", q)),
         "symlink target"),
        ("device number", "chr", lambda p: _replace(
            p, lambda q: os.mknod(q, stat.S_IFCHR | 0o640,
                                  os.makedev(259, 300001))), "rdev:"),
        ("file type", "fifo",
         lambda p: _replace(p, lambda q: open(q, "wb").close()), "type:"),
        ("nlink", "d/file", outside.link, "nlink:"),
        ("hardlink group split", "", lambda p: _split_hardlink(p, outside),
         "hardlink group split"),
        ("hardlink group joined", "", lambda p: _join_files(p, outside),
         "share one inode"),
        ("whiteout xattr missing", "wh/gone",
         lambda p: os.removexattr(p, "user.overlay.whiteout"), "whiteout rule"),
        ("whiteout parent xattr missing", "wh",
         lambda p: os.removexattr(p, "trusted.overlay.opaque"), "whiteout rule"),
        ("whiteout parent xattr value", "wh",
         lambda p: os.setxattr(p, "user.overlay.opaque", b"y"), "value"),
        ("whiteout left a device", "wh/gone", lambda p: _replace(
            p, lambda q: os.mknod(q, stat.S_IFCHR, os.makedev(0, 0))), "type:"),
        ("whiteout not empty", "wh/gone", lambda p: _write(p, b"data"),
         "size:"),
    ]

    failures = 0
    src = os.path.join(scratch, "ref")
    _mk_pair(src, False)
    same = os.path.join(scratch, "same")
    _mk_pair(same, True)
    c = compare(src, same)
    if c.diffs:
        failures += 1
        print("treecompare: self-check FAILED: identical pair reported:")
        for d in c.diffs:
            print("  " + d)
    for i, (what, rel, fn, expect) in enumerate(mutations):
        dst = os.path.join(scratch, "m%02d" % i)
        _mk_pair(dst, True)
        fn(os.path.join(dst, rel) if rel else dst)
        c = compare(src, dst)
        if not c.diffs:
            failures += 1
            print("treecompare: self-check FAILED: %s (%s) not detected"
                  % (what, rel or "/"))
        elif expect and not any(expect in d for d in c.diffs):
            failures += 1
            print("treecompare: self-check FAILED: %s (%s) reported as: %s"
                  % (what, rel or "/", " | ".join(c.diffs)))
    if failures:
        return 1
    print("treecompare: self-check OK: identical pair equal, %d mutations "
          "detected" % len(mutations))
    return 0


def main(argv):
    if len(argv) == 3 and argv[1] == "--self-check":
        return self_check(argv[2])
    if len(argv) != 3 or argv[1].startswith("-"):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        print(__doc__.strip().splitlines()[3], file=sys.stderr)
        return 2
    for p in argv[1:]:
        if not os.path.isdir(p):
            print("treecompare: %s: not a directory" % p, file=sys.stderr)
            return 2
    c = compare(argv[1], argv[2])
    for d in c.diffs:
        print(d)
    if c.diffs:
        print("treecompare: %d difference(s) between %s and %s"
              % (len(c.diffs), argv[1], argv[2]))
        return 1
    print(c.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
