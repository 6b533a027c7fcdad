//! A per-cluster lease held in AWS while `apply` or `destroy` runs: an SSM parameter created
//! with overwrite off, so exactly one of two runs that start together gets it. The other is
//! refused, naming the holder and since when. A run that was killed leaves its lease behind;
//! `--break-lease` removes it.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::ec2::Ec2;
use crate::error::Error;

/// A lease this process holds; give it back with `release`.
#[derive(Debug)]
pub struct Lease {
    parameter: String,
}

/// The SSM parameter that holds `cluster`'s lease.
pub fn parameter(cluster: &str) -> String {
    format!("/kcluster/{cluster}/lease")
}

/// Who holds the lease, as other runs will read it: command, user, host, process and start.
pub fn holder(command: &str) -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "someone".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "an unknown host".into());
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    format!(
        "`kcluster {command}` by {user}@{host} (pid {}) since {}",
        std::process::id(),
        utc(since)
    )
}

impl Lease {
    /// Takes `cluster`'s lease for `command`, after removing a stale one when `break_stale`.
    pub async fn acquire(
        ec2: &dyn Ec2,
        cluster: &str,
        command: &str,
        break_stale: bool,
    ) -> Result<Lease, Error> {
        let parameter = parameter(cluster);
        let aws = |e: crate::ec2::Ec2Error| {
            Error::Aws(format!("cannot take the lease {parameter} in SSM: {e}"))
        };
        if break_stale {
            ec2.delete_parameter(&parameter).await.map_err(aws)?;
        }
        match ec2
            .create_parameter(&parameter, &holder(command))
            .await
            .map_err(aws)?
        {
            None => Ok(Lease { parameter }),
            Some(held) => Err(Error::Failed(format!(
                "cluster {cluster} is busy: its lease ({parameter}) is held by {held}. Wait until that run ends; if it is gone (killed), run again with --break-lease."
            ))),
        }
    }

    /// Gives the lease back; a failure only leaves a stale lease, so it is reported, not fatal.
    pub async fn release(self, ec2: &dyn Ec2) {
        if let Err(e) = ec2.delete_parameter(&self.parameter).await {
            crate::errln!(
                "warning: cannot release the lease {}: {e}; the next run needs --break-lease",
                self.parameter
            );
        }
    }
}

/// `seconds` since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian, UTC).
fn utc(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let rest = seconds % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::{Lease, utc};
    use crate::ec2::fake::FakeEc2;

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_795_839_245), "2026-11-28T04:14:05Z");
    }

    #[tokio::test]
    async fn a_second_run_is_refused_naming_the_holder_until_released_or_broken() {
        let ec2 = FakeEc2::default();
        let first = Lease::acquire(&ec2, "orders", "apply", false)
            .await
            .expect("free");
        let refused = Lease::acquire(&ec2, "orders", "destroy", false)
            .await
            .expect_err("held")
            .to_string();
        assert!(
            refused.contains("held by `kcluster apply` by ") && refused.contains(" since "),
            "{refused}"
        );
        assert!(refused.contains("--break-lease"), "{refused}");
        Lease::acquire(&ec2, "other", "apply", false)
            .await
            .expect("one lease per cluster");
        first.release(&ec2).await;
        let again = Lease::acquire(&ec2, "orders", "destroy", false)
            .await
            .expect("released");
        drop(again); // as a killed run would: the lease stays
        Lease::acquire(&ec2, "orders", "apply", false)
            .await
            .expect_err("stale");
        Lease::acquire(&ec2, "orders", "apply", true)
            .await
            .expect("broken");
    }
}
