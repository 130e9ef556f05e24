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
    let shapes: Vec<Vec<usize>> = ["w_shape", "b_shape"]
        .iter()
        .map(|k| data.get(k).nums().into_iter().map(|x| x as usize).collect())
        .collect();
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
    for spec in &p.params {
        for _ in 0..p.states_per_param {
            let n = spec.ty.shape.0.iter().product();
            inputs.push(Tensor::f32(&spec.ty.shape.0, (0..n).map(|_| rng.uniform(0.0, 0.5) as f32).collect()));
        }
    }
    inputs.push(Tensor::scalar_f32(step));
    inputs.push(Tensor::f32(&[4, 2], (0..8).map(|_| rng.uniform(-1.0, 1.0) as f32).collect()));
    inputs.push(Tensor::i32(&[4], vec![0, 2, 1, 2]));
    interp::run(&p.train_step, &inputs)
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
    ] {
        let p = compile_train(&train_src(opt, ""));
        assert_eq!((p.states_per_param, p.optimizer.as_str()), (states, name), "{opt}");
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
