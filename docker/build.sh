#!/usr/bin/env bash
# Build mriproc's container image with docker or podman, whichever runs here.
#
#   docker/build.sh [options]            (from anywhere; the context is the repository)
#
# Options:
#   --tag NAME          image name (default mriproc:VERSION, VERSION from pyproject.toml)
#   --target STAGE      runtime (default) or test (runs the test suite in the image)
#   --engine ENGINE     docker or podman (default: docker if its engine answers, else podman)
#   --base auto|local|IMAGE
#                       the Python 3.11 base image. auto (default): the Dockerfile's pinned
#                       python:3.11-slim if the engine has it or can pull it, else a local
#                       one; local: always the local one (Debian 12 and its Python 3.11,
#                       bootstrapped with mmdebstrap from the configured Debian mirror and
#                       imported as localhost/mriproc-base:bookworm-python3.11; reused
#                       once made); IMAGE: that image.
#   --mirror M          Debian mirror or sources file for the local base (default: the
#                       first of /etc/apt/sources.list.d/debian.sources, /etc/apt/sources.list
#                       that exists, else http://deb.debian.org/debian)
#   --index-url URL     a Python package index to install from instead of PyPI
#   --pip-conf FILE     a pip configuration file for the install steps (index, proxy...)
#   --ca-bundle FILE    the CA bundle pip should trust (a TLS-intercepting proxy); default:
#                       the one this machine's pip trusts ($PIP_CERT, else pip's
#                       `global.cert` setting), else none (pip's own certificates)
#   --oci-archive FILE  also save the image as an OCI archive (for `apptainer build`)
#
# The index, pip configuration and CA bundle are handed to the build as secrets: used by
# the install steps, never stored in the image or its history.  Prints the image's size.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/pyproject.toml" | head -1)
tag="mriproc:$version" target=runtime engine="" base=auto mirror="" index_url=""
pip_conf="" ca_bundle=${PIP_CERT:-} oci_archive=""
LOCAL_BASE=localhost/mriproc-base:bookworm-python3.11

say() { printf 'build.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --tag) tag=$2; shift 2 ;;
    --target) target=$2; shift 2 ;;
    --engine) engine=$2; shift 2 ;;
    --base) base=$2; shift 2 ;;
    --mirror) mirror=$2; shift 2 ;;
    --index-url) index_url=$2; shift 2 ;;
    --pip-conf) pip_conf=$2; shift 2 ;;
    --ca-bundle) ca_bundle=$2; shift 2 ;;
    --oci-archive) oci_archive=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
case "$target" in runtime|test) ;; *) die "--target must be runtime or test, not $target" ;; esac
if [ -z "$ca_bundle" ] && command -v python3 > /dev/null; then
  ca_bundle=$(python3 -m pip config list 2> /dev/null | sed -n "s/^global\.cert='\(.*\)'$/\1/p" | tail -1)
fi
for file in "$pip_conf" "$ca_bundle"; do
  [ -z "$file" ] || [ -r "$file" ] || die "cannot read $file"
done

if [ -z "$engine" ]; then
  if command -v docker > /dev/null && docker info > /dev/null 2>&1; then engine=docker
  elif command -v podman > /dev/null; then engine=podman
  else die "neither a running docker engine nor podman found (Debian: sudo docker/podman-setup.sh)"
  fi
fi
command -v "$engine" > /dev/null || die "$engine is not installed"

pinned=$(sed -n 's/^ARG PYTHON_IMAGE=//p' "$here/Dockerfile")

has_image() { "$engine" image inspect "$1" > /dev/null 2>&1; }

local_base() {
  if has_image "$LOCAL_BASE"; then
    say "base: $LOCAL_BASE (made earlier)"
    return
  fi
  command -v mmdebstrap > /dev/null || die "mmdebstrap is needed to make the base image (apt-get install mmdebstrap)"
  if [ -z "$mirror" ]; then
    for candidate in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
      if [ -s "$candidate" ]; then mirror=$candidate; break; fi
    done
    mirror=${mirror:-http://deb.debian.org/debian}
  fi
  say "base: bootstrapping Debian 12 + Python 3.11 from $mirror (about 30 s)"
  local tmp
  tmp=$(mktemp -d)
  # minbase + Python; documentation, manuals and translations left out as in Debian's
  # slim images; merged /usr without the usrmerge package (and its Perl).
  mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,python-is-python3 \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --format=tar bookworm "$tmp/rootfs.tar" "$mirror" > /dev/null
  "$engine" import --change 'CMD ["python3"]' "$tmp/rootfs.tar" "$LOCAL_BASE" > /dev/null
  rm -rf "$tmp"
}

case "$base" in
  local) local_base; python_image=$LOCAL_BASE ;;
  auto)
    if has_image "$pinned" || "$engine" pull -q "$pinned" > /dev/null 2>&1; then
      python_image=$pinned
      say "base: $pinned"
    else
      say "base: $pinned cannot be pulled (no registry reachable?); using a local base"
      local_base
      python_image=$LOCAL_BASE
    fi ;;
  *) python_image=$base ;;
esac

secrets=()
tmp_secrets=$(mktemp -d)
trap 'rm -rf "$tmp_secrets"' EXIT
if [ -n "$index_url" ]; then
  { [ -n "$pip_conf" ] && cat "$pip_conf"; printf '\n[global]\nindex-url = %s\n' "$index_url"; } \
    > "$tmp_secrets/pip.conf"
  pip_conf=$tmp_secrets/pip.conf
fi
[ -z "$pip_conf" ] || secrets+=(--secret "id=pip_conf,src=$pip_conf")
[ -z "$ca_bundle" ] || secrets+=(--secret "id=ca_bundle,src=$ca_bundle")

network=()
[ "$engine" = podman ] && network=(--network host)  # without CNI plugins configured
revision=$(git -C "$root" rev-parse HEAD 2> /dev/null || echo unknown)
created=$(date -u +%Y-%m-%dT%H:%M:%SZ)
# The labels from build arguments are set again with --label: podman 4.3 reuses a
# cached LABEL layer whose build arguments changed (seen: the previous commit's
# revision on a rebuilt image).
labels=()
for pair in "version=$version" "revision=$revision" "created=$created"; do
  labels+=(--label "org.opencontainers.image.$pair")
done
say "$engine build --target $target -t $tag (base $python_image)"
"$engine" build -f "$here/Dockerfile" --target "$target" -t "$tag" "${network[@]}" \
  --build-arg "PYTHON_IMAGE=$python_image" --build-arg "VERSION=$version" \
  --build-arg "REVISION=$revision" --build-arg "CREATED=$created" "${labels[@]}" \
  "${secrets[@]}" "$root"

size=$("$engine" image inspect --format '{{.Size}}' "$tag")
say "built $tag: $((size / 1000000)) MB"
if [ -n "$oci_archive" ]; then
  if [ "$engine" = podman ]; then
    podman save --format oci-archive -o "$oci_archive" "$tag"
  else
    docker save -o "$oci_archive" "$tag"  # Docker >= 25 writes an OCI layout too
  fi
  say "saved $oci_archive (apptainer build mriproc.sif oci-archive://$oci_archive)"
fi
