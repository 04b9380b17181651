//! Training loops. Metrics (loss, learning rate, timing) are reported through [`ProgressSink`];
//! how they are displayed (progress bar, log lines) is the caller's business.
//!
//! Loss and weight-decay convention (used everywhere in this project): the data term is
//! `0.5 * mean over points of the squared error` (Caffe's EuclideanLoss), and weight decay `wd`
//! is applied by the optimiser as `grad += wd * w` on every weight and bias, i.e. a penalty of
//! `(wd / 2) ||w||^2`. This matches Caffe's `weight_decay` (SGD) and, since Adam is invariant to
//! the loss scale, Keras' `MSE + l2(wd)` used by the authors' UCI code, so their
//! `tau = (1 - p) l^2 / (2 N wd)` applies unchanged.

pub mod adam;
pub mod adversarial;
pub mod fused;
pub mod stacked;
pub mod warmup;

pub use adversarial::Adversarial;
pub use warmup::DropoutWarmup;

use std::time::Instant;

use mcd_models::rng::SeededRng;
use tch::nn::{self, ModuleT, OptimizerConfig};
use tch::{Kind, Tensor};

/// Optimiser family.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub enum Optimizer {
    /// SGD with (heavy-ball) momentum.
    Sgd { momentum: f64 },
    /// Adam with L2 weight decay added to the gradient.
    Adam { beta1: f64, beta2: f64 },
}

/// Learning-rate schedule, evaluated at iteration `it` (0-based).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub enum LrSchedule {
    Constant,
    /// Caffe "inv": base_lr * (1 + gamma * it)^(-power).
    Inv {
        gamma: f64,
        power: f64,
    },
    /// Cosine decay from base_lr to base_lr * final_fraction over the run.
    Cosine {
        final_fraction: f64,
    },
}

impl LrSchedule {
    /// Learning rate at iteration `it` of `total`.
    pub fn lr(&self, base: f64, it: usize, total: usize) -> f64 {
        match *self {
            LrSchedule::Constant => base,
            LrSchedule::Inv { gamma, power } => base * (1.0 + gamma * it as f64).powf(-power),
            LrSchedule::Cosine { final_fraction } => {
                let t = it as f64 / total.max(1) as f64;
                let c = 0.5 * (1.0 + (std::f64::consts::PI * t).cos());
                base * (final_fraction + (1.0 - final_fraction) * c)
            }
        }
    }
}

/// Everything a training run needs besides the model and data.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TrainSpec {
    pub iterations: usize,
    /// None: full batch.
    pub batch_size: Option<usize>,
    pub lr: f64,
    pub schedule: LrSchedule,
    pub optimizer: Optimizer,
    pub weight_decay: f64,
    /// Seeds mini-batch shuffling.
    pub seed: u64,
    /// Report the loss every this many iterations.
    pub log_every: usize,
}

/// Receives training metrics; implementations decide how to show them.
pub trait ProgressSink {
    /// Called once before the first step.
    fn start(&mut self, total_iterations: usize);
    /// Called every `log_every` iterations and at the last one.
    fn step(&mut self, iteration: usize, loss: f64, lr: f64);
    /// Called at the end of an epoch with a one-line summary (e.g. held-out accuracy).
    fn epoch(&mut self, _epoch: usize, _summary: &str) {}
    /// Called once after the last step.
    fn finish(&mut self);
}

/// A sink that ignores everything.
#[derive(Debug, Default)]
pub struct Silent;

impl ProgressSink for Silent {
    fn start(&mut self, _: usize) {}
    fn step(&mut self, _: usize, _: f64, _: f64) {}
    fn finish(&mut self) {}
}

/// What a training run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainReport {
    pub iterations: usize,
    /// (iteration, loss) at every report point (the objective on that batch, dropout on).
    pub losses: Vec<(usize, f64)>,
    /// Values recorded beside the loss at the same report points, by name, one value per entry
    /// of `losses`: [`train`]'s are the objective's [`Objective::tracked`] (concrete dropout: p
    /// per layer), read before the step, i.e. from the parameters that gave that loss; those of
    /// [`stacked::train_stacked_with`] are [`stacked::StackedObjective::tracked`], one series
    /// per member (`<name>/member<m>`). Empty when the objective tracks nothing.
    pub tracked: Vec<(String, Vec<f64>)>,
    /// [`stacked::train_stacked`] only: each member's own loss at the report points (one row
    /// per member, one value per entry of `losses`, which holds their mean). Empty for [`train`].
    pub member_losses: Vec<Vec<f64>>,
    pub seconds: f64,
}

/// Training failures.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("training: {op}: {source}")]
    Torch {
        op: &'static str,
        #[source]
        source: tch::TchError,
    },
    #[error("training: shapes do not match: inputs {x:?}, targets {y:?}")]
    Shape { x: Vec<i64>, y: Vec<i64> },
    #[error(
        "training diverged: loss is {loss} at iteration {iteration} (lower the learning rate)"
    )]
    Diverged { iteration: usize, loss: f64 },
    #[error("training diverged: member {member} of the stack has loss {loss} at iteration {iteration} (lower the learning rate)")]
    MemberDiverged {
        member: usize,
        iteration: usize,
        loss: f64,
    },
    #[error("training: {why}")]
    Unsupported { why: &'static str },
    #[error("training: {what} is 0, so nothing would be trained (an untrained net is no result)")]
    NothingToTrain { what: &'static str },
    #[error("stacked training: the stack has {model} members but {sets} data-set indices, {decays} weight decays and {seeds} shuffle seeds were given")]
    Members {
        model: usize,
        sets: usize,
        decays: usize,
        seeds: usize,
    },
}

/// The optimiser of a run: libtorch's SGD, or Adam (fused on the CPU, see [`adam`]).
enum RunOptimizer {
    Torch(nn::Optimizer),
    Adam(adam::FusedAdam),
}

impl RunOptimizer {
    fn backward_step(&mut self, loss: &Tensor, lr: f64) {
        match self {
            RunOptimizer::Torch(opt) => {
                opt.set_lr(lr);
                opt.backward_step(loss);
            }
            RunOptimizer::Adam(opt) => opt.backward_step(loss, lr),
        }
    }
}

fn build_optimizer(vs: &nn::VarStore, spec: &TrainSpec) -> Result<RunOptimizer, TrainError> {
    let opt = match spec.optimizer {
        Optimizer::Sgd { momentum } => nn::sgd(momentum, 0.0, spec.weight_decay, false)
            .build(vs, spec.lr)
            .map(RunOptimizer::Torch),
        Optimizer::Adam { beta1, beta2 } => {
            let cfg = adam::AdamConfig::new(beta1, beta2, spec.weight_decay);
            match adam::FusedAdam::new(vs, cfg) {
                Ok(Some(fused)) => Ok(RunOptimizer::Adam(fused)),
                Ok(None) => nn::adam(beta1, beta2, spec.weight_decay)
                    .build(vs, spec.lr)
                    .map(RunOptimizer::Torch),
                Err(e) => Err(e),
            }
        }
    };
    opt.map_err(|source| TrainError::Torch {
        op: "building the optimiser",
        source,
    })
}

/// A training objective: the loss of one batch, handed to [`train`] as a value (the loop
/// knows no objective by name). Implementations outside this crate are welcome: a method
/// brings its own (e.g. a heteroscedastic Gaussian NLL).
pub trait Objective {
    /// Checks the data's shapes before training: `x` [N, ...] against the targets.
    fn check_shapes(&self, x: &Tensor, y: &Tensor) -> Result<(), TrainError>;
    /// The scalar loss of the net's outputs `out` on a batch with targets `y`.
    fn loss(&self, out: &Tensor, y: &Tensor) -> Tensor;
    /// Learnt values worth following through training (concrete dropout: its drop rates), by
    /// name, read from the current parameters; [`train`] records them at every report point
    /// ([`TrainReport::tracked`]). The names must be the same at every call. By default none.
    fn tracked(&self) -> Vec<(String, f64)> {
        Vec::new()
    }
    /// The loss of one training step on the batch `x`, `y`: by default [`Objective::loss`] of
    /// one `model.forward_t(x, true)`. An objective that needs the inputs themselves (the
    /// adversarial term of [`Adversarial`]) runs its own forwards here.
    fn batch_loss(&self, model: &dyn ModuleT, x: &Tensor, y: &Tensor) -> Tensor {
        self.loss(&model.forward_t(x, true), y)
    }
}

/// 0.5 * mean over points of the squared error (summed over outputs); targets [N, k] float.
/// The project's regression loss (see the crate docs for the weight-decay convention).
#[derive(Debug, Clone, Copy, Default)]
pub struct HalfMse;

impl Objective for HalfMse {
    fn check_shapes(&self, x: &Tensor, y: &Tensor) -> Result<(), TrainError> {
        if y.size()[0] != x.size()[0] || y.dim() != 2 {
            return Err(TrainError::Shape {
                x: x.size(),
                y: y.size(),
            });
        }
        Ok(())
    }

    fn loss(&self, out: &Tensor, y: &Tensor) -> Tensor {
        (out - y)
            .square()
            .sum_dim_intlist(1, false, Kind::Float)
            .mean(Kind::Float)
            * 0.5
    }
}

/// Mean cross-entropy of the logits; targets [N] class indices (i64).
#[derive(Debug, Clone, Copy, Default)]
pub struct CrossEntropy;

impl Objective for CrossEntropy {
    fn check_shapes(&self, x: &Tensor, y: &Tensor) -> Result<(), TrainError> {
        if y.size() != [x.size()[0]] {
            return Err(TrainError::Shape {
                x: x.size(),
                y: y.size(),
            });
        }
        Ok(())
    }

    fn loss(&self, out: &Tensor, y: &Tensor) -> Tensor {
        out.cross_entropy_for_logits(y)
    }
}

/// Trains `model` (whose variables live in `vs`) on regression data `x` [N, d], `y` [N, k]
/// with loss 0.5 * MSE, dropout on.
pub fn train_regression(
    vs: &nn::VarStore,
    model: &dyn ModuleT,
    x: &Tensor,
    y: &Tensor,
    spec: &TrainSpec,
    progress: &mut dyn ProgressSink,
) -> Result<TrainReport, TrainError> {
    train(vs, model, x, y, spec, &HalfMse, progress, &mut |_| None)
}

/// Trains a classifier on `x` [N, ...] and class labels `labels` [N] (i64) with cross-entropy.
/// After every epoch (one pass over the shuffled data) `on_epoch(epoch)` may return a summary
/// (e.g. held-out accuracy), which is passed to the progress sink.
pub fn train_classifier(
    vs: &nn::VarStore,
    model: &dyn ModuleT,
    x: &Tensor,
    labels: &Tensor,
    spec: &TrainSpec,
    progress: &mut dyn ProgressSink,
    on_epoch: &mut dyn FnMut(usize) -> Option<String>,
) -> Result<TrainReport, TrainError> {
    train(
        vs,
        model,
        x,
        labels,
        spec,
        &CrossEntropy,
        progress,
        on_epoch,
    )
}

/// The one training loop: `model` (whose variables live in `vs`) on inputs `x` [N, ...] and
/// targets `y`, minimising `objective` with dropout on. Each step evaluates
/// [`Objective::batch_loss`] once (one `model.forward_t(.., true)` unless the objective runs
/// more; [`DropoutWarmup`] counts steps by these calls). After every epoch (one pass over the
/// shuffled data) `on_epoch(epoch)` may return a summary, which is passed to the progress sink.
#[allow(clippy::too_many_arguments)]
pub fn train(
    vs: &nn::VarStore,
    model: &dyn ModuleT,
    x: &Tensor,
    y: &Tensor,
    spec: &TrainSpec,
    objective: &dyn Objective,
    progress: &mut dyn ProgressSink,
    on_epoch: &mut dyn FnMut(usize) -> Option<String>,
) -> Result<TrainReport, TrainError> {
    objective.check_shapes(x, y)?;
    if spec.iterations == 0 {
        return Err(TrainError::NothingToTrain {
            what: "the number of iterations",
        });
    }
    let n = x.size()[0];
    let mut opt = build_optimizer(vs, spec)?;
    let mut rng = SeededRng::new(spec.seed);
    let batch = spec
        .batch_size
        .map(|b| b.min(n as usize))
        .filter(|&b| b < n as usize);
    let mut order: Vec<i64> = (0..n).collect();
    let mut cursor = order.len();
    let mut epoch = 0;
    let started = Instant::now();
    let mut losses = Vec::new();
    let mut tracked: Vec<(String, Vec<f64>)> = Vec::new();
    progress.start(spec.iterations);
    for it in 0..spec.iterations {
        let lr = spec.schedule.lr(spec.lr, it, spec.iterations);
        let (xb, yb) = match batch {
            None => (x.shallow_clone(), y.shallow_clone()),
            Some(b) => {
                if cursor + b > order.len() {
                    if it > 0 {
                        epoch += 1;
                        if let Some(summary) = on_epoch(epoch) {
                            progress.epoch(epoch, &summary);
                        }
                    }
                    rng.shuffle(&mut order);
                    cursor = 0;
                }
                let idx = Tensor::from_slice(&order[cursor..cursor + b]).to_device(x.device());
                cursor += b;
                (x.index_select(0, &idx), y.index_select(0, &idx))
            }
        };
        let loss = objective.batch_loss(model, &xb, &yb);
        let last = it + 1 == spec.iterations;
        let report = it.is_multiple_of(spec.log_every.max(1)) || last;
        if report {
            // Before the step: the values of the parameters that gave this loss.
            let values = objective.tracked();
            if tracked.is_empty() {
                tracked = values
                    .iter()
                    .map(|(n, _)| (n.clone(), Vec::new()))
                    .collect();
            }
            for ((name, series), (got, v)) in tracked.iter_mut().zip(values) {
                debug_assert_eq!(*name, got, "Objective::tracked changed its names");
                series.push(v);
            }
        }
        opt.backward_step(&loss, lr);
        if report {
            let l = f64::try_from(&loss).map_err(|source| TrainError::Torch {
                op: "reading the loss",
                source,
            })?;
            if !l.is_finite() {
                return Err(TrainError::Diverged {
                    iteration: it,
                    loss: l,
                });
            }
            losses.push((it, l));
            progress.step(it, l, lr);
        }
    }
    if batch.is_some() {
        if let Some(summary) = on_epoch(epoch + 1) {
            progress.epoch(epoch + 1, &summary);
        }
    }
    progress.finish();
    Ok(TrainReport {
        iterations: spec.iterations,
        losses,
        tracked,
        member_losses: Vec::new(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcd_models::mlp::{Activation, InitScheme, Mlp, MlpSpec};
    use tch::Device;

    #[test]
    fn inv_schedule_matches_caffe_formula() {
        let s = LrSchedule::Inv {
            gamma: 1e-4,
            power: 0.25,
        };
        assert_eq!(s.lr(0.01, 0, 10), 0.01);
        let expected = 0.01 * (1.0f64 + 1e-4 * 10_000.0).powf(-0.25);
        assert!((s.lr(0.01, 10_000, 20_000) - expected).abs() < 1e-15);
        let c = LrSchedule::Cosine {
            final_fraction: 0.1,
        };
        assert!((c.lr(1.0, 100, 100) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn fits_a_line_and_loss_decreases() {
        tch::set_num_threads(1);
        let x = Tensor::linspace(-1.0, 1.0, 64, (Kind::Float, Device::Cpu)).view([64, 1]);
        let y = &x * 2.0 + 0.5;
        let vs = nn::VarStore::new(Device::Cpu);
        let spec = MlpSpec {
            input_dim: 1,
            hidden: vec![32],
            output_dim: 1,
            activation: Activation::Relu,
            dropout: 0.05,
            input_dropout: 0.0,
            init: InitScheme::CaffeXavier,
            first_layer: None,
        };
        let m = Mlp::new(&vs.root(), &spec, 1);
        let t = TrainSpec {
            iterations: 400,
            batch_size: Some(16),
            lr: 0.01,
            schedule: LrSchedule::Constant,
            optimizer: Optimizer::Adam {
                beta1: 0.9,
                beta2: 0.999,
            },
            weight_decay: 0.0,
            seed: 3,
            log_every: 50,
        };
        let report = train_regression(&vs, &m, &x, &y, &t, &mut Silent).unwrap();
        let first = report.losses.first().unwrap().1;
        let last = report.losses.last().unwrap().1;
        assert!(last < 0.1 * first, "first {first} last {last}");
        let bad = Tensor::zeros([3, 1], (Kind::Float, Device::Cpu));
        assert!(matches!(
            train_regression(&vs, &m, &x, &bad, &t, &mut Silent),
            Err(TrainError::Shape { .. })
        ));
        let none = TrainSpec {
            iterations: 0,
            ..t.clone()
        };
        let before: Vec<Tensor> = vs.trainable_variables().iter().map(Tensor::copy).collect();
        let err = train_regression(&vs, &m, &x, &y, &none, &mut Silent).unwrap_err();
        assert!(
            matches!(err, TrainError::NothingToTrain { .. }),
            "zero iterations must be refused, got {err}"
        );
        for (a, b) in before.iter().zip(vs.trainable_variables()) {
            assert!(a.equal(&b), "a refused run must not touch the weights");
        }
    }

    #[test]
    fn classifier_learns_two_blobs_and_reports_epochs() {
        tch::set_num_threads(1);
        // Two classes: x < 0 and x > 0.
        let x = Tensor::linspace(-1.0, 1.0, 128, (Kind::Float, Device::Cpu)).view([128, 1]);
        let labels = x.gt(0.0).to_kind(Kind::Int64).view([128]);
        let vs = nn::VarStore::new(Device::Cpu);
        let spec = MlpSpec {
            input_dim: 1,
            hidden: vec![16],
            output_dim: 2,
            activation: Activation::Relu,
            dropout: 0.1,
            input_dropout: 0.0,
            init: InitScheme::Torch,
            first_layer: None,
        };
        let m = Mlp::new(&vs.root(), &spec, 2);
        let t = TrainSpec {
            iterations: 160,
            batch_size: Some(32),
            lr: 0.05,
            schedule: LrSchedule::Constant,
            optimizer: Optimizer::Sgd { momentum: 0.9 },
            weight_decay: 0.0,
            seed: 1,
            log_every: 20,
        };
        let mut epochs = Vec::new();
        train_classifier(&vs, &m, &x, &labels, &t, &mut Silent, &mut |e| {
            epochs.push(e);
            None
        })
        .unwrap();
        // 160 steps of 32 over 128 points: 40 epochs, each reported once, in order.
        assert_eq!(epochs, (1..=40).collect::<Vec<_>>());
        let pred = m.forward_t(&x, false).argmax(1, false);
        let acc = f64::try_from(
            pred.eq_tensor(&labels)
                .to_kind(Kind::Double)
                .mean(Kind::Double),
        )
        .unwrap();
        assert!(acc > 0.95, "accuracy {acc}");
    }
}
