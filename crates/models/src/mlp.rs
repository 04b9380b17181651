//! Fully connected network with dropout after every hidden non-linearity (and optional input
//! dropout), the model of the paper's regression studies.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use tch::nn::{self, ModuleT};
use tch::Tensor;

use crate::dropout::Dropout;
use crate::rng::{uniform_tensor, SeededRng};
use crate::McModel;

/// Hidden-layer non-linearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
#[derive(Debug, Clone, PartialEq)]
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
            .map(|io| {
                let (fan_in, fan_out) = (io[0], io[1]);
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

impl McModel for Mlp {
    fn deterministic_prefix(&self, xs: &Tensor) -> Tensor {
        // Without input dropout the first Linear + activation does not depend on the mask.
        match (&self.input_dropout, self.layers.len() > 1) {
            (None, true) => {
                let (w, b) = &self.layers[0];
                self.activation.apply(&crate::linear::linear(xs, w, b))
            }
            _ => xs.shallow_clone(),
        }
    }

    fn forward_from_prefix_t(&self, prefix: &Tensor, train: bool) -> Tensor {
        let prefix_done = self.input_dropout.is_none() && self.layers.len() > 1;
        let mut h = match &self.input_dropout {
            Some(d) => d.forward(prefix, train),
            None => prefix.shallow_clone(),
        };
        if let Some(out) = self.hidden_in_workspace(&h, prefix_done, train) {
            return out;
        }
        let last = self.layers.len() - 1;
        for (i, (w, b)) in self.layers.iter().enumerate() {
            if i == last {
                return crate::linear::linear(&h, w, b);
            }
            let dropout = &self.hidden_dropout[i];
            h = if i == 0 && prefix_done {
                dropout.forward(&h, train)
            } else {
                // The linear's output is ours alone: under no_grad, ReLU and the mask go into
                // its memory in one pass.
                let z = crate::linear::linear(&h, w, b);
                match self.activation {
                    Activation::Relu => dropout.forward_owned(z, train, true),
                    act => dropout.forward_owned(act.apply(&z), train, false),
                }
            };
        }
        h
    }

    fn reseed_masks(&self, seed: u64) {
        let mut rng = SeededRng::new(seed);
        for d in self.input_dropout.iter().chain(&self.hidden_dropout) {
            d.reseed(rng.fork());
        }
    }

    fn widest_activation(&self) -> usize {
        self.spec
            .hidden
            .iter()
            .copied()
            .max()
            .unwrap_or(self.spec.input_dim)
            .max(self.spec.output_dim)
    }

    fn output_dim(&self) -> usize {
        self.spec.output_dim
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
    use tch::{Device, Kind};

    fn spec(act: Activation, input_dropout: f64) -> MlpSpec {
        MlpSpec {
            input_dim: 1,
            hidden: vec![16, 16],
            output_dim: 1,
            activation: act,
            dropout: 0.2,
            input_dropout,
            init: InitScheme::CaffeXavier,
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
            m.reseed_masks(3);
            let a = tch::no_grad(|| m.forward_t(&x, train));
            m.reseed_masks(3);
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
}
