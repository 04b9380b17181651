//! Adam as one fused pass per parameter, for CPU f32 variables.
//!
//! libtorch's Adam (what `tch::nn::adam` builds) runs about ten element-wise ops per parameter
//! tensor, each a pass over memory; for the CO2 net's 3.1 M parameters that was 5 to 6 ms of a
//! 40 ms full-batch step. Here each element is read once (parameter, gradient, both moments)
//! and written once. The update is libtorch's (L2 decay added to the gradient, bias-corrected
//! moments, eps added after the square root), computed in f32 with f32 constants; results
//! match it to rounding, not bit for bit.
//!
//! Variables that are not CPU f32 tensors (a CUDA run) are left to libtorch's Adam: see
//! [`FusedAdam::new`].

use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor};

/// Adam's hyper-parameters (lr is given per step).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl AdamConfig {
    /// libtorch's defaults (eps 1e-8), as `tch::nn::adam(beta1, beta2, weight_decay)`.
    pub fn new(beta1: f64, beta2: f64, weight_decay: f64) -> Self {
        Self {
            beta1,
            beta2,
            eps: 1e-8,
            weight_decay,
        }
    }
}

/// One trainable variable and its moments.
struct Slot {
    var: Tensor,
    m: Vec<f32>,
    v: Vec<f32>,
}

/// The fused Adam.
pub struct FusedAdam {
    cfg: AdamConfig,
    slots: Vec<Slot>,
    steps: i32,
    /// Used only to clear gradients: libtorch's `zero_grad` drops them (the next backward then
    /// stores its gradient without adding it to a zeroed buffer), which tch offers only there.
    clearer: nn::Optimizer,
}

impl std::fmt::Debug for FusedAdam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FusedAdam")
            .field("cfg", &self.cfg)
            .field("variables", &self.slots.len())
            .field("steps", &self.steps)
            .finish_non_exhaustive()
    }
}

/// Whether the fused update can run on this variable.
fn fusable(t: &Tensor) -> bool {
    t.kind() == Kind::Float && t.device() == Device::Cpu && t.is_contiguous()
}

impl FusedAdam {
    /// Adam over the trainable variables of `vs`; `None` when one of them is not a contiguous
    /// CPU f32 tensor.
    pub fn new(vs: &nn::VarStore, cfg: AdamConfig) -> Result<Option<Self>, tch::TchError> {
        let vars = vs.trainable_variables();
        if !vars.iter().all(fusable) {
            return Ok(None);
        }
        let slots = vars
            .into_iter()
            .map(|var| {
                let n = var.numel();
                Slot {
                    var,
                    m: vec![0.0; n],
                    v: vec![0.0; n],
                }
            })
            .collect();
        let clearer = nn::sgd(0.0, 0.0, 0.0, false).build(vs, 0.0)?;
        Ok(Some(Self {
            cfg,
            slots,
            steps: 0,
            clearer,
        }))
    }

    /// Drops the gradients of all variables.
    pub fn zero_grad(&mut self) {
        self.clearer.zero_grad();
    }

    /// Clears the gradients, back-propagates `loss` and updates with learning rate `lr`.
    pub fn backward_step(&mut self, loss: &Tensor, lr: f64) {
        self.zero_grad();
        loss.backward();
        self.step(lr);
    }

    /// One update with the current gradients (variables without one are left alone).
    pub fn step(&mut self, lr: f64) {
        self.steps += 1;
        let c = &self.cfg;
        let bc1 = 1.0 - c.beta1.powi(self.steps);
        let bc2 = 1.0 - c.beta2.powi(self.steps);
        let k = Constants {
            b1: c.beta1 as f32,
            one_minus_b1: (1.0 - c.beta1) as f32,
            b2: c.beta2 as f32,
            one_minus_b2: (1.0 - c.beta2) as f32,
            wd: c.weight_decay as f32,
            inv_sqrt_bc2: (1.0 / bc2.sqrt()) as f32,
            eps: c.eps as f32,
            step: (lr / bc1) as f32,
        };
        tch::no_grad(|| {
            for slot in &mut self.slots {
                let grad = slot.var.grad();
                if !grad.defined() {
                    continue;
                }
                let grad = if fusable(&grad) {
                    grad
                } else {
                    grad.contiguous().to_kind(Kind::Float)
                };
                update(&slot.var, &grad, &mut slot.m, &mut slot.v, &k);
            }
        });
    }
}

/// Per-step constants in f32.
struct Constants {
    b1: f32,
    one_minus_b1: f32,
    b2: f32,
    one_minus_b2: f32,
    wd: f32,
    inv_sqrt_bc2: f32,
    eps: f32,
    step: f32,
}

/// The fused update of one variable.
fn update(var: &Tensor, grad: &Tensor, m: &mut [f32], v: &mut [f32], k: &Constants) {
    let n = var.numel();
    assert!(
        grad.numel() == n && m.len() == n && v.len() == n,
        "Adam state of {n} elements"
    );
    if n == 0 {
        return;
    }
    // The variable's storage, written in place as libtorch's optimisers do; `detach` shares it.
    let data = var.detach();
    let p_ptr = data.data_ptr() as *mut f32;
    let g_ptr = grad.data_ptr() as *const f32;
    // SAFETY: both tensors are contiguous CPU f32 tensors of `n` elements (checked by
    // `fusable` at construction and above), so the ranges are valid and aligned. The gradient
    // is a separate buffer from the variable. Nothing else touches either during the step: it
    // runs between backward passes, under no_grad, on the thread that owns the model.
    #[allow(unsafe_code)]
    let (p, g) = unsafe {
        (
            std::slice::from_raw_parts_mut(p_ptr, n),
            std::slice::from_raw_parts(g_ptr, n),
        )
    };
    // One thread: right after a backward pass libtorch's OpenMP workers are still spinning, and
    // a second (rayon) thread here measured no faster than this loop (about 3 ms for the CO2
    // net, against 6 ms for libtorch's Adam).
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let g = g + k.wd * *p;
        *m = k.b1 * *m + k.one_minus_b1 * g;
        *v = k.b2 * *v + k.one_minus_b2 * g * g;
        *p -= k.step * *m / (v.sqrt() * k.inv_sqrt_bc2 + k.eps);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fused update follows libtorch's Adam step for step (to f32 rounding).
    #[test]
    fn matches_libtorch_adam() {
        let make = || {
            let vs = nn::VarStore::new(Device::Cpu);
            let root = vs.root();
            let w = root.var_copy(
                "w",
                &Tensor::linspace(-1.0, 1.0, (3 << 16) + 5, (Kind::Float, Device::Cpu)),
            );
            let b = root.var_copy("b", &Tensor::from_slice(&[0.5f32, -0.25]));
            (vs, w, b)
        };
        let loss = |w: &Tensor, b: &Tensor| {
            (w * w * 3.0 - w).sin().sum(Kind::Float) + (b * b).sum(Kind::Float) * 2.0
        };
        let cfg = AdamConfig::new(0.9, 0.999, 1e-3);
        let (vs_a, wa, ba) = make();
        let mut fused = FusedAdam::new(&vs_a, cfg)
            .unwrap()
            .expect("CPU f32 variables");
        let (vs_b, wb, bb) = make();
        let mut reference = nn::adam(0.9, 0.999, 1e-3).build(&vs_b, 0.01).unwrap();
        for step in 0..20 {
            let lr = 0.01 / (1.0 + step as f64);
            fused.backward_step(&loss(&wa, &ba), lr);
            reference.set_lr(lr);
            reference.backward_step(&loss(&wb, &bb));
        }
        let (_, w0, b0) = make();
        for (a, b, start) in [(&wa, &wb, &w0), (&ba, &bb, &b0)] {
            let moved = f64::try_from((b - start).abs().max()).unwrap();
            let diff = f64::try_from((a - b).abs().max()).unwrap();
            assert!(moved > 0.01, "the variables moved by {moved}");
            assert!(diff < 1e-6, "largest difference {diff}");
        }
    }

    #[test]
    fn gradients_are_cleared_between_steps() {
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().var_copy("w", &Tensor::from_slice(&[1.0f32, 2.0]));
        let mut adam = FusedAdam::new(&vs, AdamConfig::new(0.9, 0.999, 0.0))
            .unwrap()
            .unwrap();
        // Adam's first step moves every coordinate by lr whatever the gradient's size.
        adam.backward_step(&(&w * 5.0).sum(Kind::Float), 0.1);
        let after_one = Vec::<f32>::try_from(&w.detach()).unwrap();
        assert!((after_one[0] - 0.9).abs() < 1e-6 && (after_one[1] - 1.9).abs() < 1e-6);
        adam.backward_step(&(&w * 5.0).sum(Kind::Float), 0.1);
        let g = Vec::<f32>::try_from(&w.grad()).unwrap();
        assert_eq!(g, vec![5.0, 5.0], "the gradient of one backward, not two");
    }
}
