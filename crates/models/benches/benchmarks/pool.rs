//! LeNet's 2 x 2 max-pooling, forward and backward, on the conv outputs of a training batch of
//! 64 (`[64, 20, 24, 24]` and `[64, 50, 8, 8]`): libtorch's `max_pool2d` against
//! `mcd_models::pool::max_pool_2x2` (window argmax in Rust, values by `gather`; the same values
//! and gradients).

use criterion::Criterion;
use mcd_models::pool::max_pool_2x2;
use tch::{Device, Kind, Tensor};

use super::common::Report;

pub fn bench(c: &mut Criterion, report: &mut Report) {
    let mut g = Report::group(c, "pool", 3);
    for shape in [[64i64, 20, 24, 24], [64, 50, 8, 8]] {
        let x = Tensor::randn(shape, (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let out = [shape[0], shape[1], shape[2] / 2, shape[3] / 2];
        let grad = Tensor::randn(out, (Kind::Float, Device::Cpu));
        let elements = Some(x.numel() as f64);
        let size = format!("{}x{}x{}x{}", shape[0], shape[1], shape[2], shape[3]);
        let libtorch = format!("max_pool2d_fwd_bwd_{size}");
        let ours = format!("max_pool_2x2_fwd_bwd_{size}");
        report.bench(&mut g, "pool", &libtorch, None, elements, || {
            let y = x.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
            (y * &grad).sum(Kind::Float).backward();
        });
        report.bench(&mut g, "pool", &ours, None, elements, || {
            (max_pool_2x2(&x) * &grad).sum(Kind::Float).backward();
        });
        report.ratio(
            &format!("exact 2 x 2 max-pool over libtorch's, {size}"),
            &format!("pool/{libtorch}"),
            1.0,
            &format!("pool/{ours}"),
        );
    }
    g.finish();
}
