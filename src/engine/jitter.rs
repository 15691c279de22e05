//! Random shortening of reconnect and rejoin delays (see `Config::reconnect_jitter`): a
//! splitmix64 generator per socket, seeded from the configuration or the clock.

use std::time::Duration;

pub(crate) struct Jitter(u64);

impl Jitter {
    pub(crate) fn new(seed: Option<u64>) -> Self {
        let seed = seed.unwrap_or_else(|| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            now.as_nanos() as u64 ^ (&now as *const _ as u64)
        });
        Jitter(seed)
    }

    fn next_unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `delay` shortened by a random fraction of at most `jitter` (clamped to 0..=1); exactly
    /// `delay` when `jitter` is 0 (no random number is drawn then).
    pub(crate) fn apply(&mut self, delay: Duration, jitter: f64) -> Duration {
        if jitter.is_nan() || jitter <= 0.0 {
            return delay;
        }
        let cut = jitter.min(1.0) * self.next_unit();
        delay.mul_f64(1.0 - cut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_within_the_bounds_and_vary() {
        let mut j = Jitter::new(Some(7));
        let d = Duration::from_millis(1000);
        let drawn: Vec<Duration> = (0..1000).map(|_| j.apply(d, 0.25)).collect();
        assert!(drawn
            .iter()
            .all(|x| *x >= Duration::from_millis(750) && *x <= d));
        let min = drawn.iter().min().unwrap();
        let max = drawn.iter().max().unwrap();
        assert!(*min < Duration::from_millis(760) && *max > Duration::from_millis(990));
        assert_eq!(j.apply(d, 0.0), d);
    }
}
