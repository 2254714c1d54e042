use super::share;

#[test]
fn upstream_connections_are_shared_out_whole() {
    for total in [1, 2, 3, 7, 64, 4096] {
        for workers in 1..=9 {
            let shares: Vec<usize> = (0..workers).map(|i| share(total, workers, i)).collect();
            assert!(
                shares.iter().all(|&s| s >= 1),
                "{total} over {workers}: {shares:?}"
            );
            let sum: usize = shares.iter().sum();
            // Exactly the total, unless there are more workers than connections (one each).
            assert_eq!(
                sum,
                total.max(workers),
                "{total} over {workers}: {shares:?}"
            );
            let (min, max) = (shares.iter().min().unwrap(), shares.iter().max().unwrap());
            assert!(max - min <= 1, "{total} over {workers}: {shares:?}");
        }
    }
}
