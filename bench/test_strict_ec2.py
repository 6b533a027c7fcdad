#!/usr/bin/env python3
"""Tests of strict_ec2.py: its token buckets alone, then boto3 through it to a real moto_server
(ClientToken replay and mismatch, duplicate addresses, interfaces that detach late, NAT gateways
that take time to come and go, DryRun and denied actions, throttling).

Run with the project's venv: `.venv/bin/python bench/test_strict_ec2.py` (scripts/test does).
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import strict_ec2  # noqa: E402  (the module under test, beside this file)
from test_latency_proxy import MOTO_SERVER, free_port, wait_for_moto  # noqa: E402

PROXY = os.path.join(HERE, "strict_ec2.py")
AMI = "ami-087fc0fcee2c7570a"
DETACH_S = 1.0


class TokenBucketTest(unittest.TestCase):
    def test_burst_then_refill_rate(self) -> None:
        b = strict_ec2.TokenBucket(5, 2, now=0.0)
        self.assertEqual([b.take(0.0) for _ in range(6)], [True] * 5 + [False])
        self.assertFalse(b.take(0.4), "0.8 tokens after 0.4 s")
        self.assertTrue(b.take(0.5))
        self.assertTrue(b.take(100.0))
        self.assertEqual(b.tokens, 4.0, "never more than the bucket's size")

    def test_buckets_by_action(self) -> None:
        self.assertEqual(strict_ec2.bucket_of("RunInstances"), (5.0, 2.0))
        self.assertEqual(strict_ec2.bucket_of("CreateNetworkInterface"), (50.0, 5.0))
        self.assertEqual(strict_ec2.bucket_of("DescribeInstances"), (100.0, 20.0))

    def test_top_level_items_skip_nested_ones(self) -> None:
        xml = "<a><set><item><x>1</x><g><item>n</item></g></item><item><x>2</x></item></set><item>o</item></a>"
        items = [xml[a:b] for a, b in strict_ec2.top_level_items(xml, "set")]
        self.assertEqual(items, ["<item><x>1</x><g><item>n</item></g></item>", "<item><x>2</x></item>"])


class StrictEc2Test(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        assert os.path.exists(MOTO_SERVER), f"{MOTO_SERVER} is missing: run with the project's venv"
        import boto3
        import botocore.config

        moto_port = free_port()
        env = {**os.environ, "MOTO_ENABLE_AMI_VALIDATION": "true"}
        cls.moto = subprocess.Popen([MOTO_SERVER, "-H", "127.0.0.1", "-p", str(moto_port)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        cls.proxy = subprocess.Popen(
            [sys.executable, PROXY, "--listen", "127.0.0.1:0", "--upstream", f"127.0.0.1:{moto_port}",
             "--throttle", "--detach-seconds", str(DETACH_S), "--deny", "CreateTags"],
            stderr=subprocess.PIPE, text=True)
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", cls.proxy.stderr.readline())
        assert match, "strict_ec2 did not start"
        cls.port = int(match.group(1))
        wait_for_moto(moto_port)
        cls.ec2 = boto3.client(
            "ec2", region_name="eu-west-1", endpoint_url=f"http://127.0.0.1:{cls.port}",
            aws_access_key_id="testing", aws_secret_access_key="testing",
            config=botocore.config.Config(retries={"total_max_attempts": 1, "mode": "standard"}))
        cls.subnet = cls.ec2.describe_subnets(
            Filters=[{"Name": "availability-zone", "Values": ["eu-west-1b"]}])["Subnets"][0]["SubnetId"]

    @classmethod
    def tearDownClass(cls) -> None:
        cls.proxy.send_signal(signal.SIGTERM)
        cls.proxy.wait(timeout=10)
        cls.proxy.stderr.close()
        cls.moto.terminate()
        cls.moto.wait(timeout=10)

    def error_code(self, call, **kwargs) -> str:
        with self.assertRaises(self.ec2.exceptions.ClientError) as err:
            call(**kwargs)
        return err.exception.response["Error"]["Code"]

    def eni(self, address: str, **extra) -> str:
        r = self.ec2.create_network_interface(SubnetId=self.subnet, PrivateIpAddress=address, **extra)
        return r["NetworkInterface"]["NetworkInterfaceId"]

    def run_on(self, eni: str, token: str, instance_type: str = "m5.large") -> str:
        time.sleep(0.5)  # one RunInstances token refills in 0.5 s
        r = self.ec2.run_instances(
            ImageId=AMI, InstanceType=instance_type, MinCount=1, MaxCount=1, ClientToken=token,
            NetworkInterfaces=[{"NetworkInterfaceId": eni, "DeviceIndex": 0}],
            Placement={"AvailabilityZone": "eu-west-1b"})
        return r["Instances"][0]["InstanceId"]

    def status(self, eni: str) -> tuple[str, str | None]:
        n = self.ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"][0]
        return n["Status"], n.get("Attachment", {}).get("InstanceId")

    def test_client_token_replays_the_first_launch_even_terminated(self) -> None:
        eni = self.eni("172.31.16.20")
        first = self.run_on(eni, "token-a")
        self.assertEqual(self.run_on(eni, "token-a"), first)
        self.ec2.terminate_instances(InstanceIds=[first])
        self.assertEqual(self.run_on(eni, "token-a"), first, "a terminated launch is still the answer")
        time.sleep(0.5)
        code = self.error_code(
            self.ec2.run_instances, ImageId=AMI, InstanceType="m5.xlarge", MinCount=1, MaxCount=1,
            ClientToken="token-a", NetworkInterfaces=[{"NetworkInterfaceId": eni, "DeviceIndex": 0}],
            Placement={"AvailabilityZone": "eu-west-1b"})
        self.assertEqual(code, "IdempotentParameterMismatch")

    def test_interface_detaches_only_after_a_delay(self) -> None:
        eni = self.eni("172.31.16.21")
        first = self.run_on(eni, "token-b1")
        self.assertEqual(self.status(eni), ("in-use", first))
        time.sleep(0.5)
        code = self.error_code(
            self.ec2.run_instances, ImageId=AMI, InstanceType="m5.large", MinCount=1, MaxCount=1,
            NetworkInterfaces=[{"NetworkInterfaceId": eni, "DeviceIndex": 0}])
        self.assertEqual(code, "InvalidNetworkInterface.InUse")
        self.ec2.terminate_instances(InstanceIds=[first])
        self.assertEqual(self.status(eni), ("in-use", first), "still attached right after termination")
        self.assertEqual(self.error_code(self.ec2.delete_network_interface, NetworkInterfaceId=eni),
                         "InvalidNetworkInterface.InUse")
        time.sleep(DETACH_S)
        self.assertEqual(self.status(eni), ("available", None))
        second = self.run_on(eni, "token-b2")
        self.assertEqual(self.status(eni), ("in-use", second))

    def test_volume_attaches_and_detaches_with_a_delay_and_its_token_replays(self) -> None:
        def volume(token: str) -> str:
            return self.ec2.create_volume(AvailabilityZone="eu-west-1b", Size=10, VolumeType="gp3",
                                          ClientToken=token)["VolumeId"]

        def attachment(vol: str) -> tuple[str, str | None, str | None]:
            v = self.ec2.describe_volumes(VolumeIds=[vol])["Volumes"][0]
            a = (v.get("Attachments") or [{}])[0]
            return v["State"], a.get("InstanceId"), a.get("State")

        vol = volume("vol-token")
        self.assertEqual(volume("vol-token"), vol, "the same token is the same volume")
        eni = self.eni("172.31.16.24")
        first = self.run_on(eni, "token-v1")
        self.ec2.attach_volume(VolumeId=vol, InstanceId=first, Device="/dev/sdf")
        self.assertEqual(attachment(vol), ("in-use", first, "attaching"))
        time.sleep(DETACH_S)
        self.assertEqual(attachment(vol), ("in-use", first, "attached"))
        self.ec2.terminate_instances(InstanceIds=[first])
        self.assertEqual(attachment(vol), ("in-use", first, "detaching"), "moto would say available")
        self.assertEqual(self.error_code(self.ec2.delete_volume, VolumeId=vol), "VolumeInUse")
        time.sleep(DETACH_S)
        self.assertEqual(attachment(vol), ("available", None, None))
        self.ec2.delete_volume(VolumeId=vol)

    def test_modify_instance_attribute_needs_a_stopped_instance(self) -> None:
        eni = self.eni("172.31.16.25")
        first = self.run_on(eni, "token-m1")
        code = self.error_code(self.ec2.modify_instance_attribute, InstanceId=first,
                               InstanceType={"Value": "m5.xlarge"})
        self.assertEqual(code, "IncorrectInstanceState")
        self.ec2.stop_instances(InstanceIds=[first])
        self.ec2.modify_instance_attribute(InstanceId=first, InstanceType={"Value": "m5.xlarge"})
        data = b"\x1f\x8b binary user-data"
        self.ec2.modify_instance_attribute(InstanceId=first, UserData={"Value": data})
        held = self.ec2.describe_instance_attribute(InstanceId=first, Attribute="userData")
        self.assertEqual(base64.b64decode(held["UserData"]["Value"]), data, "stored as EC2 stores it")

    def test_duplicate_address_is_refused_and_a_token_replays(self) -> None:
        first = self.eni("172.31.16.22", ClientToken="eni-token")
        self.assertEqual(self.eni("172.31.16.22", ClientToken="eni-token"), first)
        code = self.error_code(self.ec2.create_network_interface, SubnetId=self.subnet,
                               PrivateIpAddress="172.31.16.22")
        self.assertEqual(code, "InvalidIPAddress.InUse")

    def test_dry_run_and_denied_actions(self) -> None:
        code = self.error_code(self.ec2.create_security_group, GroupName="g", Description="d", DryRun=True)
        self.assertEqual(code, "DryRunOperation")
        code = self.error_code(self.ec2.create_tags, Resources=[self.subnet], Tags=[{"Key": "k", "Value": "v"}],
                               DryRun=True)
        self.assertEqual(code, "UnauthorizedOperation")
        code = self.error_code(self.ec2.create_tags, Resources=[self.subnet], Tags=[{"Key": "k", "Value": "v"}])
        self.assertEqual(code, "UnauthorizedOperation", "denied for real too")

    def test_nat_gateway_is_pending_then_available_and_holds_its_address_subnet_and_vpc_until_deleted(self) -> None:
        vpc = self.ec2.create_vpc(CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
        subnet = self.ec2.create_subnet(VpcId=vpc, CidrBlock="10.77.240.0/24",
                                        AvailabilityZone="eu-west-1a")["Subnet"]["SubnetId"]
        igw = self.ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        self.ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
        eip = self.ec2.allocate_address(Domain="vpc")["AllocationId"]
        state = lambda nat: self.ec2.describe_nat_gateways(NatGatewayIds=[nat])["NatGateways"][0]["State"]  # noqa: E731
        nat = self.ec2.create_nat_gateway(SubnetId=subnet, AllocationId=eip,
                                          ClientToken="nat-token")["NatGateway"]["NatGatewayId"]
        self.assertEqual(state(nat), "pending")
        again = self.ec2.create_nat_gateway(SubnetId=subnet, AllocationId=eip, ClientToken="nat-token")
        self.assertEqual(again["NatGateway"]["NatGatewayId"], nat, "the token replays")
        code = self.error_code(self.ec2.create_nat_gateway, SubnetId=self.subnet, AllocationId=eip,
                               ClientToken="nat-token")
        self.assertEqual(code, "IdempotentParameterMismatch")
        time.sleep(DETACH_S)
        self.assertEqual(state(nat), "available")
        self.ec2.delete_nat_gateway(NatGatewayId=nat)
        self.assertEqual(state(nat), "deleting")
        self.assertEqual(self.error_code(self.ec2.release_address, AllocationId=eip), "AuthFailure")
        self.assertEqual(self.error_code(self.ec2.delete_subnet, SubnetId=subnet), "DependencyViolation")
        self.assertEqual(self.error_code(self.ec2.detach_internet_gateway, InternetGatewayId=igw, VpcId=vpc),
                         "DependencyViolation")
        time.sleep(DETACH_S)
        self.assertEqual(state(nat), "deleted")
        self.ec2.release_address(AllocationId=eip)
        self.ec2.delete_subnet(SubnetId=subnet)
        self.ec2.detach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)

    def test_network_creations_are_dry_run_and_throttled_like_every_mutating_call(self) -> None:
        for call, kwargs in (
            (self.ec2.create_vpc, {"CidrBlock": "10.78.0.0/16"}),
            (self.ec2.create_internet_gateway, {}),
            (self.ec2.create_route_table, {"VpcId": "vpc-00000000000000000"}),
            (self.ec2.create_vpc_endpoint, {"VpcId": "vpc-00000000000000000",
                                            "ServiceName": "com.amazonaws.eu-west-1.s3"}),
        ):
            self.assertEqual(self.error_code(call, DryRun=True, **kwargs), "DryRunOperation", call)
        self.assertEqual(strict_ec2.bucket_of("CreateNatGateway"), strict_ec2.MUTATING_BUCKET)
        self.assertEqual(strict_ec2.bucket_of("DescribeNatGateways"), strict_ec2.NON_MUTATING_BUCKET)
        self.assertTrue({"CreateNatGateway", "CreateRouteTable", "CreateVpcEndpoint"} <= strict_ec2.TOKENED)

    def test_no_capacity_for_an_instance_type_until_restored(self) -> None:
        url = f"http://127.0.0.1:{self.port}/__strict/capacity"
        urllib.request.urlopen(url, data=b"m5.large").read()
        time.sleep(0.5)
        code = self.error_code(self.ec2.run_instances, ImageId=AMI, InstanceType="m5.large", MinCount=1,
                               MaxCount=1)
        self.assertEqual(code, "InsufficientInstanceCapacity")
        urllib.request.urlopen(url, data=b"").read()
        time.sleep(0.5)
        self.ec2.run_instances(ImageId=AMI, InstanceType="m5.large", MinCount=1, MaxCount=1)

    def test_zz_run_instances_bucket_throttles_the_sixth_call_at_once(self) -> None:
        time.sleep(3)  # let the RunInstances bucket fill up again
        codes = [self.error_code(self.ec2.run_instances, ImageId=AMI, InstanceType="m5.large", MinCount=1,
                                 MaxCount=1, DryRun=True) for _ in range(6)]
        self.assertEqual(codes, ["DryRunOperation"] * 5 + ["RequestLimitExceeded"])
        stats = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{self.port}/__stats").read())
        self.assertGreaterEqual(stats["strict"]["RequestLimitExceeded"], 1)
        for switch, expected in ((b"off", "DryRunOperation"), (b"on", "DryRunOperation")):
            urllib.request.urlopen(f"http://127.0.0.1:{self.port}/__strict/throttle", data=switch).read()
            code = self.error_code(self.ec2.run_instances, ImageId=AMI, InstanceType="m5.large", MinCount=1,
                                   MaxCount=1, DryRun=True)
            self.assertEqual(code, expected, f"throttle {switch!r}: off, or on with a full bucket")


if __name__ == "__main__":
    unittest.main()
