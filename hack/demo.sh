#!/usr/bin/env bash
# The quickstart: a local control plane (etcd + kube-apiserver built from the Kubernetes Go
# modules), the Contiguity sandbox and the operator, with deploy/examples/ applied.
#   hack/demo.sh up     start (or re-use) everything, wait until the examples are Ready
#   hack/demo.sh down   stop every process `up` started
# DEMO_DIR (default .demo) holds the state, logs and the kubeconfig.
set -euo pipefail
trap 'echo "demo: failed at line $LINENO (logs under ${demo:-.demo})" >&2' ERR
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
demo=${DEMO_DIR:-$root/.demo}
mkdir -p "$demo"
demo=$(cd "$demo" && pwd)
tools="$root/target/control-plane"
token="contiguity_sk_demo_$(printf '%s' "$demo" | sha256sum | cut -c1-24)"

alive() { [ -f "$demo/$1.pid" ] && kill -0 "$(cat "$demo/$1.pid")" 2>/dev/null; }

stop() {
  for p in operator sandbox control-plane; do
    if alive "$p"; then
      kill -TERM "$(cat "$demo/$p.pid")" 2>/dev/null || true
      for _ in $(seq 1 100); do alive "$p" || break; sleep 0.1; done
      alive "$p" && kill -KILL "$(cat "$demo/$p.pid")" 2>/dev/null || true
      echo "stopped $p"
    fi
    rm -f "$demo/$p.pid"
  done
}

# Waits until file $1 contains a line matching $2 (or process $3 dies).
wait_line() {
  for _ in $(seq 1 600); do
    grep -qE "$2" "$1" 2>/dev/null && return 0
    alive "$3" || { echo "$3 exited; see $1" >&2; return 1; }
    sleep 0.1
  done
  echo "timed out waiting for $3; see $1" >&2
  return 1
}

up() {
  echo "== building the test tools (first run: 10-20 minutes for the Kubernetes control plane)"
  bash tests/control-plane/build.sh
  echo "== building the operator and the sandbox"
  cargo build --locked --bins --quiet
  export KUBECONFIG="$demo/cp/kubeconfig"
  kubectl=("$tools/kubectl")

  if alive control-plane; then
    echo "== control plane already running"
  else
    echo "== starting the control plane"
    rm -rf "$demo/cp"
    nohup "$tools/k8s-testbin" up --dir "$demo/cp" >"$demo/control-plane.out" 2>"$demo/control-plane.log" &
    echo $! >"$demo/control-plane.pid"
    wait_line "$demo/control-plane.out" kubeconfig control-plane
  fi
  "${kubectl[@]}" apply --server-side -f crds/ >/dev/null
  "${kubectl[@]}" wait --for=condition=Established --timeout=60s crd/numberleases.contiguity.com crd/leasefailovers.contiguity.com >/dev/null

  if alive sandbox; then
    echo "== sandbox already running"
  else
    echo "== starting the Contiguity sandbox"
    nohup target/debug/contiguity-sandbox --listen 127.0.0.1:0 --token "$token" >"$demo/sandbox.log" 2>&1 &
    echo $! >"$demo/sandbox.pid"
    wait_line "$demo/sandbox.log" "listening on http" sandbox
  fi
  sandbox_url=$(grep -oE 'listening on http://[0-9.:]+' "$demo/sandbox.log" | tail -1 | awk '{print $3}')

  if alive operator; then
    echo "== operator already running"
  else
    echo "== starting the operator (logs: $demo/operator.log)"
    CONTIGUITY_BASE_URL="$sandbox_url" CONTIGUITY_TOKEN="$token" METRICS_ADDR=127.0.0.1:0 RESYNC_INTERVAL=1m \
      nohup target/debug/contiguity-operator run >"$demo/operator.log" 2>&1 &
    echo $! >"$demo/operator.pid"
    wait_line "$demo/operator.log" "controllers started" operator
  fi
  metrics=$(grep -oE 'addr=[0-9.]+:[0-9]+' "$demo/operator.log" | head -1 | cut -d= -f2)

  echo "== applying deploy/examples/"
  "${kubectl[@]}" apply -f deploy/examples/ 
  echo "== waiting until every example is Ready"
  "${kubectl[@]}" wait --for=condition=Ready --timeout=120s numberleases --all -A >/dev/null
  "${kubectl[@]}" wait --for=condition=Ready --timeout=120s leasefailovers --all -A >/dev/null
  echo
  "${kubectl[@]}" get nl,lf -A -o wide
  cat <<TXT

Everything is running. Point kubectl at it with:
  export KUBECONFIG=$KUBECONFIG
  $tools/kubectl get contiguity -A -o wide
Sandbox (Contiguity stand-in): $sandbox_url   lease table: $sandbox_url/_sandbox/leases
Operator metrics: http://$metrics/metrics   logs: $demo/operator.log
Stop everything with: make demo-down
TXT
}

case "${1:-up}" in
  up) up ;;
  down) stop; rm -rf "$demo" ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
