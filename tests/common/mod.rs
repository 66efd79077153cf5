//! Test harness shared by the integration tests (`mod common;`).
//!
//! - [`moto`]: one moto server per test binary, started lazily, plus [`aws`] SDK clients for it.
//! - [`RuntimeApi`]: a fake Lambda Runtime API that queues events and records results.
//! - [`ResponseServer`]: stands in for CloudFormation's pre-signed ResponseURL.
//! - [`BlackHole`]: an endpoint that accepts connections and never answers.
//! - [`Function`]: the built Lambda binary, run the way Lambda runs it.
//! - [`cfn_event`]: a realistic CloudFormation custom resource event.
//!
//! The servers are plain std threads and std::net, so they need no async runtime. Every child
//! process is spawned from one long-lived thread with `PR_SET_PDEATHSIG`, so it dies with the test
//! process even though statics are never dropped (the signal follows the spawning *thread*).
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, mpsc};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
pub mod lambda;
pub mod proxy;

pub const ACCOUNT_ID: &str = "123456789012";
pub const REGION: &str = "us-east-1";
/// The fake signature in every [`ResponseServer::url`]; it must never appear in logs.
pub const SECRET_SIGNATURE: &str = "secretsig123";
pub const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:vendor-grants";

// ---------------------------------------------------------------------------------------------
// Moto

pub struct Moto {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    pub pid: u32,
}

/// The moto server of this test binary, started on first use.
pub fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(start_moto)
}

fn start_moto() -> Moto {
    const HINT: &str = "run `make test`, which installs moto into .venv \
                        (or set VENDOR_GRANTS_MOTO_SERVER to a moto_server executable)";
    let program = std::env::var("VENDOR_GRANTS_MOTO_SERVER")
        .unwrap_or_else(|_| format!("{}/.venv/bin/moto_server", env!("CARGO_MANIFEST_DIR")));
    let mut cmd = Command::new(&program);
    cmd.args(["-H", "127.0.0.1", "-p", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = spawn_tied(cmd)
        .unwrap_or_else(|e| panic!("cannot start moto server {program:?}: {e}; {HINT}"));
    let stderr = child.stderr.take().expect("moto stderr is piped");
    let pid = child.id();

    // Read stderr for good (a full pipe would block moto), reporting the port once; reap moto
    // if it ever exits. PDEATHSIG ends it with the test process.
    let early = Arc::new(Mutex::new(String::new()));
    let (port_tx, port_rx) = mpsc::channel::<u16>();
    let early_w = early.clone();
    thread::spawn(move || {
        let mut reader = BufReader::new(stderr);
        let mut line = Vec::new();
        let mut port_tx = Some(port_tx);
        while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
            if let Some(tx) = &port_tx {
                let text = String::from_utf8_lossy(&line);
                lock(&early_w).push_str(&text);
                if let Some(port) = parse_moto_port(&text) {
                    let _ = tx.send(port);
                    port_tx = None; // from here on, just drain
                }
            }
            line.clear();
        }
        let _ = child.wait();
    });

    let deadline = Instant::now() + Duration::from_secs(30);
    let port = port_rx
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .unwrap_or_else(|_| {
            panic!(
                "moto server {program:?} did not report its port within 30 s; {HINT}\nstderr:\n{}",
                lock(&early)
            )
        });
    let endpoint = format!("http://127.0.0.1:{port}");
    loop {
        let ready = HttpClient::connect(&format!("127.0.0.1:{port}"))
            .and_then(|mut c| c.request("GET", "/moto-api/config", &[("Connection", "close")], b""))
            .is_ok_and(|r| (200..300).contains(&r.status)); // moto 5.2.5 answers 201
        if ready {
            break;
        }
        if Instant::now() > deadline {
            panic!(
                "moto server at {endpoint} did not answer GET /moto-api/config within 30 s; {HINT}"
            );
        }
        thread::sleep(Duration::from_millis(50));
    }
    Moto { endpoint, pid }
}

/// Finds the port in moto's ` * Running on http://127.0.0.1:PORT` (ANSI codes around it).
fn parse_moto_port(line: &str) -> Option<u16> {
    const MARK: &str = "Running on http://127.0.0.1:";
    let rest = &line[line.find(MARK)? + MARK.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[derive(Clone, Debug)]
pub struct Aws {
    pub s3: aws_sdk_s3::Client,
    pub kms: aws_sdk_kms::Client,
    pub iam: aws_sdk_iam::Client,
    pub ddb: aws_sdk_dynamodb::Client,
}

/// The SDK configuration for `endpoint`: us-east-1, dummy static credentials.
pub async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    let creds = aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "harness");
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(vendor_grants::aws::http_client())
        .region(aws_config::Region::new(REGION))
        .credentials_provider(creds)
        .endpoint_url(endpoint)
        .load()
        .await
}

/// The function's own clients (`vendor_grants::aws::Clients`) for `endpoint`.
pub async fn function_clients(endpoint: &str) -> vendor_grants::aws::Clients {
    vendor_grants::aws::Clients::from_config(&sdk_config(endpoint).await)
}

/// SDK clients for `endpoint`: us-east-1, dummy static credentials, path-style S3.
pub async fn aws(endpoint: &str) -> Aws {
    let conf = sdk_config(endpoint).await;
    let s3conf = aws_sdk_s3::config::Builder::from(&conf)
        .force_path_style(true)
        .build();
    Aws {
        s3: aws_sdk_s3::Client::from_conf(s3conf),
        kms: aws_sdk_kms::Client::new(&conf),
        iam: aws_sdk_iam::Client::new(&conf),
        ddb: aws_sdk_dynamodb::Client::new(&conf),
    }
}

/// A lowercase name valid as a bucket, role or table name, unique per call and per process:
/// `PREFIX-PID-N`.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let prefix: String = prefix
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("{prefix}-{}-{n}", std::process::id())
}

pub async fn create_bucket(aws: &Aws, name: &str) {
    aws.s3
        .create_bucket()
        .bucket(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create_bucket {name}: {e:?}"));
}

/// The bucket policy, or None when the bucket has none.
pub async fn bucket_policy(aws: &Aws, name: &str) -> Option<Value> {
    use aws_sdk_s3::error::ProvideErrorMetadata;
    match aws.s3.get_bucket_policy().bucket(name).send().await {
        Ok(out) => {
            let text = out.policy().unwrap_or_default();
            Some(
                serde_json::from_str(text)
                    .unwrap_or_else(|e| panic!("policy of {name}: {e}: {text}")),
            )
        }
        Err(e) if e.as_service_error().and_then(|s| s.code()) == Some("NoSuchBucketPolicy") => None,
        Err(e) => panic!("get_bucket_policy {name}: {e:?}"),
    }
}

pub async fn put_bucket_policy(aws: &Aws, name: &str, policy: &Value) {
    aws.s3
        .put_bucket_policy()
        .bucket(name)
        .policy(policy.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("put_bucket_policy {name}: {e:?}"));
}

/// A new customer-managed key: `(key_id, key_arn)`.
pub async fn create_key(aws: &Aws) -> (String, String) {
    let out = aws.kms.create_key().send().await.expect("kms create_key");
    let meta = out.key_metadata().expect("create_key returns KeyMetadata");
    (
        meta.key_id().to_string(),
        meta.arn().expect("key metadata has an ARN").to_string(),
    )
}

/// The key's policy (PolicyName "default", which moto requires).
pub async fn key_policy(aws: &Aws, key_id: &str) -> Value {
    let out = aws
        .kms
        .get_key_policy()
        .key_id(key_id)
        .policy_name("default")
        .send()
        .await
        .unwrap_or_else(|e| panic!("get_key_policy {key_id}: {e:?}"));
    let text = out.policy().expect("get_key_policy returns a policy");
    serde_json::from_str(text).unwrap_or_else(|e| panic!("key policy of {key_id}: {e}: {text}"))
}

/// A lease table as `VENDOR_GRANTS_LOCK_TABLE` expects: partition key `LockId` (S), on demand.
pub async fn create_lock_table(aws: &Aws, name: &str) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    aws.ddb
        .create_table()
        .table_name(name)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("LockId")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attribute definition"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("LockId")
                .key_type(KeyType::Hash)
                .build()
                .expect("key schema"),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create_table {name}: {e:?}"));
}

/// Leases still held in a lock table (its `written/...` records of the last writes and its
/// `grant#...` registry records do not count).
pub async fn leases_left(aws: &Aws, table: &str) -> usize {
    let items = aws
        .ddb
        .scan()
        .table_name(table)
        .send()
        .await
        .unwrap_or_else(|e| panic!("scan {table}: {e:?}"));
    items
        .items()
        .iter()
        .filter(|i| {
            i.get("LockId")
                .and_then(|v| v.as_s().ok())
                .is_some_and(|id| !id.starts_with("written/") && !id.starts_with("grant#"))
        })
        .count()
}

/// Percent-decodes an IAM policy document (RFC 3986: `+` stays `+`).
pub fn url_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .expect("percent-decoded text is UTF-8")
        .into_owned()
}

// ---------------------------------------------------------------------------------------------
// Lambda Runtime API

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InvocationResult {
    Response(Vec<u8>),
    Error(Vec<u8>),
}

impl InvocationResult {
    pub fn body(&self) -> &[u8] {
        match self {
            Self::Response(b) | Self::Error(b) => b,
        }
    }
}

#[derive(Default)]
struct RuntimeState {
    /// (request id, deadline in epoch ms, event body)
    queue: VecDeque<(String, u64, Vec<u8>)>,
    results: HashMap<String, InvocationResult>,
    /// When each GET /next arrived (a function asking for work).
    polls: Vec<Instant>,
    /// When each result arrived, by request id.
    answered: HashMap<String, Instant>,
}

pub struct RuntimeApi {
    server: Server,
    state: Arc<(Mutex<RuntimeState>, Condvar)>,
}

const RUNTIME_PREFIX: &str = "/2018-06-01/runtime/invocation/";

impl RuntimeApi {
    pub fn start() -> RuntimeApi {
        let state = Arc::new((Mutex::new(RuntimeState::default()), Condvar::new()));
        let st = state.clone();
        let server =
            Server::start(move |req, stream, stopped| runtime_handle(&st, req, stream, stopped));
        RuntimeApi { server, state }
    }

    /// `127.0.0.1:PORT`, the form `AWS_LAMBDA_RUNTIME_API` takes.
    pub fn addr(&self) -> String {
        self.server.addr.clone()
    }

    /// Queues an event due `deadline` from now; returns its request id.
    pub fn invoke(&self, event: Value, deadline: Duration) -> String {
        let id = uuid_like();
        let due = SystemTime::now() + deadline;
        let due_ms = due
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_millis() as u64;
        let (m, cv) = &*self.state;
        lock(m)
            .queue
            .push_back((id.clone(), due_ms, event.to_string().into_bytes()));
        cv.notify_all();
        id
    }

    /// When the `n`th GET /next (from 1) arrived, waiting up to `timeout` for it.
    pub fn wait_poll(&self, n: usize, timeout: Duration) -> Option<Instant> {
        let (m, cv) = &*self.state;
        let guard = lock(m);
        let (guard, _) = cv
            .wait_timeout_while(guard, timeout, |s| s.polls.len() < n)
            .unwrap_or_else(|e| e.into_inner());
        guard.polls.get(n.checked_sub(1)?).copied()
    }

    /// When the result of `request_id` arrived, if it has.
    pub fn answered_at(&self, request_id: &str) -> Option<Instant> {
        lock(&self.state.0).answered.get(request_id).copied()
    }

    /// Waits for the function's /response or /error for `request_id`.
    pub fn wait_result(&self, request_id: &str, timeout: Duration) -> Option<InvocationResult> {
        let (m, cv) = &*self.state;
        let guard = lock(m);
        let (guard, _) = cv
            .wait_timeout_while(guard, timeout, |s| !s.results.contains_key(request_id))
            .unwrap_or_else(|e| e.into_inner());
        guard.results.get(request_id).cloned()
    }
}

fn runtime_handle(
    state: &(Mutex<RuntimeState>, Condvar),
    req: Recorded,
    stream: &TcpStream,
    stopped: &AtomicBool,
) -> Option<Reply> {
    let (m, cv) = state;
    let rest = req.path.strip_prefix(RUNTIME_PREFIX).unwrap_or("");
    if req.method == "GET" && rest == "next" {
        // Long poll. Hand an event only to a client that is still there, so a killed function
        // does not swallow the next one.
        let mut s = lock(m);
        s.polls.push(Instant::now());
        cv.notify_all();
        loop {
            if stopped.load(Ordering::SeqCst) || peer_closed(stream) {
                return None;
            }
            if !s.queue.is_empty() {
                break;
            }
            s = cv
                .wait_timeout(s, Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let (id, deadline_ms, body) = s.queue.pop_front().expect("queue is not empty");
        return Some(Reply {
            status: 200,
            headers: vec![
                ("Lambda-Runtime-Aws-Request-Id".into(), id),
                ("Lambda-Runtime-Deadline-Ms".into(), deadline_ms.to_string()),
                (
                    "Lambda-Runtime-Invoked-Function-Arn".into(),
                    FUNCTION_ARN.into(),
                ),
                ("Content-Type".into(), "application/json".into()),
            ],
            body,
        });
    }
    if req.method == "POST" {
        let result = if let Some(id) = rest.strip_suffix("/response") {
            Some((id, InvocationResult::Response(req.body.clone())))
        } else {
            rest.strip_suffix("/error")
                .map(|id| (id, InvocationResult::Error(req.body.clone())))
        };
        if let Some((id, result)) = result {
            let mut s = lock(m);
            s.answered.insert(id.to_string(), Instant::now());
            s.results.insert(id.to_string(), result);
            drop(s);
            cv.notify_all();
            return Some(Reply::new(202, br#"{"status":"OK"}"#));
        }
    }
    Some(Reply::new(404, b"not found"))
}

/// True when the peer has closed the connection (a non-blocking peek reads EOF or fails).
fn peer_closed(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return true;
    }
    let closed = match stream.peek(&mut [0u8; 1]) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != io::ErrorKind::WouldBlock,
    };
    closed || stream.set_nonblocking(false).is_err()
}

// ---------------------------------------------------------------------------------------------
// ResponseURL stand-in and black hole

/// One HTTP request as received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// Path with query, e.g. `/cfn/x?X-Amz-Signature=...`.
    pub path: String,
    /// Header names lowercase, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The body parsed as JSON (panics with the body otherwise).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

#[derive(Default)]
struct ResponseState {
    requests: Vec<Recorded>,
    /// (remaining, status) for fail_next
    fail: (usize, u16),
}

pub struct ResponseServer {
    server: Server,
    state: Arc<(Mutex<ResponseState>, Condvar)>,
}

impl ResponseServer {
    pub fn start() -> ResponseServer {
        let state = Arc::new((Mutex::new(ResponseState::default()), Condvar::new()));
        let st = state.clone();
        let server = Server::start(move |req, _, _| {
            let (m, cv) = &*st;
            let mut s = lock(m);
            s.requests.push(req);
            cv.notify_all();
            let status = match &mut s.fail {
                (n, status) if *n > 0 => {
                    *n -= 1;
                    *status
                }
                _ => 200,
            };
            Some(Reply::new(status, b""))
        });
        ResponseServer { server, state }
    }

    /// A pre-signed-looking URL for `path`, carrying [`SECRET_SIGNATURE`].
    pub fn url(&self, path: &str) -> String {
        format!(
            "http://{}/{}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=7200&X-Amz-Signature={SECRET_SIGNATURE}",
            self.server.addr,
            path.trim_start_matches('/')
        )
    }

    /// Answers the next `n` requests with `status` (and records them as usual).
    pub fn fail_next(&self, n: usize, status: u16) {
        lock(&self.state.0).fail = (n, status);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.state.0).requests.clone()
    }

    /// Waits until at least `n` requests arrived or `timeout` passed; returns all so far.
    pub fn wait_requests(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
        let (m, cv) = &*self.state;
        let (guard, _) = cv
            .wait_timeout_while(lock(m), timeout, |s| s.requests.len() < n)
            .unwrap_or_else(|e| e.into_inner());
        guard.requests.clone()
    }
}

/// Accepts TCP connections and never answers; they stay open until it is dropped.
pub struct BlackHole {
    addr: String,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl BlackHole {
    pub fn start() -> BlackHole {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr").to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (stop2, conns2) = (stop.clone(), conns.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    lock(&conns2).push(conn);
                }
            }
        });
        BlackHole { addr, stop, conns }
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many connections were accepted so far.
    pub fn accepted(&self) -> usize {
        lock(&self.conns).len()
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr); // wake accept()
        for c in lock(&self.conns).drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The function process

pub struct Function {
    child: Child,
    logs: Arc<Mutex<String>>,
}

impl Function {
    /// Runs the built Lambda binary against `runtime`, with Lambda's environment plus `env`
    /// (which overrides, e.g. `AWS_ENDPOINT_URL`).
    pub fn spawn(runtime: &RuntimeApi, env: &[(&str, &str)]) -> Function {
        Self::spawn_program(
            env!("CARGO_BIN_EXE_vendor-grants-lambda"),
            &[],
            runtime,
            env,
        )
    }

    /// Like [`Function::spawn`] with another program (for the harness's own tests).
    ///
    /// The environment starts empty, as in Lambda: only `PATH`, `SSL_CERT_FILE`, `SSL_CERT_DIR`,
    /// `RUST_BACKTRACE` and `LLVM_PROFILE_FILE` are passed through from the test process.
    pub fn spawn_program(
        program: &str,
        args: &[&str],
        runtime: &RuntimeApi,
        env: &[(&str, &str)],
    ) -> Function {
        let mut cmd = Command::new(program);
        cmd.args(args).env_clear();
        for key in [
            "PATH",
            "SSL_CERT_FILE",
            "SSL_CERT_DIR",
            "RUST_BACKTRACE",
            "LLVM_PROFILE_FILE",
        ] {
            if let Some(v) = std::env::var_os(key) {
                cmd.env(key, v);
            }
        }
        let api = runtime.addr();
        let lambda_env = [
            ("AWS_LAMBDA_RUNTIME_API", api.as_str()),
            ("AWS_LAMBDA_FUNCTION_NAME", "vendor-grants"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_REGION", REGION),
            ("AWS_DEFAULT_REGION", REGION),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("RUST_LOG", "info"),
            ("VENDOR_GRANTS_RESPONSE_HOSTS", "127.0.0.1"),
        ];
        cmd.envs(lambda_env.iter().chain(env).copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = spawn_tied(cmd).unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        let logs = Arc::new(Mutex::new(String::new()));
        let out: Box<dyn Read + Send> = Box::new(child.stdout.take().expect("piped stdout"));
        let err: Box<dyn Read + Send> = Box::new(child.stderr.take().expect("piped stderr"));
        for pipe in [out, err] {
            let logs = logs.clone();
            thread::spawn(move || {
                let mut reader = BufReader::new(pipe);
                let mut line = Vec::new();
                while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                    lock(&logs).push_str(&String::from_utf8_lossy(&line));
                    line.clear();
                }
            });
        }
        Function { child, logs }
    }

    /// Everything the process wrote to stdout and stderr so far, line-interleaved.
    pub fn logs(&self) -> String {
        lock(&self.logs).clone()
    }

    /// Waits until the logs contain `needle`; false on timeout.
    pub fn wait_logs(&self, needle: &str, timeout: Duration) -> bool {
        poll(timeout, || self.logs().contains(needle))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the process has ended.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        assert_free_of_debug_shapes("the function's output", &self.logs());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// CloudFormation events

/// The StackId for a stack name (an ARN is returned unchanged). The GUID is derived from the
/// name, so every event for one stack name carries the same StackId.
pub fn stack_arn(stack: &str) -> String {
    if stack.starts_with("arn:") {
        return stack.to_string();
    }
    // FNV-1a, twice with different seeds, for 128 stable bits.
    let fnv = |seed: u64| {
        stack.bytes().fold(seed, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
    };
    let bits = (u128::from(fnv(0xcbf2_9ce4_8422_2325)) << 64) | u128::from(fnv(0x84222325cbf29ce4));
    format!(
        "arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{stack}/{}",
        format_uuid(bits)
    )
}

/// A CloudFormation custom resource event. `stack_id` is a stack name or a full StackId ARN
/// (see [`stack_arn`]); `ServiceToken` is added to the properties as CloudFormation does.
pub fn cfn_event(
    request_type: &str,
    response_url: &str,
    stack_id: &str,
    logical_id: &str,
    physical_id: Option<&str>,
    props: Value,
    old_props: Option<Value>,
) -> Value {
    let with_token = |mut p: Value| {
        if let Some(obj) = p.as_object_mut() {
            obj.insert("ServiceToken".into(), FUNCTION_ARN.into());
        }
        p
    };
    let mut event = json!({
        "RequestType": request_type,
        "ServiceToken": FUNCTION_ARN,
        "ResponseURL": response_url,
        "StackId": stack_arn(stack_id),
        "RequestId": uuid_like(),
        "LogicalResourceId": logical_id,
        "ResourceType": "Custom::VendorGrant",
        "ResourceProperties": with_token(props),
    });
    if let Some(id) = physical_id {
        event["PhysicalResourceId"] = id.into();
    }
    if let Some(old) = old_props {
        event["OldResourceProperties"] = with_token(old);
    }
    event
}

// ---------------------------------------------------------------------------------------------
// Minimal HTTP/1.1 (Content-Length or chunked bodies, keep-alive)

/// A keep-alive HTTP/1.1 client connection, for raw protocol tests and readiness probes.
pub struct HttpClient {
    reader: BufReader<TcpStream>,
    host: String,
}

#[derive(Clone, Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Header names lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

impl HttpClient {
    /// Connects to `host:port` (read timeout 30 s).
    pub fn connect(addr: &str) -> io::Result<HttpClient> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(HttpClient {
            reader: BufReader::new(stream),
            host: addr.to_string(),
        })
    }

    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.reader.get_ref().set_read_timeout(timeout)
    }

    /// Sends one request (with Host and Content-Length) and reads the response.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<RawResponse> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.host);
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let stream = self.reader.get_mut();
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        stream.flush()?;
        let (start, headers) = read_head(&mut self.reader)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"))?;
        let status = start
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad_data(format!("bad status line {start:?}")))?;
        let body = if header(&headers, "content-length").is_some()
            || header(&headers, "transfer-encoding").is_some()
        {
            read_body(&mut self.reader, &headers)?
        } else {
            let mut rest = Vec::new();
            self.reader.read_to_end(&mut rest)?;
            rest
        };
        Ok(RawResponse {
            status,
            headers,
            body,
        })
    }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn new(status: u16, body: &[u8]) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.to_vec(),
        }
    }
}

/// A thread-per-connection HTTP server on 127.0.0.1:0. The handler gets the request, the
/// connection (to notice a client leaving) and the stop flag; `None` closes the connection.
struct Server {
    addr: String,
    stop: Arc<AtomicBool>,
}

impl Server {
    fn start<H>(handler: H) -> Server
    where
        H: Fn(Recorded, &TcpStream, &AtomicBool) -> Option<Reply> + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr").to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let handler = Arc::new(handler);
        let stop2 = stop.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                // See the proxy: no 40 ms Nagle/delayed-ACK stall per answer.
                let _ = conn.set_nodelay(true);
                let (handler, stop) = (handler.clone(), stop2.clone());
                thread::spawn(move || {
                    let _ = serve_connection(conn, &*handler, &stop);
                });
            }
        });
        Server { addr, stop }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr); // wake accept()
    }
}

fn serve_connection<H>(stream: TcpStream, handler: &H, stop: &AtomicBool) -> io::Result<()>
where
    H: Fn(Recorded, &TcpStream, &AtomicBool) -> Option<Reply>,
{
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream.try_clone()?;
    while let Some((start, headers)) = read_head(&mut reader)? {
        let mut parts = start.split_whitespace();
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let close = header(&headers, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let body = read_body(&mut reader, &headers)?;
        let req = Recorded {
            method: method.to_string(),
            path: path.to_string(),
            headers,
            body,
        };
        let Some(reply) = handler(req, &stream, stop) else {
            break;
        };
        let mut head = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
        for (k, v) in &reply.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n", reply.body.len()));
        head.push_str(if close {
            "Connection: close\r\n\r\n"
        } else {
            "\r\n"
        });
        out.write_all(head.as_bytes())?;
        out.write_all(&reply.body)?;
        out.flush()?;
        if close {
            break;
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
    Ok(())
}

/// A start line and the headers (names lowercased).
type Head = (String, Vec<(String, String)>);

/// Reads a start line and headers; None on EOF before the first byte.
fn read_head<R: BufRead>(r: &mut R) -> io::Result<Option<Head>> {
    let mut start = String::new();
    if r.read_line(&mut start)? == 0 {
        return Ok(None);
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "EOF in headers",
            ));
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| bad_data(format!("bad header {line:?}")))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    Ok(Some((start.trim_end().to_string(), headers)))
}

fn read_body<R: BufRead>(r: &mut R, headers: &[(String, String)]) -> io::Result<Vec<u8>> {
    let chunked = header(headers, "transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            r.read_line(&mut size)?;
            let size = size.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| bad_data(format!("bad chunk size {size:?}")))?;
            if size == 0 {
                while read_crlf_line(r)? {} // trailers up to the empty line
                return Ok(body);
            }
            let at = body.len();
            body.resize(at + size, 0);
            r.read_exact(&mut body[at..])?;
            read_crlf_line(r)?;
        }
    }
    let len = match header(headers, "content-length") {
        Some(v) => v
            .parse()
            .map_err(|_| bad_data(format!("bad content-length {v:?}")))?,
        None => 0,
    };
    body.resize(len, 0);
    r.read_exact(&mut body)?;
    Ok(body)
}

/// Reads one line; true if it had content besides the line ending.
fn read_crlf_line<R: BufRead>(r: &mut R) -> io::Result<bool> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "EOF in chunked body",
        ));
    }
    Ok(!line.trim_end().is_empty())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn bad_data(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

// ---------------------------------------------------------------------------------------------
// Small utilities

/// Polls `cond` every 20 ms until it holds (true) or `timeout` passes (false).
pub fn poll(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A random version-4-style UUID string.
pub fn uuid_like() -> String {
    format_uuid((fastrand::u128(..) & !(0xf << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62))
}

fn format_uuid(b: u128) -> String {
    let h = format!("{b:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Spawns `cmd` so that the child gets SIGKILL when the test process exits.
///
/// PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, and test threads come
/// and go, so every child is spawned by one thread that lives as long as the process.
fn spawn_tied(mut cmd: Command) -> io::Result<Child> {
    type Job = (Command, mpsc::Sender<io::Result<Child>>);
    static SPAWNER: OnceLock<mpsc::Sender<Job>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name("harness-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("start the spawner thread");
        tx
    });
    // SAFETY: the closure runs in the forked child before exec and only calls prctl(2), which
    // is async-signal-safe; it allocates nothing and touches no lock.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (tx, rx) = mpsc::channel();
    spawner.send((cmd, tx)).expect("spawner thread is alive");
    rx.recv().expect("spawner thread answers")
}

/// The account and region of [`FUNCTION_ARN`], as the function takes them from its invocation.
pub fn home() -> vendor_grants::lifecycle::Home {
    vendor_grants::lifecycle::Home::from_function_arn(FUNCTION_ARN)
        .expect("FUNCTION_ARN is a function ARN")
}

/// The grant id a lifecycle call acted on, as text (every call in these tests names one).
pub fn gid(done: &vendor_grants::lifecycle::Done) -> String {
    done.grant_id
        .as_ref()
        .map(ToString::to_string)
        .expect("the event named a grant")
}

/// The Sids of a policy's statements (none for no policy).
pub fn sids(policy: Option<&Value>) -> std::collections::BTreeSet<String> {
    policy
        .and_then(|p| p["Statement"].as_array())
        .map(|s| {
            s.iter()
                .filter_map(|s| s["Sid"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The `StatementIds` attribute of an answer, as a set.
pub fn statement_ids(answer: &Value) -> std::collections::BTreeSet<String> {
    answer["Data"]["StatementIds"]
        .as_str()
        .unwrap_or("")
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// A bucket set up as AlphaSense's guide asks (SSE-KMS with `key_arn`, Block Public Access,
/// ACLs disabled), each setting only when asked for.
pub async fn alphasense_bucket(
    aws: &Aws,
    key_arn: &str,
    encrypted: bool,
    block: bool,
    enforced: bool,
) -> String {
    use aws_sdk_s3::types::*;
    let bucket = unique("vg-alpha");
    create_bucket(aws, &bucket).await;
    if encrypted {
        let by_default = ServerSideEncryptionByDefault::builder()
            .sse_algorithm(ServerSideEncryption::AwsKms)
            .kms_master_key_id(key_arn)
            .build()
            .unwrap();
        let config = ServerSideEncryptionConfiguration::builder()
            .rules(
                ServerSideEncryptionRule::builder()
                    .apply_server_side_encryption_by_default(by_default)
                    .build(),
            )
            .build()
            .unwrap();
        aws.s3
            .put_bucket_encryption()
            .bucket(&bucket)
            .server_side_encryption_configuration(config)
            .send()
            .await
            .unwrap();
    }
    if block {
        let pab = PublicAccessBlockConfiguration::builder()
            .block_public_acls(true)
            .ignore_public_acls(true)
            .block_public_policy(true)
            .restrict_public_buckets(true)
            .build();
        aws.s3
            .put_public_access_block()
            .bucket(&bucket)
            .public_access_block_configuration(pab)
            .send()
            .await
            .unwrap();
    }
    if enforced {
        let controls = OwnershipControls::builder()
            .rules(
                OwnershipControlsRule::builder()
                    .object_ownership(ObjectOwnership::BucketOwnerEnforced)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        aws.s3
            .put_bucket_ownership_controls()
            .bucket(&bucket)
            .ownership_controls(controls)
            .send()
            .await
            .unwrap();
    }
    bucket
}

// ---------------------------------------------------------------------------------------------
// No SDK Debug dumps where a person reads

/// What an SDK error's `Debug` form looks like; none may reach a Reason, a log line or the CLI.
pub const DEBUG_SHAPES: &[&str] = &[
    "Unhandled(",
    "ErrorMetadata {",
    "DispatchFailure",
    "ConnectorError",
    "SdkBody",
];

/// The Debug shapes in `text`, each with the line it is on.
pub fn debug_shapes_in(text: &str) -> Vec<String> {
    text.lines()
        .filter(|line| DEBUG_SHAPES.iter().any(|shape| line.contains(shape)))
        .map(|line| line.chars().take(400).collect())
        .collect()
}

/// Fails the test when `text` holds a Debug shape. Checked for every function's output (when the
/// [`Function`] is dropped) and every Reason a [`ResponseServer`] received (when it is dropped),
/// so every suite using the harness checks it; not while the test is already failing.
pub fn assert_free_of_debug_shapes(what: &str, text: &str) {
    if thread::panicking() {
        return;
    }
    let found = debug_shapes_in(text);
    assert!(
        found.is_empty(),
        "{what} shows an SDK Debug form to a person:\n{}",
        found.join("\n")
    );
}

impl Drop for ResponseServer {
    fn drop(&mut self) {
        let reasons: Vec<String> = self
            .requests()
            .iter()
            .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
            .filter_map(|answer| answer["Reason"].as_str().map(str::to_string))
            .collect();
        assert_free_of_debug_shapes("a Reason sent to CloudFormation", &reasons.join("\n"));
    }
}

/// An endpoint that answers every request with one canned answer: something that is not AWS (a
/// proxy's 404 page, a load balancer's 500) in the way.
pub struct Canned {
    server: Server,
}

impl Canned {
    pub fn start(status: u16, content_type: &str, body: &str) -> Canned {
        let (content_type, body) = (content_type.to_string(), body.as_bytes().to_vec());
        let server = Server::start(move |_, _, _| {
            let mut reply = Reply::new(status, &body);
            reply
                .headers
                .push(("Content-Type".into(), content_type.clone()));
            Some(reply)
        });
        Canned { server }
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server.addr)
    }
}

/// `http://127.0.0.1:PORT` where nothing listens: connections are refused.
pub fn refusing_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    drop(listener);
    format!("http://{addr}")
}

/// A KMS HMAC key (HMAC_256, GENERATE_VERIFY_MAC), as the deploy template's RegistryKey; its ARN.
pub async fn hmac_key(kms: &aws_sdk_kms::Client) -> String {
    use aws_sdk_kms::types::{KeySpec, KeyUsageType};
    let out = kms
        .create_key()
        .key_spec(KeySpec::Hmac256)
        .key_usage(KeyUsageType::GenerateVerifyMac)
        .send()
        .await
        .unwrap();
    out.key_metadata().unwrap().arn().unwrap().to_string()
}
