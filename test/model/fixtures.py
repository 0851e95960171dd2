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
  models.tsv                    name, sha256 (hashlib)
  reference.tsv                 name, layer, box ({x,y,w,h} or \\N), feature [..]
  images/*                      the good images (see IMAGES)
  bad/*                         broken images and model files
"""
import argparse
import io
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


def cached_model(cache, layer):
    """The seeded random model, exported once per version of the exporter."""
    path = os.path.join(cache, f"vgg16_{layer}_seed0.pt")
    if not os.path.exists(path) or os.path.getmtime(path) < os.path.getmtime(EXPORT):
        subprocess.run([sys.executable, EXPORT, "--layer", layer, "--weights", "random", "--seed", "0",
                        "--out", path], check=True)
    return path


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
    for d in ("", "images", "bad"):
        os.makedirs(os.path.join(args.out, d), exist_ok=True)

    models = {}
    for layer in ("pool", "fc7"):
        src = cached_model(args.cache, layer)
        models[layer] = os.path.join(args.out, f"vgg16_{layer}.pt")
        place(src, models[layer])
        shutil.copyfile(os.path.splitext(src)[0] + ".json", os.path.splitext(models[layer])[0] + ".json")
    with open(os.path.join(args.out, "models.tsv"), "w") as f:
        for layer, path in models.items():
            f.write(f"{layer}\t{sha256_file(path)}\n")

    files = images()
    for name, data in files.items():
        with open(os.path.join(args.out, "images", name), "wb") as f:
            f.write(data)
    for name, data in bad_images(files).items():
        with open(os.path.join(args.out, "bad", name), "wb") as f:
            f.write(data)
    # Model files that must be refused: not TorchScript at all, and a valid
    # TorchScript module of the wrong shape.
    with open(os.path.join(args.out, "bad", "corrupt.pt"), "wb") as f:
        f.write(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    torch.jit.save(torch.jit.script(torch.nn.Identity()), os.path.join(args.out, "bad", "identity.pt"))

    with open(os.path.join(args.out, "reference.tsv"), "w") as f:
        for layer, cases in (("pool", POOL_CASES), ("fc7", FC7_CASES)):
            for name, box, feat in reference_features(models[layer], cases, files):
                box_text = "{%d,%d,%d,%d}" % box if box else "\\N"
                f.write(f"{name}\t{layer}\t{box_text}\t[{','.join(repr(float(v)) for v in feat)}]\n")
    print(f"fixtures: {len(files)} images, {len(POOL_CASES) + len(FC7_CASES)} reference features in {args.out}")


if __name__ == "__main__":
    main()
