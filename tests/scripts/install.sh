#!/bin/bash
# cmake --install lays out binaries, libcfs.so with its SONAME, headers and
# libcfs.pc; a program builds against the installed copy through pkg-config
# and runs; the library exports nothing but cfs_* symbols.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
test_init install
build=$(dirname "$CFS_BIN")
need_tool cmake objdump nm cc pkg-config ldd

cmake --install "$build" --prefix "$work/prefix" >/dev/null
libdir=$(find "$work/prefix" -name 'libcfs.so.0' -printf '%h\n' | head -1)
for f in "$work/prefix/bin/oci2cfs" "$libdir/libcfs.so" "$libdir/libcfs.so.0" \
	"$work/prefix/include/cfs/cfs.h" "$work/prefix/include/cfs/image.h" \
	"$work/prefix/include/cfs/convert.h" "$libdir/pkgconfig/libcfs.pc"; do
	[ -e "$f" ] || fail "missing after install: $f"
done
soname=$(objdump -p "$libdir/libcfs.so" | awk '/SONAME/ {print $2}')
[ "$soname" = "libcfs.so.0" ] || fail "SONAME is '$soname'"

bad=$(nm -D --defined-only "$libdir/libcfs.so" | awk '{print $3}' | grep -v '^cfs_' || true)
[ -z "$bad" ] || fail "exported symbols without the cfs_ prefix:"$'\n'"$bad"

cat > "$work/user.c" <<'C'
#include <cfs/cfs.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
int main(void)
{
	cfs_inode *root, *file;
	uint8_t digest[CFS_DIGEST_SIZE];
	char hex[CFS_DIGEST_HEX_SIZE + 1];
	FILE *f = fopen("/dev/null", "w");
	int fd = fileno(f);

	if (cfs_inode_new(&root, S_IFDIR | 0755) || cfs_inode_new(&file, S_IFREG | 0644))
		return 1;
	if (cfs_inode_set_content(file, "hi\n", 3) || cfs_dir_link(root, "hello", file))
		return 1;
	if (cfs_image_write_fd(root, NULL, fd, digest) < 0) {
		fprintf(stderr, "%s\n", cfs_error_message());
		return 1;
	}
	cfs_digest_to_hex(digest, hex);
	printf("%s %s\n", cfs_version(), hex);
	cfs_inode_unref(file);
	cfs_inode_unref(root);
	return 0;
}
C
export PKG_CONFIG_PATH="$libdir/pkgconfig"
# A sanitizer build of the library needs a sanitizer build of its user.
# (ldd's output is taken whole first: with pipefail, grep -q leaving
# early could kill ldd with SIGPIPE and fail the test now and then)
san=
deps=$(ldd "$libdir/libcfs.so")
if grep -q libasan <<<"$deps"; then
	san="-fsanitize=address,undefined"
fi
# shellcheck disable=SC2046
cc -Wall -Werror $san -o "$work/user" "$work/user.c" $(pkg-config --cflags --libs libcfs)
out=$(LD_LIBRARY_PATH="$libdir" "$work/user")
echo "$out" | grep -Eq '^[0-9]+\.[0-9]+\.[0-9]+ [0-9a-f]{64}$' || fail "unexpected output: $out"
# the installed tool finds its library through its relative RPATH
"$work/prefix/bin/oci2cfs" --version | grep -q '^oci2cfs ' ||
	fail "the installed oci2cfs does not run"
echo "$me: ok ($out)"
