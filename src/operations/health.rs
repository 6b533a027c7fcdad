//! Reads the running cluster's health for the roll's gates, never over SSH: ZooKeeper's `mntr`
//! four-letter word on each member's client port, and Kafka's own protocol on the brokers' client
//! listener (a Metadata request for brokers, controller, replicas and ISRs; DescribeConfigs for each
//! topic's `min.insync.replicas`; DescribeQuorum on a KRaft controller's listener), and each
//! Kafka Connect worker's REST API (`GET /` and `GET /connectors`). kcluster must run where it
//! reaches the nodes' private addresses (a bastion, a VPN, a CI runner in the VPC). The same
//! protocol moves replicas for drains and rebalances: AlterPartitionReassignments and
//! ListPartitionReassignments, sent where Kafka's Admin client sends them; throttles them:
//! DescribeConfigs and IncrementalAlterConfigs of the brokers' replication rates (each sent to
//! its broker, as the Admin client does) and the topics' throttled-replica lists; and, in KRaft
//! mode, removes a terminated broker's registration (UnregisterBroker).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ApiKey, BrokerId,
    DescribeConfigsRequest, DescribeConfigsResponse, DescribeQuorumRequest, DescribeQuorumResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, MetadataRequest,
    MetadataResponse, RequestHeader, ResponseHeader, TopicName, UnregisterBrokerRequest,
    UnregisterBrokerResponse, describe_quorum_request, incremental_alter_configs_request,
};
use kafka_protocol::protocol::{
    Decodable, Encodable, HeaderVersion, StrBytes, encode_request_header_into_buffer,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::cluster::{CONNECT_REST_PORT, CONTROLLER_PORT, ZK_CLIENT_PORT};
use crate::kafka::reassign::{Move, Ongoing};
use crate::kafka::throttle::{self, Change, Resource, Seen};
use crate::operations::roll::{
    ConnectState, ConnectWorker, KafkaView, Partition, QuorumView, Voter, ZkMember, ZkState,
};

/// What the gates read. The network implementation talks to the nodes; tests may give another.
#[async_trait]
pub trait Health: Send + Sync {
    /// `mntr` of each member (by node name and address).
    async fn zookeeper(&self, members: &[(String, Ipv4Addr)]) -> Vec<ZkMember>;
    /// The brokers' view, from the first of `brokers` that answers.
    async fn kafka(&self, brokers: &[Ipv4Addr]) -> Result<KafkaView, String>;
    /// The KRaft controller quorum, from the first of `controllers` that answers.
    async fn kraft(&self, controllers: &[Ipv4Addr]) -> Result<QuorumView, String>;
    /// What each Connect worker's REST API answers (by node name and address).
    async fn connect(&self, workers: &[(String, Ipv4Addr)]) -> Vec<ConnectWorker> {
        workers
            .iter()
            .map(|(node, _)| ConnectWorker {
                node: node.clone(),
                state: ConnectState::Down("this health reader cannot read Connect workers".into()),
            })
            .collect()
    }
    /// The partition reassignments Kafka is carrying out.
    async fn reassignments(&self, _brokers: &[Ipv4Addr]) -> Result<Vec<Ongoing>, String> {
        Err("this health reader cannot list Kafka's reassignments".into())
    }
    /// Asks Kafka to move each partition of `moves` onto its `to` replicas.
    async fn reassign(&self, _brokers: &[Ipv4Addr], _moves: &[Move]) -> Result<(), String> {
        Err("this health reader cannot reassign partitions".into())
    }
    /// Removes broker `id`'s registration from the KRaft controllers; a broker not registered
    /// is no error.
    async fn unregister(&self, _brokers: &[Ipv4Addr], _id: i32) -> Result<(), String> {
        Err("this health reader cannot unregister brokers".into())
    }
    /// The replication throttle configs of every broker and topic of the cluster.
    async fn throttles(&self, _brokers: &[Ipv4Addr]) -> Result<Seen, String> {
        Err("this health reader cannot read Kafka's configs".into())
    }
    /// Changes broker and topic configs (IncrementalAlterConfigs: other configs stay).
    async fn alter_configs(
        &self,
        _brokers: &[Ipv4Addr],
        _changes: &[Change],
    ) -> Result<(), String> {
        Err("this health reader cannot change Kafka's configs".into())
    }
}

/// Health read over the network from the nodes' own addresses.
#[derive(Debug, Clone)]
pub struct Network {
    /// The brokers' client listener port.
    pub client_port: u16,
    /// Bound on each connection and answer.
    pub timeout: Duration,
}

#[async_trait]
impl Health for Network {
    async fn zookeeper(&self, members: &[(String, Ipv4Addr)]) -> Vec<ZkMember> {
        let mut out = Vec::new();
        for (node, address) in members {
            let state = match mntr(*address, self.timeout).await {
                Ok(stats) => zk_state(&stats),
                Err(e) => ZkState::Down(e),
            };
            out.push(ZkMember {
                node: node.clone(),
                state,
            });
        }
        out
    }

    async fn kafka(&self, brokers: &[Ipv4Addr]) -> Result<KafkaView, String> {
        let mut errors = Vec::new();
        for address in brokers {
            let at = SocketAddr::from((*address, self.client_port));
            match tokio::time::timeout(self.timeout * 3, kafka_view(at, self.timeout)).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => errors.push(format!("{at}: {e}")),
                Err(_) => errors.push(format!("{at}: no answer within {:?}", self.timeout * 3)),
            }
        }
        Err(errors.join("; "))
    }

    async fn kraft(&self, controllers: &[Ipv4Addr]) -> Result<QuorumView, String> {
        let mut errors = Vec::new();
        for address in controllers {
            let at = SocketAddr::from((*address, CONTROLLER_PORT));
            match tokio::time::timeout(self.timeout * 2, quorum_view(at, self.timeout)).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => errors.push(format!("{at}: {e}")),
                Err(_) => errors.push(format!("{at}: no answer within {:?}", self.timeout * 2)),
            }
        }
        Err(errors.join("; "))
    }

    async fn connect(&self, workers: &[(String, Ipv4Addr)]) -> Vec<ConnectWorker> {
        let mut out = Vec::new();
        for (node, address) in workers {
            let at = SocketAddr::from((*address, CONNECT_REST_PORT));
            let timeout = self.timeout;
            let state = tokio::task::spawn_blocking(move || connect_state(at, timeout))
                .await
                .unwrap_or_else(|e| ConnectState::Down(format!("{at}: {e}")));
            out.push(ConnectWorker {
                node: node.clone(),
                state,
            });
        }
        out
    }

    async fn reassignments(&self, brokers: &[Ipv4Addr]) -> Result<Vec<Ongoing>, String> {
        let mut request = ListPartitionReassignmentsRequest::default();
        request.timeout_ms = REASSIGNMENT_TIMEOUT_MS;
        request.topics = None;
        let response: ListPartitionReassignmentsResponse = self
            .at_controller(
                brokers,
                ApiKey::ListPartitionReassignments,
                &request,
                |r: &ListPartitionReassignmentsResponse| {
                    (
                        r.error_code,
                        r.error_message.as_deref().map(|m| m.to_string()),
                    )
                },
            )
            .await?;
        let mut out = Vec::new();
        for t in response.topics {
            for p in t.partitions {
                let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<i32>>();
                out.push(Ongoing {
                    topic: t.name.0.to_string(),
                    partition: p.partition_index,
                    replicas: ids(&p.replicas),
                    adding: ids(&p.adding_replicas),
                    removing: ids(&p.removing_replicas),
                });
            }
        }
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(out)
    }

    async fn reassign(&self, brokers: &[Ipv4Addr], moves: &[Move]) -> Result<(), String> {
        let mut topics: std::collections::BTreeMap<&str, Vec<ReassignablePartition>> =
            Default::default();
        for m in moves {
            let mut p = ReassignablePartition::default();
            p.partition_index = m.partition;
            p.replicas = Some(m.to.iter().map(|b| BrokerId(*b)).collect());
            topics.entry(m.topic.as_str()).or_default().push(p);
        }
        let mut request = AlterPartitionReassignmentsRequest::default();
        request.timeout_ms = REASSIGNMENT_TIMEOUT_MS;
        request.topics = topics
            .into_iter()
            .map(|(name, partitions)| {
                let mut t = ReassignableTopic::default();
                t.name = TopicName(StrBytes::from_string(name.to_string()));
                t.partitions = partitions;
                t
            })
            .collect();
        let response: AlterPartitionReassignmentsResponse = self
            .at_controller(
                brokers,
                ApiKey::AlterPartitionReassignments,
                &request,
                |r: &AlterPartitionReassignmentsResponse| {
                    (
                        r.error_code,
                        r.error_message.as_deref().map(|m| m.to_string()),
                    )
                },
            )
            .await?;
        let refused: Vec<String> = response
            .responses
            .iter()
            .flat_map(|t| {
                t.partitions.iter().filter(|p| p.error_code != 0).map(|p| {
                    format!(
                        "{}-{}: {}",
                        t.name.0.as_str(),
                        p.partition_index,
                        kafka_error(p.error_code, p.error_message.as_deref())
                    )
                })
            })
            .collect();
        if refused.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "AlterPartitionReassignments refused {}",
                refused.join("; ")
            ))
        }
    }

    async fn unregister(&self, brokers: &[Ipv4Addr], id: i32) -> Result<(), String> {
        let mut request = UnregisterBrokerRequest::default();
        request.broker_id = BrokerId(id);
        self.at_controller(
            brokers,
            ApiKey::UnregisterBroker,
            &request,
            |r: &UnregisterBrokerResponse| match r.error_code {
                BROKER_ID_NOT_REGISTERED => (0, None),
                code => (code, r.error_message.as_deref().map(|m| m.to_string())),
            },
        )
        .await
        .map(|_| ())
    }
    async fn throttles(&self, brokers: &[Ipv4Addr]) -> Result<Seen, String> {
        let talk = async {
            let (mut stream, metadata) = self.any_broker(brokers, None).await?;
            let mut seen = Seen {
                registered: metadata.brokers.iter().map(|b| b.node_id.0).collect(),
                ..Seen::default()
            };
            let topics: Vec<String> = metadata
                .topics
                .iter()
                .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
                .collect();
            if !topics.is_empty() {
                let keys = [throttle::LEADER_REPLICAS, throttle::FOLLOWER_REPLICAS];
                for (topic, configs) in
                    describe(&mut stream, TOPIC_RESOURCE, &topics, &keys, TOPIC_CONFIG).await?
                {
                    seen.topics.insert(topic, configs);
                }
            }
            for b in &metadata.brokers {
                let mut at = broker_stream(b, self.timeout).await?;
                let keys = [throttle::LEADER_RATE, throttle::FOLLOWER_RATE];
                let id = b.node_id.0.to_string();
                for (_, configs) in describe(
                    &mut at,
                    BROKER_RESOURCE,
                    &[id],
                    &keys,
                    DYNAMIC_BROKER_CONFIG,
                )
                .await?
                {
                    seen.brokers.insert(b.node_id.0, configs);
                }
            }
            Ok::<Seen, String>(seen)
        };
        tokio::time::timeout(self.timeout * 6, talk)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "DescribeConfigs: no answer within {:?}",
                    self.timeout * 6
                ))
            })
    }

    async fn alter_configs(&self, brokers: &[Ipv4Addr], changes: &[Change]) -> Result<(), String> {
        let mut by: std::collections::BTreeMap<&Resource, Vec<&Change>> = Default::default();
        for c in changes {
            by.entry(&c.resource).or_default().push(c);
        }
        let talk = async {
            let (mut any, metadata) = self.any_broker(brokers, Some(Vec::new())).await?;
            let mut refused = Vec::new();
            for (resource, changes) in by {
                // A broker's own configs go to that broker, as Kafka's Admin client sends them.
                let (kind, name, mut own) = match resource {
                    Resource::Topic(t) => (TOPIC_RESOURCE, t.clone(), None),
                    Resource::Broker(id) => {
                        let b = metadata
                            .brokers
                            .iter()
                            .find(|b| b.node_id.0 == *id)
                            .ok_or_else(|| format!("broker {id} is not registered"))?;
                        (
                            BROKER_RESOURCE,
                            id.to_string(),
                            Some(broker_stream(b, self.timeout).await?),
                        )
                    }
                };
                let mut r = incremental_alter_configs_request::AlterConfigsResource::default();
                r.resource_type = kind;
                r.resource_name = StrBytes::from_string(name);
                r.configs = changes
                    .iter()
                    .map(|c| {
                        let mut a = incremental_alter_configs_request::AlterableConfig::default();
                        a.name = StrBytes::from_static_str(c.name);
                        a.config_operation = if c.value.is_some() { SET } else { DELETE };
                        a.value = c.value.clone().map(StrBytes::from_string);
                        a
                    })
                    .collect();
                let mut request = IncrementalAlterConfigsRequest::default();
                request.resources = vec![r];
                let stream = own.as_mut().unwrap_or(&mut any);
                let answer: IncrementalAlterConfigsResponse = call(
                    stream,
                    ApiKey::IncrementalAlterConfigs,
                    3,
                    &request,
                    INCREMENTAL_ALTER_CONFIGS_VERSION,
                )
                .await?;
                for r in answer.responses.iter().filter(|r| r.error_code != 0) {
                    refused.push(format!(
                        "{}: {}",
                        r.resource_name.as_str(),
                        kafka_error(r.error_code, r.error_message.as_deref())
                    ));
                }
            }
            if refused.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "IncrementalAlterConfigs refused {}",
                    refused.join("; ")
                ))
            }
        };
        tokio::time::timeout(self.timeout * 6, talk)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "IncrementalAlterConfigs: no answer within {:?}",
                    self.timeout * 6
                ))
            })
    }
}

/// IncrementalAlterConfigs v0 (Kafka 2.3 up to 4.x).
const INCREMENTAL_ALTER_CONFIGS_VERSION: i16 = 0;
/// Its operations.
const SET: i8 = 0;
const DELETE: i8 = 1;
/// Kafka's ConfigResource type of a broker.
const BROKER_RESOURCE: i8 = 4;
/// DescribeConfigs' sources of a topic's own config and of a broker's dynamic per-broker one.
const TOPIC_CONFIG: i8 = 1;
const DYNAMIC_BROKER_CONFIG: i8 = 2;

/// A connection to a broker as Metadata lists it.
async fn broker_stream(
    b: &kafka_protocol::messages::metadata_response::MetadataResponseBroker,
    timeout: Duration,
) -> Result<TcpStream, String> {
    let (id, host) = (b.node_id.0, b.host.as_str());
    let port =
        u16::try_from(b.port).map_err(|_| format!("broker {id} listens on port {}", b.port))?;
    tokio::time::timeout(timeout, TcpStream::connect((host, port)))
        .await
        .map_err(|_| format!("broker {id} at {host}:{port}: no connection within {timeout:?}"))?
        .map_err(|e| format!("broker {id} at {host}:{port}: {e}"))
}

/// DescribeConfigs of `names` (of one resource type) for `keys`: each resource's keys that are
/// set from `source` (a value of its own, not a default).
async fn describe(
    stream: &mut TcpStream,
    kind: i8,
    names: &[String],
    keys: &[&'static str],
    source: i8,
) -> Result<Vec<(String, std::collections::BTreeMap<String, String>)>, String> {
    let mut request = DescribeConfigsRequest::default();
    request.resources = names
        .iter()
        .map(|n| {
            let mut r = DescribeConfigsResource::default();
            r.resource_type = kind;
            r.resource_name = StrBytes::from_string(n.clone());
            r.configuration_keys =
                Some(keys.iter().map(|k| StrBytes::from_static_str(k)).collect());
            r
        })
        .collect();
    let answer: DescribeConfigsResponse = call(
        stream,
        ApiKey::DescribeConfigs,
        2,
        &request,
        DESCRIBE_CONFIGS_VERSION,
    )
    .await?;
    let mut out = Vec::new();
    for r in answer.results {
        if r.error_code != 0 {
            return Err(format!(
                "DescribeConfigs of {}: {}",
                r.resource_name.as_str(),
                kafka_error(r.error_code, r.error_message.as_deref())
            ));
        }
        let configs: std::collections::BTreeMap<String, String> = r
            .configs
            .iter()
            .filter(|c| c.config_source == source)
            .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        if !configs.is_empty() {
            out.push((r.resource_name.to_string(), configs));
        }
    }
    Ok(out)
}

/// How long the controller may take over a reassignment request.
const REASSIGNMENT_TIMEOUT_MS: i32 = 30_000;
/// Both reassignment APIs at version 0 (flexible, and served by Kafka 2.4 up to 4.x), and
/// UnregisterBroker at its only version, 0 (KRaft mode, Kafka 3.0 up to 4.x).
const CONTROLLER_API_VERSION: i16 = 0;
/// Kafka's NOT_CONTROLLER: the controller moved between Metadata and the request.
const NOT_CONTROLLER: i16 = 41;
/// Kafka's BROKER_ID_NOT_REGISTERED: the controllers hold no registration of the broker.
const BROKER_ID_NOT_REGISTERED: i16 = 102;

impl Network {
    /// Sends a controller request where Kafka's Admin client sends it: to the broker Metadata
    /// names as controller (in ZooKeeper mode the active controller, which alone serves it; in
    /// KRaft mode any broker, which forwards it to the quorum's leader). Asks again, up to three
    /// times, when the controller moved meanwhile; any other error of the whole answer (`error`:
    /// its code and message) is returned as the error.
    async fn at_controller<Req: Encodable, Resp: Decodable + HeaderVersion>(
        &self,
        brokers: &[Ipv4Addr],
        api_key: ApiKey,
        request: &Req,
        error: impl Fn(&Resp) -> (i16, Option<String>),
    ) -> Result<Resp, String> {
        let mut last = String::new();
        for attempt in 0..3 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            let talk = async {
                let mut stream = self.controller(brokers).await?;
                call(&mut stream, api_key, 1, request, CONTROLLER_API_VERSION).await
            };
            let response: Resp = match tokio::time::timeout(self.timeout * 6, talk).await {
                Ok(r) => r?,
                Err(_) => {
                    return Err(format!(
                        "{api_key:?}: no answer within {:?}",
                        self.timeout * 6
                    ));
                }
            };
            match error(&response) {
                (0, _) => return Ok(response),
                (NOT_CONTROLLER, message) => last = kafka_error(NOT_CONTROLLER, message.as_deref()),
                (code, message) => {
                    return Err(format!(
                        "{api_key:?}: {}",
                        kafka_error(code, message.as_deref())
                    ));
                }
            }
        }
        Err(format!("{api_key:?}: {last} three times"))
    }

    /// A connection to the first of `brokers` that answers, and its Metadata (of `topics`; all
    /// with `None`).
    async fn any_broker(
        &self,
        brokers: &[Ipv4Addr],
        topics: Option<Vec<kafka_protocol::messages::metadata_request::MetadataRequestTopic>>,
    ) -> Result<(TcpStream, MetadataResponse), String> {
        let mut errors = Vec::new();
        for address in brokers {
            let at = SocketAddr::from((*address, self.client_port));
            let mut request = MetadataRequest::default();
            request.topics = topics.clone();
            let talk = async {
                let mut stream = connect(at, self.timeout).await?;
                let m: MetadataResponse =
                    call(&mut stream, ApiKey::Metadata, 1, &request, METADATA_VERSION).await?;
                Ok::<_, String>((stream, m))
            };
            match talk.await {
                Ok(r) => return Ok(r),
                Err(e) => errors.push(format!("{at}: {e}")),
            }
        }
        Err(errors.join("; "))
    }

    /// A connection to the broker Metadata names as controller, asked of the first of `brokers`
    /// that answers.
    async fn controller(&self, brokers: &[Ipv4Addr]) -> Result<TcpStream, String> {
        let mut errors = Vec::new();
        for address in brokers {
            let at = SocketAddr::from((*address, self.client_port));
            match controller_of(at, self.timeout).await {
                Ok(stream) => return Ok(stream),
                Err(e) => errors.push(format!("{at}: {e}")),
            }
        }
        Err(errors.join("; "))
    }
}

async fn controller_of(at: SocketAddr, timeout: Duration) -> Result<TcpStream, String> {
    let mut stream = connect(at, timeout).await?;
    let mut request = MetadataRequest::default();
    request.topics = Some(Vec::new());
    let metadata: MetadataResponse =
        call(&mut stream, ApiKey::Metadata, 1, &request, METADATA_VERSION).await?;
    let id = metadata.controller_id.0;
    let controller = metadata
        .brokers
        .iter()
        .find(|b| b.node_id.0 == id)
        .ok_or_else(|| format!("Metadata names no live controller (controller id {id})"))?;
    let port = u16::try_from(controller.port)
        .map_err(|_| format!("controller {id} listens on port {}", controller.port))?;
    let host = controller.host.as_str();
    tokio::time::timeout(timeout, TcpStream::connect((host, port)))
        .await
        .map_err(|_| format!("controller {id} at {host}:{port}: no connection within {timeout:?}"))?
        .map_err(|e| format!("controller {id} at {host}:{port}: {e}"))
}

async fn connect(at: SocketAddr, timeout: Duration) -> Result<TcpStream, String> {
    tokio::time::timeout(timeout, TcpStream::connect(at))
        .await
        .map_err(|_| format!("no connection within {timeout:?}"))?
        .map_err(|e| e.to_string())
}

/// `NotController (41): message`.
fn kafka_error(code: i16, message: Option<&str>) -> String {
    let name = match ResponseError::try_from_code(code) {
        Some(ResponseError::Unknown(_)) | None => "unknown error".to_string(),
        Some(e) => format!("{e:?}"),
    };
    match message.filter(|m| !m.is_empty()) {
        Some(m) => format!("{name} ({code}): {m}"),
        None => format!("{name} ({code})"),
    }
}

/// A Connect worker's state from its REST API at `at`: its version from `GET /`, then the
/// connectors it knows from `GET /connectors`, which it answers only once it has joined its
/// group and read the group's configs.
pub fn connect_state(at: SocketAddr, timeout: Duration) -> ConnectState {
    let get = |path: &str| -> Result<serde_json::Value, String> {
        let body = crate::operations::exporter_health::get(at, path, "application/json", timeout)
            .map_err(|e| format!("GET http://{at}{path}: {e}"))?;
        serde_json::from_str(&body).map_err(|e| format!("GET http://{at}{path}: not JSON ({e})"))
    };
    let root = match get("/") {
        Ok(v) => v,
        Err(e) => return ConnectState::Down(e),
    };
    let Some(version) = root["version"].as_str() else {
        return ConnectState::Down(format!(
            "GET http://{at}/ names no version: {root} (not a Connect worker?)"
        ));
    };
    let listed = match get("/connectors") {
        Ok(v) => v,
        Err(e) => return ConnectState::Down(e),
    };
    let Some(list) = listed.as_array() else {
        return ConnectState::Down(format!(
            "GET http://{at}/connectors is not a list: {listed}"
        ));
    };
    let mut connectors: Vec<String> = list
        .iter()
        .map(|c| c.as_str().map_or_else(|| c.to_string(), str::to_string))
        .collect();
    connectors.sort();
    ConnectState::Up {
        version: version.to_string(),
        connectors,
    }
}

/// The role a member's `mntr` reports.
pub fn zk_state(stats: &std::collections::BTreeMap<String, String>) -> ZkState {
    match stats.get("zk_server_state").map(String::as_str) {
        Some("leader") => ZkState::Leader {
            synced_followers: stats
                .get("zk_synced_followers")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        },
        Some("follower") => ZkState::Follower,
        Some(other) => ZkState::Down(format!("{other}, not part of a quorum")),
        None => ZkState::Down("mntr gave no zk_server_state".into()),
    }
}

/// `mntr` as key/value pairs, or why there are none.
pub async fn mntr(
    address: Ipv4Addr,
    timeout: Duration,
) -> Result<std::collections::BTreeMap<String, String>, String> {
    let at = SocketAddr::from((address, ZK_CLIENT_PORT));
    let talk = async {
        let mut s = TcpStream::connect(at).await?;
        s.write_all(b"mntr").await?;
        let mut answer = String::new();
        s.read_to_string(&mut answer).await?;
        Ok::<String, std::io::Error>(answer)
    };
    let answer = match tokio::time::timeout(timeout, talk).await {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => return Err(format!("{at}: {e}")),
        Err(_) => return Err(format!("{at}: no answer within {timeout:?}")),
    };
    let stats: std::collections::BTreeMap<String, String> = answer
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if stats.is_empty() {
        return Err(format!("{at}: {}", answer.trim()));
    }
    Ok(stats)
}

const METADATA_VERSION: i16 = 9;
const DESCRIBE_CONFIGS_VERSION: i16 = 4;
/// Kafka's ConfigResource type of a topic.
const TOPIC_RESOURCE: i8 = 2;

async fn kafka_view(at: SocketAddr, timeout: Duration) -> Result<KafkaView, String> {
    let mut stream = connect(at, timeout).await?;
    let mut request = MetadataRequest::default();
    request.topics = None;
    let metadata: MetadataResponse =
        call(&mut stream, ApiKey::Metadata, 1, &request, METADATA_VERSION).await?;
    let mut view = KafkaView {
        brokers: metadata.brokers.iter().map(|b| b.node_id.0).collect(),
        controller: Some(metadata.controller_id.0).filter(|c| *c >= 0),
        partitions: Vec::new(),
        racks: metadata
            .brokers
            .iter()
            .filter_map(|b| Some((b.node_id.0, b.rack.as_ref()?.to_string())))
            .collect(),
    };
    let names: Vec<String> = metadata
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect();
    let mut min_isr = std::collections::BTreeMap::new();
    if !names.is_empty() {
        let mut request = DescribeConfigsRequest::default();
        request.resources = names
            .iter()
            .map(|n| {
                let mut r = DescribeConfigsResource::default();
                r.resource_type = TOPIC_RESOURCE;
                r.resource_name = StrBytes::from_string(n.clone());
                r.configuration_keys = Some(vec![StrBytes::from_static_str("min.insync.replicas")]);
                r
            })
            .collect();
        let configs: DescribeConfigsResponse = call(
            &mut stream,
            ApiKey::DescribeConfigs,
            2,
            &request,
            DESCRIBE_CONFIGS_VERSION,
        )
        .await?;
        for r in configs.results {
            if r.error_code != 0 {
                return Err(format!(
                    "DescribeConfigs of topic {}: error {}",
                    r.resource_name.as_str(),
                    r.error_code
                ));
            }
            for c in r.configs {
                if c.name.as_str() == "min.insync.replicas"
                    && let Some(v) = c.value.and_then(|v| v.as_str().parse::<i32>().ok())
                {
                    min_isr.insert(r.resource_name.to_string(), v);
                }
            }
        }
    }
    for t in &metadata.topics {
        let Some(name) = t.name.as_ref().map(|n| n.0.to_string()) else {
            continue;
        };
        if t.error_code != 0 {
            return Err(format!("metadata of topic {name}: error {}", t.error_code));
        }
        for p in &t.partitions {
            view.partitions.push(Partition {
                topic: name.clone(),
                partition: p.partition_index,
                replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                min_isr: min_isr.get(&name).copied(),
            });
        }
    }
    view.partitions
        .sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Ok(view)
}

/// DescribeQuorum v1 (Kafka 3.3+; the first version with each voter's last caught-up time).
const DESCRIBE_QUORUM_VERSION: i16 = 1;
/// The KRaft metadata log, the one partition DescribeQuorum describes.
const METADATA_TOPIC: &str = "__cluster_metadata";

/// DescribeQuorum sent to a controller's own listener (controllers answer it since Kafka 3.7).
async fn quorum_view(at: SocketAddr, timeout: Duration) -> Result<QuorumView, String> {
    let mut stream = tokio::time::timeout(timeout, TcpStream::connect(at))
        .await
        .map_err(|_| format!("no connection within {timeout:?}"))?
        .map_err(|e| e.to_string())?;
    let mut partition = describe_quorum_request::PartitionData::default();
    partition.partition_index = 0;
    let mut topic = describe_quorum_request::TopicData::default();
    topic.topic_name = TopicName(StrBytes::from_static_str(METADATA_TOPIC));
    topic.partitions = vec![partition];
    let mut request = DescribeQuorumRequest::default();
    request.topics = vec![topic];
    let answer: DescribeQuorumResponse = call(
        &mut stream,
        ApiKey::DescribeQuorum,
        1,
        &request,
        DESCRIBE_QUORUM_VERSION,
    )
    .await?;
    if answer.error_code != 0 {
        return Err(format!("DescribeQuorum: error {}", answer.error_code));
    }
    let p = answer
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .next()
        .ok_or("DescribeQuorum: no partition in the answer")?;
    if p.error_code != 0 {
        return Err(format!("DescribeQuorum: partition error {}", p.error_code));
    }
    Ok(QuorumView {
        leader: Some(p.leader_id.0).filter(|l| *l >= 0),
        high_watermark: p.high_watermark,
        voters: p
            .current_voters
            .iter()
            .map(|v| Voter {
                id: v.replica_id.0,
                log_end_offset: v.log_end_offset,
                last_caught_up_ms: v.last_caught_up_timestamp,
            })
            .collect(),
    })
}

/// One request and its response on `stream`, framed as Kafka frames them (a 4-byte size first).
async fn call<Req: Encodable, Resp: Decodable + HeaderVersion>(
    stream: &mut TcpStream,
    api_key: ApiKey,
    correlation_id: i32,
    request: &Req,
    version: i16,
) -> Result<Resp, String> {
    let mut header = RequestHeader::default();
    header.request_api_key = api_key as i16;
    header.request_api_version = version;
    header.correlation_id = correlation_id;
    header.client_id = Some(StrBytes::from_static_str("kcluster"));
    let mut body = BytesMut::new();
    encode_request_header_into_buffer(&mut body, &header).map_err(|e| e.to_string())?;
    request
        .encode(&mut body, version)
        .map_err(|e| e.to_string())?;
    let mut frame = BytesMut::with_capacity(body.len() + 4);
    frame.put_i32(body.len() as i32);
    frame.extend_from_slice(&body);
    stream
        .write_all(&frame)
        .await
        .map_err(|e| format!("{api_key:?}: {e}"))?;
    let size = stream
        .read_i32()
        .await
        .map_err(|e| format!("{api_key:?}: {e}"))?;
    if !(0..=64 * 1024 * 1024).contains(&size) {
        return Err(format!("{api_key:?}: answer of {size} bytes"));
    }
    let mut answer = vec![0u8; size as usize];
    stream
        .read_exact(&mut answer)
        .await
        .map_err(|e| format!("{api_key:?}: {e}"))?;
    let mut buf = bytes::Bytes::from(answer);
    let header = ResponseHeader::decode(&mut buf, Resp::header_version(version))
        .map_err(|e| format!("{api_key:?} header: {e}"))?;
    if header.correlation_id != correlation_id {
        return Err(format!(
            "{api_key:?}: answer to request {} instead of {correlation_id}",
            header.correlation_id
        ));
    }
    let response = Resp::decode(&mut buf, version).map_err(|e| format!("{api_key:?}: {e}"))?;
    if buf.has_remaining() {
        return Err(format!("{api_key:?}: {} bytes left over", buf.remaining()));
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use super::*;

    /// A one-thread HTTP server answering each request with the next scripted answer for its
    /// path (status line and JSON body); it serves `answers.len()` requests.
    fn serve(answers: Vec<(&'static str, &'static str, &'static str)>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").expect("port");
        let address = listener.local_addr().expect("address");
        std::thread::spawn(move || {
            let mut answers = answers;
            while !answers.is_empty() {
                let Ok((mut s, _)) = listener.accept() else {
                    return;
                };
                let mut request = [0u8; 1024];
                let n = s.read(&mut request).unwrap_or(0);
                let path = String::from_utf8_lossy(&request[..n])
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_string();
                let i = answers.iter().position(|a| a.0 == path).expect("scripted");
                let (_, status, body) = answers.remove(i);
                let _ = write!(
                    s,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        address
    }

    const ROOT: &str = r#"{"version":"3.9.2","commit":"abc","kafka_cluster_id":"x"}"#;

    #[test]
    fn a_connect_worker_is_up_once_it_lists_the_groups_connectors() {
        let at = serve(vec![
            ("/", "200 OK", ROOT),
            ("/connectors", "200 OK", r#"["sink","source"]"#),
        ]);
        assert_eq!(
            connect_state(at, Duration::from_secs(2)),
            ConnectState::Up {
                version: "3.9.2".into(),
                connectors: vec!["sink".into(), "source".into()],
            }
        );
        // Still joining its group: Connect answers 409 (or 503 while it starts).
        let at = serve(vec![
            ("/", "200 OK", ROOT),
            (
                "/connectors",
                "409 Conflict",
                r#"{"error_code":409,"message":"Cannot complete request because of a conflicting operation (e.g. worker rebalance)"}"#,
            ),
        ]);
        let ConnectState::Down(why) = connect_state(at, Duration::from_secs(2)) else {
            panic!("a worker in a rebalance is not up")
        };
        assert!(why.contains("/connectors") && why.contains("409"), "{why}");
        // Something else on the port.
        let at = serve(vec![("/", "200 OK", r#"{"status":"ok"}"#)]);
        let ConnectState::Down(why) = connect_state(at, Duration::from_secs(2)) else {
            panic!("not a worker")
        };
        assert!(why.contains("names no version"), "{why}");
        // Nothing on the port.
        let listener = TcpListener::bind("127.0.0.1:0").expect("port");
        let at = listener.local_addr().expect("address");
        drop(listener);
        assert!(matches!(
            connect_state(at, Duration::from_secs(1)),
            ConnectState::Down(_)
        ));
    }
}
