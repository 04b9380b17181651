//! MC-dropout prediction: T stochastic passes with dropout on, batched several passes per
//! forward in chunks bounded by a memory budget.

use tch::{Device, Kind, Tensor};

use crate::{MemoryPlan, StochasticModel};

/// On the CPU a forward's activations are capped at this many bytes whatever the budget (at
/// most 4 MiB per activation tensor): bigger tensors leave the cache and are allocated fresh
/// from the OS on every call (glibc serves them with mmap), so every element-wise op pays a
/// page fault per 4 KiB and MC prediction ran at half the matmul speed; about a thousand
/// 1024-wide rows per forward is already large enough for the matmuls to run at full speed.
/// A model's scratch (oneDNN's weight copy, [`MemoryPlan::scratch_bytes`]) and what it needs to
/// share work between passes ([`MemoryPlan::sharing_bytes`]) come on top.
const CPU_CHUNK_BYTES: usize = 16 << 20;

/// The budget [`mc_samples`] plans `model`'s forwards on `device` with: on the CPU at most the
/// activation cap plus the model's largest scratch and its sharing bytes (so the cap bounds
/// the activations alone).
pub fn effective_budget(model: &dyn MemoryPlan, device: Device, budget: usize) -> usize {
    match device {
        Device::Cpu => {
            budget.min(CPU_CHUNK_BYTES + model.scratch_bytes(usize::MAX) + model.sharing_bytes())
        }
        _ => budget,
    }
}

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

/// Bytes one input row costs in one pass for a net whose widest activation has `widest`
/// units: at most four f32 copies of it live at once. For an `Mlp` those are the prefix, its
/// repetition over the passes of a forward, and the workspace's two buffers; for LeNet and
/// `StackedMlp` (which shares this count in `mc_chunks`) a layer's input and output, the mask
/// tensor and the buffer it is generated in (`dropout::mask_tensor`).
pub(crate) fn activation_bytes_per_row(widest: usize) -> usize {
    widest.max(1) * 4 * 4
}

fn bytes_per_row(model: &dyn MemoryPlan) -> usize {
    activation_bytes_per_row(model.widest_activation())
}

/// Plan of a prediction: rows of `x` per chunk and passes per forward.
pub fn chunk_plan(
    model: &dyn MemoryPlan,
    n_inputs: usize,
    samples: usize,
    budget: usize,
) -> (usize, usize) {
    let per_row = bytes_per_row(model);
    let n = n_inputs.max(1);
    // Keep the bytes for sharing work between passes out of the plan, where the budget is
    // large enough that the activations still get half of it.
    let sharing = model.sharing_bytes();
    let budget = if sharing > 0 && budget >= 2 * sharing {
        budget - sharing
    } else {
        budget
    };
    // Equal chunks: 1000 inputs at 768 rows a chunk become two chunks of 500, not 768 and a
    // tail of 232 that may be too small for the faster kernel.
    let balanced = |most: usize| n.div_ceil(n.div_ceil(most.clamp(1, n)));
    let plan = |budget: usize| {
        let rows = balanced(budget / per_row);
        let passes = (budget / (per_row * rows)).clamp(1, samples.max(1));
        (rows, passes)
    };
    let scratch = |(rows, passes): (usize, usize)| model.scratch_bytes(rows * passes);
    let full = plan(budget);
    let full_scratch = scratch(full);
    if full_scratch == 0 {
        return full;
    }
    // The forward's batch needs scratch memory (oneDNN's weight copy): plan the activations
    // in what it leaves, if that batch still has the scratch's kernel ...
    let beside = plan(budget.saturating_sub(full_scratch));
    if full_scratch < budget && scratch(beside) > 0 {
        return beside;
    }
    // ... or else take the largest batch that needs no scratch (the scratch grows with the
    // batch: none below a row count, then a fixed size).
    let (mut ok, mut too_big) = (0, full.0 * full.1);
    while too_big - ok > 1 {
        let mid = (ok + too_big) / 2;
        if model.scratch_bytes(mid) == 0 {
            ok = mid;
        } else {
            too_big = mid;
        }
    }
    let rows = balanced(full.0.min(ok));
    (rows, (ok / rows).clamp(1, full.1))
}

/// T stochastic passes over `x` ([N, ...]): returns [T, N, out] (f32, on `x`'s device).
/// Runs under `no_grad`; the deterministic prefix is computed once per input. A model with a
/// [`MemoryPlan`] is batched in chunks within the budget (on the CPU the activations of one
/// forward stay under 16 MiB even when the budget allows more: faster); one without runs one
/// pass over all inputs per forward.
pub fn mc_samples(model: &dyn StochasticModel, x: &Tensor, cfg: &McConfig) -> Tensor {
    tch::no_grad(|| {
        model.reseed(cfg.seed);
        let n = x.size()[0] as usize;
        let out_dim = model.output_dim() as i64;
        // Each forward's outputs go straight into their slice of the result: collecting them
        // and concatenating at the end held the samples twice.
        let samples = Tensor::empty(
            [cfg.samples as i64, n as i64, out_dim],
            (Kind::Float, x.device()),
        );
        let Some(plan) = model.memory_plan() else {
            let prefix = model.deterministic_prefix(x);
            repeated_passes(model, &prefix, cfg.samples, 1, &mut |done, k, y| {
                let mut slot = samples.narrow(0, done as i64, k as i64);
                slot.copy_(&y.view([k as i64, n as i64, out_dim]));
            });
            return samples;
        };
        let budget = effective_budget(plan, x.device(), cfg.memory_budget_bytes);
        let (rows, passes) = chunk_plan(plan, n, cfg.samples, budget);
        // What the plan leaves of the budget, for work shared between passes.
        let room = budget
            .saturating_sub(rows * passes * bytes_per_row(plan))
            .saturating_sub(plan.scratch_bytes(rows * passes));
        for start in (0..n).step_by(rows) {
            let len = rows.min(n - start);
            let prefix = model.deterministic_prefix(&x.narrow(0, start as i64, len as i64));
            plan.chunk_passes(&prefix, cfg.samples, passes, room, &mut |done, k, y| {
                let mut slot =
                    samples
                        .narrow(0, done as i64, k as i64)
                        .narrow(1, start as i64, len as i64);
                slot.copy_(&y.view([k as i64, len as i64, out_dim]));
            });
        }
        samples
    })
}

/// The default [`MemoryPlan::chunk_passes`]: each forward runs `forward_from_prefix_t` with
/// dropout on over the prefix repeated k times (k = `passes`, fewer in the last forward).
pub fn repeated_passes<M: StochasticModel + ?Sized>(
    model: &M,
    prefix: &Tensor,
    samples: usize,
    passes: usize,
    emit: &mut dyn FnMut(usize, usize, &Tensor),
) {
    for (done, k) in forwards(samples, passes) {
        let batch = if k == 1 {
            prefix.shallow_clone()
        } else {
            let mut rep_shape = vec![k as i64];
            rep_shape.extend(std::iter::repeat_n(1, prefix.dim()));
            prefix
                .unsqueeze(0)
                .repeat(rep_shape.as_slice())
                .flatten(0, 1)
        };
        emit(done, k, &model.forward_from_prefix_t(&batch, true));
    }
}

/// The forwards of `samples` passes run `passes` at a time: (passes before it, passes in it).
pub(crate) fn forwards(samples: usize, passes: usize) -> impl Iterator<Item = (usize, usize)> {
    let per = passes.max(1);
    (0..samples)
        .step_by(per)
        .map(move |done| (done, per.min(samples - done)))
}

/// Standard dropout (weight averaging): one deterministic pass with dropout off. [N, out].
pub fn standard_predict(model: &dyn StochasticModel, x: &Tensor) -> Tensor {
    tch::no_grad(|| model.forward_from_prefix_t(&model.deterministic_prefix(x), false))
}

/// Copies a float tensor to a Vec<f32> (row-major), for the evaluation crate. A tensor that
/// cannot be read as dense floats (a sparse layout, say) is an error, never an empty vector.
pub fn to_vec_f32(t: &Tensor) -> Result<Vec<f32>, tch::TchError> {
    let flat = t
        .f_to_kind(Kind::Float)?
        .f_to_device(tch::Device::Cpu)?
        .f_contiguous()?
        .f_view([-1])?;
    Vec::<f32>::try_from(&flat)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mlp::{Activation, InitScheme, Mlp, MlpSpec};
    use tch::nn::{self, ModuleT};

    fn model(vs: &nn::VarStore) -> Mlp {
        let spec = MlpSpec {
            input_dim: 1,
            hidden: vec![32, 32],
            output_dim: 1,
            activation: Activation::Relu,
            dropout: 0.3,
            input_dropout: 0.0,
            init: InitScheme::CaffeXavier,
            first_layer: None,
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
    fn prefix_reuse_gives_the_same_samples_as_plain_forward_passes() {
        let vs = nn::VarStore::new(Device::Cpu);
        let m = model(&vs);
        let x = Tensor::linspace(-1.0, 1.0, 20, (Kind::Float, Device::Cpu)).view([20, 1]);
        let t = 6;
        // One pass per forward over all rows: the same mask calls as a plain loop.
        let per_row = 32 * 4 * 4;
        let budget = 20 * per_row;
        assert_eq!(chunk_plan(&m, 20, t, budget), (20, 1));
        let cfg = McConfig {
            samples: t,
            memory_budget_bytes: budget,
            seed: 5,
        };
        let fast = mc_samples(&m, &x, &cfg);
        m.reseed(5);
        let plain: Vec<Tensor> = (0..t).map(|_| m.forward_t(&x, true)).collect();
        let plain = Tensor::stack(&plain, 0);
        assert!(fast.equal(&plain), "prefix reuse changed the samples");
        assert!(!fast.requires_grad(), "MC samples must not track gradients");
    }

    /// An `Mlp` seen through the predictive interface alone (no memory plan).
    #[derive(Debug)]
    struct Unplanned(Mlp);

    impl tch::nn::ModuleT for Unplanned {
        fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
            self.0.forward_t(xs, train)
        }
    }

    impl StochasticModel for Unplanned {
        fn deterministic_prefix(&self, xs: &Tensor) -> Tensor {
            self.0.deterministic_prefix(xs)
        }
        fn forward_from_prefix_t(&self, prefix: &Tensor, train: bool) -> Tensor {
            self.0.forward_from_prefix_t(prefix, train)
        }
        fn reseed(&self, seed: u64) {
            self.0.reseed(seed)
        }
        fn output_dim(&self) -> usize {
            self.0.output_dim()
        }
    }

    #[test]
    fn a_model_without_a_memory_plan_runs_one_pass_per_forward() {
        let vs = nn::VarStore::new(Device::Cpu);
        let m = Unplanned(model(&vs));
        assert!(m.memory_plan().is_none());
        let x = Tensor::linspace(-1.0, 1.0, 20, (Kind::Float, Device::Cpu)).view([20, 1]);
        let cfg = McConfig {
            samples: 5,
            memory_budget_bytes: 1 << 30,
            seed: 5,
        };
        let got = mc_samples(&m, &x, &cfg);
        m.reseed(5);
        let plain: Vec<Tensor> = (0..5).map(|_| m.forward_t(&x, true)).collect();
        assert!(got.equal(&Tensor::stack(&plain, 0)));
    }

    #[test]
    fn shared_first_product_samples_match_the_plain_passes() {
        // Wide enough and a low enough rate for the shared first product: a budget with room
        // for it gives the plain passes' samples up to rounding; one without runs the plain
        // passes themselves.
        let vs = nn::VarStore::new(Device::Cpu);
        let spec = MlpSpec {
            input_dim: 1,
            hidden: vec![128, 128, 128],
            output_dim: 1,
            activation: Activation::Relu,
            dropout: 0.1,
            input_dropout: 0.0,
            init: InitScheme::CaffeXavier,
            first_layer: None,
        };
        let m = Mlp::new(&vs.root(), &spec, 4);
        assert!(m.sharing_bytes() > 0);
        let x = Tensor::linspace(-2.0, 2.0, 30, (Kind::Float, Device::Cpu)).view([30, 1]);
        let t = 12;
        for (budget, shared) in [(1 << 30, true), (100 << 10, false)] {
            let cfg = McConfig {
                samples: t,
                memory_budget_bytes: budget,
                seed: 3,
            };
            let fast = mc_samples(&m, &x, &cfg);
            // The same plan, every pass through the plain matmuls.
            let (rows, passes) = chunk_plan(&m, 30, t, effective_budget(&m, Device::Cpu, budget));
            assert_eq!(rows, 30, "one chunk");
            m.reseed(3);
            let mut outs = Vec::new();
            tch::no_grad(|| {
                let prefix = m.deterministic_prefix(&x);
                repeated_passes(&m, &prefix, t, passes, &mut |_, k, y| {
                    outs.push(y.view([k as i64, 30, 1]))
                });
            });
            let plain = Tensor::cat(&outs, 0);
            let diff = f64::try_from((&fast - &plain).abs().max()).unwrap();
            if shared {
                assert!(diff <= 1e-5, "budget {budget}: max difference {diff}");
                // Another summation order: some of the 360 samples differ in the last bits,
                // which shows the shared product ran.
                assert!(!fast.equal(&plain), "budget {budget}: the plain passes ran");
            } else {
                assert!(fast.equal(&plain), "budget {budget}: max difference {diff}");
            }
        }
    }

    #[test]
    fn cpu_chunks_are_capped_and_other_devices_keep_the_budget() {
        let vs = nn::VarStore::new(Device::Cpu);
        let co2 = Mlp::new(&vs.root(), &MlpSpec::paper_co2(), 1);
        // oneDNN's copy of a 1024 x 1024 weight, where this libtorch has oneDNN.
        let scratch = co2.scratch_bytes(usize::MAX);
        assert!(scratch == 0 || scratch == 4 << 20, "{scratch}");
        // The transposed 1024 x 1024 weights and the kernel's buffers, to share the first
        // hidden product between passes.
        let sharing = co2.sharing_bytes();
        assert!(sharing > 4 << 20 && sharing < 6 << 20, "{sharing}");
        let cap = CPU_CHUNK_BYTES + scratch + sharing;
        assert_eq!(effective_budget(&co2, Device::Cpu, usize::MAX), cap);
        assert_eq!(effective_budget(&co2, Device::Cpu, 1000), 1000);
        assert_eq!(
            effective_budget(&co2, Device::Cuda(0), usize::MAX),
            usize::MAX
        );
        // The paper's CO2 net (widest layer 1024) gets about a thousand rows per forward:
        // 16 MiB / (4 x 1024 x 4 B) = 1024 row-passes, with the scratch beside them.
        let budget = effective_budget(&co2, Device::Cpu, 1 << 30);
        assert_eq!(chunk_plan(&co2, 1000, 100, budget), (1000, 1));
        assert_eq!(chunk_plan(&co2, 100, 100, budget), (100, 10));
        assert_eq!(chunk_plan(&co2, 5000, 100, budget), (1000, 1));
        if scratch > 0 {
            // A 16 MiB budget must hold the sharing bytes and the scratch too: 16 MiB less
            // about 4.8 MiB less 4 MiB leave room for 460 row-passes, three equal chunks.
            assert_eq!(chunk_plan(&co2, 1000, 100, 16 << 20), (334, 1));
        }
        // 256 rows fit 4 MiB: four chunks of 250, under oneDNN's threshold, so no scratch;
        // too small a budget to keep the sharing bytes out of the plan.
        assert_eq!(chunk_plan(&co2, 1000, 100, 4 << 20), (250, 1));
    }

    /// A model whose forwards of `threshold` rows or more hold `scratch` bytes: the plan keeps
    /// activations (4 x widest f32 per row) plus scratch within the budget.
    #[derive(Debug)]
    struct Scratchy {
        threshold: usize,
        scratch: usize,
    }

    impl tch::nn::ModuleT for Scratchy {
        fn forward_t(&self, xs: &Tensor, _train: bool) -> Tensor {
            xs.shallow_clone()
        }
    }

    impl StochasticModel for Scratchy {
        fn deterministic_prefix(&self, xs: &Tensor) -> Tensor {
            xs.shallow_clone()
        }
        fn forward_from_prefix_t(&self, prefix: &Tensor, _train: bool) -> Tensor {
            prefix.shallow_clone()
        }
        fn reseed(&self, _seed: u64) {}
        fn output_dim(&self) -> usize {
            1
        }
        fn memory_plan(&self) -> Option<&dyn MemoryPlan> {
            Some(self)
        }
    }

    impl MemoryPlan for Scratchy {
        fn widest_activation(&self) -> usize {
            64
        }
        fn scratch_bytes(&self, rows: usize) -> usize {
            if rows >= self.threshold {
                self.scratch
            } else {
                0
            }
        }
    }

    #[test]
    fn plans_leave_room_for_scratch_or_stay_below_it() {
        let m = Scratchy {
            threshold: 100,
            scratch: 50 << 10,
        };
        let kib = 1 << 10; // bytes per row: 64 units x 4 copies x 4 B
                           // (inputs, passes, budget) -> plan
        let cases = [
            ((10_000, 10, 1000 * kib), (910, 1)), // scratch off the top, 11 equal chunks
            ((10_000, 10, 120 * kib), (99, 1)),   // what is left is too few: stay below
            ((10_000, 10, 40 * kib), (40, 1)),    // small enough for no scratch at all
            ((250, 1, 60 * kib), (50, 1)),        // five equal chunks, not 60 x 4 + 10
            ((30, 10, 1000 * kib), (30, 10)),     // passes batched, scratch fits
            ((30, 10, 150 * kib), (30, 3)),       // 99 row-passes at most without scratch
        ];
        for ((n, t, budget), want) in cases {
            let (rows, passes) = chunk_plan(&m, n, t, budget);
            assert_eq!((rows, passes), want, "n {n} T {t} budget {budget}");
            let used = rows * passes * kib + m.scratch_bytes(rows * passes);
            assert!(used <= budget, "{used} bytes over a budget of {budget}");
        }
    }

    #[test]
    fn standard_prediction_is_deterministic() {
        let vs = nn::VarStore::new(Device::Cpu);
        let m = model(&vs);
        let x = Tensor::linspace(-1.0, 1.0, 7, (Kind::Float, Device::Cpu)).view([7, 1]);
        assert!(standard_predict(&m, &x).equal(&standard_predict(&m, &x)));
        assert_eq!(to_vec_f32(&standard_predict(&m, &x)).unwrap().len(), 7);
    }

    #[test]
    fn to_vec_f32_reports_a_tensor_it_cannot_read() {
        let sparse = Tensor::eye(3, (Kind::Float, Device::Cpu)).to_sparse_sparse_dim(2);
        assert!(to_vec_f32(&sparse).is_err());
        let ints = Tensor::from_slice(&[1i64, 2, 3]);
        assert_eq!(to_vec_f32(&ints).unwrap(), vec![1.0, 2.0, 3.0]);
    }
}
