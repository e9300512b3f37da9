#!/bin/bash
# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
#
# The composefs OCI sealing spec (issue 15; composefs-rs sealing_spec.rs,
# design.rs), inline mode, and fs-verity signatures:
#
#  - canonical tree: oci2cfs --canonical gives root metadata from /usr,
#    an empty /run with /usr's mtime, whole-second mtimes, no xattr but
#    security.capability (kept: debian-caps), composefs version 1.
#  - seal --sign-key: an independent checker (Python, written from the
#    spec's text) finds every key in its place; the digests equal what
#    `fsverity digest` gives for the config blob and the canonical image;
#    the signatures are byte for byte what `fsverity sign` writes for the
#    same files, and `openssl smime -verify` accepts them.
#  - interop by construction: a manifest laid out as the spec's example
#    (keys placed and signed by the test with fsverity-utils, no legacy
#    keys) imports with --require-signed; the store's image is the
#    canonical one.
#  - refusals, each one line, the store unchanged (fsck clean, same
#    images): an untrusted signer, an expired certificate, a truncated
#    signature, a signature of another digest, a wrong merged or config
#    digest, an unsigned image under --require-signed, a key that is not
#    the certificate's at seal time, a signature that is not base64, a
#    digest that is not lower-case hex, a signature without its digest.
#  - artifact mode: oci2cfs artifact writes the spec's metadata artifact
#    (an independent reader checks its layout, the signature blobs are
#    fsverity sign's for the manifest, config and canonical image) into
#    the referrers index beside ours (--image); the import takes its
#    digests and signatures; a changed merged or manifest digest in it is
#    refused.
#  - the store keeps an image's signatures in its metadata, and fsck
#    checks them again against ROOT/trust: a certificate no longer
#    trusted, or a signature of another digest, is reported.
#  - legacy: a manifest with only the earlier keys still imports sealed;
#    a store-wide ROOT/trust/*.pem is trusted without --trust-cert.
#
# Environment: CFS_BIN, CFS_SRC, CFS_TEST_TMP, CFS_CORPUS (optional).
set -euo pipefail

# shellcheck source=tests/scripts/lib.sh
. "$(dirname "$0")/lib.sh"
test_init spec-seal CFS_SRC
cs=$CFS_BIN/cfs-store
o2c=$CFS_BIN/oci2cfs
need_exec "$cs" "$o2c"
need_tool python3 openssl fsverity
corpus=$("$CFS_SRC/tests/scripts/need-corpus.sh")
cd "$work"

MERGED=composefs.merged.erofs.v1.fsverity-sha256-12
CONFIG=composefs.config.fsverity-sha256-12

# ---- keys ------------------------------------------------------------
step "keys"
openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem \
	-days 30 -subj /CN=cfs-test 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -keyout other-key.pem \
	-out other.pem -days 30 -subj /CN=cfs-other 2>/dev/null
# An expired certificate: openssl ca takes explicit dates.
mkdir -p ca/newcerts && : >ca/index.txt && echo 01 >ca/serial
cat >ca.cnf <<'EOF'
[ca]
default_ca = x
[x]
dir = ./ca
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
default_md = sha256
policy = p
[p]
commonName = supplied
EOF
openssl req -new -newkey rsa:2048 -nodes -keyout old-key.pem -out old.csr \
	-subj /CN=cfs-expired 2>/dev/null
openssl ca -batch -config ca.cnf -selfsign -keyfile old-key.pem -in old.csr \
	-out old.pem -startdate 20200101000000Z -enddate 20200201000000Z \
	>/dev/null 2>&1 || fail "could not make an expired certificate"

# ---- canonical tree --------------------------------------------------
step "canonical tree"
for img in debian-minbase debian-caps; do
	"$o2c" --canonical --dump "$img.dump" "oci:$corpus/$img" "$img.cfs" >/dev/null
	python3 - "$img.dump" "$img.cfs" <<'EOF' || fail "$img: canonical tree rules"
import struct, sys
lines = open(sys.argv[1], 'rb').read().decode('utf-8', 'surrogateescape').splitlines()
ent = {}
for l in lines:
    f = l.split(' ')
    ent[f[0]] = f
root, usr = ent['/'], ent['/usr']
# path size mode nlink uid gid rdev mtime payload content digest xattrs...
assert root[2] == usr[2] and root[4:6] == usr[4:6] and root[7] == usr[7], (root, usr)
assert not any(p.startswith('/run/') for p in ent), 'run not empty'
if '/run' in ent:
    assert ent['/run'][7] == usr[7], ent['/run']
caps = 0
for p, f in ent.items():
    assert f[7].endswith('.0'), (p, f[7])
    for x in f[11:]:
        assert x.startswith('security.capability='), (p, x)
        caps += 1
hdr = open(sys.argv[2], 'rb').read(16)
assert struct.unpack('<4I', hdr)[3] == 1, 'composefs_version is not 1'
print('caps', caps)
EOF
done
"$o2c" --dump caps-full.dump "oci:$corpus/debian-caps" caps-full.cfs >/dev/null
want=$(grep -c 'security.capability=' caps-full.dump || true)
got=$(grep -c 'security.capability=' debian-caps.dump || true)
[ "$want" -gt 0 ] && [ "$got" = "$want" ] ||
	fail "security.capability: $got kept of $want"

# ---- seal with signatures, checked independently ----------------------
step "seal --sign-key, checked by an independent reader"
cp -a "$corpus/debian-python" lay
"$o2c" seal oci:lay --sign-key key.pem --sign-cert cert.pem --json >seal.json
"$o2c" --canonical oci:lay canon.cfs >/dev/null
fsverity sign canon.cfs merged.sig --key key.pem --cert cert.pem >/dev/null
cfg=$(python3 -c "import json;print(json.load(open('seal.json'))['config_digest'][7:])")
fsverity sign "lay/blobs/sha256/$cfg" config.sig --key key.pem --cert cert.pem >/dev/null
python3 - lay seal.json "$(fsverity digest --compact canon.cfs)" \
	"$(fsverity digest --compact "lay/blobs/sha256/$cfg")" <<'EOF' || fail "sealed manifest does not follow the spec"
import base64, json, sys
lay, res, canon, cfgv = sys.argv[1:5]
r = json.load(open(res))
m = json.load(open(f"{lay}/blobs/sha256/{r['manifest_digest'][7:]}"))
M = 'composefs.merged.erofs.v1.fsverity-sha256-12'
C = 'composefs.config.fsverity-sha256-12'
# merged: manifest top level; config: config descriptor; never elsewhere
assert m['annotations'][M] == canon, (m['annotations'], canon)
assert m['config']['annotations'][C] == cfgv
for l in m['layers']:
    assert not any(k.startswith('composefs.merged.erofs') or k.startswith('composefs.config') for k in l.get('annotations', {}))
assert M not in m['config']['annotations'] and C not in m['annotations']
# signatures: base64 DER, the same bytes as fsverity sign
assert base64.b64decode(m['annotations'][M + '.sig'], validate=True) == open('merged.sig', 'rb').read()
assert base64.b64decode(m['config']['annotations'][C + '.sig'], validate=True) == open('config.sig', 'rb').read()
assert r['signed'] is True
EOF
printf 'FSVerity\001\000\040\000' >fd.bin
python3 -c "import sys;sys.stdout.buffer.write(bytes.fromhex('$(fsverity digest --compact canon.cfs)'))" >>fd.bin
openssl smime -verify -binary -inform DER -in merged.sig -content fd.bin \
	-certfile cert.pem -nointern -noverify >/dev/null 2>&1 ||
	fail "openssl does not verify the merged signature"
if "$o2c" seal oci:lay --sign-key other-key.pem --sign-cert cert.pem 2>err; then
	fail "seal signed with a key that is not the certificate's"
fi
grep -q "not the key of certificate" err || fail "wrong key: $(cat err)"

# ---- interop by construction -----------------------------------------
# The spec's digest-only example plus its inline signatures, laid out by
# this test from the unsealed debian-minbase (no legacy key anywhere).
step "a manifest laid out as the spec's example"
cp -a "$corpus/debian-minbase" spec
"$o2c" --canonical oci:spec spec.cfs >/dev/null
mk_manifest() { # NAME CONFIG_KEY_FILE MERGED_SIG_FILE CONFIG_SIG_FILE MERGED_HEX CONFIG_HEX TAG
	python3 - spec "$@" <<'EOF'
import base64, hashlib, json, sys
lay, name, msig, csig, mhex, chex, tag = sys.argv[1:8]
idx = json.load(open(f'{lay}/index.json'))
src = [d for d in idx['manifests'] if d.get('annotations', {}).get('org.opencontainers.image.ref.name') != 'spec' and not d.get('annotations', {}).get('org.opencontainers.image.ref.name', '').startswith('spec-')][0]
m = json.load(open(f"{lay}/blobs/sha256/{src['digest'][7:]}"))
b64 = lambda p: base64.b64encode(open(p, 'rb').read()).decode() if p != '-' else None
M = 'composefs.merged.erofs.v1.fsverity-sha256-12'
C = 'composefs.config.fsverity-sha256-12'
m['config']['annotations'] = {C: chex}
m.setdefault('annotations', {})[M] = mhex
if b64(csig): m['config']['annotations'][C + '.sig'] = b64(csig)
if b64(msig): m['annotations'][M + '.sig'] = b64(msig)
raw = json.dumps(m, separators=(',', ':')).encode()
d = hashlib.sha256(raw).hexdigest()
open(f'{lay}/blobs/sha256/{d}', 'wb').write(raw)
idx['manifests'].append({'mediaType': 'application/vnd.oci.image.manifest.v1+json', 'digest': 'sha256:' + d, 'size': len(raw), 'annotations': {'org.opencontainers.image.ref.name': tag}})
json.dump(idx, open(f'{lay}/index.json', 'w'))
EOF
}
scfg=$(python3 -c "import json;i=json.load(open('spec/index.json'));m=json.load(open('spec/blobs/sha256/'+i['manifests'][0]['digest'][7:]));print(m['config']['digest'][7:])")
mhex=$(fsverity digest --compact spec.cfs)
chex=$(fsverity digest --compact "spec/blobs/sha256/$scfg")
fsverity sign spec.cfs s-merged.sig --key key.pem --cert cert.pem >/dev/null
fsverity sign "spec/blobs/sha256/$scfg" s-config.sig --key key.pem --cert cert.pem >/dev/null
fsverity sign spec.cfs o-merged.sig --key old-key.pem --cert old.pem >/dev/null
fsverity sign "spec/blobs/sha256/$scfg" o-config.sig --key old-key.pem --cert old.pem >/dev/null
head -c 200 s-merged.sig >trunc.sig
mk_manifest x s-merged.sig s-config.sig "$mhex" "$chex" spec
mk_manifest x o-merged.sig o-config.sig "$mhex" "$chex" spec-expired
mk_manifest x trunc.sig s-config.sig "$mhex" "$chex" spec-truncated
mk_manifest x s-config.sig s-config.sig "$mhex" "$chex" spec-otherdigest
mk_manifest x - - "$(printf '%064d' 0)" "$chex" spec-badmerged
mk_manifest x - - "$mhex" "$(printf '%064d' 1)" spec-badconfig
mk_manifest x - - "$mhex" "$chex" spec-unsigned
# Malformed keys: a signature that is not base64, a digest that is not
# 64 lower-case hex digits, a signature without its digest.
python3 - spec "$mhex" <<'EOF'
import hashlib, json, sys
lay, mhex = sys.argv[1:3]
M = 'composefs.merged.erofs.v1.fsverity-sha256-12'
idx = json.load(open(f'{lay}/index.json'))
src = [d for d in idx['manifests'] if d.get('annotations', {}).get('org.opencontainers.image.ref.name') == 'spec-unsigned'][0]
base = json.load(open(f"{lay}/blobs/sha256/{src['digest'][7:]}"))
for tag, ann in (('spec-badb64', {M: mhex, M + '.sig': '@@not base64@@'}),
                 ('spec-badhex', {M: mhex.upper()}),
                 ('spec-orphansig', {M + '.sig': 'AAAA'})):
    m = json.loads(json.dumps(base))
    m['annotations'] = ann
    raw = json.dumps(m, separators=(',', ':')).encode()
    d = hashlib.sha256(raw).hexdigest()
    open(f'{lay}/blobs/sha256/{d}', 'wb').write(raw)
    idx['manifests'].append({'mediaType': 'application/vnd.oci.image.manifest.v1+json', 'digest': 'sha256:' + d, 'size': len(raw), 'annotations': {'org.opencontainers.image.ref.name': tag}})
json.dump(idx, open(f'{lay}/index.json', 'w'))
EOF

st=$work/store
"$cs" --root "$st" import oci:spec:spec --require-signed --trust-cert cert.pem \
	--name spec --json >imp.json || fail "the spec's layout was refused"
python3 - imp.json "$mhex" <<'EOF' || fail "import of the spec's layout: $(cat imp.json)"
import json, sys
r = json.load(open(sys.argv[1]))
assert r['digest'] == sys.argv[2], (r['digest'], sys.argv[2])
assert r['sealed'] and r['signature_checked'] and r['signer'] == '/CN=cfs-test', r
EOF

# ---- refusals ----------------------------------------------------------
step "refusals leave the store as it was"
state() { "$cs" --root "$st" list --json; }
before=$(state)
refuse() { # TAG PATTERN ARGS...
	local tag=$1 pat=$2
	shift 2
	if "$cs" --root "$st" import "oci:spec:$tag" --name "x-$tag" "$@" 2>err; then
		fail "$tag: imported"
	fi
	[ "$(wc -l <err)" -eq 1 ] || fail "$tag: not one line: $(cat err)"
	grep -q -- "$pat" err || fail "$tag: $(cat err)"
	[ "$(state)" = "$before" ] || fail "$tag: the store changed"
	"$cs" --root "$st" fsck >/dev/null || fail "$tag: fsck"
}
refuse spec "not trusted (issuer /CN=cfs-test" --require-signed --trust-cert other.pem
refuse spec-expired "cfs-expired, whose certificate is not valid now" --trust-cert old.pem
refuse spec-truncated "merged signature.*not a DER PKCS#7" --trust-cert cert.pem
refuse spec-otherdigest "merged signature.*is not one of this digest" --trust-cert cert.pem
refuse spec-badmerged "not the sealed image: $MERGED is 0000" --trust-cert cert.pem
refuse spec-badconfig "not the sealed config: $CONFIG is 0000" --trust-cert cert.pem
refuse spec-unsigned "not signed (no $MERGED.sig)" --require-signed --trust-cert cert.pem
refuse spec "no certificate is trusted" --require-signed
refuse spec-badb64 "merged signature: $MERGED.sig is not base64" --trust-cert cert.pem
refuse spec-badhex "annotations.$MERGED is not 64 lower-case hex digits"
refuse spec-orphansig "annotations.$MERGED.sig without $MERGED"

# ---- artifact mode --------------------------------------------------------
# oci2cfs artifact beside an unsealed image: an independent reader finds
# the spec's layout; the import takes its digests and signatures.
step "the spec's artifact"
cp -a "$corpus/debian-minbase" art
"$o2c" artifact oci:art art --sign-key key.pem --sign-cert cert.pem --json >art.json
"$o2c" artifact --image oci:art art --json >art-image.json
amani=$(python3 -c "import json;i=json.load(open('art/index.json'));print([e for e in i['manifests'] if e.get('annotations',{}).get('org.opencontainers.image.ref.name')=='latest'][0]['digest'][7:])")
acfg=$(python3 -c "import json;print(json.load(open('art/blobs/sha256/$amani'))['config']['digest'][7:])")
"$o2c" --canonical oci:art art.cfs >/dev/null
for f in "art/blobs/sha256/$amani:manifest" "art/blobs/sha256/$acfg:config" "art.cfs:merged"; do
	fsverity sign "${f%%:*}" "a-${f##*:}.sig" --key key.pem --cert cert.pem >/dev/null
done
python3 - art art.json "$amani" "$(fsverity digest --compact "art/blobs/sha256/$amani")" \
	"$(fsverity digest --compact "art/blobs/sha256/$acfg")" "$(fsverity digest --compact art.cfs)" <<'EOF' || fail "the artifact does not follow the spec"
import hashlib, json, sys
lay, res, subject, mv, cv, gv = sys.argv[1:7]
r = json.load(open(res))
blob = lambda d: open(f"{lay}/blobs/sha256/{d.split(':')[1]}", 'rb').read()
idx = json.load(open(f'{lay}/index.json'))
tag = [e for e in idx['manifests'] if e.get('annotations', {}).get('org.opencontainers.image.ref.name') == 'sha256-' + subject]
assert len(tag) == 1, 'no referrers tag'
refs = json.loads(blob(tag[0]['digest']))
types = sorted(e['artifactType'] for e in refs['manifests'])
assert types == ['application/vnd.composefs.metadata.v1', 'application/vnd.oci2cfs.composefs.v1'], types
d = [e for e in refs['manifests'] if e['artifactType'] == 'application/vnd.composefs.metadata.v1'][0]
assert d['digest'] == r['manifest_digest']
a = json.loads(blob(d['digest']))
assert hashlib.sha256(blob(d['digest'])).hexdigest() == d['digest'][7:]
assert a['mediaType'] == 'application/vnd.oci.image.manifest.v1+json'
assert a['artifactType'] == 'application/vnd.composefs.metadata.v1'
assert a['config'] == {'mediaType': 'application/vnd.oci.empty.v1+json', 'digest': 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a', 'size': 2}
assert a['subject']['digest'] == 'sha256:' + subject and a['subject']['mediaType'] == 'application/vnd.oci.image.manifest.v1+json'
want = [('composefs.manifest.fsverity-sha256-12', mv, 'a-manifest.sig'),
        ('composefs.config.fsverity-sha256-12', cv, 'a-config.sig'),
        ('composefs.merged.erofs.v1.fsverity-sha256-12', gv, 'a-merged.sig')]
assert len(a['layers']) == 3
for l, (k, v, sig) in zip(a['layers'], want):
    assert l['mediaType'] == 'application/vnd.composefs.signature.v1+pkcs7', l
    assert l['annotations'] == {k: v}, (l['annotations'], k, v)
    assert blob(l['digest']) == open(sig, 'rb').read(), k + ': not what fsverity sign writes'
    assert l['size'] == len(open(sig, 'rb').read())
EOF
"$cs" --root "$st" import oci:art --require-signed --trust-cert cert.pem --name art --json >art-imp.json ||
	fail "the image with the spec's artifact was refused"
python3 - art-imp.json "$(fsverity digest --compact art.cfs)" <<'EOF' || fail "import with the artifact: $(cat art-imp.json)"
import json, sys
r = json.load(open(sys.argv[1]))
assert r['digest'] == sys.argv[2] and r['sealed'] and r['signature_checked'] and r['artifact'], r
EOF
# Tampered artifacts: another merged digest, another manifest digest.
tamper_artifact() { # LAYOUT KEY VALUE
	python3 - "$@" <<'EOF'
import hashlib, json, sys
lay, key, val = sys.argv[1:4]
idx = json.load(open(f'{lay}/index.json'))
blob = lambda d: open(f"{lay}/blobs/sha256/{d[7:]}", 'rb').read()
def put(b):
    d = hashlib.sha256(b).hexdigest()
    open(f'{lay}/blobs/sha256/{d}', 'wb').write(b)
    return 'sha256:' + d, len(b)
for e in idx['manifests']:
    if not e.get('annotations', {}).get('org.opencontainers.image.ref.name', '').startswith('sha256-'):
        continue
    refs = json.loads(blob(e['digest']))
    for r in refs['manifests']:
        if r['artifactType'] != 'application/vnd.composefs.metadata.v1':
            continue
        a = json.loads(blob(r['digest']))
        for l in a['layers']:
            if key in l['annotations']:
                l['annotations'][key] = val
        r['digest'], r['size'] = put(json.dumps(a).encode())
    e['digest'], e['size'] = put(json.dumps(refs).encode())
json.dump(idx, open(f'{lay}/index.json', 'w'))
EOF
}
cp -a art art-bad-merged
tamper_artifact art-bad-merged "$MERGED" "$(printf '%064d' 2)"
cp -a art art-bad-manifest
tamper_artifact art-bad-manifest composefs.manifest.fsverity-sha256-12 "$(printf '%064d' 3)"
cp -a art art-bad-hex
tamper_artifact art-bad-hex "$MERGED" not-a-digest
before=$(state)
for c in "art-bad-merged:not the sealed image: $MERGED is 0000" \
	"art-bad-manifest:not the sealed manifest: composefs.manifest.fsverity-sha256-12 is 0000" \
	"art-bad-hex:layers\[2\]: $MERGED is not 64 lower-case hex digits"; do
	lay=${c%%:*}
	if "$cs" --root "$st" import "oci:$lay" --trust-cert cert.pem --name "x-$lay" 2>err; then
		fail "$lay: imported"
	fi
	grep -q -- "${c#*:}" err || fail "$lay: $(cat err)"
	[ "$(state)" = "$before" ] || fail "$lay: the store changed"
done

# ---- legacy keys, store-wide trust -------------------------------------
step "legacy keys; ROOT/trust"
python3 - lay seal.json <<'EOF'
import hashlib, json, sys
lay, res = sys.argv[1:3]
r = json.load(open(res))
m = json.load(open(f"{lay}/blobs/sha256/{r['manifest_digest'][7:]}"))
m.pop('annotations')
m['config'].pop('annotations')
raw = json.dumps(m, separators=(',', ':')).encode()
d = hashlib.sha256(raw).hexdigest()
open(f'{lay}/blobs/sha256/{d}', 'wb').write(raw)
idx = json.load(open(f'{lay}/index.json'))
idx['manifests'].append({'mediaType': 'application/vnd.oci.image.manifest.v1+json', 'digest': 'sha256:' + d, 'size': len(raw), 'annotations': {'org.opencontainers.image.ref.name': 'legacy'}})
json.dump(idx, open(f'{lay}/index.json', 'w'))
EOF
legacy=$(python3 -c "import json;print(json.load(open('seal.json'))['composefs.merged.sha256-12'])")
got=$("$cs" --root "$st" import oci:lay:legacy --require-sealed --json |
	python3 -c "import json,sys;r=json.load(sys.stdin);print(r['digest'] if r['sealed'] else 'unsealed')")
[ "$got" = "$legacy" ] || fail "legacy-sealed image: $got, want $legacy"
mkdir -p "$st/trust" && cp cert.pem "$st/trust/ci.pem"
"$cs" --root "$st" import oci:lay:latest --require-signed >/dev/null ||
	fail "ROOT/trust/ci.pem was not trusted"
"$cs" --root "$st" fsck >/dev/null || fail "fsck after the imports"

# ---- the store keeps the signatures; fsck checks them again ------------
step "signatures in the metadata, checked by fsck"
sm=$st/images/$mhex.json
python3 - "$sm" s-merged.sig s-config.sig <<'EOF' || fail "the metadata does not keep the signatures"
import base64, json, sys
m = json.load(open(sys.argv[1]))['signatures']
assert base64.b64decode(m['composefs.merged.erofs.v1.fsverity-sha256-12']) == open(sys.argv[2], 'rb').read()
assert base64.b64decode(m['composefs.config.fsverity-sha256-12']) == open(sys.argv[3], 'rb').read()
EOF
mv "$st/trust/ci.pem" ci.pem.away && cp other.pem "$st/trust/other.pem"
if "$cs" --root "$st" fsck --json >fsck.json; then
	fail "fsck passed signatures by a certificate no longer trusted"
fi
python3 - fsck.json "$mhex" <<'EOF' || fail "fsck: $(cat fsck.json)"
import json, sys
r = json.load(open(sys.argv[1]))
p = [p for p in r['problems'] if p['kind'] == 'signature' and sys.argv[2] in p['path']]
assert len(p) == 2, r['problems']  # merged and config
assert all('not trusted (issuer /CN=cfs-test' in x['message'] for x in p), p
EOF
rm "$st/trust/other.pem" && mv ci.pem.away "$st/trust/ci.pem"
cp "$sm" meta.saved
python3 - "$sm" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
k = 'composefs.config.fsverity-sha256-12'
m['signatures'][k] = m['signatures']['composefs.merged.erofs.v1.fsverity-sha256-12']
json.dump(m, open(sys.argv[1], 'w'))
EOF
if "$cs" --root "$st" fsck >fsck.txt 2>&1; then
	fail "fsck passed a config signature that signs another digest"
fi
grep -q "signature.*composefs.config.fsverity-sha256-12.sig: signature by /CN=cfs-test is not one of this digest" fsck.txt ||
	fail "fsck: $(cat fsck.txt)"
cp meta.saved "$sm"
"$cs" --root "$st" fsck >/dev/null || fail "fsck with the metadata restored"
echo "$me: PASS"
