/* synth — writes the synthetic EBB!-style dataset (see data/synth.h, docs/DATA.md).
 *
 *   synth --out DIR --count N --height H [--seed S] [--first I]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/synth.h"

static void usage(void) {
    fprintf(stderr,
            "usage: synth --out DIR --count N --height H [--seed S] [--first I]\n"
            "  writes DIR/Training/original/{i}.jpg, DIR/Training/bokeh/{i}.jpg and DIR/mask/{i}.png\n"
            "  for i = I .. I+N-1 (I defaults to 0, S to 1); widths vary with aspect 1.33-1.6\n");
    exit(2);
}

static long number(const char *opt, const char *v, long lo, long hi) {
    char *end;
    long n = strtol(v, &end, 10);
    if (end == v || *end || n < lo || n > hi) {
        fprintf(stderr, "synth: %s must be a whole number from %ld to %ld, not \"%s\"\n", opt, lo, hi, v);
        exit(2);
    }
    return n;
}

int main(int argc, char **argv) {
    const char *out = NULL;
    long count = -1, height = -1, first = 0;
    unsigned long long seed = 1;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) usage();
        if (!strcmp(argv[i], "--out")) out = argv[++i];
        else if (!strcmp(argv[i], "--count")) count = number("--count", argv[++i], 1, 1000000);
        else if (!strcmp(argv[i], "--height")) height = number("--height", argv[++i], 32, 8192);
        else if (!strcmp(argv[i], "--first")) first = number("--first", argv[++i], 0, 100000000);
        else if (!strcmp(argv[i], "--seed")) seed = (unsigned long long)number("--seed", argv[++i], 0, 2147483647);
        else usage();
    }
    if (!out || count < 0 || height < 0) usage();
    if (bk_synth_write(out, (int)first, (int)count, (int)height, seed, 1) != BK_OK) {
        fprintf(stderr, "synth: %s\n", bk_last_error());
        return 1;
    }
    printf("synth: wrote %ld pairs with masks to %s\n", count, out);
    return 0;
}
