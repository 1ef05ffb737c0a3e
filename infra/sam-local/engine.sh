#!/usr/bin/env bash
# A Docker-compatible container engine for `sam local`: podman's API service on a socket
# of our own, installed from Debian on first use.
#
#   eval "$(bash infra/sam-local/engine.sh start)"   # exports DOCKER_HOST, CONTAINERS_CONF
#   bash infra/sam-local/engine.sh stop               # stops what start started, and its containers
#
# Why these settings (each one failed without it on this kind of machine):
#   runc, not crun: crun refuses the hybrid cgroup v2 layout here;
#   cgroupfs: there is no systemd to manage cgroups;
#   nofile/nproc ulimits: the machine lacks CAP_SYS_RESOURCE, so podman's defaults
#     (higher limits) fail with `setrlimit ... Operation not permitted`;
#   events to a file: no journald.
# The service, its socket and its pid live under .cache/sam-local/engine/; images stay in
# podman's own store, so the base image (base-image.sh) survives a stop.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dir="$root/.cache/sam-local/engine"
sock="$dir/podman.sock"
conf="$dir/containers.conf"
SUDO="$([ "$(id -u)" = 0 ] || echo sudo)"

ping() { curl -sf --max-time 2 --unix-socket "$sock" http://d/_ping >/dev/null 2>&1; }

case "${1:-}" in
start)
  # netavark: the network backend the bridge (and forward.py's gateway) comes from; named,
  # not left to podman's Recommends, which an apt configured without them would skip.
  # iptables: netavark 1.4 sets the bridge's NAT up with it and fails every container start
  # with "netavark: No such file or directory (os error 2)" when it is missing (a bare
  # machine has no iptables; one that had docker.io installed once does).
  if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! [ -x /usr/lib/podman/netavark ] \
    || ! PATH="$PATH:/usr/sbin:/sbin" command -v iptables >/dev/null; then
    echo "engine.sh: installing podman, runc, netavark and iptables (Debian)" >&2
    $SUDO apt-get update -qq >&2 && $SUDO apt-get install -y -qq podman runc netavark iptables >&2
  fi
  mkdir -p "$dir"
  cat >"$conf" <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
  export CONTAINERS_CONF="$conf"
  if ! ping; then
    rm -f "$sock"
    # --time=0: no idle exit; `stop` ends it.
    nohup podman system service --time=0 "unix://$sock" >"$dir/service.log" 2>&1 &
    echo $! >"$dir/pid"
    for _ in $(seq 1 100); do ping && break; sleep 0.1; done
    ping || { echo "engine.sh: podman service did not answer; see $dir/service.log" >&2; exit 1; }
  fi
  echo "export DOCKER_HOST=unix://$sock CONTAINERS_CONF=$conf"
  ;;
stop)
  export CONTAINERS_CONF="$conf"
  if [ -f "$dir/pid" ]; then
    # Containers sam left behind (a killed run), then the service itself.
    podman ps -aq --filter "label=sam.cli.container.type" 2>/dev/null | xargs -r podman rm -f >/dev/null 2>&1 || true
    kill "$(cat "$dir/pid")" 2>/dev/null || true
    rm -f "$dir/pid" "$sock"
  fi
  ;;
*)
  echo "usage: engine.sh start|stop" >&2
  exit 2
  ;;
esac
