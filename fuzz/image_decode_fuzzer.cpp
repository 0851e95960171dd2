// image_decode_fuzzer.cpp — libFuzzer harness for the image decode entry
// point, imgs::model::preprocess_image (header check, OpenCV decode, orient,
// crop, resize, normalise), linked with OpenCV as imgsearch_model.so is.
//
// The input is the image bytes, as vgg16_features receives them. A crop box
// is applied for some inputs, derived from the last bytes so that a corpus
// file stays a plain image file.
//
// Findings: a crash, an ASan/UBSan report, an exception other than
// imgs::Error escaping (libFuzzer reports the abort), an output outside the
// range ImageNet normalisation allows, and memory: run with
// -malloc_limit_mb / -rss_limit_mb (fuzz/run.sh does) so that a decode that
// allocates far more than the pixels it may decode (a decode bomb) is a
// finding. kMaxPixels stands for imgsearch.max_pixels: small, so that the
// legitimate peak (a few bytes per allowed pixel) stays far below the limit.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "cxx/cxx_error.h"
#include "cxx/guard.hpp"
#include "model/image_core.hpp"
#include "model/model_core.h"

// imgs_interrupt_pending and imgs_injected_fault, the C side's (cxx_error.c,
// a backend file), come from test/support/core_test_support.c: no interrupt,
// no fault unless a test asks for one.

namespace {

constexpr int64_t kMaxPixels = 4'000'000;
// imgsearch.max_decode_memory, half the harness's -malloc_limit_mb=256, so a
// decode that allocates far past its budget is a finding
constexpr int64_t kMaxDecodeMemory = 128LL << 20;

[[noreturn]] void fail(const char *what) {
    std::fprintf(stderr, "\nimage_decode_fuzzer: invariant broken: %s\n", what);
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static std::vector<float> out(IMGS_MODEL_INPUT_FLOATS);
    int32_t box[4];
    const int32_t *boxp = nullptr;
    if (size >= 8 && (data[size - 1] & 7) == 1) {  // about one input in eight
        box[0] = int32_t(data[size - 2]) - 32;
        box[1] = int32_t(data[size - 3]) - 32;
        box[2] = int32_t(data[size - 4]) - 8;
        box[3] = int32_t(data[size - 5]) - 8;
        boxp = box;
    }
    try {
        imgs::model::preprocess_image(data, size, boxp, kMaxPixels, kMaxDecodeMemory, out.data());
    } catch (const imgs::Error &e) {
        if (!e.sqlstate() || std::strlen(e.sqlstate()) != 5)
            fail("an imgs::Error without a SQLSTATE");
        if (!e.what() || !*e.what())
            fail("an imgs::Error without a message");
        return 0;
    }
    // (v / 255 - mean) / std for v in 0..255, mean >= 0.406, std >= 0.224
    const float lo = (0.0f - 0.485f) / 0.229f - 1e-4f, hi = (1.0f - 0.406f) / 0.225f + 1e-4f;
    for (float v : out)
        if (!std::isfinite(v) || v < lo || v > hi)
            fail("a model input outside the normalised range");
    return 0;
}
