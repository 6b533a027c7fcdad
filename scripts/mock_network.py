"""Makes the mock EC2 hold the network a topology names, so that scripts/demo runs on every example.

Usage: mock_network.py TOPOLOGY ENDPOINT OUT

moto cannot create resources with given ids, so for a topology that names its VPC and subnets
(topologies/production.yaml) this creates a VPC and one subnet per zone with the topology's
CIDRs, and writes to OUT a copy of the topology naming the mock's ids instead; an SSH key pair
the topology names is created too. A topology on the default VPC is copied unchanged once its
zones' default subnets are found with the right CIDRs. When the mock cannot hold what the
topology needs (a zone moto does not have), it says why and exits 3.
"""

import ipaddress
import sys

import boto3
import yaml


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
    if named:
        cidrs = [ipaddress.ip_network(z["cidr"]) for z in named]
        vpc_cidr = cidrs[0].supernet(new_prefix=16)
        vpc = ec2.create_vpc(CidrBlock=str(vpc_cidr))["Vpc"]["VpcId"]
        old_vpc = (t.get("network") or {}).get("vpc")
        if old_vpc:
            text = text.replace(old_vpc, vpc)
        for z in named:
            subnet = ec2.create_subnet(
                VpcId=vpc, CidrBlock=z["cidr"], AvailabilityZone=z["name"]
            )["Subnet"]["SubnetId"]
            text = text.replace(z["subnet"], subnet)
        print(f"mock network: {vpc} with {len(named)} subnets for {topology}", file=sys.stderr)
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
    key = ((t.get("network") or {}).get("ssh") or {}).get("key_name")
    if key:
        ec2.create_key_pair(KeyName=key)
    with open(out, "w", encoding="utf-8") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
