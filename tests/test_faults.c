/* test_faults.c — what bokehlab guarantees when things go wrong (docs/GUARANTEES.md).
 *
 * Write errors, injected at the system-call level (tests/support/faults.h: a seccomp filter
 * hands each write, fsync, rename and close of the program to the test, which fails the chosen
 * ones with ENOSPC or EIO; root's disregard for permissions does not matter):
 *  - a checkpoint write that hits a full disk half-way, an fsync that fails with EIO, a rename
 *    that fails: `train --resume` stops with exit status 1 and a message naming the file and the
 *    operating system's error; ckpt/last.h5 is bit-identical to what it was before and loads; no
 *    temporary file is left; a following `train --resume` continues to the end;
 *  - a full disk under log.csv stops the run the same way (the log is the run's record), and
 *    the resumed log holds every step once; a full disk when the run starts stops it before
 *    config.ini or anything else is replaced;
 *  - a sample PNG that cannot be written is a warning naming the file and the error, and the run
 *    goes on (a preview is not worth a run);
 *  - eval (per_image.csv; table.csv, whose previous content stays) and render (PNG and JPEG)
 *    stop with exit status 1, the file and the error, and leave no partial file.
 * kill -9: with train.ckpt_every = K, a run is killed at random moments (the seed is printed)
 * and resumed each time; the resumed run starts at the checkpoint's step s, with (the last step
 * logged before the kill) - s <= K, and the survivor ends with the weights, Adam moments,
 * counters and logged losses of an uninterrupted run, bit for bit.
 * Damaged checkpoints: a real training checkpoint truncated at 45 lengths and with one bit
 * flipped at 200 positions (100 spread over the whole file, 100 in its metadata, i.e. outside
 * its chunks of data; fixed seed) is read as bk_model_load and `train --resume` read it, each
 * case from scratch (HDF5 shut down in between): every case is refused with a message naming
 * the file, or (a flip in unused bytes) reads exactly the original data; never a crash (the case
 * is named if one happens), never other values.
 * bk_model_load itself reads the truncated files and the harmless flips, and a selection goes
 * through `train --resume`, `forward` and `eval`. (The sanitizer build reads 1 flip in 4 and 1
 * truncation in 3 of the sweep.)
 * The programs are the build's own (build-asan/bin under make SAN=1, where a sanitizer report
 * in their output fails the case). DMSHN on a 6-image 64x64 synthetic dataset; a checkpoint
 * with its Adam moments is 65 MB.
 *   test_faults [substring]      BK_TEST_KEEP=1 keeps the temporary directories.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <omp.h>
#include <signal.h>
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
#include "tests/support/faults.h"
#include "tests/support/harness.h"
#include "train/optim.h"

/* ---------------------------------------------------------------- files */

static void write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    BK_CHECK(f && fwrite(data, 1, len, f) == len && fclose(f) == 0, "cannot write %s", path);
}

static bool exists(const char *path) { return access(path, F_OK) == 0; }

static bool same_file(const char *a, const char *b) {
    size_t na = 0, nb = 0;
    char *x = bk_test_read_file(a, &na), *y = bk_test_read_file(b, &nb);
    bool same = x && y && na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}

static void copy_file(const char *from, const char *to) {
    size_t n;
    char *d = bk_test_read_file(from, &n);
    BK_CHECK(d, "cannot read %s", from);
    write_file(to, d, n);
    free(d);
}

/* The entries of a directory other than . and .. (0 if it cannot be read). */
static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
    closedir(d);
    return n;
}

static int64_t ckpt_step(const char *path) {
    bk_h5 f;
    int64_t step = -1;
    if (bk_h5_open(&f, path) != BK_OK) return -1;
    if (bk_h5_get_attr_int(&f, "step", &step) != BK_OK) step = -1;
    bk_h5_close(&f, false);
    return step;
}

static bool model_loads(const char *path) {
    bk_ctx ctx;
    if (bk_ctx_init(&ctx) != BK_OK) return false;
    bk_model *m = NULL;
    bk_status st = bk_model_load(&ctx, path, &m);
    if (st != BK_OK) printf("    bk_model_load %s: %s\n", path, bk_last_error());
    if (m) bk_model_free(&ctx, m);
    bk_ctx_free(&ctx);
    return st == BK_OK;
}

/* The first line of `text` that contains `needle` (for messages), into buf. */
static const char *line_with(const char *text, const char *needle, char *buf, size_t len) {
    const char *p = text ? strstr(text, needle) : NULL;
    if (!p) return snprintf(buf, len, "(none)"), buf;
    const char *a = p, *b = p;
    while (a > text && a[-1] != '\n') a--;
    while (*b && *b != '\n') b++;
    snprintf(buf, len, "%.*s", (int)(b - a), a);
    return buf;
}

/* ---------------------------------------------------------------- the environment */

typedef struct env {
    char *dir;
    char root[300], cfg[300], run[300], last[400], tmp[400], copy[300];
} env;

static const char BODY[] = "[data]\nresize_h = 64\nresize_w = 64\n[model]\nname = dmshn\n[train]\nsteps = 2\n"
                           "batch = 1\nlog_every = 1\nval_every = 0\nckpt_every = 2\nsamples = 0\n";

/* A temporary directory with a 6-image dataset (DIR/ebb) and DIR/run.ini: run "f" in DIR/runs,
 * every image for training (no validation, no best.h5), `body` after the run and data
 * sections. */
static void env_open(env *e, const char *body) {
    memset(e, 0, sizeof *e);
    /* the programs' OpenMP threads sleep while they wait instead of spinning: on a busy
     * machine spinning threads only take the time of the others */
    setenv("OMP_WAIT_POLICY", "passive", 0);
    e->dir = bk_test_tmpdir();
    snprintf(e->root, sizeof e->root, "%s/ebb", e->dir);
    snprintf(e->cfg, sizeof e->cfg, "%s/run.ini", e->dir);
    snprintf(e->run, sizeof e->run, "%s/runs/f", e->dir);
    snprintf(e->last, sizeof e->last, "%s/ckpt/last.h5", e->run);
    snprintf(e->tmp, sizeof e->tmp, "%s/ckpt/last.h5.tmp", e->run);
    snprintf(e->copy, sizeof e->copy, "%s/last_before.h5", e->dir);
    if (bk_synth_write(e->root, 0, 6, 64, 7, 0) != BK_OK) {
        printf("    synthetic dataset: %s\n", bk_last_error());
        exit(1);
    }
    char text[2048];
    snprintf(text, sizeof text, "[run]\nname = f\nout_dir = %s/runs\n[data]\nroot = %s\nsplit = all\n%s", e->dir,
             e->root, body ? body : BODY);
    write_file(e->cfg, text, strlen(text));
}

static void env_close(env *e) {
    const char *keep = getenv("BK_TEST_KEEP");
    if (keep && *keep && *keep != '0') {
        printf("    kept %s\n", e->dir);
        free(e->dir);
        return;
    }
    bk_test_remove_tmpdir(e->dir);
}

/* build/bin/<name> beside build/tests/ (the sanitizer build's, else the regular build's). */
static const char *program(const char *name) {
    static char paths[4][PATH_MAX];
    static int k;
    char exe[PATH_MAX / 2];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    BK_CHECK(n > 0, "cannot read /proc/self/exe");
    exe[n] = '\0';
    char *build = dirname(dirname(exe)); /* .../build/tests/test_faults -> .../build */
    char *p = paths[k = (k + 1) % 4];
    snprintf(p, PATH_MAX, "%s/bin/%s", build, name);
    if (access(p, X_OK) == 0) return p;
    char top[PATH_MAX / 2];
    snprintf(top, sizeof top, "%s", build);
    snprintf(p, PATH_MAX, "%s/build/bin/%s", dirname(top), name);
    if (access(p, X_OK) != 0) {
        printf("    no %s next to the tests: run make\n", name);
        exit(1);
    }
    return p;
}

/* A sanitizer's report in a program's output (make SAN=1 builds the programs with them). */
static const char *sanitizer_report(const char *log) {
    const char *marks[] = {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"};
    for (int i = 0; log && i < 3; i++)
        if (strstr(log, marks[i])) return marks[i];
    return NULL;
}

typedef struct run_out {
    int status;
    char *out, *err;
} run_out;

/* Runs build/bin/<prog> with the arguments (NULL-terminated) under the rules; its output in
 * DIR/<tag>.out and .err. */
static run_out run(const env *e, const char *tag, const char *prog, const char *const *args, bk_fault *rules, int n) {
    const char *argv[48];
    int k = 0;
    argv[k++] = program(prog);
    for (int i = 0; args[i] && k < 47; i++) argv[k++] = args[i];
    argv[k] = NULL;
    char out[400], err[400];
    snprintf(out, sizeof out, "%s/%s.out", e->dir, tag);
    snprintf(err, sizeof err, "%s/%s.err", e->dir, tag);
    run_out r;
    r.status = bk_fault_run(argv, out, err, rules, n, 600);
    r.out = bk_test_read_file(out, NULL);
    r.err = bk_test_read_file(err, NULL);
    const char *san = sanitizer_report(r.err);
    EXPECT(!san, "%s %s: a sanitizer report (%s):\n%s", prog, tag, san, r.err);
    return r;
}

static void run_free(run_out *r) {
    free(r->out);
    free(r->err);
}

static bool exited(const run_out *r, int code) {
    return r->status != -1 && WIFEXITED(r->status) && WEXITSTATUS(r->status) == code;
}

static const char *how(const run_out *r, char *buf, size_t len) {
    if (r->status == -1) snprintf(buf, len, "did not finish");
    else if (WIFEXITED(r->status)) snprintf(buf, len, "exit status %d", WEXITSTATUS(r->status));
    else snprintf(buf, len, "killed by signal %d", WTERMSIG(r->status));
    return buf;
}

/* train --config run.ini: ckpt/last.h5 at step 2, copied to DIR/last_before.h5. */
static bool base_run(env *e) {
    run_out r = run(e, "base", "train", (const char *[]){"--config", e->cfg, "--no-progress", NULL}, NULL, 0);
    char h[64];
    bool ok = exited(&r, 0) && ckpt_step(e->last) == 2;
    EXPECT(ok, "the first 2 steps: %s: %s", how(&r, h, sizeof h), r.err ? r.err : "");
    run_free(&r);
    if (ok) copy_file(e->last, e->copy);
    return ok;
}

/* train --resume last.h5 to step `steps`, without faults: it must finish. */
static void resume_to(env *e, const char *tag, int steps) {
    char set[64], h[64];
    snprintf(set, sizeof set, "train.steps=%d", steps);
    run_out r = run(e, tag, "train", (const char *[]){"--resume", e->last, "--no-progress", "--set", set, NULL}, NULL, 0);
    EXPECT(exited(&r, 0), "the following --resume: %s: %s", how(&r, h, sizeof h), r.err ? r.err : "");
    EXPECT(ckpt_step(e->last) == steps, "after the following --resume last.h5 is at step %" PRId64 ", want %d",
           ckpt_step(e->last), steps);
    run_free(&r);
}

/* The rule failed at least one call (else the case proves nothing). */
static void expect_injected(const bk_fault *f) {
    EXPECT(f->failed > 0, "the fault on \"%s\" was never injected (%d matching calls, %lld bytes)", f->path, f->matched,
           f->written);
    if (f->failed)
        printf("    injected %s on %s after %d matching calls (%lld bytes); %d calls failed\n", strerror(f->error),
               f->first_failed, f->matched - f->failed, f->written, f->failed);
}

/* The message of a refusal names `file` and the operating system's error of the rule. */
static void expect_names(const char *what, const char *err, const char *file, int error) {
    char line[1024];
    EXPECT(err && strstr(err, file), "%s: the message does not name %s: %s", what, file, err ? err : "");
    EXPECT(err && strstr(err, strerror(error)), "%s: the message does not give the error (%s): %s", what,
           strerror(error), err ? err : "");
    printf("    %s: %s\n", what, line_with(err, strerror(error), line, sizeof line));
}

/* ---------------------------------------------------------------- write errors in train */

/* `train --resume` to step 3 under the rule stops (exit status 1) naming `file` and the error;
 * last.h5 stays the step-2 file, loadable, with no temporary file; a following --resume
 * finishes. */
static void train_stops_cleanly(bk_fault *rule, const char *what, const char *file_suffix) {
    env e;
    env_open(&e, NULL);
    if (!base_run(&e)) {
        env_close(&e);
        return;
    }
    char file[500], h[64];
    snprintf(file, sizeof file, "%s/%s", e.run, file_suffix);
    run_out r = run(&e, "faulty", "train",
                    (const char *[]){"--resume", e.last, "--no-progress", "--set", "train.steps=3", NULL}, rule, 1);
    expect_injected(rule);
    EXPECT(exited(&r, 1), "%s: train %s, want exit status 1; stderr: %s", what, how(&r, h, sizeof h),
           r.err ? r.err : "");
    expect_names(what, r.err, file, rule->error);
    EXPECT(same_file(e.last, e.copy), "%s: ckpt/last.h5 is not the file it was before", what);
    EXPECT(!exists(e.tmp), "%s: %s left behind", what, e.tmp);
    EXPECT(model_loads(e.last), "%s: last.h5 does not load", what);
    run_free(&r);
    resume_to(&e, "again", 3);
    env_close(&e);
}

static void checkpoint_write_hits_a_full_disk(void) {
    /* half-way through the 65 MB file: HDF5 has written metadata and part of the data */
    bk_fault f = {.call = BK_FAULT_WRITE, .path = "last.h5.tmp", .after = 20 << 20, .error = ENOSPC};
    train_stops_cleanly(&f, "ENOSPC in the middle of a checkpoint", "ckpt/last.h5");
}

static void checkpoint_fsync_fails_with_eio(void) {
    bk_fault f = {.call = BK_FAULT_FSYNC, .path = "last.h5.tmp", .error = EIO};
    train_stops_cleanly(&f, "EIO from fsync", "ckpt/last.h5");
}

static void checkpoint_rename_fails(void) {
    bk_fault f = {.call = BK_FAULT_RENAME, .path = "last.h5", .error = ENOSPC};
    train_stops_cleanly(&f, "a failing rename", "ckpt/last.h5");
}

/* log.csv on a full disk: the run stops at the first row it cannot write; the resumed log has
 * every step once. */
static void log_csv_hits_a_full_disk(void) {
    env e;
    env_open(&e, NULL);
    if (!base_run(&e)) {
        env_close(&e);
        return;
    }
    bk_fault f = {.call = BK_FAULT_WRITE, .path = "log.csv", .after = 0, .error = ENOSPC};
    char file[500], h[64];
    snprintf(file, sizeof file, "%s/log.csv", e.run);
    run_out r = run(&e, "faulty", "train",
                    (const char *[]){"--resume", e.last, "--no-progress", "--set", "train.steps=3", NULL}, &f, 1);
    expect_injected(&f);
    EXPECT(exited(&r, 1), "train %s, want exit status 1; stderr: %s", how(&r, h, sizeof h), r.err ? r.err : "");
    expect_names("full disk under log.csv", r.err, file, ENOSPC);
    EXPECT(r.err && strstr(r.err, "step 3"), "the message does not say the step (3): %s", r.err ? r.err : "");
    EXPECT(same_file(e.last, e.copy), "ckpt/last.h5 changed");
    EXPECT(model_loads(e.last), "last.h5 does not load");
    run_free(&r);
    resume_to(&e, "again", 3);
    /* every step once */
    char *log = bk_test_read_file(file, NULL);
    int steps[16], n = 0;
    for (char *line = log ? strchr(log, '\n') : NULL; line && line[1] && n < 16; line = strchr(line + 1, '\n'))
        steps[n++] = atoi(line + 1);
    EXPECT(n == 3 && steps[0] == 1 && steps[1] == 2 && steps[2] == 3,
           "log.csv after the resume: %d rows (steps %d %d %d ...), want 1 2 3:\n%s", n, n > 0 ? steps[0] : -1,
           n > 1 ? steps[1] : -1, n > 2 ? steps[2] : -1, log ? log : "");
    free(log);
    env_close(&e);
}

/* The disk is already full when the resumed run starts: it stops at its first write
 * (config.ini, replaced atomically) and changes nothing in the run directory. */
static void run_directory_full_when_resuming(void) {
    env e;
    env_open(&e, NULL);
    if (!base_run(&e)) {
        env_close(&e);
        return;
    }
    char config[400], config_copy[400], log[400], log_copy[400], h[64];
    snprintf(config, sizeof config, "%s/config.ini", e.run);
    snprintf(config_copy, sizeof config_copy, "%s/config_before.ini", e.dir);
    snprintf(log, sizeof log, "%s/log.csv", e.run);
    snprintf(log_copy, sizeof log_copy, "%s/log_before.csv", e.dir);
    copy_file(config, config_copy);
    copy_file(log, log_copy);
    char under[400];
    snprintf(under, sizeof under, "%s/", e.run);
    bk_fault f = {.call = BK_FAULT_WRITE, .path = under, .after = 0, .error = ENOSPC};
    run_out r = run(&e, "faulty", "train",
                    (const char *[]){"--resume", e.last, "--no-progress", "--set", "train.steps=3", NULL}, &f, 1);
    expect_injected(&f);
    EXPECT(exited(&r, 1), "train %s, want exit status 1; stderr: %s", how(&r, h, sizeof h), r.err ? r.err : "");
    expect_names("full disk when resuming", r.err, config, ENOSPC);
    EXPECT(same_file(config, config_copy), "config.ini changed (it must be replaced whole or not at all)");
    EXPECT(same_file(log, log_copy), "log.csv changed");
    EXPECT(same_file(e.last, e.copy), "ckpt/last.h5 changed");
    char samples[400];
    snprintf(samples, sizeof samples, "%s/samples", e.run);
    EXPECT(count_entries(e.run) == 4 && count_entries(samples) == 0,
           "the run directory holds %d entries (want config.ini, log.csv, ckpt, samples)", count_entries(e.run));
    run_free(&r);
    resume_to(&e, "again", 3);
    env_close(&e);
}

/* A sample PNG that cannot be written: a warning with the file and the error; the run goes on
 * to the end. */
static void sample_png_hits_a_full_disk(void) {
    env e;
    env_open(&e, NULL);
    if (!base_run(&e)) {
        env_close(&e);
        return;
    }
    bk_fault f = {.call = BK_FAULT_WRITE, .path = ".png", .after = 0, .error = ENOSPC};
    char png[500], samples[400], h[64];
    snprintf(samples, sizeof samples, "%s/samples", e.run);
    snprintf(png, sizeof png, "%s/step0000003_0.png", samples);
    run_out r = run(&e, "faulty", "train",
                    (const char *[]){"--resume", e.last, "--no-progress", "--set", "train.steps=3", "--set",
                                     "data.split=tail:2", "--set", "train.samples=1", NULL},
                    &f, 1);
    expect_injected(&f);
    EXPECT(exited(&r, 0), "train %s, want 0 (a sample is not worth the run); stderr: %s", how(&r, h, sizeof h),
           r.err ? r.err : "");
    EXPECT(r.err && strstr(r.err, "sample not written"), "no warning: %s", r.err ? r.err : "");
    expect_names("full disk under a sample PNG", r.err, png, ENOSPC);
    EXPECT(count_entries(samples) == 0, "samples/ holds %d files (a partial PNG or its temporary file)",
           count_entries(samples));
    EXPECT(ckpt_step(e.last) == 3 && model_loads(e.last), "last.h5 is not the step-3 checkpoint");
    run_free(&r);
    env_close(&e);
}

/* ---------------------------------------------------------------- write errors in eval and render */

static void write_png(const char *path, int w, int h, int seed) {
    bk_image im;
    BK_CHECK(bk_image_alloc(&im, w, h, 3) == BK_OK, "%s", bk_last_error());
    for (size_t i = 0; i < (size_t)w * h * 3; i++) im.pixels[i] = (uint8_t)((i * 37 + (size_t)seed * 11) % 251);
    BK_CHECK(bk_image_write_png(path, &im) == BK_OK, "%s", bk_last_error());
    bk_image_free(&im);
}

static void eval_outputs_on_a_full_disk(void) {
    env e;
    env_open(&e, NULL);
    char pred[400], gt[400], out1[400], out2[400], path[600], h[64];
    snprintf(pred, sizeof pred, "%s/pred", e.dir);
    snprintf(gt, sizeof gt, "%s/gt", e.dir);
    snprintf(out1, sizeof out1, "%s/out1", e.dir);
    snprintf(out2, sizeof out2, "%s/out2", e.dir);
    mkdir(pred, 0755);
    mkdir(gt, 0755);
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%d.png", pred, i);
        write_png(path, 32, 24, i);
        snprintf(path, sizeof path, "%s/%d.png", gt, i);
        write_png(path, 32, 24, i + 5);
    }
    const char *args[] = {"--pred", pred, "--gt", gt, "--out", out1, NULL};
    run_out r = run(&e, "eval1", "eval", args, NULL, 0);
    EXPECT(exited(&r, 0), "eval --pred --gt --out: %s: %s", how(&r, h, sizeof h), r.err ? r.err : "");
    run_free(&r);
    /* per_image.csv */
    bk_fault f = {.call = BK_FAULT_WRITE, .path = "per_image.csv", .after = 0, .error = ENOSPC};
    const char *args2[] = {"--pred", pred, "--gt", gt, "--out", out2, NULL};
    r = run(&e, "eval2", "eval", args2, &f, 1);
    expect_injected(&f);
    EXPECT(exited(&r, 1), "eval with per_image.csv on a full disk: %s, want exit status 1: %s", how(&r, h, sizeof h),
           r.err ? r.err : "");
    snprintf(path, sizeof path, "%s/per_image.csv", out2);
    expect_names("eval, full disk under per_image.csv", r.err, path, ENOSPC);
    run_free(&r);
    /* eval --table over the first table: table.csv fails, its previous content stays */
    char csv[500], before[500];
    snprintf(csv, sizeof csv, "%s/table.csv", out1);
    snprintf(before, sizeof before, "%s/table_before.csv", e.dir);
    copy_file(csv, before);
    bk_fault g = {.call = BK_FAULT_WRITE, .path = "table.csv", .after = 0, .error = EIO};
    const char *args3[] = {"--table", out1, "--out", out1, NULL};
    r = run(&e, "eval3", "eval", args3, &g, 1);
    expect_injected(&g);
    EXPECT(exited(&r, 1), "eval --table with table.csv failing: %s, want exit status 1: %s", how(&r, h, sizeof h),
           r.err ? r.err : "");
    expect_names("eval --table, EIO under table.csv", r.err, csv, EIO);
    EXPECT(same_file(csv, before), "table.csv changed");
    snprintf(path, sizeof path, "%s.tmp", csv);
    EXPECT(!exists(path), "%s left behind", path);
    run_free(&r);
    env_close(&e);
}

static void render_output_on_a_full_disk(void) {
    env e;
    env_open(&e, NULL);
    char ckpt[400], in[400], out[400], h[64];
    snprintf(ckpt, sizeof ckpt, "%s/dmshn.h5", e.dir);
    snprintf(in, sizeof in, "%s/in.png", e.dir);
    bk_ctx *ctx = bk_test_ctx();
    bk_model *m;
    BK_CHECK(bk_model_create(ctx, "dmshn", "", 3, &m) == BK_OK && bk_model_save(m, ckpt, NULL) == BK_OK, "%s",
             bk_last_error());
    bk_model_free(ctx, m);
    write_png(in, 64, 48, 1);
    const char *exts[] = {"png", "jpg"};
    const int errors[] = {ENOSPC, EIO};
    for (int k = 0; k < 2; k++) {
        snprintf(out, sizeof out, "%s/out.%s", e.dir, exts[k]);
        bk_fault f = {.call = BK_FAULT_WRITE, .path = out, .after = 0, .error = errors[k]};
        const char *args[] = {"--checkpoint", ckpt, "--input", in, "--output", out, NULL};
        run_out r = run(&e, "render", "render", args, &f, 1);
        expect_injected(&f);
        EXPECT(exited(&r, 1), "render to .%s failing: %s, want exit status 1: %s", exts[k], how(&r, h, sizeof h),
               r.err ? r.err : "");
        expect_names(k ? "render, EIO under a JPEG" : "render, full disk under a PNG", r.err, out, errors[k]);
        char tmp[420];
        snprintf(tmp, sizeof tmp, "%s.tmp", out);
        EXPECT(!exists(out) && !exists(tmp), "render left %s behind", exists(out) ? out : tmp);
        run_free(&r);
        /* and without the fault it is written */
        r = run(&e, "render_ok", "render", args, NULL, 0);
        EXPECT(exited(&r, 0) && exists(out), "render to .%s without a fault: %s: %s", exts[k], how(&r, h, sizeof h),
               r.err ? r.err : "");
        run_free(&r);
        unlink(out);
    }
    env_close(&e);
}

/* ---------------------------------------------------------------- kill -9 */

/* Everything a resumed run depends on, read raw from a checkpoint: every dataset under /params,
 * /buffers and /optim/generator, and the counters. Returns a malloc'd blob (NULL on error). */
static char *checkpoint_blob(const char *path, size_t *len) {
    bk_h5 f;
    if (bk_h5_open(&f, path) != BK_OK) return NULL;
    char *blob = NULL;
    size_t n = 0;
    FILE *m = open_memstream(&blob, &n);
    const char *groups[] = {"/params", "/buffers", "/optim/generator/params", "/optim/generator/buffers"};
    bool ok = true;
    int datasets = 0;
    for (int g = 0; g < 4 && ok; g++) {
        char **names;
        int count;
        if (bk_h5_list(&f, groups[g], &names, &count) != BK_OK) {
            ok = false;
            break;
        }
        for (int i = 0; i < count; i++) {
            char name[600];
            snprintf(name, sizeof name, "%s/%s", groups[g], names[i]);
            int nd;
            int64_t dims[BK_H5_MAX_DIMS];
            float *v;
            if (ok && bk_h5_read_f32(&f, name, &nd, dims, &v) == BK_OK) {
                size_t k = 1;
                for (int d = 0; d < nd; d++) k *= (size_t)dims[d];
                fprintf(m, "%s:", name);
                fwrite(v, sizeof *v, k, m);
                free(v);
                datasets++;
            } else {
                ok = false;
            }
            free(names[i]);
        }
        free(names);
    }
    const char *counters[] = {"step", "epoch", "optim_generator_step"};
    for (int i = 0; i < 3 && ok; i++) {
        int64_t v;
        ok = bk_h5_get_attr_int(&f, counters[i], &v) == BK_OK;
        fprintf(m, "%s=%" PRId64 ";", counters[i], v);
    }
    fclose(m);
    bk_h5_close(&f, false);
    if (!ok || datasets == 0) {
        free(blob);
        return NULL;
    }
    *len = n;
    return blob;
}

/* The steps and loss strings of log.csv, in order. */
static int log_rows(const char *path, int *steps, char (*loss)[32], int max) {
    char *t = bk_test_read_file(path, NULL);
    int n = 0;
    for (char *line = t ? strchr(t, '\n') : NULL; line && line[1] && n < max; line = strchr(line + 1, '\n')) {
        steps[n] = atoi(line + 1);
        /* step,epoch,lr,loss,... */
        const char *p = line + 1;
        for (int c = 0; c < 3 && p; c++) p = strchr(p + 1, ',');
        snprintf(loss[n], 32, "%.*s", p ? (int)strcspn(p + 1, ",\n") : 0, p ? p + 1 : "");
        n++;
    }
    free(t);
    return n;
}

/* The last "step N" line a train process printed (0 if none), and the first. */
static int printed_step(const char *out, bool last) {
    int step = 0;
    for (const char *p = out; p && (p = strstr(p, "step ")); p++) {
        if (p != out && p[-1] != '\n') continue;
        int s;
        if (sscanf(p, "step %d lr", &s) == 1) {
            step = s;
            if (!last) break;
        }
    }
    return step;
}

static void kill_9_then_resume(void);

/* The processes compared here would each time the convolution algorithms on first use, and a
 * checkpoint carries only its own run's choices: the uninterrupted run could pick Winograd where
 * the killed one picked direct, and their losses differ in the last digits. Direct everywhere
 * makes them comparable bit for bit (as tests/test_train.c's resume tests do). */
static void kill_9_then_resume_loses_at_most_one_interval(void) {
    setenv("BOKEHLAB_CONV_ALGO", "direct", 1);
    kill_9_then_resume();
    unsetenv("BOKEHLAB_CONV_ALGO");
}

static void kill_9_then_resume(void) {
    enum { STEPS = 14, K = 3, KILLS = 3 };
    char body[512];
    snprintf(body, sizeof body,
             "[data]\nresize_h = 64\nresize_w = 64\n[model]\nname = dmshn\n[train]\nsteps = %d\nbatch = 1\n"
             "log_every = 1\nval_every = 0\nckpt_every = %d\nsamples = 0\n",
             STEPS, K);
    env e;
    env_open(&e, body);
    char h[64];
    /* the uninterrupted run */
    double t0 = bk_test_now();
    run_out r = run(&e, "whole", "train", (const char *[]){"--config", e.cfg, "--no-progress", "--set", "run.name=whole", NULL},
                    NULL, 0);
    double period = (bk_test_now() - t0) / STEPS;
    bool ok = exited(&r, 0);
    EXPECT(ok, "the uninterrupted run: %s: %s", how(&r, h, sizeof h), r.err ? r.err : "");
    run_free(&r);
    if (!ok) {
        env_close(&e);
        return;
    }
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    srand(seed);
    printf("    kill seed %u; a step (with its share of checkpoints) takes about %.0f ms\n", seed, 1000 * period);
    int64_t s = 0; /* the checkpoint's step */
    int kills = 0;
    for (int i = 0; i <= KILLS; i++) {
        bool resume = exists(e.last), final = i == KILLS;
        const char *fresh[] = {"--config", e.cfg, "--no-progress", NULL};
        const char *again[] = {"--resume", e.last, "--no-progress", NULL};
        const char *const *args = resume ? again : fresh;
        const char *argv[8];
        int k = 0;
        argv[k++] = program("train");
        for (int j = 0; args[j]; j++) argv[k++] = args[j];
        argv[k] = NULL;
        char out[400], err[400];
        snprintf(out, sizeof out, "%s/kill%d.out", e.dir, i);
        snprintf(err, sizeof err, "%s/kill%d.err", e.dir, i);
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644), x = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            dup2(o, 1);
            dup2(x, 2);
            alarm(0);
            execv(argv[0], (char *const *)argv);
            _exit(127);
        }
        int status = 0, reached = 0;
        bool ended = false;
        if (!final) {
            /* a random step after the checkpoint, then a random moment within about a step */
            int target = (int)s + 1 + rand() % (2 * K);
            if (target > STEPS - 3) target = STEPS - 3;
            int delay = rand() % (int)(1000 * period + 1);
            double t1 = bk_test_now();
            while (bk_test_now() - t1 < 600) {
                if (waitpid(pid, &status, WNOHANG) == pid) {
                    ended = true;
                    break;
                }
                char *o = bk_test_read_file(out, NULL);
                int at = printed_step(o, true);
                free(o);
                if (at >= target) break;
                bk_test_sleep_ms(2);
            }
            if (!ended) {
                bk_test_sleep_ms(delay);
                kill(pid, SIGKILL);
                waitpid(pid, &status, 0);
                kills++;
            }
            EXPECT(!ended || (WIFEXITED(status) && WEXITSTATUS(status) == 0), "kill %d: train ended by itself (status %d)",
                   i, status);
            if (ended) break;
            char *o = bk_test_read_file(out, NULL);
            reached = printed_step(o, true);
            int first = printed_step(o, false);
            EXPECT(first == s + 1, "run %d started at step %d, want %" PRId64 " (the checkpoint's + 1)", i, first, s + 1);
            free(o);
            int64_t after = exists(e.last) ? ckpt_step(e.last) : 0;
            EXPECT(after >= s && reached - after <= K,
                   "kill %d: reached step %d, last.h5 at step %" PRId64 ": %" PRId64 " steps lost, more than "
                   "ckpt_every = %d", i, reached, after, reached - after, K);
            EXPECT(!exists(e.last) || model_loads(e.last), "kill %d: last.h5 does not load", i);
            printf("    kill %d at step %d (+%d ms): last.h5 at step %" PRId64 ", %" PRId64 " steps to redo\n", i,
                   reached, delay, after, reached - after);
            s = after;
        } else {
            double t1 = bk_test_now();
            while (waitpid(pid, &status, WNOHANG) != pid && bk_test_now() - t1 < 600) bk_test_sleep_ms(10);
            EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the final resume: status %d", status);
            char *o = bk_test_read_file(out, NULL);
            EXPECT(printed_step(o, false) == s + 1, "the final run started at step %d, want %" PRId64,
                   printed_step(o, false), s + 1);
            free(o);
        }
    }
    /* the survivor against the uninterrupted run */
    char whole[400], whole_log[400], log[400];
    snprintf(whole, sizeof whole, "%s/runs/whole/ckpt/last.h5", e.dir);
    snprintf(whole_log, sizeof whole_log, "%s/runs/whole/log.csv", e.dir);
    snprintf(log, sizeof log, "%s/log.csv", e.run);
    size_t na = 0, nb = 0;
    char *a = checkpoint_blob(e.last, &na), *b = checkpoint_blob(whole, &nb);
    EXPECT(a && b, "the final checkpoints cannot be read");
    EXPECT(a && b && na == nb && !memcmp(a, b, na),
           "after %d kills the final weights, Adam moments or counters differ from the uninterrupted run's", kills);
    free(a);
    free(b);
    int sa[64], sb[64];
    char la[64][32], lb[64][32];
    int ra = log_rows(log, sa, la, 64), rb = log_rows(whole_log, sb, lb, 64);
    EXPECT(ra == STEPS && rb == STEPS, "log.csv rows: %d after the kills, %d uninterrupted, want %d", ra, rb, STEPS);
    for (int i = 0; i < ra && i < rb; i++)
        EXPECT(sa[i] == i + 1 && sb[i] == i + 1 && !strcmp(la[i], lb[i]), "log.csv row %d: step %d loss %s vs step %d loss %s",
               i + 1, sa[i], la[i], sb[i], lb[i]);
    printf("    %d kills; the survivor's final checkpoint and its %d logged losses equal the uninterrupted run's\n",
           kills, ra);
    env_close(&e);
}

/* ---------------------------------------------------------------- damaged checkpoints */

/* What a resumed run reads from a checkpoint (train/trainer.c: the config attribute, the model
 * through bk_model_read as bk_model_load does, Adam, the counters), read into a model and an
 * optimizer made once. */
typedef struct reader {
    bk_ctx ctx;
    bk_model *m;
    bk_adam opt;
    float *want; /* the original's model tensors and moments, flat */
    size_t n;
    char want_attrs[1 << 17]; /* as large as read_as_resume's callers give */
} reader;

static size_t flatten(const reader *r, float *into) {
    size_t k = 0;
    const bk_params *sets[] = {&r->m->params, &r->opt.state};
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < sets[s]->n; i++) {
            size_t n = (size_t)bk_numel(sets[s]->v[i].t);
            if (into) memcpy(into + k, sets[s]->v[i].t->data, n * sizeof(float));
            k += n;
        }
    return k;
}

/* Reads `path`; on success the attributes as text in attrs. */
static bk_status read_as_resume(reader *r, const char *path, char *attrs, size_t len) {
    bk_h5 f;
    bk_status st = bk_h5_open(&f, path);
    if (st != BK_OK) return st;
    char *config = malloc(1 << 20);
    /* the kernels attribute holds the run's convolution choices, a line per geometry: read with
     * the trainer's capacity (models/checkpoint.c) */
    char best[64] = "", *kernels = calloc(1, 1 << 20);
    int64_t step = 0, epoch = 0, seed = 0;
    if ((st = bk_h5_get_attr_str(&f, "config", config, 1 << 20)) == BK_OK &&
        (st = bk_model_read(r->m, &f)) == BK_OK && (st = bk_adam_load(&r->opt, &f, "/optim/generator")) == BK_OK &&
        (st = bk_h5_get_attr_int(&f, "step", &step)) == BK_OK && (st = bk_h5_get_attr_int(&f, "epoch", &epoch)) == BK_OK &&
        (st = bk_h5_get_attr_int(&f, "rng_seed", &seed)) == BK_OK &&
        (st = bk_h5_get_attr_str(&f, "best_val_psnr", best, sizeof best)) == BK_OK)
        st = bk_h5_get_attr_str(&f, "kernels", kernels, 1 << 20);
    if (st == BK_OK)
        snprintf(attrs, len, "step %" PRId64 " epoch %" PRId64 " seed %" PRId64 " adam %" PRId64 " best %s kernels %s\n%s",
                 step, epoch, seed, r->opt.step, best, kernels, config);
    free(config);
    free(kernels);
    bk_h5_close(&f, false);
    return st;
}

enum { FLIPS = 200, TRUNCATIONS = 45 };
/* The sanitizer build reads every 4th flip and every 3rd truncation (its instrumented copies
 * and its forks of a large process are slow); the regular build reads them all. */
#if defined(__SANITIZE_ADDRESS__)
enum { FLIP_STRIDE = 4, TRUNCATION_STRIDE = 3 };
#else
enum { FLIP_STRIDE = 1, TRUNCATION_STRIDE = 1 };
#endif

typedef struct damage {
    long long pos; /* flip: byte; truncation: the length kept */
    int bit;       /* -1: a truncation */
    bool metadata; /* a flip outside the chunks of data */
    char verdict; /* judge()'s, or 0: not read (the sanitizer build's stride) */
    char msg[400];
} damage;

/* The case being read, for a crash report: a crash inside the reading (HDF5's or ours) prints
 * it, then takes its course (the sanitizers' report, or the signal that fails the case). */
static char current_case[200];
static struct sigaction previous[32];

static void on_crash(int sig) {
    if (write(1, current_case, strlen(current_case)) < 0) _exit(1);
    sigaction(sig, &previous[sig], NULL); /* the instruction runs again under the previous handler */
}

static void catch_crashes(bool on) {
    const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
    for (int i = 0; i < 5; i++) {
        if (on) {
            struct sigaction sa;
            memset(&sa, 0, sizeof sa);
            sa.sa_handler = on_crash;
            sigaction(sigs[i], &sa, &previous[sigs[i]]);
        } else {
            sigaction(sigs[i], &previous[sigs[i]], NULL);
        }
    }
}

/* One damaged file: 'R' refused naming the file, 'N' refused without naming it, 'S' the same
 * data, 'D' different data. Each case starts from scratch: HDF5 is shut down afterwards, so
 * nothing one case leaves in the library (a file it failed to close) reaches the next. */
static char judge(reader *r, const damage *d, const char *path, char *msg, size_t len) {
    snprintf(current_case, sizeof current_case, "    crashed reading %s %lld (bit %d)\n",
             d->bit < 0 ? "the file truncated to" : "the file with a flip at byte", d->pos, d->bit);
    char *attrs = malloc(1 << 17), verdict;
    if (read_as_resume(r, path, attrs, 1 << 17) != BK_OK) {
        snprintf(msg, len, "%s", bk_last_error());
        verdict = strstr(msg, path) ? 'R' : 'N';
    } else {
        float *got = malloc(r->n * sizeof *got);
        flatten(r, got);
        verdict = !memcmp(got, r->want, r->n * sizeof *got) && !strcmp(attrs, r->want_attrs) ? 'S' : 'D';
        snprintf(msg, len, "%s", verdict == 'S' ? "" : "the data read differs from the original");
        free(got);
    }
    free(attrs);
    H5close();
    return verdict;
}

/* The byte ranges of the chunks of data (HDF5's chunk index), sorted. */
typedef struct range {
    long long a, b;
} range;
typedef struct ranges {
    range *v;
    int n, cap;
} ranges;

static herr_t add_chunks(hid_t o, const char *name, const H5O_info_t *info, void *data) {
    ranges *rs = data;
    if (info->type != H5O_TYPE_DATASET) return 0;
    hid_t d = H5Dopen2(o, name, H5P_DEFAULT), sp = H5Dget_space(d);
    hsize_t n = 0;
    H5Dget_num_chunks(d, sp, &n);
    for (hsize_t i = 0; i < n; i++) {
        hsize_t off[BK_H5_MAX_DIMS], size;
        unsigned mask;
        haddr_t addr;
        if (H5Dget_chunk_info(d, sp, i, off, &mask, &addr, &size) < 0) continue;
        if (rs->n == rs->cap) rs->v = realloc(rs->v, (size_t)(rs->cap = 2 * rs->cap + 256) * sizeof *rs->v);
        rs->v[rs->n++] = (range){(long long)addr, (long long)(addr + size)};
    }
    H5Sclose(sp);
    H5Dclose(d);
    return 0;
}

static int by_start(const void *x, const void *y) {
    const range *a = x, *b = y;
    return (a->a > b->a) - (a->a < b->a);
}

/* The bytes of the file outside its chunks of data (metadata, free space), as positions. */
static long long *metadata_bytes(const char *path, long long size, long long *count) {
    ranges rs = {0};
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    BK_CHECK(f >= 0, "H5Fopen %s", path);
    H5Ovisit(f, H5_INDEX_NAME, H5_ITER_INC, add_chunks, &rs);
    H5Fclose(f);
    qsort(rs.v, (size_t)rs.n, sizeof *rs.v, by_start);
    long long *pos = malloc((1 << 22) * sizeof *pos), n = 0, at = 0;
    for (int i = 0; i <= rs.n; i++) {
        long long end = i < rs.n ? rs.v[i].a : size;
        for (long long p = at; p < end && n < (1 << 22); p++) pos[n++] = p;
        if (i < rs.n && rs.v[i].b > at) at = rs.v[i].b;
    }
    printf("    %s: %lld bytes, %d chunks of data, %lld bytes outside them\n", path, size, rs.n, n);
    free(rs.v);
    *count = n;
    return pos;
}

static uint64_t next_random(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}


static void apply(int fd, const damage *d) {
    unsigned char b;
    BK_CHECK(pread(fd, &b, 1, d->pos) == 1, "pread");
    b ^= (unsigned char)(1u << d->bit);
    BK_CHECK(pwrite(fd, &b, 1, d->pos) == 1, "pwrite");
}

/* Truncated and bit-flipped copies of a training checkpoint, each read as a resumed run reads
 * it. Fills the cases; returns the number. */
static int sweep(env *e, damage *cases) {
    reader *r = calloc(1, sizeof *r);
    BK_CHECK(bk_ctx_init(&r->ctx) == BK_OK, "%s", bk_last_error());
    BK_CHECK(bk_model_load(&r->ctx, e->copy, &r->m) == BK_OK, "%s", bk_last_error());
    bk_adam_init(&r->ctx, &r->opt, &r->m->params, (bk_adam_config){1e-4f, 0.9f, 0.999f, 1e-8f, 0.0f});
    BK_CHECK(read_as_resume(r, e->copy, r->want_attrs, sizeof r->want_attrs) == BK_OK, "%s", bk_last_error());
    r->n = flatten(r, NULL);
    r->want = malloc(r->n * sizeof *r->want);
    flatten(r, r->want);

    char work[400];
    snprintf(work, sizeof work, "%s/damaged.h5", e->dir);
    copy_file(e->copy, work);
    struct stat sb;
    stat(work, &sb);
    long long size = sb.st_size, n_meta;
    long long *meta = metadata_bytes(work, size, &n_meta);
    uint64_t seed = 2024;
    int n = 0;
    /* flips: one in each hundredth of the file, then 100 outside the chunks of data */
    for (int i = 0; i < FLIPS; i++) {
        damage *d = &cases[n++];
        memset(d, 0, sizeof *d);
        d->metadata = i >= FLIPS / 2;
        long long lo = (long long)((double)size * i / (FLIPS / 2)), hi = (long long)((double)size * (i + 1) / (FLIPS / 2));
        d->pos = d->metadata ? meta[next_random(&seed) % (uint64_t)n_meta] : lo + (long long)(next_random(&seed) % (uint64_t)(hi - lo));
        d->bit = (int)(next_random(&seed) % 8);
    }
    int fd = open(work, O_RDWR);
    BK_CHECK(fd >= 0, "open %s", work);
    catch_crashes(true);
    for (int i = 0; i < n; i += FLIP_STRIDE) {
        apply(fd, &cases[i]);
        cases[i].verdict = judge(r, &cases[i], work, cases[i].msg, sizeof cases[i].msg);
        apply(fd, &cases[i]); /* undone */
    }
    /* truncations, longest first on the same file */
    long long fixed[] = {size - 1, size - 4096, size / 2, 1 << 20, 65536, 4096, 2048, 1024, 512, 96, 48, 47, 8, 1, 0};
    int n_fixed = (int)(sizeof fixed / sizeof fixed[0]);
    long long lengths[TRUNCATIONS];
    for (int i = 0; i < TRUNCATIONS; i++)
        lengths[i] = i < n_fixed ? fixed[i] : (long long)(next_random(&seed) % (uint64_t)size);
    for (int i = 0; i < TRUNCATIONS; i++) /* longest first */
        for (int j = i + 1; j < TRUNCATIONS; j++)
            if (lengths[j] > lengths[i]) {
                long long t = lengths[i];
                lengths[i] = lengths[j], lengths[j] = t;
            }
    for (int i = 0; i < TRUNCATIONS; i++) {
        damage *d = &cases[n++];
        memset(d, 0, sizeof *d);
        d->pos = lengths[i];
        d->bit = -1;
        BK_CHECK(ftruncate(fd, lengths[i]) == 0, "ftruncate");
        if (i % TRUNCATION_STRIDE == 0) d->verdict = judge(r, d, work, d->msg, sizeof d->msg);
    }
    catch_crashes(false);
    close(fd);
    unlink(work);
    free(meta);
    free(r->want);
    bk_adam_free(&r->ctx, &r->opt);
    bk_model_free(&r->ctx, r->m);
    bk_ctx_free(&r->ctx);
    free(r);
    return n;
}

/* A copy of the checkpoint with case d's damage, at `path`. */
static void damaged_copy(const env *e, const damage *d, const char *path) {
    copy_file(e->copy, path);
    if (d->bit >= 0) {
        int fd = open(path, O_RDWR);
        apply(fd, d);
        close(fd);
    } else {
        BK_CHECK(truncate(path, d->pos) == 0, "truncate");
    }
}

static void damaged_checkpoints_are_refused_never_misread(void) {
    /* one thread: the reading is HDF5's, and idle OpenMP threads would spin between the copies */
    omp_set_num_threads(1);
    env e;
    env_open(&e, NULL);
    if (!base_run(&e)) {
        env_close(&e);
        return;
    }
    damage *cases = calloc(FLIPS + TRUNCATIONS, sizeof *cases);
    double t0 = bk_test_now();
    int n = sweep(&e, cases);
    int count[2][256] = {{0}}; /* [flip/truncation][verdict] */
    int meta_refused = 0, data_refused = 0, judged[2] = {0, 0};
    for (int i = 0; i < n; i++) {
        const damage *d = &cases[i];
        if (!d->verdict) continue;
        judged[d->bit < 0]++;
        count[d->bit < 0][(unsigned char)d->verdict]++;
        if (d->bit >= 0 && d->verdict == 'R') *(d->metadata ? &meta_refused : &data_refused) += 1;
        if (d->verdict == 'R' && (i % 20 == 0 || getenv("BK_TEST_VERBOSE")))
            printf("    e.g. %s %lld%s: %s\n", d->bit < 0 ? "truncated to" : "bit flipped at", d->pos,
                   d->bit < 0 ? " bytes" : "", d->msg);
        EXPECT(d->verdict == 'R' || d->verdict == 'S', "%s %lld (bit %d): %s: %s",
               d->bit < 0 ? "truncated to" : "flipped byte", d->pos, d->bit,
               d->verdict == 'D' ? "read as different data" : "refused without naming the file",
               d->msg);
        if (d->bit < 0) EXPECT(d->verdict == 'R', "a file truncated to %lld bytes was read", d->pos);
    }
    if (FLIP_STRIDE > 1 || TRUNCATION_STRIDE > 1)
        printf("    (sanitizer build: 1 flip in %d and 1 truncation in %d are read; the regular build reads them "
               "all)\n", FLIP_STRIDE, TRUNCATION_STRIDE);
    printf("    %d bit flips: %d refused (%d in chunks of data, %d in metadata), %d harmless (the original data "
           "read), %d different, %d refused without the file's name\n",
           judged[0], count[0]['R'], data_refused, meta_refused, count[0]['S'], count[0]['D'], count[0]['N']);
    printf("    %d truncations: %d refused, %d read; no crash (%.1f s)\n", judged[1], count[1]['R'],
           count[1]['S'] + count[1]['D'], bk_test_now() - t0);
    EXPECT(count[0]['R'] >= judged[0] / 2 && judged[0] > 0, "only %d of %d flips refused", count[0]['R'], judged[0]);
    /* bk_model_load itself on every truncation (refused before a model is made) and every
     * harmless flip (which must load the original) */
    char path[400];
    snprintf(path, sizeof path, "%s/damaged.h5", e.dir);
    bk_ctx *ctx = bk_test_ctx();
    bk_model *orig = NULL;
    BK_CHECK(bk_model_load(ctx, e.copy, &orig) == BK_OK, "%s", bk_last_error());
    int loaded = 0, refused = 0;
    for (int i = 0; i < n; i++) {
        const damage *d = &cases[i];
        if (!d->verdict || (d->bit >= 0 && d->verdict != 'S')) continue;
        damaged_copy(&e, d, path);
        bk_model *m = NULL;
        bk_status st = bk_model_load(ctx, path, &m);
        if (d->bit < 0) {
            EXPECT(st != BK_OK && strstr(bk_last_error(), path), "bk_model_load, truncated to %lld: %s", d->pos,
                   st == BK_OK ? "loaded" : bk_last_error());
            refused += st != BK_OK;
        } else {
            EXPECT(st == BK_OK, "bk_model_load, harmless flip at %lld: %s", d->pos, bk_last_error());
            int differ = 0;
            for (int q = 0; m && q < m->params.n; q++)
                differ += memcmp(m->params.v[q].t->data, orig->params.v[q].t->data,
                                 (size_t)bk_numel(m->params.v[q].t) * sizeof(float)) != 0;
            EXPECT(differ == 0, "bk_model_load, harmless flip at %lld: %d tensors differ", d->pos, differ);
            loaded += st == BK_OK && !differ;
        }
        if (m) bk_model_free(ctx, m);
    }
    printf("    bk_model_load: %d truncated files refused, %d harmless flips loaded the original model\n", refused,
           loaded);
    bk_model_free(ctx, orig);
    free(cases);
    env_close(&e);
}

/* A selection of damaged files through the programs: train --resume, forward, eval. */
static void damaged_checkpoints_through_the_programs(void) {
    env e;
    env_open(&e, NULL);
    if (!base_run(&e)) {
        env_close(&e);
        return;
    }
    /* one truncated file, and flips: the root object header (its first metadata), a chunk of
     * /params, a chunk of Adam's moments (forward and eval do not read those) */
    char path[400], h[64], x[400], y[400], y0[400];
    snprintf(path, sizeof path, "%s/damaged.h5", e.dir);
    snprintf(x, sizeof x, "%s/x.h5", e.dir);
    snprintf(y, sizeof y, "%s/y.h5", e.dir);
    snprintf(y0, sizeof y0, "%s/y0.h5", e.dir);
    {
        bk_h5 f;
        float *v = malloc(3 * 64 * 64 * sizeof *v);
        bk_test_fill_uniform(v, 3 * 64 * 64, 0, 1, 5);
        BK_CHECK(bk_h5_create(&f, x) == BK_OK && bk_h5_write_f32(&f, "x", 4, (int64_t[]){1, 3, 64, 64}, v) == BK_OK &&
                 bk_h5_close(&f, true) == BK_OK, "%s", bk_last_error());
        free(v);
    }
    run_out r = run(&e, "forward0", "forward", (const char *[]){"--weights", e.copy, "--input", x, "--output", y0, NULL},
                    NULL, 0);
    EXPECT(exited(&r, 0), "forward on the intact checkpoint: %s: %s", how(&r, h, sizeof h), r.err ? r.err : "");
    run_free(&r);
    /* where things are: the root object header (the attributes), and the first chunks of a
     * parameter and of a moment */
    long long root = -1, p_chunk = -1, m_chunk = -1;
    {
        hid_t f = H5Fopen(e.copy, H5F_ACC_RDONLY, H5P_DEFAULT);
        H5O_info_t info;
        if (H5Oget_info_by_name2(f, "/", &info, H5O_INFO_BASIC, H5P_DEFAULT) >= 0) root = (long long)info.addr + 24;
        const char *names[] = {"/params/encoder_lv1.layer1.weight", "/optim/generator/buffers/encoder_lv1.layer1.weight.exp_avg"};
        long long *at[] = {&p_chunk, &m_chunk};
        for (int i = 0; i < 2; i++) {
            hid_t d = H5Dopen2(f, names[i], H5P_DEFAULT), sp = H5Dget_space(d);
            hsize_t off[BK_H5_MAX_DIMS], size;
            unsigned mask;
            haddr_t addr;
            if (d >= 0 && H5Dget_chunk_info(d, sp, 0, off, &mask, &addr, &size) >= 0) *at[i] = (long long)addr + 17;
            if (sp >= 0) H5Sclose(sp);
            if (d >= 0) H5Dclose(d);
        }
        H5Fclose(f);
    }
    EXPECT(root > 0 && p_chunk > 0 && m_chunk > 0, "the root header or the chunks not found (a parameter renamed?)");
    struct stat sb;
    stat(e.copy, &sb);
    const damage cases[] = {
        {.pos = sb.st_size / 3, .bit = -1},
        {.pos = root, .bit = 2, .metadata = true},
        {.pos = p_chunk, .bit = 5},
        {.pos = m_chunk, .bit = 0},
    };
    const char *what[] = {"truncated to a third", "a flip in the root object header", "a flip in /params", "a flip in Adam's moments"};
    for (int i = 0; i < 4; i++) {
        damaged_copy(&e, &cases[i], path);
        bool model_intact = i == 3;
        /* train --resume reads everything: always refused */
        r = run(&e, "train", "train", (const char *[]){"--resume", path, "--no-progress", NULL}, NULL, 0);
        EXPECT(exited(&r, 1) && r.err && strstr(r.err, path), "train --resume, %s: %s, want exit status 1 naming %s: %s",
               what[i], how(&r, h, sizeof h), path, r.err ? r.err : "");
        char line[600];
        printf("    train --resume, %s: %s\n", what[i], line_with(r.err, path, line, sizeof line));
        run_free(&r);
        /* forward and eval read the model only */
        unlink(y);
        r = run(&e, "forward", "forward", (const char *[]){"--weights", path, "--input", x, "--output", y, NULL}, NULL, 0);
        if (model_intact) {
            EXPECT(exited(&r, 0), "forward, %s: %s: %s", what[i], how(&r, h, sizeof h), r.err ? r.err : "");
            bk_h5 fa, fb;
            float *va = NULL, *vb = NULL;
            int nd;
            int64_t dims[BK_H5_MAX_DIMS];
            bool same = bk_h5_open(&fa, y) == BK_OK && bk_h5_read_f32(&fa, "y", &nd, dims, &va) == BK_OK &&
                        bk_h5_open(&fb, y0) == BK_OK && bk_h5_read_f32(&fb, "y", &nd, dims, &vb) == BK_OK &&
                        !memcmp(va, vb, 3 * 64 * 64 * sizeof(float));
            EXPECT(same, "forward, %s: the output differs from the intact checkpoint's", what[i]);
            bk_h5_close(&fa, false);
            bk_h5_close(&fb, false);
            free(va);
            free(vb);
        } else {
            EXPECT(exited(&r, 1) && r.err && strstr(r.err, path), "forward, %s: %s, want exit status 1 naming %s: %s",
                   what[i], how(&r, h, sizeof h), path, r.err ? r.err : "");
            EXPECT(!exists(y), "forward, %s: refused but wrote %s", what[i], y);
        }
        run_free(&r);
        r = run(&e, "eval", "eval",
                (const char *[]){"--checkpoint", path, "--root", e.root, "--split", "tail:2", "--size", "64x64", "--max",
                                 "1", NULL},
                NULL, 0);
        if (model_intact)
            EXPECT(exited(&r, 0), "eval, %s: %s: %s", what[i], how(&r, h, sizeof h), r.err ? r.err : "");
        else
            EXPECT(exited(&r, 1) && r.err && strstr(r.err, path), "eval, %s: %s, want exit status 1 naming %s: %s",
                   what[i], how(&r, h, sizeof h), path, r.err ? r.err : "");
        run_free(&r);
    }
    env_close(&e);
}

BK_TEST_MAIN(BK_TEST(checkpoint_write_hits_a_full_disk), BK_TEST(checkpoint_fsync_fails_with_eio),
             BK_TEST(checkpoint_rename_fails), BK_TEST(log_csv_hits_a_full_disk),
             BK_TEST(run_directory_full_when_resuming), BK_TEST(sample_png_hits_a_full_disk),
             BK_TEST(eval_outputs_on_a_full_disk), BK_TEST(render_output_on_a_full_disk),
             BK_TEST(kill_9_then_resume_loses_at_most_one_interval),
             BK_TEST(damaged_checkpoints_are_refused_never_misread),
             BK_TEST(damaged_checkpoints_through_the_programs))
