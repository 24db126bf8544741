/*
 * t_vm_control.c - bgsnap-vm's control socket: the QMP-like greeting; bad
 * input of every kind (not JSON, truncated, wrong types, deep nesting, an
 * over-long line, NUL bytes) gets an error reply and the VM keeps serving;
 * "id" is echoed; stop really stops the guest and cont resumes it;
 * snapshot + query-snapshot produce a snapshot that the reader verifies;
 * quit ends the VM with exit status 0.  Skips when bgsnap-vm is not built.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bgsnap.h"
#include "testutil.h"

static int sock = -1;
static char inbuf[65536];
static size_t inlen;

/* Reads one reply line (without the newline) into out; fails after 20 s. */
static void read_line(char *out, size_t cap)
{
	uint64_t deadline = tu_now_ns() + 20000000000ull;
	for (;;) {
		char *nl = memchr(inbuf, '\n', inlen);
		if (nl) {
			size_t l = (size_t)(nl - inbuf);
			CHECK(l < cap, "reply line of %zu bytes is too long", l);
			memcpy(out, inbuf, l);
			out[l] = 0;
			memmove(inbuf, nl + 1, inlen - l - 1);
			inlen -= l + 1;
			return;
		}
		CHECK(tu_now_ns() < deadline, "no reply line within 20 s (have %zu bytes)", inlen);
		struct pollfd pf = {.fd = sock, .events = POLLIN};
		if (poll(&pf, 1, 100) <= 0)
			continue;
		ssize_t n = read(sock, inbuf + inlen, sizeof(inbuf) - inlen);
		CHECK(n > 0, "control socket closed or failed: %s", n < 0 ? strerror(errno) : "EOF");
		inlen += (size_t)n;
	}
}

static void send_raw(const void *data, size_t len)
{
	const char *p = data;
	while (len) {
		ssize_t n = send(sock, p, len, MSG_NOSIGNAL);
		CHECK(n > 0, "send: %s", strerror(errno));
		p += n;
		len -= (size_t)n;
	}
}

/* Sends a command line and returns its reply in out. */
static void cmd(const char *line, char *out, size_t cap)
{
	send_raw(line, strlen(line));
	send_raw("\n", 1);
	read_line(out, cap);
}

static void expect_error(const char *line, size_t len)
{
	char r[4096];
	send_raw(line, len);
	send_raw("\n", 1);
	read_line(r, sizeof(r));
	CHECK(strncmp(r, "{\"error\":{\"class\":", 18) == 0, "bad input %.40s... got reply %s", line, r);
}

/* Guest progress from query-status. */
static unsigned long long progress(void)
{
	char r[4096];
	cmd("{\"execute\":\"query-status\"}", r, sizeof(r));
	const char *p = strstr(r, "\"progress\":");
	CHECK(p, "query-status without progress: %s", r);
	return strtoull(p + 11, NULL, 10);
}

int main(void)
{
	const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
	char vm[512];
	snprintf(vm, sizeof(vm), "%s/bgsnap-vm", build);
	if (access(vm, X_OK) != 0)
		SKIP("%s is not built (needs Unicorn and nasm)", vm);
	const char *dir = tu_tmpdir();
	char sockpath[256], snap[256];
	snprintf(sockpath, sizeof(sockpath), "%s/ctl", dir);
	snprintf(snap, sizeof(snap), "%s/c.bgs", dir);

	pid_t pid = fork();
	CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);
		if (devnull >= 0)
			dup2(devnull, 1);
		/* Runs far longer than this test needs; quit ends it. */
		execl(vm, vm, "run", "sweep", "--mem", "16M", "--rounds", "10000000", "--control", sockpath, (char *)NULL);
		_exit(127);
	}

	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	CHECK(strlen(sockpath) < sizeof(sa.sun_path), "socket path too long: %s", sockpath);
	memcpy(sa.sun_path, sockpath, strlen(sockpath) + 1);
	uint64_t deadline = tu_now_ns() + 20000000000ull;
	for (;;) {
		sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		CHECK(sock >= 0, "socket: %s", strerror(errno));
		if (connect(sock, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			break;
		close(sock);
		int st;
		CHECK(waitpid(pid, &st, WNOHANG) == 0, "bgsnap-vm exited before its control socket appeared");
		CHECK(tu_now_ns() < deadline, "no control socket at %s after 20 s", sockpath);
		tu_sleep_ms(20);
	}

	char r[8192];
	read_line(r, sizeof(r));
	CHECK(strncmp(r, "{\"QMP\":", 7) == 0, "greeting: %s", r);
	cmd("{\"execute\":\"qmp_capabilities\"}", r, sizeof(r));
	CHECK(!strcmp(r, "{\"return\":{}}"), "qmp_capabilities: %s", r);

	tu_phase("bad input");
	const char *bad[] = {
		"not json", "{", "}", "[]", "\"x\"", "{\"execute\":1}", "{\"execute\":\"nope\"}",
		"{\"execute\":\"snapshot\"}", "{\"execute\":\"snapshot\",\"arguments\":{\"path\":5}}",
		"{\"execute\":\"snapshot\",\"arguments\":[]}", "{\"execute\":\"stop\"} trailing",
		"{\"execute\":\"stop\",}", "{\"execute\":\"st\\u00\"}", "{\"execute\":\"\\ud800\"}",
		"{\"arguments\":{}}", "{\"execute\":\"snapshot\",\"arguments\":{\"path\":\"\"}}",
		"{\"execute\":\"snapshot\",\"arguments\":{\"path\":\"/x\",\"method\":\"nope\"}}",
		"{\"execute\":\"query-status\",\"id\":tru}", "{\"execute\":-}", "{\"execute\":\"a\" \"b\"}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_error(bad[i], strlen(bad[i]));
	/* NUL bytes inside a line. */
	static const char nul[] = "{\"execute\":\"st\0op\"}";
	expect_error(nul, sizeof(nul) - 1);
	/* Deep nesting must not overflow the stack. */
	static char deep[8000];
	memcpy(deep, "{\"id\":", 6);
	memset(deep + 6, '[', sizeof(deep) - 6);
	expect_error(deep, sizeof(deep));
	/* An over-long line is refused as a whole. */
	static char longl[20000];
	memset(longl, ' ', sizeof(longl));
	memcpy(longl, "{\"execute\":\"stop\"", 17);
	longl[sizeof(longl) - 1] = '}';
	expect_error(longl, sizeof(longl));

	tu_phase("id, stop, cont");
	cmd("{\"execute\":\"query-status\",\"id\":{\"n\":[1,2.5e3,\"x\\\"y\"]}}", r, sizeof(r));
	CHECK(strstr(r, "\"id\":{\"n\":[1,2.5e3,\"x\\\"y\"]}") != NULL, "id not echoed: %s", r);
	CHECK(strstr(r, "\"status\":\"running\"") != NULL, "not running: %s", r);
	cmd("{\"execute\":\"stop\"}", r, sizeof(r));
	CHECK(!strcmp(r, "{\"return\":{}}"), "stop: %s", r);
	unsigned long long p1 = progress();
	tu_sleep_ms(200);
	unsigned long long p2 = progress();
	CHECK(p1 == p2, "the guest progressed while stopped: %llu -> %llu", p1, p2);
	cmd("{\"execute\":\"query-status\"}", r, sizeof(r));
	CHECK(strstr(r, "\"status\":\"paused\"") != NULL, "not paused: %s", r);
	cmd("{\"execute\":\"cont\"}", r, sizeof(r));
	CHECK(!strcmp(r, "{\"return\":{}}"), "cont: %s", r);
	deadline = tu_now_ns() + 20000000000ull;
	while (progress() == p2)
		CHECK(tu_now_ns() < deadline, "the guest did not progress after cont");

	tu_phase("snapshot");
	cmd("{\"execute\":\"query-snapshot\"}", r, sizeof(r));
	CHECK(!strcmp(r, "{\"return\":{\"status\":\"none\"}}"), "query-snapshot before any: %s", r);
	char line[600];
	snprintf(line, sizeof(line), "{\"execute\":\"snapshot\",\"arguments\":{\"path\":\"%s\"}}", snap);
	cmd(line, r, sizeof(r));
	CHECK(strncmp(r, "{\"return\":{\"method\":", 20) == 0 && strstr(r, "\"pause_us\":"), "snapshot: %s", r);
	deadline = tu_now_ns() + 60000000000ull;
	for (;;) {
		cmd("{\"execute\":\"query-snapshot\"}", r, sizeof(r));
		CHECK(strstr(r, "\"pages_total\":4096") != NULL, "query-snapshot: %s", r);
		if (strstr(r, "\"status\":\"completed\""))
			break;
		CHECK(strstr(r, "\"status\":\"active\""), "query-snapshot: %s", r);
		CHECK(tu_now_ns() < deadline, "snapshot not completed after 60 s: %s", r);
		tu_sleep_ms(20);
	}
	CHECK(strstr(r, "\"pages_saved\":4096") != NULL, "completed but not every page saved: %s", r);
	bgsnap_reader *rd = NULL;
	char err[256] = "";
	int rc = bgsnap_reader_open(&rd, snap, err, sizeof(err));
	CHECK(rc == 0, "reader_open %s: %s", snap, err);
	rc = bgsnap_reader_verify(rd);
	CHECK(rc == 0, "verify: %s", bgsnap_reader_errmsg(rd));
	const void *data;
	size_t len;
	CHECK(bgsnap_reader_find_state(rd, "cpu", &data, &len) == 0, "no cpu state blob");
	CHECK(len > 16 && memmem(data, len, "\nrip=0x", 7), "cpu state blob without rip");
	bgsnap_reader_close(rd);

	tu_phase("quit");
	cmd("{\"execute\":\"quit\"}", r, sizeof(r));
	CHECK(!strcmp(r, "{\"return\":{}}"), "quit: %s", r);
	int st = 0;
	deadline = tu_now_ns() + 20000000000ull;
	while (waitpid(pid, &st, WNOHANG) == 0) {
		if (tu_now_ns() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			CHECK(0, "bgsnap-vm did not exit within 20 s of quit");
		}
		tu_sleep_ms(20);
	}
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "bgsnap-vm exit status %d after quit", st);
	CHECK(access(sockpath, F_OK) != 0, "the control socket file was left behind");
	close(sock);
	printf("PASS\n");
	return 0;
}
