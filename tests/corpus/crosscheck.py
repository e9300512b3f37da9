#!/usr/bin/env python3
"""crosscheck.py EXPECTED.tsv UNPACKED.tsv [--umoci-known]

Compares an expected tree (corpus-report.py) with the listing of what
`umoci unpack` extracted (tree-listing.py). Prints every difference and
exits 1 when any is left. With --umoci-known, two differences are known
and accepted (each printed as "known"):
  - a directory the tar implies but never lists: expected/ gives it
    mtime 0, umoci the time of extraction;
  - an xattr with an empty value, which umoci (Go's archive/tar) drops.
"""
import sys

FIELDS = ["path", "type", "mode", "uid", "gid", "size", "mtime", "nlink", "data", "xattrs"]


def load(path):
    rows = {}
    with open(path, "rb") as f:
        for line in f:
            if line.startswith(b"#"):
                continue
            cols = line.rstrip(b"\n").split(b"\t")
            rows[cols[0]] = dict(zip(FIELDS, cols))
    return rows


def xattrs(row):
    v = row["xattrs"]
    return set() if v == b"-" else set(v.split(b","))


def known(exp, got):
    """Why the difference between two rows of one path is known, or None."""
    diff = [k for k in FIELDS if exp.get(k) != got.get(k)]
    if diff == ["mtime"] and exp["type"] == b"d" and exp["mtime"] == b"0":
        return "implicit directory, mtime of extraction"
    if diff == ["xattrs"]:
        lost = xattrs(exp) - xattrs(got)
        if not xattrs(got) - xattrs(exp) and lost and all(x.endswith(b"=") for x in lost):
            return "empty-valued xattr dropped"
    return None


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    allow = "--umoci-known" in sys.argv
    if len(args) != 2:
        sys.exit(__doc__)
    exp, got = load(args[0]), load(args[1])
    bad = 0
    for p in sorted(set(exp) | set(got)):
        e, g = exp.get(p), got.get(p)
        if e == g:
            continue
        name = p.decode("utf-8", "backslashreplace")
        why = known(e, g) if allow and e and g else None
        if why:
            print("known %s: %s" % (name, why))
            continue
        bad += 1
        if not e:
            print("only in umoci unpack: %s" % name)
        elif not g:
            print("missing from umoci unpack: %s" % name)
        else:
            print("differs: %s: %s" % (name, ", ".join(
                "%s %s != %s" % (k, e.get(k, b"").decode(errors="replace"), g.get(k, b"").decode(errors="replace"))
                for k in FIELDS if e.get(k) != g.get(k))))
    print("%d unexpected difference(s)" % bad)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
