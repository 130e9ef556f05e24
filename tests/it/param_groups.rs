//! `param_groups`: an optimizer per part of the model and frozen
//! parameters. One compiled step against an f64 oracle (central
//! differences of the loss written here, optax's update formulas); whole
//! runs with accumulation and batch norm, frozen parameters bitwise their
//! initial values, a resumed run bitwise the uninterrupted one; the
//! errors of misnamed, doubled and uncovered parts.

use crate::checkpoints::{bits, fit};
use crate::examples::tempdir;
use compiler::ir::{interp, DType, Tensor, Type};
use compiler::lower::ParamKind;

/// `a` by the default Adam, `s` by SGD with momentum on a schedule, `b`
/// frozen. Loss: mean((tanh(x @ a + b) * s - y)^2).
const STEP_MODEL: &str = r#"
use optim.{adam, sgd, linear_schedule}
model Net {
    a: f32[3, 2]
    b: f32[2]
    s: f32[2]
    fn training_step(self, x: f32[B, 3], y: f32[B, 2]) -> f32 {
        let h = tanh(x @ self.a + self.b) * self.s
        mean((h - y) * (h - y))
    }
    fn configure_optimizers(self) = param_groups(
        adam(lr = 0.01),
        ("s", sgd(lr = linear_schedule(0.1, 0.0, 10), momentum = 0.9)),
        frozen = "b",
    )
}
trainer { log_lr = true; log_grad_norm = true; gradient_clip_val = 100.0 }
"#;

const X: [[f64; 3]; 4] = [[0.5, -1.0, 0.25], [1.5, 0.0, -0.5], [-0.75, 0.5, 1.0], [0.25, 0.25, -1.25]];
const Y: [[f64; 2]; 4] = [[0.1, -0.2], [0.3, 0.0], [-0.4, 0.25], [0.05, 0.15]];

/// The loss of `STEP_MODEL` in f64, parameters flattened as (a, b, s).
fn loss(a: &[f64], b: &[f64], s: &[f64]) -> f64 {
    let mut total = 0.0;
    for (x, y) in X.iter().zip(&Y) {
        for j in 0..2 {
            let z: f64 = (0..3).map(|i| x[i] * a[i * 2 + j]).sum::<f64>() + b[j];
            let h = z.tanh() * s[j];
            total += (h - y[j]).powi(2);
        }
    }
    total / 8.0
}

/// Central differences of `loss` with respect to parameter `which` (0: a, 1: b, 2: s).
fn numeric_grad(p: &[Vec<f64>; 3], which: usize) -> Vec<f64> {
    (0..p[which].len())
        .map(|i| {
            let at = |d: f64| {
                let mut q = p.clone();
                q[which][i] += d;
                loss(&q[0], &q[1], &q[2])
            };
            (at(1e-6) - at(-1e-6)) / 2e-6
        })
        .collect()
}

fn close(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= 2e-6 * w.abs().max(1.0), "{what}: {got:?} vs {want:?}");
    }
}

#[test]
fn one_step_updates_each_group_by_its_optimizer_and_leaves_frozen_alone() {
    let (prog, diags) = compiler::lower::load("net.jl", STEP_MODEL);
    assert!(diags.is_empty(), "{diags:?}");
    let sections = compiler::lower::training_sections(&prog).unwrap();
    let (x_ty, y_ty) = (Type::new(DType::F32, &[4, 3]), Type::new(DType::F32, &[4, 2]));
    let progs = compiler::compile_training(&prog, sections.trainer.as_ref(), &x_ty, &y_ty, &Default::default())
        .unwrap_or_else(|d| panic!("{d:?}"));
    assert_eq!(progs.param_states, [2, 0, 1], "adam: m, v; frozen: none; sgd with momentum: v");
    let logs: Vec<&str> = progs.train_logs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(logs, ["grad_norm", "lr", "lr/pg1"]);
    let kinds: Vec<(&str, ParamKind)> = progs.params.iter().map(|p| (p.path.as_str(), p.kind)).collect();
    assert_eq!(kinds, [("a", ParamKind::Trained), ("b", ParamKind::Frozen), ("s", ParamKind::Trained)]);

    // Values that are exact in f32, so the oracle starts where the step does.
    let p: [Vec<f64>; 3] = [vec![0.25, -0.5, 0.75, 0.125, -0.375, 0.5], vec![0.0625, -0.125], vec![1.25, -0.75]];
    let (m_a, v_a, v_s) = (vec![0.01; 6], vec![0.0025; 6], vec![0.03125, -0.0625]);
    let step = 3.0;
    let f32s = |shape: &[usize], v: &[f64]| Tensor::from_f64(DType::F32, shape, v);
    let mut inputs = vec![f32s(&[3, 2], &p[0]), f32s(&[2], &p[1]), f32s(&[2], &p[2])];
    inputs.extend([f32s(&[3, 2], &m_a), f32s(&[3, 2], &v_a), f32s(&[2], &v_s)]);
    inputs.push(Tensor::scalar_f32(step as f32));
    inputs.push(f32s(&[4, 3], &X.concat()));
    inputs.push(f32s(&[4, 2], &Y.concat()));
    let out: Vec<Vec<f64>> = interp::run(&progs.train_step, &inputs).iter().map(Tensor::to_f64_vec).collect();

    let (ga, gs) = (numeric_grad(&p, 0), numeric_grad(&p, 2));
    // Adam on `a` (optax's formulas, bias-corrected at step 3).
    let (b1, b2, eps, lr) = (0.9f64, 0.999f64, 1e-8, 0.01);
    let m: Vec<f64> = m_a.iter().zip(&ga).map(|(m, g)| b1 * m + (1.0 - b1) * g).collect();
    let v: Vec<f64> = v_a.iter().zip(&ga).map(|(v, g)| b2 * v + (1.0 - b2) * g * g).collect();
    let a: Vec<f64> = (0..6)
        .map(|i| {
            let (mh, vh) = (m[i] / (1.0 - b1.powf(step)), v[i] / (1.0 - b2.powf(step)));
            p[0][i] - lr * mh / (vh.sqrt() + eps)
        })
        .collect();
    // SGD with momentum on `s`, its rate the schedule's at t = step - 1: 0.1 - 0.1 * 2 / 10.
    let lr_s = 0.08;
    let vs: Vec<f64> = v_s.iter().zip(&gs).map(|(v, g)| g + 0.9 * v).collect();
    let s: Vec<f64> = p[2].iter().zip(&vs).map(|(p, v)| p - lr_s * v).collect();
    close(&out[0], &a, "a after Adam");
    assert_eq!(out[1], p[1], "the frozen `b` changed");
    close(&out[2], &s, "s after SGD");
    close(&out[3], &m, "Adam's m");
    close(&out[4], &v, "Adam's v");
    close(&out[5], &vs, "SGD's momentum");
    close(&out[6], &[loss(&p[0], &p[1], &p[2])], "loss");
    // The norm covers the trained parameters only, as PyTorch's leaves out those without gradients.
    let norm = ga.iter().chain(&gs).map(|g| g * g).sum::<f64>().sqrt();
    close(&out[7], &[norm], "grad_norm");
    close(&out[8], &[0.01], "lr");
    close(&out[9], &[lr_s], "lr/pg1");
}

/// A batch norm (its affine part in an SGD group, its statistics buffers),
/// a frozen first layer, and the rest (the head) by Adam: the two specific
/// parts override the whole model's group. With gradient accumulation.
pub const RUN_MODEL: &str = r#"
use nn.{Linear, BatchNorm1d, relu}
use losses.cross_entropy
use optim.{adam, sgd}
model Net {
    l1: Linear(2, 8)
    bn: BatchNorm1d(8)
    head: Linear(8, 3)
    fn training_step(self, x: f32[B, 2], y: i32[B]) -> f32 = cross_entropy(self.head(relu(self.bn(self.l1(x)))), y)
    fn configure_optimizers(self) = param_groups((self, adam(lr = 0.05)), (self.bn, sgd(lr = 0.1)), frozen = self.l1)
}
data = csv("rows.csv") { batch_size = 4; val_split = 0 }
trainer { max_epochs = 3; seed = 11; accumulate_grad_batches = 2 }
"#;

/// Writes `RUN_MODEL` and its 20 rows into a fresh directory named `name`;
/// returns the model's path.
pub fn run_model(name: &str) -> std::path::PathBuf {
    let dir = tempdir(name);
    let rows: String =
        (0..20).map(|i| format!("{},{},{}\n", (i % 7) as f64 / 4.0 - 0.5, (i * 3 % 5) as f64 / 2.0, i % 3)).collect();
    std::fs::write(dir.join("rows.csv"), rows).unwrap();
    let path = dir.join("net.jl");
    std::fs::write(&path, RUN_MODEL).unwrap();
    path
}

#[test]
fn frozen_parameters_stay_at_their_initial_values_and_runs_resume_bitwise() {
    let path = run_model("param-groups-fit");
    let full = fit(&path, RUN_MODEL, &tempdir("param-groups-full"), &[], None);
    assert_eq!(full.steps, 9, "5 batches an epoch in windows of 2: 3 optimizer steps");
    let specs: Vec<compiler::lower::ParamSpec> = full.params.iter().map(|(p, _)| p.clone()).collect();
    let init = trainer::fit::init_params(&specs, 11);
    for ((spec, got), start) in full.params.iter().zip(&init) {
        let moved = bits(got) != bits(start);
        let want_moved = !spec.path.starts_with("l1.");
        assert_eq!(moved, want_moved, "{}: moved {moved}", spec.path);
        assert_eq!(spec.kind == ParamKind::Frozen, spec.path.starts_with("l1."), "{}", spec.path);
    }
    let states: Vec<&str> = full.states.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        states,
        ["opt.head.weight.0", "opt.head.weight.1", "opt.head.bias.0", "opt.head.bias.1"],
        "plain SGD keeps no state; frozen parameters and buffers have none"
    );

    let logs = tempdir("param-groups-resume");
    fit(&path, RUN_MODEL, &logs, &["trainer.max_steps=4".to_string()], None);
    // Resuming with other groups: the states do not fit, and the error says why.
    let regrouped = RUN_MODEL.replace("(self.bn, sgd(lr = 0.1))", "(self.bn, adam(lr = 0.1))");
    let opts = trainer::FitOptions {
        overrides: vec![format!("trainer.default_root_dir={}", logs.display())],
        resume: Some(trainer::Resume::Last),
        ..Default::default()
    };
    let err = trainer::fit(&path, &regrouped, &opts).err().expect("refused").to_string();
    assert!(err.contains("missing: `opt.bn.weight.0`") && err.contains("parameter groups changed"), "{err}");
    let end = fit(&path, RUN_MODEL, &logs, &[], Some(trainer::Resume::Last));
    for ((spec, a), (_, b)) in full.params.iter().zip(&end.params) {
        assert_eq!(bits(a), bits(b), "{} differs after resuming", spec.path);
    }
}

fn errors(configure: &str) -> String {
    let src = STEP_MODEL.replace(
        &STEP_MODEL[STEP_MODEL.find("    fn configure_optimizers").unwrap()..STEP_MODEL.find("\n}\ntrainer").unwrap()],
        &format!("    fn configure_optimizers(self) = {configure}"),
    );
    let (diags, _) = jaxlightning::check_source("net.jl", &src);
    diags.iter().map(|d| d.message.clone()).collect::<Vec<_>>().join("\n")
}

#[test]
fn misnamed_doubled_and_uncovered_parts_are_errors() {
    for (configure, want) in [
        (r#"param_groups(adam(), ("c", sgd()))"#, "model `Net` has no parameter or submodule `c`"),
        (r#"param_groups(adam(), ("a", sgd()), frozen = ("b", "a"))"#, "`a` is in two parameter groups"),
        (r#"param_groups(("a", adam()))"#, "no parameter group holds `b`, `s`"),
        (r#"param_groups(adam(), frozen = ("a", "b", "s"))"#, "every parameter of model `Net` is frozen"),
        (r#"param_groups(adam(), (self.a, sgd()))"#, "a single parameter is named by its path, as a string"),
        (r#"param_groups(adam(), sgd())"#, "only the first argument may be an optimizer alone"),
        (r#"param_groups(adam(), freeze = "a")"#, "`param_groups` has no setting `freeze`"),
        ("3", "`configure_optimizers` must return an optimizer such as `adam(lr = 1e-3)`, or `param_groups(...)`"),
    ] {
        let got = errors(configure);
        assert!(got.contains(want), "{configure}: {got}");
    }
    let buffers = RUN_MODEL.replace("frozen = self.l1", r#"frozen = (self.l1, "bn.running_var")"#);
    let (diags, _) = jaxlightning::check_source("net.jl", &buffers);
    let got: Vec<&str> = diags.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(got, ["`bn.running_var` holds only buffers, which no optimizer updates"]);
    // A group whose every parameter more specific parts take.
    let unused = errors(r#"param_groups(adam(), (self, sgd()), (("a", "b"), adam()), ("s", adam()))"#);
    assert!(unused.contains("the optimizer of group 1 updates no parameter"), "{unused}");
    let unused_group = errors(r#"param_groups(adam(), ("s", sgd()), ("s", adam()))"#);
    assert!(unused_group.contains("`s` is in two parameter groups"), "{unused_group}");
    let overridden = errors(r#"param_groups((self, adam()), (self, sgd()))"#);
    assert!(overridden.contains("the whole model is in two parameter groups"), "{overridden}");
    // Instances made on the spot are not the model's parts, even of the same type.
    let fresh = errors(r#"param_groups(adam(), (Net(), sgd()))"#);
    assert!(fresh.contains("this `Net` is not part of the trained model `Net`"), "{fresh}");
    let unused_frozen = errors(r#"param_groups(adam(), ("a", sgd()), (("b", "s"), adam()), frozen = self)"#);
    assert!(unused_frozen.contains("these frozen parts freeze no parameter"), "{unused_frozen}");
    // `jlc check` finds a logged name that a group's learning rate takes too.
    let clash = STEP_MODEL.replace("mean((h - y) * (h - y))", "log(\"lr/pg1\", 1.0)\n        mean((h - y) * (h - y))");
    let (diags, _) = jaxlightning::check_source("net.jl", &clash);
    assert!(diags.iter().any(|d| d.message.contains("logs `lr/pg1`, which `log_lr = true` logs too")), "{diags:?}");
    let twice = errors(r#"param_groups(adam(), frozen = "a", frozen = "b")"#);
    assert!(twice.contains("`frozen` is given twice"), "{twice}");
    // A default that the groups leave nothing to is left out; no parts at
    // all (a condition that freezes nothing) is fine.
    assert_eq!(errors(r#"param_groups(adam(), (self, sgd()))"#), "");
    assert_eq!(errors(r#"param_groups(adam(), frozen = ())"#), "");
    // A more specific part overrides a broader one: no error.
    assert_eq!(errors(r#"param_groups((self, adam()), ("s", sgd()), frozen = "b")"#), "");
}

/// A list field: `self.blocks` names its members together, so one member
/// named elsewhere overrides it, as a submodule within a submodule does.
#[test]
fn a_list_member_overrides_its_list() {
    let src = r#"
use nn.Linear
use losses.mse
use optim.{adam, sgd}
model Net {
    blocks: [Linear(2, 2); 3]
    fn training_step(self, x: f32[B, 2], y: f32[B, 2]) -> f32 = mse(self.blocks[2](self.blocks[1](self.blocks[0](x))), y)
    fn configure_optimizers(self) = param_groups(adam(), (self.blocks, sgd(lr = 0.1, momentum = 0.9)), frozen = self.blocks[1])
}
trainer { max_epochs = 1 }
"#;
    let (prog, diags) = compiler::lower::load("net.jl", src);
    assert!(diags.is_empty(), "{diags:?}");
    let sections = compiler::lower::training_sections(&prog).unwrap();
    let ty = Type::new(DType::F32, &[4, 2]);
    let progs = compiler::compile_training(&prog, sections.trainer.as_ref(), &ty, &ty, &Default::default())
        .unwrap_or_else(|d| panic!("{d:?}"));
    let states: Vec<(&str, usize)> =
        progs.params.iter().map(|p| p.path.as_str()).zip(progs.param_states.iter().copied()).collect();
    assert_eq!(
        states,
        [
            ("blocks.0.weight", 1),
            ("blocks.0.bias", 1),
            ("blocks.1.weight", 0),
            ("blocks.1.bias", 0),
            ("blocks.2.weight", 1),
            ("blocks.2.bias", 1)
        ]
    );
    assert!(
        progs.optimizer.contains("sgd_momentum (pg1: blocks)") && progs.optimizer.contains("frozen (blocks.1)"),
        "{}",
        progs.optimizer
    );
    // Every member named one by one is the list too.
    let each = src.replace("(self.blocks, sgd", "((self.blocks[0], self.blocks[1], self.blocks[2]), sgd");
    let (diags, _) = jaxlightning::check_source("net.jl", &each);
    assert!(diags.is_empty(), "{diags:?}");
}
