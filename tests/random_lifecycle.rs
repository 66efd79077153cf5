//! A model-based random lifecycle: seeded (the seed is printed; `VG_MODEL_SEEDS=1,2` runs
//! others), many grants on one bucket and key, two function processes sharing the lock table
//! behind the fault proxy (10% of calls throttled), and a random sequence of Creates, in-place
//! and replacing Updates (with CloudFormation's Delete of the old id), Deletes, duplicate
//! deliveries and concurrent events. On odd seeds, reads of the bucket and key policy are also
//! stale for a while after each write (the version before it, as S3 and KMS reads can be). After
//! every step the policies must equal the foreign statements plus exactly the live grants'
//! statements.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::proxy::{Fault, FaultProxy, Rule};
use common::{
    Aws, Function, ResponseServer, RuntimeApi, bucket_policy, cfn_event, key_policy, sids,
    statement_ids,
};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(120);
const STEPS: usize = 22;

/// splitmix64: small, seeded, enough for choosing steps.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap_or(0)
    }
}

/// How long policy reads stay stale after each write on this seed: on odd seeds 100 to 400 ms,
/// on even ones not at all (so both kinds of run stay covered).
fn stale_window(seed: u64) -> Option<Duration> {
    (seed % 2 == 1).then(|| Duration::from_millis(100 + seed % 301))
}

/// One live grant as the model knows it.
#[derive(Clone, Debug)]
struct Live {
    physical: String,
    props: Value,
    /// The StatementIds of its last answer.
    sids: BTreeSet<String>,
}

struct World {
    aws: Aws,
    proxy: FaultProxy,
    runtime: RuntimeApi,
    responses: ResponseServer,
    _functions: Vec<Function>,
    bucket: String,
    key: String,
    foreign_sids: BTreeSet<String>,
    key_sids: BTreeSet<String>,
    stack: String,
    events: usize,
}

impl World {
    async fn new(seed: u64) -> World {
        let aws = common::aws(&common::moto().endpoint).await;
        let table = common::unique("vg-model");
        common::create_lock_table(&aws, &table).await;
        let bucket = common::unique("vg-model");
        common::create_bucket(&aws, &bucket).await;
        let foreign = json!({"Version": "2012-10-17", "Statement": [{"Sid": "KeepMe",
            "Effect": "Deny", "Principal": "*", "Action": "s3:DeleteBucket",
            "Resource": format!("arn:aws:s3:::{bucket}")}]});
        common::put_bucket_policy(&aws, &bucket, &foreign).await;
        let (_, key) = common::create_key(&aws).await;
        let key_sids = sids(Some(&key_policy(&aws, &key).await));
        let proxy = FaultProxy::start(&common::moto().endpoint);
        proxy.set_seed(seed);
        proxy.push(Rule::any(Fault::Throttle).probability(0.1));
        if let Some(window) = stale_window(seed) {
            println!("seed {seed}: policy reads stale for {window:?} after each write");
            proxy.push(Rule::any(Fault::StaleAfterWrite(window)));
        }
        let runtime = RuntimeApi::start();
        let endpoint = proxy.endpoint();
        let env = [
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("VENDOR_GRANTS_LOCK_TABLE", table.as_str()),
        ];
        let functions = (0..2).map(|_| Function::spawn(&runtime, &env)).collect();
        World {
            aws,
            proxy,
            runtime,
            responses: ResponseServer::start(),
            _functions: functions,
            bucket,
            key,
            foreign_sids: ["KeepMe".to_string()].into(),
            key_sids,
            stack: common::unique("model-stack"),
            events: 0,
        }
    }

    fn event(
        &mut self,
        kind: &str,
        logical: &str,
        physical: Option<&str>,
        props: &Value,
        old: Option<&Value>,
    ) -> (String, Value) {
        self.events += 1;
        let path = format!("answer/{}", self.events);
        let event = cfn_event(
            kind,
            &self.responses.url(&path),
            &self.stack,
            logical,
            physical,
            props.clone(),
            old.cloned(),
        );
        (format!("/{path}"), event)
    }

    /// Delivers the events at once (the two processes take them concurrently) and returns each
    /// one's single answer, in order.
    fn deliver(&self, events: &[(String, Value)]) -> Vec<Value> {
        let ids: Vec<String> = events
            .iter()
            .map(|(_, e)| self.runtime.invoke(e.clone(), DEADLINE))
            .collect();
        for id in &ids {
            assert!(
                self.runtime
                    .wait_result(id, DEADLINE + Duration::from_secs(5))
                    .is_some(),
                "an invocation did not complete"
            );
        }
        let requests = self.responses.requests();
        events
            .iter()
            .map(|(path, _)| {
                let answers: Vec<_> = requests
                    .iter()
                    .filter(|r| r.path.split('?').next() == Some(path.as_str()))
                    .collect();
                assert_eq!(answers.len(), 1, "exactly one answer to {path}");
                answers[0].json()
            })
            .collect()
    }

    /// The policies hold the foreign statements plus exactly the live grants'.
    async fn check(&self, live: &BTreeMap<String, Live>, seed: u64, steps: &[String]) {
        let mut bucket_expected = self.foreign_sids.clone();
        let mut key_expected = self.key_sids.clone();
        for grant in live.values() {
            for sid in &grant.sids {
                if sid.ends_with("KeyUse") {
                    key_expected.insert(sid.clone());
                } else {
                    bucket_expected.insert(sid.clone());
                }
            }
        }
        let bucket = sids(bucket_policy(&self.aws, &self.bucket).await.as_ref());
        let key = sids(Some(&key_policy(&self.aws, &self.key).await));
        assert_eq!(
            bucket, bucket_expected,
            "seed {seed}, bucket policy after {steps:#?}"
        );
        assert_eq!(
            key, key_expected,
            "seed {seed}, key policy after {steps:#?}"
        );
    }
}

fn succeeded(answer: &Value, seed: u64, steps: &[String]) {
    assert_eq!(
        answer["Status"], "SUCCESS",
        "seed {seed}: {answer}\nafter {steps:#?}"
    );
}

/// Properties for a new grant of one of the bucket-policy vendors.
fn new_props(rng: &mut Rng, bucket: &str, key: &str) -> Value {
    let mut props = match rng.below(3) {
        0 => json!({"Vendor": "telus", "BucketName": bucket}),
        1 => json!({"Vendor": "custom", "BucketName": bucket,
            "VendorPrincipal": "111122223333", "Access": "read"}),
        _ => json!({"Vendor": "scale-ai", "BucketName": bucket, "Mode": "bucket-policy"}),
    };
    if rng.below(2) == 0 {
        props["KmsKeyArn"] = json!(key);
    }
    if rng.below(2) == 0 {
        props["Prefix"] = json!(format!("p{}/", rng.below(100)));
    }
    props
}

#[tokio::test(flavor = "multi_thread")]
async fn random_lifecycles_keep_exactly_the_live_grants() {
    let seeds: Vec<u64> = std::env::var("VG_MODEL_SEEDS")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .filter(|v: &Vec<u64>| !v.is_empty())
        .unwrap_or_else(|| vec![11, 2026]);
    for seed in seeds {
        println!("model seed {seed}");
        run(seed).await;
    }
}

async fn run(seed: u64) {
    let mut rng = Rng(seed);
    let mut w = World::new(seed).await;
    let mut live: BTreeMap<String, Live> = BTreeMap::new();
    let mut steps: Vec<String> = Vec::new();
    let mut last: Option<(String, Value)> = None;
    let mut next_logical = 0;
    for _ in 0..STEPS {
        let choice = if live.is_empty() { 0 } else { rng.below(6) };
        match choice {
            // Create one grant, or two at once on the two processes.
            0 | 1 => {
                let n = if choice == 1 { 2 } else { 1 };
                let mut batch = Vec::new();
                for _ in 0..n {
                    next_logical += 1;
                    let logical = format!("Grant{next_logical}");
                    let props = new_props(&mut rng, &w.bucket, &w.key);
                    batch.push((
                        logical.clone(),
                        props.clone(),
                        w.event("Create", &logical, None, &props, None),
                    ));
                }
                steps.push(format!(
                    "create {:?}",
                    batch.iter().map(|(l, p, _)| (l, p)).collect::<Vec<_>>()
                ));
                let events: Vec<_> = batch.iter().map(|(_, _, e)| e.clone()).collect();
                let answers = w.deliver(&events);
                for ((logical, props, _), answer) in batch.into_iter().zip(&answers) {
                    succeeded(answer, seed, &steps);
                    let physical = answer["PhysicalResourceId"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    live.insert(
                        logical,
                        Live {
                            physical,
                            props,
                            sids: statement_ids(answer),
                        },
                    );
                }
                last = events.into_iter().last();
            }
            // In place: a new Prefix (or none).
            2 => {
                let logical = live
                    .keys()
                    .nth(rng.below(live.len()))
                    .cloned()
                    .unwrap_or_default();
                let grant = live[&logical].clone();
                let mut props = grant.props.clone();
                match rng.below(2) {
                    0 => props["Prefix"] = json!(format!("q{}/", rng.below(100))),
                    _ => {
                        props.as_object_mut().map(|o| o.remove("Prefix"));
                    }
                }
                steps.push(format!("update in place {logical} {props}"));
                let e = w.event(
                    "Update",
                    &logical,
                    Some(&grant.physical),
                    &props,
                    Some(&grant.props),
                );
                let answer = w.deliver(std::slice::from_ref(&e)).remove(0);
                succeeded(&answer, seed, &steps);
                assert_eq!(
                    answer["PhysicalResourceId"],
                    json!(grant.physical),
                    "in place keeps the id"
                );
                live.insert(
                    logical,
                    Live {
                        props,
                        sids: statement_ids(&answer),
                        ..grant
                    },
                );
                last = Some(e);
            }
            // Replacement: the key added or dropped; then CloudFormation deletes the old id.
            3 => {
                let logical = live
                    .keys()
                    .nth(rng.below(live.len()))
                    .cloned()
                    .unwrap_or_default();
                let grant = live[&logical].clone();
                let mut props = grant.props.clone();
                match props.as_object_mut() {
                    Some(o) if o.contains_key("KmsKeyArn") => {
                        o.remove("KmsKeyArn");
                    }
                    Some(o) => {
                        o.insert("KmsKeyArn".into(), json!(w.key));
                    }
                    None => {}
                }
                steps.push(format!("replace {logical} {props}"));
                let e = w.event(
                    "Update",
                    &logical,
                    Some(&grant.physical),
                    &props,
                    Some(&grant.props),
                );
                let answer = w.deliver(std::slice::from_ref(&e)).remove(0);
                succeeded(&answer, seed, &steps);
                let physical = answer["PhysicalResourceId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                assert_ne!(physical, grant.physical, "a replacement has a new id");
                live.insert(
                    logical.clone(),
                    Live {
                        physical,
                        props,
                        sids: statement_ids(&answer),
                    },
                );
                // Until CloudFormation deletes the old id, the old grant is live too.
                let old = format!("{logical}#replaced");
                live.insert(old.clone(), grant.clone());
                w.check(&live, seed, &steps).await;
                live.remove(&old);
                steps.push(format!("delete old {logical} {}", grant.physical));
                let d = w.event(
                    "Delete",
                    &logical,
                    Some(&grant.physical),
                    &grant.props,
                    None,
                );
                let answer = w.deliver(std::slice::from_ref(&d)).remove(0);
                succeeded(&answer, seed, &steps);
                last = Some(d);
            }
            // Delete.
            4 => {
                let logical = live
                    .keys()
                    .nth(rng.below(live.len()))
                    .cloned()
                    .unwrap_or_default();
                let grant = live.remove(&logical).unwrap_or_else(|| unreachable!());
                steps.push(format!("delete {logical}"));
                let e = w.event(
                    "Delete",
                    &logical,
                    Some(&grant.physical),
                    &grant.props,
                    None,
                );
                let answer = w.deliver(std::slice::from_ref(&e)).remove(0);
                succeeded(&answer, seed, &steps);
                last = Some(e);
            }
            // The last event delivered again: it changes nothing more.
            _ => {
                if let Some((_, event)) = &last {
                    let kind = event["RequestType"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    let logical = event["LogicalResourceId"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    let physical = event["PhysicalResourceId"].as_str().map(str::to_string);
                    let props = event["ResourceProperties"].clone();
                    let old = event.get("OldResourceProperties").cloned();
                    steps.push(format!("again {kind} {logical}"));
                    let e = w.event(&kind, &logical, physical.as_deref(), &props, old.as_ref());
                    let answer = w.deliver(std::slice::from_ref(&e)).remove(0);
                    succeeded(&answer, seed, &steps);
                }
            }
        }
        w.check(&live, seed, &steps).await;
    }
    // Everything deleted: only what was there before is left.
    let grants: Vec<(String, Live)> = std::mem::take(&mut live).into_iter().collect();
    for (logical, grant) in grants {
        let e = w.event(
            "Delete",
            &logical,
            Some(&grant.physical),
            &grant.props,
            None,
        );
        let answer = w.deliver(std::slice::from_ref(&e)).remove(0);
        succeeded(&answer, seed, &steps);
    }
    w.check(&live, seed, &steps).await;
    let stale = w
        .proxy
        .calls()
        .iter()
        .filter(|c| {
            c.fault
                .as_deref()
                .is_some_and(|f| f.starts_with("StaleAfterWrite"))
        })
        .count();
    if stale_window(seed).is_some() {
        assert!(stale > 0, "seed {seed}: no policy read was answered stale");
    }
    println!(
        "seed {seed}: {} events, {} faults injected ({stale} stale policy reads)",
        w.events,
        w.proxy.injected()
    );
}
