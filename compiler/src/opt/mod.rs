//! The optimizer: an `ir::Func` in, an equivalent and cheaper `ir::Func` out
//! (same params, same output types and values), by equality saturation
//! with egg.
//!
//! ir::Func -to_recexpr-> e-graph -run rules-> saturated e-graph
//!   -extract (cost.rs, extract.rs)-> candidates -cheapest-> ir::Func
//!
//! `egraph.rs` converts between the IR and egg and holds the analysis (types,
//! constant folding); `rules.rs` is the rewrite table; `cost.rs` the cost
//! model; `extract.rs` the extraction. Common subexpressions are merged for
//! free by hash-consing, scalar constants are folded by the analysis, and
//! extraction starts from the outputs, so dead instructions are dropped
//! (params are always kept). The run has no time limit, only iteration and
//! node limits, so the result is a function of the input alone: two compiles
//! of one program give identical IR. Which rules are not exactly
//! value-preserving, and why: `rules::INEXACT`. A scan is opaque to the
//! rules; its body is optimized first, as a function of its own
//! (`optimize_bodies`).
//!
//! Never costlier: extraction chooses per e-class, but the program's cost is
//! that of a DAG, so the optimizer builds three candidates (amortized costs,
//! tree costs, and the amortized choice among the input's own e-nodes only)
//! and returns the fastest by `cost::func_cost` among those whose FLOPs and
//! bytes both stay within the input's. The third always qualifies: it is the
//! input with duplicates and dead code merged away (each chosen class is one
//! distinct input instruction, at the same types).

pub mod cost;
pub mod egraph;
pub mod extract;
pub mod rules;

#[cfg(test)]
mod scan_tests;
#[cfg(test)]
mod tests;

use crate::ir::{self, Func, Op};
use cost::Cost;
use egg::{Id, Language, Runner, StopReason};
use std::collections::HashSet;
use std::fmt::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct Options {
    /// At most this many rounds of applying every rule.
    pub iter_limit: usize,
    /// Stop growing the e-graph past `max(node_limit, nodes_per_inst * n)`
    /// e-nodes, `n` the input's instruction count.
    pub node_limit: usize,
    pub nodes_per_inst: usize,
    /// Rule names (see `rule_names`) not to run. Unknown names are ignored.
    pub disabled_rules: Vec<String>,
}

impl Default for Options {
    fn default() -> Options {
        Options { iter_limit: 10, node_limit: 20_000, nodes_per_inst: 8, disabled_rules: Vec::new() }
    }
}

/// What one `optimize` call did.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Instructions (params included) in the input function.
    pub nodes_before: usize,
    /// Instructions (params included) in the result.
    pub nodes_after: usize,
    /// `cost::func_cost` of the input and of the result (`after.within(before)` always).
    pub cost_before: Cost,
    pub cost_after: Cost,
    /// (rule name, times it changed the e-graph), for rules that fired, sorted by name.
    pub rules_fired: Vec<(String, usize)>,
    /// Why the runner stopped: `Saturated`, `IterationLimit(n)`, `NodeLimit(n)`.
    pub stop_reason: String,
    /// Rounds run, and the e-graph's final size.
    pub iterations: usize,
    pub egraph_nodes: usize,
    pub egraph_classes: usize,
    /// The extraction candidate returned: `amortized`, `tree` or `input-nodes`.
    pub extraction: &'static str,
    /// Every candidate's cost, in the order tried.
    pub candidates: Vec<(&'static str, Cost)>,
}

/// Wall-clock seconds of each phase (for benchmarks; not part of `Report`,
/// which is deterministic).
#[derive(Clone, Copy, Debug, Default)]
pub struct Timings {
    pub build: f64,
    pub run: f64,
    pub extract: f64,
}

/// Returns an equivalent, cheaper function (same params, same output types and values).
pub fn optimize(func: &Func, opts: &Options) -> (Func, Report) {
    let (res, report, _) = optimize_timed(func, opts);
    (res, report)
}

/// What the e-graph starts from: `func` with its custom_vjp rules inlined
/// (the optimized program is what runs: no transformation follows, so a
/// rule is dropped for its function), its loops tidied (a loop another
/// extends merged into it, results and carries nobody reads dropped:
/// `ir::scan_prune::tidy`), and its scan bodies optimized.
pub(crate) fn prepare(func: &Func, opts: &Options) -> Func {
    let inlined = crate::ir::custom_vjp::inline_rules(func);
    optimize_bodies(&crate::ir::scan_prune::tidy(&inlined), opts)
}

/// `func` with each scan body optimized as a function of its own (the
/// e-graph keeps scans opaque). Equal bodies (siblings) are optimized once,
/// so siblings stay siblings; a body's cost never grows (see `optimize`), so
/// neither does the scan's.
pub(crate) fn optimize_bodies(func: &Func, opts: &Options) -> Func {
    let mut done: Vec<(Arc<Func>, Arc<Func>)> = Vec::new();
    let mut res = func.clone();
    for inst in &mut res.insts {
        if let Op::Scan(s) = &mut inst.op {
            let known = done.iter().find(|(old, _)| Arc::ptr_eq(old, &s.body) || **old == *s.body);
            let new = match known {
                Some((_, new)) => new.clone(),
                None => {
                    let new = Arc::new(optimize(&s.body, opts).0);
                    done.push((s.body.clone(), new.clone()));
                    new
                }
            };
            s.body = new;
        }
    }
    res
}

/// The e-graph after the rules ran: the runner, and for each input
/// instruction and the outputs root, its (not necessarily canonical) class.
pub(crate) struct Saturated {
    pub runner: Runner<egraph::Node, egraph::IrAnalysis>,
    pub expr: egg::RecExpr<egraph::Node>,
    pub ids: Vec<Id>,
}

impl Saturated {
    pub fn root(&self) -> Id {
        self.runner.egraph.find(*self.ids.last().expect("the root"))
    }
}

/// Runs the enabled rules on `func`'s e-graph. With `explanations`, egg
/// records why each union happened (slower; for tests).
pub(crate) fn saturate(func: &Func, opts: &Options, explanations: bool) -> Saturated {
    let rules: Vec<rules::Rule> = rules::rules()
        .into_iter()
        .filter(|rule| !opts.disabled_rules.iter().any(|name| name == rule.name.as_str()))
        .collect();
    let expr = egraph::to_recexpr(func);
    let mut eg = egraph::IrEGraph::new(egraph::IrAnalysis);
    if explanations {
        eg = eg.with_explanations_enabled();
    }
    let mut ids: Vec<Id> = Vec::with_capacity(expr.len());
    for node in expr.iter() {
        let node = node.clone().map_children(|c| ids[usize::from(c)]);
        ids.push(eg.add(node));
    }
    let node_limit = opts.node_limit.max(opts.nodes_per_inst.saturating_mul(func.insts.len()));
    // No time limit: a wall-clock stop would make the output depend on machine load.
    let mut runner = Runner::<egraph::Node, egraph::IrAnalysis>::default()
        .with_iter_limit(opts.iter_limit)
        .with_node_limit(node_limit)
        .with_time_limit(Duration::MAX)
        .with_egraph(eg)
        .run(&rules);
    runner.egraph.rebuild();
    Saturated { runner, expr, ids }
}

/// `optimize`, with the time each phase took.
pub fn optimize_timed(func: &Func, opts: &Options) -> (Func, Report, Timings) {
    let input = func;
    let with_bodies = prepare(func, opts);
    let func = &with_bodies;
    let mut timings = Timings::default();
    let start = Instant::now();
    let sat = saturate(func, opts, false);
    let total = start.elapsed().as_secs_f64();
    timings.run = sat.runner.iterations.iter().map(|it| it.total_time).sum();
    // Everything outside egg's iterations is building the e-graph.
    timings.build = (total - timings.run).max(0.0);

    let start = Instant::now();
    let egraph = &sat.runner.egraph;
    let root = sat.root();
    let param_types = func.param_types();
    // The input's own e-nodes, canonical now that the e-graph is rebuilt.
    let input_nodes: HashSet<egraph::Node> =
        sat.expr.iter().map(|n| n.clone().map_children(|c| egraph.find(sat.ids[usize::from(c)]))).collect();
    let cost_before = cost::func_cost(input);
    let mut best: Option<(Func, Cost, &'static str)> = None;
    let mut candidates = Vec::new();
    for (name, only_input, amortize) in
        [("amortized", false, true), ("tree", false, false), ("input-nodes", true, true)]
    {
        let allowed = |n: &egraph::Node| !only_input || input_nodes.contains(n);
        let mut choice = extract::greedy(egraph, allowed, amortize);
        if !choice.contains_key(&root) {
            continue; // only possible with `only_input` if an input node were lost: never, but harmless
        }
        extract::refine(egraph, &mut choice, root, allowed);
        let candidate = egraph::to_func(egraph, root, &func.name, &param_types, |id| choice[&id].clone());
        let cost = cost::func_cost(&candidate);
        candidates.push((name, cost));
        let better = match &best {
            None => true,
            // Equal programs in another order sum their times in another order:
            // only a real difference (not rounding) displaces an earlier candidate.
            Some((_, best_cost, _)) => cost.seconds < best_cost.seconds * (1.0 - 1e-9),
        };
        if cost.within(&cost_before) && better {
            best = Some((candidate, cost, name));
        }
    }
    // The input-nodes candidate always qualifies; the input itself is the last resort.
    let (res, cost_after, extraction) = best.unwrap_or_else(|| (func.clone(), cost_before, "input"));
    timings.extract = start.elapsed().as_secs_f64();
    if cfg!(debug_assertions) {
        ir::verify::assert_valid(&res, "optimize");
        assert_eq!(res.output_types(), func.output_types(), "optimize changed the output types");
    }

    let mut fired: Vec<(String, usize)> = Vec::new();
    for iteration in &sat.runner.iterations {
        for (name, &count) in &iteration.applied {
            match fired.iter_mut().find(|(n, _)| n == name.as_str()) {
                Some((_, total)) => *total += count,
                None => fired.push((name.to_string(), count)),
            }
        }
    }
    fired.retain(|(_, count)| *count > 0);
    fired.sort();
    let stop_reason = match sat.runner.stop_reason.as_ref().expect("runner ran") {
        StopReason::Saturated => "Saturated".to_string(),
        StopReason::IterationLimit(n) => format!("IterationLimit({n})"),
        StopReason::NodeLimit(n) => format!("NodeLimit({n})"),
        StopReason::TimeLimit(t) => format!("TimeLimit({t})"),
        StopReason::Other(s) => format!("Other({s})"),
    };
    let report = Report {
        nodes_before: func.insts.len(),
        nodes_after: res.insts.len(),
        cost_before,
        cost_after,
        rules_fired: fired,
        stop_reason,
        iterations: sat.runner.iterations.len(),
        egraph_nodes: egraph.total_number_of_nodes(),
        egraph_classes: egraph.number_of_classes(),
        extraction,
        candidates,
    };
    (res, report, timings)
}

impl Report {
    /// The report as text, one `# `-prefixed line each (what `jlc dump
    /// --stage opt --explain` prints after the IR).
    pub fn explain(&self) -> String {
        let mut s = String::new();
        let (b, a) = (&self.cost_before, &self.cost_after);
        let _ = writeln!(s, "# opt: {} -> {} instructions (params included)", self.nodes_before, self.nodes_after);
        let _ = writeln!(s, "# opt: FLOPs {:.0} -> {:.0}", b.flops, a.flops);
        let _ = writeln!(s, "# opt: bytes {:.0} -> {:.0}", b.bytes, a.bytes);
        let _ = writeln!(s, "# opt: estimated time {:.2} us -> {:.2} us", b.seconds * 1e6, a.seconds * 1e6);
        let _ = writeln!(
            s,
            "# opt: {} after {} iterations; e-graph {} nodes in {} classes; extraction: {}",
            self.stop_reason, self.iterations, self.egraph_nodes, self.egraph_classes, self.extraction
        );
        for (name, c) in &self.candidates {
            let _ = writeln!(
                s,
                "# opt: candidate {name}: FLOPs {:.0}, bytes {:.0}, estimated time {:.2} us",
                c.flops,
                c.bytes,
                c.seconds * 1e6
            );
        }
        if self.rules_fired.is_empty() {
            let _ = writeln!(s, "# opt: no rule fired");
        }
        for (name, n) in &self.rules_fired {
            let _ = writeln!(s, "# rule {name}: {n}");
        }
        s
    }
}

/// The names of all rewrite rules, in table order (for `Options::disabled_rules`).
pub fn rule_names() -> Vec<&'static str> {
    rules::names()
}
