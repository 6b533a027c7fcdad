#!/usr/bin/env python3
"""A strict EC2 in front of moto: answers as real EC2 does where moto is lenient.

moto accepts things EC2 refuses, so a test that passes on moto alone proves little about EC2.
This proxy (asyncio, standard library only, built on latency_proxy.py) sits between a client and
moto and adds, per account and region:

- ClientToken replay (RunInstances, CreateNetworkInterface, CreateVolume, CreateNatGateway, CreateRouteTable,
  CreateVpcEndpoint): the same token returns the first answer again for 24 hours, whatever happened to the
  resource since; the same token with other parameters is `IdempotentParameterMismatch`.
- NAT gateways take time, as EC2's do (moto's are `available` at once and `deleted` at once, their Elastic
  IP still associated): DescribeNatGateways shows one `pending` for --detach-seconds after CreateNatGateway,
  and `deleting` for --detach-seconds after DeleteNatGateway; until it is deleted, ReleaseAddress of its
  Elastic IP is `AuthFailure` (as EC2 answers), DeleteSubnet of its subnet and DetachInternetGateway from its
  VPC (a public address is mapped) are `DependencyViolation`.
- CreateNetworkInterface on a private address another interface of the subnet holds is
  `InvalidIPAddress.InUse`.
- An interface stays attached to its instance for --detach-seconds after the instance is
  terminated (DescribeNetworkInterfaces shows it `in-use`, then `available` without attachment);
  RunInstances on an interface still attached is `InvalidNetworkInterface.InUse`, and so is
  DeleteNetworkInterface.
- Volumes attach and detach with a delay, as EC2's do: for the same --detach-seconds after
  AttachVolume, DescribeVolumes shows the attachment `attaching`; after TerminateInstances, the
  volumes the instance held stay `in-use`, `detaching` from it, for --detach-seconds (moto lets them
  go at once); AttachVolume and DeleteVolume of a volume still detaching are `VolumeInUse`.
- ModifyInstanceAttribute of an instance that is not stopped is `IncorrectInstanceState`. Its
  `UserData.Value` is the user-data base64-encoded once, as EC2 takes it (the SDKs encode the
  blob); moto decodes it and then wants base64 again, so the proxy encodes it once more for moto.
- DryRun: `DryRunOperation` (412), or `UnauthorizedOperation` (403) for a denied action, which is
  also refused when sent for real.
- No capacity for instance types named with --no-capacity: RunInstances of them answers
  `InsufficientInstanceCapacity` (HTTP 500, as EC2 does), until POST /__strict/capacity.
- Request throttling with EC2's token buckets (--throttle): one bucket per action, RunInstances
  5 tokens refilled at 2 per second, other mutating actions 50 at 5 per second, Describe/Get/List
  100 at 20 per second; an empty bucket answers 503 `RequestLimitExceeded`.

    strict_ec2.py --listen 127.0.0.1:PORT --upstream 127.0.0.1:PORT [--throttle]
                  [--detach-seconds 3] [--deny RunInstances,CreateTags] [--latency-ms 0]

    GET  /__stats          requests by action (as latency_proxy), plus "strict": the answers it gave
                           itself, by error code, and "replayed" ClientTokens
    POST /__strict/deny    body: comma-separated actions denied from now on (empty: none)
    POST /__strict/throttle  body `on` or `off`; every bucket starts full again
    POST /__strict/capacity  body: comma-separated instance types without capacity from now on

Only 127.0.0.1 is accepted for --listen and --upstream.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import re
import sys
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field

import latency_proxy as lp

DEFAULT_ACCOUNT = "123456789012"
# How long EC2 remembers a ClientToken.
TOKEN_LIFETIME_S = 24 * 3600
# Token buckets (size, refill per second), from "Request throttling for the Amazon EC2 API".
RUN_INSTANCES_BUCKET = (5.0, 2.0)
MUTATING_BUCKET = (50.0, 5.0)
NON_MUTATING_BUCKET = (100.0, 20.0)
# Actions whose ClientToken makes them idempotent.
TOKENED = {
    "RunInstances",
    "CreateNetworkInterface",
    "CreateVolume",
    "CreateNatGateway",
    "CreateRouteTable",
    "CreateVpcEndpoint",
}

Response = tuple[str, list[tuple[str, str]], bytes]


def bucket_of(action: str) -> tuple[float, float]:
    if action == "RunInstances":
        return RUN_INSTANCES_BUCKET
    if action.startswith(("Describe", "Get", "List")):
        return NON_MUTATING_BUCKET
    return MUTATING_BUCKET


class TokenBucket:
    """Holds up to `size` tokens, refilled continuously at `refill` per second; starts full."""

    def __init__(self, size: float, refill: float, now: float) -> None:
        self.size, self.refill, self.tokens, self.last = size, refill, size, now

    def take(self, now: float) -> bool:
        self.tokens = min(self.size, self.tokens + (now - self.last) * self.refill)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def ec2_error(code: str, message: str) -> Response:
    status = {
        "RequestLimitExceeded": "503 Service Unavailable",
        "UnauthorizedOperation": "403 Forbidden",
        "InsufficientInstanceCapacity": "500 Internal Server Error",
        "DryRunOperation": "412 Precondition Failed",
    }.get(code, "400 Bad Request")
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
        f"<Code>{code}</Code><Message>{message}</Message>"
        "</Error></Errors><RequestID>strict-ec2</RequestID></Response>"
    ).encode()
    return f"HTTP/1.1 {status}", [("Content-Type", "text/xml;charset=UTF-8")], body


def top_level_items(xml: str, set_name: str) -> list[tuple[int, int]]:
    """Spans of the `<item>` elements directly inside `<set_name>` (items nest in EC2's XML)."""
    spans = []
    start = xml.find(f"<{set_name}>")
    if start < 0:
        return spans
    depth, item_start = 0, 0
    for m in re.compile(rf"<item>|</item>|</{set_name}>").finditer(xml, start):
        tag = m.group(0)
        if tag == "<item>":
            if depth == 0:
                item_start = m.start()
            depth += 1
        elif tag == "</item>":
            depth -= 1
            if depth == 0:
                spans.append((item_start, m.end()))
        elif depth == 0:
            break
    return spans


def element(xml: str, name: str) -> str | None:
    m = re.search(rf"<{name}>([^<]*)</{name}>", xml)
    return m.group(1) if m else None


class Stats(lp.Stats):
    """Requests by action, plus the answers the strict layer gave itself (by error code, and
    `replayed` for ClientToken replays)."""

    def __init__(self) -> None:
        super().__init__()
        self.outcomes: Counter[str] = Counter()

    def snapshot(self) -> dict:
        return {**super().snapshot(), "strict": dict(sorted(self.outcomes.items()))}

    def reset(self) -> dict:
        before = super().reset()
        self.outcomes.clear()
        return before


@dataclass
class Account:
    """What the strict layer remembers for one account and region."""

    tokens: dict[tuple[str, str], tuple[float, tuple, Response]] = field(default_factory=dict)
    token_locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)
    terminated_at: dict[str, float] = field(default_factory=dict)
    # Volume id → when AttachVolume was answered.
    attached_at: dict[str, float] = field(default_factory=dict)
    # Volume id → (instance, device, when the instance was terminated): detaching until then + delay.
    detaching: dict[str, tuple[str, str, float]] = field(default_factory=dict)
    buckets: dict[str, TokenBucket] = field(default_factory=dict)
    # NAT gateway id → what the strict layer knows of it.
    nats: dict[str, "Nat"] = field(default_factory=dict)


@dataclass
class Nat:
    """A NAT gateway as the strict layer follows it: where it is and when it changed."""

    subnet: str
    vpc: str
    allocation: str
    created: float
    deleted: float | None = None

class StrictEc2(lp.Proxy):
    def __init__(
        self,
        upstream: tuple[str, int],
        latency_s: float,
        stats: Stats,
        throttle: bool,
        detach_s: float,
        deny: set[str],
        clock=time.monotonic,
        no_capacity: set[str] | None = None,
    ) -> None:
        super().__init__(upstream, latency_s, 100, stats)
        self.throttle = throttle
        self.detach_s = detach_s
        self.deny = set(deny)
        self.no_capacity = set(no_capacity or ())
        self.clock = clock
        self.accounts: dict[tuple[str, str], Account] = {}
        self.stats: Stats = stats

    async def respond(self, method: str, target: str, request: lp.Message) -> Response:
        path = target.partition("?")[0]
        if path == "/__strict/deny" and method == "POST":
            self.deny = {a.strip() for a in request.body.decode().split(",") if a.strip()}
            return lp.json_response({"deny": sorted(self.deny)})
        if path == "/__strict/capacity" and method == "POST":
            self.no_capacity = {t.strip() for t in request.body.decode().split(",") if t.strip()}
            return lp.json_response({"no_capacity": sorted(self.no_capacity)})
        if path == "/__strict/throttle" and method == "POST":
            self.throttle = request.body.strip() == b"on"
            for account in self.accounts.values():
                account.buckets.clear()  # full again
            return lp.json_response({"throttle": self.throttle})
        params = dict(urllib.parse.parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
        action = params.get("Action")
        if method != "POST" or not action or request.header("x-amz-target"):
            return await super().respond(method, target, request)
        self.stats.count(action)
        await asyncio.sleep(self.latency_s)
        account = self.account(request)
        refusal = self.refuse(account, action, params)
        if refusal is not None:
            return refusal
        return await self.strict(account, action, params, request)

    def account(self, request: lp.Message) -> Account:
        m = re.search(r"Credential=[^/]*/[^/]*/([^/]*)/", request.header("authorization") or "")
        key = (request.header("x-moto-account-id") or DEFAULT_ACCOUNT, m.group(1) if m else "")
        return self.accounts.setdefault(key, Account())

    def refuse(self, account: Account, action: str, params: dict[str, str]) -> Response | None:
        """Throttling, denial and DryRun: answered without asking moto."""
        now = self.clock()
        if self.throttle:
            bucket = account.buckets.get(action)
            if bucket is None:
                bucket = account.buckets[action] = TokenBucket(*bucket_of(action), now)
            if not bucket.take(now):
                return self.refused("RequestLimitExceeded", "Request limit exceeded.")
        if action in self.deny:
            return self.refused("UnauthorizedOperation", "You are not authorized to perform this operation.")
        if params.get("DryRun", "").lower() == "true":
            return self.refused("DryRunOperation", "Request would have succeeded, but DryRun flag is set.")
        if action == "RunInstances" and params.get("InstanceType") in self.no_capacity:
            t = params["InstanceType"]
            return self.refused(
                "InsufficientInstanceCapacity", f"We currently do not have sufficient {t} capacity in the zone."
            )
        return None

    async def strict(self, account: Account, action: str, params: dict[str, str], request: lp.Message) -> Response:
        token = params.get("ClientToken")
        if action in TOKENED and token:
            key = (action, token)
            lock = account.token_locks.setdefault(key, asyncio.Lock())
            async with lock:
                fingerprint = tuple(sorted((k, v) for k, v in params.items() if k not in ("ClientToken", "Version")))
                known = account.tokens.get(key)
                if known is not None and self.clock() - known[0] < TOKEN_LIFETIME_S:
                    if known[1] != fingerprint:
                        return self.refused(
                            "IdempotentParameterMismatch",
                            f"Arguments on this idempotent request are inconsistent with arguments used in "
                            f"previous request(s) with the same client token '{token}'.",
                        )
                    self.stats.outcomes["replayed"] += 1
                    return known[2]
                response = await self.checked(account, action, params, request)
                if response[0].split(" ")[1] == "200":
                    account.tokens[key] = (self.clock(), fingerprint, response)
                return response
        return await self.checked(account, action, params, request)

    def refused(self, code: str, message: str) -> Response:
        self.stats.outcomes[code] += 1
        return ec2_error(code, message)

    async def checked(self, account: Account, action: str, params: dict[str, str], request: lp.Message) -> Response:
        """The checks moto does not make, then moto itself."""
        if action == "RunInstances":
            enis = [v for k, v in params.items() if re.fullmatch(r"NetworkInterface\.\d+\.NetworkInterfaceId", k)]
            for eni in enis:
                if await self.attached(account, request, eni):
                    return self.refused("InvalidNetworkInterface.InUse", f"Interface: [{eni}] in use.")
        elif action == "DeleteNetworkInterface":
            eni = params.get("NetworkInterfaceId", "")
            if await self.attached(account, request, eni):
                return self.refused(
                    "InvalidNetworkInterface.InUse", f"The network interface '{eni}' is currently in use."
                )
        elif (refusal := self.nat_refusal(account, action, params)) is not None:
            return refusal
        elif action in ("AttachVolume", "DeleteVolume"):
            volume = params.get("VolumeId", "")
            if self.still_detaching(account, volume):
                return self.refused("VolumeInUse", f"vol '{volume}' is already attached to an instance")
        elif action == "ModifyInstanceAttribute":
            instance = params.get("InstanceId", "")
            found = await self.upstream_call(request, {"Action": "DescribeInstances", "InstanceId.1": instance})
            state = re.search(r"<instanceState>.*?<name>([^<]*)</name>", found[2].decode("utf-8", "replace"), re.S)
            if state and state.group(1) != "stopped":
                return self.refused(
                    "IncorrectInstanceState", f"The instance '{instance}' is not in the 'stopped' state."
                )
            if "UserData.Value" in params:
                value = params["UserData.Value"]
                try:
                    base64.b64decode(value, validate=True)
                except binascii.Error:
                    return self.refused("InvalidUserData.Malformed", "Invalid BASE64 encoding of user data.")
                return await self.upstream_call(
                    request, {**params, "UserData.Value": base64.b64encode(value.encode()).decode()}
                )
        elif action == "CreateNetworkInterface" and params.get("PrivateIpAddress"):
            address, subnet = params["PrivateIpAddress"], params.get("SubnetId", "")
            found = await self.upstream_call(
                request, {"Action": "DescribeNetworkInterfaces", "Filter.1.Name": "subnet-id", "Filter.1.Value.1": subnet}
            )
            xml = found[2].decode("utf-8", "replace")
            held = [xml[a:b] for a, b in top_level_items(xml, "networkInterfaceSet")]
            if any(element(item, "privateIpAddress") == address for item in held):
                return self.refused("InvalidIPAddress.InUse", f"The specified address {address} is already in use.")
        held: list[tuple[str, str, str]] = []
        if action == "TerminateInstances":
            held = await self.volumes_held(request, [v for k, v in params.items() if re.fullmatch(r"InstanceId\.\d+", k)])
        response = await self.to_moto(request)
        if response[0].split(" ")[1] != "200":
            return response
        if action == "TerminateInstances":
            now = self.clock()
            for k, v in params.items():
                if re.fullmatch(r"InstanceId\.\d+", k):
                    account.terminated_at.setdefault(v, now)
            for volume, instance, device in held:
                account.detaching[volume] = (instance, device, now)
        elif action == "AttachVolume":
            account.attached_at[params.get("VolumeId", "")] = self.clock()
            account.detaching.pop(params.get("VolumeId", ""), None)
        elif action == "DescribeNetworkInterfaces":
            response = self.detach_finished(account, response)
        elif action == "DescribeVolumes":
            response = self.volumes_in_transit(account, response)
        elif action == "CreateNatGateway":
            xml = response[2].decode("utf-8", "replace")
            nat = element(xml, "natGatewayId")
            if nat:
                account.nats[nat] = Nat(
                    params.get("SubnetId", ""), element(xml, "vpcId") or "", params.get("AllocationId", ""),
                    self.clock())
        elif action == "DeleteNatGateway":
            nat = account.nats.get(params.get("NatGatewayId", ""))
            if nat is not None and nat.deleted is None:
                nat.deleted = self.clock()
        elif action == "DescribeNatGateways":
            response = self.nats_in_transit(account, response)
        return response

    def nat_standing(self, account: Account) -> list[Nat]:
        """The NAT gateways EC2 has not finished deleting."""
        now = self.clock()
        return [n for n in account.nats.values() if n.deleted is None or now < n.deleted + self.detach_s]

    def nat_refusal(self, account: Account, action: str, params: dict[str, str]) -> Response | None:
        """What EC2 refuses while a NAT gateway stands: releasing its address, deleting its subnet,
        detaching the internet gateway from its VPC."""
        standing = self.nat_standing(account)
        if action == "ReleaseAddress" and any(n.allocation == params.get("AllocationId") for n in standing):
            return self.refused("AuthFailure", "You do not have permission to access the specified resource.")
        if action == "DeleteSubnet" and any(n.subnet == params.get("SubnetId") for n in standing):
            subnet = params.get("SubnetId")
            return self.refused("DependencyViolation", f"The subnet '{subnet}' has dependencies and cannot be deleted.")
        if action == "DetachInternetGateway" and any(n.vpc == params.get("VpcId") for n in standing):
            vpc = params.get("VpcId")
            return self.refused(
                "DependencyViolation",
                f"Network {vpc} has some mapped public address(es). Please unmap those public address(es) "
                "before detaching the gateway.")
        return None

    def nats_in_transit(self, account: Account, response: Response) -> Response:
        """Shows a NAT gateway `pending` for a while after its creation, `deleting` for a while
        after its deletion."""
        status, headers, body = response
        xml = body.decode("utf-8")
        now = self.clock()
        out, last = [], 0
        for a, b in top_level_items(xml, "natGatewaySet"):
            item = xml[a:b]
            nat = account.nats.get(element(item, "natGatewayId") or "")
            if nat is not None:
                if nat.deleted is not None and now < nat.deleted + self.detach_s:
                    item = re.sub(r"<state>[^<]*</state>", "<state>deleting</state>", item, count=1)
                elif nat.deleted is None and now < nat.created + self.detach_s:
                    item = re.sub(r"<state>[^<]*</state>", "<state>pending</state>", item, count=1)
            out.append(xml[last:a] + item)
            last = b
        out.append(xml[last:])
        return status, headers, "".join(out).encode()

    async def volumes_held(self, like: lp.Message, instances: list[str]) -> list[tuple[str, str, str]]:
        """(volume, instance, device) of every volume attached to one of `instances`."""
        if not instances:
            return []
        query = {"Action": "DescribeVolumes", "Filter.1.Name": "attachment.instance-id"}
        query.update({f"Filter.1.Value.{i}": v for i, v in enumerate(instances, 1)})
        xml = (await self.upstream_call(like, query))[2].decode("utf-8", "replace")
        out = []
        for a, b in top_level_items(xml, "volumeSet"):
            for c, d in top_level_items(xml[a:b], "attachmentSet"):
                att = xml[a:b][c:d]
                out.append((element(xml[a:b], "volumeId") or "", element(att, "instanceId") or "",
                            element(att, "device") or ""))
        return out

    def still_detaching(self, account: Account, volume: str) -> bool:
        held = account.detaching.get(volume)
        return held is not None and self.clock() < held[2] + self.detach_s

    def volumes_in_transit(self, account: Account, response: Response) -> Response:
        """Shows a volume `attaching` for a while after AttachVolume, and one whose instance was
        terminated a moment ago still `in-use`, `detaching` from it."""
        status, headers, body = response
        xml = body.decode("utf-8")
        now = self.clock()
        out, last = [], 0
        for a, b in top_level_items(xml, "volumeSet"):
            item = xml[a:b]
            volume = element(item, "volumeId") or ""
            attached = account.attached_at.get(volume)
            if attached is not None and now < attached + self.detach_s:
                item = item.replace("<status>attached</status>", "<status>attaching</status>", 1)
            held = account.detaching.get(volume)
            if held is not None and now < held[2] + self.detach_s and "<attachmentSet><item>" not in item:
                instance, device, _ = held
                attachment = (
                    f"<attachmentSet><item><volumeId>{volume}</volumeId><instanceId>{instance}</instanceId>"
                    f"<device>{device}</device><status>detaching</status></item></attachmentSet>"
                )
                item = item.replace("<status>available</status>", "<status>in-use</status>", 1)
                item = re.sub(r"<attachmentSet\s*/>|<attachmentSet></attachmentSet>", attachment, item, count=1)
                if "<attachmentSet>" not in item:
                    item = item[: -len("</item>")] + attachment + "</item>"
            out.append(xml[last:a] + item)
            last = b
        out.append(xml[last:])
        return status, headers, "".join(out).encode()

    def detached(self, account: Account, instance_id: str) -> bool:
        """Whether an interface attached to `instance_id` has been let go by EC2."""
        t = account.terminated_at.get(instance_id)
        return t is not None and self.clock() >= t + self.detach_s

    async def attached(self, account: Account, request: lp.Message, eni: str) -> bool:
        found = await self.upstream_call(
            request, {"Action": "DescribeNetworkInterfaces", "NetworkInterfaceId.1": eni}
        )
        xml = found[2].decode("utf-8", "replace")
        for a, b in top_level_items(xml, "networkInterfaceSet"):
            attachment = re.search(r"<attachment>.*?</attachment>", xml[a:b])
            if attachment:
                instance = element(attachment.group(0), "instanceId")
                return instance is not None and not self.detached(account, instance)
        return False

    def detach_finished(self, account: Account, response: Response) -> Response:
        """Rewrites interfaces whose instance was terminated long enough ago as `available`."""
        status, headers, body = response
        xml = body.decode("utf-8")
        out, last = [], 0
        for a, b in top_level_items(xml, "networkInterfaceSet"):
            item = xml[a:b]
            attachment = re.search(r"<attachment>.*?</attachment>", item)
            if attachment and self.detached(account, element(attachment.group(0), "instanceId") or ""):
                item = item.replace(attachment.group(0), "", 1).replace(
                    "<status>in-use</status>", "<status>available</status>", 1
                )
            out.append(xml[last:a] + item)
            last = b
        out.append(xml[last:])
        return status, headers, "".join(out).encode()

    async def to_moto(self, request: lp.Message) -> Response:
        async with self.upstream_slots:
            return await self.forward(request, no_body=False)

    async def upstream_call(self, like: lp.Message, params: dict[str, str]) -> Response:
        """A request of the proxy's own to moto, as the same account and region as `like`."""
        body = urllib.parse.urlencode({**params, "Version": "2016-11-15"}).encode()
        keep = ("authorization", "host", "x-moto-account-id")
        headers = [(k, v) for k, v in like.headers if k.lower() in keep]
        headers.append(("Content-Type", "application/x-www-form-urlencoded"))
        return await self.to_moto(lp.Message("POST / HTTP/1.1", headers, body))


async def main_async(args: argparse.Namespace) -> None:
    proxy = StrictEc2(
        args.upstream,
        args.latency_ms / 1000.0,
        Stats(),
        args.throttle,
        args.detach_seconds,
        set(args.deny),
        no_capacity=set(args.no_capacity),
    )
    throttle = "on" if args.throttle else "off"
    await lp.serve(proxy, args.listen, args.stats_file, f"throttle {throttle}, detach {args.detach_seconds} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=lp.split_host_port, required=True, help="127.0.0.1:PORT (0 picks one)")
    parser.add_argument("--upstream", type=lp.split_host_port, required=True, help="127.0.0.1:PORT of moto")
    parser.add_argument("--throttle", action="store_true", help="EC2's request token buckets")
    parser.add_argument(
        "--detach-seconds", type=float, default=3.0, help="delay of volume attachments, and of interface and volume detachment after termination (default 3)"
    )
    parser.add_argument(
        "--deny", type=lambda s: [a for a in s.split(",") if a], default=[], help="actions answered UnauthorizedOperation"
    )
    parser.add_argument(
        "--no-capacity", type=lambda s: [t for t in s.split(",") if t], default=[],
        help="instance types RunInstances has no capacity for"
    )
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay added to each request (default 0)")
    parser.add_argument("--stats-file", help="where to write the stats JSON on SIGTERM/SIGINT")
    args = parser.parse_args()
    if args.latency_ms < 0 or args.detach_seconds < 0:
        parser.error("--latency-ms and --detach-seconds must be >= 0")
    if args.upstream[1] == 0:
        parser.error("--upstream needs a port")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
