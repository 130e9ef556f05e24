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
//! `multi_transform` with `set_to_zero`. A part is a submodule (its path),
//! a list field (each member), or a string: a parameter's path or a path
//! prefix. A parameter takes the group of the most specific part that
//! contains it (the longest path), else the default. Frozen parameters get
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
use super::value::{Optimizer, ParamSpec, Val};
use crate::diagnostic::{Code, Diagnostic};
use crate::span::Span;

/// `param_groups(...)` as written.
#[derive(Clone, Debug)]
pub struct ParamGroups {
    pub default: Option<Optimizer>,
    pub groups: Vec<Group>,
}

#[derive(Clone, Debug)]
pub struct Group {
    /// Parameter paths or path prefixes ("" is the whole model).
    pub parts: Vec<String>,
    /// `None`: frozen.
    pub optimizer: Option<Optimizer>,
    /// 1-based among the groups with an optimizer (`lr/pgK`); 0 when frozen.
    pub number: usize,
    pub span: Span,
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
/// member), strings (paths or prefixes), and tuples of these.
fn parts(el: &mut Elaborator, v: &Val, span: Span) -> Option<Vec<String>> {
    match v {
        Val::Model(m) => Some(vec![m.path.clone()]),
        Val::Str(s) => Some(vec![s.clone()]),
        Val::Tuple(items) if !items.is_empty() => {
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

    /// For the run's summary: `adam` alone, or the groups.
    pub fn describe(&self, groups: Option<&ParamGroups>) -> String {
        let Some(groups) = groups else { return self.optimizers[0].optimizer.name.clone() };
        let shown = |parts: &[String]| {
            parts.iter().map(|p| if p.is_empty() { "(all)" } else { p }).collect::<Vec<_>>().join(" ")
        };
        let mut items: Vec<String> = groups.default.iter().map(|o| format!("{} (default)", o.name)).collect();
        for g in &groups.groups {
            items.push(match &g.optimizer {
                Some(o) => format!("{} (pg{}: {})", o.name, g.number, shown(&g.parts)),
                None => format!("frozen ({})", shown(&g.parts)),
            });
        }
        items.join(", ")
    }
}

/// What `configure_optimizers` returned, applied to the model's parameters:
/// sets `trainable = false, frozen = true` on the frozen ones. `span` is
/// where `configure_optimizers` returned it.
pub(super) fn plan(
    prog: &Program,
    returned: Val,
    params: &mut [ParamSpec],
    model: &str,
    span: Span,
) -> Result<(Plan, Option<ParamGroups>), Vec<Diagnostic>> {
    let groups = match returned {
        Val::Optimizer(o) => {
            let planned = planned(prog, o, "lr".into())?;
            let of_param = params.iter().map(|p| p.trainable.then_some(0)).collect();
            return Ok((Plan { optimizers: vec![planned], of_param }, None));
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
    let contains = |part: &str, path: &str| {
        part.is_empty() || path == part || path.strip_prefix(part).is_some_and(|rest| rest.starts_with('.'))
    };
    let mut diags = Vec::new();
    // A part named twice would leave the choice to the order written.
    let mut seen: Vec<(&str, Span)> = Vec::new();
    for g in &groups.groups {
        for part in &g.parts {
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
    for g in &groups.groups {
        for part in &g.parts {
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
            } else if matched.iter().all(|p| !p.trainable) {
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
    let mut optimizers = Vec::new();
    let default = match &groups.default {
        Some(o) => {
            optimizers.push(planned(prog, o.clone(), "lr".into())?);
            Some(0)
        }
        None => None,
    };
    let mut group_opt = Vec::new();
    for g in &groups.groups {
        group_opt.push(match &g.optimizer {
            Some(o) => {
                optimizers.push(planned(prog, o.clone(), format!("lr/pg{}", g.number))?);
                Some(optimizers.len() - 1)
            }
            None => None,
        });
    }
    let mut of_param = Vec::with_capacity(params.len());
    let mut orphans = Vec::new();
    for p in params.iter_mut() {
        if !p.trainable {
            of_param.push(None);
            continue;
        }
        // The most specific part that contains the parameter decides.
        let chosen = groups
            .groups
            .iter()
            .enumerate()
            .flat_map(|(i, g)| g.parts.iter().map(move |part| (i, part)))
            .filter(|(_, part)| contains(part, &p.path))
            .max_by_key(|(_, part)| if part.is_empty() { 0 } else { part.len() + 1 });
        let opt = match chosen {
            Some((i, _)) => group_opt[i],
            None if default.is_some() => default,
            None => {
                orphans.push(p.path.clone());
                continue;
            }
        };
        if opt.is_none() {
            p.trainable = false;
            p.frozen = true;
        }
        of_param.push(opt);
    }
    if !orphans.is_empty() {
        return Err(vec![Diagnostic::error(
            Code::BadCall,
            format!(
                "no parameter group holds {}",
                orphans.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", ")
            ),
        )
        .with_label(span, "these groups")
        .with_help(
            "give a default optimizer first, `param_groups(adam(lr = 1e-3), ...)`, or name these parameters in a group",
        )]);
    }
    if !params.iter().any(|p| p.trainable) {
        return Err(vec![Diagnostic::error(Code::BadSection, format!("every parameter of model `{model}` is frozen"))
            .with_label(span, "these groups")
            .with_help("training needs at least one parameter to update")]);
    }
    // An optimizer whose every parameter a more specific group took has
    // nothing to update (nor a learning rate worth logging).
    let used: Vec<bool> = (0..optimizers.len()).map(|k| of_param.contains(&Some(k))).collect();
    let renumbered: Vec<usize> =
        used.iter().scan(0, |next, &u| Some(std::mem::replace(next, *next + usize::from(u)))).collect();
    let optimizers = optimizers.into_iter().zip(&used).filter(|(_, &u)| u).map(|(o, _)| o).collect();
    let of_param = of_param.into_iter().map(|o| o.map(|k| renumbered[k])).collect();
    Ok((Plan { optimizers, of_param }, Some(groups)))
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
