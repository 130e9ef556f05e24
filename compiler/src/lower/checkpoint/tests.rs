//! `checkpoint(f)`: the gradient through it equals the gradient without it
//! (both run by the reference interpreter) and float64 central finite
//! differences of an MLP written here in Rust; and on a deep MLP the
//! gradient program's peak live memory (`ir::live`) is smaller.

use crate::ir::{interp, Func, Tensor};

const WRT: &str = "wrt = (a1, b1, c1, a2, b2, c2)";

/// Two blocks of `3 reps` tanh layers (weights a, b, c, a, b, c, ...) on x:
/// [n, d], loss sum(y^2); `main` prints the inputs, then the gradients of
/// each of `mains` ("plain", "ckpt").
fn program(n: usize, d: usize, reps: usize, mains: &[&str]) -> String {
    let mut body = "h".to_string();
    for _ in 0..reps {
        body = format!("tanh(tanh(tanh({body} @ a) @ b) @ c)");
    }
    let mut s = format!("fn block(h, a, b, c) = {body}\n");
    s += "fn plain(x, a1, b1, c1, a2, b2, c2) -> f32 {
    let y = block(block(x, a1, b1, c1), a2, b2, c2)
    sum(y * y)
}
fn ckpt(x, a1, b1, c1, a2, b2, c2) -> f32 {
    let y = checkpoint(block)(checkpoint(block)(x, a1, b1, c1), a2, b2, c2)
    sum(y * y)
}
fn main() {
";
    s += &format!("    let x = reshape(sin(linspace(0.0, 7.0, {})), ({n}, {d}))\n", n * d);
    for (k, w) in ["a1", "b1", "c1", "a2", "b2", "c2"].iter().enumerate() {
        s += &format!("    let {w} = reshape(cos(linspace({k}.0, {k}.5 + 3.0, {})), ({d}, {d})) * 0.6\n", d * d);
    }
    let mut printed = Vec::new();
    for f in mains {
        let names: Vec<String> = (0..6).map(|k| format!("{f}_{k}")).collect();
        s += &format!("    let ({}) = grad({f}, {WRT})(x, a1, b1, c1, a2, b2, c2)\n", names.join(", "));
        printed.extend(names);
    }
    s += &format!("    print(x, a1, b1, c1, a2, b2, c2, {})\n}}\n", printed.join(", "));
    s
}

fn compile(src: &str) -> Func {
    let (prog, diags) = crate::lower::load("t.jl", src);
    assert!(diags.is_empty(), "{diags:?}");
    let script = crate::compile_script(&prog, &crate::Options { no_opt: true, ..Default::default() })
        .unwrap_or_else(|d| panic!("{d:?}"));
    crate::ir::verify::assert_valid(&script.func, "checkpoint test");
    script.func
}

/// float64 loss of the MLP: w[0] is x (n x d), w[1..7] the weights (d x d).
fn loss64(w: &[Vec<f64>], n: usize, d: usize) -> f64 {
    let mut h = w[0].clone();
    for a in &w[1..] {
        let mut o = vec![0.0; n * d];
        for i in 0..n {
            for j in 0..d {
                o[i * d + j] = (0..d).map(|k| h[i * d + k] * a[k * d + j]).sum::<f64>().tanh();
            }
        }
        h = o;
    }
    h.iter().map(|v| v * v).sum()
}

#[test]
fn grad_of_checkpoint_equals_grad_and_finite_differences() {
    let (n, d) = (3, 4);
    let func = compile(&program(n, d, 1, &["plain", "ckpt"]));
    let out = interp::run(&func, &[]);
    assert_eq!(out.len(), 7 + 12, "inputs, then two tuples of six gradients");
    let inputs: Vec<Vec<f64>> = out[..7].iter().map(Tensor::to_f64_vec).collect();
    for k in 0..6 {
        let (g, c) = (out[7 + k].to_f64_vec(), out[13 + k].to_f64_vec());
        for (j, (&a, &b)) in g.iter().zip(&c).enumerate() {
            assert!((a - b).abs() <= 1e-6 * (1.0 + a.abs()), "weight {k}[{j}]: grad {a} vs checkpointed {b}");
        }
        // Central differences in f64 of every entry.
        for (j, &b) in c.iter().enumerate() {
            let h = 1e-5;
            let (mut p, mut m) = (inputs.clone(), inputs.clone());
            p[k + 1][j] += h;
            m[k + 1][j] -= h;
            let fd = (loss64(&p, n, d) - loss64(&m, n, d)) / (2.0 * h);
            assert!((b - fd).abs() <= 1e-4 + 1e-3 * fd.abs(), "weight {k}[{j}]: checkpointed {b} vs fd {fd}");
        }
    }
}

#[test]
fn checkpoint_lowers_peak_live_memory_of_a_deep_mlp_gradient() {
    // A batch of 256 rows of width 32: activations (32 KiB) outweigh the
    // weights (4 KiB), as in training.
    // Blocks of 12 layers.
    let (n, d) = (256, 32);
    let peak =
        |which: &str| crate::ir::live::peak_live_bytes(&crate::ir::dce::dce(&compile(&program(n, d, 4, &[which]))));
    let (plain, ckpt) = (peak("plain"), peak("ckpt"));
    eprintln!("peak live bytes of the gradient program: plain {plain}, checkpointed {ckpt}");
    // Without checkpointing the backward keeps the inner activations of both
    // blocks; with it only the blocks' inputs and outputs.
    assert!(ckpt < plain, "plain {plain}, checkpointed {ckpt}");
}
