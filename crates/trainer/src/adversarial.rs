//! Adversarial training as deep ensembles use it (Lakshminarayanan, Pritzel & Blundell 2017,
//! §2.3, after Goodfellow et al.'s fast gradient sign method): each step minimises
//! `l(x, y) + l(x + eps * sign(d l(x, y) / d x), y)`, with `eps` per input feature (the paper:
//! 1 % of each input's range). The perturbed inputs are a smoothing of the likelihood around
//! the data, not a defence: the paper found them to improve the predictive's calibration.
//!
//! Members of a stack (an ensemble trained as one batched net) must each see their own
//! adversarial example: the gradient of the summed loss with respect to one shared input mixes
//! the members' directions. With `replicas` = M the input is repeated into `[M, N, d]`, one
//! slice per member, and the model must accept that shape (member m reading slice m only), so
//! each slice's gradient is its member's alone.

use tch::nn::ModuleT;
use tch::{Kind, Tensor};

use crate::{Objective, TrainError};

/// `inner` plus its value at the fast-gradient-sign perturbation of the batch.
pub struct Adversarial<'a> {
    inner: &'a dyn Objective,
    /// Step per input feature, `[d]` (broadcast over the batch).
    eps: Tensor,
    replicas: usize,
}

impl<'a> Adversarial<'a> {
    /// `eps[j]` is the step of input feature j (inputs are `[N, d]`); `replicas` > 1 repeats
    /// the inputs as `[replicas, N, d]` for a model of that many independent nets.
    pub fn new(inner: &'a dyn Objective, eps: &[f64], replicas: usize) -> Self {
        Self {
            inner,
            eps: Tensor::from_slice(eps).to_kind(Kind::Float),
            replicas: replicas.max(1),
        }
    }
}

impl Objective for Adversarial<'_> {
    fn check_shapes(&self, x: &Tensor, y: &Tensor) -> Result<(), TrainError> {
        if x.dim() != 2 || x.size()[1] != self.eps.size()[0] {
            return Err(TrainError::Shape {
                x: x.size(),
                y: self.eps.size(),
            });
        }
        self.inner.check_shapes(x, y)
    }

    /// The inner loss alone (no inputs to perturb here).
    fn loss(&self, out: &Tensor, y: &Tensor) -> Tensor {
        self.inner.loss(out, y)
    }

    fn tracked(&self) -> Vec<(String, f64)> {
        self.inner.tracked()
    }

    fn batch_loss(&self, model: &dyn ModuleT, x: &Tensor, y: &Tensor) -> Tensor {
        let x = if self.replicas > 1 {
            let (n, d) = (x.size()[0], x.size()[1]);
            x.unsqueeze(0)
                .expand([self.replicas as i64, n, d], false)
                .contiguous()
        } else {
            x.copy()
        }
        .detach()
        .set_requires_grad(true);
        let clean = self.inner.loss(&model.forward_t(&x, true), y);
        // The input gradient only (parameters' gradients come from the backward of the sum);
        // the graph is kept for that backward.
        let grad = Tensor::run_backward(&[&clean], &[&x], true, false)
            .pop()
            .expect("one gradient per requested input");
        let perturbed = tch::no_grad(|| &x + self.eps.to_device(x.device()) * grad.sign()).detach();
        clean + self.inner.loss(&model.forward_t(&perturbed, true), y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HalfMse;
    use tch::nn::{self, Module};
    use tch::Device;

    /// On a linear net y = w x + b the perturbation is known: x moves by eps in the direction
    /// that raises the loss, sign((w x + b - y) * w) per feature.
    #[test]
    fn the_perturbed_loss_of_a_linear_net_by_hand() {
        let vs = nn::VarStore::new(Device::Cpu);
        let mut lin = nn::linear(vs.root(), 2, 1, Default::default());
        tch::no_grad(|| {
            lin.ws
                .copy_(&Tensor::from_slice(&[2.0f32, -1.0]).view([1, 2]));
            lin.bs
                .as_mut()
                .unwrap()
                .copy_(&Tensor::from_slice(&[0.5f32]));
        });
        struct Net(nn::Linear);
        impl std::fmt::Debug for Net {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("Net")
            }
        }
        impl ModuleT for Net {
            fn forward_t(&self, xs: &Tensor, _train: bool) -> Tensor {
                self.0.forward(xs)
            }
        }
        let net = Net(lin);
        let x = Tensor::from_slice(&[1.0f32, 1.0, 0.0, 2.0]).view([2, 2]);
        let y = Tensor::from_slice(&[0.0f32, 0.0]).view([2, 1]);
        let eps = [0.1, 0.2];
        let adv = Adversarial::new(&HalfMse, &eps, 1);
        let got = f64::try_from(adv.batch_loss(&net, &x, &y)).unwrap();
        // Row 0: f = 2 - 1 + 0.5 = 1.5 > y, so x moves along sign(w) = (+, -): f' = 1.5 + 0.2 +
        // 0.2 = 1.9. Row 1: f = 0 - 2 + 0.5 = -1.5 < y, so x moves along -sign(w): f' = -1.9.
        let clean = 0.5 * (1.5f64.powi(2) + 1.5f64.powi(2)) / 2.0;
        let perturbed = 0.5 * (1.9f64.powi(2) + 1.9f64.powi(2)) / 2.0;
        assert!(
            (got - (clean + perturbed)).abs() < 1e-5,
            "{got} vs {}",
            clean + perturbed
        );
        // The parameters' gradients come from the backward of the sum, not from the input
        // gradient taken inside.
        assert!(!vs.trainable_variables()[0].grad().defined());
    }

    /// Replicas: each slice of `[M, N, d]` gets its own net's direction, not the direction
    /// of the summed loss.
    #[test]
    fn each_replica_is_perturbed_by_its_own_gradient() {
        #[derive(Debug)]
        struct Pair;
        impl ModuleT for Pair {
            // Member 0 outputs x, member 1 outputs 5 - x; outputs [N, 2] (a column per member).
            fn forward_t(&self, xs: &Tensor, _train: bool) -> Tensor {
                assert_eq!(xs.dim(), 3);
                Tensor::cat(&[xs.get(0), 5.0 - xs.get(1)], 1)
            }
        }
        // HalfMse sums 0.5 * (out_m - y)^2 over the members; x = 2, y = 1.
        let x = Tensor::from_slice(&[2.0f32]).view([1, 1]);
        let y = Tensor::from_slice(&[1.0f32]).view([1, 1]);
        let adv = Adversarial::new(&HalfMse, &[0.5], 2);
        let got = f64::try_from(adv.batch_loss(&Pair, &x, &y)).unwrap();
        // Clean: outputs 2 and 3, loss 0.5 + 2. Member 0's gradient is +1 (its x moves to 2.5,
        // output 2.5), member 1's is -2 (its x moves to 1.5, output 3.5): 0.5 * 1.5^2 + 0.5 *
        // 2.5^2. A shared input would follow the sum's sign (-1) and give 0.5 * 0.5^2 + 3.125.
        let want = 2.5 + (1.125 + 3.125);
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }
}
