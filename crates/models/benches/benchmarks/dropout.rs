//! Cost per element of dropout masks: this crate's seeded masks (one thread and the libtorch
//! thread count), the whole `Dropout::forward`, libtorch's own `Tensor::dropout`, and the bare
//! multiply as the floor; on one MC chunk of the CO2 net (1000 rows x 1024 units, fits in
//! cache) and on a 16x bigger one (does not).

use criterion::Criterion;
use mcd_models::dropout::Dropout;
use tch::{Device, Kind, Tensor};

use super::common::Report;

pub fn bench(c: &mut Criterion, report: &mut Report) {
    let threads = usize::try_from(tch::get_num_threads()).unwrap_or(1);
    let mut g = Report::group(c, "dropout", 2);
    for rows in [1000i64, 16_000] {
        let shape = [rows, 1024];
        let n = (rows * 1024) as usize;
        let el = Some(n as f64);
        let x = Tensor::randn(shape, (Kind::Float, Device::Cpu)).relu();
        let m = Tensor::ones(shape, (Kind::Float, Device::Cpu));
        let d = Dropout::new(0.1, 3);
        let mut call = 0u64;
        let s = format!("{rows}x1024");
        report.bench(
            &mut g,
            "dropout",
            &format!("mask_1_thread_{s}"),
            None,
            el,
            || {
                call += 1;
                let _ = d.mask_with_threads(call, n, 1);
            },
        );
        let id = format!("mask_{threads}_threads_{s}");
        report.bench(&mut g, "dropout", &id, None, el, || {
            call += 1;
            let _ = d.mask_with_threads(call, n, threads);
        });
        report.bench(&mut g, "dropout", &format!("forward_{s}"), None, el, || {
            let _ = tch::no_grad(|| d.forward(&x, true));
        });
        report.bench(
            &mut g,
            "dropout",
            &format!("libtorch_dropout_{s}"),
            None,
            el,
            || {
                let _ = tch::no_grad(|| x.dropout(0.1, true));
            },
        );
        report.bench(
            &mut g,
            "dropout",
            &format!("mul_only_{s}"),
            None,
            el,
            || {
                let _ = tch::no_grad(|| &x * &m);
            },
        );
        report.bench(
            &mut g,
            "dropout",
            &format!("relu_only_{s}"),
            None,
            el,
            || {
                let _ = tch::no_grad(|| x.relu());
            },
        );
    }
    g.finish();
}
