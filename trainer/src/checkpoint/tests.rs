//! Checkpoint round trips, strict loading, corruption detection, atomic
//! writes and stray-temp cleanup.

use super::*;
use compiler::ir::DType;

pub(crate) fn meta() -> Meta {
    Meta {
        format_version: FORMAT_VERSION,
        jlc_version: "0.1.0".into(),
        model_name: "Mlp".into(),
        model_hash: model_hash("model Mlp {}"),
        seed: 7,
        epoch: 1,
        batch: 5,
        global_step: 28,
        loss_sum: 0.1 + 0.2,
        log_sums: vec![1.0 / 3.0, -0.0, f64::MIN_POSITIVE],
        data_order: "batch_size=4,val_split=0,shuffle=true,n_train=8,n_batches=2".into(),
        config: "trainer:\n  seed: 7\n".into(),
        callbacks: r#"{"EarlyStopping":{"best":"3fd5555555555555","monitor":"val_loss","wait":2}}"#.into(),
    }
}

fn tensors() -> Vec<(String, Tensor)> {
    vec![
        ("l1.weight".into(), Tensor::f32(&[2, 3], vec![1.5, -2.0, f32::MIN_POSITIVE, 0.1, -0.0, 3.0])),
        ("l1.bias".into(), Tensor::f32(&[3], vec![0.0, 1.0, 2.0])),
        ("opt.l1.weight.0".into(), Tensor::f32(&[2, 3], vec![0.25; 6])),
        ("counts".into(), Tensor::i32(&[2], vec![-1, 7])),
        ("mask".into(), Tensor::bool(&[3], vec![true, false, true])),
        ("wide".into(), Tensor::f64(&[], vec![std::f64::consts::PI])),
    ]
}

fn encoded() -> Vec<u8> {
    let ts = tensors();
    let refs: Vec<(String, &Tensor)> = ts.iter().map(|(n, t)| (n.clone(), t)).collect();
    encode(&meta(), &refs).unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("jlc-ckpt-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn round_trip_is_bitwise() {
    let ck = decode("x.safetensors", &encoded()).unwrap();
    assert_eq!(ck.meta, meta());
    let mut want = tensors();
    want.sort_by(|a, b| a.0.cmp(&b.0));
    // Compare bits, not values: -0.0 == 0.0 would hide a sign flip.
    assert_eq!(format!("{:?}", ck.tensors), format!("{want:?}"));
    for ((_, a), (_, b)) in ck.tensors.iter().zip(&want) {
        if let (Some(a), Some(b)) = (a.as_f32(), b.as_f32()) {
            assert_eq!(
                a.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                b.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
            );
        }
    }
}

#[test]
fn strict_load_lists_every_problem() {
    let mut ck = decode("ck.safetensors", &encoded()).unwrap();
    let expected = vec![
        ("l1.weight".to_string(), Type::new(DType::F32, &[2, 3])),
        ("l1.bias".to_string(), Type::new(DType::F32, &[4])),
        ("head.weight".to_string(), Type::new(DType::F32, &[3, 1])),
    ];
    let err = ck.take_strict("ck.safetensors", &expected).unwrap_err().to_string();
    assert!(err.starts_with("checkpoint ck.safetensors: does not fit this model (6 problems)"), "{err}");
    assert!(err.contains("missing: `head.weight` (f32[3, 1])"), "{err}");
    assert!(err.contains("mis-shaped: `l1.bias` is f32[3] in the checkpoint, the model expects f32[4]"), "{err}");
    for name in ["counts", "mask", "opt.l1.weight.0", "wide"] {
        assert!(err.contains(&format!("unexpected: `{name}`")), "{err}");
    }
    let mut ck = decode("ck.safetensors", &encoded()).unwrap();
    let all: Vec<(String, Type)> = tensors().iter().map(|(n, t)| (n.clone(), t.ty())).collect();
    let got = ck.take_strict("ck.safetensors", &all).unwrap();
    assert_eq!(got, tensors().into_iter().map(|(_, t)| t).collect::<Vec<_>>());
}

#[test]
fn every_truncation_and_every_single_bit_flip_is_an_error() {
    let bytes = encoded();
    for len in 0..bytes.len() {
        let err = decode("t.safetensors", &bytes[..len]).expect_err(&format!("truncation to {len} bytes accepted"));
        assert!(err.to_string().starts_with("checkpoint t.safetensors: "), "{err}");
    }
    for bit in 0..bytes.len() * 8 {
        let mut b = bytes.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        assert!(decode("f.safetensors", &b).is_err(), "flipping bit {bit} (byte {}) went undetected", bit / 8);
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(decode("f.safetensors", &longer).is_err(), "a trailing byte went undetected");
}

#[test]
fn unsupported_format_version_is_named() {
    let mut m = meta();
    m.format_version = 99;
    let t = Tensor::f32(&[1], vec![1.0]);
    let bytes = encode(&m, &[("a".into(), &t)]).unwrap();
    let err = decode("v.safetensors", &bytes).unwrap_err().to_string();
    assert!(err.contains("format version 99 is not supported"), "{err}");
}

#[test]
fn hostile_offsets_are_rejected_before_the_crate_adds_them() {
    // Two tensors whose offsets sum past u64::MAX: the crate would overflow.
    let big = u64::MAX / 16 * 8;
    let header = format!(
        r#"{{"a":{{"dtype":"U8","shape":[{big}],"data_offsets":[0,{big}]}},"b":{{"dtype":"U8","shape":[{big}],"data_offsets":[{big},{}]}}}}"#,
        big * 2
    );
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header.bytes());
    let err = decode("h.safetensors", &bytes).unwrap_err().to_string();
    assert!(err.contains("truncated or corrupt"), "{err}");
}

#[test]
fn save_is_atomic_and_load_reads_it_back() {
    let dir = scratch("save");
    let path = dir.join("last.safetensors");
    std::fs::write(&path, b"old").unwrap();
    let ts = tensors();
    let refs: Vec<(String, &Tensor)> = ts.iter().map(|(n, t)| (n.clone(), t)).collect();
    save(&path, &meta(), &refs).unwrap();
    assert_eq!(load(&path).unwrap().meta, meta());
    // Nothing but the target is left in the directory.
    let names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names, vec!["last.safetensors".to_string()]);
    let err = load(&dir.join("absent.safetensors")).unwrap_err().to_string();
    assert!(err.contains("absent.safetensors: cannot read"), "{err}");
}

#[test]
fn a_full_disk_leaves_the_previous_file_and_names_the_bytes() {
    let dir = scratch("enospc");
    let path = dir.join("last.safetensors");
    let bytes = encoded();
    write_atomic(&path, &bytes).unwrap();
    // The disk fills halfway through the temp file (ENOSPC from the kernel).
    let err = write_atomic_with(&path, &[1u8; 4096], |f, b| {
        f.write_all(&b[..1000])?;
        Err(std::io::Error::from_raw_os_error(28))
    })
    .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::StorageFull);
    let msg = write_error(&err, 4096);
    assert!(msg.starts_with("cannot write 4096 bytes: No space left on device"), "{msg}");
    assert!(msg.contains("the disk is full: 4096 bytes are needed"), "{msg}");
    // The old checkpoint is untouched and loads; the partial temp file is gone.
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    assert_eq!(load(&path).unwrap().meta, meta());
    let names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names, vec!["last.safetensors".to_string()]);
    // Other errors say only what failed.
    let other = write_error(&std::io::Error::from(std::io::ErrorKind::PermissionDenied), 10);
    assert!(other.starts_with("cannot write 10 bytes: ") && !other.contains("disk is full"), "{other}");
}

#[test]
fn stray_temps_of_dead_processes_are_removed() {
    let dir = scratch("stray");
    // pid 0 is never a user process; our own pid counts as dead (a previous
    // run of ours cannot be writing); "keep" is not a temp file.
    std::fs::write(dir.join(".last.safetensors.tmp-0"), b"x").unwrap();
    std::fs::write(dir.join(format!(".e.safetensors.tmp-{}", std::process::id())), b"x").unwrap();
    std::fs::write(dir.join("keep.safetensors"), b"x").unwrap();
    assert_eq!(remove_stray_temps(&dir).unwrap(), 2);
    let names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names, vec!["keep.safetensors".to_string()]);
    assert_eq!(remove_stray_temps(&dir.join("absent")).unwrap(), 0);
}

#[test]
fn find_last_picks_the_newest_version_with_a_checkpoint() {
    let dir = scratch("last");
    for (v, has) in [(0, true), (2, true), (10, true), (11, false)] {
        let ck = dir.join(format!("version_{v}/checkpoints"));
        std::fs::create_dir_all(&ck).unwrap();
        if has {
            std::fs::write(ck.join("last.safetensors"), b"x").unwrap();
        }
    }
    // Numeric, not lexicographic: version_10 beats version_2.
    assert_eq!(find_last(&dir), Some(dir.join("version_10/checkpoints/last.safetensors")));
    assert_eq!(find_last(&dir.join("absent")), None);
}

/// safetensors writes `__metadata__` from a `HashMap` (random order per
/// map); `encode` sorts it, so equal checkpoints are equal bytes.
#[test]
fn encoding_is_deterministic_with_sorted_metadata() {
    let first = encoded();
    for _ in 0..20 {
        assert_eq!(encoded(), first, "two encodes of one checkpoint differ");
    }
    let len = u64::from_le_bytes(first[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&first[8..8 + len]).unwrap();
    let meta_at = header.find("\"__metadata__\":{").unwrap() + "\"__metadata__\":{".len();
    // Each key's first `"key":` after `__metadata__` (quotes inside the callbacks' JSON value are escaped).
    let body = &header[meta_at..];
    let keys: Vec<&str> = Meta::to_map(&meta()).iter().map(|(k, _)| *k).chain(["crc32"]).collect();
    let mut positions: Vec<(usize, &str)> =
        keys.iter().map(|k| (body.find(&format!("\"{k}\":")).unwrap_or_else(|| panic!("{k}")), *k)).collect();
    positions.sort();
    let in_file: Vec<&str> = positions.iter().map(|p| p.1).collect();
    let mut sorted = in_file.clone();
    sorted.sort();
    assert_eq!(in_file, sorted, "metadata keys in file order are sorted");
    // And the file still decodes to the same checkpoint.
    assert_eq!(decode("x.safetensors", &first).unwrap().meta, meta());
}
