use super::FlushDenormals;
use std::hint::black_box;

/// 2^-140: a subnormal f32 (the smallest normal is 2^-126).
fn tiny_product() -> f32 {
    black_box(f32::powi(2.0, -70)) * black_box(f32::powi(2.0, -70))
}

#[test]
fn subnormal_results_flush_to_zero_only_while_the_guard_lives() {
    let before = tiny_product();
    assert!(before > 0.0 && !before.is_normal(), "IEEE mode gives a subnormal: {before:e}");
    {
        let _flush = FlushDenormals::new();
        let flushed = tiny_product();
        if cfg!(target_arch = "x86_64") {
            assert_eq!(flushed, 0.0, "FTZ flushes the subnormal product");
            // DAZ: a subnormal input reads as zero.
            assert_eq!(black_box(before) * black_box(2.0f32), 0.0);
        }
    }
    assert_eq!(tiny_product(), before, "the drop restores IEEE subnormals");
}

/// `x * y` over 4 elements (the JIT's fused loop) on both CPU engines.
fn run_product(backend: crate::Backend, flush: bool) -> Vec<f32> {
    use compiler::ir::{Builder, DType, Tensor, Type};
    let ty = Type::new(DType::F32, &[4]);
    let mut b = Builder::new("product", &[ty.clone(), ty]);
    let (x, y) = (b.param(0), b.param(1));
    let p = b.mul(x, y);
    let mut exe = crate::Executable::compile(b.finish(vec![p]), backend).expect("compiles");
    exe.set_flush_denormals(flush);
    let tiny = f32::powi(2.0, -70);
    let x = Tensor::f32(&[4], vec![tiny, 1.0, tiny, -tiny]);
    let y = Tensor::f32(&[4], vec![tiny, tiny, 3.0, tiny]);
    let out = exe.run(&[x, y]).expect("runs");
    out[0].as_f32().expect("f32").to_vec()
}

#[test]
fn executables_flush_subnormals_by_default_and_keep_them_when_asked() {
    let tiny = f32::powi(2.0, -70);
    let subnormal = f32::powi(2.0, -140);
    for backend in [crate::Backend::Cpu, crate::Backend::Interpreter] {
        let ieee = run_product(backend, false);
        assert_eq!(ieee, vec![subnormal, tiny, 3.0 * tiny, -subnormal], "{backend:?} without flushing");
        if cfg!(target_arch = "x86_64") {
            let flushed = run_product(backend, true);
            assert_eq!(flushed[1..3], [tiny, 3.0 * tiny], "{backend:?}: normal results are untouched");
            assert_eq!(flushed[0], 0.0, "{backend:?}");
            assert_eq!(flushed[3], 0.0, "{backend:?}: -subnormal flushes to (-)0");
        }
    }
    // The run restored the thread's mode.
    assert!(tiny_product() > 0.0);
}
