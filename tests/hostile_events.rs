//! The hostile-event corpus: every case in `tests/fixtures/hostile-events/*.json` (see its
//! README) through the built Lambda binary, as Lambda runs it, against moto.
//!
//! Around the function:
//! - the ResponseURL listener of the harness (`primary`), redirecting listeners, and tripwires
//!   on 127.0.0.2 and [::1] at the listener's port;
//! - a proxy tripwire in HTTP_PROXY / HTTPS_PROXY (NO_PROXY=127.0.0.1) that stands in for every
//!   other host on the internet, so a PUT to `evil.example` or to someone's S3 bucket is seen;
//! - a relay between the function and moto that records every AWS call (to prove "refused before
//!   any AWS call" and that S3 calls carry ExpectedBucketOwner) and answers AccessDenied for the
//!   other account's bucket unless ExpectedBucketOwner names that account, as S3 does.
//!
//! After every case: the answer (or its absence), the prepared bucket, key and other-account
//! bucket byte-for-byte as before, no IAM role, nothing in the lock table, nothing secret and no
//! huge line in the logs, the process alive. All cases run; the failures are listed at the end.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    ACCOUNT_ID, Aws, FUNCTION_ARN, Function, InvocationResult, REGION, ResponseServer, RuntimeApi,
    SECRET_SIGNATURE, aws, cfn_event, create_bucket, create_key, create_lock_table, stack_arn,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

const CORPUS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/hostile-events");
/// The account that owns `other_account_bucket`.
const OTHER_ACCOUNT: &str = "111122223333";
const MAX_BODY: usize = 4096;
/// No log line may be longer (CloudWatch cuts events at 256 KB; a line this long is a value
/// logged whole).
const MAX_LOG_LINE: usize = 64 * 1024;
/// No event may make the function log more than this.
const MAX_CASE_LOGS: usize = 256 * 1024;
/// Echoed fields shorter than this must come back exactly.
const ECHO_LIMIT: usize = 1024;
const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);
const STACK: &str = "hostile-events";
const LOGICAL_ID: &str = "DataVendorAccess";
/// The order the groups run in (each is one function process).
const GROUP_ORDER: &[&str] = &["loopback", "restricted", "default-hosts"];

// ---------------------------------------------------------------------------------------------
// The corpus as data

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Setup {
    #[allow(dead_code)]
    about: String,
    bases: BTreeMap<String, Value>,
    groups: BTreeMap<String, BTreeMap<String, String>>,
    update_physical_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CorpusFile {
    kind: String,
    #[serde(default)]
    group: Option<String>,
    #[allow(dead_code)]
    about: String,
    cases: Vec<Case>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    /// What it attacks, for people reading the data.
    #[allow(dead_code)]
    attack: String,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    group: Option<String>,
    /// A base of `setup.json` (default `telus`).
    #[serde(default)]
    base: Option<String>,
    /// Create (default), Update (adds PhysicalResourceId and OldResourceProperties = the base)
    /// or Delete (adds PhysicalResourceId).
    #[serde(default)]
    request: Option<String>,
    /// Shorthand for setting /ResponseURL.
    #[serde(default)]
    url: Option<String>,
    /// JSON pointers removed from the base event, before `set`.
    #[serde(default)]
    remove: Vec<String>,
    /// JSON pointer -> value, set in order.
    #[serde(default)]
    set: Map<String, Value>,
    /// The whole event instead of the base event (may be any JSON value, null included).
    #[serde(default, deserialize_with = "present")]
    raw: Option<Value>,
    #[serde(default)]
    deadline_secs: Option<u64>,
    expect: Expect,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "kebab-case")]
enum Answer {
    /// No request to any listener.
    None,
    /// Exactly one FAILED answer at the case's listener.
    Failed,
    /// Exactly one SUCCESS answer at the case's listener.
    Success,
    /// Either of `none` and `failed`, and nothing anywhere else.
    FailedOrNone,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[serde(rename_all = "kebab-case")]
enum AwsCalls {
    #[default]
    Any,
    None,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Expect {
    answer: Answer,
    #[serde(default = "primary_listener")]
    listener: String,
    /// Every one must be in the Reason.
    #[serde(default)]
    reason: Vec<String>,
    /// At least one must be in the Reason.
    #[serde(default)]
    reason_any: Vec<String>,
    #[serde(default)]
    aws_calls: AwsCalls,
    /// Besides every ExternalId value of 6 characters or more, strings that must appear neither
    /// in the logs nor in the answer.
    #[serde(default)]
    secrets: Vec<String>,
    /// A control that must change the bucket policy (the driver puts it back).
    #[serde(default)]
    writes: bool,
    /// A control: the proxy must see a request for this `host:port`.
    #[serde(default)]
    proxy_canary: Option<String>,
}

fn primary_listener() -> String {
    "primary".to_string()
}

struct LoadedCase {
    case: Case,
    kind: String,
    group: String,
    file: String,
}

fn load_corpus() -> (Setup, Vec<LoadedCase>) {
    let dir = Path::new(CORPUS_DIR);
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
    };
    let setup: Setup =
        serde_json::from_str(&read("setup.json")).unwrap_or_else(|e| panic!("setup.json: {e}"));
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .expect("read the corpus directory")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".json") && n != "setup.json")
        .collect();
    files.sort();
    let mut cases = Vec::new();
    for file in files {
        let parsed: CorpusFile =
            serde_json::from_str(&read(&file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        for case in parsed.cases {
            let group = case
                .group
                .clone()
                .or_else(|| parsed.group.clone())
                .unwrap_or_else(|| "loopback".to_string());
            assert!(
                setup.groups.contains_key(&group),
                "{file}: case {} names group {group}, which setup.json does not define",
                case.name
            );
            let kind = case.kind.clone().unwrap_or_else(|| parsed.kind.clone());
            cases.push(LoadedCase {
                case,
                kind,
                group,
                file: file.clone(),
            });
        }
    }
    let mut names = std::collections::HashSet::new();
    for c in &cases {
        assert!(
            names.insert(c.case.name.clone()),
            "{}: the case name {} is used twice",
            c.file,
            c.case.name
        );
    }
    (setup, cases)
}

// ---------------------------------------------------------------------------------------------
// Building events

type Vars = HashMap<String, String>;

/// Replaces every `{{name}}`.
fn subst(text: &str, vars: &Vars) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .unwrap_or_else(|| panic!("unclosed placeholder in {text:?}"));
        let name = &after[..end];
        let value = vars
            .get(name)
            .unwrap_or_else(|| panic!("unknown placeholder {{{{{name}}}}}"));
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

fn arg<'a>(spec: &'a Value, key: &str, generator: &str) -> &'a Value {
    spec.get(key)
        .unwrap_or_else(|| panic!("{generator} needs `{key}`: {spec}"))
}

fn arg_usize(spec: &Value, key: &str, generator: &str) -> usize {
    arg(spec, key, generator)
        .as_u64()
        .unwrap_or_else(|| panic!("{generator}: `{key}` must be a count")) as usize
}

/// Substitutes placeholders and runs the generators (`$repeat`, `$list`, `$nest`, `$object`,
/// `$base_event`) of the data.
fn expand(value: &Value, vars: &Vars, base_event: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(subst(s, vars)),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| expand(v, vars, base_event)).collect())
        }
        Value::Object(map) if map.len() == 1 && map.keys().all(|k| k.starts_with('$')) => {
            let (generator, spec) = map.iter().next().expect("one entry");
            generate(generator, spec, vars, base_event)
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (subst(k, vars), expand(v, vars, base_event)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn generate(generator: &str, spec: &Value, vars: &Vars, base_event: &Value) -> Value {
    let text = |key: &str| {
        spec.get(key)
            .and_then(Value::as_str)
            .map(|s| subst(s, vars))
            .unwrap_or_default()
    };
    match generator {
        "$repeat" => {
            let unit = arg(spec, "text", generator)
                .as_str()
                .expect("$repeat: text is a string");
            let times = arg_usize(spec, "times", generator);
            Value::String(format!(
                "{}{}{}",
                text("before"),
                unit.repeat(times),
                text("after")
            ))
        }
        "$list" => {
            let item = expand(arg(spec, "item", generator), vars, base_event);
            Value::Array(vec![item; arg_usize(spec, "times", generator)])
        }
        "$nest" => {
            let mut v = expand(arg(spec, "leaf", generator), vars, base_event);
            let key = spec.get("key").and_then(Value::as_str).unwrap_or("a");
            let objects = match spec.get("container").and_then(Value::as_str) {
                Some("object") => true,
                Some("array") | None => false,
                Some(other) => panic!("$nest: container {other:?}"),
            };
            for _ in 0..arg_usize(spec, "depth", generator) {
                v = if objects {
                    // Not json!: it would serialise `v` again at every level.
                    let mut m = Map::new();
                    m.insert(key.to_string(), v);
                    Value::Object(m)
                } else {
                    Value::Array(vec![v])
                };
            }
            v
        }
        "$object" => {
            let mut object = match spec.get("base").map(|b| expand(b, vars, base_event)) {
                Some(Value::Object(m)) => m,
                None => Map::new(),
                Some(other) => panic!("$object: base must be an object, not {other}"),
            };
            for entry in spec
                .get("keys")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let key = match expand(arg(entry, "key", generator), vars, base_event) {
                    Value::String(k) => k,
                    other => panic!("$object: a key must be a string, not {other}"),
                };
                object.insert(
                    key,
                    expand(arg(entry, "value", generator), vars, base_event),
                );
            }
            if let Some(many) = spec.get("many") {
                let prefix = many.get("prefix").and_then(Value::as_str).unwrap_or("K");
                let value = expand(arg(many, "value", generator), vars, base_event);
                for i in 0..arg_usize(many, "count", generator) {
                    object.insert(format!("{prefix}{i}"), value.clone());
                }
            }
            Value::Object(object)
        }
        "$base_event" => base_event.clone(),
        other => panic!("unknown generator {other}"),
    }
}

fn pointer_tokens(pointer: &str) -> Vec<String> {
    assert!(
        pointer.starts_with('/'),
        "{pointer:?} is not a JSON pointer"
    );
    pointer[1..]
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect()
}

fn set_pointer(root: &mut Value, pointer: &str, value: Value) {
    let tokens = pointer_tokens(pointer);
    let (last, parents) = tokens.split_last().expect("a pointer has a token");
    let mut at = root;
    for t in parents {
        at = match at {
            Value::Object(m) => m.entry(t.clone()).or_insert_with(|| json!({})),
            other => panic!("set {pointer}: {t} is under a {other}, not an object"),
        };
    }
    match at {
        Value::Object(m) => {
            m.insert(last.clone(), value);
        }
        other => panic!("set {pointer}: the parent is {other}, not an object"),
    }
}

fn remove_pointer(root: &mut Value, pointer: &str) {
    let tokens = pointer_tokens(pointer);
    let (last, parents) = tokens.split_last().expect("a pointer has a token");
    let mut at = root;
    for t in parents {
        at = at
            .get_mut(t.as_str())
            .unwrap_or_else(|| panic!("remove {pointer}: no {t}"));
    }
    let removed = at.as_object_mut().and_then(|m| m.remove(last.as_str()));
    assert!(removed.is_some(), "remove {pointer}: nothing there");
}

fn build_event(setup: &Setup, case: &Case, vars: &Vars) -> Value {
    let base_name = case.base.as_deref().unwrap_or("telus");
    let props = setup
        .bases
        .get(base_name)
        .unwrap_or_else(|| panic!("case {}: no base {base_name}", case.name));
    let props = expand(props, vars, &Value::Null);
    let request = case.request.as_deref().unwrap_or("Create");
    let physical = subst(&setup.update_physical_id, vars);
    let (physical, old) = match request {
        "Create" => (None, None),
        "Update" => (Some(physical.as_str()), Some(props.clone())),
        "Delete" => (Some(physical.as_str()), None),
        other => panic!("case {}: request {other}", case.name),
    };
    let base = cfn_event(
        request,
        &vars["url"],
        STACK,
        LOGICAL_ID,
        physical,
        props,
        old,
    );
    if let Some(raw) = &case.raw {
        return expand(raw, vars, &base);
    }
    let mut event = base.clone();
    for pointer in &case.remove {
        remove_pointer(&mut event, pointer);
    }
    if let Some(url) = &case.url {
        event["ResponseURL"] = Value::String(subst(url, vars));
    }
    for (pointer, value) in &case.set {
        let value = expand(value, vars, &base);
        set_pointer(&mut event, pointer, value);
    }
    event
}

/// Every string of 6 characters or more under an `ExternalId` of the (old) properties.
fn external_ids(event: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for key in ["ResourceProperties", "OldResourceProperties"] {
        let Some(value) = event.get(key).and_then(|p| p.get("ExternalId")) else {
            continue;
        };
        let mut stack = vec![value];
        while let Some(v) = stack.pop() {
            match v {
                Value::String(s) if s.chars().count() >= 6 => out.push(s.clone()),
                Value::Array(items) => stack.extend(items),
                Value::Object(m) => stack.extend(m.values()),
                _ => {}
            }
        }
    }
    out
}

/// What to look for so that a secret is found however it was written: as is, JSON-escaped and
/// Rust-debug-escaped, each cut to its first 32 characters (a secret logged shortened leaks too).
fn probes(secret: &str) -> Vec<String> {
    let json = serde_json::to_string(secret).expect("a string serialises");
    let debug = format!("{secret:?}");
    let mut out: Vec<String> = [
        secret.to_string(),
        json[1..json.len() - 1].to_string(),
        debug[1..debug.len() - 1].to_string(),
    ]
    .into_iter()
    .map(|s| s.chars().take(32).collect())
    .collect();
    out.sort();
    out.dedup();
    out
}

/// `text` cut to about `max` bytes, control characters escaped (the report stays one line each).
fn clip(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let shown: String = text[..end]
        .chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect();
    if end < text.len() {
        format!("{shown}…({} bytes)", text.len())
    } else {
        shown
    }
}

// ---------------------------------------------------------------------------------------------
// Listeners: redirectors and tripwires

#[derive(Clone, Debug)]
struct Hit {
    /// The request line (or the first bytes of whatever arrived).
    line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

#[derive(Clone)]
enum SpyMode {
    /// Records what arrives and answers 403.
    Trip,
    /// Records the request and answers `status` with `Location: location`.
    Redirect { status: u16, location: String },
}

struct Spy {
    addr: String,
    hits: Arc<Mutex<Vec<Hit>>>,
    stop: Arc<AtomicBool>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Spy {
    fn start(bind: &str, mode: SpyMode) -> io::Result<Spy> {
        let listener = TcpListener::bind(bind)?;
        let addr = listener.local_addr()?.to_string();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (hits2, stop2) = (hits.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (hits, mode) = (hits2.clone(), mode.clone());
                thread::spawn(move || spy_connection(conn, &hits, &mode));
            }
        });
        Ok(Spy { addr, hits, stop })
    }

    fn hits(&self) -> Vec<Hit> {
        lock(&self.hits).clone()
    }
}

impl Drop for Spy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
    }
}

fn spy_connection(conn: TcpStream, hits: &Mutex<Vec<Hit>>, mode: &SpyMode) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let Ok(clone) = conn.try_clone() else { return };
    let mut reader = BufReader::new(clone.take(1 << 22));
    let mut first = Vec::new();
    let _ = reader.read_until(b'\n', &mut first);
    if first.is_empty() {
        return; // a wake-up connect, or a client that sent nothing
    }
    let mut headers = Vec::new();
    loop {
        let mut line = Vec::new();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        if text.is_empty() {
            break;
        }
        if let Some((k, v)) = text.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let len = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0)
        .min(1 << 20);
    let mut body = vec![0; len];
    let _ = reader.read_exact(&mut body);
    lock(hits).push(Hit {
        line: String::from_utf8_lossy(&first).trim_end().to_string(),
        headers,
        body,
    });
    let reply = match mode {
        SpyMode::Trip => {
            "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
        }
        SpyMode::Redirect { status, location } => format!(
            "HTTP/1.1 {status} Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
    };
    let mut conn = conn;
    let _ = conn.write_all(reply.as_bytes());
    let _ = conn.flush();
    let _ = conn.shutdown(Shutdown::Both);
}

// ---------------------------------------------------------------------------------------------
// The AWS relay

#[derive(Clone, Debug)]
struct AwsCall {
    service: String,
    /// `GET /bucket?policy`, `TrentService.DescribeKey`, `Action=CreateRole`...
    what: String,
    expected_owner: Option<String>,
}

impl AwsCall {
    fn describe(&self) -> String {
        match &self.expected_owner {
            Some(o) => format!("{} {} (ExpectedBucketOwner {o})", self.service, self.what),
            None => format!("{} {}", self.service, self.what),
        }
    }
}

struct AwsRelay {
    endpoint: String,
    calls: Arc<Mutex<Vec<AwsCall>>>,
}

impl AwsRelay {
    /// Relays to `upstream` (`http://HOST:PORT`); S3 calls on `foreign_bucket` without
    /// ExpectedBucketOwner = OTHER_ACCOUNT get AccessDenied.
    fn start(upstream: &str, foreign_bucket: String) -> AwsRelay {
        let upstream = upstream
            .strip_prefix("http://")
            .expect("moto speaks http")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the relay");
        let endpoint = format!("http://{}", listener.local_addr().expect("relay addr"));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let calls2 = calls.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (calls, upstream, foreign) =
                    (calls2.clone(), upstream.clone(), foreign_bucket.clone());
                thread::spawn(move || {
                    let _ = relay_connection(conn, &upstream, &calls, &foreign);
                });
            }
        });
        AwsRelay { endpoint, calls }
    }

    fn calls(&self) -> Vec<AwsCall> {
        lock(&self.calls).clone()
    }
}

fn relay_connection(
    client: TcpStream,
    upstream: &str,
    calls: &Mutex<Vec<AwsCall>>,
    foreign_bucket: &str,
) -> io::Result<()> {
    let server = TcpStream::connect(upstream)?;
    let mut to_server = server.try_clone()?;
    let to_client = Arc::new(Mutex::new(client.try_clone()?));
    {
        let to_client = to_client.clone();
        let mut from_server = server;
        thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match from_server.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if lock(&to_client).write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = lock(&to_client).shutdown(Shutdown::Both);
        });
    }
    let mut reader = BufReader::new(client);
    loop {
        let mut head = Vec::new();
        let mut start = Vec::new();
        if reader.read_until(b'\n', &mut start)? == 0 {
            break;
        }
        head.extend_from_slice(&start);
        let mut headers: Vec<(String, String)> = Vec::new();
        loop {
            let mut line = Vec::new();
            if reader.read_until(b'\n', &mut line)? == 0 {
                return Ok(());
            }
            head.extend_from_slice(&line);
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end();
            if text.is_empty() {
                break;
            }
            if let Some((k, v)) = text.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let start = String::from_utf8_lossy(&start).trim_end().to_string();
        let mut parts = start.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let service = header("authorization")
            .and_then(|a| {
                let cred = a.split("Credential=").nth(1)?;
                Some(cred.split('/').nth(3)?.to_string())
            })
            .unwrap_or_else(|| "?".to_string());
        let expected_owner = header("x-amz-expected-bucket-owner");
        let refuse = service == "s3"
            && path
                .trim_start_matches('/')
                .split(['/', '?'])
                .next()
                .is_some_and(|b| b == foreign_bucket)
            && expected_owner.as_deref() != Some(OTHER_ACCOUNT);

        let mut body_start = Vec::new();
        let sink: &mut dyn Write = if refuse {
            &mut io::sink()
        } else {
            to_server.write_all(&head)?;
            &mut to_server
        };
        copy_body(&mut reader, sink, &headers, &mut body_start)?;
        let what = match header("x-amz-target") {
            Some(t) => t,
            None if service == "iam" || service == "sts" => String::from_utf8_lossy(&body_start)
                .split('&')
                .next()
                .unwrap_or("")
                .to_string(),
            None => format!("{method} {path}"),
        };
        lock(calls).push(AwsCall {
            service: service.clone(),
            what,
            expected_owner,
        });
        if refuse {
            let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code>\
                        <Message>Access Denied</Message><RequestId>relay</RequestId></Error>";
            let body = if method == "HEAD" { "" } else { body };
            let reply = format!(
                "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nx-amz-request-id: relay\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            );
            lock(&to_client).write_all(reply.as_bytes())?;
        }
    }
    let _ = to_server.shutdown(Shutdown::Write);
    Ok(())
}

/// Copies one request body (Content-Length or chunked) from `r` to `w`; keeps its first bytes.
fn copy_body<R: BufRead>(
    r: &mut R,
    w: &mut dyn Write,
    headers: &[(String, String)],
    first: &mut Vec<u8>,
) -> io::Result<()> {
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    let mut keep = |bytes: &[u8]| {
        let room = 256usize.saturating_sub(first.len());
        first.extend_from_slice(&bytes[..bytes.len().min(room)]);
    };
    if chunked {
        loop {
            let mut size_line = Vec::new();
            r.read_until(b'\n', &mut size_line)?;
            w.write_all(&size_line)?;
            let text = String::from_utf8_lossy(&size_line);
            let size = usize::from_str_radix(text.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "chunk size"))?;
            if size == 0 {
                loop {
                    let mut line = Vec::new();
                    r.read_until(b'\n', &mut line)?;
                    w.write_all(&line)?;
                    if line.is_empty() || line == b"\r\n" || line == b"\n" {
                        return Ok(());
                    }
                }
            }
            let mut chunk = vec![0; size + 2];
            r.read_exact(&mut chunk)?;
            keep(&chunk[..size]);
            w.write_all(&chunk)?;
        }
    }
    let len = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    keep(&body);
    w.write_all(&body)?;
    w.flush()
}

// ---------------------------------------------------------------------------------------------
// The world the corpus runs in

struct Prepared {
    bucket: String,
    other_bucket: String,
    key_id: String,
    table: String,
    bucket_policy: Option<String>,
    other_bucket_policy: Option<String>,
    key_policy: String,
    roles: Vec<String>,
}

struct World {
    aws: Aws,
    tokio: tokio::runtime::Runtime,
    setup: Setup,
    prepared: Prepared,
    relay: AwsRelay,
    primary: ResponseServer,
    primary_addr: String,
    /// name -> spy; the proxy is "proxy".
    spies: BTreeMap<String, Spy>,
    vars: Vars,
}

/// Makes moto act as OTHER_ACCOUNT for one S3 call.
fn as_other_account(req: &mut aws_sdk_s3::config::http::HttpRequest) {
    req.headers_mut().insert("x-moto-account-id", OTHER_ACCOUNT);
}

async fn raw_bucket_policy(aws: &Aws, bucket: &str) -> Result<Option<String>, String> {
    use aws_sdk_s3::error::ProvideErrorMetadata;
    match aws.s3.get_bucket_policy().bucket(bucket).send().await {
        Ok(out) => Ok(out.policy().map(str::to_string)),
        Err(e) if e.as_service_error().and_then(|s| s.code()) == Some("NoSuchBucketPolicy") => {
            Ok(None)
        }
        Err(e) => Err(format!("GetBucketPolicy {bucket}: {e:?}")),
    }
}

async fn raw_key_policy(aws: &Aws, key_id: &str) -> Result<String, String> {
    aws.kms
        .get_key_policy()
        .key_id(key_id)
        .policy_name("default")
        .send()
        .await
        .map(|o| o.policy().unwrap_or_default().to_string())
        .map_err(|e| format!("GetKeyPolicy: {e:?}"))
}

async fn role_names(aws: &Aws) -> Result<Vec<String>, String> {
    let out = aws
        .iam
        .list_roles()
        .max_items(1000)
        .send()
        .await
        .map_err(|e| format!("ListRoles: {e:?}"))?;
    let mut names: Vec<String> = out
        .roles()
        .iter()
        .map(|r| r.role_name().to_string())
        .collect();
    names.sort();
    Ok(names)
}

async fn table_items(aws: &Aws, table: &str) -> Result<Vec<String>, String> {
    let out = aws
        .ddb
        .scan()
        .table_name(table)
        .send()
        .await
        .map_err(|e| format!("Scan: {e:?}"))?;
    Ok(out
        .items()
        .iter()
        .map(|i| {
            i.get("LockId")
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_else(|| format!("{i:?}"))
        })
        .collect())
}

impl World {
    fn start(setup: Setup) -> World {
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let moto = common::moto();
        let aws = tokio.block_on(aws(&moto.endpoint));
        let bucket = common::unique("hostile");
        let other_bucket = common::unique("hostile-other-account");
        let missing_bucket = common::unique("hostile-missing");
        let table = common::unique("hostile-locks");
        let alias_name = format!("alias/{}", common::unique("hostile"));
        let (key_id, key_arn) = tokio.block_on(async {
            create_bucket(&aws, &bucket).await;
            let foreign = json!({"Version": "2012-10-17", "Statement": [
                {"Sid": "Auditor", "Effect": "Allow",
                 "Principal": {"AWS": "arn:aws:iam::444455556666:root"},
                 "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::{bucket}/audit/*")},
                {"Sid": "VGcorpReadOnly", "Effect": "Allow",
                 "Principal": {"AWS": "arn:aws:iam::444455556666:root"},
                 "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::{bucket}/corp/*")},
                {"Sid": "VG0123456789abcdefBucketObjects", "Effect": "Deny",
                 "Principal": "*", "Action": "s3:DeleteObject",
                 "Resource": format!("arn:aws:s3:::{bucket}/*")},
                {"Sid": "VGfedcba9876543210BucketList", "Effect": "Allow",
                 "Principal": {"AWS": "arn:aws:iam::999988887777:root"},
                 "Action": "s3:ListBucket", "Resource": format!("arn:aws:s3:::{bucket}")}
            ]});
            common::put_bucket_policy(&aws, &bucket, &foreign).await;

            aws.s3
                .create_bucket()
                .bucket(&other_bucket)
                .customize()
                .mutate_request(as_other_account)
                .send()
                .await
                .unwrap_or_else(|e| panic!("create the other account's bucket: {e:?}"));
            let other = json!({"Version": "2012-10-17", "Statement": [
                {"Sid": "LetTheFunctionIn", "Effect": "Allow",
                 "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT_ID}:root")},
                 "Action": ["s3:GetBucketPolicy", "s3:PutBucketPolicy"],
                 "Resource": format!("arn:aws:s3:::{other_bucket}")}
            ]});
            aws.s3
                .put_bucket_policy()
                .bucket(&other_bucket)
                .policy(other.to_string())
                .customize()
                .mutate_request(as_other_account)
                .send()
                .await
                .unwrap_or_else(|e| panic!("the other account's bucket policy: {e:?}"));

            let (key_id, key_arn) = create_key(&aws).await;
            let key_policy = json!({"Version": "2012-10-17", "Id": "key-default-1", "Statement": [
                {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
                 "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT_ID}:root")},
                 "Action": "kms:*", "Resource": "*"},
                {"Sid": "VGcorpKeyUse", "Effect": "Allow",
                 "Principal": {"AWS": "arn:aws:iam::444455556666:root"},
                 "Action": "kms:Decrypt", "Resource": "*"}
            ]});
            aws.kms
                .put_key_policy()
                .key_id(&key_id)
                .policy_name("default")
                .policy(key_policy.to_string())
                .send()
                .await
                .unwrap_or_else(|e| panic!("put_key_policy: {e:?}"));
            aws.kms
                .create_alias()
                .alias_name(&alias_name)
                .target_key_id(&key_id)
                .send()
                .await
                .unwrap_or_else(|e| panic!("create_alias: {e:?}"));
            create_lock_table(&aws, &table).await;
            (key_id, key_arn)
        });
        let prepared = tokio.block_on(async {
            Prepared {
                bucket_policy: raw_bucket_policy(&aws, &bucket)
                    .await
                    .expect("bucket policy"),
                other_bucket_policy: raw_bucket_policy(&aws, &other_bucket)
                    .await
                    .expect("other bucket policy"),
                key_policy: raw_key_policy(&aws, &key_id).await.expect("key policy"),
                roles: role_names(&aws).await.expect("roles"),
                bucket: bucket.clone(),
                other_bucket: other_bucket.clone(),
                key_id: key_id.clone(),
                table: table.clone(),
            }
        });
        assert!(prepared.bucket_policy.is_some() && prepared.other_bucket_policy.is_some());

        let relay = AwsRelay::start(&moto.endpoint, other_bucket.clone());
        let primary = ResponseServer::start();
        let primary_addr = primary
            .url("x")
            .strip_prefix("http://")
            .and_then(|r| r.split('/').next())
            .expect("the listener's URL is http://HOST:PORT/...")
            .to_string();
        let port = primary_addr.rsplit(':').next().expect("a port").to_string();

        let mut spies = BTreeMap::new();
        let add = |spies: &mut BTreeMap<String, Spy>, name: &str, bind: &str, mode: SpyMode| {
            match Spy::start(bind, mode) {
                Ok(spy) => {
                    spies.insert(name.to_string(), spy);
                }
                Err(e) => eprintln!("hostile events: no {name} tripwire on {bind}: {e}"),
            }
        };
        add(&mut spies, "proxy", "127.0.0.1:0", SpyMode::Trip);
        add(&mut spies, "redirect-target", "127.0.0.1:0", SpyMode::Trip);
        add(
            &mut spies,
            "loopback-2",
            &format!("127.0.0.2:{port}"),
            SpyMode::Trip,
        );
        add(
            &mut spies,
            "ipv6-loopback",
            &format!("[::1]:{port}"),
            SpyMode::Trip,
        );
        let target = spies["redirect-target"].addr.clone();
        let stolen = format!("stolen?X-Amz-Signature={SECRET_SIGNATURE}stolen");
        for (name, status, location) in [
            ("redirect-301", 301, format!("http://evil.example/{stolen}")),
            ("redirect-302", 302, format!("http://{target}/{stolen}")),
            ("redirect-307", 307, format!("http://{target}/{stolen}")),
            (
                "redirect-308",
                308,
                format!("http://127.0.0.2:{port}/{stolen}"),
            ),
        ] {
            add(
                &mut spies,
                name,
                "127.0.0.1:0",
                SpyMode::Redirect { status, location },
            );
        }

        let mut vars = Vars::new();
        for (k, v) in [
            ("bucket", bucket.clone()),
            ("other_account_bucket", other_bucket.clone()),
            ("missing_bucket", missing_bucket),
            ("key_id", key_id.clone()),
            ("key_arn", key_arn),
            ("alias_name", alias_name.clone()),
            (
                "alias_arn",
                format!("arn:aws:kms:{REGION}:{ACCOUNT_ID}:{alias_name}"),
            ),
            ("account", ACCOUNT_ID.to_string()),
            ("region", REGION.to_string()),
            ("function_arn", FUNCTION_ARN.to_string()),
            ("stack_id", stack_arn(STACK)),
            ("primary", primary_addr.clone()),
            ("port", port.clone()),
            ("pad_1mb", "a".repeat(1 << 20)),
        ] {
            vars.insert(k.to_string(), v);
        }
        for name in [
            "redirect-301",
            "redirect-302",
            "redirect-307",
            "redirect-308",
        ] {
            if let Some(spy) = spies.get(name) {
                vars.insert(name.replace('-', "_"), spy.addr.clone());
            }
        }
        World {
            aws,
            tokio,
            setup,
            prepared,
            relay,
            primary,
            primary_addr,
            spies,
            vars,
        }
    }

    fn group_env(&self, group: &str) -> Vec<(String, String)> {
        let proxy = format!("http://{}", self.spies["proxy"].addr);
        let mut env = vec![
            ("AWS_ENDPOINT_URL".to_string(), self.relay.endpoint.clone()),
            (
                "VENDOR_GRANTS_LOCK_TABLE".to_string(),
                self.prepared.table.clone(),
            ),
            ("HTTP_PROXY".to_string(), proxy.clone()),
            ("HTTPS_PROXY".to_string(), proxy),
            ("NO_PROXY".to_string(), "127.0.0.1".to_string()),
        ];
        for (k, v) in &self.setup.groups[group] {
            env.push((k.clone(), v.clone()));
        }
        env
    }

    /// Every request each listener got so far.
    fn seen(&self) -> BTreeMap<String, Vec<Hit>> {
        let mut out = BTreeMap::new();
        let primary = self
            .primary
            .requests()
            .into_iter()
            .map(|r| Hit {
                line: format!("{} {}", r.method, r.path),
                headers: r.headers,
                body: r.body,
            })
            .collect();
        out.insert("primary".to_string(), primary);
        for (name, spy) in &self.spies {
            out.insert(name.clone(), spy.hits());
        }
        out
    }

    /// The requests that arrived since `before` (an earlier [`World::seen`]), as (listener, hit).
    fn seen_since(&self, before: &BTreeMap<String, Vec<Hit>>) -> Vec<(String, Hit)> {
        let mut out = Vec::new();
        for (name, hits) in self.seen() {
            let skip = before.get(&name).map_or(0, Vec::len);
            out.extend(hits.into_iter().skip(skip).map(|h| (name.clone(), h)));
        }
        out
    }

    /// What differs from the prepared state; puts the prepared state back.
    fn check_and_restore(&self, problems: &mut Vec<String>, writes_expected: bool) {
        let p = &self.prepared;
        let aws = &self.aws;
        self.tokio.block_on(async {
            let mut wrote = false;
            match raw_bucket_policy(aws, &p.bucket).await {
                Ok(now) if now == p.bucket_policy => {}
                Ok(now) => {
                    wrote = true;
                    if !writes_expected {
                        problems.push(format!(
                            "the prepared bucket policy changed: {}",
                            clip(now.as_deref().unwrap_or("(deleted)"), 600)
                        ));
                    }
                    let restored = aws
                        .s3
                        .put_bucket_policy()
                        .bucket(&p.bucket)
                        .policy(p.bucket_policy.clone().unwrap_or_default())
                        .send()
                        .await;
                    if let Err(e) = restored {
                        problems.push(format!("could not restore the bucket policy: {e:?}"));
                    }
                }
                Err(e) => problems.push(e),
            }
            match raw_bucket_policy(aws, &p.other_bucket).await {
                Ok(now) if now == p.other_bucket_policy => {}
                Ok(now) => {
                    problems.push(format!(
                        "the other account's bucket policy changed: {}",
                        clip(now.as_deref().unwrap_or("(deleted)"), 600)
                    ));
                    let _ = aws
                        .s3
                        .put_bucket_policy()
                        .bucket(&p.other_bucket)
                        .policy(p.other_bucket_policy.clone().unwrap_or_default())
                        .customize()
                        .mutate_request(as_other_account)
                        .send()
                        .await;
                }
                Err(e) => problems.push(e),
            }
            match raw_key_policy(aws, &p.key_id).await {
                Ok(now) if now == p.key_policy => {}
                Ok(now) => {
                    if !writes_expected {
                        problems.push(format!(
                            "the prepared key policy changed: {}",
                            clip(&now, 600)
                        ));
                    }
                    let _ = aws
                        .kms
                        .put_key_policy()
                        .key_id(&p.key_id)
                        .policy_name("default")
                        .policy(p.key_policy.clone())
                        .send()
                        .await;
                }
                Err(e) => problems.push(e),
            }
            match role_names(aws).await {
                Ok(now) => {
                    for role in now.iter().filter(|r| !p.roles.contains(r)) {
                        problems.push(format!("an IAM role was created: {role}"));
                        delete_role(aws, role).await;
                    }
                }
                Err(e) => problems.push(e),
            }
            match table_items(aws, &p.table).await {
                Ok(items) if items.is_empty() => {}
                Ok(items) => {
                    // A grant that was written leaves its write records and its registry record.
                    let of_a_write =
                        |i: &String| i.starts_with("written/") || i.starts_with("grant#");
                    if !(writes_expected && items.iter().all(of_a_write)) {
                        problems.push(format!("the lock table holds {items:?}"));
                    }
                    for id in items {
                        let _ = aws
                            .ddb
                            .delete_item()
                            .table_name(&p.table)
                            .key(
                                "LockId",
                                aws_sdk_dynamodb::types::AttributeValue::S(id.clone()),
                            )
                            .send()
                            .await;
                    }
                }
                Err(e) => problems.push(e),
            }
            if writes_expected && !wrote {
                problems.push("the control grant wrote nothing: the write check is blind".into());
            }
        });
    }
}

async fn delete_role(aws: &Aws, role: &str) {
    if let Ok(out) = aws.iam.list_role_policies().role_name(role).send().await {
        for name in out.policy_names() {
            let _ = aws
                .iam
                .delete_role_policy()
                .role_name(role)
                .policy_name(name)
                .send()
                .await;
        }
    }
    if let Ok(out) = aws
        .iam
        .list_attached_role_policies()
        .role_name(role)
        .send()
        .await
    {
        for p in out.attached_policies() {
            if let Some(arn) = p.policy_arn() {
                let _ = aws
                    .iam
                    .detach_role_policy()
                    .role_name(role)
                    .policy_arn(arn)
                    .send()
                    .await;
            }
        }
    }
    let _ = aws.iam.delete_role().role_name(role).send().await;
}

// ---------------------------------------------------------------------------------------------
// One function process per group

struct Proc {
    group: String,
    env: Vec<(String, String)>,
    runtime: RuntimeApi,
    function: Function,
    /// How far the logs have been checked.
    checked: usize,
    /// Problems that belong to no case (a crash between cases, logs after the last).
    problems: Vec<String>,
}

impl Proc {
    fn start(world: &World, group: &str) -> Proc {
        let env = world.group_env(group);
        let runtime = RuntimeApi::start();
        let function = spawn_function(&runtime, &env);
        Proc {
            group: group.to_string(),
            env,
            runtime,
            function,
            checked: 0,
            problems: Vec::new(),
        }
    }

    fn respawn(&mut self) {
        self.function = spawn_function(&self.runtime, &self.env);
        self.checked = 0;
    }

    /// The logs once they stop growing.
    fn settled_logs(&self) -> String {
        let mut logs = self.function.logs();
        for _ in 0..25 {
            thread::sleep(Duration::from_millis(15));
            let again = self.function.logs();
            if again.len() == logs.len() {
                return again;
            }
            logs = again;
        }
        logs
    }
}

fn spawn_function(runtime: &RuntimeApi, env: &[(String, String)]) -> Function {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Function::spawn(runtime, &env)
}

/// Log checks for one slice of the logs.
fn check_logs(slice: &str, secrets: &[String], problems: &mut Vec<String>) {
    if let Some(at) = slice.find(SECRET_SIGNATURE) {
        let from = slice[..at]
            .char_indices()
            .rev()
            .nth(80)
            .map_or(0, |(i, _)| i);
        problems.push(format!(
            "the ResponseURL's signature is in the logs: …{}",
            clip(&slice[from..], 200)
        ));
    }
    for secret in secrets {
        if let Some(p) = probes(secret)
            .into_iter()
            .find(|p| slice.contains(p.as_str()))
        {
            problems.push(format!("a secret is in the logs: {}", clip(&p, 40)));
        }
    }
    let long: Vec<&str> = slice.lines().filter(|l| l.len() > MAX_LOG_LINE).collect();
    if let Some(longest) = long.iter().max_by_key(|l| l.len()) {
        problems.push(format!(
            "{} log line(s) over {MAX_LOG_LINE} bytes, the longest {} bytes: {}",
            long.len(),
            longest.len(),
            clip(longest, 160)
        ));
    }
    if slice.len() > MAX_CASE_LOGS {
        problems.push(format!(
            "{} bytes of logs for one event (at most {MAX_CASE_LOGS})",
            slice.len()
        ));
    }
}

/// Checks one answer body against the event and the expectation.
fn check_answer(
    hit: &Hit,
    event: &Value,
    status: &str,
    expect: &Expect,
    secrets: &[String],
    problems: &mut Vec<String>,
) {
    if !hit.line.starts_with("PUT ") {
        problems.push(format!("the answer is not a PUT: {}", clip(&hit.line, 120)));
    }
    let text = String::from_utf8_lossy(&hit.body);
    if hit.body.len() > MAX_BODY {
        problems.push(format!(
            "the answer is {} bytes (at most {MAX_BODY})",
            hit.body.len()
        ));
    }
    if text.contains(SECRET_SIGNATURE) {
        problems.push("the answer carries the ResponseURL's signature".into());
    }
    for secret in secrets {
        if probes(secret).iter().any(|p| text.contains(p.as_str())) {
            problems.push(format!(
                "the answer repeats a secret ({})",
                clip(secret, 24)
            ));
        }
    }
    let body: Value = match serde_json::from_slice(&hit.body) {
        Ok(Value::Object(m)) => Value::Object(m),
        Ok(other) => {
            problems.push(format!(
                "the answer is not a JSON object: {}",
                clip(&other.to_string(), 200)
            ));
            return;
        }
        Err(e) => {
            problems.push(format!(
                "the answer is not JSON ({e}): {}",
                clip(&text, 200)
            ));
            return;
        }
    };
    if body["Status"] != status {
        problems.push(format!(
            "Status {} (expected {status}); Reason: {}",
            body["Status"],
            clip(body["Reason"].as_str().unwrap_or(""), 300)
        ));
    }
    let reason = body["Reason"].as_str();
    match reason {
        None => problems.push("the answer has no Reason string".into()),
        Some(r) if status == "FAILED" && r.trim().is_empty() => {
            problems.push("a FAILED answer with an empty Reason".into())
        }
        _ => {}
    }
    let reason = reason.unwrap_or("");
    if status == "FAILED" {
        for needle in &expect.reason {
            if !reason.contains(needle.as_str()) {
                problems.push(format!(
                    "the Reason does not name {needle:?}: {}",
                    clip(reason, 300)
                ));
            }
        }
        if !expect.reason_any.is_empty()
            && !expect
                .reason_any
                .iter()
                .any(|n| reason.contains(n.as_str()))
        {
            problems.push(format!(
                "the Reason names none of {:?}: {}",
                expect.reason_any,
                clip(reason, 300)
            ));
        }
    }
    match body["PhysicalResourceId"].as_str() {
        Some(p) if !p.is_empty() => {
            if status == "SUCCESS"
                && let Some(sent) = event.get("PhysicalResourceId").and_then(Value::as_str)
                && p != sent
            {
                problems.push(format!(
                    "PhysicalResourceId {} is not the one sent ({})",
                    clip(p, 100),
                    clip(sent, 100)
                ));
            }
        }
        _ => problems.push(format!(
            "no PhysicalResourceId: {}",
            clip(&body["PhysicalResourceId"].to_string(), 100)
        )),
    }
    for field in ["StackId", "RequestId", "LogicalResourceId"] {
        match (
            body[field].as_str(),
            event.get(field).and_then(Value::as_str),
        ) {
            (None, _) => problems.push(format!("the answer's {field} is not a string")),
            (Some(got), Some(sent)) if sent.len() <= ECHO_LIMIT && got != sent => {
                problems.push(format!(
                    "the answer's {field} {} is not the event's {}",
                    clip(got, 100),
                    clip(sent, 100)
                ))
            }
            _ => {}
        }
    }
}

struct Outcome {
    name: String,
    kind: String,
    group: String,
    problems: Vec<String>,
    /// For `failed-or-none`: which of the two the function chose.
    chose: Option<&'static str>,
}

fn run_case(world: &World, proc: &mut Proc, loaded: &LoadedCase, n: usize) -> Outcome {
    let case = &loaded.case;
    let expect = &case.expect;
    let mut vars = world.vars.clone();
    let path = format!("hostile/{n:03}-{}", case.name);
    let sig = format!(
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=7200&X-Amz-Signature={SECRET_SIGNATURE}c{n:03}"
    );
    vars.insert(
        "url".into(),
        format!("http://{}/{path}?{sig}", world.primary_addr),
    );
    vars.insert("path".into(), path);
    vars.insert("sig".into(), sig);
    let event = build_event(&world.setup, case, &vars);
    let mut secrets = external_ids(&event);
    secrets.extend(expect.secrets.iter().map(|s| subst(s, &vars)));

    let seen_before = world.seen();
    let calls_before = world.relay.calls().len();
    let deadline = case
        .deadline_secs
        .map_or(DEFAULT_DEADLINE, Duration::from_secs);
    let mut problems = Vec::new();

    let id = proc.runtime.invoke(event.clone(), deadline);
    let result = proc
        .runtime
        .wait_result(&id, deadline + Duration::from_secs(5));
    match &result {
        None => problems.push(format!(
            "no invocation result reached the runtime API within {:?}",
            deadline + Duration::from_secs(5)
        )),
        Some(InvocationResult::Error(body)) if expect.answer != Answer::None => {
            problems.push(format!(
                "the runtime reported an invocation error (the handler never ran?): {}",
                clip(&String::from_utf8_lossy(body), 200)
            ))
        }
        Some(_) => {}
    }
    let logs = proc.settled_logs();
    let slice = logs.get(proc.checked..).unwrap_or("");
    check_logs(slice, &secrets, &mut problems);
    proc.checked = logs.len();

    // Requests at the listeners.
    let seen = world.seen_since(&seen_before);
    for (listener, hit) in &seen {
        if hit.headers.iter().any(|(k, _)| k == "x-injected") {
            problems.push(format!("{listener} got an injected header"));
        }
    }
    let (mine, elsewhere): (Vec<_>, Vec<_>) = seen
        .iter()
        .partition(|(listener, _)| *listener == expect.listener);
    let describe = |hits: &[&(String, Hit)]| -> String {
        hits.iter()
            .map(|(l, h)| format!("{l}: {}", clip(&h.line, 140)))
            .collect::<Vec<_>>()
            .join("; ")
    };
    if let Some(canary) = &expect.proxy_canary {
        let reached = seen
            .iter()
            .any(|(l, h)| l == "proxy" && h.line.contains(canary.as_str()));
        if !reached {
            problems.push(format!(
                "the proxy never saw {canary}: the function does not use HTTP(S)_PROXY, so the \
                 `none` cases of the default list prove nothing"
            ));
        }
        let other: Vec<&(String, Hit)> = seen
            .iter()
            .filter(|(l, h)| !(l == "proxy" && h.line.contains(canary.as_str())))
            .collect();
        if !other.is_empty() {
            problems.push(format!(
                "requests besides the canary's: {}",
                describe(&other)
            ));
        }
    } else {
        let answered = match expect.answer {
            Answer::None => {
                if !seen.is_empty() {
                    let all: Vec<&(String, Hit)> = seen.iter().collect();
                    problems.push(format!(
                        "expected no request at all, got {}: {}",
                        seen.len(),
                        describe(&all)
                    ));
                }
                None
            }
            Answer::Failed | Answer::Success => {
                if mine.len() != 1 {
                    problems.push(format!(
                        "expected exactly one answer at {}, got {}",
                        expect.listener,
                        mine.len()
                    ));
                }
                mine.first()
            }
            Answer::FailedOrNone => {
                if mine.len() > 1 {
                    problems.push(format!(
                        "expected at most one answer at {}, got {}",
                        expect.listener,
                        mine.len()
                    ));
                }
                mine.first()
            }
        };
        if expect.answer != Answer::None && !elsewhere.is_empty() {
            problems.push(format!(
                "requests reached other listeners: {}",
                describe(&elsewhere)
            ));
        }
        if let Some((_, hit)) = answered {
            let status = if expect.answer == Answer::Success {
                "SUCCESS"
            } else {
                "FAILED"
            };
            check_answer(hit, &event, status, expect, &secrets, &mut problems);
        }
    }

    // AWS calls.
    let calls: Vec<AwsCall> = world.relay.calls().into_iter().skip(calls_before).collect();
    if expect.aws_calls == AwsCalls::None && !calls.is_empty() {
        problems.push(format!(
            "expected no AWS call before refusing, got {}: {}",
            calls.len(),
            calls
                .iter()
                .take(6)
                .map(AwsCall::describe)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let unowned: Vec<String> = calls
        .iter()
        .filter(|c| c.service == "s3" && c.expected_owner.as_deref() != Some(ACCOUNT_ID))
        .map(AwsCall::describe)
        .collect();
    if !unowned.is_empty() {
        problems.push(format!(
            "S3 calls without ExpectedBucketOwner {ACCOUNT_ID}: {}",
            unowned.join(", ")
        ));
    }

    // State.
    world.check_and_restore(&mut problems, expect.writes);
    if !problems.is_empty() && !calls.is_empty() && expect.aws_calls != AwsCalls::None {
        let writes: Vec<String> = calls
            .iter()
            .filter(|c| {
                c.what.starts_with("PUT ")
                    || c.what.starts_with("DELETE ")
                    || c.what.contains("PutKeyPolicy")
                    || c.what.contains("Create")
                    || c.what.contains("PutRolePolicy")
            })
            .map(AwsCall::describe)
            .collect();
        if !writes.is_empty() {
            problems.push(format!("writes the function made: {}", writes.join(", ")));
        }
    }

    // The process.
    let exited = proc.function.try_wait();
    if let Some(status) = exited {
        problems.push(format!(
            "the function process exited ({status}); logs end: {}",
            clip(&logs[logs.len().saturating_sub(600)..], 600)
        ));
    }
    if exited.is_some() || result.is_none() {
        proc.respawn();
    }

    Outcome {
        name: case.name.clone(),
        kind: loaded.kind.clone(),
        group: loaded.group.clone(),
        problems,
        chose: (expect.answer == Answer::FailedOrNone).then_some(if mine.is_empty() {
            "refused"
        } else {
            "answered"
        }),
    }
}

fn finish_group(proc: &mut Proc) {
    let logs = proc.settled_logs();
    let mut problems = Vec::new();
    check_logs(logs.get(proc.checked..).unwrap_or(""), &[], &mut problems);
    if let Some(status) = proc.function.try_wait() {
        problems.push(format!(
            "the function process is gone at the end ({status})"
        ));
    }
    proc.problems.extend(problems);
}

fn run_corpus() {
    let started = Instant::now();
    let (setup, mut cases) = load_corpus();
    cases.sort_by_key(|c| {
        GROUP_ORDER
            .iter()
            .position(|g| *g == c.group)
            .unwrap_or(GROUP_ORDER.len())
    });
    let world = World::start(setup);
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut group_problems: Vec<(String, Vec<String>)> = Vec::new();
    let mut proc: Option<Proc> = None;
    for (n, loaded) in cases.iter().enumerate() {
        if proc.as_ref().is_none_or(|p| p.group != loaded.group) {
            if let Some(mut done) = proc.take() {
                finish_group(&mut done);
                group_problems.push((done.group.clone(), done.problems));
            }
            eprintln!(
                "hostile events: group {} from case {n} ({:.1?})",
                loaded.group,
                started.elapsed()
            );
            proc = Some(Proc::start(&world, &loaded.group));
        }
        let p = proc.as_mut().expect("a process for the group");
        let case_started = Instant::now();
        let outcome = run_case(&world, p, loaded, n);
        let took = case_started.elapsed();
        if took > Duration::from_secs(3) {
            eprintln!("hostile events: {} took {took:.1?}", loaded.case.name);
        }
        outcomes.push(outcome);
    }
    if let Some(mut done) = proc.take() {
        finish_group(&mut done);
        group_problems.push((done.group.clone(), done.problems));
    }

    // The report.
    let mut per_kind: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for o in &outcomes {
        let e = per_kind.entry(o.kind.as_str()).or_default();
        e.0 += 1;
        if !o.problems.is_empty() {
            e.1 += 1;
        }
    }
    let hostile = outcomes.iter().filter(|o| o.kind != "control").count();
    eprintln!(
        "\nhostile events: {} cases ({hostile} hostile, {} controls) in {:.1?}",
        outcomes.len(),
        outcomes.len() - hostile,
        started.elapsed()
    );
    for (kind, (total, failed)) in &per_kind {
        eprintln!("  {kind:<12} {total:>4} cases, {failed:>3} failing");
    }
    let mut per_group: BTreeMap<&str, usize> = BTreeMap::new();
    for o in &outcomes {
        *per_group.entry(o.group.as_str()).or_default() += 1;
    }
    eprintln!("  by process: {per_group:?}");

    for choice in ["answered", "refused"] {
        let names: Vec<&str> = outcomes
            .iter()
            .filter(|o| o.chose == Some(choice))
            .map(|o| o.name.as_str())
            .collect();
        if !names.is_empty() {
            eprintln!("  failed-or-none, {choice}: {}", names.join(", "));
        }
    }
    let failing: Vec<&Outcome> = outcomes.iter().filter(|o| !o.problems.is_empty()).collect();
    let mut report = String::new();
    for o in &failing {
        report.push_str(&format!("\n[{}] {}\n", o.kind, o.name));
        for p in &o.problems {
            report.push_str(&format!("    - {p}\n"));
        }
    }
    for (group, problems) in &group_problems {
        if !problems.is_empty() {
            report.push_str(&format!("\n[process] {group}\n"));
            for p in problems {
                report.push_str(&format!("    - {p}\n"));
            }
        }
    }
    assert!(
        hostile >= 120,
        "the corpus must hold at least 120 hostile cases, it has {hostile}"
    );
    if !report.is_empty() {
        panic!(
            "{} of {} cases failed:\n{report}",
            failing.len(),
            outcomes.len()
        );
    }
}

#[test]
fn hostile_event_corpus() {
    // Deep cases nest 50000 levels: building, serialising and dropping them recurses.
    let handle = thread::Builder::new()
        .name("hostile-corpus".into())
        .stack_size(256 << 20)
        .spawn(run_corpus)
        .expect("start the corpus thread");
    if let Err(panic) = handle.join() {
        std::panic::resume_unwind(panic);
    }
}

// ---------------------------------------------------------------------------------------------
// Issue 20, item 3: someone else's statement with a key written twice, through the built
// function against moto. serde_json alone reads `"Effect": "Deny", "Effect": "Allow"` as a
// public Allow and would write it back so; the function must refuse and write nothing.

/// The built function with its runtime API and ResponseURL listener, against moto.
struct Lambda {
    runtime: RuntimeApi,
    responses: ResponseServer,
    function: Function,
}

impl Lambda {
    fn start() -> Lambda {
        let runtime = RuntimeApi::start();
        let responses = ResponseServer::start();
        let function = Function::spawn(&runtime, &[("AWS_ENDPOINT_URL", &common::moto().endpoint)]);
        Lambda {
            runtime,
            responses,
            function,
        }
    }

    /// Sends one event and returns the answer the ResponseURL got.
    fn answer(&self, kind: &str, stack: &str, physical: Option<&str>, props: Value) -> Value {
        let before = self.responses.requests().len();
        let url = self.responses.url("cfn/answer");
        let event = cfn_event(kind, &url, stack, LOGICAL_ID, physical, props, None);
        let id = self.runtime.invoke(event, Duration::from_secs(30));
        let result = self.runtime.wait_result(&id, Duration::from_secs(35));
        assert!(
            matches!(result, Some(InvocationResult::Response(_))),
            "{kind}: {result:?}\n{}",
            self.function.logs()
        );
        let requests = self
            .responses
            .wait_requests(before + 1, Duration::from_secs(5));
        assert_eq!(
            requests.len(),
            before + 1,
            "{kind}: one answer\n{}",
            self.function.logs()
        );
        requests[before].json()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_foreign_statement_with_a_key_written_twice_is_left_byte_for_byte() {
    let aws = common::aws(&common::moto().endpoint).await;
    let bucket = common::unique("dup-key");
    create_bucket(&aws, &bucket).await;
    let (key_id, key_arn) = create_key(&aws).await;
    // Written as text: a JSON value cannot hold the repeat.
    let guard = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"Guard","Effect":"Deny","Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::{bucket}/*"}}]}}"#
    );
    aws.s3
        .put_bucket_policy()
        .bucket(&bucket)
        .policy(&guard)
        .send()
        .await
        .expect("put the foreign bucket policy");
    let stored = raw_bucket_policy(&aws, &bucket).await.unwrap();
    assert_eq!(
        stored.as_deref(),
        Some(guard.as_str()),
        "moto keeps the text as put"
    );
    let key_before = raw_key_policy(&aws, &key_id).await.unwrap();

    let l = Lambda::start();
    let stack = common::unique("dup-key-stack");
    let props = json!({"Vendor": "telus", "BucketName": bucket, "KmsKeyArn": key_arn});
    let created = l.answer("Create", &stack, None, props.clone());
    assert_eq!(created["Status"], "FAILED", "{created}");
    let reason = created["Reason"].as_str().unwrap_or_default();
    assert!(reason.contains("bucket policy"), "{reason}");
    assert!(
        reason.contains("statement Guard has Effect twice"),
        "{reason}"
    );
    assert_eq!(
        raw_bucket_policy(&aws, &bucket).await.unwrap().as_deref(),
        Some(guard.as_str())
    );
    assert_eq!(raw_key_policy(&aws, &key_id).await.unwrap(), key_before);

    // The rollback's Delete cannot rewrite the document either: it says so, and writes nothing.
    let physical = created["PhysicalResourceId"].as_str().unwrap().to_string();
    let deleted = l.answer("Delete", &stack, Some(&physical), props.clone());
    assert_eq!(deleted["Status"], "FAILED", "{deleted}");
    assert!(
        deleted["Reason"]
            .as_str()
            .unwrap_or_default()
            .contains("statement Guard has Effect twice"),
        "{deleted}"
    );
    assert_eq!(
        raw_bucket_policy(&aws, &bucket).await.unwrap().as_deref(),
        Some(guard.as_str())
    );

    // Once its owner writes what was meant, the grant goes through and the statement is kept.
    let meant = json!({"Version": "2012-10-17", "Statement": [{"Sid": "Guard", "Effect": "Deny",
        "Principal": "*", "Action": "s3:*", "Resource": format!("arn:aws:s3:::{bucket}/*")}]});
    common::put_bucket_policy(&aws, &bucket, &meant).await;
    let created = l.answer("Create", &stack, None, props.clone());
    assert_eq!(created["Status"], "SUCCESS", "{created}");
    let policy = common::bucket_policy(&aws, &bucket).await.unwrap();
    assert!(
        policy["Statement"]
            .as_array()
            .unwrap()
            .contains(&meant["Statement"][0]),
        "{policy}"
    );
    let physical = created["PhysicalResourceId"].as_str().unwrap().to_string();
    let deleted = l.answer("Delete", &stack, Some(&physical), props);
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
    assert_eq!(common::bucket_policy(&aws, &bucket).await.unwrap(), meant);
    // The key policy was written (the grant's statement added, then removed): same value.
    assert_eq!(
        common::key_policy(&aws, &key_id).await,
        serde_json::from_str::<Value>(&key_before).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_policy_with_a_key_written_twice_fails_the_create_before_any_write() {
    let aws = common::aws(&common::moto().endpoint).await;
    let bucket = common::unique("dup-key-kms");
    create_bucket(&aws, &bucket).await;
    let (key_id, key_arn) = create_key(&aws).await;
    let foreign = json!({"Version": "2012-10-17", "Statement": [{"Sid": "Auditor", "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::444455556666:root"}, "Action": "s3:GetObject",
        "Resource": format!("arn:aws:s3:::{bucket}/audit/*")}]});
    common::put_bucket_policy(&aws, &bucket, &foreign).await;
    let bucket_before = raw_bucket_policy(&aws, &bucket).await.unwrap();
    // The default key policy, with its statement's Principal map repeating AWS.
    let key_text = format!(
        r#"{{"Version":"2012-10-17","Id":"key-default-1","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT_ID}:root","AWS":"*"}},"Action":"kms:*","Resource":"*"}}]}}"#
    );
    aws.kms
        .put_key_policy()
        .key_id(&key_id)
        .policy_name("default")
        .policy(&key_text)
        .send()
        .await
        .expect("put the key policy");
    assert_eq!(
        raw_key_policy(&aws, &key_id).await.unwrap(),
        key_text,
        "moto keeps the text as put"
    );

    let l = Lambda::start();
    let stack = common::unique("dup-key-kms-stack");
    let props = json!({"Vendor": "telus", "BucketName": bucket, "KmsKeyArn": key_arn});
    let created = l.answer("Create", &stack, None, props);
    assert_eq!(created["Status"], "FAILED", "{created}");
    let reason = created["Reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("key policy")
            && reason.contains("statement #1 (no Sid) has Principal.AWS twice"),
        "{reason}"
    );
    // Nothing written: the bucket policy (read and merged first) is as it was, and so is the key's.
    assert_eq!(
        raw_bucket_policy(&aws, &bucket).await.unwrap(),
        bucket_before
    );
    assert_eq!(raw_key_policy(&aws, &key_id).await.unwrap(), key_text);
}

/// Issue 20, item 1: a Prefix without a trailing `/` is written as given, and the Create's log
/// says it matches longer names too.
#[tokio::test(flavor = "multi_thread")]
async fn a_prefix_without_a_slash_is_noted_in_the_creates_log() {
    let aws = common::aws(&common::moto().endpoint).await;
    let bucket = common::unique("prefix-note");
    create_bucket(&aws, &bucket).await;
    let l = Lambda::start();
    let stack = common::unique("prefix-note-stack");
    let props = json!({"Vendor": "telus", "BucketName": bucket, "Prefix": "data"});
    let created = l.answer("Create", &stack, None, props.clone());
    assert_eq!(created["Status"], "SUCCESS", "{created}");
    let policy = common::bucket_policy(&aws, &bucket).await.unwrap();
    assert!(
        policy
            .to_string()
            .contains(&format!("arn:aws:s3:::{bucket}/data*")),
        "{policy}"
    );
    let logs = l.function.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("also matches longer names"))
        .unwrap_or_else(|| panic!("no note in the logs:\n{logs}"));
    let record: Value = serde_json::from_str(line).expect("a JSON log line");
    assert_eq!(record["level"], "WARN", "{line}");
    assert!(line.contains("data-secret/"), "{line}");
    assert!(
        line.contains(created["Data"]["GrantId"].as_str().unwrap()),
        "{line}"
    );
    let physical = created["PhysicalResourceId"].as_str().unwrap().to_string();
    let deleted = l.answer("Delete", &stack, Some(&physical), props);
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
    assert_eq!(common::bucket_policy(&aws, &bucket).await, None);
}
