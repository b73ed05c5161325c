/* image_target.h — the body shared by the PNG and JPEG fuzz targets (fuzz_png.c, fuzz_jpeg.c).
 *
 * An input goes through bk_image_read_info_mem and bk_image_read_mem (RGB and gray), the same
 * decoders files go through. What must hold, or the target aborts (a finding):
 *  - a failure returns a message that names the input, and no pixels;
 *  - a success gives the header's size, `channels` channels and a whole pixel buffer (every
 *    byte is read here, so ASan sees a short one);
 *  - an image that decodes has a header that reads.
 * Images above FUZZ_MAX_PIXELS are refused from the header, as the loader refuses huge ones: it
 * keeps one run of the target short without hiding anything of the decoding path.
 */
#ifndef BK_FUZZ_IMAGE_TARGET_H
#define BK_FUZZ_IMAGE_TARGET_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/image.h"

#define FUZZ_MAX_PIXELS ((int64_t)1 << 20)

static void fuzz_image_expect(int cond, const char *what) {
    if (cond) return;
    fprintf(stderr, "fuzz: broken promise: %s (last error: %s)\n", what, bk_last_error());
    abort();
}

static void fuzz_image(const uint8_t *data, size_t size, const char *name) {
    bk_image_info info;
    bk_status st_info = bk_image_read_info_mem(data, size, name, &info);
    fuzz_image_expect(st_info == BK_OK || strstr(bk_last_error(), name) != NULL,
                      "a header error names the input");
    for (int channels = 3; channels >= 1; channels -= 2) {
        bk_image img;
        bk_status st = bk_image_read_mem(data, size, name, channels, FUZZ_MAX_PIXELS, &img);
        if (st != BK_OK) {
            fuzz_image_expect(strstr(bk_last_error(), name) != NULL, "a decoding error names the input");
            fuzz_image_expect(img.pixels == NULL, "a failed read holds no pixels");
            continue;
        }
        fuzz_image_expect(st_info == BK_OK, "an image that decodes has a readable header");
        fuzz_image_expect(img.width == info.width && img.height == info.height, "the header's size");
        fuzz_image_expect(img.channels == channels, "the channels asked for");
        fuzz_image_expect((int64_t)img.width * img.height <= FUZZ_MAX_PIXELS, "the pixel limit");
        size_t n = (size_t)img.width * img.height * channels;
        unsigned sum = 0;
        for (size_t i = 0; i < n; i++) sum += img.pixels[i];
        /* keeps the reads; the sum itself means nothing */
        __asm__ volatile("" : : "r"(sum));
        bk_image_free(&img);
    }
}

#endif
