#!/usr/bin/python3
"""Writes the seed corpus (fuzz/corpus/<harness>/) and the regression inputs
(fuzz/regressions/<harness>/) of the fuzz harnesses. The files are committed;
rerun this only to change them (python3-pil makes the images):

    /usr/bin/python3 fuzz/make_corpus.py

Deterministic: the same files every run. It never deletes: inputs the fuzzers
found (e.g. regressions/image_decode/png_exif_length_bomb.png) are kept as found.
"""
import io
import os
import struct
import sys

from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))


def write(kind, harness, name, data):
    d = os.path.join(HERE, kind, harness)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# --- imgfeat text ------------------------------------------------------------
def text_inputs():
    corpus = {
        "one": "[1]",
        "three": "[1,2,3]",
        "spaces": " \t[ -0 , 1.5e-3 ,\n3e38 ]\r\n ",
        "signs_exponents": "[+1,-2.5,.5,5.,1E3,-1e-3,0.000001]",
        "float_max": "[3.4028235e38,-3.4028235e38]",
        "float_min_normal": "[1.17549435e-38]",
        "denormal": "[1e-45,-1.4e-45,1e-40]",
        "hex_float": "[0x1p3,-0x1.8p-1]",
        "shortest": "[0.1,0.2,0.3,1.1,16777217,1e-7]",
        "dims_64": "[" + ",".join(str(i * 0.25 - 4) for i in range(64)) + "]",
        # errors, one of each
        "empty": "",
        "empty_brackets": "[]",
        "no_bracket": "1,2",
        "unclosed": "[1,2",
        "double_comma": "[1,,2]",
        "trailing_comma": "[1,2,]",
        "no_separator": "[1 2]",
        "not_a_number": "[a]",
        "junk_after": "[1]x",
        "nan": "[1,NaN]",
        "inf": "[inf]",
        "minus_infinity": "[-Infinity]",
        "overflow": "[1e39]",
        "underflow": "[1e-50]",
    }
    regressions = {
        # underflow to 0 must be an error, not a silent 0
        "underflow_1e-50": "[1e-50]",
        "underflow_long": "[" + "0." + "0" * 60 + "1]",
        # 40000 elements: refused at the 16001st, no buffer grows past 16000
        "dims_40000": "[" + "1," * 39999 + "1]",
        "dims_16000": "[" + "1," * 15999 + "1]",
        "dims_16001": "[" + "1," * 16000 + "1]",
        "dims_16000_trailing_comma": "[" + "1," * 16000 + "]",
        "nan_payload": "[nan(0x7fffff)]",
        "huge_exponent": "[1e99999999999999999999]",
        "long_mantissa": "[" + "9" * 2000 + "]",
        "nul_inside": "[1]\x00junk",
    }
    return corpus, regressions


# --- imgfeat binary ----------------------------------------------------------
def binary(dim, values=None, reserved=0, raw=None):
    head = struct.pack(">hh", dim, reserved)
    if raw is not None:
        return head + raw
    return head + b"".join(struct.pack(">f", v) for v in (values or []))


def bits(*words):
    return b"".join(struct.pack(">I", w) for w in words)


def binary_inputs():
    corpus = {
        "one": binary(1, [1.0]),
        "three": binary(3, [1.0, -2.5, 0.125]),
        "dims_16": binary(16, [i / 7 for i in range(16)]),
        "edges": binary(4, raw=bits(0x80000000, 0x00000001, 0x7F7FFFFF, 0xFF7FFFFF)),  # -0, denormal, +-max
        "short": b"\x00\x01",
        "reserved": binary(1, [1.0], reserved=1),
        "length": binary(2, [1.0]),
        "nan": binary(1, raw=bits(0x7FC00000)),
    }
    regressions = {
        "dim_minus1": binary(-1, raw=b""),
        "dim_minus1_payload": binary(-1, raw=bits(0x3F800000)),
        "dim_0": binary(0, raw=b""),
        "dim_16001_header_only": binary(16001, raw=b""),
        "dim_16001_full": binary(16001, raw=bits(0x3F800000) * 16001),
        "dim_16000_full": binary(16000, raw=bits(0x3F800000) * 16000),
        "dim_32767_short": binary(32767, raw=bits(0x3F800000) * 4),
        "dim_minus32768": binary(-32768, raw=b""),
        "quiet_nan": binary(1, raw=bits(0x7FC00000)),
        "signalling_nan": binary(2, raw=bits(0x3F800000, 0x7F800001)),
        "negative_nan": binary(1, raw=bits(0xFFFFFFFF)),
        "plus_inf": binary(1, raw=bits(0x7F800000)),
        "minus_inf": binary(3, raw=bits(0, 0, 0xFF800000)),
        "reserved_minus1": binary(1, [1.0], reserved=-1),
        "empty": b"",
        "one_byte": b"\x00",
        "three_bytes": b"\x00\x01\x00",
        "length_one_extra_byte": binary(1, [1.0]) + b"\x00",
    }
    return corpus, regressions


# --- images --------------------------------------------------------------------
def picture(w=16, h=12, mode="RGB"):
    img = Image.new("RGB", (w, h))
    img.putdata([((x * 16) % 256, (y * 20) % 256, (x * y * 3) % 256) for y in range(h) for x in range(w)])
    return img.convert(mode)


def save(img, fmt, **kw):
    out = io.BytesIO()
    img.save(out, fmt, **kw)
    return out.getvalue()


def exif_orientation(o):
    exif = Image.Exif()
    exif[0x0112] = o
    return exif


def tiff_bomb():
    """155 bytes: a 1x1 RGB TIFF whose single tile claims 16368x16368 pixels.
    OpenCV 4.6 allocates the whole tile (16368^2 x 4 bytes, about 1 GiB) before
    it reads a byte of it: the header's 1x1 passes every max_pixels check."""
    entries = []  # (tag, type, count, value)
    bps_off = 8 + 2 + 12 * 11 + 4
    data_off = bps_off + 6
    entries += [
        (256, 3, 1, 1),        # ImageWidth
        (257, 3, 1, 1),        # ImageLength
        (258, 3, 3, bps_off),  # BitsPerSample 8,8,8
        (259, 3, 1, 1),        # Compression none
        (262, 3, 1, 2),        # Photometric RGB
        (277, 3, 1, 3),        # SamplesPerPixel
        (284, 3, 1, 1),        # PlanarConfig contig
        (322, 3, 1, 16368),    # TileWidth
        (323, 3, 1, 16368),    # TileLength
        (324, 4, 1, data_off), # TileOffsets
        (325, 4, 1, 3),        # TileByteCounts
    ]
    out = bytearray(b"II*\x00" + struct.pack("<I", 8))
    out += struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        if typ == 3 and count == 1:
            out += struct.pack("<HHIHH", tag, typ, count, value, 0)
        else:
            out += struct.pack("<HHII", tag, typ, count, value)
    out += struct.pack("<I", 0)
    assert len(out) == bps_off
    out += struct.pack("<HHH", 8, 8, 8)
    out += bytes([10, 20, 30])
    out += b"\x00" * (155 - len(out))  # padding, as the original report's file
    return bytes(out)


def tiff_without_next_directory_offset():
    """70 bytes: a 1x1 gray TIFF whose first directory ends the data, without the
    4-byte offset of the next directory. The header check read those 4 bytes past
    the end (found by CI's bounded fuzzing)."""
    entries = [
        (256, 3, 1, 1),  # ImageWidth
        (257, 3, 1, 1),  # ImageLength
        (262, 3, 1, 1),  # Photometric BlackIsZero
        (273, 4, 1, 0),  # StripOffsets
        (279, 4, 1, 1),  # StripByteCounts
    ]
    out = bytearray(b"II*\x00" + struct.pack("<IH", 8, len(entries)))
    for tag, typ, count, value in entries:
        out += struct.pack("<HHI", tag, typ, count)
        out += struct.pack("<HH", value, 0) if typ == 3 else struct.pack("<I", value)
    return bytes(out)


def png_with_size(w, h):
    """A PNG whose IHDR claims w x h (CRC not fixed: the header check reads it)."""
    data = bytearray(save(picture(), "PNG"))
    data[16:24] = struct.pack(">II", w, h)
    return bytes(data)


def image_inputs():
    rgb = picture()
    corpus = {
        "rgb.png": save(rgb, "PNG"),
        "rgba.png": save(picture(mode="RGBA"), "PNG"),
        "gray.png": save(picture(mode="L"), "PNG"),
        "palette.png": save(picture(mode="P"), "PNG"),
        "gray16.png": save(picture(mode="L").convert("I").point(lambda v: v * 257), "PNG"),
        "exif6.png": save(rgb, "PNG", exif=exif_orientation(6)),
        "baseline.jpg": save(rgb, "JPEG", quality=80),
        "progressive.jpg": save(rgb, "JPEG", quality=80, progressive=True),
        "gray.jpg": save(picture(mode="L"), "JPEG"),
        "exif8.jpg": save(rgb, "JPEG", exif=exif_orientation(8)),
        "lossy.webp": save(rgb, "WEBP", quality=80),
        "lossless.webp": save(rgb, "WEBP", lossless=True),
        "exif3.webp": save(rgb, "WEBP", exif=exif_orientation(3)),
        "rgb24.bmp": save(rgb, "BMP"),
        "palette8.bmp": save(picture(mode="P"), "BMP"),
        "gray.bmp": save(picture(mode="L"), "BMP"),
        "raw.tif": save(rgb, "TIFF"),
        "lzw.tif": save(rgb, "TIFF", compression="tiff_lzw"),
        "deflate_gray.tif": save(picture(mode="L"), "TIFF", compression="tiff_adobe_deflate"),
        "tall.png": save(picture(3, 40), "PNG"),
        "one_pixel.png": save(picture(1, 1), "PNG"),
    }
    jpg = corpus["baseline.jpg"]
    regressions = {
        "tiff_tile_bomb.tif": tiff_bomb(),
        "truncated.jpg": jpg[: len(jpg) // 2],
        "png_over_max_pixels.png": png_with_size(100000, 100000),
        "png_zero_width.png": png_with_size(0, 10),
        "png_size_lies.png": png_with_size(1, 1),
        "not_an_image": b"hello, world\n",
        "jpeg_soi_only.jpg": b"\xff\xd8\xff",
        "bmp_header_only.bmp": save(rgb, "BMP")[:30],
        "tiff_header_only.tif": corpus["raw.tif"][:8],
        "tiff_no_next_directory_offset.tif": tiff_without_next_directory_offset(),
    }
    return corpus, regressions


def main():
    for harness, (corpus, regressions) in {
        "imgfeat_text": text_inputs(),
        "imgfeat_recv": binary_inputs(),
        "image_decode": image_inputs(),
    }.items():
        for name, data in corpus.items():
            write("corpus", harness, name, data)
        for name, data in regressions.items():
            write("regressions", harness, name, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
