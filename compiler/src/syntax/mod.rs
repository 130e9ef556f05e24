//! Source text -> tokens -> AST. Parsing never fails: it returns a tree plus
//! diagnostics (an item that does not parse is dropped and reported).

pub mod arg_rules;
pub mod ast;
pub mod depth;
pub mod generate;
pub mod generate_typed;
pub mod lexer;
pub mod parse;
pub mod print;
pub mod visit;

lalrpop_util::lalrpop_mod!(
    #[allow(clippy::all, unused_parens, dead_code)]
    grammar,
    "/syntax/grammar.rs"
);

pub use parse::parse;
pub use print::{format_source, print_module};

#[cfg(test)]
mod tests;

#[cfg(test)]
mod generate_typed_tests;
