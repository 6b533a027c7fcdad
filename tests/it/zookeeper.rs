//! A real ZooKeeper ensemble booted from the `zookeeper.properties` and `myid` kcluster renders
//! (Debian's ZooKeeper, one JVM per member on its own loopback address): the quorum forms,
//! replicates, survives losing a minority and stops serving when it loses the majority.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use kcluster::cluster::{self, Cluster};
use kcluster::render::{Options, Renderer};

use crate::support;

/// Debian's ZooKeeper jars (the `zookeeper` package adds only scripts and pulls a desktop JRE).
const INSTALL: &str =
    "apt-get install --no-install-recommends libzookeeper-java default-jre-headless";
/// Debian's ZooKeeper; its manifest's Class-Path names the jars it depends on.
const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";
/// Members log through slf4j-simple into their log file (shown when a test fails); zkCli logs nothing.
const SLF4J_SIMPLE: &str = "/usr/share/java/slf4j-simple.jar";
const SLF4J_NOP: &str = "/usr/share/java/slf4j-nop.jar";
/// How long an ensemble may take to reach a state: boot, an election, noticing a lost member.
const LIMIT: Duration = Duration::from_secs(60);
/// What ZooKeeper answers to a four-letter word while it has no quorum.
const NOT_SERVING: &str = "This ZooKeeper instance is not currently serving requests";

#[test]
fn three_node_ensemble_survives_losing_one_member_and_stops_serving_without_two() {
    prove_ensemble("zookeeper-3.yaml", 3);
}

#[test]
fn five_node_ensemble_survives_losing_two_members_and_stops_serving_without_three() {
    prove_ensemble("zookeeper-5.yaml", 5);
}

/// Boots the fixture's ensemble, then: a quorum forms; a write through one member reads back from
/// every other; the leader is killed again and again while a majority is left, and each time a new
/// leader takes over with every write so far intact; after the loss that leaves a minority, the
/// remaining members say they are not serving.
fn prove_ensemble(fixture: &str, size: usize) {
    let cluster = support::load(&support::repo().join("tests/it/fixtures").join(fixture));
    let mut ensemble = Ensemble::boot(&cluster);
    assert_eq!(ensemble.members.len(), size, "{fixture}: ensemble size");

    let mut leader = ensemble.wait_for_quorum();
    let mut written = vec![ensemble.write_and_read_back("/kcluster-test", "hello", leader)];

    let tolerated = (size - 1) / 2;
    for loss in 1..=tolerated {
        ensemble.stop(leader);
        let old = leader;
        leader = ensemble.wait_for_quorum();
        assert_ne!(leader, old);
        for (path, data) in &written {
            for m in ensemble.live() {
                ensemble.wait_to_read(m, path, data);
            }
        }
        let path = format!("/kcluster-after-loss-{loss}");
        written.push(ensemble.write_and_read_back(&path, "still-serving", leader));
    }

    ensemble.stop(leader);
    ensemble.wait_until_not_serving();
}

/// The members of one ensemble, each rendered and started in its own directory.
struct Ensemble {
    members: Vec<Member>,
    /// Holds the rendered files, data directories and logs; removed after the members stop.
    dir: tempfile::TempDir,
    /// Held while the ensemble runs: it binds fixed addresses and ports, so one at a time on this
    /// machine, across test threads and concurrent `cargo test` runs. Dropped last.
    _lock: File,
}

struct Member {
    name: String,
    address: Ipv4Addr,
    log: PathBuf,
    /// The running JVM's watchdog; `None` once the member is stopped.
    process: Option<Watchdog>,
}

impl Ensemble {
    /// Renders each ZooKeeper node with its data volume moved into a temporary directory, puts the
    /// rendered `myid` where the bootstrap script puts it, and starts every member.
    fn boot(cluster: &Cluster) -> Ensemble {
        let java = support::require_tool("java", INSTALL);
        for jar in [ZOOKEEPER_JAR, SLF4J_SIMPLE, SLF4J_NOP] {
            support::require_file(jar, INSTALL);
        }
        let lock = machine_lock();
        for node in cluster.zookeepers() {
            for port in [
                cluster::ZK_CLIENT_PORT,
                cluster::ZK_PEER_PORT,
                cluster::ZK_ELECTION_PORT,
            ] {
                if let Err(e) = TcpListener::bind((node.address, port)) {
                    panic!(
                        "{}:{port} is taken ({e}); a ZooKeeper left over from another run? \
                         `ss -ltnp 'sport = :{port}'` shows the process",
                        node.address
                    );
                }
            }
        }
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut members = Vec::new();
        for node in cluster.zookeepers() {
            let home = dir.path().join(&node.name);
            let data_dir = home.join("data").display().to_string();
            let renderer = Renderer::new(&Options {
                templates_dir: None,
                data_dir: data_dir.clone(),
            })
            .expect("templates load");
            let rendered = renderer.render_node(cluster, node).expect("node renders");
            let file = |name: &str| {
                rendered
                    .file(name)
                    .unwrap_or_else(|| panic!("{} has no rendered {name}", node.name))
            };
            // The bootstrap script installs /etc/kafka/myid as <data dir>/zookeeper/myid; do the same.
            let bootstrap = &file("bootstrap.sh").content;
            assert_eq!(file("myid").path, "/etc/kafka/myid");
            assert!(
                bootstrap.contains(&format!("readonly DATA_DIR=\"{data_dir}\""))
                    && bootstrap.contains("/etc/kafka/myid \"${DATA_DIR}/zookeeper/myid\""),
                "the bootstrap script no longer installs myid as <data dir>/zookeeper/myid; \
                 update this test to place it where the script does:\n{bootstrap}"
            );
            let zookeeper_data = Path::new(&data_dir).join("zookeeper");
            std::fs::create_dir_all(&zookeeper_data).expect("data directory");
            std::fs::write(zookeeper_data.join("myid"), &file("myid").content).expect("myid");
            let config = home.join("zookeeper.properties");
            std::fs::write(&config, &file("zookeeper.properties").content).expect("config");

            let log = home.join("zookeeper.log");
            let mut jvm = Command::new(&java);
            jvm.args(["-Xms64m", "-Xmx256m", "-XX:+UseSerialGC", "-cp"])
                .arg(format!("{ZOOKEEPER_JAR}:{SLF4J_SIMPLE}"))
                .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
                .arg(&config);
            members.push(Member {
                name: node.name.clone(),
                address: node.address,
                process: Some(Watchdog::start(&jvm, &log)),
                log,
            });
        }
        Ensemble {
            members,
            dir,
            _lock: lock,
        }
    }

    /// Indexes of the members still running.
    fn live(&self) -> Vec<usize> {
        (0..self.members.len())
            .filter(|&i| self.members[i].process.is_some())
            .collect()
    }

    /// Kills a member's JVM (SIGKILL: a crash, not a clean shutdown) and waits until it is gone.
    fn stop(&mut self, member: usize) {
        if let Some(p) = self.members[member].process.take() {
            p.stop();
        }
    }

    /// Waits until the running members form a quorum of the whole ensemble: exactly one leader,
    /// every other running member a follower synced to it. Returns the leader.
    fn wait_for_quorum(&mut self) -> usize {
        let size = self.members.len();
        let what = format!(
            "a quorum of {} running members of {size} (one leader, the rest synced followers)",
            self.live().len()
        );
        self.wait(&what, |e| {
            let live = e.live();
            let mut seen = Vec::new();
            let mut leaders = Vec::new();
            let mut followers = 0;
            for &m in &live {
                let member = &e.members[m];
                let stats = match mntr(member.address) {
                    Ok(stats) => stats,
                    Err(err) => {
                        seen.push(format!("{}: {err}", member.name));
                        continue;
                    }
                };
                let get = |k: &str| stats.get(k).map(String::as_str).unwrap_or("?");
                let state = get("zk_server_state");
                seen.push(format!(
                    "{}: {state}, quorum size {}, synced followers {}",
                    member.name,
                    get("zk_quorum_size"),
                    get("zk_synced_followers")
                ));
                if get("zk_quorum_size") != size.to_string() {
                    continue;
                }
                match state {
                    "leader" if get("zk_synced_followers") == (live.len() - 1).to_string() => {
                        leaders.push(m)
                    }
                    "follower" => followers += 1,
                    _ => {}
                }
            }
            match leaders[..] {
                [leader] if followers == live.len() - 1 => Ok(leader),
                _ => Err(seen.join("; ")),
            }
        })
    }

    /// Waits until every running member answers `srvr` with "not currently serving requests".
    fn wait_until_not_serving(&mut self) {
        self.wait("the remaining members to stop serving", |e| {
            let answers: Vec<(String, Result<String, String>)> = e
                .live()
                .into_iter()
                .map(|m| {
                    let member = &e.members[m];
                    (member.name.clone(), four_letter(member.address, "srvr"))
                })
                .collect();
            if answers
                .iter()
                .all(|(_, a)| a.as_deref().is_ok_and(|a| a.trim() == NOT_SERVING))
            {
                Ok(())
            } else {
                Err(answers
                    .iter()
                    .map(|(name, a)| format!("{name}: {a:?}"))
                    .collect::<Vec<_>>()
                    .join("; "))
            }
        })
    }

    /// Creates `path` with `data` through a running member other than `avoid` (so a follower
    /// forwards it to the leader), then reads it back from every other running member.
    fn write_and_read_back(&mut self, path: &str, data: &str, avoid: usize) -> (String, String) {
        let live = self.live();
        let writer = *live
            .iter()
            .find(|&&m| m != avoid)
            .expect("two running members");
        let out = zk_cli(self.members[writer].address, &["create", path, data]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() || !text.contains(&format!("Created {path}")) {
            self.fail(&format!(
                "zkCli create {path} through {} failed ({}):\n{text}",
                self.members[writer].name, out.status
            ));
        }
        for m in live.into_iter().filter(|&m| m != writer) {
            self.wait_to_read(m, path, data);
        }
        (path.to_string(), data.to_string())
    }

    /// Waits until `path` reads as `data` through member `m` (followers apply commits shortly
    /// after the leader acknowledges them, so the first read may be early).
    fn wait_to_read(&mut self, m: usize, path: &str, data: &str) {
        let what = format!("{path} to read \"{data}\" through {}", self.members[m].name);
        let address = self.members[m].address;
        self.wait(&what, |_| {
            let out = zk_cli(address, &["get", path]);
            let stdout = String::from_utf8_lossy(&out.stdout);
            if out.status.success() && stdout.lines().any(|l| l == data) {
                Ok(())
            } else {
                Err(format!(
                    "{}: {stdout}{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                ))
            }
        })
    }

    /// Polls `probe` until it succeeds, for at most `LIMIT`; fails at once if a member that should
    /// be running has exited.
    fn wait<T>(&mut self, what: &str, mut probe: impl FnMut(&Ensemble) -> Result<T, String>) -> T {
        let deadline = Instant::now() + LIMIT;
        loop {
            let exited = self.members.iter_mut().find_map(|m| {
                let status = m.process.as_mut().and_then(Watchdog::exited)?;
                Some(format!("{} exited on its own ({status})", m.name))
            });
            if let Some(exited) = exited {
                self.fail(&format!("{exited} while waiting for {what}"));
            }
            match probe(self) {
                Ok(v) => return v,
                Err(last) if Instant::now() >= deadline => self.fail(&format!(
                    "timed out after {LIMIT:?} waiting for {what}; last seen: {last}"
                )),
                Err(_) => std::thread::sleep(Duration::from_millis(250)),
            }
        }
    }

    /// Fails the test with `message` and the end of every member's log.
    fn fail(&self, message: &str) -> ! {
        let mut text = message.to_string();
        for m in &self.members {
            let log = std::fs::read_to_string(&m.log).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(25)..].join("\n");
            text.push_str(&format!(
                "\n--- {} ({}), last lines of its log:\n{tail}",
                m.name,
                m.log.display()
            ));
        }
        text.push_str(&format!("\n(files in {})", self.dir.path().display()));
        panic!("{text}");
    }
}

/// A process run under a bash watchdog that SIGKILLs it as soon as the watchdog's stdin closes:
/// when the test stops it, when it is dropped (a failing test), or when the test process itself
/// dies for any reason, even SIGKILL. The watchdog exits with the process's status.
struct Watchdog {
    child: Child,
    stdin: Option<ChildStdin>,
}

const WATCHDOG: &str = r#"
exec 3<&0
"$@" </dev/null 3<&- &
target=$!
{ read -r _ <&3; kill -KILL "$target" 2>/dev/null; } &
wait "$target"
"#;

impl Watchdog {
    /// Starts `cmd` with its output appended to `log`.
    fn start(cmd: &Command, log: &Path) -> Watchdog {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let err = out.try_clone().expect("log file");
        let mut child = Command::new("bash")
            .args(["-c", WATCHDOG, "watchdog"])
            .arg(cmd.get_program())
            .args(cmd.get_args())
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?} under bash: {e}"));
        let stdin = child.stdin.take();
        Watchdog { child, stdin }
    }

    /// The exit status, if the process has ended.
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Kills the process and waits (bounded) until it is gone.
    fn stop(mut self) {
        if let Err(e) = self.kill_and_wait() {
            panic!("{e}");
        }
    }

    fn kill_and_wait(&mut self) -> Result<(), String> {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Err(format!(
            "watchdog {} did not stop its process within 20 s",
            self.child.id()
        ))
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // No panic here: this also runs while a failing test unwinds.
        if self.stdin.is_some()
            && let Err(e) = self.kill_and_wait()
        {
            eprintln!("{e}");
        }
    }
}

/// An exclusive lock on a file in the temporary directory, held by whoever runs an ensemble.
fn machine_lock() -> File {
    let path = std::env::temp_dir().join("kcluster-it-zookeeper.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    file.lock()
        .unwrap_or_else(|e| panic!("cannot lock {}: {e}", path.display()));
    file
}

/// Sends a four-letter word to a member's client port and returns the whole answer.
fn four_letter(address: Ipv4Addr, word: &str) -> Result<String, String> {
    let talk = || -> std::io::Result<String> {
        let to = SocketAddr::from((address, cluster::ZK_CLIENT_PORT));
        let mut stream = TcpStream::connect_timeout(&to, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(word.as_bytes())?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        Ok(answer)
    };
    talk().map_err(|e| format!("{word}: {e}"))
}

/// `mntr` as key/value pairs, or why there are none (not serving, not reachable).
fn mntr(address: Ipv4Addr) -> Result<std::collections::BTreeMap<String, String>, String> {
    let answer = four_letter(address, "mntr")?;
    let stats: std::collections::BTreeMap<String, String> = answer
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if stats.is_empty() {
        // "not currently serving requests", or "mntr is not executed because it is not in the whitelist."
        return Err(format!("mntr: {}", answer.trim()));
    }
    Ok(stats)
}

/// Runs one zkCli command (ZooKeeperMain, non-interactive) against a member.
fn zk_cli(address: Ipv4Addr, command: &[&str]) -> std::process::Output {
    let java = support::require_tool("java", INSTALL);
    support::run_bounded(
        Command::new(java)
            .args(["-Xmx64m", "-XX:+UseSerialGC", "-cp"])
            .arg(format!("{ZOOKEEPER_JAR}:{SLF4J_NOP}"))
            .arg("org.apache.zookeeper.ZooKeeperMain")
            .arg("-server")
            .arg(format!("{address}:{}", cluster::ZK_CLIENT_PORT))
            .args(command),
        Duration::from_secs(30),
    )
}
