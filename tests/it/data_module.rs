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
        splits.val_split = 64;
        splits.test = Some(self.make(200, 1000));
        if self.with_val {
            splits.val = Some(self.make(100, 5000));
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
    trainer::FitOptions {
        overrides,
        backend: runtime::Backend::Cpu,
        color: false,
        progress: false,
        compiler: Default::default(),
        resume: None,
        interrupt: None,
    }
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
    let ragged = Dataset::new(
        Column::new(Values::F32(vec![0.0; 5]), vec![2], 1.0),
        Column::new(Values::I32(vec![0; 2]), vec![], 1.0),
    )
    .expect_err("5 values are not whole examples of 2");
    assert!(ragged.contains("5 values, not a whole number of examples"), "{ragged}");
}
