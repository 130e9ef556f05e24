//! The optimizer: an `ir::Func` in, an equivalent and cheaper `ir::Func` out
//! (same params, same output types and values), by equality saturation
//! with egg.
//!
//! ir::Func -to_recexpr-> e-graph -run rules-> saturated e-graph
//!   -extract (FLOPs + bytes)-> ir::Func
//!
//! `egraph.rs` converts between the IR and egg and holds the analysis (types,
//! constant folding); `rules.rs` is the rewrite table; `cost.rs` the cost.
//! Common subexpressions are merged for free by hash-consing, scalar
//! constants are folded by the analysis, and extraction starts from the
//! outputs, so dead instructions are dropped (params are always kept). The
//! run has no time limit, only iteration and node limits, so the result is a
//! function of the input alone: two compiles of one program give identical IR.
//! Which rules are not exactly value-preserving, and why: `rules::INEXACT`.

pub mod cost;
pub mod egraph;
pub mod rules;

#[cfg(test)]
mod tests;

use crate::ir::{self, Func};
use egg::{Extractor, Runner, StopReason};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Options {
    /// At most this many rounds of applying every rule.
    pub iter_limit: usize,
    /// Stop growing the e-graph past this many e-nodes.
    pub node_limit: usize,
    /// Rule names (see `rule_names`) not to run. Unknown names are ignored.
    pub disabled_rules: Vec<String>,
}

impl Default for Options {
    fn default() -> Options {
        Options { iter_limit: 10, node_limit: 20_000, disabled_rules: Vec::new() }
    }
}

/// What one `optimize` call did.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Instructions (params included) in the input function.
    pub nodes_before: usize,
    /// Instructions (params included) in the result.
    pub nodes_after: usize,
    /// (rule name, times it changed the e-graph), for rules that fired, sorted by name.
    pub rules_fired: Vec<(String, usize)>,
    /// Why the runner stopped: `Saturated`, `IterationLimit(n)`, `NodeLimit(n)`.
    pub stop_reason: String,
}

/// Returns an equivalent, cheaper function (same params, same output types and values).
pub fn optimize(func: &Func, opts: &Options) -> (Func, Report) {
    let rules: Vec<rules::Rule> = rules::rules()
        .into_iter()
        .filter(|rule| !opts.disabled_rules.iter().any(|name| name == rule.name.as_str()))
        .collect();
    let expr = egraph::to_recexpr(func);
    // No time limit: a wall-clock stop would make the output depend on machine load.
    let runner = Runner::<egraph::Node, egraph::IrAnalysis>::default()
        .with_iter_limit(opts.iter_limit)
        .with_node_limit(opts.node_limit)
        .with_time_limit(Duration::MAX)
        .with_expr(&expr)
        .run(&rules);
    let egraph = &runner.egraph;
    let root = egraph.find(runner.roots[0]);
    let extractor = Extractor::new(egraph, cost::FlopsAndBytes { egraph });
    let res = egraph::to_func(egraph, root, &func.name, &func.param_types(), |id| extractor.find_best_node(id).clone());
    if cfg!(debug_assertions) {
        ir::verify::assert_valid(&res, "optimize");
        assert_eq!(res.output_types(), func.output_types(), "optimize changed the output types");
    }

    let mut fired: Vec<(String, usize)> = Vec::new();
    for iteration in &runner.iterations {
        for (name, &count) in &iteration.applied {
            match fired.iter_mut().find(|(n, _)| n == name.as_str()) {
                Some((_, total)) => *total += count,
                None => fired.push((name.to_string(), count)),
            }
        }
    }
    fired.retain(|(_, count)| *count > 0);
    fired.sort();
    let stop_reason = match runner.stop_reason.as_ref().expect("runner ran") {
        StopReason::Saturated => "Saturated".to_string(),
        StopReason::IterationLimit(n) => format!("IterationLimit({n})"),
        StopReason::NodeLimit(n) => format!("NodeLimit({n})"),
        StopReason::TimeLimit(t) => format!("TimeLimit({t})"),
        StopReason::Other(s) => format!("Other({s})"),
    };
    let report =
        Report { nodes_before: func.insts.len(), nodes_after: res.insts.len(), rules_fired: fired, stop_reason };
    (res, report)
}

/// The names of all rewrite rules, in table order (for `Options::disabled_rules`).
pub fn rule_names() -> Vec<&'static str> {
    rules::names()
}
