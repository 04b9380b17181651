//! Training a [`StackedMlp`]: every member on its own data set, with its own mini-batch order,
//! masks and weight decay, in one batched forward/backward per step.
//!
//! Protocol (the authors' Keras UCI code): epochs of shuffled mini-batches with a smaller last
//! batch, loss `0.5 * mean squared error` per member (Adam is invariant to Keras' factor 2),
//! Adam, and weight decay `grad += wd * w` on weights only (Keras' `W_regularizer=l2(wd)` leaves
//! biases alone). The loss of the stack is the sum of the members' losses, so each member's
//! gradient is exactly its own.

use std::time::Instant;

use mcd_models::rng::SeededRng;
use mcd_models::stacked::StackedMlp;
use tch::{Kind, Tensor};

use crate::{ProgressSink, TrainError, TrainReport};

/// The data of a stack: `sets` data sets of `rows` rows each, concatenated; member m trains on
/// set `member_set[m]` (e.g. one set per UCI split, shared by that split's grid points).
#[derive(Debug)]
pub struct StackedData {
    /// Inputs, `[sets * rows, d]`.
    pub x: Tensor,
    /// Targets, `[sets * rows, k]`.
    pub y: Tensor,
    /// Rows per set.
    pub rows: usize,
    /// Set index of each member.
    pub member_set: Vec<usize>,
}

impl StackedData {
    /// Concatenates equally long sets (`xs[i]` `[rows, d]`, `ys[i]` `[rows, k]`).
    pub fn new(xs: &[Tensor], ys: &[Tensor], member_set: Vec<usize>) -> Result<Self, TrainError> {
        let rows = xs.first().map_or(0, |x| x.size()[0]);
        let bad = xs.len() != ys.len()
            || xs.is_empty()
            || xs
                .iter()
                .chain(ys)
                .any(|t| t.dim() != 2 || t.size()[0] != rows)
            || member_set.iter().any(|&s| s >= xs.len());
        if bad || rows == 0 {
            return Err(TrainError::Shape {
                x: xs.iter().flat_map(|t| t.size()).collect(),
                y: ys.iter().flat_map(|t| t.size()).collect(),
            });
        }
        Ok(Self {
            x: Tensor::cat(xs, 0),
            y: Tensor::cat(ys, 0),
            rows: rows as usize,
            member_set,
        })
    }
}

/// Settings of a stacked run; per-member vectors are in stack order.
#[derive(Debug, Clone, PartialEq)]
pub struct StackedSpec {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    /// Adam's epsilon (1e-8, as PyTorch and Keras 1).
    pub eps: f64,
    /// Weight decay of each member.
    pub weight_decay: Vec<f64>,
    /// Seed of each member's mini-batch order.
    pub shuffle_seeds: Vec<u64>,
    /// Report the mean member loss every this many steps (each member's own loss is kept too,
    /// [`TrainReport::member_losses`]).
    pub log_every: usize,
}

/// What a stack minimises, as a value: each member's loss on its mini-batch. The stack's loss
/// is the sum of the members' losses, so each member's gradient is its own.
pub trait StackedObjective {
    /// Per-member loss, `[M]`, of a batch: inputs `[M, B, d]`, targets `[M, B, k]`. Running the
    /// model (with dropout on, or a method's own masks) is the objective's business.
    fn member_loss(&self, model: &StackedMlp, x: &Tensor, y: &Tensor) -> Tensor;
    /// Parameters trained beside the stack's layers (Adam, no weight decay); by default none.
    fn parameters(&self) -> Vec<Tensor> {
        Vec::new()
    }
    /// Values to record at every report point, by name, one per member (`[M]`), read from the
    /// current parameters (concrete dropout: p per layer); by default none. Recorded in
    /// [`TrainReport::tracked`] as `<name>/member<m>`.
    fn tracked(&self) -> Vec<(String, Vec<f64>)> {
        Vec::new()
    }
}

/// The authors' MC-dropout loss: per member `0.5 * mean over its rows of the squared error`
/// (summed over outputs), the stack's own dropout on.
#[derive(Debug, Clone, Copy, Default)]
pub struct StackedHalfMse;

impl StackedObjective for StackedHalfMse {
    fn member_loss(&self, model: &StackedMlp, x: &Tensor, y: &Tensor) -> Tensor {
        let len = x.size()[1];
        (model.forward_t(x, true) - y).square().sum_dim_intlist(
            [1i64, 2].as_slice(),
            false,
            Kind::Float,
        ) * (0.5 / len as f64)
    }
}

/// Deep ensembles' loss (Lakshminarayanan et al. 2017): each member has two outputs, the mean
/// and the raw variance (variance = softplus(raw) + `min_variance`); per member the mean over
/// its rows of the Gaussian NLL `1/2 ln var + 1/2 (y - mean)^2 / var` (constant dropped). One
/// target (`k` = 1). The stack's own dropout is on (an ensemble's members have none).
#[derive(Debug, Clone, Copy)]
pub struct StackedGaussianNll {
    pub min_variance: f64,
}

impl StackedGaussianNll {
    /// Means and variances, each `[M, rows, 1]`, of the stack's raw outputs `[M, rows, 2]`.
    pub fn split(&self, out: &Tensor) -> (Tensor, Tensor) {
        (
            out.narrow(2, 0, 1),
            out.narrow(2, 1, 1).softplus() + self.min_variance,
        )
    }
}

impl StackedGaussianNll {
    /// Per-member mean NLL, `[M]`, of raw outputs `[M, rows, 2]` and targets `[M, rows, 1]`.
    pub fn loss_of(&self, out: &Tensor, y: &Tensor) -> Tensor {
        let (mu, var) = self.split(out);
        (var.log() * 0.5 + (y - mu).square() / var * 0.5).mean_dim(
            [1i64, 2].as_slice(),
            false,
            Kind::Float,
        )
    }
}

impl StackedObjective for StackedGaussianNll {
    fn member_loss(&self, model: &StackedMlp, x: &Tensor, y: &Tensor) -> Tensor {
        self.loss_of(&model.forward_t(x, true), y)
    }
}

/// Trains every member of `model` on its set of `data` on 0.5 MSE ([`StackedHalfMse`]).
pub fn train_stacked(
    model: &StackedMlp,
    data: &StackedData,
    spec: &StackedSpec,
    progress: &mut dyn ProgressSink,
) -> Result<TrainReport, TrainError> {
    train_stacked_with(model, data, spec, &StackedHalfMse, progress)
}

/// Trains every member of `model` on its set of `data`, minimising `objective`.
pub fn train_stacked_with(
    model: &StackedMlp,
    data: &StackedData,
    spec: &StackedSpec,
    objective: &dyn StackedObjective,
    progress: &mut dyn ProgressSink,
) -> Result<TrainReport, TrainError> {
    let m = model.len();
    spec.check(m, data)?;
    let rows = data.rows;
    let batch = spec.batch_size.clamp(1, rows);
    let steps_per_epoch = rows.div_ceil(batch);
    let total = spec.epochs * steps_per_epoch;
    let (d, k) = (data.x.size()[1], data.y.size()[1]);
    let device = data.x.device();

    let mut rngs: Vec<SeededRng> = spec
        .shuffle_seeds
        .iter()
        .map(|&s| SeededRng::new(s))
        .collect();
    let mut orders: Vec<Vec<i64>> = vec![(0..rows as i64).collect(); m];
    let offsets: Vec<i64> = data.member_set.iter().map(|&s| (s * rows) as i64).collect();
    let mut adam = StackedAdam::new(model, &objective.parameters(), spec, device);
    let mut idx = Vec::with_capacity(m * batch);

    let started = Instant::now();
    let mut log = LossLog::new(m);
    let mut tracked: Vec<(String, Vec<f64>)> = Vec::new();
    progress.start(total);
    let mut it = 0;
    for _epoch in 0..spec.epochs {
        for (rng, order) in rngs.iter_mut().zip(&mut orders) {
            rng.shuffle(order);
        }
        for s in 0..steps_per_epoch {
            let start = s * batch;
            let len = batch.min(rows - start);
            idx.clear();
            for (order, &off) in orders.iter().zip(&offsets) {
                idx.extend(order[start..start + len].iter().map(|&r| r + off));
            }
            let idx_t = Tensor::from_slice(&idx).to_device(device);
            let shape = [m as i64, len as i64];
            let xb = data.x.index_select(0, &idx_t).view([shape[0], shape[1], d]);
            let yb = data.y.index_select(0, &idx_t).view([shape[0], shape[1], k]);
            let last = it + 1 == total;
            let logged = it.is_multiple_of(spec.log_every.max(1)) || last;
            // Read before the step: the parameters that give this step's loss.
            let values = if logged {
                objective.tracked()
            } else {
                Vec::new()
            };
            let member_loss = objective.member_loss(model, &xb, &yb);
            member_loss.sum(Kind::Float).backward();
            adam.step();

            if logged {
                for (name, per_member) in values {
                    for (j, v) in per_member.into_iter().enumerate() {
                        let key = format!("{name}/member{j}");
                        match tracked.iter_mut().find(|(k, _)| *k == key) {
                            Some((_, series)) => series.push(v),
                            None => tracked.push((key, vec![v])),
                        }
                    }
                }
                let per: Vec<f32> =
                    Vec::<f32>::try_from(&member_loss).map_err(|source| TrainError::Torch {
                        op: "reading the member losses",
                        source,
                    })?;
                log.record(it, &per, spec.lr, progress)?;
            }
            it += 1;
        }
    }
    progress.finish();
    Ok(TrainReport {
        iterations: total,
        losses: log.losses,
        tracked,
        member_losses: log.member_losses,
        seconds: started.elapsed().as_secs_f64(),
    })
}

impl StackedSpec {
    /// Refuses a spec whose per-member settings or data-set indices do not match the `m`
    /// members of a stack, or that trains for no epoch (both stacked trainers check this).
    pub(crate) fn check(&self, m: usize, data: &StackedData) -> Result<(), TrainError> {
        if data.member_set.len() != m
            || self.weight_decay.len() != m
            || self.shuffle_seeds.len() != m
        {
            return Err(TrainError::Members {
                model: m,
                sets: data.member_set.len(),
                decays: self.weight_decay.len(),
                seeds: self.shuffle_seeds.len(),
            });
        }
        if self.epochs == 0 {
            return Err(TrainError::NothingToTrain {
                what: "the number of epochs",
            });
        }
        Ok(())
    }
}

/// The losses a stacked trainer reports: each member's at every report point, and their mean.
pub(crate) struct LossLog {
    pub(crate) losses: Vec<(usize, f64)>,
    pub(crate) member_losses: Vec<Vec<f64>>,
}

impl LossLog {
    pub(crate) fn new(members: usize) -> Self {
        Self {
            losses: Vec::new(),
            member_losses: vec![Vec::new(); members],
        }
    }

    /// Records step `it`'s per-member losses and reports their mean; a member's non-finite
    /// loss is [`TrainError::MemberDiverged`].
    pub(crate) fn record(
        &mut self,
        it: usize,
        per: &[f32],
        lr: f64,
        progress: &mut dyn ProgressSink,
    ) -> Result<(), TrainError> {
        if let Some((member, &loss)) = per.iter().enumerate().find(|(_, l)| !l.is_finite()) {
            return Err(TrainError::MemberDiverged {
                member,
                iteration: it,
                loss: loss.into(),
            });
        }
        let mean = per.iter().map(|&l| f64::from(l)).sum::<f64>() / per.len() as f64;
        for (series, &l) in self.member_losses.iter_mut().zip(per) {
            series.push(f64::from(l));
        }
        self.losses.push((it, mean));
        progress.step(it, mean, lr);
        Ok(())
    }
}

/// Adam over stacked parameters with a per-member weight decay (PyTorch's update rule).
struct StackedAdam {
    /// (parameter, first moment, second moment, decays: whether weight decay applies).
    state: Vec<(Tensor, Tensor, Tensor, bool)>,
    /// Per-member decay, `[M, 1, 1]`.
    decay: Tensor,
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    t: i32,
}

impl StackedAdam {
    fn new(model: &StackedMlp, extra: &[Tensor], spec: &StackedSpec, device: tch::Device) -> Self {
        let state = model
            .layers()
            .iter()
            .flat_map(|(w, b)| [(w, true), (b, false)])
            .chain(extra.iter().map(|p| (p, false)))
            .map(|(p, decays)| (p.shallow_clone(), p.zeros_like(), p.zeros_like(), decays))
            .collect();
        let decay = Tensor::from_slice(&spec.weight_decay)
            .to_kind(Kind::Float)
            .to_device(device)
            .view([-1, 1, 1]);
        Self {
            state,
            decay,
            lr: spec.lr,
            beta1: spec.beta1,
            beta2: spec.beta2,
            eps: spec.eps,
            t: 0,
        }
    }

    fn step(&mut self) {
        self.t += 1;
        let bc1 = 1.0 - self.beta1.powi(self.t);
        let bc2_sqrt = (1.0 - self.beta2.powi(self.t)).sqrt();
        let (b1, b2, eps, lr) = (self.beta1, self.beta2, self.eps, self.lr);
        tch::no_grad(|| {
            for (p, m, v, decays) in &mut self.state {
                let mut grad = p.grad();
                let g = if *decays {
                    &grad + &self.decay * &*p
                } else {
                    grad.shallow_clone()
                };
                let _ = m.g_mul_scalar_(b1).g_add_(&(&g * (1.0 - b1)));
                let _ = v.g_mul_scalar_(b2).addcmul_(&(&g * (1.0 - b2)), &g);
                let denom = v.sqrt() / bc2_sqrt + eps;
                let _ = p.addcdiv_(&(&*m * (-lr / bc1)), &denom);
                let _ = grad.zero_();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Silent;
    use mcd_models::mlp::{Activation, InitScheme, MlpSpec};
    use mcd_models::stacked::Member;
    use tch::Device;

    fn spec() -> MlpSpec {
        MlpSpec {
            input_dim: 2,
            hidden: vec![16],
            output_dim: 1,
            activation: Activation::Relu,
            dropout: 0.0,
            input_dropout: 0.0,
            init: InitScheme::GlorotUniform,
            first_layer: None,
        }
    }

    /// Two data sets of 50 rows (not a multiple of the batch, so the short last batch is used).
    fn sets() -> (Vec<Tensor>, Vec<Tensor>) {
        let opts = (Kind::Float, Device::Cpu);
        let x0 = Tensor::linspace(-1.0, 1.0, 100, opts).view([50, 2]);
        let x1 = x0.flip([0i64]) * 0.5;
        let f = |x: &Tensor| (x.narrow(1, 0, 1) * 3.0).sin() + x.narrow(1, 1, 1);
        let (y0, y1) = (f(&x0), f(&x1) * 2.0);
        (vec![x0, x1], vec![y0, y1])
    }

    fn run_spec(decays: Vec<f64>, seeds: Vec<u64>) -> StackedSpec {
        StackedSpec {
            epochs: 30,
            batch_size: 16,
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: decays,
            shuffle_seeds: seeds,
            log_every: 10,
        }
    }

    /// A member trained inside a stack ends with the weights it gets when trained alone with
    /// the same seed, masks and data: bit for bit (one thread, so no reduction is reordered).
    #[test]
    fn member_in_a_stack_trains_as_alone() {
        members_train_as_alone(&StackedHalfMse, 1, [0.05, 0.1, 0.01]);
    }

    /// The same for deep ensembles' Gaussian NLL (two outputs per member, no dropout): a UCI
    /// ensemble member trained beside other members and other splits' members is the net alone.
    #[test]
    fn ensemble_member_in_a_stack_trains_as_alone() {
        let nll = StackedGaussianNll { min_variance: 1e-6 };
        members_train_as_alone(&nll, 2, [0.0; 3]);
    }

    fn members_train_as_alone(objective: &dyn StackedObjective, outputs: usize, rates: [f64; 3]) {
        tch::set_num_threads(1);
        let members = [
            (rates[0], 11u64, 1e-3, 0usize),
            (rates[1], 12, 1e-4, 1),
            (rates[2], 13, 0.0, 0),
        ];
        let spec = MlpSpec {
            output_dim: outputs,
            ..spec()
        };
        let (xs, ys) = sets();
        let all: Vec<Member> = members
            .iter()
            .map(|&(p, seed, _, _)| Member {
                dropout: p,
                input_dropout: p,
                seed,
            })
            .collect();
        let stack = StackedMlp::new(&spec, &all);
        let data = StackedData::new(&xs, &ys, members.iter().map(|m| m.3).collect()).unwrap();
        let run = run_spec(
            members.iter().map(|m| m.2).collect(),
            members.iter().map(|m| m.1 ^ 7).collect(),
        );
        let report = train_stacked_with(&stack, &data, &run, objective, &mut Silent).unwrap();
        assert_eq!(report.iterations, 30 * 4);
        let first = report.losses.first().unwrap().1;
        let last = report.losses.last().unwrap().1;
        assert!(last < first - 0.5 * first.abs(), "loss {first} -> {last}");
        // Each member's own curve, at the report points; `losses` is their mean.
        assert_eq!(report.member_losses.len(), members.len());
        for (k, &(_, mean)) in report.losses.iter().enumerate() {
            let per: Vec<f64> = report.member_losses.iter().map(|c| c[k]).collect();
            let want = per.iter().sum::<f64>() / per.len() as f64;
            assert!(
                (mean - want).abs() <= 1e-12 * want.abs(),
                "{mean} vs {want}"
            );
        }

        for (i, &(p, seed, wd, set)) in members.iter().enumerate() {
            let alone = StackedMlp::new(
                &spec,
                &[Member {
                    dropout: p,
                    input_dropout: p,
                    seed,
                }],
            );
            let data = StackedData::new(&xs[set..=set], &ys[set..=set], vec![0]).unwrap();
            let solo = train_stacked_with(
                &alone,
                &data,
                &run_spec(vec![wd], vec![seed ^ 7]),
                objective,
                &mut Silent,
            )
            .unwrap();
            // Its training curve too: the member's own losses are the ones it has alone.
            assert_eq!(solo.member_losses, vec![report.member_losses[i].clone()]);
            for ((wa, ba), (ws, bs)) in alone.member_layers(0).iter().zip(stack.member_layers(i)) {
                let diff = f64::try_from((wa - &ws).abs().max())
                    .unwrap()
                    .max(f64::try_from((ba - &bs).abs().max()).unwrap());
                assert!(diff == 0.0, "member {i}: max weight difference {diff}");
            }
        }
    }

    /// The Gaussian NLL by hand: member 0 (mean 1, variance 1) and member 1 (mean 0, raw
    /// output 0: variance ln 2 + 1e-6), one row each, target 0.
    #[test]
    fn the_ensemble_loss_by_hand() {
        let nll = StackedGaussianNll { min_variance: 1e-6 };
        let raw1 = (1f64.exp() - 1.0).ln(); // softplus(raw1) = 1
        let out = Tensor::from_slice(&[1.0f32, raw1 as f32, 0.0, 0.0]).view([2, 1, 2]);
        let y = Tensor::zeros([2, 1, 1], (Kind::Float, Device::Cpu));
        let got = Vec::<f32>::try_from(nll.loss_of(&out, &y)).unwrap();
        let v1 = 2f64.ln() + 1e-6;
        assert!((f64::from(got[0]) - 0.5).abs() < 1e-5, "{got:?}");
        assert!((f64::from(got[1]) - 0.5 * v1.ln()).abs() < 1e-5, "{got:?}");
    }

    #[test]
    fn mismatched_members_are_an_error() {
        let (xs, ys) = sets();
        let stack = StackedMlp::new(
            &spec(),
            &[Member {
                dropout: 0.1,
                input_dropout: 0.1,
                seed: 1,
            }],
        );
        let data = StackedData::new(&xs, &ys, vec![0, 1]).unwrap();
        let err = train_stacked(&stack, &data, &run_spec(vec![0.0], vec![1]), &mut Silent);
        assert!(matches!(
            err,
            Err(TrainError::Members {
                model: 1,
                sets: 2,
                ..
            })
        ));
        assert!(StackedData::new(&xs, &ys, vec![2]).is_err());
        let one = StackedData::new(&xs, &ys, vec![0]).unwrap();
        let none = StackedSpec {
            epochs: 0,
            ..run_spec(vec![0.0], vec![1])
        };
        assert!(matches!(
            train_stacked(&stack, &one, &none, &mut Silent),
            Err(TrainError::NothingToTrain { .. })
        ));
    }
}
