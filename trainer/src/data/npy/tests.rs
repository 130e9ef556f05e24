//! `.npy` and `.npz` tests: our writer's files read back (every dtype,
//! shapes of rank 0 to 4, versions 1-3), the exact error for each kind of
//! bad file, and files written by numpy itself (`np.save`, `np.savez`,
//! `np.savez_compressed`, `format.write_array` with each version) where a
//! Python with numpy is found (`$JLC_NUMPY_PYTHON`, else `python3`;
//! skipped with a message otherwise).

use super::super::npz::{self, Npz};
use super::*;

fn all_dtypes(n: usize) -> Vec<Values> {
    vec![
        Values::U8((0..n).map(|i| (i * 37 % 256) as u8).collect()),
        Values::I32((0..n).map(|i| i as i32 * -7919 + 3).collect()),
        Values::F32((0..n).map(|i| i as f32 * 0.37 - 2.5).collect()),
        Values::F64((0..n).map(|i| i as f64 * 0.37 - 2.5).collect()),
        Values::Bool((0..n).map(|i| i % 3 == 0).collect()),
    ]
}

#[test]
fn written_files_read_back_for_every_dtype_and_shape() {
    for dims in [vec![], vec![5], vec![2, 3], vec![2, 3, 4], vec![1, 2, 1, 3], vec![0, 4]] {
        let n: usize = dims.iter().product();
        for values in all_dtypes(n) {
            let bytes = write(&dims, &values);
            assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
            assert_eq!((10 + u16::from_le_bytes([bytes[8], bytes[9]]) as usize) % 64, 0, "header aligned to 64");
            let back = parse("a.npy", &bytes).unwrap();
            assert_eq!((back.dims, back.values), (dims.clone(), values));
        }
    }
}

/// A file with a hand-written header (any version), for the error cases.
fn with_header(version: u8, header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend([version, 0]);
    if version == 1 {
        out.extend((header.len() as u16).to_le_bytes());
    } else {
        out.extend((header.len() as u32).to_le_bytes());
    }
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

#[test]
fn fortran_order_files_are_reordered_to_row_major() {
    // a[i][j][k] = 100 i + 10 j + k for dims [2, 3, 4], stored column-major (i fastest).
    let mut col_major = Vec::new();
    for k in 0..4 {
        for j in 0..3 {
            for i in 0..2 {
                col_major.push((100 * i + 10 * j + k) as u8);
            }
        }
    }
    let f = with_header(1, "{'descr': '|u1', 'fortran_order': True, 'shape': (2, 3, 4), }\n", &col_major);
    let a = parse("f.npy", &f).unwrap();
    let row_major: Vec<u8> =
        (0..2).flat_map(|i| (0..3).flat_map(move |j| (0..4).map(move |k| (100 * i + 10 * j + k) as u8))).collect();
    assert_eq!((a.dims, a.values), (vec![2, 3, 4], Values::U8(row_major)));
}

#[test]
fn versions_2_and_3_and_i64_and_odd_spacing_are_read() {
    let data: Vec<u8> = [1i64, -2, 2147483647, -2147483648].iter().flat_map(|v| v.to_le_bytes()).collect();
    for v in [1, 2, 3] {
        let f = with_header(v, "{\"descr\":'<i8',\"shape\":(2,2),'fortran_order':False}  \n", &data);
        let a = parse("v.npy", &f).unwrap();
        assert_eq!((a.dims, a.values), (vec![2, 2], Values::I32(vec![1, -2, i32::MAX, i32::MIN])));
    }
    // Python 2's `3L` longs, a trailing comma after the last key.
    let a = parse("l.npy", &with_header(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (3L,), }\n", &[7, 8, 9]))
        .unwrap();
    assert_eq!(a.values, Values::U8(vec![7, 8, 9]));
}

#[test]
fn bad_files_name_the_offset_and_what_was_expected() {
    let ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n";
    let good = with_header(1, ok, &[0; 8]);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"\x93NUMPZ\x01\x00".to_vec(), "a.npy: at byte 5: bad magic: a .npy file starts with \\x93NUMPY"),
        (b"PK\x03\x04".to_vec(), "a.npy: at byte 0: bad magic: a .npy file starts with \\x93NUMPY"),
        (good[..7].to_vec(), "a.npy: at byte 7: the file ends after 7 bytes, inside the .npy preamble"),
        ({ let mut b = good.clone(); b[6] = 4; b }, "a.npy: at byte 6: format version 4.0: expected 1.0, 2.0 or 3.0"),
        ({ let mut b = good.clone(); b[7] = 1; b }, "a.npy: at byte 7: format version 1.1: expected minor version 0"),
        (good[..30].to_vec(), "a.npy: at byte 30: the file ends inside the header: byte 8 says it is 58 bytes long, ending at byte 68"),
        (good[..good.len() - 3].to_vec(), "a.npy: at byte 73: truncated: the file ends here but shape [2] of '<f4' needs 8 data bytes after the 68-byte header (76 bytes in all)"),
        ({ let mut b = good.clone(); b.push(0); b }, "a.npy: at byte 76: 1 trailing bytes: shape [2] ends the data here"),
        (with_header(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }\n", &[0; 8]), "a.npy: at byte 20: unsupported dtype '>f4': big-endian data: expected little-endian ('<f4', '<f8', '<i4', '<i8', '|u1' or '|b1'); re-save with a.astype('<f4')"),
        (with_header(1, "{'descr': '<i2', 'fortran_order': False, 'shape': (2,), }\n", &[0; 4]), "a.npy: at byte 20: unsupported dtype '<i2': expected '<f4', '<f8', '<i4', '<i8', '|u1' or '|b1'"),
        (with_header(1, "{'descr': '<f4', 'shape': (2,), }\n", &[0; 8]), "a.npy: at byte 44: the header dict has no 'fortran_order' key"),
        (with_header(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}\n", &[0; 8]), "a.npy: at byte 66: unknown key 'x': expected 'descr', 'fortran_order' and 'shape'"),
        (with_header(1, "{'descr': '<f4', 'descr': '<f4'}\n", &[0; 8]), "a.npy: at byte 27: key 'descr' appears twice"),
        (with_header(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,-1), }\n", &[0; 8]), "a.npy: at byte 63: expected a dimension (a non-negative integer), found '-'"),
        (with_header(1, "{'descr': '<f4', 'fortran_order': Fals, 'shape': (2,), }\n", &[0; 8]), "a.npy: at byte 44: expected True or False, found 'F'"),
        (with_header(1, "{'descr': '<f4 , 'fortran_order': False}\n", &[0; 8]), "a.npy: at byte 28: expected ',' or '}' after a value"),
        (with_header(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } x\n", &[0; 8]), "a.npy: at byte 68: unexpected bytes after the header dict: expected spaces and '\\n'"),
        (with_header(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999,99999999999,99999999999), }\n", &[]), "a.npy: at byte 10: shape [99999999999, 99999999999, 99999999999] overflows"),
        (with_header(1, "{'descr': '|b1', 'fortran_order': False, 'shape': (2,), }\n", &[1, 2]), "a.npy: at byte 69: element 1 of '|b1' data is byte 2: expected 0 or 1"),
        (with_header(1, "{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }\n", &(1i64 << 31).to_le_bytes()), "a.npy: at byte 68: element 0 of '<i8' data is 2147483648: expected a value that fits in i32 (the trainer's integer type)"),
    ];
    for (bytes, want) in cases {
        assert_eq!(parse("a.npy", &bytes).expect_err(want).to_string(), want);
    }
}

#[test]
fn npz_archives_stored_and_deflated_read_back() {
    let members: Vec<(&str, Vec<u8>)> =
        all_dtypes(6).iter().zip(["a", "b", "c", "d", "e"]).map(|(v, k)| (k, write(&[2, 3], v))).collect();
    for deflate in [false, true] {
        let zip = npz::write(&members, deflate);
        let archive = Npz::parse("d.npz", &zip).unwrap();
        assert_eq!(
            archive.members.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
            ["a.npy", "b.npy", "c.npy", "d.npy", "e.npy"]
        );
        for ((key, _), values) in members.iter().zip(all_dtypes(6)) {
            let a = archive.array(key).unwrap();
            assert_eq!((a.dims, a.values), (vec![2, 3], values));
        }
    }
}

#[test]
fn bad_npz_archives_name_the_offset_and_what_was_expected() {
    let stored = npz::write(&[("x", write(&[2], &Values::F32(vec![1.0, 2.0])))], false);
    let deflated = npz::write(&[("x", write(&[2], &Values::F32(vec![1.0, 2.0])))], true);
    let first_error = |bytes: &[u8]| -> String {
        match Npz::parse("d.npz", bytes) {
            Err(e) => e.to_string(),
            Ok(a) => a.array("x").expect_err("expected an error").to_string(),
        }
    };
    let n = stored.len();
    let cd = n - 22 - 51; // the one central entry: 46 bytes + "x.npy"; the member is 136 bytes
    let data_at = 30 + 5; // local header + "x.npy"
    let cases: Vec<(Vec<u8>, String)> = vec![
        (stored[..10].to_vec(), "d.npz: at byte 10: the file ends after 10 bytes: a zip archive (.npz) is at least 22 bytes".into()),
        (write(&[1], &Values::U8(vec![0; 64])), "d.npz: at byte 0: bad magic: a .npz file is a zip archive, which starts with PK\\x03\\x04".into()),
        (stored[..n - 1].to_vec(), format!("d.npz: at byte {}: no end-of-central-directory record (PK\\x05\\x06) ends the file: truncated, or trailing bytes", n - 1)),
        ({ let mut b = stored.clone(); b.push(0); b }, format!("d.npz: at byte {}: no end-of-central-directory record (PK\\x05\\x06) ends the file: truncated, or trailing bytes", n + 1)),
        ({ let mut b = stored.clone(); b[cd] = b'X'; b }, format!("d.npz: at byte {cd}: expected central directory entry 0 (PK\\x01\\x02)")),
        ({ let mut b = stored.clone(); b[cd + 10] = 12; b }, format!("d.npz: at byte {}: member x.npy: compression method 12: expected 0 (stored, np.savez) or 8 (deflate, np.savez_compressed)", cd + 10)),
        ({ let mut b = stored.clone(); b[cd + 8] = 1; b }, format!("d.npz: at byte {}: member x.npy is encrypted: expected a plain archive", cd + 8)),
        ({ let mut b = stored.clone(); b[data_at + 130] ^= 1; b }, format!("d.npz: at byte {data_at}: member x.npy: CRC-32 {:08x} of its bytes does not match {:08x} in the directory: the data is corrupt", { let mut b = stored[data_at..data_at + 136].to_vec(); b[130] ^= 1; let mut c = flate2::Crc::new(); c.update(&b); c.sum() }, { let mut c = flate2::Crc::new(); c.update(&stored[data_at..data_at + 136]); c.sum() })),
        ({ let mut b = stored.clone(); b[cd + 42] = 250; b }, format!("d.npz: at byte {}: member x.npy: local header offset 250 lies outside the file", cd + 42)),
        ({ let mut b = stored.clone(); b[n - 6] = 0xff; b }, format!("d.npz: at byte {}: the central directory (51 bytes at byte {}) does not end before the EOCD record at byte {}", n - 10, 255, n - 22)),
        ({ let mut b = deflated.clone(); let d = 35; b[d] ^= 0xff; b[d + 1] ^= 0xff; b }, "d.npz: at byte 35: member x.npy: the deflate stream is corrupt or truncated".into()),
    ];
    for (bytes, want) in cases {
        let got = first_error(&bytes);
        assert!(got.starts_with(&want), "got  {got}\nwant {want}");
    }
}

/// A Python interpreter with numpy, or `None` (the test is then skipped).
fn numpy_python() -> Option<String> {
    let python = std::env::var("JLC_NUMPY_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok =
        std::process::Command::new(&python).args(["-c", "import numpy"]).output().is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: {python} cannot `import numpy` (set JLC_NUMPY_PYTHON to a Python with numpy)");
    }
    ok.then_some(python)
}

/// numpy writes each dtype and shape with `np.save` and with
/// `format.write_array` at versions 1, 2 and 3, and x/y archives with
/// `np.savez` and `np.savez_compressed` (zip64 local headers); the values
/// are a formula both sides compute.
const NUMPY_SCRIPT: &str = r#"
import sys, os, numpy as np
from numpy.lib import format as fmt
out = sys.argv[1]
shapes = {"s0": (), "s1": (5,), "s2": (2, 3), "s3": (2, 3, 4), "s4": (1, 2, 1, 3)}
dtypes = {"f4": np.float32, "f8": np.float64, "i4": np.int32, "i8": np.int64, "u1": np.uint8, "b1": np.bool_}
def values(dt, shape):
    i = np.arange(int(np.prod(shape)), dtype=np.float64)
    if dt in ("f4", "f8"): a = i * 0.37 - 2.5
    elif dt in ("i4", "i8"): a = i * -7919 + 3
    elif dt == "u1": a = (i * 37) % 256
    else: a = (i % 3) == 0
    return a.astype(dtypes[dt]).reshape(shape)
for dn in dtypes:
    for sn, shape in shapes.items():
        a = values(dn, shape)
        np.save(os.path.join(out, f"{dn}_{sn}.npy"), a)
        for v in (1, 2, 3):
            with open(os.path.join(out, f"{dn}_{sn}_v{v}.npy"), "wb") as f:
                fmt.write_array(f, a, version=(v, 0))
x = values("f4", (6, 4)); y = values("i8", (6, 1))
np.savez(os.path.join(out, "plain.npz"), x=x, y=y)
np.savez_compressed(os.path.join(out, "compressed.npz"), inputs=x, targets=y)
np.save(os.path.join(out, "fortran.npy"), np.asfortranarray(values("f8", (2, 3, 4))))
np.save(os.path.join(out, "big.npy"), np.array([2**31], dtype=np.int64))
"#;

/// What NUMPY_SCRIPT's `values` gives, computed here.
fn expected(dt: &str, n: usize) -> Values {
    let i = (0..n).map(|i| i as f64);
    match dt {
        "f4" => Values::F32(i.map(|i| (i * 0.37 - 2.5) as f32).collect()),
        "f8" => Values::F64(i.map(|i| i * 0.37 - 2.5).collect()),
        "i4" | "i8" => Values::I32(i.map(|i| (i * -7919.0 + 3.0) as i32).collect()),
        "u1" => Values::U8(i.map(|i| (i * 37.0 % 256.0) as u8).collect()),
        _ => Values::Bool((0..n).map(|i| i % 3 == 0).collect()),
    }
}

#[test]
fn files_written_by_numpy_read_back_exactly() {
    let Some(python) = numpy_python() else { return };
    let dir = std::env::temp_dir().join(format!("jlc-numpy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = std::process::Command::new(&python).args(["-c", NUMPY_SCRIPT]).arg(&dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shapes: [(&str, &[usize]); 5] =
        [("s0", &[]), ("s1", &[5]), ("s2", &[2, 3]), ("s3", &[2, 3, 4]), ("s4", &[1, 2, 1, 3])];
    let mut files = 0;
    for dt in ["f4", "f8", "i4", "i8", "u1", "b1"] {
        for (sn, dims) in shapes {
            for suffix in ["", "_v1", "_v2", "_v3"] {
                let name = format!("{dt}_{sn}{suffix}.npy");
                let a = parse(&name, &std::fs::read(dir.join(&name)).unwrap()).unwrap();
                assert_eq!((a.dims.as_slice(), a.values), (dims, expected(dt, dims.iter().product())), "{name}");
                files += 1;
            }
        }
    }
    for (file, xk, yk) in [("plain.npz", "x", "y"), ("compressed.npz", "inputs", "targets")] {
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let archive = Npz::parse(file, &bytes).unwrap();
        let (x, y) = (archive.array(xk).unwrap(), archive.array(yk).unwrap());
        assert_eq!((x.dims, x.values), (vec![6, 4], expected("f4", 24)), "{file}");
        assert_eq!((y.dims, y.values), (vec![6, 1], expected("i8", 6)), "{file}");
        files += 1;
    }
    // A Fortran-order file reads as the same (row-major) array.
    let a = parse("fortran.npy", &std::fs::read(dir.join("fortran.npy")).unwrap()).unwrap();
    assert_eq!((a.dims, a.values), (vec![2, 3, 4], expected("f8", 24)));
    let e = parse("big.npy", &std::fs::read(dir.join("big.npy")).unwrap()).unwrap_err().to_string();
    assert!(
        e.ends_with(
            "element 0 of '<i8' data is 2147483648: expected a value that fits in i32 (the trainer's integer type)"
        ),
        "{e}"
    );
    eprintln!("read {files} files written by numpy");
    std::fs::remove_dir_all(&dir).unwrap();
}
