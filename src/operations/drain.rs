//! Replicas move before a broker leaves, and onto brokers that join when asked: what `plan` says
//! about it, what `apply` refuses before it changes anything, and the reassignment apply starts
//! through Kafka and waits for before it terminates a broker, behind a replication throttle it
//! sets first and removes once every move is done. `reassign.rs` computes which replicas move,
//! `throttle.rs` which configs throttle them; `health.rs` reads the cluster and asks Kafka.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use serde::Serialize;

use crate::cluster::Role;
use crate::kafka::reassign::{self, Brokers, Move, Ongoing, Placement, Proposal, Refusal};
use crate::kafka::throttle::{self, MoveRate, Throttle};
use crate::operations::health::Health;
use crate::operations::roll::KafkaView;
use crate::progress::Reporter;
use crate::provision::apply::{ApplyError, Gates, SKIP_GATES_FLAG};
use crate::provision::plan::{Action, OrphanKind, Plan};

/// The flag that lets apply terminate brokers it cannot drain (gates skipped).
pub const ACCEPT_DATA_LOSS_FLAG: &str = "--accept-data-loss";
/// The flag that evens out replicas over the brokers (onto new ones).
pub const REBALANCE_FLAG: &str = "--rebalance";
/// The flag that sets how fast moved replicas copy.
pub const MOVE_RATE_FLAG: &str = "--move-rate";

const STAGE: &str = "moving replicas";
/// How long apply's first reading of the cluster may take before it refuses.
const FIRST_READ: Duration = Duration::from_secs(30);

/// What apply does with replicas when brokers leave or join.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Moves {
    /// Even out every broker's replica count, new brokers included (`--rebalance`).
    pub rebalance: bool,
    /// With gates skipped, terminate brokers the topology drops without draining them.
    pub accept_data_loss: bool,
    /// Tests only: terminate brokers without draining them even with gates, to show that the
    /// tests catch what the drain prevents.
    pub skip_drain: bool,
    /// How fast moved replicas copy, per broker and direction (`--move-rate`).
    pub rate: MoveRate,
    /// Remove kcluster's throttle an interrupted apply left, even when nothing moves (plan
    /// found one), once no reassignment is under way.
    pub clear_left: bool,
    /// Tests only: leave the throttle in place once the moves are done, to show that the tests
    /// catch a throttle left behind.
    pub keep_throttle: bool,
}

/// What `plan` tells of the replication throttle: the rate apply's moves use, kcluster's
/// throttle an interrupted apply left, and the throttles someone else set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Throttling {
    /// `40 MiB/s`, or `no throttle`.
    pub rate: String,
    /// What kcluster's leftover throttle is on (`brokers 1, 4 and topic orders`).
    pub left: Option<String>,
    /// Throttle rates kcluster did not set (left alone).
    pub others: Vec<String>,
    /// Why the throttle configs could not be read.
    pub unread: Option<String>,
}

/// Reads the throttle configs of the cluster (for at most `limit`): what plan says of them.
pub async fn throttling(
    plan: &Plan,
    health: &dyn Health,
    rate: MoveRate,
    limit: Duration,
) -> Throttling {
    let addresses: Vec<Ipv4Addr> = members(plan).iter().map(|m| m.address).collect();
    let mut t = Throttling {
        rate: rate.to_string(),
        left: None,
        others: Vec::new(),
        unread: None,
    };
    match tokio::time::timeout(limit, health.throttles(&addresses)).await {
        Ok(Ok(seen)) => {
            let clear = throttle::to_clear(&seen, rate.mark(), &Throttle::default());
            t.left = (!clear.is_empty()).then(|| throttle::touched(&clear));
            t.others = throttle::foreign(&seen, rate.mark());
        }
        Ok(Err(e)) => t.unread = Some(e),
        Err(_) => t.unread = Some(format!("no answer within {limit:?}")),
    }
    t
}

/// The Availability lines of the throttle.
fn throttle_lines(t: &Throttling) -> Vec<String> {
    let mut out = vec![if t.rate == MoveRate::Unthrottled.to_string() {
        format!(
            "replicas that move copy without a replication throttle ({MOVE_RATE_FLAG} none): as fast as the brokers' network and disks allow, at the clients' expense"
        )
    } else {
        format!(
            "replicas that move copy at most at {} per broker, each way ({MOVE_RATE_FLAG}): Kafka's leader and follower replication throttle on the brokers and partitions involved, removed once every move is done",
            t.rate
        )
    }];
    if let Some(left) = &t.left {
        out.push(format!(
            "remove the replication throttle an interrupted apply left on {left} (rates of exactly {}): apply removes it once no reassignment is under way",
            t.rate
        ));
    }
    if !t.others.is_empty() {
        out.push(format!(
            "replication throttles kcluster did not set stay as they are: {}",
            t.others.join(", ")
        ));
    }
    if let Some(why) = &t.unread {
        out.push(format!(
            "the replication throttle configs were not read: {why}"
        ));
    }
    out
}

/// A broker the plan terminates because the topology no longer has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaving {
    pub node: String,
    pub id: i32,
    pub instance: String,
}

/// A broker of the topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub node: String,
    pub id: i32,
    pub rack: String,
    pub address: Ipv4Addr,
    /// Launched by this plan.
    pub new: bool,
    /// On a new, empty data volume (not a broker coming back on its kept one).
    pub empty: bool,
}

/// The brokers the plan terminates.
pub fn leaving(plan: &Plan) -> Vec<Leaving> {
    plan.orphans
        .iter()
        .filter(|o| o.kind == OrphanKind::Instance)
        .filter_map(|o| {
            let node = o.node.as_deref()?;
            let (role, id) = node.rsplit_once('-')?;
            let role = Role::parse(role).filter(|r| *r == Role::Broker)?;
            let id = role.info().node_id_base + id.parse::<u32>().ok()?;
            Some(Leaving {
                node: node.to_string(),
                id: i32::try_from(id).ok()?,
                instance: o.id.clone(),
            })
        })
        .collect()
}

/// The topology's brokers, those already running first.
pub fn members(plan: &Plan) -> Vec<Member> {
    let mut out: Vec<Member> = plan
        .nodes
        .iter()
        .filter(|n| n.role == Role::Broker)
        .map(|n| Member {
            node: n.node.clone(),
            id: n.desired.node.node_id() as i32,
            rack: plan
                .racks
                .iter()
                .find(|r| r.zone == n.zone)
                .map_or_else(|| n.zone.clone(), |r| r.rack.clone()),
            address: n.desired.node.address,
            new: n.instance == Action::Create && n.instance_id.is_none(),
            empty: n.volume == Action::Create,
        })
        .collect();
    out.sort_by_key(|m| (m.new, m.id));
    out
}

/// Whether the plan adds brokers to a cluster that has some, or removes brokers, so that
/// replicas may move (a new cluster has none to move).
pub fn concerns(plan: &Plan) -> bool {
    !leaving(plan).is_empty() || !joining(plan).is_empty()
}

/// The brokers launched beside brokers that already run.
fn joining(plan: &Plan) -> Vec<Member> {
    let members = members(plan);
    if members.iter().all(|m| m.new) {
        return Vec::new();
    }
    members.into_iter().filter(|m| m.new).collect()
}

/// What `plan` can tell of the replicas that move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Outlook {
    /// The cluster was not read: why. Apply reads it.
    Unread { why: String },
    /// Read from the running cluster: what apply's drain moves, and what `--rebalance` moves
    /// (the drain included).
    Read {
        drain: Proposal,
        rebalance: Proposal,
    },
    /// The drain cannot keep a topic's replication factor or rack spread: apply refuses.
    Refused { refusal: Refusal },
}

/// Reads the cluster (for at most `limit`) and computes what a drain and a rebalance would move.
pub async fn outlook(plan: &Plan, health: &dyn Health, limit: Duration) -> Outlook {
    let members = members(plan);
    let addresses: Vec<Ipv4Addr> = members.iter().map(|m| m.address).collect();
    let read = match tokio::time::timeout(limit, read(health, &addresses)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            return Outlook::Unread {
                why: format!("the cluster does not answer here: {e}"),
            };
        }
        Err(_) => {
            return Outlook::Unread {
                why: format!("the cluster does not answer here within {limit:?}"),
            };
        }
    };
    let (placements, brokers) = layout(&read.0, &read.1, &members);
    let proposals = reassign::propose(&placements, &brokers, false).and_then(|drain| {
        Ok(Outlook::Read {
            drain,
            rebalance: reassign::propose(&placements, &brokers, true)?,
        })
    });
    proposals.unwrap_or_else(|refusal| Outlook::Refused { refusal })
}

/// `6 replicas: broker-1 → broker-4 (4), broker-2 → broker-4 (2)`.
pub fn summary(p: &Proposal) -> String {
    let flows: Vec<String> = p
        .flows()
        .pairs
        .iter()
        .map(|((f, t), n)| format!("broker-{f} → broker-{t} ({n})"))
        .collect();
    format!("{} replicas: {}", p.replicas_moved(), flows.join(", "))
}

fn counted(of: &BTreeMap<i32, usize>) -> String {
    of.iter()
        .map(|(b, n)| format!("broker-{b} ({n})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The Availability lines of brokers that leave (each replacing its plain termination line) and
/// of brokers that join.
pub fn impacts(plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    let staying: Vec<i32> = members(plan).iter().map(|m| m.id).collect();
    let unread = |plan: &Plan| match &plan.replicas {
        Some(Outlook::Unread { why }) => why.clone(),
        _ => "the cluster was not read".to_string(),
    };
    // A KRaft broker stays registered, fenced, once it is gone: apply unregisters it.
    let (terminates, unregistered) = if kraft(plan) {
        (
            "terminates it and unregisters it from the KRaft controllers",
            "; apply unregisters it from the KRaft controllers",
        )
    } else {
        ("terminates it", "")
    };
    for l in leaving(plan) {
        let line = match &plan.replicas {
            Some(Outlook::Read { drain, .. }) => {
                let to = drain.flows().out_of(l.id);
                if to.is_empty() {
                    format!(
                        "terminate {} ({}): it holds no replicas{unregistered}; its data volume is kept",
                        l.node, l.instance
                    )
                } else {
                    format!(
                        "drain {} ({}): {} replicas move to {} through Kafka's reassignment, rack-aware; apply waits until every moved replica is in sync (--gate-seconds), then {terminates}; its data volume is kept",
                        l.node,
                        l.instance,
                        to.values().sum::<usize>(),
                        counted(&to)
                    )
                }
            }
            Some(Outlook::Refused { refusal }) => format!(
                "cannot drain {} ({}): {refusal}; apply refuses and changes nothing",
                l.node, l.instance
            ),
            _ => format!(
                "drain {} ({}): its replicas move to {} through Kafka's reassignment, rack-aware (how many is read at apply time: {}); apply waits until every moved replica is in sync (--gate-seconds), then {terminates}; its data volume is kept",
                l.node,
                l.instance,
                reassign::names(staying.iter().copied()),
                unread(plan)
            ),
        };
        out.push(line);
    }
    for m in joining(plan) {
        let line = match &plan.replicas {
            Some(Outlook::Read { rebalance, .. }) => {
                let from = rebalance.flows().into_broker(m.id);
                let uneven = rebalance
                    .uneven
                    .as_ref()
                    .map(|u| format!("; {u}"))
                    .unwrap_or_default();
                if from.is_empty() {
                    format!(
                        "{} gets no replicas from a rebalance{uneven}; it holds partitions created from now on",
                        m.node
                    )
                } else {
                    format!(
                        "rebalance onto {} with `kcluster apply {REBALANCE_FLAG}`: {} replicas move to it from {}, rack-aware{uneven}; without the flag it holds only partitions created from now on",
                        m.node,
                        from.values().sum::<usize>(),
                        counted(&from)
                    )
                }
            }
            _ if !m.empty => continue,
            _ => format!(
                "{} holds only partitions created from now on; `kcluster apply {REBALANCE_FLAG}` moves existing replicas onto it, rack-aware (computed at apply time: {})",
                m.node,
                unread(plan)
            ),
        };
        out.push(line);
    }
    if let Some(t) = &plan.throttle {
        out.extend(throttle_lines(t));
    }
    out
}

/// The cluster as Kafka reports it: its view and the reassignments under way.
async fn read(
    health: &dyn Health,
    addresses: &[Ipv4Addr],
) -> Result<(KafkaView, Vec<Ongoing>), String> {
    let view = health.kafka(addresses).await?;
    let ongoing = health.reassignments(addresses).await?;
    Ok((view, ongoing))
}

/// Each partition where it will be once the reassignments under way finish, and the brokers a
/// reassignment may use: the topology's, racked as Kafka reports them (as the topology says
/// for those not registered yet).
fn layout(view: &KafkaView, ongoing: &[Ongoing], members: &[Member]) -> (Vec<Placement>, Brokers) {
    let target: BTreeMap<(&str, i32), Vec<i32>> = ongoing
        .iter()
        .map(|o| ((o.topic.as_str(), o.partition), o.target()))
        .collect();
    let placements = view
        .partitions
        .iter()
        .map(|p| Placement {
            topic: p.topic.clone(),
            partition: p.partition,
            replicas: target
                .get(&(p.topic.as_str(), p.partition))
                .cloned()
                .unwrap_or_else(|| p.replicas.clone()),
        })
        .collect();
    let mut racks: BTreeMap<i32, Option<String>> = view
        .racks
        .iter()
        .map(|(b, r)| (*b, Some(r.clone())))
        .collect();
    for m in members {
        racks.entry(m.id).or_insert_with(|| Some(m.rack.clone()));
    }
    let brokers = Brokers {
        targets: members.iter().map(|m| m.id).collect(),
        racks,
    };
    (placements, brokers)
}

/// Before apply changes anything: refuses a scale-in it cannot drain (gates skipped without
/// the flag that accepts the loss, a cluster that does not answer, a topic whose replication
/// factor or rack spread the remaining brokers cannot keep) and a rebalance without the cluster.
pub async fn refuse_early(plan: &Plan, gates: &Gates<'_>) -> Result<(), ApplyError> {
    let leaving = leaving(plan);
    let moves = gates.moves;
    let drain = !leaving.is_empty() && !moves.skip_drain;
    if !drain && !moves.rebalance {
        return Ok(());
    }
    let names: Vec<&str> = leaving.iter().map(|l| l.node.as_str()).collect();
    let names = names.join(", ");
    let Some(health) = gates.health else {
        if moves.rebalance {
            return Err(ApplyError::one(
                STAGE,
                "rebalance",
                format!(
                    "{REBALANCE_FLAG} moves replicas through the running cluster, which {SKIP_GATES_FLAG} does not read. Nothing was changed."
                ),
            ));
        }
        if moves.accept_data_loss {
            return Ok(());
        }
        return Err(ApplyError::one(
            STAGE,
            &names,
            format!(
                "{SKIP_GATES_FLAG} does not read the cluster, so apply cannot move the replicas {names} holds before terminating it: they would be lost wherever no other replica holds them. If the cluster runs, apply without {SKIP_GATES_FLAG} drains it first. If it is down and cannot be drained, `kcluster apply {SKIP_GATES_FLAG} {ACCEPT_DATA_LOSS_FLAG}` terminates it anyway. Nothing was changed."
            ),
        ));
    };
    let members = members(plan);
    let addresses: Vec<Ipv4Addr> = members.iter().map(|m| m.address).collect();
    let answer = tokio::time::timeout(FIRST_READ, read(health, &addresses))
        .await
        .unwrap_or_else(|_| Err(format!("none within {FIRST_READ:?}")));
    let (view, ongoing) = answer.map_err(|e| {
        let what = if drain {
            format!("Draining {names} before termination")
        } else {
            REBALANCE_FLAG.to_string()
        };
        ApplyError::one(
            STAGE,
            if drain { names.as_str() } else { "rebalance" },
            format!(
                "no broker answers ({e}). {what} needs the running cluster: run kcluster where it reaches the brokers' private addresses (a bastion, a VPN, a runner in the VPC). If the cluster is down and cannot be drained, `kcluster apply {SKIP_GATES_FLAG} {ACCEPT_DATA_LOSS_FLAG}` terminates the brokers without moving their replicas. Nothing was changed."
            ),
        )
    })?;
    let (placements, brokers) = layout(&view, &ongoing, &members);
    if drain {
        reassign::propose(&placements, &brokers, false).map_err(|r| {
            ApplyError::one(
                STAGE,
                &names,
                format!("cannot drain {names}: {r}. Nothing was changed."),
            )
        })?;
    }
    Ok(())
}

/// After launches and rolls, before any broker terminates: waits until every broker of the
/// topology is registered, asks Kafka to move what the drain (and with `--rebalance` the
/// rebalance) moves, and waits until no reassignment is under way and every moved partition has
/// its whole replica set in sync; reads the cluster again each time, so a new topic placed on a
/// leaving broker meanwhile moves too. Returns the replicas it asked to move. A wait that times
/// out stops apply before anything terminates.
pub async fn carry_out(
    plan: &Plan,
    gates: &Gates<'_>,
    reporter: &dyn Reporter,
) -> Result<usize, ApplyError> {
    let leaving = leaving(plan);
    let moves = gates.moves;
    let drain = !leaving.is_empty() && !moves.skip_drain;
    let Some(health) = gates.health else {
        return Ok(0);
    };
    let members = members(plan);
    let addresses: Vec<Ipv4Addr> = members.iter().map(|m| m.address).collect();
    if !drain && !moves.rebalance {
        if moves.clear_left {
            clear_left(health, &addresses, moves.rate, reporter).await?;
        }
        return Ok(0);
    }
    let who = if drain {
        leaving
            .iter()
            .map(|l| l.node.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        "rebalance".to_string()
    };
    let resume = "Nothing was terminated. Kafka goes on with any move it started (behind the replication throttle apply set); once the cluster is healthy, run `kcluster apply` again with the same --move-rate: it resumes, waiting for the moves under way before it terminates a broker, and then removes the throttle.";
    let deadline = tokio::time::Instant::now() + gates.timeout;
    let timed_out = |check: &str, seen: &str| {
        ApplyError::one(
            STAGE,
            &who,
            format!(
                "waited {:?} until {check}; last seen: {seen}. {resume}",
                gates.timeout
            ),
        )
    };
    // Every broker of the topology is registered and answers itself: a reassignment may only
    // name live brokers (a registration alone can be a stopped broker's, which ZooKeeper keeps
    // until its session expires), and the throttle is set on each broker directly.
    let ids: BTreeSet<i32> = members.iter().map(|m| m.id).collect();
    loop {
        let seen = match health.kafka(&addresses).await {
            Ok(v) if ids.is_subset(&v.brokers) => match silent(health, &members).await {
                None => break,
                Some(why) => why,
            },
            Ok(v) => format!("registered brokers {:?}", v.brokers),
            Err(e) => e,
        };
        if tokio::time::Instant::now() >= deadline {
            let check = format!(
                "every broker of the topology ({}) is registered with Kafka",
                reassign::names(ids.iter().copied())
            );
            return Err(timed_out(&check, &seen));
        }
        tokio::time::sleep(gates.poll).await;
    }
    // Partition → the replicas apply asked Kafka for, until the brokers' metadata shows them.
    let mut asked_for: BTreeMap<(String, i32), Vec<i32>> = BTreeMap::new();
    let mut asked = 0usize;
    let mut phase = false;
    // What this apply throttled.
    let mut throttled = Throttle::default();
    loop {
        let pending = match read(health, &addresses).await {
            Err(e) => vec![e],
            Ok((view, ongoing)) => {
                let moving = still_moving(&view, &ongoing, &asked_for);
                if !moving.is_empty() {
                    moving
                } else {
                    // Only once everything asked for shows in the metadata (which may lag the
                    // controller) is the view fresh enough to compute from again.
                    asked_for.clear();
                    let (placements, brokers) = layout(&view, &ongoing, &members);
                    let proposal = reassign::propose(&placements, &brokers, moves.rebalance)
                        .map_err(|r| {
                            ApplyError::one(
                                STAGE,
                                &who,
                                format!("cannot move the replicas: {r}. {resume}"),
                            )
                        })?;
                    if proposal.moves.is_empty() {
                        Vec::new()
                    } else {
                        if !phase {
                            reporter.phase(
                                &format!(
                                    "move replicas through Kafka's reassignment ({})",
                                    summary(&proposal)
                                ),
                                1,
                            );
                            phase = true;
                        }
                        if let MoveRate::Limit(rate) = moves.rate {
                            let t = Throttle::of(&proposal.moves, &ongoing);
                            throttle_on(health, &addresses, &t, rate, reporter)
                                .await
                                .map_err(|e| {
                                    ApplyError::one(STAGE, &who, format!("{e}. {resume}"))
                                })?;
                            throttled.merge(&t);
                        }
                        health
                            .reassign(&addresses, &proposal.moves)
                            .await
                            .map_err(|e| ApplyError::one(STAGE, &who, format!("{e}. {resume}")))?;
                        asked += proposal.replicas_moved();
                        asked_for.extend(
                            proposal
                                .moves
                                .iter()
                                .map(|m: &Move| ((m.topic.clone(), m.partition), m.to.clone())),
                        );
                        vec![format!("{} partitions asked to move", proposal.moves.len())]
                    }
                }
            }
        };
        if pending.is_empty() {
            if phase {
                reporter.step(&format!("{asked} replicas moved"));
            }
            if !moves.keep_throttle {
                throttle_off(health, &addresses, moves.rate, &throttled, reporter)
                    .await
                    .map_err(|e| {
                        ApplyError::one(
                            STAGE,
                            &who,
                            format!("every move is done, but removing the replication throttle failed: {e}. Nothing was terminated; run `kcluster apply` again with the same --move-rate: it removes it."),
                        )
                    })?;
            }
            if phase {
                reporter.finish();
            }
            return Ok(asked);
        }
        if tokio::time::Instant::now() >= deadline {
            let more = pending.len().saturating_sub(10);
            let mut seen = pending[..pending.len().min(10)].join("; ");
            if more > 0 {
                seen.push_str(&format!(" and {more} more"));
            }
            return Err(timed_out(
                "no partition reassignment is under way and every moved replica is in sync",
                &format!("still moving: {seen}"),
            ));
        }
        tokio::time::sleep(gates.poll).await;
    }
}

/// The first broker of `members` that does not answer Kafka's Metadata request itself, and why.
async fn silent(health: &dyn Health, members: &[Member]) -> Option<String> {
    for m in members {
        if let Err(e) = health.kafka(&[m.address]).await {
            return Some(format!("{} does not answer: {e}", m.node));
        }
    }
    None
}

/// Whether the plan's cluster runs in KRaft mode: its topology has controllers (one in ZooKeeper
/// mode has none).
pub fn kraft(plan: &Plan) -> bool {
    plan.nodes.iter().any(|n| n.role == Role::Controller)
}

/// What became of the registrations of the brokers apply terminated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registrations {
    /// Unregistered from the KRaft controllers.
    pub unregistered: Vec<String>,
    /// Left registered because apply ran without health gates: the command that unregisters
    /// each, to run once the cluster answers.
    pub by_hand: Vec<String>,
}

/// After the brokers the plan removes are terminated, in KRaft mode: removes their registrations
/// from the controllers (UnregisterBroker). A KRaft broker that shuts down stays registered,
/// fenced, for good: the controllers still count it, place a new partition's replica on it once
/// its rack's live brokers are used (a rack holding more replicas of a partition than it has live
/// brokers, a replication factor above the live brokers), and hold back any feature upgrade it
/// does not support. ZooKeeper forgets a broker by itself (its registration is an ephemeral
/// node). Asks again every poll until it succeeds or the gates' timeout; a broker already
/// unregistered counts as done.
pub async fn unregister(plan: &Plan, gates: &Gates<'_>) -> Result<Registrations, ApplyError> {
    let leaving = leaving(plan);
    let mut out = Registrations::default();
    if leaving.is_empty() || !kraft(plan) {
        return Ok(out);
    }
    let members = members(plan);
    let addresses: Vec<Ipv4Addr> = members.iter().map(|m| m.address).collect();
    let Some(health) = gates.health else {
        let bootstrap = members.first().map_or_else(
            || "BROKER:PORT".to_string(),
            |m| format!("{}:PORT", m.address),
        );
        out.by_hand = leaving
            .iter()
            .map(|l| {
                format!(
                    "kafka-cluster.sh unregister --bootstrap-server {bootstrap} --id {}",
                    l.id
                )
            })
            .collect();
        return Ok(out);
    };
    let deadline = tokio::time::Instant::now() + gates.timeout;
    for l in &leaving {
        loop {
            match health.unregister(&addresses, l.id).await {
                Ok(()) => break,
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    return Err(ApplyError::one(
                        "unregistering brokers",
                        &l.node,
                        format!(
                            "{} (node id {}) is terminated but still registered with the KRaft controllers, fenced: waited {:?} for UnregisterBroker; last answer: {e}. Its instance is gone, so the next apply does not see it: once the cluster answers, run `kafka-cluster.sh unregister --bootstrap-server BROKER:PORT --id {}`.",
                            l.node, l.id, gates.timeout, l.id
                        ),
                    ));
                }
                Err(_) => tokio::time::sleep(gates.poll).await,
            }
        }
        out.unregistered.push(l.node.clone());
    }
    Ok(out)
}

/// Sets the throttle of `t` at `rate` beside what the cluster has.
async fn throttle_on(
    health: &dyn Health,
    addresses: &[Ipv4Addr],
    t: &Throttle,
    rate: u64,
    reporter: &dyn Reporter,
) -> Result<(), String> {
    let seen = health.throttles(addresses).await?;
    let (changes, notes) = throttle::to_set(t, rate, &seen);
    for n in notes {
        reporter.step(&n);
    }
    if !changes.is_empty() {
        health.alter_configs(addresses, &changes).await?;
        reporter.step(&format!(
            "replication throttle of {} set on {}",
            MoveRate::Limit(rate),
            throttle::touched(&changes)
        ));
    }
    Ok(())
}

/// Removes kcluster's throttle: what `set` added, and any rate of exactly kcluster's (with the
/// list entries naming its brokers) an interrupted apply left.
async fn throttle_off(
    health: &dyn Health,
    addresses: &[Ipv4Addr],
    rate: MoveRate,
    set: &Throttle,
    reporter: &dyn Reporter,
) -> Result<(), String> {
    let seen = health.throttles(addresses).await?;
    let changes = throttle::to_clear(&seen, rate.mark(), set);
    if !changes.is_empty() {
        health.alter_configs(addresses, &changes).await?;
        reporter.step(&format!(
            "replication throttle removed from {}",
            throttle::touched(&changes)
        ));
    }
    Ok(())
}

/// Removes kcluster's throttle an interrupted apply left, once no reassignment is under way
/// (while one is, the throttle stays: it still paces that move).
async fn clear_left(
    health: &dyn Health,
    addresses: &[Ipv4Addr],
    rate: MoveRate,
    reporter: &dyn Reporter,
) -> Result<(), ApplyError> {
    let failed = |e: String| {
        ApplyError::one(
            STAGE,
            "replication throttle",
            format!(
                "removing the replication throttle an interrupted apply left failed: {e}. Run `kcluster apply` again with the same --move-rate."
            ),
        )
    };
    let ongoing = health.reassignments(addresses).await.map_err(failed)?;
    reporter.phase(
        "remove the replication throttle an interrupted apply left",
        1,
    );
    if ongoing.is_empty() {
        throttle_off(health, addresses, rate, &Throttle::default(), reporter)
            .await
            .map_err(failed)?;
    } else {
        reporter.step(&format!(
            "{} partition reassignments are under way: the throttle stays while they run",
            ongoing.len()
        ));
    }
    reporter.finish();
    Ok(())
}

/// The partitions not done yet: every reassignment under way, and each partition apply asked to
/// move whose replicas the metadata does not show yet, or not all in sync.
fn still_moving(
    view: &KafkaView,
    ongoing: &[Ongoing],
    asked_for: &BTreeMap<(String, i32), Vec<i32>>,
) -> Vec<String> {
    let mut out: Vec<String> = ongoing
        .iter()
        .map(|o| {
            format!(
                "{}-{} (replicas {:?}, adding {:?}, removing {:?})",
                o.topic, o.partition, o.replicas, o.adding, o.removing
            )
        })
        .collect();
    for p in &view.partitions {
        let key = (p.topic.clone(), p.partition);
        let Some(target) = asked_for.get(&key) else {
            continue;
        };
        if ongoing
            .iter()
            .any(|o| o.topic == p.topic && o.partition == p.partition)
        {
            continue;
        }
        let (have, want): (BTreeSet<i32>, BTreeSet<i32>) = (
            p.replicas.iter().copied().collect(),
            target.iter().copied().collect(),
        );
        if have != want {
            out.push(format!(
                "{}-{} (replicas {:?}, moving to {target:?})",
                p.topic, p.partition, p.replicas
            ));
        } else if !target.iter().all(|r| p.isr.contains(r)) {
            out.push(format!(
                "{}-{} (ISR {:?} of replicas {:?})",
                p.topic, p.partition, p.isr, p.replicas
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::net::Ipv4Addr;
    use std::sync::Mutex;
    use std::time::Duration;

    use super::{ACCEPT_DATA_LOSS_FLAG, Moves, Outlook, concerns, impacts, outlook};
    use crate::ec2::fake::FakeEc2;
    use crate::ec2::{Ec2, InstanceState, tags};
    use crate::kafka::reassign::{Move, Ongoing};
    use crate::kafka::throttle::{
        Change, FOLLOWER_RATE, FOLLOWER_REPLICAS, LEADER_RATE, LEADER_REPLICAS, MoveRate, Resource,
        Seen,
    };
    use crate::operations::roll::{KafkaView, Partition, ZkMember};
    use crate::progress::Silent;
    use crate::provision::apply::tests::{
        cluster, converge, fake, plan_for, settings, with_ec2_time,
    };
    use crate::provision::apply::{Gates, execute};

    /// Kafka as far as drains see it: registered brokers with their racks, partitions, and the
    /// reassignments under way, each finishing after `polls` readings of the cluster (never,
    /// with `None`).
    struct Model {
        state: Mutex<State>,
    }

    struct State {
        reachable: bool,
        /// A broker registered but not listening (asked alone, it refuses the connection).
        deaf: Option<Ipv4Addr>,
        registered: BTreeSet<i32>,
        /// Brokers that register after this many readings.
        joining: Vec<(i32, usize)>,
        partitions: BTreeMap<(String, i32), Vec<i32>>,
        ongoing: BTreeMap<(String, i32), (Vec<i32>, Option<usize>)>,
        polls: Option<usize>,
        /// Readings after a reassignment finished during which the metadata still shows every
        /// replica it moved between (as a broker's lagging metadata cache does).
        lag: usize,
        lagging: BTreeMap<(String, i32), (Vec<i32>, usize)>,
        /// Every AlterPartitionReassignments request.
        asked: Vec<Vec<Move>>,
        /// Brokers still registered with KRaft controllers after they shut down (fenced).
        fenced: BTreeSet<i32>,
        /// UnregisterBroker requests that fail before one succeeds (`None`: all of them).
        unregister_failures: Option<usize>,
        /// Every UnregisterBroker request that succeeded.
        unregistered: Vec<i32>,
        /// The brokers' and topics' throttle configs.
        configs: Seen,
        /// The configs as they were at each AlterPartitionReassignments request.
        configs_asked: Vec<Seen>,
    }

    /// The zones of `cluster()`: broker b is in zone (b - 1) % 3.
    fn rack(b: i32) -> String {
        ["eu-west-1a", "eu-west-1b", "eu-west-1c"][((b - 1) % 3) as usize].to_string()
    }

    impl Model {
        fn new(brokers: i32, topics: &[(&str, Vec<Vec<i32>>)]) -> Model {
            let mut partitions = BTreeMap::new();
            for (t, ps) in topics {
                for (i, r) in ps.iter().enumerate() {
                    partitions.insert((t.to_string(), i as i32), r.clone());
                }
            }
            Model {
                state: Mutex::new(State {
                    reachable: true,
                    deaf: None,
                    registered: (1..=brokers).collect(),
                    joining: Vec::new(),
                    partitions,
                    ongoing: BTreeMap::new(),
                    polls: Some(2),
                    lag: 0,
                    lagging: BTreeMap::new(),
                    asked: Vec::new(),
                    fenced: BTreeSet::new(),
                    unregister_failures: Some(0),
                    unregistered: Vec::new(),
                    configs: Seen::default(),
                    configs_asked: Vec::new(),
                }),
            }
        }

        fn holding(&self, broker: i32) -> usize {
            let s = self.state.lock().expect("model");
            s.partitions
                .values()
                .filter(|r| r.contains(&broker))
                .count()
        }
    }

    #[async_trait::async_trait]
    impl crate::operations::health::Health for Model {
        async fn zookeeper(&self, _: &[(String, Ipv4Addr)]) -> Vec<ZkMember> {
            Vec::new()
        }

        async fn kraft(
            &self,
            _: &[Ipv4Addr],
        ) -> Result<crate::operations::roll::QuorumView, String> {
            Err("no KRaft controllers here".into())
        }

        async fn kafka(&self, asked: &[Ipv4Addr]) -> Result<KafkaView, String> {
            let mut s = self.state.lock().expect("model");
            if let (Some(deaf), [only]) = (s.deaf, asked)
                && deaf == *only
            {
                return Err(format!("{deaf}:9092: connection refused"));
            }
            if !s.reachable {
                return Err("127.0.0.1:9092: connection refused".into());
            }
            for j in &mut s.joining {
                j.1 = j.1.saturating_sub(1);
            }
            let now: Vec<i32> = s.joining.iter().filter(|j| j.1 == 0).map(|j| j.0).collect();
            s.registered.extend(now);
            let mut done = Vec::new();
            for (k, (_, left)) in s.ongoing.iter_mut() {
                if let Some(n) = left {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        done.push(k.clone());
                    }
                }
            }
            for (_, left) in s.lagging.values_mut() {
                *left = left.saturating_sub(1);
            }
            s.lagging.retain(|_, (_, left)| *left > 0);
            for k in done {
                if let Some((to, _)) = s.ongoing.remove(&k) {
                    let mut shown = to.clone();
                    shown.extend(s.partitions[&k].iter().filter(|b| !to.contains(b)));
                    if s.lag > 0 {
                        let lag = s.lag;
                        s.lagging.insert(k.clone(), (shown, lag));
                    }
                    s.partitions.insert(k, to);
                }
            }
            let partitions = s
                .partitions
                .iter()
                .map(|((t, p), r)| {
                    let mut replicas = r.clone();
                    if let Some((to, _)) = s.ongoing.get(&(t.clone(), *p)) {
                        replicas = to.clone();
                        replicas.extend(r.iter().filter(|b| !to.contains(b)));
                    }
                    if let Some((shown, _)) = s.lagging.get(&(t.clone(), *p)) {
                        replicas = shown.clone();
                    }
                    Partition {
                        topic: t.clone(),
                        partition: *p,
                        replicas,
                        isr: r.clone(),
                        min_isr: Some(2),
                    }
                })
                .collect();
            Ok(KafkaView {
                brokers: s.registered.clone(),
                controller: Some(1),
                partitions,
                racks: s.registered.iter().map(|b| (*b, rack(*b))).collect(),
            })
        }

        async fn reassignments(&self, _: &[Ipv4Addr]) -> Result<Vec<Ongoing>, String> {
            let s = self.state.lock().expect("model");
            Ok(s.ongoing
                .iter()
                .map(|((t, p), (to, _))| {
                    let from = &s.partitions[&(t.clone(), *p)];
                    let mut replicas = to.clone();
                    replicas.extend(from.iter().filter(|b| !to.contains(b)));
                    Ongoing {
                        topic: t.clone(),
                        partition: *p,
                        replicas,
                        adding: to.iter().filter(|b| !from.contains(b)).copied().collect(),
                        removing: from.iter().filter(|b| !to.contains(b)).copied().collect(),
                    }
                })
                .collect())
        }

        async fn unregister(&self, _: &[Ipv4Addr], id: i32) -> Result<(), String> {
            let mut s = self.state.lock().expect("model");
            match &mut s.unregister_failures {
                Some(0) => {}
                Some(n) => {
                    *n -= 1;
                    return Err("UnregisterBroker: NotController (41) three times".into());
                }
                None => return Err("127.0.0.1:9092: connection refused".into()),
            }
            s.registered.remove(&id);
            s.fenced.remove(&id);
            s.unregistered.push(id);
            Ok(())
        }

        async fn reassign(&self, _: &[Ipv4Addr], moves: &[Move]) -> Result<(), String> {
            let mut s = self.state.lock().expect("model");
            for m in moves {
                if !m.to.iter().all(|b| s.registered.contains(b)) {
                    return Err(format!("InvalidReplicaAssignment (39): {:?}", m.to));
                }
            }
            let polls = s.polls;
            let now = s.configs.clone();
            s.configs_asked.push(now);
            for m in moves {
                s.ongoing
                    .insert((m.topic.clone(), m.partition), (m.to.clone(), polls));
            }
            s.asked.push(moves.to_vec());
            Ok(())
        }

        async fn throttles(&self, _: &[Ipv4Addr]) -> Result<Seen, String> {
            let s = self.state.lock().expect("model");
            Ok(Seen {
                registered: s.registered.clone(),
                ..s.configs.clone()
            })
        }

        async fn alter_configs(&self, _: &[Ipv4Addr], changes: &[Change]) -> Result<(), String> {
            let mut s = self.state.lock().expect("model");
            for c in changes {
                let configs = match &c.resource {
                    Resource::Broker(b) => s.configs.brokers.entry(*b).or_default(),
                    Resource::Topic(t) => s.configs.topics.entry(t.clone()).or_default(),
                };
                match &c.value {
                    Some(v) => configs.insert(c.name.to_string(), v.clone()),
                    None => configs.remove(c.name),
                };
            }
            s.configs.brokers.retain(|_, c| !c.is_empty());
            s.configs.topics.retain(|_, c| !c.is_empty());
            Ok(())
        }
    }

    /// Six brokers in three zones; `orders` has one replica per zone, broker 6 in three
    /// partitions.
    fn six() -> Model {
        Model::new(
            6,
            &[(
                "orders",
                vec![
                    vec![1, 2, 3],
                    vec![4, 5, 6],
                    vec![2, 3, 1],
                    vec![6, 4, 5],
                    vec![3, 1, 2],
                    vec![5, 6, 4],
                ],
            )],
        )
    }

    /// A converged six-broker cluster `name` and the plan that takes broker-6 out.
    async fn shrinking(name: &str) -> (FakeEc2, crate::provision::plan::Plan) {
        let ec2 = fake();
        converge(&ec2, &cluster(name, 6, "m5.large")).await;
        let plan = plan_for(&ec2, &cluster(name, 5, "m5.large")).await;
        (ec2, plan)
    }

    fn gated(model: &Model, moves: Moves) -> Gates<'_> {
        Gates {
            health: Some(model),
            timeout: Duration::from_millis(300),
            poll: Duration::from_millis(1),
            moves,
        }
    }

    /// No health gates, with `moves`.
    fn ungated(moves: Moves) -> Gates<'static> {
        Gates {
            moves,
            ..Gates::skipped()
        }
    }

    /// Executes `plan` with `gates` while the fake's time passes.
    async fn run(
        ec2: &FakeEc2,
        plan: &crate::provision::plan::Plan,
        gates: &Gates<'_>,
    ) -> Result<crate::provision::apply::Outcome, crate::provision::apply::ApplyError> {
        with_ec2_time(ec2, execute(ec2, plan, &settings(), gates, &Silent)).await
    }

    /// Executes `plan` with `model`'s gates, expecting it to fail: the stage, and the first
    /// failure's resource and error.
    async fn failed(
        ec2: &FakeEc2,
        plan: &crate::provision::plan::Plan,
        model: &Model,
    ) -> (&'static str, String, String) {
        let err = run(ec2, plan, &gated(model, Moves::default()))
            .await
            .expect_err("apply fails");
        let first = err.failures[0].clone();
        (err.stage, first.resource, first.error)
    }

    fn live(ec2: &FakeEc2, node: &str) -> bool {
        ec2.instances()
            .iter()
            .any(|i| i.tag(tags::NODE) == Some(node) && i.state != InstanceState::Terminated)
    }

    /// Other brokers' metadata can list a broker that does not listen (ZooKeeper keeps a stopped
    /// broker's registration until its session expires): nothing moves until it answers itself.
    #[tokio::test]
    async fn nothing_moves_while_a_registered_broker_does_not_answer_itself() {
        let (ec2, plan) = shrinking("deaf").await;
        let model = six();
        let broker_3 = super::members(&plan)
            .into_iter()
            .find(|m| m.node == "broker-3")
            .expect("broker-3")
            .address;
        model.state.lock().expect("model").deaf = Some(broker_3);
        let (stage, _, e) = failed(&ec2, &plan, &model).await;
        assert_eq!(stage, super::STAGE);
        assert!(
            e.contains("is registered with Kafka; last seen: broker-3 does not answer: ")
                && e.contains(":9092: connection refused"),
            "{e}"
        );
        assert_eq!(model.holding(6), 3, "nothing moved");
        assert!(live(&ec2, "broker-6"));
    }

    #[tokio::test]
    async fn a_scale_in_moves_the_leaving_brokers_replicas_first_and_then_terminates_it() {
        let ec2 = fake();
        converge(&ec2, &cluster("shrink", 6, "m5.large")).await;
        let five = cluster("shrink", 5, "m5.large");
        let mut plan = plan_for(&ec2, &five).await;
        let model = six();
        // The metadata lags the controller: a moved partition still shows its old replicas
        // for a few readings after the reassignment finished.
        model.state.lock().expect("model").lag = 4;
        plan.replicas = Some(outlook(&plan, &model, Duration::from_secs(1)).await);
        let text = plan.render_text();
        assert!(
            text.contains("drain broker-6 (i-") && text.contains("): 3 replicas move to broker-3 (3) through Kafka's reassignment, rack-aware; apply waits until every moved replica is in sync (--gate-seconds), then terminates it; its data volume is kept"),
            "{text}"
        );
        assert!(!text.contains("terminate broker-6"), "{text}");
        let outcome = run(&ec2, &plan, &gated(&model, Moves::default()))
            .await
            .expect("apply");
        assert_eq!(outcome.replicas_moved, 3);
        assert_eq!(model.holding(6), 0, "broker 6 holds nothing");
        assert!(!live(&ec2, "broker-6"), "broker-6 is terminated");
        let s = model.state.lock().expect("model");
        assert_eq!(
            s.asked.len(),
            1,
            "one request, never a second from lagging metadata"
        );
        // Broker 6's place in each partition goes to broker 3, its zone's other broker; a
        // preferred leader that stays stays first.
        assert_eq!(
            s.partitions[&("orders".to_string(), 1)],
            vec![4, 5, 3],
            "{:?}",
            s.partitions
        );
        assert_eq!(s.partitions[&("orders".to_string(), 3)], vec![3, 4, 5]);
    }

    #[tokio::test]
    async fn a_drain_that_does_not_finish_stops_apply_before_any_termination_and_apply_resumes() {
        let ec2 = fake();
        converge(&ec2, &cluster("slow", 6, "m5.large")).await;
        let five = cluster("slow", 5, "m5.large");
        let plan = plan_for(&ec2, &five).await;
        let model = six();
        model.state.lock().expect("model").polls = None;
        let (stage, resource, e) = failed(&ec2, &plan, &model).await;
        assert_eq!((stage, resource.as_str()), ("moving replicas", "broker-6"));
        assert!(e.starts_with("waited 300ms until no partition reassignment is under way and every moved replica is in sync; last seen: still moving: orders-1 (replicas [4, 5, 3, 6], adding [3], removing [6])"), "{e}");
        assert!(e.contains("orders-3") && e.contains("orders-5"), "{e}");
        assert!(e.contains("Nothing was terminated"), "{e}");
        assert!(
            e.contains("run `kcluster apply` again with the same --move-rate: it resumes"),
            "{e}"
        );
        assert_eq!(ec2.calls().get("TerminateInstances"), None);
        assert!(live(&ec2, "broker-6"));

        // Kafka finishes what it started; apply again waits for it, asks for nothing new, and
        // terminates broker-6 then.
        {
            let mut s = model.state.lock().expect("model");
            s.polls = Some(2);
            for (_, left) in s.ongoing.values_mut() {
                *left = Some(3);
            }
        }
        let plan = plan_for(&ec2, &five).await;
        run(&ec2, &plan, &gated(&model, Moves::default()))
            .await
            .expect("resumed");
        assert_eq!(model.state.lock().expect("model").asked.len(), 1);
        assert_eq!(model.holding(6), 0);
        assert!(!live(&ec2, "broker-6"));
    }

    #[tokio::test]
    async fn a_scale_in_the_rest_cannot_hold_or_cannot_read_is_refused_before_anything_changes() {
        let ec2 = fake();
        converge(&ec2, &cluster("firm", 6, "m5.large")).await;
        let five = cluster("firm", 5, "m5.large");
        let plan = plan_for(&ec2, &five).await;
        let calls = ec2.calls();
        // A topic on all six brokers cannot keep its replication factor on five.
        let wide = Model::new(6, &[("wide", vec![vec![1, 2, 3, 4, 5, 6]])]);
        let err = run(&ec2, &plan, &gated(&wide, Moves::default()))
            .await
            .expect_err("refused");
        let e = &err.failures[0].error;
        assert!(
            e.starts_with("cannot drain broker-6: topic wide: replication factor 6 (partition 0), but only 5 brokers would remain"),
            "{e}"
        );
        assert!(e.ends_with("Nothing was changed."), "{e}");
        assert!(wide.state.lock().expect("model").asked.is_empty());

        // A cluster that does not answer cannot be drained.
        let down = six();
        down.state.lock().expect("model").reachable = false;
        let err = run(&ec2, &plan, &gated(&down, Moves::default()))
            .await
            .expect_err("refused");
        let e = &err.failures[0].error;
        assert!(e.starts_with("no broker answers (127.0.0.1:9092: connection refused). Draining broker-6 before termination needs the running cluster"), "{e}");
        assert!(
            e.contains("`kcluster apply --skip-health-gates --accept-data-loss`"),
            "{e}"
        );

        // Without gates, only the flag that accepts the loss lets it go.
        let err = run(&ec2, &plan, &Gates::skipped())
            .await
            .expect_err("refused");
        let e = &err.failures[0].error;
        assert!(
            e.contains("cannot move the replicas broker-6 holds before terminating it"),
            "{e}"
        );
        assert!(e.contains(ACCEPT_DATA_LOSS_FLAG), "{e}");
        // A rebalance needs the cluster too.
        let rebalance = ungated(Moves {
            rebalance: true,
            ..Moves::default()
        });
        let err = run(&ec2, &plan, &rebalance).await.expect_err("refused");
        assert_eq!(err.failures[0].resource, "rebalance");
        assert_eq!(
            ec2.calls(),
            calls,
            "nothing was asked of EC2 but what plan reads"
        );
        assert!(live(&ec2, "broker-6"));

        let accept = ungated(Moves {
            accept_data_loss: true,
            ..Moves::default()
        });
        run(&ec2, &plan, &accept)
            .await
            .expect("terminated without a drain");
        assert!(!live(&ec2, "broker-6"));
    }

    #[tokio::test]
    async fn the_test_only_switch_terminates_a_broker_that_still_holds_replicas() {
        let ec2 = fake();
        converge(&ec2, &cluster("rash", 6, "m5.large")).await;
        let plan = plan_for(&ec2, &cluster("rash", 5, "m5.large")).await;
        let model = six();
        let moves = Moves {
            skip_drain: true,
            ..Moves::default()
        };
        run(&ec2, &plan, &gated(&model, moves))
            .await
            .expect("apply");
        assert!(!live(&ec2, "broker-6"));
        assert_eq!(model.holding(6), 3, "terminated with its replicas on board");
    }

    #[tokio::test]
    async fn a_rebalance_waits_for_the_new_broker_and_moves_replicas_onto_it() {
        let ec2 = fake();
        converge(&ec2, &cluster("grow", 5, "m5.large")).await;
        let six_brokers = cluster("grow", 6, "m5.large");
        let mut plan = plan_for(&ec2, &six_brokers).await;
        let model = Model::new(
            5,
            &[(
                "orders",
                (0..6)
                    .map(|p| match p % 2 {
                        0 => vec![1, 2, 3],
                        _ => vec![4, 5, 3],
                    })
                    .collect(),
            )],
        );
        model.state.lock().expect("model").joining = vec![(6, 5)];
        plan.replicas = Some(outlook(&plan, &model, Duration::from_secs(1)).await);
        let Some(Outlook::Read { drain, rebalance }) = &plan.replicas else {
            panic!("{:?}", plan.replicas)
        };
        assert!(drain.moves.is_empty());
        // Broker 3 holds all 6 partitions' zone-c replicas: 3 of them go to broker 6, zone c too.
        assert_eq!(rebalance.flows().into_broker(6), [(3, 3)].into());
        let text = plan.render_text();
        assert!(text.contains("rebalance onto broker-6 with `kcluster apply --rebalance`: 3 replicas move to it from broker-3 (3), rack-aware"), "{text}");
        let moves = Moves {
            rebalance: true,
            ..Moves::default()
        };
        let outcome = run(&ec2, &plan, &gated(&model, moves))
            .await
            .expect("apply");
        assert_eq!(outcome.replicas_moved, 3);
        assert_eq!(model.holding(6), 3);
        assert_eq!(model.holding(3), 3);
        let s = model.state.lock().expect("model");
        for r in s.partitions.values() {
            let racks: BTreeSet<String> = r.iter().map(|b| rack(*b)).collect();
            assert_eq!(racks.len(), 3, "three zones kept: {r:?}");
        }
    }

    #[tokio::test]
    async fn a_new_cluster_moves_nothing_and_a_broker_added_to_a_running_one_is_told_of_the_rebalance()
     {
        let ec2 = fake();
        let three = cluster("fresh", 3, "m5.large");
        let plan = plan_for(&ec2, &three).await;
        assert!(!concerns(&plan), "a new cluster has no replicas to move");
        assert_eq!(impacts(&plan), Vec::<String>::new());
        converge(&ec2, &three).await;
        let plan = plan_for(&ec2, &cluster("fresh", 4, "m5.large")).await;
        assert!(concerns(&plan));
        assert_eq!(
            impacts(&plan),
            vec![
                "broker-4 holds only partitions created from now on; `kcluster apply --rebalance` moves existing replicas onto it, rack-aware (computed at apply time: the cluster was not read)"
            ]
        );
    }

    /// The `cluster()` of the apply tests in KRaft mode (three controllers, Kafka 4).
    fn kraft_cluster(name: &str, brokers: u32) -> crate::cluster::Cluster {
        let yaml = format!(
            "name: {name}\nregion: eu-west-1\nmetadata: kraft\nzones:\n  - {{name: eu-west-1a, cidr: 172.31.0.0/20}}\n  - {{name: eu-west-1b, cidr: 172.31.16.0/20}}\n  - {{name: eu-west-1c, cidr: 172.31.32.0/20}}\nbrokers:\n  count: {brokers}\n"
        );
        match crate::topology::load("test.yaml", yaml.as_bytes()) {
            Ok(l) => l.cluster,
            Err(r) => panic!("{r}"),
        }
    }

    /// A fake account running `make(6)` and the plan that takes it to `make(5)`.
    async fn six_to_five(
        make: impl Fn(u32) -> crate::cluster::Cluster,
    ) -> (FakeEc2, crate::provision::plan::Plan) {
        let ec2 = fake();
        converge(&ec2, &make(6)).await;
        let plan = plan_for(&ec2, &make(5)).await;
        (ec2, plan)
    }

    /// In KRaft mode a broker that shut down stays registered with the controllers, fenced, until
    /// it is unregistered (in ZooKeeper mode its registration goes with its session): after the
    /// drain and the termination, apply unregisters it, asking again while the controllers do
    /// not answer; in ZooKeeper mode it asks nothing.
    #[tokio::test]
    async fn a_kraft_scale_in_unregisters_the_terminated_broker_and_a_zookeeper_one_does_not() {
        let (ec2, mut plan) = six_to_five(|n| kraft_cluster("kshrink", n)).await;
        assert!(super::kraft(&plan));
        let model = six();
        {
            let mut s = model.state.lock().expect("model");
            s.unregister_failures = Some(2);
            // Broker 6 shuts down when its instance terminates: still registered, fenced.
            s.fenced.insert(6);
        }
        plan.replicas = Some(outlook(&plan, &model, Duration::from_secs(1)).await);
        let text = plan.render_text();
        assert!(
            text.contains("(--gate-seconds), then terminates it and unregisters it from the KRaft controllers; its data volume is kept"),
            "{text}"
        );
        let outcome = run(&ec2, &plan, &gated(&model, Moves::default()))
            .await
            .expect("apply");
        assert!(!live(&ec2, "broker-6"));
        assert_eq!(outcome.replicas_moved, 3);
        assert_eq!(outcome.registrations.unregistered, vec!["broker-6"]);
        let (unregistered, fenced) = {
            let s = model.state.lock().expect("model");
            (s.unregistered.clone(), s.fenced.clone())
        };
        assert_eq!(unregistered, vec![6]);
        assert!(fenced.is_empty(), "broker 6 left registered: {fenced:?}");

        // ZooKeeper mode: nothing to unregister.
        let (zk, plan) = six_to_five(|n| cluster("zshrink", n, "m5.large")).await;
        assert!(!super::kraft(&plan));
        let model = six();
        let outcome = run(&zk, &plan, &gated(&model, Moves::default()))
            .await
            .expect("apply");
        assert_eq!(outcome.registrations, Default::default());
        assert!(model.state.lock().expect("model").unregistered.is_empty());
    }

    /// Controllers that never take the unregistration: apply stops after the termination, naming
    /// the broker and the command that finishes the job; without health gates it cannot ask and
    /// says what to run.
    #[tokio::test]
    async fn an_unregistration_that_never_succeeds_is_reported_with_the_command_that_finishes_it() {
        let (ec2, plan) = six_to_five(|n| kraft_cluster("kstuck", n)).await;
        let model = six();
        model.state.lock().expect("model").unregister_failures = None;
        let (stage, resource, e) = failed(&ec2, &plan, &model).await;
        assert_eq!(
            (stage, resource.as_str()),
            ("unregistering brokers", "broker-6")
        );
        assert!(
            e.starts_with("broker-6 (node id 6) is terminated but still registered with the KRaft controllers, fenced: waited 300ms for UnregisterBroker; last answer: 127.0.0.1:9092: connection refused."),
            "{e}"
        );
        assert!(
            e.contains("kafka-cluster.sh unregister --bootstrap-server BROKER:PORT --id 6"),
            "{e}"
        );
        assert!(
            !live(&ec2, "broker-6"),
            "the drain and termination happened"
        );

        let (ec2, plan) = six_to_five(|n| kraft_cluster("kdown", n)).await;
        let accept = ungated(Moves {
            accept_data_loss: true,
            ..Moves::default()
        });
        let outcome = run(&ec2, &plan, &accept).await.expect("terminated");
        assert!(outcome.registrations.unregistered.is_empty());
        let by_hand = &outcome.registrations.by_hand;
        assert_eq!(by_hand.len(), 1, "{by_hand:?}");
        assert!(
            by_hand[0].starts_with("kafka-cluster.sh unregister --bootstrap-server ")
                && by_hand[0].ends_with(":PORT --id 6"),
            "{by_hand:?}"
        );
    }

    /// Broker → (leader rate, follower rate), topic → (leader list, follower list).
    type Configs = (
        BTreeMap<i32, (String, String)>,
        BTreeMap<String, (String, String)>,
    );

    fn configs(seen: &Seen) -> Configs {
        let two = |c: &BTreeMap<String, String>, a: &str, b: &str| {
            let get = |k: &str| c.get(k).cloned().unwrap_or_default();
            (get(a), get(b))
        };
        (
            seen.brokers
                .iter()
                .map(|(b, c)| (*b, two(c, LEADER_RATE, FOLLOWER_RATE)))
                .collect(),
            seen.topics
                .iter()
                .map(|(t, c)| (t.clone(), two(c, LEADER_REPLICAS, FOLLOWER_REPLICAS)))
                .collect(),
        )
    }

    fn rated(brokers: &[i32], rate: &str) -> BTreeMap<i32, (String, String)> {
        brokers
            .iter()
            .map(|b| (*b, (rate.to_string(), rate.to_string())))
            .collect()
    }

    #[tokio::test]
    async fn a_drain_throttles_exactly_the_moving_replicas_before_asking_and_removes_it_after() {
        let (ec2, mut plan) = shrinking("paced").await;
        let model = six();
        // An operator's own throttle on broker 1, which takes no part in the moves, and on
        // broker 5, which does: both stay as they are.
        model.state.lock().expect("model").configs.brokers = [(1, "7000"), (5, "9000")]
            .iter()
            .map(|(b, r)| (*b, [(FOLLOWER_RATE.to_string(), r.to_string())].into()))
            .collect();
        let rate = MoveRate::Limit(1_048_576);
        plan.throttle = Some(super::throttling(&plan, &model, rate, Duration::from_secs(1)).await);
        let text = plan.render_text();
        assert!(
            text.contains(
                "replicas that move copy at most at 1 MiB/s per broker, each way (--move-rate)"
            ),
            "{text}"
        );
        assert!(text.contains("replication throttles kcluster did not set stay as they are: broker 1 follower.replication.throttled.rate=7000, broker 5 follower.replication.throttled.rate=9000"), "{text}");
        assert!(!text.contains("interrupted apply left"), "{text}");
        let moves = Moves {
            rate,
            ..Moves::default()
        };
        run(&ec2, &plan, &gated(&model, moves))
            .await
            .expect("apply");
        let s = model.state.lock().expect("model");
        // Broker 6's replicas of orders-1, -3 and -5 move to broker 3: the leader list names each
        // partition's current replicas, the follower list broker 3; brokers 3-6 get the rate
        // (broker 5 keeps its own follower rate).
        let (brokers, topics) = configs(&s.configs_asked[0]);
        let mut want = rated(&[3, 4, 6], "1048576");
        want.insert(5, ("1048576".into(), "9000".into()));
        want.insert(1, (String::new(), "7000".into()));
        assert_eq!(brokers, want);
        assert_eq!(
            topics,
            [(
                "orders".to_string(),
                (
                    "1:4,1:5,1:6,3:4,3:5,3:6,5:4,5:5,5:6".to_string(),
                    "1:3,3:3,5:3".to_string()
                )
            )]
            .into()
        );
        // Once done, only the operator's throttle is left.
        let (brokers, topics) = configs(&s.configs);
        assert_eq!(
            brokers,
            [
                (1, (String::new(), "7000".to_string())),
                (5, (String::new(), "9000".to_string()))
            ]
            .into()
        );
        assert!(topics.is_empty(), "{topics:?}");
    }

    #[tokio::test]
    async fn an_interrupted_drain_leaves_its_throttle_and_the_next_apply_removes_it() {
        let (ec2, plan) = shrinking("halt").await;
        let model = six();
        model.state.lock().expect("model").polls = None;
        let err = run(&ec2, &plan, &gated(&model, Moves::default()))
            .await
            .expect_err("the drain times out");
        assert!(
            err.failures[0]
                .error
                .contains("run `kcluster apply` again with the same --move-rate"),
            "{err}"
        );
        let (brokers, _) = configs(&model.state.lock().expect("model").configs);
        assert_eq!(
            brokers,
            rated(&[3, 4, 5, 6], "41943040"),
            "the throttle stays"
        );

        // The next plan finds it; a plan at another rate does not take it for kcluster's.
        let mut plan = plan_for(&ec2, &cluster("halt", 5, "m5.large")).await;
        let found =
            super::throttling(&plan, &model, MoveRate::default(), Duration::from_secs(1)).await;
        assert_eq!(
            found.left.as_deref(),
            Some("brokers 3, 4, 5, 6 and topic orders")
        );
        let other =
            super::throttling(&plan, &model, MoveRate::Limit(1000), Duration::from_secs(1)).await;
        assert_eq!((other.left, other.others.len()), (None, 8));
        plan.throttle = Some(found);
        assert!(plan.render_text().contains("remove the replication throttle an interrupted apply left on brokers 3, 4, 5, 6 and topic orders (rates of exactly 40 MiB/s)"));

        // While Kafka still moves, an apply that moves nothing itself leaves the throttle.
        let clear = Moves {
            clear_left: true,
            skip_drain: true,
            accept_data_loss: true,
            ..Moves::default()
        };
        let nothing = plan_for(&ec2, &cluster("halt", 6, "m5.large")).await;
        run(&ec2, &nothing, &gated(&model, clear))
            .await
            .expect("apply");
        assert_eq!(
            configs(&model.state.lock().expect("model").configs).0.len(),
            4
        );
        // Once Kafka is done, it goes.
        {
            let mut s = model.state.lock().expect("model");
            s.polls = Some(1);
            for (_, left) in s.ongoing.values_mut() {
                *left = Some(1);
            }
        }
        for _ in 0..2 {
            crate::operations::health::Health::kafka(&model, &[])
                .await
                .expect("read");
        }
        assert!(model.state.lock().expect("model").ongoing.is_empty());
        run(&ec2, &nothing, &gated(&model, clear))
            .await
            .expect("apply");
        assert_eq!(model.state.lock().expect("model").configs, Seen::default());
    }

    #[tokio::test]
    async fn the_test_only_switch_leaves_the_throttle_and_none_sets_no_throttle() {
        let (ec2, plan) = shrinking("kept").await;
        let model = six();
        let keep = Moves {
            keep_throttle: true,
            ..Moves::default()
        };
        run(&ec2, &plan, &gated(&model, keep)).await.expect("apply");
        assert_eq!(model.holding(6), 0);
        let (brokers, topics) = configs(&model.state.lock().expect("model").configs);
        assert_eq!(brokers, rated(&[3, 4, 5, 6], "41943040"), "left behind");
        assert_eq!(topics.len(), 1);

        let (ec2, plan) = shrinking("free").await;
        let model = six();
        let free = Moves {
            rate: MoveRate::Unthrottled,
            ..Moves::default()
        };
        run(&ec2, &plan, &gated(&model, free)).await.expect("apply");
        let s = model.state.lock().expect("model");
        assert_eq!(s.configs_asked, vec![Seen::default()], "nothing throttled");
        assert_eq!(model_holding(&s, 6), 0);
    }

    fn model_holding(s: &State, broker: i32) -> usize {
        s.partitions
            .values()
            .filter(|r| r.contains(&broker))
            .count()
    }
}
