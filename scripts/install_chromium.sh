#!/bin/sh
# Install Debian's chromium (headless browser for the report test) when it is missing.
# Prints the browser's path on success; exits non-zero with the reason otherwise.
# Needs root (or sudo without a password) and access to a Debian/Ubuntu apt mirror.
set -eu

find_browser() {
    for name in chromium chromium-browser; do
        if command -v "$name" >/dev/null 2>&1; then
            command -v "$name"
            return 0
        fi
    done
    return 1
}

if find_browser; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_chromium: no chromium on PATH and no apt-get to install it" >&2
    exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "install_chromium: no chromium on PATH; installing it needs root (apt-get install chromium)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Wait for another apt run (e.g. a parallel CI job) rather than failing on its lock.
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends chromium >&2
find_browser
