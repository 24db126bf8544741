#!/usr/bin/env bash
# kv-vs-redis.sh - bgsnap-kv against redis-server on the same machine, the
# same data and the same load, one server after the other:
#   1. start the server on a free loopback port (Redis: Debian's package,
#      RDB compression on, AOF off, THP as Redis sets it; bgsnap-kv: an
#      arena sized for the data, method $KV_METHOD);
#   2. load KEYS keys of VALUE_BYTES (bgsnap-kv-load fill: key:%012d, the
#      names redis-benchmark uses, values that say whose they are);
#   3. SECONDS of SET/GET load (bgsnap-kv-load run: 4 clients, one request in
#      flight each), BGSAVE at SECONDS/3, latency and throughput before,
#      during and after the save, peak RSS;
#   4. restart from the snapshot and time the first answered GET (Redis:
#      loading its RDB; bgsnap-kv: eager and --lazy restore), then read
#      every key back: each must hold a value that was written to it.
# Prints a table per server, one JSON line per server, and the targets as
# ratios measured in this run.
#
# Usage: bench/kv-vs-redis.sh [KEYS] [VALUE_BYTES] [SECONDS]
#        (default 2000000 1024 30: about 2-3 GB per server)
# Environment:
#   BUILD=build            where bgsnap-kv and bgsnap-kv-load are built
#   KV_METHOD=auto         bgsnap-kv's --method
#   KV_MAXMEMORY=SIZE      bgsnap-kv's arena (default: sized from KEYS, VALUE_BYTES)
#   KV_ARGS="..."          more bgsnap-kv options for the loaded run (--fault-around 16)
#   CLIENTS=4              load connections
#   BENCH_DIR=$TMPDIR      where the snapshot files go (removed at the end)
set -u
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}
KEYS=${1:-2000000}
VSIZE=${2:-1024}
SECS=${3:-30}
KV_METHOD=${KV_METHOD:-auto}
CLIENTS=${CLIENTS:-4}
usage() { sed -n '2,/^set -u/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }
case ${1:-} in -h|--help) usage; exit 0 ;; esac
for v in "$KEYS" "$VSIZE" "$SECS"; do
	[[ $v =~ ^[0-9]+$ ]] || { usage >&2; exit 2; }
done
((VSIZE >= 24 && KEYS >= 1 && SECS >= 6)) || { echo "kv-vs-redis.sh: VALUE_BYTES >= 24, SECONDS >= 6" >&2; exit 2; }
for t in redis-server redis-cli python3 "$BUILD/bgsnap-kv" "$BUILD/bgsnap-kv-load"; do
	command -v "$t" >/dev/null || { echo "kv-vs-redis.sh: $t not found (make; scripts/deps.sh)" >&2; exit 1; }
done
load=$BUILD/bgsnap-kv-load
tmp=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/kv-vs-redis.XXXXXX")
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT
# Entry (32 B) + key + value + chunk header, in size classes a quarter apart,
# plus the table and some room.
ARENA=${KV_MAXMEMORY:-$(((KEYS * (VSIZE + 64) * 3 / 2 + KEYS * 16) / 1048576 + 128))mb}
BGSAVE_AT=$((SECS / 3))

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
stop_server() { # PORT
	local i
	redis-cli -p "$1" shutdown nosave >/dev/null 2>&1
	for ((i = 0; i < 3000; i++)); do
		redis-cli -p "$1" ping >/dev/null 2>&1 || return 0
		sleep 0.01
	done
}
say() { echo "kv-vs-redis: $*" >&2; }

# server NAME DUMPFILE CMD...: one server's whole run; JSON fragments into $tmp/NAME.*
server() {
	local name=$1 dump=$2 port
	shift 2
	port=$(free_port)
	local cmd=("$@" --port "$port")
	say "$name: starting on port $port: ${cmd[*]}"
	"${cmd[@]}" >"$tmp/$name.log" 2>&1 &
	local pid=$!
	pids+=("$pid")
	local i
	for ((i = 0; i < 1000; i++)); do
		[[ $(redis-cli -p "$port" ping 2>/dev/null) == PONG ]] && break
		sleep 0.01
	done
	say "$name: loading $KEYS keys x $VSIZE bytes"
	timeout 1800 "$load" fill "$port" "$KEYS" "$VSIZE" >"$tmp/$name.fill" || { say "$name: load failed"; tail "$tmp/$name.log" >&2; return 1; }
	say "$name: $SECS s of SET/GET, BGSAVE at $BGSAVE_AT s"
	timeout $((SECS * 20 + 600)) "$load" run "$port" "$pid" "$KEYS" "$VSIZE" "$SECS" "$BGSAVE_AT" "$CLIENTS" >"$tmp/$name.run" ||
		{ say "$name: load run failed"; tail "$tmp/$name.log" >&2; return 1; }
	stat -c '{"file_bytes": %s}' "$dump" >"$tmp/$name.file"
	stop_server "$port"
	wait "$pid" 2>/dev/null
}

# restart NAME TAG CMD...: time to the first GET, then every key checked.
restart() {
	local name=$1 tag=$2 port
	shift 2
	port=$(free_port)
	say "$name: restart ($tag)"
	timeout 1800 "$load" first-get "$port" "$tmp/$name-$tag.log" "$@" --port "$port" >"$tmp/$name-$tag.first" ||
		{ say "$name: restart failed"; cat "$tmp/$name-$tag.log" >&2; return 1; }
	pids+=("$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$tmp/$name-$tag.first")")
	timeout 1800 "$load" check "$port" "$KEYS" "$VSIZE" >"$tmp/$name-$tag.check"
	stop_server "$port"
}

mkdir -p "$tmp/redis" "$tmp/kv"
server redis "$tmp/redis/dump.rdb" redis-server --bind 127.0.0.1 --save '' --appendonly no --rdbcompression yes \
	--dir "$tmp/redis" --dbfilename dump.rdb --daemonize no || exit 1
restart redis load redis-server --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp/redis" --dbfilename dump.rdb \
	--daemonize no || exit 1
kvcmd=("$BUILD/bgsnap-kv" --dir "$tmp/kv" --dbfilename dump.bgsnap --maxmemory "$ARENA")
# shellcheck disable=SC2086
server bgsnap-kv "$tmp/kv/dump.bgsnap" "${kvcmd[@]}" --method "$KV_METHOD" ${KV_ARGS:-} || exit 1
restart bgsnap-kv eager "${kvcmd[@]}" --restore "$tmp/kv/dump.bgsnap" || exit 1
restart bgsnap-kv lazy "${kvcmd[@]}" --restore "$tmp/kv/dump.bgsnap" --lazy || exit 1

python3 - "$tmp" "$KEYS" "$VSIZE" "$SECS" "$KV_METHOD ${KV_ARGS:-}" "$ARENA" <<'PY'
import json, sys
tmp, keys, vsize, secs, method, arena = sys.argv[1:]
def j(p):
    with open(p) as f:
        return json.load(f)
res = {}
for name, restarts in (("redis", ["load"]), ("bgsnap-kv", ["lazy", "eager"])):
    run = j(f"{tmp}/{name}.run")
    r = {"server": name, "keys": int(keys), "value_bytes": int(vsize), "seconds": int(secs)}
    if name == "bgsnap-kv":
        r["method"] = method
        r["arena"] = arena
    # The time the server answered nobody: fork() for Redis, the whole
    # bgsnap_start call (write-protect before the pause, then the pause) for
    # bgsnap-kv; the pause proper is bgsnap_pause_hook_us.
    r["pause_us"] = run["pause_us"]
    if name == "bgsnap-kv":
        r["bgsnap_pause_hook_us"] = run["bgsnap_pause_hook_us"]
    r["save_ms"] = run["save_ms"]
    r["extra_mem_bytes"] = run["extra_mem_bytes"]
    r["rss_before_save"] = run["rss_before_save"]
    r["rss_peak"] = run["rss_peak"]
    for ph, out in (("before", "before"), ("save", "save"), ("after", "after")):
        for k in ("p50_ms", "p99_ms", "max_ms"):
            r[f"{k}_{out}"] = run[f"{k}_{ph}"]
    r["ops_per_s_before"] = run["ops_per_s_before"]
    r["ops_per_s_during"] = run["ops_per_s_save"]
    r["ops_per_s_after"] = run["ops_per_s_after"]
    r["file_bytes"] = j(f"{tmp}/{name}.file")["file_bytes"]
    first = j(f"{tmp}/{name}-{restarts[0]}.first")
    check = j(f"{tmp}/{name}-{restarts[0]}.check")
    r["restart_to_first_get_ms"] = first["restart_to_first_get_ms"]
    r["keys_checked_after_restart"] = check["keys_checked"]
    r["keys_wrong_after_restart"] = check["keys_wrong"]
    if name == "bgsnap-kv":
        fe = j(f"{tmp}/{name}-eager.first")
        ce = j(f"{tmp}/{name}-eager.check")
        r["restart_to_first_get_ms_eager"] = fe["restart_to_first_get_ms"]
        r["keys_checked_after_restart"] += ce["keys_checked"]
        r["keys_wrong_after_restart"] += ce["keys_wrong"]
    res[name] = r

rows = [("pause (us)", "pause_us"), ("  of it in the pause hooks (us)", "bgsnap_pause_hook_us"), ("save (ms)", "save_ms"), ("extra memory (MiB)", "extra_mem_bytes"),
        ("peak RSS (MiB)", "rss_peak"), ("ops/s before", "ops_per_s_before"), ("ops/s during save", "ops_per_s_during"),
        ("ops/s after", "ops_per_s_after"), ("p50 ms before", "p50_ms_before"), ("p99 ms before", "p99_ms_before"),
        ("max ms before", "max_ms_before"), ("p50 ms save", "p50_ms_save"), ("p99 ms save", "p99_ms_save"),
        ("max ms save", "max_ms_save"), ("p99 ms after", "p99_ms_after"), ("file (MiB)", "file_bytes"),
        ("restart to first GET (ms)", "restart_to_first_get_ms"), ("  eager restore (ms)", "restart_to_first_get_ms_eager"),
        ("keys checked after restart", "keys_checked_after_restart"), ("keys wrong after restart", "keys_wrong_after_restart")]
def fmt(k, v):
    if v is None:
        return "-"
    if k in ("extra_mem_bytes", "rss_peak", "file_bytes"):
        return f"{v / 1048576:.1f}"
    return f"{v:.3f}" if isinstance(v, float) and v < 100 else f"{v:.0f}" if isinstance(v, float) else str(v)
R, K = res["redis"], res["bgsnap-kv"]
print(f"\n{keys} keys x {vsize} B, {secs} s of SET/GET, BGSAVE at {int(secs) // 3} s; bgsnap-kv --method {method}, arena {arena}\n")
print(f"| {'':28} | {'redis-server':>14} | {'bgsnap-kv':>14} |")
print(f"|{'-' * 30}|{'-' * 16}|{'-' * 16}|")
for label, k in rows:
    print(f"| {label:28} | {fmt(k, R.get(k)):>14} | {fmt(k, K.get(k)):>14} |")
def ratio(a, b):
    return a / b if b else float("inf")
print("\n| target | measured | goal |")
print("|---|---|---|")
t = [("pause: bgsnap-kv / Redis fork", ratio(K["pause_us"], R["pause_us"]), "<= 0.05"),
     ("extra memory during save: bgsnap-kv / Redis COW", ratio(K["extra_mem_bytes"], R["extra_mem_bytes"]), "<= 1"),
     ("p99 in save window: bgsnap-kv / Redis", ratio(K["p99_ms_save"], R["p99_ms_save"]), "<= 0.5"),
     ("throughput during / before save: bgsnap-kv", ratio(K["ops_per_s_during"], K["ops_per_s_before"]), ">= 0.8"),
     ("throughput during / before save: Redis", ratio(R["ops_per_s_during"], R["ops_per_s_before"]), "(reported)"),
     ("save duration: bgsnap-kv / Redis", ratio(K["save_ms"], R["save_ms"]), "<= 1"),
     ("restart to first GET, lazy / Redis RDB load", ratio(K["restart_to_first_get_ms"], R["restart_to_first_get_ms"]), "<= 0.01"),
     ("restart to first GET, eager / Redis RDB load", ratio(K["restart_to_first_get_ms_eager"], R["restart_to_first_get_ms"]), "(reported)"),
     ("keys wrong after restart (bgsnap-kv eager+lazy, Redis)", f"{K['keys_wrong_after_restart']}, {R['keys_wrong_after_restart']}", "0")]
for name, v, goal in t:
    print(f"| {name} | {v if isinstance(v, str) else f'{v:.3f}'} | {goal} |")
print()
for r in (R, K):
    print(json.dumps(r))
PY
