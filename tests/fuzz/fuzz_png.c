/* fuzz_png.c — libFuzzer target: PNG decoding from memory (data/image.h; the checks are in
 * image_target.h). Seeds: tests/fuzz/corpus/png/ (gray, palette, 16-bit, alpha, interlaced,
 * tRNS); dictionary tests/fuzz/png.dict. */
#include "tests/fuzz/image_target.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_image(data, size, "fuzz.png");
    return 0;
}
