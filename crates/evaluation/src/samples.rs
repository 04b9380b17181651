//! Borrowed, shape-checked views of the T stochastic forward passes (pass-major layouts).

use crate::error::EvalError;

/// Largest allowed |sum - 1| of a probability vector: loose enough for f32 softmax outputs of
/// many classes (rounding ~1e-6), tight enough to catch logits or unnormalised scores.
pub const PROB_SUM_TOLERANCE: f64 = 1e-3;

/// Product of a shape, or a `Shape` error when it overflows or disagrees with `len`.
fn check_shape(op: &'static str, shape: &[usize], len: usize) -> Result<(), EvalError> {
    let expected = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .unwrap_or(usize::MAX);
    if expected != len {
        return Err(EvalError::Shape {
            op,
            shape: shape.to_vec(),
            expected,
            len,
        });
    }
    Ok(())
}

/// Rejects zero-sized dimensions: a mean over no passes or no points is undefined.
fn check_nonzero(op: &'static str, dims: &[(usize, &'static str)]) -> Result<(), EvalError> {
    match dims.iter().find(|(d, _)| *d == 0) {
        Some((_, what)) => Err(EvalError::Empty { op, what }),
        None => Ok(()),
    }
}

/// Regression samples: row-major `[T, N]`, row `t` holds pass `t` for all N points.
#[derive(Debug, Clone, Copy)]
pub struct SampleMatrix<'a> {
    data: &'a [f32],
    t: usize,
    n: usize,
}

impl<'a> SampleMatrix<'a> {
    /// Wraps `data` as `[t, n]`; errors if the length is wrong, a dimension is 0 or a value is not finite.
    pub fn new(data: &'a [f32], t: usize, n: usize) -> Result<Self, EvalError> {
        const OP: &str = "SampleMatrix::new";
        check_shape(OP, &[t, n], data.len())?;
        check_nonzero(OP, &[(t, "passes (T)"), (n, "points (N)")])?;
        if let Some((k, &v)) = data.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(EvalError::NonFinite {
                op: OP,
                what: "samples",
                at: format!("pass {}, point {}", k / n, k % n),
                value: f64::from(v),
            });
        }
        Ok(Self { data, t, n })
    }

    /// Number of stochastic passes T.
    pub fn t(&self) -> usize {
        self.t
    }

    /// Number of points N.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The flat `[T, N]` buffer.
    pub fn data(&self) -> &'a [f32] {
        self.data
    }

    /// Outputs of pass `t` for all points, or `None` if `t >= T`.
    pub fn pass(&self, t: usize) -> Option<&'a [f32]> {
        (t < self.t).then(|| &self.data[t * self.n..(t + 1) * self.n])
    }

    /// Output of pass `t` at point `i` (caller guarantees the indices are in range).
    pub(crate) fn at(&self, t: usize, i: usize) -> f64 {
        f64::from(self.data[t * self.n + i])
    }
}

/// Per-pass class probabilities: row-major `[T, N, C]`, each innermost row a distribution.
#[derive(Debug, Clone, Copy)]
pub struct ProbSamples<'a> {
    data: &'a [f32],
    t: usize,
    n: usize,
    c: usize,
}

impl<'a> ProbSamples<'a> {
    /// Wraps `data` as `[t, n, c]`; every row must be finite, in [0, 1] and sum to 1 within
    /// [`PROB_SUM_TOLERANCE`] (pass logits through [`LogitSamples::softmax`] first).
    pub fn new(data: &'a [f32], t: usize, n: usize, c: usize) -> Result<Self, EvalError> {
        const OP: &str = "ProbSamples::new";
        check_shape(OP, &[t, n, c], data.len())?;
        check_nonzero(
            OP,
            &[(t, "passes (T)"), (n, "points (N)"), (c, "classes (C)")],
        )?;
        for (row_idx, row) in data.chunks_exact(c).enumerate() {
            let at = || format!("pass {}, point {}", row_idx / n, row_idx % n);
            if let Some((k, &p)) = row
                .iter()
                .enumerate()
                .find(|(_, p)| !(0.0..=1.0).contains(*p))
            {
                return Err(EvalError::NotDistribution {
                    op: OP,
                    at: at(),
                    detail: format!("class {k} has probability {p}"),
                });
            }
            let sum: f64 = row.iter().map(|&p| f64::from(p)).sum();
            if (sum - 1.0).abs() > PROB_SUM_TOLERANCE {
                return Err(EvalError::NotDistribution {
                    op: OP,
                    at: at(),
                    detail: format!("sum is {sum}, tolerance {PROB_SUM_TOLERANCE}"),
                });
            }
        }
        Ok(Self { data, t, n, c })
    }

    /// Number of stochastic passes T.
    pub fn t(&self) -> usize {
        self.t
    }

    /// Number of points N.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Number of classes C.
    pub fn c(&self) -> usize {
        self.c
    }

    /// The flat `[T, N, C]` buffer.
    pub fn data(&self) -> &'a [f32] {
        self.data
    }

    /// Class probabilities of pass `t` at point `i`, or `None` if out of range.
    pub fn probs(&self, t: usize, i: usize) -> Option<&'a [f32]> {
        (t < self.t && i < self.n).then(|| {
            let start = (t * self.n + i) * self.c;
            &self.data[start..start + self.c]
        })
    }
}

/// Per-pass logits (softmax inputs): row-major `[T, N, C]`.
#[derive(Debug, Clone, Copy)]
pub struct LogitSamples<'a> {
    data: &'a [f32],
    t: usize,
    n: usize,
    c: usize,
}

impl<'a> LogitSamples<'a> {
    /// Wraps `data` as `[t, n, c]`; errors if the length is wrong, a dimension is 0 or a value is not finite.
    pub fn new(data: &'a [f32], t: usize, n: usize, c: usize) -> Result<Self, EvalError> {
        const OP: &str = "LogitSamples::new";
        check_shape(OP, &[t, n, c], data.len())?;
        check_nonzero(
            OP,
            &[(t, "passes (T)"), (n, "points (N)"), (c, "classes (C)")],
        )?;
        if let Some((k, &v)) = data.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            let row = k / c;
            return Err(EvalError::NonFinite {
                op: OP,
                what: "logits",
                at: format!("pass {}, point {}, class {}", row / n, row % n, k % c),
                value: f64::from(v),
            });
        }
        Ok(Self { data, t, n, c })
    }

    /// Number of stochastic passes T.
    pub fn t(&self) -> usize {
        self.t
    }

    /// Number of points N.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Number of classes C.
    pub fn c(&self) -> usize {
        self.c
    }

    /// Row-wise softmax (max-shifted, in f64) as a new `[T, N, C]` buffer for [`ProbSamples::new`].
    pub fn softmax(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.data.len());
        for row in self.data.chunks_exact(self.c) {
            let max = row
                .iter()
                .map(|&v| f64::from(v))
                .fold(f64::NEG_INFINITY, f64::max);
            let exps: Vec<f64> = row.iter().map(|&v| (f64::from(v) - max).exp()).collect();
            let z: f64 = exps.iter().sum();
            out.extend(exps.iter().map(|e| (e / z) as f32));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_matrix_checks_shape_and_values() {
        let data = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let m = SampleMatrix::new(&data, 2, 3).expect("valid shape");
        assert_eq!(m.pass(1), Some(&data[3..6]));
        assert_eq!(m.pass(2), None);
        let err = SampleMatrix::new(&data, 4, 2).unwrap_err();
        assert!(matches!(
            err,
            EvalError::Shape {
                expected: 8,
                len: 6,
                ..
            }
        ));
        assert!(err.to_string().contains("SampleMatrix::new"));
        assert!(matches!(
            SampleMatrix::new(&[], 0, 5),
            Err(EvalError::Empty { .. })
        ));
        // Overflowing shapes must be reported, not wrap around.
        assert!(matches!(
            SampleMatrix::new(&data, usize::MAX, 2),
            Err(EvalError::Shape { .. })
        ));
        let bad = [1.0f32, f32::NAN, 0.0, 0.0];
        let err = SampleMatrix::new(&bad, 2, 2).unwrap_err();
        assert!(err.to_string().contains("pass 0, point 1"), "{err}");
    }

    #[test]
    fn prob_samples_reject_non_distributions() {
        let ok = [0.25f32, 0.75, 1.0, 0.0];
        let p = ProbSamples::new(&ok, 1, 2, 2).expect("valid");
        assert_eq!(p.probs(0, 1), Some(&ok[2..4]));
        assert_eq!(p.probs(0, 2), None);
        let unnormalised = [0.5f32, 0.75];
        assert!(matches!(
            ProbSamples::new(&unnormalised, 1, 1, 2),
            Err(EvalError::NotDistribution { .. })
        ));
        let negative = [1.5f32, -0.5];
        assert!(matches!(
            ProbSamples::new(&negative, 1, 1, 2),
            Err(EvalError::NotDistribution { .. })
        ));
        assert!(matches!(
            ProbSamples::new(&ok, 1, 1, 2),
            Err(EvalError::Shape { .. })
        ));
    }

    #[test]
    fn softmax_matches_hand_values_and_is_stable() {
        // softmax([0, 1]) = [1, e] / (1 + e); the same logits shifted by 1000 (exact in f32)
        // must give the same values instead of overflowing exp.
        let logits = [0.0f32, 1.0, 1000.0, 1001.0];
        let l = LogitSamples::new(&logits, 2, 1, 2).expect("valid");
        let p = l.softmax();
        let e = std::f64::consts::E;
        let want = [1.0 / (1.0 + e), e / (1.0 + e)];
        for (k, got) in p.iter().enumerate() {
            assert!(
                (f64::from(*got) - want[k % 2]).abs() < 1e-7,
                "{got} vs {}",
                want[k % 2]
            );
        }
        assert!(ProbSamples::new(&p, 2, 1, 2).is_ok());
    }
}
