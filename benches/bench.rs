//! `make bench`: the built function measured as Lambda runs it (the Runtime API test server,
//! moto behind the recording proxy, a ResponseURL receiver), plus the pure core in process.
//!
//! - start: spawn to first poll, the first answer, warm no-op Updates, the process's CPU time
//!   and peak RSS, the binary and its deflated zip;
//! - scale: N grants on one bucket created at once by 4 function processes sharing the lock
//!   table, for N = 1, 5, 20, 50: time until all have answered, grants per second, and how long
//!   each bucket lease was held and how long it then lay idle before the next waiter took it;
//! - core: plan (merge and lint) a grant into a bucket policy near 20 KB holding 100 foreign
//!   statements.
//!
//! It prints one table and writes it as JSON to `target/bench/bench.json`. Without `--bench`
//! (as `cargo test --all-targets` runs it, so it cannot rot) it runs a quick pass with few
//! repetitions and writes `target/bench/quick.json`; either way it exits non-zero when an event
//! is not answered SUCCESS.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use common::proxy::FaultProxy;
use common::{Aws, Function, InvocationResult, ResponseServer, RuntimeApi, cfn_event};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(120);
const BIN: &str = env!("CARGO_BIN_EXE_vendor-grants-lambda");

struct Settings {
    full: bool,
    /// Cold starts measured (each a new process).
    starts: usize,
    /// Warm no-op Updates per process.
    warm: usize,
    scale: Vec<usize>,
    core_iterations: u32,
}

impl Settings {
    fn from_args() -> Settings {
        if std::env::args().any(|a| a == "--bench") {
            Settings {
                full: true,
                starts: 10,
                warm: 50,
                scale: vec![1, 5, 20, 50],
                core_iterations: 2000,
            }
        } else {
            Settings {
                full: false,
                starts: 1,
                warm: 3,
                scale: vec![1, 5],
                core_iterations: 20,
            }
        }
    }
}

/// One row of the table: a figure, its unit and what it measures.
struct Row {
    name: String,
    value: f64,
    unit: &'static str,
}

struct Bench {
    rt: tokio::runtime::Runtime,
    aws: Aws,
    proxy: FaultProxy,
    responses: ResponseServer,
    rows: Vec<Row>,
    failures: Vec<String>,
}

impl Bench {
    fn row(&mut self, name: impl Into<String>, value: f64, unit: &'static str) {
        self.rows.push(Row {
            name: name.into(),
            value,
            unit,
        });
    }

    fn bucket(&self) -> String {
        let bucket = common::unique("vgb");
        self.rt.block_on(common::create_bucket(&self.aws, &bucket));
        bucket
    }

    fn event(&self, kind: &str, stack: &str, physical: Option<&str>, props: &Value) -> Value {
        let old = (kind == "Update").then(|| props.clone());
        let url = self.responses.url("cfn/answer");
        cfn_event(kind, &url, stack, "Grant", physical, props.clone(), old)
    }

    /// Invokes `event` and waits for the function's result; the answer's status and
    /// PhysicalResourceId, and how long the invocation took.
    fn run(&mut self, runtime: &RuntimeApi, event: Value) -> (String, Duration) {
        let started = Instant::now();
        let id = runtime.invoke(event, DEADLINE);
        let done = runtime.wait_result(&id, DEADLINE + Duration::from_secs(5));
        let took = runtime
            .answered_at(&id)
            .map_or(started.elapsed(), |at| at - started);
        if !matches!(done, Some(InvocationResult::Response(_))) {
            self.failures.push(format!("invocation {id}: {done:?}"));
        }
        (self.last_answer(), took)
    }

    /// The PhysicalResourceId of the latest answer, noting a FAILED one.
    fn last_answer(&mut self) -> String {
        let answers = self.responses.requests();
        let Some(answer) = answers.last().map(|a| a.json()) else {
            self.failures.push("no answer".into());
            return String::new();
        };
        if answer["Status"] != "SUCCESS" {
            self.failures.push(format!("answer: {answer}"));
        }
        answer["PhysicalResourceId"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

/// The process's user+system CPU time and peak RSS, from /proc.
fn process_figures(pid: u32) -> Option<(Duration, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which may hold spaces) start after its ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()?;
    Some((
        Duration::from_millis(ticks * 1000 / per_second),
        hwm_kb * 1024,
    ))
}

/// Cold start, first answer, warm Updates, CPU and RSS, each start a new process.
fn start(b: &mut Bench, s: &Settings) {
    let endpoint = b.proxy.endpoint();
    let (mut cold, mut first, mut warm, mut cpu, mut rss) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..s.starts {
        let bucket = b.bucket();
        let key = b.rt.block_on(common::create_key(&b.aws)).1;
        let runtime = RuntimeApi::start();
        let spawned = Instant::now();
        let function = Function::spawn(&runtime, &[("AWS_ENDPOINT_URL", endpoint.as_str())]);
        match runtime.wait_poll(1, Duration::from_secs(10)) {
            Some(at) => cold.push(ms(at - spawned)),
            None => b.failures.push("the function never polled".into()),
        }
        let stack = common::unique("bench");
        let props = json!({"Vendor": "telus", "BucketName": bucket, "KmsKeyArn": key});
        let (id, took) = b.run(&runtime, b.event("Create", &stack, None, &props));
        first.push(ms(took));
        for _ in 0..s.warm {
            let (_, took) = b.run(&runtime, b.event("Update", &stack, Some(&id), &props));
            warm.push(ms(took));
        }
        if let Some((c, r)) = process_figures(function.pid()) {
            cpu.push(ms(c));
            rss.push(r as f64 / (1024.0 * 1024.0));
        }
        b.run(&runtime, b.event("Delete", &stack, Some(&id), &props));
    }
    b.row(
        "cold start: spawn to first poll (median)",
        median(cold),
        "ms",
    );
    b.row(
        "cold answer: first Create, key and bucket (median)",
        median(first),
        "ms",
    );
    b.row("warm no-op Update (median)", median(warm.clone()), "ms");
    b.row("warm no-op Update (p90)", percentile(warm, 0.9), "ms");
    b.row(
        format!("process CPU: start, Create, {} Updates (median)", s.warm),
        median(cpu),
        "ms",
    );
    b.row("process peak RSS (median)", median(rss), "MiB");
}

/// The binary and its zip as Lambda gets it (`bootstrap`, deflated), by Python's zipfile.
fn sizes(b: &mut Bench, out: &Path) {
    let size = std::fs::metadata(BIN).map(|m| m.len()).unwrap_or(0);
    b.row("binary size", size as f64 / 1e6, "MB");
    let zip = out.join("bootstrap.zip");
    let made = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile\n\
             with zipfile.ZipFile(sys.argv[2], 'w', zipfile.ZIP_DEFLATED) as z:\n\
             \x20   z.write(sys.argv[1], 'bootstrap')",
            BIN,
        ])
        .arg(&zip)
        .status()
        .is_ok_and(|s| s.success());
    match std::fs::metadata(&zip) {
        Ok(m) if made => b.row("zip size (bootstrap, deflated)", m.len() as f64 / 1e6, "MB"),
        _ => b.failures.push("could not zip the binary".into()),
    }
}

/// N grants on one bucket, created at once by 4 processes sharing the lock table.
fn scale(b: &mut Bench, s: &Settings) {
    let table = common::unique("vg-bench");
    b.rt.block_on(common::create_lock_table(&b.aws, &table));
    let endpoint = b.proxy.endpoint();
    let runtime = RuntimeApi::start();
    let env = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("VENDOR_GRANTS_LOCK_TABLE", table.as_str()),
    ];
    let functions: Vec<Function> = (0..4).map(|_| Function::spawn(&runtime, &env)).collect();
    runtime.wait_poll(functions.len(), Duration::from_secs(10));
    for &n in &s.scale {
        let bucket = b.bucket();
        let lease = format!("s3-bucket-policy/{bucket}");
        let events: Vec<(String, Value)> = (0..n)
            .map(|i| {
                let stack = common::unique("scale");
                let props = json!({"Vendor": "custom", "BucketName": bucket, "Access": "read",
                    "VendorPrincipal": format!("{:012}", 100_000_000_000u64 + i as u64)});
                (stack, props)
            })
            .collect();
        b.proxy.take_calls();
        let before = b.responses.requests().len();
        let started = Instant::now();
        let ids: Vec<String> = events
            .iter()
            .map(|(stack, props)| runtime.invoke(b.event("Create", stack, None, props), DEADLINE))
            .collect();
        let mut last = started;
        for id in &ids {
            let done = runtime.wait_result(id, DEADLINE + Duration::from_secs(5));
            if !matches!(done, Some(InvocationResult::Response(_))) {
                b.failures
                    .push(format!("scale {n}: invocation {id}: {done:?}"));
            }
            last = last.max(runtime.answered_at(id).unwrap_or(last));
        }
        let took = last - started;
        let answers = b
            .responses
            .wait_requests(before + n, Duration::from_secs(5));
        for a in answers.iter().skip(before).map(|a| a.json()) {
            if a["Status"] != "SUCCESS" {
                b.failures.push(format!("scale {n}: {a}"));
            }
        }
        let (holds, idle) = lease_figures(&b.proxy.take_calls(), &lease);
        b.row(format!("scale N={n}: all answered"), ms(took), "ms");
        b.row(
            format!("scale N={n}: grants per second"),
            n as f64 / took.as_secs_f64(),
            "/s",
        );
        b.row(
            format!("scale N={n}: lease held (median)"),
            median(holds.clone()),
            "ms",
        );
        b.row(
            format!("scale N={n}: lease idle before next holder (max)"),
            idle.iter().copied().fold(0.0, f64::max),
            "ms",
        );
        // Clean up so the next N starts from an empty bucket policy.
        delete_all(b, &runtime, &events, before);
    }
    drop(functions);
}

/// Deletes the grants of `events`, whose Create answers start at `before`.
fn delete_all(b: &mut Bench, runtime: &RuntimeApi, events: &[(String, Value)], before: usize) {
    let answers: Vec<Value> = b
        .responses
        .requests()
        .iter()
        .skip(before)
        .map(|a| a.json())
        .collect();
    let ids: Vec<String> = events
        .iter()
        .map(|(stack, props)| {
            let stack_arn = common::stack_arn(stack);
            let physical = answers
                .iter()
                .find(|a| a["StackId"] == stack_arn)
                .and_then(|a| a["PhysicalResourceId"].as_str())
                .unwrap_or_default()
                .to_string();
            runtime.invoke(b.event("Delete", stack, Some(&physical), props), DEADLINE)
        })
        .collect();
    for id in ids {
        runtime.wait_result(&id, DEADLINE + Duration::from_secs(5));
    }
}

/// From the proxy's record of the lock table: how long each holder kept `lease` (taken when
/// its conditional PutItem was answered, given back when its DeleteItem arrived), and how long
/// the lease then lay free while another waiter was asking for it.
fn lease_figures(calls: &[common::proxy::Call], lease: &str) -> (Vec<f64>, Vec<f64>) {
    let on_lease = |c: &&common::proxy::Call| c.resource.as_deref() == Some(lease);
    let mut taken: Option<Instant> = None;
    let mut released: Option<Instant> = None;
    let (mut holds, mut idle) = (Vec::new(), Vec::new());
    for c in calls.iter().filter(on_lease) {
        match (c.operation.as_str(), c.status) {
            ("PutItem", 200) => {
                if let Some(free) = released.take() {
                    idle.push(ms(c.answered.saturating_duration_since(free)));
                }
                taken = Some(c.answered);
            }
            ("DeleteItem", 200) => {
                if let Some(t) = taken.take() {
                    holds.push(ms(c.received.saturating_duration_since(t)));
                }
                released = Some(c.received);
            }
            _ => {}
        }
    }
    (holds, idle)
}

/// The pure core: plan a grant into a bucket policy near 20 KB holding 100 foreign statements.
fn core(b: &mut Bench, s: &Settings) {
    use vendor_grants::catalog::Catalog;
    use vendor_grants::grant::{self, GrantProperties, PlanInput};
    use vendor_grants::policy::{GrantId, PolicyDocument};

    let bucket = "vg-bench-core-bucket";
    let statements: Vec<Value> = (0..100)
        .map(|i| {
            json!({"Sid": format!("Foreign{i:03}"), "Effect": "Allow",
                "Principal": {"AWS": format!("arn:aws:iam::{:012}:root", 200_000_000_000u64 + i)},
                "Action": ["s3:GetObject"],
                "Resource": format!("arn:aws:s3:::{bucket}/team-{i:03}/*")})
        })
        .collect();
    let text = json!({"Version": "2012-10-17", "Statement": statements}).to_string();
    let Ok(catalog) = Catalog::builtin() else {
        b.failures.push("no catalog".into());
        return;
    };
    let (Ok(policy), Ok(props), Ok(grant_id)) = (
        PolicyDocument::parse(&text, "bucket policy"),
        GrantProperties::from_json(&json!({"Vendor": "telus", "BucketName": bucket}), catalog),
        GrantId::parse("0123456789abcdef").ok_or("grant id"),
    ) else {
        b.failures.push("core inputs".into());
        return;
    };
    let input = PlanInput {
        props: &props,
        grant_id: &grant_id,
        partition: "aws",
        account_id: Some(common::ACCOUNT_ID),
        kms_key_arn: None,
        bucket_policy: Some(&policy),
        key_policy: None,
        new_grant: true,
    };
    let started = Instant::now();
    for _ in 0..s.core_iterations {
        if let Err(e) = std::hint::black_box(grant::plan(catalog, input)) {
            b.failures.push(format!("core plan: {e}"));
            return;
        }
    }
    let each = started.elapsed() / s.core_iterations;
    b.row(
        format!(
            "core: plan into a {:.1} KB policy, 100 foreign statements",
            text.len() as f64 / 1e3
        ),
        each.as_secs_f64() * 1e6,
        "µs",
    );
}

fn target_dir() -> PathBuf {
    // target/<profile>/vendor-grants-lambda
    Path::new(BIN)
        .parent()
        .and_then(Path::parent)
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
}

fn main() -> ExitCode {
    let settings = Settings::from_args();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let moto = common::moto();
    let aws = rt.block_on(common::aws(&moto.endpoint));
    let mut b = Bench {
        rt,
        aws,
        proxy: FaultProxy::start(&moto.endpoint),
        responses: ResponseServer::start(),
        rows: Vec::new(),
        failures: Vec::new(),
    };
    let out = target_dir().join("bench");
    if let Err(e) = std::fs::create_dir_all(&out) {
        eprintln!("{}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    start(&mut b, &settings);
    sizes(&mut b, &out);
    scale(&mut b, &settings);
    core(&mut b, &settings);

    let profile = if settings.full { "full" } else { "quick" };
    println!("\nvendor-grants bench ({profile}; binary {BIN})\n");
    println!("| figure | value | unit |\n|---|---:|---|");
    for r in &b.rows {
        println!("| {} | {:.2} | {} |", r.name, r.value, r.unit);
    }
    let json = json!({
        "mode": profile,
        "binary": BIN,
        "figures": b.rows.iter().map(|r| json!({"name": r.name, "value": r.value, "unit": r.unit})).collect::<Vec<_>>(),
        "failures": b.failures,
    });
    let file = out.join(if settings.full {
        "bench.json"
    } else {
        "quick.json"
    });
    if let Err(e) = std::fs::write(&file, format!("{json:#}\n")) {
        eprintln!("{}: {e}", file.display());
        return ExitCode::FAILURE;
    }
    println!("\nwritten to {}", file.display());
    if b.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        for f in &b.failures {
            eprintln!("FAILED: {f}");
        }
        ExitCode::FAILURE
    }
}
