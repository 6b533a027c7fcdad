//! EC2 as the tests see it: the AWS SDK with explicit fake credentials (no environment), used to
//! count what really exists after kcluster ran and to change things "by hand" the way an
//! operator would. Independent of kcluster's own EC2 code, so it checks that code too.

use aws_sdk_ec2::Client;
use aws_sdk_ec2::config::retry::RetryConfig;
use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ec2::types::{
    Address, DomainType, Filter, Instance, InstanceAttributeName,
    InstanceNetworkInterfaceSpecification, InstanceStateName, InstanceType, InternetGateway,
    IpPermission, NatGateway, NatGatewayState, NetworkInterface, Placement, ResourceType,
    RouteTable, SecurityGroup, Subnet, Tag, TagSpecification, Volume, VpcAttributeName,
    VpcEndpoint,
};

/// The network resources of a cluster (or of the whole region), as EC2 has them.
#[derive(Debug, Default)]
pub struct Network {
    pub vpcs: Vec<aws_sdk_ec2::types::Vpc>,
    pub subnets: Vec<Subnet>,
    pub gateways: Vec<InternetGateway>,
    /// Not deleted.
    pub nats: Vec<NatGateway>,
    pub tables: Vec<RouteTable>,
    /// Not deleted.
    pub endpoints: Vec<VpcEndpoint>,
}

impl Network {
    /// How many resources, of every kind.
    pub fn count(&self) -> usize {
        self.vpcs.len()
            + self.subnets.len()
            + self.gateways.len()
            + self.nats.len()
            + self.tables.len()
            + self.endpoints.len()
    }
}

/// One region of the mock's account.
pub struct Account {
    rt: tokio::runtime::Runtime,
    client: Client,
}

/// An instance to launch by hand: on an existing interface, or in a subnet.
pub struct Launch<'a> {
    pub instance_type: &'a str,
    pub zone: &'a str,
    pub interface_id: Option<&'a str>,
    pub subnet_id: Option<&'a str>,
    /// Base64, exactly as EC2 stores it.
    pub user_data: Option<&'a str>,
    pub tags: Vec<(String, String)>,
}

/// The image moto's AL2023 parameter names in eu-west-1, which `launch` uses
/// (tests/support/MOTO_NOTES.md).
pub const AMI: &str = "ami-087fc0fcee2c7570a";

/// The value of tag `key`.
pub fn tag<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

fn filter(name: &str, values: &[&str]) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.iter().map(|v| v.to_string()).collect()))
        .build()
}

fn cluster_filter(cluster: &str) -> Filter {
    filter("tag:kcluster:cluster", &[cluster])
}

/// Pending, running, stopping or stopped: an instance that still costs money.
fn is_live(i: &Instance) -> bool {
    !matches!(
        i.state().and_then(|s| s.name()),
        Some(InstanceStateName::ShuttingDown | InstanceStateName::Terminated)
    )
}

impl Account {
    pub fn connect(endpoint: &str, region: &str) -> Account {
        let config = aws_sdk_ec2::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .endpoint_url(endpoint)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
            // The strict EC2 throttles the tests' own calls too.
            .retry_config(RetryConfig::standard().with_max_attempts(10))
            .build();
        Account {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime"),
            client: Client::from_conf(config),
        }
    }

    fn block<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.rt.block_on(f)
    }

    /// Every live instance in the region, whoever owns it.
    pub fn all_instances(&self) -> Vec<Instance> {
        self.instances_where(None)
    }

    /// The live instances carrying `kcluster:cluster=<cluster>`.
    pub fn instances(&self, cluster: &str) -> Vec<Instance> {
        self.instances_where(Some(cluster_filter(cluster)))
    }

    fn instances_where(&self, f: Option<Filter>) -> Vec<Instance> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .describe_instances()
            .set_filters(f.map(|f| vec![f]))
            .into_paginator()
            .send();
        self.block(async {
            while let Some(page) = pages.next().await {
                for r in page.expect("DescribeInstances").reservations() {
                    out.extend(r.instances().iter().filter(|i| is_live(i)).cloned());
                }
            }
        });
        out.sort_by(|a, b| a.instance_id().cmp(&b.instance_id()));
        out
    }

    /// The network interfaces carrying the cluster tag.
    pub fn interfaces(&self, cluster: &str) -> Vec<NetworkInterface> {
        let out = self
            .block(
                self.client
                    .describe_network_interfaces()
                    .filters(cluster_filter(cluster))
                    .send(),
            )
            .expect("DescribeNetworkInterfaces");
        out.network_interfaces().to_vec()
    }

    /// The security groups carrying the cluster tag.
    pub fn groups(&self, cluster: &str) -> Vec<SecurityGroup> {
        let out = self
            .block(
                self.client
                    .describe_security_groups()
                    .filters(cluster_filter(cluster))
                    .send(),
            )
            .expect("DescribeSecurityGroups");
        out.security_groups().to_vec()
    }

    /// The data volumes kcluster made for the cluster (tag `kcluster:volume`), in any state.
    pub fn data_volumes(&self, cluster: &str) -> Vec<Volume> {
        let out = self
            .block(
                self.client
                    .describe_volumes()
                    .filters(cluster_filter(cluster))
                    .filters(filter("tag-key", &["kcluster:volume"]))
                    .send(),
            )
            .expect("DescribeVolumes");
        out.volumes().to_vec()
    }

    /// The volumes attached to `instance_id`.
    pub fn volumes(&self, instance_id: &str) -> Vec<Volume> {
        let out = self
            .block(
                self.client
                    .describe_volumes()
                    .filters(filter("attachment.instance-id", &[instance_id]))
                    .send(),
            )
            .expect("DescribeVolumes");
        out.volumes().to_vec()
    }

    /// The user-data EC2 holds for an instance, base64 as EC2 returns it.
    pub fn user_data_base64(&self, instance_id: &str) -> String {
        let out = self
            .block(
                self.client
                    .describe_instance_attribute()
                    .instance_id(instance_id)
                    .attribute(InstanceAttributeName::UserData)
                    .send(),
            )
            .expect("DescribeInstanceAttribute");
        out.user_data()
            .and_then(|v| v.value())
            .unwrap_or_else(|| panic!("{instance_id} has no user-data"))
            .to_string()
    }

    /// The user-data of an instance as text (gunzipped if kcluster compressed it).
    pub fn user_data(&self, instance_id: &str) -> String {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(self.user_data_base64(instance_id))
            .expect("user-data is base64");
        kcluster::render::user_data_text(&bytes).expect("user-data is text")
    }

    /// The default subnet of `zone`.
    pub fn default_subnet(&self, zone: &str) -> Subnet {
        let out = self
            .block(
                self.client
                    .describe_subnets()
                    .filters(filter("default-for-az", &["true"]))
                    .filters(filter("availability-zone", &[zone]))
                    .send(),
            )
            .expect("DescribeSubnets");
        match out.subnets() {
            [s] => s.clone(),
            other => panic!("expected one default subnet in {zone}, found {other:?}"),
        }
    }

    pub fn terminate(&self, instance_id: &str) {
        self.block(
            self.client
                .terminate_instances()
                .instance_ids(instance_id)
                .send(),
        )
        .expect("TerminateInstances");
    }

    pub fn stop(&self, instance_ids: &[String]) {
        self.block(
            self.client
                .stop_instances()
                .set_instance_ids(Some(instance_ids.to_vec()))
                .send(),
        )
        .expect("StopInstances");
    }

    /// Adds ingress permissions to a group, as someone in the console would.
    pub fn authorize(&self, group_id: &str, permissions: Vec<IpPermission>) {
        self.block(
            self.client
                .authorize_security_group_ingress()
                .group_id(group_id)
                .set_ip_permissions(Some(permissions))
                .send(),
        )
        .expect("AuthorizeSecurityGroupIngress");
    }

    /// A network interface at `address` in `subnet_id`, in `group_id`, without tags.
    pub fn create_interface(&self, subnet_id: &str, address: &str, group_id: &str) -> String {
        self.try_create_interface(subnet_id, address, Some(group_id))
            .unwrap_or_else(|code| panic!("CreateNetworkInterface: {code}"))
    }

    /// A network interface at `address` in `subnet_id`, or EC2's error code.
    pub fn try_create_interface(
        &self,
        subnet_id: &str,
        address: &str,
        group_id: Option<&str>,
    ) -> Result<String, String> {
        let out = self
            .block(
                self.client
                    .create_network_interface()
                    .subnet_id(subnet_id)
                    .private_ip_address(address)
                    .set_groups(group_id.map(|g| vec![g.to_string()]))
                    .send(),
            )
            .map_err(|e| {
                e.into_service_error()
                    .meta()
                    .code()
                    .unwrap_or("?")
                    .to_string()
            })?;
        Ok(out
            .network_interface()
            .and_then(|n| n.network_interface_id())
            .expect("an interface id")
            .to_string())
    }

    /// Puts tags on any resource, as an operator tagging by hand.
    pub fn tag_resource(&self, id: &str, tags: &[(&str, &str)]) {
        let tags: Vec<Tag> = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
            .collect();
        self.block(
            self.client
                .create_tags()
                .resources(id)
                .set_tags(Some(tags))
                .send(),
        )
        .expect("CreateTags");
    }

    /// A security group made by hand in `vpc_id`; returns its id.
    pub fn create_group(&self, name: &str, vpc_id: &str) -> String {
        let out = self
            .block(
                self.client
                    .create_security_group()
                    .group_name(name)
                    .description(format!("{name}, made by hand"))
                    .vpc_id(vpc_id)
                    .send(),
            )
            .expect("CreateSecurityGroup");
        out.group_id().expect("a group id").to_string()
    }

    /// A security group by id.
    pub fn group(&self, id: &str) -> SecurityGroup {
        let out = self
            .block(self.client.describe_security_groups().group_ids(id).send())
            .expect("DescribeSecurityGroups");
        out.security_groups()
            .first()
            .cloned()
            .unwrap_or_else(|| panic!("no security group {id}"))
    }

    /// The region's default VPC.
    pub fn default_vpc(&self) -> String {
        self.block(
            self.client
                .describe_vpcs()
                .filters(filter("is-default", &["true"]))
                .send(),
        )
        .expect("DescribeVpcs")
        .vpcs()
        .first()
        .and_then(|v| v.vpc_id())
        .expect("a default VPC")
        .to_string()
    }

    /// The main route table of `vpc`.
    pub fn main_route_table(&self, vpc: &str) -> String {
        self.block(
            self.client
                .describe_route_tables()
                .filters(filter("vpc-id", &[vpc]))
                .filters(filter("association.main", &["true"]))
                .send(),
        )
        .expect("DescribeRouteTables")
        .route_tables()
        .first()
        .and_then(|t| t.route_table_id())
        .expect("a main route table")
        .to_string()
    }

    /// Attaches a new internet gateway to `vpc` and sends its main route table's 0.0.0.0/0
    /// there, as in a real default VPC (moto's default VPC has none). Returns the gateway id.
    pub fn internet_gateway(&self, vpc: &str) -> String {
        let igw = self
            .block(self.client.create_internet_gateway().send())
            .expect("CreateInternetGateway")
            .internet_gateway()
            .and_then(|g| g.internet_gateway_id())
            .expect("a gateway id")
            .to_string();
        self.block(
            self.client
                .attach_internet_gateway()
                .internet_gateway_id(&igw)
                .vpc_id(vpc)
                .send(),
        )
        .expect("AttachInternetGateway");
        let main = self.main_route_table(vpc);
        self.block(
            self.client
                .create_route()
                .route_table_id(main)
                .destination_cidr_block("0.0.0.0/0")
                .gateway_id(&igw)
                .send(),
        )
        .expect("CreateRoute");
        igw
    }

    /// A NAT gateway in `subnet_id` (with an Elastic IP of its own); returns its id.
    pub fn nat_gateway(&self, subnet_id: &str) -> String {
        let eip = self
            .block(
                self.client
                    .allocate_address()
                    .domain(DomainType::Vpc)
                    .send(),
            )
            .expect("AllocateAddress");
        self.block(
            self.client
                .create_nat_gateway()
                .subnet_id(subnet_id)
                .set_allocation_id(eip.allocation_id().map(String::from))
                .send(),
        )
        .expect("CreateNatGateway")
        .nat_gateway()
        .and_then(|n| n.nat_gateway_id())
        .expect("a NAT gateway id")
        .to_string()
    }

    /// Gives `subnet_id` a route table of its own whose 0.0.0.0/0 goes to NAT gateway `nat`,
    /// or that has no default route (`None`).
    pub fn route_subnet(&self, vpc: &str, subnet_id: &str, nat: Option<&str>) {
        let table = self
            .block(self.client.create_route_table().vpc_id(vpc).send())
            .expect("CreateRouteTable")
            .route_table()
            .and_then(|t| t.route_table_id())
            .expect("a route table id")
            .to_string();
        if let Some(nat) = nat {
            self.block(
                self.client
                    .create_route()
                    .route_table_id(&table)
                    .destination_cidr_block("0.0.0.0/0")
                    .nat_gateway_id(nat)
                    .send(),
            )
            .expect("CreateRoute");
        }
        self.block(
            self.client
                .associate_route_table()
                .route_table_id(&table)
                .subnet_id(subnet_id)
                .send(),
        )
        .expect("AssociateRouteTable");
    }

    /// The network of `cluster` (its tag, checked here too: moto ignores the tag filter of
    /// some Describe calls), or every VPC, subnet, gateway, route table and endpoint.
    pub fn network(&self, cluster: Option<&str>) -> Network {
        let f = || cluster.map(|c| vec![cluster_filter(c)]);
        let ours = |t: &[Tag]| cluster.is_none_or(|c| tag(t, "kcluster:cluster") == Some(c));
        let c = &self.client;
        self.block(async {
            Network {
                vpcs: c
                    .describe_vpcs()
                    .set_filters(f())
                    .send()
                    .await
                    .expect("DescribeVpcs")
                    .vpcs()
                    .iter()
                    .filter(|v| ours(v.tags()))
                    .cloned()
                    .collect(),
                subnets: c
                    .describe_subnets()
                    .set_filters(f())
                    .send()
                    .await
                    .expect("DescribeSubnets")
                    .subnets()
                    .iter()
                    .filter(|v| ours(v.tags()))
                    .cloned()
                    .collect(),
                gateways: c
                    .describe_internet_gateways()
                    .set_filters(f())
                    .send()
                    .await
                    .expect("DescribeInternetGateways")
                    .internet_gateways()
                    .iter()
                    .filter(|v| ours(v.tags()))
                    .cloned()
                    .collect(),
                nats: c
                    .describe_nat_gateways()
                    .set_filter(f())
                    .send()
                    .await
                    .expect("DescribeNatGateways")
                    .nat_gateways()
                    .iter()
                    .filter(|v| ours(v.tags()) && v.state() != Some(&NatGatewayState::Deleted))
                    .cloned()
                    .collect(),
                tables: c
                    .describe_route_tables()
                    .set_filters(f())
                    .send()
                    .await
                    .expect("DescribeRouteTables")
                    .route_tables()
                    .iter()
                    .filter(|v| ours(v.tags()))
                    .cloned()
                    .collect(),
                endpoints: c
                    .describe_vpc_endpoints()
                    .set_filters(f())
                    .send()
                    .await
                    .expect("DescribeVpcEndpoints")
                    .vpc_endpoints()
                    .iter()
                    .filter(|v| {
                        ours(v.tags())
                            && !matches!(
                                v.state()
                                    .map(|s| s.as_str().to_ascii_lowercase())
                                    .as_deref(),
                                Some("deleted" | "deleting")
                            )
                    })
                    .cloned()
                    .collect(),
            }
        })
    }

    /// Whether `vpc` has DNS resolution and DNS hostnames on.
    pub fn vpc_dns(&self, vpc: &str) -> (bool, bool) {
        let get = |a: VpcAttributeName| {
            let out = self
                .block(
                    self.client
                        .describe_vpc_attribute()
                        .vpc_id(vpc)
                        .attribute(a)
                        .send(),
                )
                .expect("DescribeVpcAttribute");
            let v = out.enable_dns_support().or(out.enable_dns_hostnames());
            v.and_then(|v| v.value()).unwrap_or(false)
        };
        (
            get(VpcAttributeName::EnableDnsSupport),
            get(VpcAttributeName::EnableDnsHostnames),
        )
    }

    /// The Elastic IPs carrying the cluster tag.
    pub fn addresses(&self, cluster: &str) -> Vec<Address> {
        self.addresses_where(Some(cluster_filter(cluster)))
    }

    /// Every Elastic IP in the region.
    pub fn all_addresses(&self) -> Vec<Address> {
        self.addresses_where(None)
    }

    fn addresses_where(&self, f: Option<Filter>) -> Vec<Address> {
        let mut out = self
            .block(
                self.client
                    .describe_addresses()
                    .set_filters(f.map(|f| vec![f]))
                    .send(),
            )
            .expect("DescribeAddresses")
            .addresses()
            .to_vec();
        out.sort_by(|a, b| a.allocation_id().cmp(&b.allocation_id()));
        out
    }

    /// Allocates an Elastic IP with these tags; returns its allocation id.
    pub fn allocate_address(&self, tags: &[(&str, &str)]) -> String {
        self.block(
            self.client
                .allocate_address()
                .domain(DomainType::Vpc)
                .tag_specifications(
                    TagSpecification::builder()
                        .resource_type(ResourceType::ElasticIp)
                        .set_tags(Some(
                            tags.iter()
                                .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
                                .collect(),
                        ))
                        .build(),
                )
                .send(),
        )
        .expect("AllocateAddress")
        .allocation_id()
        .expect("an allocation id")
        .to_string()
    }

    /// A new VPC with one subnet per (zone, CIDR) and an internet gateway its main route table
    /// sends 0.0.0.0/0 to; returns the VPC id and the subnet ids.
    pub fn create_vpc(&self, cidr: &str, subnets: &[(&str, &str)]) -> (String, Vec<String>) {
        let vpc = self
            .block(self.client.create_vpc().cidr_block(cidr).send())
            .expect("CreateVpc")
            .vpc()
            .and_then(|v| v.vpc_id())
            .expect("a VPC id")
            .to_string();
        self.internet_gateway(&vpc);
        let ids = subnets
            .iter()
            .map(|(zone, cidr)| {
                self.block(
                    self.client
                        .create_subnet()
                        .vpc_id(&vpc)
                        .availability_zone(*zone)
                        .cidr_block(*cidr)
                        .send(),
                )
                .expect("CreateSubnet")
                .subnet()
                .and_then(|s| s.subnet_id())
                .expect("a subnet id")
                .to_string()
            })
            .collect();
        (vpc, ids)
    }

    /// Launches one instance of moto's AL2023 image; returns its id.
    pub fn launch(&self, l: &Launch) -> String {
        let mut req = self
            .client
            .run_instances()
            .image_id(AMI)
            .instance_type(InstanceType::from(l.instance_type))
            .min_count(1)
            .max_count(1)
            .placement(Placement::builder().availability_zone(l.zone).build())
            .set_subnet_id(l.subnet_id.map(String::from))
            .set_user_data(l.user_data.map(String::from));
        if let Some(eni) = l.interface_id {
            req = req.network_interfaces(
                InstanceNetworkInterfaceSpecification::builder()
                    .device_index(0)
                    .network_interface_id(eni)
                    .build(),
            );
        }
        if !l.tags.is_empty() {
            req = req.tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Instance)
                    .set_tags(Some(
                        l.tags
                            .iter()
                            .map(|(k, v)| Tag::builder().key(k).value(v).build())
                            .collect(),
                    ))
                    .build(),
            );
        }
        let out = self.block(req.send()).expect("RunInstances");
        out.instances()
            .first()
            .and_then(|i| i.instance_id())
            .expect("an instance id")
            .to_string()
    }
}
