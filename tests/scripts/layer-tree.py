#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
"""Unpack one OCI layer alone into a directory, whiteouts kept as overlayfs
whiteouts, independently of oci2cfs: the tree whose composefs image the
composefs.layer.sha256-12 sealing annotation digests.

Usage: layer-tree.py LAYER-BLOB OUTDIR   (root: devices, owners, xattrs)

".wh.NAME" becomes the character device 0:0 NAME (the entry's mode bits,
owner and mtime), ".wh..wh..opq" the xattr trusted.overlay.opaque="y" on
its directory. Directories the layer implies without listing them, and
the root unless listed, are 0755, root, mtime 0. Handles plain, gzip
tars (Python's tarfile) with regular files, directories, symlinks,
hardlinks, devices, fifos and PAX xattrs.
"""
import os
import stat
import sys
import tarfile

WH = ".wh."
OPQ = ".wh..wh..opq"


def main():
    blob, out = sys.argv[1:3]
    os.makedirs(out)
    dirs = {"": (0o755, 0, 0, 0, {})}  # path -> (mode, uid, gid, mtime, xattrs)
    opaque = set()

    def ensure_parent(rel):
        parent = os.path.dirname(rel)
        parts = parent.split("/") if parent else []
        for i in range(1, len(parts) + 1):
            p = "/".join(parts[:i])
            if p not in dirs:
                os.mkdir(os.path.join(out, p))
                dirs[p] = (0o755, 0, 0, 0, {})

    def meta(path, ti):
        os.chown(path, ti.uid, ti.gid, follow_symlinks=False)
        if not ti.issym():
            os.chmod(path, ti.mode & 0o7777)
        ns = int(ti.mtime * 10**9)
        os.utime(path, ns=(ns, ns), follow_symlinks=False)

    with tarfile.open(blob) as t:
        for ti in t:
            rel = os.path.normpath(ti.name.lstrip("/")).lstrip("./") if ti.name not in (".", "./") else ""
            rel = "" if rel == "." else rel
            xattrs = {k[len("SCHILY.xattr."):]: v.encode("utf-8", "surrogateescape")
                      for k, v in ti.pax_headers.items() if k.startswith("SCHILY.xattr.")}
            base = os.path.basename(rel)
            if rel:
                ensure_parent(rel)
            path = os.path.join(out, rel)
            if base == OPQ:
                opaque.add(os.path.dirname(rel))
                continue
            if base.startswith(WH):
                path = os.path.join(out, os.path.dirname(rel), base[len(WH):])
                if os.path.lexists(path):
                    os.unlink(path)
                os.mknod(path, stat.S_IFCHR | (ti.mode & 0o7777), os.makedev(0, 0))
                meta(path, ti)
                continue
            if ti.isdir():
                if rel and not os.path.isdir(path):
                    os.mkdir(path)
                dirs[rel] = (ti.mode & 0o7777, ti.uid, ti.gid, ti.mtime, xattrs)
                continue
            if os.path.lexists(path):
                os.unlink(path)
            if ti.islnk():
                os.link(os.path.join(out, os.path.normpath(ti.linkname.lstrip("/"))), path)
                continue
            if ti.isreg():
                with open(path, "wb") as f:
                    f.write(t.extractfile(ti).read())
            elif ti.issym():
                os.symlink(ti.linkname, path)
            elif ti.ischr() or ti.isblk():
                kind = stat.S_IFCHR if ti.ischr() else stat.S_IFBLK
                os.mknod(path, kind | (ti.mode & 0o7777), os.makedev(ti.devmajor, ti.devminor))
            elif ti.isfifo():
                os.mkfifo(path, ti.mode & 0o7777)
            else:
                sys.exit("layer-tree: %s: unsupported type %r" % (ti.name, ti.type))
            for k, v in xattrs.items():
                os.setxattr(path, k, v, follow_symlinks=False)
            meta(path, ti)
    for rel in sorted(dirs, key=lambda p: -p.count("/") - (1 if p else 0)):
        mode, uid, gid, mtime, xattrs = dirs[rel]
        path = os.path.join(out, rel) if rel else out
        for k, v in xattrs.items():
            os.setxattr(path, k, v)
        if rel in opaque:
            os.setxattr(path, "trusted.overlay.opaque", b"y")
        os.chown(path, uid, gid)
        os.chmod(path, mode)
        ns = int(mtime * 10**9)
        os.utime(path, ns=(ns, ns))


if __name__ == "__main__":
    main()
