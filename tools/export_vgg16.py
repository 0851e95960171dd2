#!/usr/bin/python3
"""Export VGG16 as a frozen TorchScript file for imgsearch's vgg16_features().

    tools/export_vgg16.py --layer pool|fc7 --weights random|imagenet|FILE.pth --out PATH [--seed N]

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
    args = ap.parse_args()

    net, meta = load_vgg16(args.weights, args.seed)
    net.eval()
    model = GeMPool(net.features[:-1]) if args.layer == "pool" else Fc7(net)   # [:-1]: drop pool5
    model.eval()
    dims = 512 if args.layer == "pool" else 4096
    with torch.no_grad():
        frozen = torch.jit.freeze(torch.jit.script(model))
        out = frozen(torch.zeros(2, 3, 224, 224))
    assert tuple(out.shape) == (2, dims), out.shape

    meta = {
        "format": "imgsearch-vgg16",
        "layer": args.layer,
        "dims": dims,
        **meta,
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
    print(f"export_vgg16: wrote {args.out} ({args.layer}, {dims}-d, weights {meta['weights']}, "
          f"{os.path.getsize(args.out) / 1e6:.0f} MB)")
    if meta["weights"] == "random":
        print(f"export_vgg16: note: {NO_QUALITY_NOTE}")


if __name__ == "__main__":
    main()
