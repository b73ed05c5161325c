/* synth.h — a synthetic EBB!-style dataset: all-in-focus inputs, shallow depth-of-field
 * targets and true focus masks, in the EBB! layout, so every tool runs without EBB!.
 *
 * A scene is a stack of layers back to front: a far backdrop, two to four textured shapes
 * (hills, blobs, bands) at decreasing depths carrying small bright highlights, a sharp textured
 * subject near the centre in the focal plane, and sometimes an out-of-focus occluder in front.
 * Colours are linear light. The input composites the layers without blur. The target blurs
 * each layer (colour premultiplied by coverage, and coverage) with a disk whose radius grows
 * with the layer's distance from the focal plane, and composites back to front, so the
 * background is blurred before the subject covers it (no halo of sharp background) and
 * highlights above 1 spread into bright bokeh discs before clipping. Both are then clipped
 * and encoded with gamma 1/2.2. The mask is the subject's visible coverage (255 = in focus).
 * Widths vary with aspect ratios 1.33-1.6 as in EBB!; everything follows from (seed, index).
 * docs/DATA.md describes the generator.
 */
#ifndef BK_SYNTH_H
#define BK_SYNTH_H

#include <stdint.h>

#include "core/error.h"
#include "data/image.h"

/* Renders scene `index` of the dataset with this seed, height `height` (>= 32). */
bk_status bk_synth_scene(uint64_t seed, int index, int height, bk_image *input, bk_image *target,
                         bk_image *mask);
/* Writes scenes first .. first+count-1 as ROOT/Training/original/{i}.jpg,
 * ROOT/Training/bokeh/{i}.jpg and ROOT/mask/{i}.png (JPEG quality 95). */
bk_status bk_synth_write(const char *root, int first, int count, int height, uint64_t seed,
                         int verbose);

#endif
