//! Every public figure function on data crafted to sit where its legend used to be fixed: the
//! legend moves (or the axis makes room above the data), and its box covers nothing drawn,
//! both by the geometry the figure placed it with and in the pixels of the figure drawn
//! without its legend.

use std::path::{Path, PathBuf};

use super::record::{self, Bitmap, Decision};
use super::*;
use crate::{
    band_figure, curve_figure, errorbar_figure, line_figure, reliability_figure, scatter_figure,
    scatter_figure_with_thumbnails, spread_figure, BandPanel, ErrorGroup, ReliabilityBin,
    ScatterGroup, Series, SpreadSeries, Thumbnail,
};

/// Runs `draw` (a public figure function, given a stem in a temporary directory) and returns
/// its legend decisions, one per chart, with the figure drawn without legends.
fn decisions(draw: impl FnOnce(&Path) -> crate::Result<Vec<PathBuf>>) -> (Vec<Decision>, Bitmap) {
    let dir = tempfile::tempdir().expect("tempdir");
    record::take();
    record::take_bitmaps();
    record::capture_bitmaps(true);
    let drawn = draw(&dir.path().join("fig"));
    record::capture_bitmaps(false);
    let paths = drawn.expect("draw");
    let all = record::take();
    let mut bitmaps = record::take_bitmaps();
    assert_eq!(bitmaps.len(), 1);
    // The PNG, the SVG and the test bitmap were laid out alike.
    let n = all.len() / 3;
    assert!(n > 0 && all.len() == 3 * n, "{} decisions", all.len());
    assert_eq!(all[..n], all[n..2 * n]);
    assert_eq!(all[..n], all[2 * n..]);
    // Plotters drew each legend's background exactly where it was placed, at the size
    // measured from the labels: the labels listed for placement are the ones drawn.
    let svg = std::fs::read_to_string(&paths[1]).expect("read svg");
    let drawn = legend_backgrounds(&svg);
    let placed: Vec<[i64; 4]> = all[..n]
        .iter()
        .map(|d| {
            let r = d.placement.rect;
            [r.x0, r.y0, r.x1 - r.x0, r.y1 - r.y0].map(|v| v as i64)
        })
        .collect();
    assert_eq!(drawn, placed, "legends drawn vs placed");
    (all[..n].to_vec(), bitmaps.pop().expect("one bitmap"))
}

/// `[x, y, width, height]` of the SVG's legend backgrounds (white at opacity 0.85).
fn legend_backgrounds(svg: &str) -> Vec<[i64; 4]> {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        let len = tag[start..].find('"')?;
        Some(tag[start..start + len].to_owned())
    };
    svg.split("<rect")
        .skip(1)
        .map(|t| &t[..t.find("/>").unwrap_or(t.len())])
        .filter(|t| {
            attr(t, "opacity").as_deref() == Some("0.85")
                && attr(t, "fill").as_deref() == Some("#FFFFFF")
        })
        .map(|t| {
            ["x", "y", "width", "height"].map(|k| {
                attr(t, k)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("legend rect without {k}: {t}"))
            })
        })
        .collect()
}

/// Whether a pixel is paper: white, or the light grey of the grid (r = g = b, one or two grid
/// lines over white).
fn is_paper(px: &[u8]) -> bool {
    px[0] == px[1] && px[1] == px[2] && px[0] >= 190
}

/// Checks one chart: the crafted data reach the legend's old fixed place, and the legend's
/// box now keeps clear of every mark and of every drawn pixel.
fn check(d: &Decision, old: Corner, (rgb, (w, h)): &Bitmap) {
    let before = d.frame.marks_px(&d.marks);
    assert!(
        !is_clear(box_at(d.frame.plot, d.size, old), &before),
        "the test data do not reach the old legend place {old:?}"
    );
    let drawn = Frame {
        y: d.placement.y.clone(),
        ..d.frame.clone()
    };
    assert!(
        is_clear(d.placement.rect, &drawn.marks_px(&d.marks)),
        "legend covers data: {:?}",
        d.placement
    );
    // The box and one pixel around it, in the figure drawn without its legend.
    let r = d.placement.rect.grow(1.0);
    let (w, h) = (*w as usize, *h as usize);
    for y in (r.y0.floor().max(0.0) as usize)..=(r.y1.ceil() as usize).min(h - 1) {
        for x in (r.x0.floor().max(0.0) as usize)..=(r.x1.ceil() as usize).min(w - 1) {
            let i = 3 * (y * w + x);
            assert!(
                is_paper(&rgb[i..i + 3]),
                "ink {:?} at ({x}, {y}) under the legend {:?}",
                &rgb[i..i + 3],
                d.placement
            );
        }
    }
}

fn raised(d: &Decision) -> bool {
    d.placement.y.end > d.frame.y.end
}

#[test]
fn band_figure_legend_avoids_data() {
    // (a) A falling line: it fills the upper left (the old place) and the lower right.
    let x_pred: Vec<f64> = (0..=100).map(|i| -2.0 + 0.05 * f64::from(i)).collect();
    let falling = BandPanel {
        title: "falling".into(),
        x_obs: x_pred[..60].to_vec(),
        y_obs: x_pred[..60].iter().map(|x| -x).collect(),
        x_pred: x_pred.clone(),
        mean: x_pred.iter().map(|x| -x).collect(),
        sd: vec![0.05; x_pred.len()],
        band_sd: 2.0,
        train_end: 0.95,
        x_star: None,
        y_range: None,
    };
    // (b) A band over the whole plot, as MC dropout far from the data: no corner is free.
    let wide = BandPanel {
        title: "wide".into(),
        mean: vec![0.0; x_pred.len()],
        sd: vec![1.0; x_pred.len()],
        band_sd: 8.0,
        x_star: Some(2.5),
        ..falling.clone()
    };
    // (c) The same, clipped to a fixed y range.
    let clipped = BandPanel {
        title: "clipped".into(),
        y_range: Some((-3.0, 3.0)),
        ..wide.clone()
    };
    let (ds, bitmap) = decisions(|stem| band_figure(&[falling, wide, clipped], 2, stem));
    assert_eq!(ds.len(), 3);
    for d in &ds {
        check(d, Corner::UpperLeft, &bitmap);
    }
    assert!(!raised(&ds[0]), "a corner was free: {:?}", ds[0].placement);
    assert!(raised(&ds[1]) && raised(&ds[2]));
    assert_eq!(ds[2].frame.y, -3.0..3.0);
}

#[test]
fn line_figure_legend_avoids_data() {
    let x: Vec<f64> = (0..=50).map(f64::from).collect();
    // Falling curves start in the upper left, the old place; one reaches every corner.
    let series = |log: bool| -> Vec<Series> {
        [1.0, 0.5]
            .iter()
            .map(|&k| Series {
                label: format!("k = {k}"),
                x: x.clone(),
                y: x.iter()
                    .map(|&v| {
                        if log {
                            (-k * v / 5.0).exp()
                        } else {
                            50.0 - k * v
                        }
                    })
                    .collect(),
            })
            .collect()
    };
    for log_y in [false, true] {
        let (ds, bitmap) = decisions(|stem| {
            line_figure(
                "falling",
                "x",
                "y",
                &series(log_y),
                &[(40.0, "end of training data")],
                log_y,
                stem,
            )
        });
        assert_eq!(ds.len(), 1);
        check(&ds[0], Corner::UpperLeft, &bitmap);
        assert_eq!(ds[0].frame.log_y, log_y);
    }
}

#[test]
fn curve_figure_legend_avoids_data() {
    let steps: Vec<f64> = (0..=100).map(|i| f64::from(i) * 50.0).collect();
    // Losses fall from the upper left (the old place) over three decades, one run more slowly;
    // a run that plateaus keeps the lower right; one curve shifted below 0 (a Gaussian NLL).
    let curves = |shift: f64| -> Vec<Series> {
        [1.0, 0.3]
            .iter()
            .map(|&k| Series {
                label: format!("run k = {k}"),
                x: steps.clone(),
                y: steps
                    .iter()
                    .map(|&s| 2.0 * (-k * s / 800.0).exp() + 1e-3 - shift)
                    .collect(),
            })
            .collect()
    };
    for (shift, log_y) in [(0.0, true), (0.5, false)] {
        let (ds, bitmap) =
            decisions(|stem| curve_figure("training", "step", "loss", &curves(shift), stem));
        assert_eq!(ds.len(), 1);
        check(&ds[0], Corner::UpperLeft, &bitmap);
        // Log only when every value is positive (and they span decades).
        assert_eq!(ds[0].frame.log_y, log_y, "shift {shift}");
    }
    // Positive values within a decade: a linear axis, which labels its ticks.
    let flat = vec![Series {
        label: "p".into(),
        x: steps.clone(),
        y: steps.iter().map(|&s| 0.1 - s * 1e-6).collect(),
    }];
    let (ds, _) = decisions(|stem| curve_figure("p", "step", "p", &flat, stem));
    assert!(!ds[0].frame.log_y);
}

/// Fig. 4b-like softmax outputs over 12 rotations: class 1 sure for small angles, the others
/// spread over [0, 1] at large ones, class 7 high at 110° (the points the issue saw hidden).
fn rotated_digit_groups() -> Vec<ScatterGroup> {
    let mut groups = Vec::new();
    for (g, class) in [1, 4, 7].into_iter().enumerate() {
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for angle in 0..12 {
            for pass in 0..20 {
                let u = f64::from(pass) / 19.0;
                let p = match (class, angle) {
                    (1, a) if a < 6 => 1.0 - 0.01 * u,
                    (_, a) if a < 6 => 0.01 * u,
                    (7, 11) => 0.7 + 0.3 * u,
                    _ => u,
                };
                x.push(f64::from(angle) + (g as f64 - 1.0) * 0.15);
                y.push(p);
            }
        }
        groups.push(ScatterGroup {
            label: format!("class {class}"),
            x,
            y,
        });
    }
    groups
}

fn angle_ticks() -> Vec<(f64, String)> {
    (0..12)
        .map(|i| (f64::from(i), format!("{}°", 10 * i)))
        .collect()
}

#[test]
fn scatter_figure_legend_avoids_data() {
    let groups = rotated_digit_groups();
    let (ds, bitmap) = decisions(|stem| {
        scatter_figure(
            "softmax output",
            "rotation",
            "p",
            &groups,
            Some(angle_ticks()),
            stem,
        )
    });
    assert_eq!(ds.len(), 1);
    check(&ds[0], Corner::UpperRight, &bitmap);
    // Every corner holds points: the legend gets room above them.
    assert!(raised(&ds[0]), "{:?}", ds[0].placement);
}

#[test]
fn scatter_figure_with_thumbnails_legend_avoids_data() {
    let groups = rotated_digit_groups();
    let thumbs: Vec<Thumbnail> = (0..12)
        .map(|i| Thumbnail {
            x: f64::from(i),
            side: 4,
            pixels: vec![1.0; 16],
        })
        .collect();
    let (ds, bitmap) = decisions(|stem| {
        scatter_figure_with_thumbnails(
            "softmax output",
            "rotation",
            "p",
            &groups,
            Some(angle_ticks()),
            &thumbs,
            stem,
        )
    });
    assert_eq!(ds.len(), 1);
    check(&ds[0], Corner::UpperRight, &bitmap);
}

#[test]
fn reliability_figure_legend_avoids_data() {
    // An under-confident model: accuracy near 1 in every bin, so the bars fill the top left
    // (the old place) and, with the diagonal, every other corner.
    let bins: Vec<ReliabilityBin> = (0..10)
        .map(|i| {
            let lo = f64::from(i) / 10.0;
            (lo, lo + 0.1, 0.97, lo + 0.05, 100)
        })
        .collect();
    let (ds, bitmap) = decisions(|stem| reliability_figure(&bins, "calibration", stem));
    assert_eq!(ds.len(), 1);
    check(&ds[0], Corner::UpperLeft, &bitmap);
    assert!(raised(&ds[0]), "{:?}", ds[0].placement);
}

#[test]
fn errorbar_figure_legend_avoids_data() {
    // Values rise across the categories: the last ones fill the upper right, the old place.
    let labels: Vec<String> = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
    let groups: Vec<ErrorGroup> = vec![
        (
            "dropout".into(),
            vec![1.0, 2.0, 3.0, 4.0, 5.0],
            vec![0.2; 5],
        ),
        ("VI".into(), vec![1.2, 2.2, 3.2, 4.2, 5.2], vec![0.3; 5]),
    ];
    let (ds, bitmap) = decisions(|stem| errorbar_figure("RMSE", "RMSE", &labels, &groups, stem));
    assert_eq!(ds.len(), 1);
    check(&ds[0], Corner::UpperRight, &bitmap);
    assert!(!raised(&ds[0]), "{:?}", ds[0].placement);
}

#[test]
fn spread_figure_legend_avoids_data() {
    // On a log x axis: one series rises into the upper right (the old place), one falls from
    // the upper left, with bars; both upper corners hold data.
    let x = vec![10.0, 25.0, 50.0, 100.0, 1000.0, 10000.0];
    let series = vec![
        SpreadSeries {
            label: "rising".into(),
            x: x.clone(),
            mean: vec![0.1, 0.2, 0.3, 0.4, 0.6, 0.9],
            spread: vec![0.05; 6],
        },
        SpreadSeries {
            label: "falling".into(),
            x: x.clone(),
            mean: vec![0.9, 0.7, 0.5, 0.4, 0.3, 0.2],
            spread: vec![0.08; 6],
        },
    ];
    for log_x in [true, false] {
        let (ds, bitmap) = decisions(|stem| spread_figure("p", "N", "p", &series, log_x, stem));
        assert_eq!(ds.len(), 1);
        check(&ds[0], Corner::UpperRight, &bitmap);
    }
}

#[test]
fn free_old_place_is_kept() {
    // Data along the bottom, one point at the top in the middle: the legend stays where it
    // always was, the axis untouched.
    let mut x: Vec<f64> = (0..50).map(f64::from).collect();
    let mut y = vec![0.0; 50];
    x.push(25.0);
    y.push(1.0);
    let groups = vec![ScatterGroup {
        label: "low".into(),
        x,
        y,
    }];
    let (ds, _) = decisions(|stem| scatter_figure("t", "x", "y", &groups, None, stem));
    assert_eq!(ds[0].placement.corner, Corner::UpperRight);
    assert_eq!(ds[0].placement.y, ds[0].frame.y);
}
