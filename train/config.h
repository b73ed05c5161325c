/* config.h — training configuration: every key declared once (section, key, type, default,
 * range, help) in BK_CONFIG_KEYS; the struct, the defaults, the INI parser, the
 * --set overrides, the printer (the resolved config saved in runs and checkpoints) and
 * docs/CONFIG.md (train --help-config --markdown) all come from that one table.
 *
 * Unknown sections or keys, values of the wrong type and values out of range are errors that
 * name the file and line (or the --set argument). Paths may be empty; data.root falls back to
 * the BOKEHLAB_EBB environment variable.
 */
#ifndef BK_CONFIG_H
#define BK_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/error.h"

/* X(section, key, type, default, min, max, help). Types: STR (default a string; min/max
 * unused), INT, FLOAT, BOOL (0/1, "true"/"false", "yes"/"no"), ENUM (default and the allowed
 * values "a|b|c" in min). */
#define BK_CONFIG_KEYS(X)                                                                                       \
    X(run, name, STR, "run", 0, 0, "run name: the run directory is <out_dir>/<name>")                          \
    X(run, out_dir, STR, "runs", 0, 0, "directory that holds run directories")                                 \
    X(run, seed, INT, 1, 0, 2147483647, "seed of initialisation, data order, crops, flips and dropout")        \
    X(run, threads, INT, 0, 0, 256, "OpenMP threads (0: OMP_NUM_THREADS or all cores)")                      \
    X(data, root, STR, "", 0, 0, "dataset root in the EBB! layout (empty: $BOKEHLAB_EBB)")                    \
    X(data, split, STR, "val294", 0, 0, "val294, tail:K, all or list:FILE (docs/DATA.md)")                    \
    X(data, train_list, STR, "", 0, 0, "optional list restricting training pairs (configs/lists/)")           \
    X(data, resize_h, INT, 0, 0, 16384, "resize every pair to this height (0: keep)")                         \
    X(data, resize_w, INT, 0, 0, 16384, "resize every pair to this width (0: keep)")                          \
    X(data, crop_h, INT, 0, 0, 16384, "random crop height after resizing (0: none)")                          \
    X(data, crop_w, INT, 0, 0, 16384, "random crop width after resizing (0: none)")                           \
    X(data, hflip, BOOL, 1, 0, 1, "random horizontal flips")                                                  \
    X(data, vflip, BOOL, 0, 0, 1, "random vertical flips")                                                    \
    X(data, workers, INT, 2, 1, 64, "decoding threads")                                                       \
    X(data, prefetch, INT, 4, 1, 64, "batches decoded ahead")                                                 \
    X(data, max_pixels, INT, 64000000, 1, 1000000000, "largest image accepted, in pixels")                    \
    X(model, name, ENUM, "ampn", "dmshn|stacked_dmshn|glassnet|glassnet_c24|ampn", 0, "model to train")      \
    X(model, variant, STR, "", 0, 0, "variant switches, e.g. no_refine,no_g2 (AMPN)")                         \
    X(model, init_from, STR, "", 0, 0, "start from the weights of this checkpoint (same model and variant)")   \
    X(model, init_dmshn, STR, "", 0, 0, "stacked_dmshn: load this DMSHN checkpoint into both halves")         \
    X(train, steps, INT, 1000, 1, 100000000, "optimizer steps to run")                                        \
    X(train, batch, INT, 2, 1, 64, "images per micro-batch, of all MPI ranks together")                       \
    X(train, accum, INT, 1, 1, 1024, "micro-batches accumulated per optimizer step")                          \
    X(train, lr, FLOAT, 1e-4, 0, 1, "learning rate (Adam)")                                                   \
    X(train, beta1, FLOAT, 0.9, 0, 0.999999, "Adam beta1")                                                    \
    X(train, beta2, FLOAT, 0.999, 0, 0.999999, "Adam beta2")                                                  \
    X(train, eps, FLOAT, 1e-8, 0, 1, "Adam epsilon")                                                          \
    X(train, weight_decay, FLOAT, 0, 0, 1, "L2 weight decay (added to the gradient, as torch.optim.Adam)")    \
    X(train, schedule, ENUM, "constant", "constant|step|cosine|linear", 0,                                    \
      "learning-rate schedule: constant; step (x gamma every step_every); cosine or linear to lr_floor")     \
    X(train, step_every, INT, 10000, 1, 100000000, "steps between decays of the step schedule")              \
    X(train, gamma, FLOAT, 0.1, 0, 1, "decay factor of the step schedule")                                    \
    X(train, lr_floor, FLOAT, 0, 0, 1, "smallest learning rate of every schedule")                            \
    X(train, clip_grad_norm, FLOAT, 0, 0, 1e9, "clip the global gradient L2 norm to this (0: off)")           \
    X(train, log_every, INT, 10, 1, 1000000, "steps between log lines and log.csv rows")                      \
    X(train, val_every, INT, 500, 0, 100000000, "steps between validations (0: only at the end)")             \
    X(train, val_max_images, INT, 50, 0, 100000, "evaluation pairs used per validation (0: all)")             \
    X(train, ckpt_every, INT, 500, 1, 100000000, "steps between checkpoints (ckpt/last.h5)")                  \
    X(train, samples, INT, 2, 0, 64, "validation images saved as PNG grids input | mask | output | target")   \
    X(loss, l1, FLOAT, 1, 0, 1e6, "weight of L1")                                                             \
    X(loss, ssim, FLOAT, 0, 0, 1e6, "weight of 1 - SSIM")                                                     \
    X(loss, ms_ssim, FLOAT, 0, 0, 1e6, "weight of 1 - MS-SSIM")                                              \
    X(loss, msssim_mode, ENUM, "standard", "standard|dmshn_compat", 0, "MS-SSIM formula (losses/ssim.h)")     \
    X(loss, lpips, FLOAT, 0, 0, 1e6, "weight of LPIPS (needs lpips_weights)")                                 \
    X(loss, lpips_weights, STR, "", 0, 0, "LPIPS weights file (scripts/convert_lpips.py)")                    \
    X(loss, vgg, FLOAT, 0, 0, 1e6, "weight of the VGG-19 relu5_4 perceptual loss (needs vgg_weights)")        \
    X(loss, vgg_weights, STR, "", 0, 0, "VGG-19 weights file (scripts/convert_vgg19.py)")                     \
    X(loss, adv, FLOAT, 0, 0, 1e6, "weight of the WGAN-GP adversarial loss (BGGAN stage 2; trains the critic)") \
    X(gan, n_critic, INT, 1, 1, 100, "critic updates per generator update")                                   \
    X(gan, lambda_gp, FLOAT, 10, 0, 1e6, "gradient penalty weight")                                           \
    X(gan, lr, FLOAT, 1e-4, 0, 1, "critic learning rate (Adam, constant)")                                    \
    X(gan, beta1, FLOAT, 0, 0, 0.999999, "critic Adam beta1")                                                 \
    X(gan, beta2, FLOAT, 0.9, 0, 0.999999, "critic Adam beta2")

#define BK_CFG_FIELD_STR(s, k) char s##_##k[512];
#define BK_CFG_FIELD_INT(s, k) int64_t s##_##k;
#define BK_CFG_FIELD_FLOAT(s, k) double s##_##k;
#define BK_CFG_FIELD_BOOL(s, k) bool s##_##k;
#define BK_CFG_FIELD_ENUM(s, k) char s##_##k[64];
#define BK_CFG_FIELD_(s, k, type, def, lo, hi, help) BK_CFG_FIELD_##type(s, k)

#define BK_CFG_COUNT_(s, k, type, def, lo, hi, help) +1
enum { BK_CONFIG_NKEYS = 0 BK_CONFIG_KEYS(BK_CFG_COUNT_) };

typedef struct bk_config {
    BK_CONFIG_KEYS(BK_CFG_FIELD_)
    char source[BK_CONFIG_NKEYS][96]; /* where each value came from: "default", FILE:LINE, --set */
} bk_config;

/* Defaults of every key. */
void bk_config_defaults(bk_config *c);
/* Reads an INI file over the current values; the first error names path:line and the key. */
bk_status bk_config_load(bk_config *c, const char *path);
/* The same for an open stream (a file, or text through fmemopen); `origin` names it in
 * messages. */
bk_status bk_config_read(bk_config *c, FILE *f, const char *origin);
/* Applies "section.key=value". */
bk_status bk_config_set(bk_config *c, const char *assignment);
/* The resolved configuration as INI text (every key, with its source as a comment). */
void bk_config_print(const bk_config *c, FILE *f, bool with_sources);
/* The key table: plain text (train --help-config) or markdown (docs/CONFIG.md). */
void bk_config_help(FILE *f, bool markdown);
/* Where a key's value came from ("configs/ampn.ini:12", "--set", "default"). */
const char *bk_config_source(const bk_config *c, const char *section, const char *key);
/* Reads an INI text (e.g. the config stored in a checkpoint) into c. */
bk_status bk_config_parse_text(bk_config *c, const char *text, const char *origin);

/* Any INI file (inih's dialect, lines of any length) with the line of every value: handler returns BK_OK or an
 * error (its message is kept); parsing stops at the first error. Malformed lines are errors
 * naming path:line. */
typedef bk_status (*bk_ini_handler)(void *user, const char *section, const char *key,
                                    const char *value, const char *where);
bk_status bk_ini_parse(const char *path, bk_ini_handler handler, void *user);

#endif
