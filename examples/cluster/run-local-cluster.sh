#!/usr/bin/env bash
# Three control-plane nodes on this machine (loopback), with Raft mutual
# TLS, one shared keyring and one root token. Ctrl-C stops them all.
#
#   examples/cluster/run-local-cluster.sh [DIR]      (default ./.tcauth-cluster)
#
# Node i serves the API on 127.0.0.1:808i and Raft on 127.0.0.1:830i. On
# real machines, run the same three commands on three hosts, with their
# addresses in --http-addr/--raft-addr, certificates from your own CA, and
# the keyring file copied to each host.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
dir=${1:-.tcauth-cluster}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
bin="$dir/tcauth"
(cd "$here" && go build -o "$bin" ./cmd/tcauth)

"$bin" cluster pki --dir "$dir/pki" n1 n2 n3
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM

start() { # start NODE-NUMBER EXTRA-FLAGS...
  local i=$1; shift
  mkdir -p "$dir/n$i"
  "$bin" controlplane --node-id "n$i" --data-dir "$dir/n$i" \
    --http-addr "127.0.0.1:808$i" --raft-addr "127.0.0.1:830$i" \
    --tls-ca "$dir/pki/ca.pem" --tls-cert "$dir/pki/n$i.pem" --tls-key "$dir/pki/n$i-key.pem" \
    --keyring "$dir/keyring.json" --trusted-proxy 127.0.0.0/8 \
    "$@" 2>>"$dir/n$i.log" &
  pids+=($!)
}

# wait_members N: until `cluster peers` (root credentials) lists N members
# with a leader — the bootstrap node needs an election and its static
# clients before it accepts the root token.
wait_members() {
  for _ in $(seq 150); do
    out=$("$bin" cluster peers 2>/dev/null || true)
    if [ "$(grep -c '"id"' <<<"$out")" = "$1" ] && grep -q '"leader": true' <<<"$out"; then return; fi
    sleep 0.2
  done
  echo "the cluster did not reach $1 members; see $dir/*.log" >&2; exit 1
}

# Node 1 forms the cluster and generates the keyring and the root token;
# the others get a copy of the root token (each node keeps one in its data
# directory) and join through node 1's API.
start 1 --bootstrap
export TASKCLUSTER_ROOT_URL=http://127.0.0.1:8081
export TASKCLUSTER_CLIENT_ID=static/taskcluster/root
for _ in $(seq 100); do [ -s "$dir/n1/root-access-token" ] && break; sleep 0.1; done
TASKCLUSTER_ACCESS_TOKEN=$(cat "$dir/n1/root-access-token")
export TASKCLUSTER_ACCESS_TOKEN
wait_members 1
for i in 2 3; do mkdir -p "$dir/n$i"; cp -n "$dir/n1/root-access-token" "$dir/n$i/" 2>/dev/null || true; done
start 2 --join http://127.0.0.1:8081
start 3 --join http://127.0.0.1:8081
wait_members 3
"$bin" cluster peers

cat <<MSG

Three nodes are up (logs in $dir/n*.log). In another shell:

  export TASKCLUSTER_ROOT_URL=http://127.0.0.1:8082   # any node answers; writes are forwarded
  export TASKCLUSTER_CLIENT_ID=static/taskcluster/root
  export TASKCLUSTER_ACCESS_TOKEN=\$(cat $dir/n1/root-access-token)
  $bin cluster peers
  $bin client create demo/one --description 'a demo client' --scope 'queue:*'

Ctrl-C stops the cluster.
MSG
wait
