//! `jlc dump --stage typed`: the user's file as the checker sees it, one
//! line per item: constants with their values, functions and methods with
//! their parameter types and the return type the checker infers (symbolic
//! dims such as `B` stay symbolic), models with their parameters' shapes.
//!
//! It runs the checker exactly as `check_program` does (same elaborator,
//! check mode) and only prints what it computed. A function with
//! unannotated parameters is a template, checked at each call, so it has no
//! single signature: it prints as `(checked at each call)`.

use super::elab::{CallArg, Elaborator};
use super::entry::check_fn;
use super::program::Program;
use super::value::{ModelInst, Val};
use crate::syntax::ast::{FnDecl, Item};
use std::fmt::Write;

/// One line per constant, function, model parameter and method of the user's file.
pub fn signatures(prog: &Program) -> String {
    let mut el = Elaborator::new(prog, None);
    let mut out = String::new();
    for (i, item) in prog.user().ast.items.iter().enumerate() {
        match item {
            Item::Const(c) => {
                let v = el.const_value(0, i, c.span);
                let _ = writeln!(out, "const {} = {}", c.name.name, value(&v));
            }
            Item::Fn(f) => {
                let _ = writeln!(out, "{}", signature(&mut el, f, None));
            }
            Item::Model(decl) => {
                let inst = match decl.config.iter().all(|p| p.default.is_some()) {
                    true => el.instantiate(0, i, vec![], "", decl.span),
                    false => Val::Poison,
                };
                let Val::Model(inst) = inst else {
                    let config: Vec<String> = decl.config.iter().map(|p| p.name.name.clone()).collect();
                    let _ = writeln!(out, "model {}({}) (configured at each use)", decl.name.name, config.join(", "));
                    continue;
                };
                let config: Vec<String> = decl
                    .config
                    .iter()
                    .map(|p| match inst.config.get(&p.name.name) {
                        Some(v) => format!("{} = {}", p.name.name, value(v)),
                        None => p.name.name.clone(),
                    })
                    .collect();
                let _ = writeln!(out, "model {}({})", decl.name.name, config.join(", "));
                params(&inst, "", &mut out);
                for method in &decl.methods {
                    let _ = writeln!(out, "    {}", signature(&mut el, method, Some(inst.clone())));
                }
            }
            Item::Use(_) | Item::Data(_) | Item::Trainer(_) => {}
        }
    }
    out
}

/// `fn name(x: f32[B, 784], k: int) -> f32[B, 10]`, checked on the declared types.
fn signature(el: &mut Elaborator, f: &FnDecl, model: Option<std::rc::Rc<ModelInst>>) -> String {
    let is_method = model.is_some();
    let checked = f.params.iter().all(|p| p.name.name == "self" || p.ty.is_some() || p.default.is_some());
    // As `check_program`: `log` is allowed in step methods, `print` in `main`.
    if is_method && f.name.name.ends_with("_step") {
        el.logs = Some(Vec::new());
    }
    if !is_method && f.name.name == "main" {
        el.prints = Some(Vec::new());
    }
    // As `check_program`: `self.training` (and `assign`) in `training_step` only.
    let training = is_method && f.name.name == "training_step";
    (el.training, el.assigned) = (training, training.then(Vec::new));
    let res = if checked { check_fn(el, 0, f, model) } else { None };
    (el.training, el.assigned) = (false, None);
    el.logs = None;
    el.prints = None;
    let mut params: Vec<String> =
        if is_method && f.params.first().is_some_and(|p| p.name.name == "self") { vec!["self".into()] } else { vec![] };
    match &res {
        Some((args, ret)) => {
            params.extend(
                args.iter().map(|a: &CallArg| format!("{}: {}", a.name.as_deref().unwrap_or("_"), ty_of(&a.value))),
            );
            format!("fn {}({}) -> {}", f.name.name, params.join(", "), ty_of(ret))
        }
        None => {
            params.extend(f.params.iter().filter(|p| p.name.name != "self").map(|p| p.name.name.clone()));
            format!("fn {}({}) (checked at each call)", f.name.name, params.join(", "))
        }
    }
}

/// A model's parameters, by dotted path, with their types.
fn params(m: &ModelInst, prefix: &str, out: &mut String) {
    for (name, t) in &m.params {
        let _ = writeln!(out, "    {prefix}{name}: {}", t.ty);
    }
    for (name, sub) in &m.subs {
        params(sub, &format!("{prefix}{name}."), out);
    }
}

/// The type of a value, as a signature shows it.
fn ty_of(v: &Val) -> String {
    match v {
        Val::Tensor(t) => t.ty.to_string(),
        Val::Int(_) | Val::NegInt(_) => "int".into(),
        Val::Float(_) => "float".into(),
        Val::Bool(_) => "bool".into(),
        Val::Str(_) => "str".into(),
        Val::Tuple(items) => format!("({})", items.iter().map(ty_of).collect::<Vec<_>>().join(", ")),
        Val::Unit => "()".into(),
        Val::Poison => "<error>".into(),
        other => other.describe(),
    }
}

/// A constant's value (its type when it is a tensor).
fn value(v: &Val) -> String {
    match v {
        Val::Int(d) => d.to_string(),
        Val::NegInt(n) => n.to_string(),
        Val::Float(x) => format!("{x:?}"),
        Val::Bool(b) => b.to_string(),
        Val::Str(s) => format!("{s:?}"),
        Val::Tuple(items) => format!("({})", items.iter().map(value).collect::<Vec<_>>().join(", ")),
        other => ty_of(other),
    }
}
