//! Executes a Plan against EC2 in dependency waves: security group → network interfaces →
//! Elastic IPs (zones behind an internet gateway) → data volumes → new instances (bounded
//! concurrency), each with its volume attached → the roll of nodes that change (one at a time,
//! ZooKeeper first, behind health gates: roll.rs decides, health.rs observes) → replicas moved
//! off brokers that leave and, when asked, onto brokers that join (drain.rs) → removal of what
//! the topology no longer has. Every resource is tagged at creation, so an interrupted apply
//! leaves nothing unknown behind and the next plan picks up where it stopped. Data volumes are
//! never deleted here: only `destroy` deletes them.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;

use crate::cluster::Role;
use crate::ec2::{
    Address, AttachmentState, DataVolumeSpec, Ec2, Ec2Error, Ec2Result, InstanceChange,
    InstanceSpec, InstanceState, InterfaceSpec, Rule, SecurityGroupSpec, VolumeSize, VolumeState,
    tags,
};
use crate::operations::health::Health;
use crate::operations::roll::{self, Decision};
use crate::progress::Reporter;
use crate::provision::desired::{DATA_DEVICE, client_token, volume_token};
use crate::provision::plan::{Action, NodeChange, OrphanKind, Plan};
use crate::render::with_data_volume;

/// The flag that rolls without health gates, for a cluster that is already down.
pub const SKIP_GATES_FLAG: &str = "--skip-health-gates";

/// How a roll learns that it may go on.
pub struct Gates<'a> {
    /// Where health is read; `None` skips every gate (the cluster is already down).
    pub health: Option<&'a dyn Health>,
    /// How long one gate waits before the roll stops.
    pub timeout: Duration,
    /// Pause between two readings of a gate.
    pub poll: Duration,
    /// What happens to replicas when brokers leave or join (drain.rs).
    pub moves: crate::operations::drain::Moves,
}

impl Gates<'_> {
    /// No gates: for a cluster that is already down (and unit tests without one).
    pub fn skipped() -> Gates<'static> {
        Gates {
            health: None,
            timeout: Duration::ZERO,
            poll: Duration::ZERO,
            moves: crate::operations::drain::Moves::default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// Requests in flight at once within a wave.
    pub parallelism: usize,
    /// Pause between polls while waiting for instance states.
    pub poll: Duration,
    /// How long to wait for instances to reach a state.
    pub timeout: Duration,
    /// Tests only: launch on a kept interface without waiting for EC2 to detach it from the
    /// terminated instance, and release a NAT gateway's Elastic IP without waiting for EC2 to
    /// delete the gateway, to show that the fake (like EC2) then refuses the call.
    pub skip_detach_wait: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            parallelism: 16,
            poll: Duration::from_secs(5),
            timeout: Duration::from_secs(900),
            skip_detach_wait: false,
        }
    }
}

/// One resource that failed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub resource: String,
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
/// The command that ran it says how to finish (apply and destroy each name themselves).
#[error("{stage} failed for {}:\n{}", failures.len(), failures.iter().map(|f| format!("  {}: {}", f.resource, f.error)).collect::<Vec<_>>().join("\n"))]
pub struct ApplyError {
    pub stage: &'static str,
    pub failures: Vec<Failure>,
}

impl ApplyError {
    /// A failure of one resource (or one request naming several).
    pub fn one(stage: &'static str, resource: impl Into<String>, error: impl ToString) -> Self {
        ApplyError {
            stage,
            failures: vec![Failure {
                resource: resource.into(),
                error: error.to_string(),
            }],
        }
    }
}

/// What apply did, for the summary line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub launched: Vec<String>,
    pub terminated: Vec<String>,
    /// Instances stopped, changed and started again in place.
    pub restarted: Vec<String>,
    pub volumes_created: usize,
    pub interfaces_created: usize,
    pub interfaces_deleted: usize,
    pub addresses_allocated: usize,
    pub addresses_released: usize,
    /// Replicas Kafka was asked to move (drains and rebalances).
    pub replicas_moved: usize,
    /// Terminated brokers unregistered from the KRaft controllers, and the commands that
    /// unregister those apply could not (it ran without health gates).
    pub registrations: crate::operations::drain::Registrations,
}

struct Run<'a> {
    ec2: &'a dyn Ec2,
    plan: &'a Plan,
    settings: &'a Settings,
    gates: &'a Gates<'a>,
    reporter: &'a dyn Reporter,
    outcome: Outcome,
    /// Node → its data volume, once it exists.
    volumes: BTreeMap<String, String>,
    /// The ids of the network kcluster creates, for the ids the plan showed before it existed.
    network: crate::provision::network::apply::Made,
}

/// Executes `plan`. On failure, the error lists every resource that failed in the failing wave.
pub async fn execute(
    ec2: &dyn Ec2,
    plan: &Plan,
    settings: &Settings,
    gates: &Gates<'_>,
    reporter: &dyn Reporter,
) -> Result<Outcome, ApplyError> {
    let network = match &plan.network {
        Some(n) => {
            crate::provision::network::apply::create(ec2, &plan.cluster, n, settings, reporter)
                .await?
        }
        None => Default::default(),
    };
    let mut run = Run {
        ec2,
        plan,
        settings,
        gates,
        reporter,
        outcome: Outcome::default(),
        volumes: BTreeMap::new(),
        network,
    };
    run.keep_quorum_members()?;
    crate::operations::drain::refuse_early(plan, gates).await?;
    let group_id = run.group().await?;
    let mut interfaces = run.create_interfaces(&group_id).await?;
    run.public_addresses(&interfaces).await?;
    run.prepare_volumes(&interfaces).await?;
    run.launch_new(&interfaces).await?;
    run.roll(&group_id, &mut interfaces).await?;
    run.outcome.replicas_moved = crate::operations::drain::carry_out(plan, gates, reporter).await?;
    run.remove().await?;
    run.outcome.registrations = crate::operations::drain::unregister(plan, gates).await?;
    if let Some(n) = plan.network.as_ref().filter(|n| !n.orphans.is_empty()) {
        crate::provision::network::apply::remove(ec2, &plan.cluster, &n.remove, settings, reporter)
            .await?;
    }
    Ok(run.outcome)
}

impl Run<'_> {
    async fn group(&mut self) -> Result<String, ApplyError> {
        let g = &self.plan.group;
        const STAGE: &str = "security group";
        let resource = format!("security_group.{}", g.name);
        let id = match (&g.id, g.action) {
            (Some(id), _) => id.clone(),
            (None, _) => {
                self.reporter.phase("create security group", 1);
                let spec = SecurityGroupSpec {
                    name: g.name.clone(),
                    description: g.description.clone(),
                    vpc_id: self.network.resolve(&g.vpc_id),
                    tags: g.tags.clone(),
                };
                let id = match self.ec2.create_security_group(&spec).await {
                    Ok(id) => id,
                    // A retry after EC2 created the group but its answer was lost: the group
                    // with kcluster's name and the cluster's tag in the VPC is the one it made.
                    Err(e) if e.code == "InvalidGroup.Duplicate" => self
                        .own_group(&spec)
                        .await?
                        .ok_or_else(|| ApplyError::one(STAGE, &resource, e))?,
                    Err(e) => return Err(ApplyError::one(STAGE, &resource, e)),
                };
                self.reporter.step(&resource);
                self.reporter.finish();
                id
            }
        };
        if !g.revoke.is_empty() {
            self.ec2
                .revoke_ingress(&id, &g.revoke)
                .await
                .map_err(|e| ApplyError::one(STAGE, &resource, e))?;
        }
        if !g.authorize.is_empty() {
            match self.ec2.authorize_ingress(&id, &g.authorize).await {
                Ok(()) => {}
                // EC2 adds all rules of a request or none. A duplicate means a retry after an
                // answer that was lost, or a rule added meanwhile: add only what is missing.
                Err(e) if e.code == "InvalidPermission.Duplicate" => {
                    let have = self
                        .ec2
                        .find_security_groups(&self.plan.cluster)
                        .await
                        .map_err(|e| ApplyError::one(STAGE, &resource, e))?
                        .into_iter()
                        .find(|x| x.id == id)
                        .map(|x| x.rules)
                        .unwrap_or_default();
                    let missing: Vec<Rule> = g
                        .authorize
                        .iter()
                        .filter(|r| !have.contains(r))
                        .cloned()
                        .collect();
                    if !missing.is_empty() {
                        self.ec2
                            .authorize_ingress(&id, &missing)
                            .await
                            .map_err(|e| ApplyError::one(STAGE, &resource, e))?;
                    }
                }
                Err(e) => return Err(ApplyError::one(STAGE, &resource, e)),
            }
        }
        Ok(id)
    }

    /// The id of the group `spec` describes if it exists with the cluster's tag.
    async fn own_group(&self, spec: &SecurityGroupSpec) -> Result<Option<String>, ApplyError> {
        let groups = self
            .ec2
            .find_security_groups(&self.plan.cluster)
            .await
            .map_err(|e| {
                ApplyError::one("security group", format!("security_group.{}", spec.name), e)
            })?;
        Ok(groups
            .into_iter()
            .find(|g| g.name == spec.name && g.vpc_id == spec.vpc_id)
            .map(|g| g.id))
    }

    fn interface_spec(&self, n: &NodeChange, group_id: &str) -> InterfaceSpec {
        let mut t = n.desired.interface_tags.clone();
        t.insert(tags::GENERATION.into(), n.generation.to_string());
        InterfaceSpec {
            subnet_id: self.network.resolve(&n.desired.subnet_id),
            address: n.desired.node.address,
            group_id: group_id.to_string(),
            description: format!("kcluster {} {}", self.plan.cluster, n.node),
            tags: t,
        }
    }

    fn instance_spec(&self, n: &NodeChange, interface_id: &str) -> InstanceSpec {
        let d = &n.desired;
        let mut t = d.instance_tags.clone();
        t.insert(tags::GENERATION.into(), n.generation.to_string());
        InstanceSpec {
            image_id: d.image.clone(),
            instance_type: d.instance_type.clone(),
            interface_id: interface_id.to_string(),
            zone: d.node.zone.clone(),
            user_data: self.user_data(n),
            volumes: d.volumes.clone(),
            key_name: d.key_name.clone(),
            client_token: client_token(&self.plan.cluster, &n.node, interface_id, n.generation),
            tags: t,
        }
    }

    /// The node's user-data with its data volume's id in it.
    fn user_data(&self, n: &NodeChange) -> Vec<u8> {
        let volume = self.volumes.get(&n.node).map_or("", String::as_str);
        with_data_volume(&n.desired.document, volume)
    }

    /// Creates the data volumes of nodes that have none (in parallel, each with a client token
    /// so a retry never makes a second one) and waits until they are available; grows or retunes
    /// those the topology changed.
    async fn prepare_volumes(
        &mut self,
        interfaces: &BTreeMap<String, String>,
    ) -> Result<(), ApplyError> {
        for n in &self.plan.nodes {
            if let Some(id) = &n.volume_id {
                self.volumes.insert(n.node.clone(), id.clone());
            }
        }
        let todo: Vec<(String, DataVolumeSpec)> = self
            .plan
            .nodes
            .iter()
            .filter(|n| n.volume == Action::Create)
            .filter_map(|n| {
                let v = n.desired.data_volume.as_ref()?;
                // A node whose interface is replaced gets its volume with its new interface.
                let eni = interfaces.get(&n.node).map_or("new", String::as_str);
                let eni = if n.interface == Action::Replace {
                    "replaced"
                } else {
                    eni
                };
                let spec = DataVolumeSpec {
                    zone: n.zone.clone(),
                    size_gib: v.size_gib,
                    iops: v.iops,
                    throughput_mibps: v.throughput_mibps,
                    client_token: volume_token(&self.plan.cluster, &n.node, &n.zone, eni),
                    tags: v.tags.clone(),
                };
                Some((format!("volume.{}", n.node), spec))
            })
            .collect();
        if !todo.is_empty() {
            let ec2 = self.ec2;
            let (created, failures) = in_parallel(
                "create data volumes",
                todo,
                self.settings.parallelism,
                self.reporter,
                |spec| async move { ec2.create_volume(&spec).await },
            )
            .await;
            self.outcome.volumes_created += created.len();
            let ids: Vec<String> = created.iter().map(|(_, id)| id.clone()).collect();
            for (resource, id) in created {
                self.volumes
                    .insert(resource.trim_start_matches("volume.").to_string(), id);
            }
            let waited = self.wait_for_volumes(&ids, None).await;
            if !failures.is_empty() {
                return Err(ApplyError {
                    stage: "creating data volumes",
                    failures,
                });
            }
            waited?;
        }
        let modify: Vec<(String, (String, VolumeSize))> = self
            .plan
            .nodes
            .iter()
            .filter(|n| n.volume == Action::Update)
            .filter(|n| n.volume_reasons.iter().any(|r| !r.starts_with("attach")))
            .filter_map(|n| {
                let v = n.desired.data_volume.as_ref()?;
                let to = VolumeSize {
                    size_gib: v.size_gib,
                    iops: v.iops,
                    throughput_mibps: v.throughput_mibps,
                };
                Some((format!("volume.{}", n.node), (n.volume_id.clone()?, to)))
            })
            .collect();
        if !modify.is_empty() {
            // EBS never shrinks a volume: a smaller size in the topology keeps the current one.
            let current = self
                .ec2
                .find_volumes(&self.plan.cluster)
                .await
                .map_err(|e| ApplyError::one("changing data volumes", "volumes", e))?;
            let modify: Vec<(String, (String, VolumeSize))> = modify
                .into_iter()
                .map(|(resource, (id, mut to))| {
                    if let Some(v) = current.iter().find(|v| v.id == id) {
                        to.size_gib = to.size_gib.max(v.size_gib);
                    }
                    (resource, (id, to))
                })
                .collect();
            let ec2 = self.ec2;
            let (_, failures) = in_parallel(
                "change data volumes",
                modify,
                self.settings.parallelism,
                self.reporter,
                |(id, to)| async move { ec2.modify_volume(&id, &to).await },
            )
            .await;
            if !failures.is_empty() {
                return Err(ApplyError {
                    stage: "changing data volumes",
                    failures,
                });
            }
        }
        Ok(())
    }

    /// Attaches each (volume, instance) pair not attached yet, waiting first for a volume still
    /// detaching from a terminated instance, then waits until every one is attached.
    async fn attach(&self, pairs: &[(String, String)]) -> Result<(), ApplyError> {
        const STAGE: &str = "attaching data volumes";
        if pairs.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = pairs.iter().map(|(v, _)| v.clone()).collect();
        let found = self
            .ec2
            .find_volumes(&self.plan.cluster)
            .await
            .map_err(|e| ApplyError::one(STAGE, ids.join(", "), e))?;
        let mut to_attach = Vec::new();
        let mut detaching = Vec::new();
        for (vol, instance) in pairs {
            match found
                .iter()
                .find(|v| &v.id == vol)
                .and_then(|v| v.attachment.as_ref())
            {
                Some(a) if &a.instance_id == instance => {}
                Some(_) => {
                    detaching.push(vol.clone());
                    to_attach.push((vol.clone(), instance.clone()));
                }
                None => to_attach.push((vol.clone(), instance.clone())),
            }
        }
        self.wait_for_volumes(&detaching, None).await?;
        let ec2 = self.ec2;
        let (_, failures) = in_parallel(
            "attach data volumes",
            to_attach
                .into_iter()
                .map(|(v, i)| (format!("{v} to {i}"), (v, i)))
                .collect(),
            self.settings.parallelism,
            self.reporter,
            |(v, i)| async move { ec2.attach_volume(&v, &i, DATA_DEVICE).await },
        )
        .await;
        if !failures.is_empty() {
            return Err(ApplyError {
                stage: STAGE,
                failures,
            });
        }
        for (vol, instance) in pairs {
            self.wait_for_volumes(std::slice::from_ref(vol), Some(instance))
                .await?;
        }
        Ok(())
    }

    /// Polls the cluster's volumes (one Describe per poll) until each of `ids` is available and
    /// free, or, with `on`, attached to that instance.
    async fn wait_for_volumes(&self, ids: &[String], on: Option<&str>) -> Result<(), ApplyError> {
        const STAGE: &str = "waiting for data volumes";
        if ids.is_empty() {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + self.settings.timeout;
        loop {
            let found = self
                .ec2
                .find_volumes(&self.plan.cluster)
                .await
                .map_err(|e| ApplyError::one(STAGE, ids.join(", "), e))?;
            let pending: Vec<String> = ids
                .iter()
                .filter_map(|id| {
                    let v = found.iter().find(|v| &v.id == id);
                    let done = v.is_some_and(|v| match on {
                        None => v.state == VolumeState::Available && v.attachment.is_none(),
                        Some(i) => v.attachment.as_ref().is_some_and(|a| {
                            a.instance_id == i && a.state == AttachmentState::Attached
                        }),
                    });
                    (!done).then(|| {
                        format!(
                            "{id} ({})",
                            v.map_or("not found".to_string(), |v| match &v.attachment {
                                Some(a) => format!("{:?} to {}", a.state, a.instance_id),
                                None => v.state.as_str().to_string(),
                            })
                        )
                    })
                })
                .collect();
            if pending.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                let want = on.map_or("available".to_string(), |i| format!("attached to {i}"));
                return Err(ApplyError::one(
                    STAGE,
                    pending.join(", "),
                    format!("not {want} after {:?}", self.settings.timeout),
                ));
            }
            tokio::time::sleep(self.settings.poll).await;
        }
    }

    /// Creates the interfaces of new nodes, in parallel. Returns node → interface id for every
    /// node whose interface exists and stays.
    async fn create_interfaces(
        &mut self,
        group_id: &str,
    ) -> Result<BTreeMap<String, String>, ApplyError> {
        let mut ids: BTreeMap<String, String> = self
            .plan
            .nodes
            .iter()
            .filter(|n| n.interface == Action::NoOp)
            .filter_map(|n| Some((n.node.clone(), n.interface_id.clone()?)))
            .collect();
        let todo: Vec<(String, InterfaceSpec)> = self
            .plan
            .nodes
            .iter()
            .filter(|n| n.interface == Action::Create)
            .map(|n| {
                (
                    format!("network_interface.{}", n.node),
                    self.interface_spec(n, group_id),
                )
            })
            .collect();
        if todo.is_empty() {
            return Ok(ids);
        }
        let ec2 = self.ec2;
        let (created, failures) = in_parallel(
            "create network interfaces",
            todo,
            self.settings.parallelism,
            self.reporter,
            |spec| async move { ec2.create_network_interface(&spec).await },
        )
        .await;
        self.outcome.interfaces_created += created.len();
        for (resource, id) in created {
            let node = resource
                .trim_start_matches("network_interface.")
                .to_string();
            ids.insert(node, id);
        }
        if !failures.is_empty() {
            return Err(ApplyError {
                stage: "creating network interfaces",
                failures,
            });
        }
        Ok(ids)
    }

    /// Gives every node behind an internet gateway its Elastic IP on its interface, in parallel,
    /// before its instance boots (its first boot installs packages and downloads Kafka).
    async fn public_addresses(
        &mut self,
        interfaces: &BTreeMap<String, String>,
    ) -> Result<(), ApplyError> {
        let todo: Vec<(String, (&NodeChange, String))> = self
            .plan
            .nodes
            .iter()
            .filter(|n| n.public_address != Action::NoOp && n.interface != Action::Replace)
            .filter_map(|n| {
                let eni = interfaces.get(&n.node)?.clone();
                Some((format!("public_address.{}", n.node), (n, eni)))
            })
            .collect();
        if todo.is_empty() {
            return Ok(());
        }
        let (ec2, cluster) = (self.ec2, self.plan.cluster.as_str());
        let (done, failures) = in_parallel(
            "allocate and associate Elastic IPs",
            todo,
            self.settings.parallelism,
            self.reporter,
            |(n, eni)| async move { public_address(ec2, cluster, n, &eni).await },
        )
        .await;
        self.outcome.addresses_allocated += done.iter().filter(|(_, new)| *new).count();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(ApplyError {
                stage: "giving nodes their Elastic IPs",
                failures,
            })
        }
    }

    /// Launches the instances of nodes that have none, in parallel, and waits until they run.
    async fn launch_new(
        &mut self,
        interfaces: &BTreeMap<String, String>,
    ) -> Result<(), ApplyError> {
        let todo: Vec<(String, (bool, InstanceSpec))> = self
            .plan
            .nodes
            .iter()
            .filter(|n| n.instance == Action::Create && n.interface != Action::Replace)
            .filter_map(|n| {
                let eni = interfaces.get(&n.node)?;
                // An interface that existed before this apply records the generation first,
                // so the launch's ClientToken is never used again.
                let record = n.interface == Action::NoOp;
                Some((
                    format!("instance.{}", n.node),
                    (record, self.instance_spec(n, eni)),
                ))
            })
            .collect();
        if todo.is_empty() {
            return self.attach(&self.kept_pairs()).await;
        }
        let kept: Vec<String> = todo
            .iter()
            .filter(|(_, (record, _))| *record)
            .map(|(_, (_, spec))| spec.interface_id.clone())
            .collect();
        self.wait_until_detached(&kept).await?;
        let ec2 = self.ec2;
        let (done, failures) = in_parallel(
            "launch instances",
            todo,
            self.settings.parallelism,
            self.reporter,
            |(record, spec)| async move {
                if record {
                    ec2.set_tags(&spec.interface_id, &generation_tag(&spec))
                        .await?;
                }
                ec2.run_instance(&spec).await
            },
        )
        .await;
        let mut pairs: Vec<(String, String)> = done
            .iter()
            .filter_map(|(resource, id)| {
                let node = resource.trim_start_matches("instance.");
                Some((self.volumes.get(node)?.clone(), id.clone()))
            })
            .collect();
        let mut launched: Vec<String> = done.into_iter().map(|(_, id)| id).collect();
        launched.sort();
        self.outcome.launched.extend(launched.iter().cloned());
        // Wait for what did launch even when some failed, so the report is complete.
        let waited = self.wait_for(&launched, InstanceState::Running).await;
        if !failures.is_empty() {
            return Err(ApplyError {
                stage: "launching instances",
                failures,
            });
        }
        waited?;
        pairs.extend(self.kept_pairs());
        self.attach(&pairs).await
    }

    /// (volume, instance) of nodes whose instance stays and does not hold its volume yet.
    fn kept_pairs(&self) -> Vec<(String, String)> {
        self.plan
            .nodes
            .iter()
            .filter(|n| n.instance == Action::NoOp)
            .filter(|n| n.volume_reasons.iter().any(|r| r.starts_with("attach")))
            .filter_map(|n| Some((self.volumes.get(&n.node)?.clone(), n.instance_id.clone()?)))
            .collect()
    }

    /// Rolls the nodes that change, one at a time: ZooKeeper first (followers, then the leader),
    /// then brokers (the active controller last), then Connect workers (by name). Each node waits for its role's gate before it
    /// stops and after it is back; a gate that times out stops the roll where it is.
    async fn roll(
        &mut self,
        group_id: &str,
        interfaces: &mut BTreeMap<String, String>,
    ) -> Result<(), ApplyError> {
        let todo: Vec<&NodeChange> = self
            .plan
            .nodes
            .iter()
            .filter(|n| {
                n.instance == Action::Update
                    || n.instance == Action::Replace
                    || n.interface == Action::Replace
            })
            .collect();
        if todo.is_empty() {
            return Ok(());
        }
        self.reporter
            .phase("roll nodes (one at a time)", todo.len());
        for role in Role::ALL {
            let mut left: Vec<&NodeChange> =
                todo.iter().copied().filter(|n| n.role == role).collect();
            if !left.is_empty() {
                self.reachable(role).await?;
            }
            while !left.is_empty() {
                let next = self.next_in_roll(role, &left).await?;
                let n = left.remove(next);
                self.gate(n, Moment::Before).await?;
                if n.instance == Action::Update {
                    self.restart_in_place(n).await?;
                } else {
                    self.replace_node(n, group_id, interfaces).await?;
                }
                self.gate(n, Moment::After).await?;
                self.reporter.step(&format!("instance.{}", n.node));
            }
        }
        self.reporter.finish();
        Ok(())
    }

    /// With gates on, refuses a plan that changes the members of a running quorum before
    /// anything is changed (see [`roll::membership_change`]).
    fn keep_quorum_members(&self) -> Result<(), ApplyError> {
        if self.gates.health.is_none() {
            return Ok(());
        }
        for role in Role::ALL
            .into_iter()
            .filter(|r| r.info().spread == crate::cluster::role::Spread::Quorum)
        {
            let mine = |n: &&NodeChange| n.role == role;
            let running: Vec<String> = self
                .plan
                .nodes
                .iter()
                .filter(mine)
                .filter(|n| n.instance_id.is_some())
                .map(|n| n.node.clone())
                .collect();
            let added: Vec<String> = self
                .plan
                .nodes
                .iter()
                .filter(mine)
                .filter(|n| n.instance_id.is_none() && n.volume_id.is_none())
                .map(|n| n.node.clone())
                .collect();
            let removed: Vec<String> = self
                .plan
                .orphans
                .iter()
                .filter(|o| o.kind == OrphanKind::Instance)
                .filter_map(|o| o.node.clone())
                .filter(|n| n.rsplit_once('-').and_then(|(r, _)| Role::parse(r)) == Some(role))
                .collect();
            if let Some(why) = roll::membership_change(role, &running, &added, &removed) {
                return Err(ApplyError::one(
                    "health gates",
                    format!("{} membership", role.as_str()),
                    format!(
                        "{why}. If the cluster is already down, `kcluster apply {SKIP_GATES_FLAG}` makes the change without gates. Nothing was changed."
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The nodes of `role` by name and address: what the ZooKeeper and Connect reads take.
    fn named(&self, role: Role) -> Vec<(String, std::net::Ipv4Addr)> {
        self.members(role)
            .into_iter()
            .map(|(n, a, _)| (n, a))
            .collect()
    }

    /// The nodes of `role` of the topology: name, address, id.
    fn members(&self, role: Role) -> Vec<(String, std::net::Ipv4Addr, u32)> {
        self.plan
            .nodes
            .iter()
            .filter(|n| n.role == role)
            .map(|n| (n.node.clone(), n.desired.node.address, n.desired.node.id))
            .collect()
    }

    /// Before a roll that needs gates: the role's nodes answer, or apply refuses, naming the
    /// flag for a cluster that is already down.
    async fn reachable(&self, role: Role) -> Result<(), ApplyError> {
        let Some(health) = self.gates.health else {
            return Ok(());
        };
        let members = self.members(role);
        let problem = match role {
            Role::Zookeeper => {
                let named = self.named(role);
                let seen = health.zookeeper(&named).await;
                seen.iter()
                    .all(|m| matches!(m.state, roll::ZkState::Down(_)))
                    .then(|| {
                        seen.iter()
                            .map(|m| format!("{}: {:?}", m.node, m.state))
                            .collect::<Vec<_>>()
                            .join("; ")
                    })
            }
            Role::Broker => {
                let addresses: Vec<std::net::Ipv4Addr> = members.iter().map(|m| m.1).collect();
                health.kafka(&addresses).await.err()
            }
            // The monitoring node holds no Kafka state: it rolls without a gate.
            Role::Monitoring => None,
            Role::Controller => {
                let addresses: Vec<std::net::Ipv4Addr> = members.iter().map(|m| m.1).collect();
                health.kraft(&addresses).await.err()
            }
            Role::Connect => {
                let named = self.named(role);
                let seen = health.connect(&named).await;
                seen.iter()
                    .all(|w| matches!(w.state, roll::ConnectState::Down(_)))
                    .then(|| {
                        seen.iter()
                            .map(|w| match &w.state {
                                roll::ConnectState::Down(why) => format!("{}: {why}", w.node),
                                roll::ConnectState::Up { .. } => format!("{}: up", w.node),
                            })
                            .collect::<Vec<_>>()
                            .join("; ")
                    })
            }
        };
        match problem {
            None => Ok(()),
            Some(seen) => Err(ApplyError::one(
                "health gates",
                format!("{role:?} nodes"),
                format!(
                    "no {} node answers ({seen}). Rolling a running cluster needs its health: run kcluster where it reaches the nodes' private addresses (a bastion, a VPN, a runner in the VPC). If the cluster is already down, `kcluster apply {SKIP_GATES_FLAG}` changes the nodes without gates. Nothing was changed.",
                    role.as_str()
                ),
            )),
        }
    }

    /// The index in `left` of the node to roll next, from the cluster as it is now: ZooKeeper's
    /// leader and Kafka's active controller last.
    async fn next_in_roll(&self, role: Role, left: &[&NodeChange]) -> Result<usize, ApplyError> {
        let Some(health) = self.gates.health else {
            return Ok(0);
        };
        let order = match role {
            Role::Zookeeper => {
                let members = self.named(role);
                let seen = health.zookeeper(&members).await;
                let names: Vec<String> = left.iter().map(|n| n.node.clone()).collect();
                roll::zookeeper_order(&names, &seen)
            }
            Role::Connect | Role::Monitoring => return Ok(0),
            Role::Controller => {
                let addresses: Vec<std::net::Ipv4Addr> =
                    self.members(role).iter().map(|m| m.1).collect();
                let leader = health.kraft(&addresses).await.ok().and_then(|q| q.leader);
                roll::controller_order(&Self::kafka_ids(left), leader)
            }
            Role::Broker => {
                let addresses: Vec<std::net::Ipv4Addr> =
                    self.members(role).iter().map(|m| m.1).collect();
                let controller = health
                    .kafka(&addresses)
                    .await
                    .ok()
                    .and_then(|v| v.controller);
                roll::broker_order(&Self::kafka_ids(left), controller)
            }
        };
        Ok(order
            .first()
            .and_then(|first| left.iter().position(|n| &n.node == first))
            .unwrap_or(0))
    }

    /// Each node's name and its Kafka `node.id` (brokers and KRaft controllers).
    fn kafka_ids(nodes: &[&NodeChange]) -> Vec<(String, i32)> {
        nodes
            .iter()
            .map(|n| {
                let id = n.role.info().node_id_base + n.desired.node.id;
                (n.node.clone(), id as i32)
            })
            .collect()
    }

    /// Waits until the gate of `n`'s role lets it go `when`; on timeout, stops the roll saying
    /// which node, which check, what was seen, and how to resume.
    async fn gate(&self, n: &NodeChange, when: Moment) -> Result<(), ApplyError> {
        let Some(health) = self.gates.health else {
            return Ok(());
        };
        let deadline = tokio::time::Instant::now() + self.gates.timeout;
        // The controller quorum as last read, for a restarted controller's progress.
        let mut earlier: Option<roll::QuorumView> = None;
        loop {
            let decision = match n.role {
                Role::Zookeeper => {
                    let members = self.named(Role::Zookeeper);
                    let seen = health.zookeeper(&members).await;
                    roll::zookeeper_whole(&seen, members.len())
                }
                Role::Broker => {
                    let addresses: Vec<std::net::Ipv4Addr> =
                        self.members(Role::Broker).iter().map(|m| m.1).collect();
                    let id = (n.role.info().node_id_base + n.desired.node.id) as i32;
                    // Back means the broker itself answers: a registration alone can be the
                    // stopped broker's, which ZooKeeper keeps until its session expires.
                    let asked = match when {
                        Moment::Before => addresses,
                        Moment::After => vec![n.desired.node.address],
                    };
                    match health.kafka(&asked).await {
                        Ok(view) => match when {
                            Moment::Before => roll::broker_can_stop(&view, id),
                            Moment::After => roll::broker_back(&view, id),
                        },
                        Err(e) => Decision::Wait {
                            check: "the brokers answer Kafka's Metadata request".into(),
                            seen: e,
                        },
                    }
                }
                Role::Monitoring => Decision::Go,
                Role::Controller => {
                    let members = self.members(Role::Controller);
                    let addresses: Vec<std::net::Ipv4Addr> = members.iter().map(|m| m.1).collect();
                    let voters: Vec<i32> = Self::kafka_ids(
                        &self
                            .plan
                            .nodes
                            .iter()
                            .filter(|c| c.role == Role::Controller)
                            .collect::<Vec<_>>(),
                    )
                    .into_iter()
                    .map(|(_, id)| id)
                    .collect();
                    match health.kraft(&addresses).await {
                        Ok(view) => {
                            let id = (n.role.info().node_id_base + n.desired.node.id) as i32;
                            let decision = match when {
                                Moment::Before => roll::kraft_whole(&view, &voters),
                                Moment::After => match roll::kraft_whole(&view, &voters) {
                                    Decision::Go => {
                                        roll::kraft_rejoined(earlier.as_ref(), &view, id)
                                    }
                                    wait => wait,
                                },
                            };
                            earlier = Some(view);
                            decision
                        }
                        Err(e) => Decision::Wait {
                            check: roll::KRAFT_CAUGHT_UP.into(),
                            seen: e,
                        },
                    }
                }
                // The same check before a worker stops and after it is back: every worker
                // answers, so no two are ever away at once.
                Role::Connect => {
                    let workers = self.named(Role::Connect);
                    let seen = health.connect(&workers).await;
                    roll::connect_group_whole(&seen, workers.len())
                }
            };
            let Decision::Wait { check, seen } = decision else {
                return Ok(());
            };
            if tokio::time::Instant::now() >= deadline {
                let state = match when {
                    Moment::Before => format!("{} was not touched", n.node),
                    Moment::After => format!("{} has been changed and runs", n.node),
                };
                return Err(ApplyError::one(
                    "health gate",
                    &n.node,
                    format!(
                        "{} {}: waited {:?} until {check}; last seen: {seen}. The roll stopped here and the cluster is left as it is ({state}). Once the cluster is healthy, run `kcluster apply` again: it resumes with the nodes still to change.",
                        when.as_str(),
                        n.node,
                        self.gates.timeout
                    ),
                ));
            }
            tokio::time::sleep(self.gates.poll).await;
        }
    }

    /// Stops the node's instance, changes its type and/or user-data while it is stopped, and
    /// starts it again: the same instance, volume and address. The bootstrap rewrites the node's
    /// files from the new user-data at boot.
    async fn restart_in_place(&mut self, n: &NodeChange) -> Result<(), ApplyError> {
        let resource = format!("instance.{}", n.node);
        let fail = |e: &dyn ToString| ApplyError::one("restarting nodes", &resource, e.to_string());
        let Some(id) = n.instance_id.clone() else {
            return Err(fail(&"it has no instance"));
        };
        let ids = std::slice::from_ref(&id);
        self.ec2.stop_instances(ids).await.map_err(|e| fail(&e))?;
        self.wait_for(ids, InstanceState::Stopped).await?;
        let change = InstanceChange {
            instance_type: n.in_place.as_ref().and_then(|p| p.instance_type.clone()),
            user_data: n
                .in_place
                .as_ref()
                .is_some_and(|p| p.files)
                .then(|| self.user_data(n)),
        };
        if change != InstanceChange::default() {
            self.ec2
                .modify_instance(&id, &change)
                .await
                .map_err(|e| fail(&e))?;
        }
        let mut t = crate::ec2::Tags::new();
        t.insert(tags::CONFIG.into(), n.desired.config_hash.clone());
        self.ec2.set_tags(&id, &t).await.map_err(|e| fail(&e))?;
        self.ec2.start_instances(ids).await.map_err(|e| fail(&e))?;
        self.wait_for(ids, InstanceState::Running).await?;
        if let Some(v) = self.volumes.get(&n.node).cloned() {
            self.attach(&[(v, id.clone())]).await?;
        }
        self.outcome.restarted.push(id);
        Ok(())
    }

    /// Replaces the node's instance with a new one on the same interface (a new one when the
    /// node moves) and the same data volume (a new one when it moves to another zone).
    async fn replace_node(
        &mut self,
        n: &NodeChange,
        group_id: &str,
        interfaces: &mut BTreeMap<String, String>,
    ) -> Result<(), ApplyError> {
        let resource = format!("instance.{}", n.node);
        let fail = |e: &dyn ToString| ApplyError::one("replacing nodes", &resource, e.to_string());
        // 1. Record the new generation on the interface that stays, before anything stops.
        if n.interface == Action::NoOp
            && let Some(eni) = &n.interface_id
        {
            let t = generation_tag(&self.instance_spec(n, eni));
            self.ec2.set_tags(eni, &t).await.map_err(|e| fail(&e))?;
        }
        // 2. Stop the old instance and wait until it is gone.
        if let Some(old) = &n.instance_id {
            self.ec2
                .terminate_instances(std::slice::from_ref(old))
                .await
                .map_err(|e| fail(&e))?;
            self.outcome.terminated.push(old.clone());
            self.wait_for(std::slice::from_ref(old), InstanceState::Terminated)
                .await?;
        }
        // 3. A moved node gets a new interface in its new subnet.
        let eni = if n.interface == Action::Replace {
            if let Some(old) = &n.interface_id {
                // Its Elastic IP moves with the node: let go of the old interface first.
                if let Some(association) = &n.address_association {
                    self.ec2
                        .disassociate_address(association)
                        .await
                        .map_err(|e| fail(&e))?;
                }
                self.delete_interface(old).await.map_err(|e| fail(&e))?;
                self.outcome.interfaces_deleted += 1;
            }
            let id = self
                .ec2
                .create_network_interface(&self.interface_spec(n, group_id))
                .await
                .map_err(|e| fail(&e))?;
            self.outcome.interfaces_created += 1;
            interfaces.insert(n.node.clone(), id.clone());
            if n.desired.public_address {
                let moved = NodeChange {
                    address_association: None,
                    ..n.clone()
                };
                let new = public_address(self.ec2, &self.plan.cluster, &moved, &id)
                    .await
                    .map_err(|e| fail(&e))?;
                self.outcome.addresses_allocated += usize::from(new);
            }
            id
        } else {
            match interfaces.get(&n.node) {
                Some(id) => {
                    // EC2 detaches the interface some seconds after the termination.
                    self.wait_until_detached(std::slice::from_ref(id)).await?;
                    id.clone()
                }
                None => return Err(fail(&"its network interface is missing")),
            }
        };
        // 4. Launch the new generation, wait until it runs, and give it the node's volume.
        let id = self
            .ec2
            .run_instance(&self.instance_spec(n, &eni))
            .await
            .map_err(|e| fail(&e))?;
        self.outcome.launched.push(id.clone());
        self.wait_for(std::slice::from_ref(&id), InstanceState::Running)
            .await?;
        if let Some(v) = self.volumes.get(&n.node).cloned() {
            self.attach(&[(v, id)]).await?;
        }
        Ok(())
    }

    /// Terminates duplicate and orphaned instances, then deletes orphaned interfaces.
    async fn remove(&mut self) -> Result<(), ApplyError> {
        let mut instances: Vec<String> = self
            .plan
            .nodes
            .iter()
            .flat_map(|n| n.duplicates.iter().cloned())
            .collect();
        instances.extend(
            self.plan
                .orphans
                .iter()
                .filter(|o| o.kind == OrphanKind::Instance)
                .map(|o| o.id.clone()),
        );
        let interfaces: Vec<String> = self
            .plan
            .orphans
            .iter()
            .filter(|o| o.kind == OrphanKind::NetworkInterface)
            .map(|o| o.id.clone())
            .collect();
        let addresses: Vec<(String, Option<String>)> = self
            .plan
            .orphans
            .iter()
            .filter(|o| o.kind == OrphanKind::ElasticIp)
            .map(|o| (o.id.clone(), o.association.clone()))
            .collect();
        if instances.is_empty() && interfaces.is_empty() && addresses.is_empty() {
            return Ok(());
        }
        if !instances.is_empty() {
            self.reporter.phase(
                "terminate instances the topology no longer has",
                instances.len(),
            );
            self.ec2
                .terminate_instances(&instances)
                .await
                .map_err(|e| ApplyError::one("terminating instances", instances.join(", "), e))?;
            self.outcome.terminated.extend(instances.iter().cloned());
            self.wait_for(&instances, InstanceState::Terminated).await?;
            for id in &instances {
                self.reporter.step(id);
            }
            self.reporter.finish();
        }
        let (ec2, settings) = (self.ec2, self.settings);
        if !addresses.is_empty() {
            let (released, failures) = in_parallel(
                "release Elastic IPs the topology no longer has",
                addresses
                    .into_iter()
                    .map(|(id, association)| (id.clone(), (id, association)))
                    .collect(),
                settings.parallelism,
                self.reporter,
                |(id, association)| async move {
                    release_address(ec2, &id, association.as_deref()).await
                },
            )
            .await;
            self.outcome.addresses_released += released.len();
            if !failures.is_empty() {
                return Err(ApplyError {
                    stage: "releasing Elastic IPs",
                    failures,
                });
            }
        }
        let (deleted, failures) = in_parallel(
            "delete network interfaces the topology no longer has",
            interfaces.into_iter().map(|id| (id.clone(), id)).collect(),
            settings.parallelism,
            self.reporter,
            |id| async move { delete_interface(ec2, &id, settings).await },
        )
        .await;
        self.outcome.interfaces_deleted += deleted.len();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(ApplyError {
                stage: "deleting network interfaces",
                failures,
            })
        }
    }

    /// Deletes an interface, retrying while EC2 still detaches it from a terminated instance.
    async fn delete_interface(&self, id: &str) -> Result<(), Ec2Error> {
        delete_interface(self.ec2, id, self.settings).await
    }

    async fn wait_for(&self, ids: &[String], state: InstanceState) -> Result<(), ApplyError> {
        wait_for(self.ec2, &self.plan.cluster, ids, state, self.settings).await
    }

    async fn wait_until_detached(&self, ids: &[String]) -> Result<(), ApplyError> {
        if self.settings.skip_detach_wait {
            return Ok(());
        }
        wait_until_detached(self.ec2, &self.plan.cluster, ids, self.settings).await
    }
}

/// When a gate is read: before the node stops, or after it is back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Moment {
    Before,
    After,
}

impl Moment {
    fn as_str(self) -> &'static str {
        match self {
            Moment::Before => "before stopping",
            Moment::After => "after restarting",
        }
    }
}

/// Polls the cluster's interfaces (one Describe call per poll) until none of `ids` is attached:
/// RunInstances on an interface still attached fails with `InvalidNetworkInterface.InUse`, and so
/// does DeleteNetworkInterface.
pub async fn wait_until_detached(
    ec2: &dyn Ec2,
    cluster: &str,
    ids: &[String],
    settings: &Settings,
) -> Result<(), ApplyError> {
    if ids.is_empty() {
        return Ok(());
    }
    const STAGE: &str = "waiting for network interfaces";
    let deadline = tokio::time::Instant::now() + settings.timeout;
    loop {
        let found = ec2
            .find_network_interfaces(cluster)
            .await
            .map_err(|e| ApplyError::one(STAGE, ids.join(", "), e))?;
        let attached: Vec<String> = found
            .iter()
            .filter(|n| ids.contains(&n.id))
            .filter_map(|n| Some(format!("{} (on {})", n.id, n.instance_id.as_ref()?)))
            .collect();
        if attached.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ApplyError::one(
                STAGE,
                attached.join(", "),
                format!(
                    "still attached after {:?}; EC2 detaches an interface once its instance has terminated",
                    settings.timeout
                ),
            ));
        }
        tokio::time::sleep(settings.poll).await;
    }
}

/// Puts the node's Elastic IP on `interface_id`: the one it has (moved from where it is
/// associated now), or a new one tagged as the node's. Returns whether one was allocated.
async fn public_address(
    ec2: &dyn Ec2,
    cluster: &str,
    n: &NodeChange,
    interface_id: &str,
) -> Result<bool, Ec2Error> {
    let (allocation, new) = match &n.address_id {
        Some(id) => {
            if let Some(association) = &n.address_association {
                ec2.disassociate_address(association).await?;
            }
            (id.clone(), false)
        }
        None => {
            let a = allocate_once(ec2, cluster, &n.node, &n.desired.interface_tags).await?;
            (a.allocation_id, true)
        }
    };
    ec2.associate_address(&allocation, interface_id).await?;
    Ok(new)
}

/// Allocates `node`'s Elastic IP. AllocateAddress takes no ClientToken and is never resent
/// blindly: after any failure EC2 may still have allocated the address (the answer was lost),
/// so the cluster's addresses are read and one tagged as the node's is taken before the
/// failure is reported. The plan found none for the node, so one found now is this call's.
pub async fn allocate_once(
    ec2: &dyn Ec2,
    cluster: &str,
    node: &str,
    tags: &crate::ec2::Tags,
) -> Ec2Result<Address> {
    match ec2.allocate_address(tags).await {
        Ok(a) => Ok(a),
        Err(e) => ec2
            .find_addresses(cluster)
            .await?
            .into_iter()
            .find(|a| a.tags.get(tags::NODE).map(String::as_str) == Some(node))
            .ok_or(e),
    }
}

/// Releases an Elastic IP, undoing its association first; one already gone is not an error.
pub async fn release_address(
    ec2: &dyn Ec2,
    allocation_id: &str,
    association: Option<&str>,
) -> Result<(), Ec2Error> {
    if let Some(a) = association {
        match ec2.disassociate_address(a).await {
            Err(e) if e.code != "InvalidAssociationID.NotFound" => return Err(e),
            _ => {}
        }
    }
    match ec2.release_address(allocation_id).await {
        Err(e) if e.code != "InvalidAllocationID.NotFound" => Err(e),
        _ => Ok(()),
    }
}

/// The generation tag of a launch, as its interface records it.
fn generation_tag(spec: &InstanceSpec) -> crate::ec2::Tags {
    spec.tags
        .iter()
        .filter(|(k, _)| k.as_str() == tags::GENERATION)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Runs `task` over named items with at most `parallelism` requests in flight, reporting a step
/// per item (a phase called `phase` around them). Returns the successes by name, and a failure
/// per item that failed, sorted by resource.
pub async fn in_parallel<T, R, F, Fut>(
    phase: &str,
    items: Vec<(String, T)>,
    parallelism: usize,
    reporter: &dyn Reporter,
    task: F,
) -> (Vec<(String, R)>, Vec<Failure>)
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = Result<R, Ec2Error>>,
{
    reporter.phase(phase, items.len());
    let task = &task;
    let results: Vec<(String, Result<R, Ec2Error>)> = futures::stream::iter(items)
        .map(|(name, item)| async move {
            let r = task(item).await;
            reporter.step(&name);
            (name, r)
        })
        .buffer_unordered(parallelism.max(1))
        .collect()
        .await;
    reporter.finish();
    let mut done = Vec::new();
    let mut failures = Vec::new();
    for (name, r) in results {
        match r {
            Ok(v) => done.push((name, v)),
            Err(e) => failures.push(Failure {
                resource: name,
                error: e.to_string(),
            }),
        }
    }
    done.sort_by(|a, b| a.0.cmp(&b.0));
    failures.sort_by(|a, b| a.resource.cmp(&b.resource));
    (done, failures)
}

/// Runs `delete` until it succeeds or EC2 says the resource is gone (`gone`), waiting while EC2
/// still holds it (`busy`, e.g. an interface detaching from a terminated instance) up to the
/// settings' timeout; the last `busy` error is returned when time runs out.
pub async fn delete_when_free<F, Fut>(
    settings: &Settings,
    gone: &str,
    busy: &str,
    delete: F,
) -> Result<(), Ec2Error>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), Ec2Error>>,
{
    let deadline = tokio::time::Instant::now() + settings.timeout;
    loop {
        match delete().await {
            Ok(()) => return Ok(()),
            Err(e) if e.code == gone => return Ok(()),
            Err(e) if e.code == busy && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(settings.poll).await;
            }
            Err(e) if e.code == busy => {
                let message = format!(
                    "{} (still in use after waiting {:?}; --wait-seconds or KCLUSTER_WAIT_SECONDS sets the wait)",
                    e.message, settings.timeout
                );
                return Err(Ec2Error { message, ..e });
            }
            Err(e) => return Err(e),
        }
    }
}

/// Deletes a network interface, waiting while EC2 still detaches it from a terminated instance.
pub async fn delete_interface(
    ec2: &dyn Ec2,
    id: &str,
    settings: &Settings,
) -> Result<(), Ec2Error> {
    delete_when_free(
        settings,
        "InvalidNetworkInterfaceID.NotFound",
        "InvalidNetworkInterface.InUse",
        || ec2.delete_network_interface(id),
    )
    .await
}

/// Polls the cluster's instances (one Describe call per poll, whatever the count) until every id
/// in `ids` has reached `state`.
pub async fn wait_for(
    ec2: &dyn Ec2,
    cluster: &str,
    ids: &[String],
    state: InstanceState,
    settings: &Settings,
) -> Result<(), ApplyError> {
    if ids.is_empty() {
        return Ok(());
    }
    let deadline = tokio::time::Instant::now() + settings.timeout;
    loop {
        let found = ec2
            .find_instances(cluster)
            .await
            .map_err(|e| ApplyError::one("waiting for instances", ids.join(", "), e))?;
        let pending: Vec<String> = ids
            .iter()
            .filter_map(|id| {
                let s = found.iter().find(|i| &i.id == id).map(|i| i.state);
                // An instance that is gone from the listing has long been terminated.
                let done = match (s, state) {
                    (None, InstanceState::Terminated) => true,
                    (Some(s), want) => s == want,
                    (None, _) => false,
                };
                if done {
                    None
                } else {
                    Some(format!(
                        "{id} ({})",
                        s.map_or("not found", InstanceState::as_str)
                    ))
                }
            })
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        // A launch that ends terminated will never run: say so now.
        if state == InstanceState::Running
            && let Some(dead) = found.iter().find(|i| {
                ids.contains(&i.id)
                    && matches!(
                        i.state,
                        InstanceState::Terminated | InstanceState::ShuttingDown
                    )
            })
        {
            return Err(ApplyError::one(
                "waiting for instances",
                dead.id.clone(),
                "terminated right after launch (check the AMI, the instance type and the account's limits)",
            ));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ApplyError::one(
                "waiting for instances",
                pending.join(", "),
                format!("not {} after {:?}", state.as_str(), settings.timeout),
            ));
        }
        tokio::time::sleep(settings.poll).await;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use super::{Gates, Settings, execute};
    use crate::cluster::Cluster;
    use crate::ec2::fake::FakeEc2;
    use crate::ec2::{Ec2, Instance, InstanceState, describe_calls, tags};
    use crate::progress::Silent;
    use crate::provision::destroy::{Inventory, destroy};
    use crate::provision::plan::{Action, Plan};
    use crate::provision::workflow::make_plan;
    use crate::render::{Options, Renderer};

    const AL2023: &str = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64";

    pub(crate) fn fake() -> FakeEc2 {
        let f = FakeEc2::with_default_subnets(&[
            ("eu-west-1a", "172.31.0.0/20"),
            ("eu-west-1b", "172.31.16.0/20"),
            ("eu-west-1c", "172.31.32.0/20"),
        ]);
        f.set_parameter(AL2023, "ami-0123456789abcdef0");
        f.set_image("ami-0123456789abcdef0", "/dev/xvda", "x86_64");
        f
    }

    pub(crate) fn cluster(name: &str, brokers: u32, broker_type: &str) -> Cluster {
        let yaml = format!(
            "name: {name}\nregion: eu-west-1\nzones:\n  - {{name: eu-west-1a, cidr: 172.31.0.0/20}}\n  - {{name: eu-west-1b, cidr: 172.31.16.0/20}}\n  - {{name: eu-west-1c, cidr: 172.31.32.0/20}}\nbrokers:\n  count: {brokers}\n  instance_type: {broker_type}\n"
        );
        match crate::topology::load("test.yaml", yaml.as_bytes()) {
            Ok(l) => l.cluster,
            Err(r) => panic!("{r}"),
        }
    }

    pub(crate) fn settings() -> Settings {
        Settings {
            parallelism: 8,
            poll: Duration::ZERO,
            timeout: Duration::from_secs(5),
            skip_detach_wait: false,
        }
    }

    pub(crate) async fn plan_for(ec2: &FakeEc2, c: &Cluster) -> Plan {
        let r = Renderer::new(&Options::default()).expect("templates");
        make_plan(ec2, c, &r).await.expect("plan").0
    }

    /// Runs `work` while the fake's time passes (instances boot and stop, volumes attach and
    /// detach), as EC2's does while kcluster waits.
    pub(crate) async fn with_ec2_time<T>(
        ec2: &FakeEc2,
        work: impl std::future::Future<Output = T>,
    ) -> T {
        let time = async {
            loop {
                ec2.boot_all();
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        tokio::select! {
            r = work => r,
            _ = time => unreachable!(),
        }
    }

    /// Plans and applies; the fake boots pending instances while apply waits.
    pub(crate) async fn converge(ec2: &FakeEc2, c: &Cluster) -> Plan {
        let plan = plan_for(ec2, c).await;
        let booting = async {
            loop {
                ec2.boot_all();
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        let settings = settings();
        let gates = Gates::skipped();
        tokio::select! {
            r = execute(ec2, &plan, &settings, &gates, &Silent) => { r.expect("apply"); }
            _ = booting => {}
        }
        plan
    }

    fn live_by_node(ec2: &FakeEc2) -> std::collections::BTreeMap<String, Vec<Instance>> {
        let mut m: std::collections::BTreeMap<String, Vec<Instance>> = Default::default();
        for i in ec2.instances().into_iter().filter(|i| i.state.is_live()) {
            m.entry(i.tag(tags::NODE).unwrap_or("?").to_string())
                .or_default()
                .push(i);
        }
        m
    }

    #[tokio::test]
    async fn apply_creates_one_instance_per_node_then_plans_nothing() {
        let ec2 = fake();
        let c = cluster("orders", 3, "m5.xlarge");
        let first = converge(&ec2, &c).await;
        assert_eq!(
            first.summary().add,
            25,
            "1 group + 6 interfaces + 6 Elastic IPs (the default VPC routes to its internet gateway) + 6 data volumes + 6 instances"
        );
        let live = live_by_node(&ec2);
        assert_eq!(live.len(), 6);
        assert!(live.values().all(|v| v.len() == 1));
        // Each node's own data volume, in its zone, attached to its instance as /dev/sdf.
        let volumes = ec2.volumes();
        assert_eq!(volumes.len(), 6);
        for v in &volumes {
            let node = v.tags.get(tags::NODE).expect("node tag");
            let a = v.attachment.as_ref().expect("attached");
            assert_eq!(a.instance_id, live[node.as_str()][0].id, "{node}");
            assert_eq!(
                (a.device.as_str(), v.zone.as_str()),
                ("/dev/sdf", live[node.as_str()][0].zone.as_str())
            );
            assert_eq!(v.tags.get(tags::VOLUME).map(String::as_str), Some("data"));
        }
        // The instance was launched with its volume's id in its bootstrap.
        for i in live.values().flatten() {
            let data =
                crate::render::user_data_text(&ec2.instance_user_data(&i.id).expect("user-data"))
                    .expect("text");
            let vol = volumes
                .iter()
                .find(|v| v.tags.get(tags::NODE).map(String::as_str) == i.tag(tags::NODE))
                .expect("volume");
            assert!(
                data.contains(&format!("readonly DATA_VOLUME=\"{}\"", vol.id)),
                "{:?}",
                i.tag(tags::NODE)
            );
            assert!(!data.contains(crate::render::DATA_VOLUME_PLACEHOLDER));
        }
        let again = plan_for(&ec2, &c).await;
        assert!(!again.has_changes(), "{}", again.render_text());
        // Every instance sits on its node's interface, in its zone, with its address.
        for n in &c.nodes {
            let i = &live[&n.name][0];
            assert_eq!(i.zone, n.zone);
            assert_eq!(i.private_address, Some(n.address));
        }
    }

    #[tokio::test]
    async fn connect_workers_apply_without_a_data_volume() {
        let ec2 = fake();
        let yaml = "name: pipeline\nregion: eu-west-1\nzones:\n  - {name: eu-west-1a, cidr: 172.31.0.0/20}\n  - {name: eu-west-1b, cidr: 172.31.16.0/20}\n  - {name: eu-west-1c, cidr: 172.31.32.0/20}\nbrokers:\n  count: 3\nconnect:\n  count: 3\n";
        let c = match crate::topology::load("test.yaml", yaml.as_bytes()) {
            Ok(l) => l.cluster,
            Err(r) => panic!("{r}"),
        };
        let first = plan_for(&ec2, &c).await;
        let text = first.render_text();
        assert!(text.contains("volume.broker-1"), "{text}");
        assert!(!text.contains("volume.connect-"), "{text}");
        assert!(
            !first
                .actions()
                .keys()
                .any(|k| k.starts_with("volume.connect-"))
        );
        let first = converge(&ec2, &c).await;
        assert_eq!(
            first.summary().add,
            1 + 9 + 9 + 6 + 9,
            "1 group + 9 interfaces + 9 Elastic IPs + 6 data volumes (none for the workers) + 9 instances"
        );
        let live = live_by_node(&ec2);
        assert_eq!(live.len(), 9);
        let volumes = ec2.volumes();
        let mut owners: Vec<&str> = volumes
            .iter()
            .map(|v| v.tags.get(tags::NODE).map_or("?", String::as_str))
            .collect();
        owners.sort();
        assert_eq!(
            owners,
            [
                "broker-1",
                "broker-2",
                "broker-3",
                "zookeeper-1",
                "zookeeper-2",
                "zookeeper-3"
            ]
        );
        assert!(volumes.iter().all(|v| v.attachment.is_some()));
        for w in ["connect-1", "connect-2", "connect-3"] {
            let i = &live[w][0];
            let data =
                crate::render::user_data_text(&ec2.instance_user_data(&i.id).expect("user-data"))
                    .expect("text");
            assert!(!data.contains("DATA_VOLUME"), "{w} mounts nothing");
            assert!(data.contains("PLUGIN_DIR"), "{w}");
        }
        let again = plan_for(&ec2, &c).await;
        assert!(!again.has_changes(), "{}", again.render_text());
    }

    #[tokio::test]
    async fn a_removed_worker_is_said_to_keep_no_data_volume_and_a_removed_monitoring_node_its_own()
    {
        let ec2 = fake();
        let topology = |monitors: u32, workers: u32| {
            let yaml = format!(
                "name: pipeline\nregion: eu-west-1\nzones:\n  - {{name: eu-west-1a, cidr: 172.31.0.0/20}}\n  - {{name: eu-west-1b, cidr: 172.31.16.0/20}}\n  - {{name: eu-west-1c, cidr: 172.31.32.0/20}}\nmonitoring:\n  count: {monitors}\nconnect:\n  count: {workers}\n"
            );
            match crate::topology::load("test.yaml", yaml.as_bytes()) {
                Ok(l) => l.cluster,
                Err(r) => panic!("{r}"),
            }
        };
        converge(&ec2, &topology(2, 3)).await;
        let plan = plan_for(&ec2, &topology(1, 2)).await;
        let impacts = plan.impacts();
        let line = |node: &str| {
            impacts
                .iter()
                .find(|l| l.starts_with(&format!("terminate {node} ")))
                .unwrap_or_else(|| panic!("no line for {node}: {impacts:?}"))
                .clone()
        };
        let worker = line("connect-3");
        assert!(!worker.contains("volume"), "{worker}");
        let kept = plan
            .kept_volumes
            .iter()
            .find(|k| k.node.as_deref() == Some("monitoring-2"))
            .expect("monitoring-2's volume is kept");
        assert!(
            line("monitoring-2").ends_with(&format!("; its data volume {} is kept", kept.id)),
            "{impacts:?}"
        );
        assert_eq!(plan.kept_volumes.len(), 1, "{:?}", plan.kept_volumes);
    }

    #[tokio::test]
    async fn plan_makes_the_same_describe_calls_for_9_and_99_nodes() {
        let mut counts = Vec::new();
        for brokers in [6, 96] {
            let ec2 = fake();
            let c = cluster("sized", brokers, "m5.xlarge");
            converge(&ec2, &c).await;
            let before = describe_calls(&ec2.calls());
            let p = plan_for(&ec2, &c).await;
            assert!(!p.has_changes());
            counts.push(describe_calls(&ec2.calls()) - before);
        }
        assert_eq!(
            counts,
            vec![12, 12],
            "subnets, route tables, groups, interfaces, instances, volumes, Elastic IPs, availability zones, image, type offerings, type architectures, interfaces holding the nodes' addresses"
        );
    }

    #[tokio::test]
    async fn failed_apply_is_finished_by_the_next_without_duplicates() {
        let ec2 = fake();
        let c = cluster("flaky", 6, "m5.xlarge");
        // The fourth launch fails: three instances exist, the rest do not.
        ec2.fail_after("RunInstances", 3);
        let plan = plan_for(&ec2, &c).await;
        let settings = settings();
        let gates = Gates::skipped();
        let err = tokio::select! {
            r = execute(&ec2, &plan, &settings, &gates, &Silent) => r.expect_err("injected failure"),
            _ = async { loop { ec2.boot_all(); tokio::time::sleep(Duration::from_millis(1)).await; } } => unreachable!(),
        };
        assert_eq!(err.stage, "launching instances");
        assert_eq!(err.failures.len(), 1);
        let resumed = plan_for(&ec2, &c).await;
        assert_eq!(resumed.summary().add, 1, "{}", resumed.render_text());
        converge(&ec2, &c).await;
        let live = live_by_node(&ec2);
        assert_eq!(live.len(), 9);
        assert!(live.values().all(|v| v.len() == 1), "{live:?}");
        assert_eq!(ec2.interfaces().len(), 9, "no duplicate interfaces");
    }

    #[tokio::test]
    async fn scale_out_only_creates_the_new_brokers() {
        let ec2 = fake();
        converge(&ec2, &cluster("grow", 3, "m5.xlarge")).await;
        let before: Vec<String> = ec2.instances().iter().map(|i| i.id.clone()).collect();
        let bigger = cluster("grow", 5, "m5.xlarge");
        let plan = plan_for(&ec2, &bigger).await;
        let creates: Vec<String> = plan
            .actions()
            .into_iter()
            .filter(|(_, a)| *a == Action::Create)
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            creates,
            vec![
                "instance.broker-4",
                "instance.broker-5",
                "network_interface.broker-4",
                "network_interface.broker-5",
                "public_address.broker-4",
                "public_address.broker-5",
                "volume.broker-4",
                "volume.broker-5"
            ]
        );
        converge(&ec2, &bigger).await;
        let live: Vec<String> = ec2.instances().iter().map(|i| i.id.clone()).collect();
        assert!(before.iter().all(|id| live.contains(id)));
    }

    #[tokio::test]
    async fn instance_type_change_stops_modifies_and_starts_keeping_instance_volume_and_address() {
        let ec2 = fake();
        converge(&ec2, &cluster("resize", 3, "m5.xlarge")).await;
        let enis: Vec<String> = ec2.interfaces().iter().map(|n| n.id.clone()).collect();
        let instances: Vec<String> = ec2.instances().iter().map(|i| i.id.clone()).collect();
        let volumes = ec2.volumes();
        let bigger = cluster("resize", 3, "m5.2xlarge");
        let plan = plan_for(&ec2, &bigger).await;
        let b1 = plan.node("broker-1").expect("broker-1");
        assert_eq!(b1.instance, Action::Update);
        assert_eq!(
            b1.instance_reasons,
            vec!["instance type m5.xlarge → m5.2xlarge"]
        );
        assert_eq!(
            b1.in_place
                .as_ref()
                .and_then(|p| p.instance_type.as_deref()),
            Some("m5.2xlarge")
        );
        assert!(
            plan.render_text()
                .contains("resize to m5.2xlarge: broker-1 (stop, change, start; its volume and address stay; rolling: the active controller last"),
            "{}",
            plan.render_text()
        );
        assert_eq!(
            plan.node("zookeeper-1").map(|n| n.instance),
            Some(Action::NoOp)
        );
        converge(&ec2, &bigger).await;
        let after: Vec<String> = ec2.interfaces().iter().map(|n| n.id.clone()).collect();
        assert_eq!(
            enis, after,
            "interfaces (and addresses) survive replacement"
        );
        let live = live_by_node(&ec2);
        assert!(live.values().all(|v| v.len() == 1));
        assert_eq!(live["broker-2"][0].instance_type, "m5.2xlarge");
        let now: Vec<String> = ec2.instances().iter().map(|i| i.id.clone()).collect();
        assert_eq!(instances, now, "the same instances, none launched");
        assert_eq!(ec2.calls().get("TerminateInstances"), None);
        assert_eq!(ec2.calls().get("StopInstances"), Some(&3));
        assert_eq!(volumes, ec2.volumes(), "the same volumes, still attached");
        assert!(!plan_for(&ec2, &bigger).await.has_changes());
    }

    #[tokio::test]
    async fn node_terminated_outside_kcluster_is_relaunched_with_a_fresh_client_token() {
        let ec2 = fake();
        let c = cluster("lost", 3, "m5.xlarge");
        converge(&ec2, &c).await;
        let lost = live_by_node(&ec2)["broker-2"][0].clone();
        ec2.terminate_instances(std::slice::from_ref(&lost.id))
            .await
            .expect("terminated by hand");
        let plan = plan_for(&ec2, &c).await;
        let b2 = plan.node("broker-2").expect("broker-2");
        assert_eq!((b2.instance, b2.generation), (Action::Create, 2));
        converge(&ec2, &c).await;
        let back = &live_by_node(&ec2)["broker-2"][0];
        assert_ne!(back.id, lost.id);
        assert_eq!(back.primary_interface, lost.primary_interface);
        assert!(!plan_for(&ec2, &c).await.has_changes());
    }

    fn with_extra(name: &str, extra: &str) -> Cluster {
        load(&format!(
            "name: {name}\nregion: eu-west-1\nzones:\n  - {{name: eu-west-1a, cidr: 172.31.0.0/20}}\n  - {{name: eu-west-1b, cidr: 172.31.16.0/20}}\n  - {{name: eu-west-1c, cidr: 172.31.32.0/20}}\n{extra}"
        ))
    }

    fn volume_of(ec2: &FakeEc2, node: &str) -> crate::ec2::Volume {
        let mine: Vec<_> = ec2
            .volumes()
            .into_iter()
            .filter(|v| v.tags.get(tags::NODE).map(String::as_str) == Some(node))
            .collect();
        assert_eq!(
            mine.len(),
            1,
            "{node} has exactly one data volume: {mine:?}"
        );
        mine[0].clone()
    }

    #[tokio::test]
    async fn config_only_change_terminates_nothing_and_restarts_brokers_in_place_with_new_files() {
        let ec2 = fake();
        converge(&ec2, &with_extra("tune", "")).await;
        let before: Vec<Instance> = ec2.instances();
        let launches = ec2.calls().get("RunInstances").copied();
        let tuned = with_extra(
            "tune",
            "brokers:\n  overrides:\n    log.retention.hours: 72\n",
        );
        let plan = plan_for(&ec2, &tuned).await;
        for n in &plan.nodes {
            let expected = match n.role {
                crate::cluster::Role::Broker => Action::Update,
                _ => Action::NoOp,
            };
            assert_eq!(n.instance, expected, "{}", n.node);
            assert_eq!((n.interface, n.volume), (Action::NoOp, Action::NoOp));
        }
        let text = plan.render_text();
        assert!(
            text.contains("restart with its new files: broker-2 (stop, change, start; its volume and address stay; rolling: the active controller last; gated on no partition it hosts falling below min.insync.replicas, then 0 under-replicated partitions)"),
            "{text}"
        );
        assert!(
            text.contains("Plan: 0 to add, 3 to change, 0 to destroy."),
            "{text}"
        );
        converge(&ec2, &tuned).await;
        let after: Vec<Instance> = ec2.instances();
        assert_eq!(
            before.iter().map(|i| &i.id).collect::<Vec<_>>(),
            after.iter().map(|i| &i.id).collect::<Vec<_>>(),
            "no instance launched or terminated"
        );
        assert!(after.iter().all(|i| i.state == InstanceState::Running));
        assert_eq!(ec2.calls().get("TerminateInstances"), None);
        assert_eq!(ec2.calls().get("RunInstances").copied(), launches);
        assert_eq!(ec2.calls().get("StopInstances"), Some(&3));
        for i in after.iter().filter(|i| i.tag(tags::ROLE) == Some("broker")) {
            let data = crate::render::user_data_text(&ec2.instance_user_data(&i.id).expect("data"))
                .expect("text");
            assert!(data.contains("log.retention.hours=72"), "{}", i.id);
            let vol = volume_of(&ec2, i.tag(tags::NODE).expect("node"));
            assert!(data.contains(&format!("DATA_VOLUME=\"{}\"", vol.id)));
            assert_eq!(vol.attachment.map(|a| a.instance_id), Some(i.id.clone()));
        }
        assert!(!plan_for(&ec2, &tuned).await.has_changes());
    }

    #[tokio::test]
    async fn a_replaced_node_keeps_its_data_volume() {
        let ec2 = fake();
        ec2.set_image("ami-0aaaaaaaaaaaaaaaa", "/dev/xvda", "x86_64");
        ec2.set_image("ami-0bbbbbbbbbbbbbbbb", "/dev/xvda", "x86_64");
        let old = with_extra("reimage", "ami: {id: ami-0aaaaaaaaaaaaaaaa}\n");
        converge(&ec2, &old).await;
        let volumes: Vec<(String, String)> = ["zookeeper-1", "broker-3"]
            .iter()
            .map(|n| (n.to_string(), volume_of(&ec2, n).id))
            .collect();
        let instances = live_by_node(&ec2);
        let new = with_extra("reimage", "ami: {id: ami-0bbbbbbbbbbbbbbbb}\n");
        let plan = plan_for(&ec2, &new).await;
        let b3 = plan.node("broker-3").expect("broker-3");
        assert_eq!((b3.instance, b3.volume), (Action::Replace, Action::NoOp));
        let text = plan.render_text();
        assert!(
            text.contains(&format!(
                "replace broker-3 keeping {} (image ami-0aaaaaaaaaaaaaaaa → ami-0bbbbbbbbbbbbbbbb",
                volumes[1].1
            )),
            "{text}"
        );
        converge(&ec2, &new).await;
        let live = live_by_node(&ec2);
        for (node, vol) in &volumes {
            let now = &live[node.as_str()][0];
            assert_ne!(
                now.id,
                instances[node.as_str()][0].id,
                "{node} was replaced"
            );
            let v = volume_of(&ec2, node);
            assert_eq!(&v.id, vol, "{node} keeps its volume id");
            assert_eq!(v.attachment.map(|a| a.instance_id), Some(now.id.clone()));
        }
        assert_eq!(ec2.volumes().len(), 6, "no volume created or deleted");
        assert!(!plan_for(&ec2, &new).await.has_changes());
    }

    #[tokio::test]
    async fn a_volume_grows_and_retunes_online_but_never_shrinks() {
        let ec2 = fake();
        converge(&ec2, &with_extra("grow", "")).await;
        let bigger = with_extra(
            "grow",
            "brokers:\n  volume: {size_gib: 200, iops: 4000, throughput_mibps: 250}\n",
        );
        let plan = plan_for(&ec2, &bigger).await;
        let b1 = plan.node("broker-1").expect("broker-1");
        assert_eq!((b1.volume, b1.instance), (Action::Update, Action::NoOp));
        assert_eq!(
            b1.volume_reasons,
            vec![
                "size 100 → 200 GiB",
                "iops 3000 → 4000",
                "throughput 125 → 250 MiB/s"
            ]
        );
        converge(&ec2, &bigger).await;
        let v = volume_of(&ec2, "broker-1");
        assert_eq!((v.size_gib, v.iops, v.throughput_mibps), (200, 4000, 250));
        // Smaller again, with other IOPS: the IOPS change, the size stays.
        let smaller = with_extra("grow", "brokers:\n  volume: {size_gib: 50, iops: 3000}\n");
        let plan = plan_for(&ec2, &smaller).await;
        let b1 = plan.node("broker-1").expect("broker-1");
        assert_eq!(
            b1.volume_reasons,
            vec!["iops 4000 → 3000", "throughput 250 → 125 MiB/s"]
        );
        converge(&ec2, &smaller).await;
        let v = volume_of(&ec2, "broker-1");
        assert_eq!((v.size_gib, v.iops), (200, 3000));
        assert!(!plan_for(&ec2, &smaller).await.has_changes());
    }

    #[tokio::test]
    async fn an_interrupted_apply_finds_its_volumes_by_tag_and_never_makes_a_second() {
        let ec2 = fake();
        let c = cluster("again", 3, "m5.xlarge");
        ec2.fail_after("RunInstances", 2);
        let plan = plan_for(&ec2, &c).await;
        let settings = settings();
        let gates = Gates::skipped();
        with_ec2_time(&ec2, execute(&ec2, &plan, &settings, &gates, &Silent))
            .await
            .expect_err("injected failure");
        assert_eq!(ec2.volumes().len(), 6, "volumes come before launches");
        let resumed = plan_for(&ec2, &c).await;
        assert!(resumed.nodes.iter().all(|n| n.volume != Action::Create));
        converge(&ec2, &c).await;
        assert_eq!(ec2.volumes().len(), 6);
        assert_eq!(ec2.calls().get("CreateVolume"), Some(&6));
        assert!(!plan_for(&ec2, &c).await.has_changes());
    }

    /// A cluster's health as a test scripts it: ZooKeeper members and the brokers' view, each
    /// read returning the next scripted answer (the last one repeats).
    struct Scripted {
        zk: std::sync::Mutex<Vec<Vec<crate::operations::roll::ZkMember>>>,
        kafka: std::sync::Mutex<Vec<Result<crate::operations::roll::KafkaView, String>>>,
        connect: std::sync::Mutex<Vec<Vec<crate::operations::roll::ConnectWorker>>>,
        quorum: std::sync::Mutex<Vec<Result<crate::operations::roll::QuorumView, String>>>,
    }

    /// The next scripted answer; the last one repeats.
    fn next_answer<T: Clone>(answers: &std::sync::Mutex<Vec<T>>) -> T {
        let mut a = answers.lock().expect("lock");
        if a.len() > 1 {
            a.remove(0)
        } else {
            a[0].clone()
        }
    }

    #[async_trait::async_trait]
    impl crate::operations::health::Health for Scripted {
        async fn zookeeper(
            &self,
            _: &[(String, std::net::Ipv4Addr)],
        ) -> Vec<crate::operations::roll::ZkMember> {
            next_answer(&self.zk)
        }
        async fn kafka(
            &self,
            _: &[std::net::Ipv4Addr],
        ) -> Result<crate::operations::roll::KafkaView, String> {
            next_answer(&self.kafka)
        }
        async fn kraft(
            &self,
            _: &[std::net::Ipv4Addr],
        ) -> Result<crate::operations::roll::QuorumView, String> {
            next_answer(&self.quorum)
        }
        async fn connect(
            &self,
            _: &[(String, std::net::Ipv4Addr)],
        ) -> Vec<crate::operations::roll::ConnectWorker> {
            next_answer(&self.connect)
        }
    }

    /// Executes `plan` gated by `health` (200 ms per gate), which must stop the roll at a gate;
    /// the error.
    async fn stopped_by_gate(
        ec2: &FakeEc2,
        plan: &Plan,
        health: &dyn crate::operations::health::Health,
    ) -> super::ApplyError {
        let gates = Gates {
            health: Some(health),
            timeout: Duration::from_millis(200),
            poll: Duration::from_millis(10),
            moves: Default::default(),
        };
        let err = with_ec2_time(ec2, execute(ec2, plan, &settings(), &gates, &Silent))
            .await
            .expect_err("the gate times out");
        assert_eq!(err.stage, "health gate");
        err
    }

    /// Executes `plan` gated by `health`, which must make apply refuse before it changes
    /// anything; the refusal.
    async fn refused_by_gates(ec2: &FakeEc2, plan: &Plan, health: &Scripted) -> String {
        let gates = Gates {
            health: Some(health),
            timeout: Duration::from_millis(100),
            poll: Duration::from_millis(10),
            moves: Default::default(),
        };
        let err = with_ec2_time(ec2, execute(ec2, plan, &settings(), &gates, &Silent))
            .await
            .expect_err("refused");
        assert_eq!(err.stage, "health gates");
        err.failures[0].error.clone()
    }

    fn healthy_zk() -> Vec<crate::operations::roll::ZkMember> {
        use crate::operations::roll::{ZkMember, ZkState};
        vec![
            ZkMember {
                node: "zookeeper-1".into(),
                state: ZkState::Follower,
            },
            ZkMember {
                node: "zookeeper-2".into(),
                state: ZkState::Leader {
                    synced_followers: 2,
                },
            },
            ZkMember {
                node: "zookeeper-3".into(),
                state: ZkState::Follower,
            },
        ]
    }

    fn kafka_view(isr: &[i32]) -> crate::operations::roll::KafkaView {
        crate::operations::roll::KafkaView {
            brokers: [1, 2, 3].into(),
            controller: Some(1),
            partitions: vec![crate::operations::roll::Partition {
                topic: "orders".into(),
                partition: 0,
                replicas: vec![1, 2, 3],
                isr: isr.to_vec(),
                min_isr: Some(2),
            }],
            racks: Default::default(),
        }
    }

    #[tokio::test]
    async fn a_broker_roll_goes_controller_last_and_stops_at_a_gate_that_times_out() {
        let ec2 = fake();
        converge(&ec2, &with_extra("gated", "")).await;
        let tuned = with_extra(
            "gated",
            "brokers:\n  overrides:\n    log.retention.hours: 72\n",
        );
        let plan = plan_for(&ec2, &tuned).await;
        // Healthy for broker-2 (before and after) and broker-3 before; then broker 3 never
        // comes back in sync, so the gate after it times out.
        let health = Scripted {
            zk: std::sync::Mutex::new(vec![healthy_zk()]),
            kafka: std::sync::Mutex::new(vec![
                Ok(kafka_view(&[1, 2, 3])), // reachable?
                Ok(kafka_view(&[1, 2, 3])), // order: controller 1 last → broker-2 first
                Ok(kafka_view(&[1, 2, 3])), // broker-2 may stop
                Ok(kafka_view(&[1, 2, 3])), // broker-2 is back
                Ok(kafka_view(&[1, 2, 3])), // order → broker-3
                Ok(kafka_view(&[1, 2, 3])), // broker-3 may stop
                Ok(kafka_view(&[1, 2])),    // broker-3 never back in sync
            ]),
            connect: std::sync::Mutex::new(vec![Vec::new()]),
            quorum: std::sync::Mutex::new(vec![Err("no controllers".into())]),
        };
        let err = stopped_by_gate(&ec2, &plan, &health).await;
        assert_eq!(err.stage, "health gate");
        assert_eq!(err.failures[0].resource, "broker-3");
        let e = &err.failures[0].error;
        assert!(e.starts_with("after restarting broker-3: waited 200ms until the broker is registered and no partition is under-replicated"), "{e}");
        assert!(
            e.contains("last seen: 1 under-replicated partitions, e.g. orders-0 ISR [2, 3]")
                || e.contains("orders-0 ISR [1, 2] of [1, 2, 3]"),
            "{e}"
        );
        assert!(e.contains("run `kcluster apply` again: it resumes"), "{e}");
        // broker-2 then broker-3 were restarted; broker-1 (the controller) was not touched.
        let again = plan_for(&ec2, &tuned).await;
        assert_eq!(still_to_change(&again), ["broker-1"]);
        assert_eq!(ec2.calls().get("StopInstances"), Some(&2));
    }

    /// A cluster whose every broker answers with a whole, registered view, but for one that does
    /// not listen: a stopped broker whose registration ZooKeeper still keeps.
    struct DeafBroker(std::net::Ipv4Addr);

    #[async_trait::async_trait]
    impl crate::operations::health::Health for DeafBroker {
        async fn zookeeper(
            &self,
            _: &[(String, std::net::Ipv4Addr)],
        ) -> Vec<crate::operations::roll::ZkMember> {
            healthy_zk()
        }
        async fn kafka(
            &self,
            brokers: &[std::net::Ipv4Addr],
        ) -> Result<crate::operations::roll::KafkaView, String> {
            match brokers.iter().find(|b| **b != self.0) {
                Some(_) => Ok(kafka_view(&[1, 2, 3])),
                None => Err(format!("{}:9092: connection refused", self.0)),
            }
        }
        async fn kraft(
            &self,
            _: &[std::net::Ipv4Addr],
        ) -> Result<crate::operations::roll::QuorumView, String> {
            Err("no controllers".into())
        }
    }

    #[tokio::test]
    async fn a_restarted_broker_is_back_only_when_it_answers_itself_not_when_others_list_it() {
        let ec2 = fake();
        converge(&ec2, &with_extra("deaf", "")).await;
        let tuned = with_extra(
            "deaf",
            "brokers:\n  overrides:\n    log.retention.hours: 72\n",
        );
        let plan = plan_for(&ec2, &tuned).await;
        let broker_2 = plan
            .nodes
            .iter()
            .find(|n| n.node == "broker-2")
            .expect("broker-2")
            .desired
            .node
            .address;
        let err = stopped_by_gate(&ec2, &plan, &DeafBroker(broker_2)).await;
        assert_eq!(
            (err.stage, err.failures[0].resource.as_str()),
            ("health gate", "broker-2")
        );
        let e = &err.failures[0].error;
        assert!(e.starts_with("after restarting broker-2"), "{e}");
        assert!(e.contains("connection refused"), "{e}");
        assert_eq!(ec2.calls().get("StopInstances"), Some(&1), "broker-3 waits");
    }

    #[tokio::test]
    async fn a_broker_at_min_isr_is_not_stopped_and_an_unreachable_cluster_is_refused() {
        let ec2 = fake();
        converge(&ec2, &with_extra("careful", "")).await;
        let tuned = with_extra(
            "careful",
            "brokers:\n  overrides:\n    log.retention.hours: 72\n",
        );
        let plan = plan_for(&ec2, &tuned).await;
        let settings = settings();
        // Every partition at its minimum: no broker in its ISR may stop.
        let health = Scripted {
            zk: std::sync::Mutex::new(vec![healthy_zk()]),
            kafka: std::sync::Mutex::new(vec![Ok(kafka_view(&[2, 3]))]),
            connect: std::sync::Mutex::new(vec![Vec::new()]),
            quorum: std::sync::Mutex::new(vec![Err("no controllers".into())]),
        };
        let gates = Gates {
            health: Some(&health),
            timeout: Duration::from_millis(100),
            poll: Duration::from_millis(10),
            moves: Default::default(),
        };
        let err = with_ec2_time(&ec2, execute(&ec2, &plan, &settings, &gates, &Silent))
            .await
            .expect_err("refused");
        let e = &err.failures[0].error;
        assert!(e.starts_with("before stopping broker-2: waited 100ms until no partition the broker holds in sync would fall below min.insync.replicas; last seen: orders-0 ISR [2, 3] of replicas [1, 2, 3], min.insync.replicas 2"), "{e}");
        assert!(e.contains("(broker-2 was not touched)"), "{e}");
        assert_eq!(ec2.calls().get("StopInstances"), None);

        let down = Scripted {
            zk: std::sync::Mutex::new(vec![healthy_zk()]),
            kafka: std::sync::Mutex::new(vec![Err("127.0.0.1:9092: connection refused".into())]),
            connect: std::sync::Mutex::new(vec![Vec::new()]),
            quorum: std::sync::Mutex::new(vec![Err("no controllers".into())]),
        };
        let e = &refused_by_gates(&ec2, &plan, &down).await;
        assert!(
            e.contains("no broker node answers (127.0.0.1:9092: connection refused)"),
            "{e}"
        );
        assert!(e.contains("`kcluster apply --skip-health-gates`"), "{e}");
        assert_eq!(
            ec2.calls().get("StopInstances"),
            None,
            "nothing was changed"
        );
    }

    fn workers(up: [bool; 3]) -> Vec<crate::operations::roll::ConnectWorker> {
        use crate::operations::roll::{ConnectState, ConnectWorker};
        (1..=3)
            .zip(up)
            .map(|(i, up)| ConnectWorker {
                node: format!("connect-{i}"),
                state: if up {
                    ConnectState::Up {
                        version: "3.9.2".into(),
                        connectors: vec!["sink".into()],
                    }
                } else {
                    ConnectState::Down(format!("GET http://172.31.0.6{i}:8083/: refused"))
                },
            })
            .collect()
    }

    #[tokio::test]
    async fn connect_workers_roll_one_at_a_time_each_after_the_group_is_whole_again() {
        let ec2 = fake();
        converge(&ec2, &with_extra("pipes", "connect:\n  count: 3\n")).await;
        let tuned = with_extra("pipes", "connect:\n  count: 3\n  heap: 1g\n");
        let plan = plan_for(&ec2, &tuned).await;
        let rolled: Vec<&str> = plan
            .nodes
            .iter()
            .filter(|n| n.instance == Action::Update)
            .map(|n| n.node.as_str())
            .collect();
        assert_eq!(rolled, ["connect-1", "connect-2", "connect-3"]);
        let impacts = plan.impacts().join("\n");
        assert!(
            impacts.contains("restart with its new files: connect-1 (stop, change, start; its address stays; rolling: one worker at a time; gated on every worker's REST API answering"),
            "{impacts}"
        );
        let settings = settings();
        let scripted = |answers: Vec<Vec<crate::operations::roll::ConnectWorker>>| Scripted {
            zk: std::sync::Mutex::new(vec![healthy_zk()]),
            kafka: std::sync::Mutex::new(vec![Ok(kafka_view(&[1, 2, 3]))]),
            connect: std::sync::Mutex::new(answers),
            quorum: std::sync::Mutex::new(vec![Err("no controllers".into())]),
        };
        // connect-1 never comes back: the roll stops there, the other two untouched.
        let health = scripted(vec![
            workers([true; 3]),           // reachable?
            workers([true; 3]),           // connect-1 may stop
            workers([false, true, true]), // connect-1 never back
        ]);
        let err = stopped_by_gate(&ec2, &plan, &health).await;
        assert_eq!(
            (err.stage, err.failures[0].resource.as_str()),
            ("health gate", "connect-1")
        );
        let e = &err.failures[0].error;
        assert!(
            e.starts_with(&format!(
                "after restarting connect-1: waited 200ms until {}; last seen: connect-1: GET http://172.31.0.61:8083/: refused; connect-2: up",
                crate::operations::roll::CONNECT_WHOLE
            )),
            "{e}"
        );
        assert_eq!(
            ec2.calls().get("StopInstances"),
            Some(&1),
            "one worker away at a time"
        );

        // A worker already away before the next stops: the gate holds the next one.
        let plan = plan_for(&ec2, &tuned).await;
        let health = scripted(vec![workers([true; 3]), workers([true, false, true])]);
        let err = stopped_by_gate(&ec2, &plan, &health).await;
        assert!(
            err.failures[0]
                .error
                .starts_with("before stopping connect-2:"),
            "{err}"
        );
        assert_eq!(
            ec2.calls().get("StopInstances"),
            Some(&1),
            "connect-2 not touched"
        );

        // No worker answers: refused before anything changes, naming the way out.
        let health = scripted(vec![workers([false; 3])]);
        let e = &refused_by_gates(&ec2, &plan, &health).await;
        assert!(
            e.contains(
                "no connect node answers (connect-1: GET http://172.31.0.61:8083/: refused;"
            ),
            "{e}"
        );
        assert!(e.contains("`kcluster apply --skip-health-gates`"), "{e}");
        assert_eq!(ec2.calls().get("StopInstances"), Some(&1));

        // Healthy: the other two roll, and the plan is empty after.
        let health = scripted(vec![workers([true; 3])]);
        let gates = Gates {
            health: Some(&health),
            timeout: Duration::from_millis(200),
            poll: Duration::from_millis(10),
            moves: Default::default(),
        };
        with_ec2_time(&ec2, execute(&ec2, &plan, &settings, &gates, &Silent))
            .await
            .expect("rolled");
        assert_eq!(ec2.calls().get("StopInstances"), Some(&3));
        assert!(!plan_for(&ec2, &tuned).await.has_changes());
    }

    fn load(yaml: &str) -> Cluster {
        match crate::topology::load("test.yaml", yaml.as_bytes()) {
            Ok(l) => l.cluster,
            Err(r) => panic!("{r}"),
        }
    }

    const ZONES_A_NAMED: &str = "zones:\n  - {name: eu-west-1a, cidr: 172.31.0.0/20, subnet: subnet-00000000}\n  - {name: eu-west-1b, cidr: 172.31.16.0/20}\n  - {name: eu-west-1c, cidr: 172.31.32.0/20}\n";

    #[tokio::test]
    async fn zones_without_a_subnet_take_their_default_subnet_when_another_names_its_own() {
        let ec2 = fake();
        let c = load(&format!("name: mixed\nregion: eu-west-1\n{ZONES_A_NAMED}"));
        let plan = plan_for(&ec2, &c).await;
        let subnets: std::collections::BTreeSet<&str> = plan
            .nodes
            .iter()
            .map(|n| n.desired.subnet_id.as_str())
            .collect();
        assert_eq!(
            subnets.into_iter().collect::<Vec<_>>(),
            vec!["subnet-00000000", "subnet-00000001", "subnet-00000002"]
        );
    }

    #[tokio::test]
    async fn a_running_zookeeper_cluster_is_not_planned_into_kraft_mode() {
        let ec2 = fake();
        let zookeeper = cluster("modes", 3, "m5.large");
        converge(&ec2, &zookeeper).await;
        let kraft = load(
            "name: modes\nregion: eu-west-1\nmetadata: kraft\nzones:\n  - {name: eu-west-1a, cidr: 172.31.0.0/20}\n  - {name: eu-west-1b, cidr: 172.31.16.0/20}\n  - {name: eu-west-1c, cidr: 172.31.32.0/20}\nbrokers:\n  count: 3\n",
        );
        let r = Renderer::new(&Options::default()).expect("templates");
        let before = (ec2.instances(), ec2.volumes());
        let err = make_plan(&ec2, &kraft, &r)
            .await
            .expect_err("a mode change of a running cluster")
            .to_string();
        assert!(
            err.starts_with("cluster modes runs in ZooKeeper mode (EC2 holds zookeeper-1, zookeeper-2, zookeeper-3) and the topology asks for KRaft mode"),
            "{err}"
        );
        assert_eq!((ec2.instances(), ec2.volumes()), before, "nothing changed");
        // Without the refusal the plan would launch three empty controllers and remove the
        // ensemble the brokers' data was written under.
        let renders = r.render_all(&kraft).expect("renders");
        let observed = crate::provision::workflow::observe(&ec2, &kraft)
            .await
            .expect("observed");
        let placement =
            crate::provision::desired::placement(&kraft, &observed.subnets, &observed.route_tables)
                .expect("placement");
        let image = ec2
            .describe_image("ami-0123456789abcdef0")
            .await
            .expect("image")
            .expect("image");
        let desired = crate::provision::desired::desired(&kraft, &renders, &placement, &image)
            .expect("desired");
        let unguarded = crate::provision::plan::plan(&desired, &observed);
        let launched: Vec<&str> = unguarded
            .nodes
            .iter()
            .filter(|n| n.instance_id.is_none())
            .map(|n| n.node.as_str())
            .collect();
        assert_eq!(launched, ["controller-1", "controller-2", "controller-3"]);
        assert_eq!(
            unguarded
                .orphans
                .iter()
                .filter(|o| o.kind == crate::provision::plan::OrphanKind::Instance)
                .count(),
            3,
            "the ensemble would go"
        );
    }

    #[tokio::test]
    async fn network_vpc_other_than_the_subnets_vpc_is_refused() {
        let ec2 = fake();
        let c = load(
            "name: elsewhere\nregion: eu-west-1\nnetwork: {vpc: vpc-0123456789abcdef0}\nzones:\n  - {name: eu-west-1a, cidr: 172.31.0.0/20, subnet: subnet-00000000}\n  - {name: eu-west-1b, cidr: 172.31.16.0/20, subnet: subnet-00000001}\n  - {name: eu-west-1c, cidr: 172.31.32.0/20, subnet: subnet-00000002}\n",
        );
        let r = Renderer::new(&Options::default()).expect("templates");
        let err = make_plan(&ec2, &c, &r)
            .await
            .expect_err("VPC mismatch")
            .to_string();
        assert!(
            err.contains("zone eu-west-1a: subnet subnet-00000000 is in vpc-default, but `network.vpc` is vpc-0123456789abcdef0"),
            "{err}"
        );
        assert_eq!(err.lines().count(), 3, "one line per zone: {err}");
    }

    #[tokio::test]
    async fn root_volume_goes_on_the_images_root_device() {
        let ec2 = fake();
        ec2.set_image("ami-0123456789abcdef0", "/dev/sda1", "x86_64");
        let plan = plan_for(&ec2, &cluster("ubuntu", 3, "m5.xlarge")).await;
        for n in &plan.nodes {
            let devices: Vec<&str> = n
                .desired
                .volumes
                .iter()
                .map(|v| v.device.as_str())
                .collect();
            assert_eq!(devices, vec!["/dev/sda1"], "{}", n.node);
        }
    }

    #[tokio::test]
    async fn an_image_that_does_not_exist_is_refused_by_plan() {
        let ec2 = fake();
        ec2.set_parameter(AL2023, "ami-0000000000000dead");
        let r = Renderer::new(&Options::default()).expect("templates");
        let err = make_plan(&ec2, &cluster("ghost", 3, "m5.xlarge"), &r)
            .await
            .expect_err("no such image")
            .to_string();
        assert!(
            err.contains("the image ami-0000000000000dead does not exist in eu-west-1"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn plan_refuses_types_not_offered_or_of_another_architecture_and_denied_calls() {
        let ec2 = fake();
        ec2.set_instance_type("m5.xlarge", "x86_64", &["eu-west-1a", "eu-west-1b"]);
        ec2.set_instance_type(
            "m7g.large",
            "arm64",
            &["eu-west-1a", "eu-west-1b", "eu-west-1c"],
        );
        ec2.deny("RunInstances");
        let c = cluster("picky", 3, "m5.xlarge");
        let r = Renderer::new(&Options::default()).expect("templates");
        let err = make_plan(&ec2, &c, &r)
            .await
            .expect_err("refused")
            .to_string();
        assert_eq!(
            err.lines().collect::<Vec<_>>(),
            vec![
                "instance type m5.xlarge is not offered in eu-west-1c: choose another type, or move its nodes to a zone that offers it",
                "ec2:RunInstances is denied to these credentials (DryRun answered UnauthorizedOperation): allow it in their IAM policy",
            ]
        );
        let arm = cluster("arm", 3, "m7g.large");
        let err = make_plan(&ec2, &arm, &r)
            .await
            .expect_err("refused")
            .to_string();
        assert!(
            err.starts_with(
                "instance type m7g.large runs arm64, but the image ami-0123456789abcdef0 is x86_64"
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_arm64_image_plans_and_an_architecture_without_pinned_downloads_is_refused() {
        let ec2 = fake();
        ec2.set_instance_type(
            "m7g.large",
            "arm64",
            &["eu-west-1a", "eu-west-1b", "eu-west-1c"],
        );
        let r = Renderer::new(&Options::default()).expect("templates");
        let mut arm = cluster("graviton", 3, "m7g.large");
        arm.ami = crate::cluster::Ami::Id("ami-0000000000000a4a4".into());
        if let Some(zk) = arm.roles.get_mut(&crate::cluster::Role::Zookeeper) {
            zk.instance_type = "m7g.large".into();
        }
        ec2.set_image("ami-0000000000000a4a4", "/dev/xvda", "arm64");
        make_plan(&ec2, &arm, &r)
            .await
            .expect("an arm64 cluster plans");
        ec2.set_instance_type(
            "m1.small",
            "i386",
            &["eu-west-1a", "eu-west-1b", "eu-west-1c"],
        );
        let mut old = cluster("old", 3, "m1.small");
        old.ami = crate::cluster::Ami::Id("ami-0000000000000i386".into());
        ec2.set_image("ami-0000000000000i386", "/dev/xvda", "i386");
        let err = make_plan(&ec2, &old, &r)
            .await
            .expect_err("refused")
            .to_string();
        assert!(
            err.starts_with(
                "the image ami-0000000000000i386 is i386, but kcluster pins node_exporter, Prometheus and Alertmanager for x86_64 and arm64 only"
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_monitoring_node_is_planned_and_applied_like_every_node() {
        let ec2 = fake();
        let yaml = "name: watched\nregion: eu-west-1\nzones:\n  - {name: eu-west-1a, cidr: 172.31.0.0/20}\n  - {name: eu-west-1b, cidr: 172.31.16.0/20}\n  - {name: eu-west-1c, cidr: 172.31.32.0/20}\nmonitoring:\n  count: 2\nnetwork:\n  monitoring_cidrs: [10.9.0.0/24]\n";
        let c = crate::topology::load("t.yaml", yaml.as_bytes())
            .expect("valid")
            .cluster;
        let plan = converge(&ec2, &c).await;
        assert_eq!(
            plan.summary().add,
            1 + 8 * 4,
            "a group, and an interface, an Elastic IP, a data volume and an instance per node"
        );
        let live = live_by_node(&ec2);
        assert_eq!(live.len(), 8);
        let m = &live["monitoring-2"][0];
        assert_eq!(m.tag(tags::ROLE), Some("monitoring"));
        assert_eq!(m.zone, "eu-west-1b");
        assert_eq!(plan_for(&ec2, &c).await.summary().add, 0, "converged");
    }

    #[tokio::test]
    async fn duplicates_and_unknown_nodes_are_removed() {
        let ec2 = fake();
        let c = cluster("tidy", 3, "m5.xlarge");
        converge(&ec2, &c).await;
        let mut dup = live_by_node(&ec2)["broker-1"][0].clone();
        dup.primary_interface = None;
        dup.state = InstanceState::Running;
        ec2.insert_instance(dup.clone());
        dup.tags.insert(tags::NODE.into(), "broker-9".into());
        ec2.insert_instance(dup);
        let plan = plan_for(&ec2, &c).await;
        assert_eq!(plan.node("broker-1").map(|n| n.duplicates.len()), Some(1));
        assert_eq!(plan.orphans.len(), 1);
        assert_eq!(plan.summary().destroy, 2);
        let text = plan.render_text();
        // A broker the topology does not know is drained first, like any broker that leaves.
        assert!(
            text.contains("drain broker-9 (i-")
                && text.contains(
                    "its replicas move to broker-1, broker-2, broker-3 through Kafka's reassignment"
                ),
            "{text}"
        );
        // No cluster runs behind the fake: apply terminates it only when told the data may go.
        let accept = Gates {
            moves: crate::operations::drain::Moves {
                accept_data_loss: true,
                ..Default::default()
            },
            ..Gates::skipped()
        };
        with_ec2_time(&ec2, execute(&ec2, &plan, &settings(), &accept, &Silent))
            .await
            .expect("apply");
        let live = live_by_node(&ec2);
        assert_eq!(live.len(), 6);
        assert!(live.values().all(|v| v.len() == 1));
    }

    #[tokio::test]
    async fn a_resource_that_stays_in_use_ends_the_wait_at_the_timeout_saying_so() {
        // Regression: destroy waited 900 s, a number no one could change, and then said only
        // EC2's "in use". The wait is the settings' (--wait-seconds), and the error says so.
        let settings = Settings {
            timeout: Duration::from_millis(50),
            poll: Duration::from_millis(5),
            ..settings()
        };
        let started = std::time::Instant::now();
        let e = super::delete_when_free(&settings, "Gone", "InUse", || async {
            Err(crate::ec2::Ec2Error::new(
                "DeleteNetworkInterface",
                "InUse",
                "held",
            ))
        })
        .await
        .expect_err("still in use");
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(
            e.message,
            "held (still in use after waiting 50ms; --wait-seconds or KCLUSTER_WAIT_SECONDS sets the wait)"
        );
    }

    #[tokio::test]
    async fn two_interfaces_on_one_address_keep_the_one_the_instance_uses() {
        // Regression: the planner took the interface with the lowest id and planned the attached
        // one away as "a second network interface" (moto lets two share an address).
        let ec2 = fake();
        let c = cluster("twins", 3, "m5.xlarge");
        converge(&ec2, &c).await;
        let attached = ec2
            .interfaces()
            .into_iter()
            .find(|n| n.tags.get(tags::NODE).map(String::as_str) == Some("broker-1"))
            .expect("broker-1's interface");
        let mut twin = attached.clone();
        twin.id = "eni-0".into();
        twin.instance_id = None;
        ec2.insert_interface(twin);
        let plan = plan_for(&ec2, &c).await;
        let node = plan.node("broker-1").expect("broker-1");
        assert_eq!(node.interface_id.as_deref(), Some(attached.id.as_str()));
        assert_eq!(node.instance, Action::NoOp);
        let deleted: Vec<&str> = plan.orphans.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(deleted, ["eni-0"]);
    }

    #[tokio::test]
    async fn destroy_touches_only_the_clusters_tagged_resources() {
        let ec2 = fake();
        let c = cluster("doomed", 3, "m5.xlarge");
        converge(&ec2, &c).await;
        let mut other = cluster("kept", 3, "m5.xlarge");
        // Another cluster in the same subnets needs its own addresses.
        for n in &mut other.nodes {
            n.address = std::net::Ipv4Addr::from(u32::from(n.address) + 50);
        }
        converge(&ec2, &other).await;
        let stranger = ec2.insert_instance(Instance {
            id: String::new(),
            state: InstanceState::Running,
            instance_type: "t3.micro".into(),
            zone: "eu-west-1a".into(),
            subnet_id: None,
            private_address: None,
            primary_interface: None,
            image_id: "ami-1".into(),
            tags: Default::default(),
        });
        let inv = Inventory::read(&ec2, "doomed").await.expect("inventory");
        assert_eq!(inv.count(), 25);
        assert!(
            inv.render_text()
                .contains("Destroy: 6 instances, 6 data volumes (their data is lost), 6 network interfaces, 6 Elastic IPs, 1 security group of cluster doomed."),
            "{}",
            inv.render_text()
        );
        with_ec2_time(&ec2, destroy(&ec2, &inv, &settings(), &Silent))
            .await
            .expect("destroy");
        let left = Inventory::read(&ec2, "doomed").await.expect("inventory");
        assert!(left.is_empty(), "{}", left.render_text());
        let kept_volumes = ec2
            .volumes()
            .iter()
            .filter(|v| v.tags.get(tags::CLUSTER).map(String::as_str) == Some("kept"))
            .count();
        assert_eq!(kept_volumes, 6, "the other cluster's volumes stay");
        assert_eq!(
            ec2.addresses()
                .iter()
                .filter(|a| a.tags.get(tags::CLUSTER).map(String::as_str) == Some("kept"))
                .count(),
            6,
            "the other cluster keeps its Elastic IPs"
        );
        let live = ec2.instances();
        assert!(live.iter().any(|i| i.id == stranger && i.state.is_live()));
        assert_eq!(
            live.iter()
                .filter(|i| i.tag(tags::CLUSTER) == Some("kept") && i.state.is_live())
                .count(),
            6
        );
        // Re-running finds nothing.
        assert!(
            Inventory::read(&ec2, "doomed")
                .await
                .expect("inventory")
                .is_empty()
        );
        assert_eq!(ec2.calls().get("TerminateInstances"), Some(&1));
    }

    /// Node name → the allocation ids of the Elastic IPs tagged as its.
    fn addresses_by_node(ec2: &FakeEc2) -> std::collections::BTreeMap<String, Vec<String>> {
        let mut m: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for a in ec2.addresses() {
            m.entry(a.tags.get(tags::NODE).cloned().unwrap_or_default())
                .or_default()
                .push(a.allocation_id);
        }
        m
    }

    #[tokio::test]
    async fn nodes_behind_an_internet_gateway_get_one_elastic_ip_each_on_their_interface() {
        // Regression: nodes launched on interfaces made beforehand get no public address, so in
        // a default VPC (internet gateway, no NAT) they could never install Kafka.
        let ec2 = fake();
        // eu-west-1b routes through a NAT gateway: its nodes need no public address.
        ec2.route_subnet("subnet-00000001", Some("nat-0b"));
        let c = cluster("egress", 3, "m5.xlarge");
        let plan = converge(&ec2, &c).await;
        let text = plan.render_text();
        for part in [
            "  egress eu-west-1a (subnet-00000000, rtb-main): 0.0.0.0/0 via internet gateway igw-default: each node gets an Elastic IP",
            "  egress eu-west-1b (subnet-00000001, rtb-",
            "): 0.0.0.0/0 via NAT gateway nat-0b",
            "  +   public_address.broker-1 ",
        ] {
            assert!(text.contains(part), "{part}\n{text}");
        }
        assert!(!text.contains("public_address.broker-2"), "{text}");
        let by_node = addresses_by_node(&ec2);
        assert_eq!(
            by_node.keys().map(String::as_str).collect::<Vec<_>>(),
            ["broker-1", "broker-3", "zookeeper-1", "zookeeper-3"],
            "one per node in eu-west-1a and eu-west-1c"
        );
        let interfaces = ec2.interfaces();
        for a in ec2.addresses() {
            assert_eq!(by_node[&a.tags[tags::NODE]].len(), 1);
            let eni = interfaces
                .iter()
                .find(|n| Some(&n.id) == a.interface_id.as_ref())
                .expect("associated with an interface");
            assert_eq!(eni.tags.get(tags::NODE), a.tags.get(tags::NODE));
            assert_eq!(
                a.tags.get(tags::CLUSTER).map(String::as_str),
                Some("egress")
            );
        }
        // Re-applying finds them by tag: nothing to do, never a second one.
        assert!(!plan_for(&ec2, &c).await.has_changes());
        converge(&ec2, &c).await;
        assert_eq!(ec2.calls().get("AllocateAddress"), Some(&4));

        // eu-west-1a moves behind a NAT gateway: its nodes' addresses are released.
        ec2.route_subnet("subnet-00000000", Some("nat-0a"));
        let plan = plan_for(&ec2, &c).await;
        let released: Vec<&str> = plan.orphans.iter().map(|o| o.reason.as_str()).collect();
        assert_eq!(
            released,
            [
                "eu-west-1a reaches the internet without a public address now",
                "eu-west-1a reaches the internet without a public address now"
            ]
        );
        converge(&ec2, &c).await;
        assert_eq!(
            addresses_by_node(&ec2)
                .keys()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            ["broker-3", "zookeeper-3"]
        );
    }

    #[tokio::test]
    async fn a_zone_without_a_route_to_the_internet_is_refused_naming_the_subnet_and_the_fix() {
        let ec2 = fake();
        ec2.route_subnet("subnet-00000002", None);
        let r = Renderer::new(&Options::default()).expect("templates");
        let err = make_plan(&ec2, &cluster("island", 3, "m5.xlarge"), &r)
            .await
            .expect_err("no way out")
            .to_string();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("zone eu-west-1c: subnet subnet-00000002 has no route to the internet (route table rtb-")
                && err.contains("add a 0.0.0.0/0 route to a NAT gateway"),
            "{err}"
        );
        assert!(ec2.groups().is_empty() && ec2.interfaces().is_empty());
    }

    #[tokio::test]
    async fn a_lost_answer_to_allocate_address_adopts_the_address_ec2_made() {
        // AllocateAddress has no ClientToken: sent again, it would allocate a second address.
        let ec2 = fake();
        ec2.lose_answer("AllocateAddress");
        let c = cluster("lost-eip", 3, "m5.xlarge");
        converge(&ec2, &c).await;
        let by_node = addresses_by_node(&ec2);
        assert_eq!(by_node.len(), 6);
        assert!(by_node.values().all(|a| a.len() == 1), "{by_node:?}");
        assert!(ec2.addresses().iter().all(|a| a.interface_id.is_some()));
        assert!(!plan_for(&ec2, &c).await.has_changes());
    }

    #[tokio::test]
    async fn a_moved_node_takes_its_elastic_ip_to_its_new_interface() {
        let ec2 = fake();
        let c = cluster("mover", 3, "m5.xlarge");
        converge(&ec2, &c).await;
        let before = addresses_by_node(&ec2)["broker-1"].clone();
        let moved = load(
            "name: mover\nregion: eu-west-1\nzones:\n  - {name: eu-west-1a, cidr: 172.31.0.0/20}\n  - {name: eu-west-1b, cidr: 172.31.16.0/20}\n  - {name: eu-west-1c, cidr: 172.31.32.0/20}\nbrokers:\n  count: 3\n  instance_type: m5.xlarge\n  nodes:\n    - {id: 1, zone: eu-west-1b}\n",
        );
        let plan = plan_for(&ec2, &moved).await;
        let b1 = plan.node("broker-1").expect("broker-1");
        assert_eq!(
            (b1.interface, b1.public_address),
            (Action::Replace, Action::Update)
        );
        converge(&ec2, &moved).await;
        assert_eq!(
            addresses_by_node(&ec2)["broker-1"],
            before,
            "the same address"
        );
        let eni = ec2
            .interfaces()
            .into_iter()
            .find(|n| n.tags.get(tags::NODE).map(String::as_str) == Some("broker-1"))
            .expect("broker-1's interface");
        assert_eq!(eni.zone, "eu-west-1b");
        let a = ec2
            .addresses()
            .into_iter()
            .find(|a| a.allocation_id == before[0])
            .expect("kept");
        assert_eq!(a.interface_id, Some(eni.id));
        assert!(!plan_for(&ec2, &moved).await.has_changes());
    }

    #[tokio::test]
    async fn preflight_refuses_a_full_subnet_and_an_address_someone_else_holds() {
        let ec2 = fake();
        ec2.set_free_addresses("subnet-00000001", 1);
        let stranger = ec2.insert_interface(crate::ec2::NetworkInterface {
            id: String::new(),
            subnet_id: "subnet-00000002".into(),
            vpc_id: "vpc-default".into(),
            zone: "eu-west-1c".into(),
            address: "172.31.32.103".parse().expect("address"),
            instance_id: None,
            tags: Default::default(),
        });
        let r = Renderer::new(&Options::default()).expect("templates");
        let err = make_plan(&ec2, &cluster("crowded", 3, "m5.xlarge"), &r)
            .await
            .expect_err("refused")
            .to_string();
        assert_eq!(
            err.lines().collect::<Vec<_>>(),
            [
                "zone eu-west-1b: subnet subnet-00000001 has 1 free addresses, and apply needs 2 for new nodes' interfaces: free addresses in it, name a larger subnet under `zones[].subnet`, or place fewer nodes in eu-west-1b",
                format!("zone eu-west-1c: broker-3's address 172.31.32.103 is held by network interface {stranger} in subnet subnet-00000002, which is not the cluster's: pin another address for broker-3 in the topology, or free this one").as_str(),
            ]
        );
    }

    #[tokio::test]
    async fn relaunching_on_an_interface_ec2_has_not_detached_yet_is_refused_so_apply_waits() {
        // The fake, like EC2, detaches an interface a while after its instance terminates.
        for skip in [false, true] {
            let ec2 = fake();
            ec2.set_image("ami-0aaaaaaaaaaaaaaaa", "/dev/xvda", "x86_64");
            ec2.set_image("ami-0bbbbbbbbbbbbbbbb", "/dev/xvda", "x86_64");
            // A new image replaces every node on the interface it keeps (a new instance type
            // would only stop, change and start it).
            let c = with_extra("detach", "ami: {id: ami-0aaaaaaaaaaaaaaaa}\n");
            converge(&ec2, &c).await;
            let plan = plan_for(
                &ec2,
                &with_extra("detach", "ami: {id: ami-0bbbbbbbbbbbbbbbb}\n"),
            )
            .await;
            let settings = Settings {
                skip_detach_wait: skip,
                ..settings()
            };
            let gates = Gates::skipped();
            let r = tokio::select! {
                r = execute(&ec2, &plan, &settings, &gates, &Silent) => r,
                _ = async { loop { ec2.boot_all(); tokio::time::sleep(Duration::from_millis(1)).await; } } => unreachable!(),
            };
            match (skip, r) {
                (false, r) => {
                    r.expect("apply waits for the detach");
                }
                (true, r) => {
                    let e = r.expect_err("launched on an attached interface");
                    assert!(
                        e.to_string().contains("InvalidNetworkInterface.InUse"),
                        "{e}"
                    );
                }
            }
        }
    }

    #[tokio::test]
    async fn az_ids_in_the_topology_become_racks_and_are_checked_against_ec2() {
        // The fake's account, like a real one, maps names to IDs its own way: a=az2, b=az3, c=az1.
        let ec2 = fake();
        let zones = |a: &str, b: &str| {
            format!(
                "name: ids\nregion: eu-west-1\nzones:\n  - {{name: eu-west-1a, cidr: 172.31.0.0/20, id: {a}}}\n  - {{name: eu-west-1b, cidr: 172.31.16.0/20, id: {b}}}\n  - {{name: eu-west-1c, cidr: 172.31.32.0/20, id: euw1-az1}}\n"
            )
        };
        let r = Renderer::new(&Options::default()).expect("templates");
        let err = make_plan(&ec2, &load(&zones("euw1-az3", "euw1-az2")), &r)
            .await
            .expect_err("wrong AZ IDs")
            .to_string();
        assert_eq!(
            err.lines().collect::<Vec<_>>(),
            [
                "zones[0].id: zone eu-west-1a is euw1-az2 in this account, not euw1-az3 (euw1-az3 is eu-west-1b); AZ names map to different physical zones in each account: set `id: euw1-az2`, or name the zone whose ID is euw1-az3",
                "zones[1].id: zone eu-west-1b is euw1-az3 in this account, not euw1-az2 (euw1-az2 is eu-west-1a); AZ names map to different physical zones in each account: set `id: euw1-az3`, or name the zone whose ID is euw1-az2",
            ]
        );
        let c = load(&zones("euw1-az2", "euw1-az3"));
        let plan = converge(&ec2, &c).await;
        assert!(
            plan.render_text().contains(
                "  racks are AZ IDs: eu-west-1a=euw1-az2, eu-west-1b=euw1-az3, eu-west-1c=euw1-az1\n"
            ),
            "{}",
            plan.render_text()
        );
        let b1 = plan.node("broker-1").expect("broker-1");
        let props =
            crate::check::live::launched_properties(&b1.desired.user_data).expect("user-data");
        assert_eq!(
            props.get("broker.rack").map(String::as_str),
            Some("euw1-az2")
        );
        // The live check compares the rack with the AZ ID of where the broker runs.
        let observed = crate::provision::workflow::observe(&ec2, &c)
            .await
            .expect("observed");
        let findings = crate::check::live::findings(&ec2, &c, &observed, 4)
            .await
            .expect("findings");
        assert!(
            findings.iter().all(|f| f.rule != "live-broker-rack"),
            "{findings:?}"
        );
        // Were eu-west-1a another AZ, broker-1's rack would be wrong, and check says so.
        let mut moved = observed.clone();
        moved
            .zone_ids
            .insert("eu-west-1a".into(), "euw1-az9".into());
        let findings = crate::check::live::findings(&ec2, &c, &moved, 4)
            .await
            .expect("findings");
        assert!(
            findings.iter().any(|f| f.rule == "live-broker-rack"
                && f.message.contains(
                    "runs in eu-west-1a (euw1-az9) but was launched with broker.rack=euw1-az2"
                )),
            "{findings:?}"
        );
    }

    #[tokio::test]
    async fn without_az_ids_racks_are_zone_names_and_plan_shows_their_ids() {
        let ec2 = fake();
        let plan = plan_for(&ec2, &cluster("names", 3, "m5.xlarge")).await;
        assert!(
            plan.render_text().contains("  racks are zone names, whose AZ IDs in this account are eu-west-1a=euw1-az2, eu-west-1b=euw1-az3, eu-west-1c=euw1-az1: set zones[].id to rack by AZ ID"),
            "{}",
            plan.render_text()
        );
    }

    #[tokio::test]
    async fn preflight_asks_dryrun_of_the_elastic_ip_calls_only_where_a_zone_needs_them() {
        let ec2 = fake();
        for op in [
            "AllocateAddress",
            "ReleaseAddress",
            "RevokeSecurityGroupIngress",
        ] {
            ec2.deny(op);
        }
        let r = Renderer::new(&Options::default()).expect("templates");
        let err = make_plan(&ec2, &cluster("denied", 3, "m5.xlarge"), &r)
            .await
            .expect_err("denied")
            .to_string();
        assert_eq!(
            denied_operations(&err),
            [
                "RevokeSecurityGroupIngress",
                "AllocateAddress",
                "ReleaseAddress"
            ],
            "{err}"
        );
        // Behind NAT gateways no Elastic IP call is made, so none is asked.
        for subnet in ["subnet-00000000", "subnet-00000001", "subnet-00000002"] {
            ec2.route_subnet(subnet, Some("nat-1"));
        }
        let err = make_plan(&ec2, &cluster("denied", 3, "m5.xlarge"), &r)
            .await
            .expect_err("denied")
            .to_string();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("ec2:RevokeSecurityGroupIngress is denied"),
            "{err}"
        );
    }

    /// The operations a refused plan names as denied, in its order.
    fn denied_operations(err: &str) -> Vec<&str> {
        err.lines()
            .filter_map(|l| l.strip_prefix("ec2:"))
            .filter_map(|l| l.split_once(' ').map(|(op, _)| op))
            .collect()
    }

    #[tokio::test]
    async fn preflight_asks_dryrun_of_the_volume_and_in_place_calls_the_plan_makes() {
        const VOLUME_AND_IN_PLACE: [&str; 6] = [
            "CreateVolume",
            "AttachVolume",
            "ModifyVolume",
            "StopInstances",
            "ModifyInstanceAttribute",
            "StartInstances",
        ];
        let r = Renderer::new(&Options::default()).expect("templates");
        // A new cluster creates and attaches volumes; nothing is stopped or grown.
        let ec2 = fake();
        for op in VOLUME_AND_IN_PLACE {
            ec2.deny(op);
        }
        let err = make_plan(&ec2, &cluster("volumes", 3, "m5.xlarge"), &r)
            .await
            .expect_err("denied")
            .to_string();
        assert_eq!(
            denied_operations(&err),
            ["CreateVolume", "AttachVolume"],
            "{err}"
        );

        // A running cluster whose brokers change type and grow their volumes: stop, modify,
        // start and ModifyVolume are asked; no volume is created or attached.
        let ec2 = fake();
        converge(&ec2, &cluster("volumes", 3, "m5.xlarge")).await;
        for op in VOLUME_AND_IN_PLACE {
            ec2.deny(op);
        }
        let mut changed = cluster("volumes", 3, "m5.2xlarge");
        if let Some(spec) = changed.roles.get_mut(&crate::cluster::Role::Broker)
            && let Some(v) = spec.volume.as_mut()
        {
            v.size_gib += 100;
        }
        let err = make_plan(&ec2, &changed, &r)
            .await
            .expect_err("denied")
            .to_string();
        assert_eq!(
            denied_operations(&err),
            [
                "ModifyVolume",
                "StopInstances",
                "ModifyInstanceAttribute",
                "StartInstances"
            ],
            "{err}"
        );
        // Allowed, the same plan passes preflight.
        let allowed = fake();
        converge(&allowed, &cluster("volumes", 3, "m5.xlarge")).await;
        make_plan(&allowed, &changed, &r).await.expect("allowed");
    }

    /// The nodes whose instance the plan changes.
    fn still_to_change(plan: &Plan) -> Vec<&str> {
        plan.nodes
            .iter()
            .filter(|n| n.instance != Action::NoOp)
            .map(|n| n.node.as_str())
            .collect()
    }

    fn quorum_view(leader: i32, lagging: Option<i32>) -> crate::operations::roll::QuorumView {
        crate::operations::roll::QuorumView {
            leader: Some(leader),
            high_watermark: 500,
            voters: [9001, 9002, 9003]
                .into_iter()
                .map(|id| crate::operations::roll::Voter {
                    id,
                    log_end_offset: 500,
                    last_caught_up_ms: if Some(id) == lagging { -1 } else { 10_000 },
                })
                .collect(),
        }
    }

    #[tokio::test]
    async fn kraft_controllers_roll_leader_last_each_gated_on_a_caught_up_quorum() {
        let ec2 = fake();
        converge(&ec2, &with_extra("quorum", "metadata: kraft\n")).await;
        let heavier = with_extra("quorum", "metadata: kraft\ncontrollers:\n  heap: 768m\n");
        let plan = plan_for(&ec2, &heavier).await;
        assert_eq!(
            still_to_change(&plan),
            ["controller-1", "controller-2", "controller-3"]
        );
        // controller-1 (9001) leads. Then controller-2 goes first; after it, controller-3 is
        // checked, and after controller-3 the restarted voter never catches up.
        let health = Scripted {
            zk: std::sync::Mutex::new(vec![healthy_zk()]),
            kafka: std::sync::Mutex::new(vec![Ok(kafka_view(&[1, 2, 3]))]),
            connect: std::sync::Mutex::new(vec![Vec::new()]),
            quorum: std::sync::Mutex::new(vec![
                Ok(quorum_view(9001, None)),       // reachable?
                Ok(quorum_view(9001, None)),       // order: leader 9001 last → controller-2
                Ok(quorum_view(9001, None)),       // controller-2 may stop
                Ok(quorum_view(9001, Some(9002))), // controller-2 restarting…
                Ok(quorum_view(9001, None)),       // … and caught up
                Ok(quorum_view(9001, None)),       // order → controller-3
                Ok(quorum_view(9001, None)),       // controller-3 may stop
                Ok(quorum_view(9001, Some(9003))), // controller-3 never catches up
            ]),
        };
        let err = stopped_by_gate(&ec2, &plan, &health).await;
        assert_eq!(
            (err.stage, err.failures[0].resource.as_str()),
            ("health gate", "controller-3")
        );
        let e = &err.failures[0].error;
        assert!(
            e.starts_with(&format!(
                "after restarting controller-3: waited 200ms until {}",
                crate::operations::roll::KRAFT_CAUGHT_UP
            )),
            "{e}"
        );
        assert!(e.contains("9003: log end 500, caught up at -1"), "{e}");
        // controller-2 and controller-3 were restarted; the leader was not touched.
        let again = plan_for(&ec2, &heavier).await;
        assert_eq!(still_to_change(&again), ["controller-1"]);
        assert_eq!(ec2.calls().get("StopInstances"), Some(&2));

        // A quorum that does not answer: refused before anything changes.
        let down = Scripted {
            zk: std::sync::Mutex::new(vec![healthy_zk()]),
            kafka: std::sync::Mutex::new(vec![Ok(kafka_view(&[1, 2, 3]))]),
            connect: std::sync::Mutex::new(vec![Vec::new()]),
            quorum: std::sync::Mutex::new(vec![Err("127.0.0.1:9094: connection refused".into())]),
        };
        let e = refused_by_gates(&ec2, &again, &down).await;
        assert!(
            e.contains("no controller node answers (127.0.0.1:9094: connection refused)"),
            "{e}"
        );
        assert_eq!(ec2.calls().get("StopInstances"), Some(&2), "nothing more");
    }

    #[tokio::test]
    async fn a_running_quorums_members_do_not_change_behind_the_gates() {
        let ec2 = fake();
        converge(&ec2, &with_extra("members", "")).await;
        let five = with_extra("members", "zookeeper:\n  count: 5\n");
        let plan = plan_for(&ec2, &five).await;
        let health = Scripted {
            zk: std::sync::Mutex::new(vec![healthy_zk()]),
            kafka: std::sync::Mutex::new(vec![Ok(kafka_view(&[1, 2, 3]))]),
            connect: std::sync::Mutex::new(vec![Vec::new()]),
            quorum: std::sync::Mutex::new(vec![Err("no controllers".into())]),
        };
        let gates = Gates {
            health: Some(&health),
            timeout: Duration::from_millis(100),
            poll: Duration::from_millis(10),
            moves: Default::default(),
        };
        let before = ec2.calls();
        let err = with_ec2_time(&ec2, execute(&ec2, &plan, &settings(), &gates, &Silent))
            .await
            .expect_err("refused");
        assert_eq!(
            (err.stage, err.failures[0].resource.as_str()),
            ("health gates", "zookeeper membership")
        );
        let e = &err.failures[0].error;
        assert!(
            e.starts_with("the plan adds zookeeper-4, zookeeper-5 while zookeeper-1, zookeeper-2, zookeeper-3 run"),
            "{e}"
        );
        assert!(e.ends_with("`kcluster apply --skip-health-gates` makes the change without gates. Nothing was changed."), "{e}");
        assert_eq!(ec2.calls(), before, "no call at all");
        // Scale-out of brokers is no membership change of a quorum.
        let more_brokers = with_extra("members", "brokers:\n  count: 4\n");
        let plan = plan_for(&ec2, &more_brokers).await;
        with_ec2_time(&ec2, execute(&ec2, &plan, &settings(), &gates, &Silent))
            .await
            .expect("brokers are added");
        // With the gates skipped (a cluster already down), the change is made.
        let plan = plan_for(
            &ec2,
            &with_extra("members", "zookeeper:\n  count: 5\nbrokers:\n  count: 4\n"),
        )
        .await;
        with_ec2_time(
            &ec2,
            execute(&ec2, &plan, &settings(), &Gates::skipped(), &Silent),
        )
        .await
        .expect("made without gates");
    }
}
