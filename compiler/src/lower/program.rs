//! The program: the user's file plus the stdlib modules it `use`s, parsed,
//! with one scope of global names per module.
//!
//! Stdlib modules are ordinary source files under `stdlib/`, embedded in the
//! binary so that `jlc` is one file. The compiler special-cases none of them.

use crate::diagnostic::{Code, Diagnostic};
use crate::span::{FileId, SourceMap};
use crate::syntax::ast::{self, Item};
use std::collections::BTreeMap;

/// The stdlib modules, by name.
pub const STDLIB: &[(&str, &str)] = &[
    ("nn", include_str!("../../../stdlib/nn.jl")),
    ("losses", include_str!("../../../stdlib/losses.jl")),
    ("metrics", include_str!("../../../stdlib/metrics.jl")),
    ("optim", include_str!("../../../stdlib/optim.jl")),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Global {
    Fn { module: usize, item: usize },
    Model { module: usize, item: usize },
}

pub struct ModuleInfo {
    pub name: String,
    pub file: FileId,
    pub ast: ast::Module,
    /// Every name visible at the top level of this module.
    pub scope: BTreeMap<String, Global>,
}

pub struct Program {
    pub sources: SourceMap,
    /// Module 0 is the user's file.
    pub modules: Vec<ModuleInfo>,
}

impl Program {
    pub fn fn_decl(&self, module: usize, item: usize) -> &ast::FnDecl {
        match &self.modules[module].ast.items[item] {
            Item::Fn(f) => f,
            other => panic!("item {item} of module {module} is not a fn: {other:?}"),
        }
    }
    pub fn model_decl(&self, module: usize, item: usize) -> &ast::ModelDecl {
        match &self.modules[module].ast.items[item] {
            Item::Model(m) => m,
            other => panic!("item {item} of module {module} is not a model: {other:?}"),
        }
    }
    pub fn user(&self) -> &ModuleInfo {
        &self.modules[0]
    }
}

/// Parses the user's file and every stdlib module it uses, and resolves
/// `use` declarations. Returns the program and its diagnostics.
pub fn load(file_name: &str, text: &str) -> (Program, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let mut prog = Program { sources: SourceMap::default(), modules: Vec::new() };
    let file = prog.sources.add(file_name, text);
    let module = crate::syntax::parse(file, text, &mut diags);
    add_module(&mut prog, "main", file, module, &mut diags);
    (prog, diags)
}

fn add_module(prog: &mut Program, name: &str, file: FileId, module: ast::Module, diags: &mut Vec<Diagnostic>) -> usize {
    let id = prog.modules.len();
    let mut scope = BTreeMap::new();
    for (item, it) in module.items.iter().enumerate() {
        match it {
            Item::Fn(f) => {
                scope.insert(f.name.name.clone(), Global::Fn { module: id, item });
            }
            Item::Model(m) => {
                scope.insert(m.name.name.clone(), Global::Model { module: id, item });
            }
            Item::Use(_) | Item::Data(_) | Item::Trainer(_) => {}
        }
    }
    let uses: Vec<ast::UseDecl> =
        module.items.iter().filter_map(|it| if let Item::Use(u) = it { Some(u.clone()) } else { None }).collect();
    prog.modules.push(ModuleInfo { name: name.to_string(), file, ast: module, scope });
    for u in uses {
        let Some(target) = load_stdlib(prog, &u.module.name, diags) else {
            let known: Vec<&str> = STDLIB.iter().map(|(n, _)| *n).collect();
            let mut d = Diagnostic::error(Code::UnknownModule, format!("no stdlib module named `{}`", u.module.name))
                .with_label(u.module.span, "unknown module");
            d = match crate::lower::suggest::closest(&u.module.name, known.iter().copied()) {
                Some(s) => d.with_help(format!("did you mean `{s}`?")),
                None => d.with_help(format!("the stdlib modules are: {}", known.join(", "))),
            };
            diags.push(d);
            continue;
        };
        let exported = prog.modules[target].scope.clone();
        let own: Vec<(String, Global)> = exported
            .into_iter()
            .filter(|(_, g)| matches!(g, Global::Fn { module, .. } | Global::Model { module, .. } if *module == target))
            .collect();
        match &u.names {
            None => {
                for (n, g) in own {
                    prog.modules[id].scope.entry(n).or_insert(g);
                }
            }
            Some(names) => {
                for n in names {
                    match own.iter().find(|(k, _)| k == &n.name) {
                        Some((k, g)) => {
                            prog.modules[id].scope.insert(k.clone(), *g);
                        }
                        None => {
                            let mut d = Diagnostic::error(
                                Code::UnknownName,
                                format!("module `{}` has no item named `{}`", u.module.name, n.name),
                            )
                            .with_label(n.span, "not found in the module");
                            if let Some(s) =
                                crate::lower::suggest::closest(&n.name, own.iter().map(|(k, _)| k.as_str()))
                            {
                                d = d.with_help(format!("did you mean `{s}`?"));
                            }
                            diags.push(d);
                        }
                    }
                }
            }
        }
    }
    id
}

/// Loads (once) the stdlib module `name`; returns its module id.
fn load_stdlib(prog: &mut Program, name: &str, diags: &mut Vec<Diagnostic>) -> Option<usize> {
    if let Some(i) = prog.modules.iter().position(|m| m.name == name) {
        return Some(i);
    }
    let (_, text) = STDLIB.iter().find(|(n, _)| *n == name)?;
    let file = prog.sources.add(&format!("stdlib/{name}.jl"), text);
    let module = crate::syntax::parse(file, text, diags);
    Some(add_module(prog, name, file, module, diags))
}
