//! Kafka's own broker configuration definitions (name, type, default, valid values), embedded from
//! the documentation tables in `data/kafka-config/`, and a check of one `server.properties` value.
//!
//! The checks follow Kafka's `ConfigDef` (`clients/.../common/config/ConfigDef.java`): the value is
//! trimmed, parsed as its type (`parseType`), then given to the validator that the documentation's
//! "Valid Values" text names (`Range`, `ValidString`, `CaseInsensitiveValidString`, `ValidList`, …).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

const BROKER_3_9: &str = include_str!("../../data/kafka-config/3.9/broker.tsv");
const BROKER_4_X: &str = include_str!("../../data/kafka-config/4.x/broker.tsv");
const PRODUCER_3_9: &str = include_str!("../../data/kafka-config/3.9/producer.tsv");
const CONSUMER_3_9: &str = include_str!("../../data/kafka-config/3.9/consumer.tsv");
const CONNECT_3_9: &str = include_str!("../../data/kafka-config/3.9/connect.tsv");

/// A client's documented configuration (Kafka 3.9): what `client-config` renders is checked
/// against these, as `server.properties` is against the broker's; a Connect worker's
/// `connect-distributed.properties` against the Connect table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientTable {
    Producer,
    Consumer,
    Connect,
}

impl ClientTable {
    pub fn configs(self) -> &'static BrokerConfigs {
        static PRODUCER: OnceLock<BrokerConfigs> = OnceLock::new();
        static CONSUMER: OnceLock<BrokerConfigs> = OnceLock::new();
        static CONNECT: OnceLock<BrokerConfigs> = OnceLock::new();
        let (cell, text, version) = match self {
            ClientTable::Producer => (&PRODUCER, PRODUCER_3_9, "3.9 producer"),
            ClientTable::Consumer => (&CONSUMER, CONSUMER_3_9, "3.9 consumer"),
            ClientTable::Connect => (&CONNECT, CONNECT_3_9, "3.9 Connect worker"),
        };
        // Embedded, and a unit test parses both: a failure here is a broken build.
        cell.get_or_init(|| {
            BrokerConfigs::parse(version, text)
                .unwrap_or_else(|e| panic!("the embedded {version} table does not parse: {e}"))
        })
    }
}

/// The broker configuration of one Kafka release line, as documented.
#[derive(Debug)]
pub struct BrokerConfigs {
    version: &'static str,
    defs: BTreeMap<String, ConfigDef>,
}

/// One documented broker configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigDef {
    pub name: String,
    pub kind: ConfigType,
    pub default: DefaultValue,
    pub valid: ValidValues,
    pub importance: Importance,
}

/// Kafka's `ConfigDef.Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConfigType {
    Boolean,
    String,
    Int,
    Short,
    Long,
    Double,
    List,
    Class,
    Password,
}

/// What a config is when `server.properties` does not set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefaultValue {
    /// No default: Kafka refuses to start without it (an empty cell in the documentation).
    Required,
    /// The default is Java `null` (documented as `null`): unset.
    Null,
    /// A concrete default, written as it would be in `server.properties` (so `""` is the empty
    /// string, and `60000 (1 minute)` is `60000`).
    Value(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Importance {
    High,
    Medium,
    Low,
}

/// The constraint the documentation's "Valid Values" text states, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum ValidValues {
    /// No validator (an empty cell).
    Any,
    /// `Range`: `[1,...]`, `[0,...,1]`, `[...,9]`; both ends inclusive.
    Range(Range),
    /// A range plus one extra allowed value: `[1,...,9] or -1` (the gzip level validator).
    RangeOr { range: Range, or: Bound },
    /// `ValidString` (`[a, b]`, exact match) or `CaseInsensitiveValidString`
    /// (`(case insensitive) [A, B]`), for string configs.
    OneOf {
        values: Vec<String>,
        case_insensitive: bool,
    },
    /// `ValidList`: every item of a list config must be one of these (exact match).
    ListOf(Vec<String>),
    /// `MetadataVersionValidator`: documented as the enumeration of every inter-broker protocol
    /// version (`[0.8.0, …, 3.9-IV0, …]`), but it also accepts a release such as `3.9`, and
    /// ignores what follows the release (`3.9.1` means `3.9`), like `MetadataVersion.fromVersionString`.
    MetadataVersion(Vec<String>),
    /// `NonEmptyString`: the trimmed value must not be empty.
    NonEmptyString,
    /// `NonNullValidator`: only rejects Java `null`, which a properties file cannot express.
    NonNullString,
    /// Documented as "non-empty list": the KRaft quorum validators, which accept the empty list
    /// but parse every entry as an endpoint.
    Endpoints(EndpointForm),
    /// Prose instead of a constraint; checked as its type only.
    Described(String),
}

/// The entry syntax of a quorum endpoint list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointForm {
    /// `controller.quorum.voters`: `{id}@{host}:{port}`.
    IdHostPort,
    /// `controller.quorum.bootstrap.servers`: `{host}:{port}`.
    HostPort,
}

/// Inclusive numeric bounds; either end may be open.
#[derive(Debug, Clone, PartialEq)]
pub struct Range {
    pub min: Option<Bound>,
    pub max: Option<Bound>,
}

/// A number as the documentation writes it, and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Bound {
    pub text: String,
    pub value: f64,
}

/// Why a value is not acceptable for a config. `Display` reads as the tail of a validation error
/// whose head names the config, e.g. ``brokers.config.num.partitions: must be at least 1, found 0``.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigProblem {
    /// The name is not a broker config of this release line.
    UnknownKey {
        version: &'static str,
        suggestions: Vec<String>,
    },
    /// A `listener.name.<listener>.` (or SASL mechanism) prefix not in lower case: Kafka looks
    /// the prefixed settings up in lower case only, so it would silently ignore this one.
    PrefixNotLowerCase { expected: String },
    /// The value does not parse as the config's type.
    WrongType { expected: ConfigType, found: String },
    /// An integer that does not fit the config's type.
    IntegerOutOfType { kind: ConfigType, found: String },
    /// A number outside the valid range; `valid` reads like "at least 1".
    OutOfRange { valid: String, found: String },
    /// Not one of an enumeration (of a whole string value, or of one item of a list).
    NotOneOf {
        valid: Vec<String>,
        case_insensitive: bool,
        list_item: bool,
        found: String,
        suggestion: Option<String>,
    },
    /// Not an inter-broker protocol / message format version.
    NotAVersion {
        first: String,
        last: String,
        found: String,
        suggestion: Option<String>,
    },
    /// An empty value where Kafka requires a non-empty string.
    Empty,
    /// An entry of an endpoint list not in the required form.
    BadEntry { entry: String, form: EndpointForm },
}

impl BrokerConfigs {
    /// The documented broker configs for a Kafka version: `3.9.x` uses the 3.9 table, `4.x` the
    /// 4.x table (documented for 4.1); other versions have none.
    pub fn for_version(version: &str) -> Option<&'static BrokerConfigs> {
        static V3_9: OnceLock<Option<BrokerConfigs>> = OnceLock::new();
        static V4_X: OnceLock<Option<BrokerConfigs>> = OnceLock::new();
        let mut parts = version.split('.');
        let major = parts.next()?;
        let minor = parts.next();
        let rest_numeric = parts.all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        let numeric = |p: Option<&str>| {
            p.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        };
        if !rest_numeric || !numeric(minor) {
            return None;
        }
        // The tables are embedded and a unit test parses both, so `None` here means no table.
        match (major, minor) {
            ("3", Some("9")) => V3_9
                .get_or_init(|| BrokerConfigs::parse("3.9", BROKER_3_9).ok())
                .as_ref(),
            ("4", _) => V4_X
                .get_or_init(|| BrokerConfigs::parse("4.x", BROKER_4_X).ok())
                .as_ref(),
            _ => None,
        }
    }

    /// The release line these definitions document: `3.9` or `4.x`.
    pub fn version(&self) -> &'static str {
        self.version
    }

    /// The definition of exactly this config name.
    pub fn get(&self, name: &str) -> Option<&ConfigDef> {
        self.defs.get(name)
    }

    /// Every definition, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &ConfigDef> {
        self.defs.values()
    }

    /// Checks `value`, as it would appear in `server.properties`, for the config `name`.
    ///
    /// Besides the documented names, accepts the per-listener forms Kafka reads,
    /// `listener.name.<listener>.<config>` and `listener.name.<listener>.<mechanism>.<sasl config>`,
    /// checking the value against `<config>` (whether Kafka reads that particular setting per
    /// listener is not judged: it does for the `ssl.*`, `sasl.*` and connection-quota settings).
    pub fn check(&self, name: &str, value: &str) -> Result<(), ConfigProblem> {
        let broker_table = matches!(self.version, "3.9" | "4.x");
        if broker_table && AUTHORIZER_KEYS.contains(&name) {
            return Ok(());
        }
        match self.resolve(name)? {
            Some(def) => def.check(value),
            None => Err(ConfigProblem::UnknownKey {
                version: self.version,
                suggestions: self.suggestions(name),
            }),
        }
    }

    /// The definition a name refers to, seeing through a listener prefix.
    fn resolve(&self, name: &str) -> Result<Option<&ConfigDef>, ConfigProblem> {
        if let Some(def) = self.defs.get(name) {
            return Ok(Some(def));
        }
        let Some(rest) = name.strip_prefix(LISTENER_PREFIX) else {
            return Ok(None);
        };
        let Some((listener, config)) = rest.split_once('.') else {
            return Ok(None);
        };
        let (mechanism, def) = match self.defs.get(config) {
            Some(def) => (None, def),
            None => match config.split_once('.') {
                Some((mechanism, sasl)) if sasl.starts_with("sasl.") => match self.defs.get(sasl) {
                    Some(def) => (Some(mechanism), def),
                    None => return Ok(None),
                },
                _ => return Ok(None),
            },
        };
        if listener.is_empty() || mechanism.is_some_and(str::is_empty) {
            return Ok(None);
        }
        let lower = |s: &str| s.to_lowercase();
        if listener != lower(listener) || mechanism.is_some_and(|m| m != lower(m)) {
            let expected = match mechanism {
                Some(m) => format!(
                    "{LISTENER_PREFIX}{}.{}.{}",
                    lower(listener),
                    lower(m),
                    def.name
                ),
                None => format!("{LISTENER_PREFIX}{}.{}", lower(listener), def.name),
            };
            return Err(ConfigProblem::PrefixNotLowerCase { expected });
        }
        Ok(Some(def))
    }

    /// Up to three documented names close to `name`, best first.
    fn suggestions(&self, name: &str) -> Vec<String> {
        // Suggest within a listener prefix when the name has one.
        if let Some(rest) = name.strip_prefix(LISTENER_PREFIX)
            && let Some((listener, config)) = rest.split_once('.')
        {
            return closest(config, self.defs.keys().map(String::as_str))
                .into_iter()
                .map(|s| format!("{LISTENER_PREFIX}{listener}.{s}"))
                .collect();
        }
        closest(name, self.defs.keys().map(String::as_str))
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    /// Parses a table: tab-separated `name, type, default, valid_values, importance`, a header
    /// row, and `#` comment lines.
    fn parse(version: &'static str, text: &str) -> Result<BrokerConfigs, String> {
        let mut defs = BTreeMap::new();
        let mut rows = text
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty() && !line.starts_with('#'));
        match rows.next() {
            Some((_, "name\ttype\tdefault\tvalid_values\timportance")) => {}
            _ => return Err("the table does not start with its header row".into()),
        }
        for (index, line) in rows {
            let def = ConfigDef::parse_row(line).map_err(|e| format!("line {}: {e}", index + 1))?;
            if defs.contains_key(&def.name) {
                return Err(format!(
                    "line {}: `{}` is defined twice",
                    index + 1,
                    def.name
                ));
            }
            defs.insert(def.name.clone(), def);
        }
        Ok(BrokerConfigs { version, defs })
    }
}

const LISTENER_PREFIX: &str = "listener.name.";

/// Settings of `server.properties` read by Kafka's ACL authorizers (`AclAuthorizer` in ZooKeeper
/// mode, `StandardAuthorizer` in KRaft) rather than by the broker's own config definitions, so
/// the broker tables do not list them; they are accepted as written.
const AUTHORIZER_KEYS: &[&str] = &["allow.everyone.if.no.acl.found", "super.users"];

impl ConfigDef {
    /// Checks `value`, as it would appear in `server.properties`.
    pub fn check(&self, value: &str) -> Result<(), ConfigProblem> {
        let trimmed = java_trim(value);
        let parsed = parse_type(self.kind, trimmed)?;
        match (&self.valid, &parsed) {
            (ValidValues::Any | ValidValues::NonNullString | ValidValues::Described(_), _) => {
                Ok(())
            }
            (ValidValues::Range(range), Parsed::Number(n)) => {
                if range.contains(*n) {
                    Ok(())
                } else {
                    Err(ConfigProblem::OutOfRange {
                        valid: range.describe(),
                        found: trimmed.to_string(),
                    })
                }
            }
            (ValidValues::RangeOr { range, or }, Parsed::Number(n)) => {
                if range.contains(*n) || *n == or.value {
                    Ok(())
                } else {
                    Err(ConfigProblem::OutOfRange {
                        valid: format!("{}, or {}", range.describe(), or.text),
                        found: trimmed.to_string(),
                    })
                }
            }
            (
                ValidValues::OneOf {
                    values,
                    case_insensitive,
                },
                Parsed::Text(s),
            ) => one_of(values, *case_insensitive, false, s),
            (ValidValues::ListOf(values), Parsed::List(items)) => items
                .iter()
                .try_for_each(|item| one_of(values, false, true, item)),
            (ValidValues::MetadataVersion(versions), Parsed::Text(s)) => {
                metadata_version(versions, s)
            }
            (ValidValues::NonEmptyString, Parsed::Text(s)) => {
                if s.is_empty() {
                    Err(ConfigProblem::Empty)
                } else {
                    Ok(())
                }
            }
            (ValidValues::Endpoints(form), Parsed::List(items)) => items
                .iter()
                .try_for_each(|entry| check_endpoint(*form, entry)),
            // `parse_row` pairs each validator with the types it applies to.
            _ => Ok(()),
        }
    }

    fn parse_row(line: &str) -> Result<ConfigDef, String> {
        let cells: Vec<&str> = line.split('\t').collect();
        let [name, kind, default, valid, importance] = cells[..] else {
            return Err(format!(
                "expected 5 tab-separated cells, found {}",
                cells.len()
            ));
        };
        if name.is_empty() || name.chars().any(char::is_whitespace) {
            return Err(format!("`{name}` is not a config name"));
        }
        let kind = ConfigType::parse(kind)?;
        let importance = match importance {
            "high" => Importance::High,
            "medium" => Importance::Medium,
            "low" => Importance::Low,
            other => return Err(format!("`{other}` is not an importance")),
        };
        let valid = ValidValues::parse(name, kind, valid)?;
        let default = parse_default(name, default)?;
        Ok(ConfigDef {
            name: name.to_string(),
            kind,
            default,
            valid,
            importance,
        })
    }
}

impl ConfigType {
    fn parse(text: &str) -> Result<ConfigType, String> {
        Ok(match text {
            "boolean" => ConfigType::Boolean,
            "string" => ConfigType::String,
            "int" => ConfigType::Int,
            "short" => ConfigType::Short,
            "long" => ConfigType::Long,
            "double" => ConfigType::Double,
            "list" => ConfigType::List,
            "class" => ConfigType::Class,
            "password" => ConfigType::Password,
            other => return Err(format!("`{other}` is not a config type")),
        })
    }

    fn is_number(self) -> bool {
        matches!(
            self,
            ConfigType::Int | ConfigType::Short | ConfigType::Long | ConfigType::Double
        )
    }

    /// How an error message names a value of this type.
    fn described(self) -> &'static str {
        match self {
            ConfigType::Boolean => "a boolean (true or false)",
            ConfigType::String => "a string",
            ConfigType::Int => "an int (32-bit integer)",
            ConfigType::Short => "a short (16-bit integer)",
            ConfigType::Long => "a long (64-bit integer)",
            ConfigType::Double => "a double (a decimal number)",
            ConfigType::List => "a comma-separated list",
            ConfigType::Class => "a Java class name (such as `org.example.MyClass`)",
            ConfigType::Password => "a password",
        }
    }
}

impl fmt::Display for ConfigType {
    /// Kafka's own name for the type, as in its documentation.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfigType::Boolean => "boolean",
            ConfigType::String => "string",
            ConfigType::Int => "int",
            ConfigType::Short => "short",
            ConfigType::Long => "long",
            ConfigType::Double => "double",
            ConfigType::List => "list",
            ConfigType::Class => "class",
            ConfigType::Password => "password",
        })
    }
}

impl ValidValues {
    /// Parses a "Valid Values" cell. Every form that starts like a constraint (`[`, `(`) must
    /// parse, so that a form this parser does not know fails the table test instead of silently
    /// checking nothing; other text is prose.
    fn parse(name: &str, kind: ConfigType, text: &str) -> Result<ValidValues, String> {
        let wrong_type = || format!("valid values `{text}` do not apply to a {kind} config");
        let valid = if text.is_empty() {
            ValidValues::Any
        } else if text == "non-empty string" {
            ValidValues::NonEmptyString
        } else if text == "non-null string" {
            ValidValues::NonNullString
        } else if text == "non-empty list" {
            // Kafka's two quorum validators print this; what each accepts depends on which it is.
            match name {
                "controller.quorum.voters" => ValidValues::Endpoints(EndpointForm::IdHostPort),
                "controller.quorum.bootstrap.servers" => {
                    ValidValues::Endpoints(EndpointForm::HostPort)
                }
                _ => return Err(format!("no known validator of `{name}` prints `{text}`")),
            }
        } else if let Some(list) = text.strip_prefix("(case insensitive) ") {
            ValidValues::OneOf {
                values: parse_enumeration(list).ok_or_else(wrong_type)?,
                case_insensitive: true,
            }
        } else if let Some((range, or)) = text.split_once("] or ") {
            ValidValues::RangeOr {
                range: Range::parse(&format!("{range}]")).ok_or_else(wrong_type)?,
                or: Bound::parse(or).ok_or_else(wrong_type)?,
            }
        } else if text.contains("...") {
            ValidValues::Range(Range::parse(text).ok_or_else(wrong_type)?)
        } else if text.starts_with('[') {
            let values = parse_enumeration(text).ok_or_else(wrong_type)?;
            if kind == ConfigType::List {
                ValidValues::ListOf(values)
            } else if values.iter().all(|v| is_metadata_version(v))
                && values.iter().any(|v| v.contains("-IV"))
            {
                ValidValues::MetadataVersion(values)
            } else {
                ValidValues::OneOf {
                    values,
                    case_insensitive: false,
                }
            }
        } else if text.starts_with('(') {
            return Err(format!("unknown valid values form `{text}`"));
        } else {
            // E.g. 3.9's `remote.log.manager.copier.thread.pool.size`, whose validator prints
            // "The default value of -1 means that …": the text states no constraint to check.
            ValidValues::Described(text.to_string())
        };
        let applies = match &valid {
            ValidValues::Any | ValidValues::Described(_) | ValidValues::NonNullString => true,
            ValidValues::Range(_) | ValidValues::RangeOr { .. } => kind.is_number(),
            ValidValues::OneOf { .. }
            | ValidValues::MetadataVersion(_)
            | ValidValues::NonEmptyString => kind == ConfigType::String,
            ValidValues::ListOf(_) | ValidValues::Endpoints(_) => kind == ConfigType::List,
        };
        if applies {
            Ok(valid)
        } else {
            Err(wrong_type())
        }
    }
}

impl Range {
    /// `[min,...]`, `[min,...,max]`, `[...,max]` or `[...]`, as `ConfigDef.Range.toString` prints.
    fn parse(text: &str) -> Option<Range> {
        let inner = text.strip_prefix('[')?.strip_suffix(']')?;
        let parts: Vec<&str> = inner.split(',').collect();
        let bound = |s: &str| Bound::parse(s);
        match parts[..] {
            ["..."] => Some(Range {
                min: None,
                max: None,
            }),
            [min, "..."] => Some(Range {
                min: Some(bound(min)?),
                max: None,
            }),
            ["...", max] => Some(Range {
                min: None,
                max: Some(bound(max)?),
            }),
            [min, "...", max] => Some(Range {
                min: Some(bound(min)?),
                max: Some(bound(max)?),
            }),
            _ => None,
        }
    }

    // NaN fails every range here, where Java's comparisons would let it through: no config
    // means "not a number" by it.
    fn contains(&self, n: f64) -> bool {
        self.min.as_ref().is_none_or(|min| n >= min.value)
            && self.max.as_ref().is_none_or(|max| n <= max.value)
    }

    /// "at least 1", "no more than 9", "between 1 and 9".
    fn describe(&self) -> String {
        match (&self.min, &self.max) {
            (Some(min), Some(max)) => format!("between {} and {}", min.text, max.text),
            (Some(min), None) => format!("at least {}", min.text),
            (None, Some(max)) => format!("no more than {}", max.text),
            (None, None) => "a number".to_string(),
        }
    }
}

impl Bound {
    fn parse(text: &str) -> Option<Bound> {
        let value = parse_java_double(text)?;
        (!value.is_nan()).then(|| Bound {
            text: text.to_string(),
            value,
        })
    }
}

/// `[a, b, c]` as `ValidString.toString` prints it.
fn parse_enumeration(text: &str) -> Option<Vec<String>> {
    let inner = text.strip_prefix('[')?.strip_suffix(']')?;
    let values: Vec<String> = inner.split(", ").map(str::to_string).collect();
    let well_formed = values
        .iter()
        .all(|v| !v.is_empty() && !v.contains(',') && !v.contains(char::is_whitespace));
    well_formed.then_some(values)
}

/// `0.8.0`, `0.10.0-IV1`, `3.9-IV0`: a `MetadataVersion` name.
fn is_metadata_version(text: &str) -> bool {
    let release = match text.split_once("-IV") {
        Some((release, iv)) => {
            if iv.is_empty() || !iv.bytes().all(|b| b.is_ascii_digit()) {
                return false;
            }
            release
        }
        None => text,
    };
    let segments: Vec<&str> = release.split('.').collect();
    segments.len() >= 2
        && segments
            .iter()
            .all(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
}

/// Reads the documentation's default: `null`, `""`, empty (no default), or a value — with the
/// `(1 minute)` / `(1 gibibyte)` suffix that Kafka's `ConfigDef.getConfigValue` appends to the
/// defaults of `.ms` and `.bytes` configs removed after checking it is exactly that suffix.
fn parse_default(name: &str, text: &str) -> Result<DefaultValue, String> {
    Ok(match text {
        "" => DefaultValue::Required,
        "null" => DefaultValue::Null,
        "\"\"" => DefaultValue::Value(String::new()),
        _ => {
            let (value, suffix) = match text.split_once(" (") {
                Some((value, rest)) => (value, format!(" ({rest}")),
                None => (text, String::new()),
            };
            let expected = match value.parse::<i64>() {
                Ok(n) if name.ends_with(".ms") => nice_time_units(n),
                Ok(n) if name.ends_with(".bytes") => nice_memory_units(n),
                _ => String::new(),
            };
            if suffix != expected {
                return Err(format!(
                    "default `{text}`: expected the suffix `{expected}` after `{value}`"
                ));
            }
            DefaultValue::Value(value.to_string())
        }
    })
}

/// Kafka's `ConfigDef.niceTimeUnits`: ` (5 minutes)` for 300000, empty when not a whole unit.
fn nice_time_units(millis: i64) -> String {
    const DIVISORS: [i64; 4] = [1000, 60, 60, 24];
    const UNITS: [&str; 4] = ["second", "minute", "hour", "day"];
    let mut value = millis;
    let mut i = 0;
    while value != 0 && i < 4 && value % DIVISORS[i] == 0 {
        value /= DIVISORS[i];
        i += 1;
    }
    if i == 0 {
        return String::new();
    }
    let plural = if value > 1 { "s" } else { "" };
    format!(" ({value} {}{plural})", UNITS[i - 1])
}

/// Kafka's `ConfigDef.niceMemoryUnits`: ` (1 gibibyte)` for 1073741824, empty when not a whole unit.
fn nice_memory_units(bytes: i64) -> String {
    const UNITS: [&str; 4] = ["kibibyte", "mebibyte", "gibibyte", "tebibyte"];
    let mut value = bytes;
    let mut i = 0;
    while value != 0 && i < 4 && value % 1024 == 0 {
        value /= 1024;
        i += 1;
    }
    if i == 0 {
        return String::new();
    }
    let plural = if value == 1 { "" } else { "s" };
    format!(" ({value} {}{plural})", UNITS[i - 1])
}

/// A value after `ConfigDef.parseType`.
enum Parsed<'a> {
    Other,
    Number(f64),
    Text(&'a str),
    List(Vec<&'a str>),
}

/// `ConfigDef.parseType` on a trimmed string.
fn parse_type(kind: ConfigType, trimmed: &str) -> Result<Parsed<'_>, ConfigProblem> {
    let wrong = || ConfigProblem::WrongType {
        expected: kind,
        found: trimmed.to_string(),
    };
    match kind {
        ConfigType::Boolean => {
            if trimmed.eq_ignore_ascii_case("true") || trimmed.eq_ignore_ascii_case("false") {
                Ok(Parsed::Other)
            } else {
                Err(wrong())
            }
        }
        ConfigType::Int => parse_integer::<i32>(kind, trimmed),
        ConfigType::Short => parse_integer::<i16>(kind, trimmed),
        ConfigType::Long => parse_integer::<i64>(kind, trimmed),
        ConfigType::Double => parse_java_double(trimmed)
            .map(Parsed::Number)
            .ok_or_else(wrong),
        ConfigType::String | ConfigType::Password => Ok(Parsed::Text(trimmed)),
        ConfigType::List => Ok(Parsed::List(split_list(trimmed))),
        // Kafka loads the class, which only the broker can; a name that cannot be a class fails.
        ConfigType::Class => {
            if is_java_binary_name(trimmed) {
                Ok(Parsed::Other)
            } else {
                Err(wrong())
            }
        }
    }
}

/// `Integer.parseInt` and friends: an optional sign and ASCII digits, within the type's range.
/// (Java also takes non-ASCII Unicode digits; no one writes those in a properties file.)
fn parse_integer<T>(kind: ConfigType, trimmed: &str) -> Result<Parsed<'_>, ConfigProblem>
where
    T: std::str::FromStr + Into<i64>,
{
    match trimmed.parse::<T>() {
        Ok(n) => Ok(Parsed::Number(n.into() as f64)),
        Err(_) => {
            let digits = trimmed.strip_prefix(['+', '-']).unwrap_or(trimmed);
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                Err(ConfigProblem::IntegerOutOfType {
                    kind,
                    found: trimmed.to_string(),
                })
            } else {
                Err(ConfigProblem::WrongType {
                    expected: kind,
                    found: trimmed.to_string(),
                })
            }
        }
    }
}

/// `String.trim`: strips every character up to U+0020 from both ends (not other Unicode spaces).
fn java_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c <= ' ')
}

/// `ConfigDef.parseType` for lists: empty means no items, else split on commas with the `\s`
/// whitespace around them removed (`COMMA_WITH_WHITESPACE`); empty items are kept.
fn split_list(trimmed: &str) -> Vec<&str> {
    if trimmed.is_empty() {
        return Vec::new();
    }
    let java_space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\x0B' | '\x0C' | '\r');
    trimmed
        .split(',')
        .map(|s| s.trim_matches(java_space))
        .collect()
}

/// `Double.parseDouble` on a trimmed string: decimal (`1`, `.5`, `1e-3`, `1.7976931348623157E308`)
/// or hexadecimal (`0x1.8p1`) notation, `NaN`, `Infinity`, each with an optional sign, decimal and
/// hexadecimal also with a `f`/`d` suffix. Rust's own parser also takes `inf` and `nan`, which
/// Java rejects, so the grammar is checked here first.
fn parse_java_double(s: &str) -> Option<f64> {
    let (negative, unsigned) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let magnitude = match unsigned {
        "NaN" => f64::NAN,
        "Infinity" => f64::INFINITY,
        _ => {
            let body = unsigned
                .strip_suffix(['f', 'F', 'd', 'D'])
                .unwrap_or(unsigned);
            match body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
                Some(hex) => parse_hex_float(hex)?,
                None => parse_decimal(body)?,
            }
        }
    };
    Some(if negative { -magnitude } else { magnitude })
}

/// `digits [. digits] [e|E [sign] digits]`, with a digit before or after the point.
fn parse_decimal(body: &str) -> Option<f64> {
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = digits(int) && digits(frac) && !(int.is_empty() && frac.is_empty());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    if !(mantissa_ok && exponent_ok) {
        return None;
    }
    body.parse::<f64>().ok()
}

/// The part after `0x` of a Java hexadecimal floating-point literal: `hex [. hex] p [sign] digits`.
fn parse_hex_float(hex: &str) -> Option<f64> {
    let (mantissa, exponent) = hex.split_once(['p', 'P'])?;
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut value = 0f64;
    for c in int.chars().chain(frac.chars()) {
        value = value * 16.0 + f64::from(c.to_digit(16)?);
    }
    let exp_digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    if exp_digits.is_empty() || !exp_digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Large exponents saturate to infinity or zero, as in Java.
    let exp = exponent
        .parse::<i32>()
        .unwrap_or(if exponent.starts_with('-') {
            i32::MIN
        } else {
            i32::MAX
        });
    let frac_bits = i32::try_from(frac.len() * 4).ok()?;
    Some(value * 2f64.powi(exp.saturating_sub(frac_bits)))
}

/// A Java binary class name: identifiers separated by dots (`$` separates nested classes and is
/// an identifier character).
fn is_java_binary_name(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|ident| {
            let mut chars = ident.chars();
            chars
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_' || c == '$')
                && chars.all(|c| c.is_alphanumeric() || c == '_' || c == '$')
        })
}

fn one_of(
    values: &[String],
    case_insensitive: bool,
    list_item: bool,
    found: &str,
) -> Result<(), ConfigProblem> {
    let matches = |v: &String| {
        if case_insensitive {
            v.to_uppercase() == found.to_uppercase()
        } else {
            v == found
        }
    };
    if values.iter().any(matches) {
        return Ok(());
    }
    let suggestion = values
        .iter()
        .find(|v| v.to_lowercase() == found.to_lowercase())
        .map(String::as_str)
        .or_else(|| {
            closest(found, values.iter().map(String::as_str))
                .first()
                .copied()
        })
        .map(str::to_string);
    Err(ConfigProblem::NotOneOf {
        valid: values.to_vec(),
        case_insensitive,
        list_item,
        found: found.to_string(),
        suggestion,
    })
}

/// `MetadataVersion.fromVersionString`: the documented versions, each release (`3.9` for
/// `3.9-IV0`), and any value whose first two dot-separated segments (three for `0.x`) are one.
fn metadata_version(versions: &[String], found: &str) -> Result<(), ConfigProblem> {
    let release = |v: &str| v.split_once("-IV").map_or(v, |(r, _)| r).to_string();
    let known = |key: &str| versions.iter().any(|v| v == key || release(v) == key);
    // Java's `split` drops trailing empty segments.
    let mut segments: Vec<&str> = found.split('.').collect();
    while segments.len() > 1 && segments.last() == Some(&"") {
        segments.pop();
    }
    let wanted = if found.starts_with("0.") { 3 } else { 2 };
    let key = if segments.len() <= wanted {
        found.to_string()
    } else {
        segments[..wanted].join(".")
    };
    if known(&key) {
        return Ok(());
    }
    let mut choices: Vec<String> = versions.iter().map(|v| release(v)).collect();
    choices.dedup();
    choices.extend(versions.iter().cloned());
    Err(ConfigProblem::NotAVersion {
        first: versions.first().cloned().unwrap_or_default(),
        last: versions.last().cloned().unwrap_or_default(),
        found: found.to_string(),
        suggestion: closest(found, choices.iter().map(String::as_str))
            .first()
            .map(|s| s.to_string()),
    })
}

/// The quorum validators' entry parsing (`QuorumConfig.parseVoterConnections`,
/// `parseBootstrapServers`), with `Utils.getHost` / `getPort`'s host and port syntax.
fn check_endpoint(form: EndpointForm, entry: &str) -> Result<(), ConfigProblem> {
    let ok = match form {
        EndpointForm::HostPort => is_host_port(entry),
        EndpointForm::IdHostPort => {
            // Java's `split("@")`, which drops trailing empty parts.
            let mut parts: Vec<&str> = entry.split('@').collect();
            while parts.len() > 1 && parts.last() == Some(&"") {
                parts.pop();
            }
            matches!(parts[..], [id, address] if id.parse::<i32>().is_ok() && is_host_port(address))
        }
    };
    if ok {
        Ok(())
    } else {
        Err(ConfigProblem::BadEntry {
            entry: entry.to_string(),
            form,
        })
    }
}

/// `[scheme://][\[]host[\]]:port`, host made of letters, digits and `-%._:` (`Utils.HOST_PORT_PATTERN`),
/// the port a TCP port number.
fn is_host_port(address: &str) -> bool {
    let address = match address.split_once("://") {
        Some((scheme, rest))
            if scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-%._".contains(c)) =>
        {
            rest
        }
        _ => address,
    };
    let Some((host, port)) = address.rsplit_once(':') else {
        return false;
    };
    let host = host.strip_prefix('[').unwrap_or(host);
    let host = host.strip_suffix(']').unwrap_or(host);
    !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u32>().is_ok_and(|p| p <= 65535)
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-%._:".contains(c))
}

/// The candidates closest to `word`, best first: at most three, all about as close as the best
/// one, compared case-insensitively with `_` and `-` read as `.` (so `min_insync_replicas`
/// finds `min.insync.replicas`).
fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    const CUTOFF: f64 = 0.85;
    const SPREAD: f64 = 0.03;
    let normalize = |s: &str| s.to_lowercase().replace(['_', '-'], ".");
    let word = normalize(word);
    let mut scored: Vec<(f64, &str)> = candidates
        .map(|c| (strsim::jaro_winkler(&word, &normalize(c)), c))
        .filter(|(score, _)| *score >= CUTOFF)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    let best = scored.first().map_or(0.0, |(score, _)| *score);
    scored
        .into_iter()
        .take_while(|(score, _)| *score >= best - SPREAD)
        .take(3)
        .map(|(_, c)| c)
        .collect()
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigProblem::UnknownKey {
                version,
                suggestions,
            } => {
                // Broker tables are named by release line (`3.9`), client tables by line and kind
                // (`3.9 producer`).
                let what = if version.contains(' ') { "" } else { " broker" };
                write!(f, "not a Kafka {version}{what} config")?;
                if !suggestions.is_empty() {
                    write!(f, "; did you mean {}?", join_quoted(suggestions, "or"))?;
                }
                Ok(())
            }
            ConfigProblem::PrefixNotLowerCase { expected } => write!(
                f,
                "Kafka reads listener-prefixed settings only with the listener and mechanism \
                 names in lower case, so it would ignore this one; write `{expected}`"
            ),
            ConfigProblem::WrongType { expected, found } => {
                write!(f, "expected {}, found `{found}`", expected.described())
            }
            ConfigProblem::IntegerOutOfType { kind, found } => {
                let (min, max) = match kind {
                    ConfigType::Short => (i64::from(i16::MIN), i64::from(i16::MAX)),
                    ConfigType::Int => (i64::from(i32::MIN), i64::from(i32::MAX)),
                    _ => (i64::MIN, i64::MAX),
                };
                write!(
                    f,
                    "expected {}, which is from {min} to {max}, found `{found}`",
                    kind.described()
                )
            }
            ConfigProblem::OutOfRange { valid, found } => {
                write!(f, "must be {valid}, found {found}")
            }
            ConfigProblem::NotOneOf {
                valid,
                case_insensitive,
                list_item,
                found,
                suggestion,
            } => {
                let subject = if *list_item { "each item must" } else { "must" };
                let case = if *case_insensitive {
                    " (in any case)"
                } else {
                    ""
                };
                write!(
                    f,
                    "{subject} be one of{case} {}, found `{found}`",
                    join_quoted(valid, "or")
                )?;
                if let Some(suggestion) = suggestion {
                    write!(f, "; did you mean `{suggestion}`?")?;
                }
                Ok(())
            }
            ConfigProblem::NotAVersion {
                first,
                last,
                found,
                suggestion,
            } => {
                write!(
                    f,
                    "must be a Kafka version such as `3.9` or `3.9-IV0` \
                     (from `{first}` to `{last}`), found `{found}`"
                )?;
                if let Some(suggestion) = suggestion {
                    write!(f, "; did you mean `{suggestion}`?")?;
                }
                Ok(())
            }
            ConfigProblem::Empty => f.write_str("must not be empty"),
            ConfigProblem::BadEntry { entry, form } => {
                let form = match form {
                    EndpointForm::IdHostPort => "{id}@{host}:{port}",
                    EndpointForm::HostPort => "{host}:{port}",
                };
                if entry.is_empty() {
                    write!(f, "has an empty entry; each must be `{form}`")
                } else {
                    write!(f, "entry `{entry}` is not of the form `{form}`")
                }
            }
        }
    }
}

impl std::error::Error for ConfigProblem {}

/// `` `a` ``, `` `a` or `b` ``, `` `a`, `b` or `c` ``.
fn join_quoted(items: &[String], last_word: &str) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("`{s}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} {last_word} {last}", rest.join(", ")),
    }
}

impl fmt::Display for ValidValues {
    /// Kafka's documentation text for the constraint.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let range = |r: &Range| match (&r.min, &r.max) {
            (Some(min), Some(max)) => format!("[{},...,{}]", min.text, max.text),
            (Some(min), None) => format!("[{},...]", min.text),
            (None, Some(max)) => format!("[...,{}]", max.text),
            (None, None) => "[...]".to_string(),
        };
        match self {
            ValidValues::Any => Ok(()),
            ValidValues::Range(r) => f.write_str(&range(r)),
            ValidValues::RangeOr { range: r, or } => write!(f, "{} or {}", range(r), or.text),
            ValidValues::OneOf {
                values,
                case_insensitive,
            } => {
                if *case_insensitive {
                    f.write_str("(case insensitive) ")?;
                }
                write!(f, "[{}]", values.join(", "))
            }
            ValidValues::ListOf(values) | ValidValues::MetadataVersion(values) => {
                write!(f, "[{}]", values.join(", "))
            }
            ValidValues::NonEmptyString => f.write_str("non-empty string"),
            ValidValues::NonNullString => f.write_str("non-null string"),
            ValidValues::Endpoints(_) => f.write_str("non-empty list"),
            ValidValues::Described(text) => f.write_str(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{
        BROKER_3_9, BROKER_4_X, BrokerConfigs, CONNECT_3_9, ClientTable, ConfigDef, ConfigProblem,
        ConfigType, DefaultValue, EndpointForm, Importance, Range, ValidValues, nice_memory_units,
        nice_time_units, parse_default,
    };

    fn v39() -> &'static BrokerConfigs {
        BrokerConfigs::for_version("3.9.1").expect("the 3.9 table parses")
    }

    fn v4() -> &'static BrokerConfigs {
        BrokerConfigs::for_version("4.1.0").expect("the 4.x table parses")
    }

    /// The problem's message, or "ok".
    fn check(configs: &BrokerConfigs, name: &str, value: &str) -> String {
        match configs.check(name, value) {
            Ok(()) => "ok".to_string(),
            Err(problem) => problem.to_string(),
        }
    }

    #[test]
    fn acl_authorizer_settings_pass_though_not_in_the_broker_tables() {
        assert!(v39().get("super.users").is_none() && v4().get("super.users").is_none());
        assert_eq!(check(v39(), "super.users", "User:admin;User:ops"), "ok");
        assert_eq!(
            check(v39(), "allow.everyone.if.no.acl.found", "false"),
            "ok"
        );
        assert_eq!(check(v4(), "super.users", "User:admin"), "ok");
        // Near misses are still unknown keys.
        assert_ne!(check(v39(), "super.user", "User:admin"), "ok");
    }

    fn synthetic(kind: ConfigType, valid: &str) -> ConfigDef {
        ConfigDef {
            name: "synthetic".to_string(),
            kind,
            default: DefaultValue::Null,
            valid: ValidValues::parse("synthetic", kind, valid).expect("valid values parse"),
            importance: Importance::Low,
        }
    }

    #[test]
    fn embedded_tables_parse_completely() {
        let v39 = BrokerConfigs::parse("3.9", BROKER_3_9).expect("3.9 parses");
        let v4 = BrokerConfigs::parse("4.x", BROKER_4_X).expect("4.x parses");
        // One definition per data row (the files hold a header, and 4.x a `# version` line).
        assert_eq!(v39.iter().count(), BROKER_3_9.lines().count() - 1);
        assert_eq!(v4.iter().count(), BROKER_4_X.lines().count() - 2);
        assert!(v39.get("zookeeper.connect").is_some());
        assert!(v4.get("zookeeper.connect").is_none());
        let connect = BrokerConfigs::parse("3.9 Connect worker", CONNECT_3_9).expect("parses");
        assert_eq!(connect.iter().count(), CONNECT_3_9.lines().count() - 1);
        assert!(connect.get("offset.storage.partitions").is_some());
    }

    #[test]
    fn connect_table_checks_worker_settings() {
        let connect = ClientTable::Connect.configs();
        assert_eq!(check(connect, "offset.flush.interval.ms", "10000"), "ok");
        assert_eq!(
            check(connect, "connect.protocol", "cooperative"),
            "must be one of `eager`, `compatible` or `sessioned`, found `cooperative`"
        );
        assert_eq!(
            check(connect, "offset.flush.interval", "1"),
            "not a Kafka 3.9 Connect worker config; did you mean `offset.flush.interval.ms`?"
        );
    }

    #[test]
    fn versions_map_to_their_release_line() {
        for version in ["3.9.1", "3.9.0", "3.9"] {
            assert_eq!(
                BrokerConfigs::for_version(version).map(BrokerConfigs::version),
                Some("3.9")
            );
        }
        for version in ["4.0.0", "4.1.0", "4.1", "4"] {
            assert_eq!(
                BrokerConfigs::for_version(version).map(BrokerConfigs::version),
                Some("4.x")
            );
        }
        for version in [
            "3.8.1", "3.10.0", "2.8.2", "5.0.0", "39.1", "3.9.x", "3.9.", "", "x",
        ] {
            assert!(BrokerConfigs::for_version(version).is_none(), "{version}");
        }
    }

    /// Kafka checks each default against its own validator when it defines the config; a default
    /// that fails here means this module parses the table or checks values wrongly.
    #[test]
    fn every_concrete_default_passes_its_own_check() {
        for configs in [v39(), v4()] {
            let mut concrete = 0;
            for def in configs.iter() {
                match &def.default {
                    DefaultValue::Value(value) => {
                        concrete += 1;
                        assert_eq!(def.check(value), Ok(()), "{} = `{value}`", def.name);
                    }
                    // Java `null` (unset) and "no default" are not values to check.
                    DefaultValue::Null | DefaultValue::Required => {}
                }
            }
            assert!(
                concrete > 150,
                "{}: only {concrete} concrete defaults",
                configs.version()
            );
        }
    }

    /// Printing each parsed constraint gives back the documentation's text, so no part of a
    /// "Valid Values" cell is dropped or misread.
    #[test]
    fn valid_values_print_back_as_documented() {
        for (configs, table) in [(v39(), BROKER_3_9), (v4(), BROKER_4_X)] {
            for line in table.lines().skip_while(|l| l.starts_with('#')).skip(1) {
                let cells: Vec<&str> = line.split('\t').collect();
                let def = configs.get(cells[0]).expect("every row is defined");
                assert_eq!(def.valid.to_string(), cells[3], "{}", def.name);
                assert_eq!(def.kind.to_string(), cells[1], "{}", def.name);
            }
        }
    }

    #[test]
    fn documented_defaults_read_as_property_values() {
        let value = |name: &str| v39().get(name).map(|d| d.default.clone());
        let text = |s: &str| Some(DefaultValue::Value(s.to_string()));
        assert_eq!(value("log.segment.bytes"), text("1073741824"));
        assert_eq!(value("transactional.id.expiration.ms"), text("604800000"));
        assert_eq!(
            value("log.flush.scheduler.interval.ms"),
            text("9223372036854775807")
        );
        assert_eq!(value("controller.quorum.voters"), text(""));
        assert_eq!(value("listeners"), text("PLAINTEXT://:9092"));
        assert_eq!(value("advertised.listeners"), Some(DefaultValue::Null));
        assert_eq!(
            v4().get("node.id").map(|d| d.default.clone()),
            Some(DefaultValue::Required)
        );
    }

    #[test]
    fn default_unit_suffixes_must_be_what_kafka_prints() {
        assert_eq!(
            parse_default("a.ms", "60000 (1 minute)"),
            Ok(DefaultValue::Value("60000".into()))
        );
        assert_eq!(
            parse_default("a.bytes", "4096 (4 kibibytes)"),
            Ok(DefaultValue::Value("4096".into()))
        );
        assert_eq!(
            parse_default("a.ms", "100"),
            Ok(DefaultValue::Value("100".into()))
        );
        assert!(parse_default("a.ms", "60000 (2 minutes)").is_err());
        assert!(parse_default("a.ms", "60000").is_err());
        assert!(parse_default("a.size", "4096 (4 kibibytes)").is_err());
    }

    #[test]
    fn nice_units_match_kafka() {
        assert_eq!(nice_time_units(1000), " (1 second)");
        assert_eq!(nice_time_units(300000), " (5 minutes)");
        assert_eq!(nice_time_units(604800000), " (7 days)");
        assert_eq!(nice_time_units(0), "");
        assert_eq!(nice_time_units(-2), "");
        assert_eq!(nice_time_units(i64::MAX), "");
        assert_eq!(nice_memory_units(1048576), " (1 mebibyte)");
        assert_eq!(nice_memory_units(57671680), " (55 mebibytes)");
        assert_eq!(nice_memory_units(1048588), "");
        assert_eq!(nice_memory_units(-1), "");
    }

    #[test]
    fn at_least_ranges() {
        assert_eq!(check(v39(), "num.partitions", "1"), "ok");
        assert_eq!(
            check(v39(), "num.partitions", "0"),
            "must be at least 1, found 0"
        );
        assert_eq!(check(v39(), "log.local.retention.ms", "-2"), "ok");
        assert_eq!(
            check(v39(), "log.local.retention.ms", "-3"),
            "must be at least -2, found -3"
        );
        assert_eq!(
            check(v39(), "log.flush.interval.messages", "9223372036854775807"),
            "ok"
        );
    }

    #[test]
    fn closed_ranges() {
        assert_eq!(check(v39(), "log.cleaner.min.cleanable.ratio", "0.5"), "ok");
        assert_eq!(check(v39(), "log.cleaner.min.cleanable.ratio", "1"), "ok");
        assert_eq!(
            check(v39(), "log.cleaner.min.cleanable.ratio", "1.5"),
            "must be between 0 and 1, found 1.5"
        );
        assert_eq!(
            check(v39(), "log.cleaner.min.cleanable.ratio", "NaN"),
            "must be between 0 and 1, found NaN"
        );
        assert_eq!(check(v39(), "compression.zstd.level", "-131072"), "ok");
        assert_eq!(
            check(v39(), "compression.zstd.level", "23"),
            "must be between -131072 and 22, found 23"
        );
    }

    #[test]
    fn upper_bound_only_range() {
        let def = synthetic(ConfigType::Int, "[...,9]");
        assert_eq!(def.check("-100"), Ok(()));
        assert_eq!(
            def.check("10").map_err(|e| e.to_string()),
            Err("must be no more than 9, found 10".into())
        );
        assert_eq!(def.valid.to_string(), "[...,9]");
        assert_eq!(synthetic(ConfigType::Long, "[...]").check("5"), Ok(()));
    }

    #[test]
    fn range_with_one_extra_value() {
        assert_eq!(check(v39(), "compression.gzip.level", "-1"), "ok");
        assert_eq!(check(v39(), "compression.gzip.level", "9"), "ok");
        assert_eq!(
            check(v39(), "compression.gzip.level", "0"),
            "must be between 1 and 9, or -1, found 0"
        );
    }

    #[test]
    fn case_sensitive_enumerations() {
        assert_eq!(check(v39(), "compression.type", "lz4"), "ok");
        assert_eq!(check(v39(), "compression.type", " zstd "), "ok");
        assert_eq!(
            check(v39(), "compression.type", "LZ4"),
            "must be one of `uncompressed`, `zstd`, `lz4`, `snappy`, `gzip` or `producer`, \
             found `LZ4`; did you mean `lz4`?"
        );
        assert_eq!(
            check(v39(), "security.inter.broker.protocol", "ssl"),
            "must be one of `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`, found `ssl`; \
             did you mean `SSL`?"
        );
        assert_eq!(
            check(v39(), "security.inter.broker.protocol", "SASL_SSL"),
            "ok"
        );
        assert_eq!(check(v39(), "ssl.client.auth", "required"), "ok");
        assert_eq!(
            check(v39(), "log.message.timestamp.type", "LogAppendTime"),
            "ok"
        );
        assert_eq!(
            check(v39(), "log.message.timestamp.type", ""),
            "must be one of `CreateTime` or `LogAppendTime`, found ``"
        );
    }

    #[test]
    fn case_insensitive_enumerations() {
        assert_eq!(
            check(v4(), "group.consumer.migration.policy", "downgrade"),
            "ok"
        );
        assert_eq!(
            check(v4(), "group.consumer.migration.policy", "Bidirectional"),
            "ok"
        );
        assert_eq!(
            check(v4(), "sasl.oauthbearer.assertion.algorithm", "HS256"),
            "must be one of (in any case) `ES256` or `RS256`, found `HS256`; did you mean `ES256`?"
        );
    }

    #[test]
    fn list_enumerations_check_every_item() {
        for ok in [
            "delete",
            "compact,delete",
            "compact, delete",
            " delete ",
            "",
        ] {
            assert_eq!(check(v39(), "log.cleanup.policy", ok), "ok", "{ok}");
        }
        assert_eq!(
            check(v39(), "log.cleanup.policy", "compaction"),
            "each item must be one of `compact` or `delete`, found `compaction`; \
             did you mean `compact`?"
        );
        assert_eq!(
            check(v39(), "log.cleanup.policy", "compact,,delete"),
            "each item must be one of `compact` or `delete`, found ``"
        );
        assert_eq!(check(v39(), "process.roles", "broker,controller"), "ok");
        assert_eq!(
            check(
                v39(),
                "group.coordinator.rebalance.protocols",
                "classic,consumer"
            ),
            "ok"
        );
    }

    #[test]
    fn metadata_versions_accept_releases_like_kafka() {
        for ok in [
            "3.9",
            "3.9-IV0",
            "3.9.1",
            "3.9.1.",
            "0.10.0",
            "0.10.0-IV1",
            "0.10.0.1",
            "2.8",
            "0.8.2",
        ] {
            assert_eq!(
                check(v39(), "inter.broker.protocol.version", ok),
                "ok",
                "{ok}"
            );
        }
        for bad in ["3.10", "3.9-IV9", "3.9.", "3", "", "latest"] {
            assert_ne!(
                check(v39(), "inter.broker.protocol.version", bad),
                "ok",
                "{bad}"
            );
        }
        assert_eq!(
            check(v39(), "log.message.format.version", "3.10"),
            "must be a Kafka version such as `3.9` or `3.9-IV0` (from `0.8.0` to `4.0-IV1`), \
             found `3.10`; did you mean `3.1`?"
        );
    }

    #[test]
    fn non_empty_and_non_null_strings() {
        assert_eq!(
            check(v39(), "remote.log.metadata.manager.impl.prefix", "rlmm.s3."),
            "ok"
        );
        assert_eq!(
            check(v39(), "remote.log.metadata.manager.impl.prefix", ""),
            "must not be empty"
        );
        assert_eq!(
            check(v39(), "remote.log.metadata.manager.impl.prefix", "  "),
            "must not be empty"
        );
        assert_eq!(check(v39(), "authorizer.class.name", ""), "ok");
    }

    #[test]
    fn quorum_endpoint_lists() {
        assert_eq!(
            check(v39(), "controller.quorum.voters", "1@a:9093,2@[::1]:9093"),
            "ok"
        );
        assert_eq!(check(v39(), "controller.quorum.voters", ""), "ok");
        assert_eq!(
            check(v39(), "controller.quorum.voters", "a:9093"),
            "entry `a:9093` is not of the form `{id}@{host}:{port}`"
        );
        assert_ne!(check(v39(), "controller.quorum.voters", "x@a:9093"), "ok");
        assert_ne!(check(v39(), "controller.quorum.voters", "1@a"), "ok");
        assert_eq!(
            check(v39(), "controller.quorum.voters", "1@a:9093,"),
            "has an empty entry; each must be `{id}@{host}:{port}`"
        );
        assert_eq!(
            check(
                v39(),
                "controller.quorum.bootstrap.servers",
                "a:9093, b.example:9093"
            ),
            "ok"
        );
        assert_ne!(
            check(v39(), "controller.quorum.bootstrap.servers", "a"),
            "ok"
        );
        assert_ne!(
            check(v39(), "controller.quorum.bootstrap.servers", "a:99999"),
            "ok"
        );
        assert_eq!(
            v39()
                .get("controller.quorum.voters")
                .map(|d| d.valid.clone()),
            Some(ValidValues::Endpoints(EndpointForm::IdHostPort))
        );
    }

    /// 3.9's copier and expiration pool sizes document prose ("The default value of -1 means …")
    /// instead of a constraint: only the type is checked.
    #[test]
    fn prose_valid_values_check_only_the_type() {
        let def = v39().get("remote.log.manager.copier.thread.pool.size");
        assert!(matches!(
            def.map(|d| &d.valid),
            Some(ValidValues::Described(_))
        ));
        assert_eq!(
            check(v39(), "remote.log.manager.copier.thread.pool.size", "-1"),
            "ok"
        );
        assert_eq!(
            check(v39(), "remote.log.manager.copier.thread.pool.size", "4"),
            "ok"
        );
        assert_eq!(
            check(v39(), "remote.log.manager.copier.thread.pool.size", "four"),
            "expected an int (32-bit integer), found `four`"
        );
    }

    #[test]
    fn unknown_valid_values_forms_fail_the_table() {
        let parse = |kind, text| ValidValues::parse("x", kind, text);
        assert!(parse(ConfigType::Int, "[1..2]").is_err());
        assert!(parse(ConfigType::Int, "[1,...,2,3]").is_err());
        assert!(parse(ConfigType::String, "(something) [a, b]").is_err());
        assert!(parse(ConfigType::String, "[1,...]").is_err());
        assert!(parse(ConfigType::Int, "[a, b]").is_err());
        assert!(parse(ConfigType::List, "non-empty list").is_err());
        assert!(parse(ConfigType::List, "(case insensitive) [A, B]").is_err());
        assert_eq!(
            parse(ConfigType::Int, "Some prose."),
            Ok(ValidValues::Described("Some prose.".into()))
        );
        assert_eq!(
            Range::parse("[0,...,1]").map(|r| r.describe()),
            Some("between 0 and 1".to_string())
        );
    }

    #[test]
    fn booleans_are_true_or_false_in_any_case() {
        for ok in ["true", "FALSE", "True", " true\t"] {
            assert_eq!(check(v39(), "auto.create.topics.enable", ok), "ok", "{ok}");
        }
        assert_eq!(
            check(v39(), "auto.create.topics.enable", "yes"),
            "expected a boolean (true or false), found `yes`"
        );
        for bad in ["1", "", "t"] {
            assert_ne!(
                check(v39(), "auto.create.topics.enable", bad),
                "ok",
                "{bad}"
            );
        }
    }

    #[test]
    fn integers_must_fit_their_type() {
        assert_eq!(check(v39(), "broker.id", "2147483647"), "ok");
        assert_eq!(check(v39(), "broker.id", "+5"), "ok");
        assert_eq!(check(v39(), "broker.id", " 42 "), "ok");
        assert_eq!(
            check(v39(), "broker.id", "2147483648"),
            "expected an int (32-bit integer), which is from -2147483648 to 2147483647, \
             found `2147483648`"
        );
        assert_eq!(
            check(v39(), "broker.id", "abc"),
            "expected an int (32-bit integer), found `abc`"
        );
        for bad in ["1.0", "", "0x10", "1_000", "\u{a0}5"] {
            assert_ne!(check(v39(), "broker.id", bad), "ok", "{bad:?}");
        }
        assert_eq!(
            check(v39(), "offsets.topic.replication.factor", "32767"),
            "ok"
        );
        assert_eq!(
            check(v39(), "offsets.topic.replication.factor", "32768"),
            "expected a short (16-bit integer), which is from -32768 to 32767, found `32768`"
        );
        assert_eq!(
            check(v39(), "log.retention.bytes", "9223372036854775807"),
            "ok"
        );
        assert_ne!(
            check(v39(), "log.retention.bytes", "9223372036854775808"),
            "ok"
        );
        assert_eq!(
            check(v39(), "log.retention.bytes", "1GB"),
            "expected a long (64-bit integer), found `1GB`"
        );
    }

    #[test]
    fn doubles_follow_java_syntax() {
        let name = "sasl.kerberos.ticket.renew.jitter";
        for ok in [
            "0.5",
            ".5",
            "5.",
            "1e3",
            "1E-3",
            "1.e2",
            "1.7976931348623157E308",
            "1d",
            "2.5f",
            "+0.1",
            "-2",
            "Infinity",
            "-Infinity",
            "NaN",
            "0x1.8p1",
            "0X10P-2",
        ] {
            assert_eq!(check(v39(), name, ok), "ok", "{ok}");
        }
        for bad in [
            "inf", "nan", "infinity", "1e", "e5", "1.2.3", "abc", "", ".", "0x1.8", "1 0",
        ] {
            assert_eq!(
                check(v39(), name, bad),
                format!("expected a double (a decimal number), found `{bad}`"),
            );
        }
    }

    #[test]
    fn classes_must_be_java_class_names() {
        let name = "principal.builder.class";
        for ok in [
            "org.example.Builder",
            "org.example.Outer$Inner",
            "Plain",
            "_x.$y",
        ] {
            assert_eq!(check(v39(), name, ok), "ok", "{ok}");
        }
        for bad in [
            "",
            "org..Builder",
            "1org.Builder",
            "org.Builder.",
            "org.Build er",
            "org/Builder",
        ] {
            assert_ne!(check(v39(), name, bad), "ok", "{bad}");
        }
        assert_eq!(
            check(v39(), name, "org/Builder"),
            "expected a Java class name (such as `org.example.MyClass`), found `org/Builder`"
        );
    }

    #[test]
    fn strings_passwords_and_free_lists_take_anything() {
        assert_eq!(
            check(v39(), "listeners", "PLAINTEXT://:9092,SSL://:9093"),
            "ok"
        );
        assert_eq!(check(v39(), "ssl.keystore.password", " s3cr=t "), "ok");
        assert_eq!(
            check(v39(), "sasl.enabled.mechanisms", "PLAIN, SCRAM-SHA-512"),
            "ok"
        );
        assert_eq!(check(v39(), "log.dirs", ""), "ok");
    }

    #[test]
    fn unknown_keys_suggest_the_closest_names() {
        assert_eq!(
            check(v39(), "min.insync.replica", "2"),
            "not a Kafka 3.9 broker config; did you mean `min.insync.replicas`?"
        );
        assert_eq!(
            check(v39(), "min_insync_replicas", "2"),
            "not a Kafka 3.9 broker config; did you mean `min.insync.replicas`?"
        );
        assert_eq!(
            check(v39(), "zookeeper.conect", "zk:2181"),
            "not a Kafka 3.9 broker config; did you mean `zookeeper.connect`?"
        );
        assert_eq!(
            check(v39(), "completely.different", "1"),
            "not a Kafka 3.9 broker config"
        );
        assert_eq!(
            check(v4(), "zookeeper.connect", "zk:2181"),
            "not a Kafka 4.x broker config"
        );
    }

    #[test]
    fn suggestions_are_few_sorted_and_deterministic() {
        for typo in [
            "log.retention",
            "ssl.keystore",
            "num.thread",
            "replica.fetch.max",
            "log.segment",
        ] {
            let Err(ConfigProblem::UnknownKey { suggestions, .. }) = v39().check(typo, "1") else {
                panic!("{typo} is not a config");
            };
            assert!(suggestions.len() <= 3, "{typo}: {suggestions:?}");
            assert_eq!(v39().check(typo, "1"), v39().check(typo, "1"));
        }
        let message = ConfigProblem::UnknownKey {
            version: "3.9",
            suggestions: vec!["a".into(), "b".into(), "c".into()],
        };
        assert_eq!(
            message.to_string(),
            "not a Kafka 3.9 broker config; did you mean `a`, `b` or `c`?"
        );
    }

    #[test]
    fn listener_prefixed_settings() {
        assert_eq!(
            check(
                v39(),
                "listener.name.internal.ssl.keystore.location",
                "/k.jks"
            ),
            "ok"
        );
        assert_eq!(
            check(
                v39(),
                "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config",
                "x required;"
            ),
            "ok"
        );
        assert_eq!(
            check(v39(), "listener.name.internal.max.connections", "many"),
            "expected an int (32-bit integer), found `many`"
        );
        assert_eq!(
            check(v39(), "listener.name.INTERNAL.ssl.keystore.type", "PKCS12"),
            "Kafka reads listener-prefixed settings only with the listener and mechanism names \
             in lower case, so it would ignore this one; write \
             `listener.name.internal.ssl.keystore.type`"
        );
        assert_eq!(
            check(v39(), "listener.name.sasl_ssl.PLAIN.sasl.jaas.config", "x"),
            "Kafka reads listener-prefixed settings only with the listener and mechanism names \
             in lower case, so it would ignore this one; write \
             `listener.name.sasl_ssl.plain.sasl.jaas.config`"
        );
        assert_eq!(
            check(
                v39(),
                "listener.name.internal.ssl.keystore.locaton",
                "/k.jks"
            ),
            "not a Kafka 3.9 broker config; did you mean \
             `listener.name.internal.ssl.keystore.location`?"
        );
        assert_ne!(
            check(v39(), "listener.name..ssl.keystore.type", "JKS"),
            "ok"
        );
        assert_ne!(
            check(
                v39(),
                "listener.name.internal.plain.ssl.keystore.type",
                "JKS"
            ),
            "ok"
        );
    }

    #[test]
    fn malformed_tables_are_rejected() {
        let header = "name\ttype\tdefault\tvalid_values\timportance\n";
        let parse = |body: &str| BrokerConfigs::parse("t", &format!("{header}{body}"));
        assert!(parse("a\tint\t1\t[1,...]\thigh\n").is_ok());
        assert!(BrokerConfigs::parse("t", "a\tint\t1\t\thigh\n").is_err());
        assert!(parse("a\tint\t1\t\thigh\na\tint\t1\t\thigh\n").is_err());
        assert!(parse("a\tint\t1\thigh\n").is_err());
        assert!(parse("a\tinteger\t1\t\thigh\n").is_err());
        assert!(parse("a\tint\t1\t\tcritical\n").is_err());
    }
}
