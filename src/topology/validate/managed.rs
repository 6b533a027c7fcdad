//! `network.create`: the VPC's CIDR and NAT mode, and what the zones may say beside it (no subnet
//! ids, no VPC id; a CIDR only if it is the one kcluster carves for the zone).

use ipnet::Ipv4Net;

use super::{Checker, p};
use crate::provision::network::{self, ManagedNetwork, NatMode};
use crate::topology::diagnostic::FieldPath;
use crate::topology::raw::{RawNat, RawTopology, RawZone};

impl Checker {
    /// The network kcluster creates, when the topology asks for one. A CIDR that cannot be used
    /// is reported and replaced by the default, so that the zones are still checked.
    pub(super) fn managed(&mut self, raw: &RawTopology) -> Option<ManagedNetwork> {
        let n = raw.network.as_ref()?;
        let create = n.create.as_ref()?;
        let path = p(&["network", "create"]);
        if let Some(vpc) = &n.vpc {
            self.error(
                p(&["network", "vpc"]),
                format!("`{vpc}`: not with `network.create`, which makes kcluster create the VPC"),
                "remove `vpc` to let kcluster create and own the network, or remove `create` to use your VPC (each zone then names its `subnet`)",
            );
        }
        let fallback = || network::DEFAULT_CIDR.parse::<Ipv4Net>().unwrap_or_default();
        let cidr = match create.cidr.as_deref() {
            None => fallback(),
            Some(c) => match c.parse::<Ipv4Net>() {
                Err(_) => {
                    self.error(
                        path.key("cidr"),
                        format!("`{c}` is not an IPv4 CIDR"),
                        format!("write it like `{}`", network::DEFAULT_CIDR),
                    );
                    fallback()
                }
                Ok(net) if net != net.trunc() => {
                    self.error(
                        path.key("cidr"),
                        format!("`{c}` has host bits set"),
                        format!("the VPC's CIDR is `{}`", net.trunc()),
                    );
                    fallback()
                }
                Ok(net) => match network::cidr_problem(net) {
                    Some((message, fix)) => {
                        self.error(path.key("cidr"), message, fix);
                        fallback()
                    }
                    None => net,
                },
            },
        };
        let nat = match create.nat {
            Some(RawNat::One) => NatMode::One,
            Some(RawNat::PerZone) | None => NatMode::PerZone,
        };
        Some(ManagedNetwork { cidr, nat })
    }

    /// The private subnet kcluster carves for zone `name` (the zone's CIDR), refusing a subnet
    /// id and a CIDR other than that one.
    pub(super) fn managed_zone_cidr(
        &mut self,
        m: &ManagedNetwork,
        path: &FieldPath,
        name: &str,
        region: Option<&str>,
        z: &RawZone,
    ) -> Option<Ipv4Net> {
        if let Some(s) = &z.subnet {
            self.error(
                path.key("subnet"),
                format!("`{s}`: not with `network.create`, which makes kcluster create this zone's subnets"),
                "remove `subnet`, or remove `network.create` to use subnets you made",
            );
        }
        let region = region?;
        let Some(cidrs) = network::zone_index(region, name).and_then(|i| network::carve(m.cidr, i))
        else {
            self.error(
                path.key("name"),
                format!(
                    "`{name}`: kcluster places each zone's subnets in the VPC it creates by the letter ending the zone's name (`{region}a` to `{region}o`), and this name has none"
                ),
                "use the region's lettered zones, or bring your own VPC (`network.vpc` with `zones[].subnet`)",
            );
            return None;
        };
        if let Some(c) = &z.cidr
            && c.parse::<Ipv4Net>().ok() != Some(cidrs.private)
        {
            self.error(
                path.key("cidr"),
                format!(
                    "`{c}` is not the private subnet kcluster carves for {name} from {}: {}",
                    m.cidr, cidrs.private
                ),
                format!(
                    "remove `cidr` (with `network.create` kcluster carves it), or set `cidr: {}`",
                    cidrs.private
                ),
            );
        }
        Some(cidrs.private)
    }
}

#[cfg(test)]
mod tests {
    use crate::provision::network::NatMode;
    use crate::topology::load;

    const ZONES: &str = "name: demo\nregion: eu-west-1\nzones:\n  - name: eu-west-1a\n  - name: eu-west-1b\n  - name: eu-west-1c\n";

    /// Every problem of `yaml` as `file:line: path: message (help)`.
    fn problems(yaml: &str) -> Vec<String> {
        match load("t.yaml", yaml.as_bytes()) {
            Ok(_) => Vec::new(),
            Err(r) => r
                .errors()
                .map(|d| {
                    format!(
                        "t.yaml:{}: {}: {} ({})",
                        d.location.map_or(0, |l| l.line),
                        d.path,
                        d.message,
                        d.help.as_deref().unwrap_or("")
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn zones_without_a_cidr_get_the_private_subnets_kcluster_carves() {
        let c = match load(
            "t.yaml",
            format!("{ZONES}network:\n  create: {{cidr: 10.9.0.0/16, nat: one}}\n").as_bytes(),
        ) {
            Ok(l) => l.cluster,
            Err(r) => panic!("{r}"),
        };
        let cidrs: Vec<String> = c.zones.iter().map(|z| z.cidr.to_string()).collect();
        assert_eq!(cidrs, ["10.9.0.0/20", "10.9.16.0/20", "10.9.32.0/20"]);
        let m = c.network.create.clone().expect("managed");
        assert_eq!(m.nat, NatMode::One);
        // Nodes are placed in the private subnets, clients allowed from them.
        let b1 = c.node("broker-1").expect("broker-1");
        assert_eq!(b1.address.to_string(), "10.9.0.101");
        assert_eq!(c.network.client_cidrs.len(), 3);
        // `create: {}` is the default CIDR with a NAT gateway per zone.
        let d = match load(
            "t.yaml",
            format!("{ZONES}network:\n  create: {{}}\n").as_bytes(),
        ) {
            Ok(l) => l.cluster,
            Err(r) => panic!("{r}"),
        };
        let m = d.network.create.expect("managed");
        assert_eq!(
            (m.cidr.to_string(), m.nat),
            ("10.42.0.0/16".into(), NatMode::PerZone)
        );
    }

    #[test]
    fn a_subnet_id_or_a_vpc_id_beside_create_is_refused_at_its_line_with_the_fix() {
        let yaml = "name: demo\nregion: eu-west-1\nzones:\n  - name: eu-west-1a\n    subnet: subnet-0abc\n  - name: eu-west-1b\n  - name: eu-west-1c\nnetwork:\n  vpc: vpc-0abc\n  create: {}\n";
        assert_eq!(
            problems(yaml),
            [
                "t.yaml:5: zones[0].subnet: `subnet-0abc`: not with `network.create`, which makes kcluster create this zone's subnets (remove `subnet`, or remove `network.create` to use subnets you made)",
                "t.yaml:9: network.vpc: `vpc-0abc`: not with `network.create`, which makes kcluster create the VPC (remove `vpc` to let kcluster create and own the network, or remove `create` to use your VPC (each zone then names its `subnet`))",
            ]
        );
    }

    #[test]
    fn a_zone_cidr_other_than_the_carved_one_is_refused_naming_the_right_one() {
        let yaml = "name: demo\nregion: eu-west-1\nzones:\n  - name: eu-west-1a\n    cidr: 10.42.0.0/20\n  - name: eu-west-1b\n    cidr: 10.42.32.0/20\n  - name: eu-west-1c\nnetwork:\n  create: {}\n";
        assert_eq!(
            problems(yaml),
            [
                "t.yaml:7: zones[1].cidr: `10.42.32.0/20` is not the private subnet kcluster carves for eu-west-1b from 10.42.0.0/16: 10.42.16.0/20 (remove `cidr` (with `network.create` kcluster carves it), or set `cidr: 10.42.16.0/20`)"
            ]
        );
    }

    #[test]
    fn a_public_too_large_too_small_or_malformed_vpc_cidr_is_refused() {
        for (cidr, expected) in [
            (
                "8.8.0.0/16",
                "network.create.cidr: 8.8.0.0/16 is not a private range (RFC 1918)",
            ),
            (
                "10.0.0.0/12",
                "network.create.cidr: a /12 VPC cannot be carved into kcluster's subnets",
            ),
            (
                "10.0.0.0/24",
                "network.create.cidr: a /24 VPC cannot be carved into kcluster's subnets",
            ),
            (
                "10.0.0.1/16",
                "network.create.cidr: `10.0.0.1/16` has host bits set",
            ),
            (
                "ten/16",
                "network.create.cidr: `ten/16` is not an IPv4 CIDR",
            ),
        ] {
            let found = problems(&format!("{ZONES}network:\n  create:\n    cidr: {cidr}\n"));
            assert_eq!(found.len(), 1, "{cidr}: {found:?}");
            assert!(
                found[0].starts_with(&format!("t.yaml:9: {expected}")),
                "{cidr}: {found:?}"
            );
        }
        let found = problems(&format!("{ZONES}network:\n  create:\n    nat: two\n"));
        assert!(
            found.len() == 1
                && found[0].contains("unknown variant `two`, expected `one` or `per-zone`"),
            "{found:?}"
        );
    }

    #[test]
    fn a_zone_without_a_letter_cannot_be_placed_in_the_created_vpc() {
        let yaml = "name: demo\nregion: us-west-2\nzones:\n  - name: us-west-2a\n  - name: us-west-2b\n  - name: us-west-2-lax-1a\nnetwork:\n  create: {}\n";
        let found = problems(yaml);
        assert!(
            found.iter().any(|p| p.starts_with("t.yaml:6: zones[2].name: `us-west-2-lax-1a`: kcluster places each zone's subnets in the VPC it creates by the letter ending the zone's name")),
            "{found:?}"
        );
    }
}
