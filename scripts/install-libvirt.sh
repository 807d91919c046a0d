#!/usr/bin/env bash
# Install what libvirt-python needs to build (Debian `libvirt-dev`, which brings libvirt0 and its test
# hypervisor, plus `pkg-config` and a C compiler), then libvirt-python into the project's venv.
# Idempotent: when everything is present it only checks and prints (well under a second).
#
# Usage: scripts/install-libvirt.sh [VENV]   (default: .venv next to this script's parent directory)
# Output (stdout, one `key=value` a line): LIBVIRT_VERSION, LIBVIRT_PYTHON. Progress goes to stderr.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${1:-$here/../.venv}"
py="$venv/bin/python"
PKGS=(libvirt-dev pkg-config gcc python3-dev)

log() { echo "install-libvirt: $*" >&2; }

as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        log "need root (or passwordless sudo) to install ${PKGS[*]}"
        exit 1
    fi
}

pkg_installed() {
    [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" == "installed" ]]
}

have_binding() { [[ -x $py ]] && "$py" -c 'import libvirt' >/dev/null 2>&1; }

if ! have_binding; then
    missing=()
    for p in "${PKGS[@]}"; do
        pkg_installed "$p" || missing+=("$p")
    done
    if ((${#missing[@]})); then
        log "installing ${missing[*]} (Debian packages) ..."
        as_root apt-get update -q >&2
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            "${missing[@]}" >&2
    fi
    if ! pkg-config --exists libvirt; then
        log "pkg-config cannot find libvirt after installing libvirt-dev"
        exit 1
    fi
    if [[ ! -x $py ]]; then
        log "no Python venv at $venv (run 'make venv' first)"
        exit 1
    fi
    # Build against the system libvirt, pinned to its version so the binding never needs newer symbols.
    sysver="$(pkg-config --modversion libvirt)"
    log "building libvirt-python against libvirt $sysver ..."
    "$py" -m pip install --quiet "libvirt-python<=$sysver" >&2
    have_binding || { log "libvirt-python installed but 'import libvirt' still fails"; exit 1; }
fi

echo "LIBVIRT_VERSION=$(pkg-config --modversion libvirt)"
echo "LIBVIRT_PYTHON=$("$py" -c 'import libvirt; v = libvirt.getVersion(); print(f"{v // 1000000}.{v // 1000 % 1000}.{v % 1000}")')"
