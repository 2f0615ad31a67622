#!/usr/bin/env bash
# Builds the test tools from Go modules, cached by their inputs:
#   target/control-plane/k8s-testbin  (etcd + kube-apiserver + kubectl + the `up` supervisor)
#   target/control-plane/helm
# A cache hit costs well under a second; a cold build takes minutes (progress is printed).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${CONTROL_PLANE_OUT:-$root/target/control-plane}
K8S_VERSION=v1.37.2
HELM_VERSION=v4.3.2
mkdir -p "$out"
export CGO_ENABLED=0

# Prints a line every 200 compiled packages so a long cold build shows life.
progress() {
  local what=$1 n=0
  while IFS= read -r line; do
    n=$((n + 1))
    if [ $((n % 200)) -eq 0 ]; then echo "  $what: $n packages compiled..." >&2; fi
    case $line in *" "*) echo "$line" >&2 ;; esac
  done
}

key=$(cd "$here" && cat go.mod go.sum ./*.go | sha256sum | cut -c1-16)
bin="$out/k8s-testbin-$K8S_VERSION-$key"
if [ ! -x "$bin" ]; then
  echo "building the test control plane (Kubernetes $K8S_VERSION from Go modules; a cold build takes 10-20 minutes)..." >&2
  start=$(date +%s)
  ( cd "$here" && go build -v -trimpath -o "$bin.tmp" \
      -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37 -X k8s.io/component-base/version.gitTreeState=clean" \
      . ) 2>&1 | progress control-plane
  [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "control-plane build failed" >&2; exit 1; }
  mv "$bin.tmp" "$bin"
  echo "control plane built in $(( $(date +%s) - start )) s: $bin" >&2
fi
ln -sfn "$(basename "$bin")" "$out/k8s-testbin"
for tool in etcd kube-apiserver kubectl; do ln -sfn k8s-testbin "$out/$tool"; done

helm_dir="$out/helm-$HELM_VERSION"
if [ ! -x "$helm_dir/helm" ]; then
  echo "building helm $HELM_VERSION from Go modules..." >&2
  start=$(date +%s)
  mkdir -p "$helm_dir"
  GOBIN="$helm_dir" go install -v "helm.sh/helm/v4/cmd/helm@$HELM_VERSION" 2>&1 | progress helm
  [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "helm build failed" >&2; exit 1; }
  echo "helm built in $(( $(date +%s) - start )) s" >&2
fi
ln -sfn "helm-$HELM_VERSION/helm" "$out/helm"
