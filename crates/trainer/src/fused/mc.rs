//! MC prediction of a stack with the fused forward: the passes `StackedMlp::mc_chunks` draws
//! (pass t of a member is call t, counted from where its streams stand, of each of its mask
//! streams over all its inputs), each member on one thread, handed over in fixed chunks so the
//! caller can reduce them (mean, spread, log-likelihood) without holding every pass.

use mcd_models::dropout::Dropout;
use mcd_models::stacked::{StackedMlp, MC_ROWS};

use super::kernel::{self, Batch, Scratch, Shape};
use super::{member_params, shape_of, workers, MAX_LAYERS};
use crate::TrainError;

/// Passes per chunk handed to the caller (fixed, so the chunking depends on nothing else).
pub const PASS_CHUNK: usize = 128;

/// One chunk of one member's passes: `values[(t * k + c) * rows + i]` is output c of pass
/// `first_pass + t` on input `row0 + i`, in the net's units.
#[derive(Debug)]
pub struct McChunk<'a> {
    pub row0: usize,
    pub rows: usize,
    pub first_pass: usize,
    pub passes: usize,
    pub outputs: usize,
    pub values: &'a [f32],
}

/// Where a member's work fails: the caller's error, or the stack's.
#[derive(Debug)]
pub enum McError<E> {
    Caller(E),
    Train(TrainError),
}

/// Runs `passes` stochastic passes of every member over its own `n` inputs (`x` is `[M, n, d]`
/// row-major) and hands member m's chunks, rows outer and passes inner, to
/// `on_chunk(&mut states[m], chunk)`; the mask streams then stand `passes` calls on, as after
/// `mc_chunks`. Members run in parallel on the run's threads; each member's chunks come in
/// order on one thread, so what the caller computes does not depend on the threading.
pub fn mc_passes<S: Send, E: Send>(
    model: &StackedMlp,
    x: &[f32],
    n: usize,
    passes: usize,
    states: &mut [S],
    on_chunk: &(dyn Fn(&mut S, McChunk) -> Result<(), E> + Sync),
) -> Result<(), McError<E>> {
    let shape = shape_of(model).map_err(McError::Train)?;
    let m = model.len();
    let d = shape.widths[0];
    check_inputs(&shape, m, x, n).map_err(McError::Train)?;
    assert_eq!(states.len(), m, "one state per member");
    let params = member_params(model, &shape).map_err(McError::Train)?;
    let positions = shape.layers();
    let start: Vec<Vec<Option<(&Dropout, u64)>>> = (0..m)
        .map(|i| {
            (0..positions)
                .map(|p| model.dropout_of(p, i).map(|dr| (dr, dr.next_call())))
                .collect()
        })
        .collect();
    let k = shape.widths[positions];
    let work = |first: usize, chunk: &mut [S]| -> Result<(), E> {
        let mut scratch = Scratch::new(&shape, MC_ROWS);
        let mut values = vec![0f32; PASS_CHUNK * k * MC_ROWS];
        let mut rows_idx = Vec::with_capacity(MC_ROWS);
        for (j, state) in chunk.iter_mut().enumerate() {
            let member = first + j;
            let xm = &x[member * n * d..(member + 1) * n * d];
            for row0 in (0..n).step_by(MC_ROWS) {
                let rows = MC_ROWS.min(n - row0);
                rows_idx.clear();
                rows_idx.extend(row0..row0 + rows);
                let mut first_pass = 0;
                while first_pass < passes {
                    let tc = PASS_CHUNK.min(passes - first_pass);
                    for t in 0..tc {
                        let mut masked = [false; MAX_LAYERS];
                        let mut kept = [None; MAX_LAYERS];
                        for (p, s) in start[member].iter().enumerate() {
                            if let Some((dr, call)) = s {
                                let width = shape.widths[p];
                                dr.fill_range(
                                    call + (first_pass + t) as u64,
                                    row0 * width,
                                    &mut scratch.masks[p][..rows * width],
                                    1,
                                );
                                masked[p] = true;
                                kept[p] = Some(dr.scale());
                            }
                        }
                        let batch = Batch {
                            x: xm,
                            y: &[],
                            rows: &rows_idx,
                            masked: &masked[..positions],
                            kept: &kept[..positions],
                        };
                        kernel::forward(&shape, &params[member], batch, &mut scratch);
                        let (out, bp) = (scratch.output(), scratch.stride());
                        for c in 0..k {
                            values[(t * k + c) * rows..(t * k + c + 1) * rows]
                                .copy_from_slice(&out[c * bp..c * bp + rows]);
                        }
                    }
                    on_chunk(
                        state,
                        McChunk {
                            row0,
                            rows,
                            first_pass,
                            passes: tc,
                            outputs: k,
                            values: &values[..tc * k * rows],
                        },
                    )?;
                    first_pass += tc;
                }
            }
        }
        Ok(())
    };
    let result = on_workers(states, &work);
    for s in start.iter().flatten().flatten() {
        s.0.skip_calls(passes as u64);
    }
    result.map_err(McError::Caller)
}

/// Every member's output without dropout on its own `n` inputs (`x` `[M, n, d]`), as
/// `[M, n, k]`.
pub fn standard(model: &StackedMlp, x: &[f32], n: usize) -> Result<Vec<f32>, TrainError> {
    let shape = shape_of(model)?;
    let m = model.len();
    let d = shape.widths[0];
    check_inputs(&shape, m, x, n)?;
    let params = member_params(model, &shape)?;
    let k = shape.widths[shape.layers()];
    let mut outs: Vec<Vec<f32>> = vec![vec![0f32; n * k]; m];
    let off = vec![false; shape.layers()];
    let none = vec![None; shape.layers()];
    let work = |first: usize, chunk: &mut [Vec<f32>]| -> Result<(), TrainError> {
        let mut scratch = Scratch::new(&shape, MC_ROWS);
        let mut rows_idx = Vec::with_capacity(MC_ROWS);
        for (j, out) in chunk.iter_mut().enumerate() {
            let member = first + j;
            let xm = &x[member * n * d..(member + 1) * n * d];
            for row0 in (0..n).step_by(MC_ROWS) {
                let rows = MC_ROWS.min(n - row0);
                rows_idx.clear();
                rows_idx.extend(row0..row0 + rows);
                let batch = Batch {
                    x: xm,
                    y: &[],
                    rows: &rows_idx,
                    masked: &off,
                    kept: &none,
                };
                kernel::forward(&shape, &params[member], batch, &mut scratch);
                let (o, bp) = (scratch.output(), scratch.stride());
                for i in 0..rows {
                    for c in 0..k {
                        out[(row0 + i) * k + c] = o[c * bp + i];
                    }
                }
            }
        }
        Ok(())
    };
    on_workers(&mut outs, &work)?;
    Ok(outs.concat())
}

fn check_inputs(shape: &Shape, m: usize, x: &[f32], n: usize) -> Result<(), TrainError> {
    if n == 0 || x.len() != m * n * shape.widths[0] {
        return Err(TrainError::Shape {
            x: vec![x.len() as i64],
            y: vec![m as i64, n as i64, shape.widths[0] as i64],
        });
    }
    Ok(())
}

/// What a worker does with its contiguous group of members (the first one's index, the group).
type Work<'a, T, E> = dyn Fn(usize, &mut [T]) -> Result<(), E> + Sync + 'a;

/// Runs `work(first_member, members)` on contiguous groups of `items`, one per thread of the
/// run (`tch::get_num_threads`); the first error in member order wins.
fn on_workers<T: Send, E: Send>(items: &mut [T], work: &Work<'_, T, E>) -> Result<(), E> {
    let threads = workers(items.len());
    if threads == 1 {
        return work(0, items);
    }
    let per = items.len().div_ceil(threads);
    let mut results: Vec<Result<(), E>> = (0..items.len().div_ceil(per)).map(|_| Ok(())).collect();
    rayon::scope(|sc| {
        for ((w, chunk), slot) in items.chunks_mut(per).enumerate().zip(results.iter_mut()) {
            sc.spawn(move |_| *slot = work(w * per, chunk));
        }
    });
    results.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcd_models::mlp::{Activation, InitScheme, MlpSpec};
    use mcd_models::stacked::Member;
    use tch::{Device, Kind, Tensor};

    fn stack() -> StackedMlp {
        let spec = MlpSpec {
            input_dim: 3,
            hidden: vec![20, 6],
            output_dim: 1,
            activation: Activation::Relu,
            dropout: 0.0,
            input_dropout: 0.0,
            init: InitScheme::GlorotUniform,
            first_layer: None,
        };
        let members: Vec<Member> = [(0.05, 1u64), (0.3, 2), (0.0, 3)]
            .iter()
            .map(|&(p, seed)| Member {
                dropout: p,
                input_dropout: p,
                seed,
            })
            .collect();
        StackedMlp::new(&spec, &members)
    }

    /// The fused passes are `mc_chunks`'s passes (same masks, to rounding), over more rows
    /// than one chunk and more passes than one chunk; the streams end where `mc_chunks` leaves
    /// them; the standard forward is `forward_t(x, false)`.
    #[test]
    fn fused_passes_are_the_stacks_passes() {
        let n = MC_ROWS + 37;
        let passes = PASS_CHUNK + 5;
        let x = Tensor::randn([3, n as i64, 3], (Kind::Float, Device::Cpu));
        let xv = Vec::<f32>::try_from(x.contiguous().view([-1])).unwrap();
        let (a, b) = (stack(), stack());
        a.reseed_masks(&[5, 6, 7]);
        b.reseed_masks(&[5, 6, 7]);
        // [M, passes, n] from the libtorch path.
        let mut want = vec![0f32; 3 * passes * n];
        a.mc_chunks(&x, passes, 1 << 30, |row0, out| {
            let s = out.size();
            let (tc, rows) = (s[1] as usize, s[2] as usize);
            let v = Vec::<f32>::try_from(out.contiguous().view([-1])).unwrap();
            for m in 0..3 {
                for t in 0..tc {
                    for i in 0..rows {
                        want[(m * passes + t) * n + row0 + i] = v[(m * tc + t) * rows + i];
                    }
                }
            }
            Ok::<(), ()>(())
        })
        .unwrap();
        let mut got: Vec<Vec<f32>> = vec![vec![f32::NAN; passes * n]; 3];
        let chunks = std::sync::atomic::AtomicUsize::new(0);
        mc_passes(
            &b,
            &xv,
            n,
            passes,
            &mut got,
            &|g: &mut Vec<f32>, c: McChunk| {
                chunks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                for t in 0..c.passes {
                    for i in 0..c.rows {
                        g[(c.first_pass + t) * n + c.row0 + i] = c.values[t * c.rows + i];
                    }
                }
                Ok::<(), ()>(())
            },
        )
        .unwrap();
        assert_eq!(
            chunks.into_inner(),
            3 * 2 * 2,
            "members x row chunks x pass chunks"
        );
        let got = got.concat();
        let worst = got
            .iter()
            .zip(&want)
            .map(|(g, w)| (g - w).abs() / w.abs().max(1.0))
            .fold(0f32, f32::max);
        assert!(worst < 1e-5, "fused passes differ by {worst}");
        // Not all passes alike: the masks differ between passes.
        let m1 = &got[passes * n..];
        assert!(m1[..n] != m1[n..2 * n]);
        for p in 0..3 {
            for m in 0..3 {
                assert_eq!(
                    a.dropout_of(p, m).map(Dropout::next_call),
                    b.dropout_of(p, m).map(Dropout::next_call)
                );
            }
        }
        let plain = Vec::<f32>::try_from(
            tch::no_grad(|| a.forward_t(&x, false))
                .contiguous()
                .view([-1]),
        )
        .unwrap();
        let fused = standard(&b, &xv, n).unwrap();
        assert!(plain
            .iter()
            .zip(&fused)
            .all(|(p, f)| (p - f).abs() <= 1e-5 * p.abs().max(1.0)));
        // The caller's error stops the run.
        let err = mc_passes(&b, &xv, n, 3, &mut [(), (), ()], &|_, _| Err("stop"));
        assert!(matches!(err, Err(McError::Caller("stop"))));
    }
}
