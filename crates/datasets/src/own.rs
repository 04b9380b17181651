//! A researcher's own regression table: a CSV file (comma-separated, a header row, no quoted
//! commas; Windows line ends and a byte-order mark are fine) with one numeric target column
//! and numeric feature columns, split by a rule (random fractions from a seed, or index files).
//! Unlike the vendored sets it needs no manifest entry: its sha256 is computed on load and
//! recorded with the results. Errors name the file, and the row and column where there is one.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{DataError, Result};
use crate::uci::{inconsistent, parse_rows, SetName, UciDataset};

/// Fewest data rows a table may have: the UCI protocol holds out 20 % of each training part
/// for validation, and a standardisation needs more than one row.
pub const MIN_ROWS: usize = 10;

/// How a table is cut into (train, test) splits.
#[derive(Debug, Clone, PartialEq)]
pub enum SplitRule {
    /// `count` random splits, each with `round(test_fraction * rows)` test rows (at least one),
    /// drawn from `seed`.
    Random {
        count: usize,
        test_fraction: f64,
        seed: u64,
    },
    /// One split per (train, test) pair of files of 0-based row indices (whitespace-separated).
    IndexFiles(Vec<(PathBuf, PathBuf)>),
}

/// A parsed table: the columns used, row-major.
#[derive(Debug, Clone)]
pub struct OwnTable {
    pub path: PathBuf,
    /// Hex sha256 of the file's bytes.
    pub sha256: String,
    pub target: String,
    pub features: Vec<String>,
    /// `rows x features.len()`, row-major.
    pub x: Vec<f64>,
    pub y: Vec<f64>,
    pub rows: usize,
}

fn parse_error(path: &Path, line: usize, column: usize, msg: String) -> DataError {
    DataError::Parse {
        path: path.to_path_buf(),
        line,
        column,
        msg,
    }
}

/// Reads `path`: the header names the columns; `target` is required, `features` defaults to
/// every other column. Every used cell must be a finite number.
pub fn read_csv(path: &Path, target: &str, features: Option<&[String]>) -> Result<OwnTable> {
    let bytes = std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            DataError::Missing {
                path: path.to_path_buf(),
                msg: "no such file (data.csv is relative to the directory you run from)".into(),
            }
        } else {
            DataError::Io {
                path: path.to_path_buf(),
                action: "read",
                source: e,
            }
        }
    })?;
    let sha256 = crate::root::hex(&Sha256::digest(&bytes));
    let text = crate::root::utf8(bytes, path)?;
    // Spreadsheet exports often start with a byte-order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty());
    let (header_line, header) = lines
        .next()
        .ok_or_else(|| inconsistent(path, "empty file: expected a header row of column names"))?;
    let names: Vec<String> = header
        .split(',')
        .map(|c| c.trim().trim_matches('"').to_string())
        .collect();
    let mut seen = HashSet::new();
    for (i, n) in names.iter().enumerate() {
        if n.is_empty() || !seen.insert(n.as_str()) {
            return Err(parse_error(
                path,
                header_line,
                i + 1,
                format!("column name {n:?} is empty or repeated"),
            ));
        }
    }
    let column = |name: &str, role: &str| -> Result<usize> {
        names.iter().position(|n| n == name).ok_or_else(|| {
            inconsistent(
                path,
                &format!(
                    "no {role} column `{name}`; the header has: {}",
                    names.join(", ")
                ),
            )
        })
    };
    let t = column(target, "target")?;
    let f: Vec<usize> = match features {
        Some(list) => {
            let mut cols = Vec::with_capacity(list.len());
            for name in list {
                let c = column(name, "feature")?;
                if c == t {
                    return Err(inconsistent(
                        path,
                        &format!("`{name}` is the target and cannot also be a feature"),
                    ));
                }
                cols.push(c);
            }
            cols
        }
        None => (0..names.len()).filter(|&c| c != t).collect(),
    };
    if f.is_empty() {
        return Err(inconsistent(path, "no feature columns"));
    }
    let (mut x, mut y) = (Vec::new(), Vec::new());
    let mut rows = 0;
    for (line, raw) in lines {
        let cells: Vec<&str> = raw.split(',').collect();
        if cells.len() != names.len() {
            return Err(parse_error(
                path,
                line,
                cells.len().min(names.len()) + 1,
                format!("{} cells, the header has {}", cells.len(), names.len()),
            ));
        }
        let cell = |c: usize| -> Result<f64> {
            let s = cells[c].trim().trim_matches('"');
            match s.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(v),
                Ok(_) => Err(parse_error(
                    path,
                    line,
                    c + 1,
                    format!("column `{}`: `{s}` is not a finite number", names[c]),
                )),
                Err(_) => Err(parse_error(
                    path,
                    line,
                    c + 1,
                    format!("column `{}`: `{s}` is not a number", names[c]),
                )),
            }
        };
        y.push(cell(t)?);
        for &c in &f {
            x.push(cell(c)?);
        }
        rows += 1;
    }
    if rows < MIN_ROWS {
        return Err(inconsistent(
            path,
            &format!("{rows} data rows; at least {MIN_ROWS} are needed"),
        ));
    }
    Ok(OwnTable {
        path: path.to_path_buf(),
        sha256,
        target: names[t].clone(),
        features: f.iter().map(|&c| names[c].clone()).collect(),
        x,
        y,
        rows,
    })
}

/// SplitMix64 step (the same generator as `mcd_models::rng`, which this crate does not link).
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl OwnTable {
    /// The table as a data set of the UCI protocol, cut by `rule`. The grids, width and epochs
    /// of the vendored sets do not exist here: the config gives them (left empty / zero).
    pub fn into_dataset(self, rule: &SplitRule) -> Result<UciDataset> {
        let n = self.rows;
        let splits = match rule {
            SplitRule::Random {
                count,
                test_fraction,
                seed,
            } => {
                let n_test = ((test_fraction * n as f64).round() as usize).clamp(1, n - 1);
                (0..*count)
                    .map(|k| {
                        let mut state = seed ^ (k as u64).wrapping_mul(0x2545_f491_4f6c_dd1d);
                        let mut order: Vec<usize> = (0..n).collect();
                        for i in (1..n).rev() {
                            let j = (splitmix(&mut state) % (i as u64 + 1)) as usize;
                            order.swap(i, j);
                        }
                        let mut test = order.split_off(n - n_test);
                        let mut train = order;
                        train.sort_unstable();
                        test.sort_unstable();
                        (train, test)
                    })
                    .collect()
            }
            SplitRule::IndexFiles(pairs) => {
                let mut out = Vec::with_capacity(pairs.len());
                for (train_path, test_path) in pairs {
                    let read = |p: &Path| -> Result<Vec<usize>> {
                        let text = std::fs::read_to_string(p).map_err(|e| DataError::Io {
                            path: p.to_path_buf(),
                            action: "read",
                            source: e,
                        })?;
                        parse_rows(&text, p, n)
                    };
                    let (train, test) = (read(train_path)?, read(test_path)?);
                    if train.len() < 5 || test.is_empty() {
                        return Err(inconsistent(
                            test_path,
                            &format!(
                                "{} training and {} test rows: at least 5 and 1 are needed",
                                train.len(),
                                test.len()
                            ),
                        ));
                    }
                    let in_train: HashSet<usize> = train.iter().copied().collect();
                    if let Some(i) = test.iter().find(|i| in_train.contains(i)) {
                        return Err(inconsistent(
                            test_path,
                            &format!("row {i} is also in {}", train_path.display()),
                        ));
                    }
                    out.push((train, test));
                }
                out
            }
        };
        let mut h = Sha256::new();
        h.update(self.sha256.as_bytes());
        h.update(format!("{}|{:?}|{rule:?}", self.target, self.features).as_bytes());
        let fingerprint = crate::root::hex(&h.finalize());
        let label = self
            .path
            .file_stem()
            .map_or_else(|| "own".to_string(), |s| s.to_string_lossy().into_owned());
        let n_features = self.features.len();
        Ok(UciDataset {
            name: SetName::Own { label, fingerprint },
            dir: self.path,
            x: self.x,
            y: self.y,
            n_rows: n,
            n_features,
            n_hidden: 0,
            n_epochs: 0,
            dropout_rates: Vec::new(),
            tau_values: Vec::new(),
            splits,
        })
    }
}
