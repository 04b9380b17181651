//! MNIST and the Fashion-MNIST test set as tensors (pixels scaled by 1/256, as Caffe's LeNet).

use std::path::Path;

use tch::Tensor;

use crate::error::{DataError, Result};
use crate::idx;
use crate::root::DataRoot;

/// Number of classes of both data sets; labels must be below it.
pub const N_CLASSES: u8 = 10;

/// Which half of a data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// 60000 training images.
    Train,
    /// 10000 test images (`t10k`).
    Test,
}

impl Split {
    fn prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }
}

/// Images and labels of one split.
#[derive(Debug)]
pub struct ImageSet {
    /// f32 images [N, 1, rows, cols], pixel / 256.0 (in [0, 255/256]).
    pub images: Tensor,
    /// i64 labels [N], each in 0..10.
    pub labels: Tensor,
}

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.size().first().copied().unwrap_or(0) as usize
    }

    /// Whether the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Loads one MNIST split from `mnist/` in `root`.
pub fn load(root: &DataRoot, split: Split) -> Result<ImageSet> {
    load_pair(root, "mnist", split)
}

/// Loads the Fashion-MNIST test set (the only part vendored), an out-of-distribution set for MNIST.
pub fn fashion_mnist_test(root: &DataRoot) -> Result<ImageSet> {
    load_pair(root, "fashion-mnist", Split::Test)
}

/// The MNIST files of `split` (images, labels), relative to the data folder.
pub fn files(split: Split) -> (String, String) {
    pair_files("mnist", split)
}

fn pair_files(dir: &str, split: Split) -> (String, String) {
    (
        format!("{dir}/{}-images-idx3-ubyte.gz", split.prefix()),
        format!("{dir}/{}-labels-idx1-ubyte.gz", split.prefix()),
    )
}

fn load_pair(root: &DataRoot, dir: &str, split: Split) -> Result<ImageSet> {
    let (images_rel, labels_rel) = pair_files(dir, split);
    let images_path = root.path(&images_rel);
    let labels_path = root.path(&labels_rel);
    let images = idx::parse_images(&root.read(&images_rel)?, &images_path)?;
    let labels = idx::parse_labels(&root.read(&labels_rel)?, &labels_path)?;
    from_idx(&images, &labels, &images_path, &labels_path)
}

/// Builds an [`ImageSet`] from parsed IDX data, checking label range and counts.
pub fn from_idx(
    images: &idx::IdxImages,
    labels: &[u8],
    images_path: &Path,
    labels_path: &Path,
) -> Result<ImageSet> {
    if labels.len() != images.n {
        return Err(DataError::Inconsistent {
            path: labels_path.to_path_buf(),
            msg: format!(
                "{} labels but {} has {} images",
                labels.len(),
                images_path.display(),
                images.n
            ),
        });
    }
    if let Some((i, &l)) = labels.iter().enumerate().find(|(_, &l)| l >= N_CLASSES) {
        return Err(DataError::Inconsistent {
            path: labels_path.to_path_buf(),
            msg: format!("label {l} of item {i} is not a class 0..{N_CLASSES}"),
        });
    }
    // One bulk conversion and one tensor: per-pixel tensor ops would take minutes for 47M pixels.
    let pixels: Vec<f32> = images
        .pixels
        .iter()
        .map(|&p| f32::from(p) / 256.0)
        .collect();
    let labels: Vec<i64> = labels.iter().map(|&l| i64::from(l)).collect();
    let dims = [images.n, 1, images.rows, images.cols].map(|d| d as i64);
    Ok(ImageSet {
        images: Tensor::from_slice(&pixels).reshape(dims),
        labels: Tensor::from_slice(&labels),
    })
}
