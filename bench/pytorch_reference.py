#!/usr/bin/env python3
"""PyTorch-eager reference for the Rust benches (crates/models/benches, crates/trainer/benches).

Runs the same workloads with the same shapes and names and prints median times; with --out it
writes the same TSV as the Rust benches (name, median_s, flop, elements), which
`cargo xtask bench --compare` reads to print Rust / PyTorch ratios.

Needs torch (CPU is enough): `pip install torch==2.11.0` (the version of the libtorch the Rust
side links). Usage: python3 bench/pytorch_reference.py [--out FILE] [--samples 10] [--filter RE]
MCD_BENCH_T=N sets the number of MC passes (default 100), as for the Rust benches.

With --serve it measures nothing by itself but answers requests on stdin, for the paired rounds
of `cargo xtask bench --compare` (the same protocol as the Rust side,
crates/trainer/benches/benchmarks/paired.rs): it prints `ready<TAB><name>,<name>,...`, then
for each line `<name> <calls>` runs that workload `calls` times and prints
`<name><TAB><seconds> <seconds> ...`; a bad request gets `error<TAB><why>`.
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


def lenet(all_layers):
    """Caffe LeNet (conv 20@5, pool, conv 50@5, pool, FC 500 + ReLU, FC 10) with dropout 0.5
    after FC 500, and after both convolutions too for LeNet-all; Caffe "xavier" init, bias 0."""
    torch.manual_seed(1)
    conv1, conv2 = torch.nn.Conv2d(1, 20, 5), torch.nn.Conv2d(20, 50, 5)
    fc1, fc2 = torch.nn.Linear(800, 500), torch.nn.Linear(500, 10)
    for layer, fan_in in ((conv1, 25), (conv2, 500), (fc1, 800), (fc2, 500)):
        bound = (3.0 / fan_in) ** 0.5
        torch.nn.init.uniform_(layer.weight, -bound, bound)
        torch.nn.init.zeros_(layer.bias)
    drop = (lambda: [torch.nn.Dropout(0.5)]) if all_layers else (lambda: [])
    return torch.nn.Sequential(
        conv1, *drop(), torch.nn.MaxPool2d(2), conv2, *drop(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), fc1, torch.nn.ReLU(), torch.nn.Dropout(0.5), fc2,
    )


LENET_MACS = 20 * 24 * 24 * 25 + 50 * 8 * 8 * 20 * 25 + 800 * 500 + 500 * 10


def mnist_test(n):
    """The first n MNIST test images (/256, as the Rust loader) and labels from data/."""
    import gzip

    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "mnist")
    with gzip.open(os.path.join(root, "t10k-images-idx3-ubyte.gz")) as f:
        raw = f.read()[16:16 + n * 784]
    with gzip.open(os.path.join(root, "t10k-labels-idx1-ubyte.gz")) as f:
        labels = f.read()[8:8 + n]
    images = torch.frombuffer(bytearray(raw), dtype=torch.uint8).float().div(256.0)
    return images.view(n, 1, 28, 28), torch.frombuffer(bytearray(labels), dtype=torch.uint8).long()


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

    # PyTorch's own single-kernel Adam (not the default on the CPU), for comparison.
    fused_net = co2_net().train()
    fused_opt = torch.optim.Adam(
        fused_net.parameters(), lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-6, fused=True
    )

    def fused_step():
        loss = 0.5 * (fused_net(xt) - yt).square().sum(1).mean()
        fused_opt.zero_grad()
        loss.backward()
        fused_opt.step()

    out.append(
        ("train/adam_step_co2_n272_torch_fused_adam", 3.0 * 2.0 * forward_macs() * N_TRAIN, None, fused_step)
    )

    images, labels = mnist_test(64)

    def lenet_sgd_step(net, batch):
        """One SGD step of `net` on `batch` with the Caffe solver's momentum and decay."""
        sgd = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

        def step():
            loss = F.cross_entropy(net(batch), labels)
            sgd.zero_grad()
            loss.backward()
            sgd.step()

        return step

    lenet_step_flop = 3.0 * 2.0 * LENET_MACS * 64
    out.append(("train/sgd_step_lenet_b64", lenet_step_flop, None, lenet_sgd_step(lenet(False).train(), images)))
    # The same step with the whole net and the batch in channels-last memory, which a PyTorch
    # user can ask for; the Rust LeNet runs conv2 that way on the CPU.
    cl_lenet = lenet(False).train().to(memory_format=torch.channels_last)
    cl_images = images.contiguous(memory_format=torch.channels_last)
    out.append(
        ("train/sgd_step_lenet_b64_torch_channels_last", lenet_step_flop, None, lenet_sgd_step(cl_lenet, cl_images))
    )

    mc_images, _ = mnist_test(1000)
    for label, all_layers in (("lenet", False), ("lenet_all", True)):
        net_l = lenet(all_layers).train()

        def lenet_loop(net_l=net_l):
            with torch.no_grad():
                torch.stack([net_l(mc_images) for _ in range(50)])

        out.append((f"{label}/forward_t_loop_T50", 2.0 * LENET_MACS * 1000 * 50, None, lenet_loop))

    # The UCI grid stacks (crates/trainer/benches/benchmarks/stacked.rs): every net's weights
    # in [M, in, out] tensors, one epoch of shuffled batches of 128, input and hidden dropout,
    # 0.5 MSE per net, Adam with each net's L2 decay on its weights.
    for name, splits, d, hidden, rows, epochs in STACKED_GRIDS:
        nets = 12 * splits
        flop = 6.0 * (d * hidden + hidden) * rows * nets * epochs
        out.append(
            (f"stacked/{name}_{nets}_nets_{epochs}_epochs", flop, None, stacked_epochs(nets, d, hidden, rows, epochs))
        )
    return out


# (name, splits, inputs, hidden units, training rows, epochs): Boston's and Protein's grid shapes.
STACKED_GRIDS = [("boston", 20, 13, 50, 364, 20), ("protein", 5, 9, 100, 1280, 3)]


def stacked_epochs(nets, d, hidden, rows, epochs):
    """`epochs` epochs of a stack of `nets` one-hidden-layer nets, each on its own rows and order."""
    torch.manual_seed(2)
    x = torch.randn(nets, rows, d)
    y = x.sum(2, keepdim=True).sin()
    w1 = (torch.rand(nets, d, hidden) * 2 - 1) * (6.0 / (d + hidden)) ** 0.5
    w2 = (torch.rand(nets, hidden, 1) * 2 - 1) * (6.0 / (hidden + 1)) ** 0.5
    params = [w1.requires_grad_(), torch.zeros(nets, 1, hidden, requires_grad=True),
              w2.requires_grad_(), torch.zeros(nets, 1, 1, requires_grad=True)]
    p = torch.tensor([0.005, 0.01, 0.05, 0.1]).repeat_interleave(3).repeat(nets // 12).view(nets, 1, 1)
    decay = torch.tensor([1e-6, 2e-6, 4e-6]).repeat(nets // 3).view(nets, 1, 1)
    opt = torch.optim.Adam(params, lr=1e-3)

    def run():
        for _ in range(epochs):
            epoch()

    def epoch():
        order = torch.argsort(torch.rand(nets, rows), dim=1)
        for start in range(0, rows, 128):
            idx = order[:, start:start + 128]
            xb = torch.gather(x, 1, idx.unsqueeze(2).expand(-1, -1, d))
            yb = torch.gather(y, 1, idx.unsqueeze(2))
            keep = 1 - p
            xb = xb * torch.bernoulli(keep.expand_as(xb)) / keep
            h = torch.baddbmm(params[1], xb, params[0]).relu()
            h = h * torch.bernoulli(keep.expand_as(h)) / keep
            out = torch.baddbmm(params[3], h, params[2])
            loss = 0.5 * (out - yb).square().mean(1).sum()
            # L2 decay on the weights as a gradient term, as Keras' W_regularizer.
            loss = loss + 0.5 * (decay * params[0].square()).sum() + 0.5 * (decay * params[2].square()).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()

    return run


def serve(t):
    """Answers `<name> <calls>` requests on stdin with each call's seconds (see the module doc)."""
    table = {name: fn for name, _, _, fn in workloads(t)}
    print("ready\t" + ",".join(table), flush=True)
    for line in sys.stdin:
        words = line.split()
        if len(words) != 2 or not words[1].isdigit() or int(words[1]) < 1:
            print(f"error\texpected `<workload> <calls>`, got `{line.strip()}`", flush=True)
            continue
        name, calls = words[0], int(words[1])
        fn = table.get(name)
        if fn is None:
            print(f"error\tunknown workload `{name}`", flush=True)
            continue
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        print(name + "\t" + " ".join(f"{s:e}" for s in times), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="write the results as TSV to this file")
    ap.add_argument("--samples", type=int, default=10, help="timed calls per workload")
    ap.add_argument("--filter", default="", help="regular expression on workload names")
    ap.add_argument("--serve", action="store_true", help="answer timing requests on stdin (xtask's paired rounds)")
    args = ap.parse_args()
    t = int(os.environ.get("MCD_BENCH_T", "100"))
    if args.serve:
        serve(t)
        return
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
