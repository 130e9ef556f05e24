//! TensorBoard event files: scalars as TensorBoard reads them.
//!
//! Consumes (step, wall time, tag/value pairs); produces
//! `events.out.tfevents.<secs>.<host>.<pid>.0` in a run's `version_N`
//! directory, which `tensorboard --logdir <root>/<name>` shows. The format
//! has two layers, both written here by hand because each is a few lines
//! (a protobuf or CRC crate would add a dependency for 60 lines of code):
//!
//! - TFRecord framing, per record: `u64 len` (LE), `u32 masked_crc32c(len
//!   bytes)`, the `len` data bytes, `u32 masked_crc32c(data)`, where
//!   `masked(c) = ((c >> 15) | (c << 17)) + 0xa282ead8` (mod 2^32) and
//!   crc32c is CRC-32 with the Castagnoli polynomial (reflected 0x82f63b78).
//! - Each record is a protobuf `tensorflow.Event`:
//!
//! | message | field | number | wire type (tag byte) |
//! |---|---|---|---|
//! | Event | `double wall_time` | 1 | fixed64 (0x09) |
//! | Event | `int64 step` | 2 | varint (0x10) |
//! | Event | `string file_version` | 3 | length-delimited (0x1a) |
//! | Event | `Summary summary` | 5 | length-delimited (0x2a) |
//! | Summary | `repeated Value value` | 1 | length-delimited (0x0a) |
//! | Summary.Value | `string tag` | 1 | length-delimited (0x0a) |
//! | Summary.Value | `float simple_value` | 2 | fixed32 (0x15) |
//!
//! The first record is `Event { wall_time, file_version: "brain.Event:2" }`,
//! as TensorFlow's and PyTorch's writers start theirs.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The CRC-32C table (Castagnoli, reflected polynomial 0x82f63b78).
const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ 0x82f6_3b78 } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32C of `bytes` (init and final xor 0xffffffff).
pub fn crc32c(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c = CRC32C_TABLE[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// TFRecord's masked CRC: a CRC stored next to data that holds CRCs itself
/// would be weak, so it is rotated and offset.
pub fn masked_crc32c(bytes: &[u8]) -> u32 {
    let c = crc32c(bytes);
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One TFRecord: length, its masked CRC, the data, the data's masked CRC.
pub fn record(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
    out
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited field: tag byte, varint length, bytes.
fn bytes_field(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// `Event { wall_time, step, file_version }`: the file's first record.
pub fn file_version_event(wall_time: f64) -> Vec<u8> {
    let mut out = vec![0x09];
    out.extend_from_slice(&wall_time.to_le_bytes());
    bytes_field(&mut out, 0x1a, b"brain.Event:2");
    out
}

/// `Event { wall_time, step, summary { value { tag, simple_value }... } }`.
/// Values are stored as f32, as TensorBoard's scalars are.
pub fn scalars_event(wall_time: f64, step: i64, values: &[(String, f64)]) -> Vec<u8> {
    let mut summary = Vec::new();
    for (tag, v) in values {
        let mut value = Vec::new();
        bytes_field(&mut value, 0x0a, tag.as_bytes());
        value.push(0x15);
        value.extend_from_slice(&(*v as f32).to_le_bytes());
        bytes_field(&mut summary, 0x0a, &value);
    }
    let mut out = vec![0x09];
    out.extend_from_slice(&wall_time.to_le_bytes());
    out.push(0x10);
    // int64 is a two's-complement varint (negative steps take 10 bytes).
    varint(&mut out, step as u64);
    bytes_field(&mut out, 0x2a, &summary);
    out
}

fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// The host name in the file name (TensorBoard shows it; any text works).
fn hostname() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let name: String = name.trim().chars().filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c)).collect();
    if name.is_empty() {
        "localhost".into()
    } else {
        name
    }
}

/// Appends scalar events to one event file.
pub struct EventWriter {
    pub path: PathBuf,
    out: BufWriter<File>,
}

impl EventWriter {
    /// Creates `dir/events.out.tfevents.<secs>.<host>.<pid>.0` with its file-version record.
    pub fn create(dir: &Path) -> std::io::Result<EventWriter> {
        let wall = now();
        let name = format!("events.out.tfevents.{:010}.{}.{}.0", wall as u64, hostname(), std::process::id());
        let path = dir.join(name);
        let mut out = BufWriter::new(File::create(&path)?);
        out.write_all(&record(&file_version_event(wall)))?;
        Ok(EventWriter { path, out })
    }

    /// One event holding every (tag, value) of a metrics row.
    pub fn scalars(&mut self, step: i64, values: &[(String, f64)]) -> std::io::Result<()> {
        self.out.write_all(&record(&scalars_event(now(), step, values)))
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests;
