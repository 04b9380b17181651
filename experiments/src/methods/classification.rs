//! Classifiers for the mnist_rotated study: what each method builds from the study's LeNet
//! spec ([`super::Method::classifier`]), how it trains (a [`mcd_trainer::Objective`] value for
//! the one training loop) and how its passes are drawn.
//!
//! - **MC dropout** ([`McLeNet`]): the LeNet of `model.placement`, cross-entropy, T passes with
//!   dropout on; its "standard" prediction is dropout off.
//! - **Deep ensemble** ([`LeNetEnsemble`], Lakshminarayanan et al. 2017, MNIST section): M
//!   LeNets without dropout from the seeds `Ensemble::member_seeds` derives from the run seed
//!   (as the co2 ensemble), each trained on the usual cross-entropy. They train side by side in
//!   one `VarStore` on the stack's loss, the sum of the members' cross-entropies, so each
//!   member's gradient (and its SGD or Adam state) is its own: a member trains as it would
//!   alone. All members see the loop's mini-batch order (the co2 ensemble's convention); they
//!   differ by their initial weights. The paper's MNIST ensembles were plain softmax nets
//!   without dropout (adversarial training aside), so members here have none (validation
//!   refuses `model.dropout` != 0). The predictive is the mean of the members' softmax outputs,
//!   and the uncertainty measures (entropy, mutual information, variation ratio) are computed
//!   over members the way MC dropout computes them over passes: the M members are the "passes".
//!   Its "standard" prediction is its first member alone (as co2's).
//! - **Concrete dropout** ([`ConcreteLeNet`], Gal, Hron & Kendall 2017): the LeNet's weights and
//!   a [`ConcreteLayer`] (learnt p, relaxed mask at `model.temperature`, started at
//!   `model.dropout`) at every position where the MC LeNet drops units: after conv1 and conv2
//!   (before each pooling) and after FC 500 + ReLU for LeNet-all, only the last for LeNet. It
//!   trains on cross-entropy plus the authors' regulariser (see [`classification_coefficients`]
//!   for the convention) and predicts by T passes with the relaxed masks, as in co2.
//!
//! **K for a convolution's dropout.** The regulariser's entropy term counts the Bernoulli
//! variables a layer draws per input: K = the number of units it drops. After FC 500 that is
//! the layer's input width, 500, as for an MLP. After a convolution the masks are drawn per
//! element of the feature map (LeNet-all drops units, not channels), so K = channels x height x
//! width of the map the mask covers: 20 x 24 x 24 = 11,520 after conv1 and 50 x 8 x 8 = 3,200
//! after conv2. This is what the authors' Keras `ConcreteDropout` wrapper takes for any layer
//! it wraps (`input_dim = np.prod(input_shape[1:])`); their spatial variant, which drops whole
//! channels, takes the channel count instead. The weight term of each mask goes to the weights
//! that read the masked units (through the pooling): conv2's for the first, FC 500's for the
//! second, FC 10's for the last; conv1's weights, with no dropout before them, have p = 0.

use mcd_models::lenet::{LeNet, LeNetDropout, LeNetSpec};
use mcd_models::mc::{mc_samples, standard_predict, McConfig};
use mcd_models::rng::splitmix64;
use mcd_models::{MemoryPlan, StochasticModel};
use mcd_trainer::{CrossEntropy, Objective, TrainError, TrainSpec};
use tch::nn::{self, ModuleT};
use tch::Tensor;

use super::concrete_dropout::{ConcreteLayer, ConcreteObjective};

/// A method's classifier: the net the training loop trains, its objective, and its passes.
pub trait Classifier {
    /// The net [`mcd_trainer::train`] trains (every variable of the run's `VarStore`).
    fn net(&self) -> &dyn ModuleT;
    /// The objective and the training settings for `n` training images (concrete dropout moves
    /// the weight decay into its objective).
    fn training(&self, train: &TrainSpec, n: usize) -> (Box<dyn Objective>, TrainSpec);
    /// How many passes [`Classifier::logit_passes`] gives when `t` are asked for (an ensemble:
    /// its members, whatever `t`).
    fn passes(&self, t: usize) -> usize {
        t
    }
    /// What the passes are called in tables and titles: "T" (MC passes) or "M" (members).
    fn passes_symbol(&self) -> &'static str {
        "T"
    }
    /// The logits of the predictive's passes over `x` ([N, ...]): [passes, N, classes].
    fn logit_passes(&self, x: &Tensor, mc: &McConfig) -> Tensor;
    /// One deterministic prediction's logits [N, classes]: dropout off (an ensemble: its first
    /// member).
    fn standard_logits(&self, x: &Tensor) -> Tensor;
    /// The deterministic prediction in tables ("standard dropout").
    fn standard_label(&self) -> &'static str {
        "standard dropout"
    }
    /// Short tags of the deterministic prediction and of the predictive, for score names:
    /// ("standard", "MC").
    fn tags(&self) -> (&'static str, &'static str) {
        ("standard", "MC")
    }
    /// What it learnt beside the weights, by name (concrete dropout: p per dropout position).
    fn learned(&self) -> Vec<(String, f64)> {
        Vec::new()
    }
    /// The method in the weight-cache key (`mc_dropout` is left out of the key).
    fn cache_name(&self) -> String;
    /// The recorded training loss divided by this is the curve drawn (an ensemble's loss is
    /// the sum over its members; its curve is their mean).
    fn loss_divisor(&self) -> f64 {
        1.0
    }
}

/// MC dropout's LeNet.
pub struct McLeNet {
    pub net: LeNet,
}

impl Classifier for McLeNet {
    fn net(&self) -> &dyn ModuleT {
        &self.net
    }

    fn training(&self, train: &TrainSpec, _n: usize) -> (Box<dyn Objective>, TrainSpec) {
        (Box::new(CrossEntropy), train.clone())
    }

    fn logit_passes(&self, x: &Tensor, mc: &McConfig) -> Tensor {
        mc_samples(&self.net, x, mc)
    }

    fn standard_logits(&self, x: &Tensor) -> Tensor {
        standard_predict(&self.net, x)
    }

    fn cache_name(&self) -> String {
        "mc_dropout".into()
    }
}

/// M LeNets without dropout (module docs); outputs [N, M x classes], member m's logits at
/// columns m x classes ..
#[derive(Debug)]
pub struct LeNetEnsemble {
    pub members: Vec<LeNet>,
}

impl LeNetEnsemble {
    /// Member m under `member{m}` in `path`, built as `LeNet::new(spec with dropout 0,
    /// seeds[m])`.
    pub fn new(path: &nn::Path, spec: &LeNetSpec, seeds: &[u64]) -> Self {
        let spec = LeNetSpec {
            dropout: 0.0,
            ..*spec
        };
        Self {
            members: seeds
                .iter()
                .enumerate()
                .map(|(m, &seed)| LeNet::new(&path.sub(format!("member{m}")), &spec, seed))
                .collect(),
        }
    }
}

impl ModuleT for LeNetEnsemble {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let outs: Vec<Tensor> = self
            .members
            .iter()
            .map(|m| m.forward_t(xs, train))
            .collect();
        Tensor::cat(&outs, 1)
    }
}

impl Classifier for LeNetEnsemble {
    fn net(&self) -> &dyn ModuleT {
        self
    }

    fn training(&self, train: &TrainSpec, _n: usize) -> (Box<dyn Objective>, TrainSpec) {
        (
            Box::new(MembersCrossEntropy {
                members: self.members.len(),
            }),
            train.clone(),
        )
    }

    fn passes(&self, _t: usize) -> usize {
        self.members.len()
    }

    fn passes_symbol(&self) -> &'static str {
        "M"
    }

    /// Each member once (members are deterministic): [M, N, classes].
    fn logit_passes(&self, x: &Tensor, _mc: &McConfig) -> Tensor {
        let outs: Vec<Tensor> = self
            .members
            .iter()
            .map(|m| standard_predict(m, x))
            .collect();
        Tensor::stack(&outs, 0)
    }

    fn standard_logits(&self, x: &Tensor) -> Tensor {
        standard_predict(&self.members[0], x)
    }

    fn standard_label(&self) -> &'static str {
        "first member alone"
    }

    fn tags(&self) -> (&'static str, &'static str) {
        ("first member", "members")
    }

    fn cache_name(&self) -> String {
        format!("ensemble members={}", self.members.len())
    }

    fn loss_divisor(&self) -> f64 {
        self.members.len() as f64
    }
}

/// The sum over members of each member's mean cross-entropy: outputs [N, M x classes] as
/// [`LeNetEnsemble`] lays them out, targets [N] class indices. Each member's gradient is that of
/// its own cross-entropy.
#[derive(Debug, Clone, Copy)]
pub struct MembersCrossEntropy {
    pub members: usize,
}

impl Objective for MembersCrossEntropy {
    fn check_shapes(&self, x: &Tensor, y: &Tensor) -> Result<(), TrainError> {
        CrossEntropy.check_shapes(x, y)
    }

    fn loss(&self, out: &Tensor, y: &Tensor) -> Tensor {
        let classes = out.size()[1] / self.members as i64;
        (0..self.members as i64)
            .map(|m| {
                out.narrow(1, m * classes, classes)
                    .cross_entropy_for_logits(y)
            })
            .reduce(|a, b| a + b)
            .expect("an ensemble has at least one member")
    }
}

/// The regulariser's coefficients for a cross-entropy classifier on `n` images, at the
/// cross-entropy's scale: (weight_reg, dropout_reg) = (wd / (1 - p0), 1 / N).
///
/// The authors' objective for regression is 2 / tau times the negative ELBO per point: MSE +
/// sum [l^2 / (tau N) ||W||^2 / (1 - p) + 2 / (tau N) K (p log p + (1 - p) log(1 - p))]. For
/// cross-entropy (the negative log-likelihood itself) the factor 2 / tau is dropped: CE + sum
/// [l^2 / (2 N) ||W||^2 / (1 - p) + 1 / N K (...)]. The project maps a weight decay to l with
/// the MC-dropout paper's formula, wd = (1 - p0) l^2 / (2 N tau), tau = 1 for a classifier, so
/// l^2 / (2 N) = wd / (1 - p0) from the run's `trainer.weight_decay` and p0 = `model.dropout`
/// (the same map as co2's concrete dropout, whose weight_reg = 2 wd / (1 - p0) enters an
/// objective halved to 0.5 MSE). The optimiser's decay is then 0, and biases are not penalised.
pub fn classification_coefficients(weight_decay: f64, p0: f64, n: usize) -> (f64, f64) {
    (weight_decay / (1.0 - p0), 1.0 / n as f64)
}

/// Concrete dropout's LeNet (module docs): LeNet's variables (the same initial values as the
/// MC LeNet of the same spec and seed) and a learnt rate at each dropout position.
#[derive(Debug)]
pub struct ConcreteLeNet {
    conv1: (Tensor, Tensor),
    conv2: (Tensor, Tensor),
    fc1: (Tensor, Tensor),
    fc2: (Tensor, Tensor),
    /// After conv1 and after conv2 (LeNet-all only), after FC 500 + ReLU.
    drops: [Option<ConcreteLayer>; 3],
    spec: LeNetSpec,
}

/// The dropout positions' names (in tables and training curves) and the K of each for MNIST's
/// 28 x 28 images.
const POSITIONS: [&str; 3] = ["p_after_conv1", "p_after_conv2", "p_after_fc1"];

impl ConcreteLeNet {
    /// Variables under `path`: LeNet's `conv1`, `conv2`, `fc1`, `fc2` (`weight`, `bias`) and
    /// `concrete_<position>.logit_p`, each rate started at `spec.dropout`.
    pub fn new(path: &nn::Path, spec: &LeNetSpec, seed: u64, temperature: f64) -> Self {
        // Built only for its seeded initial weights; the variables stay in `path`'s store.
        let _init = LeNet::new(path, spec, seed);
        let get = |layer: &str| {
            let p = path.sub(layer);
            let get = |name| p.get(name).expect("the LeNet just created this variable");
            (get("weight"), get("bias"))
        };
        let all = spec.placement == LeNetDropout::All;
        let drop = |i: usize| {
            (all || i == 2).then(|| {
                ConcreteLayer::new(
                    &path.sub(format!("concrete_{}", &POSITIONS[i][2..])),
                    spec.dropout,
                    temperature,
                    splitmix64(seed ^ splitmix64(0x1E4E_7C0C + i as u64)),
                )
            })
        };
        Self {
            conv1: get("conv1"),
            conv2: get("conv2"),
            fc1: get("fc1"),
            fc2: get("fc2"),
            drops: [drop(0), drop(1), drop(2)],
            spec: *spec,
        }
    }

    /// The masked units per input at each position (K): conv1's and conv2's feature maps and
    /// FC 500's outputs.
    fn widths(&self) -> [usize; 3] {
        let s1 = self.spec.side - 4;
        let s2 = s1 / 2 - 4;
        [20 * s1 * s1, 50 * s2 * s2, 500]
    }

    /// (position, K, p) of every learnt rate.
    pub fn rates(&self) -> Vec<(&'static str, usize, f64)> {
        let k = self.widths();
        self.drops
            .iter()
            .enumerate()
            .filter_map(|(i, d)| d.as_ref().map(|d| (POSITIONS[i], k[i], d.p())))
            .collect()
    }

    fn conv(xs: &Tensor, (w, b): &(Tensor, Tensor)) -> Tensor {
        xs.conv2d(w, Some(b), [1, 1], [0, 0], [1, 1], 1)
    }

    /// conv2 in channels-last memory on the CPU, as `LeNet`'s (the same floats, faster).
    fn conv2(&self, xs: &Tensor) -> Tensor {
        if xs.device() != tch::Device::Cpu {
            return Self::conv(xs, &self.conv2);
        }
        let nhwc = xs.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]);
        Self::conv(&nhwc, &self.conv2).contiguous()
    }

    fn drop(&self, i: usize, xs: Tensor, train: bool) -> Tensor {
        match &self.drops[i] {
            Some(d) => d.forward(&xs, train),
            None => xs,
        }
    }

    fn pool(xs: &Tensor) -> Tensor {
        mcd_models::pool::max_pool_2x2(xs)
    }
}

impl ModuleT for ConcreteLeNet {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.forward_from_prefix_t(&self.deterministic_prefix(xs), train)
    }
}

impl StochasticModel for ConcreteLeNet {
    /// conv1 (LeNet-all), or everything up to FC 500 + ReLU (LeNet).
    fn deterministic_prefix(&self, xs: &Tensor) -> Tensor {
        let h = Self::conv(xs, &self.conv1);
        if self.spec.placement == LeNetDropout::All {
            return h;
        }
        let h = Self::pool(&self.conv2(&Self::pool(&h)));
        h.flatten(1, -1)
            .linear(&self.fc1.0, Some(&self.fc1.1))
            .relu()
    }

    fn forward_from_prefix_t(&self, prefix: &Tensor, train: bool) -> Tensor {
        let h = if self.spec.placement == LeNetDropout::All {
            let h = Self::pool(&self.drop(0, prefix.shallow_clone(), train));
            let h = Self::pool(&self.drop(1, self.conv2(&h), train));
            h.flatten(1, -1)
                .linear(&self.fc1.0, Some(&self.fc1.1))
                .relu()
        } else {
            prefix.shallow_clone()
        };
        self.drop(2, h, train)
            .linear(&self.fc2.0, Some(&self.fc2.1))
    }

    fn reseed(&self, seed: u64) {
        for (i, d) in self.drops.iter().enumerate() {
            if let Some(d) = d {
                d.reseed(seed ^ splitmix64(i as u64));
            }
        }
    }

    fn output_dim(&self) -> usize {
        self.spec.classes
    }

    fn memory_plan(&self) -> Option<&dyn MemoryPlan> {
        Some(self)
    }
}

impl MemoryPlan for ConcreteLeNet {
    /// Twice LeNet's widest activation: the relaxed mask holds its uniforms and the mask itself
    /// beside the activation.
    fn widest_activation(&self) -> usize {
        2 * self.widths()[0].max(self.widths()[1])
    }
}

/// Concrete dropout's LeNet objective: cross-entropy + the regulariser
/// ([`classification_coefficients`]); its learnt rates are tracked by position name.
struct ConcreteLeNetObjective {
    inner: ConcreteObjective<CrossEntropy>,
    names: Vec<&'static str>,
}

impl Objective for ConcreteLeNetObjective {
    fn check_shapes(&self, x: &Tensor, y: &Tensor) -> Result<(), TrainError> {
        self.inner.check_shapes(x, y)
    }

    fn loss(&self, out: &Tensor, y: &Tensor) -> Tensor {
        self.inner.loss(out, y)
    }

    fn tracked(&self) -> Vec<(String, f64)> {
        self.names
            .iter()
            .zip(self.inner.rates())
            .map(|(n, (_, _, p))| (n.to_string(), p))
            .collect()
    }
}

impl ConcreteLeNet {
    /// The objective on `n` images with the run's weight decay (module docs of
    /// [`classification_coefficients`]); public for tests.
    pub fn objective(&self, weight_decay: f64, n: usize) -> Box<dyn Objective> {
        let (weight_reg, dropout_reg) =
            classification_coefficients(weight_decay, self.spec.dropout, n);
        let k = self.widths();
        // The weights that read each position's masked units.
        let terms = [&self.conv1, &self.conv2, &self.fc1, &self.fc2]
            .iter()
            .enumerate()
            .map(|(l, (w, _))| {
                let before = l.checked_sub(1).and_then(|i| {
                    self.drops[i]
                        .as_ref()
                        .map(|d| (d.logit_p.shallow_clone(), k[i]))
                });
                match before {
                    Some((logit_p, k)) => (w.shallow_clone(), Some(logit_p), k),
                    None => (w.shallow_clone(), None, 0),
                }
            })
            .collect();
        // `ConcreteObjective` halves its regulariser (co2's 0.5 MSE scale): doubled here, the
        // cross-entropy's scale.
        let inner = ConcreteObjective::from_terms(terms, 2.0 * weight_reg, 2.0 * dropout_reg)
            .with_data(CrossEntropy);
        Box::new(ConcreteLeNetObjective {
            inner,
            names: self.rates().iter().map(|r| r.0).collect(),
        })
    }
}

/// Concrete dropout's classifier: the net and the method's temperature.
pub struct ConcreteClassifier {
    pub net: ConcreteLeNet,
    pub temperature: f64,
}

impl Classifier for ConcreteClassifier {
    fn net(&self) -> &dyn ModuleT {
        &self.net
    }

    fn training(&self, train: &TrainSpec, n: usize) -> (Box<dyn Objective>, TrainSpec) {
        let objective = self.net.objective(train.weight_decay, n);
        // The weight penalty is in the objective.
        let train = TrainSpec {
            weight_decay: 0.0,
            ..train.clone()
        };
        (objective, train)
    }

    fn logit_passes(&self, x: &Tensor, mc: &McConfig) -> Tensor {
        mc_samples(&self.net, x, mc)
    }

    fn standard_logits(&self, x: &Tensor) -> Tensor {
        standard_predict(&self.net, x)
    }

    fn learned(&self) -> Vec<(String, f64)> {
        self.net
            .rates()
            .into_iter()
            .map(|(name, _, p)| (name.to_string(), p))
            .collect()
    }

    fn cache_name(&self) -> String {
        format!("concrete_dropout temperature={:e}", self.temperature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn images(n: i64) -> Tensor {
        Tensor::rand([n, 1, 28, 28], (Kind::Float, Device::Cpu))
    }

    #[test]
    fn ensemble_members_are_lenets_from_their_seeds_without_dropout() {
        let vs = nn::VarStore::new(Device::Cpu);
        let spec = LeNetSpec::mnist(0.0, LeNetDropout::Fc);
        let e = LeNetEnsemble::new(&vs.root(), &spec, &[3, 4]);
        assert_eq!(vs.variables().len(), 2 * 8);
        // Member 1 is `LeNet::new(spec, 4)`.
        let alone_vs = nn::VarStore::new(Device::Cpu);
        let alone = LeNet::new(&alone_vs.root(), &spec, 4);
        let x = images(3);
        let out = tch::no_grad(|| e.forward_t(&x, true));
        assert_eq!(out.size(), [3, 20]);
        let want = tch::no_grad(|| alone.forward_t(&x, false));
        assert!(out.narrow(1, 10, 10).equal(&want));
        // Passes: each member once, deterministic.
        let mc = McConfig {
            samples: 7,
            memory_budget_bytes: 1 << 24,
            seed: 1,
        };
        let p = e.logit_passes(&x, &mc);
        assert_eq!(p.size(), [2, 3, 10]);
        assert_eq!(e.passes(7), 2);
        assert!(p.get(1).equal(&want));
        // The loss is the members' cross-entropies summed.
        let y = Tensor::from_slice(&[1i64, 2, 3]);
        let spec = TrainSpec {
            iterations: 1,
            batch_size: None,
            lr: 0.01,
            schedule: mcd_trainer::LrSchedule::Constant,
            optimizer: mcd_trainer::Optimizer::Sgd { momentum: 0.9 },
            weight_decay: 5e-4,
            seed: 1,
            log_every: 1,
        };
        let (obj, same) = e.training(&spec, 3);
        assert_eq!(same.weight_decay, 5e-4);
        let got = f64::try_from(obj.loss(&out, &y)).unwrap();
        let ce = |m: i64| f64::try_from(out.narrow(1, 10 * m, 10).cross_entropy_for_logits(&y));
        assert!((got - ce(0).unwrap() - ce(1).unwrap()).abs() < 1e-5);
    }

    #[test]
    fn the_concrete_lenet_regulariser_by_hand() {
        let vs = nn::VarStore::new(Device::Cpu);
        let spec = LeNetSpec::mnist(0.1, LeNetDropout::All);
        let net = ConcreteLeNet::new(&vs.root(), &spec, 2, 0.1);
        assert_eq!(
            net.rates().iter().map(|r| (r.0, r.1)).collect::<Vec<_>>(),
            [
                ("p_after_conv1", 11_520),
                ("p_after_conv2", 3_200),
                ("p_after_fc1", 500)
            ]
        );
        // Its weights are the MC LeNet's of the same spec and seed.
        let mc_vs = nn::VarStore::new(Device::Cpu);
        let _mc = LeNet::new(&mc_vs.root(), &spec, 2);
        let mc_vars = mc_vs.variables();
        for (name, v) in vs.variables() {
            if let Some(w) = mc_vars.get(&name) {
                assert!(w.equal(&v), "{name}");
            }
        }
        let (wd, n) = (5e-4, 1000);
        let obj = net.objective(wd, n);
        // Dropout off, so the data term is the plain cross-entropy.
        let x = images(4);
        let y = Tensor::from_slice(&[0i64, 1, 2, 3]);
        let out = tch::no_grad(|| net.forward_t(&x, false));
        let total = f64::try_from(obj.loss(&out, &y)).unwrap();
        let ce = f64::try_from(out.cross_entropy_for_logits(&y)).unwrap();
        let sq = |w: &Tensor| f64::try_from(w.square().sum(Kind::Double)).unwrap();
        let (wr, dr, p) = (wd / 0.9, 1.0 / n as f64, 0.1f64);
        let neg_h = p * p.ln() + (1.0 - p) * (1.0 - p).ln();
        let want = wr * sq(&net.conv1.0)
            + wr * (sq(&net.conv2.0) + sq(&net.fc1.0) + sq(&net.fc2.0)) / (1.0 - p)
            + dr * (11_520.0 + 3_200.0 + 500.0) * neg_h;
        let reg = total - ce;
        assert!(
            (reg - want).abs() < 1e-4 * want.abs(),
            "regulariser {reg} vs {want}"
        );
        let tracked = obj.tracked();
        assert_eq!(tracked.len(), 3);
        assert!(tracked.iter().all(|(_, v)| (v - 0.1).abs() < 1e-6));
        // prefix + rest = the whole net, and the passes are reproducible from the seed.
        net.reseed(5);
        let whole = tch::no_grad(|| net.forward_t(&x, true));
        net.reseed(5);
        let split = tch::no_grad(|| net.forward_from_prefix_t(&net.deterministic_prefix(&x), true));
        assert!(whole.equal(&split));
        assert!(!whole.equal(&out));
    }

    #[test]
    fn lenet_placement_has_one_learnt_rate() {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = ConcreteLeNet::new(&vs.root(), &LeNetSpec::mnist(0.2, LeNetDropout::Fc), 1, 0.1);
        assert_eq!(net.rates().len(), 1);
        assert_eq!(net.rates()[0].0, "p_after_fc1");
        assert_eq!(vs.variables().len(), 8 + 1);
    }
}
