//! Cluster → every file each node gets, from the minijinja templates in `templates/` (embedded in
//! the binary; a directory given with `--templates` overrides them file by file).

pub mod client_config;
pub mod exporters;
pub mod monitoring;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior, Value, context};
use serde::Serialize;

use crate::cluster::{self, Cluster, Node};
use exporters::EXPORTERS;

/// EC2 refuses user-data larger than this (raw bytes, before base64).
pub const USER_DATA_LIMIT: usize = 16 * 1024;
/// Where the bootstrap script lands on the node.
pub const BOOTSTRAP_PATH: &str = "/usr/local/sbin/kcluster-bootstrap";
pub const KAFKA_HOME: &str = "/opt/kafka";
pub const JMX_PORT: u16 = 9999;
/// Stands for a node's data volume id in its rendered files until apply knows the id (the
/// volume may not exist yet): [`with_data_volume`] puts the id in.
pub const DATA_VOLUME_PLACEHOLDER: &str = "@KCLUSTER_DATA_VOLUME@";

/// The largest template file read from `--templates` (the built-in ones are a few KiB).
pub const MAX_TEMPLATE_BYTES: u64 = 256 * 1024;
/// Rendering work allowed per template (minijinja's fuel: roughly one unit per instruction); the
/// built-in templates need under 20 000, and a runaway loop stops within a second.
pub const TEMPLATE_FUEL: u64 = 2_000_000;

/// The templates shipped in the binary, by name.
pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "bootstrap.sh.j2",
        include_str!("../../templates/bootstrap.sh.j2"),
    ),
    (
        "connect-distributed.properties.j2",
        include_str!("../../templates/connect-distributed.properties.j2"),
    ),
    (
        "jmx-exporter-kafka-connect.yaml.j2",
        include_str!("../../templates/jmx-exporter-kafka-connect.yaml.j2"),
    ),
    (
        "kafka.service.j2",
        include_str!("../../templates/kafka.service.j2"),
    ),
    (
        "controller.properties.j2",
        include_str!("../../templates/controller.properties.j2"),
    ),
    (
        "kafka-connect.service.j2",
        include_str!("../../templates/kafka-connect.service.j2"),
    ),
    (
        "alertmanager.service.j2",
        include_str!("../../templates/alertmanager.service.j2"),
    ),
    (
        "alertmanager.yml.j2",
        include_str!("../../templates/alertmanager.yml.j2"),
    ),
    (
        "jmx-exporter-kafka.yaml.j2",
        include_str!("../../templates/jmx-exporter-kafka.yaml.j2"),
    ),
    (
        "jmx-exporter-zookeeper.yaml.j2",
        include_str!("../../templates/jmx-exporter-zookeeper.yaml.j2"),
    ),
    ("myid.j2", include_str!("../../templates/myid.j2")),
    (
        "node-exporter.service.j2",
        include_str!("../../templates/node-exporter.service.j2"),
    ),
    (
        "prometheus.service.j2",
        include_str!("../../templates/prometheus.service.j2"),
    ),
    (
        "server.properties.j2",
        include_str!("../../templates/server.properties.j2"),
    ),
    (
        "sysctl.conf.j2",
        include_str!("../../templates/sysctl.conf.j2"),
    ),
    ("user-data.j2", include_str!("../../templates/user-data.j2")),
    (
        "zookeeper.properties.j2",
        include_str!("../../templates/zookeeper.properties.j2"),
    ),
    (
        "zookeeper.service.j2",
        include_str!("../../templates/zookeeper.service.j2"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot read templates directory {path}: {source}")]
    TemplateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a kcluster template; templates are: {known}")]
    UnknownTemplate { path: PathBuf, known: String },
    /// One entry of the templates directory that cannot be a template (a directory, a FIFO, a
    /// device, a file too large, or one that cannot be read).
    #[error("{path}: {problem}")]
    TemplateFile { path: PathBuf, problem: String },
    #[error("template {name}: {detail}")]
    Template { name: String, detail: String },
    #[error(
        "{node}: user-data is {bytes} bytes even gzipped; EC2 accepts at most {USER_DATA_LIMIT}"
    )]
    UserDataTooLarge { node: String, bytes: usize },
}

/// How to render: which templates, where the data volume is mounted and where Connect workers
/// keep their plugins (tests move both).
#[derive(Debug, Clone)]
pub struct Options {
    pub templates_dir: Option<PathBuf>,
    pub data_dir: String,
    pub plugin_dir: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            templates_dir: None,
            data_dir: cluster::DATA_DIR.to_string(),
            plugin_dir: crate::kafka::connect::PLUGIN_DIR.to_string(),
        }
    }
}

/// One file a node gets: its name in the render output, where it goes on the node, its mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeFile {
    pub name: String,
    pub path: String,
    pub mode: String,
    pub content: String,
}

/// Everything one node gets. `user_data` is what EC2 receives (gzipped when the raw document
/// would exceed EC2's limit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRender {
    pub node: String,
    pub files: Vec<NodeFile>,
    pub user_data: Vec<u8>,
    pub user_data_gzipped: bool,
    /// The cloud-config document before compression, with [`DATA_VOLUME_PLACEHOLDER`].
    pub document: String,
}

/// The user-data EC2 receives for a node whose data volume is `volume_id`: the document with the
/// id in place of [`DATA_VOLUME_PLACEHOLDER`], gzipped when it would exceed EC2's limit.
pub fn with_data_volume(document: &str, volume_id: &str) -> Vec<u8> {
    let text = document.replace(DATA_VOLUME_PLACEHOLDER, volume_id);
    if text.len() > USER_DATA_LIMIT {
        gzip(text.as_bytes())
    } else {
        text.into_bytes()
    }
}

impl NodeRender {
    pub fn file(&self, name: &str) -> Option<&NodeFile> {
        self.files.iter().find(|f| f.name == name)
    }

    /// Writes the node's files and `user-data` into `dir` (created if needed).
    pub fn write_to(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        for f in &self.files {
            std::fs::write(dir.join(&f.name), &f.content)?;
        }
        let name = if self.user_data_gzipped {
            "user-data.gz"
        } else {
            "user-data"
        };
        std::fs::write(dir.join(name), &self.user_data)
    }
}

pub struct Renderer {
    env: Environment<'static>,
    data_dir: String,
    plugin_dir: String,
}

impl Renderer {
    pub fn new(options: &Options) -> Result<Renderer, RenderError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(TEMPLATE_FUEL));
        env.set_debug(true);
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true)
            .build()
            .map_err(|e| template_error("(syntax)", &e))?;
        env.set_syntax(syntax);
        env.add_filter("properties", properties_escape);
        env.add_filter("shell_escape", shell_escape);
        env.add_filter("yaml_string", yaml_string);
        let mut sources: BTreeMap<String, String> = TEMPLATES
            .iter()
            .map(|(n, s)| (n.to_string(), s.to_string()))
            .collect();
        if let Some(dir) = &options.templates_dir {
            let io = |source| RenderError::TemplateDir {
                path: dir.clone(),
                source,
            };
            for entry in std::fs::read_dir(dir).map_err(io)? {
                let path = entry.map_err(io)?.path();
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if !sources.contains_key(&name) {
                    return Err(RenderError::UnknownTemplate {
                        path,
                        known: TEMPLATES
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                }
                let text = read_template(&path)?;
                sources.insert(name, text);
            }
        }
        for (name, source) in sources {
            env.add_template_owned(name.clone(), source)
                .map_err(|e| template_error(&name, &e))?;
        }
        Ok(Renderer {
            env,
            data_dir: options.data_dir.clone(),
            plugin_dir: options.plugin_dir.clone(),
        })
    }

    /// Renders every node of the cluster, in node order.
    pub fn render_all(&self, cluster: &Cluster) -> Result<Vec<NodeRender>, RenderError> {
        cluster
            .nodes
            .iter()
            .map(|n| self.render_node(cluster, n))
            .collect()
    }

    pub fn render_node(&self, cluster: &Cluster, node: &Node) -> Result<NodeRender, RenderError> {
        let info = node.role.info();
        let (service, config) = (info.service, info.config_file);
        let zookeepers: Vec<&Node> = cluster.zookeepers().collect();
        let ctx = context! {
            cluster => context! { name => &cluster.name, region => &cluster.region },
            node => Value::from(minijinja::value::Serde(node)),
            rack => cluster.rack_of(&node.zone),
            spec => Value::from(minijinja::value::Serde(cluster.role_spec(node.role))),
            kafka => Value::from(minijinja::value::Serde(&cluster.kafka)),
            zookeepers => Value::from(minijinja::value::Serde(&zookeepers)),
            zookeeper_connect => cluster.zookeeper_connect(),
            metadata => cluster.metadata.as_str(),
            node_id => node.node_id(),
            cluster_id => cluster.kraft_cluster_id(),
            quorum_voters => cluster.quorum_voters(),
            role_title => info.title,
            config_file => config,
            docs_version => docs_version(&cluster.kafka.version),
            settings => Value::from(minijinja::value::Serde(&cluster.broker_settings)),
            bootstrap_servers => cluster.bootstrap_servers(),
            connect => Value::from(minijinja::value::Serde(&cluster.connect)),
            connect_group_id => crate::kafka::connect::group_id(&cluster.name),
            plugin_dir => &self.plugin_dir,
            data_dir => &self.data_dir,
            data_volume => DATA_VOLUME_PLACEHOLDER,
            kafka_home => KAFKA_HOME,
            service => service,
            bootstrap_path => BOOTSTRAP_PATH,
            exporters => Value::from(minijinja::value::Serde(&EXPORTERS)),
            jvm => info.jvm,
            monitoring => Value::from(minijinja::value::Serde(&cluster.monitoring)),
            monitoring_peers => Value::from(minijinja::value::Serde(
                &cluster.monitoring_nodes().filter(|m| m.name != node.name).collect::<Vec<_>>(),
            )),
            ports => context! {
                client => cluster.network.client_port,
                internal => cluster::INTERNAL_PORT,
                controller => cluster::CONTROLLER_PORT,
                zookeeper_client => cluster::ZK_CLIENT_PORT,
                zookeeper_peer => cluster::ZK_PEER_PORT,
                zookeeper_election => cluster::ZK_ELECTION_PORT,
                connect_rest => cluster::CONNECT_REST_PORT,
                jmx => JMX_PORT,
                jmx_exporter => exporters::JMX_EXPORTER_PORT,
                node_exporter => exporters::NODE_EXPORTER_PORT,
                prometheus => cluster::PROMETHEUS_PORT,
                alertmanager => cluster::ALERTMANAGER_PORT,
                alertmanager_cluster => cluster::ALERTMANAGER_CLUSTER_PORT,
            },
        };
        let mut files = Vec::new();
        let mut add = |name: &str, path: &str, mode: &str, content: String| {
            files.push(NodeFile {
                name: name.to_string(),
                path: path.to_string(),
                mode: mode.to_string(),
                content,
            });
        };
        let template = |name: &str| self.render(name, &ctx);
        if info.jvm {
            let path = format!("/etc/kafka/{config}");
            add(config, &path, "0644", template(&format!("{config}.j2"))?);
        }
        for f in info.extra_files {
            add(f.name, f.path, "0644", template(f.template)?);
        }
        for g in info.generated_files {
            add(g.name, g.path, "0644", (g.content)(cluster));
        }
        add(
            &format!("{service}.service"),
            &format!("/etc/systemd/system/{service}.service"),
            "0644",
            template(&format!("{service}.service.j2"))?,
        );
        if info.jvm {
            add(
                "jmx-exporter.yaml",
                exporters::JMX_EXPORTER_CONFIG,
                "0644",
                template(&format!("jmx-exporter-{service}.yaml.j2"))?,
            );
        }
        add(
            "node-exporter.service",
            "/etc/systemd/system/node-exporter.service",
            "0644",
            template("node-exporter.service.j2")?,
        );
        add(
            "sysctl.conf",
            "/etc/sysctl.d/90-kcluster.conf",
            "0644",
            template("sysctl.conf.j2")?,
        );
        add(
            "bootstrap.sh",
            BOOTSTRAP_PATH,
            "0755",
            template("bootstrap.sh.j2")?,
        );

        let document = self.render(
            "user-data.j2",
            &context! { files => Value::from(minijinja::value::Serde(&files)), ..ctx },
        )?;
        let text = document.clone();
        let (user_data, user_data_gzipped) = if document.len() > USER_DATA_LIMIT {
            (gzip(document.as_bytes()), true)
        } else {
            (document.into_bytes(), false)
        };
        if user_data.len() > USER_DATA_LIMIT {
            return Err(RenderError::UserDataTooLarge {
                node: node.name.clone(),
                bytes: user_data.len(),
            });
        }
        Ok(NodeRender {
            node: node.name.clone(),
            files,
            user_data,
            user_data_gzipped,
            document: text,
        })
    }

    fn render(&self, name: &str, ctx: &Value) -> Result<String, RenderError> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| template_error(name, &e))
    }
}

/// The version part of Kafka's documentation address: `39` for 3.9.2, `43` for 4.3.1.
fn docs_version(version: &str) -> String {
    version.split('.').take(2).collect()
}

/// Reads one template of `--templates`: a regular file (symbolic links followed) of at most
/// `MAX_TEMPLATE_BYTES`. Anything else is refused before it is opened, so a FIFO cannot block and
/// a link to /dev/zero cannot fill memory.
fn read_template(path: &Path) -> Result<String, RenderError> {
    let refuse = |problem: String| RenderError::TemplateFile {
        path: path.to_path_buf(),
        problem,
    };
    let meta = std::fs::metadata(path).map_err(|e| refuse(format!("cannot read it: {e}")))?;
    if meta.is_dir() {
        return Err(refuse("a directory, not a template file".into()));
    }
    if !meta.is_file() {
        return Err(refuse(
            "not a regular file (a FIFO, socket or device); templates are plain files".into(),
        ));
    }
    if meta.len() > MAX_TEMPLATE_BYTES {
        return Err(refuse(format!(
            "is {} bytes; a template is at most {MAX_TEMPLATE_BYTES}",
            meta.len()
        )));
    }
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| std::io::Read::read_to_string(&mut f.take(MAX_TEMPLATE_BYTES + 1), &mut text))
        .map_err(|e| refuse(format!("cannot read it: {e}")))?;
    if text.len() as u64 > MAX_TEMPLATE_BYTES {
        return Err(refuse(format!(
            "grew past {MAX_TEMPLATE_BYTES} bytes while being read"
        )));
    }
    Ok(text)
}

/// A template's error as one sentence: what went wrong and where, the runaway case in words.
fn template_error(name: &str, e: &minijinja::Error) -> RenderError {
    let mut detail = match e.kind() {
        minijinja::ErrorKind::OutOfFuel => format!(
            "needs more rendering work than the {TEMPLATE_FUEL} units a template may use (a runaway loop?)"
        ),
        _ => e.to_string(),
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail.push_str(&format!(": {s}"));
        source = s.source();
    }
    RenderError::Template {
        name: name.to_string(),
        detail,
    }
}

/// Escapes a value for a Java properties file: backslashes, line breaks, leading blanks, and
/// every other control or non-ASCII character as `\uXXXX` (Kafka and ZooKeeper load properties
/// as ISO-8859-1, so raw UTF-8 would arrive garbled).
fn properties_escape(value: String) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{c}' => out.push_str("\\f"),
            ' ' if i == 0 => out.push_str("\\ "),
            c if c.is_control() || !c.is_ascii() => {
                for unit in c.encode_utf16(&mut [0; 2]) {
                    out.push_str(&format!("\\u{unit:04X}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// Escapes a value for the inside of a double-quoted shell string: `\`, `$`, `` ` `` and `"`
/// are the only characters special there (history expansion is off in scripts).
fn shell_escape(value: String) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | '$' | '`' | '"') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A value as a YAML double-quoted string (a JSON string is one), whatever it holds.
fn yaml_string(value: String) -> String {
    serde_json::to_string(&value).unwrap_or_default()
}

/// Gzip with a fixed header (no timestamp), so the same input gives the same bytes.
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

/// Decompresses user-data if it is gzipped (EC2 and cloud-init accept both).
pub fn user_data_text(bytes: &[u8]) -> std::io::Result<String> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(bytes), &mut out)?;
        Ok(out)
    } else {
        String::from_utf8(bytes.to_vec())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
}

#[cfg(test)]
mod tests {
    use super::{Options, Renderer, properties_escape, shell_escape};

    #[test]
    fn undefined_variable_is_named_in_release_builds_too() {
        // Regression: minijinja records what was undefined only in debug mode, which defaults
        // to `cfg!(debug_assertions)`: a release kcluster said "undefined value" and no name.
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::write(dir.path().join("myid.j2"), "{{ node.idd }}\n").expect("template");
        let renderer = Renderer::new(&Options {
            templates_dir: Some(dir.path().to_path_buf()),
            ..Options::default()
        })
        .expect("templates");
        assert!(renderer.env.debug(), "debug info is on whatever the build");
        let yaml = "name: t\nregion: eu-west-1\nzones:\n  - {name: eu-west-1a, cidr: 10.0.0.0/24}\n  - {name: eu-west-1b, cidr: 10.0.1.0/24}\n  - {name: eu-west-1c, cidr: 10.0.2.0/24}\n";
        let cluster = crate::topology::load("t.yaml", yaml.as_bytes())
            .expect("valid")
            .cluster;
        let e = renderer.render_all(&cluster).expect_err("undefined");
        assert!(e.to_string().contains("`node.idd` is undefined"), "{e}");
    }

    #[test]
    fn a_monitoring_node_for_too_many_brokers_is_refused_with_its_size() {
        // Its user-data carries the whole prometheus.yml; 1000 brokers do not fit even gzipped.
        let zones = "zones:\n  - {name: eu-west-1a, cidr: 10.0.0.0/20}\n  - {name: eu-west-1b, cidr: 10.0.16.0/20}\n  - {name: eu-west-1c, cidr: 10.0.32.0/20}\n";
        let renderer = Renderer::new(&Options::default()).expect("templates");
        for (brokers, fits) in [(300, true), (1000, false)] {
            let yaml = format!(
                "name: t\nregion: eu-west-1\n{zones}brokers:\n  count: {brokers}\nmonitoring: {{}}\n"
            );
            let cluster = crate::topology::load("t.yaml", yaml.as_bytes())
                .expect("valid")
                .cluster;
            let node = cluster.monitoring_nodes().next().expect("monitoring node");
            match renderer.render_node(&cluster, node) {
                Ok(r) => assert!(fits && r.user_data_gzipped, "{brokers} brokers"),
                Err(e) => {
                    assert!(!fits, "{brokers} brokers: {e}");
                    assert!(
                        e.to_string().starts_with("monitoring-1: user-data is ")
                            && e.to_string().ends_with("EC2 accepts at most 16384"),
                        "{e}"
                    );
                }
            }
        }
    }

    #[test]
    fn properties_escape_leaves_only_printable_ascii() {
        assert_eq!(properties_escape("plain-value,1".into()), "plain-value,1");
        assert_eq!(
            properties_escape(" a\\b\tc\nd\re\u{c}f".into()),
            "\\ a\\\\b\\tc\\nd\\re\\ff"
        );
        // Kafka reads properties as ISO-8859-1: everything else goes as UTF-16 `\u` escapes.
        assert_eq!(
            properties_escape("é\u{7}🙂".into()),
            "\\u00E9\\u0007\\uD83D\\uDE42"
        );
    }

    #[test]
    fn shell_escape_escapes_what_is_special_inside_double_quotes() {
        assert_eq!(
            shell_escape("https://x/k.tgz?a=1&b='2'".into()),
            "https://x/k.tgz?a=1&b='2'"
        );
        assert_eq!(shell_escape("$a`b`\"c\\".into()), "\\$a\\`b\\`\\\"c\\\\");
    }
}
