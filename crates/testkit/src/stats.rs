//! Counting over timestamps, for tests and benchmarks that check rates.

/// The most timestamps in any window of `window` units that begins at a
/// timestamp. `sorted` must be in ascending order.
pub fn max_in_window(sorted: &[u64], window: u64) -> usize {
    let mut most = 0;
    let mut end = 0;
    for (i, &start) in sorted.iter().enumerate() {
        while end < sorted.len() && sorted[end] < start + window {
            end += 1;
        }
        most = most.max(end - i);
    }
    most
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_densest_window() {
        assert_eq!(max_in_window(&[], 10), 0);
        assert_eq!(max_in_window(&[0, 5, 9, 10, 11, 30], 10), 4); // 5, 9, 10, 11
        assert_eq!(max_in_window(&[0, 1, 2, 3], 100), 4);
    }
}
