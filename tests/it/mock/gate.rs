//! A proxy in front of moto that stops kcluster at a chosen EC2 call without racing it: requests
//! pass through, but from the (n+1)th request of one action on, the request still reaches moto
//! and moto's answer is swallowed, so EC2 has done the work and kcluster waits for an answer that
//! never comes. The test then kills kcluster at a known point. Or, as after a network fault, the
//! answer to one request is dropped by closing the connection, and later requests pass.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What has gone through the gate so far.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    /// Requests of the gated action that arrived.
    pub seen: usize,
    /// Requests of the gated action whose answer went back to kcluster.
    pub answered: usize,
    /// Requests of the gated action that moto carried out but whose answer was dropped.
    pub swallowed: usize,
    /// Anything the proxy could not handle.
    pub errors: Vec<String>,
}

struct Shared {
    upstream: u16,
    action: String,
    pass: usize,
    /// Drop one answer by closing the connection, instead of holding every later one.
    drop_one: bool,
    counts: Mutex<Counts>,
    changed: Condvar,
    closed: AtomicBool,
}

pub struct Gate {
    port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Gate {
    /// A proxy to moto on `upstream` that answers the first `pass` requests of EC2 action
    /// `action` (e.g. `RunInstances`) and swallows the answers to the later ones.
    pub fn start(upstream: u16, action: &str, pass: usize) -> Gate {
        Gate::with(upstream, action, pass, false)
    }

    /// A proxy to moto on `upstream` that answers every request, except that the answer to the
    /// `(pass + 1)`th request of `action` is dropped: moto did the work, the connection closes.
    pub fn drop_one_answer(upstream: u16, action: &str, pass: usize) -> Gate {
        Gate::with(upstream, action, pass, true)
    }

    fn with(upstream: u16, action: &str, pass: usize, drop_one: bool) -> Gate {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("proxy binds");
        let port = listener.local_addr().expect("proxy address").port();
        listener.set_nonblocking(true).expect("non-blocking accept");
        let shared = Arc::new(Shared {
            upstream,
            action: format!("Action={action}"),
            pass,
            drop_one,
            counts: Mutex::new(Counts::default()),
            changed: Condvar::new(),
            closed: AtomicBool::new(false),
        });
        let s = Arc::clone(&shared);
        let acceptor = std::thread::spawn(move || {
            while !s.closed.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let s = Arc::clone(&s);
                        std::thread::spawn(move || s.serve(client));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => s.error(format!("accept: {e}")),
                }
            }
        });
        Gate {
            port,
            shared,
            acceptor: Some(acceptor),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn counts(&self) -> Counts {
        self.shared.lock().clone()
    }

    /// Waits until `done` holds for the counts, at most `limit`; fails with the counts otherwise.
    pub fn wait_until(
        &self,
        what: &str,
        limit: Duration,
        done: impl Fn(&Counts) -> bool,
    ) -> Counts {
        let deadline = Instant::now() + limit;
        let mut c = self.shared.lock();
        while !done(&c) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out after {limit:?} waiting for {what}; gate: {c:?}"
            );
            c = self
                .shared
                .changed
                .wait_timeout(c, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        c.clone()
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.shared.changed.notify_all();
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn error(&self, e: String) {
        self.lock().errors.push(e);
        self.changed.notify_all();
    }

    /// One connection: one request (moto answers `Connection: close`, so clients never reuse one).
    fn serve(&self, mut client: TcpStream) {
        let (request, body) = match read_request(&mut client) {
            Ok(r) => r,
            Err(e) => return self.error(format!("reading a request: {e}")),
        };
        // A DryRun request changes nothing: it is never gated.
        let form = String::from_utf8_lossy(&body);
        let gated = form.split('&').any(|kv| kv == self.action)
            && !form.split('&').any(|kv| kv == "DryRun=true");
        let swallow = gated && {
            let mut c = self.lock();
            c.seen += 1;
            if self.drop_one {
                c.seen == self.pass + 1
            } else {
                c.seen > self.pass
            }
        };
        let response = match forward(self.upstream, &request) {
            Ok(r) => r,
            Err(e) => return self.error(format!("forwarding to moto: {e}")),
        };
        if swallow && self.drop_one {
            self.lock().swallowed += 1;
            self.changed.notify_all();
            return; // closes the connection unanswered
        }
        if swallow {
            self.lock().swallowed += 1;
            self.changed.notify_all();
            // Hold the connection open, unanswered, until the test is done.
            let mut c = self.lock();
            while !self.closed.load(Ordering::SeqCst) {
                c = self
                    .changed
                    .wait_timeout(c, Duration::from_millis(100))
                    .map(|(g, _)| g)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
            return;
        }
        // kcluster may be gone (killed): a failed write is not the proxy's problem.
        if client.write_all(&response).is_ok() && gated {
            self.lock().answered += 1;
            self.changed.notify_all();
        }
    }
}

/// Reads one HTTP/1.1 request with a `Content-Length` body; returns the raw bytes and the body.
fn read_request(s: &mut TcpStream) -> Result<(Vec<u8>, Vec<u8>), String> {
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!("connection closed after {} bytes", buf.len()));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    if head.contains("transfer-encoding:") || head.contains("expect:") {
        return Err(format!("unsupported request head: {head}"));
    }
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().map_err(|e| format!("content-length: {e}")))
        .transpose()?
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = s.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed inside the body".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[head_end..].to_vec();
    Ok((buf, body))
}

/// Sends a request upstream with `Connection: close` (so the upstream closes after its answer,
/// as moto always does) and reads the whole answer.
fn forward(port: u16, request: &[u8]) -> Result<Vec<u8>, String> {
    let mut up = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    up.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let line_end = request
        .windows(2)
        .position(|w| w == b"\r\n")
        .ok_or("no request line")?
        + 2;
    up.write_all(&request[..line_end])
        .map_err(|e| e.to_string())?;
    up.write_all(b"Connection: close\r\n")
        .map_err(|e| e.to_string())?;
    up.write_all(&request[line_end..])
        .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    up.read_to_end(&mut response).map_err(|e| e.to_string())?;
    Ok(response)
}
