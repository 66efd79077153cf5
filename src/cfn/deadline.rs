//! How long the work may run. CloudFormation gives up at the earlier of the Lambda deadline and
//! the ServiceTimeout; the answer must be sent before that, and the work must stop early enough to
//! leave time for sending it.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// Kept back from the hard limit: the clock read, the PUT's last bytes and the Lambda freezing the
/// process all happen after our own timers fire.
const SAFETY: Duration = Duration::from_millis(500);
const MIN_ANSWER_MARGIN: Duration = Duration::from_secs(1);
const MAX_ANSWER_MARGIN: Duration = Duration::from_secs(10);
/// No invocation lasts this long (Lambda caps at 15 minutes, ServiceTimeout at an hour); the cap
/// only keeps `Instant` arithmetic from overflowing on a nonsense deadline.
const LONGEST: Duration = Duration::from_secs(24 * 3600);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadlines {
    /// Stop the resource's work by then, and answer with what is known.
    pub work: Instant,
    /// The answer's PUT must be done by then.
    pub answer: Instant,
}

/// `now` and `now_instant` are the same moment on the two clocks: the Lambda deadline is wall-clock
/// time, timers run on the monotonic clock. The ServiceTimeout is counted from `now` although
/// CloudFormation counts it from sending the request; the safety margin absorbs the difference.
pub fn deadlines(
    now: SystemTime,
    now_instant: Instant,
    lambda_deadline: SystemTime,
    service_timeout: Option<Duration>,
) -> Deadlines {
    let lambda_left = lambda_deadline
        .duration_since(now)
        .unwrap_or(Duration::ZERO);
    let limit = service_timeout.map_or(lambda_left, |s| s.min(lambda_left));
    let total = limit.min(LONGEST).saturating_sub(SAFETY);
    // A fifth of the time, within bounds: a short invocation cannot give the PUT ten seconds, and
    // a long one does not need more.
    let margin = (total / 5).clamp(MIN_ANSWER_MARGIN, MAX_ANSWER_MARGIN);
    Deadlines {
        work: now_instant + total.saturating_sub(margin),
        answer: now_instant + total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    /// (work, answer) as offsets from now.
    fn offsets(lambda_left: Duration, service_timeout: Option<Duration>) -> (Duration, Duration) {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let now_instant = Instant::now();
        let d = deadlines(now, now_instant, now + lambda_left, service_timeout);
        (d.work - now_instant, d.answer - now_instant)
    }

    #[test]
    fn lambda_deadline_alone() {
        // 15 minutes: margin capped at 10 s.
        assert_eq!(offsets(ms(900000), None), (ms(889500), ms(899500)));
        // 30 s: a fifth of 29.5 s.
        assert_eq!(offsets(ms(30000), None), (ms(23600), ms(29500)));
        // 3 s: margin floored at 1 s.
        assert_eq!(offsets(ms(3000), None), (ms(1500), ms(2500)));
    }

    #[test]
    fn the_earlier_of_lambda_and_service_timeout_wins() {
        assert_eq!(offsets(ms(900000), Some(ms(60000))), (ms(49500), ms(59500)));
        assert_eq!(
            offsets(ms(60000), Some(ms(3600000))),
            (ms(49500), ms(59500))
        );
        assert_eq!(offsets(ms(900000), Some(ms(1000))), (ms(0), ms(500)));
    }

    #[test]
    fn tiny_or_past_deadlines_leave_no_work_time() {
        assert_eq!(offsets(ms(1200), None), (Duration::ZERO, ms(700)));
        assert_eq!(offsets(ms(300), None), (Duration::ZERO, Duration::ZERO));
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let now_instant = Instant::now();
        let d = deadlines(now, now_instant, now - ms(5000), None);
        assert_eq!((d.work, d.answer), (now_instant, now_instant));
    }

    #[test]
    fn absurd_deadlines_do_not_overflow() {
        let (work, answer) = offsets(Duration::from_secs(u64::MAX / 4), None);
        assert_eq!(answer, LONGEST - SAFETY);
        assert_eq!(work, LONGEST - SAFETY - MAX_ANSWER_MARGIN);
    }
}
