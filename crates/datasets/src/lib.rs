//! Verified loaders for the project's vendored data: Mauna Loa CO2, (Fashion-)MNIST and the UCI
//! regression benchmark with the authors' fixed splits.
//!
//! Every file is read through a [`DataRoot`], which checks its sha256 against the folder's
//! `SHA256SUMS` before parsing; every failure is a [`DataError`] naming the file.

pub mod co2;
pub mod error;
pub mod idx;
pub mod mnist;
pub mod own;
pub mod root;
pub mod transform;
pub mod uci;

pub use co2::{Co2Data, WeeklyCo2};
pub use error::{DataError, Result};
pub use idx::IdxImages;
pub use mnist::{ImageSet, Split};
pub use own::{OwnTable, SplitRule};
pub use root::{DataRoot, REPO_DATA_DIR};
pub use uci::{standardise, SetName, UciDataset, UciName, UciSplit};
