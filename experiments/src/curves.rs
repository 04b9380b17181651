//! Training curves: how each run trained, so that methods can be compared on it. One long table
//! per experiment, `tables/<prefix>training_curves.*` (a row per run and logged step: the loss,
//! then whatever the method learnt beside the weights, such as concrete dropout's p per layer),
//! a figure of the losses, `figures/<prefix>training_curves.*`, and, when a run learnt such
//! values, a figure of them, `figures/<prefix>training_curves_p.*`.
//!
//! The curves come from what training recorded (`mcd_trainer::TrainReport`), which the weight
//! cache keeps beside the weights (`cache::TrainSummary`) and the UCI resume cache beside each
//! split, so a run that loads them draws the curve of the training that produced them.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use mcd_report::{curve_figure, Column, Series, Table, Values};

use crate::cache::TrainSummary;
use crate::output::OutputDir;

/// The Markdown table keeps at most this many logged steps per run (CSV and Parquet keep all).
pub const MARKDOWN_ROWS_PER_RUN: usize = 50;

/// The file stem of the table and the loss figure (after the study's run prefix).
pub const STEM: &str = "training_curves";

/// One run's training curve.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    /// The row label: the run name (UCI: the data set).
    pub run: String,
    /// Logged steps (0-based iteration index), increasing.
    pub steps: Vec<usize>,
    /// The loss at each step.
    pub loss: Vec<f64>,
    /// Values learnt beside the weights, by column name, one per step (concrete dropout:
    /// `p_before_layer{i}`); drawn in their own figure.
    pub learned: Vec<(String, Vec<f64>)>,
    /// Further columns, one value per step, present in every curve of a table (UCI: the
    /// spread over splits).
    pub extra: Vec<Column>,
}

impl Curve {
    /// The curve a training recorded (or a cache entry kept); an entry from before learnt values
    /// were recorded has none.
    pub fn of(run: &str, s: &TrainSummary) -> Self {
        Self {
            run: run.to_string(),
            steps: s.losses.iter().map(|l| l.0).collect(),
            loss: s.losses.iter().map(|l| l.1).collect(),
            learned: s.tracked.clone().unwrap_or_default(),
            extra: Vec::new(),
        }
    }

    /// The mean of several curves (UCI: one per split) at every step any of them logged, with
    /// the spread as extra columns: `loss_min`, `loss_max` and `splits` (how many curves logged
    /// that step).
    pub fn mean_of(run: &str, curves: &[&[(usize, f64)]]) -> Self {
        let mut at: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
        for c in curves {
            for &(step, loss) in *c {
                at.entry(step).or_default().push(loss);
            }
        }
        let fold = |f: fn(f64, f64) -> f64, init: f64| -> Vec<f64> {
            at.values()
                .map(|v| v.iter().copied().fold(init, f))
                .collect()
        };
        Self {
            run: run.to_string(),
            steps: at.keys().copied().collect(),
            loss: at
                .values()
                .map(|v| v.iter().sum::<f64>() / v.len() as f64)
                .collect(),
            learned: Vec::new(),
            extra: vec![
                Column::f64("loss_min", fold(f64::min, f64::INFINITY)),
                Column::f64("loss_max", fold(f64::max, f64::NEG_INFINITY)),
                Column::i64("splits", at.values().map(|v| v.len() as i64).collect()),
            ],
        }
    }
}

/// The long table of `curves`: `run`, `step`, `loss`, then one column per learnt value any run
/// has (NaN in the rows of runs without it), then the extra columns.
pub fn table(title: &str, curves: &[Curve]) -> Result<Table> {
    let mut names: Vec<&str> = Vec::new();
    for c in curves {
        for (n, _) in &c.learned {
            if !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
    }
    let mut cols = vec![
        Column::str(
            "run",
            curves
                .iter()
                .flat_map(|c| c.steps.iter().map(|_| c.run.clone()))
                .collect(),
        ),
        Column::i64(
            "step",
            curves
                .iter()
                .flat_map(|c| c.steps.iter().map(|&s| s as i64))
                .collect(),
        ),
        Column::f64(
            "loss",
            curves.iter().flat_map(|c| c.loss.iter().copied()).collect(),
        ),
    ];
    for name in names {
        let mut v = Vec::new();
        for c in curves {
            match c.learned.iter().find(|(n, _)| n == name) {
                Some((_, series)) => v.extend_from_slice(series),
                None => v.extend(std::iter::repeat_n(f64::NAN, c.steps.len())),
            }
        }
        cols.push(Column::f64(name, v));
    }
    if let Some(first) = curves.first() {
        for (j, col) in first.extra.iter().enumerate() {
            let parts: Vec<&Values> = curves
                .iter()
                .map(|c| {
                    c.extra
                        .get(j)
                        .filter(|e| e.name == col.name)
                        .map(|e| &e.values)
                        .with_context(|| {
                            format!("training curve `{}` lacks column `{}`", c.run, col.name)
                        })
                })
                .collect::<Result<_>>()?;
            cols.push(Column::new(col.name.clone(), concat(&parts)?));
        }
    }
    Ok(Table::from_columns(title, cols)?)
}

/// Values of one type, end to end.
fn concat(parts: &[&Values]) -> Result<Values> {
    let mut out = match parts.first() {
        Some(Values::F64(_)) | None => Values::F64(Vec::new()),
        Some(Values::I64(_)) => Values::I64(Vec::new()),
        Some(Values::Str(_)) => Values::Str(Vec::new()),
    };
    for p in parts {
        match (&mut out, p) {
            (Values::F64(o), Values::F64(v)) => o.extend_from_slice(v),
            (Values::I64(o), Values::I64(v)) => o.extend_from_slice(v),
            (Values::Str(o), Values::Str(v)) => o.extend_from_slice(v),
            _ => anyhow::bail!("a training-curve column has values of two types"),
        }
    }
    Ok(out)
}

/// Entries `idx` of `v`.
fn pick(v: &Values, idx: &[usize]) -> Values {
    match v {
        Values::F64(v) => Values::F64(idx.iter().map(|&i| v[i]).collect()),
        Values::I64(v) => Values::I64(idx.iter().map(|&i| v[i]).collect()),
        Values::Str(v) => Values::Str(idx.iter().map(|&i| v[i].clone()).collect()),
    }
}

/// `n` indices evenly spaced over `0..len`, the first and last included (all when `len <= n`).
pub fn evenly_spaced(len: usize, n: usize) -> Vec<usize> {
    match n {
        _ if len <= n => return (0..len).collect(),
        0 => return Vec::new(),
        1 => return vec![len - 1],
        _ => {}
    }
    let mut idx: Vec<usize> = (0..n)
        .map(|k| ((k as f64) * (len - 1) as f64 / (n - 1) as f64).round() as usize)
        .collect();
    idx.dedup();
    idx
}

/// `table` with at most `per_run` rows of each run (by its `run` column), evenly spaced over
/// the run's rows, the first and last kept.
pub fn thinned(table: &Table, per_run: usize) -> Table {
    let runs: &[String] = match table.columns.iter().find(|c| c.name == "run") {
        Some(Column {
            values: Values::Str(v),
            ..
        }) => v,
        _ => return table.clone(),
    };
    let mut idx = Vec::new();
    let mut start = 0;
    while start < runs.len() {
        let end = start
            + runs[start..]
                .iter()
                .take_while(|r| **r == runs[start])
                .count();
        idx.extend(
            evenly_spaced(end - start, per_run)
                .into_iter()
                .map(|i| start + i),
        );
        start = end;
    }
    Table {
        title: table.title.clone(),
        columns: table
            .columns
            .iter()
            .map(|c| Column::new(c.name.clone(), pick(&c.values, &idx)))
            .collect(),
    }
}

/// What the curves of a study are: the table's title, and the loss figure's (short) title and
/// y-axis label.
#[derive(Debug, Clone, Copy)]
pub struct Labels<'a> {
    pub table: &'a str,
    pub figure: &'a str,
    pub loss: &'a str,
}

/// Most lines one figure of learnt values draws (its legend lists each).
pub const MAX_FIGURE_SERIES: usize = 24;

/// Writes `curves` (those with at least one step): `tables/<prefix>training_curves.csv` and
/// `.parquet` with every logged step, `.md` with at most [`MARKDOWN_ROWS_PER_RUN`] per run,
/// `figures/<prefix>training_curves.*` (the losses) and, when a run learnt values beside its
/// weights, `figures/<prefix>training_curves_p.*` (up to [`MAX_FIGURE_SERIES`] lines; beyond, the
/// table alone). Nothing without a curve.
pub fn write(out: &OutputDir, prefix: &str, labels: Labels, curves: &[Curve]) -> Result<()> {
    let title = labels.table;
    let curves: Vec<Curve> = curves
        .iter()
        .filter(|c| !c.steps.is_empty())
        .cloned()
        .collect();
    if curves.is_empty() {
        out.log("training curves: none recorded, so no training_curves table or figure");
        return Ok(());
    }
    let full = table(title, &curves)?;
    let tables = out.subdir("tables")?;
    let stem = format!("{prefix}{STEM}");
    full.write_csv(tables.join(format!("{stem}.csv")))?;
    full.write_parquet(tables.join(format!("{stem}.parquet")))?;
    let mut md = thinned(&full, MARKDOWN_ROWS_PER_RUN);
    md.title = format!(
        "{title} (here at most {MARKDOWN_ROWS_PER_RUN} evenly spaced logged steps per run, the \
         first and last included; the CSV and Parquet files hold every logged step)"
    );
    md.write_markdown(tables.join(format!("{stem}.md")))?;

    let figures = out.subdir("figures")?;
    let series = |label: String, c: &Curve, y: &[f64]| Series {
        label,
        x: c.steps.iter().map(|&s| s as f64).collect(),
        y: y.to_vec(),
    };
    let losses: Vec<Series> = curves
        .iter()
        .map(|c| series(c.run.clone(), c, &c.loss))
        .collect();
    curve_figure(
        labels.figure,
        "training step",
        labels.loss,
        &losses,
        &figures.join(&stem),
    )?;
    let learned: Vec<Series> = curves
        .iter()
        .flat_map(|c| {
            c.learned.iter().map(move |(name, v)| {
                series(format!("{}: {}", c.run, name.replace('_', " ")), c, v)
            })
        })
        .collect();
    // Past this many lines a legend cannot fit beside them (concrete_synthetic: 18 nets x 5
    // rates); the table keeps every series.
    let drawn = !learned.is_empty() && learned.len() <= MAX_FIGURE_SERIES;
    if learned.len() > MAX_FIGURE_SERIES {
        out.log(&format!(
            "training curves: {} learnt-value series are too many for one figure, so \
             figures/{stem}_p is not drawn; tables/{stem}.csv has them",
            learned.len()
        ));
    }
    if drawn {
        curve_figure(
            "Learnt drop rates during training (concrete dropout)",
            "training step",
            "learnt drop rate p",
            &learned,
            &figures.join(format!("{stem}_p")),
        )?;
    }
    out.log(&format!(
        "training curves: {} run(s), {} logged steps in tables/{stem}.csv, figures/{stem}.png{}",
        curves.len(),
        full.n_rows(),
        if drawn {
            format!(", figures/{stem}_p.png")
        } else {
            String::new()
        }
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(run: &str, n: usize, p: bool) -> Curve {
        let steps: Vec<usize> = (0..n).map(|i| i * 10).collect();
        Curve {
            run: run.into(),
            loss: steps.iter().map(|&s| 1.0 / (1.0 + s as f64)).collect(),
            learned: if p {
                vec![("p_before_layer1".into(), vec![0.1; n])]
            } else {
                Vec::new()
            },
            steps,
            extra: Vec::new(),
        }
    }

    #[test]
    fn the_long_table_fills_learnt_columns_with_nan() {
        let t = table("t", &[curve("a", 3, false), curve("b", 2, true)]).unwrap();
        let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["run", "step", "loss", "p_before_layer1"]);
        assert_eq!(t.n_rows(), 5);
        let Values::F64(p) = &t.columns[3].values else {
            panic!()
        };
        assert!(p[..3].iter().all(|v| v.is_nan()));
        assert_eq!(p[3..], [0.1, 0.1]);
        assert_eq!(t.columns[1].values, Values::I64(vec![0, 10, 20, 0, 10]));
    }

    #[test]
    fn markdown_keeps_first_and_last_of_each_run() {
        assert_eq!(evenly_spaced(3, 50), [0, 1, 2]);
        let idx = evenly_spaced(1001, 50);
        assert_eq!(idx.len(), 50);
        assert_eq!((idx[0], idx[49]), (0, 1000));
        assert!(idx.windows(2).all(|w| w[0] < w[1]));
        let t = table("t", &[curve("a", 200, false), curve("b", 7, false)]).unwrap();
        let thin = thinned(&t, 50);
        assert_eq!(thin.n_rows(), 57);
        let Values::I64(steps) = &thin.columns[1].values else {
            panic!()
        };
        assert_eq!((steps[0], steps[49], steps[50]), (0, 1990, 0));
    }

    #[test]
    fn the_mean_of_split_curves_keeps_its_spread_and_count() {
        let a = [(0, 1.0), (10, 0.5)];
        let b = [(0, 3.0), (10, 0.7), (20, 0.2)];
        let c = Curve::mean_of("boston", &[&a[..], &b[..]]);
        assert_eq!(c.steps, [0, 10, 20]);
        assert_eq!(c.loss, [2.0, 0.6, 0.2]);
        assert_eq!(c.extra[0].values, Values::F64(vec![1.0, 0.5, 0.2]));
        assert_eq!(c.extra[1].values, Values::F64(vec![3.0, 0.7, 0.2]));
        assert_eq!(c.extra[2].values, Values::I64(vec![2, 2, 1]));
        let t = table("t", &[c.clone(), Curve::mean_of("yacht", &[&a[..]])]).unwrap();
        assert_eq!(t.columns.len(), 6);
        assert_eq!(t.n_rows(), 5);
        // A curve without the extra columns cannot join them.
        assert!(table("t", &[c, curve("x", 2, false)]).is_err());
    }
}
