//! `logger = "csv,tensorboard"`: the TensorBoard event file holds every
//! value of metrics.csv, read back by a reader written here (TFRecord
//! framing with a bitwise CRC-32C, protobuf wire format) and, where Python
//! has the `tensorboard` package, by TensorBoard's own `EventAccumulator`.

use crate::checkpoints::{digits, fit, rows};
use crate::examples::tempdir;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// (tag, step) -> the f32 values logged there, in file order.
type Scalars = BTreeMap<(String, i64), Vec<f32>>;

fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0x82f6_3b78 } else { crc >> 1 };
        }
    }
    !crc
}

fn masked(bytes: &[u8]) -> u32 {
    let c = crc32c(bytes);
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

fn varint(b: &[u8], at: &mut usize) -> u64 {
    let mut v = 0;
    for shift in (0..64).step_by(7) {
        let byte = b[*at];
        *at += 1;
        v |= ((byte & 0x7f) as u64) << shift;
        if byte < 0x80 {
            break;
        }
    }
    v
}

/// Protobuf fields (number, wire type, payload bytes or varint value).
fn fields(b: &[u8]) -> Vec<(u64, u64, Vec<u8>, u64)> {
    let mut at = 0;
    let mut out = Vec::new();
    while at < b.len() {
        let key = varint(b, &mut at);
        let (len, value) = match key & 7 {
            0 => (0, varint(b, &mut at)),
            1 => (8, 0),
            2 => (varint(b, &mut at) as usize, 0),
            5 => (4, 0),
            w => panic!("wire type {w}"),
        };
        out.push((key >> 3, key & 7, b[at..at + len].to_vec(), value));
        at += len;
    }
    out
}

/// Reads an event file: every record's CRCs, the version record, the scalars.
fn read_event_file(path: &Path) -> Scalars {
    let bytes = std::fs::read(path).unwrap();
    let mut at = 0;
    let mut res = Scalars::new();
    let mut n = 0;
    while at < bytes.len() {
        let len = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
        let crc = |from: usize, to: usize| {
            u32::from_le_bytes(bytes[to..to + 4].try_into().unwrap()) == masked(&bytes[from..to])
        };
        assert!(crc(at, at + 8), "length CRC of record {n}");
        assert!(crc(at + 12, at + 12 + len), "data CRC of record {n}");
        let event = fields(&bytes[at + 12..at + 12 + len]);
        at += 16 + len;
        let step = event.iter().find(|f| f.0 == 2).map_or(0, |f| f.3 as i64);
        if n == 0 {
            let version = event.iter().find(|f| f.0 == 3).expect("the first record is the file version");
            assert_eq!(version.2, b"brain.Event:2");
        }
        for summary in event.iter().filter(|f| f.0 == 5) {
            for value in fields(&summary.2).iter().filter(|f| f.0 == 1) {
                let v = fields(&value.2);
                let tag = String::from_utf8(v.iter().find(|f| f.0 == 1).unwrap().2.clone()).unwrap();
                let x = f32::from_le_bytes(v.iter().find(|f| f.0 == 2).unwrap().2[..4].try_into().unwrap());
                res.entry((tag, step)).or_default().push(x);
            }
        }
        n += 1;
    }
    res
}

/// What metrics.csv says the event file must hold: every cell at its row's
/// step, as f32, plus each row's epoch.
fn expected_from_csv(dir: &Path) -> Scalars {
    let r = rows(dir);
    let header: Vec<&str> = r[0].split(',').collect();
    let mut res = Scalars::new();
    for line in &r[1..] {
        let cells: Vec<&str> = line.split(',').collect();
        let step: i64 = cells[1].parse().unwrap();
        for (name, cell) in header.iter().zip(&cells).skip(2).filter(|(_, c)| !c.is_empty()) {
            res.entry((name.to_string(), step)).or_default().push(cell.parse::<f64>().unwrap() as f32);
        }
        res.entry(("epoch".to_string(), step)).or_default().push(cells[0].parse::<f64>().unwrap() as f32);
    }
    res
}

/// The same values read by TensorBoard's EventAccumulator, or `None` (with
/// the reason printed) where Python lacks the `tensorboard` package. The
/// interpreter is `$JLC_TB_PYTHON` or `python3`.
fn read_with_tensorboard(dir: &Path) -> Option<Scalars> {
    const SCRIPT: &str = r#"
import sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
acc.Reload()
for tag in acc.Tags()["scalars"]:
    for e in acc.Scalars(tag):
        print(tag, e.step, e.value.hex() if hasattr(e.value, "hex") else float(e.value).hex())
"#;
    let python = std::env::var("JLC_TB_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = match Command::new(&python).arg("-c").arg(SCRIPT).arg(dir).output() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("skipped the TensorBoard check: cannot run {python}: {e}");
            return None;
        }
    };
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        eprintln!(
            "skipped the TensorBoard check: {python} cannot read event files ({}); set JLC_TB_PYTHON to a Python with `tensorboard`",
            err.lines().last().unwrap_or("")
        );
        return None;
    }
    let mut res = Scalars::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        let value = parse_hex_float(parts[2]) as f32;
        res.entry((parts[0].to_string(), parts[1].parse().unwrap())).or_default().push(value);
    }
    Some(res)
}

/// Python's `float.hex()` form: `[-]0x1.<hex>p<exp>`, `inf`, `nan`.
fn parse_hex_float(s: &str) -> f64 {
    match s {
        "inf" => return f64::INFINITY,
        "-inf" => return f64::NEG_INFINITY,
        "nan" => return f64::NAN,
        _ => {}
    }
    let (sign, rest) = s.strip_prefix('-').map_or((1.0, s), |r| (-1.0, r));
    let rest = rest.strip_prefix("0x").unwrap();
    let (mantissa, exp) = rest.split_once('p').unwrap();
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut v = u64::from_str_radix(int, 16).unwrap() as f64;
    for (i, c) in frac.chars().enumerate() {
        v += c.to_digit(16).unwrap() as f64 / 16f64.powi(i as i32 + 1);
    }
    sign * v * 2f64.powi(exp.parse().unwrap())
}

fn same(a: &Scalars, b: &Scalars) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|((ka, va), (kb, vb))| {
            ka == kb
                && va.len() == vb.len()
                && va.iter().zip(vb).all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
        })
}

#[test]
fn tensorboard_event_files_hold_every_logged_value() {
    let (path, text) = digits();
    let logs = tempdir("tensorboard");
    let settings: Vec<String> = [
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=6",
        "trainer.log_every_n_steps=2",
        "trainer.logger=csv,tensorboard",
        "trainer.log_grad_norm=true",
    ]
    .map(String::from)
    .into();
    let s = fit(&path, &text, &logs, &settings, None);
    let files: Vec<_> = std::fs::read_dir(&s.log_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("events.out.tfevents."))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let ours = read_event_file(&files[0]);
    let want = expected_from_csv(&s.log_dir);
    assert!(want.keys().any(|(t, _)| t == "val_acc") && want.keys().any(|(t, _)| t == "grad_norm_step"));
    assert!(same(&ours, &want), "event file:\n{ours:?}\nmetrics.csv:\n{want:?}");
    let hp = std::fs::read_to_string(s.log_dir.join("hparams.yaml")).unwrap();
    assert!(hp.contains("logger: \"csv,tensorboard\""), "{hp}");
    if let Some(theirs) = read_with_tensorboard(&s.log_dir) {
        assert!(same(&theirs, &want), "EventAccumulator:\n{theirs:?}\nmetrics.csv:\n{want:?}");
        eprintln!("TensorBoard's EventAccumulator read {} (tag, step) pairs, all equal", theirs.len());
    }

    // TensorBoard alone: no metrics.csv.
    let mut only = settings.clone();
    only[3] = "trainer.logger=tensorboard".into();
    only.push("trainer.max_epochs=1".into());
    let s = fit(&path, &text, &logs, &only, None);
    assert!(!s.log_dir.join("metrics.csv").exists());
    assert!(s.log_dir.join("hparams.yaml").exists());
}

/// `jlc run --print-config` prints what a run with the same settings saves
/// as `hparams.yaml` (defaults and overrides resolved), and trains nothing.
#[test]
fn print_config_is_the_saved_hparams() {
    let (path, text) = digits();
    let sets = ["trainer.max_epochs=1", "trainer.max_steps=1", "trainer.val_check_interval=0.5", "data.batch_size=32"];
    let logs = tempdir("print-config");
    let mut args = vec!["run".to_string(), path.display().to_string(), "--print-config".into()];
    for s in sets.iter().map(|s| s.to_string()).chain([format!("trainer.default_root_dir={}", logs.display())]) {
        args.extend(["--set".to_string(), s]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = crate::evaluate::jlc_out(&args);
    assert_eq!(code, 0, "{err}");
    assert!(!logs.join("lightning_logs").exists(), "--print-config writes no run directory");
    let s = fit(&path, &text, &logs, &sets.map(String::from), None);
    let saved = std::fs::read_to_string(s.log_dir.join("hparams.yaml")).unwrap();
    assert_eq!(out, saved);
    for line in ["  max_epochs: 1", "  val_check_interval: 0.5", "  batch_size: 32", "  num_sanity_val_steps: 2"] {
        assert!(out.lines().any(|l| l == line), "{line} in\n{out}");
    }
}

/// `log_lr = true` (Lightning's LearningRateMonitor) logs the learning rate
/// of every optimizer step as `lr_step`: here optax's
/// warmup_cosine_decay_schedule(0, 1e-2, 5, 30) evaluated at the step,
/// checked against the formula written out in f64 (to f32 rounding), with
/// and without gradient accumulation (one value per optimizer step).
#[test]
fn log_lr_logs_the_scheduled_learning_rate_of_each_step() {
    let (path, text) = digits();
    let text = text
        .replace("use optim.adam", "use optim.{adam, warmup_cosine_decay_schedule}")
        .replace("adam(lr = 1e-2)", "adam(lr = warmup_cosine_decay_schedule(0.0, 1e-2, 5, 30))");
    assert!(text.contains("warmup_cosine_decay_schedule(0.0"), "the digits example changed: update this test");
    // optax: linear warm-up over `count < 5`, then cosine decay over 25 counts to 0.
    let want = |count: usize| -> f64 {
        let count = count as f64;
        if count < 5.0 {
            1e-2 * count / 5.0
        } else {
            1e-2 * 0.5 * (1.0 + (std::f64::consts::PI * (count - 5.0).min(25.0) / 25.0).cos())
        }
    };
    for accumulate in [1, 2] {
        let logs = tempdir(&format!("log-lr-{accumulate}"));
        let settings: Vec<String> = vec![
            "trainer.max_epochs=2".into(),
            "trainer.limit_train_batches=12".into(),
            "trainer.log_every_n_steps=1".into(),
            "trainer.log_lr=true".into(),
            format!("trainer.accumulate_grad_batches={accumulate}"),
        ];
        let s = fit(&path, &text, &logs, &settings, None);
        let rows = rows(&s.log_dir);
        let header: Vec<&str> = rows[0].split(',').collect();
        let col =
            |name: &str| header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("no {name} in {header:?}"));
        let (step, lr) = (col("step"), col("lr_step"));
        let mut seen = 0;
        for row in &rows[1..] {
            let cells: Vec<&str> = row.split(',').collect();
            if cells[lr].is_empty() {
                continue;
            }
            // Row `step` k logs optimizer step k + 1, the schedule's count k.
            let k: usize = cells[step].parse().unwrap();
            let got: f64 = cells[lr].parse().unwrap();
            let w = want(k);
            assert!((got - w).abs() <= 1e-6 * w.abs() + 1e-9, "accumulate {accumulate}, step {k}: lr {got} vs {w}");
            seen += 1;
        }
        assert_eq!(seen, 2 * 12 / accumulate, "one lr per optimizer step:\n{}", rows.join("\n"));
    }
}

/// `hparams.yaml` says how to re-run: the model setting with its
/// arguments, and values spelled as `--set` takes them
/// (`"min"`, `csv`), each trainer line a setting `--set` accepts.
#[test]
fn hparams_hold_the_model_arguments_and_settings_as_written() {
    let (path, _) = digits();
    let logs = tempdir("hparams-spelling");
    let root_dir = format!("trainer.default_root_dir={}", logs.display());
    let args =
        ["run", path.to_str().unwrap(), "--print-config", "--set", "trainer.model=Mlp(hidden = 8)", "--set", &root_dir];
    let (code, out, err) = crate::evaluate::jlc_out(&args);
    assert_eq!(code, 0, "{err}");
    for line in ["model: Mlp(hidden = 8)", "  source: csv", "  checkpoint_mode: \"min\""] {
        assert!(out.lines().any(|l| l == line), "{line:?} in\n{out}");
    }
    // Every trainer line is a setting: --set takes it back unchanged.
    let trainer_lines: Vec<&str> = out.lines().skip_while(|l| *l != "trainer:").skip(1).collect();
    assert!(trainer_lines.len() > 30, "{out}");
    let mut again = vec!["run".to_string(), path.display().to_string(), "--print-config".into()];
    for line in &trainer_lines {
        let (key, value) = line.trim().split_once(": ").unwrap();
        again.extend(["--set".to_string(), format!("trainer.{key}={value}")]);
    }
    again.extend(["--set".to_string(), "trainer.model=Mlp(hidden = 8)".into()]);
    let again: Vec<&str> = again.iter().map(String::as_str).collect();
    let (code, out_again, err) = crate::evaluate::jlc_out(&again);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out_again, out);
}
