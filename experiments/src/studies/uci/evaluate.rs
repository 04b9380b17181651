//! MC evaluation of a trained stack: each member's passes reduced into its `McStream`, through
//! libtorch's batched forward or the fused one.

use anyhow::{Context as _, Result};
use mcd_datasets::uci::UciSplit;
use mcd_evaluation::regression::{Affine, ChunkSummary, McStream};
use mcd_evaluation::{EvalError, SampleMatrix};
use mcd_models::mc::to_vec_f32;
use mcd_models::rng::splitmix64;
use mcd_models::stacked::StackedMlp;
use tch::{Device, Kind, Tensor};

use super::Protocol;

/// MC evaluation of every member on its set's test part: a stream of T passes (original units,
/// the member's tau) and the standard-dropout predictions (original units).
pub(super) fn evaluate(
    stack: &StackedMlp,
    sets: &[&UciSplit],
    member_set: &[usize],
    taus: &[f64],
    passes: usize,
    proto: &Protocol,
    device: Device,
) -> Result<Vec<(McStream, Vec<f64>)>> {
    let m = member_set.len() as i64;
    // Each member's passes start from its own seed, whatever the stack it is in.
    let seeds: Vec<u64> = stack
        .members()
        .iter()
        .map(|mb| splitmix64(mb.seed ^ 0x0E_7A15))
        .collect();
    stack.reseed_masks(&seeds);
    let x = Tensor::stack(
        &member_set
            .iter()
            .map(|&s| sets[s].x_test.shallow_clone())
            .collect::<Vec<_>>(),
        0,
    )
    .to_device(device);
    let n = x.size()[1];
    let per_member = |f: &dyn Fn(&UciSplit) -> f64| {
        Tensor::from_slice(&member_set.iter().map(|&s| f(sets[s])).collect::<Vec<f64>>())
            .to_device(device)
            .view([m, 1, 1, 1])
    };
    let (y_std, y_mean) = (per_member(&|s| s.y_std), per_member(&|s| s.y_mean));
    let tau = Tensor::from_slice(taus)
        .to_device(device)
        .view([m, 1, 1, 1]);
    let targets: Vec<Vec<f64>> = member_set
        .iter()
        .map(|&s| {
            let y = to_vec_f32(&sets[s].y_test).context("reading a split's test targets")?;
            Ok(y.iter()
                .map(|&v| f64::from(v) * sets[s].y_std + sets[s].y_mean)
                .collect())
        })
        .collect::<Result<_>>()?;
    let y_t = Tensor::stack(
        &targets
            .iter()
            .map(|y| Tensor::from_slice(y))
            .collect::<Vec<_>>(),
        0,
    )
    .to_device(device)
    .view([m, 1, n, 1]);
    let mut streams = targets
        .iter()
        .zip(taus)
        .map(|(y, &t)| McStream::new(y.clone(), t))
        .collect::<Result<Vec<_>, _>>()?;
    if proto.fused {
        let scales: Vec<(f64, f64)> = member_set
            .iter()
            .map(|&s| (sets[s].y_std, sets[s].y_mean))
            .collect();
        return evaluate_fused(stack, &x, streams, &scales, passes);
    }
    let to_vec = |t: Tensor| -> Result<Vec<f64>> {
        Ok(Vec::<f64>::try_from(
            t.to_device(Device::Cpu).contiguous().view([-1]),
        )?)
    };
    stack.mc_chunks(&x, passes, proto.budget_bytes, |row0, out| -> Result<()> {
        merge_chunk(&mut streams, out, row0, &y_t, &y_std, &y_mean, &tau)
    })?;
    let standard = tch::no_grad(|| stack.forward_t(&x, false)).to_kind(Kind::Double)
        * y_std.view([m, 1, 1])
        + y_mean.view([m, 1, 1]);
    let standard = to_vec(standard)?;
    let n = n as usize;
    Ok(streams
        .into_iter()
        .enumerate()
        .map(|(i, s)| (s, standard[i * n..(i + 1) * n].to_vec()))
        .collect())
}

/// [`evaluate`] through `mcd_trainer::fused`: each member's passes reduced on its own thread
/// into its stream, straight from the fused forward's chunks. `scales` are each member's
/// (y_std, y_mean).
fn evaluate_fused(
    stack: &StackedMlp,
    x: &Tensor,
    streams: Vec<McStream>,
    scales: &[(f64, f64)],
    passes: usize,
) -> Result<Vec<(McStream, Vec<f64>)>> {
    use mcd_trainer::fused::mc::{mc_passes, standard, McChunk, McError};
    let n = x.size()[1] as usize;
    let xv = to_vec_f32(&x.to_device(Device::Cpu)).context("reading the test inputs")?;
    let mut states: Vec<(McStream, (f64, f64))> =
        streams.into_iter().zip(scales.iter().copied()).collect();
    let reduce = |state: &mut (McStream, (f64, f64)), c: McChunk| -> Result<(), EvalError> {
        let (stream, (sd, mean)) = state;
        let chunk = SampleMatrix::new(c.values, c.passes, c.rows)?;
        stream.update_at(c.row0, &chunk, Affine::new(*mean, *sd)?)
    };
    mc_passes(stack, &xv, n, passes, &mut states, &reduce).map_err(|e| match e {
        McError::Caller(e) => anyhow::Error::from(e),
        McError::Train(e) => anyhow::Error::from(e),
    })?;
    let plain = standard(stack, &xv, n)?;
    Ok(states
        .into_iter()
        .enumerate()
        .map(|(i, (stream, (sd, mean)))| {
            let standard = plain[i * n..(i + 1) * n]
                .iter()
                .map(|&v| f64::from(v) * sd + mean)
                .collect();
            (stream, standard)
        })
        .collect())
}

/// Merges a chunk of passes, `out` `[M, passes, rows, 1]` in standardised units over rows
/// `row0..row0 + rows`, into each member's stream (original units: `y_std`, `y_mean` and
/// `tau` `[M, 1, 1, 1]`; targets `y_t` `[M, 1, n, 1]`).
pub(super) fn merge_chunk(
    streams: &mut [McStream],
    out: &Tensor,
    row0: usize,
    y_t: &Tensor,
    y_std: &Tensor,
    y_mean: &Tensor,
    tau: &Tensor,
) -> Result<()> {
    let to_vec = |t: Tensor| -> Result<Vec<f64>> {
        Ok(Vec::<f64>::try_from(
            t.to_device(Device::Cpu).contiguous().view([-1]),
        )?)
    };
    let o = out.to_kind(Kind::Double) * y_std + y_mean; // [M, passes, rows, 1]
    let (tc, rows) = (o.size()[1] as usize, o.size()[2] as usize);
    let y = y_t.narrow(2, row0 as i64, rows as i64);
    let mean = o.mean_dim(1, true, Kind::Double);
    let m2 = (&o - &mean)
        .square()
        .sum_dim_intlist(1, false, Kind::Double);
    let lse = ((&y - &o).square() * (tau * -0.5)).logsumexp(1, false);
    let (mean, m2, lse) = (to_vec(mean)?, to_vec(m2)?, to_vec(lse)?);
    for (i, s) in streams.iter_mut().enumerate() {
        let r = i * rows..(i + 1) * rows;
        s.merge(ChunkSummary {
            passes: tc,
            offset: row0,
            mean: &mean[r.clone()],
            m2: &m2[r.clone()],
            lse: &lse[r],
        })?;
    }
    Ok(())
}
