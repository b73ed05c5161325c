/* test_mpi_train.c — data-parallel training (train/dist.h) under mpirun; `make MPI=1 check-mpi`.
 *
 * Runs build-mpi/bin/train as one process and as two ranks of `mpirun --allow-run-as-root -np 2`
 * on loopback (TCP on lo), one OpenMP thread per rank, on a tiny synthetic dataset, and checks:
 *  - DMSHN (stage 1: L1 + 0.1 SSIM) trained 10 steps on 2 ranks ends with the weights of one
 *    process with the same global batch: for every parameter tensor max|d| <= 1e-5 W, W the
 *    largest |w| of the model (the worst ratios are printed); the same losses and validation in
 *    log.csv; rank 0 alone prints and writes; negative control: another seed is far outside;
 *  - resume under mpirun (global batch 4, 2 per rank): 5 steps, then --resume to 10, bit-identical
 *    to 10 steps on 2 ranks and within the bound of 10 steps of one process (control: the step-5
 *    checkpoint is not);
 *  - a global batch that the ranks cannot share is refused naming train.batch and the rank count;
 *  - an unreadable image met by one rank ends the whole job with the file named (no hang);
 *  - SIGINT to rank 1 alone stops both ranks at the same step, and rank 0 writes that step.
 *
 * The runs use Adam with eps = 0.1 (lr 1e-3). With the recipe's eps = 1e-8 an update is
 * lr sign(g) wherever |g| >> eps, so float rounding (any change of summation order; one process on
 * 1 or 2 threads already) flips single updates by 2 lr and no weight bound much below 1e-3 W holds;
 * with a large eps the update is a smooth function of the gradient and the bound measures the
 * gradients. Zero-initialised biases are held to W, not to their own max|w|: the gradient sums of
 * some cancel to far below the rounding of their terms (docs/MULTI_MACHINE.md has the figures).
 * BK_TEST_KEEP=1 keeps the temporary directory. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/h5.h"
#include "data/ebb.h"
#include "data/synth.h"
#include "models/checkpoint.h"
#include "models/model.h"
#include "tests/support/harness.h"

enum { PAIRS = 8, SIDE = 64 };
#define BOUND 1e-5 /* per tensor: max|d| <= BOUND * max|w| */

static char dir[PATH_MAX / 4];       /* shared by the cases: dataset, configs, runs */
static char root[PATH_MAX / 4 + 8];  /* the dataset */
static char train_bin[PATH_MAX];

/* ---------------------------------------------------------------- helpers */

static int count_of(const char *text, const char *what) {
    int n = 0;
    for (const char *p = text; p && (p = strstr(p, what)); p += strlen(what)) n++;
    return n;
}

static bool exists(const char *path) { return access(path, F_OK) == 0; }

/* ---------------------------------------------------------------- running train */

typedef struct proc {
    pid_t pid;
    char out[PATH_MAX], err[PATH_MAX];
} proc;

/* Starts train (ranks 0: one process; otherwise under mpirun -np ranks) with `args`
 * (NULL-terminated); stdout and stderr go to DIR/<tag>.out and .err. */
static bool start(proc *p, const char *tag, int ranks, const char *const *args) {
    snprintf(p->out, sizeof p->out, "%s/%s.out", dir, tag);
    snprintf(p->err, sizeof p->err, "%s/%s.err", dir, tag);
    const char *argv[64];
    int n = 0;
    if (ranks > 0) {
        static const char *const mpirun[] = {"mpirun", "--allow-run-as-root", "-np", NULL, "-x", "OMP_NUM_THREADS=1",
                                             "--mca", "btl", "self,tcp", "--mca", "btl_tcp_if_include", "lo",
                                             "--mca", "oob_tcp_if_include", "lo"};
        static char np[16];
        snprintf(np, sizeof np, "%d", ranks);
        for (size_t i = 0; i < sizeof mpirun / sizeof mpirun[0]; i++) argv[n++] = mpirun[i] ? mpirun[i] : np;
    }
    argv[n++] = train_bin;
    for (int i = 0; args[i] && n < 63; i++) argv[n++] = args[i];
    argv[n] = NULL;
    fflush(stdout);
    p->pid = fork();
    if (p->pid < 0) return false;
    if (p->pid == 0) {
        int o = open(p->out, O_WRONLY | O_CREAT | O_TRUNC, 0644), e = open(p->err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0) _exit(127);
        dup2(o, 1);
        dup2(e, 2);
        setenv("OMP_NUM_THREADS", "1", 1);
        alarm(0);
        execvp(argv[0], (char *const *)argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return true;
}

/* The exit status (as from waitpid), or -1 after killing it at the time limit. */
static int finish(proc *p, double seconds) {
    double t0 = bk_test_now();
    int status = 0;
    for (;;) {
        pid_t r = waitpid(p->pid, &status, WNOHANG);
        if (r == p->pid) return status;
        if (r < 0 && errno != EINTR) return -1;
        if (bk_test_now() - t0 > seconds) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &status, 0);
            printf("    %s: no end in %.0f s (killed)\n", p->out, seconds);
            return -1;
        }
        bk_test_sleep_ms(20);
    }
}

static void print_file(const char *path) {
    char *t = bk_test_read_file(path, NULL);
    if (!t) return;
    printf("    --- %s\n%s", path, t);
    free(t);
}

/* Runs train to completion; true if it exited with status 0 (otherwise its output is shown). */
static bool run_ok(const char *tag, int ranks, const char *const *args) {
    proc p;
    if (!start(&p, tag, ranks, args)) return false;
    int st = finish(&p, 600);
    bool ok = st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    if (!ok) {
        print_file(p.out);
        print_file(p.err);
    }
    return ok;
}

/* DIR/<name>.ini: DMSHN stage 1 on the dataset at 64x64 with flips, 10 steps, global batch
 * `batch`, a log row every 5 steps, validation (2 images, one sample PNG) at the end. */
static void dataset(void);
static void write_config(const char *name, int batch, char *path, size_t len) {
    dataset();
    snprintf(path, len, "%s/%s.ini", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        printf("    cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
    fprintf(f,
            "[run]\nname = %s\nout_dir = %s/runs\n\n[data]\nroot = %s\nsplit = tail:2\nresize_h = %d\nresize_w = %d\n"
            "hflip = true\nvflip = true\n\n[model]\nname = dmshn\n\n[train]\nsteps = 10\nbatch = %d\nlr = 1e-3\neps = 0.1\n"
            "log_every = 5\nval_every = 0\nval_max_images = 2\nckpt_every = 100\nsamples = 1\n\n"
            "[loss]\nl1 = 1\nssim = 0.1\n",
            name, dir, root, SIDE, SIDE, batch);
    fclose(f);
}

/* ---------------------------------------------------------------- comparing */

/* The worst per-tensor max|a - b| over the parameters of two checkpoints, divided by the largest
 * |b| of the whole model (-1 if they cannot be compared; the reason is reported); *own gets the
 * worst max|a - b| / max|b| of a tensor on its own scale. */
static double worst_ratio(const char *pa, const char *pb, char *worst_name, size_t len, double *own) {
    bk_ctx ctx;
    if (bk_ctx_init(&ctx) != BK_OK) return -1;
    bk_model *a = NULL, *b = NULL;
    double worst = -1;
    if (bk_model_load(&ctx, pa, &a) != BK_OK || bk_model_load(&ctx, pb, &b) != BK_OK) {
        bk_test_fail(__FILE__, __LINE__, "loading: %s", bk_last_error());
    } else if (a->kind != b->kind || a->params.n != b->params.n) {
        bk_test_fail(__FILE__, __LINE__, "%s and %s hold different models", pa, pb);
    } else {
        int compared = 0;
        double scale = 0, worst_d = 0;
        worst = 0, *own = 0;
        for (int i = 0; i < a->params.n; i++) {
            const bk_param *x = &a->params.v[i], *y = &b->params.v[i];
            if (x->kind != BK_PARAM) continue;
            int64_t n = bk_numel(x->t);
            if (strcmp(x->name, y->name) || n != bk_numel(y->t)) {
                bk_test_fail(__FILE__, __LINE__, "parameter %d: %s vs %s", i, x->name, y->name);
                worst = -1;
                break;
            }
            double d = 0, w = 0;
            for (int64_t j = 0; j < n; j++) {
                double dj = fabs((double)x->t->data[j] - y->t->data[j]);
                if (!(dj <= d)) d = dj; /* NaN counts as the worst */
                if (fabs(y->t->data[j]) > w) w = fabs(y->t->data[j]);
            }
            double r = d / (w > 0 ? w : 1e-30);
            if (!(r <= *own)) *own = r;
            if (!(d <= worst_d)) {
                worst_d = d;
                snprintf(worst_name, len, "%s", x->name);
            }
            if (w > scale) scale = w;
            compared++;
        }
        if (worst >= 0) worst = worst_d / (scale > 0 ? scale : 1e-30);
        EXPECT(compared > 10, "only %d parameter tensors compared", compared);
    }
    if (a) bk_model_free(&ctx, a);
    if (b) bk_model_free(&ctx, b);
    bk_ctx_free(&ctx);
    return worst;
}

/* The number of parameters and buffers that are not bit-identical in two checkpoints (-1: not
 * comparable). */
static int bit_differences(const char *pa, const char *pb) {
    bk_ctx ctx;
    if (bk_ctx_init(&ctx) != BK_OK) return -1;
    bk_model *a = NULL, *b = NULL;
    int differ = -1;
    if (bk_model_load(&ctx, pa, &a) == BK_OK && bk_model_load(&ctx, pb, &b) == BK_OK && a->kind == b->kind &&
        a->params.n == b->params.n) {
        differ = 0;
        for (int i = 0; i < a->params.n; i++) {
            const bk_tensor *x = a->params.v[i].t, *y = b->params.v[i].t;
            if (bk_numel(x) != bk_numel(y) || memcmp(x->data, y->data, (size_t)bk_numel(x) * sizeof(float))) differ++;
        }
    }
    if (a) bk_model_free(&ctx, a);
    if (b) bk_model_free(&ctx, b);
    bk_ctx_free(&ctx);
    return differ;
}

static int64_t attr_step(const char *path) {
    bk_h5 f;
    int64_t v = -1;
    if (bk_h5_open(&f, path) != BK_OK) return -1;
    if (bk_h5_get_attr_int(&f, "step", &v) != BK_OK) v = -1;
    bk_h5_close(&f, false);
    return v;
}

/* Checks that `got` is within the bound of `want` and prints the worst ratios. */
static void expect_same_weights(const char *what, const char *got, const char *want) {
    char name[256] = "";
    double own, r = worst_ratio(got, want, name, sizeof name, &own);
    printf("    %s: worst max|d|/W %.3g (%s), bound %.0e; on each tensor's own max|w| %.3g\n", what, r, name, BOUND, own);
    EXPECT(r >= 0 && r <= BOUND, "%s: %s is %.3g W from the one-process weights (bound %g)", what, name, r, BOUND);
}

/* The same, expecting a difference beyond the bound (a negative control). */
static void expect_other_weights(const char *what, const char *got, const char *want) {
    char name[256] = "";
    double own, r = worst_ratio(got, want, name, sizeof name, &own);
    printf("    control, %s: worst max|d|/W %.3g (%s)\n", what, r, name);
    EXPECT(r > BOUND, "negative control %s: within the bound (%.3g), so the comparison cannot see a difference", what,
           r);
}

/* Column `col` (0-based) of the data rows of a log.csv, and the number of header lines. */
static int log_column(const char *path, int col, double *v, int max, int *headers) {
    char *t = bk_test_read_file(path, NULL);
    int n = 0;
    *headers = 0;
    if (!t) return 0;
    char *save = NULL;
    for (char *line = strtok_r(t, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!strncmp(line, "step,", 5)) {
            (*headers)++;
            continue;
        }
        const char *p = line;
        for (int k = 0; k < col && p; k++) p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL;
        if (p && n < max) v[n++] = *p && *p != ',' ? atof(p) : NAN;
    }
    free(t);
    return n;
}

/* The dataset, made by the first case that needs it (not before the cases are forked: an OpenMP
 * thread pool does not survive fork). */
static void dataset(void) {
    char done[PATH_MAX];
    snprintf(done, sizeof done, "%s/ebb.done", dir);
    if (exists(done)) return;
    if (bk_synth_write(root, 0, PAIRS, SIDE, 7, 0) != BK_OK) {
        printf("    synthetic dataset: %s\n", bk_last_error());
        exit(1);
    }
    FILE *f = fopen(done, "w");
    if (f) fclose(f);
}

/* A one-process run of the config (global batch `batch`), made once and shared by the cases. */
static bool reference(const char *name, int batch, const char *const *extra, char *ckpt, size_t len) {
    char cfg[PATH_MAX];
    write_config(name, batch, cfg, sizeof cfg);
    snprintf(ckpt, len, "%s/runs/%s/ckpt/last.h5", dir, name);
    if (exists(ckpt)) return true;
    const char *args[16] = {"--config", cfg, "--no-progress"};
    int n = 3;
    for (int i = 0; extra && extra[i]; i++) args[n++] = extra[i];
    args[n] = NULL;
    bool ok = run_ok(name, 0, args);
    EXPECT(ok && exists(ckpt), "the one-process reference %s failed", name);
    return ok;
}

/* ---------------------------------------------------------------- cases */

static void two_ranks_train_like_one_process(void) {
    char ref[PATH_MAX], cfg[PATH_MAX], got[PATH_MAX], other[PATH_MAX];
    if (!reference("one_b2", 2, NULL, ref, sizeof ref)) return;
    write_config("two_b2", 2, cfg, sizeof cfg);
    const char *args[] = {"--config", cfg, "--no-progress", NULL};
    if (!run_ok("two_b2", 2, args)) {
        bk_test_fail(__FILE__, __LINE__, "mpirun -np 2 train failed");
        return;
    }
    snprintf(got, sizeof got, "%s/runs/two_b2/ckpt/last.h5", dir);
    EXPECT(attr_step(got) == 10, "%s: step %lld, want 10", got, (long long)attr_step(got));
    expect_same_weights("2 ranks x batch 1 vs 1 process x batch 2, 10 steps", got, ref);

    /* rank 0 alone prints: one start line naming the ranks, one end line */
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/two_b2.out", dir);
    char *out = bk_test_read_file(path, NULL);
    EXPECT(out && count_of(out, "on 2 ranks (1 per rank)") == 1 && count_of(out, "train: finished after 10 steps") == 1 &&
               count_of(out, "train:") == 2 && count_of(out, "\nstep 10 ") == 1,
           "stdout of the 2-rank run is not rank 0's alone:\n%s", out ? out : "(none)");
    free(out);

    /* log.csv: the global batch's losses and the validation over both ranks' shares */
    char la[PATH_MAX], lb[PATH_MAX];
    snprintf(la, sizeof la, "%s/runs/two_b2/log.csv", dir);
    snprintf(lb, sizeof lb, "%s/runs/one_b2/log.csv", dir);
    static const struct {
        int col;
        const char *name;
        double tol;
    } cols[] = {{3, "loss", 1e-4}, {4, "l1", 1e-4}, {5, "ssim", 1e-4}, {14, "val_psnr", 1e-3}, {15, "val_ssim", 1e-3}};
    for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++) {
        double va[8], vb[8];
        int ha, hb, na = log_column(la, cols[c].col, va, 8, &ha), nb = log_column(lb, cols[c].col, vb, 8, &hb);
        EXPECT(ha == 1 && hb == 1 && na == 2 && nb == 2, "%s: %d/%d headers, %d/%d rows, want 1 and 2", la, ha, hb, na,
               nb);
        for (int i = 0; i < na && i < nb; i++) {
            if (isnan(vb[i]) && cols[c].col >= 14 && i == 0) continue; /* no validation at step 5 */
            EXPECT(fabs(va[i] - vb[i]) <= cols[c].tol * fmax(fabs(vb[i]), 1.0), "log.csv %s row %d: %.6g on 2 ranks, "
                   "%.6g in one process", cols[c].name, i + 1, va[i], vb[i]);
        }
    }
    snprintf(path, sizeof path, "%s/runs/two_b2/samples/step0000010_0.png", dir);
    EXPECT(exists(path), "no sample %s from rank 0", path);

    /* negative control: the same run with another seed */
    const char *seed2[] = {"--set", "run.seed=2", NULL};
    if (reference("one_b2_seed2", 2, seed2, other, sizeof other))
        expect_other_weights("seed 2 vs seed 1", other, ref);
}

static void resume_under_mpirun_continues_the_run(void) {
    char ref[PATH_MAX], cfg[PATH_MAX], last[PATH_MAX], half[PATH_MAX], whole[PATH_MAX];
    if (!reference("one_b4", 4, NULL, ref, sizeof ref)) return;
    write_config("two_b4_whole", 4, cfg, sizeof cfg);
    const char *all[] = {"--config", cfg, "--no-progress", NULL};
    if (!run_ok("two_b4_whole", 2, all)) {
        bk_test_fail(__FILE__, __LINE__, "mpirun: 10 steps failed");
        return;
    }
    snprintf(whole, sizeof whole, "%s/runs/two_b4_whole/ckpt/last.h5", dir);
    write_config("two_b4", 4, cfg, sizeof cfg);
    const char *first[] = {"--config", cfg, "--no-progress", "--set", "train.steps=5", NULL};
    if (!run_ok("two_b4_first", 2, first)) {
        bk_test_fail(__FILE__, __LINE__, "mpirun: the first 5 steps failed");
        return;
    }
    snprintf(last, sizeof last, "%s/runs/two_b4/ckpt/last.h5", dir);
    snprintf(half, sizeof half, "%s/half.h5", dir);
    EXPECT(link(last, half) == 0, "link %s: %s", last, strerror(errno)); /* the step-5 file survives the rename */
    EXPECT(attr_step(half) == 5, "%s: step %lld, want 5", half, (long long)attr_step(half));
    const char *second[] = {"--resume", last, "--no-progress", "--set", "train.steps=10", NULL};
    if (!run_ok("two_b4_resumed", 2, second)) {
        bk_test_fail(__FILE__, __LINE__, "mpirun: the resumed steps failed");
        return;
    }
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/two_b4_resumed.out", dir);
    char *out = bk_test_read_file(path, NULL);
    EXPECT(out && count_of(out, "(resumed)") == 1 && count_of(out, "on 2 ranks (2 per rank)") == 1,
           "the resumed run's output:\n%s", out ? out : "(none)");
    free(out);
    EXPECT(attr_step(last) == 10, "%s: step %lld, want 10", last, (long long)attr_step(last));
    int differ = bit_differences(last, whole);
    printf("    5 + 5 resumed steps vs 10 steps, both on 2 ranks: %d tensors differ\n", differ);
    EXPECT(differ == 0, "the resumed run differs from the uninterrupted one on 2 ranks in %d tensors", differ);
    expect_same_weights("2 ranks x batch 2, 5 + 5 resumed steps vs 1 process x batch 4, 10 steps", last, ref);
    expect_other_weights("the step-5 checkpoint vs step 10", half, ref);
    double v[8];
    int headers;
    snprintf(path, sizeof path, "%s/runs/two_b4/log.csv", dir);
    int rows = log_column(path, 0, v, 8, &headers);
    EXPECT(headers == 1 && rows == 2 && v[1] == 10, "%s after resuming: %d headers, %d rows", path, headers, rows);
}

static void indivisible_batch_is_refused(void) {
    char cfg[PATH_MAX];
    write_config("odd", 3, cfg, sizeof cfg);
    const char *args[] = {"--config", cfg, "--no-progress", NULL};
    proc p;
    if (!start(&p, "odd", 2, args)) return;
    int st = finish(&p, 120);
    char *err = bk_test_read_file(p.err, NULL);
    EXPECT(st >= 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0), "batch 3 on 2 ranks: accepted or hung");
    EXPECT(err && strstr(err, "train.batch = 3") && strstr(err, "2 ranks") && strstr(err, "odd.ini"),
           "the refusal does not name train.batch, the config and the rank count:\n%s", err ? err : "(none)");
    free(err);
    char log[PATH_MAX];
    snprintf(log, sizeof log, "%s/runs/odd/log.csv", dir);
    EXPECT(!exists(log), "%s written by a refused run", log);
}

static void error_on_one_rank_ends_the_job(void) {
    /* a copy of the dataset with one target image cut short: its header still reads (the scan
     * passes), its pixels do not, so the one rank whose shard holds it fails mid-run */
    char bad_root[PATH_MAX], bad[PATH_MAX], cfg[PATH_MAX];
    snprintf(bad_root, sizeof bad_root, "%s/ebb_bad", dir);
    if (bk_synth_write(bad_root, 0, PAIRS, SIDE, 7, 0) != BK_OK) {
        bk_test_fail(__FILE__, __LINE__, "synthetic dataset: %s", bk_last_error());
        return;
    }
    bk_ebb_index ix;
    if (bk_ebb_scan(bad_root, &ix) != BK_OK) {
        bk_test_fail(__FILE__, __LINE__, "scan: %s", bk_last_error());
        return;
    }
    bk_ebb_path(&ix, 2, BK_EBB_BOKEH, bad, sizeof bad);
    bk_ebb_index_free(&ix);
    struct stat sb;
    EXPECT(stat(bad, &sb) == 0 && truncate(bad, sb.st_size * 6 / 10) == 0, "truncating %s", bad);
    write_config("broken", 2, cfg, sizeof cfg);
    char set_root[PATH_MAX + 16];
    snprintf(set_root, sizeof set_root, "data.root=%s", bad_root);
    const char *args[] = {"--config", cfg, "--no-progress", "--set", set_root, "--set", "train.steps=40", NULL};
    proc p;
    if (!start(&p, "broken", 2, args)) return;
    int st = finish(&p, 300);
    char *err = bk_test_read_file(p.err, NULL);
    EXPECT(st >= 0, "the job did not end after the error");
    EXPECT(st >= 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0), "the job succeeded with %s cut short", bad);
    EXPECT(err && strstr(err, bad) && strstr(err, "of 2):"), "the error names neither the file nor the rank:\n%s",
           err ? err : "(none)");
    if (err) {
        const char *line = strstr(err, "train (rank");
        if (line) printf("    %.*s\n", (int)strcspn(line, "\n"), line);
    }
    free(err);
}

/* The pid of the process with OMPI_COMM_WORLD_RANK=rank whose parent is `parent`, or -1. */
static pid_t rank_pid(pid_t parent, int rank) {
    DIR *d = opendir("/proc");
    if (!d) return -1;
    pid_t found = -1;
    char want[64];
    snprintf(want, sizeof want, "OMPI_COMM_WORLD_RANK=%d", rank);
    for (struct dirent *e; found < 0 && (e = readdir(d));) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0) continue;
        char path[64];
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        char *stat = bk_test_read_file(path, NULL);
        const char *close_paren = stat ? strrchr(stat, ')') : NULL;
        int ppid = -1;
        if (close_paren) sscanf(close_paren + 2, "%*c %d", &ppid);
        free(stat);
        if (ppid != parent) continue;
        snprintf(path, sizeof path, "/proc/%ld/environ", pid);
        int fd = open(path, O_RDONLY);
        if (fd < 0) continue;
        static char env[1 << 16];
        ssize_t n = read(fd, env, sizeof env - 1);
        close(fd);
        env[n > 0 ? n : 0] = '\0';
        for (ssize_t i = 0; i < n; i += (ssize_t)strlen(env + i) + 1)
            if (!strcmp(env + i, want)) found = (pid_t)pid;
    }
    closedir(d);
    return found;
}

static void signal_on_one_rank_stops_every_rank(void) {
    char cfg[PATH_MAX];
    write_config("stop", 2, cfg, sizeof cfg);
    const char *args[] = {"--config", cfg, "--no-progress", "--set", "train.steps=100000", "--set", "train.log_every=1",
                          NULL};
    proc p;
    if (!start(&p, "stop", 2, args)) return;
    /* wait for a few steps in log.csv, then interrupt rank 1 alone (rank 0 is the one that writes) */
    char log[PATH_MAX];
    snprintf(log, sizeof log, "%s/runs/stop/log.csv", dir);
    pid_t r1 = -1;
    for (double t0 = bk_test_now(); bk_test_now() - t0 < 120;) {
        double v[8];
        int headers;
        if (log_column(log, 0, v, 8, &headers) >= 3 && (r1 = rank_pid(p.pid, 1)) > 0) break;
        if (waitpid(p.pid, NULL, WNOHANG) == p.pid) break;
        bk_test_sleep_ms(100);
    }
    EXPECT(r1 > 0, "no rank 1 process under mpirun (pid %d) after 3 logged steps", (int)p.pid);
    if (r1 > 0) kill(r1, SIGINT);
    int st = finish(&p, 120);
    EXPECT(st >= 0, "the job did not stop after SIGINT to rank 1");
    char *out = bk_test_read_file(p.out, NULL);
    const char *at = out ? strstr(out, "interrupted at step ") : NULL;
    long step = at ? atol(at + strlen("interrupted at step ")) : -1;
    char last[PATH_MAX];
    snprintf(last, sizeof last, "%s/runs/stop/ckpt/last.h5", dir);
    EXPECT(step >= 3 && attr_step(last) == step, "interrupted at step %ld, last.h5 holds step %lld", step,
           (long long)attr_step(last));
    printf("    SIGINT to rank 1: both ranks stopped at step %ld, last.h5 step %lld\n", step, (long long)attr_step(last));
    free(out);
}

int main(int argc, char **argv) {
    char exe[PATH_MAX / 2];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    /* build-mpi/tests/mpi/test_mpi_train -> build-mpi/bin/train */
    snprintf(train_bin, sizeof train_bin, "%s/bin/train", dirname(dirname(dirname(exe))));
    if (access(train_bin, X_OK) != 0) {
        printf("no %s: run make MPI=1\n0 passed, 1 failed\n", train_bin);
        return 1;
    }
    snprintf(dir, sizeof dir, "/tmp/bk_mpi_XXXXXX");
    if (!mkdtemp(dir)) {
        printf("mkdtemp: %s\n0 passed, 1 failed\n", strerror(errno));
        return 1;
    }
    snprintf(root, sizeof root, "%s/ebb", dir);
    static const bk_test tests[] = {
        BK_TEST(two_ranks_train_like_one_process), BK_TEST(resume_under_mpirun_continues_the_run),
        BK_TEST(indivisible_batch_is_refused), BK_TEST(error_on_one_rank_ends_the_job),
        BK_TEST(signal_on_one_rank_stops_every_rank)};
    int rc = bk_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
    const char *keep = getenv("BK_TEST_KEEP");
    if (keep && *keep && *keep != '0') printf("kept %s\n", dir);
    else bk_test_remove_tmpdir(strdup(dir));
    return rc;
}
