#!/usr/bin/python3
"""test_weight_scripts.py — tests of import_dmshn.py, import_mobilenetv2.py and
export_state_dict.py (needs /usr/bin/python3 with torch, h5py and numpy; not part of
`make check`, run it with `make check-scripts` or directly).

    scripts/test_weight_scripts.py [--forward build/bin/forward]

It builds the state dicts itself — the names and shapes of tests/data/params/*.tsv (the
official DMSHN keys, torchvision's MobileNetV2 keys) with seeded random values — runs each
script as a subprocess in a temporary directory and checks:
  * the checkpoint layout of SPEC §6: root attributes, /params and /buffers with exactly the
    TSV's names and shapes, float32, chunked, Fletcher32; values equal to the sources bit for bit
  * DataParallel's "module." prefix and a {"state_dict": ...} wrapper are removed
  * MobileNetV2 into AMPN: g1.features.* and g2.features.* equal the source, g2's first conv
    has the RGB filters in channels 0-2 and zeros in channel 3, running statistics copied,
    features.18 / classifier / num_batches_tracked ignored, every other tensor and attribute of
    the --into checkpoint unchanged; variants without g1 or g2 get the encoder they have
  * export_state_dict.py gives back the original names, shapes and values, loadable with
    load_state_dict(strict=True) into the PyTorch modules of gen_model_fixtures.py
  * refusals (missing, unexpected, mis-shaped keys, the wrong model, a damaged checkpoint) exit
    non-zero naming the key, leave a previous OUT untouched and no OUT.tmp behind
  * with the forward tool (default build/bin/forward, if it exists): bokehlab loads the
    imported DMSHN and AMPN files and runs them (SPEC §6 interop)
Prints one line per check; exits non-zero at the first failure.
"""
import argparse
import collections
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TSV = os.path.join(ROOT, "tests", "data", "params")
PY = sys.executable
checks = 0


def ok(msg):
    global checks
    checks += 1
    print(f"ok   {msg}")


def read_tsv(model):
    rows = []
    with open(os.path.join(TSV, f"{model}.tsv")) as fp:
        for line in fp:
            if line.startswith("#") or not line.strip():
                continue
            name, shape, kind = line.rstrip("\n").split("\t")
            rows.append((name, tuple(int(d) for d in shape.split("x")), kind))
    return rows


def random_sd(rows, seed, prefix=""):
    g = torch.Generator().manual_seed(seed)
    # small values, so a network made of them computes finite numbers
    return collections.OrderedDict((prefix + n, 0.05 * torch.randn(s, generator=g))
                                   for n, s, _ in rows)


def strip(sd, prefix="module."):
    return collections.OrderedDict((k[len(prefix):], v) for k, v in sd.items())


def script(name):
    return os.path.join(HERE, name)


def run(args, file_limit=None):
    def limit():   # writes beyond file_limit bytes fail with EFBIG (SIGXFSZ ignored)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))
    return subprocess.run([PY] + args, capture_output=True, text=True,
                          preexec_fn=limit if file_limit else None)


def expect_ok(args, what):
    r = run(args)
    assert r.returncode == 0, f"{what}: exit {r.returncode}: {r.stderr}"
    return r


def expect_refused(args, out, what, needle, file_limit=None):
    """Exit non-zero, the message names `needle`, a previous OUT untouched, no OUT.tmp."""
    with open(out, "wb") as fp:
        fp.write(b"previous file")
    r = run(args, file_limit)
    assert r.returncode != 0, f"{what}: accepted"
    last = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ""
    if file_limit:
        # a failed write: h5py's destructors print the error again at length before the
        # script's own message, the last line
        assert needle in last, f"{what}: the last line does not say {needle!r}: {last}"
    else:
        assert "Traceback" not in r.stderr, f"{what}: crashed: {r.stderr}"
        assert needle in r.stderr, f"{what}: the message does not name {needle!r}: {r.stderr}"
    with open(out, "rb") as fp:
        assert fp.read() == b"previous file", f"{what}: the previous {out} was modified"
    assert not os.path.exists(out + ".tmp"), f"{what}: {out}.tmp left behind"
    os.remove(out)
    ok(f"refused {what}: {last if file_limit else r.stderr.strip().splitlines()[0]}")


def check_layout(path, model, variant, rows):
    """The checkpoint layout; returns {params/<name> or buffers/<name>: array}."""
    with h5py.File(path, "r") as f:
        a = f.attrs
        for k, v in (("format", "bokehlab-checkpoint"), ("model", model), ("variant", variant),
                     ("config", "")):
            assert isinstance(a[k], bytes) and a[k].decode() == v, (k, a[k])
        for k, v in (("version", 1), ("step", 0), ("epoch", 0)):
            assert int(a[k]) == v, (k, a[k])
        want = {("params" if kind == "param" else "buffers") + "/" + n: s for n, s, kind in rows}
        got = {}
        f.visititems(lambda n, o: got.__setitem__(n, o) if isinstance(o, h5py.Dataset) else None)
        assert set(got) == set(want), (sorted(set(got) ^ set(want))[:5])
        out = {}
        for n, d in got.items():
            assert d.dtype == np.float32 and d.shape == want[n], (n, d.dtype, d.shape)
            assert d.chunks is not None and d.fletcher32, (n, d.chunks, d.fletcher32)
            out[n] = d[()]
    return out


# ------------------------------------------------------------------------------ DMSHN

def test_dmshn(tmp, forward):
    imp = script("import_dmshn.py")
    rows = read_tsv("dmshn")
    sd = random_sd(rows, 1)
    pth = os.path.join(tmp, "dmshn-20-0.pth")
    torch.save(sd, pth)
    out = os.path.join(tmp, "dmshn.h5")
    expect_ok([imp, "--model", "dmshn", "--pth", pth, "--out", out], "import dmshn")
    got = check_layout(out, "dmshn", "", rows)
    for n, t in sd.items():
        assert np.array_equal(got["params/" + n], t.numpy()), n
    with h5py.File(out, "r") as f:
        assert f.attrs["source"].decode() == "dmshn-20-0.pth"
    ok(f"import_dmshn.py dmshn: {len(rows)} tensors, names/shapes of dmshn.tsv, values exact, "
       "float32 chunked fletcher32, attributes")

    # stacked, saved from nn.DataParallel ("module.net1. ...") inside a {"state_dict": } wrapper
    srows = read_tsv("stacked_dmshn")
    ssd = random_sd(srows, 2, prefix="module.")
    spth = os.path.join(tmp, "stacked.pth")
    torch.save({"state_dict": ssd, "epoch": 12}, spth)
    sout = os.path.join(tmp, "stacked.h5")
    expect_ok([imp, "--model", "stacked_dmshn", "--pth", spth, "--out", sout], "import stacked")
    got = check_layout(sout, "stacked_dmshn", "", srows)
    for n, t in ssd.items():
        assert np.array_equal(got["params/" + n[len("module."):]], t.numpy()), n
    ok(f"import_dmshn.py stacked_dmshn: 'module.' stripped, wrapper unwrapped, {len(srows)} "
       "tensors exact")

    # refusals (into another path: a refused run must leave a previous file alone)
    rout = os.path.join(tmp, "refused.h5")
    bad = dict(sd)
    del bad["decoder_lv2.layer17.2.bias"]
    torch.save(bad, os.path.join(tmp, "bad.pth"))
    expect_refused([imp, "--model", "dmshn", "--pth", os.path.join(tmp, "bad.pth"), "--out", rout],
                   rout, "a missing key", "decoder_lv2.layer17.2.bias")
    bad = dict(sd)
    bad["encoder_lv1.layer4.weight"] = torch.zeros(32, 32, 3, 3)
    torch.save(bad, os.path.join(tmp, "bad.pth"))
    expect_refused([imp, "--model", "dmshn", "--pth", os.path.join(tmp, "bad.pth"), "--out", rout],
                   rout, "an unexpected key", "encoder_lv1.layer4.weight")
    bad = dict(sd)
    bad["decoder_lv1.layer16.weight"] = torch.zeros(64, 128, 4, 4)  # Conv layout, not ConvT
    torch.save(bad, os.path.join(tmp, "bad.pth"))
    expect_refused([imp, "--model", "dmshn", "--pth", os.path.join(tmp, "bad.pth"), "--out", rout],
                   rout, "a mis-shaped key", "decoder_lv1.layer16.weight")
    expect_refused([imp, "--model", "dmshn", "--pth", spth, "--out", rout], rout,
                   "a stacked file imported as dmshn", "encoder_lv1.layer1.weight")
    expect_refused([imp, "--model", "stacked_dmshn", "--pth", pth, "--out", rout], rout,
                   "a dmshn file imported as stacked", "net1.encoder_lv1.layer1.weight")
    expect_refused([imp, "--model", "dmshn", "--pth", pth, "--out", rout], rout,
                   "a write failing half-way (files limited to 1 MB)", "nothing written",
                   file_limit=1 << 20)
    with open(os.path.join(tmp, "junk.pth"), "wb") as fp:
        fp.write(b"not a pickle")
    expect_refused([imp, "--model", "dmshn", "--pth", os.path.join(tmp, "junk.pth"), "--out",
                    rout], rout, "a file that is not a state dict", "junk.pth")

    # export back
    exp = script("export_state_dict.py")
    back = os.path.join(tmp, "back.pth")
    expect_ok([exp, out, back], "export dmshn")
    bsd = torch.load(back)
    assert set(bsd) == set(sd), sorted(set(bsd) ^ set(sd))[:5]
    for n, t in sd.items():
        assert bsd[n].dtype == torch.float32 and bsd[n].shape == t.shape, n
        assert torch.equal(bsd[n], t), n
    sys.path.insert(0, HERE)
    import gen_model_fixtures as G
    G.DMSHN().load_state_dict(bsd, strict=True)
    G.StackedDMSHN().load_state_dict(torch.load((expect_ok([exp, sout, back], "export"),
                                                 back)[1]), strict=True)
    ok("export_state_dict.py: dmshn and stacked_dmshn round-trip exactly and load strictly into "
       "the PyTorch modules")

    if forward:
        x = os.path.join(tmp, "x.h5")
        with h5py.File(x, "w") as f:
            f["x"] = np.random.default_rng(0).random((1, 3, 32, 48), dtype=np.float32)
        for w, m in ((out, "dmshn"), (sout, "stacked_dmshn")):
            y = os.path.join(tmp, "y.h5")
            r = subprocess.run([forward, "--model", m, "--weights", w, "--input", x, "--output", y],
                               capture_output=True, text=True)
            assert r.returncode == 0, f"forward on the imported {m}: {r.stderr}"
            with h5py.File(y, "r") as f:
                yv = f["y"][()]
            with h5py.File(x, "r") as f:
                xv = torch.from_numpy(f["x"][()]).double()
            src = sd if m == "dmshn" else strip(ssd)
            net = (G.DMSHN() if m == "dmshn" else G.StackedDMSHN()).double()
            net.load_state_dict({k: v.double() for k, v in src.items()}, strict=True)
            with torch.no_grad():
                want = net(xv)[0].numpy()
            err = float(np.abs(yv - want).max() / np.abs(want).max())
            assert yv.shape == want.shape and err <= 1e-3, (yv.shape, err)
            ok(f"{os.path.relpath(forward)} runs the imported {m} file: y equals PyTorch float64 "
               f"on the original state dict within {err:.2g} (max|a - b| / max|b|)")
    return out


# ------------------------------------------------------------------------------ MobileNetV2

def torchvision_mobilenet_v2(seed):
    """A state dict with the keys and shapes of torchvision's mobilenet_v2 (features.0 .. 18,
    classifier.1, num_batches_tracked), written out from the AMPN TSV's g1.features (cin = 3)
    plus the parts AMPN does not use."""
    g = torch.Generator().manual_seed(seed)
    sd = collections.OrderedDict()
    for n, s, kind in read_tsv("ampn"):
        if n.startswith("g1.features."):
            v = torch.rand(s, generator=g) + 0.5 if n.endswith("running_var") else \
                0.1 * torch.randn(s, generator=g)
            sd[n[3:]] = v
            if n.endswith("running_var"):
                sd[n[3:-len("running_var")] + "num_batches_tracked"] = torch.tensor(1234)
    sd["features.18.0.weight"] = torch.randn(1280, 320, 1, 1, generator=g)
    for k in ("weight", "bias", "running_mean", "running_var"):
        sd[f"features.18.1.{k}"] = torch.randn(1280, generator=g)
    sd["features.18.1.num_batches_tracked"] = torch.tensor(1234)
    sd["classifier.1.weight"] = torch.randn(1000, 1280, generator=g)
    sd["classifier.1.bias"] = torch.randn(1000, generator=g)
    return sd


def ampn_rows(variant):
    drop = {"no_refine": ("refine.", "att_ref."), "no_g2": ("g2.", "att_iint."),
            "no_attention": ("att_il.", "att_iint.", "att_bl.", "att_ref."),
            "external_mask": ("g1.",)}
    pre = [p for sw in filter(None, variant.split(",")) for p in drop[sw]]
    return [r for r in read_tsv("ampn") if not any(r[0].startswith(p) for p in pre)]


def c_attrs(f, strings, ints):
    """Root attributes as bokehlab's C side writes them: H5LTset_attribute_string (a
    NUL-terminated fixed-length string of strlen + 1 bytes) and H5LTset_attribute_long_long
    (an int64 array of shape (1,))."""
    for k, v in strings.items():
        tid = h5py.h5t.C_S1.copy()
        tid.set_size(len(v.encode()) + 1)
        tid.set_strpad(h5py.h5t.STR_NULLTERM)
        aid = h5py.h5a.create(f.id, k.encode(), tid, h5py.h5s.create(h5py.h5s.SCALAR))
        aid.write(np.array(v.encode() + b"\0", dtype=f"S{len(v.encode()) + 1}"))
    for k, v in ints.items():
        f.attrs[k] = np.array([v], dtype=np.int64)


def write_ampn_ckpt(path, variant, seed, extra_groups=False):
    """An AMPN checkpoint as bokehlab writes it (small random values), optionally with a
    critic-like and an optimizer-like group and an extra attribute."""
    rows = ampn_rows(variant)
    rng = np.random.default_rng(seed)
    vals = {}
    with h5py.File(path, "w", libver="latest") as f:
        c_attrs(f, {"format": "bokehlab-checkpoint", "model": "ampn", "variant": variant,
                    "config": ""}, {"version": 1, "step": 0, "epoch": 0})
        for n, s, kind in rows:
            path_ = ("params/" if kind == "param" else "buffers/") + n
            v = 0.05 * rng.standard_normal(s)
            vals[path_] = (np.abs(v) + 0.5 if n.endswith("running_var") else v).astype(np.float32)
            f.create_dataset(path_, data=vals[path_], chunks=True, fletcher32=True)
        if extra_groups:
            f.attrs["rng_state"] = np.int64(987654321)
            for p in ("optim/generator/g1.features.0.0.weight.m", "critic/params/x"):
                vals[p] = rng.standard_normal((4, 3)).astype(np.float32)
                f.create_dataset(p, data=vals[p], chunks=True, fletcher32=True)
    return rows, vals


def test_mobilenet(tmp, forward):
    imp = script("import_mobilenetv2.py")
    sd = torchvision_mobilenet_v2(3)
    pth = os.path.join(tmp, "mobilenet_v2-b0353104.pth")
    torch.save(sd, pth)
    for variant in ("", "no_refine", "external_mask", "no_g2"):
        into = os.path.join(tmp, f"ampn_{variant or 'full'}.h5")
        rows, before = write_ampn_ckpt(into, variant, 4, extra_groups=variant == "")
        out = os.path.join(tmp, f"ampn_{variant or 'full'}_imagenet.h5")
        r = expect_ok([imp, "--pth", pth, "--into", into, "--out", out], f"import into {variant}")
        got = check_layout_ampn(out, variant, rows, before)
        targets = [g for g in ("g1", "g2") if any(n.startswith(g + ".") for n, _, _ in rows)]
        for g in targets:
            for key, v in sd.items():
                if key.startswith(("features.18.", "classifier.")) or "num_batches" in key:
                    continue
                group = "buffers/" if "running_" in key else "params/"
                have = got[f"{group}{g}.{key}"]
                if g == "g2" and key == "features.0.0.weight":
                    assert have.shape == (32, 4, 3, 3)
                    assert np.array_equal(have[:, :3], v.numpy()), key
                    assert not have[:, 3].any(), "g2's mask channel is not zero"
                else:
                    assert np.array_equal(have, v.numpy()), (g, key)
        changed = {p for p in got if p.split("/")[1].split(".")[0] in targets and
                   ".features." in p}
        for p, v in before.items():
            if p not in changed:
                assert np.array_equal(got[p], v), f"{p} changed"
        if variant == "":
            assert "optimizer state" in r.stderr, r.stderr
        ok(f"import_mobilenetv2.py into ampn {variant or '(full)'}: {' and '.join(targets)} "
           f"features equal torchvision's{', g2 channel 3 zero' if 'g2' in targets else ''}, "
           f"{len(before) - len(changed)} other datasets and the attributes unchanged")
        if forward and variant in ("", "external_mask"):
            x = os.path.join(tmp, "x.h5")
            with h5py.File(x, "w") as f:
                f["x"] = np.random.default_rng(0).random((1, 3, 128, 128), dtype=np.float32)
            args = [forward, "--weights", out, "--input", x, "--output", os.path.join(tmp, "y.h5")]
            if variant:
                m = os.path.join(tmp, "m.h5")
                with h5py.File(m, "w") as f:
                    f["mask"] = np.full((1, 1, 32, 32), 0.5, dtype=np.float32)
                args += ["--mask", m]
            rr = subprocess.run(args, capture_output=True, text=True)
            assert rr.returncode == 0, f"forward on the imported ampn {variant}: {rr.stderr}"
            with h5py.File(os.path.join(tmp, "y.h5"), "r") as f:
                y = f["y"][()]
            sys.path.insert(0, HERE)
            import gen_model_fixtures as G
            net = G.AMPN(variant).double()
            state = {n.split("/", 1)[1]: torch.from_numpy(v).double() for n, v in got.items()
                     if n.split("/")[0] in ("params", "buffers")}
            net.load_state_dict(state, strict=True)
            net.eval()
            with h5py.File(x, "r") as f:
                xv = torch.from_numpy(f["x"][()]).double()
            mv = torch.full((1, 1, 32, 32), 0.5, dtype=torch.float64) if variant else None
            with torch.no_grad():
                want = net(xv, mv)[0].numpy()
            err = float(np.abs(y - want).max() / np.abs(want).max())
            assert y.shape == want.shape and err <= 1e-3, (y.shape, err)
            ok(f"{os.path.relpath(forward)} runs the ampn {variant or '(full)'} file with ImageNet "
               f"encoders: y equals PyTorch float64 within {err:.2g}")

    into = os.path.join(tmp, "ampn_full.h5")
    out = os.path.join(tmp, "refused.h5")
    bad = dict(sd)
    del bad["features.7.conv.1.1.running_var"]
    torch.save(bad, os.path.join(tmp, "bad.pth"))
    expect_refused([imp, "--pth", os.path.join(tmp, "bad.pth"), "--into", into, "--out", out], out,
                   "a missing key", "features.7.conv.1.1.running_var")
    bad = dict(sd)
    bad["features.3.conv.2.weight"] = torch.zeros(24, 144, 3, 3)
    torch.save(bad, os.path.join(tmp, "bad.pth"))
    expect_refused([imp, "--pth", os.path.join(tmp, "bad.pth"), "--into", into, "--out", out], out,
                   "a mis-shaped key", "features.3.conv.2.weight")
    bad = dict(sd)
    bad["features.19.0.weight"] = torch.zeros(3)
    torch.save(bad, os.path.join(tmp, "bad.pth"))
    expect_refused([imp, "--pth", os.path.join(tmp, "bad.pth"), "--into", into, "--out", out], out,
                   "an unexpected key", "features.19.0.weight")
    rows = read_tsv("dmshn")
    dm = os.path.join(tmp, "dm_into.h5")
    with h5py.File(dm, "w") as f:
        c_attrs(f, {"format": "bokehlab-checkpoint", "model": "dmshn", "variant": ""},
                {"version": 1})
    expect_refused([imp, "--pth", pth, "--into", into, "--out", out], out,
                   "a copy failing half-way (files limited to 1 MB)", "nothing written",
                   file_limit=1 << 20)
    expect_refused([imp, "--pth", pth, "--into", dm, "--out", out], out, "a dmshn checkpoint",
                   "not ampn")
    both = os.path.join(tmp, "both.h5")
    write_ampn_ckpt(both, "external_mask,no_g2", 5)
    expect_refused([imp, "--pth", pth, "--into", both, "--out", out], out,
                   "a variant with neither encoder", "neither g1 nor g2")
    # a damaged checkpoint: a bit flipped inside g2.features.0.0.weight's values
    dmg = os.path.join(tmp, "damaged.h5")
    shutil.copyfile(into, dmg)
    with h5py.File(into, "r") as f:
        first = f["params/g2.features.0.0.weight"][()].reshape(-1)[:4].tobytes()
    data = bytearray(open(dmg, "rb").read())
    at = data.find(first)
    assert at > 0 and data.find(first, at + 1) < 0
    data[at + 6] ^= 0x10
    open(dmg, "wb").write(bytes(data))
    expect_refused([imp, "--pth", pth, "--into", dmg, "--out", out], out,
                   "a checkpoint with a flipped bit", "g2.features.0.0.weight")
    # an old-style CKPT without the 4-channel first conv
    rows, _ = write_ampn_ckpt(os.path.join(tmp, "shape.h5"), "", 6)
    with h5py.File(os.path.join(tmp, "shape.h5"), "r+") as f:
        del f["params/g2.features.0.0.weight"]
        f.create_dataset("params/g2.features.0.0.weight", data=np.zeros((32, 3, 3, 3), np.float32))
    expect_refused([imp, "--pth", pth, "--into", os.path.join(tmp, "shape.h5"), "--out", out], out,
                   "a checkpoint whose g2 first conv has 3 channels", "g2.features.0.0.weight")

    # export: the full AMPN file back, with its buffers
    exp = script("export_state_dict.py")
    src = os.path.join(tmp, "ampn_full_imagenet.h5")
    back = os.path.join(tmp, "ampn_back.pth")
    expect_ok([exp, src, back], "export ampn")
    bsd = torch.load(back)
    with h5py.File(src, "r") as f:
        for n, s, kind in read_tsv("ampn"):
            d = f[("params/" if kind == "param" else "buffers/") + n][()]
            assert bsd[n].shape == s and np.array_equal(bsd[n].numpy(), d), n
    assert len(bsd) == len(read_tsv("ampn")), len(bsd)
    sys.path.insert(0, HERE)
    import gen_model_fixtures as G
    G.AMPN().load_state_dict(bsd, strict=True)
    ext = os.path.join(tmp, "ampn_external_mask_imagenet.h5")
    G.AMPN("external_mask").load_state_dict(torch.load((expect_ok([exp, ext, back], "export"),
                                                        back)[1]), strict=True)
    ok("export_state_dict.py: ampn (params and buffers) and ampn external_mask round-trip exactly "
       "and load strictly into the PyTorch modules")
    cr = os.path.join(tmp, "critic.pth")
    expect_ok([exp, src, cr, "--critic"], "export the critic")
    assert list(torch.load(cr)) == ["x"], list(torch.load(cr))
    ok("export_state_dict.py --critic exports /critic/params")
    expect_refused([exp, dmg, os.path.join(tmp, "x.pth")], os.path.join(tmp, "x.pth"),
                   "exporting a damaged checkpoint", "g2.features.0.0.weight")
    expect_refused([exp, pth, os.path.join(tmp, "x.pth")], os.path.join(tmp, "x.pth"),
                   "exporting a file that is not a checkpoint", "mobilenet_v2-b0353104.pth")


def check_layout_ampn(path, variant, rows, before):
    """The layout of an AMPN checkpoint written by the importer (the model's datasets plus the
    extra groups of the source); returns every dataset."""
    with h5py.File(path, "r") as f:
        assert f.attrs["model"].decode() == "ampn" and f.attrs["variant"].decode() == variant
        assert f.attrs["imagenet_source"].decode() == "mobilenet_v2-b0353104.pth"
        if "optim/generator/g1.features.0.0.weight.m" in before:
            assert int(f.attrs["rng_state"]) == 987654321
        got = {}
        f.visititems(lambda n, o: got.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset)
                     else None)
        assert set(got) == set(before), sorted(set(got) ^ set(before))[:5]
        for n in got:
            d = f[n]
            assert d.dtype == np.float32 and d.chunks is not None and d.fletcher32, n
    return got


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--forward", default=os.path.join(ROOT, "build", "bin", "forward"),
                   help="bokehlab's forward tool (skipped if it does not exist)")
    a = p.parse_args()
    forward = a.forward if os.access(a.forward, os.X_OK) else None
    if not forward:
        print(f"note: {a.forward} not found: the checks that bokehlab loads the files are skipped")
    torch.manual_seed(0)
    tmp = tempfile.mkdtemp(prefix="bk_weight_scripts_")
    try:
        test_dmshn(tmp, forward)
        test_mobilenet(tmp, forward)
    finally:
        shutil.rmtree(tmp)
    print(f"{checks} checks passed")


if __name__ == "__main__":
    main()
