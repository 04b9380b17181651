//! Fully connected network with dropout after every hidden non-linearity (and optional input
//! dropout), the model of the paper's regression studies.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

use crate::dropout::Dropout;
use crate::inplace::with_ref;
use crate::rng::{uniform_tensor, SeededRng};
use crate::{MemoryPlan, StochasticModel};

/// Hidden-layer non-linearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Activation {
    Relu,
    Tanh,
    Sigmoid,
}

impl Activation {
    /// All accepted names, for error messages.
    pub const NAMES: &'static [&'static str] = &["relu", "tanh", "sigmoid"];

    /// [`Activation::apply`] in place (outside autograd).
    fn apply_in_place(self, xs: &mut Tensor) {
        let _ = match self {
            Activation::Relu => xs.relu_(),
            Activation::Tanh => xs.tanh_(),
            Activation::Sigmoid => xs.sigmoid_(),
        };
    }

    pub(crate) fn apply(self, xs: &Tensor) -> Tensor {
        match self {
            Activation::Relu => xs.relu(),
            Activation::Tanh => xs.tanh(),
            Activation::Sigmoid => xs.sigmoid(),
        }
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
            Activation::Sigmoid => "sigmoid",
        })
    }
}

impl FromStr for Activation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "relu" => Ok(Activation::Relu),
            "tanh" => Ok(Activation::Tanh),
            "sigmoid" => Ok(Activation::Sigmoid),
            _ => Err(format!(
                "unknown activation `{s}` (expected one of {:?})",
                Self::NAMES
            )),
        }
    }
}

/// Weight initialisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum InitScheme {
    /// Caffe's "xavier": W ~ U[-sqrt(3/fan_in), sqrt(3/fan_in)], biases 0 (the paper's nets).
    CaffeXavier,
    /// PyTorch's nn.Linear default: W and b ~ U[-1/sqrt(fan_in), 1/sqrt(fan_in)].
    Torch,
    /// Keras' default `glorot_uniform`: W ~ U[-sqrt(6/(fan_in+fan_out)), +], biases 0 (the
    /// authors' UCI code).
    GlorotUniform,
}

impl InitScheme {
    /// All accepted names, for error messages.
    pub const NAMES: &'static [&'static str] = &["caffe_xavier", "torch", "glorot_uniform"];
}

impl FromStr for InitScheme {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "caffe_xavier" => Ok(InitScheme::CaffeXavier),
            "torch" => Ok(InitScheme::Torch),
            "glorot_uniform" => Ok(InitScheme::GlorotUniform),
            _ => Err(format!(
                "unknown init `{s}` (expected one of {:?})",
                Self::NAMES
            )),
        }
    }
}

/// Shape and regularisation of an [`Mlp`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MlpSpec {
    pub input_dim: usize,
    pub hidden: Vec<usize>,
    pub output_dim: usize,
    pub activation: Activation,
    /// Drop probability after every hidden non-linearity.
    pub dropout: f64,
    /// Drop probability on the input (0 = no input dropout).
    pub input_dropout: f64,
    pub init: InitScheme,
    /// Replaces `init` for the first layer when set (see [`SpreadFirstLayer`]).
    pub first_layer: Option<SpreadFirstLayer>,
}

/// First-layer units `act(w . (x - c))` with centres `c` spread uniformly over a box of the input
/// space and slopes `|w| = slope * U(0.5, 1.5)` in a random direction (a random sign for one
/// input); the biases are `-w . c`.
///
/// Why: with one input, the default inits put the units' transitions (ReLU kinks, TanH steps)
/// where `-b / w` of two small uniforms falls, about a third of them inside the training range,
/// and give TanH units gentle slopes. A series that swings many times over the range (the CO2
/// wave: 23 periods) then takes many steps to fit, and the TanH mean stays flat over stretches.
/// Steep units spread over the range start with features at the wave's scale.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct SpreadFirstLayer {
    /// Typical |w| (the slopes are this times U(0.5, 1.5)).
    pub slope: f64,
    /// Each centre coordinate is uniform in [low, high].
    pub low: f64,
    pub high: f64,
}

impl SpreadFirstLayer {
    /// Weights `[out, in]` and biases `[out]`, drawn from `rng`.
    fn draw(&self, rng: &mut SeededRng, fan_in: usize, fan_out: usize) -> (Tensor, Tensor) {
        let mut w = Vec::with_capacity(fan_out * fan_in);
        let mut b = Vec::with_capacity(fan_out);
        for _ in 0..fan_out {
            // A uniformly random direction (a random sign when fan_in is 1): normal draws, scaled.
            let dir: Vec<f64> = (0..fan_in).map(|_| rng.next_normal()).collect();
            let norm = dir
                .iter()
                .map(|v| v * v)
                .sum::<f64>()
                .sqrt()
                .max(f64::MIN_POSITIVE);
            let size = self.slope * (0.5 + rng.next_f64());
            let mut bias = 0.0;
            for d in dir {
                let wi = size * d / norm;
                let centre = self.low + (self.high - self.low) * rng.next_f64();
                bias -= wi * centre;
                w.push(wi as f32);
            }
            b.push(bias as f32);
        }
        (
            Tensor::from_slice(&w).view([fan_out as i64, fan_in as i64]),
            Tensor::from_slice(&b),
        )
    }
}

impl MlpSpec {
    /// The paper's CO2 net: 1 -> 4 x 1024 (ReLU, dropout 0.1 after each) -> 1, Caffe "xavier"
    /// init (the benchmarks' and tests' reference workload).
    pub fn paper_co2() -> Self {
        MlpSpec {
            input_dim: 1,
            hidden: vec![1024; 4],
            output_dim: 1,
            activation: Activation::Relu,
            dropout: 0.1,
            input_dropout: 0.0,
            init: InitScheme::CaffeXavier,
            first_layer: None,
        }
    }
}

/// The network: `[input dropout] -> (Linear -> act -> dropout) x depth -> Linear`.
#[derive(Debug)]
pub struct Mlp {
    layers: Vec<(Tensor, Tensor)>,
    activation: Activation,
    input_dropout: Option<Dropout>,
    hidden_dropout: Vec<Dropout>,
    spec: MlpSpec,
    /// Two flat f32 buffers that no-grad forwards (MC prediction) write their hidden
    /// activations into, alternately, instead of allocating two tensors per layer and pass.
    /// Allocating them afresh let glibc's heap grow by one activation per pass (memalign'd
    /// blocks are not reused): 405 MiB for T = 100 passes of 1000 rows of the CO2 net.
    workspace: Mutex<Vec<Tensor>>,
}

/// Whether autograd records ops on `w` now (tch offers no getter for the grad mode): the
/// product of one of its elements requires grad exactly then. A view would not tell (views of
/// a variable require grad even under no_grad); one scalar op costs a few microseconds.
fn records_grad(w: &Tensor) -> bool {
    w.requires_grad()
        && w.view([-1])
            .narrow(0, 0, 1)
            .g_mul_scalar(1.0)
            .requires_grad()
}

/// Largest workspace buffer kept (elements, 16 MiB of f32): bigger forwards allocate as usual,
/// so that one huge batch does not pin its memory for the model's lifetime.
const WORKSPACE_MAX_ELEMENTS: i64 = 1 << 22;

/// Initial weights and mask streams of one net: a pure function of (spec, seed), shared by
/// [`Mlp`] and [`crate::stacked::StackedMlp`] so a member of a stack starts exactly as the
/// same net built alone.
pub(crate) struct MlpInit {
    /// (weight [out, in], bias [out]) per layer.
    pub layers: Vec<(Tensor, Tensor)>,
    pub input_dropout: Option<Dropout>,
    pub hidden_dropout: Vec<Dropout>,
}

impl MlpInit {
    pub fn new(spec: &MlpSpec, seed: u64) -> Self {
        let mut rng = SeededRng::new(seed);
        let mut dims = vec![spec.input_dim];
        dims.extend(&spec.hidden);
        dims.push(spec.output_dim);
        let layers = dims
            .windows(2)
            .enumerate()
            .map(|(layer, io)| {
                let (fan_in, fan_out) = (io[0], io[1]);
                if let (0, Some(first)) = (layer, &spec.first_layer) {
                    return first.draw(&mut rng, fan_in, fan_out);
                }
                let (w_bound, b_bound) = match spec.init {
                    InitScheme::CaffeXavier => ((3.0 / fan_in as f64).sqrt(), 0.0),
                    InitScheme::Torch => {
                        let b = 1.0 / (fan_in as f64).sqrt();
                        (b, b)
                    }
                    InitScheme::GlorotUniform => ((6.0 / (fan_in + fan_out) as f64).sqrt(), 0.0),
                };
                let w = uniform_tensor(&mut rng, fan_out * fan_in, w_bound)
                    .view([fan_out as i64, fan_in as i64]);
                let b = uniform_tensor(&mut rng, fan_out, b_bound);
                (w, b)
            })
            .collect();
        let input_dropout =
            (spec.input_dropout > 0.0).then(|| Dropout::new(spec.input_dropout, rng.fork()));
        let hidden_dropout = spec
            .hidden
            .iter()
            .map(|_| Dropout::new(spec.dropout, rng.fork()))
            .collect();
        Self {
            layers,
            input_dropout,
            hidden_dropout,
        }
    }
}

impl Mlp {
    /// Creates the variables under `path`; `seed` fixes the initial weights and the mask stream.
    pub fn new(path: &nn::Path, spec: &MlpSpec, seed: u64) -> Self {
        let init = MlpInit::new(spec, seed);
        let layers = init
            .layers
            .iter()
            .enumerate()
            .map(|(i, (w, b))| {
                let p = path.sub(format!("layer{i}"));
                (p.var_copy("weight", w), p.var_copy("bias", b))
            })
            .collect();
        Self {
            layers,
            activation: spec.activation,
            input_dropout: init.input_dropout,
            hidden_dropout: init.hidden_dropout,
            spec: spec.clone(),
            workspace: Mutex::new(Vec::new()),
        }
    }

    /// The spec this net was built from.
    pub fn spec(&self) -> &MlpSpec {
        &self.spec
    }

    /// The hidden layers outside autograd, in the workspace: each Linear writes into a buffer
    /// (`linear_out`, libtorch's kernel, which `crate::linear` uses below oneDNN's row
    /// threshold), and its activation and dropout mask are applied there in place. The same
    /// floats as the plain path. `None` (nothing done) when gradients are tracked, `h` is not
    /// a 2-D CPU f32 tensor, or the batch is too large or goes to oneDNN (whose outputs are
    /// fresh tensors anyway, masked in place by the plain path).
    fn hidden_in_workspace(&self, h: &Tensor, prefix_done: bool, train: bool) -> Option<Tensor> {
        let hidden = self.layers.len() - 1;
        let &[rows, _] = h.size().as_slice() else {
            return None;
        };
        let widest = self.spec.hidden.iter().copied().max().unwrap_or(0) as i64;
        let need = rows * widest;
        // Batches that oneDNN takes get fresh outputs from it (see `crate::linear`).
        if need == 0
            || need > WORKSPACE_MAX_ELEMENTS
            || !crate::inplace::is_plain_cpu_f32(h)
            || self.scratch_bytes(rows as usize) > 0
        {
            return None;
        }
        // Last, as the only check that runs an op.
        if records_grad(&self.layers[0].0) {
            return None;
        }
        let mut ws = self.workspace.try_lock().ok()?;
        if ws.len() != 2 || ws[0].numel() < need as usize {
            let buffer = || Tensor::empty([need], (tch::Kind::Float, tch::Device::Cpu));
            *ws = vec![buffer(), buffer()];
        }
        let mut h = h.shallow_clone();
        for (i, (w, b)) in self.layers[..hidden].iter().enumerate() {
            let width = self.spec.hidden[i] as i64;
            let mut out = ws[i % 2].narrow(0, 0, rows * width).view([rows, width]);
            let dropout = &self.hidden_dropout[i];
            if i == 0 && prefix_done {
                // The prefix already went through this Linear and its activation.
                out.copy_(&h);
                if train {
                    dropout.mask_in_place(&mut out, false);
                }
            } else {
                let _ = h.linear_out(&out, w, Some(b));
                // ReLU and the mask in one pass where both apply; otherwise one after the other.
                let relu = self.activation == Activation::Relu;
                if !(train && relu && dropout.mask_in_place(&mut out, true)) {
                    self.activation.apply_in_place(&mut out);
                    if train {
                        dropout.mask_in_place(&mut out, false);
                    }
                }
            }
            h = out;
        }
        let (w, b) = &self.layers[hidden];
        // The output is a fresh tensor: the workspace is overwritten by the next forward.
        Some(crate::linear::linear(&h, w, b))
    }
}

impl Mlp {
    /// Activation and dropout of hidden layer `i` on its Linear's output `z` (owned: under
    /// no_grad ReLU and the mask go into its memory in one pass).
    fn activate(&self, i: usize, z: Tensor, train: bool) -> Tensor {
        let dropout = &self.hidden_dropout[i];
        match self.activation {
            Activation::Relu => dropout.forward_owned(z, train, true),
            act => dropout.forward_owned(act.apply(&z), train, false),
        }
    }

    /// Layers `from..` on `h`, the input of Linear `from`.
    fn layers_from(&self, mut h: Tensor, from: usize, train: bool) -> Tensor {
        let last = self.layers.len() - 1;
        for (i, (w, b)) in self.layers.iter().enumerate().skip(from) {
            let z = crate::linear::linear(&h, w, b);
            if i == last {
                return z;
            }
            h = self.activate(i, z, train);
        }
        h
    }

    /// Whether MC passes over `prefix` share the first hidden Linear's product
    /// ([`crate::shared_product`]): a prefix exists (no input dropout), the first hidden
    /// dropout drops so little that its dropped units cost less than the plain matmul (the
    /// subtraction runs at about a third of a matmul's speed per multiply-add, so at most a
    /// rate of 0.25), the product is shared by enough passes to repay it, and the layer is
    /// large enough for the matmul to matter. Outside autograd, on the CPU, in f32.
    fn shares_first_product(&self, prefix: &Tensor, samples: usize) -> bool {
        self.may_share_first_product()
            && samples >= SHARED_PRODUCT_MIN_PASSES
            && prefix.dim() == 2
            && crate::inplace::is_plain_cpu_f32(prefix)
            && !records_grad(&self.layers[1].0)
    }

    /// The parts of [`Mlp::shares_first_product`] fixed by the net's spec and device.
    fn may_share_first_product(&self) -> bool {
        let Some(first) = self.hidden_dropout.first() else {
            return false;
        };
        let (w, _) = &self.layers[1];
        self.input_dropout.is_none()
            && first.is_active()
            && first.effective_rate() <= SHARED_PRODUCT_MAX_RATE
            && w.numel() >= SHARED_PRODUCT_MIN_WEIGHTS
            && w.device() == Device::Cpu
            && w.kind() == Kind::Float
    }
}

/// Limits of [`Mlp::shares_first_product`].
const SHARED_PRODUCT_MAX_RATE: f64 = 0.25;
const SHARED_PRODUCT_MIN_PASSES: usize = 4;
const SHARED_PRODUCT_MIN_WEIGHTS: usize = 64 * 64;

impl StochasticModel for Mlp {
    fn deterministic_prefix(&self, xs: &Tensor) -> Tensor {
        // Without input dropout the first Linear + activation does not depend on the mask.
        match (&self.input_dropout, self.layers.len() > 1) {
            (None, true) => {
                let (w, b) = &self.layers[0];
                let mut z = crate::linear::linear(xs, w, b);
                if z.requires_grad() {
                    return self.activation.apply(&z);
                }
                // Outside autograd in place: the Linear's output and its activation are not
                // both held (an activation of the chunk less at MC prediction's peak).
                self.activation.apply_in_place(&mut z);
                z
            }
            _ => xs.shallow_clone(),
        }
    }

    fn forward_from_prefix_t(&self, prefix: &Tensor, train: bool) -> Tensor {
        let prefix_done = self.input_dropout.is_none() && self.layers.len() > 1;
        let h = match &self.input_dropout {
            Some(d) => d.forward(prefix, train),
            None => prefix.shallow_clone(),
        };
        if let Some(out) = self.hidden_in_workspace(&h, prefix_done, train) {
            return out;
        }
        if prefix_done {
            let h = self.hidden_dropout[0].forward(&h, train);
            return self.layers_from(h, 1, train);
        }
        self.layers_from(h, 0, train)
    }

    fn reseed(&self, seed: u64) {
        let mut rng = SeededRng::new(seed);
        for d in self.input_dropout.iter().chain(&self.hidden_dropout) {
            d.reseed(rng.fork());
        }
    }

    fn output_dim(&self) -> usize {
        self.spec.output_dim
    }

    fn memory_plan(&self) -> Option<&dyn MemoryPlan> {
        Some(self)
    }

    fn dropout_layers(&self) -> Vec<&Dropout> {
        self.input_dropout
            .iter()
            .chain(&self.hidden_dropout)
            .collect()
    }
}

impl MemoryPlan for Mlp {
    fn widest_activation(&self) -> usize {
        self.spec
            .hidden
            .iter()
            .copied()
            .max()
            .unwrap_or(self.spec.input_dim)
            .max(self.spec.output_dim)
    }

    fn sharing_bytes(&self) -> usize {
        if !self.may_share_first_product() {
            return 0;
        }
        let size = self.layers[1].0.size();
        crate::shared_product::scratch_bytes(
            size[1] as usize,
            size[0] as usize,
            crate::dropout::mask_threads(),
        )
    }

    fn chunk_passes(
        &self,
        prefix: &Tensor,
        samples: usize,
        passes: usize,
        room: usize,
        emit: &mut dyn FnMut(usize, usize, &Tensor),
    ) {
        let prefix = prefix.contiguous();
        let shared = room >= self.sharing_bytes() && self.shares_first_product(&prefix, samples);
        let (&[len, in_dim], true) = (prefix.size().as_slice(), shared) else {
            return crate::mc::repeated_passes(self, &prefix, samples, passes, emit);
        };
        let (w, b) = &self.layers[1];
        let dropout = &self.hidden_dropout[0];
        let out_dim = w.size()[0];
        // The kept units' inputs are s·p_j in the plain path too.
        let product = crate::linear::linear(&(&prefix * f64::from(dropout.scale())), w, b);
        let mut run = |p: &[f32], c: &[f32], w: &[f32]| {
            let shared = crate::shared_product::Shared::new(p, c, w, in_dim as usize);
            for (done, k) in crate::mc::forwards(samples, passes) {
                // This forward's mask is the call the plain path would draw for the prefix
                // repeated k times.
                let call = dropout.next_call();
                dropout.skip_calls(1);
                let mut z = Tensor::empty([k as i64 * len, out_dim], (Kind::Float, Device::Cpu));
                crate::inplace::with_mut(&mut z, |out: &mut [f32]| {
                    let threads = crate::dropout::mask_threads();
                    crate::shared_product::passes(&shared, dropout, call, out, threads);
                })
                .expect("a fresh CPU f32 tensor");
                let y = if self.layers.len() == 2 {
                    z
                } else {
                    self.layers_from(self.activate(1, z, true), 2, true)
                };
                emit(done, k, &y);
            }
        };
        with_ref(&prefix, |p: &[f32]| {
            with_ref(&product, |c: &[f32]| {
                with_ref(&w.contiguous(), |w: &[f32]| run(p, c, w))
            })
        })
        .flatten()
        .flatten()
        .expect("contiguous CPU f32 tensors");
    }

    fn scratch_bytes(&self, rows: usize) -> usize {
        self.layers
            .iter()
            .map(|(w, _)| crate::linear::scratch_bytes(w, rows))
            .max()
            .unwrap_or(0)
    }
}

impl ModuleT for Mlp {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        if self.input_dropout.is_none() {
            // Outside autograd the first layer goes into the workspace too.
            if let Some(out) = self.hidden_in_workspace(xs, false, train) {
                return out;
            }
        }
        self.forward_from_prefix_t(&self.deterministic_prefix(xs), train)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(act: Activation, input_dropout: f64) -> MlpSpec {
        MlpSpec {
            input_dim: 1,
            hidden: vec![16, 16],
            output_dim: 1,
            activation: act,
            dropout: 0.2,
            input_dropout,
            init: InitScheme::CaffeXavier,
            first_layer: None,
        }
    }

    #[test]
    fn caffe_xavier_bounds_and_zero_bias() {
        let vs = nn::VarStore::new(Device::Cpu);
        let _m = Mlp::new(&vs.root(), &spec(Activation::Relu, 0.0), 1);
        let vars = vs.variables();
        let w = &vars["layer1.weight"];
        let bound = (3.0f64 / 16.0).sqrt();
        let max = f64::try_from(w.abs().max()).unwrap();
        assert!(max <= bound && max > 0.8 * bound, "max {max} bound {bound}");
        assert_eq!(
            f64::try_from(vars["layer1.bias"].abs().sum(Kind::Double)).unwrap(),
            0.0
        );
    }

    #[test]
    fn same_seed_same_weights_and_outputs() {
        let x = Tensor::linspace(-1.0, 1.0, 8, (Kind::Float, Device::Cpu)).view([8, 1]);
        let outs: Vec<Tensor> = (0..2)
            .map(|_| {
                let vs = nn::VarStore::new(Device::Cpu);
                let m = Mlp::new(&vs.root(), &spec(Activation::Tanh, 0.1), 5);
                m.forward_t(&x, true)
            })
            .collect();
        assert!(outs[0].equal(&outs[1]));
    }

    /// Batches of `ONEDNN_MIN_ROWS` rows or more through layers of `ONEDNN_MIN_WEIGHTS` or
    /// more run through oneDNN: the same floats with and without autograd (masks included),
    /// within float rounding of libtorch's `linear`.
    #[test]
    fn onednn_batches_match_the_tracked_path_and_libtorch_linear() {
        let rows = crate::linear::ONEDNN_MIN_ROWS as i64 + 44;
        // Two layers big enough for oneDNN between small ones.
        let spec = MlpSpec {
            hidden: vec![600, 512, 512, 40],
            ..spec(Activation::Relu, 0.0)
        };
        let vs = nn::VarStore::new(Device::Cpu);
        let m = Mlp::new(&vs.root(), &spec, 9);
        let x = Tensor::linspace(-2.0, 2.0, rows, (Kind::Float, Device::Cpu)).view([rows, 1]);
        assert_eq!(
            m.scratch_bytes(rows as usize),
            600 * 512 * 4,
            "oneDNN takes this batch"
        );
        for train in [false, true] {
            m.reseed(3);
            let a = tch::no_grad(|| m.forward_t(&x, train));
            m.reseed(3);
            let b = m.forward_t(&x, train);
            assert!(b.requires_grad() && !a.requires_grad());
            assert!(a.equal(&b.detach()), "train {train}");
        }
        let mut h = x.shallow_clone();
        for (i, (w, b)) in m.layers.iter().enumerate() {
            h = h.linear(w, Some(b));
            if i + 1 < m.layers.len() {
                h = h.relu();
            }
        }
        let ours = tch::no_grad(|| m.forward_t(&x, false));
        assert!(ours.allclose(&h.detach(), 1e-4, 1e-5, false));
    }

    /// Outside autograd the hidden layers run in the workspace, in place; with gradients
    /// tracked they run op by op. Same seed, same masks: the same floats, for every activation,
    /// with and without input dropout, dropout on and off, and batches that grow the buffers.
    #[test]
    fn workspace_forward_equals_the_tracked_forward() {
        for act in [Activation::Relu, Activation::Tanh, Activation::Sigmoid] {
            for input_dropout in [0.0, 0.3] {
                let vs = nn::VarStore::new(Device::Cpu);
                let fast = Mlp::new(&vs.root(), &spec(act, input_dropout), 4);
                let vs2 = nn::VarStore::new(Device::Cpu);
                let tracked = Mlp::new(&vs2.root(), &spec(act, input_dropout), 4);
                for (rows, train) in [(5i64, true), (40, true), (7, false), (40, true)] {
                    let x = Tensor::linspace(-2.0, 2.0, rows, (Kind::Float, Device::Cpu))
                        .view([rows, 1]);
                    let a = tch::no_grad(|| fast.forward_t(&x, train));
                    let b = tracked.forward_t(&x, train);
                    assert!(b.requires_grad() && !a.requires_grad());
                    assert!(a.equal(&b.detach()), "{act} input dropout {input_dropout}");
                }
            }
        }
    }

    #[test]
    fn prefix_path_equals_plain_forward_without_dropout() {
        let vs = nn::VarStore::new(Device::Cpu);
        let m = Mlp::new(&vs.root(), &spec(Activation::Relu, 0.0), 2);
        let x = Tensor::linspace(-2.0, 2.0, 10, (Kind::Float, Device::Cpu)).view([10, 1]);
        let direct = {
            let mut h = x.shallow_clone();
            for (i, (w, b)) in m.layers.iter().enumerate() {
                h = h.linear(w, Some(b));
                if i + 1 < m.layers.len() {
                    h = h.relu();
                }
            }
            h
        };
        assert!(m.forward_t(&x, false).allclose(&direct, 1e-6, 1e-6, false));
    }

    #[test]
    fn prefix_in_place_outside_autograd_equals_the_tracked_prefix() {
        for act in [Activation::Relu, Activation::Tanh] {
            let vs = nn::VarStore::new(Device::Cpu);
            let m = Mlp::new(&vs.root(), &spec(act, 0.0), 3);
            let x = Tensor::linspace(-2.0, 2.0, 10, (Kind::Float, Device::Cpu)).view([10, 1]);
            let tracked = m.deterministic_prefix(&x);
            let plain = tch::no_grad(|| m.deterministic_prefix(&x));
            assert!(tracked.requires_grad() && !plain.requires_grad());
            assert!(tracked.detach().equal(&plain), "{act}");
            // The tracked prefix still back-propagates into the first Linear.
            tracked.sum(Kind::Float).backward();
            let grad = m.layers[0].0.grad();
            assert!(grad.defined() && grad.abs().sum(Kind::Float).double_value(&[]) > 0.0);
        }
    }

    /// Every forward's outputs of all passes over `prefix`, in order.
    fn collect(
        run: impl FnOnce(&mut dyn FnMut(usize, usize, &Tensor)),
    ) -> (Vec<(usize, usize)>, Tensor) {
        let mut calls = Vec::new();
        let mut outs = Vec::new();
        run(&mut |done, k, y| {
            calls.push((done, k));
            outs.push(y.copy());
        });
        (calls, Tensor::cat(&outs, 0))
    }

    #[test]
    fn shared_first_product_gives_the_plain_passes() {
        // Widths off the kernel's tile (128) and row block (32); one and two hidden layers
        // after the prefix; ReLU (zeros in the prefix) and TanH; one and several passes per
        // forward, and a last forward with fewer.
        // The last case has no hidden layer after the shared one: its product is the output.
        for (act, hidden, out, rate, len, passes) in [
            (Activation::Relu, vec![96, 200, 64], 2, 0.1, 45, 1),
            (Activation::Relu, vec![96, 200, 64], 2, 0.1, 45, 3),
            (Activation::Tanh, vec![160, 130], 2, 0.2, 7, 4),
            (Activation::Relu, vec![256], 40, 0.05, 33, 2),
        ] {
            let spec = MlpSpec {
                input_dim: 3,
                hidden: hidden.clone(),
                output_dim: out,
                activation: act,
                dropout: rate,
                input_dropout: 0.0,
                init: InitScheme::Torch,
                first_layer: None,
            };
            let vs = nn::VarStore::new(Device::Cpu);
            let m = Mlp::new(&vs.root(), &spec, 11);
            let x = Tensor::randn([len, 3], (Kind::Float, Device::Cpu));
            let samples = 10;
            let (plain_calls, plain, shared_calls, shared) = tch::no_grad(|| {
                let prefix = m.deterministic_prefix(&x);
                assert!(m.shares_first_product(&prefix, samples), "{hidden:?}");
                m.reseed(5);
                let (pc, p) =
                    collect(|emit| crate::mc::repeated_passes(&m, &prefix, samples, passes, emit));
                m.reseed(5);
                let (sc, s) =
                    collect(|emit| m.chunk_passes(&prefix, samples, passes, usize::MAX, emit));
                (pc, p, sc, s)
            });
            let what = format!("{act:?} {hidden:?} p={rate} rows={len} passes={passes}");
            assert_eq!(plain_calls, shared_calls, "{what}");
            assert_eq!(plain.size(), shared.size(), "{what}");
            let diff = f64::try_from((&plain - &shared).abs().max()).unwrap();
            let scale = f64::try_from(plain.abs().max()).unwrap();
            assert!(
                diff <= 1e-5 * scale.max(1.0),
                "{what}: differs by {diff} (max {scale})"
            );
            // The passes differ from each other (the masks were applied).
            let per_pass = plain.view([samples as i64, len, out as i64]);
            let spread = f64::try_from(per_pass.std_dim(0, true, false).mean(Kind::Float)).unwrap();
            assert!(spread > 1e-3, "{what}: passes do not vary ({spread})");
        }
    }

    #[test]
    fn first_product_is_shared_only_where_it_pays() {
        let vs = nn::VarStore::new(Device::Cpu);
        let spec = |rate: f64, input_dropout: f64, width: usize| MlpSpec {
            input_dim: 1,
            hidden: vec![width, width],
            output_dim: 1,
            activation: Activation::Relu,
            dropout: rate,
            input_dropout,
            init: InitScheme::Torch,
            first_layer: None,
        };
        let prefix = Tensor::ones([4, 128], (Kind::Float, Device::Cpu));
        let shares = |rate, input_dropout, width, samples| {
            let m = Mlp::new(&vs.root(), &spec(rate, input_dropout, width), 1);
            let prefix = prefix.narrow(1, 0, width as i64);
            tch::no_grad(|| m.shares_first_product(&prefix, samples))
        };
        assert!(shares(0.1, 0.0, 128, 100));
        assert!(
            !shares(0.5, 0.0, 128, 100),
            "a high rate keeps the plain matmul"
        );
        assert!(!shares(0.0, 0.0, 128, 100), "no dropout, nothing to share");
        assert!(!shares(0.1, 0.2, 128, 100), "input dropout: no prefix");
        assert!(!shares(0.1, 0.0, 128, 2), "too few passes");
        assert!(!shares(0.1, 0.0, 16, 100), "too small a layer");
        // Under autograd the plain, differentiable path runs.
        let m = Mlp::new(&vs.root(), &spec(0.1, 0.0, 128), 1);
        assert!(!m.shares_first_product(&prefix, 100));
    }

    #[test]
    fn spread_first_layer_puts_centres_in_range_and_slopes_in_band() {
        for fan_in in [1usize, 3] {
            let spec = MlpSpec {
                input_dim: fan_in,
                hidden: vec![200, 8],
                output_dim: 1,
                activation: Activation::Tanh,
                dropout: 0.1,
                input_dropout: 0.0,
                init: InitScheme::Torch,
                first_layer: Some(SpreadFirstLayer {
                    slope: 20.0,
                    low: -1.5,
                    high: 0.5,
                }),
            };
            let init = MlpInit::new(&spec, 11);
            let (w, b) = &init.layers[0];
            let w: Vec<f32> = Vec::try_from(w.reshape([-1])).unwrap();
            let b: Vec<f32> = Vec::try_from(b).unwrap();
            let (mut neg, mut pos) = (0, 0);
            for (row, &bias) in w.chunks(fan_in).zip(&b) {
                let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
                assert!((9.99..=30.01).contains(&norm), "|w| = {norm}");
                if fan_in == 1 {
                    // One input: the unit's transition sits at x = -b / w.
                    let centre = -bias / row[0];
                    assert!((-1.5001..=0.5001).contains(&centre), "centre {centre}");
                    if row[0] < 0.0 {
                        neg += 1
                    } else {
                        pos += 1
                    }
                }
            }
            if fan_in == 1 {
                assert!(neg > 60 && pos > 60, "signs {neg} / {pos}");
            }
            // The other layers keep `init`: the same as without the spread first layer.
            let plain = MlpInit::new(
                &MlpSpec {
                    first_layer: None,
                    ..spec.clone()
                },
                11,
            );
            assert_eq!(init.layers[1].0.size(), plain.layers[1].0.size());
        }
    }
}
