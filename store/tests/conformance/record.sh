#!/usr/bin/env bash
# Records the store conformance vectors from a real etcd (issue 18 Deliver 5).
#
# Installs Debian's etcd-server and etcd-client if etcd is missing, starts a throwaway
# single-member etcd on loopback ports with its data in a temporary directory, runs the
# operation script store/tests/conformance/ops.json against it (record.py, through the gRPC
# gateway every etcd v3 serves), writes store/tests/conformance/etcd-vectors.json, and
# removes the etcd and its data. `cargo test -p store --test conformance` replays the same
# script against kubesim's store and compares. Recording is not part of `cargo test`.
#
# Usage: store/tests/conformance/record.sh [CLIENT_PORT]   (default 23790)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
client_port="${1:-23790}"
peer_port=$((client_port + 10))

if ! command -v etcd >/dev/null; then
    echo "etcd not found: installing Debian's etcd-server and etcd-client" >&2
    sudo_cmd=""
    if [ "$(id -u)" != 0 ]; then sudo_cmd=sudo; fi
    $sudo_cmd apt-get update
    $sudo_cmd apt-get install -y etcd-server etcd-client
fi
command -v python3 >/dev/null || { echo "record.sh needs python3" >&2; exit 1; }

version="$(etcd --version | sed -n 's/^etcd Version: //p')"
data="$(mktemp -d)"
endpoint="http://127.0.0.1:${client_port}"
etcd --name conformance --data-dir "$data/etcd" \
    --listen-client-urls "$endpoint" --advertise-client-urls "$endpoint" \
    --listen-peer-urls "http://127.0.0.1:${peer_port}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${peer_port}" \
    --initial-cluster "conformance=http://127.0.0.1:${peer_port}" \
    >"$data/etcd.log" 2>&1 &
etcd_pid=$!
cleanup() {
    kill "$etcd_pid" 2>/dev/null || true
    wait "$etcd_pid" 2>/dev/null || true
    rm -rf "$data"
}
trap cleanup EXIT

for _ in $(seq 1 100); do
    if curl -sf "$endpoint/health" >/dev/null 2>&1; then break; fi
    sleep 0.1
done
curl -sf "$endpoint/health" >/dev/null || { echo "etcd did not become healthy:" >&2; cat "$data/etcd.log" >&2; exit 1; }

python3 "$here/record.py" "$endpoint" "$here/ops.json" "$here/etcd-vectors.json" "$version"
echo "recorded $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["vectors"]))' "$here/etcd-vectors.json") vectors from etcd $version into $here/etcd-vectors.json"
