/* ebb.c — EBB! index scanning, validation and splits (see ebb.h). */
#include "data/ebb.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/image.h"

static const char *const subdir[3] = {"Training/original", "Training/bokeh", "mask"};
static const char *const ext[3] = {"jpg", "jpg", "png"};

const char *bk_ebb_path(const bk_ebb_index *ix, int32_t id, bk_ebb_file which, char *buf,
                        size_t len) {
    snprintf(buf, len, "%s/%s/%d.%s", ix->root, subdir[which], id, ext[which]);
    return buf;
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Parses "<digits>.<ext>" into id; false for anything else. */
static bool parse_name(const char *name, const char *want_ext, int32_t *id) {
    const char *p = name;
    if (!isdigit((unsigned char)*p)) return false;
    if (p[0] == '0' && isdigit((unsigned char)p[1])) return false; /* "007.jpg" is not pair 7 */
    long v = 0;
    while (isdigit((unsigned char)*p)) {
        v = v * 10 + (*p - '0');
        if (v > 100000000) return false;
        p++;
    }
    if (*p != '.' || strcmp(p + 1, want_ext) != 0) return false;
    *id = (int32_t)v;
    return true;
}

/* Sorted ids of "<i>.<ext>" files in dir; *n = -1 if the directory cannot be read. */
static int32_t *list_ids(const char *dir, const char *want_ext, int64_t *n) {
    DIR *d = opendir(dir);
    *n = -1;
    if (!d) return NULL;
    int64_t cap = 1024, len = 0;
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    struct dirent *e;
    while (ids && (e = readdir(d))) {
        int32_t id;
        if (!parse_name(e->d_name, want_ext, &id)) continue;
        if (len == cap) {
            cap *= 2;
            int32_t *grown = realloc(ids, (size_t)cap * sizeof *ids);
            if (!grown) {
                free(ids);
                ids = NULL;
                break;
            }
            ids = grown;
        }
        ids[len++] = id;
    }
    closedir(d);
    BK_CHECK(ids, "out of memory listing %s", dir);
    if (len > 0) qsort(ids, (size_t)len, sizeof *ids, cmp_i32);
    *n = len;
    return ids;
}

bk_status bk_ebb_scan(const char *root, bk_ebb_index *out) {
    memset(out, 0, sizeof *out);
    if (strlen(root) > BK_PATH_MAX - 64)
        return bk_fail(BK_ERR_ARG, "dataset root path is longer than %d characters: %.80s...",
                       BK_PATH_MAX - 64, root);
    char dir[2][BK_PATH_MAX];
    int32_t *side[2];
    int64_t n[2];
    for (int s = 0; s < 2; s++) {
        snprintf(dir[s], sizeof dir[s], "%s/%s", root, subdir[s]);
        side[s] = list_ids(dir[s], ext[s], &n[s]);
        if (n[s] < 0) {
            int e = errno;
            if (s == 1) free(side[0]);
            return bk_fail(BK_ERR_IO,
                           "%s: cannot read the EBB! directory %s: %s (expected "
                           "ROOT/Training/original/{i}.jpg and ROOT/Training/bokeh/{i}.jpg)",
                           root, dir[s], strerror(e));
        }
    }
    out->root = strdup(root);
    out->ids = malloc((size_t)(n[0] < n[1] ? n[0] : n[1]) * sizeof *out->ids + 4);
    out->orphans = malloc((size_t)(n[0] + n[1]) * sizeof *out->orphans + 4);
    out->orphan_has_original = malloc((size_t)(n[0] + n[1]) * sizeof(bool) + 4);
    BK_CHECK(out->root && out->ids && out->orphans && out->orphan_has_original, "out of memory");
    int64_t i = 0, j = 0;
    while (i < n[0] || j < n[1]) {
        if (j >= n[1] || (i < n[0] && side[0][i] < side[1][j])) {
            out->orphan_has_original[out->n_orphans] = true;
            out->orphans[out->n_orphans++] = side[0][i++];
        } else if (i >= n[0] || side[1][j] < side[0][i]) {
            out->orphan_has_original[out->n_orphans] = false;
            out->orphans[out->n_orphans++] = side[1][j++];
        } else {
            out->ids[out->count++] = side[0][i];
            i++, j++;
        }
    }
    free(side[0]);
    free(side[1]);
    char mdir[BK_PATH_MAX];
    struct stat st;
    snprintf(mdir, sizeof mdir, "%s/%s", root, subdir[BK_EBB_MASK]);
    out->has_mask_dir = stat(mdir, &st) == 0 && S_ISDIR(st.st_mode);
    if (out->count == 0) {
        bk_ebb_index_free(out);
        return bk_fail(BK_ERR_FORMAT, "%s: no image pairs {i}.jpg found in %s and %s", root,
                       dir[0], dir[1]);
    }
    return BK_OK;
}

void bk_ebb_index_free(bk_ebb_index *ix) {
    free(ix->root);
    free(ix->ids);
    free(ix->orphans);
    free(ix->orphan_has_original);
    memset(ix, 0, sizeof *ix);
}

int64_t bk_ebb_validate(const bk_ebb_index *ix, bool decode, bool need_masks, int64_t max_pixels,
                        FILE *report) {
    int64_t problems = 0;
    char path[3][BK_PATH_MAX];
    for (int64_t k = 0; k < ix->n_orphans; k++) {
        int32_t id = ix->orphans[k];
        bk_ebb_file missing = ix->orphan_has_original[k] ? BK_EBB_BOKEH : BK_EBB_ORIGINAL;
        if (report)
            fprintf(report, "index %d: missing %s (its pair %s exists)\n", id,
                    bk_ebb_path(ix, id, missing, path[0], sizeof path[0]),
                    bk_ebb_path(ix, id, 1 - missing, path[1], sizeof path[1]));
        problems++;
    }
    for (int64_t k = 0; k < ix->count; k++) {
        int32_t id = ix->ids[k];
        bk_image_info info[3];
        bool ok[3] = {true, true, true};
        int nfiles = (need_masks || ix->has_mask_dir) ? 3 : 2;
        for (int s = 0; s < nfiles; s++) {
            bk_ebb_path(ix, id, (bk_ebb_file)s, path[s], sizeof path[s]);
            if (s == BK_EBB_MASK && !need_masks) {
                struct stat st;
                if (stat(path[s], &st) != 0) { /* masks are optional unless needed */
                    ok[s] = false;
                    continue;
                }
            }
            bk_status st;
            if (decode) {
                bk_image img;
                st = bk_image_read(path[s], s == BK_EBB_MASK ? 1 : 3, max_pixels, &img);
                if (st == BK_OK) {
                    info[s].width = img.width, info[s].height = img.height;
                    bk_image_free(&img);
                }
            } else {
                st = bk_image_read_info(path[s], &info[s]);
                if (st == BK_OK) {
                    int64_t limit = max_pixels > 0 ? max_pixels : BK_IMAGE_DEFAULT_MAX_PIXELS;
                    if ((int64_t)info[s].width * info[s].height > limit)
                        st = bk_fail(BK_ERR_SHAPE, "%s: %dx%d is above the limit of %.1f MP",
                                     path[s], info[s].width, info[s].height, limit / 1e6);
                }
            }
            if (st != BK_OK) {
                if (report) fprintf(report, "index %d: %s\n", id, bk_last_error());
                problems++;
                ok[s] = false;
            }
        }
        if (ok[0] && ok[1] && (info[0].width != info[1].width || info[0].height != info[1].height)) {
            if (report)
                fprintf(report, "index %d: size mismatch: %s is %dx%d, %s is %dx%d\n", id, path[0],
                        info[0].width, info[0].height, path[1], info[1].width, info[1].height);
            problems++;
        }
        if (nfiles == 3 && ok[0] && ok[2] &&
            (info[2].width != info[0].width || info[2].height != info[0].height)) {
            if (report)
                fprintf(report, "index %d: mask %s is %dx%d, its image is %dx%d\n", id, path[2],
                        info[2].width, info[2].height, info[0].width, info[0].height);
            problems++;
        }
    }
    return problems;
}

/* ---------------------------------------------------------------- splits */

static bool contains(const int32_t *ids, int64_t n, int32_t id) {
    return n > 0 && bsearch(&id, ids, (size_t)n, sizeof *ids, cmp_i32) != NULL;
}

/* Growable list of ids. */
typedef struct id_list {
    int32_t *v;
    int64_t n, cap;
} id_list;

static void list_add(id_list *l, int32_t id) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->v = realloc(l->v, (size_t)l->cap * sizeof *l->v);
        BK_CHECK(l->v, "out of memory");
    }
    l->v[l->n++] = id;
}

/* Sorts and removes duplicates. */
static void list_finish(id_list *l) {
    if (l->n == 0) return;
    qsort(l->v, (size_t)l->n, sizeof *l->v, cmp_i32);
    int64_t k = 0;
    for (int64_t i = 0; i < l->n; i++)
        if (k == 0 || l->v[i] != l->v[k - 1]) l->v[k++] = l->v[i];
    l->n = k;
}

/* Parses "A-B,C,..." into the list, checking every id is in the index. */
static bk_status parse_ranges(const char *file, int line, const char *s, const int32_t *ids,
                              int64_t n, id_list *l) {
    const char *p = s;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        if (!*p || *p == '\n' || *p == '#') break;
        char *end;
        long a = strtol(p, &end, 10), b = a;
        if (end == p || a < 0)
            return bk_fail(BK_ERR_FORMAT, "%s:%d: expected an index or a range A-B at \"%.20s\"",
                           file, line, p);
        p = end;
        if (*p == '-') {
            b = strtol(p + 1, &end, 10);
            if (end == p + 1 || b < a)
                return bk_fail(BK_ERR_FORMAT, "%s:%d: bad range ending at \"%.20s\"", file, line, p);
            p = end;
        }
        for (long id = a; id <= b; id++) {
            if (!contains(ids, n, (int32_t)id))
                return bk_fail(BK_ERR_ARG, "%s:%d: index %ld is not a pair of the dataset", file,
                               line, id);
            list_add(l, (int32_t)id);
        }
    }
    return BK_OK;
}

static bk_status read_list_file(const char *path, const int32_t *ids, int64_t n, id_list *train,
                                id_list *eval) {
    FILE *f = fopen(path, "r");
    if (!f) return bk_fail(BK_ERR_IO, "split list %s: cannot open: %s", path, strerror(errno));
    char buf[65536];
    int line = 0;
    bk_status st = BK_OK;
    while (st == BK_OK && fgets(buf, sizeof buf, f)) {
        line++;
        char *p = buf;
        while (*p == ' ' || *p == '\t') p++;
        if (*p == '#' || *p == '\n' || *p == '\0') continue;
        if (strncmp(p, "train", 5) == 0 && (p[5] == ' ' || p[5] == '\t'))
            st = parse_ranges(path, line, p + 5, ids, n, train);
        else if (strncmp(p, "eval", 4) == 0 && (p[4] == ' ' || p[4] == '\t'))
            st = parse_ranges(path, line, p + 4, ids, n, eval);
        else
            st = bk_fail(BK_ERR_FORMAT, "%s:%d: a line must start with \"train\" or \"eval\"",
                         path, line);
    }
    fclose(f);
    return st;
}

/* A training list: one entry per line, "<i>" or "<i>.<ext>". */
static bk_status read_train_list(const char *path, id_list *l) {
    FILE *f = fopen(path, "r");
    if (!f) return bk_fail(BK_ERR_IO, "training list %s: cannot open: %s", path, strerror(errno));
    char buf[1024];
    int line = 0;
    while (fgets(buf, sizeof buf, f)) {
        line++;
        char *p = buf;
        while (*p == ' ' || *p == '\t') p++;
        if (*p == '#' || *p == '\n' || *p == '\0') continue;
        char *end;
        long id = strtol(p, &end, 10);
        if (end == p || id < 0 || (*end && *end != '.' && *end != '\n' && *end != ' ' && *end != '\r')) {
            fclose(f);
            return bk_fail(BK_ERR_FORMAT, "%s:%d: expected an index like 12 or 12.jpg", path, line);
        }
        list_add(l, (int32_t)id);
    }
    fclose(f);
    list_finish(l);
    return BK_OK;
}

bk_status bk_ebb_split_make(const int32_t *ids, int64_t n, const char *spec, const char *train_list,
                        bk_ebb_split *out) {
    memset(out, 0, sizeof *out);
    if (n < 1) return bk_fail(BK_ERR_ARG, "split %s of a dataset without pairs", spec);
    id_list train = {0}, eval = {0};
    bk_status st = BK_OK;
    if (strcmp(spec, "val294") == 0) {
        bool exact = n == 4694 && ids[0] == 0 && ids[n - 1] == 4693;
        if (!exact)
            return bk_fail(BK_ERR_ARG,
                           "split val294 needs EBB!'s 4694 pairs 0..4693, the dataset has %lld "
                           "(%d..%d); use tail:K for other datasets",
                           (long long)n, ids[0], ids[n - 1]);
        for (int64_t i = 0; i < n; i++) list_add(ids[i] < 4400 ? &train : &eval, ids[i]);
    } else if (strncmp(spec, "tail:", 5) == 0) {
        char *end;
        long k = strtol(spec + 5, &end, 10);
        if (end == spec + 5 || *end || k < 1 || k >= n)
            return bk_fail(BK_ERR_ARG, "split %s: K must be a number from 1 to %lld (the dataset "
                           "has %lld pairs)", spec, (long long)(n - 1), (long long)n);
        for (int64_t i = 0; i < n; i++) list_add(i < n - k ? &train : &eval, ids[i]);
    } else if (strcmp(spec, "all") == 0) {
        for (int64_t i = 0; i < n; i++) list_add(&train, ids[i]);
    } else if (strncmp(spec, "list:", 5) == 0) {
        st = read_list_file(spec + 5, ids, n, &train, &eval);
    } else {
        return bk_fail(BK_ERR_ARG, "unknown split \"%s\": use val294, tail:K, all or list:FILE", spec);
    }
    if (st != BK_OK) goto fail;
    list_finish(&train);
    list_finish(&eval);

    int64_t overlap = 0, first = -1;
    for (int64_t i = 0; i < train.n; i++)
        if (contains(eval.v, eval.n, train.v[i])) {
            if (first < 0) first = train.v[i];
            overlap++;
        }
    if (overlap) {
        st = bk_fail(BK_ERR_ARG, "split %s: %lld indices are both in training and in evaluation "
                     "(the first is %lld); the two sets must not overlap",
                     spec, (long long)overlap, (long long)first);
        goto fail;
    }
    snprintf(out->name, sizeof out->name, "%s", spec);
    if (train_list) {
        id_list keep = {0}, listed = {0};
        if ((st = read_train_list(train_list, &listed)) != BK_OK) {
            free(listed.v);
            goto fail;
        }
        for (int64_t i = 0; i < train.n; i++)
            if (contains(listed.v, listed.n, train.v[i])) list_add(&keep, train.v[i]);
        free(listed.v);
        free(train.v);
        train = keep;
        snprintf(out->name, sizeof out->name, "%s, training restricted to %s", spec, train_list);
    }
    if (train.n == 0 && strcmp(spec, "all") != 0 && train_list == NULL) {
        st = bk_fail(BK_ERR_ARG, "split %s leaves no pair for training", spec);
        goto fail;
    }
    out->train = train.v, out->n_train = train.n;
    out->eval = eval.v, out->n_eval = eval.n;
    return BK_OK;
fail:
    free(train.v);
    free(eval.v);
    return st;
}

void bk_ebb_split_free(bk_ebb_split *s) {
    free(s->train);
    free(s->eval);
    memset(s, 0, sizeof *s);
}
