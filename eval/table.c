/* table.c — see table.h. */
#include "eval/table.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/files.h"

static void num(FILE *f, double v, const char *fmt) {
    if (isnan(v)) fputs("n/a", f);
    else if (isinf(v)) fputs("inf", f);
    else fprintf(f, fmt, v);
}

void bk_table_markdown(FILE *f, const bk_table_row *rows, int n) {
    fprintf(f, "| method | PSNR ↑ | SSIM ↑ | LPIPS ↓ | CPU s/img | parameters |\n|---|---|---|---|---|---|\n");
    for (int i = 0; i < n; i++) {
        const bk_table_row *r = &rows[i];
        fprintf(f, "| %s | ", r->method);
        num(f, r->psnr, "%.2f");
        fputs(" | ", f);
        num(f, r->ssim, "%.4f");
        fputs(" | ", f);
        num(f, r->lpips, "%.4f");
        fputs(" | ", f);
        num(f, r->seconds, "%.3f");
        if (r->params >= 0) fprintf(f, " | %.2f M |\n", r->params / 1e6);
        else fprintf(f, " | n/a |\n");
    }
    /* the footer: settings shared by all rows, then what differs */
    fprintf(f, "\nPSNR over the RGB channels of 8-bit images; SSIM as skimage 0.16 compare_ssim(multichannel=True): "
               "uniform 7x7 window, data range 255, sample covariance, mean over channels; LPIPS v0.1 (alex) on "
               "x/127.5 - 1. Per-image values, then the mean.\n");
    for (int i = 0; i < n; i++) {
        const bk_table_row *r = &rows[i];
        if (i > 0 && !strcmp(r->split, rows[0].split) && !strcmp(r->protocol, rows[0].protocol) &&
            !strcmp(r->lpips_note, rows[0].lpips_note) && r->images == rows[0].images)
            continue;
        fprintf(f, "%s%s: %s, %lld images; %s.", n > 1 ? "" : "", n > 1 ? r->method : "Evaluated on", r->split,
                (long long)r->images, r->protocol);
        if (isnan(r->lpips) && r->lpips_note[0]) fprintf(f, " LPIPS n/a: %s.", r->lpips_note);
        fputc('\n', f);
    }
}

void bk_table_csv(FILE *f, const bk_table_row *rows, int n) {
    fprintf(f, "method,psnr,ssim,lpips,seconds_per_image,parameters,images,split,protocol\n");
    for (int i = 0; i < n; i++) {
        const bk_table_row *r = &rows[i];
        fprintf(f, "\"%s\",", r->method);
        num(f, r->psnr, "%.4f");
        fputc(',', f);
        num(f, r->ssim, "%.5f");
        fputc(',', f);
        if (!isnan(r->lpips)) fprintf(f, "%.5f", r->lpips);
        fputc(',', f);
        if (!isnan(r->seconds)) fprintf(f, "%.4f", r->seconds);
        fputc(',', f);
        if (r->params >= 0) fprintf(f, "%lld", (long long)r->params);
        fprintf(f, ",%lld,\"%s\",\"%s\"\n", (long long)r->images, r->split, r->protocol);
    }
}

static void json_str(FILE *f, const char *key, const char *v, bool comma) {
    fprintf(f, "  \"%s\": \"", key);
    for (const char *p = v; *p; p++) {
        if (*p == '"' || *p == '\\') fputc('\\', f);
        fputc(*p, f);
    }
    fprintf(f, "\"%s\n", comma ? "," : "");
}

static void json_num(FILE *f, const char *key, double v) {
    if (isnan(v)) fprintf(f, "  \"%s\": null,\n", key);
    else if (isinf(v)) fprintf(f, "  \"%s\": \"inf\",\n", key);
    else fprintf(f, "  \"%s\": %.17g,\n", key, v);
}

bk_status bk_table_write(const char *dir, const char *base, const bk_table_row *rows, int n) {
    char path[1400];
    const char *ext[3] = {"md", "csv", "json"};
    for (int k = 0; k < (n == 1 ? 3 : 2); k++) {
        snprintf(path, sizeof path, "%s/%s.%s", dir, base, ext[k]);
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        BK_CHECK(f, "out of memory");
        if (k == 0) bk_table_markdown(f, rows, n);
        if (k == 1) bk_table_csv(f, rows, n);
        if (k == 2) {
            const bk_table_row *r = rows;
            fputs("{\n", f);
            json_str(f, "method", r->method, true);
            json_num(f, "psnr", r->psnr);
            json_num(f, "ssim", r->ssim);
            json_num(f, "lpips", r->lpips);
            json_num(f, "seconds_per_image", r->seconds);
            fprintf(f, "  \"parameters\": %lld,\n  \"images\": %lld,\n", (long long)r->params, (long long)r->images);
            json_str(f, "split", r->split, true);
            json_str(f, "protocol", r->protocol, true);
            json_str(f, "lpips_note", r->lpips_note, false);
            fputs("}\n", f);
        }
        fclose(f);
        bk_status st = bk_write_file_atomic(path, text, len); /* a failure leaves the previous table */
        free(text);
        if (st != BK_OK) return st;
    }
    return BK_OK;
}

/* Our own JSON only: "key": value per line. */
static bool get(const char *text, const char *key, char *out, size_t len) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = strstr(text, pat);
    if (!p) return false;
    p += strlen(pat);
    size_t k = 0;
    if (*p == '"') {
        for (p++; *p && *p != '"' && k + 1 < len; p++) {
            if (*p == '\\' && p[1]) p++;
            out[k++] = *p;
        }
    } else {
        while (*p && *p != ',' && *p != '\n' && k + 1 < len) out[k++] = *p++;
    }
    out[k] = '\0';
    return true;
}

static double dbl(const char *s) { return !strcmp(s, "null") ? NAN : !strcmp(s, "inf") ? INFINITY : atof(s); }

bk_status bk_table_read_row(const char *path, bk_table_row *row) {
    FILE *f = fopen(path, "r");
    if (!f) return bk_fail(BK_ERR_IO, "%s: cannot open: %s (run eval with --out first)", path, strerror(errno));
    char text[8192];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    char v[256];
    memset(row, 0, sizeof *row);
    if (!get(text, "method", row->method, sizeof row->method) || !get(text, "psnr", v, sizeof v))
        return bk_fail(BK_ERR_FORMAT, "%s: not a table row written by eval", path);
    row->psnr = dbl(v);
    get(text, "ssim", v, sizeof v), row->ssim = dbl(v);
    get(text, "lpips", v, sizeof v), row->lpips = dbl(v);
    get(text, "seconds_per_image", v, sizeof v), row->seconds = dbl(v);
    get(text, "parameters", v, sizeof v), row->params = atoll(v);
    get(text, "images", v, sizeof v), row->images = atoll(v);
    get(text, "split", row->split, sizeof row->split);
    get(text, "protocol", row->protocol, sizeof row->protocol);
    get(text, "lpips_note", row->lpips_note, sizeof row->lpips_note);
    return BK_OK;
}
