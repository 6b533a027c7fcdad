//! Raw topology + defaults → `Cluster`, checking every rule and collecting every problem.
//! Nothing stops at the first error: each field is checked on its own, and the cluster is built
//! only when no error was found.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::defaults;
use super::raw::{RawMetadata, RawNode, RawTopology, RawVolume};
use crate::cluster::role::Spread;
use crate::cluster::{
    Ami, Cluster, KafkaDist, Metadata, MonitoringSettings, Network, Node, Role, RoleSpec, Ssh,
    Volume, Zone,
};
use crate::kafka::config::BrokerConfigs;
use crate::topology::diagnostic::{Diagnostic, FieldPath};

mod managed;

/// Collects diagnostics while the cluster is assembled.
#[derive(Default)]
pub struct Checker {
    pub diagnostics: Vec<Diagnostic>,
}

pub(super) fn p(keys: &[&str]) -> FieldPath {
    FieldPath::keys(keys)
}

impl Checker {
    pub(super) fn error(
        &mut self,
        path: FieldPath,
        msg: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.diagnostics
            .push(Diagnostic::error(path, msg).help(help));
    }

    pub(super) fn warn(
        &mut self,
        path: FieldPath,
        msg: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.diagnostics
            .push(Diagnostic::warning(path, msg).help(help));
    }

    /// Whether a problem at `path` or inside it was already reported (by the parser: a value of the
    /// wrong type reads as absent, and must not be reported once more as missing).
    fn reported(&self, path: &FieldPath) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.path.0.starts_with(&path.0))
    }

    fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == crate::topology::diagnostic::Severity::Error)
    }

    /// Checks `raw` and builds the cluster; `None` when any error was found.
    pub fn build(&mut self, raw: &RawTopology) -> Option<Cluster> {
        let name = self.name(raw.name.as_deref());
        let region = self.region(raw.region.as_deref());
        let metadata = self.metadata(raw);
        let managed = self.managed(raw);
        let zones = self.zones(raw, region.as_deref(), metadata, managed.as_ref());
        let kafka = self.kafka(raw, metadata);
        let ami = self.ami(raw);
        let network = self.network(raw, &zones, managed);
        let tags = self.tags(raw);

        // The count rules below use the planned counts, not the nodes that could be built: a node
        // dropped for a bad pin or a missing zone list is already reported, and must not also
        // show up as "too few nodes".
        let mut roles = BTreeMap::new();
        let mut nodes = Vec::new();
        let mut planned = BTreeMap::new();
        let mut specs_ok = true;
        self.foreign_sections(raw, metadata);
        for role in Role::ALL.into_iter().filter(|r| metadata.has(*r)) {
            let fields = raw.role_fields(role);
            let fields = fields.as_ref();
            let spec = self.role_spec(
                role,
                fields.and_then(|f| f.instance_type),
                fields.and_then(|f| f.heap),
                fields.and_then(|f| f.volume),
            );
            // An optional role's nodes exist only when the topology has its section.
            let count = match fields {
                None if role.info().optional => Some(0),
                _ => fields.and_then(|f| f.count),
            };
            let (built, n) = self.nodes(role, count, fields.and_then(|f| f.nodes), &zones);
            match spec {
                Some(spec) => {
                    roles.insert(role, spec);
                }
                None => specs_ok = false,
            }
            nodes.extend(built);
            planned.insert(role, n);
        }
        for role in Role::ALL {
            if let Some(Some(n)) = planned.get(&role)
                && role.info().spread == Spread::Quorum
            {
                self.quorum_rules(role, *n, &nodes, &zones);
            }
        }
        let broker_planned = planned.get(&Role::Broker).copied().flatten();
        if broker_planned == Some(0) {
            self.error(
                p(&["brokers", "count"]),
                "0 brokers: a Kafka cluster needs at least one",
                "use 3 or more, one per zone",
            );
        }
        self.unique_addresses(&nodes);
        self.node_id_ranges(&nodes, metadata);
        let monitoring = self.monitoring(raw);
        let monitor_zones: BTreeSet<&str> = nodes
            .iter()
            .filter(|n| n.role == Role::Monitoring)
            .map(|n| n.zone.as_str())
            .collect();
        if let [zone] = monitor_zones.into_iter().collect::<Vec<_>>().as_slice()
            && nodes.iter().filter(|n| n.role == Role::Monitoring).count() > 1
        {
            self.warn(
                p(&["monitoring", "nodes"]),
                format!("both monitoring nodes are in {zone}: losing that zone silences every alert, its own loss included"),
                "pin them to two different zones, or leave their zones to kcluster",
            );
        }
        let version = kafka
            .as_ref()
            .map_or(defaults::kafka_version(metadata), |k| k.version.as_str());
        // Zones as listed: a zone with a bad CIDR is reported on its own and still counts here.
        let listed_zones = raw.zones.as_ref().map_or(0, Vec::len);
        let overrides = raw.brokers.as_ref().and_then(|b| b.overrides.as_ref());
        let broker_settings = match broker_planned {
            Some(n) if n > 0 => self.broker_settings(overrides, n, version, listed_zones, metadata),
            _ => defaults::broker_settings(0),
        };
        let workers = nodes.iter().filter(|n| n.role == Role::Connect).count() as u32;
        let connect = self.connect(
            raw.connect.as_ref(),
            workers,
            broker_planned.unwrap_or(0),
            version,
        );

        if self.has_errors() || !specs_ok {
            return None;
        }
        Some(Cluster {
            name: name?,
            region: region?,
            zones,
            kafka: kafka?,
            metadata,
            ami: ami?,
            network: network?,
            tags,
            roles,
            nodes,
            broker_settings,
            connect,
            monitoring: monitoring?,
            accept_zone_loss: raw.accept_zone_loss.unwrap_or(false),
        })
    }

    /// The monitoring section's own settings: Prometheus's retention and Alertmanager's webhook.
    fn monitoring(&mut self, raw: &RawTopology) -> Option<MonitoringSettings> {
        let m = raw.monitoring.clone().unwrap_or_default();
        let mut ok = true;
        let retention = m
            .retention
            .unwrap_or_else(|| crate::cluster::DEFAULT_RETENTION.to_string());
        let (digits, unit) = retention.split_at(retention.len().saturating_sub(1));
        let retention_ok = !digits.is_empty()
            && digits.chars().all(|c| c.is_ascii_digit())
            && digits.parse::<u32>().is_ok_and(|n| n > 0)
            && matches!(unit, "h" | "d" | "w" | "y");
        if !retention_ok {
            self.error(
                p(&["monitoring", "retention"]),
                format!("`{retention}` is not a retention Prometheus takes here"),
                "write a number and a unit: h, d, w or y, e.g. `15d` or `6w`",
            );
            ok = false;
        }
        if let Some(url) = &m.webhook_url {
            let rest = url
                .strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"));
            let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or_default());
            let printable = url.chars().all(|c| c.is_ascii_graphic());
            if !printable || host.is_none_or(str::is_empty) {
                self.error(
                    p(&["monitoring", "webhook_url"]),
                    format!("`{url}` is not an http(s) URL"),
                    "write it like `https://alerts.example.com/hook` (no spaces), or omit it for no receiver",
                );
                ok = false;
            }
        }
        ok.then_some(MonitoringSettings {
            retention,
            webhook_url: m.webhook_url,
        })
    }

    fn name(&mut self, name: Option<&str>) -> Option<String> {
        let Some(name) = name else {
            if self.reported(&p(&["name"])) {
                return None;
            }
            self.error(
                p(&["name"]),
                "missing",
                "add `name: my-cluster` (lowercase letters, digits, dashes)",
            );
            return None;
        };
        let ok = !name.is_empty()
            && name.len() <= 32
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && !name.ends_with('-')
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok {
            self.error(
                p(&["name"]),
                format!("`{name}` is not a valid cluster name"),
                "use 1-32 lowercase letters, digits and dashes, starting with a letter and not ending with a dash",
            );
            return None;
        }
        Some(name.to_string())
    }

    fn region(&mut self, region: Option<&str>) -> Option<String> {
        let Some(region) = region else {
            if self.reported(&p(&["region"])) {
                return None;
            }
            self.error(
                p(&["region"]),
                "missing",
                "add the AWS region, e.g. `region: eu-west-1`",
            );
            return None;
        };
        let parts: Vec<&str> = region.split('-').collect();
        let ok = parts.len() >= 3
            && parts.iter().all(|s| {
                !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            })
            && parts
                .last()
                .is_some_and(|s| s.chars().all(|c| c.is_ascii_digit()));
        if !ok {
            self.error(
                p(&["region"]),
                format!("`{region}` is not an AWS region name"),
                "write it like `eu-west-1` or `us-east-2`",
            );
            return None;
        }
        Some(region.to_string())
    }

    fn zones(
        &mut self,
        raw: &RawTopology,
        region: Option<&str>,
        metadata: Metadata,
        managed: Option<&crate::provision::network::ManagedNetwork>,
    ) -> Vec<Zone> {
        let Some(list) = &raw.zones else {
            if self.reported(&p(&["zones"])) {
                return Vec::new();
            }
            self.error(
                p(&["zones"]),
                "missing",
                "list the availability zones (at least 3 for a cluster that survives losing one), each with `name` and `cidr`",
            );
            return Vec::new();
        };
        let mut zones: Vec<Zone> = Vec::new();
        let mut seen = BTreeSet::new();
        for (i, z) in list.iter().enumerate() {
            let path = p(&["zones"]).index(i);
            let name = match &z.name {
                None => {
                    self.error(
                        path.key("name"),
                        "missing",
                        "add the zone name, e.g. `name: eu-west-1a`",
                    );
                    continue;
                }
                Some(n) => n.clone(),
            };
            if let Some(region) = region
                && !(name.starts_with(region)
                    && name.len() > region.len()
                    && name[region.len()..]
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-'))
            {
                self.error(
                    path.key("name"),
                    format!("`{name}` is not an availability zone of region {region}"),
                    format!("zones of {region} are named like `{region}a`"),
                );
            }
            if !seen.insert(name.clone()) {
                self.error(
                    path.key("name"),
                    format!("zone `{name}` is listed twice"),
                    "list each zone once",
                );
            }
            let cidr = match (&z.cidr, managed) {
                (_, Some(m)) => match self.managed_zone_cidr(m, &path, &name, region, z) {
                    Some(c) => c,
                    None => continue,
                },
                // A `network` section with a type error is skipped; it may have said `create`.
                (None, None) if self.reported(&p(&["network"])) => continue,
                (None, None) => {
                    self.error(
                        path.key("cidr"),
                        "missing",
                        "add the subnet's IPv4 CIDR, e.g. `cidr: 10.0.1.0/24`; node addresses are allocated from it",
                    );
                    continue;
                }
                (Some(c), None) => match c.parse::<Ipv4Net>() {
                    Err(_) => {
                        self.error(
                            path.key("cidr"),
                            format!("`{c}` is not an IPv4 CIDR"),
                            "write it like `10.0.1.0/24`",
                        );
                        continue;
                    }
                    Ok(net) if net != net.trunc() => {
                        self.error(
                            path.key("cidr"),
                            format!("`{c}` has host bits set"),
                            format!("the subnet's CIDR is `{}`", net.trunc()),
                        );
                        continue;
                    }
                    Ok(net) if !(16..=28).contains(&net.prefix_len()) => {
                        self.error(
                            path.key("cidr"),
                            format!("a /{} cannot be an EC2 subnet", net.prefix_len()),
                            "EC2 subnets are between /16 and /28",
                        );
                        continue;
                    }
                    Ok(net) => net,
                },
            };
            if let Some(s) = &z.subnet
                && !s.starts_with("subnet-")
            {
                self.error(
                    path.key("subnet"),
                    format!("`{s}` is not a subnet id"),
                    "subnet ids look like `subnet-0abc1234`",
                );
            }
            if managed.is_none()
                && raw.network.as_ref().and_then(|n| n.vpc.as_ref()).is_some()
                && z.subnet.is_none()
            {
                self.error(
                    path.key("subnet"),
                    "missing: `network.vpc` is set, so every zone needs its subnet id",
                    "add `subnet: subnet-…`, or remove `network.vpc` to use the default VPC's default subnets",
                );
            }
            if let Some(other) = zones
                .iter()
                .find(|o| o.cidr.contains(&cidr.network()) || cidr.contains(&o.cidr.network()))
            {
                self.error(
                    path.key("cidr"),
                    format!(
                        "{cidr} overlaps the CIDR of zone {} ({})",
                        other.name, other.cidr
                    ),
                    "each zone has its own subnet",
                );
            }
            if let (Some(id), Some(region)) = (&z.id, region)
                && let Some((message, fix)) = az_id_problem(id, region)
            {
                self.error(path.key("id"), message, fix);
            }
            if let Some(id) = &z.id
                && let Some(other) = zones.iter().find(|o| o.id.as_ref() == Some(id))
            {
                self.error(
                    path.key("id"),
                    format!("AZ ID `{id}` is also zone {}'s", other.name),
                    "each zone is one AZ: `aws ec2 describe-availability-zones` lists their IDs",
                );
            }
            zones.push(Zone {
                name,
                subnet_id: z.subnet.clone(),
                cidr,
                id: z.id.clone(),
            });
        }
        if list.len() < 2 {
            self.error(
                p(&["zones"]),
                format!("{} availability zone{}: a cluster needs at least 2, and 3 to survive losing one", list.len(), if list.len() == 1 { "" } else { "s" }),
                "list 3 zones of the region",
            );
        } else if list.len() == 2 {
            let message = format!(
                "only 2 availability zones: whichever zone holds the {} majority takes the quorum down with it",
                metadata.quorum_role().info().title
            );
            if raw.accept_zone_loss == Some(true) {
                self.warn(
                    p(&["zones"]),
                    format!("{message} (accepted: `accept_zone_loss: true`)"),
                    format!(
                        "use 3 zones so that {} and acks=all writes survive losing any one",
                        metadata.quorum_name()
                    ),
                );
            } else {
                self.error(
                    p(&["zones"]),
                    message,
                    format!(
                        "use 3 zones (a third needs only a {}), or set `accept_zone_loss: true` \
                         if the region has only 2 and the cluster may stop while one is down",
                        metadata.quorum_member()
                    ),
                );
            }
        }
        zones
    }

    /// The metadata mode: as written, or `kraft` for a Kafka 4 version and `zookeeper` otherwise.
    /// ZooKeeper mode with Kafka 4 is refused: Kafka 4.0 removed ZooKeeper.
    fn metadata(&mut self, raw: &RawTopology) -> Metadata {
        let version = raw.kafka.as_ref().and_then(|k| k.version.as_deref());
        let four = version.is_some_and(|v| v.starts_with("4."));
        match raw.metadata {
            Some(RawMetadata::Kraft) => Metadata::Kraft,
            Some(RawMetadata::Zookeeper) => {
                if four {
                    self.error(
                        p(&["metadata"]),
                        format!(
                            "Kafka {} has no ZooKeeper mode: Kafka 4.0 removed ZooKeeper",
                            version.unwrap_or_default()
                        ),
                        "use `metadata: kraft` with a `controllers` section, or Kafka 3.9 (e.g. `3.9.2`) for ZooKeeper mode",
                    );
                }
                Metadata::Zookeeper
            }
            None if four => Metadata::Kraft,
            None => Metadata::Zookeeper,
        }
    }

    /// The quorum section of the other mode is refused, with a message saying why.
    fn foreign_sections(&mut self, raw: &RawTopology, metadata: Metadata) {
        for role in Role::ALL.into_iter().filter(|r| !metadata.has(*r)) {
            if raw.role_fields(role).is_none() {
                continue;
            }
            let section = role.info().section;
            let own = metadata.quorum_role().info().section;
            let (why, fix) = match metadata {
                Metadata::Kraft => (
                    "KRaft controllers hold the metadata, not ZooKeeper".to_string(),
                    format!("remove `{section}` and describe the controllers under `{own}`"),
                ),
                Metadata::Zookeeper => (
                    "the ZooKeeper ensemble holds the metadata; controllers exist only in KRaft mode".to_string(),
                    format!("remove `{section}`, or set `metadata: kraft` (and remove `{own}`) to run KRaft controllers"),
                ),
            };
            self.error(
                p(&[section]),
                format!(
                    "`{section}` is not used in {} (`metadata: {}`): {why}",
                    metadata.title(),
                    metadata.as_str()
                ),
                fix,
            );
        }
    }

    /// In KRaft mode a broker's `node.id` is its id and a controller's is 9000 plus its id: broker
    /// ids above 9000 would share the controllers' range.
    fn node_id_ranges(&mut self, nodes: &[Node], metadata: Metadata) {
        if metadata != Metadata::Kraft {
            return;
        }
        let base = crate::cluster::role::CONTROLLER_NODE_ID_BASE;
        let max = base + Role::Controller.info().max_id;
        for n in nodes
            .iter()
            .filter(|n| n.role == Role::Broker && n.id > base)
        {
            self.error(
                p(&["brokers", "nodes"]),
                format!(
                    "{} has id {}, in the controllers' node.id range ({}-{max}) of KRaft mode",
                    n.name,
                    n.id,
                    base + 1
                ),
                format!("broker ids run 1 to {base} in KRaft mode; renumber the broker"),
            );
        }
    }

    fn kafka(&mut self, raw: &RawTopology, metadata: Metadata) -> Option<KafkaDist> {
        let k = raw.kafka.clone().unwrap_or_default();
        let version = k
            .version
            .clone()
            .unwrap_or_else(|| defaults::kafka_version(metadata).to_string());
        let scala = k
            .scala
            .clone()
            .unwrap_or_else(|| defaults::SCALA_VERSION.to_string());
        let mut ok = true;
        let numbered = |line: &str| {
            version.strip_prefix(line).is_some_and(|rest| {
                !rest.is_empty()
                    && rest
                        .split('.')
                        .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
            })
        };
        let three_parts = version.split('.').count() == 3;
        let four = numbered("4.") && three_parts;
        let three_nine = numbered("3.9.") && three_parts;
        if !three_nine && !four {
            let help = match metadata {
                Metadata::Zookeeper => {
                    "ZooKeeper mode runs on the Kafka 3.9 line, the last with ZooKeeper, e.g. `3.9.2`; \
                     Kafka 4.x needs `metadata: kraft`"
                }
                Metadata::Kraft => "KRaft mode runs on Kafka 4.x (e.g. `4.3.1`) or the 3.9 line",
            };
            self.error(
                p(&["kafka", "version"]),
                format!("unsupported Kafka version `{version}`"),
                help,
            );
            ok = false;
        }
        if !["2.12", "2.13"].contains(&scala.as_str()) || (four && scala != "2.13") {
            let (line, fix) = if four {
                ("4", "use `2.13`")
            } else {
                ("3.9", "use `2.13` (or `2.12`)")
            };
            self.error(
                p(&["kafka", "scala"]),
                format!("Kafka {line} is not built for Scala `{scala}`"),
                fix,
            );
            ok = false;
        }
        let url = k
            .url
            .clone()
            .unwrap_or_else(|| defaults::kafka_url(&version, &scala));
        if !url.starts_with("https://") {
            self.error(
                p(&["kafka", "url"]),
                format!("`{url}` is not an https URL"),
                "serve the tarball over https",
            );
            ok = false;
        }
        // A release kcluster knows the published checksum of, from the default place.
        let known = (scala == defaults::SCALA_VERSION
            && url == defaults::kafka_url(&version, &scala))
        .then(|| defaults::known_sha512(&version))
        .flatten();
        let sha512 = match (&k.sha512, known) {
            (Some(s), _) => {
                let s = s.trim().to_ascii_lowercase();
                if s.len() != 128 || !s.chars().all(|c| c.is_ascii_hexdigit()) {
                    self.error(
                        p(&["kafka", "sha512"]),
                        "not a SHA-512 (128 hex digits)",
                        "copy it from the `.sha512` file published beside the tarball",
                    );
                    ok = false;
                }
                s
            }
            (None, Some(known)) => known.to_string(),
            (None, None) => {
                self.error(
                    p(&["kafka", "sha512"]),
                    "missing: kcluster knows the published checksums of Apache's Scala 2.13 tarballs of Kafka 3.9.0-3.9.2 and 4.3.1 only, so this one's must be given",
                    "add `sha512:` with the value from the `.sha512` file published beside the tarball",
                );
                ok = false;
                String::new()
            }
        };
        ok.then_some(KafkaDist {
            version,
            scala_version: scala,
            url,
            sha512,
        })
    }

    fn ami(&mut self, raw: &RawTopology) -> Option<Ami> {
        let Some(a) = &raw.ami else {
            return Some(Ami::SsmParameter(defaults::AMI_SSM_PARAMETER.to_string()));
        };
        match (&a.id, &a.ssm_parameter) {
            (Some(id), None) if id.starts_with("ami-") => Some(Ami::Id(id.clone())),
            (Some(id), None) => {
                self.error(
                    p(&["ami", "id"]),
                    format!("`{id}` is not an AMI id"),
                    "AMI ids look like `ami-0abc1234`",
                );
                None
            }
            (None, Some(param)) if param.starts_with('/') => Some(Ami::SsmParameter(param.clone())),
            (None, Some(param)) => {
                self.error(
                    p(&["ami", "ssm_parameter"]),
                    format!("`{param}` is not an SSM parameter name"),
                    "parameter names start with `/`",
                );
                None
            }
            (Some(_), Some(_)) => {
                self.error(
                    p(&["ami"]),
                    "both `id` and `ssm_parameter` are set",
                    "keep one of them",
                );
                None
            }
            (None, None) => {
                self.error(
                    p(&["ami"]),
                    "neither `id` nor `ssm_parameter` is set",
                    "set one, or remove `ami` for Amazon Linux 2023",
                );
                None
            }
        }
    }

    fn cidrs(&mut self, path: FieldPath, list: &[String]) -> Vec<Ipv4Net> {
        let mut out = Vec::new();
        for (i, c) in list.iter().enumerate() {
            match c.parse::<Ipv4Net>() {
                Ok(net) => out.push(net.trunc()),
                Err(_) => self.error(
                    path.index(i),
                    format!("`{c}` is not an IPv4 CIDR"),
                    "write it like `10.0.0.0/16`",
                ),
            }
        }
        out
    }

    /// `network.<field>`: CIDRs a port is opened to, with a warning when one is the whole internet.
    fn open_cidrs(
        &mut self,
        field: &str,
        list: &[String],
        warning: &str,
        fix: &str,
    ) -> Vec<Ipv4Net> {
        let cidrs = self.cidrs(p(&["network", field]), list);
        if cidrs.iter().any(|c| c.prefix_len() == 0) {
            self.warn(p(&["network", field]), warning, fix);
        }
        cidrs
    }

    fn network(
        &mut self,
        raw: &RawTopology,
        zones: &[Zone],
        create: Option<crate::provision::network::ManagedNetwork>,
    ) -> Option<Network> {
        let n = raw.network.clone().unwrap_or_default();
        if let Some(vpc) = &n.vpc
            && !vpc.starts_with("vpc-")
        {
            self.error(
                p(&["network", "vpc"]),
                format!("`{vpc}` is not a VPC id"),
                "VPC ids look like `vpc-0abc1234`",
            );
        }
        let client_cidrs = match &n.client_cidrs {
            Some(list) => self.open_cidrs(
                "client_cidrs",
                list,
                "the client listener is open to the whole internet (0.0.0.0/0) and speaks plaintext",
                "list the CIDRs of your clients' networks",
            ),
            None => zones.iter().map(|z| z.cidr).collect(),
        };
        let monitoring_cidrs = match &n.monitoring_cidrs {
            Some(list) => self.open_cidrs(
                "monitoring_cidrs",
                list,
                "the exporters are open to the whole internet (0.0.0.0/0) and answer anyone",
                "list the CIDRs your Prometheus scrapes from",
            ),
            None => Vec::new(),
        };
        let admin_cidrs = self.cidrs(
            p(&["network", "admin_cidrs"]),
            n.admin_cidrs.as_deref().unwrap_or(&[]),
        );
        if admin_cidrs.iter().any(|c| c.prefix_len() == 0) {
            self.error(
                p(&["network", "admin_cidrs"]),
                "the Kafka Connect REST API open to the whole internet (0.0.0.0/0) is refused: it is unauthenticated and runs any connector it is given",
                "list your operators' VPN or bastion CIDRs",
            );
        }
        let client_port = n.client_port.unwrap_or(defaults::CLIENT_PORT);
        let mut reserved = [
            crate::cluster::ZK_CLIENT_PORT,
            crate::cluster::ZK_PEER_PORT,
            crate::cluster::ZK_ELECTION_PORT,
            crate::cluster::INTERNAL_PORT,
            crate::cluster::CONTROLLER_PORT,
            crate::cluster::CONNECT_REST_PORT,
            crate::render::JMX_PORT,
            crate::render::exporters::JMX_EXPORTER_PORT,
            crate::render::exporters::NODE_EXPORTER_PORT,
            crate::cluster::PROMETHEUS_PORT,
            crate::cluster::ALERTMANAGER_PORT,
            crate::cluster::ALERTMANAGER_CLUSTER_PORT,
            22,
        ];
        if client_port < 1024 || reserved.contains(&client_port) {
            reserved.sort_unstable();
            let taken: Vec<String> = reserved
                .iter()
                .filter(|p| **p >= 1024)
                .map(u16::to_string)
                .collect();
            let taken = match taken.split_last() {
                Some((last, others)) => format!("{} and {last}", others.join(", ")),
                None => String::new(),
            };
            self.error(
                p(&["network", "client_port"]),
                format!("port {client_port} is not available for the client listener"),
                format!("use a port from 1024 up other than {taken}, e.g. 9092"),
            );
        }
        let ssh = match &n.ssh {
            None => None,
            Some(s) => {
                let cidrs = self.cidrs(
                    p(&["network", "ssh", "cidrs"]),
                    s.cidrs.as_deref().unwrap_or(&[]),
                );
                if cidrs.iter().any(|c| c.prefix_len() == 0) {
                    self.error(
                        p(&["network", "ssh", "cidrs"]),
                        "SSH open to the whole internet (0.0.0.0/0) is refused",
                        "name your bastion's or VPN's CIDR, or use SSM Session Manager and drop `ssh`",
                    );
                }
                Some(Ssh {
                    key_name: s.key_name.clone(),
                    cidrs,
                })
            }
        };
        Some(Network {
            vpc_id: n.vpc.clone(),
            client_cidrs,
            client_port,
            monitoring_cidrs,
            admin_cidrs,
            ssh,
            create,
        })
    }

    fn tags(&mut self, raw: &RawTopology) -> BTreeMap<String, String> {
        let tags = raw.tags.clone().unwrap_or_default();
        for (k, v) in &tags {
            let path = p(&["tags"]).key(k.clone());
            // AWS reserves `aws:` in any letter case (`AWS:`, `Aws:` …).
            let aws = k
                .get(..4)
                .is_some_and(|prefix| prefix.eq_ignore_ascii_case("aws:"));
            if k.starts_with("kcluster:") || aws || k == "Name" {
                self.error(
                    path,
                    format!("tag `{k}` is reserved"),
                    "kcluster sets `Name` and `kcluster:*` itself; AWS owns `aws:*`",
                );
            } else if k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256 {
                self.error(
                    path,
                    "tag keys are 1-128 characters and values at most 256",
                    "shorten it",
                );
            }
        }
        if tags.len() > 40 {
            self.error(
                p(&["tags"]),
                format!(
                    "{} tags; EC2 allows 50 per resource and kcluster uses up to 10",
                    tags.len()
                ),
                "keep at most 40",
            );
        }
        tags
    }

    fn role_spec(
        &mut self,
        role: Role,
        instance_type: Option<&str>,
        heap: Option<&str>,
        volume: Option<&RawVolume>,
    ) -> Option<RoleSpec> {
        let info = role.info();
        let section = info.section;
        let instance_type = instance_type
            .unwrap_or(info.default_instance_type)
            .to_string();
        let mut ok = true;
        let family_ok = instance_type.split_once('.').is_some_and(|(f, s)| {
            !f.is_empty()
                && !s.is_empty()
                && instance_type
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        });
        if !family_ok {
            self.error(
                p(&[section, "instance_type"]),
                format!("`{instance_type}` is not an EC2 instance type"),
                "write it like `m5.large`",
            );
            ok = false;
        }
        let heap = heap.unwrap_or(info.default_heap).to_string();
        let heap_ok = heap.len() >= 2
            && heap[..heap.len() - 1].chars().all(|c| c.is_ascii_digit())
            && matches!(heap.chars().last(), Some('m' | 'g'));
        if !heap_ok {
            self.error(
                p(&[section, "heap"]),
                format!("`{heap}` is not a JVM heap size"),
                "write it like `1g` or `512m`",
            );
            ok = false;
        }
        let Some(default_gib) = info.default_volume_gib else {
            // The role has no data volume (its section has no `volume` field to set).
            return ok.then_some(RoleSpec {
                instance_type,
                heap,
                volume: None,
            });
        };
        let v = volume.cloned().unwrap_or_default();
        let vpath = p(&[section, "volume"]);
        let size_gib = v.size_gib.unwrap_or(default_gib);
        let iops = v.iops.unwrap_or(defaults::VOLUME_IOPS);
        let throughput = v
            .throughput_mibps
            .unwrap_or(defaults::VOLUME_THROUGHPUT_MIBPS);
        if !(1..=16384).contains(&size_gib) {
            self.error(
                vpath.key("size_gib"),
                format!("{size_gib} GiB is outside gp3's 1-16384 GiB"),
                "pick a size from 1 to 16384",
            );
            ok = false;
        }
        if !(3000..=80000).contains(&iops) {
            self.error(
                vpath.key("iops"),
                format!("{iops} IOPS is outside gp3's 3000-80000"),
                "gp3 gives 3000 IOPS at no extra cost; provision up to 80000",
            );
            ok = false;
        } else if iops > 3000 && u64::from(iops) > 500 * u64::from(size_gib) {
            self.error(
                vpath.key("iops"),
                format!("{iops} IOPS on {size_gib} GiB exceeds gp3's 500 IOPS per GiB"),
                format!(
                    "lower iops to {} or grow the volume to {} GiB",
                    (500 * size_gib).max(3000),
                    iops.div_ceil(500)
                ),
            );
            ok = false;
        }
        if !(125..=2000).contains(&throughput) {
            self.error(
                vpath.key("throughput_mibps"),
                format!("{throughput} MiB/s is outside gp3's 125-2000"),
                "pick a throughput from 125 to 2000",
            );
            ok = false;
        } else if throughput > 125 && throughput * 4 > iops {
            self.error(
                vpath.key("throughput_mibps"),
                format!(
                    "{throughput} MiB/s needs at least {} IOPS (gp3 allows 0.25 MiB/s per IOPS)",
                    throughput * 4
                ),
                format!(
                    "raise iops to {} or lower throughput_mibps to {}",
                    throughput * 4,
                    (iops / 4).max(125)
                ),
            );
            ok = false;
        }
        ok.then_some(RoleSpec {
            instance_type,
            heap,
            volume: Some(Volume {
                size_gib,
                iops,
                throughput_mibps: throughput,
            }),
        })
    }

    /// The nodes of one role: ids from `count` or the `nodes` list, zones round-robin unless pinned,
    /// addresses allocated from the zone's CIDR unless pinned. Also returns how many nodes the file
    /// asks for (`None` when that count is itself invalid and reported), which can be more than
    /// the nodes built when a pin is wrong.
    fn nodes(
        &mut self,
        role: Role,
        count: Option<u32>,
        pins: Option<&[RawNode]>,
        zones: &[Zone],
    ) -> (Vec<Node>, Option<u32>) {
        let info = role.info();
        let section = info.section;
        let pins = pins.unwrap_or(&[]);
        let mut by_id: BTreeMap<u32, (usize, &RawNode)> = BTreeMap::new();
        for (i, pin) in pins.iter().enumerate() {
            let path = p(&[section, "nodes"]).index(i);
            let Some(id) = pin.id else {
                self.error(
                    path.key("id"),
                    "missing",
                    "every entry of `nodes` names the node by `id`",
                );
                continue;
            };
            if id == 0 || id > info.max_id {
                let range = if info.max_id < u32::MAX {
                    format!("1 to {} ({})", info.max_id, info.id_meaning)
                } else {
                    "from 1".to_string()
                };
                self.error(
                    path.key("id"),
                    format!("id {id} is out of range"),
                    format!("ids run {range}"),
                );
                continue;
            }
            if let Some((first, _)) = by_id.insert(id, (i, pin)) {
                self.error(
                    path.key("id"),
                    format!(
                        "duplicate id {id}: `{}` is also defined at {section}.nodes[{first}]",
                        Node::node_name(role, id)
                    ),
                    "each node has its own id; remove or renumber one",
                );
            }
        }
        let ids: Vec<u32> = match count {
            Some(n) => {
                if let Some((&max, &(i, _))) = by_id.iter().next_back().filter(|(id, _)| **id > n) {
                    self.error(
                        p(&[section, "nodes"]).index(i).key("id"),
                        format!("id {max} is beyond `count: {n}`"),
                        format!("with `count`, ids run 1..={n}; raise `count` or drop `count` to list the nodes explicitly"),
                    );
                }
                if n > info.max_id {
                    self.error(
                        p(&[section, "count"]),
                        format!(
                            "{n} {} nodes is more than {}'s ids 1 to {} allow",
                            info.title, info.title, info.max_id
                        ),
                        if info.spread == Spread::Quorum {
                            "ensembles of 3, 5 or 7 are usual".to_string()
                        } else {
                            format!("use at most {}", info.max_id)
                        },
                    );
                    return (Vec::new(), None);
                }
                if n > 1000 {
                    self.error(
                        p(&[section, "count"]),
                        format!("{n} nodes is more than kcluster manages"),
                        "use at most 1000",
                    );
                    return (Vec::new(), None);
                }
                (1..=n).collect()
            }
            None if !pins.is_empty() => by_id.keys().copied().collect(),
            None => (1..=info.default_count).collect(),
        };
        // Without `count`, every entry of `nodes` is meant as a node, even one rejected above.
        let planned = match count {
            None if !pins.is_empty() => pins.len().max(ids.len()) as u32,
            _ => ids.len() as u32,
        };
        let mut nodes = Vec::new();
        for id in ids {
            let pin = by_id.get(&id);
            let pin_path = pin.map(|(i, _)| p(&[section, "nodes"]).index(*i));
            let zone = match pin.and_then(|(_, n)| n.zone.as_ref()) {
                Some(z) => match zones.iter().find(|zz| &zz.name == z) {
                    Some(zz) => zz,
                    None => {
                        if !zones.is_empty() {
                            let names: Vec<&str> = zones.iter().map(|z| z.name.as_str()).collect();
                            let path = pin_path.clone().unwrap_or_default().key("zone");
                            self.error(
                                path,
                                format!("zone `{z}` is not one of `zones`"),
                                format!("use one of: {}", names.join(", ")),
                            );
                        }
                        continue;
                    }
                },
                None if zones.is_empty() => continue,
                None => &zones[(id as usize - 1) % zones.len()],
            };
            let name = Node::node_name(role, id);
            let address = match pin.and_then(|(_, n)| n.address.as_ref()) {
                Some(a) => {
                    let path = pin_path.clone().unwrap_or_default().key("address");
                    match a.parse::<Ipv4Addr>() {
                        Err(_) => {
                            self.error(
                                path,
                                format!("`{a}` is not an IPv4 address"),
                                "write it like `10.0.1.20`",
                            );
                            continue;
                        }
                        Ok(addr) if !zone.cidr.contains(&addr) => {
                            self.error(
                                path,
                                format!(
                                    "{addr} is outside zone {}'s subnet {}",
                                    zone.name, zone.cidr
                                ),
                                format!("pick an address in {}", zone.cidr),
                            );
                            continue;
                        }
                        Ok(addr) if !defaults::usable(zone.cidr, addr) => {
                            self.error(
                                path,
                                format!("{addr} is reserved by AWS in subnet {}", zone.cidr),
                                "AWS keeps the first four addresses and the last one of every subnet",
                            );
                            continue;
                        }
                        Ok(addr) => addr,
                    }
                }
                None => {
                    let offset = info.address_base + id;
                    match defaults::allocate(zone.cidr, offset) {
                        Some(a) => a,
                        None => {
                            self.error(
                            p(&[section]),
                            format!("{name} gets no address: offset {offset} is beyond zone {}'s subnet {}", zone.name, zone.cidr),
                            format!("pin its address under `{section}.nodes` or use a larger subnet"),
                        );
                            continue;
                        }
                    }
                }
            };
            nodes.push(Node {
                role,
                id,
                name,
                zone: zone.name.clone(),
                address,
            });
        }
        (nodes, Some(planned))
    }

    /// A quorum role's size (`n`, as planned) and its spread over the zones (of the nodes built).
    fn quorum_rules(&mut self, role: Role, n: u32, nodes: &[Node], zones: &[Zone]) {
        let info = role.info();
        let title = info.title;
        let n = n as usize;
        let path = p(&[info.section, "count"]);
        if n < 3 {
            self.error(
                path,
                format!(
                    "{n} {title} node{}: a quorum needs at least 3 to survive losing one",
                    if n == 1 { "" } else { "s" }
                ),
                "use 3 (or 5 for surviving two failures)",
            );
        } else if n.is_multiple_of(2) {
            self.error(
                path,
                format!(
                    "{n} {title} nodes: an even quorum adds no fault tolerance ({n} nodes survive {} failure{}, as {} do)",
                    (n - 1) / 2,
                    if (n - 1) / 2 == 1 { "" } else { "s" },
                    n - 1
                ),
                format!("use {} or {}", n - 1, n + 1),
            );
        }
        if zones.len() >= 3 && n >= 3 {
            let quorum = n / 2 + 1;
            for z in zones {
                let here = nodes
                    .iter()
                    .filter(|x| x.role == role && x.zone == z.name)
                    .count();
                if here >= quorum {
                    self.error(
                        p(&[info.section, "nodes"]),
                        format!("zone {} holds {here} of {n} {title} nodes, a majority: losing that zone loses the quorum", z.name),
                        format!("spread {title} nodes so no zone holds a majority (remove zone pins to spread them round-robin)"),
                    );
                }
            }
        }
    }

    fn unique_addresses(&mut self, nodes: &[Node]) {
        let mut seen: BTreeMap<Ipv4Addr, &str> = BTreeMap::new();
        for n in nodes {
            if let Some(other) = seen.insert(n.address, &n.name) {
                self.error(
                    p(&[n.role.info().section, "nodes"]),
                    format!("{} and {other} both have address {}", n.name, n.address),
                    "every node needs its own address; change the pinned one",
                );
            }
        }
    }

    fn broker_settings(
        &mut self,
        overrides: Option<&BTreeMap<String, serde_yaml::Value>>,
        brokers: u32,
        version: &str,
        zones: usize,
        metadata: Metadata,
    ) -> BTreeMap<String, String> {
        let mut settings = defaults::broker_settings(brokers);
        let table = BrokerConfigs::for_version(version);
        for (key, value) in overrides.into_iter().flatten() {
            let path = p(&["brokers", "overrides"]).key(key.clone());
            if defaults::managed_keys(metadata).contains(&key.as_str()) {
                let help = if key == "process.roles" {
                    "remove it; kcluster runs controllers and brokers on their own instances \
                     (combined nodes are for development only, as Kafka's documentation says)"
                } else {
                    "remove it; kcluster derives it from the topology"
                };
                self.error(
                    path,
                    format!("`{key}` is set by kcluster for each node"),
                    help,
                );
                continue;
            }
            if metadata.foreign_key(key) {
                let (kind, fix) = match metadata {
                    Metadata::Zookeeper => (
                        "a KRaft setting",
                        "remove it, or set `metadata: kraft` to run KRaft controllers",
                    ),
                    Metadata::Kraft => (
                        "a ZooKeeper-mode setting",
                        "remove it: KRaft controllers hold the metadata",
                    ),
                };
                self.error(
                    path,
                    format!("`{key}` is {kind}; this cluster is in {}", metadata.title()),
                    fix,
                );
                continue;
            }
            let Some(text) = property_text(value) else {
                self.error(
                    path,
                    "expected a single value or a list of values",
                    "write e.g. `num.partitions: 12` or `cleanup.policy: [delete, compact]`",
                );
                continue;
            };
            if let Some(table) = table
                && let Err(problem) = table.check(key, &text)
            {
                self.diagnostics
                    .push(Diagnostic::error(path, problem.to_string()));
                continue;
            }
            settings.insert(key.clone(), text);
        }
        let rf = settings
            .get("default.replication.factor")
            .and_then(|v| v.trim().parse::<u32>().ok());
        let min_isr = settings
            .get("min.insync.replicas")
            .and_then(|v| v.trim().parse::<u32>().ok());
        let over = |k: &str| p(&["brokers", "overrides", k]);
        if let Some(rf) = rf {
            if rf > brokers && brokers > 0 {
                self.error(
                    over("default.replication.factor"),
                    format!("replication factor {rf} is larger than the {brokers} brokers"),
                    format!("use at most {brokers}, or add brokers"),
                );
            } else if zones >= 2 && rf as usize > zones {
                self.warn(
                    over("default.replication.factor"),
                    format!("replication factor {rf} is greater than the {zones} availability zones: some partitions keep two replicas in one zone"),
                    "add a zone, or accept that losing that zone takes two replicas of those partitions",
                );
            }
            // With one replica nothing better than min.insync.replicas 1 exists; the rule is
            // about leaving room for one replica to be down.
            if let Some(m) = min_isr
                && m >= rf
                && (rf > 1 || m > 1)
            {
                self.error(
                    over("min.insync.replicas"),
                    format!("min.insync.replicas {m} ≥ replication factor {rf}: acks=all writes stop as soon as one replica is down"),
                    format!("use min.insync.replicas {} with replication factor {rf}", rf.saturating_sub(1).max(1)),
                );
            }
        }
        for key in [
            "offsets.topic.replication.factor",
            "transaction.state.log.replication.factor",
        ] {
            if let Some(v) = settings.get(key).and_then(|v| v.trim().parse::<u32>().ok())
                && v > brokers
                && brokers > 0
            {
                self.error(
                    over(key),
                    format!("{key} {v} is larger than the {brokers} brokers"),
                    format!("use at most {brokers}"),
                );
            }
        }
        settings
    }
}

/// A YAML override value as it is written in `server.properties`.
pub(super) fn property_text(v: &serde_yaml::Value) -> Option<String> {
    use serde_yaml::Value;
    match v {
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Null => Some(String::new()),
        Value::Sequence(items) => {
            let parts: Option<Vec<String>> = items
                .iter()
                .map(|i| match i {
                    Value::Sequence(_) | Value::Mapping(_) => None,
                    other => property_text(other),
                })
                .collect();
            Some(parts?.join(","))
        }
        Value::Mapping(_) | Value::Tagged(_) => None,
    }
}

#[cfg(test)]
pub(crate) fn check_raw(yaml: &str) -> (Option<Cluster>, Vec<Diagnostic>) {
    let parsed = match super::parse::parse(yaml.as_bytes()) {
        Ok(p) => p,
        Err(d) => return (None, d),
    };
    let mut c = Checker {
        diagnostics: parsed.diagnostics,
    };
    let cluster = c.build(&parsed.raw);
    (cluster, c.diagnostics)
}

/// The AZ ID prefix of `region`: `eu-west-1` → `euw1`, `ap-southeast-2` → `apse2`,
/// `us-gov-west-1` → `usgw1` (the area, the initials of the other words, the number).
pub fn az_id_prefix(region: &str) -> Option<String> {
    let parts: Vec<&str> = region.split('-').collect();
    let (area, rest) = parts.split_first()?;
    let (number, words) = rest.split_last()?;
    if words.is_empty() || number.parse::<u32>().is_err() {
        return None;
    }
    let mut prefix = area.to_string();
    for w in words {
        // Compass words compound: `southeast` is `se`, `northwest` is `nw`.
        let initials = match *w {
            "northeast" => "ne",
            "northwest" => "nw",
            "southeast" => "se",
            "southwest" => "sw",
            other => &other[..1],
        };
        prefix.push_str(initials);
    }
    prefix.push_str(number);
    Some(prefix)
}

/// Why `id` cannot be an AZ ID of `region` (the message and the fix), if it cannot.
fn az_id_problem(id: &str, region: &str) -> Option<(String, String)> {
    let prefix = az_id_prefix(region)?;
    let wanted = format!("{prefix}-az");
    let ok = id
        .strip_prefix(&wanted)
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
    if ok {
        return None;
    }
    Some((
        format!("`{id}` is not an AZ ID of region {region}"),
        format!(
            "AZ IDs of {region} look like `{wanted}1`; `aws ec2 describe-availability-zones --region {region}` lists which name is which ID in your account"
        ),
    ))
}
