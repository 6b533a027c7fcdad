//! Progress events from the core. The CLI turns them into indicatif bars on a terminal or plain
//! lines otherwise; tests use `Silent`.

/// Receives progress from long operations. Implementations must be cheap and never fail.
pub trait Reporter: Send + Sync {
    /// A phase with `total` steps starts (e.g. "create network interfaces", 9).
    fn phase(&self, name: &str, total: usize);
    /// One step of the current phase is done.
    fn step(&self, message: &str);
    /// The current phase is over.
    fn finish(&self);
}

/// Reports nothing.
pub struct Silent;

impl Reporter for Silent {
    fn phase(&self, _: &str, _: usize) {}
    fn step(&self, _: &str) {}
    fn finish(&self) {}
}
