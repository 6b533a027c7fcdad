//! Standard output and error that a closed pipe cannot crash: `kcluster plan | head -1` ends
//! quietly, and a command that changes EC2 keeps working when its stdout is gone and sends the
//! rest of its report to stderr, so nothing it did goes unreported.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once a write to stdout failed: nothing more is tried there.
static STDOUT_GONE: AtomicBool = AtomicBool::new(false);
/// Set by commands that change EC2: once stdout is gone, their report goes to stderr.
static REPORT_ON_STDERR: AtomicBool = AtomicBool::new(false);

/// From now on, what cannot be written to stdout is written to stderr.
pub fn keep_report_on_stderr() {
    REPORT_ON_STDERR.store(true, Ordering::SeqCst);
}

/// Writes `text` to stdout; a write error (a closed pipe) is not a failure of the command.
pub fn out(text: &str) {
    if !STDOUT_GONE.load(Ordering::SeqCst) {
        let mut stdout = std::io::stdout().lock();
        if stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
            .is_ok()
        {
            return;
        }
        STDOUT_GONE.store(true, Ordering::SeqCst);
    }
    if REPORT_ON_STDERR.load(Ordering::SeqCst) {
        err(text);
    }
}

/// Writes `text` to stderr, ignoring a closed stderr.
pub fn err(text: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr
        .write_all(text.as_bytes())
        .and_then(|()| stderr.flush());
}

/// `println!` to stdout through [`out`].
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => { $crate::cli::output::out(&format!("{}\n", format_args!($($arg)*))) };
}

/// `eprintln!` to stderr through [`err`].
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => { $crate::cli::output::err(&format!("{}\n", format_args!($($arg)*))) };
}
