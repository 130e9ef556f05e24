//! Every example in docs/language.md is real: each ```jl block checks
//! without errors, and each ```jl,error block produces at least one error.
//! A failure lists every offending block with its line and diagnostics.

use std::path::Path;

/// A ```jl block: the line of its fence, whether it must fail (`jl,error`),
/// whether it is exempt from the canonical-form check (`jl,unformatted`,
/// for examples about layout), the file name it defines for later blocks
/// to import (`jl,file=layers.jl`), and its text.
struct DocBlock {
    line: usize,
    error: bool,
    unformatted: bool,
    file: Option<String>,
    text: String,
}

fn blocks(doc: &str) -> Vec<DocBlock> {
    let mut out = Vec::new();
    let mut current: Option<DocBlock> = None;
    for (i, line) in doc.lines().enumerate() {
        match &mut current {
            None => {
                let fence = line.trim_end();
                let file = fence.strip_prefix("```jl,file=").map(str::to_string);
                if matches!(fence, "```jl" | "```jl,error" | "```jl,unformatted") || file.is_some() {
                    current = Some(DocBlock {
                        line: i + 1,
                        error: fence.ends_with(",error"),
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
    assert!(blocks.iter().filter(|b| b.error).count() >= 10);
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
        if errors != *want_error {
            let rendered = compiler::diagnostic::render_all(&diags, &sources, false);
            let want = if *want_error { "an error" } else { "no errors" };
            failures.push(format!("block at line {line}: expected {want}\n{text}\n{rendered}"));
        }
        // The examples are written in canonical form.
        if !*want_error && !*unformatted {
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
