//! Figures written as PNG and SVG with plotters.
//!
//! Every public function draws the same figure twice (bitmap and SVG backends)
//! and returns `[stem.png, stem.svg]`. Non-finite points are skipped; inputs
//! with nothing finite to draw give [`ReportError::EmptyData`].
//!
//! A legend never covers what is plotted: it goes in the first free corner of the
//! plotting area, or, when every corner holds data, the y axis extends above the
//! data to make room for it (see `legend.rs`).

use std::ops::Range;
use std::path::{Path, PathBuf};

use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::chart::{
    box_marker, build_chart, dashed_marker, de, dot_marker, draw_custom_x_ticks, draw_legend,
    lay_out, lin_chart, line_marker, path_marks, unspiked, vline, vline_mark, ChartSpec,
    DrawResult, Layout, Polyline, Y_LABEL_AREA,
};
use crate::error::{ReportError, Result};
use crate::legend::{Mark, LEFT_FIRST, RIGHT_FIRST};
use crate::style::{ensure_font, palette, tint};

/// One panel of a Fig. 2 style predictive-band figure.
#[derive(Debug, Clone, PartialEq)]
pub struct BandPanel {
    /// Panel caption.
    pub title: String,
    /// Observed inputs.
    pub x_obs: Vec<f64>,
    /// Observed targets, same length as `x_obs`.
    pub y_obs: Vec<f64>,
    /// Inputs at which the predictive distribution was evaluated.
    pub x_pred: Vec<f64>,
    /// Predictive mean at `x_pred`.
    pub mean: Vec<f64>,
    /// Predictive standard deviation at `x_pred` (non-negative).
    pub sd: Vec<f64>,
    /// Half-width of the outer band in units of `sd` (e.g. 2 or 8).
    pub band_sd: f64,
    /// Last training input; drawn as a dashed black vertical line.
    pub train_end: f64,
    /// Optional highlighted input; drawn as a dashed red vertical line.
    pub x_star: Option<f64>,
    /// Fixed y range; bands and lines are clipped to it. `None` fits the data. The axis may
    /// extend above it to make room for the legend.
    pub y_range: Option<(f64, f64)>,
}

/// A labelled line for [`line_figure`].
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// Abscissae.
    pub x: Vec<f64>,
    /// Ordinates, same length as `x`.
    pub y: Vec<f64>,
}

/// A labelled line of means with a spread at each x (e.g. ± the sd over repetitions), for
/// [`spread_figure`].
#[derive(Debug, Clone, PartialEq)]
pub struct SpreadSeries {
    /// Legend text.
    pub label: String,
    /// Abscissae.
    pub x: Vec<f64>,
    /// The means, same length as `x`.
    pub mean: Vec<f64>,
    /// Half-width of the error bar at each x, same length as `x`.
    pub spread: Vec<f64>,
}

/// A labelled point cloud for [`scatter_figure`].
#[derive(Debug, Clone, PartialEq)]
pub struct ScatterGroup {
    /// Legend text.
    pub label: String,
    /// Abscissae.
    pub x: Vec<f64>,
    /// Ordinates, same length as `x`.
    pub y: Vec<f64>,
}

/// One bin of a reliability diagram: `(lower, upper, accuracy, confidence, count)`.
pub type ReliabilityBin = (f64, f64, f64, f64, usize);

/// A named group of per-category means and error half-widths for [`errorbar_figure`].
pub type ErrorGroup = (String, Vec<f64>, Vec<f64>);

// ---------------------------------------------------------------------------
// Rendering scaffolding

/// A figure that can be drawn on any plotters backend.
trait Figure {
    /// Canvas size in pixels.
    fn size(&self) -> (u32, u32);
    /// Draws onto a white root area.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<()>;
}

/// `stem` with `.ext` appended (not substituted: "fig.v2" keeps its dot).
fn with_ext(stem: &Path, ext: &str) -> PathBuf {
    let mut s = stem.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// Draws `fig` to `stem.png` and `stem.svg`.
fn render<F: Figure>(fig: &F, stem: &Path) -> Result<Vec<PathBuf>> {
    ensure_font()?;
    let png = with_ext(stem, "png");
    let svg = with_ext(stem, "svg");
    // Fail up front with a clear message instead of after drawing (the PNG
    // encoder's own error does not name the directory).
    let dir = match stem.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(ReportError::Io {
            op: "open output directory",
            path: dir,
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not an existing directory"),
        });
    }
    let size = fig.size();

    {
        let root = BitMapBackend::new(&png, size).into_drawing_area();
        let drawn = root.fill(&WHITE).map_err(de).and_then(|()| fig.draw(&root));
        drawn.map_err(|message| ReportError::Render {
            op: "draw PNG",
            path: png.clone(),
            message,
        })?;
        root.present().map_err(|e| ReportError::Render {
            op: "write PNG",
            path: png.clone(),
            message: e.to_string(),
        })?;
    }

    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
        let drawn = root
            .fill(&WHITE)
            .map_err(de)
            .and_then(|()| fig.draw(&root))
            .and_then(|()| root.present().map_err(de));
        drawn.map_err(|message| ReportError::Render {
            op: "draw SVG",
            path: svg.clone(),
            message,
        })?;
    }
    std::fs::write(&svg, text).map_err(|source| ReportError::Io {
        op: "write SVG",
        path: svg.clone(),
        source,
    })?;
    #[cfg(test)]
    if crate::legend::record::capturing() {
        capture_without_legend(fig).map_err(|message| ReportError::Render {
            op: "draw test bitmap",
            path: png.clone(),
            message,
        })?;
    }
    Ok(vec![png, svg])
}

/// Tests: draws `fig` once more, without its legend, into a bitmap kept for the test.
#[cfg(test)]
fn capture_without_legend<F: Figure>(fig: &F) -> DrawResult<()> {
    use crate::legend::record;
    let size = fig.size();
    let mut buf = vec![0_u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        record::set_skip_legend(true);
        let drawn = root.fill(&WHITE).map_err(de).and_then(|()| fig.draw(&root));
        record::set_skip_legend(false);
        drawn?;
        root.present().map_err(de)?;
    }
    record::push_bitmap((buf, size));
    Ok(())
}

// ---------------------------------------------------------------------------
// Geometry helpers

/// Min and max of the finite values, if any.
fn finite_extent(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

/// Union of two optional extents.
fn merge(a: Option<(f64, f64)>, b: Option<(f64, f64)>) -> Option<(f64, f64)> {
    match (a, b) {
        (Some((a0, a1)), Some((b0, b1))) => Some((a0.min(b0), a1.max(b1))),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Extent widened by `frac` of its width on each side; a degenerate extent gets unit width.
fn padded(lo: f64, hi: f64, frac: f64) -> Range<f64> {
    let w = hi - lo;
    if w > 0.0 && w.is_finite() {
        (lo - frac * w)..(hi + frac * w)
    } else {
        let h = if lo.abs() > 0.0 { 0.5 * lo.abs() } else { 1.0 };
        (lo - h)..(hi + h)
    }
}

/// Positive extent padded multiplicatively for a log axis.
fn padded_log(lo: f64, hi: f64) -> Range<f64> {
    if hi > lo {
        let f = (hi / lo).powf(0.05);
        (lo / f)..(hi * f)
    } else {
        (lo / 10.0)..(hi * 10.0)
    }
}

/// Finite `(x, y)` pairs sorted by x, keeping gaps: a non-finite y splits the curve.
fn sorted_segments(x: &[f64], y: &[f64]) -> Vec<Vec<(f64, f64)>> {
    let mut pts: Vec<(f64, f64)> = x
        .iter()
        .zip(y)
        .filter(|(x, _)| x.is_finite())
        .map(|(&x, &y)| (x, y))
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    split_finite(&pts)
}

/// Splits a polyline into runs of finite points.
fn split_finite(pts: &[(f64, f64)]) -> Vec<Vec<(f64, f64)>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    for &(x, y) in pts {
        if x.is_finite() && y.is_finite() {
            cur.push((x, y));
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Clips a polyline to `lo <= y <= hi`, interpolating crossings; returns the visible pieces.
///
/// Plotters does not clip paths to the plotting area, so out-of-range lines
/// would otherwise spill into the margins.
fn clip_y(pts: &[(f64, f64)], lo: f64, hi: f64) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut cur: Vec<(f64, f64)> = Vec::new();
    let inside = |y: f64| (lo..=hi).contains(&y);
    if pts.len() == 1 && inside(pts[0].1) {
        return vec![pts.to_vec()];
    }
    for w in pts.windows(2) {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        let dy = y1 - y0;
        let (t0, t1) = if dy == 0.0 {
            if inside(y0) {
                (0.0, 1.0)
            } else {
                (1.0, 0.0)
            }
        } else {
            let ta = (lo - y0) / dy;
            let tb = (hi - y0) / dy;
            (ta.min(tb).max(0.0), ta.max(tb).min(1.0))
        };
        if t0 > t1 {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        let at = |t: f64| (x0 + t * (x1 - x0), (y0 + t * dy).clamp(lo, hi));
        if t0 > 0.0 && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        if cur.is_empty() {
            cur.push(at(t0));
        }
        cur.push(at(t1));
        if t1 < 1.0 {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Checks that paired coordinate vectors have equal lengths.
fn check_len(stem: &Path, what: &str, a: usize, b: usize) -> Result<()> {
    if a == b {
        Ok(())
    } else {
        Err(ReportError::InvalidInput {
            path: stem.to_path_buf(),
            message: format!("{what}: lengths differ ({a} vs {b})"),
        })
    }
}

fn empty(stem: &Path, what: impl Into<String>) -> ReportError {
    ReportError::EmptyData {
        path: stem.to_path_buf(),
        what: what.into(),
    }
}

fn invalid(stem: &Path, message: impl Into<String>) -> ReportError {
    ReportError::InvalidInput {
        path: stem.to_path_buf(),
        message: message.into(),
    }
}

// ---------------------------------------------------------------------------
// Band figure (paper Fig. 2)

/// Per-panel canvas size of [`band_figure`].
const PANEL_W: u32 = 620;
const PANEL_H: u32 = 470;

/// Number of nested shades in a predictive band.
const SHADES: usize = 4;

const MEAN_BLUE: RGBColor = RGBColor(31, 90, 200);
const OBS_RED: RGBColor = RGBColor(210, 30, 30);

/// A validated panel: sorted, finite-split data plus axis ranges.
struct PreparedPanel {
    title: String,
    /// Runs of finite `(x, mean, sd)`.
    pred: Vec<Vec<(f64, f64, f64)>>,
    obs: Vec<Vec<(f64, f64)>>,
    band_sd: f64,
    train_end: f64,
    x_star: Option<f64>,
    x: Range<f64>,
    y: Range<f64>,
}

fn prepare_panel(p: &BandPanel, stem: &Path) -> Result<PreparedPanel> {
    let name = |what: &str| format!("panel '{}': {what}", p.title);
    check_len(stem, &name("x_obs vs y_obs"), p.x_obs.len(), p.y_obs.len())?;
    check_len(stem, &name("x_pred vs mean"), p.x_pred.len(), p.mean.len())?;
    check_len(stem, &name("x_pred vs sd"), p.x_pred.len(), p.sd.len())?;
    if !(p.band_sd.is_finite() && p.band_sd > 0.0) {
        return Err(invalid(
            stem,
            name(&format!(
                "band_sd must be finite and > 0, got {}",
                p.band_sd
            )),
        ));
    }
    if let Some(i) = p.sd.iter().position(|&s| s < 0.0) {
        return Err(invalid(
            stem,
            name(&format!("sd[{i}] = {} is negative", p.sd[i])),
        ));
    }
    if let Some((lo, hi)) = p.y_range {
        if !(lo.is_finite() && hi.is_finite() && lo < hi) {
            return Err(invalid(
                stem,
                name(&format!("y_range ({lo}, {hi}) must be finite with lo < hi")),
            ));
        }
    }

    let mut pred: Vec<(f64, f64, f64)> = p
        .x_pred
        .iter()
        .zip(&p.mean)
        .zip(&p.sd)
        .filter(|((x, _), _)| x.is_finite())
        .map(|((&x, &m), &s)| (x, m, s))
        .collect();
    pred.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut runs = Vec::new();
    let mut cur = Vec::new();
    for (x, m, s) in pred {
        if m.is_finite() && s.is_finite() {
            cur.push((x, m, s));
        } else if !cur.is_empty() {
            runs.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        runs.push(cur);
    }
    let obs = sorted_segments(&p.x_obs, &p.y_obs);
    if runs.is_empty() && obs.is_empty() {
        return Err(empty(stem, name("no finite predictions or observations")));
    }

    let flat_pred = || runs.iter().flatten();
    let flat_obs = || obs.iter().flatten();
    let mut xe = merge(
        finite_extent(flat_pred().map(|t| t.0)),
        finite_extent(flat_obs().map(|t| t.0)),
    );
    // The vertical markers must be visible, so they widen the x range.
    xe = merge(xe, finite_extent([p.train_end]));
    xe = merge(xe, finite_extent(p.x_star));
    let (x0, x1) = xe.unwrap_or((0.0, 1.0));
    let y = match p.y_range {
        Some((lo, hi)) => lo..hi,
        None => {
            let band = flat_pred().flat_map(|&(_, m, s)| [m - p.band_sd * s, m + p.band_sd * s]);
            let ye = merge(finite_extent(band), finite_extent(flat_obs().map(|t| t.1)));
            let (y0, y1) = ye.unwrap_or((0.0, 1.0));
            padded(y0, y1, 0.05)
        }
    };
    Ok(PreparedPanel {
        title: p.title.clone(),
        pred: runs,
        obs,
        band_sd: p.band_sd,
        train_end: p.train_end,
        x_star: p.x_star,
        x: padded(x0, x1, 0.02),
        y,
    })
}

struct BandFigure {
    panels: Vec<PreparedPanel>,
    ncols: usize,
    nrows: usize,
}

impl Figure for BandFigure {
    fn size(&self) -> (u32, u32) {
        (PANEL_W * self.ncols as u32, PANEL_H * self.nrows as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<()> {
        let areas = root.split_evenly((self.nrows, self.ncols));
        for (panel, area) in self.panels.iter().zip(&areas) {
            draw_band_panel(panel, area)?;
        }
        Ok(())
    }
}

/// What a band panel draws, in data coordinates, clipped to its y range.
struct PanelShapes {
    /// Per shade, outermost (palest) first: colour and one polygon per run of predictions.
    shades: Vec<(RGBColor, Vec<Polyline>)>,
    mean: Vec<Polyline>,
    obs: Vec<Polyline>,
    /// Dashed vertical lines: position, colour, legend text.
    vlines: Vec<(f64, RGBColor, &'static str)>,
}

impl PreparedPanel {
    fn shapes(&self) -> PanelShapes {
        let (ylo, yhi) = (self.y.start, self.y.end);
        let shades = (1..=SHADES)
            .rev()
            .map(|k| {
                let half = self.band_sd * k as f64 / SHADES as f64;
                let shade = tint(MEAN_BLUE, 0.12 + 0.13 * (SHADES - k) as f64);
                let polys = self
                    .pred
                    .iter()
                    .filter(|run| run.len() >= 2)
                    .map(|run| {
                        let upper = run
                            .iter()
                            .map(|&(x, m, s)| (x, (m + half * s).clamp(ylo, yhi)));
                        let lower = run
                            .iter()
                            .rev()
                            .map(|&(x, m, s)| (x, (m - half * s).clamp(ylo, yhi)));
                        upper.chain(lower).collect()
                    })
                    .collect();
                (shade, polys)
            })
            .collect();
        let mean = self
            .pred
            .iter()
            .flat_map(|run| {
                let pts: Polyline = run.iter().map(|&(x, m, _)| (x, m)).collect();
                clip_y(&pts, ylo, yhi)
            })
            .collect();
        let obs = self
            .obs
            .iter()
            .flat_map(|run| clip_y(run, ylo, yhi))
            .collect();
        let mut vlines = Vec::new();
        if self.train_end.is_finite() {
            vlines.push((self.train_end, BLACK, "end of training data"));
        }
        if let Some(xs) = self.x_star.filter(|v| v.is_finite()) {
            vlines.push((xs, OBS_RED, "x*"));
        }
        PanelShapes {
            shades,
            mean,
            obs,
            vlines,
        }
    }
}

fn draw_band_panel<DB: DrawingBackend>(
    p: &PreparedPanel,
    area: &DrawingArea<DB, Shift>,
) -> DrawResult<()> {
    let shapes = p.shapes();
    let band_label = format!("±{} sd", p.band_sd);
    let outer = shapes.shades.first().map_or(&[][..], |s| &s.1[..]);
    let mut labels = Vec::new();
    let mut marks = Vec::new();
    if !outer.is_empty() {
        labels.push(band_label.clone());
        // The palest shade is the widest: it covers the inner ones.
        marks.extend(outer.iter().map(|poly| Mark::Area { pts: poly.clone() }));
    }
    for (lines, label, width) in [
        (&shapes.mean, "predictive mean", 3.0),
        (&shapes.obs, "observed", 2.0),
    ] {
        if !lines.is_empty() {
            labels.push(label.to_owned());
            marks.extend(path_marks(lines, width));
        }
    }
    for &(x, _, label) in &shapes.vlines {
        labels.push(label.to_owned());
        marks.push(vline_mark(x, &p.y));
    }
    let spec = ChartSpec {
        title: &p.title,
        x_label: "x (standardised)",
        y_label: "y (standardised)",
        x: p.x.clone(),
        y: p.y.clone(),
        log_y: false,
        y_label_area: Y_LABEL_AREA,
        x_ticks: true,
        labels,
        marks,
        order: LEFT_FIRST,
    };
    let (mut chart, legend) = lin_chart(area, &spec)?;

    // Outer shade first so inner (darker) shades paint over it; opaque shades
    // keep the legend swatch identical to what is drawn.
    for (k, (shade, polys)) in shapes.shades.iter().enumerate() {
        for (i, poly) in polys.iter().enumerate() {
            let anno = chart
                .draw_series(std::iter::once(Polygon::new(poly.clone(), shade.filled())))
                .map_err(de)?;
            if k == 0 && i == 0 {
                anno.label(band_label.as_str())
                    .legend(box_marker(tint(MEAN_BLUE, 0.3).filled()));
            }
        }
    }

    // Observations go on top: where the fit is tight the mean would hide them.
    let mean_style = MEAN_BLUE.stroke_width(3);
    let obs_style = OBS_RED.stroke_width(2);
    for (lines, label, style) in [
        (&shapes.mean, "predictive mean", mean_style),
        (&shapes.obs, "observed", obs_style),
    ] {
        for (i, piece) in lines.iter().enumerate() {
            let pieces = unspiked(&chart, piece);
            let anno = chart
                .draw_series(pieces.into_iter().map(|p| PathElement::new(p, style)))
                .map_err(de)?;
            if i == 0 {
                anno.label(label).legend(line_marker(style));
            }
        }
    }

    for &(x, colour, label) in &shapes.vlines {
        vline(&mut chart, x, &p.y, colour.stroke_width(2), label)?;
    }
    draw_legend(&mut chart, legend.as_ref())
}

/// Paper Fig. 2 style grid of predictive-band panels, `ncols` per row; writes `stem.png` and `stem.svg`.
pub fn band_figure(panels: &[BandPanel], ncols: usize, stem: &Path) -> Result<Vec<PathBuf>> {
    if panels.is_empty() {
        return Err(empty(stem, "no panels"));
    }
    if ncols == 0 {
        return Err(invalid(stem, "ncols must be at least 1"));
    }
    let prepared = panels
        .iter()
        .map(|p| prepare_panel(p, stem))
        .collect::<Result<Vec<_>>>()?;
    let ncols = ncols.min(panels.len());
    let nrows = panels.len().div_ceil(ncols);
    render(
        &BandFigure {
            panels: prepared,
            ncols,
            nrows,
        },
        stem,
    )
}

// ---------------------------------------------------------------------------
// Line figure

struct LineFigure<'s> {
    title: &'s str,
    x_label: &'s str,
    y_label: &'s str,
    /// Per series: label and finite (positive, when log) runs.
    series: Vec<(&'s str, Vec<Polyline>)>,
    vlines: Vec<(f64, &'s str)>,
    x: Range<f64>,
    y: Range<f64>,
    log_y: bool,
}

impl Figure for LineFigure<'_> {
    fn size(&self) -> (u32, u32) {
        (960, 640)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<()> {
        let mut labels = Vec::new();
        let mut marks = Vec::new();
        for (label, runs) in &self.series {
            if !label.is_empty() && !runs.is_empty() {
                labels.push((*label).to_owned());
            }
            marks.extend(path_marks(runs, 3.0));
        }
        for (x, label) in &self.vlines {
            if !label.is_empty() {
                labels.push((*label).to_owned());
            }
            marks.push(vline_mark(*x, &self.y));
        }
        let spec = ChartSpec {
            title: self.title,
            x_label: self.x_label,
            y_label: self.y_label,
            x: self.x.clone(),
            y: self.y.clone(),
            log_y: self.log_y,
            y_label_area: 96,
            x_ticks: true,
            labels,
            marks,
            order: LEFT_FIRST,
        };
        let layout = lay_out(root, &spec)?;
        if self.log_y {
            self.draw_on(&layout, &spec, layout.y.clone().log_scale())
        } else {
            self.draw_on(&layout, &spec, layout.y.clone())
        }
    }
}

impl LineFigure<'_> {
    fn draw_on<DB: DrawingBackend, Y>(
        &self,
        layout: &Layout<DB>,
        spec: &ChartSpec<'_>,
        y: Y,
    ) -> DrawResult<()>
    where
        Y: AsRangedCoord<Value = f64>,
        Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        let mut chart = build_chart(layout, spec, y)?;
        for (i, (label, runs)) in self.series.iter().enumerate() {
            let style = palette(i).stroke_width(3);
            for (j, run) in runs.iter().enumerate() {
                let pieces = unspiked(&chart, run);
                let anno = chart
                    .draw_series(pieces.into_iter().map(|p| PathElement::new(p, style)))
                    .map_err(de)?;
                if j == 0 && !label.is_empty() {
                    anno.label(*label).legend(line_marker(style));
                }
            }
        }
        for (x, label) in &self.vlines {
            vline(&mut chart, *x, &self.y, BLACK.stroke_width(2), label)?;
        }
        draw_legend(&mut chart, layout.legend.as_ref())
    }
}

/// Line plot, one palette colour per series, optional dashed vertical lines and log y axis (a
/// linear one when the data span less than a decade, which a log axis would leave unlabelled).
pub fn line_figure(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    vlines: &[(f64, &str)],
    log_y: bool,
    stem: &Path,
) -> Result<Vec<PathBuf>> {
    let mut prepared = Vec::with_capacity(series.len());
    for s in series {
        check_len(
            stem,
            &format!("series '{}': x vs y", s.label),
            s.x.len(),
            s.y.len(),
        )?;
        // Non-positive values have no place on a log axis: treat them as gaps.
        let y: Vec<f64> = if log_y {
            s.y.iter()
                .map(|&v| if v > 0.0 { v } else { f64::NAN })
                .collect()
        } else {
            s.y.clone()
        };
        prepared.push((s.label.as_str(), sorted_segments(&s.x, &y)));
    }
    let all = || prepared.iter().flat_map(|(_, r)| r.iter().flatten());
    let (Some((x0, x1)), Some((y0, y1))) = (
        finite_extent(all().map(|p| p.0)),
        finite_extent(all().map(|p| p.1)),
    ) else {
        let what = if log_y {
            "no finite positive points in any series"
        } else {
            "no finite points in any series"
        };
        return Err(empty(stem, what));
    };
    let vl: Vec<(f64, &str)> = vlines
        .iter()
        .filter(|(x, _)| x.is_finite())
        .copied()
        .collect();
    let (x0, x1) = merge(Some((x0, x1)), finite_extent(vl.iter().map(|v| v.0))).unwrap_or((x0, x1));
    // Within one decade a log axis gets no tick labels at all: draw such data on a linear one.
    let log_y = log_y && y1 >= 10.0 * y0;
    let y = if log_y {
        padded_log(y0, y1)
    } else {
        padded(y0, y1, 0.05)
    };
    render(
        &LineFigure {
            title,
            x_label,
            y_label,
            series: prepared,
            vlines: vl,
            x: padded(x0, x1, 0.02),
            y,
            log_y,
        },
        stem,
    )
}

/// Training curves: values (a loss, a learnt rate) against the training step, one palette colour
/// per series, no reference lines. The y axis is logarithmic when every finite value is positive
/// and they span a decade or more (a loss falling by orders of magnitude), else linear (a loss
/// that can be negative, such as a Gaussian NLL, or one that barely moves), so no point is
/// dropped for the axis' sake.
pub fn curve_figure(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    stem: &Path,
) -> Result<Vec<PathBuf>> {
    let positive = series
        .iter()
        .flat_map(|s| &s.y)
        .filter(|v| v.is_finite())
        .all(|&v| v > 0.0);
    line_figure(title, x_label, y_label, series, &[], positive, stem)
}

// ---------------------------------------------------------------------------
// Scatter figure

struct ScatterFigure<'s> {
    title: &'s str,
    x_label: &'s str,
    y_label: &'s str,
    groups: Vec<(&'s str, Vec<(f64, f64)>)>,
    x_ticks: Option<Vec<(f64, String)>>,
    thumbnails: &'s [Thumbnail],
    x: Range<f64>,
    y: Range<f64>,
}

/// A small grey-scale image drawn under the x axis of a scatter figure, centred at `x`.
#[derive(Debug, Clone, PartialEq)]
pub struct Thumbnail {
    pub x: f64,
    /// Images are `side` x `side`, row-major.
    pub side: usize,
    /// Intensities in [0, 1] (1 = ink, drawn dark on white).
    pub pixels: Vec<f32>,
}

/// Height of the strip of thumbnails under a scatter figure, in pixels.
const THUMB_STRIP_PX: u32 = 72;

impl Figure for ScatterFigure<'_> {
    fn size(&self) -> (u32, u32) {
        if self.thumbnails.is_empty() {
            (960, 640)
        } else {
            (960, 640 + THUMB_STRIP_PX)
        }
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<()> {
        let (main, strip) = root.split_vertically(640);
        let root = &main;
        let labelled =
            |(label, pts): &&(&str, Vec<(f64, f64)>)| !label.is_empty() && !pts.is_empty();
        let spec = ChartSpec {
            title: self.title,
            x_label: self.x_label,
            y_label: self.y_label,
            x: self.x.clone(),
            y: self.y.clone(),
            log_y: false,
            y_label_area: Y_LABEL_AREA,
            x_ticks: self.x_ticks.is_none(),
            labels: self
                .groups
                .iter()
                .filter(labelled)
                .map(|g| g.0.to_owned())
                .collect(),
            marks: self
                .groups
                .iter()
                .flat_map(|(_, pts)| pts.iter().map(|&at| Mark::Dot { at, r: 4.0 }))
                .collect(),
            order: RIGHT_FIRST,
        };
        let (mut chart, legend) = lin_chart(root, &spec)?;
        if let Some(ticks) = &self.x_ticks {
            draw_custom_x_ticks(root, &chart, ticks)?;
        }
        for (i, group) in self.groups.iter().enumerate() {
            let fill = palette(i).mix(0.45).filled();
            let anno = chart
                .draw_series(group.1.iter().map(|&p| Circle::new(p, 4, fill)))
                .map_err(de)?;
            if labelled(&group) {
                anno.label(group.0).legend(dot_marker(palette(i).filled()));
            }
        }
        for t in self.thumbnails {
            // Pixel size chosen so a thumbnail fills most of the strip's height.
            let px = ((THUMB_STRIP_PX as usize - 12) / t.side.max(1)).max(1) as i32;
            let centre = chart.backend_coord(&(t.x, self.y.start)).0;
            let left = centre - px * t.side as i32 / 2;
            for (i, &v) in t.pixels.iter().enumerate() {
                let v = f64::from(v).clamp(0.0, 1.0);
                if v < 0.05 || t.side == 0 {
                    continue;
                }
                let grey = (255.0 * (1.0 - v)) as u8;
                let (r, c) = ((i / t.side) as i32, (i % t.side) as i32);
                let (x, y) = (left + c * px, 6 + r * px);
                strip
                    .draw(&Rectangle::new(
                        [(x, y), (x + px, y + px)],
                        RGBColor(grey, grey, grey).filled(),
                    ))
                    .map_err(de)?;
            }
        }
        draw_legend(&mut chart, legend.as_ref())
    }
}

/// Scatter plot with semi-transparent markers, one palette colour per group, optional custom x ticks.
pub fn scatter_figure(
    title: &str,
    x_label: &str,
    y_label: &str,
    groups: &[ScatterGroup],
    x_ticks: Option<Vec<(f64, String)>>,
    stem: &Path,
) -> Result<Vec<PathBuf>> {
    scatter_figure_with_thumbnails(title, x_label, y_label, groups, x_ticks, &[], stem)
}

/// [`scatter_figure`] with small images drawn in a strip under the x axis (e.g. the rotated
/// digits of the paper's Fig. 4).
pub fn scatter_figure_with_thumbnails(
    title: &str,
    x_label: &str,
    y_label: &str,
    groups: &[ScatterGroup],
    x_ticks: Option<Vec<(f64, String)>>,
    thumbnails: &[Thumbnail],
    stem: &Path,
) -> Result<Vec<PathBuf>> {
    for t in thumbnails {
        check_len(
            stem,
            "thumbnail pixels vs side * side",
            t.pixels.len(),
            t.side * t.side,
        )?;
    }
    let mut prepared = Vec::with_capacity(groups.len());
    for g in groups {
        check_len(
            stem,
            &format!("group '{}': x vs y", g.label),
            g.x.len(),
            g.y.len(),
        )?;
        let pts: Vec<(f64, f64)> =
            g.x.iter()
                .zip(&g.y)
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .map(|(&x, &y)| (x, y))
                .collect();
        prepared.push((g.label.as_str(), pts));
    }
    let all = || prepared.iter().flat_map(|(_, p)| p.iter());
    let (Some((x0, x1)), Some((y0, y1))) = (
        finite_extent(all().map(|p| p.0)),
        finite_extent(all().map(|p| p.1)),
    ) else {
        return Err(empty(stem, "no finite points in any group"));
    };
    // Custom ticks (e.g. class names) should all be visible.
    let tick_ext = x_ticks
        .as_ref()
        .and_then(|t| finite_extent(t.iter().map(|(x, _)| *x)));
    let (x0, x1) = merge(Some((x0, x1)), tick_ext).unwrap_or((x0, x1));
    render(
        &ScatterFigure {
            title,
            x_label,
            y_label,
            groups: prepared,
            x_ticks,
            thumbnails,
            x: padded(x0, x1, 0.04),
            y: padded(y0, y1, 0.05),
        },
        stem,
    )
}

// ---------------------------------------------------------------------------
// Reliability diagram

struct ReliabilityFigure<'s> {
    title: &'s str,
    /// `(lower, upper, accuracy, confidence)` of non-empty bins.
    bins: Vec<(f64, f64, f64, f64)>,
    x: Range<f64>,
}

impl Figure for ReliabilityFigure<'_> {
    fn size(&self) -> (u32, u32) {
        (760, 700)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<()> {
        let bar_top = |acc: f64| acc.clamp(0.0, 1.0);
        let dots: Vec<(f64, f64)> = self
            .bins
            .iter()
            .filter(|b| b.3.is_finite())
            .map(|&(lo, hi, _, c)| (0.5 * (lo + hi), c.clamp(0.0, 1.0)))
            .collect();
        let mut marks: Vec<Mark> = self
            .bins
            .iter()
            .map(|&(lo, hi, acc, _)| Mark::Area {
                pts: vec![(lo, 0.0), (hi, 0.0), (hi, bar_top(acc)), (lo, bar_top(acc))],
            })
            .collect();
        marks.push(Mark::Path {
            pts: vec![(0.0, 0.0), (1.0, 1.0)],
            w: 1.0,
        });
        marks.extend(dots.iter().map(|&at| Mark::Dot { at, r: 5.0 }));
        let spec = ChartSpec {
            title: self.title,
            x_label: "confidence",
            y_label: "accuracy",
            x: self.x.clone(),
            y: 0.0..1.0,
            log_y: false,
            y_label_area: Y_LABEL_AREA,
            x_ticks: true,
            labels: ["accuracy", "perfect calibration", "mean confidence"]
                .map(String::from)
                .to_vec(),
            marks,
            order: LEFT_FIRST,
        };
        let (mut chart, legend) = lin_chart(root, &spec)?;
        let bar = tint(palette(0), 0.55).filled();
        let edge = palette(0).stroke_width(1);
        let anno = chart
            .draw_series(
                self.bins
                    .iter()
                    .map(|&(lo, hi, acc, _)| Rectangle::new([(lo, 0.0), (hi, bar_top(acc))], bar)),
            )
            .map_err(de)?;
        anno.label("accuracy").legend(box_marker(bar));
        chart
            .draw_series(
                self.bins
                    .iter()
                    .map(|&(lo, hi, acc, _)| Rectangle::new([(lo, 0.0), (hi, bar_top(acc))], edge)),
            )
            .map_err(de)?;
        let diag = BLACK.mix(0.7).stroke_width(2);
        chart
            .draw_series(DashedLineSeries::new(
                vec![(0.0, 0.0), (1.0, 1.0)],
                10,
                6,
                diag,
            ))
            .map_err(de)?
            .label("perfect calibration")
            .legend(dashed_marker(diag));
        let conf = OBS_RED.filled();
        chart
            .draw_series(dots.iter().map(|&p| Circle::new(p, 5, conf)))
            .map_err(de)?
            .label("mean confidence")
            .legend(dot_marker(conf));
        draw_legend(&mut chart, legend.as_ref())
    }
}

/// Reliability diagram: accuracy bars per confidence bin, mean-confidence dots and the diagonal.
///
/// Bins are `(lower, upper, accuracy, confidence, count)`; empty or non-finite bins are skipped.
pub fn reliability_figure(
    bins: &[ReliabilityBin],
    title: &str,
    stem: &Path,
) -> Result<Vec<PathBuf>> {
    let mut kept = Vec::with_capacity(bins.len());
    for (i, &(lo, hi, acc, conf, count)) in bins.iter().enumerate() {
        if count == 0 || !(lo.is_finite() && hi.is_finite() && acc.is_finite()) {
            continue;
        }
        if lo >= hi {
            return Err(invalid(stem, format!("bin {i}: lower {lo} >= upper {hi}")));
        }
        kept.push((lo, hi, acc, conf));
    }
    if kept.is_empty() {
        return Err(empty(stem, "no non-empty finite bins"));
    }
    let (x0, x1) = finite_extent(kept.iter().flat_map(|b| [b.0, b.1])).unwrap_or((0.0, 1.0));
    render(
        &ReliabilityFigure {
            title,
            bins: kept,
            x: x0.min(0.0)..x1.max(1.0),
        },
        stem,
    )
}

// ---------------------------------------------------------------------------
// Error-bar figure

struct ErrorbarFigure<'s> {
    title: &'s str,
    y_label: &'s str,
    labels: &'s [String],
    groups: &'s [ErrorGroup],
    y: Range<f64>,
}

/// Total horizontal span of one category's group of points, in category units.
const GROUP_SPAN: f64 = 0.6;

impl Figure for ErrorbarFigure<'_> {
    fn size(&self) -> (u32, u32) {
        ((140 * self.labels.len() as u32 + 200).max(960), 640)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<()> {
        let shapes = self.shapes();
        let labelled = |gi: usize| !self.groups[gi].0.is_empty() && !shapes[gi].1.is_empty();
        let mut marks = Vec::new();
        for (bars, dots) in &shapes {
            marks.extend(path_marks(bars, 2.0));
            marks.extend(dots.iter().map(|&at| Mark::Dot { at, r: 6.0 }));
        }
        let spec = ChartSpec {
            title: self.title,
            x_label: "",
            y_label: self.y_label,
            x: -0.5..self.labels.len() as f64 - 0.5,
            y: self.y.clone(),
            log_y: false,
            y_label_area: Y_LABEL_AREA,
            x_ticks: false,
            labels: (0..self.groups.len())
                .filter(|&gi| labelled(gi))
                .map(|gi| self.groups[gi].0.clone())
                .collect(),
            marks,
            order: RIGHT_FIRST,
        };
        let (mut chart, legend) = lin_chart(root, &spec)?;
        let ticks: Vec<(f64, String)> = self
            .labels
            .iter()
            .enumerate()
            .map(|(i, l)| (i as f64, l.clone()))
            .collect();
        draw_custom_x_ticks(root, &chart, &ticks)?;
        for (gi, (bars, dots)) in shapes.iter().enumerate() {
            let colour = palette(gi);
            let line = colour.stroke_width(2);
            chart
                .draw_series(bars.iter().map(|b| PathElement::new(b.clone(), line)))
                .map_err(de)?;
            let anno = chart
                .draw_series(dots.iter().map(|&p| Circle::new(p, 6, colour.filled())))
                .map_err(de)?;
            if labelled(gi) {
                anno.label(self.groups[gi].0.as_str())
                    .legend(dot_marker(colour.filled()));
            }
        }
        draw_legend(&mut chart, legend.as_ref())
    }
}

/// One group of an error-bar figure: bars with their caps, and the points of the means.
type GroupShapes = (Vec<Polyline>, Vec<(f64, f64)>);

impl ErrorbarFigure<'_> {
    /// Per group: error bars with their caps, and the points of the means.
    fn shapes(&self) -> Vec<GroupShapes> {
        let g = self.groups.len() as f64;
        let step = GROUP_SPAN / g;
        let cap = (0.15 * step).min(0.05);
        let mut out = Vec::with_capacity(self.groups.len());
        for (gi, (_, means, errs)) in self.groups.iter().enumerate() {
            let offset = (gi as f64 - 0.5 * (g - 1.0)) * step;
            let mut bars = Vec::new();
            let mut dots = Vec::new();
            for (i, (&m, &e)) in means.iter().zip(errs).enumerate() {
                if !m.is_finite() {
                    continue;
                }
                let x = i as f64 + offset;
                dots.push((x, m));
                if e.is_finite() {
                    let (lo, hi) = (m - e.abs(), m + e.abs());
                    bars.push(vec![(x, lo), (x, hi)]);
                    bars.push(vec![(x - cap, lo), (x + cap, lo)]);
                    bars.push(vec![(x - cap, hi), (x + cap, hi)]);
                }
            }
            out.push((bars, dots));
        }
        out
    }
}

/// Points with error bars per category, groups side by side within each category.
///
/// Each group is `(name, means, errs)` with one mean and one error half-width per label.
pub fn errorbar_figure(
    title: &str,
    y_label: &str,
    labels: &[String],
    groups: &[ErrorGroup],
    stem: &Path,
) -> Result<Vec<PathBuf>> {
    if labels.is_empty() || groups.is_empty() {
        return Err(empty(stem, "no categories or no groups"));
    }
    for (name, means, errs) in groups {
        check_len(
            stem,
            &format!("group '{name}': means vs labels"),
            means.len(),
            labels.len(),
        )?;
        check_len(
            stem,
            &format!("group '{name}': errs vs labels"),
            errs.len(),
            labels.len(),
        )?;
    }
    let ends = groups.iter().flat_map(|(_, m, e)| {
        m.iter().zip(e).flat_map(|(&m, &e)| {
            let e = if e.is_finite() { e.abs() } else { 0.0 };
            [m - e, m + e]
        })
    });
    let Some((y0, y1)) = finite_extent(ends) else {
        return Err(empty(stem, "no finite means"));
    };
    render(
        &ErrorbarFigure {
            title,
            y_label,
            labels,
            groups,
            y: padded(y0, y1, 0.08),
        },
        stem,
    )
}

// ---------------------------------------------------------------------------
// Spread figure

/// One series of a spread figure, in plotted x (log10 x on a log axis): its label, the line
/// through its means, its error bars (with caps) and the means as dots.
type SpreadShapes<'s> = (&'s str, Vec<Polyline>, Vec<Polyline>, Vec<(f64, f64)>);

struct SpreadFigure<'s> {
    title: &'s str,
    x_label: &'s str,
    y_label: &'s str,
    series: Vec<SpreadShapes<'s>>,
    /// Custom x ticks (a log axis: at the data's x, labelled with it); `None`: plotters' own.
    x_ticks: Option<Vec<(f64, String)>>,
    x: Range<f64>,
    y: Range<f64>,
}

impl Figure for SpreadFigure<'_> {
    fn size(&self) -> (u32, u32) {
        (960, 640)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<()> {
        let labelled = |s: &SpreadShapes| !s.0.is_empty() && !s.3.is_empty();
        let mut marks = Vec::new();
        for (_, lines, bars, dots) in &self.series {
            marks.extend(path_marks(lines, 3.0));
            marks.extend(path_marks(bars, 2.0));
            marks.extend(dots.iter().map(|&at| Mark::Dot { at, r: 5.0 }));
        }
        let spec = ChartSpec {
            title: self.title,
            x_label: self.x_label,
            y_label: self.y_label,
            x: self.x.clone(),
            y: self.y.clone(),
            log_y: false,
            y_label_area: 96,
            x_ticks: self.x_ticks.is_none(),
            labels: self
                .series
                .iter()
                .filter(|s| labelled(s))
                .map(|s| s.0.to_owned())
                .collect(),
            marks,
            order: RIGHT_FIRST,
        };
        let (mut chart, legend) = lin_chart(root, &spec)?;
        if let Some(ticks) = &self.x_ticks {
            draw_custom_x_ticks(root, &chart, ticks)?;
        }
        for (i, s) in self.series.iter().enumerate() {
            let (label, lines, bars, dots) = s;
            let colour = palette(i);
            let line = colour.stroke_width(3);
            chart
                .draw_series(
                    bars.iter()
                        .map(|b| PathElement::new(b.clone(), colour.stroke_width(2))),
                )
                .map_err(de)?;
            chart
                .draw_series(lines.iter().map(|l| PathElement::new(l.clone(), line)))
                .map_err(de)?;
            let anno = chart
                .draw_series(dots.iter().map(|&p| Circle::new(p, 5, colour.filled())))
                .map_err(de)?;
            if labelled(s) {
                anno.label(*label).legend(line_marker(line));
            }
        }
        draw_legend(&mut chart, legend.as_ref())
    }
}

/// Means at a few x joined by a line, each with a ± spread error bar (e.g. the sd over
/// repetitions), one palette colour per series. With `log_x` the x axis is log10 x, ticked at
/// the series' x values (up to 12 distinct ones; else at powers of ten) and labelled with them;
/// x <= 0 is then left out. A NaN mean is a gap; a NaN or zero spread draws no bar.
pub fn spread_figure(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[SpreadSeries],
    log_x: bool,
    stem: &Path,
) -> Result<Vec<PathBuf>> {
    let tx = |x: f64| {
        if !log_x {
            x
        } else if x > 0.0 {
            x.log10()
        } else {
            f64::NAN
        }
    };
    let mut prepared = Vec::with_capacity(series.len());
    for s in series {
        check_len(
            stem,
            &format!("series '{}': x vs mean", s.label),
            s.x.len(),
            s.mean.len(),
        )?;
        check_len(
            stem,
            &format!("series '{}': x vs spread", s.label),
            s.x.len(),
            s.spread.len(),
        )?;
        let x: Vec<f64> = s.x.iter().map(|&v| tx(v)).collect();
        let lines = sorted_segments(&x, &s.mean);
        let dots: Vec<(f64, f64)> = x
            .iter()
            .zip(&s.mean)
            .filter(|(x, m)| x.is_finite() && m.is_finite())
            .map(|(&x, &m)| (x, m))
            .collect();
        // (x, mean, half-width) of each bar; caps once the x range is known.
        let bars: Vec<(f64, f64, f64)> = x
            .iter()
            .zip(&s.mean)
            .zip(&s.spread)
            .filter(|((x, m), e)| x.is_finite() && m.is_finite() && e.is_finite() && **e != 0.0)
            .map(|((&x, &m), &e)| (x, m, e.abs()))
            .collect();
        prepared.push((s.label.as_str(), lines, bars, dots));
    }
    let xs = || prepared.iter().flat_map(|p| p.3.iter().map(|d| d.0));
    let ys = || {
        prepared.iter().flat_map(|p| {
            p.3.iter()
                .map(|d| d.1)
                .chain(p.2.iter().flat_map(|&(_, m, e)| [m - e, m + e]))
        })
    };
    let (Some((x0, x1)), Some((y0, y1))) = (finite_extent(xs()), finite_extent(ys())) else {
        return Err(empty(stem, "no finite means in any series"));
    };
    let x = padded(x0, x1, 0.05);
    let cap = 0.01 * (x.end - x.start);
    let series_drawn = prepared
        .into_iter()
        .map(|(label, lines, bars, dots)| {
            let mut paths = Vec::with_capacity(3 * bars.len());
            for (x, m, e) in bars {
                let (lo, hi) = (m - e, m + e);
                paths.push(vec![(x, lo), (x, hi)]);
                paths.push(vec![(x - cap, lo), (x + cap, lo)]);
                paths.push(vec![(x - cap, hi), (x + cap, hi)]);
            }
            (label, lines, paths, dots)
        })
        .collect::<Vec<_>>();
    let x_ticks = log_x.then(|| {
        let mut at: Vec<f64> = series
            .iter()
            .flat_map(|s| s.x.iter().copied())
            .filter(|v| *v > 0.0 && v.is_finite())
            .collect();
        at.sort_by(f64::total_cmp);
        at.dedup();
        if at.len() > 12 {
            let (lo, hi) = (x.start.ceil() as i32, x.end.floor() as i32);
            at = (lo..=hi).map(|e| 10f64.powi(e)).collect();
        }
        at.into_iter()
            .map(|v| (v.log10(), format!("{v}")))
            .collect::<Vec<_>>()
    });
    render(
        &SpreadFigure {
            title,
            x_label,
            y_label,
            series: series_drawn,
            x_ticks,
            x,
            y: padded(y0, y1, 0.08),
        },
        stem,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_close(a: &[Vec<(f64, f64)>], b: &[Vec<(f64, f64)>]) {
        assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
        for (pa, pb) in a.iter().zip(b) {
            assert_eq!(pa.len(), pb.len(), "{a:?} vs {b:?}");
            for (p, q) in pa.iter().zip(pb) {
                assert!(
                    (p.0 - q.0).abs() < 1e-12 && (p.1 - q.1).abs() < 1e-12,
                    "{a:?} vs {b:?}"
                );
            }
        }
    }

    #[test]
    fn clip_y_interpolates_crossings() {
        // Rises from 0 to 4 across x in [0, 2]: inside [1, 3] for x in [0.5, 1.5].
        let pieces = clip_y(&[(0.0, 0.0), (1.0, 2.0), (2.0, 4.0)], 1.0, 3.0);
        assert_close(&pieces, &[vec![(0.5, 1.0), (1.0, 2.0), (1.5, 3.0)]]);
    }

    #[test]
    fn clip_y_splits_excursions() {
        // Leaves the band upwards between x = 1 and x = 3 and comes back.
        let pts = [(0.0, 0.0), (1.0, 0.0), (2.0, 10.0), (3.0, 0.0)];
        let pieces = clip_y(&pts, -1.0, 1.0);
        assert_close(
            &pieces,
            &[
                vec![(0.0, 0.0), (1.0, 0.0), (1.1, 1.0)],
                vec![(2.9, 1.0), (3.0, 0.0)],
            ],
        );
    }

    #[test]
    fn segments_split_on_nan_and_sort() {
        let segs = sorted_segments(&[2.0, 0.0, 1.0, 3.0], &[2.0, 0.0, f64::NAN, 3.0]);
        assert_eq!(segs, vec![vec![(0.0, 0.0)], vec![(2.0, 2.0), (3.0, 3.0)]]);
    }

    #[test]
    fn with_ext_appends() {
        assert_eq!(
            with_ext(Path::new("a/fig.v2"), "png"),
            PathBuf::from("a/fig.v2.png")
        );
    }
}
