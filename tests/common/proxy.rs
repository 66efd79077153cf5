//! A fault-injecting, recording HTTP proxy between AWS SDK clients and moto.
//!
//! Point the clients (or the function's `AWS_ENDPOINT_URL`) at [`FaultProxy::endpoint`]; every
//! request is forwarded to the upstream (moto) and recorded as a [`Call`]. [`Rule`]s inject
//! [`Fault`]s in each service's real error wire format (S3 REST-XML, IAM/STS/CloudFormation
//! query-XML, KMS awsJson1.1, DynamoDB awsJson1.0), so the Rust SDK classifies them exactly as it
//! classifies real AWS errors (codes and retries).
//!
//! The service comes from the SigV4 credential scope, the operation from `X-Amz-Target` (JSON
//! protocols), `Action=` (query protocols) or method + subresource (S3, `x-id` first).
//!
//! Plain std threads and std::net on 127.0.0.1, like the rest of the harness. Client connections
//! are kept alive; every request goes to the upstream over a fresh connection.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{header, lock, peer_closed, read_body, read_head, uuid_like};

/// How long the proxy waits for the upstream's answer.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------------
// Faults and rules

/// What to do to a matching call.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Not forwarded; answered with the service's throttling error: S3 503 `SlowDown`, KMS 400
    /// `ThrottlingException`, DynamoDB 400 `ProvisionedThroughputExceededException`, IAM, STS,
    /// CloudFormation and the rest 400 `Throttling`.
    Throttle,
    /// Not forwarded; answered with the service's internal error: S3 500 `InternalError`, KMS 500
    /// `KMSInternalException`, IAM 500 `ServiceFailure`, DynamoDB 500 `InternalServerError`, the
    /// rest 500 `InternalFailure`.
    ServerError,
    /// Not forwarded; answered with this status and error code in the service's format (the
    /// DynamoDB namespace is added to the code). `Code: message` gives the message as well.
    Error(u16, String),
    /// Forwarded after this pause.
    Latency(Duration),
    /// The client connection is reset (RST) without forwarding: nothing happens upstream.
    ResetBefore,
    /// Forwarded (it takes effect upstream), then the client connection is reset without the
    /// answer.
    LostAnswer,
    /// For a read: answered with what the upstream answered to the previous identical request
    /// (same service, method, path and body), not forwarded. A rule with this fault does not fire
    /// (and does not count) when there is no previous answer or the call is not a read.
    StaleRead,
    /// Read-after-write that lags, as S3 and KMS document for bucket and key policies: after a
    /// write of a policy this rule matches (PutBucketPolicy, DeleteBucketPolicy, PutKeyPolicy),
    /// for this long every read of that policy this rule matches (GetBucketPolicy, GetKeyPolicy),
    /// the writer's own read-back included, is answered with the version that was current just
    /// before the write (read from the upstream under the write), not forwarded. Each write
    /// starts its own window, so a read shows the version before the *latest* write; a policy
    /// write this rule does not pick (`skip`, `times`, `probability` choose the writes) ends the
    /// window. Writes are forwarded untouched and recorded without a fault; the reads answered
    /// stale are recorded with it. Other calls: the rule does not fire.
    StaleAfterWrite(Duration),
    /// Held before forwarding until the gate is released (then forwarded) or the client closes
    /// the connection (then dropped: never forwarded). A gate holds one request: once it was
    /// reached, the rule no longer fires (and does not count).
    PauseBefore(Gate),
    /// Forwarded; the upstream's answer is held until the gate is released (then delivered) or
    /// the client closes the connection (then dropped).
    PauseAfter(Gate),
}

impl Fault {
    /// The name recorded in [`Call::fault`]: `Throttle`, `Error(400 Code)`, `Latency(250ms)`...
    pub fn name(&self) -> String {
        match self {
            Fault::Throttle => "Throttle".into(),
            Fault::ServerError => "ServerError".into(),
            Fault::Error(status, code) => format!("Error({status} {code})"),
            Fault::Latency(d) => format!("Latency({d:?})"),
            Fault::ResetBefore => "ResetBefore".into(),
            Fault::LostAnswer => "LostAnswer".into(),
            Fault::StaleRead => "StaleRead".into(),
            Fault::StaleAfterWrite(d) => format!("StaleAfterWrite({d:?})"),
            Fault::PauseBefore(_) => "PauseBefore".into(),
            Fault::PauseAfter(_) => "PauseAfter".into(),
        }
    }
}

/// Which calls get a fault. Rules are tried in the order they were pushed; the first one that
/// fires wins. Each keeps its own counts.
#[derive(Clone, Debug)]
pub struct Rule {
    /// `s3`, `kms`, `iam`, `dynamodb`, `sts`... (the SigV4 signing name); None = any.
    pub service: Option<String>,
    /// The operation name (`GetKeyPolicy`); `A|B` matches either; None = any.
    pub operation: Option<String>,
    pub fault: Fault,
    /// The chance that a matching call (past `skip`, within `times`) gets the fault; 1.0 = all.
    pub probability: f64,
    /// The first `skip` matching calls pass untouched.
    pub skip: u32,
    /// Inject at most this many times; None = no limit.
    pub times: Option<u32>,
}

impl Rule {
    /// Calls of `operation` (`A|B` for either; `*` for any) of `service` (`*` for any). The fault
    /// is [`Fault::Throttle`] until [`Rule::fault`] says otherwise.
    pub fn on(service: &str, operation: &str) -> Rule {
        let opt = |s: &str| (s != "*").then(|| s.to_string());
        Rule {
            service: opt(service),
            operation: opt(operation),
            fault: Fault::Throttle,
            probability: 1.0,
            skip: 0,
            times: None,
        }
    }

    /// Every call of `service`.
    pub fn service(service: &str) -> Rule {
        Rule::on(service, "*")
    }

    /// Every call.
    pub fn any(fault: Fault) -> Rule {
        Rule::on("*", "*").fault(fault)
    }

    pub fn fault(mut self, fault: Fault) -> Rule {
        self.fault = fault;
        self
    }

    pub fn probability(mut self, p: f64) -> Rule {
        self.probability = p;
        self
    }

    pub fn skip(mut self, n: u32) -> Rule {
        self.skip = n;
        self
    }

    pub fn times(mut self, n: u32) -> Rule {
        self.times = Some(n);
        self
    }

    /// `times(1)`.
    pub fn once(self) -> Rule {
        self.times(1)
    }

    fn matches(&self, service: &str, operation: &str) -> bool {
        self.service.as_deref().is_none_or(|s| s == service)
            && self
                .operation
                .as_deref()
                .is_none_or(|ops| ops.split('|').any(|o| o == operation))
    }
}

/// A point where [`Fault::PauseBefore`] / [`Fault::PauseAfter`] hold one request.
///
/// A gate holds the first request that reaches it, once: after it was released or the request
/// was dropped, later requests (and any that arrive while one is held) pass through. Clones share
/// the gate.
#[derive(Clone, Debug, Default)]
pub struct Gate(Arc<(Mutex<GateState>, Condvar)>);

#[derive(Debug, Default)]
struct GateState {
    reached: bool,
    released: bool,
    /// The client left while the request was held; it (or its answer) was dropped.
    dropped: bool,
    /// The held request has been let through (released) or dropped.
    done: bool,
    /// `service:Operation` of the held request.
    call: Option<String>,
}

enum Hold {
    /// Released: go on.
    Released,
    /// The client closed the connection (or the proxy stopped): drop the request.
    ClientGone,
    /// The gate was spent or busy: not held.
    Pass,
}

impl Gate {
    pub fn new() -> Gate {
        Gate::default()
    }

    /// Waits until a request is held at the gate (or was, before); false on timeout.
    pub fn wait_reached(&self, timeout: Duration) -> bool {
        self.wait(timeout, |s| s.reached)
    }

    pub fn is_reached(&self) -> bool {
        lock(&self.0.0).reached
    }

    /// `service:Operation` of the request that reached the gate.
    pub fn reached_by(&self) -> Option<String> {
        lock(&self.0.0).call.clone()
    }

    /// Lets the held request (or one still to come) through.
    pub fn release(&self) {
        lock(&self.0.0).released = true;
        self.0.1.notify_all();
    }

    /// Waits until the proxy noticed the client leaving and dropped the held request (PauseBefore:
    /// never forwarded) or its answer (PauseAfter); false on timeout.
    pub fn wait_dropped(&self, timeout: Duration) -> bool {
        self.wait(timeout, |s| s.dropped)
    }

    /// Waits until the held request was let through or dropped; false on timeout.
    pub fn wait_done(&self, timeout: Duration) -> bool {
        self.wait(timeout, |s| s.done)
    }

    fn wait(&self, timeout: Duration, cond: impl Fn(&GateState) -> bool) -> bool {
        let (m, cv) = &*self.0;
        let (guard, _) = cv
            .wait_timeout_while(lock(m), timeout, |s| !cond(s))
            .unwrap_or_else(|e| e.into_inner());
        cond(&guard)
    }

    fn hold(&self, call: String, client: &TcpStream, stop: &AtomicBool) -> Hold {
        let (m, cv) = &*self.0;
        let mut s = lock(m);
        if s.reached {
            return Hold::Pass;
        }
        s.reached = true;
        s.call = Some(call);
        cv.notify_all();
        let outcome = loop {
            if s.released {
                break Hold::Released;
            }
            if stop.load(Ordering::SeqCst) || peer_closed(client) {
                s.dropped = true;
                break Hold::ClientGone;
            }
            s = cv
                .wait_timeout(s, Duration::from_millis(20))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        };
        s.done = true;
        cv.notify_all();
        outcome
    }
}

// ---------------------------------------------------------------------------------------------
// Calls

/// One request the proxy received, faulted or not.
#[derive(Clone, Debug)]
pub struct Call {
    /// Arrival order, from 0.
    pub seq: u64,
    /// The SigV4 signing name: `s3`, `kms`, `iam`, `dynamodb`, `sts`...; `unknown` if unsigned.
    pub service: String,
    /// `GetBucketPolicy`, `PutKeyPolicy`, `CreateRole`, `PutItem`...
    pub operation: String,
    /// S3 bucket, KMS KeyId, IAM RoleName, DynamoDB LockId (else TableName), STS RoleArn,
    /// CloudFormation StackName, where the request names one.
    pub resource: Option<String>,
    /// The status the client received; 0 when it got no answer (reset or dropped).
    pub status: u16,
    /// The upstream's status; None when the request was never forwarded.
    pub upstream_status: Option<u16>,
    /// The injected fault's [`Fault::name`]; None for a call passed untouched.
    pub fault: Option<String>,
    pub method: String,
    /// Path with query.
    pub path: String,
    /// Request headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// Request body (HTTP chunked framing removed).
    pub body: Vec<u8>,
    /// When the proxy had the whole request, and when it had the answer (or the fault) to give.
    pub received: Instant,
    pub answered: Instant,
}

impl Call {
    /// `service:Operation`
    pub fn key(&self) -> String {
        format!("{}:{}", self.service, self.operation)
    }

    /// Whether the request reached the upstream.
    pub fn forwarded(&self) -> bool {
        self.upstream_status.is_some()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// The proxy

pub struct FaultProxy {
    addr: String,
    inner: Arc<Inner>,
}

struct Inner {
    /// `host:port`
    upstream: String,
    stop: AtomicBool,
    state: Mutex<State>,
    /// Open client connections, shut down on drop.
    conns: Mutex<HashMap<u64, TcpStream>>,
    next_conn: AtomicU64,
    /// One lock per policy, held across [`Fault::StaleAfterWrite`]'s read of the version before
    /// a write and the write, so that version really is the one the write replaced.
    policy_locks: Mutex<HashMap<PolicyId, Arc<Mutex<()>>>>,
}

struct RuleState {
    rule: Rule,
    matched: u32,
    injected: u32,
}

#[derive(Default)]
struct State {
    rules: Vec<RuleState>,
    seed: u64,
    rng: u64,
    next_seq: u64,
    calls: Vec<Call>,
    /// The last upstream answer to each read, by (service, method, path, body).
    reads: HashMap<ReadKey, Answer>,
    /// [`Fault::StaleAfterWrite`]: each policy's open window, from its latest write.
    windows: HashMap<PolicyId, Window>,
}

type ReadKey = (String, String, String, Vec<u8>);

/// A bucket policy (`s3`, bucket) or key policy (`kms`, key id).
type PolicyId = (String, String);

/// After a policy write: until when reads show `before`, the read answer of the version the
/// write replaced.
struct Window {
    before: Answer,
    until: Instant,
}

/// Whether a call reads or writes a bucket or key policy.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PolicyCall {
    Read,
    Write,
}

/// An HTTP response (from the upstream or made up).
#[derive(Clone, Debug)]
struct Answer {
    status: u16,
    reason: String,
    /// Names lowercase.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// A request as received from the client.
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    service: String,
    operation: String,
    resource: Option<String>,
}

impl FaultProxy {
    /// Starts a proxy on 127.0.0.1 in front of `upstream` (`http://127.0.0.1:PORT`). The PRNG
    /// seed is random until [`FaultProxy::set_seed`].
    pub fn start(upstream: &str) -> FaultProxy {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr").to_string();
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()).rotate_left(32);
        let inner = Arc::new(Inner {
            upstream,
            stop: AtomicBool::new(false),
            state: Mutex::new(State {
                seed,
                rng: seed,
                ..State::default()
            }),
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(0),
            policy_locks: Mutex::new(HashMap::new()),
        });
        let inner2 = inner.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                if inner2.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                // Answers go out in more than one write; without this, Nagle's algorithm and the
                // client's delayed ACK add 40 ms to every call.
                let _ = conn.set_nodelay(true);
                let inner = inner2.clone();
                thread::spawn(move || serve(&inner, conn));
            }
        });
        FaultProxy { addr, inner }
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds a rule after the existing ones.
    pub fn push(&self, rule: Rule) {
        lock(&self.inner.state).rules.push(RuleState {
            rule,
            matched: 0,
            injected: 0,
        });
    }

    /// Removes every rule (the calls and remembered reads stay).
    pub fn clear(&self) {
        lock(&self.inner.state).rules.clear();
    }

    /// Forgets the remembered read answers that [`Fault::StaleRead`] serves.
    pub fn clear_reads(&self) {
        lock(&self.inner.state).reads.clear();
    }

    /// Restarts the PRNG from `seed`: the same seed and call sequence inject the same faults.
    pub fn set_seed(&self, seed: u64) {
        let mut s = lock(&self.inner.state);
        s.seed = seed;
        s.rng = seed;
    }

    /// The seed the PRNG last started from (to print for a failing run).
    pub fn seed(&self) -> u64 {
        lock(&self.inner.state).seed
    }

    /// Every call so far, in the order they completed.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.inner.state).calls.clone()
    }

    /// Every call so far; forgets them.
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut lock(&self.inner.state).calls)
    }

    /// How many calls of `service`/`operation` (`*` for any) were received.
    pub fn count(&self, service: &str, operation: &str) -> usize {
        let rule = Rule::on(service, operation);
        lock(&self.inner.state)
            .calls
            .iter()
            .filter(|c| rule.matches(&c.service, &c.operation))
            .count()
    }

    /// How many calls got a fault.
    pub fn injected(&self) -> usize {
        lock(&self.inner.state)
            .calls
            .iter()
            .filter(|c| c.fault.is_some())
            .count()
    }

    /// `service:Operation` -> number of calls.
    pub fn summary(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for c in &lock(&self.inner.state).calls {
            *out.entry(c.key()).or_insert(0) += 1;
        }
        out
    }

    /// Waits until at least `n` calls were recorded; returns them all.
    pub fn wait_calls(&self, n: usize, timeout: Duration) -> Vec<Call> {
        super::poll(timeout, || lock(&self.inner.state).calls.len() >= n);
        self.calls()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr); // wake accept()
        for (_, c) in lock(&self.inner.conns).drain() {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

impl State {
    /// splitmix64
    fn next_u64(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The fault for this call, if a rule fires (counting it), and the stale answer for StaleRead.
    /// For [`Fault::StaleAfterWrite`], the stale answer is the version before the policy's
    /// latest write while its window is open; a write it picks gets no answer here (it is
    /// forwarded under the policy's lock, see [`write_opening_window`]).
    fn choose(&mut self, req: &Request, key: Option<&ReadKey>) -> Option<(Fault, Option<Answer>)> {
        let stale = key.and_then(|k| self.reads.get(k)).cloned();
        let policy = policy_call(req);
        let now = Instant::now();
        let window = match &policy {
            Some((id, PolicyCall::Read)) => self
                .windows
                .get(id)
                .filter(|w| now < w.until)
                .map(|w| w.before.clone()),
            _ => None,
        };
        for i in 0..self.rules.len() {
            let r = &mut self.rules[i];
            if !r.rule.matches(&req.service, &req.operation) {
                continue;
            }
            if let (Fault::StaleAfterWrite(_), Some(before)) = (&r.rule.fault, &window) {
                // A read in an open window: stale whatever the rule's counts, which choose
                // the writes that open windows.
                return Some((r.rule.fault.clone(), Some(before.clone())));
            }
            let spent = match &r.rule.fault {
                Fault::StaleRead => stale.is_none(),
                Fault::StaleAfterWrite(_) => !matches!(policy, Some((_, PolicyCall::Write))),
                Fault::PauseBefore(gate) | Fault::PauseAfter(gate) => gate.is_reached(),
                _ => false,
            };
            if spent {
                continue;
            }
            r.matched += 1;
            if r.matched <= r.rule.skip || r.rule.times.is_some_and(|t| r.injected >= t) {
                continue;
            }
            let p = r.rule.probability;
            if p < 1.0 && self.next_f64() >= p {
                continue;
            }
            let r = &mut self.rules[i];
            r.injected += 1;
            let fault = r.rule.fault.clone();
            let stale = matches!(fault, Fault::StaleRead)
                .then(|| stale.clone())
                .flatten();
            return Some((fault, stale));
        }
        None
    }
}

// ---------------------------------------------------------------------------------------------
// Serving

/// What to do with the client connection after a request.
enum Outcome {
    Reply(Answer),
    /// Reset the connection (RST), no answer.
    Reset,
    /// Close the connection, no answer (the client is gone).
    Close,
}

fn serve(inner: &Inner, stream: TcpStream) {
    let id = inner.next_conn.fetch_add(1, Ordering::Relaxed);
    if let Ok(clone) = stream.try_clone() {
        lock(&inner.conns).insert(id, clone);
    }
    let reset = serve_requests(inner, &stream).unwrap_or(false);
    lock(&inner.conns).remove(&id);
    if reset {
        set_linger_zero(&stream);
    } else {
        let _ = stream.shutdown(Shutdown::Both);
    }
    // Dropping the last descriptor closes the socket (RST after SO_LINGER 0).
}

/// Serves requests until the client closes; Ok(true) when the connection must be reset.
fn serve_requests(inner: &Inner, stream: &TcpStream) -> io::Result<bool> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream.try_clone()?;
    while let Some((start, headers)) = read_head(&mut reader)? {
        let mut parts = start.split_whitespace();
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let body = read_body(&mut reader, &headers)?;
        let close = header(&headers, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let (service, operation, resource) = identify(method, path, &headers, &body);
        let req = Request {
            method: method.to_string(),
            path: path.to_string(),
            headers,
            body,
            service,
            operation,
            resource,
        };
        match handle(inner, &req, stream) {
            Outcome::Reply(answer) => {
                write_answer(&mut out, &req, &answer, close)?;
                if close {
                    return Ok(false);
                }
            }
            Outcome::Reset => return Ok(true),
            Outcome::Close => return Ok(false),
        }
    }
    Ok(false)
}

fn handle(inner: &Inner, req: &Request, client: &TcpStream) -> Outcome {
    let received = Instant::now();
    let read_key = is_read(&req.operation).then(|| {
        (
            req.service.clone(),
            req.method.clone(),
            req.path.clone(),
            req.body.clone(),
        )
    });
    let (seq, chosen) = {
        let mut s = lock(&inner.state);
        let seq = s.next_seq;
        s.next_seq += 1;
        (seq, s.choose(req, read_key.as_ref()))
    };
    let mut fault_name = chosen.as_ref().map(|(f, _)| f.name());
    // A policy write that a StaleAfterWrite rule picked sets its own window.
    let mut window_set = false;
    let call_name = format!("{}:{}", req.service, req.operation);

    // (what the client gets, the upstream's status)
    let (outcome, upstream_status) = match chosen {
        None => forwarded(inner, req, read_key),
        Some((Fault::Throttle, _)) => (Outcome::Reply(throttle(req)), None),
        Some((Fault::ServerError, _)) => (Outcome::Reply(server_error(req)), None),
        Some((Fault::Error(status, code), _)) => {
            // `Code: message` sets the message too (as AWS words it, e.g. "invalid principals").
            let (code, message) = match code.split_once(": ") {
                Some((c, m)) => (c.to_string(), m.to_string()),
                None => (code.clone(), format!("injected {code}")),
            };
            (
                Outcome::Reply(error_answer(req, status, &code, &message)),
                None,
            )
        }
        Some((Fault::Latency(d), _)) => {
            thread::sleep(d);
            forwarded(inner, req, read_key)
        }
        Some((Fault::ResetBefore, _)) => (Outcome::Reset, None),
        Some((Fault::LostAnswer, _)) => match forwarded(inner, req, read_key) {
            (_, Some(status)) => (Outcome::Reset, Some(status)),
            other => other,
        },
        Some((Fault::StaleRead, Some(answer))) => (Outcome::Reply(answer), None),
        Some((Fault::StaleRead, None)) => forwarded(inner, req, read_key),
        Some((Fault::StaleAfterWrite(_), Some(answer))) => (Outcome::Reply(answer), None),
        Some((Fault::StaleAfterWrite(window), None)) => {
            fault_name = None;
            window_set = true;
            write_opening_window(inner, req, window)
        }
        Some((Fault::PauseBefore(gate), _)) => match gate.hold(call_name, client, &inner.stop) {
            Hold::ClientGone => (Outcome::Close, None),
            Hold::Released => forwarded(inner, req, read_key),
            Hold::Pass => {
                fault_name = None;
                forwarded(inner, req, read_key)
            }
        },
        Some((Fault::PauseAfter(gate), _)) => match forwarded(inner, req, read_key) {
            (Outcome::Reply(answer), status) => match gate.hold(call_name, client, &inner.stop) {
                Hold::ClientGone => (Outcome::Close, status),
                Hold::Released => (Outcome::Reply(answer), status),
                Hold::Pass => {
                    fault_name = None;
                    (Outcome::Reply(answer), status)
                }
            },
            other => other,
        },
    };
    let status = match &outcome {
        Outcome::Reply(a) => a.status,
        Outcome::Reset | Outcome::Close => 0,
    };
    let mut state = lock(&inner.state);
    if let Some((id, PolicyCall::Write)) = policy_call(req)
        && upstream_status.is_some_and(|s| (200..300).contains(&s))
        && !window_set
    {
        // A write that opened no window is the latest: reads after it are fresh.
        state.windows.remove(&id);
    }
    state.calls.push(Call {
        seq,
        service: req.service.clone(),
        operation: req.operation.clone(),
        resource: req.resource.clone(),
        status,
        upstream_status,
        fault: fault_name,
        method: req.method.clone(),
        path: req.path.clone(),
        headers: req.headers.clone(),
        body: req.body.clone(),
        received,
        answered: Instant::now(),
    });
    outcome
}

/// [`Fault::StaleAfterWrite`] on a policy write: under the policy's lock, reads the version it
/// is about to replace from the upstream, forwards the write, and (when it took effect) opens
/// the window in which reads of the policy show that version.
fn write_opening_window(inner: &Inner, req: &Request, window: Duration) -> (Outcome, Option<u16>) {
    let Some((id, PolicyCall::Write)) = policy_call(req) else {
        return forwarded(inner, req, None);
    };
    let policy_lock = lock(&inner.policy_locks)
        .entry(id.clone())
        .or_default()
        .clone();
    let _serialised = lock(&policy_lock);
    let before = forward(&inner.upstream, &policy_read(req, &id));
    let result = forwarded(inner, req, None);
    let mut state = lock(&inner.state);
    match (before, result.1) {
        (Ok(before), Some(status)) if (200..300).contains(&status) => {
            let until = Instant::now() + window;
            state.windows.insert(id, Window { before, until });
        }
        // The write did not take effect, or the version before it could not be read: no window
        // (and a write that did take effect is the latest, so the old window ends).
        (_, Some(status)) if (200..300).contains(&status) => {
            state.windows.remove(&id);
        }
        _ => {}
    }
    result
}

/// Which policy a call reads or writes, if any.
fn policy_call(req: &Request) -> Option<(PolicyId, PolicyCall)> {
    let kind = match (req.service.as_str(), req.operation.as_str()) {
        ("s3", "GetBucketPolicy") | ("kms", "GetKeyPolicy") => PolicyCall::Read,
        ("s3", "PutBucketPolicy" | "DeleteBucketPolicy") | ("kms", "PutKeyPolicy") => {
            PolicyCall::Write
        }
        _ => return None,
    };
    let resource = req.resource.as_deref()?;
    // A key is named by id or ARN (`arn:aws:kms:REGION:ACCOUNT:key/ID`); both are one policy.
    let resource = match req.service.as_str() {
        "kms" => resource.rsplit_once("key/").map_or(resource, |(_, id)| id),
        _ => resource,
    };
    Some(((req.service.clone(), resource.to_string()), kind))
}

/// The read of the policy `write` writes, signed as the write was (moto does not check
/// signatures): `GET /BUCKET?policy`, or KMS `GetKeyPolicy` of the key.
fn policy_read(write: &Request, id: &PolicyId) -> Request {
    let keep = |names: &[&str]| -> Vec<(String, String)> {
        write
            .headers
            .iter()
            .filter(|(k, _)| names.contains(&k.as_str()))
            .cloned()
            .collect()
    };
    let common = [
        "authorization",
        "host",
        "x-amz-date",
        "x-amz-security-token",
    ];
    if write.service == "kms" {
        let mut headers = keep(&common);
        headers.push(("x-amz-target".into(), "TrentService.GetKeyPolicy".into()));
        headers.push(("content-type".into(), "application/x-amz-json-1.1".into()));
        let key_id = serde_json::from_slice::<serde_json::Value>(&write.body)
            .ok()
            .and_then(|b| b["KeyId"].as_str().map(str::to_string))
            .unwrap_or_else(|| id.1.clone());
        let body = serde_json::json!({"KeyId": key_id, "PolicyName": "default"});
        Request {
            method: "POST".into(),
            path: "/".into(),
            headers,
            body: body.to_string().into_bytes(),
            service: write.service.clone(),
            operation: "GetKeyPolicy".into(),
            resource: Some(key_id),
        }
    } else {
        let mut names = common.to_vec();
        names.push("x-amz-expected-bucket-owner");
        Request {
            method: "GET".into(),
            path: format!("/{}?policy", id.1),
            headers: keep(&names),
            body: Vec::new(),
            service: write.service.clone(),
            operation: "GetBucketPolicy".into(),
            resource: Some(id.1.clone()),
        }
    }
}

/// Forwards to the upstream, remembering a read's answer. An upstream that cannot be reached
/// gives the client a 502 (and no upstream status).
fn forwarded(inner: &Inner, req: &Request, read_key: Option<ReadKey>) -> (Outcome, Option<u16>) {
    match forward(&inner.upstream, req) {
        Ok(answer) => {
            if let Some(key) = read_key {
                lock(&inner.state).reads.insert(key, answer.clone());
            }
            let status = answer.status;
            (Outcome::Reply(answer), Some(status))
        }
        Err(e) => (
            Outcome::Reply(Answer {
                status: 502,
                reason: "Bad Gateway".into(),
                headers: vec![("content-type".into(), "text/plain".into())],
                body: format!("fault proxy: upstream {}: {e}", inner.upstream).into_bytes(),
            }),
            None,
        ),
    }
}

/// Hop-by-hop headers and framing, which the proxy sets itself.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "transfer-encoding",
    "content-length",
    "expect",
];

fn forward(upstream: &str, req: &Request) -> io::Result<Answer> {
    let mut conn = TcpStream::connect(upstream)?;
    conn.set_read_timeout(Some(UPSTREAM_TIMEOUT))?;
    conn.set_nodelay(true)?;
    let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.path);
    for (k, v) in &req.headers {
        if !HOP_BY_HOP.contains(&k.as_str()) {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    let framed = header(&req.headers, "content-length").is_some()
        || header(&req.headers, "transfer-encoding").is_some();
    if framed || !req.body.is_empty() {
        head.push_str(&format!("content-length: {}\r\n", req.body.len()));
    }
    head.push_str("connection: close\r\n\r\n");
    conn.write_all(head.as_bytes())?;
    conn.write_all(&req.body)?;
    conn.flush()?;

    let mut reader = BufReader::new(conn);
    loop {
        let (start, headers) = read_head(&mut reader)?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "upstream closed without answer",
            )
        })?;
        let mut parts = start.splitn(3, ' ');
        let _version = parts.next();
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, start.clone()))?;
        let reason = parts.next().unwrap_or("").to_string();
        if (100..200).contains(&status) {
            continue; // 100 Continue and friends
        }
        let body = if req.method == "HEAD" || status == 204 || status == 304 {
            Vec::new()
        } else if header(&headers, "content-length").is_some()
            || header(&headers, "transfer-encoding").is_some()
        {
            read_body(&mut reader, &headers)?
        } else {
            let mut rest = Vec::new();
            reader.read_to_end(&mut rest)?;
            rest
        };
        return Ok(Answer {
            status,
            reason,
            headers,
            body,
        });
    }
}

fn write_answer(out: &mut TcpStream, req: &Request, a: &Answer, close: bool) -> io::Result<()> {
    let reason = if a.reason.is_empty() {
        super::reason(a.status)
    } else {
        &a.reason
    };
    let mut head = format!("HTTP/1.1 {} {reason}\r\n", a.status);
    for (k, v) in &a.headers {
        if !HOP_BY_HOP.contains(&k.as_str()) {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    let head_request = req.method == "HEAD";
    let length = match header(&a.headers, "content-length") {
        Some(v) if head_request => v.to_string(),
        _ => a.body.len().to_string(),
    };
    head.push_str(&format!("content-length: {length}\r\n"));
    if close {
        head.push_str("connection: close\r\n");
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    if !head_request {
        out.write_all(&a.body)?;
    }
    out.flush()
}

/// SO_LINGER 0: closing the socket sends RST instead of FIN.
fn set_linger_zero(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor and a correctly sized, initialised `linger`.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Error wire formats

fn throttle(req: &Request) -> Answer {
    let (status, code, message) = match req.service.as_str() {
        "s3" => (503, "SlowDown", "Please reduce your request rate."),
        "kms" => (400, "ThrottlingException", "Rate exceeded"),
        "dynamodb" => (
            400,
            "ProvisionedThroughputExceededException",
            "The level of configured provisioned throughput for the table was exceeded. \
             Consider increasing your provisioning level with the UpdateTable API.",
        ),
        _ => (400, "Throttling", "Rate exceeded"),
    };
    error_answer(req, status, code, message)
}

fn server_error(req: &Request) -> Answer {
    let (code, message) = match req.service.as_str() {
        "s3" => (
            "InternalError",
            "We encountered an internal error. Please try again.",
        ),
        "kms" => ("KMSInternalException", "An internal error occurred."),
        "iam" => (
            "ServiceFailure",
            "The request processing has failed because of an unknown error, exception or failure.",
        ),
        "dynamodb" => ("InternalServerError", "Internal server error"),
        _ => ("InternalFailure", "An internal error occurred."),
    };
    error_answer(req, 500, code, message)
}

/// An error in the wire format of the request's protocol: JSON (`X-Amz-Target`), query-XML
/// (`Action=`), else S3's REST-XML.
fn error_answer(req: &Request, status: u16, code: &str, message: &str) -> Answer {
    let request_id = uuid_like();
    let mut headers = Vec::new();
    let body = if let Some(target) = header(&req.headers, "x-amz-target") {
        let content_type = header(&req.headers, "content-type")
            .filter(|c| c.starts_with("application/x-amz-json"))
            .unwrap_or(if target.starts_with("DynamoDB") {
                "application/x-amz-json-1.0"
            } else {
                "application/x-amz-json-1.1"
            });
        let typ = if req.service == "dynamodb" && !code.contains('#') {
            format!("com.amazonaws.dynamodb.v20120810#{code}")
        } else {
            code.to_string()
        };
        headers.push(("content-type".into(), content_type.to_string()));
        headers.push(("x-amzn-requestid".into(), request_id));
        serde_json::json!({"__type": typ, "message": message}).to_string()
    } else if is_query(req) {
        let kind = if status >= 500 { "Receiver" } else { "Sender" };
        let ns = match req.service.as_str() {
            "iam" => "https://iam.amazonaws.com/doc/2010-05-08/",
            "sts" => "https://sts.amazonaws.com/doc/2011-06-15/",
            "cloudformation" => "http://cloudformation.amazonaws.com/doc/2010-05-15/",
            _ => "https://amazonaws.com/doc/",
        };
        headers.push(("content-type".into(), "text/xml".into()));
        headers.push(("x-amzn-requestid".into(), request_id.clone()));
        format!(
            "<ErrorResponse xmlns=\"{ns}\">\n  <Error>\n    <Type>{kind}</Type>\n    \
             <Code>{}</Code>\n    <Message>{}</Message>\n  </Error>\n  \
             <RequestId>{request_id}</RequestId>\n</ErrorResponse>\n",
            xml_escape(code),
            xml_escape(message)
        )
    } else {
        let host_id = format!("proxy/{request_id}");
        headers.push(("content-type".into(), "application/xml".into()));
        headers.push(("x-amz-request-id".into(), request_id.clone()));
        headers.push(("x-amz-id-2".into(), host_id.clone()));
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code>\
             <Message>{}</Message><RequestId>{request_id}</RequestId>\
             <HostId>{host_id}</HostId></Error>",
            xml_escape(code),
            xml_escape(message)
        )
    };
    headers.push(("date".into(), http_date()));
    Answer {
        status,
        reason: super::reason(status).to_string(),
        headers,
        body: body.into_bytes(),
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// An IMF-fixdate for `Date` (the SDK's clock-skew check reads it).
fn http_date() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{weekday}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        months[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

// ---------------------------------------------------------------------------------------------
// Identifying calls

/// Operations whose answers StaleRead may replay.
fn is_read(operation: &str) -> bool {
    [
        "Get", "Describe", "List", "Head", "Scan", "Query", "BatchGet",
    ]
    .iter()
    .any(|p| operation.starts_with(p))
}

fn is_query(req: &Request) -> bool {
    header(&req.headers, "content-type")
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
        || form_value(query_of(&req.path), "Action").is_some()
}

fn query_of(path: &str) -> &str {
    path.split_once('?').map_or("", |(_, q)| q)
}

/// `(service, operation, resource)`
fn identify(
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> (String, String, Option<String>) {
    let query = query_of(path);
    let target = header(headers, "x-amz-target");
    let service = header(headers, "authorization")
        .and_then(scope_service)
        .or_else(|| form_value(query, "X-Amz-Credential").and_then(|c| credential_service(&c)))
        .or_else(|| {
            target.map(|t| {
                if t.starts_with("DynamoDB") {
                    "dynamodb".to_string()
                } else if t.starts_with("TrentService") {
                    "kms".to_string()
                } else {
                    "unknown".to_string()
                }
            })
        })
        .unwrap_or_else(|| "unknown".to_string());
    let body_text = String::from_utf8_lossy(body);
    let form = header(headers, "content-type")
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));

    if let Some(target) = target {
        let operation = target.rsplit('.').next().unwrap_or(target).to_string();
        let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let s = |v: &serde_json::Value| v.as_str().map(str::to_string);
        let resource = match service.as_str() {
            "kms" => s(&json["KeyId"]),
            "dynamodb" => s(&json["Key"]["LockId"]["S"])
                .or_else(|| s(&json["Item"]["LockId"]["S"]))
                .or_else(|| s(&json["TableName"])),
            _ => None,
        };
        return (service, operation, resource);
    }
    let action = if form {
        form_value(&body_text, "Action")
    } else {
        None
    }
    .or_else(|| form_value(query, "Action"));
    if let Some(action) = action {
        let params = if form { body_text.as_ref() } else { query };
        let resource = match service.as_str() {
            "iam" => form_value(params, "RoleName"),
            "sts" => form_value(params, "RoleArn"),
            "cloudformation" => form_value(params, "StackName"),
            _ => None,
        };
        return (service, action, resource);
    }
    if service == "s3" || service == "unknown" {
        let host = header(headers, "host").unwrap_or("");
        let (operation, bucket) = s3_operation(method, path, host, headers);
        return (service, operation, bucket);
    }
    (
        service,
        format!("{method} {}", path.split('?').next().unwrap_or("")),
        None,
    )
}

/// The signing name in `Credential=AK/DATE/REGION/SERVICE/aws4_request` (SigV4a has no region).
fn scope_service(authorization: &str) -> Option<String> {
    let at = authorization.find("Credential=")? + "Credential=".len();
    let cred = authorization[at..].split([',', ' ']).next()?;
    credential_service(cred)
}

fn credential_service(credential: &str) -> Option<String> {
    let parts: Vec<&str> = credential.split('/').collect();
    (parts.len() >= 4 && parts.last() == Some(&"aws4_request"))
        .then(|| parts[parts.len() - 2].to_string())
}

/// A parameter of an `application/x-www-form-urlencoded` string (`+` is a space).
fn form_value(params: &str, name: &str) -> Option<String> {
    params.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k) == name).then(|| decode(v))
    })
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// The S3 operation and bucket (path-style, else the first label of a virtual host).
fn s3_operation(
    method: &str,
    path: &str,
    host: &str,
    headers: &[(String, String)],
) -> (String, Option<String>) {
    let (raw_path, query) = path.split_once('?').unwrap_or((path, ""));
    let keys: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| decode(p.split_once('=').map_or(p, |(k, _)| k)))
        .collect();
    let has = |k: &str| keys.iter().any(|q| q == k);
    let hostname = host.rsplit_once(':').map_or(host, |(h, _)| h);
    let virtual_bucket = hostname
        .split_once('.')
        .filter(|(_, rest)| rest.starts_with("s3") || *rest == "localhost")
        .map(|(b, _)| b.to_string());
    let (bucket, object) = match virtual_bucket {
        // Virtual-hosted style: the bucket is in the host, the whole path is the key.
        Some(b) => (Some(b), raw_path.len() > 1),
        None => {
            let mut segments = raw_path.trim_start_matches('/').splitn(2, '/');
            let bucket = segments.next().filter(|b| !b.is_empty()).map(decode);
            (bucket, segments.next().is_some_and(|k| !k.is_empty()))
        }
    };
    if let Some(x_id) = form_value(query, "x-id") {
        return (x_id, bucket);
    }
    let sub = S3_SUBRESOURCES.iter().find(|s| has(s)).copied();
    let operation = match (method, sub) {
        (_, Some(sub)) => s3_subresource_operation(method, sub, object),
        ("GET", None) if bucket.is_none() => Some("ListBuckets"),
        ("GET", None) if has("uploadId") => Some("ListParts"),
        ("GET", None) if object => Some("GetObject"),
        ("GET", None) if form_value(query, "list-type").as_deref() == Some("2") => {
            Some("ListObjectsV2")
        }
        ("GET", None) => Some("ListObjects"),
        ("HEAD", None) if object => Some("HeadObject"),
        ("HEAD", None) => Some("HeadBucket"),
        ("PUT", None)
            if object && has("partNumber") && header(headers, "x-amz-copy-source").is_some() =>
        {
            Some("UploadPartCopy")
        }
        ("PUT", None) if object && has("partNumber") => Some("UploadPart"),
        ("PUT", None) if object && header(headers, "x-amz-copy-source").is_some() => {
            Some("CopyObject")
        }
        ("PUT", None) if object => Some("PutObject"),
        ("PUT", None) => Some("CreateBucket"),
        ("POST", None) if has("uploadId") => Some("CompleteMultipartUpload"),
        ("DELETE", None) if has("uploadId") => Some("AbortMultipartUpload"),
        ("DELETE", None) if object => Some("DeleteObject"),
        ("DELETE", None) => Some("DeleteBucket"),
        _ => None,
    };
    let operation = operation.map_or_else(
        || {
            format!(
                "{method} {}{}",
                if object { "object" } else { "bucket" },
                sub.map(|s| format!("?{s}")).unwrap_or_default()
            )
        },
        str::to_string,
    );
    (operation, bucket)
}

const S3_SUBRESOURCES: &[&str] = &[
    "policy",
    "policyStatus",
    "encryption",
    "ownershipControls",
    "publicAccessBlock",
    "tagging",
    "location",
    "acl",
    "versioning",
    "lifecycle",
    "cors",
    "website",
    "logging",
    "notification",
    "replication",
    "object-lock",
    "accelerate",
    "requestPayment",
    "uploads",
    "versions",
    "attributes",
    "retention",
    "legal-hold",
    "delete",
    "restore",
    "analytics",
    "inventory",
    "metrics",
    "intelligent-tiering",
];

fn s3_subresource_operation(method: &str, sub: &str, object: bool) -> Option<&'static str> {
    Some(match (method, sub, object) {
        ("GET", "policy", _) => "GetBucketPolicy",
        ("PUT", "policy", _) => "PutBucketPolicy",
        ("DELETE", "policy", _) => "DeleteBucketPolicy",
        ("GET", "policyStatus", _) => "GetBucketPolicyStatus",
        ("GET", "encryption", _) => "GetBucketEncryption",
        ("PUT", "encryption", false) => "PutBucketEncryption",
        ("PUT", "encryption", true) => "UpdateObjectEncryption",
        ("DELETE", "encryption", _) => "DeleteBucketEncryption",
        ("GET", "ownershipControls", _) => "GetBucketOwnershipControls",
        ("PUT", "ownershipControls", _) => "PutBucketOwnershipControls",
        ("DELETE", "ownershipControls", _) => "DeleteBucketOwnershipControls",
        ("GET", "publicAccessBlock", _) => "GetPublicAccessBlock",
        ("PUT", "publicAccessBlock", _) => "PutPublicAccessBlock",
        ("DELETE", "publicAccessBlock", _) => "DeletePublicAccessBlock",
        ("GET", "tagging", false) => "GetBucketTagging",
        ("PUT", "tagging", false) => "PutBucketTagging",
        ("DELETE", "tagging", false) => "DeleteBucketTagging",
        ("GET", "tagging", true) => "GetObjectTagging",
        ("PUT", "tagging", true) => "PutObjectTagging",
        ("DELETE", "tagging", true) => "DeleteObjectTagging",
        ("GET", "location", _) => "GetBucketLocation",
        ("GET", "acl", false) => "GetBucketAcl",
        ("PUT", "acl", false) => "PutBucketAcl",
        ("GET", "acl", true) => "GetObjectAcl",
        ("PUT", "acl", true) => "PutObjectAcl",
        ("GET", "versioning", _) => "GetBucketVersioning",
        ("PUT", "versioning", _) => "PutBucketVersioning",
        ("GET", "lifecycle", _) => "GetBucketLifecycleConfiguration",
        ("PUT", "lifecycle", _) => "PutBucketLifecycleConfiguration",
        ("DELETE", "lifecycle", _) => "DeleteBucketLifecycle",
        ("GET", "cors", _) => "GetBucketCors",
        ("PUT", "cors", _) => "PutBucketCors",
        ("DELETE", "cors", _) => "DeleteBucketCors",
        ("GET", "website", _) => "GetBucketWebsite",
        ("PUT", "website", _) => "PutBucketWebsite",
        ("DELETE", "website", _) => "DeleteBucketWebsite",
        ("GET", "logging", _) => "GetBucketLogging",
        ("PUT", "logging", _) => "PutBucketLogging",
        ("GET", "notification", _) => "GetBucketNotificationConfiguration",
        ("PUT", "notification", _) => "PutBucketNotificationConfiguration",
        ("GET", "replication", _) => "GetBucketReplication",
        ("PUT", "replication", _) => "PutBucketReplication",
        ("DELETE", "replication", _) => "DeleteBucketReplication",
        ("GET", "object-lock", _) => "GetObjectLockConfiguration",
        ("PUT", "object-lock", _) => "PutObjectLockConfiguration",
        ("GET", "accelerate", _) => "GetBucketAccelerateConfiguration",
        ("PUT", "accelerate", _) => "PutBucketAccelerateConfiguration",
        ("GET", "requestPayment", _) => "GetBucketRequestPayment",
        ("PUT", "requestPayment", _) => "PutBucketRequestPayment",
        ("GET", "uploads", _) => "ListMultipartUploads",
        ("POST", "uploads", _) => "CreateMultipartUpload",
        ("GET", "versions", _) => "ListObjectVersions",
        ("GET", "attributes", _) => "GetObjectAttributes",
        ("GET", "retention", _) => "GetObjectRetention",
        ("PUT", "retention", _) => "PutObjectRetention",
        ("GET", "legal-hold", _) => "GetObjectLegalHold",
        ("PUT", "legal-hold", _) => "PutObjectLegalHold",
        ("POST", "delete", _) => "DeleteObjects",
        ("POST", "restore", _) => "RestoreObject",
        ("PUT", "analytics", _) => "PutBucketAnalyticsConfiguration",
        ("DELETE", "analytics", _) => "DeleteBucketAnalyticsConfiguration",
        ("PUT", "inventory", _) => "PutBucketInventoryConfiguration",
        ("DELETE", "inventory", _) => "DeleteBucketInventoryConfiguration",
        ("PUT", "metrics", _) => "PutBucketMetricsConfiguration",
        ("DELETE", "metrics", _) => "DeleteBucketMetricsConfiguration",
        ("PUT", "intelligent-tiering", _) => "PutBucketIntelligentTieringConfiguration",
        ("DELETE", "intelligent-tiering", _) => "DeleteBucketIntelligentTieringConfiguration",
        _ => return None,
    })
}
