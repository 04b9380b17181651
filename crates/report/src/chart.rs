//! Chart scaffolding shared by the figures: layout (caption, axes, the legend's place), the
//! legend itself, legend markers, custom ticks and reference lines.

use std::ops::Range;

use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::legend::{
    legend_size, place_legend, Corner, Frame, Mark, Placement, Rect, LEGEND_MARGIN, LEGEND_SWATCH,
};
use crate::style::{AXIS_LABEL_PX, FONT, LEGEND_PX, TICK_PX, TITLE_PX};

/// Pixel position on the backend (plotters' `BackendCoord`).
type BackendCoord = (i32, i32);

/// Error text from a backend-generic plotters failure.
pub(crate) type DrawResult<T> = std::result::Result<T, String>;

pub(crate) fn de<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> String {
    e.to_string()
}

/// Connected finite points in data coordinates.
pub(crate) type Polyline = Vec<(f64, f64)>;

/// Linear chart type shared by most figures.
pub(crate) type LinChart<'a, DB> =
    ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Margin around every chart, in pixels.
const CHART_MARGIN: u32 = 16;
/// Height in pixels under the plotting area for x tick labels and the x axis description.
const X_LABEL_AREA: u32 = 64;
/// Width in pixels left of the plotting area for y tick labels and the y axis description.
pub(crate) const Y_LABEL_AREA: u32 = 76;

/// A chart before it is drawn: axes, and what its plotting area will show, so that the legend
/// can be placed clear of the data (see [`crate::legend`]).
pub(crate) struct ChartSpec<'s> {
    pub(crate) title: &'s str,
    pub(crate) x_label: &'s str,
    pub(crate) y_label: &'s str,
    pub(crate) x: Range<f64>,
    /// The data's y range; the axis drawn may extend above it to make room for the legend.
    pub(crate) y: Range<f64>,
    pub(crate) log_y: bool,
    /// Width of the area for y tick labels, in pixels.
    pub(crate) y_label_area: u32,
    /// Whether plotters writes the x tick labels (not when the figure writes its own).
    pub(crate) x_ticks: bool,
    /// Legend entries, in the order the series are labelled; empty: no legend.
    pub(crate) labels: Vec<String>,
    /// Everything drawn in the plotting area, in data coordinates.
    pub(crate) marks: Vec<Mark>,
    /// Legend positions, most preferred first.
    pub(crate) order: [Corner; 6],
}

/// A chart whose caption is drawn and whose legend is placed.
pub(crate) struct Layout<DB: DrawingBackend> {
    /// The area below the caption, for axes and plotting area.
    pub(crate) inner: DrawingArea<DB, Shift>,
    /// The y axis to draw: the data's range, raised when the legend needs headroom.
    pub(crate) y: Range<f64>,
    pub(crate) legend: Option<Placement>,
}

/// Where `ChartBuilder` puts the plotting area in `inner` (the area inside the margin and below
/// the caption): right of the y label area, above the x label area.
fn plot_rect<DB: DrawingBackend>(inner: &DrawingArea<DB, Shift>, spec: &ChartSpec<'_>) -> Rect {
    let (xs, ys) = inner.get_pixel_range();
    Rect {
        x0: f64::from(xs.start + spec.y_label_area as i32),
        y0: f64::from(ys.start),
        x1: f64::from(xs.end),
        y1: f64::from(ys.end - X_LABEL_AREA as i32),
    }
}

/// Draws the caption of `spec` on `area` and places its legend.
///
/// The plotting area is computed ahead of `ChartBuilder` (same margin, caption and label
/// areas), because the y axis must be final before the chart exists.
pub(crate) fn lay_out<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    spec: &ChartSpec<'_>,
) -> DrawResult<Layout<DB>> {
    let m = CHART_MARGIN as i32;
    let inner = area
        .margin(m, m, m, m)
        .titled(spec.title, (FONT, TITLE_PX))
        .map_err(de)?;
    if spec.labels.is_empty() {
        return Ok(Layout {
            inner,
            y: spec.y.clone(),
            legend: None,
        });
    }
    let frame = Frame {
        plot: plot_rect(&inner, spec),
        x: spec.x.clone(),
        y: spec.y.clone(),
        log_y: spec.log_y,
    };
    let size = legend_size(&spec.labels)?;
    let placement = place_legend(&frame, size, &spec.marks, &spec.order);
    #[cfg(test)]
    crate::legend::record::push(crate::legend::record::Decision {
        frame,
        size,
        marks: spec.marks.clone(),
        placement: placement.clone(),
    });
    Ok(Layout {
        inner,
        y: placement.y.clone(),
        legend: Some(placement),
    })
}

/// Builds the chart of `layout` (y axis `y`, linear or log) with label areas and a light grid.
pub(crate) fn build_chart<'a, DB: DrawingBackend, Y>(
    layout: &Layout<DB>,
    spec: &ChartSpec<'_>,
    y: Y,
) -> DrawResult<ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y::CoordDescType>>>
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(&layout.inner)
        .x_label_area_size(X_LABEL_AREA)
        .y_label_area_size(spec.y_label_area)
        .build_cartesian_2d(spec.x.clone(), y)
        .map_err(de)?;
    #[cfg(test)]
    check_layout(&chart, layout, spec);
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(spec.x_label)
        .y_desc(spec.y_label)
        .axis_desc_style((FONT, AXIS_LABEL_PX))
        .label_style((FONT, TICK_PX))
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(TRANSPARENT)
        .x_labels(8)
        .y_labels(8);
    if !spec.x_ticks {
        mesh.x_labels(0);
    }
    mesh.draw().map_err(de)?;
    Ok(chart)
}

/// Tests: the plotting area and the data-to-pixel mapping the legend was placed with are the
/// ones plotters draws with.
#[cfg(test)]
fn check_layout<DB: DrawingBackend, CT: CoordTranslate<From = (f64, f64)>>(
    chart: &ChartContext<'_, DB, CT>,
    layout: &Layout<DB>,
    spec: &ChartSpec<'_>,
) {
    let (xs, ys) = chart.plotting_area().get_pixel_range();
    let drawn = Rect {
        x0: f64::from(xs.start),
        y0: f64::from(ys.start),
        x1: f64::from(xs.end),
        y1: f64::from(ys.end),
    };
    let plot = plot_rect(&layout.inner, spec);
    assert_eq!(drawn, plot, "plotting area differs from the layout");
    let frame = Frame {
        plot,
        x: spec.x.clone(),
        y: layout.y.clone(),
        log_y: spec.log_y,
    };
    let (x, y) = (&spec.x, &layout.y);
    let mid_y = if spec.log_y {
        (y.start * y.end).sqrt()
    } else {
        0.5 * (y.start + y.end)
    };
    for p in [
        (x.start, y.start),
        (x.end, y.end),
        (0.5 * (x.start + x.end), mid_y),
    ] {
        let (px, py) = chart.as_coord_spec().translate(&p);
        let (fx, fy) = frame.to_px(p);
        assert!(
            (f64::from(px) - fx).abs() <= 1.0 && (f64::from(py) - fy).abs() <= 1.0,
            "{p:?}: plotters ({px}, {py}), frame ({fx}, {fy})"
        );
    }
}

/// Lays out and builds a linear chart.
pub(crate) fn lin_chart<'a, DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    spec: &ChartSpec<'_>,
) -> DrawResult<(LinChart<'a, DB>, Option<Placement>)> {
    let layout = lay_out(area, spec)?;
    let chart = build_chart(&layout, spec, layout.y.clone())?;
    Ok((chart, layout.legend))
}

/// Draws the legend in the box `placement` chose (nothing without one).
pub(crate) fn draw_legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    placement: Option<&Placement>,
) -> DrawResult<()> {
    let Some(p) = placement else {
        return Ok(());
    };
    #[cfg(test)]
    if crate::legend::record::skip_legend() {
        return Ok(());
    }
    // Series labels are positioned relative to the plotting area.
    let (ox, oy) = chart.plotting_area().get_base_pixel();
    let at = SeriesLabelPosition::Coordinate(
        p.rect.x0.round() as i32 - ox,
        p.rect.y0.round() as i32 - oy,
    );
    chart
        .configure_series_labels()
        .position(at)
        .legend_area_size(LEGEND_SWATCH)
        .margin(LEGEND_MARGIN)
        .label_font((FONT, LEGEND_PX))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.5))
        .draw()
        .map_err(de)
}

/// Writes custom x tick labels below the plotting area of a linear chart.
pub(crate) fn draw_custom_x_ticks<DB: DrawingBackend>(
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
pub(crate) fn line_marker(style: ShapeStyle) -> impl Fn(BackendCoord) -> PathElement<BackendCoord> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style)
}

/// A short dashed legend marker.
pub(crate) fn dashed_marker(
    style: ShapeStyle,
) -> impl Fn(BackendCoord) -> DashedPathElement<std::vec::IntoIter<BackendCoord>, i32> {
    move |(x, y)| DashedPathElement::new(vec![(x, y), (x + 24, y)], 6, 4, style)
}

/// A filled square legend marker.
pub(crate) fn box_marker(style: ShapeStyle) -> impl Fn(BackendCoord) -> Rectangle<BackendCoord> {
    move |(x, y)| Rectangle::new([(x, y - 7), (x + 24, y + 7)], style)
}

/// A filled circle legend marker.
pub(crate) fn dot_marker(style: ShapeStyle) -> impl Fn(BackendCoord) -> Circle<BackendCoord, i32> {
    move |(x, y)| Circle::new((x + 12, y), 6, style)
}

/// Draws a dashed vertical line across `y` (the data's range, not headroom above it), with a
/// legend entry unless `label` is empty.
pub(crate) fn vline<DB: DrawingBackend, CT: CoordTranslate<From = (f64, f64)>>(
    chart: &mut ChartContext<'_, DB, CT>,
    x: f64,
    y: &Range<f64>,
    style: ShapeStyle,
    label: &str,
) -> DrawResult<()> {
    let anno = chart
        .draw_series(DashedLineSeries::new(
            vec![(x, y.start), (x, y.end)],
            10,
            6,
            style,
        ))
        .map_err(de)?;
    if !label.is_empty() {
        anno.label(label).legend(dashed_marker(style));
    }
    Ok(())
}

/// The mark of a vertical line at `x` across `y`, stroked 2 px wide.
pub(crate) fn vline_mark(x: f64, y: &Range<f64>) -> Mark {
    Mark::Path {
        pts: vec![(x, y.start), (x, y.end)],
        w: 1.0,
    }
}

/// The marks of polylines stroked `width` pixels wide.
pub(crate) fn path_marks<'p>(
    lines: impl IntoIterator<Item = &'p Polyline>,
    width: f64,
) -> Vec<Mark> {
    lines
        .into_iter()
        .map(|l| Mark::Path {
            pts: l.clone(),
            w: 0.5 * width,
        })
        .collect()
}

/// Splits a polyline where it turns back sharply on screen, so each piece is drawn on its own.
///
/// Why: plotters joins the segments of a wide line with miter joins, and at a near-reversal
/// (the sd of noisy MC passes zig-zags from point to point) the miter shoots far beyond both
/// segments: spikes across the axes in the PNG. Pieces meet at the shared point without a join.
pub(crate) fn unspiked<DB, CT>(
    chart: &ChartContext<'_, DB, CT>,
    pts: &[(f64, f64)],
) -> Vec<Polyline>
where
    DB: DrawingBackend,
    CT: CoordTranslate<From = (f64, f64)>,
{
    // A turn sharper than this (between the directions of consecutive segments) starts a
    // new piece: the miter of a join with interior angle theta is w / sin(theta / 2) long, so
    // turns past 120 degrees (interior angle under 60) would stick out more than twice the width.
    const MAX_TURN_COS: f64 = -0.5;
    let px = |p: &(f64, f64)| {
        let (x, y) = chart.as_coord_spec().translate(p);
        (f64::from(x), f64::from(y))
    };
    let mut pieces = Vec::new();
    let mut cur: Polyline = Vec::new();
    let mut last_dir: Option<(f64, f64)> = None;
    for p in pts {
        if let Some(prev) = cur.last() {
            let (a, b) = (px(prev), px(p));
            let (dx, dy) = (b.0 - a.0, b.1 - a.1);
            let len = (dx * dx + dy * dy).sqrt();
            if len > 0.0 {
                let dir = (dx / len, dy / len);
                if let Some(d) = last_dir {
                    if d.0 * dir.0 + d.1 * dir.1 < MAX_TURN_COS {
                        let joint = *prev;
                        pieces.push(std::mem::replace(&mut cur, vec![joint]));
                    }
                }
                last_dir = Some(dir);
            }
        }
        cur.push(*p);
    }
    if !cur.is_empty() {
        pieces.push(cur);
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zigzag_is_cut_at_its_reversals_and_a_gentle_curve_is_not() {
        let mut svg = String::new();
        let root = SVGBackend::with_string(&mut svg, (400, 300)).into_drawing_area();
        let chart = ChartBuilder::on(&root)
            .build_cartesian_2d(0.0..20.0, 0.0..1.0)
            .unwrap();
        // Up and down every point: each interior point is a near-reversal on screen.
        let zigzag: Vec<(f64, f64)> = (0..20).map(|i| (i as f64 * 0.05, (i % 2) as f64)).collect();
        let pieces = unspiked(&chart, &zigzag);
        assert_eq!(pieces.len(), 19, "{pieces:?}");
        // Consecutive pieces share their joint, so nothing is lost.
        for w in pieces.windows(2) {
            assert_eq!(w[0].last(), w[1].first());
        }
        let gentle: Vec<(f64, f64)> = (0..200)
            .map(|i| (i as f64 * 0.1, 0.5 + 0.4 * (i as f64 * 0.1).sin()))
            .collect();
        assert_eq!(unspiked(&chart, &gentle), vec![gentle.clone()]);
        assert!(unspiked(&chart, &[]).is_empty());
    }
}
