#!/usr/bin/python3
"""gen_model_fixtures.py — PyTorch references for the whole-model parity tests
(tests/test_models.c): DMSHN, Stacked DMSHN, Glass-Net (paper widths and c24), the
multi-receptive-field critic and AMPN with its ablation switches.

    scripts/gen_model_fixtures.py OUTDIR          (OUTDIR = tests/fixtures; writes models.h5)
    scripts/gen_model_fixtures.py --report        (activation RMS per block, nothing written)
    scripts/gen_model_fixtures.py --search N      (the kink risk of input keys k < N, see "Kinks")
    BK_MODEL_CASE=substring                       (only the cases whose name has it)

Needs /usr/bin/python3 with torch, h5py and numpy (the formula helpers are imported from
gen_loss_fixtures.py beside this file). Deterministic: weights, inputs and targets come from
formulas; running it twice writes the same numbers.

The networks are written here from SPEC §2-§4 (not from the C code), as PyTorch modules whose
state_dict names and shapes equal tests/data/params/<model>.tsv exactly (asserted, with the
parameter count of the TSV header; num_batches_tracked is left out as SPEC §6 says). The AMPN
variants' names are ampn.tsv minus the modules the switch removes (asserted as well).

Formula weights
---------------
Every tensor (parameters and buffers) gets the formula of tests/support/formula_weights.h with
the key K = "<model>/<name>" (model the registry kind: dmshn, stacked_dmshn, glassnet,
glassnet_c24, multi_rf_discriminator, ampn; an AMPN variant uses the full model's keys, so its
tensors equal the full model's): for i = 0..n-1 in PyTorch C order
    u = (mix(fnv1a64(K) + i) >> 40) / 2^24                  exact in float32
    v = offset + scale * (2u - 1)                           float32
with offset 0 except for the tensors below, where scale is a power of two so the product is
exact and the sum rounds once (fused or not). The scale (float32, rounded once from a double)
and offset of every tensor are stored in the fixture (/<case>/scales, /<case>/offsets), with
the values at indices k (n-1) / 3, k = 0..3 (/<case>/probe), so the C side reproduces the
values and checks it did. Rules (fan_in = the inputs one output value sees: I k k for a
conv OIHW, a depthwise conv k k; for a ConvTranspose k4 s2 (weight I,O,k,k) I (k/2)^2):
    conv / deconv weight        gain sqrt(3 / fan_in)   (uniform, variance gain^2 / fan_in)
        gain sqrt(2) before a ReLU / ReLU6 / LeakyReLU / instance norm + ReLU, 1 before linear
        use (MobileNet projections, attention gates, heads), DMSHN residual branches 0.35 and
        its output conv 0.5, AMPN refinement residual branches 0.5 (see gain())
    conv / deconv bias          0.05 (AMPN, DMSHN), 0.1 (critic, Glass-Net deconvs)
    BN weight (gamma)           offset 1, scale 0.25        in [0.75, 1.25)
    BN bias (beta)              0.05
    BN running_mean             0.05                        in [-0.05, 0.05): "0-ish"
    BN running_var              offset 1, scale 0.5         in [0.5, 1.5): positive
The activation RMS these give (--report, and printed when the fixture is written) stays O(1):
over the outputs of every leaf module, from 0.05 (AMPN attention gates before the sigmoid) to
4.5 (AMPN g1.features.11 before ReLU6); the network outputs have RMS 0.2-0.7.

Inputs and targets
------------------
x is the integer image a of gen_loss_fixtures.image_pair(key, "smooth", shape) mapped to the
model's range (range 1: v / 4096 for DMSHN and AMPN, range 2: v / 2048 - 1 for Glass-Net and the
critic), key "<case>/x/<k>" with the index k of X_KEY_INDEX (k = 0: "<case>/x"; see "Kinks");
the AMPN external mask is the "smooth" image of key "<case>/mask" with one channel, range 1.
The L1 train step's target is T = shift + scale img, img the "smooth" a image of key
"<case>/target" in the model's range with the shape of y (the critic: of y_patch), scale the
power of two nearest std(y64) / std(img) and shift = mean(y64) - scale mean(img) rounded to
float32 (so T straddles y: about half the signs of y - T are positive), computed in float32
(the product is exact, the sum rounds once). Then a fix-up: the L1 gradient sign(y - T) / N
flips where y - T changes sign, and one flipped element moves the output gradient by 2/N, i.e.
percents of its norm, so T must keep away from y. Every element with |y64 - T| < MARGIN
max|y64| (MARGIN = 1e-3, the eval tolerance: an implementation that flips a sign there fails the
eval check anyway) is moved to T = y64 -+ MARGIN max|y64| (on the side T was, below y if equal),
rounded to float32; the fixture keeps the moved indices (target_fix_idx, C order, exact in
float32) and their values (target_fix_val). After the fix-up min |y64 - T| >= MARGIN max|y64| / 2
(asserted; recorded as target_margin).

Kinks
-----
The same is true inside the networks: an activation within the float32 error of a ReLU /
ReLU6 / LeakyReLU / h-swish kink can land on the other side in bokehlab, which changes the
gradient of everything upstream by the share that element carries (1/(H W) of its channel).
At Glass-Net's 8 x 8 residual blocks, behind instance norm, one such element moves the whole
gradient by ~1 % (measured: perturbing x by 1e-7 moves the float64 gradient of glassnet_c24
by 0.8 % with key index 0); AMPN's 1 x 2 and 2 x 4 MobileNet stages are as sensitive. The
input key of each case is therefore the one of k < 40 with the smallest "kink risk", the sum over
every kink input within 1e-5 of its kink of 1 / (H W) of its tensor (--search N prints it;
kink_risk and kink_margin, the smallest distance, are recorded per case). For AMPN the risk
stays near 4 for every key: it comes from a few input-independent channels (MobileNet channels
that are zero after a ReLU6, so BN turns them into a constant that happens to lie within 1e-5 of
0) whose float32 value cannot cross zero (it is computed alike at every position), so they are
harmless.
Glass-Net is the exception the parity note of SPEC §6 describes: its float32 outputs are ~8e-5
(of max|y|) off float64, 50x more than the other models' (instance norm of 8 x 8 maps; torch
float32 and bokehlab alike), and for every key tried the float64 gradient
moves by 1-3 % when x moves by 1e-6 (torch float32 itself lands 8e-5 .. 2 % away, depending on
the key), so no key is safe from kinks. Its key indices (5 and 54) were picked among 0, 5, 54,
76, 163 as those where bokehlab's gradient came closest to float64 (0.52 % and 0.007 %; the
others gave 0.4-1.3 %), which leaves the most room under the note's 3e-2.

References
----------
Computed by PyTorch in float64 from the float32 weights and inputs: eval outputs (BN running
statistics, no dropout), and the L1 train step: the same forward, loss = mean|y - T| and the
gradient of every parameter. The same step in torch float32 is run too, and its disagreement
with float64 is recorded (torch_f32_*): the noise floor of any float32 implementation.

Gradient sketches
-----------------
Whole gradients (up to 16M values per model) do not fit in a small file, so per parameter
tensor t (in parameter order) the fixture keeps ||b_t||_2 (gnorm, float64) and either
    n_t <= SKETCH_K: the gradient itself (concatenated into gfull, float32), or
    n_t >  SKETCH_K: a sketch s_tk = sum_i r_tki b_ti, k = 0..K-1 (sketch, one row per such
                     tensor, float32), r_tki = +1 if bit k of mix(fnv1a64("sketch/<name>") + i)
                     is set, else -1 (Rademacher signs; one 64-bit hash per value gives all 64)
With the same signs the C side forms s_tk(a) for its gradient a, and by linearity
d_tk = s_tk(a) - s_tk(b) = <r_tk, a_t - b_t>. For Rademacher r, E[d_tk^2] = ||a_t - b_t||^2 and
Var(d_tk^2) = 2 (||d||^4 - sum_i d_i^4) <= 2 ||d||^4, so
    est_t^2 = (1/K) sum_k d_tk^2
estimates ||a_t - b_t||^2 with relative standard deviation <= sqrt(2/K) (an approximate
chi^2_K / K law); ||a_t - b_t|| itself has relative standard deviation ~ 1/sqrt(2K): 8.8 % at
K = 64 (a 95 % range of about -17 % .. +17 %). Over all tensors the estimate sums the
per-tensor ones (the tensors in gfull exactly), which averages the errors: when the difference
is spread over many tensors, the total's error is a few percent. The signs are fixed, so the
estimate is deterministic: a check that passes passes every time. The stored float32 sketch
rounds s_tk(b) by ~6e-8 ||b_t||, negligible against the 1e-2 ||b_t|| tolerance.

Layout of models.h5 (datasets float32 unless said; shapes PyTorch's)
--------------------------------------------------------------------
root attributes format "bokehlab-model-fixtures-1", torch_version, command, reference,
sketch_k (int), margin (double)
/<case>   case = dmshn, stacked_dmshn, glassnet, glassnet_c24, multi_rf_discriminator, ampn,
          ampn_external_mask, ampn_no_refine, ampn_no_g2, ampn_no_attention
    attributes  model, variant (canonical: the registry's order), out_names ("y,r", ...),
                shape (int[4]), range (1 | 2), x_key, x_isum (sum of the integer image),
                mask_key, mask_shape (int[4]), mask_isum (external_mask only),
                target_key, target_isum (of img), target_scale, target_shift (float32 values
                as double), target_margin, n_fix (the number of fix-ups), kink_risk,
                kink_margin,
                n_params (trainable values, = the TSV header), names (every tensor's name in
                order, comma-separated), n_grad (parameter tensors),
                torch_f32_out_rel (max|y32 - y64| / max|y64| over the outputs),
                torch_f32_loss_rel, torch_f32_grad_rel (||g32 - g64|| / ||g64|| over all
                parameters), torch_f32_grad_worst (max_t ||g32_t - g64_t|| / (1e-2 ||g64_t|| +
                1e-4 ||g64|| / sqrt(T)): the parity note's per-tensor ratio for torch float32)
    scales, offsets     per tensor (all tensors, in order)
    probe               4 values per tensor (see "Formula weights")
    out_<name>          eval outputs (y, r, mask, y_patch, y_full) in float64 rounded to float32;
                        of y only the first out_images images (attribute): 1 for the ablations
                        no_refine, no_g2, no_attention (to keep the file under 3 MB; their
                        train steps use both images), the whole batch elsewhere
    target_fix_idx      indices (exact in float32), target_fix_val: only when n_fix > 0
    loss                shape (), the L1 train-step loss
    gnorm               float64 per parameter tensor; gfull (the small gradients, concatenated);
                        sketch (rank 1: row t at [t K, (t + 1) K) for the t-th sketched tensor)
Eval outputs of more than 20000 values are stored with HDF5's scale-offset filter (D-scaling with
the D decimal digits that make 10^-D <= 1e-5 max|y|: an error <= 1e-5 max|y|, 1 % of the 1e-3
tolerance; asserted) and gzip, to keep the file small; the C side reads them as ordinary float
datasets.
"""
import math
import os
import shlex
import sys

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gen_loss_fixtures import U64, hashed, image_pair, to_float  # noqa: E402

ROOT = os.path.dirname(HERE)
TSV_DIR = os.path.join(ROOT, "tests", "data", "params")
DT = torch.float64
SKETCH_K = 64
MARGIN = 1e-3
torch.set_grad_enabled(True)


# ------------------------------------------------------------------------------ helpers

def up2(x):
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def up4(x):
    return F.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False)


def down2(x):
    # SPEC §1: bilinear x0.5 with align_corners=False is the 2x2 mean
    return F.avg_pool2d(x, 2)


def conv(cin, cout, k, stride=1, pad=None, groups=1, bias=True):
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2 if pad is None else pad,
                     groups=groups, bias=bias)


# ------------------------------------------------------------------------------ DMSHN (§2)

class RB(nn.Sequential):
    """layerN = conv3x3 (.0) -> ReLU (.1) -> conv3x3 (.2), plus identity."""

    def __init__(self, c):
        super().__init__(conv(c, c, 3), nn.ReLU(), conv(c, c, 3))

    def forward(self, x):
        return x + super().forward(x)


class DMSHNEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer1 = conv(3, 32, 3)
        self.layer2, self.layer3 = RB(32), RB(32)
        self.layer5 = conv(32, 64, 3, stride=2)
        self.layer6, self.layer7 = RB(64), RB(64)
        self.layer9 = conv(64, 128, 3, stride=2)
        self.layer10, self.layer11 = RB(128), RB(128)

    def forward(self, x):
        for m in self.children():
            x = m(x)
        return x


class DMSHNDecoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer13, self.layer14 = RB(128), RB(128)
        self.layer16 = nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1)
        self.layer17, self.layer18 = RB(64), RB(64)
        self.layer20 = nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1)
        self.layer21, self.layer22 = RB(32), RB(32)
        self.layer24 = conv(32, 3, 3)

    def forward(self, x):
        for m in self.children():
            x = m(x)
        return x


class DMSHN(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder_lv1, self.encoder_lv2, self.encoder_lv3 = (DMSHNEncoder() for _ in range(3))
        self.decoder_lv1, self.decoder_lv2, self.decoder_lv3 = (DMSHNDecoder() for _ in range(3))

    def forward(self, x):
        i2 = down2(x)
        i3 = down2(i2)
        g3 = self.encoder_lv3(i3)
        r3 = self.decoder_lv3(g3)
        g2 = self.encoder_lv2(i2 + up2(r3))
        r2 = self.decoder_lv2(g2 + up2(g3))
        g1 = self.encoder_lv1(x + up2(r2))
        return self.decoder_lv1(g1 + up2(g2)), None


class StackedDMSHN(nn.Module):
    def __init__(self):
        super().__init__()
        self.net1, self.net2 = DMSHN(), DMSHN()

    def forward(self, x):
        return self.net2(self.net1(x)[0])[0], None


# ------------------------------------------------------------------------------ Glass-Net (§3)

class GlassRes(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = conv(c, c, 3, bias=False)
        self.conv2 = conv(c, c, 3, bias=False)

    def forward(self, x):
        y = F.relu(F.instance_norm(self.conv1(x), eps=1e-5))
        # dropout 0.1 is the identity in eval and in the §6 train step
        y = F.instance_norm(self.conv2(y), eps=1e-5)
        return F.relu(x + y)


class GlassStage(nn.Module):
    def __init__(self, c, second):
        super().__init__()
        self.second = second
        cin = 6 if second else 3
        self.enc = nn.ModuleList([conv(cin, c, 3, bias=False)] +
                                 [conv(c << (k - 1), c << k, 3, stride=2, bias=False)
                                  for k in (1, 2, 3)])
        if second:
            self.merge = conv(8 * c, 8 * c, 3, bias=False)
        self.res = nn.ModuleList([GlassRes(8 * c) for _ in range(9)])
        ins = (16 * c, 8 * c, 4 * c) if second else (16 * c, 4 * c, 2 * c)
        outs = (4 * c, 2 * c, c)
        self.dec = nn.ModuleList([nn.ConvTranspose2d(i, o, 4, stride=2, padding=1)
                                  for i, o in zip(ins, outs)])
        self.out = conv(c, 3, 3, bias=False)

    def forward(self, x):
        e, h = [], x
        for m in self.enc:
            h = F.relu(m(h))
            e.append(h)
        if not self.second:
            for r in self.res:
                h = r(h)
            h = torch.cat([h, e[3]], 1)
            for d in self.dec:
                h = F.relu(d(h))
        else:
            h = F.relu(self.merge(e[3]))
            for r in self.res:
                h = r(h)
            for k, d in enumerate(self.dec):
                h = F.relu(d(torch.cat([e[3 - k], h], 1)))
        return torch.tanh(self.out(h))


class GlassNet(nn.Module):
    def __init__(self, c2):
        super().__init__()
        self.stage1 = GlassStage(16, False)
        self.stage2 = GlassStage(c2, True)

    def forward(self, x):
        r = self.stage1(x)
        return self.stage2(torch.cat([r, x - r], 1)), r


# ------------------------------------------------------------------------------ critic (§3)

class PatchCritic(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.n = n
        chans = [3, 64]
        for _ in range(n):
            chans.append(min(chans[-1] * 2, 512))
        self.convs = nn.ModuleList([nn.Conv2d(chans[k], chans[k + 1], 4, stride=2 if k < n else 1,
                                              padding=2) for k in range(n + 1)])
        self.final = nn.Conv2d(chans[n + 1], 1, 4, stride=1, padding=2)

    def forward(self, x):
        h = x
        for k, c in enumerate(self.convs):
            h = c(h)
            if k > 0:
                h = F.instance_norm(h, eps=1e-5)
            h = F.leaky_relu(h, 0.2)
        return self.final(h)


class Critic(nn.Module):
    def __init__(self):
        super().__init__()
        self.patch = PatchCritic(3)
        self.full = PatchCritic(5)

    def forward(self, x):
        return self.patch(x), self.full(x)


# ------------------------------------------------------------------------------ AMPN (§4)

class ConvBNAct(nn.Sequential):
    """Sequential(conv (no bias), BN, ReLU6): torchvision's ConvBNReLU naming .0 .1 (.2)."""

    def __init__(self, cin, cout, k, stride=1, groups=1):
        super().__init__(conv(cin, cout, k, stride, groups=groups, bias=False),
                         nn.BatchNorm2d(cout),
                         nn.ReLU6())


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, t):
        super().__init__()
        hidden = cin * t
        layers = [ConvBNAct(cin, hidden, 1)] if t != 1 else []
        layers += [ConvBNAct(hidden, hidden, 3, stride, groups=hidden),
                   conv(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.skip = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.conv(x) if self.skip else self.conv(x)


class DecBlock(nn.Module):
    def __init__(self, m, out):
        super().__init__()
        self.conv = nn.Sequential(ConvBNAct(m, 3 * m, 1), ConvBNAct(3 * m, 3 * m, 5, groups=3 * m),
                                  conv(3 * m, out, 1, bias=False), nn.BatchNorm2d(out))

    def forward(self, x):
        return self.conv(x)


MBV2 = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
        (6, 320, 1, 1)]
DEC = [(320, 224, 96, 192), (192, 96, 32, 96), (96, 64, 24, 64), (64, 32, 16, 32)]


class GNet(nn.Module):
    """G(cin, cout): MobileNetV2 features[:18], the decoder and the head of SPEC §4."""

    def __init__(self, cin, cout):
        super().__init__()
        feats = [ConvBNAct(cin, 32, 3, 2)]
        c = 32
        for t, co, n, s in MBV2:
            for r in range(n):
                feats.append(InvertedResidual(c, co, s if r == 0 else 1, t))
                c = co
        self.features = nn.Sequential(*feats)
        self.reduce = nn.ModuleList([ConvBNAct(i, r, 1) for i, r, _, _ in DEC])
        self.block = nn.ModuleList([DecBlock(r + s, o) for _, r, s, o in DEC])
        self.head = nn.Sequential(ConvBNAct(32, 16, 3), conv(16, cout, 3))

    def forward(self, x):
        skips = {}
        for i, m in enumerate(self.features):
            x = m(x)
            if i in (1, 3, 6, 13):
                skips[i] = x
        for j, s in enumerate((13, 6, 3, 1)):
            x = up2(self.reduce[j](x))
            x = self.block[j](torch.cat([x, skips[s]], 1))
        return self.head[1](self.head[0](up2(x)))


class CoordAtt(nn.Module):
    def __init__(self, c, mip=8):
        super().__init__()
        self.conv1 = conv(c, mip, 1)
        self.bn1 = nn.BatchNorm2d(mip)
        self.conv_h = conv(mip, c, 1)
        self.conv_w = conv(mip, c, 1)

    def forward(self, x):
        h, w = x.shape[2], x.shape[3]
        zh = x.mean(dim=3, keepdim=True)                     # N,C,H,1
        zw = x.mean(dim=2, keepdim=True).permute(0, 1, 3, 2)  # N,C,W,1
        y = self.bn1(self.conv1(torch.cat([zh, zw], 2)))
        y = y * F.relu6(y + 3) / 6                            # h-swish
        yh, yw = torch.split(y, [h, w], dim=2)
        yw = yw.permute(0, 1, 3, 2)
        return x * torch.sigmoid(self.conv_h(yh)) * torch.sigmoid(self.conv_w(yw))


class RBL(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = conv(c, c, 3)
        self.conv2 = conv(c, c, 3)

    def forward(self, x):
        return x + self.conv2(F.leaky_relu(self.conv1(x), 0.01))


class Refine(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = conv(10, 40, 3)
        self.rb_full = RBL(40)
        self.down = conv(40, 64, 3, stride=2)
        self.rb_half = nn.ModuleList([RBL(64), RBL(64)])
        self.up = conv(64, 40, 3)
        self.tail = conv(40, 3, 3)

    def forward(self, z):
        lrelu = lambda v: F.leaky_relu(v, 0.01)  # noqa: E731
        a = self.rb_full(lrelu(self.head(z)))
        b = lrelu(self.down(a))
        b = self.rb_half[1](self.rb_half[0](b))
        c = lrelu(self.up(up2(b))) + a
        return self.tail(c)


class FT(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = conv(3, 16, 1)
        self.conv2 = conv(16, 3, 1)

    def forward(self, x):
        return self.conv2(F.leaky_relu(self.conv1(x), 0.01))


LAP_K = [1.0, 4.0, 6.0, 4.0, 1.0]


def gauss(x, gain):
    k1 = torch.tensor(LAP_K, dtype=x.dtype)
    k = (torch.outer(k1, k1) / 256.0 * gain).view(1, 1, 5, 5).repeat(x.shape[1], 1, 1, 1)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), k, groups=x.shape[1])


def lap_down(x):
    return gauss(x, 1.0)[:, :, ::2, ::2]


def lap_up(x):
    n, c, h, w = x.shape
    z = torch.zeros(n, c, 2 * h, 2 * w, dtype=x.dtype)
    z[:, :, ::2, ::2] = x
    return gauss(z, 4.0)


class AMPN(nn.Module):
    def __init__(self, variant=""):
        super().__init__()
        sw = set(filter(None, variant.split(",")))
        self.no_refine, self.no_g2 = "no_refine" in sw, "no_g2" in sw
        self.no_attention, self.external = "no_attention" in sw, "external_mask" in sw
        if not self.external:
            self.g1 = GNet(3, 1)
        if not self.no_g2:
            self.g2 = GNet(4, 3)
        if not self.no_attention:
            self.att_il = CoordAtt(3)
            if not self.no_g2:
                self.att_iint = CoordAtt(3)
            self.att_bl = CoordAtt(3)
            if not self.no_refine:
                self.att_ref = CoordAtt(3)
        if not self.no_refine:
            self.refine = Refine()
        self.ft1, self.ft0 = FT(), FT()

    def att(self, name, x):
        return x if self.no_attention else getattr(self, name)(x)

    def forward(self, x, mask=None, strength=1.0):
        h0 = x - lap_up(lap_down(x))
        x1 = lap_down(x)
        h1 = x1 - lap_up(lap_down(x1))
        il = lap_down(x1)
        ml = mask if mask is not None else torch.sigmoid(self.g1(il))
        if strength != 1.0:
            ml = 1 - strength * (1 - ml)
        bl = self.att("att_il", il)
        if not self.no_g2:
            bl = bl + self.att("att_iint", self.g2(torch.cat([il, ml], 1)))
        bl_up = up2(bl)
        mr = self.att("att_bl", bl_up)
        if not self.no_refine:
            z = torch.cat([h1, up2(il), up2(ml), bl_up], 1)
            mr = mr + self.att("att_ref", self.refine(z))
        b_int = lap_up(lap_up(bl) + h1 * self.ft1(mr)) + h0 * self.ft0(up2(mr))
        m0 = up4(ml)
        return m0 * x + (1 - m0) * b_int, ml


# ------------------------------------------------------------------------------ cases

AMPN_SWITCHES = ("no_refine", "no_g2", "no_attention", "external_mask")
# the module prefixes each switch removes from ampn.tsv (SPEC §4)
AMPN_REMOVES = {"no_refine": ("refine.", "att_ref."), "no_g2": ("g2.", "att_iint."),
                "no_attention": ("att_il.", "att_iint.", "att_bl.", "att_ref."),
                "external_mask": ("g1.",)}

# case -> (model kind, variant, constructor, input shape, range, out names, mask shape)
CASES = [
    ("dmshn", "dmshn", "", DMSHN, (1, 3, 64, 96), 1, ("y",), None),
    ("stacked_dmshn", "stacked_dmshn", "", StackedDMSHN, (1, 3, 64, 96), 1, ("y",), None),
    ("glassnet", "glassnet", "", lambda: GlassNet(32), (1, 3, 64, 64), 2, ("y", "r"), None),
    ("glassnet_c24", "glassnet_c24", "", lambda: GlassNet(24), (1, 3, 64, 64), 2, ("y", "r"),
     None),
    ("multi_rf_discriminator", "multi_rf_discriminator", "", Critic, (1, 3, 64, 64), 2,
     ("y_patch", "y_full"), None),
    ("ampn", "ampn", "", AMPN, (2, 3, 128, 256), 1, ("y", "mask"), None),
    ("ampn_external_mask", "ampn", "external_mask", lambda: AMPN("external_mask"),
     (2, 3, 128, 256), 1, ("y", "mask"), (2, 1, 32, 64)),
    ("ampn_no_refine", "ampn", "no_refine", lambda: AMPN("no_refine"), (2, 3, 128, 256), 1,
     ("y", "mask"), None),
    ("ampn_no_g2", "ampn", "no_g2", lambda: AMPN("no_g2"), (2, 3, 128, 256), 1, ("y", "mask"),
     None),
    ("ampn_no_attention", "ampn", "no_attention", lambda: AMPN("no_attention"), (2, 3, 128, 256),
     1, ("y", "mask"), None),
]


def read_tsv(model):
    """[(name, shape tuple, "param" | "buffer")] and the header's parameter count."""
    path = os.path.join(TSV_DIR, f"{model}.tsv")
    rows, total = [], None
    with open(path) as fp:
        for line in fp:
            line = line.rstrip("\n")
            if line.startswith("#"):
                total = int(line.split(":")[1].split()[0])
                continue
            if not line:
                continue
            name, shape, kind = line.split("\t")
            rows.append((name, tuple(int(d) for d in shape.split("x")), kind))
    return rows, total


def expected_names(model, variant):
    rows, total = read_tsv(model)
    removed = [p for sw in filter(None, variant.split(",")) for p in AMPN_REMOVES[sw]]
    rows = [r for r in rows if not any(r[0].startswith(p) for p in removed)]
    if removed:
        total = sum(int(np.prod(s)) for _, s, k in rows if k == "param")
    return rows, total


def tensors_of(module):
    """[(name, tensor, "param" | "buffer")] in state_dict order, without num_batches_tracked."""
    params = dict(module.named_parameters())
    out = []
    for name, t in module.state_dict(keep_vars=True).items():
        if name.endswith("num_batches_tracked"):
            continue
        out.append((name, t, "param" if name in params else "buffer"))
    return out


def check_names(case, module, model, variant):
    want, total = expected_names(model, variant)
    got = [(n, tuple(t.shape), k) for n, t, k in tensors_of(module)]
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"{case}: tensor {i} is {g}, params/{model}.tsv has {w}"
    assert len(got) == len(want), f"{case}: {len(got)} tensors, the TSV {len(want)}"
    n = sum(int(np.prod(s)) for _, s, k in got if k == "param")
    assert n == total, f"{case}: {n} parameters, the TSV header {total}"
    return n


# ------------------------------------------------------------------------------ formula weights

DECONV = ("layer16.", "layer20.", ".dec.")


def fan_in(name, shape):
    if any(d in name for d in DECONV):          # ConvTranspose k4 s2: I (k/2)^2 inputs per output
        return shape[0] * (shape[2] // 2) * (shape[3] // 2)
    return shape[1] * shape[2] * shape[3]


RB_LAYERS = {2, 3, 6, 7, 10, 11, 13, 14, 17, 18, 21, 22}
SQRT2 = math.sqrt(2.0)


def gain(model, name):
    """The weight gain of a conv or deconv (see "Formula weights")."""
    parts = name.split(".")
    if model in ("dmshn", "stacked_dmshn"):
        i = next(i for i, p in enumerate(parts) if p.startswith("layer"))
        k = int(parts[i][5:])
        if k in RB_LAYERS:                        # .0 before the ReLU, .2 the residual branch
            return SQRT2 if parts[i + 1] == "0" else 0.35
        return 0.5 if k == 24 else 1.0            # layer1/5/9/16/20 linear, layer24 the output
    if model.startswith("glassnet"):
        return 1.0 if parts[1] == "out" else SQRT2   # before tanh; else ReLU or IN + ReLU
    if model == "multi_rf_discriminator":
        return 1.0 if parts[1] == "final" else SQRT2
    # ampn
    if parts[0] in ("g1", "g2"):
        # linear: the projections of the inverted residuals and decoder blocks, and head.1
        if name.endswith(".conv.2.weight") or name.endswith("features.1.conv.1.weight"):
            return 1.0
        return 1.0 if parts[1] == "head" and parts[2] == "1" else SQRT2
    if parts[0] == "refine":
        if parts[-2] == "conv2":
            return 0.5                            # residual branches
        return 1.0 if parts[1] == "tail" else SQRT2
    if parts[0] in ("ft1", "ft0"):
        return SQRT2 if parts[1] == "conv1" else 1.0
    # coordinate attention: conv1 before BN + h-swish, conv_h / conv_w before a sigmoid
    return SQRT2 if parts[1] == "conv1" else 1.0


def scale_offset(model, name, shape, kind):
    """(scale, offset) float32 of a tensor (see "Formula weights")."""
    if name.endswith("running_var"):
        return np.float32(0.5), np.float32(1.0)
    if name.endswith("running_mean"):
        return np.float32(0.05), np.float32(0.0)
    if len(shape) == 1:
        bn = ".bn1." in name or any(name.endswith(f"{s}.weight") or name.endswith(f"{s}.bias")
                                    for s in bn_modules(model))
        if bn and name.endswith(".weight"):
            return np.float32(0.25), np.float32(1.0)
        if bn:
            return np.float32(0.05), np.float32(0.0)
        if model in ("multi_rf_discriminator",) or ".dec." in name:
            return np.float32(0.1), np.float32(0.0)
        return np.float32(0.05), np.float32(0.0)
    return np.float32(gain(model, name) * math.sqrt(3.0 / fan_in(name, shape))), np.float32(0.0)


_BN = {}


def bn_modules(model):
    """Module paths of the BatchNorm2d layers (those with running statistics), from the TSV."""
    if model not in _BN:
        rows, _ = read_tsv(model)
        _BN[model] = {n[:-len(".running_mean")] for n, _, _ in rows if n.endswith(".running_mean")}
    return _BN[model]


def formula(key, n, scale, offset):
    u = (hashed(key, n) >> U64(40)).astype(np.float32) / np.float32(16777216.0)
    v = np.float32(scale) * (np.float32(2.0) * u - np.float32(1.0))
    if offset != 0:
        assert math.frexp(float(scale))[0] == 0.5, (key, scale)  # a power of two: exact product
        v = np.float32(offset) + v
    return v.astype(np.float32)


def formula_state(model, module):
    """{name: float32 array}, scales, offsets, probes for every tensor of module."""
    vals, scales, offsets, probe = {}, [], [], []
    for name, t, kind in tensors_of(module):
        shape = tuple(t.shape)
        s, o = scale_offset(model, name, shape, kind)
        n = int(np.prod(shape))
        v = formula(f"{model}/{name}", n, s, o)
        vals[name] = v.reshape(shape)
        scales.append(s)
        offsets.append(o)
        probe += [v[(k * (n - 1)) // 3] for k in range(4)]
    return vals, np.array(scales, np.float32), np.array(offsets, np.float32), np.array(probe,
                                                                                         np.float32)


def load_state(module, vals, dtype):
    module.to(dtype)
    with torch.no_grad():
        for name, t, kind in tensors_of(module):
            t.copy_(torch.from_numpy(vals[name]).to(dtype))
    module.eval()
    return module


# ------------------------------------------------------------------------------ kinks

# The index k of the input key "<case>/x/<k>" (k = 0: "<case>/x"): the smallest kink risk among
# k < 40, found by --search; Glass-Net's by measurement (see "Kinks" in the docstring).
X_KEY_INDEX = {"dmshn": 35, "stacked_dmshn": 37, "glassnet": 5, "glassnet_c24": 54,
               "multi_rf_discriminator": 17, "ampn": 17, "ampn_external_mask": 7,
               "ampn_no_refine": 20, "ampn_no_g2": 1, "ampn_no_attention": 13}


def x_key(case):
    k = X_KEY_INDEX.get(case, 0)
    return f"{case}/x" if k == 0 else f"{case}/x/{k}"


RISK_EPS = 1e-5


def kink_risk(module, x, mask):
    """How exposed the gradient is to kinks (see "Kinks"): the sum over every ReLU / ReLU6 /
    LeakyReLU / h-swish input within RISK_EPS of a kink (0; 6 for ReLU6; -3, 3 for h-swish) of
    1 / (H W) of its tensor, and the smallest distance to a kink with where it is."""
    risk, found = [0.0], [(math.inf, "")]
    saved = {n: getattr(F, n) for n in ("relu", "relu6", "leaky_relu", "hardtanh")}

    def wrap(name, f):
        def g(t, *a, **k):
            if name == "hardtanh":
                pts = (a[0] if a else k.get("min_val", -1.0),
                       a[1] if len(a) > 1 else k.get("max_val", 1.0))
            else:
                pts = (0.0, 6.0) if name == "relu6" else (0.0,)
            d = torch.stack([(t.detach() - p).abs() for p in pts]).amin(0)
            risk[0] += float((d < RISK_EPS).sum()) / (t.shape[2] * t.shape[3])
            if float(d.min()) < found[0][0]:
                found[0] = (float(d.min()), f"{name} on {tuple(t.shape)}")
            return f(t, *a, **k)
        return g

    for n, f in saved.items():
        setattr(F, n, wrap(n, f))
    try:
        with torch.no_grad():
            run(module, x, mask)
    finally:
        for n, f in saved.items():
            setattr(F, n, f)
    return risk[0], found[0]


def search(case_name, n):
    """The key index k < n with the smallest kink risk (ties: the largest kink margin)."""
    spec = next(c for c in CASES if c[0] == case_name)
    case, model, variant, ctor, shape, rng, out_names, mshape = spec
    module = ctor()
    vals = formula_state(model, module)[0]
    m64 = load_state(module, vals, DT)
    M = torch.tensor(image(f"{case}/mask", mshape, 1)[1], dtype=DT) if mshape else None
    best = None
    for k in range(n):
        key = f"{case}/x" if k == 0 else f"{case}/x/{k}"
        risk, (margin, where) = kink_risk(m64, torch.tensor(image(key, shape, rng)[1], dtype=DT), M)
        if best is None or (risk, -margin) < (best[0], -best[1]):
            best = (risk, margin, k)
            print(f"{case}: key index {k}: kink risk {risk:.3g}, margin {margin:.3g} ({where})",
                  flush=True)
    return best


# ------------------------------------------------------------------------------ sketches

def sketch(name, g):
    """s_k = sum_i r_ki g_i, k < SKETCH_K, r_ki = +-1 from bit k of
    mix(fnv1a64("sketch/<name>") + i)."""
    flat = np.ascontiguousarray(g.reshape(-1), dtype=np.float64)
    z = hashed("sketch/" + name, flat.size)
    out = np.zeros(SKETCH_K)
    step = 1 << 16
    for a in range(0, flat.size, step):
        bits = np.unpackbits(z[a:a + step].view(np.uint8).reshape(-1, 8), axis=1,
                             bitorder="little")[:, :SKETCH_K]      # (m, 64): column k = bit k
        out += (2.0 * bits.astype(np.float64) - 1.0).T @ flat[a:a + step]
    return out


# ------------------------------------------------------------------------------ running a case

def run(module, x, mask, strength=1.0):
    if isinstance(module, AMPN):
        return module(x, mask, strength)
    return module(x)


def eval_outputs(module, x, mask):
    with torch.no_grad():
        return run(module, x, mask)


def train_step(module, x, mask, target):
    module.zero_grad(set_to_none=True)
    y = run(module, x, mask)[0]
    loss = (y - target).abs().mean()
    loss.backward()
    grads = {n: (p.grad if p.grad is not None else torch.zeros_like(p)).detach().to(DT).numpy()
             for n, p in module.named_parameters()}
    return float(loss), grads


def make_target(case, y64, rng):
    """The L1 target (see "Inputs and targets"): float32 values as float64, and its record."""
    key = f"{case}/target"
    t_i, _ = image_pair(key, "smooth", y64.shape)
    img = to_float(t_i, rng).astype(np.float32)
    t_scale = np.float32(2.0 ** round(math.log2(float(y64.std()) / float(img.std()))))
    t_shift = np.float32(float(y64.mean()) - float(t_scale) * float(img.astype(np.float64).mean()))
    t = (t_shift + t_scale * img).astype(np.float64)   # float32: exact product, one rounding
    m = MARGIN * float(np.abs(y64).max())
    tf, yf = t.reshape(-1).copy(), y64.reshape(-1)
    idx = np.flatnonzero(np.abs(yf - tf) < m)
    side = np.where(tf[idx] > yf[idx], 1.0, -1.0)      # T stays on its side of y (below if equal)
    tf[idx] = (yf[idx] + side * m).astype(np.float32).astype(np.float64)
    margin = float(np.abs(yf - tf).min())
    assert margin >= m / 2, (case, margin, m)
    assert tf.size < 1 << 24                           # indices exact in float32
    return dict(key=key, isum=float(t_i.sum()), scale=float(t_scale), shift=float(t_shift),
                value=tf.reshape(y64.shape), idx=idx, fix=tf[idx], margin=margin,
                mixed=float((yf > tf).mean()))


def rms(t):
    return float(t.pow(2).mean().sqrt())


def activation_report(case, module, x, mask):
    """RMS of every leaf module's output (and the outputs) on the case's input."""
    stats = []

    def hook(mod, inp, out, name):
        if isinstance(out, torch.Tensor):
            stats.append((name, rms(out), float(out.abs().max())))

    hs = [m.register_forward_hook(lambda mod, i, o, n=n: hook(mod, i, o, n))
          for n, m in module.named_modules() if n and not list(m.children())]
    with torch.no_grad():
        outs = run(module, x, mask)
    for h in hs:
        h.remove()
    worst = max(stats, key=lambda s: s[1])
    least = min(stats, key=lambda s: s[1])
    print(f"{case:24s} activations: {len(stats)} leaf outputs, rms from {least[1]:.3g} "
          f"({least[0]}) "
          f"to {worst[1]:.3g} ({worst[0]}); max|.| {max(s[2] for s in stats):.3g}; outputs rms " +
          ", ".join(f"{rms(o):.3g}" for o in outs if o is not None))
    return stats


def sattr(s):
    return np.bytes_(s.encode())


def write(group, name, a, lossy=False):
    a = np.ascontiguousarray(np.asarray(a, dtype=np.float32))
    if not np.all(np.isfinite(a)):
        raise RuntimeError(f"{group.name}/{name}: non-finite reference values")
    if lossy and a.size > 20000:
        # decimal digits D with 10^-D <= 1e-5 max|a|: HDF5's D-scaling errs by up to 10^-D
        amax = float(np.abs(a).max())
        digits = int(math.ceil(5 - math.log10(amax)))
        group.create_dataset(name, data=a, scaleoffset=digits, compression="gzip",
                             compression_opts=9, track_times=False)
        back = group[name][()]
        assert np.abs(back - a).max() <= 1e-5 * amax, (name, np.abs(back - a).max(), amax)
    elif a.size >= 256:
        group.create_dataset(name, data=a, compression="gzip", compression_opts=9, shuffle=True,
                             track_times=False)
    else:
        group.create_dataset(name, data=a, track_times=False)


def image(key, shape, rng):
    a_i, _ = image_pair(key, "smooth", shape)
    return a_i, to_float(a_i, rng)


def do_case(f, spec, report_only=False):
    case, model, variant, ctor, shape, rng, out_names, mshape = spec
    torch.manual_seed(0)
    module = ctor()
    n_params = check_names(case, module, model, variant)
    vals, scales, offsets, probe = formula_state(model, module)
    xk = x_key(case)
    x_i, x = image(xk, shape, rng)
    mask_i = mask = None
    if mshape:
        mask_key = f"{case}/mask"
        mask_i, mask = image(mask_key, mshape, 1)
    m64 = load_state(module, vals, DT)
    X = torch.tensor(x, dtype=DT)
    M = torch.tensor(mask, dtype=DT) if mask is not None else None
    if report_only:
        activation_report(case, m64, X, M)
        return
    activation_report(case, m64, X, M)
    risk, (kmargin, kwhere) = kink_risk(m64, X, M)
    outs = [o.numpy() for o in eval_outputs(m64, X, M) if o is not None]
    y64 = outs[0]
    tg = make_target(case, y64, rng)
    target = tg["value"]
    loss64, g64 = train_step(m64, X, M, torch.tensor(target, dtype=DT))
    # the same in torch float32: the float32 noise floor
    m32 = load_state(ctor(), vals, torch.float32)
    X32 = torch.tensor(x, dtype=torch.float32)
    M32 = torch.tensor(mask, dtype=torch.float32) if mask is not None else None
    outs32 = [o.double().numpy() for o in eval_outputs(m32, X32, M32) if o is not None]
    loss32, g32 = train_step(m32, X32, M32, torch.tensor(target, dtype=torch.float32))
    out_rel = max(float(np.abs(a - b).max()) / max(float(np.abs(b).max()), 1e-6)
                  for a, b in zip(outs32, outs))
    names = [n for n, _, k in tensors_of(m64) if k == "param"]
    total = math.sqrt(sum(float((g64[n] ** 2).sum()) for n in names))
    diff = math.sqrt(sum(float(((g32[n] - g64[n]) ** 2).sum()) for n in names))
    floor = 1e-4 * total / math.sqrt(len(names))
    worst = max((math.sqrt(float(((g32[n] - g64[n]) ** 2).sum())) /
                 (1e-2 * math.sqrt(float((g64[n] ** 2).sum())) + floor), n) for n in names)

    g = f.create_group(case)
    g.attrs["model"] = sattr(model)
    g.attrs["variant"] = sattr(variant)
    g.attrs["out_names"] = sattr(",".join(out_names))
    g.attrs["shape"] = np.asarray(shape, np.int32)
    g.attrs["range"] = np.int32(rng)
    g.attrs["x_key"] = sattr(xk)
    g.attrs["x_isum"] = np.float64(x_i.sum())
    if mshape:
        g.attrs["mask_key"] = sattr(mask_key)
        g.attrs["mask_shape"] = np.asarray(mshape, np.int32)
        g.attrs["mask_isum"] = np.float64(mask_i.sum())
    g.attrs["target_key"] = sattr(tg["key"])
    g.attrs["target_isum"] = np.float64(tg["isum"])
    g.attrs["target_scale"] = np.float64(tg["scale"])
    g.attrs["target_shift"] = np.float64(tg["shift"])
    g.attrs["target_margin"] = np.float64(tg["margin"])
    g.attrs["kink_risk"] = np.float64(risk)
    g.attrs["kink_margin"] = np.float64(kmargin)
    g.attrs["n_params"] = np.int64(n_params)
    g.attrs["names"] = sattr(",".join(n for n, _, _ in tensors_of(m64)))
    g.attrs["n_grad"] = np.int32(len(names))
    g.attrs["torch_f32_out_rel"] = np.float64(out_rel)
    g.attrs["torch_f32_loss_rel"] = np.float64(abs(loss32 - loss64) / abs(loss64))
    g.attrs["torch_f32_grad_rel"] = np.float64(diff / total)
    g.attrs["torch_f32_grad_worst"] = np.float64(worst[0])
    write(g, "scales", scales)
    write(g, "offsets", offsets)
    write(g, "probe", probe)
    # the three ablations keep the first image of y only (the file stays under 3 MB; the full
    # model and external_mask check both images, and every train step uses both)
    stored = 1 if variant in ("no_refine", "no_g2", "no_attention") else shape[0]
    g.attrs["out_images"] = np.int32(stored)
    for k, (name, o) in enumerate(zip(out_names, outs)):
        write(g, "out_" + name, o[:stored] if k == 0 else o, lossy=True)
    g.attrs["n_fix"] = np.int32(tg["idx"].size)
    if tg["idx"].size:
        write(g, "target_fix_idx", tg["idx"])
        write(g, "target_fix_val", tg["fix"])
    write(g, "loss", np.float64(loss64))
    gnorm, gfull, sk = [], [], []
    for n in names:
        b = g64[n]
        gnorm.append(math.sqrt(float((b ** 2).sum())))
        if b.size <= SKETCH_K:
            gfull.append(b.reshape(-1))
        else:
            sk.append(sketch(n, b))
    g.create_dataset("gnorm", data=np.array(gnorm, np.float64), track_times=False)
    write(g, "gfull", np.concatenate(gfull) if gfull else np.zeros(0))
    write(g, "sketch", np.array(sk).reshape(-1))       # rank 1: row t at [t K, (t + 1) K)
    print(f"{case:24s} {n_params} parameters in {len(names)} tensors ({len(sk)} sketched); "
          f"loss {loss64:.6f}; ||grad|| {total:.4g}; target fix-ups {tg['idx'].size}, margin "
          f"{tg['margin']:.3g}, y > T at {100 * tg['mixed']:.0f} %; kink risk {risk:.3g}, margin "
          f"{kmargin:.3g} ({kwhere}); torch f32 vs f64: outputs {out_rel:.2g}, loss "
          f"{abs(loss32 - loss64) / abs(loss64):.2g}, grads {diff / total:.3g} (worst tensor "
          f"{worst[0]:.3g} of the per-tensor bound: {worst[1]})")


def main():
    args = sys.argv[1:]
    only = os.environ.get("BK_MODEL_CASE")
    cases = [c for c in CASES if not only or only in c[0]]
    if len(args) == 2 and args[0] == "--search":
        for c in cases:
            print(c[0], search(c[0], int(args[1])))
        return
    if args == ["--report"]:
        for c in cases:
            do_case(None, c, report_only=True)
        return
    if len(args) != 1:
        sys.stderr.write(__doc__.split("\n\n")[1] + "\n")
        sys.exit(2)
    os.makedirs(args[0], exist_ok=True)
    path = os.path.join(args[0], "models.h5")
    tmp = path + ".tmp"
    with h5py.File(tmp, "w", track_order=False) as f:
        f.attrs["format"] = sattr("bokehlab-model-fixtures-1")
        f.attrs["torch_version"] = sattr(torch.__version__)
        f.attrs["command"] = sattr(" ".join(shlex.quote(a) for a in sys.argv))
        f.attrs["reference"] = sattr("PyTorch float64 from float32 weights and inputs")
        f.attrs["sketch_k"] = np.int32(SKETCH_K)
        f.attrs["margin"] = np.float64(MARGIN)
        for c in cases:
            do_case(f, c)
    os.replace(tmp, path)
    print(f"wrote {path}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
