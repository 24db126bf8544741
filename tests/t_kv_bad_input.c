/*
 * t_kv_bad_input.c - bgsnap-kv under malformed and hostile input: every
 * case gets an error reply or a closed connection, and the server keeps
 * answering another client afterwards; a full arena gives -OOM; a snapshot
 * of another arena size, of another program or not a snapshot at all is
 * refused at startup with a message.
 *
 * timeout: 120
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bgsnap.h"
#include "kvclient.h"
#include "testutil.h"

/* The server a failed CHECK leaves behind is killed on the way out. */
static pid_t live_server;

static void kill_live_server(void)
{
	if (live_server > 0)
		kill(live_server, SIGKILL);
}

static int port;

static void check_alive(const char *after)
{
	struct kvc c;
	struct kvr r;
	const char *ping[] = { "PING" };
	CHECK(kvc_connect(&c, port) == 0, "after %s: cannot connect", after);
	CHECK(kvc_call(&c, &r, 1, ping) == 0 && r.type == '+' && !strcmp(r.s, "PONG"),
	      "after %s: PING not answered", after);
	free(r.s);
	kvc_close(&c);
}

static int raw_connect(void)
{
	struct kvc c;
	CHECK(kvc_connect(&c, port) == 0, "connect");
	struct timeval tv = { 5, 0 };
	setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return c.fd;
}

/* Sends `req`, reads until the server closes (or 5 s); the reply must
 * start with `want` and the connection must be closed. */
static void expect_error_close(const char *what, const void *req, size_t len, const char *want)
{
	int fd = raw_connect();
	CHECK(send(fd, req, len, MSG_NOSIGNAL) == (ssize_t)len, "%s: send", what);
	char buf[4096];
	size_t got = 0;
	ssize_t n;
	while ((n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0)) > 0)
		got += (size_t)n;
	buf[got] = 0;
	CHECK(n == 0, "%s: the connection was not closed (got \"%s\")", what, buf);
	CHECK(!strncmp(buf, want, strlen(want)), "%s: reply \"%s\", want \"%s\"", what, buf, want);
	close(fd);
	check_alive(what);
}

static void protocol_errors(void)
{
	expect_error_close("bad type byte", "*1\r\n:5\r\n", 8, "-ERR Protocol error: expected '$', got ':'");
	expect_error_close("huge multibulk", "*99999999999\r\n", 15, "-ERR Protocol error: invalid multibulk length");
	expect_error_close("multibulk over 1M args", "*1048577\r\n", 10, "-ERR Protocol error: invalid multibulk length");
	expect_error_close("bad multibulk count", "*12x\r\n", 6, "-ERR Protocol error: invalid multibulk length");
	expect_error_close("negative bulk", "*1\r\n$-3\r\n", 9, "-ERR Protocol error: invalid bulk length");
	expect_error_close("huge bulk", "*1\r\n$99999999999999999999\r\n", 27, "-ERR Protocol error: invalid bulk length");
	const char *over = "*2\r\n$4\r\nECHO\r\n$2000\r\n";
	expect_error_close("bulk over --proto-max-bulk-len", over, strlen(over), "-ERR Protocol error: invalid bulk length");
	expect_error_close("bulk without CRLF", "*1\r\n$4\r\nPINGxx", 14, "-ERR Protocol error");
	/* An unterminated inline line longer than the limit. */
	size_t big = 70 * 1024;
	char *line = malloc(big);
	CHECK(line, "out of memory");
	memset(line, 'a', big);
	expect_error_close("inline line over 64 KiB", line, big, "-ERR Protocol error: too big inline request");
	char *hdr = malloc(big);
	CHECK(hdr, "out of memory");
	hdr[0] = '*';
	memset(hdr + 1, '1', big - 1);
	expect_error_close("count line over 64 KiB", hdr, big, "-ERR Protocol error: too big mbulk count string");
	free(hdr);
	free(line);
}

static void disconnects_and_garbage(void)
{
	/* Unterminated commands, then gone. */
	const char *partial[] = { "*1\r\n$4\r\nPI", "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1000\r\nabc", "PING", "*2\r\n" };
	for (size_t i = 0; i < sizeof(partial) / sizeof(partial[0]); i++) {
		int fd = raw_connect();
		CHECK(send(fd, partial[i], strlen(partial[i]), MSG_NOSIGNAL) > 0, "send");
		close(fd);
		check_alive("a client that disconnects mid-command");
	}
	/* Binary garbage: whatever the reply, the server goes on. */
	unsigned seed = 12345;
	for (int round = 0; round < 50; round++) {
		char buf[2048];
		size_t n = 1 + (size_t)(rand_r(&seed) % sizeof(buf));
		for (size_t i = 0; i < n; i++)
			buf[i] = (char)rand_r(&seed);
		if (round % 2)
			buf[0] = '*';
		int fd = raw_connect();
		if (send(fd, buf, n, MSG_NOSIGNAL) < 0)
			FAIL("send garbage");
		shutdown(fd, SHUT_WR);
		char rb[4096];
		while (recv(fd, rb, sizeof(rb), 0) > 0)
			;
		close(fd);
	}
	check_alive("binary garbage");
}

/* A client that pipelines requests with large replies and never reads:
 * the server stops reading it, keeps its output bounded and serves others. */
static void never_reads(void)
{
	struct kvc c;
	struct kvr r;
	CHECK(kvc_connect(&c, port) == 0, "connect");
	char *val = malloc(512 * 1024);
	CHECK(val, "out of memory");
	memset(val, 'v', 512 * 1024);
	const char *set[] = { "SET", "bigval", val };
	size_t lens[] = { 3, 6, 512 * 1024 };
	CHECK(kvc_send(&c, 3, set, lens) == 0 && kvc_read(&c, &r) == 0 && r.type == '+', "SET bigval");
	free(r.s);
	kvc_close(&c);
	free(val);
	int fd = raw_connect();
	fcntl(fd, F_SETFL, O_NONBLOCK);
	const char *get = "*2\r\n$3\r\nGET\r\n$6\r\nbigval\r\n";
	size_t sent = 0;
	for (int i = 0; i < 200000; i++) {
		ssize_t n = send(fd, get, strlen(get), MSG_NOSIGNAL);
		if (n < 0)
			break;
		sent += (size_t)n;
	}
	check_alive("a client that never reads (while it is connected)");
	struct kvc k;
	CHECK(kvc_connect(&k, port) == 0, "connect");
	long long rss = kv_info_field(&k, "used_memory_rss");
	kvc_close(&k);
	/* 200000 replies of 512 KiB would be 100 GiB: the server holds a
	 * bounded part of them (soft limit, then no more reading). */
	CHECK(rss > 0 && rss < (long long)512 << 20, "RSS %lld bytes with a client that never reads", rss);
	printf("  a client sent %zu bytes of GETs and read nothing: server RSS %lld MiB\n", sent, rss >> 20);
	close(fd);
	check_alive("a client that never reads (closed)");
}

static void arena_full(void)
{
	struct kvc c;
	struct kvr r;
	CHECK(kvc_connect(&c, port) == 0, "connect");
	char key[32];
	char *val = malloc(64 * 1024);
	CHECK(val, "out of memory");
	memset(val, 'x', 64 * 1024);
	int i, oom = 0;
	for (i = 0; i < 1000 && !oom; i++) {
		snprintf(key, sizeof(key), "fill:%d", i);
		const char *argv[] = { "SET", key, val };
		size_t lens[] = { 3, strlen(key), 64 * 1024 };
		CHECK(kvc_send(&c, 3, argv, lens) == 0 && kvc_read(&c, &r) == 0, "SET %s: no reply", key);
		if (r.type == '-') {
			CHECK(!strcmp(r.s, "OOM command not allowed when used memory > 'maxmemory'."), "SET into a full arena: -%s",
			      r.s);
			oom = 1;
		}
		free(r.s);
	}
	CHECK(oom, "no -OOM after %d SETs of 64 KiB into a 4 MiB arena", i);
	const char *get[] = { "GET", "fill:0" };
	CHECK(kvc_call(&c, &r, 2, get) == 0 && r.type == '$' && r.len == 64 * 1024, "GET fill:0 after -OOM");
	free(r.s);
	const char *del[] = { "DEL", "fill:0", "fill:1" };
	CHECK(kvc_call(&c, &r, 3, del) == 0 && r.type == ':' && r.n == 2, "DEL after -OOM");
	const char *set[] = { "SET", "again", val };
	size_t lens[] = { 3, 5, 64 * 1024 };
	CHECK(kvc_send(&c, 3, set, lens) == 0 && kvc_read(&c, &r) == 0 && r.type == '+', "SET after DEL freed room: %c%s",
	      r.type, r.s ? r.s : "");
	free(r.s);
	printf("  -OOM after %d SETs of 64 KiB into a 4 MiB arena; DEL makes room again\n", i - 1);
	kvc_close(&c);
	free(val);
}

/* Exit status and message of bgsnap-kv started on `file` with `maxmem`. */
static void expect_refused(const char *what, const char *file, const char *maxmem, const char *want_msg)
{
	char log[4200];
	snprintf(log, sizeof(log), "%s/refused.log", tu_tmpdir());
	unlink(log);
	int st = 0, p = kv_free_port();
	const char *args[] = { "--maxmemory", maxmem, "--restore", file, NULL };
	pid_t pid = kv_spawn(NULL, p, log, &st, args);
	if (pid > 0) {
		kv_stop(pid, p);
		FAIL("%s: the server started", what);
	}
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1, "%s: exit status 0x%x, want exit 1", what, st);
	char msg[2048] = "";
	FILE *f = fopen(log, "r");
	if (f) {
		size_t n = fread(msg, 1, sizeof(msg) - 1, f);
		msg[n] = 0;
		fclose(f);
	}
	CHECK(strstr(msg, want_msg), "%s: message \"%s\" lacks \"%s\"", what, msg, want_msg);
	printf("  %s: refused: %s", what, msg);
}

static void foreign_snapshots(void)
{
	char file[4200];
	snprintf(file, sizeof(file), "%s/dump.bgsnap", tu_tmpdir());
	struct kvc c;
	struct kvr r;
	CHECK(kvc_connect(&c, port) == 0, "connect");
	const char *save[] = { "SAVE" };
	CHECK(kvc_call(&c, &r, 1, save) == 0 && r.type == '+', "SAVE: %c%s", r.type, r.s ? r.s : "");
	free(r.s);
	kvc_close(&c);
	expect_refused("another arena size", file, "8mb", "refused");
	/* A bgsnap snapshot of some other program's memory. */
	char other[4200];
	snprintf(other, sizeof(other), "%s/other.bgsnap", tu_tmpdir());
	void *mem = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(mem != MAP_FAILED, "mmap");
	memset(mem, 7, 1 << 20);
	struct bgsnap_options o;
	bgsnap_options_init(&o);
	o.method = BGSNAP_METHOD_STOP;
	bgsnap_engine *e;
	CHECK_RC(bgsnap_create(&e, &o), 0, "create");
	CHECK(bgsnap_add_region(e, "arena", mem, 1 << 20) >= 0, "add_region");
	CHECK_RC(bgsnap_start(e, other), 0, "start: %s", bgsnap_errmsg(e));
	CHECK_RC(bgsnap_wait(e), 0, "wait: %s", bgsnap_errmsg(e));
	bgsnap_destroy(e);
	expect_refused("a snapshot of another program", other, "4mb", "not a bgsnap-kv snapshot");
	char junk[4200];
	snprintf(junk, sizeof(junk), "%s/junk.bgsnap", tu_tmpdir());
	FILE *f = fopen(junk, "w");
	CHECK(f && fputs("this is not a snapshot\n", f) >= 0 && fclose(f) == 0, "write %s", junk);
	expect_refused("not a snapshot", junk, "4mb", junk);
}

int main(void)
{
	atexit(kill_live_server);
	if (access(kv_server_path(), X_OK) != 0)
		SKIP("%s is not built", kv_server_path());
	port = kv_free_port();
	char log[4200];
	snprintf(log, sizeof(log), "%s/server.log", tu_tmpdir());
	int st;
	const char *args[] = { "--maxmemory", "4mb", "--proto-max-bulk-len", "1kb", "--dir", tu_tmpdir(),
		               "--method", "stop", NULL };
	pid_t pid = kv_spawn(NULL, port, log, &st, args);
	CHECK(pid > 0, "the server did not start (status %d)", st);
	live_server = pid;
	protocol_errors();
	disconnects_and_garbage();
	CHECK(kill(pid, 0) == 0, "the server died");
	kv_stop(pid, port);
	/* Values over 1 KiB need a server with the default bulk limit. */
	pid = kv_spawn(NULL, port, log, &st, (const char *[]){ "--maxmemory", "4mb", "--dir", tu_tmpdir(), NULL });
	CHECK(pid > 0, "the server did not start (status %d)", st);
	live_server = pid;
	never_reads();
	arena_full();
	foreign_snapshots();
	CHECK(kill(pid, 0) == 0, "the server died");
	kv_stop(pid, port);
	printf("t_kv_bad_input: passed\n");
	return 0;
}
