//! The abstract syntax tree, with a span on every node.
//!
//! `syntax` knows nothing about types or IR: this is the program exactly as
//! written, and `print.rs` can print it back.

use crate::span::Span;

#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Module {
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Use(UseDecl),
    Fn(FnDecl),
    Model(ModelDecl),
    Data(DataDecl),
    Trainer(TrainerDecl),
    Const(ConstDecl),
}

/// `const HIDDEN = 64`: a compile-time value, visible in the whole module
/// (and to modules that import it), usable in shapes when it is an integer.
#[derive(Clone, Debug, PartialEq)]
pub struct ConstDecl {
    pub name: Ident,
    pub value: Expr,
    pub span: Span,
}

/// `use nn.{Linear, relu}`, `use losses.cross_entropy`, `use optim`, and
/// user files: `use "layers.jl"`, `use "lib/layers.jl".{Block, act}`.
#[derive(Clone, Debug, PartialEq)]
pub struct UseDecl {
    /// A stdlib module name, or for a file (`file == true`) the path as
    /// written between the quotes.
    pub module: Ident,
    /// `true` for `use "path.jl"`: a user file, resolved relative to the
    /// directory of the importing file.
    pub file: bool,
    /// `None` imports every public name of the module.
    pub names: Option<Vec<Ident>>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FnDecl {
    pub name: Ident,
    pub params: Vec<Param>,
    pub ret: Option<TypeExpr>,
    pub body: Expr,
    pub span: Span,
}

/// A function or model parameter: `x: f32[B, 784]`, `hidden: int = 256`, `self`.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub name: Ident,
    pub ty: Option<TypeExpr>,
    pub default: Option<Expr>,
}

/// `f32`, `i32[B]`, `f32[B, 784]`, `int`, `float`, `bool`.
#[derive(Clone, Debug, PartialEq)]
pub struct TypeExpr {
    pub name: Ident,
    /// `None` for a scalar type; `Some` for a tensor type, possibly `[]`.
    pub dims: Option<Vec<DimExpr>>,
    pub span: Span,
}

impl std::fmt::Display for TypeExpr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.name.name)?;
        if let Some(dims) = &self.dims {
            let parts: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
            write!(f, "[{}]", parts.join(", "))?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum DimExpr {
    Lit(i64, Span),
    Name(Ident),
    /// `B * T`: a product of literals and names (two or more factors, none
    /// of them a product).
    Product(Vec<DimExpr>, Span),
    /// `...` (only as the first dim): any number of leading dims, the same
    /// ones wherever `...` appears in one signature (`f32[..., D]`).
    Ellipsis(Span),
}

impl DimExpr {
    pub fn span(&self) -> Span {
        match self {
            DimExpr::Lit(_, s) | DimExpr::Product(_, s) | DimExpr::Ellipsis(s) => *s,
            DimExpr::Name(id) => id.span,
        }
    }
}

impl std::fmt::Display for DimExpr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DimExpr::Lit(n, _) => write!(f, "{n}"),
            DimExpr::Name(id) => write!(f, "{}", id.name),
            DimExpr::Ellipsis(_) => write!(f, "..."),
            DimExpr::Product(factors, _) => {
                let parts: Vec<String> = factors.iter().map(|d| d.to_string()).collect();
                write!(f, "{}", parts.join(" * "))
            }
        }
    }
}

/// `model Mlp(hidden: int = 256) { fields and methods }`.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelDecl {
    pub name: Ident,
    pub config: Vec<Param>,
    pub fields: Vec<Field>,
    pub methods: Vec<FnDecl>,
    /// Fields whose declaration has a syntax error (reported): reading one
    /// is poison, not an unknown field. Empty in a file that parses.
    pub broken_fields: Vec<Ident>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    pub name: Ident,
    pub kind: FieldKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum FieldKind {
    /// A trainable parameter: `weight: f32[fan_in, fan_out] = glorot_uniform()`.
    Param { ty: TypeExpr, init: Option<Expr> },
    /// A submodule: `l1: Linear(784, hidden)`, or with `count` a list of
    /// `count` independent instances: `blocks: [Block(d); n_layers]`.
    Submodule { model: Ident, args: Vec<Arg>, count: Option<Expr>, span: Span },
}

/// `data = digits("examples/data/digits.csv.gz") { batch_size = 64 }`.
#[derive(Clone, Debug, PartialEq)]
pub struct DataDecl {
    pub source: Expr,
    pub settings: Vec<Setting>,
    pub span: Span,
}

/// `trainer { max_epochs = 5 }`.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainerDecl {
    pub settings: Vec<Setting>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Setting {
    pub key: Ident,
    pub value: Expr,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    pub stmts: Vec<Stmt>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Stmt {
    /// `let pattern = value`
    Let {
        pattern: Pattern,
        /// `let h: f32[B, 256] = ...`: the value must have this type (its
        /// new dim names get bound, as in a signature).
        ty: Option<TypeExpr>,
        value: Expr,
        span: Span,
    },
    /// `name = value`: rebinding an existing name (not mutation).
    Assign {
        name: Ident,
        value: Expr,
        span: Span,
    },
    /// `for var in start..end { body }` over a compile-time range.
    For {
        var: Ident,
        start: Expr,
        end: Expr,
        body: Block,
        span: Span,
    },
    Expr(Expr),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Pattern {
    Name(Ident),
    Tuple(Vec<Pattern>, Span),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    MatMul,
    Pow,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::MatMul => "@",
            BinOp::Pow => "^",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::And => "&&",
            BinOp::Or => "||",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnOp {
    Neg,
    Not,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    /// `Some` for a keyword argument `name = value`.
    pub name: Option<Ident>,
    pub value: Expr,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    Name(String),
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Call {
        callee: Box<Expr>,
        args: Vec<Arg>,
    },
    Field(Box<Expr>, Ident),
    Tuple(Vec<Expr>),
    Array(Vec<Expr>),
    Block(Block),
    If {
        cond: Box<Expr>,
        then: Block,
        otherwise: Option<Block>,
    },
    /// `x[i]`, `x[:, 0:10]`, `x[..., -1]`, `x[::2]`.
    Index {
        base: Box<Expr>,
        items: Vec<IndexItem>,
    },
    /// An anonymous function: `fn(w) = loss(w, x)` or `fn(w) { ... }`.
    Lambda(Box<Lambda>),
    /// Stands in for an expression that failed to parse (error recovery).
    Error,
}

/// One entry of an index `x[...]`.
#[derive(Clone, Debug, PartialEq)]
pub enum IndexItem {
    /// `i`: picks one element and drops the axis.
    At(Expr),
    /// `start:end:step`, each part optional; keeps the axis.
    Slice { start: Option<Expr>, end: Option<Expr>, step: Option<Expr> },
    /// `...`: as many full slices `:` as the axes not indexed otherwise.
    Ellipsis(Span),
}

/// `fn(params) -> ret = body`, a function value without a name. It sees
/// the variables of the scope it is written in (captured by value).
#[derive(Clone, Debug, PartialEq)]
pub struct Lambda {
    pub params: Vec<Param>,
    pub ret: Option<TypeExpr>,
    pub body: Expr,
}

/// A member of a model body, as the parser sees it (split into fields and
/// methods in `ModelDecl`).
#[derive(Clone, Debug, PartialEq)]
pub enum Member {
    Field(Field),
    Method(FnDecl),
    /// A member with a syntax error (reported): its name when the parser
    /// got that far (`name: <error>`).
    Broken(Option<Ident>),
}
