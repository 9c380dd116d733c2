//! Property tests against a live in-process server.

use marina::oci::Algorithm;
use proptest::prelude::*;
use reqwest::Method;

use crate::support::TestServer;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Splits `len` bytes at the given cut points (sorted, deduplicated, inside 1..len).
fn partition(len: usize, mut cuts: Vec<usize>) -> Vec<(usize, usize)> {
    cuts.retain(|&c| c > 0 && c < len);
    cuts.sort_unstable();
    cuts.dedup();
    let mut bounds = vec![0];
    bounds.extend(cuts);
    bounds.push(len);
    bounds.windows(2).map(|w| (w[0], w[1])).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: Some(Box::new(proptest::test_runner::FileFailurePersistence::Direct("proptest-regressions/blob_round_trip.txt"))), ..ProptestConfig::default() })]

    /// Whatever the chunk partition (including zero-length edges and a last chunk
    /// carried by the closing PUT), the stored blob equals the bytes sent, and
    /// every PATCH reports `Range: 0-<end>`.
    #[test]
    fn blob_round_trip_under_random_chunkings(
        len in prop_oneof![Just(0usize), 1usize..64, 1000usize..1100, 4090usize..4100],
        cuts in proptest::collection::vec(0usize..4100, 0..6),
        last_in_put in any::<bool>(),
        sha512 in any::<bool>(),
        seed in any::<u8>(),
    ) {
        let rt = runtime();
        rt.block_on(async {
            let s = TestServer::start().await;
            let data: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
            let alg = if sha512 { Algorithm::Sha512 } else { Algorithm::Sha256 };
            let q = if sha512 { "?digest-algorithm=sha512" } else { "" };
            let r = s.req(Method::POST, &format!("/v2/p/blobs/uploads/{q}")).await.send().await;
            prop_assert_eq!(r.status.as_u16(), 202);
            let mut loc = r.header("location").unwrap().to_string();
            let mut parts = partition(len, cuts);
            let last = if last_in_put && len > 0 { parts.pop() } else { None };
            for (a, b) in parts {
                if a == b { continue; }
                let r = s.req(Method::PATCH, &loc).await.header("Content-Range", &format!("{a}-{}", b - 1)).body(data[a..b].to_vec()).send().await;
                prop_assert_eq!(r.status.as_u16(), 202, "{}", r.describe());
                let want_range = format!("0-{}", b - 1);
                prop_assert_eq!(r.header("range"), Some(want_range.as_str()));
                loc = r.header("location").unwrap().to_string();
            }
            let d = alg.digest_of(&data);
            let mut put = s.req(Method::PUT, &format!("{loc}?digest={d}")).await;
            if let Some((a, b)) = last {
                put = put.header("Content-Range", &format!("{a}-{}", b - 1)).body(data[a..b].to_vec());
            }
            let r = put.send().await;
            prop_assert_eq!(r.status.as_u16(), 201, "{}", r.describe());
            let got = s.get(&format!("/v2/p/blobs/{d}")).await;
            prop_assert_eq!(got.body, data);
            Ok(())
        })?;
    }
}
