#!/usr/bin/env bash
# Start a Docker engine for `make deploy-test` on a CI machine that has none: Debian's docker.io daemon with the
# settings such a sandbox allows (vfs storage, no iptables, no bridge: containers use the host's network), its
# state in a temporary directory. Prints the daemon's pid and that directory ("PID DIR"): stop the daemon with
# `kill PID`, then remove DIR (vfs keeps every image layer as a full copy: gigabytes). Reuses an engine that
# answers, and then prints "0" alone.
#   .ci/docker-engine.sh start    (needs root)
set -euo pipefail

if docker info >/dev/null 2>&1; then
  echo "docker engine already running" >&2
  echo 0
  exit 0
fi
command -v dockerd >/dev/null || { echo "dockerd is not installed (apt-get install docker.io)" >&2; exit 2; }
root="$(mktemp -d /tmp/pricewise-docker.XXXXXX)"
dockerd --storage-driver vfs --iptables=false --bridge=none --data-root "$root/data" \
  --exec-root "$root/exec" --pidfile "$root/dockerd.pid" >"$root/dockerd.log" 2>&1 &
pid=$!
for _ in $(seq 60); do
  if docker info >/dev/null 2>&1; then
    echo "$pid $root"
    exit 0
  fi
  if ! kill -0 "$pid" 2>/dev/null; then break; fi
  sleep 1
done
echo "dockerd did not start; its log ($root/dockerd.log):" >&2
tail -20 "$root/dockerd.log" >&2
exit 1
