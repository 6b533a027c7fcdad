//! The AWS-backed commands: plan, apply, destroy, status, check. Each connects, runs the
//! workflow, prints, and returns the exit code.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal};
use std::time::Duration;

use serde_json::json;

use crate::cli::output;
use crate::cli::terminal::Terminal;
use crate::cli::{self, ApplyArgs, AwsArgs, CheckArgs, DestroyArgs, Output, PlanArgs, StatusArgs};
use crate::cluster::Cluster;
use crate::ec2::paced::Paced;
use crate::ec2::sdk::{Connection, SdkEc2};
use crate::ec2::{Ec2, tags};
use crate::error::{Error, Finish, Result};
use crate::operations::drain;
use crate::provision::apply::{self, Settings};
use crate::provision::destroy::{self, Inventory};
use crate::provision::lease::Lease;
use crate::provision::ownership;
use crate::provision::plan::Observed;
use crate::provision::workflow;
use crate::render::{self, Renderer};

async fn connect(aws: &AwsArgs, region: &str) -> Result<Paced<SdkEc2>> {
    SdkEc2::connect(&Connection {
        profile: aws.profile.clone(),
        region: Some(region.to_string()),
        endpoint_url: aws.endpoint_url.clone(),
        timeout: Some(Duration::from_secs_f64(aws.aws_timeout_seconds)),
    })
    .await
    .map(|ec2| Paced::new(ec2, Duration::from_secs_f64(aws.wait_seconds)))
    .map_err(|e| Error::Usage(e.to_string()))
}

fn settings(aws: &AwsArgs, parallelism: u16) -> Settings {
    Settings {
        parallelism: usize::from(parallelism),
        poll: Duration::from_secs_f64(aws.poll_seconds),
        timeout: Duration::from_secs_f64(aws.wait_seconds),
        skip_detach_wait: false,
    }
}

fn print_calls(aws: &AwsArgs, ec2: &dyn Ec2) {
    if aws.api_calls {
        let calls = ec2.calls();
        let total: u64 = calls.values().sum();
        let list: Vec<String> = calls.iter().map(|(k, v)| format!("{k}={v}")).collect();
        crate::errln!("API calls: {total} ({})", list.join(", "));
    }
}

fn renderer(templates: &cli::TemplatesArg) -> Result<Renderer> {
    Ok(Renderer::new(&render::Options {
        templates_dir: templates.templates.clone(),
        ..Default::default()
    })?)
}

/// Prints the account and region a command that changes EC2 acts on (before it asks), so a
/// wrong profile or stray environment keys show before anything happens.
async fn say_who(ec2: &Paced<SdkEc2>, region: &str) -> Result<()> {
    let who = ec2.inner().identity().await.map_err(|e| {
        Error::Aws(format!(
            "cannot tell which AWS account these credentials act on: {e}"
        ))
    })?;
    crate::outln!("AWS account {} ({}), region {region}", who.account, who.arn);
    Ok(())
}

/// Asks on the terminal; refuses outright when stdin is not one.
fn confirm(question: &str, expected: &str, refuse: &str) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::Usage(refuse.to_string()));
    }
    output::err(&format!("{question} "));
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Error::Usage(format!("cannot read the answer: {e}")))?;
    Ok(line.trim() == expected)
}

pub async fn plan(a: PlanArgs) -> Result<i32> {
    let loaded = cli::load_to_build(&a.file.file)?;
    let renderer = renderer(&a.templates)?;
    let ec2 = connect(&a.aws, &loaded.cluster.region).await?;
    let (mut plan, _) = workflow::make_plan(&ec2, &loaded.cluster, &renderer).await?;
    if drain::concerns(&plan) || a.reassignment_out.is_some() || a.moves.move_rate.is_some() {
        let rate = a.moves.move_rate.unwrap_or_default();
        plan.replicas = Some(read_replicas(&plan, &loaded.cluster).await);
        plan.throttle = Some(read_throttle(&plan, &loaded.cluster, rate).await);
    }
    match a.output {
        Output::Text => output::out(&plan.render_text()),
        Output::Json => crate::outln!(
            "{}",
            serde_json::to_string_pretty(&plan.to_json()).unwrap_or_default()
        ),
    }
    print_calls(&a.aws, &ec2);
    if let Some(path) = &a.reassignment_out {
        write_reassignment(&plan, path)?;
    }
    Ok(if a.detailed_exitcode && plan.has_changes() {
        2
    } else {
        0
    })
}

/// What moves between brokers, read from the running cluster (briefly: plan must not hang on a
/// cluster it cannot reach).
async fn read_replicas(plan: &crate::provision::plan::Plan, cluster: &Cluster) -> drain::Outlook {
    let network = crate::operations::health::Network {
        client_port: cluster.network.client_port,
        timeout: Duration::from_secs(3),
    };
    drain::outlook(plan, &network, Duration::from_secs(10)).await
}

/// The replication throttle configs of the running cluster (briefly, as `read_replicas`).
async fn read_throttle(
    plan: &crate::provision::plan::Plan,
    cluster: &Cluster,
    rate: crate::kafka::throttle::MoveRate,
) -> drain::Throttling {
    // A cluster that did not answer for the replicas is not asked again (plan stays brief).
    if let Some(drain::Outlook::Unread { why }) = &plan.replicas {
        return drain::Throttling {
            rate: rate.to_string(),
            left: None,
            others: Vec::new(),
            unread: Some(why.clone()),
        };
    }
    let network = crate::operations::health::Network {
        client_port: cluster.network.client_port,
        timeout: Duration::from_secs(3),
    };
    drain::throttling(plan, &network, rate, Duration::from_secs(10)).await
}

/// Writes the reassignment `apply --rebalance` would start, in `kafka-reassign-partitions.sh`'s
/// format; fails when the cluster could not be read or refuses the drain.
fn write_reassignment(plan: &crate::provision::plan::Plan, path: &std::path::Path) -> Result<()> {
    let proposal = match &plan.replicas {
        Some(drain::Outlook::Read { rebalance, .. }) => rebalance,
        Some(drain::Outlook::Refused { refusal }) => {
            return Err(Error::Failed(format!(
                "no reassignment written to {}: {refusal}",
                path.display()
            )));
        }
        Some(drain::Outlook::Unread { why }) => {
            return Err(Error::Failed(format!(
                "no reassignment written to {}: {why}",
                path.display()
            )));
        }
        None => return Err(Error::Failed("the cluster was not read".into())),
    };
    let text = serde_json::to_string_pretty(&proposal.kafka_json()).unwrap_or_default();
    std::fs::write(path, text + "\n").map_err(|source| Error::Write {
        path: path.to_path_buf(),
        source,
    })?;
    crate::errln!(
        "Wrote {} partition moves ({}) to {}: what `kcluster apply {}` starts now; `kafka-reassign-partitions.sh --execute --reassignment-json-file {}` starts the same.",
        proposal.moves.len(),
        if proposal.moves.is_empty() {
            "nothing moves".to_string()
        } else {
            drain::summary(proposal)
        },
        path.display(),
        drain::REBALANCE_FLAG,
        path.display()
    );
    Ok(())
}

/// The simulated topic of `check`: `num.partitions` rounded up to a multiple of the broker
/// count (so leaders spread evenly), and the default replication factor.
fn sample_topic(cluster: &Cluster, partitions: Option<u32>, rf: Option<u32>) -> (u32, u32) {
    let brokers = cluster.brokers().count().max(1) as u32;
    let configured = cluster
        .broker_settings
        .get("num.partitions")
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(1);
    let p = partitions.unwrap_or_else(|| configured.max(1).div_ceil(brokers) * brokers);
    (p, rf.unwrap_or_else(|| cluster.replication_factor()))
}

/// Runs `run` holding the cluster's lease (taken through a client of its own).
async fn leased<F>(
    aws: &AwsArgs,
    cluster: &str,
    region: &str,
    command: &str,
    break_lease: bool,
    run: F,
) -> Result<i32>
where
    F: std::future::Future<Output = Result<i32>>,
{
    let ec2 = connect(aws, region).await?;
    let lease = Lease::acquire(&ec2, cluster, command, break_lease).await?;
    let result = run.await;
    lease.release(&ec2).await;
    result
}

pub async fn apply(a: ApplyArgs) -> Result<i32> {
    // Once it changes EC2, apply's report must survive a closed stdout (`| head`).
    output::keep_report_on_stderr();
    let c = cli::load_to_build(&a.file.file)?.cluster;
    leased(
        &a.aws,
        &c.name,
        &c.region,
        "apply",
        a.break_lease,
        apply_held(&a),
    )
    .await
}

async fn apply_held(a: &ApplyArgs) -> Result<i32> {
    let loaded = cli::load_to_build(&a.file.file)?;
    let cluster = &loaded.cluster;
    let renderer = renderer(&a.templates)?;
    let ec2 = connect(&a.aws, &cluster.region).await?;
    say_who(&ec2, &cluster.region).await?;
    let (mut plan, observed) = workflow::make_plan(&ec2, cluster, &renderer).await?;
    let moves = a.rebalance || drain::concerns(&plan);
    if moves && !a.skip_health_gates {
        plan.replicas = Some(read_replicas(&plan, cluster).await);
    }
    if (moves || a.moves.move_rate.is_some()) && !a.skip_health_gates {
        let rate = a.moves.move_rate.unwrap_or_default();
        plan.throttle = Some(read_throttle(&plan, cluster, rate).await);
    }
    let left = plan.throttle.as_ref().is_some_and(|t| t.left.is_some());
    output::out(&plan.render_text());
    let rebalance = match &plan.replicas {
        Some(drain::Outlook::Read { rebalance, .. }) if a.rebalance => Some(rebalance),
        _ => None,
    };
    if let Some(r) = rebalance.filter(|r| !r.moves.is_empty()) {
        crate::outln!(
            "Rebalance ({}): {}",
            drain::REBALANCE_FLAG,
            drain::summary(r)
        );
    }
    let rebalances = rebalance.is_some_and(|r| !r.moves.is_empty());
    if (plan.has_changes() || rebalances || left) && !a.yes {
        let go = confirm(
            &format!(
                "Apply these changes to cluster {}? Type `yes`:",
                cluster.name
            ),
            "yes",
            "standard input is not a terminal, so kcluster cannot ask: re-run with --yes to apply without confirmation",
        )?;
        if !go {
            crate::outln!("Apply cancelled; nothing was changed.");
            return Ok(1);
        }
    }
    let done = interruptible(
        Finish::Apply,
        converge(a, cluster, &renderer, &ec2, &plan, observed),
    )
    .await;
    print_calls(&a.aws, &ec2);
    done
}

/// Apply after the confirmation: execute the plan, plan again (must be empty), check.
async fn converge(
    a: &ApplyArgs,
    cluster: &Cluster,
    renderer: &Renderer,
    ec2: &dyn Ec2,
    plan: &crate::provision::plan::Plan,
    mut observed: Observed,
) -> Result<i32> {
    let left = plan.throttle.as_ref().is_some_and(|t| t.left.is_some());
    if plan.has_changes() || a.rebalance || left {
        let reporter = Terminal::detect();
        let settings = settings(&a.aws, a.parallelism);
        let network = crate::operations::health::Network {
            client_port: cluster.network.client_port,
            timeout: Duration::from_secs(5),
        };
        let gates = apply::Gates {
            health: (!a.skip_health_gates)
                .then_some(&network as &dyn crate::operations::health::Health),
            timeout: Duration::from_secs_f64(a.gate_seconds),
            poll: Duration::from_secs_f64(a.aws.poll_seconds),
            moves: drain::Moves {
                rebalance: a.rebalance,
                accept_data_loss: a.accept_data_loss,
                skip_drain: false,
                rate: a.moves.move_rate.unwrap_or_default(),
                clear_left: left,
                keep_throttle: false,
            },
        };
        let outcome = apply::execute(ec2, plan, &settings, &gates, &reporter)
            .await
            .map_err(|e| Error::Failed(format!("{e}\n({})", Finish::Apply.sentence())))?;
        let (after, now) = workflow::make_plan(ec2, cluster, renderer).await?;
        observed = now;
        if after.has_changes() {
            return Err(Error::Failed(format!(
                "apply finished, but planning again still shows changes:\n{}",
                after.render_text()
            )));
        }
        crate::outln!(
            "Apply complete: {} instances launched, {} restarted in place, {} terminated, {} data volumes created, {} network interfaces created, {} deleted, {} Elastic IPs allocated, {} released. Planning again shows no changes.",
            outcome.launched.len(),
            outcome.restarted.len(),
            outcome.terminated.len(),
            outcome.volumes_created,
            outcome.interfaces_created,
            outcome.interfaces_deleted,
            outcome.addresses_allocated,
            outcome.addresses_released
        );
        if outcome.replicas_moved > 0 {
            crate::outln!(
                "{} replicas moved through Kafka's reassignment, each in sync before any broker was terminated.",
                outcome.replicas_moved
            );
        }
        let registrations = &outcome.registrations;
        if !registrations.unregistered.is_empty() {
            crate::outln!(
                "Unregistered from the KRaft controllers: {}.",
                registrations.unregistered.join(", ")
            );
        }
        if !registrations.by_hand.is_empty() {
            crate::outln!(
                "Terminated brokers stay registered with the KRaft controllers, fenced (apply ran without health gates); once the cluster answers, run: {}",
                registrations.by_hand.join("; ")
            );
        }
    }
    let (partitions, rf) = sample_topic(cluster, None, None);
    let report = workflow::check_report(cluster, partitions, rf, Some(ec2), Some(observed)).await?;
    output::out(&report.render_text());
    Ok(if report.ok() { 0 } else { 1 })
}

/// Runs `work` until it ends or Ctrl-C arrives (exit 130, saying how to finish). The handler is
/// installed only here, so Ctrl-C at a confirmation prompt still ends kcluster at once.
async fn interruptible(finish: Finish, work: impl Future<Output = Result<i32>>) -> Result<i32> {
    tokio::select! {
        r = work => r,
        Ok(()) = tokio::signal::ctrl_c() => Err(Error::Interrupted { finish }),
    }
}

pub async fn destroy(a: DestroyArgs) -> Result<i32> {
    output::keep_report_on_stderr();
    let (name, region) = destroy_target(&a)?;
    leased(
        &a.aws,
        &name,
        &region,
        "destroy",
        a.break_lease,
        destroy_held(&a, &name, &region),
    )
    .await
}

/// The cluster `destroy` is asked to remove, and its region.
fn destroy_target(a: &DestroyArgs) -> Result<(String, String)> {
    Ok(match (&a.file, &a.cluster, &a.region) {
        (Some(f), _, _) => {
            let loaded = cli::load(f)?;
            (loaded.cluster.name, loaded.cluster.region)
        }
        (None, Some(c), Some(r)) => (c.clone(), r.clone()),
        _ => {
            return Err(Error::Usage(
                "name the cluster: -f FILE, or --cluster NAME --region REGION".into(),
            ));
        }
    })
}

async fn destroy_held(a: &DestroyArgs, name: &str, region: &str) -> Result<i32> {
    let (name, region) = (name.to_string(), region.to_string());
    let ec2 = connect(&a.aws, &region).await?;
    say_who(&ec2, &region).await?;
    let inventory = Inventory::read(&ec2, &name)
        .await
        .map_err(|e| Error::Aws(e.to_string()))?;
    let mut foreign = ownership::foreign(
        &name,
        &inventory.groups,
        &inventory.interfaces,
        &inventory.instances,
        &inventory.addresses,
    );
    foreign.extend(inventory.foreign_network.iter().cloned());
    if let Some(refusal) = ownership::refuse_foreign(&name, &foreign) {
        return Err(Error::Usage(refusal));
    }
    if inventory.is_empty() {
        crate::outln!(
            "Nothing carries the tag {}={name} in {region}; nothing to destroy.",
            tags::CLUSTER
        );
        print_calls(&a.aws, &ec2);
        return Ok(0);
    }
    output::out(&inventory.render_text());
    if !a.yes {
        let go = confirm(
            &format!(
                "Type the cluster name ({name}) to destroy these {} resources:",
                inventory.count()
            ),
            &name,
            "standard input is not a terminal, so kcluster cannot ask: re-run with --yes to destroy without confirmation",
        )?;
        if !go {
            crate::outln!("Destroy cancelled; nothing was changed.");
            return Ok(1);
        }
    }
    let done = interruptible(Finish::Destroy, remove(a, &name, &ec2, &inventory)).await;
    print_calls(&a.aws, &ec2);
    done
}

/// Destroy after the confirmation: remove everything, then read again (must find nothing).
async fn remove(a: &DestroyArgs, name: &str, ec2: &dyn Ec2, inventory: &Inventory) -> Result<i32> {
    let reporter = Terminal::detect();
    let settings = settings(&a.aws, a.parallelism);
    destroy::destroy(ec2, inventory, &settings, &reporter)
        .await
        .map_err(|e| Error::Failed(format!("{e}\n({})", Finish::Destroy.sentence())))?;
    let left = Inventory::read(ec2, name)
        .await
        .map_err(|e| Error::Aws(e.to_string()))?;
    let remaining = left.instances.iter().filter(|i| i.state.is_live()).count()
        + left.interfaces.len()
        + left.addresses.len()
        + left.groups.len()
        + left.network.count();
    if remaining > 0 {
        return Err(Error::Failed(format!(
            "destroy finished but {remaining} resources remain:\n{}",
            left.render_text()
        )));
    }
    crate::outln!(
        "Destroyed cluster {name}: {} resources removed.",
        inventory.count()
    );
    Ok(0)
}

pub async fn status(a: StatusArgs) -> Result<i32> {
    let loaded = cli::load(&a.file.file)?;
    let cluster = &loaded.cluster;
    for (node, _) in &a.endpoints {
        if cluster.node(node).is_none() {
            return Err(Error::Usage(format!(
                "--endpoint {node}=…: the topology has no node {node}"
            )));
        }
    }
    let ec2 = if a.health_only {
        None
    } else {
        Some(connect(&a.aws, &cluster.region).await?)
    };
    let mut rows = match &ec2 {
        Some(ec2) => status_rows(cluster, &workflow::observe(ec2, cluster).await?),
        None => cluster
            .nodes
            .iter()
            .map(|n| {
                json!({"node": n.name, "role": n.role, "id": n.id, "zone": n.zone,
                "address": n.address.to_string()})
            })
            .collect(),
    };
    let endpoints: BTreeMap<String, std::net::SocketAddr> = a.endpoints.iter().cloned().collect();
    let timeout = std::time::Duration::from_secs(a.health_timeout);
    let health = tokio::task::spawn_blocking({
        let cluster = cluster.clone();
        move || crate::operations::exporter_health::gather(&cluster, &endpoints, timeout)
    })
    .await
    .map_err(|e| Error::Failed(format!("reading the nodes' metrics failed: {e}")))?;
    for row in &mut rows {
        if let Some(h) = health
            .iter()
            .find(|h| row["node"].as_str() == Some(h.node.as_str()))
        {
            row["health"] = serde_json::to_value(h).unwrap_or_default();
        }
    }
    let reachable = health.iter().any(|h| h.up());
    match a.output {
        Output::Json => crate::outln!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"cluster": cluster.name, "region": cluster.region,
                "nodes": rows, "metrics_reachable": reachable})
            )
            .unwrap_or_default()
        ),
        Output::Text => {
            let summary = |r: &serde_json::Value| {
                let h = health
                    .iter()
                    .find(|h| r["node"].as_str() == Some(h.node.as_str()));
                match h {
                    Some(h) if !reachable => format!("not reachable ({})", h.endpoint),
                    Some(h) => h.summary(),
                    None => "-".to_string(),
                }
            };
            if ec2.is_some() {
                crate::outln!(
                    "{:<14} {:<10} {:>3}  {:<14} {:<21} {:<14} {:<15} HEALTH",
                    "NODE",
                    "ROLE",
                    "ID",
                    "ZONE",
                    "INSTANCE",
                    "STATE",
                    "ADDRESS"
                );
            } else {
                crate::outln!(
                    "{:<14} {:<10} {:>3}  {:<14} {:<15} HEALTH",
                    "NODE",
                    "ROLE",
                    "ID",
                    "ZONE",
                    "ADDRESS"
                );
            }
            for r in &rows {
                let s = |k: &str| r[k].as_str().unwrap_or("-").to_string();
                let id = r["id"].as_u64().map_or("-".into(), |i| i.to_string());
                if ec2.is_some() {
                    crate::outln!(
                        "{:<14} {:<10} {:>3}  {:<14} {:<21} {:<14} {:<15} {}",
                        s("node"),
                        s("role"),
                        id,
                        s("zone"),
                        s("instance_id"),
                        s("state"),
                        s("address"),
                        summary(r)
                    );
                } else {
                    crate::outln!(
                        "{:<14} {:<10} {:>3}  {:<14} {:<15} {}",
                        s("node"),
                        s("role"),
                        id,
                        s("zone"),
                        s("address"),
                        summary(r)
                    );
                }
            }
            if !reachable && !health.is_empty() {
                crate::outln!("{}", crate::operations::exporter_health::NONE_REACHABLE);
            }
        }
    }
    if let Some(ec2) = &ec2 {
        print_calls(&a.aws, ec2);
    }
    Ok(0)
}

/// One row per topology node (with its live instance, if any), then any unknown tagged instance.
fn status_rows(cluster: &Cluster, observed: &Observed) -> Vec<serde_json::Value> {
    let mut rows = Vec::new();
    for n in &cluster.nodes {
        let live: Vec<_> = observed
            .live_instances()
            .filter(|i| i.tag(tags::NODE) == Some(n.name.as_str()))
            .collect();
        if live.is_empty() {
            rows.push(
                json!({"node": n.name, "role": n.role, "id": n.id, "zone": n.zone,
                "instance_id": null, "state": "absent", "address": n.address.to_string()}),
            );
        }
        for i in live {
            rows.push(
                json!({"node": n.name, "role": n.role, "id": n.id, "zone": i.zone,
                "instance_id": i.id, "state": i.state.as_str(),
                "address": i.private_address.map(|a| a.to_string())}),
            );
        }
    }
    for i in observed.live_instances() {
        if i.tag(tags::NODE).is_none_or(|n| cluster.node(n).is_none()) {
            rows.push(
                json!({"node": i.tag(tags::NODE).unwrap_or("?"), "role": i.tag(tags::ROLE),
                "id": null, "zone": i.zone, "instance_id": i.id, "state": i.state.as_str(),
                "address": i.private_address.map(|a| a.to_string())}),
            );
        }
    }
    rows
}

pub async fn check(a: CheckArgs) -> Result<i32> {
    let loaded = cli::load(&a.file.file)?;
    let cluster = &loaded.cluster;
    let (partitions, rf) = sample_topic(cluster, a.partitions, a.replication_factor);
    let ec2 = if a.offline {
        None
    } else {
        Some(connect(&a.aws, &cluster.region).await.map_err(|e| {
            Error::Usage(format!(
                "{e}\n(use --offline to check the topology without EC2)"
            ))
        })?)
    };
    let report = workflow::check_report(
        cluster,
        partitions,
        rf,
        ec2.as_ref().map(|e| e as &dyn Ec2),
        None,
    )
    .await?;
    match a.output {
        Output::Text => output::out(&report.render_text()),
        Output::Json => crate::outln!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        ),
    }
    if let Some(e) = &ec2 {
        print_calls(&a.aws, e);
    }
    Ok(if report.ok() { 0 } else { 1 })
}
