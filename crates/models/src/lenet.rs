//! Caffe's LeNet as used in the paper's MNIST study: conv 20@5x5, maxpool 2/2, conv 50@5x5,
//! maxpool 2/2, FC 500, ReLU, dropout, FC 10; no non-linearity after the convolutions.
//! "LeNet-all" also drops after conv1 and conv2 (before each pooling).

use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

use crate::dropout::Dropout;
use crate::rng::{uniform_tensor, SeededRng};
use crate::{MemoryPlan, StochasticModel};

/// Where dropout sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum LeNetDropout {
    /// Only after the FC 500 + ReLU layer (the paper's "LeNet").
    Fc,
    /// Also after conv1 and conv2, before pooling ("LeNet-all").
    All,
}

/// Shape and regularisation of a [`LeNet`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct LeNetSpec {
    /// Input images are [N, 1, side, side].
    pub side: usize,
    pub classes: usize,
    pub dropout: f64,
    pub placement: LeNetDropout,
}

impl LeNetSpec {
    /// LeNet for MNIST (28 x 28 images, 10 classes) with drop rate `dropout` at `placement`.
    pub fn mnist(dropout: f64, placement: LeNetDropout) -> Self {
        LeNetSpec {
            side: 28,
            classes: 10,
            dropout,
            placement,
        }
    }
}

/// The network; weights use Caffe's "xavier" (U[-sqrt(3/fan_in), sqrt(3/fan_in)]), biases 0.
#[derive(Debug)]
pub struct LeNet {
    conv1: (Tensor, Tensor),
    conv2: (Tensor, Tensor),
    fc1: (Tensor, Tensor),
    fc2: (Tensor, Tensor),
    drop_conv1: Option<Dropout>,
    drop_conv2: Option<Dropout>,
    drop_fc: Dropout,
    spec: LeNetSpec,
    flat: usize,
}

fn xavier(rng: &mut SeededRng, shape: &[usize], fan_in: usize) -> Tensor {
    let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    uniform_tensor(rng, shape.iter().product(), (3.0 / fan_in as f64).sqrt()).view(dims.as_slice())
}

impl LeNet {
    /// Creates the variables under `path`; `seed` fixes the initial weights and mask streams.
    pub fn new(path: &nn::Path, spec: &LeNetSpec, seed: u64) -> Self {
        let mut rng = SeededRng::new(seed);
        let side = (spec.side - 4) / 2;
        let side = (side - 4) / 2;
        let flat = 50 * side * side;
        let mut layer = |name: &str, shape: &[usize], fan_in: usize| {
            let w = xavier(&mut rng, shape, fan_in);
            let b = Tensor::zeros([shape[0] as i64], (Kind::Float, tch::Device::Cpu));
            let p = path.sub(name);
            (p.var_copy("weight", &w), p.var_copy("bias", &b))
        };
        let conv1 = layer("conv1", &[20, 1, 5, 5], 25);
        let conv2 = layer("conv2", &[50, 20, 5, 5], 500);
        let fc1 = layer("fc1", &[500, flat], flat);
        let fc2 = layer("fc2", &[spec.classes, 500], 500);
        let all = spec.placement == LeNetDropout::All;
        let drop_conv1 = all.then(|| Dropout::new(spec.dropout, rng.fork()));
        let drop_conv2 = all.then(|| Dropout::new(spec.dropout, rng.fork()));
        let drop_fc = Dropout::new(spec.dropout, rng.fork());
        Self {
            conv1,
            conv2,
            fc1,
            fc2,
            drop_conv1,
            drop_conv2,
            drop_fc,
            spec: *spec,
            flat,
        }
    }

    /// The spec this net was built from.
    pub fn spec(&self) -> &LeNetSpec {
        &self.spec
    }

    fn conv(xs: &Tensor, (w, b): &(Tensor, Tensor)) -> Tensor {
        xs.conv2d(w, Some(b), [1, 1], [0, 0], [1, 1], 1)
    }

    /// conv2, on the CPU in channels-last (NHWC) memory: oneDNN then convolves in place of
    /// reordering NCHW to its own layout and back. For a batch of 64 that took conv2 from 2.8
    /// to 1.7 ms forward and from 9.6 to 6.1 ms with its backward pass. conv1, with its one
    /// input channel, is faster in NCHW, and the pooling wants NCHW, hence the two copies
    /// (differentiable, about 0.1 ms each).
    fn conv2(&self, xs: &Tensor) -> Tensor {
        if xs.device() != tch::Device::Cpu {
            return Self::conv(xs, &self.conv2);
        }
        let nhwc = xs.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]);
        Self::conv(&nhwc, &self.conv2).contiguous()
    }

    fn pool(xs: &Tensor) -> Tensor {
        crate::pool::max_pool_2x2(xs)
    }

    fn head(&self, h: &Tensor, train: bool) -> Tensor {
        let h = h.flatten(1, -1).linear(&self.fc1.0, Some(&self.fc1.1));
        self.drop_fc
            .forward_owned(h, train, true)
            .linear(&self.fc2.0, Some(&self.fc2.1))
    }
}

impl StochasticModel for LeNet {
    fn deterministic_prefix(&self, xs: &Tensor) -> Tensor {
        match self.spec.placement {
            // Everything up to the dropout after FC 500 + ReLU is deterministic.
            LeNetDropout::Fc => {
                let h = Self::pool(&self.conv2(&Self::pool(&Self::conv(xs, &self.conv1))));
                h.flatten(1, -1)
                    .linear(&self.fc1.0, Some(&self.fc1.1))
                    .relu()
            }
            LeNetDropout::All => Self::conv(xs, &self.conv1),
        }
    }

    fn forward_from_prefix_t(&self, prefix: &Tensor, train: bool) -> Tensor {
        match (&self.drop_conv1, &self.drop_conv2) {
            (Some(d1), Some(d2)) => {
                let h = Self::pool(&d1.forward(prefix, train));
                let h = Self::pool(&d2.forward_owned(self.conv2(&h), train, false));
                self.head(&h, train)
            }
            _ => self
                .drop_fc
                .forward(prefix, train)
                .linear(&self.fc2.0, Some(&self.fc2.1)),
        }
    }

    fn reseed(&self, seed: u64) {
        let mut rng = SeededRng::new(seed);
        for d in self
            .drop_conv1
            .iter()
            .chain(&self.drop_conv2)
            .chain(std::iter::once(&self.drop_fc))
        {
            d.reseed(rng.fork());
        }
    }

    fn output_dim(&self) -> usize {
        self.spec.classes
    }

    fn memory_plan(&self) -> Option<&dyn MemoryPlan> {
        Some(self)
    }
}

impl MemoryPlan for LeNet {
    fn widest_activation(&self) -> usize {
        // Per input row: conv1 output (20 x 24 x 24) is the largest activation.
        let s = self.spec.side - 4;
        (20 * s * s).max(self.flat)
    }
}

impl ModuleT for LeNet {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.forward_from_prefix_t(&self.deterministic_prefix(xs), train)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn shapes_prefix_equivalence_and_dropout_placement() {
        for placement in [LeNetDropout::Fc, LeNetDropout::All] {
            let vs = nn::VarStore::new(Device::Cpu);
            let spec = LeNetSpec::mnist(0.5, placement);
            let net = LeNet::new(&vs.root(), &spec, 1);
            let x = Tensor::rand([3, 1, 28, 28], (Kind::Float, Device::Cpu));
            let y = net.forward_t(&x, false);
            assert_eq!(y.size(), vec![3, 10]);
            // Dropout off: the split path equals a plain forward written out here.
            let h = x.conv2d(&net.conv1.0, Some(&net.conv1.1), [1, 1], [0, 0], [1, 1], 1);
            let h = h.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
            let h = h.conv2d(&net.conv2.0, Some(&net.conv2.1), [1, 1], [0, 0], [1, 1], 1);
            let h = h.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
            let h = h.flatten(1, -1).linear(&net.fc1.0, Some(&net.fc1.1)).relu();
            let plain = h.linear(&net.fc2.0, Some(&net.fc2.1));
            assert!(y.allclose(&plain, 1e-5, 1e-5, false));
            // Dropout on: passes differ.
            assert!(!net.forward_t(&x, true).equal(&net.forward_t(&x, true)));
            assert_eq!(vs.variables().len(), 8);
        }
    }

    /// conv2 runs in channels-last memory on the CPU; its gradients, and those of every layer
    /// below it, must still be those of the plain NCHW convolution.
    #[test]
    fn gradients_match_the_plain_nchw_network() {
        for placement in [LeNetDropout::Fc, LeNetDropout::All] {
            let vs = nn::VarStore::new(Device::Cpu);
            let net = LeNet::new(&vs.root(), &LeNetSpec::mnist(0.5, placement), 7);
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
                    .map(|(name, v)| {
                        let g = v.grad();
                        assert!(g.defined(), "{name}: no gradient");
                        (name, g.copy())
                    })
                    .collect();
                named.sort_by(|a, b| a.0.cmp(&b.0));
                named
            };
            let ours = grads(net.forward_t(&x, false));
            let conv = |h: &Tensor, (w, b): &(Tensor, Tensor)| {
                h.conv2d(w, Some(b), [1, 1], [0, 0], [1, 1], 1)
            };
            let pool = |h: &Tensor| h.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
            let h = pool(&conv(&pool(&conv(&x, &net.conv1)), &net.conv2));
            let h = h.flatten(1, -1).linear(&net.fc1.0, Some(&net.fc1.1)).relu();
            let plain = grads(h.linear(&net.fc2.0, Some(&net.fc2.1)));
            assert_eq!(ours.len(), 8);
            for ((name, a), (_, b)) in ours.iter().zip(&plain) {
                assert!(
                    a.abs().max().double_value(&[]) > 0.0,
                    "{placement:?} {name}: no gradient"
                );
                assert!(a.allclose(b, 1e-4, 1e-6, false), "{placement:?} {name}");
            }
        }
    }
}
