/* kvclient.c - a RESP2 client and a launcher for bgsnap-kv (see kvclient.h). */
#include "kvclient.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int kv_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return ntohs(sa.sin_port);
}

static int try_connect(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
		                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

int kvc_connect(struct kvc *c, int port)
{
	c->len = c->off = 0;
	c->fd = try_connect(port);
	return c->fd < 0 ? -1 : 0;
}

void kvc_close(struct kvc *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int kvc_send(struct kvc *c, int argc, const char *const *argv, const size_t *lens)
{
	char hdr[32];
	int n = snprintf(hdr, sizeof(hdr), "*%d\r\n", argc);
	if (write_all(c->fd, hdr, (size_t)n) < 0)
		return -1;
	for (int i = 0; i < argc; i++) {
		size_t l = lens ? lens[i] : strlen(argv[i]);
		n = snprintf(hdr, sizeof(hdr), "$%zu\r\n", l);
		if (write_all(c->fd, hdr, (size_t)n) < 0 || write_all(c->fd, argv[i], l) < 0 ||
		    write_all(c->fd, "\r\n", 2) < 0)
			return -1;
	}
	return 0;
}

static int fill(struct kvc *c)
{
	if (c->off == c->len)
		c->off = c->len = 0;
	if (c->off > sizeof(c->buf) / 2) {
		memmove(c->buf, c->buf + c->off, c->len - c->off);
		c->len -= c->off;
		c->off = 0;
	}
	if (c->len == sizeof(c->buf))
		return -1;
	ssize_t n;
	do
		n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return -1;
	c->len += (size_t)n;
	return 0;
}

static int read_line(struct kvc *c, char *line, size_t cap)
{
	for (;;) {
		char *nl = memchr(c->buf + c->off, '\n', c->len - c->off);
		if (nl) {
			size_t n = (size_t)(nl - (c->buf + c->off));
			if (n == 0 || n - 1 >= cap)
				return -1;
			memcpy(line, c->buf + c->off, n - 1);
			line[n - 1] = 0;
			c->off += n + 1;
			return 0;
		}
		if (fill(c) < 0)
			return -1;
	}
}

int kvc_read(struct kvc *c, struct kvr *r)
{
	char line[8192];
	memset(r, 0, sizeof(*r));
	if (read_line(c, line, sizeof(line)) < 0)
		return -1;
	r->type = line[0];
	if (r->type == '+' || r->type == '-') {
		r->s = strdup(line + 1);
		r->len = (long long)strlen(line + 1);
		return r->s ? 0 : -1;
	}
	r->n = strtoll(line + 1, NULL, 10);
	if (r->type != '$')
		return r->type == ':' || r->type == '*' ? 0 : -1;
	r->len = r->n;
	if (r->len < 0)
		return 0;
	r->s = malloc((size_t)r->len + 1);
	if (!r->s)
		return -1;
	size_t got = 0;
	while (got < (size_t)r->len + 2) {
		if (c->off == c->len && fill(c) < 0)
			return -1;
		size_t take = c->len - c->off;
		if (take > (size_t)r->len + 2 - got)
			take = (size_t)r->len + 2 - got;
		for (size_t i = 0; i < take; i++, got++)
			if (got < (size_t)r->len)
				r->s[got] = c->buf[c->off + i];
		c->off += take;
	}
	r->s[r->len] = 0;
	return 0;
}

int kvc_call(struct kvc *c, struct kvr *r, int argc, const char *const *argv)
{
	return kvc_send(c, argc, argv, NULL) < 0 ? -1 : kvc_read(c, r);
}

long long kv_info_field(struct kvc *c, const char *field)
{
	struct kvr r;
	const char *argv[] = { "INFO", "all" };
	if (kvc_call(c, &r, 2, argv) < 0 || r.type != '$' || !r.s)
		return -1;
	long long v = -1;
	size_t fl = strlen(field);
	for (char *p = r.s; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, field, fl) && p[fl] == ':') {
			v = strtoll(p + fl + 1, NULL, 10);
			break;
		}
	free(r.s);
	return v;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

const char *kv_server_path(void)
{
	static char path[4096];
	const char *b = getenv("BUILD");
	snprintf(path, sizeof(path), "%s/bgsnap-kv", b && *b ? b : "build");
	return path;
}

pid_t kv_spawn(const char *bin, int port, const char *log, int *status, const char *const *args)
{
	char portstr[16];
	if (!bin)
		bin = kv_server_path();
	snprintf(portstr, sizeof(portstr), "%d", port);
	const char *argv[64] = { bin, "--port", portstr };
	int n = 3;
	for (int i = 0; args && args[i] && n < 63; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	for (int i = 0; i < 1000; i++) {
		if (waitpid(pid, status, WNOHANG) == pid)
			return -1;
		struct kvc c;
		if (kvc_connect(&c, port) == 0) {
			struct kvr r;
			const char *ping[] = { "PING" };
			int ok = kvc_call(&c, &r, 1, ping) == 0 && r.type == '+';
			free(r.s);
			kvc_close(&c);
			if (ok)
				return pid;
		}
		sleep_ms(10);
	}
	kill(pid, SIGKILL);
	waitpid(pid, status, 0);
	return -1;
}

int kv_stop(pid_t pid, int port)
{
	struct kvc c;
	if (kvc_connect(&c, port) == 0) {
		const char *argv[] = { "SHUTDOWN", "NOSAVE" };
		kvc_send(&c, 2, argv, NULL);
		struct kvr r;
		if (kvc_read(&c, &r) == 0)
			free(r.s);
		kvc_close(&c);
	}
	int st = 0;
	for (int i = 0; i < 1000; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return st;
		sleep_ms(10);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return st;
}
