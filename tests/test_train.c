/* test_train.c — the trainers (train/trainer.h) on tiny synthetic datasets (data/synth.h):
 *
 *  - 20-step runs of every recipe: AMPN (10 L1 + SSIM), AMPN external_mask, DMSHN stage 1
 *    (L1 + 0.1 SSIM), DMSHN stage 2 (MS-SSIM dmshn_compat from stage 1 via model.init_from),
 *    Stacked DMSHN (model.init_dmshn), BGGAN stage 1 (Glass-Net on crops in [-1,1]) and stage 2
 *    (with the WGAN-GP critic): each finishes and writes config.ini, log.csv, ckpt/last.h5,
 *    ckpt/best.h5, samples/ PNGs, and its loss falls between the first and last log window;
 *  - resuming is bit-exact: N steps + N resumed steps == 2N steps, for every parameter, buffer
 *    and optimizer moment (AMPN: batch-norm statistics and Adam; BGGAN stage 2: the critic and
 *    both optimizers);
 *  - checkpoints are atomic: `train` killed with SIGKILL at random moments of a run that writes
 *    a checkpoint every step always leaves a loadable ckpt/last.h5; a failing write names the
 *    file and leaves the previous checkpoint intact;
 *  - the NaN guard (an absurd learning rate): non-finite steps are skipped and logged, three in
 *    a row stop the run naming the step;
 *  - Ctrl-C: exit status 130, "interrupted", and a last.h5 at the step reported;
 *  - configuration errors surface through `train` with file:line, the converter to run, the
 *    missing dataset root, the MS-SSIM minimum size.
 * Images are tiny (64x64; AMPN 128x128, its smallest size) and runs short: the whole binary
 * takes a few minutes at 2 threads. BK_TEST_KEEP=1 keeps the temporary directories. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/h5.h"
#include "data/image.h"
#include "data/synth.h"
#include "models/checkpoint.h"
#include "models/model.h"
#include "tests/support/harness.h"
#include "train/config.h"
#include "train/trainer.h"

/* ---------------------------------------------------------------- helpers */

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) {
        printf("    cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
    fputs(text, f);
    fclose(f);
}

static bool exists(const char *path) { return access(path, F_OK) == 0; }

/* The last `lines` lines of a file, indented (for failure reports). */
static void print_tail(const char *path, int lines) {
    char *t = bk_test_read_file(path, NULL);
    if (!t) return;
    size_t n = strlen(t);
    const char *p = t + n;
    for (int k = 0; p > t && k <= lines; p--)
        if (p[-1] == '\n') k++;
    printf("    --- %s (end)\n", path);
    for (const char *line = p; *line;) {
        const char *nl = strchr(line, '\n');
        int len = nl ? (int)(nl - line) : (int)strlen(line);
        printf("    | %.*s\n", len, line);
        line += len + (nl ? 1 : 0);
    }
    free(t);
}

/* A temporary directory with a synthetic dataset in ROOT = DIR/ebb. */
typedef struct env {
    char dir[64];
    char root[128];
    char train_bin[PATH_MAX];
} env;

static void locate_train(env *e) {
    char exe[PATH_MAX / 2];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    e->train_bin[0] = '\0';
    if (n <= 0) return;
    exe[n] = '\0';
    char *build = dirname(dirname(exe)); /* .../build/tests/test_train -> .../build */
    snprintf(e->train_bin, sizeof e->train_bin, "%s/bin/train", build);
    if (access(e->train_bin, X_OK) == 0) return;
    /* a sanitizer build without its programs: the regular build's */
    char root[PATH_MAX / 2];
    snprintf(root, sizeof root, "%s", build);
    snprintf(e->train_bin, sizeof e->train_bin, "%s/build/bin/train", dirname(root));
    if (access(e->train_bin, X_OK) != 0) e->train_bin[0] = '\0';
}

static void env_open(env *e, int count, int height) {
    memset(e, 0, sizeof *e);
    snprintf(e->dir, sizeof e->dir, "/tmp/bk_train_XXXXXX");
    if (!mkdtemp(e->dir)) {
        printf("    mkdtemp: %s\n", strerror(errno));
        exit(1);
    }
    snprintf(e->root, sizeof e->root, "%s/ebb", e->dir);
    if (count > 0 && bk_synth_write(e->root, 0, count, height, 7, 0) != BK_OK) {
        printf("    synthetic dataset: %s\n", bk_last_error());
        exit(1);
    }
    locate_train(e);
}

static void env_close(env *e) {
    const char *keep = getenv("BK_TEST_KEEP");
    if (keep && *keep && *keep != '0') {
        printf("    kept %s\n", e->dir);
        return;
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", e->dir);
    if (system(cmd) != 0) printf("    could not remove %s\n", e->dir);
}

/* Writes DIR/<name>.ini: run name and out_dir (DIR/runs), the dataset root and split tail:2,
 * then `body` (sections may repeat). Returns the path in `path`. */
static void write_config(const env *e, const char *name, const char *body, char *path, size_t len) {
    snprintf(path, len, "%s/%s.ini", e->dir, name);
    char *text = malloc(strlen(body) + 1024);
    sprintf(text, "# %s\n[run]\nname = %s\nout_dir = %s/runs\n\n[data]\nroot = %s\nsplit = tail:2\n\n%s", name, name,
            e->dir, e->root, body);
    write_text(path, text);
    free(text);
}

/* bk_train with its stdout captured into DIR/<tag>.out, and its stderr too when the case reads
 * it (otherwise stderr stays visible, so a sanitizer report is not hidden in a temporary file). */
static bool capture_stderr;

static bk_status train_quiet(const env *e, const char *tag, const bk_train_options *o, bk_train_result *r) {
    char out[256];
    snprintf(out, sizeof out, "%s/%s.out", e->dir, tag);
    fflush(stdout);
    fflush(stderr);
    int fd = open(out, O_WRONLY | O_CREAT | O_APPEND, 0644);
    int s1 = dup(1), s2 = dup(2);
    dup2(fd, 1);
    if (capture_stderr) dup2(fd, 2);
    close(fd);
    bk_status st = bk_train(o, r);
    char msg[2048];
    snprintf(msg, sizeof msg, "%s", bk_last_error());
    fflush(stdout);
    fflush(stderr);
    dup2(s1, 1);
    dup2(s2, 2);
    close(s1);
    close(s2);
    if (st != BK_OK) bk_fail(st, "%s", msg); /* keep the message for the caller */
    return st;
}

static bk_status train_config(const env *e, const char *tag, const char *cfg, const char *const *sets, int n_sets,
                              bk_train_result *r) {
    bk_train_options o = {.config_path = cfg, .sets = sets, .n_sets = n_sets};
    return train_quiet(e, tag, &o, r);
}

static bk_status train_resume(const env *e, const char *tag, const char *ckpt, const char *const *sets, int n_sets,
                              bk_train_result *r) {
    bk_train_options o = {.resume = ckpt, .sets = sets, .n_sets = n_sets};
    return train_quiet(e, tag, &o, r);
}

/* ---------------------------------------------------------------- subprocesses */

typedef struct proc {
    pid_t pid;
    char out[256], err[256];
} proc;

/* Starts `train` with the arguments (NULL-terminated), stdout and stderr to DIR/<tag>.{out,err}. */
static bool proc_start(const env *e, proc *p, const char *tag, const char *const *args) {
    if (!e->train_bin[0]) {
        bk_test_fail(__FILE__, __LINE__, "no build/bin/train next to the tests: run make");
        return false;
    }
    snprintf(p->out, sizeof p->out, "%s/%s.out", e->dir, tag);
    snprintf(p->err, sizeof p->err, "%s/%s.err", e->dir, tag);
    const char *argv[32];
    int n = 0;
    argv[n++] = e->train_bin;
    for (int i = 0; args[i] && n < 31; i++) argv[n++] = args[i];
    argv[n] = NULL;
    fflush(stdout);
    fflush(stderr);
    p->pid = fork();
    if (p->pid < 0) return false;
    if (p->pid == 0) {
        int o = open(p->out, O_WRONLY | O_CREAT | O_TRUNC, 0644), er = open(p->err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || er < 0) _exit(127);
        dup2(o, 1);
        dup2(er, 2);
        signal(SIGINT, SIG_DFL);
        alarm(0);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return true;
}

/* Waits up to `seconds`; on timeout kills the process (SIGKILL) and reports. Returns the wait
 * status, or -1 on timeout. */
static int proc_wait(proc *p, double seconds) {
    double t0 = bk_test_now();
    int status = 0;
    for (;;) {
        pid_t r = waitpid(p->pid, &status, WNOHANG);
        if (r == p->pid) return status;
        if (r < 0 && errno != EINTR) return -1;
        if (bk_test_now() - t0 > seconds) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &status, 0);
            bk_test_fail(__FILE__, __LINE__, "train did not finish in %.0f s (killed)", seconds);
            return -1;
        }
        bk_test_sleep_ms(20);
    }
}

static int run_train(const env *e, const char *tag, const char *const *args, double seconds, char **out, char **err) {
    proc p;
    if (!proc_start(e, &p, tag, args)) return -1;
    int status = proc_wait(&p, seconds);
    if (out) *out = bk_test_read_file(p.out, NULL);
    if (err) *err = bk_test_read_file(p.err, NULL);
    return status;
}

/* ---------------------------------------------------------------- log.csv */

enum { MAX_COLS = 32, MAX_ROWS = 256 };
static const char *const LOG_HEADER = "step,epoch,lr,loss,l1,ssim,ms_ssim,lpips,vgg,adv,d_loss,gp,seconds,it_per_s,"
                                      "val_psnr,val_ssim,val_lpips,base_psnr,base_ssim";

typedef struct csv {
    int ncol, nrows, n_headers;
    char names[MAX_COLS][32];
    double v[MAX_ROWS][MAX_COLS];
} csv;

static bool csv_read(const char *path, csv *c) {
    memset(c, 0, sizeof *c);
    char *t = bk_test_read_file(path, NULL);
    if (!t) return false;
    char *save = NULL;
    for (char *line = strtok_r(t, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!strncmp(line, "step,", 5)) {
            c->n_headers++;
            if (c->n_headers == 1) {
                EXPECT(!strcmp(line, LOG_HEADER), "%s: header \"%s\"", path, line);
                char *s2 = NULL;
                for (char *f = strtok_r(line, ",", &s2); f && c->ncol < MAX_COLS; f = strtok_r(NULL, ",", &s2))
                    snprintf(c->names[c->ncol++], 32, "%s", f);
            }
            continue;
        }
        if (c->nrows == MAX_ROWS) break;
        int k = 0;
        char *p = line;
        while (k < MAX_COLS) {
            char *comma = strchr(p, ',');
            if (comma) *comma = '\0';
            char *end;
            double x = strtod(p, &end);
            c->v[c->nrows][k++] = end == p ? NAN : x;
            if (!comma) break;
            p = comma + 1;
        }
        EXPECT(k == c->ncol, "%s row %d has %d fields, the header %d", path, c->nrows + 1, k, c->ncol);
        c->nrows++;
    }
    free(t);
    return c->ncol > 0;
}

static int csv_col(const csv *c, const char *name) {
    for (int i = 0; i < c->ncol; i++)
        if (!strcmp(c->names[i], name)) return i;
    bk_test_fail(__FILE__, __LINE__, "log.csv has no column %s", name);
    return 0;
}

/* ---------------------------------------------------------------- checkpoints */

static bool attr_int(const char *path, const char *name, int64_t *v) {
    bk_h5 f;
    if (bk_h5_open(&f, path) != BK_OK) return false;
    bk_status st = bk_h5_get_attr_int(&f, name, v);
    bk_h5_close(&f, false);
    return st == BK_OK;
}

/* A string attribute of a checkpoint (malloc'd), or NULL. */
static char *attr_str(const char *path, const char *name) {
    bk_h5 f;
    if (bk_h5_open(&f, path) != BK_OK) return NULL;
    char *v = malloc(1 << 16);
    if (v && bk_h5_get_attr_str(&f, name, v, 1 << 16) != BK_OK) {
        free(v);
        v = NULL;
    }
    bk_h5_close(&f, false);
    return v;
}

static bk_model *load_model(bk_ctx *ctx, const char *path) {
    bk_model *m = NULL;
    bk_status st = bk_model_load(ctx, path, &m);
    EXPECT(st == BK_OK, "bk_model_load %s: %s", path, bk_last_error());
    return st == BK_OK ? m : NULL;
}

/* Every dataset under `group` of two files: same names, shapes and bytes. Returns the number of
 * datasets that differ (and reports the first unless quiet); *count gets the number compared. */
static int compare_group(const bk_h5 *a, const bk_h5 *b, const char *group, int *count, bool quiet) {
    char **na = NULL, **nb = NULL;
    int ca = 0, cb = 0, differ = 0;
    if (bk_h5_list(a, group, &na, &ca) != BK_OK || bk_h5_list(b, group, &nb, &cb) != BK_OK) {
        bk_test_fail(__FILE__, __LINE__, "listing %s: %s", group, bk_last_error());
        return 1;
    }
    EXPECT(ca == cb, "%s: %d vs %d datasets", group, ca, cb);
    for (int i = 0; i < ca && i < cb; i++) {
        char name[1200];
        snprintf(name, sizeof name, "%s/%s", group, na[i]);
        EXPECT(!strcmp(na[i], nb[i]), "%s: dataset %d is %s vs %s", group, i, na[i], nb[i]);
        int da, db;
        int64_t dimsa[BK_H5_MAX_DIMS], dimsb[BK_H5_MAX_DIMS];
        float *va = NULL, *vb = NULL;
        if (bk_h5_read_f32(a, name, &da, dimsa, &va) != BK_OK || bk_h5_read_f32(b, name, &db, dimsb, &vb) != BK_OK) {
            bk_test_fail(__FILE__, __LINE__, "reading %s: %s", name, bk_last_error());
            differ++;
        } else {
            size_t n = 1;
            bool same_shape = da == db;
            for (int d = 0; same_shape && d < da; d++) same_shape = dimsa[d] == dimsb[d], n *= (size_t)dimsa[d];
            if (!same_shape || memcmp(va, vb, n * sizeof(float)) != 0) {
                if (!differ && !quiet) {
                    size_t j = 0;
                    while (same_shape && j < n && !memcmp(&va[j], &vb[j], sizeof(float))) j++;
                    printf("    %s differs%s at %zu: %.9g vs %.9g\n", name, same_shape ? "" : " in shape", j,
                           same_shape ? va[j] : 0.0, same_shape ? vb[j] : 0.0);
                }
                differ++;
            }
        }
        free(va);
        free(vb);
        (*count)++;
    }
    for (int i = 0; i < ca; i++) free(na[i]);
    for (int i = 0; i < cb; i++) free(nb[i]);
    free(na);
    free(nb);
    return differ;
}

/* Two checkpoints hold bit-identical models (bk_model_load, every parameter and buffer), and
 * bit-identical optimizer state and critic (the HDF5 datasets). Returns the number of
 * differences; `quiet` for a negative control. */
static int compare_checkpoints(const char *pa, const char *pb, bool gan, bool quiet) {
    int differ = 0, compared = 0;
    bk_ctx ctx;
    if (bk_ctx_init(&ctx) != BK_OK) {
        bk_test_fail(__FILE__, __LINE__, "context: %s", bk_last_error());
        return 1;
    }
    bk_model *ma = load_model(&ctx, pa), *mb = load_model(&ctx, pb);
    if (ma && mb) {
        EXPECT(ma->kind == mb->kind && ma->params.n == mb->params.n, "different models");
        for (int i = 0; i < ma->params.n && i < mb->params.n; i++) {
            const bk_param *x = &ma->params.v[i], *y = &mb->params.v[i];
            int64_t n = bk_numel(x->t);
            if (strcmp(x->name, y->name) || n != bk_numel(y->t) ||
                memcmp(x->t->data, y->t->data, (size_t)n * sizeof(float)) != 0) {
                if (!differ && !quiet) printf("    %s %s differs\n", x->kind == BK_PARAM ? "parameter" : "buffer", x->name);
                differ++;
            }
            compared++;
        }
    } else {
        differ++;
    }
    if (ma) bk_model_free(&ctx, ma);
    if (mb) bk_model_free(&ctx, mb);
    bk_ctx_free(&ctx);

    bk_h5 a, b;
    if (bk_h5_open(&a, pa) != BK_OK || bk_h5_open(&b, pb) != BK_OK) {
        bk_test_fail(__FILE__, __LINE__, "opening: %s", bk_last_error());
        return differ + 1;
    }
    int n_opt = 0, n_critic = 0;
    differ += compare_group(&a, &b, "/optim/generator/params", &n_opt, quiet);
    differ += compare_group(&a, &b, "/optim/generator/buffers", &n_opt, quiet);
    EXPECT(n_opt > 0, "no optimizer moments under /optim/generator in %s", pa);
    const char *steps[] = {"step", "epoch", "optim_generator_step", "optim_critic_step"};
    for (int i = 0; i < (gan ? 4 : 3); i++) {
        int64_t x = -1, y = -2;
        EXPECT(bk_h5_get_attr_int(&a, steps[i], &x) == BK_OK && bk_h5_get_attr_int(&b, steps[i], &y) == BK_OK,
               "attribute %s: %s", steps[i], bk_last_error());
        if (x != y) {
            if (!quiet) printf("    attribute %s: %" PRId64 " vs %" PRId64 "\n", steps[i], x, y);
            differ++;
        }
    }
    if (gan) {
        differ += compare_group(&a, &b, "/critic/params", &n_critic, quiet);
        differ += compare_group(&a, &b, "/critic/buffers", &n_critic, quiet);
        differ += compare_group(&a, &b, "/optim/critic/params", &n_critic, quiet);
        differ += compare_group(&a, &b, "/optim/critic/buffers", &n_critic, quiet);
        EXPECT(n_critic > 0, "no critic in %s", pa);
    }
    bk_h5_close(&a, false);
    bk_h5_close(&b, false);
    if (!quiet)
        printf("    compared %d model tensors, %d generator-optimizer tensors, %d critic and critic-optimizer tensors\n",
               compared, n_opt, n_critic);
    return differ;
}

/* sum|a - b| / sum|b| over the parameters (BK_PARAM) of a, b looked up by name (with a prefix
 * stripped from a's names). */
static double relative_distance(const bk_model *a, const bk_model *b, const char *strip) {
    double num = 0, den = 0;
    size_t k = strlen(strip);
    int found = 0;
    for (int i = 0; i < a->params.n; i++) {
        const bk_param *p = &a->params.v[i];
        if (p->kind != BK_PARAM) continue;
        const char *name = p->name;
        if (k) {
            if (strncmp(name, strip, k)) continue;
            name += k;
        }
        const bk_tensor *q = bk_params_get(&b->params, name);
        if (!q || bk_numel(q) != bk_numel(p->t)) continue;
        found++;
        for (int64_t j = 0; j < bk_numel(q); j++) {
            num += fabs((double)p->t->data[j] - q->data[j]);
            den += fabs((double)q->data[j]);
        }
    }
    EXPECT(found > 0, "no parameters in common (prefix \"%s\")", strip);
    return den > 0 ? num / den : INFINITY;
}

static bool all_finite(const bk_model *m) {
    for (int i = 0; i < m->params.n; i++)
        for (int64_t j = 0; j < bk_numel(m->params.v[i].t); j++)
            if (!isfinite(m->params.v[i].t->data[j])) return false;
    return true;
}

/* ---------------------------------------------------------------- a recipe's outputs */

typedef struct run_check {
    const char *model, *variant;
    int steps, log_every;
    bool validated; /* best.h5 and samples expected */
} run_check;

/* config.ini, log.csv, ckpt/last.h5, ckpt/best.h5 and the sample PNGs of a finished run. */
static void check_outputs(const bk_train_result *r, const run_check *k, csv *log) {
    char path[1400];
    EXPECT(r->steps_done == k->steps && !r->interrupted, "%s: %" PRId64 " steps done (interrupted %d)", k->model,
           r->steps_done, r->interrupted);
    /* config.ini: the resolved config, loadable */
    snprintf(path, sizeof path, "%s/config.ini", r->run_dir);
    bk_config c;
    bk_config_defaults(&c);
    EXPECT(bk_config_load(&c, path) == BK_OK, "%s: %s", path, bk_last_error());
    EXPECT(!strcmp(c.model_name, k->model) && c.train_steps == k->steps, "%s: model %s steps %" PRId64, path,
           c.model_name, c.train_steps);
    /* log.csv: the header once, a row every log_every steps */
    snprintf(path, sizeof path, "%s/log.csv", r->run_dir);
    EXPECT(csv_read(path, log), "%s missing", path);
    EXPECT(log->n_headers == 1, "%s: %d headers", path, log->n_headers);
    EXPECT(log->nrows == k->steps / k->log_every, "%s: %d rows, want %d", path, log->nrows, k->steps / k->log_every);
    for (int i = 0; i < log->nrows; i++) {
        EXPECT(log->v[i][0] == (i + 1) * k->log_every, "%s row %d: step %g", path, i + 1, log->v[i][0]);
        EXPECT(isfinite(log->v[i][3]), "%s row %d: loss %g", path, i + 1, log->v[i][3]);
    }
    if (log->nrows) {
        EXPECT(fabs(log->v[0][3] - r->first_loss) <= 1e-5 * fabs(r->first_loss) + 1e-9 &&
                   fabs(log->v[log->nrows - 1][3] - r->last_loss) <= 1e-5 * fabs(r->last_loss) + 1e-9,
               "first/last loss %g %g vs log.csv %g %g", r->first_loss, r->last_loss, log->v[0][3],
               log->v[log->nrows - 1][3]);
        int vp = csv_col(log, "val_psnr");
        if (k->validated)
            EXPECT(isfinite(log->v[log->nrows - 1][vp]) && isfinite(r->val_psnr), "no validation PSNR in the last row");
    }
    /* checkpoints */
    bk_ctx ctx;
    if (bk_ctx_init(&ctx) != BK_OK) return;
    /* best.h5 is at a step of the highest validation PSNR in log.csv (not always the last) */
    double best = -INFINITY;
    int vp = k->validated ? csv_col(log, "val_psnr") : 0;
    for (int i = 0; k->validated && i < log->nrows; i++)
        if (log->v[i][vp] > best) best = log->v[i][vp];
    const char *names[] = {"last.h5", "best.h5"};
    for (int i = 0; i < (k->validated ? 2 : 1); i++) {
        snprintf(path, sizeof path, "%s/ckpt/%s", r->run_dir, names[i]);
        bk_model *m = load_model(&ctx, path);
        if (m) {
            EXPECT(!strcmp(m->kind->name, k->model) && !strcmp(m->variant, k->variant), "%s holds %s \"%s\"", path,
                   m->kind->name, m->variant);
            bk_model_free(&ctx, m);
        }
        int64_t step = -1;
        bool read = attr_int(path, "step", &step);
        if (i == 0) {
            EXPECT(read && step == k->steps, "%s: step %" PRId64, path, step);
            continue;
        }
        double at = NAN; /* the logged PSNR of best.h5's step */
        for (int j = 0; j < log->nrows; j++)
            if (log->v[j][0] == step) at = log->v[j][vp];
        EXPECT(read && at == best, "%s: step %" PRId64 " with val PSNR %g; the best in log.csv is %g", path, step, at,
               best);
    }
    bk_ctx_free(&ctx);
    /* samples */
    if (k->validated) {
        snprintf(path, sizeof path, "%s/samples/step%07d_0.png", r->run_dir, k->steps);
        EXPECT(exists(path), "%s missing", path);
        bk_image im;
        if (exists(path) && bk_image_read(path, 3, 0, &im) == BK_OK) {
            EXPECT(im.height > 0 && im.width == 4 * im.height, "%s: %dx%d, want 4 panels", path, im.width, im.height);
            bk_image_free(&im);
        }
    }
}

/* Prints the windows and checks the fall of `column` (the loss unless given). */
static void expect_falls(const char *what, const csv *log, const char *column, double first, double last) {
    if (column) {
        int j = csv_col(log, column);
        first = log->v[0][j];
        last = log->v[log->nrows - 1][j];
    }
    printf("    %s: %s %.5f -> %.5f (first -> last log window)\n", what, column ? column : "loss", first, last);
    EXPECT(isfinite(first) && isfinite(last) && last < first, "%s: %s did not fall: %g -> %g", what,
           column ? column : "loss", first, last);
}

/* ---------------------------------------------------------------- recipes */

static const char AMPN_BODY[] = "[data]\nresize_h = 128\nresize_w = 128\n\n[model]\nname = ampn\n\n"
                                "[train]\nsteps = 20\nbatch = 2\nlr = 2e-4\nlog_every = 5\nval_every = 20\n"
                                "val_max_images = 2\nckpt_every = 10\nsamples = 1\n\n[loss]\nl1 = 10\nssim = 1\n";

static void ampn_recipe_trains(void) {
    env e;
    env_open(&e, 8, 128);
    char cfg[256];
    write_config(&e, "ampn", AMPN_BODY, cfg, sizeof cfg);
    bk_train_result r;
    bk_status st = train_config(&e, "ampn", cfg, NULL, 0, &r);
    EXPECT(st == BK_OK, "ampn: %s", bk_last_error());
    if (st == BK_OK) {
        csv log;
        check_outputs(&r, &(run_check){"ampn", "", 20, 5, true}, &log);
        expect_falls("ampn (10 L1 + SSIM)", &log, NULL, r.first_loss, r.last_loss);
        expect_falls("ampn", &log, "l1", 0, 0);
        printf("    ampn: val PSNR %.3f (input %.3f)\n", r.val_psnr, r.base_psnr);
    } else {
        char out[256];
        snprintf(out, sizeof out, "%s/ampn.out", e.dir);
        print_tail(out, 8);
    }
    env_close(&e);
}

static void ampn_external_mask_trains(void) {
    env e;
    env_open(&e, 8, 128);
    char cfg[256];
    char *body = malloc(sizeof AMPN_BODY + 64);
    sprintf(body, "%s\n[model]\nvariant = external_mask\n", AMPN_BODY);
    write_config(&e, "ampn_mask", body, cfg, sizeof cfg);
    free(body);
    bk_train_result r;
    bk_status st = train_config(&e, "ampn_mask", cfg, NULL, 0, &r);
    EXPECT(st == BK_OK, "ampn external_mask: %s", bk_last_error());
    if (st == BK_OK) {
        csv log;
        check_outputs(&r, &(run_check){"ampn", "external_mask", 20, 5, true}, &log);
        expect_falls("ampn external_mask", &log, NULL, r.first_loss, r.last_loss);
    }
    /* the masks are needed: without ROOT/mask the run is refused before training, naming it */
    char from[256], to[256];
    snprintf(from, sizeof from, "%s/mask", e.root);
    snprintf(to, sizeof to, "%s/mask_gone", e.root);
    EXPECT(rename(from, to) == 0, "rename %s", from);
    const char *sets[] = {"run.name=no_masks"};
    st = train_config(&e, "no_masks", cfg, sets, 1, &r);
    EXPECT(st != BK_OK && strstr(bk_last_error(), e.root), "external_mask without masks: %d %s", st, bk_last_error());
    env_close(&e);
}

/* A DMSHN-family body: 64x64, batch 2, 20 steps, validation at 10 and 20. */
static void dmshn_body(char *out, size_t len, const char *model, const char *loss) {
    snprintf(out, len,
             "[data]\nresize_h = 64\nresize_w = 64\nvflip = true\n\n[model]\n%s\n\n"
             "[train]\nsteps = 20\nbatch = 2\nlr = 1e-4\nlog_every = 5\nval_every = 10\n"
             "val_max_images = 2\nckpt_every = 10\nsamples = 1\n\n[loss]\n%s\n",
             model, loss);
}

static void dmshn_stage1_stage2_and_stacked_train(void) {
    env e;
    env_open(&e, 8, 64);
    char cfg[256], best1[1100], best2[1100], last2[1100], last3[1100];
    bk_train_result r;
    csv log;
    bk_ctx ctx;
    if (bk_ctx_init(&ctx) != BK_OK) exit(1);

    /* stage 1: L1 + 0.1 SSIM */
    char *body = malloc(4096);
    dmshn_body(body, 4096, "name = dmshn", "l1 = 1\nssim = 0.1");
    write_config(&e, "dmshn1", body, cfg, sizeof cfg);
    bk_status st = train_config(&e, "dmshn1", cfg, NULL, 0, &r);
    EXPECT(st == BK_OK, "dmshn stage 1: %s", bk_last_error());
    if (st != BK_OK) goto done;
    check_outputs(&r, &(run_check){"dmshn", "", 20, 5, true}, &log);
    expect_falls("dmshn stage 1 (L1 + 0.1 SSIM)", &log, NULL, r.first_loss, r.last_loss);
    snprintf(best1, sizeof best1, "%s/ckpt/best.h5", r.run_dir);

    /* stage 2: 1 - MS-SSIM (dmshn_compat: 64 px is enough), from stage 1 (another seed, so
     * ignoring init_from would show) */
    char model[1300];
    snprintf(model, sizeof model, "name = dmshn\ninit_from = %s\n[run]\nseed = 2", best1);
    dmshn_body(body, 4096, model, "l1 = 0\nms_ssim = 1\nmsssim_mode = dmshn_compat");
    write_config(&e, "dmshn2", body, cfg, sizeof cfg);
    st = train_config(&e, "dmshn2", cfg, NULL, 0, &r);
    EXPECT(st == BK_OK, "dmshn stage 2: %s", bk_last_error());
    if (st != BK_OK) goto done;
    check_outputs(&r, &(run_check){"dmshn", "", 20, 5, true}, &log);
    expect_falls("dmshn stage 2 (1 - MS-SSIM dmshn_compat)", &log, NULL, r.first_loss, r.last_loss);
    expect_falls("dmshn stage 2", &log, "ms_ssim", 0, 0);
    snprintf(best2, sizeof best2, "%s/ckpt/best.h5", r.run_dir);
    snprintf(last2, sizeof last2, "%s/ckpt/last.h5", r.run_dir);
    {
        bk_model *a = load_model(&ctx, last2), *b = load_model(&ctx, best1);
        if (a && b) {
            double d = relative_distance(a, b, "");
            printf("    dmshn stage 2 vs stage 1 weights: relative distance %.4f\n", d);
            EXPECT(d < 0.3, "stage 2 did not start from stage 1 (model.init_from): relative distance %.3f", d);
        }
        if (a) bk_model_free(&ctx, a);
        if (b) bk_model_free(&ctx, b);
    }

    /* Stacked DMSHN: both halves from stage 2 */
    snprintf(model, sizeof model, "name = stacked_dmshn\ninit_dmshn = %s\n[run]\nseed = 3", best2);
    dmshn_body(body, 4096, model, "l1 = 0\nms_ssim = 1\nmsssim_mode = dmshn_compat");
    write_config(&e, "stacked", body, cfg, sizeof cfg);
    const char *sets[] = {"train.batch=1"};
    st = train_config(&e, "stacked", cfg, sets, 1, &r);
    EXPECT(st == BK_OK, "stacked dmshn: %s", bk_last_error());
    if (st != BK_OK) goto done;
    check_outputs(&r, &(run_check){"stacked_dmshn", "", 20, 5, true}, &log);
    expect_falls("stacked dmshn (1 - MS-SSIM dmshn_compat)", &log, NULL, r.first_loss, r.last_loss);
    snprintf(last3, sizeof last3, "%s/ckpt/last.h5", r.run_dir);
    {
        bk_model *a = load_model(&ctx, last3), *b = load_model(&ctx, best2);
        if (a && b) {
            double d1 = relative_distance(a, b, "net1."), d2 = relative_distance(a, b, "net2.");
            printf("    stacked halves vs dmshn stage 2: relative distance %.4f, %.4f\n", d1, d2);
            EXPECT(d1 < 0.3 && d2 < 0.3, "the halves did not start from model.init_dmshn: %.3f %.3f", d1, d2);
        }
        if (a) bk_model_free(&ctx, a);
        if (b) bk_model_free(&ctx, b);
    }
done:
    free(body);
    bk_ctx_free(&ctx);
    env_close(&e);
}

static const char GAN1_BODY[] = "[data]\ncrop_h = 64\ncrop_w = 64\nhflip = true\n\n[model]\nname = glassnet\n\n"
                                "[train]\nsteps = 20\nbatch = 2\nlr = 1e-4\nbeta1 = 0\nbeta2 = 0.9\nlog_every = 5\n"
                                "val_every = 20\nval_max_images = 2\nckpt_every = 20\nsamples = 1\n";

static void bggan_stage1_and_stage2_train(void) {
    env e;
    env_open(&e, 8, 64);
    char cfg[256], best1[1100], last2[1100];
    bk_train_result r;
    csv log;
    /* stage 1: Glass-Net on 64x64 crops, [-1,1], 0.5 L1 + 0.05 SSIM */
    char *body = malloc(4096);
    sprintf(body, "%s\n[loss]\nl1 = 0.5\nssim = 0.05\n", GAN1_BODY);
    write_config(&e, "bggan1", body, cfg, sizeof cfg);
    bk_status st = train_config(&e, "bggan1", cfg, NULL, 0, &r);
    EXPECT(st == BK_OK, "bggan stage 1: %s", bk_last_error());
    if (st != BK_OK) goto done;
    check_outputs(&r, &(run_check){"glassnet", "", 20, 5, true}, &log);
    expect_falls("bggan stage 1 (0.5 L1 + 0.05 SSIM)", &log, NULL, r.first_loss, r.last_loss);
    double l1_first_stage1 = log.v[0][csv_col(&log, "l1")], l1_last_stage1 = log.v[log.nrows - 1][csv_col(&log, "l1")];
    snprintf(best1, sizeof best1, "%s/ckpt/best.h5", r.run_dir);

    /* stage 2: + WGAN-GP (critic), from stage 1 */
    sprintf(body, "%s\n[run]\nseed = 2\n[model]\ninit_from = %s\n[loss]\nl1 = 0.5\nssim = 0.05\nadv = 1\n"
                  "[gan]\nn_critic = 1\nlambda_gp = 10\n",
            GAN1_BODY, best1);
    write_config(&e, "bggan2", body, cfg, sizeof cfg);
    st = train_config(&e, "bggan2", cfg, NULL, 0, &r);
    EXPECT(st == BK_OK, "bggan stage 2: %s", bk_last_error());
    if (st != BK_OK) goto done;
    check_outputs(&r, &(run_check){"glassnet", "", 20, 5, true}, &log);
    /* The generator's total includes the adversarial term, whose scale moves with the critic, and
     * its L1 term may rise for a while as the generator follows a fresh critic: what must hold
     * is that every term is finite, L1 stays near stage 1's (it started from there), and the
     * critic learns (its loss, dominated by the gradient penalty at first, falls). */
    int jl1 = csv_col(&log, "l1"), jd = csv_col(&log, "d_loss"), jadv = csv_col(&log, "adv"), jgp = csv_col(&log, "gp");
    for (int i = 0; i < log.nrows; i++)
        EXPECT(isfinite(log.v[i][jl1]) && isfinite(log.v[i][jd]) && isfinite(log.v[i][jadv]) && isfinite(log.v[i][jgp]) &&
                   log.v[i][jgp] >= 0,
               "bggan stage 2 row %d: l1 %g d_loss %g adv %g gp %g", i + 1, log.v[i][jl1], log.v[i][jd], log.v[i][jadv],
               log.v[i][jgp]);
    printf("    bggan stage 2: loss %.5f -> %.5f, l1 %.5f -> %.5f (stage 1: %.5f -> %.5f), adv %.4f -> %.4f\n",
           r.first_loss, r.last_loss, log.v[0][jl1], log.v[log.nrows - 1][jl1], l1_first_stage1, l1_last_stage1,
           log.v[0][jadv], log.v[log.nrows - 1][jadv]);
    expect_falls("bggan stage 2 critic", &log, "d_loss", 0, 0);
    EXPECT(log.v[0][jl1] < l1_first_stage1, "stage 2 did not start from stage 1: L1 %g vs a fresh model's %g",
           log.v[0][jl1], l1_first_stage1);
    EXPECT(log.v[log.nrows - 1][jl1] < 1.5 * l1_last_stage1, "stage 2 L1 ran away: %g (stage 1 ended at %g)",
           log.v[log.nrows - 1][jl1], l1_last_stage1);
    snprintf(last2, sizeof last2, "%s/ckpt/last.h5", r.run_dir);
    {
        bk_h5 f;
        if (bk_h5_open(&f, last2) == BK_OK) {
            EXPECT(bk_h5_exists(&f, "/critic/params") && bk_h5_exists(&f, "/optim/critic/buffers"),
                   "%s has no critic or critic optimizer", last2);
            int64_t s = 0;
            EXPECT(bk_h5_get_attr_int(&f, "optim_critic_step", &s) == BK_OK && s == 20, "critic steps %" PRId64, s);
            bk_h5_close(&f, false);
        }
        bk_ctx ctx;
        if (bk_ctx_init(&ctx) == BK_OK) {
            bk_model *a = load_model(&ctx, last2), *b = load_model(&ctx, best1);
            if (a && b) {
                double d = relative_distance(a, b, "");
                printf("    bggan stage 2 vs stage 1 weights: relative distance %.4f\n", d);
                EXPECT(d < 0.3, "stage 2 did not start from stage 1: %.3f", d);
            }
            if (a) bk_model_free(&ctx, a);
            if (b) bk_model_free(&ctx, b);
            bk_ctx_free(&ctx);
        }
    }
done:
    free(body);
    env_close(&e);
}

/* ---------------------------------------------------------------- resume */

/* N steps, then N resumed steps (from ckpt/last.h5, the checkpoint's own config, --set
 * train.steps=2N), against 2N steps in one run: bit-identical checkpoints. */
static void resume_matches(const env *e, const char *body, int n, bool gan, const char *split) {
    char cfg[256], steps_n[64], steps_2n[64];
    snprintf(steps_n, sizeof steps_n, "train.steps=%d", n);
    snprintf(steps_2n, sizeof steps_2n, "train.steps=%d", 2 * n);
    write_config(e, "resume", body, cfg, sizeof cfg);
    bk_train_result r;
    /* one run of 2N */
    const char *set_b[] = {steps_2n, "run.name=whole", split};
    bk_status st = train_config(e, "whole", cfg, set_b, 3, &r);
    EXPECT(st == BK_OK && r.steps_done == 2 * n, "%d steps: %s", 2 * n, bk_last_error());
    if (st != BK_OK) return;
    /* N, then N more */
    const char *set_a[] = {steps_n, "run.name=split", split};
    st = train_config(e, "split1", cfg, set_a, 3, &r);
    EXPECT(st == BK_OK && r.steps_done == n, "first %d steps: %s", n, bk_last_error());
    if (st != BK_OK) return;
    char last[1200], half[1200], whole[1200];
    snprintf(last, sizeof last, "%s/ckpt/last.h5", r.run_dir);
    snprintf(half, sizeof half, "%s/half.h5", e->dir);
    EXPECT(link(last, half) == 0, "link %s: %s", last, strerror(errno)); /* the step-N file survives the rename */
    const char *set_r[] = {steps_2n};
    st = train_resume(e, "split2", last, set_r, 1, &r);
    EXPECT(st == BK_OK && r.steps_done == 2 * n, "resumed %d steps: %s", n, bk_last_error());
    if (st != BK_OK) return;
    snprintf(whole, sizeof whole, "%s/runs/whole/ckpt/last.h5", e->dir);
    int differ = compare_checkpoints(last, whole, gan, false);
    EXPECT(differ == 0, "resumed run differs from the uninterrupted one in %d tensors or counters", differ);
    /* the comparison can see a difference: the step-N checkpoint differs from the step-2N one */
    int control = compare_checkpoints(half, whole, gan, true);
    EXPECT(control > 0, "negative control: the step-%d and step-%d checkpoints compare equal", n, 2 * n);
    printf("    resume: %d differences (control: step %d vs %d differ in %d)\n", differ, n, 2 * n, control);
    /* the resumed run appended to log.csv */
    char path[1200];
    snprintf(path, sizeof path, "%s/runs/split/log.csv", e->dir);
    csv log;
    if (csv_read(path, &log)) {
        EXPECT(log.n_headers == 1 && log.nrows >= 2 && log.v[log.nrows - 1][0] == 2 * n,
               "%s after resuming: %d headers, %d rows, last step %g", path, log.n_headers, log.nrows,
               log.nrows ? log.v[log.nrows - 1][0] : -1);
    }
}

/* The two processes compared here would each time the convolution algorithms on first use (a
 * checkpoint carries its own run's choices, see kernel_choices_survive_resume), so these runs
 * fix them: direct for AMPN, Winograd wherever it fits for BGGAN (its critic's second order
 * included). */
static void resume_is_bit_exact_ampn(void) {
    env e;
    setenv("BOKEHLAB_CONV_ALGO", "direct", 1);
    env_open(&e, 8, 128);
    /* batch norm statistics, Adam, shuffling and flips; a validation (and best.h5) at the end of
     * the first part, which must not disturb anything */
    resume_matches(&e,
                   "[data]\nresize_h = 128\nresize_w = 128\nhflip = true\nvflip = true\n[model]\nname = ampn\n"
                   "[train]\nbatch = 2\nlr = 2e-4\nlog_every = 2\nval_every = 0\nval_max_images = 1\n"
                   "ckpt_every = 100\nsamples = 0\n[loss]\nl1 = 10\nssim = 1\n",
                   4, false, "data.split=tail:2");
    env_close(&e);
}

/* Glass-Net (dropout), the critic with two updates per step (the penalty's alpha), both Adams. */
static void resume_is_bit_exact_bggan_stage2(void) {
    env e;
    setenv("BOKEHLAB_CONV_ALGO", getenv("XALGO") ? getenv("XALGO") : "winograd", 1);
    env_open(&e, 8, 64);
    resume_matches(&e,
                   "[data]\ncrop_h = 64\ncrop_w = 64\n[model]\nname = glassnet\n"
                   "[train]\nbatch = 1\nlr = 1e-4\nbeta1 = 0\nbeta2 = 0.9\nlog_every = 1\nval_every = 0\n"
                   "val_max_images = 1\nckpt_every = 100\nsamples = 0\n"
                   "[loss]\nl1 = 0.5\nssim = 0.05\nadv = 1\n[gan]\nn_critic = 2\n",
                   3, true, "data.split=all"); /* no evaluation: no best.h5 (360 MB) to write */
    env_close(&e);
}

/* Convolution algorithms timed in the first part of a run are stored in its checkpoint and
 * reused by the resumed part: the kernels attribute comes back unchanged. */
static void kernel_choices_survive_resume(void) {
    env e;
    unsetenv("BOKEHLAB_CONV_ALGO");
    env_open(&e, 4, 64);
    char cfg[256];
    write_config(&e, "choices",
                 "[data]\nresize_h = 64\nresize_w = 64\n[model]\nname = dmshn\n[train]\nsteps = 2\nbatch = 1\n"
                 "log_every = 1\nval_every = 0\nckpt_every = 100\nsamples = 0\n",
                 cfg, sizeof cfg);
    bk_train_result r;
    const char *sets[] = {"data.split=all"};
    bk_status st = train_config(&e, "choices1", cfg, sets, 1, &r);
    EXPECT(st == BK_OK, "2 steps: %s", bk_last_error());
    char last[1200];
    snprintf(last, sizeof last, "%s/ckpt/last.h5", r.run_dir);
    char *first = attr_str(last, "kernels");
    EXPECT(first && strstr(first, "conv2d 1x32x64x64 -> 32 k3x3 s1x1 p1,1,1,1 g1: fwd=") &&
               (strstr(first, "bwd_weights=direct") || strstr(first, "bwd_weights=winograd")),
           "the checkpoint holds no timed choice for DMSHN's first level:\n%s", first ? first : "(none)");
    const char *more[] = {"train.steps=4"};
    st = train_resume(&e, "choices2", last, more, 1, &r);
    EXPECT(st == BK_OK && r.steps_done == 4, "resumed: %s", bk_last_error());
    char *second = attr_str(last, "kernels");
    EXPECT(first && second && strcmp(first, second) == 0, "the resumed run changed the choices:\n%s\nthen\n%s",
           first ? first : "", second ? second : "");
    free(first);
    free(second);
    env_close(&e);
}

/* ---------------------------------------------------------------- atomic checkpoints */

static const char KILL_BODY[] = "[data]\nresize_h = 64\nresize_w = 64\n[model]\nname = dmshn\n"
                                "[train]\nsteps = 100000\nbatch = 1\nlog_every = 1\nval_every = 0\n"
                                "ckpt_every = 1\nsamples = 0\n";

/* Names in ckpt/ other than last.h5, last.h5.tmp and best.h5. */
static void expect_only_checkpoint_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d)))
        EXPECT(!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") || !strcmp(de->d_name, "last.h5") ||
                   !strcmp(de->d_name, "last.h5.tmp") || !strcmp(de->d_name, "best.h5"),
               "unexpected file %s/%s", dir, de->d_name);
    closedir(d);
}

/* Identity of the file at a path (0 if none): a new last.h5 is a new inode (renamed into place). */
static uint64_t file_id(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return 0;
    return (uint64_t)st.st_ino * 1000003u ^ (uint64_t)st.st_mtim.tv_nsec ^ ((uint64_t)st.st_mtim.tv_sec << 30);
}

/* Waits until the file at `path` is a new one (not `old`, not absent); false on timeout or if the
 * process ended. */
static bool wait_new_file(const char *path, uint64_t old, pid_t pid, double seconds) {
    double t0 = bk_test_now();
    while (bk_test_now() - t0 < seconds) {
        uint64_t id = file_id(path);
        if (id && id != old) return true;
        if (waitpid(pid, NULL, WNOHANG) == pid) return false;
        bk_test_sleep_ms(2);
    }
    return false;
}

/* `train` writes a checkpoint every step and is killed (SIGKILL) at a random moment after one
 * of its checkpoints, over about one checkpoint period, so the kills land inside writes and
 * between them; each run resumes from the previous run's last.h5. After every kill last.h5 must
 * load and be at a later step than before; nothing but last.h5, last.h5.tmp and best.h5 is in
 * ckpt/. */
static void killed_runs_leave_a_loadable_checkpoint(void) {
    env e;
    env_open(&e, 6, 64);
    char cfg[256], ckpt_dir[256], last[300], tmp[300];
    write_config(&e, "kill", KILL_BODY, cfg, sizeof cfg);
    snprintf(ckpt_dir, sizeof ckpt_dir, "%s/runs/kill/ckpt", e.dir);
    snprintf(last, sizeof last, "%s/last.h5", ckpt_dir);
    snprintf(tmp, sizeof tmp, "%s/last.h5.tmp", ckpt_dir);
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    srand(seed);
    bk_ctx ctx;
    if (bk_ctx_init(&ctx) != BK_OK) exit(1);
    enum { KILLS = 5 };
    int during_write = 0, kills = 0;
    int64_t prev_step = 0;
    double period = 0;
    for (int i = 0; i < KILLS; i++) {
        bool resume = exists(last);
        const char *fresh[] = {"--config", cfg, "--no-progress", NULL};
        const char *again[] = {"--resume", last, "--no-progress", NULL};
        proc p;
        char tag[32];
        snprintf(tag, sizeof tag, "kill%d", i);
        if (!proc_start(&e, &p, tag, resume ? again : fresh)) break;
        /* a checkpoint of this process */
        bool ok = wait_new_file(last, file_id(last), p.pid, 300);
        if (ok && period == 0) {
            /* the first run measures the checkpoint period (a step and its write) */
            double t0 = bk_test_now();
            ok = wait_new_file(last, file_id(last), p.pid, 300);
            period = bk_test_now() - t0;
        }
        EXPECT(ok, "kill %d: train wrote no checkpoint", i);
        if (!ok) {
            print_tail(p.err, 5);
            kill(p.pid, SIGKILL);
            waitpid(p.pid, NULL, 0);
            break;
        }
        int delay = rand() % (int)(1000 * 1.25 * period + 1);
        bk_test_sleep_ms(delay);
        kill(p.pid, SIGKILL);
        int status;
        waitpid(p.pid, &status, 0);
        kills++;
        EXPECT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "kill %d: status %d (train ended by itself?)", i,
               status);
        bool mid = exists(tmp);
        during_write += mid;
        expect_only_checkpoint_files(ckpt_dir);
        EXPECT(exists(last), "kill %d: no last.h5", i);
        bk_model *m = load_model(&ctx, last); /* reads every tensor, checksums included */
        if (m) bk_model_free(&ctx, m);
        int64_t step = -1;
        EXPECT(attr_int(last, "step", &step) && step > prev_step, "kill %d: last.h5 step %" PRId64 " (before: %" PRId64
               ")", i, step, prev_step);
        printf("    kill %d after %d ms: %s, last.h5 at step %" PRId64 "\n", i, delay,
               mid ? "during a write (last.h5.tmp left)" : "between writes", step);
        prev_step = step;
    }
    printf("    %d kills (seed %u, checkpoint period %.2f s), %d during a checkpoint write\n", kills, seed, period,
           during_write);
    /* the survivor resumes to the end */
    if (exists(last)) {
        char steps[64];
        snprintf(steps, sizeof steps, "train.steps=%" PRId64, prev_step + 1);
        const char *sets[] = {steps};
        bk_train_result r;
        bk_status st = train_resume(&e, "final", last, sets, 1, &r);
        EXPECT(st == BK_OK && r.steps_done == prev_step + 1, "resuming the survivor: %s", bk_last_error());
    }
    bk_ctx_free(&ctx);
    env_close(&e);
}

static void a_failing_checkpoint_write_keeps_the_previous_one(void) {
    env e;
    env_open(&e, 6, 64);
    char cfg[256], last[1100], tmp[1100];
    write_config(&e, "fail", KILL_BODY, cfg, sizeof cfg);
    const char *sets[] = {"train.steps=2"};
    bk_train_result r;
    bk_status st = train_config(&e, "fail1", cfg, sets, 1, &r);
    EXPECT(st == BK_OK, "2 steps: %s", bk_last_error());
    snprintf(last, sizeof last, "%s/ckpt/last.h5", r.run_dir);
    snprintf(tmp, sizeof tmp, "%s/ckpt/last.h5.tmp", r.run_dir);
    /* the temporary file's name is taken by a directory: the next write cannot be created */
    EXPECT(mkdir(tmp, 0755) == 0, "mkdir %s: %s", tmp, strerror(errno));
    const char *more[] = {"train.steps=4"};
    st = train_resume(&e, "fail2", last, more, 1, &r);
    const char *msg = bk_last_error();
    printf("    error: %s\n", msg);
    EXPECT(st != BK_OK, "a checkpoint that cannot be written was not an error");
    EXPECT(strstr(msg, last) != NULL, "the error does not name %s: %s", last, msg);
    EXPECT(strstr(msg, "not written") != NULL || strstr(msg, "cannot") != NULL, "unclear error: %s", msg);
    /* the cause, intact: core/h5.h names the temporary file it could not create */
    EXPECT(strstr(msg, tmp) != NULL, "the error lost its cause (\"cannot create %s\"): %s", tmp, msg);
    const char *again = strstr(msg, "not written");
    EXPECT(!again || !strstr(again + 1, "not written"), "the error repeats itself: %s", msg);
    bk_ctx ctx;
    if (bk_ctx_init(&ctx) == BK_OK) {
        bk_model *m = load_model(&ctx, last);
        if (m) bk_model_free(&ctx, m);
        bk_ctx_free(&ctx);
    }
    int64_t step = -1;
    EXPECT(attr_int(last, "step", &step) && step == 2, "the previous last.h5 is at step %" PRId64 ", want 2", step);
    /* and it still resumes once the obstacle is gone */
    rmdir(tmp);
    st = train_resume(&e, "fail3", last, more, 1, &r);
    EXPECT(st == BK_OK && r.steps_done == 4, "resume after removing the obstacle: %s", bk_last_error());
    env_close(&e);
}

/* ---------------------------------------------------------------- NaN guard */

static void non_finite_steps_are_skipped_then_stop_the_run(void) {
    env e;
    env_open(&e, 6, 64);
    char cfg[256];
    /* train.lr = 1 (the largest allowed): the second step's weights make DMSHN's output overflow */
    write_config(&e, "nan",
                 "[data]\nresize_h = 64\nresize_w = 64\n[model]\nname = dmshn\n[train]\nsteps = 20\nbatch = 1\n"
                 "lr = 1\nlog_every = 1\nval_every = 0\nckpt_every = 1\nsamples = 0\n[loss]\nl1 = 1\nssim = 0.1\n",
                 cfg, sizeof cfg);
    bk_train_result r;
    capture_stderr = true; /* the skipped steps are reported there */
    bk_status st = train_config(&e, "nan", cfg, NULL, 0, &r);
    capture_stderr = false;
    char msg[2048];
    snprintf(msg, sizeof msg, "%s", bk_last_error());
    printf("    error: %s\n", msg);
    EXPECT(st != BK_OK, "an exploding run finished");
    /* the skipped steps in the output, in a row, and the error naming the last */
    char out[256];
    snprintf(out, sizeof out, "%s/nan.out", e.dir);
    char *text = bk_test_read_file(out, NULL);
    int skipped[32], n_skipped = 0;
    for (const char *p = text; p && (p = strstr(p, "train: step ")); p++) {
        long long s;
        char word[16];
        if (sscanf(p, "train: step %lld %15s", &s, word) == 2 && !strcmp(word, "skipped:") && n_skipped < 32)
            skipped[n_skipped++] = (int)s;
    }
    EXPECT(text && strstr(text, "non-finite loss or gradient"), "no skipped step logged");
    EXPECT(n_skipped == 3, "%d steps logged as skipped, want 3", n_skipped);
    if (n_skipped == 3) {
        int k = skipped[0];
        EXPECT(skipped[1] == k + 1 && skipped[2] == k + 2, "skipped steps %d %d %d", skipped[0], skipped[1], skipped[2]);
        char want[64];
        snprintf(want, sizeof want, "step %d", k + 2);
        EXPECT(strstr(msg, want) && strstr(msg, "three non-finite steps"), "the error does not name %s: %s", want, msg);
        EXPECT(r.steps_done == k + 2, "steps done %" PRId64 ", want %d", r.steps_done, k + 2);
        printf("    steps %d, %d, %d skipped (0-based); %d good steps before\n", k, k + 1, k + 2, k);
        /* skipped steps did not touch the weights: the checkpoint written after the second
         * skipped step has finite weights and k optimizer steps */
        char last[1200];
        snprintf(last, sizeof last, "%s/ckpt/last.h5", r.run_dir);
        int64_t step = -1, opt = -1;
        EXPECT(attr_int(last, "step", &step) && step == k + 2, "last.h5 step %" PRId64 ", want %d", step, k + 2);
        EXPECT(attr_int(last, "optim_generator_step", &opt) && opt == k, "Adam steps %" PRId64 ", want %d", opt, k);
        bk_ctx ctx;
        if (bk_ctx_init(&ctx) == BK_OK) {
            bk_model *m = load_model(&ctx, last);
            if (m) {
                EXPECT(all_finite(m), "non-finite weights in %s", last);
                bk_model_free(&ctx, m);
            }
            bk_ctx_free(&ctx);
        }
        /* log.csv: rows for the skipped steps, without a loss (no good step in their window) */
        char path[1200];
        snprintf(path, sizeof path, "%s/log.csv", r.run_dir);
        csv log;
        if (csv_read(path, &log)) {
            EXPECT(log.nrows == k + 2, "log.csv: %d rows, want %d", log.nrows, k + 2);
            for (int i = 0; i < log.nrows; i++)
                EXPECT(i < k ? isfinite(log.v[i][3]) : isnan(log.v[i][3]), "log.csv row %d: loss %g", i + 1,
                       log.v[i][3]);
        }
    }
    free(text);
    env_close(&e);
}

/* ---------------------------------------------------------------- Ctrl-C */

static void ctrl_c_stops_with_status_130_and_a_checkpoint(void) {
    env e;
    env_open(&e, 6, 64);
    char cfg[256];
    write_config(&e, "sigint",
                 "[data]\nresize_h = 64\nresize_w = 64\n[model]\nname = dmshn\n[train]\nsteps = 100000\nbatch = 1\n"
                 "log_every = 1\nval_every = 0\nckpt_every = 100000\nsamples = 0\n",
                 cfg, sizeof cfg);
    const char *args[] = {"--config", cfg, "--no-progress", NULL};
    proc p;
    if (!proc_start(&e, &p, "sigint", args)) return;
    double t0 = bk_test_now();
    bool running = false;
    while (bk_test_now() - t0 < 300 && !running) {
        char *out = bk_test_read_file(p.out, NULL);
        running = out && strstr(out, "\nstep 3 ");
        free(out);
        if (waitpid(p.pid, NULL, WNOHANG) == p.pid) break;
        bk_test_sleep_ms(10);
    }
    EXPECT(running, "train did not reach step 3");
    kill(p.pid, SIGINT);
    int status = proc_wait(&p, 300);
    EXPECT(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 130, "status after SIGINT: %s %d",
           WIFEXITED(status) ? "exit" : "signal", WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    char *out = bk_test_read_file(p.out, NULL);
    long long at = -1, after = -2;
    const char *m1 = out ? strstr(out, "interrupted at step ") : NULL, *m2 = out ? strstr(out, "stopped after ") : NULL;
    EXPECT(m1 && sscanf(m1, "interrupted at step %lld", &at) == 1, "no \"interrupted at step\" message");
    EXPECT(m2 && sscanf(m2, "stopped after %lld steps", &after) == 1 && after == at, "\"stopped after\" %lld vs %lld",
           after, at);
    free(out);
    char last[300];
    snprintf(last, sizeof last, "%s/runs/sigint/ckpt/last.h5", e.dir);
    bk_ctx ctx;
    if (bk_ctx_init(&ctx) == BK_OK) {
        bk_model *m = load_model(&ctx, last);
        if (m) bk_model_free(&ctx, m);
        bk_ctx_free(&ctx);
    }
    int64_t step = -1;
    EXPECT(attr_int(last, "step", &step) && step == at && step >= 3, "last.h5 step %" PRId64 ", reported %lld", step, at);
    printf("    interrupted at step %lld; last.h5 step %" PRId64 "\n", at, step);
    env_close(&e);
}

/* ---------------------------------------------------------------- configuration errors */

/* `train` refuses: exit status 1 and stderr containing each word. */
static void expect_train_refuses(const env *e, const char *what, const char *const *args, const char *w1,
                                 const char *w2) {
    char *err = NULL;
    int status = run_train(e, "refuse", args, 300, NULL, &err);
    EXPECT(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 1, "%s: %s %d", what,
           WIFEXITED(status) ? "exit status" : "killed by signal", WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    EXPECT(err && (!w1 || strstr(err, w1)), "%s: stderr lacks \"%s\": %s", what, w1, err ? err : "");
    EXPECT(err && (!w2 || strstr(err, w2)), "%s: stderr lacks \"%s\": %s", what, w2, err ? err : "");
    free(err);
}

static void config_errors_surface_through_train(void) {
    env e;
    env_open(&e, 4, 64);
    char cfg[256], where[300];
    const char *base = "[data]\nresize_h = 64\nresize_w = 64\n[model]\nname = dmshn\n[train]\nsteps = 2\nbatch = 1\n";
    /* an unknown key: file:line (write_config puts 8 lines before the body; the key is on line 17) */
    char body[512];
    snprintf(body, sizeof body, "%s[loss]\nl1 = 1\nssim_weight = 1\n", base);
    write_config(&e, "unknown", body, cfg, sizeof cfg);
    int line = 1;
    {
        char *t = bk_test_read_file(cfg, NULL);
        char *at = t ? strstr(t, "\nssim_weight") : NULL;
        for (char *p = t; at && p <= at; p++) line += *p == '\n';
        free(t);
    }
    snprintf(where, sizeof where, "%s:%d", cfg, line);
    const char *a1[] = {"--config", cfg, NULL};
    expect_train_refuses(&e, "unknown key", a1, where, "ssim_weight");
    /* a bad --set names itself */
    write_config(&e, "good", base, cfg, sizeof cfg);
    const char *a2[] = {"--config", cfg, "--set", "train.steps=many", NULL};
    expect_train_refuses(&e, "bad --set", a2, "--set train.steps=many", NULL);
    /* LPIPS without its weights names the converter */
    const char *a3[] = {"--config", cfg, "--set", "loss.lpips=0.1", NULL};
    expect_train_refuses(&e, "lpips without weights", a3, "scripts/convert_lpips.py", "loss.lpips");
    /* VGG likewise */
    const char *a4[] = {"--config", cfg, "--set", "loss.vgg=0.1", NULL};
    expect_train_refuses(&e, "vgg without weights", a4, "scripts/convert_vgg19.py", NULL);
    /* a dataset root that does not exist is named */
    char missing[300], set_root[320];
    snprintf(missing, sizeof missing, "%s/no_such_dataset", e.dir);
    snprintf(set_root, sizeof set_root, "data.root=%s", missing);
    const char *a5[] = {"--config", cfg, "--set", set_root, NULL};
    expect_train_refuses(&e, "missing dataset root", a5, missing, NULL);
    /* standard MS-SSIM at 64 px: refused with the minimum */
    const char *a6[] = {"--config", cfg, "--set", "loss.ms_ssim=1", NULL};
    expect_train_refuses(&e, "standard MS-SSIM at 64 px", a6, "176", "MS-SSIM");
    /* dmshn_compat at 64 px is fine; at 8 px it is not (16) — checked without training */
    const char *a7[] = {"--config",         cfg, "--set", "loss.ms_ssim=1", "--set", "loss.msssim_mode=dmshn_compat",
                        "--set", "data.resize_h=0", "--set", "data.resize_w=0", "--set", "data.crop_h=16", "--set",
                        "data.crop_w=8", NULL};
    expect_train_refuses(&e, "8 px training size", a7, "multiples of 16", NULL);
    /* a size the model cannot take, and no size at all */
    const char *a8[] = {"--config", cfg, "--set", "data.resize_w=72", NULL};
    expect_train_refuses(&e, "width 72 for dmshn", a8, "multiples of 16", NULL);
    const char *a9[] = {"--config", cfg, "--set", "data.resize_h=0", NULL};
    expect_train_refuses(&e, "no training size", a9, "resize_h", NULL);
    /* the adversarial loss is for Glass-Net */
    const char *a10[] = {"--config", cfg, "--set", "loss.adv=1", NULL};
    expect_train_refuses(&e, "adv for dmshn", a10, "adversarial", "glassnet");
    /* a missing config file */
    char nofile[300];
    snprintf(nofile, sizeof nofile, "%s/none.ini", e.dir);
    const char *a11[] = {"--config", nofile, NULL};
    expect_train_refuses(&e, "missing config", a11, nofile, NULL);
    env_close(&e);
}

/* Errors the trainer wraps with context (the split, the variant, model.init_from,
 * model.init_dmshn) keep their cause whole and say their context once. */
static void wrapped_errors_keep_their_cause(void) {
    env e;
    env_open(&e, 4, 64);
    char cfg[256], glass[300], none[300];
    write_config(&e, "wrapped",
                 "[data]\nresize_h = 64\nresize_w = 64\n[model]\nname = dmshn\n[train]\nsteps = 2\nbatch = 1\n", cfg,
                 sizeof cfg);
    /* a checkpoint of another model */
    snprintf(glass, sizeof glass, "%s/glassnet.h5", e.dir);
    snprintf(none, sizeof none, "%s/no_such.h5", e.dir);
    bk_ctx ctx;
    bk_model *g = NULL;
    if (bk_ctx_init(&ctx) != BK_OK || bk_model_create(&ctx, "glassnet", "", 1, &g) != BK_OK ||
        bk_model_save(g, glass, NULL) != BK_OK) {
        printf("    cannot make a glassnet checkpoint: %s\n", bk_last_error());
        exit(1);
    }
    bk_model_free(&ctx, g);
    bk_ctx_free(&ctx);
    char s_from[400], s_dmshn[400], want_from[400];
    snprintf(s_from, sizeof s_from, "model.init_from=%s", glass);
    snprintf(s_dmshn, sizeof s_dmshn, "model.init_dmshn=%s", none);
    snprintf(want_from, sizeof want_from, "%s holds a glassnet model, not dmshn", glass);
    struct {
        const char *set1, *set2, *cause, *context;
    } cases[] = {
        {"data.split=bogus", NULL, "unknown split \"bogus\"", "--set"},
        {"model.variant=no_such", NULL, "model dmshn has no variant switch \"no_such\"", "--set"},
        {s_from, NULL, want_from, "model.init_from:"},
        {s_dmshn, "model.name=stacked_dmshn", none, "model.init_dmshn:"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *sets[] = {cases[i].set1, cases[i].set2};
        bk_train_result r;
        bk_status st = train_config(&e, "wrapped", cfg, sets, cases[i].set2 ? 2 : 1, &r);
        const char *msg = bk_last_error();
        EXPECT(st != BK_OK, "--set %s accepted", cases[i].set1);
        EXPECT(strstr(msg, cases[i].cause) != NULL, "--set %s: the cause (%s) is not whole in: %s", cases[i].set1,
               cases[i].cause, msg);
        const char *first = strstr(msg, cases[i].context);
        EXPECT(first && !strstr(first + 1, cases[i].context), "--set %s: \"%s\" not said exactly once: %s",
               cases[i].set1, cases[i].context, msg);
    }
    env_close(&e);
}

/* AMPN's smallest size with batch 1 leaves one value per channel in its deepest batch norm:
 * that is a configuration the user chose, so it must be refused with an error (error.h), not an
 * internal-error abort. */
static void ampn_batch_of_one_at_128_is_an_error_not_a_crash(void) {
    env e;
    env_open(&e, 4, 128);
    char cfg[256];
    write_config(&e, "ampn_b1",
                 "[data]\nresize_h = 128\nresize_w = 128\n[model]\nname = ampn\n[train]\nsteps = 2\nbatch = 1\n"
                 "val_every = 0\nsamples = 0\n",
                 cfg, sizeof cfg);
    const char *args[] = {"--config", cfg, "--no-progress", NULL};
    char *err = NULL;
    int status = run_train(&e, "ampn_b1", args, 300, NULL, &err);
    EXPECT(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 1,
           "train with AMPN, 128x128, batch 1: %s %d; stderr: %s", WIFEXITED(status) ? "exit status" : "killed by signal",
           WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), err ? err : "");
    EXPECT(err && strstr(err, "batch"), "the message does not mention the batch: %s", err ? err : "");
    free(err);
    env_close(&e);
}

BK_TEST_MAIN(BK_TEST(ampn_recipe_trains), BK_TEST(ampn_external_mask_trains),
             BK_TEST(dmshn_stage1_stage2_and_stacked_train), BK_TEST(bggan_stage1_and_stage2_train),
             BK_TEST(resume_is_bit_exact_ampn), BK_TEST(resume_is_bit_exact_bggan_stage2), BK_TEST(kernel_choices_survive_resume),
             BK_TEST(killed_runs_leave_a_loadable_checkpoint), BK_TEST(a_failing_checkpoint_write_keeps_the_previous_one),
             BK_TEST(non_finite_steps_are_skipped_then_stop_the_run), BK_TEST(ctrl_c_stops_with_status_130_and_a_checkpoint),
             BK_TEST(config_errors_surface_through_train), BK_TEST(wrapped_errors_keep_their_cause),
             BK_TEST(ampn_batch_of_one_at_128_is_an_error_not_a_crash))
