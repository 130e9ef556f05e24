//! Loader tests: IDX and CSV, raw and gzip, and the exact error for each
//! kind of bad file; NPY/NPZ datasets from arrays (the formats themselves
//! are tested in `npy/tests.rs`).

use super::*;
use std::io::Write;

/// An IDX file of unsigned bytes with the given dims and data.
pub fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        out.extend(d.to_be_bytes());
    }
    out.extend(data);
    out
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn images() -> Vec<u8> {
    idx(&[3, 2, 2], &[0, 1, 2, 3, 10, 11, 12, 13, 255, 254, 253, 252])
}

fn labels() -> Vec<u8> {
    idx(&[3], &[7, 0, 9])
}

fn err(r: Result<Dataset, DataError>) -> String {
    r.expect_err("expected an error").to_string()
}

#[test]
fn idx_raw_and_gzip_load_the_same_dataset() {
    let raw = parse_idx_pair("img", &images(), "lab", &labels(), 0.5).unwrap();
    let zipped = parse_idx_pair("img.gz", &gz(&images()), "lab.gz", &gz(&labels()), 0.5).unwrap();
    assert_eq!(raw, zipped);
    assert_eq!((raw.len(), raw.x.dims.as_slice(), raw.x.describe()), (3, &[4][..], "u8[4]".to_string()));
    assert_eq!(raw.y.values, Values::U8(vec![7, 0, 9]));
    assert_eq!(raw.y.describe(), "u8");
    // Bytes are scaled when the batch is formed.
    let (x, y) = raw.batch(&[2, 0], 0, 2);
    assert_eq!(x, Tensor::f32(&[2, 4], vec![127.5, 127.0, 126.5, 126.0, 0.0, 0.5, 1.0, 1.5]));
    assert_eq!(y, Tensor::i32(&[2], vec![9, 7]));
    // A subset keeps bytes and batches like the original.
    let sub = raw.subset(&[1, 2]);
    assert!(matches!(sub.x.values, Values::U8(_)));
    assert_eq!(sub.batch(&[1], 0, 1).0, raw.batch(&[2], 0, 1).0);
}

#[test]
fn idx_errors_name_the_file_the_offset_and_the_expectation() {
    let cases: Vec<(Vec<u8>, Vec<u8>, &str)> = vec![
        ({ let mut b = images(); b[0] = 1; b }, labels(), "img: at byte 0: bad magic 01 00: an IDX file starts with 00 00"),
        ({ let mut b = images(); b[2] = 0x0d; b }, labels(), "img: at byte 2: element type 0x0d (f32): expected 0x08 (unsigned byte)"),
        (images()[..2].to_vec(), labels(), "img: at byte 2: the file ends after 2 bytes: expected the 4-byte IDX magic (00 00 08 rank)"),
        (images()[..10].to_vec(), labels(), "img: at byte 10: the file ends inside the header: expected 3 dimensions (a 16-byte header)"),
        (images()[..20].to_vec(), labels(), "img: at byte 20: truncated: the file ends here but dimensions [3, 2, 2] need 12 data bytes after the 16-byte header (28 bytes in all)"),
        ({ let mut b = images(); b.push(0); b }, labels(), "img: at byte 28: 1 trailing bytes: dimensions [3, 2, 2] end the data here"),
        (images(), idx(&[2], &[1, 2]), "lab: at byte 4: holds 2 labels but img holds 3 images: expected one label per image"),
        (labels(), labels(), "img: at byte 3: expected an images file (at least 2 dimensions: count, then each image's size), found 1 dimension"),
        (images(), images(), "lab: at byte 3: expected a labels file (magic 00 00 08 01: 1 dimension), found 3 dimensions: an images file?"),
        // A real images file's dims are not a label count (this was a "truncated" error).
        (images(), idx(&[3, 1000, 1000], &[]), "lab: at byte 3: expected a labels file (magic 00 00 08 01: 1 dimension), found 3 dimensions: an images file?"),
        (idx(&[0, 2, 2], &[]), idx(&[0], &[]), "img: at byte 4: the file holds no images"),
        (idx(&[0xffff_ffff, 0xffff_ffff, 0xffff_ffff], &[]), labels(), "img: at byte 4: dimensions [4294967295, 4294967295, 4294967295] overflow"),
    ];
    for (img, lab, want) in cases {
        assert_eq!(err(parse_idx_pair("img", &img, "lab", &lab, 1.0)), want);
    }
    // In a gzip file the offset is in the decompressed data, and says so.
    let e = err(parse_idx_pair("img.gz", &gz(&images()[..20]), "lab", &labels(), 1.0));
    assert!(e.starts_with("img.gz: at byte 20: truncated") && e.ends_with("(of the decompressed data)"), "{e}");
    // A truncated gzip stream, and bytes after one.
    let z = gz(&images());
    assert!(err(parse_idx_pair("img.gz", &z[..z.len() - 3], "lab", &labels(), 1.0))
        .starts_with("img.gz: the gzip stream is corrupt or truncated"));
    let mut z2 = z.clone();
    z2.extend([1, 2, 3]);
    assert_eq!(
        err(parse_idx_pair("img.gz", &z2, "lab", &labels(), 1.0)),
        format!("img.gz: 3 trailing bytes after the gzip stream (which ends at byte {})", z.len())
    );
}

#[test]
fn idx_directory_lookup_accepts_raw_and_gz_names() {
    let dir = std::env::temp_dir().join(format!("jlc-idx-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let e = err(load_idx_dir(&dir, 1.0));
    assert!(e.contains("no IDX file found: expected one of train-images-idx3-ubyte, train-images.idx3-ubyte"), "{e}");
    std::fs::write(dir.join("train-images-idx3-ubyte.gz"), gz(&images())).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), labels()).unwrap();
    let d = load_idx_dir(&dir, 1.0).unwrap();
    assert_eq!(d.y.values, Values::U8(vec![7, 0, 9]));
    std::fs::write(dir.join("train-labels-idx1-ubyte"), idx(&[2], &[0, 1])).unwrap();
    let e = err(load_idx_dir(&dir, 1.0));
    assert!(
        e.contains("train-labels-idx1-ubyte: at byte 4: holds 2 labels")
            && e.contains("train-images-idx3-ubyte.gz holds 3 images"),
        "{e}"
    );
}

#[test]
fn csv_bytes_raw_and_gzip_agree_and_errors_name_the_line() {
    let text = b"1,2,0\n3,4,1\n";
    let a = parse_csv_bytes("a.csv", text, 0.5).unwrap();
    assert_eq!(a, parse_csv_bytes("a.csv.gz", &gz(text), 0.5).unwrap());
    assert_eq!(a.batch(&[1, 0], 0, 2).0, Tensor::f32(&[2, 2], vec![1.5, 2.0, 0.5, 1.0]));
    assert_eq!(
        err(parse_csv_bytes("b.csv", b"1,2,0\n3,x,1\n", 1.0)),
        "b.csv:2: column 2: expected a number, found \"x\""
    );
    assert_eq!(err(parse_csv_bytes("b.csv", b"1,2\xff", 1.0)), "b.csv: not UTF-8 text (byte 3)");
}

/// `y = "float"` reads the last column as an `f32` target (a regression's),
/// `y = false` reads every column as a feature and gives zero targets;
/// the default is the integer class label.
#[test]
fn csv_last_column_is_a_class_a_float_target_or_a_feature() {
    let text = b"1,2,0.25\n3,4,-1.5\n";
    let float = parse_csv_bytes_with("r.csv", text, 0.5, CsvTargets::Float).unwrap();
    assert_eq!(float.x, Column::new(Values::F32(vec![0.5, 1.0, 1.5, 2.0]), vec![2], 1.0));
    assert_eq!(float.y, Column::new(Values::F32(vec![0.25, -1.5]), vec![], 1.0));
    let none = parse_csv_bytes_with("r.csv", text, 1.0, CsvTargets::None).unwrap();
    assert_eq!(none.x, Column::new(Values::F32(vec![1.0, 2.0, 0.25, 3.0, 4.0, -1.5]), vec![3], 1.0));
    assert_eq!(none.y, Column::new(Values::I32(vec![0, 0]), vec![], 1.0));
    let one_column = parse_csv_bytes_with("c.csv", b"7\n8\n9\n", 1.0, CsvTargets::None).unwrap();
    assert_eq!(one_column.x, Column::new(Values::F32(vec![7.0, 8.0, 9.0]), vec![1], 1.0));
    assert_eq!(
        err(parse_csv_bytes("r.csv", text, 1.0)),
        "r.csv:1: last column: expected a non-negative integer class label, found 0.25 \
         (a number to regress is read with `csv(..., y = \"float\")`)"
    );
    assert_eq!(
        err(parse_csv_bytes_with("r.csv", b"1,2,3\n3,4,nan\n", 1.0, CsvTargets::Float)),
        "r.csv:2: last column: expected a finite number (the target), found \"nan\""
    );
    assert_eq!(
        err(parse_csv_bytes_with("r.csv", b"1,2\n3,4,5\n", 1.0, CsvTargets::None)),
        "r.csv:2: expected 2 columns like the first line, found 3"
    );
    // A spreadsheet's byte-order mark is skipped; a feature that scaling
    // makes infinite is refused where it is.
    let bom = parse_csv_bytes("b.csv", "\u{feff}1,2,0\n".as_bytes(), 1.0).unwrap();
    assert_eq!(bom.x, Column::new(Values::F32(vec![1.0, 2.0]), vec![2], 1.0));
    assert_eq!(
        err(parse_csv_bytes_with("s.csv", b"1,2,0\n3e38,2,1\n", 10.0, CsvTargets::Float)),
        "s.csv:2: column 1: value 3e38 times scale 10 is not finite in f32"
    );
}

#[test]
fn idx_test_split_is_the_t10k_files_or_none() {
    let dir = std::env::temp_dir().join(format!("jlc-idx-test-split-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("train-images-idx3-ubyte"), images()).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), labels()).unwrap();
    assert_eq!(load_idx_test_dir(&dir, 1.0).unwrap(), None, "no t10k files: no test split");
    let test_images = idx(&[2, 2, 2], &[5, 6, 7, 8, 9, 10, 11, 12]);
    std::fs::write(dir.join("t10k-images-idx3-ubyte.gz"), gz(&test_images)).unwrap();
    let e = load_idx_test_dir(&dir, 1.0).expect_err("images without labels");
    assert!(e.to_string().contains("t10k-labels-idx1-ubyte"), "{e}");
    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), idx(&[2], &[3, 4])).unwrap();
    let test = load_idx_test_dir(&dir, 0.5).unwrap().expect("a test split");
    assert_eq!(test, parse_idx_pair("i", &test_images, "l", &idx(&[2], &[3, 4]), 0.5).unwrap());
    // The training split is still the train-* files.
    assert_eq!(load_idx_dir(&dir, 1.0).unwrap().len(), 3);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn arr(dims: &[usize], values: Values) -> npy::Array {
    npy::Array { dims: dims.to_vec(), values }
}

#[test]
fn arrays_become_columns_of_any_shape_and_dtype() {
    // Token sequences: x i32[3, 4], y i32[3, 4].
    let toks: Vec<i32> = (0..12).collect();
    let d =
        from_arrays("x", arr(&[3, 4], Values::I32(toks.clone())), "y", arr(&[3, 4], Values::I32(toks)), 1.0).unwrap();
    assert_eq!(
        (d.len(), d.x.batch_type(2).to_string(), d.y.batch_type(2).to_string()),
        (3, "i32[2, 4]".into(), "i32[2, 4]".into())
    );
    let (x, y) = d.batch(&[2, 0, 1], 0, 2);
    assert_eq!(x, Tensor::i32(&[2, 4], vec![8, 9, 10, 11, 0, 1, 2, 3]));
    assert_eq!(x, y);
    // Images as bytes (scaled when batched), float regression targets.
    let px: Vec<u8> = (0..2 * 2 * 3).map(|i| i as u8).collect();
    let d = from_arrays("x", arr(&[2, 1, 2, 3], Values::U8(px)), "y", arr(&[2, 1], Values::F64(vec![0.5, -1.0])), 0.5)
        .unwrap();
    assert_eq!(d.x.describe(), "u8[1, 2, 3]");
    let (x, y) = d.batch(&[1], 0, 1);
    assert_eq!(x, Tensor::f32(&[1, 1, 2, 3], vec![3.0, 3.5, 4.0, 4.5, 5.0, 5.5]));
    assert_eq!(y, Tensor::f64(&[1, 1], vec![-1.0]));
    // Byte targets are labels (i32); bool inputs stay bool.
    let d = from_arrays("x", arr(&[2], Values::Bool(vec![true, false])), "y", arr(&[2], Values::U8(vec![3, 4])), 1.0)
        .unwrap();
    assert_eq!(d.batch(&[0, 1], 0, 2), (Tensor::bool(&[2], vec![true, false]), Tensor::i32(&[2], vec![3, 4])));
    // Float inputs are scaled when loaded.
    let d =
        from_arrays("x", arr(&[1, 2], Values::F32(vec![1.0, 3.0])), "y", arr(&[1], Values::I32(vec![0])), 0.5).unwrap();
    assert_eq!(d.x.values, Values::F32(vec![0.5, 1.5]));
}

#[test]
fn array_pairs_that_cannot_be_a_dataset_are_errors() {
    let e =
        |x: npy::Array, y: npy::Array, scale: f32| from_arrays("x.npy", x, "y.npy", y, scale).unwrap_err().to_string();
    let ys = || arr(&[2], Values::I32(vec![0, 1]));
    assert_eq!(
        e(arr(&[3, 2], Values::F32(vec![0.0; 6])), ys(), 1.0),
        "y.npy: holds 2 examples (shape [2]) but x.npy holds 3 (shape [3, 2]): expected one target per input"
    );
    assert_eq!(
        e(arr(&[], Values::F32(vec![0.0])), ys(), 1.0),
        "x.npy: a scalar: expected an array with one example per index of its first axis"
    );
    assert_eq!(e(arr(&[0, 2], Values::F32(vec![])), ys(), 1.0), "x.npy: shape [0, 2] holds no examples");
    assert_eq!(
        e(arr(&[2, 0], Values::F32(vec![])), ys(), 1.0),
        "x.npy: shape [2, 0]: each example is empty (a dimension is 0)"
    );
    assert_eq!(
        e(arr(&[2], Values::I32(vec![1, 2])), ys(), 0.5),
        "x.npy: scale = 0.5 applies to float or u8 inputs, not i32"
    );
    // A column's batch dtype set by hand (public fields) to one its values
    // cannot become: an error, not a panic when the first batch is formed.
    let labels = Column { dtype: DType::F32, ..Column::new(Values::I32(vec![0, 1]), vec![], 1.0) };
    let err = Dataset::new(Column::new(Values::F32(vec![0.0; 2]), vec![], 1.0), labels).unwrap_err();
    assert_eq!(err, "the targets store i32 values but are to be batched as f32: bytes become f32, f64 or i32, other values stay their own type");
    // NaN and infinities are refused as a CSV's are (they surfaced as a NaN loss steps later).
    assert_eq!(
        e(arr(&[2, 3], Values::F32(vec![0.0, 1.0, 2.0, 3.0, f32::NAN, 5.0])), ys(), 1.0),
        "x.npy: example 1 (value 1 of it) is NaN: expected finite numbers"
    );
    assert_eq!(
        e(arr(&[2], Values::F32(vec![1.0, 3e38])), ys(), 10.0),
        "x.npy: example 1 (value 0 of it) is inf after scale: expected finite numbers"
    );
    assert_eq!(
        e(arr(&[2], Values::F32(vec![1.0, 2.0])), arr(&[2], Values::F64(vec![f64::NEG_INFINITY, 0.0])), 1.0),
        "y.npy: example 0 (value 0 of it) is -inf: expected finite numbers"
    );
}

#[test]
fn npz_and_npy_files_load_the_same_dataset() {
    let dir = std::env::temp_dir().join(format!("jlc-npz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let x = Values::F32(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let y = Values::I32(vec![1, 0, 1]);
    let (xb, yb) = (npy::write(&[3, 2], &x), npy::write(&[3], &y));
    std::fs::write(dir.join("x.npy"), &xb).unwrap();
    std::fs::write(dir.join("y.npy"), &yb).unwrap();
    for deflate in [false, true] {
        std::fs::write(dir.join("d.npz"), npz::write(&[("inputs", xb.clone()), ("targets", yb.clone())], deflate))
            .unwrap();
        let a = load_npz(&dir.join("d.npz"), "inputs", "targets", 1.0).unwrap();
        assert_eq!(a, load_npy(&dir.join("x.npy"), Some(&dir.join("y.npy")), 1.0).unwrap());
        assert_eq!((a.x.values.clone(), a.y.values.clone()), (x.clone(), y.clone()));
        let e = load_npz(&dir.join("d.npz"), "x", "targets", 1.0).unwrap_err().to_string();
        assert!(e.ends_with("d.npz: no array named \"x\": the archive holds \"inputs\", \"targets\""), "{e}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_text_corpus_becomes_next_byte_sequences() {
    let dir = std::env::temp_dir().join(format!("jlc-text-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let text = b"abcdefghij"; // 10 bytes: 3 sequences of 3 with their targets, 'j' only a target
    std::fs::write(dir.join("t.txt"), text).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text).unwrap();
    std::fs::write(dir.join("t.txt.gz"), gz.finish().unwrap()).unwrap();
    for name in ["t.txt", "t.txt.gz"] {
        let d = load_text(&dir.join(name), 3).unwrap();
        assert_eq!(d.len(), 3);
        assert_eq!(d.x.values, Values::U8(b"abcdefghi".to_vec()));
        assert_eq!(d.y.values, Values::U8(b"bcdefghij".to_vec()));
        assert_eq!((d.x.dims.clone(), d.x.dtype), (vec![3], DType::I32));
        let (x, y) = d.batch(&[2, 0], 0, 2);
        assert_eq!(x, Tensor::i32(&[2, 3], b"ghiabc".iter().map(|&b| b as i32).collect()));
        assert_eq!(y, Tensor::i32(&[2, 3], b"hijbcd".iter().map(|&b| b as i32).collect()));
    }
    let e = load_text(&dir.join("t.txt"), 10).unwrap_err().to_string();
    assert!(
        e.contains("t.txt: 10 bytes of text hold no sequence of seq = 10 (with its next-byte targets, 11 bytes)"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
