/* schedule.h — learning rate at a step (train.schedule, train/config.h):
 *   constant  lr
 *   step      lr * gamma^floor(step / step_every)
 *   cosine    floor + (lr - floor) (1 + cos(pi step / steps)) / 2
 *   linear    lr - (lr - floor) step / steps
 * never below train.lr_floor. */
#ifndef BK_SCHEDULE_H
#define BK_SCHEDULE_H

#include "train/config.h"

double bk_lr_at(const bk_config *c, int64_t step);

#endif
