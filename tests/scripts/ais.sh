#!/bin/bash
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
#
# The store as a podman additional image store (issue 5's acceptance),
# with real podman and runc on a private graphroot, runroot, storage.conf
# and containers.conf, so the machine's own podman is untouched:
#
#  1. debian-python and debian-minbase imported and synced (a resync
#     removes an empty RUN/<digest> a killed sync left): podman lists
#     both with their names, config digests (ids) and manifest digests;
#     inspect shows their configs. A copy of minbase that differs only in
#     its config is one store image but its own podman image.
#  2. podman run prints 42 with python3; two containers run at once.
#  3. A container writes, deletes and chmods: seen inside, landed in
#     podman's upper dir; the AIS, the store and the mount are unchanged
#     (fsck --verify clean).
#  4. A third image imported and synced while podman lists images in a
#     loop and a podman API service runs: the service lists it without a
#     restart, no listing fails.
#  5. cfs-store rm of an image a container runs on is refused and the
#     container keeps working; after the container stops, rm works.
#  6. ais unmount-all makes podman fail loudly, mount-all restores; a run
#     directory not on tmpfs gets a tmpfs of the store's own (said once).
#
# Needs root (mount), podman and runc (else a skip). Environment:
# CFS_BIN, CFS_SRC, CFS_TESTS, CFS_TEST_TMP, CFS_CORPUS (optional);
# CFS_PODMAN_ROOT: run podman in that root instead (podman 5 in Debian
# 13: ais-podman5.sh, which starts this in a mount namespace of its
# own). The scratch directory is then bound into the root at the same
# path, shared, so that the AIS's absolute paths and the mounts ais sync
# makes later mean the same to podman as to the store; nothing resolves
# to the host's /.
set -euo pipefail

# shellcheck source=tests/scripts/lib.sh
. "$(dirname "$0")/lib.sh"
test_init ais CFS_SRC
cs=$CFS_BIN/cfs-store
need_exec "$cs"
need_root "mount"
proot=${CFS_PODMAN_ROOT:-}
if [ -n "$proot" ]; then
	[ -x "$proot/usr/bin/podman" ] && [ -x "$proot/usr/sbin/runc" ] ||
		fail "$proot has no podman and runc"
	[ "$(readlink /proc/self/ns/mnt)" != "$(readlink /proc/1/ns/mnt)" ] ||
		fail "CFS_PODMAN_ROOT needs a mount namespace of its own (ais-podman5.sh)"
	PODMAN=() # set once its namespace is up (below)
else
	PODMAN=(podman)
	need_tool podman runc
fi
need_tool mountpoint python3

corpus=$("$CFS_SRC/tests/scripts/need-corpus.sh")
root=$work/store
ais=$work/ais
run=$work/run
S=("$cs" --root "$root")
A=(--ais "$ais" --run "$run")
# At exit (the hooks run newest first, then remove_work takes podman's
# own mounts, container overlays and the graphroot's shm, and ours): the
# lister and the API service, the containers, podman's namespace.

mkdir -p "$run"
if [ -n "$proot" ]; then
	# podman runs in a mount namespace of its own whose root mount IS
	# the trixie root (pivot_root, not chroot: runc exec joins a
	# container's mount namespace with setns, which sets the root to the
	# namespace's root mount; under a mere chroot that is the host's /,
	# and a podman exec once wrote to the host's /etc that way). The
	# scratch directory is bound at the same path, shared, so that the
	# AIS's absolute paths and the mounts ais sync makes later mean the
	# same in there. All of it lives in this test's own namespace (no
	# peers outside it): nothing reaches the host's mounts.
	podman_root_up "$proot" "$work" || fail "podman root in $proot"
	echo "$me: podman $("${PODMAN[@]}" --version | awk '{ print $3 }') in $proot (its own mount namespace)"
fi
# The run directory must be on tmpfs (ais sync mounts one on others).
mount -t tmpfs -o size=1m,mode=0755 cfs-test-run "$run"
podman_conf "$work" root "additionalimagestores = [\"$ais\"]"
P=(timeout 120 "${PODMAN[@]}")
rm_containers() { "${PODMAN[@]}" rm -af -t 0 >/dev/null 2>&1; }
on_exit rm_containers

# A listing of a tree that changes if any name, type, mode, owner, size,
# symlink target or content byte does (symlinks are not followed).
tree_state() {
	python3 - "$@" <<'EOF'
import hashlib, os, stat, sys
for top in sys.argv[1:]:
    for d, dirs, files in os.walk(top):
        dirs.sort()
        for n in sorted(dirs + files):
            p = os.path.join(d, n)
            st = os.lstat(p)
            h = ""
            if stat.S_ISREG(st.st_mode):
                h = hashlib.sha256(open(p, "rb").read()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                h = os.readlink(p)
            print(os.path.relpath(p, top), oct(st.st_mode), st.st_uid,
                  st.st_gid, st.st_size if not stat.S_ISDIR(st.st_mode) else 0, h)
EOF
}
store_state() { tree_state "$root/images" "$root/objects" "$root/blobs" "$root/names.json"; }
json_get() { python3 -c 'import json,sys; v=json.load(sys.stdin)
for k in sys.argv[1:]: v=v[int(k)] if isinstance(v,list) else v[k]
print(v if isinstance(v,str) else json.dumps(v))' "$@"; }

step "1: import debian-python and debian-minbase, sync"
dp=$("${S[@]}" import "oci:$corpus/debian-python" --name python)
dm=$("${S[@]}" import "oci:$corpus/debian-minbase" --name minbase)
"${S[@]}" ais sync "${A[@]}" >"$work/out"
grep -q "^2 images (2 newly mounted)" "$work/out" || fail "sync: $(cat "$work/out")"
mountpoint -q "$run/$dp" || fail "$run/$dp is not mounted"
mountpoint -q "$run/$dm" || fail "$run/$dm is not mounted"
# What a sync killed between an umount and its rmdir leaves: an empty
# RUN/<digest> of an image no longer synced, which the next sync removes
# (a non-empty one it leaves).
stale=$run/$(printf '%064d' 0)
kept=$run/$(printf '%064d' 1)
mkdir "$stale" "$kept"
touch "$kept/file"
"${S[@]}" ais sync "${A[@]}" >"$work/out"
grep -q "^2 images (0 newly mounted)" "$work/out" || fail "resync: $(cat "$work/out")"
[ ! -e "$stale" ] || fail "the sync left the empty $stale"
[ -f "$kept/file" ] || fail "the sync removed the non-empty $kept"
rm -r "$kept"
for f in overlay-images/images.json overlay-images/images.lock \
	overlay-layers/layers.json overlay-layers/layers.lock overlay/l; do
	[ -e "$ais/$f" ] || fail "no $f in the AIS"
done
[ "$(stat -c %s "$ais/overlay-images/images.lock")" -ge 64 ] || fail "images.lock has no token"

step "1: podman images: names, ids = config digests, digests = manifest digests"
"${P[@]}" images --format '{{.Repository}}:{{.Tag}} {{.ID}} {{.Digest}} {{.ReadOnly}}' >"$work/images" ||
	fail "podman images failed"
for n in python minbase; do
	"${S[@]}" inspect "$n" --json >"$work/inspect-$n"
	cfg=$(json_get config_digest <"$work/inspect-$n")
	man=$(json_get manifest_digest <"$work/inspect-$n")
	# The store keeps the raw config: its digest is the registry's.
	want_cfg=$(json_get manifests 0 digest <"$corpus/debian-$n/index.json")
	[ "$man" = "$want_cfg" ] || fail "$n: store manifest digest $man, layout says $want_cfg"
	grep -qx "localhost/$n:latest ${cfg:7:12} $man true" "$work/images" ||
		fail "podman images lacks 'localhost/$n:latest ${cfg:7:12} $man true': $(cat "$work/images")"
	id=$("${P[@]}" image inspect "$n" --format '{{.Id}}')
	[ "$id" = "${cfg:7}" ] || fail "$n: podman id $id, config digest $cfg"
	# Its age is the config's, as for podman's own pulls.
	got=$("${P[@]}" image inspect "$n" --format '{{.Created.Unix}}')
	want=$(json_get config created <"$work/inspect-$n" | python3 -c 'import datetime,sys
print(int(datetime.datetime.fromisoformat(sys.stdin.read().strip().replace("Z", "+00:00")[:19] + "+00:00").timestamp()))')
	[ "$got" = "$want" ] || fail "$n: podman says created $got, config $want"
done

step "1: podman image inspect shows the configs"
for n in python minbase; do
	"${P[@]}" image inspect "$n" --format '{{json .Config}}' >"$work/config" ||
		fail "podman image inspect $n failed"
	for k in Cmd Env; do
		want=$(json_get config config "$k" <"$work/inspect-$n")
		got=$(json_get "$k" <"$work/config")
		[ "$got" = "$want" ] || fail "$n: inspect $k $got, want $want"
	done
done
grep -q '"PATH=' "$work/config" || fail "inspect: no PATH in Env: $(cat "$work/config")"

step "1: same tree, another config: one store image, two podman images"
python3 - "$corpus/debian-minbase" "$work/variant" <<'EOF'
import hashlib, json, os, shutil, sys
src, dst = sys.argv[1:]
def link(a, b):
    try:
        os.link(a, b)
    except OSError:  # the scratch directory is a mount of its own
        shutil.copy2(a, b)
shutil.copytree(src, dst, copy_function=link)
def path(d): return os.path.join(dst, "blobs", "sha256", d.split(":")[1])
def put(b):
    d = "sha256:" + hashlib.sha256(b).hexdigest()
    with open(path(d), "wb") as f:
        f.write(b)
    return d, len(b)
index = json.load(open(os.path.join(dst, "index.json")))
m = json.load(open(path(index["manifests"][0]["digest"])))
c = json.load(open(path(m["config"]["digest"])))
c.setdefault("config", {})["Cmd"] = ["echo", "variant"]
m["config"]["digest"], m["config"]["size"] = put(json.dumps(c).encode())
index["manifests"][0]["digest"], index["manifests"][0]["size"] = put(json.dumps(m).encode())
os.unlink(os.path.join(dst, "index.json"))  # a hard link to the corpus
with open(os.path.join(dst, "index.json"), "w") as f:
    json.dump(index, f)
EOF
dv=$("${S[@]}" import "oci:$work/variant" --name variant)
[ "$dv" = "$dm" ] || fail "the variant is image $dv, minbase $dm: not one tree"
"${S[@]}" ais sync "${A[@]}" >"$work/out"
grep -q "^3 images (0 newly mounted)" "$work/out" || fail "sync: $(cat "$work/out")"
idv=$("${P[@]}" image inspect variant --format '{{.Id}}')
idm=$("${P[@]}" image inspect minbase --format '{{.Id}}')
[ "$idv" != "$idm" ] || fail "variant and minbase have one podman id $idv"
got=$("${P[@]}" run --rm variant) || fail "podman run variant failed"
[ "$got" = variant ] || fail "podman run variant printed '$got', want 'variant'"
got=$("${P[@]}" run --rm minbase cat /etc/debian_version) || fail "podman run minbase failed"
[ "$got" = "$(cat "$run/$dm/etc/debian_version")" ] || fail "minbase printed '$got'"
[ "$(json_get config config Cmd < <("${S[@]}" inspect minbase --json))" != '["echo", "variant"]' ] ||
	fail "the variant's config leaked into minbase"

step "2: podman run python3, two containers at once"
got=$("${P[@]}" run --rm python python3 -c 'print(42)') || fail "podman run python3 failed"
[ "$got" = 42 ] || fail "podman run printed '$got', want 42"
"${P[@]}" run -d --name c1 python sleep 600 >/dev/null || fail "podman run -d c1 failed"
"${P[@]}" run -d --name c2 python sleep 600 >/dev/null || fail "podman run -d c2 failed"
[ "$("${P[@]}" ps -q | wc -l)" -eq 2 ] || fail "not two running: $("${P[@]}" ps)"
for c in c1 c2; do
	got=$("${P[@]}" exec "$c" python3 -c 'print(6 * 7)') || fail "exec in $c failed"
	[ "$got" = 42 ] || fail "$c printed '$got'"
done

# Before any container writes: a file only the host has must not be
# there for a podman exec (were it, exec would run on the host's /).
host_canary=$(mktemp /var/tmp/cfs-host-canary.XXXXXX)
for c in c1 c2; do
	if "${P[@]}" exec "$c" test -e "$host_canary"; then
		rm -f "$host_canary"
		fail "podman exec in $c sees the host's root: stopping before any write"
	fi
done
rm -f "$host_canary"

step "3: a container writes, deletes and chmods"
ais_before=$(tree_state "$ais")
store_before=$(store_state)
mount_before=$(tree_state "$run/$dp/etc")
"${P[@]}" exec c1 sh -c 'echo written >/etc/cfs-new && rm /etc/debian_version && chmod 600 /etc/passwd' ||
	fail "changes in c1 failed"
got=$("${P[@]}" exec c1 sh -c 'cat /etc/cfs-new; test -e /etc/debian_version || echo deleted; stat -c %a /etc/passwd')
[ "$got" = "$(printf 'written\ndeleted\n600')" ] || fail "c1 sees: $got"
got=$("${P[@]}" exec c2 sh -c 'test -e /etc/cfs-new || echo clean; cat /etc/debian_version >/dev/null && stat -c %a /etc/passwd')
[ "$got" = "$(printf 'clean\n644')" ] || fail "c2 sees c1's changes: $got"
upper=$("${P[@]}" inspect c1 --format '{{.GraphDriver.Data.UpperDir}}')
[ -d "$upper" ] || fail "no upper dir '$upper'"
[ "$(cat "$upper/etc/cfs-new")" = written ] || fail "upper has no etc/cfs-new"
[ -c "$upper/etc/debian_version" ] || fail "upper has no whiteout for etc/debian_version"
[ "$(stat -c %a "$upper/etc/passwd")" = 600 ] || fail "upper etc/passwd is not mode 600"
[ "$(tree_state "$ais")" = "$ais_before" ] || fail "the AIS changed"
[ "$(store_state)" = "$store_before" ] || fail "the store changed"
[ "$(tree_state "$run/$dp/etc")" = "$mount_before" ] || fail "the image mount changed"
"${S[@]}" fsck --verify >"$work/fsck" || fail "fsck --verify: $(cat "$work/fsck")"

step "4: import and sync while podman lists; the API service sees it"
sock=$work/podman.sock
"${PODMAN[@]}" system service --time=0 "unix://$sock" >"$work/service.log" 2>&1 &
service_pid=$!
on_exit "kill $service_pid 2>/dev/null && wait $service_pid 2>/dev/null"
api_images() {
	python3 - "$sock" <<'EOF'
import http.client, json, socket, sys
class Conn(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(sys.argv[1])
c = Conn("localhost", timeout=60)
c.request("GET", "/v4.0.0/libpod/images/json")
r = c.getresponse()
if r.status != 200:
    sys.exit("API: HTTP %d" % r.status)
for img in json.load(r):
    for n in img.get("Names") or img.get("RepoTags") or []:
        print(n)
EOF
}
for _ in $(seq 50); do
	[ -S "$sock" ] && api_images >"$work/api" 2>/dev/null && break
	sleep 0.2
done
grep -qx "localhost/python:latest" "$work/api" || fail "API service does not list python: $(cat "$work/api" "$work/service.log")"
grep -q caps "$work/api" && fail "API lists caps before its import"
(
	i=0
	while :; do
		"${PODMAN[@]}" images -q >/dev/null 2>>"$work/lister.err" || echo "listing $i failed" >>"$work/lister.err"
		i=$((i + 1))
	done
) &
lister_pid=$!
stop_lister() { [ -z "$lister_pid" ] || kill "$lister_pid" 2>/dev/null; }
on_exit stop_lister
dc=$("${S[@]}" import "oci:$corpus/debian-caps" --name caps)
"${S[@]}" ais sync "${A[@]}" >"$work/out"
grep -q "^4 images (1 newly mounted)" "$work/out" || fail "sync: $(cat "$work/out")"
sleep 1
kill "$lister_pid"
wait "$lister_pid" 2>/dev/null || true
lister_pid=
[ ! -s "$work/lister.err" ] || fail "podman images failed during the sync: $(head -5 "$work/lister.err")"
api_images >"$work/api" || fail "API listing failed"
grep -qx "localhost/caps:latest" "$work/api" || fail "API service (not restarted) does not list caps: $(cat "$work/api")"
got=$("${P[@]}" run --rm caps true && echo ok) || fail "podman run caps failed"
mountpoint -q "$run/$dc" || fail "$run/$dc is not mounted"

step "5: rm of an image a container runs on is refused"
if "${S[@]}" rm python 2>"$work/err"; then
	fail "rm python succeeded while c1 runs on it"
fi
grep -q "in use by a container" "$work/err" || fail "rm: $(cat "$work/err")"
[ "$(wc -l <"$work/err")" -eq 1 ] || fail "rm: not one line: $(cat "$work/err")"
"${S[@]}" inspect python >/dev/null || fail "the name python went"
"${S[@]}" rm "${dp:0:16}" 2>"$work/err" && fail "rm by digest succeeded while c1 runs"
"${S[@]}" ais sync "${A[@]}" >"$work/out"
grep -q "^4 images" "$work/out" || fail "sync: $(cat "$work/out")"
got=$("${P[@]}" exec c1 python3 -c 'print(42)') || fail "c1 broke"
[ "$got" = 42 ] || fail "c1 printed '$got'"
# Another name of an image and config in use may go: the pair stays.
"${S[@]}" tag python python-alias
"${S[@]}" rm python-alias || fail "rm of a second name was refused"
"${P[@]}" rm -f -t 0 c1 c2 >/dev/null || fail "podman rm c1 c2 failed"
"${S[@]}" rm python || fail "rm python after the containers went: $(cat "$work/err")"
"${S[@]}" ais sync "${A[@]}" >"$work/out"
grep -q "^3 images .* 1 removed" "$work/out" || fail "sync after rm: $(cat "$work/out")"
mountpoint -q "$run/$dp" 2>/dev/null && fail "$run/$dp still mounted"
"${P[@]}" images --format '{{.Repository}}' | grep -q python && fail "podman still lists python"

step "6: unmount-all makes podman fail loudly, mount-all restores"
"${S[@]}" ais unmount-all "${A[@]}" >"$work/out" || fail "unmount-all: $(cat "$work/out")"
grep -q "^2 layers, 2 unmounted" "$work/out" || fail "unmount-all: $(cat "$work/out")"
[ ! -e "$run/$dm" ] || fail "$run/$dm is left behind"
if "${P[@]}" run --rm minbase cat /etc/debian_version >"$work/out" 2>"$work/err"; then
	fail "podman ran minbase while it is unmounted: '$(cat "$work/out")'"
fi
[ -s "$work/err" ] || fail "podman failed without a message"
"${S[@]}" ais mount-all "${A[@]}" >"$work/out" || fail "mount-all: $(cat "$work/out")"
grep -q "^2 layers, 2 newly mounted" "$work/out" || fail "mount-all: $(cat "$work/out")"
got=$("${P[@]}" run --rm variant) || fail "podman run after mount-all failed"
[ "$got" = variant ] || fail "after mount-all: '$got'"
# A run directory that is not on tmpfs gets a tmpfs of the store's own
# (said once), and the images mount below it.
mkdir -p "$work/disk-run"
if [ "$(stat -f -c %T "$work/disk-run")" != tmpfs ]; then
	"${S[@]}" ais sync --ais "$work/ais2" --run "$work/disk-run" >"$work/out" 2>"$work/err" ||
		fail "sync with a run directory on $(stat -f -c %T "$work/disk-run"): $(cat "$work/err")"
	[ "$(stat -f -c %T "$work/disk-run")" = tmpfs ] || fail "no tmpfs on the run directory"
	[ "$(wc -l <"$work/err")" -eq 1 ] && grep -q "was not on tmpfs: mounted a tmpfs" "$work/err" ||
		fail "sync did not say it mounted a tmpfs: $(cat "$work/err")"
	n=$(find "$work/disk-run" -mindepth 1 -maxdepth 1 -type d | wc -l)
	[ "$n" -ge 1 ] && [ "$(awk -v d="$work/disk-run/" 'index($5, d) == 1' /proc/self/mountinfo | wc -l)" -eq "$n" ] ||
		fail "the images are not mounted below the new tmpfs"
	"${S[@]}" ais sync --ais "$work/ais2" --run "$work/disk-run" >"$work/out" 2>"$work/err" ||
		fail "second sync: $(cat "$work/err")"
	[ ! -s "$work/err" ] || fail "the second sync said more: $(cat "$work/err")"
	"${S[@]}" ais unmount-all --ais "$work/ais2" --run "$work/disk-run" >/dev/null ||
		fail "unmount-all of the second AIS"
	umount "$work/disk-run" || fail "the run directory's tmpfs is busy"
fi

step "all names gone: the AIS is empty"
"${S[@]}" rm minbase variant caps
"${S[@]}" ais sync "${A[@]}" >"$work/out"
grep -q "^0 images .* 2 removed" "$work/out" || fail "sync: $(cat "$work/out")"
[ -z "$("${P[@]}" images -q)" ] || fail "podman still lists: $("${P[@]}" images)"
[ -z "$(ls "$ais/overlay/l")" ] || fail "l/ not empty: $(ls "$ais/overlay/l")"
"${S[@]}" gc >/dev/null
"${S[@]}" fsck --verify >"$work/fsck" || fail "fsck --verify: $(cat "$work/fsck")"
[ -z "$(ls "$root/blobs/sha256")" ] || fail "gc left blobs: $(ls "$root/blobs/sha256")"
echo "$me: ok"
