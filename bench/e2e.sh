#!/usr/bin/env bash
# End-to-end load benchmark (issue 14), loopback only. Four targets serve the same JSON order
# books (bench/bare: 1, 16 and 128 KiB, Cache-Control: max-age=3600):
#   stack        the shipped stack: a real nginx rendered from nginx/templates/default.conf.template
#                (gzip as shipped) → swrproxy (go build) → the origin (bench/bare), with its own
#                redis-server as L2
#   swrproxy     that same swrproxy, asked directly (issue 14's large bodies: swrproxy vs nginx)
#   nginx-cache  nginx with proxy_cache and the template's gzip settings in front of that origin
#   bare         bench/bare -gzip: the bytes from memory, gzipped once at start for clients that
#                accept gzip (the ceiling)
# For each size and Accept-Encoding (none; "gzip, br") each target runs under wrk (2 threads),
# back to back, in an order that is reversed every other round. Caches are warmed first and the
# stack, swrproxy and nginx-cache must answer X-Cache: HIT before anything is measured. Prints req/s, p99
# latency, CPU per request (utime+stime of all the target's processes over the run, from
# /proc/PID/stat), bytes per response, the Content-Encoding received, encoded/identity and ×bare.
#
#   bench/e2e.sh [seconds-per-run] [rounds] [connections]
#
# Needs wrk, nginx, redis-server, curl, go, python3, envsubst. Starts everything it uses on free
# loopback ports and stops it by process id at exit.
set -euo pipefail
usage() {
  awk 'NR>1 && !/^#/{exit} NR>1{sub(/^# ?/,""); print}' "$0"
  echo "  defaults: 10 seconds per run, 2 rounds, 64 connections (each round is 24 runs: 4 targets × 3 sizes × 2 encodings)"
}
case "${1:-}" in -h|--help|help) usage; exit 0 ;; esac
(( $# <= 3 )) || { echo "bench/e2e.sh: at most 3 arguments" >&2; usage >&2; exit 2; }
for a in "$@"; do [[ "$a" =~ ^[1-9][0-9]*$ ]] || { echo "bench/e2e.sh: $a is not a positive number" >&2; usage >&2; exit 2; }; done
secs=${1:-10}; rounds=${2:-2}; conns=${3:-64}
(( conns >= 2 )) || { echo "bench/e2e.sh: wrk -t2 needs at least 2 connections" >&2; exit 2; }
cd "$(dirname "$0")/.."
template=nginx/templates/default.conf.template

missing=0
need() { command -v "$1" >/dev/null || { echo "bench/e2e.sh: $1 not found: $2" >&2; missing=1; }; }
need wrk "apt-get install wrk"
need redis-server "apt-get install redis-server"
need curl "apt-get install curl"
need go "install Go as go.mod asks (https://go.dev/dl/)"
need python3 "apt-get install python3"
need envsubst "apt-get install gettext-base"
need ps "apt-get install procps"
nginx_bin=$(command -v nginx || true)
[[ -z "$nginx_bin" && -x /usr/sbin/nginx ]] && nginx_bin=/usr/sbin/nginx
[[ -n "$nginx_bin" ]] || { echo "bench/e2e.sh: nginx not found: apt-get install nginx" >&2; missing=1; }
(( missing == 0 )) || exit 1

tmp=$(mktemp -d "${TMPDIR:-/tmp}/swr-e2e.XXXXXX")
pids=()   # every process started, in start order; stopped in reverse
alive() { local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1; s=${s##*) }; [[ ${s%% *} != Z ]]; }
stop() { # TERM, up to 5 s, then KILL; the pid is a child of this shell, so wait reaps it
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq 50); do alive "$1" || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
cleanup() {
  local status=$? i p kids=()
  for p in "${nginx_masters[@]}"; do kids+=($(ps -o pid= --ppid "$p" 2>/dev/null || true)); done
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do stop "${pids[i]}"; done
  # A master stopped by TERM takes its workers with it; a KILLed one would leave them behind.
  for p in "${kids[@]}"; do [[ "$(cat "/proc/$p/comm" 2>/dev/null)" == nginx ]] && kill -KILL "$p" 2>/dev/null; done
  rm -rf "$tmp"
  exit "$status"
}
nginx_masters=()
trap cleanup EXIT
trap 'exit 130' INT TERM
die() { echo "bench/e2e.sh: $*" >&2; exit 1; }

echo "building swrproxy and bench/bare" >&2
go build -o "$tmp/swrproxy" .
go build -o "$tmp/bare" ./bench/bare

used=" "
free_port() { # a loopback port nobody listens on, not handed out before in this run
  local p
  while :; do
    p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    [[ "$used" == *" $p "* ]] || { used+="$p "; echo "$p"; return; }
  done
}
origin_port=$(free_port); bare_port=$(free_port); redis_port=$(free_port)
swr_port=$(free_port); stack_port=$(free_port); cache_port=$(free_port)

# wait_for NAME PID LOG CHECK...: run CHECK every 0.1 s for at most 10 s, while PID lives.
wait_for() {
  local name=$1 pid=$2 log=$3; shift 3
  for _ in $(seq 100); do
    "$@" >/dev/null 2>&1 && return 0
    alive "$pid" || { cat "$log" >&2; die "$name exited at start (log above)"; }
    sleep 0.1
  done
  cat "$log" >&2; die "$name not ready after 10 s (log above)"
}
http_ok() { curl -fs -o /dev/null --max-time 1 "$1"; }
redis_cmd() { # one inline command to our redis-server; prints the first line of the reply
  local line
  exec 3<>"/dev/tcp/127.0.0.1/$redis_port" || return 1
  printf '%s\r\n' "$1" >&3
  IFS= read -r -t 2 line <&3 || { exec 3<&-; return 1; }
  exec 3<&-
  echo "${line%$'\r'}"
}
redis_up() { [[ "$(redis_cmd PING)" == +PONG ]]; }

"$tmp/bare" -listen "127.0.0.1:$origin_port" >"$tmp/origin.log" 2>&1 & origin_pid=$!; pids+=("$origin_pid")
"$tmp/bare" -gzip -listen "127.0.0.1:$bare_port" >"$tmp/bare.log" 2>&1 & bare_pid=$!; pids+=("$bare_pid")
mkdir "$tmp/redis"
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp/redis" \
  --maxmemory 256mb --maxmemory-policy allkeys-lru >"$tmp/redis.log" 2>&1 & redis_pid=$!; pids+=("$redis_pid")
wait_for origin "$origin_pid" "$tmp/origin.log" http_ok "http://127.0.0.1:$origin_port/api/book/1k"
wait_for bare "$bare_pid" "$tmp/bare.log" http_ok "http://127.0.0.1:$bare_port/api/book/1k"
wait_for redis-server "$redis_pid" "$tmp/redis.log" redis_up

# swrproxy with its defaults but for these settings: the caller's SWR_* are dropped, and it runs
# in an empty directory, so that no .env applies.
mkdir "$tmp/swr"
(
  cd "$tmp/swr"
  for v in $(compgen -e); do [[ "$v" == SWR_* ]] && unset "$v"; done
  export SWR_UPSTREAM="http://127.0.0.1:$origin_port" SWR_LISTEN="127.0.0.1:$swr_port" \
    SWR_REDIS_URL="redis://127.0.0.1:$redis_port/0" SWR_LOG_LEVEL=warn
  exec "$tmp/swrproxy"
) >"$tmp/swrproxy.log" 2>&1 & swr_pid=$!; pids+=("$swr_pid")
wait_for swrproxy "$swr_pid" "$tmp/swrproxy.log" http_ok "http://127.0.0.1:$swr_port/_swr/healthz"

# The http {} around a server config, as the official image's /etc/nginx/nginx.conf has it
# (worker_processes auto: one worker per core; worker_connections 1024; sendfile on;
# keepalive_timeout 65), minus what needs files outside the directory (mime.types, /var/log,
# /var/cache) and with access_log off for both nginx (the image logs every request to stdout).
# As root, the workers run as root too (`user root`): the temp directory is 0700.
nginx_conf() {
  local dir=$1 user=""
  (( EUID == 0 )) && user="user root;"
  cat >"$dir/nginx.conf" <<EOF
$user
daemon off;
worker_processes auto;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    keepalive_timeout 65;
    default_type application/octet-stream;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    include $dir/default.conf;
}
EOF
}
start_nginx() { # NAME DIR PORT: check the config, start nginx in the foreground, wait until it
  # listens; sets started to the master's pid (not $(…): nginx must be a child of this shell)
  local name=$1 dir=$2 port=$3 args pid
  args=(-e "$dir/error.log" -p "$dir/" -c "$dir/nginx.conf")
  "$nginx_bin" -t -q "${args[@]}" >"$dir/check.log" 2>&1 || { cat "$dir/check.log" "$dir/default.conf" >&2; die "nginx -t rejects the $name config (above)"; }
  "$nginx_bin" "${args[@]}" >"$dir/stdout.log" 2>&1 & pid=$!
  pids+=("$pid"); nginx_masters+=("$pid")
  wait_for "nginx ($name)" "$pid" "$dir/error.log" http_ok "http://127.0.0.1:$port/api/book/1k"
  started=$pid
}

# The shipped stack's nginx: the template rendered as the image's entrypoint (envsubst) and
# nginx_test.go do, with the variables docker-compose.yml defines and no others.
mkdir "$tmp/nginx-stack"
for v in $(grep -o '\${[A-Za-z_][A-Za-z0-9_]*}' "$template" | sort -u); do
  case "$v" in '${SWRPROXY_UPSTREAM}'|'${NGINX_PORT}') ;; *) die "$template uses $v, which bench/e2e.sh (and docker-compose.yml) must define" ;; esac
done
SWRPROXY_UPSTREAM="127.0.0.1:$swr_port" NGINX_PORT="127.0.0.1:$stack_port" \
  envsubst '${SWRPROXY_UPSTREAM} ${NGINX_PORT}' <"$template" >"$tmp/nginx-stack/default.conf"
nginx_conf "$tmp/nginx-stack"
start_nginx stack "$tmp/nginx-stack" "$stack_port"; stack_nginx=$started

# nginx as the cache: proxy_cache in front of the same origin, gzip set as in the template.
gzip_lines=$(grep -E '^[[:space:]]*gzip' "$template") || die "no gzip directives in $template"
mkdir "$tmp/nginx-cache"
cat >"$tmp/nginx-cache/default.conf" <<EOF
proxy_cache_path $tmp/nginx-cache/cache levels=1:2 keys_zone=e2e:10m max_size=1g inactive=1h use_temp_path=off;
upstream origin_backend {
    server 127.0.0.1:$origin_port;
    keepalive 64;
    keepalive_timeout 60s;
}
server {
    listen 127.0.0.1:$cache_port;
    server_name localhost;
    server_tokens off;
$gzip_lines
    location / {
        proxy_pass http://origin_backend;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host \$host;
        proxy_cache e2e;
        proxy_cache_lock on;
        proxy_cache_use_stale error timeout updating;
        proxy_cache_background_update on;
        proxy_buffering on;
        proxy_buffer_size 16k;
        proxy_buffers 16 16k;
        proxy_busy_buffers_size 32k;
        add_header X-Cache \$upstream_cache_status always;
    }
}
EOF
nginx_conf "$tmp/nginx-cache"
start_nginx nginx-cache "$tmp/nginx-cache" "$cache_port"; cache_nginx=$started


declare -A base=([stack]="http://127.0.0.1:$stack_port" [swrproxy]="http://127.0.0.1:$swr_port" [nginx-cache]="http://127.0.0.1:$cache_port" [bare]="http://127.0.0.1:$bare_port")
targets=(stack swrproxy nginx-cache bare)
sizes=(1k 16k 128k)
accept="gzip, br" # the "gzip" case's Accept-Encoding; the "none" case sends none (as wrk and curl do by default)
hz=$(getconf CLK_TCK)
cat >"$tmp/summary.lua" <<'LUA'
-- Exact counts for the table: requests, bytes read (headers included), socket errors, non-2xx/3xx.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("e2e-summary %d %d %d %d\n", summary.requests, summary.bytes,
    e.connect + e.read + e.write + e.timeout, e.status))
end
LUA

# probe TARGET SIZE ENC: one GET as wrk sends it (a GET, not curl -I: HEAD takes other paths);
# sets p_status, p_bytes (the body as received, still encoded), p_xcache, p_ce (Content-Encoding).
probe() {
  local h=() out
  [[ "$3" == gzip ]] && h=(-H "Accept-Encoding: $accept")
  out=$(curl -s --max-time 5 -o /dev/null -D "$tmp/headers" -w '%{http_code} %{size_download}' "${h[@]}" "${base[$1]}/api/book/$2") || return 1
  p_status=${out% *}; p_bytes=${out#* }
  p_xcache=$(header X-Cache); p_ce=$(header Content-Encoding)
}
header() { awk -v n="$1" 'BEGIN { n = tolower(n) ":" } { sub(/\r$/, "") } tolower(substr($0, 1, length(n))) == n { sub(/^[^:]*:[ \t]*/, ""); print; exit }' "$tmp/headers"; }

# run_wrk TARGET SIZE ENC SECONDS: the wrk output in $tmp/wrk.out
run_wrk() {
  local h=()
  [[ "$3" == gzip ]] && h=(-H "Accept-Encoding: $accept")
  wrk -t2 -c"$conns" -d"$4s" --latency -s "$tmp/summary.lua" "${h[@]}" "${base[$1]}/api/book/$2" >"$tmp/wrk.out" 2>&1 ||
    { cat "$tmp/wrk.out" >&2; die "wrk against $1 /api/book/$2 ($3) failed"; }
}

# members TARGET: "group pid" for every process whose CPU the target's answers cost. nginx's
# workers are read at each run (the cache loader of nginx-cache comes and goes).
members() {
  local m
  case "$1" in
    stack) m=$stack_nginx; echo "nginx $m"; { ps -o pid= --ppid "$m" || true; } | sed 's/^ */nginx /'; echo "swrproxy $swr_pid"; echo "redis $redis_pid" ;;
    swrproxy) echo "swrproxy $swr_pid"; echo "redis $redis_pid" ;;
    nginx-cache) m=$cache_nginx; echo "nginx $m"; { ps -o pid= --ppid "$m" || true; } | sed 's/^ */nginx /' ;;
    bare) echo "bare $bare_pid" ;;
  esac
}
# ticks: "group pid" lines in, "group pid utime+stime" out (clock ticks, all threads of the process).
ticks() {
  local g p s f
  while read -r g p; do
    s=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    s=${s##*) }; read -r -a f <<<"$s" # fields from 3 (state) on: utime is field 14, stime 15
    echo "$g $p $((f[11] + f[12]))"
  done
}

echo "nginx $("$nginx_bin" -v 2>&1 | sed 's/.*\///'), $(redis-server --version | awk '{print $3}'), $(go version | awk '{print $3}'), $(nproc) cores: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
echo "stack: nginx :$stack_port (pid $stack_nginx, workers $(ps -o pid= --ppid "$stack_nginx" | xargs)) → swrproxy :$swr_port (pid $swr_pid) → origin :$origin_port, redis :$redis_port (pid $redis_pid)"
echo "nginx-cache :$cache_port (pid $cache_nginx, workers $(ps -o pid= --ppid "$cache_nginx" | xargs)); bare :$bare_port (pid $bare_pid)"

load0=$(cut -d' ' -f1-3 /proc/loadavg)
# Warm every cache and check what each target answers, then 1 s of wrk per case (connections
# opened, swrproxy's heap grown, nginx's cache files in the page cache).
: >"$tmp/probe.tsv"
for t in "${targets[@]}"; do
  for s in "${sizes[@]}"; do
    for e in none gzip; do
      for i in $(seq 10); do
        probe "$t" "$s" "$e" || die "$t /api/book/$s: no answer"
        [[ "$t" == bare || "$p_xcache" == HIT ]] && break
      done
      [[ "$p_status" == 200 ]] || die "$t /api/book/$s ($e): status $p_status"
      [[ "$t" == bare || "$p_xcache" == HIT ]] || die "$t /api/book/$s ($e): X-Cache: ${p_xcache:-none} after $i requests, not HIT"
      [[ "$e" == gzip || -z "$p_ce" ]] || die "$t /api/book/$s: Content-Encoding $p_ce to a client that accepts none"
      printf '%s\t%s\t%s\t%s\t%s\n' "$t" "$s" "$e" "${p_ce:-identity}" "$p_bytes" >>"$tmp/probe.tsv"
      run_wrk "$t" "$s" "$e" 1
    done
  done
done
echo "warm: every stack, swrproxy and nginx-cache answer is X-Cache: HIT; swrproxy's Redis holds $(redis_cmd DBSIZE | tr -d :) keys"

# Each round measures every case, a size at a time: the 8 runs of a size back to back (4 targets ×
# 2 encodings), in reverse order every other round, so that no target always gets the warmer (or
# busier) slot and identity and encoded runs of a target are paired closely in time.
: >"$tmp/results.tsv"
for r in $(seq "$rounds"); do
  for s in "${sizes[@]}"; do
    cases=()
    for e in none gzip; do for t in "${targets[@]}"; do cases+=("$t $e"); done; done
    if (( r % 2 == 0 )); then for ((i = 0, j = ${#cases[@]} - 1; i < j; i++, j--)); do c=${cases[i]}; cases[i]=${cases[j]}; cases[j]=$c; done; fi
    for c in "${cases[@]}"; do
      read -r t e <<<"$c"
      members "$t" >"$tmp/members"
      ticks <"$tmp/members" >"$tmp/before"
      run_wrk "$t" "$s" "$e" "$secs"
      ticks <"$tmp/members" >"$tmp/after"
      # group → ticks over the run, for the processes present at both ends
      read -r nginx swr redis cpu < <(awk 'NR == FNR { b[$2] = $3; next } ($2 in b) { d[$1] += $3 - b[$2]; all += $3 - b[$2] }
        END { printf "%d %d %d %d\n", d["nginx"], d["swrproxy"], d["redis"], all }' "$tmp/before" "$tmp/after")
      read -r _ reqs bytes errs status < <(grep '^e2e-summary ' "$tmp/wrk.out") || die "no summary from wrk: $(cat "$tmp/wrk.out")"
      rps=$(awk '/^Requests\/sec:/ { print $2 }' "$tmp/wrk.out")
      # wrk --latency's distribution: "99%  1.23ms" (us, ms, s or m)
      p99=$(awk '$1 == "99%" { v = $2 + 0; u = $2; sub(/^[0-9.]+/, "", u)
        printf "%.2f\n", v * (u == "us" ? 0.001 : u == "ms" ? 1 : u == "s" ? 1000 : u == "m" ? 60000 : 0) }' "$tmp/wrk.out")
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$t" "$s" "$e" "$rps" "$p99" "$reqs" "$bytes" \
        "$((errs + status))" "$cpu" "$nginx" "$swr" "$redis" >>"$tmp/results.tsv"
      awk -v r="$r" -v t="$t" -v s="$s" -v e="$e" -v rps="$rps" -v p99="$p99" -v n="$reqs" -v cpu="$cpu" -v hz="$hz" -v err="$((errs + status))" 'BEGIN {
        printf "round %d  %-4s  %-4s  %-11s  %9.0f req/s  p99 %7.2f ms  %6.1f µs CPU/req%s\n", r, s, e, t, rps, p99, n ? cpu / hz * 1e6 / n : 0, err ? "  " err " ERRORS" : "" }'
    done
  done
done

# Every answer measured should have been a hit: say so if one no longer is.
for t in stack swrproxy nginx-cache; do
  for s in "${sizes[@]}"; do
    for e in none gzip; do
      probe "$t" "$s" "$e" && [[ "$p_xcache" == HIT ]] || echo "bench/e2e.sh: after the runs, $t /api/book/$s ($e) answers X-Cache: ${p_xcache:-none}" >&2
    done
  done
done

# The table: medians over the rounds; a ratio is the median of the ratios paired within a round.
echo
echo "bench/e2e.sh $secs $rounds $conns: wrk -t2 -c$conns -d${secs}s, $rounds round(s), medians; Accept-Encoding \"$accept\" or none;" \
  "load average before $load0, after $(cut -d' ' -f1-3 /proc/loadavg) (others' work on this machine shows here)"
awk -F'\t' -v hz="$hz" -v targets="${targets[*]}" -v sizes="${sizes[*]}" '
  function median(list,   n, a, i, j, v) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) { v = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > v; j--) a[j + 1] = a[j]; a[j + 1] = v }
    return n == 0 ? 0 : n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  function us(t, k) { return $7 ? t / hz * 1e6 / $7 : 0 }
  FNR == NR { ce[$1, $2, $3] = $4; body[$1, $2, $3] = $5; next }
  {
    k = $2 SUBSEP $3 SUBSEP $4; rps[$1, k] = $5; rounds[$1] = 1
    L_rps[k] = L_rps[k] " " $5; L_p99[k] = L_p99[k] " " $6; L_wire[k] = L_wire[k] " " ($7 ? $8 / $7 : 0)
    L_cpu[k] = L_cpu[k] " " us($10); L_ngx[k] = L_ngx[k] " " us($11); L_swr[k] = L_swr[k] " " us($12); L_rds[k] = L_rds[k] " " us($13)
    errs[k] += $9
  }
  END {
    nt = split(targets, T, " "); ns = split(sizes, S, " "); E[1] = "none"; E[2] = "gzip"
    print "| target | size | Accept-Encoding | Content-Encoding | body bytes | wire bytes/resp | req/s | p99 ms | CPU µs/req | encoded/identity | × bare |"
    print "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for (a = 1; a <= nt; a++) for (b = 1; b <= ns; b++) for (c = 1; c <= 2; c++) {
      t = T[a]; s = S[b]; e = E[c]; k = t SUBSEP s SUBSEP e
      enc = ""; bare = ""
      for (r in rounds) {
        if (e == "gzip" && rps[r, t SUBSEP s SUBSEP "none"] > 0) enc = enc " " rps[r, k] / rps[r, t SUBSEP s SUBSEP "none"]
        if (rps[r, "bare" SUBSEP s SUBSEP e] > 0) bare = bare " " rps[r, k] / rps[r, "bare" SUBSEP s SUBSEP e]
      }
      if (e == "gzip") { ratio[t, s] = median(enc) }
      printf "| %s | %s | %s | %s | %d | %.0f | %.0f | %.2f | %.1f | %s | %s |%s\n", t, s, e == "gzip" ? "gzip, br" : "none",
        ce[t, s, e], body[t, s, e], median(L_wire[k]), median(L_rps[k]), median(L_p99[k]), median(L_cpu[k]),
        e == "gzip" ? sprintf("%.2f", ratio[t, s]) : "", t == "bare" ? "1" : sprintf("%.2f", median(bare)),
        errs[k] ? " " errs[k] " ERRORS (socket or non-2xx)" : ""
    }
    print ""
    print "Where the stack'\''s CPU goes (µs per request, medians):"
    print "| size | Accept-Encoding | nginx | swrproxy | redis |"
    print "| --- | --- | ---: | ---: | ---: |"
    for (b = 1; b <= ns; b++) for (c = 1; c <= 2; c++) {
      k = "stack" SUBSEP S[b] SUBSEP E[c]
      printf "| %s | %s | %.1f | %.1f | %.1f |\n", S[b], E[c] == "gzip" ? "gzip, br" : "none", median(L_ngx[k]), median(L_swr[k]), median(L_rds[k])
    }
    print ""
    met = 1; line = ""
    for (b = 1; b <= ns; b++) { line = line sprintf(" %s %.2f", S[b], ratio["stack", S[b]]); if (ratio["stack", S[b]] < 0.8) met = 0 }
    printf "issue 14 target (stack: encoded clients served at >= 0.8 of the identity rate at every size): %s (%s )\n", met ? "met" : "NOT met", line
  }' "$tmp/probe.tsv" "$tmp/results.tsv"
