//! The event writer against an independent reader written here: a bitwise
//! CRC-32C (no table), a generic protobuf wire-format parser, and the
//! published CRC-32C check values (RFC 3720, appendix B.4).

use super::*;

/// CRC-32C one bit at a time (the textbook form, independent of the table).
fn crc32c_bitwise(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0x82f6_3b78 & mask);
        }
    }
    !crc
}

fn unmask(m: u32) -> u32 {
    let rot = m.wrapping_sub(0xa282_ead8);
    rot.rotate_left(15)
}

/// The records of a TFRecord file, each CRC checked.
fn read_records(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let len_bytes = &bytes[at..at + 8];
        let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
        let len_crc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap());
        assert_eq!(unmask(len_crc), crc32c_bitwise(len_bytes), "length CRC at byte {at}");
        let data = &bytes[at + 12..at + 12 + len];
        let data_crc = u32::from_le_bytes(bytes[at + 12 + len..at + 16 + len].try_into().unwrap());
        assert_eq!(unmask(data_crc), crc32c_bitwise(data), "data CRC at byte {at}");
        out.push(data.to_vec());
        at += 16 + len;
    }
    out
}

#[derive(Debug, PartialEq)]
enum Field {
    Varint(u64),
    Fixed64([u8; 8]),
    Bytes(Vec<u8>),
    Fixed32([u8; 4]),
}

fn read_varint(b: &[u8], at: &mut usize) -> u64 {
    let (mut v, mut shift) = (0u64, 0);
    loop {
        let byte = b[*at];
        *at += 1;
        v |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return v;
        }
        shift += 7;
    }
}

/// (field number, value) pairs of one protobuf message.
fn parse(b: &[u8]) -> Vec<(u64, Field)> {
    let mut at = 0;
    let mut out = Vec::new();
    while at < b.len() {
        let key = read_varint(b, &mut at);
        let (num, wire) = (key >> 3, key & 7);
        let f = match wire {
            0 => Field::Varint(read_varint(b, &mut at)),
            1 => {
                at += 8;
                Field::Fixed64(b[at - 8..at].try_into().unwrap())
            }
            2 => {
                let n = read_varint(b, &mut at) as usize;
                at += n;
                Field::Bytes(b[at - n..at].to_vec())
            }
            5 => {
                at += 4;
                Field::Fixed32(b[at - 4..at].try_into().unwrap())
            }
            w => panic!("wire type {w}"),
        };
        out.push((num, f));
    }
    out
}

/// An Event decoded: (wall_time, step, file_version, [(tag, value)]).
fn decode_event(b: &[u8]) -> (f64, i64, Option<String>, Vec<(String, f32)>) {
    let (mut wall, mut step, mut version, mut values) = (0.0, 0, None, Vec::new());
    for (num, f) in parse(b) {
        match (num, f) {
            (1, Field::Fixed64(x)) => wall = f64::from_le_bytes(x),
            (2, Field::Varint(v)) => step = v as i64,
            (3, Field::Bytes(s)) => version = Some(String::from_utf8(s).unwrap()),
            (5, Field::Bytes(summary)) => {
                for (vn, value) in parse(&summary) {
                    let (1, Field::Bytes(value)) = (vn, value) else { panic!("Summary field {vn}") };
                    let (mut tag, mut x) = (String::new(), f32::NAN);
                    for (n, f) in parse(&value) {
                        match (n, f) {
                            (1, Field::Bytes(t)) => tag = String::from_utf8(t).unwrap(),
                            (2, Field::Fixed32(v)) => x = f32::from_le_bytes(v),
                            other => panic!("Summary.Value field {other:?}"),
                        }
                    }
                    values.push((tag, x));
                }
            }
            other => panic!("Event field {other:?}"),
        }
    }
    (wall, step, version, values)
}

#[test]
fn crc32c_matches_the_published_check_values() {
    let ascending: Vec<u8> = (0..32).collect();
    let descending: Vec<u8> = (0..32).rev().collect();
    for (bytes, want) in [
        (b"123456789".to_vec(), 0xe306_9283),
        (vec![0u8; 32], 0x8a91_36aa),
        (vec![0xffu8; 32], 0x62a8_ab43),
        (ascending, 0x46dd_794e),
        (descending, 0x113f_db5c),
    ] {
        assert_eq!(crc32c(&bytes), want, "{bytes:?}");
        assert_eq!(crc32c_bitwise(&bytes), want);
    }
    // The mask is invertible and moves the value.
    let c = crc32c(b"abc");
    assert_eq!(unmask(masked_crc32c(b"abc")), c);
    assert_ne!(masked_crc32c(b"abc"), c);
}

#[test]
fn written_events_decode_with_an_independent_reader() {
    let dir = std::env::temp_dir().join(format!("jlc-tb-unit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut w = EventWriter::create(&dir).unwrap();
    let name = w.path.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("events.out.tfevents."), "{name}");
    let rows: Vec<(i64, Vec<(String, f64)>)> = vec![
        (0, vec![("train_loss_step".into(), 2.302585)]),
        (9, vec![("train_loss_step".into(), 0.5), ("grad_norm_step".into(), 1e-30)]),
        // Large steps use multi-byte varints; a NaN value stays NaN.
        (300_000, vec![("val_acc".into(), 0.96875), ("x".into(), f64::NAN)]),
    ];
    for (step, values) in &rows {
        w.scalars(*step, values).unwrap();
    }
    w.flush().unwrap();
    let records = read_records(&std::fs::read(&w.path).unwrap());
    assert_eq!(records.len(), 1 + rows.len());
    let (wall, _, version, values) = decode_event(&records[0]);
    assert_eq!(version.as_deref(), Some("brain.Event:2"));
    assert!(values.is_empty() && wall > 1.6e9, "a Unix time: {wall}");
    for (rec, (step, want)) in records[1..].iter().zip(&rows) {
        let (wall2, got_step, version, values) = decode_event(rec);
        assert_eq!((got_step, version), (*step, None));
        assert!(wall2 >= wall);
        assert_eq!(values.len(), want.len());
        for ((tag, v), (wtag, wv)) in values.iter().zip(want) {
            assert_eq!(tag, wtag);
            assert!(v.to_bits() == (*wv as f32).to_bits() || (v.is_nan() && wv.is_nan()), "{tag}: {v} vs {wv}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
