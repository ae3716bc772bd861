#!/usr/bin/env bash
# For people with Docker (or Podman): run the tests against a kind cluster instead of the
# local control plane. Cannot run in CI (no container engine there).
#   hack/kind-cluster.sh [up|down]     KIND_CLUSTER_NAME, KIND_NODE_IMAGE override defaults
set -euo pipefail
name=${KIND_CLUSTER_NAME:-kube-baseline}
kubeconfig=${XDG_CACHE_HOME:-$HOME/.cache}/kube-baseline/kind-$name.kubeconfig

command -v kind >/dev/null || {
  echo "error: kind is not installed (e.g. 'go install sigs.k8s.io/kind@latest')" >&2; exit 1; }

case ${1:-up} in
  up)
    mkdir -p "$(dirname "$kubeconfig")"
    kind get clusters 2>/dev/null | grep -qx "$name" ||
      kind create cluster --name "$name" --kubeconfig "$kubeconfig" --wait 120s \
        ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"}
    kind get kubeconfig --name "$name" >"$kubeconfig"
    cat <<MSG
kind cluster '$name' is ready. Use it with:
  export KUBECONFIG=$kubeconfig KB_USE_EXISTING_CLUSTER=1
  make test            # or: .venv/bin/pytest tests/integration tests/e2e
Delete it with: hack/kind-cluster.sh down
MSG
    ;;
  down) kind delete cluster --name "$name"; rm -f "$kubeconfig" ;;
  *) echo "usage: $0 [up|down]" >&2; exit 2 ;;
esac
