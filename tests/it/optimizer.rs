//! `jlc dump --stage opt --explain`: the optimizer's report on the shipped
//! examples, checked against the printed IR (its instructions and costs
//! recomputed here with `opt::cost::func_cost`) and the unoptimized dump.

use compiler::ir::parse::parse;
use compiler::opt::cost::func_cost;
use std::path::Path;
use std::process::Command;

fn example(name: &str) -> (String, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(name);
    (path.display().to_string(), std::fs::read_to_string(&path).unwrap())
}

/// The `# opt: NAME a -> b` numbers of the first report in `text`.
fn before_after(text: &str, name: &str) -> (f64, f64) {
    let prefix = format!("# opt: {name} ");
    let line = text.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no `{prefix}` in\n{text}"));
    let nums: Vec<f64> = line[prefix.len()..].split(" -> ").map(|s| s.trim().parse().unwrap()).collect();
    (nums[0], nums[1])
}

#[test]
fn explain_reports_costs_and_rules_of_the_w1_step() {
    let (path, text) = example("fashion_mnist_mlp.jl");
    let dump = |stage_opt: bool, explain: bool| {
        jaxlightning::dump(
            &path,
            &text,
            if stage_opt { jaxlightning::DumpStage::Opt } else { jaxlightning::DumpStage::Grad },
            explain,
            128,
            &[],
            false,
        )
        .unwrap()
    };
    let out = dump(true, true);
    let ir_text: String = out.lines().filter(|l| !l.starts_with('#')).map(|l| format!("{l}\n")).collect();
    let optimized = parse(&ir_text).unwrap();
    assert_eq!(ir_text, dump(true, false), "--explain changes only the `#` lines");
    let unoptimized = parse(&dump(false, false)).unwrap();
    let report: String = out.lines().filter(|l| l.starts_with('#')).map(|l| format!("{l}\n")).collect();

    let line = report.lines().next().unwrap();
    let counts: Vec<usize> =
        line["# opt: ".len()..line.find(" instructions").unwrap()].split(" -> ").map(|s| s.parse().unwrap()).collect();
    assert_eq!(counts, [unoptimized.insts.len(), optimized.insts.len()], "{report}");
    let (before, after) = (func_cost(&unoptimized), func_cost(&optimized));
    assert_eq!(before_after(&report, "FLOPs"), (before.flops, after.flops), "{report}");
    assert_eq!(before_after(&report, "bytes"), (before.bytes, after.bytes), "{report}");
    assert!(after.within(&before), "{report}");
    let names = compiler::opt::rule_names();
    let rules: Vec<(&str, usize)> = report
        .lines()
        .filter_map(|l| l.strip_prefix("# rule "))
        .map(|l| {
            let (name, n) = l.split_once(": ").unwrap();
            (name, n.parse().unwrap())
        })
        .collect();
    assert!(!rules.is_empty(), "{report}");
    assert!(rules.iter().all(|(name, n)| names.contains(name) && *n > 0), "{report}");
}

#[test]
fn jlc_dump_explain_prints_the_report() {
    let (path, _) = example("digits_mlp.jl");
    let out = Command::new(env!("CARGO_BIN_EXE_jlc"))
        .args(["dump", &path, "--stage", "opt", "--batch", "64", "--explain"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.starts_with("func @train_step("), "{stdout}");
    assert!(stdout.contains("\n# opt: FLOPs ") && stdout.contains("\n# rule "), "{stdout}");
}

#[test]
fn disable_rule_switches_a_rule_off_and_unknown_names_are_errors() {
    let (path, _) = example("digits_mlp.jl");
    let jlc = |extra: &[&str]| {
        let mut args = vec!["dump", path.as_str(), "--stage", "opt", "--explain"];
        args.extend_from_slice(extra);
        Command::new(env!("CARGO_BIN_EXE_jlc")).args(&args).output().unwrap()
    };
    let fired = |out: &std::process::Output, rule: &str| {
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines().any(|l| l.starts_with(&format!("# rule {rule}: ")))
    };
    let plain = jlc(&[]);
    assert!(plain.status.success());
    assert!(fired(&plain, "neg-mul") && fired(&plain, "mul-comm"), "the rules fire by default");
    let off = jlc(&["--disable-rule", "neg-mul", "--disable-rule", "mul-comm"]);
    assert!(off.status.success(), "{}", String::from_utf8_lossy(&off.stderr));
    assert!(!fired(&off, "neg-mul") && !fired(&off, "mul-comm"), "switched off");
    assert!(fired(&off, "add-comm"), "other rules still run");
    let bad = jlc(&["--disable-rule", "mul-com"]);
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("`--disable-rule mul-com`: no rewrite rule has that name (did you mean `mul-comm`?)"),
        "{err}"
    );
}

/// Issue #6's acceptance on the W2 and W3 steps (W1 above): the optimizer
/// never raises FLOPs or bytes, and lowers bytes on these gradient graphs.
/// Also checks that `dump` reads the input types `training_step` declares
/// (W3's `tokens: i32[B, seq]`, `seq` a config parameter).
#[test]
fn the_w2_and_w3_steps_get_cheaper() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (file, batch) in [("examples/fashion_mnist_cnn.jl", 16), ("benches/workloads/w3_transformer.jl", 2)] {
        let path = root.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let out = jaxlightning::dump(
            &path.display().to_string(),
            &text,
            jaxlightning::DumpStage::Opt,
            true,
            batch,
            &[],
            false,
        )
        .unwrap_or_else(|e| panic!("{file}: {e}"));
        let (f0, f1) = before_after(&out, "FLOPs");
        let (b0, b1) = before_after(&out, "bytes");
        assert!(f1 <= f0 && b1 < b0, "{file}: FLOPs {f0} -> {f1}, bytes {b0} -> {b1}");
    }
}

/// `jlc dump --stage ir` on a model file is the forward + loss function
/// before autodiff (params, x, y -> loss, logs), `--stage grad` the whole
/// step after it; run on the same parameters and batch, both give the same
/// loss, and only the step has the optimizer's inputs and the gradients.
#[test]
fn dump_ir_is_the_forward_before_autodiff_and_grad_the_step_after() {
    use compiler::ir::{interp, DType, Tensor};
    let (path, text) = example("digits_mlp.jl");
    let dump = |stage| jaxlightning::dump(&path, &text, stage, false, 4, &[], false).unwrap();
    let forward = parse(&dump(jaxlightning::DumpStage::Ir)).unwrap();
    let step = parse(&dump(jaxlightning::DumpStage::Grad)).unwrap();
    // digits_mlp: 4 parameters, Adam (2 states each), then step, x, y.
    assert_eq!((forward.n_params, step.n_params), (4 + 2, 4 + 8 + 1 + 2));
    assert!(forward.insts.len() < step.insts.len());
    let mut rng = compiler::ir::generate::Rng(3);
    let mut random = |ty: &compiler::ir::Type| {
        let n = ty.shape.num_elements();
        match ty.dtype {
            DType::I32 => Tensor::i32(&ty.shape.0, (0..n).map(|_| rng.below(10) as i32).collect()),
            _ => Tensor::f32(&ty.shape.0, (0..n).map(|_| rng.uniform(-0.5, 0.5) as f32).collect()),
        }
    };
    let types = forward.param_types();
    let inputs: Vec<Tensor> = types.iter().map(&mut random).collect();
    let mut step_inputs: Vec<Tensor> = inputs[..4].to_vec();
    // Adam's states, param-major (m, v of each parameter), at zero.
    step_inputs
        .extend((0..8).map(|i| Tensor::f32(&types[i / 2].shape.0, vec![0.0; types[i / 2].shape.num_elements()])));
    step_inputs.push(Tensor::scalar_f32(1.0));
    step_inputs.extend(inputs[4..].iter().cloned());
    let loss = interp::run(&forward, &inputs)[0].scalar_value();
    let step_loss = interp::run(&step, &step_inputs)[4 + 8].scalar_value();
    assert_eq!(loss, step_loss);
    // The script `dump` of a file without a trainer: `grad` is `ir`.
    let script = "fn main() {\n    print(grad(fn(x) = x * x)(3.0))\n}\n";
    let ir = jaxlightning::dump("s.jl", script, jaxlightning::DumpStage::Ir, false, 2, &[], false).unwrap();
    assert_eq!(ir, jaxlightning::dump("s.jl", script, jaxlightning::DumpStage::Grad, false, 2, &[], false).unwrap());
}
