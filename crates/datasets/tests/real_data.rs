//! The vendored files load with the shapes and facts documented in data/README.md.

mod common;

use common::REPO_DATA;
use mcd_datasets::{co2, mnist, uci, DataError, DataRoot, Split, UciName};
use tch::{Kind, Tensor};

fn root() -> DataRoot {
    DataRoot::open(REPO_DATA).expect("repository data folder opens")
}

fn to_vec_f32(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(t.flatten(0, -1)).expect("f32 tensor")
}

fn class_counts(labels: &Tensor) -> Vec<i64> {
    let v = Vec::<i64>::try_from(labels).expect("i64 labels");
    let mut counts = vec![0; 10];
    for l in v {
        counts[usize::try_from(l).expect("non-negative label")] += 1;
    }
    counts
}

#[test]
fn manifest_matches_every_stored_file() {
    // The manifest lists 411 files (README: 3 + 4 + 2 + 402 UCI files) and each one verifies.
    let text = std::fs::read_to_string(format!("{REPO_DATA}/SHA256SUMS")).unwrap();
    let rels: Vec<&str> = text.lines().map(|l| &l[66..]).collect();
    assert_eq!(rels.len(), 411);
    let root = root();
    for rel in rels {
        root.read(rel).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn co2_gal_series() {
    let d = co2::load_gal(&root()).unwrap();
    assert_eq!(d.x_train.size(), [272, 1]);
    assert_eq!(d.y_train.size(), [272, 1]);
    assert_eq!(d.x_test.size(), [1000, 1]);
    assert_eq!(d.x_train.kind(), Kind::Float);
    let x = to_vec_f32(&d.x_train);
    let y = to_vec_f32(&d.y_train);
    let xt = to_vec_f32(&d.x_test);
    assert!((x[0] + 1.7257).abs() < 1e-4, "x starts at {}", x[0]);
    assert!((x[271] - 1.7257).abs() < 1e-4, "x ends at {}", x[271]);
    // Evenly spaced months: step 0.012736.
    for w in x.windows(2) {
        assert!(
            (w[1] - w[0] - 0.012736).abs() < 1e-5,
            "step {}",
            w[1] - w[0]
        );
    }
    // y is standardised: mean 0, sd 1.
    let m = y.iter().map(|&v| f64::from(v)).sum::<f64>() / 272.0;
    let sd = (y.iter().map(|&v| (f64::from(v) - m).powi(2)).sum::<f64>() / 272.0).sqrt();
    assert!(m.abs() < 1e-3, "y mean {m}");
    assert!((sd - 1.0).abs() < 1e-2, "y sd {sd}");
    assert!((xt[0] - 1.7257).abs() < 1e-4);
    assert!(
        (xt[999] - 3.7237).abs() < 1e-4,
        "test x ends at {}",
        xt[999]
    );
    for w in xt.windows(2) {
        assert!((w[1] - w[0] - 0.002).abs() < 1e-5);
    }
}

#[test]
fn co2_weekly_record() {
    let w = co2::load_weekly(&root()).unwrap();
    assert_eq!(w.len(), 2284);
    assert_eq!(w.iter().filter(|r| r.co2.is_none()).count(), 59);
    assert_eq!(w[0].date, 19580329);
    assert_eq!(w[0].co2, Some(316.1));
    assert_eq!(w[2283].date, 20011229);
    assert!(w.windows(2).all(|p| p[0].date < p[1].date));
    assert!(w
        .iter()
        .filter_map(|r| r.co2)
        .all(|c| (300.0..400.0).contains(&c)));
}

#[test]
fn mnist_train_and_test() {
    let root = root();
    let test = mnist::load(&root, Split::Test).unwrap();
    assert_eq!(test.images.size(), [10000, 1, 28, 28]);
    assert_eq!(test.labels.size(), [10000]);
    assert_eq!(test.images.kind(), Kind::Float);
    assert_eq!(test.labels.kind(), Kind::Int64);
    // Published class counts of the MNIST test set.
    assert_eq!(
        class_counts(&test.labels),
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
    // The paper's rotated "1" of a published reproduction.
    assert_eq!(test.labels.int64_value(&[9978]), 1);

    let train = mnist::load(&root, Split::Train).unwrap();
    assert_eq!(train.images.size(), [60000, 1, 28, 28]);
    assert_eq!(train.len(), 60000);
    assert_eq!(
        class_counts(&train.labels),
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    // Caffe's scale 1/256: the brightest pixel is 255/256, and the well-known mean intensity of
    // the training set (0.1307 on the /255 scale) becomes 0.1307 * 255/256.
    let max = train.images.max().double_value(&[]);
    let min = train.images.min().double_value(&[]);
    assert_eq!(max, 255.0 / 256.0);
    assert_eq!(min, 0.0);
    let mean = train.images.mean(Kind::Float).double_value(&[]);
    assert!(
        (mean - 0.1307 * 255.0 / 256.0).abs() < 5e-4,
        "mean pixel {mean}"
    );
}

#[test]
fn fashion_mnist_test_set() {
    let f = mnist::fashion_mnist_test(&root()).unwrap();
    assert_eq!(f.images.size(), [10000, 1, 28, 28]);
    // The Fashion-MNIST test set is balanced: 1000 per class.
    assert_eq!(class_counts(&f.labels), [1000; 10]);
    // Different images from MNIST's test set (it is an out-of-distribution set).
    let m = mnist::load(&root(), Split::Test).unwrap();
    let diff = (&f.images - &m.images)
        .abs()
        .mean(Kind::Float)
        .double_value(&[]);
    assert!(diff > 0.1, "mean abs difference to MNIST {diff}");
}

#[test]
fn uci_sets_match_the_readme_table() {
    let table: [(UciName, usize, usize, usize); 9] = [
        (UciName::BostonHousing, 506, 13, 20),
        (UciName::Concrete, 1030, 8, 20),
        (UciName::Energy, 768, 8, 20),
        (UciName::Kin8nm, 8192, 8, 20),
        (UciName::NavalPropulsionPlant, 11934, 16, 20),
        (UciName::PowerPlant, 9568, 4, 20),
        (UciName::ProteinTertiaryStructure, 45730, 9, 5),
        (UciName::WineQualityRed, 1599, 11, 20),
        (UciName::Yacht, 308, 6, 20),
    ];
    let root = root();
    for (name, rows, features, splits) in table {
        let d = uci::load(&root, name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(d.n_rows, rows, "{name}");
        assert_eq!(d.n_features, features, "{name}");
        assert_eq!(d.x.len(), rows * features, "{name}");
        assert_eq!(d.y.len(), rows, "{name}");
        assert_eq!(d.splits.len(), splits, "{name}");
        let protein = name == UciName::ProteinTertiaryStructure;
        assert_eq!(d.n_hidden, if protein { 100 } else { 50 }, "{name}");
        assert_eq!(d.n_epochs, if protein { 20 } else { 40 }, "{name}");
        assert_eq!(d.dropout_rates, [0.005, 0.01, 0.05, 0.1], "{name}");
        assert_eq!(d.tau_values.len(), 3, "{name}");
        // README: train and test of each split partition the rows.
        for (k, (tr, te)) in d.splits.iter().enumerate() {
            let mut all: Vec<usize> = tr.iter().chain(te).copied().collect();
            all.sort_unstable();
            assert_eq!(all, (0..rows).collect::<Vec<_>>(), "{name} split {k}");
        }
    }
}

#[test]
fn boston_first_row_is_the_classic_one() {
    let d = uci::load(&root(), UciName::BostonHousing).unwrap();
    // CRIM ZN INDUS CHAS NOX RM AGE DIS RAD TAX PTRATIO B LSTAT, target MEDV.
    let first = [
        0.00632, 18.0, 2.31, 0.0, 0.538, 6.575, 65.2, 4.09, 1.0, 296.0, 15.3, 396.9, 4.98,
    ];
    assert_eq!(&d.x[..13], &first);
    assert_eq!(d.y[0], 24.0);
    assert_eq!(d.tau_values, [0.1, 0.15, 0.2]);
}

#[test]
fn year_prediction_is_reported_missing() {
    let root = root();
    let err = uci::load(&root, UciName::YearPredictionMsd).unwrap_err();
    assert!(matches!(err, DataError::Missing { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("Year Prediction MSD"), "{msg}");
    assert!(msg.contains("uci/year-prediction-msd"), "{msg}");
}

#[test]
fn uci_names_round_trip() {
    for name in UciName::ALL {
        assert_eq!(name.to_string().parse::<UciName>().unwrap(), name);
    }
    assert_eq!(
        "naval-propulsion-plant".parse::<UciName>().unwrap(),
        UciName::NavalPropulsionPlant
    );
    assert_eq!(
        "BOSTONHOUSING".parse::<UciName>().unwrap(),
        UciName::BostonHousing
    );
    let err = "boston".parse::<UciName>().unwrap_err();
    assert!(err.to_string().contains("bostonHousing"), "{err}");
    // Every vendored name has a directory in the repository data folder.
    for name in UciName::VENDORED {
        let dir = std::path::Path::new(REPO_DATA)
            .join("uci")
            .join(name.dir_name());
        assert!(dir.is_dir(), "{}", dir.display());
    }
}
