//! Does a predictive mean follow data that oscillate? A whole-range RMSE can look fine while
//! the mean stays flat over a stretch where the data swing (the CO2 series' seasonal wave), so
//! the fit is also judged window by window: in each run of `window` consecutive points (in x
//! order) the residual's RMS is compared with the data's own swing about their straight-line
//! trend over that window. Only a swing with structure counts (consecutive deviations from the
//! trend correlated, as a sampled wave's are): in pure noise every smooth mean "misses the swing",
//! and that is a good fit, not a flat one.

use crate::error::{all_finite, same_len};
use crate::EvalError;

/// A window is "flat" when the mean leaves at least this fraction of the data's swing
/// unexplained: a mean that only follows the trend leaves all of it (ratio ~1), a fit that
/// follows the wave leaves the noise (the GP: ~0.2 on CO2).
pub const FLAT_RATIO: f64 = 0.5;

/// A window's swing has structure when the lag-1 autocorrelation of the data's deviations from
/// their trend line is at least this. A wave sampled 12 times a period gives ~0.6 to 0.8 (the
/// CO2 windows: mean 0.59, 22 of 261 below this); white noise in 12 points gives a median of
/// -0.17 and a 99th percentile of 0.39 (simulated), so noise windows rarely pass.
pub const STRUCTURE_MIN: f64 = 0.4;

/// Window-by-window fit of a mean to data.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowFit {
    /// Points per window.
    pub window: usize,
    /// Windows checked (`n - window + 1`).
    pub windows: usize,
    /// Largest residual RMS over any window.
    pub worst_rmse: f64,
    /// The x of that window's first point.
    pub worst_from: f64,
    /// Windows with a structured swing (see [`STRUCTURE_MIN`]) whose residual RMS is at least
    /// [`FLAT_RATIO`] times that swing.
    pub flat_windows: usize,
    /// The x ranges of maximal runs of flat windows (first point of the first window to last
    /// point of the last), for the log.
    pub flat_stretches: Vec<(f64, f64)>,
}

/// Judges `mean` against `y` at inputs `x` (any order; sorted here) over windows of `window`
/// consecutive points.
pub fn window_fit(
    x: &[f32],
    y: &[f32],
    mean: &[f64],
    window: usize,
) -> Result<WindowFit, EvalError> {
    const OP: &str = "window_fit";
    same_len(OP, "x", x.len(), "y", y.len())?;
    same_len(OP, "x", x.len(), "mean", mean.len())?;
    all_finite(OP, "x", x)?;
    all_finite(OP, "y", y)?;
    all_finite(OP, "mean", mean)?;
    if window < 3 || window > x.len() {
        return Err(EvalError::InvalidParameter {
            op: OP,
            name: "window",
            value: window as f64,
            reason: "must be at least 3 and at most the number of points",
        });
    }
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let xs: Vec<f64> = order.iter().map(|&i| f64::from(x[i])).collect();
    let ys: Vec<f64> = order.iter().map(|&i| f64::from(y[i])).collect();
    let ms: Vec<f64> = order.iter().map(|&i| mean[i]).collect();

    let windows = xs.len() - window + 1;
    let mut worst = (f64::NEG_INFINITY, 0usize);
    let mut flat = vec![false; windows];
    for (start, is_flat) in flat.iter_mut().enumerate() {
        let range = start..start + window;
        let resid = rms(range.clone().map(|i| ys[i] - ms[i]));
        let deviations = detrended(&xs[range.clone()], &ys[range]);
        let swing = rms(deviations.iter().copied());
        if resid > worst.0 {
            worst = (resid, start);
        }
        *is_flat = swing > 0.0
            && lag1_autocorrelation(&deviations) >= STRUCTURE_MIN
            && resid >= FLAT_RATIO * swing;
    }
    let mut flat_stretches = Vec::new();
    let mut start = 0;
    while start < windows {
        if !flat[start] {
            start += 1;
            continue;
        }
        let mut end = start;
        while end + 1 < windows && flat[end + 1] {
            end += 1;
        }
        flat_stretches.push((xs[start], xs[end + window - 1]));
        start = end + 1;
    }
    Ok(WindowFit {
        window,
        windows,
        worst_rmse: worst.0,
        worst_from: xs[worst.1],
        flat_windows: flat.iter().filter(|&&f| f).count(),
        flat_stretches,
    })
}

fn rms(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v * v, n + 1));
    (sum / n as f64).sqrt()
}

/// `y` less its least-squares line in `x` (less its mean when all x are equal).
fn detrended(x: &[f64], y: &[f64]) -> Vec<f64> {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let sxx: f64 = x.iter().map(|v| (v - mx) * (v - mx)).sum();
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    x.iter()
        .zip(y)
        .map(|(a, b)| b - my - slope * (a - mx))
        .collect()
}

/// Lag-1 autocorrelation of zero-mean deviations (0 when they are all zero).
fn lag1_autocorrelation(d: &[f64]) -> f64 {
    let energy: f64 = d.iter().map(|v| v * v).sum();
    if energy == 0.0 {
        return 0.0;
    }
    d.windows(2).map(|w| w[0] * w[1]).sum::<f64>() / energy
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A monthly series: trend plus a yearly wave plus small deterministic "noise".
    fn series(n: usize) -> (Vec<f32>, Vec<f32>) {
        let x: Vec<f32> = (0..n).map(|i| i as f32 / 12.0).collect();
        let y = x
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                0.3 * t
                    + 0.5 * (2.0 * std::f32::consts::PI * t).sin()
                    + 0.02 * ((i * 7 % 5) as f32 - 2.0)
            })
            .collect();
        (x, y)
    }

    #[test]
    fn a_mean_that_follows_the_wave_has_no_flat_window() {
        let (x, y) = series(120);
        let mean: Vec<f64> = x
            .iter()
            .map(|&t| f64::from(0.3 * t + 0.5 * (2.0 * std::f32::consts::PI * t).sin()))
            .collect();
        let fit = window_fit(&x, &y, &mean, 12).unwrap();
        assert_eq!(fit.windows, 109);
        assert_eq!(fit.flat_windows, 0, "{fit:?}");
        assert!(fit.flat_stretches.is_empty());
        assert!(fit.worst_rmse < 0.05, "{fit:?}");
    }

    #[test]
    fn a_mean_that_only_follows_the_trend_over_a_stretch_is_found_there() {
        let (x, y) = series(120);
        // Follows the wave except over years 4 to 6, where it keeps to the trend.
        let mean: Vec<f64> = x
            .iter()
            .map(|&t| {
                let wave = if (4.0..6.0).contains(&t) {
                    0.0
                } else {
                    0.5 * (2.0 * std::f32::consts::PI * t).sin()
                };
                f64::from(0.3 * t + wave)
            })
            .collect();
        let fit = window_fit(&x, &y, &mean, 12).unwrap();
        assert!(fit.flat_windows > 0, "{fit:?}");
        assert_eq!(fit.flat_stretches.len(), 1, "{fit:?}");
        let (from, to) = fit.flat_stretches[0];
        assert!(from >= 3.0 && to <= 7.0 && to - from >= 2.0, "{fit:?}");
        assert!((3.0..6.0).contains(&fit.worst_from), "{fit:?}");
        assert!(fit.worst_rmse > 0.3, "{fit:?}");
    }

    #[test]
    fn order_of_points_does_not_matter_and_bad_windows_are_refused() {
        let (x, y) = series(48);
        let mean: Vec<f64> = y.iter().map(|&v| f64::from(v) * 0.5).collect();
        let a = window_fit(&x, &y, &mean, 12).unwrap();
        let rev = |v: &[f32]| v.iter().rev().copied().collect::<Vec<_>>();
        let mean_rev: Vec<f64> = mean.iter().rev().copied().collect();
        let b = window_fit(&rev(&x), &rev(&y), &mean_rev, 12).unwrap();
        assert_eq!(a, b);
        for bad in [0, 2, 49] {
            assert!(matches!(
                window_fit(&x, &y, &mean, bad),
                Err(EvalError::InvalidParameter { name: "window", .. })
            ));
        }
        assert!(window_fit(&x, &y[1..], &mean, 12).is_err());
    }

    #[test]
    fn a_smooth_mean_through_noise_is_not_flat() {
        // Trend plus white noise (SplitMix-style hash, deterministic): nothing to follow but the
        // trend, so the trend is a good fit even though it leaves all the scatter.
        let n = 200;
        let x: Vec<f32> = (0..n).map(|i| i as f32 / 12.0).collect();
        let noise = |i: u64| {
            let mut z = i.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(17);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        let y: Vec<f32> = x
            .iter()
            .enumerate()
            .map(|(i, &t)| 0.3 * t + noise(i as u64) as f32)
            .collect();
        let mean: Vec<f64> = x.iter().map(|&t| f64::from(0.3 * t)).collect();
        let fit = window_fit(&x, &y, &mean, 12).unwrap();
        assert!(fit.flat_windows <= fit.windows / 20, "{fit:?}");
    }
}
