#!/usr/bin/env bash
# t_kv_redis_compat.sh - bgsnap-kv answers as redis-server does: the same
# command sequence sent by redis-cli to both (on free loopback ports) gives
# the same output, replies and error texts included; KEYS and a full SCAN
# give the same key sets; INFO has the fields clients read.
# timeout: 120
set -u
source "$(dirname "$0")/kv_lib.sh"
kv_test_init

kvp=$(kv_free_port)
rp=$(kv_free_port)
kv_start "$kvp" "$tmp/kv.log" --maxmemory 16mb || { cat "$tmp/kv.log"; echo "FAIL: bgsnap-kv did not start"; exit 1; }
redis_start "$rp" "$tmp/redis.log" || { cat "$tmp/redis.log"; echo "SKIP: redis-server did not start here"; exit 77; }

cat >"$tmp/script" <<'CMDS'
PING
PING hello
PING a b
ECHO "hi there"
SET k1 v1
GET k1
SET k1 v2 NX
SET k1 v3 XX
GET k1
SET k2 v NX
SET k3 v XX
GET k3
SET k4 v EX 100
TTL k4
SET k5 v PX 100000
TTL k5
SET k6 v EX 0
SET k6 v EX abc
SET k6 v NX XX
SET k6 v BADOPT
SET k6 v EX 10 KEEPTTL
SET k1 v9 GET
SET g1 v1
SET g1 v2 GET
SET g2 v NX GET
SET g1 v3 NX GET
SET g1 v4 XX GET
GET g1
GET k1 extra
GET
INCR n
INCR n
DECR n
INCRBY n 10
INCRBY n abc
DECRBY n 3
INCR k1
SET big 9223372036854775807
INCR big
SET neg -9223372036854775808
DECR neg
SET lead 007
INCR lead
MSET a 1 b 2 c 3
MSET a 1 b
MGET a b c nokey
APPEND a xyz
APPEND newkey hello
GET newkey
STRLEN a
STRLEN nokey
EXISTS a b nokey a
DEL a b nokey
EXISTS a
TTL nokey
TTL c
EXPIRE c 100
TTL c
EXPIRE c 200 NX
EXPIRE c 200 XX
EXPIRE c 50 GT
EXPIRE c 50 LT
TTL c
EXPIRE nokey 100
EXPIRE c abc
EXPIRE c 10 NX XX
PERSIST c
PERSIST c
TTL c
EXPIRE c -1
EXISTS c
SELECT 0
SELECT abc
DBSIZE
FOOBAR x y
foobar
FOOBAR "with space" 2
SET
DEL
FLUSHALL
DBSIZE
GET k1
FLUSHALL SYNC
FLUSHALL BAD
CONFIG GET appendonly
CONFIG GET maxmemory-policy
QUIT
CMDS
redis-cli -p "$rp" <"$tmp/script" >"$tmp/redis.out" 2>&1
redis-cli -p "$kvp" <"$tmp/script" >"$tmp/kv.out" 2>&1
if ! diff -u "$tmp/redis.out" "$tmp/kv.out" >"$tmp/diff"; then
	fail "replies differ from redis-server's (- redis, + bgsnap-kv):"
	head -60 "$tmp/diff"
fi
[[ $(wc -l <"$tmp/redis.out") -gt 60 ]] || fail "redis-cli gave too little output: $(head -5 "$tmp/redis.out")"

# Key sets: the same keys in both, then KEYS patterns and a full SCAN.
for p in "$rp" "$kvp"; do
	for i in $(seq 1 300); do echo "SET key:$i $i"; done | redis-cli -p "$p" >/dev/null
	redis-cli -p "$p" mset 'a[b' 1 'x?y' 2 hello 3 hallo 4 hxllo 5 >/dev/null
done
for pat in '*' 'key:1*' 'h?llo' 'h[ae]llo' 'h[^e]llo' 'h[a-b]llo' 'a\[b' 'key:??' 'nomatch*'; do
	r=$(redis-cli -p "$rp" keys "$pat" | sort)
	k=$(redis-cli -p "$kvp" keys "$pat" | sort)
	[[ $r == "$k" ]] || fail "KEYS '$pat': $(echo "$k" | wc -l) keys, redis-server $(echo "$r" | wc -l)"
done
scan_all() { # PORT [ARGS]
	local cur=0 out
	local port=$1
	shift
	while :; do
		out=$(redis-cli -p "$port" scan "$cur" "$@")
		cur=$(head -1 <<<"$out")
		tail -n +2 <<<"$out"
		[[ $cur == 0 ]] && break
	done
}
r=$(scan_all "$rp" | sed '/^$/d' | sort -u)
k=$(scan_all "$kvp" count 7 | sed '/^$/d' | sort -u)
[[ $r == "$k" ]] || fail "a full SCAN: $(echo "$k" | wc -l) keys, redis-server $(echo "$r" | wc -l)"
r=$(scan_all "$rp" match 'key:2*' | sed '/^$/d' | sort -u)
k=$(scan_all "$kvp" match 'key:2*' | sed '/^$/d' | sort -u)
[[ $r == "$k" ]] || fail "SCAN MATCH key:2*: $(echo "$k" | wc -l) keys, redis-server $(echo "$r" | wc -l)"
[[ $(redis-cli -p "$kvp" dbsize) == 305 ]] || fail "DBSIZE after the key sets: $(redis-cli -p "$kvp" dbsize)"

info=$(redis-cli -p "$kvp" info)
for f in redis_version used_memory maxmemory rdb_bgsave_in_progress rdb_last_bgsave_status latest_fork_usec \
	rdb_last_cow_size rdb_changes_since_last_save total_commands_processed connected_clients; do
	grep -q "^$f:" <<<"$info" || fail "INFO lacks $f"
done
grep -q '^db0:keys=305,' <<<"$info" || fail "INFO keyspace: $(grep '^db0' <<<"$info")"
[[ $(redis-cli -p "$kvp" lastsave) =~ ^[0-9]+$ ]] || fail "LASTSAVE is not a number"

[[ -n ${KV_TEST_SHOW:-} ]] && cat "$tmp/kv.out"
if ((fails)); then
	echo "server logs:"; tail -5 "$tmp/kv.log"
	exit 1
fi
echo "bgsnap-kv replies as redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') does"
