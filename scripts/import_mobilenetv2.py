#!/usr/bin/python3
"""import_mobilenetv2.py — torchvision's ImageNet MobileNetV2 weights into AMPN's encoders.

    scripts/import_mobilenetv2.py --pth mobilenet_v2-b0353104.pth --into CKPT.h5 --out OUT.h5

--pth   torchvision's MobileNetV2 state dict (mobilenet_v2-b0353104.pth): keys features.0 ..
        features.18 and classifier.1 (features.18 and the classifier are not used by AMPN and
        ignored, as are the num_batches_tracked counters; any other key is refused)
--into  an AMPN checkpoint (SPEC §6, model "ampn", any variant): OUT is this file with the
        encoders replaced, everything else (the other tensors, a critic, optimizer state, the
        attributes) copied unchanged
--out   the checkpoint to write (may equal --into: it is replaced atomically)

AMPN's G(cin, cout) encoders are torchvision's features[:18] with the same module names (SPEC
§4), so features.<i>.<rest> goes to g1.features.<i>.<rest> and g2.features.<i>.<rest>, the
BatchNorm running statistics to /buffers. g1 sees RGB (3 channels) and takes the weights as
they are; g2 sees cat(I_L, M_L) (4 channels): its first conv g2.features.0.0.weight
(32, 4, 3, 3) gets the RGB filters in input channels 0-2 and zeros in channel 3, so the network
starts out ignoring the mask. A variant without g1 (external_mask) or without g2 (no_g2) gets
only the encoder it has. The expected names and shapes are derived here from torchvision's
MobileNetV2 definition (inverted residual settings t, c, n, s of SPEC §4), not read from
tests/data/params, so the script works from an installed checkout; every name must also be in
CKPT with the shape derived here. A missing, unexpected or mis-shaped key is refused with a
message naming it; OUT is written as OUT.tmp and renamed into place only when complete.

Why --into is required: a fresh AMPN needs SPEC §4's initialisation of the ~400 other tensors
(decoders, heads, attention, refinement), which is bokehlab's own job (bk_model_create);
re-implementing it here would be a second definition of the model to keep in step. Take any
AMPN checkpoint of the wanted variant (e.g. the trainer's step-0 checkpoint) as CKPT.
If CKPT holds optimizer state (/optim), its moments for the encoders no longer match the new
weights: the script says so (it is kept; start a new run from OUT to drop it).

Needs /usr/bin/python3 with torch, h5py and numpy.
"""
import argparse
import collections
import os
import shutil
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_state_dict import (CheckpointError, _attr_str, as_f32, check_keys,  # noqa: E402
                               load_state_dict, read_checkpoint)

# torchvision MobileNetV2 inverted residual settings (t, c, n, s), features.1 .. features.17
SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
            (6, 160, 3, 2), (6, 320, 1, 1)]
FEATURES_PARAMS = 1811712   # features[:18] of torchvision's mobilenet_v2 (3 input channels)


def features_shapes(cin=3):
    """(params, buffers): name -> shape for features.0 .. features.17, in torchvision's order."""
    params, buffers = collections.OrderedDict(), collections.OrderedDict()

    def conv(name, cout, cin_, k, groups=1):
        params[f"{name}.weight"] = (cout, cin_ // groups, k, k)

    def bn(name, c):
        params[f"{name}.weight"] = (c,)
        params[f"{name}.bias"] = (c,)
        buffers[f"{name}.running_mean"] = (c,)
        buffers[f"{name}.running_var"] = (c,)

    conv("features.0.0", 32, cin, 3)
    bn("features.0.1", 32)
    i, c_in = 1, 32
    for t, c, n, _ in SETTINGS:
        for _ in range(n):
            hidden = c_in * t
            m, k = f"features.{i}.conv", 0
            if t != 1:
                conv(f"{m}.0.0", hidden, c_in, 1)
                bn(f"{m}.0.1", hidden)
                k = 1
            conv(f"{m}.{k}.0", hidden, hidden, 3, groups=hidden)
            bn(f"{m}.{k}.1", hidden)
            conv(f"{m}.{k + 1}", c, hidden, 1)
            bn(f"{m}.{k + 2}", c)
            i, c_in = i + 1, c
    return params, buffers


def torchvision_ignored(key):
    """Keys of torchvision's file AMPN does not use."""
    return (key.startswith(("features.18.", "classifier.")) or
            key.endswith(".num_batches_tracked"))


def convert(pth, into, out):
    p_shapes, b_shapes = features_shapes(3)
    n = sum(int(np.prod(s)) for s in p_shapes.values())
    assert n == FEATURES_PARAMS, n
    sd = load_state_dict(pth, "torchvision mobilenet_v2")
    check_keys(sd, pth, collections.OrderedDict(list(p_shapes.items()) + list(b_shapes.items())),
               ignore=torchvision_ignored)
    attrs, params, buffers, extra = read_checkpoint(into)
    if attrs["model"] != "ampn":
        raise CheckpointError(f"{into}: holds a {attrs['model']} model, not ampn")
    targets = [g for g in ("g1", "g2") if any(k.startswith(g + ".features.") for k in params)]
    if not targets:
        raise CheckpointError(f"{into}: ampn variant {attrs['variant']!r} has neither g1 nor g2")
    updates = []
    for g in targets:
        for group, shapes, have in (("params", p_shapes, params), ("buffers", b_shapes, buffers)):
            for key, shape in shapes.items():
                name = f"{g}.{key}"
                want = (32, 4, 3, 3) if g == "g2" and key == "features.0.0.weight" else shape
                if name not in have:
                    raise CheckpointError(f"{into}: /{group}/{name} is missing (not an AMPN "
                                          f"checkpoint with the G of SPEC §4?)")
                if tuple(have[name].shape) != want:
                    raise CheckpointError(f"{into}: /{group}/{name} has shape "
                                          f"{tuple(have[name].shape)}, expected {want}")
                v = as_f32(sd[key])
                if want != shape:          # g2's first conv: RGB filters, the mask channel zero
                    w = np.zeros(want, dtype=np.float32)
                    w[:, :3] = v
                    v = w
                updates.append((f"{group}/{name}", v))
    if any(k.startswith("optim/") for k in extra):
        sys.stderr.write(f"import_mobilenetv2.py: note: {into} holds optimizer state (/optim); it "
                         "is kept, but its moments for g1/g2.features no longer match\n")
    # a copy of CKPT with the encoders' values overwritten in place: every other object and
    # attribute stays exactly as it was; HDF5 recomputes the Fletcher32 checksums
    tmp = out + ".tmp"
    try:
        shutil.copyfile(into, tmp)
        with h5py.File(tmp, "r+") as f:
            for path, v in updates:
                f[path][...] = v
            f.attrs["imagenet_source"] = _attr_str(os.path.basename(pth))
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return targets, len(updates)


def main():
    p = argparse.ArgumentParser(description="Copy torchvision MobileNetV2 ImageNet weights into "
                                "an AMPN checkpoint's encoders g1 and g2.")
    p.add_argument("--pth", required=True, help="torchvision mobilenet_v2-b0353104.pth")
    p.add_argument("--into", required=True, help="the AMPN checkpoint to start from (.h5)")
    p.add_argument("--out", required=True, help="the checkpoint to write (.h5)")
    a = p.parse_args()
    try:
        targets, n = convert(a.pth, a.into, a.out)
    except (CheckpointError, OSError) as e:  # OSError: a failed write (disk full)
        sys.stderr.write(f"import_mobilenetv2.py: {e}\nimport_mobilenetv2.py: nothing written to "
                         f"{a.out}\n")
        sys.exit(1)
    print(f"wrote {a.out}: ImageNet MobileNetV2 features[:18] into {' and '.join(targets)} "
          f"({n} tensors)")


if __name__ == "__main__":
    main()
