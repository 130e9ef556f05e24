//! Datasets: loading (CSV, IDX: the MNIST family, either raw or
//! gzip-compressed; NPY and NPZ in `npy.rs`, `npz.rs`), splitting and
//! batching. A dataset is two columns, inputs `x` and targets `y`, each of
//! any per-example shape and dtype (bytes stay bytes until a batch is
//! formed); `view.rs` fits them to the types the model declares. Loaders
//! validate everything and name the file, the line or byte offset, and what
//! was expected; they never panic on bad input.

use crate::rng::Rng;
use compiler::ir::{DType, Tensor, Type};
use std::io::Read;
use std::path::Path;

pub mod index_range;
pub mod npy;
pub mod npz;
pub mod safetensors_file;
pub mod synthetic;
pub mod view;

/// Examples: inputs `x` and targets `y`, one row of each per example.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub x: Column,
    pub y: Column,
}

/// Stored values, row-major over (example, then each example's dims).
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    /// Bytes (images, small labels): a quarter of the memory of f32 until
    /// a batch is formed.
    U8(Vec<u8>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Bool(Vec<bool>),
}

impl Values {
    pub fn len(&self) -> usize {
        match self {
            Values::U8(v) => v.len(),
            Values::I32(v) => v.len(),
            Values::F32(v) => v.len(),
            Values::F64(v) => v.len(),
            Values::Bool(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The storage type's name, as in the language (`u8` for bytes).
    pub fn type_name(&self) -> &'static str {
        match self {
            Values::U8(_) => "u8",
            Values::I32(_) => "i32",
            Values::F32(_) => "f32",
            Values::F64(_) => "f64",
            Values::Bool(_) => "bool",
        }
    }
    /// The rows `rows` of `d` values each, in that order.
    fn gather(&self, rows: &[usize], d: usize) -> Values {
        fn pick<T: Copy>(v: &[T], rows: &[usize], d: usize) -> Vec<T> {
            let mut out = Vec::with_capacity(rows.len() * d);
            for &i in rows {
                out.extend_from_slice(&v[i * d..(i + 1) * d]);
            }
            out
        }
        match self {
            Values::U8(v) => Values::U8(pick(v, rows, d)),
            Values::I32(v) => Values::I32(pick(v, rows, d)),
            Values::F32(v) => Values::F32(pick(v, rows, d)),
            Values::F64(v) => Values::F64(pick(v, rows, d)),
            Values::Bool(v) => Values::Bool(pick(v, rows, d)),
        }
    }
}

/// One side of the examples (inputs or targets): stored values, each
/// example's dims, and the dtype a batch of them gets.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub values: Values,
    /// Each example's dims (the batch dim excluded; `[]` for a scalar label).
    pub dims: Vec<usize>,
    /// The batch's dtype: the stored type, except that bytes become f32
    /// or f64 (times `scale`) or i32, as the model declares (`view.rs`).
    pub dtype: DType,
    /// Multiplies bytes that become floats, when the batch is formed:
    /// `byte as f32 * scale`, the same f32 product a CSV value gets when loaded.
    pub scale: f32,
}

impl Column {
    /// A column of `values` whose examples have `dims`, batched in their own
    /// dtype (bytes as f32, times `scale`).
    pub fn new(values: Values, dims: Vec<usize>, scale: f32) -> Column {
        let dtype = match &values {
            Values::U8(_) | Values::F32(_) => DType::F32,
            Values::I32(_) => DType::I32,
            Values::F64(_) => DType::F64,
            Values::Bool(_) => DType::Bool,
        };
        Column { values, dims, dtype, scale }
    }
    /// Values per example.
    pub fn example_len(&self) -> usize {
        self.dims.iter().product()
    }
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.values.len().checked_div(self.example_len()).unwrap_or(0)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The type of a batch of `batch` examples: `dtype[batch, dims...]`.
    pub fn batch_type(&self, batch: usize) -> Type {
        let mut dims = vec![batch];
        dims.extend(&self.dims);
        Type::new(self.dtype, &dims)
    }
    /// How the data stores one example, e.g. `u8[28, 28]`, `i32` (for messages).
    pub fn describe(&self) -> String {
        describe(self.values.type_name(), &self.dims)
    }
    fn subset(&self, indices: &[usize]) -> Column {
        Column { values: self.values.gather(indices, self.example_len()), ..self.clone() }
    }
    /// The examples `rows` as one batch tensor of `batch_type(rows.len())`
    /// (bytes converted as they are copied: no intermediate batch of bytes).
    pub fn gather(&self, rows: &[usize]) -> Tensor {
        let d = self.example_len();
        let mut dims = vec![rows.len()];
        dims.extend(&self.dims);
        // One row at a time into a vector of the batch's size (an iterator
        // over all rows would grow the vector as it goes).
        fn convert<T>(v: &[u8], rows: &[usize], d: usize, f: impl Fn(u8) -> T) -> Vec<T> {
            let mut out = Vec::with_capacity(rows.len() * d);
            for &i in rows {
                out.extend(v[i * d..(i + 1) * d].iter().map(|&b| f(b)));
            }
            out
        }
        let (scale, one) = (self.scale, Values::gather);
        match (&self.values, self.dtype) {
            (Values::U8(v), DType::F32) => Tensor::f32(&dims, convert(v, rows, d, |b| b as f32 * scale)),
            (Values::U8(v), DType::F64) => Tensor::f64(&dims, convert(v, rows, d, |b| b as f64 * scale as f64)),
            (Values::U8(v), DType::I32) => Tensor::i32(&dims, convert(v, rows, d, |b| b as i32)),
            (v @ Values::I32(_), DType::I32)
            | (v @ Values::F32(_), DType::F32)
            | (v @ Values::F64(_), DType::F64)
            | (v @ Values::Bool(_), DType::Bool) => match one(v, rows, d) {
                Values::I32(v) => Tensor::i32(&dims, v),
                Values::F32(v) => Tensor::f32(&dims, v),
                Values::F64(v) => Tensor::f64(&dims, v),
                Values::Bool(v) => Tensor::bool(&dims, v),
                Values::U8(_) => unreachable!("matched above"),
            },
            (v, dtype) => unreachable!("view.rs allows no {} column batched as {dtype}", v.type_name()),
        }
    }
}

/// `u8[28, 28]`, or `i32` for a scalar.
pub fn describe(dtype: &str, dims: &[usize]) -> String {
    if dims.is_empty() {
        dtype.to_string()
    } else {
        format!("{dtype}[{}]", dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "))
    }
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
    /// Inputs and targets as one dataset: both columns must hold whole
    /// examples, and the same number of them.
    pub fn new(x: Column, y: Column) -> Result<Dataset, String> {
        let data = Dataset { x, y };
        data.check()?;
        Ok(data)
    }

    /// What `new` checks, for datasets built from their public fields.
    pub fn check(&self) -> Result<(), String> {
        let (x, y) = (&self.x, &self.y);
        for (name, c) in [("inputs", x), ("targets", y)] {
            let per = c.example_len();
            if per == 0 {
                return Err(format!("the {name} have examples of {}: no values per example", c.describe()));
            }
            if c.values.len() % per != 0 {
                return Err(format!(
                    "the {name} hold {} values, not a whole number of examples of {} ({per} values each)",
                    c.values.len(),
                    c.describe()
                ));
            }
        }
        for (name, c) in [("inputs", x), ("targets", y)] {
            // The pairs `Column::gather` can batch: stored values as
            // themselves, bytes as floats (scaled) or labels.
            let batchable = matches!(
                (&c.values, c.dtype),
                (Values::U8(_), DType::F32 | DType::F64 | DType::I32)
                    | (Values::I32(_), DType::I32)
                    | (Values::F32(_), DType::F32)
                    | (Values::F64(_), DType::F64)
                    | (Values::Bool(_), DType::Bool)
            );
            if !batchable {
                return Err(format!(
                    "the {name} store {} values but are to be batched as {}: bytes become f32, f64 or i32, \
                     other values stay their own type",
                    c.values.type_name(),
                    c.dtype
                ));
            }
        }
        if x.len() != y.len() {
            return Err(format!("{} examples of inputs but {} of targets", x.len(), y.len()));
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.x.len()
    }
    pub fn is_empty(&self) -> bool {
        self.x.is_empty()
    }
    /// The examples at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        Dataset { x: self.x.subset(indices), y: self.y.subset(indices) }
    }
    /// The first `batches` batches of `batch_size` examples (the
    /// `limit_*_batches` settings); all of it when `batches` is 0 or they
    /// cover it.
    pub fn first_batches(&self, batches: usize, batch_size: usize) -> std::borrow::Cow<'_, Dataset> {
        match batches.checked_mul(batch_size) {
            Some(n) if batches > 0 && n < self.len() => {
                std::borrow::Cow::Owned(self.subset(&(0..n).collect::<Vec<_>>()))
            }
            _ => std::borrow::Cow::Borrowed(self),
        }
    }
    /// The batch of examples `order[start..start + size]` as (x, y), each
    /// of its column's `batch_type(size)`.
    pub fn batch(&self, order: &[usize], start: usize, size: usize) -> (Tensor, Tensor) {
        let rows = &order[start..start + size];
        (self.x.gather(rows), self.y.gather(rows))
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

/// What the last column of a CSV file holds (`csv("f.csv", y = ...)`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CsvTargets {
    /// An integer class label (`i32` targets); the default.
    #[default]
    Class,
    /// A number, as regression targets are (`y = "float"`: `f32` targets).
    Float,
    /// Nothing: every column is a feature and the data has no targets
    /// (`y = false`, an autoencoder's data).
    None,
}

impl CsvTargets {
    /// As `csv(..., y = ...)` writes it.
    pub fn setting(self) -> &'static str {
        match self {
            CsvTargets::Class => "\"class\"",
            CsvTargets::Float => "\"float\"",
            CsvTargets::None => "false",
        }
    }
}

/// Reads a CSV file of numbers (`.gz` is decompressed), one example per
/// line, the label in the last column; features are multiplied by `scale`.
pub fn load_csv(path: &Path, scale: f32) -> Result<Dataset, DataError> {
    load_csv_with(path, scale, CsvTargets::Class)
}

/// `load_csv` with the last column read as `targets` says.
pub fn load_csv_with(path: &Path, scale: f32, targets: CsvTargets) -> Result<Dataset, DataError> {
    let name = path.display().to_string();
    let raw = std::fs::read(path).map_err(|source| DataError::Io { path: name.clone(), source })?;
    parse_csv_bytes_with(&name, &raw, scale, targets)
}

/// `load_csv` on bytes in memory (raw or gzip); `name` names them in errors.
pub fn parse_csv_bytes(name: &str, raw: &[u8], scale: f32) -> Result<Dataset, DataError> {
    parse_csv_bytes_with(name, raw, scale, CsvTargets::Class)
}

/// `parse_csv_bytes` with the last column read as `targets` says.
pub fn parse_csv_bytes_with(name: &str, raw: &[u8], scale: f32, targets: CsvTargets) -> Result<Dataset, DataError> {
    let bytes = decompress(name, raw)?;
    let text = String::from_utf8(bytes).map_err(|e| DataError::Invalid {
        path: name.into(),
        message: format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
    })?;
    parse_csv(name, &text, scale, targets)
}

pub fn parse_csv(name: &str, text: &str, scale: f32, targets: CsvTargets) -> Result<Dataset, DataError> {
    // A byte-order mark (spreadsheets write one) is no part of the numbers.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut features = Vec::new();
    let mut labels = Vec::new();
    let mut values = Vec::new();
    // The feature columns: all but the last, unless there are no targets.
    let target_columns = usize::from(targets != CsvTargets::None);
    let mut n_cols: Option<usize> = None;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        if cells.len() < 1 + target_columns {
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
        for (col, cell) in cells[..cells.len() - target_columns].iter().enumerate() {
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
            let scaled = v * scale;
            if !scaled.is_finite() {
                return Err(DataError::Parse {
                    path: name.into(),
                    line: line_no,
                    message: format!("column {}: value {cell} times scale {scale} is not finite in f32", col + 1),
                });
            }
            features.push(scaled);
        }
        let label_cell = cells[cells.len() - 1];
        match targets {
            CsvTargets::None => continue,
            CsvTargets::Float => {
                let v: f32 =
                    label_cell.parse().ok().filter(|v: &f32| v.is_finite()).ok_or_else(|| DataError::Parse {
                        path: name.into(),
                        line: line_no,
                        message: format!("last column: expected a finite number (the target), found {label_cell:?}"),
                    })?;
                values.push(v);
                continue;
            }
            CsvTargets::Class => {}
        }
        let label: f64 = label_cell.parse().map_err(|_| DataError::Parse {
            path: name.into(),
            line: line_no,
            message: format!("last column: expected an integer class label, found {label_cell:?}"),
        })?;
        if label.fract() != 0.0 || !(0.0..=i32::MAX as f64).contains(&label) {
            return Err(DataError::Parse {
                path: name.into(),
                line: line_no,
                message: format!(
                    "last column: expected a non-negative integer class label, found {label_cell} \
                     (a number to regress is read with `csv(..., y = \"float\")`)"
                ),
            });
        }
        labels.push(label as i32);
    }
    let Some(n_cols) = n_cols else {
        return Err(DataError::Invalid { path: name.into(), message: "the file holds no rows".into() });
    };
    let n_features = n_cols - target_columns;
    let y = match targets {
        CsvTargets::Class => Values::I32(labels),
        CsvTargets::Float => Values::F32(values),
        // One `0` per example, as `no_targets` gives.
        CsvTargets::None => Values::I32(vec![0; features.len() / n_features.max(1)]),
    };
    Ok(Dataset { x: Column::new(Values::F32(features), vec![n_features], 1.0), y: Column::new(y, vec![], 1.0) })
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
    // An images file given as labels: said so, before its dims are read as a
    // label count (they would make a confusing "truncated" error).
    let head = decompress(labels_name, labels)?;
    if head.len() >= 4 && head[..3] == [0, 0, 8] && head[3] != 1 {
        return Err(DataError::At {
            path: labels_name.into(),
            offset: 3,
            message: format!(
                "expected a labels file (magic 00 00 08 01: 1 dimension), found {} dimensions: an images file?",
                head[3]
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
    let n_features: usize = img_dims[1..].iter().product();
    if n_features == 0 {
        return Err(DataError::At {
            path: images_name.into(),
            offset: 8,
            message: "the images are empty (a dimension is 0)".into(),
        });
    }
    // Images flattened to one row each, as before per-example shapes
    // existed; a model declaring `x: f32[B, 1, 28, 28]` views them so (`view.rs`).
    let mut y = Column::new(Values::U8(label_bytes), vec![], 1.0);
    y.dtype = DType::I32;
    Ok(Dataset { x: Column::new(Values::U8(pixels), vec![n_features], scale), y })
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

/// An inputs array and a targets array, one example per index of their
/// first axis, as a dataset; `x_name`, `y_name` name them in errors.
/// `scale` multiplies float inputs now and byte inputs when batched; other
/// inputs must keep `scale = 1`.
pub fn from_arrays(x_name: &str, x: npy::Array, y_name: &str, y: npy::Array, scale: f32) -> Result<Dataset, DataError> {
    let invalid = |path: &str, message: String| DataError::Invalid { path: path.into(), message };
    let examples = |name: &str, a: &npy::Array| -> Result<usize, DataError> {
        match a.dims.split_first() {
            None => {
                Err(invalid(name, "a scalar: expected an array with one example per index of its first axis".into()))
            }
            Some((&0, _)) => Err(invalid(name, format!("shape {:?} holds no examples", a.dims))),
            Some((_, rest)) if rest.contains(&0) => {
                Err(invalid(name, format!("shape {:?}: each example is empty (a dimension is 0)", a.dims)))
            }
            Some((&n, _)) => Ok(n),
        }
    };
    let (nx, ny) = (examples(x_name, &x)?, examples(y_name, &y)?);
    if nx != ny {
        return Err(invalid(
            y_name,
            format!(
                "holds {ny} examples (shape {:?}) but {x_name} holds {nx} (shape {:?}): expected one target per input",
                y.dims, x.dims
            ),
        ));
    }
    let values = match x.values {
        Values::F32(v) if scale != 1.0 => Values::F32(v.into_iter().map(|a| a * scale).collect()),
        Values::F64(v) if scale != 1.0 => Values::F64(v.into_iter().map(|a| a * scale as f64).collect()),
        v @ (Values::I32(_) | Values::Bool(_)) if scale != 1.0 => {
            return Err(invalid(
                x_name,
                format!("scale = {scale} applies to float or u8 inputs, not {}", v.type_name()),
            ))
        }
        v => v,
    };
    // As a CSV value: a NaN or infinite input would surface only as a NaN
    // loss some steps in (or a NaN validation metric), far from its cause.
    let per_x: usize = x.dims[1..].iter().product();
    let per_y: usize = y.dims[1..].iter().product();
    for (name, vals, per) in [(x_name, &values, per_x), (y_name, &y.values, per_y)] {
        if let Some((i, v)) = first_non_finite(vals) {
            return Err(invalid(
                name,
                format!(
                    "example {} (value {} of it) is {v}{}: expected finite numbers",
                    i / per,
                    i % per,
                    if scale != 1.0 && name == x_name { " after scale" } else { "" }
                ),
            ));
        }
    }
    let x = Column::new(values, x.dims[1..].to_vec(), scale);
    let mut y = Column::new(y.values, y.dims[1..].to_vec(), 1.0);
    // Byte targets are class labels unless the model declares floats (`view.rs`).
    if matches!(y.values, Values::U8(_)) {
        y.dtype = DType::I32;
    }
    Ok(Dataset { x, y })
}

/// The targets of data that has none (`y = false`: an autoencoder's), for
/// steps that take only `x`: one `0` per example of `x`. The trainer refuses
/// them to a step that takes `y` (`setup.rs`).
pub fn no_targets(x: &npy::Array) -> npy::Array {
    let n = x.dims.first().copied().unwrap_or(0);
    npy::Array { dims: vec![n], values: Values::I32(vec![0; n]) }
}

/// The flat index and value of the first NaN or infinity among float values.
fn first_non_finite(values: &Values) -> Option<(usize, f64)> {
    match values {
        Values::F32(v) => v.iter().position(|a| !a.is_finite()).map(|i| (i, v[i] as f64)),
        Values::F64(v) => v.iter().position(|a| !a.is_finite()).map(|i| (i, v[i])),
        Values::U8(_) | Values::I32(_) | Values::Bool(_) => None,
    }
}

fn read_file(p: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(p).map_err(|source| DataError::Io { path: p.display().to_string(), source })
}

/// Loads arrays `x_key` and `y_key` of an `.npz` archive (`np.savez`,
/// `np.savez_compressed`).
pub fn load_npz(path: &Path, x_key: &str, y_key: &str, scale: f32) -> Result<Dataset, DataError> {
    parse_npz(&path.display().to_string(), &read_file(path)?, x_key, y_key, scale)
}

/// `load_npz` on bytes in memory; `name` names them in errors.
pub fn parse_npz(name: &str, bytes: &[u8], x_key: &str, y_key: &str, scale: f32) -> Result<Dataset, DataError> {
    let archive = npz::Npz::parse(name, bytes)?;
    let x = archive.array(x_key)?;
    let y = if y_key.is_empty() { no_targets(&x) } else { archive.array(y_key)? };
    from_arrays(&format!("{name} (array {x_key:?})"), x, &format!("{name} (array {y_key:?})"), y, scale)
}

/// Loads tensors `x_key` and `y_key` of a `.safetensors` file.
pub fn load_safetensors(path: &Path, x_key: &str, y_key: &str, scale: f32) -> Result<Dataset, DataError> {
    parse_safetensors(&path.display().to_string(), &read_file(path)?, x_key, y_key, scale)
}

/// `load_safetensors` on bytes in memory; `name` names them in errors.
pub fn parse_safetensors(name: &str, bytes: &[u8], x_key: &str, y_key: &str, scale: f32) -> Result<Dataset, DataError> {
    let (x, y) = safetensors_file::parse_pair(name, bytes, x_key, y_key)?;
    from_arrays(&format!("{name} (tensor {x_key:?})"), x, &format!("{name} (tensor {y_key:?})"), y, scale)
}

/// Loads inputs and targets from two `.npy` files (`y_path` `None`: no targets).
pub fn load_npy(x_path: &Path, y_path: Option<&Path>, scale: f32) -> Result<Dataset, DataError> {
    let xn = x_path.display().to_string();
    let yn = y_path.map_or_else(|| "(no targets)".to_string(), |p| p.display().to_string());
    let x = npy::parse(&xn, &read_file(x_path)?)?;
    let y = match y_path {
        Some(p) => npy::parse(&yn, &read_file(p)?)?,
        None => no_targets(&x),
    };
    from_arrays(&xn, x, &yn, y, scale)
}

/// A byte-level text corpus (raw or gzip) cut into consecutive,
/// non-overlapping sequences of `seq_len` bytes: example `i` is `x =
/// bytes[i*seq_len .. (i+1)*seq_len]` and `y` the same window shifted by
/// one byte (next-byte targets), both `u8[seq_len]` (`i32` tokens 0..255
/// when the step declares `i32`). The tail that fills no sequence is unused.
pub fn load_text(path: &Path, seq_len: usize) -> Result<Dataset, DataError> {
    let name = path.display().to_string();
    parse_text(&name, &read_file(path)?, seq_len)
}

/// `load_text` on a file's bytes (raw or gzip) in memory; `name` names
/// them in errors.
pub fn parse_text(name: &str, file: &[u8], seq_len: usize) -> Result<Dataset, DataError> {
    let name = name.to_string();
    let bytes = decompress(&name, file)?;
    let n = bytes.len().saturating_sub(1).checked_div(seq_len).unwrap_or(0);
    if n == 0 {
        return Err(DataError::Invalid {
            path: name,
            message: format!(
                "{} bytes of text hold no sequence of seq = {seq_len} (with its next-byte targets, {} bytes)",
                bytes.len(),
                seq_len + 1
            ),
        });
    }
    let mut x = Vec::with_capacity(n * seq_len);
    let mut y = Vec::with_capacity(n * seq_len);
    for i in 0..n {
        x.extend_from_slice(&bytes[i * seq_len..(i + 1) * seq_len]);
        y.extend_from_slice(&bytes[i * seq_len + 1..(i + 1) * seq_len + 1]);
    }
    // Tokens: i32 batches unless the step declares otherwise.
    let tokens = |v: Vec<u8>| Column { dtype: DType::I32, ..Column::new(Values::U8(v), vec![seq_len], 1.0) };
    Ok(Dataset { x: tokens(x), y: tokens(y) })
}

/// Splits off `n_val` examples for validation after a seeded shuffle.
pub fn split(data: &Dataset, n_val: usize, seed: u64) -> (Dataset, Dataset) {
    let order = Rng::derive(seed, "split").permutation(data.len());
    // More than there are: all of them held out.
    let n_train = data.len().saturating_sub(n_val);
    (data.subset(&order[..n_train]), data.subset(&order[n_train..]))
}

#[cfg(test)]
mod tests;
