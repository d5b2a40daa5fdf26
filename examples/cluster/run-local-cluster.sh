#!/usr/bin/env bash
# Three control-plane nodes on this machine (loopback), with Raft mutual
# TLS, one shared keyring and one root token. Ctrl-C stops them all; run it
# again on the same directory to restart the same cluster.
#
#   examples/cluster/run-local-cluster.sh [DIR]      (default ./.tcauth-cluster)
#
# Environment (all optional):
#   TCAUTH_CLUSTER_DIR         the directory, if DIR is not given
#   TCAUTH_CLUSTER_HTTP_PORTS  API ports of n1 n2 n3   (default "7831 7832 7833")
#   TCAUTH_CLUSTER_RAFT_PORTS  Raft ports of n1 n2 n3  (default "7841 7842 7843");
#                              keep them across runs of one directory: the
#                              cluster's membership records the Raft addresses
#   TCAUTH_BIN                 a tcauth binary to use instead of building one
#
# DIR holds the root token, the keyring and the nodes' private keys: it gets
# a .gitignore of its own, and ./.tcauth-cluster is in the repository's.
# The first run forms the cluster (n1 bootstraps, n2 and n3 join); a later
# run finds the state and starts all three from it, without bootstrap or
# join. On real machines, run the same commands on three hosts, with their
# addresses in --http-addr/--raft-addr, certificates from your own CA, and
# the keyring file copied to each host.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
dir=${1:-${TCAUTH_CLUSTER_DIR:-.tcauth-cluster}}
read -r -a http_ports <<<"${TCAUTH_CLUSTER_HTTP_PORTS:-7831 7832 7833}"
read -r -a raft_ports <<<"${TCAUTH_CLUSTER_RAFT_PORTS:-7841 7842 7843}"
if [ "${#http_ports[@]}" != 3 ] || [ "${#raft_ports[@]}" != 3 ]; then
  echo "TCAUTH_CLUSTER_HTTP_PORTS and TCAUTH_CLUSTER_RAFT_PORTS need three ports each" >&2; exit 2
fi
mkdir -p "$dir"
chmod 700 "$dir"
dir=$(cd "$dir" && pwd)
# Secrets live here: never commit them.
[ -e "$dir/.gitignore" ] || printf '# tcauth secrets (root token, keyring, private keys): never commit\n*\n' >"$dir/.gitignore"
bin=${TCAUTH_BIN:-}
if [ -z "$bin" ]; then
  bin="$dir/tcauth"
  (cd "$here" && go build -o "$bin" ./cmd/tcauth)
fi

"$bin" cluster pki --dir "$dir/pki" n1 n2 n3
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM

url() { echo "http://127.0.0.1:${http_ports[$(($1 - 1))]}"; }

start() { # start NODE-NUMBER EXTRA-FLAGS...
  local i=$1; shift
  mkdir -p "$dir/n$i"
  "$bin" controlplane --node-id "n$i" --data-dir "$dir/n$i" \
    --http-addr "127.0.0.1:${http_ports[$((i - 1))]}" --raft-addr "127.0.0.1:${raft_ports[$((i - 1))]}" \
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
    for p in "${pids[@]}"; do
      if ! kill -0 "$p" 2>/dev/null; then
        echo "a node exited; see $dir/n*.log:" >&2; tail -n 2 "$dir"/n*.log >&2; exit 1
      fi
    done
    sleep 0.2
  done
  echo "the cluster did not reach $1 members; see $dir/*.log" >&2; exit 1
}

export TASKCLUSTER_ROOT_URL
TASKCLUSTER_ROOT_URL=$(url 1)
export TASKCLUSTER_CLIENT_ID=static/taskcluster/root
if [ -e "$dir/n1/raft/node-id" ]; then
  # A cluster that has run before: every node comes back from its data
  # directory (a second bootstrap or join would be refused or wrong).
  TASKCLUSTER_ACCESS_TOKEN=$(cat "$dir/n1/root-access-token")
  export TASKCLUSTER_ACCESS_TOKEN
  start 1; start 2; start 3
  wait_members 3
else
  # Node 1 forms the cluster and generates the keyring and the root token;
  # the others get a copy of the root token (each node keeps one in its
  # data directory) and join through node 1's API.
  start 1 --bootstrap
  for _ in $(seq 100); do [ -s "$dir/n1/root-access-token" ] && break; sleep 0.1; done
  TASKCLUSTER_ACCESS_TOKEN=$(cat "$dir/n1/root-access-token")
  export TASKCLUSTER_ACCESS_TOKEN
  wait_members 1
  for i in 2 3; do mkdir -p "$dir/n$i"; cp -n "$dir/n1/root-access-token" "$dir/n$i/" 2>/dev/null || true; done
  start 2 --join "$(url 1)"
  start 3 --join "$(url 1)"
  wait_members 3
fi
"$bin" cluster peers

cat <<MSG

Three nodes are up (logs in $dir/n*.log). In another shell:

  export TASKCLUSTER_ROOT_URL=$(url 2)   # any node answers; writes are forwarded
  export TASKCLUSTER_CLIENT_ID=static/taskcluster/root
  export TASKCLUSTER_ACCESS_TOKEN=\$(cat $dir/n1/root-access-token)
  $bin cluster peers
  $bin client create demo/one --description 'a demo client' --scope 'queue:*'

Ctrl-C stops the cluster; running this script again restarts it.
MSG
wait
