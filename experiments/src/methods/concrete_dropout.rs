//! Concrete dropout (Gal, Hron & Kendall 2017): MC dropout whose drop rate p is learnt, one per
//! layer, through a relaxed (Concrete) Bernoulli mask.
//!
//! **The net** ([`ConcreteMlp`]): the MLP of `model` with a concrete dropout layer wherever MC
//! dropout drops units: before every Linear after the first (after each hidden activation), and
//! before the first when `model.input_dropout` > 0. Each layer holds a trainable `logit_p`
//! (p = sigmoid(logit_p)), started at `model.dropout` (the input layer at
//! `model.input_dropout`), and multiplies its input by `(1 - z) / (1 - p)` with the relaxed mask
//! `z = sigmoid((log p - log(1 - p) + log u - log(1 - u)) / t)`, u ~ U(0, 1) per element,
//! temperature t = `model.temperature` (0.1, the authors'). The uniforms come from a
//! counter-based SplitMix64 stream per layer (seed, call, element), like [`mcd_models::dropout`],
//! never from libtorch's global generator, so training and MC passes are reproducible from the
//! run seed. The weights start as the MC-dropout `Mlp`'s of the same spec and seed.
//!
//! **Prediction:** the same relaxed masks with the learnt p (as the authors' Keras layer, which
//! applies the relaxed mask at test time too), T passes; predictive = MC dropout's (passes'
//! variance + 1/tau, log-likelihood by logsumexp with tau). The head is MC dropout's single
//! output; tau comes from `precision` as for MC dropout.
//!
//! **The objective** ([`ConcreteObjective`]) and its convention: the authors minimise
//! `MSE + sum over layers [weight_reg ||W||^2 / (1 - p) + dropout_reg K (p log p + (1 - p) log(1 - p))]`
//! with K the layer's input width, `weight_reg = l^2 / (tau N)` and `dropout_reg = 2 / (tau N)`
//! (their objective is 2/tau times the per-point negative ELBO; for cross-entropy the 2 is dropped).
//! This project's data term is 0.5 MSE (`mcd_trainer`), so the whole objective is halved:
//! `0.5 MSE + 0.5 sum [...]` (the same minimiser; Adam does not see the factor). The weight
//! penalty lives in the objective, so the optimiser's weight decay is 0 for this method; like
//! the authors, biases are not penalised, and a Linear without dropout before it (the first,
//! without input dropout) has p = 0 in its term. `l^2 / (tau N)` is taken from the run's
//! resolved weight decay and tau: `precision` maps `wd = (1 - p0) l^2 / (2 N tau)` with p0 =
//! `model.dropout` (`Regularisation::resolve`), so `weight_reg = 2 wd / (1 - p0)`; this also
//! covers a config that gives `trainer.weight_decay` and `precision.tau` without a length-scale.
//!
//! **Another data term** ([`ConcreteObjective::with_data`]): the regulariser is the same for
//! any data term that is, like 0.5 MSE, half the authors' per-point loss. The authors'
//! heteroscedastic net (their synthetic study; `studies::concrete_synthetic`) minimises
//! `exp(-s) (y - y_hat)^2 + s` (summed over outputs, mean over the batch; s the log-variance
//! head) plus the same sum over layers with `weight_reg = l^2 / N` and `dropout_reg = 2 / N`
//! (tau = 1: the noise is the head's). That loss is twice the Gaussian negative log-likelihood
//! up to a constant, and twice this project's [`HeteroscedasticNll`]
//! (`1/2 exp(-s) (y - y_hat)^2 + 1/2 s`), so `HeteroscedasticNll + 0.5 sum [...]` is again half
//! the authors' objective, with the same coefficients. That net gives each output of its last
//! Linear (the mean and the log-variance head) its own concrete layer, as the authors' two
//! `ConcreteDropout(Dense(1))` heads ([`ConcreteMlp::with_split_head`]).
//!
//! [`HeteroscedasticNll`]: super::heteroscedastic::HeteroscedasticNll

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use anyhow::Result;
use mcd_models::lenet::LeNetSpec;
use mcd_models::mlp::{Activation, MlpSpec};
use mcd_models::rng::splitmix64;
use mcd_models::StochasticModel;
use mcd_trainer::{HalfMse, Objective, TrainError, TrainSpec};
use tch::nn::{self, ModuleT};
use tch::Tensor;

use super::{mc_dropout::McDropout, Method, MethodRef, Passes, RegressionPredictive, Use};

/// The authors' temperature of the relaxed mask.
pub const DEFAULT_TEMPERATURE: f64 = 0.1;

/// The method (`model.method: concrete_dropout`) with its mask temperature
/// (`model.temperature`); regression with one MLP only.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConcreteDropout {
    pub temperature: f64,
}

/// One concrete dropout layer: a learnt rate and its uniform-noise stream.
#[derive(Debug)]
pub struct ConcreteLayer {
    /// p = sigmoid(logit_p), shape [1].
    pub logit_p: Tensor,
    temperature: f64,
    seed: u64,
    calls: AtomicU64,
}

impl ConcreteLayer {
    /// A layer whose rate starts at `p0` (its variable `logit_p` under `path`), with a
    /// relaxed mask at `temperature` and its uniforms from `seed`.
    pub fn new(path: &nn::Path, p0: f64, temperature: f64, seed: u64) -> Self {
        let logit = (p0 / (1.0 - p0)).ln();
        let logit_p = path.var_copy("logit_p", &Tensor::from_slice(&[logit as f32]));
        ConcreteLayer {
            logit_p,
            temperature,
            seed,
            calls: AtomicU64::new(0),
        }
    }

    /// The drop rate now.
    pub fn p(&self) -> f64 {
        tch::no_grad(|| f64::try_from(self.logit_p.sigmoid()).unwrap_or(f64::NAN))
    }

    /// `n` uniforms in (0, 1) for the next call: element i is a hash of (seed, call, i), with
    /// 24 bits and a half-step offset, so neither 0 nor 1 occurs.
    fn uniforms(&self, n: usize) -> Tensor {
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        let base = splitmix64(self.seed ^ splitmix64(call));
        let v: Vec<f32> = (0..n as u64)
            .map(|i| ((splitmix64(base.wrapping_add(i)) >> 40) as f32 + 0.5) / (1u32 << 24) as f32)
            .collect();
        Tensor::from_slice(&v)
    }

    /// `xs * (1 - z) / (1 - p)` with a fresh relaxed mask when `train`; identity otherwise.
    pub fn forward(&self, xs: &Tensor, train: bool) -> Tensor {
        if !train {
            return xs.shallow_clone();
        }
        let u = self
            .uniforms(xs.numel())
            .view(xs.size().as_slice())
            .to_device(xs.device());
        // log p - log(1 - p) is logit_p itself.
        let z = ((&self.logit_p + u.logit(None)) / self.temperature).sigmoid();
        // 1 / (1 - p) = 1 + exp(logit_p).
        let scale = self.logit_p.exp() + 1.0;
        xs * (-z + 1.0) * scale
    }

    /// Restarts the uniform stream (a prediction reproducible from its seed).
    pub fn reseed(&self, seed: u64) {
        self.calls.store(splitmix64(seed), Ordering::Relaxed);
    }
}

/// The concrete-dropout MLP: `(drop_i -> Linear_i -> act)` per layer, no act after the last;
/// `drop_i` is a [`ConcreteLayer`] or nothing (see the module docs).
#[derive(Debug)]
pub struct ConcreteMlp {
    /// (weight [out, in], bias [out]) per Linear.
    pub layers: Vec<(Tensor, Tensor)>,
    /// The dropout before each Linear.
    pub drops: Vec<Option<ConcreteLayer>>,
    /// Empty, or one concrete layer per output of the last Linear (then `drops` has none before
    /// it): each output row sees its own mask and rate ([`ConcreteMlp::with_split_head`]).
    pub heads: Vec<ConcreteLayer>,
    activation: Activation,
    output_dim: usize,
}

impl ConcreteMlp {
    /// Variables under `path`: the `Mlp`'s `layer{i}.weight` / `.bias` (same initial values
    /// for the same spec and seed) and `concrete{i}.logit_p` for each concrete layer.
    pub fn new(path: &nn::Path, spec: &MlpSpec, seed: u64, temperature: f64) -> Self {
        Self::build(path, spec, seed, temperature, false)
    }

    /// [`ConcreteMlp::new`], but each output j of the last Linear gets its own concrete layer
    /// (`concrete{L}_out{j}.logit_p`, started at `model.dropout`, its own uniform stream) in
    /// place of one shared by all outputs: the authors' heteroscedastic net, whose mean and
    /// log-variance are two `ConcreteDropout(Dense(1))` heads on the last hidden layer. The
    /// weights are still the `Mlp`'s (one `layer{L}` with a row per output).
    pub fn with_split_head(path: &nn::Path, spec: &MlpSpec, seed: u64, temperature: f64) -> Self {
        Self::build(path, spec, seed, temperature, true)
    }

    fn build(
        path: &nn::Path,
        spec: &MlpSpec,
        seed: u64,
        temperature: f64,
        split_head: bool,
    ) -> Self {
        let layers = super::mlp_variables(path, spec, seed);
        let n_layers = layers.len();
        let last = n_layers - 1;
        let concrete = |name: String, p0: f64, stream: u64| {
            ConcreteLayer::new(
                &path.sub(name),
                p0,
                temperature,
                splitmix64(seed ^ splitmix64(stream)),
            )
        };
        let split = split_head && spec.dropout > 0.0;
        let drops = (0..n_layers)
            .map(|i| {
                let p0 = if i == 0 {
                    spec.input_dropout
                } else {
                    spec.dropout
                };
                (p0 > 0.0 && !(split && i == last))
                    .then(|| concrete(format!("concrete{i}"), p0, 0xC0C2_E7E0 + i as u64))
            })
            .collect();
        let heads = if split {
            (0..spec.output_dim)
                .map(|j| {
                    let stream = 0x4EAD_0000_0000 + ((last as u64) << 16) + j as u64;
                    concrete(format!("concrete{last}_out{j}"), spec.dropout, stream)
                })
                .collect()
        } else {
            Vec::new()
        };
        Self {
            layers,
            drops,
            heads,
            activation: spec.activation,
            output_dim: spec.output_dim,
        }
    }

    /// The learnt rate of each concrete layer: (index of the Linear it feeds, its input width
    /// K, p).
    pub fn rates(&self) -> Vec<(usize, usize, f64)> {
        self.drops
            .iter()
            .enumerate()
            .filter_map(|(i, d)| {
                d.as_ref()
                    .map(|d| (i, self.layers[i].0.size()[1] as usize, d.p()))
            })
            .collect()
    }

    /// The learnt rate of each head's concrete layer ([`ConcreteMlp::with_split_head`]):
    /// (output j, the input width K, p); empty without split heads.
    pub fn head_rates(&self) -> Vec<(usize, usize, f64)> {
        let k = self.layers[self.layers.len() - 1].0.size()[1] as usize;
        self.heads
            .iter()
            .enumerate()
            .map(|(j, d)| (j, k, d.p()))
            .collect()
    }

    fn act(&self, xs: &Tensor) -> Tensor {
        match self.activation {
            Activation::Relu => xs.relu(),
            Activation::Tanh => xs.tanh(),
            Activation::Sigmoid => xs.sigmoid(),
        }
    }

    fn layers_from(&self, mut h: Tensor, first: usize, train: bool) -> Tensor {
        let last = self.layers.len() - 1;
        for i in first..self.layers.len() {
            if let Some(d) = &self.drops[i] {
                h = d.forward(&h, train);
            }
            let (w, b) = &self.layers[i];
            if i == last && !self.heads.is_empty() {
                // Each output row behind its own mask.
                let outs: Vec<Tensor> = self
                    .heads
                    .iter()
                    .enumerate()
                    .map(|(j, d)| {
                        let j = j as i64;
                        d.forward(&h, train)
                            .linear(&w.narrow(0, j, 1), Some(&b.narrow(0, j, 1)))
                    })
                    .collect();
                return Tensor::cat(&outs, 1);
            }
            h = h.linear(w, Some(b));
            if i < last {
                h = self.act(&h);
            }
        }
        h
    }

    /// Layers before the first concrete layer (their outputs do not depend on the masks; with
    /// split heads and no other concrete layer, all but the last).
    fn prefix_len(&self) -> usize {
        self.drops
            .iter()
            .position(Option::is_some)
            .unwrap_or(self.layers.len())
            .min(self.layers.len() - 1)
    }
}

impl ModuleT for ConcreteMlp {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.layers_from(xs.shallow_clone(), 0, train)
    }
}

impl StochasticModel for ConcreteMlp {
    fn deterministic_prefix(&self, xs: &Tensor) -> Tensor {
        let mut h = xs.shallow_clone();
        for i in 0..self.prefix_len() {
            let (w, b) = &self.layers[i];
            h = self.act(&h.linear(w, Some(b)));
        }
        h
    }

    fn forward_from_prefix_t(&self, prefix: &Tensor, train: bool) -> Tensor {
        self.layers_from(prefix.shallow_clone(), self.prefix_len(), train)
    }

    fn reseed(&self, seed: u64) {
        for (i, d) in self.drops.iter().enumerate() {
            if let Some(d) = d {
                d.reseed(seed ^ splitmix64(i as u64));
            }
        }
        for (j, d) in self.heads.iter().enumerate() {
            d.reseed(seed ^ splitmix64(0x4EAD_0000 + j as u64));
        }
    }

    fn output_dim(&self) -> usize {
        self.output_dim
    }
}

/// One Linear's term of the regulariser,
/// `weight_reg ||W||^2 / (1 - p) + dropout_reg K (p log p + (1 - p) log(1 - p))`, element by
/// element over tensors of one shape (the uci study's stacks: one value per member): `w2` the
/// squared norms, `logit_p` the rates' logits, and the coefficients (halve them for the
/// project's 0.5 MSE scale).
pub fn layer_penalty(
    w2: &Tensor,
    logit_p: &Tensor,
    k: f64,
    weight_reg: &Tensor,
    dropout_reg: &Tensor,
) -> Tensor {
    let (log_p, log_q) = (logit_p.log_sigmoid(), (-logit_p).log_sigmoid());
    let (p, q) = (log_p.exp(), log_q.exp());
    let neg_entropy = &p * &log_p + &q * &log_q;
    w2 * weight_reg / q + neg_entropy * dropout_reg * k
}

/// One Linear's term of the regulariser: its weight, the rate of the dropout before it (none:
/// p = 0) and its input width K.
struct Term {
    weight: Tensor,
    /// The row of `weight` this term covers (a split head's output), or all of it.
    row: Option<i64>,
    logit_p: Option<Tensor>,
    k: f64,
}

/// The data term `D` (0.5 MSE by default; [`ConcreteObjective::with_data`]) + 0.5 sum over
/// Linears (over each head of a split last Linear) of `weight_reg ||W||^2 / (1 - p) +
/// dropout_reg K (p log p + (1 - p) log(1 - p))` (see the module docs for the convention).
pub struct ConcreteObjective<D = HalfMse> {
    terms: Vec<Term>,
    /// l^2 / (tau N).
    pub weight_reg: f64,
    /// 2 / (tau N).
    pub dropout_reg: f64,
    /// The data term: half the authors' per-point loss (module docs).
    pub data: D,
}

impl ConcreteObjective {
    /// The objective of `net`'s parameters (shallow handles: the loss sees their current values),
    /// with the 0.5 MSE data term. A split head contributes one term per output row, with its
    /// own rate.
    pub fn new(net: &ConcreteMlp, weight_reg: f64, dropout_reg: f64) -> Self {
        let last = net.layers.len() - 1;
        let mut terms = Vec::new();
        for (i, ((w, _), d)) in net.layers.iter().zip(&net.drops).enumerate() {
            let k = w.size()[1] as f64;
            if i == last && !net.heads.is_empty() {
                terms.extend(net.heads.iter().enumerate().map(|(j, h)| Term {
                    weight: w.shallow_clone(),
                    row: Some(j as i64),
                    logit_p: Some(h.logit_p.shallow_clone()),
                    k,
                }));
            } else {
                terms.push(Term {
                    weight: w.shallow_clone(),
                    row: None,
                    logit_p: d.as_ref().map(|d| d.logit_p.shallow_clone()),
                    k,
                });
            }
        }
        Self {
            terms,
            weight_reg,
            dropout_reg,
            data: HalfMse,
        }
    }

    /// The same objective from the variables a [`ConcreteMlp`] of `spec` made in `vs`
    /// (`layer{i}.weight`, `concrete{i}.logit_p`, under any one prefix); not for split heads.
    pub fn from_vars(vs: &nn::VarStore, spec: &MlpSpec, weight_reg: f64, dropout_reg: f64) -> Self {
        let vars = vs.variables();
        let find = |name: String| {
            vars.iter()
                .find(|(k, _)| **k == name || k.ends_with(&format!(".{name}")))
                .map(|(_, v)| v.shallow_clone())
        };
        let terms = (0..=spec.hidden.len())
            .map(|i| {
                let weight = find(format!("layer{i}.weight"))
                    .expect("concrete_dropout's nets have a weight per layer");
                Term {
                    k: weight.size()[1] as f64,
                    weight,
                    row: None,
                    logit_p: find(format!("concrete{i}.logit_p")),
                }
            })
            .collect();
        Self {
            terms,
            weight_reg,
            dropout_reg,
            data: HalfMse,
        }
    }
}

impl ConcreteObjective {
    /// The objective over any net's weights: per weight tensor, the rate of the dropout before
    /// it (`logit_p`; none: p = 0) and the number of units that dropout drops (K), e.g. a
    /// convolutional net's (`methods::classification::ConcreteLeNet`).
    pub fn from_terms(
        terms: Vec<(Tensor, Option<Tensor>, usize)>,
        weight_reg: f64,
        dropout_reg: f64,
    ) -> Self {
        Self {
            terms: terms
                .into_iter()
                .map(|(weight, logit_p, k)| Term {
                    weight,
                    row: None,
                    logit_p,
                    k: k as f64,
                })
                .collect(),
            weight_reg,
            dropout_reg,
            data: HalfMse,
        }
    }
}

impl<D> ConcreteObjective<D> {
    /// The same regulariser on another data term, e.g. the heteroscedastic Gaussian NLL; it must
    /// be half the authors' per-point loss for the coefficients to keep their meaning (module
    /// docs).
    pub fn with_data<E: Objective>(self, data: E) -> ConcreteObjective<E> {
        ConcreteObjective {
            terms: self.terms,
            weight_reg: self.weight_reg,
            dropout_reg: self.dropout_reg,
            data,
        }
    }

    /// (index of the Linear, input width K, p) of every learnt rate.
    pub fn rates(&self) -> Vec<(usize, usize, f64)> {
        self.terms
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                let p = t.logit_p.as_ref()?;
                let p = tch::no_grad(|| f64::try_from(p.sigmoid()).unwrap_or(f64::NAN));
                Some((i, t.k as usize, p))
            })
            .collect()
    }

    /// The regulariser, halved to the project's 0.5 MSE scale (a scalar tensor).
    pub fn regulariser(&self) -> Tensor {
        let w0 = &self.terms[0].weight;
        let kind = w0.kind();
        let mut total = Tensor::zeros([], (kind, w0.device()));
        for t in &self.terms {
            let w = match t.row {
                Some(j) => t.weight.narrow(0, j, 1),
                None => t.weight.shallow_clone(),
            };
            let w2 = w.square().sum(kind);
            total = match &t.logit_p {
                None => total + w2 * self.weight_reg,
                Some(l) => {
                    let (log_p, log_q) = (l.log_sigmoid(), (-l).log_sigmoid());
                    let (p, q) = (log_p.exp(), log_q.exp());
                    let neg_entropy = (&p * &log_p + &q * &log_q).sum(kind);
                    total
                        + w2 * self.weight_reg / q.sum(kind)
                        + neg_entropy * (self.dropout_reg * t.k)
                }
            };
        }
        total * 0.5
    }
}

impl<D: Objective> Objective for ConcreteObjective<D> {
    fn check_shapes(&self, x: &Tensor, y: &Tensor) -> Result<(), TrainError> {
        self.data.check_shapes(x, y)
    }

    fn loss(&self, out: &Tensor, y: &Tensor) -> Tensor {
        self.data.loss(out, y) + self.regulariser()
    }

    /// Every learnt rate, as `p_before_layer{i}` (i: the Linear it drops the input of; 0 is
    /// the input layer), so the training curve shows how p moves.
    fn tracked(&self) -> Vec<(String, f64)> {
        self.rates()
            .into_iter()
            .map(|(i, _, p)| (rate_name(i), p))
            .collect()
    }
}

/// The name of the learnt rate before Linear `i` in training curves ([`Objective::tracked`]).
pub fn rate_name(i: usize) -> String {
    format!("p_before_layer{i}")
}

impl ConcreteDropout {
    /// The registered default: the authors' temperature 0.1.
    pub const DEFAULT: ConcreteDropout = ConcreteDropout {
        temperature: DEFAULT_TEMPERATURE,
    };

    /// The method with temperature `t` (> 0, as validation checks), as configs hold it. Each
    /// distinct temperature is allocated once for the life of the process.
    pub fn with_temperature(t: f64) -> MethodRef {
        assert!(t > 0.0, "validation: the temperature is > 0");
        if t.to_bits() == DEFAULT_TEMPERATURE.to_bits() {
            return MethodRef(&Self::DEFAULT);
        }
        static MADE: Mutex<Vec<&'static ConcreteDropout>> = Mutex::new(Vec::new());
        let mut made = MADE.lock().unwrap_or_else(|e| e.into_inner());
        let m = match made.iter().find(|m| m.temperature.to_bits() == t.to_bits()) {
            Some(m) => *m,
            None => {
                let m: &'static ConcreteDropout =
                    Box::leak(Box::new(ConcreteDropout { temperature: t }));
                made.push(m);
                m
            }
        };
        MethodRef(m)
    }

    /// The regulariser's coefficients for `n` points: (weight_reg, dropout_reg) = (2 wd / (1 -
    /// p0), 2 / (tau N)), i.e. (l^2 / (tau N), 2 / (tau N)) under the project's wd <-> tau map.
    pub fn coefficients(weight_decay: f64, p0: f64, tau: f64, n: usize) -> (f64, f64) {
        (2.0 * weight_decay / (1.0 - p0), 2.0 / (tau * n as f64))
    }
}

impl Method for ConcreteDropout {
    fn name(&self) -> &'static str {
        "concrete_dropout"
    }

    fn label(&self) -> &'static str {
        "concrete dropout"
    }

    fn serves(&self, u: Use) -> bool {
        matches!(
            u,
            Use::Regression
                | Use::ConcreteHeteroscedastic
                | Use::Classification
                | Use::StackedRegression
        )
    }

    fn classifier(
        &self,
        vs: &nn::Path,
        spec: &LeNetSpec,
        seed: u64,
    ) -> Box<dyn super::classification::Classifier> {
        Box::new(super::classification::ConcreteClassifier {
            net: super::classification::ConcreteLeNet::new(vs, spec, seed, self.temperature),
            temperature: self.temperature,
        })
    }

    fn regression_net(&self, vs: &nn::Path, spec: &MlpSpec, seed: u64) -> Box<dyn StochasticModel> {
        Box::new(ConcreteMlp::new(vs, spec, seed, self.temperature))
    }

    /// Plain 0.5 MSE: without the net there is no regulariser (see `regression_training`).
    fn regression_objective(&self) -> Box<dyn Objective> {
        Box::new(HalfMse)
    }

    fn regression_training(
        &self,
        vs: &nn::VarStore,
        net_spec: &MlpSpec,
        train: &TrainSpec,
        n: usize,
        tau: f64,
    ) -> (Box<dyn Objective>, TrainSpec) {
        let (weight_reg, dropout_reg) =
            Self::coefficients(train.weight_decay, net_spec.dropout, tau, n);
        let objective = ConcreteObjective::from_vars(vs, net_spec, weight_reg, dropout_reg);
        // The weight penalty is in the objective.
        let train = TrainSpec {
            weight_decay: 0.0,
            ..train.clone()
        };
        (Box::new(objective), train)
    }

    fn learned(&self, vs: &nn::VarStore, net_spec: &MlpSpec) -> Vec<(String, f64)> {
        ConcreteObjective::from_vars(vs, net_spec, 0.0, 0.0)
            .rates()
            .into_iter()
            .map(|(i, k, p)| (format!("p before layer{i} (K = {k})"), p))
            .collect()
    }

    fn cache_name(&self, tau: f64) -> String {
        // tau enters the dropout regulariser apart from the weight decay.
        format!(
            "concrete_dropout temperature={:e} tau={tau:e}",
            self.temperature
        )
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
    use mcd_models::rng::SeededRng;
    use mcd_trainer::{LrSchedule, Optimizer, Silent};
    use tch::{Device, Kind};

    fn spec(hidden: Vec<usize>, dropout: f64, input_dropout: f64) -> MlpSpec {
        MlpSpec {
            input_dim: 2,
            hidden,
            output_dim: 1,
            activation: Activation::Relu,
            dropout,
            input_dropout,
            init: InitScheme::Torch,
            first_layer: None,
        }
    }

    #[test]
    fn the_regulariser_by_hand() {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = ConcreteMlp::new(&vs.root(), &spec(vec![3], 0.2, 0.0), 1, 0.1);
        let (wr, dr) = (0.3, 0.05);
        let got = f64::try_from(ConcreteObjective::new(&net, wr, dr).regulariser()).unwrap();
        let sq = |w: &Tensor| f64::try_from(w.square().sum(Kind::Double)).unwrap();
        let (p, k) = (0.2f64, 3.0);
        let want = 0.5
            * (wr * sq(&net.layers[0].0)
                + wr * sq(&net.layers[1].0) / (1.0 - p)
                + dr * k * (p * p.ln() + (1.0 - p) * (1.0 - p).ln()));
        assert!(
            (got - want).abs() < 1e-6 * want.abs().max(1.0),
            "{got} vs {want}"
        );
        // The same terms from the variables by name.
        let by_name = f64::try_from(
            ConcreteObjective::from_vars(&vs, &spec(vec![3], 0.2, 0.0), wr, dr).regulariser(),
        )
        .unwrap();
        assert_eq!(got, by_name);
        assert_eq!(net.rates().len(), 1);
        assert!((net.rates()[0].2 - 0.2).abs() < 1e-6);
    }

    #[test]
    fn split_heads_have_their_own_masks_rates_and_terms() {
        use crate::methods::heteroscedastic::HeteroscedasticNll;
        let vs = nn::VarStore::new(Device::Cpu);
        let mut s = spec(vec![3], 0.2, 0.0);
        s.output_dim = 2;
        let net = ConcreteMlp::with_split_head(&vs.root(), &s, 1, 0.1);
        // No shared rate before the last Linear: one per output, and no other variable.
        assert!(net.drops[1].is_none() && net.heads.len() == 2);
        assert_eq!(net.rates().len(), 0);
        let heads = net.head_rates();
        assert_eq!(
            heads.iter().map(|h| (h.0, h.1)).collect::<Vec<_>>(),
            [(0, 3), (1, 3)]
        );
        assert!(heads.iter().all(|h| (h.2 - 0.2).abs() < 1e-6));
        let names: std::collections::BTreeSet<String> = vs.variables().into_keys().collect();
        for n in ["concrete1_out0.logit_p", "concrete1_out1.logit_p"] {
            assert!(names.contains(n), "{names:?}");
        }
        assert_eq!(names.len(), 4 + 2);
        // The same weights as the plain net of the same spec and seed.
        let plain_vs = nn::VarStore::new(Device::Cpu);
        let plain = ConcreteMlp::new(&plain_vs.root(), &s, 1, 0.1);
        assert!(plain.layers[1].0.equal(&net.layers[1].0));
        // One term per head, each with its row of the last weight and its own rate.
        tch::no_grad(|| {
            let _ = net.heads[1].logit_p.shallow_clone().fill_(0.5);
        });
        let (wr, dr) = (0.3, 0.05);
        let obj = ConcreteObjective::new(&net, wr, dr);
        let got = f64::try_from(obj.regulariser()).unwrap();
        let sq = |w: &Tensor| f64::try_from(w.square().sum(Kind::Double)).unwrap();
        let neg_h = |p: f64| p * p.ln() + (1.0 - p) * (1.0 - p).ln();
        let w1 = &net.layers[1].0;
        let p1 = 1.0 / (1.0 + (-0.5f64).exp());
        let want = 0.5
            * (wr * sq(&net.layers[0].0)
                + wr * sq(&w1.get(0)) / 0.8
                + dr * 3.0 * neg_h(0.2)
                + wr * sq(&w1.get(1)) / (1.0 - p1)
                + dr * 3.0 * neg_h(p1));
        assert!(
            (got - want).abs() < 1e-5 * want.abs().max(1.0),
            "{got} vs {want}"
        );
        assert_eq!(obj.rates().len(), 2);
        // The data term is a value: the same regulariser on the heteroscedastic NLL.
        let x = Tensor::from_slice(&[0.5f32, -1.0, 2.0, 0.0]).view([2, 2]);
        let y = Tensor::from_slice(&[1.0f32, -1.0]).view([2, 1]);
        let out = tch::no_grad(|| net.forward_t(&x, false));
        assert_eq!(out.size(), [2, 2]);
        let hetero = obj.with_data(HeteroscedasticNll);
        let loss = f64::try_from(hetero.loss(&out, &y)).unwrap();
        let nll = f64::try_from(HeteroscedasticNll.loss(&out, &y)).unwrap();
        assert!((loss - nll - got).abs() < 1e-5, "{loss} vs {nll} + {got}");
        assert!(hetero.check_shapes(&x, &y).is_ok());
        // Dropout off: the plain Linear of every output.
        let (w0, b0) = &net.layers[0];
        let (w1, b1) = &net.layers[1];
        let want = x.linear(w0, Some(b0)).relu().linear(w1, Some(b1));
        assert!(out.allclose(&want, 1e-6, 1e-6, false));
        // Dropout on: reproducible from the seed; and with both output rows made equal, the two
        // outputs still differ, because each sees its own mask.
        tch::no_grad(|| {
            w1.get(1).copy_(&w1.get(0));
            b1.get(1).copy_(&b1.get(0));
            let _ = net.heads[1]
                .logit_p
                .shallow_clone()
                .fill_(net.heads[0].logit_p.double_value(&[0]));
        });
        let wide = Tensor::ones([4000, 2], (Kind::Float, Device::Cpu));
        let passes = |seed| {
            net.reseed(seed);
            tch::no_grad(|| net.forward_t(&wide, true))
        };
        let (a, b) = (passes(3), passes(3));
        assert!(a.equal(&b));
        assert!(!a.equal(&passes(4)));
        let differ = f64::try_from(
            (a.select(1, 0) - a.select(1, 1))
                .abs()
                .gt(1e-6)
                .to_kind(Kind::Double)
                .mean(Kind::Double),
        )
        .unwrap();
        assert!(differ > 0.1, "outputs differ in {differ} of the rows");
        let same_rows = tch::no_grad(|| net.forward_t(&wide, false));
        assert!(same_rows.select(1, 0).equal(&same_rows.select(1, 1)));
        // prefix + rest = the whole net.
        net.reseed(9);
        let whole = tch::no_grad(|| net.forward_t(&x, true));
        net.reseed(9);
        let split = tch::no_grad(|| net.forward_from_prefix_t(&net.deterministic_prefix(&x), true));
        assert!(whole.equal(&split));
    }

    #[test]
    fn the_regulariser_gradient_matches_finite_differences() {
        let mut vs = nn::VarStore::new(Device::Cpu);
        let s = spec(vec![3, 4], 0.3, 0.1);
        let net = ConcreteMlp::new(&vs.root(), &s, 2, 0.1);
        vs.double();
        // Rates away from 0.5 on both sides, so the entropy term has a gradient.
        tch::no_grad(|| {
            let _ = net.drops[1]
                .as_ref()
                .unwrap()
                .logit_p
                .shallow_clone()
                .fill_(-1.3);
            let _ = net.drops[2]
                .as_ref()
                .unwrap()
                .logit_p
                .shallow_clone()
                .fill_(0.7);
        });
        let obj = ConcreteObjective::from_vars(&vs, &s, 0.7, 0.2);
        let mut vars = vs.trainable_variables();
        for v in &mut vars {
            v.zero_grad();
        }
        obj.regulariser().backward();
        let value = || tch::no_grad(|| f64::try_from(obj.regulariser()).unwrap());
        let h = 1e-6;
        let mut checked = 0;
        for v in &vars {
            // Biases are not in the regulariser: no gradient reached them.
            let grad = v.grad();
            let grad = if grad.defined() {
                grad.view([-1])
            } else {
                v.zeros_like().view([-1])
            };
            let flat = v.view([-1]);
            for i in 0..flat.size()[0] {
                let nudge = |d: f64| {
                    tch::no_grad(|| {
                        let _ = flat.get(i).g_add_scalar_(d);
                    })
                };
                nudge(h);
                let up = value();
                nudge(-2.0 * h);
                let down = value();
                nudge(h);
                let fd = (up - down) / (2.0 * h);
                let g = f64::try_from(grad.get(i)).unwrap();
                assert!(
                    (g - fd).abs() < 1e-6 * (1.0 + fd.abs()),
                    "element {i}: autograd {g}, finite differences {fd}"
                );
                checked += 1;
            }
        }
        // Weights of the three layers, their biases (gradient 0) and three rates (the input's
        // too).
        assert_eq!(checked, 2 * 3 + 3 + 3 * 4 + 4 + 4 + 1 + 3);
    }

    #[test]
    fn masks_are_reproducible_from_the_seed_and_unbiased_on_average() {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = ConcreteMlp::new(&vs.root(), &spec(vec![3], 0.3, 0.0), 4, 0.1);
        let d = net.drops[1].as_ref().unwrap();
        let ones = Tensor::ones([2000, 50], (Kind::Float, Device::Cpu));
        d.reseed(9);
        let a = tch::no_grad(|| d.forward(&ones, true));
        d.reseed(9);
        let b = tch::no_grad(|| d.forward(&ones, true));
        assert!(a.equal(&b));
        let mean = f64::try_from(a.mean(Kind::Double)).unwrap();
        // The relaxed mask at t = 0.1 is nearly Bernoulli(0.3): (1 - z) / (1 - p) averages ~1.
        assert!((mean - 1.0).abs() < 0.03, "mean mask {mean}");
        let dropped = f64::try_from(a.lt(0.5).to_kind(Kind::Double).mean(Kind::Double)).unwrap();
        assert!((dropped - 0.3).abs() < 0.03, "dropped share {dropped}");
        // Dropout off: the identity.
        assert!(d.forward(&ones, false).equal(&ones));
    }

    /// Learnt rates of a net trained on `n` points of y = 2 x + 8 + noise (sd 1), x ~ N(0, 1).
    fn learnt_rates(n: usize) -> Vec<f64> {
        let mut rng = SeededRng::new(n as u64);
        let x: Vec<f32> = (0..n).map(|_| rng.next_normal() as f32).collect();
        let y: Vec<f32> = x
            .iter()
            .map(|&x| 2.0 * x + 8.0 + rng.next_normal() as f32)
            .collect();
        let col = |v: &[f32]| Tensor::from_slice(v).view([v.len() as i64, 1]);
        let vs = nn::VarStore::new(Device::Cpu);
        let mut s = spec(vec![32, 32], 0.1, 0.0);
        s.input_dim = 1;
        let model = Regressor::new(by_name("concrete_dropout").unwrap(), &vs.root(), &s, 3, 1.0);
        // wd = (1 - p0) l^2 / (2 N tau) with l = 0.1, tau = 1.
        let weight_decay = 0.9 * 0.01 / (2.0 * n as f64);
        let train = TrainSpec {
            iterations: 400,
            batch_size: None,
            lr: 0.01,
            schedule: LrSchedule::Constant,
            optimizer: Optimizer::Adam {
                beta1: 0.9,
                beta2: 0.999,
            },
            weight_decay,
            seed: 5,
            log_every: 100,
        };
        let report = model
            .train(&vs, &col(&x), &col(&y), &train, 0, &mut Silent)
            .unwrap();
        let learnt = model.learned(&vs);
        assert_eq!(learnt.len(), 2, "{learnt:?}");
        // The training curve follows both rates from p0 at every report point.
        let names: Vec<&str> = report.tracked.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["p_before_layer1", "p_before_layer2"]);
        for (name, series) in &report.tracked {
            assert_eq!(series.len(), report.losses.len(), "{name}");
            assert!(
                (series[0] - 0.1).abs() < 1e-6,
                "{name} starts at {}",
                series[0]
            );
            assert!(
                (series[series.len() - 1] - 0.1).abs() > 1e-3,
                "{name} never moved: {series:?}"
            );
        }
        // It still predicts: the mean near 2 x + 8 at x = 0.
        let mc = McConfig {
            samples: 20,
            memory_budget_bytes: 1 << 20,
            seed: 1,
        };
        let passes = model.passes(&col(&[0.0]), &mc).unwrap();
        let p = model.method.regression_predictive(&passes, 1.0).unwrap();
        assert!((p.mean[0] - 8.0).abs() < 1.5, "mean at 0: {}", p.mean[0]);
        learnt.iter().map(|(_, p)| *p).collect()
    }

    #[test]
    fn fewer_points_learn_larger_drop_rates() {
        tch::set_num_threads(1);
        let few = learnt_rates(20);
        let many = learnt_rates(2000);
        for (i, (f, m)) in few.iter().zip(&many).enumerate() {
            assert!(
                f > m,
                "layer {i}: p = {f:.4} from 20 points, {m:.4} from 2000"
            );
        }
        eprintln!("learnt p: N = 20 {few:?}, N = 2000 {many:?}");
    }
}
