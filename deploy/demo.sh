#!/usr/bin/env bash
#   The one-command demo: install what is missing, build, start every
#   service the deployment file lists, feed it a simulated Paris day and
#   show the live tail. Ctrl-C stops everything cleanly; the data stay
#   under the deployment's data folder (var/demo/ by default) for the next
#   run, and each service logs to a file in its logs folder.
#
#   Usage: deploy/demo.sh [--config FILE] [--seconds N] [--rate R]
#                         [--scenario NAME] [--no-build]
#     --config FILE   deployment file (default deploy/config/demo.cfg)
#     --seconds N     stop by itself after N seconds (default: until Ctrl-C)
#     --rate R        simulated requests per second (default 3)
#     --scenario S    day (default), cold-snap, encampment
#     --no-build      use the programs already built (RELAIS_BIN_DIR or build/)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
config="$root/deploy/config/demo.cfg"
seconds=0
rate=3
scenario=day
build=1
while (( $# )); do
    case "$1" in
        --config) config=$(realpath "$2"); shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --rate) rate=$2; shift 2 ;;
        --scenario) scenario=$2; shift 2 ;;
        --no-build) build=0; shift ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^#  \{0,1\}//'; exit 0 ;;
        *) echo "demo: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
bin=${RELAIS_BIN_DIR:-$root/build}

say () { printf 'demo: %s\n' "$*" >&2; }

if (( build )); then
    "$root/deploy/install-deps.sh"
    say "building in $bin"
    cmake -S "$root" -B "$bin" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$bin" -j"$(nproc)" >/dev/null
fi
relais="$bin/services/cli/relais"
[[ -x "$relais" ]] || { say "no $relais: build first (or drop --no-build)"; exit 1; }
export RELAIS_CONFIG="$config"

#   Everything below comes from the deployment file, read by the same
#   parser the services use.
"$relais" config check >/dev/null
services=$("$relais" config get relais/services | tr ',' ' ')
data=$(realpath -m "$("$relais" config path relais/data)")
logs=$(realpath -m "$("$relais" config path relais/logs)")
mkdir -p "$data" "$logs"
pidfile="$data/demo.pids"

#   A previous demo still running on the same data would share its stores
if [[ -f "$pidfile" ]]; then
    while read -r name pid; do
        if kill -0 "$pid" 2>/dev/null && grep -q "relais" "/proc/$pid/cmdline" 2>/dev/null; then
            say "a demo is already running on $data ($name, pid $pid): stop it first"
            exit 1
        fi
    done < "$pidfile"
    rm -f "$pidfile"
fi

pids=()          # "name pid", in start order
stopping=0
stop_all () {
    (( stopping )) && return
    stopping=1
    trap - INT TERM
    local i entry name pid
    #   Reverse order: clients first, then the services, sinks before sources
    for (( i=${#pids[@]}-1; i>=0; i-- )); do
        entry=${pids[$i]}
        name=${entry% *}
        pid=${entry#* }
        kill -0 "$pid" 2>/dev/null || continue
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            say "$name (pid $pid) did not stop within 10 s: killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    rm -f "$pidfile"
    say "stopped; data and logs kept in $data"
}
trap stop_all EXIT
trap 'exit 0' INT          # Ctrl-C is how a demo normally ends
trap 'exit 143' TERM

started () {
    pids+=("$1 $2")
    echo "$1 $2" >> "$pidfile"
}

for svc in $services; do
    program="$bin/services/$svc/relais-$svc"
    if [[ ! -x "$program" ]]; then
        say "the deployment lists '$svc' but $program is not built"
        exit 1
    fi
    "$program" --config "$config" >> "$logs/$svc.log" 2>&1 &
    started "$svc" $!
    ready=0
    for _ in $(seq 100); do
        if ! kill -0 "$!" 2>/dev/null; then
            say "$svc exited at start; the end of $logs/$svc.log:"
            tail -n 20 "$logs/$svc.log" >&2
            exit 1
        fi
        if [[ "$svc" == gateway ]]; then
            #   HTTP, not ZeroMQ: ready once its port accepts a connection
            listen=$("$relais" config get gateway/listen)
            if (exec 3<>"/dev/tcp/${listen%:*}/${listen##*:}") 2>/dev/null; then
                ready=1
                break
            fi
        elif "$relais" status --src "$svc" --timeout 300ms >/dev/null 2>&1; then
            ready=1
            break
        fi
        sleep 0.1
    done
    (( ready )) || { say "$svc did not answer within 10 s (see $logs/$svc.log)"; exit 1; }
    say "$svc up (pid $!, log $logs/$svc.log)"
done

#   Partners' notifiers: each acknowledges its deliveries into a file
for partner in $("$relais" config get relais/notifiers 2>/dev/null | tr ',' ' '); do
    "$bin/services/notify/relais-notify" --config "$config" --partner "$partner" \
        --sink "file:$logs/partner-$partner.ndjson" >> "$logs/notify-$partner.log" 2>&1 &
    started "notify-$partner" $!
    say "notifier for $partner up (pid $!, deliveries in $logs/partner-$partner.ndjson)"
done

#   Shelter capacity moving: a few simulated days of entries and exits
if [[ " $services " == *" capacity "* ]]; then
    "$relais" capacity simulate --declare --seed 1 --days 3 >> "$logs/capacity-simulate.log" 2>&1 &
    started capacity-simulate $!
fi
if [[ " $services " == *" gateway "* ]]; then
    say "operations console: http://$("$relais" config get gateway/listen)/ (token in $config)"
fi

"$relais" simulate --scenario "$scenario" --rate "$rate" --quiet \
    >> "$logs/simulate.log" 2>&1 &
started simulate $!
say "simulating a Paris '$scenario' at $rate requests/s (pid $!, log $logs/simulate.log)"
say "live tail below; Ctrl-C stops everything"

tail_args=(tail --last 10)
if (( seconds > 0 )); then
    tail_args+=(--timeout "$seconds")
fi
#   The tail runs in the foreground so that it owns the terminal; its exit
#   (Ctrl-C, or the timeout) ends the demo through the EXIT trap.
rc=0
"$relais" "${tail_args[@]}" || rc=$?
#   tail exits 0 at its timeout; an interrupted tail is a normal end too
if (( rc == 130 )); then
    rc=0
fi
exit "$rc"
