/* autograd.h — the tape and reverse-mode differentiation, with second order.
 *
 * Ops run eagerly. When grad mode is on and a differentiable source of an op requires a
 * gradient, the result is appended to the tape (ctx->tape, a Wengert list: creation order is a
 * topological order). Backward walks the tape from the end, calls each node's backward function
 * from the op table, and accumulates the gradients per tensor.
 *
 * Backward functions are written with the same differentiable ops as the forward pass. With
 * create_graph they run with grad mode on, so the gradients are themselves recorded on the tape
 * and a later backward can differentiate them again: WGAN-GP takes g = d(sum D(x̂))/dx̂ with
 * create_graph, builds the penalty from g, and calls bk_backward on it. Without create_graph the
 * backward records nothing and adds gradients in place where it safely can.
 *
 * Only the gradient terms that reach a wanted tensor are computed: bk_grad(..., inputs) marks
 * the tape nodes on a path from the inputs and skips every other source (no weight gradients in
 * the first WGAN-GP backward).
 */
#ifndef BK_AUTOGRAD_H
#define BK_AUTOGRAD_H

#include <stdbool.h>

#include "core/ctx.h"

/* Called by every op builder once out->op, out->src and out->p are set and the result is
 * computed. Records the node if grad mode is on and a differentiable source requires grad. */
void bk_record(bk_ctx *ctx, bk_tensor *out);

/* True if an op on these sources (NULLs allowed) would be recorded now. */
bool bk_would_record(const bk_ctx *ctx, const bk_tensor *a, const bk_tensor *b);

/* Gradient of the scalar `loss` with respect to every leaf that requires grad, accumulated into
 * leaf->grad: for persistent leaves a persistent tensor allocated on first use (zeroed by the
 * optimizer), for step leaves a step tensor. */
void bk_backward(bk_ctx *ctx, bk_tensor *loss, bool create_graph);

/* Gradients of `out` with respect to each of inputs[0..n-1] (leaves or intermediates), weighted
 * by `gout` (same shape as out; NULL means out is a scalar and the weight is 1), stored in
 * grads[i]. Does not touch ->grad. An input that `out` does not depend on gets zeros. With
 * create_graph the returned gradients are recorded and can be differentiated. */
void bk_grad(bk_ctx *ctx, bk_tensor *out, bk_tensor *gout, int n, bk_tensor **inputs,
             bk_tensor **grads, bool create_graph);

#endif
