#!/usr/bin/env bash
# Load benchmark, loopback only: L1-hit throughput of swrproxy against a bare fasthttp server that
# returns the same bytes from memory, measured side by side in one run (each round measures both,
# back to back, alternating which goes first, so both see the same machine noise). Prints each
# round with its ratio, and the median of those paired ratios.
#
#   bench/wrk.sh [seconds-per-round] [rounds] [connections]
#
# Needs wrk (apt-get install wrk). Starts everything it uses and stops it by process id.
set -euo pipefail
usage() {
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
  echo "  defaults: 10 seconds per round, 3 rounds, 64 connections"
}
case "${1:-}" in -h|--help|help) usage; exit 0 ;; esac
for a in "$@"; do [[ "$a" =~ ^[0-9]+$ ]] || { echo "bench/wrk.sh: $a is not a number" >&2; usage >&2; exit 2; }; done
cd "$(dirname "$0")/.."
secs=${1:-10}; rounds=${2:-3}; conns=${3:-64}
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }

tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

go build -o "$tmp/swrproxy" .
go build -o "$tmp/bare" ./bench/bare

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
bare_port=$(free_port); proxy_port=$(free_port)
"$tmp/bare" -listen "127.0.0.1:$bare_port" & pids+=($!)
SWR_UPSTREAM="http://127.0.0.1:$bare_port" SWR_LISTEN="127.0.0.1:$proxy_port" SWR_REDIS_URL= \
  SWR_LOG_LEVEL=warn "$tmp/swrproxy" & pids+=($!)

path="/api/prices?pair=ALGO-USD"
for port in "$bare_port" "$proxy_port"; do
  for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port$path" >/dev/null && break; sleep 0.1; done
done
curl -fsS -D - -o /dev/null "http://127.0.0.1:$proxy_port$path" | grep -i '^x-cache' || true

rps() { wrk -t2 -c"$conns" -d"${secs}s" "http://127.0.0.1:$1$path" | awk '/Requests\/sec/ {print $2}'; }
bare=(); prox=(); ratios=()
for r in $(seq "$rounds"); do
  # Alternate which server goes first, so neither always runs on the warmer (or busier) slot.
  if (( r % 2 )); then b=$(rps "$bare_port"); p=$(rps "$proxy_port"); else p=$(rps "$proxy_port"); b=$(rps "$bare_port"); fi
  bare+=("$b"); prox+=("$p"); ratios+=("$(awk -v p="$p" -v b="$b" 'BEGIN {printf "%.3f", p/b}')")
  echo "round $r: bare $b req/s, swrproxy $p req/s, ratio ${ratios[-1]}"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "median: bare $(median "${bare[@]}") req/s, swrproxy $(median "${prox[@]}") req/s; median of the paired round ratios $(median "${ratios[@]}")"
