#!/usr/bin/env bash
# Install Debian's `chromium` for tropic's dashboard end-to-end test (driven by Playwright for Python with
# executable_path=/usr/bin/chromium; `playwright install` is never used: it downloads its own browser
# build). Idempotent: when Chromium is present it only prints where it is.
#
# Output (stdout, one `key=value` a line): CHROMIUM, CHROMIUM_VERSION. Progress and errors go to stderr.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

PKG=chromium
BIN=/usr/bin/chromium

log() { echo "install-chromium: $*" >&2; }

installed() {
    [[ -x "$BIN" ]] && [[ "$(dpkg-query -W -f='${db:Status-Status}' "$PKG" 2>/dev/null || true)" == "installed" ]]
}

as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        log "need root (or passwordless sudo) to install $PKG"
        exit 1
    fi
}

if ! installed; then
    log "installing $PKG (Debian package) ..."
    as_root apt-get update -q >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$PKG" >&2
    if ! installed; then
        log "$PKG still missing after apt-get install"
        exit 1
    fi
fi

echo "CHROMIUM=$BIN"
echo "CHROMIUM_VERSION=$(dpkg-query -W -f='${Version}' "$PKG")"
