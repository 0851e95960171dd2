// image_core.cpp — image bytes to the model's input tensor: header check,
// OpenCV decode, crop, PIL-compatible bilinear resize, ImageNet normalisation.
#include "model/image_core.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <iostream>

#include <opencv2/core.hpp>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

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

constexpr uint64_t MiB = uint64_t(1) << 20;

uint64_t div_up(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

// Chunks: length, type, data, CRC, from IHDR to IEND. libpng refuses a
// truncated IDAT stream, but would accept a file cut after its last IDAT.
ImageHeader png_header(const uint8_t *d, size_t n) {
    const char *truncated = "truncated or corrupt PNG image";
    if (n < 33 || std::memcmp(d + 12, "IHDR", 4) != 0)
        bad_image(truncated, "no IHDR chunk");
    ImageHeader h{"PNG", be32(d + 16), be32(d + 20), 1};
    bool idat = false, iend = false;
    for (size_t at = 8; at + 12 <= n && !iend;) {
        size_t len = be32(d + at);
        if (len > n - at - 12)
            bad_image(truncated, "a chunk runs past the end of the data");
        const uint8_t *type = d + at + 4;
        if (std::memcmp(type, "eXIf", 4) == 0 && !idat)
            h.orientation = exif_orientation(d + at + 8, len);
        idat |= std::memcmp(type, "IDAT", 4) == 0;
        iend = std::memcmp(type, "IEND", 4) == 0;
        at += 12 + len;
    }
    if (!idat || !iend)
        bad_image(truncated, idat ? "no IEND chunk" : "no IDAT chunk");
    // libpng: two rows of up to 8 bytes a pixel after its transformations,
    // zlib and chunk buffers (limited by libpng to 8 MB); OpenCV: a row
    // pointer per row.
    h.work_bytes = 2 * (uint64_t(h.width) * 8 + 1) + uint64_t(h.height) * 8 + 10 * MiB;
    return h;
}

// Walks the marker segments to the frame header (SOFn) and the first scan
// (SOS), then requires an end-of-image marker after them: libjpeg decodes
// a truncated file as a gray-filled image with only a warning.
ImageHeader jpeg_header(const uint8_t *d, size_t n) {
    const char *truncated = "truncated JPEG image";
    int orientation = 1;
    ImageHeader h{"JPEG", 0, 0, 1};
    bool have_frame = false, progressive = false;
    int components = 0, hmax = 1, vmax = 1, hs[256], vs[256];
    size_t i = 2;
    for (;;) {
        if (i >= n)
            bad_image(truncated, "the data ends before the image data");
        if (d[i] != 0xFF)
            bad_image("corrupt JPEG image: expected a marker");
        while (i < n && d[i] == 0xFF)  // fill bytes
            i++;
        if (i >= n)
            bad_image(truncated, "the data ends before the image data");
        uint8_t m = d[i++];
        if (m == 0x01 || (m >= 0xD0 && m <= 0xD8))  // markers without a length
            continue;
        if (m == 0xD9)
            bad_image("corrupt JPEG image: no image data");
        if (i + 2 > n)
            bad_image(truncated, "the data ends before the image data");
        size_t len = be16(d + i);
        if (len < 2 || i + len > n)
            bad_image(truncated, "a marker segment runs past the end of the data");
        if (m == 0xE1 && len >= 8 && std::memcmp(d + i + 2, "Exif\0\0", 6) == 0)  // APP1 (or XMP)
            orientation = exif_orientation(d + i + 2, len - 2);
        bool sof = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
        if (sof && !have_frame) {
            if (len < 8 || size_t(d[i + 7]) * 3 + 8 > len || d[i + 7] == 0)
                bad_image("corrupt JPEG image: bad frame header");
            h = {"JPEG", be16(d + i + 5), be16(d + i + 3), orientation};
            progressive = (m & 0x03) == 0x02;  // SOF2, SOF6, SOF10, SOF14
            components = d[i + 7];
            for (int c = 0; c < components; c++) {
                uint8_t f = d[i + 9 + 3 * c];
                hs[c] = std::max(1, f >> 4), vs[c] = std::max(1, f & 15);
                hmax = std::max(hmax, hs[c]), vmax = std::max(vmax, vs[c]);
            }
            have_frame = true;
        }
        if (m == 0xDA) {  // the first scan
            if (!have_frame)
                bad_image("corrupt JPEG image: no frame header before the image data");
            bool all_in_first_scan = len >= 3 && d[i + 2] == components;
            // In entropy-coded data 0xFF is always followed by 0x00 or a
            // restart marker, so FF D9 after the scan header is the end.
            bool eoi = false;
            for (size_t j = n - 1; j > i + len && !eoi; j--)
                eoi = d[j] == 0xD9 && d[j - 1] == 0xFF;
            if (!eoi)
                bad_image(truncated, "no end-of-image marker");
            // libjpeg keeps every DCT coefficient (2 bytes) of every
            // component when the image comes in several scans; otherwise
            // rows of MCUs. Saved markers are at most the data itself.
            uint64_t w = uint64_t(std::max<int64_t>(h.width, 1)), ht = uint64_t(std::max<int64_t>(h.height, 1));
            uint64_t coefs = 0, rows = 0;
            for (int c = 0; c < components; c++) {
                uint64_t bw = div_up(div_up(w * hs[c], hmax), 8 * hs[c]) * hs[c] + hs[c];
                uint64_t bh = div_up(div_up(ht * vs[c], vmax), 8 * vs[c]) * vs[c] + vs[c];
                coefs += bw * bh * 64 * 2;
                rows += bw * 8 * (vmax * 8 * 3) * 2;
            }
            h.work_bytes = (progressive || !all_in_first_scan ? coefs : 0) + rows + n + 4 * MiB;
            return h;
        }
        i += len;
    }
}

ImageHeader webp_header(const uint8_t *d, size_t n) {
    const char *truncated = "truncated or corrupt WebP image";
    if (n < 30)
        bad_image(truncated);
    uint64_t riff = uint64_t(le32(d + 4)) + 8;
    if (riff > n)
        bad_image(truncated, "the data ends before the RIFF chunk does");
    n = size_t(riff);  // anything after the RIFF chunk is not the image's
    ImageHeader h{"WebP", 0, 0, 1};
    bool lossless = false, alpha = false;
    if (std::memcmp(d + 12, "VP8 ", 4) == 0) {  // lossy
        if (d[23] != 0x9D || d[24] != 0x01 || d[25] != 0x2A)
            bad_image(truncated, "bad VP8 start code");
        h = {"WebP", le16(d + 26) & 0x3FFF, le16(d + 28) & 0x3FFF, 1};
    } else if (std::memcmp(d + 12, "VP8L", 4) == 0) {  // lossless
        if (d[20] != 0x2F)
            bad_image(truncated, "bad VP8L signature");
        uint32_t bits = le32(d + 21);
        h = {"WebP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, 1};
        lossless = true;
        alpha = (bits >> 28) & 1;
    } else if (std::memcmp(d + 12, "VP8X", 4) == 0) {
        // Extended: the canvas size, flags, then chunks (maybe EXIF).
        if (d[20] & 0x02)
            bad_image("animated WebP images are not supported");
        alpha = d[20] & 0x10;
        h = {"WebP", le24(d + 24) + 1, le24(d + 27) + 1, 1};
    } else {
        bad_image(truncated, "unknown WebP chunk");
    }
    for (size_t at = 12; at < n;) {
        if (at + 8 > n)
            bad_image(truncated, "a chunk runs past the end of the data");
        size_t len = le32(d + at + 4);
        if (len > n - at - 8)
            bad_image(truncated, "a chunk runs past the end of the data");
        if (std::memcmp(d + at, "EXIF", 4) == 0)
            h.orientation = exif_orientation(d + at + 8, len);
        lossless |= std::memcmp(d + at, "VP8L", 4) == 0;
        at += 8 + len + (len & 1);
    }
    // libwebp: lossless decodes to 32-bit ARGB (and its transforms), with
    // Huffman tables filled for each group of codes the data holds (at most
    // one per 4x4 tile or 1000, each read from at least 20 bits of data,
    // about 6 KB filled); lossy keeps a few rows and an alpha plane. OpenCV
    // decodes an image with alpha to BGRA first, then converts.
    uint64_t pixels = uint64_t(h.width) * uint64_t(h.height);
    uint64_t groups = std::min<uint64_t>({65536, uint64_t(n) * 8 / 20 + 1, pixels / 16 + 1000});
    h.work_bytes = (lossless ? 8 * pixels + groups * 6 * 1024 + 64 * uint64_t(n) : pixels) +
                   (alpha ? 4 * pixels : 0) + uint64_t(h.width) * 64 + 4 * MiB;
    return h;
}

ImageHeader bmp_header(const uint8_t *d, size_t n) {
    if (n < 30)
        bad_image("truncated BMP image");
    uint32_t info_size = le32(d + 14), offset = le32(d + 10);
    ImageHeader h;
    uint32_t bpp, compression = 0;
    if (info_size == 12) {  // OS/2 BITMAPCOREHEADER
        h = {"BMP", le16(d + 18), le16(d + 20), 1};
        bpp = le16(d + 24);
    } else {
        if (n < 34)
            bad_image("truncated BMP image");
        int32_t w = int32_t(le32(d + 18)), ht = int32_t(le32(d + 22));  // ht < 0: top-down rows
        h = {"BMP", w, std::abs(int64_t(ht)), 1};
        bpp = le16(d + 28);
        compression = le32(d + 30);
    }
    // Uncompressed rows (BI_RGB, BI_BITFIELDS) are 4-byte aligned; the last
    // row may lack its padding.
    if ((compression == 0 || compression == 3) && h.width > 0 && h.height > 0 && bpp > 0 && bpp <= 32) {
        uint64_t row = uint64_t(h.width) * bpp, stride = div_up(row, 32) * 4;
        if (uint64_t(offset) + stride * uint64_t(h.height - 1) + div_up(row, 8) > n)
            bad_image("truncated BMP image", "the pixel data ends early");
    }
    h.work_bytes = 2 * (uint64_t(h.width) * 4 + 64) + MiB;  // OpenCV's row buffers
    return h;
}

// TIFF: OpenCV (through libtiff's RGBA interface) allocates a 32-bit RGBA
// buffer of one whole tile or strip, and libtiff one of the tile or strip
// as stored, whatever size the image is. So the first directory is read in
// full, and only what those buffers can be computed for is accepted:
// uncompressed, LZW, Deflate or PackBits; 1 to 16 bits and 1 to 4 samples
// per pixel; gray, RGB, palette or CMYK. Every strip or tile must lie in
// the data. Orientation 1: OpenCV applies the Orientation tag itself.
ImageHeader tiff_header(const uint8_t *d, size_t n) {
    const char *corrupt = "truncated or corrupt TIFF image";
    bool le = d[0] == 'I';
    auto u16 = [&](size_t at) { return le ? le16(d + at) : be16(d + at); };
    auto u32 = [&](size_t at) { return le ? le32(d + at) : be32(d + at); };
    size_t ifd = n >= 8 ? u32(4) : n;
    if (ifd < 8 || ifd > n - 2)
        bad_image(corrupt, "the first directory lies outside the data");
    size_t count = u16(ifd);
    if (count > (n - ifd - 2) / 12)
        bad_image(corrupt, "the first directory runs past the end of the data");

    // A tag's values: type 3 (SHORT) or 4 (LONG), inline when they fit in 4 bytes.
    struct Tag {
        size_t count = 0, at = 0;
        unsigned size = 0;
    };
    uint64_t value[13] = {};  // by slot()
    bool present[13] = {};
    auto slot = [&](unsigned tag) -> int {
        switch (tag) {
            case 256: return 0;   // ImageWidth
            case 257: return 1;   // ImageLength
            case 258: return 2;   // BitsPerSample
            case 259: return 3;   // Compression
            case 262: return 4;   // PhotometricInterpretation
            case 277: return 5;   // SamplesPerPixel
            case 278: return 6;   // RowsPerStrip
            case 284: return 7;   // PlanarConfiguration
            case 322: return 8;   // TileWidth
            case 323: return 9;   // TileLength
            case 273: case 324: return 10;  // StripOffsets, TileOffsets
            case 279: case 325: return 11;  // StripByteCounts, TileByteCounts
            case 274: return 12;  // Orientation
            default: return -1;
        }
    };
    Tag offsets, counts;
    bool tiled = false;
    for (size_t k = 0; k < count; k++) {
        size_t e = ifd + 2 + 12 * k;
        int s = slot(u16(e));
        if (s < 0)
            continue;
        unsigned type = u16(e + 2);
        if (type != 3 && type != 4)
            bad_image(corrupt, "tag " + std::to_string(u16(e)) + " has an unexpected type");
        Tag t{u32(e + 4), e + 8, type == 3 ? 2u : 4u};
        if (t.count == 0)
            bad_image(corrupt, "tag " + std::to_string(u16(e)) + " has no value");
        if (t.count * t.size > 4) {
            t.at = u32(e + 8);
            if (t.at > n || t.count > (n - t.at) / t.size)
                bad_image(corrupt, "the values of tag " + std::to_string(u16(e)) + " lie outside the data");
        }
        auto get = [&](const Tag &tg, size_t i) -> uint64_t { return tg.size == 2 ? u16(tg.at + 2 * i) : u32(tg.at + 4 * i); };
        if (s == 10 || s == 11) {
            (s == 10 ? offsets : counts) = t;
            tiled |= u16(e) >= 324;
        } else if (s == 2) {  // one value per sample: the largest
            for (size_t i = 0; i < t.count; i++)
                value[s] = std::max(value[s], get(t, i));
        } else {
            value[s] = get(t, 0);
        }
        present[s] = true;
    }
    int64_t w = value[0], ht = value[1];
    ImageHeader h{"TIFF", w, ht, 1};
    if (w <= 0 || ht <= 0)
        return h;  // refused by the caller
    uint64_t bps = present[2] ? value[2] : 1, spp = present[5] ? value[5] : 1;
    uint64_t compression = present[3] ? value[3] : 1, photometric = value[4], planar = present[7] ? value[7] : 1;
    auto unsupported = [&](const std::string &what) {
        bad_image("unsupported TIFF image: " + what,
                  "imgsearch reads TIFF images that are uncompressed, LZW, Deflate or PackBits compressed, gray, "
                  "RGB, palette or CMYK, with 1 to 16 bits and 1 to 4 samples per pixel.");
    };
    if (!(compression == 1 || compression == 5 || compression == 8 || compression == 32946 || compression == 32773))
        unsupported("compression " + std::to_string(compression));
    if (!present[4] || !(photometric <= 3 || photometric == 5))
        unsupported("photometric interpretation " + (present[4] ? std::to_string(photometric) : std::string("missing")));
    if (!(bps == 1 || bps == 2 || bps == 4 || bps == 8 || bps == 16))
        unsupported(std::to_string(bps) + " bits per sample");
    if (spp < 1 || spp > 4)
        unsupported(std::to_string(spp) + " samples per pixel");
    if (planar != 1 && planar != 2)
        bad_image(corrupt, "bad planar configuration");
    if (!offsets.count || !counts.count || offsets.count != counts.count)
        bad_image(corrupt, "no strip or tile offsets and byte counts");

    // One stored tile or strip: its size, and how many the image has.
    uint64_t cw, ch;
    if (tiled) {
        cw = value[8], ch = value[9];
        if (!present[8] || !present[9] || cw == 0 || ch == 0)
            bad_image(corrupt, "no tile size");
    } else {
        uint64_t rps = present[6] ? value[6] : 0;
        cw = uint64_t(w), ch = rps == 0 || rps >= 0xFFFFFFFFu ? uint64_t(ht) : rps;
    }
    uint64_t planes = planar == 2 ? spp : 1;
    uint64_t chunks = div_up(uint64_t(w), cw) * div_up(uint64_t(ht), ch) * planes;
    for (size_t i = 0; i < offsets.count; i++) {
        uint64_t at = offsets.size == 2 ? u16(offsets.at + 2 * i) : u32(offsets.at + 4 * i);
        uint64_t len = counts.size == 2 ? u16(counts.at + 2 * i) : u32(counts.at + 4 * i);
        if (at > n || len > n - at)
            bad_image("truncated TIFF image", "strip or tile " + std::to_string(i) + " lies outside the data");
    }

    // Directories after the first (pages): libtiff counts them all. Each
    // directory ends with the offset of the next, which a truncated file lacks.
    uint64_t pages = 1;
    size_t first_end = ifd + 2 + 12 * count;
    for (size_t next = first_end + 4 <= n ? u32(first_end) : 0; next != 0 && pages < 65536; pages++) {
        if (next < 8 || next > n - 2 || u16(next) > (n - next - 6) / 12)
            break;  // libtiff stops there too
        next = u32(next + 2 + 12 * u16(next));
    }
    uint64_t rows = tiled ? ch : std::min<uint64_t>(ch, ht);
    h.work_bytes = cw * ch * 4                                       // OpenCV's RGBA tile or strip
                   + div_up(cw * spp * bps, 8) * rows               // libtiff's
                   + chunks * 16 + pages * 256 + 4 * MiB;            // offsets, directories, codecs
    if (present[12] && value[12] > 1)
        h.work_bytes += uint64_t(w) * uint64_t(ht) * 3;  // OpenCV turns it upright in a copy
    return h;
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

// Sends fd 2 to an anonymous in-memory file for its lifetime; finish()
// restores it and returns what was written (at most 64 KB of it). The
// backend's only thread that writes is this one.
class StderrCapture {
public:
    StderrCapture() {
        std::fflush(stderr);
        saved_ = dup(2);
        file_ = memfd_create("imgsearch-decode", MFD_CLOEXEC);
        if (file_ < 0)
            file_ = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (saved_ < 0 || file_ < 0 || dup2(file_, 2) < 0) {
            int e = errno;
            for (int fd : {saved_, file_})
                if (fd >= 0)
                    close(fd);
            throw Error(IMGS_SQLSTATE_SYSTEM_ERROR, std::string("could not redirect stderr: ") + std::strerror(e));
        }
    }
    std::string finish() {
        std::string text;
        if (restore()) {
            char buf[65536];
            ssize_t got = pread(file_, buf, sizeof(buf), 0);
            if (got > 0)
                text.assign(buf, size_t(got));
        }
        return text;
    }
    ~StderrCapture() {
        restore();
        if (file_ >= 0)
            close(file_);
    }
    StderrCapture(const StderrCapture &) = delete;
    StderrCapture &operator=(const StderrCapture &) = delete;

private:
    bool restore() {
        if (saved_ < 0)
            return false;
        std::fflush(stderr);
        std::cerr.flush();
        while (dup2(saved_, 2) < 0 && errno == EINTR) {
        }
        close(saved_);
        saved_ = -1;
        return true;
    }
    int saved_ = -1, file_ = -1;
};

// The first non-empty line of a decoder's output, printable ASCII only,
// at most 200 characters.
std::string first_line(const std::string &text) {
    std::string line;
    for (char c : text) {
        if (c == '\n' || c == '\r') {
            if (!line.empty())
                break;
            continue;
        }
        if (line.size() < 200)
            line += c >= 0x20 && c < 0x7F ? c : '?';
    }
    return line;
}

uint8_t round_u8(float v) { return uint8_t(std::clamp(std::floor(v + 0.5f), 0.0f, 255.0f)); }

// The multiply-adds of resize_normalise for a cols x rows image.
uint64_t resize_work(int cols, int rows) {
    auto taps = [](uint64_t in) {  // per output pixel: about twice the scale, at least 2
        return std::max<uint64_t>(2, 2 * in / IMGS_MODEL_SIDE + 1);
    };
    uint64_t S = IMGS_MODEL_SIDE;
    return 3 * S * (uint64_t(rows) * taps(cols) + S * taps(rows));
}

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

uint64_t decode_memory(const ImageHeader &h) {
    uint64_t image = uint64_t(h.width) * uint64_t(h.height) * 3;  // 8-bit BGR
    return image * (h.orientation > 1 ? 2 : 1) + h.work_bytes;
}

namespace {

// Header check, limits, decode and orientation: the image as the model and
// the thumbnails see it, 8-bit BGR.
cv::Mat decode_upright(const uint8_t *data, size_t len, int64_t max_pixels, int64_t max_memory) {
    // OpenCV runs on the calling thread: no pool of its own (TBB) whose
    // threads PostgreSQL's signals could reach. Its log stays quiet (it
    // would write libtiff's messages to stderr).
    static const bool setup = (cv::setNumThreads(0),
                               cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT), true);
    (void) setup;
    ImageHeader h = read_image_header(data, len);
    if (h.width > max_pixels || h.height > max_pixels || h.width * h.height > max_pixels)  // no overflow
        throw Error(IMGS_SQLSTATE_PROGRAM_LIMIT,
                    std::string(h.format) + " image of " + std::to_string(h.width) + "x" + std::to_string(h.height) +
                        " pixels exceeds imgsearch.max_pixels (" + std::to_string(max_pixels) + ")",
                    "The size is read from the image header; nothing was decoded.");
    uint64_t need = decode_memory(h);
    if (need > uint64_t(max_memory)) {
        auto mb = [](uint64_t b) { return std::to_string((b + (1 << 20) - 1) >> 20) + " MB"; };
        throw Error(IMGS_SQLSTATE_PROGRAM_LIMIT,
                    "decoding this " + std::string(h.format) + " image would need " + mb(need) +
                        ", over imgsearch.max_decode_memory (" + mb(uint64_t(max_memory)) + ")",
                    "The " + std::to_string(h.width) + "x" + std::to_string(h.height) +
                        " image's container sizes the decoder's buffers; nothing was decoded.");
    }

    // 8-bit BGR, gray replicated, alpha dropped (as PIL's convert("RGB")).
    // OpenCV honours EXIF orientation for some formats only (not WebP's):
    // we apply it ourselves, but for TIFF (see tiff_header).
    // libjpeg, libpng and OpenCV write what they think of the data to
    // stderr, the server log: it goes to a buffer instead, and its first
    // line becomes the error's detail.
    cv::Mat img;
    std::string said;
    try {
        StderrCapture capture;
        try {
            img = cv::imdecode(cv::Mat(1, int(len), CV_8U, const_cast<uint8_t *>(data)),
                               cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
        } catch (const cv::Exception &e) {
            said = e.err;
        }
        std::string text = capture.finish();
        if (said.empty())
            said = first_line(text);
    } catch (const std::bad_alloc &) {
        throw Error(IMGS_SQLSTATE_OUT_OF_MEMORY, std::string("out of memory decoding ") + h.format + " image");
    }
    if (img.empty() || img.type() != CV_8UC3)
        bad_image(std::string("could not decode ") + h.format + " image: truncated or corrupt", said);
    if (int64_t(img.rows) * img.cols > max_pixels)  // the header lied
        throw Error(IMGS_SQLSTATE_PROGRAM_LIMIT, "decoded image exceeds imgsearch.max_pixels");
    return orient(img, h.orientation);
}

}  // namespace

void displayed_size(const ImageHeader &h, int64_t *width, int64_t *height) {
    bool swap = h.orientation >= 5 && h.orientation <= 8;
    *width = swap ? h.height : h.width;
    *height = swap ? h.width : h.height;
}

std::vector<uint8_t> thumbnail_image(const uint8_t *data, size_t len, int side, int64_t max_pixels,
                                     int64_t max_memory) {
    if (side < 16 || side > 2048)
        throw Error(IMGS_SQLSTATE_INVALID_PARAMETER, "thumbnail side must be between 16 and 2048, not " +
                                                         std::to_string(side));
    cv::Mat img = decode_upright(data, len, max_pixels, max_memory);
    int longer = std::max(img.cols, img.rows);
    if (longer > side) {
        double scale = double(side) / longer;
        int w = std::clamp(int(std::lround(img.cols * scale)), 1, side);
        int h = std::clamp(int(std::lround(img.rows * scale)), 1, side);
        cv::Mat small;
        cv::resize(img, small, cv::Size(w, h), 0, 0, cv::INTER_AREA);
        img = small;
    }
    std::vector<uint8_t> out;
    if (!cv::imencode(".jpg", img, out, {cv::IMWRITE_JPEG_QUALITY, 85}) || out.empty())
        throw Error(IMGS_SQLSTATE_INTERNAL_ERROR, "could not encode the thumbnail as JPEG");
    return out;
}

void preprocess_image(const uint8_t *data, size_t len, const int32_t *box, int64_t max_pixels, int64_t max_memory,
                      float *out) {
    cv::Mat img = decode_upright(data, len, max_pixels, max_memory);

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
    // The resize's work grows with the rows times the output width, and the
    // output height times the rows each output row averages: about 12
    // multiply-adds a pixel for an image of usual proportions (a 7000x7000
    // photo: 305 M), but far more for one much longer than wide (a 6 KB PNG
    // of 1x900000 pixels: 2.4 G, seconds of CPU that nothing can cancel).
    // The bound: 100 M plus 16 a pixel.
    uint64_t work = resize_work(img.cols, img.rows);
    uint64_t max_work = 100'000'000 + 16 * uint64_t(img.cols) * uint64_t(img.rows);
    if (work > max_work)
        throw Error(IMGS_SQLSTATE_PROGRAM_LIMIT,
                    "image of " + std::to_string(img.cols) + "x" + std::to_string(img.rows) +
                        " pixels is too elongated to resize to the model's input",
                    "Resizing it to " + std::to_string(IMGS_MODEL_SIDE) + "x" + std::to_string(IMGS_MODEL_SIDE) +
                        " would take " + std::to_string(work / 1000000) + " M multiply-adds; the limit for " +
                        "its size is " + std::to_string(max_work / 1000000) + " M (100 M plus 16 a pixel).");
    resize_normalise(img, out);
}

}  // namespace imgs::model
