# kv_lib.sh - sourced by the bgsnap-kv shell tests: free loopback ports,
# starting bgsnap-kv and redis-server on them and stopping them again.
# Sourced as `source "$(dirname "$0")/kv_lib.sh"`: works from the project
# root from then on; kv_test_init sets up the rest.
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
BUILD=${BUILD:-build}

# kv_test_init: the common start of a kv test: skip without the tools, a
# scratch directory $tmp, fail() counting into $fails, and an EXIT trap that
# stops the servers still recorded in kv_pid / redis_pid and removes $tmp.
kv_test_init() {
	kv_need_redis
	tmp=$(mktemp -d)
	kv_pid='' redis_pid='' kv_port='' redis_port=''
	fails=0
	trap kv_cleanup EXIT
}

kv_cleanup() {
	[[ -n $kv_pid ]] && kv_stop "$kv_port" "$kv_pid"
	[[ -n $redis_pid ]] && kv_stop "$redis_port" "$redis_pid"
	rm -rf "$tmp"
}

fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

kv_free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# kv_wait_ping PORT PID: until PING answers (10 s), or the process is gone.
kv_wait_ping() {
	local i
	for ((i = 0; i < 1000; i++)); do
		[[ $(redis-cli -p "$1" ping 2>/dev/null) == PONG ]] && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.01
	done
	return 1
}

# kv_start PORT LOG ARGS...: bgsnap-kv in the background; sets kv_pid.
kv_start() {
	local port=$1 log=$2
	shift 2
	"$BUILD/bgsnap-kv" --port "$port" --dir "$tmp" "$@" >"$log" 2>&1 &
	kv_pid=$! kv_port=$port
	kv_wait_ping "$port" "$kv_pid"
}

# redis_start PORT LOG ARGS...: redis-server, no persistence; sets redis_pid.
redis_start() {
	local port=$1 log=$2
	shift 2
	redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" \
		--daemonize no "$@" >"$log" 2>&1 &
	redis_pid=$! redis_port=$port
	kv_wait_ping "$port" "$redis_pid"
}

# kv_stop PORT PID: SHUTDOWN NOSAVE, then wait (SIGKILL after 10 s).
kv_stop() {
	local i
	redis-cli -p "$1" shutdown nosave >/dev/null 2>&1
	for ((i = 0; i < 1000; i++)); do
		kill -0 "$2" 2>/dev/null || { wait "$2" 2>/dev/null; return 0; }
		sleep 0.01
	done
	kill -9 "$2" 2>/dev/null
	wait "$2" 2>/dev/null
}

kv_need_redis() {
	local t
	for t in redis-cli redis-server redis-benchmark python3; do
		if ! command -v "$t" >/dev/null; then
			echo "SKIP: $t is not installed (scripts/deps.sh installs redis-tools and redis-server)"
			exit 77
		fi
	done
	if [[ ! -x $BUILD/bgsnap-kv ]]; then
		echo "SKIP: $BUILD/bgsnap-kv is not built"
		exit 77
	fi
}
