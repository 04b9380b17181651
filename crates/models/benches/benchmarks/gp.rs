//! The exact GP baseline of the CO2 study on its problem size (272 training points): one fit
//! at fixed hyperparameters (a Cholesky of a 272 x 272 matrix) and the fit with hyperparameters
//! by maximum marginal likelihood. Timings live here, not in unit tests.

use criterion::Criterion;
use mcd_models::gp::{Gp, GpHyper};

use super::common::Report;

pub fn bench(c: &mut Criterion, report: &mut Report) {
    let mut g = Report::group(c, "gp", 10);
    let n = 272;
    let x: Vec<f64> = (0..n)
        .map(|i| -2.0 + 4.0 * i as f64 / (n - 1) as f64)
        .collect();
    let y: Vec<f64> = x.iter().map(|v| (3.0 * v).sin() + 0.1 * v).collect();
    let hyper = GpHyper {
        length_scale: 0.5,
        signal_var: 1.0,
        noise_var: 0.01,
    };
    report.bench(&mut g, "gp", "fit_272", None, None, || {
        std::hint::black_box(Gp::fit(&x, 1, &y, hyper).expect("GP fit"));
    });
    report.bench(&mut g, "gp", "fit_optimised_272", None, None, || {
        std::hint::black_box(Gp::fit_optimised(&x, 1, &y, hyper).expect("GP fit"));
    });
    g.finish();
}
