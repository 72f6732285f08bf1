//! When and how long to wait before trying a failed request again.

use std::time::Duration;

/// Exponential backoff with jitter, bounded in attempts and in total waiting time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// The first wait; each next one doubles, up to `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Total waiting allowed for one request; past it the error is returned.
    pub budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
            budget: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1`: the server's `Retry-After` when it gave one, else
    /// `base * 2^(attempt-1)` capped, with ±50 % jitter so many clients do not retry in step.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(self.max_delay);
        }
        let exponential = self.base_delay.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
        let capped = exponential.min(self.max_delay);
        capped.mul_f64(rand::random_range(0.5..1.5))
    }
}

/// `Retry-After` in seconds (the form Salesforce and proxies use); HTTP dates are ignored.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        let policy = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            ..RetryPolicy::default()
        };
        let first = policy.delay(1, None);
        assert!((Duration::from_millis(50)..=Duration::from_millis(150)).contains(&first), "{first:?}");
        let fourth = policy.delay(4, None);
        assert!((Duration::from_millis(400)..=Duration::from_millis(1200)).contains(&fourth), "{fourth:?}");
        assert!(policy.delay(30, None) <= Duration::from_millis(1500));
        assert_eq!(policy.delay(1, Some(Duration::from_secs(7))), Duration::from_secs(1));
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
