//! Command-line interface: the arguments, and one function per subcommand that turns them into
//! calls of the library. Only this module and `main` print or pick exit codes.

use std::io::{Read, Write};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::error::{Error, Result};
use crate::render::{self, Renderer};
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
    /// Print the JSON Schema of the topology file.
    Schema,
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

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // A closed pipe (e.g. `| head`) is not worth a message.
            let _ = writeln!(std::io::stderr(), "error: {e}");
            e.exit_code()
        }
    }
}

pub fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Validate(a) => validate(a),
        Command::Render(a) => render_cmd(a),
        Command::Schema => {
            let schema = serde_json::to_string_pretty(&topology::json_schema())
                .map_err(|e| Error::Failed(e.to_string()))?;
            println!("{schema}");
            Ok(0)
        }
    }
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
pub fn load(file: &str) -> Result<Loaded> {
    let bytes = read_input(file)?;
    let loaded = topology::load(display_name(file), &bytes).map_err(Error::Invalid)?;
    if !loaded.warnings.diagnostics.is_empty() {
        eprintln!("{}", loaded.warnings);
    }
    Ok(loaded)
}

fn validate(a: ValidateArgs) -> Result<i32> {
    let bytes = read_input(&a.file.file)?;
    let result = topology::load(display_name(&a.file.file), &bytes);
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
            println!(
                "{}",
                serde_json::to_string_pretty(&json).unwrap_or_default()
            );
        }
        Output::Text => match &result {
            Ok(l) => {
                if !report.diagnostics.is_empty() {
                    eprintln!("{report}");
                }
                let c = &l.cluster;
                println!(
                    "{}: valid: cluster {} in {}, {} ZooKeeper nodes and {} brokers over {} zones",
                    report.file,
                    c.name,
                    c.region,
                    c.zookeepers().count(),
                    c.brokers().count(),
                    c.zones.len()
                );
            }
            Err(r) => eprintln!("{r}"),
        },
    }
    Ok(if result.is_ok() { 0 } else { 1 })
}

fn render_cmd(a: RenderArgs) -> Result<i32> {
    let loaded = load(&a.file.file)?;
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
    println!(
        "rendered {} nodes of cluster {} into {}",
        nodes.len(),
        loaded.cluster.name,
        a.out.display()
    );
    Ok(0)
}
