//! Gradient settings and clipping: the IR built here, run by the reference
//! interpreter in f32, against optax's formulas evaluated in f64 by hand.

use super::*;
use crate::ir::generate::Rng;
use crate::ir::{interp, DType, Func, Tensor, Type};

fn settings(src: &str) -> Result<GradSettings, Vec<Diagnostic>> {
    let (prog, _) = crate::lower::load("t.jl", src);
    let sections = crate::lower::training_sections(&prog).unwrap_or_else(|d| panic!("{d:?}"));
    grad_settings(sections.trainer.as_ref())
}

#[test]
fn settings_default_read_and_report() {
    assert_eq!(settings("trainer { max_epochs = 1 }").unwrap(), GradSettings::default());
    let s = settings(
        r#"trainer { gradient_clip_val = 0.5; gradient_clip_algorithm = "value"; accumulate_grad_batches = 4; log_grad_norm = true }"#,
    )
    .unwrap();
    assert_eq!(s.clip, Some(GradClip { val: 0.5, algorithm: ClipAlgorithm::Value }));
    assert_eq!((s.accumulate, s.log_grad_norm), (4, true));
    // Lightning: a value of 0 turns clipping off; the algorithm defaults to the norm.
    assert_eq!(settings("trainer { gradient_clip_val = 0 }").unwrap().clip, None);
    assert_eq!(settings("trainer { gradient_clip_val = 2 }").unwrap().clip.unwrap().algorithm, ClipAlgorithm::Norm);
    for (src, want) in [
        ("gradient_clip_val = -1.0", "`gradient_clip_val` must be a non-negative number"),
        (r#"gradient_clip_algorithm = "max""#, "`gradient_clip_algorithm` must be \"norm\" or \"value\""),
        ("accumulate_grad_batches = 0", "`accumulate_grad_batches` must be a positive integer"),
        ("log_grad_norm = 1", "`log_grad_norm` must be `true` or `false`"),
        ("log_lr = \"step\"", "`log_lr` must be `true` or `false`"),
    ] {
        let errs = settings(&format!("trainer {{ {src} }}")).unwrap_err();
        assert!(errs.iter().any(|d| d.message.starts_with(want)), "{src}: {errs:?}");
    }
}

/// A function of gradients (inputs) returning the transformed gradients and the norm (if logged).
fn clip_func(types: &[Type], s: &GradSettings) -> Func {
    let mut b = Builder::new("clip", types);
    let grads: Vec<ValueId> = (0..types.len()).map(|i| b.param(i)).collect();
    let mut t = transform(&mut b, &grads, s);
    t.grads.extend(t.logged_norm);
    let outs = t.grads;
    b.finish(outs)
}

fn random_grads(rng: &mut Rng, types: &[Type], scale: f64) -> Vec<Tensor> {
    types
        .iter()
        .map(|t| {
            let v: Vec<f32> = (0..t.shape.num_elements()).map(|_| rng.uniform(-scale, scale) as f32).collect();
            Tensor::f32(t.shape.dims(), v)
        })
        .collect()
}

#[test]
fn clip_by_norm_matches_optax_in_f64() {
    let types = [Type::new(DType::F32, &[3, 4]), Type::new(DType::F32, &[5]), Type::scalar(DType::F32)];
    let seed = 0xc11b;
    let mut rng = Rng(seed);
    let (mut clipped, mut kept) = (0, 0);
    for case in 0..40 {
        let c = rng.uniform(0.1, 4.0);
        let s = GradSettings {
            clip: Some(GradClip { val: c, algorithm: ClipAlgorithm::Norm }),
            log_grad_norm: true,
            log_lr: false,
            accumulate: 1,
            check_finite: true,
        };
        let func = clip_func(&types, &s);
        crate::ir::verify::assert_valid(&func, "clip test");
        let scale = rng.uniform(0.01, 2.0);
        let grads = random_grads(&mut rng, &types, scale);
        let outs = interp::run(&func, &grads);
        // optax: n = sqrt(sum of squares); g' = n < c ? g : g / n * c.
        let flat: Vec<Vec<f64>> = grads.iter().map(Tensor::to_f64_vec).collect();
        let norm: f64 = flat.iter().flatten().map(|x| x * x).sum::<f64>().sqrt();
        let got_norm = outs[3].scalar_value();
        assert!((got_norm - norm).abs() <= 1e-6 * norm, "seed {seed:#x} case {case}: norm {got_norm} vs {norm}");
        for (i, g) in flat.iter().enumerate() {
            let got = outs[i].to_f64_vec();
            if norm < c {
                // Untouched: the select passes the gradient through bitwise.
                assert_eq!(got, *g, "seed {seed:#x} case {case}: below the threshold nothing changes");
            } else {
                for (a, x) in got.iter().zip(g) {
                    let want = x / norm * c;
                    assert!((a - want).abs() <= 2e-6 * c, "seed {seed:#x} case {case}: {a} vs {want}");
                }
            }
        }
        if norm < c {
            kept += 1
        } else {
            clipped += 1
        }
    }
    assert!(clipped > 5 && kept > 5, "both branches covered: {clipped} clipped, {kept} kept");
}

#[test]
fn clip_by_value_clamps_each_element() {
    let types = [Type::new(DType::F32, &[4, 3]), Type::new(DType::F32, &[7])];
    let seed = 0x7a1;
    let mut rng = Rng(seed);
    for case in 0..10 {
        let c = rng.uniform(0.05, 1.0);
        let s = GradSettings {
            clip: Some(GradClip { val: c, algorithm: ClipAlgorithm::Value }),
            log_grad_norm: false,
            log_lr: false,
            accumulate: 1,
            check_finite: true,
        };
        let func = clip_func(&types, &s);
        assert_eq!(func.outputs.len(), 2, "no norm without log_grad_norm");
        let grads = random_grads(&mut rng, &types, 2.0);
        let outs = interp::run(&func, &grads);
        let c32 = c as f32;
        for (g, got) in grads.iter().zip(&outs) {
            let want: Vec<f32> = g.as_f32().unwrap().iter().map(|x| x.clamp(-c32, c32)).collect();
            assert_eq!(got.as_f32().unwrap(), want.as_slice(), "seed {seed:#x} case {case}");
        }
    }
    // NaN stays NaN (jnp.clip), so the trainer's non-finite check still sees it.
    let func = clip_func(
        &types[1..],
        &GradSettings { clip: Some(GradClip { val: 1.0, algorithm: ClipAlgorithm::Value }), ..Default::default() },
    );
    let mut v = vec![0.5f32; 7];
    v[3] = f32::NAN;
    let out = interp::run(&func, &[Tensor::f32(&[7], v)]);
    assert!(out[0].as_f32().unwrap()[3].is_nan());
}

/// A model whose step logs `name`, with the given trainer settings.
fn lower_tiny(log_name: &str, trainer: &str) -> Result<crate::lower::TrainPrograms, Vec<Diagnostic>> {
    let src = format!(
        r#"
use nn.Linear
use optim.sgd
model Tiny {{
    l: Linear(2, 1)
    fn training_step(self, x: f32[B, 2], y: i32[B]) -> f32 {{
        let out = self.l(x)
        log("{log_name}", mean(out))
        mean(out * out)
    }}
    fn configure_optimizers(self) = sgd(lr = 0.1)
}}
trainer {{ {trainer} }}
"#
    );
    let (prog, diags) = crate::lower::load("t.jl", &src);
    assert!(diags.is_empty(), "{diags:?}");
    let sections = crate::lower::training_sections(&prog).unwrap();
    let (x, y) = (Type::new(DType::F32, &[4, 2]), Type::new(DType::I32, &[4]));
    crate::lower::lower_training(&prog, sections.trainer.as_ref(), &x, &y)
}

#[test]
fn the_step_programs_have_the_documented_signatures() {
    // k = 1: grad_norm is the last logged value of the fused step.
    let p = lower_tiny("s", "log_grad_norm = true; gradient_clip_val = 1.0").unwrap();
    assert_eq!(p.train_logs.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["s", "grad_norm"]);
    // Outputs: 2 params, loss, s, grad_norm, then the finiteness check.
    assert_eq!(p.train_step.outputs.len(), 6);
    assert!(p.accumulation.is_none());
    // k = 3: grad_step(params, accumulators, x, y) -> (accumulators, loss, s);
    // apply_step(params, step, accumulators, n) -> (params, grad_norm, check) (sgd has no state).
    let p = lower_tiny("s", "accumulate_grad_batches = 3; log_grad_norm = true").unwrap();
    let a = p.accumulation.as_ref().unwrap();
    assert_eq!((a.k, a.grad_step.n_params, a.grad_step.outputs.len()), (3, 6, 4));
    assert_eq!((a.apply_step.n_params, a.apply_step.outputs.len()), (6, 4));
    // A logged value of the same name is an error, not a silent duplicate.
    let errs = lower_tiny("grad_norm", "log_grad_norm = true").unwrap_err();
    assert!(errs[0].message.contains("logs `grad_norm`, which `log_grad_norm = true` logs too"), "{errs:?}");
    let errs = lower_tiny("lr", "log_lr = true").unwrap_err();
    assert!(errs[0].message.contains("logs `lr`, which `log_lr = true` logs too"), "{errs:?}");
    // log_lr: one more output, after the norm, in both programs.
    let p = lower_tiny("s", "log_lr = true; log_grad_norm = true").unwrap();
    assert_eq!(p.train_logs.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["s", "grad_norm", "lr"]);
    // stop_on_nonfinite (on by default) appends the unlogged check last:
    // params, lr, check.
    let p = lower_tiny("s", "accumulate_grad_batches = 3; log_lr = true").unwrap();
    assert!(p.grad_settings.check_finite);
    assert_eq!(p.accumulation.as_ref().unwrap().apply_step.outputs.len(), 4);
    assert_eq!(p.train_step.outputs.len(), 6, "2 params, loss, s, lr, check");
    let p = lower_tiny("s", "accumulate_grad_batches = 3; log_lr = true; stop_on_nonfinite = false").unwrap();
    assert!(!p.grad_settings.check_finite);
    assert_eq!(p.accumulation.as_ref().unwrap().apply_step.outputs.len(), 3);
    assert_eq!(p.train_step.outputs.len(), 5);
}
