#!/usr/bin/env bash
# t_kv_benchmark.sh - redis-benchmark runs unchanged against bgsnap-kv:
# -t set,get,incr,mset, plain and pipelined, with a BGSAVE taken while the
# load runs; every test reports its rate, the keys it wrote are there, and
# the BGSAVE succeeds.
# timeout: 180
set -u
source "$(dirname "$0")/kv_lib.sh"
kv_test_init

kvp=$(kv_free_port)
kv_start "$kvp" "$tmp/kv.log" --maxmemory 32mb || { cat "$tmp/kv.log"; echo "FAIL: bgsnap-kv did not start"; exit 1; }

for pipe in 1 16; do
	out=$(timeout 60 redis-benchmark -p "$kvp" -t set,get,incr,mset -n 5000 -r 1000 -c 10 -P "$pipe" -q 2>&1)
	echo "redis-benchmark -P $pipe:"
	echo "$out" | tr '\r' '\n' | grep -E 'requests per second' | sed 's/^/  /'
	for t in SET GET INCR MSET; do
		echo "$out" | tr '\r' '\n' | grep -qE "^$t.*: [0-9.]+ requests per second" ||
			fail "redis-benchmark -t ${t,,} -P $pipe gave no rate: $(echo "$out" | tail -3)"
	done
	grep -qiE 'error|ERR ' <<<"$out" && fail "redis-benchmark -P $pipe reported an error: $(grep -iE 'error|ERR ' <<<"$out" | head -3)"
done

# A BGSAVE while the load runs.
timeout 60 redis-benchmark -p "$kvp" -t set -n 40000 -r 100000 -c 4 -q >"$tmp/bench.out" 2>&1 &
bpid=$!
sleep 0.3
r=$(redis-cli -p "$kvp" bgsave)
[[ $r == "Background saving started" ]] || fail "BGSAVE under redis-benchmark: $r"
for ((i = 0; i < 500; i++)); do
	[[ $(redis-cli -p "$kvp" info persistence | tr -d '\r' | grep '^rdb_bgsave_in_progress:') == *:0 ]] && break
	sleep 0.02
done
wait "$bpid" || fail "redis-benchmark failed while BGSAVE ran: $(tail -3 "$tmp/bench.out")"
st=$(redis-cli -p "$kvp" info persistence | tr -d '\r' | grep '^rdb_last_bgsave_status:')
[[ $st == *:ok ]] || fail "BGSAVE under load: $st"
[[ -s $tmp/dump.bgsnap ]] || fail "no snapshot file after BGSAVE"
n=$(redis-cli -p "$kvp" dbsize)
[[ $n -gt 1000 ]] || fail "DBSIZE $n after the benchmark's SETs"
pause=$(redis-cli -p "$kvp" info | tr -d '\r' | grep '^latest_fork_usec:')
echo "BGSAVE under redis-benchmark: $st, $pause, $n keys"
((fails)) && exit 1
exit 0
