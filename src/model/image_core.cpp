// image_core.cpp — image bytes to the model's input tensor: header check,
// OpenCV decode, crop, PIL-compatible bilinear resize, ImageNet normalisation.
#include "model/image_core.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "cxx/guard.hpp"
#include "model/model_core.h"

namespace imgs::model {

namespace {

[[noreturn]] void bad_image(const std::string &message, const std::string &detail = "") {
    throw Error(IMGS_SQLSTATE_INVALID_BINARY, message, detail);
}

uint32_t be16(const uint8_t *p) { return uint32_t(p[0]) << 8 | p[1]; }
uint32_t be32(const uint8_t *p) { return be16(p) << 16 | be16(p + 2); }
uint32_t le16(const uint8_t *p) { return uint32_t(p[1]) << 8 | p[0]; }
uint32_t le24(const uint8_t *p) { return le16(p) | uint32_t(p[2]) << 16; }
uint32_t le32(const uint8_t *p) { return le16(p) | le16(p + 2) << 16; }

// TIFF structure (a TIFF file, or the EXIF block of the other formats):
// the value of a SHORT or LONG tag of the first directory, or -1.
int64_t tiff_tag(const uint8_t *d, size_t n, unsigned want) {
    if (n < 8 || !(std::memcmp(d, "II*\0", 4) == 0 || std::memcmp(d, "MM\0*", 4) == 0))
        return -1;
    bool le = d[0] == 'I';
    auto u16 = [&](size_t at) { return le ? le16(d + at) : be16(d + at); };
    auto u32 = [&](size_t at) { return le ? le32(d + at) : be32(d + at); };
    size_t ifd = u32(4);
    if (ifd > n - 2)
        return -1;
    for (size_t k = 0, count = u16(ifd); k < count && ifd + 2 + 12 * (k + 1) <= n; k++) {
        size_t e = ifd + 2 + 12 * k;
        if (u16(e) == want)
            return u16(e + 2) == 3 ? u16(e + 8) : u16(e + 2) == 4 ? u32(e + 8) : -1;
    }
    return -1;
}

// EXIF orientation (1..8) from an EXIF block, which may start with "Exif\0\0".
int exif_orientation(const uint8_t *d, size_t n) {
    if (n >= 6 && std::memcmp(d, "Exif\0\0", 6) == 0)
        d += 6, n -= 6;
    int64_t o = tiff_tag(d, n, 0x0112);
    return o >= 1 && o <= 8 ? int(o) : 1;
}

ImageHeader png_header(const uint8_t *d, size_t n) {
    if (n < 24 || std::memcmp(d + 12, "IHDR", 4) != 0)
        bad_image("truncated or corrupt PNG image: no IHDR chunk");
    ImageHeader h{"PNG", be32(d + 16), be32(d + 20), 1};
    for (size_t at = 8; at + 8 <= n;) {  // chunks: length, type, data, CRC
        size_t len = be32(d + at);
        if (len > n - at - 8)
            break;
        if (std::memcmp(d + at + 4, "eXIf", 4) == 0)
            h.orientation = exif_orientation(d + at + 8, len);
        if (std::memcmp(d + at + 4, "IDAT", 4) == 0)
            break;
        at += 12 + len;
    }
    return h;
}

// Walks the marker segments up to the frame header (SOFn), then requires an
// end-of-image marker after it: libjpeg decodes a truncated file as a
// gray-filled image with only a warning.
ImageHeader jpeg_header(const uint8_t *d, size_t n) {
    const char *truncated = "truncated JPEG image";
    int orientation = 1;
    size_t i = 2;
    for (;;) {
        if (i >= n)
            bad_image(truncated, "the data ends before the frame header");
        if (d[i] != 0xFF)
            bad_image("corrupt JPEG image: expected a marker");
        while (i < n && d[i] == 0xFF)  // fill bytes
            i++;
        if (i >= n)
            bad_image(truncated, "the data ends before the frame header");
        uint8_t m = d[i++];
        if (m == 0x01 || (m >= 0xD0 && m <= 0xD8))  // markers without a length
            continue;
        if (m == 0xD9 || m == 0xDA)
            bad_image("corrupt JPEG image: no frame header before the image data");
        if (i + 2 > n)
            bad_image(truncated, "the data ends before the frame header");
        size_t len = be16(d + i);
        if (len < 2)
            bad_image("corrupt JPEG image: bad segment length");
        if (m == 0xE1 && len >= 8 && i + len <= n && std::memcmp(d + i + 2, "Exif\0\0", 6) == 0)  // APP1 (or XMP)
            orientation = exif_orientation(d + i + 2, len - 2);
        bool sof = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
        if (sof) {
            if (len < 7 || i + 7 > n)
                bad_image(truncated, "the frame header is cut short");
            ImageHeader h{"JPEG", be16(d + i + 5), be16(d + i + 3), orientation};
            // In entropy-coded data 0xFF is always followed by 0x00 or a
            // restart marker, so FF D9 after the frame header is the end.
            for (size_t j = n - 1; j > i; j--)
                if (d[j] == 0xD9 && d[j - 1] == 0xFF)
                    return h;
            bad_image(truncated, "no end-of-image marker");
        }
        i += len;
    }
}

ImageHeader webp_header(const uint8_t *d, size_t n) {
    const char *truncated = "truncated or corrupt WebP image";
    if (n < 30)
        bad_image(truncated);
    if (std::memcmp(d + 12, "VP8 ", 4) == 0) {  // lossy
        if (d[23] != 0x9D || d[24] != 0x01 || d[25] != 0x2A)
            bad_image(truncated, "bad VP8 start code");
        return {"WebP", le16(d + 26) & 0x3FFF, le16(d + 28) & 0x3FFF, 1};
    }
    if (std::memcmp(d + 12, "VP8L", 4) == 0) {  // lossless
        if (d[20] != 0x2F)
            bad_image(truncated, "bad VP8L signature");
        uint32_t bits = le32(d + 21);
        return {"WebP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, 1};
    }
    if (std::memcmp(d + 12, "VP8X", 4) != 0)
        bad_image(truncated, "unknown WebP chunk");
    // Extended: the canvas size, and maybe an EXIF chunk further on.
    ImageHeader h{"WebP", le24(d + 24) + 1, le24(d + 27) + 1, 1};
    for (size_t at = 12; at + 8 <= n;) {
        size_t len = le32(d + at + 4);
        if (len > n - at - 8)
            break;
        if (std::memcmp(d + at, "EXIF", 4) == 0)
            h.orientation = exif_orientation(d + at + 8, len);
        at += 8 + len + (len & 1);
    }
    return h;
}

ImageHeader bmp_header(const uint8_t *d, size_t n) {
    if (n < 26)
        bad_image("truncated BMP image");
    uint32_t info_size = le32(d + 14);
    if (info_size == 12)  // OS/2 BITMAPCOREHEADER
        return {"BMP", le16(d + 18), le16(d + 20), 1};
    int32_t w = int32_t(le32(d + 18)), h = int32_t(le32(d + 22));  // h < 0: top-down rows
    return {"BMP", w, std::abs(int64_t(h)), 1};
}

// Orientation 1: OpenCV's TIFF decoder applies the Orientation tag itself.
ImageHeader tiff_header(const uint8_t *d, size_t n) {
    return {"TIFF", tiff_tag(d, n, 256), tiff_tag(d, n, 257), 1};
}

// Turns a decoded image upright as PIL's ImageOps.exif_transpose does.
cv::Mat orient(const cv::Mat &img, int orientation) {
    cv::Mat out;
    switch (orientation) {
        case 2: cv::flip(img, out, 1); return out;
        case 3: cv::rotate(img, out, cv::ROTATE_180); return out;
        case 4: cv::flip(img, out, 0); return out;
        case 5: cv::transpose(img, out); return out;
        case 6: cv::rotate(img, out, cv::ROTATE_90_CLOCKWISE); return out;
        case 7: cv::transpose(img, out); cv::flip(out, out, -1); return out;
        case 8: cv::rotate(img, out, cv::ROTATE_90_COUNTERCLOCKWISE); return out;
        default: return img;
    }
}

// Pillow's resampling coefficients for its BILINEAR filter (a triangle
// widened by the scale when shrinking, so that shrinking averages):
// out[i] = sum_k in[first[i] + k] * weight[i * ksize + k].
struct Taps {
    int ksize;
    std::vector<int> first, count;
    std::vector<float> weight;
};

Taps bilinear_taps(int in_size, int out_size) {
    double scale = double(in_size) / out_size;
    double filterscale = std::max(scale, 1.0);
    double support = filterscale;  // the triangle's support is 1
    Taps t;
    t.ksize = int(std::ceil(support)) * 2 + 1;
    t.first.resize(out_size);
    t.count.resize(out_size);
    t.weight.assign(size_t(out_size) * t.ksize, 0.0f);
    for (int i = 0; i < out_size; i++) {
        double center = (i + 0.5) * scale;
        int lo = std::max(int(center - support + 0.5), 0);
        int hi = std::min(int(center + support + 0.5), in_size);
        double sum = 0;
        std::vector<double> w(hi - lo);
        for (int x = lo; x < hi; x++) {
            double u = std::abs((x - center + 0.5) / filterscale);
            w[x - lo] = u < 1.0 ? 1.0 - u : 0.0;
            sum += w[x - lo];
        }
        t.first[i] = lo;
        t.count[i] = hi - lo;
        for (int k = 0; k < hi - lo; k++)
            t.weight[size_t(i) * t.ksize + k] = float(sum > 0 ? w[k] / sum : 0);
    }
    return t;
}

uint8_t round_u8(float v) { return uint8_t(std::clamp(std::floor(v + 0.5f), 0.0f, 255.0f)); }

// Resizes a BGR image to IMGS_MODEL_SIDE square like PIL's
// Image.resize(BILINEAR): horizontal pass, then vertical, each rounded to
// 8 bits. Then writes (v / 255 - mean) / std as RGB planes.
void resize_normalise(const cv::Mat &img, float *out) {
    constexpr int S = IMGS_MODEL_SIDE;
    static const float mean[3] = {0.485f, 0.456f, 0.406f}, stdev[3] = {0.229f, 0.224f, 0.225f};
    Taps h = bilinear_taps(img.cols, S), v = bilinear_taps(img.rows, S);
    int row0 = v.first[0], rows = v.first[S - 1] + v.count[S - 1] - row0;

    std::vector<uint8_t> tmp(size_t(rows) * S * 3);  // horizontally resized rows
    for (int r = 0; r < rows; r++) {
        const uint8_t *src = img.ptr<uint8_t>(row0 + r);
        uint8_t *dst = &tmp[size_t(r) * S * 3];
        for (int i = 0; i < S; i++) {
            const float *w = &h.weight[size_t(i) * h.ksize];
            float acc[3] = {0, 0, 0};
            for (int k = 0; k < h.count[i]; k++)
                for (int c = 0; c < 3; c++)
                    acc[c] += src[(h.first[i] + k) * 3 + c] * w[k];
            for (int c = 0; c < 3; c++)
                dst[i * 3 + c] = round_u8(acc[c]);
        }
    }
    for (int j = 0; j < S; j++) {
        const float *w = &v.weight[size_t(j) * v.ksize];
        for (int i = 0; i < S * 3; i++) {
            float acc = 0;
            for (int k = 0; k < v.count[j]; k++)
                acc += tmp[size_t(v.first[j] - row0 + k) * S * 3 + i] * w[k];
            int rgb = 2 - i % 3;  // OpenCV's pixels are BGR
            out[(size_t(rgb) * S + j) * S + i / 3] = (round_u8(acc) / 255.0f - mean[rgb]) / stdev[rgb];
        }
    }
}

}  // namespace

ImageHeader read_image_header(const uint8_t *d, size_t n) {
    if (n == 0)
        bad_image("image is empty");
    ImageHeader h;
    if (n >= 8 && std::memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0)
        h = png_header(d, n);
    else if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF)
        h = jpeg_header(d, n);
    else if (n >= 12 && std::memcmp(d, "RIFF", 4) == 0 && std::memcmp(d + 8, "WEBP", 4) == 0)
        h = webp_header(d, n);
    else if (n >= 2 && d[0] == 'B' && d[1] == 'M')
        h = bmp_header(d, n);
    else if (n >= 4 && (std::memcmp(d, "II*\0", 4) == 0 || std::memcmp(d, "MM\0*", 4) == 0))
        h = tiff_header(d, n);
    else
        bad_image("data is not an image in a supported format", "imgsearch reads JPEG, PNG, WebP, BMP and TIFF.");
    if (h.width <= 0 || h.height <= 0)
        bad_image(std::string("corrupt ") + h.format + " image: its header gives no size");
    return h;
}

void preprocess_image(const uint8_t *data, size_t len, const int32_t *box, int64_t max_pixels, float *out) {
    // OpenCV runs on the calling thread: no pool of its own (TBB) whose
    // threads PostgreSQL's signals could reach.
    static const bool sequential = (cv::setNumThreads(0), true);
    (void) sequential;
    ImageHeader h = read_image_header(data, len);
    if (h.width > max_pixels || h.height > max_pixels || h.width * h.height > max_pixels)  // no overflow
        throw Error(IMGS_SQLSTATE_PROGRAM_LIMIT,
                    std::string(h.format) + " image of " + std::to_string(h.width) + "x" + std::to_string(h.height) +
                        " pixels exceeds imgsearch.max_pixels (" + std::to_string(max_pixels) + ")",
                    "The size is read from the image header; nothing was decoded.");

    // 8-bit BGR, gray replicated, alpha dropped (as PIL's convert("RGB")).
    // OpenCV honours EXIF orientation for some formats only (not WebP's):
    // we apply it ourselves, but for TIFF (see tiff_header).
    cv::Mat img;
    try {
        img = cv::imdecode(cv::Mat(1, int(len), CV_8U, const_cast<uint8_t *>(data)),
                           cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
    } catch (const cv::Exception &e) {
        bad_image(std::string("could not decode ") + h.format + " image", e.err);
    }
    if (img.empty() || img.type() != CV_8UC3)
        bad_image(std::string("could not decode ") + h.format + " image: truncated or corrupt");
    if (int64_t(img.rows) * img.cols > max_pixels)  // the header lied
        throw Error(IMGS_SQLSTATE_PROGRAM_LIMIT, "decoded image exceeds imgsearch.max_pixels");
    img = orient(img, h.orientation);

    if (box) {
        int64_t x = box[0], y = box[1], w = box[2], hgt = box[3];
        if (w <= 0 || hgt <= 0)
            throw Error(IMGS_SQLSTATE_INVALID_PARAMETER, "box width and height must be positive",
                        "box is {x, y, width, height} in pixels; got width " + std::to_string(w) + ", height " +
                            std::to_string(hgt) + ".");
        int64_t x0 = std::max<int64_t>(x, 0), y0 = std::max<int64_t>(y, 0);
        int64_t x1 = std::min<int64_t>(x + w, img.cols), y1 = std::min<int64_t>(y + hgt, img.rows);
        if (x1 <= x0 || y1 <= y0)
            throw Error(IMGS_SQLSTATE_INVALID_PARAMETER, "box lies outside the image",
                        "box {" + std::to_string(x) + "," + std::to_string(y) + "," + std::to_string(w) + "," +
                            std::to_string(hgt) + "} does not overlap the " + std::to_string(img.cols) + "x" +
                            std::to_string(img.rows) + " image.");
        img = img(cv::Rect(int(x0), int(y0), int(x1 - x0), int(y1 - y0)));
    }
    resize_normalise(img, out);
}

}  // namespace imgs::model
