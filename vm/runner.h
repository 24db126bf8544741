/*
 * runner.h - bgsnap-vm's host side of a run: one thread (the program's
 * main thread) drives everything but the vCPU: the snapshot schedule, the
 * control socket, the bgsnap engine (one per snapshot; the engine's
 * pause/resume hooks park and release the vCPU) and the guest-speed
 * samples.  The parts, one a file: runner.c (the loop), snapshots.c
 * (taking snapshots), control.c (the socket), speed.c (samples and the
 * --stats report), boot.c (a guest image or a snapshot into the machine).
 */
#ifndef BGSNAP_VM_RUNNER_H
#define BGSNAP_VM_RUNNER_H

#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bgsnap.h"
#include "cli/dest.h"
#include "cli/progress.h"
#include "qmp.h"
#include "vm.h"

#define MAX_CLIENTS 8
#define LINE_MAX_ 8192               /* longest control command line     */
/* Replies queued for a client that does not read them: past this, the
 * client is dropped rather than the VM's loop blocked. */
#define CLIENT_OUT_MAX (64u << 10)
/* Snapshots kept in the list (query-snapshot, --stats): past this, the
 * oldest finished one is forgotten (vm/README.md). */
#define MAX_SNAPSHOTS 256
#define CONTROL_MODE_DEFAULT 0600u
#define AT_CONTROL UINT64_MAX        /* snap.at_ms: asked on the socket  */

struct sample {
	double t;
	uint64_t progress;
};

enum snap_state { SNAP_PENDING, SNAP_ACTIVE, SNAP_DONE, SNAP_FAILED, SNAP_SKIPPED };

struct snap {
	char *path;                  /* the destination, as given (dest.h)     */
	int method;
	uint64_t at_ms;              /* scheduled time, or AT_CONTROL          */
	enum snap_state state;
	int error;
	char errmsg[256];
	double t_call;               /* bgsnap_start called                    */
	double t_parked;             /* vCPU parked (pause hook)               */
	double t_resumed;            /* vCPU released (resume hook)            */
	double t_done;               /* committed                              */
	uint64_t console_offset;     /* console bytes before the pause         */
	uint64_t progress_at_pause;
	bool chain;                  /* a link of the --snapshot-every chain   */
	struct bgsnap_stats stats;
};

struct client {
	int fd;                      /* non-blocking                           */
	char buf[LINE_MAX_];
	size_t len;
	bool overflow;               /* discarding an over-long line           */
	char *out;                   /* replies not yet taken by the socket    */
	size_t out_len, out_cap;     /* out_len <= CLIENT_OUT_MAX              */
};

struct runner {
	struct vm vm;
	const char *guest_name;
	char guest[64];              /* the name, when it comes from a snapshot */
	int method;
	int compress, compress_level;   /* every snapshot's (--compress)     */
	bool page_aligned;              /* every snapshot's (--page-aligned) */
	bool map_restore;               /* restore --map: RAM mapped from the file */
	uint64_t max_rate;           /* every snapshot's writer limit, B/s (--max-rate) */
	bool stats;
	/* --snapshot-every MS:DIR: a chain of snapshots into DIR, taken by
	 * one engine kept from one to the next (chain_eng), the first full,
	 * the next ones incremental. */
	uint64_t every_ms;           /* 0: none                                */
	const char *every_dir;
	uint64_t every_next_ms;      /* when the next link is due, after t0    */
	unsigned every_count;        /* links started                          */
	bgsnap_engine *chain_eng;
	/* The progress line (--progress, --quiet) of the running snapshot or
	 * lazy restore: the two never overlap. */
	enum progress_mode progress_mode;
	struct progress bar;

	struct snap *snaps;          /* oldest first, at most MAX_SNAPSHOTS    */
	size_t nsnaps, capsnaps;
	struct snap *cur;            /* running snapshot, or NULL              */
	bgsnap_engine *eng;
	struct snap *last;           /* last started snapshot (query-snapshot) */
	bgsnap_lazy *lazy;           /* lazy restore in progress, or NULL      */
	bgsnap_reader *lazy_reader;  /* borrowed by it                         */
	/* bgsnap_wait() runs in a waiter thread so that this thread keeps
	 * serving the control socket; it signals snap_fd when it returns. */
	pthread_t waiter;
	int snap_fd;
	int wait_rc;
	double wait_t;
	/* The running snapshot's destination (its spec is the snap's path,
	 * never freed while it runs), finished by the waiter thread. */
	const char *dest_spec;
	struct dest_stream dest;
	char dest_err[256];

	double t0;                   /* guest (re)started                      */
	double t_end;                /* guest finished                         */
	struct sample *samples;
	size_t nsamples, capsamples;

	const char *control_path;
	unsigned control_mode;       /* the socket file's permissions          */
	int listen_fd;
	struct client clients[MAX_CLIENTS];
	bool user_stopped;
	bool quit;
	int failures;
};

/* runner.c */
void runner_init(struct runner *r);
void runner_free(struct runner *r);
/* Runs the machine until the guest halts (or quit); returns the exit code. */
int runner_run(struct runner *r);

/* snapshots.c */
/* Appends a snapshot to the list; at MAX_SNAPSHOTS the oldest finished one
 * is forgotten first.  NULL with errno ENOMEM, or ENOSPC when every entry
 * is still pending or running. */
struct snap *snap_add(struct runner *r, const char *path, int method, uint64_t at_ms);
/* Starts snapshot s; on failure fills s->errmsg and returns -errno. */
int snapshot_start(struct runner *r, struct snap *s);
/* Finishes the running snapshot once bgsnap_wait() returned (block: wait). */
void snapshot_poll(struct runner *r, bool block);
/* Starts the earliest scheduled snapshot that is due at `now`; a guest that
 * ended skips the rest.  Returns when the next one is due, 0 when one was
 * started, -1 when none is scheduled. */
double snapshot_schedule(struct runner *r, double now, bool finished);
bool snapshot_pending(const struct runner *r);
const char *snap_state_name(const struct snap *s);

/* control.c: the socket (QMP-like JSON lines). */
int control_open(struct runner *r);
void control_close(struct runner *r);
/* Adds the socket's descriptors to pf[]; returns how many. */
size_t control_poll_fds(const struct runner *r, struct pollfd *pf);
/* Serves what poll reported on the descriptors control_poll_fds added. */
void control_serve(struct runner *r, const struct pollfd *pf, size_t n);

/* speed.c */
void speed_sample(struct runner *r, double t);
/* The running snapshot's progress line redrawn from its counters. */
void snapshot_progress(struct runner *r);

/* The --stats report on stderr: the run and each snapshot. */
void speed_report(const struct runner *r);

/* boot.c: the machine of a run, from a guest (a name or a file) or from a
 * snapshot; the exit code to give on failure, or EXIT_OK. */
int boot_guest(struct runner *r, const char *guest, uint64_t mem, uint64_t rounds, bool thp);
int boot_snapshot(struct runner *r, const char *path, bool lazy, bool thp);

#endif
