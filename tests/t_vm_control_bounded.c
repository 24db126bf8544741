/*
 * t_vm_control_bounded - what a client of bgsnap-vm's control socket can
 * cost the VM is bounded:
 *  - the socket file is mode 0600 even when the VM is started with umask 0,
 *    and --control-mode sets another mode;
 *  - a client that sends commands and never reads its replies is dropped
 *    (its socket closed) while the guest keeps making progress and another
 *    client keeps being served;
 *  - the snapshot list stays bounded: after 300 snapshot commands the
 *    --stats report lists at most 256, the newest last, and query-snapshot
 *    reports the newest.
 * Skips when bgsnap-vm is not built.
 * timeout: 180
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#define SNAP_COMMANDS 300
#define SNAP_LIST_MAX 256

struct conn {
	int fd;
	char in[65536];
	size_t len;
};

static char vm[512];
static pid_t vm_pid = -1;

/* A failed check must not leave the VM running. */
static void kill_vm(void)
{
	if (vm_pid > 0 && waitpid(vm_pid, NULL, WNOHANG) == 0) {
		kill(vm_pid, SIGKILL);
		waitpid(vm_pid, NULL, 0);
	}
}

/* Starts bgsnap-vm run sweep with the control socket at `sock` and umask
 * 0, stderr into `errpath`; extra options after. */
static pid_t start_vm(const char *sock, const char *errpath, const char *opt, const char *val)
{
	pid_t pid = fork();
	CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY), e = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (devnull < 0 || e < 0 || dup2(devnull, 1) < 0 || dup2(e, 2) < 0)
			_exit(126);
		umask(0);
		execl(vm, vm, "run", "sweep", "--mem", "16M", "--rounds", "10000000", "--stats", "--control", sock, opt,
		      val, (char *)NULL);
		_exit(127);
	}
	vm_pid = pid;
	return pid;
}

static void connect_to(struct conn *c, const char *path, pid_t pid)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	CHECK(strlen(path) < sizeof(sa.sun_path), "socket path too long: %s", path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	uint64_t deadline = tu_now_ns() + 20000000000ull;
	c->len = 0;
	for (;;) {
		c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		CHECK(c->fd >= 0, "socket: %s", strerror(errno));
		if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return;
		close(c->fd);
		int st;
		CHECK(waitpid(pid, &st, WNOHANG) == 0, "bgsnap-vm exited before its control socket appeared");
		CHECK(tu_now_ns() < deadline, "no control socket at %s after 20 s", path);
		tu_sleep_ms(20);
	}
}

/* One reply line into out; fails after 20 s (the VM's loop is stuck). */
static void read_line(struct conn *c, char *out, size_t cap)
{
	uint64_t deadline = tu_now_ns() + 20000000000ull;
	for (;;) {
		char *nl = memchr(c->in, '\n', c->len);
		if (nl) {
			size_t l = (size_t)(nl - c->in);
			CHECK(l < cap, "reply line of %zu bytes is too long", l);
			memcpy(out, c->in, l);
			out[l] = 0;
			memmove(c->in, nl + 1, c->len - l - 1);
			c->len -= l + 1;
			return;
		}
		CHECK(tu_now_ns() < deadline, "no reply within 20 s: the VM's loop does not serve this client");
		struct pollfd pf = { .fd = c->fd, .events = POLLIN };
		if (poll(&pf, 1, 100) <= 0)
			continue;
		ssize_t n = read(c->fd, c->in + c->len, sizeof(c->in) - c->len);
		CHECK(n > 0, "control socket closed or failed: %s", n < 0 ? strerror(errno) : "EOF");
		c->len += (size_t)n;
	}
}

static void cmd(struct conn *c, const char *line, char *out, size_t cap)
{
	size_t len = strlen(line);
	CHECK(send(c->fd, line, len, MSG_NOSIGNAL) == (ssize_t)len, "send: %s", strerror(errno));
	CHECK(send(c->fd, "\n", 1, MSG_NOSIGNAL) == 1, "send: %s", strerror(errno));
	read_line(c, out, cap);
}

static unsigned long long progress(struct conn *c)
{
	char r[4096];
	cmd(c, "{\"execute\":\"query-status\"}", r, sizeof(r));
	const char *p = strstr(r, "\"progress\":");
	CHECK(p, "query-status without progress: %s", r);
	return strtoull(p + 11, NULL, 10);
}

static void quit_vm(struct conn *c, pid_t pid)
{
	char r[4096];
	cmd(c, "{\"execute\":\"quit\"}", r, sizeof(r));
	int st = 0;
	uint64_t deadline = tu_now_ns() + 20000000000ull;
	while (waitpid(pid, &st, WNOHANG) == 0) {
		if (tu_now_ns() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			FAIL("bgsnap-vm did not exit within 20 s of quit");
		}
		tu_sleep_ms(20);
	}
	vm_pid = -1;
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "bgsnap-vm exit status %d after quit", st);
	close(c->fd);
}

static unsigned mode_of(const char *path)
{
	struct stat st;
	CHECK(stat(path, &st) == 0, "stat %s: %s", path, strerror(errno));
	CHECK(S_ISSOCK(st.st_mode), "%s is not a socket", path);
	return st.st_mode & 07777;
}

/* Client b sends commands without ever reading; a keeps asking for the
 * guest's progress.  b must be dropped, and a served throughout. */
static void flood_without_reading(struct conn *a, struct conn *b)
{
	static const char line[] = "{\"execute\":\"query-status\"}\n";
	char chunk[64 * (sizeof(line) - 1)];
	for (size_t i = 0; i < 64; i++)
		memcpy(chunk + i * (sizeof(line) - 1), line, sizeof(line) - 1);
	unsigned long long first = progress(a), last = first;
	uint64_t deadline = tu_now_ns() + 60000000000ull, next_check = tu_now_ns() + 50000000ull;
	size_t sent = 0, checks = 0;
	for (;;) {
		ssize_t n = send(b->fd, chunk, sizeof(chunk), MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
			break;   /* dropped */
		CHECK(n > 0 || errno == EAGAIN, "flooding client: send: %s", strerror(errno));
		if (n > 0)
			sent += (size_t)n;
		else
			tu_sleep_ms(1);
		/* The other client is served meanwhile (read_line fails after
		 * 20 s without a reply). */
		if (tu_now_ns() >= next_check) {
			unsigned long long p = progress(a);
			CHECK(p >= last, "progress went back: %llu -> %llu", last, p);
			last = p;
			checks++;
			next_check = tu_now_ns() + 50000000ull;
		}
		CHECK(tu_now_ns() < deadline, "a client that never reads was not dropped after 60 s (%zu bytes sent)",
		      sent);
	}
	printf("the client that never read was dropped after %zu bytes of commands; %zu progress checks\n", sent, checks);
	/* The guest runs on: its progress grows past what it was before. */
	deadline = tu_now_ns() + 20000000000ull;
	while (progress(a) <= first) {
		CHECK(tu_now_ns() < deadline, "the guest made no progress after a client that did not read");
		tu_sleep_ms(20);
	}
	close(b->fd);
}

/* SNAP_COMMANDS snapshots that fail at once (no such directory): each
 * adds an entry to the list. */
static void many_snapshots(struct conn *a, const char *dir)
{
	char line[600], r[4096];
	for (int i = 0; i < SNAP_COMMANDS; i++) {
		snprintf(line, sizeof(line),
		         "{\"execute\":\"snapshot\",\"arguments\":{\"path\":\"%s/missing/s%03d.bgs\"}}", dir, i);
		cmd(a, line, r, sizeof(r));
		CHECK(strstr(r, "\"error\""), "snapshot into a missing directory: %s", r);
	}
	cmd(a, "{\"execute\":\"query-snapshot\"}", r, sizeof(r));
	snprintf(line, sizeof(line), "s%03d.bgs", SNAP_COMMANDS - 1);
	CHECK(strstr(r, "\"status\":\"failed\"") && strstr(r, line), "query-snapshot after the last one: %s", r);
}

/* The --stats report: at most SNAP_LIST_MAX snapshots, the newest last. */
static void check_report(const char *errpath)
{
	FILE *f = fopen(errpath, "r");
	CHECK(f, "open %s: %s", errpath, strerror(errno));
	char line[4096], lastpath[4096] = "";
	int listed = 0;
	while (fgets(line, sizeof(line), f)) {
		const char *p = strstr(line, " path=");
		if (!p || !strstr(line, "result="))
			continue;
		listed++;
		snprintf(lastpath, sizeof(lastpath), "%s", p);
	}
	fclose(f);
	char want[32];
	snprintf(want, sizeof(want), "s%03d.bgs", SNAP_COMMANDS - 1);
	CHECK(listed > 0 && listed <= SNAP_LIST_MAX, "the report lists %d snapshots after %d (at most %d kept)", listed,
	      SNAP_COMMANDS, SNAP_LIST_MAX);
	CHECK(strstr(lastpath, want), "the newest snapshot is not the last listed: %s", lastpath);
	printf("%d snapshot commands, %d listed\n", SNAP_COMMANDS, listed);
}

int main(void)
{
	const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
	snprintf(vm, sizeof(vm), "%s/bgsnap-vm", build);
	if (access(vm, X_OK) != 0)
		SKIP("%s is not built (needs Unicorn and nasm)", vm);
	signal(SIGPIPE, SIG_IGN);
	const char *dir = tu_tmpdir();
	atexit(kill_vm);   /* after tu_tmpdir's: runs before the cleanup */
	char sock[256], errpath[256], r[4096];
	snprintf(sock, sizeof(sock), "%s/ctl", dir);
	snprintf(errpath, sizeof(errpath), "%s/vm.err", dir);

	tu_phase("socket mode 0600 under umask 0");
	pid_t pid = start_vm(sock, errpath, "--method", "auto");
	static struct conn a, b;
	connect_to(&a, sock, pid);
	read_line(&a, r, sizeof(r));
	CHECK(mode_of(sock) == 0600, "control socket mode %o under umask 0, expected 600", mode_of(sock));

	tu_phase("a client that never reads");
	connect_to(&b, sock, pid);
	flood_without_reading(&a, &b);

	tu_phase("snapshot list bounded");
	many_snapshots(&a, dir);
	quit_vm(&a, pid);
	check_report(errpath);

	tu_phase("--control-mode");
	pid = start_vm(sock, errpath, "--control-mode", "0640");
	connect_to(&a, sock, pid);
	read_line(&a, r, sizeof(r));
	CHECK(mode_of(sock) == 0640, "control socket mode %o with --control-mode 0640", mode_of(sock));
	quit_vm(&a, pid);
	printf("PASS\n");
	return 0;
}
