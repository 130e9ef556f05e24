//! Checkpoints: a training run's complete state in one safetensors file.
//!
//! Consumes parameters, optimizer state and the loop's position (`Meta`);
//! produces `<version dir>/checkpoints/*.safetensors`, and reads them back
//! strictly. Layout of a file:
//!
//! - tensors: every parameter under its path (`l1.weight`), every optimizer
//!   state tensor as `opt.<path>.<k>` (`k` = 0..states per parameter, in the
//!   optimizer's state order: for Adam 0 = first moment, 1 = second moment);
//! - `__metadata__` (strings): the keys of `Meta` (see `META_KEYS`), float
//!   accumulators as the hex of their IEEE bits so that they round-trip
//!   exactly, and `crc32`: a CRC-32 over every other metadata entry and every
//!   tensor's name, dtype, shape and bytes. The safetensors crate validates
//!   the framing (header length, JSON, offsets against the file size); the
//!   CRC catches what framing cannot: a flipped bit in the data or in a
//!   metadata value.
//!
//! Writes are atomic: a temp file in the target directory is written,
//! fsynced, renamed over the target, and the directory is fsynced, so a
//! crash leaves either the old or the new file, never a torn one.

use compiler::ir::{Data, Shape, Tensor, Type};
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Bumped whenever the layout or the meaning of a key changes.
pub const FORMAT_VERSION: u32 = 1;

/// Where and how a run continues, plus what it must match to continue
/// bit-exactly.
#[derive(Clone, Debug, PartialEq)]
pub struct Meta {
    pub format_version: u32,
    pub jlc_version: String,
    pub model_name: String,
    /// `fnv1a64:<hex>` of the model file's text.
    pub model_hash: String,
    pub seed: u64,
    /// The epoch in which training continues (after an epoch's end: the next one).
    pub epoch: usize,
    /// The index of the next batch within `epoch` (0 after an epoch's end).
    pub batch: usize,
    /// Optimizer steps taken so far (the next step is `global_step + 1`).
    pub global_step: usize,
    /// The running sums of the epoch in progress: the training loss and each
    /// logged training value (what the epoch-end averages are made of).
    pub loss_sum: f64,
    pub log_sums: Vec<f64>,
    /// Everything the data order depends on besides the seed
    /// (`batch_size=..,val_split=..,shuffle=..,n_train=..,n_batches=..`).
    pub data_order: String,
    /// The resolved configuration (hparams.yaml's text), for humans.
    pub config: String,
    /// The callbacks' states (`callback::states_json`): a JSON object by
    /// callback name. Files without the key (written before callbacks
    /// existed) read as `""`.
    pub callbacks: String,
}

/// The metadata keys besides `crc32`.
pub const META_KEYS: &[&str] = &[
    "format_version",
    "jlc_version",
    "model_name",
    "model_hash",
    "seed",
    "epoch",
    "batch",
    "global_step",
    "loss_sum",
    "log_sums",
    "data_order",
    "config",
    "callbacks",
];

/// A decoded checkpoint: its metadata and tensors sorted by name.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    pub meta: Meta,
    pub tensors: Vec<(String, Tensor)>,
}

/// Every checkpoint error names the file.
#[derive(Clone, Debug, thiserror::Error)]
#[error("checkpoint {path}: {message}")]
pub struct CheckpointError {
    pub path: String,
    pub message: String,
}

fn cerr(path: &str, message: impl Into<String>) -> CheckpointError {
    CheckpointError { path: path.to_string(), message: message.into() }
}

/// The model file's fingerprint stored in `Meta::model_hash` (FNV-1a, 64 bits).
pub fn model_hash(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    format!("fnv1a64:{h:016x}")
}

/// The name of optimizer state `k` of the parameter at `path`.
pub fn state_name(path: &str, k: usize) -> String {
    format!("opt.{path}.{k}")
}

/// The parameter path and state index a `state_name` names, else `None`.
pub fn state_of(name: &str) -> Option<(&str, usize)> {
    let (path, k) = name.strip_prefix("opt.")?.rsplit_once('.')?;
    Some((path, k.parse().ok()?))
}

fn f64_hex(x: f64) -> String {
    format!("{:016x}", x.to_bits())
}

fn parse_f64_hex(s: &str) -> Option<f64> {
    (s.len() == 16).then(|| u64::from_str_radix(s, 16).ok().map(f64::from_bits)).flatten()
}

impl Meta {
    fn to_map(&self) -> Vec<(&'static str, String)> {
        vec![
            ("format_version", self.format_version.to_string()),
            ("jlc_version", self.jlc_version.clone()),
            ("model_name", self.model_name.clone()),
            ("model_hash", self.model_hash.clone()),
            ("seed", self.seed.to_string()),
            ("epoch", self.epoch.to_string()),
            ("batch", self.batch.to_string()),
            ("global_step", self.global_step.to_string()),
            ("loss_sum", f64_hex(self.loss_sum)),
            ("log_sums", self.log_sums.iter().map(|x| f64_hex(*x)).collect::<Vec<_>>().join(",")),
            ("data_order", self.data_order.clone()),
            ("config", self.config.clone()),
            ("callbacks", self.callbacks.clone()),
        ]
    }

    fn from_map(path: &str, m: &HashMap<String, String>) -> Result<Meta, CheckpointError> {
        let get =
            |k: &str| m.get(k).map(String::as_str).ok_or_else(|| cerr(path, format!("metadata key `{k}` is missing")));
        let int = |k: &str| -> Result<u64, CheckpointError> {
            let v = get(k)?;
            v.parse::<u64>().map_err(|_| cerr(path, format!("metadata `{k}` = {v:?}: expected a non-negative integer")))
        };
        let usize_of = |k: &str| -> Result<usize, CheckpointError> {
            usize::try_from(int(k)?).map_err(|_| cerr(path, format!("metadata `{k}` is too large")))
        };
        let format_version = int("format_version")?;
        if format_version != FORMAT_VERSION as u64 {
            return Err(cerr(
                path,
                format!("format version {format_version} is not supported (this jlc reads version {FORMAT_VERSION})"),
            ));
        }
        let loss_sum =
            parse_f64_hex(get("loss_sum")?).ok_or_else(|| cerr(path, "metadata `loss_sum`: expected 16 hex digits"))?;
        let log_sums_text = get("log_sums")?;
        let log_sums = if log_sums_text.is_empty() {
            vec![]
        } else {
            log_sums_text
                .split(',')
                .map(|s| {
                    parse_f64_hex(s)
                        .ok_or_else(|| cerr(path, "metadata `log_sums`: expected comma-separated 16-digit hex numbers"))
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        Ok(Meta {
            format_version: format_version as u32,
            jlc_version: get("jlc_version")?.to_string(),
            model_name: get("model_name")?.to_string(),
            model_hash: get("model_hash")?.to_string(),
            seed: int("seed")?,
            epoch: usize_of("epoch")?,
            batch: usize_of("batch")?,
            global_step: usize_of("global_step")?,
            loss_sum,
            log_sums,
            data_order: get("data_order")?.to_string(),
            config: get("config")?.to_string(),
            callbacks: m.get("callbacks").cloned().unwrap_or_default(),
        })
    }
}

/// A tensor's little-endian bytes and its safetensors dtype.
fn tensor_bytes(t: &Tensor) -> (Dtype, Vec<u8>) {
    match &t.data {
        Data::F32(v) => (Dtype::F32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        Data::F64(v) => (Dtype::F64, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        Data::I32(v) => (Dtype::I32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        Data::Bool(v) => (Dtype::BOOL, v.iter().map(|&b| b as u8).collect()),
    }
}

/// The checksum over metadata (sorted, without `crc32`) and tensors (sorted
/// by name). Fields are NUL-separated so that no two layouts hash alike by
/// concatenation.
fn checksum<'a>(meta: impl Iterator<Item = (&'a str, &'a str)>, tensors: &[(&str, String, &[usize], &[u8])]) -> u32 {
    let mut crc = flate2::Crc::new();
    let mut entries: Vec<(&str, &str)> = meta.filter(|(k, _)| *k != "crc32").collect();
    entries.sort();
    for (k, v) in entries {
        crc.update(k.as_bytes());
        crc.update(&[0]);
        crc.update(v.as_bytes());
        crc.update(&[0]);
    }
    let mut sorted: Vec<_> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    for (name, dtype, shape, bytes) in sorted {
        crc.update(name.as_bytes());
        crc.update(&[0]);
        crc.update(dtype.as_bytes());
        crc.update(&[0]);
        for d in shape.iter() {
            crc.update(&(*d as u64).to_le_bytes());
        }
        crc.update(&[0xff]);
        crc.update(bytes);
    }
    crc.sum()
}

/// Serializes a checkpoint to bytes.
pub fn encode(meta: &Meta, tensors: &[(String, &Tensor)]) -> Result<Vec<u8>, CheckpointError> {
    let encoded: Vec<(&str, Dtype, Vec<u8>, &[usize])> = tensors
        .iter()
        .map(|(n, t)| {
            let (dt, bytes) = tensor_bytes(t);
            (n.as_str(), dt, bytes, t.shape.dims())
        })
        .collect();
    let map = meta.to_map();
    let dtype_names: Vec<String> = encoded.iter().map(|(_, dt, _, _)| format!("{dt}")).collect();
    let for_crc: Vec<(&str, String, &[usize], &[u8])> =
        encoded.iter().zip(&dtype_names).map(|((n, _, b, s), dn)| (*n, dn.clone(), *s, b.as_slice())).collect();
    let crc = checksum(map.iter().map(|(k, v)| (*k, v.as_str())), &for_crc);
    let mut info: HashMap<String, String> = map.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    info.insert("crc32".into(), format!("{crc:08x}"));
    let views = encoded
        .iter()
        .map(|(n, dt, bytes, shape)| {
            safetensors::tensor::TensorView::new(*dt, shape.to_vec(), bytes)
                .map(|v| (n.to_string(), v))
                .map_err(|e| cerr("(in memory)", format!("tensor `{n}`: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let bytes = safetensors::serialize(views, Some(info)).map_err(|e| cerr("(in memory)", e.to_string()))?;
    Ok(sort_metadata(bytes))
}

/// safetensors takes `__metadata__` as a `HashMap` and writes it in the
/// map's iteration order, which is random per map: two runs with one seed
/// would write different bytes. Rewrites the header with the metadata's
/// keys sorted (the tensors' entries, already in a fixed order, keep it),
/// padded with spaces to the header's original length, so the tensors'
/// offsets (relative to the header's end) stay valid.
fn sort_metadata(mut bytes: Vec<u8>) -> Vec<u8> {
    use serde_json::{Map, Value};
    let len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header: Map<String, Value> =
        serde_json::from_slice(&bytes[8..8 + len]).expect("safetensors wrote a JSON object header");
    let mut sorted = Map::new();
    for (k, v) in &header {
        let v = match v {
            Value::Object(m) if k == "__metadata__" => {
                let mut keys: Vec<(&String, &Value)> = m.iter().collect();
                keys.sort_by(|a, b| a.0.cmp(b.0));
                Value::Object(keys.into_iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            }
            v => v.clone(),
        };
        sorted.insert(k.clone(), v);
    }
    let mut text = serde_json::to_vec(&Value::Object(sorted)).expect("JSON values serialize");
    // The same strings re-serialized compactly: never longer than what safetensors wrote.
    assert!(text.len() <= len, "the sorted header outgrew the original");
    text.resize(len, b' ');
    bytes[8..8 + len].copy_from_slice(&text);
    bytes
}

/// Reads a checkpoint from bytes; `path` names it in errors. Never panics.
pub fn decode(path: &str, bytes: &[u8]) -> Result<Checkpoint, CheckpointError> {
    precheck_offsets(path, bytes)?;
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| cerr(path, format!("not a valid safetensors file ({} bytes): {e}", bytes.len())))?;
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| cerr(path, e.to_string()))?;
    let Some(info) = header.metadata() else {
        return Err(cerr(path, "the file has no `__metadata__`: not a jlc checkpoint"));
    };
    let mut raw: Vec<(String, String, Vec<usize>, &[u8], Dtype)> = st
        .iter()
        .map(|(n, v)| (n.to_string(), format!("{}", v.dtype()), v.shape().to_vec(), v.data(), v.dtype()))
        .collect();
    raw.sort_by(|a, b| a.0.cmp(&b.0));
    let for_crc: Vec<(&str, String, &[usize], &[u8])> =
        raw.iter().map(|(n, dn, s, b, _)| (n.as_str(), dn.clone(), s.as_slice(), *b)).collect();
    let stored = info.get("crc32").ok_or_else(|| cerr(path, "metadata key `crc32` is missing"))?;
    let actual = checksum(info.iter().map(|(k, v)| (k.as_str(), v.as_str())), &for_crc);
    if *stored != format!("{actual:08x}") {
        return Err(cerr(
            path,
            format!("checksum mismatch (stored crc32 {stored}, computed {actual:08x}): the file is corrupt"),
        ));
    }
    let meta = Meta::from_map(path, info)?;
    let mut tensors = Vec::with_capacity(raw.len());
    for (name, _, shape, bytes, dtype) in raw {
        let data = match dtype {
            Dtype::F32 => {
                Data::F32(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
            }
            Dtype::F64 => Data::F64(
                bytes
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect(),
            ),
            Dtype::I32 => {
                Data::I32(bytes.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
            }
            Dtype::BOOL => {
                if let Some(pos) = bytes.iter().position(|&b| b > 1) {
                    return Err(cerr(
                        path,
                        format!("tensor `{name}`: element {pos} is {} but a bool must be 0 or 1", bytes[pos]),
                    ));
                }
                Data::Bool(bytes.iter().map(|&b| b == 1).collect())
            }
            other => {
                return Err(cerr(
                    path,
                    format!("tensor `{name}` has dtype {other}; jlc checkpoints hold F32, F64, I32 and BOOL"),
                ))
            }
        };
        tensors.push((name, Tensor { shape: Shape(shape), data }));
    }
    Ok(Checkpoint { meta, tensors })
}

/// The safetensors crate adds offsets with `+` (which overflows, and panics
/// in debug builds, on hostile headers); check every offset against the file
/// size first so that it never sees such a file.
fn precheck_offsets(path: &str, bytes: &[u8]) -> Result<(), CheckpointError> {
    let Some(len_bytes) = bytes.get(..8) else {
        return Err(cerr(
            path,
            format!("truncated: {} bytes, a safetensors file starts with an 8-byte header length", bytes.len()),
        ));
    };
    let n = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes"));
    let rest = (bytes.len() - 8) as u64;
    if n > rest {
        return Err(cerr(
            path,
            format!("truncated: the header claims {n} bytes but only {rest} follow the length field"),
        ));
    }
    let header = &bytes[8..8 + n as usize];
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(header) else {
        // The crate reports the JSON error itself.
        return Ok(());
    };
    let data_len = rest - n;
    if let Some(obj) = value.as_object() {
        for (name, entry) in obj {
            let Some(offsets) = entry.get("data_offsets").and_then(|o| o.as_array()) else { continue };
            for o in offsets {
                if let Some(x) = o.as_u64() {
                    if x > data_len {
                        return Err(cerr(path, format!("truncated or corrupt: tensor `{name}` ends at data byte {x} but the data section has {data_len} bytes")));
                    }
                }
            }
        }
    }
    Ok(())
}

impl Checkpoint {
    /// Takes the tensors named in `expected`, in that order, checking dtype
    /// and shape. Every missing, unexpected and mis-shaped tensor is listed
    /// (one per line) in the error.
    pub fn take_strict(&mut self, path: &str, expected: &[(String, Type)]) -> Result<Vec<Tensor>, CheckpointError> {
        let mut problems = Vec::new();
        let mut have: HashMap<&str, &Tensor> = self.tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let mut out = Vec::with_capacity(expected.len());
        for (name, ty) in expected {
            match have.remove(name.as_str()) {
                None => problems.push(format!("missing: `{name}` ({ty})")),
                Some(t) if t.ty() != *ty => problems
                    .push(format!("mis-shaped: `{name}` is {} in the checkpoint, the model expects {ty}", t.ty())),
                Some(t) => out.push(t.clone()),
            }
        }
        let mut unexpected: Vec<&str> = have.into_keys().collect();
        unexpected.sort();
        for name in unexpected {
            problems.push(format!("unexpected: `{name}` is not a parameter or optimizer state of this model"));
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(cerr(
                path,
                format!(
                    "does not fit this model ({} problem{}):\n  {}",
                    problems.len(),
                    if problems.len() == 1 { "" } else { "s" },
                    problems.join("\n  ")
                ),
            ))
        }
    }

    /// Forgets the optimizer states (`opt.<path>.<k>`) of the parameters at `paths`.
    pub fn drop_states_of(&mut self, paths: &[&str]) {
        self.tensors.retain(|(n, _)| !state_of(n).is_some_and(|(p, _)| paths.contains(&p)));
    }

    /// The model's parameters alone (`expected`: their checkpoint names and
    /// types), strictly as `take_strict`, ignoring the optimizer's states
    /// (`opt.*`) whatever optimizer wrote them: what evaluating a checkpoint
    /// or starting a new run from its weights needs.
    pub fn take_params(&mut self, path: &str, expected: &[(String, Type)]) -> Result<Vec<Tensor>, CheckpointError> {
        // Every optimizer state, also those of parameters the model does not
        // have (the parameter itself is then reported, once).
        let is_state = |n: &str| state_of(n).is_some() && !expected.iter().any(|(e, _)| e == n);
        self.tensors.retain(|(n, _)| !is_state(n));
        self.take_strict(path, expected)
    }
}

/// Reads and decodes the checkpoint at `path`.
pub fn load(path: &Path) -> Result<Checkpoint, CheckpointError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| cerr(&name, format!("cannot read: {e}")))?;
    decode(&name, &bytes)
}

/// Encodes and writes a checkpoint atomically.
pub fn save(path: &Path, meta: &Meta, tensors: &[(String, &Tensor)]) -> Result<(), CheckpointError> {
    let name = path.display().to_string();
    let bytes = encode(meta, tensors).map_err(|e| cerr(&name, e.message))?;
    write_atomic(path, &bytes).map_err(|e| cerr(&name, write_error(&e, bytes.len())))
}

/// The temp files of `write_atomic` are `.<name>.tmp-<pid>`.
const TEMP_MARK: &str = ".tmp-";

/// Writes `bytes` to `path` so that a crash leaves the old or the new
/// content: temp file in the same directory -> write -> fsync -> rename ->
/// fsync(directory).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_with(path, bytes, |f, b| f.write_all(b))
}

/// `write_atomic` with the temp file's contents written by `write` (tests
/// inject failures such as a full disk here). On any error the temp file is
/// removed and `path` is untouched.
fn write_atomic_with(
    path: &Path,
    bytes: &[u8],
    write: impl FnOnce(&mut std::fs::File, &[u8]) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}{TEMP_MARK}{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        write(&mut f, bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The message of a failed checkpoint write of `len` bytes: what failed,
/// how much was needed and, on a full disk, that the old file survived.
pub fn write_error(e: &std::io::Error, len: usize) -> String {
    let mut msg = format!("cannot write {len} bytes: {e}");
    if e.kind() == std::io::ErrorKind::StorageFull || e.kind() == std::io::ErrorKind::QuotaExceeded {
        msg.push_str(&format!(
            "; the disk is full: {len} bytes are needed (the previous file at this path, if any, is unchanged)"
        ));
    }
    msg
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    // Directories cannot be opened as files here; the rename is durable enough.
    Ok(())
}

/// Removes the temp files that interrupted writes left in `dir`; returns
/// how many. A temp file of a process that still runs (on Linux, one whose
/// `/proc/<pid>` exists) is left alone: it belongs to a concurrent run.
pub fn remove_stray_temps(dir: &Path) -> std::io::Result<usize> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(0) };
    let proc_fs = Path::new("/proc/self").exists();
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pos) = name.rfind(TEMP_MARK) else { continue };
        if !name.starts_with('.') {
            continue;
        }
        let pid = &name[pos + TEMP_MARK.len()..];
        let alive = proc_fs
            && pid.parse::<u32>().is_ok_and(|p| p != std::process::id() && Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// `last.safetensors` of the newest `version_N` under `base` (=
/// `<root>/<name>`) that has one.
pub fn find_last(base: &Path) -> Option<PathBuf> {
    let mut best: Option<(u64, PathBuf)> = None;
    for entry in std::fs::read_dir(base).ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(n) = name.strip_prefix("version_").and_then(|n| n.parse::<u64>().ok()) else { continue };
        let last = entry.path().join("checkpoints").join("last.safetensors");
        if last.is_file() && best.as_ref().is_none_or(|(b, _)| n > *b) {
            best = Some((n, last));
        }
    }
    best.map(|(_, p)| p)
}

#[cfg(test)]
pub(crate) mod tests;
