//! Broken inputs built in a temporary folder: each gives the expected typed error naming the
//! file, never a panic.

mod common;

use common::{idx_images, idx_labels, names_file, sha256_hex, Fixture};
use mcd_datasets::idx::{self, IMAGES_MAGIC, LABELS_MAGIC};
use mcd_datasets::{co2, mnist, uci, DataError, DataRoot, Split, UciName};
use std::path::Path;

// ---- DataRoot --------------------------------------------------------------------------------

#[test]
fn reads_verified_and_gunzipped() {
    let mut f = Fixture::new();
    f.put("a/plain.txt", b"hello")
        .put("a/packed.txt.gz", b"compressed text");
    f.finish();
    let root = f.root();
    assert_eq!(root.read("a/plain.txt").unwrap(), b"hello");
    assert_eq!(root.read("./a/packed.txt.gz").unwrap(), b"compressed text");
    assert_eq!(root.dir(), f.dir.path());
}

#[test]
fn corrupted_byte_is_a_checksum_mismatch() {
    let mut f = Fixture::new();
    f.put("x.txt.gz", b"some data that will be damaged");
    f.finish();
    let path = f.path("x.txt.gz");
    let mut bytes = std::fs::read(&path).unwrap();
    let expected = sha256_hex(&bytes);
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let err = f.root().read("x.txt.gz").unwrap_err();
    match &err {
        DataError::ChecksumMismatch {
            expected: e,
            actual,
            ..
        } => {
            assert_eq!(e, &expected);
            assert_eq!(actual, &sha256_hex(&bytes));
        }
        other => panic!("expected ChecksumMismatch, got {other:?}"),
    }
    names_file(&err, &path);
}

#[test]
fn file_absent_from_manifest() {
    let mut f = Fixture::new();
    f.put("listed.txt", b"1");
    f.finish();
    std::fs::write(f.path("unlisted.txt"), b"2").unwrap();
    let err = f.root().read("unlisted.txt").unwrap_err();
    assert!(matches!(err, DataError::NotInManifest { .. }), "{err:?}");
    names_file(&err, &f.path("unlisted.txt"));
}

#[test]
fn listed_file_missing_on_disk() {
    let mut f = Fixture::new();
    f.put("gone.txt", b"1");
    f.finish();
    std::fs::remove_file(f.path("gone.txt")).unwrap();
    let err = f.root().read("gone.txt").unwrap_err();
    assert!(matches!(err, DataError::Missing { .. }), "{err:?}");
    names_file(&err, &f.path("gone.txt"));
}

#[test]
fn missing_or_malformed_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let err = DataRoot::open(dir.path()).unwrap_err();
    assert!(matches!(err, DataError::Missing { .. }), "{err:?}");
    names_file(&err, &dir.path().join("SHA256SUMS"));

    let good = sha256_hex(b"");
    std::fs::write(
        dir.path().join("SHA256SUMS"),
        format!("{good}  a.txt\nnot-a-digest  b.txt\n"),
    )
    .unwrap();
    let err = DataRoot::open(dir.path()).unwrap_err();
    assert!(matches!(err, DataError::Parse { line: 2, .. }), "{err:?}");
    names_file(&err, &dir.path().join("SHA256SUMS"));
}

#[test]
fn gz_name_without_gzip_content_is_an_io_error() {
    let mut f = Fixture::new();
    f.put_raw("fake.gz", b"this is not gzip");
    f.finish();
    let err = f.root().read("fake.gz").unwrap_err();
    assert!(
        matches!(
            err,
            DataError::Io {
                action: "gunzip",
                ..
            }
        ),
        "{err:?}"
    );
    names_file(&err, &f.path("fake.gz"));
}

// ---- IDX parsers -----------------------------------------------------------------------------

#[test]
fn idx_parses_a_well_formed_file() {
    let p = Path::new("imgs");
    let pixels: Vec<u8> = (0..12).collect();
    let img = idx::parse_images(&idx_images(IMAGES_MAGIC, 3, 2, 2, &pixels), p).unwrap();
    assert_eq!((img.n, img.rows, img.cols), (3, 2, 2));
    assert_eq!(img.pixels, pixels);
    let labels = idx::parse_labels(&idx_labels(LABELS_MAGIC, 3, &[7, 0, 9]), p).unwrap();
    assert_eq!(labels, [7, 0, 9]);
}

#[test]
fn idx_truncated_header_and_payload() {
    let p = Path::new("some/images-idx3");
    let full = idx_images(IMAGES_MAGIC, 2, 2, 2, &[1; 8]);
    // Header cut after 10 bytes.
    let err = idx::parse_images(&full[..10], p).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::Truncated {
                expected: 16,
                got: 10,
                ..
            }
        ),
        "{err:?}"
    );
    names_file(&err, p);
    // Payload two bytes short of 2 x 2 x 2.
    let err = idx::parse_images(&full[..22], p).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::Truncated {
                expected: 24,
                got: 22,
                ..
            }
        ),
        "{err:?}"
    );
    // Payload longer than the header says.
    let mut long = full.clone();
    long.push(0);
    let err = idx::parse_images(&long, p).unwrap_err();
    assert!(matches!(err, DataError::Inconsistent { .. }), "{err:?}");
    names_file(&err, p);
    // Labels: header says 5, only 3 present.
    let err = idx::parse_labels(&idx_labels(LABELS_MAGIC, 5, &[1, 2, 3]), p).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::Truncated {
                expected: 13,
                got: 11,
                ..
            }
        ),
        "{err:?}"
    );
    let err = idx::parse_labels(&[], p).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::Truncated {
                expected: 8,
                got: 0,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn idx_wrong_magic() {
    let p = Path::new("labels-as-images");
    let labels = idx_labels(LABELS_MAGIC, 2, &[1, 2]);
    let err = idx::parse_images(&labels, p).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::BadMagic {
                found: 2049,
                expected: 2051,
                ..
            }
        ),
        "{err:?}"
    );
    names_file(&err, p);
    let err = idx::parse_labels(&idx_images(IMAGES_MAGIC, 1, 1, 1, &[0]), p).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::BadMagic {
                found: 2051,
                expected: 2049,
                ..
            }
        ),
        "{err:?}"
    );
}

// ---- MNIST through a data root ---------------------------------------------------------------

const IMGS: &str = "mnist/t10k-images-idx3-ubyte.gz";
const LBLS: &str = "mnist/t10k-labels-idx1-ubyte.gz";

#[test]
fn mnist_fixture_loads_and_scales_by_256() {
    let mut f = Fixture::new();
    let pixels: Vec<u8> = vec![0, 64, 128, 255, 255, 128, 64, 0];
    f.put(IMGS, &idx_images(IMAGES_MAGIC, 2, 2, 2, &pixels))
        .put(LBLS, &idx_labels(LABELS_MAGIC, 2, &[3, 9]));
    f.finish();
    let set = mnist::load(&f.root(), Split::Test).unwrap();
    assert_eq!(set.images.size(), [2, 1, 2, 2]);
    let v = Vec::<f32>::try_from(set.images.flatten(0, -1)).unwrap();
    assert_eq!(
        v,
        [0.0, 0.25, 0.5, 255.0 / 256.0, 255.0 / 256.0, 0.5, 0.25, 0.0]
    );
    assert_eq!(Vec::<i64>::try_from(&set.labels).unwrap(), [3, 9]);
}

#[test]
fn mnist_label_image_count_mismatch() {
    let mut f = Fixture::new();
    f.put(IMGS, &idx_images(IMAGES_MAGIC, 2, 2, 2, &[0; 8]))
        .put(LBLS, &idx_labels(LABELS_MAGIC, 3, &[1, 2, 3]));
    f.finish();
    let err = mnist::load(&f.root(), Split::Test).unwrap_err();
    assert!(matches!(err, DataError::Inconsistent { .. }), "{err:?}");
    names_file(&err, &f.path(LBLS));
    assert!(err
        .to_string()
        .contains(&f.path(IMGS).display().to_string()));
}

#[test]
fn mnist_label_out_of_class_range() {
    let mut f = Fixture::new();
    f.put(IMGS, &idx_images(IMAGES_MAGIC, 2, 1, 1, &[0, 0]))
        .put(LBLS, &idx_labels(LABELS_MAGIC, 2, &[4, 10]));
    f.finish();
    let err = mnist::load(&f.root(), Split::Test).unwrap_err();
    assert!(matches!(err, DataError::Inconsistent { .. }), "{err:?}");
    assert!(err.to_string().contains("label 10"), "{err}");
    names_file(&err, &f.path(LBLS));
}

#[test]
fn mnist_truncated_and_swapped_files_through_root() {
    let mut f = Fixture::new();
    let mut short = idx_images(IMAGES_MAGIC, 2, 2, 2, &[0; 8]);
    short.truncate(20);
    f.put(IMGS, &short)
        .put(LBLS, &idx_labels(LABELS_MAGIC, 2, &[1, 2]));
    f.finish();
    let err = mnist::load(&f.root(), Split::Test).unwrap_err();
    assert!(matches!(err, DataError::Truncated { .. }), "{err:?}");
    names_file(&err, &f.path(IMGS));

    // Images file holding labels: the magic number catches it.
    let mut f = Fixture::new();
    f.put(IMGS, &idx_labels(LABELS_MAGIC, 2, &[1, 2]))
        .put(LBLS, &idx_labels(LABELS_MAGIC, 2, &[1, 2]));
    f.finish();
    let err = mnist::load(&f.root(), Split::Test).unwrap_err();
    assert!(matches!(err, DataError::BadMagic { .. }), "{err:?}");
    names_file(&err, &f.path(IMGS));

    // Train files absent from the manifest.
    let err = mnist::load(&f.root(), Split::Train).unwrap_err();
    assert!(matches!(err, DataError::NotInManifest { .. }), "{err:?}");
    names_file(&err, &f.path("mnist/train-images-idx3-ubyte.gz"));
}

// ---- CO2 CSV ---------------------------------------------------------------------------------

#[test]
fn co2_non_number_names_file_and_line() {
    let mut f = Fixture::new();
    f.put(co2::GAL_TRAIN, b"x,y\n-1.0,0.5\n0.0,0.1\n1.0,abc\n")
        .put(co2::GAL_TEST_X, b"x\n1.5\n2.0\n");
    f.finish();
    let err = co2::load_gal(&f.root()).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::Parse {
                line: 4,
                column: 2,
                ..
            }
        ),
        "{err:?}"
    );
    names_file(&err, &f.path(co2::GAL_TRAIN));
    assert!(err.to_string().contains(":4:"), "{err}");
    assert!(err.to_string().contains("abc"), "{err}");
}

#[test]
fn co2_small_fixture_loads() {
    let mut f = Fixture::new();
    f.put(co2::GAL_TRAIN, b"x,y\n-1.0,0.5\n1.0,-0.5\n")
        .put(co2::GAL_TEST_X, b"x\n1.5\n2.0\n2.5\n");
    f.finish();
    let d = co2::load_gal(&f.root()).unwrap();
    assert_eq!(d.x_train.size(), [2, 1]);
    assert_eq!(d.x_test.size(), [3, 1]);
    assert_eq!(
        Vec::<f32>::try_from(d.y_train.flatten(0, -1)).unwrap(),
        [0.5, -0.5]
    );
}

#[test]
fn co2_wrong_header_missing_field_and_bad_date() {
    let mut f = Fixture::new();
    f.put(co2::GAL_TRAIN, b"a,b\n1,2\n")
        .put(co2::GAL_TEST_X, b"x\n1\n")
        .put(co2::WEEKLY, b"date,co2\n19580329,316.1\n19581345,317.0\n");
    f.finish();
    let err = co2::load_gal(&f.root()).unwrap_err();
    assert!(matches!(err, DataError::Parse { line: 1, .. }), "{err:?}");
    names_file(&err, &f.path(co2::GAL_TRAIN));
    let err = co2::load_weekly(&f.root()).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::Parse {
                line: 3,
                column: 1,
                ..
            }
        ),
        "{err:?}"
    );
    names_file(&err, &f.path(co2::WEEKLY));

    let mut f = Fixture::new();
    f.put(co2::GAL_TRAIN, b"x,y\n1,2\n3,\n")
        .put(co2::GAL_TEST_X, b"x\n1\n");
    f.finish();
    let err = co2::load_gal(&f.root()).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::Parse {
                line: 3,
                column: 2,
                ..
            }
        ),
        "{err:?}"
    );

    // Empty co2 values are allowed in the weekly record.
    let mut f = Fixture::new();
    f.put(co2::WEEKLY, b"date,co2\n19580329,316.1\n19580405,\n");
    f.finish();
    let w = co2::load_weekly(&f.root()).unwrap();
    assert_eq!(w.len(), 2);
    assert_eq!(w[1].co2, None);
    assert_eq!(w[1].date, 19580405);
}

// ---- UCI -------------------------------------------------------------------------------------

/// A 5-row yacht-shaped data set: columns f0 f1 target; one split, train 0..3, test 3..5.
fn uci_fixture(overrides: &[(&str, &str)]) -> Fixture {
    let mut files: Vec<(&str, &str)> = vec![
        ("data.txt", "1 7 2\n2 7 4\n3 7 6\n10 7 100\n-5 7 50\n\n"),
        ("index_features.txt", "0\n1\n"),
        ("index_target.txt", "2\n"),
        ("index_train_0.txt", "0\n1\n2\n"),
        ("index_test_0.txt", "3\n4\n"),
        ("n_splits.txt", "1\n"),
        ("n_hidden.txt", "50\n"),
        ("n_epochs.txt", "40\n"),
        ("dropout_rates.txt", "0.005\n0.01\n"),
        ("tau_values.txt", "0.25\n0.5"),
    ];
    for (name, content) in overrides {
        match files.iter_mut().find(|(n, _)| n == name) {
            Some(entry) => entry.1 = content,
            None => files.push((name, content)),
        }
    }
    let mut f = Fixture::new();
    for (name, content) in files {
        if !content.is_empty() {
            f.put(&format!("uci/yacht/{name}.gz"), content.as_bytes());
        }
    }
    f.finish();
    f
}

#[test]
fn uci_fixture_loads_and_standardises_by_hand() {
    let f = uci_fixture(&[]);
    let d = uci::load(&f.root(), UciName::Yacht).unwrap();
    assert_eq!((d.n_rows, d.n_features), (5, 2));
    assert_eq!(d.x, [1.0, 7.0, 2.0, 7.0, 3.0, 7.0, 10.0, 7.0, -5.0, 7.0]);
    assert_eq!(d.y, [2.0, 4.0, 6.0, 100.0, 50.0]);
    assert_eq!(d.tau_values, [0.25, 0.5]);
    let s = d.split(0, false).unwrap();
    // Training rows 0..3 only: x0 = 1, 2, 3 -> mean 2, population sd sqrt(2/3);
    // x1 constant 7 -> sd 1; y = 2, 4, 6 -> mean 4, sd sqrt(8/3).
    let sd0 = (2.0f64 / 3.0).sqrt();
    assert_eq!(s.x_mean, [2.0, 7.0]);
    assert!((s.x_std[0] - sd0).abs() < 1e-12);
    assert_eq!(s.x_std[1], 1.0);
    assert_eq!(s.y_mean, 4.0);
    assert!((s.y_std - (8.0f64 / 3.0).sqrt()).abs() < 1e-12);
    let xte = Vec::<f32>::try_from(s.x_test.flatten(0, -1)).unwrap();
    let want = [(10.0 - 2.0) / sd0, 0.0, (-5.0 - 2.0) / sd0, 0.0];
    for (a, b) in xte.iter().zip(want) {
        assert!((f64::from(*a) - b).abs() < 1e-5, "{a} vs {b}");
    }
    let yte = Vec::<f32>::try_from(s.y_test.flatten(0, -1)).unwrap();
    let ysd = (8.0f64 / 3.0).sqrt();
    assert!((f64::from(yte[0]) - 96.0 / ysd).abs() < 1e-4);
    assert_eq!(s.x_train.size(), [3, 2]);
    assert_eq!(s.y_test.size(), [2, 1]);
    assert_eq!((s.train_rows, s.test_rows), (vec![0, 1, 2], vec![3, 4]));
}

#[test]
fn uci_index_out_of_range() {
    let f = uci_fixture(&[("index_test_0.txt", "3\n7\n")]);
    let err = uci::load(&f.root(), UciName::Yacht).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::IndexOutOfRange {
                line: 2,
                index: 7,
                len: 5,
                ..
            }
        ),
        "{err:?}"
    );
    names_file(&err, &f.path("uci/yacht/index_test_0.txt.gz"));

    let f = uci_fixture(&[("index_target.txt", "3\n")]);
    let err = uci::load(&f.root(), UciName::Yacht).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::IndexOutOfRange {
                line: 1,
                index: 3,
                len: 3,
                ..
            }
        ),
        "{err:?}"
    );
    names_file(&err, &f.path("uci/yacht/index_target.txt.gz"));
}

#[test]
fn uci_overlapping_split_and_duplicates() {
    let f = uci_fixture(&[("index_test_0.txt", "3\n2\n")]);
    let err = uci::load(&f.root(), UciName::Yacht).unwrap_err();
    assert!(matches!(err, DataError::Inconsistent { .. }), "{err:?}");
    assert!(err.to_string().contains("row 2"), "{err}");
    names_file(&err, &f.path("uci/yacht/index_test_0.txt.gz"));

    let f = uci_fixture(&[("index_train_0.txt", "0\n1\n0\n")]);
    let err = uci::load(&f.root(), UciName::Yacht).unwrap_err();
    assert!(matches!(err, DataError::Inconsistent { .. }), "{err:?}");
    names_file(&err, &f.path("uci/yacht/index_train_0.txt.gz"));
}

#[test]
fn uci_missing_split_files() {
    let f = uci_fixture(&[("n_splits.txt", "2\n")]);
    let err = uci::load(&f.root(), UciName::Yacht).unwrap_err();
    assert!(matches!(err, DataError::Missing { .. }), "{err:?}");
    names_file(&err, &f.path("uci/yacht/index_train_1.txt.gz"));

    // Requesting a split beyond n_splits.
    let f = uci_fixture(&[]);
    let d = uci::load(&f.root(), UciName::Yacht).unwrap();
    let err = d.split(1, false).unwrap_err();
    assert!(matches!(err, DataError::Missing { .. }), "{err:?}");
}

#[test]
fn uci_bad_numbers_and_ragged_rows() {
    let f = uci_fixture(&[("data.txt", "1 7 2\n2 x 4\n")]);
    let err = uci::load(&f.root(), UciName::Yacht).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::Parse {
                line: 2,
                column: 2,
                ..
            }
        ),
        "{err:?}"
    );
    names_file(&err, &f.path("uci/yacht/data.txt.gz"));

    let f = uci_fixture(&[("data.txt", "1 7 2\n2 7\n")]);
    let err = uci::load(&f.root(), UciName::Yacht).unwrap_err();
    assert!(matches!(err, DataError::Parse { line: 2, .. }), "{err:?}");

    let f = uci_fixture(&[("n_splits.txt", "1 2\n")]);
    let err = uci::load(&f.root(), UciName::Yacht).unwrap_err();
    assert!(matches!(err, DataError::Inconsistent { .. }), "{err:?}");
    names_file(&err, &f.path("uci/yacht/n_splits.txt.gz"));

    let f = uci_fixture(&[("dropout_rates.txt", "0.1\n1.5\n")]);
    let err = uci::load(&f.root(), UciName::Yacht).unwrap_err();
    assert!(matches!(err, DataError::Parse { line: 2, .. }), "{err:?}");

    let f = uci_fixture(&[("index_features.txt", "0\n2\n")]);
    let err = uci::load(&f.root(), UciName::Yacht).unwrap_err();
    assert!(matches!(err, DataError::Inconsistent { .. }), "{err:?}");
    names_file(&err, &f.path("uci/yacht/index_features.txt.gz"));
}

#[test]
fn uci_absent_file_is_not_in_manifest() {
    // An empty override means "do not write the file".
    let f = uci_fixture(&[("tau_values.txt", "")]);
    let err = uci::load(&f.root(), UciName::Yacht).unwrap_err();
    assert!(matches!(err, DataError::NotInManifest { .. }), "{err:?}");
    names_file(&err, &f.path("uci/yacht/tau_values.txt.gz"));
}
