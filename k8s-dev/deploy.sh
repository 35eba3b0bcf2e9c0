#!/usr/bin/env bash
# make deploy: build the image, load it into the kind cluster, helm upgrade --install --wait.
#   image   users-service:dev-<git sha>   (plus -dirty-<hash of the diff> when the work tree has changes,
#           so an edited tree never reuses the tag of the clean commit and the pods really roll)
#   values  chart/values-dev.yaml, then k8s-dev/values-kind.yaml (NodePort 30080 -> http://127.0.0.1:30080)
# Overrides: RELEASE (users), NAMESPACE (default), CLUSTER_NAME (users-dev), HELM_EXTRA_ARGS.
set -euo pipefail
# shellcheck source=k8s-dev/lib.sh
source "$(dirname "$0")/lib.sh"
require docker kind helm kubectl
cd "$REPO_ROOT"

if ! kind get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
  echo "k8s-dev: kind cluster '$CLUSTER_NAME' not found: run 'make kind-up' first" >&2
  exit 1
fi
for f in Dockerfile chart/Chart.yaml chart/values-dev.yaml k8s-dev/values-kind.yaml; do
  [ -f "$f" ] || { echo "k8s-dev: $f is missing" >&2; exit 1; }
done

sha=$(git rev-parse --short=12 HEAD)
tag="dev-$sha"
if [ -n "$(git status --porcelain --untracked-files=normal)" ]; then
  dirty=$( (git diff HEAD; git ls-files -z --others --exclude-standard | xargs -0r sha256sum) | sha256sum | cut -c1-8)
  tag="$tag-dirty-$dirty"
fi
image="$IMAGE_REPO:$tag"

echo "k8s-dev: building $image"
docker build \
  --build-arg APP_VERSION="$tag" \
  --build-arg GIT_SHA="$(git rev-parse HEAD)" \
  --build-arg BUILD_DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  -t "$image" .

echo "k8s-dev: loading $image into kind cluster '$CLUSTER_NAME'"
kind load docker-image "$image" --name "$CLUSTER_NAME"

echo "k8s-dev: helm upgrade --install $RELEASE (context $KUBE_CONTEXT, namespace $NAMESPACE)"
# shellcheck disable=SC2086  # HELM_EXTRA_ARGS is a list of flags on purpose
"$HELM" upgrade --install "$RELEASE" chart \
  --kube-context "$KUBE_CONTEXT" --namespace "$NAMESPACE" --create-namespace \
  -f chart/values-dev.yaml -f k8s-dev/values-kind.yaml \
  --set image.repository="$IMAGE_REPO" --set image.tag="$tag" \
  --wait --timeout 5m ${HELM_EXTRA_ARGS:-}

deployment=$(web_deployment_name)
"$KUBECTL" --context "$KUBE_CONTEXT" -n "$NAMESPACE" rollout status "deployment/$deployment" --timeout=2m
cat <<MSG
k8s-dev: deployed $image as release '$RELEASE'
  curl -s http://127.0.0.1:30080/readyz
  kubectl --context $KUBE_CONTEXT -n $NAMESPACE scale deployment/$deployment --replicas=3
  kubectl --context $KUBE_CONTEXT -n $NAMESPACE get pods -w
MSG
