/* checkpoint.h — the weights / checkpoint file of SPEC §6, for a model.
 *
 * HDF5 (core/h5.h: Fletcher32 datasets, atomic replacement). Root attributes: format
 * "bokehlab-checkpoint", version 1, model, variant, step, epoch, config (the resolved
 * configuration text, "" for bare weights), kernels (the convolution algorithm chosen per
 * geometry and direction, core/conv_choice.h; "" for none). Datasets /params/<name> and /buffers/<name> in
 * PyTorch's layout with the names of params/<model>.tsv. Trainers add /critic/..., /optim/...
 * and their state to the same file (train/). Tools read the model and variant from the file;
 * a file of another model or variant, or with a missing or mis-shaped tensor, is refused with
 * the first offending name.
 */
#ifndef BK_CHECKPOINT_H
#define BK_CHECKPOINT_H

#include "core/h5.h"
#include "models/model.h"

#define BK_CKPT_FORMAT "bokehlab-checkpoint"
#define BK_CKPT_VERSION 1

typedef struct bk_ckpt_meta {
    int64_t step, epoch;
    const char *config;  /* NULL: "" */
    const char *kernels; /* the conv algorithm choices (bk_conv_choices_text); NULL: "" */
} bk_ckpt_meta;

/* Writes the attributes and the model's tensors into an open file. */
bk_status bk_model_write(const bk_model *m, bk_h5 *f, const bk_ckpt_meta *meta);
/* Creates `path` with the model alone (atomically). */
bk_status bk_model_save(const bk_model *m, const char *path, const bk_ckpt_meta *meta);
/* Reads the model name and variant of an open checkpoint, checking its format. */
bk_status bk_ckpt_read_kind(const bk_h5 *f, char *model, size_t model_len, char *variant,
                            size_t variant_len);
/* Loads tensors from an open file into m, refusing another model or variant. */
bk_status bk_model_read(bk_model *m, const bk_h5 *f);
/* Adds the file's convolution algorithm choices (attribute "kernels", if any) to ctx, so the
 * kernels chosen when it was written run again without being timed. */
bk_status bk_ckpt_read_kernels(bk_ctx *ctx, const bk_h5 *f);
/* Creates the model the file holds and loads it (with its kernel choices). */
bk_status bk_model_load(bk_ctx *ctx, const char *path, bk_model **out);

#endif
