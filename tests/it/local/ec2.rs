//! kcluster's executor against the local cluster: the in-process fake EC2 stands for the
//! account, and its instance stops, starts, launches and terminations stop and start the local
//! node processes (each keeping its data directory as its volume, and taking its files from the
//! user-data kcluster set, as the bootstrap does at boot). The health gates read the nodes over
//! their loopback addresses, which are the topology's own addresses.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use kcluster::cluster::{Ami, Cluster, Role};
use kcluster::ec2::fake::FakeEc2;
use kcluster::ec2::{
    Address, DataVolumeSpec, DryRun, Ec2, Ec2Result, Image, Instance, InstanceChange, InstanceSpec,
    InterfaceSpec, NetworkInterface, RouteTable, Rule, SecurityGroup, SecurityGroupSpec, Subnet,
    Tags, Volume, VolumeSize, tags,
};
use kcluster::operations::drain;
use kcluster::operations::health::{Health, Network};
use kcluster::progress::Silent;
use kcluster::provision::apply::{Gates, Outcome, Settings, execute};
use kcluster::provision::plan::Plan;
use kcluster::provision::workflow::make_plan;
use kcluster::render::{Options, Renderer, user_data_text};

use super::{LocalCluster, clients};

const IMAGE: &str = "ami-0123456789abcdef0";
/// Where the node's data volume is mounted on EC2, as the rendered files name it.
const VOLUME_MOUNT: &str = "/var/lib/kcluster";

/// The fake EC2 with the local cluster behind it: stopping an instance stops its node (SIGTERM,
/// as `systemctl stop` at shutdown), starting it starts the node with the files its user-data
/// holds now. Time passes for the fake whenever kcluster looks (instances boot, volumes attach).
/// With `lifecycle`, a launch starts the node it names with the files of its user-data, and a
/// termination stops its node for good (after noting what it held); without, either one fails
/// the test (a change of files or heap must restart in place).
pub struct LocalEc2 {
    pub inner: FakeEc2,
    pub local: Mutex<LocalCluster>,
    /// The nodes stopped, in order.
    pub stopped: Mutex<Vec<String>>,
    pub lifecycle: Option<Lifecycle>,
    /// Each node terminated, in order, with the partitions of the watched topic it held then.
    pub terminated: Mutex<Vec<(String, Vec<u32>)>>,
    /// When each node was last started (wall clock, as Kafka's timestamps are).
    pub started: Mutex<BTreeMap<String, SystemTime>>,
    /// For each KRaft controller stopped: how many of the other voters were caught up with the
    /// leader since their own last start, as the stop came (the test's own reading of
    /// DescribeQuorum: fewer than a majority means the stop cost the quorum).
    pub quorum_at_stop: Mutex<Vec<(String, usize)>>,
}

/// Launches and terminations drive nodes; a termination first reads which partitions of
/// `topic` the node still holds, through Kafka's Admin API.
pub struct Lifecycle {
    pub topic: String,
}

impl LocalEc2 {
    /// Instances stand for the nodes of `local`, which already run.
    pub fn new(inner: FakeEc2, local: LocalCluster, lifecycle: Option<Lifecycle>) -> LocalEc2 {
        LocalEc2 {
            inner,
            local: Mutex::new(local),
            stopped: Mutex::default(),
            lifecycle,
            terminated: Mutex::default(),
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
                                    <= kcluster::operations::roll::CAUGHT_UP_WITHIN_MS))
                })
            })
            .count()
    }

    /// The nodes stopped since `mark` of the stop log.
    pub fn stopped_since(&self, mark: usize) -> Vec<String> {
        self.stopped.lock().expect("stopped")[mark..].to_vec()
    }

    /// Starts `node` with the files `user_data` carries, as its bootstrap does at boot.
    fn boot(&self, node: &str, user_data: &[u8]) {
        let mut local = self.local.lock().expect("local cluster");
        let data_dir = local.data_dir(node).display().to_string();
        let plugin_dir = local.plugin_dir(node).display().to_string();
        let files = files_in(user_data, &data_dir, &plugin_dir);
        let info = local.node(node).role.info();
        let config = format!("/etc/kafka/{}", info.config_file);
        let unit = format!("/etc/systemd/system/{}.service", info.service);
        local.reconfigure(node, &files[&config], &files[&unit]);
        self.started
            .lock()
            .expect("started")
            .insert(node.to_string(), SystemTime::now());
        local.start(node);
    }

    fn node_of(&self, instance: &str) -> String {
        self.inner
            .instances()
            .into_iter()
            .find(|i| i.id == instance)
            .and_then(|i| i.tag(tags::NODE).map(String::from))
            .unwrap_or_else(|| panic!("instance {instance} names no node"))
    }
}

/// The executor never touches a network kcluster creates here.
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
    async fn run_instance(&self, spec: &InstanceSpec) -> Ec2Result<String> {
        assert!(
            self.lifecycle.is_some(),
            "a change of files or heap launched an instance: it must restart in place"
        );
        let id = self.inner.run_instance(spec).await?;
        let node = spec.tags.get(tags::NODE).expect("a launch names its node");
        self.boot(node, &spec.user_data);
        Ok(id)
    }
    async fn terminate_instances(&self, ids: &[String]) -> Ec2Result<()> {
        let Some(lifecycle) = &self.lifecycle else {
            panic!("a change of files or heap terminated {ids:?}: it must restart in place");
        };
        for id in ids {
            let node = self.node_of(id);
            let mut local = self.local.lock().expect("local cluster");
            let broker = local.node(&node).id;
            let held = local.wait(
                &format!("{}'s partitions before {node} terminates", lifecycle.topic),
                Duration::from_secs(60),
                |c| clients::describe(&c.bootstrap(), &lifecycle.topic),
            );
            let held: Vec<u32> = held
                .iter()
                .filter(|p| p.replicas.contains(&broker))
                .map(|p| p.partition)
                .collect();
            self.terminated
                .lock()
                .expect("terminated")
                .push((node.clone(), held));
            local.stop(&node, Duration::from_secs(120));
        }
        self.inner.terminate_instances(ids).await
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
            let data = self
                .inner
                .instance_user_data(id)
                .expect("the instance has user-data");
            self.boot(&node, &data);
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

/// The node's files as the bootstrap would write them from `user_data`, with the volume's mount
/// point mapped to the node's data directory and a Connect worker's plugin directory to the one
/// the harness installed its plugins in.
fn files_in(user_data: &[u8], data_dir: &str, plugin_dir: &str) -> BTreeMap<String, String> {
    let text = user_data_text(user_data).expect("user-data text");
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
                    .replace(VOLUME_MOUNT, data_dir)
                    .replace(kcluster::kafka::connect::PLUGIN_DIR, plugin_dir),
            )
        })
        .collect()
}

/// Health read from the local nodes as `apply` reads it from EC2 nodes (5 s per answer).
pub fn health_of(cluster: &Cluster) -> Network {
    Network {
        client_port: cluster.network.client_port,
        timeout: Duration::from_secs(5),
    }
}

/// The gates a test rolls with: `health`, each gate waiting up to `limit`, polled every second.
pub fn gated(health: &Network, limit: Duration) -> Gates<'_> {
    Gates {
        health: Some(health),
        timeout: limit,
        poll: Duration::from_secs(1),
        moves: Default::default(),
    }
}

/// The fake account of a cluster on loopback: its zones' subnets, the image, the SSM parameter.
pub fn account(cluster: &Cluster) -> FakeEc2 {
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

/// Plans `cluster` against `ec2` as `kcluster apply` does (with gates, reading from the running
/// cluster what moves when brokers leave or join) and executes the plan with `gates`; panics if
/// apply fails.
pub async fn apply(ec2: &dyn Ec2, cluster: &Cluster, gates: &Gates<'_>) -> (Plan, Outcome) {
    try_apply(ec2, cluster, gates)
        .await
        .unwrap_or_else(|(_, e)| panic!("apply: {e}"))
}

/// [`apply`], returning the plan and why apply stopped when it does; the plan reads the
/// cluster's throttle configs as `kcluster plan` does when replicas move.
pub async fn try_apply(
    ec2: &dyn Ec2,
    cluster: &Cluster,
    gates: &Gates<'_>,
) -> Result<(Plan, Outcome), (Plan, String)> {
    let renderer = Renderer::new(&Options::default()).expect("templates");
    let (mut plan, _) = make_plan(ec2, cluster, &renderer).await.expect("plan");
    if let Some(health) = gates.health
        && (drain::concerns(&plan) || gates.moves.rebalance)
    {
        plan.replicas = Some(drain::outlook(&plan, health, Duration::from_secs(30)).await);
        let limit = Duration::from_secs(30);
        plan.throttle = Some(drain::throttling(&plan, health, gates.moves.rate, limit).await);
    }
    let settings = Settings {
        parallelism: 4,
        poll: Duration::from_millis(200),
        timeout: Duration::from_secs(180),
        skip_detach_wait: false,
    };
    match execute(ec2, &plan, &settings, gates, &Silent).await {
        Ok(outcome) => Ok((plan, outcome)),
        Err(e) => Err((plan, e.to_string())),
    }
}

/// The fake account as kcluster left it after applying `first` (every node's instance,
/// interface and volume), in front of the local cluster already running it, and the runtime to
/// apply with. The local processes already run, so this first apply goes to the fake alone.
pub fn on_local_ec2(
    first: &Cluster,
    local: LocalCluster,
    lifecycle: Option<Lifecycle>,
) -> (LocalEc2, tokio::runtime::Runtime) {
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
    (LocalEc2::new(fake, local, lifecycle), runtime)
}
