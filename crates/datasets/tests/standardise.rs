//! Normalisation uses training rows only, and the validation split follows the authors' 80/20.

mod common;

use common::REPO_DATA;
use mcd_datasets::{standardise, uci, DataRoot, UciDataset, UciName};
use tch::Tensor;

fn boston() -> UciDataset {
    uci::load(&DataRoot::open(REPO_DATA).unwrap(), UciName::BostonHousing).unwrap()
}

fn rows_of(t: &Tensor) -> Vec<Vec<f64>> {
    let cols = t.size()[1] as usize;
    let flat = Vec::<f32>::try_from(t.flatten(0, -1)).unwrap();
    flat.chunks(cols)
        .map(|r| r.iter().map(|&v| f64::from(v)).collect())
        .collect()
}

#[test]
fn standardise_by_hand() {
    // Columns [1, 3, 5] (mean 3, population sd sqrt(8/3)) and [2, 2, 2] (constant: sd 1).
    let (m, s) = standardise(&[1.0, 2.0, 3.0, 2.0, 5.0, 2.0], 3, 2);
    assert_eq!(m, [3.0, 2.0]);
    assert!((s[0] - (8.0f64 / 3.0).sqrt()).abs() < 1e-12);
    assert_eq!(s[1], 1.0);
    // A constant column whose mean would not be exact in floating point still gets sd 1.
    let v = vec![0.1; 7];
    let (m, s) = standardise(&v, 7, 1);
    assert_eq!((m[0], s[0]), (0.1, 1.0));
}

#[test]
fn training_part_is_standardised_and_matches_direct_statistics() {
    let d = boston();
    let s = d.split(0, false).unwrap();
    let (train, test) = &d.splits[0];
    assert_eq!(s.x_train.size(), [train.len() as i64, 13]);
    assert_eq!(s.x_test.size(), [test.len() as i64, 13]);
    assert_eq!(s.y_train.size(), [train.len() as i64, 1]);

    // Statistics recomputed here from the training rows only.
    let n = train.len() as f64;
    for c in 0..13 {
        let col: Vec<f64> = train.iter().map(|&r| d.x[r * 13 + c]).collect();
        let mean = col.iter().sum::<f64>() / n;
        let sd = (col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        assert!(
            (s.x_mean[c] - mean).abs() < 1e-9 * mean.abs().max(1.0),
            "col {c}"
        );
        assert!((s.x_std[c] - sd).abs() < 1e-9 * sd.max(1.0), "col {c}");
    }
    // The standardised training inputs have mean ~0 and sd ~1 per column.
    let xs = rows_of(&s.x_train);
    for c in 0..13 {
        let m = xs.iter().map(|r| r[c]).sum::<f64>() / n;
        let v = xs.iter().map(|r| (r[c] - m).powi(2)).sum::<f64>() / n;
        assert!(m.abs() < 1e-5, "col {c} mean {m}");
        assert!((v - 1.0).abs() < 1e-4, "col {c} var {v}");
    }
    let ys = rows_of(&s.y_train);
    let ym = ys.iter().map(|r| r[0]).sum::<f64>() / n;
    assert!(ym.abs() < 1e-5);
    // Unscaling recovers the raw target of the first test row.
    let yt = rows_of(&s.y_test);
    assert!((yt[0][0] * s.y_std + s.y_mean - d.y[test[0]]).abs() < 1e-4);
}

#[test]
fn test_rows_do_not_affect_statistics() {
    let d = boston();
    let base = d.split(3, false).unwrap();
    // Blow up every test row of split 3: the training statistics and inputs must not move.
    let mut poisoned = d.clone();
    for &r in &d.splits[3].1 {
        for c in 0..13 {
            poisoned.x[r * 13 + c] = 1e9;
        }
        poisoned.y[r] = -1e9;
    }
    let p = poisoned.split(3, false).unwrap();
    assert_eq!(base.x_mean, p.x_mean);
    assert_eq!(base.x_std, p.x_std);
    assert_eq!((base.y_mean, base.y_std), (p.y_mean, p.y_std));
    assert_eq!(rows_of(&base.x_train), rows_of(&p.x_train));
    assert_ne!(rows_of(&base.x_test), rows_of(&p.x_test));
}

#[test]
fn validation_split_is_first_80_percent_unshuffled() {
    let d = boston();
    let (train, _) = &d.splits[0];
    assert_eq!(train.len(), 455);
    let v = d.split(0, true).unwrap();
    // int(0.8 * 455) = 364 training rows, the remaining 91 for validation.
    assert_eq!(v.train_rows, train[..364]);
    assert_eq!(v.test_rows, train[364..]);
    assert_eq!(v.x_train.size(), [364, 13]);
    assert_eq!(v.x_test.size(), [91, 13]);

    // The validation rows (and the split's test rows) must not leak into the statistics.
    let mut poisoned = d.clone();
    for &r in train[364..].iter().chain(&d.splits[0].1) {
        poisoned.y[r] = 1e12;
        poisoned.x[r * 13] = 1e12;
    }
    let p = poisoned.split(0, true).unwrap();
    assert_eq!((v.y_mean, v.y_std), (p.y_mean, p.y_std));
    assert_eq!(v.x_mean, p.x_mean);
    assert_eq!(v.x_std, p.x_std);
    // ... but they differ from the statistics over the whole training split.
    let full = d.split(0, false).unwrap();
    assert_ne!(full.y_mean, v.y_mean);
}

#[test]
fn naval_constant_features_standardise_to_zero() {
    // Naval has features that are constant over the data (README of the UCI repository); they
    // must come out as exact zeros rather than rounding noise divided by a tiny sd.
    let d = uci::load(
        &DataRoot::open(REPO_DATA).unwrap(),
        UciName::NavalPropulsionPlant,
    )
    .unwrap();
    let s = d.split(0, false).unwrap();
    let constant: Vec<usize> = (0..d.n_features)
        .filter(|&c| {
            let first = d.x[c];
            (0..d.n_rows).all(|r| d.x[r * d.n_features + c] == first)
        })
        .collect();
    assert!(!constant.is_empty(), "expected constant naval features");
    let xs = rows_of(&s.x_train);
    for &c in &constant {
        assert_eq!(s.x_std[c], 1.0);
        assert!(xs.iter().all(|r| r[c] == 0.0), "feature {c}");
    }
    assert!(s.x_train.isfinite().all().int64_value(&[]) == 1);
}
