//! MC-dropout prediction: T stochastic passes with dropout on, batched several passes per
//! forward in chunks bounded by a memory budget.

use tch::{Kind, Tensor};

use crate::McModel;

/// How many passes and how much memory a prediction may use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct McConfig {
    /// Number of stochastic passes T.
    pub samples: usize,
    /// Upper bound on the activations held at once, in bytes.
    pub memory_budget_bytes: usize,
    /// Seed of the dropout masks used for this prediction.
    pub seed: u64,
}

/// Bytes one input row costs in one pass: about three live activations of the widest layer
/// (input, output, mask) in f32.
fn bytes_per_row(model: &dyn McModel) -> usize {
    model.widest_activation().max(1) * 4 * 3
}

/// Plan of a prediction: rows of `x` per chunk and passes per forward.
pub fn chunk_plan(
    model: &dyn McModel,
    n_inputs: usize,
    samples: usize,
    budget: usize,
) -> (usize, usize) {
    let per_row = bytes_per_row(model);
    let rows = (budget / per_row).clamp(1, n_inputs.max(1));
    let passes = (budget / (per_row * rows)).clamp(1, samples.max(1));
    (rows, passes)
}

/// T stochastic passes over `x` ([N, ...]): returns [T, N, out] (f32, on `x`'s device).
/// Runs under `no_grad`; the deterministic prefix is computed once per input.
pub fn mc_samples(model: &dyn McModel, x: &Tensor, cfg: &McConfig) -> Tensor {
    tch::no_grad(|| {
        model.reseed_masks(cfg.seed);
        let n = x.size()[0] as usize;
        let (rows, passes) = chunk_plan(model, n, cfg.samples, cfg.memory_budget_bytes);
        let mut per_chunk = Vec::new();
        for start in (0..n).step_by(rows) {
            let len = rows.min(n - start);
            let prefix = model.deterministic_prefix(&x.narrow(0, start as i64, len as i64));
            let mut outs = Vec::new();
            let mut done = 0;
            while done < cfg.samples {
                let k = passes.min(cfg.samples - done);
                let mut rep_shape = vec![k as i64];
                rep_shape.extend(std::iter::repeat_n(1, prefix.dim()));
                let batch = prefix
                    .unsqueeze(0)
                    .repeat(rep_shape.as_slice())
                    .flatten(0, 1);
                let y = model.forward_from_prefix_t(&batch, true);
                outs.push(y.view([k as i64, len as i64, -1]));
                done += k;
            }
            per_chunk.push(Tensor::cat(&outs, 0));
        }
        Tensor::cat(&per_chunk, 1).to_kind(Kind::Float)
    })
}

/// Standard dropout (weight averaging): one deterministic pass with dropout off. [N, out].
pub fn standard_predict(model: &dyn McModel, x: &Tensor) -> Tensor {
    tch::no_grad(|| model.forward_from_prefix_t(&model.deterministic_prefix(x), false))
}

/// Copies a float tensor to a Vec<f32> (row-major), for the evaluation crate.
pub fn to_vec_f32(t: &Tensor) -> Vec<f32> {
    let flat = t
        .to_kind(Kind::Float)
        .to_device(tch::Device::Cpu)
        .contiguous()
        .view([-1]);
    Vec::<f32>::try_from(&flat).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mlp::{Activation, InitScheme, Mlp, MlpSpec};
    use tch::{nn, Device};

    fn model(vs: &nn::VarStore) -> Mlp {
        let spec = MlpSpec {
            input_dim: 1,
            hidden: vec![32, 32],
            output_dim: 1,
            activation: Activation::Relu,
            dropout: 0.3,
            input_dropout: 0.0,
            init: InitScheme::CaffeXavier,
        };
        Mlp::new(&vs.root(), &spec, 9)
    }

    #[test]
    fn shapes_and_chunking_do_not_change_the_distribution() {
        let vs = nn::VarStore::new(Device::Cpu);
        let m = model(&vs);
        let x = Tensor::linspace(-1.0, 1.0, 50, (Kind::Float, Device::Cpu)).view([50, 1]);
        let t = 400;
        let big = McConfig {
            samples: t,
            memory_budget_bytes: 1 << 30,
            seed: 1,
        };
        let tiny = McConfig {
            samples: t,
            memory_budget_bytes: 2000,
            seed: 1,
        };
        assert_eq!(chunk_plan(&m, 50, t, 1 << 30), (50, t));
        let (rows, passes) = chunk_plan(&m, 50, t, 2000);
        assert!(rows < 50 && passes >= 1);
        let a = mc_samples(&m, &x, &big);
        let b = mc_samples(&m, &x, &tiny);
        assert_eq!(a.size(), vec![t as i64, 50, 1]);
        assert_eq!(b.size(), vec![t as i64, 50, 1]);
        // Passes differ from each other (dropout is on) ...
        let sd = a.std_dim(0, false, false);
        assert!(f64::try_from(sd.min()).unwrap() > 1e-4);
        // ... the same seed gives the same samples ...
        assert!(a.equal(&mc_samples(&m, &x, &big)));
        // ... and another chunking gives the same mean up to MC error (5 standard errors of a
        // difference of two independent means, per point).
        let (ma, mb) = (
            a.mean_dim(0, false, Kind::Float),
            b.mean_dim(0, false, Kind::Float),
        );
        let z = (ma - mb).abs() / (sd * (2.0 / t as f64).sqrt());
        let worst = f64::try_from(z.max()).unwrap();
        assert!(worst < 5.0, "largest z-score {worst}");
    }

    #[test]
    fn standard_prediction_is_deterministic() {
        let vs = nn::VarStore::new(Device::Cpu);
        let m = model(&vs);
        let x = Tensor::linspace(-1.0, 1.0, 7, (Kind::Float, Device::Cpu)).view([7, 1]);
        assert!(standard_predict(&m, &x).equal(&standard_predict(&m, &x)));
        assert_eq!(to_vec_f32(&standard_predict(&m, &x)).len(), 7);
    }
}
