//! The co2 study's section (`co2:`): its schema, its validated settings and their check.

use serde::{Deserialize, Serialize};

use super::raw::RawRun;
use super::{finite_in, positive, Checker, ConfigError, DataSource, StudyConfig};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawCo2 {
    /// The far point whose predictive mean and sd go in the table.
    pub x_star: f64,
    /// Passes of the Fig. 3 comparison (T small).
    #[serde(default = "default_small")]
    pub small_samples: i64,
    /// Half-width of the drawn band in sd, per activation (the paper draws TanH at 8).
    #[serde(default)]
    pub band_sd: Option<RawBandSd>,
    /// Also fit the GP baseline (the paper's report only).
    #[serde(default)]
    pub gp: Option<bool>,
    /// What the report draws: the paper's figures, or sd against x per activation.
    #[serde(default)]
    pub report: Option<Co2Report>,
    /// Predictive sd "near the data" is averaged over training inputs with x >= this.
    #[serde(default)]
    pub near_from: Option<f64>,
    /// Consecutive training points per window of the fit check.
    #[serde(default = "default_fit_window")]
    pub fit_window: i64,
}

fn default_fit_window() -> i64 {
    12
}

fn default_small() -> i64 {
    10
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawBandSd {
    pub relu: f64,
    pub tanh: f64,
}

/// What a co2 experiment reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Co2Report {
    /// Fig. 2 and 3: one MC dropout run per activation, standard dropout and the GP.
    Paper,
    /// A table of every run and one figure of predictive sd against x per activation, one line
    /// per run (a dropout-rate comparison).
    SdCurves,
}

/// CO2 study settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Co2Config {
    /// Optimiser steps (`trainer.iterations`; the study counts steps, not epochs).
    pub iterations: usize,
    /// T, the MC passes per input (`predict.samples`).
    pub samples: usize,
    pub x_star: f64,
    pub small_samples: usize,
    pub band_sd_relu: f64,
    pub band_sd_tanh: f64,
    /// Fit the GP baseline (only with [`Co2Report::Paper`]).
    pub gp: bool,
    pub report: Co2Report,
    pub near_from: f64,
    /// Consecutive training points per window of the fit check (>= 3).
    pub fit_window: usize,
}

/// Checks the co2 study's settings, once: the training length in steps, T, the `co2:` section,
/// and that a table is not split. A sweep (several runs per variant) cannot be drawn as the
/// paper's figures.
pub(crate) fn check(
    c: &Checker,
    raw: &RawRun,
    data: &DataSource,
) -> Result<StudyConfig, ConfigError> {
    let swept = c.swept;
    let (src, origin) = (c.src, c.origin);
    let iterations = c.iterations_only(
        &raw.trainer,
        "the co2 study counts its training in steps: give trainer.iterations instead of \
         trainer.epochs",
    )?;
    let samples = c.samples(raw)?;
    let Some(s) = &raw.co2 else {
        return Err(src.error(
            "co2",
            "the co2 study needs a `co2:` section (x_star, ...)",
            None,
        ));
    };
    let pos = |key: &str, v: f64| finite_in(src, key, v, v > 0.0, "a value > 0", origin);
    let band = s.band_sd.clone().unwrap_or(RawBandSd {
        relu: 2.0,
        tanh: 8.0,
    });
    let report = match (s.report, swept) {
        (Some(Co2Report::Paper), true) => {
            return Err(src.error(
                "co2.report",
                "`paper` draws one run per activation, but the sweep gives several: use \
                 `sd_curves`, or remove the sweep",
                origin("co2.report"),
            ))
        }
        (Some(r), _) => r,
        (None, true) => Co2Report::SdCurves,
        (None, false) => Co2Report::Paper,
    };
    let gp = match (s.gp, report) {
        (Some(true), Co2Report::SdCurves) => {
            return Err(src.error(
                "co2.gp",
                "the GP is drawn in the paper's figure only, and this experiment reports sd \
                 curves (co2.report: sd_curves, the default with a sweep): remove co2.gp",
                origin("co2.gp"),
            ))
        }
        (gp, Co2Report::Paper) => gp.unwrap_or(true),
        (_, Co2Report::SdCurves) => false,
    };
    let config = Co2Config {
        iterations,
        samples,
        x_star: finite_in(src, "co2.x_star", s.x_star, true, "a finite number", origin)?,
        small_samples: positive(src, "co2.small_samples", s.small_samples, origin)?,
        band_sd_relu: pos("co2.band_sd.relu", band.relu)?,
        band_sd_tanh: pos("co2.band_sd.tanh", band.tanh)?,
        gp,
        report,
        near_from: s.near_from.unwrap_or(f64::NEG_INFINITY),
        fit_window: match s.fit_window {
            w @ 3.. => w as usize,
            w => {
                return Err(src.error(
                    "co2.fit_window",
                    format!("{w} is too small: give at least 3 consecutive points"),
                    origin("co2.fit_window"),
                ))
            }
        },
    };
    if matches!(data, DataSource::Table(_)) && raw.data.split.is_some() {
        return Err(src.error(
            "data.split",
            "the co2 study fits every row of the table: remove data.split",
            origin("data.split"),
        ));
    }
    Ok(StudyConfig::Co2(config))
}
