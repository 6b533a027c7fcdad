//! Command-line interface: the arguments, and one function per subcommand that turns them into
//! calls of the library. Only this module and `main` print or pick exit codes.

pub mod commands;
pub mod output;
pub mod terminal;

use std::io::Read;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::error::{Error, Result};
use crate::render::{self, Renderer};
use crate::topology::diagnostic::{Diagnostic, FieldPath, Report};
use crate::topology::{self, Loaded};

#[derive(Parser, Debug)]
#[command(
    name = "kcluster",
    version,
    about = "Apache Kafka (ZooKeeper mode) on EC2 from one YAML topology, with racks that are real"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check a topology file; report every problem at once (exit 0 valid, 1 invalid).
    Validate(ValidateArgs),
    /// Write every file each node gets into DIR/<node-name>/.
    Render(RenderArgs),
    /// Write what Prometheus and Grafana need to watch the cluster into DIR: prometheus.yml
    /// (every node's exporters as targets), the alert rules and a dashboard.
    Monitoring(MonitoringArgs),
    /// Print the JSON Schema of the topology file.
    Schema,
    /// Show what apply would do: read-only (exit 0; with --detailed-exitcode 2 when there are changes).
    Plan(PlanArgs),
    /// Create or converge the cluster in EC2, then prove it (safe to re-run).
    Apply(ApplyArgs),
    /// Remove every resource carrying the cluster's tag.
    Destroy(DestroyArgs),
    /// Show the cluster's nodes as they run in EC2.
    Status(StatusArgs),
    /// Prove rack awareness: topology rules, Kafka's own replica assignment with each zone lost,
    /// and the live cluster in EC2.
    Check(CheckArgs),
    /// Print the client settings for an application in one zone (a properties file).
    ClientConfig(ClientConfigArgs),
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("client").required(true).args(["producer", "consumer", "admin"])))]
pub struct ClientConfigArgs {
    #[command(flatten)]
    pub file: FileArg,
    /// The zone the application runs in (consumers fetch from replicas there).
    #[arg(long)]
    pub zone: String,
    /// Settings for a producer: durable defaults and a buffer sized by --write-rate and --ride-out.
    #[arg(long)]
    pub producer: bool,
    /// Settings for a consumer.
    #[arg(long)]
    pub consumer: bool,
    /// Settings for an admin client.
    #[arg(long)]
    pub admin: bool,
    /// The producer's write rate, e.g. `50MB/s` (MB and MiB both mean MiB).
    #[arg(long, value_name = "RATE", requires = "producer", value_parser = crate::render::client_config::parse_rate)]
    pub write_rate: Option<u64>,
    /// The longest disruption send() should ride out without blocking, e.g. `30s`.
    #[arg(long, value_name = "DURATION", requires = "producer", value_parser = parse_ride_out)]
    pub ride_out: Option<u64>,
    /// The application's JVM heap (`-Xmx`), e.g. `2g`: warns when the buffer would not fit.
    #[arg(long, value_name = "SIZE", requires = "producer", value_parser = crate::render::client_config::parse_size)]
    pub heap: Option<u64>,
}

fn parse_ride_out(text: &str) -> std::result::Result<u64, String> {
    match crate::render::client_config::parse_seconds(text)? {
        0 => Err("a disruption to ride out lasts at least 1 s".into()),
        s => Ok(s),
    }
}

/// How to reach AWS: the default credential chain, plus these overrides. Every setting that an
/// environment variable can give is checked like a flag.
#[derive(Args, Debug, Clone)]
pub struct AwsArgs {
    /// Named profile from ~/.aws/config; given here, it decides the credentials even when
    /// AWS_ACCESS_KEY_ID is set (AWS_PROFILE, as in the AWS CLI, does not beat those keys).
    #[arg(long)]
    pub profile: Option<String>,
    /// Endpoint of every AWS service kcluster calls (e.g. a local mock); AWS_ENDPOINT_URL, or
    /// AWS_ENDPOINT_URL_EC2, _SSM and _STS for one service, work too.
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Print the number of AWS API requests by operation when done.
    #[arg(long)]
    pub api_calls: bool,
    /// Seconds between polls while waiting for instances.
    #[arg(
        long,
        default_value = "5",
        hide = true,
        env = "KCLUSTER_POLL_SECONDS",
        value_parser = seconds("KCLUSTER_POLL_SECONDS", 0.0, 60.0)
    )]
    pub poll_seconds: f64,
    /// Longest wait, in seconds, for instances to reach a state or for EC2 to release a network
    /// interface or security group.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value = "900",
        env = "KCLUSTER_WAIT_SECONDS",
        value_parser = seconds("KCLUSTER_WAIT_SECONDS", 1.0, 86_400.0)
    )]
    pub wait_seconds: f64,
    /// Longest wait, in seconds, for one answer from AWS (connecting included).
    #[arg(
        long,
        value_name = "SECONDS",
        default_value = "30",
        env = "KCLUSTER_AWS_TIMEOUT_SECONDS",
        value_parser = seconds("KCLUSTER_AWS_TIMEOUT_SECONDS", 1.0, 600.0)
    )]
    pub aws_timeout_seconds: f64,
}

/// A parser of a number of seconds from `min` to `max`, for a flag that `env` can also set: NaN,
/// infinities and out-of-range values are refused with a sentence that names both.
fn seconds(
    env: &'static str,
    min: f64,
    max: f64,
) -> impl Fn(&str) -> std::result::Result<f64, String> + Clone + Send + Sync + 'static {
    move |text: &str| match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (min..=max).contains(&v) => Ok(v),
        _ => Err(format!(
            "expected a number of seconds from {min} to {max} (from the flag or {env}), got `{text}`"
        )),
    }
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    pub file: FileArg,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub templates: TemplatesArg,
    /// Exit 0 with no changes, 1 on error, 2 with changes.
    #[arg(long)]
    pub detailed_exitcode: bool,
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
    /// Write the reassignment `apply --rebalance` would start now (drains included) to FILE, in
    /// the JSON format of Kafka's `kafka-reassign-partitions.sh`; reads the running cluster.
    #[arg(long, value_name = "FILE")]
    pub reassignment_out: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub moves: MoveRateArg,
}

#[derive(Args, Debug)]
pub struct MoveRateArg {
    /// How fast replicas a drain or rebalance moves may copy, per broker and direction, e.g.
    /// `50MiB/s` (Kafka's replication throttle, removed once the moves are done), or `none`
    /// for no throttle [default: 40MiB/s]. Given to plan, it reads the cluster's throttles.
    #[arg(long = "move-rate", value_name = "RATE", value_parser = crate::kafka::throttle::MoveRate::parse)]
    pub move_rate: Option<crate::kafka::throttle::MoveRate>,
}

#[derive(Args, Debug)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub file: FileArg,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub templates: TemplatesArg,
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long)]
    pub yes: bool,
    /// AWS requests in flight at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallelism: u16,
    /// Remove the cluster's lease left by a run that was killed, then take it.
    #[arg(long)]
    pub break_lease: bool,
    /// Change nodes without reading the cluster's health first: only for a cluster that is
    /// already down (a running one loses availability, and may lose data, without the gates).
    #[arg(long)]
    pub skip_health_gates: bool,
    /// Longest wait, in seconds, of one health gate of a roll (a node's ensemble synced, its
    /// partitions replicated) before the roll stops where it is.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value = "900",
        env = "KCLUSTER_GATE_SECONDS",
        value_parser = seconds("KCLUSTER_GATE_SECONDS", 1.0, 86_400.0)
    )]
    pub gate_seconds: f64,
    /// Move replicas so that every broker holds within one of an even share (as far as racks
    /// allow), new brokers included, through Kafka's reassignment; waits as a drain does.
    #[arg(long, conflicts_with = "skip_health_gates")]
    pub rebalance: bool,
    /// With --skip-health-gates, terminate brokers the topology drops without moving their
    /// replicas first: for a cluster that is down; replicas held nowhere else are lost.
    #[arg(long, requires = "skip_health_gates")]
    pub accept_data_loss: bool,
    #[command(flatten)]
    pub moves: MoveRateArg,
}

#[derive(Args, Debug)]
pub struct DestroyArgs {
    /// The topology file; or name the cluster with --cluster and --region.
    #[arg(
        short = 'f',
        long = "file",
        value_name = "FILE",
        conflicts_with = "cluster",
        required_unless_present = "cluster"
    )]
    pub file: Option<String>,
    /// The cluster name (with --region), when the topology file is gone.
    #[arg(long, requires = "region")]
    pub cluster: Option<String>,
    /// The region (with --cluster).
    #[arg(long)]
    pub region: Option<String>,
    #[command(flatten)]
    pub aws: AwsArgs,
    /// Do not ask to type the cluster name.
    #[arg(long)]
    pub yes: bool,
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallelism: u16,
    /// Remove the cluster's lease left by a run that was killed, then take it.
    #[arg(long)]
    pub break_lease: bool,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub file: FileArg,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
    /// Show only each node's health from its exporter; do not ask EC2 for its instances.
    #[arg(long)]
    pub health_only: bool,
    /// Read NODE's metrics at HOST:PORT instead of its fixed address (e.g. through an SSH
    /// tunnel); may be given for several nodes.
    #[arg(long = "endpoint", value_name = "NODE=HOST:PORT", value_parser = parse_endpoint)]
    pub endpoints: Vec<(String, std::net::SocketAddr)>,
    /// Seconds to wait for each node's metrics.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=60))]
    pub health_timeout: u64,
}

fn parse_endpoint(s: &str) -> std::result::Result<(String, std::net::SocketAddr), String> {
    let (node, address) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not NODE=HOST:PORT"))?;
    let address = address
        .parse()
        .map_err(|_| format!("`{address}` is not an IPv4 HOST:PORT, e.g. 127.0.0.1:11001"))?;
    Ok((node.to_string(), address))
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    pub file: FileArg,
    #[command(flatten)]
    pub aws: AwsArgs,
    /// Partitions of the simulated topic (default: num.partitions, at least the broker count).
    #[arg(long)]
    pub partitions: Option<u32>,
    /// Replication factor of the simulated topic (default: default.replication.factor).
    #[arg(long)]
    pub replication_factor: Option<u32>,
    /// Check the topology only; do not look at EC2.
    #[arg(long)]
    pub offline: bool,
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Args, Debug)]
pub struct FileArg {
    /// The topology file; `-` reads standard input.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    #[default]
    Text,
    Json,
}

#[derive(Args, Debug)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub file: FileArg,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Args, Debug)]
pub struct TemplatesArg {
    /// A directory whose templates replace the built-in ones of the same name.
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct RenderArgs {
    #[command(flatten)]
    pub file: FileArg,
    /// Where to write; one sub-directory per node.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    #[command(flatten)]
    pub templates: TemplatesArg,
}

#[derive(Args, Debug)]
pub struct MonitoringArgs {
    #[command(flatten)]
    pub file: FileArg,
    /// Where to write prometheus.yml, kcluster-alerts.yml and grafana-dashboard.json.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            crate::errln!("error: {e}");
            e.exit_code()
        }
    }
}

pub fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Validate(a) => validate(a),
        Command::Render(a) => render_cmd(a),
        Command::Monitoring(a) => monitoring_cmd(a),
        Command::Schema => {
            let schema = serde_json::to_string_pretty(&topology::json_schema())
                .map_err(|e| Error::Failed(e.to_string()))?;
            crate::outln!("{schema}");
            Ok(0)
        }
        Command::Plan(a) => block_on(commands::plan(a)),
        Command::Apply(a) => block_on(commands::apply(a)),
        Command::Destroy(a) => block_on(commands::destroy(a)),
        Command::Status(a) => block_on(commands::status(a)),
        Command::Check(a) => block_on(commands::check(a)),
        Command::ClientConfig(a) => client_config(a),
    }
}

fn block_on<F: std::future::Future<Output = Result<i32>>>(f: F) -> Result<i32> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Failed(format!("cannot start the async runtime: {e}")))?
        .block_on(f)
}

/// Reads the topology bytes from a file or stdin.
pub fn read_input(file: &str) -> Result<Vec<u8>> {
    if file == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .take(topology_limit())
            .read_to_end(&mut buf)
            .map_err(|source| Error::Read {
                path: PathBuf::from("<stdin>"),
                source,
            })?;
        return Ok(buf);
    }
    let f = std::fs::File::open(file).map_err(|source| Error::Read {
        path: PathBuf::from(file),
        source,
    })?;
    let mut buf = Vec::new();
    f.take(topology_limit())
        .read_to_end(&mut buf)
        .map_err(|source| Error::Read {
            path: PathBuf::from(file),
            source,
        })?;
    Ok(buf)
}

/// Reads one byte past the limit so that an oversized file is reported, not truncated.
fn topology_limit() -> u64 {
    topology::MAX_FILE_BYTES as u64 + 1
}

fn display_name(file: &str) -> &str {
    if file == "-" { "<stdin>" } else { file }
}

/// Loads and validates a topology; warnings go to stderr.
/// Loads a topology for a command that only reads (check, status, destroy): the file must be
/// valid; the rack-awareness rules are `check`'s to report.
pub fn load(file: &str) -> Result<Loaded> {
    let bytes = read_input(file)?;
    let loaded = topology::load(display_name(file), &bytes).map_err(Error::Invalid)?;
    if !loaded.warnings.diagnostics.is_empty() {
        crate::errln!("{}", loaded.warnings);
    }
    Ok(loaded)
}

/// Loads a topology for a command that builds from it (render, plan, apply): as `validate`
/// does, so a layout `check` fails (and the topology does not accept) is refused before anything
/// is rendered or created.
pub fn load_to_build(file: &str) -> Result<Loaded> {
    let bytes = read_input(file)?;
    let loaded =
        with_rack_rules(topology::load(display_name(file), &bytes)).map_err(Error::Invalid)?;
    if !loaded.warnings.diagnostics.is_empty() {
        crate::errln!("{}", loaded.warnings);
    }
    Ok(loaded)
}

/// Adds `check`'s rules on the topology, with `check`'s severities, to a loaded file's
/// diagnostics; an error among them makes the file invalid, as it makes `check` fail.
fn with_rack_rules(
    result: std::result::Result<Loaded, Report>,
) -> std::result::Result<Loaded, Report> {
    let loaded = result?;
    let diagnostics = [
        loaded.warnings.diagnostics.clone(),
        rack_rules(&loaded.cluster),
    ]
    .concat();
    let report = Report::new(loaded.warnings.file.clone(), diagnostics);
    if report.has_errors() {
        Err(report)
    } else {
        Ok(Loaded {
            warnings: report,
            ..loaded
        })
    }
}

fn validate(a: ValidateArgs) -> Result<i32> {
    let bytes = read_input(&a.file.file)?;
    let result = with_rack_rules(topology::load(display_name(&a.file.file), &bytes));
    let report = match &result {
        Ok(l) => &l.warnings,
        Err(r) => r,
    };
    match a.output {
        Output::Json => {
            let json = serde_json::json!({
                "valid": result.is_ok(),
                "file": report.file,
                "diagnostics": report.diagnostics,
            });
            crate::outln!(
                "{}",
                serde_json::to_string_pretty(&json).unwrap_or_default()
            );
        }
        Output::Text => match &result {
            Ok(l) => {
                if !report.diagnostics.is_empty() {
                    crate::errln!("{report}");
                }
                let c = &l.cluster;
                let counts: Vec<String> = crate::cluster::Role::ALL
                    .into_iter()
                    .map(|r| (r.info().noun, c.nodes_of(r).count()))
                    .filter(|(_, n)| *n > 0)
                    .map(|(noun, n)| format!("{n} {noun}{}", if n == 1 { "" } else { "s" }))
                    .collect();
                let nodes = match counts.split_last() {
                    Some((last, [])) => last.clone(),
                    Some((last, others)) => format!("{} and {last}", others.join(", ")),
                    None => "no nodes".to_string(),
                };
                crate::outln!(
                    "{}: valid: cluster {} in {} (Kafka {}), {nodes} over {} zones",
                    report.file,
                    c.name,
                    c.region,
                    c.kafka.version,
                    c.zones.len()
                );
            }
            Err(r) => crate::errln!("{r}"),
        },
    }
    Ok(if result.is_ok() { 0 } else { 1 })
}

/// The rack-awareness rules of `check` with `check`'s severities, except the two the topology
/// validation reports itself (replication factor above the zone count; only two zones).
fn rack_rules(cluster: &crate::cluster::Cluster) -> Vec<Diagnostic> {
    crate::check::static_findings(cluster)
        .into_iter()
        .filter(|f| {
            ![
                crate::check::rules::REPLICATION_FACTOR_ZONES,
                crate::check::rules::ZOOKEEPER_QUORUM_ZONES,
                crate::check::rules::CONTROLLER_QUORUM_ZONES,
            ]
            .contains(&f.rule)
        })
        .map(|f| {
            let message = format!("[{}] {}", f.rule, f.message);
            let diagnostic = match f.severity {
                crate::check::Severity::Error => Diagnostic::error(FieldPath::root(), message),
                crate::check::Severity::Warning => Diagnostic::warning(FieldPath::root(), message),
            };
            diagnostic.help(f.fix)
        })
        .collect()
}

fn client_config(a: ClientConfigArgs) -> Result<i32> {
    use crate::render::client_config::{ClientKind, Disruption, render};
    let loaded = load(&a.file.file)?;
    let kind = if a.producer {
        ClientKind::Producer
    } else if a.consumer {
        ClientKind::Consumer
    } else {
        ClientKind::Admin
    };
    let disruption = match (a.write_rate, a.ride_out) {
        (Some(bytes_per_second), Some(seconds)) => Some(Disruption {
            bytes_per_second,
            seconds,
        }),
        _ => None,
    };
    let config = render(&loaded.cluster, &a.zone, kind, disruption, a.heap)
        .map_err(|e| Error::Usage(e.to_string()))?;
    for w in &config.warnings {
        crate::errln!("warning: {w}");
    }
    output::out(&config.properties);
    Ok(0)
}

fn monitoring_cmd(a: MonitoringArgs) -> Result<i32> {
    let loaded = load_to_build(&a.file.file)?;
    let files = crate::render::monitoring::files(&loaded.cluster);
    crate::render::monitoring::write_to(&files, &a.out).map_err(|source| Error::Write {
        path: a.out.clone(),
        source,
    })?;
    crate::outln!(
        "wrote {} for cluster {} into {}",
        files.iter().map(|f| f.name).collect::<Vec<_>>().join(", "),
        loaded.cluster.name,
        a.out.display()
    );
    Ok(0)
}

fn render_cmd(a: RenderArgs) -> Result<i32> {
    let loaded = load_to_build(&a.file.file)?;
    let renderer = Renderer::new(&render::Options {
        templates_dir: a.templates.templates.clone(),
        ..Default::default()
    })?;
    let nodes = renderer.render_all(&loaded.cluster)?;
    for n in &nodes {
        let dir = a.out.join(&n.node);
        n.write_to(&dir).map_err(|source| Error::Write {
            path: dir.clone(),
            source,
        })?;
    }
    crate::outln!(
        "rendered {} nodes of cluster {} into {}",
        nodes.len(),
        loaded.cluster.name,
        a.out.display()
    );
    Ok(0)
}
