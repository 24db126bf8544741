# vm_lib.sh - sourced by the reference VM's shell tests (from the project
# root): $vm and $tool (the programs, absolute paths, so a test may work in
# another directory), a scratch directory $tmp removed at exit, $bg_pid (a
# background process the test started, killed at exit when set), fail()
# counting into $fails.  Skips (77) when the VM is not built (it needs
# Unicorn and nasm); a missing bgsnap tool is a failure.
BUILD=${BUILD:-build}
vm=$(realpath -m "$BUILD/bgsnap-vm")
tool=$(realpath -m "$BUILD/bgsnap")
if [[ ! -x $vm ]]; then
	echo "SKIP: $vm is not built (needs Unicorn and nasm)"
	exit 77
fi
if [[ ! -x $tool ]]; then
	echo "FAIL: $tool is not built"
	exit 1
fi
tmp=$(mktemp -d)
bg_pid=
trap '[[ -n $bg_pid ]] && kill "$bg_pid" 2>/dev/null; rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
