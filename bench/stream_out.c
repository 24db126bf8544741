/*
 * stream_out.c - the bench's stream destinations (stream_out.h).  The
 * receiver's back-pressure reaches the engine through the pipe, as it
 * would writing to the receiver directly; a receiver that goes away makes
 * the thread close the pipe, so the engine's next write fails with EPIPE
 * and the snapshot fails as bgsnap-vm's does.  The copy costs the thread a
 * second write of every byte (to $TMPDIR, page cache): timings of a stream
 * run include it.
 */
#include "stream_out.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

#define CHUNK (1u << 20)

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void *copier(void *arg)
{
	struct stream_out *s = arg;
	uint8_t *buf = malloc(CHUNK);
	if (!buf) {
		s->err = cli_fail(s->msg, sizeof(s->msg), -ENOMEM, "%s: out of memory", s->spec);
		goto out;
	}
	for (;;) {
		ssize_t n = read(s->pipe_r, buf, CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			s->err = cli_fail(s->msg, sizeof(s->msg), -errno, "%s: reading the engine's pipe: %s", s->spec,
			                  strerror(errno));
			break;
		}
		if (n == 0)
			break;
		int rc = write_all(s->copy_fd, buf, (size_t)n);
		if (rc < 0) {
			s->err = cli_fail(s->msg, sizeof(s->msg), rc, "%s: writing the bench's copy: %s", s->spec,
			                  strerror(-rc));
			break;
		}
		rc = write_all(s->ds.fd, buf, (size_t)n);
		if (rc < 0) {
			s->err = cli_fail(s->msg, sizeof(s->msg), rc, "%s: the receiver went away after %llu bytes were written to it: %s",
			                  s->spec, (unsigned long long)s->bytes, strerror(-rc));
			break;
		}
		s->bytes += (uint64_t)n;
	}
out:
	free(buf);
	/* The engine's next write fails (EPIPE) instead of blocking. */
	close(s->pipe_r);
	s->pipe_r = -1;
	return NULL;
}

static int open_copy(char *err, size_t err_len)
{
	const char *dir = getenv("TMPDIR");
	if (!dir || !*dir)
		dir = "/tmp";
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	/* A file system without O_TMPFILE: a named file, unlinked at once. */
	char path[4096];
	snprintf(path, sizeof(path), "%s/bgsnap-bench-copy.XXXXXX", dir);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		return cli_fail(err, err_len, -errno, "cannot create the bench's copy in %s: %s", dir, strerror(errno));
	unlink(path);
	return fd;
}

int stream_out_open(struct stream_out *s, const char *spec, const struct dest *d, char *err, size_t err_len)
{
	*s = (struct stream_out){ .spec = spec, .pipe_r = -1, .pipe_w = -1, .copy_fd = -1 };
	int p[2];
	s->copy_fd = open_copy(err, err_len);
	if (s->copy_fd < 0)
		return s->copy_fd;
	int rc = dest_open(spec, d, &s->ds, err, err_len);
	if (rc < 0)
		goto fail;
	if (pipe2(p, O_CLOEXEC) < 0) {
		rc = cli_fail(err, err_len, -errno, "%s: pipe: %s", spec, strerror(errno));
		dest_close(spec, &s->ds, NULL, 0);
		goto fail;
	}
	s->pipe_r = p[0];
	s->pipe_w = p[1];
	if ((rc = pthread_create(&s->thread, NULL, copier, s)) != 0) {
		close(p[0]);
		close(p[1]);
		dest_close(spec, &s->ds, NULL, 0);
		rc = cli_fail(err, err_len, -rc, "%s: cannot start the copying thread: %s", spec, strerror(rc));
		goto fail;
	}
	return 0;
fail:
	close(s->copy_fd);
	s->copy_fd = -1;
	return rc;
}

int stream_out_close(struct stream_out *s, int rc, const char *emsg, char *err, size_t err_len)
{
	close(s->pipe_w);
	s->pipe_w = -1;
	pthread_join(s->thread, NULL);
	char why[320] = "";
	int crc = dest_close(s->spec, &s->ds, why, sizeof(why));
	if (!emsg || !emsg[0])
		emsg = rc < 0 ? strerror(-rc) : "";
	if (rc < 0 && s->err < 0)
		return cli_fail(err, err_len, rc, "%s (engine: %s)%s%s", s->msg, emsg, crc < 0 ? "; " : "",
		                crc < 0 ? why : "");
	if (rc < 0 && crc < 0)
		return cli_fail(err, err_len, rc, "%s (engine: %s)", why, emsg);
	if (rc < 0)
		return cli_fail(err, err_len, rc, "%s: %s", s->spec, emsg);
	if (s->err < 0)
		return cli_fail(err, err_len, s->err, "%s", s->msg);
	if (crc < 0)
		return cli_fail(err, err_len, crc, "%s", why);
	return 0;
}
