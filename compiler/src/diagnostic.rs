//! `Diagnostic`: every error a user can cause, and its rendering with ariadne.
//!
//! This is the only file that calls ariadne. Spans are byte offsets (logos
//! spans), so ariadne is configured with `IndexType::Byte`.

use crate::span::{SourceMap, Span};
use ariadne::{Color, Config, IndexType, Label, Report, ReportKind};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// What kind of mistake; each has a stable code shown as `E0xxx`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// A character or literal the lexer does not accept.
    InvalidToken,
    /// The parser expected something else.
    Syntax,
    /// A name that is not defined.
    UnknownName,
    /// Operand shapes that do not fit together.
    ShapeMismatch,
    /// A value of the wrong kind or dtype.
    TypeMismatch,
    /// A call with the wrong arguments.
    BadCall,
    /// A `use` that names no stdlib module or item.
    UnknownModule,
    /// Something the language does not allow where it is written.
    NotAllowed,
    /// A model, data or trainer section that cannot be used for training.
    BadSection,
}

impl Code {
    /// Every code (the golden tests require a golden for each; the `match`
    /// in `as_str` lists them too, so a new code fails to compile there
    /// until it is added, and the golden test fails until it is listed here).
    pub const ALL: [Code; 9] = [
        Code::InvalidToken,
        Code::Syntax,
        Code::UnknownName,
        Code::UnknownModule,
        Code::ShapeMismatch,
        Code::TypeMismatch,
        Code::BadCall,
        Code::NotAllowed,
        Code::BadSection,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidToken => "E0001",
            Code::Syntax => "E0002",
            Code::UnknownName => "E0101",
            Code::UnknownModule => "E0102",
            Code::ShapeMismatch => "E0201",
            Code::TypeMismatch => "E0202",
            Code::BadCall => "E0203",
            Code::NotAllowed => "E0301",
            Code::BadSection => "E0401",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: Code,
    pub message: String,
    /// The first label is the primary location.
    pub labels: Vec<(Span, String)>,
    pub notes: Vec<String>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(code: Code, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            labels: vec![],
            notes: vec![],
            help: None,
        }
    }
    pub fn with_label(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.labels.push((span, message.into()));
        self
    }
    pub fn with_note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }
    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
    pub fn primary_span(&self) -> Option<Span> {
        self.labels.first().map(|(s, _)| *s)
    }

    /// Renders the report as ariadne text. `color: false` gives plain ASCII
    /// (golden tests compare this form).
    pub fn render(&self, sources: &SourceMap, color: bool) -> String {
        let kind = match self.severity {
            Severity::Error => ReportKind::Error,
            Severity::Warning => ReportKind::Warning,
        };
        let name_of = |s: Span| sources.get(s.file).name.clone();
        let primary = self.primary_span().unwrap_or_default();
        let config = Config::default().with_index_type(IndexType::Byte).with_color(color).with_char_set(if color {
            ariadne::CharSet::Unicode
        } else {
            ariadne::CharSet::Ascii
        });
        let mut report = Report::build(kind, (name_of(primary), clamp(primary, sources)))
            .with_config(config)
            .with_code(self.code.as_str())
            .with_message(&self.message);
        let colors = [Color::Red, Color::Blue, Color::Magenta, Color::Cyan];
        // Labels in source order within each file (files in the order of
        // their first label): ariadne 0.6 starts a new snippet whenever a
        // label's line comes before the previous label's, and headed it
        // with the report's location, so a declaration above the error
        // showed under the error's line number.
        let file_rank = |s: &Span| self.labels.iter().position(|(o, _)| o.file == s.file).unwrap_or(0);
        let mut by_position: Vec<usize> = (0..self.labels.len()).collect();
        by_position.sort_by_key(|&i| (file_rank(&self.labels[i].0), self.labels[i].0.start, i));
        for (i, (span, msg)) in self.labels.iter().enumerate() {
            let order = by_position.iter().position(|&k| k == i).unwrap_or(i) as i32;
            let mut label = Label::new((name_of(*span), clamp(*span, sources))).with_message(msg).with_order(order);
            if color {
                label = label.with_color(colors[i % colors.len()]);
            }
            report = report.with_label(label);
        }
        for note in &self.notes {
            report = report.with_note(note);
        }
        if let Some(help) = &self.help {
            report = report.with_help(help);
        }
        let cache = ariadne::sources(sources.files.iter().map(|f| (f.name.clone(), f.text.clone())));
        let mut out = Vec::new();
        // Writing to a Vec cannot fail except on a missing source, which `sources` rules out.
        if report.finish().write(cache, &mut out).is_err() {
            return format!("error[{}]: {}\n", self.code.as_str(), self.message);
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Keeps a span inside its file (ariadne panics on out-of-range spans).
fn clamp(span: Span, sources: &SourceMap) -> std::ops::Range<usize> {
    if sources.files.is_empty() {
        return 0..0;
    }
    let len = sources.get(span.file).text.len();
    let start = (span.start as usize).min(len);
    start..(span.end as usize).clamp(start, len)
}

pub fn render_all(diags: &[Diagnostic], sources: &SourceMap, color: bool) -> String {
    diags.iter().map(|d| d.render(sources, color)).collect()
}
