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
use crate::mc::activation_bytes_per_row;
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

/// Rows a chunk of MC passes covers (a multiple of 4, so a row range starts a mask range on a
/// hash boundary). Fixed, so that how the passes are drawn depends on nothing else.
pub const MC_ROWS: usize = 256;

/// Which mask calls a forward draws.
#[derive(Debug, Clone, Copy)]
enum Calls {
    /// Each member's next call covers all its rows (training; as `Dropout::forward` alone).
    Next,
    /// MC passes: the rows are `passes` passes over rows `row0..row0 + rows` of `n_rows`
    /// inputs; pass `first_pass + j` is call (stream position at the start) + `first_pass + j`
    /// over all `n_rows`, of which this draws the part of the chunk's rows.
    Passes {
        first_pass: u64,
        passes: usize,
        row0: usize,
        rows: usize,
    },
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

    /// Each member's stream position (None for a member that does not drop here).
    fn positions(&self) -> Vec<Option<u64>> {
        self.members
            .iter()
            .map(|d| d.as_ref().map(Dropout::next_call))
            .collect()
    }

    /// `xs` is `[M, rows, width]`; identity when `train` is false or nobody drops. `start`
    /// holds the stream positions that `Calls::Passes` counts from.
    fn forward(&self, xs: &Tensor, train: bool, calls: Calls, start: &[Option<u64>]) -> Tensor {
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
        let fill = |m: usize, part: &mut [f32], threads: usize| match (&self.members[m], calls) {
            (None, _) => part.fill(1.0),
            (Some(d), Calls::Next) => d.fill_next(part, threads),
            (
                Some(d),
                Calls::Passes {
                    first_pass,
                    passes,
                    row0,
                    rows,
                },
            ) => {
                let base = start.get(m).copied().flatten().unwrap_or(0) + first_pass;
                for (j, pass) in part.chunks_mut(rows * width).take(passes).enumerate() {
                    d.fill_range(base + j as u64, row0 * width, pass, threads);
                }
            }
        };
        let m_total = self.members.len();
        let mask = mask_tensor(n, |buf| {
            if threads > 1 && m_total >= threads {
                // Enough members to keep every thread busy with whole members.
                let group = m_total.div_ceil(threads);
                rayon::scope(|s| {
                    for (g, parts) in buf.chunks_mut(group * per).enumerate() {
                        s.spawn(move |_| {
                            for (j, part) in parts.chunks_mut(per).enumerate() {
                                fill(g * group + j, part, 1);
                            }
                        });
                    }
                });
            } else {
                for (m, part) in buf.chunks_mut(per).enumerate() {
                    fill(m, part, threads);
                }
            }
        });
        let mask = mask
            .view(xs.size().as_slice())
            .to_device(xs.device())
            .to_kind(xs.kind());
        xs * mask
    }

    /// Moves every member's stream on by `n` calls.
    fn skip(&self, n: u64) {
        for d in self.members.iter().flatten() {
            d.skip_calls(n);
        }
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

    /// [`StackedMlp::new`] with the stacked weights and biases registered as variables of `vs`
    /// (`w<l>`, `b<l>` for layer l), so that `mcd_trainer::train`'s optimiser trains them and a
    /// `VarStore` saves and loads them. The values are those of `new`: member m is still
    /// `Mlp::new(spec_m, seed_m)`.
    pub fn new_in(vs: &tch::nn::Path, spec: &MlpSpec, members: &[Member]) -> Self {
        let mut stack = Self::new(spec, members);
        for (l, (w, b)) in stack.layers.iter_mut().enumerate() {
            *w = vs.var_copy(&format!("w{l}"), w);
            *b = vs.var_copy(&format!("b{l}"), b);
        }
        stack
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

    /// The dropout layer of `member` at `position` (0: the input, l + 1: after hidden layer l),
    /// or None where that member does not drop. A trainer that runs the members' arithmetic
    /// itself draws each member's masks from here with [`Dropout::fill_next`], in the order the
    /// batched forward draws them, so the masks are those of `forward_t`.
    pub fn dropout_of(&self, position: usize, member: usize) -> Option<&Dropout> {
        let layer = if position == 0 {
            &self.input_dropout
        } else {
            self.hidden_dropout.get(position - 1)?
        };
        layer.members.get(member)?.as_ref()
    }

    /// The activation of the hidden layers.
    pub fn activation(&self) -> Activation {
        self.activation
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
        self.forward_calls(xs, train, Calls::Next, &[])
    }

    /// [`StackedMlp::forward_t`] drawing `calls`; `start[l]` are the stream positions of
    /// dropout layer l (input layer first) that `Calls::Passes` counts from.
    fn forward_calls(
        &self,
        xs: &Tensor,
        train: bool,
        calls: Calls,
        start: &[Vec<Option<u64>>],
    ) -> Tensor {
        let at = |l: usize| start.get(l).map_or(&[][..], Vec::as_slice);
        let mut h = self.input_dropout.forward(xs, train, calls, at(0));
        let last = self.layers.len() - 1;
        for (i, (w, b)) in self.layers.iter().enumerate() {
            h = b.baddbmm(&h, w, 1.0, 1.0);
            if i == last {
                break;
            }
            h = self.activation.apply(&h);
            h = self.hidden_dropout[i].forward(&h, train, calls, at(i + 1));
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
        // Same derivation order as `Mlp::reseed`: input layer first, then hidden layers.
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
    /// `[M, n, d]`) under `no_grad`, in chunks of [`MC_ROWS`] inputs and as many passes as fit
    /// in `budget_bytes`; `on_chunk(first_row, outputs)` receives each chunk's outputs as
    /// `[M, passes_in_chunk, rows_in_chunk, out]`.
    ///
    /// Pass t of member m is call t (counted from where the member's streams stand) of each of
    /// its mask streams, drawn over all n inputs, so the passes are the same whatever the
    /// budget, the chunking or the other members; the streams then stand `passes` calls on.
    pub fn mc_chunks<E>(
        &self,
        xs: &Tensor,
        passes: usize,
        budget_bytes: usize,
        mut on_chunk: impl FnMut(usize, &Tensor) -> Result<(), E>,
    ) -> Result<(), E> {
        let size = xs.size();
        let (m, n, d) = (size[0], size[1] as usize, size[2]);
        let start: Vec<Vec<Option<u64>>> = std::iter::once(&self.input_dropout)
            .chain(&self.hidden_dropout)
            .map(StackedDropout::positions)
            .collect();
        // Per pass, member and input: the f32 input plus the activations `mc::chunk_plan` counts.
        let per_row =
            (activation_bytes_per_row(self.widest_activation()) + 4 * d as usize) * m as usize;
        let result = tch::no_grad(|| {
            for row0 in (0..n).step_by(MC_ROWS) {
                let rows = MC_ROWS.min(n - row0);
                let x = xs.narrow(1, row0 as i64, rows as i64);
                let chunk = (budget_bytes / (per_row * rows).max(1)).clamp(1, passes.max(1));
                let mut done = 0;
                while done < passes {
                    let tc = chunk.min(passes - done);
                    let rep = x
                        .unsqueeze(1)
                        .expand([m, tc as i64, rows as i64, d], false)
                        .reshape([m, (tc * rows) as i64, d]);
                    let calls = Calls::Passes {
                        first_pass: done as u64,
                        passes: tc,
                        row0,
                        rows,
                    };
                    let out = self.forward_calls(&rep, true, calls, &start);
                    let k = out.size()[2];
                    on_chunk(row0, &out.view([m, tc as i64, rows as i64, k]))?;
                    done += tc;
                }
            }
            Ok(())
        });
        for l in std::iter::once(&self.input_dropout).chain(&self.hidden_dropout) {
            l.skip(passes as u64);
        }
        result
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
            first_layer: None,
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
    fn mc_passes_depend_on_the_seed_only() {
        let ms = members();
        let stack = StackedMlp::new(&spec(), &ms);
        // More inputs than one row chunk, so passes are split over rows as well.
        let n = MC_ROWS as i64 + 44;
        let x = Tensor::randn([4, n, 3], (Kind::Float, Device::Cpu));
        // All passes as [M, T, n, 1], assembled from the chunks, and the number of chunks.
        let run = |stack: &StackedMlp, x: &Tensor, budget: usize| {
            let mut by_rows: Vec<Vec<Tensor>> = Vec::new();
            stack
                .mc_chunks(x, 10, budget, |row0, c| {
                    if row0 / MC_ROWS == by_rows.len() {
                        by_rows.push(Vec::new());
                    }
                    by_rows[row0 / MC_ROWS].push(c.shallow_clone());
                    Ok::<(), ()>(())
                })
                .unwrap();
            let chunks = by_rows.iter().map(Vec::len).sum::<usize>();
            let rows: Vec<Tensor> = by_rows.iter().map(|p| Tensor::cat(p, 1)).collect();
            (Tensor::cat(&rows, 2), chunks)
        };
        stack.reseed_masks(&[9, 8, 7, 6]);
        let (small, chunks) = run(&stack, &x, 1);
        assert_eq!(
            chunks, 20,
            "a tiny budget: one pass per chunk, two row chunks"
        );
        stack.reseed_masks(&[9, 8, 7, 6]);
        let (big, chunks) = run(&stack, &x, 1 << 30);
        assert_eq!(chunks, 2);
        assert_eq!(big.size(), [4, 10, n, 1]);
        assert!(
            small.equal(&big),
            "the passes do not depend on the chunking"
        );
        let (next, _) = run(&stack, &x, 1 << 30);
        assert!(!next.equal(&big), "the streams move on");
        // Pass t is the member's call t over all its inputs: a training-path forward of the
        // same rows, with the streams at the same place, draws the same masks as pass 0.
        stack.reseed_masks(&[9, 8, 7, 6]);
        let first = tch::no_grad(|| stack.forward_t(&x, true));
        assert!(first.allclose(&big.select(1, 0), 1e-6, 1e-6, false));
        // Nor do they depend on the other members: member 1 alone gives its passes in the stack.
        let alone = StackedMlp::new(&spec(), &ms[1..2]);
        alone.reseed_masks(&[8]);
        let (got, _) = run(&alone, &x.narrow(0, 1, 1), 1 << 30);
        assert!(got.get(0).allclose(&big.get(1), 1e-6, 1e-6, false));
    }
}
