#!/usr/bin/env bash
# t_kv_persist_cli.sh - bgsnap-kv's command line and its saves other than
# BGSAVE: --help (exit 0), bad options (exit 2), --save N taking periodic
# snapshots, SHUTDOWN and SIGTERM saving when --save is set, SAVE, a
# restart from each file holding what was written, CONFIG SET save.
# timeout: 120
set -u
source "$(dirname "$0")/kv_lib.sh"
kv_test_init
kv=$BUILD/bgsnap-kv

"$kv" --help >"$tmp/out" 2>&1 || fail "--help: exit $?"
grep -q -- '--maxmemory' "$tmp/out" || fail "--help does not list --maxmemory"
for bad in "--port 70000" "--maxmemory 10" "--method bogus" "--lazy" "--nosuch" "--dbfilename a/b" "--save x" "--thp maybe" "--fault-around 3" "--pre-protect 2" "--save-nice 20"; do
	# shellcheck disable=SC2086
	"$kv" $bad >"$tmp/out" 2>&1
	rc=$?
	[[ $rc == 2 ]] || fail "'$bad': exit $rc, want 2"
	[[ -s $tmp/out ]] || fail "'$bad': no message"
done

port=$(kv_free_port)
kv_start "$port" "$tmp/kv.log" --maxmemory 8mb --save 1 || { cat "$tmp/kv.log"; echo "FAIL: did not start"; exit 1; }
redis-cli -p "$port" set periodic 1 >/dev/null
[[ $(redis-cli -p "$port" config get save | tail -1) == "1 1" ]] || fail "CONFIG GET save with --save 1: $(redis-cli -p "$port" config get save | tr '\n' ' ')"
for ((i = 0; i < 300; i++)); do
	[[ -s $tmp/dump.bgsnap ]] && break
	sleep 0.02
done
[[ -s $tmp/dump.bgsnap ]] || fail "--save 1: no snapshot after 6 s"
redis-cli -p "$port" set atshutdown 2 >/dev/null
redis-cli -p "$port" shutdown >/dev/null 2>&1
wait "$kv_pid"
kv_pid=''
kv_start "$port" "$tmp/kv.log" --maxmemory 8mb --restore "$tmp/dump.bgsnap" || { cat "$tmp/kv.log"; echo "FAIL: restore did not start"; exit 1; }
[[ $(redis-cli -p "$port" mget periodic atshutdown | tr '\n' ' ') == "1 2 " ]] ||
	fail "after SHUTDOWN with --save: $(redis-cli -p "$port" mget periodic atshutdown | tr '\n' ' ')"
[[ $(redis-cli -p "$port" config set save "") == OK ]] || fail "CONFIG SET save \"\""
redis-cli -p "$port" set bysave 3 >/dev/null
[[ $(redis-cli -p "$port" save) == OK ]] || fail "SAVE"
kv_stop "$port" "$kv_pid"
kv_pid=''
kv_start "$port" "$tmp/kv.log" --restore "$tmp/dump.bgsnap" --lazy --save 60 || { cat "$tmp/kv.log"; echo "FAIL: lazy restore did not start"; exit 1; }
[[ $(redis-cli -p "$port" get bysave) == 3 ]] || fail "after SAVE, a lazy restore without --maxmemory: $(redis-cli -p "$port" get bysave)"
redis-cli -p "$port" set atsigterm 4 >/dev/null
kill -TERM "$kv_pid"
wait "$kv_pid"
kv_pid=''
kv_start "$port" "$tmp/kv.log" --maxmemory 8mb --restore "$tmp/dump.bgsnap" || { cat "$tmp/kv.log"; echo "FAIL: restore did not start"; exit 1; }
[[ $(redis-cli -p "$port" get atsigterm) == 4 ]] || fail "SIGTERM with --save did not save: $(redis-cli -p "$port" get atsigterm)"
[[ $(stat -c %a "$tmp/dump.bgsnap") == 600 ]] || fail "the snapshot is mode $(stat -c %a "$tmp/dump.bgsnap"), want 600"
((fails)) && exit 1
echo "periodic, SHUTDOWN, SAVE and SIGTERM snapshots restored; bad options refused"
