//! Printer and parser against each other: `parse(print(ast)) == ast` (spans
//! erased) on random programs from `generate.rs`, formatting is idempotent,
//! and formatting real files keeps their tree and their comments.

use super::ast::{ExprKind, IndexItem, Item, Module};
use super::generate::{erase_spans, module, Rng};
use super::parse;
use super::print::{format_source, print_expr, print_module};
use crate::span::FileId;

pub(super) fn parse_clean(text: &str) -> Result<Module, String> {
    let mut diags = Vec::new();
    let mut m = parse(FileId(0), text, &mut diags);
    if !diags.is_empty() {
        return Err(format!("{diags:#?}"));
    }
    erase_spans(&mut m);
    Ok(m)
}

/// Programs per `cargo test` run (raise with JLC_ROUNDTRIP_PROGRAMS).
fn budget() -> u64 {
    std::env::var("JLC_ROUNDTRIP_PROGRAMS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000)
}

#[test]
fn print_then_parse_gives_the_same_tree_on_random_programs() {
    let n = budget();
    let start = std::time::Instant::now();
    let mut bytes = 0;
    for seed in 0..n {
        let ast = module(seed, 1 + (seed % 4) as usize);
        let text = print_module(&ast);
        bytes += text.len();
        let back =
            parse_clean(&text).unwrap_or_else(|d| panic!("seed {seed}: printed program does not parse:\n{text}\n{d}"));
        assert!(
            back == ast,
            "seed {seed}: round trip changed the tree:\n{text}\n--- reprinted:\n{}",
            print_module(&back)
        );
        // Idempotence, print(parse(print(x))) == print(x), follows from the
        // equality above; `format_source` (the position-aware path `jlc fmt`
        // uses) must agree with it. It parses again, so every 8th program.
        if seed % 8 == 0 {
            let again = format_source(FileId(0), &text).unwrap_or_else(|d| panic!("seed {seed}: {d:#?}"));
            assert_eq!(again, text, "seed {seed}: formatting is not idempotent");
        }
    }
    eprintln!("round trip: {n} programs, {bytes} bytes in {:?}", start.elapsed());
}

fn real_files() -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> =
        crate::lower::program::STDLIB.iter().map(|(n, t)| (format!("stdlib/{n}.jl"), t.to_string())).collect();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for dir in ["examples"] {
        let mut paths: Vec<_> = std::fs::read_dir(root.join(dir)).unwrap().map(|e| e.unwrap().path()).collect();
        paths.sort();
        for p in paths.into_iter().filter(|p| p.extension().is_some_and(|e| e == "jl")) {
            files.push((p.display().to_string(), std::fs::read_to_string(&p).unwrap()));
        }
    }
    files
}

fn comment_texts(text: &str) -> Vec<String> {
    use logos::Logos;
    super::lexer::Token::lexer(text)
        .spanned()
        .filter(|(t, _)| *t == Ok(super::lexer::Token::Comment))
        .map(|(_, r)| text[r].trim_end().to_string())
        .collect()
}

#[test]
fn formatting_the_stdlib_and_examples_keeps_tree_and_comments() {
    for (name, text) in real_files() {
        let formatted = format_source(FileId(0), &text).unwrap_or_else(|d| panic!("{name}: {d:#?}"));
        assert_eq!(parse_clean(&formatted).unwrap(), parse_clean(&text).unwrap(), "{name}: tree changed:\n{formatted}");
        assert_eq!(comment_texts(&formatted), comment_texts(&text), "{name}: comments changed:\n{formatted}");
        let twice = format_source(FileId(0), &formatted).unwrap();
        assert_eq!(twice, formatted, "{name}: not idempotent");
        // Bare printing (no comments) is idempotent and tree-preserving too.
        let bare = print_module(&parse_clean(&text).unwrap());
        assert_eq!(print_module(&parse_clean(&bare).unwrap()), bare, "{name}");
    }
}

#[test]
fn the_stdlib_is_already_canonical() {
    // The stdlib is the style reference: `jlc fmt` leaves it unchanged.
    for (name, text) in crate::lower::program::STDLIB {
        let formatted = format_source(FileId(0), text).unwrap();
        assert_eq!(formatted, *text, "stdlib/{name}.jl is not in canonical form");
    }
}

#[test]
fn parentheses_only_where_precedence_needs_them() {
    let cases = [
        ("(a + b) * c", "(a + b) * c"),
        ("a + (b * c)", "a + b * c"),
        ("(a - b) - c", "a - b - c"),
        ("a - (b - c)", "a - (b - c)"),
        ("-x ^ 2", "-x ^ 2"),
        ("(-x) ^ 2", "(-x) ^ 2"),
        ("x ^ (y ^ z)", "x ^ y ^ z"),
        ("(x ^ y) ^ z", "(x ^ y) ^ z"),
        ("x ^ -y", "x ^ -y"),
        ("(a < b) == c", "(a < b) == c"),
        ("a || (b && c)", "a || b && c"),
        ("(a || b) && c", "(a || b) && c"),
        ("!(a && b)", "!(a && b)"),
        ("(a + b).T", "(a + b).T"),
        ("(f)(x)", "f(x)"),
        ("(-f)(x)", "(-f)(x)"),
        ("((x,))", "(x,)"),
        ("((x))", "x"),
        ("x @ w + b", "x @ w + b"),
        ("f(b, a = 1)", "f(b, a = 1)"),
        ("\"a\\\"b\\\\c\\nd\"", "\"a\\\"b\\\\c\\nd\""),
        ("1_000 + 2.50 + 1e-8 + 1E3", "1000 + 2.5 + 1e-8 + 1000.0"),
    ];
    for (src, want) in cases {
        let text = format!("fn f() = {src}\n");
        let m = parse_clean(&text).unwrap_or_else(|d| panic!("{src}: {d}"));
        let super::ast::Item::Fn(f) = &m.items[0] else { panic!("{src}: not a fn") };
        assert_eq!(print_expr(&f.body), want, "{src}");
    }
}

#[test]
fn comments_and_blank_lines_survive_formatting() {
    let src = "# head\nuse nn\nuse optim   # trailing\n\n\n# about f\nfn f(x) {   # opening\n    let y = x   # why\n\n    # own line\n    y\n    # at the end\n}\nmodel M {\n  w: f32[2] # weight\n  fn g(self) {\n  }\n}\ntrainer {\n}\n# last\n";
    let want = "# head\nuse nn\nuse optim  # trailing\n\n# about f\nfn f(x) {  # opening\n    let y = x  # why\n\n    # own line\n    y\n    # at the end\n}\n\nmodel M {\n    w: f32[2]  # weight\n\n    fn g(self) {}\n}\n\ntrainer {}\n# last\n";
    let got = format_source(FileId(0), src).unwrap();
    assert_eq!(got, want);
    assert_eq!(format_source(FileId(0), &got).unwrap(), got);
}

#[test]
fn a_file_with_syntax_errors_is_not_formatted() {
    let d = format_source(FileId(0), "fn f( {\n").unwrap_err();
    assert!(d.iter().any(|d| d.is_error()));
}

#[test]
fn the_generator_covers_every_form() {
    // Guard against a generator that silently stopped producing some form.
    let mut seen = std::collections::BTreeSet::new();
    let mut rng = Rng(7);
    for seed in 0..2000 {
        let text = print_module(&module(seed + rng.next_u64() % 3, 4));
        for (needle, what) in [
            ("use ", "use"),
            ("model ", "model"),
            ("data = ", "data"),
            ("trainer ", "trainer"),
            ("for ", "for"),
            ("let (", "tuple pattern"),
            (" else ", "else"),
            ("if ", "if"),
            (" ^ ", "pow"),
            (" @ ", "matmul"),
            (" || ", "or"),
            (" <= ", "le"),
            ("!", "not"),
            ("[", "array or dims"),
            ("(", "paren"),
            (",)", "one-tuple"),
            ("\\\"", "escaped quote"),
            (" -> ", "return type"),
            ("e-8", "exponent float"),
            ("    model = ", "model setting"),
            ("const ", "const"),
            ("use \"", "use of a file"),
            ("...", "ellipsis index"),
            (":", "slice or type"),
            ("fn(", "lambda"),
            ("f32[...", "leading dims"),
            ("else if ", "else if"),
        ] {
            if text.contains(needle) {
                seen.insert(what);
            }
        }
    }
    assert_eq!(seen.len(), 27, "{seen:?}");
}

#[test]
fn an_unclosed_bracket_is_pointed_at() {
    let mut diags = Vec::new();
    parse(FileId(0), "fn f(x) {\n    let s = sum(x * (x + 1.0)\n    s\n}\n", &mut diags);
    let d = diags.first().expect("a syntax error");
    assert!(d.labels.iter().any(|(span, msg)| span.start == 25 && msg == "this `(` is not closed"), "{d:#?}");
}

#[test]
fn new_forms_parse_print_and_parse_back() {
    // Indexing, slices, lambdas, consts and file imports, spelled by hand:
    // the printed form is the canonical one and parses to the same tree.
    let text = "use \"lib/layers.jl\".{Block, act}

const HIDDEN = 2 * 32

fn f(x: f32[B, HIDDEN]) = x[0, :, 1:-1, ::2, ..., 3:, :5:2][-1]

fn g(x) = grad(fn(w) = sum(w * x))(x) + (fn(a, b: f32 = 1.0) -> f32 = a * b)(1.0)
";
    let mut diags = Vec::new();
    let m = parse(FileId(0), text, &mut diags);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(print_module(&m), text);
    match &m.items[2] {
        Item::Fn(f) => match &f.body.kind {
            ExprKind::Index { base, items } => {
                assert_eq!(items.len(), 1);
                let ExprKind::Index { items, .. } = &base.kind else { panic!("nested index: {base:?}") };
                assert_eq!(items.len(), 7);
                assert!(matches!(items[0], IndexItem::At(_)));
                assert!(matches!(items[4], IndexItem::Ellipsis(_)));
                assert!(
                    matches!(&items[3], IndexItem::Slice { start: None, end: None, step: Some(_) }),
                    "{:?}",
                    items[3]
                );
            }
            other => panic!("expected an index, got {other:?}"),
        },
        other => panic!("expected a fn, got {other:?}"),
    }
    // A lambda is the loosest form: as an operand it needs parentheses.
    let m = parse(FileId(0), "fn h() = (fn(x) = x) || y\n", &mut diags);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(print_module(&m), "fn h() = (fn(x) = x) || y\n");
}

/// A byte-order mark (Windows editors write one) is whitespace: the file
/// parses as it would without it.
#[test]
fn a_byte_order_mark_is_whitespace() {
    let text = "fn main() {\n    print(1)\n}\n";
    assert_eq!(parse_clean(&format!("\u{FEFF}{text}")).unwrap(), parse_clean(text).unwrap());
}
