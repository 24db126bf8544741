#!/usr/bin/env bash
# deps.sh - installs the Debian 12 packages bgsnap needs to build and test,
# only those that are missing (one `apt-get update`, one `apt-get install`).
# Quiet when everything is present.  Runs as root as is, or through sudo.
#
# What each package is for:
#   build-essential, pkg-config   the library, tools and tests (gcc, make)
#   clang, libclang-rt-14-dev     libFuzzer targets and clang sanitizer runtimes
#   nasm, libunicorn-dev          the reference VM (guests in assembly, Unicorn CPU)
#   python3                       JSON checks in shell tests
#   util-linux                    setarch (TSan without ASLR) in CI
#   coreutils                     timeout, used by tests/run.sh
#   redis-tools, redis-server     bgsnap-kv's tests and bench/kv-vs-redis.sh (redis-cli,
#                                 redis-benchmark, and the real server to compare with)
set -euo pipefail

PKGS=(build-essential pkg-config clang libclang-rt-14-dev nasm libunicorn-dev
      python3 util-linux coreutils redis-tools redis-server)

missing=()
for p in "${PKGS[@]}"; do
	# "install ok installed" is the only state in which the files are there.
	if [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) != "install ok installed" ]]; then
		missing+=("$p")
	fi
done
((${#missing[@]})) || exit 0

SUDO=()
if [[ $(id -u) != 0 ]]; then
	if command -v sudo >/dev/null; then
		SUDO=(sudo)
	else
		echo "deps.sh: missing packages: ${missing[*]}; run this script as root to install them" >&2
		exit 1
	fi
fi

echo "deps.sh: installing missing packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
echo "+ apt-get update"
"${SUDO[@]}" apt-get update -qq
echo "+ apt-get install -y --no-install-recommends ${missing[*]}"
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
# Debian starts a redis-server on 6379 when it installs one; the tests
# start their own on free ports and need none running.
if [[ " ${missing[*]} " == *" redis-server "* ]] && command -v systemctl >/dev/null; then
	"${SUDO[@]}" systemctl disable --now redis-server >/dev/null 2>&1 || true
fi
echo "deps.sh: done"
