//! The `Ec2` trait on the real aws-sdk-ec2 client (and its SSM and STS neighbours): the default
//! credential and region chain, an explicit `--profile` that beats the environment's keys,
//! endpoint overrides (`--endpoint-url`, `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_EC2|SSM|STS`),
//! bounded answer times, adaptive retry for throttling, and errors that name the endpoint.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{
    AttributeValue, BlockDeviceMapping, EbsBlockDevice, Filter, HttpTokensState,
    InstanceAttributeName, InstanceMetadataEndpointState, InstanceMetadataOptionsRequest,
    InstanceNetworkInterfaceSpecification, InstanceType, IpPermission, IpRange, Ipv6Range,
    Placement, PrefixListId, ResourceType, Tag, TagSpecification, UserIdGroupPair, VolumeType,
};
use base64::Engine;

use super::{
    Address, AttachmentState, CallCounter, DataVolumeSpec, DefaultRoute, Ec2, Ec2Error, Ec2Result,
    Instance, InstanceChange, InstanceSpec, InstanceState, InterfaceSpec, NetworkInterface,
    RouteTable, Rule, SecurityGroup, SecurityGroupSpec, Source, Subnet, Tags, Volume,
    VolumeAttachment, VolumeSize, VolumeState, tags,
};

/// How to reach AWS, from the command line.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    /// An explicit profile: it decides the credentials, whatever the environment holds.
    pub profile: Option<String>,
    pub region: Option<String>,
    /// One endpoint for every service (`--endpoint-url`).
    pub endpoint_url: Option<String>,
    /// Longest wait for one answer from AWS (connecting included); `None` is 30 s.
    pub timeout: Option<Duration>,
}

/// Why no client could be made: always something the user can fix.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(
        "no AWS credentials found{profile}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (or --profile) naming a profile in ~/.aws, or run `aws sso login` ({detail})"
    )]
    NoCredentials { profile: String, detail: String },
    #[error("no AWS region: give --region, set AWS_REGION, or set `region` in the topology file")]
    NoRegion,
}

/// Where one AWS service is reached, and which setting chose it, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The service as people name it: `EC2`, `SSM`, `STS`.
    pub service: &'static str,
    pub url: String,
    /// The settings that can change it, most specific first.
    pub settings: String,
}

impl Endpoint {
    /// The endpoint of `service` (`EC2`, `SSM`, `STS`), resolved as the SDK does:
    /// `--endpoint-url`, then `AWS_ENDPOINT_URL_<SERVICE>`, then `AWS_ENDPOINT_URL`, then AWS's
    /// own `https://<service>.<region>.amazonaws.com`.
    pub fn resolve(
        service: &'static str,
        flag: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
        region: &str,
    ) -> Endpoint {
        let own = format!("AWS_ENDPOINT_URL_{service}");
        let url = flag
            .map(String::from)
            .or_else(|| env(&own))
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .unwrap_or_else(|| {
                format!("https://{}.{region}.amazonaws.com", service.to_lowercase())
            });
        Endpoint {
            service,
            url,
            settings: format!("--endpoint-url, {own} and AWS_ENDPOINT_URL"),
        }
    }
}

/// Who the credentials belong to (STS GetCallerIdentity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub account: String,
    pub arn: String,
}

pub struct SdkEc2 {
    client: Client,
    ssm: aws_sdk_ssm::Client,
    sts: aws_sdk_sts::Client,
    /// The endpoints in use, for messages.
    ec2_endpoint: Endpoint,
    ssm_endpoint: Endpoint,
    sts_endpoint: Endpoint,
    /// The answer timeout, for messages.
    timeout: Duration,
    calls: CallCounter,
}

impl SdkEc2 {
    /// Builds a client from the default chain plus the overrides, and checks that credentials exist.
    pub async fn connect(conn: &Connection) -> Result<SdkEc2, ConnectError> {
        let timeout = conn.timeout.unwrap_or(Duration::from_secs(30));
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::adaptive().with_max_attempts(5))
            .timeout_config(
                // An endpoint that accepts and never answers must not hold kcluster for minutes:
                // each attempt is bounded, and so is the whole operation with its retries.
                TimeoutConfig::builder()
                    .connect_timeout(timeout.min(Duration::from_secs(10)))
                    .read_timeout(timeout)
                    .operation_attempt_timeout(timeout)
                    .operation_timeout(timeout * 2)
                    .build(),
            );
        if let Some(p) = &conn.profile {
            // `profile_name` alone leaves the environment's keys first in the chain.
            loader = loader.profile_name(p).credentials_provider(
                aws_config::profile::ProfileFileCredentialsProvider::builder()
                    .profile_name(p)
                    .build(),
            );
        }
        if let Some(r) = &conn.region {
            loader = loader.region(aws_config::Region::new(r.clone()));
        }
        if let Some(u) = &conn.endpoint_url {
            loader = loader.endpoint_url(u);
        }
        let config = loader.load().await;
        let Some(region) = config.region().map(|r| r.to_string()) else {
            return Err(ConnectError::NoRegion);
        };
        let profile = conn
            .profile
            .as_ref()
            .map(|p| format!(" for profile {p}"))
            .unwrap_or_default();
        let Some(provider) = config.credentials_provider() else {
            return Err(ConnectError::NoCredentials {
                profile,
                detail: "no credential provider".into(),
            });
        };
        if let Err(e) = provider.provide_credentials().await {
            return Err(ConnectError::NoCredentials {
                profile,
                detail: e.to_string(),
            });
        }
        let endpoint = |service| {
            Endpoint::resolve(
                service,
                conn.endpoint_url.as_deref(),
                |k| std::env::var(k).ok(),
                &region,
            )
        };
        Ok(SdkEc2 {
            client: Client::new(&config),
            ssm: aws_sdk_ssm::Client::new(&config),
            sts: aws_sdk_sts::Client::new(&config),
            ec2_endpoint: endpoint("EC2"),
            ssm_endpoint: endpoint("SSM"),
            sts_endpoint: endpoint("STS"),
            timeout,
            calls: CallCounter::default(),
        })
    }

    /// The account and identity the credentials act as.
    pub async fn identity(&self) -> Ec2Result<Identity> {
        const OP: &str = "GetCallerIdentity";
        self.calls.count(OP);
        let out = self
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| self.error(&self.sts_endpoint, OP, e))?;
        Ok(Identity {
            account: out.account().unwrap_or("unknown").to_string(),
            arn: out.arn().unwrap_or("unknown").to_string(),
        })
    }

    /// An EC2 failure of `operation`, naming EC2's endpoint when it is a transport failure.
    fn ec2_error<E>(&self, operation: &'static str, err: SdkError<E>) -> Ec2Error
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        self.error(&self.ec2_endpoint, operation, err)
    }

    /// Turns an SDK error into an `Ec2Error` with AWS's code and message, or one sentence on the
    /// transport failure that names the endpoint, what was waited on and the settings to check.
    fn error<E>(&self, endpoint: &Endpoint, operation: &'static str, err: SdkError<E>) -> Ec2Error
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let Endpoint {
            service,
            url,
            settings,
        } = endpoint;
        let timed_out = match &err {
            SdkError::TimeoutError(_) => true,
            SdkError::DispatchFailure(d) => d.is_timeout(),
            _ => false,
        };
        match &err {
            SdkError::ServiceError(_) => Ec2Error::new(
                operation,
                err.code().unwrap_or("Unknown"),
                err.message().unwrap_or("no message"),
            ),
            _ if timed_out => Ec2Error::new(
                operation,
                "Timeout",
                format!(
                    "the {service} endpoint {url} did not answer {operation} within {:?} (--aws-timeout-seconds, KCLUSTER_AWS_TIMEOUT_SECONDS); check the network and {settings}",
                    self.timeout
                ),
            ),
            SdkError::DispatchFailure(_) => Ec2Error::new(
                operation,
                "Unreachable",
                format!(
                    "cannot reach the {service} endpoint {url} ({}); check the network, {settings}",
                    root_cause(&err)
                ),
            ),
            _ => Ec2Error::new(operation, "Error", root_cause(&err)),
        }
    }
}

/// The innermost error's message: "Connection refused (os error 111)" rather than the SDK's
/// nested debug output.
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut e = err;
    while let Some(next) = e.source() {
        e = next;
    }
    e.to_string()
}

/// Sends `$request` with DryRun on: `Ok(())`, or the error's code and the `Ec2Error` of `$op`.
macro_rules! ask_dry {
    ($sdk:expr, $op:expr, $request:expr) => {
        $request
            .dry_run(true)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| (e.code().map(String::from), $sdk.ec2_error($op, e)))
    };
}

/// Follows every page of `$pages` (a paginator's `send()`), counting each request as `$op`,
/// and collects what `$read` makes of each page (an iterator).
macro_rules! collect_pages {
    ($sdk:expr, $op:expr, $pages:expr, |$page:ident| $read:expr) => {{
        let mut pages = $pages;
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            $sdk.calls.count($op);
            let $page = page.map_err(|e| $sdk.ec2_error($op, e))?;
            out.extend($read);
        }
        out
    }};
}

mod network;

/// What a DryRun's answer says: EC2 answers with an error either way, `DryRunOperation` when
/// the call is allowed.
fn dry_run_answer(answer: Result<(), (Option<String>, Ec2Error)>) -> Ec2Result<bool> {
    match answer {
        Ok(()) => Ok(true),
        Err((Some(c), _)) if c == "DryRunOperation" => Ok(true),
        Err((Some(c), _)) if c == "UnauthorizedOperation" => Ok(false),
        // A call on a resource apply has not made yet names a placeholder id; EC2 may check
        // that the resource exists before the permission. That answer says nothing about the
        // permission, so it is not reported as denied (apply would then say so).
        Err((Some(c), _)) if c.ends_with("NotFound") || c.ends_with("Malformed") => Ok(true),
        Err((_, e)) => Err(e),
    }
}

fn cluster_filter(cluster: &str) -> Filter {
    Filter::builder()
        .name(format!("tag:{}", tags::CLUSTER))
        .values(cluster)
        .build()
}

fn sdk_tags(t: &Tags) -> Vec<Tag> {
    t.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

fn tag_spec(kind: ResourceType, t: &Tags) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(sdk_tags(t)))
        .build()
}

fn read_tags(t: &[Tag]) -> Tags {
    t.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
        .collect()
}

fn permission(group_id: &str, rule: &Rule) -> IpPermission {
    let mut b = IpPermission::builder().ip_protocol(&rule.protocol);
    if let Some((from, to)) = rule.ports {
        b = b.from_port(from).to_port(to);
    }
    match &rule.source {
        Source::Group => {
            b.user_id_group_pairs(UserIdGroupPair::builder().group_id(group_id).build())
        }
        Source::OtherGroup(g) => {
            b.user_id_group_pairs(UserIdGroupPair::builder().group_id(g).build())
        }
        Source::Cidr(c) => b.ip_ranges(IpRange::builder().cidr_ip(c.to_string()).build()),
        Source::CidrV6(c) => b.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(c).build()),
        Source::PrefixList(p) => {
            b.prefix_list_ids(PrefixListId::builder().prefix_list_id(p).build())
        }
    }
    .build()
}

fn read_subnet(s: &aws_sdk_ec2::types::Subnet) -> Option<Subnet> {
    Some(Subnet {
        id: s.subnet_id()?.into(),
        vpc_id: s.vpc_id()?.into(),
        zone: s.availability_zone()?.into(),
        cidr: s.cidr_block()?.parse().ok()?,
        available_addresses: s
            .available_ip_address_count()
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0),
    })
}

fn read_interface(n: &aws_sdk_ec2::types::NetworkInterface) -> Option<NetworkInterface> {
    Some(NetworkInterface {
        id: n.network_interface_id().unwrap_or_default().into(),
        subnet_id: n.subnet_id().unwrap_or_default().into(),
        vpc_id: n.vpc_id().unwrap_or_default().into(),
        zone: n.availability_zone().unwrap_or_default().into(),
        address: n.private_ip_address()?.parse().ok()?,
        instance_id: n
            .attachment()
            .and_then(|a| a.instance_id())
            .map(String::from),
        tags: read_tags(n.tag_set()),
    })
}

/// A route table's subnets and default route.
fn read_route_table(t: &aws_sdk_ec2::types::RouteTable) -> RouteTable {
    let default_route = t
        .routes()
        .iter()
        .find(|r| r.destination_cidr_block() == Some("0.0.0.0/0"))
        .map(|r| DefaultRoute {
            target: [
                r.nat_gateway_id(),
                r.gateway_id(),
                r.transit_gateway_id(),
                r.network_interface_id(),
                r.instance_id(),
                r.vpc_peering_connection_id(),
                r.local_gateway_id(),
                r.carrier_gateway_id(),
                r.core_network_arn(),
            ]
            .into_iter()
            .flatten()
            .next()
            .unwrap_or("unknown")
            .to_string(),
            active: r.state() != Some(&aws_sdk_ec2::types::RouteState::Blackhole),
        });
    RouteTable {
        id: t.route_table_id().unwrap_or_default().into(),
        vpc_id: t.vpc_id().unwrap_or_default().into(),
        main: t.associations().iter().any(|a| a.main() == Some(true)),
        subnets: t
            .associations()
            .iter()
            .filter_map(|a| a.subnet_id().map(String::from))
            .collect(),
        default_route,
    }
}

fn read_address(a: &aws_sdk_ec2::types::Address) -> Address {
    Address {
        allocation_id: a.allocation_id().unwrap_or_default().into(),
        public_ip: a.public_ip().unwrap_or_default().into(),
        association_id: a.association_id().map(String::from),
        interface_id: a.network_interface_id().map(String::from),
        tags: read_tags(a.tags()),
    }
}

/// Every inbound permission of a group, one `Rule` per source.
fn read_rules(group_id: &str, perms: &[IpPermission]) -> Vec<Rule> {
    let mut rules = Vec::new();
    for p in perms {
        let protocol = match p.ip_protocol().unwrap_or("-1") {
            "6" => "tcp".to_string(),
            "17" => "udp".to_string(),
            "1" => "icmp".to_string(),
            other => other.to_string(),
        };
        let ports = match (p.from_port(), p.to_port()) {
            (Some(a), Some(b)) if protocol != "-1" => Some((a, b)),
            _ => None,
        };
        let mut push = |source| {
            rules.push(Rule {
                protocol: protocol.clone(),
                ports,
                source,
            })
        };
        for r in p.ip_ranges() {
            if let Some(Ok(c)) = r.cidr_ip().map(|c| c.parse::<ipnet::Ipv4Net>()) {
                push(Source::Cidr(c));
            }
        }
        for r in p.ipv6_ranges() {
            if let Some(c) = r.cidr_ipv6() {
                push(Source::CidrV6(c.to_string()));
            }
        }
        for g in p.user_id_group_pairs() {
            match g.group_id() {
                Some(id) if id == group_id => push(Source::Group),
                Some(id) => push(Source::OtherGroup(id.to_string())),
                None => {}
            }
        }
        for l in p.prefix_list_ids() {
            if let Some(id) = l.prefix_list_id() {
                push(Source::PrefixList(id.to_string()));
            }
        }
    }
    rules.sort();
    rules.dedup();
    rules
}

#[async_trait]
impl Ec2 for SdkEc2 {
    async fn describe_subnets(&self, ids: &[String]) -> Ec2Result<Vec<Subnet>> {
        const OP: &str = "DescribeSubnets";
        let mut req = self.client.describe_subnets();
        if ids.is_empty() {
            req = req.filters(
                Filter::builder()
                    .name("default-for-az")
                    .values("true")
                    .build(),
            );
        } else {
            req = req.set_subnet_ids(Some(ids.to_vec()));
        }
        Ok(collect_pages!(
            self,
            OP,
            req.into_paginator().send(),
            |page| page.subnets().iter().filter_map(read_subnet)
        ))
    }

    async fn find_security_groups(&self, cluster: &str) -> Ec2Result<Vec<SecurityGroup>> {
        const OP: &str = "DescribeSecurityGroups";
        let mut pages = self
            .client
            .describe_security_groups()
            .filters(cluster_filter(cluster))
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            self.calls.count(OP);
            for g in page.map_err(|e| self.ec2_error(OP, e))?.security_groups() {
                let id = g.group_id().unwrap_or_default().to_string();
                out.push(SecurityGroup {
                    rules: read_rules(&id, g.ip_permissions()),
                    id,
                    name: g.group_name().unwrap_or_default().into(),
                    vpc_id: g.vpc_id().unwrap_or_default().into(),
                    tags: read_tags(g.tags()),
                });
            }
        }
        Ok(out)
    }

    async fn find_network_interfaces(&self, cluster: &str) -> Ec2Result<Vec<NetworkInterface>> {
        const OP: &str = "DescribeNetworkInterfaces";
        let pages = self
            .client
            .describe_network_interfaces()
            .filters(cluster_filter(cluster))
            .into_paginator()
            .send();
        Ok(collect_pages!(self, OP, pages, |page| {
            page.network_interfaces().iter().filter_map(read_interface)
        }))
    }

    async fn find_instances(&self, cluster: &str) -> Ec2Result<Vec<Instance>> {
        const OP: &str = "DescribeInstances";
        let mut pages = self
            .client
            .describe_instances()
            .filters(cluster_filter(cluster))
            .max_results(1000)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            self.calls.count(OP);
            for r in page.map_err(|e| self.ec2_error(OP, e))?.reservations() {
                for i in r.instances() {
                    let state = i
                        .state()
                        .and_then(|s| s.name())
                        .and_then(|n| InstanceState::parse(n.as_str()))
                        .unwrap_or(InstanceState::Pending);
                    let primary = i
                        .network_interfaces()
                        .iter()
                        .find(|n| n.attachment().and_then(|a| a.device_index()) == Some(0))
                        .and_then(|n| n.network_interface_id())
                        .map(String::from);
                    out.push(Instance {
                        id: i.instance_id().unwrap_or_default().into(),
                        state,
                        instance_type: i
                            .instance_type()
                            .map(|t| t.as_str().to_string())
                            .unwrap_or_default(),
                        zone: i
                            .placement()
                            .and_then(|p| p.availability_zone())
                            .unwrap_or_default()
                            .into(),
                        subnet_id: i.subnet_id().map(String::from),
                        private_address: i.private_ip_address().and_then(|a| a.parse().ok()),
                        primary_interface: primary,
                        image_id: i.image_id().unwrap_or_default().into(),
                        tags: read_tags(i.tags()),
                    });
                }
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn availability_zones(&self) -> Ec2Result<Vec<(String, String)>> {
        const OP: &str = "DescribeAvailabilityZones";
        // Not paginated: a region's zones come in one answer.
        self.calls.count(OP);
        let out = self
            .client
            .describe_availability_zones()
            .send()
            .await
            .map_err(|e| self.ec2_error(OP, e))?;
        Ok(out
            .availability_zones()
            .iter()
            .filter_map(|z| Some((z.zone_name()?.to_string(), z.zone_id()?.to_string())))
            .collect())
    }

    async fn describe_route_tables(&self, vpc_id: &str) -> Ec2Result<Vec<RouteTable>> {
        const OP: &str = "DescribeRouteTables";
        let pages = self
            .client
            .describe_route_tables()
            .filters(Filter::builder().name("vpc-id").values(vpc_id).build())
            .into_paginator()
            .send();
        Ok(collect_pages!(self, OP, pages, |page| {
            page.route_tables().iter().map(read_route_table)
        }))
    }

    async fn find_addresses(&self, cluster: &str) -> Ec2Result<Vec<Address>> {
        const OP: &str = "DescribeAddresses";
        // DescribeAddresses is not paginated: it answers every address at once.
        self.calls.count(OP);
        let out = self
            .client
            .describe_addresses()
            .filters(cluster_filter(cluster))
            .send()
            .await
            .map_err(|e| self.ec2_error(OP, e))?;
        Ok(out.addresses().iter().map(read_address).collect())
    }

    async fn interfaces_holding(
        &self,
        subnet_ids: &[String],
        addresses: &[std::net::Ipv4Addr],
    ) -> Ec2Result<Vec<NetworkInterface>> {
        const OP: &str = "DescribeNetworkInterfaces";
        let mut out = Vec::new();
        // EC2 takes up to 200 values per filter: one request per 200 addresses.
        for chunk in addresses.chunks(200) {
            let mut pages = self
                .client
                .describe_network_interfaces()
                .filters(
                    Filter::builder()
                        .name("subnet-id")
                        .set_values(Some(subnet_ids.to_vec()))
                        .build(),
                )
                .filters(
                    Filter::builder()
                        .name("addresses.private-ip-address")
                        .set_values(Some(chunk.iter().map(ToString::to_string).collect()))
                        .build(),
                )
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                self.calls.count(OP);
                let page = page.map_err(|e| self.ec2_error(OP, e))?;
                out.extend(page.network_interfaces().iter().filter_map(read_interface));
            }
        }
        Ok(out)
    }

    async fn allocate_address(&self, t: &Tags) -> Ec2Result<Address> {
        const OP: &str = "AllocateAddress";
        self.calls.count(OP);
        let out = self
            .client
            .allocate_address()
            .domain(aws_sdk_ec2::types::DomainType::Vpc)
            .tag_specifications(tag_spec(ResourceType::ElasticIp, t))
            .customize()
            // No ClientToken: a resend after a lost answer would allocate a second address.
            .config_override(
                aws_sdk_ec2::config::Builder::default().retry_config(RetryConfig::disabled()),
            )
            .send()
            .await
            .map_err(|e| self.ec2_error(OP, e))?;
        Ok(Address {
            allocation_id: out.allocation_id().unwrap_or_default().into(),
            public_ip: out.public_ip().unwrap_or_default().into(),
            association_id: None,
            interface_id: None,
            tags: t.clone(),
        })
    }

    async fn associate_address(
        &self,
        allocation_id: &str,
        interface_id: &str,
    ) -> Ec2Result<String> {
        const OP: &str = "AssociateAddress";
        self.calls.count(OP);
        let out = self
            .client
            .associate_address()
            .allocation_id(allocation_id)
            .network_interface_id(interface_id)
            .allow_reassociation(false)
            .send()
            .await
            .map_err(|e| self.ec2_error(OP, e))?;
        Ok(out.association_id().unwrap_or_default().to_string())
    }

    async fn disassociate_address(&self, association_id: &str) -> Ec2Result<()> {
        const OP: &str = "DisassociateAddress";
        self.calls.count(OP);
        self.client
            .disassociate_address()
            .association_id(association_id)
            .send()
            .await
            .map_err(|e| self.ec2_error(OP, e))?;
        Ok(())
    }

    async fn release_address(&self, allocation_id: &str) -> Ec2Result<()> {
        const OP: &str = "ReleaseAddress";
        self.calls.count(OP);
        self.client
            .release_address()
            .allocation_id(allocation_id)
            .send()
            .await
            .map_err(|e| self.ec2_error(OP, e))?;
        Ok(())
    }

    async fn create_security_group(&self, spec: &SecurityGroupSpec) -> Ec2Result<String> {
        const OP: &str = "CreateSecurityGroup";
        self.calls.count(OP);
        let out = self
            .client
            .create_security_group()
            .group_name(&spec.name)
            .description(&spec.description)
            .vpc_id(&spec.vpc_id)
            .tag_specifications(tag_spec(ResourceType::SecurityGroup, &spec.tags))
            .send()
            .await
            .map_err(|e| self.ec2_error(OP, e))?;
        out.group_id()
            .map(String::from)
            .ok_or_else(|| Ec2Error::new(OP, "NoId", "EC2 returned no group id"))
    }

    async fn authorize_ingress(&self, group_id: &str, rules: &[Rule]) -> Ec2Result<()> {
        const OP: &str = "AuthorizeSecurityGroupIngress";
        self.calls.count(OP);
        self.client
            .authorize_security_group_ingress()
            .group_id(group_id)
            .set_ip_permissions(Some(
                rules.iter().map(|r| permission(group_id, r)).collect(),
            ))
            .send()
            .await
            .map_err(|e| self.ec2_error(OP, e))?;
        Ok(())
    }

    async fn revoke_ingress(&self, group_id: &str, rules: &[Rule]) -> Ec2Result<()> {
        const OP: &str = "RevokeSecurityGroupIngress";
        self.calls.count(OP);
        self.client
            .revoke_security_group_ingress()
            .group_id(group_id)
            .set_ip_permissions(Some(
                rules.iter().map(|r| permission(group_id, r)).collect(),
            ))
            .send()
            .await
            .map_err(|e| self.ec2_error(OP, e))?;
        Ok(())
    }

    async fn delete_security_group(&self, group_id: &str) -> Ec2Result<()> {
        const OP: &str = "DeleteSecurityGroup";
        self.calls.count(OP);
        self.client
            .delete_security_group()
            .group_id(group_id)
            .send()
            .await
            .map_err(|e| self.ec2_error(OP, e))?;
        Ok(())
    }

    async fn create_network_interface(&self, spec: &InterfaceSpec) -> Ec2Result<String> {
        const OP: &str = "CreateNetworkInterface";
        self.calls.count(OP);
        let out = self
            .client
            .create_network_interface()
            .subnet_id(&spec.subnet_id)
            .private_ip_address(spec.address.to_string())
            .groups(&spec.group_id)
            .description(&spec.description)
            .tag_specifications(tag_spec(ResourceType::NetworkInterface, &spec.tags))
            .send()
            .await
            .map_err(|e| self.ec2_error(OP, e))?;
        out.network_interface()
            .and_then(|n| n.network_interface_id())
            .map(String::from)
            .ok_or_else(|| Ec2Error::new(OP, "NoId", "EC2 returned no interface id"))
    }

    async fn delete_network_interface(&self, id: &str) -> Ec2Result<()> {
        const OP: &str = "DeleteNetworkInterface";
        self.calls.count(OP);
        self.client
            .delete_network_interface()
            .network_interface_id(id)
            .send()
            .await
            .map_err(|e| self.ec2_error(OP, e))?;
        Ok(())
    }

    async fn set_tags(&self, resource_id: &str, t: &Tags) -> Ec2Result<()> {
        const OP: &str = "CreateTags";
        self.calls.count(OP);
        self.client
            .create_tags()
            .resources(resource_id)
            .set_tags(Some(sdk_tags(t)))
            .send()
            .await
            .map_err(|e| self.ec2_error(OP, e))?;
        Ok(())
    }

    async fn run_instance(&self, spec: &InstanceSpec) -> Ec2Result<String> {
        const OP: &str = "RunInstances";
        self.calls.count(OP);
        let mut req = self
            .client
            .run_instances()
            .image_id(&spec.image_id)
            .instance_type(InstanceType::from(spec.instance_type.as_str()))
            .min_count(1)
            .max_count(1)
            .client_token(&spec.client_token)
            .placement(Placement::builder().availability_zone(&spec.zone).build())
            .network_interfaces(
                InstanceNetworkInterfaceSpecification::builder()
                    .device_index(0)
                    .network_interface_id(&spec.interface_id)
                    .build(),
            )
            .user_data(base64::engine::general_purpose::STANDARD.encode(&spec.user_data))
            .metadata_options(
                InstanceMetadataOptionsRequest::builder()
                    .http_tokens(HttpTokensState::Required)
                    .http_endpoint(InstanceMetadataEndpointState::Enabled)
                    .http_put_response_hop_limit(1)
                    .build(),
            )
            .tag_specifications(tag_spec(ResourceType::Instance, &spec.tags))
            .tag_specifications(tag_spec(ResourceType::Volume, &spec.tags));
        for v in &spec.volumes {
            req = req.block_device_mappings(
                BlockDeviceMapping::builder()
                    .device_name(&v.device)
                    .ebs(
                        EbsBlockDevice::builder()
                            .volume_size(v.size_gib as i32)
                            .volume_type(VolumeType::Gp3)
                            .iops(v.iops as i32)
                            .throughput(v.throughput_mibps as i32)
                            .encrypted(true)
                            .delete_on_termination(true)
                            .build(),
                    )
                    .build(),
            );
        }
        if let Some(k) = &spec.key_name {
            req = req.key_name(k);
        }
        let out = req.send().await.map_err(|e| self.ec2_error(OP, e))?;
        out.instances()
            .first()
            .and_then(|i| i.instance_id())
            .map(String::from)
            .ok_or_else(|| Ec2Error::new(OP, "NoId", "EC2 returned no instance"))
    }

    async fn terminate_instances(&self, ids: &[String]) -> Ec2Result<()> {
        const OP: &str = "TerminateInstances";
        // EC2 takes up to 1000 ids per call.
        for chunk in ids.chunks(1000) {
            self.calls.count(OP);
            self.client
                .terminate_instances()
                .set_instance_ids(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| self.ec2_error(OP, e))?;
        }
        Ok(())
    }

    async fn stop_instances(&self, ids: &[String]) -> Ec2Result<()> {
        const OP: &str = "StopInstances";
        self.calls.count(OP);
        self.client
            .stop_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .send()
            .await
            .map_err(|e| self.ec2_error(OP, e))?;
        Ok(())
    }

    async fn start_instances(&self, ids: &[String]) -> Ec2Result<()> {
        const OP: &str = "StartInstances";
        self.calls.count(OP);
        self.client
            .start_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .send()
            .await
            .map_err(|e| self.ec2_error(OP, e))?;
        Ok(())
    }

    async fn modify_instance(&self, id: &str, change: &InstanceChange) -> Ec2Result<()> {
        const OP: &str = "ModifyInstanceAttribute";
        // EC2 changes one attribute per request.
        if let Some(t) = &change.instance_type {
            self.calls.count(OP);
            self.client
                .modify_instance_attribute()
                .instance_id(id)
                .instance_type(AttributeValue::builder().value(t).build())
                .send()
                .await
                .map_err(|e| self.ec2_error(OP, e))?;
        }
        if let Some(data) = &change.user_data {
            self.calls.count(OP);
            // A blob: the SDK base64-encodes it once, as EC2 expects.
            self.client
                .modify_instance_attribute()
                .instance_id(id)
                .user_data(
                    aws_sdk_ec2::types::SecureBlobAttributeValue::builder()
                        .value(aws_sdk_ec2::primitives::Blob::new(data.clone()))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| self.ec2_error(OP, e))?;
        }
        Ok(())
    }

    async fn find_volumes(&self, cluster: &str) -> Ec2Result<Vec<Volume>> {
        const OP: &str = "DescribeVolumes";
        let mut pages = self
            .client
            .describe_volumes()
            .filters(cluster_filter(cluster))
            .filters(
                Filter::builder()
                    .name("tag-key")
                    .values(tags::VOLUME)
                    .build(),
            )
            .max_results(500)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            self.calls.count(OP);
            for v in page.map_err(|e| self.ec2_error(OP, e))?.volumes() {
                let attachment = v.attachments().first().and_then(|a| {
                    Some(VolumeAttachment {
                        instance_id: a.instance_id()?.to_string(),
                        device: a.device().unwrap_or_default().to_string(),
                        state: a
                            .state()
                            .and_then(|s| AttachmentState::parse(s.as_str()))
                            .unwrap_or(AttachmentState::Attaching),
                    })
                });
                let attachment = attachment.filter(|a| a.state != AttachmentState::Detached);
                let n = |x: Option<i32>| x.and_then(|x| u32::try_from(x).ok()).unwrap_or(0);
                out.push(Volume {
                    id: v.volume_id().unwrap_or_default().to_string(),
                    zone: v.availability_zone().unwrap_or_default().to_string(),
                    state: v
                        .state()
                        .and_then(|s| VolumeState::parse(s.as_str()))
                        .unwrap_or(VolumeState::Creating),
                    size_gib: n(v.size()),
                    iops: n(v.iops()),
                    throughput_mibps: n(v.throughput()),
                    attachment,
                    tags: read_tags(v.tags()),
                });
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn create_volume(&self, spec: &DataVolumeSpec) -> Ec2Result<String> {
        const OP: &str = "CreateVolume";
        self.calls.count(OP);
        let out = self
            .client
            .create_volume()
            .availability_zone(&spec.zone)
            .size(spec.size_gib as i32)
            .volume_type(VolumeType::Gp3)
            .iops(spec.iops as i32)
            .throughput(spec.throughput_mibps as i32)
            .encrypted(true)
            .client_token(&spec.client_token)
            .tag_specifications(tag_spec(ResourceType::Volume, &spec.tags))
            .send()
            .await
            .map_err(|e| self.ec2_error(OP, e))?;
        out.volume_id()
            .map(String::from)
            .ok_or_else(|| Ec2Error::new(OP, "NoId", "EC2 returned no volume id"))
    }

    async fn attach_volume(
        &self,
        volume_id: &str,
        instance_id: &str,
        device: &str,
    ) -> Ec2Result<()> {
        const OP: &str = "AttachVolume";
        self.calls.count(OP);
        self.client
            .attach_volume()
            .volume_id(volume_id)
            .instance_id(instance_id)
            .device(device)
            .send()
            .await
            .map_err(|e| self.ec2_error(OP, e))?;
        Ok(())
    }

    async fn modify_volume(&self, volume_id: &str, to: &VolumeSize) -> Ec2Result<()> {
        const OP: &str = "ModifyVolume";
        self.calls.count(OP);
        self.client
            .modify_volume()
            .volume_id(volume_id)
            .size(to.size_gib as i32)
            .iops(to.iops as i32)
            .throughput(to.throughput_mibps as i32)
            .send()
            .await
            .map_err(|e| self.ec2_error(OP, e))?;
        Ok(())
    }

    async fn delete_volume(&self, volume_id: &str) -> Ec2Result<()> {
        const OP: &str = "DeleteVolume";
        self.calls.count(OP);
        self.client
            .delete_volume()
            .volume_id(volume_id)
            .send()
            .await
            .map_err(|e| self.ec2_error(OP, e))?;
        Ok(())
    }

    async fn dry_run(&self, call: &super::DryRun) -> Ec2Result<bool> {
        use super::DryRun;
        let op = call.operation();
        self.calls.count("DryRun");
        // EC2 answers a DryRun with an error either way: DryRunOperation means allowed.
        macro_rules! ask {
            ($request:expr) => {
                ask_dry!(self, op, $request)
            };
        }
        let c = &self.client;
        let answer = match call {
            DryRun::CreateSecurityGroup { vpc_id } => ask!(
                c.create_security_group()
                    .group_name("kcluster-preflight")
                    .description("kcluster preflight")
                    .vpc_id(vpc_id)
            ),
            DryRun::AuthorizeSecurityGroupIngress { group_id } => ask!(
                c.authorize_security_group_ingress()
                    .group_id(group_id)
                    .ip_permissions(permission(
                        group_id,
                        &Rule::tcp(9092, Source::Cidr(ipnet::Ipv4Net::default())),
                    ))
            ),
            DryRun::RevokeSecurityGroupIngress { group_id } => ask!(
                c.revoke_security_group_ingress()
                    .group_id(group_id)
                    .ip_permissions(permission(
                        group_id,
                        &Rule::tcp(9092, Source::Cidr(ipnet::Ipv4Net::default())),
                    ))
            ),
            DryRun::CreateNetworkInterface { subnet_id } => {
                ask!(c.create_network_interface().subnet_id(subnet_id))
            }
            DryRun::CreateTags { resource_id } => ask!(
                c.create_tags()
                    .resources(resource_id)
                    .tags(Tag::builder().key(tags::CLUSTER).value("preflight").build())
            ),
            DryRun::RunInstances {
                image_id,
                instance_type,
                subnet_id,
            } => ask!(
                c.run_instances()
                    .image_id(image_id)
                    .instance_type(InstanceType::from(instance_type.as_str()))
                    .subnet_id(subnet_id)
                    .min_count(1)
                    .max_count(1)
            ),
            DryRun::TerminateInstances { instance_id } => {
                ask!(c.terminate_instances().instance_ids(instance_id))
            }
            DryRun::DeleteNetworkInterface { interface_id } => {
                ask!(
                    c.delete_network_interface()
                        .network_interface_id(interface_id)
                )
            }
            DryRun::AllocateAddress => {
                ask!(
                    c.allocate_address()
                        .domain(aws_sdk_ec2::types::DomainType::Vpc)
                )
            }
            DryRun::AssociateAddress {
                allocation_id,
                interface_id,
            } => ask!(
                c.associate_address()
                    .allocation_id(allocation_id)
                    .network_interface_id(interface_id)
            ),
            DryRun::DisassociateAddress { association_id } => {
                ask!(c.disassociate_address().association_id(association_id))
            }
            DryRun::ReleaseAddress { allocation_id } => {
                ask!(c.release_address().allocation_id(allocation_id))
            }
            DryRun::CreateVolume { zone } => ask!(
                c.create_volume()
                    .availability_zone(zone)
                    .size(1)
                    .volume_type(VolumeType::Gp3)
                    .encrypted(true)
            ),
            DryRun::AttachVolume {
                volume_id,
                instance_id,
            } => ask!(
                c.attach_volume()
                    .volume_id(volume_id)
                    .instance_id(instance_id)
                    .device(crate::provision::desired::DATA_DEVICE)
            ),
            DryRun::ModifyVolume { volume_id } => {
                ask!(c.modify_volume().volume_id(volume_id).size(1))
            }
            DryRun::StopInstances { instance_id } => {
                ask!(c.stop_instances().instance_ids(instance_id))
            }
            DryRun::ModifyInstanceAttribute { instance_id } => ask!(
                c.modify_instance_attribute()
                    .instance_id(instance_id)
                    .instance_type(AttributeValue::builder().value("t3.micro").build())
            ),
            DryRun::StartInstances { instance_id } => {
                ask!(c.start_instances().instance_ids(instance_id))
            }
            DryRun::Network(n) => self.network_dry_run(n).await,
        };
        dry_run_answer(answer)
    }

    async fn instance_type_offerings(
        &self,
        types: &[String],
        zones: &[String],
    ) -> Ec2Result<Vec<(String, String)>> {
        const OP: &str = "DescribeInstanceTypeOfferings";
        let mut pages = self
            .client
            .describe_instance_type_offerings()
            .location_type(aws_sdk_ec2::types::LocationType::AvailabilityZone)
            .filters(
                Filter::builder()
                    .name("instance-type")
                    .set_values(Some(types.to_vec()))
                    .build(),
            )
            .filters(
                Filter::builder()
                    .name("location")
                    .set_values(Some(zones.to_vec()))
                    .build(),
            )
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            self.calls.count(OP);
            let page = page.map_err(|e| self.ec2_error(OP, e))?;
            for o in page.instance_type_offerings() {
                if let (Some(t), Some(z)) = (o.instance_type(), o.location()) {
                    out.push((t.as_str().to_string(), z.to_string()));
                }
            }
        }
        Ok(out)
    }

    async fn instance_type_architectures(
        &self,
        types: &[String],
    ) -> Ec2Result<BTreeMap<String, Vec<String>>> {
        const OP: &str = "DescribeInstanceTypes";
        let mut out = BTreeMap::new();
        // One request per type: EC2 fails the whole request when one type does not exist.
        for t in types {
            self.calls.count(OP);
            let answer = self
                .client
                .describe_instance_types()
                .instance_types(InstanceType::from(t.as_str()))
                .send()
                .await;
            let page = match answer {
                Ok(page) => page,
                Err(e)
                    if e.code()
                        .is_some_and(|c| c.starts_with("InvalidInstanceType")) =>
                {
                    continue;
                }
                Err(e) => return Err(self.ec2_error(OP, e)),
            };
            for i in page.instance_types() {
                let archs = i
                    .processor_info()
                    .map(|p| {
                        p.supported_architectures()
                            .iter()
                            .map(|a| a.as_str().to_string())
                            .collect()
                    })
                    .unwrap_or_default();
                out.insert(t.clone(), archs);
            }
        }
        Ok(out)
    }

    async fn describe_image(&self, id: &str) -> Ec2Result<Option<super::Image>> {
        const OP: &str = "DescribeImages";
        self.calls.count(OP);
        let out = match self.client.describe_images().image_ids(id).send().await {
            Ok(out) => out,
            Err(e) if e.code().is_some_and(|c| c.starts_with("InvalidAMIID.")) => return Ok(None),
            Err(e) => return Err(self.ec2_error(OP, e)),
        };
        Ok(out.images().first().map(|i| super::Image {
            id: id.to_string(),
            root_device: i.root_device_name().unwrap_or("/dev/xvda").to_string(),
            architecture: i
                .architecture()
                .map(|a| a.as_str().to_string())
                .unwrap_or_default(),
        }))
    }

    async fn resolve_parameter(&self, name: &str) -> Ec2Result<String> {
        const OP: &str = "GetParameter";
        self.calls.count(OP);
        let out = self
            .ssm
            .get_parameter()
            .name(name)
            .send()
            .await
            .map_err(|e| self.error(&self.ssm_endpoint, OP, e))?;
        out.parameter()
            .and_then(|p| p.value())
            .map(String::from)
            .ok_or_else(|| Ec2Error::new(OP, "NoValue", format!("parameter {name} has no value")))
    }

    async fn user_data(&self, instance_id: &str) -> Ec2Result<Option<Vec<u8>>> {
        const OP: &str = "DescribeInstanceAttribute";
        self.calls.count(OP);
        let out = self
            .client
            .describe_instance_attribute()
            .instance_id(instance_id)
            .attribute(InstanceAttributeName::UserData)
            .send()
            .await
            .map_err(|e| self.ec2_error(OP, e))?;
        let Some(text) = out.user_data().and_then(AttributeValue::value) else {
            return Ok(None);
        };
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map(Some)
            .map_err(|e| Ec2Error::new(OP, "BadUserData", e.to_string()))
    }

    async fn create_parameter(&self, name: &str, value: &str) -> Ec2Result<Option<String>> {
        const OP: &str = "PutParameter";
        self.calls.count(OP);
        let put = self
            .ssm
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .overwrite(false)
            .send()
            .await;
        match put {
            Ok(_) => Ok(None),
            Err(e) if e.code() == Some("ParameterAlreadyExists") => {
                match self.resolve_parameter(name).await {
                    Ok(held) => Ok(Some(held)),
                    // Released in between: the next attempt finds it free.
                    Err(e) if e.code == "ParameterNotFound" => {
                        Ok(Some("a run that has just ended".into()))
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(self.error(&self.ssm_endpoint, OP, e)),
        }
    }

    async fn delete_parameter(&self, name: &str) -> Ec2Result<()> {
        const OP: &str = "DeleteParameter";
        self.calls.count(OP);
        match self.ssm.delete_parameter().name(name).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ParameterNotFound") => Ok(()),
            Err(e) => Err(self.error(&self.ssm_endpoint, OP, e)),
        }
    }

    fn calls(&self) -> BTreeMap<String, u64> {
        self.calls.snapshot()
    }
}
