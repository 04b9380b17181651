//! Figure writers: each produces a real PNG and an SVG with its text, and rejects bad input.

use std::path::{Path, PathBuf};

use mcd_report::{
    band_figure, errorbar_figure, line_figure, reliability_figure, scatter_figure,
    scatter_figure_with_thumbnails, spread_figure, BandPanel, ReportError, ScatterGroup, Series,
    SpreadSeries, Thumbnail,
};

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];

/// Checks `[png, svg]` and returns the PNG (width, height) and the SVG text.
fn check_outputs(paths: &[PathBuf], stem: &Path, texts: &[&str]) -> ((u32, u32), String) {
    assert_eq!(paths.len(), 2);
    assert_eq!(paths[0], PathBuf::from(format!("{}.png", stem.display())));
    assert_eq!(paths[1], PathBuf::from(format!("{}.svg", stem.display())));
    let png = std::fs::read(&paths[0]).expect("read png");
    assert!(png.len() > 1000, "PNG too small: {} bytes", png.len());
    assert_eq!(png[..8], PNG_SIGNATURE);
    // IHDR follows the signature: length (4), "IHDR" (4), width (4), height (4).
    assert_eq!(&png[12..16], b"IHDR");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let dims = (be(&png[16..20]), be(&png[20..24]));
    let svg = std::fs::read_to_string(&paths[1]).expect("read svg");
    assert!(svg.contains("<svg"), "not an SVG");
    for t in texts {
        assert!(svg.contains(t), "SVG lacks text {t:?}");
    }
    (dims, svg)
}

/// Noisy-free toy regression: y = sin(x) observed on [-2, 1], predicted on [-2, 3].
fn panel(title: &str, band_sd: f64) -> BandPanel {
    let x_obs: Vec<f64> = (0..30).map(|i| -2.0 + 0.1 * f64::from(i)).collect();
    let y_obs = x_obs.iter().map(|x| x.sin()).collect();
    let x_pred: Vec<f64> = (0..=100).map(|i| -2.0 + 0.05 * f64::from(i)).collect();
    let mean = x_pred.iter().map(|x| x.sin()).collect();
    // Uncertainty grows away from the training data, as in the paper's Fig. 2.
    let sd = x_pred
        .iter()
        .map(|&x| 0.05 + 0.1 * (x - 1.0).max(0.0))
        .collect();
    BandPanel {
        title: title.into(),
        x_obs,
        y_obs,
        x_pred,
        mean,
        sd,
        band_sd,
        train_end: 0.9,
        x_star: None,
        y_range: None,
    }
}

#[test]
fn band_figure_writes_two_panel_png_and_svg() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stem = dir.path().join("fig2");
    let mut b = panel("(b) MC dropout, ReLU", 2.0);
    b.x_star = Some(2.5);
    let paths = band_figure(&[panel("(a) Standard dropout", 2.0), b], 2, &stem).expect("draw");
    let ((w, h), _) = check_outputs(
        &paths,
        &stem,
        &[
            "(a) Standard dropout",
            "(b) MC dropout, ReLU",
            "±2 sd",
            "predictive mean",
            "observed",
            "end of training data",
            "x*",
            "x (standardised)",
            "y (standardised)",
        ],
    );
    // Two panels side by side: about 1200 px wide, wider than tall.
    assert!((1100..=1400).contains(&w) && h < w, "{w}x{h}");
}

#[test]
fn band_figure_tolerates_nan_and_clips_to_y_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stem = dir.path().join("clipped");
    let mut p = panel("clipped", 8.0);
    p.mean[10] = f64::NAN;
    p.sd[50] = f64::INFINITY;
    p.y_obs[3] = f64::NAN;
    p.y_range = Some((-1.5, 1.5));
    let paths = band_figure(&[p.clone(), p.clone(), p], 2, &stem).expect("draw");
    let ((w, h), _) = check_outputs(&paths, &stem, &["±8 sd"]);
    // Three panels in two columns take two rows.
    assert!(h > w / 2, "{w}x{h}");
}

#[test]
fn band_figure_rejects_bad_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stem = dir.path().join("bad");
    assert!(matches!(
        band_figure(&[], 2, &stem),
        Err(ReportError::EmptyData { .. })
    ));
    let mut short = panel("short", 2.0);
    short.sd.pop();
    let err = band_figure(&[short], 1, &stem).expect_err("length mismatch");
    assert!(matches!(err, ReportError::InvalidInput { .. }), "{err}");
    assert!(err.to_string().contains("sd"), "{err}");

    let mut all_nan = panel("nan", 2.0);
    all_nan.mean.iter_mut().for_each(|m| *m = f64::NAN);
    all_nan.y_obs.iter_mut().for_each(|y| *y = f64::NAN);
    let err = band_figure(&[all_nan], 1, &stem).expect_err("nothing finite");
    assert!(matches!(err, ReportError::EmptyData { .. }), "{err}");

    let mut neg = panel("neg", 2.0);
    neg.sd[0] = -1.0;
    assert!(band_figure(&[neg], 1, &stem).is_err());
    assert!(band_figure(&[panel("zero cols", 2.0)], 0, &stem).is_err());
    assert!(!dir.path().join("bad.png").exists());
}

#[test]
fn line_figure_linear_and_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let x: Vec<f64> = (0..50).map(f64::from).collect();
    let series: Vec<Series> = [0.1, 0.2, 0.5]
        .iter()
        .map(|&p| Series {
            label: format!("p = {p}"),
            x: x.clone(),
            // A zero and a NaN: a gap on the log axis, never a panic.
            y: x.iter()
                .map(|&v| {
                    if v == 10.0 {
                        0.0
                    } else if v == 20.0 {
                        f64::NAN
                    } else {
                        p * (1.0 + v)
                    }
                })
                .collect(),
        })
        .collect();
    for log_y in [false, true] {
        let stem = dir.path().join(format!("sd_log{log_y}"));
        let paths = line_figure(
            "predictive sd",
            "x",
            "sd",
            &series,
            &[(25.0, "train end")],
            log_y,
            &stem,
        )
        .expect("draw");
        check_outputs(
            &paths,
            &stem,
            &["p = 0.1", "p = 0.5", "train end", "predictive sd"],
        );
    }
}

#[test]
fn line_figure_without_finite_points_is_empty_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stem = dir.path().join("empty");
    let s = Series {
        label: "nan".into(),
        x: vec![0.0, 1.0],
        y: vec![f64::NAN, f64::NAN],
    };
    let err = line_figure("t", "x", "y", &[s], &[], false, &stem).expect_err("empty");
    assert!(matches!(err, ReportError::EmptyData { .. }), "{err}");
    let neg = Series {
        label: "neg".into(),
        x: vec![0.0, 1.0],
        y: vec![-1.0, 0.0],
    };
    let err = line_figure("t", "x", "y", &[neg], &[], true, &stem).expect_err("no positive");
    assert!(matches!(err, ReportError::EmptyData { .. }), "{err}");
    assert!(line_figure("t", "x", "y", &[], &[], false, &stem).is_err());
}

#[test]
fn scatter_figure_with_custom_ticks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stem = dir.path().join("scatter");
    let groups: Vec<ScatterGroup> = (0..3)
        .map(|g| ScatterGroup {
            label: format!("class {g}"),
            x: (0..40)
                .map(|i| f64::from(g) + 0.01 * f64::from(i))
                .collect(),
            y: (0..40)
                .map(|i| (f64::from(i) * 0.3).sin() + f64::from(g))
                .collect(),
        })
        .collect();
    let ticks = vec![
        (0.0, "one".to_owned()),
        (1.0, "two".into()),
        (2.0, "three".into()),
    ];
    let paths = scatter_figure(
        "softmax input",
        "class",
        "logit",
        &groups,
        Some(ticks),
        &stem,
    )
    .expect("draw");
    check_outputs(
        &paths,
        &stem,
        &["class 0", "class 2", "one", "three", "logit"],
    );

    let err = scatter_figure("t", "x", "y", &[], None, &stem).expect_err("empty");
    assert!(matches!(err, ReportError::EmptyData { .. }), "{err}");
}

#[test]
fn reliability_figure_draws_bins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stem = dir.path().join("rel");
    let bins: Vec<(f64, f64, f64, f64, usize)> = (0..10)
        .map(|i| {
            let lo = f64::from(i) / 10.0;
            // Bin 3 is empty and must be skipped rather than drawn as a zero bar.
            let count = if i == 3 { 0 } else { 10 + i as usize };
            (lo, lo + 0.1, (lo + 0.03).min(1.0), lo + 0.05, count)
        })
        .collect();
    let paths = reliability_figure(&bins, "calibration", &stem).expect("draw");
    check_outputs(
        &paths,
        &stem,
        &[
            "calibration",
            "accuracy",
            "perfect calibration",
            "mean confidence",
            "confidence",
        ],
    );
    let err = reliability_figure(&[(0.0, 0.1, f64::NAN, 0.05, 3)], "t", &stem).expect_err("empty");
    assert!(matches!(err, ReportError::EmptyData { .. }), "{err}");
}

#[test]
fn errorbar_figure_groups_side_by_side() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stem = dir.path().join("err");
    let labels: Vec<String> = ["boston", "concrete", "energy"].map(String::from).to_vec();
    let groups = vec![
        (
            "dropout".to_owned(),
            vec![2.97, 5.23, 1.66],
            vec![0.19, 0.12, 0.04],
        ),
        (
            "VI".to_owned(),
            vec![4.32, 7.13, f64::NAN],
            vec![0.29, f64::NAN, 0.1],
        ),
    ];
    let paths = errorbar_figure("test RMSE", "RMSE", &labels, &groups, &stem).expect("draw");
    check_outputs(
        &paths,
        &stem,
        &["boston", "energy", "dropout", "VI", "RMSE"],
    );

    let bad = vec![("short".to_owned(), vec![1.0], vec![0.1])];
    let err = errorbar_figure("t", "y", &labels, &bad, &stem).expect_err("length mismatch");
    assert!(matches!(err, ReportError::InvalidInput { .. }), "{err}");
}

#[test]
fn spread_figure_on_a_log_axis_labels_the_data_sizes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stem = dir.path().join("p_vs_n");
    let x = vec![10.0, 25.0, 100.0, 10000.0];
    let series = vec![
        SpreadSeries {
            label: "layer 1".into(),
            x: x.clone(),
            mean: vec![0.4, 0.35, 0.25, 0.12],
            spread: vec![0.02, f64::NAN, 0.0, 0.01],
        },
        SpreadSeries {
            label: "layer 2".into(),
            x: x.clone(),
            // A gap, and a non-positive x left off the log axis.
            mean: vec![0.3, f64::NAN, 0.2, 0.1],
            spread: vec![0.01; 4],
        },
    ];
    let paths = spread_figure("drop rate", "N", "p", &series, true, &stem).expect("draw");
    let (_, svg) = check_outputs(&paths, &stem, &["layer 1", "layer 2", "drop rate"]);
    // Ticks at the data's x, labelled with them (not with their logarithms).
    let texts: Vec<&str> = svg.lines().map(str::trim).collect();
    for t in ["10", "25", "100", "10000"] {
        assert!(texts.contains(&t), "no tick label {t}");
    }
    assert!(!texts.contains(&"1.4"), "a tick labelled with log10(25)");
    let linear = dir.path().join("linear");
    spread_figure("drop rate", "N", "p", &series, false, &linear).expect("a linear axis");

    let short = vec![SpreadSeries {
        label: "short".into(),
        x: x.clone(),
        mean: vec![0.1],
        spread: vec![0.0; 4],
    }];
    let err = spread_figure("t", "N", "p", &short, true, &stem).expect_err("length mismatch");
    assert!(matches!(err, ReportError::InvalidInput { .. }), "{err}");
    let nothing = vec![SpreadSeries {
        label: "none".into(),
        x: vec![0.0, -1.0],
        mean: vec![1.0, 2.0],
        spread: vec![0.0; 2],
    }];
    let err =
        spread_figure("t", "N", "p", &nothing, true, &stem).expect_err("nothing on a log axis");
    assert!(matches!(err, ReportError::EmptyData { .. }), "{err}");
}

#[test]
fn missing_output_directory_error_names_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stem = dir.path().join("not_there").join("fig");
    let err = band_figure(&[panel("p", 2.0)], 1, &stem).expect_err("no directory");
    assert!(matches!(err, ReportError::Io { .. }), "{err}");
    assert!(err.to_string().contains("not_there"), "{err}");
}

#[test]
fn scatter_figure_draws_thumbnails_under_the_axis() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stem = dir.path().join("thumbs");
    let groups = vec![ScatterGroup {
        label: "class 1".into(),
        x: vec![0.0, 1.0, 2.0],
        y: vec![0.2, 0.5, 0.9],
    }];
    // A diagonal stroke: only ink pixels are drawn, as dark squares.
    let side = 8;
    let pixels: Vec<f32> = (0..side * side)
        .map(|i| if i / side == i % side { 1.0 } else { 0.0 })
        .collect();
    let thumbs: Vec<Thumbnail> = (0..3)
        .map(|i| Thumbnail {
            x: f64::from(i),
            side,
            pixels: pixels.clone(),
        })
        .collect();
    let paths = scatter_figure_with_thumbnails("t", "angle", "p", &groups, None, &thumbs, &stem)
        .expect("draw");
    let ((w, h), svg) = check_outputs(&paths, &stem, &["class 1"]);
    // The strip makes the figure taller than a plain scatter (960 x 640).
    assert_eq!((w, h), (960, 712));
    let plain =
        scatter_figure("t", "angle", "p", &groups, None, &dir.path().join("plain")).expect("draw");
    let plain_svg = std::fs::read_to_string(&plain[1]).unwrap();
    // 3 thumbnails x 8 ink pixels more rectangles than the plain figure.
    assert_eq!(
        svg.matches("<rect").count(),
        plain_svg.matches("<rect").count() + 24
    );
    let bad = [Thumbnail {
        x: 0.0,
        side: 4,
        pixels: vec![0.0; 5],
    }];
    assert!(scatter_figure_with_thumbnails("t", "x", "y", &groups, None, &bad, &stem).is_err());
}
