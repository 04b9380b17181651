//! Methods: how a study's network is built (one factory, [`Regressor::new`]), which objective
//! it trains with (a value, [`mcd_trainer::Objective`]) and how its stochastic passes become a
//! predictive distribution. Every method is registered in [`ALL`]; configs name it with
//! `model.method`.
//!
//! Adding a method: a module here implementing [`Method`], its line in [`ALL`], and its name in
//! `config/reference.rs` (`model.method`'s allowed values); a study that cannot use it says so
//! through [`Use`] (checked at validation, never at run time).

pub mod classification;
pub mod concrete_dropout;
pub mod ensemble;
pub mod gaussian_dropout;
pub mod heteroscedastic;
pub mod mc_dropout;

use std::fmt;

use anyhow::{Context as _, Result};
use mcd_models::mc::{mc_samples, standard_predict, to_vec_f32, McConfig};
use mcd_models::mlp::{Mlp, MlpSpec};
use mcd_models::StochasticModel;
use mcd_trainer::{Objective, ProgressSink, TrainReport, TrainSpec};
use tch::{nn, Tensor};

/// Every method, by the name configs give it; the first is the default.
pub const ALL: &[&dyn Method] = &[
    &mc_dropout::McDropout,
    &heteroscedastic::Heteroscedastic,
    &concrete_dropout::ConcreteDropout::DEFAULT,
    &ensemble::Ensemble::DEFAULT,
    &gaussian_dropout::GaussianDropout,
];

/// The default method (`model.method` absent).
pub fn default_method() -> MethodRef {
    MethodRef(ALL[0])
}

/// The method named `name`, if any.
pub fn by_name(name: &str) -> Option<MethodRef> {
    ALL.iter().find(|m| m.name() == name).map(|m| MethodRef(*m))
}

/// The names of the methods that serve `u`, for error messages.
pub fn names_for(u: Use) -> Vec<&'static str> {
    ALL.iter()
        .filter(|m| m.serves(u))
        .map(|m| m.name())
        .collect()
}

/// What a study asks a method to build; a method says which it serves ([`Method::serves`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// One MLP regressing one target, through [`Regressor`] (co2).
    Regression,
    /// Many small regression MLPs trained as one `StackedMlp` (the uci study: MC dropout's
    /// grid, concrete dropout's learnt rates, deep ensembles' members).
    StackedRegression,
    /// A classifier (mnist_rotated's LeNet).
    Classification,
    /// Concrete dropout's net with a mean and a log-variance head, each behind its own learnt
    /// rate, on the heteroscedastic likelihood (the concrete_synthetic study builds it itself).
    ConcreteHeteroscedastic,
}

impl Use {
    /// What the study does, for the error naming a method it cannot use.
    pub fn describe(self) -> &'static str {
        match self {
            Use::Regression => "fits one regression MLP",
            Use::StackedRegression => {
                "trains its regression MLPs as one stacked model (StackedMlp: MC dropout's \
                 grid, concrete dropout's learnt rates or an ensemble's members)"
            }
            Use::Classification => "trains a classifier (LeNet's class logits)",
            Use::ConcreteHeteroscedastic => {
                "learns the drop rate of every layer (concrete dropout) of a net with a mean and \
                 a log-variance head"
            }
        }
    }
}

/// An approximate predictive method. Stateless: one value per method in [`ALL`].
pub trait Method: Sync {
    /// The name configs give it (`model.method`).
    fn name(&self) -> &'static str;
    /// How tables and figures name it ("MC dropout").
    fn label(&self) -> &'static str;
    /// Whether a study of this kind can use it.
    fn serves(&self, u: Use) -> bool;
    /// Net outputs per regression target (MC dropout: the mean; heteroscedastic: mean and
    /// log-variance).
    fn outputs_per_target(&self) -> usize {
        1
    }
    /// The regression net for `spec` (its `output_dim` already the method's), seeded.
    fn regression_net(&self, vs: &nn::Path, spec: &MlpSpec, seed: u64) -> Box<dyn StochasticModel> {
        Box::new(Mlp::new(vs, spec, seed))
    }
    /// What the regression net is trained to minimise.
    fn regression_objective(&self) -> Box<dyn Objective>;
    /// The objective and training settings for the net built in `vs` from `net_spec`, on `n`
    /// points with the run's precision `tau` (the one [`Regressor::new`] was given); by default
    /// [`Method::regression_objective`] and `train` as is. A method whose penalty depends on
    /// learnt parameters (concrete dropout) builds it here from `vs` and may move the weight
    /// decay into it.
    fn regression_training(
        &self,
        vs: &nn::VarStore,
        net_spec: &MlpSpec,
        train: &TrainSpec,
        n: usize,
        tau: f64,
    ) -> (Box<dyn Objective>, TrainSpec) {
        let _ = (vs, net_spec, n, tau);
        (self.regression_objective(), train.clone())
    }
    /// Parameters it learns beside the weights, by name, read from `vs` (concrete dropout: p
    /// per layer), for the run's log and tables; by default none.
    fn learned(&self, vs: &nn::VarStore, net_spec: &MlpSpec) -> Vec<(String, f64)> {
        let _ = (vs, net_spec);
        Vec::new()
    }
    /// The method in the weight-cache key (`cache::Key::method`): its name, plus any setting
    /// the net spec and train spec do not carry.
    fn cache_name(&self, tau: f64) -> String {
        let _ = tau;
        self.name().to_string()
    }
    /// How many independent nets the regression net holds side by side (an ensemble's
    /// members): adversarial training gives each its own perturbed copy of the inputs, and the
    /// net then reads inputs `[nets, N, d]`. By default one.
    fn independent_nets(&self) -> usize {
        1
    }
    /// The predictive distribution of T passes over N inputs (one target), in the units the
    /// net was trained in; `tau` is the run's model precision.
    fn regression_predictive(&self, passes: &Passes, tau: f64) -> Result<RegressionPredictive>;
    /// Mean log-likelihood of `targets` (one per input of `passes`) under that distribution.
    fn regression_log_likelihood(&self, passes: &Passes, targets: &[f32], tau: f64) -> Result<f64>;
    /// The classifier for `spec` (the mnist_rotated study's LeNet), seeded; only asked of
    /// methods that serve [`Use::Classification`]. By default MC dropout's LeNet.
    fn classifier(
        &self,
        vs: &nn::Path,
        spec: &mcd_models::lenet::LeNetSpec,
        seed: u64,
    ) -> Box<dyn classification::Classifier> {
        Box::new(classification::McLeNet {
            net: mcd_models::lenet::LeNet::new(vs, spec, seed),
        })
    }
}

/// A registered method, as validated configs hold it (compared and printed by name).
#[derive(Clone, Copy)]
pub struct MethodRef(pub &'static dyn Method);

impl std::ops::Deref for MethodRef {
    type Target = dyn Method;
    fn deref(&self) -> &Self::Target {
        self.0
    }
}

impl PartialEq for MethodRef {
    fn eq(&self, other: &Self) -> bool {
        self.0.name() == other.0.name()
    }
}

impl fmt::Debug for MethodRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.name())
    }
}

/// T passes' outputs over N inputs, `out` values per input, pass-major ([T, N, out]).
#[derive(Debug, Clone, PartialEq)]
pub struct Passes {
    pub data: Vec<f32>,
    pub t: usize,
    pub n: usize,
    pub out: usize,
}

impl Passes {
    /// Output `j` of every pass and input, [T, N] pass-major.
    pub fn output(&self, j: usize) -> Vec<f32> {
        if self.out == 1 {
            return self.data.clone();
        }
        self.data
            .iter()
            .skip(j)
            .step_by(self.out)
            .copied()
            .collect()
    }

    /// The passes over inputs `range` only.
    pub fn inputs(&self, range: std::ops::Range<usize>) -> Passes {
        let row = self.n * self.out;
        let data = self
            .data
            .chunks(row)
            .flat_map(|pass| {
                pass[range.start * self.out..range.end * self.out]
                    .iter()
                    .copied()
            })
            .collect();
        Passes {
            data,
            t: self.t,
            n: range.len(),
            out: self.out,
        }
    }
}

/// A regression predictive per input: mean, total sd and its two parts.
#[derive(Debug, Clone, PartialEq)]
pub struct RegressionPredictive {
    pub mean: Vec<f64>,
    /// sqrt(epistemic + aleatoric variance).
    pub sd: Vec<f64>,
    /// sqrt of the variance of the passes' means.
    pub epistemic_sd: Vec<f64>,
    /// sqrt of the observation noise: MC dropout's constant 1/tau, or the mean of the passes'
    /// learnt variances.
    pub aleatoric_sd: Vec<f64>,
    /// `Some(tau)` when the noise is the constant 1/tau; `None` when it is learnt per input.
    pub tau: Option<f64>,
}

impl RegressionPredictive {
    /// The predictive of passes that are Gaussians, `t` rows of `n` (mean, variance) pairs: their
    /// equal-weight mixture (epistemic: the means' variance; aleatoric: the variances' mean).
    pub fn gaussian_mixture(means: &[f32], vars: &[f64], t: usize, n: usize) -> Result<Self> {
        let p = mcd_evaluation::regression::mixture_predictive(
            &mcd_evaluation::SampleMatrix::new(means, t, n)?,
            vars,
        )?;
        let sqrt = |v: &[f64]| v.iter().map(|v| v.sqrt()).collect::<Vec<_>>();
        Ok(Self {
            sd: sqrt(&p.var),
            epistemic_sd: sqrt(&p.epistemic),
            aleatoric_sd: sqrt(&p.aleatoric),
            mean: p.mean,
            tau: None,
        })
    }
}

/// Mean log-likelihood of `targets` under the mixture of Gaussian passes (see
/// [`RegressionPredictive::gaussian_mixture`]).
pub fn gaussian_mixture_log_likelihood(
    means: &[f32],
    vars: &[f64],
    t: usize,
    n: usize,
    targets: &[f32],
) -> Result<f64> {
    let m = mcd_evaluation::SampleMatrix::new(means, t, n)?;
    Ok(mcd_evaluation::regression::mixture_log_likelihood(
        &m,
        vars,
        targets,
        mcd_evaluation::regression::Affine::IDENTITY,
    )?
    .mean)
}

/// The variables of the MC-dropout `Mlp` for `spec` and `seed`, created under `path`: (weight
/// [out, in], bias [out]) per Linear, named `layer{i}.weight` / `.bias`. A method with its own
/// net starts from them, so it differs from MC dropout only in what it does with them.
pub fn mlp_variables(path: &nn::Path, spec: &MlpSpec, seed: u64) -> Vec<(Tensor, Tensor)> {
    // Built only for its seeded initial weights; the variables stay in `path`'s store.
    let _init = Mlp::new(path, spec, seed);
    (0..spec.hidden.len() + 1)
        .map(|i| {
            let p = path.sub(format!("layer{i}"));
            let get = |name| p.get(name).expect("the Mlp just created this variable");
            (get("weight"), get("bias"))
        })
        .collect()
}

/// A method's regression net: what a study builds (by [`Regressor::new`], the one factory),
/// trains and predicts with.
pub struct Regressor {
    pub method: MethodRef,
    /// The net's spec as built (`output_dim` = targets x the method's outputs per target):
    /// what the weight cache keys on.
    pub spec: MlpSpec,
    pub net: Box<dyn StochasticModel>,
    /// The run's model precision, for methods whose objective reads it (concrete dropout's
    /// regulariser; methods that learn their noise ignore it).
    pub tau: f64,
    /// Adversarial training's step as a fraction of each input's range (0: none); set by
    /// [`Regressor::with_adversarial`].
    pub adversarial: f64,
}

impl Regressor {
    /// Builds `method`'s net for `spec` (whose `output_dim` counts the targets), to be trained
    /// with the run's model precision `tau`.
    pub fn new(method: MethodRef, vs: &nn::Path, spec: &MlpSpec, seed: u64, tau: f64) -> Self {
        let mut spec = spec.clone();
        spec.output_dim *= method.outputs_per_target();
        let net = method.regression_net(vs, &spec, seed);
        Self {
            method,
            spec,
            net,
            tau,
            adversarial: 0.0,
        }
    }

    /// Trains with adversarial examples (`trainer.adversarial`, validated for ensembles only):
    /// the step per input is `fraction` of that input's range in the training data.
    pub fn with_adversarial(mut self, fraction: f64) -> Self {
        self.adversarial = fraction;
        self
    }

    /// The method in the weight-cache key (with the adversarial step, when there is one, so
    /// keys without it are unchanged).
    pub fn cache_name(&self) -> String {
        let name = self.method.cache_name(self.tau);
        if self.adversarial > 0.0 {
            format!("{name}+adversarial{}", self.adversarial)
        } else {
            name
        }
    }

    /// What the method learnt beside the weights (see [`Method::learned`]).
    pub fn learned(&self, vs: &nn::VarStore) -> Vec<(String, f64)> {
        self.method.learned(vs, &self.spec)
    }

    /// Trains the net on `x` [N, d], `y` [N, 1] with the method's objective; over the first
    /// `dropout_warmup` steps the drop rates rise from 0 to the configured ones
    /// ([`mcd_trainer::DropoutWarmup`]; validation allows it only for nets with dropout layers);
    /// with [`Regressor::with_adversarial`] each step adds the loss at adversarial inputs
    /// ([`mcd_trainer::Adversarial`]; ensembles only).
    pub fn train(
        &self,
        vs: &nn::VarStore,
        x: &Tensor,
        y: &Tensor,
        spec: &TrainSpec,
        dropout_warmup: usize,
        progress: &mut dyn ProgressSink,
    ) -> Result<TrainReport, mcd_trainer::TrainError> {
        let n = x.size()[0] as usize;
        let (objective, spec) = self
            .method
            .regression_training(vs, &self.spec, spec, n, self.tau);
        let warmup = (dropout_warmup > 0)
            .then(|| {
                mcd_trainer::DropoutWarmup::new(
                    objective.as_ref(),
                    self.net.dropout_layers(),
                    dropout_warmup,
                )
            })
            .flatten();
        let adversarial = (self.adversarial > 0.0)
            .then(|| -> Result<_, mcd_trainer::TrainError> {
                let read = |t: Tensor, op| {
                    Vec::<f64>::try_from(t.to_kind(tch::Kind::Double))
                        .map_err(|source| mcd_trainer::TrainError::Torch { op, source })
                };
                let high = read(x.amax(0, false), "reading the inputs' maxima")?;
                let low = read(x.amin(0, false), "reading the inputs' minima")?;
                let eps: Vec<f64> = high
                    .iter()
                    .zip(&low)
                    .map(|(h, l)| self.adversarial * (h - l))
                    .collect();
                Ok(mcd_trainer::Adversarial::new(
                    objective.as_ref(),
                    &eps,
                    self.method.independent_nets(),
                ))
            })
            .transpose()?;
        let objective: &dyn Objective = match (&warmup, &adversarial) {
            (Some(w), _) => w,
            (None, Some(a)) => a,
            (None, None) => objective.as_ref(),
        };
        mcd_trainer::train(
            vs,
            &*self.net,
            x,
            y,
            &spec,
            objective,
            progress,
            &mut |_| None,
        )
    }

    /// T passes over `x` as host values.
    pub fn passes(&self, x: &Tensor, mc: &McConfig) -> Result<Passes> {
        let data = to_vec_f32(&mc_samples(&*self.net, x, mc)).context("reading the MC samples")?;
        Ok(Passes {
            data,
            t: mc.samples,
            n: x.size()[0] as usize,
            out: self.net.output_dim(),
        })
    }

    /// One deterministic pass (dropout off: "standard dropout"), the mean output per input.
    pub fn point(&self, x: &Tensor) -> Result<Vec<f64>> {
        let out = self.net.output_dim();
        let v = to_vec_f32(&standard_predict(&*self.net, x))
            .context("reading the standard-dropout prediction")?;
        Ok(v.iter().step_by(out).map(|&m| f64::from(m)).collect())
    }
}
