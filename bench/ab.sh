#!/usr/bin/env bash
# Side by side, loopback only: L1-hit throughput and CPU per request of two swrproxy builds and
# the bare fasthttp server, under the same wrk rounds (each round measures the three back to
# back, the order reversed every other round, so all see the same machine noise). For telling
# whether a change to the hit path helps: on a shared machine two runs of bench/wrk.sh differ by
# more than most changes do.
#
#   bench/ab.sh A B [seconds-per-run] [rounds] [connections] [keys]
#
# A and B are git revisions of this repository (built in throwaway worktrees) or paths to
# swrproxy binaries. keys > 1 spreads the requests at random over /k/0 … /k/<keys-1>, filled into
# both builds' L1 first (each key asked for twice, as wrk.sh does). Prints each round (req/s and
# CPU µs per request of each), then the medians and in how many rounds B cost less CPU per
# request than A, with the sign test's p for that count. Needs wrk (apt-get install wrk). Starts
# everything it uses and stops it by process id.
set -euo pipefail
usage() {
  awk 'NR>1 && !/^#/{exit} NR>1{sub(/^# ?/,""); print}' "$0"
  echo "  defaults: 5 seconds per run, 6 rounds, 64 connections, 1 key"
}
case "${1:-}" in -h|--help|help) usage; exit 0 ;; esac
(( $# >= 2 && $# <= 6 )) || { usage >&2; exit 2; }
A=$1 B=$2; shift 2
for a in "$@"; do [[ "$a" =~ ^[1-9][0-9]*$ ]] || { echo "bench/ab.sh: $a is not a number of at least 1" >&2; usage >&2; exit 2; }; done
# A binary given by a path relative to the caller's directory, before the cd below.
[[ -f "$A" ]] && A=$(realpath "$A")
[[ -f "$B" ]] && B=$(realpath "$B")
cd "$(dirname "$0")/.."
secs=${1:-5}; rounds=${2:-6}; conns=${3:-64}; keys=${4:-1}
(( conns >= 2 )) || { echo "bench/ab.sh: wrk's two threads need at least 2 connections" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }

tmp=$(mktemp -d)
pids=()
trees=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for w in "${trees[@]}"; do git worktree remove --force "$w" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

# build NAME REV-OR-BINARY: the binary at $tmp/NAME.
build() {
  if [[ -x "$2" && ! -d "$2" ]]; then
    cp "$2" "$tmp/$1"
  else
    git worktree add -q --detach "$tmp/src-$1" "$2" || { echo "bench/ab.sh: $2 is neither a binary nor a revision" >&2; exit 2; }
    trees+=("$tmp/src-$1")
    (cd "$tmp/src-$1" && go build -o "$tmp/$1" .) || { echo "bench/ab.sh: $2 does not build" >&2; exit 1; }
  fi
}
build a "$A"
build b "$B"
go build -o "$tmp/bare" ./bench/bare

. bench/lib.sh
bare_port=$(free_port); a_port=$(free_port); b_port=$(free_port)
"$tmp/bare" -listen "127.0.0.1:$bare_port" -keys "$(( keys > 1 ? keys : 0 ))" & pids+=($!); bare_pid=$!
start_swrproxy "$tmp/a" "$tmp/run-a" "$a_port" "$bare_port" "$(l1_for "$keys")"; a_pid=$started
start_swrproxy "$tmp/b" "$tmp/run-b" "$b_port" "$bare_port" "$(l1_for "$keys")"; b_pid=$started

target "$keys"
for port in "$bare_port" "$a_port" "$b_port"; do wait_up "$port" "$path"; done
if (( keys > 1 )); then
  fill_keys "$a_port" "$keys"
  fill_keys "$b_port" "$keys"
fi

ports=("$bare_port" "$a_port" "$b_port"); procs=("$bare_pid" "$a_pid" "$b_pid")
: >"$tmp/rounds"
for r in $(seq "$rounds"); do
  order="0 1 2"; (( r % 2 )) || order="2 1 0"
  declare -a rps cpu
  for i in $order; do
    # A failed wrk run or a dead server leaves nothing to read: stop rather than print a ratio.
    if ! read -r rps[i] cpu[i] < <(measure "${ports[i]}" "${procs[i]}"); then
      echo "bench/ab.sh: round $r measured nothing on port ${ports[i]} (wrk failed or a server died)" >&2
      exit 1
    fi
  done
  echo "${rps[0]} ${cpu[0]} ${rps[1]} ${cpu[1]} ${rps[2]} ${cpu[2]}" >>"$tmp/rounds"
  awk -v r="$r" '{printf "round %d: bare %.0f req/s %.2f µs | A %.0f req/s %.2f µs (%.3f× bare) | B %.0f req/s %.2f µs (%.3f× bare)\n",
    r, $1, $2, $3, $4, $3 / $1, $5, $6, $5 / $1}' <<<"${rps[0]} ${cpu[0]} ${rps[1]} ${cpu[1]} ${rps[2]} ${cpu[2]}"
done
median() { sort -g | awk '{a[NR]=$1} END {printf "%.3f", a[int((NR+1)/2)]}'; }
# sign_p K N prints the two-sided sign test's p: the chance that of N rounds K or a split more
# uneven go one build's way if both cost the same (each round then a coin toss). 6 of 6 gives
# 0.031, 5 of 6 0.219: a change that wins 5 rounds of 6 needs more rounds to be told from noise.
# A tied round tells neither way: the test leaves it out.
sign_p() {
  awk -v k="$1" -v n="$2" '
    function c(n, r,  i, v) {v = 1; for (i = 1; i <= r; i++) v = v * (n - r + i) / i; return v}
    BEGIN {
      for (i = k; i <= n; i++) hi += c(n, i) # n choose i: rounds of n that i won
      for (i = 0; i <= k; i++) lo += c(n, i)
      p = 2 * (hi < lo ? hi : lo) / 2 ^ n; printf "%.3f", (p > 1 ? 1 : p)
    }'
}
cheaper=$(awk '$6 < $4' "$tmp/rounds" | wc -l)
untied=$(awk '$6 != $4' "$tmp/rounds" | wc -l)
echo "medians: CPU µs per request A $(awk '{print $4}' "$tmp/rounds" | median), B $(awk '{print $6}' "$tmp/rounds" | median);" \
  "× bare A $(awk '{print $3 / $1}' "$tmp/rounds" | median), B $(awk '{print $5 / $1}' "$tmp/rounds" | median);" \
  "B cost less CPU per request than A in $cheaper of $rounds rounds" \
  "(sign test p = $(sign_p "$cheaper" "$untied"))"
