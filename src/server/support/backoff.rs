//! Backoff schedules: how long to wait before the next attempt, doubling from a first wait to a
//! cap. Reconnects, consumers and the scheduler share it, so every retry in scanpay slows down
//! the same way.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Self {
        Backoff {
            first,
            max,
            next: first,
        }
    }

    /// The wait before the next attempt (each call doubles the one after, up to the cap).
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }

    /// It worked: the next failure starts from the first wait again.
    pub fn reset(&mut self) {
        self.next = self.first;
    }

    /// The wait before attempt `n` (0-based) without keeping state: `first · 2ⁿ`, capped.
    pub fn nth(first: Duration, max: Duration, n: u32) -> Duration {
        first.saturating_mul(1u32 << n.min(20)).min(max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_and_starts_over_after_a_success() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(250), ms(1000));
        assert_eq!(
            [b.next_wait(), b.next_wait(), b.next_wait(), b.next_wait()],
            [ms(250), ms(500), ms(1000), ms(1000)]
        );
        b.reset();
        assert_eq!(b.next_wait(), ms(250));
        assert_eq!(Backoff::nth(ms(100), ms(5000), 0), ms(100));
        assert_eq!(Backoff::nth(ms(100), ms(5000), 3), ms(800));
        assert_eq!(Backoff::nth(ms(100), ms(5000), 40), ms(5000));
    }
}
