/* image.h — reading and writing 8-bit images: PNG (libpng) and JPEG (libjpeg-turbo, jpeglib API).
 *
 * Reading gives 8-bit pixels, interleaved, rows top to bottom: RGB (3 channels) for images,
 * gray (1 channel) for masks (255 = in focus). Conversions applied on read: gray and palette
 * PNGs to RGB, 16-bit PNGs reduced to 8 bits, alpha dropped, RGB to gray for a mask asked as
 * gray; JPEGs decoded with the accurate integer IDCT and fancy upsampling (PIL's defaults), CMYK
 * and YCCK JPEGs refused. PNG ancillary chunks other than tRNS (text, colour profiles) are
 * skipped without being held in memory. The format is recognised by its signature, not by the
 * file name.
 *
 * Every failure returns a bk_status with a message naming the file and what is wrong: missing,
 * empty, not an image, truncated, corrupt (libjpeg warnings such as "premature end of data"
 * count as errors: a half-decoded photograph is not silently used), too large. The size limit
 * is checked from the header, before any pixel memory is allocated.
 * Not here: resizing, cropping, float conversion (loader.c).
 */
#ifndef BK_IMAGE_H
#define BK_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define BK_IMAGE_DEFAULT_MAX_PIXELS ((int64_t)64 * 1000 * 1000)

typedef enum bk_image_format { BK_IMAGE_PNG = 1, BK_IMAGE_JPEG = 2 } bk_image_format;

typedef struct bk_image {
    int width, height, channels; /* channels 3 (RGB) or 1 (gray) */
    uint8_t *pixels;             /* height * width * channels, owned */
} bk_image;

typedef struct bk_image_info {
    int width, height;
    int channels;                /* as stored: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA/CMYK */
    bk_image_format format;
} bk_image_info;

/* Reads the header only. */
bk_status bk_image_read_info(const char *path, bk_image_info *info);
/* Reads the whole image as `channels` (3 or 1) channels. Images of more than max_pixels
 * (width*height; <= 0 means BK_IMAGE_DEFAULT_MAX_PIXELS) are refused from the header. */
bk_status bk_image_read(const char *path, int channels, int64_t max_pixels, bk_image *out);
/* The same for an image held in memory (`size` bytes at `data`, not modified); `name` stands
 * for the file in messages. The decoders are the same as for files. */
bk_status bk_image_read_info_mem(const void *data, size_t size, const char *name,
                                 bk_image_info *info);
bk_status bk_image_read_mem(const void *data, size_t size, const char *name, int channels,
                            int64_t max_pixels, bk_image *out);
bk_status bk_image_write_png(const char *path, const bk_image *img);
/* quality 1..100; 4:4:4 chroma at quality >= 90, 4:2:0 below (libjpeg's default). */
bk_status bk_image_write_jpeg(const char *path, const bk_image *img, int quality);
/* Allocates pixels for a width x height x channels image (zeroed). */
bk_status bk_image_alloc(bk_image *img, int width, int height, int channels);
void bk_image_free(bk_image *img);

#endif
