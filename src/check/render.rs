//! The rack-awareness report as text for people: placement per AZ, a verdict per lost AZ,
//! then the findings, each with what to change.

use std::fmt::Write as _;

use super::{Finding, Report, Severity, Simulation};

pub(super) fn render_text(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Rack-awareness check for cluster {}", report.cluster);
    match &report.simulation {
        Some(sim) => simulation(&mut out, sim),
        None => out
            .push_str("\nNo simulation: Kafka would refuse the simulated topic (see findings).\n"),
    }
    findings(&mut out, "Findings", &report.findings);
    if !report.live.is_empty() {
        findings(&mut out, "Live cluster", &report.live);
    }
    if let Some(what) = &report.live_checked {
        let verdict = if report.live.iter().any(|f| f.severity == Severity::Error) {
            "see above"
        } else {
            "all hold"
        };
        let _ = writeln!(out, "\nLive cluster checked in EC2: {what}: {verdict}");
    }
    let (errors, warnings) = report.counts();
    let failing = report.simulation.as_ref().map_or(0, |s| {
        s.scenarios
            .iter()
            .filter(|z| z.verdict != super::Verdict::Ok)
            .count()
    });
    let accepted = if report.zone_loss_accepted && failing > 0 {
        ", accepted by `accept_zone_loss: true`"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "\nResult: {} ({errors} error{}, {warnings} warning{}, {failing} AZ loss{} not survived{accepted})",
        if report.ok() { "OK" } else { "FAIL" },
        plural(errors),
        plural(warnings),
        if failing == 1 { "" } else { "es" },
    );
    out
}

fn simulation(out: &mut String, sim: &Simulation) {
    let _ = writeln!(
        out,
        "\nReplica placement: a topic of {} partitions, replication factor {}, placed by Kafka's \
         rack-aware assignment (start index {})",
        sim.partitions, sim.replication_factor, sim.start_index
    );
    let rows = sim
        .zones
        .iter()
        .map(|z| {
            vec![
                z.zone.clone(),
                z.brokers.to_string(),
                z.quorum_members.to_string(),
                z.replicas.to_string(),
                z.leaders.to_string(),
            ]
        })
        .collect();
    table(
        out,
        &[
            ("AZ", Align::Left),
            ("brokers", Align::Right),
            (sim.quorum_role.as_str(), Align::Right),
            ("replicas", Align::Right),
            ("leaders", Align::Right),
        ],
        rows,
    );

    let _ = writeln!(
        out,
        "\nLosing one AZ (min.insync.replicas {}, {} quorum {} of {}: metadata is writable only with it)",
        sim.min_insync_replicas,
        sim.quorum_role.info().title,
        sim.quorum,
        sim.quorum_members
    );
    let rows = sim
        .scenarios
        .iter()
        .map(|s| {
            vec![
                s.zone.clone(),
                format!("{}/{}", s.partitions_online, sim.partitions),
                format!("{}/{}", s.partitions_writable, sim.partitions),
                s.leaders_to_move.to_string(),
                format!(
                    "{}/{} {}",
                    s.quorum_survivors,
                    sim.quorum_members,
                    if s.quorum_kept { "quorum" } else { "no quorum" }
                ),
                sim.verdict_text(s.verdict).to_owned(),
            ]
        })
        .collect();
    table(
        out,
        &[
            ("AZ lost", Align::Left),
            ("online", Align::Right),
            ("acks=all", Align::Right),
            ("leaders to move", Align::Right),
            (sim.quorum_role.as_str(), Align::Left),
            ("verdict", Align::Left),
        ],
        rows,
    );
}

fn findings(out: &mut String, title: &str, findings: &[Finding]) {
    if findings.is_empty() {
        let _ = writeln!(out, "\n{title}: none");
        return;
    }
    let _ = writeln!(out, "\n{title}:");
    for f in findings {
        let _ = writeln!(out, "  {} [{}] {}", f.severity.as_str(), f.rule, f.message);
        let _ = writeln!(out, "    fix: {}", f.fix);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Align {
    Left,
    Right,
}

/// Columns padded to their widest cell, two spaces apart, indented by two.
fn table(out: &mut String, columns: &[(&str, Align)], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = columns.iter().map(|(h, _)| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let mut s = String::new();
        for ((cell, w), (_, align)) in cells.iter().zip(&widths).zip(columns) {
            let pad = " ".repeat(w - cell.chars().count());
            s.push_str("  ");
            match align {
                Align::Left => {
                    s.push_str(cell);
                    s.push_str(&pad);
                }
                Align::Right => {
                    s.push_str(&pad);
                    s.push_str(cell);
                }
            }
        }
        s.truncate(s.trim_end().len());
        s
    };
    let header: Vec<&str> = columns.iter().map(|(h, _)| *h).collect();
    let _ = writeln!(out, "{}", line(&header));
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        let _ = writeln!(out, "{}", line(&cells));
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{A, B, C, test_cluster};
    use crate::check::{Finding, Report};

    #[test]
    fn healthy_report_text() {
        let cluster = test_cluster(&[A, B, C], &[A, B, C], &[A, B, C], 3, 2);
        let text = Report::build(&cluster, 6, 3, 0).render_text();
        let want = "\
Rack-awareness check for cluster test

Replica placement: a topic of 6 partitions, replication factor 3, placed by Kafka's rack-aware assignment (start index 0)
  AZ          brokers  zookeeper  replicas  leaders
  us-east-1a        1          1         6        2
  us-east-1b        1          1         6        2
  us-east-1c        1          1         6        2

Losing one AZ (min.insync.replicas 2, ZooKeeper quorum 2 of 3: metadata is writable only with it)
  AZ lost     online  acks=all  leaders to move  zookeeper   verdict
  us-east-1a     6/6       6/6                2  2/3 quorum  ok
  us-east-1b     6/6       6/6                2  2/3 quorum  ok
  us-east-1c     6/6       6/6                2  2/3 quorum  ok

Findings: none

Result: OK (0 errors, 0 warnings, 0 AZ losses not survived)
";
        assert_eq!(text, want);
    }

    #[test]
    fn failing_report_text_lists_findings_with_fixes() {
        let cluster = test_cluster(&[A, B], &[A, A, B], &[A, B], 2, 1);
        let mut report = Report::build(&cluster, 4, 2, 0);
        report.add_live([Finding::warning(
            "live-rack",
            "broker-2 runs in us-east-1a",
            "replace broker-2",
        )]);
        let text = report.render_text();
        assert!(text.contains("  us-east-1a     2/4       0/4                2  1/3 no quorum  ZooKeeper quorum lost\n"), "{text}");
        assert!(
            text.contains("\nFindings:\n  error [zookeeper-quorum-zones] ZooKeeper loses quorum"),
            "{text}"
        );
        assert!(
            text.contains("\n    fix: add a third AZ to zones"),
            "{text}"
        );
        assert!(text.contains("\nLive cluster:\n  warning [live-rack] broker-2 runs in us-east-1a\n    fix: replace broker-2\n"), "{text}");
        assert!(
            text.ends_with("Result: FAIL (1 error, 1 warning, 1 AZ loss not survived)\n"),
            "{text}"
        );
    }

    #[test]
    fn report_without_simulation_says_why() {
        let cluster = test_cluster(&[A, B, C], &[A, B, C], &[A], 3, 2);
        let text = Report::build(&cluster, 3, 3, 0).render_text();
        assert!(text.contains("No simulation: Kafka would refuse the simulated topic"));
        assert!(text.contains("[simulation] Kafka would refuse to create the simulated topic"));
    }
}
