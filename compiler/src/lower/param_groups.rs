//! Which optimizer updates each parameter: `configure_optimizers` returns
//! one optimizer for all of them, or
//!
//! ```text
//! param_groups(adam(lr = 1e-3),                 # the default
//!              (self.encoder, adam(lr = 1e-4)), # a group: parts, optimizer
//!              ("head.bias", sgd(lr = 0.1)),
//!              frozen = (self.embed, "pos"))    # parts nobody trains
//! ```
//!
//! PyTorch's parameter groups and `requires_grad = False`, optax's
//! `multi_transform` with `set_to_zero`. A part is a submodule of the
//! trained model (its path), a list field (its path: the members), or a
//! string: a parameter's path or the path of a part holding it (`"enc"`
//! holds `enc.w`, not `encoder.w`). A parameter takes the
//! group of the most specific part that contains it (the longest path),
//! else the default. Frozen parameters get
//! no gradient at all: the clipping norm, `grad_norm` and the finiteness
//! check leave them out, as PyTorch's do.
//!
//! Each group's optimizer has its own states (`opt.<path>.<k>`, as many as
//! its update takes) and its own hyperparameters and schedules; buffers
//! and frozen parameters have none. With `log_lr`, the default's learning
//! rate is `lr` and group k's (counted from 1 in the order written) is
//! `lr/pgk`, as Lightning's `LearningRateMonitor` numbers groups.

use super::elab::{CallArg, Elaborator};
use super::program::Program;
use super::value::{ModelInst, Optimizer, ParamSpec, Val};
use crate::diagnostic::{Code, Diagnostic};
use crate::span::Span;
use std::rc::Rc;

/// `param_groups(...)` as written.
#[derive(Clone, Debug)]
pub struct ParamGroups {
    pub default: Option<Optimizer>,
    pub groups: Vec<Group>,
}

#[derive(Clone, Debug)]
pub struct Group {
    pub parts: Vec<Part>,
    /// `None`: frozen.
    pub optimizer: Option<Optimizer>,
    /// 1-based among the groups with an optimizer (`lr/pgK`); 0 when frozen.
    pub number: usize,
    pub span: Span,
}

/// A part of the model a group names.
#[derive(Clone, Debug)]
pub struct Part {
    /// A parameter's path or the path of a part that holds parameters ("" is
    /// the whole model).
    pub path: String,
    /// The instance it was given as (`self.encoder`), to check that it is
    /// the trained model's and not one made on the spot.
    pub model: Option<Rc<ModelInst>>,
}

/// The `param_groups` builtin: checks the arguments' forms; which
/// parameters they name is checked by `plan` against the model.
pub(super) fn make(el: &mut Elaborator, args: &[CallArg], span: Span) -> Val {
    let mut default = None;
    let mut groups: Vec<Group> = Vec::new();
    let mut numbered = 0;
    for (i, a) in args.iter().enumerate() {
        if a.value.has_poison() {
            return Val::Poison;
        }
        match (a.name.as_deref(), &a.value) {
            (None, Val::Optimizer(o)) if i == 0 => default = Some(o.clone()),
            (None, Val::Optimizer(_)) => return bad(
                el,
                a.span,
                "only the first argument may be an optimizer alone (the default for every parameter no group names)",
                "an optimizer without parts",
            ),
            (None, Val::Tuple(items)) if items.len() == 2 && matches!(items[1], Val::Optimizer(_)) => {
                let Val::Optimizer(o) = &items[1] else { unreachable!("matched above") };
                let Some(parts) = parts(el, &items[0], a.span) else { return Val::Poison };
                numbered += 1;
                groups.push(Group { parts, optimizer: Some(o.clone()), number: numbered, span: a.span });
            }
            (None, other) => {
                return bad(
                    el,
                    a.span,
                    "a parameter group is a tuple `(parts, optimizer)`, e.g. `(self.encoder, adam(lr = 1e-4))`",
                    &format!("this is {}", other.describe()),
                )
            }
            (Some("frozen"), _) if args[..i].iter().any(|b| b.name.as_deref() == Some("frozen")) => {
                return bad(el, a.name_span.unwrap_or(a.span), "`frozen` is given twice", "given again here")
            }
            (Some("frozen"), v) => {
                let Some(parts) = parts(el, v, a.span) else { return Val::Poison };
                groups.push(Group { parts, optimizer: None, number: 0, span: a.span });
            }
            (Some(other), _) => {
                return bad(
                    el,
                    a.name_span.unwrap_or(a.span),
                    &format!("`param_groups` has no setting `{other}`: its only named argument is `frozen`"),
                    "unknown setting",
                )
            }
        }
    }
    if default.is_none() && groups.iter().all(|g| g.optimizer.is_none()) {
        return bad(
            el,
            span,
            "`param_groups` needs an optimizer: a default first, `(parts, optimizer)` groups, or both",
            "no optimizer here",
        );
    }
    Val::ParamGroups(std::rc::Rc::new(ParamGroups { default, groups }))
}

/// The parts a group names: submodules (by path), list fields (every
/// member; `plan` merges them back into the list's path), strings (paths
/// or prefixes), and tuples of these (`()`: none).
fn parts(el: &mut Elaborator, v: &Val, span: Span) -> Option<Vec<Part>> {
    match v {
        Val::Model(m) => Some(vec![Part { path: m.path.clone(), model: Some(m.clone()) }]),
        Val::Str(s) => Some(vec![Part { path: s.clone(), model: None }]),
        Val::Unit => Some(vec![]),
        Val::Tuple(items) => {
            let mut out = Vec::new();
            for it in items {
                out.extend(parts(el, it, span)?);
            }
            Some(out)
        }
        Val::Tensor(_) => {
            bad(
                el,
                span,
                "a single parameter is named by its path, as a string: `\"head.bias\"` (submodules can be given as `self.head`)",
                "a tensor, not a part of the model",
            );
            None
        }
        other => {
            bad(
                el,
                span,
                "a group's parts are submodules (`self.encoder`), list fields, or parameter paths as strings (`\"head.bias\"`)",
                &format!("this is {}", other.describe()),
            );
            None
        }
    }
}

fn bad(el: &mut Elaborator, span: Span, msg: &str, label: &str) -> Val {
    el.error(Diagnostic::error(Code::BadCall, msg.to_string()).with_label(span, label.to_string()))
}

/// One optimizer of the plan.
#[derive(Clone, Debug)]
pub struct Planned {
    pub optimizer: Optimizer,
    /// States per parameter: the update's parameters between `g` and `step`.
    pub n_states: usize,
    /// The name `log_lr` logs its learning rate under.
    pub lr_log: String,
}

/// Which optimizer updates each parameter.
#[derive(Clone, Debug)]
pub struct Plan {
    pub optimizers: Vec<Planned>,
    /// Per parameter (the model's order): its optimizer, `None` for buffers
    /// and frozen parameters.
    pub of_param: Vec<Option<usize>>,
}

impl Plan {
    /// The states of each parameter, in order.
    pub fn state_counts(&self) -> Vec<usize> {
        self.of_param.iter().map(|o| o.map_or(0, |k| self.optimizers[k].n_states)).collect()
    }
}

/// For the run's summary: `adam (default), sgd (pg1: encoder), frozen (embed)`.
fn describe(default: Option<&Optimizer>, groups: &ParamGroups, parts: &[Vec<String>]) -> String {
    let shown =
        |parts: &[String]| parts.iter().map(|p| if p.is_empty() { "(all)" } else { p }).collect::<Vec<_>>().join(" ");
    let mut items: Vec<String> = default.iter().map(|o| format!("{} (default)", o.name)).collect();
    for (g, parts) in groups.groups.iter().zip(parts) {
        items.push(match &g.optimizer {
            Some(o) => format!("{} (pg{}: {})", o.name, g.number, shown(parts)),
            None => format!("frozen ({})", shown(parts)),
        });
    }
    items.join(", ")
}

/// Whether the path `part` names `path` or contains it.
fn contains(part: &str, path: &str) -> bool {
    part.is_empty() || path == part || path.strip_prefix(part).is_some_and(|rest| rest.starts_with('.'))
}

/// What `configure_optimizers` returned, applied to the parameters of the
/// trained model `root`: makes the frozen ones `ParamKind::Frozen`. Returns
/// the plan and its description for the summary.
/// `span` is where `configure_optimizers` returned it.
pub(super) fn plan(
    prog: &Program,
    returned: Val,
    params: &mut [ParamSpec],
    root: &Rc<ModelInst>,
    span: Span,
) -> Result<(Plan, String), Vec<Diagnostic>> {
    let model = root.name.as_str();
    let groups = match returned {
        Val::Optimizer(o) => {
            let name = o.name.clone();
            let planned = planned(prog, o, super::gradients::LR_LOG.into())?;
            let of_param = params.iter().map(|p| p.trainable().then_some(0)).collect();
            return Ok((Plan { optimizers: vec![planned], of_param }, name));
        }
        Val::ParamGroups(g) => (*g).clone(),
        other => {
            return Err(vec![Diagnostic::error(
                Code::TypeMismatch,
                format!(
                    "`configure_optimizers` must return an optimizer such as `adam(lr = 1e-3)`, or `param_groups(...)`, not {}",
                    other.describe()
                ),
            )
            .with_label(span, "returned here")])
        }
    };
    let mut diags = Vec::new();
    // An instance made on the spot (`Linear(4, 4)`) has the path of the
    // whole model: it must be one of the trained model's own.
    for g in &groups.groups {
        for m in g.parts.iter().filter_map(|p| p.model.as_ref()) {
            if !owns(root, m) {
                diags.push(
                    Diagnostic::error(
                        Code::BadCall,
                        format!("this `{}` is not part of the trained model `{model}`", m.name),
                    )
                    .with_label(g.span, "a model made here, not one of the model's submodules")
                    .with_help("name the model's own parts through `self`: `self.encoder`"),
                );
            }
        }
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    let lists = list_fields(root);
    let parts: Vec<Vec<String>> = groups.groups.iter().map(|g| group_paths(&g.parts, &lists)).collect();
    // A part named twice would leave the choice to the order written.
    let mut seen: Vec<(&str, Span)> = Vec::new();
    for (g, paths) in groups.groups.iter().zip(&parts) {
        for part in paths {
            if let Some((_, first)) = seen.iter().find(|(p, _)| p == part) {
                let shown = if part.is_empty() { "the whole model".to_string() } else { format!("`{part}`") };
                diags.push(
                    Diagnostic::error(Code::BadCall, format!("{shown} is in two parameter groups"))
                        .with_label(*first, "first here")
                        .with_label(g.span, "again here")
                        .with_help("give each part one group; a more specific part (`encoder.norm` within `encoder`) overrides a broader one"),
                );
            } else {
                seen.push((part, g.span));
            }
        }
    }
    for (g, paths) in groups.groups.iter().zip(&parts) {
        for part in paths {
            let matched: Vec<&ParamSpec> = params.iter().filter(|p| contains(part, &p.path)).collect();
            if matched.is_empty() {
                let mut d = Diagnostic::error(
                    Code::UnknownName,
                    format!("model `{model}` has no parameter or submodule `{part}`"),
                )
                .with_label(g.span, "names nothing in the model");
                let prefixes: Vec<String> = params
                    .iter()
                    .flat_map(|p| {
                        p.path.match_indices('.').map(|(i, _)| p.path[..i].to_string()).chain([p.path.clone()])
                    })
                    .collect();
                if let Some(s) = super::suggest::closest(part, prefixes.iter().map(|s| s.as_str())) {
                    d = d.with_help(format!("did you mean `{s}`?"));
                }
                diags.push(d);
            } else if matched.iter().all(|p| !p.trainable()) {
                diags.push(
                    Diagnostic::error(
                        Code::BadCall,
                        format!("`{part}` holds only buffers, which no optimizer updates"),
                    )
                    .with_label(g.span, "only buffers here")
                    .with_help("buffers change only by `assign` in `training_step`; leave them out of the groups"),
                );
            }
        }
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    // The group of each trainable parameter: that of the most specific part
    // containing it (`None`: the default's).
    let chosen: Vec<Option<usize>> = params
        .iter()
        .map(|p| {
            let mut best: Option<(usize, usize)> = None;
            for (i, paths) in parts.iter().enumerate() {
                for part in paths.iter().filter(|part| contains(part, &p.path)) {
                    let depth = if part.is_empty() { 0 } else { part.len() + 1 };
                    if best.is_none_or(|(_, d)| depth > d) {
                        best = Some((i, depth));
                    }
                }
            }
            best.map(|(i, _)| i)
        })
        .collect();
    let trained = |p: &ParamSpec| p.trainable();
    let orphans: Vec<String> = params
        .iter()
        .zip(&chosen)
        .filter(|(p, c)| trained(p) && c.is_none() && groups.default.is_none())
        .map(|(p, _)| format!("`{}`", p.path))
        .collect();
    if !orphans.is_empty() {
        return Err(vec![Diagnostic::error(Code::BadCall, format!("no parameter group holds {}", orphans.join(", ")))
            .with_label(span, "these groups")
            .with_help("give a default optimizer first, `param_groups(adam(lr = 1e-3), ...)`, or name these parameters in a group")]);
    }
    let updated = |c: &Option<usize>| c.map_or(groups.default.is_some(), |i| groups.groups[i].optimizer.is_some());
    if !params.iter().zip(&chosen).any(|(p, c)| trained(p) && updated(c)) {
        return Err(vec![Diagnostic::error(Code::BadSection, format!("every parameter of model `{model}` is frozen"))
            .with_label(span, "these groups")
            .with_help("training needs at least one parameter to update")]);
    }
    // A group whose every parameter more specific parts take is a mistake in
    // the groups (PyTorch refuses an empty parameter list too). The default
    // is a catch-all: with nothing left to it, it is left out.
    let takes = |group: Option<usize>| params.iter().zip(&chosen).any(|(p, c)| trained(p) && *c == group);
    let default = groups.default.as_ref().filter(|_| takes(None));
    for (_, g) in groups.groups.iter().enumerate().filter(|(i, _)| !parts[*i].is_empty() && !takes(Some(*i))) {
        let what = match g.optimizer {
            Some(_) => format!("the optimizer of group {} updates no parameter", g.number),
            None => "these frozen parts freeze no parameter".to_string(),
        };
        diags.push(
            Diagnostic::error(Code::BadCall, what)
                .with_label(g.span, "more specific parts take all of this group's parameters")
                .with_help("remove this group, or the parts that override it"),
        );
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    let mut optimizers = Vec::new();
    let mut opt_of_group = Vec::new();
    if let Some(o) = default {
        optimizers.push(planned(prog, o.clone(), super::gradients::LR_LOG.into())?);
    }
    for g in &groups.groups {
        opt_of_group.push(match &g.optimizer {
            Some(o) => {
                optimizers.push(planned(prog, o.clone(), format!("lr/pg{}", g.number))?);
                Some(optimizers.len() - 1)
            }
            None => None,
        });
    }
    let mut of_param = Vec::with_capacity(params.len());
    for (p, c) in params.iter_mut().zip(&chosen) {
        let opt = match c {
            _ if !p.trainable() => None,
            Some(i) => opt_of_group[*i],
            None => Some(0),
        };
        if p.trainable() && opt.is_none() {
            p.kind = super::value::ParamKind::Frozen;
        }
        of_param.push(opt);
    }
    Ok((Plan { optimizers, of_param }, describe(default, &groups, &parts)))
}

/// Whether `m` is `root` or one of its submodules, at any depth.
fn owns(root: &Rc<ModelInst>, m: &Rc<ModelInst>) -> bool {
    Rc::ptr_eq(root, m) || root.subs.values().any(|s| owns(s, m))
}

/// Every list field of the model, at any depth: its path and length.
fn list_fields(m: &ModelInst) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = m
        .lists
        .iter()
        .map(|(field, &n)| (if m.path.is_empty() { field.clone() } else { format!("{}.{field}", m.path) }, n))
        .collect();
    for s in m.subs.values() {
        out.extend(list_fields(s));
    }
    out
}

/// A group's parts as paths, without repeats, a list field's members all
/// named (`self.blocks` gives each) merged back into the list's path so
/// that one member named elsewhere is more specific, as it reads.
fn group_paths(parts: &[Part], lists: &[(String, usize)]) -> Vec<String> {
    let mut paths: Vec<String> = Vec::new();
    for p in parts {
        if !paths.contains(&p.path) {
            paths.push(p.path.clone());
        }
    }
    // Innermost lists first, so a list of lists merges all the way up.
    let mut lists = lists.to_vec();
    lists.sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
    for (list, n) in lists {
        let members: Vec<String> = (0..n).map(|i| format!("{list}.{i}")).collect();
        if n > 0 && members.iter().all(|m| paths.contains(m)) {
            let at = paths.iter().position(|p| *p == members[0]).expect("contained");
            paths.retain(|p| !members.contains(p));
            paths.insert(at.min(paths.len()), list);
        }
    }
    paths
}

/// An optimizer with its state count, checked against the optimizer
/// convention.
fn planned(prog: &Program, optimizer: Optimizer, lr_log: String) -> Result<Planned, Vec<Diagnostic>> {
    let update_decl = prog.fn_decl(optimizer.update.module, optimizer.update.item);
    let n_states = match update_decl.params.iter().position(|p| p.name.name == "step") {
        Some(k) if k >= 2 => k - 2,
        _ => {
            return Err(vec![Diagnostic::error(
                Code::BadSection,
                format!(
                    "optimizer update `{}` must take (p, g, states..., step, hyperparameters...)",
                    update_decl.name.name
                ),
            )
            .with_label(update_decl.name.span, "defined here")])
        }
    };
    Ok(Planned { optimizer, n_states, lr_log })
}
