"""Makes the mock EC2 hold the network a topology names, so that scripts/demo runs on every example.

Usage: mock_network.py TOPOLOGY ENDPOINT OUT

moto cannot create resources with given ids, so for a topology that names its VPC and subnets
(topologies/production.yaml) this creates a VPC and one subnet per zone with the topology's
CIDRs, private ones as in production: an internet gateway, a public subnet with a NAT gateway,
and the zones' subnets routed to it. It writes to OUT a copy of the topology naming the mock's ids
instead; an SSH key pair the topology names is created too. A topology whose network kcluster
creates (`network.create`: topologies/minimal.yaml) needs nothing and is copied unchanged. A
topology on the default VPC is
copied unchanged once its zones' default subnets are found with the right CIDRs, and the default
VPC gets what a real one has and moto's lacks: an internet gateway its main route table sends
0.0.0.0/0 to. When the mock cannot hold what the
topology needs (a zone moto does not have), it says why and exits 3.
"""

import ipaddress
import sys

import boto3
import yaml


def internet_gateway(ec2, vpc: str) -> str:
    """Attaches a new internet gateway to `vpc` and sends its main route table's 0.0.0.0/0 there."""
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    main = ec2.describe_route_tables(
        Filters=[{"Name": "vpc-id", "Values": [vpc]}, {"Name": "association.main", "Values": ["true"]}]
    )["RouteTables"][0]["RouteTableId"]
    ec2.create_route(RouteTableId=main, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    return igw


def main() -> int:
    topology, endpoint, out = sys.argv[1:4]
    text = open(topology, encoding="utf-8").read()
    t = yaml.safe_load(text)
    region = t["region"]
    client = lambda service: boto3.client(  # noqa: E731
        service,
        region_name=region,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    ec2 = client("ec2")
    have = sorted(z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"])
    missing = [z["name"] for z in t["zones"] if z["name"] not in have]
    if missing:
        print(
            f"the mock cannot run {topology}: moto's {region} has the zones {', '.join(have)}, "
            f"not {', '.join(missing)} (real accounts see different zone names; the file is "
            "written for those). validate, render and check --offline work on it; apply needs "
            "a real account.",
            file=sys.stderr,
        )
        return 3
    named = [z for z in t["zones"] if z.get("subnet")]
    if (t.get("network") or {}).get("create") is not None:
        print(f"mock network: none needed, kcluster creates the network of {topology}", file=sys.stderr)
    elif named:
        cidrs = [ipaddress.ip_network(z["cidr"]) for z in named]
        vpc_cidr = cidrs[0].supernet(new_prefix=16)
        vpc = ec2.create_vpc(CidrBlock=str(vpc_cidr))["Vpc"]["VpcId"]
        old_vpc = (t.get("network") or {}).get("vpc")
        if old_vpc:
            text = text.replace(old_vpc, vpc)
        igw = internet_gateway(ec2, vpc)
        public_cidr = next(c for c in vpc_cidr.subnets(new_prefix=24) if c not in cidrs)
        public = ec2.create_subnet(
            VpcId=vpc, CidrBlock=str(public_cidr), AvailabilityZone=named[0]["name"]
        )["Subnet"]["SubnetId"]
        eip = ec2.allocate_address(Domain="vpc")["AllocationId"]
        nat = ec2.create_nat_gateway(SubnetId=public, AllocationId=eip)["NatGateway"]["NatGatewayId"]
        private = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        ec2.create_route(RouteTableId=private, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat)
        for z in named:
            subnet = ec2.create_subnet(
                VpcId=vpc, CidrBlock=z["cidr"], AvailabilityZone=z["name"]
            )["Subnet"]["SubnetId"]
            ec2.associate_route_table(RouteTableId=private, SubnetId=subnet)
            text = text.replace(z["subnet"], subnet)
        print(
            f"mock network: {vpc} with {len(named)} private subnets behind {nat} "
            f"(public subnet {public}, {igw}) for {topology}",
            file=sys.stderr,
        )
    else:
        defaults = {
            s["AvailabilityZone"]: s["CidrBlock"]
            for s in ec2.describe_subnets(
                Filters=[{"Name": "default-for-az", "Values": ["true"]}]
            )["Subnets"]
        }
        wrong = [z for z in t["zones"] if defaults.get(z["name"]) != z["cidr"]]
        if wrong:
            print(
                f"the mock cannot run {topology}: its default subnets are "
                f"{defaults}, the topology expects "
                f"{ {z['name']: z['cidr'] for z in t['zones']} }",
                file=sys.stderr,
            )
            return 3
        vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
        print(f"mock network: the default VPC {vpc} routed to {internet_gateway(ec2, vpc)}", file=sys.stderr)
    key = ((t.get("network") or {}).get("ssh") or {}).get("key_name")
    if key:
        ec2.create_key_pair(KeyName=key)
    with open(out, "w", encoding="utf-8") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
