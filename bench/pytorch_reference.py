#!/usr/bin/env python3
"""PyTorch-eager reference for the Rust benches (crates/models/benches, crates/trainer/benches).

Runs the same workloads with the same shapes and names and prints median times; with --out it
writes the same TSV as the Rust benches (name, median_s, flop, elements), which
`cargo xtask bench --compare` reads to print Rust / PyTorch ratios.

Needs torch (CPU is enough): `pip install torch==2.11.0` (the version of the libtorch the Rust
side links). Usage: python3 bench/pytorch_reference.py [--out FILE] [--samples 10] [--filter RE]
MCD_BENCH_T=N sets the number of MC passes (default 100), as for the Rust benches.
"""

import argparse
import os
import re
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    sys.stderr.write(
        "pytorch_reference.py: Python torch is not installed; install it with\n"
        "    pip install torch==2.11.0\n"
    )
    sys.exit(2)

N_MC = 1000  # MC inputs
N_TRAIN = 272  # CO2 training points
WIDTHS = [1, 1024, 1024, 1024, 1024, 1]  # the paper's CO2 net
P = 0.1
MATMUL = (8192, 1024, 1024)


def forward_macs():
    return sum(a * b for a, b in zip(WIDTHS, WIDTHS[1:]))


def co2_net():
    """Linear -> ReLU -> Dropout(0.1) per hidden layer, Caffe "xavier" init (U(+-sqrt(3/fan_in)), bias 0)."""
    torch.manual_seed(1)
    layers = []
    for i, (a, b) in enumerate(zip(WIDTHS, WIDTHS[1:])):
        lin = torch.nn.Linear(a, b)
        bound = (3.0 / a) ** 0.5
        torch.nn.init.uniform_(lin.weight, -bound, bound)
        torch.nn.init.zeros_(lin.bias)
        layers.append(lin)
        if i + 2 < len(WIDTHS):
            layers += [torch.nn.ReLU(), torch.nn.Dropout(P)]
    return torch.nn.Sequential(*layers)


def measure(fn, samples, warmup_s=0.5):
    """Median seconds per call over `samples` calls, after warming up for `warmup_s`."""
    start = time.perf_counter()
    fn()
    while time.perf_counter() - start < warmup_s:
        fn()
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    mid = len(times) // 2
    return times[mid] if len(times) % 2 else 0.5 * (times[mid - 1] + times[mid])


def workloads(t):
    """(name, flop or None, elements or None, fn) in the order of the Rust benches."""
    out = []
    m, k, n = MATMUL
    a, b, c = torch.randn(m, k), torch.randn(k, n), torch.empty(m, n)
    # Into a preallocated output: the kernel's speed without allocation costs.
    out.append((f"matmul/f32_{m}x{k}x{n}", 2.0 * m * k * n, None, lambda: torch.mm(a, b, out=c)))

    net = co2_net().train()  # dropout on: MC dropout
    x = torch.linspace(-2.0, 3.5, N_MC).view(N_MC, 1)
    mc_flop = 2.0 * forward_macs() * t * N_MC

    def loop():
        with torch.no_grad():
            torch.stack([net(x) for _ in range(t)])

    def batched():
        with torch.no_grad():
            net(x.repeat(t, 1)).view(t, N_MC, -1)

    out.append((f"mc/batched_all_T{t}", mc_flop, None, batched))
    out.append((f"mc/forward_t_loop_T{t}", mc_flop, None, loop))

    for rows in (1000, 16000):
        xs = torch.randn(rows, 1024).relu()
        ones = torch.ones(rows, 1024)

        def drop(xs=xs):
            with torch.no_grad():
                F.dropout(xs, P, True)

        def mul(xs=xs, ones=ones):
            with torch.no_grad():
                xs * ones

        def relu(xs=xs):
            with torch.no_grad():
                xs.relu()

        el = float(rows * 1024)
        out.append((f"dropout/libtorch_dropout_{rows}x1024", None, el, drop))
        out.append((f"dropout/mul_only_{rows}x1024", None, el, mul))
        out.append((f"dropout/relu_only_{rows}x1024", None, el, relu))

    xt = torch.linspace(-1.7, 1.7, N_TRAIN).view(N_TRAIN, 1)
    yt = torch.sin(3.0 * xt)
    train_net = co2_net().train()
    # Same as tch's nn::adam(0.9, 0.999, 1e-6): L2 decay added to the gradient.
    opt = torch.optim.Adam(train_net.parameters(), lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-6)

    def step():
        loss = 0.5 * (train_net(xt) - yt).square().sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    out.append(("train/adam_step_co2_n272", 3.0 * 2.0 * forward_macs() * N_TRAIN, None, step))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="write the results as TSV to this file")
    ap.add_argument("--samples", type=int, default=10, help="timed calls per workload")
    ap.add_argument("--filter", default="", help="regular expression on workload names")
    args = ap.parse_args()
    t = int(os.environ.get("MCD_BENCH_T", "100"))
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads, T = {t}")
    rows = []
    for name, flop, elements, fn in workloads(t):
        if args.filter and not re.search(args.filter, name):
            continue
        med = measure(fn, args.samples)
        rows.append((name, med, flop, elements))
        gf = f"{flop / med / 1e9:8.1f} GFLOP/s" if flop else ""
        ns = f"{med * 1e9 / elements:8.3f} ns/elem" if elements else ""
        print(f"{name:<44} {med * 1e3:12.4f} ms {gf}{ns}", flush=True)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            f.write("name\tmedian_s\tflop\telements\n")
            for name, med, flop, elements in rows:
                fmt = lambda v: "" if v is None else f"{v:e}"
                f.write(f"{name}\t{med:e}\t{fmt(flop)}\t{fmt(elements)}\n")


if __name__ == "__main__":
    main()
