//! Rules of argument and parameter lists that the grammar leaves open,
//! checked on the whole tree after parsing, so that code the compiler never
//! elaborates (an uncalled function, a branch not taken) is held to them
//! too, as Python's parser holds it:
//!
//! - a positional argument may not follow a keyword argument (it would fill
//!   the first slot, which the keyword may have filled already);
//! - a parameter name may not repeat in one parameter list (the second
//!   would shadow the first, and a caller's arguments would go astray).

use super::ast::{Arg, Module, Param};
use super::visit::{walk_module, Visit};
use crate::diagnostic::{Code, Diagnostic};

/// Reports every call and parameter list of `module` that breaks a rule.
pub fn check(module: &Module, diags: &mut Vec<Diagnostic>) {
    walk_module(&mut ArgRules { diags }, module);
}

struct ArgRules<'a> {
    diags: &'a mut Vec<Diagnostic>,
}

impl Visit for ArgRules<'_> {
    fn params(&mut self, ps: &[Param]) {
        for (i, p) in ps.iter().enumerate() {
            if let Some(first) = ps[..i].iter().find(|q| q.name.name == p.name.name) {
                self.diags.push(
                    Diagnostic::error(Code::BadCall, format!("the parameter `{}` is declared twice", p.name.name))
                        .with_label(first.name.span, "first here")
                        .with_label(p.name.span, "again here")
                        .with_help("give each parameter its own name"),
                );
            }
            p.default.iter().for_each(|e| self.expr(e));
        }
    }

    fn args(&mut self, list: &[Arg]) {
        if let Some(k) = list.iter().position(|a| a.name.is_some()) {
            if let Some(late) = list[k..].iter().find(|a| a.name.is_none()) {
                let keyword = list[k].name.as_ref().expect("found a keyword");
                self.diags.push(
                    Diagnostic::error(Code::BadCall, "a positional argument follows a keyword argument")
                        .with_label(late.value.span, "positional")
                        .with_label(keyword.span, "after this keyword argument")
                        .with_help("put the positional arguments first, or name this one too"),
                );
            }
        }
        list.iter().for_each(|a| self.expr(&a.value));
    }
}
