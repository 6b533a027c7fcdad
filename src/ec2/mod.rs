//! EC2 behind a narrow trait: the handful of domain operations kcluster needs (plus the one SSM
//! lookup that names an AMI), with the real SDK
//! (`sdk.rs`) and a stateful in-process fake (`fake.rs`) behind it. Every implementation counts
//! the API requests it makes, by operation.

pub mod fake;
pub mod network;
pub mod paced;
pub mod sdk;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Mutex;

use async_trait::async_trait;
use ipnet::Ipv4Net;
use serde::Serialize;

/// An EC2 failure: the operation, AWS's error code when it gave one, and its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation}: {code}: {message}")]
pub struct Ec2Error {
    pub operation: &'static str,
    pub code: String,
    pub message: String,
}

impl Ec2Error {
    pub fn new(
        operation: &'static str,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Ec2Error {
            operation,
            code: code.into(),
            message: message.into(),
        }
    }
}

pub type Ec2Result<T> = Result<T, Ec2Error>;

/// Tag keys kcluster reads and writes. Tags are kcluster's only state.
pub mod tags {
    pub const CLUSTER: &str = "kcluster:cluster";
    pub const ROLE: &str = "kcluster:role";
    pub const NODE: &str = "kcluster:node";
    /// Launch generation: bumped on the node's network interface before each replacement.
    pub const GENERATION: &str = "kcluster:generation";
    /// Short hash of the user-data the instance was launched with.
    pub const CONFIG: &str = "kcluster:config";
    /// The image the instance was launched from, as the topology names it.
    pub const IMAGE: &str = "kcluster:image";
    /// On a node's own EBS data volume (value `data`): what tells it from the root volume,
    /// which carries the instance's tags too.
    pub const VOLUME: &str = "kcluster:volume";
    /// On every resource of the network kcluster creates: which one it is, e.g. `vpc` or
    /// `private_subnet.eu-west-1a` (the plan's address without `network.`).
    pub const NETWORK: &str = "kcluster:network";
    pub const NAME: &str = "Name";
}

pub type Tags = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subnet {
    pub id: String,
    pub vpc_id: String,
    pub zone: String,
    pub cidr: Ipv4Net,
    /// Addresses EC2 can still hand out in the subnet.
    pub available_addresses: u32,
}

/// A route table of a VPC, as far as egress matters: which subnets it serves and where its
/// default route (`0.0.0.0/0`) goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteTable {
    pub id: String,
    pub vpc_id: String,
    /// The VPC's main table: it serves every subnet without an explicit association.
    pub main: bool,
    /// Subnets explicitly associated with it.
    pub subnets: Vec<String>,
    /// The target of its `0.0.0.0/0` route (`igw-…`, `nat-…`, `tgw-…`, …), if it has one.
    pub default_route: Option<DefaultRoute>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DefaultRoute {
    pub target: String,
    /// `false` for a blackhole (the target was deleted).
    pub active: bool,
}

/// An Elastic IP address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Address {
    pub allocation_id: String,
    pub public_ip: String,
    pub association_id: Option<String>,
    /// The network interface it is associated with, if any.
    pub interface_id: Option<String>,
    pub tags: Tags,
}

/// One ingress permission. kcluster writes only TCP rules from its own group or IPv4 CIDRs, but
/// reads every kind, so that a rule added by hand (all traffic, IPv6, another group, a prefix
/// list) shows up in the plan and is revoked.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Rule {
    /// `tcp`, `udp`, `icmp`, `-1` (all traffic) or a protocol number.
    pub protocol: String,
    /// Port range (ICMP: type and code); `None` for all traffic.
    pub ports: Option<(i32, i32)>,
    pub source: Source,
}

impl Rule {
    /// A TCP rule for one port.
    pub fn tcp(port: u16, source: Source) -> Rule {
        Rule::one_port("tcp", port, source)
    }

    /// A UDP rule for one port.
    pub fn udp(port: u16, source: Source) -> Rule {
        Rule::one_port("udp", port, source)
    }

    fn one_port(protocol: &str, port: u16, source: Source) -> Rule {
        Rule {
            protocol: protocol.into(),
            ports: Some((i32::from(port), i32::from(port))),
            source,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Members of the cluster's own security group.
    Group,
    Cidr(Ipv4Net),
    CidrV6(String),
    /// Another security group.
    OtherGroup(String),
    PrefixList(String),
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let proto = if self.protocol == "-1" {
            "all traffic".to_string()
        } else {
            match self.ports {
                Some((a, b)) if a == b => format!("{}/{a}", self.protocol),
                Some((a, b)) => format!("{}/{a}-{b}", self.protocol),
                None => self.protocol.clone(),
            }
        };
        match &self.source {
            Source::Group => write!(f, "{proto} from the cluster"),
            Source::Cidr(c) => write!(f, "{proto} from {c}"),
            Source::CidrV6(c) => write!(f, "{proto} from {c}"),
            Source::OtherGroup(g) => write!(f, "{proto} from group {g}"),
            Source::PrefixList(p) => write!(f, "{proto} from prefix list {p}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecurityGroup {
    pub id: String,
    pub name: String,
    pub vpc_id: String,
    pub rules: Vec<Rule>,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkInterface {
    pub id: String,
    pub subnet_id: String,
    pub vpc_id: String,
    pub zone: String,
    pub address: Ipv4Addr,
    /// The instance it is attached to, if any.
    pub instance_id: Option<String>,
    pub tags: Tags,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceState {
    Pending,
    Running,
    Stopping,
    Stopped,
    ShuttingDown,
    Terminated,
}

impl InstanceState {
    /// Pending, running, stopping or stopped: the instance still stands for its node.
    pub fn is_live(self) -> bool {
        !matches!(
            self,
            InstanceState::ShuttingDown | InstanceState::Terminated
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Pending => "pending",
            InstanceState::Running => "running",
            InstanceState::Stopping => "stopping",
            InstanceState::Stopped => "stopped",
            InstanceState::ShuttingDown => "shutting-down",
            InstanceState::Terminated => "terminated",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => InstanceState::Pending,
            "running" => InstanceState::Running,
            "stopping" => InstanceState::Stopping,
            "stopped" => InstanceState::Stopped,
            "shutting-down" => InstanceState::ShuttingDown,
            "terminated" => InstanceState::Terminated,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instance {
    pub id: String,
    pub state: InstanceState,
    pub instance_type: String,
    pub zone: String,
    pub subnet_id: Option<String>,
    pub private_address: Option<Ipv4Addr>,
    /// The network interface at device index 0.
    pub primary_interface: Option<String>,
    pub image_id: String,
    pub tags: Tags,
}

impl Instance {
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.get(key).map(String::as_str)
    }
}

/// A machine image, as far as launching from it matters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Image {
    pub id: String,
    /// Where the image's root volume is attached, e.g. `/dev/xvda` or `/dev/sda1`.
    pub root_device: String,
    /// `x86_64` or `arm64`.
    pub architecture: String,
}

/// A mutating call asked with DryRun, so that EC2 says whether the caller may make it. Calls on
/// resources that do not exist yet name placeholder ids of the right shape (see `sdk.rs` for how
/// EC2's answer to those is read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DryRun {
    CreateSecurityGroup {
        vpc_id: String,
    },
    AuthorizeSecurityGroupIngress {
        group_id: String,
    },
    RevokeSecurityGroupIngress {
        group_id: String,
    },
    CreateNetworkInterface {
        subnet_id: String,
    },
    CreateTags {
        resource_id: String,
    },
    RunInstances {
        image_id: String,
        instance_type: String,
        subnet_id: String,
    },
    TerminateInstances {
        instance_id: String,
    },
    DeleteNetworkInterface {
        interface_id: String,
    },
    AllocateAddress,
    AssociateAddress {
        allocation_id: String,
        interface_id: String,
    },
    DisassociateAddress {
        association_id: String,
    },
    ReleaseAddress {
        allocation_id: String,
    },
    CreateVolume {
        zone: String,
    },
    AttachVolume {
        volume_id: String,
        instance_id: String,
    },
    ModifyVolume {
        volume_id: String,
    },
    StopInstances {
        instance_id: String,
    },
    ModifyInstanceAttribute {
        instance_id: String,
    },
    StartInstances {
        instance_id: String,
    },
    /// A call of the network kcluster creates (`network.create`).
    Network(network::NetworkDryRun),
}

impl DryRun {
    pub fn operation(&self) -> &'static str {
        match self {
            DryRun::CreateSecurityGroup { .. } => "CreateSecurityGroup",
            DryRun::AuthorizeSecurityGroupIngress { .. } => "AuthorizeSecurityGroupIngress",
            DryRun::RevokeSecurityGroupIngress { .. } => "RevokeSecurityGroupIngress",
            DryRun::CreateNetworkInterface { .. } => "CreateNetworkInterface",
            DryRun::CreateTags { .. } => "CreateTags",
            DryRun::RunInstances { .. } => "RunInstances",
            DryRun::TerminateInstances { .. } => "TerminateInstances",
            DryRun::DeleteNetworkInterface { .. } => "DeleteNetworkInterface",
            DryRun::AllocateAddress => "AllocateAddress",
            DryRun::AssociateAddress { .. } => "AssociateAddress",
            DryRun::DisassociateAddress { .. } => "DisassociateAddress",
            DryRun::ReleaseAddress { .. } => "ReleaseAddress",
            DryRun::CreateVolume { .. } => "CreateVolume",
            DryRun::AttachVolume { .. } => "AttachVolume",
            DryRun::ModifyVolume { .. } => "ModifyVolume",
            DryRun::StopInstances { .. } => "StopInstances",
            DryRun::ModifyInstanceAttribute { .. } => "ModifyInstanceAttribute",
            DryRun::StartInstances { .. } => "StartInstances",
            DryRun::Network(n) => n.operation(),
        }
    }
}

/// A security group to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecurityGroupSpec {
    pub name: String,
    pub description: String,
    pub vpc_id: String,
    pub tags: Tags,
}

/// A network interface to create, holding a node's fixed address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InterfaceSpec {
    pub subnet_id: String,
    pub address: Ipv4Addr,
    pub group_id: String,
    pub description: String,
    pub tags: Tags,
}

/// An EBS volume attached at launch; always encrypted gp3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VolumeSpec {
    pub device: String,
    pub size_gib: u32,
    pub iops: u32,
    pub throughput_mibps: u32,
}

/// A node's data volume: an EBS volume kcluster creates on its own, so that it outlives the
/// node's instances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Volume {
    pub id: String,
    pub zone: String,
    pub state: VolumeState,
    pub size_gib: u32,
    pub iops: u32,
    pub throughput_mibps: u32,
    /// The instance it is attached to (or attaching to, or detaching from), if any.
    pub attachment: Option<VolumeAttachment>,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VolumeAttachment {
    pub instance_id: String,
    pub device: String,
    pub state: AttachmentState,
}

/// EC2's volume states (`creating`, `available`, `in-use`, `deleting`, `deleted`, `error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VolumeState {
    Creating,
    Available,
    InUse,
    Deleting,
    Deleted,
    Error,
}

impl VolumeState {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "creating" => VolumeState::Creating,
            "available" => VolumeState::Available,
            "in-use" => VolumeState::InUse,
            "deleting" => VolumeState::Deleting,
            "deleted" => VolumeState::Deleted,
            "error" => VolumeState::Error,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            VolumeState::Creating => "creating",
            VolumeState::Available => "available",
            VolumeState::InUse => "in-use",
            VolumeState::Deleting => "deleting",
            VolumeState::Deleted => "deleted",
            VolumeState::Error => "error",
        }
    }
}

/// EC2's attachment states (`attaching`, `attached`, `detaching`, `detached`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttachmentState {
    Attaching,
    Attached,
    Detaching,
    Detached,
}

impl AttachmentState {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "attaching" => AttachmentState::Attaching,
            "attached" => AttachmentState::Attached,
            "detaching" => AttachmentState::Detaching,
            "detached" => AttachmentState::Detached,
            _ => return None,
        })
    }
}

/// A gp3 volume's size and performance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VolumeSize {
    pub size_gib: u32,
    pub iops: u32,
    pub throughput_mibps: u32,
}

/// A data volume to create: encrypted gp3, tagged at creation, idempotent by its client token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataVolumeSpec {
    pub zone: String,
    pub size_gib: u32,
    pub iops: u32,
    pub throughput_mibps: u32,
    pub client_token: String,
    pub tags: Tags,
}

/// What changes on a stopped instance (ModifyInstanceAttribute, one attribute per call).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InstanceChange {
    pub instance_type: Option<String>,
    pub user_data: Option<Vec<u8>>,
}

/// An instance to launch on an existing network interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceSpec {
    pub image_id: String,
    pub instance_type: String,
    pub interface_id: String,
    /// The interface's zone, given as the placement too (EC2 requires them to agree).
    pub zone: String,
    #[serde(skip)]
    pub user_data: Vec<u8>,
    pub volumes: Vec<VolumeSpec>,
    pub key_name: Option<String>,
    /// Idempotency token: the same token never launches a second instance on real EC2.
    pub client_token: String,
    pub tags: Tags,
}

/// The operations kcluster needs (those of the network it creates in `network.rs`). Finders
/// filter by the cluster tag server-side and follow pagination, so their cost does not grow with
/// the cluster (beyond one call per 1000 items).
#[async_trait]
pub trait Ec2: network::Ec2Network + Send + Sync {
    /// The subnets with these ids, or with no ids the default VPC's default subnets.
    async fn describe_subnets(&self, ids: &[String]) -> Ec2Result<Vec<Subnet>>;
    async fn find_security_groups(&self, cluster: &str) -> Ec2Result<Vec<SecurityGroup>>;
    async fn find_network_interfaces(&self, cluster: &str) -> Ec2Result<Vec<NetworkInterface>>;
    /// Instances with the cluster tag in any state, terminated ones included.
    async fn find_instances(&self, cluster: &str) -> Ec2Result<Vec<Instance>>;
    /// The region's availability zones as (name, AZ ID) pairs: names map to different physical
    /// zones in each account, IDs do not.
    async fn availability_zones(&self) -> Ec2Result<Vec<(String, String)>>;
    /// Every route table of `vpc_id`.
    async fn describe_route_tables(&self, vpc_id: &str) -> Ec2Result<Vec<RouteTable>>;
    /// Elastic IPs with the cluster tag.
    async fn find_addresses(&self, cluster: &str) -> Ec2Result<Vec<Address>>;
    /// The network interfaces in `subnet_ids` (whoever made them) holding one of `addresses`.
    async fn interfaces_holding(
        &self,
        subnet_ids: &[String],
        addresses: &[Ipv4Addr],
    ) -> Ec2Result<Vec<NetworkInterface>>;

    async fn create_security_group(&self, spec: &SecurityGroupSpec) -> Ec2Result<String>;
    async fn authorize_ingress(&self, group_id: &str, rules: &[Rule]) -> Ec2Result<()>;
    async fn revoke_ingress(&self, group_id: &str, rules: &[Rule]) -> Ec2Result<()>;
    async fn delete_security_group(&self, group_id: &str) -> Ec2Result<()>;

    async fn create_network_interface(&self, spec: &InterfaceSpec) -> Ec2Result<String>;
    async fn delete_network_interface(&self, id: &str) -> Ec2Result<()>;
    async fn set_tags(&self, resource_id: &str, tags: &Tags) -> Ec2Result<()>;

    /// Allocates an Elastic IP in the VPC domain, tagged at creation. AllocateAddress takes no
    /// ClientToken, so the SDK does not resend it: a lost answer is looked up by tag instead.
    async fn allocate_address(&self, tags: &Tags) -> Ec2Result<Address>;
    /// Associates an Elastic IP with a network interface (never taking it from another one);
    /// returns the association id.
    async fn associate_address(&self, allocation_id: &str, interface_id: &str)
    -> Ec2Result<String>;
    async fn disassociate_address(&self, association_id: &str) -> Ec2Result<()>;
    async fn release_address(&self, allocation_id: &str) -> Ec2Result<()>;

    async fn run_instance(&self, spec: &InstanceSpec) -> Ec2Result<String>;
    async fn terminate_instances(&self, ids: &[String]) -> Ec2Result<()>;
    async fn stop_instances(&self, ids: &[String]) -> Ec2Result<()>;
    async fn start_instances(&self, ids: &[String]) -> Ec2Result<()>;
    /// Changes a stopped instance's type and/or user-data (EC2 refuses either while it runs).
    async fn modify_instance(&self, id: &str, change: &InstanceChange) -> Ec2Result<()>;

    /// The cluster's data volumes (tag `kcluster:volume`), in any state.
    async fn find_volumes(&self, cluster: &str) -> Ec2Result<Vec<Volume>>;
    async fn create_volume(&self, spec: &DataVolumeSpec) -> Ec2Result<String>;
    async fn attach_volume(
        &self,
        volume_id: &str,
        instance_id: &str,
        device: &str,
    ) -> Ec2Result<()>;
    /// Grows a volume or changes its performance, online.
    async fn modify_volume(&self, volume_id: &str, to: &VolumeSize) -> Ec2Result<()>;
    async fn delete_volume(&self, volume_id: &str) -> Ec2Result<()>;
    /// The image with this id, or `None` when the region has none the account may use.
    async fn describe_image(&self, id: &str) -> Ec2Result<Option<Image>>;
    /// Whether the caller may make `call` (EC2's DryRun): `false` when EC2 answers
    /// `UnauthorizedOperation`.
    async fn dry_run(&self, call: &DryRun) -> Ec2Result<bool>;
    /// Which of `types` are offered in which of `zones`, as (type, zone) pairs.
    async fn instance_type_offerings(
        &self,
        types: &[String],
        zones: &[String],
    ) -> Ec2Result<Vec<(String, String)>>;
    /// The architectures each of `types` supports; a type that does not exist is absent.
    async fn instance_type_architectures(
        &self,
        types: &[String],
    ) -> Ec2Result<BTreeMap<String, Vec<String>>>;
    /// The value of an SSM parameter, e.g. the AMI id behind Amazon Linux's public parameter.
    async fn resolve_parameter(&self, name: &str) -> Ec2Result<String>;
    /// The user-data an instance was launched with, as EC2 returns it (decoded from base64).
    async fn user_data(&self, instance_id: &str) -> Ec2Result<Option<Vec<u8>>>;
    /// Creates SSM parameter `name` holding `value` unless it exists (overwrite off): `None`
    /// when this call created it, else the value it already holds.
    async fn create_parameter(&self, name: &str, value: &str) -> Ec2Result<Option<String>>;
    /// Deletes SSM parameter `name`; one that does not exist is not an error.
    async fn delete_parameter(&self, name: &str) -> Ec2Result<()>;

    /// API requests made so far, by operation.
    fn calls(&self) -> BTreeMap<String, u64>;
}

/// Counts API requests by operation name; shared by the implementations.
#[derive(Debug, Default)]
pub struct CallCounter(Mutex<BTreeMap<String, u64>>);

impl CallCounter {
    pub fn count(&self, operation: &str) {
        if let Ok(mut m) = self.0.lock() {
            *m.entry(operation.to_string()).or_default() += 1;
        }
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

/// The number of Describe requests in a call-count snapshot.
pub fn describe_calls(calls: &BTreeMap<String, u64>) -> u64 {
    calls
        .iter()
        .filter(|(k, _)| k.starts_with("Describe"))
        .map(|(_, v)| v)
        .sum()
}
