// image_core.hpp — image bytes to model input (C++ only; see model_core.h).
#pragma once

#include <cstddef>
#include <cstdint>

namespace imgs::model {

// The dimensions an image's header claims, read without decoding it.
struct ImageHeader {
    const char *format;  // "JPEG", "PNG", "WebP", "BMP" or "TIFF"
    int64_t width;
    int64_t height;
    int orientation;     // EXIF orientation, 1 (upright) to 8
};

// Throws imgs::Error (22P03) for empty, unrecognised or truncated headers.
ImageHeader read_image_header(const uint8_t *data, size_t len);

// Decode, orient, crop to box (x, y, w, h; nullptr: whole image), resize
// to 224 x 224 as PIL's bilinear resize does, normalise with ImageNet
// mean/std, write RGB channels first to out[IMGS_MODEL_INPUT_FLOATS].
// Throws imgs::Error.
void preprocess_image(const uint8_t *data, size_t len, const int32_t *box, int64_t max_pixels, float *out);

}  // namespace imgs::model
