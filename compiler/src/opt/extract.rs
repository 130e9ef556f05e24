//! Extraction: a saturated e-graph in, one e-node chosen per e-class out (a
//! `Choice`, which `egraph::to_func` turns into IR).
//!
//! egg's `Extractor` recomputes every class's cost in passes over all classes
//! until nothing changes; on a deep program (an unrolled loop) each pass
//! settles only a few more levels, so it took minutes at 30,000
//! instructions. Here classes are settled in order of cost instead (Knuth's
//! generalization of Dijkstra's algorithm to superior functions): a class's
//! cost is final when it is the cheapest unsettled one, and an e-node becomes
//! a candidate once all its children are settled. One pass, O(E log E), and
//! the choice is acyclic by construction (every chosen node's children were
//! settled before it), with any non-negative costs.
//!
//! A node's cost is its own time (`cost::node_cost`) plus its children's, each
//! child's cost divided by the number of e-nodes that use it when
//! `amortize` is set. Summing whole subtrees (egg's tree cost) counts a shared
//! value once per use, which grows exponentially along a gradient graph's
//! shared spine (to infinity: then every choice ties); dividing by the uses
//! spreads a shared value's cost over its users instead. Neither is the cost
//! of the extracted program (a DAG), so `refine` then improves a choice with
//! the DAG in view, and the optimizer measures candidates with
//! `cost::func_cost` and keeps the best (see `mod.rs`).

use super::cost::node_cost;
use super::egraph::{IrEGraph, Node};
use egg::{Id, Language};
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};

/// The chosen e-node of each settled (canonical) e-class.
pub type Choice = HashMap<Id, Node>;

/// A heap entry: (cost, class index, node index), ordered by cost, then indices.
#[derive(PartialEq)]
struct Entry(f64, usize, usize);

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Entry) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Entry) -> Ordering {
        self.0.total_cmp(&other.0).then(self.1.cmp(&other.1)).then(self.2.cmp(&other.2))
    }
}

/// Chooses a node for every class that has an allowed, acyclic derivation.
/// Deterministic: classes and nodes are visited in sorted order, ties are
/// broken by those orders.
pub fn greedy(egraph: &IrEGraph, allowed: impl Fn(&Node) -> bool, amortize: bool) -> Choice {
    let mut class_ids: Vec<Id> = egraph.classes().map(|c| c.id).collect();
    class_ids.sort();
    let index: HashMap<Id, usize> = class_ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    // Flattened nodes: (class index, node, distinct child class indices).
    let mut nodes: Vec<(usize, &Node, Vec<usize>)> = Vec::new();
    for (ci, &id) in class_ids.iter().enumerate() {
        let mut class_nodes: Vec<&Node> = egraph[id].nodes.iter().filter(|n| allowed(n)).collect();
        class_nodes.sort();
        for node in class_nodes {
            let mut children: Vec<usize> = node.children().iter().map(|c| index[&egraph.find(*c)]).collect();
            children.sort_unstable();
            children.dedup();
            nodes.push((ci, node, children));
        }
    }
    let mut parents: Vec<Vec<usize>> = vec![Vec::new(); class_ids.len()];
    for (ni, (_, _, children)) in nodes.iter().enumerate() {
        for &c in children {
            parents[c].push(ni);
        }
    }
    let own: Vec<f64> = nodes.iter().map(|(ci, node, _)| node_cost(egraph, class_ids[*ci], node).seconds).collect();
    let mut pending: Vec<usize> = nodes.iter().map(|(_, _, children)| children.len()).collect();
    let mut cost: Vec<Option<f64>> = vec![None; class_ids.len()];
    let mut chosen: Vec<Option<usize>> = vec![None; class_ids.len()];
    let mut heap: BinaryHeap<Reverse<Entry>> = BinaryHeap::new();
    for (ni, (ci, _, children)) in nodes.iter().enumerate() {
        if children.is_empty() {
            heap.push(Reverse(Entry(own[ni], *ci, ni)));
        }
    }
    while let Some(Reverse(Entry(c, ci, ni))) = heap.pop() {
        if cost[ci].is_some() {
            continue;
        }
        cost[ci] = Some(c);
        chosen[ci] = Some(ni);
        for &p in &parents[ci] {
            pending[p] -= 1;
            if pending[p] > 0 {
                continue;
            }
            let (pc, _, children) = &nodes[p];
            if cost[*pc].is_some() {
                continue;
            }
            let sum: f64 = children
                .iter()
                .map(|&k| {
                    let child = cost[k].expect("settled");
                    if amortize {
                        child / parents[k].len().max(1) as f64
                    } else {
                        child
                    }
                })
                .sum();
            heap.push(Reverse(Entry(own[p] + sum, *pc, p)));
        }
    }
    class_ids.iter().zip(&chosen).filter_map(|(&id, ni)| ni.map(|ni| (id, nodes[ni].1.clone()))).collect()
}

/// The classes reachable from `root` under `choice`, children before
/// parents (a depth-first post-order, children left to right).
fn post_order(egraph: &IrEGraph, choice: &Choice, root: Id) -> Vec<Id> {
    let mut order = Vec::new();
    let mut seen: HashMap<Id, bool> = HashMap::new(); // false: entered, true: done
    let mut stack = vec![(egraph.find(root), false)];
    while let Some((id, children_done)) = stack.pop() {
        if children_done {
            seen.insert(id, true);
            order.push(id);
            continue;
        }
        if seen.contains_key(&id) {
            continue;
        }
        seen.insert(id, false);
        stack.push((id, true));
        for &c in choice[&id].children().iter().rev() {
            let c = egraph.find(c);
            if !seen.contains_key(&c) {
                stack.push((c, false));
            }
        }
    }
    order
}

/// Local improvement with the whole DAG in view: a class switches to
/// another allowed node when that node's children are all computed earlier
/// in the current program and its own cost is lower. Such a switch adds no
/// other node and may make some dead, so the program's estimated time only
/// falls, and it stays acyclic (children keep coming first). This undoes,
/// e.g., `-(a b) -> (-a) b` when `a b` is needed anyway. Repeats until
/// nothing changes (at most `MAX_PASSES` times).
pub fn refine(egraph: &IrEGraph, choice: &mut Choice, root: Id, allowed: impl Fn(&Node) -> bool) {
    const MAX_PASSES: usize = 4;
    for _ in 0..MAX_PASSES {
        let order = post_order(egraph, choice, root);
        let pos: HashMap<Id, usize> = order.iter().enumerate().map(|(i, &id)| (id, i)).collect();
        let mut changed = false;
        for (i, &id) in order.iter().enumerate() {
            let current = node_cost(egraph, id, &choice[&id]).seconds;
            let mut best: Option<(f64, &Node)> = None;
            let mut nodes: Vec<&Node> = egraph[id].nodes.iter().filter(|n| allowed(n)).collect();
            nodes.sort();
            for node in nodes {
                let earlier = node.children().iter().all(|c| pos.get(&egraph.find(*c)).is_some_and(|&p| p < i));
                if !earlier {
                    continue;
                }
                let own = node_cost(egraph, id, node).seconds;
                if own < current && best.is_none_or(|(b, _)| own < b) {
                    best = Some((own, node));
                }
            }
            if let Some((_, node)) = best {
                choice.insert(id, node.clone());
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
}
