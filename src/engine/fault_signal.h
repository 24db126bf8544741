/*
 * fault_signal.h - taking write faults in the faulting thread, through a
 * signal (SIGBUS for uffd-signal, SIGSEGV for mprotect).  Faults outside the
 * tracked regions go to the handler that was installed before ours.  One
 * tracked run per signal per process at a time.
 */
#ifndef BGSNAP_FAULT_SIGNAL_H
#define BGSNAP_FAULT_SIGNAL_H

#include "engine/track.h"

/* Installs our handler for `signo` routing faults to `t`; -EBUSY if another
 * run already owns that signal. */
int fault_signal_install(int signo, struct track *t, struct bgsnap_err *err);
/* Stops routing faults to the track, once its protection is gone; returns
 * once no thread is inside our handler for it.  The handler stays
 * installed (see fault_signal.c) and passes every other fault on. */
void fault_signal_remove(int signo, const struct track *t);

#endif
