//! Networks for MC dropout (MLP, LeNet, the active-learning CNN), seeded dropout, batched MC prediction, and the
//! exact GP baseline.
pub mod cnn;
pub mod dropout;
pub mod gp;
mod inplace;
pub mod lenet;
pub mod linear;
pub mod mc;
pub mod mlp;
pub mod pool;
pub mod rng;
mod shared_product;
pub mod stacked;

use tch::Tensor;

/// A network that predicts by stochastic forward passes: MC dropout's masks, or any other
/// randomness a method draws per pass. This is all [`mc::mc_samples`] needs; how the passes
/// are batched within a memory budget is the separate, optional [`MemoryPlan`].
///
/// `forward_t(x, train)` of `tch::nn::ModuleT` is `forward_from_prefix_t(deterministic_prefix(x),
/// train)`; the split lets MC prediction compute the layers before the first stochastic one
/// once per input instead of once per pass.
pub trait StochasticModel: tch::nn::ModuleT {
    /// Layers before the first stochastic one (identity when it comes first).
    fn deterministic_prefix(&self, xs: &Tensor) -> Tensor;
    /// The rest of the net, stochastic when `train` is true.
    fn forward_from_prefix_t(&self, prefix: &Tensor, train: bool) -> Tensor;
    /// Restart every random stream of the passes (dropout masks) from `seed`.
    fn reseed(&self, seed: u64);
    /// Number of outputs per input.
    fn output_dim(&self) -> usize;
    /// How its passes are batched within a memory budget; `None` (the default): one pass over
    /// all inputs per forward.
    fn memory_plan(&self) -> Option<&dyn MemoryPlan> {
        None
    }
    /// Its dropout layers with a fixed configured rate, for a dropout warm-up during training
    /// (`mcd_trainer::DropoutWarmup`); empty (the default) when it has none to lower.
    fn dropout_layers(&self) -> Vec<&dropout::Dropout> {
        Vec::new()
    }
}

/// Memory planning of MC prediction for a [`StochasticModel`] that sizes its chunks: what a
/// forward holds, and work it shares between the passes over a chunk. A model need not
/// implement it to be predicted with.
pub trait MemoryPlan: StochasticModel {
    /// Widest activation (units per input row), to size chunks.
    fn widest_activation(&self) -> usize;
    /// Bytes a forward of `rows` input rows holds beside its activations (oneDNN's copy of a
    /// layer's weights, see [`linear`]), for the memory plan.
    fn scratch_bytes(&self, rows: usize) -> usize {
        let _ = rows;
        0
    }
    /// Bytes [`MemoryPlan::chunk_passes`] needs beside the activations and the scratch to
    /// share work between the passes over a chunk (0: it shares nothing).
    fn sharing_bytes(&self) -> usize {
        0
    }
    /// All `samples` stochastic passes over one chunk's prefix, `passes` per forward: gives
    /// `emit` each forward's outputs ([k * rows, out], pass-major) with the number of passes
    /// before them and k. `room` is what the memory budget leaves beside the planned
    /// activations and scratch: a model shares work between the passes only if
    /// [`MemoryPlan::sharing_bytes`] fit in it. By default each forward runs
    /// `forward_from_prefix_t` on the prefix repeated k times ([`mc::repeated_passes`]).
    fn chunk_passes(
        &self,
        prefix: &Tensor,
        samples: usize,
        passes: usize,
        room: usize,
        emit: &mut dyn FnMut(usize, usize, &Tensor),
    ) {
        let _ = room;
        mc::repeated_passes(self, prefix, samples, passes, emit);
    }
}
