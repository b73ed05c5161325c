/* conv_choice.c — the per-geometry algorithm decisions (see conv_choice.h). */
#include "core/conv_choice.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct choice {
    bk_conv_geom g;
    int8_t algo[BK_CONV_DIRS];
    double seconds[BK_CONV_DIRS][2]; /* timings behind a decision made here; 0: none */
} choice;

struct bk_conv_choices {
    choice *v;
    size_t n, cap;
};

static const char *const DIR_NAME[BK_CONV_DIRS] = {"fwd", "bwd_data", "bwd_weights"};
static const char *const ALGO_NAME[2] = {"direct", "winograd"};

const char *bk_conv_algo_name(int algo) {
    return algo == BK_CONV_DIRECT ? "direct" : algo == BK_CONV_WINOGRAD ? "winograd" : "-";
}

bk_status bk_conv_policy_from_env(bk_ctx *ctx) {
    const char *v = getenv("BOKEHLAB_CONV_ALGO");
    ctx->conv_policy = BK_CONV_UNDECIDED;
    if (!v || !*v || strcmp(v, "auto") == 0) return BK_OK;
    for (int a = 0; a < 2; a++)
        if (strcmp(v, ALGO_NAME[a]) == 0) {
            ctx->conv_policy = a;
            return BK_OK;
        }
    return bk_fail(BK_ERR_ARG, "BOKEHLAB_CONV_ALGO='%s': expected auto, direct or winograd", v);
}

bool bk_conv_winograd_fits(const bk_conv_geom *g) {
    return !g->transposed && g->groups == 1 && g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1 &&
           g->pt <= 1 && g->pl <= 1 && g->pb <= 1 && g->pr <= 1;
}

static choice *find(const bk_ctx *ctx, const bk_conv_geom *g) {
    const struct bk_conv_choices *c = ctx->conv_choices;
    if (!c) return NULL;
    for (size_t i = 0; i < c->n; i++)
        if (memcmp(&c->v[i].g, g, sizeof *g) == 0) return &c->v[i];
    return NULL;
}

static choice *find_or_add(bk_ctx *ctx, const bk_conv_geom *g) {
    choice *e = find(ctx, g);
    if (e) return e;
    if (!ctx->conv_choices) {
        ctx->conv_choices = calloc(1, sizeof *ctx->conv_choices);
        BK_CHECK(ctx->conv_choices, "out of memory");
    }
    struct bk_conv_choices *c = ctx->conv_choices;
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 16;
        c->v = realloc(c->v, c->cap * sizeof *c->v);
        BK_CHECK(c->v, "out of memory");
    }
    e = &c->v[c->n++];
    memset(e, 0, sizeof *e);
    e->g = *g;
    for (int d = 0; d < BK_CONV_DIRS; d++) e->algo[d] = BK_CONV_UNDECIDED;
    return e;
}

int bk_conv_choice_get(const bk_ctx *ctx, const bk_conv_geom *g, double macs, int dir) {
    if (!bk_conv_winograd_fits(g)) return BK_CONV_DIRECT;
    if (ctx->conv_policy != BK_CONV_UNDECIDED) return ctx->conv_policy;
    const choice *e = find(ctx, g);
    if (e && e->algo[dir] != BK_CONV_UNDECIDED) return e->algo[dir];
    if (macs < BK_CONV_TUNE_MIN_MACS) return BK_CONV_DIRECT;
    return BK_CONV_UNDECIDED;
}

void bk_conv_choice_put(bk_ctx *ctx, const bk_conv_geom *g, int dir, int algo, const double *seconds) {
    choice *e = find_or_add(ctx, g);
    e->algo[dir] = (int8_t)algo;
    if (seconds) memcpy(e->seconds[dir], seconds, sizeof e->seconds[dir]);
}

static int geom_text(const bk_conv_geom *g, char *buf, size_t len) {
    return snprintf(buf, len, "conv2d %lldx%lldx%lldx%lld -> %lld k%dx%d s%dx%d p%d,%d,%d,%d g%d",
                    (long long)g->n, (long long)g->ic, (long long)g->ih, (long long)g->iw, (long long)g->oc,
                    g->kh, g->kw, g->sh, g->sw, g->pt, g->pl, g->pb, g->pr, g->groups);
}

char *bk_conv_choices_text(const bk_ctx *ctx) {
    const struct bk_conv_choices *c = ctx->conv_choices;
    size_t n = c ? c->n : 0, cap = n * 160 + 1, used = 0;
    char *s = malloc(cap);
    BK_CHECK(s, "out of memory");
    s[0] = 0;
    for (size_t i = 0; i < n; i++) {
        const choice *e = &c->v[i];
        used += (size_t)geom_text(&e->g, s + used, cap - used);
        used += (size_t)snprintf(s + used, cap - used, ": fwd=%s bwd_data=%s bwd_weights=%s\n",
                                 bk_conv_algo_name(e->algo[0]), bk_conv_algo_name(e->algo[1]),
                                 bk_conv_algo_name(e->algo[2]));
    }
    return s;
}

static int parse_algo(const char *word) {
    if (strcmp(word, "-") == 0) return BK_CONV_UNDECIDED;
    for (int a = 0; a < 2; a++)
        if (strcmp(word, ALGO_NAME[a]) == 0) return a;
    return -2;
}

bk_status bk_conv_choices_parse(bk_ctx *ctx, const char *text, const char *origin) {
    if (strcmp(text, "direct") == 0 || !*text) return BK_OK;
    int line_no = 0;
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        line_no++;
        char buf[256], a[3][32];
        bk_conv_geom g;
        memset(&g, 0, sizeof g);
        long long n, ic, ih, iw, oc;
        int used = 0;
        bool ok = len < sizeof buf;
        if (ok) {
            memcpy(buf, line, len);
            buf[len] = 0;
            ok = sscanf(buf,
                        "conv2d %lldx%lldx%lldx%lld -> %lld k%dx%d s%dx%d p%d,%d,%d,%d g%d: fwd=%31s "
                        "bwd_data=%31s bwd_weights=%31s%n",
                        &n, &ic, &ih, &iw, &oc, &g.kh, &g.kw, &g.sh, &g.sw, &g.pt, &g.pl, &g.pb, &g.pr,
                        &g.groups, a[0], a[1], a[2], &used) == 17 &&
                 (size_t)used == len;
        }
        if (ok) {
            g.n = n, g.ic = ic, g.ih = ih, g.iw = iw, g.oc = oc;
            ok = g.n > 0 && g.ic > 0 && g.ih > 0 && g.iw > 0 && g.oc > 0 && g.sh > 0 && g.sw > 0 &&
                 g.kh > 0 && g.kw > 0 && g.groups > 0;
        }
        if (ok) {
            g.oh = (g.ih + g.pt + g.pb - g.kh) / g.sh + 1;
            g.ow = (g.iw + g.pl + g.pr - g.kw) / g.sw + 1;
            int algo[BK_CONV_DIRS];
            for (int d = 0; d < BK_CONV_DIRS && ok; d++) {
                algo[d] = parse_algo(a[d]);
                ok = algo[d] >= BK_CONV_UNDECIDED && (algo[d] != BK_CONV_WINOGRAD || bk_conv_winograd_fits(&g));
            }
            if (ok) {
                choice *e = find_or_add(ctx, &g);
                for (int d = 0; d < BK_CONV_DIRS; d++)
                    if (algo[d] != BK_CONV_UNDECIDED) e->algo[d] = (int8_t)algo[d];
            }
        }
        if (!ok)
            return bk_fail(BK_ERR_FORMAT, "%s: kernel choice line %d is malformed: '%.*s'", origin, line_no,
                           (int)(len > 120 ? 120 : len), line);
        line += len + (end ? 1 : 0);
    }
    return BK_OK;
}

void bk_conv_choices_print(const bk_ctx *ctx, void *file) {
    FILE *f = file;
    const struct bk_conv_choices *c = ctx->conv_choices;
    for (size_t i = 0; c && i < c->n; i++) {
        const choice *e = &c->v[i];
        char g[160];
        geom_text(&e->g, g, sizeof g);
        fprintf(f, "  kernels %-48s", g);
        for (int d = 0; d < BK_CONV_DIRS; d++) {
            fprintf(f, " %s=%s", DIR_NAME[d], bk_conv_algo_name(e->algo[d]));
            if (e->seconds[d][0] > 0)
                fprintf(f, "(%.1f/%.1f ms)", 1e3 * e->seconds[d][0], 1e3 * e->seconds[d][1]);
        }
        fputc('\n', f);
    }
}

void bk_conv_choices_free(bk_ctx *ctx) {
    if (!ctx->conv_choices) return;
    free(ctx->conv_choices->v);
    free(ctx->conv_choices);
    ctx->conv_choices = NULL;
}
