//! Embedding Marina in your own poem application: the registry mounted under a
//! path prefix, next to a route of your own, behind a middleware of your own.
//!
//! Run: `cargo run --example embed`, then `curl http://127.0.0.1:5050/registry/v2/`.
//! (Container clients expect the API at the root; a prefix suits tools and tests.)

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use poem::{handler, Endpoint, EndpointExt, IntoResponse, Request, Response, Route};

/// Counts requests and stamps every response, to show a middleware around the registry.
fn app(registry: &marina::Registry, counter: Arc<AtomicU64>) -> impl Endpoint<Output = Response> {
    Route::new()
        .nest("/registry", registry.endpoint())
        .at("/hello", hello)
        .around(move |ep, req: Request| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::Relaxed);
                let mut resp = ep.call(req).await?.into_response();
                resp.headers_mut()
                    .insert("x-served-by", "marina-embed-example".parse().unwrap());
                Ok(resp)
            }
        })
}

#[handler]
fn hello() -> &'static str {
    "hello from the host application"
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let registry = marina::Registry::builder()
        .data_dir("./embed-example-data")
        .build()?;
    tokio::spawn(registry.maintenance());
    let counter = Arc::new(AtomicU64::new(0));
    println!("serving on http://127.0.0.1:5050 (registry under /registry, plus /hello)");
    poem::Server::new(poem::listener::TcpListener::bind("127.0.0.1:5050"))
        .run(app(&registry, counter))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem::listener::{Acceptor, Listener, TcpListener};

    #[tokio::test]
    async fn the_registry_answers_under_its_prefix_beside_the_host_routes() {
        let registry = marina::Registry::builder().in_memory().build().unwrap();
        let counter = Arc::new(AtomicU64::new(0));
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .unwrap();
        let addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
        let server = tokio::spawn(
            poem::Server::new_with_acceptor(acceptor).run(app(&registry, counter.clone())),
        );
        let base = format!("http://{addr}");
        let http = reqwest::Client::new();

        let r = http.get(format!("{base}/hello")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-served-by"], "marina-embed-example");

        let r = http
            .get(format!("{base}/registry/v2/"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["docker-distribution-api-version"],
            "registry/2.0"
        );

        // A push under the prefix gets a Location that carries the prefix.
        let r = http
            .post(format!("{base}/registry/v2/team/app/blobs/uploads/"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let location = r.headers()["location"].to_str().unwrap().to_string();
        assert!(
            location.starts_with("/registry/v2/team/app/blobs/uploads/"),
            "{location}"
        );
        let digest = marina::oci::Algorithm::Sha256.digest_of(b"embedded");
        let r = http
            .put(format!("{base}{location}?digest={digest}"))
            .body("embedded")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let r = http
            .get(format!("{base}/registry/v2/team/app/blobs/{digest}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "embedded");

        // Extension discovery names the definition document under the prefix too.
        let r = http
            .get(format!("{base}/registry/v2/team/app/_oci/ext/discover"))
            .send()
            .await
            .unwrap();
        let discovered: serde_json::Value = r.json().await.unwrap();
        let url = discovered["extensions"][0]["url"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(url, "/registry/extensions/_marina.md");
        let r = http.get(format!("{base}{url}")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.text().await.unwrap().starts_with("# _marina"));

        // Unknown paths under the prefix still get the spec's error envelope.
        let r = http
            .get(format!("{base}/registry/v2/team/app/nothing"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        assert!(r.text().await.unwrap().contains("\"errors\""));
        assert_eq!(counter.load(Ordering::Relaxed), 8);
        server.abort();
    }
}
