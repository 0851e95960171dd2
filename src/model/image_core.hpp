// image_core.hpp — image bytes to model input (C++ only; see model_core.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace imgs::model {

// What an image's container says, read without decoding it.
struct ImageHeader {
    const char *format;  // "JPEG", "PNG", "WebP", "BMP" or "TIFF"
    int64_t width;
    int64_t height;
    int orientation;     // EXIF orientation we apply ourselves, 1 (upright) to 8
    // Bytes the decoder allocates besides the decoded 8-bit BGR image:
    // libjpeg's coefficient buffers, libpng's rows, libwebp's ARGB planes,
    // libtiff's and OpenCV's strip or tile buffers, offset arrays, ...
    // Computed from the header fields that size them, so that a 1x1 image
    // with 16368x16368 tiles is seen for what it costs.
    uint64_t work_bytes = 0;
};

// Throws imgs::Error (22P03) for empty, unrecognised, truncated or
// unsupported images (TIFF: see tiff_header).
ImageHeader read_image_header(const uint8_t *data, size_t len);

// The most memory decoding this image costs, in bytes (header.work_bytes,
// the decoded image, and a copy if it must be turned upright).
uint64_t decode_memory(const ImageHeader &header);

// Decode, orient, crop to box (x, y, w, h; nullptr: whole image), resize
// to 224 x 224 as PIL's bilinear resize does, normalise with ImageNet
// mean/std, write RGB channels first to out[IMGS_MODEL_INPUT_FLOATS].
// Refuses (54000) images over max_pixels, or whose decoding would cost more
// than max_memory bytes, before decoding. Throws imgs::Error.
void preprocess_image(const uint8_t *data, size_t len, const int32_t *box, int64_t max_pixels, int64_t max_memory,
                      float *out);

// The image's size as shown upright, as the model sees it: EXIF
// orientations 5 to 8 swap width and height (TIFF: OpenCV's decoder gives
// the stored size, so the header's orientation is 1 there).
void displayed_size(const ImageHeader &header, int64_t *width, int64_t *height);

// A JPEG (quality 85) of the image turned upright and shrunk (area
// averaging) so that its longer side is at most side pixels; never
// enlarged. Decodes with the limits of preprocess_image (54000), refuses
// side outside 16..2048 (22023). Throws imgs::Error.
std::vector<uint8_t> thumbnail_image(const uint8_t *data, size_t len, int side, int64_t max_pixels,
                                     int64_t max_memory);

}  // namespace imgs::model
