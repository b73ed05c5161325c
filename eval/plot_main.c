/* plot — training curves from a run's log.csv as one PNG: the training loss, validation PSNR
 * and validation SSIM against the step, with the input-as-prediction baseline in grey.
 *
 *   plot runs/NAME/log.csv [--out curves.png]        (default: next to the log)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/canvas.h"

enum { MAX_COLS = 32 };

typedef struct series {
    double *x, *y;
    int n;
} series;

typedef struct csv {
    char names[MAX_COLS][32];
    int ncols;
    double *v; /* rows x ncols, NaN for empty */
    int rows;
} csv;

static int col(const csv *c, const char *name) {
    for (int i = 0; i < c->ncols; i++)
        if (!strcmp(c->names[i], name)) return i;
    return -1;
}

static int read_csv(const char *path, csv *c) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[4096];
    memset(c, 0, sizeof *c);
    if (!fgets(line, sizeof line, f)) {
        fclose(f);
        return -1;
    }
    for (char *tok = strtok(line, ",\n"); tok && c->ncols < MAX_COLS; tok = strtok(NULL, ",\n"))
        snprintf(c->names[c->ncols++], 32, "%s", tok);
    int cap = 256;
    c->v = malloc((size_t)cap * MAX_COLS * sizeof *c->v);
    while (fgets(line, sizeof line, f)) {
        if (c->rows == cap) c->v = realloc(c->v, (size_t)(cap *= 2) * MAX_COLS * sizeof *c->v);
        double *row = c->v + (size_t)c->rows * MAX_COLS;
        char *p = line;
        for (int i = 0; i < c->ncols; i++) {
            char *end;
            double d = strtod(p, &end);
            row[i] = end == p ? NAN : d;
            p = strchr(end, ',');
            if (!p) {
                for (int k = i + 1; k < c->ncols; k++) row[k] = NAN;
                break;
            }
            p++;
        }
        c->rows++;
    }
    fclose(f);
    return 0;
}

static series pick(const csv *c, const char *name) {
    series s = {0};
    int j = col(c, name), step = col(c, "step");
    if (j < 0 || step < 0) return s;
    s.x = malloc((size_t)(c->rows + 1) * sizeof *s.x);
    s.y = malloc((size_t)(c->rows + 1) * sizeof *s.y);
    for (int r = 0; r < c->rows; r++) {
        double v = c->v[(size_t)r * MAX_COLS + j];
        if (!isfinite(v)) continue;
        s.x[s.n] = c->v[(size_t)r * MAX_COLS + step];
        s.y[s.n++] = v;
    }
    return s;
}

static const bk_rgb INK = {40, 40, 40}, GRID = {225, 225, 225}, BLUE = {31, 119, 180}, ORANGE = {230, 120, 20},
                    GREY = {150, 150, 150};

/* One panel with up to two series (the second, the baseline, thin and grey). */
static void panel(bk_canvas *cv, int x0, int y0, int w, int h, const char *title, const series *a, const char *la,
                  const series *b, const char *lb) {
    bk_canvas_rect(cv, x0, y0, x0 + w, y0 + h, INK, false);
    bk_canvas_text(cv, x0, y0 - 22, title, INK, 2);
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    const series *all[2] = {a, b};
    for (int k = 0; k < 2; k++)
        for (int i = 0; all[k] && i < all[k]->n; i++) {
            xmin = fmin(xmin, all[k]->x[i]), xmax = fmax(xmax, all[k]->x[i]);
            ymin = fmin(ymin, all[k]->y[i]), ymax = fmax(ymax, all[k]->y[i]);
        }
    if (!isfinite(xmin)) {
        bk_canvas_text(cv, x0 + 20, y0 + h / 2, "no data yet", GREY, 2);
        return;
    }
    if (xmax == xmin) xmax = xmin + 1;
    double pad = (ymax - ymin) * 0.08 + 1e-9;
    ymin -= pad, ymax += pad;
    char label[64];
    for (int t = 0; t <= 4; t++) { /* grid and labels */
        double fy = ymin + (ymax - ymin) * t / 4.0, py = y0 + h - (double)h * t / 4.0;
        bk_canvas_line(cv, x0 + 1, py, x0 + w - 1, py, GRID, 1);
        snprintf(label, sizeof label, "%.4g", fy);
        bk_canvas_text(cv, x0 - bk_canvas_text_width(label, 1) - 4, (int)py - 3, label, INK, 1);
        double fx = xmin + (xmax - xmin) * t / 4.0, px = x0 + (double)w * t / 4.0;
        snprintf(label, sizeof label, "%.0f", fx);
        bk_canvas_text(cv, (int)px - bk_canvas_text_width(label, 1) / 2, y0 + h + 5, label, INK, 1);
    }
    for (int k = 0; k < 2; k++) {
        const series *s = all[k];
        if (!s) continue;
        for (int i = 1; i < s->n; i++) {
            double px0 = x0 + (s->x[i - 1] - xmin) / (xmax - xmin) * w, py0 = y0 + h - (s->y[i - 1] - ymin) / (ymax - ymin) * h;
            double px1 = x0 + (s->x[i] - xmin) / (xmax - xmin) * w, py1 = y0 + h - (s->y[i] - ymin) / (ymax - ymin) * h;
            bk_canvas_line(cv, px0, py0, px1, py1, k ? GREY : (a == s ? BLUE : ORANGE), k ? 1 : 2);
        }
        if (s->n == 1) bk_canvas_rect(cv, (int)(x0 + (s->x[0] - xmin) / (xmax - xmin) * w) - 2,
                                      (int)(y0 + h - (s->y[0] - ymin) / (ymax - ymin) * h) - 2,
                                      (int)(x0 + (s->x[0] - xmin) / (xmax - xmin) * w) + 2,
                                      (int)(y0 + h - (s->y[0] - ymin) / (ymax - ymin) * h) + 2, BLUE, true);
    }
    int ly = y0 + 8;
    if (la) bk_canvas_line(cv, x0 + w - 150, ly + 3, x0 + w - 130, ly + 3, BLUE, 2), bk_canvas_text(cv, x0 + w - 124, ly, la, INK, 1);
    if (lb && b && b->n)
        bk_canvas_line(cv, x0 + w - 150, ly + 15, x0 + w - 130, ly + 15, GREY, 2), bk_canvas_text(cv, x0 + w - 124, ly + 12, lb, INK, 1);
}

int main(int argc, char **argv) {
    const char *log = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (argv[i][0] != '-' && !log) log = argv[i];
        else {
            fprintf(stderr, "usage: plot runs/NAME/log.csv [--out curves.png]\n");
            return 2;
        }
    }
    if (!log) {
        fprintf(stderr, "usage: plot runs/NAME/log.csv [--out curves.png]\n");
        return 2;
    }
    csv c;
    if (read_csv(log, &c) != 0 || col(&c, "step") < 0 || col(&c, "loss") < 0) {
        fprintf(stderr, "plot: %s is not a training log (a log.csv written by train)\n", log);
        return 1;
    }
    char def[1200];
    if (!out) {
        const char *slash = strrchr(log, '/');
        snprintf(def, sizeof def, "%.*scurves.png", slash ? (int)(slash - log + 1) : 0, log);
        out = def;
    }
    series loss = pick(&c, "loss"), vp = pick(&c, "val_psnr"), bp = pick(&c, "base_psnr"), vs = pick(&c, "val_ssim"),
           bs = pick(&c, "base_ssim");
    bk_canvas cv;
    const int W = 1200, H = 420;
    if (bk_canvas_init(&cv, W, H, (bk_rgb){255, 255, 255}) != BK_OK) return 1;
    panel(&cv, 60, 40, 320, 320, "training loss", &loss, "loss", NULL, NULL);
    panel(&cv, 460, 40, 320, 320, "validation PSNR", &vp, "model", &bp, "input");
    panel(&cv, 860, 40, 320, 320, "validation SSIM", &vs, "model", &bs, "input");
    bk_canvas_text(&cv, 60, H - 30, "step", INK, 1);
    if (bk_image_write_png(out, &cv.img) != BK_OK) {
        fprintf(stderr, "plot: %s\n", bk_last_error());
        return 1;
    }
    printf("plot: wrote %s (%d log rows)\n", out, c.rows);
    bk_canvas_free(&cv);
    free(c.v);
    series *ss[] = {&loss, &vp, &bp, &vs, &bs};
    for (int i = 0; i < 5; i++) free(ss[i]->x), free(ss[i]->y);
    return 0;
}
