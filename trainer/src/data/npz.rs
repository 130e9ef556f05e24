//! NumPy's `.npz` archives (`np.savez`, `np.savez_compressed`): a zip file
//! of `.npy` members. A small zip reader of our own on top of flate2 (see
//! ARCHITECTURE.md, "Dependencies and why"), so every error names the byte
//! offset and what was expected, and a member is decompressed only when
//! asked for.
//!
//! Consumes an archive's bytes; produces its member names and, per member,
//! the array (`npy::parse`). The zip structures read, all little-endian
//! (PKWARE's APPNOTE):
//!
//! | record | signature | fields used |
//! |---|---|---|
//! | end of central directory (EOCD) | `PK\x05\x06` | entry count, directory size and offset; ends the file (after its comment) |
//! | zip64 EOCD locator | `PK\x06\x07` | the zip64 EOCD's offset (numpy writes zip64: `force_zip64=True`) |
//! | zip64 EOCD | `PK\x06\x06` | 64-bit entry count, directory size and offset |
//! | central directory entry | `PK\x01\x02` | flags, method, CRC-32, sizes, name, zip64 extra field (`0x0001`), local header offset |
//! | local file header | `PK\x03\x04` | name and extra lengths: where the data starts |
//!
//! Methods: 0 (stored, `np.savez`) and 8 (deflate, `np.savez_compressed`);
//! encrypted members, other methods, multi-disk archives and a CRC-32 that
//! does not match the member's bytes are errors.

use super::npy::{self, Array};
use super::DataError;
use std::io::Read;

/// One member of the archive, as the central directory describes it.
#[derive(Clone, Debug)]
pub struct Member {
    pub name: String,
    method: u16,
    crc: u32,
    compressed: u64,
    size: u64,
    local_offset: u64,
    /// Where its central directory entry starts (for messages).
    entry_offset: usize,
}

/// An archive in memory: its members, read from the central directory.
pub struct Npz<'a> {
    name: String,
    bytes: &'a [u8],
    pub members: Vec<Member>,
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}
fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}
fn u64_at(b: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"))
}

const EOCD: u32 = 0x0605_4b50;
const ZIP64_LOCATOR: u32 = 0x0706_4b50;
const ZIP64_EOCD: u32 = 0x0606_4b50;
const CENTRAL: u32 = 0x0201_4b50;
const LOCAL: u32 = 0x0403_4b50;

impl<'a> Npz<'a> {
    /// Reads the archive's directory. `name` names the file in errors.
    pub fn parse(name: &str, bytes: &'a [u8]) -> Result<Npz<'a>, DataError> {
        let at = |offset: usize, message: String| DataError::At { path: name.into(), offset: offset as u64, message };
        if bytes.len() < 22 {
            return Err(at(
                bytes.len(),
                format!("the file ends after {} bytes: a zip archive (.npz) is at least 22 bytes", bytes.len()),
            ));
        }
        if u32_at(bytes, 0) != LOCAL && u32_at(bytes, 0) != EOCD {
            return Err(at(0, "bad magic: a .npz file is a zip archive, which starts with PK\\x03\\x04".into()));
        }
        // The EOCD record ends the file, after a comment of its stated length.
        let lowest = bytes.len().saturating_sub(22 + 0xffff);
        let eocd = (lowest..=bytes.len() - 22)
            .rev()
            .find(|&i| u32_at(bytes, i) == EOCD && i + 22 + u16_at(bytes, i + 20) as usize == bytes.len())
            .ok_or_else(|| {
                at(
                    bytes.len(),
                    "no end-of-central-directory record (PK\\x05\\x06) ends the file: truncated, or trailing bytes"
                        .into(),
                )
            })?;
        let (disk, cd_disk) = (u16_at(bytes, eocd + 4), u16_at(bytes, eocd + 6));
        let mut count = u16_at(bytes, eocd + 10) as u64;
        let mut cd_size = u32_at(bytes, eocd + 12) as u64;
        let mut cd_offset = u32_at(bytes, eocd + 16) as u64;
        if disk != 0 || cd_disk != 0 || u16_at(bytes, eocd + 8) as u64 != count {
            return Err(at(eocd + 4, "a multi-disk archive: expected a single-file zip".into()));
        }
        if count == 0xffff || cd_size == 0xffff_ffff || cd_offset == 0xffff_ffff {
            // Zip64: the locator sits just before the EOCD.
            if eocd < 20 || u32_at(bytes, eocd - 20) != ZIP64_LOCATOR {
                return Err(at(
                    eocd.saturating_sub(20),
                    "the EOCD record asks for zip64, but no zip64 locator (PK\\x06\\x07) precedes it".into(),
                ));
            }
            let z = u64_at(bytes, eocd - 12);
            let z = usize::try_from(z).ok().filter(|&z| z.checked_add(56).is_some_and(|e| e <= eocd - 20)).ok_or_else(
                || {
                    at(
                        eocd - 12,
                        format!("the zip64 EOCD offset {z} lies outside the archive (before byte {})", eocd - 20),
                    )
                },
            )?;
            if u32_at(bytes, z) != ZIP64_EOCD {
                return Err(at(z, "expected the zip64 end-of-central-directory record (PK\\x06\\x06)".into()));
            }
            count = u64_at(bytes, z + 32);
            cd_size = u64_at(bytes, z + 40);
            cd_offset = u64_at(bytes, z + 48);
        }
        let cd_end = cd_offset.checked_add(cd_size).filter(|&e| e <= eocd as u64).ok_or_else(|| {
            at(eocd + 12, format!("the central directory ({cd_size} bytes at byte {cd_offset}) does not end before the EOCD record at byte {eocd}"))
        })? as usize;
        let mut pos = cd_offset as usize;
        let mut members = Vec::new();
        for k in 0..count {
            if pos + 46 > cd_end {
                return Err(at(pos, format!("the central directory ends inside entry {k} of {count}")));
            }
            if u32_at(bytes, pos) != CENTRAL {
                return Err(at(pos, format!("expected central directory entry {k} (PK\\x01\\x02)")));
            }
            let flags = u16_at(bytes, pos + 8);
            let method = u16_at(bytes, pos + 10);
            let crc = u32_at(bytes, pos + 16);
            let mut compressed = u32_at(bytes, pos + 20) as u64;
            let mut size = u32_at(bytes, pos + 24) as u64;
            let (name_len, extra_len, comment_len) =
                (u16_at(bytes, pos + 28) as usize, u16_at(bytes, pos + 30) as usize, u16_at(bytes, pos + 32) as usize);
            let mut local_offset = u32_at(bytes, pos + 42) as u64;
            let next = pos + 46 + name_len + extra_len + comment_len;
            if next > cd_end {
                return Err(at(pos + 28, format!("entry {k}'s name, extra field and comment run past the central directory's end (byte {cd_end})")));
            }
            let member_name = std::str::from_utf8(&bytes[pos + 46..pos + 46 + name_len])
                .map_err(|_| at(pos + 46, format!("entry {k}'s name is not UTF-8")))?
                .to_string();
            if flags & 1 != 0 {
                return Err(at(pos + 8, format!("member {member_name} is encrypted: expected a plain archive")));
            }
            // The zip64 extra field holds, in order, the fields whose 32-bit slots are 0xffffffff.
            let mut e = pos + 46 + name_len;
            let extra_end = e + extra_len;
            while e + 4 <= extra_end {
                let (id, len) = (u16_at(bytes, e), u16_at(bytes, e + 2) as usize);
                let body = e + 4;
                if body + len > extra_end {
                    return Err(at(e + 2, format!("member {member_name}: an extra field runs past its entry")));
                }
                if id == 1 {
                    let mut f = body;
                    for slot in [&mut size, &mut compressed, &mut local_offset] {
                        if *slot == 0xffff_ffff {
                            if f + 8 > body + len {
                                return Err(at(f, format!("member {member_name}: the zip64 extra field is too short")));
                            }
                            *slot = u64_at(bytes, f);
                            f += 8;
                        }
                    }
                }
                e = body + len;
            }
            members.push(Member { name: member_name, method, crc, compressed, size, local_offset, entry_offset: pos });
            pos = next;
        }
        Ok(Npz { name: name.to_string(), bytes, members })
    }

    /// The array stored as `key` (the member `key.npy`, or `key` itself).
    pub fn array(&self, key: &str) -> Result<Array, DataError> {
        let want = format!("{key}.npy");
        let Some(m) =
            self.members.iter().find(|m| m.name == want).or_else(|| self.members.iter().find(|m| m.name == key))
        else {
            let keys: Vec<&str> = self.members.iter().map(|m| m.name.strip_suffix(".npy").unwrap_or(&m.name)).collect();
            return Err(DataError::Invalid {
                path: self.name.clone(),
                message: format!("no array named {key:?}: the archive holds {}", quoted(&keys)),
            });
        };
        let data = self.member_bytes(m)?;
        npy::parse(&format!("{} (member {})", self.name, m.name), &data)
    }

    /// Where a member's stored (maybe compressed) bytes lie in the file;
    /// `None` when its headers point outside it.
    pub fn data_range(&self, m: &Member) -> Option<std::ops::Range<usize>> {
        let lh = usize::try_from(m.local_offset)
            .ok()
            .filter(|&o| o.checked_add(30).is_some_and(|e| e <= self.bytes.len()))?;
        let start = lh + 30 + u16_at(self.bytes, lh + 26) as usize + u16_at(self.bytes, lh + 28) as usize;
        let end = start.checked_add(usize::try_from(m.compressed).ok()?).filter(|&e| e <= self.bytes.len())?;
        Some(start..end)
    }

    /// A member's bytes, decompressed and checked against its CRC-32.
    fn member_bytes(&self, m: &Member) -> Result<Vec<u8>, DataError> {
        let bytes = self.bytes;
        let at = |offset: usize, message: String| DataError::At {
            path: self.name.clone(),
            offset: offset as u64,
            message: format!("member {}: {message}", m.name),
        };
        let lh = usize::try_from(m.local_offset)
            .ok()
            .filter(|&o| o.checked_add(30).is_some_and(|e| e <= bytes.len()))
            .ok_or_else(|| {
                at(m.entry_offset + 42, format!("local header offset {} lies outside the file", m.local_offset))
            })?;
        if u32_at(bytes, lh) != LOCAL {
            return Err(at(lh, "expected a local file header (PK\\x03\\x04)".into()));
        }
        let data_start = lh + 30 + u16_at(bytes, lh + 26) as usize + u16_at(bytes, lh + 28) as usize;
        let data_end =
            (data_start as u64).checked_add(m.compressed).filter(|&e| e <= bytes.len() as u64).ok_or_else(|| {
                at(
                    data_start.min(bytes.len()),
                    format!("its {} compressed bytes run past the end of the file", m.compressed),
                )
            })? as usize;
        let raw = &bytes[data_start..data_end];
        let data = match m.method {
            0 => {
                if m.size != m.compressed {
                    return Err(at(
                        m.entry_offset + 20,
                        format!("a stored member of {} bytes says it unpacks to {}", m.compressed, m.size),
                    ));
                }
                raw.to_vec()
            }
            8 => {
                // At most one byte more than promised: enough to notice a wrong size.
                let mut out = Vec::new();
                let mut dec = flate2::read::DeflateDecoder::new(raw).take(m.size.saturating_add(1));
                dec.read_to_end(&mut out)
                    .map_err(|e| at(data_start, format!("the deflate stream is corrupt or truncated: {e}")))?;
                if out.len() as u64 != m.size {
                    return Err(at(
                        data_start,
                        format!(
                            "inflates to {}{} bytes: expected {}",
                            out.len(),
                            if out.len() as u64 > m.size { "+" } else { "" },
                            m.size
                        ),
                    ));
                }
                out
            }
            other => {
                return Err(at(
                    m.entry_offset + 10,
                    format!(
                        "compression method {other}: expected 0 (stored, np.savez) or 8 (deflate, np.savez_compressed)"
                    ),
                ))
            }
        };
        let mut crc = flate2::Crc::new();
        crc.update(&data);
        if crc.sum() != m.crc {
            return Err(at(
                data_start,
                format!(
                    "CRC-32 {:08x} of its bytes does not match {:08x} in the directory: the data is corrupt",
                    crc.sum(),
                    m.crc
                ),
            ));
        }
        Ok(data)
    }
}

fn quoted(keys: &[&str]) -> String {
    if keys.is_empty() {
        return "no arrays".into();
    }
    keys.iter().map(|k| format!("{k:?}")).collect::<Vec<_>>().join(", ")
}

/// Writes a zip archive of `.npy` members (`key.npy`), stored or deflated,
/// without zip64 (what `np.savez` writes for small arrays): fixtures for
/// tests, where numpy is not installed.
pub fn write(members: &[(&str, Vec<u8>)], deflate: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (key, data) in members {
        let name = format!("{key}.npy");
        let mut crc = flate2::Crc::new();
        crc.update(data);
        let body = if deflate {
            let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            std::io::Write::write_all(&mut enc, data).expect("in memory");
            enc.finish().expect("in memory")
        } else {
            data.clone()
        };
        let method: u16 = if deflate { 8 } else { 0 };
        let offset = out.len() as u32;
        let fields = |sig: u32, out: &mut Vec<u8>| {
            out.extend(sig.to_le_bytes());
            if sig == CENTRAL {
                out.extend(20u16.to_le_bytes()); // version made by
            }
            out.extend(20u16.to_le_bytes()); // version needed
            out.extend(0u16.to_le_bytes()); // flags
            out.extend(method.to_le_bytes());
            out.extend([0, 0, 0x21, 0]); // time, date (1980-01-01)
            out.extend(crc.sum().to_le_bytes());
            out.extend((body.len() as u32).to_le_bytes());
            out.extend((data.len() as u32).to_le_bytes());
            out.extend((name.len() as u16).to_le_bytes());
            out.extend(0u16.to_le_bytes()); // extra length
        };
        fields(LOCAL, &mut out);
        out.extend(name.as_bytes());
        out.extend(&body);
        fields(CENTRAL, &mut central);
        central.extend([0u8; 6]); // comment length, disk, internal attributes
        central.extend(0u32.to_le_bytes()); // external attributes
        central.extend(offset.to_le_bytes());
        central.extend(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend(&central);
    out.extend(EOCD.to_le_bytes());
    out.extend([0u8; 4]);
    out.extend((members.len() as u16).to_le_bytes());
    out.extend((members.len() as u16).to_le_bytes());
    out.extend((central.len() as u32).to_le_bytes());
    out.extend(cd_offset.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}
