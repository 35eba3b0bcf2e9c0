#!/usr/bin/env bash
# make cluster-up, step 1: the Debian packages the node runs (etcd, containerd, runc, CNI plugins,
# iptables, ipset, conntrack). Installs only what is missing; says in one line what is not possible.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "cluster: needs root (it installs packages and starts a kubelet)" >&2; exit 2; }
need=()
for pair in etcd:etcd-server containerd:containerd runc:runc iptables:iptables ipset:ipset \
  conntrack:conntrack ip:iproute2; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${pair%%:*}" ] || need+=("${pair#*:}")
done
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
[ ${#need[@]} -eq 0 ] && exit 0
command -v apt-get >/dev/null || { echo "cluster: missing ${need[*]} and no apt-get to install them" >&2; exit 2; }
echo "cluster: installing ${need[*]}"
# never let a package start its own daemon (a system containerd would take the default socket)
created=0
if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod 0755 /usr/sbin/policy-rc.d; created=1; fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${need[@]}"
if [ "$created" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
