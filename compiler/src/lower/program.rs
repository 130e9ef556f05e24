//! The program: the user's file plus the stdlib modules and user files it
//! `use`s, parsed, with one scope of global names per module.
//!
//! Stdlib modules are ordinary source files under `stdlib/`, embedded in the
//! binary so that `jlc` is one file. The compiler special-cases none of them.
//!
//! User files are imported with a string, `use "layers.jl"`, resolved
//! relative to the directory of the importing file. A string keeps the two
//! kinds of import apart without a search order (a file `nn.jl` beside the
//! model cannot shadow the stdlib's `nn`), and allows any relative path
//! (`use "../common/blocks.jl"`). The compiler never opens files itself: it
//! asks the caller's `read` function for exactly the files the user imports
//! (the `jaxlightning` facade reads them from disk; tests serve them from
//! memory). A file imported twice is loaded once; an import cycle is an error
//! that lists the chain.

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
    ("math", include_str!("../../../stdlib/math.jl")),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Global {
    Fn { module: usize, item: usize },
    Model { module: usize, item: usize },
    Const { module: usize, item: usize },
}

pub struct ModuleInfo {
    pub name: String,
    pub file: FileId,
    pub ast: ast::Module,
    /// Every name visible at the top level of this module.
    pub scope: BTreeMap<String, Global>,
    /// Names of declarations the parser could not read (a syntax error in
    /// their header): uses of them are poison, not unknown names, since
    /// that error was reported (`unparsed.rs`).
    pub unparsed: std::collections::BTreeSet<String>,
    /// Member names (fields, methods) the file's model bodies declare, when
    /// it had syntax errors (`unparsed::member_names`); else empty.
    pub unparsed_members: std::collections::BTreeSet<String>,
    /// Whether the file had syntax errors (then checks of the whole file,
    /// such as "no model has a `training_step`", would report what the
    /// parser dropped).
    pub syntax_errors: bool,
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
    pub fn const_decl(&self, module: usize, item: usize) -> &ast::ConstDecl {
        match &self.modules[module].ast.items[item] {
            Item::Const(c) => c,
            other => panic!("item {item} of module {module} is not a const: {other:?}"),
        }
    }
    pub fn user(&self) -> &ModuleInfo {
        &self.modules[0]
    }
}

/// Reads the user file at a resolved path (`dir/of/importer/layers.jl`);
/// an error is a message such as the OS's "No such file or directory".
pub type ReadFile<'a> = dyn FnMut(&str) -> Result<String, String> + 'a;

/// Parses the user's file and every stdlib module it uses, and resolves
/// `use` declarations. Importing a user file is an error here (there is no
/// file reader); see `load_with`. Returns the program and its diagnostics.
pub fn load(file_name: &str, text: &str) -> (Program, Vec<Diagnostic>) {
    load_with(file_name, text, &mut |_| Err("this compilation cannot read other files".into()))
}

/// Like `load`, with `read` giving the text of imported user files.
pub fn load_with(file_name: &str, text: &str, read: &mut ReadFile) -> (Program, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let mut prog = Program { sources: SourceMap::default(), modules: Vec::new() };
    let file = prog.sources.add(file_name, text);
    let module = crate::syntax::parse(file, text, &mut diags);
    let mut loader = Loader { read, stack: vec![normalize(file_name)] };
    let broken = diags.iter().any(Diagnostic::is_error);
    add_module(&mut prog, "main", file, (module, broken), &mut diags, &mut loader);
    (prog, diags)
}

/// The file reader and the chain of files being loaded (for cycles).
struct Loader<'r, 'a> {
    read: &'r mut ReadFile<'a>,
    stack: Vec<String>,
}

/// `importer`'s directory joined with `path`, with `.` and `dir/..`
/// removed lexically, so one file has one name however it is reached.
pub fn resolve(importer: &str, path: &str) -> String {
    let dir = std::path::Path::new(importer).parent().unwrap_or(std::path::Path::new(""));
    normalize(&dir.join(path).to_string_lossy())
}

fn normalize(path: &str) -> String {
    use std::path::Component;
    let mut parts: Vec<Component> = Vec::new();
    for c in std::path::Path::new(path).components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(parts.last(), Some(Component::Normal(_))) => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    let p: std::path::PathBuf = parts.iter().collect();
    p.to_string_lossy().into_owned()
}

/// The module of the user file `u` imports: loaded (once), or `None` after
/// reporting a missing file or a cycle.
fn load_file(
    prog: &mut Program,
    importer: FileId,
    u: &ast::UseDecl,
    diags: &mut Vec<Diagnostic>,
    loader: &mut Loader,
) -> Option<usize> {
    let path = resolve(&prog.sources.get(importer).name, &u.module.name);
    if let Some(start) = loader.stack.iter().position(|p| *p == path) {
        let mut chain: Vec<String> = loader.stack[start..].to_vec();
        chain.push(path.clone());
        diags.push(
            Diagnostic::error(Code::UnknownModule, format!("import cycle: {}", chain.join(" -> ")))
                .with_label(u.module.span, "this import closes the cycle")
                .with_help("move what both files need into a third file that imports neither"),
        );
        return None;
    }
    let key = format!("file:{path}");
    if let Some(i) = prog.modules.iter().position(|m| m.name == key) {
        return Some(i);
    }
    let text = match (loader.read)(&path) {
        Ok(t) => t,
        Err(e) => {
            diags.push(
                Diagnostic::error(Code::UnknownModule, format!("cannot read the imported file `{path}`"))
                    .with_label(u.module.span, "imported here")
                    .with_note(format!("reading `{path}`: {e}"))
                    .with_help("a path in `use \"...\"` is relative to the directory of the file that imports it"),
            );
            return None;
        }
    };
    let file = prog.sources.add(&path, &text);
    let before = diags.len();
    let module = crate::syntax::parse(file, &text, diags);
    let broken = diags[before..].iter().any(Diagnostic::is_error);
    loader.stack.push(path);
    let id = add_module(prog, &key, file, (module, broken), diags, loader);
    loader.stack.pop();
    Some(id)
}

/// `parsed`: the module and whether its file had syntax errors.
fn add_module(
    prog: &mut Program,
    name: &str,
    file: FileId,
    parsed: (ast::Module, bool),
    diags: &mut Vec<Diagnostic>,
    loader: &mut Loader,
) -> usize {
    let (module, broken) = parsed;
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
            Item::Const(c) => {
                scope.insert(c.name.name.clone(), Global::Const { module: id, item });
            }
            Item::Use(_) | Item::Data(_) | Item::Trainer(_) => {}
        }
    }
    let uses: Vec<ast::UseDecl> =
        module.items.iter().filter_map(|it| if let Item::Use(u) = it { Some(u.clone()) } else { None }).collect();
    let text = &prog.sources.get(file).text;
    let (unparsed, unparsed_members) = if broken {
        let declared = super::unparsed::declared_names(text);
        (
            declared.into_iter().filter(|n| !scope.contains_key(n)).collect(),
            super::unparsed::member_names(text).into_iter().collect(),
        )
    } else {
        Default::default()
    };
    prog.modules.push(ModuleInfo {
        name: name.to_string(),
        file,
        ast: module,
        scope,
        unparsed,
        unparsed_members,
        syntax_errors: broken,
    });
    for u in uses {
        // The names a failed `use` would have brought in are known to be
        // broken (the failure is reported): their uses are silent poison.
        let failed = |prog: &mut Program, names: &[ast::Ident]| {
            prog.modules[id].unparsed.extend(names.iter().map(|n| n.name.clone()));
        };
        let target = if u.file { load_file(prog, file, &u, diags, loader) } else { None };
        if u.file && target.is_none() {
            failed(prog, u.names.as_deref().unwrap_or_default());
            continue;
        }
        let Some(target) = target.or_else(|| load_stdlib(prog, &u.module.name, diags, loader)) else {
            failed(prog, u.names.as_deref().unwrap_or_default());
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
            .filter(|(_, g)| {
                matches!(g, Global::Fn { module, .. } | Global::Model { module, .. } | Global::Const { module, .. }
                    if *module == target)
            })
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
                                Code::UnknownModule,
                                format!("module `{}` has no item named `{}`", module_label(&u), n.name),
                            )
                            .with_label(n.span, "not found in the module");
                            if let Some(s) =
                                crate::lower::suggest::closest(&n.name, own.iter().map(|(k, _)| k.as_str()))
                            {
                                d = d.with_help(format!("did you mean `{s}`?"));
                            }
                            diags.push(d);
                            failed(prog, std::slice::from_ref(n));
                        }
                    }
                }
            }
        }
    }
    id
}

/// `nn`, or `"layers.jl"` for a file.
fn module_label(u: &ast::UseDecl) -> String {
    if u.file {
        format!("{:?}", u.module.name)
    } else {
        u.module.name.clone()
    }
}

/// Loads (once) the stdlib module `name`; returns its module id.
fn load_stdlib(prog: &mut Program, name: &str, diags: &mut Vec<Diagnostic>, loader: &mut Loader) -> Option<usize> {
    if let Some(i) = prog.modules.iter().position(|m| m.name == name) {
        return Some(i);
    }
    let (_, text) = STDLIB.iter().find(|(n, _)| *n == name)?;
    let file = prog.sources.add(&format!("stdlib/{name}.jl"), text);
    let module = parse_stdlib(name, text, file, diags);
    Some(add_module(prog, name, file, (module, false), diags, loader))
}

thread_local! {
    /// Parsed stdlib modules by (name, file id). The text is fixed, so the
    /// syntax tree for a given file id (which every span carries) is always
    /// the same; parsing it was 40% of checking a small file, which matters
    /// to callers that check many files in one thread (the fuzz tests, an
    /// editor). At most a few entries: a module's file id is its load order.
    static STDLIB_ASTS: std::cell::RefCell<Vec<((String, FileId), ast::Module, Vec<Diagnostic>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// `crate::syntax::parse` of a stdlib module, from `STDLIB_ASTS` when it is there.
fn parse_stdlib(name: &str, text: &str, file: FileId, diags: &mut Vec<Diagnostic>) -> ast::Module {
    STDLIB_ASTS.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some((_, module, ds)) = cache.iter().find(|((n, f), _, _)| n == name && *f == file) {
            diags.extend(ds.iter().cloned());
            return module.clone();
        }
        let mut ds = Vec::new();
        let module = crate::syntax::parse(file, text, &mut ds);
        diags.extend(ds.iter().cloned());
        cache.push(((name.to_string(), file), module.clone(), ds));
        module
    })
}
