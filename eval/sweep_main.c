/* sweep — trains and evaluates the variants of an ablation and writes their table (AMPN
 * Table 3 layout: PSNR, SSIM, LPIPS, CPU s/img, parameters) as markdown and CSV.
 *
 *   sweep --config configs/ampn_ablation.ini [--jobs N] [--dry-run]
 *
 * The sweep file has a [sweep] section (name: the directory <out_dir>/<name>/ that holds the
 * variants' runs and the table; base: the training config every variant starts from; out_dir
 * (default runs); eval_size (HxW, default 1024x1536); eval_max (0: every evaluation pair);
 * lpips (LPIPS weights for the table, optional)) and one [variant NAME] section per row,
 * whose lines are `section.key = value` overrides in train's --set syntax.
 * Each variant trains (train --config BASE --set ...; resumed from its last checkpoint if one
 * exists, skipped if it already reached train.steps), then is evaluated from its best
 * checkpoint (skipped if its table.json is newer than the checkpoint). --jobs runs that many
 * variants at once, splitting the threads between them.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/h5.h"
#include "eval/table.h"
#include "train/config.h"

enum { MAX_VARIANTS = 32, MAX_SETS = 32 };

typedef struct variant {
    char name[64];
    char sets[MAX_SETS][512];
    int n_sets;
} variant;

typedef struct sweep {
    char path[1024];
    char name[128], base[1024], out_dir[512], eval_size[32], lpips[1024];
    long eval_max;
    variant v[MAX_VARIANTS];
    int n;
} sweep;

static bk_status on_value(void *user, const char *section, const char *key, const char *value, const char *where) {
    sweep *s = user;
    if (!strcmp(section, "sweep")) {
        if (!strcmp(key, "name")) snprintf(s->name, sizeof s->name, "%s", value);
        else if (!strcmp(key, "base")) snprintf(s->base, sizeof s->base, "%s", value);
        else if (!strcmp(key, "out_dir")) snprintf(s->out_dir, sizeof s->out_dir, "%s", value);
        else if (!strcmp(key, "eval_size")) snprintf(s->eval_size, sizeof s->eval_size, "%s", value);
        else if (!strcmp(key, "lpips")) snprintf(s->lpips, sizeof s->lpips, "%s", value);
        else if (!strcmp(key, "eval_max")) {
            char *end;
            s->eval_max = strtol(value, &end, 10);
            if (*end || s->eval_max < 0) return bk_fail(BK_ERR_ARG, "%s: eval_max must be a whole number >= 0", where);
        } else
            return bk_fail(BK_ERR_ARG, "%s: unknown key \"%s\" in [sweep] (name, base, out_dir, eval_size, eval_max, lpips)",
                           where, key);
        return BK_OK;
    }
    if (strncmp(section, "variant ", 8) != 0 || !section[8])
        return bk_fail(BK_ERR_ARG, "%s: unknown section [%s]: use [sweep] and [variant NAME]", where, section);
    const char *name = section + 8;
    for (const char *p = name; *p; p++)
        if (!(isalnum((unsigned char)*p) || strchr("_+.-", *p)))
            return bk_fail(BK_ERR_ARG, "%s: variant name \"%s\" names a directory: use letters, digits and _ + . -",
                           where, name);
    variant *v = NULL;
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->v[i].name, name)) v = &s->v[i];
    if (!v) {
        if (s->n == MAX_VARIANTS) return bk_fail(BK_ERR_ARG, "%s: more than %d variants", where, MAX_VARIANTS);
        v = &s->v[s->n++];
        snprintf(v->name, sizeof v->name, "%s", name);
    }
    if (!strchr(key, '.'))
        return bk_fail(BK_ERR_ARG, "%s: \"%s\" is not section.key (e.g. model.variant = no_refine)", where, key);
    if (v->n_sets == MAX_SETS) return bk_fail(BK_ERR_ARG, "%s: too many overrides", where);
    snprintf(v->sets[v->n_sets++], sizeof v->sets[0], "%s=%s", key, value);
    /* check the override now, against the full key table, so a typo stops the sweep at once */
    bk_config probe;
    bk_config_defaults(&probe);
    if (bk_config_set(&probe, v->sets[v->n_sets - 1]) != BK_OK) {
        char msg[1500];
        snprintf(msg, sizeof msg, "%s", bk_last_error());
        return bk_fail(BK_ERR_ARG, "%s: %s", where, msg);
    }
    return BK_OK;
}

/* Directory of this executable, to find train and eval next to it. */
static void bin_dir(char *out, size_t len) {
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        snprintf(out, len, "build/bin");
        return;
    }
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash) *slash = '\0';
    snprintf(out, len, "%s", self);
}

static int run(char *const argv[], int threads) {
    pid_t pid = fork();
    if (pid == 0) {
        char t[16];
        snprintf(t, sizeof t, "%d", threads);
        setenv("OMP_NUM_THREADS", t, 1);
        execv(argv[0], argv);
        fprintf(stderr, "sweep: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static bool newer(const char *a, const char *b) {
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_mtime >= sb.st_mtime;
}

/* Trains then evaluates one variant; returns 0 on success. */
static int do_variant(const sweep *s, const variant *v, const char *bins, int threads, bool dry) {
    char dir[1200], last[1300], best[1300], evdir[1300], table[1400];
    char train[PATH_MAX + 16], eval[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/%s/%s", s->out_dir, s->name, v->name);
    snprintf(last, sizeof last, "%s/ckpt/last.h5", dir);
    snprintf(best, sizeof best, "%s/ckpt/best.h5", dir);
    snprintf(evdir, sizeof evdir, "%s/eval", dir);
    snprintf(table, sizeof table, "%s/table.json", evdir);
    /* training: done, resumable, or new */
    bk_config c;
    bk_config_defaults(&c);
    if (bk_config_load(&c, s->base) != BK_OK) return fprintf(stderr, "sweep: %s\n", bk_last_error()), 1;
    for (int i = 0; i < v->n_sets; i++) bk_config_set(&c, v->sets[i]);
    int64_t done = -1;
    bk_h5 f;
    if (access(last, R_OK) == 0 && bk_h5_open(&f, last) == BK_OK) {
        if (bk_h5_get_attr_int(&f, "step", &done) != BK_OK) done = -1;
        bk_h5_close(&f, false);
    }
    snprintf(train, sizeof train, "%s/train", bins);
    snprintf(eval, sizeof eval, "%s/eval", bins);
    if (done < c.train_steps) {
        char *argv[2 * MAX_SETS + 16];
        char sets[MAX_SETS + 2][1100];
        int k = 0;
        argv[k++] = train;
        argv[k++] = "--config";
        argv[k++] = (char *)s->base;
        argv[k++] = "--no-progress";
        snprintf(sets[0], sizeof sets[0], "run.name=%s", v->name);
        snprintf(sets[1], sizeof sets[1], "run.out_dir=%s/%s", s->out_dir, s->name);
        for (int i = 0; i < 2; i++) argv[k++] = "--set", argv[k++] = sets[i];
        for (int i = 0; i < v->n_sets; i++) argv[k++] = "--set", argv[k++] = (char *)v->sets[i];
        if (done >= 0) argv[k++] = "--resume", argv[k++] = last;
        argv[k] = NULL;
        printf("sweep: %s: %s (%lld/%lld steps done)\n", v->name, done >= 0 ? "resuming" : "training",
               (long long)(done < 0 ? 0 : done), (long long)c.train_steps);
        fflush(stdout);
        if (!dry && run(argv, threads) != 0) return fprintf(stderr, "sweep: training %s failed\n", v->name), 1;
    } else {
        printf("sweep: %s: trained (%lld steps)\n", v->name, (long long)done);
    }
    const char *ckpt = access(best, R_OK) == 0 ? best : last;
    if (!dry && newer(table, ckpt)) {
        printf("sweep: %s: evaluated\n", v->name);
        return 0;
    }
    char *argv[24];
    int k = 0;
    argv[k++] = eval;
    argv[k++] = "--checkpoint", argv[k++] = (char *)ckpt;
    argv[k++] = "--config", argv[k++] = (char *)s->base;
    argv[k++] = "--out", argv[k++] = evdir;
    argv[k++] = "--name", argv[k++] = (char *)v->name;
    argv[k++] = "--size", argv[k++] = (char *)s->eval_size;
    char max[32];
    if (s->eval_max) snprintf(max, sizeof max, "%ld", s->eval_max), argv[k++] = "--max", argv[k++] = max;
    if (s->lpips[0]) argv[k++] = "--lpips", argv[k++] = (char *)s->lpips;
    argv[k] = NULL;
    printf("sweep: %s: evaluating %s\n", v->name, ckpt);
    fflush(stdout);
    if (!dry && run(argv, threads) != 0) return fprintf(stderr, "sweep: evaluating %s failed\n", v->name), 1;
    return 0;
}

int main(int argc, char **argv) {
    const char *path = NULL;
    int jobs = 1;
    bool dry = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc) path = argv[++i];
        else if (!strcmp(argv[i], "--jobs") && i + 1 < argc) jobs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dry-run")) dry = true;
        else path = NULL, i = argc;
    }
    if (!path || jobs < 1) {
        fprintf(stderr, "usage: sweep --config SWEEP.ini [--jobs N] [--dry-run]\n");
        return 2;
    }
    static sweep s;
    snprintf(s.out_dir, sizeof s.out_dir, "runs");
    snprintf(s.eval_size, sizeof s.eval_size, "1024x1536");
    if (bk_ini_parse(path, on_value, &s) != BK_OK) return fprintf(stderr, "sweep: %s\n", bk_last_error()), 1;
    if (!s.name[0] || !s.base[0] || !s.n) {
        fprintf(stderr, "sweep: %s needs [sweep] name and base, and at least one [variant NAME]\n", path);
        return 1;
    }
    char bins[PATH_MAX];
    bin_dir(bins, sizeof bins);
    int threads = omp_get_max_threads() / jobs;
    if (threads < 1) threads = 1;
    int failed = 0, running = 0;
    for (int i = 0; i < s.n; i++) {
        if (jobs == 1) {
            failed += do_variant(&s, &s.v[i], bins, threads, dry) != 0;
            continue;
        }
        if (running == jobs) {
            int status;
            wait(&status);
            failed += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
            running--;
        }
        pid_t pid = fork();
        if (pid == 0) _exit(do_variant(&s, &s.v[i], bins, threads, dry));
        running++;
    }
    while (running-- > 0) {
        int status;
        wait(&status);
        failed += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    if (dry) return 0;
    if (failed) {
        fprintf(stderr, "sweep: %d variants failed; run the sweep again to resume them\n", failed);
        return 1;
    }
    bk_table_row rows[MAX_VARIANTS];
    for (int i = 0; i < s.n; i++) {
        char t[1400];
        snprintf(t, sizeof t, "%s/%s/%s/eval/table.json", s.out_dir, s.name, s.v[i].name);
        if (bk_table_read_row(t, &rows[i]) != BK_OK) return fprintf(stderr, "sweep: %s\n", bk_last_error()), 1;
    }
    char dir[700];
    snprintf(dir, sizeof dir, "%s/%s", s.out_dir, s.name);
    bk_table_markdown(stdout, rows, s.n);
    if (bk_table_write(dir, "table", rows, s.n) != BK_OK) return fprintf(stderr, "sweep: %s\n", bk_last_error()), 1;
    printf("sweep: wrote %s/table.md and %s/table.csv\n", dir, dir);
    return 0;
}
