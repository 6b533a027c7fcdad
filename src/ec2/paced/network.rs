//! Pacing of the network calls (`network.create`), each against its own action's token bucket.

use async_trait::async_trait;
use ipnet::Ipv4Net;

use super::Paced;
use crate::ec2::network::{
    Ec2Network, EndpointSpec, InternetGateway, NatGateway, NatGatewaySpec, NetRouteTable,
    NetSubnet, SubnetSpec, Vpc, VpcDns, VpcEndpoint,
};
use crate::ec2::{Ec2, Ec2Result, Tags};

#[async_trait]
impl<E: Ec2> Ec2Network for Paced<E> {
    async fn find_vpcs(&self, cluster: &str) -> Ec2Result<Vec<Vpc>> {
        self.paced("DescribeVpcs", || self.inner.find_vpcs(cluster))
            .await
    }

    async fn vpc_dns(&self, vpc_id: &str) -> Ec2Result<VpcDns> {
        self.paced("DescribeVpcAttribute", || self.inner.vpc_dns(vpc_id))
            .await
    }

    async fn find_subnets(&self, cluster: &str) -> Ec2Result<Vec<NetSubnet>> {
        self.paced("DescribeSubnets", || self.inner.find_subnets(cluster))
            .await
    }

    async fn find_internet_gateways(&self, cluster: &str) -> Ec2Result<Vec<InternetGateway>> {
        self.paced("DescribeInternetGateways", || {
            self.inner.find_internet_gateways(cluster)
        })
        .await
    }

    async fn find_nat_gateways(&self, cluster: &str) -> Ec2Result<Vec<NatGateway>> {
        self.paced("DescribeNatGateways", || {
            self.inner.find_nat_gateways(cluster)
        })
        .await
    }

    async fn find_route_tables(&self, cluster: &str) -> Ec2Result<Vec<NetRouteTable>> {
        self.paced("DescribeRouteTables", || {
            self.inner.find_route_tables(cluster)
        })
        .await
    }

    async fn find_vpc_endpoints(&self, cluster: &str) -> Ec2Result<Vec<VpcEndpoint>> {
        self.paced("DescribeVpcEndpoints", || {
            self.inner.find_vpc_endpoints(cluster)
        })
        .await
    }

    async fn create_vpc(&self, cidr: Ipv4Net, tags: &Tags) -> Ec2Result<String> {
        self.paced("CreateVpc", || self.inner.create_vpc(cidr, tags))
            .await
    }

    async fn enable_vpc_dns(&self, vpc_id: &str, dns: VpcDns) -> Ec2Result<()> {
        self.paced("ModifyVpcAttribute", || {
            self.inner.enable_vpc_dns(vpc_id, dns)
        })
        .await
    }

    async fn delete_vpc(&self, vpc_id: &str) -> Ec2Result<()> {
        self.paced("DeleteVpc", || self.inner.delete_vpc(vpc_id))
            .await
    }

    async fn create_subnet(&self, spec: &SubnetSpec) -> Ec2Result<String> {
        self.paced("CreateSubnet", || self.inner.create_subnet(spec))
            .await
    }

    async fn delete_subnet(&self, subnet_id: &str) -> Ec2Result<()> {
        self.paced("DeleteSubnet", || self.inner.delete_subnet(subnet_id))
            .await
    }

    async fn create_internet_gateway(&self, tags: &Tags) -> Ec2Result<String> {
        self.paced("CreateInternetGateway", || {
            self.inner.create_internet_gateway(tags)
        })
        .await
    }

    async fn attach_internet_gateway(&self, gateway_id: &str, vpc_id: &str) -> Ec2Result<()> {
        self.paced("AttachInternetGateway", || {
            self.inner.attach_internet_gateway(gateway_id, vpc_id)
        })
        .await
    }

    async fn detach_internet_gateway(&self, gateway_id: &str, vpc_id: &str) -> Ec2Result<()> {
        self.paced("DetachInternetGateway", || {
            self.inner.detach_internet_gateway(gateway_id, vpc_id)
        })
        .await
    }

    async fn delete_internet_gateway(&self, gateway_id: &str) -> Ec2Result<()> {
        self.paced("DeleteInternetGateway", || {
            self.inner.delete_internet_gateway(gateway_id)
        })
        .await
    }

    async fn create_nat_gateway(&self, spec: &NatGatewaySpec) -> Ec2Result<String> {
        self.paced("CreateNatGateway", || self.inner.create_nat_gateway(spec))
            .await
    }

    async fn delete_nat_gateway(&self, nat_gateway_id: &str) -> Ec2Result<()> {
        self.paced("DeleteNatGateway", || {
            self.inner.delete_nat_gateway(nat_gateway_id)
        })
        .await
    }

    async fn create_route_table(
        &self,
        vpc_id: &str,
        client_token: &str,
        tags: &Tags,
    ) -> Ec2Result<String> {
        self.paced("CreateRouteTable", || {
            self.inner.create_route_table(vpc_id, client_token, tags)
        })
        .await
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
        self.paced(op, || {
            self.inner
                .set_default_route(route_table_id, target, replace)
        })
        .await
    }

    async fn associate_route_table(
        &self,
        route_table_id: &str,
        subnet_id: &str,
    ) -> Ec2Result<String> {
        self.paced("AssociateRouteTable", || {
            self.inner.associate_route_table(route_table_id, subnet_id)
        })
        .await
    }

    async fn disassociate_route_table(&self, association_id: &str) -> Ec2Result<()> {
        self.paced("DisassociateRouteTable", || {
            self.inner.disassociate_route_table(association_id)
        })
        .await
    }

    async fn delete_route_table(&self, route_table_id: &str) -> Ec2Result<()> {
        self.paced("DeleteRouteTable", || {
            self.inner.delete_route_table(route_table_id)
        })
        .await
    }

    async fn create_vpc_endpoint(&self, spec: &EndpointSpec) -> Ec2Result<String> {
        self.paced("CreateVpcEndpoint", || self.inner.create_vpc_endpoint(spec))
            .await
    }

    async fn change_endpoint_route_tables(
        &self,
        endpoint_id: &str,
        add: &[String],
        remove: &[String],
    ) -> Ec2Result<()> {
        self.paced("ModifyVpcEndpoint", || {
            self.inner
                .change_endpoint_route_tables(endpoint_id, add, remove)
        })
        .await
    }

    async fn delete_vpc_endpoint(&self, endpoint_id: &str) -> Ec2Result<()> {
        self.paced("DeleteVpcEndpoints", || {
            self.inner.delete_vpc_endpoint(endpoint_id)
        })
        .await
    }
}
