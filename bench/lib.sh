# Shared by bench/wrk.sh and bench/ab.sh (sourced, not run): starting the servers on loopback,
# filling many keys, and one measured wrk run. The caller sets tmp (a scratch directory), pids
# (the processes cleanup stops), and, for measure, secs, conns, path and script.

# free_port prints a free loopback port.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_swrproxy BIN DIR PORT UPSTREAM_PORT L1_BYTES starts swrproxy BIN with its defaults but
# for these settings, as bench/e2e.sh runs it: the caller's SWR_* are dropped and it runs in the
# empty directory DIR, so that no .env applies (a SWR_ADMIN_LISTEN would move /_swr/metrics,
# which fill_keys polls, off the proxy port). SWR_REDIS_URL is set empty on purpose: L1 only,
# never a redis already running on the machine. Its process id is in started (the subshell
# execs swrproxy: the same process).
start_swrproxy() {
  mkdir "$2"
  (
    cd "$2"
    for v in $(compgen -e); do [[ "$v" == SWR_* ]] && unset "$v"; done
    export SWR_UPSTREAM="http://127.0.0.1:$4" SWR_LISTEN="127.0.0.1:$3" SWR_REDIS_URL= \
      SWR_L1_MAX_BYTES="$5" SWR_LOG_LEVEL=warn
    exec "$1"
  ) & pids+=($!)
  started=$!
}

# l1_for KEYS prints an L1 bound that holds every key (about 2 KiB of weight per key, 256 MiB at
# least).
l1_for() { echo $(( $1 * 2048 > 268435456 ? $1 * 2048 : 268435456 )); }

# target KEYS sets what the measured runs ask for: path (one key, or /k/0 to check the servers
# answer) and script (wrk's arguments: random keys among KEYS, key_scripts' keys.lua).
target() {
  path="/api/prices?pair=ALGO-USD"
  script=()
  if (( $1 > 1 )); then
    path="/k/0"
    key_scripts "$1"
    script=(-s "$tmp/keys.lua")
  fi
}

# key_scripts KEYS writes $tmp/keys.lua (random keys, for the measured runs) and $tmp/fill.lua
# (every key in order, two threads each every other key, to fill swrproxy first: fill_keys runs it
# twice).
key_scripts() {
  cat >"$tmp/keys.lua" <<LUA
math.randomseed(os.time())
request = function() return wrk.format(nil, "/k/" .. math.random(0, $1 - 1)) end
LUA
  cat >"$tmp/fill.lua" <<LUA
local i, step = 0, 1
setup = function(thread) thread:set("first", i); i = i + 1 end
init = function() i = first; step = 2 end
request = function() local p = "/k/" .. (i % $1); i = i + step; return wrk.format(nil, p) end
LUA
}

# wait_up PORT PATH waits (5 s at most) until the server on PORT answers PATH.
wait_up() {
  for _ in $(seq 50); do curl -fs "http://127.0.0.1:$1$2" >/dev/null && return; sleep 0.1; done
}

# metric PORT NAME prints the value of the metric NAME of the swrproxy on PORT (0 if it does not
# answer).
metric() {
  curl -fsS "http://127.0.0.1:$1/_swr/metrics" 2>/dev/null | awk -v m="$2" '$1 == m {printf "%d", $2}' || echo 0
}

# l1_objects PORT prints the objects in the L1 of the swrproxy on PORT.
l1_objects() { metric "$1" swrproxy_l1_objects; }

# fill_keys PORT KEYS asks the swrproxy on PORT for every key (key_scripts' fill.lua) until its L1
# holds them all, then for every key again until the tracker holds a record for each it has room
# for (a key gets one at its second request): runs then measure polled keys, not first hits
# (without this pass a run measured mostly the requests that make the records). Each pass is
# bounded in time; it warns when L1 does not hold every key.
fill_keys() {
  echo "filling $2 keys into the swrproxy on port $1"
  fill_pass "$1" "$2" swrproxy_l1_objects
  local held
  held=$(l1_objects "$1")
  (( ${held:-0} >= $2 )) || echo "warning: the swrproxy on port $1 holds ${held:-0} of $2 keys in L1" >&2
  fill_pass "$1" "$2" swrproxy_refresh_tracked_keys
  echo "tracked keys: $(metric "$1" swrproxy_refresh_tracked_keys), untracked requests: $(metric "$1" swrproxy_refresh_untracked_total)"
}

# fill_pass PORT KEYS METRIC runs fill.lua against PORT until the metric METRIC reaches KEYS, or
# stops growing for 3 s, or the pass's time bound passes.
fill_pass() {
  wrk -t2 -c16 -d"$(( $2 / 2000 + 10 ))s" -s "$tmp/fill.lua" "http://127.0.0.1:$1/" >/dev/null & local fill=$!
  pids+=("$fill")
  local n last=-1 still=0
  while kill -0 "$fill" 2>/dev/null; do
    n=$(metric "$1" "$3")
    (( ${n:-0} >= $2 )) && break
    if (( ${n:-0} == last )); then (( ++still >= 3 )) && break; else still=0; fi
    last=${n:-0}
    sleep 1
  done
  kill "$fill" 2>/dev/null || true
  wait "$fill" 2>/dev/null || true
}

# measure PORT PID prints the req/s of one wrk run against PORT and the CPU time (user + system)
# the server PID spent per request over it, in µs: a second figure, less sensitive to what else
# the machine runs than req/s (wrk shares the cores). It fails, printing nothing, when wrk failed
# or the server died.
measure() {
  local before out hz
  hz=$(getconf CLK_TCK)
  before=$(awk '{print $14 + $15}' "/proc/$2/stat") || return 1
  out=$(wrk -t2 -c"$conns" -d"${secs}s" "${script[@]}" "http://127.0.0.1:$1$path") || return 1
  awk -v t="$(( $(awk '{print $14 + $15}' "/proc/$2/stat") - before ))" -v hz="$hz" '
    / requests in / {n = $1} /Requests\/sec/ {r = $2}
    END {if (!n || r == "") exit 1; printf "%s %.2f\n", r, t / hz * 1e6 / n}' <<<"$out"
}
