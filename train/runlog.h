/* runlog.h — the run's log.csv as a resumed run finds it.
 *
 * A run that stopped between checkpoints (kill -9, a write error, a power cut) may have logged
 * steps after its last checkpoint, and its last row may be cut short. Resuming redoes those
 * steps exactly (trainer.h), so their rows are dropped first: the log then holds every step
 * once, in order, as an uninterrupted run's does.
 */
#ifndef BK_RUNLOG_H
#define BK_RUNLOG_H

#include <stdint.h>

#include "core/error.h"

/* Drops the rows of log.csv `path` whose step is after `step`, and an unfinished last line;
 * the file is replaced atomically, and only if something is dropped (*dropped: how many). A
 * missing file is fine. */
bk_status bk_runlog_trim(const char *path, int64_t step, int *dropped);

#endif
