//! A rendered cluster as local processes: one JVM per node, each on its own loopback address
//! (one /24 per zone), started from the exact files kcluster renders — `zookeeper.properties`,
//! `myid`, `controller.properties`, `server.properties` and the systemd unit's JVM settings —
//! with only the data and log directories moved into a temporary directory, and a KRaft node's
//! storage formatted as its bootstrap formats it. The Kafka version is the cluster's own. One
//! object owns every process it started; dropping it (a passing test, a failing one, or the test
//! process dying) stops them all.

pub mod clients;
pub mod connect;
pub mod ec2;
pub mod jvm;
pub mod metrics;
pub mod process;
pub mod watcher;
pub mod zk;

use std::fs::File;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kcluster::cluster::{self, Cluster, Metadata, Role};
use kcluster::operations::health::Health;
use kcluster::render::exporters::JMX_EXPORTER_PORT;
use kcluster::render::{JMX_PORT, Options, Renderer};

use self::jvm::{kafka, kafka_version};
use self::process::Watchdog;

/// How long a cluster may take to reach a state it is waiting for (boot, an election).
pub const LIMIT: Duration = Duration::from_secs(120);

pub struct LocalCluster {
    pub cluster: Cluster,
    pub nodes: Vec<LocalNode>,
    /// Holds the rendered files, data directories and logs; removed after the nodes stop.
    dir: tempfile::TempDir,
    /// Held while the cluster exists; dropped last.
    _lock: File,
}

pub struct LocalNode {
    pub name: String,
    pub role: Role,
    pub id: u32,
    pub zone: String,
    pub address: Ipv4Addr,
    /// The rendered systemd unit, from which the JVM command is built at each start.
    unit: String,
    /// Where the rendered properties file was put.
    config: PathBuf,
    /// The node's directory: its rendered files, its data directory (the "volume") and logs.
    home: PathBuf,
    log: PathBuf,
    /// The running JVM's watchdog, which also applies the unit's restart policy; `None` while
    /// the node is down.
    process: Option<Watchdog>,
}

impl LocalNode {
    /// Kafka's `node.id` (KRaft mode).
    pub fn node_id(&self) -> u32 {
        self.role.info().node_id_base + self.id
    }

    /// The properties file the node's JVM starts with (its rendered one, or the one it was
    /// given by [`LocalCluster::reconfigure`]).
    pub fn config_text(&self) -> String {
        std::fs::read_to_string(&self.config).expect("node config")
    }

    /// The systemd unit the node's JVM is built from (its rendered one, or the one it was given
    /// by [`LocalCluster::reconfigure`]).
    pub fn unit_text(&self) -> &str {
        &self.unit
    }

    /// Where the harness put one of the node's rendered files (by its render name).
    pub fn rendered_file(&self, name: &str) -> PathBuf {
        self.home.join("rendered").join(name)
    }

    /// Everything the node's JVM has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl LocalCluster {
    /// Renders every node of `cluster` into a temporary directory, its data volume moved there
    /// too. Starts nothing.
    pub fn render(cluster: &Cluster) -> LocalCluster {
        // Fails early, with the command that fetches them, when Kafka's jars are missing.
        kafka_version(&cluster.kafka.version);
        let lock = process::machine_lock();
        // This cluster's clients and tools are those of the Kafka it runs.
        jvm::use_version(&cluster.kafka.version);
        // The harness runs the JVM nodes; a monitoring node (Prometheus) is not started here.
        let jvms: Vec<&cluster::Node> =
            cluster.nodes.iter().filter(|n| n.role.info().jvm).collect();
        for node in &jvms {
            let info = node.role.info();
            let mut ports = info.member_ports.to_vec();
            ports.extend(info.admin_ports);
            if node.role == Role::Broker {
                ports.push(cluster.network.client_port);
            }
            ports.extend([JMX_PORT, JMX_EXPORTER_PORT]);
            for port in ports {
                if let Err(e) = TcpListener::bind((node.address, port)) {
                    panic!(
                        "{}:{port} is taken ({e}); a node left over from another run? \
                         `ss -ltnp 'sport = :{port}'` shows the process",
                        node.address
                    );
                }
            }
        }
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut nodes = Vec::new();
        for node in jvms {
            let home = dir.path().join(&node.name);
            let data_dir = home.join("data").display().to_string();
            let renderer = Renderer::new(&Options {
                templates_dir: None,
                data_dir: data_dir.clone(),
                plugin_dir: home.join("plugins").display().to_string(),
            })
            .expect("templates load");
            let rendered = renderer.render_node(cluster, node).expect("node renders");
            rendered
                .write_to(&home.join("rendered"))
                .expect("rendered files");
            let file = |name: &str| {
                rendered
                    .file(name)
                    .unwrap_or_else(|| panic!("{} has no rendered {name}", node.name))
            };
            let info = node.role.info();
            let config_name = info.config_file;
            let unit_name = format!("{}.service", info.service);
            let unit = file(&unit_name).content.clone();
            assert_eq!(
                jvm::Unit::parse(&unit).config,
                file(config_name).path,
                "{}: the unit starts a file other than the rendered {config_name}",
                node.name
            );
            if node.role == Role::Zookeeper {
                place_myid(&node.name, &data_dir, &rendered);
            }
            std::fs::create_dir_all(&data_dir).expect("data directory");
            let config = home.join(config_name);
            std::fs::write(&config, &file(config_name).content).expect("config");
            if cluster.metadata == Metadata::Kraft {
                format_storage(cluster, node, &data_dir, &config, &rendered);
            }
            std::fs::create_dir_all(home.join("logs")).expect("log directory");
            nodes.push(LocalNode {
                name: node.name.clone(),
                role: node.role,
                id: node.id,
                zone: node.zone.clone(),
                address: node.address,
                unit,
                config,
                log: home.join("node.log"),
                home,
                process: None,
            });
        }
        LocalCluster {
            cluster: cluster.clone(),
            nodes,
            dir,
            _lock: lock,
        }
    }

    /// Renders and starts the whole cluster: the metadata quorum (ZooKeeper ensemble or KRaft
    /// controllers) until it has a leader, then every broker until Kafka's metadata lists them
    /// all.
    pub fn boot(cluster: &Cluster) -> LocalCluster {
        let mut local = LocalCluster::render(cluster);
        local.start_role(cluster.metadata.quorum_role());
        local.wait_for_quorum();
        local.start_role(Role::Broker);
        local.wait_for_brokers();
        local
    }

    /// Waits until the running members of the metadata quorum have a leader; returns its name.
    pub fn wait_for_quorum(&mut self) -> String {
        match self.cluster.metadata {
            Metadata::Zookeeper => self.wait_for_zookeeper_quorum(),
            Metadata::Kraft => self.wait_for_controller_quorum().leader,
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn index(&self, name: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    pub fn node(&self, name: &str) -> &LocalNode {
        &self.nodes[self.index(name)]
    }

    /// Starts a node's JVM as its rendered unit would (no-op if it runs), restarted after a
    /// failure as the unit's `Restart=on-failure` asks systemd to.
    pub fn start(&mut self, name: &str) {
        let i = self.index(name);
        let node = &mut self.nodes[i];
        if node.process.is_none() {
            let cmd = kafka().service(
                &node.unit,
                &node.config,
                &node.rendered_file("jmx-exporter.yaml"),
                &node.home.join("logs"),
            );
            let unit = jvm::Unit::parse(&node.unit);
            node.process = Some(if unit.restart_on_failure {
                Watchdog::start_restarting(&cmd, &node.log, unit.restart_delay)
            } else {
                Watchdog::start(&cmd, &node.log)
            });
        }
    }

    /// Stops a node's JVM as `systemctl stop` (and so an EC2 stop) does: SIGTERM, which Kafka
    /// and ZooKeeper answer with a clean shutdown (a broker's is controlled: its leaderships move
    /// first); SIGKILL only if it has not exited after `limit`.
    pub fn stop(&mut self, name: &str, limit: Duration) {
        let i = self.index(name);
        if let Some(p) = self.nodes[i].process.take() {
            p.terminate(limit);
        }
    }

    /// Gives a stopped node new files, as its bootstrap writes them at boot from the user-data:
    /// its properties file and its systemd unit (from which the JVM command is built).
    pub fn reconfigure(&mut self, name: &str, config: &str, unit: &str) {
        let i = self.index(name);
        let node = &mut self.nodes[i];
        assert!(
            node.process.is_none(),
            "{name} is reconfigured while it runs"
        );
        std::fs::write(&node.config, config).expect("node config");
        node.unit = unit.to_string();
    }

    /// The node's data directory: its "volume", kept through stops and starts.
    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.node(name).home.join("data")
    }

    /// Where a Connect worker's plugins are installed (its rendered `plugin.path`).
    pub fn plugin_dir(&self, name: &str) -> PathBuf {
        self.node(name).home.join("plugins")
    }

    /// SIGKILLs a node's JVM, as a crash or the loss of its machine would end it.
    pub fn kill(&mut self, name: &str) {
        let i = self.index(name);
        if let Some(p) = self.nodes[i].process.take() {
            p.kill();
        }
    }

    pub fn start_role(&mut self, role: Role) {
        for name in self.names(|n| n.role == role) {
            self.start(&name);
        }
    }

    /// Every node of `zone`, killed at once (the zone's loss); returns their names.
    pub fn kill_zone(&mut self, zone: &str) -> Vec<String> {
        let names = self.names(|n| n.zone == zone);
        for name in &names {
            self.kill(name);
        }
        names
    }

    /// Starts every node of `zone` again, in launch order (the metadata quorum first).
    pub fn start_zone(&mut self, zone: &str) {
        for role in Role::ALL {
            for name in self.names(|n| n.zone == zone && n.role == role) {
                self.start(&name);
            }
        }
    }

    fn names(&self, keep: impl Fn(&LocalNode) -> bool) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| keep(n))
            .map(|n| n.name.clone())
            .collect()
    }

    /// The nodes of `role` that are meant to run: started and not killed by the test (one its
    /// unit is restarting counts).
    pub fn running(&self, role: Role) -> Vec<&LocalNode> {
        self.nodes
            .iter()
            .filter(|n| n.role == role && n.process.is_some())
            .collect()
    }

    /// `bootstrap.servers` for a client: the client listener of every running broker.
    pub fn bootstrap(&self) -> String {
        let port = self.cluster.network.client_port;
        let running = self.running(Role::Broker);
        assert!(!running.is_empty(), "no broker is running");
        running
            .iter()
            .map(|n| format!("{}:{port}", n.address))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Waits until the running ZooKeeper members form a quorum of the whole ensemble: exactly
    /// one leader, every other running member a follower synced to it. Returns the leader.
    pub fn wait_for_zookeeper_quorum(&mut self) -> String {
        let size = self.cluster.zookeepers().count();
        let what = format!(
            "a ZooKeeper quorum of the {} running members of {size} (one leader, the rest synced)",
            self.running(Role::Zookeeper).len()
        );
        self.wait(&what, LIMIT, |c| {
            let live = c.running(Role::Zookeeper);
            let mut seen = Vec::new();
            let mut leaders = Vec::new();
            let mut followers = 0;
            for member in &live {
                let stats = match zk::mntr(member.address) {
                    Ok(stats) => stats,
                    Err(err) => {
                        seen.push(format!("{}: {err}", member.name));
                        continue;
                    }
                };
                let get = |k: &str| stats.get(k).map(String::as_str).unwrap_or("?");
                let state = get("zk_server_state");
                seen.push(format!(
                    "{}: {state}, quorum size {}, synced followers {}",
                    member.name,
                    get("zk_quorum_size"),
                    get("zk_synced_followers")
                ));
                if get("zk_quorum_size") != size.to_string() {
                    continue;
                }
                match state {
                    "leader" if get("zk_synced_followers") == (live.len() - 1).to_string() => {
                        leaders.push(member.name.clone())
                    }
                    "follower" => followers += 1,
                    _ => {}
                }
            }
            match &leaders[..] {
                [leader] if followers == live.len() - 1 => Ok(leader.clone()),
                _ => Err(seen.join("; ")),
            }
        })
    }

    /// `bootstrap.controllers` for an admin client: the controller listener of every running
    /// controller.
    pub fn controllers(&self) -> String {
        let running = self.running(Role::Controller);
        assert!(!running.is_empty(), "no controller is running");
        running
            .iter()
            .map(|n| format!("{}:{}", n.address, cluster::CONTROLLER_PORT))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The KRaft metadata quorum as the running controllers describe it, or why they cannot.
    pub fn controller_quorum(&self) -> Result<Quorum, String> {
        let v = clients::probe(&["quorum", &self.controllers()], Duration::from_secs(40))?;
        let ids = |key: &str| -> Vec<(u32, i64)> {
            v[key]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|r| {
                            (
                                r["id"].as_u64().unwrap_or(u64::MAX) as u32,
                                r["log_end_offset"].as_i64().unwrap_or(-1),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let leader_id = v["leader"].as_i64().unwrap_or(-1);
        let leader = self
            .nodes
            .iter()
            .find(|n| n.role == Role::Controller && i64::from(n.node_id()) == leader_id)
            .map(|n| n.name.clone())
            .ok_or_else(|| format!("the leader {leader_id} is no controller: {v}"))?;
        Ok(Quorum {
            leader,
            epoch: v["epoch"].as_i64().unwrap_or(-1),
            high_watermark: v["high_watermark"].as_i64().unwrap_or(-1),
            voters: ids("voters"),
            observers: ids("observers"),
        })
    }

    /// Waits until the running controllers form the quorum of every configured voter: one leader
    /// among them, every voter listed, every running voter's log replicated up to the leader's
    /// high watermark.
    pub fn wait_for_controller_quorum(&mut self) -> Quorum {
        let mut voters: Vec<u32> = self.cluster.controllers().map(|n| n.node_id()).collect();
        voters.sort_unstable();
        let what = format!(
            "a KRaft quorum of voters {voters:?} led by one of the {} running controllers",
            self.running(Role::Controller).len()
        );
        self.wait(&what, LIMIT, |c| {
            let q = c.controller_quorum()?;
            let running: Vec<u32> = c
                .running(Role::Controller)
                .iter()
                .map(|n| n.node_id())
                .collect();
            let listed: Vec<u32> = q.voters.iter().map(|(id, _)| *id).collect();
            let lagging: Vec<&(u32, i64)> = q
                .voters
                .iter()
                .filter(|(id, end)| running.contains(id) && *end < q.high_watermark)
                .collect();
            let leader_runs = c
                .running(Role::Controller)
                .iter()
                .any(|n| n.name == q.leader);
            if listed == voters && leader_runs && lagging.is_empty() && q.high_watermark > 0 {
                Ok(q)
            } else {
                Err(format!("{q:?}"))
            }
        })
    }

    /// Waits until Kafka's metadata lists exactly the running brokers — in every running broker's
    /// own metadata cache, each naming the same controller — and returns the cluster's description
    /// (`Probe cluster`). One broker's view is not enough: after a restart the others' caches lag,
    /// and in ZooKeeper mode the controller places a new topic on the brokers *its* cache holds.
    pub fn wait_for_brokers(&mut self) -> serde_json::Value {
        let mut expected: Vec<u64> = self
            .running(Role::Broker)
            .iter()
            .map(|n| u64::from(n.id))
            .collect();
        expected.sort_unstable();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let network = ec2::health_of(&self.cluster);
        let what = format!("every broker's metadata to list brokers {expected:?}");
        self.wait(&what, LIMIT, |c| {
            let mut controllers = Vec::new();
            for broker in c.running(Role::Broker) {
                let view = runtime.block_on(network.kafka(&[broker.address]))?;
                let mut ids: Vec<u64> = view
                    .brokers
                    .iter()
                    .filter_map(|id| u64::try_from(*id).ok())
                    .collect();
                ids.sort_unstable();
                if ids != expected || view.controller.is_none() {
                    return Err(format!("{} sees {view:?}", broker.name));
                }
                controllers.push(view.controller);
            }
            controllers.dedup();
            if controllers.len() != 1 {
                return Err(format!(
                    "the brokers name different controllers: {controllers:?}"
                ));
            }
            let v = clients::probe(&["cluster", &c.bootstrap()], Duration::from_secs(60))?;
            let ids: Vec<u64> = v["brokers"]
                .as_array()
                .map(|a| a.iter().filter_map(|b| b["id"].as_u64()).collect())
                .unwrap_or_default();
            if ids == expected && v["controller"].is_u64() {
                Ok(v)
            } else {
                Err(format!("{v}"))
            }
        })
    }

    /// Polls `probe` until it succeeds, for at most `limit`; fails at once if a node that should
    /// be running has exited.
    pub fn wait<T>(
        &mut self,
        what: &str,
        limit: Duration,
        mut probe: impl FnMut(&LocalCluster) -> Result<T, String>,
    ) -> T {
        match self.poll(limit, &mut probe) {
            Ok(v) => v,
            Err(last) => self.fail(&format!(
                "timed out after {limit:?} waiting for {what}; last seen: {last}"
            )),
        }
    }

    /// Polls `probe` until it succeeds or `limit` passes; `Err` is the last thing it said.
    /// Fails the test at once if a node that should be running has exited.
    pub fn poll<T>(
        &mut self,
        limit: Duration,
        mut probe: impl FnMut(&LocalCluster) -> Result<T, String>,
    ) -> Result<T, String> {
        let deadline = Instant::now() + limit;
        loop {
            self.check_alive();
            match probe(self) {
                Ok(v) => return Ok(v),
                Err(last) if Instant::now() >= deadline => return Err(last),
                Err(_) => std::thread::sleep(Duration::from_millis(500)),
            }
        }
    }

    /// Fails the test if a node that should be running has exited for good (without a restart
    /// policy, or crash-looping past it).
    pub fn check_alive(&mut self) {
        let exited = self.nodes.iter_mut().find_map(|n| {
            let status = n.process.as_mut().and_then(Watchdog::exited)?;
            Some(format!("{} exited on its own ({status})", n.name))
        });
        if let Some(exited) = exited {
            self.fail(&exited);
        }
    }

    /// Fails the test with `message` and the end of every node's log.
    pub fn fail(&self, message: &str) -> ! {
        let mut text = message.to_string();
        for n in &self.nodes {
            let log = std::fs::read_to_string(&n.log).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(15)..].join("\n");
            text.push_str(&format!(
                "\n--- {} ({}), last lines of its log:\n{tail}",
                n.name,
                n.log.display()
            ));
        }
        panic!("{text}");
    }
}

/// The KRaft metadata quorum as the controllers describe it.
#[derive(Debug, Clone)]
pub struct Quorum {
    /// The leader's node name (`controller-2`).
    pub leader: String,
    pub epoch: i64,
    pub high_watermark: i64,
    /// (node.id, log end offset) of every voter, by id.
    pub voters: Vec<(u32, i64)>,
    /// (node.id, log end offset) of every observer (the brokers), by id.
    pub observers: Vec<(u32, i64)>,
}

/// The bootstrap formats a KRaft node's log directory with `kafka-storage format` and the
/// cluster's id, once; the harness runs the same command (Kafka's `StorageTool`, which
/// `kafka-storage.sh` runs) on the node's local copy of its rendered configuration, after checking
/// that the script still runs it that way.
fn format_storage(
    cluster: &Cluster,
    node: &kcluster::cluster::Node,
    data_dir: &str,
    config: &Path,
    rendered: &kcluster::render::NodeRender,
) {
    let bootstrap = &rendered.file("bootstrap.sh").expect("bootstrap.sh").content;
    let id = cluster.kraft_cluster_id();
    let config_path = &rendered
        .file(node.role.info().config_file)
        .expect("config")
        .path;
    for line in [
        format!("readonly CLUSTER_ID=\"{id}\""),
        format!("readonly CONFIG=\"{config_path}\""),
        format!("readonly DATA_DIR=\"{data_dir}\""),
        "\"${KAFKA_HOME}/bin/kafka-storage.sh\" format --cluster-id \"${CLUSTER_ID}\" \
         --config \"${CONFIG}\" --ignore-formatted"
            .to_string(),
        "  format_storage\n".to_string(),
    ] {
        assert!(
            bootstrap.contains(&line),
            "{}: the bootstrap script no longer contains `{line}`; update the harness to format \
             the storage the way the script does:\n{bootstrap}",
            node.name
        );
    }
    let dir = Path::new(data_dir).join("kafka");
    std::fs::create_dir_all(&dir).expect("log directory");
    let out = crate::support::run_bounded(
        kafka()
            .tool("kafka.tools.StorageTool")
            .args(["format", "--cluster-id", &id, "--config"])
            .arg(config)
            .arg("--ignore-formatted"),
        Duration::from_secs(120),
    );
    assert!(
        out.status.success() && dir.join("meta.properties").exists(),
        "{}: kafka-storage format failed ({}):\n{}{}",
        node.name,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The bootstrap script installs the rendered /etc/kafka/myid as <data dir>/zookeeper/myid;
/// the harness does the same, after checking that the script still does.
fn place_myid(node: &str, data_dir: &str, rendered: &kcluster::render::NodeRender) {
    let bootstrap = &rendered.file("bootstrap.sh").expect("bootstrap.sh").content;
    let myid = rendered.file("myid").expect("myid");
    assert_eq!(myid.path, "/etc/kafka/myid");
    assert!(
        bootstrap.contains(&format!("readonly DATA_DIR=\"{data_dir}\""))
            && bootstrap.contains("/etc/kafka/myid \"${DATA_DIR}/zookeeper/myid\""),
        "{node}: the bootstrap script no longer installs myid as <data dir>/zookeeper/myid; \
         update the harness to place it where the script does:\n{bootstrap}"
    );
    let dir = Path::new(data_dir).join("zookeeper");
    std::fs::create_dir_all(&dir).expect("ZooKeeper data directory");
    std::fs::write(dir.join("myid"), &myid.content).expect("myid");
}
