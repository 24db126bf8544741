/*
 * server.c - the event loop: one thread, epoll, non-blocking sockets.
 *
 * Each client has an input buffer (bounded by query_max), a parser that
 * remembers how far it got, and an output buffer: above output_soft unsent
 * bytes the client's input is no longer read (its own TCP window then
 * throttles it), above output_max the client is dropped.  A client that
 * never reads its replies thus costs at most output_max, and nobody else
 * waits for it.  A timer (10 Hz) rehashes, expires keys and polls the
 * snapshot and restore in progress.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "kv.h"

#define MAX_CLIENTS 10000
#define READ_CHUNK (64u * 1024)

/* epoll tags for the server's own descriptors; clients carry their pointer. */
static char tag_listen, tag_timer, tag_snap, tag_signal;

static struct kv_arg *argbuf;
static size_t argbuf_cap;

static int listen_on(const char *addr, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
		fprintf(stderr, "bgsnap-kv: --bind %s: not an IPv4 address\n", addr);
		return -1;
	}
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 511) < 0) {
		fprintf(stderr, "bgsnap-kv: cannot listen on %s:%d: %s\n", addr, port, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static size_t pending(const struct client *c)
{
	return c->out.len - c->out.sent;
}

static void update_events(struct server *s, struct client *c)
{
	uint32_t ev = 0;
	if (pending(c) < s->cfg.output_soft && !c->closing)
		ev |= EPOLLIN;
	if (pending(c))
		ev |= EPOLLOUT;
	struct epoll_event e = { .events = ev, .data.ptr = c };
	epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &e);
}

static void drop_client(struct server *s, struct client *c)
{
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->nclients--;
	free(c->in);
	resp_free(&c->parser);
	out_free(&c->out);
	free(c);
}

static void accept_clients(struct server *s)
{
	for (int i = 0; i < 64; i++) {
		int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		struct client *c = s->nclients < MAX_CLIENTS ? calloc(1, sizeof(*c)) : NULL;
		if (!c) {
			s->rejected_conns++;
			close(fd);
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c->fd = fd;
		c->id = ++s->next_id;
		c->out.limit = s->cfg.output_max;
		resp_init(&c->parser);
		struct epoll_event e = { .events = EPOLLIN, .data.ptr = c };
		if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &e) < 0) {
			free(c);
			close(fd);
			continue;
		}
		c->next = s->clients;
		if (s->clients)
			s->clients->prev = c;
		s->clients = c;
		s->nclients++;
		s->total_conns++;
	}
}

/* Executes the complete commands in the input buffer; false if the client
 * must go at once. */
static bool run_commands(struct server *s, struct client *c)
{
	size_t off = 0;
	bool ok = true;
	while (!c->closing && !s->shutdown && pending(c) < s->cfg.output_soft) {
		size_t used = 0;
		const char *err = NULL;
		int r = resp_parse(&c->parser, c->in + off, c->in_len - off, &s->cfg.limits, &used, &err);
		if (r == RESP_MORE)
			break;
		if (r == RESP_NOMEM) {
			ok = false;
			break;
		}
		if (r == RESP_ERR) {
			s->proto_errors++;
			reply_errorf(&c->out, "ERR %s", err);
			c->closing = true;
			break;
		}
		size_t argc = c->parser.argc;
		if (argc > argbuf_cap) {
			struct kv_arg *n = realloc(argbuf, argc * sizeof(*n));
			if (!n) {
				ok = false;
				break;
			}
			argbuf = n;
			argbuf_cap = argc;
		}
		for (size_t i = 0; i < argc; i++) {
			argbuf[i].p = c->in + off + c->parser.argv[i].off;
			argbuf[i].n = c->parser.argv[i].len;
		}
		if (argc)
			kv_dispatch(s, c, argbuf, argc);
		resp_next(&c->parser);
		off += used;
	}
	if (off) {
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
	}
	return ok && !c->out.failed;
}

/* Writes what it can; false if the client is gone. */
static bool flush_client(struct server *s, struct client *c)
{
	while (pending(c)) {
		ssize_t n = send(c->fd, c->out.buf + c->out.sent, pending(c), MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		c->out.sent += (size_t)n;
	}
	out_compact(&c->out);
	if (!pending(c) && c->closing)
		return false;
	update_events(s, c);
	return true;
}

/* Reads what is there; false if the client is gone or over its limit.
 * *eof: the client closed its side (what it sent before still runs). */
static bool read_client(struct server *s, struct client *c, bool *eof)
{
	for (int i = 0; i < 16; i++) {
		if (c->in_len + READ_CHUNK > c->in_cap) {
			size_t nc = c->in_cap ? c->in_cap : READ_CHUNK * 2;
			while (nc < c->in_len + READ_CHUNK)
				nc *= 2;
			if (nc > s->cfg.query_max + READ_CHUNK) {
				fprintf(stderr, "bgsnap-kv: client %llu: query buffer over %zu bytes: closed\n",
				        (unsigned long long)c->id, s->cfg.query_max);
				return false;
			}
			char *nb = realloc(c->in, nc);
			if (!nb)
				return false;
			c->in = nb;
			c->in_cap = nc;
		}
		ssize_t n = recv(c->fd, c->in + c->in_len, READ_CHUNK, 0);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return true;
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0) {
			*eof = true;
			return true;
		}
		if (n < 0)
			return false;
		c->in_len += (size_t)n;
		if ((size_t)n < READ_CHUNK)
			return true;
	}
	return true;
}

static void client_event(struct server *s, struct client *c, uint32_t ev)
{
	bool alive = true, eof = false;
	if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))
		alive = read_client(s, c, &eof);
	if (alive)
		alive = run_commands(s, c);
	/* Gone: its replies are sent if the socket takes them, then it goes. */
	if (eof) {
		c->closing = true;
		if (alive)
			flush_client(s, c);
		alive = false;
	}
	if (alive)
		alive = flush_client(s, c);
	/* Output drained below the soft limit: what was left in the input can
	 * run now. */
	if (alive && c->in_len && pending(c) < s->cfg.output_soft && !c->closing) {
		alive = run_commands(s, c);
		if (alive)
			alive = flush_client(s, c);
	}
	if (!alive) {
		if (c->out.failed)
			fprintf(stderr, "bgsnap-kv: client %llu: output buffer over %zu bytes: closed\n",
			        (unsigned long long)c->id, s->cfg.output_max);
		drop_client(s, c);
	}
}

static void timer_tick(struct server *s)
{
	uint64_t n;
	if (read(s->tfd, &n, sizeof(n)) < 0)
		return;
	dict_rehash_step(s->db, 256);
	dict_expire_cycle(s->db, 20);
	persist_poll(s);
}

static void signal_event(struct server *s, int sfd)
{
	struct signalfd_siginfo si;
	if (read(sfd, &si, sizeof(si)) != sizeof(si))
		return;
	fprintf(stderr, "bgsnap-kv: signal %u: shutting down\n", si.ssi_signo);
	persist_cancel(s);
	if (s->cfg.save_seconds) {
		char err[256];
		if (persist_save(s, err, sizeof(err)) < 0)
			fprintf(stderr, "bgsnap-kv: %s\n", err);
	}
	s->shutdown = true;
}

static int add_fd(struct server *s, int fd, void *tag)
{
	struct epoll_event e = { .events = EPOLLIN, .data.ptr = tag };
	return epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &e);
}

static int setup(struct server *s, int *sfd)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	signal(SIGPIPE, SIG_IGN);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0 || (*sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
		return -1;
	s->lfd = listen_on(s->cfg.bind, s->cfg.port);
	if (s->lfd < 0)
		return -1;
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	s->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	struct itimerspec it = { .it_interval = { 0, 100000000 }, .it_value = { 0, 100000000 } };
	if (s->epfd < 0 || s->tfd < 0 || timerfd_settime(s->tfd, 0, &it, NULL) < 0 ||
	    add_fd(s, s->lfd, &tag_listen) < 0 || add_fd(s, s->tfd, &tag_timer) < 0 ||
	    add_fd(s, s->ps.evfd, &tag_snap) < 0 || add_fd(s, *sfd, &tag_signal) < 0) {
		fprintf(stderr, "bgsnap-kv: event loop setup: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

int server_run(struct server *s)
{
	int sfd = -1;
	if (setup(s, &sfd) < 0)
		return 1;
	fprintf(stderr, "bgsnap-kv: ready to accept connections on %s:%d\n", s->cfg.bind, s->cfg.port);
	struct epoll_event evs[128];
	while (!s->shutdown) {
		int n = epoll_wait(s->epfd, evs, 128, -1);
		if (n < 0 && errno != EINTR) {
			fprintf(stderr, "bgsnap-kv: epoll_wait: %s\n", strerror(errno));
			return 1;
		}
		for (int i = 0; i < n && !s->shutdown; i++) {
			void *p = evs[i].data.ptr;
			if (p == &tag_listen)
				accept_clients(s);
			else if (p == &tag_timer)
				timer_tick(s);
			else if (p == &tag_snap)
				persist_poll(s);
			else if (p == &tag_signal)
				signal_event(s, sfd);
			else
				client_event(s, p, evs[i].events);
		}
	}
	while (s->clients)
		drop_client(s, s->clients);
	persist_cancel(s);
	close(s->lfd);
	close(s->tfd);
	close(s->epfd);
	close(sfd);
	free(argbuf);
	return s->exit_code;
}
