#!/usr/bin/env bash
#   Check the systemd units with systemd-analyze verify, as instances, with
#   ExecStart pointing at the programs of a build tree. Any warning fails.
#   Usage: deploy/systemd/verify-units.sh BUILD_DIR      (exit 77: no systemd)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$1" && pwd)
command -v systemd-analyze >/dev/null || { echo "no systemd-analyze: skipped"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/bin"
units=()
for program in "$build"/services/*/relais-*; do
    [[ -x "$program" ]] || continue
    name=$(basename "$program")
    ln -s "$program" "$tmp/bin/$name"
    svc=${name#relais-}
    case "$svc" in
        notify) template=relais-notify@.service.in; unit="relais-notify@uasa.service" ;;
        *) template=relais@.service.in; unit="relais@$svc.service" ;;
    esac
    sed "s|@RELAIS_BINDIR@|$tmp/bin|g; s|@RELAIS_DOCDIR@|$tmp|g" "$here/$template" > "$tmp/$unit"
    units+=("$tmp/$unit")
done
cp "$here/relais.target" "$tmp/"
(( ${#units[@]} )) || { echo "no programs under $build/services"; exit 1; }
out=$(cd "$tmp" && systemd-analyze verify "${units[@]}" 2>&1) || { echo "$out"; exit 1; }
if [[ -n "$out" ]]; then
    echo "$out"
    echo "systemd-analyze printed warnings: fix the units"
    exit 1
fi
echo "verified: ${units[*]##*/}"
