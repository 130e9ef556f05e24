//! NumPy's `.npy` format: reading (any version, the dtypes a dataset
//! needs) and writing (the outputs of `jlc predict`, and test fixtures).
//!
//! Consumes a file's bytes; produces its shape and values (`Values`), or an
//! error naming the file, the byte offset and what was expected. Never
//! panics on bad input (fuzzed in `tests/it/fuzz.rs`).
//!
//! The layout (numpy's `format.py`):
//!
//! | bytes | v1 | v2, v3 |
//! |---|---|---|
//! | 0..6 | `\x93NUMPY` | same |
//! | 6, 7 | major, minor version | same |
//! | 8.. | header length, u16 LE | u32 LE |
//! | 10.. / 12.. | header: a Python dict literal, ASCII (v3: UTF-8), ending in `\n` | same |
//!
//! The dict has exactly the keys `descr` (the dtype string), `fortran_order`
//! and `shape` (a tuple of ints); then `prod(shape) * itemsize` bytes of
//! data follow, and nothing after them.
//!
//! | descr | stored as | why |
//! |---|---|---|
//! | `<f4`, `<f8` | f32, f64 | as is |
//! | `<i4` | i32 | as is |
//! | `<i8` | i32 | numpy's default int; each value must fit in i32 (checked, with its offset) |
//! | `|u1` (`<u1`, `>u1`) | u8 | kept compact until a batch is formed |
//! | `|b1` | bool | bytes must be 0 or 1 |
//!
//! Big-endian data is an error that says how to re-save the array
//! (`a.astype('<f4')`); `fortran_order: True` (what `np.save` writes for a
//! transposed array) is reordered to row-major when read.

use super::{DataError, Values};

/// The 6-byte magic string that opens every `.npy` file.
pub const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// An array read from a `.npy` file: row-major values and their dims.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    pub dims: Vec<usize>,
    pub values: Values,
}

/// The dtypes we read: (descr, item size in bytes, as which storage).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Descr {
    F4,
    F8,
    I4,
    I8,
    U1,
    B1,
}

impl Descr {
    fn parse(s: &str) -> Option<Descr> {
        Some(match s {
            "<f4" => Descr::F4,
            "<f8" => Descr::F8,
            "<i4" => Descr::I4,
            "<i8" => Descr::I8,
            "|u1" | "<u1" | ">u1" => Descr::U1,
            "|b1" => Descr::B1,
            _ => return None,
        })
    }
    fn size(self) -> usize {
        match self {
            Descr::F4 | Descr::I4 => 4,
            Descr::F8 | Descr::I8 => 8,
            Descr::U1 | Descr::B1 => 1,
        }
    }
}

const SUPPORTED: &str = "'<f4', '<f8', '<i4', '<i8', '|u1' or '|b1'";

/// Parses a whole `.npy` file. `name` names it in errors.
pub fn parse(name: &str, bytes: &[u8]) -> Result<Array, DataError> {
    let at = |offset: usize, message: String| DataError::At { path: name.into(), offset: offset as u64, message };
    if bytes.len() < 10 || !bytes.starts_with(MAGIC) {
        let n = bytes.len().min(6);
        if bytes[..n] != MAGIC[..n] {
            let pos = (0..n).find(|&i| bytes[i] != MAGIC[i]).unwrap_or(0);
            return Err(at(pos, "bad magic: a .npy file starts with \\x93NUMPY".into()));
        }
        return Err(at(bytes.len(), format!("the file ends after {} bytes, inside the .npy preamble", bytes.len())));
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (len_bytes, start) = match major {
        1 => (2, 10),
        2 | 3 => (4, 12),
        _ => return Err(at(6, format!("format version {major}.{minor}: expected 1.0, 2.0 or 3.0"))),
    };
    if minor != 0 {
        return Err(at(7, format!("format version {major}.{minor}: expected minor version 0")));
    }
    if bytes.len() < start {
        return Err(at(
            bytes.len(),
            format!("the file ends inside the header length (a {len_bytes}-byte integer at byte 8)"),
        ));
    }
    let header_len = if len_bytes == 2 {
        u16::from_le_bytes([bytes[8], bytes[9]]) as usize
    } else {
        u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize
    };
    let data_start = start + header_len;
    if bytes.len() < data_start {
        return Err(at(
            bytes.len(),
            format!("the file ends inside the header: byte 8 says it is {header_len} bytes long, ending at byte {data_start}"),
        ));
    }
    let header = &bytes[start..data_start];
    let (descr, fortran, dims) = parse_header(header, start).map_err(|(off, msg)| at(off, msg))?;
    let descr_name = descr.0.clone();
    let descr = match Descr::parse(&descr.0) {
        Some(d) => d,
        None => {
            let hint = if descr.0.starts_with('>') {
                format!(
                    "big-endian data: expected little-endian ({SUPPORTED}); re-save with a.astype('<{}')",
                    &descr.0[1..]
                )
            } else {
                format!("expected {SUPPORTED}")
            };
            return Err(at(descr.1, format!("unsupported dtype '{}': {hint}", descr.0)));
        }
    };
    let overflow = || at(start, format!("shape {:?} overflows", dims.0));
    let n = dims.0.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(overflow)?;
    let n_bytes = n.checked_mul(descr.size()).ok_or_else(overflow)?;
    let end = data_start.checked_add(n_bytes).ok_or_else(overflow)?;
    if bytes.len() < end {
        return Err(at(
            bytes.len(),
            format!(
                "truncated: the file ends here but shape {:?} of '{}' needs {n_bytes} data bytes after the {data_start}-byte header ({end} bytes in all)",
                dims.0, descr_name
            ),
        ));
    }
    if bytes.len() > end {
        return Err(at(end, format!("{} trailing bytes: shape {:?} ends the data here", bytes.len() - end, dims.0)));
    }
    let data = &bytes[data_start..end];
    let values = match descr {
        Descr::F4 => Values::F32(data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()),
        Descr::F8 => Values::F64(
            data.chunks_exact(8)
                .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
        ),
        Descr::I4 => Values::I32(data.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()),
        Descr::I8 => {
            let mut out = Vec::with_capacity(n);
            for (i, c) in data.chunks_exact(8).enumerate() {
                let v = i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
                let Ok(v) = i32::try_from(v) else {
                    return Err(at(
                        data_start + 8 * i,
                        format!("element {i} of '<i8' data is {v}: expected a value that fits in i32 (the trainer's integer type)"),
                    ));
                };
                out.push(v);
            }
            Values::I32(out)
        }
        Descr::U1 => Values::U8(data.to_vec()),
        Descr::B1 => {
            let mut out = Vec::with_capacity(n);
            for (i, &b) in data.iter().enumerate() {
                if b > 1 {
                    return Err(at(data_start + i, format!("element {i} of '|b1' data is byte {b}: expected 0 or 1")));
                }
                out.push(b == 1);
            }
            Values::Bool(out)
        }
    };
    let values = if fortran.0 { to_row_major(&dims.0, values) } else { values };
    Ok(Array { dims: dims.0, values })
}

/// Column-major (Fortran-order) values of an array of `dims` in row-major
/// order: row-major element `i`, at multi-index `(i_0, ..., i_k)`, is
/// column-major element `sum_j i_j * prod(dims[..j])`.
fn to_row_major(dims: &[usize], values: Values) -> Values {
    if dims.len() < 2 {
        return values;
    }
    let n: usize = dims.iter().product();
    let mut src = Vec::with_capacity(n);
    let mut idx = vec![0usize; dims.len()];
    // Column-major strides: 1, d0, d0 d1, ...
    let strides: Vec<usize> = dims.iter().scan(1, |s, &d| Some(std::mem::replace(s, *s * d))).collect();
    for _ in 0..n {
        src.push(idx.iter().zip(&strides).map(|(i, s)| i * s).sum::<usize>());
        // Advance the row-major multi-index (last axis fastest).
        for k in (0..dims.len()).rev() {
            idx[k] += 1;
            if idx[k] < dims[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    fn permute<T: Copy>(v: &[T], src: &[usize]) -> Vec<T> {
        src.iter().map(|&i| v[i]).collect()
    }
    match values {
        Values::U8(v) => Values::U8(permute(&v, &src)),
        Values::I32(v) => Values::I32(permute(&v, &src)),
        Values::F32(v) => Values::F32(permute(&v, &src)),
        Values::F64(v) => Values::F64(permute(&v, &src)),
        Values::Bool(v) => Values::Bool(permute(&v, &src)),
    }
}

/// A parsed value with the offset where it starts in the file.
type At<T> = (T, usize);

/// Parses the header dict; errors are (file offset, message).
#[allow(clippy::type_complexity)]
fn parse_header(h: &[u8], base: usize) -> Result<(At<String>, At<bool>, At<Vec<usize>>), (usize, String)> {
    let mut p = DictParser { h, pos: 0, base };
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    p.skip_ws();
    p.expect(b'{', "'{' opening the header dict")?;
    loop {
        p.skip_ws();
        if p.peek() == Some(b'}') {
            p.pos += 1;
            break;
        }
        let key_at = p.offset();
        let key = p.string()?;
        p.skip_ws();
        p.expect(b':', "':' after a key")?;
        p.skip_ws();
        let value_at = p.offset();
        match key.as_str() {
            "descr" if descr.is_none() => descr = Some((p.string()?, value_at)),
            "fortran_order" if fortran.is_none() => fortran = Some((p.boolean()?, value_at)),
            "shape" if shape.is_none() => shape = Some((p.tuple()?, value_at)),
            "descr" | "fortran_order" | "shape" => return Err((key_at, format!("key '{key}' appears twice"))),
            _ => return Err((key_at, format!("unknown key '{key}': expected 'descr', 'fortran_order' and 'shape'"))),
        }
        p.skip_ws();
        match p.peek() {
            Some(b',') => p.pos += 1,
            Some(b'}') => {}
            _ => return Err((p.offset(), "expected ',' or '}' after a value".into())),
        }
    }
    // After the dict: padding spaces and one final newline (numpy writes both).
    let rest = &h[p.pos..];
    if let Some(i) = rest.iter().position(|&b| b != b' ' && b != b'\n' && b != b'\t' && b != b'\r' && b != 0) {
        return Err((p.base + p.pos + i, "unexpected bytes after the header dict: expected spaces and '\\n'".into()));
    }
    let end = base + h.len();
    let missing = |k: &str| (end, format!("the header dict has no '{k}' key"));
    Ok((
        descr.ok_or_else(|| missing("descr"))?,
        fortran.ok_or_else(|| missing("fortran_order"))?,
        shape.ok_or_else(|| missing("shape"))?,
    ))
}

struct DictParser<'a> {
    h: &'a [u8],
    pos: usize,
    base: usize,
}

impl DictParser<'_> {
    fn offset(&self) -> usize {
        self.base + self.pos
    }
    fn peek(&self) -> Option<u8> {
        self.h.get(self.pos).copied()
    }
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }
    fn expect(&mut self, c: u8, what: &str) -> Result<(), (usize, String)> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err((self.offset(), format!("expected {what}, found {}", self.found())))
        }
    }
    fn found(&self) -> String {
        match self.peek() {
            None => "the end of the header".into(),
            Some(b) if b.is_ascii_graphic() => format!("'{}'", b as char),
            Some(b) => format!("byte 0x{b:02x}"),
        }
    }
    /// A quoted string ('...' or "...") without escapes (numpy writes none in headers).
    fn string(&mut self) -> Result<String, (usize, String)> {
        let start = self.offset();
        let q = match self.peek() {
            Some(q @ (b'\'' | b'"')) => q,
            _ => return Err((start, format!("expected a quoted string, found {}", self.found()))),
        };
        self.pos += 1;
        let from = self.pos;
        while let Some(b) = self.peek() {
            if b == q {
                let s = &self.h[from..self.pos];
                self.pos += 1;
                return match std::str::from_utf8(s) {
                    Ok(s) if !s.contains('\\') => Ok(s.to_string()),
                    _ => Err((start, "expected a plain string (UTF-8, no escapes)".into())),
                };
            }
            if b == b'\n' {
                break;
            }
            self.pos += 1;
        }
        Err((start, "unterminated string in the header".into()))
    }
    fn boolean(&mut self) -> Result<bool, (usize, String)> {
        for (word, v) in [(&b"True"[..], true), (&b"False"[..], false)] {
            if self.h[self.pos..].starts_with(word) {
                self.pos += word.len();
                return Ok(v);
            }
        }
        Err((self.offset(), format!("expected True or False, found {}", self.found())))
    }
    /// `()`, `(n,)`, `(n, m)`, `(n, m,)`: non-negative ints.
    fn tuple(&mut self) -> Result<Vec<usize>, (usize, String)> {
        self.expect(b'(', "'(' opening the shape tuple")?;
        let mut dims = Vec::new();
        loop {
            self.skip_ws();
            if self.peek() == Some(b')') {
                self.pos += 1;
                return Ok(dims);
            }
            let start = self.offset();
            let from = self.pos;
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.pos += 1;
            }
            if self.pos == from {
                return Err((start, format!("expected a dimension (a non-negative integer), found {}", self.found())));
            }
            // Python 2 longs: `3L`.
            let digits = std::str::from_utf8(&self.h[from..self.pos]).expect("ASCII digits");
            if self.peek() == Some(b'L') {
                self.pos += 1;
            }
            let d: usize = digits.parse().map_err(|_| (start, format!("dimension {digits} is too large")))?;
            dims.push(d);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b')') => {}
                _ => return Err((self.offset(), format!("expected ',' or ')' in the shape, found {}", self.found()))),
            }
        }
    }
}

/// Writes `values` with `dims` as a `.npy` file (version 1.0, or 2.0 when the
/// header needs more than 65535 bytes), the way numpy does: the header
/// padded with spaces to a multiple of 64 bytes and ending in `\n`.
pub fn write(dims: &[usize], values: &Values) -> Vec<u8> {
    let descr = match values {
        Values::U8(_) => "|u1",
        Values::I32(_) => "<i4",
        Values::F32(_) => "<f4",
        Values::F64(_) => "<f8",
        Values::Bool(_) => "|b1",
    };
    let shape = match dims {
        [d] => format!("({d},)"),
        _ => format!("({})", dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    let (version, pre) = if dict.len() + 11 <= 65535 { (1u8, 10) } else { (2u8, 12) };
    let total = (pre + dict.len() + 1).div_ceil(64) * 64;
    let header_len = total - pre;
    let mut out = Vec::with_capacity(total + values.len() * 8);
    out.extend_from_slice(MAGIC);
    out.extend([version, 0]);
    if version == 1 {
        out.extend((header_len as u16).to_le_bytes());
    } else {
        out.extend((header_len as u32).to_le_bytes());
    }
    out.extend(dict.as_bytes());
    out.resize(total - 1, b' ');
    out.push(b'\n');
    match values {
        Values::U8(v) => out.extend(v),
        Values::I32(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
        Values::F32(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
        Values::F64(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
        Values::Bool(v) => out.extend(v.iter().map(|&b| b as u8)),
    }
    out
}

#[cfg(test)]
mod tests;
