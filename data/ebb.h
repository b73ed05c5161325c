/* ebb.h — the EBB! dataset on disk: the index of image pairs and the train/evaluation splits.
 *
 * Layout (SPEC §5, reference-notes §6): ROOT/Training/original/{i}.jpg (wide depth of field,
 * the input) and ROOT/Training/bokeh/{i}.jpg (shallow depth of field, the target), i not
 * zero-padded and sorted numerically; optional ROOT/mask/{i}.png (8-bit gray, 255 = in focus).
 * The synthetic dataset (synth) writes the same layout.
 *
 * Splits, by name:
 *   val294      train 0..4399, evaluate 4400..4693; needs exactly EBB!'s 4694 pairs
 *   tail:K      evaluate the last K pairs, train on the rest (val294 = tail:294 on EBB!)
 *   all         train on everything, no evaluation
 *   list:FILE   lines "train A-B,C,..." and "eval ..." (ranges or single indices; # comments)
 * A training list (BGGAN's cleaned list: one index or "<i>.jpg" per line) may restrict the
 * training set; its entries in the evaluation set are left out of training. Any overlap between
 * the final training and evaluation sets is refused.
 * Not here: reading pixels (image.h) and batching (loader.h).
 */
#ifndef BK_EBB_H
#define BK_EBB_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/error.h"

/* Longest path bokehlab builds for a dataset file; longer roots are refused by bk_ebb_scan. */
enum { BK_PATH_MAX = 1024 };

typedef enum bk_ebb_file { BK_EBB_ORIGINAL = 0, BK_EBB_BOKEH = 1, BK_EBB_MASK = 2 } bk_ebb_file;

typedef struct bk_ebb_index {
    char *root;
    int64_t count;       /* pairs with both files */
    int32_t *ids;        /* their indices, ascending */
    int64_t n_orphans;   /* indices with only one of the two files */
    int32_t *orphans;
    bool *orphan_has_original; /* per orphan: which side exists */
    bool has_mask_dir;
} bk_ebb_index;

/* Lists ROOT/Training/{original,bokeh} (and mask/). Fails if the directories are missing or no
 * pair is found; orphans are recorded, not refused (bk_ebb_validate reports them). */
bk_status bk_ebb_scan(const char *root, bk_ebb_index *out);
void bk_ebb_index_free(bk_ebb_index *ix);
/* Path of one file of pair `id` into buf (len bytes). */
const char *bk_ebb_path(const bk_ebb_index *ix, int32_t id, bk_ebb_file which, char *buf,
                        size_t len);

/* Checks every pair: both files present, both headers decode (the whole image if `decode`),
 * equal sizes; masks (required if need_masks) present, decodable and of the image's size.
 * Writes one line per problem to `report` (may be NULL) naming the index and file; returns the
 * number of problems. */
int64_t bk_ebb_validate(const bk_ebb_index *ix, bool decode, bool need_masks, int64_t max_pixels,
                        FILE *report);

typedef struct bk_ebb_split {
    int64_t n_train, n_eval;
    int32_t *train, *eval; /* ascending */
    char name[256];
} bk_ebb_split;

/* Makes the split `spec` of the pair indices ids[0..n-1] (ascending), optionally restricted by
 * a training list file. */
bk_status bk_ebb_split_make(const int32_t *ids, int64_t n, const char *spec, const char *train_list,
                        bk_ebb_split *out);
void bk_ebb_split_free(bk_ebb_split *s);

#endif
