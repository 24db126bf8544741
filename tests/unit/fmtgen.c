/* fmtgen.c - snapshot files with known content for tests (see fmtgen.h). */
#include "fmtgen.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bgsnap.h"
#include "format/format.h"
#include "sink/sink.h"
#include "testutil.h"

void fg_default(struct fg_spec *s)
{
	memset(s, 0, sizeof(*s));
	s->nregions = 3;
	s->pages[0] = 5;
	s->pages[1] = 64;
	s->pages[2] = 300;
	s->zero_every = 3;
	s->seed = 42;
	s->max_run = 40;
	s->nstates = 2;
	s->state_len[0] = 100;
	s->state_len[1] = 0;
}

/* Non-zero pages become text-like: a line naming the page and a word of
 * its random content, repeated (compresses several times, yet every page
 * differs). */
void fg_textify(uint8_t *mem, uint64_t pages)
{
	for (uint64_t p = 0; p < pages; p++) {
		uint8_t *pg = mem + p * TU_PAGE;
		uint64_t w;
		memcpy(&w, pg, 8);
		if (!w && !memcmp(pg, pg + 1, TU_PAGE - 1))
			continue;   /* a zero page stays zero */
		char line[80];
		int n = snprintf(line, sizeof(line), "page %llu word %016llx lorem ipsum dolor\n", (unsigned long long)p,
		                 (unsigned long long)w);
		for (size_t off = 0; off < TU_PAGE; off += (size_t)n)
			memcpy(pg + off, line, TU_PAGE - off < (size_t)n ? TU_PAGE - off : (size_t)n);
	}
}

void fg_build(struct fg_spec *s)
{
	for (unsigned i = 0; i < s->nregions; i++) {
		snprintf(s->names[i], sizeof(s->names[i]), "ram%u", i);
		s->mem[i] = tu_map_anon(s->pages[i] * TU_PAGE);
		tu_fill(s->mem[i], s->pages[i] * TU_PAGE, s->seed + i, s->zero_every);
		if (s->text_regions >> i & 1)
			fg_textify(s->mem[i], s->pages[i]);
	}
	for (unsigned i = 0; i < s->nstates; i++) {
		snprintf(s->state_names[i], sizeof(s->state_names[i]), "dev%u", i);
		s->state[i] = malloc(s->state_len[i] + 1);
		CHECK(s->state[i], "malloc");
		for (size_t k = 0; k < s->state_len[i]; k++)
			s->state[i][k] = (uint8_t)(k * 7 + i);
	}
}

void fg_free(struct fg_spec *s)
{
	for (unsigned i = 0; i < s->nregions; i++)
		munmap(s->mem[i], s->pages[i] * TU_PAGE);
	for (unsigned i = 0; i < s->nstates; i++)
		free(s->state[i]);
}

static uint64_t rnd(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

struct job { unsigned region; uint64_t first, count; int state; };

/* The sink, with a rate that says slow (1 KB/s) or fast (1 TB/s) as the
 * writer is told: an adaptive writer without threads then compresses
 * every chunk it starts while slow and none while fast. */
struct mix_out {
	struct sink *sink;
	int slow;
};

static int mix_writev(void *ctx, const struct iovec *iov, int iovcnt, struct bgsnap_err *err)
{
	return sink_out_writev(((struct mix_out *)ctx)->sink, iov, iovcnt, err);
}

static int mix_flush(void *ctx, struct bgsnap_err *err)
{
	return sink_out_flush(((struct mix_out *)ctx)->sink, err);
}

static uint64_t mix_rate(void *ctx)
{
	return ((struct mix_out *)ctx)->slow ? 1000u : 1000000000000ull;
}

int fg_write_fd(const struct fg_spec *s, int fd)
{
	struct fmt_region regs[FG_MAX_REGIONS];
	size_t njobs = 0, cap = 16;
	struct job *jobs = malloc(cap * sizeof(*jobs));
	uint64_t x = s->seed * 2654435761u + 1;
	for (unsigned i = 0; i < s->nregions; i++) {
		regs[i] = (struct fmt_region){ s->names[i], 0x100000000ull * (i + 1), s->pages[i] * TU_PAGE };
		const uint8_t *keep = s->keep[i];
		for (uint64_t p = 0; p < s->pages[i];) {
			if (keep && !keep[p]) {
				p++;
				continue;
			}
			uint64_t n = 1 + rnd(&x) % (s->max_run ? s->max_run : 1);
			if (n > s->pages[i] - p)
				n = s->pages[i] - p;
			for (uint64_t k = 1; keep && k < n; k++)
				if (!keep[p + k])
					n = k;
			if (njobs == cap)
				jobs = realloc(jobs, (cap *= 2) * sizeof(*jobs));
			jobs[njobs++] = (struct job){ i, p, n, -1 };
			p += n;
		}
	}
	for (unsigned i = 0; i < s->nstates; i++) {
		if (njobs == cap)
			jobs = realloc(jobs, (cap *= 2) * sizeof(*jobs));
		jobs[njobs++] = (struct job){ 0, 0, 0, (int)i };
	}
	for (size_t i = njobs; i > 1; i--) {   /* Fisher-Yates */
		size_t j = rnd(&x) % i;
		struct job t = jobs[i - 1];
		jobs[i - 1] = jobs[j];
		jobs[j] = t;
	}
	struct sink sk;
	struct bgsnap_err err = { 0 };
	struct fmt_writer w;
	memset(&w, 0, sizeof(w));
	struct mix_out mo = { &sk, 0 };
	int rc = sink_open_fd(&sk, fd, &err);
	if (rc == 0)
		rc = fmtw_begin_lineage(&w, &(struct fmt_out){ &mo, mix_writev, mix_flush, SINK_IOV_MAX, mix_rate },
		                        regs, s->nregions,
		                        &(struct fmt_codec){ .method = s->compress, .aligned = s->aligned,
		                                             .adaptive = s->adaptive_mix },
		                        s->lin, &err);
	for (size_t i = 0; rc == 0 && i < njobs; i++) {
		const struct job *j = &jobs[i];
		mo.slow = i % 2 == 0;
		if (j->state >= 0)
			rc = fmtw_state(&w, s->state_names[j->state], s->state[j->state], s->state_len[j->state]);
		else
			rc = fmtw_pages(&w, j->region, j->first, j->count, s->mem[j->region] + j->first * TU_PAGE);
	}
	struct fmt_meta meta = { BGSNAP_METHOD_STOP, 1700000000123456789ull, 1234 };
	if (rc == 0)
		rc = fmtw_finish(&w, &meta);
	if (rc < 0)
		fprintf(stderr, "fg_write_fd: %s\n", err.msg);
	else if (s->file_crc)
		*s->file_crc = w.file_crc;
	if (rc >= 0 && s->chunks) {
		s->chunks[0] = w.chunks_compressed;
		s->chunks[1] = w.chunks_raw;
	}
	fmtw_free(&w);
	sink_abort(&sk);   /* fmtw_finish flushed; this frees the stage */
	free(jobs);
	return rc;
}

void fg_write_path(const struct fg_spec *s, const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
	CHECK_RC(fg_write_fd(s, fd), 0, "writing %s", path);
	close(fd);
}

uint8_t *fg_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	CHECK(f, "fopen %s: %s", path, strerror(errno));
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *b = malloc((size_t)n + 1);
	CHECK(b && fread(b, 1, (size_t)n, f) == (size_t)n, "reading %s", path);
	fclose(f);
	*len = (size_t)n;
	return b;
}

void fg_write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
	CHECK(write(fd, buf, len) == (ssize_t)len, "write %s", path);
	close(fd);
}

int fg_stream_start(const struct fg_spec *s, pid_t *writer)
{
	int pfd[2];
	CHECK(pipe(pfd) == 0, "pipe: %s", strerror(errno));
	pid_t pid = fork();
	CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		close(pfd[0]);
		_exit(fg_write_fd(s, pfd[1]) == 0 ? 0 : 1);
	}
	close(pfd[1]);
	*writer = pid;
	return pfd[0];
}

void fg_stream_end(int fd, pid_t writer)
{
	close(fd);
	int st;
	CHECK(waitpid(writer, &st, 0) == writer && WIFEXITED(st) && WEXITSTATUS(st) == 0, "writer child failed");
}
