use super::*;
use crate::config::{CheckpointConfig, EarlyStoppingConfig, Mode};
use compiler::ir::generate::Rng as SplitMix;

fn ck_cfg(monitor: Option<&str>, mode: Mode, top_k: Option<usize>, filename: &str) -> CheckpointConfig {
    CheckpointConfig {
        monitor: monitor.map(str::to_string),
        mode,
        save_top_k: top_k,
        save_last: true,
        filename: filename.into(),
        every_n_train_steps: 0,
        every_n_epochs: 1,
    }
}

/// Runs one epoch end with `metrics`; returns (files saved, files removed, stop?).
fn epoch_end(cb: &mut dyn Callback, epoch: usize, metrics: &[(&str, f64)]) -> (Vec<String>, Vec<PathBuf>, bool) {
    let metrics: Vec<(String, f64)> = metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    let dir = Path::new("/ck");
    let mut ctx = Ctx::new(epoch, 10 * (epoch + 1), &metrics, dir);
    cb.on_validation_end(&mut ctx);
    (ctx.save, ctx.remove, ctx.should_stop)
}

#[test]
fn templates_parse_and_format_like_lightning() {
    let t = parse_template("epoch={epoch}-step={step}-val_acc={val_acc:.4}").unwrap();
    assert_eq!(template_metrics(&t), ["val_acc"]);
    let s = format_template(&t, 3, 92, &[("val_acc".into(), 0.912345)]);
    assert_eq!(s, "epoch=3-step=92-val_acc=0.9123");
    assert_eq!(format_template(&parse_template("{x}").unwrap(), 0, 0, &[("x".into(), 0.5)]), "0.5");
    assert_eq!(format_template(&parse_template("m={missing:.2}").unwrap(), 0, 0, &[]), "m=NaN");
    for bad in ["{", "a}", "{}", "{val acc}", "{x:4}", "{x:.99}", "{x:.}"] {
        assert!(parse_template(bad).is_err(), "{bad:?} should be rejected");
    }
}

#[test]
fn model_checkpoint_without_monitor_keeps_all_or_the_newest_k() {
    let mut all = ModelCheckpoint::new(ck_cfg(None, Mode::Min, None, "epoch={epoch}"));
    for e in 0..4 {
        let (save, remove, stop) = epoch_end(&mut all, e, &[]);
        assert_eq!((save, remove.len(), stop), (vec![format!("epoch={e}.safetensors")], 0, false));
    }
    let mut newest = ModelCheckpoint::new(ck_cfg(None, Mode::Min, Some(2), "epoch={epoch}"));
    epoch_end(&mut newest, 0, &[]);
    epoch_end(&mut newest, 1, &[]);
    let (save, remove, _) = epoch_end(&mut newest, 2, &[]);
    assert_eq!(save, ["epoch=2.safetensors"]);
    assert_eq!(remove, [PathBuf::from("/ck/epoch=0.safetensors")]);
    assert_eq!(newest.best_model_path(), Some(Path::new("/ck/epoch=2.safetensors")));
    let mut none = ModelCheckpoint::new(ck_cfg(None, Mode::Min, Some(0), "epoch={epoch}"));
    assert_eq!(epoch_end(&mut none, 0, &[]), (vec![], vec![], false));
}

/// `checkpoint_every_n_epochs = 3`: only epochs 3, 6, ... (counted from 1)
/// are considered, so the best of the others is never saved or ranked.
#[test]
fn model_checkpoint_every_n_epochs_skips_the_epochs_between() {
    let mut cfg = ck_cfg(Some("val_acc"), Mode::Max, Some(1), "epoch={epoch}");
    cfg.every_n_epochs = 3;
    let mut cb = ModelCheckpoint::new(cfg);
    let mut saved = vec![];
    for (epoch, acc) in [0.5, 0.9, 0.6, 0.4, 0.7, 0.3, 0.8].into_iter().enumerate() {
        saved.extend(epoch_end(&mut cb, epoch, &[("val_acc", acc)]).0);
    }
    // Epoch 2 (0.6) is saved, epoch 5 (0.3) is not better; epoch 1's 0.9 was never a candidate.
    assert_eq!(saved, ["epoch=2.safetensors"]);
    assert_eq!(cb.best_model_path(), Some(Path::new("/ck/epoch=2.safetensors")));
}

/// The top-k list against an independent oracle: after each epoch, the kept
/// files are the k best scores seen so far (ties: the earlier epoch), and
/// every file removed was saved before and is no longer kept.
#[test]
fn model_checkpoint_top_k_matches_sorting_all_scores() {
    let seed = 0x70b_c4e;
    let mut rng = SplitMix(seed);
    for (mode, k) in [(Mode::Max, 1), (Mode::Max, 3), (Mode::Min, 2), (Mode::Min, 5)] {
        let mut cb = ModelCheckpoint::new(ck_cfg(Some("val_acc"), mode, Some(k), "e{epoch}"));
        let mut seen: Vec<(f64, usize)> = Vec::new();
        let mut on_disk: Vec<String> = Vec::new();
        for epoch in 0..40 {
            // Few distinct values, so ties happen; sometimes NaN.
            let score = if rng.next_u64().is_multiple_of(10) { f64::NAN } else { (rng.next_u64() % 8) as f64 / 8.0 };
            let (save, remove, _) = epoch_end(&mut cb, epoch, &[("val_acc", score)]);
            on_disk.extend(save);
            for r in &remove {
                let name = r.file_name().unwrap().to_string_lossy().into_owned();
                let at = on_disk
                    .iter()
                    .position(|f| *f == name)
                    .unwrap_or_else(|| panic!("seed {seed:#x}: removed {name} never saved"));
                on_disk.remove(at);
            }
            seen.push((score, epoch));
            let mut ranked: Vec<(f64, usize)> = seen.iter().copied().filter(|(s, _)| !s.is_nan()).collect();
            ranked.sort_by(|a, b| {
                let ord = match mode {
                    Mode::Max => b.0.partial_cmp(&a.0).unwrap(),
                    Mode::Min => a.0.partial_cmp(&b.0).unwrap(),
                };
                ord.then(a.1.cmp(&b.1))
            });
            // NaN scores rank after every number, oldest first.
            ranked.extend(seen.iter().copied().filter(|(s, _)| s.is_nan()));
            let want: Vec<String> = ranked.iter().take(k).map(|(_, e)| format!("e{e}.safetensors")).collect();
            let kept: Vec<String> =
                cb.kept().iter().map(|(_, p)| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
            assert_eq!(kept, want, "seed {seed:#x}: {mode:?} top-{k} after epoch {epoch}");
            let mut disk = on_disk.clone();
            disk.sort();
            let mut want_sorted = want.clone();
            want_sorted.sort();
            assert_eq!(disk, want_sorted, "seed {seed:#x}: files on disk after epoch {epoch}");
        }
    }
}

#[test]
fn early_stopping_counts_patience_with_min_delta() {
    let cfg = EarlyStoppingConfig { monitor: "val_loss".into(), mode: Mode::Min, patience: 2, min_delta: 0.1 };
    let mut es = EarlyStopping::new(cfg.clone());
    // 1.0 (best), 0.95 (not by more than 0.1: wait 1), 0.85 (improves on 1.0: best, wait 0),
    // 0.8 (wait 1), 0.9 (wait 2: stop).
    let expect = [(1.0, 0, false), (0.95, 1, false), (0.85, 0, false), (0.8, 1, false), (0.9, 2, true)];
    for (epoch, (v, wait, stop)) in expect.into_iter().enumerate() {
        let (save, _, should_stop) = epoch_end(&mut es, epoch, &[("val_loss", v)]);
        assert!(save.is_empty());
        assert_eq!((es.wait_count(), should_stop), (wait, stop), "epoch {epoch}: val_loss {v}");
    }
    assert_eq!(es.best_score(), Some(0.85));
    // Max mode, and a non-finite value stops at once.
    let mut es = EarlyStopping::new(EarlyStoppingConfig { mode: Mode::Max, patience: 5, ..cfg });
    assert!(!epoch_end(&mut es, 0, &[("val_loss", 0.5)]).2);
    assert!(epoch_end(&mut es, 1, &[("val_loss", f64::NAN)]).2);
}

#[test]
fn states_round_trip_and_restore_decisions() {
    let es_cfg = EarlyStoppingConfig { monitor: "val_acc".into(), mode: Mode::Max, patience: 3, min_delta: 0.0 };
    let mut a: Vec<Box<dyn Callback>> = vec![
        Box::new(EarlyStopping::new(es_cfg.clone())),
        Box::new(ModelCheckpoint::new(ck_cfg(Some("val_acc"), Mode::Max, Some(2), "e{epoch}"))),
    ];
    let scores = [0.5, 0.7, 0.6, 0.1 + 0.2, 0.65, 0.69, 0.71, 0.2];
    let run = |cbs: &mut Vec<Box<dyn Callback>>, from: usize, to: usize| -> Vec<(Vec<String>, Vec<PathBuf>, bool)> {
        (from..to)
            .map(|e| {
                let metrics = [("val_acc".to_string(), scores[e])];
                let mut ctx = Ctx::new(e, e, &metrics, Path::new("/run/version_0/checkpoints"));
                for c in cbs.iter_mut() {
                    if e == from {
                        c.on_train_start(&mut ctx);
                    }
                    c.on_validation_end(&mut ctx);
                }
                (ctx.save, ctx.remove, ctx.should_stop)
            })
            .collect()
    };
    let full = run(&mut a, 0, scores.len());
    let mut b: Vec<Box<dyn Callback>> = vec![
        Box::new(EarlyStopping::new(es_cfg.clone())),
        Box::new(ModelCheckpoint::new(ck_cfg(Some("val_acc"), Mode::Max, Some(2), "e{epoch}"))),
    ];
    let first = run(&mut b, 0, 4);
    let saved = states_json(&b);
    let mut c: Vec<Box<dyn Callback>> = vec![
        Box::new(EarlyStopping::new(es_cfg.clone())),
        Box::new(ModelCheckpoint::new(ck_cfg(Some("val_acc"), Mode::Max, Some(2), "e{epoch}"))),
    ];
    assert!(load_states(&mut c, &saved).is_empty());
    assert_eq!(states_json(&c), saved, "state_dict(load_state_dict(s)) == s");
    let rest = run(&mut c, 4, scores.len());
    assert_eq!(full, [first, rest].concat(), "the restored callbacks decide like the uninterrupted ones");
    assert_eq!(states_json(&a), states_json(&c));
    assert_eq!(
        ModelCheckpoint::best_path_in(&states_json(&a), Path::new("/moved")),
        Some(PathBuf::from("/moved/version_0/checkpoints/e6.safetensors")),
        "0.71 at epoch 6 is the best, recorded relative to the run's directory"
    );
    // Resumed into the next version directory, the restored files are still
    // version_0's, and they are what a better score pushes out.
    let mut f = ModelCheckpoint::new(ck_cfg(Some("val_acc"), Mode::Max, Some(2), "e{epoch}"));
    f.load_state_dict(&serde_json::from_str::<Value>(&saved).unwrap()["ModelCheckpoint"]).unwrap();
    let metrics = [("val_acc".to_string(), 0.9)];
    let mut ctx = Ctx::new(4, 4, &metrics, Path::new("/run/version_1/checkpoints"));
    f.on_train_start(&mut ctx);
    f.on_validation_end(&mut ctx);
    assert_eq!(ctx.save, ["e4.safetensors"]);
    assert_eq!(ctx.remove, [PathBuf::from("/run/version_0/checkpoints/e2.safetensors")], "{:?}", f.kept());
    // A kept path that leaves the run's directory is refused, and an
    // absolute one outside it (an older file's) is dropped, not deleted later.
    let state = |path: &str| json!({"monitor": "val_acc", "mode": "max", "kept": [[f64_hex(0.5), path]], "seen": []});
    let mut g = ModelCheckpoint::new(ck_cfg(Some("val_acc"), Mode::Max, Some(1), "e{epoch}"));
    let err = g.load_state_dict(&state("../../x.safetensors")).unwrap_err();
    assert!(err.contains("leaves the run's directory"), "{err}");
    let err = g.load_state_dict(&state("version_0/metrics.csv")).unwrap_err();
    assert!(err.contains("is not a .safetensors file"), "{err}");
    g.load_state_dict(&state("/etc/x.safetensors")).unwrap();
    let mut ctx = Ctx::new(0, 0, &metrics, Path::new("/run/version_1/checkpoints"));
    g.on_train_start(&mut ctx);
    assert!(g.kept().is_empty() && ctx.messages[0].contains("/etc/x.safetensors outside /run"), "{:?}", ctx.messages);
    g.on_validation_end(&mut ctx);
    assert!(ctx.remove.is_empty(), "{:?}", ctx.remove);
    // A state for another monitor does not fit: a warning, and a fresh start.
    let other = ck_cfg(Some("val_loss"), Mode::Min, Some(2), "e{epoch}");
    let mut d: Vec<Box<dyn Callback>> = vec![Box::new(ModelCheckpoint::new(other))];
    let w = load_states(&mut d, &saved);
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(w[0].contains("ranked checkpoints by val_acc (max), this run by val_loss (min)"), "{w:?}");
    // EarlyStopping's saved state has no callback in this run: said, not silently dropped.
    assert!(w[1].contains(&format!("the state of callback `{}` is not used", b[0].name())), "{w:?}");
    // A callback the checkpoint has no state for starts afresh, with a warning.
    let mut e: Vec<Box<dyn Callback>> = vec![
        Box::new(EarlyStopping::new(es_cfg.clone())),
        Box::new(ModelCheckpoint::new(ck_cfg(Some("val_acc"), Mode::Max, Some(2), "e{epoch}"))),
    ];
    let only_es = states_json(&b[..1]);
    let w = load_states(&mut e, &only_es);
    assert_eq!(w, vec![format!("no state saved for callback `{}`; it starts afresh", e[1].name())]);
    // Checkpoints written before callbacks existed have no state.
    assert!(load_states(&mut d, "").is_empty());
}

/// Step checkpoints (`every_n_train_steps`) rank by the step's values, and
/// by the last epoch end's for a monitored name the step lacks (val_acc):
/// NaN before the first epoch end (kept, ranked last), the epoch's value
/// after it; a callback restored from the state between steps decides the
/// same (the seen metrics are part of the state).
#[test]
fn step_checkpoints_rank_by_the_last_epoch_ends_metrics_and_restore() {
    let mut cfg = ck_cfg(Some("val_acc"), Mode::Max, Some(2), "s{step}");
    cfg.every_n_train_steps = 2;
    cfg.every_n_epochs = 0;
    let step = |cb: &mut ModelCheckpoint, s: usize| -> (Vec<String>, Vec<PathBuf>) {
        let metrics = [("train_loss".to_string(), 1.0 / s as f64)];
        let mut ctx = Ctx::new(0, s, &metrics, Path::new("/ck"));
        cb.on_train_batch_end(&mut ctx);
        (ctx.save, ctx.remove)
    };
    let mut a = ModelCheckpoint::new(cfg.clone());
    assert_eq!(step(&mut a, 1), (vec![], vec![]), "not a multiple of 2");
    assert_eq!(step(&mut a, 2), (vec!["s2.safetensors".to_string()], vec![]), "NaN, but room");
    let (saved, _, _) = epoch_end(&mut a, 0, &[("val_acc", 0.5)]);
    assert!(saved.is_empty(), "every_n_epochs = 0: no epoch checkpoint");
    let state = a.state_dict();
    let mut b = ModelCheckpoint::new(cfg.clone());
    b.load_state_dict(&state).unwrap();
    assert_eq!(b.state_dict(), state, "state_dict(load_state_dict(s)) == s");
    for cb in [&mut a, &mut b] {
        assert_eq!(step(cb, 4), (vec!["s4.safetensors".to_string()], vec![]));
        // A better epoch end pushes out the NaN-scored step 2 at step 6.
        let _ = epoch_end(cb, 1, &[("val_acc", 0.7)]);
        assert_eq!(step(cb, 6), (vec!["s6.safetensors".to_string()], vec![PathBuf::from("/ck/s2.safetensors")]));
        assert_eq!(
            cb.kept().iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            vec![0.7, 0.5],
            "step 6 (0.7) before step 4 (0.5)"
        );
    }
}
