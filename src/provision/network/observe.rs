//! The network of a cluster as EC2 has it: one Describe per kind of resource, filtered by the
//! cluster tag (and checked again here: not every EC2 applies every filter), plus the VPC's two
//! DNS attributes. A resource is kcluster's own only with a `kcluster:network` tag it can read
//! (a topology cannot set `kcluster:*` tags); one with the cluster's tag and without it is
//! foreign, and refused by name. The NAT gateways' Elastic IPs come from the cluster's addresses,
//! read once for the nodes and the network.

use std::fmt::Write as _;

use serde::Serialize;

use super::{Key, Kind};
use crate::ec2::network::{
    InternetGateway, NatGateway, NatState, NetRouteTable, NetSubnet, Vpc, VpcDns, VpcEndpoint,
};
use crate::ec2::{Address, Ec2, Ec2Result, Tags, tags};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ObservedNetwork {
    pub vpcs: Vec<Vpc>,
    /// The DNS attributes of the network's VPC, when it exists and they were read.
    pub dns: Option<VpcDns>,
    pub subnets: Vec<NetSubnet>,
    pub gateways: Vec<InternetGateway>,
    /// NAT gateways in any state: deleted ones are listed for a while, and count for the next
    /// creation's token.
    pub nats: Vec<NatGateway>,
    /// The NAT gateways' Elastic IPs.
    pub addresses: Vec<Address>,
    pub tables: Vec<NetRouteTable>,
    /// Gateway endpoints not deleted.
    pub endpoints: Vec<VpcEndpoint>,
}

/// The network key a resource's tags give, if kcluster wrote it.
pub fn key_of(t: &Tags) -> Option<Key> {
    t.get(tags::NETWORK).and_then(|v| Key::parse(v))
}

/// Whether an Elastic IP belongs to the network (a NAT gateway's), not to a node.
pub fn is_network_address(a: &Address) -> bool {
    a.tags.contains_key(tags::NETWORK)
}

impl ObservedNetwork {
    /// Reads the cluster's network (six Describe calls, and two for the VPC's DNS attributes
    /// when `dns` and the VPC exists). `addresses` are the cluster's Elastic IPs, of which the
    /// network's are kept.
    pub async fn read(
        ec2: &dyn Ec2,
        cluster: &str,
        addresses: &[Address],
        dns: bool,
    ) -> Ec2Result<ObservedNetwork> {
        let (vpcs, subnets, gateways, nats, tables, endpoints) = futures::try_join!(
            ec2.find_vpcs(cluster),
            ec2.find_subnets(cluster),
            ec2.find_internet_gateways(cluster),
            ec2.find_nat_gateways(cluster),
            ec2.find_route_tables(cluster),
            ec2.find_vpc_endpoints(cluster),
        )?;
        let ours = |t: &Tags| t.get(tags::CLUSTER).is_some_and(|c| c == cluster);
        let mut net = ObservedNetwork {
            vpcs: vpcs.into_iter().filter(|v| ours(&v.tags)).collect(),
            dns: None,
            subnets: subnets.into_iter().filter(|s| ours(&s.tags)).collect(),
            gateways: gateways.into_iter().filter(|g| ours(&g.tags)).collect(),
            nats: nats.into_iter().filter(|n| ours(&n.tags)).collect(),
            addresses: addresses
                .iter()
                .filter(|a| ours(&a.tags) && is_network_address(a))
                .cloned()
                .collect(),
            tables: tables.into_iter().filter(|t| ours(&t.tags)).collect(),
            endpoints: endpoints
                .into_iter()
                .filter(|e| ours(&e.tags) && e.is_live())
                .collect(),
        };
        net.sort();
        if dns
            && let Some(vpc) = net
                .vpcs
                .iter()
                .find(|v| key_of(&v.tags) == Some(Key::of(Kind::Vpc)))
        {
            net.dns = Some(ec2.vpc_dns(&vpc.id).await?);
        }
        Ok(net)
    }

    fn sort(&mut self) {
        self.vpcs.sort_by(|a, b| a.id.cmp(&b.id));
        self.subnets.sort_by(|a, b| a.id.cmp(&b.id));
        self.gateways.sort_by(|a, b| a.id.cmp(&b.id));
        self.nats.sort_by(|a, b| a.id.cmp(&b.id));
        self.addresses
            .sort_by(|a, b| a.allocation_id.cmp(&b.allocation_id));
        self.tables.sort_by(|a, b| a.id.cmp(&b.id));
        self.endpoints.sort_by(|a, b| a.id.cmp(&b.id));
    }

    /// Only what kcluster made (a readable `kcluster:network` tag), and of the NAT gateways
    /// only those not deleted yet.
    pub fn own(&self) -> ObservedNetwork {
        let own = |t: &Tags| key_of(t).is_some();
        ObservedNetwork {
            vpcs: self.vpcs.iter().filter(|v| own(&v.tags)).cloned().collect(),
            dns: self.dns,
            subnets: self
                .subnets
                .iter()
                .filter(|s| own(&s.tags))
                .cloned()
                .collect(),
            gateways: self
                .gateways
                .iter()
                .filter(|g| own(&g.tags))
                .cloned()
                .collect(),
            nats: self
                .nats
                .iter()
                .filter(|n| own(&n.tags) && n.state != NatState::Deleted)
                .cloned()
                .collect(),
            addresses: self
                .addresses
                .iter()
                .filter(|a| own(&a.tags))
                .cloned()
                .collect(),
            tables: self
                .tables
                .iter()
                .filter(|t| own(&t.tags))
                .cloned()
                .collect(),
            endpoints: self
                .endpoints
                .iter()
                .filter(|e| own(&e.tags))
                .cloned()
                .collect(),
        }
    }

    /// Resources with the cluster's tag that kcluster did not make, one sentence each.
    pub fn foreign(&self, cluster: &str) -> Vec<String> {
        let mut found = Vec::new();
        let mut check = |what: &str, id: &str, t: &Tags| {
            if key_of(t).is_none() {
                let name = t
                    .get(tags::NAME)
                    .map_or("no Name tag".to_string(), |n| format!("Name {n}"));
                found.push(format!(
                    "{what} {id} ({name}) carries {}={cluster} without the {} tag kcluster gives the network it creates",
                    tags::CLUSTER,
                    tags::NETWORK
                ));
            }
        };
        for v in &self.vpcs {
            check("VPC", &v.id, &v.tags);
        }
        for s in &self.subnets {
            check("subnet", &s.id, &s.tags);
        }
        for g in &self.gateways {
            check("internet gateway", &g.id, &g.tags);
        }
        for n in self.nats.iter().filter(|n| n.state != NatState::Deleted) {
            check("NAT gateway", &n.id, &n.tags);
        }
        for t in &self.tables {
            check("route table", &t.id, &t.tags);
        }
        for e in &self.endpoints {
            check("VPC endpoint", &e.id, &e.tags);
        }
        found
    }

    /// Resources that stand (NAT gateways not deleted, endpoints not deleted).
    pub fn count(&self) -> usize {
        self.vpcs.len()
            + self.subnets.len()
            + self.gateways.len()
            + self
                .nats
                .iter()
                .filter(|n| n.state != NatState::Deleted)
                .count()
            + self.addresses.len()
            + self.tables.len()
            + self.endpoints.len()
    }

    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    /// The private subnets, as the nodes' side sees subnets (for the room check).
    pub fn private_subnets(&self) -> Vec<crate::ec2::Subnet> {
        self.subnets
            .iter()
            .filter(|s| key_of(&s.tags).is_some_and(|k| k.kind == Kind::PrivateSubnet))
            .map(|s| crate::ec2::Subnet {
                id: s.id.clone(),
                vpc_id: s.vpc_id.clone(),
                zone: s.zone.clone(),
                cidr: s.cidr,
                available_addresses: s.available_addresses,
            })
            .collect()
    }

    /// One line per resource, in the order destroy removes them, for its confirmation list.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let key = |t: &Tags| key_of(t).map_or("-".to_string(), |k| k.tag());
        let mut line = |kind: &str, id: &str, t: &Tags, detail: String| {
            let _ = writeln!(out, "  - {kind:<18} {id:<22} {:<30} {detail}", key(t));
        };
        for e in &self.endpoints {
            line("vpc_endpoint", &e.id, &e.tags, e.service.clone());
        }
        for n in self.nats.iter().filter(|n| n.state != NatState::Deleted) {
            line("nat_gateway", &n.id, &n.tags, n.state.as_str().to_string());
        }
        for a in &self.addresses {
            line("elastic_ip", &a.allocation_id, &a.tags, a.public_ip.clone());
        }
        for g in &self.gateways {
            line("internet_gateway", &g.id, &g.tags, g.attached_to.join(", "));
        }
        for s in &self.subnets {
            line("subnet", &s.id, &s.tags, format!("{} {}", s.zone, s.cidr));
        }
        for t in &self.tables {
            line("route_table", &t.id, &t.tags, String::new());
        }
        for v in &self.vpcs {
            line("vpc", &v.id, &v.tags, v.cidr.to_string());
        }
        out
    }
}
