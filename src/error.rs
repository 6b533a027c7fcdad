//! kcluster's one error type; it knows the exit code each failure gets.

use std::path::PathBuf;

use crate::topology::diagnostic::Report;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The topology file has errors (the report lists them all).
    #[error("{0}")]
    Invalid(Report),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Render(#[from] crate::render::RenderError),
    /// Something the user must fix before kcluster goes on (missing credentials, a refusal …).
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Aws(String),
    /// The command did what it was asked, and what it found is a failure (e.g. `check`).
    #[error("{0}")]
    Failed(String),
    /// Ctrl-C: `finish` says how to finish what was interrupted.
    #[error("interrupted: {}", finish.sentence())]
    Interrupted { finish: Finish },
}

/// How to finish an apply or a destroy that stopped midway: run the same command again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    Apply,
    Destroy,
}

impl Finish {
    pub fn sentence(self) -> &'static str {
        match self {
            Finish::Apply => {
                "everything created so far carries the cluster's tags; run `kcluster apply` again to finish"
            }
            Finish::Destroy => {
                "what is left still carries the cluster's tags; run `kcluster destroy` again to finish removing it"
            }
        }
    }
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Interrupted { .. } => 130,
            _ => 1,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
