//! The lexer: source text -> tokens with byte spans (logos).
//!
//! Statements end at a newline, as in Go: a newline becomes a `;` token when
//! the line's last token can end an expression (a name, a literal, `)`, `]`,
//! `}`), unless we are inside `( )` or `[ ]`, where lines continue freely.
//! Invalid characters become `LexError`s; lexing never stops early.
//!
//! A declaration cannot be inside `( )` or `[ ]`: a line that starts with
//! `model`, `use`, `data`, `trainer` or `const`, or with `fn name` after
//! any indentation (a method; a lambda is `fn(`), closes the brackets left
//! open above it, for the purpose of line ends (the parser still reports
//! them, at that line end), so one missing `)` does not swallow the
//! declarations below it and their own mistakes are still reported.

use logos::Logos;
use std::fmt;

#[derive(Clone, Debug, PartialEq, Default)]
pub struct LexError;

#[derive(Logos, Clone, Debug, PartialEq)]
#[logos(skip r"[ \t\r\f\u{FEFF}]+", error = LexError)]
pub enum Token {
    #[token("fn")]
    Fn,
    #[token("let")]
    Let,
    #[token("model")]
    Model,
    #[token("use")]
    Use,
    #[token("data")]
    Data,
    #[token("trainer")]
    Trainer,
    #[token("for")]
    For,
    #[token("in")]
    In,
    #[token("if")]
    If,
    #[token("else")]
    Else,
    #[token("true")]
    True,
    #[token("false")]
    False,
    #[token("const")]
    Const,

    #[regex(r"[A-Za-z_][A-Za-z0-9_]*", |lex| lex.slice().to_string())]
    Ident(String),
    #[regex(r"[0-9][0-9_]*", |lex| lex.slice().replace('_', "").parse::<i64>().ok())]
    Int(i64),
    #[regex(r"[0-9][0-9_]*\.[0-9][0-9_]*([eE][+-]?[0-9]+)?", |lex| lex.slice().replace('_', "").parse::<f64>().ok())]
    #[regex(r"[0-9][0-9_]*[eE][+-]?[0-9]+", |lex| lex.slice().replace('_', "").parse::<f64>().ok())]
    Float(f64),
    #[regex(r#""([^"\\\n]|\\.)*""#, |lex| unescape(lex.slice()))]
    Str(String),

    #[token("(")]
    LParen,
    #[token(")")]
    RParen,
    #[token("[")]
    LBracket,
    #[token("]")]
    RBracket,
    #[token("{")]
    LBrace,
    #[token("}")]
    RBrace,
    #[token(",")]
    Comma,
    #[token(".")]
    Dot,
    #[token("..")]
    DotDot,
    /// `...` in an index: all the axes not indexed explicitly.
    #[token("...")]
    Ellipsis,
    #[token(":")]
    Colon,
    #[token(";")]
    Semi,
    #[token("->")]
    Arrow,
    #[token("=")]
    Assign,
    #[token("+")]
    Plus,
    #[token("-")]
    Minus,
    #[token("*")]
    Star,
    #[token("/")]
    Slash,
    #[token("@")]
    At,
    #[token("^")]
    Caret,
    #[token("==")]
    EqEq,
    #[token("!=")]
    NotEq,
    #[token("<")]
    Lt,
    #[token("<=")]
    Le,
    #[token(">")]
    Gt,
    #[token(">=")]
    Ge,
    #[token("&&")]
    AndAnd,
    #[token("||")]
    OrOr,
    #[token("!")]
    Bang,
    #[token("\n")]
    Newline,
    /// `# ...` to the end of the line; dropped by `lex`.
    #[regex(r"#[^\n]*", allow_greedy = true)]
    Comment,
}

fn unescape(quoted: &str) -> String {
    let inner = &quoted[1..quoted.len() - 1];
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Ident(s) => write!(f, "name `{s}`"),
            Token::Int(i) => write!(f, "integer `{i}`"),
            Token::Float(x) => write!(f, "number `{x}`"),
            Token::Str(s) => write!(f, "string {s:?}"),
            Token::Newline => write!(f, "end of line"),
            Token::Comment => write!(f, "comment"),
            other => write!(f, "`{}`", token_text(other)),
        }
    }
}

/// The fixed spelling of a punctuation or keyword token.
pub fn token_text(t: &Token) -> &'static str {
    match t {
        Token::Fn => "fn",
        Token::Let => "let",
        Token::Model => "model",
        Token::Use => "use",
        Token::Data => "data",
        Token::Trainer => "trainer",
        Token::For => "for",
        Token::In => "in",
        Token::If => "if",
        Token::Else => "else",
        Token::True => "true",
        Token::False => "false",
        Token::Const => "const",
        Token::LParen => "(",
        Token::RParen => ")",
        Token::LBracket => "[",
        Token::RBracket => "]",
        Token::LBrace => "{",
        Token::RBrace => "}",
        Token::Comma => ",",
        Token::Dot => ".",
        Token::DotDot => "..",
        Token::Ellipsis => "...",
        Token::Colon => ":",
        Token::Semi => ";",
        Token::Arrow => "->",
        Token::Assign => "=",
        Token::Plus => "+",
        Token::Minus => "-",
        Token::Star => "*",
        Token::Slash => "/",
        Token::At => "@",
        Token::Caret => "^",
        Token::EqEq => "==",
        Token::NotEq => "!=",
        Token::Lt => "<",
        Token::Le => "<=",
        Token::Gt => ">",
        Token::Ge => ">=",
        Token::AndAnd => "&&",
        Token::OrOr => "||",
        Token::Bang => "!",
        Token::Ident(_) | Token::Int(_) | Token::Float(_) | Token::Str(_) | Token::Newline | Token::Comment => "",
    }
}

/// A token with its byte span.
pub type Spanned = (usize, Token, usize);

/// Lexes `text`; returns the tokens (newlines already turned into `;` or
/// dropped) and the byte ranges of invalid input.
pub fn lex(text: &str) -> (Vec<Spanned>, Vec<std::ops::Range<usize>>) {
    let mut tokens = Vec::new();
    let mut errors = Vec::new();
    // Depth of ( and [ nesting: newlines inside them never end a statement.
    let mut depth: Vec<Token> = Vec::new();
    for (res, span) in Token::lexer(text).spanned() {
        let token = match res {
            Ok(t) => t,
            Err(_) => {
                errors.push(span);
                continue;
            }
        };
        if token == Token::Comment {
            continue;
        }
        // Only declaration keywords look at their line (linear time).
        let line_start = || text[..span.start].rfind('\n').map_or(0, |i| i + 1);
        let declares = match token {
            // A method or function (`fn name(`; a lambda is `fn(`).
            Token::Fn => {
                let indent_only = text[line_start()..span.start].chars().all(|c| c == ' ' || c == '\t');
                let after = text[span.end..].trim_start_matches([' ', '\t']);
                indent_only && after.starts_with(|c: char| c.is_alphabetic() || c == '_')
            }
            Token::Model | Token::Use | Token::Data | Token::Trainer | Token::Const => line_start() == span.start,
            _ => false,
        };
        if declares {
            if let Some(open) = depth.iter().position(|t| matches!(t, Token::LParen | Token::LBracket)) {
                depth.truncate(open);
                // The line end after the last token: where the bracket
                // should have been closed.
                let at = tokens.last().map_or(span.start, |t: &Spanned| t.2);
                tokens.push((at, Token::Semi, at));
            }
        }
        match &token {
            Token::LParen | Token::LBracket | Token::LBrace => depth.push(token.clone()),
            // A closer closes its own kind of bracket, and any left open
            // inside it (`f(x[0)` closes the `(`): a wrong closer leaves
            // the outer brackets as they were, so the lines after a typo
            // still end where they should. A closer with no opener of its
            // kind closes nothing.
            Token::RParen | Token::RBracket | Token::RBrace => {
                let opener = match token {
                    Token::RParen => Token::LParen,
                    Token::RBracket => Token::LBracket,
                    _ => Token::LBrace,
                };
                if let Some(at) = depth.iter().rposition(|t| *t == opener) {
                    depth.truncate(at);
                }
            }
            _ => {}
        }
        if token == Token::Newline {
            let inside_parens = matches!(depth.last(), Some(Token::LParen | Token::LBracket));
            let ends_expr = matches!(
                tokens.last(),
                Some((
                    _,
                    Token::Ident(_)
                        | Token::Int(_)
                        | Token::Float(_)
                        | Token::Str(_)
                        | Token::True
                        | Token::False
                        | Token::RParen
                        | Token::RBracket
                        | Token::RBrace,
                    _
                ))
            );
            if ends_expr && !inside_parens {
                tokens.push((span.start, Token::Semi, span.end));
            }
            continue;
        }
        tokens.push((span.start, token, span.end));
    }
    (tokens, errors)
}
