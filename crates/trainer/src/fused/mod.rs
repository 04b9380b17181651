//! The stacked trainer without libtorch in the step: each member's forward, backward and Adam
//! update as one pass of plain loops over its own f32 buffers ([`kernel`]), members spread over
//! the run's threads.
//!
//! Why: a UCI grid stack (240 nets of 1 x 50 units, batch 128) does about 100 MFLOP per step,
//! but libtorch's batched path spends most of a step on per-operation overhead, small-matrix
//! inefficiency and a dozen passes of Adam over memory. Here a member's step touches its
//! weights, one batch and a few activations, all in L1/L2, with no allocation.
//!
//! Same protocol as [`crate::stacked::train_stacked`] (0.5 MSE per member, Adam with per-member
//! weight decay on weights only, each member's own shuffles), the same masks (drawn from the
//! stack's own dropout streams, call for call as its forward draws them), the same initial
//! weights (the stack's), and the trained weights written back into the stack, so prediction
//! is unchanged. Only the order of floating-point sums differs from libtorch's, so the two
//! trainers agree to rounding, not bit for bit (tested against each other). A member's
//! arithmetic never depends on the other members or on the thread it runs on, so a member in a
//! stack trains bit for bit as it does alone, and results do not depend on the CPU.

pub mod kernel;
pub mod mc;

use std::time::Instant;

use mcd_models::dropout::Dropout;
use mcd_models::mlp::Activation;
use mcd_models::rng::SeededRng;
use mcd_models::stacked::StackedMlp;
use tch::{Device, Kind, Tensor};

use crate::stacked::{LossLog, StackedData, StackedSpec};
use crate::{ProgressSink, TrainError, TrainReport};
use kernel::{AdamStep, Batch, Scratch, Shape};

/// Most weight layers a fused stack may have.
pub const MAX_LAYERS: usize = 16;

/// Why the fused path cannot run this stack (None: it can).
pub fn unsupported_model(model: &StackedMlp) -> Option<&'static str> {
    if model.layers().len() > MAX_LAYERS {
        return Some("the fused trainer takes at most 16 weight layers");
    }
    if model.activation() != Activation::Relu {
        return Some("the fused trainer has ReLU hidden layers only");
    }
    if model.layers()[0].0.device() != Device::Cpu {
        return Some("the fused trainer runs on the CPU only");
    }
    None
}

/// Why the fused trainer cannot train this stack on this data (None: it can).
pub fn unsupported(model: &StackedMlp, data: &StackedData) -> Option<&'static str> {
    if let Some(why) = unsupported_model(model) {
        return Some(why);
    }
    if data.x.device() != Device::Cpu {
        return Some("the fused trainer runs on the CPU only");
    }
    if data.x.kind() != Kind::Float || data.y.kind() != Kind::Float {
        return Some("the fused trainer takes f32 data only");
    }
    None
}

/// Worker threads for `members` members: the run's CPU share (`tch::set_num_threads`), at
/// most one per member.
pub(crate) fn workers(members: usize) -> usize {
    usize::try_from(tch::get_num_threads())
        .unwrap_or(1)
        .clamp(1, members.max(1))
}

/// The shape of a stack's members.
pub(crate) fn shape_of(model: &StackedMlp) -> Result<Shape, TrainError> {
    if let Some(why) = unsupported_model(model) {
        return Err(TrainError::Unsupported { why });
    }
    let s = model.spec();
    Ok(Shape {
        widths: std::iter::once(s.input_dim)
            .chain(s.hidden.iter().copied())
            .chain([s.output_dim])
            .collect(),
    })
}

/// Each member's flat parameters (per layer: weight `[in, out]`, then bias) from the stack's
/// `[M, in, out]` and `[M, 1, out]` tensors.
pub(crate) fn member_params(
    model: &StackedMlp,
    shape: &Shape,
) -> Result<Vec<Vec<f32>>, TrainError> {
    let mut layer_values = Vec::new();
    for (w, b) in model.layers() {
        layer_values.push((
            values(w, "reading the stacked weights")?,
            values(b, "reading the stacked biases")?,
        ));
    }
    Ok((0..model.len())
        .map(|i| {
            let mut params = Vec::with_capacity(shape.parameters());
            for (l, (w, b)) in layer_values.iter().enumerate() {
                let (n_in, n_out) = (shape.widths[l], shape.widths[l + 1]);
                params.extend_from_slice(&w[i * n_in * n_out..(i + 1) * n_in * n_out]);
                params.extend_from_slice(&b[i * n_out..(i + 1) * n_out]);
            }
            params
        })
        .collect())
}

/// One member's state.
struct MemberState {
    /// Flat parameters (per layer: weight `[in, out]`, then bias), gradient and Adam moments.
    params: Vec<f32>,
    grad: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
    /// Weight decay (weights only).
    decay: f32,
    /// First row of the member's data set in the stacked data.
    offset: usize,
    order: Vec<i64>,
    rng: SeededRng,
    /// This step's row indices.
    rows: Vec<usize>,
    loss: f32,
}

/// Copies a CPU tensor's values out as f32.
///
/// In pieces below libtorch's parallel grain (`at::internal::GRAIN_SIZE`), so that each copy
/// runs on the calling thread: a parallel copy wakes libtorch's OpenMP workers, which then
/// spin for up to 200 ms on the cores the fused step is about to use (measured: it halved the
/// fused rate of a 60-step bench call).
fn values(t: &Tensor, op: &'static str) -> Result<Vec<f32>, TrainError> {
    let flat = t.detach().to_kind(Kind::Float).contiguous().view([-1]);
    let n = flat.numel() as i64;
    let mut out = Vec::with_capacity(n as usize);
    for start in (0..n).step_by(SERIAL_COPY as usize) {
        let part = flat.narrow(0, start, SERIAL_COPY.min(n - start));
        out.extend(Vec::<f32>::try_from(&part).map_err(|source| TrainError::Torch { op, source })?);
    }
    Ok(out)
}

/// Elements a libtorch copy moves on the calling thread (its parallel grain is 32,768).
const SERIAL_COPY: i64 = 16_384;

/// Writes `v` into `t` (contiguous, `v.len()` elements) in pieces of [`SERIAL_COPY`], as
/// [`values`] reads.
fn write_values(t: &Tensor, v: &[f32], op: &'static str) -> Result<(), TrainError> {
    let flat = t.view([-1]);
    for (i, part) in v.chunks(SERIAL_COPY as usize).enumerate() {
        let mut dst = flat.narrow(0, i as i64 * SERIAL_COPY, part.len() as i64);
        dst.f_copy_(&Tensor::from_slice(part))
            .map_err(|source| TrainError::Torch { op, source })?;
    }
    Ok(())
}

/// Trains every member of `model` on its set of `data` on 0.5 MSE, as
/// [`crate::stacked::train_stacked`] does, with the fused step; `model`'s weights are the
/// trained ones afterwards. Fails with [`TrainError::Unsupported`] where [`unsupported`] says.
pub fn train_fused(
    model: &StackedMlp,
    data: &StackedData,
    spec: &StackedSpec,
    progress: &mut dyn ProgressSink,
) -> Result<TrainReport, TrainError> {
    if let Some(why) = unsupported(model, data) {
        return Err(TrainError::Unsupported { why });
    }
    let m = model.len();
    spec.check(m, data)?;
    let shape = shape_of(model)?;
    let (d, k) = (shape.widths[0], shape.widths[shape.layers()]);
    if data.x.size()[1] as usize != d || data.y.size()[1] as usize != k {
        return Err(TrainError::Shape {
            x: data.x.size(),
            y: data.y.size(),
        });
    }
    let x = values(&data.x, "reading the stacked inputs")?;
    let y = values(&data.y, "reading the stacked targets")?;

    let initial = member_params(model, &shape)?;
    let n_params = shape.parameters();
    let rows = data.rows;
    let batch = spec.batch_size.clamp(1, rows);
    let mut states: Vec<MemberState> = initial
        .into_iter()
        .enumerate()
        .map(|(i, params)| MemberState {
            params,
            grad: vec![0.0; n_params],
            m: vec![0.0; n_params],
            v: vec![0.0; n_params],
            decay: spec.weight_decay[i] as f32,
            offset: data.member_set[i] * rows,
            order: (0..rows as i64).collect(),
            rng: SeededRng::new(spec.shuffle_seeds[i]),
            rows: Vec::with_capacity(batch),
            loss: 0.0,
        })
        .collect();
    // Each member's dropout layers, input first (None: no mask at that position).
    let positions = shape.layers();
    let dropouts: Vec<Vec<Option<&Dropout>>> = (0..m)
        .map(|i| (0..positions).map(|p| model.dropout_of(p, i)).collect())
        .collect();
    let offsets = shape.offsets();

    let threads = workers(m);
    let per_worker = m.div_ceil(threads);
    let mut scratches: Vec<Scratch> = (0..threads).map(|_| Scratch::new(&shape, batch)).collect();

    let steps_per_epoch = rows.div_ceil(batch);
    let total = spec.epochs * steps_per_epoch;
    let started = Instant::now();
    let mut log = LossLog::new(m);
    progress.start(total);
    let mut it = 0;
    for _epoch in 0..spec.epochs {
        for st in &mut states {
            st.rng.shuffle(&mut st.order);
        }
        for step in 0..steps_per_epoch {
            let start = step * batch;
            let len = batch.min(rows - start);
            let adam = AdamStep::new(spec.lr, spec.beta1, spec.beta2, spec.eps, it as i32 + 1);
            let work = |chunk: &mut [MemberState], first: usize, scratch: &mut Scratch| {
                for (j, st) in chunk.iter_mut().enumerate() {
                    let member = first + j;
                    st.rows.clear();
                    st.rows.extend(
                        st.order[start..start + len]
                            .iter()
                            .map(|&r| r as usize + st.offset),
                    );
                    let mut masked = [false; MAX_LAYERS];
                    let mut kept = [None; MAX_LAYERS];
                    for (p, dropout) in dropouts[member].iter().enumerate() {
                        if let Some(dr) = dropout {
                            dr.fill_next(&mut scratch.masks[p][..len * shape.widths[p]], 1);
                            masked[p] = true;
                            kept[p] = Some(dr.scale());
                        }
                    }
                    let b = Batch {
                        x: &x,
                        y: &y,
                        rows: &st.rows,
                        masked: &masked[..positions],
                        kept: &kept[..positions],
                    };
                    st.loss = kernel::loss_and_grad(&shape, &st.params, b, scratch, &mut st.grad);
                    for (l, &(wo, bo)) in offsets.iter().enumerate() {
                        let n_out = shape.widths[l + 1];
                        adam.apply(
                            &mut st.params[wo..bo],
                            &st.grad[wo..bo],
                            &mut st.m[wo..bo],
                            &mut st.v[wo..bo],
                            st.decay,
                        );
                        let end = bo + n_out;
                        adam.apply(
                            &mut st.params[bo..end],
                            &st.grad[bo..end],
                            &mut st.m[bo..end],
                            &mut st.v[bo..end],
                            0.0,
                        );
                    }
                }
            };
            if threads == 1 {
                work(&mut states, 0, &mut scratches[0]);
            } else {
                rayon::scope(|sc| {
                    for (w, (chunk, scratch)) in states
                        .chunks_mut(per_worker)
                        .zip(scratches.iter_mut())
                        .enumerate()
                    {
                        let work = &work;
                        sc.spawn(move |_| work(chunk, w * per_worker, scratch));
                    }
                });
            }

            let last = it + 1 == total;
            if it.is_multiple_of(spec.log_every.max(1)) || last {
                let per: Vec<f32> = states.iter().map(|st| st.loss).collect();
                log.record(it, &per, spec.lr, progress)?;
            }
            it += 1;
        }
    }
    progress.finish();

    // The trained weights back into the stack's tensors.
    tch::no_grad(|| -> Result<(), TrainError> {
        for (l, (w, b)) in model.layers().iter().enumerate() {
            let (n_in, n_out) = (shape.widths[l], shape.widths[l + 1]);
            let (wo, bo) = offsets[l];
            let mut ws = Vec::with_capacity(m * n_in * n_out);
            let mut bs = Vec::with_capacity(m * n_out);
            for st in &states {
                ws.extend_from_slice(&st.params[wo..bo]);
                bs.extend_from_slice(&st.params[bo..bo + n_out]);
            }
            write_values(w, &ws, "writing the trained weights")?;
            write_values(b, &bs, "writing the trained biases")?;
        }
        Ok(())
    })?;
    Ok(TrainReport {
        iterations: total,
        losses: log.losses,
        tracked: Vec::new(),
        member_losses: log.member_losses,
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stacked::{train_stacked, StackedHalfMse, StackedObjective};
    use crate::Silent;
    use mcd_models::mlp::{InitScheme, MlpSpec};
    use mcd_models::stacked::Member;

    fn spec(hidden: Vec<usize>) -> MlpSpec {
        MlpSpec {
            input_dim: 3,
            hidden,
            output_dim: 1,
            activation: Activation::Relu,
            dropout: 0.0,
            input_dropout: 0.0,
            init: InitScheme::GlorotUniform,
            first_layer: None,
        }
    }

    /// Two data sets of 70 rows (not a multiple of the batch: the short last batch is used).
    fn sets() -> (Vec<Tensor>, Vec<Tensor>) {
        let opts = (Kind::Float, Device::Cpu);
        let x0 = Tensor::linspace(-1.0, 1.0, 210, opts).view([70, 3]);
        let x1 = x0.flip([0i64]) * 0.5;
        let f =
            |x: &Tensor| (x.narrow(1, 0, 1) * 3.0).sin() + x.narrow(1, 1, 1) - x.narrow(1, 2, 1);
        let (y0, y1) = (f(&x0), f(&x1) * 2.0);
        (vec![x0, x1], vec![y0, y1])
    }

    fn members() -> Vec<(Member, f64, usize)> {
        [
            (0.05, 11u64, 1e-3, 0usize),
            (0.1, 12, 1e-4, 1),
            (0.0, 13, 0.0, 0),
            (0.3, 14, 1e-2, 1),
        ]
        .iter()
        .map(|&(p, seed, wd, set)| {
            let m = Member {
                dropout: p,
                input_dropout: p,
                seed,
            };
            (m, wd, set)
        })
        .collect()
    }

    fn run_spec(ms: &[(Member, f64, usize)], epochs: usize) -> StackedSpec {
        StackedSpec {
            epochs,
            batch_size: 16,
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: ms.iter().map(|m| m.1).collect(),
            shuffle_seeds: ms.iter().map(|m| m.0.seed ^ 7).collect(),
            log_every: 25,
        }
    }

    fn stack_and_data(
        hidden: Vec<usize>,
        ms: &[(Member, f64, usize)],
    ) -> (StackedMlp, StackedData) {
        let (xs, ys) = sets();
        let all: Vec<Member> = ms.iter().map(|m| m.0).collect();
        let stack = StackedMlp::new(&spec(hidden), &all);
        let data = StackedData::new(&xs, &ys, ms.iter().map(|m| m.2).collect()).unwrap();
        (stack, data)
    }

    fn max_diff(a: &StackedMlp, b: &StackedMlp) -> f64 {
        a.layers()
            .iter()
            .zip(b.layers())
            .flat_map(|((wa, ba), (wb, bb))| [(wa - wb).abs().max(), (ba - bb).abs().max()])
            .map(|t| f64::try_from(t).unwrap())
            .fold(0.0, f64::max)
    }

    /// The fused trainer follows libtorch's stacked trainer (same masks, shuffles, Adam) over
    /// 500 steps, to rounding: the two sum in different orders, nothing else differs.
    #[test]
    fn fused_training_follows_the_libtorch_stacked_trainer() {
        for hidden in [vec![20], vec![16, 8]] {
            let ms = members();
            let run = run_spec(&ms, 100);
            let (torch, data) = stack_and_data(hidden.clone(), &ms);
            let (fused, _) = stack_and_data(hidden.clone(), &ms);
            let a = train_stacked(&torch, &data, &run, &mut Silent).unwrap();
            let b = train_fused(&fused, &data, &run, &mut Silent).unwrap();
            assert_eq!(a.iterations, 500);
            assert_eq!(a.losses.len(), b.losses.len());
            for ((ia, la), (ib, lb)) in a.losses.iter().zip(&b.losses) {
                assert_eq!(ia, ib);
                assert!(
                    (la - lb).abs() <= 1e-3 * la.abs().max(0.01),
                    "{hidden:?} step {ia}: {la} vs {lb}"
                );
            }
            let first = a.losses[0].1;
            let last = a.losses.last().unwrap().1;
            assert!(last < 0.5 * first, "it learns: {first} -> {last}");
            let diff = max_diff(&torch, &fused);
            assert!(diff < 1e-3, "{hidden:?}: weights differ by {diff}");
            // The masks were drawn call for call: both stacks' streams stand at the same place.
            for p in 0..hidden.len() + 1 {
                for i in 0..ms.len() {
                    assert_eq!(
                        torch.dropout_of(p, i).map(Dropout::next_call),
                        fused.dropout_of(p, i).map(Dropout::next_call)
                    );
                }
            }
        }
    }

    /// A member trained in a fused stack ends with exactly the weights it gets alone.
    #[test]
    fn member_in_a_fused_stack_trains_as_alone() {
        let ms = members();
        let run = run_spec(&ms, 20);
        let (stack, data) = stack_and_data(vec![20], &ms);
        let report = train_fused(&stack, &data, &run, &mut Silent).unwrap();
        let (xs, ys) = sets();
        for (i, &(member, wd, set)) in ms.iter().enumerate() {
            let alone = StackedMlp::new(&spec(vec![20]), &[member]);
            let one = StackedData::new(&xs[set..=set], &ys[set..=set], vec![0]).unwrap();
            let solo_run = StackedSpec {
                weight_decay: vec![wd],
                shuffle_seeds: vec![member.seed ^ 7],
                ..run.clone()
            };
            let solo = train_fused(&alone, &one, &solo_run, &mut Silent).unwrap();
            assert_eq!(solo.member_losses[0], report.member_losses[i]);
            for ((wa, ba), (ws, bs)) in alone.member_layers(0).iter().zip(stack.member_layers(i)) {
                assert!(wa.equal(&ws) && ba.equal(&bs), "member {i}");
            }
        }
    }

    /// The fused backward equals autograd's gradient of the same loss with the same masks.
    #[test]
    fn fused_gradient_matches_autograd() {
        for hidden in [vec![20], vec![16, 8]] {
            let ms = members();
            let (a, data) = stack_and_data(hidden.clone(), &ms);
            let (b, _) = stack_and_data(hidden.clone(), &ms);
            let s = a.spec();
            let shape = Shape {
                widths: std::iter::once(s.input_dim)
                    .chain(s.hidden.iter().copied())
                    .chain([s.output_dim])
                    .collect(),
            };
            // Rows 3, 9, 40, ... of each member's set: 13 rows, not a multiple of 8.
            let pick: Vec<i64> = (0..13).map(|r| (r * 5 + 3) % 70).collect();
            let x = values(&data.x, "x").unwrap();
            let y = values(&data.y, "y").unwrap();
            let xb = Tensor::stack(
                &ms.iter()
                    .map(|m| {
                        data.x
                            .narrow(0, (m.2 * 70) as i64, 70)
                            .index_select(0, &Tensor::from_slice(&pick))
                    })
                    .collect::<Vec<_>>(),
                0,
            );
            let yb = Tensor::stack(
                &ms.iter()
                    .map(|m| {
                        data.y
                            .narrow(0, (m.2 * 70) as i64, 70)
                            .index_select(0, &Tensor::from_slice(&pick))
                    })
                    .collect::<Vec<_>>(),
                0,
            );
            let loss = StackedHalfMse.member_loss(&a, &xb, &yb);
            loss.sum(Kind::Float).backward();
            let want = Vec::<f32>::try_from(&loss).unwrap();
            let mut scratch = Scratch::new(&shape, 16);
            for (i, m) in ms.iter().enumerate() {
                let mut params = Vec::new();
                let mut auto = Vec::new();
                for (w, bias) in b.layers() {
                    params.extend(values(&w.get(i as i64), "w").unwrap());
                    params.extend(values(&bias.get(i as i64), "b").unwrap());
                }
                for (w, bias) in a.layers() {
                    auto.extend(values(&w.grad().get(i as i64), "dw").unwrap());
                    auto.extend(values(&bias.grad().get(i as i64), "db").unwrap());
                }
                let rows: Vec<usize> = pick.iter().map(|&r| r as usize + m.2 * 70).collect();
                let mut masked = vec![false; shape.layers()];
                let mut kept = vec![None; shape.layers()];
                for (p, flag) in masked.iter_mut().enumerate() {
                    if let Some(dr) = b.dropout_of(p, i) {
                        dr.fill_next(&mut scratch.masks[p][..13 * shape.widths[p]], 1);
                        *flag = true;
                        kept[p] = Some(dr.scale());
                    }
                }
                let batch = Batch {
                    x: &x,
                    y: &y,
                    rows: &rows,
                    masked: &masked,
                    kept: &kept,
                };
                let mut grad = vec![0f32; shape.parameters()];
                let got = kernel::loss_and_grad(&shape, &params, batch, &mut scratch, &mut grad);
                assert!(
                    (got - want[i]).abs() <= 1e-5 * want[i].abs(),
                    "{got} vs {}",
                    want[i]
                );
                let scale = auto.iter().fold(0f32, |s, g| s.max(g.abs()));
                for (j, (g, w)) in grad.iter().zip(&auto).enumerate() {
                    assert!(
                        (g - w).abs() <= 1e-5 * scale,
                        "{hidden:?} member {i} parameter {j}: {g} vs {w}"
                    );
                }
                // The baseline build computes the same bits as the dispatched one.
                let mut again = vec![0f32; shape.parameters()];
                let base = kernel::loss_and_grad_body::<false>(
                    &shape,
                    &params,
                    batch,
                    &mut scratch,
                    &mut again,
                );
                assert_eq!(base.to_bits(), got.to_bits());
                assert!(again
                    .iter()
                    .zip(&grad)
                    .all(|(a, b)| a.to_bits() == b.to_bits()));
            }
        }
    }

    #[test]
    fn unsupported_stacks_are_named() {
        let ms = members();
        let all: Vec<Member> = ms.iter().map(|m| m.0).collect();
        let tanh = MlpSpec {
            activation: Activation::Tanh,
            ..spec(vec![4])
        };
        let stack = StackedMlp::new(&tanh, &all);
        let (_, data) = stack_and_data(vec![4], &ms);
        let err = train_fused(&stack, &data, &run_spec(&ms, 1), &mut Silent).unwrap_err();
        assert!(err.to_string().contains("ReLU"), "{err}");
    }
}
