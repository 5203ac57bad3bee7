#!/usr/bin/env bash
# Load benchmark, loopback only: L1-hit throughput of swrproxy against a bare fasthttp server that
# returns the same bytes from memory, measured side by side in one run (each round measures both,
# back to back, alternating which goes first, so both see the same machine noise). Prints each
# round with its ratio, and the median of those paired ratios. Beside req/s it prints each
# server's CPU per request (user + system time from /proc/PID/stat over the run, divided by the
# requests wrk counted, in µs): less sensitive than req/s to wrk sharing the cores.
#
#   bench/wrk.sh [seconds-per-round] [rounds] [connections] [keys]
#
# keys > 1 spreads the requests evenly at random over /k/0 … /k/<keys-1> (each its own body,
# from a map in the bare server; all filled into swrproxy's L1 before measuring, then each asked
# for again so that the tracker holds its record, as for polled keys): issue 14's many keys,
# e.g. bench/wrk.sh 10 3 64 1000000.
# Needs wrk (apt-get install wrk). Starts everything it uses and stops it by process id.
set -euo pipefail
usage() {
  awk 'NR>1 && !/^#/{exit} NR>1{sub(/^# ?/,""); print}' "$0"
  echo "  defaults: 10 seconds per round, 3 rounds, 64 connections, 1 key"
}
case "${1:-}" in -h|--help|help) usage; exit 0 ;; esac
for a in "$@"; do [[ "$a" =~ ^[0-9]+$ ]] || { echo "bench/wrk.sh: $a is not a number" >&2; usage >&2; exit 2; }; done
cd "$(dirname "$0")/.."
secs=${1:-10}; rounds=${2:-3}; conns=${3:-64}; keys=${4:-1}
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }

tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

go build -o "$tmp/swrproxy" .
go build -o "$tmp/bare" ./bench/bare

. bench/lib.sh
bare_port=$(free_port); proxy_port=$(free_port)
"$tmp/bare" -listen "127.0.0.1:$bare_port" -keys "$(( keys > 1 ? keys : 0 ))" & pids+=($!); bare_pid=$!
start_swrproxy "$tmp/swrproxy" "$tmp/swr" "$proxy_port" "$bare_port" "$(l1_for "$keys")"; proxy_pid=$started

target "$keys"
wait_up "$bare_port" "$path"
wait_up "$proxy_port" "$path"
if (( keys > 1 )); then fill_keys "$proxy_port" "$keys"; fi
curl -fsS -D - -o /dev/null "http://127.0.0.1:$proxy_port$path" | grep -i '^x-cache' || true
echo "swrproxy L1 objects: $(l1_objects "$proxy_port")"

# A failed wrk run or a dead server leaves nothing to read: stop rather than print a ratio.
failed() { echo "bench/wrk.sh: round $r measured nothing (wrk failed or a server died)" >&2; exit 1; }
bare=(); prox=(); ratios=(); bare_cpu=(); prox_cpu=()
for r in $(seq "$rounds"); do
  # Alternate which server goes first, so neither always runs on the warmer (or busier) slot.
  if (( r % 2 )); then
    read -r b bc < <(measure "$bare_port" "$bare_pid") || failed
    read -r p pc < <(measure "$proxy_port" "$proxy_pid") || failed
  else
    read -r p pc < <(measure "$proxy_port" "$proxy_pid") || failed
    read -r b bc < <(measure "$bare_port" "$bare_pid") || failed
  fi
  bare+=("$b"); prox+=("$p"); bare_cpu+=("$bc"); prox_cpu+=("$pc")
  ratios+=("$(awk -v p="$p" -v b="$b" 'BEGIN {printf "%.3f", p/b}')")
  echo "round $r: bare $b req/s ($bc µs CPU/req), swrproxy $p req/s ($pc µs CPU/req), ratio ${ratios[-1]}"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "median: bare $(median "${bare[@]}") req/s ($(median "${bare_cpu[@]}") µs CPU/req), swrproxy $(median "${prox[@]}") req/s ($(median "${prox_cpu[@]}") µs CPU/req); median of the paired round ratios $(median "${ratios[@]}")"
