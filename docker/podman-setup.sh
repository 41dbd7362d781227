#!/usr/bin/env bash
# Install and configure rootful podman to build and run mriproc's image on a Debian 12
# machine that has no Docker engine and reaches no container registry (our CI machines).
#
#   sudo docker/podman-setup.sh          # idempotent: installs only what is missing
#
# What this machine kind needs, all written before the first podman command (podman
# reads its configuration once, when it first creates its storage):
#   * runc as the OCI runtime: crun fails on hybrid (v1 + v2) cgroup hierarchies;
#   * cgroupfs as cgroup manager and file-based events: no systemd runs here;
#   * default ulimits no higher than this machine's hard limits (nofile, nproc; capped
#     at 32768): podman's defaults ask for more and the container would not start;
#   * overlay storage under /var/lib/containers.
# Packages (Debian 12): podman, runc, mmdebstrap (bootstraps the base image: see
# docker/build.sh). Existing configuration files that this script did not write are
# left alone and reported.
set -euo pipefail

MARK="# written by mriproc docker/podman-setup.sh"
CONF_DIR=${CONTAINERS_CONF_DIR:-/etc/containers}

say() { printf 'podman-setup: %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  say "must run as root (rootful podman; packages from apt)"
  exit 1
fi

missing=()
for pair in podman:podman runc:runc mmdebstrap:mmdebstrap; do
  command -v "${pair%%:*}" > /dev/null || missing+=("${pair#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]} from the configured Debian mirror"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
fi

cap() { # the smaller of the hard limit and 32768 ("unlimited" counts as 32768)
  local hard=$1
  if [ "$hard" = unlimited ] || [ "$hard" -gt 32768 ]; then echo 32768; else echo "$hard"; fi
}
nofile=$(cap "$(ulimit -Hn)")
nproc=$(cap "$(ulimit -Hu)")

write() { # write FILE from stdin unless someone else's file is there
  local file=$1 text
  text=$(cat)
  if [ -e "$file" ] && ! grep -qF "$MARK" "$file"; then
    say "kept $file (not written by this script): check it holds the settings above"
    return
  fi
  mkdir -p "$(dirname "$file")"
  printf '%s\n%s\n' "$MARK" "$text" > "$file"
}

write "$CONF_DIR/containers.conf" << EOF
[containers]
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=${nproc}:${nproc}"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF

write "$CONF_DIR/storage.conf" << EOF
[storage]
driver = "overlay"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"
EOF

podman info --format '{{.Host.OCIRuntime.Name}} {{.Host.CgroupManager}} {{.Store.GraphDriverName}}' \
  | { read -r runtime manager driver
      say "podman $(podman --version | awk '{print $3}'): runtime $runtime, cgroups $manager, storage $driver, ulimits nofile=$nofile nproc=$nproc"; }
