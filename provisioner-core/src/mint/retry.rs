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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stays_under_its_cap() {
        let initial = Duration::from_millis(100);
        let max = Duration::from_millis(250);
        for attempt in 1..40 {
            let cap = initial.saturating_mul(1 << (attempt - 1).min(16)).min(max);
            let b = backoff(initial, max, attempt);
            assert!(b < cap, "attempt {attempt}: {b:?} >= {cap:?}");
        }
    }

    #[test]
    fn jitter_varies() {
        let samples: std::collections::BTreeSet<u64> =
            (0..32).map(|_| (random_fraction() * 1e9) as u64).collect();
        assert!(samples.len() > 16, "{samples:?}");
        assert!(samples.iter().all(|&s| s < 1_000_000_000));
    }
}
