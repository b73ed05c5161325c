#!/usr/bin/python3
"""convert_vgg19.py — torchvision's VGG-19 ImageNet weights to bokehlab's HDF5 layout for the
relu5_4 perceptual loss (losses/vgg.h).

    scripts/convert_vgg19.py --weights VGG19.pth --out OUT.h5

VGG19.pth  torchvision's vgg19-dcbb9e9d.pth (keys features.<i>.weight / .bias; classifier.* is
           ignored)

OUT.h5: root attributes format = "bokehlab-vgg19", net = "vgg19", version = 1, source (the input
file name); float32 datasets /params/features.<i>.weight and .bias for the 16 convolutions
i = 0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34 (everything up to relu5_4 =
features[35]), chunked with the Fletcher32 checksum. A missing key or a wrong shape is refused
with a message naming it; the file is written as OUT.tmp and renamed into place only when
complete, so a failed run never leaves a partial OUT.

Needs /usr/bin/python3 with torch and h5py.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from convert_lpips import ConvertError, load_state_dict, take, write_h5  # noqa: E402

# torchvision feature index, (out, in) of the 3x3 convolutions of vgg19().features[:36]
CONVS = [(0, 64, 3), (2, 64, 64), (5, 128, 64), (7, 128, 128), (10, 256, 128), (12, 256, 256),
         (14, 256, 256), (16, 256, 256), (19, 512, 256), (21, 512, 512), (23, 512, 512),
         (25, 512, 512), (28, 512, 512), (30, 512, 512), (32, 512, 512), (34, 512, 512)]


def convert(path, out):
    sd = load_state_dict(path, "torchvision vgg19")
    data = {}
    for i, o, c in CONVS:
        data[f"params/features.{i}.weight"] = take(sd, path, f"features.{i}.weight", (o, c, 3, 3))
        data[f"params/features.{i}.bias"] = take(sd, path, f"features.{i}.bias", (o,))
    attrs = {"format": "bokehlab-vgg19", "net": "vgg19", "version": 1,
             "source": os.path.basename(path)}
    write_h5(out, attrs, data)
    return len(data)


def main():
    p = argparse.ArgumentParser(
        description="Convert torchvision VGG-19 weights to bokehlab's HDF5.")
    p.add_argument("--weights", required=True, help="torchvision vgg19 weights (.pth)")
    p.add_argument("--out", required=True, help="the HDF5 file to write")
    a = p.parse_args()
    try:
        n = convert(a.weights, a.out)
    except ConvertError as e:
        sys.stderr.write(f"convert_vgg19.py: {e}\nconvert_vgg19.py: nothing written to {a.out}\n")
        sys.exit(1)
    print(f"wrote {a.out}: VGG-19 features up to relu5_4, {n} datasets")


if __name__ == "__main__":
    main()
