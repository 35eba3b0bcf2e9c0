# shellcheck shell=bash
# Shared settings and checks for the k8s-dev scripts (sourced, not executed).
# Everything can be overridden from the environment, e.g. RELEASE=demo make deploy.
CLUSTER_NAME=${CLUSTER_NAME:-users-dev}
KUBE_CONTEXT=${KUBE_CONTEXT:-kind-${CLUSTER_NAME}}
RELEASE=${RELEASE:-users}
NAMESPACE=${NAMESPACE:-default}
IMAGE_REPO=${IMAGE_REPO:-users-service}

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# first_working NAME ARGS...: the first NAME that runs `NAME ARGS` - yours from PATH, else the one
# `make tools` put in .tools/bin (its helm runs on Linux x86-64 only); nothing when neither runs.
first_working() {
  local name=$1 candidate
  shift
  for candidate in "$(type -P "$name")" "$REPO_ROOT/.tools/bin/$name"; do
    if [ -n "$candidate" ] && "$candidate" "$@" >/dev/null 2>&1; then
      echo "$candidate"
      return 0
    fi
  done
}
HELM=$(first_working helm version --short)
KUBECTL=$(first_working kubectl version --client)

# require TOOL... : fail in one line per missing tool, saying how to get it.
require() {
  local missing=0 tool hint
  for tool in "$@"; do
    case "$tool" in
      helm) [ -n "$HELM" ] && continue ;;
      kubectl) [ -n "$KUBECTL" ] && continue ;;
      *) command -v "$tool" >/dev/null 2>&1 && continue ;;
    esac
    case "$tool" in
      helm) hint="none on PATH or in .tools/bin runs 'helm version': install helm (https://helm.sh/docs/intro/install/), or run 'make tools' on Linux x86-64" ;;
      kubectl) hint="none on PATH or in .tools/bin runs 'kubectl version --client': install kubectl (https://kubernetes.io/docs/tasks/tools/), or run 'make tools'" ;;
      kind) hint="install kind: https://kind.sigs.k8s.io/docs/user/quick-start/#installation (e.g. 'go install sigs.k8s.io/kind@latest')" ;;
      docker) hint="install Docker Engine or Docker Desktop and make sure the daemon is running: https://docs.docker.com/engine/install/" ;;
      *) hint="install it and put it on PATH" ;;
    esac
    echo "k8s-dev: '$tool' not found: $hint" >&2
    missing=1
  done
  return "$missing"
}

# The release's web Deployment carries the chart's instance and component labels; its name comes
# from the chart's fullname helper (release "users": users-users-service). Ask the cluster for it.
WEB_SELECTOR="app.kubernetes.io/instance=$RELEASE,app.kubernetes.io/component=web"
web_deployment_name() {
  local names
  names=$("${KUBECTL:?k8s-dev: no kubectl runs here}" --context "$KUBE_CONTEXT" -n "$NAMESPACE" \
    get deployment -l "$WEB_SELECTOR" -o 'jsonpath={.items[*].metadata.name}') || return 1
  if [ -z "$names" ] || [ "$names" != "${names%% *}" ]; then
    echo "k8s-dev: expected one Deployment labelled $WEB_SELECTOR in namespace $NAMESPACE, found: ${names:-none}" >&2
    return 1
  fi
  echo "$names"
}
