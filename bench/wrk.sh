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
# from a map in the bare server; all filled into swrproxy's L1 before measuring): issue 14's
# many keys, e.g. bench/wrk.sh 10 3 64 1000000.
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

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
bare_port=$(free_port); proxy_port=$(free_port)
"$tmp/bare" -listen "127.0.0.1:$bare_port" -keys "$(( keys > 1 ? keys : 0 ))" & pids+=($!); bare_pid=$!
# An L1 that holds every key (about 2 KiB of weight per key, 256 MiB at least).
l1=$(( keys * 2048 > 268435456 ? keys * 2048 : 268435456 ))
# swrproxy with its defaults but for these settings, as bench/e2e.sh runs it: the caller's SWR_*
# are dropped and it runs in an empty directory, so that no .env applies (a SWR_ADMIN_LISTEN would
# move /_swr/metrics, which the fill below polls, off the proxy port). SWR_REDIS_URL is set empty
# on purpose: L1 only, never a redis already running on the machine.
mkdir "$tmp/swr"
(
  cd "$tmp/swr"
  for v in $(compgen -e); do [[ "$v" == SWR_* ]] && unset "$v"; done
  export SWR_UPSTREAM="http://127.0.0.1:$bare_port" SWR_LISTEN="127.0.0.1:$proxy_port" SWR_REDIS_URL= \
    SWR_L1_MAX_BYTES="$l1" SWR_LOG_LEVEL=warn
  exec "$tmp/swrproxy"
) & pids+=($!); proxy_pid=$! # the subshell execs swrproxy: the same process

path="/api/prices?pair=ALGO-USD"
script=()
if (( keys > 1 )); then
  path="/k/0"
  # Random keys for the measured runs; every key once, in order, to fill swrproxy first.
  cat >"$tmp/keys.lua" <<LUA
math.randomseed(os.time())
request = function() return wrk.format(nil, "/k/" .. math.random(0, $keys - 1)) end
LUA
  cat >"$tmp/fill.lua" <<LUA
local i, step = 0, 1
setup = function(thread) thread:set("first", i); i = i + 1 end
init = function() i = first; step = 2 end
request = function() local p = "/k/" .. (i % $keys); i = i + step; return wrk.format(nil, p) end
LUA
  script=(-s "$tmp/keys.lua")
fi
for port in "$bare_port" "$proxy_port"; do
  for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port$path" >/dev/null && break; sleep 0.1; done
done
if (( keys > 1 )); then
  # Two threads, each every other key, until swrproxy's L1 holds them all (bounded in time).
  echo "filling $keys keys into swrproxy"
  wrk -t2 -c16 -d"$(( keys / 2000 + 10 ))s" -s "$tmp/fill.lua" "http://127.0.0.1:$proxy_port/" >/dev/null & fill=$!
  pids+=("$fill")
  l1_objects() { curl -fsS "http://127.0.0.1:$proxy_port/_swr/metrics" | awk '/^swrproxy_l1_objects / {printf "%d", $2}'; }
  while kill -0 "$fill" 2>/dev/null && (( $(l1_objects) < keys )); do sleep 1; done
  kill "$fill" 2>/dev/null || true
  wait "$fill" 2>/dev/null || true
fi
curl -fsS -D - -o /dev/null "http://127.0.0.1:$proxy_port$path" | grep -i '^x-cache' || true
curl -fsS "http://127.0.0.1:$proxy_port/_swr/metrics" | awk '/^swrproxy_l1_objects / {printf "swrproxy L1 objects: %d\n", $2}' || true

# rps PORT PID prints the req/s wrk measured against PORT and the CPU time (user + system) the
# server PID spent per request over the run, in µs: a second figure, less sensitive to what
# else the machine runs than req/s (wrk shares the cores).
hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rps() {
  local before out
  before=$(ticks "$2")
  out=$(wrk -t2 -c"$conns" -d"${secs}s" "${script[@]}" "http://127.0.0.1:$1$path")
  awk -v t="$(( $(ticks "$2") - before ))" -v hz="$hz" '/ requests in / {n = $1} /Requests\/sec/ {r = $2}
    END {printf "%s %.2f\n", r, n ? t / hz * 1e6 / n : 0}' <<<"$out"
}
bare=(); prox=(); ratios=(); bare_cpu=(); prox_cpu=()
for r in $(seq "$rounds"); do
  # Alternate which server goes first, so neither always runs on the warmer (or busier) slot.
  if (( r % 2 )); then
    read -r b bc < <(rps "$bare_port" "$bare_pid"); read -r p pc < <(rps "$proxy_port" "$proxy_pid")
  else
    read -r p pc < <(rps "$proxy_port" "$proxy_pid"); read -r b bc < <(rps "$bare_port" "$bare_pid")
  fi
  for v in "$b" "$bc" "$p" "$pc"; do
    # A failed wrk run or a dead server leaves a figure empty: stop rather than print a ratio.
    [[ "$v" =~ ^[0-9.]+$ ]] || { echo "bench/wrk.sh: round $r measured nothing (wrk failed or a server died)" >&2; exit 1; }
  done
  bare+=("$b"); prox+=("$p"); bare_cpu+=("$bc"); prox_cpu+=("$pc")
  ratios+=("$(awk -v p="$p" -v b="$b" 'BEGIN {printf "%.3f", p/b}')")
  echo "round $r: bare $b req/s ($bc µs CPU/req), swrproxy $p req/s ($pc µs CPU/req), ratio ${ratios[-1]}"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "median: bare $(median "${bare[@]}") req/s ($(median "${bare_cpu[@]}") µs CPU/req), swrproxy $(median "${prox[@]}") req/s ($(median "${prox_cpu[@]}") µs CPU/req); median of the paired round ratios $(median "${ratios[@]}")"
