//! The windowed ops' definitions (`interp`) against naive oracles written
//! here in f64 by another route: the input is materialized dilated and
//! padded, the kernel dilated, and windows are read off directly. Also the
//! text round trip of their attributes and the verifier's rejections.

use crate::ir::generate::Rng;
use crate::ir::{interp, parse, text, verify, Builder, Conv, DType, Tensor, Type, Window};

const SEED: u64 = 0xC0_4E;

fn random(rng: &mut Rng, dims: &[usize]) -> Vec<f64> {
    (0..dims.iter().product::<usize>()).map(|_| rng.uniform(-2.0, 2.0)).collect()
}

/// Dilates by `dil` and pads by `low`/`high` one 2-D plane (`fill` in the gaps).
#[allow(clippy::too_many_arguments)]
fn dilate_pad(
    plane: &[f64],
    h: usize,
    w: usize,
    dil: [usize; 2],
    low: [usize; 2],
    high: [usize; 2],
    fill: f64,
) -> (Vec<f64>, usize, usize) {
    let (hd, wd) = ((h - 1) * dil[0] + 1 + low[0] + high[0], (w - 1) * dil[1] + 1 + low[1] + high[1]);
    let mut out = vec![fill; hd * wd];
    for y in 0..h {
        for x in 0..w {
            out[(low[0] + y * dil[0]) * wd + low[1] + x * dil[1]] = plane[y * w + x];
        }
    }
    (out, hd, wd)
}

/// The conv oracle: NCHW x OIHW, groups, all in f64.
fn conv_oracle(x: &[f64], xd: &[usize], k: &[f64], kd: &[usize], a: &Conv) -> (Vec<f64>, Vec<usize>) {
    let (n, c, h, w) = (xd[0], xd[1], xd[2], xd[3]);
    let (o, cg, kh, kw) = (kd[0], kd[1], kd[2], kd[3]);
    let og = o / a.groups;
    let mut planes = Vec::new();
    let (mut hp, mut wp) = (0, 0);
    for plane in x.chunks(h * w) {
        let (p, ph, pw) = dilate_pad(plane, h, w, a.lhs_dilation, a.low, a.high, 0.0);
        planes.push(p);
        (hp, wp) = (ph, pw);
    }
    let mut kernels = Vec::new();
    let (mut khd, mut kwd) = (0, 0);
    for plane in k.chunks(kh * kw) {
        let (p, ph, pw) = dilate_pad(plane, kh, kw, a.rhs_dilation, [0, 0], [0, 0], 0.0);
        kernels.push(p);
        (khd, kwd) = (ph, pw);
    }
    let (oh, ow) = ((hp - khd) / a.stride[0] + 1, (wp - kwd) / a.stride[1] + 1);
    let mut out = Vec::new();
    for b in 0..n {
        for oc in 0..o {
            let group = oc / og;
            for y in 0..oh {
                for xo in 0..ow {
                    let mut acc = 0.0;
                    for ci in 0..cg {
                        let plane = &planes[b * c + group * cg + ci];
                        let kernel = &kernels[oc * cg + ci];
                        for ky in 0..khd {
                            for kx in 0..kwd {
                                acc +=
                                    plane[(y * a.stride[0] + ky) * wp + xo * a.stride[1] + kx] * kernel[ky * kwd + kx];
                            }
                        }
                    }
                    out.push(acc);
                }
            }
        }
    }
    (out, vec![n, o, oh, ow])
}

fn conv_specs() -> Vec<(Vec<usize>, Vec<usize>, Conv)> {
    let c = |stride, low, high, lhs_dilation, rhs_dilation, groups| Conv {
        stride,
        low,
        high,
        lhs_dilation,
        rhs_dilation,
        groups,
    };
    vec![
        (vec![1, 1, 5, 5], vec![1, 1, 3, 3], Conv::plain()),
        (vec![2, 3, 6, 5], vec![4, 3, 3, 2], c([2, 2], [1, 0], [1, 2], [1, 1], [1, 1], 1)),
        (vec![1, 2, 7, 6], vec![2, 2, 2, 3], c([1, 2], [0, 1], [0, 0], [1, 1], [3, 2], 1)),
        (vec![3, 4, 3, 3], vec![5, 4, 1, 1], Conv::plain()),
        (vec![1, 4, 4, 5], vec![6, 2, 2, 2], c([1, 1], [1, 1], [1, 1], [1, 1], [1, 1], 2)),
        (vec![2, 2, 3, 4], vec![3, 2, 3, 3], c([1, 2], [2, 1], [2, 3], [2, 3], [1, 1], 1)),
        (vec![1, 3, 5, 5], vec![3, 1, 2, 2], c([3, 2], [4, 0], [0, 4], [1, 2], [2, 1], 3)),
    ]
}

#[test]
fn conv2d_matches_the_naive_oracle() {
    let mut rng = Rng(SEED);
    for (xd, kd, attrs) in conv_specs() {
        let (x, k) = (random(&mut rng, &xd), random(&mut rng, &kd));
        let (want, want_dims) = conv_oracle(&x, &xd, &k, &kd, &attrs);
        for dtype in [DType::F64, DType::F32] {
            let mut b = Builder::new("conv", &[Type::new(dtype, &xd), Type::new(dtype, &kd)]);
            let y = b.conv2d(b.param(0), b.param(1), attrs.clone());
            let f = b.finish(vec![y]);
            verify::assert_valid(&f, "conv");
            let inputs = [Tensor::from_f64(dtype, &xd, &x), Tensor::from_f64(dtype, &kd, &k)];
            let got = &interp::run(&f, &inputs)[0];
            assert_eq!(got.shape.dims(), &want_dims[..], "{attrs:?} (seed {SEED:#x})");
            let tol = if dtype == DType::F64 { 1e-12 } else { 1e-5 };
            for (g, w) in got.to_f64_vec().iter().zip(&want) {
                assert!((g - w).abs() <= tol * (1.0 + w.abs()), "{dtype} {attrs:?}: {g} vs {w} (seed {SEED:#x})");
            }
        }
    }
}

/// The window oracle: the operand materialized padded with the reduction's
/// identity, then each window reduced directly (any rank, via flat indices).
fn window_oracle(x: &[f64], dims: &[usize], w: &Window, is_max: bool) -> (Vec<f64>, Vec<usize>) {
    let rank = dims.len();
    let padded: Vec<usize> = (0..rank).map(|d| w.low[d] + dims[d] + w.high[d]).collect();
    let fill = if is_max { f64::NEG_INFINITY } else { 0.0 };
    let strides = |ds: &[usize]| crate::ir::Shape(ds.to_vec()).strides();
    let (ps, xs) = (strides(&padded), strides(dims));
    let mut p = vec![fill; padded.iter().product()];
    for (flat, &v) in x.iter().enumerate() {
        let at: usize = (0..rank).map(|d| (flat / xs[d] % dims[d] + w.low[d]) * ps[d]).sum();
        p[at] = v;
    }
    let out: Vec<usize> = (0..rank).map(|d| (padded[d] - w.size[d]) / w.stride[d] + 1).collect();
    let (os, ws) = (strides(&out), strides(&w.size));
    let res = (0..out.iter().product::<usize>())
        .map(|o| {
            (0..w.size.iter().product::<usize>())
                .map(|k| {
                    let at: usize =
                        (0..rank).map(|d| ((o / os[d] % out[d]) * w.stride[d] + k / ws[d] % w.size[d]) * ps[d]).sum();
                    p[at]
                })
                .fold(fill, |a, b| if is_max { a.max(b) } else { a + b })
        })
        .collect();
    (res, out)
}

#[test]
fn reduce_window_matches_the_naive_oracle() {
    let mut rng = Rng(SEED ^ 1);
    let specs: Vec<(Vec<usize>, Window)> = vec![
        (
            vec![1, 2, 4, 4],
            Window { size: vec![1, 1, 2, 2], stride: vec![1, 1, 2, 2], low: vec![0; 4], high: vec![0; 4] },
        ),
        (vec![2, 5, 5], Window { size: vec![1, 3, 3], stride: vec![1, 2, 2], low: vec![0, 1, 1], high: vec![0, 1, 1] }),
        (vec![7], Window { size: vec![3], stride: vec![2], low: vec![4], high: vec![3] }),
        (vec![3, 4], Window { size: vec![3, 1], stride: vec![1, 3], low: vec![0, 2], high: vec![2, 0] }),
    ];
    for (dims, w) in specs {
        let x = random(&mut rng, &dims);
        for is_max in [false, true] {
            let (want, want_dims) = window_oracle(&x, &dims, &w, is_max);
            for dtype in [DType::F64, DType::F32] {
                let mut b = Builder::new("window", &[Type::new(dtype, &dims)]);
                let y = b.reduce_window(b.param(0), w.clone(), is_max);
                let f = b.finish(vec![y]);
                verify::assert_valid(&f, "window");
                let got = &interp::run(&f, &[Tensor::from_f64(dtype, &dims, &x)])[0];
                assert_eq!(got.shape.dims(), &want_dims[..], "{w:?}");
                let tol = if dtype == DType::F64 { 1e-12 } else { 1e-5 };
                for (g, e) in got.to_f64_vec().iter().zip(&want) {
                    let ok = g == e || (g - e).abs() <= tol * (1.0 + e.abs());
                    assert!(ok, "{dtype} max={is_max} {w:?}: {g} vs {e} (seed {SEED:#x})");
                }
            }
        }
    }
}

#[test]
fn reverse_reads_back_to_front() {
    let mut b = Builder::new("rev", &[Type::new(DType::I32, &[2, 3])]);
    let y = b.reverse(b.param(0), vec![1]);
    let z = b.reverse(b.param(0), vec![0, 1]);
    let f = b.finish(vec![y, z]);
    let out = interp::run(&f, &[Tensor::i32(&[2, 3], vec![1, 2, 3, 4, 5, 6])]);
    assert_eq!(out[0], Tensor::i32(&[2, 3], vec![3, 2, 1, 6, 5, 4]));
    assert_eq!(out[1], Tensor::i32(&[2, 3], vec![6, 5, 4, 3, 2, 1]));
}

#[test]
fn text_round_trips_and_bad_attributes_are_errors() {
    let mut b = Builder::new("f", &[Type::new(DType::F32, &[2, 4, 6, 6]), Type::new(DType::F32, &[6, 2, 3, 2])]);
    let attrs =
        Conv { stride: [2, 1], low: [1, 0], high: [0, 2], lhs_dilation: [1, 2], rhs_dilation: [2, 1], groups: 2 };
    let y = b.conv2d(b.param(0), b.param(1), attrs);
    let w = Window { size: vec![1, 1, 2, 2], stride: vec![1, 1, 2, 1], low: vec![0, 0, 1, 0], high: vec![0, 0, 0, 1] };
    let m = b.reduce_window(y, w.clone(), true);
    let s = b.reduce_window(y, w, false);
    let r = b.reverse(s, vec![2, 3]);
    let f = b.finish(vec![m, r]);
    let printed = text::print(&f);
    assert!(
        printed.contains(
            "conv2d{stride=[2, 1], low=[1, 0], high=[0, 2], lhs_dilation=[1, 2], rhs_dilation=[2, 1], groups=2} %0, %1"
        ),
        "{printed}"
    );
    assert!(
        printed.contains("reduce_window_max{size=[1, 1, 2, 2], stride=[1, 1, 2, 1], low=[0, 0, 1, 0]"),
        "{printed}"
    );
    assert_eq!(parse::parse(&printed).as_ref(), Ok(&f));
    // A wrong attribute length, a channel mismatch, a window too large: errors, not panics.
    let bad = [
        printed.replace("stride=[2, 1], low", "stride=[2, 1, 1], low"),
        printed.replace("groups=2", "groups=1"),
        printed.replace("size=[1, 1, 2, 2]", "size=[1, 1, 20, 2]"),
        printed.replace("reverse{dims=[2, 3]}", "reverse{dims=[3, 2]}"),
    ];
    for text in bad {
        assert!(parse::parse(&text).is_err(), "accepted:\n{text}");
    }
}
