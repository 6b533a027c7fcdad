//! Client-side pacing in front of any `Ec2`: EC2 throttles each action with a token bucket per
//! account and region ("Request throttling for the Amazon EC2 API"), so kcluster spends tokens
//! no faster than the buckets refill, instead of being refused and backing off at random. A call
//! refused anyway (another client spends the same account's tokens) waits for the next token and
//! is sent again, until the caller's deadline.

mod network;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use std::net::Ipv4Addr;

use super::{
    Address, DataVolumeSpec, Ec2, Ec2Error, Ec2Result, Instance, InstanceChange, InstanceSpec,
    InterfaceSpec, NetworkInterface, RouteTable, Rule, SecurityGroup, SecurityGroupSpec, Subnet,
    Tags, Volume, VolumeSize,
};

/// The error codes of a throttled request.
const THROTTLED: [&str; 2] = ["RequestLimitExceeded", "Throttling"];

/// Pacing runs a little below the documented refill rate, so that clock differences never make
/// a request arrive a moment before its token.
const MARGIN: f64 = 0.95;

/// A token bucket's size and refill per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketSize {
    pub size: f64,
    pub refill: f64,
}

/// EC2's documented request bucket for an action: RunInstances 5 at 2 per second, other
/// mutating actions 50 at 5 per second, Describe (and SSM's Get) 100 at 20 per second.
pub fn bucket_of(operation: &str) -> BucketSize {
    let (size, refill) = if operation == "RunInstances" {
        (5.0, 2.0)
    } else if operation.starts_with("Describe") || operation.starts_with("Get") {
        (100.0, 20.0)
    } else {
        (50.0, 5.0)
    };
    BucketSize { size, refill }
}

/// One action's bucket as kcluster expects EC2's to be. Tokens may go negative: each caller
/// reserves the next token and waits until it has been refilled, so callers go in order.
#[derive(Debug)]
struct Bucket {
    size: BucketSize,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(size: BucketSize, now: Instant) -> Bucket {
        Bucket {
            size,
            tokens: size.size,
            last: now,
        }
    }

    /// Reserves a token; how long to wait before it is there.
    fn reserve(&mut self, now: Instant) -> Duration {
        let refill = self.size.refill * MARGIN;
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * refill).min(self.size.size);
        self.last = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / refill)
        }
    }

    /// EC2 refused a request: its bucket is emptier than this one thought.
    fn drain(&mut self) {
        self.tokens = self.tokens.min(0.0);
    }
}

/// An `Ec2` whose requests are paced to EC2's token buckets and retried when throttled.
pub struct Paced<E> {
    inner: E,
    buckets: Mutex<BTreeMap<&'static str, Bucket>>,
    /// Throttled requests are sent again until then.
    deadline: Instant,
}

impl<E: Ec2> Paced<E> {
    /// The implementation behind the pacing (for calls outside the `Ec2` trait).
    pub fn inner(&self) -> &E {
        &self.inner
    }

    /// Paces `inner`; a throttled request is retried for up to `retry_for` from now.
    pub fn new(inner: E, retry_for: Duration) -> Paced<E> {
        Paced {
            inner,
            buckets: Mutex::new(BTreeMap::new()),
            deadline: Instant::now() + retry_for,
        }
    }

    fn with_bucket<T>(&self, operation: &'static str, f: impl FnOnce(&mut Bucket) -> T) -> T {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let bucket = buckets
            .entry(operation)
            .or_insert_with(|| Bucket::new(bucket_of(operation), now));
        f(bucket)
    }

    async fn paced<T, F, Fut>(&self, operation: &'static str, call: F) -> Ec2Result<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Ec2Result<T>>,
    {
        loop {
            let wait = self.with_bucket(operation, |b| b.reserve(Instant::now()));
            tokio::time::sleep(wait).await;
            match call().await {
                Err(e) if is_throttled(&e) && Instant::now() < self.deadline => {
                    self.with_bucket(operation, Bucket::drain);
                }
                r => return r,
            }
        }
    }
}

fn is_throttled(e: &Ec2Error) -> bool {
    THROTTLED.contains(&e.code.as_str())
}

#[async_trait]
impl<E: Ec2> Ec2 for Paced<E> {
    async fn describe_subnets(&self, ids: &[String]) -> Ec2Result<Vec<Subnet>> {
        self.paced("DescribeSubnets", || self.inner.describe_subnets(ids))
            .await
    }

    async fn find_security_groups(&self, cluster: &str) -> Ec2Result<Vec<SecurityGroup>> {
        self.paced("DescribeSecurityGroups", || {
            self.inner.find_security_groups(cluster)
        })
        .await
    }

    async fn find_network_interfaces(&self, cluster: &str) -> Ec2Result<Vec<NetworkInterface>> {
        self.paced("DescribeNetworkInterfaces", || {
            self.inner.find_network_interfaces(cluster)
        })
        .await
    }

    async fn find_instances(&self, cluster: &str) -> Ec2Result<Vec<Instance>> {
        self.paced("DescribeInstances", || self.inner.find_instances(cluster))
            .await
    }

    async fn availability_zones(&self) -> Ec2Result<Vec<(String, String)>> {
        self.paced("DescribeAvailabilityZones", || {
            self.inner.availability_zones()
        })
        .await
    }

    async fn describe_route_tables(&self, vpc_id: &str) -> Ec2Result<Vec<RouteTable>> {
        self.paced("DescribeRouteTables", || {
            self.inner.describe_route_tables(vpc_id)
        })
        .await
    }

    async fn find_addresses(&self, cluster: &str) -> Ec2Result<Vec<Address>> {
        self.paced("DescribeAddresses", || self.inner.find_addresses(cluster))
            .await
    }

    async fn interfaces_holding(
        &self,
        subnet_ids: &[String],
        addresses: &[Ipv4Addr],
    ) -> Ec2Result<Vec<NetworkInterface>> {
        self.paced("DescribeNetworkInterfaces", || {
            self.inner.interfaces_holding(subnet_ids, addresses)
        })
        .await
    }

    async fn allocate_address(&self, tags: &Tags) -> Ec2Result<Address> {
        self.paced("AllocateAddress", || self.inner.allocate_address(tags))
            .await
    }

    async fn associate_address(
        &self,
        allocation_id: &str,
        interface_id: &str,
    ) -> Ec2Result<String> {
        self.paced("AssociateAddress", || {
            self.inner.associate_address(allocation_id, interface_id)
        })
        .await
    }

    async fn disassociate_address(&self, association_id: &str) -> Ec2Result<()> {
        self.paced("DisassociateAddress", || {
            self.inner.disassociate_address(association_id)
        })
        .await
    }

    async fn release_address(&self, allocation_id: &str) -> Ec2Result<()> {
        self.paced("ReleaseAddress", || {
            self.inner.release_address(allocation_id)
        })
        .await
    }

    async fn create_security_group(&self, spec: &SecurityGroupSpec) -> Ec2Result<String> {
        self.paced("CreateSecurityGroup", || {
            self.inner.create_security_group(spec)
        })
        .await
    }

    async fn authorize_ingress(&self, group_id: &str, rules: &[Rule]) -> Ec2Result<()> {
        self.paced("AuthorizeSecurityGroupIngress", || {
            self.inner.authorize_ingress(group_id, rules)
        })
        .await
    }

    async fn revoke_ingress(&self, group_id: &str, rules: &[Rule]) -> Ec2Result<()> {
        self.paced("RevokeSecurityGroupIngress", || {
            self.inner.revoke_ingress(group_id, rules)
        })
        .await
    }

    async fn delete_security_group(&self, group_id: &str) -> Ec2Result<()> {
        self.paced("DeleteSecurityGroup", || {
            self.inner.delete_security_group(group_id)
        })
        .await
    }

    async fn create_network_interface(&self, spec: &InterfaceSpec) -> Ec2Result<String> {
        self.paced("CreateNetworkInterface", || {
            self.inner.create_network_interface(spec)
        })
        .await
    }

    async fn delete_network_interface(&self, id: &str) -> Ec2Result<()> {
        self.paced("DeleteNetworkInterface", || {
            self.inner.delete_network_interface(id)
        })
        .await
    }

    async fn set_tags(&self, resource_id: &str, tags: &Tags) -> Ec2Result<()> {
        self.paced("CreateTags", || self.inner.set_tags(resource_id, tags))
            .await
    }

    async fn run_instance(&self, spec: &InstanceSpec) -> Ec2Result<String> {
        self.paced("RunInstances", || self.inner.run_instance(spec))
            .await
    }

    async fn terminate_instances(&self, ids: &[String]) -> Ec2Result<()> {
        self.paced("TerminateInstances", || self.inner.terminate_instances(ids))
            .await
    }

    async fn stop_instances(&self, ids: &[String]) -> Ec2Result<()> {
        self.paced("StopInstances", || self.inner.stop_instances(ids))
            .await
    }

    async fn start_instances(&self, ids: &[String]) -> Ec2Result<()> {
        self.paced("StartInstances", || self.inner.start_instances(ids))
            .await
    }

    async fn modify_instance(&self, id: &str, change: &InstanceChange) -> Ec2Result<()> {
        self.paced("ModifyInstanceAttribute", || {
            self.inner.modify_instance(id, change)
        })
        .await
    }

    async fn find_volumes(&self, cluster: &str) -> Ec2Result<Vec<Volume>> {
        self.paced("DescribeVolumes", || self.inner.find_volumes(cluster))
            .await
    }

    async fn create_volume(&self, spec: &DataVolumeSpec) -> Ec2Result<String> {
        self.paced("CreateVolume", || self.inner.create_volume(spec))
            .await
    }

    async fn attach_volume(
        &self,
        volume_id: &str,
        instance_id: &str,
        device: &str,
    ) -> Ec2Result<()> {
        self.paced("AttachVolume", || {
            self.inner.attach_volume(volume_id, instance_id, device)
        })
        .await
    }

    async fn modify_volume(&self, volume_id: &str, to: &VolumeSize) -> Ec2Result<()> {
        self.paced("ModifyVolume", || self.inner.modify_volume(volume_id, to))
            .await
    }

    async fn delete_volume(&self, volume_id: &str) -> Ec2Result<()> {
        self.paced("DeleteVolume", || self.inner.delete_volume(volume_id))
            .await
    }

    async fn dry_run(&self, call: &crate::ec2::DryRun) -> Ec2Result<bool> {
        // A DryRun spends a token of the call's own bucket.
        self.paced(call.operation(), || self.inner.dry_run(call))
            .await
    }

    async fn instance_type_offerings(
        &self,
        types: &[String],
        zones: &[String],
    ) -> Ec2Result<Vec<(String, String)>> {
        self.paced("DescribeInstanceTypeOfferings", || {
            self.inner.instance_type_offerings(types, zones)
        })
        .await
    }

    async fn instance_type_architectures(
        &self,
        types: &[String],
    ) -> Ec2Result<BTreeMap<String, Vec<String>>> {
        self.paced("DescribeInstanceTypes", || {
            self.inner.instance_type_architectures(types)
        })
        .await
    }

    async fn describe_image(&self, id: &str) -> Ec2Result<Option<crate::ec2::Image>> {
        self.paced("DescribeImages", || self.inner.describe_image(id))
            .await
    }

    async fn resolve_parameter(&self, name: &str) -> Ec2Result<String> {
        self.paced("GetParameter", || self.inner.resolve_parameter(name))
            .await
    }

    async fn user_data(&self, instance_id: &str) -> Ec2Result<Option<Vec<u8>>> {
        self.paced("DescribeInstanceAttribute", || {
            self.inner.user_data(instance_id)
        })
        .await
    }

    async fn create_parameter(&self, name: &str, value: &str) -> Ec2Result<Option<String>> {
        self.inner.create_parameter(name, value).await
    }

    async fn delete_parameter(&self, name: &str) -> Ec2Result<()> {
        self.inner.delete_parameter(name).await
    }

    fn calls(&self) -> BTreeMap<String, u64> {
        self.inner.calls()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::{Bucket, Paced, bucket_of};
    use crate::ec2::fake::FakeEc2;
    use crate::ec2::{Ec2, Ec2Error};

    #[test]
    fn a_bucket_lets_its_size_through_then_one_per_refill() {
        let t0 = Instant::now();
        let mut b = Bucket::new(bucket_of("RunInstances"), t0);
        let waits: Vec<Duration> = (0..7).map(|_| b.reserve(t0)).collect();
        assert!(waits[..5].iter().all(|w| w.is_zero()), "{waits:?}");
        let step = 1.0 / (2.0 * super::MARGIN);
        assert!((waits[5].as_secs_f64() - step).abs() < 1e-9, "{waits:?}");
        assert!(
            (waits[6].as_secs_f64() - 2.0 * step).abs() < 1e-9,
            "{waits:?}"
        );
        // After a long pause the bucket is full again, never fuller.
        let later = t0 + Duration::from_secs(3600);
        let waits: Vec<Duration> = (0..6).map(|_| b.reserve(later)).collect();
        assert!(waits[..5].iter().all(|w| w.is_zero()) && !waits[5].is_zero());
    }

    #[tokio::test]
    async fn launches_are_paced_to_two_per_second_after_a_burst_of_five() {
        let paced = Paced::new(FakeEc2::default(), Duration::from_secs(60));
        let start = Instant::now();
        for _ in 0..9 {
            let _ = paced.terminate_instances(&[]).await;
            let _ = paced.resolve_parameter("p").await;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "within both bursts"
        );
        let start = Instant::now();
        let paced = Paced::new(FakeEc2::default(), Duration::from_secs(60));
        for _ in 0..9 {
            let _ = paced.run_instance(&spec()).await;
        }
        let took = start.elapsed().as_secs_f64();
        let expected = 4.0 / (2.0 * super::MARGIN);
        assert!(
            (took - expected).abs() < 0.3,
            "{took} s for 9 launches, not {expected}"
        );
    }

    #[tokio::test]
    async fn a_throttled_call_is_sent_again_until_the_deadline() {
        let fake = FakeEc2::default();
        fake.fail_with("DescribeSubnets", 3, "RequestLimitExceeded");
        let paced = Paced::new(fake, Duration::from_secs(60));
        assert_eq!(paced.describe_subnets(&[]).await, Ok(vec![]));
        assert_eq!(paced.calls().get("DescribeSubnets"), Some(&4));

        let fake = FakeEc2::default();
        fake.fail_with("DescribeSubnets", 1000, "RequestLimitExceeded");
        let paced = Paced::new(fake, Duration::from_secs(1));
        let e: Ec2Error = paced
            .describe_subnets(&[])
            .await
            .expect_err("past the deadline");
        assert_eq!(e.code, "RequestLimitExceeded");
    }

    fn spec() -> crate::ec2::InstanceSpec {
        crate::ec2::InstanceSpec {
            image_id: "ami-1".into(),
            instance_type: "m5.large".into(),
            interface_id: "eni-none".into(),
            zone: "eu-west-1a".into(),
            user_data: Vec::new(),
            volumes: Vec::new(),
            key_name: None,
            client_token: "t".into(),
            tags: Default::default(),
        }
    }
}
