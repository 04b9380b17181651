//! MC dropout (Gal & Ghahramani 2016): T passes with dropout on; predictive variance = the
//! passes' variance + 1/tau, log-likelihood by logsumexp over passes with precision tau.

use anyhow::Result;
use mcd_evaluation::regression::{self as reg, Affine};
use mcd_evaluation::samples::SampleMatrix;
use mcd_trainer::{HalfMse, Objective};

use super::{Method, Passes, RegressionPredictive, Use};

/// The default method: every study uses it.
pub struct McDropout;

impl Method for McDropout {
    fn name(&self) -> &'static str {
        "mc_dropout"
    }

    fn label(&self) -> &'static str {
        "MC dropout"
    }

    /// Every study but the one that learns its rates (concrete_synthetic).
    fn serves(&self, u: Use) -> bool {
        u != Use::ConcreteHeteroscedastic
    }

    fn regression_objective(&self) -> Box<dyn Objective> {
        Box::new(HalfMse)
    }

    fn regression_predictive(&self, passes: &Passes, tau: f64) -> Result<RegressionPredictive> {
        let p = reg::predictive(&SampleMatrix::new(&passes.data, passes.t, passes.n)?, tau)?;
        let noise_sd = p.noise_var.sqrt();
        Ok(RegressionPredictive {
            sd: p.sd(),
            epistemic_sd: p.model_var.iter().map(|v| v.sqrt()).collect(),
            aleatoric_sd: vec![noise_sd; p.mean.len()],
            mean: p.mean,
            tau: Some(tau),
        })
    }

    fn regression_log_likelihood(&self, passes: &Passes, targets: &[f32], tau: f64) -> Result<f64> {
        let m = SampleMatrix::new(&passes.data, passes.t, passes.n)?;
        Ok(reg::log_likelihood(&m, targets, tau, Affine::IDENTITY)?.mean)
    }
}
