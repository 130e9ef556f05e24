//! Names that code the parser could not read may have bound or declared.
//!
//! A statement or declaration with a syntax error is reported once and
//! skipped (`syntax/grammar.lalrpop`'s recovery). Whatever it would have
//! bound is then missing, and every later use of such a name would be
//! reported as unknown: one mistake, many reports. So a broken statement
//! counts as binding each name it mentions that is not otherwise known
//! (`let w, b) = ...` binds `w` and `b`, to poison: their uses stay
//! silent), and a declaration whose header the parser lost (`fn loss(x:
//! f32N])`) still declares its name in the module (`broken_declarations`).

use crate::span::{SourceMap, Span};
use crate::syntax::lexer::{lex, Token};

/// The identifiers in the source text of `span` (a broken statement), in
/// order, repeats removed.
pub fn names_in(sources: &SourceMap, span: Span) -> Vec<String> {
    let text = &sources.get(span.file).text;
    let (start, end) = (span.start as usize, (span.end as usize).min(text.len()));
    let Some(code) = text.get(start..end) else { return vec![] };
    let mut names: Vec<String> = Vec::new();
    for (_, token, _) in lex(code).0 {
        if let Token::Ident(name) = token {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

/// The names of the declarations (`fn`, `model`, `const` at the start of a
/// line, as the formatter writes them) in `text`, every name a `use` line
/// mentions (the module and what it imports) and every name in a `model`
/// header (its config parameters): the caller keeps those it did not parse.
pub fn declared_names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut add = |name: String| {
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("use ") {
            for (_, token, _) in lex(rest).0 {
                if let Token::Ident(name) = token {
                    add(name);
                }
            }
            continue;
        }
        if let Some(header) = line.strip_prefix("model ") {
            // The model and its config parameters (a name right after the
            // header's `(` or a `,` in it), which its methods read: a model
            // body broken before a method ends early (the parser resumes at
            // the next line it can read), and the methods after it are read
            // as free functions. Even for a model that parsed whole: which
            // one lost methods is not known here, and this only silences
            // names in a file that already has an error.
            let tokens = lex(header).0;
            let mut depth = 0usize;
            for (k, (_, token, _)) in tokens.iter().enumerate() {
                match token {
                    Token::LParen | Token::LBracket | Token::LBrace => depth += 1,
                    Token::RParen | Token::RBracket | Token::RBrace => depth = depth.saturating_sub(1),
                    Token::Ident(name) => {
                        let before = k.checked_sub(1).map(|j| &tokens[j].1);
                        let model_name = k == 0;
                        let param = depth == 1 && matches!(before, Some(Token::LParen | Token::Comma));
                        if model_name || param {
                            add(name.clone());
                        }
                    }
                    _ => {}
                }
            }
            continue;
        }
        let rest = ["fn ", "const "].iter().find_map(|kw| line.strip_prefix(kw));
        if let Some(rest) = rest {
            add(rest.trim_start().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect());
        }
    }
    names
}

/// The member names a model body in `text` declares (an indented `fn NAME(`
/// or `NAME:` line): in a file with syntax errors, reading one the parser
/// lost (a method whose header is broken) is poison, not an unknown field.
pub fn member_names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for line in text.lines().filter(|l| l.starts_with([' ', '\t'])) {
        let line = line.trim_start();
        let (rest, method) = match line.strip_prefix("fn ") {
            Some(rest) => (rest.trim_start(), true),
            None => (line, false),
        };
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        let after = rest[name.len()..].trim_start();
        let declares = if method { after.starts_with('(') } else { after.starts_with(':') };
        if !name.is_empty() && declares && !names.contains(&name) {
            names.push(name);
        }
    }
    names
}
