//! The uci study's methods besides MC dropout's 2018 grid: deep ensembles and concrete dropout,
//! each trained as one [`StackedMlp`] per group of splits (like the grid), resumable per split
//! in `<cache>/uci/<key>/<data set>/` (the key names the method and its settings, so MC
//! dropout's folders are not touched).
//!
//! **Deep ensembles** (Lakshminarayanan, Pritzel & Blundell 2017): per split `model.members`
//! nets (default 5) from different seeds, each with a mean and a variance output (variance =
//! softplus + 1e-6, [`MIN_VARIANCE`]), trained on the Gaussian NLL of the standardised targets
//! ([`StackedGaussianNll`]) on the whole training part, no dropout, no weight decay, no
//! validation split; every member of every split of a group in one stack, each with its own
//! seed and mini-batch order. The predictive is the members' equal-weight mixture, in original
//! units (`gaussian_mixture_log_likelihood`, `RegressionPredictive::gaussian_mixture`). Their
//! adversarial training is not done here. "Standard" RMSE: the first member alone (as co2).
//!
//! **Concrete dropout** (Gal, Hron & Kendall 2017), no grid over p: the net of the MC-dropout
//! protocol (dropout on the input and on the hidden layer), each drop rate learnt through the
//! relaxed mask (initial p [`INITIAL_P`], temperature `model.temperature`), on 0.5 MSE plus the
//! halved regulariser of `methods::concrete_dropout` with `weight_reg = l^2 / (tau N)` and
//! `dropout_reg = 2 / (tau N)`, Adam's decay 0. Here tau is in the units of the standardised
//! targets the MSE is computed on: the grid's tau (original units) times the split's target
//! variance. (The MC-dropout protocol puts the original-unit tau into its weight decay, as the
//! authors' code; in concrete dropout's entropy term that made the pull towards p = 0.5 about
//! y_std^2 times too strong: a first full run of the five small sets learnt hidden rates of 0.25
//! to 0.45 and lost to MC dropout on four of them.) tau is still chosen per split from the data set's tau grid by validation
//! log-likelihood (the authors' UCI setup for concrete dropout was not at hand: this follows
//! the 2018 grid for tau only), then the chosen tau is retrained on the whole training part.
//! MC passes use the relaxed masks with the learnt rates (as the co2 method and the authors'
//! Keras layer); predictive variance = passes' variance + 1/tau, log-likelihood by logsumexp.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context as _, Result};
use mcd_datasets::uci::{SetName, UciDataset, UciSplit};
use mcd_evaluation::regression::{coverage, rmse, McStream};
use mcd_models::mc::to_vec_f32;
use mcd_models::mlp::Activation;
use mcd_models::rng::splitmix64;
use mcd_models::stacked::{Member, StackedMlp};
use mcd_trainer::stacked::{
    train_stacked_with, StackedData, StackedGaussianNll, StackedObjective, StackedSpec,
};
use mcd_trainer::TrainReport;
use serde::Serialize;
use tch::{Device, Kind, Tensor};

use super::{merge_chunk, GridPoint, Protocol, SplitResult, CURVE_POINTS, GRID_LOG_EVERY};
use crate::cache::{DataFingerprint, Key, SCHEMA};
use crate::config::StudyKind;
use crate::config::UciConfig;
use crate::methods::ensemble::MIN_VARIANCE;
use crate::methods::{gaussian_mixture_log_likelihood, MethodRef, RegressionPredictive};
use crate::output::OutputDir;
use crate::Context;

/// Concrete dropout's initial drop rate of every layer (the authors').
pub const INITIAL_P: f64 = 0.1;

/// A method other than MC dropout's grid, with its settings.
#[derive(Debug, Clone, Copy, Serialize)]
pub(super) enum Other {
    Ensemble {
        members: usize,
    },
    Concrete {
        temperature: f64,
        initial_p: f64,
        /// The units of tau in the regulariser: `standardised` (the grid's tau times the
        /// split's target variance, the units the 0.5 MSE is computed in).
        regulariser_tau: &'static str,
    },
}

impl Other {
    /// None for MC dropout (the 2018 grid of the parent module).
    pub(super) fn of(method: MethodRef, cfg: &UciConfig) -> Option<Self> {
        match method.name() {
            // `Ensemble::outputs_per_target` is a mean and a variance per member.
            "ensemble" => Some(Other::Ensemble {
                members: method.outputs_per_target() / 2,
            }),
            "concrete_dropout" => Some(Other::Concrete {
                temperature: cfg.temperature,
                initial_p: INITIAL_P,
                regulariser_tau: "standardised",
            }),
            _ => None,
        }
    }

    pub(super) fn name(&self) -> &'static str {
        match self {
            Other::Ensemble { .. } => "ensemble",
            Other::Concrete { .. } => "concrete_dropout",
        }
    }

    /// Key of the resume folder: the protocol, the method and its settings.
    pub(super) fn key(&self, proto: &Protocol, name: &SetName) -> Result<String> {
        #[derive(Serialize)]
        struct Train<'a> {
            protocol: &'a Protocol,
            method: &'a Other,
        }
        Key {
            schema: SCHEMA,
            study: StudyKind::Uci,
            model: &proto.spec,
            train: &Train {
                protocol: proto,
                method: self,
            },
            seed: proto.seed,
            data: &DataFingerprint::Named(match name {
                SetName::Uci(n) => n.to_string(),
                SetName::Own { label, fingerprint } => format!("{label} {fingerprint}"),
            }),
            method: self.name(),
            dropout_warmup: 0,
        }
        .hash()
    }

    /// The log line of a data set.
    pub(super) fn describe(&self, proto: &Protocol) -> String {
        match self {
            Other::Ensemble { members } => format!(
                "deep ensemble of {members}, {} epochs, batch {}, lr {}",
                proto.epochs, proto.batch_size, proto.lr
            ),
            Other::Concrete { temperature, .. } => format!(
                "concrete dropout (p learnt from {INITIAL_P}, temperature {temperature}), tau \
                 grid {:?}, {} epochs",
                proto.tau_values, proto.epochs
            ),
        }
    }

    /// The log line of a finished split.
    pub(super) fn split_line(&self, r: &SplitResult) -> String {
        let what = match self {
            Other::Ensemble { .. } => "first member alone".to_string(),
            Other::Concrete { .. } => format!(
                "tau {} learnt p {:?} | deterministic",
                r.tau,
                r.learnt_p
                    .as_deref()
                    .unwrap_or(&[])
                    .iter()
                    .map(|p| (p * 1e4).round() / 1e4)
                    .collect::<Vec<_>>()
            ),
        };
        format!(
            "{} split {:2}: {} | test RMSE {:.4} LL {:.4} | {what} RMSE {:.4} | {:.1} s",
            r.dataset,
            r.split,
            self.name(),
            r.test_rmse,
            r.test_ll,
            r.standard_rmse,
            r.seconds
        )
    }

    /// The table's "most chosen" column.
    pub(super) fn chosen(&self, r: &[SplitResult]) -> String {
        match self {
            Other::Ensemble { members } => format!("{members} members"),
            Other::Concrete { .. } => {
                let mut taus: Vec<f64> = r.iter().map(|s| s.tau).collect();
                taus.sort_by(f64::total_cmp);
                let layers = r
                    .iter()
                    .filter_map(|s| s.learnt_p.as_ref())
                    .map(Vec::len)
                    .max()
                    .unwrap_or(0);
                let mean_p: Vec<String> = (0..layers)
                    .map(|l| {
                        let v: Vec<f64> = r
                            .iter()
                            .filter_map(|s| s.learnt_p.as_ref()?.get(l).copied())
                            .collect();
                        format!("{:.3}", v.iter().sum::<f64>() / v.len().max(1) as f64)
                    })
                    .collect();
                format!(
                    "learnt p (mean per layer) {}; median tau {}",
                    mean_p.join(" / "),
                    taus.get(taus.len() / 2).copied().unwrap_or(f64::NAN)
                )
            }
        }
    }

    /// Trains and tests a group of splits.
    pub(super) fn run_group(
        &self,
        ds: &UciDataset,
        splits: &[usize],
        proto: &Protocol,
        ctx: &Context,
        out: &OutputDir,
    ) -> Result<Vec<SplitResult>> {
        match *self {
            Other::Ensemble { members } => ensemble_group(ds, splits, members, proto, ctx, out),
            Other::Concrete {
                temperature,
                initial_p,
                ..
            } => concrete_group(ds, splits, temperature, initial_p, proto, ctx, out),
        }
    }
}

fn label(ds: &UciDataset, splits: &[usize], what: &str) -> String {
    format!(
        "{} splits {}-{} {what}",
        ds.name,
        splits[0],
        splits[splits.len() - 1]
    )
}

/// Logged steps of a training of `rows` rows: about [`CURVE_POINTS`].
fn curve_every(proto: &Protocol, rows: usize) -> usize {
    let steps = proto.epochs * rows.div_ceil(proto.batch_size.clamp(1, rows.max(1)));
    (steps / CURVE_POINTS).max(1)
}

/// Trains `stack` with `objective`: member m on `sets[member_set[m]]`'s training part.
#[allow(clippy::too_many_arguments)]
fn train(
    stack: &StackedMlp,
    objective: &dyn StackedObjective,
    sets: &[&UciSplit],
    member_set: &[usize],
    decays: Vec<f64>,
    proto: &Protocol,
    ctx: &Context,
    label: &str,
    log_every: usize,
) -> Result<TrainReport> {
    let dev = |t: &Tensor| t.to_device(ctx.device);
    let xs: Vec<Tensor> = sets.iter().map(|s| dev(&s.x_train)).collect();
    let ys: Vec<Tensor> = sets.iter().map(|s| dev(&s.y_train)).collect();
    let data = StackedData::new(&xs, &ys, member_set.to_vec())?;
    let spec = StackedSpec {
        epochs: proto.epochs,
        batch_size: proto.batch_size,
        lr: proto.lr,
        beta1: proto.beta1,
        beta2: proto.beta2,
        eps: 1e-8,
        weight_decay: decays,
        shuffle_seeds: stack
            .members()
            .iter()
            .map(|m| splitmix64(m.seed ^ 0x5_4FF1E))
            .collect(),
        log_every,
    };
    let mut sink = ctx.display.sink(&format!("{label} ({} nets)", stack.len()));
    train_stacked_with(stack, &data, &spec, objective, sink.as_mut())
        .with_context(|| format!("training {label}"))
}

/// The test inputs of every member's set, `[M, rows, d]`.
fn member_inputs(sets: &[&UciSplit], member_set: &[usize], device: Device) -> Tensor {
    Tensor::stack(
        &member_set
            .iter()
            .map(|&s| sets[s].x_test.shallow_clone())
            .collect::<Vec<_>>(),
        0,
    )
    .to_device(device)
}

/// A set's test targets in original units.
fn targets(s: &UciSplit) -> Result<Vec<f64>> {
    let y = to_vec_f32(&s.y_test).context("reading a split's test targets")?;
    Ok(y.iter()
        .map(|&v| f64::from(v) * s.y_std + s.y_mean)
        .collect())
}

fn ensemble_group(
    ds: &UciDataset,
    splits: &[usize],
    members: usize,
    proto: &Protocol,
    ctx: &Context,
    out: &OutputDir,
) -> Result<Vec<SplitResult>> {
    let started = Instant::now();
    let full: Vec<UciSplit> = splits
        .iter()
        .map(|&k| ds.split(k, false))
        .collect::<Result<_, _>>()?;
    let mut stack_members = Vec::new();
    let mut member_set = Vec::new();
    for (s, &k) in splits.iter().enumerate() {
        for j in 0..members {
            stack_members.push(Member {
                dropout: 0.0,
                input_dropout: 0.0,
                seed: proto.member_seed(&ds.name, k, 2, j),
            });
            member_set.push(s);
        }
    }
    let spec = mcd_models::mlp::MlpSpec {
        output_dim: 2,
        ..proto.spec.clone()
    };
    let stack = StackedMlp::new(&spec, &stack_members);
    let nll = StackedGaussianNll {
        min_variance: MIN_VARIANCE,
    };
    let sets: Vec<&UciSplit> = full.iter().collect();
    let report = train(
        &stack,
        &nll,
        &sets,
        &member_set,
        vec![0.0; stack_members.len()],
        proto,
        ctx,
        &label(ds, splits, "ensemble"),
        curve_every(proto, sets[0].train_rows.len()),
    )?;
    // Means and variances, [M, rows, 1] each, standardised.
    let x = member_inputs(&sets, &member_set, ctx.device);
    let (mu, var) = tch::no_grad(|| nll.split(&stack.forward_t(&x, false)));
    let mu = to_vec_f32(&mu.to_device(Device::Cpu)).context("reading the members' means")?;
    let var = to_vec_f32(&var.to_device(Device::Cpu)).context("reading the members' variances")?;
    let rows = sets[0].test_rows.len();
    let seconds = started.elapsed().as_secs_f64() / splits.len() as f64;
    out.log(&format!(
        "{}: {} x {members} nets trained and tested in {:.1} s",
        label(ds, splits, "done"),
        splits.len(),
        seconds * splits.len() as f64
    ));
    let logged: Vec<usize> = report.losses.iter().map(|l| l.0).collect();
    splits
        .iter()
        .enumerate()
        .map(|(s, &k)| {
            let set = &full[s];
            let y = targets(set)?;
            let range = s * members * rows..(s + 1) * members * rows;
            // Member-major [members, rows], in original units.
            let means: Vec<f32> = mu[range.clone()]
                .iter()
                .map(|&m| (f64::from(m) * set.y_std + set.y_mean) as f32)
                .collect();
            let vars: Vec<f64> = var[range]
                .iter()
                .map(|&v| f64::from(v) * set.y_std * set.y_std)
                .collect();
            let y32: Vec<f32> = y.iter().map(|&v| v as f32).collect();
            let pred = RegressionPredictive::gaussian_mixture(&means, &vars, members, rows)?;
            let ll = gaussian_mixture_log_likelihood(&means, &vars, members, rows, &y32)?;
            let first: Vec<f64> = means[..rows].iter().map(|&m| f64::from(m)).collect();
            let curve: Vec<(usize, f64)> = (0..logged.len())
                .map(|i| {
                    let own = &report.member_losses[s * members..(s + 1) * members];
                    (
                        logged[i],
                        own.iter().map(|c| c[i]).sum::<f64>() / members as f64,
                    )
                })
                .collect();
            Ok(SplitResult {
                dataset: ds.name.dir_name().to_string(),
                split: k,
                p: 0.0,
                tau: 0.0,
                grid: Vec::new(),
                test_rmse: rmse(&pred.mean, &y)?,
                test_ll: ll,
                standard_rmse: rmse(&first, &y)?,
                coverage_95: coverage(&pred.mean, &pred.sd, &y, 1.96)?,
                epochs: proto.epochs,
                seconds,
                rows: set.test_rows.clone(),
                y,
                mean: pred.mean,
                sd: pred.sd,
                train_curve: Some(curve),
                learnt_p: None,
                train_p: None,
            })
        })
        .collect()
}

/// Stream position of MC pass 0 (training calls count from 0).
const MC_CALLS: u64 = 1 << 40;

/// A stack of concrete-dropout MLPs: the weights of a [`StackedMlp`] without its Bernoulli
/// dropout, and per layer (its input: the data, then each hidden layer) a learnt rate per
/// member, `logit_p` `[M, 1, 1]`, and a uniform-noise stream per member.
struct ConcreteStack {
    stack: StackedMlp,
    logit_p: Vec<Tensor>,
    /// `seeds[l][m]`: member m's noise stream of layer l.
    seeds: Vec<Vec<u64>>,
    temperature: f64,
    activation: Activation,
    calls: AtomicU64,
    /// 0.5 * weight_reg and 0.5 * dropout_reg per member, `[M]` (the halved regulariser).
    weight_reg: Tensor,
    dropout_reg: Tensor,
}

/// How a forward draws its uniforms.
#[derive(Clone, Copy)]
enum Draw {
    /// The next training call, for every member.
    Train,
    /// Passes `first..first + passes` over `rows` inputs per member (rows pass-major).
    Passes { first: u64, passes: usize },
}

impl ConcreteStack {
    /// Members `seeds` of shape `proto.spec` (dropout on the input and the hidden layers), each
    /// with its `tau` and training size `n` for the regulariser.
    fn new(
        proto: &Protocol,
        seeds: &[u64],
        taus: &[f64],
        n: &[usize],
        temperature: f64,
        initial_p: f64,
    ) -> Self {
        let members: Vec<Member> = seeds
            .iter()
            .map(|&seed| Member {
                dropout: 0.0,
                input_dropout: 0.0,
                seed,
            })
            .collect();
        let stack = StackedMlp::new(&proto.spec, &members);
        let m = seeds.len() as i64;
        let layers = stack.layers().len();
        let logit = (initial_p / (1.0 - initial_p)).ln();
        let logit_p = (0..layers)
            .map(|_| {
                Tensor::full([m, 1, 1], logit, (Kind::Float, Device::Cpu)).set_requires_grad(true)
            })
            .collect();
        let noise = (0..layers)
            .map(|l| {
                seeds
                    .iter()
                    .map(|&s| splitmix64(s ^ splitmix64(0xC0C2_E7E0 + l as u64)))
                    .collect()
            })
            .collect();
        let l2 = proto.length_scale * proto.length_scale;
        let per = |f: &dyn Fn(f64, usize) -> f64| {
            Tensor::from_slice(
                &taus
                    .iter()
                    .zip(n)
                    .map(|(&t, &n)| f(t, n))
                    .collect::<Vec<f64>>(),
            )
            .to_kind(Kind::Float)
        };
        Self {
            weight_reg: per(&|t, n| 0.5 * l2 / (t * n as f64)),
            dropout_reg: per(&|t, n| 0.5 * 2.0 / (t * n as f64)),
            stack,
            logit_p,
            seeds: noise,
            temperature,
            activation: proto.spec.activation,
            calls: AtomicU64::new(0),
        }
    }

    /// Uniforms in (0, 1) for `xs` `[M, rows, width]`: member m's element i of call c is a hash
    /// of (its seed, c, i), as `ConcreteLayer`'s stream.
    fn uniforms(&self, layer: usize, xs: &Tensor, draw: Draw) -> Tensor {
        let size = xs.size();
        let m = size[0] as usize;
        let per = (size[1] * size[2]) as usize;
        let mut v = vec![0f32; m * per];
        let fill = |seed: u64, call: u64, out: &mut [f32]| {
            let base = splitmix64(seed ^ splitmix64(call));
            for (i, u) in out.iter_mut().enumerate() {
                *u = ((splitmix64(base.wrapping_add(i as u64)) >> 40) as f32 + 0.5)
                    / (1u32 << 24) as f32;
            }
        };
        let call = match draw {
            Draw::Train => self.calls.fetch_add(1, Ordering::Relaxed),
            Draw::Passes { .. } => 0,
        };
        let seeds = &self.seeds[layer];
        let work = |chunk: &mut [f32], m0: usize| {
            for (j, part) in chunk.chunks_mut(per).enumerate() {
                let seed = seeds[m0 + j];
                match draw {
                    Draw::Train => fill(seed, call, part),
                    Draw::Passes { first, passes } => {
                        let len = per / passes;
                        for (t, pass) in part.chunks_mut(len).enumerate() {
                            fill(seed, MC_CALLS + first + t as u64, pass);
                        }
                    }
                }
            }
        };
        let half = m.div_ceil(2);
        if m >= 2 && m * per >= 1 << 16 {
            let (a, b) = v.split_at_mut(half * per);
            std::thread::scope(|s| {
                s.spawn(|| work(a, 0));
                work(b, half);
            });
        } else {
            work(&mut v, 0);
        }
        Tensor::from_slice(&v)
            .view(size.as_slice())
            .to_device(xs.device())
    }

    /// `xs * (1 - z) / (1 - p)` with the relaxed mask of layer `l`.
    fn drop(&self, l: usize, xs: &Tensor, draw: Draw) -> Tensor {
        let u = self.uniforms(l, xs, draw);
        let lp = &self.logit_p[l];
        let z = ((lp + u.logit(None)) / self.temperature).sigmoid();
        xs * (-z + 1.0) * (lp.exp() + 1.0)
    }

    /// Every member on its rows `[M, rows, d]`; masks on unless `draw` is None.
    fn forward(&self, xs: &Tensor, draw: Option<Draw>) -> Tensor {
        let layers = self.stack.layers();
        let mut h = xs.shallow_clone();
        for (l, (w, b)) in layers.iter().enumerate() {
            if let Some(d) = draw {
                h = self.drop(l, &h, d);
            }
            h = b.baddbmm(&h, w, 1.0, 1.0);
            if l + 1 < layers.len() {
                h = match self.activation {
                    Activation::Relu => h.relu(),
                    Activation::Tanh => h.tanh(),
                    Activation::Sigmoid => h.sigmoid(),
                };
            }
        }
        h
    }

    /// The halved regulariser per member, `[M]`.
    fn regulariser(&self) -> Tensor {
        let mut total: Option<Tensor> = None;
        for ((w, _), lp) in self.stack.layers().iter().zip(&self.logit_p) {
            let k = w.size()[1] as f64;
            let term = crate::methods::concrete_dropout::layer_penalty(
                &w.square()
                    .sum_dim_intlist([1i64, 2].as_slice(), false, Kind::Float),
                &lp.view([-1]),
                k,
                &self.weight_reg,
                &self.dropout_reg,
            );
            total = Some(match total {
                None => term,
                Some(t) => t + term,
            });
        }
        total.expect("a stack has layers")
    }

    /// Learnt p of every layer, per member: `[layer][member]`.
    fn rates(&self) -> Vec<Vec<f64>> {
        tch::no_grad(|| {
            self.logit_p
                .iter()
                .map(|l| {
                    Vec::<f32>::try_from(l.sigmoid().to_device(Device::Cpu).view([-1]))
                        .unwrap_or_default()
                        .into_iter()
                        .map(f64::from)
                        .collect()
                })
                .collect()
        })
    }
}

/// Concrete dropout's objective on a [`ConcreteStack`]: per member 0.5 MSE (relaxed masks on)
/// plus its halved regulariser.
struct ConcreteLoss<'a>(&'a ConcreteStack);

impl StackedObjective for ConcreteLoss<'_> {
    fn member_loss(&self, _model: &StackedMlp, x: &Tensor, y: &Tensor) -> Tensor {
        let len = x.size()[1];
        let mse = (self.0.forward(x, Some(Draw::Train)) - y)
            .square()
            .sum_dim_intlist([1i64, 2].as_slice(), false, Kind::Float)
            * (0.5 / len as f64);
        mse + self.0.regulariser()
    }

    fn parameters(&self) -> Vec<Tensor> {
        self.0.logit_p.iter().map(Tensor::shallow_clone).collect()
    }

    fn tracked(&self) -> Vec<(String, Vec<f64>)> {
        self.0
            .rates()
            .into_iter()
            .enumerate()
            .map(|(l, p)| (format!("p_before_layer{l}"), p))
            .collect()
    }
}

/// MC passes of every member over its set's test rows, into one stream per member (original
/// units, the member's tau), and the deterministic prediction (masks off).
fn concrete_evaluate(
    net: &ConcreteStack,
    sets: &[&UciSplit],
    member_set: &[usize],
    taus: &[f64],
    passes: usize,
    proto: &Protocol,
    device: Device,
) -> Result<Vec<(McStream, Vec<f64>)>> {
    let m = member_set.len() as i64;
    let x = member_inputs(sets, member_set, device);
    let (n, d) = (x.size()[1], x.size()[2]);
    let per_member = |f: &dyn Fn(&UciSplit) -> f64| {
        Tensor::from_slice(&member_set.iter().map(|&s| f(sets[s])).collect::<Vec<f64>>())
            .to_device(device)
            .view([m, 1, 1, 1])
    };
    let (y_std, y_mean) = (per_member(&|s| s.y_std), per_member(&|s| s.y_mean));
    let tau = Tensor::from_slice(taus)
        .to_device(device)
        .view([m, 1, 1, 1]);
    let targets_all: Vec<Vec<f64>> = member_set
        .iter()
        .map(|&s| targets(sets[s]))
        .collect::<Result<_>>()?;
    let y_t = Tensor::stack(
        &targets_all
            .iter()
            .map(|y| Tensor::from_slice(y))
            .collect::<Vec<_>>(),
        0,
    )
    .to_device(device)
    .view([m, 1, n, 1]);
    let mut streams = targets_all
        .iter()
        .zip(taus)
        .map(|(y, &t)| McStream::new(y.clone(), t))
        .collect::<Result<Vec<_>, _>>()?;
    // Passes per forward: about six floats per activation element (uniforms, mask, products).
    let widest = proto
        .spec
        .hidden
        .iter()
        .copied()
        .max()
        .unwrap_or(1)
        .max(d as usize);
    let per_pass = (m as usize) * (n as usize) * widest * 4 * 6;
    let chunk = (proto.budget_bytes / per_pass.max(1)).clamp(1, passes);
    let mut first = 0;
    tch::no_grad(|| -> Result<()> {
        while first < passes {
            let c = chunk.min(passes - first);
            let xs =
                x.unsqueeze(1)
                    .expand([m, c as i64, n, d], false)
                    .reshape([m, c as i64 * n, d]);
            let o = net.forward(
                &xs,
                Some(Draw::Passes {
                    first: first as u64,
                    passes: c,
                }),
            );
            let o = o.view([m, c as i64, n, 1]);
            merge_chunk(&mut streams, &o, 0, &y_t, &y_std, &y_mean, &tau)?;
            first += c;
        }
        Ok(())
    })?;
    let standard = tch::no_grad(|| net.forward(&x, None)).to_kind(Kind::Double)
        * y_std.view([m, 1, 1])
        + y_mean.view([m, 1, 1]);
    let standard = Vec::<f64>::try_from(standard.to_device(Device::Cpu).contiguous().view([-1]))?;
    let n = n as usize;
    Ok(streams
        .into_iter()
        .enumerate()
        .map(|(i, s)| (s, standard[i * n..(i + 1) * n].to_vec()))
        .collect())
}

fn concrete_group(
    ds: &UciDataset,
    splits: &[usize],
    temperature: f64,
    initial_p: f64,
    proto: &Protocol,
    ctx: &Context,
    out: &OutputDir,
) -> Result<Vec<SplitResult>> {
    let started = Instant::now();
    let taus_grid = proto.tau_values.clone();
    // tau search on the 80/20 validation splits.
    let val: Vec<UciSplit> = splits
        .iter()
        .map(|&k| ds.split(k, true))
        .collect::<Result<_, _>>()?;
    let (mut seeds, mut member_set, mut taus, mut ns) = (vec![], vec![], vec![], vec![]);
    // The regulariser's tau in the units of the training targets (standardised): the 0.5 MSE
    // it is added to is computed there. (The predictive's 1/tau stays in original units.)
    let mut reg_taus = Vec::new();
    for (s, &k) in splits.iter().enumerate() {
        for (g, &tau) in taus_grid.iter().enumerate() {
            seeds.push(proto.member_seed(&ds.name, k, 3, g));
            member_set.push(s);
            taus.push(tau);
            ns.push(val[s].train_rows.len());
            reg_taus.push(tau * val[s].y_std * val[s].y_std);
        }
    }
    let net = ConcreteStack::new(proto, &seeds, &reg_taus, &ns, temperature, initial_p);
    let sets: Vec<&UciSplit> = val.iter().collect();
    train(
        &net.stack,
        &ConcreteLoss(&net),
        &sets,
        &member_set,
        vec![0.0; seeds.len()],
        proto,
        ctx,
        &label(ds, splits, "concrete tau search"),
        GRID_LOG_EVERY,
    )?;
    let scores = concrete_evaluate(
        &net,
        &sets,
        &member_set,
        &taus,
        proto.validation_samples,
        proto,
        ctx.device,
    )?;
    let mut best = Vec::new();
    let mut grids = Vec::new();
    for (s, &k) in splits.iter().enumerate() {
        let points: Vec<GridPoint> = taus_grid
            .iter()
            .enumerate()
            .map(|(g, &tau)| {
                Ok(GridPoint {
                    p: 0.0,
                    tau,
                    validation_ll: scores[s * taus_grid.len() + g].0.log_likelihood()?.mean,
                })
            })
            .collect::<Result<_, mcd_evaluation::EvalError>>()?;
        let g = points
            .iter()
            .enumerate()
            .filter(|(_, pt)| pt.validation_ll.is_finite())
            .fold(None, |acc: Option<(usize, f64)>, (g, pt)| match acc {
                Some((_, b)) if b >= pt.validation_ll => acc,
                _ => Some((g, pt.validation_ll)),
            })
            .map(|(g, _)| g)
            .with_context(|| {
                format!(
                    "{} split {k}: no tau has a finite validation log-likelihood",
                    ds.name
                )
            })?;
        best.push(g);
        grids.push(points);
    }
    drop(net);

    // Retrain the chosen tau of each split on its whole training part; test.
    let full: Vec<UciSplit> = splits
        .iter()
        .map(|&k| ds.split(k, false))
        .collect::<Result<_, _>>()?;
    let seeds: Vec<u64> = splits
        .iter()
        .zip(&best)
        .map(|(&k, &g)| proto.member_seed(&ds.name, k, 4, g))
        .collect();
    let taus: Vec<f64> = best.iter().map(|&g| taus_grid[g]).collect();
    let ns: Vec<usize> = full.iter().map(|s| s.train_rows.len()).collect();
    let reg_taus: Vec<f64> = taus
        .iter()
        .zip(&full)
        .map(|(t, s)| t * s.y_std * s.y_std)
        .collect();
    let member_set: Vec<usize> = (0..splits.len()).collect();
    let net = ConcreteStack::new(proto, &seeds, &reg_taus, &ns, temperature, initial_p);
    let sets: Vec<&UciSplit> = full.iter().collect();
    let loss = ConcreteLoss(&net);
    let report = train(
        &net.stack,
        &loss,
        &sets,
        &member_set,
        vec![0.0; seeds.len()],
        proto,
        ctx,
        &label(ds, splits, "concrete retrain"),
        curve_every(proto, sets[0].train_rows.len()),
    )?;
    let rates = net.rates();
    let tested = concrete_evaluate(
        &net,
        &sets,
        &member_set,
        &taus,
        proto.test_samples,
        proto,
        ctx.device,
    )?;
    let seconds = started.elapsed().as_secs_f64() / splits.len() as f64;
    out.log(&format!(
        "{}: {} x {} nets trained and tested in {:.1} s",
        label(ds, splits, "done"),
        splits.len(),
        taus_grid.len() + 1,
        seconds * splits.len() as f64
    ));
    let logged: Vec<usize> = report.losses.iter().map(|l| l.0).collect();
    splits
        .iter()
        .enumerate()
        .zip(tested)
        .map(|((s, &k), (stream, standard))| {
            let learnt: Vec<f64> = rates.iter().map(|l| l[s]).collect();
            let train_p: Vec<(String, Vec<f64>)> = report
                .tracked
                .iter()
                .filter_map(|(name, v)| {
                    let (layer, member) = name.rsplit_once("/member")?;
                    (member.parse::<usize>().ok()? == s).then(|| (layer.to_string(), v.clone()))
                })
                .collect();
            let result = SplitResult::tested(
                ds,
                k,
                (learnt.first().copied().unwrap_or(f64::NAN), taus[s]),
                grids[s].clone(),
                (&stream, &standard),
                proto.epochs,
                seconds,
                full[s].test_rows.clone(),
                logged
                    .iter()
                    .copied()
                    .zip(report.member_losses[s].iter().copied())
                    .collect(),
            )?;
            Ok(SplitResult {
                learnt_p: Some(learnt),
                train_p: Some(train_p),
                ..result
            })
        })
        .collect::<Result<_, mcd_evaluation::EvalError>>()
        .map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcd_models::mlp::{InitScheme, MlpSpec};

    fn proto() -> Protocol {
        Protocol {
            spec: MlpSpec {
                input_dim: 3,
                hidden: vec![8],
                output_dim: 1,
                activation: Activation::Relu,
                dropout: 0.0,
                input_dropout: 0.0,
                init: InitScheme::GlorotUniform,
                first_layer: None,
            },
            epochs: 1,
            batch_size: 4,
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            length_scale: 1e-2,
            dropout_rates: Vec::new(),
            tau_values: vec![0.5, 2.0],
            validation_samples: 4,
            test_samples: 4,
            budget_bytes: 1 << 20,
            fused: false,
            seed: 3,
        }
    }

    /// Each member's regulariser is concrete dropout's per-layer term with its own tau and N,
    /// halved: written out by hand at the initial p.
    #[test]
    fn the_stacked_regulariser_by_hand() {
        let (taus, ns) = ([0.5, 2.0], [40usize, 90]);
        let net = ConcreteStack::new(&proto(), &[7, 8], &taus, &ns, 0.1, 0.2);
        let got = Vec::<f32>::try_from(net.regulariser()).unwrap();
        let p: f64 = 0.2;
        let neg_entropy = p * p.ln() + (1.0 - p) * (1.0 - p).ln();
        for m in 0..2 {
            let (wr, dr) = (
                1e-4 / (taus[m] * ns[m] as f64),
                2.0 / (taus[m] * ns[m] as f64),
            );
            let want: f64 = net
                .stack
                .member_layers(m)
                .iter()
                .map(|(w, _)| {
                    let w2 = f64::try_from(w.square().sum(Kind::Double)).unwrap();
                    // member_layers gives [out, in]: K is the input width.
                    let k = w.size()[1] as f64;
                    0.5 * (wr * w2 / (1.0 - p) + dr * k * neg_entropy)
                })
                .sum();
            assert!(
                (f64::from(got[m]) - want).abs() <= 1e-5 * want.abs(),
                "member {m}: {} vs {want}",
                got[m]
            );
        }
    }

    /// A member's relaxed masks come from its own streams: its training forward (and MC passes)
    /// inside a stack equal those of the same member alone.
    #[test]
    fn a_member_draws_the_masks_it_draws_alone() {
        let both = ConcreteStack::new(&proto(), &[7, 8], &[0.5, 2.0], &[40, 90], 0.1, 0.1);
        let alone = ConcreteStack::new(&proto(), &[8], &[2.0], &[90], 0.1, 0.1);
        let x = Tensor::linspace(-1.0, 1.0, 30, (Kind::Float, Device::Cpu)).view([1, 10, 3]);
        let x2 = Tensor::cat(&[x.shallow_clone(), x.shallow_clone()], 0);
        for draw in [
            Draw::Train,
            Draw::Passes {
                first: 5,
                passes: 2,
            },
        ] {
            let a = tch::no_grad(|| both.forward(&x2, Some(draw))).narrow(0, 1, 1);
            let b = tch::no_grad(|| alone.forward(&x, Some(draw)));
            assert!(a.equal(&b), "{:?}", (a - b).abs().max());
        }
    }
}
