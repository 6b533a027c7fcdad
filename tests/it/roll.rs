//! kcluster's own executor rolls a real cluster: the in-process fake EC2 stands for the account,
//! and its instance stops and starts stop and start the local node processes (each keeping its
//! data directory as its volume, and taking its new files from the user-data kcluster set while
//! it was stopped, as the bootstrap does at boot). The health gates read the nodes over their
//! loopback addresses, which are the topology's own addresses here. Under a continuous
//! `acks=all` producer and an independent watcher sampling every partition's ISR through Kafka's
//! Admin API: a broker override rolls over every broker and a heap change over the ZooKeeper
//! ensemble, each node restarted once, the controller and the leader last, no partition ever
//! below `min.insync.replicas`; the same broker roll without the gates is caught by the watcher;
//! and every acknowledged record is read back exactly once.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use kcluster::apply::{Gates, Settings, execute};
use kcluster::cluster::{Ami, Cluster, Role};
use kcluster::ec2::fake::FakeEc2;
use kcluster::ec2::{
    Address, DataVolumeSpec, DryRun, Ec2, Ec2Result, Image, Instance, InstanceChange, InstanceSpec,
    InterfaceSpec, NetworkInterface, RouteTable, Rule, SecurityGroup, SecurityGroupSpec, Subnet,
    Tags, Volume, VolumeSize, tags,
};
use kcluster::health::{Health, Network};
use kcluster::progress::Silent;
use kcluster::render::{Options, Renderer, user_data_text};
use kcluster::workflow::make_plan;

use crate::local::{LocalCluster, clients, zk};
use crate::support;

const IMAGE: &str = "ami-0123456789abcdef0";
/// Where the node's data volume is mounted on EC2, as the rendered files name it.
const VOLUME_MOUNT: &str = "/var/lib/kcluster";
const TOPIC: &str = "rolled";
const MIN_ISR: usize = 2;

/// The fake EC2 with the local cluster behind it: stopping an instance stops its node (SIGTERM,
/// as `systemctl stop` at shutdown), starting it starts the node with the files its user-data
/// holds now. Time passes for the fake whenever kcluster looks (instances boot, volumes attach).
struct LocalEc2 {
    inner: FakeEc2,
    local: Mutex<LocalCluster>,
    /// The nodes stopped, in order.
    stopped: Mutex<Vec<String>>,
    /// When each node was last started (wall clock, as Kafka's timestamps are).
    started: Mutex<BTreeMap<String, SystemTime>>,
    /// For each KRaft controller stopped: how many of the other voters were caught up with the
    /// leader since their own last start, as the stop came (the test's own reading of
    /// DescribeQuorum: fewer than a majority means the stop cost the quorum).
    quorum_at_stop: Mutex<Vec<(String, usize)>>,
}

impl LocalEc2 {
    fn new(inner: FakeEc2, local: LocalCluster) -> LocalEc2 {
        LocalEc2 {
            inner,
            local: Mutex::new(local),
            stopped: Mutex::default(),
            started: Mutex::default(),
            quorum_at_stop: Mutex::default(),
        }
    }

    /// The controllers other than `stopping` that run and have had the leader's whole log since
    /// they last started (the leader counts if it runs); 0 when no leader answers.
    async fn caught_up_without(&self, stopping: &str) -> usize {
        let (controllers, port): (Vec<(String, i32, Ipv4Addr, bool)>, u16) = {
            let local = self.local.lock().expect("local");
            let running: Vec<String> = local
                .running(Role::Controller)
                .iter()
                .map(|n| n.name.clone())
                .collect();
            (
                local
                    .nodes
                    .iter()
                    .filter(|n| n.role == Role::Controller)
                    .map(|n| {
                        let up = running.contains(&n.name);
                        (n.name.clone(), n.node_id() as i32, n.address, up)
                    })
                    .collect(),
                local.cluster.network.client_port,
            )
        };
        let network = Network {
            client_port: port,
            timeout: Duration::from_secs(3),
        };
        let addresses: Vec<Ipv4Addr> = controllers.iter().map(|c| c.2).collect();
        let Ok(view) = network.kraft(&addresses).await else {
            return 0;
        };
        let Some((leader, reference)) = view.leader_clock() else {
            return 0;
        };
        let started = self.started.lock().expect("started");
        let since = |name: &str| {
            started.get(name).map_or(0, |t| {
                t.duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64)
            })
        };
        view.voters
            .iter()
            .filter(|v| {
                controllers.iter().any(|(name, id, _, up)| {
                    *id == v.id
                        && name != stopping
                        && *up
                        && (v.id == leader
                            || (v.last_caught_up_ms >= since(name)
                                && reference - v.last_caught_up_ms
                                    <= kcluster::roll::CAUGHT_UP_WITHIN_MS))
                })
            })
            .count()
    }

    fn node_of(&self, instance: &str) -> String {
        self.inner
            .instances()
            .into_iter()
            .find(|i| i.id == instance)
            .and_then(|i| i.tag(tags::NODE).map(String::from))
            .unwrap_or_else(|| panic!("instance {instance} names no node"))
    }

    /// The node's files as the bootstrap would write them from the instance's user-data now,
    /// with the volume's mount point mapped to the node's data directory.
    fn files_of(&self, instance: &str, data_dir: &str) -> BTreeMap<String, String> {
        let data = self
            .inner
            .instance_user_data(instance)
            .expect("the instance has user-data");
        let text = user_data_text(&data).expect("user-data text");
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("cloud-config YAML");
        doc["write_files"]
            .as_sequence()
            .expect("write_files")
            .iter()
            .map(|f| {
                (
                    f["path"].as_str().expect("path").to_string(),
                    f["content"]
                        .as_str()
                        .expect("content")
                        .replace(VOLUME_MOUNT, data_dir),
                )
            })
            .collect()
    }
}

/// The roll never touches a network kcluster creates.
#[async_trait]
impl kcluster::ec2::network::Ec2Network for LocalEc2 {}

#[async_trait]
impl Ec2 for LocalEc2 {
    async fn describe_subnets(&self, ids: &[String]) -> Ec2Result<Vec<Subnet>> {
        self.inner.describe_subnets(ids).await
    }
    async fn find_security_groups(&self, cluster: &str) -> Ec2Result<Vec<SecurityGroup>> {
        self.inner.find_security_groups(cluster).await
    }
    async fn find_network_interfaces(&self, cluster: &str) -> Ec2Result<Vec<NetworkInterface>> {
        self.inner.find_network_interfaces(cluster).await
    }
    async fn find_instances(&self, cluster: &str) -> Ec2Result<Vec<Instance>> {
        self.inner.boot_all();
        self.inner.find_instances(cluster).await
    }
    async fn create_security_group(&self, spec: &SecurityGroupSpec) -> Ec2Result<String> {
        self.inner.create_security_group(spec).await
    }
    async fn authorize_ingress(&self, group_id: &str, rules: &[Rule]) -> Ec2Result<()> {
        self.inner.authorize_ingress(group_id, rules).await
    }
    async fn revoke_ingress(&self, group_id: &str, rules: &[Rule]) -> Ec2Result<()> {
        self.inner.revoke_ingress(group_id, rules).await
    }
    async fn delete_security_group(&self, group_id: &str) -> Ec2Result<()> {
        self.inner.delete_security_group(group_id).await
    }
    async fn create_network_interface(&self, spec: &InterfaceSpec) -> Ec2Result<String> {
        self.inner.create_network_interface(spec).await
    }
    async fn delete_network_interface(&self, id: &str) -> Ec2Result<()> {
        self.inner.delete_network_interface(id).await
    }
    async fn set_tags(&self, resource_id: &str, t: &Tags) -> Ec2Result<()> {
        self.inner.set_tags(resource_id, t).await
    }
    async fn availability_zones(&self) -> Ec2Result<Vec<(String, String)>> {
        self.inner.availability_zones().await
    }
    async fn describe_route_tables(&self, vpc_id: &str) -> Ec2Result<Vec<RouteTable>> {
        self.inner.describe_route_tables(vpc_id).await
    }
    async fn find_addresses(&self, cluster: &str) -> Ec2Result<Vec<Address>> {
        self.inner.find_addresses(cluster).await
    }
    async fn interfaces_holding(
        &self,
        subnet_ids: &[String],
        addresses: &[Ipv4Addr],
    ) -> Ec2Result<Vec<NetworkInterface>> {
        self.inner.interfaces_holding(subnet_ids, addresses).await
    }
    async fn allocate_address(&self, tags: &Tags) -> Ec2Result<Address> {
        self.inner.allocate_address(tags).await
    }
    async fn associate_address(
        &self,
        allocation_id: &str,
        interface_id: &str,
    ) -> Ec2Result<String> {
        self.inner
            .associate_address(allocation_id, interface_id)
            .await
    }
    async fn disassociate_address(&self, association_id: &str) -> Ec2Result<()> {
        self.inner.disassociate_address(association_id).await
    }
    async fn release_address(&self, allocation_id: &str) -> Ec2Result<()> {
        self.inner.release_address(allocation_id).await
    }
    async fn run_instance(&self, _: &InstanceSpec) -> Ec2Result<String> {
        panic!("a change of files or heap launched an instance: it must restart in place");
    }
    async fn terminate_instances(&self, ids: &[String]) -> Ec2Result<()> {
        panic!("a change of files or heap terminated {ids:?}: it must restart in place");
    }
    async fn stop_instances(&self, ids: &[String]) -> Ec2Result<()> {
        for id in ids {
            let node = self.node_of(id);
            if self.local.lock().expect("local").node(&node).role == Role::Controller {
                let others = self.caught_up_without(&node).await;
                self.quorum_at_stop
                    .lock()
                    .expect("quorum")
                    .push((node.clone(), others));
            }
            self.local
                .lock()
                .expect("local cluster")
                .stop(&node, Duration::from_secs(120));
            self.stopped.lock().expect("stopped").push(node);
        }
        self.inner.stop_instances(ids).await
    }
    async fn start_instances(&self, ids: &[String]) -> Ec2Result<()> {
        self.inner.start_instances(ids).await?;
        for id in ids {
            let node = self.node_of(id);
            let mut local = self.local.lock().expect("local cluster");
            let data_dir = local.data_dir(&node).display().to_string();
            let files = self.files_of(id, &data_dir);
            let role = local.node(&node).role;
            let info = role.info();
            let config = format!("/etc/kafka/{}", info.config_file);
            let unit = format!("/etc/systemd/system/{}.service", info.service);
            local.reconfigure(&node, &files[&config], &files[&unit]);
            self.started
                .lock()
                .expect("started")
                .insert(node.clone(), SystemTime::now());
            local.start(&node);
        }
        Ok(())
    }
    async fn modify_instance(&self, id: &str, change: &InstanceChange) -> Ec2Result<()> {
        self.inner.modify_instance(id, change).await
    }
    async fn find_volumes(&self, cluster: &str) -> Ec2Result<Vec<Volume>> {
        self.inner.boot_all();
        self.inner.find_volumes(cluster).await
    }
    async fn create_volume(&self, spec: &DataVolumeSpec) -> Ec2Result<String> {
        self.inner.create_volume(spec).await
    }
    async fn attach_volume(&self, volume: &str, instance: &str, device: &str) -> Ec2Result<()> {
        self.inner.attach_volume(volume, instance, device).await
    }
    async fn modify_volume(&self, volume_id: &str, to: &VolumeSize) -> Ec2Result<()> {
        self.inner.modify_volume(volume_id, to).await
    }
    async fn delete_volume(&self, volume_id: &str) -> Ec2Result<()> {
        self.inner.delete_volume(volume_id).await
    }
    async fn describe_image(&self, id: &str) -> Ec2Result<Option<Image>> {
        self.inner.describe_image(id).await
    }
    async fn dry_run(&self, call: &DryRun) -> Ec2Result<bool> {
        self.inner.dry_run(call).await
    }
    async fn instance_type_offerings(
        &self,
        types: &[String],
        zones: &[String],
    ) -> Ec2Result<Vec<(String, String)>> {
        self.inner.instance_type_offerings(types, zones).await
    }
    async fn instance_type_architectures(
        &self,
        types: &[String],
    ) -> Ec2Result<BTreeMap<String, Vec<String>>> {
        self.inner.instance_type_architectures(types).await
    }
    async fn resolve_parameter(&self, name: &str) -> Ec2Result<String> {
        self.inner.resolve_parameter(name).await
    }
    async fn user_data(&self, instance_id: &str) -> Ec2Result<Option<Vec<u8>>> {
        self.inner.user_data(instance_id).await
    }
    async fn create_parameter(&self, name: &str, value: &str) -> Ec2Result<Option<String>> {
        self.inner.create_parameter(name, value).await
    }
    async fn delete_parameter(&self, name: &str) -> Ec2Result<()> {
        self.inner.delete_parameter(name).await
    }
    fn calls(&self) -> BTreeMap<String, u64> {
        self.inner.calls()
    }
}

/// One sample of the watcher: when, and every partition's ISR size (or why there was none).
type Sample = (Instant, Result<Vec<(u32, usize)>, String>);

/// Samples every partition's ISR through Kafka's Admin API (the tests' Java probe, nothing of
/// kcluster's), as often as it can, until stopped.
struct Watcher {
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watcher {
    fn start(bootstrap: String) -> Watcher {
        let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (s, halt) = (samples.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !halt.load(Ordering::SeqCst) {
                let seen = clients::describe(&bootstrap, TOPIC)
                    .map(|ps| ps.iter().map(|p| (p.partition, p.isr.len())).collect());
                s.lock().expect("samples").push((Instant::now(), seen));
            }
        });
        Watcher {
            samples,
            stop,
            thread: Some(thread),
        }
    }

    /// The samples taken in `[from, to]`: how many, and each partition seen below the minimum
    /// (with the ISR sizes it was seen at).
    fn between(&self, from: Instant, to: Instant) -> (usize, Vec<(u32, usize)>) {
        let samples = self.samples.lock().expect("samples");
        let window: Vec<&Sample> = samples
            .iter()
            .filter(|(t, _)| *t >= from && *t <= to)
            .collect();
        let below = window
            .iter()
            .filter_map(|(_, s)| s.as_ref().ok())
            .flatten()
            .filter(|(_, isr)| *isr < MIN_ISR)
            .copied()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let good = window.iter().filter(|(_, s)| s.is_ok()).count();
        (good, below)
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The fake account as kcluster left it after applying `first` (every node's instance,
/// interface and volume), in front of the local cluster already running it, and the runtime to
/// apply with. The local processes already run, so this first apply goes to the fake alone.
fn on_local_ec2(first: &Cluster, local: LocalCluster) -> (LocalEc2, tokio::runtime::Runtime) {
    let fake = account(first);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let none = Gates::skipped();
        let converge = apply(&fake, first, &none);
        let time = async {
            loop {
                fake.boot_all();
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        tokio::select! { _ = converge => {}, _ = time => {} }
    });
    (LocalEc2::new(fake, local), runtime)
}

/// The 3 + 3 loopback fixture with the ZooKeeper heap and, if any, a broker log retention.
fn topology(zookeeper_heap: &str, retention_hours: Option<u32>) -> Cluster {
    let base = std::fs::read_to_string(support::repo().join("tests/it/fixtures/kafka-3x3.yaml"))
        .expect("fixture");
    assert!(
        base.contains("zookeeper:\n  heap: 128m\n") && base.contains("  heap: 320m\n"),
        "kafka-3x3.yaml changed shape"
    );
    let mut yaml = base.replace(
        "zookeeper:\n  heap: 128m\n",
        &format!("zookeeper:\n  heap: {zookeeper_heap}\n"),
    );
    if let Some(h) = retention_hours {
        yaml = yaml.replace(
            "  heap: 320m\n",
            &format!("  heap: 320m\n  overrides:\n    log.retention.hours: {h}\n"),
        );
    }
    let mut cluster = support::load_str(&yaml);
    // The fixture's AZ IDs are those of the moto account; the fake account maps zone names to
    // other IDs, as another real account would. Racks by AZ ID are proven by `kafka::`; here the
    // racks are the zone names.
    for z in &mut cluster.zones {
        z.id = None;
    }
    cluster
}

/// The fake account of a cluster on loopback: its zones' subnets, the image, the SSM parameter.
fn account(cluster: &Cluster) -> FakeEc2 {
    let zones: Vec<(String, String)> = cluster
        .zones
        .iter()
        .map(|z| (z.name.clone(), z.cidr.to_string()))
        .collect();
    let refs: Vec<(&str, &str)> = zones
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let fake = FakeEc2::with_default_subnets(&refs);
    if let Ami::SsmParameter(p) = &cluster.ami {
        fake.set_parameter(p, IMAGE);
    }
    fake.set_image(IMAGE, "/dev/xvda", "x86_64");
    fake
}

/// Plans `cluster` against `ec2` and executes the plan with `gates`.
async fn apply(ec2: &dyn Ec2, cluster: &Cluster, gates: &Gates<'_>) -> kcluster::plan::Plan {
    let renderer = Renderer::new(&Options::default()).expect("templates");
    let (plan, _) = make_plan(ec2, cluster, &renderer).await.expect("plan");
    let settings = Settings {
        parallelism: 4,
        poll: Duration::from_millis(200),
        timeout: Duration::from_secs(180),
        skip_detach_wait: false,
    };
    execute(ec2, &plan, &settings, gates, &Silent)
        .await
        .unwrap_or_else(|e| panic!("apply: {e}"));
    plan
}

/// The nodes stopped since `mark` of the stop log.
fn stopped_since(ec2: &LocalEc2, mark: usize) -> Vec<String> {
    ec2.stopped.lock().expect("stopped")[mark..].to_vec()
}

fn wait_in_sync(local: &mut LocalCluster, rf: usize) {
    local.wait(
        &format!("every replica of {TOPIC} in sync"),
        Duration::from_secs(180),
        |c| {
            let parts = clients::describe(&c.bootstrap(), TOPIC)?;
            if parts
                .iter()
                .all(|p| p.isr.len() == rf && p.leader.is_some())
            {
                Ok(())
            } else {
                Err(format!("{parts:?}"))
            }
        },
    );
}

#[test]
fn rolls_through_the_executor_keep_min_isr_and_every_acked_record_and_without_gates_do_not() {
    let first = topology("128m", None);
    let local = LocalCluster::boot(&first);
    let (ec2, runtime) = on_local_ec2(&first, local);
    let bootstrap = ec2.local.lock().expect("local").bootstrap();
    clients::probe(
        &["create", &bootstrap, TOPIC, "6", "3"],
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("create {TOPIC}: {e}"));
    wait_in_sync(&mut ec2.local.lock().expect("local"), 3);
    let dir = ec2.local.lock().expect("local").dir().to_path_buf();
    let settings = b"enable.idempotence=true\nmax.in.flight.requests.per.connection=5\ndelivery.timeout.ms=600000\nrequest.timeout.ms=30000\n";
    let mut stream =
        clients::StreamProducer::start(&bootstrap, TOPIC, 50, 1_000_000, 24, settings, &dir);
    let watcher = Watcher::start(bootstrap.clone());
    std::thread::sleep(Duration::from_secs(5));

    let network = Network {
        client_port: first.network.client_port,
        timeout: Duration::from_secs(5),
    };
    let gated = Gates {
        health: Some(&network),
        timeout: Duration::from_secs(240),
        poll: Duration::from_secs(1),
        moves: Default::default(),
    };
    let controller = clients::probe(&["cluster", &bootstrap], Duration::from_secs(60))
        .expect("cluster")["controller"]
        .as_u64()
        .expect("a controller");

    // 1. A broker override: every broker restarts once, the controller last, behind the gates.
    let tuned = topology("128m", Some(72));
    let (mark, from) = (stopped_since(&ec2, 0).len(), Instant::now());
    let plan = runtime.block_on(apply(&ec2, &tuned, &gated));
    let to = Instant::now();
    let rolled = stopped_since(&ec2, mark);
    assert!(
        plan.nodes
            .iter()
            .all(|n| (n.role == Role::Broker) == (n.instance == kcluster::plan::Action::Update)),
        "{}",
        plan.render_text()
    );
    let mut sorted = rolled.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec!["broker-1", "broker-2", "broker-3"],
        "each broker once"
    );
    assert_eq!(
        rolled.last().map(String::as_str),
        Some(format!("broker-{controller}").as_str()),
        "the active controller last: {rolled:?}"
    );
    {
        let local = ec2.local.lock().expect("local");
        for b in ["broker-1", "broker-2", "broker-3"] {
            let config = local.node(b).config_text();
            assert!(config.contains("log.retention.hours=72"), "{b}: {config}");
        }
    }
    let (samples, below) = watcher.between(from, to);
    eprintln!(
        "broker roll with gates: {:?}, {samples} ISR samples, below min ISR: {below:?}",
        to - from
    );
    assert!(
        samples >= 5,
        "the watcher sampled the roll ({samples} samples)"
    );
    assert_eq!(
        below,
        vec![],
        "no partition below min.insync.replicas during the gated roll"
    );

    // 2. A ZooKeeper heap change: every member restarts once, the leader last.
    let leader = ec2.local.lock().expect("local").wait_for_zookeeper_quorum();
    let zk_heap = topology("160m", Some(72));
    let (mark, from) = (stopped_since(&ec2, 0).len(), Instant::now());
    runtime.block_on(apply(&ec2, &zk_heap, &gated));
    let to = Instant::now();
    let rolled = stopped_since(&ec2, mark);
    let mut sorted = rolled.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec!["zookeeper-1", "zookeeper-2", "zookeeper-3"],
        "each member once"
    );
    assert_eq!(rolled.last(), Some(&leader), "the leader last: {rolled:?}");
    {
        let mut local = ec2.local.lock().expect("local");
        local.wait_for_zookeeper_quorum();
        for m in ["zookeeper-1", "zookeeper-2", "zookeeper-3"] {
            let address = local.node(m).address;
            assert!(zk::serving(address), "{m} serves");
        }
    }
    let (samples, below) = watcher.between(from, to);
    eprintln!(
        "ZooKeeper roll with gates: {:?}, {samples} ISR samples, below min ISR: {below:?}",
        to - from
    );
    assert!(
        samples >= 3,
        "the watcher sampled the roll ({samples} samples)"
    );
    assert_eq!(
        below,
        vec![],
        "no partition below min.insync.replicas during the ZooKeeper roll"
    );

    // 3. The same kind of broker roll without the gates: the watcher sees what they prevent.
    let ungated = topology("160m", Some(96));
    let (mark, from) = (stopped_since(&ec2, 0).len(), Instant::now());
    // The test-only switch: the same executor, its gates off.
    runtime.block_on(apply(&ec2, &ungated, &Gates::skipped()));
    // The damage shows while the restarted brokers catch up.
    {
        let mut local = ec2.local.lock().expect("local");
        local.wait_for_brokers();
        wait_in_sync(&mut local, 3);
    }
    let to = Instant::now();
    assert_eq!(stopped_since(&ec2, mark).len(), 3);
    let (samples, below) = watcher.between(from, to);
    eprintln!(
        "broker roll without gates: {:?}, {samples} ISR samples, below min ISR: {below:?}",
        to - from
    );
    assert!(
        !below.is_empty(),
        "without the gates the watcher must see a partition below min.insync.replicas ({samples} samples)"
    );

    // 4. Every acknowledged record is there, exactly once.
    let events = stream.finish(Duration::from_secs(5));
    drop(watcher);
    let acked: Vec<String> = events
        .iter()
        .filter(|e| e["name"] == "producer_send_success")
        .filter_map(|e| e["value"].as_str().map(str::to_string))
        .collect();
    let mut local = ec2.local.lock().expect("local");
    let records = local.wait(
        &format!("every record of {TOPIC}"),
        Duration::from_secs(180),
        |c| clients::read_all(&c.bootstrap(), TOPIC),
    );
    let mut read: BTreeMap<String, usize> = BTreeMap::new();
    for (_, _, value) in records {
        *read.entry(value).or_default() += 1;
    }
    let lost = acked.iter().filter(|v| !read.contains_key(*v)).count();
    let duplicated = read.values().filter(|&&n| n > 1).count();
    eprintln!(
        "acked {} / lost {lost} / duplicated {duplicated}",
        acked.len()
    );
    assert!(
        acked.len() > 100,
        "the producer kept writing: {} acked",
        acked.len()
    );
    assert_eq!(
        (lost, duplicated),
        (0, 0),
        "no acknowledged record lost or duplicated"
    );
}

/// The 3 controllers + 3 brokers KRaft fixture (Kafka 4) with the controllers' heap.
fn kraft_topology(controller_heap: &str) -> Cluster {
    let base = std::fs::read_to_string(support::repo().join("tests/it/fixtures/kraft-3x3.yaml"))
        .expect("fixture");
    assert!(
        base.contains("controllers:\n  heap: 256m\n"),
        "kraft-3x3.yaml changed shape"
    );
    support::load_str(&base.replace(
        "controllers:\n  heap: 256m\n",
        &format!("controllers:\n  heap: {controller_heap}\n"),
    ))
}

#[test]
fn kraft_controller_rolls_keep_a_caught_up_majority_and_without_gates_do_not() {
    let first = kraft_topology("256m");
    let mut local = LocalCluster::boot(&first);
    let leader = local.wait_for_quorum();
    local.wait_for_brokers();
    let (ec2, runtime) = on_local_ec2(&first, local);
    let network = Network {
        client_port: first.network.client_port,
        timeout: Duration::from_secs(5),
    };
    let gated = Gates {
        health: Some(&network),
        timeout: Duration::from_secs(180),
        poll: Duration::from_secs(1),
        moves: Default::default(),
    };

    // 1. A controller heap change behind the gates: each controller restarts once, the leader
    // last, and each stops only while both others are caught up with the leader.
    let (mark, from) = (stopped_since(&ec2, 0).len(), Instant::now());
    let plan = runtime.block_on(apply(&ec2, &kraft_topology("288m"), &gated));
    let rolled = stopped_since(&ec2, mark);
    let at_stop = ec2.quorum_at_stop.lock().expect("quorum").clone();
    eprintln!(
        "controller roll with gates: {:?}, order {rolled:?}, caught-up others at each stop {at_stop:?}",
        from.elapsed()
    );
    assert!(
        plan.nodes.iter().all(|n| (n.role == Role::Controller)
            == (n.instance == kcluster::plan::Action::Update)),
        "{}",
        plan.render_text()
    );
    let mut sorted = rolled.clone();
    sorted.sort();
    assert_eq!(sorted, ["controller-1", "controller-2", "controller-3"]);
    assert_eq!(rolled.last(), Some(&leader), "the quorum's leader last");
    assert!(
        at_stop.iter().all(|(_, others)| *others == 2),
        "each controller stopped with both others caught up: {at_stop:?}"
    );
    {
        let mut local = ec2.local.lock().expect("local");
        for c in ["controller-1", "controller-2", "controller-3"] {
            assert!(local.node(c).unit_text().contains("-Xmx288m"), "{c}");
        }
        local.wait_for_quorum();
    }

    // 2. The same roll without the gates (the test-only switch): a controller is stopped while
    // the one restarted before it has not caught up yet — that stop left no caught-up majority.
    let mark = at_stop.len();
    runtime.block_on(apply(&ec2, &kraft_topology("320m"), &Gates::skipped()));
    let ungated = ec2.quorum_at_stop.lock().expect("quorum")[mark..].to_vec();
    eprintln!("controller roll without gates: caught-up others at each stop {ungated:?}");
    assert_eq!(ungated.len(), 3);
    assert!(
        ungated.iter().any(|(_, others)| *others < 2),
        "without the gates a controller must be stopped before the previous one caught up: {ungated:?}"
    );
    let mut local = ec2.local.lock().expect("local");
    local.wait_for_quorum();
    local.wait_for_brokers();
}
