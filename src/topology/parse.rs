//! Bytes → `RawTopology`, collecting every syntax, type and unknown-key problem with its position.
//! Each top-level section is read on its own, so one section's type error hides nothing elsewhere.

use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use serde_yaml::Value;

use super::locate::Locations;
use super::raw::RawTopology;
use crate::diagnostic::{Diagnostic, FieldPath, Location, Segment};

/// Larger files are refused before parsing: a topology is a few kilobytes.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

/// A parsed file: what could be read, where everything is, and the problems met on the way.
pub struct Parsed {
    pub raw: RawTopology,
    pub locations: Locations,
    pub diagnostics: Vec<Diagnostic>,
}

/// Parses `bytes`. `Err` means nothing usable could be read (the diagnostics say why).
pub fn parse(bytes: &[u8]) -> Result<Parsed, Vec<Diagnostic>> {
    let root = FieldPath::root();
    if bytes.len() > MAX_FILE_BYTES {
        return Err(vec![
            Diagnostic::error(
                root,
                format!(
                    "the file is {} bytes; a topology file is at most {MAX_FILE_BYTES}",
                    bytes.len()
                ),
            )
            .help("is this the right file?"),
        ]);
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let at = e.valid_up_to();
            return Err(vec![
                Diagnostic::error(
                    root,
                    format!("the file is not UTF-8 text (byte 0x{:02x})", bytes[at]),
                )
                .at(Some(position_of(bytes, at)))
                .help("save the topology as UTF-8"),
            ]);
        }
    };
    let value: Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let loc = e.location().map(|l| Location {
                line: l.line(),
                column: l.column(),
            });
            return Err(vec![
                Diagnostic::error(root, format!("not valid YAML: {}", strip_position(&e)))
                    .at(loc)
                    .help("fix the YAML syntax at that position"),
            ]);
        }
    };
    let mapping = match value {
        Value::Null => {
            return Err(vec![Diagnostic::error(root, "the file is empty").help(
                "start from one of the examples in topologies/, e.g. topologies/minimal.yaml",
            )]);
        }
        Value::Mapping(m) => m,
        other => {
            return Err(vec![
                Diagnostic::error(
                    root,
                    format!("expected a mapping of settings, found {}", kind(&other)),
                )
                .at(Some(Location { line: 1, column: 1 }))
                .help("a topology starts with keys such as `name:`, `region:` and `zones:`"),
            ]);
        }
    };

    let locations = Locations::index(text);
    let mut diagnostics = Vec::new();
    let mut raw = RawTopology::default();
    for (key, value) in mapping {
        let Value::String(key) = key else {
            diagnostics.push(Diagnostic::error(
                root.clone(),
                format!("keys must be strings, found {}", kind(&key)),
            ));
            continue;
        };
        let path = FieldPath::keys(&[&key]);
        let mut s = Section {
            value,
            path: &path,
            locations: &locations,
            diagnostics: &mut diagnostics,
        };
        match key.as_str() {
            "name" => raw.name = s.read(),
            "region" => raw.region = s.read(),
            "zones" => raw.zones = s.read(),
            "kafka" => raw.kafka = s.read(),
            "ami" => raw.ami = s.read(),
            "zookeeper" => raw.zookeeper = s.read(),
            "brokers" => raw.brokers = s.read(),
            "network" => raw.network = s.read(),
            "tags" => raw.tags = s.read(),
            _ => {
                let d = unknown_key(&path);
                diagnostics.push(d.at(locations.find(&path)));
            }
        }
    }
    Ok(Parsed {
        raw,
        locations,
        diagnostics,
    })
}

struct Section<'a> {
    value: Value,
    path: &'a FieldPath,
    locations: &'a Locations,
    diagnostics: &'a mut Vec<Diagnostic>,
}

impl Section<'_> {
    /// Deserializes one section; type errors and unknown keys become diagnostics.
    fn read<T: DeserializeOwned>(&mut self) -> Option<T> {
        let value = std::mem::take(&mut self.value);
        // `~` or an empty value reads as "not set".
        if value.is_null() {
            return None;
        }
        let mut ignored: Vec<FieldPath> = Vec::new();
        let result: Result<T, _> = {
            let mut record = |p: serde_ignored::Path| ignored.push(from_ignored(p));
            let de = serde_ignored::Deserializer::new(value, &mut record);
            serde_path_to_error::deserialize(de)
        };
        for rel in ignored {
            let path = join(self.path, &rel);
            let d = unknown_key(&path);
            self.diagnostics.push(d.at(self.locations.find(&path)));
        }
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                let mut path = self.path.clone();
                for seg in e.path().iter() {
                    match seg {
                        serde_path_to_error::Segment::Seq { index } => {
                            path.0.push(Segment::Index(*index))
                        }
                        serde_path_to_error::Segment::Map { key } => {
                            path.0.push(Segment::Key(key.clone()))
                        }
                        _ => {}
                    }
                }
                let (message, help) = type_message(&e.into_inner().to_string());
                let mut d = Diagnostic::error(path.clone(), message).at(self.locations.find(&path));
                if let Some(h) = help {
                    d = d.help(h);
                }
                self.diagnostics.push(d);
                None
            }
        }
    }
}

fn from_ignored(p: serde_ignored::Path) -> FieldPath {
    fn walk(p: &serde_ignored::Path, out: &mut Vec<Segment>) {
        match p {
            serde_ignored::Path::Root => {}
            serde_ignored::Path::Seq { parent, index } => {
                walk(parent, out);
                out.push(Segment::Index(*index));
            }
            serde_ignored::Path::Map { parent, key } => {
                walk(parent, out);
                out.push(Segment::Key(key.clone()));
            }
            serde_ignored::Path::Some { parent }
            | serde_ignored::Path::NewtypeStruct { parent }
            | serde_ignored::Path::NewtypeVariant { parent } => walk(parent, out),
        }
    }
    let mut segs = Vec::new();
    walk(&p, &mut segs);
    FieldPath(segs)
}

fn join(base: &FieldPath, rel: &FieldPath) -> FieldPath {
    let mut p = base.clone();
    p.0.extend(rel.0.iter().cloned());
    p
}

/// An "unknown key" diagnostic, with the closest known keys at that place as suggestions.
fn unknown_key(path: &FieldPath) -> Diagnostic {
    let Some(Segment::Key(key)) = path.0.last() else {
        return Diagnostic::error(path.clone(), "unexpected value");
    };
    let parent = FieldPath(path.0[..path.0.len() - 1].to_vec());
    let known = known_keys(&parent);
    let d = Diagnostic::error(path.clone(), format!("unknown key `{key}`"));
    match crate::suggest::closest(key, known.iter().map(String::as_str)) {
        Some(best) => d.help(format!("did you mean `{best}`?")),
        None if known.is_empty() => d,
        None => d.help(format!("expected one of: {}", known.join(", "))),
    }
}

/// The keys the schema allows at `path` (sorted), found by walking the JSON Schema.
fn known_keys(path: &FieldPath) -> Vec<String> {
    static SCHEMA: OnceLock<serde_json::Value> = OnceLock::new();
    let schema = SCHEMA.get_or_init(crate::topology::json_schema);
    let mut node = resolve(schema, schema);
    for seg in &path.0 {
        let next = match seg {
            Segment::Key(k) => node
                .and_then(|n| n.get("properties"))
                .and_then(|p| p.get(k)),
            Segment::Index(_) => node.and_then(|n| n.get("items")),
        };
        node = next.and_then(|n| resolve(schema, n));
    }
    let mut keys: Vec<String> = node
        .and_then(|n| n.get("properties"))
        .and_then(|p| p.as_object())
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

/// Follows `$ref` and looks through `anyOf`/`oneOf` (how optional fields are written) for an
/// object or array schema.
fn resolve<'a>(
    root: &'a serde_json::Value,
    node: &'a serde_json::Value,
) -> Option<&'a serde_json::Value> {
    let mut node = node;
    for _ in 0..16 {
        if let Some(r) = node.get("$ref").and_then(|r| r.as_str()) {
            let name = r.rsplit('/').next()?;
            node = root.get("$defs")?.get(name)?;
            continue;
        }
        if node.get("properties").is_some() || node.get("items").is_some() {
            return Some(node);
        }
        let alts = node
            .get("anyOf")
            .or_else(|| node.get("oneOf"))
            .and_then(|a| a.as_array())?;
        node = alts
            .iter()
            .find(|a| a.get("type").and_then(|t| t.as_str()) != Some("null"))?;
    }
    None
}

/// Turns serde's type error text into an operator's sentence, with a hint for the usual mistakes.
fn type_message(raw: &str) -> (String, Option<String>) {
    let msg = raw
        .replace("expected u32", "expected a whole number")
        .replace("expected u16", "expected a whole number from 0 to 65535")
        .replace("expected a sequence", "expected a list")
        .replace("expected a map", "expected a mapping");
    let msg = match msg.find(", expected struct ") {
        Some(i) => format!("{}, expected a mapping of settings", &msg[..i]),
        None => msg,
    };
    let help = if msg.contains("expected a string")
        && (msg.contains("floating point") || msg.contains("integer"))
    {
        Some("quote the value, e.g. \"2.13\", so YAML keeps it as text".to_string())
    } else if msg.contains("unknown variant") {
        None
    } else if msg.contains("expected a whole number") && msg.contains("string") {
        Some("write the number without quotes".to_string())
    } else {
        None
    };
    (msg, help)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// serde_yaml puts " at line L column C" into its messages; the location is reported separately.
fn strip_position(e: &serde_yaml::Error) -> String {
    let s = e.to_string();
    match s.find(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

fn position_of(bytes: &[u8], offset: usize) -> Location {
    let before = &bytes[..offset];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    Location {
        line,
        column: offset - start + 1,
    }
}
