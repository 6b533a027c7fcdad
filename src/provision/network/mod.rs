//! The network kcluster creates and owns when the topology says `network.create`, the way eksctl
//! does: a VPC, per zone a private subnet (the nodes) and a public one, an internet gateway, NAT
//! gateways with their Elastic IPs (one, or one per zone), a public route table and a private one
//! per zone, and an S3 gateway endpoint on the private tables. This file holds the layout (the
//! CIDRs carved from the VPC's, zone by zone) and what names each resource: its key (the plan's
//! address and the `kcluster:network` tag), its Name tag and its idempotency tokens.
//! `observe.rs` reads the network, `plan.rs` diffs it, `apply.rs` creates and removes it.

pub mod apply;
pub mod observe;
pub mod plan;

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::cluster::Cluster;
use crate::ec2::{Tags, tags};

/// The VPC CIDR when `network.create` gives none.
pub const DEFAULT_CIDR: &str = "10.42.0.0/16";
/// The VPC sizes kcluster carves: a /16 gives /20 private subnets (4091 addresses each) and /24
/// public ones; a /20 gives /24 private and /28 public subnets, EC2's smallest.
pub const PREFIXES: std::ops::RangeInclusive<u8> = 16..=20;
/// Zones a VPC has room for: its CIDR is cut in 16 blocks, zone `a` takes the first, `b` the
/// second …, and the last block holds the public subnets.
pub const MAX_ZONE_INDEX: u8 = 14;

/// How many NAT gateways carry the private subnets' traffic out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NatMode {
    /// One in the first zone, for every zone: cheapest; the other zones lose their way out
    /// while that zone is down.
    One,
    /// One in each zone, each zone's private subnet behind its own: egress survives the loss of
    /// any zone.
    PerZone,
}

/// `network.create` of the topology.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManagedNetwork {
    pub cidr: Ipv4Net,
    pub nat: NatMode,
}

/// The two subnets of one zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZoneCidrs {
    pub private: Ipv4Net,
    pub public: Ipv4Net,
}

/// The zone's place in the layout: its letter (`eu-west-1a` → 0, `b` → 1 …), so that adding,
/// removing or reordering zones never moves another zone's subnets.
pub fn zone_index(region: &str, zone: &str) -> Option<u8> {
    let rest = zone.strip_prefix(region)?;
    let [letter] = rest.as_bytes() else {
        return None;
    };
    let index = letter.checked_sub(b'a')?;
    (letter.is_ascii_lowercase() && index <= MAX_ZONE_INDEX).then_some(index)
}

/// The private and public subnets of the zone with `index` in `vpc`: the VPC is cut in 16
/// blocks; the private subnet is block `index`, the public one is the `index`th sixteenth of the
/// last block.
pub fn carve(vpc: Ipv4Net, index: u8) -> Option<ZoneCidrs> {
    if !PREFIXES.contains(&vpc.prefix_len()) || index > MAX_ZONE_INDEX {
        return None;
    }
    let mut blocks = vpc.subnets(vpc.prefix_len() + 4).ok()?;
    let private = blocks.nth(usize::from(index))?;
    let last = vpc.subnets(vpc.prefix_len() + 4).ok()?.last()?;
    let public = last
        .subnets(vpc.prefix_len() + 8)
        .ok()?
        .nth(usize::from(index))?;
    Some(ZoneCidrs { private, public })
}

/// Why `cidr` cannot be the VPC kcluster creates, with the fix; `None` when it can.
pub fn cidr_problem(cidr: Ipv4Net) -> Option<(String, String)> {
    let private: [Ipv4Net; 3] = [
        Ipv4Net::new(Ipv4Addr::new(10, 0, 0, 0), 8).unwrap_or_default(),
        Ipv4Net::new(Ipv4Addr::new(172, 16, 0, 0), 12).unwrap_or_default(),
        Ipv4Net::new(Ipv4Addr::new(192, 168, 0, 0), 16).unwrap_or_default(),
    ];
    if !private.iter().any(|p| p.contains(&cidr)) {
        return Some((
            format!("{cidr} is not a private range (RFC 1918)"),
            format!(
                "use a range inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16 that none of your networks uses, e.g. {DEFAULT_CIDR}"
            ),
        ));
    }
    if !PREFIXES.contains(&cidr.prefix_len()) {
        let why = if cidr.prefix_len() < *PREFIXES.start() {
            "EC2 VPCs are at most a /16"
        } else {
            "a /20 is the smallest VPC kcluster carves: each zone's public subnet is a sixteenth of a sixteenth of it, and EC2's smallest subnet is a /28"
        };
        return Some((
            format!(
                "a /{} VPC cannot be carved into kcluster's subnets",
                cidr.prefix_len()
            ),
            format!("use a /16 to /20 ({why}), e.g. {DEFAULT_CIDR}"),
        ));
    }
    None
}

/// The kinds of resource of the network, in the order apply creates them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Vpc,
    InternetGateway,
    PublicSubnet,
    PrivateSubnet,
    NatAddress,
    NatGateway,
    PublicRouteTable,
    PrivateRouteTable,
    S3Endpoint,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::Vpc,
        Kind::InternetGateway,
        Kind::PublicSubnet,
        Kind::PrivateSubnet,
        Kind::NatAddress,
        Kind::NatGateway,
        Kind::PublicRouteTable,
        Kind::PrivateRouteTable,
        Kind::S3Endpoint,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Vpc => "vpc",
            Kind::InternetGateway => "internet_gateway",
            Kind::PublicSubnet => "public_subnet",
            Kind::PrivateSubnet => "private_subnet",
            Kind::NatAddress => "nat_address",
            Kind::NatGateway => "nat_gateway",
            Kind::PublicRouteTable => "public_route_table",
            Kind::PrivateRouteTable => "private_route_table",
            Kind::S3Endpoint => "s3_endpoint",
        }
    }

    /// Whether there is one per zone (a key names its zone).
    pub fn per_zone(self) -> bool {
        matches!(
            self,
            Kind::PublicSubnet
                | Kind::PrivateSubnet
                | Kind::NatAddress
                | Kind::NatGateway
                | Kind::PrivateRouteTable
        )
    }

    /// The prefix of EC2's ids of the kind.
    fn id_prefix(self) -> &'static str {
        match self {
            Kind::Vpc => "vpc",
            Kind::InternetGateway => "igw",
            Kind::PublicSubnet | Kind::PrivateSubnet => "subnet",
            Kind::NatAddress => "eipalloc",
            Kind::NatGateway => "nat",
            Kind::PublicRouteTable | Kind::PrivateRouteTable => "rtb",
            Kind::S3Endpoint => "vpce",
        }
    }

    /// What people call it, for messages.
    pub fn title(self) -> &'static str {
        match self {
            Kind::Vpc => "VPC",
            Kind::InternetGateway => "internet gateway",
            Kind::PublicSubnet => "public subnet",
            Kind::PrivateSubnet => "private subnet",
            Kind::NatAddress => "NAT gateway's Elastic IP",
            Kind::NatGateway => "NAT gateway",
            Kind::PublicRouteTable => "public route table",
            Kind::PrivateRouteTable => "private route table",
            Kind::S3Endpoint => "S3 gateway endpoint",
        }
    }
}

/// One resource of the network: its kind and, for per-zone kinds, its zone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Key {
    pub kind: Kind,
    pub zone: Option<String>,
}

impl Key {
    pub fn new(kind: Kind, zone: Option<&str>) -> Key {
        Key {
            kind,
            zone: zone.map(String::from),
        }
    }

    pub fn of(kind: Kind) -> Key {
        Key::new(kind, None)
    }

    pub fn zoned(kind: Kind, zone: &str) -> Key {
        Key::new(kind, Some(zone))
    }

    /// The `kcluster:network` tag's value and the plan's address after `network.`:
    /// `vpc`, `private_subnet.eu-west-1a` …
    pub fn tag(&self) -> String {
        match &self.zone {
            Some(z) => format!("{}.{z}", self.kind.as_str()),
            None => self.kind.as_str().to_string(),
        }
    }

    /// The plan's address, e.g. `network.nat_gateway.eu-west-1a`.
    pub fn address(&self) -> String {
        format!("network.{}", self.tag())
    }

    /// Reads a `kcluster:network` tag's value; `None` for one kcluster did not write.
    pub fn parse(tag: &str) -> Option<Key> {
        let (kind, zone) = match tag.split_once('.') {
            Some((k, z)) => (k, Some(z)),
            None => (tag, None),
        };
        let kind = Kind::ALL.into_iter().find(|k| k.as_str() == kind)?;
        match (kind.per_zone(), zone) {
            (true, Some(z)) if !z.is_empty() => Some(Key::zoned(kind, z)),
            (false, None) => Some(Key::of(kind)),
            _ => None,
        }
    }

    /// The id the plan shows for a resource apply has not made yet, shaped like EC2's
    /// (`nat-(new eu-west-1a)`, `subnet-(new private eu-west-1a)`), so that what reads ids by
    /// their prefix (the egress analysis) reads it right.
    pub fn pending_id(&self) -> String {
        let mut what = String::from("new");
        match self.kind {
            Kind::PublicSubnet | Kind::PublicRouteTable => what.push_str(" public"),
            Kind::PrivateSubnet | Kind::PrivateRouteTable => what.push_str(" private"),
            _ => {}
        }
        if let Some(z) = &self.zone {
            what.push(' ');
            what.push_str(z);
        }
        format!("{}-({what})", self.kind.id_prefix())
    }

    /// The Name tag: `<cluster>-vpc`, `<cluster>-private-eu-west-1a` …
    pub fn name(&self, cluster: &str) -> String {
        let what = match self.kind {
            Kind::Vpc => "vpc",
            Kind::InternetGateway => "igw",
            Kind::PublicSubnet | Kind::PublicRouteTable => "public",
            Kind::PrivateSubnet | Kind::PrivateRouteTable => "private",
            Kind::NatAddress | Kind::NatGateway => "nat",
            Kind::S3Endpoint => "s3",
        };
        match &self.zone {
            Some(z) => format!("{cluster}-{what}-{z}"),
            None => format!("{cluster}-{what}"),
        }
    }

    /// The tags the resource is created with: the cluster's, its Name and its key.
    pub fn tags(&self, cluster: &Cluster) -> Tags {
        let mut t = crate::provision::desired::base_tags(cluster, &self.name(&cluster.name));
        t.insert(tags::NETWORK.into(), self.tag());
        t
    }

    /// An idempotency token for the resource's creation, from the cluster, the key and what the
    /// creation depends on (so a new VPC, subnet or address is a new creation).
    pub fn token(&self, cluster: &str, parts: &[&str]) -> String {
        let digest = Sha256::digest(format!("{cluster}/{}/{}", self.tag(), parts.join("/")));
        format!("kcluster-{}", &hex::encode(digest)[..40])
    }
}

/// Whether `id` is one the plan made up for a resource apply has not made yet.
pub fn is_pending(id: &str) -> bool {
    id.contains("-(new")
}

/// The S3 service of `region`, whose gateway endpoint the private route tables get (Amazon Linux
/// 2023 serves its package repositories from S3).
pub fn s3_service(region: &str) -> String {
    format!("com.amazonaws.{region}.s3")
}

#[cfg(test)]
mod tests {
    use super::{Key, Kind, carve, cidr_problem, is_pending, zone_index};

    fn net(s: &str) -> ipnet::Ipv4Net {
        s.parse().expect("CIDR")
    }

    #[test]
    fn zones_are_carved_by_their_letter_into_a_private_block_and_a_public_slice() {
        let vpc = net("10.42.0.0/16");
        let cidrs: Vec<(String, String)> = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
            .iter()
            .map(|z| {
                let c = carve(vpc, zone_index("eu-west-1", z).expect("index")).expect("carved");
                (c.private.to_string(), c.public.to_string())
            })
            .collect();
        assert_eq!(
            cidrs,
            [
                ("10.42.0.0/20".into(), "10.42.240.0/24".into()),
                ("10.42.16.0/20".into(), "10.42.241.0/24".into()),
                ("10.42.32.0/20".into(), "10.42.242.0/24".into()),
            ]
        );
        // A /20 VPC: /24 private subnets and /28 public ones, EC2's smallest.
        let small = carve(net("192.168.16.0/20"), 2).expect("carved");
        assert_eq!(
            (small.private.to_string(), small.public.to_string()),
            ("192.168.18.0/24".into(), "192.168.31.32/28".into())
        );
    }

    #[test]
    fn no_two_zones_subnets_overlap_whatever_the_vpc_size() {
        for vpc in ["10.0.0.0/16", "172.20.0.0/18", "192.168.16.0/20"] {
            let all: Vec<ipnet::Ipv4Net> = (0..=super::MAX_ZONE_INDEX)
                .flat_map(|i| {
                    let c = carve(net(vpc), i).expect("carved");
                    [c.private, c.public]
                })
                .collect();
            for (i, a) in all.iter().enumerate() {
                assert!(net(vpc).contains(a), "{a} in {vpc}");
                for b in &all[i + 1..] {
                    assert!(!a.contains(b) && !b.contains(a), "{a} and {b} in {vpc}");
                }
            }
        }
    }

    #[test]
    fn a_zone_index_is_its_letter_and_other_zone_names_have_none() {
        assert_eq!(zone_index("us-east-1", "us-east-1f"), Some(5));
        assert_eq!(zone_index("us-west-2", "us-west-2-lax-1a"), None);
        assert_eq!(zone_index("eu-west-1", "eu-west-1A"), None);
        assert_eq!(zone_index("eu-west-1", "eu-west-1p"), None);
    }

    #[test]
    fn a_public_or_wrongly_sized_cidr_is_refused_with_a_fix() {
        assert!(cidr_problem(net("10.42.0.0/16")).is_none());
        assert!(cidr_problem(net("172.31.0.0/20")).is_none());
        let (m, h) = cidr_problem(net("8.8.0.0/16")).expect("public");
        assert!(m.contains("not a private range (RFC 1918)") && h.contains("10.42.0.0/16"));
        let (m, h) = cidr_problem(net("10.0.0.0/8")).expect("too big");
        assert!(
            m.contains("a /8 VPC") && h.contains("at most a /16"),
            "{m} {h}"
        );
        let (m, h) = cidr_problem(net("10.0.0.0/24")).expect("too small");
        assert!(m.contains("a /24 VPC") && h.contains("/28"), "{m} {h}");
    }

    #[test]
    fn keys_read_back_from_their_tags_and_pending_ids_keep_ec2s_prefix() {
        for key in [
            Key::of(Kind::Vpc),
            Key::zoned(Kind::PrivateSubnet, "eu-west-1a"),
            Key::zoned(Kind::NatGateway, "eu-west-1c"),
            Key::of(Kind::S3Endpoint),
        ] {
            assert_eq!(Key::parse(&key.tag()), Some(key.clone()));
            assert!(is_pending(&key.pending_id()), "{}", key.pending_id());
        }
        assert_eq!(Key::parse("vpc.eu-west-1a"), None);
        assert_eq!(Key::parse("nat_gateway"), None);
        assert_eq!(Key::parse("bastion"), None);
        assert_eq!(
            Key::zoned(Kind::NatGateway, "eu-west-1a").pending_id(),
            "nat-(new eu-west-1a)"
        );
        assert_eq!(
            Key::zoned(Kind::PrivateSubnet, "eu-west-1a").pending_id(),
            "subnet-(new private eu-west-1a)"
        );
        assert_eq!(
            Key::of(Kind::PublicRouteTable).pending_id(),
            "rtb-(new public)"
        );
        assert_eq!(Key::of(Kind::Vpc).pending_id(), "vpc-(new)");
        assert!(!is_pending("nat-0123456789abcdef0"));
    }
}

#[cfg(test)]
mod flow_tests;
