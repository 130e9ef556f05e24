//! Datasets beyond classifiers on `f32[B, N]`: NPZ sources with float
//! regression targets and i32 token sequences, views that reshape for
//! free, mismatches named with both types, and `jlc predict` checked
//! against an f64 recomputation from the checkpoint's weights.

use crate::evaluate::jlc_out;
use crate::examples::tempdir;
use compiler::ir::generate::Rng as SplitMix;
use std::path::Path;
use trainer::data::{npy, npz, Values};

fn f64s(v: &Values) -> Vec<f64> {
    match v {
        Values::F32(v) => v.iter().map(|&x| x as f64).collect(),
        Values::F64(v) => v.clone(),
        Values::I32(v) => v.iter().map(|&x| x as f64).collect(),
        Values::U8(v) => v.iter().map(|&x| x as f64).collect(),
        Values::Bool(v) => v.iter().map(|&x| x as u8 as f64).collect(),
    }
}

/// A checkpoint tensor as f64.
fn param(ckpt: &Path, name: &str) -> Vec<f64> {
    let ck = trainer::checkpoint::load(ckpt).unwrap();
    ck.tensors.iter().find(|(k, _)| k == name).unwrap_or_else(|| panic!("no {name}")).1.to_f64_vec()
}

fn last_ckpt(logs: &Path) -> std::path::PathBuf {
    trainer::checkpoint::find_last(&logs.join("lightning_logs")).expect("a last checkpoint")
}

const REGRESSION: &str = r#"
use losses.mse
use optim.sgd
model LinReg {
    w: f32[4, 1]
    b: f32[1]
    fn forward(self, x: f32[B, 4]) -> f32[B, 1] = x @ self.w + self.b
    fn training_step(self, x: f32[B, 4], y: f32[B, 1]) -> f32 = mse(self.forward(x), y)
    fn test_step(self, x: f32[B, 4], y: f32[B, 1]) {
        log("test_mse", mse(self.forward(x), y))
    }
    fn predict_step(self, x: f32[B, 4]) -> f32[B, 1] = self.forward(x)
    fn configure_optimizers(self) = sgd(lr = 0.1)
}
data = npz("reg.npz", x = "inputs", y = "targets") {
    batch_size = 64
    test = npz("reg.npz", x = "test_inputs", y = "test_targets")
}
trainer { max_epochs = 30 }
"#;

const W_TRUE: [f64; 4] = [1.5, -2.0, 0.5, 3.0];
const B_TRUE: f64 = 0.7;

/// `n` examples x ~ U(-1, 1)^4, y = x . W_TRUE + B_TRUE + e, e ~ U(-a, a).
fn regression_data(rng: &mut SplitMix, n: usize, a: f64) -> (Vec<f32>, Vec<f32>) {
    let u = |rng: &mut SplitMix| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for _ in 0..n {
        let x: Vec<f64> = (0..4).map(|_| u(rng)).collect();
        let y = (0..4).map(|k| x[k] * W_TRUE[k]).sum::<f64>() + B_TRUE + a * u(rng);
        xs.extend(x.iter().map(|&v| v as f32));
        ys.push(y as f32);
    }
    (xs, ys)
}

/// The last checkpoint under `logs` and its `w` and `b`, asserted within
/// 6 standard errors of W_TRUE and B_TRUE for `n` examples with noise
/// U(-a, a). Least squares' standard error per weight is sigma / sqrt(n
/// Var(x)) = (a / sqrt 3) / sqrt(n / 3) = a / sqrt(n) (0.0031 for n = 1024,
/// a = 0.1); SGD's own fluctuation at lr 0.1 is smaller.
fn weights_near_the_truth(logs: &Path, n: usize, a: f64) -> (std::path::PathBuf, Vec<f64>, Vec<f64>) {
    let tol = 6.0 * a / (n as f64).sqrt();
    let ck = last_ckpt(logs);
    let (w, b) = (param(&ck, "w"), param(&ck, "b"));
    for k in 0..4 {
        assert!((w[k] - W_TRUE[k]).abs() < tol, "w[{k}] = {}, true {}, tolerance {tol}", w[k], W_TRUE[k]);
    }
    assert!((b[0] - B_TRUE).abs() < tol, "b = {}, true {B_TRUE}, tolerance {tol}", b[0]);
    (ck, w, b)
}

/// The same regression from CSV files whose last column is the target
/// (`y = "float"`), viewed as the declared `f32[B, 1]`.
#[test]
fn linear_regression_on_csv_float_targets_finds_the_true_weights() {
    let dir = tempdir("csv-regression");
    let (n, a) = (1024, 0.1);
    let mut rng = SplitMix(0x5eed_0102);
    let rows = |x: &[f32], y: &[f32]| -> String {
        x.chunks(4).zip(y).map(|(x, y)| format!("{},{},{},{},{y}\n", x[0], x[1], x[2], x[3])).collect()
    };
    let (x, y) = regression_data(&mut rng, n, a);
    let (tx, ty) = regression_data(&mut rng, 100, a);
    std::fs::write(dir.join("reg.csv"), rows(&x, &y)).unwrap();
    std::fs::write(dir.join("reg_test.csv"), rows(&tx, &ty)).unwrap();
    let text = REGRESSION.replace(
        r#"npz("reg.npz", x = "inputs", y = "targets") {
    batch_size = 64
    test = npz("reg.npz", x = "test_inputs", y = "test_targets")
}"#,
        r#"csv("reg.csv", y = "float") {
    batch_size = 64
    test = "reg_test.csv"
}"#,
    );
    assert!(text.contains("reg.csv"));
    std::fs::write(dir.join("reg.jl"), &text).unwrap();
    let model = dir.join("reg.jl");
    let logs = format!("trainer.default_root_dir={}", dir.join("logs").display());
    let (code, out, err) = jlc_out(&["run", model.to_str().unwrap(), "--set", &logs]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("test_mse"), "{out}");
    weights_near_the_truth(&dir.join("logs"), n, a);
    // A test file with other columns than the training file's: named.
    std::fs::write(dir.join("reg_test.csv"), "1,2,3\n4,5,6\n").unwrap();
    let (code, _, err) = jlc_out(&["run", model.to_str().unwrap(), "--set", &logs]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("reg_test.csv: its inputs are f32[2] per example"), "{err}");
    std::fs::write(dir.join("reg_test.csv"), rows(&tx, &ty)).unwrap();
    // Class labels where the model declares float targets: the default
    // `y = "class"` refuses 0.25 and names the line.
    let text = text.replace(r#", y = "float")"#, ")");
    std::fs::write(&model, &text).unwrap();
    let (code, _, err) = jlc_out(&["run", model.to_str().unwrap(), "--set", &logs]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(".csv:1: last column: expected a non-negative integer class label, found"), "{err}");
}

#[test]
fn linear_regression_on_npz_finds_the_true_weights_and_predicts_them() {
    let dir = tempdir("npz-regression");
    let (n, a) = (1024, 0.1);
    let mut rng = SplitMix(0x5eed_0101);
    let (x, y) = regression_data(&mut rng, n, a);
    let (tx, ty) = regression_data(&mut rng, 100, a);
    let members = [
        ("inputs", npy::write(&[n, 4], &Values::F32(x))),
        ("targets", npy::write(&[n, 1], &Values::F32(y))),
        ("test_inputs", npy::write(&[100, 4], &Values::F32(tx.clone()))),
        ("test_targets", npy::write(&[100, 1], &Values::F32(ty))),
    ];
    std::fs::write(dir.join("reg.npz"), npz::write(&members, true)).unwrap();
    std::fs::write(dir.join("reg.jl"), REGRESSION).unwrap();
    let model = dir.join("reg.jl");
    let model = model.to_str().unwrap();
    let logs = format!("trainer.default_root_dir={}", dir.join("logs").display());
    let (code, out, err) = jlc_out(&["run", model, "--set", &logs]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("test_mse"), "{out}");
    let (ck, w, b) = weights_near_the_truth(&dir.join("logs"), n, a);

    // jlc predict on the test split (file order, 100 = 64 + a batch of 36),
    // against x . w + b in f64 from the checkpoint's weights.
    let preds = dir.join("preds.npy");
    let (code, _, err) =
        jlc_out(&["predict", model, "--set", &logs, "--out", preds.to_str().unwrap(), "--split", "test"]);
    assert_eq!(code, 0, "{err}");
    let p = npy::parse("preds.npy", &std::fs::read(&preds).unwrap()).unwrap();
    assert_eq!(p.dims, [100, 1]);
    for (i, got) in f64s(&p.values).iter().enumerate() {
        let want = (0..4).map(|k| tx[i * 4 + k] as f64 * w[k]).sum::<f64>() + b[0];
        assert!((got - want).abs() < 1e-5 * (1.0 + want.abs()), "row {i}: {got} vs f64 {want}");
    }
    // Predicting changes nothing in the checkpoint; `all` covers the training file in order.
    assert_eq!(param(&ck, "w"), w);
    let (code, _, err) =
        jlc_out(&["predict", model, "--set", &logs, "--out", preds.to_str().unwrap(), "--split", "all"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(npy::parse("p", &std::fs::read(&preds).unwrap()).unwrap().dims, [n, 1]);
    // limit_predict_batches: the split's first batches (Lightning's setting);
    // `jlc fit` is `jlc run` under Lightning's name.
    let (code, _, err) = jlc_out(&[
        "predict",
        model,
        "--set",
        &logs,
        "--out",
        preds.to_str().unwrap(),
        "--split",
        "all",
        "--set",
        "trainer.limit_predict_batches=3",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(npy::parse("p", &std::fs::read(&preds).unwrap()).unwrap().dims, [3 * 64, 1]);
    let (code, out, _) = jlc_out(&["fit", model, "--set", &logs, "--print-config"]);
    assert_eq!(code, 0);
    assert!(out.contains("limit_predict_batches: 0"), "{out}");
    // The file was replaced by a rename: no temp file is left beside it.
    let stray: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");

    // Another extension is refused before anything runs (it would get NPY bytes).
    let text_out = dir.join("preds.txt");
    let (code, _, err) =
        jlc_out(&["predict", model, "--set", &logs, "--out", text_out.to_str().unwrap(), "--split", "test"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("preds.txt: predictions are written as NumPy arrays"), "{err}");
    assert!(!text_out.exists());

    // A predict_step returning a tuple writes an .npz (numpy's arr_0, arr_1);
    // an .npy cannot hold two arrays, which is said before anything runs.
    let tuple = REGRESSION.replace(
        "fn predict_step(self, x: f32[B, 4]) -> f32[B, 1] = self.forward(x)",
        "fn predict_step(self, x: f32[B, 4]) = (self.forward(x), argmax(x, axis = 1))",
    );
    assert_ne!(tuple, REGRESSION);
    std::fs::write(dir.join("reg2.jl"), &tuple).unwrap();
    let model2 = dir.join("reg2.jl");
    let model2 = model2.to_str().unwrap();
    let (code, _, err) =
        jlc_out(&["predict", model2, "--set", &logs, "--out", preds.to_str().unwrap(), "--split", "test"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("returns 2 tensors") && err.contains("preds.npz"), "{err}");
    let archive = dir.join("preds.npz");
    let (code, _, err) =
        jlc_out(&["predict", model2, "--set", &logs, "--out", archive.to_str().unwrap(), "--split", "test"]);
    assert_eq!(code, 0, "{err}");
    let bytes = std::fs::read(&archive).unwrap();
    let z = npz::Npz::parse("preds.npz", &bytes).unwrap();
    let (first, second) = (z.array("arr_0").unwrap(), z.array("arr_1").unwrap());
    assert_eq!((first.dims.clone(), second.dims.clone()), (vec![100, 1], vec![100]));
    for (i, got) in f64s(&first.values).iter().enumerate() {
        let want = (0..4).map(|k| tx[i * 4 + k] as f64 * w[k]).sum::<f64>() + b[0];
        assert!((got - want).abs() < 1e-5 * (1.0 + want.abs()), "row {i}: {got} vs f64 {want}");
    }
    for (i, got) in f64s(&second.values).iter().enumerate() {
        let row = &tx[i * 4..i * 4 + 4];
        let want = (0..4).fold(0, |best, k| if row[k] > row[best] { k } else { best });
        assert_eq!(*got as usize, want, "row {i}: argmax");
    }
}

const NEXT_TOKEN: &str = r#"
use losses.cross_entropy
use metrics.accuracy
use optim.adam
model NextToken(V: int = 8, D: int = 16) {
    emb: f32[V, D] = normal(0.5)
    out: f32[D, V] = glorot_uniform()
    fn logits(self, x: i32[B, T]) -> f32[B, T, V] = take(self.emb, x) @ self.out
    fn flat_logits(self, x: i32[B, T]) = reshape(self.logits(x), (-1, V))
    fn training_step(self, x: i32[B, T], y: i32[B, T]) -> f32 {
        let logits = self.flat_logits(x)
        let labels = reshape(y, (-1,))
        log("train_acc", accuracy(logits, labels), prog_bar = true)
        cross_entropy(logits, labels)
    }
    fn validation_step(self, x: i32[B, T], y: i32[B, T]) {
        log("val_acc", accuracy(self.flat_logits(x), reshape(y, (-1,))))
    }
    fn predict_step(self, x: i32[B, T]) = self.logits(x)
    fn configure_optimizers(self) = adam(lr = 0.05)
}
data = npz("tokens.npz") { batch_size = 32; val_split = 64 }
trainer { max_epochs = 20 }
"#;

/// A period-8 sequence of distinct tokens: the next token is a function of the current one.
const PATTERN: [i32; 8] = [3, 1, 4, 0, 6, 2, 7, 5];

#[test]
fn next_token_model_on_i32_sequences_learns_the_period() {
    let dir = tempdir("npz-tokens");
    let (n, t) = (320, 12);
    let mut rng = SplitMix(0x5eed_0102);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let o = rng.below(8);
        x.extend((0..t).map(|i| PATTERN[(o + i) % 8]));
        y.extend((0..t).map(|i| PATTERN[(o + i + 1) % 8]));
    }
    let members = [("x", npy::write(&[n, t], &Values::I32(x))), ("y", npy::write(&[n, t], &Values::I32(y)))];
    std::fs::write(dir.join("tokens.npz"), npz::write(&members, false)).unwrap();
    std::fs::write(dir.join("lm.jl"), NEXT_TOKEN).unwrap();
    let model = dir.join("lm.jl");
    let model = model.to_str().unwrap();
    let logs = format!("trainer.default_root_dir={}", dir.join("logs").display());
    let (code, _, err) = jlc_out(&["run", model, "--set", &logs]);
    assert_eq!(code, 0, "{err}");

    // The validation split's predictions, in the split's order.
    let preds = dir.join("val.npy");
    let (code, _, err) =
        jlc_out(&["predict", model, "--set", &logs, "--out", preds.to_str().unwrap(), "--split", "val"]);
    assert_eq!(code, 0, "{err}");
    let p = npy::parse("val.npy", &std::fs::read(&preds).unwrap()).unwrap();
    assert_eq!(p.dims, [64, t, 8]);
    let p = f64s(&p.values);
    let data = trainer::data::load_npz(&dir.join("tokens.npz"), "x", "y", 1.0).unwrap();
    let (_, val) = trainer::data::split(&data, 64, 0);
    let (Values::I32(vx), Values::I32(vy)) = (&val.x.values, &val.y.values) else { panic!("i32 tokens") };
    // f64 recomputation: logits[v] = emb[x] . out[:, v].
    let ck = last_ckpt(&dir.join("logs"));
    let (emb, out) = (param(&ck, "emb"), param(&ck, "out"));
    let mut hits = 0;
    for (i, (&tok, &next)) in vx.iter().zip(vy).enumerate() {
        let logits: Vec<f64> =
            (0..8).map(|v| (0..16).map(|d| emb[tok as usize * 16 + d] * out[d * 8 + v]).sum::<f64>()).collect();
        for v in 0..8 {
            assert!((p[i * 8 + v] - logits[v]).abs() < 1e-4 * (1.0 + logits[v].abs()), "position {i}, token {v}");
        }
        let best = (0..8).max_by(|&a, &b| logits[a].total_cmp(&logits[b])).unwrap();
        hits += (best as i32 == next) as usize;
    }
    assert_eq!(hits, vx.len(), "every next token predicted ({hits} of {})", vx.len());
}

#[test]
fn declared_shapes_view_the_data_and_mismatches_name_both_types() {
    let dir = tempdir("npz-views");
    let n = 64;
    let mut rng = SplitMix(0x5eed_0103);
    let x: Vec<f32> = (0..n * 6).map(|_| rng.below(100) as f32 / 100.0).collect();
    let labels: Vec<u8> = (0..n).map(|_| rng.below(3) as u8).collect();
    let members = [
        ("x", npy::write(&[n, 2, 3], &Values::F32(x))),
        ("y", npy::write(&[n], &Values::U8(labels))),
        ("y64", npy::write(&[n], &Values::F64(vec![0.0; n]))),
    ];
    std::fs::write(dir.join("d.npz"), npz::write(&members, false)).unwrap();
    let model = |x_ty: &str, y: &str, y_ty: &str, d_in: usize| {
        format!(
            r#"
use nn.Linear
use losses.{{cross_entropy, mse}}
use optim.sgd
model M {{
    l: Linear({d_in}, 3)
    fn training_step(self, x: {x_ty}, y: {y_ty}) -> f32 = {y}
    fn configure_optimizers(self) = sgd(lr = 0.1)
}}
data = npz("d.npz", y = "{}") {{ batch_size = 16 }}
trainer {{ max_epochs = 1 }}
"#,
            if y_ty.starts_with("f32") { "y64" } else { "y" }
        )
    };
    let run = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let logs = format!("trainer.default_root_dir={}", dir.join("logs").display());
        jlc_out(&["run", path.to_str().unwrap(), "--set", &logs])
    };
    // f32[2, 3] examples seen as f32[6] (a free reshape); byte labels as i32.
    let (code, _, err) = run("flat.jl", &model("f32[B, 6]", "cross_entropy(self.l(x), y)", "i32[B]", 6));
    assert_eq!(code, 0, "{err}");
    // A model without `predict_step`, an unknown split, a source without a test split.
    let flat = dir.join("flat.jl");
    let logs = format!("trainer.default_root_dir={}", dir.join("logs").display());
    let predict = |split: &str| {
        jlc_out(&["predict", flat.to_str().unwrap(), "--set", &logs, "--out", "/dev/null", "--split", split])
    };
    let (code, _, err) = predict("all");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("model `M` has no `predict_step` method"), "{err}");
    let (code, _, err) = predict("everything");
    assert!(code == 1 && err.contains("--split everything: expected test, val, train or all"), "{err}");
    let (code, _, err) = predict("test");
    assert!(code == 1 && err.contains("the data has no test split"), "{err}");
    // Six values per example cannot be five.
    let (code, _, err) = run("five.jl", &model("f32[B, 5]", "cross_entropy(self.l(x), y)", "i32[B]", 5));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("holds examples of f32[2, 3], and the step declares f32[B, 5]"), "{err}");
    assert!(err.contains("the declaration has 5 values per example, the data 6"), "{err}");
    // f64 targets are not silently rounded to f32.
    let (code, _, err) =
        run("f64.jl", &model("f32[B, 2, 3]", "mse(sum(self.l(reshape(x, (-1, 6))), axis = -1), y)", "f32[B]", 6));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("`training_step`'s `y`") && err.contains("holds examples of f64"), "{err}");
    assert!(
        err.contains("the data holds f64 values, not f32: convert them when saving (numpy: `a.astype(np.float32)`)"),
        "{err}"
    );
}

/// IDX images are stored flattened; a model declaring `x: f32[B, 1, 4, 4]`
/// sees the same bytes as images (no copy), and trains bit for bit as the
/// flat model does.
#[test]
fn idx_images_declared_as_nchw_train_exactly_as_flat_ones() {
    let dir = tempdir("idx-nchw");
    crate::checkpoints::write_idx(&dir, "train", 300, 11);
    let model = |x_ty: &str, flatten: &str| {
        format!(
            r#"
use nn.Linear
use losses.cross_entropy
use optim.adam
model Quadrants {{
    l: Linear(16, 4)
    fn training_step(self, x: {x_ty}, y: i32[B]) -> f32 = cross_entropy(self.l({flatten}), y)
    fn configure_optimizers(self) = adam(lr = 1e-1)
}}
data = idx(".", scale = 1.0 / 255.0) {{ batch_size = 50; val_split = 50 }}
trainer {{ max_epochs = 2; log_every_n_steps = 1 }}
"#
        )
    };
    let mut metrics = Vec::new();
    for (name, text) in
        [("flat.jl", model("f32[B, 16]", "x")), ("nchw.jl", model("f32[B, 1, 4, 4]", "reshape(x, (-1, 16))"))]
    {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let root = dir.join(format!("logs-{name}"));
        let (code, _, err) =
            jlc_out(&["run", path.to_str().unwrap(), "--set", &format!("trainer.default_root_dir={}", root.display())]);
        assert_eq!(code, 0, "{name}: {err}");
        metrics.push(std::fs::read_to_string(root.join("lightning_logs/version_0/metrics.csv")).unwrap());
    }
    assert!(metrics[0].lines().count() > 8, "{}", metrics[0]);
    assert_eq!(metrics[0], metrics[1]);
}

/// `safetensors(...)`: the regression above from a `.safetensors` file (as
/// `safetensors.numpy.save_file` writes), int64 targets stored as i32, and
/// clear errors for a missing tensor, an int64 beyond i32 and an unread dtype.
#[test]
fn safetensors_source_trains_and_reports_bad_tensors() {
    use safetensors::tensor::{serialize, TensorView};
    use safetensors::Dtype;
    let dir = tempdir("safetensors-source");
    let (n, a) = (1024, 0.1);
    let mut rng = SplitMix(0x5eed_0102);
    let (x, y) = regression_data(&mut rng, n, a);
    let (tx, ty) = regression_data(&mut rng, 100, a);
    let bytes = |v: &[f32]| v.iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>();
    let (xb, yb, txb, tyb) = (bytes(&x), bytes(&y), bytes(&tx), bytes(&ty));
    let tensors = [
        ("inputs", TensorView::new(Dtype::F32, vec![n, 4], &xb).unwrap()),
        ("targets", TensorView::new(Dtype::F32, vec![n, 1], &yb).unwrap()),
        ("test_inputs", TensorView::new(Dtype::F32, vec![100, 4], &txb).unwrap()),
        ("test_targets", TensorView::new(Dtype::F32, vec![100, 1], &tyb).unwrap()),
    ];
    std::fs::write(dir.join("reg.safetensors"), serialize(tensors, None).unwrap()).unwrap();
    let text = REGRESSION.replace("npz(\"reg.npz\"", "safetensors(\"reg.safetensors\"");
    assert_eq!(text.matches("safetensors(").count(), 2, "the training and test sources");
    std::fs::write(dir.join("reg.jl"), &text).unwrap();
    let model = dir.join("reg.jl");
    let model = model.to_str().unwrap();
    let logs = format!("trainer.default_root_dir={}", dir.join("logs").display());
    let (code, out, err) = jlc_out(&["run", model, "--set", &logs]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("test_mse") && err.contains("100 test"), "{out}\n{err}");
    let tol = 6.0 * a / (n as f64).sqrt();
    let w = param(&last_ckpt(&dir.join("logs")), "w");
    for k in 0..4 {
        assert!((w[k] - W_TRUE[k]).abs() < tol, "w[{k}] = {}, true {}, tolerance {tol}", w[k], W_TRUE[k]);
    }

    // Loader-level: int64 labels become i32; bad tensors are errors naming file, tensor and offset.
    let xs = bytes(&[0.5; 6]);
    let labels: Vec<u8> = [3i64, 1, 4].iter().flat_map(|v| v.to_le_bytes()).collect();
    let too_big: Vec<u8> = [3i64, 1 << 40, 4].iter().flat_map(|v| v.to_le_bytes()).collect();
    let half = vec![0u8; 6];
    let file = |y: (Dtype, &[u8])| {
        let t = [
            ("x", TensorView::new(Dtype::F32, vec![3, 2], &xs).unwrap()),
            ("y", TensorView::new(y.0, vec![3], y.1).unwrap()),
        ];
        serialize(t, None).unwrap()
    };
    let ok = trainer::data::parse_safetensors("d.safetensors", &file((Dtype::I64, &labels)), "x", "y", 1.0).unwrap();
    assert_eq!(ok.y.values, Values::I32(vec![3, 1, 4]));
    let err = |bytes: Vec<u8>, y: &str| {
        trainer::data::parse_safetensors("d.safetensors", &bytes, "x", y, 1.0).unwrap_err().to_string()
    };
    assert_eq!(
        err(file((Dtype::I64, &labels)), "labels"),
        "d.safetensors: no tensor named \"labels\"; the file holds [\"x\", \"y\"]"
    );
    let big = file((Dtype::I64, &too_big));
    // y's second value: 8 + the header's length + y's start in the data + 8.
    let (header, meta) = safetensors::SafeTensors::read_metadata(&big).unwrap();
    let offset = 8 + header + meta.info("y").unwrap().data_offsets.0 + 8;
    assert_eq!(
        err(big, "y"),
        format!("d.safetensors (tensor \"y\"): at byte {offset}: int64 value 1099511627776 does not fit in i32 (the type batches use for integers)")
    );
    assert!(err(file((Dtype::F16, &half)), "y").contains("dtype F16 is not read"));
    assert!(err(b"not a safetensors file".to_vec(), "y").starts_with("d.safetensors: not a safetensors file"));
}

/// `data = synthetic("moons", ...)`: generated data from the model file,
/// with a drawn test split; a small MLP separates the moons (held-out test
/// accuracy, computed by `jlc`'s test loop), and mistakes in the call are
/// clear errors.
#[test]
fn synthetic_moons_train_end_to_end_and_bad_calls_are_errors() {
    let dir = tempdir("synthetic-moons");
    let model = r#"
use nn.{Linear, relu}
use losses.cross_entropy
use metrics.accuracy
use optim.adam

model Net {
    l1: Linear(2, 32)
    l2: Linear(32, 2)
    fn forward(self, x: f32[B, 2]) -> f32[B, 2] = self.l2(relu(self.l1(x)))
    fn training_step(self, x: f32[B, 2], y: i32[B]) -> f32 = cross_entropy(self.forward(x), y)
    fn test_step(self, x: f32[B, 2], y: i32[B]) {
        log("test_acc", accuracy(self.forward(x), y))
    }
    fn configure_optimizers(self) = adam(1e-2)
}

data = synthetic("moons", n = 2000, test = 500, noise = 0.1, seed = 3) { batch_size = 64 }
trainer { max_epochs = 10 }
"#;
    let file = dir.join("moons.jl");
    std::fs::write(&file, model).unwrap();
    let root = format!("trainer.default_root_dir={}", dir.display());
    let (code, out, err) = jlc_out(&["run", file.to_str().unwrap(), "--set", &root]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("2000 training and 0 validation examples, 500 test"), "{err}");
    let acc: f64 = out
        .lines()
        .chain(err.lines())
        .find_map(|l| l.trim().strip_prefix("test_acc").map(|v| v.trim().parse().unwrap()))
        .unwrap_or_else(|| panic!("no test_acc in {out}{err}"));
    // Linear on the moons reaches about 0.88; the MLP separates them.
    assert!(acc > 0.97, "test accuracy {acc}");

    for (call, says) in [
        ("synthetic(\"spirals\")", "takes the kind first: \"moons\", \"blobs\" or \"regression\""),
        ("synthetic(\"moons\", n = 0)", "synthetic data: `n = ...` is not a valid argument"),
        ("synthetic(\"blobs\", noise = -1.0)", "`noise` is a number >= 0"),
    ] {
        let bad = model.replace("synthetic(\"moons\", n = 2000, test = 500, noise = 0.1, seed = 3)", call);
        std::fs::write(&file, bad).unwrap();
        let (code, _, err) = jlc_out(&["check", file.to_str().unwrap()]);
        assert_eq!(code, 1, "{call}: {err}");
        assert!(err.contains(says), "{call}: {err}");
    }
}

/// Integer data used as indices are checked against what the steps index
/// before anything trains: a class label past `one_hot`'s classes, or a
/// token past an embedding's rows, named with its value, its example and
/// the bound; `jlc run` exits 1 with no run directory, `jlc check` too.
/// (Both had trained silently: one_hot of 12 over 10 classes is a row of
/// zeros, a loss of 0 and an accuracy of 0.)
#[test]
fn labels_and_tokens_outside_what_the_model_indexes_are_errors() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempdir("index-range");
    // The digits with example 5's label set to 12 (10 classes).
    let csv = {
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(std::fs::File::open(root.join("examples/data/digits.csv.gz")).unwrap()),
            &mut text,
        )
        .unwrap();
        let mut rows: Vec<String> = text.lines().map(str::to_string).collect();
        let mut fields: Vec<&str> = rows[5].split(',').collect();
        *fields.last_mut().unwrap() = "12";
        rows[5] = fields.join(",");
        rows.join("\n") + "\n"
    };
    std::fs::write(dir.join("digits.csv"), csv).unwrap();
    let model = std::fs::read_to_string(root.join("examples/digits_mlp.jl")).unwrap();
    assert!(model.contains("\"data/digits.csv.gz\""));
    let file = dir.join("digits.jl");
    std::fs::write(&file, model.replace("\"data/digits.csv.gz\"", "\"digits.csv\"")).unwrap();
    let logs = format!("trainer.default_root_dir={}", dir.join("logs").display());
    let file = file.to_str().unwrap();
    let want = "digits.csv: the targets (y) hold 12 at example 5 (counting from 0), but `training_step` uses them \
                as class labels of 10 classes (compared with 10 class columns, as `one_hot` and `cross_entropy` do: \
                the model's output has 10 classes): every value must be in [0, 10)";
    for command in ["run", "check"] {
        let (code, _, err) = jlc_out(&[command, file, "--set", &logs]);
        assert_eq!(code, 1, "{command}: {err}");
        assert!(err.contains(want), "{command}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    assert!(!dir.join("logs").exists(), "no run directory for a run that never started");
    // Tokens: the byte-level transformer with an embedding of 100 rows
    // meets 'i' (105) in its first sequence.
    let chars = root.join("examples/char_transformer.jl");
    let (code, _, err) =
        jlc_out(&["check", chars.to_str().unwrap(), "--set", "trainer.model=CharTransformer(vocab = 100)"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("the inputs (x) hold 105 at example 0 (counting from 0), but `training_step` uses them as indices into a table of 100 rows"),
        "{err}"
    );
    // Within range: both check clean.
    let (code, _, err) = jlc_out(&["check", chars.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
}
