#!/usr/bin/python3
"""Test data for vgg16_features (run by test/check.sh before the suites).

    fixtures.py --cache DIR --out DIR

--cache keeps the seeded random-weight models (pool and fc7, exported with
tools/export_vgg16.py; re-exported when that script changes). --out gets
hard links to them, broken model files, test images in every supported
format, broken images, and the reference features of each image computed
independently of imgsearch: PIL decode (EXIF orientation applied), PIL crop,
torchvision's bilinear Resize((224, 224)), ToTensor, Normalize, the same
model file run by torch.jit in Python, L2 normalisation.

Files in --out:
  vgg16_pool.pt, vgg16_fc7.pt   the models, with their .json sidecars
  vgg16_pool_seed1.pt           another pool model (seed 1), for a model change
  vgg16_pool_int8.pt            the pool model (seed 0) quantized to int8, calibrated on images/*
  models.tsv                    name, sha256 (hashlib)
  reference.tsv                 name, layer, box ({x,y,w,h} or \\N), feature [..]
  images/*                      the good images (see IMAGES)
  bad/*                         broken images and model files (raises*.pt: models that throw; slow.pt;
                                int8_flipped.pt: the int8 model with 16 bytes inverted, its sidecar kept;
                                int8_truncated.pt; int8_amx.pt: the int8 model asking for amx_int8)
  bombs/*                       decompression bombs (test/t/020_decode_bombs.pl)
  truncated/*                   valid images cut short at several offsets
  sizes.tsv                     name, format, width, height (upright) of images/*, by PIL
  thumbs/*                      wide.png 1000x500, wide6.jpg the same stored 500x1000 with EXIF 6
"""
import argparse
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib

import numpy as np
import torch
from PIL import Image, ImageOps
from torchvision import transforms

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXPORT = os.path.join(REPO, "tools", "export_vgg16.py")
sys.path.insert(0, os.path.dirname(EXPORT))
from export_vgg16 import sha256_file  # noqa: E402  (hashlib over the file, as the exporter records it)


def scene(h, w, seed):
    """A synthetic photo-like image: smooth gradients, shapes, mild noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.zeros((h, w, 3))
    for c in range(3):
        a, b, p = rng.uniform(-1, 1, 3)
        img[..., c] = 128 + 80 * np.sin(6 * (a * x + b * y) + 6 * p)
    for _ in range(12):
        cy, cx, r = rng.uniform(0, 1), rng.uniform(0, w / max(h, w)), rng.uniform(0.03, 0.25)
        mask = (y - cy) ** 2 + (x - cx) ** 2 < r * r
        img[mask] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 6, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def exif(orientation):
    e = Image.Exif()
    e[0x0112] = orientation
    return e.tobytes()


def encode(img, fmt, **kw):
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def rgba(img, seed):
    a = np.random.default_rng(seed).integers(0, 256, (img.height, img.width), dtype=np.uint8)
    out = img.copy()
    out.putalpha(Image.fromarray(a))
    return out


# name -> bytes of a good image. Sizes cover shrinking, enlarging, 224x224
# (no resize) and a large shrink ratio.
def images():
    s = {i: scene(*hw, seed=i) for i, hw in enumerate(
        [(480, 640), (300, 400), (256, 256), (90, 120), (300, 300), (224, 224), (240, 320), (150, 200),
         (180, 250), (330, 210), (1500, 2000)])}
    return {
        "rgb.jpg": encode(s[0], "JPEG", quality=90),
        "progressive.jpg": encode(s[1], "JPEG", quality=85, progressive=True),
        "gray.jpg": encode(s[2].convert("L"), "JPEG", quality=90),
        "rotated6.jpg": encode(s[1], "JPEG", quality=90, exif=exif(6)),
        "rotated3.png": encode(s[3], "PNG", exif=exif(3)),
        "rotated8.webp": encode(s[8], "WEBP", lossless=True, exif=exif(8)),
        "small.png": encode(s[3], "PNG"),
        "rgba.png": encode(rgba(s[4], 4), "PNG"),
        "gray.png": encode(s[9].convert("L"), "PNG"),
        "palette.png": encode(s[6].convert("P", palette=Image.Palette.ADAPTIVE), "PNG"),
        "exact.png": encode(s[5], "PNG"),
        "lossy.webp": encode(s[6], "WEBP", quality=80),
        "lossless.webp": encode(s[7], "WEBP", lossless=True),
        "image.bmp": encode(s[8], "BMP"),
        "image.tif": encode(s[9], "TIFF"),
        "lzw.tif": encode(s[0], "TIFF", compression="tiff_lzw"),
        "large.jpg": encode(s[10], "JPEG", quality=90),
    }


# (image, box) pairs with a reference for the pool model; the box is
# {x, y, w, h} as given to vgg16_features (clipped to the image).
POOL_CASES = [(name, None) for name in sorted(images().keys())] + [
    ("rgb.jpg", (100, 50, 300, 200)),
    ("rgb.jpg", (-50, -20, 200, 150)),   # clipped to 0,0,150,130
    ("rotated6.jpg", (10, 20, 150, 250)),  # in the upright image's pixels
]
FC7_CASES = [("rgb.jpg", None), ("small.png", None), ("rgb.jpg", (100, 50, 300, 200))]


def bad_images(good):
    png_30k = bytearray(b"\x89PNG\r\n\x1a\n")
    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    png_30k += struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    idat = zlib.compress(b"\0" * 64)
    png_30k += struct.pack(">I", len(idat)) + b"IDAT" + idat + struct.pack(">I", zlib.crc32(b"IDAT" + idat))
    png_30k += struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
    jpg, png, webp = good["rgb.jpg"], good["small.png"], good["lossy.webp"]
    return {
        "truncated.jpg": jpg[: len(jpg) * 6 // 10],
        "truncated500.jpg": jpg[:500],
        "truncated.png": png[: len(png) * 7 // 10],
        "truncated.webp": webp[: len(webp) // 2],
        "huge.png": bytes(png_30k),
        "text.txt": b"this is plain text, not an image\n",
    }


# Images for imgsearch_thumbnail: 1000x500, and the same stored as 500x1000
# with EXIF orientation 6 (shown 1000x500 upright).
def thumb_images():
    wide = scene(500, 1000, seed=20)
    return {
        "wide.png": encode(wide, "PNG"),
        "wide6.jpg": encode(wide.transpose(Image.Transpose.ROTATE_90), "JPEG", quality=90, exif=exif(6)),
    }


# --- hand-made containers: bombs, strips and tiles (PIL writes neither) ------


def tiff(entries, extra=b"", le=True, next_ifd=0):
    """A one-directory little-endian TIFF: entries = [(tag, type, count, value_or_offset)]."""
    out = bytearray(b"II*\0" + struct.pack("<I", 8))
    out += struct.pack("<H", len(entries))
    for tag, typ, count, val in sorted(entries):
        if typ == 3 and count == 1:
            out += struct.pack("<HHIHH", tag, typ, count, val, 0)
        else:
            out += struct.pack("<HHII", tag, typ, count, val)
    out += struct.pack("<I", next_ifd)
    return bytes(out) + extra

def tiff_basic(w, h, bps=8, spp=3, photometric=2, tile=None, rps=None, data_len=None):
    n = 8 + 2 + 12 * 11 + 4
    e = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 1, bps), (259, 3, 1, 1), (262, 3, 1, photometric),
         (277, 3, 1, spp)]
    if tile:
        e += [(322, 4, 1, tile[0]), (323, 4, 1, tile[1])]
        off, cnt = 324, 325
    else:
        e += [(278, 4, 1, rps if rps else h)]
        off, cnt = 273, 279
    dl = data_len if data_len is not None else 16
    ents = len(e) + 2 + (1 if spp == 4 else 0)
    n = 8 + 2 + 12 * ents + 4
    e += [(off, 4, 1, n), (cnt, 4, 1, dl)]
    if spp == 4:
        e += [(338, 3, 1, 2)]  # ExtraSamples: unassociated alpha
    return tiff(e, b"\x80" * dl)

def png_chunk(t, data):
    return struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data))

def png(w, h, bitdepth=8, colortype=2, idat=None, interlace=0):
    ihdr = struct.pack(">IIBBBBB", w, h, bitdepth, colortype, 0, 0, interlace)
    idat = idat if idat is not None else zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")

def jpeg_resized(jpg, w, h):
    """A JPEG whose frame header claims w x h (the scan data is the small image's)."""
    d = bytearray(jpg)
    i = 2
    while i < len(d):
        m = d[i + 1]
        ln = struct.unpack(">H", d[i + 2:i + 4])[0]
        if 0xC0 <= m <= 0xCF and m not in (0xC4, 0xC8, 0xCC):
            d[i + 5:i + 9] = struct.pack(">HH", h, w)
            return bytes(d)
        i += 2 + ln
    raise ValueError("no SOF")

def tiff_pages(n):
    """n chained empty directories after a valid 1x1 first page."""
    first = tiff_basic(1, 1, data_len=3)
    out = bytearray(first)
    # patch the first IFD's next pointer to the chain
    nent = struct.unpack("<H", first[8:10])[0]
    nxt_at = 10 + 12 * nent
    out[nxt_at:nxt_at + 4] = struct.pack("<I", len(out))
    for k in range(n):
        at = len(out)
        out += struct.pack("<H", 0) + struct.pack("<I", at + 6 if k < n - 1 else 0)
    return bytes(out)

def bomb_images():
    """Small files whose decoding would take far more memory than their
    size: refused from their headers (test/t/020_decode_bombs.pl)."""
    small = Image.new("RGB", (16, 16), (120, 30, 200))
    prog, base = encode(small, "JPEG", progressive=True), encode(small, "JPEG")
    vp8l = bytearray(b"RIFF" + struct.pack("<I", 30) + b"WEBPVP8L" + struct.pack("<I", 18) + b"\x2f")
    bits = (16383) | (16383 << 14)
    vp8l += struct.pack("<I", bits) + b"\0" * 14
    bmp = b"BM" + struct.pack("<IHHI", 100, 0, 0, 54) + struct.pack("<IiiHHIIiiII", 40, 30000, 30000, 1, 24, 0, 0, 0, 0, 0, 0) + b"\0" * 46
    return {
        "tiff_tile.tif": tiff_basic(1, 1, tile=(16368, 16368), data_len=3),
        "tiff_tile16.tif": tiff_basic(1, 1, bps=16, spp=4, tile=(8192, 8192), data_len=8),
        "tiff_strip.tif": tiff_basic(64, 1, rps=3900000, data_len=192),
        "tiff_strip16.tif": tiff_basic(32, 1, bps=16, spp=4, rps=3900000, data_len=128),
        "tiff_pages.tif": tiff_pages(100000),
        "tiff_huge.tif": tiff_basic(60000, 60000, data_len=16),
        "png_huge.png": png(30000, 30000),
        "png_wide16.png": png(40000000, 1, bitdepth=16, colortype=6),
        "png_tall16.png": png(7000, 7000, bitdepth=16, colortype=6),
        # a valid 1x900000 gray PNG (libpng reads at most 1000000 rows): it
        # decodes, but resizing it would take seconds (image_core.cpp, resize_work)
        "png_elongated.png": png(1, 900000, colortype=0, idat=zlib.compress(b"\0" * 1800000, 9)),
        "jpeg_huge.jpg": jpeg_resized(base, 65000, 65000),
        "jpeg_prog.jpg": jpeg_resized(prog, 7000, 7000),
        "jpeg_base.jpg": jpeg_resized(base, 7000, 7000),
        "webp_huge.webp": bytes(vp8l),
        "bmp_huge.bmp": bmp,
    }

def tiff_image(arr, rps=None, tile=None):
    """An uncompressed RGB TIFF of arr (h, w, 3 uint8) in strips of rps rows, or tiles (tw, th)."""
    h, w, _ = arr.shape
    chunks = []
    if tile:
        tw, th = tile
        for ty in range(0, h, th):
            for tx in range(0, w, tw):
                t = np.zeros((th, tw, 3), np.uint8)
                part = arr[ty:ty + th, tx:tx + tw]
                t[:part.shape[0], :part.shape[1]] = part
                chunks.append(t.tobytes())
    else:
        rps = rps or h
        chunks = [arr[y:y + rps].tobytes() for y in range(0, h, rps)]
    n_ent = 11
    ifd_len = 2 + 12 * n_ent + 4
    arrays_at = 8 + ifd_len
    bps_at = arrays_at
    offs_at = bps_at + 8
    cnts_at = offs_at + 4 * len(chunks)
    data_at = cnts_at + 4 * len(chunks)
    offsets, pos = [], data_at
    for c in chunks:
        offsets.append(pos); pos += len(c)
    def arr_or_val(vals, at):
        return (len(vals), vals[0] if len(vals) == 1 else at)
    e = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 3, bps_at), (259, 3, 1, 1), (262, 3, 1, 2), (277, 3, 1, 3),
         (284, 3, 1, 1)]
    oc, ov = arr_or_val(offsets, offs_at)
    cc, cv = arr_or_val([len(c) for c in chunks], cnts_at)
    if tile:
        e += [(322, 4, 1, tile[0]), (323, 4, 1, tile[1]), (324, 4, oc, ov), (325, 4, cc, cv)]
    else:
        e += [(278, 4, 1, rps), (273, 4, oc, ov), (279, 4, cc, cv), (0x131, 2, 4, 0x5858)]  # Software "XX"
    tail = struct.pack("<HHHH", 8, 8, 8, 0) + struct.pack("<%dI" % len(chunks), *offsets) + \
        struct.pack("<%dI" % len(chunks), *[len(c) for c in chunks]) + b"".join(chunks)
    return tiff(e, tail)


def truncated_images(good):
    """Valid images of each format cut short at several offsets: 22P03."""
    s = scene(120, 160, 21)
    sources = {
        "jpg": good["rgb.jpg"], "progressive.jpg": good["progressive.jpg"], "png": good["small.png"],
        "palette.png": good["palette.png"], "webp": good["lossy.webp"], "lossless.webp": good["lossless.webp"],
        "exif.webp": good["rotated8.webp"], "bmp": good["image.bmp"], "tif": good["image.tif"],
        "lzw.tif": good["lzw.tif"], "strips.tif": tiff_image(np.asarray(s), rps=16),
        "tiles.tif": tiff_image(np.asarray(s), tile=(64, 64)),
    }
    out = {}
    for name, data in sources.items():
        n = len(data)
        for cut in sorted({16, n // 10, n // 3, n // 2, 2 * n // 3, 9 * n // 10, n - 12, n - 2, n - 1}):
            if 0 < cut < n:
                out[f"cut{cut}-{name}"] = data[:cut]
    return out


def throwing_models(out_dir):
    """TorchScript models that raise: one on every real image (the load
    probe's zeros pass), one already at load."""
    class RaisesOnImages(torch.nn.Module):
        def forward(self, x):
            if bool(x.abs().sum() > 0):
                raise RuntimeError("imgsearch test model: refusing this image")
            return x.flatten(1)[:, :8]

    class RaisesAlways(torch.nn.Module):
        def forward(self, x):
            if bool(x.sum() >= 0) or bool(x.sum() < 0):
                raise ValueError("imgsearch test model: refusing every input")
            return x.flatten(1)[:, :8]

    class Slow(torch.nn.Module):
        """About 60 GMAC an image (about 0.45 s on 2 cores): cancellation tests."""
        def __init__(self):
            super().__init__()
            self.first = torch.nn.Conv2d(3, 128, 3, stride=2, padding=1)
            self.conv = torch.nn.Conv2d(128, 128, 3, padding=1)

        def forward(self, x):
            y = torch.relu(self.first(x))
            for _ in range(32):
                y = torch.relu(self.conv(y))
            return y.mean((2, 3))[:, :8]

    torch.manual_seed(0)
    for name, cls in (("raises.pt", RaisesOnImages), ("raises_at_load.pt", RaisesAlways), ("slow.pt", Slow)):
        torch.jit.save(torch.jit.freeze(torch.jit.script(cls().eval())), os.path.join(out_dir, name))


def cached_model(cache, layer, seed=0):
    """The seeded random model, exported once per version of the exporter."""
    path = os.path.join(cache, f"vgg16_{layer}_seed{seed}.pt")
    if not os.path.exists(path) or os.path.getmtime(path) < os.path.getmtime(EXPORT):
        subprocess.run([sys.executable, EXPORT, "--layer", layer, "--weights", "random", "--seed", str(seed),
                        "--out", path], check=True)
    return path


def cached_int8_model(cache, calibration):
    """The seed 0 pool model quantized to int8, calibrated on the test images."""
    path = os.path.join(cache, "vgg16_pool_seed0_int8.pt")
    if not os.path.exists(path) or os.path.getmtime(path) < os.path.getmtime(EXPORT):
        subprocess.run([sys.executable, EXPORT, "--layer", "pool", "--weights", "random", "--seed", "0", "--int8",
                        "--calibration", calibration, "--out", path], check=True)
    return path


def broken_int8_models(src, bad):
    """Copies of the int8 model that the server must refuse (see the docstring)."""
    data = open(src, "rb").read()
    mid = len(data) // 2   # inside the weights: torch loads it without complaint
    with open(os.path.join(bad, "int8_flipped.pt"), "wb") as f:
        f.write(data[:mid] + bytes(b ^ 0xFF for b in data[mid:mid + 16]) + data[mid + 16:])
    shutil.copyfile(os.path.splitext(src)[0] + ".json", os.path.join(bad, "int8_flipped.json"))
    with open(os.path.join(bad, "int8_truncated.pt"), "wb") as f:
        f.write(data[:mid])
    # the same model asking for a CPU feature the server checks (amx_int8)
    torch.backends.quantized.engine = "onednn"
    extra = {"imgsearch.json": ""}
    model = torch.jit.load(src, _extra_files=extra)
    meta = json.loads(extra["imgsearch.json"])
    meta["cpu_features"] = ["avx512_vnni", "amx_int8"]
    torch.jit.save(model, os.path.join(bad, "int8_amx.pt"), _extra_files={"imgsearch.json": json.dumps(meta, indent=2)})


def place(src, dst):
    """Hard link when possible (the fc7 model is 537 MB), else copy."""
    if os.path.exists(dst):
        os.remove(dst)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def reference_features(model_path, cases, files):
    model = torch.jit.load(model_path).eval()
    pipeline = transforms.Compose([
        transforms.Resize((224, 224), interpolation=transforms.InterpolationMode.BILINEAR),
        transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    rows = []
    for name, box in cases:
        img = ImageOps.exif_transpose(Image.open(io.BytesIO(files[name]))).convert("RGB")
        if box:
            x, y, w, h = box
            img = img.crop((max(x, 0), max(y, 0), min(x + w, img.width), min(y + h, img.height)))
        with torch.no_grad():
            f = model(pipeline(img).unsqueeze(0))[0]
        f = f / f.norm()
        rows.append((name, box, f.numpy()))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    os.makedirs(args.cache, exist_ok=True)
    for d in ("", "images", "bad", "bombs", "truncated", "thumbs"):
        os.makedirs(os.path.join(args.out, d), exist_ok=True)

    models = {}
    for layer in ("pool", "fc7"):
        src = cached_model(args.cache, layer)
        models[layer] = os.path.join(args.out, f"vgg16_{layer}.pt")
        place(src, models[layer])
        shutil.copyfile(os.path.splitext(src)[0] + ".json", os.path.splitext(models[layer])[0] + ".json")
    # Another pool model (seed 1: other weights, the same 512 dimensions), for
    # a model change (test/t/025_ingest.pl); not in models.tsv.
    place(cached_model(args.cache, "pool", seed=1), os.path.join(args.out, "vgg16_pool_seed1.pt"))
    with open(os.path.join(args.out, "models.tsv"), "w") as f:
        for layer, path in models.items():
            f.write(f"{layer}\t{sha256_file(path)}\n")

    files = images()
    for name, data in files.items():
        with open(os.path.join(args.out, "images", name), "wb") as f:
            f.write(data)
    int8 = cached_int8_model(args.cache, os.path.join(args.out, "images"))
    place(int8, os.path.join(args.out, "vgg16_pool_int8.pt"))
    shutil.copyfile(os.path.splitext(int8)[0] + ".json", os.path.join(args.out, "vgg16_pool_int8.json"))
    with open(os.path.join(args.out, "models.tsv"), "a") as f:
        f.write(f"pool_int8\t{sha256_file(int8)}\n")
    broken_int8_models(int8, os.path.join(args.out, "bad"))
    for name, data in bad_images(files).items():
        with open(os.path.join(args.out, "bad", name), "wb") as f:
            f.write(data)
    # Model files that must be refused: not TorchScript at all, and a valid
    # TorchScript module of the wrong shape.
    with open(os.path.join(args.out, "bad", "corrupt.pt"), "wb") as f:
        f.write(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    torch.jit.save(torch.jit.script(torch.nn.Identity()), os.path.join(args.out, "bad", "identity.pt"))
    throwing_models(os.path.join(args.out, "bad"))
    # Sizes as shown upright, by PIL (independent of the server's header
    # reader): imgsearch_image_info's reference; and images to thumbnail.
    with open(os.path.join(args.out, "sizes.tsv"), "w") as f:
        for name in sorted(files):
            im = Image.open(io.BytesIO(files[name]))
            up = ImageOps.exif_transpose(im)
            f.write(f"{name}\t{im.format}\t{up.width}\t{up.height}\n")
    for sub, made in (("bombs", bomb_images()), ("truncated", truncated_images(files)),
                      ("thumbs", thumb_images())):
        for name, data in made.items():
            with open(os.path.join(args.out, sub, name), "wb") as f:
                f.write(data)

    with open(os.path.join(args.out, "reference.tsv"), "w") as f:
        for layer, cases in (("pool", POOL_CASES), ("fc7", FC7_CASES)):
            for name, box, feat in reference_features(models[layer], cases, files):
                box_text = "{%d,%d,%d,%d}" % box if box else "\\N"
                f.write(f"{name}\t{layer}\t{box_text}\t[{','.join(repr(float(v)) for v in feat)}]\n")
    print(f"fixtures: {len(files)} images, {len(POOL_CASES) + len(FC7_CASES)} reference features in {args.out}")


if __name__ == "__main__":
    main()
