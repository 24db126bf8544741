/*
 * thp.h - transparent huge pages kept whole across a snapshot.
 *
 * Removing write protection from part of a huge page (uffd, uffd-signal,
 * mprotect), or a copy-on-write fault on one (fork), splits it into 4 KiB
 * entries, and nothing merges them back soon (khugepaged scans slowly): a
 * host that ran on huge pages runs on small ones after the snapshot, which
 * on a virtual machine with nested paging costs it a large part of its
 * speed for good.  So before the pause thp_survey notes which regions are
 * mostly huge pages, and once the snapshot is over thp_recollapse asks the
 * kernel to rebuild them (MADV_COLLAPSE, Linux 6.1+; best effort: refused
 * or failed collapses leave the memory as it was, only slower).
 */
#ifndef BGSNAP_ENGINE_THP_H
#define BGSNAP_ENGINE_THP_H

struct bgsnap_engine;

/* Sets regions[i].huge for every region (from /proc/self/smaps). */
void thp_survey(struct bgsnap_engine *e);
/* Collapses the 2 MiB blocks of every region marked huge; clears marks. */
void thp_recollapse(struct bgsnap_engine *e);

#endif
