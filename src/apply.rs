//! Executes a Plan against EC2 in dependency waves: security group → network interfaces →
//! instances (bounded concurrency) → rolling replacements (one node at a time, ZooKeeper first)
//! → removal of what the topology no longer has. Every resource is tagged at creation, so an
//! interrupted apply leaves nothing unknown behind and the next plan picks up where it stopped.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;

use crate::desired::client_token;
use crate::ec2::{
    Ec2, Ec2Error, InstanceSpec, InstanceState, InterfaceSpec, Rule, SecurityGroupSpec, tags,
};
use crate::plan::{Action, NodeChange, OrphanKind, Plan};
use crate::progress::Reporter;

#[derive(Debug, Clone)]
pub struct Settings {
    /// Requests in flight at once within a wave.
    pub parallelism: usize,
    /// Pause between polls while waiting for instance states.
    pub poll: Duration,
    /// How long to wait for instances to reach a state.
    pub timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            parallelism: 16,
            poll: Duration::from_secs(5),
            timeout: Duration::from_secs(900),
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
    pub interfaces_created: usize,
    pub interfaces_deleted: usize,
}

struct Run<'a> {
    ec2: &'a dyn Ec2,
    plan: &'a Plan,
    settings: &'a Settings,
    reporter: &'a dyn Reporter,
    outcome: Outcome,
}

/// Executes `plan`. On failure, the error lists every resource that failed in the failing wave.
pub async fn execute(
    ec2: &dyn Ec2,
    plan: &Plan,
    settings: &Settings,
    reporter: &dyn Reporter,
) -> Result<Outcome, ApplyError> {
    let mut run = Run {
        ec2,
        plan,
        settings,
        reporter,
        outcome: Outcome::default(),
    };
    let group_id = run.group().await?;
    let mut interfaces = run.create_interfaces(&group_id).await?;
    run.launch_new(&interfaces).await?;
    run.replace(&group_id, &mut interfaces).await?;
    run.remove().await?;
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
                    vpc_id: g.vpc_id.clone(),
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
            subnet_id: n.desired.subnet_id.clone(),
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
            user_data: d.user_data.clone(),
            volumes: d.volumes.clone(),
            key_name: d.key_name.clone(),
            client_token: client_token(&self.plan.cluster, &n.node, interface_id, n.generation),
            tags: t,
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
            return Ok(());
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
        waited
    }

    /// Replaces nodes one at a time, ZooKeeper first, so a quorum and the brokers' replicas are
    /// never down by more than one node.
    async fn replace(
        &mut self,
        group_id: &str,
        interfaces: &mut BTreeMap<String, String>,
    ) -> Result<(), ApplyError> {
        let todo: Vec<&NodeChange> = self
            .plan
            .nodes
            .iter()
            .filter(|n| n.instance == Action::Replace || n.interface == Action::Replace)
            .collect();
        if todo.is_empty() {
            return Ok(());
        }
        self.reporter
            .phase("replace nodes (one at a time)", todo.len());
        for n in todo {
            let resource = format!("instance.{}", n.node);
            let fail =
                |e: &dyn ToString| ApplyError::one("replacing nodes", &resource, e.to_string());
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
            // 4. Launch the new generation and wait until it runs.
            let id = self
                .ec2
                .run_instance(&self.instance_spec(n, &eni))
                .await
                .map_err(|e| fail(&e))?;
            self.outcome.launched.push(id.clone());
            self.wait_for(std::slice::from_ref(&id), InstanceState::Running)
                .await?;
            self.reporter.step(&resource);
        }
        self.reporter.finish();
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
        if instances.is_empty() && interfaces.is_empty() {
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
        wait_until_detached(self.ec2, &self.plan.cluster, ids, self.settings).await
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
mod tests {
    use std::time::Duration;

    use super::{Settings, execute};
    use crate::cluster::Cluster;
    use crate::destroy::{Inventory, destroy};
    use crate::ec2::fake::FakeEc2;
    use crate::ec2::{Ec2, Instance, InstanceState, describe_calls, tags};
    use crate::plan::{Action, Plan};
    use crate::progress::Silent;
    use crate::render::{Options, Renderer};
    use crate::workflow::make_plan;

    const AL2023: &str = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64";

    fn fake() -> FakeEc2 {
        let f = FakeEc2::with_default_subnets(&[
            ("eu-west-1a", "172.31.0.0/20"),
            ("eu-west-1b", "172.31.16.0/20"),
            ("eu-west-1c", "172.31.32.0/20"),
        ]);
        f.set_parameter(AL2023, "ami-0123456789abcdef0");
        f.set_image("ami-0123456789abcdef0", "/dev/xvda", "x86_64");
        f
    }

    fn cluster(name: &str, brokers: u32, broker_type: &str) -> Cluster {
        let yaml = format!(
            "name: {name}\nregion: eu-west-1\nzones:\n  - {{name: eu-west-1a, cidr: 172.31.0.0/20}}\n  - {{name: eu-west-1b, cidr: 172.31.16.0/20}}\n  - {{name: eu-west-1c, cidr: 172.31.32.0/20}}\nbrokers:\n  count: {brokers}\n  instance_type: {broker_type}\n"
        );
        match crate::topology::load("test.yaml", yaml.as_bytes()) {
            Ok(l) => l.cluster,
            Err(r) => panic!("{r}"),
        }
    }

    fn settings() -> Settings {
        Settings {
            parallelism: 8,
            poll: Duration::ZERO,
            timeout: Duration::from_secs(5),
        }
    }

    async fn plan_for(ec2: &FakeEc2, c: &Cluster) -> Plan {
        let r = Renderer::new(&Options::default()).expect("templates");
        make_plan(ec2, c, &r).await.expect("plan").0
    }

    /// Plans and applies; the fake boots pending instances while apply waits.
    async fn converge(ec2: &FakeEc2, c: &Cluster) -> Plan {
        let plan = plan_for(ec2, c).await;
        let booting = async {
            loop {
                ec2.boot_all();
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        let settings = settings();
        tokio::select! {
            r = execute(ec2, &plan, &settings, &Silent) => { r.expect("apply"); }
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
            13,
            "1 group + 6 interfaces + 6 instances"
        );
        let live = live_by_node(&ec2);
        assert_eq!(live.len(), 6);
        assert!(live.values().all(|v| v.len() == 1));
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
            vec![7, 7],
            "subnets, groups, interfaces, instances, image, type offerings, type architectures"
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
        let err = tokio::select! {
            r = execute(&ec2, &plan, &settings, &Silent) => r.expect_err("injected failure"),
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
                "network_interface.broker-5"
            ]
        );
        converge(&ec2, &bigger).await;
        let live: Vec<String> = ec2.instances().iter().map(|i| i.id.clone()).collect();
        assert!(before.iter().all(|id| live.contains(id)));
    }

    #[tokio::test]
    async fn instance_type_change_replaces_in_place_keeping_addresses() {
        let ec2 = fake();
        converge(&ec2, &cluster("resize", 3, "m5.xlarge")).await;
        let enis: Vec<String> = ec2.interfaces().iter().map(|n| n.id.clone()).collect();
        let bigger = cluster("resize", 3, "m5.2xlarge");
        let plan = plan_for(&ec2, &bigger).await;
        let b1 = plan.node("broker-1").expect("broker-1");
        assert_eq!(b1.instance, Action::Replace);
        assert_eq!(
            b1.instance_reasons,
            vec!["instance type m5.xlarge → m5.2xlarge"]
        );
        assert_eq!(b1.generation, 2);
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
        assert_eq!(live["broker-2"][0].tag(tags::GENERATION), Some("2"));
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
            assert_eq!(devices, vec!["/dev/sda1", "/dev/sdf"], "{}", n.node);
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
            1 + 8 * 2,
            "a group, and an interface and instance per node"
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
        converge(&ec2, &c).await;
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
        assert_eq!(inv.count(), 13);
        destroy(&ec2, &inv, &settings(), &Silent)
            .await
            .expect("destroy");
        let left = Inventory::read(&ec2, "doomed").await.expect("inventory");
        assert!(left.instances.is_empty() && left.interfaces.is_empty() && left.groups.is_empty());
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
}
