# SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later
# Sourced by tests: a private distribution registry (Debian package
# docker-registry) on 127.0.0.1, filesystem storage, no auth.
#
#   registry_start DIR   start it with its storage and config under DIR;
#                        sets REGISTRY (host:port) and REGISTRY_PID
#   registry_stop        stop it (call from the test's cleanup)

REGISTRY=
REGISTRY_PID=

registry_start() { # DIR
	local dir=$1 port i
	command -v docker-registry >/dev/null ||
		{ echo "registry: docker-registry is not installed (scripts/install-deps.sh)" >&2; return 1; }
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
	docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
	REGISTRY_PID=$!
	REGISTRY=127.0.0.1:$port
	for i in $(seq 100); do
		if python3 -c 'import sys, urllib.request
sys.exit(0 if urllib.request.urlopen("http://%s/v2/" % sys.argv[1], timeout=2).status == 200 else 1)' "$REGISTRY" 2>/dev/null; then
			return 0
		fi
		kill -0 "$REGISTRY_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "registry: did not start on $REGISTRY: $(tail -5 "$dir/registry.log")" >&2
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
