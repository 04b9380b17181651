//! Figures written as PNG and SVG with plotters.
//!
//! Every public function draws the same figure twice (bitmap and SVG backends)
//! and returns `[stem.png, stem.svg]`. Non-finite points are skipped; inputs
//! with nothing finite to draw give [`ReportError::EmptyData`].

use std::ops::Range;
use std::path::{Path, PathBuf};

use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::{ReportError, Result};
use crate::style::{ensure_font, palette, tint, AXIS_LABEL_PX, FONT, LEGEND_PX, TICK_PX, TITLE_PX};

/// Pixel position on the backend (plotters' `BackendCoord`).
type BackendCoord = (i32, i32);

/// Error text from a backend-generic plotters failure.
type DrawResult<T> = std::result::Result<T, String>;

fn de<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> String {
    e.to_string()
}

/// Connected finite points in data coordinates.
type Polyline = Vec<(f64, f64)>;

/// Linear chart type shared by most figures.
type LinChart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

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
    /// Fixed y range; bands and lines are clipped to it. `None` fits the data.
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
    Ok(vec![png, svg])
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
// Chart helpers

/// Builds a linear chart with caption, label areas and a light grid.
fn lin_chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    x: Range<f64>,
    y: Range<f64>,
    draw_x_ticks: bool,
) -> DrawResult<LinChart<'a, DB>> {
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, TITLE_PX))
        .margin(16)
        .x_label_area_size(64)
        .y_label_area_size(76)
        .build_cartesian_2d(x, y)
        .map_err(de)?;
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(x_label)
        .y_desc(y_label)
        .axis_desc_style((FONT, AXIS_LABEL_PX))
        .label_style((FONT, TICK_PX))
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(TRANSPARENT)
        .x_labels(8)
        .y_labels(8);
    if !draw_x_ticks {
        mesh.x_labels(0);
    }
    mesh.draw().map_err(de)?;
    Ok(chart)
}

/// Draws the legend when at least one series was labelled.
fn draw_legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    any_label: bool,
    pos: SeriesLabelPosition,
) -> DrawResult<()> {
    if !any_label {
        return Ok(());
    }
    chart
        .configure_series_labels()
        .position(pos)
        .margin(12)
        .label_font((FONT, LEGEND_PX))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.5))
        .draw()
        .map_err(de)
}

/// Writes custom x tick labels below the plotting area of a linear chart.
fn draw_custom_x_ticks<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &LinChart<'_, DB>,
    ticks: &[(f64, String)],
) -> DrawResult<()> {
    let xr = chart.x_range();
    let y0 = chart.y_range().start;
    let style = TextStyle::from((FONT, TICK_PX).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    // Backend coordinates equal root coordinates: the root area spans the canvas.
    let (ox, oy) = root.get_base_pixel();
    for (x, label) in ticks {
        if !x.is_finite() || *x < xr.start || *x > xr.end {
            continue;
        }
        let (px, py) = chart.backend_coord(&(*x, y0));
        let (px, py) = (px - ox, py - oy);
        root.draw(&PathElement::new(vec![(px, py), (px, py + 6)], BLACK))
            .map_err(de)?;
        root.draw(&Text::new(label.clone(), (px, py + 9), style.clone()))
            .map_err(de)?;
    }
    Ok(())
}

/// A short horizontal line legend marker.
fn line_marker(style: ShapeStyle) -> impl Fn(BackendCoord) -> PathElement<BackendCoord> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style)
}

/// A short dashed legend marker.
fn dashed_marker(
    style: ShapeStyle,
) -> impl Fn(BackendCoord) -> DashedPathElement<std::vec::IntoIter<BackendCoord>, i32> {
    move |(x, y)| DashedPathElement::new(vec![(x, y), (x + 24, y)], 6, 4, style)
}

/// A filled square legend marker.
fn box_marker(style: ShapeStyle) -> impl Fn(BackendCoord) -> Rectangle<BackendCoord> {
    move |(x, y)| Rectangle::new([(x, y - 7), (x + 24, y + 7)], style)
}

/// A filled circle legend marker.
fn dot_marker(style: ShapeStyle) -> impl Fn(BackendCoord) -> Circle<BackendCoord, i32> {
    move |(x, y)| Circle::new((x + 12, y), 6, style)
}

/// Draws a dashed vertical line across the y range.
fn vline<DB: DrawingBackend>(
    chart: &mut LinChart<'_, DB>,
    x: f64,
    style: ShapeStyle,
    label: &str,
) -> DrawResult<bool> {
    let y = chart.y_range();
    let anno = chart
        .draw_series(DashedLineSeries::new(
            vec![(x, y.start), (x, y.end)],
            10,
            6,
            style,
        ))
        .map_err(de)?;
    if label.is_empty() {
        return Ok(false);
    }
    anno.label(label).legend(dashed_marker(style));
    Ok(true)
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

fn draw_band_panel<DB: DrawingBackend>(
    p: &PreparedPanel,
    area: &DrawingArea<DB, Shift>,
) -> DrawResult<()> {
    let mut chart = lin_chart(
        area,
        &p.title,
        "x (standardised)",
        "y (standardised)",
        p.x.clone(),
        p.y.clone(),
        true,
    )?;
    let (ylo, yhi) = (p.y.start, p.y.end);
    let mut labelled = false;

    // Outer shade first so inner (darker) shades paint over it; opaque shades
    // keep the legend swatch identical to what is drawn.
    for k in (1..=SHADES).rev() {
        let half = p.band_sd * k as f64 / SHADES as f64;
        let shade = tint(MEAN_BLUE, 0.12 + 0.13 * (SHADES - k) as f64);
        for (i, run) in p.pred.iter().enumerate() {
            if run.len() < 2 {
                continue;
            }
            let upper = run
                .iter()
                .map(|&(x, m, s)| (x, (m + half * s).clamp(ylo, yhi)));
            let lower = run
                .iter()
                .rev()
                .map(|&(x, m, s)| (x, (m - half * s).clamp(ylo, yhi)));
            let poly: Vec<(f64, f64)> = upper.chain(lower).collect();
            let anno = chart
                .draw_series(std::iter::once(Polygon::new(poly, shade.filled())))
                .map_err(de)?;
            if k == SHADES && i == 0 {
                anno.label(format!("±{} sd", p.band_sd))
                    .legend(box_marker(tint(MEAN_BLUE, 0.3).filled()));
                labelled = true;
            }
        }
    }

    let mean_style = MEAN_BLUE.stroke_width(3);
    let mut first = true;
    for run in &p.pred {
        let pts: Vec<(f64, f64)> = run.iter().map(|&(x, m, _)| (x, m)).collect();
        for piece in clip_y(&pts, ylo, yhi) {
            let anno = chart
                .draw_series(LineSeries::new(piece, mean_style))
                .map_err(de)?;
            if first {
                anno.label("predictive mean")
                    .legend(line_marker(mean_style));
                first = false;
                labelled = true;
            }
        }
    }

    // Observations go on top: where the fit is tight the mean would hide them.
    let obs_style = OBS_RED.stroke_width(2);
    let mut first = true;
    for run in &p.obs {
        for piece in clip_y(run, ylo, yhi) {
            let anno = chart
                .draw_series(LineSeries::new(piece, obs_style))
                .map_err(de)?;
            if first {
                anno.label("observed").legend(line_marker(obs_style));
                first = false;
                labelled = true;
            }
        }
    }

    if p.train_end.is_finite() {
        labelled |= vline(
            &mut chart,
            p.train_end,
            BLACK.stroke_width(2),
            "end of training data",
        )?;
    }
    if let Some(xs) = p.x_star.filter(|v| v.is_finite()) {
        labelled |= vline(&mut chart, xs, OBS_RED.stroke_width(2), "x*")?;
    }
    draw_legend(&mut chart, labelled, SeriesLabelPosition::UpperLeft)
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
        if self.log_y {
            self.draw_on(root, self.y.clone().log_scale())
        } else {
            self.draw_on(root, self.y.clone())
        }
    }
}

impl LineFigure<'_> {
    fn draw_on<DB: DrawingBackend, Y>(&self, root: &DrawingArea<DB, Shift>, y: Y) -> DrawResult<()>
    where
        Y: AsRangedCoord<Value = f64>,
        Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        let mut chart = ChartBuilder::on(root)
            .caption(self.title, (FONT, TITLE_PX))
            .margin(16)
            .x_label_area_size(64)
            .y_label_area_size(96)
            .build_cartesian_2d(self.x.clone(), y)
            .map_err(de)?;
        chart
            .configure_mesh()
            .x_desc(self.x_label)
            .y_desc(self.y_label)
            .axis_desc_style((FONT, AXIS_LABEL_PX))
            .label_style((FONT, TICK_PX))
            .bold_line_style(BLACK.mix(0.12))
            .light_line_style(TRANSPARENT)
            .x_labels(8)
            .y_labels(8)
            .draw()
            .map_err(de)?;
        let mut labelled = false;
        for (i, (label, runs)) in self.series.iter().enumerate() {
            let style = palette(i).stroke_width(3);
            for (j, run) in runs.iter().enumerate() {
                let anno = chart
                    .draw_series(LineSeries::new(run.iter().copied(), style))
                    .map_err(de)?;
                if j == 0 && !label.is_empty() {
                    anno.label(*label).legend(line_marker(style));
                    labelled = true;
                }
            }
        }
        for (x, label) in &self.vlines {
            let style = BLACK.stroke_width(2);
            let anno = chart
                .draw_series(DashedLineSeries::new(
                    vec![(*x, self.y.start), (*x, self.y.end)],
                    10,
                    6,
                    style,
                ))
                .map_err(de)?;
            if !label.is_empty() {
                anno.label(*label).legend(dashed_marker(style));
                labelled = true;
            }
        }
        draw_legend(&mut chart, labelled, SeriesLabelPosition::UpperLeft)
    }
}

/// Line plot, one palette colour per series, optional dashed vertical lines and log y axis.
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
        let mut chart = lin_chart(
            root,
            self.title,
            self.x_label,
            self.y_label,
            self.x.clone(),
            self.y.clone(),
            self.x_ticks.is_none(),
        )?;
        if let Some(ticks) = &self.x_ticks {
            draw_custom_x_ticks(root, &chart, ticks)?;
        }
        let mut labelled = false;
        for (i, (label, pts)) in self.groups.iter().enumerate() {
            let fill = palette(i).mix(0.45).filled();
            let anno = chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 4, fill)))
                .map_err(de)?;
            if !label.is_empty() && !pts.is_empty() {
                anno.label(*label).legend(dot_marker(palette(i).filled()));
                labelled = true;
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
        draw_legend(&mut chart, labelled, SeriesLabelPosition::UpperRight)
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
        let mut chart = lin_chart(
            root,
            self.title,
            "confidence",
            "accuracy",
            self.x.clone(),
            0.0..1.0,
            true,
        )?;
        let bar = tint(palette(0), 0.55).filled();
        let edge = palette(0).stroke_width(1);
        let anno = chart
            .draw_series(self.bins.iter().map(|&(lo, hi, acc, _)| {
                Rectangle::new([(lo, 0.0), (hi, acc.clamp(0.0, 1.0))], bar)
            }))
            .map_err(de)?;
        anno.label("accuracy").legend(box_marker(bar));
        chart
            .draw_series(self.bins.iter().map(|&(lo, hi, acc, _)| {
                Rectangle::new([(lo, 0.0), (hi, acc.clamp(0.0, 1.0))], edge)
            }))
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
            .draw_series(
                self.bins
                    .iter()
                    .filter(|b| b.3.is_finite())
                    .map(|&(lo, hi, _, c)| {
                        Circle::new((0.5 * (lo + hi), c.clamp(0.0, 1.0)), 5, conf)
                    }),
            )
            .map_err(de)?
            .label("mean confidence")
            .legend(dot_marker(conf));
        draw_legend(&mut chart, true, SeriesLabelPosition::UpperLeft)
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
        let n = self.labels.len() as f64;
        let mut chart = lin_chart(
            root,
            self.title,
            "",
            self.y_label,
            -0.5..n - 0.5,
            self.y.clone(),
            false,
        )?;
        let ticks: Vec<(f64, String)> = self
            .labels
            .iter()
            .enumerate()
            .map(|(i, l)| (i as f64, l.clone()))
            .collect();
        draw_custom_x_ticks(root, &chart, &ticks)?;
        let g = self.groups.len() as f64;
        let step = GROUP_SPAN / g;
        let cap = (0.15 * step).min(0.05);
        let mut labelled = false;
        for (gi, (name, means, errs)) in self.groups.iter().enumerate() {
            let colour = palette(gi);
            let line = colour.stroke_width(2);
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
            chart
                .draw_series(bars.into_iter().map(|b| PathElement::new(b, line)))
                .map_err(de)?;
            let anno = chart
                .draw_series(dots.iter().map(|&p| Circle::new(p, 6, colour.filled())))
                .map_err(de)?;
            if !name.is_empty() && !dots.is_empty() {
                anno.label(name.as_str())
                    .legend(dot_marker(colour.filled()));
                labelled = true;
            }
        }
        draw_legend(&mut chart, labelled, SeriesLabelPosition::UpperRight)
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
