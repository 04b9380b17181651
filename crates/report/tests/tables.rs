//! Table writers: CSV and Parquet round-trips through polars, Markdown layout, validation.

use std::fs::File;

use mcd_report::{Column, ReportError, Table, Values};
use polars::prelude::{CsvReadOptions, DataFrame, ParquetReader, SerReader};

fn sample() -> Table {
    Table::new("Test RMSE")
        .with_column("dataset", vec!["boston", "a,b", "say \"hi\""])
        .and_then(|t| t.with_column("rmse", vec![0.123456, -2.5e-7, 1234.5678]))
        .and_then(|t| t.with_column("n", vec![506_i64, -3, 0]))
        .expect("equal lengths")
}

fn f64_col(df: &DataFrame, name: &str) -> Vec<Option<f64>> {
    df.column(name)
        .expect("column present")
        .f64()
        .map(|ca| (0..ca.len()).map(|i| ca.get(i)).collect())
        .expect("f64 column")
}

fn i64_col(df: &DataFrame, name: &str) -> Vec<Option<i64>> {
    df.column(name)
        .expect("column present")
        .i64()
        .map(|ca| (0..ca.len()).map(|i| ca.get(i)).collect())
        .expect("i64 column")
}

fn str_col(df: &DataFrame, name: &str) -> Vec<Option<String>> {
    df.column(name)
        .expect("column present")
        .str()
        .map(|ca| {
            (0..ca.len())
                .map(|i| ca.get(i).map(str::to_owned))
                .collect()
        })
        .expect("string column")
}

fn assert_matches_sample(df: &DataFrame) {
    assert_eq!(df.height(), 3);
    let names: Vec<&str> = df.get_column_names().iter().map(|s| s.as_str()).collect();
    assert_eq!(names, ["dataset", "rmse", "n"]);
    assert_eq!(
        str_col(df, "dataset"),
        [
            Some("boston".into()),
            Some("a,b".into()),
            Some("say \"hi\"".into())
        ]
    );
    assert_eq!(
        f64_col(df, "rmse"),
        [Some(0.123456), Some(-2.5e-7), Some(1234.5678)]
    );
    assert_eq!(i64_col(df, "n"), [Some(506), Some(-3), Some(0)]);
}

#[test]
fn csv_round_trips_values_including_quoting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.csv");
    sample().write_csv(&path).expect("write csv");
    let df = CsvReadOptions::default()
        .with_has_header(true)
        .try_into_reader_with_file_path(Some(path))
        .expect("open csv")
        .finish()
        .expect("parse csv");
    assert_matches_sample(&df);
}

#[test]
fn csv_keeps_nan_as_nan() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nan.csv");
    let t = Table::from_columns("nan", vec![Column::f64("v", vec![1.5, f64::NAN])]).expect("table");
    t.write_csv(&path).expect("write csv");
    let df = CsvReadOptions::default()
        .try_into_reader_with_file_path(Some(path))
        .expect("open csv")
        .finish()
        .expect("parse csv");
    let v = f64_col(&df, "v");
    assert_eq!(v[0], Some(1.5));
    assert!(v[1].is_some_and(f64::is_nan), "got {v:?}");
}

#[test]
fn parquet_round_trips_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.parquet");
    sample().write_parquet(&path).expect("write parquet");
    let df = ParquetReader::new(File::open(&path).expect("open parquet"))
        .finish()
        .expect("read parquet");
    assert_matches_sample(&df);
}

#[test]
fn markdown_has_title_header_rows_and_aligned_pipes() {
    let t = Table::from_columns(
        "Results",
        vec![
            Column::str("model", vec!["dropout", "a|b"]),
            Column::f64("ll", vec![-2.345678, f64::NAN]),
            Column::i64("epochs", vec![40, 4000]),
        ],
    )
    .expect("table");
    let md = t.to_markdown();
    assert!(md.starts_with("### Results\n\n"), "{md}");
    let lines: Vec<&str> = md.lines().skip(2).collect();
    assert_eq!(lines.len(), 4, "{md}");
    assert!(lines[0].starts_with("| model"), "{md}");
    assert!(
        lines[0].contains("| ll") && lines[0].contains("| epochs |"),
        "{md}"
    );
    // Numeric columns are right-aligned in the separator row.
    assert!(lines[1].contains("-:"), "{md}");
    assert!(lines[2].contains("-2.346"), "{md}");
    assert!(lines[2].contains("40"), "{md}");
    // NaN shows as an em dash; a pipe inside a cell is escaped.
    assert!(lines[3].contains("—") && lines[3].contains("4000"), "{md}");
    assert!(lines[3].contains("a\\|b"), "{md}");
    // Aligned: every row has the same width in chars and pipes at the same positions.
    let widths: Vec<usize> = lines.iter().map(|l| l.chars().count()).collect();
    assert!(widths.iter().all(|&w| w == widths[0]), "{md}");
    let pipe_pos = |l: &str| -> Vec<usize> {
        let mut escaped = false;
        l.chars()
            .enumerate()
            .filter_map(|(i, c)| {
                let hit = c == '|' && !escaped;
                escaped = c == '\\';
                hit.then_some(i)
            })
            .collect()
    };
    let first = pipe_pos(lines[0]);
    assert_eq!(first.len(), 4);
    for l in &lines {
        assert_eq!(pipe_pos(l), first, "{md}");
    }
}

#[test]
fn mismatched_lengths_are_rejected() {
    let err = Table::new("t")
        .with_column("a", vec![1.0, 2.0])
        .and_then(|t| t.with_column("b", vec![1_i64]))
        .expect_err("ragged");
    match err {
        ReportError::ColumnLength {
            column,
            len,
            expected,
            ..
        } => {
            assert_eq!((column.as_str(), len, expected), ("b", 1, 2));
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(Table::from_columns(
        "t",
        vec![
            Column::f64("a", vec![1.0]),
            Column::str("s", vec!["x", "y"])
        ]
    )
    .is_err());

    // Public fields allow a ragged table; writers must still refuse it and write nothing.
    let ragged = Table {
        title: "ragged".into(),
        columns: vec![
            Column::new("a", Values::F64(vec![1.0, 2.0])),
            Column::new("b", Values::I64(vec![1])),
        ],
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("r.csv");
    assert!(matches!(
        ragged.write_csv(&path),
        Err(ReportError::ColumnLength { .. })
    ));
    assert!(!path.exists());
}

#[test]
fn duplicate_column_names_are_rejected() {
    let err = Table::new("t")
        .with_column("a", vec![1.0])
        .and_then(|t| t.with_column("a", vec![2.0]))
        .expect_err("duplicate");
    assert!(matches!(err, ReportError::DuplicateColumn { .. }), "{err}");
}

#[test]
fn write_all_writes_three_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = sample().write_all(dir.path(), "rmse").expect("write all");
    let names: Vec<String> = paths
        .iter()
        .map(|p| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(names, ["rmse.csv", "rmse.parquet", "rmse.md"]);
    for p in &paths {
        assert!(
            std::fs::metadata(p).expect("exists").len() > 0,
            "{}",
            p.display()
        );
    }
    let md = std::fs::read_to_string(&paths[2]).expect("read md");
    assert!(md.contains("| boston"), "{md}");
    assert!(md.contains("0.1235"), "{md}");
}

#[test]
fn bad_directory_error_names_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no_such_dir");
    let err = sample()
        .write_all(&missing, "x")
        .expect_err("directory missing");
    let msg = err.to_string();
    assert!(msg.contains("no_such_dir"), "{msg}");
    assert!(msg.contains("CSV"), "{msg}");
}
