//! Training on data from Rust code (`trainer::DataModule`): the model file
//! has no `data` section; the module's splits are checked against
//! `training_step`'s declared types like a file's, and its errors name it.

use crate::examples::tempdir;
use std::path::Path;
use trainer::{Column, DataModule, DataSplits, Dataset, Values};

const MODEL: &str = r#"
use nn.Linear
use losses.cross_entropy
use metrics.accuracy
use optim.adam

model Clf {
    fc: Linear(2, 2)
    fn training_step(self, x: f32[B, 2], y: i32[B]) -> f32 = cross_entropy(self.fc(x), y)
    fn validation_step(self, x: f32[B, 2], y: i32[B]) {
        log("val_acc", accuracy(self.fc(x), y))
    }
    fn test_step(self, x: f32[B, 2], y: i32[B]) {
        log("test_acc", accuracy(self.fc(x), y))
    }
    fn predict_step(self, x: f32[B, 2]) -> f32[B, 2] = self.fc(x)
    fn configure_optimizers(self) = adam(lr = 0.05)
}

trainer {
    max_epochs = 6
    seed = 3
}
"#;

/// Points on either side of the line x0 + x1 = 0 (a deterministic
/// pattern), labelled by side; `features` values per point (2 fits the
/// model, 3 does not).
struct Halves {
    n: usize,
    features: usize,
    fail: bool,
    with_val: bool,
}

impl Halves {
    fn make(&self, n: usize, offset: usize) -> Dataset {
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for i in 0..n {
            let a = (((i + offset) * 37) % 101) as f32 / 50.0 - 1.0;
            let b = (((i + offset) * 59) % 103) as f32 / 51.0 - 1.0;
            xs.extend([a, b]);
            xs.extend(std::iter::repeat(0.5).take(self.features - 2));
            ys.push(i32::from(a + b > 0.0));
        }
        let x = Column::new(Values::F32(xs), vec![self.features], 1.0);
        let y = Column::new(Values::I32(ys), vec![], 1.0);
        Dataset::new(x, y).expect("whole examples")
    }
}

impl DataModule for Halves {
    fn setup(&mut self) -> Result<DataSplits, String> {
        if self.fail {
            return Err("the synthetic source is switched off".into());
        }
        let mut splits = DataSplits::new(self.make(self.n, 0), 32);
        splits.test = Some(self.make(200, 1000));
        if self.with_val {
            splits.val = Some(self.make(100, 5000));
        } else {
            splits.val_split = 64;
        }
        Ok(splits)
    }
    fn name(&self) -> String {
        "halves (synthetic)".into()
    }
}

fn opts(logs: &Path, extra: &[&str]) -> trainer::FitOptions {
    let mut overrides: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    overrides.push(format!("trainer.default_root_dir={}", logs.display()));
    trainer::FitOptions { overrides, ..Default::default() }
}

fn metric(list: &[(String, f64)], name: &str) -> f64 {
    list.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no {name} in {list:?}")).1
}

#[test]
fn trains_on_a_data_module_with_its_own_or_a_cut_validation_split() {
    let path = Path::new("halves.jl");
    for with_val in [false, true] {
        let mut module = Halves { n: 1024, features: 2, fail: false, with_val };
        let logs = tempdir(&format!("data-module-{with_val}"));
        let summary =
            trainer::fit_with_data(path, MODEL, &opts(&logs, &[]), &mut module).unwrap_or_else(|e| panic!("{e}"));
        // 1024 - 64 held out = 960 = 30 batches of 32; a given split holds nothing out.
        let per_epoch = if with_val { 32 } else { 30 };
        assert_eq!(summary.steps, 6 * per_epoch, "with_val {with_val}");
        assert!(metric(&summary.final_metrics, "val_acc") > 0.95, "{:?}", summary.final_metrics);
        assert!(metric(&summary.test_metrics, "test_acc") > 0.95, "{:?}", summary.test_metrics);
    }
    // The same run twice gives the same parameters (the trainer's seeded order).
    let run = |name: &str| {
        let mut module = Halves { n: 1024, features: 2, fail: false, with_val: false };
        trainer::fit_with_data(path, MODEL, &opts(&tempdir(name), &["data.batch_size=64"]), &mut module)
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let (a, b) = (run("data-module-a"), run("data-module-b"));
    assert_eq!(a.steps, 6 * 15, "--set data.batch_size applies to the module's splits");
    for ((_, ta), (_, tb)) in a.params.iter().zip(&b.params) {
        assert_eq!(crate::checkpoints::bits(ta), crate::checkpoints::bits(tb));
    }
}

#[test]
fn data_module_errors_name_the_module_and_what_was_expected() {
    let path = Path::new("halves.jl");
    let fit = |module: &mut Halves, extra: &[&str]| {
        trainer::fit_with_data(path, MODEL, &opts(&tempdir("data-module-err"), extra), module)
            .expect_err("must fail")
            .to_string()
    };
    let failing = fit(&mut Halves { n: 1024, features: 2, fail: true, with_val: false }, &[]);
    assert!(failing.contains("halves (synthetic): the synthetic source is switched off"), "{failing}");
    let wide = fit(&mut Halves { n: 1024, features: 3, fail: false, with_val: false }, &[]);
    assert!(wide.contains("halves (synthetic)") && wide.contains("f32[B, 2]"), "{wide}");
    let small = fit(&mut Halves { n: 60, features: 2, fail: false, with_val: false }, &[]);
    assert!(small.contains("val_split = 64 leaves no training data: halves (synthetic) has 60 examples"), "{small}");
    let key = fit(&mut Halves { n: 1024, features: 2, fail: false, with_val: false }, &["data.path=x.csv"]);
    assert!(key.contains("takes only data.batch_size"), "{key}");
    // Splits built from public fields are checked too.
    struct Given(Option<DataSplits>);
    impl DataModule for Given {
        fn setup(&mut self) -> Result<DataSplits, String> {
            Ok(self.0.take().expect("one setup per run"))
        }
    }
    let halves = Halves { n: 256, features: 2, fail: false, with_val: false };
    let mut uneven = DataSplits::new(halves.make(256, 0), 32);
    uneven.train.y = Column::new(Values::I32(vec![0; 255]), vec![], 1.0);
    let err = trainer::fit_with_data(path, MODEL, &opts(&tempdir("uneven"), &[]), &mut Given(Some(uneven)))
        .expect_err("255 targets for 256 inputs")
        .to_string();
    assert!(err.contains("data module: the training split: 256 examples of inputs but 255 of targets"), "{err}");
    let mut both = DataSplits::new(halves.make(256, 0), 32);
    (both.val, both.val_split) = (Some(halves.make(64, 9)), 10);
    let err = trainer::fit_with_data(path, MODEL, &opts(&tempdir("both-vals"), &[]), &mut Given(Some(both)))
        .expect_err("val_split and val")
        .to_string();
    assert!(err.contains("val_split = 10 and a validation split given"), "{err}");
    let ragged = Dataset::new(
        Column::new(Values::F32(vec![0.0; 5]), vec![2], 1.0),
        Column::new(Values::I32(vec![0; 2]), vec![], 1.0),
    )
    .expect_err("5 values are not whole examples of 2");
    assert!(ragged.contains("5 values, not a whole number of examples"), "{ragged}");
}

/// A program's own callback: counts validation ends (state saved in
/// checkpoints), stops after `stop_after` of them, and reports what it saw;
/// it notes every batch end's step and loss (it reads every step: the
/// default `reads_batch_end`).
struct Counter {
    seen: usize,
    stop_after: usize,
    log: std::rc::Rc<std::cell::RefCell<Vec<(usize, usize, f64)>>>,
    batch_ends: std::rc::Rc<std::cell::RefCell<Vec<(usize, f64)>>>,
}

impl trainer::Callback for Counter {
    fn name(&self) -> &'static str {
        "counter"
    }
    fn on_train_batch_end(&mut self, ctx: &mut trainer::Ctx) {
        let loss = ctx.metrics.iter().find(|(n, _)| n == "train_loss").map_or(f64::NAN, |m| m.1);
        self.batch_ends.borrow_mut().push((ctx.global_step, loss));
    }
    fn on_validation_end(&mut self, ctx: &mut trainer::Ctx) {
        self.seen += 1;
        let acc = ctx.metrics.iter().find(|(n, _)| n == "val_acc").map_or(f64::NAN, |m| m.1);
        self.log.borrow_mut().push((ctx.epoch, self.seen, acc));
        if self.seen >= self.stop_after {
            ctx.should_stop = true;
        }
    }
    fn state_dict(&self) -> trainer::serde_json::Value {
        trainer::serde_json::json!({ "seen": self.seen })
    }
    fn load_state_dict(&mut self, state: &trainer::serde_json::Value) -> Result<(), String> {
        self.seen = state["seen"].as_u64().ok_or("no `seen` count")? as usize;
        Ok(())
    }
}

#[test]
fn a_programs_own_callback_sees_metrics_stops_and_resumes_with_its_state() {
    let path = Path::new("halves.jl");
    let logs = tempdir("own-callback");
    let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let batch_ends = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let counter =
        |stop_after| Box::new(Counter { seen: 0, stop_after, log: log.clone(), batch_ends: batch_ends.clone() });
    let run = |opts: &trainer::FitOptions, stop_after| {
        let mut data = Halves { n: 1024, features: 2, fail: false, with_val: false };
        let extras = trainer::RunExtras { data: Some(&mut data), callbacks: vec![counter(stop_after)] };
        trainer::fit_with(path, MODEL, opts, extras).unwrap_or_else(|e| panic!("{e}"))
    };
    let first = run(&opts(&logs, &[]), 2);
    assert_eq!((first.stop, first.epochs), (trainer::Stop::Callback, 2));
    let seen: Vec<(usize, usize)> = log.borrow().iter().map(|&(e, s, _)| (e, s)).collect();
    assert_eq!(seen, [(0, 1), (1, 2)]);
    assert!(log.borrow().iter().all(|&(_, _, acc)| acc.is_finite()), "val_acc reached the callback");
    // After every step, in order, with that step's loss.
    let ends = batch_ends.borrow().clone();
    assert_eq!(ends.iter().map(|e| e.0).collect::<Vec<_>>(), (1..=first.steps).collect::<Vec<_>>());
    assert!(ends.iter().all(|e| e.1.is_finite() && e.1 > 0.0), "{ends:?}");
    assert!(ends.windows(2).any(|w| w[0].1 != w[1].1), "each step's own loss: {ends:?}");
    // Resumed from `last`, the count continues from 2: it stops after one more epoch.
    log.borrow_mut().clear();
    let mut resumed_opts = opts(&logs, &[]);
    resumed_opts.resume = Some(trainer::Resume::Last);
    let resumed = run(&resumed_opts, 3);
    assert_eq!((resumed.stop, resumed.epochs), (trainer::Stop::Callback, 3));
    assert_eq!(log.borrow().iter().map(|&(e, s, _)| (e, s)).collect::<Vec<_>>(), [(2, 3)]);
    // Names key the states: a clash with a built-in is refused.
    struct Impostor;
    impl trainer::Callback for Impostor {
        fn name(&self) -> &'static str {
            "ModelCheckpoint"
        }
        fn state_dict(&self) -> trainer::serde_json::Value {
            trainer::serde_json::Value::Null
        }
        fn load_state_dict(&mut self, _: &trainer::serde_json::Value) -> Result<(), String> {
            Ok(())
        }
    }
    let mut data = Halves { n: 1024, features: 2, fail: false, with_val: false };
    let extras = trainer::RunExtras { data: Some(&mut data), callbacks: vec![Box::new(Impostor)] };
    let err = trainer::fit_with(path, MODEL, &opts(&tempdir("impostor"), &[]), extras).expect_err("clash").to_string();
    assert!(err.contains("two callbacks are named `ModelCheckpoint`"), "{err}");
}

/// `jlc test` from Rust on the module's test split: the checkpoint the run
/// wrote gives the test accuracy the run reported.
#[test]
fn testing_a_checkpoint_on_a_data_modules_test_split() {
    let path = Path::new("halves.jl");
    let logs = tempdir("data-module-test");
    let mut module = Halves { n: 1024, features: 2, fail: false, with_val: false };
    let fit_opts = opts(&logs, &[]);
    let summary = trainer::fit_with_data(path, MODEL, &fit_opts, &mut module).unwrap_or_else(|e| panic!("{e}"));
    let eval_opts = trainer::eval::EvalOptions {
        overrides: fit_opts.overrides.clone(),
        backend: runtime::Backend::Cpu,
        color: false,
        compiler: Default::default(),
        ckpt: None,
    };
    let stage = trainer::setup::Stage::Test;
    let tested = trainer::eval::run_with_data(stage, path, MODEL, &eval_opts, Some(&mut module))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(tested.examples, 200);
    assert_eq!(metric(&tested.metrics, "test_acc"), metric(&summary.test_metrics, "test_acc"));
    // `jlc predict` from Rust: logits for the module's test split.
    let predict_opts = |split, out: std::path::PathBuf| trainer::predict::PredictOptions {
        overrides: fit_opts.overrides.clone(),
        backend: runtime::Backend::Cpu,
        color: false,
        compiler: Default::default(),
        ckpt: None,
        split,
        out,
    };
    let out = logs.join("logits.npy");
    let predicted = trainer::predict::run_with_data(
        path,
        MODEL,
        &predict_opts(trainer::predict::Split::Test, out.clone()),
        Some(&mut module),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((predicted.examples, predicted.shapes.clone()), (200, vec![vec![200, 2]]));
    assert!(std::fs::metadata(&out).is_ok_and(|m| m.len() > 200 * 2 * 4), "{} written", out.display());
    let all = trainer::predict::run_with_data(
        path,
        MODEL,
        &predict_opts(trainer::predict::Split::All, logs.join("all.npy")),
        Some(&mut module),
    )
    .expect_err("no files to read again")
    .to_string();
    assert!(all.contains("no data files to read again"), "{all}");
}
