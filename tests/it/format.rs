//! `jlc fmt`: prints canonical source that parses to the same tree and
//! keeps comments; `--write` rewrites the file; a file with syntax errors is
//! refused with exit 1 and its diagnostics.

use compiler::span::FileId;
use std::path::Path;
use std::process::Command;

fn jlc(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_jlc")).args(args).output().unwrap()
}

fn tree(text: &str) -> compiler::syntax::ast::Module {
    let mut diags = Vec::new();
    let mut m = compiler::syntax::parse(FileId(0), text, &mut diags);
    assert!(diags.is_empty(), "{diags:#?}");
    compiler::syntax::generate::erase_spans(&mut m);
    m
}

#[test]
fn fmt_prints_the_examples_with_the_same_tree() {
    for ex in ["examples/digits_mlp.jl", "examples/linreg.jl"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(ex);
        let out = jlc(&["fmt", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{ex}: {}", String::from_utf8_lossy(&out.stderr));
        let formatted = String::from_utf8(out.stdout).unwrap();
        let original = std::fs::read_to_string(&path).unwrap();
        assert_eq!(tree(&formatted), tree(&original), "{ex}");
        // The examples are kept in canonical form.
        assert_eq!(formatted, original, "{ex} is not in canonical form (run `jlc fmt --write {ex}`)");
    }
}

#[test]
fn fmt_write_rewrites_the_file() {
    let dir = std::env::temp_dir().join(format!("jlc-fmt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("messy.jl");
    std::fs::write(&file, "fn  f(x)=x*(2+y)   # doubled\nfn g(a) {\nlet b=(a)\n\n\n  b}\n").unwrap();
    let out = jlc(&["fmt", "--write", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty());
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text, "fn f(x) = x * (2 + y)  # doubled\n\nfn g(a) {\n    let b = a\n\n    b\n}\n");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn fmt_refuses_a_file_with_syntax_errors() {
    let dir = std::env::temp_dir().join(format!("jlc-fmt-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.jl");
    let src = "fn f(x) {\n    let y = (x +\n}\n";
    std::fs::write(&file, src).unwrap();
    let out = jlc(&["fmt", "--write", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("E0002") && stderr.contains("not formatted"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), src, "the file must be left alone");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A call whose source ends its arguments with a comma, or has comments
/// between them, stays one argument per line (the comments where they
/// were); any other call is printed on one line. Formatting is idempotent.
#[test]
fn a_trailing_comma_or_comments_keep_a_call_one_argument_per_line() {
    let messy = "fn f() = g(1.0,   # one\n  # before two\n  2.0,\n\n  k = 3.0,  # three\n)\nfn h() = g(1.0,\n    2.0)\nfn i() = g(1.0,  # one\n    2.0)\n";
    let want = "fn f() = g(\n    1.0,  # one\n    # before two\n    2.0,\n\n    k = 3.0,  # three\n)\n\nfn h() = g(1.0, 2.0)\n\nfn i() = g(\n    1.0,  # one\n    2.0,\n)\n";
    let formatted = compiler::syntax::print::format_source(FileId(0), messy).unwrap();
    assert_eq!(formatted, want);
    assert_eq!(tree(&formatted), tree(messy));
    assert_eq!(compiler::syntax::print::format_source(FileId(0), &formatted).unwrap(), formatted, "not idempotent");
    // Parentheses around the call, and a call with nothing but a comment.
    let messy = "fn a() = (g(1.0,))\nfn b() = h(  # nothing yet\n)\nfn c() = (g(1.0, 2.0))\n";
    let want = "fn a() = g(\n    1.0,\n)\n\nfn b() = h(  # nothing yet\n)\n\nfn c() = g(1.0, 2.0)\n";
    let formatted = compiler::syntax::print::format_source(FileId(0), messy).unwrap();
    assert_eq!(formatted, want);
    assert_eq!(compiler::syntax::print::format_source(FileId(0), &formatted).unwrap(), formatted, "not idempotent");
}
