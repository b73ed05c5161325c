/* test_parity.c — every core op against PyTorch: forward, first and second order.
 *
 * Reference values come from scripts/gen_fixtures.py (tests/fixtures/ops.h5 and gp_critic.h5;
 * layout in tests/support/fixture.h). For each case of ops.h5 the test
 *   1. builds the inputs as leaves that require grad, runs the op (dispatch below), compares out;
 *   2. g1 = bk_grad(out, gout, inputs, create_graph) with gout itself a leaf that requires grad,
 *      compares every d1_<input>;
 *   3. S = sum_i sum(v_i * g1_i), differentiates S with respect to every input and gout, and
 *      compares every d2_<input> and d2_gout (zeros where torch returned None).
 * Cases with model parameters (conv weights and biases, batch norm's gamma and beta, listed in
 * the `params` attribute) run twice: once with every input a step tensor and the second order by
 * bk_grad, once with the parameters persistent (the weight-cache path of conv.c) and the second
 * order by bk_backward into ->grad. Every comparison is SPEC "within 1e-4": max|got - want| <=
 * 1e-4 max(max|want|, 1e-6).
 * Variants, from the case's attributes (fixture.h):
 *   outputs   several outputs (split, pyramid decomposition): each out_<o> is compared, and the
 *             first order is that of L = sum_o <gout_o, out_o>, the second order is also taken
 *             with respect to every gout_o;
 *   order 1   first-order-only ops (hardswish, sigmoid, tanh, batch norm, max pooling): forward
 *             and first order without create_graph; in the persistent run the first order is
 *             taken by bk_backward into ->grad. parity_first_order_only_refused checks that
 *             asking them for a second order stops with a message;
 *   buffers   persistent state updated in place (batch norm's running statistics): made
 *             persistent in both runs and compared with new_<buffer> after the op;
 *   consts    data that is not differentiated (earlier batch norm batches).
 *
 * One test per op family; each case of a family runs in its own child process, so a panic in
 * one case (a BK_CHECK, a reference oneDNN implementation under BK_IMPL_FAIL) is reported with
 * the case's name and the other cases still run. BK_PARITY_CASE=substring runs only the cases
 * whose name contains it. Adding a case: one line in the table of gen_fixtures.py; a new op also
 * needs one branch in dispatch() and one line in OPS[].
 *
 * gp_critic_*: the WGAN-GP penalty through a small critic, second order through conv, instance
 * norm and (fused) LeakyReLU, checked against gp_critic.h5.
 */
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/conv_choice.h"
#include "layers/pyramid.h"
#include "tests/support/fixture.h"
#include "tests/support/harness.h"

#define TOL 1e-4
enum { MAX_IN = 8, MAX_OUT = BK_PYRAMID_MAX_LEVELS + 1 };

/* Comparisons that failed in this process (a case's child). */
static int n_failed;

static bool verbose(void) {
    const char *v = getenv("BK_TEST_VERBOSE");
    return v && *v && *v != '0';
}

/* ---------------------------------------------------------------- comparisons */

static bool check_values(const char *label, const bk_tensor *got, const float *want,
                         bk_shape want_shape) {
    char a[64], b[64];
    if (!got) {
        bk_test_fail(__FILE__, __LINE__, "%s: no tensor", label);
        n_failed++;
        return false;
    }
    if (!bk_shape_eq(bk_shape_of(got), want_shape)) {
        bk_test_fail(__FILE__, __LINE__, "%s: shape %s, want %s", label,
                     bk_shape_str(bk_shape_of(got), a), bk_shape_str(want_shape, b));
        n_failed++;
        return false;
    }
    float *g = bk_test_nchw(got);
    bool ok = EXPECT_CLOSE(label, g, want, (size_t)bk_shape_numel(want_shape), TOL);
    free(g);
    if (!ok) n_failed++;
    return ok;
}

/* got against the dataset `path`; label "<prefix> <what>". */
static bool check_dataset(const bk_fixture *f, const char *prefix, const char *what,
                          const char *path, const bk_tensor *got) {
    bk_shape s;
    float *want = bk_fixture_read(f, path, &s, NULL);
    char label[256];
    snprintf(label, sizeof label, "%s %s", prefix, what);
    bool ok = check_values(label, got, want, s);
    free(want);
    return ok;
}

static bool streq(const char *a, const char *b) { return strcmp(a, b) == 0; }

/* Whether `name` is one of the comma-separated names in `list`. */
static bool in_list(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0) return true;
        if (!e) break;
        p = e + 1;
    }
    return false;
}

/* ---------------------------------------------------------------- the ops */

/* Every op the fixtures may name, and the test (family) that runs its cases. */
static const struct {
    const char *op, *family;
} OPS[] = {
    {"conv2d", "conv2d"},
    {"conv_transpose2d", "conv_transpose2d"},
    {"instance_norm", "instance_norm"},
    {"leaky_relu", "activations"},
    {"relu", "activations"},
    {"add", "binary"},
    {"sub", "binary"},
    {"mul", "binary"},
    {"div", "binary"},
    {"affine", "unary"},
    {"abs", "unary"},
    {"square", "unary"},
    {"sqrt", "unary"},
    {"sum", "reductions"},
    {"mean", "reductions"},
    {"sum_per_sample", "reductions"},
    {"mean_per_sample", "reductions"},
    {"sum_channels", "reductions"},
    {"mean_channels", "reductions"},
    {"sum_to", "reductions"},
    {"expand", "reductions"},
    {"clamp", "activations"},
    {"relu6", "activations"},
    {"hardswish", "activations"},
    {"sigmoid", "activations"},
    {"tanh", "activations"},
    {"exp", "unary"},
    {"log", "unary"},
    {"pow", "unary"},
    {"concat", "shape"},
    {"slice", "shape"},
    {"split", "shape"},
    {"embed", "shape"},
    {"transpose_hw", "shape"},
    {"reflect_pad", "shape"},
    {"reflect_pad_bwd", "shape"},
    {"zero_insert", "shape"},
    {"subsample", "shape"},
    {"resample", "resample"},
    {"up2", "resample"},
    {"up4", "resample"},
    {"down2", "resample"},
    {"avg_pool2", "resample"},
    {"max_pool", "max_pool"},
    {"batch_norm", "batch_norm"},
    {"mean_h", "reductions"},
    {"mean_w", "reductions"},
    {"coord_pool", "reductions"},
    {"pyramid_decompose", "pyramid"},
    {"pyramid_reconstruct", "pyramid"},
};
enum { N_OPS = sizeof OPS / sizeof OPS[0] };

static const char *family_of(const char *op) {
    for (int i = 0; i < N_OPS; i++)
        if (streq(OPS[i].op, op)) return OPS[i].family;
    return NULL;
}

typedef bk_tensor *(*unary_fn)(bk_ctx *, bk_tensor *);
typedef bk_tensor *(*binary_fn)(bk_ctx *, bk_tensor *, bk_tensor *);

static bk_tensor *relu_fn(bk_ctx *ctx, bk_tensor *x) { return bk_relu(ctx, x); }

/* Coordinate attention's pooling path (gen_fixtures.py coord_pool): the mean over W and the
 * transposed mean over H, concatenated along H and split back, broadcast with expand. */
static bk_tensor *coord_pool(bk_ctx *ctx, bk_tensor *x) {
    bk_shape s = bk_shape_of(x);
    bk_tensor *parts[2] = {bk_mean_w(ctx, x), bk_transpose_hw(ctx, bk_mean_h(ctx, x))};
    bk_tensor *y = bk_concat(ctx, 2, parts, BK_AXIS_H); /* N,C,H+W,1 */
    const int64_t sizes[2] = {x->h, x->w};
    bk_split(ctx, y, BK_AXIS_H, 2, sizes, parts);
    bk_tensor *a_h = parts[0], *a_w = bk_transpose_hw(ctx, parts[1]); /* N,C,H,1 / N,C,1,W */
    return bk_mul(ctx, bk_mul(ctx, x, bk_expand(ctx, a_h, s)), bk_expand(ctx, a_w, s));
}

static const struct {
    const char *op;
    unary_fn fn;
} UNARY[] = {
    {"relu", relu_fn},
    {"abs", bk_abs},
    {"square", bk_square},
    {"sqrt", bk_sqrt},
    {"sum", bk_sum},
    {"mean", bk_mean},
    {"sum_per_sample", bk_sum_per_sample},
    {"mean_per_sample", bk_mean_per_sample},
    {"sum_channels", bk_sum_channels},
    {"mean_channels", bk_mean_channels},
    {"relu6", bk_relu6},
    {"hardswish", bk_hardswish},
    {"sigmoid", bk_sigmoid},
    {"tanh", bk_tanh},
    {"exp", bk_exp},
    {"log", bk_log},
    {"transpose_hw", bk_transpose_hw},
    {"subsample", bk_subsample},
    {"up2", bk_up2},
    {"up4", bk_up4},
    {"down2", bk_down2},
    {"avg_pool2", bk_avg_pool2},
    {"mean_h", bk_mean_h},
    {"mean_w", bk_mean_w},
    {"coord_pool", coord_pool},
};

static const struct {
    const char *op;
    binary_fn fn;
} BINARY[] = {{"add", bk_add}, {"sub", bk_sub}, {"mul", bk_mul}, {"div", bk_div}};

typedef struct op_inputs {
    int n;                          /* the differentiable inputs t[0..n-1] */
    char names[MAX_IN][32];
    bk_tensor *t[MAX_IN + MAX_OUT]; /* + the gouts, for the second order */
    int n_extra;                    /* buffers (persistent) and constants */
    char extra_names[MAX_IN][32];
    bk_tensor *extra[MAX_IN];
} op_inputs;

static bk_tensor *input(const op_inputs *in, const char *name) {
    for (int i = 0; i < in->n; i++)
        if (streq(in->names[i], name)) return in->t[i];
    for (int i = 0; i < in->n_extra; i++)
        if (streq(in->extra_names[i], name)) return in->extra[i];
    return NULL;
}

static bk_tensor *need_input(const char *cs, const op_inputs *in, const char *name) {
    bk_tensor *t = input(in, name);
    if (!t) {
        bk_test_fail(__FILE__, __LINE__, "%s: the case has no input '%s'", cs, name);
        n_failed++;
    }
    return t;
}

static bk_conv_opts conv_opts(const bk_fixture *f, const char *cs) {
    return (bk_conv_opts){
        .stride_h = bk_fixture_attr_int(f, cs, "stride_h"),
        .stride_w = bk_fixture_attr_int(f, cs, "stride_w"),
        .pad_t = bk_fixture_attr_int(f, cs, "pad_t"),
        .pad_l = bk_fixture_attr_int(f, cs, "pad_l"),
        .pad_b = bk_fixture_attr_int(f, cs, "pad_b"),
        .pad_r = bk_fixture_attr_int(f, cs, "pad_r"),
        .groups = bk_fixture_attr_int(f, cs, "groups"),
        .out_pad_h = bk_fixture_attr_int(f, cs, "out_pad_h"),
        .out_pad_w = bk_fixture_attr_int(f, cs, "out_pad_w"),
    };
}

/* Records that case `cs` cannot be run as its fixture describes it. */
static __attribute__((format(printf, 2, 3))) void bad_case(const char *cs, const char *fmt, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    bk_test_fail(__FILE__, __LINE__, "%s: %s", cs, msg);
    n_failed++;
}

static int attr_int(const bk_fixture *f, const char *cs, const char *name) {
    return bk_fixture_attr_int(f, cs, name);
}
static float attr_float(const bk_fixture *f, const char *cs, const char *name) {
    return (float)bk_fixture_attr_double(f, cs, name);
}

/* The batch norm of case `cs`: x, gamma, beta and the buffers running_mean, running_var; first
 * one training call without recording on each of the `consts` (earlier batches), in order. */
static bk_tensor *batch_norm_case(bk_ctx *ctx, const bk_fixture *f, const char *cs,
                                  const op_inputs *in) {
    bk_tensor *x = need_input(cs, in, "x"), *gamma = need_input(cs, in, "gamma"),
              *beta = need_input(cs, in, "beta"), *rm = need_input(cs, in, "running_mean"),
              *rv = need_input(cs, in, "running_var");
    if (!x || !gamma || !beta || !rm || !rv) return NULL;
    if (rm->life != BK_PERSISTENT || rv->life != BK_PERSISTENT) {
        bad_case(cs, "running statistics are not persistent");
        return NULL;
    }
    const float momentum = attr_float(f, cs, "momentum"), eps = attr_float(f, cs, "eps");
    char *consts = bk_fixture_attr_string_or(f, cs, "consts", "");
    bool ok = true;
    for (char *save = NULL, *tok = strtok_r(consts, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        bk_tensor *x0 = need_input(cs, in, tok);
        if (!x0) {
            ok = false;
            break;
        }
        bool was = bk_set_grad_enabled(ctx, false);
        bk_batch_norm(ctx, x0, gamma, beta, rm, rv, true, momentum, eps);
        bk_set_grad_enabled(ctx, was);
    }
    free(consts);
    if (!ok) return NULL;
    return bk_batch_norm(ctx, x, gamma, beta, rm, rv, attr_int(f, cs, "training") != 0,
                         momentum, eps);
}

static bool resample_mode(const bk_fixture *f, const char *cs, bk_resample_mode *mode) {
    char *m = bk_fixture_attr_string(f, cs, "mode");
    bool known = true;
    if (streq(m, "bilinear")) *mode = BK_RESAMPLE_BILINEAR;
    else if (streq(m, "bilinear_aa")) *mode = BK_RESAMPLE_BILINEAR_AA;
    else if (streq(m, "avg2")) *mode = BK_RESAMPLE_AVG2;
    else known = false;
    if (!known) bad_case(cs, "unknown resample mode '%s'", m);
    free(m);
    return known;
}

/* Runs the single-output op of case `cs` on its inputs. NULL (after recording a failure) if it
 * cannot. */
static bk_tensor *dispatch_one(bk_ctx *ctx, const bk_fixture *f, const char *cs, const char *op,
                               const op_inputs *in) {
    if (streq(op, "conv2d") || streq(op, "conv_transpose2d")) {
        bk_tensor *x = need_input(cs, in, "x"), *w = need_input(cs, in, "w");
        if (!x || !w) return NULL;
        bk_conv_opts o = conv_opts(f, cs);
        if (streq(op, "conv_transpose2d")) return bk_conv_transpose2d(ctx, x, w, input(in, "b"), o);
        char *act_name = bk_fixture_attr_string(f, cs, "act");
        float slope = (float)bk_fixture_attr_double(f, cs, "slope");
        bk_act act = streq(act_name, "relu")         ? bk_act_relu()
                     : streq(act_name, "leaky_relu") ? bk_act_leaky_relu(slope)
                                                     : bk_act_none();
        bool known = streq(act_name, "none") || streq(act_name, "relu") ||
                     streq(act_name, "leaky_relu");
        if (!known) {
            bk_test_fail(__FILE__, __LINE__, "%s: unknown activation '%s'", cs, act_name);
            n_failed++;
        }
        free(act_name);
        return known ? bk_conv2d(ctx, x, w, input(in, "b"), o, act, input(in, "r")) : NULL;
    }
    if (streq(op, "instance_norm")) {
        bk_tensor *x = need_input(cs, in, "x");
        return x ? bk_instance_norm(ctx, x, (float)bk_fixture_attr_double(f, cs, "eps")) : NULL;
    }
    if (streq(op, "leaky_relu")) {
        bk_tensor *x = need_input(cs, in, "x");
        return x ? bk_leaky_relu(ctx, x, (float)bk_fixture_attr_double(f, cs, "slope")) : NULL;
    }
    if (streq(op, "affine")) {
        bk_tensor *x = need_input(cs, in, "x");
        return x ? bk_affine(ctx, x, (float)bk_fixture_attr_double(f, cs, "a"),
                             (float)bk_fixture_attr_double(f, cs, "b"))
                 : NULL;
    }
    if (streq(op, "sum_to") || streq(op, "expand")) {
        bk_tensor *x = need_input(cs, in, "x");
        int s[4];
        bk_fixture_attr_ints(f, cs, "shape", s, 4);
        bk_shape to = {s[0], s[1], s[2], s[3]};
        if (!x) return NULL;
        return streq(op, "sum_to") ? bk_sum_to(ctx, x, to) : bk_expand(ctx, x, to);
    }
    /* axis attributes are torch dimensions, which are the values of BK_AXIS_* */
    if (streq(op, "clamp")) {
        bk_tensor *x = need_input(cs, in, "x");
        return x ? bk_clamp(ctx, x, attr_float(f, cs, "lo"), attr_float(f, cs, "hi")) : NULL;
    }
    if (streq(op, "pow")) {
        bk_tensor *x = need_input(cs, in, "x");
        return x ? bk_pow(ctx, x, attr_float(f, cs, "p")) : NULL;
    }
    if (streq(op, "concat")) {
        bk_tensor *xs[BK_MAX_SRC];
        if (in->n > BK_MAX_SRC) {
            bad_case(cs, "concat of %d inputs (at most %d)", in->n, BK_MAX_SRC);
            return NULL;
        }
        for (int j = 0; j < in->n; j++) {
            char nm[16];
            snprintf(nm, sizeof nm, "x%d", j);
            if (!(xs[j] = need_input(cs, in, nm))) return NULL;
        }
        return bk_concat(ctx, in->n, xs, attr_int(f, cs, "axis"));
    }
    if (streq(op, "slice") || streq(op, "embed")) {
        bk_tensor *x = need_input(cs, in, "x");
        if (!x) return NULL;
        int axis = attr_int(f, cs, "axis"), offset = attr_int(f, cs, "offset");
        return streq(op, "slice") ? bk_slice(ctx, x, axis, offset, attr_int(f, cs, "size"))
                                  : bk_embed(ctx, x, axis, offset, attr_int(f, cs, "full"));
    }
    if (streq(op, "reflect_pad") || streq(op, "reflect_pad_bwd")) {
        bk_tensor *x = need_input(cs, in, "x");
        if (!x) return NULL;
        int t = attr_int(f, cs, "pad_t"), l = attr_int(f, cs, "pad_l"),
            b = attr_int(f, cs, "pad_b"), r = attr_int(f, cs, "pad_r");
        return streq(op, "reflect_pad") ? bk_reflect_pad(ctx, x, t, l, b, r)
                                        : bk_reflect_pad_bwd(ctx, x, t, l, b, r);
    }
    if (streq(op, "zero_insert")) {
        bk_tensor *x = need_input(cs, in, "x");
        return x ? bk_zero_insert(ctx, x, attr_int(f, cs, "out_h"), attr_int(f, cs, "out_w"))
                 : NULL;
    }
    if (streq(op, "resample")) {
        bk_tensor *x = need_input(cs, in, "x");
        bk_resample_mode mode;
        if (!x || !resample_mode(f, cs, &mode)) return NULL;
        return bk_resample(ctx, x, attr_int(f, cs, "out_h"), attr_int(f, cs, "out_w"), mode);
    }
    if (streq(op, "max_pool")) {
        bk_tensor *x = need_input(cs, in, "x");
        return x ? bk_max_pool(ctx, x, attr_int(f, cs, "k"), attr_int(f, cs, "stride")) : NULL;
    }
    if (streq(op, "batch_norm")) return batch_norm_case(ctx, f, cs, in);
    if (streq(op, "pyramid_reconstruct")) {
        /* inputs h0 .. h{L-1}, low */
        bk_pyramid p = {.levels = in->n - 1};
        if (p.levels < 1 || p.levels > BK_PYRAMID_MAX_LEVELS) {
            bad_case(cs, "%d inputs for a pyramid", in->n);
            return NULL;
        }
        for (int l = 0; l < p.levels; l++) {
            char nm[16];
            snprintf(nm, sizeof nm, "h%d", l);
            if (!(p.high[l] = need_input(cs, in, nm))) return NULL;
        }
        if (!(p.low = need_input(cs, in, "low"))) return NULL;
        return bk_pyramid_reconstruct(ctx, &p);
    }
    for (size_t i = 0; i < sizeof UNARY / sizeof UNARY[0]; i++)
        if (streq(op, UNARY[i].op)) {
            bk_tensor *x = need_input(cs, in, "x");
            return x ? UNARY[i].fn(ctx, x) : NULL;
        }
    for (size_t i = 0; i < sizeof BINARY / sizeof BINARY[0]; i++)
        if (streq(op, BINARY[i].op)) {
            bk_tensor *a = need_input(cs, in, "a"), *b = need_input(cs, in, "b");
            return a && b ? BINARY[i].fn(ctx, a, b) : NULL;
        }
    bk_test_fail(__FILE__, __LINE__, "%s: no dispatch for op '%s'", cs, op);
    n_failed++;
    return NULL;
}

/* Runs the op of case `cs`: its outputs into out[0..], how many (0 after recording a failure if
 * it cannot). */
static int dispatch(bk_ctx *ctx, const bk_fixture *f, const char *cs, const char *op,
                    const op_inputs *in, bk_tensor **out) {
    if (streq(op, "split")) {
        bk_tensor *x = need_input(cs, in, "x");
        int n = bk_fixture_attr_count(f, cs, "sizes");
        if (n < 1 || n > MAX_OUT) bad_case(cs, "split into %d parts (1..%d)", n, MAX_OUT);
        if (!x || n < 1 || n > MAX_OUT) return 0;
        int sz[MAX_OUT];
        int64_t sizes[MAX_OUT];
        bk_fixture_attr_ints(f, cs, "sizes", sz, n);
        for (int j = 0; j < n; j++) sizes[j] = sz[j];
        bk_split(ctx, x, attr_int(f, cs, "axis"), n, sizes, out);
        return n;
    }
    if (streq(op, "pyramid_decompose")) {
        bk_tensor *x = need_input(cs, in, "x");
        int levels = attr_int(f, cs, "levels");
        if (levels < 1 || levels > BK_PYRAMID_MAX_LEVELS)
            bad_case(cs, "pyramid of %d levels (1..%d)", levels, BK_PYRAMID_MAX_LEVELS);
        if (!x || levels < 1 || levels > BK_PYRAMID_MAX_LEVELS) return 0;
        bk_pyramid p;
        bk_pyramid_decompose(ctx, x, levels, &p);
        for (int l = 0; l < levels; l++) out[l] = p.high[l];
        out[levels] = p.low;
        return levels + 1;
    }
    out[0] = dispatch_one(ctx, f, cs, op, in);
    return out[0] ? 1 : 0;
}

/* ---------------------------------------------------------------- one case of ops.h5 */

enum { MODE_STEP = 0, MODE_PERSISTENT = 1 };

/* Splits a comma-separated list into names[0..]; returns how many (at most max). */
static int split_names(char *list, char names[][32], int max) {
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok && n < max;
         tok = strtok_r(NULL, ",", &save))
        snprintf(names[n++], 32, "%s", tok);
    return n;
}

/* The dataset of output k: "out" etc. for a single output, "out_<o>" for several. */
static const char *out_path(char *buf, size_t n, const char *cs, const char *what, bool multi,
                            const char *oname) {
    if (multi) snprintf(buf, n, "%s/%s_%s", cs, what, oname);
    else snprintf(buf, n, "%s/%s", cs, what);
    return buf;
}

static void run_op_case(const char *cs, int mode) {
    bk_ctx *ctx = bk_test_ctx();
    bk_fixture *f = bk_fixture_open("ops.h5");
    char *op = bk_fixture_attr_string(f, cs, "op");
    char *names = bk_fixture_attr_string(f, cs, "inputs");
    char *params = bk_fixture_attr_string(f, cs, "params");
    char *buffers = bk_fixture_attr_string_or(f, cs, "buffers", "");
    char *consts = bk_fixture_attr_string_or(f, cs, "consts", "");
    char *outputs = bk_fixture_attr_string_or(f, cs, "outputs", "");
    const int order = bk_fixture_attr_int_or(f, cs, "order", 2);
    const bool multi = *outputs != '\0';
    char prefix[160], path[256];
    snprintf(prefix, sizeof prefix, "%s%s", cs, mode == MODE_PERSISTENT ? " [persistent]" : "");

    op_inputs in = {0};
    bool persistent[MAX_IN] = {0}, extra_persistent[MAX_IN] = {0};
    char onames[MAX_OUT][32];
    int n_out = multi ? split_names(outputs, onames, MAX_OUT) : 1;
    if (!multi) snprintf(onames[0], sizeof onames[0], "out");
    if (order != 1 && order != 2) {
        bk_test_fail(__FILE__, __LINE__, "%s: order %d (1 or 2)", cs, order);
        n_failed++;
        goto done;
    }
    for (char *save = NULL, *tok = strtok_r(names, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (in.n == MAX_IN) {
            bk_test_fail(__FILE__, __LINE__, "%s: more than %d inputs", cs, MAX_IN);
            n_failed++;
            goto done;
        }
        int i = in.n++;
        snprintf(in.names[i], sizeof in.names[i], "%s", tok);
        snprintf(path, sizeof path, "%s/%s", cs, tok);
        persistent[i] = mode == MODE_PERSISTENT && in_list(params, tok);
        in.t[i] = persistent[i] ? bk_fixture_persistent(ctx, f, path, tok)
                                : bk_fixture_tensor(ctx, f, path);
        in.t[i]->requires_grad = true;
    }
    if (in.n == 0) {
        bk_test_fail(__FILE__, __LINE__, "%s: no inputs", cs);
        n_failed++;
        goto done;
    }
    /* buffers: persistent in both modes (their values change in place); consts: step data */
    for (int kind = 0; kind < 2; kind++) {
        char *list = kind == 0 ? buffers : consts;
        for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok;
             tok = strtok_r(NULL, ",", &save)) {
            if (in.n_extra == MAX_IN) {
                bk_test_fail(__FILE__, __LINE__, "%s: more than %d buffers and constants", cs,
                             MAX_IN);
                n_failed++;
                goto done;
            }
            int i = in.n_extra++;
            snprintf(in.extra_names[i], sizeof in.extra_names[i], "%s", tok);
            snprintf(path, sizeof path, "%s/%s", cs, tok);
            extra_persistent[i] = kind == 0;
            in.extra[i] = kind == 0 ? bk_fixture_persistent(ctx, f, path, tok)
                                    : bk_fixture_tensor(ctx, f, path);
        }
    }

    /* forward */
    bk_tensor *out[MAX_OUT] = {0};
    int got = dispatch(ctx, f, cs, op, &in, out);
    if (got == 0) goto done;
    if (got != n_out) {
        bk_test_fail(__FILE__, __LINE__, "%s: %d outputs, the fixture has %d", prefix, got, n_out);
        n_failed++;
        goto done;
    }
    bool out_shape_ok = true;
    for (int k = 0; k < n_out; k++) {
        char what[64];
        snprintf(what, sizeof what, "fwd %s%s", multi ? "out_" : "", onames[k]);
        out_path(path, sizeof path, cs, "out", multi, onames[k]);
        if (!bk_shape_eq(bk_shape_of(out[k]), bk_fixture_shape(f, path, NULL)))
            out_shape_ok = false;
        check_dataset(f, prefix, what, path, out[k]);
    }
    for (int i = 0; i < in.n_extra; i++) {
        if (!extra_persistent[i]) continue;
        char what[64];
        snprintf(what, sizeof what, "fwd new_%s", in.extra_names[i]);
        snprintf(path, sizeof path, "%s/new_%s", cs, in.extra_names[i]);
        check_dataset(f, prefix, what, path, in.extra[i]);
    }
    if (!out_shape_ok) goto done; /* (reported) gout would not fit: nothing more to compare */

    /* first order: recorded when a second order follows. Several outputs (or the persistent run
     * of a first-order-only case, through bk_backward): from L = sum_k <gout_k, out_k>. */
    bk_tensor *gout[MAX_OUT];
    for (int k = 0; k < n_out; k++) {
        gout[k] = bk_fixture_tensor(ctx, f, out_path(path, sizeof path, cs, "gout", multi,
                                                     onames[k]));
        gout[k]->requires_grad = order >= 2;
    }
    bk_tensor *d1[MAX_IN] = {0};
    const bool by_backward = order == 1 && mode == MODE_PERSISTENT;
    if (!multi && !by_backward) {
        bk_grad(ctx, out[0], gout[0], in.n, in.t, d1, order >= 2);
    } else {
        bk_tensor *L = NULL;
        for (int k = 0; k < n_out; k++) {
            bk_tensor *term = bk_sum(ctx, bk_mul(ctx, gout[k], out[k]));
            L = L ? bk_add(ctx, L, term) : term;
        }
        if (by_backward) {
            bk_backward(ctx, L, false);
            for (int i = 0; i < in.n; i++)
                d1[i] = in.t[i]->grad ? in.t[i]->grad
                                      : bk_tensor_zeros(ctx, bk_shape_of(in.t[i]));
        } else {
            bk_grad(ctx, L, NULL, in.n, in.t, d1, order >= 2);
        }
    }
    for (int i = 0; i < in.n; i++) {
        char what[64];
        snprintf(what, sizeof what, "d1 %s", in.names[i]);
        snprintf(path, sizeof path, "%s/d1_%s", cs, in.names[i]);
        check_dataset(f, prefix, what, path, d1[i]);
    }
    if (order < 2) goto done;

    /* second order: S = sum_i <v_i, d1_i>, differentiated w.r.t. the inputs and the gouts */
    bk_tensor *S = NULL;
    for (int i = 0; i < in.n; i++) {
        snprintf(path, sizeof path, "%s/v_%s", cs, in.names[i]);
        bk_tensor *v = bk_fixture_tensor(ctx, f, path);
        if (!bk_same_shape(v, d1[i])) {
            bk_test_fail(__FILE__, __LINE__, "%s: v_%s and d1 %s differ in shape", prefix,
                         in.names[i], in.names[i]);
            n_failed++;
            goto done;
        }
        bk_tensor *term = bk_sum(ctx, bk_mul(ctx, v, d1[i]));
        S = S ? bk_add(ctx, S, term) : term;
    }
    for (int k = 0; k < n_out; k++) in.t[in.n + k] = gout[k];
    const int n_wrt = in.n + n_out;
    bk_tensor *d2[MAX_IN + MAX_OUT] = {0};
    if (!S->requires_grad) {
        /* nothing recorded: every second-order gradient is zero */
        for (int i = 0; i < n_wrt; i++) d2[i] = bk_tensor_zeros(ctx, bk_shape_of(in.t[i]));
    } else if (mode == MODE_STEP) {
        bk_grad(ctx, S, NULL, n_wrt, in.t, d2, false);
    } else {
        bk_backward(ctx, S, false);
        for (int i = 0; i < n_wrt; i++)
            d2[i] = in.t[i]->grad ? in.t[i]->grad : bk_tensor_zeros(ctx, bk_shape_of(in.t[i]));
    }
    for (int i = 0; i < n_wrt; i++) {
        char what[64];
        if (i < in.n) {
            snprintf(what, sizeof what, "d2 %s", in.names[i]);
            snprintf(path, sizeof path, "%s/d2_%s", cs, in.names[i]);
        } else {
            const char *o = onames[i - in.n];
            snprintf(what, sizeof what, "d2 gout%s%s", multi ? "_" : "", multi ? o : "");
            out_path(path, sizeof path, cs, "d2_gout", multi, o);
        }
        check_dataset(f, prefix, what, path, d2[i]);
    }

    if (ctx->conv_policy == BK_CONV_WINOGRAD && strstr(cs, "_wino_") && ctx->stats.winograd_runs < 3) {
        bk_test_fail(__FILE__, __LINE__, "%s: only %llu Winograd runs under BOKEHLAB_CONV_ALGO=winograd", prefix,
                     (unsigned long long)ctx->stats.winograd_runs);
        n_failed++;
    }

done:
    for (int i = 0; i < in.n; i++)
        if (persistent[i]) bk_tensor_free(ctx, in.t[i]);
    for (int i = 0; i < in.n_extra; i++)
        if (extra_persistent[i]) bk_tensor_free(ctx, in.extra[i]);
    bk_step_end(ctx);
    bk_fixture_close(f);
    free(op);
    free(names);
    free(params);
    free(buffers);
    free(consts);
    free(outputs);
}

/* Runs run_op_case in a child process; a failure or crash there fails the current test. */
static void run_isolated(const char *cs, int mode) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        bk_test_fail(__FILE__, __LINE__, "%s: fork failed", cs);
        return;
    }
    if (pid == 0) {
        n_failed = 0;
        run_op_case(cs, mode);
        bk_ctx_free(bk_test_ctx());
        fflush(stdout);
        _exit(n_failed ? 1 : 0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    const char *m = mode == MODE_PERSISTENT ? " [persistent]" : "";
    if (WIFSIGNALED(status))
        bk_test_fail(__FILE__, __LINE__, "case %s%s: killed by signal %d", cs, m,
                     WTERMSIG(status));
    else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        bk_test_fail(__FILE__, __LINE__, "case %s%s: failed (exit status %d)", cs, m,
                     WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

/* Every case of ops.h5 whose op belongs to `family`, in both modes where it has parameters. */
static void run_family(const char *family) {
    /* the parent only lists cases: no context, no OpenMP before fork() */
    bk_fixture *f = bk_fixture_open("ops.h5");
    const char *filter = getenv("BK_PARITY_CASE");
    int n = bk_fixture_count(f), ran = 0, in_family = 0;
    for (int i = 0; i < n; i++) {
        char *cs = bk_fixture_name(f, i);
        char *op = bk_fixture_attr_string(f, cs, "op");
        const char *fam = family_of(op);
        if (fam && streq(fam, family)) {
            in_family++;
            if (!filter || strstr(cs, filter)) {
                char *params = bk_fixture_attr_string(f, cs, "params");
                if (verbose()) printf("    -- case %s (%s)\n", cs, op);
                run_isolated(cs, MODE_STEP);
                if (*params) {
                    if (verbose()) printf("    -- case %s (%s) [persistent]\n", cs, op);
                    run_isolated(cs, MODE_PERSISTENT);
                }
                free(params);
                ran++;
            }
        }
        free(op);
        free(cs);
    }
    bk_fixture_close(f);
    EXPECT(in_family > 0, "ops.h5 has no case of family %s", family);
    if (filter && ran == 0) printf("    (no %s case matches BK_PARITY_CASE=%s)\n", family, filter);
}

static void parity_conv2d(void) { run_family("conv2d"); }
/* The same cases with the Winograd kernels wherever they fit (the *_wino_* cases, where the
 * three directions and the second order must all have run on them), against the same
 * PyTorch references. */
static void parity_conv2d_winograd(void) {
    setenv("BOKEHLAB_CONV_ALGO", "winograd", 1);
    run_family("conv2d");
    unsetenv("BOKEHLAB_CONV_ALGO");
}
static void parity_conv_transpose2d(void) { run_family("conv_transpose2d"); }
static void parity_instance_norm(void) { run_family("instance_norm"); }
static void parity_activations(void) { run_family("activations"); }
static void parity_unary(void) { run_family("unary"); }
static void parity_binary(void) { run_family("binary"); }
static void parity_reductions(void) { run_family("reductions"); }
static void parity_shape(void) { run_family("shape"); }
static void parity_resample(void) { run_family("resample"); }
static void parity_max_pool(void) { run_family("max_pool"); }
static void parity_batch_norm(void) { run_family("batch_norm"); }
static void parity_pyramid(void) { run_family("pyramid"); }

/* ---------------------------------------------------------------- first order only */

/* The first-order-only ops: the second order through each, asked for with create_graph, must
 * stop the process (SIGABRT from BK_CHECK) with a message naming the op. */
typedef enum { FO_HARDSWISH, FO_SIGMOID, FO_TANH, FO_MAX_POOL, FO_BATCH_NORM, FO_COUNT } fo_op;
static const struct {
    const char *name, *message; /* what stderr must contain */
} FO[FO_COUNT] = {
    [FO_HARDSWISH] = {"hardswish", "'hardswish_bwd' cannot be differentiated"},
    [FO_SIGMOID] = {"sigmoid", "'sigmoid_bwd' cannot be differentiated"},
    [FO_TANH] = {"tanh", "'tanh_bwd' cannot be differentiated"},
    [FO_MAX_POOL] = {"max_pool", "'max_pool_bwd' cannot be differentiated"},
    [FO_BATCH_NORM] = {"batch_norm", "batch norm"},
};

/* In a child: g = d sum(op(x)^2) / dx with create_graph, then d sum(g^2) / dx. */
static _Noreturn void second_order_through(fo_op which) {
    bk_ctx *ctx = bk_test_ctx();
    bk_tensor *x = bk_test_tensor(ctx, (bk_shape){2, 3, 6, 6}, -2.0f, 2.0f, 30 + which);
    x->requires_grad = true;
    bk_tensor *y = NULL, *gamma = NULL, *beta = NULL, *rm = NULL, *rv = NULL;
    switch (which) {
    case FO_HARDSWISH: y = bk_hardswish(ctx, x); break;
    case FO_SIGMOID: y = bk_sigmoid(ctx, x); break;
    case FO_TANH: y = bk_tanh(ctx, x); break;
    case FO_MAX_POOL: y = bk_max_pool(ctx, x, 3, 2); break;
    case FO_BATCH_NORM:
        gamma = bk_tensor_new_persistent(ctx, "gamma", 1, (bk_shape){1, 3, 1, 1});
        beta = bk_tensor_new_persistent(ctx, "beta", 1, (bk_shape){1, 3, 1, 1});
        rm = bk_tensor_new_persistent(ctx, "running_mean", 1, (bk_shape){1, 3, 1, 1});
        rv = bk_tensor_new_persistent(ctx, "running_var", 1, (bk_shape){1, 3, 1, 1});
        for (int c = 0; c < 3; c++) gamma->data[c] = 1.0f + 0.5f * c, rv->data[c] = 1.0f;
        gamma->requires_grad = beta->requires_grad = true;
        y = bk_batch_norm(ctx, x, gamma, beta, rm, rv, true, 0.1f, 1e-5f);
        break;
    default: break;
    }
    bk_tensor *g = NULL, *h = NULL;
    bk_grad(ctx, bk_sum(ctx, bk_square(ctx, y)), NULL, 1, &x, &g, true);
    bk_grad(ctx, bk_sum(ctx, bk_square(ctx, g)), NULL, 1, &x, &h, false);
    _exit(0); /* reaching this is the failure */
}

static void parity_first_order_only_refused(void) {
    for (int which = 0; which < FO_COUNT; which++) {
        char path[] = "/tmp/bk_test_stderr_XXXXXX";
        int fd = mkstemp(path);
        if (fd < 0) {
            bk_test_fail(__FILE__, __LINE__, "mkstemp failed");
            return;
        }
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            dup2(fd, 2); /* keep the expected message */
            second_order_through((fo_op)which);
        }
        if (pid < 0) {
            bk_test_fail(__FILE__, __LINE__, "fork failed");
            close(fd);
            unlink(path);
            return;
        }
        int status = 0;
        waitpid(pid, &status, 0);
        char msg[4096] = {0};
        FILE *fp = fopen(path, "r");
        if (fp) {
            size_t n = fread(msg, 1, sizeof msg - 1, fp);
            msg[n] = 0;
            fclose(fp);
        }
        close(fd);
        unlink(path);
        bool aborted = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
        EXPECT(aborted, "second order through %s was not refused (status %d)", FO[which].name,
               status);
        EXPECT(strstr(msg, FO[which].message) != NULL,
               "%s refused without \"%s\" in the message: %s", FO[which].name,
               FO[which].message, msg);
        if (verbose() && aborted) printf("    %s refused: %s", FO[which].name, msg);
    }
}

/* The fixture files themselves: provenance present, every case runnable by some family, every
 * op covered by some case. */
static void parity_fixture_files(void) {
    const char *files[] = {"ops.h5", "gp_critic.h5"};
    const char *formats[] = {"bokehlab-parity-ops-1", "bokehlab-parity-gp-1"};
    for (int k = 0; k < 2; k++) {
        bk_fixture *f = bk_fixture_open(files[k]);
        char *fmt = bk_fixture_attr_string(f, ".", "format");
        EXPECT(streq(fmt, formats[k]), "%s: format '%s', want '%s'", files[k], fmt, formats[k]);
        EXPECT(bk_fixture_has_attr(f, ".", "torch_version"), "%s: no torch_version", files[k]);
        EXPECT(bk_fixture_has_attr(f, ".", "command"), "%s: no command", files[k]);
        if (verbose() && bk_fixture_has_attr(f, ".", "torch_version")) {
            char *tv = bk_fixture_attr_string(f, ".", "torch_version");
            char *cmd = bk_fixture_attr_string(f, ".", "command");
            printf("    %s: %d groups, torch %s, written by '%s'\n", files[k],
                   bk_fixture_count(f), tv, cmd);
            free(tv);
            free(cmd);
        }
        free(fmt);
        bk_fixture_close(f);
    }
    bk_fixture *f = bk_fixture_open("ops.h5");
    int n = bk_fixture_count(f), per_op[N_OPS] = {0};
    for (int i = 0; i < n; i++) {
        char *cs = bk_fixture_name(f, i);
        char *op = bk_fixture_attr_string(f, cs, "op");
        int j = 0;
        while (j < N_OPS && !streq(OPS[j].op, op)) j++;
        EXPECT(j < N_OPS, "case %s: op '%s' is run by no test (add it to OPS[])", cs, op);
        if (j < N_OPS) per_op[j]++;
        free(op);
        free(cs);
    }
    for (int j = 0; j < N_OPS; j++)
        EXPECT(per_op[j] > 0, "ops.h5 has no case of op %s", OPS[j].op);
    if (verbose()) printf("    ops.h5: %d cases\n", n);
    bk_fixture_close(f);
}

/* ---------------------------------------------------------------- WGAN-GP critic */

static float max_abs(const float *p, size_t n) {
    float m = 0.0f;
    for (size_t i = 0; i < n; i++)
        if (fabsf(p[i]) > m) m = fabsf(p[i]);
    return m;
}

/* D(x) = conv2(leaky(IN(conv1(x)))) or conv2(conv1_with_fused_leaky(x)); gp = lambda mean_n
 * (||dD/dx (x_hat)||_n - 1)^2, differentiated with respect to the critic's weights. */
static void gp_critic(const char *variant) {
    bk_ctx *ctx = bk_test_ctx();
    bk_fixture *f = bk_fixture_open("gp_critic.h5");
    char p[128], prefix[64];
    snprintf(prefix, sizeof prefix, "gp_critic/%s", variant);
#define PATH(name) (snprintf(p, sizeof p, "%s/%s", variant, name), p)
    char *mid = bk_fixture_attr_string(f, variant, "mid");
    bool with_in = streq(mid, "instance_norm");
    EXPECT(with_in || streq(mid, "fused_leaky"), "%s: unknown critic '%s'", variant, mid);
    const float eps = (float)bk_fixture_attr_double(f, variant, "eps");
    const float slope = (float)bk_fixture_attr_double(f, variant, "slope");
    const float lambda = (float)bk_fixture_attr_double(f, variant, "lambda_gp");
    bk_conv_opts o1 = bk_conv_opts_make(bk_fixture_attr_int(f, variant, "stride1"),
                                        bk_fixture_attr_int(f, variant, "pad1"), 1);
    bk_conv_opts o2 = bk_conv_opts_make(bk_fixture_attr_int(f, variant, "stride2"),
                                        bk_fixture_attr_int(f, variant, "pad2"), 1);

    const char *wn[4] = {"w1", "b1", "w2", "b2"};
    bk_tensor *W[4];
    for (int i = 0; i < 4; i++) {
        W[i] = bk_fixture_persistent(ctx, f, PATH(wn[i]), wn[i]);
        W[i]->requires_grad = true;
    }
    bk_tensor *real = bk_fixture_tensor(ctx, f, PATH("real"));
    bk_tensor *fake = bk_fixture_tensor(ctx, f, PATH("fake"));
    bk_tensor *alpha = bk_fixture_tensor(ctx, f, PATH("alpha")); /* N,1,1,1 */

    /* x_hat = alpha real + (1 - alpha) fake, then a leaf of the penalty's graph */
    bk_tensor *x_hat = bk_add(ctx, bk_mul(ctx, alpha, real),
                              bk_mul(ctx, bk_affine(ctx, alpha, -1.0f, 1.0f), fake));
    check_dataset(f, prefix, "fwd x_hat", PATH("x_hat"), x_hat);
    x_hat->requires_grad = true;

    bk_tensor *h;
    if (with_in) {
        h = bk_conv2d(ctx, x_hat, W[0], W[1], o1, bk_act_none(), NULL);
        h = bk_leaky_relu(ctx, bk_instance_norm(ctx, h, eps), slope);
    } else {
        h = bk_conv2d(ctx, x_hat, W[0], W[1], o1, bk_act_leaky_relu(slope), NULL);
    }
    bk_tensor *d = bk_conv2d(ctx, h, W[2], W[3], o2, bk_act_none(), NULL);
    check_dataset(f, prefix, "fwd d_out", PATH("d_out"), d);

    bk_tensor *g = NULL;
    bk_grad(ctx, bk_sum(ctx, d), NULL, 1, &x_hat, &g, true);
    check_dataset(f, prefix, "d1 g", PATH("g"), g);

    bk_tensor *norm = bk_sqrt(ctx, bk_sum_per_sample(ctx, bk_square(ctx, g)));
    check_dataset(f, prefix, "d1 norm", PATH("norm"), norm);
    bk_tensor *gp =
        bk_scale(ctx, bk_mean(ctx, bk_square(ctx, bk_affine(ctx, norm, 1.0f, -1.0f))), lambda);
    check_dataset(f, prefix, "d1 gp", PATH("gp"), gp);

    bk_backward(ctx, gp, false);

    /* Largest |d gp / d weight| of the reference, over all four critic tensors. */
    float *want[4];
    bk_shape ws[4];
    float gmax = 0.0f;
    for (int i = 0; i < 4; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "grad_%s", wn[i]);
        want[i] = bk_fixture_read(f, PATH(nm), &ws[i], NULL);
        float m = max_abs(want[i], (size_t)bk_shape_numel(ws[i]));
        if (m > gmax) gmax = m;
    }
    EXPECT(gmax > 0.0f, "%s: all reference weight gradients are zero", prefix);
    for (int i = 0; i < 4; i++) {
        char label[96];
        snprintf(label, sizeof label, "%s d2 grad_%s", prefix, wn[i]);
        bk_tensor *got = W[i]->grad ? W[i]->grad : bk_tensor_zeros(ctx, bk_shape_of(W[i]));
        if (with_in && i == 1) {
            /* b1 sits right before the instance norm, which removes any per-channel constant:
             * its gradient is analytically zero and both sides hold only rounding noise
             * (torch ~1e-13), so the relative rule would compare noise with noise. It is held
             * to an absolute bound instead: 1e-4 times the largest |gradient| over all critic
             * weights. */
            EXPECT(bk_same_shape(got, W[1]), "%s: wrong shape", label);
            float *gv = bk_test_nchw(got);
            double err = 0.0;
            for (int64_t k = 0; k < bk_shape_numel(ws[1]); k++) {
                double e = fabs((double)gv[k] - want[1][k]);
                if (!(e <= err)) err = e; /* NaN propagates */
            }
            double bound = TOL * gmax;
            if (!(err <= bound)) {
                bk_test_fail(__FILE__, __LINE__, "%s: max|err| %.3g > %.3g = 1e-4 * max|grad| %.3g "
                             "over all critic weights", label, err, bound, (double)gmax);
                n_failed++;
            } else if (verbose()) {
                printf("    %s: max|err| %.3g, absolute bound %.3g (analytically zero)\n", label,
                       err, bound);
            }
            free(gv);
        } else {
            check_values(label, got, want[i], ws[i]);
        }
        free(want[i]);
    }
#undef PATH
    for (int i = 0; i < 4; i++) bk_tensor_free(ctx, W[i]);
    bk_step_end(ctx);
    free(mid);
    bk_fixture_close(f);
}

static void gp_critic_instance_norm(void) { gp_critic("instance_norm"); }
static void gp_critic_fused_leaky(void) { gp_critic("fused_leaky"); }

BK_TEST_MAIN(BK_TEST(parity_fixture_files), BK_TEST(parity_conv2d), BK_TEST(parity_conv2d_winograd),
             BK_TEST(parity_conv_transpose2d), BK_TEST(parity_instance_norm),
             BK_TEST(parity_activations), BK_TEST(parity_unary), BK_TEST(parity_binary),
             BK_TEST(parity_reductions), BK_TEST(parity_shape), BK_TEST(parity_resample),
             BK_TEST(parity_max_pool), BK_TEST(parity_batch_norm), BK_TEST(parity_pyramid),
             BK_TEST(parity_first_order_only_refused), BK_TEST(gp_critic_instance_norm),
             BK_TEST(gp_critic_fused_leaky))
