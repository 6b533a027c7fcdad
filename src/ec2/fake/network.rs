//! The fake's network: VPCs, subnets, internet gateways, NAT gateways, route tables and gateway
//! endpoints, with what EC2 enforces where kcluster relies on it: a NAT gateway is `pending` for
//! a while after its creation and `deleting` for a while after its deletion (its Elastic IP stays
//! associated until it is gone), a subnet, gateway, route table or VPC still in use is a
//! `DependencyViolation`, and ClientTokens are idempotent (a deleted NAT gateway's token returns
//! it again).

use async_trait::async_trait;
use ipnet::Ipv4Net;

use super::{FakeEc2, State, has_cluster};
use crate::ec2::network::{
    Ec2Network, EndpointSpec, InternetGateway, NatGateway, NatGatewaySpec, NatState, NetRouteTable,
    NetSubnet, SubnetSpec, Vpc, VpcDns, VpcEndpoint,
};
use crate::ec2::{DefaultRoute, Ec2Error, Ec2Result, Subnet, Tags};

/// API calls a NAT gateway stays `pending` after its creation, and `deleting` after its deletion.
const NAT_TRANSITION_CALLS: u32 = 3;

#[derive(Debug, Default)]
pub(super) struct NetState {
    vpcs: Vec<(Vpc, VpcDns)>,
    subnets: Vec<NetSubnet>,
    gateways: Vec<InternetGateway>,
    nats: Vec<NatGateway>,
    /// NAT gateway id → API calls left until its state changes (pending → available,
    /// deleting → deleted).
    nat_transitions: Vec<(String, u32)>,
    tables: Vec<NetRouteTable>,
    endpoints: Vec<VpcEndpoint>,
    /// ClientToken → the id its first call made.
    tokens: Vec<(String, String)>,
}

impl State {
    /// Time passes by one API call: NAT gateways come closer to available, or to deleted (then
    /// their Elastic IP is free again).
    pub(super) fn tick_network(&mut self) {
        let mut changed = Vec::new();
        for (id, left) in &mut self.net.nat_transitions {
            *left = left.saturating_sub(1);
            if *left == 0 {
                changed.push(id.clone());
            }
        }
        self.net.nat_transitions.retain(|(_, left)| *left > 0);
        for id in changed {
            let Some(n) = self.net.nats.iter_mut().find(|n| n.id == id) else {
                continue;
            };
            match n.state {
                NatState::Pending => n.state = NatState::Available,
                NatState::Deleting => {
                    n.state = NatState::Deleted;
                    if let Some(a) = n
                        .allocation_id
                        .as_ref()
                        .and_then(|a| self.addresses.get_mut(a))
                    {
                        a.association_id = None;
                        a.interface_id = None;
                    }
                }
                _ => {}
            }
        }
    }

    /// Whether a NAT gateway not deleted yet holds the Elastic IP `allocation_id`.
    pub(super) fn nat_holds(&self, allocation_id: &str) -> bool {
        self.net.nats.iter().any(|n| {
            n.state != NatState::Deleted && n.allocation_id.as_deref() == Some(allocation_id)
        })
    }

    fn token(&self, token: &str) -> Option<String> {
        self.net
            .tokens
            .iter()
            .find(|(t, _)| t == token)
            .map(|(_, id)| id.clone())
    }

    fn vpc_exists(&self, op: &'static str, vpc_id: &str) -> Ec2Result<()> {
        if self.net.vpcs.iter().any(|(v, _)| v.id == vpc_id) {
            Ok(())
        } else {
            Err(Ec2Error::new(op, "InvalidVpcID.NotFound", vpc_id))
        }
    }

    /// Whether `operation`'s next call is to be carried out but answered with a timeout.
    fn answer_lost(&mut self, operation: &str) -> bool {
        match self.lose_answer.iter().position(|o| o == operation) {
            Some(i) => {
                self.lose_answer.remove(i);
                true
            }
            None => false,
        }
    }
}

fn dependency(op: &'static str, what: String) -> Ec2Error {
    Ec2Error::new(op, "DependencyViolation", what)
}

fn lost(op: &'static str) -> Ec2Error {
    Ec2Error::new(op, "Timeout", "answer lost")
}

impl FakeEc2 {
    /// Makes a call of `operation` with `token`: the id its first call made, if any.
    fn replayed(&self, operation: &'static str, token: &str) -> Ec2Result<Option<String>> {
        self.call(operation)?;
        Ok(self.lock().token(token))
    }

    /// Every NAT gateway, in any state.
    pub fn nat_gateways(&self) -> Vec<NatGateway> {
        self.lock().net.nats.clone()
    }

    /// Every VPC the network calls made (the default VPC is not one).
    pub fn vpcs(&self) -> Vec<Vpc> {
        self.lock()
            .net
            .vpcs
            .iter()
            .map(|(v, _)| v.clone())
            .collect()
    }

    /// Every subnet the network calls made.
    pub fn net_subnets(&self) -> Vec<NetSubnet> {
        self.lock().net.subnets.clone()
    }

    pub fn internet_gateways(&self) -> Vec<InternetGateway> {
        self.lock().net.gateways.clone()
    }

    pub fn net_route_tables(&self) -> Vec<NetRouteTable> {
        self.lock().net.tables.clone()
    }

    pub fn vpc_endpoints(&self) -> Vec<VpcEndpoint> {
        self.lock().net.endpoints.clone()
    }

    /// Makes a VPC as someone else would, with these tags; returns its id.
    pub fn insert_vpc(&self, cidr: &str, tags: Tags) -> String {
        let mut s = self.lock();
        let id = s.id("vpc");
        let vpc = Vpc {
            id: id.clone(),
            cidr: cidr.parse().expect("test CIDR"),
            tags,
        };
        s.net.vpcs.push((
            vpc,
            VpcDns {
                support: true,
                hostnames: false,
            },
        ));
        id
    }

    /// Deletes a NAT gateway as someone else would (it goes through `deleting`).
    pub fn delete_nat_by_hand(&self, id: &str) {
        let mut s = self.lock();
        if let Some(n) = s.net.nats.iter_mut().find(|n| n.id == id) {
            n.state = NatState::Deleting;
            s.net
                .nat_transitions
                .push((id.to_string(), NAT_TRANSITION_CALLS));
        }
    }

    /// Turns a VPC's DNS hostnames off, as someone else would.
    pub fn disable_dns_hostnames(&self, vpc_id: &str) {
        let mut s = self.lock();
        if let Some((_, dns)) = s.net.vpcs.iter_mut().find(|(v, _)| v.id == vpc_id) {
            dns.hostnames = false;
        }
    }
}

fn tagged<'a, T>(items: &'a [T], cluster: &str, tags: impl Fn(&T) -> &Tags) -> Vec<T>
where
    T: Clone + 'a,
{
    items
        .iter()
        .filter(|i| has_cluster(tags(i), cluster))
        .cloned()
        .collect()
}

#[async_trait]
impl Ec2Network for FakeEc2 {
    async fn find_vpcs(&self, cluster: &str) -> Ec2Result<Vec<Vpc>> {
        self.call("DescribeVpcs")?;
        let s = self.lock();
        Ok(s.net
            .vpcs
            .iter()
            .map(|(v, _)| v.clone())
            .filter(|v| has_cluster(&v.tags, cluster))
            .collect())
    }

    async fn vpc_dns(&self, vpc_id: &str) -> Ec2Result<VpcDns> {
        const OP: &str = "DescribeVpcAttribute";
        self.call(OP)?;
        self.call(OP)?;
        let s = self.lock();
        s.net
            .vpcs
            .iter()
            .find(|(v, _)| v.id == vpc_id)
            .map(|(_, d)| *d)
            .ok_or_else(|| Ec2Error::new(OP, "InvalidVpcID.NotFound", vpc_id))
    }

    async fn find_subnets(&self, cluster: &str) -> Ec2Result<Vec<NetSubnet>> {
        self.call("DescribeSubnets")?;
        let s = self.lock();
        let mut out = tagged(&s.net.subnets, cluster, |n| &n.tags);
        for n in &mut out {
            let used = s
                .interfaces
                .values()
                .filter(|i| i.subnet_id == n.id)
                .count() as u32;
            let size = 1u32 << (32 - u32::from(n.cidr.prefix_len()));
            n.available_addresses = size.saturating_sub(5 + used);
        }
        Ok(out)
    }

    async fn find_internet_gateways(&self, cluster: &str) -> Ec2Result<Vec<InternetGateway>> {
        self.call("DescribeInternetGateways")?;
        Ok(tagged(&self.lock().net.gateways, cluster, |g| &g.tags))
    }

    async fn find_nat_gateways(&self, cluster: &str) -> Ec2Result<Vec<NatGateway>> {
        self.call("DescribeNatGateways")?;
        Ok(tagged(&self.lock().net.nats, cluster, |n| &n.tags))
    }

    async fn find_route_tables(&self, cluster: &str) -> Ec2Result<Vec<NetRouteTable>> {
        self.call("DescribeRouteTables")?;
        Ok(tagged(&self.lock().net.tables, cluster, |t| &t.tags))
    }

    async fn find_vpc_endpoints(&self, cluster: &str) -> Ec2Result<Vec<VpcEndpoint>> {
        self.call("DescribeVpcEndpoints")?;
        Ok(tagged(&self.lock().net.endpoints, cluster, |e| &e.tags))
    }

    async fn create_vpc(&self, cidr: Ipv4Net, tags: &Tags) -> Ec2Result<String> {
        const OP: &str = "CreateVpc";
        self.call(OP)?;
        let mut s = self.lock();
        let id = s.id("vpc");
        let vpc = Vpc {
            id: id.clone(),
            cidr,
            tags: tags.clone(),
        };
        // As EC2's: DNS resolution on, DNS hostnames off.
        s.net.vpcs.push((
            vpc,
            VpcDns {
                support: true,
                hostnames: false,
            },
        ));
        if s.answer_lost(OP) {
            return Err(lost(OP));
        }
        Ok(id)
    }

    async fn enable_vpc_dns(&self, vpc_id: &str, dns: VpcDns) -> Ec2Result<()> {
        const OP: &str = "ModifyVpcAttribute";
        for on in [dns.support, dns.hostnames] {
            if on {
                self.call(OP)?;
            }
        }
        let mut s = self.lock();
        let (_, d) = s
            .net
            .vpcs
            .iter_mut()
            .find(|(v, _)| v.id == vpc_id)
            .ok_or_else(|| Ec2Error::new(OP, "InvalidVpcID.NotFound", vpc_id))?;
        d.support |= dns.support;
        d.hostnames |= dns.hostnames;
        Ok(())
    }

    async fn delete_vpc(&self, vpc_id: &str) -> Ec2Result<()> {
        const OP: &str = "DeleteVpc";
        self.call(OP)?;
        let mut s = self.lock();
        s.vpc_exists(OP, vpc_id)?;
        let busy = s.net.subnets.iter().any(|n| n.vpc_id == vpc_id)
            || s.net
                .gateways
                .iter()
                .any(|g| g.attached_to.iter().any(|v| v == vpc_id))
            || s.net.tables.iter().any(|t| t.vpc_id == vpc_id)
            || s.groups.values().any(|g| g.vpc_id == vpc_id)
            || s.net
                .endpoints
                .iter()
                .any(|e| e.vpc_id == vpc_id && e.is_live());
        if busy {
            return Err(dependency(
                OP,
                format!("The vpc '{vpc_id}' has dependencies and cannot be deleted."),
            ));
        }
        s.net.vpcs.retain(|(v, _)| v.id != vpc_id);
        Ok(())
    }

    async fn create_subnet(&self, spec: &SubnetSpec) -> Ec2Result<String> {
        const OP: &str = "CreateSubnet";
        self.call(OP)?;
        let mut s = self.lock();
        s.vpc_exists(OP, &spec.vpc_id)?;
        let conflict = s.net.subnets.iter().any(|n| {
            n.vpc_id == spec.vpc_id && (n.cidr.contains(&spec.cidr) || spec.cidr.contains(&n.cidr))
        });
        if conflict {
            return Err(Ec2Error::new(
                OP,
                "InvalidSubnet.Conflict",
                format!("The CIDR '{}' conflicts with another subnet", spec.cidr),
            ));
        }
        let id = s.id("subnet");
        s.net.subnets.push(NetSubnet {
            id: id.clone(),
            vpc_id: spec.vpc_id.clone(),
            zone: spec.zone.clone(),
            cidr: spec.cidr,
            available_addresses: 0,
            tags: spec.tags.clone(),
        });
        // Interfaces are made in it like in any subnet.
        s.subnets.push(Subnet {
            id: id.clone(),
            vpc_id: spec.vpc_id.clone(),
            zone: spec.zone.clone(),
            cidr: spec.cidr,
            available_addresses: 0,
        });
        if s.answer_lost(OP) {
            return Err(lost(OP));
        }
        Ok(id)
    }

    async fn delete_subnet(&self, subnet_id: &str) -> Ec2Result<()> {
        const OP: &str = "DeleteSubnet";
        self.call(OP)?;
        let mut s = self.lock();
        if !s.net.subnets.iter().any(|n| n.id == subnet_id) {
            return Err(Ec2Error::new(OP, "InvalidSubnetID.NotFound", subnet_id));
        }
        let busy = s.interfaces.values().any(|i| i.subnet_id == subnet_id)
            || s.net
                .nats
                .iter()
                .any(|n| n.subnet_id == subnet_id && n.state != NatState::Deleted);
        if busy {
            return Err(dependency(
                OP,
                format!("The subnet '{subnet_id}' has dependencies and cannot be deleted."),
            ));
        }
        s.net.subnets.retain(|n| n.id != subnet_id);
        s.subnets.retain(|n| n.id != subnet_id);
        for t in &mut s.net.tables {
            t.associations.retain(|(_, sub)| sub != subnet_id);
        }
        Ok(())
    }

    async fn create_internet_gateway(&self, tags: &Tags) -> Ec2Result<String> {
        const OP: &str = "CreateInternetGateway";
        self.call(OP)?;
        let mut s = self.lock();
        let id = s.id("igw");
        s.net.gateways.push(InternetGateway {
            id: id.clone(),
            attached_to: Vec::new(),
            tags: tags.clone(),
        });
        if s.answer_lost(OP) {
            return Err(lost(OP));
        }
        Ok(id)
    }

    async fn attach_internet_gateway(&self, gateway_id: &str, vpc_id: &str) -> Ec2Result<()> {
        const OP: &str = "AttachInternetGateway";
        self.call(OP)?;
        let mut s = self.lock();
        s.vpc_exists(OP, vpc_id)?;
        let g = s
            .net
            .gateways
            .iter_mut()
            .find(|g| g.id == gateway_id)
            .ok_or_else(|| Ec2Error::new(OP, "InvalidInternetGatewayID.NotFound", gateway_id))?;
        if !g.attached_to.is_empty() {
            return Err(Ec2Error::new(
                OP,
                "Resource.AlreadyAssociated",
                format!(
                    "resource {gateway_id} is already attached to network {}",
                    g.attached_to[0]
                ),
            ));
        }
        g.attached_to.push(vpc_id.to_string());
        Ok(())
    }

    async fn detach_internet_gateway(&self, gateway_id: &str, vpc_id: &str) -> Ec2Result<()> {
        const OP: &str = "DetachInternetGateway";
        self.call(OP)?;
        let mut s = self.lock();
        // EC2 refuses while the VPC has public addresses mapped (a NAT gateway's).
        let subnets: Vec<String> = s
            .net
            .subnets
            .iter()
            .filter(|n| n.vpc_id == vpc_id)
            .map(|n| n.id.clone())
            .collect();
        if s.net
            .nats
            .iter()
            .any(|n| subnets.contains(&n.subnet_id) && n.state != NatState::Deleted)
        {
            return Err(dependency(
                OP,
                format!(
                    "Network {vpc_id} has some mapped public address(es). Please unmap those public address(es) before detaching the gateway."
                ),
            ));
        }
        let g = s
            .net
            .gateways
            .iter_mut()
            .find(|g| g.id == gateway_id)
            .ok_or_else(|| Ec2Error::new(OP, "InvalidInternetGatewayID.NotFound", gateway_id))?;
        if !g.attached_to.iter().any(|v| v == vpc_id) {
            return Err(Ec2Error::new(
                OP,
                "Gateway.NotAttached",
                format!("resource {gateway_id} is not attached to network {vpc_id}"),
            ));
        }
        g.attached_to.retain(|v| v != vpc_id);
        Ok(())
    }

    async fn delete_internet_gateway(&self, gateway_id: &str) -> Ec2Result<()> {
        const OP: &str = "DeleteInternetGateway";
        self.call(OP)?;
        let mut s = self.lock();
        match s.net.gateways.iter().find(|g| g.id == gateway_id) {
            None => Err(Ec2Error::new(
                OP,
                "InvalidInternetGatewayID.NotFound",
                gateway_id,
            )),
            Some(g) if !g.attached_to.is_empty() => Err(dependency(
                OP,
                format!(
                    "The internetGateway '{gateway_id}' has dependencies and cannot be deleted."
                ),
            )),
            Some(_) => {
                s.net.gateways.retain(|g| g.id != gateway_id);
                Ok(())
            }
        }
    }

    async fn create_nat_gateway(&self, spec: &NatGatewaySpec) -> Ec2Result<String> {
        const OP: &str = "CreateNatGateway";
        if let Some(id) = self.replayed(OP, &spec.client_token)? {
            return Ok(id);
        }
        let mut s = self.lock();
        let Some(subnet) = s
            .net
            .subnets
            .iter()
            .find(|n| n.id == spec.subnet_id)
            .cloned()
        else {
            return Err(Ec2Error::new(
                OP,
                "InvalidSubnetID.NotFound",
                &spec.subnet_id,
            ));
        };
        let id = s.id("nat");
        let eni = s.id("eni");
        let association = s.id("eipassoc");
        let a = s.addresses.get_mut(&spec.allocation_id).ok_or_else(|| {
            Ec2Error::new(OP, "InvalidAllocationID.NotFound", &spec.allocation_id)
        })?;
        if a.association_id.is_some() {
            return Err(Ec2Error::new(
                OP,
                "Resource.AlreadyAssociated",
                format!(
                    "Elastic IP address [{}] is already associated",
                    spec.allocation_id
                ),
            ));
        }
        a.association_id = Some(association);
        a.interface_id = Some(eni);
        s.net.nats.push(NatGateway {
            id: id.clone(),
            subnet_id: subnet.id.clone(),
            vpc_id: subnet.vpc_id.clone(),
            state: NatState::Pending,
            allocation_id: Some(spec.allocation_id.clone()),
            failure: None,
            tags: spec.tags.clone(),
        });
        s.net
            .nat_transitions
            .push((id.clone(), NAT_TRANSITION_CALLS));
        s.net.tokens.push((spec.client_token.clone(), id.clone()));
        Ok(id)
    }

    async fn delete_nat_gateway(&self, nat_gateway_id: &str) -> Ec2Result<()> {
        const OP: &str = "DeleteNatGateway";
        self.call(OP)?;
        let mut s = self.lock();
        let n = s
            .net
            .nats
            .iter_mut()
            .find(|n| n.id == nat_gateway_id)
            .ok_or_else(|| Ec2Error::new(OP, "NatGatewayNotFound", nat_gateway_id))?;
        if n.state.is_live() || n.state == NatState::Failed {
            n.state = NatState::Deleting;
            s.net.nat_transitions.retain(|(id, _)| id != nat_gateway_id);
            s.net
                .nat_transitions
                .push((nat_gateway_id.to_string(), NAT_TRANSITION_CALLS));
        }
        Ok(())
    }

    async fn create_route_table(
        &self,
        vpc_id: &str,
        client_token: &str,
        tags: &Tags,
    ) -> Ec2Result<String> {
        const OP: &str = "CreateRouteTable";
        if let Some(id) = self.replayed(OP, client_token)? {
            return Ok(id);
        }
        let mut s = self.lock();
        s.vpc_exists(OP, vpc_id)?;
        let id = s.id("rtb");
        s.net.tables.push(NetRouteTable {
            id: id.clone(),
            vpc_id: vpc_id.to_string(),
            associations: Vec::new(),
            default_route: None,
            tags: tags.clone(),
        });
        s.net.tokens.push((client_token.to_string(), id.clone()));
        Ok(id)
    }

    async fn set_default_route(
        &self,
        route_table_id: &str,
        target: &str,
        replace: bool,
    ) -> Ec2Result<()> {
        let op = if replace {
            "ReplaceRoute"
        } else {
            "CreateRoute"
        };
        self.call(op)?;
        let mut s = self.lock();
        let known = s.net.gateways.iter().any(|g| g.id == target)
            || s.net.nats.iter().any(|n| n.id == target);
        if !known {
            let code = if target.starts_with("nat-") {
                "InvalidNatGatewayID.NotFound"
            } else {
                "InvalidGatewayID.NotFound"
            };
            return Err(Ec2Error::new(op, code, target));
        }
        let t = s
            .net
            .tables
            .iter_mut()
            .find(|t| t.id == route_table_id)
            .ok_or_else(|| Ec2Error::new(op, "InvalidRouteTableID.NotFound", route_table_id))?;
        match (&t.default_route, replace) {
            (Some(_), false) => {
                return Err(Ec2Error::new(
                    op,
                    "RouteAlreadyExists",
                    format!("The route identified by 0.0.0.0/0 already exists in {route_table_id}"),
                ));
            }
            (None, true) => {
                return Err(Ec2Error::new(
                    op,
                    "InvalidParameterValue",
                    format!(
                        "There is no route defined for '0.0.0.0/0' in the route table {route_table_id}"
                    ),
                ));
            }
            _ => {}
        }
        t.default_route = Some(DefaultRoute {
            target: target.to_string(),
            active: true,
        });
        Ok(())
    }

    async fn associate_route_table(
        &self,
        route_table_id: &str,
        subnet_id: &str,
    ) -> Ec2Result<String> {
        const OP: &str = "AssociateRouteTable";
        self.call(OP)?;
        let mut s = self.lock();
        if !s.net.subnets.iter().any(|n| n.id == subnet_id) {
            return Err(Ec2Error::new(OP, "InvalidSubnetID.NotFound", subnet_id));
        }
        if s.net
            .tables
            .iter()
            .any(|t| t.associations.iter().any(|(_, sub)| sub == subnet_id))
        {
            return Err(Ec2Error::new(
                OP,
                "Resource.AlreadyAssociated",
                format!(
                    "the specified association for route table {route_table_id} conflicts with an existing association"
                ),
            ));
        }
        let association = s.id("rtbassoc");
        let t = s
            .net
            .tables
            .iter_mut()
            .find(|t| t.id == route_table_id)
            .ok_or_else(|| Ec2Error::new(OP, "InvalidRouteTableID.NotFound", route_table_id))?;
        t.associations
            .push((association.clone(), subnet_id.to_string()));
        Ok(association)
    }

    async fn disassociate_route_table(&self, association_id: &str) -> Ec2Result<()> {
        const OP: &str = "DisassociateRouteTable";
        self.call(OP)?;
        let mut s = self.lock();
        let mut found = false;
        for t in &mut s.net.tables {
            let before = t.associations.len();
            t.associations.retain(|(a, _)| a != association_id);
            found |= t.associations.len() != before;
        }
        if found {
            Ok(())
        } else {
            Err(Ec2Error::new(
                OP,
                "InvalidAssociationID.NotFound",
                association_id,
            ))
        }
    }

    async fn delete_route_table(&self, route_table_id: &str) -> Ec2Result<()> {
        const OP: &str = "DeleteRouteTable";
        self.call(OP)?;
        let mut s = self.lock();
        let Some(t) = s.net.tables.iter().find(|t| t.id == route_table_id) else {
            return Err(Ec2Error::new(
                OP,
                "InvalidRouteTableID.NotFound",
                route_table_id,
            ));
        };
        let endpoint = s
            .net
            .endpoints
            .iter()
            .any(|e| e.is_live() && e.route_tables.iter().any(|r| r == route_table_id));
        if !t.associations.is_empty() || endpoint {
            return Err(dependency(
                OP,
                format!(
                    "The routeTable '{route_table_id}' has dependencies and cannot be deleted."
                ),
            ));
        }
        s.net.tables.retain(|t| t.id != route_table_id);
        Ok(())
    }

    async fn create_vpc_endpoint(&self, spec: &EndpointSpec) -> Ec2Result<String> {
        const OP: &str = "CreateVpcEndpoint";
        if let Some(id) = self.replayed(OP, &spec.client_token)? {
            return Ok(id);
        }
        let mut s = self.lock();
        s.vpc_exists(OP, &spec.vpc_id)?;
        for r in &spec.route_tables {
            if !s.net.tables.iter().any(|t| &t.id == r) {
                return Err(Ec2Error::new(OP, "InvalidRouteTableId.NotFound", r));
            }
        }
        let id = s.id("vpce");
        s.net.endpoints.push(VpcEndpoint {
            id: id.clone(),
            vpc_id: spec.vpc_id.clone(),
            service: spec.service.clone(),
            state: "available".into(),
            route_tables: spec.route_tables.clone(),
            tags: spec.tags.clone(),
        });
        s.net.tokens.push((spec.client_token.clone(), id.clone()));
        Ok(id)
    }

    async fn change_endpoint_route_tables(
        &self,
        endpoint_id: &str,
        add: &[String],
        remove: &[String],
    ) -> Ec2Result<()> {
        const OP: &str = "ModifyVpcEndpoint";
        self.call(OP)?;
        let mut s = self.lock();
        let e = s
            .net
            .endpoints
            .iter_mut()
            .find(|e| e.id == endpoint_id && e.is_live())
            .ok_or_else(|| Ec2Error::new(OP, "InvalidVpcEndpointId.NotFound", endpoint_id))?;
        for r in add {
            if !e.route_tables.contains(r) {
                e.route_tables.push(r.clone());
            }
        }
        e.route_tables.retain(|r| !remove.contains(r));
        Ok(())
    }

    async fn delete_vpc_endpoint(&self, endpoint_id: &str) -> Ec2Result<()> {
        const OP: &str = "DeleteVpcEndpoints";
        self.call(OP)?;
        let mut s = self.lock();
        match s.net.endpoints.iter_mut().find(|e| e.id == endpoint_id) {
            Some(e) => {
                e.state = "deleted".into();
                e.route_tables.clear();
                Ok(())
            }
            None => Err(Ec2Error::new(
                OP,
                "InvalidVpcEndpointId.NotFound",
                endpoint_id,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::NAT_TRANSITION_CALLS;
    use crate::ec2::fake::FakeEc2;
    use crate::ec2::network::{Ec2Network, NatGatewaySpec, NatState, SubnetSpec};
    use crate::ec2::{Ec2, Tags, tags};

    fn tagged(cluster: &str) -> Tags {
        Tags::from([(tags::CLUSTER.to_string(), cluster.to_string())])
    }

    #[tokio::test]
    async fn a_nat_gateway_is_pending_then_available_and_holds_its_address_until_deleted() {
        let f = FakeEc2::default();
        let vpc = f
            .create_vpc("10.42.0.0/16".parse().expect("cidr"), &tagged("n"))
            .await
            .expect("vpc");
        let subnet = f
            .create_subnet(&SubnetSpec {
                vpc_id: vpc.clone(),
                zone: "eu-west-1a".into(),
                cidr: "10.42.240.0/24".parse().expect("cidr"),
                tags: tagged("n"),
            })
            .await
            .expect("subnet");
        let eip = f.allocate_address(&tagged("n")).await.expect("eip");
        let spec = NatGatewaySpec {
            subnet_id: subnet.clone(),
            allocation_id: eip.allocation_id.clone(),
            client_token: "t".into(),
            tags: tagged("n"),
        };
        let nat = f.create_nat_gateway(&spec).await.expect("nat");
        assert_eq!(f.nat_gateways()[0].state, NatState::Pending);
        for _ in 0..NAT_TRANSITION_CALLS {
            f.find_nat_gateways("n").await.expect("describe");
        }
        assert_eq!(f.nat_gateways()[0].state, NatState::Available);
        f.delete_nat_gateway(&nat).await.expect("delete");
        let held = f
            .release_address(&eip.allocation_id)
            .await
            .expect_err("in use");
        assert_eq!(held.code, "AuthFailure");
        let busy = f.delete_subnet(&subnet).await.expect_err("NAT still there");
        assert_eq!(busy.code, "DependencyViolation");
        for _ in 0..NAT_TRANSITION_CALLS {
            f.find_nat_gateways("n").await.expect("describe");
        }
        assert_eq!(f.nat_gateways()[0].state, NatState::Deleted);
        f.release_address(&eip.allocation_id)
            .await
            .expect("released");
        f.delete_subnet(&subnet).await.expect("deleted");
        // The token of the deleted gateway answers with it again, as EC2's does.
        assert_eq!(f.create_nat_gateway(&spec).await.expect("replay"), nat);
    }
}
