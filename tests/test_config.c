/* test_config.c — the training configuration (train/config.h): the defaults are the key table's;
 * a file sets values (with comments, blank lines, trailing "# comment"); every kind of bad
 * input (unknown key or section, wrong type, out of range, invalid choice, a key set twice, a
 * malformed line) is refused with FILE:LINE of the offending line and the key; --set applies and
 * its errors name the --set argument; every key's range and type is enforced through --set; the
 * printed configuration parses back to the same configuration; and docs/CONFIG.md is exactly
 * what `train --help-config --markdown` prints (so the table cannot change without the doc). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/support/harness.h"
#include "train/config.h"

/* ---------------------------------------------------------------- helpers */

static char tmpdir[64];

static void make_tmpdir(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/bk_cfg_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        printf("    mkdtemp: %s\n", strerror(errno));
        exit(1);
    }
}

static void remove_tmpdir(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) printf("    could not remove %s\n", tmpdir);
}

/* Writes text to tmpdir/name; returns the path (static buffer per call site is not needed:
 * the caller copies). */
static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) {
        printf("    cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
    fputs(text, f);
    fclose(f);
}

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) buf = realloc(buf, (cap *= 2) + 1);
    }
    fclose(f);
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

/* The repository root and the build directory of this test binary (build/tests/test_config ->
 * build/, and the root above it). */
static void locate(char *build_dir, char *root, size_t len) {
    char exe[PATH_MAX / 2];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        snprintf(build_dir, len, "build");
        snprintf(root, len, ".");
        return;
    }
    exe[n] = '\0';
    char *tests = dirname(exe);           /* .../build/tests */
    char *build = dirname(tests);         /* .../build */
    snprintf(build_dir, len, "%s", build);
    snprintf(root, len, "%s", dirname(build));
}

/* The `train` program next to this test binary (build-asan/bin/train under SAN=1), or the
 * regular build's if the sanitizer build has no programs yet. */
static bool train_binary(char *out, size_t len) {
    char build[PATH_MAX / 2], root[PATH_MAX / 2];
    locate(build, root, sizeof build);
    snprintf(out, len, "%s/bin/train", build);
    if (access(out, X_OK) == 0) return true;
    snprintf(out, len, "%s/build/bin/train", root);
    if (access(out, X_OK) == 0) return true;
    bk_test_fail(__FILE__, __LINE__, "no train program next to the tests (%s/bin/train): run make", build);
    return false;
}

/* Runs argv with stdout and stderr to files; returns the wait status (or -1). */
static int run_program(char *const argv[], const char *out_path, const char *err_path) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0) _exit(127);
        dup2(o, 1);
        dup2(e, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return status;
}

/* ---------------------------------------------------------------- comparing configurations */

/* Whether two configurations hold the same value for every key; names the first difference. */
static bool same_config(const bk_config *a, const bk_config *b, char *diff, size_t len) {
#define EQ_STR(s, k)                                                                                    \
    if (strcmp(a->s##_##k, b->s##_##k)) {                                                               \
        snprintf(diff, len, "%s.%s: \"%.80s\" vs \"%.80s\"", #s, #k, a->s##_##k, b->s##_##k);            \
        return false;                                                                                   \
    }
#define EQ_ENUM(s, k) EQ_STR(s, k)
#define EQ_INT(s, k)                                                                                    \
    if (a->s##_##k != b->s##_##k) {                                                                     \
        snprintf(diff, len, "%s.%s: %" PRId64 " vs %" PRId64, #s, #k, a->s##_##k, b->s##_##k);           \
        return false;                                                                                   \
    }
#define EQ_FLOAT(s, k)                                                                                  \
    if (memcmp(&a->s##_##k, &b->s##_##k, sizeof(double))) {                                             \
        snprintf(diff, len, "%s.%s: %.17g vs %.17g", #s, #k, a->s##_##k, b->s##_##k);                   \
        return false;                                                                                   \
    }
#define EQ_BOOL(s, k)                                                                                   \
    if (a->s##_##k != b->s##_##k) {                                                                     \
        snprintf(diff, len, "%s.%s: %d vs %d", #s, #k, a->s##_##k, b->s##_##k);                         \
        return false;                                                                                   \
    }
#define EQ_(s, k, type, def, lo, hi, help) EQ_##type(s, k)
    BK_CONFIG_KEYS(EQ_)
#undef EQ_
#undef EQ_STR
#undef EQ_ENUM
#undef EQ_INT
#undef EQ_FLOAT
#undef EQ_BOOL
    diff[0] = '\0';
    return true;
}

/* Prints c (with or without sources) and parses the text into fresh defaults. */
static bk_status print_and_parse(const bk_config *c, bool with_sources, bk_config *back, char **text_out) {
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    bk_config_print(c, m, with_sources);
    fclose(m);
    bk_config_defaults(back);
    bk_status st = bk_config_parse_text(back, text, "printed");
    if (text_out) *text_out = text;
    else free(text);
    return st;
}

/* ---------------------------------------------------------------- defaults */

static void defaults_equal_the_table(void) {
    bk_config c;
    memset(&c, 0xA5, sizeof c); /* every field must be written */
    bk_config_defaults(&c);
    /* every key against its declaration in BK_CONFIG_KEYS */
#define DEF_STR(s, k, def, lo, hi) \
    EXPECT(!strcmp(c.s##_##k, def), "%s.%s default \"%s\", the table says \"%s\"", #s, #k, c.s##_##k, def);
#define DEF_ENUM(s, k, def, lo, hi)                                                                     \
    EXPECT(!strcmp(c.s##_##k, def), "%s.%s default \"%s\", the table says \"%s\"", #s, #k, c.s##_##k, def); \
    EXPECT(strstr(lo, def) != NULL, "%s.%s: the default %s is not among %s", #s, #k, def, lo);
#define DEF_INT(s, k, def, lo, hi)                                                                      \
    EXPECT(c.s##_##k == (int64_t)(def), "%s.%s default %" PRId64 ", the table says %lld", #s, #k,        \
           c.s##_##k, (long long)(def));                                                                \
    EXPECT((def) >= (lo) && (def) <= (hi), "%s.%s: default outside its range", #s, #k);
#define DEF_FLOAT(s, k, def, lo, hi)                                                                    \
    EXPECT(c.s##_##k == (double)(def), "%s.%s default %.17g, the table says %.17g", #s, #k, c.s##_##k,  \
           (double)(def));                                                                              \
    EXPECT((def) >= (lo) && (def) <= (hi), "%s.%s: default outside its range", #s, #k);
#define DEF_BOOL(s, k, def, lo, hi) \
    EXPECT(c.s##_##k == ((def) != 0), "%s.%s default %d, the table says %d", #s, #k, c.s##_##k, (def) != 0);
#define DEF_(s, k, type, def, lo, hi, help) DEF_##type(s, k, def, lo, hi)
    BK_CONFIG_KEYS(DEF_)
#undef DEF_
    /* every source says "default" */
    int i = 0;
#define SRC_(s, k, type, def, lo, hi, help)                                                              \
    EXPECT(!strcmp(bk_config_source(&c, #s, #k), "default"), "%s.%s source \"%s\"", #s, #k,           \
           bk_config_source(&c, #s, #k));                                                               \
    EXPECT(!strcmp(c.source[i], "default"), "source[%d] (%s.%s) \"%s\"", i, #s, #k, c.source[i]);      \
    i++;
    BK_CONFIG_KEYS(SRC_)
#undef SRC_
    EXPECT(i == BK_CONFIG_NKEYS, "%d keys in the table, BK_CONFIG_NKEYS %d", i, BK_CONFIG_NKEYS);
    EXPECT(!strcmp(bk_config_source(&c, "train", "nonsense"), "?"), "source of an unknown key");
    /* a few values pinned by hand (SPEC §5 defaults the recipes rely on) */
    EXPECT(!strcmp(c.model_name, "ampn") && !strcmp(c.data_split, "val294") && !strcmp(c.run_out_dir, "runs"),
           "model/split/out_dir defaults %s %s %s", c.model_name, c.data_split, c.run_out_dir);
    EXPECT(c.train_lr == 1e-4 && c.train_beta1 == 0.9 && c.train_beta2 == 0.999 && c.train_eps == 1e-8,
           "Adam defaults %g %g %g %g", c.train_lr, c.train_beta1, c.train_beta2, c.train_eps);
    EXPECT(c.train_steps == 1000 && c.train_batch == 2 && c.train_accum == 1 && c.run_seed == 1,
           "steps/batch/accum/seed defaults");
    EXPECT(c.loss_l1 == 1 && c.loss_ssim == 0 && c.loss_adv == 0 && !strcmp(c.loss_msssim_mode, "standard"),
           "loss defaults");
    EXPECT(c.gan_n_critic == 1 && c.gan_lambda_gp == 10 && c.gan_beta1 == 0 && c.gan_beta2 == 0.9, "gan defaults");
    EXPECT(c.data_hflip && !c.data_vflip, "flip defaults");
}

/* ---------------------------------------------------------------- files */

static void a_file_sets_values(void) {
    make_tmpdir();
    char path[256];
    snprintf(path, sizeof path, "%s/run.ini", tmpdir);
    write_file(path,
               "# a comment line\n"                   /* 1 */
               "; another comment\n"                  /* 2 */
               "[run]\n"                              /* 3 */
               "name = my_run\n"                      /* 4 */
               "seed=42\n"                            /* 5 */
               "\n"                                   /* 6 */
               "[data]\n"                             /* 7 */
               "root = /data/ebb set   # where it is\n" /* 8 */
               "hflip = false\n"                      /* 9 */
               "vflip = YES\n"                        /* 10 */
               "split = tail:40\n"                    /* 11 */
               "[model]\n"                            /* 12 */
               "name = glassnet_c24 # the c24 width\n" /* 13 */
               "[train]\n"                            /* 14 */
               "lr = 2.5e-4 # trailing comment\n"     /* 15 */
               "steps = 1800 ; an ini comment\n"      /* 16 */
               "schedule = cosine\n"                  /* 17 */
               "[loss]\n"                             /* 18 */
               "l1 = 10\n"                            /* 19 */
               "ssim = 0\n"                           /* 20 */
               "[gan]\n"                              /* 21 */
               "lambda_gp = 0\n"                      /* 22 */
               "[run]\n"                              /* 23: a section may come back */
               "out_dir = out#1\n");                  /* 24: '#' inside a value stays */
    bk_config c, d;
    bk_config_defaults(&c);
    bk_config_defaults(&d);
    bk_status st = bk_config_load(&c, path);
    EXPECT(st == BK_OK, "load: %s", bk_last_error());
    EXPECT(!strcmp(c.run_name, "my_run") && c.run_seed == 42, "run: %s %" PRId64, c.run_name, c.run_seed);
    EXPECT(!strcmp(c.data_root, "/data/ebb set"), "data.root \"%s\" (trailing comment and spaces removed)", c.data_root);
    EXPECT(!c.data_hflip && c.data_vflip, "flips %d %d", c.data_hflip, c.data_vflip);
    EXPECT(!strcmp(c.data_split, "tail:40"), "split %s", c.data_split);
    EXPECT(!strcmp(c.model_name, "glassnet_c24"), "model %s", c.model_name);
    EXPECT(c.train_lr == 2.5e-4 && c.train_steps == 1800 && !strcmp(c.train_schedule, "cosine"), "train %g %" PRId64 " %s",
           c.train_lr, c.train_steps, c.train_schedule);
    EXPECT(c.loss_l1 == 10 && c.loss_ssim == 0 && c.gan_lambda_gp == 0, "loss %g %g %g", c.loss_l1, c.loss_ssim,
           c.gan_lambda_gp);
    EXPECT(!strcmp(c.run_out_dir, "out#1"), "out_dir \"%s\"", c.run_out_dir);
    /* sources: FILE:LINE for what the file set, "default" for the rest */
    struct {
        const char *s, *k;
        int line;
    } where[] = {{"run", "name", 4},     {"run", "seed", 5},        {"data", "root", 8},  {"data", "hflip", 9},
                 {"data", "vflip", 10},  {"data", "split", 11},     {"model", "name", 13}, {"train", "lr", 15},
                 {"train", "steps", 16}, {"train", "schedule", 17}, {"loss", "l1", 19},    {"loss", "ssim", 20},
                 {"gan", "lambda_gp", 22}, {"run", "out_dir", 24}};
    for (size_t i = 0; i < sizeof where / sizeof where[0]; i++) {
        char want[300];
        snprintf(want, sizeof want, "%s:%d", path, where[i].line);
        EXPECT(!strcmp(bk_config_source(&c, where[i].s, where[i].k), want), "source of %s.%s: \"%s\", want \"%s\"",
               where[i].s, where[i].k, bk_config_source(&c, where[i].s, where[i].k), want);
    }
    EXPECT(!strcmp(bk_config_source(&c, "train", "batch"), "default"), "train.batch source %s",
           bk_config_source(&c, "train", "batch"));
    /* the keys the file does not name keep their defaults */
    EXPECT(c.train_batch == d.train_batch && c.train_beta2 == d.train_beta2 && c.data_workers == d.data_workers &&
               !strcmp(c.loss_msssim_mode, d.loss_msssim_mode),
           "untouched keys changed");
    /* a file over earlier values: later sources win */
    char path2[256];
    snprintf(path2, sizeof path2, "%s/over.ini", tmpdir);
    write_file(path2, "[train]\nsteps = 5\n");
    EXPECT(bk_config_load(&c, path2) == BK_OK, "second file: %s", bk_last_error());
    EXPECT(c.train_steps == 5 && c.train_lr == 2.5e-4, "layered files: steps %" PRId64 " lr %g", c.train_steps, c.train_lr);
    /* a missing file names itself */
    char missing[256];
    snprintf(missing, sizeof missing, "%s/nope.ini", tmpdir);
    st = bk_config_load(&c, missing);
    EXPECT(st != BK_OK && strstr(bk_last_error(), missing), "missing file: %d %s", st, bk_last_error());
    remove_tmpdir();
}

/* One bad file: refused, the message names PATH:LINE: and contains each of the words. */
static void expect_refused(const char *what, const char *text, int line, const char *w1, const char *w2) {
    char path[256];
    snprintf(path, sizeof path, "%s/bad.ini", tmpdir);
    write_file(path, text);
    bk_config c;
    bk_config_defaults(&c);
    bk_status st = bk_config_load(&c, path);
    const char *msg = bk_last_error();
    char want[300];
    snprintf(want, sizeof want, "%s:%d:", path, line);
    EXPECT(st != BK_OK, "%s: accepted", what);
    if (st == BK_OK) return;
    EXPECT(strstr(msg, want) != NULL, "%s: message \"%s\" does not name %s", what, msg, want);
    EXPECT(!w1 || strstr(msg, w1), "%s: message \"%s\" does not contain \"%s\"", what, msg, w1);
    EXPECT(!w2 || strstr(msg, w2), "%s: message \"%s\" does not contain \"%s\"", what, msg, w2);
    /* the same text through bk_config_parse_text names its origin and the same line */
    bk_config_defaults(&c);
    st = bk_config_parse_text(&c, text, "text.ini");
    snprintf(want, sizeof want, "text.ini:%d:", line);
    EXPECT(st != BK_OK && strstr(bk_last_error(), want), "%s (text): \"%s\" does not name %s", what, bk_last_error(),
           want);
}

static void bad_files_are_refused_with_file_line_and_key(void) {
    make_tmpdir();
    expect_refused("unknown key", "[run]\nname = x\n\n[train]\n# steps\nstepz = 10\n", 6, "stepz",
                   "did you mean train.steps");
    expect_refused("unknown key in a known section", "[loss]\nl1 = 1\nl2 = 1\n", 3, "l2", "[loss]");
    /* the assignment in the unknown section is the refused line */
    expect_refused("unknown section", "[run]\nseed = 3\n[trian]\nsteps = 5\n", 4, "[trian]", "train.steps");
    /* (the message names the empty section "[]", not the key) */
    expect_refused("key before any section", "steps = 5\n[train]\n", 1, "unknown section", NULL);
    expect_refused("text for an integer", "[train]\nbatch = 2\nsteps = ten\n", 3, "train.steps", "ten");
    expect_refused("fraction for an integer", "[train]\nsteps = 2.5\n", 2, "train.steps", "whole number");
    expect_refused("text for a number", "[train]\n\n\nlr = fast\n", 4, "train.lr", "fast");
    expect_refused("empty number", "[train]\nlr =\n", 2, "train.lr", "not a number");
    expect_refused("maybe for a bool", "[data]\nhflip = true\nvflip = maybe\n", 3, "data.vflip", "maybe");
    expect_refused("integer below range", "[train]\nsteps = 0\n", 2, "train.steps", "outside");
    expect_refused("integer above range", "[run]\n\nthreads = 257\n", 3, "run.threads", "256");
    expect_refused("number above range", "[train]\nlr = 1.5\n", 2, "train.lr", "outside");
    expect_refused("number below range", "[loss]\nl1 = 1\nssim = -0.1\n", 3, "loss.ssim", "outside");
    expect_refused("beta1 = 1", "[train]\nbeta1 = 1\n", 2, "train.beta1", "outside");
    expect_refused("infinite number", "[train]\nclip_grad_norm = inf\n", 2, "train.clip_grad_norm", NULL);
    expect_refused("invalid enum value", "[model]\nname = resnet\n", 2, "model.name", "dmshn|stacked_dmshn");
    expect_refused("enum is case sensitive", "[train]\nschedule = Cosine\n", 2, "train.schedule", "constant|step");
    expect_refused("invalid msssim mode", "[loss]\nmsssim_mode = pytorch\n", 2, "loss.msssim_mode", "dmshn_compat");
    expect_refused("key set twice", "[train]\nsteps = 10\nlr = 1e-3\n\nsteps = 20\n", 5, "train.steps", "line 2");
    expect_refused("key set twice across sections", "[train]\nsteps = 10\n[run]\nseed = 2\n[train]\nsteps = 20\n", 6,
                   "train.steps", "twice");
    expect_refused("malformed line", "[train]\nsteps = 10\nthis is not a key\n", 3, "not a valid INI line", NULL);
    expect_refused("malformed section at the end", "[train]\nsteps = 10\n[loss\n", 3, "not a valid INI line", NULL);
    remove_tmpdir();
}

/* run.name is 512 bytes: 511 characters fit, 512 are refused with the key. */
static void long_values_are_refused_with_the_key(void) {
    bk_config c;
    /* through --set (files: long_strings_survive_print_and_files) */
    char *arg = malloc(2000);
    int n = snprintf(arg, 2000, "run.name=");
    memset(arg + n, 'n', 512);
    arg[n + 512] = '\0';
    bk_config_defaults(&c);
    bk_status st = bk_config_set(&c, arg);
    EXPECT(st != BK_OK && strstr(bk_last_error(), "run.name") && strstr(bk_last_error(), "511"),
           "a 512-character run.name: %d %s", st, bk_last_error());
    arg[n + 511] = '\0';
    bk_config_defaults(&c);
    st = bk_config_set(&c, arg);
    EXPECT(st == BK_OK && strlen(c.run_name) == 511, "a 511-character run.name: %s", bk_last_error());
    free(arg);
}

/* ---------------------------------------------------------------- --set */

static void set_applies_and_its_errors_name_the_argument(void) {
    make_tmpdir();
    bk_config c;
    bk_config_defaults(&c);
    char path[256];
    snprintf(path, sizeof path, "%s/a.ini", tmpdir);
    write_file(path, "[train]\nsteps = 10\nlr = 1e-3\n");
    EXPECT(bk_config_load(&c, path) == BK_OK, "load: %s", bk_last_error());
    EXPECT(bk_config_set(&c, "train.steps=77") == BK_OK, "set: %s", bk_last_error());
    EXPECT(bk_config_set(&c, " data.root = /some where/ebb ") == BK_OK, "set with spaces: %s", bk_last_error());
    EXPECT(bk_config_set(&c, "data.hflip=off") == BK_OK, "set bool: %s", bk_last_error());
    EXPECT(bk_config_set(&c, "model.name=dmshn") == BK_OK, "set enum: %s", bk_last_error());
    EXPECT(bk_config_set(&c, "loss.ssim=0.25 # why") == BK_OK, "set with comment: %s", bk_last_error());
    EXPECT(bk_config_set(&c, "model.variant=") == BK_OK, "set empty string: %s", bk_last_error());
    EXPECT(c.train_steps == 77 && c.train_lr == 1e-3, "steps %" PRId64 " lr %g", c.train_steps, c.train_lr);
    EXPECT(!strcmp(c.data_root, "/some where/ebb"), "root \"%s\"", c.data_root);
    EXPECT(!c.data_hflip && !strcmp(c.model_name, "dmshn") && c.loss_ssim == 0.25, "hflip %d model %s ssim %g",
           c.data_hflip, c.model_name, c.loss_ssim);
    EXPECT(!strcmp(bk_config_source(&c, "train", "steps"), "--set"), "steps source %s",
           bk_config_source(&c, "train", "steps"));
    char want[300];
    snprintf(want, sizeof want, "%s:3", path);
    EXPECT(!strcmp(bk_config_source(&c, "train", "lr"), want), "lr source %s", bk_config_source(&c, "train", "lr"));
    /* a key may be --set any number of times; the last wins */
    EXPECT(bk_config_set(&c, "train.steps=78") == BK_OK && c.train_steps == 78, "second --set");

    struct {
        const char *arg, *w1, *w2;
    } bad[] = {
        {"train.steps=ten", "train.steps", "whole number"},
        {"train.steps=0", "train.steps", "outside"},
        {"train.lr=2", "train.lr", "outside"},
        {"data.vflip=maybe", "data.vflip", "maybe"},
        {"model.name=unet", "model.name", "dmshn|"},
        {"train.stepz=5", "stepz", "did you mean train.steps"},
        {"trian.steps=5", "[trian]", NULL},
        {"train.steps", "section.key=value", NULL},
        {"steps=5", "section.key=value", NULL},
        {"=5", "section.key=value", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bk_config d = c;
        bk_status st = bk_config_set(&d, bad[i].arg);
        const char *msg = bk_last_error();
        char arg[300];
        snprintf(arg, sizeof arg, "--set %s", bad[i].arg);
        EXPECT(st != BK_OK, "--set %s accepted", bad[i].arg);
        EXPECT(strstr(msg, arg) != NULL, "--set %s: message \"%s\" does not name the argument", bad[i].arg, msg);
        EXPECT(!bad[i].w1 || strstr(msg, bad[i].w1), "--set %s: \"%s\" lacks \"%s\"", bad[i].arg, msg, bad[i].w1);
        EXPECT(!bad[i].w2 || strstr(msg, bad[i].w2), "--set %s: \"%s\" lacks \"%s\"", bad[i].arg, msg, bad[i].w2);
        char diff[300];
        EXPECT(same_config(&d, &c, diff, sizeof diff), "--set %s changed the config: %s", bad[i].arg, diff);
    }
    remove_tmpdir();
}

/* Every key's type and range, from the table, through --set: the bounds are accepted, one past
 * them refused; booleans take their spellings and refuse "maybe"; every choice of an enum is
 * accepted and others refused; strings take 511 characters. */
static void every_key_enforces_its_type_and_range(void) {
    char arg[1200];
    int checked = 0;
#define TRY(ok_expected, fmt, ...)                                                                         \
    do {                                                                                                   \
        bk_config d;                                                                                       \
        bk_config_defaults(&d);                                                                            \
        snprintf(arg, sizeof arg, fmt, __VA_ARGS__);                                                       \
        bk_status st_ = bk_config_set(&d, arg);                                                            \
        if (ok_expected)                                                                                   \
            EXPECT(st_ == BK_OK, "--set %s refused: %s", arg, bk_last_error());                            \
        else                                                                                               \
            EXPECT(st_ != BK_OK && strstr(bk_last_error(), arg), "--set %s: %s", arg,                     \
                   st_ == BK_OK ? "accepted" : bk_last_error());                                           \
        checked++;                                                                                         \
    } while (0)
#define RNG_STR(s, k, lo, hi)                                                                              \
    {                                                                                                      \
        char v[600];                                                                                       \
        memset(v, 's', 511);                                                                               \
        v[511] = '\0';                                                                                     \
        TRY(true, "%s.%s=%s", #s, #k, v);                                                                  \
        v[511] = 's', v[512] = '\0';                                                                       \
        TRY(false, "%s.%s=%s", #s, #k, v);                                                                 \
    }
#define RNG_INT(s, k, lo, hi)                                                                              \
    TRY(true, "%s.%s=%lld", #s, #k, (long long)(lo));                                                      \
    TRY(true, "%s.%s=%lld", #s, #k, (long long)(hi));                                                      \
    TRY(false, "%s.%s=%lld", #s, #k, (long long)(lo) - 1);                                                 \
    TRY(false, "%s.%s=%lld", #s, #k, (long long)(hi) + 1);                                                 \
    TRY(false, "%s.%s=%s", #s, #k, "1.5");                                                                 \
    TRY(false, "%s.%s=%s", #s, #k, "abc");
#define RNG_FLOAT(s, k, lo, hi)                                                                            \
    TRY(true, "%s.%s=%.17g", #s, #k, (double)(lo));                                                        \
    TRY(true, "%s.%s=%.17g", #s, #k, (double)(hi));                                                        \
    TRY(false, "%s.%s=%.17g", #s, #k, (double)(lo) - 1);                                                   \
    TRY(false, "%s.%s=%.17g", #s, #k, (double)(hi) + 1);                                                   \
    TRY(false, "%s.%s=%s", #s, #k, "nan");                                                                 \
    TRY(false, "%s.%s=%s", #s, #k, "1e");
#define RNG_BOOL(s, k, lo, hi)                                                                             \
    {                                                                                                      \
        const char *yes[] = {"1", "true", "True", "yes", "on"}, *no[] = {"0", "false", "NO", "off"};       \
        for (int j = 0; j < 5; j++) {                                                                      \
            bk_config d;                                                                                   \
            bk_config_defaults(&d);                                                                        \
            snprintf(arg, sizeof arg, "%s.%s=%s", #s, #k, yes[j]);                                         \
            EXPECT(bk_config_set(&d, arg) == BK_OK && d.s##_##k, "--set %s", arg);                         \
            if (j < 4) {                                                                                   \
                snprintf(arg, sizeof arg, "%s.%s=%s", #s, #k, no[j]);                                      \
                EXPECT(bk_config_set(&d, arg) == BK_OK && !d.s##_##k, "--set %s", arg);                    \
            }                                                                                              \
        }                                                                                                  \
        TRY(false, "%s.%s=%s", #s, #k, "maybe");                                                           \
        TRY(false, "%s.%s=%s", #s, #k, "2");                                                               \
    }
#define RNG_ENUM(s, k, allowed, hi)                                                                        \
    {                                                                                                      \
        char list[200];                                                                                    \
        snprintf(list, sizeof list, "%s", allowed);                                                        \
        for (char *save = NULL, *a = strtok_r(list, "|", &save); a; a = strtok_r(NULL, "|", &save)) {      \
            bk_config d;                                                                                   \
            bk_config_defaults(&d);                                                                        \
            snprintf(arg, sizeof arg, "%s.%s=%s", #s, #k, a);                                              \
            EXPECT(bk_config_set(&d, arg) == BK_OK && !strcmp(d.s##_##k, a), "--set %s: %s", arg,          \
                   bk_last_error());                                                                       \
        }                                                                                                  \
        TRY(false, "%s.%s=%s", #s, #k, "none_of_them");                                                    \
        TRY(false, "%s.%s=%s", #s, #k, "");                                                                \
    }
#define RNG_(s, k, type, def, lo, hi, help) RNG_##type(s, k, lo, hi)
    BK_CONFIG_KEYS(RNG_)
#undef RNG_
    EXPECT(checked > 3 * BK_CONFIG_NKEYS, "only %d checks", checked);
}

/* ---------------------------------------------------------------- printing */

static void set_every_key_away_from_its_default(bk_config *c) {
    bk_config_defaults(c);
    const char *sets[] = {
        "run.name=round trip", "run.out_dir=/tmp/some dir/runs", "run.seed=2147483647", "run.threads=3",
        "data.root=/data/EBB!/root-1", "data.split=list:configs/lists/x.txt", "data.train_list=lists/clean.txt",
        "data.resize_h=256", "data.resize_w=384", "data.crop_h=128", "data.crop_w=160", "data.hflip=false",
        "data.vflip=true", "data.workers=7", "data.prefetch=9", "data.max_pixels=123456789", "model.name=glassnet_c24",
        "model.variant=no_refine,no_g2", "model.init_from=runs/a/ckpt/best.h5", "model.init_dmshn=runs/b/ckpt/last.h5",
        "train.steps=123456", "train.batch=5", "train.accum=3", "train.lr=0.000125", "train.beta1=0.5",
        "train.beta2=0.99", "train.eps=1e-6", "train.weight_decay=0.0005", "train.schedule=cosine",
        "train.step_every=333", "train.gamma=0.5", "train.lr_floor=1e-6", "train.clip_grad_norm=2.5",
        "train.log_every=7", "train.val_every=0", "train.val_max_images=0", "train.ckpt_every=11", "train.samples=0",
        "loss.l1=0.5", "loss.ssim=0.05", "loss.ms_ssim=0.84", "loss.msssim_mode=dmshn_compat", "loss.lpips=0.3",
        "loss.lpips_weights=weights/lpips.h5", "loss.vgg=0.01", "loss.vgg_weights=weights/vgg19.h5", "loss.adv=1",
        "gan.n_critic=5", "gan.lambda_gp=7.5", "gan.lr=3e-4", "gan.beta1=0.25", "gan.beta2=0.75",
    };
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        EXPECT(bk_config_set(c, sets[i]) == BK_OK, "--set %s: %s", sets[i], bk_last_error());
    /* every key now differs from its default (so the round trip below covers every key) */
    bk_config d;
    bk_config_defaults(&d);
#define DIFF_STR(s, k) EXPECT(strcmp(c->s##_##k, d.s##_##k), "%s.%s still has its default", #s, #k);
#define DIFF_ENUM(s, k) DIFF_STR(s, k)
#define DIFF_INT(s, k) EXPECT(c->s##_##k != d.s##_##k, "%s.%s still has its default", #s, #k);
#define DIFF_FLOAT(s, k) DIFF_INT(s, k)
#define DIFF_BOOL(s, k) DIFF_INT(s, k)
#define DIFF_(s, k, type, def, lo, hi, help) DIFF_##type(s, k)
    BK_CONFIG_KEYS(DIFF_)
#undef DIFF_
}

static void print_parses_back_to_the_same_config(void) {
    bk_config c, back;
    char diff[400], *text;
    /* the defaults */
    bk_config_defaults(&c);
    for (int with_sources = 0; with_sources < 2; with_sources++) {
        bk_status st = print_and_parse(&c, with_sources, &back, &text);
        EXPECT(st == BK_OK, "defaults (sources %d): %s", with_sources, bk_last_error());
        EXPECT(same_config(&c, &back, diff, sizeof diff), "defaults (sources %d): %s", with_sources, diff);
        free(text);
    }
    /* every key changed, from --set and from a file (sources printed as comments) */
    set_every_key_away_from_its_default(&c);
    make_tmpdir();
    char path[256];
    snprintf(path, sizeof path, "%s/c.ini", tmpdir);
    write_file(path, "[train]\nsteps = 42 # from a file\n");
    EXPECT(bk_config_load(&c, path) == BK_OK, "load: %s", bk_last_error());
    for (int with_sources = 0; with_sources < 2; with_sources++) {
        bk_status st = print_and_parse(&c, with_sources, &back, &text);
        EXPECT(st == BK_OK, "every key (sources %d): %s", with_sources, bk_last_error());
        EXPECT(same_config(&c, &back, diff, sizeof diff), "every key (sources %d): %s", with_sources, diff);
        if (with_sources) {
            char want[300];
            snprintf(want, sizeof want, "steps = 42 ; %s:2\n", path);
            EXPECT(strstr(text, want) != NULL, "printed sources lack \"%s\"", want);
            EXPECT(strstr(text, "lr = 0.000125 ; --set\n") != NULL, "printed sources lack the --set of train.lr");
            EXPECT(strstr(text, "[gan]\n") != NULL && strstr(text, "\n[run]\n") == NULL && !strncmp(text, "[run]\n", 6),
                   "sections");
        }
        /* printing what was parsed gives the same text (without sources) */
        if (!with_sources) {
            char *text2 = NULL;
            size_t len2 = 0;
            FILE *m = open_memstream(&text2, &len2);
            bk_config_print(&back, m, false);
            fclose(m);
            EXPECT(!strcmp(text, text2), "printing twice differs");
            free(text2);
        }
        free(text);
    }
    remove_tmpdir();
}

/* The printed configuration is what checkpoints store and `train --resume` parses: numbers keep
 * every bit of their double. */
static void print_keeps_every_digit_of_a_number(void) {
    bk_config c, back;
    char diff[400];
    bk_config_defaults(&c);
    EXPECT(bk_config_set(&c, "train.lr=0.00033333333333333332") == BK_OK, "set: %s", bk_last_error());
    EXPECT(bk_config_set(&c, "loss.ssim=0.1234567890123") == BK_OK, "set: %s", bk_last_error());
    bk_status st = print_and_parse(&c, false, &back, NULL);
    EXPECT(st == BK_OK, "parse: %s", bk_last_error());
    EXPECT(same_config(&c, &back, diff, sizeof diff), "printed and parsed back: %s", diff);
}

/* Strings may hold 511 characters (a long data.root); the printed config must parse back, and a
 * file with such a line must load with the right line numbers after it. */
static void long_strings_survive_print_and_files(void) {
    bk_config c, back;
    char diff[400], arg[700], root[400];
    root[0] = '/';
    memset(root + 1, 'r', 299);
    root[300] = '\0';
    bk_config_defaults(&c);
    snprintf(arg, sizeof arg, "data.root=%s", root);
    EXPECT(bk_config_set(&c, arg) == BK_OK, "set a 300-character data.root: %s", bk_last_error());
    bk_status st = print_and_parse(&c, false, &back, NULL);
    EXPECT(st == BK_OK, "the printed config with a 300-character data.root does not parse: %s", bk_last_error());
    if (st == BK_OK) EXPECT(same_config(&c, &back, diff, sizeof diff), "printed and parsed back: %s", diff);

    make_tmpdir();
    char path[256], text[1000];
    snprintf(path, sizeof path, "%s/long.ini", tmpdir);
    snprintf(text, sizeof text, "[data]\nroot = %s\n[train]\nsteps = x\n", root);
    write_file(path, text);
    bk_config_defaults(&c);
    st = bk_config_load(&c, path);
    char want[300];
    snprintf(want, sizeof want, "%s:4:", path);
    EXPECT(st != BK_OK && strstr(bk_last_error(), want) && strstr(bk_last_error(), "train.steps"),
           "the error after a 300-character line should name line 4 and train.steps: %s", bk_last_error());
    EXPECT(!strcmp(c.data_root, root), "data.root from the file has %zu characters, not 300", strlen(c.data_root));
    remove_tmpdir();
}

/* "the first error names path:line": a malformed line before another error is the one named. */
static void the_first_error_is_the_one_reported(void) {
    make_tmpdir();
    expect_refused("malformed line, then an unknown key", "[train]\nthis line is broken\nsteps = 3\nbogus = 1\n", 2,
                   "not a valid INI line", NULL);
    /* an unterminated section header: its keys land in section "" and are refused too */
    expect_refused("malformed section header, then its key", "[train\nsteps = 10\n", 1, "not a valid INI line", NULL);
    expect_refused("unknown key, then a malformed line", "[train]\nbogus = 1\nthis line is broken\n", 2, "bogus",
                   NULL);
    remove_tmpdir();
}

/* ---------------------------------------------------------------- docs/CONFIG.md */

static void help_markdown_is_docs_config_md(void) {
    char train[PATH_MAX], build[PATH_MAX / 2], root[PATH_MAX / 2];
    if (!train_binary(train, sizeof train)) return;
    locate(build, root, sizeof build);
    make_tmpdir();
    char out[300], err[300], doc[PATH_MAX + 32];
    snprintf(out, sizeof out, "%s/out.md", tmpdir);
    snprintf(err, sizeof err, "%s/err.txt", tmpdir);
    snprintf(doc, sizeof doc, "%s/docs/CONFIG.md", root);
    char *argv[] = {train, "--help-config", "--markdown", NULL};
    int status = run_program(argv, out, err);
    EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s --help-config --markdown: status %d", train, status);
    size_t n_got = 0, n_doc = 0;
    char *got = read_all(out, &n_got), *want = read_all(doc, &n_doc);
    EXPECT(want != NULL, "cannot read %s", doc);
    if (got && want) {
        size_t i = 0;
        while (i < n_got && i < n_doc && got[i] == want[i]) i++;
        int line = 1;
        for (size_t j = 0; j < i; j++) line += got[j] == '\n';
        EXPECT(n_got == n_doc && i == n_got,
               "docs/CONFIG.md differs from `train --help-config --markdown` at byte %zu (line %d; %zu vs %zu "
               "bytes): regenerate it with build/bin/train --help-config --markdown > docs/CONFIG.md",
               i, line, n_doc, n_got);
        /* and the markdown lists every key of the table under its section */
#define MD_(s, k, type, def, lo, hi, help)                                                          \
    {                                                                                               \
        char sec[64], row[128];                                                                     \
        snprintf(sec, sizeof sec, "## [%s]", #s);                                                   \
        snprintf(row, sizeof row, "| `%s` |", #k);                                                  \
        const char *at = strstr(got, sec);                                                          \
        EXPECT(at && strstr(at, row), "%s.%s missing from the markdown", #s, #k);                  \
    }
        BK_CONFIG_KEYS(MD_)
#undef MD_
    }
    free(got);
    free(want);
    /* the plain help lists every key too */
    char *argv2[] = {train, "--help-config", NULL};
    status = run_program(argv2, out, err);
    EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0, "--help-config: status %d", status);
    got = read_all(out, NULL);
    if (got) {
#define TXT_(s, k, type, def, lo, hi, help)                                                         \
    {                                                                                               \
        char row[128];                                                                              \
        snprintf(row, sizeof row, "\n  %s ", #k);                                                   \
        EXPECT(strstr(got, row) && strstr(got, "[" #s "]\n"), "%s.%s missing from --help-config", #s, #k); \
    }
        BK_CONFIG_KEYS(TXT_)
#undef TXT_
    }
    free(got);
    remove_tmpdir();
}

BK_TEST_MAIN(BK_TEST(defaults_equal_the_table), BK_TEST(a_file_sets_values),
             BK_TEST(bad_files_are_refused_with_file_line_and_key), BK_TEST(long_values_are_refused_with_the_key),
             BK_TEST(set_applies_and_its_errors_name_the_argument), BK_TEST(every_key_enforces_its_type_and_range),
             BK_TEST(print_parses_back_to_the_same_config), BK_TEST(print_keeps_every_digit_of_a_number),
             BK_TEST(long_strings_survive_print_and_files), BK_TEST(the_first_error_is_the_one_reported),
             BK_TEST(help_markdown_is_docs_config_md))
