//! Dropout warm-up (curriculum dropout, Morerio et al., ICCV 2017): every dropout layer's rate
//! rises linearly from 0 to its configured value over the first part of training, then stays
//! there. The objective at the end is the configured one, so the model precision and the
//! predictive are those of the configured rate; only the path to the minimum changes. Why: at
//! high rates a net trained at full dropout from the start settles on a near-flat mean (the
//! CO2 wave at p = 0.5), while one that first fits and then learns to tolerate the noise keeps
//! much more of the signal.

use std::sync::atomic::{AtomicUsize, Ordering};

use mcd_models::dropout::Dropout;
use tch::Tensor;

use crate::{Objective, TrainError};

/// An objective whose dropout rates follow the warm-up: the expected loss under dropout at
/// `min(1, k / warmup_steps)` of every configured rate at step k. [`crate::train`] evaluates
/// the loss once per step, after that step's forward, so each call sets the rates of the next
/// forward; step 0 runs without dropout. Dropping it restores the configured rates exactly.
pub struct DropoutWarmup<'a> {
    inner: &'a dyn Objective,
    layers: Vec<&'a Dropout>,
    warmup_steps: usize,
    step: AtomicUsize,
}

impl<'a> DropoutWarmup<'a> {
    /// `inner` with `layers` (a model's [`mcd_models::StochasticModel::dropout_layers`])
    /// warmed up over the first `warmup_steps` steps; `None` when there is no layer to lower.
    pub fn new(
        inner: &'a dyn Objective,
        layers: Vec<&'a Dropout>,
        warmup_steps: usize,
    ) -> Option<Self> {
        let w = (!layers.is_empty()).then_some(Self {
            inner,
            layers,
            warmup_steps: warmup_steps.max(1),
            step: AtomicUsize::new(0),
        })?;
        w.set(w.fraction(0));
        Some(w)
    }

    /// The fraction of the configured rates that step `k` runs at.
    pub fn fraction(&self, k: usize) -> f64 {
        (k as f64 / self.warmup_steps as f64).min(1.0)
    }

    fn set(&self, fraction: f64) {
        for d in &self.layers {
            d.set_rate_fraction(fraction);
        }
    }
}

impl Objective for DropoutWarmup<'_> {
    fn check_shapes(&self, x: &Tensor, y: &Tensor) -> Result<(), TrainError> {
        self.inner.check_shapes(x, y)
    }

    fn loss(&self, out: &Tensor, y: &Tensor) -> Tensor {
        let next = self.step.fetch_add(1, Ordering::Relaxed) + 1;
        self.set(self.fraction(next));
        self.inner.loss(out, y)
    }

    fn tracked(&self) -> Vec<(String, f64)> {
        self.inner.tracked()
    }
}

impl Drop for DropoutWarmup<'_> {
    fn drop(&mut self) {
        self.set(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HalfMse;
    use mcd_models::dropout::zero_fraction;
    use mcd_models::mlp::{Activation, InitScheme, Mlp, MlpSpec};
    use mcd_models::StochasticModel;
    use tch::nn;
    use tch::{Device, Kind};

    fn net(dropout: f64) -> (nn::VarStore, Mlp) {
        let vs = nn::VarStore::new(Device::Cpu);
        let spec = MlpSpec {
            input_dim: 1,
            hidden: vec![512, 512],
            output_dim: 1,
            activation: Activation::Relu,
            dropout,
            input_dropout: 0.0,
            init: InitScheme::CaffeXavier,
            first_layer: None,
        };
        let m = Mlp::new(&vs.root(), &spec, 7);
        (vs, m)
    }

    #[test]
    fn rates_rise_linearly_then_hold_and_are_restored() {
        let (_vs, m) = net(0.4);
        let (_vs2, fresh) = net(0.4);
        let layer = m.dropout_layers()[0];
        let ones = Tensor::ones([64, 512], (Kind::Float, Device::Cpu));
        let zero = Tensor::zeros([2, 1], (Kind::Float, Device::Cpu));
        let w = DropoutWarmup::new(&HalfMse, m.dropout_layers(), 4)
            .expect("the MLP has dropout layers");
        // What step k's forward drops; then the loop's loss call moves to step k + 1.
        let mut seen = Vec::new();
        for _ in 0..6 {
            seen.push(zero_fraction(&layer.forward(&ones, true)));
            let _ = fresh.dropout_layers()[0].forward(&ones, true);
            let _ = w.loss(&zero, &zero);
        }
        assert_eq!(seen[0], 0.0, "{seen:?}");
        assert!((seen[2] - 0.2).abs() < 0.01, "{seen:?}");
        for &f in &seen[4..] {
            assert!((f - 0.4).abs() < 0.01, "{seen:?}");
        }
        drop(w);
        // Restored exactly: any call's mask equals that of a net that never warmed up (a step
        // at rate 0 draws no mask, so the two streams' call counters differ).
        assert_eq!(layer.mask(9, 4096), fresh.dropout_layers()[0].mask(9, 4096));
    }

    #[test]
    fn nothing_to_warm_up_without_dropout_layers() {
        assert!(DropoutWarmup::new(&HalfMse, Vec::new(), 10).is_none());
    }
}
