//! How each zone's nodes reach the OS repositories and the Kafka download: the default route
//! (`0.0.0.0/0`) of the zone's subnet, read from its own route table or else the VPC's main one.
//! A NAT gateway is enough; an internet gateway needs a public address on each node, which
//! kcluster arranges as an Elastic IP per node interface; no route at all is refused by plan.

use serde::Serialize;

use crate::ec2::RouteTable;

/// Where a zone's default route goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "target", rename_all = "snake_case")]
pub enum Egress {
    /// A NAT gateway: nodes reach out from their private addresses.
    NatGateway(String),
    /// An internet gateway: only a node with a public address gets out, so each gets an
    /// Elastic IP.
    InternetGateway(String),
    /// A transit gateway, a virtual private gateway, a firewall or proxy appliance…: the
    /// operator's own egress path, trusted as it is.
    Other(String),
}

impl Egress {
    /// Whether nodes behind it need a public address to reach the internet.
    pub fn needs_public_address(&self) -> bool {
        matches!(self, Egress::InternetGateway(_))
    }

    fn describe(&self) -> String {
        match self {
            Egress::NatGateway(t) => format!("NAT gateway {t}"),
            Egress::InternetGateway(t) => {
                format!("internet gateway {t}: each node gets an Elastic IP")
            }
            Egress::Other(t) => format!("{t} (trusted to reach the internet)"),
        }
    }
}

/// One zone's egress, as the plan shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ZoneEgress {
    pub zone: String,
    pub subnet_id: String,
    pub route_table: String,
    pub egress: Egress,
}

impl std::fmt::Display for ZoneEgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}, {}): 0.0.0.0/0 via {}",
            self.zone,
            self.subnet_id,
            self.route_table,
            self.egress.describe()
        )
    }
}

/// The fix for a zone without a way out, shared by every refusal.
const FIX: &str = "add a 0.0.0.0/0 route to a NAT gateway (private subnet), or to an internet gateway (public subnet; kcluster then gives each node an Elastic IP), or name another subnet under `zones[].subnet`";

/// The egress of `subnet_id` in `zone`, or the one-line refusal naming the zone, the subnet
/// and the fix.
pub fn of_subnet(zone: &str, subnet_id: &str, tables: &[RouteTable]) -> Result<ZoneEgress, String> {
    let table = tables
        .iter()
        .find(|t| t.subnets.iter().any(|s| s == subnet_id))
        .or_else(|| tables.iter().find(|t| t.main));
    let refuse = |why: String| {
        format!(
            "zone {zone}: subnet {subnet_id} has no route to the internet ({why}), so its nodes cannot install packages or download Kafka: {FIX}"
        )
    };
    let Some(table) = table else {
        return Err(refuse("no route table serves it".into()));
    };
    let route = match &table.default_route {
        None => {
            return Err(refuse(format!(
                "route table {} has no 0.0.0.0/0 route",
                table.id
            )));
        }
        Some(r) if !r.active => {
            return Err(refuse(format!(
                "the 0.0.0.0/0 route of route table {} goes to {}, which no longer exists (a blackhole)",
                table.id, r.target
            )));
        }
        Some(r) => r,
    };
    let target = route.target.clone();
    let egress = if target.starts_with("nat-") {
        Egress::NatGateway(target)
    } else if target.starts_with("igw-") {
        Egress::InternetGateway(target)
    } else if target.starts_with("pcx-") {
        // EC2 never forwards a peered VPC's traffic on to the internet (no edge-to-edge routing).
        return Err(refuse(format!(
            "route table {}'s 0.0.0.0/0 route goes to the peering connection {target}, and a peered VPC's gateways do not carry another VPC's traffic",
            table.id
        )));
    } else {
        Egress::Other(target)
    };
    Ok(ZoneEgress {
        zone: zone.to_string(),
        subnet_id: subnet_id.to_string(),
        route_table: table.id.clone(),
        egress,
    })
}

#[cfg(test)]
mod tests {
    use super::{Egress, of_subnet};
    use crate::ec2::{DefaultRoute, RouteTable};

    fn table(id: &str, main: bool, subnets: &[&str], target: Option<(&str, bool)>) -> RouteTable {
        RouteTable {
            id: id.into(),
            vpc_id: "vpc-1".into(),
            main,
            subnets: subnets.iter().map(|s| s.to_string()).collect(),
            default_route: target.map(|(t, active)| DefaultRoute {
                target: t.into(),
                active,
            }),
        }
    }

    #[test]
    fn an_explicit_association_beats_the_main_table() {
        let tables = [
            table("rtb-main", true, &[], Some(("igw-1", true))),
            table("rtb-private", false, &["subnet-a"], Some(("nat-1", true))),
        ];
        let a = of_subnet("eu-west-1a", "subnet-a", &tables).expect("a NAT route");
        assert_eq!(
            (a.route_table.as_str(), &a.egress),
            ("rtb-private", &Egress::NatGateway("nat-1".into()))
        );
        let b = of_subnet("eu-west-1b", "subnet-b", &tables).expect("the main table");
        assert_eq!(b.egress, Egress::InternetGateway("igw-1".into()));
        assert!(b.egress.needs_public_address() && !a.egress.needs_public_address());
    }

    #[test]
    fn no_default_route_a_blackhole_or_a_peering_is_refused_in_one_line_naming_the_fix() {
        let cases = [
            (
                table("rtb-1", true, &[], None),
                "route table rtb-1 has no 0.0.0.0/0 route",
            ),
            (
                table("rtb-1", true, &[], Some(("nat-gone", false))),
                "goes to nat-gone, which no longer exists (a blackhole)",
            ),
            (
                table("rtb-1", true, &[], Some(("pcx-1", true))),
                "the peering connection pcx-1",
            ),
        ];
        for (t, why) in cases {
            let e = of_subnet("eu-west-1a", "subnet-a", &[t]).expect_err("no way out");
            assert!(
                e.starts_with("zone eu-west-1a: subnet subnet-a has no route to the internet (")
                    && e.contains(why)
                    && e.contains("add a 0.0.0.0/0 route to a NAT gateway"),
                "{e}"
            );
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }

    #[test]
    fn a_transit_gateway_is_the_operators_egress_and_trusted() {
        let t = table("rtb-1", true, &[], Some(("tgw-1", true)));
        let e = of_subnet("eu-west-1a", "subnet-a", &[t]).expect("trusted");
        assert_eq!(e.egress, Egress::Other("tgw-1".into()));
    }
}
