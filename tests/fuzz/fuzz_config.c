/* fuzz_config.c — libFuzzer target: the INI configuration loader and --set overrides
 * (train/config.h).
 *
 * An input is used three ways, each on a fresh default configuration:
 *  1. as a file: the raw bytes, NULs included, through bk_config_read on a memory stream
 *     (what bk_config_load does with an open file);
 *  2. as text: up to its first NUL, through bk_config_parse_text (a checkpoint's stored config);
 *  3. as --set arguments: the pieces between NUL bytes (a command-line argument holds any byte
 *     but NUL), each through bk_config_set (a refused one changes nothing).
 * What must hold, or the target aborts (a finding):
 *  - a refusal names its origin: "fuzz.ini:LINE", "fuzz-text:LINE", or "--set ...";
 *  - for an input without NUL, 1 and 2 agree (both refuse, or both give the same config);
 *  - every configuration accepted prints (bk_config_print, what train saves in config.ini and
 *    in checkpoints) as text that parses back to the same configuration: a run resumed from
 *    its checkpoint runs with the values it was started with.
 * Seeds: tests/fuzz/corpus/config/ and configs/; dictionary tests/fuzz/config.dict.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void expect(int cond, const char *what) {
    if (cond) return;
    fprintf(stderr, "fuzz: broken promise: %s (last error: %s)\n", what, bk_last_error());
    abort();
}

/* The configuration as train prints it (no sources), malloc'd. */
static char *printed(const bk_config *c) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    expect(f != NULL, "open_memstream");
    bk_config_print(c, f, false);
    fclose(f);
    return text;
}

/* c printed, read back and printed again must give the same text. Returns the first print. */
static char *expect_round_trip(const bk_config *c) {
    char *once = printed(c);
    bk_config back;
    bk_config_defaults(&back);
    bk_status st = bk_config_parse_text(&back, once, "printed");
    if (st != BK_OK) fprintf(stderr, "fuzz: the printed configuration:\n%s\n", once);
    expect(st == BK_OK, "a printed configuration parses back");
    char *twice = printed(&back);
    if (strcmp(once, twice) != 0) fprintf(stderr, "fuzz: printed:\n%s\nread back:\n%s\n", once, twice);
    expect(strcmp(once, twice) == 0, "a printed configuration reads back as the same one");
    free(twice);
    return once;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* 1. as a file */
    bk_config as_file;
    bk_config_defaults(&as_file);
    bk_status st_file = BK_OK;
    if (size > 0) { /* fmemopen of 0 bytes is an error of its own; an empty file is fine */
        FILE *f = fmemopen((void *)data, size, "r");
        expect(f != NULL, "fmemopen");
        st_file = bk_config_read(&as_file, f, "fuzz.ini");
        fclose(f);
        expect(st_file == BK_OK || strncmp(bk_last_error(), "fuzz.ini:", 9) == 0, "a file error names fuzz.ini:LINE");
    }
    char *file_print = st_file == BK_OK ? expect_round_trip(&as_file) : NULL;

    /* 2. as text */
    char *text = malloc(size + 1);
    expect(text != NULL, "malloc");
    memcpy(text, data, size);
    text[size] = '\0';
    bk_config as_text;
    bk_config_defaults(&as_text);
    bk_status st_text = bk_config_parse_text(&as_text, text, "fuzz-text");
    expect(st_text == BK_OK || strncmp(bk_last_error(), "fuzz-text:", 10) == 0, "a text error names fuzz-text:LINE");
    char *text_print = st_text == BK_OK ? expect_round_trip(&as_text) : NULL;
    if (!memchr(data, 0, size)) {
        expect((st_file == BK_OK) == (st_text == BK_OK), "a file and the same text are refused alike");
        expect(!file_print || strcmp(file_print, text_print) == 0, "a file and the same text give one config");
    }
    free(file_print);
    free(text_print);

    /* 3. as --set arguments (text still holds the input; pieces end at NULs) */
    bk_config as_set;
    bk_config_defaults(&as_set);
    for (size_t at = 0; at < size;) {
        const char *arg = text + at;
        if (bk_config_set(&as_set, arg) != BK_OK)
            expect(strncmp(bk_last_error(), "--set ", 6) == 0, "a --set error names the argument");
        at += strlen(arg) + 1;
    }
    free(expect_round_trip(&as_set));
    free(text);
    return 0;
}
