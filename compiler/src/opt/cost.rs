//! The extraction cost: an e-node's FLOPs plus the bytes it reads and writes,
//! from the types in the e-graph's analysis. Used with egg's greedy
//! `Extractor`, which sums costs over the term tree (shared subterms count
//! once per use, which only over-counts what is already shared).
//!
//! Every non-leaf node costs at least 1, so a node always costs more than
//! each child: the extractor's choice is acyclic.

use super::egraph::{node_type, ty_of, IrEGraph, Node};
use egg::{CostFunction, Id};

/// FLOPs per element of a transcendental function, relative to an add.
const TRANSCENDENTAL_FLOPS: f64 = 8.0;

pub struct FlopsAndBytes<'a> {
    pub egraph: &'a IrEGraph,
}

impl FlopsAndBytes<'_> {
    /// The node's own cost, without its children.
    pub fn node_cost(&self, node: &Node) -> f64 {
        let eg = self.egraph;
        let Some(ty) = node_type(eg, node) else {
            return 0.0; // attribute leaves and the outputs root do no work
        };
        let n = ty.shape.num_elements() as f64;
        let out_bytes = n * ty.dtype.size_bytes() as f64;
        let in_bytes = |id: &Id| {
            let t = ty_of(eg, *id);
            (t.shape.num_elements() * t.dtype.size_bytes()) as f64
        };
        let own = match node {
            Node::Param(_) => return 0.0, // already in memory
            Node::Const(_) => 1.0,
            Node::Iota(_) => n + out_bytes,
            Node::Neg([x]) | Node::Abs([x]) | Node::Sign([x]) => n + in_bytes(x) + out_bytes,
            Node::Exp([x]) | Node::Log([x]) | Node::Tanh([x]) | Node::Sqrt([x]) => {
                TRANSCENDENTAL_FLOPS * n + in_bytes(x) + out_bytes
            }
            Node::Log1p([x])
            | Node::Expm1([x])
            | Node::Logistic([x])
            | Node::Sin([x])
            | Node::Cos([x])
            | Node::Rsqrt([x])
            | Node::Erf([x]) => TRANSCENDENTAL_FLOPS * n + in_bytes(x) + out_bytes,
            // The identity: the CPU backend aliases it, no data moves.
            Node::StopGradient(_) => 1.0,
            Node::ArgMax([_, x]) => ty_of(eg, *x).shape.num_elements() as f64 + in_bytes(x) + out_bytes,
            // Data movement: reads what it keeps, writes the result.
            Node::Slice(_) => 2.0 * out_bytes,
            Node::Pad([_, _, _, x]) => in_bytes(x) + out_bytes,
            Node::Concat(children) => children[1..].iter().map(in_bytes).sum::<f64>() + out_bytes,
            Node::Pow([a, b]) => TRANSCENDENTAL_FLOPS * n + in_bytes(a) + in_bytes(b) + out_bytes,
            Node::Add([a, b])
            | Node::Sub([a, b])
            | Node::Mul([a, b])
            | Node::Div([a, b])
            | Node::Max([a, b])
            | Node::Min([a, b])
            | Node::Lt([a, b])
            | Node::Le([a, b])
            | Node::Gt([a, b])
            | Node::Ge([a, b])
            | Node::Eq([a, b])
            | Node::Ne([a, b]) => n + in_bytes(a) + in_bytes(b) + out_bytes,
            Node::Select([c, t, f]) => n + in_bytes(c) + in_bytes(t) + in_bytes(f) + out_bytes,
            Node::Convert([_, x]) => n + in_bytes(x) + out_bytes,
            // Data movement: reads the operand, writes the result.
            Node::Broadcast([_, _, x]) | Node::Transpose([_, x]) => in_bytes(x) + out_bytes,
            // Row-major reshape is a view: no data moves.
            Node::Reshape(_) => 1.0,
            Node::ReduceSum([_, x]) | Node::ReduceMax([_, x]) => {
                ty_of(eg, *x).shape.num_elements() as f64 + in_bytes(x) + out_bytes
            }
            Node::MatMul([a, b]) => {
                let k = ty_of(eg, *a).shape.0[1] as f64;
                2.0 * n * k + in_bytes(a) + in_bytes(b) + out_bytes
            }
            Node::ReduceMin([_, x]) => ty_of(eg, *x).shape.num_elements() as f64 + in_bytes(x) + out_bytes,
            // Data movement: reads the rows it picks and the indices, writes the result.
            Node::Gather([_, i]) => 2.0 * out_bytes + in_bytes(i),
            Node::ScatterAdd([_, u, i]) => n + in_bytes(u) + in_bytes(i) + out_bytes,
            Node::BatchMatMul([a, b]) => {
                let ta = ty_of(eg, *a);
                let k = ta.shape.0[ta.shape.rank() - 1] as f64;
                2.0 * n * k + in_bytes(a) + in_bytes(b) + out_bytes
            }
            // About 100 integer operations per threefry block.
            Node::RandomBits(_) | Node::RandomSplit(_) | Node::RandomUniform(_) => 100.0 * n + out_bytes,
            // Reversal moves data like a transpose.
            Node::Reverse([_, x]) => in_bytes(x) + out_bytes,
            // 2 FLOPs per multiply-add: (C / groups) * KH * KW per output element.
            Node::Conv2d([_, a, b]) => {
                let per_output: usize = ty_of(eg, *b).shape.0[1..].iter().product();
                2.0 * n * per_output as f64 + in_bytes(a) + in_bytes(b) + out_bytes
            }
            Node::ReduceWindowSum([w, x]) | Node::ReduceWindowMax([w, x]) => {
                let w = super::egraph::ints_of(eg, *w);
                let per_output: usize = w[..w.len() / 4].iter().product();
                n * per_output as f64 + in_bytes(x) + out_bytes
            }
            Node::Outputs(_) | Node::Attr(_) => 0.0,
        };
        // Everything but params and attributes costs at least 1 (see the module doc).
        own.max(1.0)
    }
}

impl CostFunction<Node> for FlopsAndBytes<'_> {
    type Cost = f64;

    fn cost<C: FnMut(Id) -> f64>(&mut self, enode: &Node, mut costs: C) -> f64 {
        let own = self.node_cost(enode);
        egg::Language::fold(enode, own, |sum, id| sum + costs(id))
    }
}
