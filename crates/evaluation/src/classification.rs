//! Classification metrics from T MC-dropout passes of softmax outputs: predictive
//! probabilities, uncertainty scores (entropy, BALD mutual information, variation ratio, mean
//! STD),
//! accuracy / NLL / Brier, calibration (ECE with reliability bins) and OOD ranking (AUROC, AUPR).
//!
//! Logarithms are natural (nats). Ties in an argmax go to the lowest class index.

use crate::error::{all_finite, same_len, EvalError};
use crate::samples::{ProbSamples, PROB_SUM_TOLERANCE};

/// Floor applied to the true-class probability in [`nll`], so a confident miss costs
/// -ln(1e-12) ~= 27.6 nats instead of infinity.
pub const PROB_FLOOR: f64 = 1e-12;

/// Usual number of equal-width confidence bins for [`ece`] (Guo et al. 2017).
pub const DEFAULT_ECE_BINS: usize = 15;

/// Index of the largest entry, lowest index on ties.
fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (k, &p) in row.iter().enumerate().skip(1) {
        if p > row[best] {
            best = k;
        }
    }
    best
}

/// Predictive class probabilities `[N, C]` (row-major), one distribution per point.
#[derive(Debug, Clone, PartialEq)]
pub struct MeanProbs {
    probs: Vec<f64>,
    n: usize,
    c: usize,
}

impl MeanProbs {
    /// Wraps an `[n, c]` buffer; rows must be finite, in [0, 1] and sum to 1 within tolerance.
    pub fn new(probs: Vec<f64>, n: usize, c: usize) -> Result<Self, EvalError> {
        const OP: &str = "MeanProbs::new";
        let expected = n.saturating_mul(c);
        if expected != probs.len() {
            return Err(EvalError::Shape {
                op: OP,
                shape: vec![n, c],
                expected,
                len: probs.len(),
            });
        }
        if n == 0 || c == 0 {
            return Err(EvalError::Empty {
                op: OP,
                what: if n == 0 { "points (N)" } else { "classes (C)" },
            });
        }
        for (i, row) in probs.chunks_exact(c).enumerate() {
            let sum: f64 = row.iter().sum();
            let bad_entry = row.iter().position(|p| !(0.0..=1.0).contains(p));
            if bad_entry.is_some() || (sum - 1.0).abs() > PROB_SUM_TOLERANCE {
                return Err(EvalError::NotDistribution {
                    op: OP,
                    at: format!("point {i}"),
                    detail: match bad_entry {
                        Some(k) => format!("class {k} has probability {}", row[k]),
                        None => format!("sum is {sum}, tolerance {PROB_SUM_TOLERANCE}"),
                    },
                });
            }
        }
        Ok(Self { probs, n, c })
    }

    /// Number of points N.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Number of classes C.
    pub fn c(&self) -> usize {
        self.c
    }

    /// The flat `[N, C]` buffer.
    pub fn as_slice(&self) -> &[f64] {
        &self.probs
    }

    /// Distribution of point `i`, or `None` if out of range.
    pub fn row(&self, i: usize) -> Option<&[f64]> {
        (i < self.n).then(|| &self.probs[i * self.c..(i + 1) * self.c])
    }

    /// Predicted class per point (argmax, lowest index on ties).
    pub fn predicted(&self) -> Vec<usize> {
        self.probs.chunks_exact(self.c).map(argmax).collect()
    }

    /// Confidence per point: the largest predictive probability.
    pub fn confidence(&self) -> Vec<f64> {
        self.probs
            .chunks_exact(self.c)
            .map(|r| r.iter().copied().fold(0.0, f64::max))
            .collect()
    }

    /// Checks labels against N and C for the metric `op`.
    fn check_labels(&self, op: &'static str, labels: &[usize]) -> Result<(), EvalError> {
        same_len(op, "probs (N)", self.n, "labels", labels.len())?;
        match labels.iter().enumerate().find(|(_, &l)| l >= self.c) {
            Some((index, &label)) => Err(EvalError::LabelOutOfRange {
                op,
                index,
                label,
                classes: self.c,
            }),
            None => Ok(()),
        }
    }
}

/// Average of the per-pass softmax outputs, p(c|x) = (1/T) sum_t p_t(c|x), in f64.
pub fn mean_probs(samples: &ProbSamples) -> MeanProbs {
    let (t, n, c) = (samples.t(), samples.n(), samples.c());
    let mut probs = vec![0.0f64; n * c];
    for pass in samples.data().chunks_exact(n * c) {
        for (acc, &p) in probs.iter_mut().zip(pass) {
            *acc += f64::from(p);
        }
    }
    let inv_t = 1.0 / t as f64;
    probs.iter_mut().for_each(|p| *p *= inv_t);
    MeanProbs { probs, n, c }
}

/// Shannon entropy -sum p ln p of one distribution, with 0 ln 0 = 0.
pub fn entropy(p: &[f64]) -> f64 {
    -p.iter()
        .filter(|&&q| q > 0.0)
        .map(|&q| q * q.ln())
        .sum::<f64>()
}

/// Predictive entropy `H(mean_t p_t)` per point (total uncertainty, nats).
pub fn predictive_entropy(samples: &ProbSamples) -> Vec<f64> {
    let m = mean_probs(samples);
    m.probs.chunks_exact(m.c).map(entropy).collect()
}

/// BALD mutual information `H(mean_t p_t) - (1/T) sum_t H(p_t)` per point (epistemic part, nats).
///
/// It is >= 0 by Jensen's inequality; tiny negatives from rounding are clamped to 0.
pub fn mutual_information(samples: &ProbSamples) -> Vec<f64> {
    let (t, n, c) = (samples.t(), samples.n(), samples.c());
    let m = mean_probs(samples);
    let mut expected_h = vec![0.0f64; n];
    let mut row = vec![0.0f64; c];
    for pass in samples.data().chunks_exact(n * c) {
        for (h, probs) in expected_h.iter_mut().zip(pass.chunks_exact(c)) {
            row.iter_mut()
                .zip(probs)
                .for_each(|(r, &p)| *r = f64::from(p));
            *h += entropy(&row);
        }
    }
    m.probs
        .chunks_exact(c)
        .zip(&expected_h)
        .map(|(mean_row, h)| (entropy(mean_row) - h / t as f64).max(0.0))
        .collect()
}

/// Variation ratio 1 - (count of the modal class among the T per-pass argmaxes) / T.
///
/// Each pass votes for its argmax (lowest class index on ties). Which class is modal when
/// several share the top count does not matter: only the count enters.
pub fn variation_ratio(samples: &ProbSamples) -> Vec<f64> {
    let (t, n, c) = (samples.t(), samples.n(), samples.c());
    let mut votes = vec![0usize; n * c];
    let mut row = vec![0.0f64; c];
    for pass in samples.data().chunks_exact(n * c) {
        for (i, probs) in pass.chunks_exact(c).enumerate() {
            row.iter_mut()
                .zip(probs)
                .for_each(|(r, &p)| *r = f64::from(p));
            votes[i * c + argmax(&row)] += 1;
        }
    }
    votes
        .chunks_exact(c)
        .map(|v| 1.0 - *v.iter().max().unwrap_or(&0) as f64 / t as f64)
        .collect()
}

/// Mean STD (Kampffmeyer et al. 2016; Gal, Islam & Ghahramani 2017): the standard deviation of
/// each class's probability over the T passes, `sqrt(E_t[p_t(c)^2] - E_t[p_t(c)]^2)` (the
/// population sd, 1/T), averaged over the C classes, per point.
pub fn mean_std(samples: &ProbSamples) -> Vec<f64> {
    let (t, n, c) = (samples.t(), samples.n(), samples.c());
    let mut sum = vec![0.0f64; n * c];
    let mut sq = vec![0.0f64; n * c];
    for pass in samples.data().chunks_exact(n * c) {
        for ((s, q), &p) in sum.iter_mut().zip(sq.iter_mut()).zip(pass) {
            let p = f64::from(p);
            *s += p;
            *q += p * p;
        }
    }
    let inv_t = 1.0 / t as f64;
    sum.chunks_exact(c)
        .zip(sq.chunks_exact(c))
        .map(|(s, q)| {
            s.iter()
                .zip(q)
                .map(|(&s, &q)| {
                    let m = s * inv_t;
                    (q * inv_t - m * m).max(0.0).sqrt()
                })
                .sum::<f64>()
                / c as f64
        })
        .collect()
}

/// Fraction of points whose predicted class (argmax of the predictive probabilities) is the label.
pub fn accuracy(probs: &MeanProbs, labels: &[usize]) -> Result<f64, EvalError> {
    probs.check_labels("accuracy", labels)?;
    let correct = probs
        .predicted()
        .iter()
        .zip(labels)
        .filter(|(p, l)| p == l)
        .count();
    Ok(correct as f64 / probs.n as f64)
}

/// Mean negative log predictive probability of the true class, -ln max(p_true, [`PROB_FLOOR`]).
pub fn nll(probs: &MeanProbs, labels: &[usize]) -> Result<f64, EvalError> {
    probs.check_labels("nll", labels)?;
    let total: f64 = probs
        .probs
        .chunks_exact(probs.c)
        .zip(labels)
        .map(|(row, &l)| -row[l].max(PROB_FLOOR).ln())
        .sum();
    Ok(total / probs.n as f64)
}

/// Brier score: sum over classes of (p_c - 1[c = label])^2, averaged over points (range [0, 2]).
pub fn brier(probs: &MeanProbs, labels: &[usize]) -> Result<f64, EvalError> {
    probs.check_labels("brier", labels)?;
    let total: f64 = probs
        .probs
        .chunks_exact(probs.c)
        .zip(labels)
        .map(|(row, &l)| {
            row.iter()
                .enumerate()
                .map(|(k, &p)| {
                    let target = if k == l { 1.0 } else { 0.0 };
                    (p - target) * (p - target)
                })
                .sum::<f64>()
        })
        .sum();
    Ok(total / probs.n as f64)
}

/// One confidence bin of a reliability diagram.
#[derive(Debug, Clone, PartialEq)]
pub struct Bin {
    /// Lower edge (exclusive, except the first bin which also holds confidence 0).
    pub lower: f64,
    /// Upper edge (inclusive).
    pub upper: f64,
    /// Number of points whose confidence falls in the bin.
    pub count: usize,
    /// Fraction of those points predicted correctly (0 when the bin is empty).
    pub accuracy: f64,
    /// Mean confidence of those points (0 when the bin is empty).
    pub confidence: f64,
}

/// Expected calibration error and the bins it was computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    /// sum_b (count_b / N) |accuracy_b - confidence_b|.
    pub ece: f64,
    /// Equal-width bins over [0, 1], lowest first.
    pub bins: Vec<Bin>,
}

/// Expected calibration error over `n_bins` equal-width bins (lower, upper] of the confidence
/// (max predictive probability); [`DEFAULT_ECE_BINS`] is the usual choice.
pub fn ece(probs: &MeanProbs, labels: &[usize], n_bins: usize) -> Result<Calibration, EvalError> {
    const OP: &str = "ece";
    probs.check_labels(OP, labels)?;
    if n_bins == 0 {
        return Err(EvalError::Empty {
            op: OP,
            what: "bins (n_bins)",
        });
    }
    let edge = |b: usize| b as f64 / n_bins as f64;
    let mut count = vec![0usize; n_bins];
    let mut correct = vec![0usize; n_bins];
    let mut conf_sum = vec![0.0f64; n_bins];
    for ((conf, pred), &label) in probs
        .confidence()
        .into_iter()
        .zip(probs.predicted())
        .zip(labels)
    {
        // Start from the arithmetic guess, then nudge so that edge(b) < conf <= edge(b + 1)
        // holds with the same edge values the bins report.
        let mut b = ((conf * n_bins as f64).ceil() as usize).clamp(1, n_bins) - 1;
        while b > 0 && conf <= edge(b) {
            b -= 1;
        }
        while b + 1 < n_bins && conf > edge(b + 1) {
            b += 1;
        }
        count[b] += 1;
        correct[b] += usize::from(pred == label);
        conf_sum[b] += conf;
    }
    let n = probs.n as f64;
    let mut total = 0.0;
    let bins = (0..n_bins)
        .map(|b| {
            let (accuracy, confidence) = if count[b] == 0 {
                (0.0, 0.0)
            } else {
                let k = count[b] as f64;
                (correct[b] as f64 / k, conf_sum[b] / k)
            };
            total += count[b] as f64 / n * (accuracy - confidence).abs();
            Bin {
                lower: edge(b),
                upper: edge(b + 1),
                count: count[b],
                accuracy,
                confidence,
            }
        })
        .collect();
    Ok(Calibration { ece: total, bins })
}

/// Validates a ranking problem; returns (positives, negatives).
fn check_ranking(
    op: &'static str,
    scores: &[f64],
    is_positive: &[bool],
) -> Result<(usize, usize), EvalError> {
    same_len(op, "scores", scores.len(), "is_positive", is_positive.len())?;
    all_finite(op, "scores", scores)?;
    let positives = is_positive.iter().filter(|&&p| p).count();
    let negatives = is_positive.len() - positives;
    if positives == 0 || negatives == 0 {
        return Err(EvalError::DegenerateLabels {
            op,
            positives,
            negatives,
        });
    }
    Ok((positives, negatives))
}

/// Area under the ROC curve: probability that a random positive scores above a random
/// negative, ties counted 1/2 (Mann-Whitney U / (P N)).
///
/// For OOD detection pass an uncertainty score (higher = more likely OOD) and mark the
/// out-of-distribution points as positive.
pub fn auroc(scores: &[f64], is_positive: &[bool]) -> Result<f64, EvalError> {
    let (pos, neg) = check_ranking("auroc", scores, is_positive)?;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Sum of 1-based ranks of the positives, tied groups sharing their average rank.
    let mut rank_sum = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && scores[order[end]] == scores[order[start]] {
            end += 1;
        }
        let avg_rank = (start + 1 + end) as f64 / 2.0;
        let pos_in_group = order[start..end]
            .iter()
            .filter(|&&k| is_positive[k])
            .count();
        rank_sum += avg_rank * pos_in_group as f64;
        start = end;
    }
    let u = rank_sum - (pos * (pos + 1)) as f64 / 2.0;
    Ok(u / (pos as f64 * neg as f64))
}

/// Area under the precision-recall curve as average precision, sum_k (R_k - R_{k-1}) P_k,
/// over thresholds at each distinct score from high to low (tied scores form one threshold;
/// the scikit-learn `average_precision_score` convention).
///
/// Positives are the out-of-distribution points and higher scores mean "more OOD"; the
/// value for a random ranking is the positive fraction, not 0.5.
pub fn aupr(scores: &[f64], is_positive: &[bool]) -> Result<f64, EvalError> {
    let (pos, _) = check_ranking("aupr", scores, is_positive)?;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut prev_recall = 0.0;
    let mut ap = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && scores[order[end]] == scores[order[start]] {
            end += 1;
        }
        for &k in &order[start..end] {
            if is_positive[k] {
                tp += 1;
            } else {
                fp += 1;
            }
        }
        let recall = tp as f64 / pos as f64;
        let precision = tp as f64 / (tp + fp) as f64;
        ap += (recall - prev_recall) * precision;
        prev_recall = recall;
        start = end;
    }
    Ok(ap)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * (1.0 + b.abs())
    }

    #[test]
    fn mean_probs_averages_passes_per_point() {
        // [T=2, N=2, C=2]
        let data = [1.0f32, 0.0, 0.5, 0.5, 0.0, 1.0, 0.25, 0.75];
        let s = ProbSamples::new(&data, 2, 2, 2).unwrap();
        let m = mean_probs(&s);
        assert_eq!(m.as_slice(), &[0.5, 0.5, 0.375, 0.625]);
        assert_eq!(m.row(1), Some(&[0.375, 0.625][..]));
        // Point 0 is a tie: lowest class index wins.
        assert_eq!(m.predicted(), vec![0, 1]);
        assert_eq!(m.confidence(), vec![0.5, 0.625]);
    }

    #[test]
    fn entropy_of_uniform_is_ln_c_and_zero_for_one_hot() {
        let data = [0.25f32; 4];
        let s = ProbSamples::new(&data, 1, 1, 4).unwrap();
        assert!(close(predictive_entropy(&s)[0], 4f64.ln(), 1e-12));
        // 0 ln 0 must count as 0, not NaN.
        assert_eq!(entropy(&[1.0, 0.0, 0.0]), 0.0);
    }

    #[test]
    fn mutual_information_zero_when_passes_agree_positive_when_not() {
        let agree = [0.7f32, 0.3, 0.7, 0.3, 0.7, 0.3];
        let s = ProbSamples::new(&agree, 3, 1, 2).unwrap();
        let mi = mutual_information(&s)[0];
        assert!((0.0..1e-12).contains(&mi), "{mi}");
        // Confident passes that disagree: mean is uniform, each pass has entropy 0.
        let disagree = [1.0f32, 0.0, 0.0, 1.0];
        let s = ProbSamples::new(&disagree, 2, 1, 2).unwrap();
        assert!(close(mutual_information(&s)[0], 2f64.ln(), 1e-12));
        assert!(close(predictive_entropy(&s)[0], 2f64.ln(), 1e-12));
        // Partial disagreement: H([.5,.5]) - (H([.8,.2]) + H([.2,.8])) / 2.
        let partial = [0.8f32, 0.2, 0.2, 0.8];
        let s = ProbSamples::new(&partial, 2, 1, 2).unwrap();
        let h82 = -(0.8f64 * 0.8f64.ln() + 0.2 * 0.2f64.ln());
        assert!(close(mutual_information(&s)[0], 2f64.ln() - h82, 1e-6));
    }

    #[test]
    fn variation_ratio_counts_modal_votes() {
        // Argmaxes 0, 1, 1, 2 over four passes: modal count 2, ratio 1 - 2/4.
        let data = [
            0.6f32, 0.3, 0.1, 0.1, 0.8, 0.1, 0.2, 0.5, 0.3, 0.0, 0.1, 0.9,
        ];
        let s = ProbSamples::new(&data, 4, 1, 3).unwrap();
        assert!(close(variation_ratio(&s)[0], 0.5, 1e-12));
        // A tied pass votes for the lowest index, agreeing with the second pass's class 0.
        let tie = [0.5f32, 0.5, 0.0, 0.9, 0.1, 0.0];
        let s = ProbSamples::new(&tie, 2, 1, 3).unwrap();
        assert_eq!(variation_ratio(&s)[0], 0.0);
    }

    #[test]
    fn mean_std_hand_cases() {
        // Two passes, one point, two classes: p(0) is 0.8 then 0.2, sd 0.3; p(1) the same.
        let data = [0.8f32, 0.2, 0.2, 0.8];
        let s = ProbSamples::new(&data, 2, 1, 2).unwrap();
        assert!(close(mean_std(&s)[0], 0.3, 1e-6));
        // Passes that agree: 0. Three classes, four passes, second point:
        // class 0: 1, 0, 0, 1 -> mean .5, sd .5; class 1: 0, 1, 0, 0 -> mean .25, sd sqrt(3)/4;
        // class 2: 0, 0, 1, 0 -> the same; mean of the three sds.
        let data = [
            0.5f32, 0.25, 0.25, 1.0, 0.0, 0.0, //
            0.5, 0.25, 0.25, 0.0, 1.0, 0.0, //
            0.5, 0.25, 0.25, 0.0, 0.0, 1.0, //
            0.5, 0.25, 0.25, 1.0, 0.0, 0.0,
        ];
        let s = ProbSamples::new(&data, 4, 2, 3).unwrap();
        let m = mean_std(&s);
        assert!(m[0].abs() < 1e-7, "{}", m[0]);
        let want = (0.5 + 2.0 * 3f64.sqrt() / 4.0) / 3.0;
        assert!(close(m[1], want, 1e-7), "{} vs {want}", m[1]);
    }

    #[test]
    fn accuracy_nll_brier_hand_cases() {
        let m = MeanProbs::new(vec![0.8, 0.2, 0.0, 1.0], 2, 2).unwrap();
        assert_eq!(accuracy(&m, &[0, 0]).unwrap(), 0.5);
        let want = (-(0.8f64.ln()) - PROB_FLOOR.ln()) / 2.0;
        assert!(close(nll(&m, &[0, 0]).unwrap(), want, 1e-12));
        // (0.2^2 + 0.2^2) and (1 + 1), averaged.
        assert!(close(
            brier(&m, &[0, 0]).unwrap(),
            (0.08 + 2.0) / 2.0,
            1e-12
        ));
        assert!(matches!(
            accuracy(&m, &[0, 2]),
            Err(EvalError::LabelOutOfRange { label: 2, .. })
        ));
        assert!(matches!(
            nll(&m, &[0]),
            Err(EvalError::LengthMismatch { .. })
        ));
        assert!(MeanProbs::new(vec![0.8, 0.3], 1, 2).is_err());
    }

    #[test]
    fn ece_hand_case() {
        // Confidences .9 (right), .6 (wrong), .7 (right), .5 (tie -> class 0, right).
        let m = MeanProbs::new(vec![0.9, 0.1, 0.6, 0.4, 0.3, 0.7, 0.5, 0.5], 4, 2).unwrap();
        let cal = ece(&m, &[0, 1, 1, 0], 2).unwrap();
        // Bin (0, .5]: one point, acc 1, conf .5. Bin (.5, 1]: acc 2/3, conf 2.2/3.
        assert_eq!(cal.bins.len(), 2);
        assert_eq!(cal.bins[0].count, 1);
        assert_eq!(cal.bins[1].count, 3);
        assert!(close(cal.bins[1].accuracy, 2.0 / 3.0, 1e-12));
        assert!(close(cal.bins[1].confidence, 2.2 / 3.0, 1e-12));
        let want = 0.25 * 0.5 + 0.75 * (2.2 / 3.0 - 2.0 / 3.0);
        assert!(close(cal.ece, want, 1e-12), "{} vs {want}", cal.ece);
        assert_eq!((cal.bins[1].lower, cal.bins[1].upper), (0.5, 1.0));
        // Perfectly calibrated certain predictions have ECE 0; empty bins report zeros.
        let sure = MeanProbs::new(vec![1.0, 0.0, 0.0, 1.0], 2, 2).unwrap();
        let cal = ece(&sure, &[0, 1], 15).unwrap();
        assert_eq!(cal.ece, 0.0);
        assert_eq!(cal.bins[14].count, 2);
        assert_eq!(cal.bins[0].count, 0);
        assert!(ece(&sure, &[0, 1], 0).is_err());
    }

    #[test]
    fn auroc_hand_cases_with_ties() {
        let pos = [true, true, false, false];
        assert_eq!(auroc(&[0.9, 0.8, 0.1, 0.2], &pos).unwrap(), 1.0);
        assert_eq!(auroc(&[0.1, 0.2, 0.9, 0.8], &pos).unwrap(), 0.0);
        // Positives {1, 4} vs negatives {2, 3}: 4 beats both, 1 beats none.
        let l = [true, false, false, true];
        assert_eq!(auroc(&[1.0, 2.0, 3.0, 4.0], &l).unwrap(), 0.5);
        assert_eq!(auroc(&[1.0, 1.0], &[true, false]).unwrap(), 0.5);
        // One tie (1/2) and one win out of two pairs.
        assert_eq!(
            auroc(&[0.5, 0.5, 0.2], &[true, false, false]).unwrap(),
            0.75
        );
        assert!(matches!(
            auroc(&[1.0, 2.0], &[true, true]),
            Err(EvalError::DegenerateLabels { .. })
        ));
        assert!(auroc(&[f64::NAN, 1.0], &[true, false]).is_err());
    }

    #[test]
    fn aupr_hand_cases() {
        // Thresholds .9 (P 1, R .5), .8 (P .5, R .5), .7 (P 2/3, R 1): AP = .5 + .5 * 2/3.
        let ap = aupr(&[0.9, 0.8, 0.7, 0.6], &[true, false, true, false]).unwrap();
        assert!(close(ap, 0.5 + 0.5 * 2.0 / 3.0, 1e-12), "{ap}");
        assert_eq!(aupr(&[0.9, 0.8, 0.1], &[true, true, false]).unwrap(), 1.0);
        // A tie forms one threshold: precision 1/2 at recall 1.
        assert_eq!(aupr(&[1.0, 1.0], &[true, false]).unwrap(), 0.5);
        assert!(aupr(&[1.0], &[true, false]).is_err());
    }
}
