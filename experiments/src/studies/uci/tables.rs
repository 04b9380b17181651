//! The uci study's tables and figures: per-method Table 1 next to the published columns, the
//! methods side by side, and each split's test predictions.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use mcd_datasets::uci::SetName;
use mcd_report::{errorbar_figure, Column, Table};

use super::SplitResult;
use crate::output::OutputDir;

const PUBLISHED: &str = include_str!("../../../data/uci_published.csv");
const PUBLISHED_ENSEMBLES: &str = include_str!("../../../data/uci_published_ensembles.csv");

/// Mean and standard error (sample sd / sqrt(n); NaN for one value).
pub(super) fn mean_se(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (mean, f64::NAN);
    }
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

/// One data set's row of the table.
#[derive(Debug, Clone)]
pub(super) struct Summary {
    pub(super) name: SetName,
    pub(super) splits: usize,
    pub(super) rmse: (f64, f64),
    pub(super) ll: (f64, f64),
    pub(super) standard_rmse: (f64, f64),
    pub(super) coverage_95: f64,
    /// Most often chosen (p, tau) and how often.
    pub(super) mode: String,
    pub(super) seconds_per_split: f64,
    pub(super) note: String,
    /// The method's label, and this run's wall time on the data set (seconds; splits read from
    /// the resume cache cost nearly nothing).
    pub(super) method: String,
    pub(super) run_seconds: f64,
}

impl Summary {
    pub(super) fn of(name: SetName, r: &[SplitResult]) -> Self {
        let col = |f: fn(&SplitResult) -> f64| mean_se(&r.iter().map(f).collect::<Vec<_>>());
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for s in r {
            *counts
                .entry(format!("p {} tau {}", s.p, s.tau))
                .or_default() += 1;
        }
        let mode = counts
            .iter()
            .max_by_key(|(_, &c)| c)
            .map(|(k, c)| format!("{k} ({c}/{})", r.len()))
            .unwrap_or_default();
        Self {
            name,
            splits: r.len(),
            rmse: col(|s| s.test_rmse),
            ll: col(|s| s.test_ll),
            standard_rmse: col(|s| s.standard_rmse),
            coverage_95: col(|s| s.coverage_95).0,
            mode,
            seconds_per_split: col(|s| s.seconds).0,
            note: String::new(),
            method: String::new(),
            run_seconds: f64::NAN,
        }
    }

    pub(super) fn skipped(name: SetName, why: &str) -> Self {
        Self {
            name,
            splits: 0,
            rmse: (f64::NAN, f64::NAN),
            ll: (f64::NAN, f64::NAN),
            standard_rmse: (f64::NAN, f64::NAN),
            coverage_95: f64::NAN,
            mode: String::new(),
            seconds_per_split: f64::NAN,
            note: format!("skipped: {why}"),
            method: String::new(),
            run_seconds: f64::NAN,
        }
    }
}

/// Published numbers of one data set (NaN where not published).
#[derive(Debug, Clone, Copy)]
struct Published {
    rmse_2018: (f64, f64),
    ll_2018: (f64, f64),
    rmse_2016: f64,
    ll_2016: f64,
}

fn published() -> Result<BTreeMap<String, Published>> {
    let mut out = BTreeMap::new();
    let mut lines = PUBLISHED
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.starts_with('#') && !l.trim().is_empty());
    lines.next(); // header
    for (i, line) in lines {
        let f: Vec<&str> = line.split(',').collect();
        let num = |j: usize| -> Result<f64> {
            let s = f.get(j).copied().unwrap_or("").trim();
            if s.is_empty() {
                return Ok(f64::NAN);
            }
            s.parse().with_context(|| {
                format!(
                    "experiments/data/uci_published.csv line {}: field {} `{s}` is not a number",
                    i + 1,
                    j + 1
                )
            })
        };
        out.insert(
            f[0].to_string(),
            Published {
                rmse_2018: (num(1)?, num(2)?),
                ll_2018: (num(3)?, num(4)?),
                rmse_2016: num(5)?,
                ll_2016: num(6)?,
            },
        );
    }
    Ok(out)
}

/// Whether `ours` lies within one of our standard errors of the published mean (rounded to two
/// decimals, so half a unit of the last digit is allowed too).
pub(super) fn within_one_se(ours: (f64, f64), published: f64) -> &'static str {
    if !(ours.0.is_finite() && published.is_finite()) {
        return "";
    }
    let slack = if ours.1.is_finite() { ours.1 } else { 0.0 } + 0.005;
    if (ours.0 - published).abs() <= slack {
        "yes"
    } else {
        "no"
    }
}

pub(super) fn write_tables(
    out: &OutputDir,
    prefix: &str,
    rows: &[Summary],
    method: &str,
) -> Result<()> {
    let pubs = published()?;
    let nan = Published {
        rmse_2018: (f64::NAN, f64::NAN),
        ll_2018: (f64::NAN, f64::NAN),
        rmse_2016: f64::NAN,
        ll_2016: f64::NAN,
    };
    let p: Vec<Published> = rows
        .iter()
        .map(|r| {
            // Only the vendored sets have published numbers (an own table may share a name).
            r.name
                .uci()
                .and_then(|n| pubs.get(n.dir_name()).copied())
                .unwrap_or(nan)
        })
        .collect();
    let f = |g: &dyn Fn(usize) -> f64| (0..rows.len()).map(g).collect::<Vec<f64>>();
    let table = Table::from_columns(
        "UCI test RMSE and log-likelihood (mean and standard error over splits) next to the published MC dropout numbers",
        vec![
            Column::str("dataset", rows.iter().map(|r| r.name.dir_name()).collect()),
            Column::i64("splits", rows.iter().map(|r| r.splits as i64).collect()),
            Column::f64("rmse", f(&|i| rows[i].rmse.0)),
            Column::f64("rmse_se", f(&|i| rows[i].rmse.1)),
            Column::f64("rmse_2018", f(&|i| p[i].rmse_2018.0)),
            Column::f64("rmse_2018_se", f(&|i| p[i].rmse_2018.1)),
            Column::f64("rmse_2016", f(&|i| p[i].rmse_2016)),
            Column::f64("ll", f(&|i| rows[i].ll.0)),
            Column::f64("ll_se", f(&|i| rows[i].ll.1)),
            Column::f64("ll_2018", f(&|i| p[i].ll_2018.0)),
            Column::f64("ll_2018_se", f(&|i| p[i].ll_2018.1)),
            Column::f64("ll_2016", f(&|i| p[i].ll_2016)),
            Column::str("rmse_within_1se_of_2018", rows.iter().zip(&p).map(|(r, p)| within_one_se(r.rmse, p.rmse_2018.0)).collect()),
            Column::str("ll_within_1se_of_2018", rows.iter().zip(&p).map(|(r, p)| within_one_se(r.ll, p.ll_2018.0)).collect()),
            Column::f64("standard_dropout_rmse", f(&|i| rows[i].standard_rmse.0)),
            Column::f64("standard_dropout_rmse_se", f(&|i| rows[i].standard_rmse.1)),
            Column::f64("coverage_95", f(&|i| rows[i].coverage_95)),
            Column::str("most_chosen", rows.iter().map(|r| r.mode.clone()).collect()),
            Column::f64("seconds_per_split", f(&|i| rows[i].seconds_per_split)),
            Column::str("note", rows.iter().map(|r| r.note.clone()).collect()),
        ],
    )?;
    let tables = out.subdir("tables")?;
    table.write_all(&tables, &format!("{prefix}table1"))?;
    out.log(&format!("\n{}", table.to_markdown()));

    // Figures: only data sets with results.
    let have: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].splits > 0).collect();
    if have.is_empty() {
        return Ok(());
    }
    let figures = out.subdir("figures")?;
    // One error-bar series: name, mean and error of data set i.
    type Series<'a> = (&'a str, &'a dyn Fn(usize) -> f64, &'a dyn Fn(usize) -> f64);
    let nan = |_: usize| f64::NAN;
    let draw = |title: &str,
                y_label: &str,
                sets: &[usize],
                series: &[Series],
                scale: &dyn Fn(usize) -> f64,
                stem: &str| {
        let labels: Vec<String> = sets
            .iter()
            .map(|&i| rows[i].name.dir_name().to_string())
            .collect();
        let groups: Vec<_> = series
            .iter()
            .map(|(name, mean, err)| {
                let pick = |f: &dyn Fn(usize) -> f64| {
                    sets.iter().map(|&i| f(i) / scale(i)).collect::<Vec<f64>>()
                };
                (name.to_string(), pick(mean), pick(err))
            })
            .collect();
        errorbar_figure(
            title,
            y_label,
            &labels,
            &groups,
            &figures.join(format!("{prefix}{stem}")),
        )
    };
    draw(
        "UCI test log-likelihood (mean +- 1 standard error over splits)",
        "test log-likelihood (nats)",
        &have,
        &[
            ("this run", &|i| rows[i].ll.0, &|i| rows[i].ll.1),
            ("Gal 2018", &|i| p[i].ll_2018.0, &|i| p[i].ll_2018.1),
            ("paper 2016", &|i| p[i].ll_2016, &nan),
        ],
        &|_| 1.0,
        "ll",
    )?;
    // RMSE scales differ by three orders of magnitude between data sets: drawn relative to
    // Gal's 2018 value (data sets whose published RMSE rounds to 0 are left out).
    let rel: Vec<usize> = have
        .iter()
        .copied()
        .filter(|&i| p[i].rmse_2018.0 > 0.0)
        .collect();
    if !rel.is_empty() {
        draw(
            "UCI test RMSE relative to Gal 2018 (1 = published; +- 1 standard error)",
            "RMSE / published 2018 RMSE",
            &rel,
            &[
                (&format!("{method}, this run"), &|i| rows[i].rmse.0, &|i| {
                    rows[i].rmse.1
                }),
                (
                    if method == "deep ensemble" {
                        "its first member alone, this run"
                    } else {
                        "standard dropout, this run"
                    },
                    &|i| rows[i].standard_rmse.0,
                    &|i| rows[i].standard_rmse.1,
                ),
                ("Gal 2018", &|i| p[i].rmse_2018.0, &|i| p[i].rmse_2018.1),
                ("paper 2016", &|i| p[i].rmse_2016, &nan),
            ],
            &|i| p[i].rmse_2018.0,
            "rmse_relative",
        )?;
    }
    Ok(())
}

/// Deep ensembles' published (RMSE, its +-, LL, its +-) per data set (LL = -NLL as printed).
fn published_ensembles() -> Result<BTreeMap<String, [f64; 4]>> {
    let mut out = BTreeMap::new();
    let mut lines = PUBLISHED_ENSEMBLES
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.starts_with('#') && !l.trim().is_empty());
    lines.next(); // header
    for (i, line) in lines {
        let f: Vec<&str> = line.split(',').collect();
        let num = |j: usize| -> Result<f64> {
            let s = f.get(j).copied().unwrap_or("").trim();
            s.parse().with_context(|| {
                format!(
                    "experiments/data/uci_published_ensembles.csv line {}: field {} `{s}` is not \
                     a number",
                    i + 1,
                    j + 1
                )
            })
        };
        out.insert(f[0].to_string(), [num(1)?, num(2)?, -num(3)?, num(4)?]);
    }
    Ok(out)
}

/// The published numbers for a method's row: (source, RMSE, its +-, LL, its +-).
fn published_for(method: &str, dataset: &str) -> Result<(String, [f64; 4])> {
    let nan = [f64::NAN; 4];
    Ok(match method {
        "MC dropout" => match published()?.get(dataset) {
            Some(p) => (
                "Gal 2018 (mean +- SE)".into(),
                [p.rmse_2018.0, p.rmse_2018.1, p.ll_2018.0, p.ll_2018.1],
            ),
            None => (String::new(), nan),
        },
        "deep ensemble" => match published_ensembles()?.get(dataset) {
            Some(p) => (
                "Lakshminarayanan et al. 2017 Table 1 (+- as printed)".into(),
                *p,
            ),
            None => (String::new(), nan),
        },
        _ => ("none found".into(), nan),
    })
}

/// The comparison of methods: one row per data set and method (runs in config order), with
/// the published numbers of the method and the wall time.
pub(super) fn write_methods_table(out: &OutputDir, runs: &[(String, Vec<Summary>)]) -> Result<()> {
    let rows: Vec<(&str, &Summary)> = runs
        .iter()
        .flat_map(|(name, s)| s.iter().map(move |r| (name.as_str(), r)))
        .filter(|(_, r)| r.splits > 0)
        .collect();
    let mut order: Vec<&str> = Vec::new();
    for (_, r) in &rows {
        if !order.contains(&r.name.dir_name()) {
            order.push(r.name.dir_name());
        }
    }
    let mut sorted = rows.clone();
    sorted.sort_by_key(|(_, r)| order.iter().position(|d| *d == r.name.dir_name()));
    let rows = sorted;
    let pubs: Vec<(String, [f64; 4])> = rows
        .iter()
        .map(|(_, r)| {
            let own = r.name.uci().is_some();
            if own {
                published_for(&r.method, r.name.dir_name())
            } else {
                Ok((String::new(), [f64::NAN; 4]))
            }
        })
        .collect::<Result<_>>()?;
    // A method's wall time in this run, summed over its data sets.
    let run_total = |run: &str| -> f64 {
        runs.iter()
            .filter(|(n, _)| n == run)
            .flat_map(|(_, s)| s.iter())
            .filter(|r| r.run_seconds.is_finite())
            .map(|r| r.run_seconds)
            .sum()
    };
    let f = |g: &dyn Fn(usize) -> f64| (0..rows.len()).map(g).collect::<Vec<f64>>();
    let table = Table::from_columns(
        "UCI: test RMSE and log-likelihood per data set and method (mean and standard error over \
         splits) next to the method's published numbers; wall times in seconds",
        vec![
            Column::str(
                "dataset",
                rows.iter().map(|(_, r)| r.name.dir_name()).collect(),
            ),
            Column::str(
                "method",
                rows.iter().map(|(_, r)| r.method.clone()).collect(),
            ),
            Column::str("run", rows.iter().map(|(n, _)| n.to_string()).collect()),
            Column::i64(
                "splits",
                rows.iter().map(|(_, r)| r.splits as i64).collect(),
            ),
            Column::f64("rmse", f(&|i| rows[i].1.rmse.0)),
            Column::f64("rmse_se", f(&|i| rows[i].1.rmse.1)),
            Column::f64("ll", f(&|i| rows[i].1.ll.0)),
            Column::f64("ll_se", f(&|i| rows[i].1.ll.1)),
            Column::str("published", pubs.iter().map(|p| p.0.clone()).collect()),
            Column::f64("published_rmse", f(&|i| pubs[i].1[0])),
            Column::f64("published_rmse_pm", f(&|i| pubs[i].1[1])),
            Column::f64("published_ll", f(&|i| pubs[i].1[2])),
            Column::f64("published_ll_pm", f(&|i| pubs[i].1[3])),
            Column::f64("coverage_95", f(&|i| rows[i].1.coverage_95)),
            Column::str("chosen", rows.iter().map(|(_, r)| r.mode.clone()).collect()),
            Column::f64("train_s_per_split", f(&|i| rows[i].1.seconds_per_split)),
            Column::f64("run_s", f(&|i| rows[i].1.run_seconds)),
            Column::f64("method_run_s", f(&|i| run_total(rows[i].0))),
        ],
    )?;
    let tables = out.subdir("tables")?;
    table.write_all(&tables, "methods")?;
    out.log(&format!("\n{}", table.to_markdown()));
    // Log-likelihood per data set: one series per run, and the published ones.
    let sets: Vec<String> = order.iter().map(|s| s.to_string()).collect();
    let mut groups = Vec::new();
    for (name, summaries) in runs {
        let method = summaries
            .iter()
            .find(|r| !r.method.is_empty())
            .map_or(name.as_str(), |r| r.method.as_str());
        let pick = |d: &str| {
            summaries
                .iter()
                .find(|r| r.name.dir_name() == d && r.splits > 0)
        };
        groups.push((
            format!("{method}, this run"),
            order
                .iter()
                .map(|d| pick(d).map_or(f64::NAN, |r| r.ll.0))
                .collect(),
            order
                .iter()
                .map(|d| pick(d).map_or(f64::NAN, |r| r.ll.1))
                .collect(),
        ));
    }
    for (method, label) in [
        ("MC dropout", "Gal 2018"),
        ("deep ensemble", "Lakshminarayanan 2017 (+- as printed)"),
    ] {
        if !rows.iter().any(|(_, r)| r.method == method) {
            continue;
        }
        let p: Vec<[f64; 4]> = order
            .iter()
            .map(|d| published_for(method, d).map(|p| p.1))
            .collect::<Result<_>>()?;
        groups.push((
            label.to_string(),
            p.iter().map(|p| p[2]).collect(),
            p.iter().map(|p| p[3]).collect(),
        ));
    }
    let figures = out.subdir("figures")?;
    errorbar_figure(
        "UCI test log-likelihood per method (mean +- 1 standard error over splits)",
        "test log-likelihood (nats)",
        &sets,
        &groups,
        &figures.join("methods_ll"),
    )?;
    Ok(())
}

/// Per-example test predictions of every split (the uncertainties, saved to disk).
pub(super) fn write_predictions(
    out: &OutputDir,
    prefix: &str,
    name: &SetName,
    r: &[SplitResult],
) -> Result<()> {
    if r.is_empty() {
        return Ok(());
    }
    let cat = |f: &dyn Fn(&SplitResult) -> Vec<f64>| r.iter().flat_map(f).collect::<Vec<f64>>();
    let table = Table::from_columns(
        format!("{name}: per-example MC-dropout test predictions (original units)"),
        vec![
            Column::i64(
                "split",
                r.iter()
                    .flat_map(|s| s.rows.iter().map(|_| s.split as i64))
                    .collect(),
            ),
            Column::i64(
                "row",
                r.iter()
                    .flat_map(|s| s.rows.iter().map(|&k| k as i64))
                    .collect(),
            ),
            Column::f64("y", cat(&|s| s.y.clone())),
            Column::f64("mean", cat(&|s| s.mean.clone())),
            Column::f64("sd", cat(&|s| s.sd.clone())),
        ],
    )?;
    let dir = out.subdir("predictions")?;
    table.write_parquet(dir.join(format!("{prefix}{}.parquet", name.dir_name())))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcd_datasets::uci::UciName;

    #[test]
    fn standard_error_and_one_se_rule() {
        let (m, se) = mean_se(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(m, 2.5);
        // sample sd sqrt(5/3), over sqrt(4)
        assert!((se - (5.0f64 / 3.0).sqrt() / 2.0).abs() < 1e-12);
        assert_eq!(within_one_se((2.95, 0.1), 2.90), "yes");
        assert_eq!(within_one_se((3.2, 0.1), 2.90), "no");
        assert_eq!(within_one_se((f64::NAN, 0.1), 2.90), "");
    }

    #[test]
    fn published_numbers_parse_and_cover_every_data_set() {
        let p = published().unwrap();
        for name in UciName::ALL {
            assert!(p.contains_key(name.dir_name()), "{name}");
        }
        let b = p["bostonHousing"];
        assert_eq!((b.rmse_2018, b.ll_2018), ((2.90, 0.18), (-2.40, 0.04)));
        assert_eq!(p["yacht"].rmse_2016, 1.11);
    }
}
