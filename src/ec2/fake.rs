//! A stateful in-process EC2 for unit tests: it keeps security groups, network interfaces,
//! instances, data volumes, Elastic IPs and route tables with their tags, enforces what EC2
//! enforces where kcluster relies on it (an address is held once per subnet, an attached interface
//! cannot be deleted, a group in use cannot be deleted, client tokens are idempotent, an
//! associated Elastic IP cannot be released), and can be told to fail a given call. What EC2 does
//! some time after a call (an instance boots or stops, a volume is created, attaches, or detaches
//! after its instance terminated, an interface stays attached for a while after its instance
//! terminates) happens later, so callers must wait for states as they must with EC2.

mod network;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{
    Address, AttachmentState, CallCounter, DataVolumeSpec, DefaultRoute, DryRun, Ec2, Ec2Error,
    Ec2Result, Image, Instance, InstanceChange, InstanceSpec, InstanceState, InterfaceSpec,
    NetworkInterface, RouteTable, Rule, SecurityGroup, SecurityGroupSpec, Subnet, Tags, Volume,
    VolumeAttachment, VolumeSize, VolumeState, tags,
};

/// API calls an interface stays attached after its instance is terminated (EC2 takes seconds).
const DETACH_AFTER_CALLS: u32 = 3;

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    subnets: Vec<Subnet>,
    /// Subnet id → addresses EC2 says are free, when a test sets it (else computed).
    free_addresses: BTreeMap<String, u32>,
    route_tables: Vec<RouteTable>,
    addresses: BTreeMap<String, Address>,
    /// Interface id → API calls left until EC2 detaches it from its terminated instance.
    detaching: BTreeMap<String, u32>,
    groups: BTreeMap<String, SecurityGroup>,
    interfaces: BTreeMap<String, NetworkInterface>,
    instances: BTreeMap<String, Instance>,
    user_data: BTreeMap<String, Vec<u8>>,
    /// Interface id → the security group it uses.
    interface_groups: BTreeMap<String, String>,
    tokens: BTreeMap<String, String>,
    volumes: BTreeMap<String, Volume>,
    volume_tokens: BTreeMap<String, String>,
    parameters: BTreeMap<String, String>,
    images: BTreeMap<String, Image>,
    /// Operations the caller may not make.
    denied: Vec<String>,
    /// Instance type → (architecture, zones it is offered in); unknown types are x86_64 everywhere.
    instance_types: BTreeMap<String, (String, Vec<String>)>,
    /// Operation name → how many more calls succeed before one fails.
    fail_after: BTreeMap<String, u32>,
    /// Operation name → how many next calls fail, and with which error code.
    failing: BTreeMap<String, (u32, String)>,
    /// Operations whose next call is carried out but answered with a timeout (a lost answer).
    lose_answer: Vec<String>,
    /// The network kcluster creates (`network.create`).
    net: network::NetState,
}

#[derive(Debug, Default)]
pub struct FakeEc2 {
    state: Mutex<State>,
    calls: CallCounter,
}

impl FakeEc2 {
    /// A fake account with a default VPC and one default subnet per zone.
    pub fn with_default_subnets(zones: &[(&str, &str)]) -> Self {
        let fake = FakeEc2::default();
        {
            let mut s = fake.lock();
            for (i, (zone, cidr)) in zones.iter().enumerate() {
                s.subnets.push(Subnet {
                    id: format!("subnet-{i:08x}"),
                    vpc_id: "vpc-default".to_string(),
                    zone: zone.to_string(),
                    cidr: cidr.parse().expect("test CIDR"),
                    available_addresses: 0,
                });
            }
            // As in a real default VPC: the main route table sends 0.0.0.0/0 to its internet gateway.
            s.route_tables.push(RouteTable {
                id: "rtb-main".into(),
                vpc_id: "vpc-default".into(),
                main: true,
                subnets: Vec::new(),
                default_route: Some(DefaultRoute {
                    target: "igw-default".into(),
                    active: true,
                }),
            });
        }
        fake
    }

    /// An account in eu-west-1 with zones a, b and c (default subnets 172.31.0.0/20, …16.0/20,
    /// …32.0/20) and Amazon Linux 2023 behind its public SSM parameter.
    pub fn eu_west_1() -> Self {
        let f = FakeEc2::with_default_subnets(&[
            ("eu-west-1a", "172.31.0.0/20"),
            ("eu-west-1b", "172.31.16.0/20"),
            ("eu-west-1c", "172.31.32.0/20"),
        ]);
        let image = "ami-0123456789abcdef0";
        f.set_parameter(crate::topology::AMI_SSM_PARAMETER, image);
        f.set_image(image, "/dev/xvda", "x86_64");
        f
    }

    /// Runs `work` while EC2's time passes (instances boot and stop, volumes attach and
    /// detach), as it does while kcluster waits.
    pub async fn while_time_passes<T>(&self, work: impl std::future::Future<Output = T>) -> T {
        let time = async {
            loop {
                self.boot_all();
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        };
        tokio::select! {
            r = work => r,
            () = time => unreachable!("time passes forever"),
        }
    }

    /// Gives `subnet_id` a route table of its own whose `0.0.0.0/0` route goes to `target`
    /// (`nat-…`, `igw-…`), or that has none (`None`).
    pub fn route_subnet(&self, subnet_id: &str, target: Option<&str>) {
        let mut s = self.lock();
        let id = s.id("rtb");
        for t in &mut s.route_tables {
            t.subnets.retain(|x| x != subnet_id);
        }
        s.route_tables.push(RouteTable {
            id,
            vpc_id: "vpc-default".into(),
            main: false,
            subnets: vec![subnet_id.into()],
            default_route: target.map(|t| DefaultRoute {
                target: t.into(),
                active: true,
            }),
        });
    }

    /// Makes EC2 report `free` addresses left in `subnet_id`.
    pub fn set_free_addresses(&self, subnet_id: &str, free: u32) {
        self.lock().free_addresses.insert(subnet_id.into(), free);
    }

    /// All Elastic IPs.
    pub fn addresses(&self) -> Vec<Address> {
        self.lock().addresses.values().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets an SSM parameter, e.g. the AMI behind Amazon Linux's public parameter.
    pub fn set_parameter(&self, name: &str, value: &str) {
        self.lock().parameters.insert(name.into(), value.into());
    }

    /// Makes the call after the next `ok` successful calls of `operation` fail (once).
    pub fn fail_after(&self, operation: &str, ok: u32) {
        self.lock().fail_after.insert(operation.to_string(), ok);
    }

    /// Registers an image with its root device and architecture.
    pub fn set_image(&self, id: &str, root_device: &str, architecture: &str) {
        self.lock().images.insert(
            id.into(),
            Image {
                id: id.into(),
                root_device: root_device.into(),
                architecture: architecture.into(),
            },
        );
    }

    /// Denies `operation` to the caller (`UnauthorizedOperation`, DryRun or not).
    pub fn deny(&self, operation: &str) {
        self.lock().denied.push(operation.into());
    }

    /// Declares an instance type's architecture and the zones that offer it.
    pub fn set_instance_type(&self, name: &str, architecture: &str, zones: &[&str]) {
        self.lock().instance_types.insert(
            name.into(),
            (
                architecture.into(),
                zones.iter().map(|z| z.to_string()).collect(),
            ),
        );
    }

    /// Makes the next `count` calls of `operation` fail with error `code` (e.g. throttling).
    pub fn fail_with(&self, operation: &str, count: u32, code: &str) {
        self.lock()
            .failing
            .insert(operation.to_string(), (count, code.to_string()));
    }

    /// Carries out the next call of `operation` but answers it with a timeout, as when the
    /// answer is lost on the way back (implemented for AllocateAddress, CreateVpc, CreateSubnet
    /// and CreateInternetGateway).
    pub fn lose_answer(&self, operation: &str) {
        self.lock().lose_answer.push(operation.into());
    }

    /// All instances, terminated ones included.
    pub fn instances(&self) -> Vec<Instance> {
        self.lock().instances.values().cloned().collect()
    }

    pub fn interfaces(&self) -> Vec<NetworkInterface> {
        self.lock().interfaces.values().cloned().collect()
    }

    pub fn groups(&self) -> Vec<SecurityGroup> {
        self.lock().groups.values().cloned().collect()
    }

    /// Launches an instance as someone else would (no kcluster involved), e.g. an untagged one.
    pub fn insert_instance(&self, mut instance: Instance) -> String {
        let mut s = self.lock();
        let id = s.id("i");
        instance.id = id.clone();
        s.instances.insert(id.clone(), instance);
        id
    }

    /// Adds an interface as it is (its id kept when given), e.g. a duplicate made by hand.
    pub fn insert_interface(&self, mut interface: NetworkInterface) -> String {
        let mut s = self.lock();
        if interface.id.is_empty() {
            interface.id = s.id("eni");
        }
        let id = interface.id.clone();
        s.interfaces.insert(id.clone(), interface);
        id
    }

    /// The cluster's data volumes and everyone else's, in any state.
    pub fn volumes(&self) -> Vec<Volume> {
        self.lock().volumes.values().cloned().collect()
    }

    /// The user-data an instance holds now (changed by ModifyInstanceAttribute while stopped).
    pub fn instance_user_data(&self, id: &str) -> Option<Vec<u8>> {
        self.lock().user_data.get(id).cloned()
    }

    /// What EC2 finishes a while after a call: pending instances run, stopping ones stop,
    /// created volumes become available, attaching ones attached, and volumes of terminated
    /// instances detach.
    pub fn boot_all(&self) {
        let mut s = self.lock();
        for i in s.instances.values_mut() {
            match i.state {
                InstanceState::Pending => i.state = InstanceState::Running,
                InstanceState::Stopping => i.state = InstanceState::Stopped,
                _ => {}
            }
        }
        for v in s.volumes.values_mut() {
            if v.state == VolumeState::Creating {
                v.state = VolumeState::Available;
            }
            match v.attachment.as_ref().map(|a| a.state) {
                Some(AttachmentState::Attaching) => {
                    if let Some(a) = v.attachment.as_mut() {
                        a.state = AttachmentState::Attached;
                    }
                }
                Some(AttachmentState::Detaching) => {
                    v.attachment = None;
                    v.state = VolumeState::Available;
                }
                _ => {}
            }
        }
    }

    fn call(&self, operation: &'static str) -> Ec2Result<()> {
        self.calls.count(operation);
        let mut s = self.lock();
        s.tick();
        if let Some((n, code)) = s.failing.get_mut(operation)
            && *n > 0
        {
            *n -= 1;
            return Err(Ec2Error::new(operation, code.clone(), "injected failure"));
        }
        if let Some(n) = s.fail_after.get_mut(operation) {
            if *n == 0 {
                s.fail_after.remove(operation);
                return Err(Ec2Error::new(
                    operation,
                    "InternalError",
                    "injected failure",
                ));
            }
            *n -= 1;
        }
        Ok(())
    }
}

impl State {
    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}-{:017x}", self.next_id)
    }

    /// Time passes by one API call: interfaces of terminated instances come closer to detached,
    /// NAT gateways to available or deleted.
    fn tick(&mut self) {
        self.tick_network();
        let mut done = Vec::new();
        for (eni, left) in self.detaching.iter_mut() {
            *left = left.saturating_sub(1);
            if *left == 0 {
                done.push(eni.clone());
            }
        }
        for eni in done {
            self.detaching.remove(&eni);
            if let Some(n) = self.interfaces.get_mut(&eni) {
                n.instance_id = None;
            }
        }
    }
}

fn has_cluster(t: &Tags, cluster: &str) -> bool {
    t.get(tags::CLUSTER).is_some_and(|c| c == cluster)
}

#[async_trait]
impl Ec2 for FakeEc2 {
    async fn describe_subnets(&self, ids: &[String]) -> Ec2Result<Vec<Subnet>> {
        self.call("DescribeSubnets")?;
        let s = self.lock();
        Ok(s.subnets
            .iter()
            .filter(|n| ids.is_empty() || ids.contains(&n.id))
            .map(|n| {
                let used = s
                    .interfaces
                    .values()
                    .filter(|i| i.subnet_id == n.id)
                    .count() as u32;
                let size = 1u32 << (32 - u32::from(n.cidr.prefix_len()));
                let available = s
                    .free_addresses
                    .get(&n.id)
                    .copied()
                    .unwrap_or_else(|| size.saturating_sub(5 + used));
                Subnet {
                    available_addresses: available,
                    ..n.clone()
                }
            })
            .collect())
    }

    async fn availability_zones(&self) -> Ec2Result<Vec<(String, String)>> {
        self.call("DescribeAvailabilityZones")?;
        // The zones of the subnets; as in a real account, names and IDs do not line up:
        // `…a` is az2, `…b` az3, `…c` az1.
        let s = self.lock();
        let mut zones: Vec<(String, String)> = Vec::new();
        for n in &s.subnets {
            let (region, letter) = n.zone.split_at(n.zone.len().saturating_sub(1));
            let index = letter.bytes().next().map_or(0, |b| b.saturating_sub(b'a'));
            let Some(prefix) = crate::topology::az_id_prefix(region) else {
                continue;
            };
            let id = format!("{prefix}-az{}", (index + 1) % 3 + 1);
            if !zones.iter().any(|(z, _)| z == &n.zone) {
                zones.push((n.zone.clone(), id));
            }
        }
        Ok(zones)
    }

    async fn describe_route_tables(&self, vpc_id: &str) -> Ec2Result<Vec<RouteTable>> {
        self.call("DescribeRouteTables")?;
        Ok(self
            .lock()
            .route_tables
            .iter()
            .filter(|t| t.vpc_id == vpc_id)
            .cloned()
            .collect())
    }

    async fn find_addresses(&self, cluster: &str) -> Ec2Result<Vec<Address>> {
        self.call("DescribeAddresses")?;
        Ok(self
            .lock()
            .addresses
            .values()
            .filter(|a| has_cluster(&a.tags, cluster))
            .cloned()
            .collect())
    }

    async fn interfaces_holding(
        &self,
        subnet_ids: &[String],
        addresses: &[Ipv4Addr],
    ) -> Ec2Result<Vec<NetworkInterface>> {
        self.call("DescribeNetworkInterfaces")?;
        Ok(self
            .lock()
            .interfaces
            .values()
            .filter(|n| subnet_ids.contains(&n.subnet_id) && addresses.contains(&n.address))
            .cloned()
            .collect())
    }

    async fn allocate_address(&self, tags: &Tags) -> Ec2Result<Address> {
        self.call("AllocateAddress")?;
        let mut s = self.lock();
        let allocation_id = s.id("eipalloc");
        let n = s.next_id;
        let a = Address {
            allocation_id: allocation_id.clone(),
            public_ip: format!("198.51.{}.{}", (n >> 8) & 0xff, n & 0xff),
            association_id: None,
            interface_id: None,
            tags: tags.clone(),
        };
        s.addresses.insert(allocation_id, a.clone());
        if let Some(i) = s.lose_answer.iter().position(|o| o == "AllocateAddress") {
            s.lose_answer.remove(i);
            return Err(Ec2Error::new("AllocateAddress", "Timeout", "answer lost"));
        }
        Ok(a)
    }

    async fn associate_address(
        &self,
        allocation_id: &str,
        interface_id: &str,
    ) -> Ec2Result<String> {
        const OP: &str = "AssociateAddress";
        self.call(OP)?;
        let mut s = self.lock();
        if !s.interfaces.contains_key(interface_id) {
            return Err(Ec2Error::new(
                OP,
                "InvalidNetworkInterfaceID.NotFound",
                interface_id,
            ));
        }
        let association = s.id("eipassoc");
        let a = s
            .addresses
            .get_mut(allocation_id)
            .ok_or_else(|| Ec2Error::new(OP, "InvalidAllocationID.NotFound", allocation_id))?;
        match (&a.interface_id, &a.association_id) {
            (Some(eni), Some(id)) if eni == interface_id => Ok(id.clone()),
            (Some(eni), _) => Err(Ec2Error::new(
                OP,
                "Resource.AlreadyAssociated",
                format!("{allocation_id} is already associated with {eni}"),
            )),
            _ => {
                a.interface_id = Some(interface_id.into());
                a.association_id = Some(association.clone());
                Ok(association)
            }
        }
    }

    async fn disassociate_address(&self, association_id: &str) -> Ec2Result<()> {
        self.call("DisassociateAddress")?;
        let mut s = self.lock();
        for a in s.addresses.values_mut() {
            if a.association_id.as_deref() == Some(association_id) {
                a.association_id = None;
                a.interface_id = None;
            }
        }
        Ok(())
    }

    async fn release_address(&self, allocation_id: &str) -> Ec2Result<()> {
        const OP: &str = "ReleaseAddress";
        self.call(OP)?;
        let mut s = self.lock();
        if s.nat_holds(allocation_id) {
            // As EC2 answers for the address of a NAT gateway not deleted yet.
            return Err(Ec2Error::new(
                OP,
                "AuthFailure",
                "You do not have permission to access the specified resource.",
            ));
        }
        match s.addresses.get(allocation_id) {
            None => Err(Ec2Error::new(
                OP,
                "InvalidAllocationID.NotFound",
                allocation_id,
            )),
            Some(a) if a.association_id.is_some() => Err(Ec2Error::new(
                OP,
                "InvalidIPAddress.InUse",
                format!("{allocation_id} is associated"),
            )),
            Some(_) => {
                s.addresses.remove(allocation_id);
                Ok(())
            }
        }
    }

    async fn find_security_groups(&self, cluster: &str) -> Ec2Result<Vec<SecurityGroup>> {
        self.call("DescribeSecurityGroups")?;
        let s = self.lock();
        Ok(s.groups
            .values()
            .filter(|g| has_cluster(&g.tags, cluster))
            .cloned()
            .collect())
    }

    async fn find_network_interfaces(&self, cluster: &str) -> Ec2Result<Vec<NetworkInterface>> {
        self.call("DescribeNetworkInterfaces")?;
        let s = self.lock();
        Ok(s.interfaces
            .values()
            .filter(|n| has_cluster(&n.tags, cluster))
            .cloned()
            .collect())
    }

    async fn find_instances(&self, cluster: &str) -> Ec2Result<Vec<Instance>> {
        self.call("DescribeInstances")?;
        let s = self.lock();
        Ok(s.instances
            .values()
            .filter(|i| has_cluster(&i.tags, cluster))
            .cloned()
            .collect())
    }

    async fn create_security_group(&self, spec: &SecurityGroupSpec) -> Ec2Result<String> {
        self.call("CreateSecurityGroup")?;
        let mut s = self.lock();
        if s.groups
            .values()
            .any(|g| g.name == spec.name && g.vpc_id == spec.vpc_id)
        {
            return Err(Ec2Error::new(
                "CreateSecurityGroup",
                "InvalidGroup.Duplicate",
                format!("The security group '{}' already exists", spec.name),
            ));
        }
        let id = s.id("sg");
        s.groups.insert(
            id.clone(),
            SecurityGroup {
                id: id.clone(),
                name: spec.name.clone(),
                vpc_id: spec.vpc_id.clone(),
                rules: Vec::new(),
                tags: spec.tags.clone(),
            },
        );
        Ok(id)
    }

    async fn authorize_ingress(&self, group_id: &str, rules: &[Rule]) -> Ec2Result<()> {
        self.call("AuthorizeSecurityGroupIngress")?;
        let mut s = self.lock();
        let g = s.groups.get_mut(group_id).ok_or_else(|| {
            Ec2Error::new(
                "AuthorizeSecurityGroupIngress",
                "InvalidGroup.NotFound",
                group_id,
            )
        })?;
        for r in rules {
            if g.rules.contains(r) {
                return Err(Ec2Error::new(
                    "AuthorizeSecurityGroupIngress",
                    "InvalidPermission.Duplicate",
                    format!("the rule {r} already exists"),
                ));
            }
        }
        g.rules.extend(rules.iter().cloned());
        g.rules.sort();
        Ok(())
    }

    async fn revoke_ingress(&self, group_id: &str, rules: &[Rule]) -> Ec2Result<()> {
        self.call("RevokeSecurityGroupIngress")?;
        let mut s = self.lock();
        let g = s.groups.get_mut(group_id).ok_or_else(|| {
            Ec2Error::new(
                "RevokeSecurityGroupIngress",
                "InvalidGroup.NotFound",
                group_id,
            )
        })?;
        g.rules.retain(|r| !rules.contains(r));
        Ok(())
    }

    async fn delete_security_group(&self, group_id: &str) -> Ec2Result<()> {
        self.call("DeleteSecurityGroup")?;
        let mut s = self.lock();
        let in_use = s.interface_groups.values().any(|g| g == group_id);
        if in_use {
            return Err(Ec2Error::new(
                "DeleteSecurityGroup",
                "DependencyViolation",
                "resource has a dependent object",
            ));
        }
        s.groups
            .remove(group_id)
            .map(|_| ())
            .ok_or_else(|| Ec2Error::new("DeleteSecurityGroup", "InvalidGroup.NotFound", group_id))
    }

    async fn create_network_interface(&self, spec: &InterfaceSpec) -> Ec2Result<String> {
        self.call("CreateNetworkInterface")?;
        let mut s = self.lock();
        let subnet = s
            .subnets
            .iter()
            .find(|n| n.id == spec.subnet_id)
            .cloned()
            .ok_or_else(|| {
                Ec2Error::new(
                    "CreateNetworkInterface",
                    "InvalidSubnetID.NotFound",
                    &spec.subnet_id,
                )
            })?;
        if !subnet.cidr.contains(&spec.address) {
            return Err(Ec2Error::new(
                "CreateNetworkInterface",
                "InvalidParameterValue",
                format!(
                    "address {} does not fall within the subnet's address range",
                    spec.address
                ),
            ));
        }
        if s.interfaces
            .values()
            .any(|n| n.subnet_id == spec.subnet_id && n.address == spec.address)
        {
            return Err(Ec2Error::new(
                "CreateNetworkInterface",
                "InvalidIPAddress.InUse",
                format!("Address {} is in use.", spec.address),
            ));
        }
        let id = s.id("eni");
        s.interface_groups.insert(id.clone(), spec.group_id.clone());
        s.interfaces.insert(
            id.clone(),
            NetworkInterface {
                id: id.clone(),
                subnet_id: spec.subnet_id.clone(),
                vpc_id: subnet.vpc_id.clone(),
                zone: subnet.zone.clone(),
                address: spec.address,
                instance_id: None,
                tags: spec.tags.clone(),
            },
        );
        Ok(id)
    }

    async fn delete_network_interface(&self, id: &str) -> Ec2Result<()> {
        self.call("DeleteNetworkInterface")?;
        let mut s = self.lock();
        match s.interfaces.get(id) {
            None => Err(Ec2Error::new(
                "DeleteNetworkInterface",
                "InvalidNetworkInterfaceID.NotFound",
                id,
            )),
            Some(n) if n.instance_id.is_some() => Err(Ec2Error::new(
                "DeleteNetworkInterface",
                "InvalidNetworkInterface.InUse",
                format!("Interface {id} is currently in use."),
            )),
            Some(_) => {
                s.interfaces.remove(id);
                s.interface_groups.remove(id);
                for a in s.addresses.values_mut() {
                    if a.interface_id.as_deref() == Some(id) {
                        a.interface_id = None;
                        a.association_id = None;
                    }
                }
                Ok(())
            }
        }
    }

    async fn set_tags(&self, resource_id: &str, new: &Tags) -> Ec2Result<()> {
        self.call("CreateTags")?;
        let mut s = self.lock();
        let target = if let Some(n) = s.interfaces.get_mut(resource_id) {
            &mut n.tags
        } else if let Some(i) = s.instances.get_mut(resource_id) {
            &mut i.tags
        } else if let Some(g) = s.groups.get_mut(resource_id) {
            &mut g.tags
        } else if let Some(v) = s.volumes.get_mut(resource_id) {
            &mut v.tags
        } else if let Some(a) = s.addresses.get_mut(resource_id) {
            &mut a.tags
        } else {
            return Err(Ec2Error::new("CreateTags", "InvalidID", resource_id));
        };
        target.extend(new.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(())
    }

    async fn run_instance(&self, spec: &InstanceSpec) -> Ec2Result<String> {
        self.call("RunInstances")?;
        let mut s = self.lock();
        if let Some(id) = s.tokens.get(&spec.client_token) {
            return Ok(id.clone());
        }
        let eni = s
            .interfaces
            .get(&spec.interface_id)
            .cloned()
            .ok_or_else(|| {
                Ec2Error::new(
                    "RunInstances",
                    "InvalidNetworkInterfaceID.NotFound",
                    &spec.interface_id,
                )
            })?;
        if eni.instance_id.is_some() {
            return Err(Ec2Error::new(
                "RunInstances",
                "InvalidNetworkInterface.InUse",
                format!("Interface {} is in use.", eni.id),
            ));
        }
        let id = s.id("i");
        s.instances.insert(
            id.clone(),
            Instance {
                id: id.clone(),
                state: InstanceState::Pending,
                instance_type: spec.instance_type.clone(),
                zone: eni.zone.clone(),
                subnet_id: Some(eni.subnet_id.clone()),
                private_address: Some(eni.address),
                primary_interface: Some(eni.id.clone()),
                image_id: spec.image_id.clone(),
                tags: spec.tags.clone(),
            },
        );
        s.user_data.insert(id.clone(), spec.user_data.clone());
        s.tokens.insert(spec.client_token.clone(), id.clone());
        if let Some(n) = s.interfaces.get_mut(&spec.interface_id) {
            n.instance_id = Some(id.clone());
        }
        Ok(id)
    }

    async fn terminate_instances(&self, ids: &[String]) -> Ec2Result<()> {
        self.call("TerminateInstances")?;
        let mut s = self.lock();
        for id in ids {
            let Some(i) = s.instances.get_mut(id) else {
                return Err(Ec2Error::new(
                    "TerminateInstances",
                    "InvalidInstanceID.NotFound",
                    id,
                ));
            };
            i.state = InstanceState::Terminated;
            // The interface survives (DeleteOnTermination is off); EC2 detaches it a little later.
            if let Some(eni) = i.primary_interface.clone()
                && s.interfaces.contains_key(&eni)
            {
                s.detaching.insert(eni, DETACH_AFTER_CALLS);
            }
            // Attached volumes survive too, detaching a while later.
            for v in s.volumes.values_mut() {
                if let Some(a) = v.attachment.as_mut()
                    && &a.instance_id == id
                {
                    a.state = AttachmentState::Detaching;
                }
            }
        }
        Ok(())
    }

    async fn stop_instances(&self, ids: &[String]) -> Ec2Result<()> {
        self.call("StopInstances")?;
        let mut s = self.lock();
        for id in ids {
            let i = s
                .instances
                .get_mut(id)
                .ok_or_else(|| Ec2Error::new("StopInstances", "InvalidInstanceID.NotFound", id))?;
            match i.state {
                InstanceState::Pending | InstanceState::Running => {
                    i.state = InstanceState::Stopping
                }
                InstanceState::Stopping | InstanceState::Stopped => {}
                other => {
                    return Err(Ec2Error::new(
                        "StopInstances",
                        "IncorrectInstanceState",
                        format!("instance {id} is {}", other.as_str()),
                    ));
                }
            }
        }
        Ok(())
    }

    async fn start_instances(&self, ids: &[String]) -> Ec2Result<()> {
        self.call("StartInstances")?;
        let mut s = self.lock();
        for id in ids {
            let i = s
                .instances
                .get_mut(id)
                .ok_or_else(|| Ec2Error::new("StartInstances", "InvalidInstanceID.NotFound", id))?;
            match i.state {
                InstanceState::Stopped => i.state = InstanceState::Pending,
                InstanceState::Pending | InstanceState::Running => {}
                other => {
                    return Err(Ec2Error::new(
                        "StartInstances",
                        "IncorrectInstanceState",
                        format!("instance {id} is {}", other.as_str()),
                    ));
                }
            }
        }
        Ok(())
    }

    async fn modify_instance(&self, id: &str, change: &InstanceChange) -> Ec2Result<()> {
        self.call("ModifyInstanceAttribute")?;
        let mut s = self.lock();
        let i = s.instances.get_mut(id).ok_or_else(|| {
            Ec2Error::new("ModifyInstanceAttribute", "InvalidInstanceID.NotFound", id)
        })?;
        if i.state != InstanceState::Stopped {
            return Err(Ec2Error::new(
                "ModifyInstanceAttribute",
                "IncorrectInstanceState",
                format!("The instance '{id}' is not in the 'stopped' state."),
            ));
        }
        if let Some(t) = &change.instance_type {
            i.instance_type = t.clone();
        }
        if let Some(u) = &change.user_data {
            s.user_data.insert(id.to_string(), u.clone());
        }
        Ok(())
    }

    async fn find_volumes(&self, cluster: &str) -> Ec2Result<Vec<Volume>> {
        self.call("DescribeVolumes")?;
        let s = self.lock();
        Ok(s.volumes
            .values()
            .filter(|v| has_cluster(&v.tags, cluster) && v.tags.contains_key(tags::VOLUME))
            .cloned()
            .collect())
    }

    async fn create_volume(&self, spec: &DataVolumeSpec) -> Ec2Result<String> {
        self.call("CreateVolume")?;
        let mut s = self.lock();
        if let Some(id) = s.volume_tokens.get(&spec.client_token) {
            return Ok(id.clone());
        }
        let id = s.id("vol");
        s.volumes.insert(
            id.clone(),
            Volume {
                id: id.clone(),
                zone: spec.zone.clone(),
                state: VolumeState::Creating,
                size_gib: spec.size_gib,
                iops: spec.iops,
                throughput_mibps: spec.throughput_mibps,
                attachment: None,
                tags: spec.tags.clone(),
            },
        );
        s.volume_tokens
            .insert(spec.client_token.clone(), id.clone());
        Ok(id)
    }

    async fn attach_volume(
        &self,
        volume_id: &str,
        instance_id: &str,
        device: &str,
    ) -> Ec2Result<()> {
        const OP: &str = "AttachVolume";
        self.call(OP)?;
        let mut s = self.lock();
        let i = s
            .instances
            .get(instance_id)
            .cloned()
            .ok_or_else(|| Ec2Error::new(OP, "InvalidInstanceID.NotFound", instance_id))?;
        if !matches!(i.state, InstanceState::Running | InstanceState::Stopped) {
            return Err(Ec2Error::new(
                OP,
                "IncorrectState",
                format!("Instance '{instance_id}' is not 'running' or 'stopped'."),
            ));
        }
        let v = s
            .volumes
            .get_mut(volume_id)
            .ok_or_else(|| Ec2Error::new(OP, "InvalidVolume.NotFound", volume_id))?;
        if v.zone != i.zone {
            return Err(Ec2Error::new(
                OP,
                "InvalidVolume.ZoneMismatch",
                format!(
                    "The volume '{volume_id}' is not in the same availability zone as instance '{instance_id}'"
                ),
            ));
        }
        if v.state != VolumeState::Available || v.attachment.is_some() {
            return Err(Ec2Error::new(
                OP,
                "VolumeInUse",
                format!("vol '{volume_id}' is already attached to an instance"),
            ));
        }
        v.state = VolumeState::InUse;
        v.attachment = Some(VolumeAttachment {
            instance_id: instance_id.to_string(),
            device: device.to_string(),
            state: AttachmentState::Attaching,
        });
        Ok(())
    }

    async fn modify_volume(&self, volume_id: &str, to: &VolumeSize) -> Ec2Result<()> {
        const OP: &str = "ModifyVolume";
        self.call(OP)?;
        let mut s = self.lock();
        let v = s
            .volumes
            .get_mut(volume_id)
            .ok_or_else(|| Ec2Error::new(OP, "InvalidVolume.NotFound", volume_id))?;
        if to.size_gib < v.size_gib {
            return Err(Ec2Error::new(
                OP,
                "InvalidParameterValue",
                "New size cannot be smaller than existing size",
            ));
        }
        v.size_gib = to.size_gib;
        v.iops = to.iops;
        v.throughput_mibps = to.throughput_mibps;
        Ok(())
    }

    async fn delete_volume(&self, volume_id: &str) -> Ec2Result<()> {
        const OP: &str = "DeleteVolume";
        self.call(OP)?;
        let mut s = self.lock();
        match s.volumes.get(volume_id) {
            None => Err(Ec2Error::new(OP, "InvalidVolume.NotFound", volume_id)),
            Some(v) if v.attachment.is_some() || v.state != VolumeState::Available => {
                Err(Ec2Error::new(
                    OP,
                    "VolumeInUse",
                    format!("Volume {volume_id} is currently attached to an instance"),
                ))
            }
            Some(_) => {
                s.volumes.remove(volume_id);
                Ok(())
            }
        }
    }

    async fn dry_run(&self, call: &DryRun) -> Ec2Result<bool> {
        self.call("DryRun")?;
        Ok(!self.lock().denied.iter().any(|d| d == call.operation()))
    }

    async fn instance_type_offerings(
        &self,
        types: &[String],
        zones: &[String],
    ) -> Ec2Result<Vec<(String, String)>> {
        self.call("DescribeInstanceTypeOfferings")?;
        let s = self.lock();
        let mut out = Vec::new();
        for t in types {
            for z in zones {
                let offered = s
                    .instance_types
                    .get(t)
                    .is_none_or(|(_, offered)| offered.contains(z));
                if offered {
                    out.push((t.clone(), z.clone()));
                }
            }
        }
        Ok(out)
    }

    async fn instance_type_architectures(
        &self,
        types: &[String],
    ) -> Ec2Result<BTreeMap<String, Vec<String>>> {
        self.call("DescribeInstanceTypes")?;
        let s = self.lock();
        Ok(types
            .iter()
            .map(|t| {
                let arch = s
                    .instance_types
                    .get(t)
                    .map_or("x86_64".to_string(), |(a, _)| a.clone());
                (t.clone(), vec![arch])
            })
            .collect())
    }

    async fn describe_image(&self, id: &str) -> Ec2Result<Option<Image>> {
        self.call("DescribeImages")?;
        Ok(self.lock().images.get(id).cloned())
    }

    async fn resolve_parameter(&self, name: &str) -> Ec2Result<String> {
        self.call("GetParameter")?;
        self.lock()
            .parameters
            .get(name)
            .cloned()
            .ok_or_else(|| Ec2Error::new("GetParameter", "ParameterNotFound", name))
    }

    async fn user_data(&self, instance_id: &str) -> Ec2Result<Option<Vec<u8>>> {
        self.call("DescribeInstanceAttribute")?;
        Ok(self.lock().user_data.get(instance_id).cloned())
    }

    async fn create_parameter(&self, name: &str, value: &str) -> Ec2Result<Option<String>> {
        self.call("PutParameter")?;
        let mut s = self.lock();
        if let Some(held) = s.parameters.get(name) {
            return Ok(Some(held.clone()));
        }
        s.parameters.insert(name.into(), value.into());
        Ok(None)
    }

    async fn delete_parameter(&self, name: &str) -> Ec2Result<()> {
        self.call("DeleteParameter")?;
        self.lock().parameters.remove(name);
        Ok(())
    }

    fn calls(&self) -> BTreeMap<String, u64> {
        self.calls.snapshot()
    }
}
