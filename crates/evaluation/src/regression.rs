//! Regression metrics from T MC-dropout passes: predictive moments, test log-likelihood (in
//! original target units), RMSE, interval coverage, and the tau <-> weight-decay conversion.

use crate::error::{all_finite, same_len, EvalError};
use crate::samples::SampleMatrix;

/// ln(2 pi), used by every Gaussian log-density here.
const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// Checks that a scalar is finite and strictly positive.
fn positive(op: &'static str, name: &'static str, value: f64) -> Result<f64, EvalError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(EvalError::InvalidParameter {
            op,
            name,
            value,
            reason: "must be finite and > 0",
        })
    }
}

/// Map from standardised to original target units: `y = shift + scale * y_std`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine {
    /// Added after scaling (the training-target mean).
    pub shift: f64,
    /// Multiplies the standardised value (the training-target sd); must be > 0.
    pub scale: f64,
}

impl Affine {
    /// The identity map (targets already in original units).
    pub const IDENTITY: Affine = Affine {
        shift: 0.0,
        scale: 1.0,
    };

    /// Builds the map, rejecting a non-finite shift or a scale that is not > 0.
    pub fn new(shift: f64, scale: f64) -> Result<Self, EvalError> {
        let a = Affine { shift, scale };
        a.validate("Affine::new")?;
        Ok(a)
    }

    /// Maps a standardised value to original units.
    pub fn apply(&self, y_std: f64) -> f64 {
        self.shift + self.scale * y_std
    }

    fn validate(&self, op: &'static str) -> Result<(), EvalError> {
        if !self.shift.is_finite() {
            return Err(EvalError::InvalidParameter {
                op,
                name: "shift",
                value: self.shift,
                reason: "must be finite",
            });
        }
        positive(op, "scale", self.scale).map(|_| ())
    }
}

/// Per-point predictive moments.
#[derive(Debug, Clone, PartialEq)]
pub struct Predictive {
    /// Predictive mean (1/T) sum_t y_t.
    pub mean: Vec<f64>,
    /// Total predictive variance: `model_var + 1/tau`.
    pub var: Vec<f64>,
    /// Spread of the passes alone, (1/T) sum_t (y_t - mean)^2 (the epistemic part).
    pub model_var: Vec<f64>,
    /// Observation-noise variance 1/tau (the aleatoric part, shared by all points).
    pub noise_var: f64,
}

impl Predictive {
    /// Predictive standard deviation sqrt(var) per point.
    pub fn sd(&self) -> Vec<f64> {
        self.var.iter().map(|v| v.sqrt()).collect()
    }

    /// The same moments in original units: mean mapped by `a`, variances times `scale^2`.
    pub fn to_original(&self, a: Affine) -> Result<Predictive, EvalError> {
        a.validate("Predictive::to_original")?;
        let s2 = a.scale * a.scale;
        Ok(Predictive {
            mean: self.mean.iter().map(|&m| a.apply(m)).collect(),
            var: self.var.iter().map(|v| v * s2).collect(),
            model_var: self.model_var.iter().map(|v| v * s2).collect(),
            noise_var: self.noise_var * s2,
        })
    }
}

/// MC-dropout predictive mean and variance `1/tau + (1/T) sum y_t^2 - mean^2` per point.
///
/// The pass variance is computed two-pass around the mean in f64, so it is never negative
/// (the textbook `E[y^2] - mean^2` form cancels catastrophically for large means).
pub fn predictive(samples: &SampleMatrix, tau: f64) -> Result<Predictive, EvalError> {
    let tau = positive("predictive", "tau", tau)?;
    let (t, n) = (samples.t(), samples.n());
    let mut mean = vec![0.0f64; n];
    for pass in 0..t {
        for (i, m) in mean.iter_mut().enumerate() {
            *m += samples.at(pass, i);
        }
    }
    let inv_t = 1.0 / t as f64;
    mean.iter_mut().for_each(|m| *m *= inv_t);
    let mut model_var = vec![0.0f64; n];
    for pass in 0..t {
        for (i, v) in model_var.iter_mut().enumerate() {
            let d = samples.at(pass, i) - mean[i];
            *v += d * d;
        }
    }
    model_var.iter_mut().for_each(|v| *v *= inv_t);
    let noise_var = 1.0 / tau;
    let var = model_var.iter().map(|v| v + noise_var).collect();
    Ok(Predictive {
        mean,
        var,
        model_var,
        noise_var,
    })
}

/// Per-point moments of a uniform mixture over T passes of Gaussians N(mu_t, var_t): the
/// predictive of heteroscedastic MC dropout (Kendall & Gal 2017; each pass gives a mean and a
/// variance) and of deep ensembles (a pass per member).
#[derive(Debug, Clone, PartialEq)]
pub struct MixturePredictive {
    /// (1/T) sum_t mu_t.
    pub mean: Vec<f64>,
    /// Total variance: `epistemic + aleatoric`.
    pub var: Vec<f64>,
    /// Variance of the passes' means, (1/T) sum_t (mu_t - mean)^2.
    pub epistemic: Vec<f64>,
    /// Mean of the passes' variances, (1/T) sum_t var_t.
    pub aleatoric: Vec<f64>,
}

/// Checks per-pass variances against the passes' means: T x N values, finite and > 0.
fn check_pass_vars(op: &'static str, means: &SampleMatrix, vars: &[f64]) -> Result<(), EvalError> {
    same_len(
        op,
        "means (T x N)",
        means.t() * means.n(),
        "variances",
        vars.len(),
    )?;
    if let Some((i, &v)) = vars
        .iter()
        .enumerate()
        .find(|(_, v)| !(v.is_finite() && **v > 0.0))
    {
        return Err(EvalError::NonFinite {
            op,
            what: "variances (must be finite and > 0)",
            at: format!("index {i}"),
            value: v,
        });
    }
    Ok(())
}

/// [`MixturePredictive`] of pass means `means` [T, N] and pass variances `vars` (T x N,
/// pass-major, the same layout), in the units they are given in. The mean and the epistemic
/// part are [`predictive`]'s mean and pass variance.
pub fn mixture_predictive(
    means: &SampleMatrix,
    vars: &[f64],
) -> Result<MixturePredictive, EvalError> {
    check_pass_vars("mixture_predictive", means, vars)?;
    let p = predictive(means, 1.0)?;
    let (t, n) = (means.t(), means.n());
    let mut aleatoric = vec![0.0f64; n];
    for pass in vars.chunks(n).take(t) {
        for (a, v) in aleatoric.iter_mut().zip(pass) {
            *a += v;
        }
    }
    let inv_t = 1.0 / t as f64;
    aleatoric.iter_mut().for_each(|a| *a *= inv_t);
    let var = p
        .model_var
        .iter()
        .zip(&aleatoric)
        .map(|(e, a)| e + a)
        .collect();
    Ok(MixturePredictive {
        mean: p.mean,
        var,
        epistemic: p.model_var,
        aleatoric,
    })
}

/// Test log-likelihood under the mixture of [`mixture_predictive`], in original units:
/// `logsumexp_t(log N(y; mu_t, var_t)) - ln T`, with means, variances and targets mapped by
/// `y = shift + scale * y_std` (variances times `scale^2`).
pub fn mixture_log_likelihood(
    means: &SampleMatrix,
    vars: &[f64],
    targets: &[f32],
    scale: Affine,
) -> Result<LogLik, EvalError> {
    const OP: &str = "mixture_log_likelihood";
    check_pass_vars(OP, means, vars)?;
    scale.validate(OP)?;
    same_len(OP, "means (N)", means.n(), "targets", targets.len())?;
    all_finite(OP, "targets", targets)?;
    let (t, n) = (means.t(), means.n());
    let s2 = scale.scale * scale.scale;
    let mut terms = vec![0.0f64; t];
    let per_point = targets
        .iter()
        .enumerate()
        .map(|(i, &y)| {
            let y = scale.apply(f64::from(y));
            for (pass, term) in terms.iter_mut().enumerate() {
                let v = vars[pass * n + i] * s2;
                let d = y - scale.apply(means.at(pass, i));
                *term = -0.5 * (LN_2PI + v.ln()) - d * d / (2.0 * v);
            }
            logsumexp(&terms) - (t as f64).ln()
        })
        .collect();
    Ok(LogLik::from_points(per_point))
}

/// Per-point and mean test log-likelihoods (nats).
#[derive(Debug, Clone, PartialEq)]
pub struct LogLik {
    /// log p(y_i | x_i) for each point.
    pub per_point: Vec<f64>,
    /// Average over points.
    pub mean: f64,
}

impl LogLik {
    fn from_points(per_point: Vec<f64>) -> Self {
        let mean = per_point.iter().sum::<f64>() / per_point.len() as f64;
        LogLik { per_point, mean }
    }
}

/// Stable log(sum exp(a_k)): shifts by the maximum so the largest term is exp(0).
fn logsumexp(a: &[f64]) -> f64 {
    let max = a.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return max;
    }
    max + a.iter().map(|&x| (x - max).exp()).sum::<f64>().ln()
}

/// MC-dropout test log-likelihood in original units:
/// `logsumexp_t(-tau'/2 (y - y_t)^2) - ln T - ln(2 pi)/2 + ln(tau')/2` with `tau' = tau / scale^2`.
///
/// Both `samples` and `targets` are in the standardised units the net was trained in (tau is
/// the precision there); both are mapped back with `y = shift + scale * y_std`. Pass
/// [`Affine::IDENTITY`] when nothing was standardised.
pub fn log_likelihood(
    samples: &SampleMatrix,
    targets: &[f32],
    tau: f64,
    scale: Affine,
) -> Result<LogLik, EvalError> {
    const OP: &str = "log_likelihood";
    let tau = positive(OP, "tau", tau)?;
    scale.validate(OP)?;
    same_len(OP, "samples (N)", samples.n(), "targets", targets.len())?;
    all_finite(OP, "targets", targets)?;
    let tau_orig = tau / (scale.scale * scale.scale);
    let t = samples.t();
    let constant = -(t as f64).ln() - 0.5 * LN_2PI + 0.5 * tau_orig.ln();
    let mut terms = vec![0.0f64; t];
    let per_point = targets
        .iter()
        .enumerate()
        .map(|(i, &y)| {
            let y = scale.apply(f64::from(y));
            for (pass, term) in terms.iter_mut().enumerate() {
                let d = y - scale.apply(samples.at(pass, i));
                *term = -0.5 * tau_orig * d * d;
            }
            logsumexp(&terms) + constant
        })
        .collect();
    Ok(LogLik::from_points(per_point))
}

/// MC regression passes summarised chunk by chunk, in original target units, so that
/// T = 10,000 passes over a test set never need to be held at once.
///
/// Per point it keeps the pass count, the running mean and sum of squared deviations (merged
/// with Chan et al.'s pairwise update, stable where `E[y^2] - mean^2` would cancel) and
/// `logsumexp_t(-tau/2 (y - y_t)^2)`. Results equal [`predictive`] and [`log_likelihood`] on
/// all passes at once (tested), with `tau` here the precision in original units.
#[derive(Debug, Clone, PartialEq)]
pub struct McStream {
    targets: Vec<f64>,
    tau: f64,
    /// Passes seen per point (chunks may cover a range of the points).
    passes: Vec<usize>,
    mean: Vec<f64>,
    m2: Vec<f64>,
    lse: Vec<f64>,
}

/// One chunk's per-point summaries (original units), e.g. reduced on the device, for the
/// points `offset..offset + mean.len()`.
#[derive(Debug, Clone, Copy)]
pub struct ChunkSummary<'a> {
    /// Passes in the chunk.
    pub passes: usize,
    /// Index of the chunk's first point.
    pub offset: usize,
    /// Mean over the chunk's passes.
    pub mean: &'a [f64],
    /// Sum over the chunk's passes of (y_t - chunk mean)^2.
    pub m2: &'a [f64],
    /// logsumexp over the chunk's passes of -tau/2 (y - y_t)^2.
    pub lse: &'a [f64],
}

impl McStream {
    /// A stream for `targets` (original units) and observation precision `tau` (original units).
    pub fn new(targets: Vec<f64>, tau: f64) -> Result<Self, EvalError> {
        const OP: &str = "McStream::new";
        let tau = positive(OP, "tau", tau)?;
        if targets.is_empty() {
            return Err(EvalError::Empty {
                op: OP,
                what: "targets",
            });
        }
        all_finite(OP, "targets", &targets)?;
        let n = targets.len();
        Ok(Self {
            targets,
            tau,
            passes: vec![0; n],
            mean: vec![0.0; n],
            m2: vec![0.0; n],
            lse: vec![f64::NEG_INFINITY; n],
        })
    }

    /// The targets, original units.
    pub fn targets(&self) -> &[f64] {
        &self.targets
    }

    /// The precision the log-likelihood uses.
    pub fn tau(&self) -> f64 {
        self.tau
    }

    /// Passes seen so far by every point (the smallest count).
    pub fn passes(&self) -> usize {
        self.passes.iter().copied().min().unwrap_or(0)
    }

    /// Adds raw passes: `chunk` in the net's units, mapped to original units by `scale`.
    pub fn update(&mut self, chunk: &SampleMatrix, scale: Affine) -> Result<(), EvalError> {
        same_len(
            "McStream::update",
            "samples (N)",
            chunk.n(),
            "targets",
            self.targets.len(),
        )?;
        self.update_at(0, chunk, scale)
    }

    /// [`McStream::update`] for a chunk that covers points `offset..offset + chunk.n()`.
    pub fn update_at(
        &mut self,
        offset: usize,
        chunk: &SampleMatrix,
        scale: Affine,
    ) -> Result<(), EvalError> {
        const OP: &str = "McStream::update";
        scale.validate(OP)?;
        let (t, n) = (chunk.t(), chunk.n());
        if offset + n > self.targets.len() {
            return Err(EvalError::LengthMismatch {
                op: OP,
                left: "chunk offset + length",
                left_len: offset + n,
                right: "targets",
                right_len: self.targets.len(),
            });
        }
        let mut mean = vec![0.0; n];
        let mut m2 = vec![0.0; n];
        let mut lse = vec![0.0; n];
        let mut terms = vec![0.0; t];
        for i in 0..n {
            let ys: Vec<f64> = (0..t).map(|pass| scale.apply(chunk.at(pass, i))).collect();
            mean[i] = ys.iter().sum::<f64>() / t as f64;
            m2[i] = ys.iter().map(|y| (y - mean[i]) * (y - mean[i])).sum();
            for (term, y) in terms.iter_mut().zip(&ys) {
                let d = self.targets[offset + i] - y;
                *term = -0.5 * self.tau * d * d;
            }
            lse[i] = logsumexp(&terms);
        }
        self.merge(ChunkSummary {
            passes: t,
            offset,
            mean: &mean,
            m2: &m2,
            lse: &lse,
        })
    }

    /// Adds a chunk already reduced to per-point summaries.
    pub fn merge(&mut self, chunk: ChunkSummary) -> Result<(), EvalError> {
        const OP: &str = "McStream::merge";
        let len = chunk.mean.len();
        same_len(OP, "chunk mean", len, "chunk m2", chunk.m2.len())?;
        same_len(OP, "chunk mean", len, "chunk lse", chunk.lse.len())?;
        if chunk.offset + len > self.targets.len() {
            return Err(EvalError::LengthMismatch {
                op: OP,
                left: "chunk offset + length",
                left_len: chunk.offset + len,
                right: "targets",
                right_len: self.targets.len(),
            });
        }
        all_finite(OP, "chunk mean", chunk.mean)?;
        all_finite(OP, "chunk m2", chunk.m2)?;
        if chunk.passes == 0 {
            return Ok(());
        }
        let nb = chunk.passes as f64;
        for (j, i) in (chunk.offset..chunk.offset + len).enumerate() {
            let na = self.passes[i] as f64;
            let total = na + nb;
            let delta = chunk.mean[j] - self.mean[i];
            self.mean[i] += delta * nb / total;
            self.m2[i] += chunk.m2[j] + delta * delta * na * nb / total;
            self.lse[i] = logsumexp(&[self.lse[i], chunk.lse[j]]);
            self.passes[i] += chunk.passes;
        }
        Ok(())
    }

    fn require_passes(&self, op: &'static str) -> Result<(), EvalError> {
        if self.passes() == 0 {
            return Err(EvalError::Empty { op, what: "passes" });
        }
        Ok(())
    }

    /// Predictive moments (original units) with observation noise 1/tau.
    pub fn predictive(&self) -> Result<Predictive, EvalError> {
        self.require_passes("McStream::predictive")?;
        let model_var: Vec<f64> = self
            .m2
            .iter()
            .zip(&self.passes)
            .map(|(m, &t)| m / t as f64)
            .collect();
        let noise_var = 1.0 / self.tau;
        Ok(Predictive {
            mean: self.mean.clone(),
            var: model_var.iter().map(|v| v + noise_var).collect(),
            model_var,
            noise_var,
        })
    }

    /// MC test log-likelihood per point and mean:
    /// `logsumexp_t(-tau/2 (y - y_t)^2) - ln T - ln(2 pi)/2 + ln(tau)/2`.
    pub fn log_likelihood(&self) -> Result<LogLik, EvalError> {
        self.require_passes("McStream::log_likelihood")?;
        let constant = -0.5 * LN_2PI + 0.5 * self.tau.ln();
        Ok(LogLik::from_points(
            self.lse
                .iter()
                .zip(&self.passes)
                .map(|(l, &t)| l - (t as f64).ln() + constant)
                .collect(),
        ))
    }

    /// RMSE of the MC mean against the targets.
    pub fn rmse(&self) -> Result<f64, EvalError> {
        self.require_passes("McStream::rmse")?;
        rmse(&self.mean, &self.targets)
    }
}

/// Log-likelihood of targets under independent Gaussians N(mean_i, var_i), e.g. for the GP or
/// a single deterministic prediction with noise 1/tau; all three inputs in the same units.
pub fn gaussian_log_likelihood<T: Copy + Into<f64>>(
    mean: &[f64],
    var: &[f64],
    targets: &[T],
) -> Result<LogLik, EvalError> {
    const OP: &str = "gaussian_log_likelihood";
    same_len(OP, "mean", mean.len(), "var", var.len())?;
    same_len(OP, "mean", mean.len(), "targets", targets.len())?;
    if mean.is_empty() {
        return Err(EvalError::Empty {
            op: OP,
            what: "mean",
        });
    }
    all_finite(OP, "mean", mean)?;
    all_finite(OP, "targets", targets)?;
    if let Some((i, &v)) = var
        .iter()
        .enumerate()
        .find(|(_, v)| !(v.is_finite() && **v > 0.0))
    {
        return Err(EvalError::NonFinite {
            op: OP,
            what: "var (must be finite and > 0)",
            at: format!("index {i}"),
            value: v,
        });
    }
    let per_point = mean
        .iter()
        .zip(var)
        .zip(targets)
        .map(|((&m, &v), &y)| {
            let d = y.into() - m;
            -0.5 * (LN_2PI + v.ln()) - d * d / (2.0 * v)
        })
        .collect();
    Ok(LogLik::from_points(per_point))
}

/// Root mean squared error between predictions and targets (same units).
pub fn rmse<P: Copy + Into<f64>, Q: Copy + Into<f64>>(
    pred: &[P],
    target: &[Q],
) -> Result<f64, EvalError> {
    const OP: &str = "rmse";
    same_len(OP, "pred", pred.len(), "target", target.len())?;
    if pred.is_empty() {
        return Err(EvalError::Empty {
            op: OP,
            what: "pred",
        });
    }
    all_finite(OP, "pred", pred)?;
    all_finite(OP, "target", target)?;
    let sse: f64 = pred
        .iter()
        .zip(target)
        .map(|(&p, &y)| {
            let d = p.into() - y.into();
            d * d
        })
        .sum();
    Ok((sse / pred.len() as f64).sqrt())
}

/// Fraction of targets with |y - mean| <= k * sd (boundary counts as inside).
pub fn coverage<Q: Copy + Into<f64>>(
    mean: &[f64],
    sd: &[f64],
    targets: &[Q],
    k: f64,
) -> Result<f64, EvalError> {
    const OP: &str = "coverage";
    same_len(OP, "mean", mean.len(), "sd", sd.len())?;
    same_len(OP, "mean", mean.len(), "targets", targets.len())?;
    if mean.is_empty() {
        return Err(EvalError::Empty {
            op: OP,
            what: "mean",
        });
    }
    if !(k.is_finite() && k >= 0.0) {
        return Err(EvalError::InvalidParameter {
            op: OP,
            name: "k",
            value: k,
            reason: "must be finite and >= 0",
        });
    }
    all_finite(OP, "mean", mean)?;
    all_finite(OP, "targets", targets)?;
    if let Some((i, &s)) = sd
        .iter()
        .enumerate()
        .find(|(_, s)| !(s.is_finite() && **s >= 0.0))
    {
        return Err(EvalError::NonFinite {
            op: OP,
            what: "sd (must be finite and >= 0)",
            at: format!("index {i}"),
            value: s,
        });
    }
    let inside = mean
        .iter()
        .zip(sd)
        .zip(targets)
        .filter(|((&m, &s), &y)| (y.into() - m).abs() <= k * s)
        .count();
    Ok(inside as f64 / mean.len() as f64)
}

/// How a weight-decay number enters the training objective (data term is a mean over the N
/// training points; `w` is all weights).
///
/// Gal & Ghahramani's derivation (appendix, Gaussian likelihood with precision tau, prior
/// N(0, l^-2) on weights, dropout probability p) makes the objective proportional to
/// `0.5 * MSE + c * ||w||^2` with `c = (1 - p) l^2 / (2 N tau)`. Each convention is
/// rescaled to that form to find its `c` as a multiple of the decay value lambda:
///
/// | variant    | objective                         | c        | tau                       |
/// |------------|-----------------------------------|----------|---------------------------|
/// | `Paper`    | 0.5 MSE + lambda ‖w‖²             | lambda   | (1-p) l² / (2 N lambda)   |
/// | `Caffe`    | 0.5 MSE + (lambda/2) ‖w‖²         | lambda/2 | (1-p) l² / (N lambda)     |
/// | `Keras`    | MSE + lambda ‖w‖² (`l2(lambda)`)  | lambda/2 | (1-p) l² / (N lambda)     |
/// | `TorchMse` | MSE + optimiser `weight_decay`    | lambda/4 | 2 (1-p) l² / (N lambda)   |
///
/// `Paper` is METHOD.md's `lambda = (1-p) l^2 / (2 N tau)`; the authors' Keras code also
/// computes its `l2` value with that formula although Keras' loss is plain MSE, so with
/// their numbers the net's effective tau is twice the nominal one. Caffe and Keras scale the
/// whole objective by the same factor 2, so they give the *same* tau; the factor 2 is between
/// them and `Paper`. `TorchMse` is torch/tch `weight_decay = lambda` (gradient `lambda * w`,
/// i.e. penalty (lambda/2)‖w‖²) on `mse_loss` with mean reduction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecayConvention {
    /// 0.5 MSE + lambda ‖w‖² (the paper's eq. 1 with E = half squared error).
    Paper,
    /// 0.5 MSE + (lambda/2) ‖w‖² (Caffe EuclideanLoss + `weight_decay`).
    Caffe,
    /// MSE + lambda ‖w‖² (Keras `mean_squared_error` + `l2(lambda)`).
    Keras,
    /// MSE + optimiser weight decay lambda, i.e. (lambda/2) ‖w‖² (torch `mse_loss` + `weight_decay`).
    TorchMse,
}

impl DecayConvention {
    /// Coefficient c / lambda of ‖w‖² once the objective is rescaled to `0.5 MSE + c ‖w‖²`.
    pub fn penalty_factor(self) -> f64 {
        match self {
            DecayConvention::Paper => 1.0,
            DecayConvention::Caffe | DecayConvention::Keras => 0.5,
            DecayConvention::TorchMse => 0.25,
        }
    }
}

/// Validates the shared arguments of the tau <-> decay conversions; returns `(1 - p) l^2 / (2 N)`.
fn prior_numerator(
    op: &'static str,
    length_scale: f64,
    p_drop: f64,
    n: usize,
) -> Result<f64, EvalError> {
    let l = positive(op, "length_scale", length_scale)?;
    if !(0.0..1.0).contains(&p_drop) {
        return Err(EvalError::InvalidParameter {
            op,
            name: "p_drop",
            value: p_drop,
            reason: "dropout probability must lie in [0, 1)",
        });
    }
    if n == 0 {
        return Err(EvalError::Empty {
            op,
            what: "training set (n)",
        });
    }
    Ok((1.0 - p_drop) * l * l / (2.0 * n as f64))
}

/// Model precision tau implied by weight decay `weight_decay` under `convention`
/// (`p_drop` is the probability of dropping a unit, `n` the number of training points).
pub fn tau_from_weight_decay(
    length_scale: f64,
    p_drop: f64,
    n: usize,
    weight_decay: f64,
    convention: DecayConvention,
) -> Result<f64, EvalError> {
    const OP: &str = "tau_from_weight_decay";
    let num = prior_numerator(OP, length_scale, p_drop, n)?;
    let lambda = positive(OP, "weight_decay", weight_decay)?;
    Ok(num / (convention.penalty_factor() * lambda))
}

/// Weight decay that realises model precision `tau` under `convention` (inverse of
/// [`tau_from_weight_decay`]).
pub fn weight_decay_from_tau(
    length_scale: f64,
    p_drop: f64,
    n: usize,
    tau: f64,
    convention: DecayConvention,
) -> Result<f64, EvalError> {
    const OP: &str = "weight_decay_from_tau";
    let num = prior_numerator(OP, length_scale, p_drop, n)?;
    let tau = positive(OP, "tau", tau)?;
    Ok(num / (convention.penalty_factor() * tau))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epistemic_plus_aleatoric_equals_the_total_variance() {
        // Three passes over two inputs, by hand: means (1, 2, 6) and (0, 0, 3); variances
        // exp(s) with s = (0, ln 2, ln 3) and (ln 0.5, 0, ln 4).
        let means = [1.0f32, 0.0, 2.0, 0.0, 6.0, 3.0];
        let vars = [1.0, 0.5, 2.0, 1.0, 3.0, 4.0];
        let m = SampleMatrix::new(&means, 3, 2).unwrap();
        let p = mixture_predictive(&m, &vars).unwrap();
        // Input 0: mean 3, epistemic ((1-3)^2 + (2-3)^2 + (6-3)^2) / 3 = 14/3,
        // aleatoric (1 + 2 + 3) / 3 = 2. Input 1: mean 1, epistemic (1 + 1 + 4) / 3 = 2,
        // aleatoric (0.5 + 1 + 4) / 3 = 11/6.
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(
            close(p.mean[0], 3.0) && close(p.mean[1], 1.0),
            "{:?}",
            p.mean
        );
        assert!(close(p.epistemic[0], 14.0 / 3.0) && close(p.epistemic[1], 2.0));
        assert!(close(p.aleatoric[0], 2.0) && close(p.aleatoric[1], 11.0 / 6.0));
        assert!(close(p.var[0], 14.0 / 3.0 + 2.0) && close(p.var[1], 2.0 + 11.0 / 6.0));
        // The total is the mixture's variance, E[var_t + mu_t^2] - mean^2, written out.
        for i in 0..2 {
            let second: f64 = (0..3)
                .map(|t| vars[t * 2 + i] + f64::from(means[t * 2 + i]).powi(2))
                .sum::<f64>()
                / 3.0;
            assert!(close(p.var[i], second - p.mean[i] * p.mean[i]), "input {i}");
        }
        // With one shared variance 1/tau it is MC dropout's predictive.
        let mc = predictive(&m, 4.0).unwrap();
        let same = mixture_predictive(&m, &[0.25; 6]).unwrap();
        assert_eq!(same.var, mc.var);
        assert_eq!(same.epistemic, mc.model_var);
        // Bad variances are errors.
        assert!(mixture_predictive(&m, &[1.0; 5]).is_err());
        assert!(mixture_predictive(&m, &[1.0, 1.0, 0.0, 1.0, 1.0, 1.0]).is_err());
    }

    #[test]
    fn mixture_log_likelihood_by_hand() {
        // Two passes, one input: N(0, 1) and N(2, 4) at y = 1, then in units scaled by 3.
        let means = [0.0f32, 2.0];
        let m = SampleMatrix::new(&means, 2, 1).unwrap();
        let vars = [1.0, 4.0];
        let dens = |mu: f64, v: f64, y: f64| {
            (-(y - mu) * (y - mu) / (2.0 * v)).exp() / (2.0 * std::f64::consts::PI * v).sqrt()
        };
        let want = (0.5 * (dens(0.0, 1.0, 1.0) + dens(2.0, 4.0, 1.0))).ln();
        let ll = mixture_log_likelihood(&m, &vars, &[1.0], Affine::IDENTITY).unwrap();
        assert!((ll.mean - want).abs() < 1e-12);
        let a = Affine::new(5.0, 3.0).unwrap();
        let want = (0.5 * (dens(5.0, 9.0, 8.0) + dens(11.0, 36.0, 8.0))).ln();
        let ll = mixture_log_likelihood(&m, &vars, &[1.0], a).unwrap();
        assert!((ll.mean - want).abs() < 1e-12);
        // One shared variance 1/tau: MC dropout's log-likelihood.
        let mc = log_likelihood(&m, &[1.0], 0.5, a).unwrap();
        let mix = mixture_log_likelihood(&m, &[2.0, 2.0], &[1.0], a).unwrap();
        assert!((mc.mean - mix.mean).abs() < 1e-12);
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * (1.0 + b.abs())
    }

    /// Two passes, one point, by hand: original-unit passes 10 and 12 (standardised 0 and 1
    /// with mean 10, sd 2), target 11, tau 0.5 in original units: each pass is 1 away, so the
    /// LL is the density of N(0, 1/tau = 2) at 1: -ln(2 pi 2)/2 - 1/4.
    #[test]
    fn stream_log_likelihood_by_hand_in_original_units() {
        let data = [0.0f32, 1.0];
        let chunk = SampleMatrix::new(&data, 2, 1).unwrap();
        let mut s = McStream::new(vec![11.0], 0.5).unwrap();
        s.update(&chunk, Affine::new(10.0, 2.0).unwrap()).unwrap();
        let expected = -0.5 * (2.0 * std::f64::consts::PI * 2.0).ln() - 0.25;
        assert!(close(s.log_likelihood().unwrap().mean, expected, 1e-12));
        assert!(close(s.rmse().unwrap(), 0.0, 1e-12));
        let p = s.predictive().unwrap();
        assert!(close(p.model_var[0], 1.0, 1e-12) && close(p.var[0], 3.0, 1e-12));
    }

    /// Chunked passes give what the whole matrix gives to `predictive` and `log_likelihood`.
    #[test]
    fn stream_over_chunks_equals_all_passes_at_once() {
        let (t, n) = (37, 5);
        let data: Vec<f32> = (0..t * n)
            .map(|k| (k as f32 * 0.37).sin() * 2.0 + (k % n) as f32)
            .collect();
        let targets_std: Vec<f32> = (0..n).map(|i| i as f32 + 0.3).collect();
        let a = Affine::new(100.0, 3.0).unwrap();
        let tau_std = 4.0;
        let tau_orig = tau_std / 9.0;
        let whole = SampleMatrix::new(&data, t, n).unwrap();
        let ll = log_likelihood(&whole, &targets_std, tau_std, a).unwrap();
        let pred = predictive(&whole, tau_std).unwrap().to_original(a).unwrap();

        let targets: Vec<f64> = targets_std.iter().map(|&y| a.apply(y.into())).collect();
        let mut s = McStream::new(targets, tau_orig).unwrap();
        for (start, len) in [(0, 10), (10, 1), (11, 26)] {
            let part = SampleMatrix::new(&data[start * n..(start + len) * n], len, n).unwrap();
            s.update(&part, a).unwrap();
        }
        assert_eq!(s.passes(), t);
        // The same passes merged in row ranges (points 0..2 and 2..5 separately) agree too.
        let mut by_rows = McStream::new(s.targets().to_vec(), tau_orig).unwrap();
        for (lo, hi) in [(0usize, 2usize), (2, 5)] {
            let cols: Vec<f32> = (0..t)
                .flat_map(|p| data[p * n + lo..p * n + hi].to_vec())
                .collect();
            let mut part = McStream::new(s.targets()[lo..hi].to_vec(), tau_orig).unwrap();
            part.update(&SampleMatrix::new(&cols, t, hi - lo).unwrap(), a)
                .unwrap();
            let (mean, m2, lse) = (part.mean.clone(), part.m2.clone(), part.lse.clone());
            by_rows
                .merge(ChunkSummary {
                    passes: t,
                    offset: lo,
                    mean: &mean,
                    m2: &m2,
                    lse: &lse,
                })
                .unwrap();
        }
        assert!(by_rows.passes() == t);
        // `update_at` adds a row range's raw passes: the same as reducing them apart and merging.
        let mut at = McStream::new(s.targets().to_vec(), tau_orig).unwrap();
        for (lo, hi) in [(0usize, 2usize), (2, 5)] {
            let cols: Vec<f32> = (0..t)
                .flat_map(|p| data[p * n + lo..p * n + hi].to_vec())
                .collect();
            at.update_at(lo, &SampleMatrix::new(&cols, t, hi - lo).unwrap(), a)
                .unwrap();
        }
        assert_eq!(
            (&at.mean, &at.m2, &at.lse),
            (&by_rows.mean, &by_rows.m2, &by_rows.lse)
        );
        let past_end = SampleMatrix::new(&data[..2 * n], 2, n).unwrap();
        assert!(at.update_at(1, &past_end, a).is_err());
        let ll_rows = by_rows.log_likelihood().unwrap();
        let got = s.log_likelihood().unwrap();
        for i in 0..n {
            assert!(
                close(ll_rows.per_point[i], got.per_point[i], 1e-12),
                "row-range ll {i}"
            );
        }
        let bad = [0.0; 4];
        let overflow = ChunkSummary {
            passes: 1,
            offset: 3,
            mean: &bad,
            m2: &bad,
            lse: &bad,
        };
        assert!(
            by_rows.merge(overflow).is_err(),
            "points past the end are an error"
        );
        let sp = s.predictive().unwrap();
        for i in 0..n {
            assert!(close(got.per_point[i], ll.per_point[i], 1e-10), "ll {i}");
            assert!(close(sp.mean[i], pred.mean[i], 1e-10), "mean {i}");
            assert!(close(sp.var[i], pred.var[i], 1e-10), "var {i}");
        }
        let mean_f32: Vec<f64> = pred.mean.clone();
        assert!(close(
            s.rmse().unwrap(),
            rmse(&mean_f32, s.targets()).unwrap(),
            1e-12
        ));
        assert!(McStream::new(vec![1.0], 0.0).is_err());
        assert!(
            McStream::new(vec![1.0], 1.0).unwrap().rmse().is_err(),
            "no passes yet"
        );
    }

    /// Density of N(m, v) at y, written out directly.
    fn normal_pdf(y: f64, m: f64, v: f64) -> f64 {
        (-(y - m) * (y - m) / (2.0 * v)).exp() / (2.0 * std::f64::consts::PI * v).sqrt()
    }

    #[test]
    fn predictive_variance_includes_noise_term() {
        // Passes 1 and 3 at one point: mean 2, pass variance 1, plus 1/tau = 0.5.
        let data = [1.0f32, 3.0];
        let s = SampleMatrix::new(&data, 2, 1).unwrap();
        let p = predictive(&s, 2.0).unwrap();
        assert_eq!(p.mean, vec![2.0]);
        assert!(close(p.var[0], 1.5, 1e-12));
        assert!(close(p.model_var[0], 1.0, 1e-12));
        assert!(close(p.sd()[0], 1.5f64.sqrt(), 1e-12));
        // In original units (sd 2): variance scales by 4, mean maps affinely.
        let o = p.to_original(Affine::new(10.0, 2.0).unwrap()).unwrap();
        assert!(close(o.mean[0], 14.0, 1e-12) && close(o.var[0], 6.0, 1e-12));
    }

    #[test]
    fn predictive_variance_stable_for_large_means() {
        // Values near 1e4 with spread 1: E[y^2]-mean^2 in f32 would lose this entirely.
        let data = [10_000.0f32, 10_002.0, 10_000.0, 10_002.0];
        let s = SampleMatrix::new(&data, 4, 1).unwrap();
        let p = predictive(&s, 1e6).unwrap();
        assert!(close(p.model_var[0], 1.0, 1e-12), "{}", p.model_var[0]);
        // Identical passes: variance is exactly the noise term, never negative.
        let same = [0.1f32; 5];
        let p = predictive(&SampleMatrix::new(&same, 5, 1).unwrap(), 4.0).unwrap();
        assert_eq!(p.model_var[0], 0.0);
        assert_eq!(p.var[0], 0.25);
    }

    #[test]
    fn predictive_is_per_point_over_passes() {
        // [T=2, N=2]: point 0 sees passes 0 and 4, point 1 sees 1 and 1.
        let data = [0.0f32, 1.0, 4.0, 1.0];
        let p = predictive(&SampleMatrix::new(&data, 2, 2).unwrap(), 1.0).unwrap();
        assert_eq!(p.mean, vec![2.0, 1.0]);
        assert_eq!(p.model_var, vec![4.0, 0.0]);
        assert!(matches!(
            predictive(&SampleMatrix::new(&data, 2, 2).unwrap(), 0.0),
            Err(EvalError::InvalidParameter { name: "tau", .. })
        ));
    }

    #[test]
    fn log_likelihood_matches_mixture_density() {
        // Two passes (0 and 2), target 0, tau 2: log of the equal mixture of N(0, .5), N(2, .5).
        let data = [0.0f32, 2.0];
        let s = SampleMatrix::new(&data, 2, 1).unwrap();
        let ll = log_likelihood(&s, &[0.0], 2.0, Affine::IDENTITY).unwrap();
        let want = (0.5 * (normal_pdf(0.0, 0.0, 0.5) + normal_pdf(0.0, 2.0, 0.5))).ln();
        assert!(close(ll.mean, want, 1e-12), "{} vs {want}", ll.mean);
        assert_eq!(ll.per_point.len(), 1);
    }

    #[test]
    fn log_likelihood_in_original_units() {
        // Standardised passes 0, 2 and target 0 with shift 10, scale 3 become 10, 16 and 10;
        // the noise variance 1/tau = 0.5 becomes 0.5 * 9 = 4.5.
        let data = [0.0f32, 2.0];
        let s = SampleMatrix::new(&data, 2, 1).unwrap();
        let a = Affine::new(10.0, 3.0).unwrap();
        let ll = log_likelihood(&s, &[0.0], 2.0, a).unwrap();
        let want = (0.5 * (normal_pdf(10.0, 10.0, 4.5) + normal_pdf(10.0, 16.0, 4.5))).ln();
        assert!(close(ll.mean, want, 1e-12), "{} vs {want}", ll.mean);
        let std_units = log_likelihood(&s, &[0.0], 2.0, Affine::IDENTITY).unwrap();
        assert!(close(ll.mean, std_units.mean - 3f64.ln(), 1e-12));
    }

    #[test]
    fn log_likelihood_uses_stable_logsumexp() {
        // Every pass is far: exp(-5000) underflows, so a log-mean-exp would give -inf.
        let data = [10.0f32, 11.0];
        let s = SampleMatrix::new(&data, 2, 1).unwrap();
        let ll = log_likelihood(&s, &[0.0], 100.0, Affine::IDENTITY).unwrap();
        let want = -5000.0 - 2f64.ln() - 0.5 * LN_2PI + 0.5 * 100f64.ln();
        assert!(ll.mean.is_finite());
        assert!(close(ll.mean, want, 1e-12), "{} vs {want}", ll.mean);
        // One close pass and one very far pass: the far one contributes nothing.
        let data = [0.0f32, 1000.0];
        let s = SampleMatrix::new(&data, 2, 1).unwrap();
        let ll = log_likelihood(&s, &[0.0], 1e4, Affine::IDENTITY).unwrap();
        let want = -2f64.ln() - 0.5 * LN_2PI + 0.5 * 1e4f64.ln();
        assert!(close(ll.mean, want, 1e-12), "{} vs {want}", ll.mean);
    }

    #[test]
    fn log_likelihood_rejects_bad_input() {
        let data = [0.0f32, 2.0];
        let s = SampleMatrix::new(&data, 2, 1).unwrap();
        let err = log_likelihood(&s, &[0.0, 1.0], 1.0, Affine::IDENTITY).unwrap_err();
        assert!(matches!(err, EvalError::LengthMismatch { .. }));
        assert!(err.to_string().contains("log_likelihood"));
        let bad_scale = Affine {
            shift: 0.0,
            scale: -1.0,
        };
        assert!(log_likelihood(&s, &[0.0], 1.0, bad_scale).is_err());
        assert!(log_likelihood(&s, &[f32::NAN], 1.0, Affine::IDENTITY).is_err());
    }

    #[test]
    fn gaussian_log_likelihood_matches_density() {
        let ll = gaussian_log_likelihood(&[1.0, 0.0], &[4.0, 0.25], &[2.0f32, 0.0]).unwrap();
        let want = [
            normal_pdf(2.0, 1.0, 4.0).ln(),
            normal_pdf(0.0, 0.0, 0.25).ln(),
        ];
        assert!(close(ll.per_point[0], want[0], 1e-12));
        assert!(close(ll.per_point[1], want[1], 1e-12));
        assert!(close(ll.mean, 0.5 * (want[0] + want[1]), 1e-12));
        assert!(gaussian_log_likelihood(&[0.0], &[0.0], &[0.0f64]).is_err());
    }

    #[test]
    fn rmse_and_coverage_hand_cases() {
        // Errors 3 and 4: RMSE = sqrt((9 + 16) / 2).
        let r = rmse(&[0.0f64, 0.0], &[3.0f32, -4.0]).unwrap();
        assert!(close(r, 12.5f64.sqrt(), 1e-12));
        assert!(rmse::<f64, f64>(&[], &[]).is_err());
        assert!(rmse(&[0.0f64], &[1.0f64, 2.0]).is_err());
        // Distances 0.5, 1.0 (on the boundary), 3.0 from the mean with sd 1.
        let mean = [0.0, 0.0, 0.0];
        let sd = [1.0, 1.0, 1.0];
        let y = [0.5f64, -1.0, 3.0];
        assert!(close(
            coverage(&mean, &sd, &y, 1.0).unwrap(),
            2.0 / 3.0,
            1e-12
        ));
        assert_eq!(coverage(&mean, &sd, &y, 3.0).unwrap(), 1.0);
        assert_eq!(coverage(&mean, &sd, &y, 0.25).unwrap(), 0.0);
        assert!(coverage(&mean, &sd, &y, -1.0).is_err());
    }

    #[test]
    fn decay_conversion_hand_values_and_conventions() {
        // l = 1, p = 0.5, N = 100, lambda = 1e-3: (1-p) l^2 / (2N) = 0.0025.
        let tau = |c| tau_from_weight_decay(1.0, 0.5, 100, 1e-3, c).unwrap();
        assert!(close(tau(DecayConvention::Paper), 2.5, 1e-12));
        assert!(close(tau(DecayConvention::Caffe), 5.0, 1e-12));
        // MSE + lambda|w|^2 is exactly twice Caffe's objective: same minimiser, same tau.
        assert!(close(tau(DecayConvention::Keras), 5.0, 1e-12));
        assert!(close(tau(DecayConvention::TorchMse), 10.0, 1e-12));
        // The authors' Keras formula (Paper) vs Caffe differ by exactly the factor 2.
        assert!(close(
            tau(DecayConvention::Caffe) / tau(DecayConvention::Paper),
            2.0,
            1e-12
        ));
    }

    #[test]
    fn decay_round_trip_both_ways() {
        for c in [
            DecayConvention::Paper,
            DecayConvention::Caffe,
            DecayConvention::Keras,
            DecayConvention::TorchMse,
        ] {
            let lambda = weight_decay_from_tau(0.01, 0.05, 455, 0.25, c).unwrap();
            let back = tau_from_weight_decay(0.01, 0.05, 455, lambda, c).unwrap();
            assert!(close(back, 0.25, 1e-12), "{c:?}: {back}");
            let tau = tau_from_weight_decay(0.01, 0.05, 455, 1e-6, c).unwrap();
            let back = weight_decay_from_tau(0.01, 0.05, 455, tau, c).unwrap();
            assert!(close(back, 1e-6, 1e-12), "{c:?}: {back}");
        }
        // METHOD.md's formula directly: lambda = (1-p) l^2 / (2 N tau).
        let lambda = weight_decay_from_tau(2.0, 0.1, 50, 3.0, DecayConvention::Paper).unwrap();
        assert!(close(lambda, 0.9 * 4.0 / (2.0 * 50.0 * 3.0), 1e-12));
        assert!(tau_from_weight_decay(1.0, 1.0, 10, 1e-3, DecayConvention::Paper).is_err());
        assert!(tau_from_weight_decay(1.0, 0.5, 0, 1e-3, DecayConvention::Paper).is_err());
        assert!(weight_decay_from_tau(1.0, 0.5, 10, -1.0, DecayConvention::Paper).is_err());
    }
}
