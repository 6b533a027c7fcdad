//! The topology file: parse it, apply defaults, validate it, and hand out a `Cluster`.
//! `load` reports every problem of the file at once, each with its field path and position.

mod connect;
mod defaults;
pub mod diagnostic;
mod locate;
mod parse;
mod raw;
pub mod suggest;
mod validate;

pub use defaults::{AMI_SSM_PARAMETER, KAFKA_SHA512, KAFKA_VERSION};
pub use parse::MAX_FILE_BYTES;
pub use raw::RawTopology;
pub use validate::az_id_prefix;

use crate::cluster::Cluster;
use crate::topology::diagnostic::Report;

/// A valid cluster and the warnings its file produced.
#[derive(Debug)]
pub struct Loaded {
    pub cluster: Cluster,
    pub warnings: Report,
}

/// Loads a topology from `bytes`; `file` names it in messages (`-` for stdin).
pub fn load(file: &str, bytes: &[u8]) -> Result<Loaded, Report> {
    let parsed = match parse::parse(bytes) {
        Ok(p) => p,
        Err(diagnostics) => return Err(Report::new(file, diagnostics)),
    };
    let mut checker = validate::Checker {
        diagnostics: parsed.diagnostics,
    };
    let cluster = checker.build(&parsed.raw);
    let diagnostics = checker
        .diagnostics
        .into_iter()
        .map(|d| {
            let loc = d.location.or_else(|| parsed.locations.find(&d.path));
            d.at(loc)
        })
        .collect();
    let report = Report::new(file, diagnostics);
    match cluster {
        Some(cluster) if !report.has_errors() => Ok(Loaded {
            cluster,
            warnings: report,
        }),
        _ => Err(report),
    }
}

/// The JSON Schema of the topology file, for editors.
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(RawTopology);
    serde_json::to_value(schema).unwrap_or_default()
}

#[cfg(test)]
mod tests;
