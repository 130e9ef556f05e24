//! Runs the lexer and the LALRPOP parser over one file and turns every lexer
//! and parser error into a `Diagnostic`. Never fails: a broken item is
//! skipped (error recovery) and the rest of the file still parses.

use super::ast::Module;
use super::grammar::ModuleParser;
use super::lexer::{lex, token_text, LexError, Token};
use crate::diagnostic::{Code, Diagnostic};
use crate::span::{FileId, Span};
use lalrpop_util::ParseError;

pub fn parse(file: FileId, text: &str, diags: &mut Vec<Diagnostic>) -> Module {
    let (tokens, lex_errors) = lex(text);
    // A parse error later on the line of an invalid token is a consequence
    // of it (the token was dropped): report the invalid token only.
    let shadows: Vec<std::ops::Range<usize>> =
        lex_errors.iter().map(|r| r.start..text[r.start..].find('\n').map_or(text.len(), |i| r.start + i)).collect();
    for range in lex_errors {
        let snippet: String = text.get(range.clone()).unwrap_or("").chars().take(20).collect();
        diags.push(
            Diagnostic::error(Code::InvalidToken, format!("invalid token `{}`", snippet.escape_debug()))
                .with_label(Span::new(file, range.start, range.end), "not valid here"),
        );
    }
    let end = text.len();
    let mut recovered = Vec::new();
    let opened = tokens.clone();
    let stream = tokens.into_iter().map(Ok::<_, LexError>);
    let result = ModuleParser::new().parse(file, &mut recovered, stream);
    let mut push = |d: Diagnostic| {
        let at = d.primary_span().map_or(0, |s| s.start as usize);
        if !shadows.iter().any(|r| r.contains(&at)) {
            diags.push(d);
        }
    };
    // An unexpected opening bracket makes its whole group garbage to the
    // parser: errors up to its matching closer are consequences (one
    // mistake, one report), so they are dropped; so are item-level cascades
    // (`is_cascade`). So is a group whose opener the recovery skipped (a
    // method header broken before its `{`: the body's lines would each be
    // reported as broken members).
    let mut garbage_until = 0;
    let mut last_error: Option<usize> = None;
    for err in recovered {
        let in_garbage =
            matches!(&err.error, ParseError::UnrecognizedToken { token: (l, _, _), .. } if *l < garbage_until);
        if let Some(open) = first_unclosed(&err.dropped_tokens) {
            garbage_until = garbage_until.max(matching_close(&opened, open).unwrap_or(end));
        }
        if in_garbage || is_cascade(&err.error, last_error, &opened, text) {
            continue;
        }
        if let ParseError::UnrecognizedToken {
            token: (l, Token::LParen | Token::LBracket | Token::LBrace, _), ..
        } = &err.error
        {
            garbage_until = garbage_until.max(matching_close(&opened, *l).unwrap_or(end));
        }
        last_error = error_location(&err.error).or(last_error);
        push(diagnostic(file, &err.error, end, &opened, text));
    }
    match result {
        Ok(mut module) => {
            super::depth::limit_depth(&mut module, diags);
            super::arg_rules::check(&module, diags);
            module
        }
        Err(err) => {
            push(diagnostic(file, &err, end, &opened, text));
            Module::default()
        }
    }
}

/// The report of one parse error: what was found and expected, then a help
/// for a spelling from another language (`x.1`, `and`), else the bracket
/// still open where its closer was expected.
fn diagnostic(
    file: FileId,
    err: &ParseError<usize, Token, LexError>,
    end: usize,
    tokens: &[(usize, Token, usize)],
    text: &str,
) -> Diagnostic {
    let d = to_diagnostic(file, err.clone(), end);
    match spelling_help(err, text) {
        Some(help) => d.with_help(help),
        None => with_unclosed(d, file, err, tokens),
    }
}

/// `x.1` (tuple-field syntax, as in Rust) and the word operators of Python
/// (`and`, `or`, `not`) are not in the language: say how to write them.
fn spelling_help(err: &ParseError<usize, Token, LexError>, text: &str) -> Option<&'static str> {
    let ParseError::UnrecognizedToken { token: (l, tok, _), .. } = err else { return None };
    // `not a` parses `not` as a name, so the error is at the word after it.
    let before = text.get(..*l).unwrap_or("").trim_end();
    let word_before = before.rsplit(|c: char| !(c.is_alphanumeric() || c == '_')).next().unwrap_or("");
    if word_before == "not" {
        return Some("the logical not is `!`: write `!a`");
    }
    // `1.` (a number as Python writes it) lexes as `1` then a field access.
    if let Some(number) = text.get(..*l).and_then(|b| b.strip_suffix('.')) {
        let word = number.rsplit(|c: char| !(c.is_alphanumeric() || c == '_')).next().unwrap_or("");
        let digits = !word.is_empty() && word.starts_with(|c: char| c.is_ascii_digit());
        if digits && !matches!(tok, Token::Ident(_) | Token::Int(_)) {
            return Some("a number needs digits after its point: write `1.0`, not `1.`");
        }
    }
    match tok {
        Token::Int(_) | Token::Float(_) if text.get(..*l).is_some_and(|before| before.ends_with('.')) => {
            Some("tuples and lists of submodules are indexed with brackets: write `x[1]`, not `x.1`")
        }
        Token::Ident(word) => match word.as_str() {
            "and" => Some("the logical and is `&&`: write `a && b`"),
            "or" => Some("the logical or is `||`: write `a || b`"),
            "not" => Some("the logical not is `!`: write `!a`"),
            _ => None,
        },
        _ => None,
    }
}

fn describe_expected(expected: &[String]) -> String {
    let names: Vec<String> = expected.iter().map(|e| pretty_terminal(e)).collect();
    match names.len() {
        0 => String::new(),
        1 => format!("expected {}", names[0]),
        n if n <= 6 => format!("expected one of {}", names.join(", ")),
        _ => format!("expected one of {}, ...", names[..6].join(", ")),
    }
}

/// LALRPOP names terminals by their quoted grammar spelling; show them as users write them.
fn pretty_terminal(t: &str) -> String {
    match t {
        "\"ident\"" => "a name".into(),
        "\"int\"" => "an integer".into(),
        "\"float\"" => "a number".into(),
        "\"str\"" => "a string".into(),
        "\";\"" => "end of statement".into(),
        other => format!("`{}`", other.trim_matches('"').replace("\\\"", "\"")),
    }
}

fn to_diagnostic(file: FileId, err: ParseError<usize, Token, LexError>, end: usize) -> Diagnostic {
    match err {
        ParseError::InvalidToken { location } => Diagnostic::error(Code::InvalidToken, "invalid token")
            .with_label(Span::new(file, location, location + 1), "not valid here"),
        ParseError::UnrecognizedEof { location, expected } => {
            let loc = location.min(end);
            Diagnostic::error(Code::Syntax, "unexpected end of file")
                .with_label(Span::new(file, loc, loc), describe_expected(&expected))
        }
        ParseError::UnrecognizedToken { token: (l, tok, r), expected } => {
            let what =
                if tok == Token::Semi && token_text(&tok) == ";" { "end of line".to_string() } else { tok.to_string() };
            Diagnostic::error(Code::Syntax, format!("unexpected {what}"))
                .with_label(Span::new(file, l, r), describe_expected(&expected))
        }
        ParseError::ExtraToken { token: (l, tok, r) } => Diagnostic::error(Code::Syntax, format!("unexpected {tok}"))
            .with_label(Span::new(file, l, r), "nothing more was expected here"),
        ParseError::User { error: LexError } => {
            Diagnostic::error(Code::InvalidToken, "invalid token").with_label(Span::new(file, 0, 0), "here")
        }
    }
}

fn error_location(err: &ParseError<usize, Token, LexError>) -> Option<usize> {
    match err {
        ParseError::UnrecognizedToken { token: (l, _, _), .. } | ParseError::ExtraToken { token: (l, _, _) } => {
            Some(*l)
        }
        ParseError::UnrecognizedEof { location, .. } | ParseError::InvalidToken { location } => Some(*location),
        ParseError::User { .. } => None,
    }
}

/// After an error inside an item (say a bad return type), the parser
/// resumes at the item level and the rest of that item's body (`for`,
/// `self.head(...)`, `}`) is reported token by token as "expected `fn`,
/// `model`, ...". Such an item-level error is a cascade of the previous one
/// unless a new item starts in between: an item keyword at the start of a
/// line. Those are dropped; the first error of each item is kept.
fn is_cascade(
    err: &ParseError<usize, Token, LexError>,
    last_error: Option<usize>,
    tokens: &[(usize, Token, usize)],
    text: &str,
) -> bool {
    let (ParseError::UnrecognizedToken { token: (at, _, _), expected }
    | ParseError::UnrecognizedEof { location: at, expected }) = err
    else {
        return false;
    };
    let item_level = ["\"fn\"", "\"model\"", "\"trainer\""].iter().all(|k| expected.iter().any(|e| e == k));
    let Some(prev) = last_error else { return false };
    let starts_line = |pos: usize| pos == 0 || text.as_bytes().get(pos - 1) == Some(&b'\n');
    let new_item = tokens.iter().any(|(l, t, _)| {
        (prev < *l && *l <= *at)
            && starts_line(*l)
            && matches!(t, Token::Fn | Token::Model | Token::Use | Token::Data | Token::Trainer | Token::Const)
    });
    item_level && !new_item
}

/// The start of the first opening bracket among `dropped` that is not
/// closed among them.
fn first_unclosed(dropped: &[(usize, Token, usize)]) -> Option<usize> {
    let mut open: Vec<usize> = Vec::new();
    for (l, t, _) in dropped {
        match t {
            Token::LParen | Token::LBracket | Token::LBrace => open.push(*l),
            Token::RParen | Token::RBracket | Token::RBrace => {
                open.pop();
            }
            _ => {}
        }
    }
    open.first().copied()
}

/// The end offset of the bracket that closes the one opened at `start`
/// (brackets of every kind nest together), or `None` when it is not closed.
fn matching_close(tokens: &[(usize, Token, usize)], start: usize) -> Option<usize> {
    closing_token(tokens, start).map(|(_, r)| r)
}

/// The token that closes the bracket opened at `start`, and its end offset
/// (brackets of every kind nest together).
fn closing_token(tokens: &[(usize, Token, usize)], start: usize) -> Option<(&Token, usize)> {
    let mut depth = 0usize;
    for (_, t, r) in tokens.iter().skip_while(|t| t.0 < start) {
        match t {
            Token::LParen | Token::LBracket | Token::LBrace => depth += 1,
            Token::RParen | Token::RBracket | Token::RBrace => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some((t, *r));
                }
            }
            _ => {}
        }
    }
    None
}

/// A missing closing bracket is reported where the parser noticed it, often
/// a line later; point at the bracket that is still open too, when the
/// parser would have accepted its closer there.
fn with_unclosed(
    d: Diagnostic,
    file: FileId,
    err: &ParseError<usize, Token, LexError>,
    tokens: &[(usize, Token, usize)],
) -> Diagnostic {
    let (location, expected) = match err {
        ParseError::UnrecognizedToken { token: (l, _, _), expected } => (*l, expected),
        ParseError::UnrecognizedEof { location, expected } => (*location, expected),
        _ => return d,
    };
    let mut open: Vec<&(usize, Token, usize)> = Vec::new();
    for t in tokens.iter().take_while(|t| t.0 < location) {
        match t.1 {
            Token::LParen | Token::LBracket | Token::LBrace => open.push(t),
            Token::RParen | Token::RBracket | Token::RBrace => {
                open.pop();
            }
            _ => {}
        }
    }
    let Some((l, tok, r)) = open.last() else { return d };
    let closer = match tok {
        Token::LParen => ")",
        Token::LBracket => "]",
        _ => "}",
    };
    if !expected.iter().any(|e| e.trim_matches('"') == closer) {
        return d;
    }
    // Closed later by its own kind (`(x, * x)`): the error is inside, not a
    // missing closer.
    if closing_token(tokens, *l).is_some_and(|(t, _)| token_text(t) == closer) {
        return d;
    }
    let opener = token_text(tok);
    d.with_label(Span::new(file, *l, *r), format!("this `{opener}` is not closed"))
        .with_help(format!("add the missing `{closer}`"))
}
