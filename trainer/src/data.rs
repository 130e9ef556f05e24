//! Datasets: loading (CSV, optionally gzip-compressed), splitting and
//! batching. Loaders validate everything and name the file, the line and
//! what was expected; they never panic on bad input.

use crate::rng::Rng;
use compiler::ir::Tensor;
use std::io::Read;
use std::path::Path;

/// Rows of features (stored compactly as f32) with integer class labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub features: Vec<f32>,
    pub labels: Vec<i32>,
    pub n_features: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}:{line}: {message}")]
    Parse { path: String, line: usize, message: String },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
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
        let mut features = Vec::with_capacity(indices.len() * d);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            features.extend_from_slice(&self.features[i * d..(i + 1) * d]);
            labels.push(self.labels[i]);
        }
        Dataset { features, labels, n_features: d }
    }
    /// The batch of rows `start..start + size` as (x: f32[size, d], y: i32[size]).
    pub fn batch(&self, order: &[usize], start: usize, size: usize) -> (Tensor, Tensor) {
        let d = self.n_features;
        let mut xs = Vec::with_capacity(size * d);
        let mut ys = Vec::with_capacity(size);
        for &i in &order[start..start + size] {
            xs.extend_from_slice(&self.features[i * d..(i + 1) * d]);
            ys.push(self.labels[i]);
        }
        (Tensor::f32(&[size, d], xs), Tensor::i32(&[size], ys))
    }
}

/// Reads a CSV file of numbers (`.gz` is decompressed), one example per
/// line, the label in the last column; features are multiplied by `scale`.
pub fn load_csv(path: &Path, scale: f32) -> Result<Dataset, DataError> {
    let name = path.display().to_string();
    let io = |source| DataError::Io { path: name.clone(), source };
    let raw = std::fs::read(path).map_err(io)?;
    let text = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut s = String::new();
        flate2::read::GzDecoder::new(&raw[..]).read_to_string(&mut s).map_err(|e| DataError::Invalid {
            path: name.clone(),
            message: format!("the gzip stream is corrupt or not UTF-8 text: {e}"),
        })?;
        s
    } else {
        String::from_utf8(raw).map_err(|e| DataError::Invalid { path: name.clone(), message: format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()) })?
    };
    parse_csv(&name, &text, scale)
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
            return Err(DataError::Parse { path: name.into(), line: line_no, message: "expected at least two columns (features, then the label)".into() });
        }
        match n_cols {
            None => n_cols = Some(cells.len()),
            Some(n) if n != cells.len() => {
                return Err(DataError::Parse { path: name.into(), line: line_no, message: format!("expected {n} columns like the first line, found {}", cells.len()) })
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
                return Err(DataError::Parse { path: name.into(), line: line_no, message: format!("column {}: value {cell} is not finite", col + 1) });
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
            return Err(DataError::Parse { path: name.into(), line: line_no, message: format!("last column: expected a non-negative integer class label, found {label_cell}") });
        }
        labels.push(label as i32);
    }
    let Some(n_cols) = n_cols else {
        return Err(DataError::Invalid { path: name.into(), message: "the file holds no rows".into() });
    };
    Ok(Dataset { features, labels, n_features: n_cols - 1 })
}

/// Splits off `n_val` examples for validation after a seeded shuffle.
pub fn split(data: &Dataset, n_val: usize, seed: u64) -> (Dataset, Dataset) {
    let order = Rng::derive(seed, "split").permutation(data.len());
    let n_train = data.len() - n_val;
    (data.subset(&order[..n_train]), data.subset(&order[n_train..]))
}
