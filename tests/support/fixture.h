/* fixture.h — read the PyTorch reference fixtures (tests/fixtures/ops.h5, gp_critic.h5) in tests.
 *
 * The files are written by scripts/gen_fixtures.py (`make fixtures`); its docstring is the full
 * description of their layout. In short:
 *
 *   ops.h5        root attributes format, torch_version, command, reference (strings)
 *                 /<case>/            one group per case; attributes
 *                     op              op name (string), e.g. "conv2d"
 *                     inputs          comma-separated names of the differentiable inputs in
 *                                     argument order, "x,w,b"
 *                     params          the inputs that are model parameters ("w,b" or "")
 *                     buffers         (optional) non-differentiable state the op updates in
 *                                     place (batch norm's running_mean,running_var)
 *                     consts          (optional) non-differentiable data (earlier batches)
 *                     outputs         (optional) names of several outputs ("h0,h1,low");
 *                                     absent: one output, "out"
 *                     order           (optional) 1: first order only (no v_ / d2_ datasets);
 *                                     absent: 2
 *                     seed            numpy seed of the data
 *                     op parameters   stride_h stride_w pad_t pad_l pad_b pad_r groups out_pad_h
 *                                     out_pad_w axis offset size full out_h out_w k stride
 *                                     levels training (int), act mode (string), slope eps a b
 *                                     lo hi p momentum scale_factor (double), shape (int[4]),
 *                                     sizes (int[n]) — only those the op has
 *                 datasets (float32, PyTorch NCHW order and shapes)
 *                     <input>...  out  gout  d1_<input>  v_<input>  d2_<input>  d2_gout
 *                     <buffer> new_<buffer> <const>; several outputs: out_<o> gout_<o>
 *                     d2_gout_<o> instead of out gout d2_gout
 *                 out = op(inputs); d1 = autograd.grad(out, inputs, gout, create_graph=True);
 *                 d2 = grad of S = sum_i <v_i, d1_i> w.r.t. inputs and gout (zeros if unused).
 *   gp_critic.h5  /<variant>/ with attributes mid ("instance_norm" | "fused_leaky"), eps, slope,
 *                 lambda_gp, stride1 pad1 stride2 pad2, and datasets w1 b1 w2 b2 real fake alpha
 *                 x_hat d_out g norm gp grad_w1 grad_b1 grad_w2 grad_b2.
 *
 * Shapes. A dataset of rank 4 (d0,d1,d2,d3) becomes bk_shape {d0,d1,d2,d3}; rank 1 (C) — a conv
 * bias, batch norm's gamma, beta and running statistics — becomes {1,C,1,1}; rank 0 (a scalar)
 * {1,1,1,1}. Other ranks are refused. Data is
 * returned in the file's (NCHW) order: convert with bk_tensor_from_nchw / bk_tensor_set_nchw.
 *
 * Errors. A missing file, object or attribute, or one of the wrong kind, is a broken fixture:
 * the reader prints what is wrong (file, object, attribute, and how to regenerate) and exits the
 * test process with status 1, which the harness reports as a failure of the current case.
 *
 * Where the files are: $BK_FIXTURE_DIR if set, else tests/fixtures under the working directory
 * if it exists there, else ../../tests/fixtures relative to the test binary (build/tests/).
 */
#ifndef BK_TEST_FIXTURE_H
#define BK_TEST_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/bokehlab.h"

typedef struct bk_fixture {
    int64_t file; /* hid_t */
    char path[1024];
} bk_fixture;

/* Opens <fixture dir>/<name> (e.g. "ops.h5") read-only; exits the case if it cannot. */
bk_fixture *bk_fixture_open(const char *name);
void bk_fixture_close(bk_fixture *f);

/* The root's groups (the cases), in name order: how many, and the i-th name (malloc'd). */
int bk_fixture_count(const bk_fixture *f);
char *bk_fixture_name(const bk_fixture *f, int i);

/* Whether an object (group or dataset, path relative to the root: "case/out") exists, and
 * whether it (obj "." for the root) has an attribute. */
bool bk_fixture_has(const bk_fixture *f, const char *path);
bool bk_fixture_has_attr(const bk_fixture *f, const char *obj, const char *attr);

/* Attributes of obj ("." for the root). The attribute must exist. */
int bk_fixture_attr_int(const bk_fixture *f, const char *obj, const char *attr);
double bk_fixture_attr_double(const bk_fixture *f, const char *obj, const char *attr);
/* An integer array attribute of exactly n values into out. */
void bk_fixture_attr_ints(const bk_fixture *f, const char *obj, const char *attr, int *out,
                          int n);
/* A fixed-length string attribute, NUL-terminated (malloc'd). */
char *bk_fixture_attr_string(const bk_fixture *f, const char *obj, const char *attr);
/* How many values an integer attribute holds (1 for a scalar), e.g. split's `sizes`. */
int bk_fixture_attr_count(const bk_fixture *f, const char *obj, const char *attr);
/* Integer / double / string attributes with a default when absent. */
int bk_fixture_attr_int_or(const bk_fixture *f, const char *obj, const char *attr, int dflt);
double bk_fixture_attr_double_or(const bk_fixture *f, const char *obj, const char *attr,
                                 double dflt);
/* The string, or a malloc'd copy of dflt when absent. */
char *bk_fixture_attr_string_or(const bk_fixture *f, const char *obj, const char *attr,
                                const char *dflt);

/* Shape of a float dataset as bokehlab sees it (see "Shapes"); *ndim (may be NULL) gets the
 * file's rank (0, 1 or 4), which is also the ndim of a matching persistent tensor. */
bk_shape bk_fixture_shape(const bk_fixture *f, const char *path, int *ndim);
/* Its values in file (NCHW) order, malloc'd; shape and ndim as above (either may be NULL). */
float *bk_fixture_read(const bk_fixture *f, const char *path, bk_shape *shape, int *ndim);

/* A step tensor holding the dataset (requires_grad false). */
bk_tensor *bk_fixture_tensor(bk_ctx *ctx, const bk_fixture *f, const char *path);
/* A persistent tensor (free with bk_tensor_free) holding the dataset, with the file's rank as
 * ndim and the given name. */
bk_tensor *bk_fixture_persistent(bk_ctx *ctx, const bk_fixture *f, const char *path,
                                 const char *name);

#endif
