/* op_table.c — the op table (op.h): name, backward function and differentiable sources. */
#include <stddef.h>

#include "core/op_backward.h"

#define BK_OP_INFO_(e, name, bw, mask) [BK_OP_##e] = {name, bw, mask},
const bk_op_info bk_op_table[BK_OP_COUNT] = {BK_OPS(BK_OP_INFO_)};
