//! Gaussian (multiplicative) dropout (Srivastava et al. 2014, §10; Kingma, Salimans & Welling
//! 2015): MC dropout's net with Bernoulli masks replaced by Gaussian noise.
//!
//! **The noise:** wherever MC dropout drops units (after every hidden activation; on the input
//! only when `model.input_dropout` > 0), each unit is multiplied by ξ ~ N(1, α) in place of
//! the inverted Bernoulli mask `b / (1 - p)`, b ~ Bernoulli(1 - p). The convention is
//! **α = p / (1 - p)**, with p the configured drop rate (`model.dropout`, `model.input_dropout`):
//! the Bernoulli mask's own mean (1) and variance (p / (1 - p)), so a run at the same p differs
//! from MC dropout only in the shape of the noise. p = 0 is no noise: the deterministic net.
//!
//! **Reproducibility:** the standard normals come from a counter-based stream per noise layer,
//! like concrete dropout's uniforms and [`mcd_models::dropout`]: element i of call c is a pure
//! function of (seed, c, i), by Box-Muller from the two 32-bit halves of
//! SplitMix64(hash(seed, c) + i), never from libtorch's global generator; so training and MC
//! passes are reproducible from the run seed whatever the thread count. The weights start as
//! the MC-dropout `Mlp`'s of the same spec and seed, so a comparison with `mc_dropout`
//! isolates the noise.
//!
//! **Training and prediction:** 0.5 MSE (`HalfMse`) with the noise on, the run's weight decay
//! as for MC dropout. At test time the noise stays on for T passes; the predictive is MC
//! dropout's (passes' variance + 1/tau, log-likelihood by logsumexp with tau). Standard
//! prediction (noise off) is the net with ξ = 1, its mean. Regression with one MLP (co2) only.

use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Result;
use mcd_models::mlp::{Activation, MlpSpec};
use mcd_models::rng::splitmix64;
use mcd_models::StochasticModel;
use mcd_trainer::{HalfMse, Objective};
use tch::nn::{self, ModuleT};
use tch::Tensor;

use super::{mc_dropout::McDropout, Method, Passes, RegressionPredictive, Use};

/// The method (`model.method: gaussian_dropout`).
pub struct GaussianDropout;

/// One layer of multiplicative noise ξ ~ N(1, α), α = p / (1 - p).
#[derive(Debug)]
pub struct GaussianNoise {
    /// sqrt(α), the noise's standard deviation.
    sd: f64,
    seed: u64,
    calls: AtomicU64,
}

impl GaussianNoise {
    /// The noise matching a Bernoulli mask of drop rate `p` in [0, 1), with its own stream.
    pub fn new(p: f64, seed: u64) -> Self {
        Self {
            sd: (p / (1.0 - p)).sqrt(),
            seed,
            calls: AtomicU64::new(0),
        }
    }

    /// The noise's variance α = p / (1 - p).
    pub fn alpha(&self) -> f64 {
        self.sd * self.sd
    }

    /// `n` noise values 1 + sqrt(α) z for the next call: z is Box-Muller of the two 32-bit
    /// halves of a hash of (seed, call, i), each offset by half a step so neither is 0 or 1.
    pub fn values(&self, n: usize) -> Vec<f32> {
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        let base = splitmix64(self.seed ^ splitmix64(call));
        let step = 1.0 / (1u64 << 32) as f64;
        (0..n as u64)
            .map(|i| {
                let h = splitmix64(base.wrapping_add(i));
                let u1 = ((h >> 32) as f64 + 0.5) * step;
                let u2 = ((h & 0xFFFF_FFFF) as f64 + 0.5) * step;
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                (1.0 + self.sd * z) as f32
            })
            .collect()
    }

    /// `xs` times fresh noise when `train` (and α > 0); identity otherwise.
    pub fn forward(&self, xs: &Tensor, train: bool) -> Tensor {
        if !train || self.sd == 0.0 {
            return xs.shallow_clone();
        }
        let noise = Tensor::from_slice(&self.values(xs.numel()))
            .view(xs.size().as_slice())
            .to_device(xs.device())
            .to_kind(xs.kind());
        xs * noise
    }

    fn reseed(&self, seed: u64) {
        self.calls.store(splitmix64(seed), Ordering::Relaxed);
    }
}

/// The Gaussian-dropout MLP: `(noise_i -> Linear_i -> act)` per layer, no act after the last;
/// `noise_i` a [`GaussianNoise`] where MC dropout's `Mlp` has a dropout layer.
#[derive(Debug)]
pub struct GaussianMlp {
    /// (weight [out, in], bias [out]) per Linear: the `Mlp`'s variables.
    pub layers: Vec<(Tensor, Tensor)>,
    /// The noise before each Linear (none before the first without input dropout).
    pub noise: Vec<Option<GaussianNoise>>,
    activation: Activation,
    output_dim: usize,
}

impl GaussianMlp {
    /// Variables under `path`: the `Mlp`'s `layer{i}.weight` / `.bias`, with the same initial
    /// values for the same spec and seed; the noise streams are derived from `seed` too.
    pub fn new(path: &nn::Path, spec: &MlpSpec, seed: u64) -> Self {
        let layers = super::mlp_variables(path, spec, seed);
        let n_layers = layers.len();
        let noise = (0..n_layers)
            .map(|i| {
                let p = if i == 0 {
                    spec.input_dropout
                } else {
                    spec.dropout
                };
                let stream = splitmix64(seed ^ splitmix64(0x6A55_0000 + i as u64));
                (p > 0.0).then(|| GaussianNoise::new(p, stream))
            })
            .collect();
        Self {
            layers,
            noise,
            activation: spec.activation,
            output_dim: spec.output_dim,
        }
    }

    fn act(&self, xs: &Tensor) -> Tensor {
        match self.activation {
            Activation::Relu => xs.relu(),
            Activation::Tanh => xs.tanh(),
            Activation::Sigmoid => xs.sigmoid(),
        }
    }

    /// Layers before the first noise: the first Linear + activation without input noise (as
    /// the `Mlp`'s prefix), none otherwise.
    fn prefix_len(&self) -> usize {
        usize::from(self.noise[0].is_none() && self.layers.len() > 1)
    }

    fn layers_from(&self, mut h: Tensor, first: usize, train: bool) -> Tensor {
        let last = self.layers.len() - 1;
        for i in first..self.layers.len() {
            if let Some(noise) = &self.noise[i] {
                h = noise.forward(&h, train);
            }
            let (w, b) = &self.layers[i];
            h = h.linear(w, Some(b));
            if i < last {
                h = self.act(&h);
            }
        }
        h
    }
}

impl ModuleT for GaussianMlp {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.layers_from(xs.shallow_clone(), 0, train)
    }
}

impl StochasticModel for GaussianMlp {
    fn deterministic_prefix(&self, xs: &Tensor) -> Tensor {
        let mut h = xs.shallow_clone();
        for (w, b) in &self.layers[..self.prefix_len()] {
            h = self.act(&h.linear(w, Some(b)));
        }
        h
    }

    fn forward_from_prefix_t(&self, prefix: &Tensor, train: bool) -> Tensor {
        self.layers_from(prefix.shallow_clone(), self.prefix_len(), train)
    }

    fn reseed(&self, seed: u64) {
        for (i, noise) in self.noise.iter().enumerate() {
            if let Some(noise) = noise {
                noise.reseed(seed ^ splitmix64(i as u64));
            }
        }
    }

    fn output_dim(&self) -> usize {
        self.output_dim
    }
}

impl Method for GaussianDropout {
    fn name(&self) -> &'static str {
        "gaussian_dropout"
    }

    fn label(&self) -> &'static str {
        "Gaussian dropout"
    }

    fn serves(&self, u: Use) -> bool {
        u == Use::Regression
    }

    fn regression_net(&self, vs: &nn::Path, spec: &MlpSpec, seed: u64) -> Box<dyn StochasticModel> {
        Box::new(GaussianMlp::new(vs, spec, seed))
    }

    fn regression_objective(&self) -> Box<dyn Objective> {
        Box::new(HalfMse)
    }

    fn regression_predictive(&self, passes: &Passes, tau: f64) -> Result<RegressionPredictive> {
        McDropout.regression_predictive(passes, tau)
    }

    fn regression_log_likelihood(&self, passes: &Passes, targets: &[f32], tau: f64) -> Result<f64> {
        McDropout.regression_log_likelihood(passes, targets, tau)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::methods::{by_name, Regressor};
    use mcd_models::mc::McConfig;
    use mcd_models::mlp::InitScheme;
    use mcd_models::mlp::Mlp;
    use tch::{Device, Kind};

    fn spec(dropout: f64, input_dropout: f64) -> MlpSpec {
        MlpSpec {
            input_dim: 2,
            hidden: vec![8, 8],
            output_dim: 1,
            activation: Activation::Tanh,
            dropout,
            input_dropout,
            init: InitScheme::Torch,
            first_layer: None,
        }
    }

    fn inputs() -> Tensor {
        Tensor::linspace(-2.0, 2.0, 12, (Kind::Float, Device::Cpu)).view([6, 2])
    }

    #[test]
    fn the_noise_has_mean_one_and_variance_alpha() {
        let noise = GaussianNoise::new(0.3, 7);
        let alpha = 0.3 / 0.7;
        assert!((noise.alpha() - alpha).abs() < 1e-12);
        let v = noise.values(400_000);
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let var = v
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / (n - 1.0);
        // Standard errors: sqrt(α / n) ≈ 0.001 for the mean, α sqrt(2 / n) ≈ 0.001 for the variance.
        assert!((mean - 1.0).abs() < 0.005, "mean {mean}");
        assert!((var - alpha).abs() < 0.01, "variance {var}, α {alpha}");
        // Gaussian, not a two-point mask: about 68.3% within one sd of the mean.
        let sd = alpha.sqrt();
        let within = v
            .iter()
            .filter(|&&x| (f64::from(x) - 1.0).abs() < sd)
            .count() as f64
            / n;
        assert!((within - 0.6827).abs() < 0.005, "within one sd: {within}");
        // Through a forward: the same numbers, shaped as the input; off when not training.
        let ones = Tensor::ones([4, 5], (Kind::Float, Device::Cpu));
        noise.reseed(1);
        let out = noise.forward(&ones, true);
        noise.reseed(1);
        assert_eq!(
            Vec::<f32>::try_from(out.view([-1])).unwrap(),
            noise.values(20)
        );
        assert!(noise.forward(&ones, false).equal(&ones));
        assert!(GaussianNoise::new(0.0, 7).forward(&ones, true).equal(&ones));
    }

    #[test]
    fn the_noise_is_reproducible_from_the_seed_and_differs_across_seeds_and_calls() {
        let draw = |seed, reseed| {
            let noise = GaussianNoise::new(0.2, seed);
            noise.reseed(reseed);
            (noise.values(1000), noise.values(1000))
        };
        let (a1, a2) = draw(3, 9);
        assert_eq!(draw(3, 9), (a1.clone(), a2.clone()));
        assert_ne!(a1, a2, "consecutive calls repeat");
        assert_ne!(draw(3, 10).0, a1, "another reseed repeats");
        assert_ne!(draw(4, 9).0, a1, "another stream seed repeats");
        // Whole nets: the same passes from the same seeds, others from others; the layers
        // have their own streams.
        let x = inputs();
        let pass = |build_seed, reseed| {
            let vs = nn::VarStore::new(Device::Cpu);
            let net = GaussianMlp::new(&vs.root(), &spec(0.2, 0.1), build_seed);
            net.reseed(reseed);
            tch::no_grad(|| net.forward_t(&x, true))
        };
        assert!(pass(1, 5).equal(&pass(1, 5)));
        assert!(!pass(1, 5).equal(&pass(1, 6)));
        let vs = nn::VarStore::new(Device::Cpu);
        let net = GaussianMlp::new(&vs.root(), &spec(0.2, 0.1), 1);
        net.reseed(2);
        let first = net.noise[1].as_ref().unwrap().values(50);
        net.reseed(2);
        assert_ne!(net.noise[2].as_ref().unwrap().values(50), first);
    }

    #[test]
    fn at_p_zero_the_net_is_the_deterministic_mlp() {
        let x = inputs();
        let s = spec(0.0, 0.0);
        let (mvs, gvs) = (
            nn::VarStore::new(Device::Cpu),
            nn::VarStore::new(Device::Cpu),
        );
        let mlp = Mlp::new(&mvs.root(), &s, 11);
        let net = GaussianMlp::new(&gvs.root(), &s, 11);
        assert!(net.noise.iter().all(Option::is_none));
        let want = tch::no_grad(|| mlp.forward_t(&x, false));
        for train in [false, true] {
            let got = tch::no_grad(|| net.forward_t(&x, train));
            assert!(got.allclose(&want, 1e-6, 1e-6, false), "train {train}");
        }
        // At p > 0: the same weights, and noise off is the Mlp with dropout off.
        let s = spec(0.3, 0.2);
        let (mvs, gvs) = (
            nn::VarStore::new(Device::Cpu),
            nn::VarStore::new(Device::Cpu),
        );
        let mlp = Mlp::new(&mvs.root(), &s, 11);
        let net = GaussianMlp::new(&gvs.root(), &s, 11);
        let (mv, gv) = (mvs.variables(), gvs.variables());
        assert_eq!(mv.len(), gv.len());
        for (name, v) in &mv {
            assert!(v.equal(&gv[name]), "{name}");
        }
        let off = tch::no_grad(|| net.forward_t(&x, false));
        assert!(off.allclose(
            &tch::no_grad(|| mlp.forward_t(&x, false)),
            1e-6,
            1e-6,
            false
        ));
        assert!(!tch::no_grad(|| net.forward_t(&x, true)).allclose(&off, 1e-6, 1e-6, false));
    }

    #[test]
    fn the_prefix_and_the_rest_make_the_whole_net() {
        let x = inputs();
        for (input_dropout, prefix_width) in [(0.0, 8), (0.1, 2)] {
            let vs = nn::VarStore::new(Device::Cpu);
            let net = GaussianMlp::new(&vs.root(), &spec(0.2, input_dropout), 3);
            let prefix = net.deterministic_prefix(&x);
            assert_eq!(prefix.size(), [6, prefix_width]);
            net.reseed(4);
            let whole = tch::no_grad(|| net.forward_t(&x, true));
            net.reseed(4);
            let split = tch::no_grad(|| net.forward_from_prefix_t(&prefix, true));
            assert!(whole.equal(&split), "input dropout {input_dropout}");
        }
    }

    #[test]
    fn the_registered_method_builds_its_net_and_predicts_as_mc_dropout() {
        let m = by_name("gaussian_dropout").expect("registered");
        assert!(m.serves(Use::Regression));
        for u in [
            Use::StackedRegression,
            Use::Classification,
            Use::ConcreteHeteroscedastic,
        ] {
            assert!(!m.serves(u), "{u:?}");
        }
        let vs = nn::VarStore::new(Device::Cpu);
        let model = Regressor::new(m, &vs.root(), &spec(0.2, 0.0), 1, 2.0);
        assert_eq!(model.cache_name(), "gaussian_dropout");
        assert!(model.net.dropout_layers().is_empty());
        let mc = McConfig {
            samples: 7,
            memory_budget_bytes: 1 << 20,
            seed: 3,
        };
        let passes = model.passes(&inputs(), &mc).unwrap();
        assert_eq!((passes.t, passes.n, passes.out), (7, 6, 1));
        assert_eq!(model.passes(&inputs(), &mc).unwrap(), passes);
        let p = m.regression_predictive(&passes, 2.0).unwrap();
        assert_eq!(p, McDropout.regression_predictive(&passes, 2.0).unwrap());
        assert!(p.epistemic_sd.iter().all(|&s| s > 0.0));
        let y = [0.5f32; 6];
        assert_eq!(
            m.regression_log_likelihood(&passes, &y, 2.0).unwrap(),
            McDropout
                .regression_log_likelihood(&passes, &y, 2.0)
                .unwrap()
        );
    }
}
