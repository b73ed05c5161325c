#!/usr/bin/python3
"""export_state_dict.py — a bokehlab checkpoint back to a PyTorch state_dict.

    scripts/export_state_dict.py CKPT.h5 OUT.pth [--critic]

CKPT.h5 is any weights / checkpoint file of SPEC §6 (models/checkpoint.h): root attributes
format = "bokehlab-checkpoint", version = 1, model, variant, step, epoch, config; float32
datasets /params/<name> and /buffers/<name> in PyTorch's names and shapes. OUT.pth gets
torch.save of an OrderedDict name -> float32 tensor holding every parameter and buffer with
its original name and shape (with --critic: the BGGAN critic under /critic/params and
/critic/buffers instead). The keys are in the file's order (HDF5 lists names alphabetically);
load_state_dict does not depend on the order. BatchNorm's num_batches_tracked is not stored in
checkpoints (SPEC §6 ignores it on import) and not written: PyTorch's BatchNorm fills it in
when a state dict without it is loaded. Optimizer state, RNG and kernel choices are not exported.
The file is written as OUT.tmp and renamed into place only when complete.

This file also holds the checkpoint reading and writing the import scripts share
(import_dmshn.py, import_mobilenetv2.py): write_checkpoint writes exactly the layout above,
every dataset chunked with HDF5's Fletcher32 checksum, through OUT.tmp and a rename.

Needs /usr/bin/python3 with torch, h5py and numpy.
"""
import argparse
import collections
import os
import sys

import h5py
import numpy as np

FORMAT = "bokehlab-checkpoint"
VERSION = 1


class CheckpointError(Exception):
    pass


# ------------------------------------------------------------------------------ state dicts

def load_state_dict(path, what):
    """A state dict (name -> tensor) from a .pth file; {"state_dict": ...} / {"model": ...}
    wrappers are unwrapped."""
    import torch
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such file ({what})")
    try:
        sd = torch.load(path, map_location="cpu")
    except Exception as e:  # a pickle, zip or torch error: not a weights file
        raise CheckpointError(f"{path}: cannot be read by torch.load ({what}): {e}")
    for wrapper in ("state_dict", "model"):
        if isinstance(sd, dict) and isinstance(sd.get(wrapper), dict):
            sd = sd[wrapper]
    if not isinstance(sd, dict):
        raise CheckpointError(f"{path}: not a state dict ({what}): a {type(sd).__name__}")
    for k, v in sd.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            raise CheckpointError(f"{path}: entry {k!r} is not a named tensor ({what})")
    return sd


def strip_prefix(sd, prefix="module."):
    """Removes `prefix` (nn.DataParallel's) from the keys that have it."""
    out = collections.OrderedDict()
    for k, v in sd.items():
        key = k[len(prefix):] if k.startswith(prefix) else k
        if key in out:
            raise CheckpointError(f"key {key} appears both with and without the prefix {prefix}")
        out[key] = v
    return out


def check_keys(sd, path, expected, ignore=lambda k: False):
    """Refuses a state dict whose keys are not exactly `expected` (name -> shape), apart from
    keys ignore(k) accepts; names the first missing, extra or mis-shaped key."""
    for k in expected:
        if k not in sd:
            raise CheckpointError(f"{path}: key {k} is missing (is this the right file / --model?)")
    for k in sd:
        if k not in expected and not ignore(k):
            raise CheckpointError(f"{path}: unexpected key {k} (is this the right file / --model?)")
    for k, shape in expected.items():
        got = tuple(sd[k].shape)
        if got != tuple(shape):
            raise CheckpointError(f"{path}: {k} has shape {got}, expected {tuple(shape)}")


def as_f32(t):
    """A tensor's values as a C-order float32 array (exactly, for float32 tensors)."""
    return np.ascontiguousarray(t.detach().cpu().float().numpy())


# ------------------------------------------------------------------------------ checkpoints

def _attr_str(s):
    # fixed-length strings (bokehlab reads them with H5LTget_attribute_string); "" as one NUL
    b = s.encode()
    return np.array(b, dtype=f"S{max(len(b), 1)}")


def write_checkpoint(out, attrs, params, buffers, extra=None):
    """Writes a checkpoint: root attributes (str or int values), /params/<name>, /buffers/<name>
    (float32 arrays) and `extra` {path: (array, dtype)} datasets copied verbatim (a critic,
    optimizer state), all chunked with Fletcher32, in HDF5's newest format (checksummed
    metadata, as bokehlab writes); OUT.tmp, then a rename."""
    tmp = out + ".tmp"
    try:
        with h5py.File(tmp, "w", libver="latest") as f:
            for k, v in attrs.items():
                f.attrs[k] = np.int64(v) if isinstance(v, (int, np.integer)) else _attr_str(v)
            for group, tensors in (("params", params), ("buffers", buffers)):
                for name, v in tensors.items():
                    f.create_dataset(f"{group}/{name}", data=np.asarray(v, dtype=np.float32),
                                     dtype=np.float32, chunks=True, fletcher32=True)
            for path, v in (extra or {}).items():
                v = np.asarray(v)
                if v.size:
                    f.create_dataset(path, data=v, chunks=True, fletcher32=True)
                else:
                    f.create_dataset(path, data=v)
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _attr_value(v):
    """An attribute as str or int: scalars, and the one-element arrays H5LT writes (bokehlab's
    H5LTset_attribute_long_long stores shape (1,))."""
    if isinstance(v, np.ndarray) and v.size == 1:
        v = v.reshape(-1)[0]
    if isinstance(v, (bytes, np.bytes_)):
        return bytes(v).rstrip(b"\0").decode()
    if isinstance(v, (int, np.integer)):
        return int(v)
    return str(v)


def read_checkpoint(path):
    """(attrs, params, buffers, extra) of a checkpoint: attrs {name: str | int}, params and
    buffers {name: float32 array} (file order), extra {path: array} for every other dataset."""
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise CheckpointError(f"{path}: not an HDF5 file, or damaged ({e})")
    with f:
        attrs = {}
        for k, v in f.attrs.items():
            attrs[k] = _attr_value(v)
        if attrs.get("format") != FORMAT:
            raise CheckpointError(f"{path}: not a bokehlab checkpoint (root attribute format is "
                                  f"{attrs.get('format', '(none)')!r}, expected {FORMAT!r})")
        if attrs.get("version") != VERSION:
            raise CheckpointError(f"{path}: checkpoint version {attrs.get('version')}, this script "
                                  f"reads version {VERSION}")
        for k in ("model", "variant"):
            if k not in attrs:
                raise CheckpointError(f"{path}: the checkpoint has no attribute {k}")
        params, buffers, extra = (collections.OrderedDict() for _ in range(3))
        names = []
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        for n in names:
            try:
                data = f[n][()]
            except OSError as e:
                raise CheckpointError(f"{path}: {n} cannot be read: checksum mismatch or damaged "
                                      f"file ({e})")
            group, _, name = n.partition("/")
            if group in ("params", "buffers") and "/" not in name:
                if data.dtype != np.float32:
                    raise CheckpointError(f"{path}: {n} is {data.dtype}, not float32")
                (params if group == "params" else buffers)[name] = data
            else:
                extra[n] = data
    return attrs, params, buffers, extra


# ------------------------------------------------------------------------------ export

def export(ckpt, out, critic=False):
    import torch
    attrs, params, buffers, extra = read_checkpoint(ckpt)
    if critic:
        params = collections.OrderedDict((k[len("critic/params/"):], v) for k, v in extra.items()
                                         if k.startswith("critic/params/"))
        buffers = collections.OrderedDict((k[len("critic/buffers/"):], v) for k, v in extra.items()
                                          if k.startswith("critic/buffers/"))
        if not params:
            raise CheckpointError(f"{ckpt}: no critic (/critic/params) in this checkpoint")
    sd = collections.OrderedDict()
    for group in (params, buffers):
        for name, v in group.items():
            if name in sd:
                raise CheckpointError(f"{ckpt}: {name} is both a parameter and a buffer")
            sd[name] = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
    if not sd:
        raise CheckpointError(f"{ckpt}: the checkpoint holds no tensors")
    tmp = out + ".tmp"
    try:
        torch.save(sd, tmp)
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return attrs, len(params), len(buffers)


def main():
    p = argparse.ArgumentParser(description="Export a bokehlab checkpoint as a PyTorch state_dict.")
    p.add_argument("ckpt", help="the bokehlab checkpoint (.h5)")
    p.add_argument("out", help="the state dict to write (.pth)")
    p.add_argument("--critic", action="store_true", help="export the BGGAN critic (/critic/...)")
    a = p.parse_args()
    try:
        attrs, n_p, n_b = export(a.ckpt, a.out, a.critic)
    except (CheckpointError, OSError) as e:  # OSError: a failed write (disk full)
        sys.stderr.write(f"export_state_dict.py: {e}\nexport_state_dict.py: nothing written to "
                         f"{a.out}\n")
        sys.exit(1)
    variant = f" ({attrs['variant']})" if attrs.get("variant") else ""
    print(f"wrote {a.out}: {attrs['model']}{variant}{' critic' if a.critic else ''}, "
          f"{n_p} parameters and {n_b} buffers")


if __name__ == "__main__":
    main()
