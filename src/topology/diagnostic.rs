//! Problems found in a topology file: each names the file, the field path, the line and column
//! where known, what is wrong, and what would be right.

use std::fmt;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One step of a field path: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(untagged)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// A field path such as `brokers.overrides.min.insync.replicas` or `zones[2].cidr`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FieldPath(pub Vec<Segment>);

impl FieldPath {
    pub fn root() -> Self {
        FieldPath(Vec::new())
    }

    /// Builds a path from dotted keys, e.g. `FieldPath::keys(&["brokers", "count"])`.
    pub fn keys(keys: &[&str]) -> Self {
        FieldPath(keys.iter().map(|k| Segment::Key(k.to_string())).collect())
    }

    pub fn key(&self, key: impl Into<String>) -> Self {
        let mut p = self.clone();
        p.0.push(Segment::Key(key.into()));
        p
    }

    pub fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Segment::Index(i));
        p
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(top level)");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Segment::Key(k) if i == 0 => write!(f, "{k}")?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

impl Serialize for FieldPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A 1-based line and column in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub path: FieldPath,
    pub location: Option<Location>,
    pub message: String,
    /// What would be right, when there is something useful to say.
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(path: FieldPath, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            path,
            location: None,
            message: message.into(),
            help: None,
        }
    }

    pub fn warning(path: FieldPath, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(path, message)
        }
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn at(mut self, location: Option<Location>) -> Self {
        self.location = location;
        self
    }
}

/// All the problems of one file, sorted by position so the report reads top to bottom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub file: String,
    pub diagnostics: Vec<Diagnostic>,
}

impl Report {
    pub fn new(file: impl Into<String>, mut diagnostics: Vec<Diagnostic>) -> Self {
        diagnostics.sort_by(|a, b| {
            let line = |d: &Diagnostic| d.location.map(|l| (l.line, l.column));
            (line(a).is_none(), line(a), &a.path, a.severity, &a.message).cmp(&(
                line(b).is_none(),
                line(b),
                &b.path,
                b.severity,
                &b.message,
            ))
        });
        diagnostics.dedup();
        Report {
            file: file.into(),
            diagnostics,
        }
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.diagnostics {
            let sev = match d.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            match d.location {
                Some(l) => write!(f, "{}:{}:{}: ", self.file, l.line, l.column)?,
                None => write!(f, "{}: ", self.file)?,
            }
            if d.path.is_root() {
                writeln!(f, "{sev}: {}", d.message)?;
            } else {
                writeln!(f, "{sev}: {}: {}", d.path, d.message)?;
            }
            if let Some(h) = &d.help {
                writeln!(f, "  help: {h}")?;
            }
        }
        let errors = self.errors().count();
        let warnings = self.warnings().count();
        let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
        write!(
            f,
            "{}: {}, {}",
            self.file,
            plural(errors, "error"),
            plural(warnings, "warning")
        )
    }
}
