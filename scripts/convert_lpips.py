#!/usr/bin/python3
"""convert_lpips.py — LPIPS v0.1 weights (official lin layers + torchvision trunk) to bokehlab's
HDF5 layout (losses/lpips.h).

    scripts/convert_lpips.py --net alex|vgg --lin LIN.pth --trunk TRUNK.pth --out OUT.h5

LIN.pth    the official lin-layer state dict, richzhang/PerceptualSimilarity
           lpips/weights/v0.1/{alex,vgg}.pth: keys lin0.model.1.weight .. lin4.model.1.weight,
           shapes (1, C_l, 1, 1), C = (64, 192, 384, 256, 256) for alex and
           (64, 128, 256, 512, 512) for vgg
TRUNK.pth  torchvision's ImageNet weights: alexnet-owt-7be5be79.pth (alex) or
           vgg16-397923af.pth (vgg); keys features.<i>.weight / .bias (classifier.* is ignored)

OUT.h5: root attributes format = "bokehlab-lpips", net = "alex" | "vgg", version = 1,
source_lin and source_trunk (the input file names); float32 datasets /params/features.<i>.weight,
/params/features.<i>.bias (torchvision names and shapes of the convolutions LPIPS uses) and
/params/lin<l>.weight (1, C_l, 1, 1), chunked with the Fletcher32 checksum. A missing key or a
wrong shape is refused with a message naming it; the file is written as OUT.tmp and renamed into
place only when complete, so a failed run never leaves a partial OUT.

Needs /usr/bin/python3 with torch and h5py.
"""
import argparse
import os
import sys

import h5py
import numpy as np
import torch

# torchvision feature index, (out, in, k) of every convolution up to the last LPIPS tap
TRUNKS = {
    "alex": [(0, (64, 3, 11)), (3, (192, 64, 5)), (6, (384, 192, 3)), (8, (256, 384, 3)),
             (10, (256, 256, 3))],
    "vgg": [(0, (64, 3, 3)), (2, (64, 64, 3)), (5, (128, 64, 3)), (7, (128, 128, 3)),
            (10, (256, 128, 3)), (12, (256, 256, 3)), (14, (256, 256, 3)), (17, (512, 256, 3)),
            (19, (512, 512, 3)), (21, (512, 512, 3)), (24, (512, 512, 3)), (26, (512, 512, 3)),
            (28, (512, 512, 3))],
}
LIN_CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}


class ConvertError(Exception):
    pass


def load_state_dict(path, what):
    """A state dict (name -> tensor) from a .pth file."""
    if not os.path.isfile(path):
        raise ConvertError(f"{path}: no such file ({what})")
    try:
        sd = torch.load(path, map_location="cpu")
    except Exception as e:  # a pickle, zip or torch error: not a weights file
        raise ConvertError(f"{path}: cannot be read by torch.load ({what}): {e}")
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise ConvertError(f"{path}: not a state dict ({what}): a {type(sd).__name__}")
    return sd


def take(sd, path, key, shape):
    """sd[key] as a float32 array of exactly `shape`."""
    if key not in sd:
        raise ConvertError(f"{path}: key {key} is missing (is this the right file for the net?)")
    t = sd[key]
    if not isinstance(t, torch.Tensor):
        raise ConvertError(f"{path}: {key} is not a tensor")
    if tuple(t.shape) != tuple(shape):
        raise ConvertError(f"{path}: {key} has shape {tuple(t.shape)}, expected {tuple(shape)} "
                           "(is this the right file for the net?)")
    return np.ascontiguousarray(t.detach().to(torch.float32).numpy())


def write_h5(out, attrs, datasets):
    """Writes OUT.tmp in HDF5's newest format (checksummed metadata), then renames it to OUT."""
    tmp = out + ".tmp"
    try:
        with h5py.File(tmp, "w", libver="latest") as f:
            for k, v in attrs.items():
                # fixed-length strings: bokehlab reads them with H5LTget_attribute_string
                f.attrs[k] = np.int64(v) if isinstance(v, int) else np.bytes_(v.encode())
            for name, v in datasets.items():
                f.create_dataset(name, data=v, dtype=np.float32, chunks=True, fletcher32=True)
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def convert(net, lin_path, trunk_path, out):
    lin = load_state_dict(lin_path, "LPIPS lin layers")
    trunk = load_state_dict(trunk_path, "torchvision trunk")
    data = {}
    for i, (o, c, k) in TRUNKS[net]:
        data[f"params/features.{i}.weight"] = take(trunk, trunk_path, f"features.{i}.weight",
                                                   (o, c, k, k))
        data[f"params/features.{i}.bias"] = take(trunk, trunk_path, f"features.{i}.bias", (o,))
    for l, c in enumerate(LIN_CHANNELS[net]):
        data[f"params/lin{l}.weight"] = take(lin, lin_path, f"lin{l}.model.1.weight",
                                             (1, c, 1, 1))
    attrs = {"format": "bokehlab-lpips", "net": net, "version": 1,
             "source_lin": os.path.basename(lin_path),
             "source_trunk": os.path.basename(trunk_path)}
    write_h5(out, attrs, data)
    return len(data)


def main():
    p = argparse.ArgumentParser(description="Convert LPIPS v0.1 weights to bokehlab's HDF5.")
    p.add_argument("--net", required=True, choices=("alex", "vgg"))
    p.add_argument("--lin", required=True, help="official lin layers, weights/v0.1/<net>.pth")
    p.add_argument("--trunk", required=True, help="torchvision alexnet / vgg16 weights (.pth)")
    p.add_argument("--out", required=True, help="the HDF5 file to write")
    a = p.parse_args()
    try:
        n = convert(a.net, a.lin, a.trunk, a.out)
    except ConvertError as e:
        sys.stderr.write(f"convert_lpips.py: {e}\nconvert_lpips.py: nothing written to {a.out}\n")
        sys.exit(1)
    print(f"wrote {a.out}: LPIPS v0.1 {a.net}, {n} datasets")


if __name__ == "__main__":
    main()
