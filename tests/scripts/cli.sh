#!/bin/bash
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
#
# The oci2cfs command line: usage errors (exit 2 and the "Try" line),
# --help and --version, one-line runtime errors (exit 1) that leave no
# output or temporary file behind and keep an existing OUTPUT, refusing a
# directory as OUTPUT and a terminal as stdout, and the --json report
# (keys and counts) for a small known tree.
#
# Runs unprivileged; as root the known tree also gets device nodes.
# Environment: CFS_BIN, CFS_TEST_TMP (see tests/CMakeLists.txt).
set -euo pipefail

. "$(dirname "$0")/lib.sh"
test_init cli
oci2cfs=$CFS_BIN/oci2cfs
need_exec "$oci2cfs"
need_tool python3 fsverity
cd "$work"

# run NAME CMD...: run with stdout/stderr in NAME.out/NAME.err, status in $rc.
run() {
	local name=$1
	shift
	rc=0
	"$@" >"$name.out" 2>"$name.err" || rc=$?
}

# listing DIR: every entry with type, size, mode and mtime, to see that a
# failed run changed nothing (also no hidden temporary files).
listing() {
	(cd "$1" && find . -printf '%p %y %s %m %T@\n' | LC_ALL=C sort)
}

# The known tree: its expected report is below.
python3 - known <<'EOF'
import os, socket, stat, sys
top = sys.argv[1]
os.mkdir(top)
j = lambda *p: os.path.join(top, *p)
def write(p, data):
    with open(p, "wb") as f:
        f.write(data)
os.mkdir(j("sub"))
write(j("empty"), b"")                        # file, not inline
write(j("small"), b"0123456789")              # inline
write(j("edge64"), bytes(range(64)))          # inline, at the limit
write(j("obj100"), b"o" * 100)                # object
write(j("sub", "obj5000"), b"p" * 5000)       # object
write(j("sub", "dup5000"), b"p" * 5000)       # the same object again
os.link(j("obj100"), j("sub", "hard100"))     # hardlink
os.symlink("obj100", j("link"))
os.mkfifo(j("fifo"))
cwd = os.getcwd()
os.chdir(top)
with socket.socket(socket.AF_UNIX) as s:
    s.bind("sock")
os.chdir(cwd)
if os.geteuid() == 0:
    os.mknod(j("chr"), stat.S_IFCHR | 0o644, os.makedev(1, 3))
    os.mknod(j("blk"), stat.S_IFBLK | 0o644, os.makedev(7, 0))
EOF
if [ "$(id -u)" -eq 0 ]; then ndev=1; else ndev=0; fi

step "usage errors exit 2 with the 'Try' line and write nothing"
mkdir empty-cwd
usage_case() {
	local what=$1
	shift
	run usage "$@"
	[ "$rc" -eq 2 ] || fail "$what: exit $rc, expected 2 (stderr: $(cat usage.err))"
	grep -qxF "Try 'oci2cfs --help' for more information." usage.err ||
		fail "$what: no \"Try 'oci2cfs --help'\" line on stderr: $(cat usage.err)"
	[ ! -s usage.out ] || fail "$what: wrote to stdout: $(cat usage.out)"
	[ -z "$(ls -A empty-cwd)" ] || fail "$what: created $(ls -A empty-cwd)"
	echo "ok: $what"
}
usage_case "no arguments" "$oci2cfs"
usage_case "one argument" "$oci2cfs" dir:known
usage_case "three arguments" "$oci2cfs" dir:known empty-cwd/a.cfs empty-cwd/b.cfs
usage_case "unknown option" "$oci2cfs" --no-such-option dir:known empty-cwd/o.cfs
usage_case "missing option argument" "$oci2cfs" dir:known empty-cwd/o.cfs --objects
usage_case "--threads 0" "$oci2cfs" --threads 0 dir:known empty-cwd/o.cfs
usage_case "--threads x" "$oci2cfs" --threads x dir:known empty-cwd/o.cfs
usage_case "'-' with --json" "$oci2cfs" --json dir:known -
usage_case "'-' with --print-digest" "$oci2cfs" --print-digest dir:known -
usage_case "'-' with --dump -" "$oci2cfs" --dump - dir:known -

step "--help and --version"
run help "$oci2cfs" --help
[ "$rc" -eq 0 ] || fail "--help exited $rc"
[ ! -s help.err ] || fail "--help wrote to stderr: $(cat help.err)"
grep -q '^Usage: oci2cfs ' help.out || fail "--help: no 'Usage: oci2cfs' line on stdout"
for opt in --objects --dump --print-digest --json --help --version dir: dump:; do
	grep -qe "$opt" help.out || fail "--help does not mention $opt"
done
run version "$oci2cfs" --version
[ "$rc" -eq 0 ] || fail "--version exited $rc"
[ ! -s version.err ] || fail "--version wrote to stderr"
if ! { [ "$(wc -l <version.out)" -eq 1 ] &&
	grep -qE '^oci2cfs [0-9]+\.[0-9]+' version.out; }; then
	fail "--version printed '$(cat version.out)', expected 'oci2cfs X.Y...'"
fi
echo "ok: $(cat version.out)"

step "runtime errors: one line, exit 1, nothing left behind"
mkdir outdir
echo "previous image" >outdir/existing.cfs
python3 -c 'import os; print("/ 0 40755 2 0 0 0 0.0 - - -"); print("/dev 0 20644 1 0 0 %d 0.0 - - -" % os.makedev(5000, 1))' >too-big-rdev.dump
touch not-a-dir
runtime_case() {
	local what=$1 before
	shift
	before=$(listing outdir)
	run rt "$@"
	[ "$rc" -eq 1 ] || fail "$what: exit $rc, expected 1 (stderr: $(cat rt.err))"
	[ "$(wc -l <rt.err)" -eq 1 ] || fail "$what: expected one line on stderr, got:"$'\n'"$(cat rt.err)"
	grep -q '^oci2cfs: ..*' rt.err || fail "$what: error does not start with 'oci2cfs: ': $(cat rt.err)"
	[ ! -s rt.out ] || fail "$what: wrote to stdout: $(cat rt.out)"
	[ "$(listing outdir)" = "$before" ] ||
		fail "$what: the output directory changed:"$'\n'"$(diff <(echo "$before") <(listing outdir))"
	echo "ok: $what: $(cat rt.err)"
}
runtime_case "missing source" "$oci2cfs" dir:does-not-exist outdir/new.cfs
runtime_case "missing source, existing OUTPUT" "$oci2cfs" dir:does-not-exist outdir/existing.cfs
runtime_case "missing dump" "$oci2cfs" dump:does-not-exist outdir/new.cfs
runtime_case "unknown source type" "$oci2cfs" tar:known outdir/new.cfs
runtime_case "source is a file" "$oci2cfs" dir:not-a-dir outdir/new.cfs
runtime_case "object directory is a file" "$oci2cfs" --objects not-a-dir dir:known outdir/new.cfs
# These fail while writing the image, after the temporary file exists.
runtime_case "unencodable device number" "$oci2cfs" dump:too-big-rdev.dump outdir/new.cfs
runtime_case "unencodable device number, existing OUTPUT" \
	"$oci2cfs" --json dump:too-big-rdev.dump outdir/existing.cfs
runtime_case "unencodable device number, --dump" \
	"$oci2cfs" --dump outdir/new.dump dump:too-big-rdev.dump outdir/new.cfs
runtime_case "OUTPUT in a missing directory" "$oci2cfs" dir:known outdir/missing/new.cfs
[ "$(cat outdir/existing.cfs)" = "previous image" ] || fail "existing OUTPUT was modified"

step "refusing a directory as OUTPUT"
mkdir outdir/a-dir
echo keep >outdir/a-dir/marker
runtime_case "OUTPUT is a directory" "$oci2cfs" dir:known outdir/a-dir
runtime_case "OUTPUT is a directory, trailing slash" "$oci2cfs" dir:known outdir/a-dir/
if ! { [ -d outdir/a-dir ] && [ "$(cat outdir/a-dir/marker)" = keep ]; }; then
	fail "the directory given as OUTPUT was changed"
fi

step "refusing to write an image to a terminal"
if command -v script >/dev/null; then
	rc=0
	script -qec "$(printf '%q ' "$oci2cfs" dir:known -)" /dev/null >tty.out 2>&1 </dev/null || rc=$?
	tr -d '\r' <tty.out >tty.txt
	[ "$rc" -eq 1 ] || fail "writing to a terminal: exit $rc, expected 1 ($(cat tty.txt))"
	[ "$(cat tty.txt)" = "oci2cfs: refusing to write a binary image to a terminal" ] ||
		fail "writing to a terminal: expected only the refusal, the terminal got:"$'\n'"$(cat -v tty.txt)"
	echo "ok: $(cat tty.txt)"
else
	echo "SKIP: terminal check ('script' from util-linux is not installed)"
fi
run pipe "$oci2cfs" dir:known -
[ "$rc" -eq 0 ] || fail "writing the image to a pipe/file failed: $(cat pipe.err)"
[ -s pipe.out ] || fail "no image on stdout"

step "--json report of the known tree"
json_check() {
	python3 - "$@" <<'EOF'
import json, os, subprocess, sys
report, image, source, output, ndev, run = sys.argv[1:7]
ndev, run = int(ndev), int(run)
try:
    r = json.load(open(report))
except ValueError as e:
    sys.exit(f"--json output does not parse: {e}")
errors = []
def expect(path, want):
    v = r
    for k in path.split("."):
        if not isinstance(v, dict) or k not in v:
            errors.append(f"key {path} missing")
            return
        v = v[k]
    if type(v) is not type(want) or v != want:
        errors.append(f"{path} = {v!r}, expected {want!r}")
keys = {"source", "output", "inodes", "hardlinks", "file_bytes", "inline_files",
        "xattrs_dropped", "objects", "image_size", "image_digest", "seconds", "io"}
if set(r) != keys:
    errors.append(f"top-level keys {sorted(r)}, expected {sorted(keys)}")
if set(r.get("io", {})) != {"read_bytes", "write_bytes", "cancelled_write_bytes"}:
    errors.append(f"io keys {sorted(r.get('io', {}))}")
if set(r.get("objects", {})) != {"new", "reused", "new_bytes", "reused_bytes"}:
    errors.append(f"objects keys {sorted(r.get('objects', {}))}")
expect("source", source)
expect("output", output)
expect("inodes.directories", 2)
expect("inodes.files", 6)
expect("inodes.symlinks", 1)
expect("inodes.fifos", 1)
expect("inodes.sockets", 1)
expect("inodes.chardevs", ndev)
expect("inodes.blockdevs", ndev)
expect("hardlinks", 1)
expect("file_bytes", 10 + 64 + 100 + 5000 + 5000)
expect("inline_files", 2)
expect("xattrs_dropped", 0)
if run == 1:    # fresh object directory; dup5000 reuses obj5000's object
    expect("objects.new", 2)
    expect("objects.new_bytes", 5100)
    expect("objects.reused", 1)
    expect("objects.reused_bytes", 5000)
else:           # everything is there already
    expect("objects.new", 0)
    expect("objects.new_bytes", 0)
    expect("objects.reused", 3)
    expect("objects.reused_bytes", 10100)
expect("image_size", os.stat(image).st_size)
digest = subprocess.run(["fsverity", "digest", "--compact", image], check=True,
                        capture_output=True, text=True).stdout.strip()
expect("image_digest", digest)
s = r.get("seconds")
if not isinstance(s, (int, float)) or isinstance(s, bool) or not 0 <= s < 600:
    errors.append(f"seconds = {s!r}")
for e in errors:
    print("json: " + e, file=sys.stderr)
sys.exit(1 if errors else 0)
EOF
}
run json1 "$oci2cfs" --objects objs --json dir:known known.cfs
[ "$rc" -eq 0 ] || fail "--json run failed: $(cat json1.err)"
json_check json1.out known.cfs dir:known known.cfs "$ndev" 1 ||
	fail "wrong --json report (first run):"$'\n'"$(cat json1.out)"
[ "$(find objs -type f | wc -l)" -eq 2 ] || fail "expected 2 object files"
run json2 "$oci2cfs" --objects objs --json --print-digest dir:known known2.cfs
[ "$rc" -eq 0 ] || fail "second --json run failed: $(cat json2.err)"
# --print-digest comes first, then the report.
head -n1 json2.out >digest2
tail -n +2 json2.out >json2.json
[ "$(cat digest2)" = "$(fsverity digest --compact known2.cfs)" ] ||
	fail "--print-digest printed '$(cat digest2)'"
json_check json2.json known2.cfs dir:known known2.cfs "$ndev" 2 ||
	fail "wrong --json report (second run):"$'\n'"$(cat json2.json)"
cmp known.cfs known2.cfs || fail "the two images of the known tree differ"
cmp known.cfs pipe.out || fail "the image written to stdout differs from the file"

echo "$me: PASS"
