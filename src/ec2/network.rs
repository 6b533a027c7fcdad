//! The EC2 calls of the network kcluster creates and owns (`network.create`): a VPC, subnets, an
//! internet gateway, NAT gateways, route tables and an S3 gateway endpoint. A trait of their own
//! that every `Ec2` also implements, so the node-side trait stays narrow. Finders filter by the
//! cluster tag server-side; callers check the tags again, since not every EC2 (moto) applies
//! every filter.

use async_trait::async_trait;
use ipnet::Ipv4Net;
use serde::Serialize;

use super::{DefaultRoute, Ec2Error, Ec2Result, Tags};

/// A VPC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Vpc {
    pub id: String,
    pub cidr: Ipv4Net,
    pub tags: Tags,
}

/// Whether a VPC's DNS resolution (`enableDnsSupport`) and DNS hostnames
/// (`enableDnsHostnames`) are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VpcDns {
    pub support: bool,
    pub hostnames: bool,
}

/// A subnet with its tags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetSubnet {
    pub id: String,
    pub vpc_id: String,
    pub zone: String,
    pub cidr: Ipv4Net,
    pub available_addresses: u32,
    pub tags: Tags,
}

/// An internet gateway and the VPCs it is attached to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InternetGateway {
    pub id: String,
    pub attached_to: Vec<String>,
    pub tags: Tags,
}

/// EC2's NAT gateway states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NatState {
    Pending,
    Available,
    Failed,
    Deleting,
    Deleted,
}

impl NatState {
    pub fn parse(s: &str) -> Option<NatState> {
        Some(match s {
            "pending" => NatState::Pending,
            "available" => NatState::Available,
            "failed" => NatState::Failed,
            "deleting" => NatState::Deleting,
            "deleted" => NatState::Deleted,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            NatState::Pending => "pending",
            NatState::Available => "available",
            NatState::Failed => "failed",
            NatState::Deleting => "deleting",
            NatState::Deleted => "deleted",
        }
    }

    /// Pending or available: the gateway stands (or will) for its zone.
    pub fn is_live(self) -> bool {
        matches!(self, NatState::Pending | NatState::Available)
    }
}

/// A NAT gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NatGateway {
    pub id: String,
    pub subnet_id: String,
    pub vpc_id: String,
    pub state: NatState,
    /// The Elastic IP it sends traffic from.
    pub allocation_id: Option<String>,
    /// EC2's reason, when it failed.
    pub failure: Option<String>,
    pub tags: Tags,
}

/// A route table with its tags, its subnet associations and its default route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetRouteTable {
    pub id: String,
    pub vpc_id: String,
    /// (association id, subnet id) of each subnet associated with it.
    pub associations: Vec<(String, String)>,
    pub default_route: Option<DefaultRoute>,
    pub tags: Tags,
}

/// A gateway VPC endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VpcEndpoint {
    pub id: String,
    pub vpc_id: String,
    pub service: String,
    /// `available`, `pending`, `deleting`, `deleted`, …
    pub state: String,
    pub route_tables: Vec<String>,
    pub tags: Tags,
}

impl VpcEndpoint {
    /// Not deleted nor on its way out.
    pub fn is_live(&self) -> bool {
        !matches!(
            self.state.to_ascii_lowercase().as_str(),
            "deleting" | "deleted" | "failed" | "rejected" | "expired"
        )
    }
}

/// A subnet to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubnetSpec {
    pub vpc_id: String,
    pub zone: String,
    pub cidr: Ipv4Net,
    pub tags: Tags,
}

/// A NAT gateway to create: public, in `subnet_id`, sending from the Elastic IP `allocation_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NatGatewaySpec {
    pub subnet_id: String,
    pub allocation_id: String,
    /// Idempotency token: a retry of the same creation never makes a second gateway.
    pub client_token: String,
    pub tags: Tags,
}

/// A gateway endpoint to create (the S3 one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointSpec {
    pub vpc_id: String,
    /// E.g. `com.amazonaws.eu-west-1.s3`.
    pub service: String,
    pub route_tables: Vec<String>,
    pub client_token: String,
    pub tags: Tags,
}

/// A network call asked with DryRun (see `super::DryRun`): ids of resources apply has not made
/// yet are placeholders of the right shape. (ModifyVpcAttribute takes no DryRun.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkDryRun {
    CreateVpc {
        cidr: Ipv4Net,
    },
    CreateInternetGateway,
    AttachInternetGateway {
        gateway_id: String,
        vpc_id: String,
    },
    CreateSubnet {
        vpc_id: String,
        zone: String,
        cidr: Ipv4Net,
    },
    CreateNatGateway {
        subnet_id: String,
        allocation_id: String,
    },
    CreateRouteTable {
        vpc_id: String,
    },
    CreateRoute {
        route_table_id: String,
        target: String,
    },
    ReplaceRoute {
        route_table_id: String,
        target: String,
    },
    AssociateRouteTable {
        route_table_id: String,
        subnet_id: String,
    },
    CreateVpcEndpoint {
        vpc_id: String,
        service: String,
    },
    ModifyVpcEndpoint {
        endpoint_id: String,
    },
    DeleteNatGateway {
        nat_gateway_id: String,
    },
    DeleteSubnet {
        subnet_id: String,
    },
    DeleteRouteTable {
        route_table_id: String,
    },
}

impl NetworkDryRun {
    pub fn operation(&self) -> &'static str {
        match self {
            NetworkDryRun::CreateVpc { .. } => "CreateVpc",
            NetworkDryRun::CreateInternetGateway => "CreateInternetGateway",
            NetworkDryRun::AttachInternetGateway { .. } => "AttachInternetGateway",
            NetworkDryRun::CreateSubnet { .. } => "CreateSubnet",
            NetworkDryRun::CreateNatGateway { .. } => "CreateNatGateway",
            NetworkDryRun::CreateRouteTable { .. } => "CreateRouteTable",
            NetworkDryRun::CreateRoute { .. } => "CreateRoute",
            NetworkDryRun::ReplaceRoute { .. } => "ReplaceRoute",
            NetworkDryRun::AssociateRouteTable { .. } => "AssociateRouteTable",
            NetworkDryRun::CreateVpcEndpoint { .. } => "CreateVpcEndpoint",
            NetworkDryRun::ModifyVpcEndpoint { .. } => "ModifyVpcEndpoint",
            NetworkDryRun::DeleteNatGateway { .. } => "DeleteNatGateway",
            NetworkDryRun::DeleteSubnet { .. } => "DeleteSubnet",
            NetworkDryRun::DeleteRouteTable { .. } => "DeleteRouteTable",
        }
    }
}

/// What a double that manages no network answers (EC2's code for a call it does not support).
fn unsupported(operation: &'static str) -> Ec2Error {
    Ec2Error::new(
        "network",
        "UnsupportedOperation",
        format!("{operation} is not supported by this EC2 double"),
    )
}

/// The network operations. Creations without a ClientToken in EC2's API (CreateVpc,
/// CreateSubnet, CreateInternetGateway) are never resent by the SDK: after a failure the caller
/// looks for the resource by its tags instead (a lost answer), so none is made twice. The SDK,
/// the pacing and the fake implement every one; a test double that never manages a network may
/// leave them out, and then answers `UnsupportedOperation`.
#[async_trait]
pub trait Ec2Network: Send + Sync {
    async fn find_vpcs(&self, _cluster: &str) -> Ec2Result<Vec<Vpc>> {
        Err(unsupported("find_vpcs"))
    }
    /// DNS resolution and hostnames of one VPC (one DescribeVpcAttribute per attribute).
    async fn vpc_dns(&self, _vpc_id: &str) -> Ec2Result<VpcDns> {
        Err(unsupported("vpc_dns"))
    }
    /// Subnets with the cluster tag.
    async fn find_subnets(&self, _cluster: &str) -> Ec2Result<Vec<NetSubnet>> {
        Err(unsupported("find_subnets"))
    }
    async fn find_internet_gateways(&self, _cluster: &str) -> Ec2Result<Vec<InternetGateway>> {
        Err(unsupported("find_internet_gateways"))
    }
    /// NAT gateways with the cluster tag, in any state (EC2 lists deleted ones for a while).
    async fn find_nat_gateways(&self, _cluster: &str) -> Ec2Result<Vec<NatGateway>> {
        Err(unsupported("find_nat_gateways"))
    }
    /// Route tables with the cluster tag.
    async fn find_route_tables(&self, _cluster: &str) -> Ec2Result<Vec<NetRouteTable>> {
        Err(unsupported("find_route_tables"))
    }
    async fn find_vpc_endpoints(&self, _cluster: &str) -> Ec2Result<Vec<VpcEndpoint>> {
        Err(unsupported("find_vpc_endpoints"))
    }

    async fn create_vpc(&self, _cidr: Ipv4Net, _tags: &Tags) -> Ec2Result<String> {
        Err(unsupported("create_vpc"))
    }
    /// Turns DNS resolution and DNS hostnames on (ModifyVpcAttribute takes one per call).
    async fn enable_vpc_dns(&self, _vpc_id: &str, _dns: VpcDns) -> Ec2Result<()> {
        Err(unsupported("enable_vpc_dns"))
    }
    async fn delete_vpc(&self, _vpc_id: &str) -> Ec2Result<()> {
        Err(unsupported("delete_vpc"))
    }

    async fn create_subnet(&self, _spec: &SubnetSpec) -> Ec2Result<String> {
        Err(unsupported("create_subnet"))
    }
    async fn delete_subnet(&self, _subnet_id: &str) -> Ec2Result<()> {
        Err(unsupported("delete_subnet"))
    }

    async fn create_internet_gateway(&self, _tags: &Tags) -> Ec2Result<String> {
        Err(unsupported("create_internet_gateway"))
    }
    async fn attach_internet_gateway(&self, _gateway_id: &str, _vpc_id: &str) -> Ec2Result<()> {
        Err(unsupported("attach_internet_gateway"))
    }
    async fn detach_internet_gateway(&self, _gateway_id: &str, _vpc_id: &str) -> Ec2Result<()> {
        Err(unsupported("detach_internet_gateway"))
    }
    async fn delete_internet_gateway(&self, _gateway_id: &str) -> Ec2Result<()> {
        Err(unsupported("delete_internet_gateway"))
    }

    async fn create_nat_gateway(&self, _spec: &NatGatewaySpec) -> Ec2Result<String> {
        Err(unsupported("create_nat_gateway"))
    }
    async fn delete_nat_gateway(&self, _nat_gateway_id: &str) -> Ec2Result<()> {
        Err(unsupported("delete_nat_gateway"))
    }

    async fn create_route_table(
        &self,
        _vpc_id: &str,
        _client_token: &str,
        _tags: &Tags,
    ) -> Ec2Result<String> {
        Err(unsupported("create_route_table"))
    }
    /// Sets the table's `0.0.0.0/0` route to `target` (`igw-…` or `nat-…`): CreateRoute, or
    /// ReplaceRoute when `replace`.
    async fn set_default_route(
        &self,
        _route_table_id: &str,
        _target: &str,
        _replace: bool,
    ) -> Ec2Result<()> {
        Err(unsupported("set_default_route"))
    }
    /// Associates a subnet with the table; returns the association id.
    async fn associate_route_table(
        &self,
        _route_table_id: &str,
        _subnet_id: &str,
    ) -> Ec2Result<String> {
        Err(unsupported("associate_route_table"))
    }
    async fn disassociate_route_table(&self, _association_id: &str) -> Ec2Result<()> {
        Err(unsupported("disassociate_route_table"))
    }
    async fn delete_route_table(&self, _route_table_id: &str) -> Ec2Result<()> {
        Err(unsupported("delete_route_table"))
    }

    async fn create_vpc_endpoint(&self, _spec: &EndpointSpec) -> Ec2Result<String> {
        Err(unsupported("create_vpc_endpoint"))
    }
    /// Puts a gateway endpoint on `add` and takes it off `remove` (it routes the service's
    /// prefix list in the route tables it is on).
    async fn change_endpoint_route_tables(
        &self,
        _endpoint_id: &str,
        _add: &[String],
        _remove: &[String],
    ) -> Ec2Result<()> {
        Err(unsupported("change_endpoint_route_tables"))
    }
    async fn delete_vpc_endpoint(&self, _endpoint_id: &str) -> Ec2Result<()> {
        Err(unsupported("delete_vpc_endpoint"))
    }
}
