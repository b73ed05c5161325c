/* image.c — PNG and JPEG reading and writing (see image.h).
 *
 * Both libraries report fatal errors through a callback that must not return: libpng's error
 * function and libjpeg's error_exit longjmp back to the caller here, which frees what it holds
 * and returns a status. State touched after setjmp lives in a heap struct (`job`), so nothing
 * depends on the value of a local after longjmp.
 */
#include "data/image.h"

#include <errno.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdio.h> /* before jpeglib.h, which uses FILE */
#include <stdlib.h>

#include <jpeglib.h>
#include <png.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- common */

bk_status bk_image_alloc(bk_image *img, int width, int height, int channels) {
    img->width = width;
    img->height = height;
    img->channels = channels;
    img->pixels = calloc((size_t)width * height * channels, 1);
    if (!img->pixels)
        return bk_fail(BK_ERR_ARG, "out of memory for a %dx%d image", width, height);
    return BK_OK;
}

void bk_image_free(bk_image *img) {
    if (!img) return;
    free(img->pixels);
    img->pixels = NULL;
}

/* Detects the format of the open stream `f` (named `path` in messages), refusing empty and
 * unknown content; closes f on failure. */
static bk_status detect_format(FILE *f, const char *path, bk_image_format *fmt) {
    unsigned char sig[8] = {0};
    size_t got = fread(sig, 1, sizeof sig, f);
    rewind(f);
    if (got == 0) {
        fclose(f);
        return bk_fail(BK_ERR_FORMAT, "%s: the file is empty (0 bytes)", path);
    }
    if (got == 8 && png_sig_cmp(sig, 0, 8) == 0) {
        *fmt = BK_IMAGE_PNG;
    } else if (got >= 3 && sig[0] == 0xFF && sig[1] == 0xD8 && sig[2] == 0xFF) {
        *fmt = BK_IMAGE_JPEG;
    } else {
        fclose(f);
        return bk_fail(BK_ERR_FORMAT, "%s: not a PNG or JPEG image (unknown signature)", path);
    }
    return BK_OK;
}

/* Opens `path` for reading, refusing missing files and directories, and detects the format. */
static bk_status open_image(const char *path, FILE **f, bk_image_format *fmt) {
    *f = fopen(path, "rb");
    if (!*f) return bk_fail(BK_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(*f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(*f);
        return bk_fail(BK_ERR_IO, "%s: is a directory, not an image", path);
    }
    return detect_format(*f, path, fmt);
}

/* The same for bytes in memory: a read-only stream over them (fmemopen), so the decoders run
 * exactly as on a file. */
static bk_status open_image_mem(const void *data, size_t size, const char *name, FILE **f,
                                bk_image_format *fmt) {
    if (size == 0) return bk_fail(BK_ERR_FORMAT, "%s: the file is empty (0 bytes)", name);
    *f = fmemopen((void *)data, size, "rb"); /* "rb" never writes through the pointer */
    if (!*f) return bk_fail(BK_ERR_IO, "%s: cannot read it from memory: %s", name, strerror(errno));
    return detect_format(*f, name, fmt);
}

static bk_status check_size(const char *path, int w, int h, int64_t max_pixels) {
    if (max_pixels <= 0) max_pixels = BK_IMAGE_DEFAULT_MAX_PIXELS;
    if (w <= 0 || h <= 0) return bk_fail(BK_ERR_FORMAT, "%s: invalid size %dx%d", path, w, h);
    if ((int64_t)w * h > max_pixels)
        return bk_fail(BK_ERR_SHAPE,
                       "%s: %dx%d is %.1f MP, above the limit of %.1f MP (raise max_pixels to "
                       "read it)",
                       path, w, h, (double)w * h / 1e6, (double)max_pixels / 1e6);
    return BK_OK;
}

/* Writes through "<path>.tmp" and renames, so an interrupted write never leaves a partial
 * file under the final name. */
static FILE *open_tmp(const char *path, char *tmp, size_t len) {
    snprintf(tmp, len, "%s.tmp", path);
    return fopen(tmp, "wb");
}

static bk_status finish_tmp(FILE *f, const char *tmp, const char *path, bool ok) {
    bool closed = fclose(f) == 0;
    if (!ok || !closed) {
        int e = errno;
        unlink(tmp);
        if (!closed && ok) return bk_fail(BK_ERR_IO, "%s: write failed: %s", path, strerror(e));
        return BK_ERR_IO; /* the message is already set */
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return bk_fail(BK_ERR_IO, "%s: cannot rename the written file into place: %s", path,
                       strerror(e));
    }
    return BK_OK;
}

/* ---------------------------------------------------------------- PNG */

typedef struct png_job {
    const char *path;
    char msg[256];
    int err; /* errno when libpng stopped: the operating system's reason of a failed write */
    png_structp png;
    png_infop info;
    uint8_t *pixels;
    png_bytep *rows;
} png_job;

static void png_on_error(png_structp png, png_const_charp msg) {
    png_job *job = png_get_error_ptr(png);
    job->err = errno;
    snprintf(job->msg, sizeof job->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg; /* ancillary-chunk warnings (colour profiles, text) do not affect pixels */
}

/* The size in the IHDR chunk, which a valid PNG has right after its signature: checked
 * against the limit before libpng reads on (it would read up to the pixel data first). */
static bk_status png_check_header_size(FILE *f, const char *path, int64_t max_pixels) {
    unsigned char h[24];
    size_t got = fread(h, 1, sizeof h, f);
    rewind(f);
    if (got < sizeof h || memcmp(h + 12, "IHDR", 4) != 0) return BK_OK; /* libpng reports it */
    uint32_t w = (uint32_t)h[16] << 24 | (uint32_t)h[17] << 16 | (uint32_t)h[18] << 8 | h[19];
    uint32_t ht = (uint32_t)h[20] << 24 | (uint32_t)h[21] << 16 | (uint32_t)h[22] << 8 | h[23];
    if (w > 0x7fffffffu || ht > 0x7fffffffu)
        return bk_fail(BK_ERR_FORMAT, "%s: invalid PNG size %ux%u", path, w, ht);
    return check_size(path, (int)w, (int)ht, max_pixels);
}

static bk_status png_read(FILE *f, const char *path, int channels, int64_t max_pixels,
                          bool header_only, bk_image_info *info, bk_image *out) {
    if (!header_only) {
        bk_status pre = png_check_header_size(f, path, max_pixels);
        if (pre != BK_OK) return pre;
    }
    png_job *job = calloc(1, sizeof *job);
    if (!job) return bk_fail(BK_ERR_ARG, "out of memory");
    job->path = path;
    bk_status st = BK_OK;
    job->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, job, png_on_error, png_on_warning);
    if (job->png) job->info = png_create_info_struct(job->png);
    if (!job->png || !job->info) {
        st = bk_fail(BK_ERR_ARG, "%s: libpng could not start", path);
        goto done;
    }
    if (setjmp(png_jmpbuf(job->png))) {
        st = bk_fail(BK_ERR_FORMAT, "%s: corrupt or truncated PNG: %s", path, job->msg);
        goto done;
    }
    png_init_io(job->png, f);
    /* libpng reads a text chunk whole into memory, at the size the chunk claims, which its
     * chunk-size limit does not cover: a 276-byte file whose tEXt chunk claims 1.8 GB made it
     * allocate and clear 1.8 GB. No ancillary chunk but tRNS changes the pixels read here
     * (gamma and colour profiles are not applied), so all others are skipped as unknown
     * chunks are: read through in small pieces for the checksum, never held in memory. */
    png_set_keep_unknown_chunks(job->png, PNG_HANDLE_CHUNK_NEVER, NULL, -1);
    png_read_info(job->png, job->info);
    png_uint_32 w, h;
    int depth, color, interlace;
    png_get_IHDR(job->png, job->info, &w, &h, &depth, &color, &interlace, NULL, NULL);
    info->width = (int)w;
    info->height = (int)h;
    info->channels = png_get_channels(job->png, job->info);
    info->format = BK_IMAGE_PNG;
    if (header_only) goto done;
    if ((st = check_size(path, (int)w, (int)h, max_pixels)) != BK_OK) goto done;

    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(job->png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(job->png);
    if (depth == 16) png_set_scale_16(job->png);
    /* alpha channels, and the one tRNS transparency becomes after palette expansion */
    if ((color & PNG_COLOR_MASK_ALPHA) || png_get_valid(job->png, job->info, PNG_INFO_tRNS))
        png_set_strip_alpha(job->png);
    bool gray = color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA;
    if (gray && channels == 3) png_set_gray_to_rgb(job->png);
    if (!gray && channels == 1) png_set_rgb_to_gray_fixed(job->png, 1, -1, -1);
    if (interlace != PNG_INTERLACE_NONE) png_set_interlace_handling(job->png);
    png_read_update_info(job->png, job->info);
    if (png_get_rowbytes(job->png, job->info) != (size_t)w * channels) {
        st = bk_fail(BK_ERR_FORMAT, "%s: unsupported PNG pixel format", path);
        goto done;
    }
    job->pixels = malloc((size_t)w * h * channels);
    job->rows = malloc((size_t)h * sizeof *job->rows);
    if (!job->pixels || !job->rows) {
        st = bk_fail(BK_ERR_ARG, "%s: out of memory for %ux%u pixels", path, w, h);
        goto done;
    }
    for (png_uint_32 y = 0; y < h; y++) job->rows[y] = job->pixels + (size_t)y * w * channels;
    png_read_image(job->png, job->rows);
    png_read_end(job->png, NULL);
    out->width = (int)w;
    out->height = (int)h;
    out->channels = channels;
    out->pixels = job->pixels;
    job->pixels = NULL;
done:
    png_destroy_read_struct(job->png ? &job->png : NULL, job->info ? &job->info : NULL, NULL);
    free(job->pixels);
    free(job->rows);
    free(job);
    return st;
}

bk_status bk_image_write_png(const char *path, const bk_image *img) {
    BK_CHECK(img->channels == 1 || img->channels == 3, "PNG with %d channels", img->channels);
    char tmp[4096];
    FILE *f = open_tmp(path, tmp, sizeof tmp);
    if (!f) return bk_fail(BK_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    png_job *job = calloc(1, sizeof *job);
    bool ok = false;
    if (!job) {
        bk_fail(BK_ERR_IO, "%s: out of memory", path);
        return finish_tmp(f, tmp, path, false);
    }
    job->png = png_create_write_struct(PNG_LIBPNG_VER_STRING, job, png_on_error, png_on_warning);
    if (job->png) job->info = png_create_info_struct(job->png);
    if (!job->png || !job->info) {
        bk_fail(BK_ERR_IO, "%s: libpng could not start", path);
        goto done;
    }
    if (setjmp(png_jmpbuf(job->png))) {
        if (ferror(f)) bk_fail(BK_ERR_IO, "%s: write failed: %s", path, strerror(job->err));
        else bk_fail(BK_ERR_IO, "%s: writing the PNG failed: %s", path, job->msg);
        goto done;
    }
    png_init_io(job->png, f);
    png_set_IHDR(job->png, job->info, (png_uint_32)img->width, (png_uint_32)img->height, 8,
                 img->channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(job->png, job->info);
    for (int y = 0; y < img->height; y++)
        png_write_row(job->png, img->pixels + (size_t)y * img->width * img->channels);
    png_write_end(job->png, NULL);
    if (fflush(f) != 0) {
        bk_fail(BK_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        goto done;
    }
    ok = true;
done:
    if (job->png) png_destroy_write_struct(&job->png, job->info ? &job->info : NULL);
    free(job);
    return finish_tmp(f, tmp, path, ok);
}

/* ---------------------------------------------------------------- JPEG */

typedef struct jpeg_job {
    struct jpeg_error_mgr mgr; /* first: libjpeg passes &mgr as cinfo->err */
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
    char warning[JMSG_LENGTH_MAX];
    int warnings;
    int err; /* errno when libjpeg stopped: the operating system's reason of a failed write */
    struct jpeg_decompress_struct in;
    struct jpeg_compress_struct out;
    uint8_t *pixels;
} jpeg_job;

static void jpeg_on_error(j_common_ptr cinfo) {
    jpeg_job *job = (jpeg_job *)cinfo->err;
    job->err = errno;
    (*cinfo->err->format_message)(cinfo, job->msg);
    longjmp(job->jump, 1);
}

/* Level -1 is a warning (corrupt data, premature end): remembered and turned into an error
 * after decoding. Higher levels are trace messages. */
static void jpeg_on_message(j_common_ptr cinfo, int level) {
    jpeg_job *job = (jpeg_job *)cinfo->err;
    if (level >= 0) return;
    if (job->warnings++ == 0) (*cinfo->err->format_message)(cinfo, job->warning);
}

static bk_status jpeg_read(FILE *f, const char *path, int channels, int64_t max_pixels,
                           bool header_only, bk_image_info *info, bk_image *out) {
    jpeg_job *job = calloc(1, sizeof *job);
    if (!job) return bk_fail(BK_ERR_ARG, "out of memory");
    bk_status st = BK_OK;
    job->in.err = jpeg_std_error(&job->mgr);
    job->mgr.error_exit = jpeg_on_error;
    job->mgr.emit_message = jpeg_on_message;
    if (setjmp(job->jump)) {
        st = bk_fail(BK_ERR_FORMAT, "%s: corrupt or truncated JPEG: %s", path, job->msg);
        goto done;
    }
    jpeg_create_decompress(&job->in);
    jpeg_stdio_src(&job->in, f);
    jpeg_read_header(&job->in, TRUE);
    info->width = (int)job->in.image_width;
    info->height = (int)job->in.image_height;
    info->channels = job->in.num_components;
    info->format = BK_IMAGE_JPEG;
    if (job->in.jpeg_color_space == JCS_CMYK || job->in.jpeg_color_space == JCS_YCCK) {
        st = bk_fail(BK_ERR_FORMAT, "%s: CMYK JPEGs are not supported; save it as RGB", path);
        goto done;
    }
    if (job->in.num_components != 1 && job->in.num_components != 3) {
        st = bk_fail(BK_ERR_FORMAT, "%s: unsupported JPEG with %d components", path,
                     job->in.num_components);
        goto done;
    }
    if (header_only) goto done;
    if ((st = check_size(path, info->width, info->height, max_pixels)) != BK_OK) goto done;
    job->in.out_color_space = channels == 3 ? JCS_RGB : JCS_GRAYSCALE;
    job->in.dct_method = JDCT_ISLOW;
    job->in.do_fancy_upsampling = TRUE;
    jpeg_start_decompress(&job->in);
    size_t stride = (size_t)job->in.output_width * channels;
    job->pixels = malloc(stride * job->in.output_height);
    if (!job->pixels) {
        st = bk_fail(BK_ERR_ARG, "%s: out of memory for %dx%d pixels", path, info->width,
                     info->height);
        goto done;
    }
    while (job->in.output_scanline < job->in.output_height) {
        JSAMPROW row = job->pixels + stride * job->in.output_scanline;
        jpeg_read_scanlines(&job->in, &row, 1);
    }
    jpeg_finish_decompress(&job->in);
    if (job->warnings) {
        st = bk_fail(BK_ERR_FORMAT, "%s: corrupt or truncated JPEG: %s", path, job->warning);
        goto done;
    }
    out->width = (int)job->in.output_width;
    out->height = (int)job->in.output_height;
    out->channels = channels;
    out->pixels = job->pixels;
    job->pixels = NULL;
done:
    jpeg_destroy_decompress(&job->in);
    free(job->pixels);
    free(job);
    return st;
}

bk_status bk_image_write_jpeg(const char *path, const bk_image *img, int quality) {
    BK_CHECK(img->channels == 1 || img->channels == 3, "JPEG with %d channels", img->channels);
    BK_CHECK(quality >= 1 && quality <= 100, "JPEG quality %d", quality);
    char tmp[4096];
    FILE *f = open_tmp(path, tmp, sizeof tmp);
    if (!f) return bk_fail(BK_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    jpeg_job *job = calloc(1, sizeof *job);
    bool ok = false;
    if (!job) {
        bk_fail(BK_ERR_IO, "%s: out of memory", path);
        return finish_tmp(f, tmp, path, false);
    }
    job->out.err = jpeg_std_error(&job->mgr);
    job->mgr.error_exit = jpeg_on_error;
    job->mgr.emit_message = jpeg_on_message;
    if (setjmp(job->jump)) {
        if (ferror(f)) bk_fail(BK_ERR_IO, "%s: write failed: %s", path, strerror(job->err));
        else bk_fail(BK_ERR_IO, "%s: writing the JPEG failed: %s", path, job->msg);
        goto done;
    }
    jpeg_create_compress(&job->out);
    jpeg_stdio_dest(&job->out, f);
    job->out.image_width = (JDIMENSION)img->width;
    job->out.image_height = (JDIMENSION)img->height;
    job->out.input_components = img->channels;
    job->out.in_color_space = img->channels == 3 ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_set_defaults(&job->out);
    jpeg_set_quality(&job->out, quality, TRUE);
    job->out.dct_method = JDCT_ISLOW;
    if (quality >= 90 && img->channels == 3) {
        job->out.comp_info[0].h_samp_factor = 1; /* 4:4:4: no chroma subsampling */
        job->out.comp_info[0].v_samp_factor = 1;
    }
    jpeg_start_compress(&job->out, TRUE);
    size_t stride = (size_t)img->width * img->channels;
    while (job->out.next_scanline < job->out.image_height) {
        JSAMPROW row = img->pixels + stride * job->out.next_scanline;
        jpeg_write_scanlines(&job->out, &row, 1);
    }
    jpeg_finish_compress(&job->out);
    if (fflush(f) != 0) {
        bk_fail(BK_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        goto done;
    }
    ok = true;
done:
    jpeg_destroy_compress(&job->out);
    free(job);
    return finish_tmp(f, tmp, path, ok);
}

/* ---------------------------------------------------------------- entry points */

static bk_status decode(FILE *f, bk_image_format fmt, const char *path, int channels,
                        int64_t max_pixels, bool header_only, bk_image_info *info, bk_image *out) {
    bk_status st = fmt == BK_IMAGE_PNG
                       ? png_read(f, path, channels, max_pixels, header_only, info, out)
                       : jpeg_read(f, path, channels, max_pixels, header_only, info, out);
    fclose(f);
    return st;
}

bk_status bk_image_read_info(const char *path, bk_image_info *info) {
    memset(info, 0, sizeof *info);
    FILE *f;
    bk_image_format fmt = BK_IMAGE_PNG;
    bk_status st = open_image(path, &f, &fmt);
    return st != BK_OK ? st : decode(f, fmt, path, 3, 0, true, info, NULL);
}

bk_status bk_image_read(const char *path, int channels, int64_t max_pixels, bk_image *out) {
    BK_CHECK(channels == 1 || channels == 3, "images are read as 1 or 3 channels, not %d", channels);
    memset(out, 0, sizeof *out);
    bk_image_info info;
    FILE *f;
    bk_image_format fmt = BK_IMAGE_PNG;
    bk_status st = open_image(path, &f, &fmt);
    return st != BK_OK ? st : decode(f, fmt, path, channels, max_pixels, false, &info, out);
}

bk_status bk_image_read_info_mem(const void *data, size_t size, const char *name,
                                 bk_image_info *info) {
    memset(info, 0, sizeof *info);
    FILE *f;
    bk_image_format fmt = BK_IMAGE_PNG;
    bk_status st = open_image_mem(data, size, name, &f, &fmt);
    return st != BK_OK ? st : decode(f, fmt, name, 3, 0, true, info, NULL);
}

bk_status bk_image_read_mem(const void *data, size_t size, const char *name, int channels,
                            int64_t max_pixels, bk_image *out) {
    BK_CHECK(channels == 1 || channels == 3, "images are read as 1 or 3 channels, not %d", channels);
    memset(out, 0, sizeof *out);
    bk_image_info info;
    FILE *f;
    bk_image_format fmt = BK_IMAGE_PNG;
    bk_status st = open_image_mem(data, size, name, &f, &fmt);
    return st != BK_OK ? st : decode(f, fmt, name, channels, max_pixels, false, &info, out);
}
