//! Shared look: the embedded font, colour palette and font sizes.

use std::sync::OnceLock;

use plotters::style::{FontStyle, RGBColor};

use crate::error::{ReportError, Result};

/// DejaVu Sans, embedded so figures render on machines without system fonts.
static DEJAVU_SANS: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Font family name used by every text element of every figure.
pub const FONT: &str = "sans-serif";

/// Figure caption size in pixels.
pub const TITLE_PX: u32 = 26;
/// Axis description size in pixels.
pub const AXIS_LABEL_PX: u32 = 20;
/// Tick label size in pixels.
pub const TICK_PX: u32 = 16;
/// Legend text size in pixels.
pub const LEGEND_PX: u32 = 16;

/// Fixed categorical palette (matplotlib "tab10"), cycled by series index.
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Palette colour for series `i` (wraps around).
pub fn palette(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Linear mix of `c` with white; `t = 1` gives `c`, `t = 0` white.
pub fn tint(c: RGBColor, t: f64) -> RGBColor {
    let mix = |v: u8| -> u8 { (255.0 - (255.0 - f64::from(v)) * t.clamp(0.0, 1.0)).round() as u8 };
    RGBColor(mix(c.0), mix(c.1), mix(c.2))
}

/// Registers the embedded font with plotters once per process.
///
/// With the `ab_glyph` feature plotters only knows registered fonts, so every
/// generic family name a chart may ask for is mapped to DejaVu Sans.
pub fn ensure_font() -> Result<()> {
    static REGISTERED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            for family in [FONT, "serif", "monospace", "DejaVu Sans"] {
                plotters::style::register_font(family, FontStyle::Normal, DEJAVU_SANS)
                    .map_err(|_| format!("DejaVuSans.ttf is not a valid font (family {family})"))?;
            }
            Ok(())
        })
        .clone()
        .map_err(ReportError::Font)
}
