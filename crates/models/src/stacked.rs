//! Many small MLPs of one shape trained and evaluated as one batched model.
//!
//! Why: a 1 x 50 MLP on a batch of 128 rows costs microseconds of arithmetic per operation but
//! tens of microseconds of per-operation overhead, so the UCI grid (12 settings x 20 splits)
//! run one net at a time is dominated by overhead. Stacking M nets puts their weights in
//! `[M, in, out]` tensors and every layer becomes one batched matmul over all members.
//!
//! Members are independent: member m's initial weights and dropout masks are those of
//! `Mlp::new(spec_m, seed_m)` alone (same generator, same order), and nothing in a member's
//! forward or backward pass reads another member's rows, so a member trained in a stack follows
//! the same trajectory as trained alone (tested in `mcd-trainer`).

use tch::Tensor;

use crate::dropout::{mask_tensor, mask_threads, Dropout, PARALLEL_MIN_ELEMENTS};
use crate::mlp::{Activation, MlpInit, MlpSpec};

/// One member of a stack: its drop rates and seed (shape and init come from the shared spec).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Member {
    /// Drop probability after the hidden non-linearities.
    pub dropout: f64,
    /// Drop probability on the input (0: none).
    pub input_dropout: f64,
    /// Fixes initial weights and masks, exactly as `Mlp::new(.., seed)`.
    pub seed: u64,
}

/// Dropout of one layer position across all members: member m's mask fills its slice.
#[derive(Debug)]
struct StackedDropout {
    /// None for a member that does not drop at this position.
    members: Vec<Option<Dropout>>,
}

impl StackedDropout {
    fn new(members: Vec<Option<Dropout>>) -> Self {
        let members = members
            .into_iter()
            .map(|d| d.filter(Dropout::is_active))
            .collect();
        Self { members }
    }

    /// `xs` is `[M, rows, width]`; identity when `train` is false or nobody drops. Every
    /// `rows_per_call` rows of a member draw their mask as one call of its stream (0: all rows
    /// in one call, as `Dropout::forward` on the member's rows alone).
    fn forward(&self, xs: &Tensor, train: bool, rows_per_call: usize) -> Tensor {
        if !train || self.members.iter().all(Option::is_none) {
            return xs.shallow_clone();
        }
        let n = xs.numel();
        let per = n / self.members.len();
        let threads = if n < PARALLEL_MIN_ELEMENTS {
            1
        } else {
            mask_threads()
        };
        let width = xs.size().last().copied().unwrap_or(1).max(1) as usize;
        let call_len = match rows_per_call {
            0 => per.max(1),
            r => r * width,
        };
        let fill = |d: &Option<Dropout>, part: &mut [f32], threads: usize| match d {
            Some(d) => part
                .chunks_mut(call_len)
                .for_each(|call| d.fill_next(call, threads)),
            None => part.fill(1.0),
        };
        let mask = mask_tensor(n, |buf| {
            if threads > 1 && self.members.len() >= threads {
                // Enough members to keep every thread busy with whole members.
                let group = self.members.len().div_ceil(threads);
                rayon::scope(|s| {
                    for (ds, parts) in self.members.chunks(group).zip(buf.chunks_mut(group * per)) {
                        s.spawn(move |_| {
                            for (d, part) in ds.iter().zip(parts.chunks_mut(per)) {
                                fill(d, part, 1);
                            }
                        });
                    }
                });
            } else {
                for (d, part) in self.members.iter().zip(buf.chunks_mut(per)) {
                    fill(d, part, threads);
                }
            }
        });
        let mask = mask
            .view(xs.size().as_slice())
            .to_device(xs.device())
            .to_kind(xs.kind());
        xs * mask
    }

    fn reseed(&self, seeds: &[u64]) {
        for (d, &s) in self.members.iter().zip(seeds) {
            if let Some(d) = d {
                d.reseed(s);
            }
        }
    }
}

/// M MLPs of one shape: `[input dropout] -> (Linear -> act -> dropout) x depth -> Linear`, each
/// with its own rates and seed. Inputs are `[M, rows, input_dim]`, outputs `[M, rows, output_dim]`.
#[derive(Debug)]
pub struct StackedMlp {
    /// (weight [M, in, out], bias [M, 1, out]) per layer; leaves that require grad.
    layers: Vec<(Tensor, Tensor)>,
    activation: Activation,
    input_dropout: StackedDropout,
    hidden_dropout: Vec<StackedDropout>,
    members: Vec<Member>,
    spec: MlpSpec,
}

impl StackedMlp {
    /// Builds the stack; `spec`'s drop rates are ignored (each member brings its own).
    pub fn new(spec: &MlpSpec, members: &[Member]) -> Self {
        assert!(!members.is_empty(), "a stack needs at least one member");
        let inits: Vec<MlpInit> = members
            .iter()
            .map(|m| {
                let own = MlpSpec {
                    dropout: m.dropout,
                    input_dropout: m.input_dropout,
                    ..spec.clone()
                };
                MlpInit::new(&own, m.seed)
            })
            .collect();
        let depth = spec.hidden.len() + 1;
        let layers = (0..depth)
            .map(|l| {
                let ws: Vec<Tensor> = inits.iter().map(|i| i.layers[l].0.tr()).collect();
                let bs: Vec<Tensor> = inits.iter().map(|i| i.layers[l].1.unsqueeze(0)).collect();
                (
                    Tensor::stack(&ws, 0).set_requires_grad(true),
                    Tensor::stack(&bs, 0).set_requires_grad(true),
                )
            })
            .collect();
        let mut inits = inits;
        let input_dropout =
            StackedDropout::new(inits.iter_mut().map(|i| i.input_dropout.take()).collect());
        let hidden_dropout = (0..spec.hidden.len())
            .map(|l| {
                StackedDropout::new(
                    inits
                        .iter_mut()
                        .map(|i| {
                            Some(std::mem::replace(
                                &mut i.hidden_dropout[l],
                                Dropout::new(0.0, 0),
                            ))
                        })
                        .collect(),
                )
            })
            .collect();
        Self {
            layers,
            activation: spec.activation,
            input_dropout,
            hidden_dropout,
            members: members.to_vec(),
            spec: spec.clone(),
        }
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Always false (a stack has at least one member).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The members, in stack order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The shared shape.
    pub fn spec(&self) -> &MlpSpec {
        &self.spec
    }

    /// (weight, bias) tensors per layer, for the optimiser.
    pub fn layers(&self) -> &[(Tensor, Tensor)] {
        &self.layers
    }

    /// Member m's layers as `Mlp` lays them out: (weight [out, in], bias [out]).
    pub fn member_layers(&self, m: usize) -> Vec<(Tensor, Tensor)> {
        self.layers
            .iter()
            .map(|(w, b)| {
                (
                    w.get(m as i64).tr().detach(),
                    b.get(m as i64).squeeze_dim(0).detach(),
                )
            })
            .collect()
    }

    /// Forward pass of every member on its own rows; dropout on when `train` is true.
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.forward_calls(xs, train, 0)
    }

    /// [`StackedMlp::forward_t`] with one mask call per `rows_per_call` rows (0: one per batch).
    fn forward_calls(&self, xs: &Tensor, train: bool, rows_per_call: usize) -> Tensor {
        let mut h = self.input_dropout.forward(xs, train, rows_per_call);
        let last = self.layers.len() - 1;
        for (i, (w, b)) in self.layers.iter().enumerate() {
            h = b.baddbmm(&h, w, 1.0, 1.0);
            if i == last {
                break;
            }
            h = self.activation.apply(&h);
            h = self.hidden_dropout[i].forward(&h, train, rows_per_call);
        }
        h
    }

    /// Restart every member's mask streams; member m's streams depend on `seeds[m]` only.
    pub fn reseed_masks(&self, seeds: &[u64]) {
        assert_eq!(seeds.len(), self.len(), "one seed per member");
        let mut rngs: Vec<crate::rng::SeededRng> = seeds
            .iter()
            .map(|&s| crate::rng::SeededRng::new(s))
            .collect();
        // Same derivation order as `Mlp::reseed_masks`: input layer first, then hidden layers.
        let has_input: Vec<bool> = self
            .input_dropout
            .members
            .iter()
            .map(Option::is_some)
            .collect();
        let firsts: Vec<u64> = rngs
            .iter_mut()
            .zip(&has_input)
            .map(|(r, &h)| if h { r.fork() } else { 0 })
            .collect();
        self.input_dropout.reseed(&firsts);
        for d in &self.hidden_dropout {
            let s: Vec<u64> = rngs.iter_mut().map(|r| r.fork()).collect();
            d.reseed(&s);
        }
    }

    /// Widest activation per input row (units), to size prediction chunks.
    pub fn widest_activation(&self) -> usize {
        self.spec
            .hidden
            .iter()
            .copied()
            .chain([self.spec.input_dim, self.spec.output_dim])
            .max()
            .unwrap_or(1)
    }

    /// Runs `passes` stochastic passes of every member over its own `n` inputs (`xs` is
    /// `[M, n, d]`) in chunks of passes whose activations fit in `budget_bytes`, under
    /// `no_grad`; `on_chunk` receives each chunk's outputs as `[M, passes_in_chunk, n, out]`.
    /// Pass t of member m uses call t (from where the member's streams stand) of each of its
    /// mask streams, so the passes are the same whatever the budget or the other members.
    pub fn mc_chunks<E>(
        &self,
        xs: &Tensor,
        passes: usize,
        budget_bytes: usize,
        mut on_chunk: impl FnMut(&Tensor) -> Result<(), E>,
    ) -> Result<(), E> {
        let size = xs.size();
        let (m, n, d) = (size[0], size[1], size[2]);
        // Per pass and member: the input plus about four f32 copies of the widest activation
        // (input, output, mask tensor, mask buffer), as `mc::chunk_plan` counts.
        let per_pass = (n as usize) * (4 * self.widest_activation() + d as usize) * 4 * m as usize;
        let chunk = (budget_bytes / per_pass.max(1)).clamp(1, passes.max(1));
        let mut done = 0;
        tch::no_grad(|| {
            while done < passes {
                let tc = chunk.min(passes - done) as i64;
                let rep = xs
                    .unsqueeze(1)
                    .expand([m, tc, n, d], false)
                    .reshape([m, tc * n, d]);
                // One mask call per pass, so the passes do not depend on the chunking.
                let out = self.forward_calls(&rep, true, n as usize);
                let k = out.size()[2];
                on_chunk(&out.view([m, tc, n, k]))?;
                done += tc as usize;
            }
            Ok(())
        })
    }

    /// Number of parameters of one member (weights and biases).
    pub fn parameters_per_member(&self) -> usize {
        self.layers
            .iter()
            .map(|(w, b)| (w.numel() + b.numel()) / self.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mlp::{InitScheme, Mlp};
    use tch::nn::{self, ModuleT};
    use tch::{Device, Kind};

    fn spec() -> MlpSpec {
        MlpSpec {
            input_dim: 3,
            hidden: vec![20],
            output_dim: 1,
            activation: Activation::Relu,
            dropout: 0.0,
            input_dropout: 0.0,
            init: InitScheme::GlorotUniform,
        }
    }

    fn members() -> Vec<Member> {
        [(0.05, 1u64), (0.1, 2), (0.0, 3), (0.5, 4)]
            .iter()
            .map(|&(p, seed)| Member {
                dropout: p,
                input_dropout: p,
                seed,
            })
            .collect()
    }

    /// Each member's forward pass, masks included, equals the same net built alone.
    #[test]
    fn members_match_nets_built_alone() {
        let ms = members();
        let stack = StackedMlp::new(&spec(), &ms);
        let x = Tensor::randn([ms.len() as i64, 7, 3], (Kind::Float, Device::Cpu));
        let y = tch::no_grad(|| stack.forward_t(&x, true));
        let y_eval = tch::no_grad(|| stack.forward_t(&x, false));
        for (i, m) in ms.iter().enumerate() {
            let vs = nn::VarStore::new(Device::Cpu);
            let own = MlpSpec {
                dropout: m.dropout,
                input_dropout: m.input_dropout,
                ..spec()
            };
            let net = Mlp::new(&vs.root(), &own, m.seed);
            let xi = x.get(i as i64);
            let alone = tch::no_grad(|| net.forward_t(&xi, true));
            assert!(
                alone.allclose(&y.get(i as i64), 1e-5, 1e-6, false),
                "member {i}"
            );
            let alone_eval = tch::no_grad(|| net.forward_t(&xi, false));
            assert!(alone_eval.allclose(&y_eval.get(i as i64), 1e-5, 1e-6, false));
        }
        // The p = 0.5 member drops, so train and eval outputs differ; p = 0 does not.
        assert!(!y.get(3).allclose(&y_eval.get(3), 1e-6, 1e-6, false));
        assert!(y.get(2).allclose(&y_eval.get(2), 1e-6, 1e-6, false));
        assert_eq!(stack.parameters_per_member(), 3 * 20 + 20 + 20 + 1);
    }

    #[test]
    fn mc_chunks_cover_all_passes_and_reseeding_repeats_them() {
        let ms = members();
        let stack = StackedMlp::new(&spec(), &ms);
        let x = Tensor::randn([4, 5, 3], (Kind::Float, Device::Cpu));
        let collect = |budget: usize| {
            stack.reseed_masks(&[9, 8, 7, 6]);
            let mut parts = Vec::new();
            stack
                .mc_chunks(&x, 10, budget, |c| {
                    parts.push(c.shallow_clone());
                    Ok::<(), ()>(())
                })
                .unwrap();
            parts
        };
        let small = collect(1);
        assert_eq!(small.len(), 10, "a tiny budget gives one pass per chunk");
        let big = collect(1 << 30);
        assert_eq!(big.len(), 1);
        assert_eq!(big[0].size(), [4, 10, 5, 1]);
        assert!(
            collect(1 << 30)[0].equal(&big[0]),
            "reseeding repeats the passes"
        );
    }
}
