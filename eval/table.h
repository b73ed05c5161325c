/* table.h — result tables in the papers' layout: one row per method with PSNR, SSIM, LPIPS,
 * CPU seconds per image and parameters, written as markdown, CSV and JSON, with a footer that
 * states how the numbers were computed (metric settings, split, image count, prediction size)
 * and why a column is n/a.
 */
#ifndef BK_TABLE_H
#define BK_TABLE_H

#include <stdint.h>
#include <stdio.h>

#include "core/error.h"

typedef struct bk_table_row {
    char method[128];       /* seconds: median over images */
    double psnr, ssim, lpips;   /* lpips NaN: n/a */
    double seconds;             /* per image; NaN: n/a */
    int64_t params;             /* < 0: n/a */
    int64_t images;
    char split[160];            /* the evaluation set */
    char protocol[200];         /* how predictions were made */
    char lpips_note[200];       /* why LPIPS is n/a */
} bk_table_row;

/* Markdown table with the footer. */
void bk_table_markdown(FILE *f, const bk_table_row *rows, int n);
void bk_table_csv(FILE *f, const bk_table_row *rows, int n);
/* Writes DIR/<base>.md, .csv and, for a single row, .json, each replaced atomically (a failed
 * write names the file and leaves its previous content). */
bk_status bk_table_write(const char *dir, const char *base, const bk_table_row *rows, int n);
/* Reads a row written as DIR/table.json. */
bk_status bk_table_read_row(const char *path, bk_table_row *row);

#endif
