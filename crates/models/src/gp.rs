//! Exact Gaussian-process regression baseline (pure Rust, f64).
//!
//! Squared-exponential kernel `k(x, x') = s2 exp(-|x - x'|^2 / (2 l^2))` with one isotropic
//! length-scale over all input dimensions, plus i.i.d. noise variance `sn2`, and a constant
//! zero mean. Inputs and targets are expected to be standardised (zero mean, unit sd from the
//! training set): the zero mean is what far-away predictions revert to, and the default
//! optimisation bounds assume unit scales.
//!
//! Inputs are row-major `[n, d]` flat slices.

use thiserror::Error;

/// ln(2 pi) for the Gaussian normaliser.
const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// Diagonal jitter tried, relative to `signal_var + noise_var`, when the plain Cholesky fails.
const JITTER_STEPS: [f64; 5] = [1e-10, 1e-9, 1e-8, 1e-7, 1e-6];

/// Why a GP could not be fitted or evaluated.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum GpError {
    /// The flat input buffer is not a whole number of `d`-dimensional points.
    #[error("{op}: input of length {len} is not a whole number of points of dimension d = {d}")]
    InputShape {
        /// Operation.
        op: &'static str,
        /// Length of the flat input.
        len: usize,
        /// Declared dimension.
        d: usize,
    },
    /// Number of input points and targets differ.
    #[error("{op}: {points} input points but {targets} targets")]
    TargetLength {
        /// Operation.
        op: &'static str,
        /// Points in x.
        points: usize,
        /// Entries in y.
        targets: usize,
    },
    /// No training points, or d = 0.
    #[error("{op}: {what} is empty")]
    Empty {
        /// Operation.
        op: &'static str,
        /// What was empty.
        what: &'static str,
    },
    /// A hyperparameter or bound is not finite and positive.
    #[error("{op}: {name} = {value} must be finite and > 0")]
    InvalidHyper {
        /// Operation.
        op: &'static str,
        /// Hyperparameter name.
        name: &'static str,
        /// Value supplied.
        value: f64,
    },
    /// An optimisation bound pair is unusable (lower > upper, or not finite positive).
    #[error("{op}: bounds for {name} are [{lower}, {upper}]; need 0 < lower <= upper < inf")]
    InvalidBounds {
        /// Operation.
        op: &'static str,
        /// Hyperparameter name.
        name: &'static str,
        /// Lower bound.
        lower: f64,
        /// Upper bound.
        upper: f64,
    },
    /// An input or target is NaN or infinite.
    #[error("{op}: {what} has non-finite value {value} at index {index}")]
    NonFinite {
        /// Operation.
        op: &'static str,
        /// Which input.
        what: &'static str,
        /// Flat index.
        index: usize,
        /// The value.
        value: f64,
    },
    /// Test inputs have a different dimension from the training inputs.
    #[error("{op}: the GP was fitted on d = {fitted} but got d = {got}")]
    DimMismatch {
        /// Operation.
        op: &'static str,
        /// Training dimension.
        fitted: usize,
        /// Requested dimension.
        got: usize,
    },
    /// Cholesky failed even with the largest jitter.
    #[error("{op}: kernel matrix of {n} points is not positive definite even with jitter {jitter} on the diagonal")]
    NotPositiveDefinite {
        /// Operation.
        op: &'static str,
        /// Number of points.
        n: usize,
        /// Largest jitter tried.
        jitter: f64,
    },
    /// No optimiser start point gave a finite log marginal likelihood.
    #[error("{op}: no start point gave a finite log marginal likelihood")]
    OptimisationFailed {
        /// Operation.
        op: &'static str,
    },
}

/// Kernel and noise hyperparameters (all strictly positive).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GpHyper {
    /// SE length-scale l (shared by all input dimensions).
    pub length_scale: f64,
    /// Signal variance s2 (prior variance of the latent function).
    pub signal_var: f64,
    /// Observation-noise variance sn2.
    pub noise_var: f64,
}

impl GpHyper {
    fn validate(&self, op: &'static str) -> Result<(), GpError> {
        for (name, value) in [
            ("length_scale", self.length_scale),
            ("signal_var", self.signal_var),
            ("noise_var", self.noise_var),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(GpError::InvalidHyper { op, name, value });
            }
        }
        Ok(())
    }

    fn to_log(self) -> [f64; 3] {
        [
            self.length_scale.ln(),
            self.signal_var.ln(),
            self.noise_var.ln(),
        ]
    }

    fn from_log(t: [f64; 3]) -> Self {
        GpHyper {
            length_scale: t[0].exp(),
            signal_var: t[1].exp(),
            noise_var: t[2].exp(),
        }
    }
}

/// Box bounds `(lower, upper)` on each hyperparameter for [`Gp::fit_optimised_with`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GpBounds {
    /// Bounds on the length-scale.
    pub length_scale: (f64, f64),
    /// Bounds on the signal variance.
    pub signal_var: (f64, f64),
    /// Bounds on the noise variance.
    pub noise_var: (f64, f64),
}

impl Default for GpBounds {
    /// Wide bounds for standardised data: the noise floor 1e-6 keeps K well conditioned.
    fn default() -> Self {
        GpBounds {
            length_scale: (1e-2, 1e2),
            signal_var: (1e-3, 1e2),
            noise_var: (1e-6, 1e1),
        }
    }
}

impl GpBounds {
    /// Log-space bounds, validated.
    fn log_box(&self, op: &'static str) -> Result<[(f64, f64); 3], GpError> {
        let mut out = [(0.0, 0.0); 3];
        for (k, (name, (lower, upper))) in [
            ("length_scale", self.length_scale),
            ("signal_var", self.signal_var),
            ("noise_var", self.noise_var),
        ]
        .into_iter()
        .enumerate()
        {
            let ok = lower.is_finite() && upper.is_finite() && lower > 0.0 && lower <= upper;
            if !ok {
                return Err(GpError::InvalidBounds {
                    op,
                    name,
                    lower,
                    upper,
                });
            }
            out[k] = (lower.ln(), upper.ln());
        }
        Ok(out)
    }
}

/// Settings for maximising the log marginal likelihood.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GpOptimOptions {
    /// Box bounds on the hyperparameters.
    pub bounds: GpBounds,
    /// Extra deterministic starts besides the initial point (length-scale x 0.2, x 5, x 0.04, ...).
    pub restarts: usize,
    /// Maximum quasi-Newton iterations per start.
    pub max_iter: usize,
}

impl Default for GpOptimOptions {
    fn default() -> Self {
        GpOptimOptions {
            bounds: GpBounds::default(),
            restarts: 2,
            max_iter: 100,
        }
    }
}

/// Predictive distribution at test inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct GpPrediction {
    /// Posterior mean of f (and of y).
    pub mean: Vec<f64>,
    /// Predictive variance of y: `latent_var + noise_var`.
    pub var: Vec<f64>,
    /// Posterior variance of the latent function f (no observation noise).
    pub latent_var: Vec<f64>,
}

/// A fitted exact GP: training inputs, Cholesky factor of K and `alpha = K^-1 y`.
#[derive(Debug, Clone)]
pub struct Gp {
    x: Vec<f64>,
    d: usize,
    n: usize,
    hyper: GpHyper,
    /// Lower-triangular Cholesky factor of `K + (noise_var + jitter) I`, row-major n x n.
    chol: Vec<f64>,
    alpha: Vec<f64>,
    jitter: f64,
    lml: f64,
}

/// Validates `[n, d]` inputs and n targets; returns n.
fn check_data(op: &'static str, x: &[f64], d: usize, y: &[f64]) -> Result<usize, GpError> {
    if d == 0 {
        return Err(GpError::Empty {
            op,
            what: "input dimension d",
        });
    }
    if !x.len().is_multiple_of(d) {
        return Err(GpError::InputShape {
            op,
            len: x.len(),
            d,
        });
    }
    let n = x.len() / d;
    if n != y.len() {
        return Err(GpError::TargetLength {
            op,
            points: n,
            targets: y.len(),
        });
    }
    if n == 0 {
        return Err(GpError::Empty {
            op,
            what: "training set",
        });
    }
    finite(op, "x", x)?;
    finite(op, "y", y)?;
    Ok(n)
}

fn finite(op: &'static str, what: &'static str, v: &[f64]) -> Result<(), GpError> {
    match v.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        Some((index, &value)) => Err(GpError::NonFinite {
            op,
            what,
            index,
            value,
        }),
        None => Ok(()),
    }
}

/// Squared Euclidean distance between two d-dimensional points.
fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(p, q)| (p - q) * (p - q)).sum()
}

/// Dot product with four independent accumulators: a single running f64 sum is bound by
/// add latency and cannot be vectorised, which made the O(n^3) loops ~4x slower.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let len = a.len().min(b.len());
    let (a, b) = (&a[..len], &b[..len]);
    let mut acc = [0.0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..4 {
            acc[k] += x[k] * y[k];
        }
    }
    let tail: f64 = ra.iter().zip(rb).map(|(p, q)| p * q).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// Pairwise squared distances of the n training points, row-major n x n.
fn pairwise_sq(x: &[f64], d: usize, n: usize) -> Vec<f64> {
    let mut sq = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..i {
            let s = sq_dist(&x[i * d..(i + 1) * d], &x[j * d..(j + 1) * d]);
            sq[i * n + j] = s;
            sq[j * n + i] = s;
        }
    }
    sq
}

/// SE kernel value from a squared distance; a zero distance is exactly s2 even when a tiny
/// length-scale makes 1/(2 l^2) overflow (0 * inf would be NaN).
fn se(sq: f64, inv_two_l2: f64, s2: f64) -> f64 {
    if sq == 0.0 {
        s2
    } else {
        s2 * (-sq * inv_two_l2).exp()
    }
}

/// In-place Cholesky of a row-major SPD matrix into its lower factor (upper part zeroed).
/// Returns false on a non-positive or non-finite pivot.
fn cholesky(a: &mut [f64], n: usize) -> bool {
    for i in 0..n {
        for j in 0..=i {
            // Dot of rows i and j of L over the already-computed columns: contiguous.
            let v = a[i * n + j] - dot(&a[i * n..i * n + j], &a[j * n..j * n + j]);
            if i == j {
                if !(v > 0.0 && v.is_finite()) {
                    return false;
                }
                a[i * n + i] = v.sqrt();
            } else {
                a[i * n + j] = v / a[j * n + j];
            }
        }
        for j in i + 1..n {
            a[i * n + j] = 0.0;
        }
    }
    true
}

/// Solves L z = b (forward substitution) in place.
fn forward_solve(l: &[f64], n: usize, b: &mut [f64]) {
    for i in 0..n {
        b[i] = (b[i] - dot(&l[i * n..i * n + i], &b[..i])) / l[i * n + i];
    }
}

/// Solves L^T z = b (back substitution) in place.
fn backward_solve(l: &[f64], n: usize, b: &mut [f64]) {
    for i in (0..n).rev() {
        let mut v = b[i];
        for k in i + 1..n {
            v -= l[k * n + i] * b[k];
        }
        b[i] = v / l[i * n + i];
    }
}

/// Cholesky factor, alpha, jitter used and log marginal likelihood for given hyperparameters.
struct Factor {
    chol: Vec<f64>,
    alpha: Vec<f64>,
    jitter: f64,
    lml: f64,
}

/// Factorises `K + (sn2 + jitter) I`, retrying with growing jitter if Cholesky fails.
fn factorise(
    op: &'static str,
    sq: &[f64],
    n: usize,
    y: &[f64],
    h: GpHyper,
) -> Result<Factor, GpError> {
    let inv_two_l2 = 1.0 / (2.0 * h.length_scale * h.length_scale);
    let kf: Vec<f64> = sq
        .iter()
        .map(|&s| se(s, inv_two_l2, h.signal_var))
        .collect();
    let scale = h.signal_var + h.noise_var;
    for jitter in std::iter::once(0.0).chain(JITTER_STEPS.iter().map(|j| j * scale)) {
        let mut a = kf.clone();
        for i in 0..n {
            a[i * n + i] += h.noise_var + jitter;
        }
        if !cholesky(&mut a, n) {
            continue;
        }
        let mut alpha = y.to_vec();
        forward_solve(&a, n, &mut alpha);
        // Between the two solves alpha holds z = L^-1 y, so y^T K^-1 y = |z|^2.
        let quad: f64 = alpha.iter().map(|v| v * v).sum();
        backward_solve(&a, n, &mut alpha);
        let log_det_half: f64 = (0..n).map(|i| a[i * n + i].ln()).sum();
        let lml = -0.5 * quad - log_det_half - 0.5 * n as f64 * LN_2PI;
        return Ok(Factor {
            chol: a,
            alpha,
            jitter,
            lml,
        });
    }
    Err(GpError::NotPositiveDefinite {
        op,
        n,
        jitter: JITTER_STEPS[JITTER_STEPS.len() - 1] * scale,
    })
}

/// Log marginal likelihood and its gradient with respect to the log-hyperparameters
/// (ln l, ln s2, ln sn2), or `None` when K cannot be factorised.
///
/// dLML/dtheta = 1/2 tr((alpha alpha^T - K^-1) dK/dtheta), with dK/dln l = Kf * r^2 / l^2,
/// dK/dln s2 = Kf, dK/dln sn2 = sn2 I. Jitter is treated as a constant.
fn lml_and_grad(sq: &[f64], n: usize, y: &[f64], theta: [f64; 3]) -> Option<(f64, [f64; 3])> {
    let h = GpHyper::from_log(theta);
    let f = factorise("lml_and_grad", sq, n, y, h).ok()?;
    let l = &f.chol;
    // M = (L^-1)^T stored row-major, i.e. row j of M is column j of L^-1 (entries i >= j),
    // so both the triangular inverse and K^-1 = M M^T use contiguous row dot products.
    let mut m = vec![0.0; n * n];
    for j in 0..n {
        m[j * n + j] = 1.0 / l[j * n + j];
        for i in j + 1..n {
            m[j * n + i] = -dot(&l[i * n + j..i * n + i], &m[j * n + j..j * n + i]) / l[i * n + i];
        }
    }
    let inv_l2 = (-2.0 * theta[0]).exp();
    let inv_two_l2 = 0.5 * inv_l2;
    let (mut g_l, mut g_s, mut g_n) = (0.0, 0.0, 0.0);
    for a in 0..n {
        for b in a..n {
            // K^-1[a][b] = sum_{i >= max(a, b)} M[a][i] M[b][i], and b >= a here.
            let kinv = dot(&m[a * n + b..(a + 1) * n], &m[b * n + b..(b + 1) * n]);
            let w = f.alpha[a] * f.alpha[b] - kinv;
            let s = sq[a * n + b];
            let kf = se(s, inv_two_l2, h.signal_var);
            // Off-diagonal pairs appear twice in the symmetric trace.
            let mult = if a == b { 1.0 } else { 2.0 };
            g_s += mult * w * kf;
            if s > 0.0 {
                g_l += mult * w * kf * s * inv_l2;
            }
            if a == b {
                g_n += w * h.noise_var;
            }
        }
    }
    Some((f.lml, [0.5 * g_l, 0.5 * g_s, 0.5 * g_n]))
}

fn clamp_box(t: [f64; 3], bx: &[(f64, f64); 3]) -> [f64; 3] {
    std::array::from_fn(|k| t[k].clamp(bx[k].0, bx[k].1))
}

fn dot3(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Projected quasi-Newton (BFGS on 3 parameters) ascent of `eval` inside the box, with an
/// Armijo backtracking line search. Deterministic; returns the best point and value.
fn maximise<F>(
    eval: &F,
    start: [f64; 3],
    bx: &[(f64, f64); 3],
    max_iter: usize,
) -> Option<([f64; 3], f64)>
where
    F: Fn([f64; 3]) -> Option<(f64, [f64; 3])>,
{
    const IDENTITY: [[f64; 3]; 3] = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    let mut theta = clamp_box(start, bx);
    // Work with phi = -LML and its gradient, so the textbook minimisation formulas apply.
    let (v, g) = eval(theta)?;
    let (mut phi, mut grad) = (-v, g.map(|x| -x));
    let mut h = IDENTITY;
    let mut fresh = true;
    let at_lower = |t: &[f64; 3], k: usize| t[k] <= bx[k].0;
    let at_upper = |t: &[f64; 3], k: usize| t[k] >= bx[k].1;
    for _ in 0..max_iter {
        // Projected gradient: components pushing out of an active bound do not count.
        let pg: [f64; 3] = std::array::from_fn(|k| {
            if (at_lower(&theta, k) && grad[k] > 0.0) || (at_upper(&theta, k) && grad[k] < 0.0) {
                0.0
            } else {
                grad[k]
            }
        });
        if pg.iter().all(|g| g.abs() < 1e-6) {
            break;
        }
        // Quasi-Newton direction, with components that would leave the box at an active bound dropped.
        let mut dir: [f64; 3] = std::array::from_fn(|k| {
            let v = -dot3(&h[k], &pg);
            if (at_lower(&theta, k) && v < 0.0) || (at_upper(&theta, k) && v > 0.0) {
                0.0
            } else {
                v
            }
        });
        if dot3(&dir, &pg) >= 0.0 {
            dir = pg.map(|x| -x);
            h = IDENTITY;
            fresh = true;
        }
        if fresh {
            // Without curvature information cap the first step at 1 in log units.
            let big = dir.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            if big > 1.0 {
                dir = dir.map(|x| x / big);
            }
        }
        let mut step = 1.0;
        let mut accepted = None;
        for _ in 0..40 {
            let cand = clamp_box(std::array::from_fn(|k| theta[k] + step * dir[k]), bx);
            let s: [f64; 3] = std::array::from_fn(|k| cand[k] - theta[k]);
            if s.iter().all(|x| x.abs() < 1e-12) {
                break;
            }
            if let Some((v, g)) = eval(cand) {
                if -v <= phi + 1e-4 * dot3(&grad, &s) {
                    accepted = Some((cand, s, -v, g.map(|x| -x)));
                    break;
                }
            }
            step *= 0.5;
        }
        let Some((cand, s, new_phi, new_grad)) = accepted else {
            if fresh {
                break;
            }
            h = IDENTITY;
            fresh = true;
            continue;
        };
        let yv: [f64; 3] = std::array::from_fn(|k| new_grad[k] - grad[k]);
        let sy = dot3(&s, &yv);
        if sy > 1e-12 {
            if fresh {
                // Scale the initial inverse Hessian to the observed curvature (Nocedal-Wright 6.20).
                let scale = sy / dot3(&yv, &yv);
                h = IDENTITY.map(|r| r.map(|x| x * scale));
            }
            // H <- (I - rho s y^T) H (I - rho y s^T) + rho s s^T
            let rho = 1.0 / sy;
            let hy: [f64; 3] = std::array::from_fn(|r| dot3(&h[r], &yv));
            let yhy = dot3(&yv, &hy);
            h = std::array::from_fn(|r| {
                std::array::from_fn(|c| {
                    h[r][c] - rho * (hy[r] * s[c] + s[r] * hy[c])
                        + (rho * rho * yhy + rho) * s[r] * s[c]
                })
            });
            fresh = false;
        }
        let improvement = phi - new_phi;
        theta = cand;
        phi = new_phi;
        grad = new_grad;
        if improvement.abs() < 1e-10 * (1.0 + phi.abs()) {
            break;
        }
    }
    Some((theta, -phi))
}

impl Gp {
    /// Fits an exact GP to `[n, d]` inputs `x` and n targets `y` with fixed hyperparameters.
    pub fn fit(x: &[f64], d: usize, y: &[f64], hyper: GpHyper) -> Result<Gp, GpError> {
        const OP: &str = "Gp::fit";
        let n = check_data(OP, x, d, y)?;
        hyper.validate(OP)?;
        let sq = pairwise_sq(x, d, n);
        let f = factorise(OP, &sq, n, y, hyper)?;
        Ok(Gp {
            x: x.to_vec(),
            d,
            n,
            hyper,
            chol: f.chol,
            alpha: f.alpha,
            jitter: f.jitter,
            lml: f.lml,
        })
    }

    /// Fits with hyperparameters maximising the log marginal likelihood from `init`
    /// (default bounds, 2 extra starts; see [`Gp::fit_optimised_with`]).
    pub fn fit_optimised(x: &[f64], d: usize, y: &[f64], init: GpHyper) -> Result<Gp, GpError> {
        Self::fit_optimised_with(x, d, y, init, &GpOptimOptions::default())
    }

    /// Maximises the log marginal likelihood over (ln l, ln s2, ln sn2) inside the bounds by
    /// BFGS with analytic gradients from `init` and `opts.restarts` deterministic
    /// length-scale-perturbed starts, then fits at the best point found.
    pub fn fit_optimised_with(
        x: &[f64],
        d: usize,
        y: &[f64],
        init: GpHyper,
        opts: &GpOptimOptions,
    ) -> Result<Gp, GpError> {
        const OP: &str = "Gp::fit_optimised";
        let n = check_data(OP, x, d, y)?;
        init.validate(OP)?;
        let bx = opts.bounds.log_box(OP)?;
        let sq = pairwise_sq(x, d, n);
        let eval = |t: [f64; 3]| lml_and_grad(&sq, n, y, t);
        let base = init.to_log();
        // Starts: the initial point, then length-scales x0.2, x5, x0.04, x25, ...
        let starts = (0..=opts.restarts).map(|r| {
            let mut t = base;
            if r > 0 {
                let power = r.div_ceil(2) as f64;
                let sign = if r % 2 == 1 { -1.0 } else { 1.0 };
                t[0] += sign * power * 5f64.ln();
            }
            t
        });
        let best = starts
            .filter_map(|s| maximise(&eval, s, &bx, opts.max_iter))
            .fold(None::<([f64; 3], f64)>, |best, cur| match best {
                Some(b) if b.1 >= cur.1 => Some(b),
                _ => Some(cur),
            });
        let (theta, _) = best.ok_or(GpError::OptimisationFailed { op: OP })?;
        Self::fit(x, d, y, GpHyper::from_log(theta))
    }

    /// Predictive mean and variances at `[m, d]` test inputs.
    pub fn predict(&self, x_star: &[f64], d: usize) -> Result<GpPrediction, GpError> {
        const OP: &str = "Gp::predict";
        if d != self.d {
            return Err(GpError::DimMismatch {
                op: OP,
                fitted: self.d,
                got: d,
            });
        }
        if !x_star.len().is_multiple_of(d) {
            return Err(GpError::InputShape {
                op: OP,
                len: x_star.len(),
                d,
            });
        }
        finite(OP, "x_star", x_star)?;
        let h = self.hyper;
        let inv_two_l2 = 1.0 / (2.0 * h.length_scale * h.length_scale);
        let m = x_star.len() / d;
        let mut out = GpPrediction {
            mean: Vec::with_capacity(m),
            var: Vec::with_capacity(m),
            latent_var: Vec::with_capacity(m),
        };
        let mut v = vec![0.0; self.n];
        for xs in x_star.chunks_exact(d) {
            for (i, vi) in v.iter_mut().enumerate() {
                let s = sq_dist(xs, &self.x[i * d..(i + 1) * d]);
                *vi = se(s, inv_two_l2, h.signal_var);
            }
            let mean = dot(&v, &self.alpha);
            forward_solve(&self.chol, self.n, &mut v);
            // Rounding can push s2 - |L^-1 k*|^2 slightly below zero next to the data.
            let latent = (h.signal_var - dot(&v, &v)).max(0.0);
            out.mean.push(mean);
            out.latent_var.push(latent);
            out.var.push(latent + h.noise_var);
        }
        Ok(out)
    }

    /// Log marginal likelihood log p(y | X, hyper) of the training data (nats).
    pub fn log_marginal_likelihood(&self) -> f64 {
        self.lml
    }

    /// Hyperparameters the GP was fitted with.
    pub fn hyper(&self) -> GpHyper {
        self.hyper
    }

    /// Diagonal jitter that had to be added for the Cholesky to succeed (0 if none).
    pub fn jitter(&self) -> f64 {
        self.jitter
    }

    /// Number of training points.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Input dimension d.
    pub fn d(&self) -> usize {
        self.d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * (1.0 + b.abs())
    }

    fn k(a: f64, b: f64, h: GpHyper) -> f64 {
        h.signal_var * (-(a - b) * (a - b) / (2.0 * h.length_scale * h.length_scale)).exp()
    }

    /// Determinant and inverse of a 3x3 matrix by cofactors.
    fn inv3(m: [[f64; 3]; 3]) -> (f64, [[f64; 3]; 3]) {
        let c = |r: usize, s: usize| {
            let (r1, r2) = ((r + 1) % 3, (r + 2) % 3);
            let (s1, s2) = ((s + 1) % 3, (s + 2) % 3);
            m[r1][s1] * m[r2][s2] - m[r1][s2] * m[r2][s1]
        };
        let det = m[0][0] * c(0, 0) + m[0][1] * c(0, 1) + m[0][2] * c(0, 2);
        // inverse = adjugate / det, adjugate = transpose of the cofactor matrix.
        let inv = std::array::from_fn(|r| std::array::from_fn(|s| c(s, r) / det));
        (det, inv)
    }

    const H3: GpHyper = GpHyper {
        length_scale: 1.3,
        signal_var: 0.8,
        noise_var: 0.1,
    };
    const X3: [f64; 3] = [0.0, 1.0, 2.5];
    const Y3: [f64; 3] = [0.5, -1.0, 2.0];

    fn k3() -> [[f64; 3]; 3] {
        std::array::from_fn(|i| {
            std::array::from_fn(|j| k(X3[i], X3[j], H3) + if i == j { H3.noise_var } else { 0.0 })
        })
    }

    #[test]
    fn three_point_posterior_matches_closed_form() {
        let (_, kinv) = inv3(k3());
        let gp = Gp::fit(&X3, 1, &Y3, H3).unwrap();
        assert_eq!(gp.jitter(), 0.0);
        let xs = [1.7, -0.4];
        let pred = gp.predict(&xs, 1).unwrap();
        for (j, &x) in xs.iter().enumerate() {
            let ks: [f64; 3] = std::array::from_fn(|i| k(x, X3[i], H3));
            let kinv_y: [f64; 3] = std::array::from_fn(|r| dot3(&kinv[r], &Y3));
            let kinv_k: [f64; 3] = std::array::from_fn(|r| dot3(&kinv[r], &ks));
            let mean = dot3(&ks, &kinv_y);
            let latent = H3.signal_var - dot3(&ks, &kinv_k);
            assert!(
                close(pred.mean[j], mean, 1e-12),
                "{} vs {mean}",
                pred.mean[j]
            );
            assert!(close(pred.latent_var[j], latent, 1e-12));
            assert!(close(pred.var[j], latent + H3.noise_var, 1e-12));
        }
    }

    #[test]
    fn log_marginal_likelihood_matches_direct_formula() {
        let (det, kinv) = inv3(k3());
        let kinv_y: [f64; 3] = std::array::from_fn(|r| dot3(&kinv[r], &Y3));
        let want =
            -0.5 * dot3(&Y3, &kinv_y) - 0.5 * det.ln() - 1.5 * (2.0 * std::f64::consts::PI).ln();
        let gp = Gp::fit(&X3, 1, &Y3, H3).unwrap();
        assert!(close(gp.log_marginal_likelihood(), want, 1e-12));
    }

    #[test]
    fn multi_dimensional_inputs_use_euclidean_distance() {
        // One training point at the origin, test point (3, 4) at distance 5, l = 5.
        let h = GpHyper {
            length_scale: 5.0,
            signal_var: 2.0,
            noise_var: 0.5,
        };
        let gp = Gp::fit(&[0.0, 0.0], 2, &[1.5], h).unwrap();
        let p = gp.predict(&[3.0, 4.0], 2).unwrap();
        let ks = 2.0 * (-0.5f64).exp();
        assert!(close(p.mean[0], ks / 2.5 * 1.5, 1e-12));
        assert!(close(p.latent_var[0], 2.0 - ks * ks / 2.5, 1e-12));
        assert!(matches!(
            gp.predict(&[3.0], 1),
            Err(GpError::DimMismatch {
                fitted: 2,
                got: 1,
                ..
            })
        ));
    }

    #[test]
    fn far_prediction_reverts_to_prior() {
        let gp = Gp::fit(&X3, 1, &Y3, H3).unwrap();
        let p = gp.predict(&[100.0, -1e6], 1).unwrap();
        for j in 0..2 {
            assert!(p.mean[j].abs() < 1e-12, "{}", p.mean[j]);
            assert!(close(p.var[j], H3.signal_var + H3.noise_var, 1e-12));
        }
    }

    #[test]
    fn jitter_rescues_duplicate_points() {
        // Identical inputs with negligible noise make K singular in floating point.
        let h = GpHyper {
            length_scale: 1.0,
            signal_var: 1.0,
            noise_var: 1e-300,
        };
        let gp = Gp::fit(&[0.5, 0.5], 1, &[1.0, 1.0], h).unwrap();
        assert!(gp.jitter() > 0.0);
        let p = gp.predict(&[0.5], 1).unwrap();
        assert!((p.mean[0] - 1.0).abs() < 1e-6, "{}", p.mean[0]);
    }

    #[test]
    fn bad_input_gives_typed_errors() {
        assert!(matches!(
            Gp::fit(&[0.0, 1.0, 2.0], 2, &[0.0], H3),
            Err(GpError::InputShape { .. })
        ));
        assert!(matches!(
            Gp::fit(&X3, 1, &[0.0], H3),
            Err(GpError::TargetLength {
                points: 3,
                targets: 1,
                ..
            })
        ));
        assert!(matches!(
            Gp::fit(&[0.0, f64::NAN], 1, &[0.0, 1.0], H3),
            Err(GpError::NonFinite {
                what: "x",
                index: 1,
                ..
            })
        ));
        let bad = GpHyper {
            noise_var: 0.0,
            ..H3
        };
        assert!(matches!(
            Gp::fit(&X3, 1, &Y3, bad),
            Err(GpError::InvalidHyper {
                name: "noise_var",
                ..
            })
        ));
        assert!(matches!(
            Gp::fit(&[], 1, &[], H3),
            Err(GpError::Empty { .. })
        ));
        let opts = GpOptimOptions {
            bounds: GpBounds {
                length_scale: (2.0, 1.0),
                ..GpBounds::default()
            },
            ..GpOptimOptions::default()
        };
        assert!(matches!(
            Gp::fit_optimised_with(&X3, 1, &Y3, H3, &opts),
            Err(GpError::InvalidBounds { .. })
        ));
    }

    /// Deterministic noisy samples of sin(3x) on [-2, 2] (fixed LCG, no RNG dependency).
    fn toy_data(n: usize) -> (Vec<f64>, Vec<f64>) {
        let mut state: u64 = 12345;
        let mut uniform = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let x: Vec<f64> = (0..n)
            .map(|i| -2.0 + 4.0 * i as f64 / (n - 1) as f64)
            .collect();
        let y = x
            .iter()
            .map(|&v| (3.0 * v).sin() + 0.2 * (uniform() - 0.5) * 3.46)
            .collect();
        (x, y)
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let (x, y) = toy_data(20);
        let sq = pairwise_sq(&x, 1, 20);
        let theta = [0.3f64.ln(), 1.2f64.ln(), 0.05f64.ln()];
        let (_, g) = lml_and_grad(&sq, 20, &y, theta).unwrap();
        for k in 0..3 {
            let eps = 1e-5;
            let mut tp = theta;
            let mut tm = theta;
            tp[k] += eps;
            tm[k] -= eps;
            let fd = (lml_and_grad(&sq, 20, &y, tp).unwrap().0
                - lml_and_grad(&sq, 20, &y, tm).unwrap().0)
                / (2.0 * eps);
            assert!(
                close(g[k], fd, 1e-5),
                "param {k}: analytic {} vs fd {fd}",
                g[k]
            );
        }
    }

    #[test]
    fn optimiser_increases_lml_and_finds_sensible_noise() {
        let (x, y) = toy_data(60);
        let init = GpHyper {
            length_scale: 3.0,
            signal_var: 0.2,
            noise_var: 0.5,
        };
        let start = Gp::fit(&x, 1, &y, init).unwrap().log_marginal_likelihood();
        let gp = Gp::fit_optimised(&x, 1, &y, init).unwrap();
        let h = gp.hyper();
        assert!(
            gp.log_marginal_likelihood() > start + 10.0,
            "{start} -> {}",
            gp.log_marginal_likelihood()
        );
        // Noise sd was 0.2 (uniform scaled to that sd); sin(3x) wiggles on scale ~0.5.
        assert!((0.01..0.1).contains(&h.noise_var), "{h:?}");
        assert!((0.2..1.5).contains(&h.length_scale), "{h:?}");
        // A local maximum: nudging any log-parameter does not increase the LML.
        let sq = pairwise_sq(&x, 1, 60);
        let best = h.to_log();
        let (f0, g) = lml_and_grad(&sq, 60, &y, best).unwrap();
        assert!(g.iter().all(|v| v.abs() < 1e-3), "{g:?}");
        for k in 0..3 {
            for delta in [-0.05, 0.05] {
                let mut t = best;
                t[k] += delta;
                assert!(lml_and_grad(&sq, 60, &y, t).unwrap().0 <= f0 + 1e-9);
            }
        }
    }

    #[test]
    fn fit_of_272_points_and_its_optimisation() {
        // CO2-sized problem. Its timing is a bench (`benches/benchmarks/gp.rs`), not a test: a
        // busy machine must not fail the suite.
        let (x, y) = toy_data(272);
        let init = GpHyper {
            length_scale: 1.0,
            signal_var: 1.0,
            noise_var: 0.1,
        };
        let gp = Gp::fit(&x, 1, &y, init).unwrap();
        assert!(gp.log_marginal_likelihood().is_finite());
        let optimised = Gp::fit_optimised(&x, 1, &y, init).unwrap();
        assert!(optimised.log_marginal_likelihood() > gp.log_marginal_likelihood());
    }
}
