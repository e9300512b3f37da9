# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
# shellcheck shell=bash disable=SC2154 # (me, rc: lib.sh's)
# Sourced by tests after lib.sh's test_init: a private distribution
# registry (Debian package docker-registry) on 127.0.0.1, filesystem
# storage, no auth, its access log in DIR/registry.log. The one place
# the tests start a registry (pull.sh, seal-registry.sh,
# podman5-composefs.sh).
#
#   registry_start DIR   skip unless docker-registry is installed; start
#                        it with its storage and config under DIR, and
#                        stop it at exit (on_exit; if the test fails, the
#                        tail of its log is shown first); sets REGISTRY
#                        (host:port) and REGISTRY_PID; returns 1 if it
#                        does not come up
#   registry_stop        stop it now
#
# The benches (bench/) source it without the harness: then the caller
# checks the tools and calls registry_stop itself.

REGISTRY=
REGISTRY_PID=
REGISTRY_DIR=

registry_start() { # DIR
	local dir=$1 port
	if declare -F need_tool >/dev/null; then
		need_tool docker-registry python3
	fi
	mkdir -p "$dir/storage"
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	cat >"$dir/config.yml" <<CONF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
CONF
	REGISTRY_DIR=$dir
	if declare -F on_exit >/dev/null; then
		on_exit _registry_exit
	fi
	docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
	REGISTRY_PID=$!
	REGISTRY=127.0.0.1:$port
	for _ in $(seq 100); do
		if python3 -c 'import sys, urllib.request
sys.exit(0 if urllib.request.urlopen("http://%s/v2/" % sys.argv[1], timeout=2).status == 200 else 1)' "$REGISTRY" 2>/dev/null; then
			return 0
		fi
		kill -0 "$REGISTRY_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "$me: registry: did not start on $REGISTRY: $(tail -5 "$dir/registry.log")" >&2
	return 1
}

registry_stop() {
	if [ -n "$REGISTRY_PID" ]; then
		kill "$REGISTRY_PID" 2>/dev/null || true
		wait "$REGISTRY_PID" 2>/dev/null || true
		REGISTRY_PID=
	fi
	return 0
}

# (rc: the exit status the harness keeps; 77 is a skip)
_registry_exit() {
	if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ] && [ -s "$REGISTRY_DIR/registry.log" ]; then
		echo "$me: registry log (tail):" >&2
		tail -20 "$REGISTRY_DIR/registry.log" >&2
	fi
	registry_stop
}
