/* trainer.h — `train`: one training loop for every recipe of SPEC §5, driven by a config.
 *
 * A step: zero gradients; for each of train.accum micro-batches: a training-mode forward, the
 * weighted loss terms (L1, 1-SSIM, 1-MS-SSIM, LPIPS, VGG, and with loss.adv the WGAN-GP
 * generator term after gan.n_critic critic updates on the same batch), backward scaled by
 * 1/accum; then a finite check (a non-finite loss or gradient skips the step and logs every
 * term; three in a row stop the run naming the step), global-norm clipping, one Adam step at
 * the schedule's rate. Every randomness (data order, crops, flips, dropout, the penalty's
 * alpha) is drawn from (seed, step), so resuming from a checkpoint continues bit-exactly.
 *
 * A run directory <out_dir>/<name>/ holds config.ini (the resolved config), log.csv, ckpt/
 * (last.h5, best.h5 by validation PSNR; written atomically: temp file, fsync, rename) and
 * samples/ (PNG grids input | mask | output | target). Ctrl-C (SIGINT/SIGTERM) finishes the
 * step, writes ckpt/last.h5 and returns. A write that fails (a checkpoint, log.csv,
 * config.ini) stops the run naming the file and the error; a sample that cannot be written is
 * a warning. Resuming drops the rows of log.csv after the checkpoint's step (train/runlog.h).
 * docs/GUARANTEES.md says what holds when things go wrong.
 */
#ifndef BK_TRAINER_H
#define BK_TRAINER_H

#include "core/error.h"
#include "train/config.h"

typedef struct bk_train_options {
    const char *config_path;   /* NULL with resume: the checkpoint's own config */
    const char *const *sets;   /* "section.key=value" overrides */
    int n_sets;
    const char *resume;        /* checkpoint to continue from, or NULL */
    bool progress;             /* a progress bar (default: when stderr is a terminal) */
} bk_train_options;

typedef struct bk_train_result {
    int64_t steps_done;
    bool interrupted;
    double val_psnr, val_ssim, val_lpips;      /* last validation (NaN if none) */
    double base_psnr, base_ssim;               /* input vs target on the same images */
    double first_loss, last_loss;              /* mean over the first and last log window */
    char run_dir[1024];
} bk_train_result;

bk_status bk_train(const bk_train_options *o, bk_train_result *r);

#endif
