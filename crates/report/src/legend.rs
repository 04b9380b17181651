//! Where a figure's legend goes, so that it never covers plotted data.
//!
//! The rule ([`place_legend`]): the legend box, sized from its labels ([`legend_size`]), goes in
//! the first corner of the plotting area, in the figure's order of preference, that no plotted
//! element comes within [`GAP`] pixels of ([`legend_corner`]). When every corner is taken, the
//! y axis is extended above the data by the least amount that frees an upper corner (headroom),
//! and the legend sits there, above everything drawn.
//!
//! Figures describe what they draw as [`Mark`]s in data coordinates; a [`Frame`] maps them to
//! pixels the way plotters does. Apart from [`legend_size`], which measures text, everything
//! here is pure pixel geometry.

use std::ops::Range;

use plotters::element::MultiLineText;
use plotters::style::{IntoFont, TextStyle};

use crate::style::{FONT, LEGEND_PX};

/// Distance in pixels from the plotting area's edges to the legend box (plotters' own inset).
pub(crate) const INSET: f64 = 5.0;
/// Least distance in pixels between the legend box and any plotted element.
pub(crate) const GAP: f64 = 4.0;
/// Padding in pixels inside the legend box, around the entries.
pub(crate) const LEGEND_MARGIN: u32 = 12;
/// Width in pixels reserved in each entry for its marker (plotters' default).
pub(crate) const LEGEND_SWATCH: u32 = 30;

/// A rectangle in backend pixels, y downwards.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rect {
    pub x0: f64,
    pub y0: f64,
    pub x1: f64,
    pub y1: f64,
}

impl Rect {
    /// This rectangle widened by `d` on every side.
    pub(crate) fn grow(self, d: f64) -> Rect {
        Rect {
            x0: self.x0 - d,
            y0: self.y0 - d,
            x1: self.x1 + d,
            y1: self.y1 + d,
        }
    }

    fn contains(&self, (x, y): (f64, f64)) -> bool {
        (self.x0..=self.x1).contains(&x) && (self.y0..=self.y1).contains(&y)
    }

    fn centre(&self) -> (f64, f64) {
        (0.5 * (self.x0 + self.x1), 0.5 * (self.y0 + self.y1))
    }

    /// Whether the segment from `a` to `b` has a point in this rectangle (Liang-Barsky clipping).
    fn meets_segment(&self, a: (f64, f64), b: (f64, f64)) -> bool {
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let (mut t0, mut t1) = (0.0_f64, 1.0_f64);
        let sides = [
            (-dx, a.0 - self.x0),
            (dx, self.x1 - a.0),
            (-dy, a.1 - self.y0),
            (dy, self.y1 - a.1),
        ];
        for (p, q) in sides {
            if p == 0.0 {
                if q < 0.0 {
                    return false;
                }
            } else {
                let t = q / p;
                if p < 0.0 {
                    t0 = t0.max(t);
                } else {
                    t1 = t1.min(t);
                }
                if t0 > t1 {
                    return false;
                }
            }
        }
        true
    }
}

/// One plotted element, in data coordinates or (after [`Frame::to_px`]) in pixels.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Mark {
    /// A marker of radius `r` pixels centred on `at`.
    Dot { at: (f64, f64), r: f64 },
    /// A polyline (or a single point) stroked `2 w` pixels wide.
    Path { pts: Vec<(f64, f64)>, w: f64 },
    /// A filled polygon, closed implicitly.
    Area { pts: Vec<(f64, f64)> },
}

impl Mark {
    /// How far the mark reaches beyond its points, in pixels.
    fn reach(&self) -> f64 {
        match self {
            Mark::Dot { r, .. } => *r,
            Mark::Path { w, .. } => *w,
            Mark::Area { .. } => 0.0,
        }
    }

    /// The same mark with every point passed through `f`.
    fn map(&self, f: impl Fn((f64, f64)) -> (f64, f64)) -> Mark {
        match self {
            Mark::Dot { at, r } => Mark::Dot { at: f(*at), r: *r },
            Mark::Path { pts, w } => Mark::Path {
                pts: pts.iter().map(|&p| f(p)).collect(),
                w: *w,
            },
            Mark::Area { pts } => Mark::Area {
                pts: pts.iter().map(|&p| f(p)).collect(),
            },
        }
    }

    /// Whether the mark, in pixels, has a point in `rect`.
    pub(crate) fn touches(&self, rect: &Rect) -> bool {
        match self {
            // The square around the dot: never misses, at worst a corner too careful.
            Mark::Dot { at, r } => rect.grow(*r).contains(*at),
            Mark::Path { pts, w } => {
                let grown = rect.grow(*w);
                match pts.as_slice() {
                    [] => false,
                    [p] => grown.contains(*p),
                    _ => pts.windows(2).any(|s| grown.meets_segment(s[0], s[1])),
                }
            }
            Mark::Area { pts } => {
                let n = pts.len();
                let edge_in = (0..n).any(|i| rect.meets_segment(pts[i], pts[(i + 1) % n]));
                edge_in || (n > 2 && inside_polygon(rect.centre(), pts))
            }
        }
    }
}

/// Even-odd point-in-polygon test.
fn inside_polygon((x, y): (f64, f64), pts: &[(f64, f64)]) -> bool {
    let mut inside = false;
    let mut j = pts.len() - 1;
    for i in 0..pts.len() {
        let ((xi, yi), (xj, yj)) = (pts[i], pts[j]);
        if (yi > y) != (yj > y) && x < xi + (y - yi) * (xj - xi) / (yj - yi) {
            inside = !inside;
        }
        j = i;
    }
    inside
}

/// A legend position inside the plotting area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Corner {
    UpperLeft,
    UpperMiddle,
    UpperRight,
    LowerLeft,
    LowerMiddle,
    LowerRight,
}

impl Corner {
    fn is_upper(self) -> bool {
        matches!(
            self,
            Corner::UpperLeft | Corner::UpperMiddle | Corner::UpperRight
        )
    }
}

/// Order of preference for figures whose legend has always sat at the upper left.
pub(crate) const LEFT_FIRST: [Corner; 6] = [
    Corner::UpperLeft,
    Corner::UpperRight,
    Corner::LowerLeft,
    Corner::LowerRight,
    Corner::UpperMiddle,
    Corner::LowerMiddle,
];

/// Order of preference for figures whose legend has always sat at the upper right.
pub(crate) const RIGHT_FIRST: [Corner; 6] = [
    Corner::UpperRight,
    Corner::UpperLeft,
    Corner::LowerRight,
    Corner::LowerLeft,
    Corner::UpperMiddle,
    Corner::LowerMiddle,
];

/// The legend box of `size` (pixels) at `corner` of the plotting area `plot`, in whole pixels.
pub(crate) fn box_at(plot: Rect, size: (f64, f64), corner: Corner) -> Rect {
    let (w, h) = size;
    let (pw, ph) = (plot.x1 - plot.x0, plot.y1 - plot.y0);
    use Corner::*;
    let dx = match corner {
        UpperLeft | LowerLeft => INSET,
        UpperMiddle | LowerMiddle => ((pw - w) / 2.0).floor(),
        UpperRight | LowerRight => pw - w - INSET,
    };
    let dy = if corner.is_upper() {
        INSET
    } else {
        ph - h - INSET
    };
    Rect {
        x0: plot.x0 + dx,
        y0: plot.y0 + dy,
        x1: plot.x0 + dx + w,
        y1: plot.y0 + dy + h,
    }
}

/// Whether no mark (in pixels) comes within [`GAP`] of the box `b`.
pub(crate) fn is_clear(b: Rect, occupied: &[Mark]) -> bool {
    let guarded = b.grow(GAP);
    !occupied.iter().any(|m| m.touches(&guarded))
}

/// The first corner in `order` where a legend of `size` pixels keeps clear of every mark in
/// `occupied` (pixels); `None` when every one is taken.
pub(crate) fn legend_corner(
    plot: Rect,
    size: (f64, f64),
    occupied: &[Mark],
    order: &[Corner],
) -> Option<Corner> {
    order
        .iter()
        .copied()
        .find(|&c| is_clear(box_at(plot, size, c), occupied))
}

/// How data coordinates become pixels: plotters' mapping of `x` and `y` (linear, or
/// logarithmic in y) onto the plotting area `plot`, y upwards.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Frame {
    /// The plotting area in backend pixels (right and bottom edges exclusive, as plotters').
    pub plot: Rect,
    pub x: Range<f64>,
    pub y: Range<f64>,
    pub log_y: bool,
}

impl Frame {
    /// Position of `v` along the y axis: 0 at the bottom, 1 at the top.
    fn y_frac(&self, v: f64) -> f64 {
        let t = |v: f64| if self.log_y { v.ln() } else { v };
        let span = t(self.y.end) - t(self.y.start);
        if span == 0.0 {
            0.5
        } else {
            (t(v) - t(self.y.start)) / span
        }
    }

    /// Pixel of the data point `(x, y)`.
    pub(crate) fn to_px(&self, (x, y): (f64, f64)) -> (f64, f64) {
        let span = self.x.end - self.x.start;
        let fx = if span == 0.0 {
            0.5
        } else {
            (x - self.x.start) / span
        };
        let (left, right) = (self.plot.x0, self.plot.x1 - 1.0);
        let (bottom, top) = (self.plot.y1 - 1.0, self.plot.y0);
        (
            left + fx * (right - left),
            bottom + self.y_frac(y) * (top - bottom),
        )
    }

    /// Every mark in pixels.
    pub(crate) fn marks_px(&self, marks: &[Mark]) -> Vec<Mark> {
        marks.iter().map(|m| m.map(|p| self.to_px(p))).collect()
    }

    /// This frame with the top of the y axis raised so that the current y range fills the
    /// lower `s` (0 < s <= 1) of the plotting area's height.
    pub(crate) fn raised(&self, s: f64) -> Frame {
        let y = &self.y;
        let top = if self.log_y {
            (y.start.ln() + (y.end.ln() - y.start.ln()) / s).exp()
        } else {
            y.start + (y.end - y.start) / s
        };
        Frame {
            y: y.start..top,
            ..self.clone()
        }
    }
}

/// Where the legend goes and what y axis makes room for it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Placement {
    pub corner: Corner,
    /// The legend box in backend pixels.
    pub rect: Rect,
    /// The y axis to draw: the frame's y range, or that range with headroom above it.
    pub y: Range<f64>,
}

/// Places a legend of `size` pixels among `marks` (data coordinates of `frame`).
///
/// The first corner in `order` that is clear wins. If none is, each upper corner in `order`
/// is cleared by raising the top of the y axis, as little as needed (found by bisection to
/// 1/1000 of the height), and the corner needing the least wins (ties: earlier in `order`).
/// Only a legend taller than the plotting area can still overlap data; it then goes in the
/// first upper corner above data squeezed into the bottom 5 % of the height.
pub(crate) fn place_legend(
    frame: &Frame,
    size: (f64, f64),
    marks: &[Mark],
    order: &[Corner],
) -> Placement {
    let at = |corner: Corner, y: Range<f64>| Placement {
        corner,
        rect: box_at(frame.plot, size, corner),
        y,
    };
    if let Some(c) = legend_corner(frame.plot, size, &frame.marks_px(marks), order) {
        return at(c, frame.y.clone());
    }
    let height = frame.plot.y1 - 1.0 - frame.plot.y0;
    let reach = marks.iter().map(Mark::reach).fold(0.0, f64::max);
    // Data squeezed under the box of an upper corner, with the gap and a pixel of rounding.
    let below_box = INSET + size.1 + GAP + reach + 1.0;
    let s_min = ((height - below_box) / height).clamp(0.05, 1.0);
    let clear_at = |c: Corner, s: f64| {
        let raised = frame.raised(s);
        legend_corner(frame.plot, size, &raised.marks_px(marks), &[c]).is_some()
    };
    let mut best: Option<(f64, Corner)> = None;
    for c in order.iter().copied().filter(|c| c.is_upper()) {
        if !clear_at(c, s_min) {
            continue;
        }
        // Largest s (least headroom) that keeps `c` clear.
        let (mut lo, mut hi) = (s_min, 1.0);
        while hi - lo > 1e-3 {
            let mid = 0.5 * (lo + hi);
            if clear_at(c, mid) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        if best.is_none_or(|(s, _)| lo > s + 1e-3) {
            best = Some((lo, c));
        }
    }
    let (s, corner) = best.unwrap_or_else(|| {
        let first_upper = order.iter().copied().find(|c| c.is_upper());
        (s_min, first_upper.unwrap_or(Corner::UpperLeft))
    });
    at(corner, frame.raised(s).y)
}

/// Size in pixels of the legend box plotters draws for `labels` (one entry each), measured
/// the way `SeriesLabelStyle::draw` does with [`LEGEND_MARGIN`] and [`LEGEND_SWATCH`].
pub(crate) fn legend_size(labels: &[String]) -> Result<(f64, f64), String> {
    let style = TextStyle::from((FONT, LEGEND_PX).into_font());
    let mut text = MultiLineText::<(i32, i32), &str>::new((0, 0), &style);
    for l in labels {
        text.push_line(l.as_str());
    }
    let (w, h) = text.estimate_dimension().map_err(|e| e.to_string())?;
    let m = 2 * LEGEND_MARGIN as i32;
    Ok((f64::from(w + LEGEND_SWATCH as i32 + m), f64::from(h + m)))
}

/// What the figures decided, kept per thread so tests can check it after drawing.
#[cfg(test)]
pub(crate) mod record {
    use std::cell::{Cell, RefCell};

    use super::{Frame, Mark, Placement};

    /// One chart's legend decision.
    #[derive(Debug, Clone, PartialEq)]
    pub(crate) struct Decision {
        /// The frame of the data range, before any headroom.
        pub frame: Frame,
        pub size: (f64, f64),
        /// What the chart draws, in data coordinates.
        pub marks: Vec<Mark>,
        pub placement: Placement,
    }

    /// A bitmap of a figure drawn without its legend: RGB rows, and the size.
    pub(crate) type Bitmap = (Vec<u8>, (u32, u32));

    thread_local! {
        static DECISIONS: RefCell<Vec<Decision>> = const { RefCell::new(Vec::new()) };
        static CAPTURE: Cell<bool> = const { Cell::new(false) };
        static SKIP_LEGEND: Cell<bool> = const { Cell::new(false) };
        static BITMAPS: RefCell<Vec<Bitmap>> = const { RefCell::new(Vec::new()) };
    }

    pub(crate) fn push(d: Decision) {
        DECISIONS.with(|v| v.borrow_mut().push(d));
    }

    /// The decisions made on this thread since the last call.
    pub(crate) fn take() -> Vec<Decision> {
        DECISIONS.with(|v| std::mem::take(&mut *v.borrow_mut()))
    }

    /// Makes every figure rendered on this thread also draw itself, without its legend, into
    /// a bitmap (see [`take_bitmaps`]).
    pub(crate) fn capture_bitmaps(on: bool) {
        CAPTURE.with(|c| c.set(on));
    }

    pub(crate) fn capturing() -> bool {
        CAPTURE.with(Cell::get)
    }

    pub(crate) fn set_skip_legend(on: bool) {
        SKIP_LEGEND.with(|c| c.set(on));
    }

    pub(crate) fn skip_legend() -> bool {
        SKIP_LEGEND.with(Cell::get)
    }

    pub(crate) fn push_bitmap(b: Bitmap) {
        BITMAPS.with(|v| v.borrow_mut().push(b));
    }

    pub(crate) fn take_bitmaps() -> Vec<Bitmap> {
        BITMAPS.with(|v| std::mem::take(&mut *v.borrow_mut()))
    }
}

#[cfg(test)]
mod figure_tests;

#[cfg(test)]
mod tests {
    use super::*;

    /// A 500 x 400 plotting area at (100, 50).
    const PLOT: Rect = Rect {
        x0: 100.0,
        y0: 50.0,
        x1: 600.0,
        y1: 450.0,
    };
    const SIZE: (f64, f64) = (160.0, 90.0);

    fn frame() -> Frame {
        Frame {
            plot: PLOT,
            x: 0.0..1.0,
            y: 0.0..1.0,
            log_y: false,
        }
    }

    /// A grid of dots filling the part of the unit square `x0..x1, y0..y1`.
    fn cloud(x: Range<f64>, y: Range<f64>) -> Vec<Mark> {
        let mut out = Vec::new();
        for i in 0..=20 {
            for j in 0..=20 {
                let (u, v) = (f64::from(i) / 20.0, f64::from(j) / 20.0);
                out.push(Mark::Dot {
                    at: (
                        x.start + u * (x.end - x.start),
                        y.start + v * (y.end - y.start),
                    ),
                    r: 3.0,
                });
            }
        }
        out
    }

    #[test]
    fn empty_plot_takes_the_first_corner() {
        assert_eq!(
            legend_corner(PLOT, SIZE, &[], &LEFT_FIRST),
            Some(Corner::UpperLeft)
        );
        assert_eq!(
            legend_corner(PLOT, SIZE, &[], &RIGHT_FIRST),
            Some(Corner::UpperRight)
        );
        let p = place_legend(&frame(), SIZE, &[], &LEFT_FIRST);
        assert_eq!(p.y, 0.0..1.0);
        assert_eq!(
            p.rect,
            Rect {
                x0: 105.0,
                y0: 55.0,
                x1: 265.0,
                y1: 145.0
            }
        );
    }

    #[test]
    fn data_in_the_upper_left_moves_the_legend() {
        let f = frame();
        let marks = cloud(0.0..0.4, 0.6..1.0);
        let px = f.marks_px(&marks);
        // The cloud covers the upper-left box...
        assert!(!is_clear(box_at(PLOT, SIZE, Corner::UpperLeft), &px));
        // ...so the legend goes to the next corner, the axis untouched.
        assert_eq!(
            legend_corner(PLOT, SIZE, &px, &LEFT_FIRST),
            Some(Corner::UpperRight)
        );
        let p = place_legend(&f, SIZE, &marks, &LEFT_FIRST);
        assert_eq!((p.corner, p.y), (Corner::UpperRight, 0.0..1.0));
        assert!(is_clear(p.rect, &px));
    }

    #[test]
    fn corners_are_tried_in_order() {
        let f = frame();
        // Both upper corners taken: the lower left is next for a left-first figure.
        let mut marks = cloud(0.0..0.3, 0.6..1.0);
        marks.extend(cloud(0.7..1.0, 0.6..1.0));
        let px = f.marks_px(&marks);
        assert_eq!(
            legend_corner(PLOT, SIZE, &px, &LEFT_FIRST),
            Some(Corner::LowerLeft)
        );
        assert_eq!(
            legend_corner(PLOT, SIZE, &px, &RIGHT_FIRST),
            Some(Corner::LowerRight)
        );
        // All four corners taken, the middle of the top free.
        marks.extend(cloud(0.0..1.0, 0.0..0.4));
        let px = f.marks_px(&marks);
        assert_eq!(
            legend_corner(PLOT, SIZE, &px, &LEFT_FIRST),
            Some(Corner::UpperMiddle)
        );
    }

    #[test]
    fn data_everywhere_gets_headroom() {
        let f = frame();
        let marks = cloud(0.0..1.0, 0.0..1.0);
        assert_eq!(
            legend_corner(PLOT, SIZE, &f.marks_px(&marks), &LEFT_FIRST),
            None
        );
        let p = place_legend(&f, SIZE, &marks, &LEFT_FIRST);
        assert_eq!(p.corner, Corner::UpperLeft);
        assert_eq!(p.y.start, 0.0);
        assert!(p.y.end > 1.0, "{:?}", p.y);
        // In the raised frame the box is clear of every mark...
        let raised = Frame {
            y: p.y.clone(),
            ..f.clone()
        };
        assert!(is_clear(p.rect, &raised.marks_px(&marks)));
        // ...and the headroom is about what the box needs, not more: the top row of dots sits
        // just under it.
        let top_dot = raised.to_px((0.0, 1.0)).1;
        let under = top_dot - 3.0 - p.rect.y1;
        assert!((GAP..GAP + 2.0).contains(&under), "{under}");
    }

    #[test]
    fn headroom_goes_to_the_upper_corner_needing_least() {
        // Everything is taken; the data reach higher on the left than on the right.
        let f = frame();
        let mut marks = cloud(0.0..0.5, 0.0..1.0);
        marks.extend(cloud(0.5..1.0, 0.0..0.8));
        let p = place_legend(&f, SIZE, &marks, &LEFT_FIRST);
        assert_eq!(p.corner, Corner::UpperRight);
        let raised = Frame {
            y: p.y.clone(),
            ..f.clone()
        };
        assert!(is_clear(p.rect, &raised.marks_px(&marks)));
        // Less headroom than the left would have needed.
        let left = place_legend(&f, SIZE, &marks, &[Corner::UpperLeft]);
        assert!(p.y.end < left.y.end, "{:?} vs {:?}", p.y, left.y);
    }

    #[test]
    fn headroom_on_a_log_axis_is_multiplicative() {
        let f = Frame {
            y: 0.01..100.0,
            log_y: true,
            ..frame()
        };
        // A line along the top of the range, from left to right, and one along the bottom.
        let marks = vec![
            Mark::Path {
                pts: vec![(0.0, 100.0), (1.0, 100.0)],
                w: 1.5,
            },
            Mark::Path {
                pts: vec![(0.0, 0.01), (1.0, 0.01)],
                w: 1.5,
            },
        ];
        let p = place_legend(&f, SIZE, &marks, &LEFT_FIRST);
        assert_eq!(p.y.start, 0.01);
        assert!(p.y.end > 100.0);
        let raised = Frame {
            y: p.y.clone(),
            ..f
        };
        assert!(is_clear(p.rect, &raised.marks_px(&marks)));
        // The raised frame keeps the old range in place at the bottom.
        assert!((raised.to_px((0.5, 0.01)).1 - (PLOT.y1 - 1.0)).abs() < 1e-9);
    }

    #[test]
    fn segments_and_areas_count_between_their_points() {
        let b = box_at(PLOT, SIZE, Corner::UpperLeft);
        // A line straight across the box, both ends far outside it.
        let across = Mark::Path {
            pts: vec![(0.0, 100.0), (1000.0, 100.0)],
            w: 1.0,
        };
        assert!(!is_clear(b, &[across]));
        // A diagonal passing next to the box, beyond the gap: clear.
        let beside = Mark::Path {
            pts: vec![(b.x1 + GAP + 3.0, 0.0), (b.x1 + GAP + 3.0, 1000.0)],
            w: 1.0,
        };
        assert!(is_clear(b, &[beside]));
        // A polygon that contains the whole box: no edge inside, yet it covers it.
        let around = Mark::Area {
            pts: vec![(0.0, 0.0), (1000.0, 0.0), (1000.0, 1000.0), (0.0, 1000.0)],
        };
        assert!(!is_clear(b, &[around]));
        // A polygon entirely inside the box.
        let (cx, cy) = b.centre();
        let within = Mark::Area {
            pts: vec![(cx, cy), (cx + 2.0, cy), (cx, cy + 2.0)],
        };
        assert!(!is_clear(b, &[within]));
        // A dot whose radius reaches into the gap.
        let dot = Mark::Dot {
            at: (b.x1 + GAP + 2.0, cy),
            r: 3.0,
        };
        assert!(!is_clear(b, &[dot]));
    }

    #[test]
    fn frame_maps_like_plotters() {
        // Plotters maps the x range onto pixels x0..=x1-1 and the y range onto y1-1..=y0.
        let f = frame();
        assert_eq!(f.to_px((0.0, 0.0)), (100.0, 449.0));
        assert_eq!(f.to_px((1.0, 1.0)), (599.0, 50.0));
        let r = f.raised(0.5);
        assert_eq!(r.y, 0.0..2.0);
        assert_eq!(r.to_px((1.0, 1.0)).1, 449.0 - 0.5 * 399.0);
    }
}
