//! What the work was last stuck on, for the Reason of an answer that ran out of time. The driver
//! opens a slot around each event's work; whatever the work calls (the resource's clients) notes
//! its calls in it, without the driver knowing what they are.

use std::future::Future;
use std::sync::{Arc, Mutex};

tokio::task_local! {
    static SLOT: Slot;
}

/// The slot of one event's work.
#[derive(Clone, Debug, Default)]
pub struct Slot(Arc<Mutex<State>>);

#[derive(Debug, Default)]
struct State {
    /// The last call begun ("PutKeyPolicy on KEY") and whether it has ended.
    call: Option<String>,
    ended: bool,
    /// The last failure of that call, in words.
    failure: Option<String>,
}

impl Slot {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut state)
    }

    /// The sentence for the Reason: "the last call, CALL, kept failing: WHY" or "... was still
    /// waiting for an answer"; None when no call was under way or failing.
    pub fn summary(&self) -> Option<String> {
        self.with(|s| {
            let call = s.call.as_deref()?;
            match (&s.failure, s.ended) {
                (Some(why), _) => Some(format!("the last call, {call}, kept failing: {why}")),
                (None, false) => Some(format!(
                    "the last call, {call}, was still waiting for an answer"
                )),
                (None, true) => None,
            }
        })
    }
}

/// Runs `work` with `slot` as the slot its calls note themselves in.
pub fn scope<F: Future>(slot: Slot, work: F) -> impl Future<Output = F::Output> {
    SLOT.scope(slot, work)
}

fn current(f: impl FnOnce(&mut State)) {
    let _ = SLOT.try_with(|slot| slot.with(f));
}

/// A call (an attempt of it) is under way.
pub fn begun(call: &str) {
    current(|s| {
        if s.call.as_deref() != Some(call) {
            s.failure = None;
        }
        s.call = Some(call.to_string());
        s.ended = false;
    });
}

/// A call (an attempt of it) failed; `why` in words.
pub fn failed(call: &str, why: &str) {
    current(|s| {
        s.call = Some(call.to_string());
        s.failure = Some(why.to_string());
        s.ended = true;
    });
}

/// A call succeeded: it is no longer what the work is stuck on.
pub fn succeeded(call: &str) {
    current(|s| {
        if s.call.as_deref() == Some(call) {
            s.failure = None;
            s.ended = true;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_last_failing_call_is_summarised() {
        let slot = Slot::default();
        scope(slot.clone(), async {
            begun("GetBucketPolicy on b");
            succeeded("GetBucketPolicy on b");
        })
        .await;
        assert_eq!(slot.summary(), None);

        scope(slot.clone(), async {
            begun("PutKeyPolicy on k");
            failed("PutKeyPolicy on k", "connection refused");
            begun("PutKeyPolicy on k");
        })
        .await;
        assert_eq!(
            slot.summary().as_deref(),
            Some("the last call, PutKeyPolicy on k, kept failing: connection refused")
        );

        scope(slot.clone(), async { begun("DescribeKey on k") }).await;
        assert_eq!(
            slot.summary().as_deref(),
            Some("the last call, DescribeKey on k, was still waiting for an answer")
        );
        // Outside a scope nothing is noted, and nothing fails.
        failed("x", "y");
        assert!(slot.summary().is_some_and(|s| s.contains("DescribeKey")));
    }
}
