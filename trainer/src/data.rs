//! Datasets: loading (CSV, and IDX: the MNIST family; either raw or
//! gzip-compressed), splitting and batching. Loaders validate everything and
//! name the file, the line or byte offset, and what was expected; they never
//! panic on bad input.

use crate::rng::Rng;
use compiler::ir::Tensor;
use std::io::Read;
use std::path::Path;

/// Rows of features with integer class labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub features: Features,
    pub labels: Vec<i32>,
    pub n_features: usize,
}

/// Feature storage, row-major. Image data stays in bytes (a quarter of the
/// memory of f32) until a batch is formed; the scale is applied then, as
/// `byte as f32 * scale`, the same f32 product a CSV row gets when loaded.
#[derive(Clone, Debug, PartialEq)]
pub enum Features {
    F32(Vec<f32>),
    U8 { values: Vec<u8>, scale: f32 },
}

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}:{line}: {message}")]
    Parse { path: String, line: usize, message: String },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    /// A binary file: `offset` is the byte offset (in the decompressed
    /// stream for gzip files).
    #[error("{path}: at byte {offset}: {message}")]
    At { path: String, offset: u64, message: String },
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// The rows at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let d = self.n_features;
        let labels = indices.iter().map(|&i| self.labels[i]).collect();
        let features = match &self.features {
            Features::F32(v) => {
                Features::F32(indices.iter().flat_map(|&i| v[i * d..(i + 1) * d].iter().copied()).collect())
            }
            Features::U8 { values, scale } => Features::U8 {
                values: indices.iter().flat_map(|&i| values[i * d..(i + 1) * d].iter().copied()).collect(),
                scale: *scale,
            },
        };
        Dataset { features, labels, n_features: d }
    }
    /// The batch of rows `order[start..start + size]` as (x: f32[size, d], y: i32[size]).
    pub fn batch(&self, order: &[usize], start: usize, size: usize) -> (Tensor, Tensor) {
        let d = self.n_features;
        let rows = &order[start..start + size];
        let mut xs = Vec::with_capacity(size * d);
        match &self.features {
            Features::F32(v) => {
                for &i in rows {
                    xs.extend_from_slice(&v[i * d..(i + 1) * d]);
                }
            }
            Features::U8 { values, scale } => {
                for &i in rows {
                    xs.extend(values[i * d..(i + 1) * d].iter().map(|&b| b as f32 * scale));
                }
            }
        }
        let ys = rows.iter().map(|&i| self.labels[i]).collect();
        (Tensor::f32(&[size, d], xs), Tensor::i32(&[size], ys))
    }
}

/// Gzip (by its magic bytes, not the file name) is decompressed; bytes after
/// the gzip stream are an error, not silently ignored.
fn decompress(name: &str, raw: &[u8]) -> Result<Vec<u8>, DataError> {
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw.to_vec());
    }
    let mut out = Vec::new();
    let mut dec = flate2::bufread::GzDecoder::new(raw);
    dec.read_to_end(&mut out).map_err(|e| DataError::Invalid {
        path: name.into(),
        message: format!("the gzip stream is corrupt or truncated: {e}"),
    })?;
    let rest = dec.into_inner();
    if !rest.is_empty() {
        return Err(DataError::Invalid {
            path: name.into(),
            message: format!(
                "{} trailing bytes after the gzip stream (which ends at byte {})",
                rest.len(),
                raw.len() - rest.len()
            ),
        });
    }
    Ok(out)
}

/// Reads a CSV file of numbers (`.gz` is decompressed), one example per
/// line, the label in the last column; features are multiplied by `scale`.
pub fn load_csv(path: &Path, scale: f32) -> Result<Dataset, DataError> {
    let name = path.display().to_string();
    let raw = std::fs::read(path).map_err(|source| DataError::Io { path: name.clone(), source })?;
    parse_csv_bytes(&name, &raw, scale)
}

/// `load_csv` on bytes in memory (raw or gzip); `name` names them in errors.
pub fn parse_csv_bytes(name: &str, raw: &[u8], scale: f32) -> Result<Dataset, DataError> {
    let bytes = decompress(name, raw)?;
    let text = String::from_utf8(bytes).map_err(|e| DataError::Invalid {
        path: name.into(),
        message: format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
    })?;
    parse_csv(name, &text, scale)
}

pub fn parse_csv(name: &str, text: &str, scale: f32) -> Result<Dataset, DataError> {
    let mut features = Vec::new();
    let mut labels = Vec::new();
    let mut n_cols: Option<usize> = None;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        if cells.len() < 2 {
            return Err(DataError::Parse {
                path: name.into(),
                line: line_no,
                message: "expected at least two columns (features, then the label)".into(),
            });
        }
        match n_cols {
            None => n_cols = Some(cells.len()),
            Some(n) if n != cells.len() => {
                return Err(DataError::Parse {
                    path: name.into(),
                    line: line_no,
                    message: format!("expected {n} columns like the first line, found {}", cells.len()),
                })
            }
            Some(_) => {}
        }
        for (col, cell) in cells[..cells.len() - 1].iter().enumerate() {
            let v: f32 = cell.parse().map_err(|_| DataError::Parse {
                path: name.into(),
                line: line_no,
                message: format!("column {}: expected a number, found {cell:?}", col + 1),
            })?;
            if !v.is_finite() {
                return Err(DataError::Parse {
                    path: name.into(),
                    line: line_no,
                    message: format!("column {}: value {cell} is not finite", col + 1),
                });
            }
            features.push(v * scale);
        }
        let label_cell = cells[cells.len() - 1];
        let label: f64 = label_cell.parse().map_err(|_| DataError::Parse {
            path: name.into(),
            line: line_no,
            message: format!("last column: expected an integer class label, found {label_cell:?}"),
        })?;
        if label.fract() != 0.0 || !(0.0..=i32::MAX as f64).contains(&label) {
            return Err(DataError::Parse {
                path: name.into(),
                line: line_no,
                message: format!("last column: expected a non-negative integer class label, found {label_cell}"),
            });
        }
        labels.push(label as i32);
    }
    let Some(n_cols) = n_cols else {
        return Err(DataError::Invalid { path: name.into(), message: "the file holds no rows".into() });
    };
    Ok(Dataset { features: Features::F32(features), labels, n_features: n_cols - 1 })
}

/// The file names tried for the IDX training set, in order (the names of
/// the MNIST distribution, then the `.`-separated variant some mirrors use),
/// each raw or with `.gz`.
pub const IDX_TRAIN_IMAGES: &[&str] = &["train-images-idx3-ubyte", "train-images.idx3-ubyte"];
pub const IDX_TRAIN_LABELS: &[&str] = &["train-labels-idx1-ubyte", "train-labels.idx1-ubyte"];

/// The IDX test split's file names (MNIST's `t10k-*`), raw or with `.gz`.
pub const IDX_TEST_IMAGES: &[&str] = &["t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"];
pub const IDX_TEST_LABELS: &[&str] = &["t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"];

fn find_in_dir(dir: &Path, stems: &[&str]) -> Result<std::path::PathBuf, DataError> {
    for stem in stems {
        for ext in ["", ".gz"] {
            let p = dir.join(format!("{stem}{ext}"));
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err(DataError::Invalid {
        path: dir.display().to_string(),
        message: format!(
            "no IDX file found: expected one of {} (optionally with .gz) in this directory",
            stems.join(", ")
        ),
    })
}

/// Loads the IDX training set in `dir` (`train-images-idx3-ubyte` and
/// `train-labels-idx1-ubyte`, raw or `.gz`): each image flattened to one row
/// of bytes, scaled by `scale` when batched.
pub fn load_idx_dir(dir: &Path, scale: f32) -> Result<Dataset, DataError> {
    let images = find_in_dir(dir, IDX_TRAIN_IMAGES)?;
    let labels = find_in_dir(dir, IDX_TRAIN_LABELS)?;
    let read = |p: &Path| std::fs::read(p).map_err(|source| DataError::Io { path: p.display().to_string(), source });
    parse_idx_pair(
        &images.display().to_string(),
        &read(&images)?,
        &labels.display().to_string(),
        &read(&labels)?,
        scale,
    )
}

/// Loads the IDX test split in `dir` (`t10k-images-idx3-ubyte` and
/// `t10k-labels-idx1-ubyte`, raw or `.gz`); `None` when neither file is
/// there (a directory without a test split). One without the other is an error.
pub fn load_idx_test_dir(dir: &Path, scale: f32) -> Result<Option<Dataset>, DataError> {
    let images = find_in_dir(dir, IDX_TEST_IMAGES);
    let labels = find_in_dir(dir, IDX_TEST_LABELS);
    let (images, labels) = match (images, labels) {
        (Err(_), Err(_)) => return Ok(None),
        (Ok(i), Ok(l)) => (i, l),
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => return Err(e),
    };
    let read = |p: &Path| std::fs::read(p).map_err(|source| DataError::Io { path: p.display().to_string(), source });
    parse_idx_pair(
        &images.display().to_string(),
        &read(&images)?,
        &labels.display().to_string(),
        &read(&labels)?,
        scale,
    )
    .map(Some)
}

/// An images file (rank >= 2: count, then each image's dims) and a labels
/// file (rank 1) in memory, raw or gzip, as one dataset.
pub fn parse_idx_pair(
    images_name: &str,
    images: &[u8],
    labels_name: &str,
    labels: &[u8],
    scale: f32,
) -> Result<Dataset, DataError> {
    let (img_dims, pixels) = parse_idx(images_name, images)?;
    if img_dims.len() < 2 {
        return Err(DataError::At {
            path: images_name.into(),
            offset: 3,
            message: format!(
                "expected an images file (at least 2 dimensions: count, then each image's size), found {} dimension",
                img_dims.len()
            ),
        });
    }
    let (lab_dims, label_bytes) = parse_idx(labels_name, labels)?;
    if lab_dims.len() != 1 {
        return Err(DataError::At {
            path: labels_name.into(),
            offset: 3,
            message: format!("expected a labels file (1 dimension), found {} dimensions", lab_dims.len()),
        });
    }
    if lab_dims[0] != img_dims[0] {
        return Err(DataError::At {
            path: labels_name.into(),
            offset: 4,
            message: format!(
                "holds {} labels but {images_name} holds {} images: expected one label per image",
                lab_dims[0], img_dims[0]
            ),
        });
    }
    if img_dims[0] == 0 {
        return Err(DataError::At { path: images_name.into(), offset: 4, message: "the file holds no images".into() });
    }
    let n_features = img_dims[1..].iter().product();
    if n_features == 0 {
        return Err(DataError::At {
            path: images_name.into(),
            offset: 8,
            message: "the images are empty (a dimension is 0)".into(),
        });
    }
    Ok(Dataset {
        features: Features::U8 { values: pixels, scale },
        labels: label_bytes.iter().map(|&b| b as i32).collect(),
        n_features,
    })
}

/// Parses one IDX file of unsigned bytes: magic `00 00 08 <rank>`, `rank`
/// big-endian u32 dims, then exactly `product(dims)` bytes. Returns the dims
/// and the data.
pub fn parse_idx(name: &str, raw: &[u8]) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let bytes = decompress(name, raw)?;
    let gz = if raw.starts_with(&[0x1f, 0x8b]) { " (of the decompressed data)" } else { "" };
    let at = |offset: usize, message: String| DataError::At {
        path: name.into(),
        offset: offset as u64,
        message: format!("{message}{gz}"),
    };
    if bytes.len() < 4 {
        return Err(at(
            bytes.len(),
            format!("the file ends after {} bytes: expected the 4-byte IDX magic (00 00 08 rank)", bytes.len()),
        ));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(at(0, format!("bad magic {:02x} {:02x}: an IDX file starts with 00 00", bytes[0], bytes[1])));
    }
    if bytes[2] != 0x08 {
        let kind = match bytes[2] {
            0x09 => "signed byte",
            0x0b => "i16",
            0x0c => "i32",
            0x0d => "f32",
            0x0e => "f64",
            _ => "not an IDX type",
        };
        return Err(at(2, format!("element type 0x{:02x} ({kind}): expected 0x08 (unsigned byte)", bytes[2])));
    }
    let rank = bytes[3] as usize;
    if rank == 0 {
        return Err(at(3, "rank 0: expected at least one dimension".into()));
    }
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err(at(
            bytes.len(),
            format!("the file ends inside the header: expected {rank} dimensions (a {header}-byte header)"),
        ));
    }
    let dims: Vec<usize> = (0..rank)
        .map(|k| u32::from_be_bytes(bytes[4 + 4 * k..8 + 4 * k].try_into().expect("4 bytes")) as usize)
        .collect();
    let Some(n) = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) else {
        return Err(at(4, format!("dimensions {dims:?} overflow")));
    };
    let want = header.checked_add(n).ok_or_else(|| at(4, format!("dimensions {dims:?} overflow")))?;
    if bytes.len() < want {
        return Err(at(bytes.len(), format!("truncated: the file ends here but dimensions {dims:?} need {n} data bytes after the {header}-byte header ({want} bytes in all)")));
    }
    if bytes.len() > want {
        return Err(at(want, format!("{} trailing bytes: dimensions {dims:?} end the data here", bytes.len() - want)));
    }
    let mut bytes = bytes;
    bytes.drain(..header);
    Ok((dims, bytes))
}

/// Splits off `n_val` examples for validation after a seeded shuffle.
pub fn split(data: &Dataset, n_val: usize, seed: u64) -> (Dataset, Dataset) {
    let order = Rng::derive(seed, "split").permutation(data.len());
    let n_train = data.len() - n_val;
    (data.subset(&order[..n_train]), data.subset(&order[n_train..]))
}

#[cfg(test)]
mod tests;
