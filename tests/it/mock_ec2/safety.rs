//! kcluster against moto when things are hostile or go wrong: which credentials and endpoints it
//! uses, closed pipes, Ctrl-C at any point, endpoints that never answer, and resources that carry
//! the cluster's tag without being kcluster's own.

use std::time::{Duration, Instant};

use super::mock::{Gate, Kc, Run, Topology, iam};
use super::{Fixture, nodes};

/// Runs kcluster with `args` through a gate that answers the first `pass` requests of `action`
/// and swallows the next one; once kcluster is stuck there, sends it SIGINT (Ctrl-C). The run
/// must end with 130 within seconds.
fn ctrl_c_when_stuck_in(f: &Fixture, action: &str, pass: usize, args: &[&str]) -> Run {
    let gate = Gate::start(f.mock.port(), action, pass);
    let child = Kc::new(&gate.endpoint()).args(args).start();
    gate.wait_until(
        &format!("kcluster to be stuck in {action}"),
        Duration::from_secs(60),
        |c| c.swallowed == 1 || !c.errors.is_empty(),
    );
    let sent = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.pid().to_string()])
        .status()
        .expect("kill -INT");
    assert!(status.success(), "SIGINT sent");
    let run = child.wait();
    drop(gate);
    let run = run.expect_code(130);
    assert!(
        sent.elapsed() < Duration::from_secs(10),
        "{:?}",
        sent.elapsed()
    );
    run
}

/// Regression: with AWS_ACCESS_KEY_ID in the environment, `--profile` was ignored and every
/// request was signed with the environment's key, so apply or destroy could act on the wrong
/// account. The explicit profile decides, and apply and destroy name the identity (from STS)
/// and region before they change anything.
#[test]
fn explicit_profile_beats_environment_keys_and_mutating_commands_name_the_account() {
    let f = Fixture::new();
    let (key, secret) = iam::user_with_key(f.mock.port(), "alice");
    let credentials = f.dir.path().join("credentials");
    std::fs::write(
        &credentials,
        format!("[alice]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n"),
    )
    .expect("credentials file");
    let file = f.file(&Topology::minimal("whoami"));
    let with_profile = |args: &[&str]| {
        f.kc([])
            .args(args)
            .args(["--profile", "alice"])
            .env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
            .run()
            .ok()
    };
    let alice = "arn:aws:iam::123456789012:user/alice";
    let apply = with_profile(&["apply", "--yes", "-f", &file]);
    let first = apply.stdout.lines().next().unwrap_or_default();
    assert_eq!(
        first,
        format!("AWS account 123456789012 ({alice}), region eu-west-1"),
        "the identity comes first, before the plan:\n{}",
        apply.stdout
    );
    let destroy = with_profile(&["destroy", "--yes", "-f", &file]);
    let who = destroy.stdout.find(alice).expect("destroy names alice");
    let what = destroy.stdout.find("Destroy:").expect("destroy lists");
    assert!(who < what, "{}", destroy.stdout);
    // Without --profile, the environment's keys are used (and named) as before.
    let plain = f.kc(["destroy", "--yes", "-f", &file]).run().ok();
    assert!(plain.stdout.contains("user/moto"), "{}", plain.stdout);
}

/// Regression: `kcluster apply … | head -1` made its changes, then panicked on the closed pipe
/// and lost its report. It must finish, exit as it would, and keep the report (on stderr).
#[test]
fn apply_with_a_closed_stdout_finishes_and_keeps_its_report() {
    let f = Fixture::new();
    let t = Topology::minimal("piped");
    let file = f.file(&t);
    let run = f
        .kc(["apply", "--yes", "-f", &file])
        .run_with_closed_stdout()
        .ok();
    assert!(
        run.stderr.contains("Apply complete") && !run.stderr.contains("panicked"),
        "{}",
        run.stderr
    );
    f.one_instance_per_node("piped", &nodes(3, 3));
    for args in [
        vec!["plan", "-f", &file],
        vec!["plan", "--output", "json", "-f", &file],
        vec!["status", "-f", &file],
        vec!["status", "--output", "json", "-f", &file],
        vec!["check", "-f", &file],
        vec!["check", "--output", "json", "-f", &file],
    ] {
        let run = f.kc([]).args(&args).run_with_closed_stdout().ok();
        assert!(!run.stderr.contains("panicked"), "{args:?}: {}", run.stderr);
    }
    let run = f
        .kc(["destroy", "--yes", "-f", &file])
        .run_with_closed_stdout()
        .ok();
    assert!(
        run.stderr.contains("Destroyed cluster piped"),
        "{}",
        run.stderr
    );
}

/// Regression: Ctrl-C during apply's final re-plan (and check) was swallowed by the handler
/// installed for the execution, and apply went on to exit 0. It must stop with 130 there too.
#[test]
fn ctrl_c_during_the_final_replan_exits_130() {
    let f = Fixture::new();
    let t = Topology::minimal("lateint");
    // The first plan's DescribeSubnets is answered; the re-plan's is not.
    let file = f.file(&t);
    let run = ctrl_c_when_stuck_in(&f, "DescribeSubnets", 1, &["apply", "--yes", "-f", &file]);
    assert!(run.stderr.contains("interrupted"), "{}", run.stderr);
    f.one_instance_per_node("lateint", &nodes(3, 3));
}

/// Regression: an interrupted destroy said "run `kcluster apply` again to finish", which
/// recreates the cluster. It names destroy, and a second destroy finishes.
#[test]
fn interrupted_destroy_says_to_run_destroy_again() {
    let f = Fixture::new();
    let t = Topology::minimal("halfgone");
    f.apply(&t);
    let file = f.file(&t);
    let run = ctrl_c_when_stuck_in(
        &f,
        "TerminateInstances",
        0,
        &["destroy", "--yes", "-f", &file],
    );
    assert!(
        run.stderr.contains("run `kcluster destroy` again") && !run.stderr.contains("apply"),
        "{}",
        run.stderr
    );
    f.kc(["destroy", "--yes", "-f", &f.file(&t)]).run().ok();
    assert!(f.ec2.instances("halfgone").is_empty());
}

/// Regression: an endpoint that accepts connections and never answers left kcluster silent for
/// 307 s (5 attempts of 60 s). Each answer is bounded (`KCLUSTER_AWS_TIMEOUT_SECONDS`), and the
/// error says what was waited on.
#[test]
fn endpoint_that_never_answers_times_out_naming_what_it_waited_for() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = Topology::minimal("silent").write(dir.path());
    // The kernel accepts connections into the backlog; nothing ever reads or answers them.
    let silent = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("a listener");
    let endpoint = format!("http://{}", silent.local_addr().expect("address"));
    let started = Instant::now();
    let run = Kc::new(&endpoint)
        .env("KCLUSTER_AWS_TIMEOUT_SECONDS", "2")
        .args(["plan", "-f", &file.display().to_string()])
        .run()
        .expect_code(1);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "gave up after {:?}",
        started.elapsed()
    );
    assert!(
        run.stderr.contains(&format!(
            "the EC2 endpoint {endpoint} did not answer Describe"
        )) && run.stderr.contains("within 2s"),
        "{}",
        run.stderr
    );
}

/// A topology that resolves its AMI through SSM (the default), for the endpoint tests.
fn ssm_topology(f: &Fixture, name: &str) -> String {
    let yaml =
        std::fs::read_to_string(crate::support::repo().join("tests/it/fixtures/default-vpc.yaml"))
            .expect("default-vpc.yaml")
            .replace("\nname: demo\n", &format!("\nname: {name}\n"));
    let path = f.dir.path().join(format!("{name}.yaml"));
    std::fs::write(&path, yaml).expect("topology written");
    path.display().to_string()
}

/// Regression: with only AWS_ENDPOINT_URL_EC2 set, the SSM lookup of the AMI went elsewhere and
/// its failure blamed the EC2 endpoint. Each service's own variable is honoured and named.
#[test]
fn each_service_endpoint_variable_is_honoured_and_named_in_errors() {
    let f = Fixture::new();
    let file = ssm_topology(&f, "endpoints");
    let only = |args: &[&str], vars: &[(&str, &str)]| {
        let mut kc = f.kc([]).args(args).env_remove("AWS_ENDPOINT_URL");
        for (k, v) in vars {
            kc = kc.env(k, v);
        }
        kc.run()
    };
    let moto = f.mock.endpoint();
    let plan = ["plan", "-f", file.as_str()];
    only(
        &plan,
        &[
            ("AWS_ENDPOINT_URL_EC2", &moto),
            ("AWS_ENDPOINT_URL_SSM", &moto),
        ],
    )
    .ok();
    let dead = std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let dead = format!("http://{dead}");
    let run: Run = only(
        &plan,
        &[
            ("AWS_ENDPOINT_URL_EC2", &moto),
            ("AWS_ENDPOINT_URL_SSM", &dead),
        ],
    )
    .expect_code(1);
    assert!(
        run.stderr
            .contains(&format!("cannot reach the SSM endpoint {dead}"))
            && run.stderr.contains("AWS_ENDPOINT_URL_SSM")
            && !run.stderr.contains("EC2 endpoint"),
        "{}",
        run.stderr
    );
    let run = only(
        &["apply", "--yes", "-f", file.as_str()],
        &[
            ("AWS_ENDPOINT_URL_EC2", &moto),
            ("AWS_ENDPOINT_URL_SSM", &moto),
            ("AWS_ENDPOINT_URL_STS", &dead),
        ],
    )
    .expect_code(1);
    assert!(
        run.stderr
            .contains(&format!("cannot reach the STS endpoint {dead}"))
            && run.stderr.contains("AWS_ENDPOINT_URL_STS"),
        "{}",
        run.stderr
    );
}

/// Regression: a security group someone tagged `kcluster:cluster=<name>` (here `bastion-sg`,
/// with its SSH rule) was adopted when `kcluster-<name>` did not exist: apply revoked its rules,
/// opened the cluster's ports on it and attached every node; destroy deleted it; the plan called
/// it `security_group.kcluster-<name>`. Plan, apply and destroy refuse, naming it, and leave it
/// as it was.
#[test]
fn foreign_group_with_the_cluster_tag_is_refused_by_its_real_name_and_left_alone() {
    use aws_sdk_ec2::types::{IpPermission, IpRange};
    let f = Fixture::new();
    let t = Topology::minimal("guard");
    let file = f.file(&t);
    let vpc = f
        .ec2
        .default_subnet("eu-west-1a")
        .vpc_id()
        .expect("default VPC")
        .to_string();
    let bastion = f.ec2.create_group("bastion-sg", &vpc);
    f.ec2.authorize(
        &bastion,
        vec![
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(22)
                .to_port(22)
                .ip_ranges(IpRange::builder().cidr_ip("203.0.113.0/24").build())
                .build(),
        ],
    );
    f.ec2
        .tag_resource(&bastion, &[("kcluster:cluster", "guard")]);
    let before = f.ec2.group(&bastion);

    for args in [
        vec!["plan", "-f", file.as_str()],
        vec!["apply", "--yes", "-f", file.as_str()],
        vec!["destroy", "--yes", "-f", file.as_str()],
    ] {
        let run = f.kc([]).args(&args).run().expect_code(1);
        assert!(
            run.stderr.contains(&format!("{bastion} (bastion-sg)"))
                && run.stderr.contains("will not adopt, change or delete"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(!run.stdout.contains("security_group."), "{}", run.stdout);
    }
    assert_eq!(f.ec2.group(&bastion), before, "bastion-sg is untouched");
    assert!(f.ec2.instances("guard").is_empty());
    assert_eq!(f.ec2.interfaces("guard").len(), 0);
}

/// Regression: the same cluster name in another VPC (or a topology moved to another VPC): the
/// old VPC's group had its client rules revoked and was reused by interfaces in the new VPC, and
/// the old nodes were terminated. The plan is refused, and says how to move a cluster.
#[test]
fn cluster_with_resources_in_another_vpc_is_refused_with_how_to_move_it() {
    let f = Fixture::new();
    let t = Topology::minimal("moved");
    f.apply(&t);
    let before: Vec<String> = f
        .ec2
        .instances("moved")
        .iter()
        .filter_map(|i| i.instance_id().map(String::from))
        .collect();
    let (vpc, subnets) = f.ec2.create_vpc(
        "10.9.0.0/16",
        &[
            ("eu-west-1a", "10.9.1.0/24"),
            ("eu-west-1b", "10.9.2.0/24"),
            ("eu-west-1c", "10.9.3.0/24"),
        ],
    );
    let yaml = format!(
        "name: moved\nregion: eu-west-1\nami:\n  id: {}\nzones:\n{}network:\n  vpc: {vpc}\n",
        super::mock::AMI,
        ["a", "b", "c"]
            .iter()
            .zip(&subnets)
            .enumerate()
            .map(|(i, (z, s))| format!(
                "  - name: eu-west-1{z}\n    subnet: {s}\n    cidr: 10.9.{}.0/24\n",
                i + 1
            ))
            .collect::<String>()
    );
    let file = f.dir.path().join("moved-vpc.yaml");
    std::fs::write(&file, yaml).expect("topology written");
    let file = file.display().to_string();
    for args in [
        vec!["plan", "-f", file.as_str()],
        vec!["apply", "--yes", "-f", file.as_str()],
    ] {
        let run = f.kc([]).args(&args).run().expect_code(1);
        assert!(
            run.stderr
                .contains(&format!("another VPC than the topology's ({vpc})"))
                && run
                    .stderr
                    .contains("kcluster destroy --cluster moved --region eu-west-1"),
            "{args:?}: {}",
            run.stderr
        );
    }
    let after: Vec<String> = f
        .ec2
        .instances("moved")
        .iter()
        .filter_map(|i| i.instance_id().map(String::from))
        .collect();
    assert_eq!(after, before, "the old VPC's nodes still run");
}

/// Regression: destroy waited 900 s, silently, on an interface held by an instance it does not
/// know. It stops at once for that interface, names the instance, and says what to do.
#[test]
fn destroy_names_the_unknown_instance_holding_an_interface_and_does_not_wait() {
    let f = Fixture::new();
    let t = Topology::minimal("held");
    f.apply(&t);
    let group = f.ec2.groups("held")[0]
        .group_id()
        .expect("group")
        .to_string();
    let subnet = f.ec2.default_subnet("eu-west-1a");
    let subnet = subnet.subnet_id().expect("subnet");
    // A leftover interface of a removed broker, which someone launched an instance on.
    let eni = f.ec2.create_interface(subnet, "172.31.0.200", &group);
    f.ec2.tag_resource(
        &eni,
        &[
            ("kcluster:cluster", "held"),
            ("kcluster:role", "broker"),
            ("kcluster:node", "broker-9"),
        ],
    );
    let stranger = f.ec2.launch(&super::mock::Launch {
        instance_type: "t3.micro",
        zone: "eu-west-1a",
        interface_id: Some(&eni),
        subnet_id: None,
        user_data: None,
        tags: vec![],
    });
    let started = Instant::now();
    let run = f
        .kc(["destroy", "--yes", "-f", &f.file(&t)])
        .env("KCLUSTER_WAIT_SECONDS", "60")
        .run()
        .expect_code(1);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert!(
        run.stderr.contains(&eni)
            && run
                .stderr
                .contains(&format!("attached to instance {stranger}"))
            && run.stderr.contains("run `kcluster destroy` again"),
        "{}",
        run.stderr
    );
    assert!(
        f.ec2.instances("held").is_empty(),
        "the cluster's own are gone"
    );
    assert!(
        f.ec2
            .all_instances()
            .iter()
            .any(|i| i.instance_id() == Some(stranger.as_str())),
        "the stranger still runs"
    );
}
