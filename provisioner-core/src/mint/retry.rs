//! Backoff between STS attempts: full jitter, never past the deadline (the caller
//! caps every sleep at the time left).

use super::*;

/// Full-jitter exponential backoff: uniform in [0, min(max, initial * 2^(attempt-1))).
pub(super) fn backoff(initial: Duration, max: Duration, attempt: u32) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(16);
    initial
        .saturating_mul(factor)
        .min(max)
        .mul_f64(random_fraction())
}

/// Full jitter in [0, 1): fastrand, which the AWS SDK already brings in.
pub(super) fn random_fraction() -> f64 {
    fastrand::f64()
}
