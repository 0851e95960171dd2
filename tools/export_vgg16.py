#!/usr/bin/python3
"""Export VGG16 as a frozen TorchScript file for imgsearch's vgg16_features().

    tools/export_vgg16.py --layer pool|fc7 --weights random|imagenet|FILE.pth --out PATH [--seed N]
                          [--int8 [--calibration DIR] [--calibration-images N]]

Layers (input: [N, 3, 224, 224], ImageNet mean/std normalised RGB):
  pool  conv5_3 after ReLU, generalised-mean pooled (p = 3): [N, 512]
  fc7   the second 4096-d fully connected layer after ReLU (the paper's): [N, 4096]

Weights:
  random    seeded initialisation (torchvision's own init): the same
            architecture and cost, but NO semantic quality. For tests and
            benchmarks only.
  imagenet  torchvision's IMAGENET1K_V1 weights, downloaded (needs a network).
  FILE.pth  torchvision's checkpoint file, e.g. vgg16-397923af.pth from
            https://download.pytorch.org/models/vgg16-397923af.pth

--int8: the convolutions statically quantized to int8 (torch FX graph mode,
oneDNN engine: per-channel weights, per-tensor activations calibrated by
histogram on --calibration-images images of --calibration, the demo
collection by default); pooling and fc layers stay fp32. It runs fast on
CPUs with AVX-512 VNNI, which the server requires of it (see docs/model.md).

Writes PATH (TorchScript, torch.jit.freeze'd; the server applies
optimize_for_inference after loading, since a module saved after that pass
does not load back in torch 1.13) and its .json sidecar (PATH with .json for .pt). The same JSON,
minus the file's own sha256, is embedded in the model as imgsearch.json.
"""
import argparse
import hashlib
import json
import os
import sys

import torch
import torchvision
from torchvision.models import vgg16, VGG16_Weights

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
NO_QUALITY_NOTE = ("random weights: same architecture and cost as VGG16 but NO semantic quality "
                   "(tests and benchmarks only); export with --weights imagenet or "
                   "--weights vgg16-397923af.pth for real retrieval")


class GeMPool(torch.nn.Module):
    """conv5_3 features, generalised-mean pooled: (mean(x^3))^(1/3) per channel.

    Plain ops (y*y*y, ** (1.0/3.0)) and no clamp: an integer pow or a
    clamp(min=) breaks torch 1.13's optimize_for_inference pass, and the
    features end in a ReLU, so the mean is never negative."""

    def __init__(self, features):
        super().__init__()
        self.features = features

    def forward(self, x):
        y = self.features(x)
        y = (y * y * y).mean(dim=(2, 3))
        return y ** (1.0 / 3.0)


class Fc7(torch.nn.Module):
    """The paper's feature: fc7 (second 4096-d fully connected layer) after ReLU."""

    def __init__(self, net):
        super().__init__()
        self.features = net.features
        self.avgpool = net.avgpool
        self.fc = net.classifier[:5]   # fc6, ReLU, Dropout, fc7, ReLU

    def forward(self, x):
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))


# Where `make demo` and the benchmarks keep the demo collection (tools/demo.sh's
# local_dir: the repository's .demo when the cluster owner can read it).
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CALIBRATION_DEFAULTS = [os.path.join(REPO, ".demo", "dataset", "images"),
                        "/var/tmp/imgsearch-demo/dataset/images",
                        "/var/tmp/imgsearch-bench-dataset/images"]
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
# What an int8 model needs of the CPU: the server refuses it elsewhere (names
# as /proc/cpuinfo spells them; src/model/vgg16_core.cpp checks them by cpuid).
INT8_CPU_FEATURES = ["avx512_vnni"]
QUANTIZED_ENGINE = "onednn"


def preprocess(path):
    """The reference pipeline (as test/model/fixtures.py): PIL decode, EXIF
    orientation, RGB, bilinear 224x224, ImageNet mean/std."""
    from PIL import Image, ImageOps
    from torchvision import transforms
    tf = transforms.Compose([transforms.Resize((224, 224)), transforms.ToTensor(),
                             transforms.Normalize(MEAN, STD)])
    with Image.open(path) as im:
        return tf(ImageOps.exif_transpose(im).convert("RGB"))


def calibration_files(folder, count):
    """count images of folder (recursively), evenly spaced in name order: a
    deterministic sample that spans every group of the demo collection."""
    if folder is None:
        folder = next((d for d in CALIBRATION_DEFAULTS if os.path.isdir(d)), None)
        if folder is None:
            sys.exit("export_vgg16: no calibration images: pass --calibration DIR, or build the demo "
                     "collection (tools/build_dataset.py /var/tmp/imgsearch-bench-dataset)")
    files = sorted(os.path.join(root, f) for root, _, names in os.walk(folder) for f in names
                   if f.lower().endswith(IMAGE_EXTENSIONS))
    if not files:
        sys.exit(f"export_vgg16: no images in calibration folder {folder!r}")
    if count < len(files):
        files = [files[(i * len(files)) // count] for i in range(count)]
    return os.path.abspath(folder), files


def quantize_int8(model, folder, count):
    """Statically quantizes model.features in place and returns metadata: the
    input is quantized once, every conv+ReLU and max pool runs in int8, and
    the output is dequantized before the fp32 pooling (GeM's cube needs the
    range) or fc layers, which cost under 1% of the multiply-adds."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    if QUANTIZED_ENGINE not in torch.backends.quantized.supported_engines:
        sys.exit(f"export_vgg16: this torch has no {QUANTIZED_ENGINE} quantized engine")
    torch.backends.quantized.engine = QUANTIZED_ENGINE
    folder, files = calibration_files(folder, count)
    example = torch.zeros(1, 3, 224, 224)
    prepared = prepare_fx(model.features, get_default_qconfig_mapping(QUANTIZED_ENGINE),
                          example_inputs=(example,))
    with torch.no_grad():
        for path in files:
            prepared(preprocess(path).unsqueeze(0))
    model.features = convert_fx(prepared)
    return {"engine": QUANTIZED_ENGINE, "scheme": "static; weights per channel, activations per tensor",
            "calibration": {"folder": folder, "images": len(files)}}


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_vgg16(weights, seed):
    """Returns (torchvision VGG16 in eval mode, metadata about its weights)."""
    if weights == "random":
        torch.manual_seed(seed)
        return vgg16(weights=None), {"weights": "random", "seed": seed, "note": NO_QUALITY_NOTE}
    if weights == "imagenet":
        try:
            net = vgg16(weights=VGG16_Weights.IMAGENET1K_V1)
        except Exception as e:  # no network: say what to do instead
            sys.exit(f"export_vgg16: could not download torchvision's ImageNet weights ({e}).\n"
                     f"Without a network, fetch {VGG16_Weights.IMAGENET1K_V1.url} elsewhere and "
                     "pass it as --weights FILE.pth.")
        return net, {"weights": "imagenet", "source": VGG16_Weights.IMAGENET1K_V1.url}
    if not os.path.isfile(weights):
        sys.exit(f"export_vgg16: --weights must be random, imagenet or a .pth file; {weights!r} is none")
    net = vgg16(weights=None)
    state = torch.load(weights, map_location="cpu")
    net.load_state_dict(state)   # strict: refuses a checkpoint of another architecture
    return net, {"weights": "file", "source": os.path.abspath(weights),
                 "source_sha256": sha256_file(weights)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layer", choices=["pool", "fc7"], default="pool")
    ap.add_argument("--weights", default="random", help="random | imagenet | FILE.pth (default random)")
    ap.add_argument("--out", required=True, help="output .pt path; the .json sidecar is written next to it")
    ap.add_argument("--seed", type=int, default=0, help="seed for --weights random (default 0)")
    ap.add_argument("--int8", action="store_true", help="quantize the convolutions to int8 (needs AVX-512 VNNI to run)")
    ap.add_argument("--calibration", help="folder of images to calibrate --int8 on (default: the demo collection)")
    ap.add_argument("--calibration-images", type=int, default=64, help="images of it to use (default 64)")
    args = ap.parse_args()
    if args.calibration_images < 1:
        ap.error("--calibration-images must be at least 1")

    net, meta = load_vgg16(args.weights, args.seed)
    net.eval()
    model = GeMPool(net.features[:-1]) if args.layer == "pool" else Fc7(net)   # [:-1]: drop pool5
    model.eval()
    dims = 512 if args.layer == "pool" else 4096
    precision = {}   # fp32 models say nothing (their files stay as they were)
    if args.int8:
        quantization = quantize_int8(model, args.calibration, args.calibration_images)
        # fp32_equivalent: what the server names when the CPU cannot run it
        precision = {"precision": "int8", "cpu_features": INT8_CPU_FEATURES, "quantization": quantization,
                     "fp32_equivalent": f"tools/export_vgg16.py --layer {args.layer} --weights {args.weights}"
                                        + (f" --seed {args.seed}" if args.weights == "random" else "")}
    with torch.no_grad():
        frozen = torch.jit.freeze(torch.jit.script(model))
        out = frozen(torch.zeros(2, 3, 224, 224))
    assert tuple(out.shape) == (2, dims), out.shape

    meta = {
        "format": "imgsearch-vgg16",
        "layer": args.layer,
        "dims": dims,
        **meta,
        **precision,
        "preprocessing": {
            "decode": "RGB, EXIF orientation applied, alpha dropped, gray replicated",
            "resize": [224, 224],
            "interpolation": "bilinear, antialiased when shrinking (as PIL's Image.resize)",
            "mean": MEAN,
            "std": STD,
        },
        "output": "L2-normalised by vgg16_features()",
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
    }
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    tmp = args.out + ".tmp"
    torch.jit.save(frozen, tmp, _extra_files={"imgsearch.json": json.dumps(meta, indent=2)})
    os.replace(tmp, args.out)
    meta["sha256"] = sha256_file(args.out)
    with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    print(f"export_vgg16: wrote {args.out} ({args.layer}, {dims}-d, {meta.get('precision', 'fp32')}, weights {meta['weights']}, "
          f"{os.path.getsize(args.out) / 1e6:.0f} MB)")
    if meta["weights"] == "random":
        print(f"export_vgg16: note: {NO_QUALITY_NOTE}")


if __name__ == "__main__":
    main()
