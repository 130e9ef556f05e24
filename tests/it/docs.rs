//! Every example in docs/language.md is real: each ```jl block checks
//! without errors, and each ```jl,error=CODE block reports an error with
//! that code first (`jl,error=E0202`: the code as rendered, `[E0202] Error`).
//! A ```text,jlc-run=FILE block is the exact stderr of `jlc run FILE` on the
//! ```jl,file=FILE block (with the reference's `d.npz`, see
//! `reference_data`). A failure lists every offending block with its line
//! and diagnostics.

use std::path::Path;

/// A ```jl block: the line of its fence, the code of the error it must
/// report first (`jl,error=E0301`; `None` for a block that must check),
/// whether it is exempt from the canonical-form check (`jl,unformatted`,
/// for examples about layout), the file name it defines for later blocks
/// to import (`jl,file=layers.jl`), and its text.
struct DocBlock {
    line: usize,
    error: Option<String>,
    unformatted: bool,
    file: Option<String>,
    text: String,
}

/// The codes a `jl,error=CODE` fence may name.
fn known_codes() -> Vec<&'static str> {
    compiler::diagnostic::Code::ALL.iter().map(|c| c.as_str()).collect()
}

fn blocks(doc: &str) -> Vec<DocBlock> {
    let mut out = Vec::new();
    let mut current: Option<DocBlock> = None;
    for (i, line) in doc.lines().enumerate() {
        match &mut current {
            None => {
                let fence = line.trim_end();
                let file = fence.strip_prefix("```jl,file=").map(str::to_string);
                let error = fence.strip_prefix("```jl,error=").map(str::to_string);
                assert!(
                    fence != "```jl,error",
                    "line {}: an error example names the code it must report, e.g. ```jl,error=E0202",
                    i + 1
                );
                if let Some(code) = &error {
                    assert!(
                        known_codes().contains(&code.as_str()),
                        "line {}: `{code}` is not a diagnostic code (one of {:?})",
                        i + 1,
                        known_codes()
                    );
                }
                if matches!(fence, "```jl" | "```jl,unformatted") || file.is_some() || error.is_some() {
                    current = Some(DocBlock {
                        line: i + 1,
                        error,
                        unformatted: fence.ends_with(",unformatted"),
                        file,
                        text: String::new(),
                    });
                } else {
                    assert!(!fence.starts_with("```jl"), "line {}: unknown fence `{fence}`", i + 1);
                }
            }
            Some(block) => {
                // A fence that opens another block: this one was never closed.
                assert!(
                    !(line.starts_with("```") && line.trim_end() != "```"),
                    "line {}: a block opens inside the block of line {} (a missing closing fence)",
                    i + 1,
                    block.line
                );
                if line.trim_end() == "```" {
                    out.push(current.take().expect("open block"));
                } else {
                    block.text.push_str(line);
                    block.text.push('\n');
                }
            }
        }
    }
    assert!(current.is_none(), "unterminated ```jl block");
    out
}

#[test]
fn every_language_reference_example_checks() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/language.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let blocks = blocks(&doc);
    assert!(blocks.len() >= 30, "expected the reference's examples, found {}", blocks.len());
    assert!(blocks.iter().filter(|b| b.error.is_some()).count() >= 10);
    let mut failures = Vec::new();
    // Files defined by `jl,file=NAME` blocks, importable by the blocks after them.
    let mut files: std::collections::HashMap<String, String> = Default::default();
    for DocBlock { line, error: want_error, unformatted, file, text } in &blocks {
        let name = format!("language.md:{line}");
        let known = files.clone();
        let mut read = move |p: &str| known.get(p).cloned().ok_or_else(|| "no such file in the docs".to_string());
        let (diags, sources) = jaxlightning::check_source_with(&name, text, &mut read);
        if let Some(f) = file {
            files.insert(f.clone(), text.clone());
        }
        let errors = diags.iter().any(|d| d.is_error());
        // The first error: the one the example is about (later ones may
        // follow from it, or from the example being a fragment).
        let first = diags.iter().find(|d| d.is_error()).map(|d| d.code.as_str());
        if first != want_error.as_deref() {
            let rendered = compiler::diagnostic::render_all(&diags, &sources, false);
            let want = match want_error {
                Some(code) => format!("the first error to be [{code}]"),
                None => "no errors".to_string(),
            };
            failures.push(format!("block at line {line}: expected {want}\n{text}\n{rendered}"));
        }
        // The examples are written in canonical form.
        if want_error.is_none() && !*unformatted {
            let formatted = compiler::syntax::format_source(compiler::span::FileId(0), text).unwrap_or_default();
            if !errors && &formatted != text {
                failures.push(format!("block at line {line} is not in `jlc fmt` form:\n{formatted}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The grammar appendix (§11) names every rule of the parser's grammar, so
/// a new rule cannot land without its line in the reference. (Helper
/// macros `Comma`, `Seq`, `Sp`, `Tier` and `Semis` are described in prose.)
#[test]
fn the_grammar_appendix_names_every_rule() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let grammar = std::fs::read_to_string(root.join("compiler/src/syntax/grammar.lalrpop")).unwrap();
    let doc = std::fs::read_to_string(root.join("docs/language.md")).unwrap();
    let appendix = doc.split("## 11. Grammar").nth(1).expect("docs/language.md has a grammar appendix");
    let defined: std::collections::BTreeSet<&str> = appendix
        .lines()
        .filter_map(|l| l.split_once(" = ").map(|(name, _)| name.trim()))
        .filter(|name| !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric()))
        .collect();
    let helpers = ["Comma", "Seq", "Sp", "Tier", "Semis"];
    let mut rules = Vec::new();
    for line in grammar.lines() {
        // A rule starts a line: `Name: Type = {`, `pub Name: ...`, `Name = ...` or `Name<T>: ...`.
        let line = line.strip_prefix("pub ").unwrap_or(line);
        let name: String = line.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
        let rest = &line[name.len()..];
        let is_rule = name.starts_with(|c: char| c.is_ascii_uppercase())
            && (rest.starts_with(':') || rest.starts_with(" =") || rest.starts_with('<'));
        if is_rule && !helpers.contains(&name.as_str()) {
            rules.push(name);
        }
    }
    assert!(rules.len() >= 30, "expected the grammar's rules, found {rules:?}");
    let missing: Vec<&String> = rules.iter().filter(|r| !defined.contains(r.as_str())).collect();
    assert!(missing.is_empty(), "rules of grammar.lalrpop missing from docs/language.md §11: {missing:?}");
}

/// The data the reference's `jlc run` examples read: `d.npz` with `x`, 64
/// MNIST-sized byte images `u8[64, 28, 28]`, and `y`, 64 byte labels (as
/// the prose around each example says).
fn reference_data(dir: &Path) {
    use trainer::data::{npy, npz, Values};
    let n = 64;
    let members = [
        ("x", npy::write(&[n, 28, 28], &Values::U8(vec![0; n * 28 * 28]))),
        ("y", npy::write(&[n], &Values::U8((0..n).map(|i| (i % 10) as u8).collect()))),
    ];
    std::fs::write(dir.join("d.npz"), npz::write(&members, false)).unwrap();
}

/// Each ```text,jlc-run=FILE block is exactly what `jlc run FILE` prints to
/// stderr for the ```jl,file=FILE block above it, run in a directory
/// holding only that file and `reference_data`'s `d.npz` (these examples
/// are errors found before training: exit code 1).
#[test]
fn run_outputs_shown_in_the_reference_are_real() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/language.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let files: std::collections::HashMap<String, String> =
        blocks(&doc).into_iter().filter_map(|b| Some((b.file?, b.text))).collect();
    // The ```text,jlc-run=FILE blocks: (line, file, text).
    let mut outputs: Vec<(usize, String, String)> = Vec::new();
    let mut current: Option<(usize, String, String)> = None;
    for (i, line) in doc.lines().enumerate() {
        match &mut current {
            None => {
                if let Some(file) = line.trim_end().strip_prefix("```text,jlc-run=") {
                    current = Some((i + 1, file.to_string(), String::new()));
                }
            }
            Some((_, _, text)) => {
                if line.trim_end() == "```" {
                    outputs.push(current.take().expect("open block"));
                } else {
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
    }
    assert!(current.is_none(), "unterminated ```text,jlc-run block");
    assert!(!outputs.is_empty(), "expected the reference's `jlc run` outputs");
    let mut failures = Vec::new();
    for (line, file, want) in &outputs {
        let Some(source) = files.get(file) else {
            failures.push(format!("block at line {line}: no ```jl,file={file} block in the reference"));
            continue;
        };
        let dir = crate::examples::tempdir(&format!("doc-run-{line}"));
        std::fs::write(dir.join(file), source).unwrap();
        reference_data(&dir);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_jlc"))
            .args(["run", file.as_str()])
            .current_dir(&dir)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(1) || stderr != *want {
            failures.push(format!(
                "block at line {line}: `jlc run {file}` exited with {:?} and printed\n{stderr}\ninstead of\n{want}",
                out.status.code()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
