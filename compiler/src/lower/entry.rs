//! Entry points of checking and lowering: what `jlc check`, `jlc run` on a
//! script, and the trainer ask of the front end.

use super::elab::{CallArg, Elaborator, Env, LogEntry, PrintItem};
use super::gradients::GradSettings;
use super::program::{Global, Program};
use super::step_inputs::{batch_params, key_type, KEY_PARAM};
use super::value::{ParamSpec, TVal, Val};
use crate::autodiff::inline_outputs as inline;
use crate::check::{Dim, Ty};
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{Builder, DType, Func, Type, ValueId};
use crate::span::Span;
use crate::syntax::ast::{self, Item};
use std::rc::Rc;

/// Checks every function and model of the user's file (and the stdlib
/// modules it uses) on their declared types. Returns all diagnostics.
pub fn check_program(prog: &Program) -> Vec<Diagnostic> {
    let mut el = Elaborator::new(prog, None);
    for (m, module) in prog.modules.iter().enumerate() {
        for (i, item) in module.ast.items.iter().enumerate() {
            match item {
                Item::Fn(f) if f.name.name == "main" && m == 0 && !f.params.is_empty() => {
                    el.error(main_takes_no_parameters(f));
                }
                Item::Fn(f) if f.params.iter().all(|p| p.ty.is_some() || p.default.is_some()) => {
                    if f.name.name == "main" && m == 0 {
                        el.prints = Some(Vec::new());
                    }
                    check_fn(&mut el, m, f, None);
                    el.prints = None;
                }
                Item::Const(c) => {
                    el.const_value(m, i, c.span);
                }
                Item::Model(decl) if decl.config.iter().all(|p| p.default.is_some()) => {
                    if let Val::Model(inst) = el.instantiate(m, i, vec![], "", decl.span) {
                        for method in &decl.methods {
                            let is_hook = method.name.name == super::artifacts::HOOK;
                            let is_step = method.name.name.ends_with("_step") || is_hook;
                            if method.params.iter().all(|p| {
                                p.name.name == "self"
                                    || p.ty.is_some()
                                    || p.default.is_some()
                                    || (is_step && p.name.name == KEY_PARAM)
                            }) {
                                if is_hook {
                                    el.artifacts = Some(Vec::new());
                                }
                                if is_step {
                                    el.logs = Some(Vec::new());
                                }
                                // `self.training` is true in a training step, false in the
                                // other steps and the hook. A helper method checked alone
                                // gets false: what it does in training is checked where
                                // `training_step` calls it (it may be called only outside
                                // training, where training-only rules, such as a batch
                                // norm's batch of 2 or more, do not apply).
                                let is_training_step = method.name.name == "training_step";
                                el.training = is_training_step;
                                el.assigned = is_training_step.then(Vec::new);
                                let checked = check_fn(&mut el, m, method, Some(inst.clone()));
                                (el.training, el.assigned) = (false, None);
                                if is_training_step {
                                    if let Some((_, out)) = &checked {
                                        if let Some(d) = not_a_loss(out, method) {
                                            el.error(d);
                                        }
                                    }
                                    reserved_log_names(&mut el);
                                }
                                el.logs = None;
                                el.artifacts = None;
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
    if let Err(mut d) = training_sections(prog) {
        el.diags.append(&mut d);
    }
    // Bodies nothing elaborated (untyped, uncalled) are read for unknown
    // names too; a place both report is reported once.
    el.diags.extend(super::unbound_names::unknown_names(prog));
    one_per_place(dedup(el.diags))
}

/// Checks one function on its declared parameter types (symbolic dims).
/// Returns the arguments it was checked on and its result.
pub(super) fn check_fn(
    el: &mut Elaborator,
    module: usize,
    f: &ast::FnDecl,
    model: Option<Rc<super::value::ModelInst>>,
) -> Option<(Vec<CallArg>, Val)> {
    // Poison made on purpose (`silent_poison`) explains poison only in the
    // function that made it: another function's poison still needs an error
    // (the debug check in `builtins::call`).
    let outer = std::mem::replace(&mut el.silent_poison, false);
    // A failed `assert` elsewhere does not stop this function's checks.
    el.failed_assert = false;
    let res = check_fn_here(el, module, f, model.clone(), true);
    // A `flag: bool` parameter is a compile-time bool when its caller gives
    // one (`if flag { ... }` selects code), so checked alone it is one:
    // true, then false, so that both branches are checked.
    let has_flag = f.params.iter().any(|p| p.ty.as_ref().is_some_and(|t| t.dims.is_none() && t.name.name == "bool"));
    if res.is_some() && has_flag {
        el.silent_poison = false;
        // The second pass logs the same names again: its own list.
        if el.logs.is_some() {
            el.logs = Some(Vec::new());
        }
        if el.artifacts.is_some() {
            el.artifacts = Some(Vec::new());
        }
        if el.assigned.is_some() {
            el.assigned = Some(Vec::new());
        }
        el.failed_assert = false;
        check_fn_here(el, module, f, model, false);
    }
    el.silent_poison = outer;
    el.failed_assert = false;
    res
}

fn check_fn_here(
    el: &mut Elaborator,
    module: usize,
    f: &ast::FnDecl,
    model: Option<Rc<super::value::ModelInst>>,
    flags: bool,
) -> Option<(Vec<CallArg>, Val)> {
    let mut env = Env::new(module);
    if let Some(m) = &model {
        for (k, v) in &m.config {
            // A config value that failed was reported when the model was
            // instantiated (maybe silently poisoned there: `silent_poison`).
            el.silent_poison |= matches!(v, Val::Poison);
            env.bind(k, v.clone());
        }
    }
    let mut args = Vec::new();
    for p in f.params.iter().filter(|p| p.name.name != "self") {
        let Some(ty) = &p.ty else {
            // A step method's `key`: the trainer's random key.
            if model.is_some() && p.name.name == KEY_PARAM {
                let key = Val::Tensor(TVal { ty: Ty::known(&key_type()), id: None });
                args.push(CallArg { name: Some(p.name.name.clone()), name_span: None, value: key, span: p.name.span });
            }
            continue;
        };
        let v = match ty.name.name.as_str() {
            "int" if ty.dims.is_none() => Val::Int(Dim::Sym(p.name.name.clone())),
            "float" if ty.dims.is_none() => Val::Float(1.0),
            "bool" if ty.dims.is_none() => Val::Bool(flags),
            _ => match el.resolve_type(&env, ty, true) {
                Some(t) => Val::Tensor(TVal { ty: t, id: None }),
                None => return None,
            },
        };
        args.push(CallArg { name: Some(p.name.name.clone()), name_span: None, value: v, span: p.name.span });
    }
    let r = super::value::FnRef { module, item: 0 };
    match model {
        Some(m) => {
            let decl = el.prog.model_decl(m.module, m.item);
            let idx = decl.methods.iter().position(|x| std::ptr::eq(x, f)).expect("method of model");
            let res = el.call_method(m, idx, args.clone(), f.span);
            Some((args, res))
        }
        None => {
            let item = el.prog.modules[module]
                .ast
                .items
                .iter()
                .position(|it| matches!(it, Item::Fn(x) if std::ptr::eq(x, f)))
                .expect("fn item");
            let res = el.call_fn(super::value::FnRef { item, ..r }, None, args.clone(), f.span);
            Some((args, res))
        }
    }
}

/// `main` is the script's entry: nothing can pass it arguments.
fn main_takes_no_parameters(decl: &ast::FnDecl) -> Diagnostic {
    Diagnostic::error(Code::BadCall, "`main` must take no parameters").with_label(decl.name.span, "defined here")
}

/// A `training_step` logging `train_loss`: the trainer logs the returned
/// loss under that name (`train_loss_step`, `train_loss_epoch`), and a
/// second column of the same name would hide one of them.
fn reserved_log_names(el: &mut Elaborator) {
    let clashes: Vec<Span> = el.logs.iter().flatten().filter(|l| l.name == "train_loss").map(|l| l.span).collect();
    for span in clashes {
        el.error(
            Diagnostic::error(Code::NotAllowed, "`train_loss` is the trainer's own log of the loss training_step returns")
                .with_label(span, "logged here")
                .with_help("the returned loss is logged as train_loss_step and train_loss_epoch already; log other values under other names"),
        );
    }
}

/// The report for a `training_step` whose result `out` is not a float
/// scalar (the loss); None when it is one, or poison (reported already).
fn not_a_loss(out: &Val, step: &ast::FnDecl) -> Option<Diagnostic> {
    match out {
        Val::Tensor(t) if t.ty.rank() == 0 && t.ty.dtype.is_float() => None,
        Val::Poison => None,
        other => Some(
            Diagnostic::error(
                Code::TypeMismatch,
                format!("`training_step` must return the loss, a float scalar, not {}", other.describe()),
            )
            .with_label(super::elab::tail_span(&step.body), "returned here")
            .with_help("reduce it, e.g. `mean(...)`"),
        ),
    }
}

/// Removes repeated reports of one mistake (a generic function checked on
/// its own and again at each call reports the same error once).
pub(super) fn dedup(diags: Vec<Diagnostic>) -> Vec<Diagnostic> {
    let mut seen = std::collections::HashSet::new();
    diags.into_iter().filter(|d| seen.insert((d.code.as_str(), d.primary_span(), d.message.clone()))).collect()
}

/// One report per place: of the errors with the same code at the same
/// primary span, the first. A generic function's mistake shows on its
/// declared types (`f32[N]`), then again at each call that elaborates the
/// body with concrete dims (`f32[3]`); the first says it all.
pub(super) fn one_per_place(diags: Vec<Diagnostic>) -> Vec<Diagnostic> {
    let mut seen = std::collections::HashSet::new();
    diags.into_iter().filter(|d| !d.is_error() || seen.insert((d.code.as_str(), d.primary_span()))).collect()
}

/// A script's `main`, lowered: a function without inputs whose outputs are
/// the printed values, and the print layout.
pub struct Script {
    pub func: Func,
    pub prints: Vec<Vec<PrintItem>>,
}

pub fn lower_main(prog: &Program) -> Result<Script, Vec<Diagnostic>> {
    let Some(Global::Fn { module, item }) = prog.user().scope.get("main").copied() else {
        return Err(vec![Diagnostic::error(
            Code::BadSection,
            "this file has no `fn main()` and no `trainer` section: nothing to run",
        )
        .with_label(Span::new(prog.user().file, 0, 0), "in this file")
        .with_help("add `fn main() { ... }` to run a script, or `model`, `data` and `trainer` sections to train")]);
    };
    let decl = prog.fn_decl(module, item);
    if !decl.params.is_empty() {
        return Err(vec![main_takes_no_parameters(decl)]);
    }
    let mut el = Elaborator::new(prog, Some(Builder::new("main", &[])));
    el.prints = Some(Vec::new());
    el.call_fn(super::value::FnRef { module, item }, None, vec![], decl.span);
    if el.diags.iter().any(Diagnostic::is_error) {
        return Err(dedup(el.diags));
    }
    let outputs: Vec<ValueId> = el.printed.iter().map(|t| t.id.expect("built")).collect();
    let func = el.builder.take().expect("builder").finish(outputs);
    crate::ir::verify::assert_valid(&func, "lower (main)");
    Ok(Script { func: crate::ir::dce::dce(&func), prints: el.prints.take().unwrap_or_default() })
}

/// Lowers the user's function `name`, every parameter of which has a fully
/// known tensor type, to a `Func` with those inputs. The outputs are the
/// result: a tensor or a (nested) tuple of tensors, flattened in order. The
/// parameter types choose the dtype, so `fn f(x: f64[3])` gives a float64
/// program: this is how the tests run stdlib code (optimizers, losses) in
/// float64 against references and finite differences.
pub fn lower_fn(prog: &Program, name: &str) -> Result<Func, Vec<Diagnostic>> {
    let Some(Global::Fn { module, item }) = prog.user().scope.get(name).copied() else {
        return Err(vec![Diagnostic::error(Code::UnknownName, format!("no function `{name}` in this file"))
            .with_label(Span::new(prog.user().file, 0, 0), "in this file")]);
    };
    let decl = prog.fn_decl(module, item);
    let mut probe = Elaborator::new(prog, None);
    let env = Env::new(module);
    let mut types = Vec::new();
    for p in &decl.params {
        let ty = p.ty.as_ref().and_then(|t| probe.resolve_type(&env, t, false)).and_then(|t| t.to_ir());
        let Some(ty) = ty else {
            return Err(vec![Diagnostic::error(
                Code::TypeMismatch,
                format!("parameter `{}` needs a tensor type with known dims", p.name.name),
            )
            .with_label(p.name.span, "here")]);
        };
        types.push(ty);
    }
    lower_fn_at(prog, name, &types)
}

/// Lowers the user function `name` called with arguments of the given
/// tensor types (which must fit its declared types; generic parameters take
/// any), the way `jit` specializes a function on its inputs' shapes. The
/// outputs are the result: a tensor or a (nested) tuple of tensors,
/// flattened in order.
pub fn lower_fn_at(prog: &Program, name: &str, types: &[Type]) -> Result<Func, Vec<Diagnostic>> {
    let Some(Global::Fn { module, item }) = prog.user().scope.get(name).copied() else {
        return Err(vec![Diagnostic::error(Code::UnknownName, format!("no function `{name}` in this file"))
            .with_label(Span::new(prog.user().file, 0, 0), "in this file")]);
    };
    let decl = prog.fn_decl(module, item);
    if types.len() != decl.params.len() {
        return Err(vec![Diagnostic::error(
            Code::BadCall,
            format!("`{name}` takes {} arguments, {} were given", decl.params.len(), types.len()),
        )
        .with_label(decl.name.span, "defined here")]);
    }
    let mut el = Elaborator::new(prog, Some(Builder::new(name, types)));
    let args = types
        .iter()
        .enumerate()
        .map(|(i, t)| CallArg {
            name: None,
            name_span: None,
            value: Val::Tensor(TVal { ty: Ty::known(t), id: Some(ValueId(i as u32)) }),
            span: decl.params[i].name.span,
        })
        .collect();
    let out = el.call_fn(super::value::FnRef { module, item }, None, args, decl.span);
    if el.diags.iter().any(Diagnostic::is_error) {
        return Err(dedup(el.diags));
    }
    fn flatten(v: &Val, out: &mut Vec<ValueId>) -> bool {
        match v {
            Val::Tensor(TVal { id: Some(id), .. }) => {
                out.push(*id);
                true
            }
            Val::Tuple(items) => items.iter().all(|x| flatten(x, out)),
            _ => false,
        }
    }
    let mut outputs = Vec::new();
    if !flatten(&out, &mut outputs) {
        return Err(vec![Diagnostic::error(
            Code::TypeMismatch,
            format!("`{name}` must return tensors, not {}", out.describe()),
        )
        .with_label(decl.body.span, "returned here")]);
    }
    let func = el.builder.take().expect("builder").finish(outputs);
    crate::ir::verify::assert_valid(&func, "lower (fn)");
    Ok(func)
}

/// A compile-time value in a `data` or `trainer` section.
#[derive(Clone, Debug, PartialEq)]
pub enum ConstValue {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    /// A call such as `csv("file.csv.gz", label = "last")` or `Mlp(hidden = 32)`.
    Call {
        name: String,
        args: Vec<(Option<String>, ConstValue)>,
    },
}

#[derive(Clone, Debug)]
pub struct SettingEntry {
    pub key: String,
    pub key_span: Span,
    pub value: ConstValue,
    pub value_span: Span,
    /// The command-line override that set the value (`--set
    /// trainer.max_epochs=abc`), for messages about it; `None` when the
    /// file did.
    pub set_by: Option<String>,
}

impl SettingEntry {
    /// An error about this entry's value: `` `key` must be {expected} ``,
    /// the value shown as written, and the `--set` that gave it, if one did.
    pub fn value_error(&self, expected: &str) -> Diagnostic {
        let d = Diagnostic::error(Code::BadSection, format!("`{}` must be {expected}", self.key))
            .with_label(self.value_span, format!("found {}", self.value));
        self.noting_override(d)
    }

    /// `d` with a note naming the `--set` that gave this entry, if one did.
    pub fn noting_override(&self, d: Diagnostic) -> Diagnostic {
        match &self.set_by {
            Some(spec) => d.with_note(format!("set by `--set {spec}`")),
            None => d,
        }
    }
}

/// As written in a section: `3`, `0.001`, `true`, `"text"`, `Mlp(hidden = 32)`.
impl std::fmt::Display for ConstValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConstValue::Int(i) => write!(f, "{i}"),
            ConstValue::Float(x) => write!(f, "{x:?}"),
            ConstValue::Bool(b) => write!(f, "{b}"),
            ConstValue::Str(s) => write!(f, "{s:?}"),
            ConstValue::Call { name, args } => {
                write!(f, "{name}(")?;
                for (i, (key, value)) in args.iter().enumerate() {
                    let sep = if i > 0 { ", " } else { "" };
                    match key {
                        Some(key) => write!(f, "{sep}{key} = {value}")?,
                        None => write!(f, "{sep}{value}")?,
                    }
                }
                write!(f, ")")
            }
        }
    }
}

/// A `data = source { ... }` or `trainer { ... }` section, evaluated.
#[derive(Clone, Debug)]
pub struct Section {
    pub span: Span,
    pub source: Option<(ConstValue, Span)>,
    pub entries: Vec<SettingEntry>,
}

pub struct Sections {
    pub data: Option<Section>,
    pub trainer: Option<Section>,
}

/// Evaluates the `data` and `trainer` sections of the user's file.
pub fn training_sections(prog: &Program) -> Result<Sections, Vec<Diagnostic>> {
    let (sections, diags) = training_sections_lenient(prog);
    if diags.is_empty() {
        Ok(sections)
    } else {
        Err(diags)
    }
}

/// The sections as far as they could be evaluated, and the errors: a
/// setting whose value is not one is left out, and so is a `data` section
/// whose source is not, so that `jlc check` can still check the rest (a
/// bad `trainer` value must not hide a bad `data` setting).
pub fn training_sections_lenient(prog: &Program) -> (Sections, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let mut data = None;
    let mut trainer = None;
    // The constants visible in the user's file, its own and imported ones.
    let consts: Vec<&ast::ConstDecl> = prog
        .user()
        .scope
        .values()
        .filter_map(
            |g| if let Global::Const { module, item } = g { Some(prog.const_decl(*module, *item)) } else { None },
        )
        .collect();
    for item in &prog.user().ast.items {
        match item {
            Item::Data(d) => {
                if data.is_some() {
                    diags.push(
                        Diagnostic::error(Code::BadSection, "a file has at most one `data` section")
                            .with_label(d.span, "second `data` section"),
                    );
                }
                let source = const_value(&d.source, &consts, &mut diags).map(|v| (v, d.source.span));
                let entries = settings(&d.settings, &consts, &mut diags);
                data = source.is_some().then(|| Section { span: d.span, source, entries });
            }
            Item::Trainer(t) => {
                if trainer.is_some() {
                    diags.push(
                        Diagnostic::error(Code::BadSection, "a file has at most one `trainer` section")
                            .with_label(t.span, "second `trainer` section"),
                    );
                }
                trainer =
                    Some(Section { span: t.span, source: None, entries: settings(&t.settings, &consts, &mut diags) });
            }
            Item::Use(_) | Item::Fn(_) | Item::Model(_) | Item::Const(_) => {}
        }
    }
    (Sections { data, trainer }, diags)
}

fn settings(list: &[ast::Setting], consts: &[&ast::ConstDecl], diags: &mut Vec<Diagnostic>) -> Vec<SettingEntry> {
    let mut out: Vec<SettingEntry> = Vec::new();
    for s in list {
        if let Some(prev) = out.iter().find(|e| e.key == s.key.name) {
            diags.push(
                Diagnostic::error(Code::BadSection, format!("`{}` is set twice", s.key.name))
                    .with_label(s.key.span, "set again here")
                    .with_label(prev.key_span, "first set here"),
            );
            continue;
        }
        // Lightning's `callbacks = [ModelCheckpoint(...), ...]` is not a
        // setting; whatever its value, the section's check says so (with
        // the section's other errors, which a value error here would hide).
        if s.key.name == "callbacks" {
            out.push(SettingEntry {
                key: s.key.name.clone(),
                key_span: s.key.span,
                value: ConstValue::Bool(false),
                value_span: s.value.span,
                set_by: None,
            });
            continue;
        }
        if let Some(v) = const_value(&s.value, consts, diags) {
            out.push(SettingEntry {
                key: s.key.name.clone(),
                key_span: s.key.span,
                value: v,
                value_span: s.value.span,
                set_by: None,
            });
        }
    }
    out
}

/// Evaluates a section value: literals, negation, arithmetic on numbers, calls.
/// A setting's value. A name is a `const` of the file; it is resolved
/// without itself, so a cycle (`const A = B`, `const B = A`) is an error.
fn const_value(e: &ast::Expr, consts: &[&ast::ConstDecl], diags: &mut Vec<Diagnostic>) -> Option<ConstValue> {
    use ast::ExprKind as K;
    Some(match &e.kind {
        K::Name(n) => match consts.iter().position(|c| &c.name.name == n) {
            Some(i) => {
                let rest: Vec<&ast::ConstDecl> =
                    consts.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, c)| *c).collect();
                const_value(&consts[i].value, &rest, diags)?
            }
            None => return bad_const(e, diags),
        },
        K::Int(i) => ConstValue::Int(*i),
        K::Float(x) => ConstValue::Float(*x),
        K::Bool(b) => ConstValue::Bool(*b),
        K::Str(s) => ConstValue::Str(s.clone()),
        K::Unary(ast::UnOp::Neg, x) => match const_value(x, consts, diags)? {
            ConstValue::Int(i) => match i.checked_neg() {
                Some(v) => ConstValue::Int(v),
                None => {
                    diags.push(
                        Diagnostic::error(Code::BadSection, "this integer setting overflows a 64-bit integer")
                            .with_label(e.span, "too large"),
                    );
                    return None;
                }
            },
            ConstValue::Float(f) => ConstValue::Float(-f),
            _ => return bad_const(e, diags),
        },
        K::Binary(op, a, b) => {
            let (a, b) = (const_value(a, consts, diags)?, const_value(b, consts, diags)?);
            let num = |v: &ConstValue| match v {
                ConstValue::Int(i) => Some(*i as f64),
                ConstValue::Float(f) => Some(*f),
                _ => None,
            };
            let (Some(x), Some(y)) = (num(&a), num(&b)) else { return bad_const(e, diags) };
            let overflow = |diags: &mut Vec<Diagnostic>| {
                diags.push(
                    Diagnostic::error(Code::BadSection, "this integer setting overflows a 64-bit integer")
                        .with_label(e.span, "too large"),
                );
                None
            };
            match (op, &a, &b) {
                (ast::BinOp::Add, ConstValue::Int(i), ConstValue::Int(j)) => match i.checked_add(*j) {
                    Some(v) => ConstValue::Int(v),
                    None => return overflow(diags),
                },
                (ast::BinOp::Mul, ConstValue::Int(i), ConstValue::Int(j)) => match i.checked_mul(*j) {
                    Some(v) => ConstValue::Int(v),
                    None => return overflow(diags),
                },
                (ast::BinOp::Sub, ConstValue::Int(i), ConstValue::Int(j)) => match i.checked_sub(*j) {
                    Some(v) => ConstValue::Int(v),
                    None => return overflow(diags),
                },
                (ast::BinOp::Add, ..) => ConstValue::Float(x + y),
                (ast::BinOp::Sub, ..) => ConstValue::Float(x - y),
                (ast::BinOp::Mul, ..) => ConstValue::Float(x * y),
                (ast::BinOp::Div, ..) => ConstValue::Float(x / y),
                _ => return bad_const(e, diags),
            }
        }
        K::Call { callee, args } => {
            let K::Name(name) = &callee.kind else { return bad_const(e, diags) };
            let mut vals = Vec::new();
            for a in args {
                vals.push((a.name.as_ref().map(|n| n.name.clone()), const_value(&a.value, consts, diags)?));
            }
            ConstValue::Call { name: name.clone(), args: vals }
        }
        _ => return bad_const(e, diags),
    })
}

fn bad_const(e: &ast::Expr, diags: &mut Vec<Diagnostic>) -> Option<ConstValue> {
    diags.push(
        Diagnostic::error(
            Code::BadSection,
            "settings must be literals, arithmetic on numbers, or calls such as `csv(\"file.csv\")`",
        )
        .with_label(e.span, "not a compile-time setting"),
    );
    None
}

/// The compiled programs of a training run.
#[derive(Clone, Debug)]
pub struct TrainPrograms {
    pub model_name: String,
    /// The model's parameters, in order (trained, frozen and buffers, as
    /// `ParamSpec` says): the first inputs and outputs of `train_step`.
    pub params: Vec<ParamSpec>,
    /// The optimizer, or the parameter groups' optimizers (for the summary).
    pub optimizer: String,
    /// Optimizer state tensors of each parameter (each of the parameter's
    /// type): the state count of its optimizer's update, 0 for buffers and
    /// frozen parameters. `state_specs` lists them in the steps' order.
    pub param_states: Vec<usize>,
    /// Inputs: params, states (param-major), step (f32 scalar, 1-based), x, y
    /// (then the key, with `keys.train`).
    /// Outputs: new params, new states, loss, then the logged values
    /// (`train_logs`: `training_step`'s, then `grad_norm` with
    /// `log_grad_norm`, then the learning rates with `log_lr`: `lr`, and
    /// `lr/pgK` for parameter groups), then the unlogged
    /// finiteness check's value (`gradients::GRAD_CHECK`) with
    /// `grad_settings.check_finite`.
    pub train_step: Func,
    pub train_logs: Vec<(String, bool)>,
    /// Inputs: params, x, y (then the key, with `keys.val`). Outputs: the
    /// logged values. Cannot change parameters.
    pub val_step: Option<Func>,
    pub val_logs: Vec<(String, bool)>,
    /// `test_step`, lowered like `val_step`: inputs params, x, y; outputs the logged values.
    pub test_step: Option<Func>,
    pub test_logs: Vec<(String, bool)>,
    /// Which steps declare a trailing `key` parameter: their programs take
    /// one more input, last, an `i32[2]` random key the trainer makes fresh
    /// for every call (`grad_step` too, with accumulation).
    pub keys: StepKeys,
    /// The `trainer` section's gradient settings (clipping, `grad_norm`,
    /// accumulation), already part of `train_step` and `accumulation`.
    pub grad_settings: GradSettings,
    /// With `accumulate_grad_batches = k > 1`, the programs the trainer runs
    /// instead of `train_step` (which stays the k = 1 step).
    pub accumulation: Option<Accumulation>,
}

impl TrainPrograms {
    /// The optimizer states in the steps' order (parameter-major): each
    /// state's parameter and its index among that parameter's states.
    pub fn state_specs(&self) -> impl Iterator<Item = (&ParamSpec, usize)> + '_ {
        self.params.iter().zip(&self.param_states).flat_map(|(p, &n)| (0..n).map(move |k| (p, k)))
    }

    /// How many optimizer state tensors the steps carry.
    pub fn n_states(&self) -> usize {
        self.param_states.iter().sum()
    }
}

/// Which step methods take a random key (see `step_inputs::KEY_PARAM`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepKeys {
    pub train: bool,
    pub val: bool,
    pub test: bool,
}

/// The training step split for gradient accumulation: `grad_step` once per
/// micro-batch, `apply_step` once per window of (at most) `k` micro-batches.
/// Two programs rather than one over k micro-batches: a window's
/// micro-batches are live one at a time (what accumulation is for: memory),
/// and a window cut short by the epoch's end needs no program of its own.
#[derive(Clone, Debug)]
pub struct Accumulation {
    pub k: usize,
    /// Inputs: params, accumulators (one per parameter, of its type), x, y
    /// (then the key, with `keys.train`).
    /// Outputs: accumulators + this micro-batch's gradients, loss, then
    /// `training_step`'s logged values (`train_logs` without `grad_norm`).
    /// The accumulator of a parameter the optimizer does not update (a
    /// buffer, a frozen parameter) is its current value instead (the trainer
    /// starts it at that value; the step reads it there and outputs what a
    /// buffer was assigned, or the value unchanged), which `apply_step`
    /// makes the new value.
    pub grad_step: Func,
    /// Inputs: params, states (param-major), step (f32, 1-based),
    /// accumulators, n (f32 scalar: the micro-batches they sum). Divides
    /// by n (the window's mean gradient), clips, and updates. Outputs: new
    /// params, new states, then `grad_norm` and `lr` when logged, then the
    /// unlogged finiteness check's value with `grad_settings.check_finite`.
    pub apply_step: Func,
}

/// Finds the model to train: `model = Name(args)` in the trainer section, or
/// the last model of the user's file that has a `training_step`.
pub(super) fn find_model(
    prog: &Program,
    model_setting: Option<&SettingEntry>,
) -> Result<(usize, usize, Vec<(Option<String>, ConstValue)>), Diagnostic> {
    if let Some(entry) = model_setting {
        let (name, args) = match &entry.value {
            ConstValue::Call { name, args } => (name.clone(), args.clone()),
            ConstValue::Str(s) => (s.clone(), vec![]),
            _ => {
                return Err(Diagnostic::error(
                    Code::BadSection,
                    "`model` must name a model, e.g. `model = Mlp(hidden = 64)`",
                )
                .with_label(entry.value_span, "here"))
            }
        };
        return match prog.user().scope.get(&name) {
            Some(Global::Model { module, item }) => Ok((*module, *item, args)),
            _ => Err(Diagnostic::error(Code::UnknownName, format!("unknown model `{name}`"))
                .with_label(entry.value_span, "not a model in this file")),
        };
    }
    prog.user()
        .ast
        .items
        .iter()
        .enumerate()
        .rev()
        .find(|(_, it)| matches!(it, Item::Model(m) if m.methods.iter().any(|f| f.name.name == "training_step")))
        .map(|(i, _)| (0, i, vec![]))
        .ok_or_else(|| {
            let trainer = prog.user().ast.items.iter().find_map(|it| match it {
                Item::Trainer(t) => Some(t.span),
                _ => None,
            });
            Diagnostic::error(
                Code::BadSection,
                "the file has a `trainer` section but no model with a `training_step` method",
            )
            .with_label(trainer.unwrap_or(Span::new(prog.user().file, 0, 0)), "this section trains a model")
        })
}

pub(super) fn const_to_val(v: &ConstValue) -> Val {
    match v {
        ConstValue::Int(i) => Val::int(*i),
        ConstValue::Float(x) => Val::Float(*x),
        ConstValue::Bool(b) => Val::Bool(*b),
        ConstValue::Str(s) => Val::Str(s.clone()),
        ConstValue::Call { .. } => Val::Poison,
    }
}

/// Lowers the training and validation steps for batches of types `x_ty`, `y_ty`.
pub fn lower_training(
    prog: &Program,
    trainer: Option<&Section>,
    x_ty: &Type,
    y_ty: &Type,
) -> Result<TrainPrograms, Vec<Diagnostic>> {
    lower_training_with(prog, trainer, x_ty, y_ty, &|f: &Func| f.clone())
}

/// `lower_training`, with `before_ad` applied to the forward + loss function
/// before it is differentiated (the compiler's e-graph optimizer there).
pub fn lower_training_with(
    prog: &Program,
    trainer: Option<&Section>,
    x_ty: &Type,
    y_ty: &Type,
    before_ad: &dyn Fn(&Func) -> Func,
) -> Result<TrainPrograms, Vec<Diagnostic>> {
    let model_setting = trainer.and_then(|t| t.entries.iter().find(|e| e.key == "model"));
    let (module, item, cfg) = find_model(prog, model_setting).map_err(|d| vec![d])?;
    let decl = prog.model_decl(module, item);
    // Every step method's and hook's signature, also of those this run does
    // not compile (`predict_step`), as `jlc check` reports them.
    let signatures: Vec<Diagnostic> = decl.methods.iter().filter_map(super::model_checks::bad_signature).collect();
    if !signatures.is_empty() {
        return Err(signatures);
    }
    let cfg_args: Vec<CallArg> = cfg
        .iter()
        .map(|(n, v)| CallArg {
            name: n.clone(),
            name_span: None,
            value: const_to_val(v),
            span: model_setting.map_or(decl.span, |e| e.value_span),
        })
        .collect();

    // 1.-2. The parameters (a dry instantiation in check mode) and the optimizer.
    let super::model_checks::Probed { params, plan, description } =
        super::model_checks::probe(prog, module, item, &cfg_args)?;
    let n_params = params.len();
    let update = Update::new(prog, &params, &plan);
    let n_states = update.n_states();

    // 3. The forward + loss function F(params, x, y) -> (loss, logs...).
    let mut fwd_types: Vec<Type> = params.iter().map(|p| p.ty.clone()).collect();
    fwd_types.push(x_ty.clone());
    fwd_types.push(y_ty.clone());
    let Some(train_idx) = decl.methods.iter().position(|f| f.name.name == "training_step") else {
        return Err(vec![super::model_checks::no_training_step(decl)]);
    };
    let LoweredStep { func: fwd, logs: train_logs, takes_key: train_key, assigned } =
        lower_step(prog, module, item, &cfg_args, &params, &fwd_types, train_idx, true)?;
    let fwd = before_ad(&fwd);

    // 4. Differentiate with respect to the trainable parameters only (not
    // the buffers, the frozen parameters, nor the data).
    let trainable: Vec<usize> = (0..n_params).filter(|&i| params[i].trainable()).collect();
    // For each parameter, which of the step's assigned outputs (a buffer's new value) is its.
    let assigned_slot: Vec<Option<usize>> =
        params.iter().map(|p| assigned.iter().position(|path| path == &p.path)).collect();
    let grad = crate::autodiff::grad(&fwd, &trainable);
    crate::ir::verify::assert_valid(&grad, "autodiff::grad (training step)");

    // 5. The whole step: gradients, then what `trainer` asks of them
    // (norm, clipping: `gradients.rs`), then the optimizer update per parameter.
    let settings = super::gradients::grad_settings(trainer)?;
    let mut train_logs = train_logs;
    let n_logs = train_logs.len();
    // Values the trainer settings add to the step's logs, after the step's own.
    let lr_logs: Vec<&str> = plan.optimizers.iter().map(|o| o.lr_log.as_str()).collect();
    for (on, log, setting) in super::gradients::added_logs(&settings, &lr_logs) {
        if !on {
            continue;
        }
        if let Some((name, _)) = train_logs[..n_logs].iter().find(|(n, _)| n == log) {
            let span = decl.methods[train_idx].name.span;
            return Err(vec![super::gradients::log_clash(name, setting, span, "logs it")]);
        }
        train_logs.push((log.to_string(), false));
    }
    let param_tys: Vec<Type> = params.iter().map(|p| p.ty.clone()).collect();
    let mut step_types = param_tys.clone();
    step_types.extend(update.state_types());
    step_types.push(Type::scalar(DType::F32));
    let mut train_types = step_types.clone();
    train_types.push(x_ty.clone());
    train_types.push(y_ty.clone());
    if train_key {
        train_types.push(key_type());
    }
    let mut el = Elaborator::new(prog, Some(Builder::new("train_step", &train_types)));
    let b = el.b();
    let param_ids: Vec<ValueId> = (0..n_params).map(|i| b.param(i)).collect();
    let step_id = b.param(n_params + n_states);
    let mut grad_args = param_ids.clone();
    // x, y (and the key).
    grad_args.extend((1..=2 + usize::from(train_key)).map(|j| b.param(n_params + n_states + j)));
    let outs = inline(b, &grad, &grad_args);
    let loss = outs[0];
    let logs: Vec<ValueId> = outs[1..1 + n_logs].to_vec();
    let n_assigned = assigned.len();
    let assigned_values = &outs[1 + n_logs..1 + n_logs + n_assigned];
    let g = super::gradients::transform(b, &outs[1 + n_logs + n_assigned..], &settings);
    let hyper = update.hyper_at(&mut el, step_id);
    let (mut outputs, new_states) = update.append(&mut el, &g.grads, step_id, &hyper)?;
    // A buffer's new value is what the step assigned it (else it is kept).
    for (i, slot) in assigned_slot.iter().enumerate() {
        if let Some(k) = slot {
            outputs[i] = assigned_values[*k];
        }
    }
    outputs.extend(new_states);
    outputs.push(loss);
    outputs.extend(logs);
    outputs.extend(g.logged_norm);
    if settings.log_lr {
        outputs.extend(update.learning_rates(&mut el, &hyper)?);
    }
    outputs.extend(g.check);
    let train_step = crate::ir::dce::dce(&el.builder.take().expect("builder").finish(outputs));
    crate::ir::verify::assert_valid(&train_step, "lower (train step)");

    // 5b. Accumulation (`accumulate_grad_batches = k > 1`): the same step split in two programs.
    // The accumulator slot of a parameter the optimizer does not update (a
    // buffer, a frozen parameter) carries its latest value through the
    // window instead of a gradient sum: the trainer starts it at the
    // value, each micro-batch reads it from there and writes what it
    // assigned (or the value unchanged), and `apply_step` takes it as the
    // new value.
    let accumulation = if settings.accumulate > 1 {
        // grad_step(params, accumulators, x, y) -> (accumulators + gradients, loss, logs...)
        let mut types = param_tys.clone();
        types.extend(param_tys.iter().cloned());
        types.push(x_ty.clone());
        types.push(y_ty.clone());
        if train_key {
            types.push(key_type());
        }
        let mut b = Builder::new("grad_step", &types);
        let acc = |i: usize| ValueId((n_params + i) as u32);
        let mut grad_args: Vec<ValueId> =
            (0..n_params).map(|i| if params[i].trainable() { b.param(i) } else { acc(i) }).collect();
        grad_args.extend((0..2 + usize::from(train_key)).map(|j| b.param(2 * n_params + j)));
        let outs = inline(&mut b, &grad, &grad_args);
        let assigned_values = &outs[1 + n_logs..1 + n_logs + n_assigned];
        let mut grads = outs[1 + n_logs + n_assigned..].iter();
        let mut outputs = Vec::with_capacity(n_params + 1 + n_logs);
        for (i, p) in params.iter().enumerate() {
            let value = if p.trainable() {
                b.add(acc(i), *grads.next().expect("one gradient per trainable parameter"))
            } else {
                assigned_slot[i].map_or(acc(i), |k| assigned_values[k])
            };
            outputs.push(value);
        }
        outputs.extend_from_slice(&outs[..1 + n_logs]);
        let grad_step = crate::ir::dce::dce(&b.finish(outputs));
        crate::ir::verify::assert_valid(&grad_step, "lower (grad step)");

        // apply_step(params, states, step, accumulators, n) -> (params', states'..., grad_norm?)
        let mut types = step_types.clone();
        types.extend(param_tys.iter().cloned());
        types.push(Type::scalar(DType::F32));
        let mut el = Elaborator::new(prog, Some(Builder::new("apply_step", &types)));
        let b = el.b();
        let base = n_params + n_states + 1;
        let n = b.param(base + n_params);
        // The mean gradient of the window: the gradient of its mean loss.
        let grads: Vec<ValueId> = (0..n_params)
            .filter(|&i| params[i].trainable())
            .map(|i| {
                let acc = b.param(base + i);
                let ty = b.ty(acc).clone();
                let n = b.convert(n, ty.dtype);
                let n = b.broadcast_to(n, &ty.shape);
                b.div(acc, n)
            })
            .collect();
        let g = super::gradients::transform(b, &grads, &settings);
        let step_id = ValueId((n_params + n_states) as u32);
        let hyper = update.hyper_at(&mut el, step_id);
        let (mut outputs, new_states) = update.append(&mut el, &g.grads, step_id, &hyper)?;
        // A buffer's accumulator holds its value after the window (a frozen
        // parameter's, its unchanged value).
        for (i, p) in params.iter().enumerate().filter(|(_, p)| !p.trainable()) {
            outputs[i] = ValueId((base + i) as u32);
            debug_assert_eq!(el.b().ty(outputs[i]), &p.ty);
        }
        outputs.extend(new_states);
        outputs.extend(g.logged_norm);
        if settings.log_lr {
            outputs.extend(update.learning_rates(&mut el, &hyper)?);
        }
        outputs.extend(g.check);
        let apply_step = crate::ir::dce::dce(&el.builder.take().expect("builder").finish(outputs));
        crate::ir::verify::assert_valid(&apply_step, "lower (apply step)");
        Some(Accumulation { k: settings.accumulate, grad_step, apply_step })
    } else {
        None
    };

    // 6. Validation and test: F(params, x, y) -> logs, separate programs.
    let eval_step = |name: &str| -> Result<(Option<Func>, Vec<(String, bool)>, bool), Vec<Diagnostic>> {
        match decl.methods.iter().position(|f| f.name.name == name) {
            Some(idx) => {
                let s = lower_step(prog, module, item, &cfg_args, &params, &fwd_types, idx, false)?;
                Ok((Some(crate::ir::dce::dce(&s.func)), s.logs, s.takes_key))
            }
            None => Ok((None, vec![], false)),
        }
    };
    let (val_step, val_logs, val_key) = eval_step("validation_step")?;
    let (test_step, test_logs, test_key) = eval_step("test_step")?;
    Ok(TrainPrograms {
        model_name: decl.name.name.clone(),
        params,
        optimizer: description,
        param_states: plan.state_counts(),
        train_step,
        train_logs,
        val_step,
        val_logs,
        test_step,
        test_logs,
        keys: StepKeys { train: train_key, val: val_key, test: test_key },
        grad_settings: settings,
        accumulation,
    })
}

/// `jlc check`: the optimizer update applied to every parameter as the
/// training step applies it (its schedules evaluated at the step, what it
/// returns, the learning rate `log_lr` reads), without data: the gradients
/// are inputs of the parameters' types. `jlc run` reports the same errors
/// when it lowers the step.
pub(super) fn check_optimizer_update(
    prog: &Program,
    probed: &super::model_checks::Probed,
    log_lr: bool,
) -> Vec<Diagnostic> {
    let super::model_checks::Probed { params, plan, .. } = probed;
    let n_params = params.len();
    let update = Update::new(prog, params, plan);
    // (params, states, step, gradients): `append`'s layout, then the gradients.
    let mut types: Vec<Type> = params.iter().map(|p| p.ty.clone()).collect();
    types.extend(update.state_types());
    types.push(Type::scalar(DType::F32));
    types.extend(params.iter().map(|p| p.ty.clone()));
    let mut el = Elaborator::new(prog, Some(Builder::new("optimizer_update", &types)));
    let step_id = ValueId((n_params + update.n_states()) as u32);
    let grads: Vec<ValueId> =
        (0..n_params).filter(|&i| params[i].trainable()).map(|i| ValueId(step_id.0 + 1 + i as u32)).collect();
    let hyper = update.hyper_at(&mut el, step_id);
    if let Err(diags) = update.append(&mut el, &grads, step_id, &hyper) {
        return diags;
    }
    if log_lr {
        if let Err(diags) = update.learning_rates(&mut el, &hyper) {
            return diags;
        }
    }
    dedup(el.diags)
}

/// The optimizer updates, mapped over every parameter of a step under
/// construction whose first inputs are the parameters, then their states
/// (parameter-major, each parameter as many as its optimizer keeps).
struct Update<'a> {
    prog: &'a Program,
    params: &'a [ParamSpec],
    plan: &'a super::param_groups::Plan,
    /// The input index of each parameter's first state.
    first_state: Vec<usize>,
}

impl<'a> Update<'a> {
    fn new(prog: &'a Program, params: &'a [ParamSpec], plan: &'a super::param_groups::Plan) -> Self {
        let mut first_state = Vec::with_capacity(params.len());
        let mut next = params.len();
        for n in plan.state_counts() {
            first_state.push(next);
            next += n;
        }
        Update { prog, params, plan, first_state }
    }

    /// How many state inputs (and outputs) the step has.
    fn n_states(&self) -> usize {
        self.plan.state_counts().iter().sum()
    }

    /// The states' types, in the steps' order.
    fn state_types(&self) -> Vec<Type> {
        let counts = self.plan.state_counts();
        self.params.iter().zip(counts).flat_map(|(p, n)| std::iter::repeat_n(p.ty.clone(), n)).collect()
    }

    fn update_decl(&self, k: usize) -> &'a ast::FnDecl {
        let update = self.plan.optimizers[k].optimizer.update;
        self.prog.fn_decl(update.module, update.item)
    }

    /// Each optimizer's hyperparameters at the step, evaluated once per
    /// step before the per-parameter updates: a schedule given as a named
    /// function `f` stands for `f(step)`, a tuple `(f, args...)` for
    /// `f(step, args...)` (see stdlib/optim.jl); anything else is as it is.
    fn hyper_at(&self, el: &mut Elaborator, step_id: ValueId) -> Vec<Vec<(String, Val)>> {
        let step_val = Val::Tensor(TVal { ty: Ty::scalar(DType::F32), id: Some(step_id) });
        (0..self.plan.optimizers.len())
            .map(|k| {
                let span = self.update_decl(k).span;
                let arg = |value: Val| CallArg { name: None, name_span: None, value, span };
                let at_step = |el: &mut Elaborator, value: &Val| match value {
                    Val::Fn(f) => el.call_fn(*f, None, vec![arg(step_val.clone())], span),
                    Val::Tuple(items) if matches!(items.first(), Some(Val::Fn(_))) => {
                        let Val::Fn(f) = items[0] else { unreachable!("matched above") };
                        let mut args = vec![arg(step_val.clone())];
                        args.extend(items[1..].iter().cloned().map(arg));
                        el.call_fn(f, None, args, span)
                    }
                    other => other.clone(),
                };
                let hyper = &self.plan.optimizers[k].optimizer.hyper;
                hyper.iter().map(|(name, v)| (name.clone(), at_step(el, v))).collect()
            })
            .collect()
    }

    /// Each optimizer's learning rate (`hyper_at`'s `lr`) as an f32 scalar,
    /// in the plan's order (`log_lr = true`).
    fn learning_rates(
        &self,
        el: &mut Elaborator,
        hyper: &[Vec<(String, Val)>],
    ) -> Result<Vec<ValueId>, Vec<Diagnostic>> {
        (0..self.plan.optimizers.len()).map(|k| self.learning_rate(el, k, &hyper[k])).collect()
    }

    fn learning_rate(
        &self,
        el: &mut Elaborator,
        k: usize,
        hyper: &[(String, Val)],
    ) -> Result<ValueId, Vec<Diagnostic>> {
        let decl = self.update_decl(k);
        let error = |what: String| {
            vec![Diagnostic::error(Code::BadSection, format!("`log_lr = true`: {what}"))
                .with_label(decl.name.span, "the optimizer's update")
                .with_help("turn `log_lr` off, or give the optimizer an `lr` hyperparameter")]
        };
        let Some((_, lr)) = hyper.iter().find(|(k, _)| k == "lr") else {
            return Err(error(format!("the optimizer `{}` has no `lr` hyperparameter", decl.name.name)));
        };
        let lr = lr.clone();
        let b = el.b();
        match lr {
            Val::Float(x) => Ok(b.full(x, &Type::scalar(DType::F32))),
            Val::Int(crate::check::types::Dim::Known(n)) => Ok(b.full(n as f64, &Type::scalar(DType::F32))),
            Val::NegInt(n) => Ok(b.full(n as f64, &Type::scalar(DType::F32))),
            Val::Tensor(TVal { id: Some(id), .. }) if b.ty(id).shape.rank() == 0 && b.ty(id).dtype.is_float() => {
                Ok(if b.ty(id).dtype == DType::F32 { id } else { b.convert(id, DType::F32) })
            }
            other => Err(error(format!("the learning rate is {}, not a number", other.describe()))),
        }
    }

    /// Appends `NAME_update(p, g, states..., step, hyper...)` per parameter
    /// (`hyper`: `hyper_at`'s); returns the new parameters and the new states.
    fn append(
        &self,
        el: &mut Elaborator,
        grads: &[ValueId],
        step_id: ValueId,
        hyper: &[Vec<(String, Val)>],
    ) -> Result<(Vec<ValueId>, Vec<ValueId>), Vec<Diagnostic>> {
        let step_val = Val::Tensor(TVal { ty: Ty::scalar(DType::F32), id: Some(step_id) });
        let mut new_params = Vec::new();
        let mut new_states = Vec::new();
        // `grads` holds the trainable parameters' gradients, in order.
        let mut grads = grads.iter();
        for (i, p) in self.params.iter().enumerate() {
            debug_assert_eq!(
                p.trainable(),
                self.plan.of_param[i].is_some(),
                "{}: trained iff it has an optimizer",
                p.path
            );
            let Some(k) = self.plan.of_param[i] else {
                // A buffer (the caller puts in what the step assigned) or a
                // frozen parameter: kept, and it has no states.
                new_params.push(ValueId(i as u32));
                continue;
            };
            let (update_decl, n_states, hyper) = (self.update_decl(k), self.plan.optimizers[k].n_states, &hyper[k]);
            let opt = &self.plan.optimizers[k].optimizer;
            let arg = |value: Val| CallArg { name: None, name_span: None, value, span: update_decl.span };
            let grad = *grads.next().expect("one gradient per trainable parameter");
            let t = |id: ValueId| Val::Tensor(TVal { ty: Ty::known(&p.ty), id: Some(id) });
            let mut args = vec![arg(t(ValueId(i as u32))), arg(t(grad))];
            for s in 0..n_states {
                args.push(arg(t(ValueId((self.first_state[i] + s) as u32))));
            }
            // An f64 parameter gets the step and the step's hyperparameter
            // values (schedules) in f64, so its update mixes no dtypes
            // (`b1 ^ step`, `lr * g`); numbers take its dtype anyway.
            let mut in_param_dtype = |v: &Val| match v {
                Val::Tensor(TVal { ty, id })
                    if ty.dtype.is_float() && ty.dtype != p.ty.dtype && p.ty.dtype.is_float() =>
                {
                    let id = id.map(|id| el.b().convert(id, p.ty.dtype));
                    Val::Tensor(TVal { ty: ty.with_dtype(p.ty.dtype), id })
                }
                other => other.clone(),
            };
            args.push(arg(in_param_dtype(&step_val)));
            for (k, v) in hyper {
                let value = in_param_dtype(v);
                args.push(CallArg { name: Some(k.clone()), name_span: None, value, span: update_decl.span });
            }
            let res = el.call_fn(opt.update, None, args, update_decl.span);
            let items = match res {
                Val::Tuple(items) if items.len() == 1 + n_states => items,
                // A mistake inside the update (reported while elaborating
                // it) is the error, not what it made the update return.
                _ if el.diags.iter().any(Diagnostic::is_error) => return Err(dedup(std::mem::take(&mut el.diags))),
                other => {
                    let mut diags = dedup(std::mem::take(&mut el.diags));
                    diags.push(
                        Diagnostic::error(
                            Code::TypeMismatch,
                            format!(
                                "optimizer update `{}` must return a tuple (p, states...) of {} values, not {}",
                                update_decl.name.name,
                                1 + n_states,
                                other.describe()
                            ),
                        )
                        .with_label(update_decl.body.span, "returned here"),
                    );
                    return Err(diags);
                }
            };
            for (k, it) in items.into_iter().enumerate() {
                match it {
                    Val::Tensor(TVal { ty, id: Some(id) }) if ty == Ty::known(&p.ty) => {
                        if k == 0 {
                            new_params.push(id)
                        } else {
                            new_states.push(id)
                        }
                    }
                    _ if el.diags.iter().any(Diagnostic::is_error) => return Err(dedup(std::mem::take(&mut el.diags))),
                    other => {
                        let mut diags = dedup(std::mem::take(&mut el.diags));
                        diags.push(
                            Diagnostic::error(
                                Code::TypeMismatch,
                                format!(
                                    "optimizer update `{}` returned {} for parameter `{}` of type {}",
                                    update_decl.name.name,
                                    other.describe(),
                                    p.path,
                                    p.ty
                                ),
                            )
                            .with_label(update_decl.body.span, "returned here"),
                        );
                        return Err(diags);
                    }
                }
            }
        }
        if el.diags.iter().any(Diagnostic::is_error) {
            return Err(dedup(std::mem::take(&mut el.diags)));
        }
        Ok((new_params, new_states))
    }
}

/// Lowers a step method on (params, x, y). Training steps return
/// `(loss, logs..., assigned buffers...)`; other steps return their logs.
#[allow(clippy::too_many_arguments)]
fn lower_step(
    prog: &Program,
    module: usize,
    item: usize,
    cfg_args: &[CallArg],
    params: &[ParamSpec],
    types: &[Type],
    method: usize,
    is_train: bool,
) -> Result<LoweredStep, Vec<Diagnostic>> {
    let decl = prog.model_decl(module, item);
    let mdecl = &decl.methods[method];
    if let Some(d) = super::model_checks::bad_signature(mdecl) {
        return Err(vec![d]);
    }
    let (batch, takes_key) = batch_params(mdecl);
    let mut types = types.to_vec();
    if takes_key {
        types.push(key_type());
    }
    let mut el = Elaborator::new(prog, Some(Builder::new(&mdecl.name.name, &types)));
    for (i, p) in params.iter().enumerate() {
        el.param_values.insert(p.path.clone(), ValueId(i as u32));
    }
    let Val::Model(inst) = el.instantiate(module, item, cfg_args.to_vec(), "", decl.name.span) else {
        return Err(dedup(el.diags));
    };
    let n = params.len();
    let x = TVal { ty: Ty::known(&types[n]), id: Some(ValueId(n as u32)) };
    let y = TVal { ty: Ty::known(&types[n + 1]), id: Some(ValueId(n as u32 + 1)) };
    let mut args = vec![CallArg { name: None, name_span: None, value: Val::Tensor(x), span: batch[0].name.span }];
    // `fn training_step(self, x)`: a step without targets (an autoencoder)
    // still gets them as a program input, unused, so every step program
    // has one layout.
    if let Some(p) = batch.get(1) {
        args.push(CallArg { name: None, name_span: None, value: Val::Tensor(y), span: p.name.span });
    }
    if takes_key {
        let key = TVal { ty: Ty::known(&key_type()), id: Some(ValueId(n as u32 + 2)) };
        let span = mdecl.params.last().expect("has key").name.span;
        args.push(CallArg { name: None, name_span: None, value: Val::Tensor(key), span });
    }
    el.logs = Some(Vec::new());
    el.training = is_train;
    el.assigned = is_train.then(Vec::new);
    let out = el.call_method(inst, method, args, mdecl.span);
    if is_train {
        reserved_log_names(&mut el);
    }
    let logs: Vec<LogEntry> = el.logs.take().unwrap_or_default();
    let assigned = el.assigned.take().unwrap_or_default();
    if el.diags.iter().any(Diagnostic::is_error) {
        let mut diags = dedup(el.diags);
        // A step without targets was given none that it could name.
        let y = if batch.len() > 1 { format!(", y: {}", types[n + 1]) } else { String::new() };
        for d in &mut diags {
            d.notes.push(format!("while compiling `{}` for batches x: {}{y}", mdecl.name.name, types[n]));
        }
        return Err(diags);
    }
    let mut outputs = Vec::new();
    if is_train {
        match (&out, not_a_loss(&out, mdecl)) {
            (_, Some(d)) => return Err(vec![d]),
            (Val::Tensor(t), None) => outputs.push(t.id.expect("built")),
            // Poison without an error: the elaborator's debug check catches it.
            (_, None) => {
                return Err(vec![Diagnostic::error(Code::TypeMismatch, "`training_step` must return the loss")
                    .with_label(mdecl.name.span, "defined here")])
            }
        }
    }
    outputs.extend(logs.iter().map(|l| l.value.id.expect("built")));
    outputs.extend(assigned.iter().map(|a| a.value.id.expect("built")));
    let func = el.builder.take().expect("builder").finish(outputs);
    crate::ir::verify::assert_valid(&func, "lower (step)");
    Ok(LoweredStep {
        func,
        logs: logs.into_iter().map(|l| (l.name, l.prog_bar)).collect(),
        takes_key,
        assigned: assigned.into_iter().map(|a| a.path).collect(),
    })
}

/// A lowered step method: inputs params, x, y (then the key when
/// `takes_key`); outputs (loss, logs...) for a training step, else the
/// logs; then the new values of the buffers `assigned` (training only).
struct LoweredStep {
    func: Func,
    logs: Vec<(String, bool)>,
    takes_key: bool,
    assigned: Vec<String>,
}
