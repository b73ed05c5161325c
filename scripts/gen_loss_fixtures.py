#!/usr/bin/python3
"""gen_loss_fixtures.py — PyTorch / skimage reference values for the loss and metric tests
(tests/test_losses.c, tests/test_metrics.c), and the test of the weight converters.

    scripts/gen_loss_fixtures.py OUTDIR        (OUTDIR = tests/fixtures)
    scripts/gen_loss_fixtures.py --search-wgan N   (re-derive WGAN_KEY: ~4 minutes for 4000)

writes OUTDIR/losses.h5 and OUTDIR/metrics.h5, and runs scripts/convert_lpips.py and
scripts/convert_vgg19.py on state dicts made here (in a temporary directory), checking what they
write and what they refuse. Needs /usr/bin/python3 with torch, h5py, numpy and skimage
(Debian's python3-skimage). Deterministic: the data come from formulas and one seeded numpy
generator (the metric images); running twice gives the same numbers.

Precision. The float32 inputs are exact (see "Images"); the references are computed by PyTorch in
float64 from exactly those values (float constants such as the MS-SSIM weights rounded to float32
first, as C passes them) and stored as float32, so the tolerance budget is left to bokehlab.

Formula weights
---------------
The networks are too large to commit (AlexNet 2.5M, VGG16 14.7M, VGG19 20M, the critic 13.9M
parameters), so both sides compute the same "formula weights" (tests/support/formula_weights.c is
the C side; they agree bit for bit, checked through the /formula datasets). For a tensor with key
K = "<net>/<name>" (net alex, vgg16, vgg19 or critic; name the PyTorch parameter name) and n
values in PyTorch C order, value i is
    z = mix(fnv1a64(K) + i)   (uint64 arithmetic; mix = splitmix64's finaliser)
    u = (z >> 40) / 2^24      (exact in float32)
    v = scale * (2u - 1)      (float32: 2u - 1 is exact, the product rounds once)
with the scale (a float32) by rule:
    backbone conv weights        sqrt(6 / fan_in)  (He-uniform: ReLU activations stay O(1))
    LPIPS lin<l>.weight          1
    critic convs.<k>.weight      0.02 sqrt(3)      (uniform with standard deviation 0.02, as the
                                                    N(0, 0.02^2) init)
    critic <critic>.final.weight 0.0035            (||g_n|| of the penalty comes out at 0.9-2.6;
                                                    with 0.02 sqrt(3) it would be 9-25)
    every bias                   0.1
sqrt is computed in double and rounded to float32 on both sides.

Images
------
Inputs are integer images v in [0, 4095] computed by the same integer formula on both sides
(formula_weights.c), mapped to float32 exactly: range 1 -> v / 4096 in [0, 1), range 2 ->
v / 2048 - 1 in [-1, 1). noise(K, bits)_i = mix(fnv1a64(K) + i) >> (64 - bits), i the NCHW index.
For an image N,C,H,W and a pair key P (all divisions floor divisions of non-negative integers):
    ramp   = ((h (2+c') + w (4+n)) 2048) / (H (2+c') + W (4+n))        c' = c mod 3
    bump   = 1024 (R2 - min(R2, (h-cy)^2 + (w-cx)^2)) / R2
             cy = H (1+c') / 4, cx = W (3-c') / 4, R2 = (min(H,W) / 3)^2 + 1
    coarse = ramp + bump
    blur(x) = (sum_{i,j in -1..1} k_i k_j x[clamp(h+i), clamp(w+j)] + 8) / 16, k = (1, 2, 1)
    shift(x)[h, w] = x[clamp(h-2), clamp(w-3)]                  (clamp to the image)
kinds (clip = clamp to [0, 4095]):
    random  a = noise(P/a, 12);  b = clip(a + noise(P/b, 11) - 1024)
    smooth  a = clip(coarse + noise(P/a, 8) - 128 + 512)
            b = clip(blur(shift(a)) + noise(P/b, 6) - 32)
    anti    a = clip(coarse + noise(P/a, 10) - 512 + 512); b as smooth for c >= 1, and for c = 0
            b = clip(3072 - coarse + noise(P/a, 10) - 512 + 512): the same fine detail, the coarse
            structure inverted, so cs_l > 0 at fine levels and < 0 at coarse ones
    const   a = 1229, b = 2458
Each case records sum(a) and sum(b) of the integers (a_isum, b_isum) so the C side can check it
made the same images.

Layout of losses.h5 (datasets float32, PyTorch NCHW order and shapes; shuffle + gzip)
------------------------------------------------------------------------------------
root attributes format "bokehlab-loss-fixtures-1", torch_version, command, reference (strings)
/formula            for each net in (alex, vgg16, vgg19, critic): attribute <net>_names (the
                    tensor names, comma-separated, in bokehlab's parameter order), datasets
                    <net>_scales (one float32 per tensor) and <net>_probe (the values at
                    indices k (n-1) / 3, k = 0..3, of each tensor): exact formula values
/<case>             one group per case, attribute family:
  l1, ssim, msssim  attributes kind, key, shape (int[4]), range (1 or 2), a_isum, b_isum,
                    torch_f32_grad_err (torch float32 against float64, relative to max|grad|);
                    ssim and msssim also data_range (double); msssim mode ("standard" or
                    "dmshn_compat"); datasets value (shape ()) and grad_a = d value / d a
                    (absent in the two value-only cases at 176x180, kept out to keep the file
                    small: their gradients are checked at 2x3x181x177, 176x176 and mid sizes)
                    msssim cases of kind anti also hold cs_sign (N,C,5,1 float): the sign of
                    each level's cs (level 4: ssim), as the reference saw them
  lpips             attributes net ("alex" or "vgg"), kind, key, shape, range 2, a_isum, b_isum;
                    datasets value (N,) per-image distances and grad_a = d sum(value) / d a
  vgg               attributes minus_one_to_one (int), kind, key, shape, range, a_isum, b_isum;
                    datasets value () and grad_a
  wgan              attributes lambda_gp, real_key, fake_key (kinds smooth / random, range 2,
                    the a image of each pair; see WGAN_KEY), shape, real_isum, fake_isum,
                    kink_margin and kink_margin_conv0 (smallest |LeakyReLU input|); datasets
                    alpha (N,1,1,1); loss (); d_real, d_fake, penalty (2,) per critic (patch,
                    full); gen_loss () and gen_grad_fake (the generator loss and its gradient
                    with respect to fake); and under grad/<parameter name>/ the critic loss's
                    gradient with respect to that parameter:
                        tensors of <= 20000 values: full (the gradient itself, PyTorch shape)
                        larger ones (convs.1 and up): idx (float indices into the C-order
                        values: a fixed formula sample of 4096 plus the argmax), sample (the
                        values there), sum_o / sum_i / sum_t (sums over everything but the
                        output channel / the input channel / the kernel tap), stats (max|g|,
                        ||g||_2)
                    attributes of each grad/<name> group: analytic_zero (1 for the biases of
                    the convs followed by instance norm and for the final biases, whose
                    gradient is zero up to rounding), f32_rel_err (torch float32 against
                    float64, relative to max|g|: the noise floor of a float32 computation)
Layout of metrics.h5
--------------------
root attributes as above with format "bokehlab-metric-fixtures-1" and skimage_version;
/pair_<k> groups: datasets a (ground truth), b (prediction), uint8 H,W,3; attributes what
(string), psnr, ssim (skimage, double; psnr +inf for an identical pair) and lpips (LPIPS v0.1
alex with the formula weights on x / 127.5 - 1, torch float64).
"""
import os
import shlex
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import torch
import torch.nn.functional as F

torch.set_grad_enabled(True)
DT = torch.float64
HERE = os.path.dirname(os.path.abspath(__file__))
U64 = np.uint64


def f32(v):
    return float(np.float32(v))


# ------------------------------------------------------------------------------ formula weights

def fnv1a64(key):
    h = 0xcbf29ce484222325
    for byte in key.encode():
        h ^= byte
        h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def mix(z):
    """splitmix64's finaliser on a uint64 array (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = (z ^ (z >> U64(30))) * U64(0xbf58476d1ce4e5b9)
        z = (z ^ (z >> U64(27))) * U64(0x94d049bb133111eb)
        return z ^ (z >> U64(31))


def hashed(key, n):
    with np.errstate(over="ignore"):
        return mix(U64(fnv1a64(key)) + np.arange(n, dtype=np.uint64))


def formula_values(key, n, scale):
    u = (hashed(key, n) >> U64(40)).astype(np.float32) / np.float32(16777216.0)
    return np.float32(scale) * (np.float32(2.0) * u - np.float32(1.0))


CRITIC_CONV_SCALE = np.float32(0.02 * np.sqrt(3.0))
CRITIC_FINAL_SCALE = np.float32(0.0035)
BIAS_SCALE = np.float32(0.1)
LIN_SCALE = np.float32(1.0)


def scale_rule(net, name, shape):
    if name.endswith(".bias"):
        return BIAS_SCALE
    if net == "critic":
        return CRITIC_FINAL_SCALE if ".final." in name else CRITIC_CONV_SCALE
    if name.startswith("lin"):
        return LIN_SCALE
    fan_in = shape[1] * shape[2] * shape[3]
    return np.float32(np.sqrt(6.0 / fan_in))


# torchvision feature stacks as in losses/backbone.c: (index, cin, cout, k, stride, pad, tap) for a
# conv (ReLU after it), (index, "pool", k) for a max pool with stride 2
def conv(i, ci, co, k, s, p, t=-1):
    return (i, ci, co, k, s, p, t)


def pool(i, k):
    return (i, "pool", k)


ALEX = [conv(0, 3, 64, 11, 4, 2, 0), pool(2, 3), conv(3, 64, 192, 5, 1, 2, 1), pool(5, 3),
        conv(6, 192, 384, 3, 1, 1, 2), conv(8, 384, 256, 3, 1, 1, 3),
        conv(10, 256, 256, 3, 1, 1, 4)]
VGG16 = [conv(0, 3, 64, 3, 1, 1), conv(2, 64, 64, 3, 1, 1, 0), pool(4, 2),
         conv(5, 64, 128, 3, 1, 1), conv(7, 128, 128, 3, 1, 1, 1), pool(9, 2),
         conv(10, 128, 256, 3, 1, 1), conv(12, 256, 256, 3, 1, 1), conv(14, 256, 256, 3, 1, 1, 2),
         pool(16, 2),
         conv(17, 256, 512, 3, 1, 1), conv(19, 512, 512, 3, 1, 1), conv(21, 512, 512, 3, 1, 1, 3),
         pool(23, 2),
         conv(24, 512, 512, 3, 1, 1), conv(26, 512, 512, 3, 1, 1), conv(28, 512, 512, 3, 1, 1, 4)]
VGG19 = [conv(0, 3, 64, 3, 1, 1), conv(2, 64, 64, 3, 1, 1), pool(4, 2),
         conv(5, 64, 128, 3, 1, 1), conv(7, 128, 128, 3, 1, 1), pool(9, 2),
         conv(10, 128, 256, 3, 1, 1), conv(12, 256, 256, 3, 1, 1), conv(14, 256, 256, 3, 1, 1),
         conv(16, 256, 256, 3, 1, 1), pool(18, 2),
         conv(19, 256, 512, 3, 1, 1), conv(21, 512, 512, 3, 1, 1), conv(23, 512, 512, 3, 1, 1),
         conv(25, 512, 512, 3, 1, 1), pool(27, 2),
         conv(28, 512, 512, 3, 1, 1), conv(30, 512, 512, 3, 1, 1), conv(32, 512, 512, 3, 1, 1),
         conv(34, 512, 512, 3, 1, 1, 0)]
STACKS = {"alex": ALEX, "vgg16": VGG16, "vgg19": VGG19}
TAP_CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg16": (64, 128, 256, 512, 512)}


def backbone_shapes(net):
    out = []
    for layer in STACKS[net]:
        if layer[1] == "pool":
            continue
        i, ci, co, k = layer[:4]
        out += [(f"features.{i}.weight", (co, ci, k, k)), (f"features.{i}.bias", (co,))]
    return out


def lin_shapes(net):
    return [(f"lin{l}.weight", (1, c, 1, 1)) for l, c in enumerate(TAP_CHANNELS[net])]


def critic_shapes():
    """Names and shapes in params/multi_rf_discriminator.tsv order (= bokehlab's order)."""
    out = []
    for name, n in (("patch", 3), ("full", 5)):
        cin = 3
        for k in range(n + 1):
            cout = 64 if k == 0 else min(cin * 2, 512)
            out += [(f"{name}.convs.{k}.weight", (cout, cin, 4, 4)),
                    (f"{name}.convs.{k}.bias", (cout,))]
            cin = cout
        out += [(f"{name}.final.weight", (1, cin, 4, 4)), (f"{name}.final.bias", (1,))]
    return out


def net_shapes(net):
    if net == "critic":
        return critic_shapes()
    if net in ("alex", "vgg16"):
        return backbone_shapes(net) + lin_shapes(net)
    return backbone_shapes(net)


def formula_params(net):
    """{name: float32 array of its PyTorch shape} for every tensor of `net`."""
    return {name: formula_values(f"{net}/{name}", int(np.prod(shape)),
                                 scale_rule(net, name, shape)).reshape(shape)
            for name, shape in net_shapes(net)}


# ---------------------------------------------------------------------------------- images

def noise_int(key, n, bits):
    return (hashed(key, n) >> U64(64 - bits)).astype(np.int64)


def coarse_int(shape):
    N, C, H, W = shape
    n = np.arange(N).reshape(N, 1, 1, 1)
    c = (np.arange(C) % 3).reshape(1, C, 1, 1)
    h = np.arange(H).reshape(1, 1, H, 1)
    w = np.arange(W).reshape(1, 1, 1, W)
    ramp = ((h * (2 + c) + w * (4 + n)) * 2048) // (H * (2 + c) + W * (4 + n))
    cy, cx = (H * (1 + c)) // 4, (W * (3 - c)) // 4
    r2 = (min(H, W) // 3) ** 2 + 1
    d2 = (h - cy) ** 2 + (w - cx) ** 2
    bump = (1024 * (r2 - np.minimum(r2, d2))) // r2
    return np.broadcast_to(ramp + bump, shape).astype(np.int64)


def shift_blur(x):
    H, W = x.shape[2:]
    hi = np.clip(np.arange(H) - 2, 0, H - 1)
    wi = np.clip(np.arange(W) - 3, 0, W - 1)
    s = x[:, :, hi][:, :, :, wi]
    k = (1, 2, 1)
    acc = np.zeros_like(s)
    for i in (-1, 0, 1):
        for j in (-1, 0, 1):
            hh = np.clip(np.arange(H) + i, 0, H - 1)
            ww = np.clip(np.arange(W) + j, 0, W - 1)
            acc += k[i + 1] * k[j + 1] * s[:, :, hh][:, :, :, ww]
    return (acc + 8) // 16


def image_pair(key, kind, shape):
    """The integer images (a, b) of a pair, int64 N,C,H,W in [0, 4095] (see "Images")."""
    n = int(np.prod(shape))
    clip = lambda v: np.clip(v, 0, 4095)
    if kind == "random":
        a = noise_int(key + "/a", n, 12).reshape(shape)
        b = clip(a + noise_int(key + "/b", n, 11).reshape(shape) - 1024)
    elif kind in ("smooth", "anti"):
        coarse = coarse_int(shape)
        if kind == "smooth":
            a = clip(coarse + noise_int(key + "/a", n, 8).reshape(shape) - 128 + 512)
        else:
            fine = noise_int(key + "/a", n, 10).reshape(shape) - 512
            a = clip(coarse + fine + 512)
        b = clip(shift_blur(a) + noise_int(key + "/b", n, 6).reshape(shape) - 32)
        if kind == "anti":
            b[:, 0] = clip(3072 - coarse + fine + 512)[:, 0]
    elif kind == "const":
        a = np.full(shape, 1229, dtype=np.int64)
        b = np.full(shape, 2458, dtype=np.int64)
    else:
        raise ValueError(kind)
    return a, b


def to_float(v, rng):
    """Integer image -> the exact float32 values as float64."""
    x = v.astype(np.float32) / np.float32(4096.0) if rng == 1 else \
        v.astype(np.float32) / np.float32(2048.0) - np.float32(1.0)
    return x.astype(np.float64)


def t64(a):
    return torch.tensor(np.asarray(a, dtype=np.float64), dtype=DT)


# ---------------------------------------------------------------------------- SSIM family

MS_W = [f32(w) for w in (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)]


def gauss_filter(x, size):
    """Separable normalised Gaussian (sigma 1.5, centred on size // 2), valid, depthwise."""
    d = torch.arange(size, dtype=x.dtype) - size // 2
    g = torch.exp(-d * d / (2 * 1.5 * 1.5))
    g = g / g.sum()
    C = x.shape[1]
    x = F.conv2d(x, g.view(1, 1, size, 1).repeat(C, 1, 1, 1), groups=C)
    return F.conv2d(x, g.view(1, 1, 1, size).repeat(C, 1, 1, 1), groups=C)


def consts(L):
    return f32(f32(0.01 * L) * f32(0.01 * L)), f32(f32(0.03 * L) * f32(0.03 * L))


def ssim_maps(x, y, size, c1, c2):
    mx, my = gauss_filter(x, size), gauss_filter(y, size)
    sxx = gauss_filter(x * x, size) - mx * mx
    syy = gauss_filter(y * y, size) - my * my
    sxy = gauss_filter(x * y, size) - mx * my
    v1, v2 = 2 * sxy + c2, sxx + syy + c2
    return (2 * mx * my + c1) * v1 / ((mx * mx + my * my + c1) * v2), v1 / v2


def ssim_ref(x, y, L):
    c1, c2 = consts(L)
    return ssim_maps(x, y, 11, c1, c2)[0].mean()


def s_abs_min(vals):
    return min(float(v.abs().min()) for v in vals)


def msssim_standard_ref(x, y, L, signs=None, vals=None):
    """Per image and channel prod_{l<4} relu(cs_l)^w_l * relu(ssim_4)^w_4, then the mean."""
    c1, c2 = consts(L)
    prod = None
    for l in range(5):
        s_map, cs_map = ssim_maps(x, y, 11, c1, c2)
        v = (cs_map if l < 4 else s_map).mean(dim=(2, 3))
        if signs is not None:
            signs.append(torch.sign(v.detach()))
            vals.append(v.detach())
        term = torch.pow(F.relu(v), MS_W[l])
        prod = term if prod is None else prod * term
        if l < 4:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    return prod.mean()


def msssim_compat_ref(x, y):
    """jorge-pessoa/pytorch-msssim (the version DMSHN used): window min(11, H, W), SSIM and CS as
    means over everything, data range guessed from the first image at every level, output
    prod_{l<4}(cs_l^w_l * ssim_4^w_4) = prod cs_l^w_l * ssim_4^(4 w_4)."""
    cs, last = [], None
    for l in range(5):
        mx = 255.0 if float(x.max()) > 128 else 1.0
        mn = -1.0 if float(x.min()) < -0.5 else 0.0
        c1, c2 = consts(mx - mn)
        size = min(11, x.shape[2], x.shape[3])
        s_map, cs_map = ssim_maps(x, y, size, c1, c2)
        cs.append(cs_map.mean())
        last = s_map.mean()
        if l < 4:  # (the library pools after level 4 too, which fails for sides below 32)
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    out = torch.pow(last, f32(4.0 * MS_W[4]))
    for l in range(4):
        out = out * torch.pow(cs[l], MS_W[l])
    return out, [float(c) for c in cs] + [float(last)]


# ---------------------------------------------------------------------------- LPIPS, VGG

def backbone_forward(net, P, x):
    """The taps of the trunk (ReLU outputs), up to the last one."""
    taps, h = [], x
    n_taps = 1 if net == "vgg19" else 5
    for layer in STACKS[net]:
        if layer[1] == "pool":
            h = F.max_pool2d(h, layer[2], 2)
            continue
        i, ci, co, k, s, p, t = layer
        h = F.relu(F.conv2d(h, P[f"features.{i}.weight"], P[f"features.{i}.bias"], stride=s,
                            padding=p))
        if t >= 0:
            taps.append(h)
            if len(taps) == n_taps:
                break
    return taps


LPIPS_SHIFT = [f32(v) for v in (-0.030, -0.088, -0.188)]
LPIPS_SCALE = [f32(v) for v in (0.458, 0.448, 0.450)]


def lpips_ref(net, P, a, b):
    """LPIPS v0.1 per image (N,) of a, b in [-1, 1] (reference-notes §5.4)."""
    sh = t64(LPIPS_SHIFT).view(1, 3, 1, 1)
    sc = t64(LPIPS_SCALE).view(1, 3, 1, 1)
    t0 = backbone_forward(net, P, (a - sh) / sc)
    t1 = backbone_forward(net, P, (b - sh) / sc)
    total = 0
    for l, (f0, f1) in enumerate(zip(t0, t1)):
        n0 = f0 / (torch.sqrt((f0 * f0).sum(dim=1, keepdim=True)) + f32(1e-10))
        n1 = f1 / (torch.sqrt((f1 * f1).sum(dim=1, keepdim=True)) + f32(1e-10))
        d = F.conv2d((n0 - n1) ** 2, P[f"lin{l}.weight"])
        total = total + d.mean(dim=(2, 3))
    return total.view(-1)


VGG_MEAN = [f32(v) for v in (0.485, 0.456, 0.406)]
VGG_STD = [f32(v) for v in (0.229, 0.224, 0.225)]


def vgg_ref(P, a, b, minus_one_to_one):
    m = t64(VGG_MEAN).view(1, 3, 1, 1)
    s = t64(VGG_STD).view(1, 3, 1, 1)
    if minus_one_to_one:
        a, b = (a + 1) / 2, (b + 1) / 2
    fa = backbone_forward("vgg19", P, (a - m) / s)[0]
    fb = backbone_forward("vgg19", P, (b - m) / s)[0]
    return (fa - fb).abs().mean()


# ---------------------------------------------------------------------------- critic

def critic_forward(P, name, n, x, eps):
    h = x
    for k in range(n + 1):
        h = F.conv2d(h, P[f"{name}.convs.{k}.weight"], P[f"{name}.convs.{k}.bias"],
                     stride=2 if k < n else 1, padding=2)
        if k > 0:
            h = F.instance_norm(h, eps=eps)
        h = F.leaky_relu(h, f32(0.2))
    return F.conv2d(h, P[f"{name}.final.weight"], P[f"{name}.final.bias"], stride=1, padding=2)


CRITICS = (("patch", 3), ("full", 5))


def wgan_ref(P, real, fake, alpha, lam, dtype):
    """The critic loss (SPEC §3), its parts, and its gradient with respect to every parameter."""
    eps = f32(1e-5)
    W = {k: torch.tensor(v, dtype=dtype).requires_grad_(True) for k, v in P.items()}
    real, fake = torch.tensor(real, dtype=dtype), torch.tensor(fake, dtype=dtype)
    alpha = torch.tensor(alpha, dtype=dtype)
    xhat = (alpha * real + (1 - alpha) * fake).detach().requires_grad_(True)
    total, parts, norms = 0, {"d_real": [], "d_fake": [], "penalty": []}, []
    for name, n in CRITICS:
        d_fake = critic_forward(W, name, n, fake, eps).mean()
        d_real = critic_forward(W, name, n, real, eps).mean()
        g, = torch.autograd.grad(critic_forward(W, name, n, xhat, eps).sum(), xhat,
                                 create_graph=True)
        norm = torch.sqrt((g * g).sum(dim=(1, 2, 3)))
        pen = lam * ((norm - 1) ** 2).mean()
        total = total + d_fake - d_real + pen
        parts["d_real"].append(float(d_real))
        parts["d_fake"].append(float(d_fake))
        parts["penalty"].append(float(pen))
        norms.append([float(v) for v in norm])
    loss = 0.5 * total
    names = list(P)
    grads = torch.autograd.grad(loss, [W[k] for k in names], allow_unused=True)
    grads = {k: (g if g is not None else torch.zeros_like(W[k])).detach().to(DT).numpy()
             for k, g in zip(names, grads)}
    # the generator's adversarial loss and its gradient with respect to fake
    fk = fake.clone().requires_grad_(True)
    gen = 0
    for name, n in CRITICS:
        gen = gen - critic_forward(W, name, n, fk, eps).mean()
    gen = 0.5 * gen
    gen_grad, = torch.autograd.grad(gen, fk)
    return dict(loss=float(loss), parts=parts, grads=grads, gen=float(gen),
                gen_grad=gen_grad.detach().to(DT).numpy(), norms=norms,
                margin=kink_margins(W, (real, fake, xhat.detach())))


def kink_margins(W, xs):
    """Smallest |LeakyReLU input| of both critics on each x: (after conv 0, after the instance
    norms). The instance-normalised values are O(1) and bokehlab's float32 error on them is
    ~2e-6 rms (1e-5 at most) at 64x64; conv 0's are ~0.1 with errors below 1e-7."""
    m0 = m1 = np.inf
    with torch.no_grad():
        for x in xs:
            for name, n in CRITICS:
                h = x
                for k in range(n + 1):
                    h = F.conv2d(h, W[f"{name}.convs.{k}.weight"], W[f"{name}.convs.{k}.bias"],
                                 stride=2 if k < n else 1, padding=2)
                    if k > 0:
                        h = F.instance_norm(h, eps=f32(1e-5))
                        m1 = min(m1, float(h.abs().min()))
                    else:
                        m0 = min(m0, float(h.abs().min()))
                    h = F.leaky_relu(h, f32(0.2))
    return m0, m1


def analytic_zero(name):
    """Biases whose gradient is zero up to rounding: those of the convs followed by instance norm
    (which removes any per-channel constant) and the final biases (they shift D(fake) and D(real)
    alike and do not touch the penalty)."""
    parts = name.split(".")
    return parts[-1] == "bias" and (parts[1] == "final" or int(parts[2]) > 0)


FULL_LIMIT = 20000
N_SAMPLE = 4096


def grad_summary(name, g):
    """What the fixture keeps of one critic gradient (see the layout)."""
    if g.size <= FULL_LIMIT:
        return {"full": g}
    flat = g.reshape(-1)
    idx = (hashed("sample/" + name, N_SAMPLE) % U64(flat.size)).astype(np.int64)
    idx = np.unique(np.append(idx, int(np.abs(flat).argmax())))
    return {"idx": idx.astype(np.float64), "sample": flat[idx],
            "sum_o": g.sum(axis=(1, 2, 3)), "sum_i": g.sum(axis=(0, 2, 3)),
            "sum_t": g.sum(axis=(0, 1)).reshape(-1),
            "stats": np.array([np.abs(g).max(), np.sqrt((g * g).sum())])}


# ------------------------------------------------------------------------------- writing

def np32(a):
    if isinstance(a, torch.Tensor):
        a = a.detach().numpy()
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32))


def write(group, name, a):
    a = np32(a)
    if not np.all(np.isfinite(a)):
        raise RuntimeError(f"{group.name}/{name}: non-finite reference values")
    if a.size >= 256:
        group.create_dataset(name, data=a, compression="gzip", compression_opts=9,
                             shuffle=True, track_times=False)
    else:
        group.create_dataset(name, data=a, track_times=False)


def sattr(s):
    """A fixed-length string attribute (H5LTget_attribute_string reads these)."""
    return np.bytes_(s.encode())


def root_attrs(f, fmt):
    f.attrs["format"] = sattr(fmt)
    f.attrs["torch_version"] = sattr(torch.__version__)
    f.attrs["command"] = sattr(" ".join(shlex.quote(a) for a in sys.argv))
    f.attrs["reference"] = sattr("PyTorch float64 from float32 inputs, stored float32")


def image_attrs(g, kind, key, shape, rng, a, b):
    g.attrs["kind"] = sattr(kind)
    g.attrs["key"] = sattr(key)
    g.attrs["shape"] = np.asarray(shape, dtype=np.int32)
    g.attrs["range"] = np.int32(rng)
    g.attrs["a_isum"] = np.float64(a.sum())
    g.attrs["b_isum"] = np.float64(b.sum())


def leaf(v):
    return t64(v).requires_grad_(True)


def rel_err(got, want):
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-6))


# (name, family, kind, shape, range, extra)
SSIM_CASES = [
    ("l1_small", "l1", "random", (2, 3, 19, 23), 1, {}),
    ("l1_176x180", "l1", "smooth", (1, 3, 176, 180), 2, {}),
    ("ssim_small_r1", "ssim", "random", (2, 3, 19, 23), 1, dict(data_range=1.0)),
    ("ssim_small_r2", "ssim", "smooth", (2, 3, 19, 23), 2, dict(data_range=2.0)),
    ("ssim_mid_r2", "ssim", "smooth", (1, 3, 64, 75), 2, dict(data_range=2.0)),
    ("ssim_const", "ssim", "const", (2, 3, 19, 23), 1, dict(data_range=1.0)),
    ("msssim_std_176x180", "msssim", "smooth", (1, 3, 176, 180), 1,
     dict(data_range=1.0, mode="standard", value_only=True)),
    ("msssim_std_2x181x177", "msssim", "random", (2, 3, 181, 177), 2,
     dict(data_range=2.0, mode="standard")),
    ("msssim_std_anti", "msssim", "anti", (1, 3, 176, 176), 1,
     dict(data_range=1.0, mode="standard")),
    ("msssim_std_const", "msssim", "const", (1, 1, 176, 176), 1,
     dict(data_range=1.0, mode="standard")),
    ("msssim_compat_small_r1", "msssim", "random", (2, 3, 19, 23), 1,
     dict(data_range=1.0, mode="dmshn_compat")),
    ("msssim_compat_small_r2", "msssim", "smooth", (2, 3, 19, 23), 2,
     dict(data_range=2.0, mode="dmshn_compat")),
    ("msssim_compat_mid", "msssim", "random", (2, 3, 33, 47), 2,
     dict(data_range=2.0, mode="dmshn_compat")),
    ("msssim_compat_64x75", "msssim", "smooth", (1, 3, 64, 75), 2,
     dict(data_range=2.0, mode="dmshn_compat")),
    ("msssim_compat_176x180", "msssim", "smooth", (1, 3, 176, 180), 1,
     dict(data_range=1.0, mode="dmshn_compat", value_only=True)),
]


def image_loss(family, extra, a, b):
    if family == "l1":
        return (a - b).abs().mean()
    if family == "ssim":
        return ssim_ref(a, b, extra["data_range"])
    if extra["mode"] == "standard":
        return msssim_standard_ref(a, b, extra["data_range"])
    return msssim_compat_ref(a, b)[0]


def ssim_case(f, name, family, kind, shape, rng, extra):
    a_i, b_i = image_pair(name, kind, shape)
    a, b = leaf(to_float(a_i, rng)), t64(to_float(b_i, rng))
    info = ""
    signs = []
    if family in ("l1", "ssim"):
        v = image_loss(family, extra, a, b)
    elif extra["mode"] == "standard":
        signs_v = []
        v = msssim_standard_ref(a, b, extra["data_range"], signs, signs_v)
        s = torch.stack(signs, dim=2)  # N,C,5
        neg = int((s < 0).sum())
        info = (f" negative cs/ssim terms {neg} of {s.numel()}, min |cs|, |ssim| "
                f"{float(s_abs_min(signs_v)):.3g}")
        if kind == "anti":
            # channel 0 must have a negative term at some level (its product is 0) and the other
            # channels none; a level must be negative and another positive in channel 0
            assert bool((s[:, 0] < 0).any()) and bool((s[:, 0] > 0).any()), s
            assert not bool((s[:, 1:] < 0).any()), s
        else:
            assert neg == 0, (name, s)
    else:
        v, levels = msssim_compat_ref(a, b)
        assert all(c > 0 for c in levels), (name, levels)
        info = " cs/ssim " + " ".join(f"{c:.4f}" for c in levels)
    g, = torch.autograd.grad(v, a)
    # the float32 noise floor: the same computation in torch float32
    a32 = torch.tensor(to_float(a_i, rng), dtype=torch.float32, requires_grad=True)
    v32 = image_loss(family, extra, a32, torch.tensor(to_float(b_i, rng), dtype=torch.float32))
    g32, = torch.autograd.grad(v32, a32)
    e32 = rel_err(g32.double().numpy(), g.numpy())
    grp = f.create_group(name)
    grp.attrs["family"] = sattr(family)
    grp.attrs["torch_f32_grad_err"] = np.float64(e32)
    image_attrs(grp, kind, name, shape, rng, a_i, b_i)
    if "data_range" in extra:
        grp.attrs["data_range"] = np.float64(extra["data_range"])
    if "mode" in extra:
        grp.attrs["mode"] = sattr(extra["mode"])
    if family == "msssim" and kind == "anti":
        write(grp, "cs_sign", torch.stack(signs, dim=2).unsqueeze(3))
    write(grp, "value", v.detach())
    if not extra.get("value_only"):
        write(grp, "grad_a", g)
    print(f"{name:26s} {family:6s} {kind:6s} {shape} value {float(v):.6f} "
          f"max|grad| {float(g.abs().max()):.3g} (torch f32: {e32:.2g}){info}")


LPIPS_CASES = [
    ("lpips_alex_64", "alex", "random", (2, 3, 64, 64)),
    ("lpips_alex_67x71", "alex", "smooth", (1, 3, 67, 71)),
    ("lpips_vgg_64", "vgg", "random", (2, 3, 64, 64)),
    ("lpips_vgg_67x71", "vgg", "smooth", (1, 3, 67, 71)),
]


def tensors(P):
    return {k: t64(v) for k, v in P.items()}


def lpips_case(f, name, net, kind, shape, P):
    a_i, b_i = image_pair(name, kind, shape)
    a, b = leaf(to_float(a_i, 2)), t64(to_float(b_i, 2))
    key = "alex" if net == "alex" else "vgg16"
    v = lpips_ref(key, P, a, b)
    g, = torch.autograd.grad(v.sum(), a)
    # the float32 noise floor: the same in torch float32
    a32 = torch.tensor(to_float(a_i, 2), dtype=torch.float32, requires_grad=True)
    P32 = {k: t.float() for k, t in P.items()}
    v32 = lpips_ref32(key, P32, a32, torch.tensor(to_float(b_i, 2), dtype=torch.float32))
    g32, = torch.autograd.grad(v32.sum(), a32)
    grp = f.create_group(name)
    grp.attrs["family"] = sattr("lpips")
    grp.attrs["net"] = sattr(net)
    image_attrs(grp, kind, name, shape, 2, a_i, b_i)
    write(grp, "value", v.detach())
    write(grp, "grad_a", g)
    print(f"{name:26s} lpips  {kind:6s} {shape} value {np.round(v.detach().numpy(), 6)} "
          f"max|grad| {float(g.abs().max()):.3g}  torch f32 rel err value "
          f"{rel_err(v32.detach().double().numpy(), v.detach().numpy()):.2g} grad "
          f"{rel_err(g32.double().numpy(), g.numpy()):.2g}")


def lpips_ref32(net, P, a, b):
    sh = torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1)
    sc = torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1)
    t0 = backbone_forward(net, P, (a - sh) / sc)
    t1 = backbone_forward(net, P, (b - sh) / sc)
    total = 0
    for l, (f0, f1) in enumerate(zip(t0, t1)):
        n0 = f0 / (torch.sqrt((f0 * f0).sum(dim=1, keepdim=True)) + 1e-10)
        n1 = f1 / (torch.sqrt((f1 * f1).sum(dim=1, keepdim=True)) + 1e-10)
        total = total + F.conv2d((n0 - n1) ** 2, P[f"lin{l}.weight"]).mean(dim=(2, 3))
    return total.view(-1)


VGG_CASES = [
    ("vgg_r1_64", 0, "smooth", (2, 3, 64, 64), 1),
    ("vgg_r2_64", 1, "random", (2, 3, 64, 64), 2),
    ("vgg_r2_37x45", 1, "smooth", (1, 3, 37, 45), 2),
]


def vgg_case(f, name, m11, kind, shape, rng, P):
    a_i, b_i = image_pair(name, kind, shape)
    a, b = leaf(to_float(a_i, rng)), t64(to_float(b_i, rng))
    v = vgg_ref(P, a, b, m11)
    g, = torch.autograd.grad(v, a)
    grp = f.create_group(name)
    grp.attrs["family"] = sattr("vgg")
    grp.attrs["minus_one_to_one"] = np.int32(m11)
    image_attrs(grp, kind, name, shape, rng, a_i, b_i)
    write(grp, "value", v.detach())
    write(grp, "grad_a", g)
    print(f"{name:26s} vgg    {kind:6s} {shape} value {float(v):.6f} "
          f"max|grad| {float(g.abs().max()):.3g}")


WGAN_SHAPE = (2, 3, 64, 64)
WGAN_ALPHA = (0.3, 0.8)
# The critics have ~1.15M instance-normalised LeakyReLU inputs on real, fake and x_hat; a float32
# computation puts each off by ~2e-6, so an input within a few 1e-6 of the kink can flip sides
# and move the gradient with respect to the image by percents (it did: key index 0 has one at
# 2.5e-7, and bokehlab's d L_adv / d fake was 1.7e-2 off there). No input set keeps every one
# 1e-4 away; WGAN_KEY is the index k of the keys wgan_real_<k>, wgan_fake_<k> with the largest
# smallest |LeakyReLU input| (7.6e-6) among k < 4000, found by --search-wgan.
WGAN_KEY = 1733
WGAN_MIN_MARGIN = 5e-6


def wgan_inputs(k):
    real_i, _ = image_pair(f"wgan_real_{k}", "smooth", WGAN_SHAPE)
    fake_i, _ = image_pair(f"wgan_fake_{k}", "random", WGAN_SHAPE)
    return real_i, fake_i


def search_wgan(limit):
    """The key index below `limit` with the largest smallest |LeakyReLU input| (screened in
    float32, which is fast enough for thousands of candidates)."""
    P = {k: torch.tensor(v) for k, v in formula_params("critic").items()}
    alpha = torch.tensor(np.array(WGAN_ALPHA, dtype=np.float32).reshape(2, 1, 1, 1))
    best = (-1, 0.0)
    for k in range(limit):
        real_i, fake_i = wgan_inputs(k)
        r = torch.tensor(to_float(real_i, 2), dtype=torch.float32)
        fk = torch.tensor(to_float(fake_i, 2), dtype=torch.float32)
        m0, m1 = kink_margins(P, (r, fk, alpha * r + (1 - alpha) * fk))
        if m0 > 1e-7 and m1 > best[1]:
            best = (k, m1)
            print(f"key {k}: smallest |LeakyReLU input| {m1:.3g} (after conv 0: {m0:.3g})")
    return best


def wgan_case(f):
    shape, lam = WGAN_SHAPE, 10.0
    real_i, fake_i = wgan_inputs(WGAN_KEY)
    real, fake = to_float(real_i, 2), to_float(fake_i, 2)
    alpha = np.array([f32(a) for a in WGAN_ALPHA]).reshape(2, 1, 1, 1)
    P = formula_params("critic")
    r64 = wgan_ref(P, real, fake, alpha, lam, torch.float64)
    r32 = wgan_ref(P, real, fake, alpha, lam, torch.float32)
    grp = f.create_group("wgan")
    grp.attrs["family"] = sattr("wgan")
    grp.attrs["lambda_gp"] = np.float64(lam)
    m0, m1 = r64["margin"]
    assert m1 >= WGAN_MIN_MARGIN and m0 >= 1e-7, (m0, m1)
    grp.attrs["real_key"] = sattr(f"wgan_real_{WGAN_KEY}")
    grp.attrs["fake_key"] = sattr(f"wgan_fake_{WGAN_KEY}")
    grp.attrs["shape"] = np.asarray(shape, dtype=np.int32)
    grp.attrs["real_isum"] = np.float64(real_i.sum())
    grp.attrs["fake_isum"] = np.float64(fake_i.sum())
    grp.attrs["kink_margin"] = np.float64(m1)
    grp.attrs["kink_margin_conv0"] = np.float64(m0)
    write(grp, "alpha", alpha)
    write(grp, "loss", np.float64(r64["loss"]))
    for k in ("d_real", "d_fake", "penalty"):
        write(grp, k, np.array(r64["parts"][k]))
    write(grp, "gen_loss", np.float64(r64["gen"]))
    write(grp, "gen_grad_fake", r64["gen_grad"])
    gmax = max(float(np.abs(g).max()) for g in r64["grads"].values())
    print(f"wgan  loss {r64['loss']:.6f} parts {r64['parts']} ||g|| {r64['norms']} "
          f"gen {r64['gen']:.6f} max|grad| {gmax:.3g} kink margins {m0:.2e} (conv 0), "
          f"{m1:.2e} (instance norm)")
    print(f"wgan  torch f32: loss rel err {abs(r32['loss'] - r64['loss']) / abs(r64['loss']):.2g}"
          f", gen grad {rel_err(r32['gen_grad'], r64['gen_grad']):.2g}")
    gg = grp.create_group("grad")
    for name, g in r64["grads"].items():
        sub = gg.create_group(name)
        az = analytic_zero(name)
        sub.attrs["analytic_zero"] = np.int32(az)
        e32 = float(np.abs(r32["grads"][name] - g).max()) / max(float(np.abs(g).max()), 1e-30)
        sub.attrs["f32_rel_err"] = np.float64(e32)
        for k, v in grad_summary(name, g).items():
            write(sub, k, v)
        print(f"  grad {name:24s} {str(g.shape):18s} max|g| {float(np.abs(g).max()):.3g}"
              f"{' (analytically zero)' if az else ''}  torch f32 vs f64: "
              f"{e32:.2g} of max|g|, {float(np.abs(r32['grads'][name] - g).max()) / gmax:.2g}"
              f" of the largest")


def formula_group(f):
    grp = f.create_group("formula")
    grp.attrs["family"] = sattr("formula")
    for net in ("alex", "vgg16", "vgg19", "critic"):
        P = formula_params(net)
        names = list(P)
        scales, probe = [], []
        for name in names:
            v = P[name].reshape(-1)
            scales.append(scale_rule(net, name, P[name].shape))
            n = v.size
            probe += [v[(k * (n - 1)) // 3] for k in range(4)]
        grp.attrs[net + "_names"] = sattr(",".join(names))
        write(grp, net + "_scales", np.array(scales, dtype=np.float32))
        write(grp, net + "_probe", np.array(probe, dtype=np.float32))
        print(f"formula {net}: {len(names)} tensors, {sum(p.size for p in P.values())} values")


def write_losses(path):
    tmp = path + ".tmp"
    with h5py.File(tmp, "w", track_order=False) as f:
        root_attrs(f, "bokehlab-loss-fixtures-1")
        formula_group(f)
        for case in SSIM_CASES:
            ssim_case(f, *case)
        nets = {n: tensors(formula_params(n)) for n in ("alex", "vgg16", "vgg19")}
        activation_report(nets)
        for name, net, kind, shape in LPIPS_CASES:
            lpips_case(f, name, net, kind, shape, nets["alex" if net == "alex" else "vgg16"])
        for name, m11, kind, shape, rng in VGG_CASES:
            vgg_case(f, name, m11, kind, shape, rng, nets["vgg19"])
        wgan_case(f)
    os.replace(tmp, path)
    print(f"wrote {path}: {os.path.getsize(path)} bytes")


def activation_report(nets):
    """RMS of each tap on a random [-1, 1] image: the formula scales keep them O(1)."""
    a_i, _ = image_pair("activation_report", "random", (1, 3, 64, 64))
    x = t64(to_float(a_i, 2))
    with torch.no_grad():
        for net in ("alex", "vgg16", "vgg19"):
            taps = backbone_forward(net, nets[net], x)
            print(f"formula {net}: tap rms " +
                  " ".join(f"{float(t.pow(2).mean().sqrt()):.3g}" for t in taps))


# ------------------------------------------------------------------------------- metrics

def jpeg_like(img, q):
    """8x8 block DCT, coefficients quantised with step q (JPEG without the entropy coding)."""
    n = 8
    k = np.arange(n)
    D = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n))
    D[0] /= np.sqrt(2.0)
    H, W, C = img.shape
    out = img.astype(np.float64).copy()
    for y in range(0, H - H % n, n):
        for x in range(0, W - W % n, n):
            for c in range(C):
                blk = out[y:y + n, x:x + n, c] - 128.0
                coef = D @ blk @ D.T
                coef = np.round(coef / q) * q
                out[y:y + n, x:x + n, c] = D.T @ coef @ D + 128.0
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def box_blur(img, r):
    out = np.zeros(img.shape, dtype=np.float64)
    H, W = img.shape[:2]
    for i in range(-r, r + 1):
        for j in range(-r, r + 1):
            hh = np.clip(np.arange(H) + i, 0, H - 1)
            ww = np.clip(np.arange(W) + j, 0, W - 1)
            out += img[hh][:, ww]
    return np.clip(np.round(out / (2 * r + 1) ** 2), 0, 255).astype(np.uint8)


def metric_pairs():
    rng = np.random.default_rng(20240605)
    pairs = []

    def base(h, w):
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.stack([60 + 120 * yy / h + 40 * np.sin(xx / 5.0),
                        200 - 100 * xx / w + 30 * np.cos(yy / 7.0),
                        128 + 90 * np.sin((xx + yy) / 9.0)], axis=2)
        img += rng.normal(0, 12, img.shape)
        return np.clip(np.round(img), 0, 255).astype(np.uint8)

    g = base(31, 47)
    pairs.append(("31x47 gaussian noise sigma 10", g,
                  np.clip(np.round(g + rng.normal(0, 10, g.shape)), 0, 255).astype(np.uint8)))
    g = base(64, 48)
    pairs.append(("64x48 box blur 5x5", g, box_blur(g, 2)))
    g = base(100, 71)
    pairs.append(("100x71 shift by (1, 2) pixels", g, np.roll(g, (1, 2), axis=(0, 1))))
    g = base(100, 71)
    pairs.append(("100x71 JPEG-like 8x8 DCT quantisation step 24", g, jpeg_like(g, 24)))
    g = base(64, 48)
    pairs.append(("64x48 identical", g, g.copy()))
    g = rng.integers(0, 256, (31, 47, 3)).astype(np.uint8)
    pairs.append(("31x47 uniform noise against its saturated brightening", g,
                  np.clip(g.astype(np.int64) * 5 // 4 + 20, 0, 255).astype(np.uint8)))
    return pairs


def write_metrics(path, lpips_alex):
    import skimage
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity
    tmp = path + ".tmp"
    with h5py.File(tmp, "w", track_order=False) as f:
        root_attrs(f, "bokehlab-metric-fixtures-1")
        f.attrs["skimage_version"] = sattr(skimage.__version__)
        for k, (what, a, b) in enumerate(metric_pairs()):
            with np.errstate(divide="ignore"):
                psnr = peak_signal_noise_ratio(a, b, data_range=255)
            ssim = structural_similarity(a, b, channel_axis=2, data_range=255, win_size=7)
            with torch.no_grad():
                # the float32 inputs bk_lpips_u8 makes: x / 127.5f - 1.0f in float32
                ta, tb = (t64(x.transpose(2, 0, 1)[None].astype(np.float32) / np.float32(127.5)
                              - np.float32(1.0)) for x in (a, b))
                lp = float(lpips_ref("alex", lpips_alex, ta, tb)[0])
            grp = f.create_group(f"pair_{k}")
            grp.attrs["what"] = sattr(what)
            grp.attrs["psnr"] = np.float64(psnr)
            grp.attrs["ssim"] = np.float64(ssim)
            grp.attrs["lpips"] = np.float64(lp)
            for name, img in (("a", a), ("b", b)):
                grp.create_dataset(name, data=img, compression="gzip", compression_opts=9,
                                   shuffle=True, track_times=False)
            print(f"pair_{k} {what:55s} psnr {psnr:9.5f} ssim {ssim:.6f} lpips {lp:.6f}")
    os.replace(tmp, path)
    print(f"wrote {path}: {os.path.getsize(path)} bytes")


# ---------------------------------------------------------------------------- converters

def run(cmd):
    return subprocess.run([sys.executable] + cmd, capture_output=True, text=True)


def expect_refused(cmd, out, what, needle):
    """The converter fails, says `needle`, leaves a pre-existing OUT untouched and no OUT.tmp."""
    with open(out, "wb") as fp:
        fp.write(b"previous file")
    r = run(cmd)
    assert r.returncode != 0, f"{what}: the converter accepted it"
    assert needle in r.stderr, f"{what}: message without {needle!r}: {r.stderr}"
    with open(out, "rb") as fp:
        assert fp.read() == b"previous file", f"{what}: the previous {out} was modified"
    assert not os.path.exists(out + ".tmp"), f"{what}: {out}.tmp left behind"
    os.remove(out)
    print(f"converter refused {what}: {r.stderr.strip().splitlines()[0]}")


def check_written(out, fmt, net, P, sources):
    with h5py.File(out, "r") as f:
        a = dict(f.attrs)
        for k, v in (("format", fmt), ("net", net)):
            assert isinstance(a[k], bytes) and a[k].decode() == v, (k, a[k])
        assert int(a["version"]) == 1, a["version"]
        for k, v in sources.items():
            assert a[k].decode() == v, (k, a[k], v)
        got = sorted(f["params"].keys())
        assert got == sorted(P), (got, sorted(P))
        assert list(f.keys()) == ["params"], list(f.keys())
        for name, v in P.items():
            d = f["params"][name]
            assert d.dtype == np.float32 and d.shape == v.shape, (name, d.dtype, d.shape)
            assert d.chunks is not None and d.fletcher32, (name, d.chunks, d.fletcher32)
            assert np.array_equal(d[()], v), name
    print(f"converter wrote {os.path.basename(out)}: format {fmt}, net {net}, {len(P)} datasets "
          f"equal to the formula values, chunked with fletcher32")


def test_converters():
    lpips_py = os.path.join(HERE, "convert_lpips.py")
    vgg_py = os.path.join(HERE, "convert_vgg19.py")
    tmp = tempfile.mkdtemp(prefix="bk_convert_")
    try:
        for net, key in (("alex", "alex"), ("vgg", "vgg16")):
            P = formula_params(key)
            lin = {f"lin{l}.model.1.weight": torch.from_numpy(P[f"lin{l}.weight"])
                   for l in range(5)}
            trunk = {n: torch.from_numpy(v) for n, v in P.items() if n.startswith("features.")}
            # torchvision's files also hold the classifier: it must be ignored (small stand-ins)
            trunk["classifier.1.weight"] = torch.zeros(4, 4)
            trunk["classifier.1.bias"] = torch.zeros(4)
            lin_path = os.path.join(tmp, f"{net}.pth")
            trunk_path = os.path.join(tmp, f"{key}_trunk.pth")
            torch.save(lin, lin_path)
            torch.save(trunk, trunk_path)
            out = os.path.join(tmp, f"lpips_{net}.h5")
            r = run([lpips_py, "--net", net, "--lin", lin_path, "--trunk", trunk_path,
                     "--out", out])
            assert r.returncode == 0, r.stderr
            check_written(out, "bokehlab-lpips", net, P,
                          {"source_lin": f"{net}.pth", "source_trunk": f"{key}_trunk.pth"})
            if net == "alex":
                bad = dict(lin)
                del bad["lin3.model.1.weight"]
                torch.save(bad, os.path.join(tmp, "bad_lin.pth"))
                expect_refused([lpips_py, "--net", net, "--lin", os.path.join(tmp, "bad_lin.pth"),
                                "--trunk", trunk_path, "--out", out],
                               out, "a lin file without lin3", "lin3.model.1.weight")
                bad = dict(trunk)
                bad["features.6.weight"] = torch.zeros(384, 192, 5, 5)
                torch.save(bad, os.path.join(tmp, "bad_trunk.pth"))
                expect_refused([lpips_py, "--net", net, "--lin", lin_path, "--trunk",
                                os.path.join(tmp, "bad_trunk.pth"), "--out", out],
                               out, "a trunk with a wrong shape", "features.6.weight")
                expect_refused([lpips_py, "--net", "vgg", "--lin", lin_path, "--trunk",
                                trunk_path, "--out", out],
                               out, "alex files converted as vgg", "features.0.weight")
        P = formula_params("vgg19")
        sd = {n: torch.from_numpy(v) for n, v in P.items()}
        sd["classifier.0.weight"] = torch.zeros(4, 4)
        w_path = os.path.join(tmp, "vgg19.pth")
        torch.save(sd, w_path)
        out = os.path.join(tmp, "vgg19.h5")
        r = run([vgg_py, "--weights", w_path, "--out", out])
        assert r.returncode == 0, r.stderr
        check_written(out, "bokehlab-vgg19", "vgg19", P, {"source": "vgg19.pth"})
        bad = dict(sd)
        del bad["features.34.bias"]
        torch.save(bad, os.path.join(tmp, "bad_vgg19.pth"))
        expect_refused([vgg_py, "--weights", os.path.join(tmp, "bad_vgg19.pth"), "--out", out],
                       out, "a VGG-19 file without features.34.bias", "features.34.bias")
        bad = dict(sd)
        bad["features.16.weight"] = torch.zeros(512, 256, 3, 3)
        torch.save(bad, os.path.join(tmp, "bad_vgg19.pth"))
        expect_refused([vgg_py, "--weights", os.path.join(tmp, "bad_vgg19.pth"), "--out", out],
                       out, "a VGG-19 file with a wrong shape", "features.16.weight")
        vgg16 = {n: torch.from_numpy(v) for n, v in formula_params("vgg16").items()
                 if n.startswith("features.")}
        torch.save(vgg16, os.path.join(tmp, "vgg16.pth"))
        expect_refused([vgg_py, "--weights", os.path.join(tmp, "vgg16.pth"), "--out", out],
                       out, "VGG16 weights given as VGG-19", "features.")
    finally:
        shutil.rmtree(tmp)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--search-wgan":
        print(search_wgan(int(sys.argv[2])))
        return
    if len(sys.argv) != 2:
        sys.stderr.write(__doc__.split("\n\n")[1] + "\n")
        sys.exit(2)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    test_converters()
    write_losses(os.path.join(out, "losses.h5"))
    write_metrics(os.path.join(out, "metrics.h5"), tensors(formula_params("alex")))


if __name__ == "__main__":
    main()
