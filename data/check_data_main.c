/* check-data — validates an EBB!-layout dataset root before training on it.
 *
 *   check-data ROOT [--split SPEC] [--train-list FILE] [--masks] [--decode] [--max-pixels N]
 *
 * Checks every pair (both files present, both headers decode, equal sizes; masks present when
 * --masks, and of the image's size when present), prints one line per problem naming the index
 * and file, then a summary (pairs, sizes, masks, the split's sizes). --decode decodes every
 * image completely (catches truncated and corrupt pixel data; slower). Exits 1 if anything is
 * wrong, 2 on bad arguments. The trainers run the same validation at start-up.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/ebb.h"
#include "data/image.h"

static void usage(void) {
    fprintf(stderr, "usage: check-data ROOT [--split SPEC] [--train-list FILE] [--masks] [--decode] "
                    "[--max-pixels N]\n"
                    "  SPEC: val294, tail:K, all or list:FILE\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *root = NULL, *split = NULL, *train_list = NULL;
    bool masks = false, decode = false;
    long long max_pixels = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--split") && i + 1 < argc) split = argv[++i];
        else if (!strcmp(argv[i], "--train-list") && i + 1 < argc) train_list = argv[++i];
        else if (!strcmp(argv[i], "--masks")) masks = true;
        else if (!strcmp(argv[i], "--decode")) decode = true;
        else if (!strcmp(argv[i], "--max-pixels") && i + 1 < argc) {
            char *end;
            max_pixels = strtoll(argv[++i], &end, 10);
            if (*end || max_pixels <= 0) usage();
        } else if (argv[i][0] == '-' || root) usage();
        else root = argv[i];
    }
    if (!root) usage();

    bk_ebb_index ix;
    if (bk_ebb_scan(root, &ix) != BK_OK) {
        fprintf(stderr, "check-data: %s\n", bk_last_error());
        return 1;
    }
    int64_t problems = bk_ebb_validate(&ix, decode, masks, max_pixels, stdout);

    /* summary: sizes and masks */
    int min_w = 1 << 30, max_w = 0, min_h = 1 << 30, max_h = 0;
    int64_t n_masks = 0;
    char path[BK_PATH_MAX];
    for (int64_t k = 0; k < ix.count; k++) {
        bk_image_info info;
        if (bk_image_read_info(bk_ebb_path(&ix, ix.ids[k], BK_EBB_ORIGINAL, path, sizeof path), &info) == BK_OK) {
            if (info.width < min_w) min_w = info.width;
            if (info.width > max_w) max_w = info.width;
            if (info.height < min_h) min_h = info.height;
            if (info.height > max_h) max_h = info.height;
        }
        FILE *f = fopen(bk_ebb_path(&ix, ix.ids[k], BK_EBB_MASK, path, sizeof path), "rb");
        if (f) {
            n_masks++;
            fclose(f);
        }
    }
    printf("%s: %lld pairs (indices %d..%d), %lld with masks", root, (long long)ix.count, ix.ids[0],
           ix.ids[ix.count - 1], (long long)n_masks);
    if (max_w) printf(", widths %d..%d, heights %d..%d", min_w, max_w, min_h, max_h);
    printf("%s\n", decode ? ", every image decoded" : ", headers checked");
    int status = problems ? 1 : 0;
    if (split) {
        bk_ebb_split s;
        if (bk_ebb_split_make(ix.ids, ix.count, split, train_list, &s) != BK_OK) {
            printf("split: %s\n", bk_last_error());
            status = 1;
        } else {
            printf("split %s: %lld training pairs, %lld evaluation pairs\n", s.name,
                   (long long)s.n_train, (long long)s.n_eval);
            bk_ebb_split_free(&s);
        }
    }
    if (problems) printf("%lld problems found\n", (long long)problems);
    else printf("no problems found\n");
    bk_ebb_index_free(&ix);
    return status;
}
