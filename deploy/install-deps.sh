#!/usr/bin/env bash
#   Install the Debian 12 packages Relais needs to build, test and run.
#   Idempotent: installs only what is missing. Run as root (or with sudo).
#   Usage: deploy/install-deps.sh [--test | --bench]
#     --test   adds what the tests need
#     --bench  adds the peers of the side-by-side benchmark (tests/bench/peers.py):
#              Redis, NATS, Mosquitto, their C clients and hyperfine. Their Debian
#              services are NOT started: a policy-rc.d that refuses every start is
#              in place while apt runs (the benchmark starts its own servers on
#              non-default ports and stops them by pid).
set -euo pipefail

packages=(
    build-essential cmake pkg-config clang
    libzmq3-dev libczmq-dev libmsgpack-dev liblmdb-dev lmdb-utils libuv1-dev
    libsodium-dev libjansson-dev libcurl4-openssl-dev libhttp-parser-dev
)
if [[ "${1:-}" == "--test" ]]; then
    packages+=( python3 python3-zmq python3-msgpack libclang-rt-14-dev procps chromium valgrind strace )
fi
bench=0
if [[ "${1:-}" == "--bench" ]]; then
    bench=1
    packages+=( python3 redis-server nats-server mosquitto
                libhiredis-dev libnats-dev libmosquitto-dev hyperfine )
fi

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if (( ${#missing[@]} == 0 )); then
    exit 0
fi
echo "install-deps: installing ${missing[*]}"
sudo=""
if (( EUID != 0 )); then
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
#   --bench: keep apt from starting redis-server, nats-server and mosquitto as
#   system services (invoke-rc.d and deb-systemd-invoke obey policy-rc.d). An
#   existing policy-rc.d is left as it is; ours is removed when apt is done.
policy=/usr/sbin/policy-rc.d
if (( bench )) && [[ ! -e $policy ]]; then
    printf '#!/bin/sh\n#   relais install-deps --bench: no service starts\nexit 101\n' \
        | $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
    trap '$sudo rm -f "$policy"' EXIT
fi
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
#   --bench: apt also enables the services for the next boot; disable those we
#   just installed (never stopping anything: none was started). Without
#   systemctl (a container without systemd) there is nothing to disable.
if (( bench )) && command -v systemctl >/dev/null; then
    for p in "${missing[@]}"; do
        case $p in
            redis-server|nats-server|mosquitto)
                $sudo systemctl disable --quiet "$p" 2>/dev/null || true ;;
        esac
    done
fi
