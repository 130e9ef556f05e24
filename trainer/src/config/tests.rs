//! The `data` and `trainer` sections: defaults, every new setting, `--set`
//! overrides, and the diagnostic for each bad value.

use super::*;
use std::time::Duration;

/// The sections of a source file (which must parse and evaluate).
fn sections(src: &str) -> (Option<Section>, Option<Section>) {
    let (prog, _) = compiler::lower::load("t.jl", src);
    let s = compiler::lower::training_sections(&prog).unwrap_or_else(|d| panic!("{d:?}"));
    (s.data, s.trainer)
}

fn trainer(src: &str) -> Result<TrainerConfig, Vec<Diagnostic>> {
    trainer_config(sections(src).1.as_ref())
}

fn errors(src: &str) -> Vec<String> {
    trainer(src).expect_err("expected errors").iter().map(|d| d.message.clone()).collect()
}

#[test]
fn defaults_keep_the_newest_epoch_and_stop_on_a_non_finite_loss() {
    let c = trainer("trainer { max_epochs = 2 }").unwrap();
    assert_eq!(c.checkpoint.monitor, None);
    assert_eq!((c.checkpoint.save_top_k, c.checkpoint.save_last), (Some(1), true));
    let all = trainer("trainer { save_top_k = -1 }").unwrap();
    assert_eq!(all.checkpoint.save_top_k, None, "-1 keeps every one");
    assert_eq!(c.checkpoint.filename, "epoch={epoch}-step={step}");
    assert_eq!(c.early_stopping, None);
    assert!(c.stop_on_nonfinite && c.test_after_fit && c.nonfinite_metrics.is_empty());
    assert!(c.flush_denormals);
    assert!(!trainer("trainer { flush_denormals = false }").unwrap().flush_denormals);
    assert_eq!(
        (c.limit_val_batches, c.check_val_every_n_epoch, c.max_time, c.fast_dev_run),
        (super::BatchLimit::All, 1, None, 0)
    );
    assert_eq!((c.val_check_interval, c.num_sanity_val_steps), (ValCheckInterval::Fraction(1.0), Some(2)));
    let c = trainer("trainer { val_check_interval = 5; num_sanity_val_steps = -1 }").unwrap();
    assert_eq!((c.val_check_interval, c.num_sanity_val_steps), (ValCheckInterval::Batches(5), None));
    let c = trainer("trainer { val_check_interval = 0.25; num_sanity_val_steps = 0 }").unwrap();
    assert_eq!((c.val_check_interval, c.num_sanity_val_steps), (ValCheckInterval::Fraction(0.25), Some(0)));
    // Lightning: int(23 * 0.25) = 5 batches; a tiny fraction still validates every batch.
    assert_eq!((c.val_check_interval.every(23), ValCheckInterval::Fraction(0.01).every(23)), (5, 1));
    assert_eq!((c.loggers, c.grad.clone()), (Loggers { csv: true, tensorboard: false }, GradSettings::default()));
    let c = trainer(
        r#"trainer { logger = "tensorboard, csv"; gradient_clip_val = 0.5; accumulate_grad_batches = 2; log_grad_norm = true }"#,
    )
    .unwrap();
    assert_eq!(c.loggers, Loggers { csv: true, tensorboard: true });
    assert_eq!((c.grad.clip.unwrap().val, c.grad.accumulate, c.grad.log_grad_norm), (0.5, 2, true));
    assert!(!trainer(r#"trainer { logger = "tensorboard" }"#).unwrap().loggers.csv);
    // With a monitor, Lightning keeps the best one unless told otherwise.
    let c = trainer(r#"trainer { checkpoint_monitor = "val_acc" }"#).unwrap();
    assert_eq!(c.checkpoint.save_top_k, Some(1));
    let c = trainer(r#"trainer { checkpoint_monitor = "val_acc"; save_top_k = -1 }"#).unwrap();
    assert_eq!(c.checkpoint.save_top_k, None);
}

#[test]
fn callback_settings_and_overrides() {
    let src = r#"trainer {
    checkpoint_monitor = "val_acc"
    checkpoint_mode = "max"
    save_top_k = 3
    save_last = false
    checkpoint_filename = "epoch={epoch}-val_acc={val_acc:.4}"
    checkpoint_every_n_train_steps = 100
    checkpoint_every_n_epochs = 2
    early_stopping_monitor = "val_loss"
    early_stopping_patience = 5
    early_stopping_min_delta = 0.001
    nonfinite_metrics = "val_loss, train_acc"
    max_time = "00:01:30:05"
    fast_dev_run = true
}"#;
    let c = trainer(src).unwrap();
    assert_eq!(
        c.checkpoint,
        CheckpointConfig {
            monitor: Some("val_acc".into()),
            mode: Mode::Max,
            save_top_k: Some(3),
            save_last: false,
            filename: "epoch={epoch}-val_acc={val_acc:.4}".into(),
            every_n_train_steps: 100,
            every_n_epochs: 2,
        }
    );
    assert_eq!(
        c.early_stopping,
        Some(EarlyStoppingConfig { monitor: "val_loss".into(), mode: Mode::Min, patience: 5, min_delta: 0.001 })
    );
    assert_eq!(c.nonfinite_metrics, ["val_loss", "train_acc"]);
    assert_eq!(c.max_time, Some(Duration::from_secs(3600 + 30 * 60 + 5)));
    assert_eq!(c.fast_dev_run, 1);

    // `--set` values are parsed as int, float, bool, then string.
    let (mut data, mut tr) = sections(src);
    for spec in [
        "trainer.save_top_k=-1",
        "trainer.checkpoint_mode=min",
        "trainer.max_time=2.5",
        "trainer.early_stopping_patience=0",
        "trainer.fast_dev_run=4",
    ] {
        apply_override(&mut data, &mut tr, spec).unwrap();
    }
    let c = trainer_config(tr.as_ref()).unwrap();
    assert_eq!((c.checkpoint.save_top_k, c.checkpoint.mode), (None, Mode::Min));
    assert_eq!(c.max_time, Some(Duration::from_secs_f64(2.5)));
    assert_eq!((c.early_stopping.unwrap().patience, c.fast_dev_run), (0, 4));

    // Values are read as the language reads them in a section; a bare word is a string.
    for (spec, want) in [
        ("trainer.model=Net(width = 64, depth = 2)", "Call"),
        ("trainer.name=run1", "Str(\"run1\")"),
        ("trainer.name=\"with space\"", "Str(\"with space\")"),
        ("trainer.seed=-3", "Int(-3)"),
        ("trainer.max_time=00:01:00:00", "Str(\"00:01:00:00\")"),
    ] {
        apply_override(&mut data, &mut tr, spec).unwrap();
        let key = spec.split_once('=').unwrap().0.split_once('.').unwrap().1;
        let got = &tr.as_ref().unwrap().entries.iter().find(|e| e.key == key).unwrap().value;
        assert!(format!("{got:?}").starts_with(want), "{spec}: {got:?}");
    }
}

/// `--set data.path=...` replaces the source's file and `--set
/// data.source=...` the source; a relative path is from the current
/// directory (typed on the command line), an absolute one stays.
#[test]
fn data_path_and_source_overrides() {
    let src = "data = csv(\"in-the-file.csv\", scale = 0.5) {\n    batch_size = 8\n}\n";
    let cwd = std::env::current_dir().unwrap();
    let source = |data: &Option<Section>| format!("{:?}", data.as_ref().unwrap().source.as_ref().unwrap().0);
    let (mut data, mut tr) = sections(src);
    apply_override(&mut data, &mut tr, "data.path=other.csv").unwrap();
    let want = cwd.join("other.csv").display().to_string();
    assert!(source(&data).contains(&format!("{want:?}")) && source(&data).contains("Float(0.5)"), "{}", source(&data));
    apply_override(&mut data, &mut tr, "data.source=npz(\"/abs/d.npz\", x = \"a\")").unwrap();
    assert!(source(&data).starts_with("Call { name: \"npz\", args: [(None, Str(\"/abs/d.npz\"))"), "{}", source(&data));
    let err = apply_override(&mut data, &mut tr, "data.source=3").unwrap_err();
    assert!(err.contains("expected a data source"), "{err}");
    let (mut data, mut tr) = sections("data = synthetic(\"moons\") {\n    batch_size = 8\n}\n");
    let err = apply_override(&mut data, &mut tr, "data.path=x.csv").unwrap_err();
    assert!(err.contains("has no path"), "{err}");
    let (mut data, mut tr) = (None, None);
    let err = apply_override(&mut data, &mut tr, "data.path=x.csv").unwrap_err();
    assert!(err.contains("no `data` section"), "{err}");
}

#[test]
fn bad_settings_are_diagnostics() {
    let cases: &[(&str, &str)] = &[
        ("early_stopping_patience = 3", "`early_stopping_patience` needs `early_stopping_monitor`"),
        (r#"checkpoint_mode = "up""#, "`checkpoint_mode` must be \"min\" or \"max\""),
        ("save_top_k = -2", "`save_top_k` must be -1 (keep all) or a non-negative integer"),
        (r#"checkpoint_filename = "epoch={epoch""#, "`checkpoint_filename`: unclosed `{` at byte 6"),
        (r#"checkpoint_filename = "a/{epoch}""#, "`checkpoint_filename` must be a file name, not a path"),
        (r#"max_time = "1:2:3:4:5""#, "`max_time` must be a positive number of seconds or \"DD:HH:MM:SS\""),
        ("max_time = 0", "`max_time` must be a positive number of seconds"),
        ("check_val_every_n_epoch = 0", "`check_val_every_n_epoch` must be a positive integer"),
        ("val_check_interval = 1.5", "`val_check_interval` must be a positive integer (every n training batches)"),
        ("val_check_interval = 0", "`val_check_interval` must be a positive integer"),
        ("num_sanity_val_steps = -2", "`num_sanity_val_steps` must be -1 (all) or a non-negative integer"),
        ("early_stoping_monitor = 1", "unknown trainer setting `early_stoping_monitor`"),
    ];
    let cases = [
        cases,
        &[
            (r#"logger = "csv,wandb""#, "unknown logger `wandb`"),
            (r#"logger = """#, "`logger` must be \"csv\", \"tensorboard\" or \"csv,tensorboard\""),
            ("logger = 1", "`logger` must be a string"),
            ("accumulate_grad_batches = 0", "`accumulate_grad_batches` must be a positive integer"),
            ("gradient_clip_val = \"1\"", "`gradient_clip_val` must be a non-negative number"),
        ],
    ]
    .concat();
    for (setting, want) in &cases {
        let errs = errors(&format!("trainer {{ {setting} }}"));
        assert!(errs.iter().any(|e| e.starts_with(want)), "{setting}: {errs:?}");
    }
    // `test` belongs to the CSV source.
    let (data, _) = sections(r#"data = idx("d") { test = "t.csv" }"#);
    let errs = data_config(&data.unwrap()).unwrap_err();
    assert!(errs[0].message.contains("`test` names the test split's file"), "{errs:?}");
    let (data, _) = sections(r#"data = csv("d.csv") { test = "t.csv" }"#);
    assert_eq!(data_config(&data.unwrap()).unwrap().test.as_deref(), Some("t.csv"));
}

#[test]
fn npz_and_npy_sources_with_their_test_splits() {
    let data = |src: &str| data_config(&sections(src).0.unwrap());
    let c = data(r#"data = npz("d.npz") { test = "t.npz" }"#).unwrap();
    assert_eq!((c.source, c.path.as_str(), c.x_key.as_str(), c.y_key.as_str()), (SourceKind::Npz, "d.npz", "x", "y"));
    assert_eq!((c.test.as_deref(), c.test_keys), (Some("t.npz"), None));
    let c = data(r#"data = npz("d.npz", x = "inputs", y = "targets", scale = 0.5) { test = npz("d.npz", x = "xt", y = "yt", scale = 0.5) }"#)
        .unwrap();
    assert_eq!((c.x_key.as_str(), c.y_key.as_str(), c.scale), ("inputs", "targets", 0.5));
    assert_eq!((c.test.as_deref(), c.test_keys), (Some("d.npz"), Some(("xt".into(), "yt".into()))));
    let c = data(r#"data = npy("x.npy", y = "y.npy") { test = npy("xt.npy", y = "yt.npy") }"#).unwrap();
    assert_eq!((c.source, c.path.as_str(), c.y_key.as_str()), (SourceKind::Npy, "x.npy", "y.npy"));
    assert_eq!((c.test.as_deref(), c.test_keys), (Some("xt.npy"), Some((String::new(), "yt.npy".into()))));

    let msgs = |src: &str| data(src).unwrap_err().iter().map(|d| d.message.clone()).collect::<Vec<_>>();
    assert_eq!(
        msgs(r#"data = npy("x.npy")"#),
        ["npy(...) needs the targets file: `y = \"y.npy\"`, or `y = false` for none"]
    );
    assert_eq!(
        msgs(r#"data = npz("d.npz", labels = "y")"#),
        ["npz takes npz(\"file.npz\", x = \"x\", y = \"y\" (or false: no targets), scale = 1.0)"]
    );
    assert_eq!(
        msgs(r#"data = csv("d.csv", y = "y")"#),
        ["csv takes csv(\"file.csv\", y = \"class\" | \"float\" | false (no targets), scale = 1.0)"]
    );
    assert_eq!(
        msgs(r#"data = npy("x.npy", y = "y.npy") { test = "t.npy" }"#),
        ["`test` must be npy(\"x_test.npy\", y = \"y_test.npy\")"]
    );
    assert_eq!(
        msgs(r#"data = npz("d.npz") { test = npy("x.npy", y = "y.npy") }"#),
        ["`test` must be a source like the training data's, npz(\"file.npz\", x = \"x\", y = \"y\" (or false: no targets), scale = 1.0) (with the same scale)"]
    );
    assert_eq!(msgs(r#"data = parquet("d")"#), ["unknown data source"]);
}

/// Lightning's `every_n_epochs` default: 1, or 0 (no epoch checkpoints)
/// when checkpoints come every N train steps; an explicit value wins, and
/// 0 is allowed.
#[test]
fn every_n_epochs_defaults_to_zero_with_every_n_train_steps() {
    let every = |body: &str| trainer(&format!("trainer {{\n{body}\n}}")).unwrap().checkpoint.every_n_epochs;
    assert_eq!(every("max_epochs = 1"), 1);
    assert_eq!(every("checkpoint_every_n_train_steps = 10"), 0);
    assert_eq!(every("checkpoint_every_n_train_steps = 10\ncheckpoint_every_n_epochs = 3"), 3);
    assert_eq!(every("checkpoint_every_n_epochs = 0"), 0);
}

/// `--set` mistakes say where the key belongs: a key of the other section,
/// a key without its section.
#[test]
fn set_keys_in_the_wrong_section_name_the_right_one() {
    let (mut data, mut trainer) = (None, None);
    let err = apply_override(&mut data, &mut trainer, "max_epochs=2").unwrap_err();
    assert!(err.contains("did you mean `--set trainer.max_epochs=2`?"), "{err}");
    let err = apply_override(&mut data, &mut trainer, "nonsense=2").unwrap_err();
    assert!(!err.contains("did you mean"), "{err}");
    apply_override(&mut data, &mut trainer, "trainer.batch_size=32").unwrap();
    let diags = trainer_config(trainer.as_ref()).unwrap_err();
    let help = diags[0].help.clone().unwrap_or_default();
    assert!(help.contains("`batch_size` is a data setting: --set data.batch_size=..."), "{help}");
}
