//! Pure parsers for the IDX format of (Fashion-)MNIST (big-endian header, then raw u8 payload).

use std::path::Path;

use crate::error::{DataError, Result};

/// Magic number of an IDX file of u8 images (type 0x08, 3 dimensions).
pub const IMAGES_MAGIC: u32 = 2051;
/// Magic number of an IDX file of u8 labels (type 0x08, 1 dimension).
pub const LABELS_MAGIC: u32 = 2049;

/// Decoded images: `pixels` holds `n * rows * cols` bytes, image-major then row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxImages {
    /// Number of images.
    pub n: usize,
    /// Rows per image.
    pub rows: usize,
    /// Columns per image.
    pub cols: usize,
    /// Raw pixels 0..=255.
    pub pixels: Vec<u8>,
}

/// Parses an uncompressed IDX image file; `path` is only used in errors.
pub fn parse_images(bytes: &[u8], path: &Path) -> Result<IdxImages> {
    let header = header(bytes, path, IMAGES_MAGIC, 4)?;
    let (n, rows, cols) = (header[1], header[2], header[3]);
    let payload = n
        .checked_mul(rows)
        .and_then(|v| v.checked_mul(cols))
        .ok_or_else(|| DataError::Inconsistent {
            path: path.to_path_buf(),
            msg: format!("header dimensions {n} x {rows} x {cols} overflow"),
        })?;
    let pixels = payload_of(bytes, path, 16, payload)?;
    Ok(IdxImages {
        n,
        rows,
        cols,
        pixels: pixels.to_vec(),
    })
}

/// Parses an uncompressed IDX label file; `path` is only used in errors.
pub fn parse_labels(bytes: &[u8], path: &Path) -> Result<Vec<u8>> {
    let header = header(bytes, path, LABELS_MAGIC, 2)?;
    Ok(payload_of(bytes, path, 8, header[1])?.to_vec())
}

/// Checks the magic number and returns the `words` big-endian u32 header words.
fn header(bytes: &[u8], path: &Path, magic: u32, words: usize) -> Result<Vec<usize>> {
    // The magic is checked as soon as 4 bytes exist: a wrong file type is the more useful report.
    if bytes.len() >= 4 {
        let found = be_u32(bytes, 0);
        if found != magic {
            return Err(DataError::BadMagic {
                path: path.to_path_buf(),
                found,
                expected: magic,
            });
        }
    }
    if bytes.len() < 4 * words {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected: 4 * words,
            got: bytes.len(),
        });
    }
    Ok((0..words).map(|i| be_u32(bytes, 4 * i) as usize).collect())
}

/// The payload after a `start`-byte header, which must be exactly `len` bytes long.
fn payload_of<'a>(bytes: &'a [u8], path: &Path, start: usize, len: usize) -> Result<&'a [u8]> {
    let expected = start.saturating_add(len);
    if bytes.len() < expected {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected,
            got: bytes.len(),
        });
    }
    if bytes.len() > expected {
        return Err(DataError::Inconsistent {
            path: path.to_path_buf(),
            msg: format!(
                "{} bytes after the {len}-byte payload the header announces (file {} bytes, expected {expected})",
                bytes.len() - expected,
                bytes.len()
            ),
        });
    }
    Ok(&bytes[start..])
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}
