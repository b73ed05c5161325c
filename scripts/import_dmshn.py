#!/usr/bin/python3
"""import_dmshn.py — the official DMSHN / Stacked DMSHN PyTorch weights as a bokehlab checkpoint.

    scripts/import_dmshn.py --model dmshn|stacked_dmshn --pth FILE --out OUT.h5

FILE  a state dict of saikatdutta/Stacked_DMSHN_bokeh (DMSHN.py / stacked_DMSHN.py), e.g.
      dmshn-20-0.pth: keys encoder_lv1.layer1.weight ... decoder_lv3.layer24.bias; the stacked
      model's keys have net1. / net2. in front. A "module." prefix (the files saved from
      nn.DataParallel) is removed, and {"state_dict": ...} / {"model": ...} wrappers unwrapped.

OUT.h5 is the checkpoint of SPEC §6 (models/checkpoint.h): root attributes format =
"bokehlab-checkpoint", version = 1, model, variant = "", step = 0, epoch = 0, config = "" and
source (the input file name); float32 datasets /params/<name> with the official names and
shapes, chunked with the Fletcher32 checksum. build/bin/forward and the trainers read it as
they read their own checkpoints. A missing, unexpected or mis-shaped key is refused with a
message naming it; the file is written as OUT.tmp and renamed into place only when complete,
so a failed run never leaves a partial OUT.

Expected names. They are derived here from the architecture of SPEC §2 (the same rules that
generate params/dmshn.tsv: a conv per layer1/5/9/24, a ConvTranspose per layer16/20, residual
blocks .0/.2 elsewhere) rather than read from tests/data/params, so the script works from an
installed checkout that has no tests; the derivation is checked against the parameter counts
SPEC gives (5,424,393 and 10,848,786) every time it runs, and scripts/test_weight_scripts.py
checks it against the TSVs.

Needs /usr/bin/python3 with torch, h5py and numpy.
"""
import argparse
import collections
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_state_dict import (CheckpointError, as_f32, check_keys, load_state_dict,  # noqa: E402
                               strip_prefix, write_checkpoint)

TOTALS = {"dmshn": 5424393, "stacked_dmshn": 10848786}  # SPEC §2


def dmshn_shapes(prefix=""):
    """name -> shape of one DMSHN, in the official module order."""
    out = collections.OrderedDict()

    def conv(name, cout, cin, k=3):
        out[f"{name}.weight"] = (cout, cin, k, k)
        out[f"{name}.bias"] = (cout,)

    def deconv(name, cin, cout):
        out[f"{name}.weight"] = (cin, cout, 4, 4)   # ConvTranspose2d: (in, out, k, k)
        out[f"{name}.bias"] = (cout,)

    def rb(name, c):
        conv(f"{name}.0", c, c)
        conv(f"{name}.2", c, c)

    for lv in (1, 2, 3):
        m = f"{prefix}encoder_lv{lv}"
        conv(f"{m}.layer1", 32, 3)
        rb(f"{m}.layer2", 32), rb(f"{m}.layer3", 32)
        conv(f"{m}.layer5", 64, 32)
        rb(f"{m}.layer6", 64), rb(f"{m}.layer7", 64)
        conv(f"{m}.layer9", 128, 64)
        rb(f"{m}.layer10", 128), rb(f"{m}.layer11", 128)
    for lv in (1, 2, 3):
        m = f"{prefix}decoder_lv{lv}"
        rb(f"{m}.layer13", 128), rb(f"{m}.layer14", 128)
        deconv(f"{m}.layer16", 128, 64)
        rb(f"{m}.layer17", 64), rb(f"{m}.layer18", 64)
        deconv(f"{m}.layer20", 64, 32)
        rb(f"{m}.layer21", 32), rb(f"{m}.layer22", 32)
        conv(f"{m}.layer24", 3, 32)
    return out


def expected(model):
    if model == "dmshn":
        shapes = dmshn_shapes()
    else:
        shapes = dmshn_shapes("net1.")
        shapes.update(dmshn_shapes("net2."))
    total = sum(int(np.prod(s)) for s in shapes.values())
    assert total == TOTALS[model], (model, total)
    return shapes


def convert(model, pth, out):
    shapes = expected(model)
    sd = strip_prefix(load_state_dict(pth, f"official {model}"))
    check_keys(sd, pth, shapes)
    params = collections.OrderedDict((k, as_f32(sd[k])) for k in shapes)
    attrs = {"format": "bokehlab-checkpoint", "version": 1, "model": model, "variant": "",
             "step": 0, "epoch": 0, "config": "", "source": os.path.basename(pth)}
    write_checkpoint(out, attrs, params, {})
    return len(params)


def main():
    p = argparse.ArgumentParser(description="Import official DMSHN / Stacked DMSHN weights.")
    p.add_argument("--model", required=True, choices=("dmshn", "stacked_dmshn"))
    p.add_argument("--pth", required=True, help="the official state dict (.pth)")
    p.add_argument("--out", required=True, help="the bokehlab checkpoint to write (.h5)")
    a = p.parse_args()
    try:
        n = convert(a.model, a.pth, a.out)
    except (CheckpointError, OSError) as e:  # OSError: a failed write (disk full)
        sys.stderr.write(f"import_dmshn.py: {e}\nimport_dmshn.py: nothing written to {a.out}\n")
        sys.exit(1)
    print(f"wrote {a.out}: {a.model}, {n} tensors, {TOTALS[a.model]} parameters")


if __name__ == "__main__":
    main()
