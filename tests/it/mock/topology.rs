//! Topology files for the moto tests, derived from `tests/it/fixtures/default-vpc.yaml` (the
//! quickstart's cluster in moto's default subnets of eu-west-1): another name, region, node
//! counts, instance types or pinned addresses, and always moto's AL2023 AMI id (moto cannot
//! resolve `resolve:ssm:`). `mock_ec2/network.rs` runs `topologies/minimal.yaml` itself.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::support;

/// moto's AL2023 image (parameter al2023-ami-kernel-default-x86_64) in each region the tests use
/// (tests/support/MOTO_NOTES.md).
fn ami(region: &str) -> &'static str {
    match region {
        "eu-west-1" => super::AMI,
        "us-east-1" => "ami-0d27e0fb3bac4d724",
        other => panic!("no moto AMI known for {other}"),
    }
}

/// A topology being built.
#[derive(Debug, Clone)]
pub struct Topology {
    /// The file it starts from, in the repository.
    base: &'static str,
    name: String,
    region: String,
    zookeepers: u32,
    brokers: u32,
    broker_type: Option<String>,
    /// Pinned (id, zone index, address) of ZooKeeper nodes and of brokers.
    zookeeper_pins: Vec<(u32, usize, String)>,
    broker_pins: Vec<(u32, usize, String)>,
    /// Brokers moved to another zone (id, zone index), their addresses left to kcluster.
    broker_zones: Vec<(u32, usize)>,
    /// The machine image, when not moto's AL2023.
    image: Option<String>,
    /// KRaft mode: the quorum section is `controllers` instead of `zookeeper`.
    kraft: bool,
    /// AZ IDs of zones a, b, c, when the topology gives them.
    az_ids: Option<[String; 3]>,
    /// Monitoring nodes, and the CIDR their Prometheus and Alertmanager are open to.
    monitoring: Option<(u32, String)>,
    /// `network.create.nat: one` (the quickstart only).
    one_nat: bool,
}

impl Topology {
    /// default-vpc.yaml renamed: 3 ZooKeeper nodes and 3 brokers over eu-west-1a/b/c.
    pub fn minimal(name: &str) -> Topology {
        Topology {
            base: "tests/it/fixtures/default-vpc.yaml",
            name: name.into(),
            region: "eu-west-1".into(),
            zookeepers: 3,
            brokers: 3,
            broker_type: None,
            zookeeper_pins: Vec::new(),
            broker_pins: Vec::new(),
            broker_zones: Vec::new(),
            image: None,
            kraft: false,
            az_ids: None,
            monitoring: None,
            one_nat: false,
        }
    }

    /// `topologies/minimal.yaml` itself renamed: the quickstart, in a network kcluster creates
    /// (a NAT gateway per zone).
    pub fn quickstart(name: &str) -> Topology {
        Topology {
            base: "topologies/minimal.yaml",
            ..Topology::minimal(name)
        }
    }

    /// The quickstart with `nat: one` instead of a NAT gateway per zone.
    pub fn one_nat(mut self) -> Topology {
        self.one_nat = true;
        self
    }

    /// KRaft mode (`metadata: kraft`, Kafka 4's default): 3 controllers instead of ZooKeeper.
    pub fn kraft(mut self) -> Topology {
        self.kraft = true;
        self
    }

    /// Gives zones a, b and c these AZ IDs (`zones[].id`), so the brokers rack by AZ ID.
    pub fn az_ids(mut self, ids: [&str; 3]) -> Topology {
        self.az_ids = Some(ids.map(String::from));
        self
    }

    /// Adds `count` monitoring nodes, open (with every exporter) to `cidr`.
    pub fn monitoring(mut self, count: u32, cidr: &str) -> Topology {
        self.monitoring = Some((count, cidr.into()));
        self
    }

    /// Launches from `image` (an `ami-…` moto knows) instead of AL2023.
    pub fn image(mut self, image: &str) -> Topology {
        self.image = Some(image.into());
        self
    }

    pub fn brokers(mut self, count: u32) -> Topology {
        self.brokers = count;
        self
    }

    pub fn broker_type(mut self, instance_type: &str) -> Topology {
        self.broker_type = Some(instance_type.into());
        self
    }

    /// Puts broker `id` in zone `zone` (0, 1, 2 for a, b, c) instead of its round-robin zone.
    pub fn broker_zone(mut self, id: u32, zone: usize) -> Topology {
        self.broker_zones.push((id, zone));
        self
    }

    /// The same zones (moto's default subnets have the same CIDRs in every region) in `region`.
    pub fn region(mut self, region: &str) -> Topology {
        self.region = region.into();
        self
    }

    /// Pins every node's address at `offset + id` of its zone's subnet (ZooKeeper) and
    /// `offset + 100 + id` (brokers), clear of the default `10 + id` and `100 + id`.
    pub fn pinned(mut self, offset: u32) -> Topology {
        let pin = |id: u32, base: u32| {
            let zone = (id as usize - 1) % 3;
            (id, zone, format!("172.31.{}.{}", zone * 16, base + id))
        };
        self.zookeeper_pins = (1..=self.zookeepers).map(|id| pin(id, offset)).collect();
        self.broker_pins = (1..=self.brokers).map(|id| pin(id, offset + 100)).collect();
        self
    }

    /// The YAML text.
    pub fn yaml(&self) -> String {
        let minimal = std::fs::read_to_string(support::repo().join(self.base))
            .unwrap_or_else(|e| panic!("{}: {e}", self.base));
        assert!(
            minimal.contains("\nname: demo\n") && minimal.contains("region: eu-west-1"),
            "{} changed shape; the moto tests derive their topologies from it",
            self.base
        );
        let mut y = minimal
            .replace("\nname: demo\n", &format!("\nname: {}\n", self.name))
            .replace("eu-west-1", &self.region);
        if let Some(ids) = &self.az_ids {
            for (zone, id) in ["a", "b", "c"].iter().zip(ids) {
                let name = format!("  - name: {}{zone}\n", self.region);
                assert!(y.contains(&name), "{} lists {name}", self.base);
                y = y.replace(&name, &format!("{name}    id: {id}\n"));
            }
        }
        if self.one_nat {
            let create = "  create:\n    cidr: 10.42.0.0/16\n";
            assert!(y.contains(create), "{} creates its network", self.base);
            y = y.replace(create, &format!("{create}    nat: one\n"));
        }
        let image = self
            .image
            .clone()
            .unwrap_or_else(|| ami(&self.region).to_string());
        let _ = write!(y, "ami:\n  id: {image}\n");
        let zones = ["a", "b", "c"];
        let nodes = |y: &mut String, pins: &[(u32, usize, String)]| {
            let _ = writeln!(y, "  nodes:");
            for (id, zone, address) in pins {
                let _ = writeln!(
                    y,
                    "    - {{ id: {id}, zone: {}{}, address: {address} }}",
                    self.region, zones[*zone]
                );
            }
        };
        y.push_str(if self.kraft {
            "metadata: kraft\ncontrollers:\n"
        } else {
            "zookeeper:\n"
        });
        if self.zookeeper_pins.is_empty() {
            let _ = writeln!(y, "  count: {}", self.zookeepers);
        } else {
            nodes(&mut y, &self.zookeeper_pins);
        }
        y.push_str("brokers:\n");
        if self.broker_pins.is_empty() {
            let _ = writeln!(y, "  count: {}", self.brokers);
        } else {
            nodes(&mut y, &self.broker_pins);
        }
        if !self.broker_zones.is_empty() {
            let _ = writeln!(y, "  nodes:");
            for (id, zone) in &self.broker_zones {
                let _ = writeln!(
                    y,
                    "    - {{ id: {id}, zone: {}{} }}",
                    self.region, zones[*zone]
                );
            }
        }
        if let Some(t) = &self.broker_type {
            let _ = writeln!(y, "  instance_type: {t}");
        }
        if let Some((count, cidr)) = &self.monitoring {
            let _ = write!(
                y,
                "monitoring:\n  count: {count}\nnetwork:\n  monitoring_cidrs: [{cidr}]\n"
            );
        }
        y
    }

    /// Writes the YAML to `<dir>/<name>.yaml`.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let path = dir.join(format!("{}.yaml", self.name));
        std::fs::write(&path, self.yaml()).expect("topology written");
        path
    }
}
