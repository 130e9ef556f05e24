//! The stdlib against independent oracles, in float64: the optimizers and
//! learning-rate schedules of stdlib/optim.jl against optax's own
//! trajectories (tests/data/optax/*.json, written by make_reference.py
//! there), and the losses and activations against float64 central finite
//! differences and closed forms computed here.
//!
//! Each stdlib function is called from a small file whose functions have
//! `f64` parameter types; `compiler::lower::lower_fn` lowers such a function
//! to a float64 program, which the reference interpreter runs.

use compiler::ir::{interp, DType, Func, Tensor};
use std::path::Path;

/// Lowers `name` from the source `src` (a file that may `use` stdlib modules).
fn lower(src: &str, name: &str) -> Func {
    let (prog, diags) = compiler::lower::load("t.jl", src);
    assert!(diags.is_empty(), "{diags:?}\n{src}");
    compiler::lower::lower_fn(&prog, name).unwrap_or_else(|d| {
        panic!("{}\n{src}", compiler::diagnostic::render_all(&d, &prog.sources, false));
    })
}

fn f64s(t: &Tensor) -> Vec<f64> {
    assert_eq!(t.dtype(), DType::F64, "the program must compute in float64");
    t.to_f64_vec()
}

// ---- a minimal JSON reader for the reference files (no dependency) ----

#[derive(Debug)]
enum Json {
    Null,
    Bool,
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn parse(text: &str) -> Json {
        let mut p = JsonParser { s: text.as_bytes(), i: 0 };
        let v = p.value();
        p.ws();
        assert_eq!(p.i, p.s.len(), "trailing text in JSON");
        v
    }
    fn get(&self, key: &str) -> &Json {
        match self {
            Json::Obj(items) => items.iter().find(|(k, _)| k == key).map(|(_, v)| v).unwrap_or(&Json::Null),
            _ => panic!("not an object: {self:?}"),
        }
    }
    fn arr(&self) -> &[Json] {
        match self {
            Json::Arr(a) => a,
            _ => panic!("not an array: {self:?}"),
        }
    }
    fn num(&self) -> f64 {
        match self {
            Json::Num(x) => *x,
            _ => panic!("not a number: {self:?}"),
        }
    }
    fn str(&self) -> &str {
        match self {
            Json::Str(s) => s,
            _ => panic!("not a string: {self:?}"),
        }
    }
    fn nums(&self) -> Vec<f64> {
        self.arr().iter().map(Json::num).collect()
    }
}

struct JsonParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl JsonParser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn value(&mut self) -> Json {
        self.ws();
        match self.s[self.i] {
            b'{' => {
                self.i += 1;
                let mut items = Vec::new();
                if !self.eat(b'}') {
                    loop {
                        self.ws();
                        let Json::Str(k) = self.value() else { panic!("object key at {}", self.i) };
                        assert!(self.eat(b':'), "expected ':' at {}", self.i);
                        items.push((k, self.value()));
                        if self.eat(b'}') {
                            break;
                        }
                        assert!(self.eat(b','), "expected ',' at {}", self.i);
                    }
                }
                Json::Obj(items)
            }
            b'[' => {
                self.i += 1;
                let mut items = Vec::new();
                if !self.eat(b']') {
                    loop {
                        items.push(self.value());
                        if self.eat(b']') {
                            break;
                        }
                        assert!(self.eat(b','), "expected ',' at {}", self.i);
                    }
                }
                Json::Arr(items)
            }
            b'"' => {
                self.i += 1;
                let mut out = String::new();
                while self.s[self.i] != b'"' {
                    if self.s[self.i] == b'\\' {
                        self.i += 1;
                        out.push(match self.s[self.i] {
                            b'n' => '\n',
                            b't' => '\t',
                            c => c as char,
                        });
                    } else {
                        out.push(self.s[self.i] as char);
                    }
                    self.i += 1;
                }
                self.i += 1;
                Json::Str(out)
            }
            b't' if self.s[self.i..].starts_with(b"true") => {
                self.i += 4;
                Json::Bool
            }
            b'f' if self.s[self.i..].starts_with(b"false") => {
                self.i += 5;
                Json::Bool
            }
            b'n' if self.s[self.i..].starts_with(b"null") => {
                self.i += 4;
                Json::Null
            }
            _ => {
                let start = self.i;
                while self.i < self.s.len() && matches!(self.s[self.i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.i]).unwrap();
                Json::Num(text.parse().unwrap_or_else(|_| panic!("bad number {text:?} at {start}")))
            }
        }
    }
}

fn reference(file: &str) -> Json {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/optax").join(file);
    Json::parse(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// Relative error with a floor, so that values near zero compare absolutely.
fn rel_err(got: f64, want: f64) -> f64 {
    (got - want).abs() / want.abs().max(1e-3)
}

/// `let (f, a1, ..., an) = SCHEDULE` then `f(step, a1, ..., an)`: how the
/// training step evaluates a schedule hyperparameter, spelled out.
fn schedule_call(schedule: &str, n_args: usize) -> (String, String) {
    let names: Vec<String> = (1..=n_args).map(|i| format!("a{i}")).collect();
    (format!("let (f, {}) = {schedule}", names.join(", ")), format!("f(step, {})", names.join(", ")))
}

#[test]
fn optimizers_match_optax_trajectories_in_float64() {
    let data = reference("optimizers.json");
    let shapes: Vec<Vec<usize>> =
        ["w_shape", "b_shape"].iter().map(|k| data.get(k).nums().into_iter().map(|x| x as usize).collect()).collect();
    let starts = [data.get("w0").nums(), data.get("b0").nums()];
    let grads = data.get("grads").arr();
    let cases = data.get("cases").arr();
    assert!(cases.len() >= 12, "expected the reference cases");
    let mut worst = 0.0f64;
    for case in cases {
        let name = case.get("name").str();
        let update = case.get("update").str();
        let n_states = case.get("states").num() as usize;
        let mut hyper = case.get("hyper").str().to_string();
        let mut prelude = String::new();
        if let Json::Str(schedule) = case.get("schedule") {
            let (bind, call) = schedule_call(schedule, case.get("schedule_args").num() as usize);
            prelude = bind;
            hyper = if hyper.is_empty() { format!("lr = {call}") } else { format!("{hyper}, lr = {call}") };
        }
        // One update function per parameter shape: `w` (rank 2) and `b` (rank 1).
        let mut src = String::from("use optim\n");
        for (k, shape) in shapes.iter().enumerate() {
            let ty = format!("f64[{}]", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "));
            let states: Vec<String> = (0..n_states).map(|s| format!("s{s}: {ty}")).collect();
            let state_args: Vec<String> = (0..n_states).map(|s| format!("s{s}")).collect();
            src.push_str(&format!(
                "fn upd{k}(p: {ty}, g: {ty}, {}step: f64) {{\n    {prelude}\n    {update}(p, g, {}step, {hyper})\n}}\n",
                states.iter().map(|s| format!("{s}, ")).collect::<String>(),
                state_args.iter().map(|s| format!("{s}, ")).collect::<String>(),
            ));
        }
        for (k, shape) in shapes.iter().enumerate() {
            let func = lower(&src, &format!("upd{k}"));
            let key = ["w", "b"][k];
            let mut p = Tensor::f64(shape, starts[k].clone());
            let mut states: Vec<Tensor> = (0..n_states).map(|_| Tensor::f64(shape, vec![0.0; p.len()])).collect();
            for (t, want) in case.get("trajectory").arr().iter().enumerate() {
                let mut inputs = vec![p.clone(), Tensor::f64(shape, grads[t].get(key).nums())];
                inputs.extend(states.iter().cloned());
                inputs.push(Tensor::f64(&[], vec![(t + 1) as f64]));
                let mut out = interp::run(&func, &inputs);
                assert_eq!(out.len(), 1 + n_states, "{name}: outputs");
                states = out.split_off(1);
                p = out.pop().unwrap();
                for (i, (&got, &want)) in f64s(&p).iter().zip(&want.get(key).nums()).enumerate() {
                    let e = rel_err(got, want);
                    worst = worst.max(e);
                    assert!(e <= 1e-10, "{name}: {key}[{i}] after step {}: got {got}, optax {want}\n{src}", t + 1);
                }
            }
        }
    }
    eprintln!("optimizers vs optax: worst relative error {worst:.2e}");
}

#[test]
fn schedules_match_optax_in_float64() {
    let data = reference("schedules.json");
    let cases = data.get("cases").arr();
    assert!(cases.len() >= 8, "expected the reference cases");
    for case in cases {
        let name = case.get("name").str();
        let (bind, call) = schedule_call(case.get("jl").str(), case.get("args").num() as usize);
        let src = format!("use optim\nfn s(step: f64) {{\n    {bind}\n    0.0 * step + {call}\n}}\n");
        let func = lower(&src, "s");
        for (count, want) in case.get("values").nums().into_iter().enumerate() {
            // optax's count is the number of updates before this one; our step counts from 1.
            let step = (count + 1) as f64;
            let got = f64s(&interp::run(&func, &[Tensor::f64(&[], vec![step])])[0])[0];
            assert!(rel_err(got, want) <= 1e-9, "{name} at step {step}: got {got}, optax {want}\n{src}");
        }
    }
}

/// A small trainable model whose optimizer is `OPT`: what the training step
/// compiles for each stdlib optimizer and schedule.
fn train_src(opt: &str, extra: &str) -> String {
    format!(
        "use nn.Linear
use losses.cross_entropy
use optim
{extra}
model M {{
    l: Linear(2, 3)

    fn training_step(self, x: f32[B, 2], y: i32[B]) -> f32 = cross_entropy(self.l(x), y)

    fn configure_optimizers(self) = {opt}
}}
"
    )
}

fn compile_train(src: &str) -> compiler::lower::TrainPrograms {
    let (prog, diags) = compiler::lower::load("t.jl", src);
    assert!(diags.is_empty(), "{diags:?}");
    let x = compiler::ir::Type::new(DType::F32, &[4, 2]);
    let y = compiler::ir::Type::new(DType::I32, &[4]);
    compiler::compile_training(&prog, None, &x, &y, &compiler::Options { no_opt: true, ..Default::default() })
        .unwrap_or_else(|d| panic!("{}\n{src}", compiler::diagnostic::render_all(&d, &prog.sources, false)))
}

/// Runs a train step at `step` from fixed parameters, states and batch.
fn run_train(p: &compiler::lower::TrainPrograms, step: f32) -> Vec<Tensor> {
    let mut rng = compiler::ir::generate::Rng(7);
    let mut inputs = Vec::new();
    for spec in &p.params {
        let n = spec.ty.shape.0.iter().product();
        inputs.push(Tensor::f32(&spec.ty.shape.0, (0..n).map(|_| rng.uniform(-1.0, 1.0) as f32).collect()));
    }
    for (spec, _) in p.state_specs() {
        let n = spec.ty.shape.0.iter().product();
        inputs.push(Tensor::f32(&spec.ty.shape.0, (0..n).map(|_| rng.uniform(0.0, 0.5) as f32).collect()));
    }
    inputs.push(Tensor::scalar_f32(step));
    inputs.push(Tensor::f32(&[4, 2], (0..8).map(|_| rng.uniform(-1.0, 1.0) as f32).collect()));
    inputs.push(Tensor::i32(&[4], vec![0, 2, 1, 2]));
    interp::run(&p.train_step, &inputs)
}

/// `math`'s helpers against jax.numpy's results (written out here) on a
/// matrix with inf, -inf and NaN, in f64: clip keeps NaN, isnan/isinf/
/// isfinite, argmin (NaN the smallest, first of ties), eye, tril/triu (inf in
/// the dropped triangle gives 0, not NaN), and clip's gradient (1 at the limits).
#[test]
fn math_helpers_match_jax_numpy() {
    let src = "use math.{clip, isnan, isinf, isfinite, argmin, eye, tril, triu}
fn c(x: f64[3, 3]) = clip(x, -1.0, 2.0)
fn tests(x: f64[3, 3]) = (isnan(x), isinf(x), isfinite(x))
fn mins(x: f64[3, 3]) = (argmin(x), argmin(x, axis = 0))
fn tri(x: f64[3, 3]) = (tril(x), triu(x))
fn e() = eye(3)
fn dclip(x: f64[6]) = grad(fn(v) = sum(clip(v, -1.0, 2.0)))(x)
";
    let (inf, nan) = (f64::INFINITY, f64::NAN);
    let x = Tensor::f64(&[3, 3], vec![1.0, -2.0, inf, nan, 5.0, -inf, 3.0, 3.0, -7.0]);
    // Bits, with every NaN as one (backends differ in a NaN's sign bit).
    let bits = |t: &Tensor| t.to_f64_vec().iter().map(|v| if v.is_nan() { 1 } else { v.to_bits() }).collect::<Vec<_>>();
    let want = Tensor::f64(&[3, 3], vec![1.0, -1.0, 2.0, nan, 2.0, -1.0, 2.0, 2.0, -1.0]);
    assert_eq!(bits(&interp::run(&lower(src, "c"), &[x.clone()])[0]), bits(&want));
    let b = |v: [u8; 9]| Tensor::bool(&[3, 3], v.iter().map(|&x| x == 1).collect());
    let got = interp::run(&lower(src, "tests"), &[x.clone()]);
    assert_eq!(got[0], b([0, 0, 0, 1, 0, 0, 0, 0, 0]), "isnan");
    assert_eq!(got[1], b([0, 0, 1, 0, 0, 1, 0, 0, 0]), "isinf");
    assert_eq!(got[2], b([1, 1, 0, 0, 1, 0, 1, 1, 1]), "isfinite");
    let got = interp::run(&lower(src, "mins"), &[x.clone()]);
    assert_eq!((got[0].clone(), got[1].clone()), (Tensor::i32(&[3], vec![1, 0, 2]), Tensor::i32(&[3], vec![1, 0, 1])));
    let got = interp::run(&lower(src, "tri"), &[x.clone()]);
    let lower_t = Tensor::f64(&[3, 3], vec![1.0, 0.0, 0.0, nan, 5.0, 0.0, 3.0, 3.0, -7.0]);
    let upper_t = Tensor::f64(&[3, 3], vec![1.0, -2.0, inf, 0.0, 5.0, -inf, 0.0, 0.0, -7.0]);
    assert_eq!((bits(&got[0]), bits(&got[1])), (bits(&lower_t), bits(&upper_t)));
    let eye: Vec<f64> = (0..9).map(|i| if i % 4 == 0 { 1.0 } else { 0.0 }).collect();
    assert_eq!(interp::run(&lower(src, "e"), &[])[0], Tensor::f32(&[3, 3], eye.iter().map(|&v| v as f32).collect()));
    let g = interp::run(&lower(src, "dclip"), &[Tensor::f64(&[6], vec![-2.0, -1.0, 0.0, 1.0, 2.0, 3.0])]);
    assert_eq!(f64s(&g[0]), [0.0, 1.0, 1.0, 1.0, 1.0, 0.0]);
    // The optimizer (no rule may fold `x != x`) and the CPU backend agree bitwise.
    for name in ["c", "tests", "mins", "tri"] {
        let (opt, _) = compiler::opt::optimize(&lower(src, name), &Default::default());
        let mut exe = runtime::Executable::compile(opt, runtime::Backend::Cpu).unwrap();
        let (got, want) = (exe.run(&[x.clone()]).unwrap(), interp::run(&lower(src, name), &[x.clone()]));
        assert_eq!(got.iter().map(bits).collect::<Vec<_>>(), want.iter().map(bits).collect::<Vec<_>>(), "{name}");
    }
}

/// An f64 parameter trains with Adam (the step and a schedule's value reach
/// its update in f64: `b1 ^ step` with an f32 step was a dtype error inside
/// stdlib/optim.jl), exactly Adam's f64 formula; AdamW with a schedule too.
#[test]
fn f64_parameters_train_with_adam_and_schedules() {
    let model = |opt: &str| {
        format!(
            "use optim.{{adam, adamw, cosine_decay_schedule}}
model M {{
    w: f64[3]
    fn training_step(self, x: f32[B, 2], y: i32[B]) -> f32 = f32(sum(self.w * self.w))
    fn configure_optimizers(self) = {opt}
}}
"
        )
    };
    let p = compile_train(&model("adam(lr = 0.01)"));
    let (w, m, v) = ([0.5, -1.0, 2.0], [0.1, 0.0, -0.2], [0.01, 0.02, 0.03]);
    let step = 3.0;
    let inputs = vec![
        Tensor::f64(&[3], w.to_vec()),
        Tensor::f64(&[3], m.to_vec()),
        Tensor::f64(&[3], v.to_vec()),
        Tensor::scalar_f32(step as f32),
        Tensor::f32(&[4, 2], vec![0.0; 8]),
        Tensor::i32(&[4], vec![0; 4]),
    ];
    let out = interp::run(&p.train_step, &inputs);
    let (b1, b2, lr, eps) = (0.9f64, 0.999f64, 0.01f64, 1e-8f64);
    for i in 0..3 {
        let g = 2.0 * w[i];
        let m1 = b1 * m[i] + (1.0 - b1) * g;
        let v1 = b2 * v[i] + (1.0 - b2) * g * g;
        let want = w[i] - lr * (m1 / (1.0 - b1.powf(step))) / ((v1 / (1.0 - b2.powf(step))).sqrt() + eps);
        let got = f64s(&out[0])[i];
        assert!(rel_err(got, want) <= 1e-14, "w[{i}]: got {got}, Adam in f64 {want}");
    }
    let p =
        compile_train(&model("adamw(lr = cosine_decay_schedule(0.01, 100), weight_decay = 0.1, decay_min_rank = 1)"));
    let out = interp::run(&p.train_step, &inputs);
    assert_eq!(out[0].dtype(), DType::F64);
    assert!(f64s(&out[0]).iter().zip(w).all(|(a, b)| a.is_finite() && *a != b), "{:?}", out[0]);
}

#[test]
fn every_stdlib_optimizer_compiles_into_a_training_step() {
    for (opt, states, name) in [
        ("sgd()", 0, "sgd"),
        ("sgd(lr = 0.1, momentum = 0.9)", 1, "sgd_momentum"),
        ("sgd(momentum = 0.9, nesterov = true)", 1, "sgd_momentum"),
        ("adam()", 2, "adam"),
        ("adamw(weight_decay = 0.01)", 2, "adamw"),
        ("rmsprop()", 1, "rmsprop"),
        ("adagrad(lr = 0.1)", 1, "adagrad"),
        ("adam(lr = warmup_cosine_decay_schedule(0.0, 0.01, 10, 100))", 2, "adam"),
        ("sgd(lr = cosine_onecycle_schedule(100, 0.1))", 0, "sgd"),
        ("sgd(lr = inverse_sqrt, momentum = 0.9)", 1, "sgd_momentum"),
        ("rmsprop(lr = exponential_decay(0.1, 10, 0.5, end_value = 0.01))", 1, "rmsprop"),
        ("adagrad(lr = piecewise_constant_schedule(0.1, 10, 0.5))", 1, "adagrad"),
        ("adam(lr = linear_schedule(0.0, 0.01, 10), b1 = constant_schedule(0.8))", 2, "adam"),
    ] {
        // The user-defined schedule of docs/language.md.
        let extra = "fn inverse_sqrt(step) = 0.1 * min(1.0, sqrt(100.0 / step))";
        let p = compile_train(&train_src(opt, extra));
        assert_eq!((p.param_states[0], p.optimizer.as_str()), (states, name), "{opt}");
        let out = run_train(&p, 3.0);
        assert!(out.iter().all(|t| t.to_f64_vec().iter().all(|v| v.is_finite())), "{opt}: non-finite output");
    }
}

/// A schedule given as a hyperparameter is evaluated on the step by the
/// training step: the same program as an update that calls it by hand.
#[test]
fn schedule_hyperparameters_are_evaluated_on_the_step() {
    let cases = [
        (
            "adam(lr = cosine_decay_schedule(0.1, 7, alpha = 0.2))",
            "fn by_hand_update(p, g, m, v, step) = adam_update(p, g, m, v, step, lr = cosine_decay_schedule_at(step, 0.1, 7, 0.2, 1.0))",
        ),
        (
            "adam(lr = my_lr, b1 = my_b1)",
            "fn my_lr(step) = 0.01 / step\nfn my_b1(step) = 0.9 - 0.01 * step\nfn by_hand_update(p, g, m, v, step) = adam_update(p, g, m, v, step, lr = 0.01 / step, b1 = 0.9 - 0.01 * step)",
        ),
    ];
    for (opt, by_hand) in cases {
        let scheduled = compile_train(&train_src(opt, by_hand));
        let manual = compile_train(&train_src("optimizer(by_hand_update)", by_hand));
        for step in [1.0, 2.0, 5.0, 9.0] {
            let (a, b) = (run_train(&scheduled, step), run_train(&manual, step));
            assert_eq!(a, b, "{opt} at step {step}");
        }
        // And the schedule does change the update (step 1 vs step 5 differ).
        assert_ne!(run_train(&scheduled, 1.0)[0], run_train(&scheduled, 5.0)[0], "{opt}");
    }
}

// ---- losses and activations ----

fn random(rng: &mut compiler::ir::generate::Rng, dims: &[usize], lo: f64, hi: f64) -> Tensor {
    let n = dims.iter().product();
    Tensor::f64(dims, (0..n).map(|_| rng.uniform(lo, hi)).collect())
}

/// Rows of probabilities (each sums to 1, some entries exactly 0).
fn probabilities(rng: &mut compiler::ir::generate::Rng, rows: usize, cols: usize) -> Tensor {
    let mut v = Vec::new();
    for r in 0..rows {
        let row: Vec<f64> = (0..cols).map(|c| if (r + c) % 5 == 3 { 0.0 } else { rng.uniform(0.1, 1.0) }).collect();
        let s: f64 = row.iter().sum();
        v.extend(row.iter().map(|x| x / s));
    }
    Tensor::f64(&[rows, cols], v)
}

/// Checks the reverse-mode gradient of `f` (a float64 scalar function in
/// `src`) with respect to the inputs `wrt` against float64 central finite
/// differences at `inputs`.
fn grad_check(what: &str, src: &str, inputs: &[Tensor], wrt: &[usize]) {
    // Widened: a float32 program (the stdlib's f32-typed functions) is checked in float64 too.
    grad_check_func(&format!("{what}\n{src}"), &lower(src, "f").widened_to_f64(), inputs, wrt);
}

/// `grad_check` of a lowered float64 program whose output 0 is a scalar.
fn grad_check_func(what: &str, func: &Func, inputs: &[Tensor], wrt: &[usize]) {
    let grad = compiler::autodiff::grad(func, wrt);
    let out = interp::run(&grad, inputs);
    let value = |inputs: &[Tensor]| f64s(&interp::run(func, inputs)[0])[0];
    for (k, &i) in wrt.iter().enumerate() {
        let ad = f64s(&out[1 + k]);
        let x = f64s(&inputs[i]);
        for j in 0..x.len() {
            let h = 1e-6 * x[j].abs().max(1.0);
            let at = |d: f64| {
                let mut moved = inputs.to_vec();
                let mut v = x.clone();
                v[j] += d;
                moved[i] = Tensor::f64(&inputs[i].ty().shape.0, v);
                value(&moved)
            };
            let fd = (at(h) - at(-h)) / (2.0 * h);
            assert!(
                (ad[j] - fd).abs() <= 1e-6 * fd.abs().max(1.0),
                "{what}: d/d(input {i})[{j}] = {} by autodiff, {fd} by finite differences",
                ad[j]
            );
        }
    }
}

#[test]
fn activation_gradients_match_finite_differences() {
    let mut rng = compiler::ir::generate::Rng(11);
    for act in [
        "relu(x)",
        "tanh(x)",
        "leaky_relu(x, negative_slope = 0.1)",
        "elu(x, alpha = 1.5)",
        "softplus(x)",
        "silu(x)",
        "gelu(x)",
        "gelu(x, approximate = false)",
        "sigmoid(x)",
        "softmax(x)",
        "log_softmax(x)",
        "logsumexp(x)",
        "dropout(x, random_key(3), rate = 0.3)",
    ] {
        let src = format!("use nn\nfn f(x: f64[3, 4], w: f64[3, 4]) -> f64 = sum(w * {act})\n");
        let inputs = [random(&mut rng, &[3, 4], -3.0, 3.0), random(&mut rng, &[3, 4], -1.0, 1.0)];
        grad_check(act, &src, &inputs, &[0]);
    }
    // layer_norm, with respect to its input, scale and bias.
    let src = "use nn\nfn f(x: f64[3, 4], s: f64[4], b: f64[4], w: f64[3, 4]) -> f64 = sum(w * layer_norm(x, s, b))\n";
    let inputs = [
        random(&mut rng, &[3, 4], -2.0, 2.0),
        random(&mut rng, &[4], 0.5, 1.5),
        random(&mut rng, &[4], -0.5, 0.5),
        random(&mut rng, &[3, 4], -1.0, 1.0),
    ];
    grad_check("layer_norm", src, &inputs, &[0, 1, 2]);
}

#[test]
fn loss_gradients_match_finite_differences() {
    let mut rng = compiler::ir::generate::Rng(12);
    for (loss, target) in [
        ("mse(x, t)", "any"),
        ("l1_loss(x, t)", "any"),
        ("huber_loss(x, t, delta = 0.5)", "any"),
        ("binary_cross_entropy_with_logits(x, t)", "unit"),
        ("softmax_cross_entropy(x, t)", "probs"),
        ("kl_divergence(log_softmax(x), t)", "probs"),
    ] {
        let src = format!("use nn\nuse losses\nfn f(x: f64[3, 4], t: f64[3, 4]) -> f64 = {loss}\n");
        let t = match target {
            "any" => random(&mut rng, &[3, 4], -2.0, 2.0),
            "unit" => random(&mut rng, &[3, 4], 0.0, 1.0),
            _ => probabilities(&mut rng, 3, 4),
        };
        let inputs = [random(&mut rng, &[3, 4], -3.0, 3.0), t];
        // The targets too, where the loss is smooth in them.
        let wrt: &[usize] = if target == "probs" && loss.starts_with("kl") { &[0] } else { &[0, 1] };
        grad_check(loss, &src, &inputs, wrt);
    }
    // The integer-label losses (declared on f32 logits; the program is
    // widened to float64), with respect to the logits.
    for loss in ["cross_entropy(x, y)", "nll_loss(log_softmax(x), y)"] {
        let src = format!("use nn\nuse losses\nfn f(x: f32[3, 4], y: i32[3]) -> f32 = {loss}\n");
        let inputs = [random(&mut rng, &[3, 4], -3.0, 3.0), Tensor::i32(&[3], vec![2, 0, 3])];
        grad_check(loss, &src, &inputs, &[0]);
    }
}

/// Each activation's values against its formula evaluated here, including
/// inputs large enough to overflow a naive form.
#[test]
fn activation_values_match_their_formulas() {
    let x = [-1000.0, -30.0, -2.5, -1.0, -1e-3, 0.0, 1e-3, 0.7, 1.0, 3.0, 30.0, 1000.0];
    let erf = <f64 as interp::Erf>::erf;
    let sigmoid = |v: f64| if v >= 0.0 { 1.0 / (1.0 + (-v).exp()) } else { v.exp() / (1.0 + v.exp()) };
    let softplus = |v: f64| {
        if v.abs() < 30.0 {
            (1.0 + v.exp()).ln()
        } else if v > 0.0 {
            v + (-v).exp()
        } else {
            v.exp()
        }
    };
    let cases: [(&str, Box<dyn Fn(f64) -> f64>); 8] = [
        ("leaky_relu(x)", Box::new(|v| if v >= 0.0 { v } else { 0.01 * v })),
        ("elu(x, alpha = 2.0)", Box::new(|v| if v > 0.0 { v } else { 2.0 * (v.exp() - 1.0) })),
        ("softplus(x)", Box::new(softplus)),
        ("silu(x)", Box::new(move |v| v * sigmoid(v))),
        (
            "gelu(x)",
            Box::new(|v: f64| {
                0.5 * v * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v.powi(3))).tanh())
            }),
        ),
        ("gelu(x, approximate = false)", Box::new(move |v| 0.5 * v * (1.0 + erf(v / std::f64::consts::SQRT_2)))),
        ("relu(x)", Box::new(|v: f64| v.max(0.0))),
        ("sigmoid(x)", Box::new(sigmoid)),
    ];
    for (act, want) in cases {
        let func = lower(&format!("use nn\nfn f(x: f64[{}]) = {act}\n", x.len()), "f");
        let got = f64s(&interp::run(&func, &[Tensor::f64(&[x.len()], x.to_vec())])[0]);
        for (&v, &g) in x.iter().zip(&got) {
            let w = want(v);
            assert!(
                (g - w).abs() <= 1e-12 * w.abs().max(1e-300) || (g - w).abs() <= 1e-300,
                "{act} at {v}: {g}, want {w}"
            );
        }
    }
}

/// Each loss's value against its formula evaluated here.
#[test]
fn loss_values_match_their_formulas() {
    let mut rng = compiler::ir::generate::Rng(13);
    let x = random(&mut rng, &[3, 4], -4.0, 4.0);
    let any = random(&mut rng, &[3, 4], -4.0, 4.0);
    let unit = random(&mut rng, &[3, 4], 0.0, 1.0);
    let probs = probabilities(&mut rng, 3, 4);
    let xv = f64s(&x);
    let mean = |f: &dyn Fn(usize) -> f64, n: usize| (0..n).map(f).sum::<f64>() / n as f64;
    let log_softmax = |r: usize, c: usize| {
        let row = &xv[4 * r..4 * r + 4];
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        row[c] - m - row.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
    };
    let (a, u, p) = (f64s(&any), f64s(&unit), f64s(&probs));
    let huber = |e: f64| if e.abs() <= 0.5 { 0.5 * e * e } else { 0.5 * (e.abs() - 0.25) };
    let cases: [(&str, &Tensor, f64); 5] = [
        ("l1_loss(x, t)", &any, mean(&|i| (xv[i] - a[i]).abs(), 12)),
        ("huber_loss(x, t, delta = 0.5)", &any, mean(&|i| huber(xv[i] - a[i]), 12)),
        (
            "binary_cross_entropy_with_logits(x, t)",
            &unit,
            mean(
                &|i| -u[i] * (1.0 / (1.0 + (-xv[i]).exp())).ln() - (1.0 - u[i]) * (1.0 / (1.0 + xv[i].exp())).ln(),
                12,
            ),
        ),
        (
            "softmax_cross_entropy(x, t)",
            &probs,
            mean(&|r| -(0..4).map(|c| p[4 * r + c] * log_softmax(r, c)).sum::<f64>(), 3),
        ),
        (
            "kl_divergence(log_softmax(x), t)",
            &probs,
            mean(
                &|r| {
                    (0..4)
                        .map(|c| {
                            let q = p[4 * r + c];
                            if q > 0.0 {
                                q * (q.ln() - log_softmax(r, c))
                            } else {
                                0.0
                            }
                        })
                        .sum::<f64>()
                },
                3,
            ),
        ),
    ];
    for (loss, t, want) in cases {
        let func = lower(&format!("use nn\nuse losses\nfn f(x: f64[3, 4], t: f64[3, 4]) = {loss}\n"), "f");
        let got = f64s(&interp::run(&func, &[x.clone(), t.clone()])[0])[0];
        assert!((got - want).abs() <= 1e-12 * want.abs().max(1.0), "{loss}: {got}, want {want}");
    }
    // Stable for logits far beyond exp's range: the loss is |x| where the label disagrees.
    let func = lower("use losses\nfn f(x: f64[2], t: f64[2]) = binary_cross_entropy_with_logits(x, t)\n", "f");
    let got =
        f64s(&interp::run(&func, &[Tensor::f64(&[2], vec![1000.0, -800.0]), Tensor::f64(&[2], vec![0.0, 1.0])])[0]);
    assert_eq!(got, vec![900.0]);
}

/// log_softmax is log(1/4) for four equal logits of any size: `x -
/// logsumexp(x)` had rounded the logsumexp at the logits' magnitude
/// (-1.386719 at 1e4, 0 at -1e30); and causal attention masks with -inf, so
/// scores of -7e9 (below the old -1e9 mask) still see no later position.
#[test]
fn log_softmax_holds_for_large_logits_and_the_causal_mask_for_huge_scores() {
    let src = "use nn.{log_softmax, causal_self_attention}
use losses.cross_entropy
fn lsm(x: f32[4, 4]) = log_softmax(x)
fn ce(x: f32[4, 4], y: i32[4]) = cross_entropy(x, y)
fn att(x: f32[1, 2, 2], w: f32[2, 6], wo: f32[2, 2]) = causal_self_attention(x, w, zeros(6), wo, zeros(2), 1)
";
    let rows = [1e4f32, -1e30, 300.0, 1e38];
    let x = Tensor::f32(&[4, 4], rows.iter().flat_map(|v| [*v; 4]).collect());
    let quarter = (0.25f64).ln() as f32;
    let got = interp::run(&lower(src, "lsm"), &[x.clone()]);
    assert_eq!(got[0].as_f32().unwrap(), &[quarter; 16][..]);
    let ce = interp::run(&lower(src, "ce"), &[x, Tensor::i32(&[4], vec![0, 1, 2, 3])]);
    assert_eq!(ce[0].as_f32().unwrap(), &[-quarter][..]);
    // One head, d = 2: q = x[:, 0], k = -x[:, 0], v = x[:, 1]: every score is -1e10 / sqrt(2).
    let x = Tensor::f32(&[1, 2, 2], vec![1e5, 1.0, 1e5, 2.0]);
    let w = Tensor::f32(&[2, 6], vec![1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
    let wo = Tensor::f32(&[2, 2], vec![0.0, 0.0, 1.0, 0.0]);
    let out = interp::run(&lower(src, "att"), &[x, w, wo]);
    // Position 0 sees itself only (v = 1); position 1 both equally (1.5).
    assert_eq!(out[0].as_f32().unwrap(), &[1.0, 0.0, 1.5, 0.0][..]);
}

/// nll_loss and top_k_accuracy take integer labels (f32 programs): their
/// values and nll's gradient, -one_hot(labels) / B, are exact.
#[test]
fn nll_loss_and_top_k_accuracy() {
    let src = "use losses.nll_loss
use metrics.{accuracy, top_k_accuracy}
fn nll(lp: f32[4, 5], y: i32[4]) -> f32 = nll_loss(lp, y)
fn top3(logits: f32[4, 5], y: i32[4]) = top_k_accuracy(logits, y, 3)
fn top2(logits: f32[4, 5], y: i32[4]) = top_k_accuracy(logits, y, 2)
fn top1(logits: f32[4, 5], y: i32[4]) = top_k_accuracy(logits, y, 1)
fn acc(logits: f32[4, 5], y: i32[4]) = accuracy(logits, y)
";
    let logits: Vec<f32> = vec![
        0.1, 0.5, 0.3, 0.2, 0.4, // label 1: the largest -> top1, top2
        0.9, 0.5, 0.3, 0.8, 0.0, // label 3's logit 0.8 is second -> top2, top3
        0.0, 0.0, 0.0, 0.0, 0.0, // all tied, label 2: ranked third, by index as argmax -> top3 only
        0.1, 0.2, 0.3, 0.4, 0.5, // label 0: the smallest -> miss
    ];
    let y = Tensor::i32(&[4], vec![1, 3, 2, 0]);
    let lt = Tensor::f32(&[4, 5], logits.clone());
    let run = |name: &str| interp::run(&lower(src, name), &[lt.clone(), y.clone()])[0].to_f64_vec()[0];
    assert_eq!(run("top1"), 0.25);
    assert_eq!(run("acc"), 0.25, "accuracy is top-1: argmax == label");
    assert_eq!(run("top2"), 0.5);
    assert_eq!(run("top3"), 0.75);
    let nll = lower(src, "nll");
    let want = -(0.5f32 + 0.8 + 0.0 + 0.1) / 4.0;
    assert_eq!(run("nll") as f32, want);
    let g = interp::run(&compiler::autodiff::grad(&nll, &[0]), &[lt.clone(), y.clone()]);
    let labels = [1, 3, 2, 0];
    let want_g: Vec<f32> = (0..20).map(|i| if labels[i / 5] == i % 5 { -0.25 } else { 0.0 }).collect();
    assert_eq!(g[1].as_f32().unwrap(), &want_g[..]);
}

#[test]
fn layer_norm_model_trains() {
    let src = "use nn.{Linear, LayerNorm, gelu}
use losses.cross_entropy
use optim.adamw

model M {
    l: Linear(2, 8)
    norm: LayerNorm(8)
    head: Linear(8, 3)

    fn training_step(self, x: f32[B, 2], y: i32[B]) -> f32 = cross_entropy(self.head(gelu(self.norm(self.l(x)))), y)

    fn configure_optimizers(self) = adamw(lr = 0.01, weight_decay = 0.1)
}
";
    let p = compile_train(src);
    let paths: Vec<&str> = p.params.iter().map(|s| s.path.as_str()).collect();
    assert!(paths.contains(&"norm.scale") && paths.contains(&"norm.bias"), "{paths:?}");
    let scale = p.params.iter().find(|s| s.path == "norm.scale").unwrap();
    assert_eq!(scale.init, compiler::lower::Init::Ones);
    let out = run_train(&p, 1.0);
    assert!(out.iter().all(|t| t.to_f64_vec().iter().all(|v| v.is_finite())));
}

// ---- attention ----

/// Multi-head self-attention computed naively here in f64 (loops over
/// batch, head, query and key; `causal`: keys up to the query only), the
/// oracle for `nn.multi_head_attention` and `nn.causal_self_attention`.
#[allow(clippy::too_many_arguments)]
fn naive_attention(
    x: &[f64],
    wq: &[f64],
    bq: &[f64],
    wo: &[f64],
    bo: &[f64],
    b: usize,
    t: usize,
    d: usize,
    h: usize,
    causal: bool,
) -> Vec<f64> {
    let hd = d / h;
    // qkv[b, t, j] = sum_i x[b, t, i] wq[i, j] + bq[j]
    let mut qkv = vec![0.0; b * t * 3 * d];
    for r in 0..b * t {
        for j in 0..3 * d {
            qkv[r * 3 * d + j] = bq[j] + (0..d).map(|i| x[r * d + i] * wq[i * 3 * d + j]).sum::<f64>();
        }
    }
    // (q, k, v) blocks of d columns, heads of hd columns within each.
    let at = |bb: usize, tt: usize, which: usize, head: usize, c: usize| {
        qkv[(bb * t + tt) * 3 * d + which * d + head * hd + c]
    };
    let mut merged = vec![0.0; b * t * d];
    for bb in 0..b {
        for head in 0..h {
            for i in 0..t {
                let keys = if causal { i + 1 } else { t };
                let scores: Vec<f64> = (0..keys)
                    .map(|j| {
                        (0..hd).map(|c| at(bb, i, 0, head, c) * at(bb, j, 1, head, c)).sum::<f64>() / (hd as f64).sqrt()
                    })
                    .collect();
                let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for c in 0..hd {
                    merged[(bb * t + i) * d + head * hd + c] =
                        (0..keys).map(|j| e[j] / z * at(bb, j, 2, head, c)).sum();
                }
            }
        }
    }
    let mut out = vec![0.0; b * t * d];
    for r in 0..b * t {
        for j in 0..d {
            out[r * d + j] = bo[j] + (0..d).map(|i| merged[r * d + i] * wo[i * d + j]).sum::<f64>();
        }
    }
    out
}

#[test]
fn attention_matches_a_naive_implementation_and_finite_differences() {
    let (b, t, d, h) = (2, 5, 8, 2);
    let mut rng = compiler::ir::generate::Rng(31);
    let inputs = [
        random(&mut rng, &[b, t, d], -1.0, 1.0),
        random(&mut rng, &[d, 3 * d], -0.5, 0.5),
        random(&mut rng, &[3 * d], -0.2, 0.2),
        random(&mut rng, &[d, d], -0.5, 0.5),
        random(&mut rng, &[d], -0.2, 0.2),
        random(&mut rng, &[b, t, d], -1.0, 1.0),
    ];
    let sig =
        format!("x: f64[{b}, {t}, {d}], wq: f64[{d}, {}], bq: f64[{}], wo: f64[{d}, {d}], bo: f64[{d}]", 3 * d, 3 * d);
    let v: Vec<Vec<f64>> = inputs.iter().map(f64s).collect();
    for (call, causal) in [
        (format!("causal_self_attention(x, wq, bq, wo, bo, {h})"), true),
        (format!("multi_head_attention(x, wq, bq, wo, bo, {h})"), false),
        (format!("multi_head_attention(x, wq, bq, wo, bo, {h}, causal = true)"), true),
    ] {
        let src = format!("use nn\nfn att({sig}) = {call}\n");
        let got = f64s(&interp::run(&lower(&src, "att"), &inputs[..5])[0]);
        let want = naive_attention(&v[0], &v[1], &v[2], &v[3], &v[4], b, t, d, h, causal);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() <= 1e-12 * w.abs().max(1.0), "{call}: element {i}: {g} vs {w}");
        }
        // Gradients with respect to the input and every weight, through a weighted sum.
        let src = format!("use nn\nfn f({sig}, c: f64[{b}, {t}, {d}]) -> f64 = sum(c * {call})\n");
        grad_check(&call, &src, &inputs, &[0, 1, 2, 3, 4]);
    }
}

/// PyTorch's definition of `conv_transpose2d` in float64, as a scatter: input
/// pixel `(i, j)` of channel `c` adds `x * w[c, o, ki, kj]` to output pixel
/// `(i s - p + ki d, j s - p + kj d)` of each channel `o` of its group.
fn naive_conv_transpose(x: &Tensor, w: &Tensor, geo: [usize; 5], out: &[usize]) -> Vec<f64> {
    let [stride, pad, _, dil, groups] = geo;
    let (xd, wd) = (x.ty().shape.0.clone(), w.ty().shape.0.clone());
    let (xv, wv) = (f64s(x), f64s(w));
    let (n, c, h, wi) = (xd[0], xd[1], xd[2], xd[3]);
    let (cg, og, kh, kw) = (c / groups, wd[1], wd[2], wd[3]);
    let (o, oh, ow) = (out[1], out[2], out[3]);
    let mut y = vec![0.0; n * o * oh * ow];
    for (b, ci, i, j) in
        (0..n).flat_map(|b| (0..c).flat_map(move |ci| (0..h).flat_map(move |i| (0..wi).map(move |j| (b, ci, i, j)))))
    {
        let v = xv[((b * c + ci) * h + i) * wi + j];
        let g = ci / cg;
        for (oc, ki, kj) in (0..og).flat_map(|oc| (0..kh).flat_map(move |ki| (0..kw).map(move |kj| (oc, ki, kj)))) {
            let (r, q) = ((i * stride + ki * dil) as i64 - pad as i64, (j * stride + kj * dil) as i64 - pad as i64);
            if r < 0 || q < 0 || r >= oh as i64 || q >= ow as i64 {
                continue;
            }
            let at = ((b * o + g * og + oc) * oh + r as usize) * ow + q as usize;
            y[at] += v * wv[((ci * og + oc) * kh + ki) * kw + kj];
        }
    }
    y
}

/// `conv_transpose2d` against PyTorch's definition (values) and float64
/// finite differences (gradients w.r.t. input and kernel), over strides,
/// paddings (including one larger than the dilated kernel, which the
/// lowering handles by slicing), output paddings, dilations and groups.
#[test]
fn conv_transpose2d_matches_its_definition_and_finite_differences() {
    let mut rng = compiler::ir::generate::Rng(21);
    // [n, c, h, w, o, k], [stride, padding, output_padding, dilation, groups]
    let cases: [([usize; 6], [usize; 5]); 7] = [
        ([2, 3, 4, 5, 2, 3], [1, 0, 0, 1, 1]),
        ([1, 2, 3, 3, 3, 2], [2, 0, 0, 1, 1]),
        ([1, 2, 3, 2, 2, 3], [2, 1, 1, 1, 1]),
        ([1, 4, 3, 3, 6, 3], [3, 1, 2, 1, 2]),
        ([2, 2, 4, 3, 2, 3], [1, 2, 1, 2, 1]),
        ([1, 2, 5, 4, 2, 2], [2, 2, 0, 1, 1]),
        ([1, 1, 1, 1, 1, 1], [1, 0, 0, 1, 1]),
    ];
    for ([n, c, h, w, o, k], geo) in cases {
        let [stride, pad, out_pad, dil, groups] = geo;
        let size = |s: usize| (s - 1) * stride + (k - 1) * dil + out_pad + 1 - 2 * pad;
        let out = [n, o, size(h), size(w)];
        let call = format!(
            "conv_transpose2d(x, k, stride = {stride}, padding = {pad}, output_padding = {out_pad}, dilation = {dil}, groups = {groups})"
        );
        let sig = format!("x: f64[{n}, {c}, {h}, {w}], k: f64[{c}, {}, {k}, {k}]", o / groups);
        let x = random(&mut rng, &[n, c, h, w], -1.0, 1.0);
        let kernel = random(&mut rng, &[c, o / groups, k, k], -1.0, 1.0);
        let func = lower(&format!("fn f({sig}) = {call}\n"), "f");
        let got = interp::run(&func, &[x.clone(), kernel.clone()]);
        assert_eq!(got[0].ty().shape.0, out, "{call}");
        let want = naive_conv_transpose(&x, &kernel, geo, &out);
        for (g, w) in f64s(&got[0]).iter().zip(&want) {
            assert!((g - w).abs() <= 1e-12 * (1.0 + w.abs()), "{call}: {g} vs {w}");
        }
        let weights = random(&mut rng, &out, -1.0, 1.0);
        let src =
            format!("fn f({sig}, c: f64[{}, {}, {}, {}]) -> f64 = sum(c * {call})\n", out[0], out[1], out[2], out[3]);
        grad_check(&call, &src, &[x, kernel, weights], &[0, 1]);
    }
}

/// The layer models (pooling, transposed conv, dropout, MLP, attention) in one network that
/// must learn a position-coded label, trained by the trainer from an NPZ file.
#[test]
fn pooling_dropout_mlp_and_attention_layers_train_together() {
    use trainer::data::{npy, npz, Values};
    let dir = crate::examples::tempdir("layers");
    let n = 512;
    let mut rng = compiler::ir::generate::Rng(5);
    let y: Vec<i32> = (0..n).map(|_| (rng.next_u64() % 10) as i32).collect();
    let mut x = vec![0f32; n * 64];
    for (e, &label) in y.iter().enumerate() {
        for v in &mut x[e * 64..(e + 1) * 64] {
            *v = ((rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.6;
        }
        // A bright pixel whose place is the label.
        x[e * 64 + (label as usize % 8) * 8 + label as usize / 8 + 2] += 2.0;
    }
    let members = vec![("x", npy::write(&[n, 1, 8, 8], &Values::F32(x))), ("y", npy::write(&[n], &Values::I32(y)))];
    std::fs::write(dir.join("l.npz"), npz::write(&members, true)).unwrap();
    let text = "use nn.{Conv2d, ConvTranspose2d, MaxPool2d, AvgPool2d, Dropout, Mlp, MultiHeadAttention}
use losses.cross_entropy
use metrics.accuracy
use optim.adam

model Net {
    conv: Conv2d(1, 4, 3, padding = 1)
    pool: MaxPool2d(2)
    up: ConvTranspose2d(4, 4, 2, stride = 2)
    avg: AvgPool2d(2, stride = 1)
    drop: Dropout(0.1)
    att: MultiHeadAttention(4, 2)
    mlp: Mlp(36, 32, 10)

    fn features(self, x) {
        let h = self.avg(self.pool(self.up(self.pool(self.conv(x)))))
        let seq = transpose(reshape(h, (-1, 4, 9)), (0, 2, 1))
        reshape(self.att(seq), (-1, 36))
    }

    fn training_step(self, x: f32[B, 1, 8, 8], y: i32[B], key) -> f32 = cross_entropy(self.mlp(self.drop(self.features(x), key)), y)

    fn validation_step(self, x: f32[B, 1, 8, 8], y: i32[B]) {
        log(\"val_acc\", accuracy(self.mlp(self.features(x)), y))
    }

    fn configure_optimizers(self) = adam(lr = 1e-2)
}

data = npz(\"l.npz\") {
    batch_size = 32
    val_split = 128
}

trainer {
    max_epochs = 20
}
";
    let s = crate::checkpoints::fit(&dir.join("layers.jl"), text, &dir, &[], None);
    let acc = s.final_metrics.iter().find(|(k, _)| k == "val_acc").unwrap().1;
    // Chance is 0.1.
    assert!(acc >= 0.5, "val_acc = {acc}");
}

#[test]
fn a_transformer_block_stack_learns_a_periodic_sequence() {
    // Tokens repeat with period 4 (0 1 2 3 0 1 ...): after the first position
    // the next token is determined, and a small causal transformer learns it.
    let src = "use nn.{Embedding, LayerNorm, Linear, TransformerBlock}
use losses.cross_entropy
use metrics.accuracy
use optim.adam

model Tiny(seq: int = 8) {
    emb: Embedding(4, 16, std = 0.1)
    pos: f32[seq, 16] = normal(0.1)
    blocks: [TransformerBlock(16, 2, 32); 2]
    head: Linear(16, 4)

    fn training_step(self, tokens: i32[B, seq], targets: i32[B, seq]) -> f32 {
        let x = self.emb(tokens) + self.pos
        for i in 0..2 {
            x = self.blocks[i](x)
        }
        let logits = self.head(reshape(x, (-1, 16)))
        log(\"acc\", accuracy(logits, reshape(targets, (-1,))))
        cross_entropy(logits, reshape(targets, (-1,)))
    }

    fn configure_optimizers(self) = adam(lr = 0.01)
}
";
    let (prog, diags) = compiler::lower::load("t.jl", src);
    assert!(diags.is_empty(), "{}", compiler::diagnostic::render_all(&diags, &prog.sources, false));
    let (bs, seq) = (4, 8);
    let x_ty = compiler::ir::Type::new(DType::I32, &[bs, seq]);
    let progs = compiler::compile_training(&prog, None, &x_ty, &x_ty, &compiler::Options::default())
        .unwrap_or_else(|d| panic!("{}", compiler::diagnostic::render_all(&d, &prog.sources, false)));
    let mut exe = runtime::Executable::compile(progs.train_step.clone(), runtime::Backend::Cpu).unwrap();
    let n = progs.params.len();
    let mut params = trainer::fit::init_params(&progs.params, 0);
    let mut states: Vec<Tensor> = progs.state_specs().map(|(p, _)| Tensor::zeros(&p.ty)).collect();
    // Each row starts at a different phase.
    let tokens: Vec<i32> = (0..bs * (seq + 1)).map(|i| ((i / (seq + 1) + i % (seq + 1)) % 4) as i32).collect();
    let x: Vec<i32> = (0..bs).flat_map(|r| tokens[r * (seq + 1)..r * (seq + 1) + seq].to_vec()).collect();
    let y: Vec<i32> = (0..bs).flat_map(|r| tokens[r * (seq + 1) + 1..(r + 1) * (seq + 1)].to_vec()).collect();
    let (mut first, mut last) = (None, (0.0, 0.0));
    for step in 1..=60 {
        let mut inputs = std::mem::take(&mut params);
        inputs.append(&mut states);
        inputs.push(Tensor::scalar_f32(step as f32));
        inputs.push(Tensor::i32(&[bs, seq], x.clone()));
        inputs.push(Tensor::i32(&[bs, seq], y.clone()));
        let mut outs = exe.run(&inputs).unwrap().into_iter();
        params = outs.by_ref().take(n).collect();
        states = outs.by_ref().take(progs.n_states()).collect();
        let loss = outs.next().unwrap().scalar_value();
        let acc = outs.next().unwrap().scalar_value();
        first.get_or_insert(loss);
        last = (loss, acc);
    }
    let first = first.unwrap();
    // ln(4) = 1.386 at chance; the sequence is deterministic, so the loss falls far below.
    assert!(first > 1.0 && last.0 < 0.2 * first, "loss {first} -> {}", last.0);
    assert_eq!(last.1, 1.0, "every next token predicted after 60 steps (loss {})", last.0);
}

#[test]
fn dropout_zeroes_the_rate_and_scales_the_rest() {
    let src = "use nn\nfn f(x: f64[100, 100]) = dropout(x, random_key(5), rate = 0.3)\n";
    let func = lower(src, "f");
    let out = f64s(&interp::run(&func, &[Tensor::f64(&[100, 100], vec![2.0; 10_000])])[0]);
    let zeros = out.iter().filter(|v| **v == 0.0).count();
    assert!(out.iter().all(|v| *v == 0.0 || (*v - 2.0 / 0.7).abs() < 1e-6), "only 0 and x / (1 - rate)");
    // Binomial(10000, 0.3): sd 46, so +-200 is over 4 sd.
    assert!((2800..=3200).contains(&zeros), "{zeros} zeros of 10000 at rate 0.3");
    // rate = 1.0: zeros and zero gradients (PyTorch's; the gradient was NaN, 0 / 0).
    let src = "use nn\nfn f(x: f64[4]) = dropout(x, random_key(5), rate = 1.0)\n\
               fn g(x: f64[4]) = grad(fn(x) = sum(f(x) * x))(x)\n";
    let x = Tensor::f64(&[4], vec![-2.0, 0.5, 1.0, 3.0]);
    assert_eq!(f64s(&interp::run(&lower(src, "f"), &[x.clone()])[0]), [0.0; 4]);
    assert_eq!(f64s(&interp::run(&lower(src, "g"), &[x])[0]), [0.0; 4]);
}

/// The variance-scaling initializers draw with the variance their formulas
/// give for PyTorch's fans: `[in, out]` matrices and `[out, in, kh, kw]`
/// kernels (sample variance of 65,536+ draws within 3%; mean near 0).
#[test]
fn variance_scaling_initializers_have_their_variances() {
    use compiler::lower::{Init, ParamSpec};
    let spec = |init: Init, dims: &[usize]| ParamSpec {
        path: "w".into(),
        ty: compiler::ir::Type::new(DType::F32, dims),
        init,
        kind: compiler::lower::ParamKind::Trained,
    };
    for (init, dims, want) in [
        (Init::GlorotUniform, vec![256, 512], 2.0 / (256.0 + 512.0)),
        (Init::GlorotNormal, vec![256, 512], 2.0 / (256.0 + 512.0)),
        (Init::HeUniform, vec![256, 512], 2.0 / 256.0),
        (Init::HeNormal, vec![256, 512], 2.0 / 256.0),
        // A conv kernel [out 64, in 32, 3, 3]: fan_in 288, fan_out 576.
        (Init::HeNormal, vec![64, 32, 3, 3], 2.0 / 288.0),
        (Init::GlorotUniform, vec![64, 32, 3, 3], 2.0 / (288.0 + 576.0)),
    ] {
        let v = trainer::fit::init_params(&[spec(init.clone(), &dims)], 3)[0].to_f64_vec();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / v.len() as f64;
        assert!((var / want - 1.0).abs() < 0.03, "{init:?} {dims:?}: variance {var}, want {want}");
        assert!(mean.abs() < 4.0 * (want / v.len() as f64).sqrt(), "{init:?} {dims:?}: mean {mean}");
    }
}

/// `orthogonal(gain)` from a model file: the weight, viewed as `[dims[0],
/// rest]`, has orthonormal columns (tall) or rows (wide) times the gain, to
/// float32 rounding; a vector parameter is refused at compile time.
#[test]
fn orthogonal_initializer_from_a_model_file() {
    let src = "use optim.sgd

model M {
    tall: f32[8, 3] = orthogonal()
    wide: f32[2, 6] = orthogonal(gain = 2.0)
                   kernel: f32[4, 2, 2, 2] = orthogonal()

                   fn training_step(self, x: f32[B, 3], y: f32[B, 8]) -> f32 = sum(x @ transpose(self.tall, (1, 0)) - y) + sum(self.wide) + sum(self.kernel)

                   fn configure_optimizers(self) = sgd(lr = 0.1)
}
";
    let (prog, diags) = compiler::lower::load("o.jl", src);
    assert!(diags.is_empty(), "{diags:?}");
    let x = compiler::ir::Type::new(DType::F32, &[2, 3]);
    let y = compiler::ir::Type::new(DType::F32, &[2, 8]);
    let progs =
        compiler::compile_training(&prog, None, &x, &y, &compiler::Options { no_opt: true, ..Default::default() })
            .unwrap_or_else(|d| panic!("{}", compiler::diagnostic::render_all(&d, &prog.sources, false)));
    let values = trainer::fit::init_params(&progs.params, 5);
    for ((spec, t), gain) in progs.params.iter().zip(&values).zip([1.0, 2.0, 1.0]) {
        let d = spec.ty.shape.dims();
        let (rows, cols) = (d[0], d[1..].iter().product::<usize>());
        let v = t.to_f64_vec();
        let (k, long) = (rows.min(cols), rows.max(cols));
        let at = |i: usize, j: usize| if rows >= cols { v[i * cols + j] } else { v[j * cols + i] };
        for a in 0..k {
            for b in 0..k {
                let dot: f64 = (0..long).map(|i| at(i, a) * at(i, b)).sum();
                let want = if a == b { gain * gain } else { 0.0 };
                assert!((dot - want).abs() < 1e-6 * gain * gain, "{}: <{a}, {b}> = {dot}", spec.path);
            }
        }
    }
    let bad = src.replace("model M {\n", "model M {\n    v: f32[5] = orthogonal()\n");
    let (prog, _) = compiler::lower::load("o.jl", &bad);
    let err = compiler::compile_training(&prog, None, &x, &y, &compiler::Options::default()).err().expect("an error");
    let text = compiler::diagnostic::render_all(&err, &prog.sources, false);
    assert!(text.contains("needs rank 2 or more"), "{text}");
}

/// Every layer model of `stdlib/nn.jl`, as the trainer lowers it: a model
/// holding the layer logs `sum(c * layer(x))` in its `validation_step`; that
/// program, widened to float64, is differentiated with respect to every
/// parameter and the input, and checked against float64 central finite
/// differences (the parameters at random values, not their initializers).
#[test]
fn layer_models_gradients_match_finite_differences() {
    let mut rng = compiler::ir::generate::Rng(23);
    // (layer, call, x dims, x is token ids, output dims)
    let cases: [(&str, &str, &[usize], bool, &[usize]); 12] = [
        ("Linear(3, 4)", "self.layer(x)", &[2, 3], false, &[2, 4]),
        ("Conv2d(2, 3, 3, stride = 2, padding = 1)", "self.layer(x)", &[2, 2, 5, 5], false, &[2, 3, 3, 3]),
        (
            "ConvTranspose2d(2, 3, 3, stride = 2, padding = 1, output_padding = 1)",
            "self.layer(x)",
            &[1, 2, 3, 3],
            false,
            &[1, 3, 6, 6],
        ),
        ("MaxPool2d(2)", "self.layer(x) * self.scale", &[2, 1, 4, 4], false, &[2, 1, 2, 2]),
        ("AvgPool2d(3, stride = 1, padding = 1)", "self.layer(x) * self.scale", &[1, 2, 3, 3], false, &[1, 2, 3, 3]),
        ("LayerNorm(4)", "self.layer(x)", &[3, 4], false, &[3, 4]),
        ("Embedding(5, 3)", "self.layer(x)", &[4], true, &[4, 3]),
        ("Dropout(0.3)", "self.layer(x * self.scale, key)", &[3, 4], false, &[3, 4]),
        ("Mlp(3, 5, 2)", "self.layer(x)", &[2, 3], false, &[2, 2]),
        ("MultiHeadAttention(4, 2)", "self.layer(x)", &[2, 3, 4], false, &[2, 3, 4]),
        ("CausalSelfAttention(4, 2)", "self.layer(x)", &[1, 3, 4], false, &[1, 3, 4]),
        ("TransformerBlock(4, 2, 8)", "self.layer(x)", &[1, 3, 4], false, &[1, 3, 4]),
    ];
    for (layer, call, x_dims, tokens, out_dims) in cases {
        let dims = |d: &[usize]| d.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(", ");
        let x_ty = if tokens { format!("i32[{}]", dims(x_dims)) } else { format!("f32[{}]", dims(x_dims)) };
        let c_ty = format!("f32[{}]", dims(out_dims));
        let key = if call.contains("key") { ", key" } else { "" };
        // `scale` gives the parameterless layers a parameter to train.
        let src = format!(
            "use nn\nuse optim.sgd\n\nmodel Net {{\n    layer: {layer}\n    scale: f32 = ones()\n\n    \
             fn training_step(self, x: {x_ty}, c: {c_ty}{key}) -> f32 = sum(c * {call}) * self.scale\n\n    \
             fn validation_step(self, x: {x_ty}, c: {c_ty}{key}) {{\n        log(\"v\", sum(c * {call}) * self.scale)\n    }}\n\n    \
             fn configure_optimizers(self) = sgd(lr = 0.1)\n}}\n"
        );
        let (prog, diags) = compiler::lower::load("layer.jl", &src);
        assert!(diags.is_empty(), "{diags:?}\n{src}");
        let dtype = if tokens { DType::I32 } else { DType::F32 };
        let (x_t, c_t) = (compiler::ir::Type::new(dtype, x_dims), compiler::ir::Type::new(DType::F32, out_dims));
        let opts = compiler::Options { no_opt: true, ..Default::default() };
        let progs = compiler::compile_training(&prog, None, &x_t, &c_t, &opts)
            .unwrap_or_else(|d| panic!("{}\n{src}", compiler::diagnostic::render_all(&d, &prog.sources, false)));
        let val = progs.val_step.as_ref().expect("validation_step").widened_to_f64();
        let mut inputs: Vec<Tensor> = progs.params.iter().map(|p| random(&mut rng, &p.ty.shape.0, -1.0, 1.0)).collect();
        let x = if tokens {
            let n = x_dims.iter().product();
            Tensor::i32(x_dims, (0..n).map(|i| (i * 3 % 5) as i32).collect())
        } else {
            random(&mut rng, x_dims, -2.0, 2.0)
        };
        inputs.push(x);
        inputs.push(random(&mut rng, out_dims, -1.0, 1.0));
        if progs.keys.val {
            inputs.push(Tensor::i32(&[2], vec![0, 7]));
        }
        let mut wrt: Vec<usize> = (0..progs.params.len()).collect();
        if !tokens {
            wrt.push(progs.params.len());
        }
        grad_check_func(layer, &val, &inputs, &wrt);
    }
}

/// `Linear` takes any leading dims (as torch's): each row of the last dim maps.
#[test]
fn linear_maps_the_last_dim_under_any_leading_dims() {
    let src = "use nn.Linear\n\nmodel M {\n    l: Linear(4, 3)\n\n    \
               fn seq(self, x: f32[B, T, 4]) = self.l(x)\n\n    fn one(self, x: f32[4]) = self.l(x)\n}\n";
    let out = jaxlightning::dump("t.jl", src, jaxlightning::DumpStage::Typed, false, 2, &[], false).unwrap();
    assert!(out.contains("fn seq(self, x: f32[B, T, 4]) -> f32[B, T, 3]"), "{out}");
    assert!(out.contains("fn one(self, x: f32[4]) -> f32[3]"), "{out}");
}

/// `math.argsort`, `sort` and `top_k` against Rust's stable sort (NaN last,
/// as NumPy's) on rows with many ties and some NaNs, ascending and
/// descending; `top_k` is the first `k` of the descending order with NaN
/// first (jax.lax.top_k's). The smallest i32 sorts last in descending order
/// (no negation wraps it around).
#[test]
fn argsort_sort_and_top_k_match_a_stable_sort() {
    let src = "use math.{argsort, sort, top_k}\n\
               fn up(x: f32[3, 37]) = argsort(x)\n\
               fn down(x: f32[3, 37]) = (argsort(x, descending = true), sort(x, descending = true))\n\
               fn top(x: f32[3, 37]) = top_k(x, 5)\n\
               fn ints(x: i32[3]) = (argsort(x, descending = true), top_k(x, 2))\n";
    let lower = |name: &str| {
        let (prog, diags) = compiler::lower::load("t.jl", src);
        assert!(diags.is_empty(), "{diags:?}");
        compiler::lower::lower_fn(&prog, name).unwrap_or_else(|d| panic!("{d:?}"))
    };
    let mut rng = compiler::ir::generate::Rng(0x5027);
    let values: Vec<f32> =
        (0..3 * 37).map(|_| if rng.below(10) == 0 { f32::NAN } else { rng.below(9) as f32 - 4.0 }).collect();
    let input = [compiler::ir::Tensor::f32(&[3, 37], values.clone())];
    let run = |name: &str| compiler::ir::interp::run(&lower(name), &input);
    let (up, down, top) = (run("up"), run("down"), run("top"));
    let ints = compiler::ir::interp::run(&lower("ints"), &[compiler::ir::Tensor::i32(&[3], vec![i32::MIN, 5, -7])]);
    let ints: Vec<Vec<f64>> = ints.iter().map(|t| t.to_f64_vec()).collect();
    assert_eq!(ints, [vec![1.0, 2.0, 0.0], vec![5.0, -7.0], vec![1.0, 2.0]], "i32::MIN sorts last descending");
    for r in 0..3 {
        let row = &values[r * 37..(r + 1) * 37];
        let key = |descending: bool| {
            move |&i: &usize| {
                let v = row[i];
                // NaN last in both orders; otherwise by value (negated when descending).
                (
                    v.is_nan(),
                    if v.is_nan() {
                        0.0
                    } else if descending {
                        -v
                    } else {
                        v
                    },
                )
            }
        };
        let mut want_up: Vec<usize> = (0..37).collect();
        want_up.sort_by(|a, b| key(false)(a).partial_cmp(&key(false)(b)).unwrap());
        let mut want_down: Vec<usize> = (0..37).collect();
        want_down.sort_by(|a, b| key(true)(a).partial_cmp(&key(true)(b)).unwrap());
        let got = |t: &compiler::ir::Tensor, n: usize| -> Vec<usize> {
            t.to_f64_vec()[r * n..(r + 1) * n].iter().map(|&i| i as usize).collect()
        };
        assert_eq!(got(&up[0], 37), want_up, "ascending row {r}: {row:?}");
        assert_eq!(got(&down[0], 37), want_down, "descending row {r}: {row:?}");
        let sorted = down[1].to_f64_vec();
        for (k, &i) in want_down.iter().enumerate() {
            let (s, v) = (sorted[r * 37 + k], row[i] as f64);
            assert!(s == v || (s.is_nan() && v.is_nan()), "sorted row {r}[{k}]: {s} vs {v}");
        }
        // top_k ranks NaN above every number (jax.lax.top_k), then as descending.
        let mut want_top: Vec<usize> = (0..37).collect();
        want_top.sort_by_key(|&i| !row[i].is_nan());
        want_top[row.iter().filter(|v| v.is_nan()).count()..]
            .sort_by(|a, b| key(true)(a).partial_cmp(&key(true)(b)).unwrap());
        assert_eq!(got(&top[1], 5), want_top[..5], "top_k indices, row {r}");
        let top_values: Vec<f64> = top[0].to_f64_vec()[r * 5..(r + 1) * 5].to_vec();
        let want_values: Vec<f64> = want_top[..5].iter().map(|&i| row[i] as f64).collect();
        assert!(
            top_values.iter().zip(&want_values).all(|(g, w)| g == w || (g.is_nan() && w.is_nan())),
            "top_k values, row {r}: {top_values:?} vs {want_values:?}"
        );
    }
}

/// `Linear(..., use_bias = false)`: the instance has no `bias` parameter
/// (an `absent()` field), and computes x @ weight.
#[test]
fn linear_without_bias_has_no_bias_parameter() {
    let src = "use nn.Linear\nuse optim.sgd\nmodel M {\n    l: Linear(3, 2, use_bias = false)\n    k: Linear(2, 1)\n\
               \x20   fn training_step(self, x: f32[B, 3], y: i32[B]) -> f32 = mean(self.k(self.l(x)))\n\
               \x20   fn validation_step(self, x: f32[B, 3], y: i32[B]) {\n        log(\"out\", sum(self.l(x)[:, 1]))\n    }\n\
               \x20   fn configure_optimizers(self) = sgd(lr = 0.1)\n}\n";
    let (prog, diags) = compiler::lower::load("t.jl", src);
    assert!(diags.is_empty(), "{diags:?}");
    let x_ty = compiler::ir::Type::new(DType::F32, &[2, 3]);
    let y_ty = compiler::ir::Type::new(DType::I32, &[2]);
    let progs = compiler::compile_training(&prog, None, &x_ty, &y_ty, &Default::default()).unwrap();
    let paths: Vec<&str> = progs.params.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["l.weight", "k.weight", "k.bias"]);
    let w = [0.5, -1.0, 2.0, 0.25, -0.5, 1.5];
    let x = [1.0, 2.0, 3.0, -1.0, 0.5, 2.0];
    let inputs = vec![
        compiler::ir::Tensor::f32(&[3, 2], w.iter().map(|&v| v as f32).collect()),
        compiler::ir::Tensor::f32(&[2, 1], vec![1.0, 1.0]),
        compiler::ir::Tensor::f32(&[1], vec![0.0]),
        compiler::ir::Tensor::f32(&[2, 3], x.iter().map(|&v| v as f32).collect()),
        compiler::ir::Tensor::i32(&[2], vec![0, 0]),
    ];
    let got = compiler::ir::interp::run(progs.val_step.as_ref().unwrap(), &inputs)[0].to_f64_vec()[0];
    // Column 1 of x @ w, summed over the two rows.
    let want: f64 = (0..2).map(|r| (0..3).map(|k| x[r * 3 + k] * w[k * 2 + 1]).sum::<f64>()).sum();
    assert_eq!(got, want);
}
