//! Heteroscedastic MC dropout (Kendall & Gal 2017): the MLP has a second output per target, a
//! log-variance s = log sigma^2, and is trained on the Gaussian negative log-likelihood
//! `1/2 exp(-s) (y - y_hat)^2 + 1/2 s` (mean over points, constant dropped). T passes with
//! dropout on give T Gaussians N(y_hat_t, exp(s_t)) per input; the predictive is their mixture:
//! variance = epistemic (variance over passes of the passes' means) + aleatoric (mean over
//! passes of exp(s_t)).
//!
//! There is no separate tau / precision term in this method's predictive or log-likelihood:
//! the observation noise is what the variance head learns. `precision` (tau, length-scale)
//! only sets the weight decay, as for MC dropout (`Regularisation::resolve`).

use anyhow::Result;
use mcd_trainer::{Objective, TrainError};
use tch::{Kind, Tensor};

use super::{gaussian_mixture_log_likelihood, Method, Passes, RegressionPredictive, Use};

/// The method (`model.method: heteroscedastic`); regression with one MLP only.
pub struct Heteroscedastic;

/// Gaussian NLL with a learnt log-variance: outputs [N, 2k] (k means, then k log-variances),
/// targets [N, k]; `1/2 exp(-s) (y - mu)^2 + 1/2 s` summed over targets, mean over points.
#[derive(Debug, Clone, Copy, Default)]
pub struct HeteroscedasticNll;

impl Objective for HeteroscedasticNll {
    fn check_shapes(&self, x: &Tensor, y: &Tensor) -> Result<(), TrainError> {
        if y.dim() != 2 || y.size()[0] != x.size()[0] {
            return Err(TrainError::Shape {
                x: x.size(),
                y: y.size(),
            });
        }
        Ok(())
    }

    fn loss(&self, out: &Tensor, y: &Tensor) -> Tensor {
        let k = y.size()[1];
        let mu = out.narrow(1, 0, k);
        let s = out.narrow(1, k, k);
        ((-&s).exp() * (y - mu).square() * 0.5 + s * 0.5)
            .sum_dim_intlist(1, false, Kind::Float)
            .mean(Kind::Float)
    }
}

impl Heteroscedastic {
    /// Pass means [T, N] and variances exp(s) (f64, the same layout) of one target's passes.
    fn split(passes: &Passes) -> (Vec<f32>, Vec<f64>) {
        let vars = passes
            .output(1)
            .iter()
            .map(|&s| f64::from(s).exp())
            .collect();
        (passes.output(0), vars)
    }
}

impl Method for Heteroscedastic {
    fn name(&self) -> &'static str {
        "heteroscedastic"
    }

    fn label(&self) -> &'static str {
        "heteroscedastic MC dropout"
    }

    fn serves(&self, u: Use) -> bool {
        u == Use::Regression
    }

    fn outputs_per_target(&self) -> usize {
        2
    }

    fn regression_objective(&self) -> Box<dyn Objective> {
        Box::new(HeteroscedasticNll)
    }

    /// The mixture's moments; `tau` is not used (no separate noise term, see the module docs).
    fn regression_predictive(&self, passes: &Passes, _tau: f64) -> Result<RegressionPredictive> {
        let (means, vars) = Self::split(passes);
        RegressionPredictive::gaussian_mixture(&means, &vars, passes.t, passes.n)
    }

    fn regression_log_likelihood(
        &self,
        passes: &Passes,
        targets: &[f32],
        _tau: f64,
    ) -> Result<f64> {
        let (means, vars) = Self::split(passes);
        gaussian_mixture_log_likelihood(&means, &vars, passes.t, passes.n, targets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::methods::{by_name, Regressor};
    use mcd_models::mc::McConfig;
    use mcd_models::mlp::{Activation, InitScheme, MlpSpec};
    use mcd_models::rng::SeededRng;
    use mcd_trainer::{LrSchedule, Optimizer, Silent, TrainSpec};
    use tch::{nn, Device};

    #[test]
    fn epistemic_plus_aleatoric_equals_the_total_variance() {
        // Two passes over two inputs, (mean, s) interleaved per input: pass 0 gives (1, 0) and
        // (4, ln 2), pass 1 gives (3, ln 3) and (4, ln 0.5).
        let (l2, l3, lh) = (2f32.ln(), 3f32.ln(), 0.5f32.ln());
        let passes = Passes {
            data: vec![1.0, 0.0, 4.0, l2, 3.0, l3, 4.0, lh],
            t: 2,
            n: 2,
            out: 2,
        };
        let p = Heteroscedastic
            .regression_predictive(&passes, 123.0)
            .unwrap();
        // Input 0: mean 2, epistemic ((1-2)^2 + (3-2)^2) / 2 = 1, aleatoric (1 + 3) / 2 = 2.
        // Input 1: mean 4, epistemic 0, aleatoric (2 + 0.5) / 2 = 1.25.
        let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
        assert_eq!(p.mean, vec![2.0, 4.0]);
        assert!(close(p.epistemic_sd[0], 1.0) && close(p.epistemic_sd[1], 0.0));
        assert!(close(p.aleatoric_sd[0], 2f64.sqrt()) && close(p.aleatoric_sd[1], 1.25f64.sqrt()));
        for i in 0..2 {
            let parts = p.epistemic_sd[i].powi(2) + p.aleatoric_sd[i].powi(2);
            assert!((p.sd[i].powi(2) - parts).abs() < 1e-12, "input {i}");
        }
        assert!(close(p.sd[0], 3f64.sqrt()) && close(p.sd[1], 1.25f64.sqrt()));
        // No tau anywhere: the noise is learnt.
        assert_eq!(p.tau, None);
        assert_eq!(
            p,
            Heteroscedastic.regression_predictive(&passes, 0.5).unwrap()
        );
    }

    #[test]
    fn the_loss_is_the_gaussian_nll_by_hand() {
        // Points (mu, s, y): (1, 0, 0) -> 0.5; (2, ln 2, 0) -> 0.5 * 0.5 * 4 + 0.5 ln 2.
        let out = Tensor::from_slice(&[1.0f32, 0.0, 2.0, 2f32.ln()]).view([2, 2]);
        let y = Tensor::from_slice(&[0.0f32, 0.0]).view([2, 1]);
        let loss = f64::try_from(HeteroscedasticNll.loss(&out, &y)).unwrap();
        let want = (0.5 + 1.0 + 0.5 * 2f64.ln()) / 2.0;
        assert!((loss - want).abs() < 1e-6, "{loss} vs {want}");
    }

    #[test]
    fn learns_larger_variance_where_the_noise_is_larger() {
        tch::set_num_threads(1);
        // y = x + noise with sd 0.05 on the left (x < 0) and 0.5 on the right.
        let mut rng = SeededRng::new(11);
        let n = 400;
        let x: Vec<f32> = (0..n)
            .map(|i| -1.0 + 2.0 * i as f32 / (n - 1) as f32)
            .collect();
        let y: Vec<f32> = x
            .iter()
            .map(|&x| {
                let sd = if x < 0.0 { 0.05 } else { 0.5 };
                x + (sd * rng.next_normal()) as f32
            })
            .collect();
        let col = |v: &[f32]| Tensor::from_slice(v).view([v.len() as i64, 1]);
        let vs = nn::VarStore::new(Device::Cpu);
        let spec = MlpSpec {
            input_dim: 1,
            hidden: vec![32, 32],
            output_dim: 1,
            activation: Activation::Relu,
            dropout: 0.05,
            input_dropout: 0.0,
            init: InitScheme::Torch,
            first_layer: None,
        };
        let method = by_name("heteroscedastic").unwrap();
        let model = Regressor::new(method, &vs.root(), &spec, 3, 1.0);
        assert_eq!(model.spec.output_dim, 2, "a mean and a log-variance head");
        let train = TrainSpec {
            iterations: 1500,
            batch_size: Some(64),
            lr: 0.005,
            schedule: LrSchedule::Constant,
            optimizer: Optimizer::Adam {
                beta1: 0.9,
                beta2: 0.999,
            },
            weight_decay: 1e-5,
            seed: 5,
            log_every: 100,
        };
        model
            .train(&vs, &col(&x), &col(&y), &train, 0, &mut Silent)
            .unwrap();
        let probe = [-0.75f32, -0.5, 0.5, 0.75];
        let mc = McConfig {
            samples: 30,
            memory_budget_bytes: 1 << 20,
            seed: 1,
        };
        let passes = model.passes(&col(&probe), &mc).unwrap();
        let p = method.regression_predictive(&passes, 1.0).unwrap();
        let (left, right) = (
            (p.aleatoric_sd[0] + p.aleatoric_sd[1]) / 2.0,
            (p.aleatoric_sd[2] + p.aleatoric_sd[3]) / 2.0,
        );
        assert!(
            right > 3.0 * left,
            "aleatoric sd {left:.3} where the noise sd is 0.05, {right:.3} where it is 0.5"
        );
        assert!(
            right > 0.25 && right < 1.0,
            "aleatoric sd {right:.3} for a noise sd of 0.5"
        );
        // The means follow y = x.
        for (m, x) in p.mean.iter().zip(probe) {
            assert!((m - f64::from(x)).abs() < 0.3, "mean {m:.3} at x = {x}");
        }
    }
}
