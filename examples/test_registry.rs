//! Starting a throwaway registry in a Rust test with one line.
//!
//! `cargo test --example test_registry` runs the tests below; `cargo run --example
//! test_registry` starts one, pushes an image and prints where.

use marina::testing::TestRegistry;

#[tokio::main]
async fn main() {
    let reg = TestRegistry::start().await;
    let image = reg.push_image("demo/app", "v1").await;
    println!(
        "pushed {}/demo/app:v1 = {}",
        reg.host(),
        image.manifest_digest
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// From `#[tokio::test]`: push an image, an index and a referrer, then read
    /// them back over HTTP like any client.
    #[tokio::test]
    async fn async_test_with_a_registry() {
        let reg = TestRegistry::start().await;
        let image = reg.push_image("demo/app", "v1").await;
        let index = reg
            .push_index("demo/app", "multi", std::slice::from_ref(&image))
            .await;
        let sig = reg
            .push_referrer("demo/app", &image, "application/vnd.example.signature")
            .await;

        let http = reqwest::Client::new();
        let m = http
            .get(format!("{}/v2/demo/app/manifests/v1", reg.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(m.status(), 200);
        assert_eq!(m.bytes().await.unwrap(), image.manifest);
        let i = http
            .head(format!("{}/v2/demo/app/manifests/multi", reg.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(
            i.headers()["docker-content-digest"].to_str().unwrap(),
            index.to_string()
        );
        let refs: serde_json::Value = http
            .get(format!(
                "{}/v2/demo/app/referrers/{}",
                reg.url(),
                image.manifest_digest
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(refs["manifests"][0]["digest"], sig.to_string());
    }

    /// In memory: nothing touches the disk.
    #[tokio::test]
    async fn in_memory_registry() {
        let reg = TestRegistry::start_in_memory().await;
        let image = reg.push_image("mem/app", "latest").await;
        let tags: serde_json::Value = reqwest::get(format!("{}/v2/mem/app/tags/list", reg.url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(tags["tags"], serde_json::json!(["latest"]));
        assert_eq!(image.blobs.len(), 2);
    }

    /// From a plain `#[test]`: the registry brings its own runtime.
    #[test]
    fn plain_test_with_a_registry() {
        let reg = TestRegistry::start_blocking();
        let image = reg.block_on(reg.push_image("sync/app", "v1"));
        let status = reg.block_on(async {
            reqwest::get(format!(
                "{}/v2/sync/app/manifests/{}",
                reg.url(),
                image.manifest_digest
            ))
            .await
            .unwrap()
            .status()
        });
        assert_eq!(status, 200);
    }
}
