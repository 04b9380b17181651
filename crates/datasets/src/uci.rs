//! The UCI regression benchmark with the authors' fixed splits and hyper-parameter grids.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use tch::Tensor;

use crate::error::{DataError, Result};
use crate::root::DataRoot;

/// The ten data sets of the paper's Table 1 (nine are vendored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UciName {
    /// Boston housing (506 x 13).
    BostonHousing,
    /// Concrete compressive strength (1030 x 8).
    Concrete,
    /// Energy efficiency (768 x 8).
    Energy,
    /// Kin8nm robot arm (8192 x 8).
    Kin8nm,
    /// Naval propulsion plant (11934 x 16).
    NavalPropulsionPlant,
    /// Combined cycle power plant (9568 x 4).
    PowerPlant,
    /// Protein tertiary structure (45730 x 9, 5 splits).
    ProteinTertiaryStructure,
    /// Red wine quality (1599 x 11).
    WineQualityRed,
    /// Yacht hydrodynamics (308 x 6).
    Yacht,
    /// Year Prediction MSD: not vendored, loading it fails with [`DataError::Missing`].
    YearPredictionMsd,
}

impl UciName {
    /// All ten names, in the paper's table order.
    pub const ALL: [UciName; 10] = [
        UciName::BostonHousing,
        UciName::Concrete,
        UciName::Energy,
        UciName::Kin8nm,
        UciName::NavalPropulsionPlant,
        UciName::PowerPlant,
        UciName::ProteinTertiaryStructure,
        UciName::WineQualityRed,
        UciName::Yacht,
        UciName::YearPredictionMsd,
    ];

    /// The nine names with data in this repository.
    pub const VENDORED: [UciName; 9] = [
        UciName::BostonHousing,
        UciName::Concrete,
        UciName::Energy,
        UciName::Kin8nm,
        UciName::NavalPropulsionPlant,
        UciName::PowerPlant,
        UciName::ProteinTertiaryStructure,
        UciName::WineQualityRed,
        UciName::Yacht,
    ];

    /// Directory name under `uci/` (also the `Display` / `FromStr` form).
    pub fn dir_name(self) -> &'static str {
        match self {
            UciName::BostonHousing => "bostonHousing",
            UciName::Concrete => "concrete",
            UciName::Energy => "energy",
            UciName::Kin8nm => "kin8nm",
            UciName::NavalPropulsionPlant => "naval-propulsion-plant",
            UciName::PowerPlant => "power-plant",
            UciName::ProteinTertiaryStructure => "protein-tertiary-structure",
            UciName::WineQualityRed => "wine-quality-red",
            UciName::Yacht => "yacht",
            UciName::YearPredictionMsd => "year-prediction-msd",
        }
    }
}

impl fmt::Display for UciName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.dir_name())
    }
}

/// A string that names no UCI data set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown UCI data set {name:?}; expected one of: {}", UciName::ALL.map(UciName::dir_name).join(", "))]
pub struct UnknownUciName {
    /// The string given.
    pub name: String,
}

impl FromStr for UciName {
    type Err = UnknownUciName;

    /// Parses a directory name; case is ignored (`bostonhousing` works too).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UciName::ALL
            .into_iter()
            .find(|n| n.dir_name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownUciName {
                name: s.to_string(),
            })
    }
}

/// What a [`UciDataset`] holds: a vendored UCI set, or a researcher's own table
/// (`crate::own`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetName {
    Uci(UciName),
    Own {
        /// The file name without its extension.
        label: String,
        /// Hex sha256 over the file's bytes, the columns used and the split rule: a changed
        /// file or rule is another data set.
        fingerprint: String,
    },
}

impl SetName {
    /// The name used in tables, file names and logs.
    pub fn dir_name(&self) -> &str {
        match self {
            SetName::Uci(n) => n.dir_name(),
            SetName::Own { label, .. } => label,
        }
    }

    /// The vendored set, if it is one (published numbers exist only for those).
    pub fn uci(&self) -> Option<UciName> {
        match self {
            SetName::Uci(n) => Some(*n),
            SetName::Own { .. } => None,
        }
    }

    /// A number that tells data sets apart in seed derivations: a vendored set's is its index
    /// in [`UciName::ALL`] (as it always was), an own table's comes from its fingerprint.
    pub fn seed_tag(&self) -> u64 {
        match self {
            SetName::Uci(n) => *n as u64,
            SetName::Own { fingerprint, .. } => {
                u64::from_str_radix(fingerprint.get(..15).unwrap_or("0"), 16).unwrap_or(0) | 1 << 60
            }
        }
    }
}

impl fmt::Display for SetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetName::Uci(n) => n.fmt(f),
            SetName::Own { label, fingerprint } => {
                write!(
                    f,
                    "{label} (own data {})",
                    fingerprint.get(..12).unwrap_or("")
                )
            }
        }
    }
}

/// One data set with its splits and the authors' grids.
#[derive(Debug, Clone)]
pub struct UciDataset {
    /// Which data set.
    pub name: SetName,
    /// Directory it was read from (for error messages).
    pub dir: PathBuf,
    /// Inputs, row-major `n_rows x n_features` (columns `index_features.txt`, in that order).
    pub x: Vec<f64>,
    /// Targets (column `index_target.txt`), `n_rows` values.
    pub y: Vec<f64>,
    /// Number of rows.
    pub n_rows: usize,
    /// Number of input features.
    pub n_features: usize,
    /// Hidden units of the authors' net (`n_hidden.txt`).
    pub n_hidden: usize,
    /// Training epochs of the authors' net (`n_epochs.txt`).
    pub n_epochs: usize,
    /// Dropout-rate grid (`dropout_rates.txt`).
    pub dropout_rates: Vec<f64>,
    /// Model-precision grid (`tau_values.txt`).
    pub tau_values: Vec<f64>,
    /// (train rows, test rows) of each split, in file order.
    pub splits: Vec<(Vec<usize>, Vec<usize>)>,
}

/// One split ready for training, standardised with statistics of its training rows only.
#[derive(Debug)]
pub struct UciSplit {
    /// Standardised training inputs, f32 [n_train, d].
    pub x_train: Tensor,
    /// Standardised training targets, f32 [n_train, 1].
    pub y_train: Tensor,
    /// Test (or validation) inputs, standardised with the training statistics, f32 [n_test, d].
    pub x_test: Tensor,
    /// Test (or validation) targets, standardised with the training statistics, f32 [n_test, 1];
    /// original units are `y_test * y_std + y_mean`.
    pub y_test: Tensor,
    /// Per-feature training mean.
    pub x_mean: Vec<f64>,
    /// Per-feature training standard deviation (population; 1 for constant features).
    pub x_std: Vec<f64>,
    /// Training target mean.
    pub y_mean: f64,
    /// Training target standard deviation (population; 1 if constant).
    pub y_std: f64,
    /// Data rows (indices into [`UciDataset::y`]) of the training part, in order.
    pub train_rows: Vec<usize>,
    /// Data rows of the test (or validation) part, in order.
    pub test_rows: Vec<usize>,
}

/// `uci/<name>` in `root`, or `DataError::Missing` for the one set that is not vendored.
fn vendored_base(root: &DataRoot, name: UciName) -> Result<String> {
    let base = format!("uci/{}", name.dir_name());
    if name == UciName::YearPredictionMsd {
        return Err(DataError::Missing {
            path: root.path(&base),
            msg: "Year Prediction MSD is not vendored (515,345 rows, too large); its standard \
                  split is the first 463,715 rows for training and the last 51,630 for test"
                .into(),
        });
    }
    Ok(base)
}

/// The number of standard splits of a vendored set (`n_splits.txt`), without reading its data;
/// [`load`] checks that each has its index files.
pub fn split_count(root: &DataRoot, name: UciName) -> Result<usize> {
    let rel = format!("{}/n_splits.txt.gz", vendored_base(root, name)?);
    single_usize((root.read_text(&rel)?, root.path(&rel)))
}

/// Loads a vendored data set from `uci/<name>/` in `root` and checks its split files.
pub fn load(root: &DataRoot, name: UciName) -> Result<UciDataset> {
    let base = vendored_base(root, name)?;
    let file = |f: &str| format!("{base}/{f}.gz");
    let text = |f: &str| -> Result<(String, PathBuf)> {
        let rel = file(f);
        Ok((root.read_text(&rel)?, root.path(&rel)))
    };

    let (data, data_path) = text("data.txt")?;
    let (table, n_cols) = parse_table(&data, &data_path)?;
    let n_rows = table.len() / n_cols;

    let (t, p) = text("index_features.txt")?;
    let features = parse_indices(&t, &p, n_cols)?;
    let (t, p) = text("index_target.txt")?;
    let target = parse_indices(&t, &p, n_cols)?;
    let target = match target.as_slice() {
        [(col, _)] => *col,
        _ => {
            return Err(DataError::Inconsistent {
                path: p,
                msg: format!("expected exactly one target column, found {}", target.len()),
            })
        }
    };
    if features.is_empty() {
        return Err(inconsistent(
            &root.path(&file("index_features.txt")),
            "no feature columns",
        ));
    }
    if let Some((_, line)) = features.iter().find(|(c, _)| *c == target) {
        return Err(DataError::Inconsistent {
            path: root.path(&file("index_features.txt")),
            msg: format!("line {line}: target column {target} is also listed as a feature"),
        });
    }

    let n_features = features.len();
    let mut x = Vec::with_capacity(n_rows * n_features);
    let mut y = Vec::with_capacity(n_rows);
    for row in table.chunks_exact(n_cols) {
        x.extend(features.iter().map(|&(c, _)| row[c]));
        y.push(row[target]);
    }

    let n_splits = single_usize(text("n_splits.txt")?)?;
    let n_hidden = single_usize(text("n_hidden.txt")?)?;
    let n_epochs = single_usize(text("n_epochs.txt")?)?;
    let (t, p) = text("dropout_rates.txt")?;
    let dropout_rates = parse_floats(&t, &p, |v| (0.0..1.0).contains(&v), "a rate in [0, 1)")?;
    let (t, p) = text("tau_values.txt")?;
    let tau_values = parse_floats(&t, &p, |v| v > 0.0, "a positive precision")?;

    // No capacity from the file: a damaged n_splits.txt must be an error (its split files are
    // missing), not an allocation of its size.
    let mut splits = Vec::new();
    for k in 0..n_splits {
        let read_split = |kind: &str| -> Result<(Vec<usize>, PathBuf)> {
            let rel = file(&format!("index_{kind}_{k}.txt"));
            if !root.contains(&rel) {
                return Err(DataError::Missing {
                    path: root.path(&rel),
                    msg: format!("n_splits.txt announces {n_splits} splits but split {k} has no {kind} index file"),
                });
            }
            let (t, p) = text(&format!("index_{kind}_{k}.txt"))?;
            Ok((parse_rows(&t, &p, n_rows)?, p))
        };
        let (train, _) = read_split("train")?;
        let (test, test_path) = read_split("test")?;
        if train.is_empty() || test.is_empty() {
            return Err(inconsistent(
                &test_path,
                &format!("split {k} has an empty training or test part"),
            ));
        }
        let train_set: HashSet<usize> = train.iter().copied().collect();
        if let Some(pos) = test.iter().position(|i| train_set.contains(i)) {
            return Err(DataError::Inconsistent {
                path: test_path,
                msg: format!(
                    "row {} (line {}) is in both the training and the test part of split {k}",
                    test[pos],
                    pos + 1
                ),
            });
        }
        splits.push((train, test));
    }

    Ok(UciDataset {
        name: SetName::Uci(name),
        dir: root.path(&base),
        x,
        y,
        n_rows,
        n_features,
        n_hidden,
        n_epochs,
        dropout_rates,
        tau_values,
        splits,
    })
}

impl UciDataset {
    /// Split `k`, standardised with its training statistics. With `validation`, the training
    /// part is the first 80% of split k's training rows (unshuffled, as the authors' code) and
    /// the test part the remaining 20%; the test rows of split k are not touched.
    pub fn split(&self, k: usize, validation: bool) -> Result<UciSplit> {
        let (train, test) = self.splits.get(k).ok_or_else(|| DataError::Missing {
            path: self.dir.join(format!("index_train_{k}.txt.gz")),
            msg: format!(
                "split {k} requested but {} has {} splits",
                self.name,
                self.splits.len()
            ),
        })?;
        let (train_rows, test_rows) = if validation {
            // Same arithmetic as the authors' `int(0.8 * X_train.shape[0])`.
            let n_tr = (0.8 * train.len() as f64) as usize;
            if n_tr == 0 || n_tr == train.len() {
                return Err(inconsistent(
                    &self.dir,
                    &format!(
                        "split {k} has {} training rows: too few for an 80/20 validation split",
                        train.len()
                    ),
                ));
            }
            (train[..n_tr].to_vec(), train[n_tr..].to_vec())
        } else {
            (train.clone(), test.clone())
        };

        let d = self.n_features;
        let gather_x = |rows: &[usize]| -> Vec<f64> {
            rows.iter()
                .flat_map(|&r| self.x[r * d..(r + 1) * d].iter().copied())
                .collect()
        };
        let gather_y = |rows: &[usize]| -> Vec<f64> { rows.iter().map(|&r| self.y[r]).collect() };
        let (xtr, xte) = (gather_x(&train_rows), gather_x(&test_rows));
        let (ytr, yte) = (gather_y(&train_rows), gather_y(&test_rows));

        let (x_mean, x_std) = standardise(&xtr, train_rows.len(), d);
        let (ym, ys) = standardise(&ytr, train_rows.len(), 1);
        let (y_mean, y_std) = (ym[0], ys[0]);

        let scale_x = |v: &[f64]| -> Vec<f32> {
            v.iter()
                .enumerate()
                .map(|(i, &x)| ((x - x_mean[i % d]) / x_std[i % d]) as f32)
                .collect()
        };
        let scale_y =
            |v: &[f64]| -> Vec<f32> { v.iter().map(|&y| ((y - y_mean) / y_std) as f32).collect() };
        let tensor = |v: Vec<f32>, cols: usize| {
            let n = (v.len() / cols) as i64;
            Tensor::from_slice(&v).reshape([n, cols as i64])
        };
        Ok(UciSplit {
            x_train: tensor(scale_x(&xtr), d),
            y_train: tensor(scale_y(&ytr), 1),
            x_test: tensor(scale_x(&xte), d),
            y_test: tensor(scale_y(&yte), 1),
            x_mean,
            x_std,
            y_mean,
            y_std,
            train_rows,
            test_rows,
        })
    }
}

/// Per-column mean and population standard deviation of a row-major `rows x cols` table.
/// A constant column (or `rows == 0`) gets sd 1, as the authors' code sets sd 0 to 1; its mean
/// is then the exact value, so standardised entries are exactly 0 rather than rounding noise.
/// With `rows == 0` or fewer than `rows * cols` values every column gets mean 0 and sd 1.
pub fn standardise(values: &[f64], rows: usize, cols: usize) -> (Vec<f64>, Vec<f64>) {
    let mut mean = vec![0.0; cols];
    let mut std = vec![1.0; cols];
    if rows == 0 || cols == 0 || values.len() < rows * cols {
        return (mean, std);
    }
    for c in 0..cols {
        let col = || values.chunks_exact(cols).take(rows).map(move |r| r[c]);
        let first = values[c];
        if col().all(|v| v == first) {
            mean[c] = first;
            continue;
        }
        let m = col().sum::<f64>() / rows as f64;
        let var = col().map(|v| (v - m) * (v - m)).sum::<f64>() / rows as f64;
        mean[c] = m;
        std[c] = if var > 0.0 { var.sqrt() } else { 1.0 };
    }
    (mean, std)
}

pub(crate) fn inconsistent(path: &Path, msg: &str) -> DataError {
    DataError::Inconsistent {
        path: path.to_path_buf(),
        msg: msg.to_string(),
    }
}

/// Whitespace-separated numbers, one row per non-blank line, all rows the same width.
/// Returns the flat row-major values and the number of columns.
fn parse_table(text: &str, path: &Path) -> Result<(Vec<f64>, usize)> {
    let mut values = Vec::new();
    let mut width = None;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let before = values.len();
        for (f, tok) in line.split_whitespace().enumerate() {
            match tok.parse::<f64>() {
                Ok(v) if v.is_finite() => values.push(v),
                _ => {
                    return Err(DataError::Parse {
                        path: path.to_path_buf(),
                        line: line_no,
                        column: f + 1,
                        msg: format!("{tok:?} is not a finite number"),
                    })
                }
            }
        }
        let n = values.len() - before;
        if n == 0 {
            continue; // blank lines (the files end with one) carry no row, as in numpy.loadtxt
        }
        match width {
            None => width = Some(n),
            Some(w) if w != n => {
                return Err(DataError::Parse {
                    path: path.to_path_buf(),
                    line: line_no,
                    column: n.min(w) + 1,
                    msg: format!("{n} fields, but earlier rows have {w}"),
                })
            }
            Some(_) => {}
        }
    }
    match width {
        Some(w) => Ok((values, w)),
        None => Err(inconsistent(path, "no data rows")),
    }
}

/// An index file of data rows: whitespace-separated 0-based indices `< len`, none twice.
pub(crate) fn parse_rows(text: &str, path: &Path, len: usize) -> Result<Vec<usize>> {
    let idx = parse_indices(text, path, len)?;
    let mut seen = HashSet::with_capacity(idx.len());
    for &(i, line) in &idx {
        if !seen.insert(i) {
            return Err(inconsistent(
                path,
                &format!("line {line}: row {i} listed twice"),
            ));
        }
    }
    Ok(idx.into_iter().map(|(i, _)| i).collect())
}

/// Whitespace-separated 0-based indices, each `< len`; returns (index, 1-based line).
fn parse_indices(text: &str, path: &Path, len: usize) -> Result<Vec<(usize, usize)>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        for (f, tok) in line.split_whitespace().enumerate() {
            let index: usize = tok.parse().map_err(|_| DataError::Parse {
                path: path.to_path_buf(),
                line: i + 1,
                column: f + 1,
                msg: format!("{tok:?} is not a non-negative integer index"),
            })?;
            if index >= len {
                return Err(DataError::IndexOutOfRange {
                    path: path.to_path_buf(),
                    line: i + 1,
                    index,
                    len,
                });
            }
            out.push((index, i + 1));
        }
    }
    Ok(out)
}

/// Whitespace-separated floats that each satisfy `ok` (described by `what`); at least one.
fn parse_floats(text: &str, path: &Path, ok: impl Fn(f64) -> bool, what: &str) -> Result<Vec<f64>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        for (f, tok) in line.split_whitespace().enumerate() {
            match tok.parse::<f64>() {
                Ok(v) if v.is_finite() && ok(v) => out.push(v),
                _ => {
                    return Err(DataError::Parse {
                        path: path.to_path_buf(),
                        line: i + 1,
                        column: f + 1,
                        msg: format!("{tok:?} is not {what}"),
                    })
                }
            }
        }
    }
    if out.is_empty() {
        return Err(inconsistent(path, "no values"));
    }
    Ok(out)
}

/// A file holding exactly one non-negative integer.
fn single_usize((text, path): (String, PathBuf)) -> Result<usize> {
    let tokens: Vec<(usize, usize, &str)> = text
        .lines()
        .enumerate()
        .flat_map(|(i, l)| {
            l.split_whitespace()
                .enumerate()
                .map(move |(f, t)| (i + 1, f + 1, t))
        })
        .collect();
    match tokens.as_slice() {
        [(line, column, tok)] => tok.parse().map_err(|_| DataError::Parse {
            path: path.clone(),
            line: *line,
            column: *column,
            msg: format!("{tok:?} is not a non-negative integer"),
        }),
        _ => Err(inconsistent(
            &path,
            &format!(
                "expected exactly one integer, found {} values",
                tokens.len()
            ),
        )),
    }
}
