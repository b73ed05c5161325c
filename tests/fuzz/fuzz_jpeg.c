/* fuzz_jpeg.c — libFuzzer target: JPEG decoding from memory (data/image.h; the checks are in
 * image_target.h). Seeds: tests/fuzz/corpus/jpeg/ (baseline 4:2:0 and 4:4:4, gray,
 * progressive, restart markers, CMYK); dictionary tests/fuzz/jpeg.dict. */
#include "tests/fuzz/image_target.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_image(data, size, "fuzz.jpg");
    return 0;
}
