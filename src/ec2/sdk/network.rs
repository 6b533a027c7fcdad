//! The network calls (`network.create`) on the real aws-sdk-ec2 client. CreateVpc, CreateSubnet
//! and CreateInternetGateway take no ClientToken, so the SDK never resends them (a resend after a
//! lost answer would make a second one): the caller looks for the resource by tag instead.
//! CreateNatGateway, CreateRouteTable and CreateVpcEndpoint carry the caller's ClientToken.

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType, VpcAttributeName, VpcEndpointType};
use ipnet::Ipv4Net;

use super::{SdkEc2, cluster_filter, read_route_table, read_subnet, read_tags, tag_spec};
use crate::ec2::network::{
    Ec2Network, EndpointSpec, InternetGateway, NatGateway, NatGatewaySpec, NatState, NetRouteTable,
    NetSubnet, NetworkDryRun, SubnetSpec, Vpc, VpcDns, VpcEndpoint,
};
use crate::ec2::{Ec2Error, Ec2Result, Tags};

/// `$route` (a CreateRoute or ReplaceRoute request) to `$target`: a NAT gateway or a gateway.
macro_rules! to_target {
    ($route:expr, $target:expr) => {
        if $target.starts_with("nat-") {
            $route.nat_gateway_id($target)
        } else {
            $route.gateway_id($target)
        }
    };
}

/// A configuration without retries, for creations EC2 does not make idempotent.
fn no_retries() -> aws_sdk_ec2::config::Builder {
    aws_sdk_ec2::config::Builder::default().retry_config(RetryConfig::disabled())
}

fn no_id(op: &'static str, what: &str) -> Ec2Error {
    Ec2Error::new(op, "NoId", format!("EC2 returned no {what} id"))
}

impl SdkEc2 {
    /// A network call asked with DryRun: `Ok(())`, or the error's code and the `Ec2Error`.
    pub(super) async fn network_dry_run(
        &self,
        call: &NetworkDryRun,
    ) -> Result<(), (Option<String>, Ec2Error)> {
        let op = call.operation();
        let c = &self.client;
        match call {
            NetworkDryRun::CreateVpc { cidr } => {
                ask_dry!(self, op, c.create_vpc().cidr_block(cidr.to_string()))
            }
            NetworkDryRun::CreateInternetGateway => {
                ask_dry!(self, op, c.create_internet_gateway())
            }
            NetworkDryRun::AttachInternetGateway { gateway_id, vpc_id } => ask_dry!(
                self,
                op,
                c.attach_internet_gateway()
                    .internet_gateway_id(gateway_id)
                    .vpc_id(vpc_id)
            ),
            NetworkDryRun::CreateSubnet { vpc_id, zone, cidr } => ask_dry!(
                self,
                op,
                c.create_subnet()
                    .vpc_id(vpc_id)
                    .availability_zone(zone)
                    .cidr_block(cidr.to_string())
            ),
            NetworkDryRun::CreateNatGateway {
                subnet_id,
                allocation_id,
            } => ask_dry!(
                self,
                op,
                c.create_nat_gateway()
                    .subnet_id(subnet_id)
                    .allocation_id(allocation_id)
            ),
            NetworkDryRun::CreateRouteTable { vpc_id } => {
                ask_dry!(self, op, c.create_route_table().vpc_id(vpc_id))
            }
            NetworkDryRun::CreateRoute {
                route_table_id,
                target,
            } => {
                let r = c
                    .create_route()
                    .route_table_id(route_table_id)
                    .destination_cidr_block("0.0.0.0/0");
                ask_dry!(self, op, to_target!(r, target))
            }
            NetworkDryRun::ReplaceRoute {
                route_table_id,
                target,
            } => {
                let r = c
                    .replace_route()
                    .route_table_id(route_table_id)
                    .destination_cidr_block("0.0.0.0/0");
                ask_dry!(self, op, to_target!(r, target))
            }
            NetworkDryRun::AssociateRouteTable {
                route_table_id,
                subnet_id,
            } => ask_dry!(
                self,
                op,
                c.associate_route_table()
                    .route_table_id(route_table_id)
                    .subnet_id(subnet_id)
            ),
            NetworkDryRun::CreateVpcEndpoint { vpc_id, service } => ask_dry!(
                self,
                op,
                c.create_vpc_endpoint()
                    .vpc_endpoint_type(VpcEndpointType::Gateway)
                    .vpc_id(vpc_id)
                    .service_name(service)
            ),
            NetworkDryRun::ModifyVpcEndpoint { endpoint_id } => {
                ask_dry!(
                    self,
                    op,
                    c.modify_vpc_endpoint().vpc_endpoint_id(endpoint_id)
                )
            }
            NetworkDryRun::DeleteNatGateway { nat_gateway_id } => {
                ask_dry!(
                    self,
                    op,
                    c.delete_nat_gateway().nat_gateway_id(nat_gateway_id)
                )
            }
            NetworkDryRun::DeleteSubnet { subnet_id } => {
                ask_dry!(self, op, c.delete_subnet().subnet_id(subnet_id))
            }
            NetworkDryRun::DeleteRouteTable { route_table_id } => {
                ask_dry!(
                    self,
                    op,
                    c.delete_route_table().route_table_id(route_table_id)
                )
            }
        }
    }

    async fn vpc_attribute(&self, vpc_id: &str, attribute: VpcAttributeName) -> Ec2Result<bool> {
        const OP: &str = "DescribeVpcAttribute";
        self.calls.count(OP);
        let out = self
            .client
            .describe_vpc_attribute()
            .vpc_id(vpc_id)
            .attribute(attribute.clone())
            .send()
            .await
            .map_err(|e| self.ec2_error(OP, e))?;
        let value = match attribute {
            VpcAttributeName::EnableDnsHostnames => out.enable_dns_hostnames(),
            _ => out.enable_dns_support(),
        };
        Ok(value
            .and_then(AttributeBooleanValue::value)
            .unwrap_or(false))
    }

    async fn set_vpc_attribute(&self, vpc_id: &str, hostnames: bool) -> Ec2Result<()> {
        const OP: &str = "ModifyVpcAttribute";
        self.calls.count(OP);
        let on = AttributeBooleanValue::builder().value(true).build();
        let req = self.client.modify_vpc_attribute().vpc_id(vpc_id);
        let req = if hostnames {
            req.enable_dns_hostnames(on)
        } else {
            req.enable_dns_support(on)
        };
        req.send().await.map_err(|e| self.ec2_error(OP, e))?;
        Ok(())
    }

    /// The outcome of a request whose answer kcluster does not read.
    fn done<T, E>(
        &self,
        op: &'static str,
        sent: Result<T, aws_sdk_ec2::error::SdkError<E>>,
    ) -> Ec2Result<()>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        sent.map(|_| ()).map_err(|e| self.ec2_error(op, e))
    }
}

fn read_nat(n: &aws_sdk_ec2::types::NatGateway) -> Option<NatGateway> {
    Some(NatGateway {
        id: n.nat_gateway_id()?.to_string(),
        subnet_id: n.subnet_id().unwrap_or_default().into(),
        vpc_id: n.vpc_id().unwrap_or_default().into(),
        state: n
            .state()
            .and_then(|s| NatState::parse(s.as_str()))
            .unwrap_or(NatState::Pending),
        allocation_id: n
            .nat_gateway_addresses()
            .iter()
            .find_map(|a| a.allocation_id())
            .map(String::from),
        failure: n.failure_message().map(String::from),
        tags: read_tags(n.tags()),
    })
}

#[async_trait]
impl Ec2Network for SdkEc2 {
    async fn find_vpcs(&self, cluster: &str) -> Ec2Result<Vec<Vpc>> {
        const OP: &str = "DescribeVpcs";
        let pages = self
            .client
            .describe_vpcs()
            .filters(cluster_filter(cluster))
            .into_paginator()
            .send();
        Ok(collect_pages!(self, OP, pages, |page| {
            page.vpcs().iter().filter_map(|v| {
                Some(Vpc {
                    id: v.vpc_id()?.into(),
                    cidr: v.cidr_block()?.parse::<Ipv4Net>().ok()?,
                    tags: read_tags(v.tags()),
                })
            })
        }))
    }

    async fn vpc_dns(&self, vpc_id: &str) -> Ec2Result<VpcDns> {
        let (support, hostnames) = futures::try_join!(
            self.vpc_attribute(vpc_id, VpcAttributeName::EnableDnsSupport),
            self.vpc_attribute(vpc_id, VpcAttributeName::EnableDnsHostnames),
        )?;
        Ok(VpcDns { support, hostnames })
    }

    async fn find_subnets(&self, cluster: &str) -> Ec2Result<Vec<NetSubnet>> {
        const OP: &str = "DescribeSubnets";
        let pages = self
            .client
            .describe_subnets()
            .filters(cluster_filter(cluster))
            .into_paginator()
            .send();
        Ok(collect_pages!(self, OP, pages, |page| {
            page.subnets().iter().filter_map(|s| {
                let n = read_subnet(s)?;
                Some(NetSubnet {
                    id: n.id,
                    vpc_id: n.vpc_id,
                    zone: n.zone,
                    cidr: n.cidr,
                    available_addresses: n.available_addresses,
                    tags: read_tags(s.tags()),
                })
            })
        }))
    }

    async fn find_internet_gateways(&self, cluster: &str) -> Ec2Result<Vec<InternetGateway>> {
        const OP: &str = "DescribeInternetGateways";
        let pages = self
            .client
            .describe_internet_gateways()
            .filters(cluster_filter(cluster))
            .into_paginator()
            .send();
        Ok(collect_pages!(self, OP, pages, |page| {
            page.internet_gateways().iter().filter_map(|g| {
                Some(InternetGateway {
                    id: g.internet_gateway_id()?.into(),
                    attached_to: g
                        .attachments()
                        .iter()
                        .filter_map(|a| a.vpc_id().map(String::from))
                        .collect(),
                    tags: read_tags(g.tags()),
                })
            })
        }))
    }

    async fn find_nat_gateways(&self, cluster: &str) -> Ec2Result<Vec<NatGateway>> {
        const OP: &str = "DescribeNatGateways";
        let pages = self
            .client
            .describe_nat_gateways()
            .filter(cluster_filter(cluster))
            .into_paginator()
            .send();
        Ok(collect_pages!(self, OP, pages, |page| {
            page.nat_gateways().iter().filter_map(read_nat)
        }))
    }

    async fn find_route_tables(&self, cluster: &str) -> Ec2Result<Vec<NetRouteTable>> {
        const OP: &str = "DescribeRouteTables";
        let pages = self
            .client
            .describe_route_tables()
            .filters(cluster_filter(cluster))
            .into_paginator()
            .send();
        Ok(collect_pages!(self, OP, pages, |page| {
            page.route_tables().iter().map(|t| {
                let read = read_route_table(t);
                NetRouteTable {
                    id: read.id,
                    vpc_id: read.vpc_id,
                    associations: t
                        .associations()
                        .iter()
                        .filter_map(|a| {
                            Some((
                                a.route_table_association_id()?.to_string(),
                                a.subnet_id()?.to_string(),
                            ))
                        })
                        .collect(),
                    default_route: read.default_route,
                    tags: read_tags(t.tags()),
                }
            })
        }))
    }

    async fn find_vpc_endpoints(&self, cluster: &str) -> Ec2Result<Vec<VpcEndpoint>> {
        const OP: &str = "DescribeVpcEndpoints";
        let pages = self
            .client
            .describe_vpc_endpoints()
            .filters(cluster_filter(cluster))
            .into_paginator()
            .send();
        Ok(collect_pages!(self, OP, pages, |page| {
            page.vpc_endpoints().iter().filter_map(|e| {
                Some(VpcEndpoint {
                    id: e.vpc_endpoint_id()?.into(),
                    vpc_id: e.vpc_id().unwrap_or_default().into(),
                    service: e.service_name().unwrap_or_default().into(),
                    state: e
                        .state()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                    route_tables: e.route_table_ids().to_vec(),
                    tags: read_tags(e.tags()),
                })
            })
        }))
    }

    async fn create_vpc(&self, cidr: Ipv4Net, tags: &Tags) -> Ec2Result<String> {
        const OP: &str = "CreateVpc";
        self.calls.count(OP);
        let out = self
            .client
            .create_vpc()
            .cidr_block(cidr.to_string())
            .tag_specifications(tag_spec(ResourceType::Vpc, tags))
            .customize()
            .config_override(no_retries())
            .send()
            .await
            .map_err(|e| self.ec2_error(OP, e))?;
        out.vpc()
            .and_then(|v| v.vpc_id())
            .map(String::from)
            .ok_or_else(|| no_id(OP, "VPC"))
    }

    async fn enable_vpc_dns(&self, vpc_id: &str, dns: VpcDns) -> Ec2Result<()> {
        // One attribute per request; DNS support first (hostnames need it).
        if dns.support {
            self.set_vpc_attribute(vpc_id, false).await?;
        }
        if dns.hostnames {
            self.set_vpc_attribute(vpc_id, true).await?;
        }
        Ok(())
    }

    async fn delete_vpc(&self, vpc_id: &str) -> Ec2Result<()> {
        const OP: &str = "DeleteVpc";
        self.calls.count(OP);
        let sent = self.client.delete_vpc().vpc_id(vpc_id).send().await;
        self.done(OP, sent)
    }

    async fn create_subnet(&self, spec: &SubnetSpec) -> Ec2Result<String> {
        const OP: &str = "CreateSubnet";
        self.calls.count(OP);
        let out = self
            .client
            .create_subnet()
            .vpc_id(&spec.vpc_id)
            .availability_zone(&spec.zone)
            .cidr_block(spec.cidr.to_string())
            .tag_specifications(tag_spec(ResourceType::Subnet, &spec.tags))
            .customize()
            .config_override(no_retries())
            .send()
            .await
            .map_err(|e| self.ec2_error(OP, e))?;
        out.subnet()
            .and_then(|s| s.subnet_id())
            .map(String::from)
            .ok_or_else(|| no_id(OP, "subnet"))
    }

    async fn delete_subnet(&self, subnet_id: &str) -> Ec2Result<()> {
        const OP: &str = "DeleteSubnet";
        self.calls.count(OP);
        let sent = self
            .client
            .delete_subnet()
            .subnet_id(subnet_id)
            .send()
            .await;
        self.done(OP, sent)
    }

    async fn create_internet_gateway(&self, tags: &Tags) -> Ec2Result<String> {
        const OP: &str = "CreateInternetGateway";
        self.calls.count(OP);
        let out = self
            .client
            .create_internet_gateway()
            .tag_specifications(tag_spec(ResourceType::InternetGateway, tags))
            .customize()
            .config_override(no_retries())
            .send()
            .await
            .map_err(|e| self.ec2_error(OP, e))?;
        out.internet_gateway()
            .and_then(|g| g.internet_gateway_id())
            .map(String::from)
            .ok_or_else(|| no_id(OP, "internet gateway"))
    }

    async fn attach_internet_gateway(&self, gateway_id: &str, vpc_id: &str) -> Ec2Result<()> {
        const OP: &str = "AttachInternetGateway";
        self.calls.count(OP);
        let sent = self
            .client
            .attach_internet_gateway()
            .internet_gateway_id(gateway_id)
            .vpc_id(vpc_id)
            .send()
            .await;
        self.done(OP, sent)
    }

    async fn detach_internet_gateway(&self, gateway_id: &str, vpc_id: &str) -> Ec2Result<()> {
        const OP: &str = "DetachInternetGateway";
        self.calls.count(OP);
        let sent = self
            .client
            .detach_internet_gateway()
            .internet_gateway_id(gateway_id)
            .vpc_id(vpc_id)
            .send()
            .await;
        self.done(OP, sent)
    }

    async fn delete_internet_gateway(&self, gateway_id: &str) -> Ec2Result<()> {
        const OP: &str = "DeleteInternetGateway";
        self.calls.count(OP);
        let sent = self
            .client
            .delete_internet_gateway()
            .internet_gateway_id(gateway_id)
            .send()
            .await;
        self.done(OP, sent)
    }

    async fn create_nat_gateway(&self, spec: &NatGatewaySpec) -> Ec2Result<String> {
        const OP: &str = "CreateNatGateway";
        self.calls.count(OP);
        let out = self
            .client
            .create_nat_gateway()
            .subnet_id(&spec.subnet_id)
            .allocation_id(&spec.allocation_id)
            .connectivity_type(aws_sdk_ec2::types::ConnectivityType::Public)
            .client_token(&spec.client_token)
            .tag_specifications(tag_spec(ResourceType::Natgateway, &spec.tags))
            .send()
            .await
            .map_err(|e| self.ec2_error(OP, e))?;
        out.nat_gateway()
            .and_then(|n| n.nat_gateway_id())
            .map(String::from)
            .ok_or_else(|| no_id(OP, "NAT gateway"))
    }

    async fn delete_nat_gateway(&self, nat_gateway_id: &str) -> Ec2Result<()> {
        const OP: &str = "DeleteNatGateway";
        self.calls.count(OP);
        let sent = self
            .client
            .delete_nat_gateway()
            .nat_gateway_id(nat_gateway_id)
            .send()
            .await;
        self.done(OP, sent)
    }

    async fn create_route_table(
        &self,
        vpc_id: &str,
        client_token: &str,
        tags: &Tags,
    ) -> Ec2Result<String> {
        const OP: &str = "CreateRouteTable";
        self.calls.count(OP);
        let out = self
            .client
            .create_route_table()
            .vpc_id(vpc_id)
            .client_token(client_token)
            .tag_specifications(tag_spec(ResourceType::RouteTable, tags))
            .send()
            .await
            .map_err(|e| self.ec2_error(OP, e))?;
        out.route_table()
            .and_then(|t| t.route_table_id())
            .map(String::from)
            .ok_or_else(|| no_id(OP, "route table"))
    }

    async fn set_default_route(
        &self,
        route_table_id: &str,
        target: &str,
        replace: bool,
    ) -> Ec2Result<()> {
        if replace {
            const OP: &str = "ReplaceRoute";
            self.calls.count(OP);
            let r = self
                .client
                .replace_route()
                .route_table_id(route_table_id)
                .destination_cidr_block("0.0.0.0/0");
            let sent = to_target!(r, target).send().await;
            self.done(OP, sent)
        } else {
            const OP: &str = "CreateRoute";
            self.calls.count(OP);
            let r = self
                .client
                .create_route()
                .route_table_id(route_table_id)
                .destination_cidr_block("0.0.0.0/0");
            let sent = to_target!(r, target).send().await;
            self.done(OP, sent)
        }
    }

    async fn associate_route_table(
        &self,
        route_table_id: &str,
        subnet_id: &str,
    ) -> Ec2Result<String> {
        const OP: &str = "AssociateRouteTable";
        self.calls.count(OP);
        let out = self
            .client
            .associate_route_table()
            .route_table_id(route_table_id)
            .subnet_id(subnet_id)
            .send()
            .await
            .map_err(|e| self.ec2_error(OP, e))?;
        out.association_id()
            .map(String::from)
            .ok_or_else(|| no_id(OP, "association"))
    }

    async fn disassociate_route_table(&self, association_id: &str) -> Ec2Result<()> {
        const OP: &str = "DisassociateRouteTable";
        self.calls.count(OP);
        let sent = self
            .client
            .disassociate_route_table()
            .association_id(association_id)
            .send()
            .await;
        self.done(OP, sent)
    }

    async fn delete_route_table(&self, route_table_id: &str) -> Ec2Result<()> {
        const OP: &str = "DeleteRouteTable";
        self.calls.count(OP);
        let sent = self
            .client
            .delete_route_table()
            .route_table_id(route_table_id)
            .send()
            .await;
        self.done(OP, sent)
    }

    async fn create_vpc_endpoint(&self, spec: &EndpointSpec) -> Ec2Result<String> {
        const OP: &str = "CreateVpcEndpoint";
        self.calls.count(OP);
        let out = self
            .client
            .create_vpc_endpoint()
            .vpc_endpoint_type(VpcEndpointType::Gateway)
            .vpc_id(&spec.vpc_id)
            .service_name(&spec.service)
            .set_route_table_ids(Some(spec.route_tables.clone()))
            .client_token(&spec.client_token)
            .tag_specifications(tag_spec(ResourceType::VpcEndpoint, &spec.tags))
            .send()
            .await
            .map_err(|e| self.ec2_error(OP, e))?;
        out.vpc_endpoint()
            .and_then(|e| e.vpc_endpoint_id())
            .map(String::from)
            .ok_or_else(|| no_id(OP, "VPC endpoint"))
    }

    async fn change_endpoint_route_tables(
        &self,
        endpoint_id: &str,
        add: &[String],
        remove: &[String],
    ) -> Ec2Result<()> {
        const OP: &str = "ModifyVpcEndpoint";
        self.calls.count(OP);
        let some = |ids: &[String]| (!ids.is_empty()).then(|| ids.to_vec());
        let sent = self
            .client
            .modify_vpc_endpoint()
            .vpc_endpoint_id(endpoint_id)
            .set_add_route_table_ids(some(add))
            .set_remove_route_table_ids(some(remove))
            .send()
            .await;
        self.done(OP, sent)
    }

    async fn delete_vpc_endpoint(&self, endpoint_id: &str) -> Ec2Result<()> {
        const OP: &str = "DeleteVpcEndpoints";
        self.calls.count(OP);
        let out = self
            .client
            .delete_vpc_endpoints()
            .vpc_endpoint_ids(endpoint_id)
            .send()
            .await
            .map_err(|e| self.ec2_error(OP, e))?;
        // EC2 answers 200 and lists the endpoints it could not delete.
        match out.unsuccessful().first().and_then(|u| u.error()) {
            Some(e) => Err(Ec2Error::new(
                OP,
                e.code().unwrap_or("Unknown"),
                e.message().unwrap_or("no message"),
            )),
            None => Ok(()),
        }
    }
}
