/* canvas.h — a small RGB raster for charts: lines, rectangles and 5x7 bitmap text, saved as
 * PNG (data/image.h). Enough for training curves without gnuplot or Python. */
#ifndef BK_CANVAS_H
#define BK_CANVAS_H

#include <stdbool.h>
#include <stdint.h>

#include "data/image.h"

typedef struct bk_rgb {
    uint8_t r, g, b;
} bk_rgb;

typedef struct bk_canvas {
    bk_image img;
} bk_canvas;

bk_status bk_canvas_init(bk_canvas *c, int w, int h, bk_rgb background);
void bk_canvas_free(bk_canvas *c);
void bk_canvas_line(bk_canvas *c, double x0, double y0, double x1, double y1, bk_rgb col, int thickness);
void bk_canvas_rect(bk_canvas *c, int x0, int y0, int x1, int y1, bk_rgb col, bool fill);
/* Text with its top-left corner at (x, y), scale 1 = 5x7 pixel glyphs on a 6-pixel pitch. */
void bk_canvas_text(bk_canvas *c, int x, int y, const char *s, bk_rgb col, int scale);
int bk_canvas_text_width(const char *s, int scale);

#endif
