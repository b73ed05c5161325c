/* test_image.c — PNG and JPEG reading and writing (data/image.h): golden-pixel round trips,
 * conversions on read, bad and hostile files (missing, empty, not an image, truncated, flipped
 * bytes, oversized headers), the size limit and atomic writes.
 *
 * Files are made in a per-case directory under /tmp, removed at the end of the case. PNGs and
 * JPEGs the writer cannot make (16-bit, palette, interlaced, CMYK) are written with libpng and
 * libjpeg directly. */
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>

#include "data/image.h"
#include "tests/support/harness.h"

/* ---------------------------------------------------------------- helpers */

static const char *join(char *buf, size_t len, const char *dir, const char *name) {
    snprintf(buf, len, "%s/%s", dir, name);
    return buf;
}
#define JOIN(buf, dir, name) join(buf, sizeof buf, dir, name)

static uint8_t *slurp(const char *path, size_t *len) {
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
    *len = fread(b, 1, (size_t)n, f);
    fclose(f);
    return b;
}

static void spit(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        printf("    cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
    if (len) fwrite(data, 1, len, f);
    fclose(f);
}

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* The deterministic test pattern: smooth gradients, a hard-edged checker in blue, a
 * one-pixel grid of pure white/black lines and the extreme values in the corners. */
static void rgb_pattern(bk_image *img, int w, int h) {
    bk_image_alloc(img, w, h, 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = img->pixels + ((size_t)y * w + x) * 3;
            p[0] = (uint8_t)(x * 255 / (w - 1));
            p[1] = (uint8_t)(y * 255 / (h - 1));
            p[2] = ((x / 4 + y / 3) & 1) ? 230 : 20;
            if (x == 17) p[0] = p[1] = p[2] = 255;
            if (y == 11) p[0] = p[1] = p[2] = 0;
        }
    img->pixels[0] = img->pixels[1] = img->pixels[2] = 0;
    uint8_t *last = img->pixels + ((size_t)h * w - 1) * 3;
    last[0] = last[1] = last[2] = 255;
}

static void gray_pattern(bk_image *img, int w, int h) {
    bk_image_alloc(img, w, h, 1);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            img->pixels[(size_t)y * w + x] =
                (x + y) % 7 == 0 ? 255 : (uint8_t)((x * 13 + y * 29) % 251);
}

/* A smooth, photograph-like RGB image (JPEG's home ground). */
static void smooth_pattern(bk_image *img, int w, int h) {
    bk_image_alloc(img, w, h, 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = img->pixels + ((size_t)y * w + x) * 3;
            p[0] = (uint8_t)lrint(128 + 90 * sin(x * 0.11) * cos(y * 0.07));
            p[1] = (uint8_t)lrint(40 + 150.0 * y / (h - 1));
            p[2] = (uint8_t)lrint(200 - 150.0 * x / (w - 1));
        }
}

/* Error checks: a failure whose message names the path. */
#define EXPECT_FAILS_WITH_PATH(st, path, what)                                                   \
    do {                                                                                         \
        bk_status st_ = (st);                                                                    \
        EXPECT(st_ != BK_OK, "%s: %s was accepted", what, path);                                 \
        if (st_ != BK_OK)                                                                        \
            EXPECT(strstr(bk_last_error(), path) != NULL, "%s: message does not name %s: \"%s\"", \
                   what, path, bk_last_error());                                                 \
    } while (0)

/* ---------------------------------------------------------------- PNG and JPEG crafting */

static uint32_t crc32_of(const uint8_t *p, size_t n, uint32_t crc) {
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & -(crc & 1));
    }
    return ~crc;
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* Appends a chunk (length, type, data, CRC) at buf + *len. */
static void png_chunk(uint8_t *buf, size_t *len, const char *type, const uint8_t *data, uint32_t n) {
    uint8_t *p = buf + *len;
    put_be32(p, n);
    memcpy(p + 4, type, 4);
    if (n) memcpy(p + 8, data, n);
    put_be32(p + 8 + n, crc32_of(p + 4, 4 + n, 0));
    *len += 12 + n;
}

/* A PNG of just a header: IHDR w x h (8-bit RGB), then `tail`: 0 nothing, 1 IEND, 2 a tiny
 * IDAT and IEND. */
static size_t png_header_only(uint8_t *buf, uint32_t w, uint32_t h, int tail) {
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    size_t len = 8;
    memcpy(buf, sig, 8);
    uint8_t ihdr[13] = {0};
    put_be32(ihdr, w);
    put_be32(ihdr + 4, h);
    ihdr[8] = 8, ihdr[9] = 2;
    png_chunk(buf, &len, "IHDR", ihdr, 13);
    if (tail == 2) png_chunk(buf, &len, "IDAT", (const uint8_t *)"\x78\x9c", 2);
    if (tail >= 1) png_chunk(buf, &len, "IEND", NULL, 0);
    return len;
}

/* Writes a PNG with libpng: rows of `depth`-bit samples packed as PNG stores them. */
static void write_png_raw(const char *path, int w, int h, int depth, int color, int interlace,
                          const uint8_t *data, size_t stride, const png_color *pal, int npal,
                          const uint8_t *trns, int ntrns, const png_color_16 *trans_colour) {
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (!f || !png || !info || setjmp(png_jmpbuf(png))) {
        printf("    writing the test PNG %s failed\n", path);
        exit(1);
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color, interlace,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (pal) png_set_PLTE(png, info, pal, npal);
    if (trns || trans_colour) png_set_tRNS(png, info, trns, ntrns, trans_colour);
    png_write_info(png, info);
    png_bytep *rows = malloc((size_t)h * sizeof *rows);
    for (int y = 0; y < h; y++) rows[y] = (png_bytep)data + (size_t)y * stride;
    png_write_image(png, rows); /* handles the interlace passes */
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    fclose(f);
}

/* Writes a JPEG with libjpeg: `comps` components per input pixel in colour space in_cs,
 * stored as jpeg_cs. */
static void write_jpeg_raw(const char *path, int w, int h, int comps, J_COLOR_SPACE in_cs,
                           J_COLOR_SPACE jpeg_cs, const uint8_t *px, int quality) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    FILE *f = fopen(path, "wb");
    if (!f) {
        printf("    cannot write %s\n", path);
        exit(1);
    }
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)w, c.image_height = (JDIMENSION)h;
    c.input_components = comps;
    c.in_color_space = in_cs;
    jpeg_set_defaults(&c);
    jpeg_set_colorspace(&c, jpeg_cs);
    jpeg_set_quality(&c, quality, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)px + (size_t)c.next_scanline * w * comps;
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(f);
}

/* The marker segments of a JPEG up to the scan: marker, offset of the 0xFF, total length. */
typedef struct jseg {
    int marker;
    size_t off, len;
} jseg;

/* Returns the number of segments; *scan = first byte of entropy-coded data. */
static int jpeg_segments(const uint8_t *b, size_t n, jseg *segs, int max, size_t *scan) {
    size_t p = 2;
    int k = 0;
    *scan = 0;
    while (p + 4 <= n && k < max) {
        if (b[p] != 0xFF) return -1;
        int m = b[p + 1];
        size_t len = 2 + ((size_t)b[p + 2] << 8 | b[p + 3]);
        segs[k++] = (jseg){m, p, len};
        p += len;
        if (m == 0xDA) {
            *scan = p;
            break;
        }
    }
    return k;
}

static const jseg *find_seg(const jseg *s, int n, int marker) {
    for (int i = 0; i < n; i++)
        if (s[i].marker == marker) return &s[i];
    return NULL;
}

/* ---------------------------------------------------------------- PNG round trips */

static void png_rgb_and_gray_roundtrip_bit_exact(void) {
    char *dir = bk_test_tmpdir();
    char prgb[512], pgray[512];
    JOIN(prgb, dir, "rgb.png");
    JOIN(pgray, dir, "gray.png");
    bk_image rgb, gray, back = {0};
    rgb_pattern(&rgb, 37, 23);
    gray_pattern(&gray, 37, 23);
    EXPECT(bk_image_write_png(prgb, &rgb) == BK_OK, "write: %s", bk_last_error());
    EXPECT(bk_image_write_png(pgray, &gray) == BK_OK, "write: %s", bk_last_error());
    EXPECT(!exists(JOIN((char[600]){0}, dir, "rgb.png.tmp")), "the .tmp file remained");

    EXPECT(bk_image_read(prgb, 3, 0, &back) == BK_OK, "read: %s", bk_last_error());
    EXPECT(back.width == 37 && back.height == 23 && back.channels == 3, "RGB read back as %dx%dx%d",
           back.width, back.height, back.channels);
    if (back.pixels) EXPECT(memcmp(back.pixels, rgb.pixels, 37 * 23 * 3) == 0, "RGB PNG round trip is not bit-identical");
    bk_image_free(&back);

    EXPECT(bk_image_read(pgray, 1, 0, &back) == BK_OK, "read: %s", bk_last_error());
    EXPECT(back.width == 37 && back.height == 23 && back.channels == 1, "gray read back as %dx%dx%d",
           back.width, back.height, back.channels);
    if (back.pixels) EXPECT(memcmp(back.pixels, gray.pixels, 37 * 23) == 0, "gray PNG round trip is not bit-identical");
    bk_image_free(&back);

    /* gray read as RGB: R = G = B = the gray value */
    EXPECT(bk_image_read(pgray, 3, 0, &back) == BK_OK, "read: %s", bk_last_error());
    int bad = 0;
    for (int i = 0; back.pixels && i < 37 * 23; i++)
        for (int k = 0; k < 3; k++) bad += back.pixels[i * 3 + k] != gray.pixels[i];
    EXPECT(back.pixels && back.channels == 3 && bad == 0, "gray PNG read as RGB: %d samples differ", bad);
    bk_image_free(&back);

    bk_image_info info;
    EXPECT(bk_image_read_info(prgb, &info) == BK_OK && info.width == 37 && info.height == 23 &&
               info.channels == 3 && info.format == BK_IMAGE_PNG,
           "info of the RGB PNG: %dx%d, %d channels, format %d", info.width, info.height,
           info.channels, info.format);
    EXPECT(bk_image_read_info(pgray, &info) == BK_OK && info.width == 37 && info.height == 23 &&
               info.channels == 1 && info.format == BK_IMAGE_PNG,
           "info of the gray PNG: %dx%d, %d channels", info.width, info.height, info.channels);
    bk_image_free(&rgb);
    bk_image_free(&gray);
    bk_test_remove_tmpdir(dir);
}

/* RGB read as 1 channel: the luminance. libpng's default weights are BT.709's
 * (0.2126, 0.7152, 0.0722) in 15-bit fixed point, truncated: allow up to 1.5 levels. */
static void png_rgb_read_as_gray_is_luminance(void) {
    char *dir = bk_test_tmpdir();
    char path[512];
    JOIN(path, dir, "rgb.png");
    bk_image rgb, back = {0};
    rgb_pattern(&rgb, 37, 23);
    /* pure primaries in the first row tell the weights apart */
    const uint8_t prim[4][3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {200, 200, 200}};
    for (int i = 0; i < 4; i++) memcpy(rgb.pixels + (1 + i) * 3, prim[i], 3);
    bk_image_write_png(path, &rgb);
    EXPECT(bk_image_read(path, 1, 0, &back) == BK_OK, "read: %s", bk_last_error());
    EXPECT(back.channels == 1 && back.width == 37 && back.height == 23, "read as %dx%dx%d",
           back.width, back.height, back.channels);
    double worst = 0;
    int at = 0;
    for (int i = 0; back.pixels && i < 37 * 23; i++) {
        const uint8_t *p = rgb.pixels + i * 3;
        double want = 0.2126 * p[0] + 0.7152 * p[1] + 0.0722 * p[2];
        double d = fabs(back.pixels[i] - want);
        if (d > worst) worst = d, at = i;
    }
    EXPECT(back.pixels && worst < 1.5, "luminance off by %.2f levels at pixel %d (rgb %d %d %d -> %d)",
           worst, at, rgb.pixels[at * 3], rgb.pixels[at * 3 + 1], rgb.pixels[at * 3 + 2],
           back.pixels ? back.pixels[at] : -1);
    if (back.pixels) {
        EXPECT(abs(back.pixels[1] - 54) <= 1 && abs(back.pixels[2] - 182) <= 1 && abs(back.pixels[3] - 18) <= 1,
               "primaries read as gray %d %d %d, want about 54 182 18", back.pixels[1], back.pixels[2],
               back.pixels[3]);
        EXPECT(back.pixels[4] == 200, "a neutral pixel changed: %d", back.pixels[4]);
    }
    bk_image_free(&back);
    bk_image_free(&rgb);
    bk_test_remove_tmpdir(dir);
}

/* 16-bit PNGs are reduced to 8 bits with rounding: v16 -> round(v16 * 255 / 65535). */
static void png_16bit_reduced_with_rounding(void) {
    char *dir = bk_test_tmpdir();
    char prgb[512], pgray[512];
    JOIN(prgb, dir, "rgb16.png");
    JOIN(pgray, dir, "gray16.png");
    enum { W = 64, H = 5 };
    static uint16_t v[W * H * 3];
    /* every row stresses a different range: rounding boundaries (k*257 +- 128), extremes,
     * a pseudo-random spread */
    uint64_t s = 12345;
    for (int i = 0; i < W * H * 3; i++) {
        int row = i / (W * 3);
        uint32_t x;
        if (row == 0) x = (uint32_t)(i % 256) * 257 + 128;       /* exactly halfway-ish */
        else if (row == 1) x = (uint32_t)(i % 256) * 257 + 127;
        else if (row == 2) x = i % 3 == 0 ? 0 : i % 3 == 1 ? 65535 : 32768;
        else {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            x = (uint32_t)(s >> 48);
        }
        v[i] = (uint16_t)(x > 65535 ? 65535 : x);
    }
    static uint8_t be[W * H * 3 * 2], gbe[W * H * 2];
    for (int i = 0; i < W * H * 3; i++) be[2 * i] = (uint8_t)(v[i] >> 8), be[2 * i + 1] = (uint8_t)v[i];
    for (int i = 0; i < W * H; i++) gbe[2 * i] = (uint8_t)(v[3 * i] >> 8), gbe[2 * i + 1] = (uint8_t)v[3 * i];
    write_png_raw(prgb, W, H, 16, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, be, W * 6, NULL, 0, NULL, 0, NULL);
    write_png_raw(pgray, W, H, 16, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, gbe, W * 2, NULL, 0, NULL, 0, NULL);

    bk_image back = {0};
    EXPECT(bk_image_read(prgb, 3, 0, &back) == BK_OK, "read 16-bit RGB: %s", bk_last_error());
    int bad = 0, first = -1;
    for (int i = 0; back.pixels && i < W * H * 3; i++) {
        int want = (int)lround(v[i] * 255.0 / 65535.0);
        if (back.pixels[i] != want) {
            if (first < 0) first = i;
            bad++;
        }
    }
    EXPECT(back.pixels && back.width == W && back.height == H && bad == 0,
           "16-bit RGB: %d samples not round(v*255/65535) (first: sample %d, %d -> %d, want %ld)", bad, first,
           first >= 0 ? v[first] : 0, first >= 0 ? back.pixels[first] : 0,
           first >= 0 ? lround(v[first] * 255.0 / 65535.0) : 0L);
    bk_image_free(&back);

    EXPECT(bk_image_read(pgray, 1, 0, &back) == BK_OK, "read 16-bit gray: %s", bk_last_error());
    bad = 0;
    for (int i = 0; back.pixels && i < W * H; i++) bad += back.pixels[i] != lround(v[3 * i] * 255.0 / 65535.0);
    EXPECT(back.pixels && bad == 0, "16-bit gray: %d samples wrong", bad);
    bk_image_free(&back);
    EXPECT(bk_image_read(pgray, 3, 0, &back) == BK_OK, "read 16-bit gray as RGB: %s", bk_last_error());
    bad = 0;
    for (int i = 0; back.pixels && i < W * H * 3; i++) bad += back.pixels[i] != lround(v[3 * (i / 3)] * 255.0 / 65535.0);
    EXPECT(back.pixels && bad == 0, "16-bit gray as RGB: %d samples wrong", bad);
    bk_image_free(&back);
    bk_test_remove_tmpdir(dir);
}

/* Palette PNGs (8-bit and 4-bit indices) read as the palette's colours. */
static void png_palette_reads_as_rgb(void) {
    char *dir = bk_test_tmpdir();
    char p8[512], p4[512];
    JOIN(p8, dir, "pal8.png");
    JOIN(p4, dir, "pal4.png");
    enum { W = 19, H = 7 };
    png_color pal[16];
    for (int i = 0; i < 16; i++) pal[i] = (png_color){(png_byte)(i * 17), (png_byte)(255 - i * 13), (png_byte)(i * i)};
    uint8_t idx8[W * H], idx4[H][(W + 1) / 2];
    memset(idx4, 0, sizeof idx4);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int k = (x * 3 + y * 5) % 16;
            idx8[y * W + x] = (uint8_t)k;
            idx4[y][x / 2] |= (uint8_t)(x % 2 ? k : k << 4);
        }
    write_png_raw(p8, W, H, 8, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, idx8, W, pal, 16, NULL, 0, NULL);
    write_png_raw(p4, W, H, 4, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, &idx4[0][0], (W + 1) / 2, pal, 16, NULL, 0, NULL);
    const char *paths[2] = {p8, p4};
    for (int f = 0; f < 2; f++) {
        bk_image back = {0};
        EXPECT(bk_image_read(paths[f], 3, 0, &back) == BK_OK, "read %s: %s", paths[f], bk_last_error());
        int bad = 0;
        for (int i = 0; back.pixels && i < W * H; i++) {
            const png_color *c = &pal[idx8[i]];
            bad += back.pixels[i * 3] != c->red || back.pixels[i * 3 + 1] != c->green ||
                   back.pixels[i * 3 + 2] != c->blue;
        }
        EXPECT(back.pixels && back.width == W && back.height == H && bad == 0,
               "%s: %d pixels are not their palette colour", paths[f], bad);
        bk_image_free(&back);
    }
    bk_test_remove_tmpdir(dir);
}

/* image.h: "alpha dropped": RGBA and gray+alpha read as their colours. */
static void png_alpha_channel_dropped(void) {
    char *dir = bk_test_tmpdir();
    char prgba[512], pga[512];
    JOIN(prgba, dir, "rgba.png");
    JOIN(pga, dir, "ga.png");
    enum { W = 11, H = 6 };
    uint8_t rgba[W * H * 4], ga[W * H * 2];
    for (int i = 0; i < W * H; i++) {
        rgba[4 * i] = (uint8_t)(i * 3), rgba[4 * i + 1] = (uint8_t)(i * 5), rgba[4 * i + 2] = (uint8_t)(255 - i);
        rgba[4 * i + 3] = (uint8_t)(i * 37);
        ga[2 * i] = (uint8_t)(i * 7), ga[2 * i + 1] = (uint8_t)(255 - i * 3);
    }
    write_png_raw(prgba, W, H, 8, PNG_COLOR_TYPE_RGBA, PNG_INTERLACE_NONE, rgba, W * 4, NULL, 0, NULL, 0, NULL);
    write_png_raw(pga, W, H, 8, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_INTERLACE_NONE, ga, W * 2, NULL, 0, NULL, 0, NULL);

    bk_image back = {0};
    int bad = 0;
    EXPECT(bk_image_read(prgba, 3, 0, &back) == BK_OK, "RGBA: %s", bk_last_error());
    for (int i = 0; back.pixels && i < W * H; i++) bad += memcmp(back.pixels + 3 * i, rgba + 4 * i, 3) != 0;
    EXPECT(back.pixels && bad == 0, "RGBA read as RGB: %d pixels wrong", bad);
    bk_image_free(&back);
    bad = 0;
    EXPECT(bk_image_read(prgba, 1, 0, &back) == BK_OK && back.channels == 1, "RGBA as gray: %s", bk_last_error());
    for (int i = 0; back.pixels && i < W * H; i++) {
        const uint8_t *p = rgba + 4 * i;
        bad += fabs(back.pixels[i] - (0.2126 * p[0] + 0.7152 * p[1] + 0.0722 * p[2])) >= 1.5;
    }
    EXPECT(back.pixels && bad == 0, "RGBA read as gray: %d pixels not the luminance", bad);
    bk_image_free(&back);

    bad = 0;
    EXPECT(bk_image_read(pga, 3, 0, &back) == BK_OK, "gray+alpha: %s", bk_last_error());
    for (int i = 0; back.pixels && i < W * H * 3; i++) bad += back.pixels[i] != ga[2 * (i / 3)];
    EXPECT(back.pixels && bad == 0, "gray+alpha read as RGB: %d samples wrong", bad);
    bk_image_free(&back);
    bad = 0;
    EXPECT(bk_image_read(pga, 1, 0, &back) == BK_OK, "gray+alpha as gray: %s", bk_last_error());
    for (int i = 0; back.pixels && i < W * H; i++) bad += back.pixels[i] != ga[2 * i];
    EXPECT(back.pixels && bad == 0, "gray+alpha read as gray: %d samples wrong", bad);
    bk_image_free(&back);
    bk_test_remove_tmpdir(dir);
}

/* Alpha also comes as a tRNS chunk: a palette with transparency (the usual way small PNGs
 * carry alpha), or a transparent colour in gray and RGB PNGs. image.h: "gray and palette PNGs
 * to RGB, ... alpha dropped": each reads as its colours. */
static void png_transparency_chunk_dropped(void) {
    char *dir = bk_test_tmpdir();
    char ppal[512], pg2[512], prgb[512];
    JOIN(ppal, dir, "pal_trns.png");
    JOIN(pg2, dir, "gray2_trns.png");
    JOIN(prgb, dir, "rgb_trns.png");
    enum { W = 11, H = 6 };
    uint8_t idx[W * H], rgb[W * H * 3], g2[H][(W + 3) / 4];
    png_color pal[4] = {{10, 20, 30}, {200, 100, 50}, {0, 255, 0}, {255, 255, 255}};
    uint8_t trns[4] = {0, 128, 255, 64};
    memset(g2, 0, sizeof g2);
    for (int i = 0; i < W * H; i++) {
        idx[i] = (uint8_t)(i % 4);
        rgb[3 * i] = (uint8_t)(i * 3), rgb[3 * i + 1] = (uint8_t)(i * 5), rgb[3 * i + 2] = (uint8_t)(255 - i);
        g2[i / W][(i % W) / 4] |= (uint8_t)((i % 4) << (6 - 2 * ((i % W) % 4)));
    }
    write_png_raw(ppal, W, H, 8, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, idx, W, pal, 4, trns, 4, NULL);
    /* gray and RGB transparency: one transparent colour */
    png_color_16 gray_tc = {.gray = 1}, rgb_tc = {.red = rgb[3], .green = rgb[4], .blue = rgb[5]};
    write_png_raw(pg2, W, H, 2, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, &g2[0][0], (W + 3) / 4, NULL, 0, NULL, 0,
                  &gray_tc);
    write_png_raw(prgb, W, H, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, rgb, W * 3, NULL, 0, NULL, 0, &rgb_tc);

    bk_image back = {0};
    int bad = 0;
    bk_status st = bk_image_read(ppal, 3, 0, &back);
    EXPECT(st == BK_OK, "a palette PNG with transparency (tRNS) is refused: %s", bk_last_error());
    for (int i = 0; back.pixels && i < W * H; i++) {
        const png_color *c = &pal[idx[i]];
        bad += back.pixels[3 * i] != c->red || back.pixels[3 * i + 1] != c->green || back.pixels[3 * i + 2] != c->blue;
    }
    EXPECT(st != BK_OK || bad == 0, "palette+tRNS read as RGB: %d pixels wrong", bad);
    bk_image_free(&back);

    bad = 0;
    st = bk_image_read(pg2, 1, 0, &back);
    EXPECT(st == BK_OK, "a 2-bit gray PNG with tRNS is refused: %s", bk_last_error());
    for (int i = 0; back.pixels && i < W * H; i++) bad += back.pixels[i] != (i % 4) * 85;
    EXPECT(st != BK_OK || bad == 0, "2-bit gray+tRNS read as gray: %d pixels wrong", bad);
    bk_image_free(&back);

    bad = 0;
    st = bk_image_read(prgb, 3, 0, &back);
    EXPECT(st == BK_OK, "an RGB PNG with tRNS is refused: %s", bk_last_error());
    for (int i = 0; back.pixels && i < W * H * 3; i++) bad += back.pixels[i] != rgb[i];
    EXPECT(st != BK_OK || bad == 0, "RGB+tRNS read as RGB: %d samples wrong", bad);
    bk_image_free(&back);
    bk_test_remove_tmpdir(dir);
}

/* Adam7-interlaced PNGs and low bit depth gray read like plain ones. */
static void png_interlaced_and_low_depth_gray(void) {
    char *dir = bk_test_tmpdir();
    char pint[512], p2[512];
    JOIN(pint, dir, "interlaced.png");
    JOIN(p2, dir, "gray2.png");
    bk_image rgb, back = {0};
    rgb_pattern(&rgb, 37, 23);
    write_png_raw(pint, 37, 23, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_ADAM7, rgb.pixels, 37 * 3, NULL, 0, NULL, 0, NULL);
    EXPECT(bk_image_read(pint, 3, 0, &back) == BK_OK, "interlaced: %s", bk_last_error());
    EXPECT(back.pixels && memcmp(back.pixels, rgb.pixels, 37 * 23 * 3) == 0,
           "interlaced PNG does not read as its pixels");
    bk_image_free(&back);

    enum { W = 13, H = 4 };
    uint8_t packed[H][(W + 3) / 4];
    memset(packed, 0, sizeof packed);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) packed[y][x / 4] |= (uint8_t)(((x + y) % 4) << (6 - 2 * (x % 4)));
    write_png_raw(p2, W, H, 2, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, &packed[0][0], (W + 3) / 4, NULL, 0, NULL, 0, NULL);
    EXPECT(bk_image_read(p2, 1, 0, &back) == BK_OK, "2-bit gray: %s", bk_last_error());
    int bad = 0;
    for (int y = 0; back.pixels && y < H; y++)
        for (int x = 0; x < W; x++) bad += back.pixels[y * W + x] != ((x + y) % 4) * 85;
    EXPECT(back.pixels && bad == 0, "2-bit gray: %d pixels not scaled to 0/85/170/255", bad);
    bk_image_free(&back);
    bk_image_free(&rgb);
    bk_test_remove_tmpdir(dir);
}

/* ---------------------------------------------------------------- JPEG */

static void jpeg_quality_roundtrip(void) {
    char *dir = bk_test_tmpdir();
    char p100[512], p50[512], pedge[512];
    JOIN(p100, dir, "q100.jpg");
    JOIN(p50, dir, "q50.jpg");
    JOIN(pedge, dir, "edges.jpg");
    bk_image img, edges, back = {0};
    smooth_pattern(&img, 37, 23);
    rgb_pattern(&edges, 37, 23);
    EXPECT(bk_image_write_jpeg(p100, &img, 100) == BK_OK, "write: %s", bk_last_error());
    EXPECT(bk_image_write_jpeg(p50, &img, 50) == BK_OK, "write: %s", bk_last_error());
    EXPECT(bk_image_write_jpeg(pedge, &edges, 100) == BK_OK, "write: %s", bk_last_error());

    /* 4:4:4 at quality >= 90, 4:2:0 below: the luma sampling factors in SOF0 */
    size_t n, scan;
    jseg seg[32];
    const char *paths[2] = {p100, p50};
    const int want_sf[2] = {0x11, 0x22};
    for (int f = 0; f < 2; f++) {
        uint8_t *b = slurp(paths[f], &n);
        int ns = jpeg_segments(b, n, seg, 32, &scan);
        const jseg *sof = find_seg(seg, ns, 0xC0);
        EXPECT(sof && b[sof->off + 9] == 3, "%s: no 3-component baseline SOF0", paths[f]);
        if (sof) EXPECT(b[sof->off + 11] == want_sf[f], "%s: luma sampling 0x%02x, want 0x%02x",
                        paths[f], b[sof->off + 11], want_sf[f]);
        free(b);
    }

    const bk_image *src[2] = {&img, &edges};
    const char *what[2] = {"smooth", "hard edges"};
    const char *p[2] = {p100, pedge};
    const int max_bound[2] = {3, 3}; /* measured: 3 and 3 */
    const double mean_bound[2] = {0.5, 0.5}; /* measured: 0.435 and 0.403 */
    for (int f = 0; f < 2; f++) {
        EXPECT(bk_image_read(p[f], 3, 0, &back) == BK_OK, "read: %s", bk_last_error());
        EXPECT(back.width == 37 && back.height == 23 && back.channels == 3, "read as %dx%dx%d",
               back.width, back.height, back.channels);
        int worst = 0;
        double sum = 0;
        for (int i = 0; back.pixels && i < 37 * 23 * 3; i++) {
            int d = abs(back.pixels[i] - src[f]->pixels[i]);
            if (d > worst) worst = d;
            sum += d;
        }
        double mean = sum / (37 * 23 * 3);
        if (getenv("BK_TEST_VERBOSE")) printf("    quality 100, %s: max|diff| %d, mean %.3f\n", what[f], worst, mean);
        EXPECT(back.pixels && worst <= max_bound[f] && mean <= mean_bound[f],
               "quality 100 (%s): max|diff| %d (bound %d), mean %.3f (bound %.2f)", what[f], worst,
               max_bound[f], mean, mean_bound[f]);
        bk_image_free(&back);
    }
    EXPECT(bk_image_read(p50, 3, 0, &back) == BK_OK, "read q50: %s", bk_last_error());
    EXPECT(back.width == 37 && back.height == 23 && back.channels == 3, "q50 read as %dx%dx%d",
           back.width, back.height, back.channels);
    double sum = 0;
    for (int i = 0; back.pixels && i < 37 * 23 * 3; i++) sum += abs(back.pixels[i] - img.pixels[i]);
    EXPECT(back.pixels && sum / (37 * 23 * 3) < 8, "q50 mean error %.2f levels", sum / (37 * 23 * 3));
    bk_image_free(&back);

    bk_image_info info;
    EXPECT(bk_image_read_info(p100, &info) == BK_OK && info.width == 37 && info.height == 23 &&
               info.channels == 3 && info.format == BK_IMAGE_JPEG,
           "JPEG info %dx%d, %d channels, format %d", info.width, info.height, info.channels, info.format);
    bk_image_free(&img);
    bk_image_free(&edges);
    bk_test_remove_tmpdir(dir);
}

/* Decoding is libjpeg's accurate integer IDCT with fancy upsampling: the same as decoding
 * the file with those settings directly (a 4:2:0 file, where upsampling matters). */
static void jpeg_decode_matches_islow_fancy(void) {
    char *dir = bk_test_tmpdir();
    char path[512];
    JOIN(path, dir, "q75.jpg");
    bk_image img, back = {0};
    smooth_pattern(&img, 37, 23);
    bk_image_write_jpeg(path, &img, 75);
    EXPECT(bk_image_read(path, 3, 0, &back) == BK_OK, "read: %s", bk_last_error());
    struct jpeg_decompress_struct d;
    struct jpeg_error_mgr err;
    d.err = jpeg_std_error(&err);
    jpeg_create_decompress(&d);
    FILE *f = fopen(path, "rb");
    jpeg_stdio_src(&d, f);
    jpeg_read_header(&d, TRUE);
    d.out_color_space = JCS_RGB;
    d.dct_method = JDCT_ISLOW;
    d.do_fancy_upsampling = TRUE;
    jpeg_start_decompress(&d);
    uint8_t *ref = malloc((size_t)37 * 23 * 3);
    while (d.output_scanline < d.output_height) {
        JSAMPROW row = ref + (size_t)d.output_scanline * 37 * 3;
        jpeg_read_scanlines(&d, &row, 1);
    }
    jpeg_finish_decompress(&d);
    jpeg_destroy_decompress(&d);
    fclose(f);
    EXPECT(back.pixels && memcmp(back.pixels, ref, 37 * 23 * 3) == 0,
           "bk_image_read differs from libjpeg's ISLOW + fancy upsampling decode");
    free(ref);
    bk_image_free(&back);
    bk_image_free(&img);
    bk_test_remove_tmpdir(dir);
}

static void jpeg_gray_reads_as_rgb(void) {
    char *dir = bk_test_tmpdir();
    char path[512];
    JOIN(path, dir, "gray.jpg");
    bk_image gray, back = {0};
    gray_pattern(&gray, 37, 23);
    EXPECT(bk_image_write_jpeg(path, &gray, 95) == BK_OK, "write: %s", bk_last_error());
    bk_image_info info;
    EXPECT(bk_image_read_info(path, &info) == BK_OK && info.channels == 1, "gray JPEG info: %d channels",
           info.channels);
    bk_image g1 = {0};
    EXPECT(bk_image_read(path, 1, 0, &g1) == BK_OK, "read gray: %s", bk_last_error());
    EXPECT(bk_image_read(path, 3, 0, &back) == BK_OK, "read as RGB: %s", bk_last_error());
    int unequal = 0, differ = 0;
    for (int i = 0; back.pixels && g1.pixels && i < 37 * 23; i++) {
        const uint8_t *p = back.pixels + 3 * i;
        unequal += p[0] != p[1] || p[1] != p[2];
        differ += p[0] != g1.pixels[i];
    }
    EXPECT(back.pixels && back.channels == 3 && unequal == 0, "gray JPEG as RGB: %d pixels with R,G,B unequal", unequal);
    EXPECT(g1.pixels && differ == 0, "gray JPEG as RGB and as gray disagree on %d pixels", differ);
    bk_image_free(&g1);
    bk_image_free(&back);
    bk_image_free(&gray);
    bk_test_remove_tmpdir(dir);
}

static void jpeg_cmyk_refused(void) {
    char *dir = bk_test_tmpdir();
    char pcmyk[512], pycck[512];
    JOIN(pcmyk, dir, "cmyk.jpg");
    JOIN(pycck, dir, "ycck.jpg");
    enum { W = 16, H = 9 };
    uint8_t px[W * H * 4];
    for (int i = 0; i < W * H * 4; i++) px[i] = (uint8_t)(i * 7);
    write_jpeg_raw(pcmyk, W, H, 4, JCS_CMYK, JCS_CMYK, px, 90);
    write_jpeg_raw(pycck, W, H, 4, JCS_CMYK, JCS_YCCK, px, 90);
    const char *paths[2] = {pcmyk, pycck};
    for (int f = 0; f < 2; f++) {
        bk_image back = {0};
        EXPECT_FAILS_WITH_PATH(bk_image_read(paths[f], 3, 0, &back), paths[f], "CMYK JPEG");
        EXPECT(strstr(bk_last_error(), "CMYK") != NULL, "%s: message does not mention CMYK: %s", paths[f],
               bk_last_error());
        EXPECT(back.pixels == NULL, "pixels left after a refusal");
        EXPECT_FAILS_WITH_PATH(bk_image_read(paths[f], 1, 0, &back), paths[f], "CMYK JPEG as gray");
    }
    bk_test_remove_tmpdir(dir);
}

/* ---------------------------------------------------------------- header only */

/* bk_image_read_info reads the header only: it gives the size of files whose pixel data is cut
 * off, which bk_image_read refuses. */
static void read_info_does_not_decode(void) {
    char *dir = bk_test_tmpdir();
    char ppng[512], pjpg[512], cpng[512], cjpg[512];
    JOIN(ppng, dir, "a.png");
    JOIN(pjpg, dir, "a.jpg");
    JOIN(cpng, dir, "cut.png");
    JOIN(cjpg, dir, "cut.jpg");
    bk_image img, back = {0};
    smooth_pattern(&img, 120, 70);
    bk_image_write_png(ppng, &img);
    bk_image_write_jpeg(pjpg, &img, 90);
    size_t n, scan;
    uint8_t *b = slurp(ppng, &n);
    spit(cpng, b, 33 + 8 + 20); /* signature, IHDR, the IDAT length+type and a little data */
    free(b);
    b = slurp(pjpg, &n);
    jseg seg[32];
    jpeg_segments(b, n, seg, 32, &scan);
    EXPECT(scan > 0, "no scan found in %s", pjpg);
    spit(cjpg, b, scan + 10);
    free(b);
    const char *cut[2] = {cpng, cjpg};
    for (int f = 0; f < 2; f++) {
        bk_image_info info;
        EXPECT(bk_image_read_info(cut[f], &info) == BK_OK, "info of %s: %s", cut[f], bk_last_error());
        EXPECT(info.width == 120 && info.height == 70, "%s: info %dx%d", cut[f], info.width, info.height);
        EXPECT_FAILS_WITH_PATH(bk_image_read(cut[f], 3, 0, &back), cut[f], "cut pixel data");
    }
    bk_image_free(&img);
    bk_test_remove_tmpdir(dir);
}

/* ---------------------------------------------------------------- bad input */

static void bad_files_fail_with_path(void) {
    char *dir = bk_test_tmpdir();
    char missing[512], empty[512], text[512], sub[512], png_named_jpg[512], jpg_named_png[512];
    JOIN(missing, dir, "missing.png");
    JOIN(empty, dir, "empty.jpg");
    JOIN(text, dir, "notes.png");
    JOIN(sub, dir, "subdir.jpg");
    JOIN(png_named_jpg, dir, "really_a_png.jpg");
    JOIN(jpg_named_png, dir, "really_a_jpeg.png");
    spit(empty, "", 0);
    const char *txt = "this is a text file, not an image\n";
    spit(text, txt, strlen(txt));
    mkdir(sub, 0755);
    const char *bad[4] = {missing, empty, text, sub};
    const char *why[4] = {"missing file", "zero-byte file", "text file", "directory"};
    for (int i = 0; i < 4; i++) {
        bk_image img = {0};
        bk_image_info info;
        EXPECT_FAILS_WITH_PATH(bk_image_read(bad[i], 3, 0, &img), bad[i], why[i]);
        EXPECT(img.pixels == NULL, "%s: pixels set after a failure", why[i]);
        EXPECT_FAILS_WITH_PATH(bk_image_read(bad[i], 1, 0, &img), bad[i], why[i]);
        EXPECT_FAILS_WITH_PATH(bk_image_read_info(bad[i], &info), bad[i], why[i]);
    }
    /* short files shorter than a signature */
    char tiny[512];
    JOIN(tiny, dir, "tiny.jpg");
    spit(tiny, "\xFF\xD8", 2);
    bk_image img = {0};
    EXPECT_FAILS_WITH_PATH(bk_image_read(tiny, 3, 0, &img), tiny, "two-byte file");
    spit(tiny, "\x89PNG", 4);
    EXPECT_FAILS_WITH_PATH(bk_image_read(tiny, 3, 0, &img), tiny, "four-byte file");

    /* the format comes from the signature, not the name */
    bk_image pat;
    smooth_pattern(&pat, 20, 10);
    bk_image_write_png(png_named_jpg, &pat);
    bk_image_write_jpeg(jpg_named_png, &pat, 95);
    bk_image_info info;
    EXPECT(bk_image_read_info(png_named_jpg, &info) == BK_OK && info.format == BK_IMAGE_PNG,
           "a PNG named .jpg: %s", bk_last_error());
    EXPECT(bk_image_read_info(jpg_named_png, &info) == BK_OK && info.format == BK_IMAGE_JPEG,
           "a JPEG named .png: %s", bk_last_error());
    EXPECT(bk_image_read(png_named_jpg, 3, 0, &img) == BK_OK && img.pixels &&
               memcmp(img.pixels, pat.pixels, 20 * 10 * 3) == 0,
           "a PNG named .jpg does not read as its pixels");
    bk_image_free(&img);
    bk_image_free(&pat);
    bk_test_remove_tmpdir(dir);
}

/* Cut points as a fraction of the file, and "right after the header". */
static void truncated_files_fail_with_path(void) {
    char *dir = bk_test_tmpdir();
    char ppng[512], pjpg[512], cut[512];
    JOIN(ppng, dir, "full.png");
    JOIN(pjpg, dir, "full.jpg");
    bk_image img;
    smooth_pattern(&img, 64, 40);
    bk_image_write_png(ppng, &img);
    bk_image_write_jpeg(pjpg, &img, 90);
    const char *full[2] = {ppng, pjpg};
    for (int f = 0; f < 2; f++) {
        size_t n, scan = 0;
        uint8_t *b = slurp(full[f], &n);
        size_t header_end;
        if (f == 0) {
            header_end = 8 + 25; /* signature and IHDR */
        } else {
            jseg seg[32];
            jpeg_segments(b, n, seg, 32, &scan);
            header_end = scan; /* after SOS, before any entropy-coded data */
        }
        size_t cuts[] = {n / 10, n / 2, n * 9 / 10, header_end, header_end + 1, n - 1, 8, 3};
        for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
            char name[64];
            snprintf(name, sizeof name, "cut%zu_%zu.%s", c, cuts[c], f == 0 ? "png" : "jpg");
            JOIN(cut, dir, name);
            spit(cut, b, cuts[c]);
            bk_image back = {0};
            char what[64];
            snprintf(what, sizeof what, "cut at %zu of %zu bytes", cuts[c], n);
            EXPECT_FAILS_WITH_PATH(bk_image_read(cut, 3, 0, &back), cut, what);
            EXPECT(back.pixels == NULL, "%s: pixels set after a failure", cut);
            bk_image_free(&back);
        }
        free(b);
    }
    bk_image_free(&img);
    bk_test_remove_tmpdir(dir);
}

/* PNG: a flipped byte in IHDR or IDAT breaks the chunk's CRC. */
static void png_flipped_bytes_detected(void) {
    char *dir = bk_test_tmpdir();
    char ppng[512], bad[512];
    JOIN(ppng, dir, "full.png");
    bk_image img;
    rgb_pattern(&img, 37, 23);
    bk_image_write_png(ppng, &img);
    size_t n;
    uint8_t *b = slurp(ppng, &n);
    EXPECT(memcmp(b + 37, "IDAT", 4) == 0, "the writer's PNG has no IDAT right after IHDR");
    uint32_t idat_len = (uint32_t)b[33] << 24 | b[34] << 16 | b[35] << 8 | b[36];
    size_t offs[] = {16, 19, 20, 24, 25, 28, /* IHDR: width, height, depth, colour, interlace */
                     41, 42, 41 + idat_len / 3, 41 + idat_len / 2, 41 + idat_len - 1};
    for (size_t k = 0; k < sizeof offs / sizeof offs[0]; k++) {
        uint8_t *c = malloc(n);
        memcpy(c, b, n);
        c[offs[k]] ^= 0x24;
        char name[64];
        snprintf(name, sizeof name, "flip_%zu.png", offs[k]);
        JOIN(bad, dir, name);
        spit(bad, c, n);
        free(c);
        bk_image back = {0};
        char what[64];
        snprintf(what, sizeof what, "PNG byte %zu flipped", offs[k]);
        EXPECT_FAILS_WITH_PATH(bk_image_read(bad, 3, 0, &back), bad, what);
        bk_image_free(&back);
    }
    free(b);
    bk_image_free(&img);
    bk_test_remove_tmpdir(dir);
}

/* JPEG has no checksum: a flipped byte must either give an error naming the file or decode
 * cleanly at the right size. Counts what was detected. */
static void jpeg_flipped_bytes_error_or_clean(void) {
    char *dir = bk_test_tmpdir();
    char pjpg[512], bad[512];
    JOIN(pjpg, dir, "full.jpg");
    bk_image img;
    smooth_pattern(&img, 64, 40);
    bk_image_write_jpeg(pjpg, &img, 90);
    size_t n, scan;
    uint8_t *b = slurp(pjpg, &n);
    jseg seg[32];
    int ns = jpeg_segments(b, n, seg, 32, &scan);
    EXPECT(ns > 0 && scan > 0 && scan < n, "cannot parse the JPEG's markers");
    typedef struct {
        size_t off;
        char what[48];
    } flip;
    flip flips[64];
    int nf = 0;
    /* in each marker segment: the marker byte itself, the length, the middle, the last byte */
    for (int s = 0; s < ns && nf < 40; s++) {
        const char *name = seg[s].marker == 0xE0 ? "APP0" : seg[s].marker == 0xDB ? "DQT"
                         : seg[s].marker == 0xC0 ? "SOF0" : seg[s].marker == 0xC4 ? "DHT"
                         : seg[s].marker == 0xDA ? "SOS" : "segment";
        size_t o[4] = {seg[s].off + 1, seg[s].off + 3, seg[s].off + seg[s].len / 2, seg[s].off + seg[s].len - 1};
        const char *w[4] = {"marker", "length", "middle", "last byte"};
        for (int k = 0; k < 4; k++) {
            flips[nf].off = o[k];
            snprintf(flips[nf].what, sizeof flips[nf].what, "%s %s (byte %zu)", name, w[k], o[k]);
            nf++;
        }
    }
    size_t data = n - 2 - scan;
    for (int k = 0; k < 8; k++) {
        flips[nf].off = scan + (k == 0 ? 0 : data * k / 8);
        snprintf(flips[nf].what, sizeof flips[nf].what, "entropy data %d/8 (byte %zu)", k, flips[nf].off);
        nf++;
    }
    flips[nf].off = n - 1;
    snprintf(flips[nf].what, sizeof flips[nf].what, "EOI marker (byte %zu)", n - 1);
    nf++;

    int detected = 0, clean = 0, header_flips = 0, header_detected = 0;
    for (int k = 0; k < nf; k++) {
        uint8_t *c = malloc(n);
        memcpy(c, b, n);
        c[flips[k].off] ^= 0x24;
        char name[64];
        snprintf(name, sizeof name, "flip_%zu.jpg", flips[k].off);
        JOIN(bad, dir, name);
        spit(bad, c, n);
        free(c);
        bk_image back = {0};
        double t0 = now();
        bk_status st = bk_image_read(bad, 3, 0, &back);
        double dt = now() - t0;
        bool is_header = flips[k].off < scan;
        header_flips += is_header;
        if (st != BK_OK) {
            detected++;
            header_detected += is_header;
            EXPECT(strstr(bk_last_error(), bad) != NULL, "%s: message does not name the file: %s",
                   flips[k].what, bk_last_error());
            EXPECT(back.pixels == NULL, "%s: pixels set after a failure", flips[k].what);
        } else {
            clean++;
            EXPECT(back.width == 64 && back.height == 40 && back.channels == 3 && back.pixels,
                   "%s: decoded 'cleanly' as %dx%dx%d, not 64x40x3", flips[k].what, back.width,
                   back.height, back.channels);
        }
        EXPECT(dt < 2.0, "%s: took %.2f s", flips[k].what, dt);
        if (getenv("BK_TEST_VERBOSE"))
            printf("    %-40s %s\n", flips[k].what, st != BK_OK ? bk_last_error() : "decoded cleanly");
        bk_image_free(&back);
    }
    printf("    JPEG flipped bytes: %d of %d detected (%d of %d in the headers), %d decoded cleanly at 64x40\n",
           detected, nf, header_detected, header_flips, clean);
    /* the marker bytes of the headers cannot all survive a flip */
    EXPECT(header_detected >= header_flips / 2, "only %d of %d header flips detected", header_detected,
           header_flips);
    free(b);
    bk_image_free(&img);
    bk_test_remove_tmpdir(dir);
}

/* ---------------------------------------------------------------- size limit */

static void limit_address_space(void) {
#if !defined(__SANITIZE_ADDRESS__)
    /* a decoder that allocated the 20000x20000 image (1.2 GB) would fail with "out of memory"
     * instead of the size message (ASan reserves terabytes of shadow: only without it) */
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (f && fscanf(f, "%lu", &pages) == 1) {
        struct rlimit rl = {(rlim_t)pages * 4096 + ((rlim_t)400 << 20), RLIM_INFINITY};
        setrlimit(RLIMIT_AS, &rl);
    }
    if (f) fclose(f);
#endif
}

/* Reads `path` expecting a refusal about the size limit, quickly and without pixels. */
static void expect_size_refusal(const char *path, const char *what, const char *dims) {
    bk_image img = {0};
    double t0 = now();
    bk_status st = bk_image_read(path, 3, 0, &img);
    double dt = now() - t0;
    EXPECT_FAILS_WITH_PATH(st, path, what);
    EXPECT(strstr(bk_last_error(), "MP") != NULL && strstr(bk_last_error(), dims) != NULL,
           "%s: the message is not about the size limit: %s", what, bk_last_error());
    EXPECT(dt < 0.5, "%s: refusing took %.2f s", what, dt);
    EXPECT(img.pixels == NULL, "%s: pixels allocated", what);
    bk_image_free(&img);
}

/* A PNG whose IHDR says 20000x20000 (1.2 GB of RGB), followed by a token IDAT: refused from
 * the header, with a message about the limit. The address space is limited so that a decoder
 * allocating the image would fail with "out of memory" instead. */
static void png_oversized_header_refused_before_allocating(void) {
    char *dir = bk_test_tmpdir();
    limit_address_space();
    uint8_t buf[256];
    char path[512];
    JOIN(path, dir, "huge.png");
    spit(path, buf, png_header_only(buf, 20000, 20000, 2));
    expect_size_refusal(path, "20000x20000 PNG", "20000x20000");
    bk_image_info info;
    EXPECT(bk_image_read_info(path, &info) == BK_OK && info.width == 20000 && info.height == 20000,
           "read_info of the 20000x20000 PNG: %s", bk_last_error());
    /* the default limit is 64 MP: 8000 x 8000 passes the check (and then fails on the token
     * pixel data), 8001 x 8000 is above */
    JOIN(path, dir, "at64.png");
    spit(path, buf, png_header_only(buf, 8000, 8000, 2));
    bk_image img = {0};
    EXPECT_FAILS_WITH_PATH(bk_image_read(path, 3, 0, &img), path, "8000x8000 PNG with a token IDAT");
    EXPECT(strstr(bk_last_error(), "MP") == NULL, "8000x8000 (64 MP, at the limit) refused as too large: %s",
           bk_last_error());
    bk_image_free(&img);
    JOIN(path, dir, "over64.png");
    spit(path, buf, png_header_only(buf, 8001, 8000, 2));
    expect_size_refusal(path, "8001x8000 PNG", "8001x8000");
    bk_test_remove_tmpdir(dir);
}

/* The same header with no pixel data at all: IHDR then IEND, or IHDR then the end of the
 * file. The size is known from IHDR, so the refusal is about the limit too. */
static void png_oversized_header_without_pixel_data_refused(void) {
    char *dir = bk_test_tmpdir();
    limit_address_space();
    uint8_t buf[256];
    char path[512];
    JOIN(path, dir, "huge_iend.png");
    spit(path, buf, png_header_only(buf, 20000, 20000, 1));
    expect_size_refusal(path, "20000x20000 PNG, IHDR then IEND", "20000x20000");
    JOIN(path, dir, "huge_ihdr.png");
    spit(path, buf, png_header_only(buf, 20000, 20000, 0));
    expect_size_refusal(path, "20000x20000 PNG, IHDR only", "20000x20000");
    bk_test_remove_tmpdir(dir);
}

/* A JPEG whose SOF0 says 20000x20000 (the rest from a small image). */
static void jpeg_oversized_header_refused_before_allocating(void) {
    char *dir = bk_test_tmpdir();
    limit_address_space();
    char small[512], path[512];
    JOIN(small, dir, "small.jpg");
    JOIN(path, dir, "huge.jpg");
    bk_image pat;
    smooth_pattern(&pat, 32, 16);
    bk_image_write_jpeg(small, &pat, 90);
    bk_image_free(&pat);
    size_t n, scan;
    uint8_t *b = slurp(small, &n);
    jseg seg[32];
    int ns = jpeg_segments(b, n, seg, 32, &scan);
    const jseg *sof = find_seg(seg, ns, 0xC0);
    EXPECT(sof != NULL, "no SOF0 in the writer's JPEG");
    if (sof) {
        b[sof->off + 5] = 20000 >> 8, b[sof->off + 6] = 20000 & 255; /* height */
        b[sof->off + 7] = 20000 >> 8, b[sof->off + 8] = 20000 & 255; /* width */
        spit(path, b, n);
        expect_size_refusal(path, "20000x20000 JPEG", "20000x20000");
        bk_image_info info;
        EXPECT(bk_image_read_info(path, &info) == BK_OK && info.width == 20000 && info.height == 20000,
               "read_info of the 20000x20000 JPEG: %s", bk_last_error());
    }
    free(b);
    bk_test_remove_tmpdir(dir);
}

static void custom_max_pixels_honoured(void) {
    char *dir = bk_test_tmpdir();
    char ppng[512], pjpg[512];
    JOIN(ppng, dir, "a.png");
    JOIN(pjpg, dir, "a.jpg");
    bk_image pat;
    smooth_pattern(&pat, 37, 23); /* 851 pixels */
    bk_image_write_png(ppng, &pat);
    bk_image_write_jpeg(pjpg, &pat, 90);
    const char *paths[2] = {ppng, pjpg};
    for (int f = 0; f < 2; f++) {
        bk_image img = {0};
        EXPECT_FAILS_WITH_PATH(bk_image_read(paths[f], 3, 850, &img), paths[f], "851 pixels, limit 850");
        EXPECT(strstr(bk_last_error(), "MP") != NULL, "%s: %s", paths[f], bk_last_error());
        EXPECT(img.pixels == NULL, "pixels allocated");
        EXPECT(bk_image_read(paths[f], 1, 850, &img) != BK_OK, "%s: limit ignored for gray", paths[f]);
        EXPECT(bk_image_read(paths[f], 3, 851, &img) == BK_OK, "%s: 851 pixels refused at a limit of 851: %s",
               paths[f], bk_last_error());
        bk_image_free(&img);
        EXPECT(bk_image_read(paths[f], 3, -1, &img) == BK_OK, "%s: limit -1 (the default): %s", paths[f],
               bk_last_error());
        bk_image_free(&img);
    }
    bk_image_free(&pat);
    bk_test_remove_tmpdir(dir);
}

/* ---------------------------------------------------------------- writing */

static void write_into_missing_directory_fails_cleanly(void) {
    char *dir = bk_test_tmpdir();
    char nodir[512], ppng[600], pjpg[600], tmp[700];
    JOIN(nodir, dir, "no/such/dir");
    snprintf(ppng, sizeof ppng, "%.512s/out.png", nodir);
    snprintf(pjpg, sizeof pjpg, "%.512s/out.jpg", nodir);
    bk_image pat;
    smooth_pattern(&pat, 20, 10);
    EXPECT_FAILS_WITH_PATH(bk_image_write_png(ppng, &pat), ppng, "PNG into a missing directory");
    EXPECT_FAILS_WITH_PATH(bk_image_write_jpeg(pjpg, &pat, 90), pjpg, "JPEG into a missing directory");
    snprintf(tmp, sizeof tmp, "%.600s.tmp", ppng);
    EXPECT(!exists(ppng) && !exists(tmp), "a file was left behind");

    /* writing over a path that is a directory: fails at the rename, leaves no .tmp */
    char target[512];
    JOIN(target, dir, "taken.png");
    mkdir(target, 0755);
    EXPECT_FAILS_WITH_PATH(bk_image_write_png(target, &pat), target, "PNG onto a directory");
    snprintf(tmp, sizeof tmp, "%.512s.tmp", target);
    EXPECT(!exists(tmp), "%s remained after a failed rename", tmp);

    /* overwriting an existing file replaces it, no .tmp remains */
    char over[512];
    JOIN(over, dir, "over.png");
    spit(over, "old contents", 12);
    EXPECT(bk_image_write_png(over, &pat) == BK_OK, "overwrite: %s", bk_last_error());
    bk_image back = {0};
    EXPECT(bk_image_read(over, 3, 0, &back) == BK_OK && back.pixels &&
               memcmp(back.pixels, pat.pixels, 20 * 10 * 3) == 0,
           "the overwritten file does not hold the new image");
    snprintf(tmp, sizeof tmp, "%.512s.tmp", over);
    EXPECT(!exists(tmp), ".tmp remained after a successful write");
    bk_image_free(&back);
    bk_image_free(&pat);
    bk_test_remove_tmpdir(dir);
}

BK_TEST_MAIN(BK_TEST(png_rgb_and_gray_roundtrip_bit_exact), BK_TEST(png_rgb_read_as_gray_is_luminance),
             BK_TEST(png_16bit_reduced_with_rounding), BK_TEST(png_palette_reads_as_rgb),
             BK_TEST(png_alpha_channel_dropped), BK_TEST(png_transparency_chunk_dropped),
             BK_TEST(png_interlaced_and_low_depth_gray),
             BK_TEST(jpeg_quality_roundtrip), BK_TEST(jpeg_decode_matches_islow_fancy),
             BK_TEST(jpeg_gray_reads_as_rgb), BK_TEST(jpeg_cmyk_refused),
             BK_TEST(read_info_does_not_decode), BK_TEST(bad_files_fail_with_path),
             BK_TEST(truncated_files_fail_with_path), BK_TEST(png_flipped_bytes_detected),
             BK_TEST(jpeg_flipped_bytes_error_or_clean),
             BK_TEST(png_oversized_header_refused_before_allocating),
             BK_TEST(png_oversized_header_without_pixel_data_refused),
             BK_TEST(jpeg_oversized_header_refused_before_allocating), BK_TEST(custom_max_pixels_honoured),
             BK_TEST(write_into_missing_directory_fails_cleanly))
