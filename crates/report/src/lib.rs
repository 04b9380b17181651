//! Figures (PNG + SVG via plotters) and tables (CSV, Parquet, Markdown) for MC-dropout experiments.
//!
//! Figures render text with an embedded DejaVu Sans font, so no system fonts are needed.

mod chart;
mod error;
mod legend;
mod plot;
mod style;
mod table;

pub use error::{ReportError, Result};
pub use plot::{
    band_figure, curve_figure, errorbar_figure, line_figure, reliability_figure, scatter_figure,
    scatter_figure_with_thumbnails, spread_figure, BandPanel, ErrorGroup, ReliabilityBin,
    ScatterGroup, Series, SpreadSeries, Thumbnail,
};
pub use style::PALETTE;
pub use table::{format_sig4, Column, Table, Values};
