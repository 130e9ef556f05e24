//! Autodiff tests. Oracles: central finite differences of the interpreter
//! (`ir::interp::run`) in float64, and the JVP/VJP inner-product identity.
//!
//! Every case is built as a float32 program, transformed, then widened with
//! `Func::widened_to_f64` and run in f64. Per case (see `check_case`):
//! 1. `grad` vs central FD along random directions (JAX's `<t, grad>` check),
//! 2. `jvp` vs the same FD,
//! 3. `<J t, c> == <t, J^T c>` (our `jvp` vs our `vjp`) to 1e-12 relative,
//!    on the op's unreduced result with a random cotangent,
//! 4. second order: `grad` of `sum(grad f * v)` vs FD of `grad f`, and
//!    forward-over-reverse (`jvp` of `grad f`) vs that Hessian (symmetry).

use super::{grad, inline, jvp, vjp};
use crate::ir::interp::run;
use crate::ir::verify::assert_valid;
use crate::ir::{Builder, Conv, DType, Func, Op, Shape, Tensor, Type, ValueId, Window};

const EPS: f64 = 1e-6;
const ATOL: f64 = 1e-5;
const RTOL: f64 = 1e-3;
const SEED: u64 = 0x5eed_5eed;

/// The shapes every elementwise op is checked on.
const SHAPES: &[&[usize]] = &[&[], &[3], &[3, 4], &[3, 1], &[1, 4], &[2, 3, 4], &[2, 1, 4]];

// ---------------------------------------------------------------- harness

/// splitmix64: a tiny deterministic PRNG.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
    }
    fn sample(&mut self, domain: Domain) -> f64 {
        match domain {
            Domain::Any => self.uniform(-2.0, 2.0),
            Domain::Positive => self.uniform(0.5, 2.0),
            Domain::NonZero => {
                let m = self.uniform(0.5, 2.0);
                if self.next_u64() & 1 == 0 {
                    m
                } else {
                    -m
                }
            }
        }
    }
    fn tensor(&mut self, ty: &Type, domain: Domain) -> Tensor {
        let values: Vec<f64> = (0..ty.shape.num_elements()).map(|_| self.sample(domain)).collect();
        Tensor::f64(ty.shape.dims(), values)
    }
}

/// Where an input is drawn from (domain-aware inputs: log, sqrt and the pow
/// base need positive values, divisors stay away from zero).
#[derive(Clone, Copy)]
enum Domain {
    Any,
    Positive,
    NonZero,
}

type Body = Box<dyn Fn(&mut Builder, &[ValueId]) -> ValueId>;

/// One function under test: float32 params (all differentiated) and a body
/// that returns one float value of any shape.
struct Case {
    name: String,
    params: Vec<(Vec<usize>, Domain)>,
    body: Body,
}

fn case(name: impl Into<String>, params: Vec<(&[usize], Domain)>, body: Body) -> Case {
    Case { name: name.into(), params: params.into_iter().map(|(s, d)| (s.to_vec(), d)).collect(), body }
}

fn f32_ty(dims: &[usize]) -> Type {
    Type::new(DType::F32, dims)
}

fn sum_all(b: &mut Builder, x: ValueId) -> ValueId {
    let rank = b.ty(x).shape.rank();
    b.reduce_sum(x, (0..rank).collect())
}

/// `sum_k sum(values[k] * param(first + k))`: a scalar weighing each value
/// by a param of its type (at least one value).
fn sum_of_products(b: &mut Builder, values: &[ValueId], first: usize) -> ValueId {
    let sums: Vec<ValueId> = values
        .iter()
        .enumerate()
        .map(|(k, &v)| {
            let w = b.param(first + k);
            let prod = b.mul(v, w);
            sum_all(b, prod)
        })
        .collect();
    sums[1..].iter().fold(sums[0], |acc, &s| b.add(acc, s))
}

impl Case {
    fn param_types(&self) -> Vec<Type> {
        self.params.iter().map(|(s, _)| f32_ty(s)).collect()
    }
    fn wrt(&self) -> Vec<usize> {
        (0..self.params.len()).collect()
    }
    /// `raw(x...) = body(x...)`, the op's own (unreduced) result.
    fn raw(&self) -> Func {
        let mut b = Builder::new(&self.name, &self.param_types());
        let params: Vec<ValueId> = (0..self.params.len()).map(|i| b.param(i)).collect();
        let y = (self.body)(&mut b, &params);
        b.finish(vec![y])
    }
    /// `f(x..., c) = sum(body(x...) * c)`: a scalar whose gradient reaches
    /// every element of the body's result; `c` is data (not differentiated).
    fn reduced(&self) -> Func {
        let out_ty = self.raw().output_types()[0].clone();
        let mut types = self.param_types();
        types.push(out_ty);
        let mut b = Builder::new(&self.name, &types);
        let params: Vec<ValueId> = (0..self.params.len()).map(|i| b.param(i)).collect();
        let y = (self.body)(&mut b, &params);
        let c = b.param(self.params.len());
        let yc = b.mul(y, c);
        let s = sum_all(&mut b, yc);
        b.finish(vec![s])
    }
}

/// Runs a float32 program at float64.
fn eval(func: &Func, inputs: &[Tensor]) -> Vec<Tensor> {
    assert_valid(func, &func.name);
    run(&func.widened_to_f64(), inputs)
}

fn dot(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.shape, b.shape, "dot of different shapes");
    a.to_f64_vec().iter().zip(b.to_f64_vec()).map(|(x, y)| x * y).sum()
}

fn dots(a: &[Tensor], b: &[Tensor]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| dot(x, y)).sum()
}

/// `x + s t`, elementwise.
fn axpy(x: &Tensor, t: &Tensor, s: f64) -> Tensor {
    let v = x.to_f64_vec().iter().zip(t.to_f64_vec()).map(|(a, b)| a + s * b).collect();
    Tensor::f64(x.shape.dims(), v)
}

/// Moves the first `k` inputs along `t` by `s`; the rest stay.
fn shifted(inputs: &[Tensor], t: &[Tensor], s: f64) -> Vec<Tensor> {
    inputs.iter().enumerate().map(|(i, x)| if i < t.len() { axpy(x, &t[i], s) } else { x.clone() }).collect()
}

#[track_caller]
fn assert_close(analytic: f64, reference: f64, atol: f64, rtol: f64, what: &str) {
    let ok = (analytic - reference).abs() <= atol + rtol * reference.abs();
    assert!(ok, "{what}: analytic {analytic:e} vs reference {reference:e} (seed {SEED:#x})");
}

/// The full check of one case; see the file doc.
fn check_case(case: &Case, rng: &mut Rng) {
    let name = &case.name;
    let wrt = case.wrt();
    let n = wrt.len();
    let f = case.reduced();
    let c_ty = f.param_types()[n].clone();
    let g = grad(&f, &wrt);
    assert_valid(&g, "grad");
    assert_eq!(g.param_types(), f.param_types(), "{name}: grad keeps params");
    assert_eq!(g.outputs.len(), 1 + n, "{name}: grad outputs");
    let fj = jvp(&f, &wrt);
    assert_valid(&fj, "jvp");

    for trial in 0..2 {
        let mut inputs: Vec<Tensor> = case.params.iter().map(|(s, d)| rng.tensor(&f32_ty(s), *d)).collect();
        inputs.push(rng.tensor(&c_ty, Domain::Any));
        let t: Vec<Tensor> = case.params.iter().map(|(s, _)| rng.tensor(&f32_ty(s), Domain::Any)).collect();
        let what = |check: &str| format!("{name} trial {trial}: {check}");

        // 1. grad vs FD along t.
        let fd = (eval(&f, &shifted(&inputs, &t, EPS))[0].scalar_value()
            - eval(&f, &shifted(&inputs, &t, -EPS))[0].scalar_value())
            / (2.0 * EPS);
        let g_out = eval(&g, &inputs);
        assert_eq!(g_out[0], eval(&f, &inputs)[0], "{}", what("grad output 0 is f"));
        let grads = &g_out[1..];
        for (gi, (s, _)) in grads.iter().zip(&case.params) {
            assert_eq!(gi.shape.dims(), &s[..], "{}", what("grad shape"));
        }
        assert_close(dots(&t, grads), fd, ATOL, RTOL, &what("<t, grad> vs FD"));

        // 2. jvp vs FD.
        let mut jvp_inputs = inputs.clone();
        jvp_inputs.extend(t.iter().cloned());
        let tangent = eval(&fj, &jvp_inputs)[1].scalar_value();
        assert_close(tangent, fd, ATOL, RTOL, &what("jvp vs FD"));

        // 3. <J t, c> == <t, J^T c> on the unreduced op.
        check_transpose(&case.raw(), &wrt, &inputs[..n], &t, rng, &what("jvp/vjp identity"));

        // 4. Second order.
        check_second_order(&f, &g, &wrt, &inputs, &t, rng, &what("second order"));
    }
}

/// `<J t, c> == <t, J^T c>` to 1e-12 relative, with `J` from our `jvp` and
/// `J^T` from our `vjp`, for a random cotangent `c` of each float output.
fn check_transpose(func: &Func, wrt: &[usize], inputs: &[Tensor], t: &[Tensor], rng: &mut Rng, what: &str) {
    let (lhs, rhs, _) = jvp_vjp_products(func, wrt, inputs, t, rng);
    let ok = (lhs - rhs).abs() <= 1e-12 * lhs.abs().max(rhs.abs());
    assert!(ok, "{what}: <Jt, c> = {lhs:e} vs <t, J^T c> = {rhs:e} (seed {SEED:#x})");
}

/// `(<J t, c>, <t, J^T c>, |c|)` for a random cotangent `c` of each output.
fn jvp_vjp_products(func: &Func, wrt: &[usize], inputs: &[Tensor], t: &[Tensor], rng: &mut Rng) -> (f64, f64, f64) {
    let fj = jvp(func, wrt);
    let fv = vjp(func, wrt);
    assert_valid(&fj, "jvp");
    assert_valid(&fv, "vjp");
    let n_out = func.outputs.len();
    let mut jvp_inputs = inputs.to_vec();
    jvp_inputs.extend(t.iter().cloned());
    let jt = eval(&fj, &jvp_inputs);
    let cs: Vec<Tensor> = func.output_types().iter().map(|ty| rng.tensor(ty, Domain::Any)).collect();
    let mut vjp_inputs = inputs.to_vec();
    vjp_inputs.extend(cs.iter().cloned());
    let jtc = eval(&fv, &vjp_inputs);
    (dots(&jt[n_out..], &cs), dots(t, &jtc[n_out..]), dots(&cs, &cs).sqrt())
}

/// Checks `<t, H v>` (reverse over reverse, `hessian_vector_func`) against
/// FD of `grad f` along `t`, and against forward-over-reverse `jvp(g)`.
fn check_second_order(f: &Func, g: &Func, wrt: &[usize], inputs: &[Tensor], t: &[Tensor], rng: &mut Rng, what: &str) {
    let n = wrt.len();
    let hv_func = hessian_vector_func(f, g, wrt);
    let v: Vec<Tensor> = t.iter().map(|ti| rng.tensor(&ti.ty(), Domain::Any)).collect();
    let mut h_inputs = inputs.to_vec();
    h_inputs.extend(v.iter().cloned());
    let hv = eval(&hv_func, &h_inputs);
    let t_hv = dots(t, &hv[1..]);
    let g_plus = eval(g, &shifted(inputs, t, EPS));
    let g_minus = eval(g, &shifted(inputs, t, -EPS));
    let fd: f64 = (0..n).map(|k| (dot(&g_plus[1 + k], &v[k]) - dot(&g_minus[1 + k], &v[k])) / (2.0 * EPS)).sum();
    assert_close(t_hv, fd, ATOL, RTOL, &format!("{what}: <t, grad(grad f . v)> vs FD of grad"));
    let ht_v = forward_over_reverse(g, wrt, inputs, t, &v);
    assert_close(ht_v, t_hv, 1e-9, 1e-9, &format!("{what}: <jvp(grad f) t, v> vs <t, H v>"));
}

/// Forward over reverse: `jvp(g)` along `t` gives `H t`; returns `<H t, v>`.
fn forward_over_reverse(g: &Func, wrt: &[usize], inputs: &[Tensor], t: &[Tensor], v: &[Tensor]) -> f64 {
    let gj = jvp(g, wrt);
    assert_valid(&gj, "jvp of grad");
    let mut gj_inputs = inputs.to_vec();
    gj_inputs.extend(t.iter().cloned());
    let gj_out = eval(&gj, &gj_inputs);
    dots(&gj_out[g.outputs.len() + 1..], v)
}

/// `grad h` for `h(x..., v...) = sum_i sum(grad_i f(x...) * v_i)`, built from
/// the IR of `g = grad f`: its outputs after `h` are `H v`.
fn hessian_vector_func(f: &Func, g: &Func, wrt: &[usize]) -> Func {
    let n = wrt.len();
    let mut types = f.param_types();
    types.extend(wrt.iter().map(|&p| f.param_types()[p].clone()));
    let mut b = Builder::new("hvp", &types);
    let args: Vec<ValueId> = (0..f.n_params).map(|i| b.param(i)).collect();
    let map = inline(&mut b, g, &args);
    let grads: Vec<ValueId> = (0..n).map(|k| map[g.outputs[1 + k].index()]).collect();
    let total = sum_of_products(&mut b, &grads, f.n_params);
    let h = b.finish(vec![total]);
    let hv_func = grad(&h, wrt);
    assert_valid(&hv_func, "grad of grad");
    hv_func
}

fn check_all(cases: Vec<Case>) {
    let mut rng = Rng(SEED);
    for case in &cases {
        check_case(case, &mut rng);
    }
}

// ---------------------------------------------------------------- per-op cases

fn unary_cases(op: Op, domain: Domain) -> Vec<Case> {
    SHAPES
        .iter()
        .map(|&s| {
            let op = op.clone();
            case(format!("{op:?}{s:?}"), vec![(s, domain)], Box::new(move |b, p| b.unary(op.clone(), p[0])))
        })
        .collect()
}

/// The NumPy broadcast of two shapes (trailing alignment).
fn broadcast_shape(a: &[usize], b: &[usize]) -> Vec<usize> {
    let rank = a.len().max(b.len());
    (0..rank)
        .map(|i| {
            let da = if i + a.len() >= rank { a[i + a.len() - rank] } else { 1 };
            let db = if i + b.len() >= rank { b[i + b.len() - rank] } else { 1 };
            da.max(db)
        })
        .collect()
}

/// `op(broadcast(x), broadcast(y))` on every shape in SHAPES (same shapes)
/// and on pairs that broadcast, including size-1 dims expanding.
fn binary_cases(op: Op, dx: Domain, dy: Domain) -> Vec<Case> {
    let mut pairs: Vec<(&[usize], &[usize])> = SHAPES.iter().map(|&s| (s, s)).collect();
    pairs.extend([
        (&[3, 1][..], &[1, 4][..]),
        (&[2, 3, 4][..], &[4][..]),
        (&[][..], &[2, 1, 4][..]),
        (&[2, 1, 4][..], &[3, 1][..]),
    ]);
    pairs
        .into_iter()
        .map(|(sa, sb)| {
            let op = op.clone();
            let out = Shape(broadcast_shape(sa, sb));
            case(
                format!("{op:?}{sa:?}{sb:?}"),
                vec![(sa, dx), (sb, dy)],
                Box::new(move |b, p| {
                    let x = b.broadcast_to(p[0], &out);
                    let y = b.broadcast_to(p[1], &out);
                    b.binary(op.clone(), x, y)
                }),
            )
        })
        .collect()
}

#[test]
fn neg_gradients() {
    check_all(unary_cases(Op::Neg, Domain::Any));
}

#[test]
fn exp_gradients() {
    check_all(unary_cases(Op::Exp, Domain::Any));
}

#[test]
fn log_gradients() {
    check_all(unary_cases(Op::Log, Domain::Positive));
}

#[test]
fn tanh_gradients() {
    check_all(unary_cases(Op::Tanh, Domain::Any));
}

#[test]
fn sqrt_gradients() {
    check_all(unary_cases(Op::Sqrt, Domain::Positive));
}

#[test]
fn add_gradients() {
    check_all(binary_cases(Op::Add, Domain::Any, Domain::Any));
}

#[test]
fn sub_gradients() {
    check_all(binary_cases(Op::Sub, Domain::Any, Domain::Any));
}

#[test]
fn mul_gradients() {
    let mut cases = binary_cases(Op::Mul, Domain::Any, Domain::Any);
    // x * x: one value used twice, so its cotangents must add.
    cases.push(case("mul_self", vec![(&[2, 3], Domain::Any)], Box::new(|b, p| b.mul(p[0], p[0]))));
    check_all(cases);
}

#[test]
fn div_gradients() {
    check_all(binary_cases(Op::Div, Domain::Any, Domain::NonZero));
}

#[test]
fn max_gradients() {
    check_all(binary_cases(Op::Max, Domain::Any, Domain::Any));
}

#[test]
fn min_gradients() {
    check_all(binary_cases(Op::Min, Domain::Any, Domain::Any));
}

#[test]
fn pow_gradients() {
    let mut cases = binary_cases(Op::Pow, Domain::Positive, Domain::Any);
    // A constant exponent: only the base is differentiated.
    cases.push(case(
        "pow_const_exponent",
        vec![(&[3, 4], Domain::Positive)],
        Box::new(|b, p| {
            let ty = b.ty(p[0]).clone();
            let e = b.full(2.5, &ty);
            b.binary(Op::Pow, p[0], e)
        }),
    ));
    check_all(cases);
}

#[test]
fn comparison_gradients() {
    // select(cmp(x, y), x, y * y) + convert(cmp(x, y)): the comparison itself
    // contributes nothing; the gradient flows through the chosen branch.
    let mut cases = Vec::new();
    for op in [Op::Lt, Op::Le, Op::Gt, Op::Ge, Op::Eq, Op::Ne] {
        for &s in &[&[][..], &[3, 4][..], &[2, 1, 4][..]] {
            let op = op.clone();
            cases.push(case(
                format!("{op:?}{s:?}"),
                vec![(s, Domain::Any), (s, Domain::Any)],
                Box::new(move |b, p| {
                    let cond = b.binary(op.clone(), p[0], p[1]);
                    let yy = b.mul(p[1], p[1]);
                    let picked = b.select(cond, p[0], yy);
                    let as_float = b.convert(cond, DType::F32);
                    b.add(picked, as_float)
                }),
            ));
        }
    }
    check_all(cases);
}

#[test]
fn select_gradients() {
    let mut cases = Vec::new();
    for &s in SHAPES {
        cases.push(case(
            format!("select{s:?}"),
            vec![(s, Domain::Any), (s, Domain::Any)],
            Box::new(|b, p| {
                let ty = b.ty(p[0]).clone();
                let zero = b.full(0.0, &ty);
                let cond = b.binary(Op::Gt, p[0], zero);
                let e = b.unary(Op::Exp, p[1]);
                b.select(cond, e, p[0])
            }),
        ));
    }
    // One branch is a constant: only the other carries a gradient.
    cases.push(case(
        "select_const_branch",
        vec![(&[3, 4], Domain::Any)],
        Box::new(|b, p| {
            let ty = b.ty(p[0]).clone();
            let zero = b.full(0.0, &ty);
            let cond = b.binary(Op::Lt, p[0], zero);
            b.select(cond, zero, p[0])
        }),
    ));
    check_all(cases);
}

#[test]
fn convert_gradients() {
    let cases = vec![
        // float -> float: f32 -> f64 -> exp -> f32 (an identity after widening,
        // but the rule must still route the cotangent back).
        case(
            "convert_float",
            vec![(&[3, 4], Domain::Any)],
            Box::new(|b, p| {
                let wide = b.convert(p[0], DType::F64);
                let e = b.unary(Op::Exp, wide);
                b.convert(e, DType::F32)
            }),
        ),
        // float -> int -> float is piecewise constant: only the outer x counts.
        case(
            "convert_int",
            vec![(&[2, 3], Domain::Any)],
            Box::new(|b, p| {
                let ty = b.ty(p[0]).clone();
                let three = b.full(3.0, &ty);
                let scaled = b.mul(p[0], three);
                let as_int = b.convert(scaled, DType::I32);
                let back = b.convert(as_int, DType::F32);
                b.mul(p[0], back)
            }),
        ),
        // bool -> float.
        case(
            "convert_bool",
            vec![(&[], Domain::Any)],
            Box::new(|b, p| {
                let zero = b.constant(0.0, DType::F32);
                let pos = b.binary(Op::Gt, p[0], zero);
                let as_float = b.convert(pos, DType::F32);
                let e = b.unary(Op::Exp, p[0]);
                b.mul(e, as_float)
            }),
        ),
    ];
    check_all(cases);
}

#[test]
fn broadcast_gradients() {
    let specs: Vec<(&[usize], &[usize], Vec<usize>)> = vec![
        (&[], &[3, 4], vec![]),
        (&[3], &[2, 3, 4], vec![1]),
        (&[3, 1], &[2, 3, 4], vec![1, 2]),
        (&[1, 4], &[3, 4], vec![0, 1]),
        (&[2, 1, 4], &[2, 3, 4], vec![0, 1, 2]),
        (&[1, 1], &[2, 1, 3], vec![1, 2]),
        (&[4], &[4, 2], vec![0]),
    ];
    let cases = specs
        .into_iter()
        .map(|(src, dst, dims)| {
            let shape = Shape(dst.to_vec());
            case(
                format!("broadcast{src:?}->{dst:?}"),
                vec![(src, Domain::Any)],
                Box::new(move |b, p| {
                    // tanh after the broadcast makes the gradient depend on x.
                    let x = b.broadcast(p[0], &shape, dims.clone());
                    b.unary(Op::Tanh, x)
                }),
            )
        })
        .collect();
    check_all(cases);
}

#[test]
fn reshape_gradients() {
    let specs: Vec<(&[usize], &[usize])> =
        vec![(&[2, 3, 4], &[6, 4]), (&[3, 4], &[12]), (&[], &[1, 1]), (&[3, 1], &[3]), (&[2, 1, 4], &[4, 2])];
    let cases = specs
        .into_iter()
        .map(|(src, dst)| {
            let shape = Shape(dst.to_vec());
            case(
                format!("reshape{src:?}->{dst:?}"),
                vec![(src, Domain::Any)],
                Box::new(move |b, p| {
                    let x = b.reshape(p[0], &shape);
                    b.mul(x, x)
                }),
            )
        })
        .collect();
    check_all(cases);
}

#[test]
fn transpose_gradients() {
    let specs: Vec<(&[usize], Vec<usize>)> = vec![
        (&[3, 4], vec![1, 0]),
        (&[2, 3, 4], vec![2, 0, 1]),
        (&[2, 1, 4], vec![1, 2, 0]),
        (&[2, 3, 4], vec![0, 2, 1]),
    ];
    let cases = specs
        .into_iter()
        .map(|(src, perm)| {
            case(
                format!("transpose{src:?}{perm:?}"),
                vec![(src, Domain::Any)],
                Box::new(move |b, p| {
                    let x = b.transpose(p[0], perm.clone());
                    b.unary(Op::Tanh, x)
                }),
            )
        })
        .collect();
    check_all(cases);
}

fn reduce_specs() -> Vec<(&'static [usize], Vec<usize>)> {
    vec![
        (&[2, 3, 4], vec![1]),
        (&[2, 3, 4], vec![0, 2]),
        (&[2, 3, 4], vec![0, 1, 2]),
        (&[3], vec![0]),
        (&[3, 1], vec![1]),
        (&[2, 1, 4], vec![2]),
    ]
}

#[test]
fn reduce_sum_gradients() {
    let cases = reduce_specs()
        .into_iter()
        .map(|(src, axes)| {
            case(
                format!("reduce_sum{src:?}{axes:?}"),
                vec![(src, Domain::Any)],
                Box::new(move |b, p| {
                    let s = b.reduce_sum(p[0], axes.clone());
                    b.mul(s, s)
                }),
            )
        })
        .collect();
    check_all(cases);
}

#[test]
fn reduce_max_gradients() {
    let cases = reduce_specs()
        .into_iter()
        .map(|(src, axes)| {
            case(
                format!("reduce_max{src:?}{axes:?}"),
                vec![(src, Domain::Any)],
                Box::new(move |b, p| {
                    let m = b.reduce_max(p[0], axes.clone());
                    b.mul(m, m)
                }),
            )
        })
        .collect();
    check_all(cases);
}

#[test]
fn matmul_gradients() {
    let specs: Vec<(&[usize], &[usize])> =
        vec![(&[3, 4], &[4, 2]), (&[1, 4], &[4, 1]), (&[2, 3], &[3, 5]), (&[3, 1], &[1, 3])];
    let mut cases: Vec<Case> = specs
        .into_iter()
        .map(|(sa, sb)| {
            case(
                format!("matmul{sa:?}{sb:?}"),
                vec![(sa, Domain::Any), (sb, Domain::Any)],
                Box::new(|b, p| b.matmul(p[0], p[1])),
            )
        })
        .collect();
    // x @ x^T: both operands come from one value.
    cases.push(case(
        "matmul_gram",
        vec![(&[3, 2], Domain::Any)],
        Box::new(|b, p| {
            let t = b.transpose(p[0], vec![1, 0]);
            b.matmul(p[0], t)
        }),
    ));
    check_all(cases);
}

#[test]
fn leaf_gradients() {
    // Constant, Iota and Param are leaves: x * iota + 2.5 has gradient iota.
    let cases = vec![case(
        "leaves",
        vec![(&[3, 4], Domain::Any)],
        Box::new(|b, p| {
            let ty = b.ty(p[0]).clone();
            let iota = b.iota(ty.clone(), 1);
            let c = b.full(2.5, &ty);
            let xi = b.mul(p[0], iota);
            let y = b.add(xi, c);
            b.mul(y, p[0])
        }),
    )];
    check_all(cases);
}

#[test]
fn log1p_gradients() {
    check_all(unary_cases(Op::Log1p, Domain::Positive));
}

#[test]
fn expm1_gradients() {
    check_all(unary_cases(Op::Expm1, Domain::Any));
}

#[test]
fn logistic_gradients() {
    check_all(unary_cases(Op::Logistic, Domain::Any));
}

#[test]
fn sin_and_cos_gradients() {
    let mut cases = unary_cases(Op::Sin, Domain::Any);
    cases.extend(unary_cases(Op::Cos, Domain::Any));
    check_all(cases);
}

#[test]
fn rsqrt_gradients() {
    check_all(unary_cases(Op::Rsqrt, Domain::Positive));
}

#[test]
fn erf_gradients() {
    check_all(unary_cases(Op::Erf, Domain::Any));
}

#[test]
fn abs_and_sign_gradients() {
    // Away from 0, where abs has slope ±1 and sign is flat.
    let mut cases = unary_cases(Op::Abs, Domain::NonZero);
    cases.extend(unary_cases(Op::Sign, Domain::NonZero));
    // sign(x) * x^2: the flat factor must not block the other path.
    cases.push(case(
        "sign_times_square",
        vec![(&[3, 4], Domain::NonZero)],
        Box::new(|b, p| {
            let s = b.unary(Op::Sign, p[0]);
            let sq = b.mul(p[0], p[0]);
            b.mul(s, sq)
        }),
    ));
    check_all(cases);
}

#[test]
fn stop_gradient_blocks_derivatives() {
    // f(x) = sum(x * stop_gradient(x)): the gradient is stop_gradient(x) = x,
    // not the 2x that finite differences of the values would give.
    let mut b = Builder::new("sg", &[f32_ty(&[3])]);
    let x = b.param(0);
    let sg = b.unary(Op::StopGradient, x);
    let prod = b.mul(x, sg);
    let s = sum_all(&mut b, prod);
    let func = b.finish(vec![s]);
    let g = grad(&func, &[0]);
    assert_valid(&g, "grad");
    let x_v = Tensor::f64(&[3], vec![1.0, -2.0, 0.5]);
    assert_eq!(eval(&g, std::slice::from_ref(&x_v))[1], x_v);
    let fj = jvp(&func, &[0]);
    let t = Tensor::f64(&[3], vec![1.0, 1.0, 2.0]);
    assert_eq!(eval(&fj, &[x_v.clone(), t.clone()])[1].scalar_value(), 1.0 - 2.0 + 1.0);
    // Only through stop_gradient: zero, in both modes.
    let mut b = Builder::new("sg_only", &[f32_ty(&[3])]);
    let sg = b.unary(Op::StopGradient, b.param(0));
    let e = b.unary(Op::Exp, sg);
    let func = b.finish(vec![e]);
    check_transpose(&func, &[0], std::slice::from_ref(&x_v), &[t], &mut Rng(SEED), "stop_gradient identity");
    let gv = eval(&vjp(&func, &[0]), &[x_v.clone(), Tensor::f64(&[3], vec![1.0; 3])]);
    assert_eq!(gv[1], Tensor::f64(&[3], vec![0.0; 3]));
}

#[test]
fn argmax_gradients() {
    // x * broadcast(float(argmax(x))): argmax is flat, so the gradient is
    // the index itself; ties have probability zero on random inputs.
    let cases = [(&[3, 4][..], 1), (&[3, 4][..], 0), (&[2, 3, 4][..], 2), (&[5][..], 0)]
        .into_iter()
        .map(|(s, axis)| {
            case(
                format!("argmax{s:?} axis {axis}"),
                vec![(s, Domain::Any)],
                Box::new(move |b, p| {
                    let shape = b.ty(p[0]).shape.clone();
                    let a = b.argmax(p[0], axis);
                    let af = b.convert(a, DType::F32);
                    let kept: Vec<usize> = (0..shape.rank()).filter(|&d| d != axis).collect();
                    let ab = b.broadcast(af, &shape, kept);
                    b.mul(p[0], ab)
                }),
            )
        })
        .collect();
    check_all(cases);
}

/// (operand dims, and start/limit/stride or low/high/interior per dim).
type WindowSpec = (&'static [usize], Vec<usize>, Vec<usize>, Vec<usize>);

#[test]
fn slice_gradients() {
    let specs: Vec<WindowSpec> = vec![
        (&[5], vec![1], vec![4], vec![1]),
        (&[7], vec![1], vec![7], vec![3]),
        (&[3, 4], vec![0, 1], vec![3, 4], vec![2, 2]),
        (&[2, 3, 4], vec![1, 0, 1], vec![2, 3, 3], vec![1, 2, 1]),
        (&[3, 4], vec![1, 2], vec![2, 2], vec![1, 1]),
        (&[4, 1], vec![3, 0], vec![4, 1], vec![5, 1]),
    ];
    let cases = specs
        .into_iter()
        .map(|(src, start, limit, stride)| {
            case(
                format!("slice{src:?}{start:?}{limit:?}{stride:?}"),
                vec![(src, Domain::Any)],
                Box::new(move |b, p| {
                    let y = b.slice(p[0], start.clone(), limit.clone(), stride.clone());
                    b.mul(y, y)
                }),
            )
        })
        .collect();
    check_all(cases);
}

#[test]
fn pad_gradients() {
    let specs: Vec<WindowSpec> = vec![
        (&[3], vec![1], vec![2], vec![0]),
        (&[3], vec![0], vec![0], vec![2]),
        (&[2, 3], vec![1, 0], vec![0, 1], vec![1, 1]),
        (&[2, 1, 3], vec![0, 2, 0], vec![1, 0, 0], vec![0, 3, 1]),
        (&[], vec![], vec![], vec![]),
    ];
    let cases = specs
        .into_iter()
        .map(|(src, low, high, interior)| {
            case(
                format!("pad{src:?}{low:?}{high:?}{interior:?}"),
                vec![(src, Domain::Any)],
                Box::new(move |b, p| {
                    let y = b.pad(p[0], low.clone(), high.clone(), interior.clone());
                    b.unary(Op::Tanh, y)
                }),
            )
        })
        .collect();
    check_all(cases);
}

#[test]
fn concat_gradients() {
    let cases = vec![
        case(
            "concat axis 0",
            vec![(&[2, 3], Domain::Any), (&[1, 3], Domain::Any)],
            Box::new(|b, p| {
                let y = b.concat(vec![p[0], p[1]], 0);
                b.mul(y, y)
            }),
        ),
        // One operand used twice: its cotangent pieces must add.
        case(
            "concat axis 1, repeated operand",
            vec![(&[2, 3], Domain::Any), (&[2, 1], Domain::Any)],
            Box::new(|b, p| {
                let y = b.concat(vec![p[0], p[1], p[0]], 1);
                b.unary(Op::Tanh, y)
            }),
        ),
        // A constant operand: no cotangent for it, a zero tangent in jvp.
        case(
            "concat with a constant",
            vec![(&[4], Domain::Any)],
            Box::new(|b, p| {
                let c = b.full(1.5, &f32_ty(&[2]));
                let y = b.concat(vec![c, p[0]], 0);
                b.mul(y, y)
            }),
        ),
    ];
    check_all(cases);
}

// ---------------------------------------------------------------- models

/// A 2-layer MLP with a softmax cross-entropy loss built from primitives:
/// params (x: data [4,3], w1 [3,5], b1 [5], w2 [5,2], b2 [2], y: one-hot [4,2]).
/// Output 0 is the mean loss, output 1 the logits.
fn mlp() -> Func {
    let types = [f32_ty(&[4, 3]), f32_ty(&[3, 5]), f32_ty(&[5]), f32_ty(&[5, 2]), f32_ty(&[2]), f32_ty(&[4, 2])];
    let mut b = Builder::new("mlp", &types);
    let p: Vec<ValueId> = (0..types.len()).map(|i| b.param(i)).collect();
    let (x, w1, b1, w2, b2, y) = (p[0], p[1], p[2], p[3], p[4], p[5]);
    let h_shape = Shape(vec![4, 5]);
    let o_shape = Shape(vec![4, 2]);
    let xw = b.matmul(x, w1);
    let b1b = b.broadcast_to(b1, &h_shape);
    let pre = b.add(xw, b1b);
    let h = b.unary(Op::Tanh, pre);
    let hw = b.matmul(h, w2);
    let b2b = b.broadcast_to(b2, &o_shape);
    let logits = b.add(hw, b2b);
    let loss = mean_soft_cross_entropy(&mut b, logits, y, false);
    b.finish(vec![loss, logits])
}

/// The mean over rows of `logsumexp(logits) - sum(logits * target)` (a
/// soft-target cross-entropy; logits `[rows, C]`), logsumexp shifted by the
/// row max as a stable softmax does; `stop_shift`: the shift behind
/// stop_gradient, as `stdlib/nn.jl` writes it.
fn mean_soft_cross_entropy(b: &mut Builder, logits: ValueId, target: ValueId, stop_shift: bool) -> ValueId {
    let shape = b.ty(logits).shape.clone();
    let rows = shape.0[0];
    let mut m = b.reduce_max(logits, vec![1]);
    if stop_shift {
        m = b.unary(Op::StopGradient, m);
    }
    let mb = b.broadcast(m, &shape, vec![0]);
    let shifted = b.sub(logits, mb);
    let e = b.unary(Op::Exp, shifted);
    let se = b.reduce_sum(e, vec![1]);
    let lse = b.unary(Op::Log, se);
    let lse = b.add(lse, m);
    let picked = b.mul(logits, target);
    let picked = b.reduce_sum(picked, vec![1]);
    let per_row = b.sub(lse, picked);
    let total = b.reduce_sum(per_row, vec![0]);
    let inverse = b.constant(1.0 / rows as f64, DType::F32);
    b.mul(total, inverse)
}

fn mlp_inputs(rng: &mut Rng) -> Vec<Tensor> {
    let func = mlp();
    let types = func.param_types();
    let mut inputs: Vec<Tensor> = types[..5].iter().map(|ty| rng.tensor(ty, Domain::Any)).collect();
    let labels: Vec<f64> = (0..8).map(|i| if (i / 2 + i) % 2 == 0 { 1.0 } else { 0.0 }).collect();
    inputs.push(Tensor::f64(&[4, 2], labels));
    inputs
}

#[test]
fn mlp_gradient_matches_finite_differences() {
    let mut rng = Rng(SEED);
    let func = mlp();
    let wrt = [1, 2, 3, 4];
    let g = grad(&func, &wrt);
    assert_valid(&g, "grad");
    assert_eq!(g.outputs.len(), 2 + wrt.len());
    for trial in 0..3 {
        let inputs = mlp_inputs(&mut rng);
        let t: Vec<Tensor> = wrt.iter().map(|&p| rng.tensor(&func.param_types()[p], Domain::Any)).collect();
        // Direction on the weights only; data and labels stay fixed.
        let mut full_t: Vec<Tensor> = vec![Tensor::f64(&[4, 3], vec![0.0; 12])];
        full_t.extend(t.iter().cloned());
        let fd = (eval(&func, &shifted(&inputs, &full_t, EPS))[0].scalar_value()
            - eval(&func, &shifted(&inputs, &full_t, -EPS))[0].scalar_value())
            / (2.0 * EPS);
        let out = eval(&g, &inputs);
        assert_close(dots(&t, &out[2..]), fd, ATOL, RTOL, &format!("mlp trial {trial}: <t, grad> vs FD"));
    }
}

#[test]
fn mlp_jvp_vjp_identity() {
    let mut rng = Rng(SEED ^ 1);
    let func = mlp();
    for wrt in [vec![1, 2, 3, 4], vec![0, 1, 2, 3, 4, 5], vec![3]] {
        for trial in 0..3 {
            let inputs = mlp_inputs(&mut rng);
            let primal: Vec<Tensor> = inputs.clone();
            let t: Vec<Tensor> = wrt.iter().map(|&p| rng.tensor(&func.param_types()[p], Domain::Any)).collect();
            let fj = jvp(&func, &wrt);
            let fv = vjp(&func, &wrt);
            let mut jvp_inputs = primal.clone();
            jvp_inputs.extend(t.iter().cloned());
            let jt = eval(&fj, &jvp_inputs);
            let cs: Vec<Tensor> = func.output_types().iter().map(|ty| rng.tensor(ty, Domain::Any)).collect();
            let mut vjp_inputs = primal.clone();
            vjp_inputs.extend(cs.iter().cloned());
            let jtc = eval(&fv, &vjp_inputs);
            let lhs = dots(&jt[2..], &cs);
            let rhs = dots(&t, &jtc[2..]);
            assert!(
                (lhs - rhs).abs() <= 1e-12 * lhs.abs().max(rhs.abs()),
                "mlp wrt {wrt:?} trial {trial}: <Jt, c> = {lhs:e} vs <t, J^T c> = {rhs:e} (seed {SEED:#x})"
            );
        }
    }
}

#[test]
fn mlp_second_order() {
    let mut rng = Rng(SEED ^ 2);
    let func = mlp();
    // Drop the logits output so output 0 is the only one, as grad-of-grad wants.
    let loss_only = Func { outputs: vec![func.outputs[0]], ..func.clone() };
    let wrt = [1, 2, 3, 4];
    let g = grad(&loss_only, &wrt);
    let inputs = mlp_inputs(&mut rng);
    let t: Vec<Tensor> = wrt.iter().map(|&p| rng.tensor(&func.param_types()[p], Domain::Any)).collect();
    // check_second_order shifts the first len(t) inputs; wrt here starts at 1,
    // so run it on a version whose param order puts the weights first.
    let reordered = move_params_first(&loss_only, &wrt);
    let g_re = grad(&reordered, &[0, 1, 2, 3]);
    let inputs_re: Vec<Tensor> = [1, 2, 3, 4, 0, 5].iter().map(|&i| inputs[i].clone()).collect();
    assert_eq!(eval(&g_re, &inputs_re)[1..], eval(&g, &inputs)[1..]);
    check_second_order(&reordered, &g_re, &[0, 1, 2, 3], &inputs_re, &t, &mut rng, "mlp second order");
}

/// The same function with params `first` moved to the front (in order).
fn move_params_first(func: &Func, first: &[usize]) -> Func {
    let mut order: Vec<usize> = first.to_vec();
    order.extend((0..func.n_params).filter(|p| !first.contains(p)));
    let types: Vec<Type> = order.iter().map(|&p| func.param_types()[p].clone()).collect();
    let mut b = Builder::new(&func.name, &types);
    let mut args = vec![ValueId(0); func.n_params];
    for (new, &old) in order.iter().enumerate() {
        args[old] = b.param(new);
    }
    let map = inline(&mut b, func, &args);
    let outputs = func.outputs.iter().map(|o| map[o.index()]).collect();
    b.finish(outputs)
}

// ---------------------------------------------------------------- structure

fn count_op(func: &Func, op: &Op) -> usize {
    func.insts.iter().filter(|inst| &inst.op == op).count()
}

/// `loss(x, w, y) = sum((x @ w - y)^2)`.
fn linear_model() -> Func {
    let types = [f32_ty(&[4, 3]), f32_ty(&[3, 2]), f32_ty(&[4, 2])];
    let mut b = Builder::new("linear", &types);
    let (x, w, y) = (b.param(0), b.param(1), b.param(2));
    let pred = b.matmul(x, w);
    let err = b.sub(pred, y);
    let sq = b.mul(err, err);
    let loss = sum_all(&mut b, sq);
    b.finish(vec![loss])
}

#[test]
fn grad_wrt_weights_computes_no_data_gradient() {
    let func = linear_model();
    let g_w = grad(&func, &[1]);
    assert_valid(&g_w, "grad");
    // Forward x @ w, plus dw = x^T @ ct; no dx = ct @ w^T.
    assert_eq!(count_op(&g_w, &Op::MatMul), 2, "{}", crate::ir::text::print(&g_w));
    // The one transpose is x^T: w^T (needed only for dx) is absent.
    assert_eq!(count_op(&g_w, &Op::Transpose { perm: vec![1, 0] }), 1);
    // The result is already dead-code free.
    assert_eq!(crate::ir::dce::dce(&g_w), g_w);
    let g_all = grad(&func, &[0, 1]);
    assert_eq!(count_op(&g_all, &Op::MatMul), 3);
    // Both agree on dw.
    let mut rng = Rng(SEED);
    let inputs: Vec<Tensor> = func.param_types().iter().map(|ty| rng.tensor(ty, Domain::Any)).collect();
    assert_eq!(eval(&g_w, &inputs)[1], eval(&g_all, &inputs)[2]);
}

#[test]
fn grad_of_unreached_param_is_zero() {
    let types = [f32_ty(&[2]), f32_ty(&[3]), Type::new(DType::I32, &[2])];
    let mut b = Builder::new("f", &types);
    let x = b.param(0);
    let e = b.unary(Op::Exp, x);
    let s = sum_all(&mut b, e);
    let func = b.finish(vec![s]);
    let g = grad(&func, &[1, 0, 2]);
    assert_valid(&g, "grad");
    assert_eq!(g.output_types(), vec![f32_ty(&[]), f32_ty(&[3]), f32_ty(&[2]), Type::new(DType::I32, &[2])]);
    let inputs =
        [Tensor::f64(&[2], vec![0.0, 1.0]), Tensor::f64(&[3], vec![1.0, 2.0, 3.0]), Tensor::i32(&[2], vec![4, 5])];
    let out = eval(&g, &inputs);
    assert_eq!(out[1], Tensor::f64(&[3], vec![0.0; 3]));
    assert_eq!(out[2], Tensor::f64(&[2], vec![1.0, 1.0f64.exp()]));
    assert_eq!(out[3], Tensor::i32(&[2], vec![0, 0]));
}

#[test]
fn vjp_and_jvp_signatures() {
    // Outputs: a float, an int and another float; only floats get cotangents
    // (vjp) and tangents (jvp).
    let types = [f32_ty(&[3]), f32_ty(&[])];
    let mut b = Builder::new("f", &types);
    let (x, s) = (b.param(0), b.param(1));
    let sb = b.broadcast_to(s, &Shape(vec![3]));
    let y = b.mul(x, sb);
    let n = b.convert(x, DType::I32);
    let t = b.unary(Op::Tanh, s);
    let func = b.finish(vec![y, n, t]);
    let fv = vjp(&func, &[1]);
    assert_valid(&fv, "vjp");
    assert_eq!(fv.param_types(), vec![f32_ty(&[3]), f32_ty(&[]), f32_ty(&[3]), f32_ty(&[])]);
    assert_eq!(fv.output_types(), vec![f32_ty(&[3]), Type::new(DType::I32, &[3]), f32_ty(&[]), f32_ty(&[])]);
    let fj = jvp(&func, &[1]);
    assert_valid(&fj, "jvp");
    assert_eq!(fj.param_types(), vec![f32_ty(&[3]), f32_ty(&[]), f32_ty(&[])]);
    assert_eq!(
        fj.output_types(),
        vec![f32_ty(&[3]), Type::new(DType::I32, &[3]), f32_ty(&[]), f32_ty(&[3]), f32_ty(&[])]
    );
    // d/ds: vjp gives sum(ct_y * x) + ct_t (1 - tanh(s)^2); check by hand.
    let x_v = Tensor::f64(&[3], vec![1.0, -2.0, 0.5]);
    let s_v = Tensor::f64(&[], vec![0.3]);
    let out =
        eval(&fv, &[x_v.clone(), s_v.clone(), Tensor::f64(&[3], vec![1.0, 1.0, 2.0]), Tensor::f64(&[], vec![2.0])]);
    let expect = (1.0 - 2.0 + 1.0) + 2.0 * (1.0 - 0.3f64.tanh().powi(2));
    assert!((out[3].scalar_value() - expect).abs() < 1e-14);
    let out = eval(&fj, &[x_v, s_v, Tensor::f64(&[], vec![1.0])]);
    assert_eq!(out[3], Tensor::f64(&[3], vec![1.0, -2.0, 0.5]));
    assert!((out[4].scalar_value() - (1.0 - 0.3f64.tanh().powi(2))).abs() < 1e-14);
}

#[test]
fn max_and_min_ties_go_to_the_left_operand() {
    for op in [Op::Max, Op::Min] {
        let mut b = Builder::new("tie", &[f32_ty(&[]), f32_ty(&[])]);
        let (x, y) = (b.param(0), b.param(1));
        let m = b.binary(op.clone(), x, y);
        let func = b.finish(vec![m]);
        let g = grad(&func, &[0, 1]);
        let inputs = [Tensor::f64(&[], vec![1.5]), Tensor::f64(&[], vec![1.5])];
        let out = eval(&g, &inputs);
        assert_eq!((out[1].scalar_value(), out[2].scalar_value()), (1.0, 0.0), "{op:?}");
        // Forward mode makes the same choice: the tangent is dx's.
        let fj = jvp(&func, &[0, 1]);
        let mut jvp_inputs = inputs.to_vec();
        jvp_inputs.extend([Tensor::f64(&[], vec![3.0]), Tensor::f64(&[], vec![5.0])]);
        assert_eq!(eval(&fj, &jvp_inputs)[1].scalar_value(), 3.0, "{op:?}");
        let t = [Tensor::f64(&[], vec![0.7]), Tensor::f64(&[], vec![-1.3])];
        check_transpose(&func, &[0, 1], &inputs, &t, &mut Rng(SEED), &format!("{op:?} tie identity"));
    }
}

#[test]
fn reduce_max_ties_split_evenly() {
    let mut b = Builder::new("tie", &[f32_ty(&[2, 4])]);
    let x = b.param(0);
    let m = b.reduce_max(x, vec![1]);
    let s = sum_all(&mut b, m);
    let func = b.finish(vec![s]);
    let g = grad(&func, &[0]);
    let inputs = [Tensor::f64(&[2, 4], vec![1.0, 3.0, 3.0, 2.0, 5.0, 5.0, 5.0, 0.0])];
    let out = eval(&g, &inputs);
    let third = 1.0 / 3.0;
    assert_eq!(out[1], Tensor::f64(&[2, 4], vec![0.0, 0.5, 0.5, 0.0, third, third, third, 0.0]));
    // Forward mode: the tangent of each max is the mean of the tied tangents.
    let fj = jvp(&func, &[0]);
    let t = Tensor::f64(&[2, 4], vec![9.0, 1.0, 2.0, 9.0, 3.0, 6.0, 9.0, 9.0]);
    let out = eval(&fj, &[inputs[0].clone(), t.clone()]);
    assert_eq!(out[1].scalar_value(), 1.5 + 6.0);
    check_transpose(&func, &[0], &inputs, &[t], &mut Rng(SEED), "reduce_max tie identity");
}

#[test]
fn grad_of_grad_is_plain_ir() {
    // d^2/dx^2 sum(x^3) = 6x: take grad twice through the IR.
    let mut b = Builder::new("cube", &[f32_ty(&[3])]);
    let x = b.param(0);
    let x2 = b.mul(x, x);
    let x3 = b.mul(x2, x);
    let s = sum_all(&mut b, x3);
    let func = b.finish(vec![s]);
    let g = grad(&func, &[0]);
    // sum(grad) as a new scalar output 0, so it can be differentiated again.
    let mut b = Builder::new("sum_grad", &[f32_ty(&[3])]);
    let x = b.param(0);
    let map = inline(&mut b, &g, &[x]);
    let s = sum_all(&mut b, map[g.outputs[1].index()]);
    let h = b.finish(vec![s]);
    let gg = grad(&h, &[0]);
    assert_valid(&gg, "grad of grad");
    let out = eval(&gg, &[Tensor::f64(&[3], vec![1.0, -2.0, 0.5])]);
    assert_eq!(out[1], Tensor::f64(&[3], vec![6.0, -12.0, 3.0]));
}

#[test]
fn mlp_grad_runs_in_float32() {
    // The transforms keep the program's dtype: run the f32 gradient program
    // at f32 and compare with the same program widened to f64.
    let mut rng = Rng(SEED ^ 3);
    let g = grad(&mlp(), &[1, 2, 3, 4]);
    assert_valid(&g, "grad");
    let inputs = mlp_inputs(&mut rng);
    let inputs_f32: Vec<Tensor> =
        inputs.iter().map(|x| Tensor::from_f64(DType::F32, x.shape.dims(), &x.to_f64_vec())).collect();
    let narrow = run(&g, &inputs_f32);
    let wide = eval(&g, &inputs_f32.iter().map(|x| Tensor::f64(x.shape.dims(), x.to_f64_vec())).collect::<Vec<_>>());
    for (n, w) in narrow.iter().zip(&wide) {
        assert_eq!(n.dtype(), DType::F32);
        for (a, b) in n.to_f64_vec().iter().zip(w.to_f64_vec()) {
            assert!((a - b).abs() <= 1e-5 + 1e-4 * b.abs(), "f32 {a} vs f64 {b}");
        }
    }
}

mod generated;
mod scan;
mod transformer;
// ---------------------------------------------------------------- windowed ops

/// (input dims, kernel dims, attributes) of one conv case.
type ConvSpec = (&'static [usize], &'static [usize], Conv);

fn conv(
    stride: [usize; 2],
    low: [usize; 2],
    high: [usize; 2],
    lhs_d: [usize; 2],
    rhs_d: [usize; 2],
    groups: usize,
) -> Conv {
    Conv { stride, low, high, lhs_dilation: lhs_d, rhs_dilation: rhs_d, groups }
}

/// Stride 2, padding, dilations of both kinds, 1x1, non-square, batch > 1,
/// C > 1, groups, and paddings larger than the kernel (whose transposes need
/// negative padding, done with a slice).
fn conv_specs() -> Vec<ConvSpec> {
    vec![
        (&[1, 1, 4, 4], &[1, 1, 3, 3], Conv::plain()),
        (&[2, 3, 5, 5], &[2, 3, 3, 3], conv([2, 2], [1, 1], [1, 1], [1, 1], [1, 1], 1)),
        (&[1, 2, 6, 5], &[3, 2, 2, 2], conv([1, 1], [0, 0], [0, 0], [1, 1], [2, 1], 1)),
        (&[2, 4, 3, 3], &[2, 4, 1, 1], Conv::plain()),
        (&[1, 2, 4, 7], &[2, 2, 2, 3], conv([1, 2], [0, 2], [1, 0], [1, 1], [1, 1], 1)),
        (&[1, 4, 4, 4], &[6, 2, 2, 2], conv([1, 1], [1, 0], [0, 1], [1, 1], [1, 1], 2)),
        (&[2, 2, 3, 3], &[2, 2, 3, 3], conv([1, 1], [2, 1], [2, 2], [2, 2], [1, 1], 1)),
        (&[1, 1, 3, 3], &[1, 1, 2, 2], conv([1, 1], [3, 2], [3, 0], [1, 1], [1, 1], 1)),
        (&[1, 1, 7, 6], &[1, 1, 2, 2], conv([3, 2], [0, 0], [0, 0], [1, 1], [1, 1], 1)),
        (&[1, 1, 4, 4], &[1, 1, 2, 2], conv([2, 2], [0, 1], [3, 3], [1, 1], [1, 1], 1)),
        (&[1, 2, 5, 4], &[2, 1, 2, 2], conv([2, 1], [1, 1], [0, 1], [2, 1], [1, 2], 2)),
    ]
}

#[test]
fn conv2d_gradients() {
    // grad, jvp, the transpose identity and second order (grad of grad
    // through the transposed convs) on every spec, both operands differentiated.
    let cases = conv_specs()
        .into_iter()
        .map(|(x, w, attrs)| {
            case(
                format!("conv2d{x:?}{w:?}{attrs:?}"),
                vec![(x, Domain::Any), (w, Domain::Any)],
                Box::new(move |b, p| b.conv2d(p[0], p[1], attrs.clone())),
            )
        })
        .collect();
    check_all(cases);
}

#[test]
fn conv2d_squared_has_second_derivatives() {
    // sum(conv(x, w)^2 * c) has a non-zero Hessian in x and w alike, so the
    // second-order check exercises the VJP of every transposed conv.
    let cases = conv_specs()
        .into_iter()
        .take(6)
        .map(|(x, w, attrs)| {
            case(
                format!("conv2d^2{x:?}{w:?}"),
                vec![(x, Domain::Any), (w, Domain::Any)],
                Box::new(move |b, p| {
                    let y = b.conv2d(p[0], p[1], attrs.clone());
                    b.mul(y, y)
                }),
            )
        })
        .collect();
    check_all(cases);
}

/// (operand dims, window size, stride, low, high).
type PoolSpec = (&'static [usize], Vec<usize>, Vec<usize>, Vec<usize>, Vec<usize>);

/// Windows where every window holds at least one operand element (a window
/// all in padding has max -inf, which FD cannot check).
fn pool_specs() -> Vec<PoolSpec> {
    vec![
        (&[1, 2, 4, 4], vec![1, 1, 2, 2], vec![1, 1, 2, 2], vec![0; 4], vec![0; 4]),
        (&[1, 1, 5, 5], vec![1, 1, 3, 3], vec![1, 1, 2, 2], vec![0, 0, 1, 1], vec![0, 0, 1, 1]),
        (&[3, 5], vec![2, 3], vec![1, 2], vec![1, 0], vec![0, 2]),
        (&[2, 3, 4], vec![1, 2, 2], vec![1, 1, 3], vec![0, 1, 0], vec![0, 0, 1]),
        (&[6], vec![3], vec![1], vec![2], vec![2]),
    ]
}

#[test]
fn reduce_window_max_gradients() {
    let cases = pool_specs()
        .into_iter()
        .map(|(x, size, stride, low, high)| {
            let w = Window { size, stride, low, high };
            case(
                format!("reduce_window_max{x:?}{w:?}"),
                vec![(x, Domain::Any)],
                Box::new(move |b, p| {
                    let y = b.reduce_window(p[0], w.clone(), true);
                    b.mul(y, y)
                }),
            )
        })
        .collect();
    check_all(cases);
}

/// `select_and_scatter(x, ct)` as an op of its own (not only inside the
/// window max's gradient): linear in the scattered `ct`, piecewise constant
/// in the operand `x` (which only picks each window's first maximum), over
/// the pooling geometries, overlapping windows and padding included.
#[test]
fn select_and_scatter_gradients() {
    let cases = pool_specs()
        .into_iter()
        .map(|(x, size, stride, low, high)| {
            let w = Window { size, stride, low, high };
            let ct = crate::ir::window::reduce_window_dims(&f32_ty(x), &w).expect("a valid window");
            case(
                format!("select_and_scatter{x:?}{w:?}"),
                vec![(x, Domain::Any), (&ct[..], Domain::Any)],
                Box::new(move |b, p| {
                    let y = b.select_and_scatter(p[0], p[1], w.clone());
                    b.mul(y, y)
                }),
            )
        })
        .collect();
    check_all(cases);
}

#[test]
fn reduce_window_sum_gradients() {
    let mut specs = pool_specs();
    // Padding beyond the window (a window all in padding sums to 0).
    specs.push((&[4, 4], vec![2, 2], vec![1, 2], vec![3, 0], vec![0, 3]));
    specs.push((&[5], vec![2], vec![3], vec![0], vec![4]));
    let cases = specs
        .into_iter()
        .map(|(x, size, stride, low, high)| {
            let w = Window { size, stride, low, high };
            case(
                format!("reduce_window_sum{x:?}{w:?}"),
                vec![(x, Domain::Any)],
                Box::new(move |b, p| {
                    let y = b.reduce_window(p[0], w.clone(), false);
                    b.mul(y, y)
                }),
            )
        })
        .collect();
    check_all(cases);
}

#[test]
fn reduce_window_max_gradient_goes_to_the_first_maximum() {
    // Ties: [1, 3, 3, 2] with windows of 2 at stride 1 has maxima 3, 3, 3;
    // each window's cotangent goes to its first 3 (index 1 for the first two
    // windows, index 2 for the third).
    let mut b = Builder::new("pool", &[f32_ty(&[4])]);
    let w = Window { size: vec![2], stride: vec![1], low: vec![0], high: vec![0] };
    let y = b.reduce_window(b.param(0), w.clone(), true);
    let s = sum_all(&mut b, y);
    let f = b.finish(vec![s]);
    let g = grad(&f, &[0]);
    let out = eval(&g, &[Tensor::f64(&[4], vec![1.0, 3.0, 3.0, 2.0])]);
    assert_eq!(out[1], Tensor::f64(&[4], vec![0.0, 2.0, 1.0, 0.0]));
    // One pass (max pooling's backward), no per-offset argmax/pad chain.
    assert_eq!(count_op(&g, &Op::SelectAndScatter(w)), 1, "{}", crate::ir::text::print(&g));
    assert!(!g.insts.iter().any(|inst| matches!(inst.op, Op::ArgMax { .. } | Op::Pad { .. })));
}

#[test]
fn reverse_gradients() {
    let specs: Vec<(&[usize], Vec<usize>)> = vec![(&[5], vec![0]), (&[3, 4], vec![0, 1]), (&[2, 3, 4], vec![1])];
    let cases = specs
        .into_iter()
        .map(|(x, dims)| {
            case(
                format!("reverse{x:?}{dims:?}"),
                vec![(x, Domain::Any)],
                Box::new(move |b, p| {
                    let y = b.reverse(p[0], dims.clone());
                    b.mul(y, p[0])
                }),
            )
        })
        .collect();
    check_all(cases);
}

#[test]
fn tiny_cnn_gradients() {
    // conv (pad 1) -> relu -> 2x2 max pool -> linear, every parameter and the
    // input differentiated, second order included.
    let cases = vec![case(
        "tiny_cnn",
        vec![(&[2, 1, 6, 6], Domain::Any), (&[3, 1, 3, 3], Domain::Any), (&[27, 4], Domain::Any)],
        Box::new(|b, p| {
            let h = b.conv2d(p[0], p[1], conv([1, 1], [1, 1], [1, 1], [1, 1], [1, 1], 1));
            let ty = b.ty(h).clone();
            let zero = b.full(0.0, &ty);
            let h = b.binary(Op::Max, h, zero);
            let w = Window { size: vec![1, 1, 2, 2], stride: vec![1, 1, 2, 2], low: vec![0; 4], high: vec![0; 4] };
            let h = b.reduce_window(h, w, true);
            let h = b.reshape(h, &Shape(vec![2, 27]));
            b.matmul(h, p[2])
        }),
    )];
    check_all(cases);
}

/// The "loss with reductions" as a model of its own: layer norm over
/// rows (mean and variance by sums, rsqrt), a gain, then a soft-target
/// cross-entropy through the stable logsumexp (max shift behind
/// stop_gradient, as `stdlib/nn.jl`), averaged, plus a global max; inputs,
/// gain and targets all differentiated, second order included.
#[test]
fn loss_with_reductions_gradients() {
    let cases = vec![case(
        "layer_norm_cross_entropy",
        vec![(&[4, 6], Domain::Any), (&[6], Domain::Any), (&[4, 6], Domain::Any)],
        Box::new(|b, p| {
            let (x, gain, target) = (p[0], p[1], p[2]);
            let rows = Shape(vec![4, 6]);
            let row_mean = |b: &mut Builder, v: ValueId| {
                let s = b.reduce_sum(v, vec![1]);
                let s = b.broadcast(s, &rows, vec![0]);
                let n = b.full(6.0, &f32_ty(&[4, 6]));
                b.div(s, n)
            };
            let mean = row_mean(b, x);
            let centered = b.sub(x, mean);
            let squares = b.mul(centered, centered);
            let var = row_mean(b, squares);
            let eps = b.full(1e-3, &f32_ty(&[4, 6]));
            let var = b.add(var, eps);
            let scale = b.unary(Op::Rsqrt, var);
            let normed = b.mul(centered, scale);
            let gain = b.broadcast(gain, &rows, vec![1]);
            let h = b.mul(normed, gain);
            let mean_loss = mean_soft_cross_entropy(b, h, target, true);
            let peak = b.reduce_max(h, vec![0, 1]);
            let tenth = b.full(0.1, &f32_ty(&[]));
            let peak = b.mul(peak, tenth);
            b.add(mean_loss, peak)
        }),
    )];
    check_all(cases);
}
