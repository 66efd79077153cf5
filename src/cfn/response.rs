//! The body of the answer. CloudFormation rejects a body over 4096 bytes, a FAILED without a
//! Reason and an empty PhysicalResourceId, and a rejected answer leaves the stack hanging, so
//! `render` repairs all three rather than report them.

use std::collections::BTreeMap;

use aws_lambda_events::cloudformation::{
    CloudFormationCustomResourceResponse, CloudFormationCustomResourceResponseStatus,
};

use super::ResponseTarget;

/// CloudFormation's limit on the whole response body.
pub const MAX_BODY_BYTES: usize = 4096;

const DEFAULT_FAILED_REASON: &str =
    "vendor-grants failed without a reason; see the function's logs";
const UNKNOWN_PHYSICAL_ID: &str = "vendor-grants-unknown";
const ELLIPSIS: &str = "…";
const DATA_DROPPED: &str = " (attributes dropped: the answer exceeded CloudFormation's 4096 bytes)";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Success,
    Failed,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: Status,
    pub reason: Option<String>,
    pub physical_resource_id: String,
    pub data: BTreeMap<String, String>,
    pub no_echo: bool,
}

/// The JSON body for `answer`, at most [`MAX_BODY_BYTES`] as long as the fields echoed from the
/// request (StackId, RequestId, LogicalResourceId) and the PhysicalResourceId fit on their own;
/// those are never cut, because CloudFormation matches the answer by them.
pub fn render(target: &ResponseTarget, answer: &Answer) -> Vec<u8> {
    let reason = match (answer.status, answer.reason.as_deref()) {
        (Status::Failed, None) => DEFAULT_FAILED_REASON,
        (Status::Failed, Some(r)) if r.trim().is_empty() => DEFAULT_FAILED_REASON,
        // Go's cfn package omits an empty Reason and Python's cfn-response always sends one; an
        // empty string is accepted either way, a null is not documented.
        (Status::Success, None) => "",
        (_, Some(r)) => r,
    };
    let mut body = CloudFormationCustomResourceResponse::default();
    body.status = match answer.status {
        Status::Success => CloudFormationCustomResourceResponseStatus::Success,
        Status::Failed => CloudFormationCustomResourceResponseStatus::Failed,
    };
    // CloudFormation rejects an empty id; the logical id is at least stable across retries.
    body.physical_resource_id = if !answer.physical_resource_id.is_empty() {
        answer.physical_resource_id.clone()
    } else if !target.logical_resource_id.is_empty() {
        target.logical_resource_id.clone()
    } else {
        UNKNOWN_PHYSICAL_ID.to_owned()
    };
    body.stack_id = target.stack_id.clone();
    body.request_id = target.request_id.clone();
    body.logical_resource_id = target.logical_resource_id.clone();
    body.no_echo = answer.no_echo;
    body.data = answer.data.clone().into_iter().collect();

    body.reason = Some(reason.to_owned());
    let full = to_json(&body);
    if full.len() <= MAX_BODY_BYTES {
        return full;
    }
    if let Some(fitted) = fit_reason(&mut body, reason, "") {
        return fitted;
    }
    body.data.clear();
    fit_reason(&mut body, reason, DATA_DROPPED)
        .or_else(|| fit_reason(&mut body, reason, ""))
        .unwrap_or_else(|| {
            body.reason = Some(ELLIPSIS.to_owned());
            to_json(&body)
        })
}

/// Sets the Reason to the longest prefix of `reason` (cut on a char boundary, marked with an
/// ellipsis when cut) followed by `note` that keeps the body within the limit.
fn fit_reason(
    body: &mut CloudFormationCustomResourceResponse,
    reason: &str,
    note: &str,
) -> Option<Vec<u8>> {
    let note = if reason.is_empty() {
        note.trim_start()
    } else {
        note
    };
    body.reason = Some(String::new());
    let room = MAX_BODY_BYTES.checked_sub(to_json(body).len())?;
    let whole = escaped_len(reason) + escaped_len(note);
    let text = if whole <= room {
        format!("{reason}{note}")
    } else {
        let mut budget = room.checked_sub(escaped_len(ELLIPSIS) + escaped_len(note))?;
        let mut end = 0;
        for (i, c) in reason.char_indices() {
            let cost = escaped_char_len(c);
            if cost > budget {
                break;
            }
            budget -= cost;
            end = i + c.len_utf8();
        }
        format!("{}{ELLIPSIS}{note}", &reason[..end])
    };
    body.reason = Some(text);
    let rendered = to_json(body);
    (rendered.len() <= MAX_BODY_BYTES).then_some(rendered)
}

/// Bytes `c` takes inside a JSON string as serde_json writes it (it escapes only `"`, `\` and
/// control characters; everything else is written as UTF-8).
fn escaped_char_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\u{08}' | '\u{0C}' | '\n' | '\r' | '\t' => 2,
        c if c < ' ' => 6,
        c => c.len_utf8(),
    }
}

fn escaped_len(s: &str) -> usize {
    s.chars().map(escaped_char_len).sum()
}

fn to_json(body: &CloudFormationCustomResourceResponse) -> Vec<u8> {
    // Cannot fail: the body is strings, a bool and a string-to-string map.
    serde_json::to_vec(body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn target() -> ResponseTarget {
        ResponseTarget {
            response_url: "https://example.s3.amazonaws.com/x?sig=secret".into(),
            stack_id: "arn:aws:cloudformation:us-east-1:123456789012:stack/s/guid".into(),
            request_id: "req-1".into(),
            logical_resource_id: "DataVendorAccess".into(),
            physical_resource_id: None,
        }
    }

    fn answer(status: Status, reason: Option<&str>) -> Answer {
        Answer {
            status,
            reason: reason.map(str::to_owned),
            physical_resource_id: "vg-1234".into(),
            data: BTreeMap::new(),
            no_echo: false,
        }
    }

    fn parse(body: &[u8]) -> Value {
        assert!(body.len() <= MAX_BODY_BYTES, "{} bytes", body.len());
        let text = std::str::from_utf8(body).expect("valid UTF-8");
        serde_json::from_str(text).expect("valid JSON")
    }

    #[test]
    fn renders_every_field() {
        let mut a = answer(Status::Success, None);
        a.data.insert("GrantId".into(), "1234".into());
        a.no_echo = true;
        let v = parse(&render(&target(), &a));
        assert_eq!(
            v,
            serde_json::json!({
                "Status": "SUCCESS",
                "Reason": "",
                "PhysicalResourceId": "vg-1234",
                "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/s/guid",
                "RequestId": "req-1",
                "LogicalResourceId": "DataVendorAccess",
                "NoEcho": true,
                "Data": {"GrantId": "1234"},
            })
        );
        assert!(
            !String::from_utf8(render(&target(), &a))
                .unwrap()
                .contains("secret")
        );
    }

    #[test]
    fn failed_always_has_a_reason() {
        for reason in [None, Some(""), Some("  \n")] {
            let v = parse(&render(&target(), &answer(Status::Failed, reason)));
            assert_eq!(v["Status"], "FAILED");
            assert_eq!(v["Reason"], DEFAULT_FAILED_REASON);
        }
        let v = parse(&render(
            &target(),
            &answer(Status::Failed, Some("BucketName is missing")),
        ));
        assert_eq!(v["Reason"], "BucketName is missing");
    }

    #[test]
    fn physical_resource_id_is_never_empty() {
        let mut a = answer(Status::Failed, Some("x"));
        a.physical_resource_id.clear();
        assert_eq!(
            parse(&render(&target(), &a))["PhysicalResourceId"],
            "DataVendorAccess"
        );
        let mut t = target();
        t.logical_resource_id.clear();
        assert_eq!(
            parse(&render(&t, &a))["PhysicalResourceId"],
            UNKNOWN_PHYSICAL_ID
        );
    }

    /// The body length with `reason`, before any shortening.
    fn natural_len(reason: &str) -> usize {
        let mut b = CloudFormationCustomResourceResponse::default();
        b.status = CloudFormationCustomResourceResponseStatus::Failed;
        b.reason = Some(reason.to_owned());
        b.physical_resource_id = "vg-1234".into();
        let t = target();
        b.stack_id = t.stack_id;
        b.request_id = t.request_id;
        b.logical_resource_id = t.logical_resource_id;
        to_json(&b).len()
    }

    #[test]
    fn exactly_at_the_limit_is_kept_and_one_more_byte_is_cut() {
        let fill = MAX_BODY_BYTES - natural_len("");
        let exact = "a".repeat(fill);
        let body = render(&target(), &answer(Status::Failed, Some(&exact)));
        assert_eq!(body.len(), MAX_BODY_BYTES);
        assert_eq!(parse(&body)["Reason"], exact.as_str());

        let over = "a".repeat(fill + 1);
        let body = render(&target(), &answer(Status::Failed, Some(&over)));
        assert_eq!(body.len(), MAX_BODY_BYTES);
        let reason = parse(&body)["Reason"].as_str().unwrap().to_owned();
        assert!(reason.ends_with(ELLIPSIS), "{reason}");
        assert_eq!(
            reason,
            format!("{}{ELLIPSIS}", "a".repeat(fill - ELLIPSIS.len()))
        );
    }

    #[test]
    fn multi_byte_reasons_are_cut_on_char_boundaries() {
        for unit in ["é", "日本", "🦀", "a🦀é日", "\"\\\n\u{1}"] {
            for extra in 0..8 {
                let reason = format!("{}{}", "x".repeat(extra), unit.repeat(3000));
                let body = render(&target(), &answer(Status::Failed, Some(&reason)));
                let v = parse(&body);
                let got = v["Reason"].as_str().unwrap();
                assert!(got.ends_with(ELLIPSIS));
                assert!(reason.starts_with(got.trim_end_matches(ELLIPSIS)));
                // As long as fits: at most one escaped char short of the limit.
                assert!(
                    body.len() > MAX_BODY_BYTES - 6,
                    "{unit:?}+{extra}: {}",
                    body.len()
                );
            }
        }
    }

    #[test]
    fn near_limit_multi_byte_reasons_stay_within_the_limit() {
        let base = natural_len("");
        for unit in ["é", "日", "🦀"] {
            for fill in (MAX_BODY_BYTES - base - 8)..=(MAX_BODY_BYTES - base + 8) {
                let mut reason = "a".repeat(fill % unit.len());
                reason.push_str(&unit.repeat(fill / unit.len()));
                let body = render(&target(), &answer(Status::Failed, Some(&reason)));
                let got = parse(&body)["Reason"].as_str().unwrap().to_owned();
                if natural_len(&reason) <= MAX_BODY_BYTES {
                    assert_eq!(got, reason);
                } else {
                    assert!(got.ends_with(ELLIPSIS));
                }
            }
        }
    }

    #[test]
    fn huge_data_is_dropped_and_said_so() {
        let mut a = answer(Status::Success, Some("created"));
        for i in 0..100 {
            a.data.insert(format!("Key{i}"), "v".repeat(100));
        }
        let v = parse(&render(&target(), &a));
        assert_eq!(v["Data"], serde_json::json!({}));
        assert_eq!(v["Status"], "SUCCESS");
        assert_eq!(v["Reason"], format!("created{DATA_DROPPED}"));

        a.reason = None;
        let v = parse(&render(&target(), &a));
        assert_eq!(v["Reason"], DATA_DROPPED.trim_start());

        // A long reason is cut, and the note stays at its end.
        a.reason = Some("ü".repeat(5000));
        let v = parse(&render(&target(), &a));
        let reason = v["Reason"].as_str().unwrap();
        assert!(
            reason.ends_with(&format!("{ELLIPSIS}{DATA_DROPPED}")),
            "{reason}"
        );
    }

    #[test]
    fn data_that_fits_is_kept_and_the_reason_cut_first() {
        let mut a = answer(Status::Failed, Some(&"r".repeat(5000)));
        a.data.insert("GrantId".into(), "g".repeat(1000));
        let v = parse(&render(&target(), &a));
        assert_eq!(v["Data"]["GrantId"], "g".repeat(1000));
        assert!(v["Reason"].as_str().unwrap().ends_with(ELLIPSIS));
    }

    #[test]
    fn escaped_len_matches_serde_json() {
        for s in [
            "plain",
            "é日🦀",
            "\"q\" \\ \n\r\t\u{8}\u{c}",
            "\u{0}\u{1f}\u{7f}",
            "…",
        ] {
            let json = serde_json::to_string(s).unwrap();
            assert_eq!(escaped_len(s), json.len() - 2, "{s:?}");
        }
    }
}
