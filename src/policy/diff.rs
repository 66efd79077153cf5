//! A readable statement-level diff of two policies, compared by meaning: what `vendor-grants plan
//! --diff` prints so a person can see that only the grant's own statements move.

use super::canonical::statements_equivalent;
use super::document::{PolicyDocument, Statement};

fn label(s: &Statement) -> String {
    match &s.sid {
        Some(sid) => format!("Sid {sid}"),
        None => "statement without Sid".to_string(),
    }
}

fn block(out: &mut String, mark: char, s: &Statement) {
    let json = serde_json::to_string_pretty(s).unwrap_or_default();
    for line in json.lines() {
        out.push(mark);
        out.push_str("   ");
        out.push_str(line);
        out.push('\n');
    }
}

/// Lines prefixed `=` (kept as it was), `-` (removed) and `+` (added), one block per statement;
/// a document that appears or disappears as a whole is said so.
pub fn statement_diff(before: Option<&PolicyDocument>, after: Option<&PolicyDocument>) -> String {
    let mut out = String::new();
    let none: Vec<Statement> = Vec::new();
    let old = before.map(|d| &d.statements).unwrap_or(&none);
    let new = after.map(|d| &d.statements).unwrap_or(&none);
    match (before, after) {
        (None, Some(_)) => out.push_str("  (no policy yet: it will be created)\n"),
        (Some(_), None) => out.push_str("  (no statement is left: the policy will be deleted)\n"),
        (None, None) => out.push_str("  (no policy, none needed)\n"),
        _ => {}
    }
    for s in old {
        if new.iter().any(|n| statements_equivalent(s, n)) {
            out.push_str(&format!("=   {} (unchanged)\n", label(s)));
        } else {
            out.push_str(&format!("-   {}\n", label(s)));
            block(&mut out, '-', s);
        }
    }
    for s in new {
        if !old.iter().any(|o| statements_equivalent(s, o)) {
            out.push_str(&format!("+   {}\n", label(s)));
            block(&mut out, '+', s);
        }
    }
    out
}
