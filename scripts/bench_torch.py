#!/usr/bin/python3
"""bench_torch.py — the workloads of build/bin/bench (SPEC §6) in PyTorch, for the comparison
column of docs/PERFORMANCE.md.

    scripts/bench_torch.py --model NAME [--variant V] --mode infer|train --size HxW --batch B
                           [--reps R] [--threads T]

The networks are the PyTorch modules of gen_model_fixtures.py (written from SPEC §2-§4, with
the parameter names and shapes of tests/data/params). Same protocol as bench: infer is an eval
forward under torch.no_grad(); train is a training-mode forward (batch statistics, dropout on),
L1 to a fixed target, backward and one Adam step. Two warm-up runs, then the median of R runs
(default 5). Denormals are flushed (torch.set_flush_denormal(True)) and the thread count is
set (default: the machine's cores), as bench does. Prints one line:

    torch MODEL MODE BxCxHxW threads=T median_s=S

Needs /usr/bin/python3 with torch (Debian python3-torch).
"""
import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_model_fixtures as gm  # noqa: E402

MODELS = {
    "dmshn": lambda v: gm.DMSHN(),
    "stacked_dmshn": lambda v: gm.StackedDMSHN(),
    "glassnet": lambda v: gm.GlassNet(32),
    "glassnet_c24": lambda v: gm.GlassNet(24),
    "multi_rf_discriminator": lambda v: gm.Critic(),
    "ampn": lambda v: gm.AMPN(v),
}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, choices=sorted(MODELS))
    p.add_argument("--variant", default="")
    p.add_argument("--mode", required=True, choices=("infer", "train"))
    p.add_argument("--size", required=True, help="HxW, e.g. 1024x1536")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    a = p.parse_args()
    try:
        h, w = (int(s) for s in a.size.lower().split("x"))
    except ValueError:
        p.error(f"--size must be HxW, not {a.size!r}")
    if a.variant and a.model != "ampn":
        p.error("only ampn has variants")

    torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    net = MODELS[a.model](a.variant)
    x = torch.rand(a.batch, 3, h, w)
    if a.model.startswith("glassnet") or a.model == "multi_rf_discriminator":
        x = 2 * x - 1
    mask = torch.rand(a.batch, 1, h // 4, w // 4) if "external_mask" in a.variant else None

    def forward():
        return net(x, mask) if a.model == "ampn" else net(x)

    if a.mode == "infer":
        net.eval()

        def step():
            with torch.no_grad():
                forward()
    else:
        net.train()
        opt = torch.optim.Adam(net.parameters(), lr=1e-4)
        with torch.no_grad():
            target = torch.rand_like(forward()[0])

        def step():
            opt.zero_grad(set_to_none=True)
            loss = (forward()[0] - target).abs().mean()
            loss.backward()
            opt.step()

    times = []
    for i in range(2 + a.reps):
        t0 = time.perf_counter()
        step()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    print(f"torch {a.model}{',' + a.variant if a.variant else ''} {a.mode} {a.batch}x3x{h}x{w} "
          f"threads={a.threads} median_s={statistics.median(times):.4f}")


if __name__ == "__main__":
    main()
