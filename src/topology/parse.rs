//! Bytes → `RawTopology`, collecting every syntax, type and unknown-key problem with its position.
//! Each top-level section is read on its own, so one section's type error hides nothing elsewhere.

use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use serde_yaml::Value;

use super::locate::Locations;
use super::raw::RawTopology;
use crate::topology::diagnostic::{Diagnostic, FieldPath, Location, Segment};

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
                // The caller reads at most one byte past the limit, so the real size is unknown.
                format!("the file is over 1 MiB; a topology file is at most 1 MiB ({MAX_FILE_BYTES} bytes)"),
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
    // A byte-order mark at the start is how some editors save UTF-8; it is not content.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if let Some(at) = flow_too_deep(text) {
        return Err(vec![nested_too_deeply(Some(at))]);
    }
    let value: Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => return Err(vec![yaml_error(text, &e)]),
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
            "metadata" => raw.metadata = s.read(),
            "kafka" => raw.kafka = s.read(),
            "ami" => raw.ami = s.read(),
            "zookeeper" => raw.zookeeper = s.read(),
            "controllers" => raw.controllers = s.read(),
            "brokers" => raw.brokers = s.read(),
            "connect" => raw.connect = s.read(),
            "monitoring" => raw.monitoring = s.read(),
            "network" => raw.network = s.read(),
            "tags" => raw.tags = s.read(),
            "accept_zone_loss" => raw.accept_zone_loss = s.read(),
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
    match crate::topology::suggest::closest(key, known.iter().map(String::as_str)) {
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
    // An integer of the right type but too large (or negative) for a u32 field.
    let msg =
        if msg.starts_with("invalid value: integer") && msg.ends_with("expected a whole number") {
            format!("{msg} from 0 to {}", u32::MAX)
        } else {
            msg
        };
    let help = if msg.contains("expected a string")
        && (msg.contains("floating point") || msg.contains("integer"))
    {
        Some("quote the value, e.g. \"2.13\", so YAML keeps it as text".to_string())
    } else if msg.contains("unknown variant") {
        None
    } else if msg.contains("expected a whole number")
        && quoted(&msg).is_some_and(|s| s.trim().parse::<i128>().is_ok())
    {
        Some("write the number without quotes".to_string())
    } else {
        None
    };
    (msg, help)
}

/// The text of a string value quoted in a serde message: `invalid type: string "6", …` → `6`.
fn quoted(msg: &str) -> Option<&str> {
    let start = msg.find("string \"")? + "string \"".len();
    let len = msg[start..].find('"')?;
    Some(&msg[start..start + len])
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

/// A file serde_yaml could not read: its syntax errors as they are, and the errors that are not
/// about syntax (several documents, duplicate keys, alias bombs, …) in words that say what to do.
fn yaml_error(text: &str, e: &serde_yaml::Error) -> Diagnostic {
    let root = FieldPath::root();
    let loc = e.location().map(|l| Location {
        line: l.line(),
        column: l.column(),
    });
    let raw = strip_position(e);
    if raw.contains("more than one document") {
        return Diagnostic::error(root, "the file holds more than one YAML document")
            .at(second_document(text))
            .help(
                "keep one topology per file: remove this `---` and what follows, or split the file",
            );
    }
    if raw.contains("repetition limit exceeded") {
        return Diagnostic::error(root, "YAML aliases expand to too much data")
            .help("write the values out instead of repeating aliases (`*name`)");
    }
    if raw.contains("recursion limit exceeded") {
        return nested_too_deeply(loc);
    }
    if raw.contains("duplicate entry with key")
        && let Some((path, at)) = Locations::index(text).first_duplicate()
    {
        let key = path.0.last().map_or(String::new(), |s| match s {
            Segment::Key(k) => k.clone(),
            Segment::Index(i) => i.to_string(),
        });
        return Diagnostic::error(path, format!("`{key}` is set twice"))
            .at(Some(at))
            .help("YAML keys are unique within a mapping; keep one of them");
    }
    if raw.contains(" as u128") || raw.contains(" as i128") {
        let number = raw.split('`').nth(1).unwrap_or_default();
        return Diagnostic::error(root, format!("the number {number} is too large"))
            .at(loc)
            .help("numbers in a topology are counts, sizes and ports");
    }
    let help = if loc.is_some() {
        "fix the YAML syntax at that position"
    } else {
        "fix the YAML syntax"
    };
    Diagnostic::error(root, format!("not valid YAML: {raw}"))
        .at(loc)
        .help(help)
}

fn nested_too_deeply(at: Option<Location>) -> Diagnostic {
    Diagnostic::error(FieldPath::root(), "the YAML is nested too deeply")
        .at(at)
        .help("a topology nests a few levels; is this the right file?")
}

/// Flow collections (`[`, `{`) nested deeper than serde_yaml's own limit of 128 levels.
const MAX_FLOW_DEPTH: usize = 128;

/// Where flow collections first nest deeper than `MAX_FLOW_DEPTH`, found in one linear pass.
///
/// serde_yaml refuses deep nesting only after its scanner has read the whole file, and that scan
/// takes quadratic time on nested flow mappings (`{a: {a: …`): a 1 MiB file took minutes. The
/// pass skips comments and quoted scalars; it may misjudge an apostrophe inside a plain scalar,
/// which can only make it miss brackets (serde_yaml still refuses what it misses). No topology
/// comes near 128 unclosed brackets.
fn flow_too_deep(text: &str) -> Option<Location> {
    #[derive(PartialEq)]
    enum In {
        Plain,
        Comment,
        Single,
        Double,
    }
    let mut state = In::Plain;
    let mut depth = 0usize;
    let (mut line, mut column) = (1, 0);
    let mut prev = ' ';
    let mut escaped = false;
    for c in text.chars() {
        column += 1;
        if c == '\n' {
            line += 1;
            column = 0;
            if state == In::Comment {
                state = In::Plain;
            }
        }
        match state {
            In::Comment => {}
            In::Double if escaped => escaped = false,
            In::Double if c == '\\' => escaped = true,
            In::Double if c == '"' => state = In::Plain,
            In::Single if c == '\'' => state = In::Plain,
            In::Double | In::Single => {}
            In::Plain => {
                let token_start = prev.is_whitespace() || "[{,:".contains(prev);
                match c {
                    '#' if prev.is_whitespace() => state = In::Comment,
                    '"' if token_start => state = In::Double,
                    '\'' if token_start => state = In::Single,
                    '[' | '{' => {
                        depth += 1;
                        if depth > MAX_FLOW_DEPTH {
                            return Some(Location { line, column });
                        }
                    }
                    ']' | '}' => depth = depth.saturating_sub(1),
                    _ => {}
                }
            }
        }
        prev = c;
    }
    None
}

/// Where the second document of a multi-document file starts.
fn second_document(text: &str) -> Option<Location> {
    let mut parser = yaml_rust2::parser::Parser::new_from_str(text);
    let mut starts = 0;
    while let Ok((event, mark)) = parser.next_token() {
        match event {
            yaml_rust2::Event::DocumentStart => {
                starts += 1;
                if starts == 2 {
                    return Some(Location {
                        line: mark.line(),
                        column: mark.col() + 1,
                    });
                }
            }
            yaml_rust2::Event::StreamEnd => break,
            _ => {}
        }
    }
    None
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
