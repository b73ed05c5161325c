/* bokehlab.h — the whole core API in one include. */
#ifndef BOKEHLAB_H
#define BOKEHLAB_H

#include "core/arena.h"
#include "core/autograd.h"
#include "core/ctx.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/tensor.h"

#endif
