/* schedule.c — see schedule.h. */
#include "train/schedule.h"

#include <math.h>
#include <string.h>

double bk_lr_at(const bk_config *c, int64_t step) {
    double lr = c->train_lr, floor_lr = c->train_lr_floor, t = (double)step, total = (double)c->train_steps;
    double v = lr;
    if (!strcmp(c->train_schedule, "step"))
        v = lr * pow(c->train_gamma, floor(t / (double)c->train_step_every));
    else if (!strcmp(c->train_schedule, "cosine"))
        v = floor_lr + (lr - floor_lr) * 0.5 * (1.0 + cos(M_PI * fmin(t / total, 1.0)));
    else if (!strcmp(c->train_schedule, "linear"))
        v = lr - (lr - floor_lr) * fmin(t / total, 1.0);
    return v < floor_lr ? floor_lr : v;
}
