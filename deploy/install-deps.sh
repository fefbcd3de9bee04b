#!/usr/bin/env bash
#   Install the Debian 12 packages Relais needs to build, test and run.
#   Idempotent: installs only what is missing. Run as root (or with sudo).
#   Usage: deploy/install-deps.sh [--test]   (--test adds what the tests need)
set -euo pipefail

packages=(
    build-essential cmake pkg-config clang
    libzmq3-dev libczmq-dev libmsgpack-dev liblmdb-dev lmdb-utils libuv1-dev
    libsodium-dev libjansson-dev libcurl4-openssl-dev libhttp-parser-dev
)
if [[ "${1:-}" == "--test" ]]; then
    packages+=( python3 python3-zmq python3-msgpack libclang-rt-14-dev procps chromium valgrind strace )
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
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
