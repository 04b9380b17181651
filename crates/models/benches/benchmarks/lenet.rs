//! MC prediction with the paper's MNIST LeNet (p = 0.5), T = 50 passes over 1,000 MNIST test
//! images: `mc_samples` (the conv stack computed once per image when dropout follows FC 500 only,
//! passes batched in memory-capped chunks) against the plain loop of `forward_t(x, true)` that
//! PyTorch code would write; for LeNet and LeNet-all (dropout after the convolutions too, so
//! only conv1 is deterministic).

use criterion::Criterion;
use mcd_models::lenet::LeNetDropout;
use mcd_models::mc::{mc_samples, McConfig};
use tch::nn::ModuleT;
use tch::Tensor;

use super::common::{lenet, lenet_macs, mnist_test, Report};

/// Images and passes.
pub const N: i64 = 1000;
pub const T: usize = 50;

pub fn bench(c: &mut Criterion, report: &mut Report) {
    let (x, _) = mnist_test(N);
    let (prefix, head) = lenet_macs();
    let n = N as f64;
    for (label, placement) in [
        ("lenet", LeNetDropout::Fc),
        ("lenet_all", LeNetDropout::All),
    ] {
        // One criterion group per net: the workload ids repeat.
        let mut g = Report::group(c, label, 10);
        let (_vs, net) = lenet(placement);
        let cfg = McConfig {
            samples: T,
            memory_budget_bytes: 256 << 20,
            seed: 7,
        };
        // Work actually done: the plain loop runs the whole net T times; `mc_samples` runs the
        // prefix once per image (LeNet) or conv1 once (LeNet-all, where it is cheap).
        let full = 2.0 * (prefix + head) * n * T as f64;
        let conv1 = 20.0 * 24.0 * 24.0 * 25.0;
        let reused = match placement {
            LeNetDropout::Fc => 2.0 * (prefix * n + head * n * T as f64),
            LeNetDropout::All => 2.0 * (conv1 * n + (prefix + head - conv1) * n * T as f64),
        };
        report.bench(
            &mut g,
            label,
            &format!("mc_samples_T{T}"),
            Some(reused),
            None,
            || {
                let _ = mc_samples(&net, &x, &cfg);
            },
        );
        report.bench(
            &mut g,
            label,
            &format!("forward_t_loop_T{T}"),
            Some(full),
            None,
            || {
                tch::no_grad(|| {
                    let ys: Vec<Tensor> = (0..T).map(|_| net.forward_t(&x, true)).collect();
                    let _ = Tensor::stack(&ys, 0);
                })
            },
        );
        report.ratio(
            &format!("{label}: mc_samples speed-up over the forward_t loop"),
            &format!("{label}/forward_t_loop_T{T}"),
            1.0,
            &format!("{label}/mc_samples_T{T}"),
        );
        g.finish();
    }
}
