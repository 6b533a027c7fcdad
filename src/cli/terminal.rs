//! Progress for people: an indicatif bar per phase when stderr is a terminal, plain lines
//! otherwise (CI logs, pipes).

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::progress::Reporter;

pub enum Terminal {
    Bars(Mutex<Option<ProgressBar>>),
    Lines(Mutex<Phase>),
}

#[derive(Default)]
pub struct Phase {
    name: String,
    done: usize,
    total: usize,
}

impl Terminal {
    /// Bars on a terminal, lines elsewhere.
    pub fn detect() -> Terminal {
        if std::io::stderr().is_terminal() {
            Terminal::Bars(Mutex::new(None))
        } else {
            Terminal::Lines(Mutex::new(Phase::default()))
        }
    }
}

impl Reporter for Terminal {
    fn phase(&self, name: &str, total: usize) {
        match self {
            Terminal::Bars(bar) => {
                let pb = ProgressBar::new(total as u64);
                let style = ProgressStyle::with_template(
                    "{spinner} {prefix:<40} [{bar:30}] {pos}/{len} {wide_msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
                pb.set_style(style);
                pb.set_prefix(name.to_string());
                pb.enable_steady_tick(Duration::from_millis(120));
                if let Ok(mut b) = bar.lock() {
                    *b = Some(pb);
                }
            }
            Terminal::Lines(p) => {
                if let Ok(mut p) = p.lock() {
                    *p = Phase {
                        name: name.to_string(),
                        done: 0,
                        total,
                    };
                }
                let _ = writeln!(std::io::stderr(), "{name}: {total} to do");
            }
        }
    }

    fn step(&self, message: &str) {
        match self {
            Terminal::Bars(bar) => {
                if let Ok(b) = bar.lock()
                    && let Some(pb) = b.as_ref()
                {
                    pb.set_message(message.to_string());
                    pb.inc(1);
                }
            }
            Terminal::Lines(p) => {
                if let Ok(mut p) = p.lock() {
                    p.done += 1;
                    let _ = writeln!(
                        std::io::stderr(),
                        "{}: {}/{} {message}",
                        p.name,
                        p.done,
                        p.total
                    );
                }
            }
        }
    }

    fn finish(&self) {
        if let Terminal::Bars(bar) = self
            && let Ok(mut b) = bar.lock()
            && let Some(pb) = b.take()
        {
            pb.finish();
        }
    }
}
