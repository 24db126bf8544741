/*
 * bgsnap.h - background snapshots of live memory.
 *
 * A host program (a VM monitor, an in-memory database, an emulator) registers
 * the memory it wants saved as named regions, and three hooks.  bgsnap_start()
 * pauses the host (hook `pause`), lets it save its small non-memory state
 * (hook `save_state`), write-protects every region, resumes the host (hook
 * `resume`) and returns.  The memory is then written out by a background
 * writer while the host keeps running; the file still holds the exact content
 * of every page at the pause instant.
 *
 * Conventions (as in liburing):
 *  - every function that can fail returns 0 (or a count / id >= 0) on success
 *    and a negative errno value on failure;
 *  - an engine or reader keeps a human-readable message for the last failure,
 *    returned by bgsnap_errmsg() / bgsnap_reader_errmsg();
 *  - the library never prints; pass a log callback to hear from it;
 *  - all names exported by the library start with bgsnap_.
 *
 * Thread safety: one engine is driven by one host thread (create, add
 * regions, start, wait, cancel, destroy).  bgsnap_get_stats() and
 * bgsnap_cancel() may be called from any thread while a snapshot runs.
 * A reader is used by one thread at a time.
 */
#ifndef BGSNAP_H
#define BGSNAP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with -fvisibility=hidden: what this header declares
 * is its whole interface, and nothing else leaves the library. */
#pragma GCC visibility push(default)

/* The one place the version is written: the library's string, the
 * pkg-config file and the shared library's soname (libbgsnap.so.0.MINOR
 * while MAJOR is 0, .so.MAJOR after) are derived from it. */
#define BGSNAP_VERSION_MAJOR 0
#define BGSNAP_VERSION_MINOR 2
#define BGSNAP_VERSION_PATCH 0

/* Returns the library version as "MAJOR.MINOR.PATCH". */
const char *bgsnap_version(void);

/* ------------------------------------------------------------------------ */
/* Methods: how the first write to a page after the pause is caught.        */

enum bgsnap_method {
	BGSNAP_METHOD_AUTO = 0,      /* best the running kernel allows        */
	BGSNAP_METHOD_UFFD,          /* userfaultfd write-protect, handler thread */
	BGSNAP_METHOD_UFFD_SIGNAL,   /* userfaultfd + SIGBUS in the faulting thread */
	BGSNAP_METHOD_MPROTECT,      /* PROT_READ + SIGSEGV                    */
	BGSNAP_METHOD_FORK,          /* child process writes its COW view      */
	BGSNAP_METHOD_STOP,          /* everything written during the pause    */
	BGSNAP_METHOD_COUNT_
};

/*
 * What each method asks of the host (docs/ARCHITECTURE.md says why):
 *  - uffd: nothing more than the region contract.  A kernel access to a
 *    protected page (read(2) into a region) waits like any fault.
 *    MADV_DONTNEED/munmap/mremap of unsaved pages fail the run cleanly.
 *  - uffd-signal: installs a SIGBUS handler for the run (faults outside the
 *    regions go to the host's previous handler; it stays installed after the
 *    run and keeps passing them on).  A kernel access to a protected page
 *    fails with EFAULT instead of waiting, from the pre-protect (inside
 *    bgsnap_start, before the pause hook; see options.pre_protect) until
 *    the run ends.  One such run per process at a time (-EBUSY).
 *  - mprotect: the same with SIGSEGV, removing PROT_WRITE; regions must be
 *    mapped read-write.  Each mapping keeps the rest of its protection
 *    (code in an rwx region keeps running) and gets exactly its own back.  It cannot see MADV_DONTNEED (the snapshot would hold
 *    zeros) and a region moved by mremap keeps PROT_READ: the host must not
 *    do either while it runs.  munmap is detected.
 *  - fork: refuses MAP_SHARED regions (memfd/shmem), which a child would
 *    see change.  Extra memory up to the regions' size.
 *  - stop: the host stays paused until the file is committed.
 *
 * fork() while a snapshot runs: the child is never part of the snapshot
 * and never blocks on it; it must not use the engine it inherited.
 *  - uffd, uffd-signal: the userfaultfd is opened without
 *    UFFD_FEATURE_EVENT_FORK, so the kernel does not register the child's
 *    copy of the regions and clears the write-protect bit of every page
 *    table entry it copies into the child: the child's regions are plain
 *    copy-on-write memory, its writes fault to nobody.
 *  - mprotect: the child inherits the regions' lost PROT_WRITE and the
 *    SIGSEGV handler; a pthread_atfork child handler (installed with the
 *    first such run) gives the child's copy of each mapping its protection
 *    back and makes the handler pass every fault on to the host's previous
 *    one.  A child made without fork() (a raw clone(2) or syscall(SYS_fork))
 *    skips that handler and would block on its first write to a region.
 *  - fork: the snapshot child is the library's own; its result reaches the
 *    engine through a socket, not its exit status, so the host may ignore
 *    SIGCHLD or reap every child itself (waitpid(-1, ...)).
 *  - stop: nothing runs after bgsnap_start returns.
 * A child's writes to a MAP_SHARED region (memfd, shmem) are writes
 * through another mapping (see bgsnap_add_region): no method sees them.
 */

/* "auto", "uffd", "uffd-signal", "mprotect", "fork", "stop"; NULL if out of range. */
const char *bgsnap_method_name(int method);
/* Parses a method name; returns the enum value or -EINVAL. */
int bgsnap_method_parse(const char *name);

/*
 * Probes whether `method` can run in this process on this kernel, without
 * side effects that outlive the call.  Returns 0 if it can, or a negative
 * errno; if `why` is not NULL, a message naming the missing kernel feature
 * or privilege is written there (at most `why_len` bytes, NUL-terminated).
 */
int bgsnap_method_probe(int method, char *why, size_t why_len);

/* ------------------------------------------------------------------------ */
/* Engine.                                                                   */

typedef struct bgsnap_engine bgsnap_engine;

/* Log levels for bgsnap_options.log. */
enum { BGSNAP_LOG_ERROR = 0, BGSNAP_LOG_WARN = 1, BGSNAP_LOG_INFO = 2, BGSNAP_LOG_DEBUG = 3 };

/*
 * Options for bgsnap_create.  Always fill them with bgsnap_options_init,
 * which sets `size`: a program built against an older header passes its
 * smaller struct and gets the defaults for the fields it does not know.
 * New fields are only ever added at the end.
 */
struct bgsnap_options {
	uint32_t size;              /* sizeof(struct bgsnap_options), set by
	                               bgsnap_options_init                       */
	int method;                 /* enum bgsnap_method; default AUTO          */
	size_t copy_buffer_bytes;   /* fault copy buffer capacity, rounded up to
	                               whole pages; minimum one page, at most
	                               the machine's physical memory
	                               (sysconf(_SC_PHYS_PAGES) pages; more:
	                               -EINVAL from bgsnap_create).  Default
	                               64 MiB.  Bounds the extra memory used.
	                               A run with hugetlb regions raises it to
	                               one huge page of the largest (2 MiB;
	                               not for 1 GiB pages, whose fault copy
	                               streams through the buffer as the
	                               writer drains it): a write fault on
	                               hugetlb memory copies its whole huge
	                               page (see bgsnap_add_region).            */
	unsigned wp_threads;        /* threads for the write-protect step; 0 =
	                               1 below 256 MiB, else one per CPU up
	                               to 4 */
	/* uffd, uffd-signal, mprotect: write-protect the regions before the
	 * pause, while the host runs (its writes meanwhile only mark pages
	 * dirty), and in the pause protect again only the pages written since;
	 * the pause then costs a few ms instead of a walk of all the memory.
	 * 1 (set by bgsnap_options_init) or 0: all of it in the pause.  uffd
	 * on kernels without the remove/unmap/remap events always does the
	 * latter.  The regions' contract (stay mapped and populated) starts
	 * with bgsnap_start, not with the pause. */
	unsigned pre_protect;
	/* uffd, uffd-signal and mprotect into a file (bgsnap_start with a
	 * path): write the bulk with O_DIRECT, from a thread, while the next
	 * MiB is being prepared (1, set by bgsnap_options_init), or through the
	 * page cache (0).  A host writing beside the writer slows the kernel's
	 * copy into the page cache many times over, not direct writes
	 * (docs/ARCHITECTURE.md).  stop (the host paused) and fork always use
	 * the page cache, as does a file system that refuses O_DIRECT; a
	 * descriptor given to bgsnap_start_fd is never changed. */
	unsigned direct_io;
	/* Optional log callback; may be called from bgsnap's threads, never from
	 * a signal handler.  `msg` has no trailing newline. */
	void (*log)(void *ctx, int level, const char *msg);
	void *log_ctx;
	/* Page data compression (enum bgsnap_compress; default NONE, a format
	 * version 1 file).  ZSTD writes a version 2 file: runs of up to 1024
	 * non-zero pages of a region become one zstd frame each (zero pages
	 * stay free, chunks that do not shrink are stored raw), so that a page
	 * is still read by decoding one frame.  Compression runs in the
	 * background writer, never in the pause nor on the fault path; with
	 * the stop method it is part of the pause.  ZSTD_AUTO compresses
	 * only the chunks that make the snapshot shorter (see the enum).
	 * bgsnap_start fails with
	 * -ENOTSUP (and a message) when the library was built without libzstd
	 * (bgsnap_compress_available), -EINVAL for an unknown method or level. */
	int compress;
	int compress_level;         /* zstd 1..19 (negative: faster, literals
	                               still Huffman-coded); 0 = -7   */
	/* Threads that compress beside the writer; 0 = the library's choice
	 * (one per online CPU but one, at least 1, at most 8); more than 64
	 * count as 64.  They are started by bgsnap_start and joined before the
	 * run ends.  The writer gathers up to 1024 consecutive pages into a
	 * chunk (fault copies: up to about 1000 single pages, one frame each)
	 * and hands it over, and when it must wait it compresses a queued
	 * chunk itself; records are written as chunks come back compressed,
	 * so their order in the file varies (the index finds them).  Memory
	 * in flight is fixed: threads + 3 chunks of 4 MiB each with a 4 MiB
	 * frame buffer (about 8 MiB per chunk, plus one zstd workspace per
	 * thread; 2 chunks without threads), allocated by bgsnap_start.  fork ignores the value: its
	 * child writes the file and can start no thread, so it compresses in
	 * its one writer. */
	unsigned compress_threads;
	/* Rate limit of the background writer, in bytes handed to the file or
	 * stream per second (0, the default: unlimited).  It paces the writer
	 * only: a write fault is still served at once, its page copied into
	 * the copy buffer; the writer drains that buffer within the same
	 * limit, so under a low limit the buffer fills sooner, and a fault
	 * that finds it full waits for space (copy_buffer_bytes).  fork's
	 * child paces the same way.  stop ignores it: it writes in the pause,
	 * which a limit would only lengthen.  A paced writer sees a
	 * cancel within 10 ms: the pacing never delays it.  Every value is
	 * valid. */
	uint64_t max_bytes_per_s;
	/* 1: chained snapshots.  Every snapshot names itself and its parent
	 * (format version 3, docs/FORMAT.md), and once one has committed, the
	 * next holds only the pages the host wrote since its pause (an
	 * incremental snapshot; bgsnap_set_incremental turns that off).  Every
	 * method chains.  mprotect (AUTO), stop and fork track the writes
	 * between snapshots with an asynchronous userfaultfd (Linux 6.7+:
	 * UFFD_FEATURE_WP_ASYNC and PAGEMAP_SCAN; without it they give
	 * -ENOTSUP); fork's child writes only the pages written since the
	 * parent.  uffd and uffd-signal cannot share the regions with that
	 * tracker and track with their own synchronous write-protect (Linux
	 * 6.2+: UFFD_FEATURE_WP_UNPOPULATED and the remove/unmap/remap events,
	 * else -ENOTSUP), which stays registered between snapshots: the host's
	 * first write to a page between snapshots is then a round trip to the
	 * fault handler (uffd) or a SIGBUS (uffd-signal, where a kernel access
	 * to such a page, read(2) into it, fails with EFAULT between snapshots
	 * too, and the process's SIGBUS fault path stays taken: another
	 * engine cannot run uffd-signal meanwhile), and bgsnap_reset gives
	 * -ENOTSUP.  pre_protect does not apply.
	 * Regions discarded (MADV_DONTNEED) between snapshots are stored
	 * again; a region unmapped and mapped again makes the next incremental
	 * snapshot fail with -EPERM and the one after it full; a region added
	 * makes the next one full.  A snapshot that fails or is cancelled
	 * makes the next one full and leaves no page write-protected, as does
	 * bgsnap_destroy.  Tracking belongs to the process that took the
	 * snapshots: in a fork child, the first snapshot is full.  0
	 * (default): off. */
	unsigned chain;
	/* 1: page-aligned layout (format version 4, docs/FORMAT.md): the data
	 * of every raw PAGES record starts at a file offset that is a multiple
	 * of the page size (a PAD record of zero bytes before it where needed),
	 * so that bgsnap_restore_map can map it instead of copying it.  Costs
	 * up to a page per PAGES record (at most 256 pages each: under 0.4 %
	 * for runs, up to one page per page copied on a write fault).  With
	 * compression, compressed chunks stay unaligned and only the chunks
	 * stored raw are aligned.  Offsets count from the snapshot's first
	 * byte: a stream or a bgsnap_start_fd descriptor not at offset 0 of
	 * its file is aligned relative to where the snapshot starts.  Readers
	 * of versions 1 to 3 refuse such a file ("unsupported format version
	 * 4").  0 (default): versions 1 to 3, as before. */
	unsigned page_aligned;
};

enum bgsnap_compress {
	BGSNAP_COMPRESS_NONE = 0,
	BGSNAP_COMPRESS_ZSTD = 1,
	/* zstd where the destination is slower than the compressors, raw
	 * where it is not, chosen chunk by chunk from the rates measured
	 * while the snapshot is written: the bytes per second the
	 * destination's writes take (cut to max_bytes_per_s when one is in
	 * force) against the compressor's bytes per second of CPU time.  The
	 * writer waits for a compressor only where compressing on half a CPU
	 * beats writing raw; otherwise a chunk is compressed only in a free
	 * chunk buffer, under a rate limit or a destination slower than the
	 * compressor threads, and a chunk stored raw goes from the host's
	 * memory to the file with no extra copy.  On a slow disk, a slow
	 * receiver or under a low rate limit the snapshot is smaller and
	 * shorter; on a fast disk it stays close to an uncompressed one, but
	 * on a machine short of CPU the measured rates can mislead it
	 * (docs/MEASUREMENTS.md, Compression, 2026-12-08).  One chunk in 64
	 * left raw is compressed anyway to measure again.  The
	 * file is a version 2 file like ZSTD's (raw and compressed chunks
	 * mixed, as incompressible chunks already are), read by every reader
	 * of compressed files; compress_level and compress_threads apply.
	 * Stats chunks_compressed and chunks_raw say what was chosen. */
	BGSNAP_COMPRESS_ZSTD_AUTO = 2,
};

/* 1 if this build of the library can write and read `method` (enum
 * bgsnap_compress), else 0.  NONE is always available. */
int bgsnap_compress_available(int method);

/* Fills `opts` with the defaults. */
void bgsnap_options_init(struct bgsnap_options *opts);

/*
 * Creates an engine.  `opts` may be NULL for the defaults; it is copied.
 * Only the first opts->size bytes are read; the fields beyond keep their
 * defaults.  Returns 0 and sets *out, or -ENOMEM / -EINVAL (bad option; a
 * size smaller than the first version of the struct, or larger than this
 * library's with a tail that is not all zero).
 */
int bgsnap_create(bgsnap_engine **out, const struct bgsnap_options *opts);

/*
 * Cancels a running snapshot (as bgsnap_cancel), waits for it to end and frees
 * the engine.  Memory registered as regions is never freed by bgsnap.
 */
void bgsnap_destroy(bgsnap_engine *e);

/* The message for the engine's last failure ("" if none).  Owned by the
 * engine, valid until the next call on it. */
const char *bgsnap_errmsg(const bgsnap_engine *e);

/*
 * Adds a region of memory to be snapshotted, named `name` (1..63 bytes,
 * unique within the engine).  `addr` and `len` must be page-aligned and
 * len > 0; the range must be mapped, private anonymous, shmem/memfd memory
 * (MAP_SHARED|MAP_ANONYMOUS, memfd, SysV shm) or hugetlb memory, and must
 * not overlap another region.  Refused: file-backed mappings of regular
 * files (they cannot be write-protected).  The memory stays owned by the
 * host; it must stay mapped (no munmap, mremap or MADV_DONTNEED) while a
 * snapshot runs.
 *
 * hugetlb memory (MAP_HUGETLB, a file on a hugetlbfs mount,
 * memfd_create(MFD_HUGETLB); 2 MiB or 1 GiB pages): the kernel protects a
 * huge page only whole, so bgsnap tracks such a region by huge pages:
 * `addr` and `len` must be multiples of its huge page size (-EINVAL), and
 * a region must not mix page sizes (-ENOTSUP: register each part as its
 * own region).  A write fault copies the whole huge page (2 MiB: ~1.5 ms
 * here at ~1.3 GB/s, against ~3 us for 4 KiB) into the copy buffer and
 * then unprotects it: the faulting thread waits that long, once per huge
 * page.  uffd and uffd-signal need Linux 5.19+ (write-protect of hugetlbfs
 * and shmem); mprotect works on any kernel; fork works on MAP_PRIVATE
 * hugetlb memory but its copy-on-write needs free huge pages (each page
 * the host writes during the snapshot takes one more from the pool; if
 * there are none the kernel takes the page away from the child, which
 * then fails the snapshot); shared hugetlb is shared memory (below).  The
 * file still holds 4 KiB pages: a huge page is 512 (or 262144)
 * consecutive pages of the region.
 *
 * Shared memory (MAP_SHARED: memfd, shmem, SysV, shared hugetlb): uffd,
 * uffd-signal, mprotect and stop snapshot it; fork refuses it (-ENOTSUP
 * from bgsnap_start: a fork child shares the pages instead of getting a
 * copy-on-write view, so it would save the host's later writes).  Every
 * method catches writes through the region's own
 * mapping only (write protection and fork's copy-on-write act on this
 * mapping's page tables).  A write to the same pages through another
 * mapping - a second mmap of the memfd, another process's mapping - raises
 * no fault and lands in the snapshot or not, whenever it happens: the
 * snapshot is then not the pause instant's.  A second MAP_SHARED mapping
 * of the same pages in this process at the time of the call is refused
 * (-EBUSY, the message names both addresses); mappings made later, and
 * other processes' mappings, cannot be seen: from bgsnap_start until
 * bgsnap_wait returns, only the region's own mapping may write its pages.
 *
 * Returns the region id (>= 0, in order of addition) or
 *  -EINVAL  unaligned, empty, bad name, duplicate name, overlapping region
 *  -EFAULT  the range is not (entirely) mapped
 *  -ENOTSUP the range is file-backed, mixes page sizes, or otherwise
 *           cannot be tracked
 *  -EBUSY   a snapshot is running, or the pages are also mapped shared at
 *           another address of this process
 */
int bgsnap_add_region(bgsnap_engine *e, const char *name, void *addr, size_t len);

/* Where save_state puts the host's named state blobs. */
typedef struct bgsnap_state bgsnap_state;

/*
 * Adds a named state blob (name 1..63 bytes, unique; len may be 0).  The
 * bytes are copied.  Called from the save_state hook.  Returns 0, -EINVAL
 * (bad or duplicate name), -ENOMEM.
 */
int bgsnap_state_add(bgsnap_state *st, const char *name, const void *data, size_t len);

struct bgsnap_hooks {
	/* Stop every thread that writes the regions (vCPUs, mutators).  Called
	 * by the thread that calls bgsnap_start() (and maybe once more while
	 * the snapshot runs: see below).  Non-zero return aborts the
	 * snapshot (nothing is protected yet) and is reported as -ECANCELED. */
	int (*pause)(void *ctx);
	/* Save non-memory state with bgsnap_state_add().  Called while paused.
	 * Non-zero return aborts the snapshot (resume is still called). */
	int (*save_state)(bgsnap_state *st, void *ctx);
	/* Let the threads run again.  Always called after a successful pause. */
	void (*resume)(void *ctx);
	void *ctx;
};
/*
 * A snapshot that finishes paused (BGSNAP_PARAM_FINISH_PAUSED) calls pause
 * and resume a second time while it runs, without save_state: pause from a
 * thread of the library ("bgsnap-pause"), resume from its writer thread
 * ("bgsnap-writer"), never from a signal handler.  The pause hook must
 * then stop the threads that write the regions without saving anything
 * of the snapshot instant (that is save_state's job): the instant stays
 * the first pause's.  While it waits for a thread to park, the library
 * keeps serving that thread's write faults.  A non-zero return there only
 * lets the snapshot go on in the background (resume is not called); after
 * a zero return resume is called once, on success, failure and cancel
 * alike, after every protection is removed.
 */

/* Sets the hooks (copied).  Any hook may be NULL.  -EBUSY while running. */
int bgsnap_set_hooks(bgsnap_engine *e, const struct bgsnap_hooks *hooks);

/*
 * Starts a snapshot of every region into the file `path`.  The file is
 * written unnamed (O_TMPFILE; where the file system lacks it, under a hidden
 * temporary name) in the same directory, mode 0600, fsynced and given its
 * name only when complete (then the directory is fsynced): `path` is either
 * absent/old or the complete new snapshot, and a host killed meanwhile
 * leaves no file (with the hidden temporary name, a killed host leaves that
 * hidden file).  A `path` that is a directory: -EISDIR; a file name longer
 * than its directory allows (NAME_MAX): -ENAMETOOLONG.
 *
 * Committed means: the file has its final name and its complete, fsynced
 * content.  The directory's fsync comes after that and cannot be undone: if
 * it fails, the snapshot still counts as committed (bgsnap_wait returns 0),
 * but after a system crash the name may be missing or still name the old
 * file.
 *
 * Returns once the host has been resumed (for the stop method: once all is
 * written).  The memory is then saved in the background; call bgsnap_wait().
 *
 * Errors: -EBUSY (already running), -EINVAL (no regions), -ENOTSUP / -ENOSYS /
 * -EPERM (the method cannot run here; the message names the missing kernel
 * feature or privilege), -ECANCELED (a hook failed), -EAGAIN / -ENOMEM (a
 * thread, the background writer included, or memory could not be had),
 * -errno from the sink.  On error nothing stays protected, no file is left
 * behind, the engine's descriptors are closed, and bgsnap_wait() returns
 * the same error.
 */
int bgsnap_start(bgsnap_engine *e, const char *path);

/*
 * As bgsnap_start(), but streams to `fd` (a pipe, a socket or a file) without
 * seeking.  The fd is not closed.  On failure the stream is incomplete; a
 * reader detects that (no valid trailer).
 */
int bgsnap_start_fd(bgsnap_engine *e, int fd);

/*
 * Waits for the running snapshot to end.  Returns 0 only when the snapshot
 * was committed (bgsnap_start: the complete file under its name;
 * bgsnap_start_fd: every byte written), -ECANCELED after bgsnap_cancel(),
 * or the negative errno of the failure (message in bgsnap_errmsg); after
 * a bgsnap_start that failed, its error or -EINVAL.  In every case, on return no memory
 * is write-protected, no host thread is blocked by bgsnap, and a path
 * snapshot that failed left no file.  Returns -EINVAL if none was started.
 */
int bgsnap_wait(bgsnap_engine *e);

/*
 * Asks the running snapshot to stop.  May be called from any thread
 * (not from a signal handler).  Returns at once; bgsnap_wait() then
 * returns -ECANCELED (or 0 if the snapshot had already committed).
 */
int bgsnap_cancel(bgsnap_engine *e);

enum bgsnap_run_state {
	BGSNAP_STATE_IDLE = 0,   /* never started                             */
	BGSNAP_STATE_RUNNING,    /* memory being written                      */
	BGSNAP_STATE_DONE,       /* committed                                 */
	BGSNAP_STATE_FAILED,     /* failed or cancelled (see errmsg)          */
};

struct bgsnap_stats {
	int method;                  /* the method that ran (never AUTO)       */
	int state;                   /* enum bgsnap_run_state                  */
	int error;                   /* negative errno if FAILED, else 0       */
	uint64_t pages_total;        /* pages in all regions                   */
	uint64_t pages_saved;        /* pages written to the sink so far       */
	uint64_t pages_zero;         /* of those, stored as zero records       */
	uint64_t pages_faulted;      /* pages copied on a write fault          */
	uint64_t bytes_written;      /* bytes written to the sink so far       */
	uint64_t state_bytes;        /* bytes of state blobs                   */
	uint64_t copybuf_capacity;   /* copy buffer capacity in bytes          */
	uint64_t copybuf_peak;       /* copy buffer high-water mark, bytes     */
	uint64_t extra_mem_peak;     /* extra memory at peak, bytes (fork: pages
	                                copied on write, as far as known)      */
	uint64_t pause_us;           /* pause hook called .. resume returned   */
	uint64_t wp_us;              /* write-protect step in the pause (fork:
	                                fork(); with pre_protect: protecting
	                                the pages written since, again)        */
	uint64_t total_us;           /* start .. committed                     */
	uint64_t unprotect_calls;    /* protection-removal system calls        */
	uint64_t uffd_features;      /* features granted by UFFDIO_API         */
	/* Where the background writer's time went (0 for stop and fork where
	 * not applicable); useful to see what a slow snapshot waited on. */
	uint64_t unprotect_us;       /* removing protection from saved pages   */
	uint64_t commit_us;          /* index, trailer, fsync, rename          */
	/* The write-protect done before the pause (options.pre_protect), and
	 * how many pages written meanwhile the pause protected again. */
	uint64_t prewp_us;
	uint64_t reprotect_pages;
	int direct_io;               /* 1: the file is written with O_DIRECT
	                                (options.direct_io, where it applies) */
	/* The writer's time, from its start (after the pause; stop: in the
	 * pause) to the file committed, and bytes_written over it: the rate
	 * achieved, to compare with options.max_bytes_per_s.  0 until the
	 * run ends. */
	uint64_t writer_us;
	uint64_t achieved_bytes_per_s;
	/* Chains (options.chain).  tracking: how writes between snapshots
	 * are tracked (enum bgsnap_tracking).  incremental: 1 if this
	 * snapshot holds only the pages written since its parent, which are
	 * dirty_pages (found in scan_us, in the pause; for a full snapshot of
	 * a chain, dirty_pages counts what the scan re-armed).  depth: 0 for
	 * a full snapshot, else the parent's + 1. */
	int tracking;
	int incremental;
	uint32_t depth;
	uint64_t dirty_pages;
	uint64_t scan_us;
	/* Chains: the collection before the pause (while the host runs) of
	 * the pages written so far, which it protects again; the pause's scan
	 * (scan_us) then finds only what was written after it, and
	 * dirty_pages is the union.  prescan_pages: pages it found. */
	uint64_t prescan_us;
	uint64_t prescan_pages;
	/* Finishing paused (BGSNAP_PARAM_FINISH_PAUSED): 1 if the engine
	 * stopped the host to write the rest of this snapshot; that pause
	 * (pause hook called .. resume returned) and the pages written in
	 * it; finish_hook_us: of that pause, the pause hook's call (the host
	 * parking its threads).  fault_wait_us: the time the host's threads waited in write
	 * faults after the pause, summed over threads (uffd: from the
	 * message's estimated arrival to its wake-up; uffd-signal, mprotect:
	 * in the signal handler); fault_threads: the most host threads seen
	 * faulting in one 50 ms window (up to 64; uffd without
	 * UFFD_FEATURE_THREAD_ID sees one). */
	int finished_paused;
	uint32_t fault_threads;
	uint64_t finish_pause_us;
	uint64_t finish_pages;
	uint64_t fault_wait_us;
	uint64_t finish_hook_us;
	/* Compressing: chunks (runs of up to 1024 consecutive non-zero
	 * pages, or one page copied on a write fault) stored compressed,
	 * and stored raw (by BGSNAP_COMPRESS_ZSTD_AUTO's choice, or because
	 * they did not shrink); 0 and 0 uncompressed. */
	uint64_t chunks_compressed;
	uint64_t chunks_raw;
};

enum bgsnap_tracking {
	BGSNAP_TRACKING_NONE = 0,        /* no chain                               */
	BGSNAP_TRACKING_UFFD_ASYNC = 1,  /* async userfaultfd + PAGEMAP_SCAN       */
	BGSNAP_TRACKING_UFFD_SYNC = 2,   /* the uffd method's own write-protect    */
};

/*
 * Copies the current statistics into `out`, a struct of `out_size` bytes
 * (pass sizeof: a caller built against an older header gets the fields it
 * knows; a newer caller gets zeros in the fields this library lacks).
 * Safe from any thread at any time; values are monotone while running and
 * final after bgsnap_wait() returned.  -EINVAL if e or out is NULL.
 */
int bgsnap_get_stats(const bgsnap_engine *e, struct bgsnap_stats *out, size_t out_size);

/* ------------------------------------------------------------------------ */
/* Experimental parameters.  Tuning knobs whose worth is still being
 * measured: names, ranges and defaults may change, or a parameter may go,
 * between minor versions.  Unknown parameters give -EINVAL.               */

enum bgsnap_param {
	/* uffd, uffd-signal, mprotect: pages saved per write fault.  The
	 * aligned block of this many pages around the faulting one is copied
	 * and unprotected in one call (a power of two, 1..64; 0 is taken as 1,
	 * the default: the faulting page only).  Trades copy work and buffer
	 * space for fewer faults and protection changes. */
	BGSNAP_PARAM_FAULT_AROUND_PAGES = 1,
	/* 1 (default) or 0: after a snapshot (every method but stop), rebuild
	 * the transparent huge pages it split (MADV_COLLAPSE, Linux 6.1+,
	 * best effort) in the regions that were at least half huge pages when
	 * it started, so that the host runs as fast after it as before.  Done
	 * in bgsnap_wait, after the file is committed (not in total_us). */
	BGSNAP_PARAM_THP_COLLAPSE = 2,
	/* uffd, uffd-signal, mprotect: finish a snapshot with the host
	 * paused when its write faults cost it more than stopping it would.
	 * Every 50 ms the writer weighs, for the pages left, the host's
	 * thread-time lost to faults if it goes on (its summed fault wait
	 * per second x the writer's time per page) against a stop's (the
	 * host threads seen faulting x what a page takes once the host no
	 * longer competes for a CPU); when going on costs more than this
	 * percentage of stopping in two windows in a row, with 4 MiB or more
	 * left, it calls the pause hook, writes the rest with no fault
	 * possible, removes all protection and calls the resume hook
	 * (stats.finished_paused, finish_pause_us).  A host that writes
	 * little never gets there.  0 never finishes paused; -1 always does,
	 * once a quarter of the pages is saved (for tests, or a host that
	 * prefers one pause to any slowdown); default
	 * BGSNAP_FINISH_PAUSED_DEFAULT, 0: for a host that writes everything a
	 * finish paused is a second pause as long as a stop's, which a host
	 * that chose a background snapshot for its short pause (a VM serving
	 * requests) did not ask for; 100 is the break-even of the two costs,
	 * for a host whose throughput matters more than its latency.  Needs a pause hook; never with
	 * options.max_bytes_per_s (the pause would write faster than that),
	 * nor in a chain taken with uffd or uffd-signal (their write-protect
	 * tracks the host's writes for the next snapshot and must stay on the
	 * saved pages). */
	BGSNAP_PARAM_FINISH_PAUSED = 3,
};

#define BGSNAP_FINISH_PAUSED_DEFAULT 0

/*
 * With options.chain: 1 (the default) makes the next snapshots
 * incremental whenever the chain allows (a committed parent, tracking
 * unbroken since its pause); 0 makes them full (each starts a new chain).
 * Without a chain it is remembered but has no effect.  0, -EINVAL (on not
 * 0 or 1), -EBUSY while a snapshot runs.
 */
int bgsnap_set_incremental(bgsnap_engine *e, int on);

/*
 * Returns the registered regions to the content of the last snapshot this
 * engine took (options.chain; `path` is its file, a chain's last file when
 * it is incremental), copying back only the pages written since its pause
 * (discarded pages included), with the host paused by the pause and
 * resume hooks (save_state is not called).  The regions must be mapped as
 * they were.  The snapshot stays the chain's last: the next snapshot is
 * incremental over it, holding the pages written after the reset.  Each
 * page is read from the file once and kept in memory until the next
 * snapshot or bgsnap_destroy, so resetting the same pages again costs a
 * scan and a memcpy per page.  Returns the number of pages copied back,
 * or -ESTALE (no chain, no committed snapshot, tracking broken since, or
 * `path` is not the last snapshot), -ECANCELED (the pause hook failed),
 * -EBUSY (a snapshot runs), a reader error, or the tracker's (-EPERM: a
 * region was mapped again); after a failure that has begun copying, the
 * memory is only partly reset and the next snapshot is full.
 */
int64_t bgsnap_reset(bgsnap_engine *e, const char *path);

/* Sets parameter `param` for the next snapshots.  -EINVAL (unknown
 * parameter or value out of range), -EBUSY while a snapshot runs. */
int bgsnap_set_param(bgsnap_engine *e, int param, int64_t value);
/* Reads the current value of parameter `param` into *value; -EINVAL if
 * unknown. */
int bgsnap_get_param(const bgsnap_engine *e, int param, int64_t *value);

/* ------------------------------------------------------------------------ */
/* Reader: one parser for info, verify, extract, diff and restore.           */

typedef struct bgsnap_reader bgsnap_reader;

/*
 * Opens a snapshot file for random access: checks the header, the trailer
 * and the index (and their checksums).  Page data is checked as it is read.
 * Returns 0 and *out, or -errno (-EBADMSG: not a valid snapshot; the message,
 * from bgsnap_reader_errmsg on the returned *out when it is not NULL, or in
 * `err` when given, says what and at which offset).  On failure *out is NULL.
 */
int bgsnap_reader_open(bgsnap_reader **out, const char *path, char *err, size_t err_len);

/*
 * Chains (format version 3).  An incremental snapshot holds only the pages
 * written since its parent, which it names by id and by the parent's file
 * checksum; the other pages are the parent's, recursively, down to a full
 * snapshot.  bgsnap_reader_open of an incremental file opens its whole
 * chain: it looks for each parent by id among the regular files of the
 * same directory (reading their first 80 bytes), opens and checks it
 * (checksum, depth, region table), and fails with -ENOENT naming the
 * missing parent's id and the directory, or -EBADMSG naming the file that
 * does not fit.  The reader then presents one image: read_page, page_run,
 * read_region, bgsnap_restore_reader and bgsnap_lazy_restore_start see
 * every page as of the newest file.  bgsnap_reader_info, region, state,
 * next and verify describe and walk the newest file alone: a chain is
 * intact when bgsnap_reader_verify passes on every link
 * (bgsnap_reader_chain_link).
 *
 * bgsnap_reader_open_chain opens the chain of `n` explicit files, oldest
 * (a full snapshot) first, newest last, with the same checks and no
 * directory search; n = 1 is bgsnap_reader_open of a file that is not
 * incremental.  -EINVAL for n = 0 or more than 65536 files.
 */
int bgsnap_reader_open_chain(bgsnap_reader **out, const char *const *paths, unsigned n, char *err,
                             size_t err_len);
/* Files in r's chain: 1 for a file that is not incremental (or a stream). */
unsigned bgsnap_reader_chain_len(const bgsnap_reader *r);
/* Link k of r's chain (0: the oldest, chain_len - 1: r itself), a reader
 * of that file alone, owned by r (never close it), valid until r is
 * closed; NULL if k is out of range.  Use it for verify, info and next:
 * an incremental link holds only some pages, so read_region and restore
 * refuse it (-EINVAL) and read_page finds only its own (-EBADMSG for the
 * others). */
bgsnap_reader *bgsnap_reader_chain_link(bgsnap_reader *r, unsigned k);
/* The path r was opened with (NULL for a stream); owned by r. */
const char *bgsnap_reader_path(const bgsnap_reader *r);
/*
 * Writes r's image (a chain's, or a lone file's) to `fd` as one full
 * snapshot: version 1, or version 2 with `compress` BGSNAP_COMPRESS_ZSTD;
 * the same regions, the newest file's state blobs, method, creation and
 * pause times.  Every page is read through r (each record checked against
 * its checksum first).  The fd is written front to back and left open;
 * fsync and naming the file are the caller's (write to a temporary of
 * mode 0600, rename it when this returns 0).  0, or -errno with the
 * reason in `err`: -ESPIPE for a stream, -ENOTSUP for zstd in a build
 * without it, -EBADMSG when a record is corrupt, an I/O error of `fd`.
 */
int bgsnap_reader_write_full(bgsnap_reader *r, int fd, int compress, char *err, size_t err_len);

/*
 * Opens a snapshot arriving on `fd` as a stream (pipe, socket): reads the
 * header only.  Records are then read in order with bgsnap_reader_next();
 * random access (read_page, read_region) is not available (-ESPIPE).
 * Regular files also work this way.  The fd is not closed by the reader.
 */
int bgsnap_reader_open_stream(bgsnap_reader **out, int fd, char *err, size_t err_len);

void bgsnap_reader_close(bgsnap_reader *r);
const char *bgsnap_reader_errmsg(const bgsnap_reader *r);

struct bgsnap_file_info {
	uint32_t version;            /* format version (1 to 4)                */
	uint32_t page_size;          /* bytes per page (4096)                  */
	uint32_t region_count;
	uint32_t state_count;        /* 0 until known (stream: after the end)  */
	int method;                  /* method that wrote it                   */
	uint64_t created_unix_ns;    /* pause instant, CLOCK_REALTIME          */
	uint64_t pages_total;
	uint64_t pages_zero;         /* 0 until known (stream: after the end)  */
	uint64_t pause_us;
	uint64_t file_bytes;         /* 0 for a stream until the end           */
	/* From the index (a stream: 0 until next() returned END). */
	uint64_t records;            /* PAGES + ZERO + CPAGES + STATE records  */
	uint64_t page_records;       /* PAGES records                          */
	uint64_t zero_records;       /* ZERO records                           */
	uint64_t state_records;      /* STATE records                          */
	uint64_t index_offset;       /* file offset of the INDEX record        */
	/* Compression (a stream: 0 until next() returned END, but compress). */
	int compress;                /* enum bgsnap_compress: ZSTD for a
	                                version 2 file or one with CPAGES
	                                records, else NONE                     */
	uint64_t cpage_records;      /* CPAGES records (compressed chunks)     */
	uint64_t raw_bytes;          /* bytes of the pages in PAGES and CPAGES
	                                records (an incremental file: those it
	                                holds)                                 */
	uint64_t stored_bytes;       /* bytes of the PAGES and CPAGES records
	                                that hold them (headers included):
	                                stored_bytes / raw_bytes is the ratio   */
	/* Lineage (version 3 files; all zero for versions 1 and 2). */
	uint8_t id[16];              /* this snapshot's id                      */
	uint8_t parent_id[16];       /* all zero: a full snapshot               */
	uint32_t parent_file_crc;    /* the parent's TRAILER file_crc           */
	uint32_t depth;              /* 0 full, else the parent's depth + 1     */
	int incremental;             /* 1: holds only the pages written since
	                                its parent (parent_id is not zero)     */
	/* Page-aligned layout (format version 4, options.page_aligned). */
	int page_aligned;            /* 1: every PAGES record's data starts at
	                                a multiple of page_size in the file    */
	uint64_t pad_records;        /* PAD records (not counted in `records`) */
};
/*
 * Copies what the file says about itself into `out`, a struct of `out_size`
 * bytes (pass sizeof: a caller built against an older header gets the
 * fields it knows; a newer caller gets zeros in the fields this library
 * lacks).  New fields are only ever added at the end.  -EINVAL if r or out
 * is NULL.
 */
int bgsnap_reader_info(const bgsnap_reader *r, struct bgsnap_file_info *out, size_t out_size);

struct bgsnap_region_info {
	const char *name;            /* owned by the reader                    */
	uint64_t addr;               /* address in the snapshotted process     */
	uint64_t size;               /* bytes, multiple of page_size           */
	uint64_t pages_zero;         /* ZERO pages (a stream: 0 until END)     */
};
/* Region `idx` in 0..region_count-1 into `out` (`out_size` bytes, as
 * bgsnap_reader_info); -ENOENT if out of range, -EINVAL if r or out is
 * NULL. */
int bgsnap_reader_region(const bgsnap_reader *r, unsigned idx, struct bgsnap_region_info *out,
                         size_t out_size);
/* Index of the region named `name`, or -ENOENT. */
int bgsnap_reader_find_region(const bgsnap_reader *r, const char *name);

/*
 * State blob `idx` (0..state_count-1).  *data points into the reader, valid
 * until it is closed.  For a stream, available once next() returned END.
 */
int bgsnap_reader_state(const bgsnap_reader *r, unsigned idx, const char **name,
                        const void **data, size_t *len);
/* State blob named `name`; -ENOENT if absent. */
int bgsnap_reader_find_state(const bgsnap_reader *r, const char *name,
                             const void **data, size_t *len);

enum bgsnap_record_kind {
	BGSNAP_REC_PAGES = 1,        /* `count` pages of data at `data` (a
	                                compressed record comes decoded)       */
	BGSNAP_REC_ZERO  = 2,        /* `count` zero pages                      */
	BGSNAP_REC_STATE = 3,        /* a state blob (name, data, len)          */
	BGSNAP_REC_END   = 4,        /* index and trailer read and checked      */
};
struct bgsnap_record {
	int kind;                    /* enum bgsnap_record_kind                 */
	uint32_t region;             /* PAGES, ZERO: region index               */
	uint64_t first_page;         /* PAGES, ZERO: page index in the region   */
	uint64_t count;              /* PAGES, ZERO: number of pages            */
	const char *name;            /* STATE                                   */
	const void *data;            /* PAGES: count*page_size bytes; STATE     */
	size_t len;                  /* STATE: bytes                            */
	uint64_t offset;             /* file offset of the record              */
};
/*
 * Reads the next record in file order, checking its checksum and bounds
 * (the page range lies inside its region; no page appears twice).  Pointers
 * stay valid until the next call.  Returns 1 with *rec filled, 0 after END
 * was returned, or -EBADMSG (corrupt, truncated, message gives the offset),
 * -EIO.  After END every page of every region has been seen exactly once.
 */
int bgsnap_reader_next(bgsnap_reader *r, struct bgsnap_record *rec);

/* Rewinds a random-access reader to the first record (for a second pass). */
int bgsnap_reader_rewind(bgsnap_reader *r);

/*
 * Reads page `page` of region `region` into `dst` (page_size bytes), through
 * the index.  -ENOENT out of range, -EBADMSG corrupt, -ESPIPE on a stream.
 */
int bgsnap_reader_read_page(bgsnap_reader *r, unsigned region, uint64_t page, void *dst);

/*
 * The run of pages that holds page `page` of region `region`, as the file
 * stores it: one PAGES, CPAGES or ZERO record.  Fills rec->kind
 * (BGSNAP_REC_PAGES, also for a compressed run, or BGSNAP_REC_ZERO), region,
 * first_page, count and offset (data and name are NULL, len 0); the run covers [first_page, first_page + count), which
 * holds `page`.  Lets a caller go over a region run by run: one ZERO record
 * stands for up to 2^20 pages (4 GiB) and a small file for a whole 16 TiB
 * of zeros, which page-by-page callers would walk for hours.  Reads nothing
 * from the file (the index was read at open): a PAGES run's data is checked
 * when read_page or read_region reads it.  Random-access readers only.
 * -ENOENT out of range, -ESPIPE on a stream, -EINVAL if r or rec is NULL.
 */
int bgsnap_reader_page_run(bgsnap_reader *r, unsigned region, uint64_t page, struct bgsnap_record *rec);

/* Flags for bgsnap_reader_read_region. */
#define BGSNAP_READ_DST_ZEROED 0x1u  /* dst is known zero: skip zero pages   */

/*
 * Restores region `region` into `dst`, which must be exactly the region's
 * size (`dst_len`); nothing outside [dst, dst+dst_len) is ever written.
 * Random-access readers only.  -EINVAL on a size mismatch, -EBADMSG corrupt.
 */
int bgsnap_reader_read_region(bgsnap_reader *r, unsigned region, void *dst, size_t dst_len,
                              unsigned flags);

/*
 * Full check of a random-access reader: every record's checksum, the
 * whole-file checksum, every page of every region present exactly once,
 * index consistent with the records.  0 if intact, else -EBADMSG with a
 * message that says what is wrong and at which offset.
 */
int bgsnap_reader_verify(bgsnap_reader *r);

/* ------------------------------------------------------------------------ */
/* Restore: a snapshot's regions back into memory, eagerly or lazily.        */

/*
 * One region of a snapshot and the caller's memory it is restored into.
 * `dst` must be page-aligned, mapped read-write, and `len` must equal the
 * region's size exactly (bgsnap_reader_region); targets must not overlap,
 * and a region has at most one target.
 * The memory stays owned by the caller; bgsnap never writes outside
 * [dst, dst+len), whatever the file says (every page range in the file is
 * checked against the region size before a byte is written).
 */
struct bgsnap_restore_target {
	unsigned region;             /* region index in the snapshot           */
	void *dst;
	size_t len;
};

/*
 * Eager restore: checks every target first (nothing is written if one is
 * wrong: bad size, overlap, two targets for one region), then restores each
 * region into its target and returns when all memory is back.  `r` is a
 * random-access reader (bgsnap_reader_open) that nothing else uses during the
 * call.  The file is read in file order, in slices of a few MiB shared by
 * `threads` threads (0 = one per online CPU, at most 16), each with one
 * preadv per slice; every record is checked against the index and its
 * checksum (pages read in place: after they landed) before the restore
 * counts as good.  Regions without a target are skipped.
 *
 * How pages get there (docs/RESTORE.md): a target that is private
 * anonymous memory with no page populated yet (a fresh mmap) and wants
 * transparent huge pages (MADV_HUGEPAGE, or THP "always") is populated
 * with huge pages and the page data read straight into it (preadv, no
 * intermediate copy), so that it stays on huge pages (UFFDIO_COPY would
 * install 4 KiB ones); what is still split afterwards is collapsed
 * (MADV_COLLAPSE, best effort).  Other fresh private anonymous memory is
 * filled with UFFDIO_COPY through a userfaultfd registered for missing
 * pages (no page fault per page); in fresh memory zero pages are left
 * unpopulated (they read as zero).  Any other target (populated, shmem,
 * hugetlb, no userfaultfd here) has its page data read in place and its
 * zero pages written.  The caller must not touch the targets during the
 * call.
 *
 * Returns 0, or -EINVAL (bad target), -EFAULT (target not mapped), -ESPIPE
 * (a stream reader), -EBADMSG (a record is corrupt or the file truncated),
 * -EIO, -ENOMEM.  The restore is good only when 0 is returned: page data
 * read in place is checked after it landed, so on failure the targets are
 * unspecified (partial content, possibly bytes of the corrupt record) and
 * must not be used, though they may be restored into again.  Nothing
 * outside the targets is written either way.  The message goes to `err`
 * (at most `err_len` bytes, NUL-terminated) when not NULL.
 */
int bgsnap_restore_reader(bgsnap_reader *r, const struct bgsnap_restore_target *targets, unsigned n,
                          unsigned threads, char *err, size_t err_len);

/* As bgsnap_restore_reader() on a reader of `path` opened (and closed) for
 * the call; -ENOENT and the reader's other open errors besides. */
int bgsnap_restore(const char *path, const struct bgsnap_restore_target *targets, unsigned n,
                   unsigned threads, char *err, size_t err_len);

/* bgsnap_restore_map flags. */
enum {
	/* Do not read the mapped pages back to check their checksums: the
	 * call then costs a few mmap calls, and pages come from the file
	 * when first touched.  Only for a file checked already (bgsnap
	 * verify, or a restore of it that checked). */
	BGSNAP_RESTORE_MAP_NO_VERIFY = 1u,
	/* Fail with -ENOTSUP, before any target is changed, when a target
	 * cannot be mapped, instead of restoring it by copy. */
	BGSNAP_RESTORE_MAP_ONLY = 2u,
};

/*
 * Restore by mapping (docs/RESTORE.md): for a file written with
 * options.page_aligned (format version 4, no chain), each target whose
 * region holds only raw pages (PAGES and ZERO records, no compressed
 * ones) is replaced by mappings: fresh anonymous zero memory over the
 * whole target (mmap MAP_FIXED; ZERO runs stay that), and each PAGES
 * record's data mapped MAP_PRIVATE|MAP_FIXED from the file over its pages.
 * No page is copied: the kernel reads a page from the page cache (or the
 * disk) when it is first touched, and copies it only when it is first
 * written (copy-on-write).  Every mapping's file offset, length and
 * address are checked against the file size, the page alignment and the
 * target before it is made: a crafted file cannot map anything outside a
 * target.
 *
 * Unless BGSNAP_RESTORE_MAP_NO_VERIFY, `threads` threads (0 = one per
 * online CPU, at most 16) then read every mapped page and check each
 * record's checksum (and the ZERO records'), as the copy path does; the
 * restore is good only when 0 is returned.
 *
 * Targets that cannot be mapped (the file is not version 4, is a chain or
 * an incremental link, the region has CPAGES records, the target is a
 * shared mapping, or the mappings would take too much of the process's
 * vm.max_map_count) are restored by copy, as bgsnap_restore_reader does,
 * unless BGSNAP_RESTORE_MAP_ONLY.  *mapped (when not NULL) is the number
 * of targets mapped.
 *
 * What the caller takes on, for mapped targets: the target's old mapping is
 * replaced (its flags, such as MADV_HUGEPAGE or mlock, are gone; the new
 * memory uses 4 KiB pages); the memory is a private mapping of the file
 * that keeps the file open, so the file must not be modified in place
 * while the memory lives (bgsnap replaces files by rename, which does not
 * affect it; truncating it makes untouched pages raise SIGBUS); and
 * bgsnap_add_region refuses file-backed memory, so memory restored this
 * way cannot be snapshotted again as it is (copy it into anonymous memory
 * first, or restore by copy).
 *
 * `r` is a random-access reader that nothing else uses during the call;
 * the targets follow struct bgsnap_restore_target and must not be touched
 * during the call.  Returns 0, or the errors of bgsnap_restore_reader,
 * -ENOTSUP (BGSNAP_RESTORE_MAP_ONLY and a target that cannot be mapped),
 * -EBADMSG naming the record's offset when a checksum does not match, or
 * the errno of a failed mmap.  On failure the targets are unspecified, as
 * for bgsnap_restore_reader, and may be restored into again.
 */
int bgsnap_restore_map(bgsnap_reader *r, const struct bgsnap_restore_target *targets, unsigned n,
                       unsigned threads, unsigned flags, unsigned *mapped, char *err, size_t err_len);

/*
 * Eager restore from a snapshot arriving as a stream (a reader from
 * bgsnap_reader_open_stream that has not read a record yet; a random-access
 * reader of a file that is not incremental is rewound and read the same
 * way).  Records are taken in the order they come, each checked (checksum,
 * bounds, every page once) by bgsnap_reader_next before its pages are
 * copied into its region's target; the call returns once the INDEX and
 * TRAILER at the end matched.  Targets as for bgsnap_restore_reader (the
 * same checks, nothing outside them is ever written); a target that is
 * fresh private anonymous memory has its zero pages left unpopulated, any
 * other has them written.  One thread, no page cache needed: the data is
 * read once, as it arrives.  The state blobs are then available
 * (bgsnap_reader_state), as after any complete pass.
 *
 * Returns 0, or -EINVAL (bad target, an incremental snapshot: it needs its
 * parents, or a stream already partly read), -EBADMSG (a record is corrupt
 * or the stream ended early: the message from the reader says what and at
 * which offset), -EIO, -ENOMEM.  As for the eager restore of a file, the
 * restore is good only when 0 is returned: on failure the targets hold
 * part of the snapshot (only records that passed their checksum, but not
 * all of them) and must not be used.  The message goes to `err` when not
 * NULL.  The reader is not closed; after a failure it only reports its
 * error.
 */
int bgsnap_restore_stream(bgsnap_reader *r, const struct bgsnap_restore_target *targets, unsigned n, char *err,
                          size_t err_len);

/* A lazy restore in progress. */
typedef struct bgsnap_lazy bgsnap_lazy;

/*
 * Lazy restore: checks the targets, registers them with a userfaultfd for
 * missing-page faults and returns at once; the memory is usable from then
 * on.  `r` is a random-access reader of the snapshot (bgsnap_reader_open),
 * borrowed until bgsnap_lazy_free() returned: meanwhile the caller may only
 * call the metadata functions on it (info, region, find_region, state,
 * find_state, errmsg), never read pages or records, nor close it.  A handler thread serves each first touch of a page that is not in
 * yet (UFFDIO_COPY of a small window around it read from the file through
 * the index, UFFDIO_ZEROPAGE for zero pages); a prefetch thread fills
 * everything else in the background in large runs.  When every page is in,
 * the targets are unregistered and the threads end.
 *
 * Each target must be memory that has never been touched: private
 * anonymous memory (a fresh mmap, or after MADV_DONTNEED), shared memory
 * that is shmem (a memfd, a tmpfs file, MAP_SHARED|MAP_ANONYMOUS: a fresh
 * one, or its pages removed with fallocate(FALLOC_FL_PUNCH_HOLE) or
 * MADV_REMOVE), or hugetlb memory, private or shared (MAP_HUGETLB,
 * memfd_create(MFD_HUGETLB), a hugetlbfs file; 2 MiB or 1 GiB pages, the
 * target aligned to them): a populated page would keep its old content, so
 * the start refuses (-EINVAL) a target with any populated page, and a
 * private file-backed mapping or a shared one that is not shmem or hugetlb
 * (-ENOTSUP, the message says which: restore those eagerly).  In shared
 * memory the pages are allocated in the file, so every mapping of it sees
 * them once restored.  A hugetlb target is filled a whole huge page at a
 * time (one UFFDIO_COPY per fault, read into a buffer of one huge page:
 * for 1 GiB pages the first touch waits for 1 GiB to be read, and the
 * fault handler and the prefetch hold 1 GiB buffers each), and its
 * prefetch reads huge page by huge page through the reader.  The caller
 * must not munmap, mremap or MADV_DONTNEED a target until bgsnap_lazy_wait
 * returned.  Shared memory: until bgsnap_lazy_wait returned, its pages
 * must be accessed only through the target mapping (no other mapping of
 * the file, in this process or another, no read/write/fallocate on its
 * descriptor): such an access brings in a page of zeros that the restore
 * can then no longer fill (the kernel fills only missing pages), and
 * bgsnap_lazy_wait reports it with -EBUSY (the pages hold what that access
 * left, not the snapshot).
 * Needs userfaultfd (-ENOSYS / -EPERM with a message otherwise).
 *
 * fork(): a child gets a copy of the targets without the registration, so
 * a page still missing there would read as zeros.  The library therefore
 * installs pthread_atfork handlers (at the first lazy restore) that make
 * every fork() of the process wait until each running lazy restore has all
 * its pages in (or poisoned), and keep new lazy restores from starting
 * until the fork returned: a child always holds the complete memory, and
 * the fork can take as long as the rest of the restore.  This covers the C
 * library's fork() (bgsnap's fork method included); a raw clone(2)/fork
 * system call without CLONE_VM bypasses it and is not supported while a
 * lazy restore runs.  vfork(), posix_spawn() (and glibc's system() and
 * popen(), built on it) share the memory, served as for any thread.  In a
 * child, the parent's bgsnap_lazy is a copy whose threads are not there:
 * bgsnap_lazy_get_stats, bgsnap_lazy_wait (returns at once) and
 * bgsnap_lazy_free (frees the copy) are safe on it, nothing waits.
 *
 * Failure in the background (a read error, a truncated file, a checksum
 * mismatch): the pages that cannot be restored are poisoned with
 * UFFDIO_POISON (Linux 6.6+) so that any access to them raises SIGBUS
 * (without UFFD_FEATURE_POISON they are made PROT_NONE instead: SIGSEGV);
 * every other page is still restored; no thread ever stays blocked.
 * bgsnap_lazy_wait then returns the error, the stats say how many pages
 * failed, bgsnap_lazy_errmsg says which record and why.
 *
 * Returns 0 and *out, or -errno with the message in `err`; on failure
 * nothing stays registered and *out is NULL.
 */
int bgsnap_lazy_restore_start(bgsnap_lazy **out, bgsnap_reader *r,
                              const struct bgsnap_restore_target *targets, unsigned n,
                              char *err, size_t err_len);

/*
 * Waits until every page is in (or the restore failed) and the targets are
 * unregistered.  Returns 0, or the negative errno of the first background
 * failure (-EBADMSG corrupt or truncated file, -EIO, ...; -EBUSY: pages of
 * a shared target were brought in by something else than the restore).
 */
int bgsnap_lazy_wait(bgsnap_lazy *l);

struct bgsnap_lazy_stats {
	uint64_t usable_us;          /* start call until it returned (usable)  */
	uint64_t total_us;           /* start until every page was in; 0 before */
	uint64_t pages_total;        /* pages in all targets                   */
	uint64_t pages_demand;       /* installed by the fault handler         */
	uint64_t pages_prefetched;   /* installed by the prefetch thread       */
	uint64_t pages_zero;         /* of those, zero pages (UFFDIO_ZEROPAGE) */
	uint64_t pages_failed;       /* could not be restored: poisoned        */
	uint64_t faults;             /* missing-page faults received           */
	int done;                    /* 1 once every page is in (or failed)    */
	int error;                   /* negative errno of the first failure    */
};

/* Copies the current statistics into `out` (`out_size` bytes, as
 * bgsnap_get_stats); safe from any thread while it runs. */
int bgsnap_lazy_get_stats(const bgsnap_lazy *l, struct bgsnap_lazy_stats *out, size_t out_size);

/* Message of the first background failure ("" if none).  Stable once
 * stats.error is non-zero; owned by `l`. */
const char *bgsnap_lazy_errmsg(const bgsnap_lazy *l);

/*
 * Ends the restore and frees it.  If pages are still missing (free before
 * bgsnap_lazy_wait), the background work stops and every missing page is
 * poisoned as on a failure (an access raises SIGBUS, never reads zeros).
 * The target memory stays the caller's.  NULL is ignored.
 */
void bgsnap_lazy_free(bgsnap_lazy *l);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif /* BGSNAP_H */
