//! Buffers (`buffer(init)` fields changed by `assign` in a training step)
//! and the stdlib's batch norms that use them: the running statistics over
//! a whole `trainer::fit` against the same statistics computed here in f64
//! from the batches in training order; validation normalizing with them
//! (`self.training` false) against the formula; a resumed run bitwise the
//! uninterrupted one; buffers untouched by the optimizer.

use crate::checkpoints::{bits, fit};
use crate::examples::tempdir;
use compiler::ir::generate::Rng as SplitMix;
use compiler::ir::{interp, DType, Tensor, Type};

/// Batch norm on the two raw features, then a linear layer; the loss is
/// mean(out^2) (labels unused), so the running statistics depend on the
/// data only. The validation step logs the normalized first feature's sum.
const MODEL: &str = r#"
use nn.{Linear, BatchNorm1d}
use optim.adam
model Net {
    bn: BatchNorm1d(2)
    l: Linear(2, 1)
    fn training_step(self, x: f32[B, 2], y: i32[B]) -> f32 {
        let out = self.l(self.bn(x))
        mean(out * out)
    }
    fn validation_step(self, x: f32[B, 2], y: i32[B]) {
        log("bn_sum", sum(self.bn(x)[:, 0]))
    }
    fn configure_optimizers(self) = adam(lr = 0.05)
}
data = csv("rows.csv") { batch_size = 4; shuffle = false; val_split = 0 }
trainer { max_epochs = 3; seed = 5 }
"#;

const SEED: u64 = 5;
const N_ROWS: usize = 12;

/// Writes the model and 12 rows of two features (multiples of 1/8, offset
/// so the means are far from 0); returns the model's path and the rows.
fn setup(name: &str) -> (std::path::PathBuf, Vec<[f64; 2]>) {
    let dir = tempdir(name);
    let mut rng = SplitMix(0xb0ff);
    let rows: Vec<[f64; 2]> = (0..N_ROWS)
        .map(|_| [(rng.below(33) as f64 - 16.0) / 8.0 + 3.0, (rng.below(33) as f64 - 16.0) / 4.0 - 1.0])
        .collect();
    let csv: String = rows.iter().map(|r| format!("{},{},0\n", r[0], r[1])).collect();
    std::fs::write(dir.join("rows.csv"), csv).unwrap();
    let path = dir.join("net.jl");
    std::fs::write(&path, MODEL).unwrap();
    (path, rows)
}

/// PyTorch's running statistics after each batch of `batch` rows in order:
/// running = 0.9 running + 0.1 batch, the variance unbiased.
fn running_stats(rows: &[[f64; 2]], epochs: usize, batch: usize) -> ([f64; 2], [f64; 2]) {
    let (mut mean, mut var) = ([0.0; 2], [1.0; 2]);
    for _ in 0..epochs {
        for b in rows.chunks(batch) {
            let n = b.len() as f64;
            for f in 0..2 {
                let m = b.iter().map(|r| r[f]).sum::<f64>() / n;
                let v = b.iter().map(|r| (r[f] - m).powi(2)).sum::<f64>() / n;
                mean[f] = 0.9 * mean[f] + 0.1 * m;
                var[f] = 0.9 * var[f] + 0.1 * v * n / (n - 1.0);
            }
        }
    }
    (mean, var)
}

fn param<'a>(s: &'a trainer::FitSummary, path: &str) -> &'a Tensor {
    &s.params.iter().find(|(p, _)| p.path == path).unwrap_or_else(|| panic!("no parameter {path}")).1
}

#[test]
fn batch_norm_running_statistics_match_an_f64_simulation_and_resume_bitwise() {
    let (path, rows) = setup("buffers-fit");
    let order = trainer::rng::Rng::derive(SEED, "split").permutation(rows.len());
    let ordered: Vec<[f64; 2]> = order.iter().map(|&i| rows[i]).collect();
    let full = fit(&path, MODEL, &tempdir("buffers-fit-logs"), &[], None);
    assert_eq!(full.steps, 9);
    let (want_mean, want_var) = running_stats(&ordered, 3, 4);
    let (mean, var) = (param(&full, "bn.running_mean").to_f64_vec(), param(&full, "bn.running_var").to_f64_vec());
    for f in 0..2 {
        assert!((mean[f] - want_mean[f]).abs() <= 1e-5 * want_mean[f].abs().max(1.0), "{mean:?} vs {want_mean:?}");
        assert!((var[f] - want_var[f]).abs() <= 1e-5 * want_var[f].abs().max(1.0), "{var:?} vs {want_var:?}");
    }
    // The buffers are marked, the trained scale moved, and the summary says which is which.
    let trainable: Vec<(&str, bool)> = full.params.iter().map(|(p, _)| (p.path.as_str(), p.trainable())).collect();
    assert!(trainable.contains(&("bn.running_mean", false)) && trainable.contains(&("bn.weight", true)));
    assert!(param(&full, "bn.weight").to_f64_vec().iter().any(|w| (w - 1.0).abs() > 1e-4), "bn.weight was not trained");

    // Interrupted after 4 steps and resumed: bitwise the same, buffers included.
    let logs = tempdir("buffers-resume");
    fit(&path, MODEL, &logs, &["trainer.max_steps=4".to_string()], None);
    let end = fit(&path, MODEL, &logs, &[], Some(trainer::Resume::Last));
    for ((spec, a), (_, b)) in full.params.iter().zip(&end.params) {
        assert_eq!(bits(a), bits(b), "{} differs after resuming", spec.path);
    }
}

/// The compiled programs themselves, on the interpreter: the training step
/// outputs the batch's running statistics for the buffers, which have no
/// optimizer states; the validation step normalizes with the running
/// statistics it is given, not the batch's.
#[test]
fn the_training_step_assigns_buffers_and_validation_reads_them() {
    let (prog, diags) = compiler::lower::load("net.jl", MODEL);
    assert!(diags.is_empty(), "{diags:?}");
    let sections = compiler::lower::training_sections(&prog).unwrap();
    let x_ty = Type::new(DType::F32, &[4, 2]);
    let y_ty = Type::new(DType::I32, &[4]);
    let progs = compiler::compile_training(&prog, sections.trainer.as_ref(), &x_ty, &y_ty, &Default::default())
        .unwrap_or_else(|d| panic!("{d:?}"));
    let paths: Vec<&str> = progs.params.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["bn.weight", "bn.bias", "bn.running_mean", "bn.running_var", "l.weight", "l.bias"]);
    let x = [[1.0, -2.0], [3.0, 0.5], [2.0, 4.0], [-1.0, 1.5]];
    let (rm, rv, w, b) = ([0.5, -1.0], [4.0, 0.25], [2.0, 3.0], [0.1, 0.2]);
    let mut values = batch_norm_values(w, b, rm, rv);
    values.extend([Tensor::f32(&[2, 1], vec![0.5, -0.5]), Tensor::f32(&[1], vec![0.0])]);
    let xs = Tensor::f32(&[4, 2], x.iter().flatten().map(|&v| v as f32).collect());
    let ys = Tensor::i32(&[4], vec![0; 4]);
    // Validation: sum_i ((x_i0 - rm_0) / sqrt(rv_0 + eps) * w_0 + b_0).
    let mut inputs = values.clone();
    inputs.extend([xs.clone(), ys.clone()]);
    let got = interp::run(progs.val_step.as_ref().unwrap(), &inputs)[0].to_f64_vec()[0];
    let want: f64 = x.iter().map(|r| (r[0] - rm[0]) / (rv[0] + 1e-5f64).sqrt() * w[0] + b[0]).sum();
    assert!((got - want).abs() <= 1e-5 * want.abs().max(1.0), "validation: {got} vs {want}");
    // Training: the buffers' outputs are the moved statistics; they have no states.
    assert_eq!(progs.param_states, [2, 2, 0, 0, 2, 2], "adam keeps two states per trained parameter");
    let mut inputs = values.clone();
    let states: Vec<Tensor> = progs.state_specs().map(|(p, k)| filled(&p.ty, 0.25 * (k + 1) as f64)).collect();
    inputs.extend(states.iter().cloned());
    inputs.extend([Tensor::scalar_f32(1.0), xs, ys]);
    let out = interp::run(&progs.train_step, &inputs);
    for f in 0..2 {
        let m = x.iter().map(|r| r[f]).sum::<f64>() / 4.0;
        let v = x.iter().map(|r| (r[f] - m).powi(2)).sum::<f64>() / 4.0;
        let (want_m, want_v) = (0.9 * rm[f] + 0.1 * m, 0.9 * rv[f] + 0.1 * v * 4.0 / 3.0);
        let (got_m, got_v) = (out[2].to_f64_vec()[f], out[3].to_f64_vec()[f]);
        assert!((got_m - want_m).abs() <= 1e-6 && (got_v - want_v).abs() <= 1e-6, "feature {f}: {got_m}, {got_v}");
    }
    assert_eq!(out.len(), 6 + 8 + 2, "parameters, states, the loss and the finiteness check");
}

/// A two-feature batch norm's inputs in declaration order: weight, bias,
/// running mean, running variance.
fn batch_norm_values(w: [f64; 2], b: [f64; 2], mean: [f64; 2], var: [f64; 2]) -> Vec<Tensor> {
    [w, b, mean, var].iter().map(|v| Tensor::f32(&[2], vec![v[0] as f32, v[1] as f32])).collect()
}

fn filled(ty: &Type, value: f64) -> Tensor {
    Tensor::from_f64(ty.dtype, ty.shape.dims(), &vec![value; ty.shape.num_elements()])
}

/// With `accumulate_grad_batches = 2` the running statistics still move
/// once per micro-batch, chained through the window (a buffer's
/// accumulator carries its value), so they equal the unaccumulated run's
/// simulation; the trained parameters see one update per window.
#[test]
fn accumulation_updates_buffers_once_per_micro_batch() {
    let (path, rows) = setup("buffers-accumulate");
    let order = trainer::rng::Rng::derive(SEED, "split").permutation(rows.len());
    let ordered: Vec<[f64; 2]> = order.iter().map(|&i| rows[i]).collect();
    let run =
        fit(&path, MODEL, &tempdir("buffers-accumulate-logs"), &["trainer.accumulate_grad_batches=2".into()], None);
    // Three micro-batches an epoch: windows of 2 and 1, two optimizer steps.
    assert_eq!(run.steps, 6);
    let (want_mean, want_var) = running_stats(&ordered, 3, 4);
    let (mean, var) = (param(&run, "bn.running_mean").to_f64_vec(), param(&run, "bn.running_var").to_f64_vec());
    for f in 0..2 {
        assert!((mean[f] - want_mean[f]).abs() <= 1e-5 * want_mean[f].abs().max(1.0), "{mean:?} vs {want_mean:?}");
        assert!((var[f] - want_var[f]).abs() <= 1e-5 * want_var[f].abs().max(1.0), "{var:?} vs {want_var:?}");
    }
}

/// A model whose only state is buffers has nothing to train: the same clear
/// error as a model without fields, not an internal one.
#[test]
fn a_model_with_only_buffers_is_refused_clearly() {
    let src = "use optim.sgd\nmodel Stats {\n    m: f32[4] = buffer(zeros())\n\
               \x20   fn training_step(self, x: f32[B, 4], y: i32[B]) -> f32 {\n\
               \x20       assign(self, m = self.m + sum(x, axis = 0))\n        sum(self.m) * 0.0\n    }\n\
               \x20   fn configure_optimizers(self) = sgd(lr = 0.1)\n}\n";
    let (prog, diags) = compiler::lower::load("stats.jl", src);
    assert!(diags.is_empty(), "{diags:?}");
    let x_ty = Type::new(DType::F32, &[2, 4]);
    let y_ty = Type::new(DType::I32, &[2]);
    let err = compiler::compile_training(&prog, None, &x_ty, &y_ty, &Default::default()).unwrap_err();
    let text = compiler::diagnostic::render_all(&err, &prog.sources, false);
    assert!(text.contains("model `Stats` has no trainable parameters (only buffers, which are not trained)"), "{text}");
}

/// Helpers are checked alone with `self.training` false, and in training
/// where `training_step` calls them: a helper that calls a batch norm twice
/// (fine outside training) and one with a `flag: bool` parameter that
/// assigns (checked once per flag value) are accepted; a batch norm on one
/// example while training is refused at compile time, as PyTorch refuses it.
#[test]
fn helpers_are_checked_where_they_run_and_a_batch_of_one_is_refused() {
    let src = r#"
use nn.{Linear, BatchNorm1d}
use optim.sgd
model Net {
    bn: BatchNorm1d(2)
    l: Linear(2, 1)
    c: f32[2] = buffer(zeros())
    fn gap(self, a: f32[B, 2], b: f32[B, 2]) -> f32 = mean(abs(self.bn(a) - self.bn(b)))
    fn track(self, x: f32[B, 2], flag: bool) -> f32[B, 2] {
        if self.training {
            assign(self, c = 0.9 * self.c + 0.1 * mean(x, axis = 0))
        }
        x
    }
    fn training_step(self, x: f32[B, 2], y: i32[B]) -> f32 {
        let out = self.l(self.bn(self.track(x, true)))
        mean(out * out)
    }
    fn validation_step(self, x: f32[B, 2], y: i32[B]) {
        log("gap", self.gap(x, 2.0 * x))
    }
    fn configure_optimizers(self) = sgd(lr = 0.1)
}
"#;
    let (diags, sources) = jaxlightning::check_source("net.jl", src);
    assert!(diags.is_empty(), "{}", compiler::diagnostic::render_all(&diags, &sources, false));
    let (prog, _) = compiler::lower::load("net.jl", src);
    let compile = |batch: usize| {
        let x_ty = Type::new(DType::F32, &[batch, 2]);
        let y_ty = Type::new(DType::I32, &[batch]);
        compiler::compile_training(&prog, None, &x_ty, &y_ty, &Default::default())
    };
    assert!(compile(2).is_ok());
    let err = compile(1).unwrap_err();
    let text = compiler::diagnostic::render_all(&err, &prog.sources, false);
    assert!(text.contains("batch norm needs more than 1 value per channel while training"), "{text}");
}

/// BatchNorm2d: per-channel statistics over the batch and the pixels (n =
/// B H W, the running variance unbiased by n / (n - 1)), the training
/// output normalized with the batch's biased variance, validation with the
/// running statistics; against the formulas written out here.
#[test]
fn batch_norm_2d_normalizes_per_channel_over_batch_and_pixels() {
    let src = r#"
use nn.BatchNorm2d
use optim.sgd
model Net {
    bn: BatchNorm2d(2)
    fn training_step(self, x: f32[B, 2, 2, 3], y: i32[B]) -> f32 {
        let out = self.bn(x)
        log("c1", sum(out[:, 1] * x[:, 1]))
        mean(out * out)
    }
    fn validation_step(self, x: f32[B, 2, 2, 3], y: i32[B]) {
        log("c1", sum(self.bn(x)[:, 1]))
    }
    fn configure_optimizers(self) = sgd(lr = 0.1)
}
"#;
    let (prog, diags) = compiler::lower::load("bn2d.jl", src);
    assert!(diags.is_empty(), "{diags:?}");
    let x_ty = Type::new(DType::F32, &[2, 2, 2, 3]);
    let y_ty = Type::new(DType::I32, &[2]);
    let progs = compiler::compile_training(&prog, None, &x_ty, &y_ty, &Default::default()).unwrap();
    let x: Vec<f64> = (0..24).map(|i| ((i * 7) % 11) as f64 * 0.5 - 2.0).collect();
    let at = |b: usize, c: usize, p: usize| x[b * 12 + c * 6 + p];
    let channel = |c: usize| -> Vec<f64> { (0..2).flat_map(|b| (0..6).map(move |p| at(b, c, p))).collect() };
    let (rm, rv, w, bias) = ([0.5, -1.0], [4.0, 0.25], [2.0, 3.0], [0.1, 0.2]);
    let params = batch_norm_values(w, bias, rm, rv);
    let xs = Tensor::f32(&[2, 2, 2, 3], x.iter().map(|&v| v as f32).collect());
    let ys = Tensor::i32(&[2], vec![0, 0]);
    let mut inputs = params.clone();
    inputs.extend([xs.clone(), ys.clone()]);
    let got = interp::run(progs.val_step.as_ref().unwrap(), &inputs)[0].to_f64_vec()[0];
    let want: f64 = channel(1).iter().map(|v| (v - rm[1]) / (rv[1] + 1e-5f64).sqrt() * w[1] + bias[1]).sum();
    assert!((got - want).abs() <= 1e-4 * want.abs().max(1.0), "validation: {got} vs {want}");
    let mut inputs = params.clone();
    inputs.extend(progs.state_specs().map(|(p, _)| Tensor::zeros(&p.ty)));
    inputs.extend([Tensor::scalar_f32(1.0), xs, ys]);
    let out = interp::run(&progs.train_step, &inputs);
    let n_states = progs.n_states();
    let logged = out[4 + n_states + 1].to_f64_vec()[0];
    for c in 0..2 {
        let v = channel(c);
        let m = v.iter().sum::<f64>() / 12.0;
        let var = v.iter().map(|a| (a - m).powi(2)).sum::<f64>() / 12.0;
        let (got_m, got_v) = (out[2].to_f64_vec()[c], out[3].to_f64_vec()[c]);
        let (want_m, want_v) = (0.9 * rm[c] + 0.1 * m, 0.9 * rv[c] + 0.1 * var * 12.0 / 11.0);
        assert!((got_m - want_m).abs() <= 1e-5 && (got_v - want_v).abs() <= 1e-5, "channel {c}: {got_m}, {got_v}");
        if c == 1 {
            let want: f64 =
                v.iter().map(|a| (a - m) / (var + 1e-5).sqrt() * w[1] + bias[1]).zip(&v).map(|(o, a)| o * a).sum();
            assert!((logged - want).abs() <= 1e-4 * want.abs().max(1.0), "training output: {logged} vs {want}");
        }
    }
}

/// Checkpoints written before buffers lost their optimizer states hold
/// all-zero `opt.<buffer>.<k>` tensors: resuming from one ignores them and
/// continues bitwise as from the new layout.
#[test]
fn resuming_ignores_the_optimizer_states_old_checkpoints_kept_for_buffers() {
    let (path, _) = setup("buffers-old-layout");
    let full = fit(&path, MODEL, &tempdir("buffers-old-full"), &[], None);
    let logs = tempdir("buffers-old-resume");
    fit(&path, MODEL, &logs, &["trainer.max_steps=4".to_string()], None);
    let last = trainer::checkpoint::find_last(&logs.join("lightning_logs")).expect("a last checkpoint");
    let mut ck = trainer::checkpoint::load(&last).unwrap();
    for buffer in ["bn.running_mean", "bn.running_var"] {
        for k in 0..2 {
            ck.tensors.push((trainer::checkpoint::state_name(buffer, k), Tensor::zeros(&Type::new(DType::F32, &[2]))));
        }
    }
    ck.tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let tensors: Vec<(String, &Tensor)> = ck.tensors.iter().map(|(n, t)| (n.clone(), t)).collect();
    trainer::checkpoint::save(&last, &ck.meta, &tensors).unwrap();
    assert_eq!(trainer::checkpoint::load(&last).unwrap().tensors.len(), ck.tensors.len(), "the old layout was written");
    let end = fit(&path, MODEL, &logs, &[], Some(trainer::Resume::Last));
    for ((spec, a), (_, b)) in full.params.iter().zip(&end.params) {
        assert_eq!(bits(a), bits(b), "{} differs after resuming", spec.path);
    }
}

/// `buffer(init = ones())`: the initializer by its name, as by position.
#[test]
fn a_buffer_takes_its_initializer_by_name_too() {
    let src = "use optim.sgd\n\nmodel Net {\n    w: f32[2]\n    seen: f32[1] = buffer(init = ones())\n\n\
               \x20   fn training_step(self, x: f32[B, 2], y: i32[B]) -> f32 {\n\
               \x20       assign(self, seen = self.seen + 1.0)\n        mean(x @ self.w)\n    }\n\n\
               \x20   fn configure_optimizers(self) = sgd()\n}\n\ntrainer {\n    max_epochs = 1\n}\n";
    let (diags, _) = jaxlightning::check_source("net.jl", src);
    assert!(diags.is_empty(), "{diags:?}");
    let (prog, _) = compiler::lower::load("net.jl", src);
    let sections = compiler::lower::training_sections(&prog).unwrap();
    let (x, y) = (Type::new(DType::F32, &[4, 2]), Type::new(DType::I32, &[4]));
    let progs = compiler::compile_training(&prog, sections.trainer.as_ref(), &x, &y, &Default::default())
        .unwrap_or_else(|d| panic!("{d:?}"));
    let seen = &progs.params[1];
    assert_eq!(
        (seen.path.as_str(), seen.kind, &seen.init),
        ("seen", compiler::lower::ParamKind::Buffer, &compiler::lower::Init::Ones)
    );
}
