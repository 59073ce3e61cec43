//! Latency statistics and how `bench` prints them.

use std::time::Duration;

use serde_json::{Map, Value};

/// Min, median, p90 and mean of a set of durations, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Latency {
    pub(super) min_ms: f64,
    pub(super) median_ms: f64,
    pub(super) p90_ms: f64,
    pub(super) mean_ms: f64,
}

impl Latency {
    /// The statistics of `samples` (all zero when empty). The median of an
    /// even count is the mean of the two middle values; p90 is the value at
    /// rank ceil(0.9 n) (nearest rank).
    pub(super) fn of(samples: &[Duration]) -> Self {
        if samples.is_empty() {
            return Self {
                min_ms: 0.0,
                median_ms: 0.0,
                p90_ms: 0.0,
                mean_ms: 0.0,
            };
        }
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        let n = ms.len();
        let median = if n % 2 == 1 {
            ms[n / 2]
        } else {
            (ms[n / 2 - 1] + ms[n / 2]) / 2.0
        };
        let rank = (n * 9).div_ceil(10).max(1);
        Self {
            min_ms: ms[0],
            median_ms: median,
            p90_ms: ms[rank - 1],
            mean_ms: ms.iter().sum::<f64>() / n as f64,
        }
    }

    /// Adds `min_ms`, `median_ms`, `p90_ms`, `mean_ms` to a JSON object.
    pub(super) fn insert(&self, obj: &mut Map<String, Value>) {
        obj.insert("min_ms".into(), self.min_ms.into());
        obj.insert("median_ms".into(), self.median_ms.into());
        obj.insert("p90_ms".into(), self.p90_ms.into());
        obj.insert("mean_ms".into(), self.mean_ms.into());
    }
}

/// Median of a list of figures (0 when empty).
pub(super) fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Bytes as MiB with one decimal, or "-" when unknown.
pub(super) fn mib(b: Option<u64>) -> String {
    b.map_or_else(
        || "-".into(),
        |b| format!("{:.1} MiB", b as f64 / 1048576.0),
    )
}

/// An optional byte count as JSON (null when unknown).
pub(super) fn bytes_json(b: Option<u64>) -> Value {
    b.map_or(Value::Null, Value::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_statistics() {
        let d: Vec<Duration> = [5u64, 1, 4, 2, 3, 10, 6, 7, 9, 8]
            .iter()
            .map(|&ms| Duration::from_millis(ms))
            .collect();
        let l = Latency::of(&d);
        assert_eq!(l.min_ms, 1.0);
        assert_eq!(l.median_ms, 5.5);
        assert_eq!(l.p90_ms, 9.0);
        assert_eq!(l.mean_ms, 5.5);
        let one = Latency::of(&[Duration::from_millis(3)]);
        assert_eq!((one.min_ms, one.median_ms, one.p90_ms), (3.0, 3.0, 3.0));
        assert_eq!(Latency::of(&[]).median_ms, 0.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
    }
}
