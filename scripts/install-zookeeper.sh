#!/usr/bin/env bash
# Install Debian's ZooKeeper jars (package `zookeeper`, which pulls a JRE) for tropic's distributed mode
# and its tests. Idempotent: when everything is present it only prints where things are (well under a
# second). The system service is never started: tests and benchmarks run their own ensembles
# (tests/zkharness.py) on free loopback ports.
#
# Output (stdout, one `key=value` a line, so callers can `eval` or grep it):
#   ZK_VERSION, ZK_JAR, ZK_CLASSPATH (the package's own; the jar's manifest Class-Path pulls in the
#   dependencies), ZK_MAIN (the server's main class), JAVA
# Progress and errors go to stderr.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

PKG=zookeeper
ZK_JAR=/usr/share/java/zookeeper.jar
ENV_FILE=/etc/zookeeper/conf/environment

log() { echo "install-zookeeper: $*" >&2; }

installed() {
    [[ "$(dpkg-query -W -f='${db:Status-Status}' "$PKG" 2>/dev/null || true)" == "installed" ]] \
        && [[ -f "$ZK_JAR" ]] && command -v java >/dev/null 2>&1
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
    log "installing $PKG (Debian package, with its JRE) ..."
    # Keep the package's init script / systemd unit from starting a server on port 2181: invoke-rc.d and
    # deb-systemd-invoke both obey policy-rc.d, exit code 101 meaning "action forbidden". An existing
    # policy file (e.g. a container's) is left alone.
    policy=/usr/sbin/policy-rc.d
    created_policy=0
    if [[ ! -e $policy ]]; then
        as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
        created_policy=1
    fi
    cleanup() { if [[ $created_policy -eq 1 ]]; then as_root rm -f "$policy"; fi; }
    trap cleanup EXIT

    as_root apt-get update -q >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$PKG" >&2

    cleanup
    trap - EXIT
    if ! installed; then
        log "$PKG still missing after apt-get install"
        exit 1
    fi
fi

# The classpath the package's own start scripts use; fall back to every jar ZooKeeper depends on.
classpath=""
if [[ -r $ENV_FILE ]]; then
    # shellcheck disable=SC1090
    classpath="$(set +u; . "$ENV_FILE" >/dev/null 2>&1; echo "${CLASSPATH:-}")"
fi
if [[ -z $classpath ]]; then
    classpath="/etc/zookeeper/conf:$ZK_JAR:$(find /usr/share/java -maxdepth 1 -name '*.jar' | sort | paste -sd:)"
fi

echo "ZK_VERSION=$(dpkg-query -W -f='${Version}' "$PKG")"
echo "ZK_JAR=$ZK_JAR"
echo "ZK_CLASSPATH=$classpath"
echo "ZK_MAIN=org.apache.zookeeper.server.quorum.QuorumPeerMain"
echo "JAVA=$(readlink -f "$(command -v java)")"
