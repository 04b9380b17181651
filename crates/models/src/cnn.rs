//! The CNN of the active-learning study (Gal, Islam & Ghahramani 2017, the authors' Keras
//! code): conv 32@4x4 - ReLU - conv 32@4x4 - ReLU - maxpool 2x2 - dropout - dense 128 - ReLU -
//! dropout - dense 10 ("valid" convolutions: 28 -> 25 -> 22 -> 11). Weights use Keras 1's
//! default Glorot uniform, U[-sqrt(6 / (fan_in + fan_out)), +], biases 0.
//!
//! Everything before the first dropout is deterministic: [`StochasticModel::deterministic_prefix`]
//! is the pooled convolutions, flattened ([N, 32 * 11 * 11]), so MC passes run only the dense head.

use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

use crate::dropout::Dropout;
use crate::rng::{uniform_tensor, SeededRng};
use crate::{MemoryPlan, StochasticModel};

/// Channels of both convolutions.
const FILTERS: usize = 32;
/// Side of both kernels.
const KERNEL: usize = 4;

/// Shape and drop rates of a [`Cnn`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct CnnSpec {
    /// Input images are [N, 1, side, side].
    pub side: usize,
    pub classes: usize,
    /// Units of the hidden dense layer.
    pub dense: usize,
    /// Drop rate after the pooling (the authors' 0.25).
    pub conv_dropout: f64,
    /// Drop rate after the hidden dense layer (the authors' 0.5).
    pub dense_dropout: f64,
}

impl CnnSpec {
    /// The authors' net for MNIST: 28 x 28 inputs, 10 classes, dense 128.
    pub fn mnist(conv_dropout: f64, dense_dropout: f64) -> Self {
        CnnSpec {
            side: 28,
            classes: 10,
            dense: 128,
            conv_dropout,
            dense_dropout,
        }
    }

    /// Side of the pooled feature maps.
    fn pooled_side(&self) -> usize {
        (self.side - 2 * (KERNEL - 1)) / 2
    }

    /// Width of the deterministic prefix (the flattened pooled maps).
    pub fn flat(&self) -> usize {
        FILTERS * self.pooled_side() * self.pooled_side()
    }
}

/// The network.
#[derive(Debug)]
pub struct Cnn {
    conv1: (Tensor, Tensor),
    conv2: (Tensor, Tensor),
    fc1: (Tensor, Tensor),
    fc2: (Tensor, Tensor),
    drop_conv: Dropout,
    drop_fc: Dropout,
    spec: CnnSpec,
}

fn glorot(rng: &mut SeededRng, shape: &[usize], fan_in: usize, fan_out: usize) -> Tensor {
    let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    let bound = (6.0 / (fan_in + fan_out) as f64).sqrt();
    uniform_tensor(rng, shape.iter().product(), bound).view(dims.as_slice())
}

impl Cnn {
    /// Creates the variables under `path`; `seed` fixes the initial weights and mask streams.
    pub fn new(path: &nn::Path, spec: &CnnSpec, seed: u64) -> Self {
        let mut rng = SeededRng::new(seed);
        let flat = spec.flat();
        let k2 = KERNEL * KERNEL;
        let mut layer = |name: &str, shape: &[usize], fan_in: usize, fan_out: usize| {
            let w = glorot(&mut rng, shape, fan_in, fan_out);
            let b = Tensor::zeros([shape[0] as i64], (Kind::Float, tch::Device::Cpu));
            let p = path.sub(name);
            (p.var_copy("weight", &w), p.var_copy("bias", &b))
        };
        let conv1 = layer("conv1", &[FILTERS, 1, KERNEL, KERNEL], k2, FILTERS * k2);
        let conv2 = layer(
            "conv2",
            &[FILTERS, FILTERS, KERNEL, KERNEL],
            FILTERS * k2,
            FILTERS * k2,
        );
        let fc1 = layer("fc1", &[spec.dense, flat], flat, spec.dense);
        let fc2 = layer("fc2", &[spec.classes, spec.dense], spec.dense, spec.classes);
        let drop_conv = Dropout::new(spec.conv_dropout, rng.fork());
        let drop_fc = Dropout::new(spec.dense_dropout, rng.fork());
        Self {
            conv1,
            conv2,
            fc1,
            fc2,
            drop_conv,
            drop_fc,
            spec: *spec,
        }
    }

    /// The spec this net was built from.
    pub fn spec(&self) -> &CnnSpec {
        &self.spec
    }

    /// The hidden dense layer's weight matrix (the authors put their L2 penalty on it alone).
    pub fn dense_weight(&self) -> &Tensor {
        &self.fc1.0
    }

    /// conv2 on the CPU in channels-last memory, as LeNet's (oneDNN convolves in place of
    /// reordering), back to contiguous NCHW for the pooling.
    fn conv2(&self, xs: &Tensor) -> Tensor {
        let (w, b) = &self.conv2;
        if xs.device() != tch::Device::Cpu {
            return xs.conv2d(w, Some(b), [1, 1], [0, 0], [1, 1], 1);
        }
        let nhwc = xs.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]);
        nhwc.conv2d(w, Some(b), [1, 1], [0, 0], [1, 1], 1)
            .contiguous()
    }
}

impl StochasticModel for Cnn {
    fn deterministic_prefix(&self, xs: &Tensor) -> Tensor {
        let (w, b) = &self.conv1;
        let h = xs.conv2d(w, Some(b), [1, 1], [0, 0], [1, 1], 1).relu();
        let h = self.conv2(&h).relu();
        crate::pool::max_pool_2x2(&h).flatten(1, -1)
    }

    fn forward_from_prefix_t(&self, prefix: &Tensor, train: bool) -> Tensor {
        let h = self
            .drop_conv
            .forward(prefix, train)
            .linear(&self.fc1.0, Some(&self.fc1.1));
        self.drop_fc
            .forward_owned(h, train, true)
            .linear(&self.fc2.0, Some(&self.fc2.1))
    }

    fn reseed(&self, seed: u64) {
        let mut rng = SeededRng::new(seed);
        self.drop_conv.reseed(rng.fork());
        self.drop_fc.reseed(rng.fork());
    }

    fn output_dim(&self) -> usize {
        self.spec.classes
    }

    fn memory_plan(&self) -> Option<&dyn MemoryPlan> {
        Some(self)
    }

    fn dropout_layers(&self) -> Vec<&Dropout> {
        vec![&self.drop_conv, &self.drop_fc]
    }
}

impl MemoryPlan for Cnn {
    fn widest_activation(&self) -> usize {
        // Per input row: conv1's output (32 x 25 x 25) is the largest.
        let s = self.spec.side - (KERNEL - 1);
        FILTERS * s * s
    }
}

impl ModuleT for Cnn {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.forward_from_prefix_t(&self.deterministic_prefix(xs), train)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// The split path with dropout off equals the plain layers written out with libtorch's ops
    /// (NCHW convolutions, `max_pool2d`), values and gradients; with dropout on, passes differ,
    /// and the same seed gives the same passes.
    #[test]
    fn equals_the_plain_network_and_is_seeded() {
        let vs = nn::VarStore::new(Device::Cpu);
        let spec = CnnSpec::mnist(0.25, 0.5);
        let net = Cnn::new(&vs.root(), &spec, 3);
        assert_eq!(spec.flat(), 32 * 11 * 11);
        assert_eq!(vs.variables().len(), 8);
        let x = Tensor::rand([5, 1, 28, 28], (Kind::Float, Device::Cpu));
        let labels = Tensor::from_slice(&[3i64, 1, 4, 1, 5]);
        let grads = |logits: Tensor| {
            for v in vs.trainable_variables() {
                v.grad().defined().then(|| v.grad().zero_());
            }
            logits.cross_entropy_for_logits(&labels).backward();
            let mut named: Vec<(String, Tensor)> = vs
                .variables()
                .into_iter()
                .map(|(name, v)| (name, v.grad().copy()))
                .collect();
            named.sort_by(|a, b| a.0.cmp(&b.0));
            named
        };
        let y = net.forward_t(&x, false);
        assert_eq!(y.size(), vec![5, 10]);
        let ours = grads(y.shallow_clone());
        let conv = |h: &Tensor, (w, b): &(Tensor, Tensor)| {
            h.conv2d(w, Some(b), [1, 1], [0, 0], [1, 1], 1).relu()
        };
        let h = conv(&conv(&x, &net.conv1), &net.conv2)
            .max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false)
            .flatten(1, -1);
        let h = h.linear(&net.fc1.0, Some(&net.fc1.1)).relu();
        let plain = h.linear(&net.fc2.0, Some(&net.fc2.1));
        assert!(y.allclose(&plain, 1e-5, 1e-5, false));
        for ((name, a), (_, b)) in ours.iter().zip(&grads(plain)) {
            assert!(a.abs().max().double_value(&[]) > 0.0, "{name}: no gradient");
            assert!(a.allclose(b, 1e-4, 1e-6, false), "{name}");
        }
        let passes = |seed| {
            tch::no_grad(|| {
                net.reseed(seed);
                net.forward_t(&x, true)
            })
        };
        assert!(!passes(1).equal(&net.forward_t(&x, true)));
        assert!(passes(1).equal(&passes(1)));
        assert!(!passes(1).equal(&passes(2)));
    }
}
