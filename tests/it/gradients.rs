//! Gradient clipping and accumulation end to end: a tiny model trained by
//! `trainer::fit` against the same training simulated by hand in f64
//! (optax's clipping formulas, the window's mean gradient), a huge learning
//! rate that clipping keeps finite, accumulation of k batches of b against
//! one batch of k*b, and bit-exact resumes with accumulation.

use crate::checkpoints::{bits, digits, fit, rows};
use crate::examples::tempdir;
use compiler::ir::generate::Rng as SplitMix;
use std::path::{Path, PathBuf};

/// `l(x) = x @ w + b` with loss mean(l(x)^2); labels are unused.
fn tiny(lr: f64) -> String {
    format!(
        r#"
use nn.Linear
use optim.sgd
model Tiny {{
    l: Linear(2, 1)
    fn training_step(self, x: f32[B, 2], y: i32[B]) -> f32 {{
        let out = self.l(x)
        mean(out * out)
    }}
    fn configure_optimizers(self) = sgd(lr = {lr:?})
}}
data = csv("tiny.csv") {{ batch_size = 4; shuffle = false }}
trainer {{ max_epochs = 3; log_every_n_steps = 1; seed = 5 }}
"#
    )
}

const N_ROWS: usize = 12;
const SEED: u64 = 5;

/// Writes the model and 12 rows of two features (multiples of 1/8, exact in
/// f32); returns the model's path and the rows.
fn setup(name: &str, lr: f64) -> (PathBuf, Vec<[f64; 2]>) {
    let dir = tempdir(name);
    let mut rng = SplitMix(0x71a7);
    let rows: Vec<[f64; 2]> =
        (0..N_ROWS).map(|_| [(rng.below(33) as f64 - 16.0) / 8.0, (rng.below(33) as f64 - 16.0) / 8.0]).collect();
    let csv: String = rows.iter().map(|r| format!("{},{},0\n", r[0], r[1])).collect();
    std::fs::write(dir.join("tiny.csv"), csv).unwrap();
    let path = dir.join("tiny.jl");
    std::fs::write(&path, tiny(lr)).unwrap();
    (path, rows)
}

#[derive(Clone, Copy)]
enum Clip {
    Norm(f64),
    Value(f64),
}

/// The run in f64: parameters (w0, w1, b) after `epochs`, and each step's
/// gradient norm (before clipping). Batches of `bs` in the training order,
/// windows of `k` micro-batches (the epoch's last one possibly shorter),
/// each window's gradient the mean of its micro-batches' gradients.
fn simulate(
    train: &[[f64; 2]],
    p0: [f64; 3],
    bs: usize,
    k: usize,
    lr: f64,
    clip: Option<Clip>,
) -> ([f64; 3], Vec<f64>) {
    let mut p = p0;
    let mut norms = Vec::new();
    let n_batches = train.len() / bs;
    for _epoch in 0..3 {
        let mut start = 0;
        while start < n_batches {
            let end = (start + k).min(n_batches);
            let mut g = [0.0; 3];
            for mb in start..end {
                // loss = (1/bs) sum_i out_i^2, out_i = x_i . w + b: d/dw_j = (2/bs) sum_i out_i x_ij.
                for x in &train[mb * bs..(mb + 1) * bs] {
                    let out = x[0] * p[0] + x[1] * p[1] + p[2];
                    g[0] += 2.0 * out * x[0] / bs as f64;
                    g[1] += 2.0 * out * x[1] / bs as f64;
                    g[2] += 2.0 * out / bs as f64;
                }
            }
            let n = (end - start) as f64;
            g.iter_mut().for_each(|v| *v /= n);
            let norm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
            norms.push(norm);
            match clip {
                // optax.clip_by_global_norm: g < c ? g : g / n * c.
                Some(Clip::Norm(c)) if norm >= c => g.iter_mut().for_each(|v| *v = *v / norm * c),
                Some(Clip::Value(c)) => g.iter_mut().for_each(|v| *v = v.clamp(-c, c)),
                _ => {}
            }
            for (q, gv) in p.iter_mut().zip(g) {
                *q -= lr * gv;
            }
            start = end;
        }
    }
    (p, norms)
}

/// The initial parameters (w0, w1, b) and the training rows in order, as the trainer derives them.
fn initial(path: &Path, text: &str, rows: &[[f64; 2]]) -> ([f64; 3], Vec<[f64; 2]>) {
    let (prog, _) = compiler::lower::load(&path.display().to_string(), text);
    let sections = compiler::lower::training_sections(&prog).unwrap();
    let x = compiler::ir::Type::new(compiler::ir::DType::F32, &[4, 2]);
    let y = compiler::ir::Type::new(compiler::ir::DType::I32, &[4]);
    let progs = compiler::compile_training(&prog, sections.trainer.as_ref(), &x, &y, &Default::default()).unwrap();
    let init = trainer::fit::init_params(&progs.params, SEED);
    let (w, b) = (init[0].to_f64_vec(), init[1].to_f64_vec());
    // val_split = 0 still permutes (the split is seeded); shuffle = false keeps that order.
    let order = trainer::rng::Rng::derive(SEED, "split").permutation(rows.len());
    ([w[0], w[1], b[0]], order.iter().map(|&i| rows[i]).collect())
}

fn params_of(s: &trainer::FitSummary) -> [f64; 3] {
    let (w, b) = (s.params[0].1.to_f64_vec(), s.params[1].1.to_f64_vec());
    [w[0], w[1], b[0]]
}

fn close(got: f64, want: f64, rel: f64) -> bool {
    (got - want).abs() <= rel * want.abs().max(1.0)
}

/// A metrics.csv column's non-empty values.
fn column(dir: &Path, name: &str) -> Vec<f64> {
    let r = rows(dir);
    let idx = r[0].split(',').position(|c| c == name).unwrap_or_else(|| panic!("no column {name}: {}", r[0]));
    r[1..].iter().filter_map(|l| l.split(',').nth(idx).filter(|v| !v.is_empty()).map(|v| v.parse().unwrap())).collect()
}

#[test]
fn clipping_and_accumulation_match_an_f64_simulation() {
    let lr = 0.1;
    let (path, rows) = setup("grad-sim", lr);
    let text = std::fs::read_to_string(&path).unwrap();
    let (p0, train) = initial(&path, &text, &rows);
    // 12 rows in batches of 4: 3 micro-batches per epoch, so k = 2 ends each epoch with a window of one.
    for k in [1, 2] {
        // The norms without clipping pick a threshold that clips some steps and not others.
        let (_, mut free) = simulate(&train, p0, 4, k, lr, None);
        free.sort_by(f64::total_cmp);
        // Halfway between two norms: no step sits on the threshold, where f32 and f64 could disagree.
        let median = (free[free.len() / 2 - 1] + free[free.len() / 2]) / 2.0;
        for clip in [None, Some(Clip::Norm(median)), Some(Clip::Value(0.3))] {
            let mut o = vec!["trainer.log_grad_norm=true".to_string(), format!("trainer.accumulate_grad_batches={k}")];
            match clip {
                Some(Clip::Norm(c)) => o.push(format!("trainer.gradient_clip_val={c:?}")),
                Some(Clip::Value(c)) => {
                    o.push(format!("trainer.gradient_clip_val={c:?}"));
                    o.push("trainer.gradient_clip_algorithm=value".into());
                }
                None => {}
            }
            let logs = tempdir(&format!("grad-sim-run-{k}"));
            let s = fit(&path, &text, &logs, &o, None);
            let (want, norms) = simulate(&train, p0, 4, k, lr, clip);
            let what = format!("k = {k}, settings {o:?}");
            assert_eq!(s.steps, norms.len(), "{what}: optimizer steps");
            let got = params_of(&s);
            for (g, w) in got.iter().zip(&want) {
                assert!(close(*g, *w, 1e-5), "{what}: {got:?} vs the f64 simulation {want:?}");
            }
            let logged = column(&s.log_dir, "grad_norm_step");
            assert_eq!(logged.len(), norms.len(), "{what}");
            for (g, w) in logged.iter().zip(&norms) {
                assert!(close(*g, *w, 1e-5), "{what}: grad_norm {logged:?} vs {norms:?}");
            }
            if let Some(Clip::Norm(c)) = clip {
                let clipped = norms.iter().filter(|n| **n >= c).count();
                assert!(clipped > 0 && clipped < norms.len(), "{what}: {clipped} of {} steps clipped", norms.len());
            }
            let hp = std::fs::read_to_string(s.log_dir.join("hparams.yaml")).unwrap();
            assert!(hp.contains(&format!("accumulate_grad_batches: {k}")), "{hp}");
        }
    }
}

#[test]
fn a_huge_learning_rate_stays_finite_with_clipping() {
    let lr = 300.0;
    let (path, rows) = setup("grad-huge", lr);
    let text = std::fs::read_to_string(&path).unwrap();
    let logs = tempdir("grad-huge-logs");
    let opts = |overrides: Vec<String>| trainer::FitOptions { overrides, ..Default::default() };
    let root = format!("trainer.default_root_dir={}", logs.display());
    let max = "trainer.max_epochs=30".to_string();
    // Without clipping, each step multiplies the error: the loss overflows.
    let err = trainer::fit(&path, &text, &opts(vec![root.clone(), max.clone()])).unwrap_err();
    assert!(matches!(err, trainer::FitError::NonFinite(_)), "{err}");
    // With it, a step moves the parameters by at most lr * 1.0.
    let clip = "trainer.gradient_clip_val=1.0".to_string();
    let s = trainer::fit(&path, &text, &opts(vec![root, max, clip])).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.steps, 90);
    let loss = column(&s.log_dir, "train_loss_step");
    assert!(loss.iter().all(|l| l.is_finite()) && loss.len() == 90, "{loss:?}");
    let (p0, train) = initial(&path, &text, &rows);
    let mut p = p0;
    for _ in 0..10 {
        p = simulate(&train, p, 4, 1, lr, Some(Clip::Norm(1.0))).0;
    }
    let got = params_of(&s);
    for (g, w) in got.iter().zip(&p) {
        assert!(g.is_finite() && (g - w).abs() <= 1e-5 * (lr * 90.0), "{got:?} vs the f64 simulation {p:?}");
    }
}

#[test]
fn two_accumulated_batches_of_b_train_as_one_batch_of_2b() {
    let (path, text) = digits();
    let small = vec![
        "trainer.max_epochs=1".to_string(),
        "data.batch_size=32".to_string(),
        "trainer.accumulate_grad_batches=2".to_string(),
        "trainer.log_every_n_steps=1".to_string(),
    ];
    let big = vec!["trainer.max_epochs=1".to_string(), "trainer.log_every_n_steps=1".to_string()];
    let a = fit(&path, &text, &tempdir("accum-2x32"), &small, None);
    let b = fit(&path, &text, &tempdir("accum-1x64"), &big, None);
    // 1,500 training examples: 46 micro-batches of 32 in 23 windows, or 23 batches of 64.
    assert_eq!((a.steps, b.steps), (23, 23));
    for ((spec, x), (_, y)) in a.params.iter().zip(&b.params) {
        let (x, y) = (x.to_f64_vec(), y.to_f64_vec());
        let worst = x.iter().zip(&y).map(|(p, q)| (p - q).abs()).fold(0.0, f64::max);
        // Adam after 23 steps of lr 1e-2 from gradients equal to f32 rounding.
        assert!(worst < 2e-4, "{}: max |difference| {worst}", spec.path);
    }
    // The logged step loss is the window's mean: the mean over the same 64 examples.
    let (la, lb) = (column(&a.log_dir, "train_loss_step"), column(&b.log_dir, "train_loss_step"));
    assert_eq!(la.len(), lb.len());
    for (x, y) in la.iter().zip(&lb) {
        assert!(close(*x, *y, 1e-3), "train_loss_step {x} vs {y}");
    }
    let metric = |s: &trainer::FitSummary, n: &str| s.final_metrics.iter().find(|(k, _)| k == n).unwrap().1;
    assert!(close(metric(&a, "train_loss_epoch"), metric(&b, "train_loss_epoch"), 1e-3));
    assert!(close(metric(&a, "val_acc"), metric(&b, "val_acc"), 2e-2));
}

#[test]
fn resuming_with_accumulation_is_bitwise_and_only_at_window_boundaries() {
    let (path, text) = digits();
    let settings: Vec<String> =
        ["trainer.max_epochs=2", "data.batch_size=32", "trainer.accumulate_grad_batches=2"].map(String::from).into();
    let full = fit(&path, &text, &tempdir("accum-resume-full"), &settings, None);
    assert_eq!(full.steps, 46);
    let logs = tempdir("accum-resume");
    let mut resume = None;
    for stop in [5, 30] {
        let mut o = settings.clone();
        o.push(format!("trainer.max_steps={stop}"));
        let s = fit(&path, &text, &logs, &o, resume.take());
        let ck = trainer::checkpoint::load(s.last_checkpoint.as_ref().unwrap()).unwrap();
        // Window boundaries: step 5 ends micro-batch 10 of epoch 0; step 30 ends micro-batch 14 of epoch 1.
        let want = if stop == 5 { (0, 10) } else { (1, 14) };
        assert_eq!((ck.meta.epoch, ck.meta.batch, ck.meta.global_step), (want.0, want.1, stop));
        assert!(ck.meta.data_order.ends_with(",accumulate_grad_batches=2"), "{}", ck.meta.data_order);
        resume = Some(trainer::Resume::Last);
    }
    let end = fit(&path, &text, &logs, &settings, resume);
    for ((spec, a), (_, b)) in full.params.iter().zip(&end.params) {
        assert_eq!(bits(a), bits(b), "parameter {} differs after resuming", spec.path);
    }
    for ((name, a), (_, b)) in full.states.iter().zip(&end.states) {
        assert_eq!(bits(a), bits(b), "optimizer state {name} differs after resuming");
    }
    // Another k does not continue the same run.
    let mut other = settings.clone();
    other[2] = "trainer.accumulate_grad_batches=3".into();
    other.push(format!("trainer.default_root_dir={}", logs.display()));
    let opts = trainer::FitOptions { overrides: other, resume: Some(trainer::Resume::Last), ..Default::default() };
    let err = trainer::fit(&path, &text, &opts).unwrap_err().to_string();
    assert!(err.contains("cannot resume bit-exactly") && err.contains("accumulate_grad_batches=2"), "{err}");
    assert!(err.contains("(--set trainer.accumulate_grad_batches=2 to continue it)"), "{err}");
}

/// Gradients at the points where a naive rule gives NaN or the wrong
/// one-sided value, against JAX's (jax.grad / jax.jvp, printed here): `x ^
/// 0` at x = 0 (0, not NaN), `x ^ p` in p where x = 0 (0, not NaN), and
/// softplus at 0 (logistic(0) = 0.5, not 1), so binary cross-entropy's at
/// zero logits; values and gradients far out stay finite. On the JIT and
/// the interpreter.
#[test]
fn pow_and_softplus_gradients_match_jax_at_zero() {
    let script = r#"
use nn.softplus
use losses.binary_cross_entropy_with_logits

fn main() {
    let x = [0.0, 0.5]
    print(grad(fn(x) = sum(x ^ 0.0))(x))
    print(grad(fn(p) = sum([0.0, 0.5] ^ p))(2.0))
    let (v, t) = jvp(fn(p) = sum([0.0, 0.5] ^ p), (2.0,), (1.0,))
    print(v, t)
    print(grad(fn(x) = sum(x ^ 3.0))(x))
    print(grad(fn(z) = sum(softplus(z)))([-100.0, -1.0, 0.0, 1.0, 100.0]))
    print(softplus([-100.0, -1.0, 0.0, 1.0, 100.0]))
    print(grad(fn(z) = binary_cross_entropy_with_logits(z, [1.0, 0.0, 1.0]))(zeros(3)))
}
"#;
    // jax.grad(lambda p: jnp.sum(jnp.array([0., .5]) ** p))(2.0) = -0.1732868;
    // jax.grad of sum(jax.nn.softplus) = [0, 0.2689414, 0.5, 0.7310585, 1].
    let want = [
        "[0.000000, 0.000000]",
        "-0.173287",
        "0.250000 -0.173287",
        "[0.000000, 0.750000]",
        "[0.000000, 0.268941, 0.500000, 0.731059, 1.000000]",
        "[0.000000, 0.313262, 0.693147, 1.313262, 100.000000]",
        "[-0.166667, 0.166667, -0.166667]",
    ];
    for backend in [runtime::Backend::Cpu, runtime::Backend::Interpreter] {
        let lines = jaxlightning::run_script("zeros.jl", script, backend, &compiler::Options::default(), false)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(lines, want, "{backend:?}");
    }
}
