#!/bin/bash
# Shared page cache: debian-minbase and debian-python share their base
# layer's files. Imported into one store and mounted, reading
# every regular file through the first mount and then through the second
# must not read the shared content into the page cache again: the second
# pass may add less than 5% of the shared bytes (measured with fincore on
# the shared object files).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
test_init pagecache CFS_SRC
need_root "mount, drop_caches"
need_exec "$CFS_BIN/cfs-store" "$CFS_BIN/oci2cfs"
need_tool fincore python3
corpus=$("$CFS_SRC/tests/scripts/need-corpus.sh")

# Both images imported into one store and mounted by it.
store="$work/store"
for img in debian-minbase debian-python; do
	digest=$("$CFS_BIN/cfs-store" --root "$store" import "oci:$corpus/$img" --name "$img")
	"$CFS_BIN/oci2cfs" --dump "$work/$img.dump" "cfs:$store/images/$digest.cfs" - > /dev/null
	mkdir "$work/$img.root"
	"$CFS_BIN/cfs-store" --root "$store" mount "$img" "$work/$img.root"
done

# Objects both images use: the payload column of both dumps.
python3 - "$work" <<'PY'
import sys
tmp = sys.argv[1]
def payloads(p):
    out = set()
    for line in open(p, "rb"):
        f = line.split(b" ")
        if len(f) > 8 and f[2].startswith(b"10") and f[8] != b"-":
            out.add(f[8].decode())
    return out
shared = payloads(tmp + "/debian-minbase.dump") & payloads(tmp + "/debian-python.dump")
with open(tmp + "/shared.list", "w") as f:
    for p in sorted(shared):
        f.write(tmp + "/store/objects/" + p + "\n")
PY
nshared=$(wc -l < "$work/shared.list")
[ "$nshared" -gt 1000 ] || fail "only $nshared shared objects"

cached() { xargs -a "$work/shared.list" -d '\n' fincore --bytes --noheadings --raw --output RES | awk '{s+=$1} END {print s+0}'; }
shared_bytes=$(xargs -a "$work/shared.list" -d '\n' stat -c %s | awk '{s+=$1} END {print s}')
readall() { find "$1" -type f -print0 | xargs -0 cat > /dev/null; }

sync
echo 3 > /proc/sys/vm/drop_caches
before=$(cached)
readall "$work/debian-minbase.root"
after1=$(cached)
readall "$work/debian-python.root"
after2=$(cached)

python3 - "$shared_bytes" "$before" "$after1" "$after2" <<'PY'
import sys
shared, before, a1, a2 = map(int, sys.argv[1:])
first, second = a1 - before, a2 - a1
print("shared objects: %.1f MiB; cached by pass 1: %.1f MiB; added by pass 2: %.2f MiB (%.2f%%)"
      % (shared / 2**20, first / 2**20, second / 2**20, 100.0 * second / shared))
assert first > 0.9 * shared, "pass 1 did not bring the shared objects into the page cache"
assert second < 0.05 * shared, "pass 2 read shared content again"
PY
echo "$me: ok ($nshared shared objects)"
