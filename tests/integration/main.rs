//! Marina's integration tests: one binary, a module per area.

mod support;

mod api_base; // GET /v2/, unknown routes, error envelopes, warnings
mod api_blobs; // blob pull, range, delete
mod api_listing; // tag list, catalog, pagination
mod api_manifests; // manifest push/pull/delete, tag params, sparse, limits
mod api_referrers; // referrers index, filters, pagination, tag-schema upgrade
mod api_uploads; // every upload method, chunk rules, mounts, sessions
mod auth_api; // basic and token auth over HTTP: challenges, 401/403/429, token endpoint, catalog, mounts
mod auth_cli; // marina passwd, and entries written by Apache htpasswd -B
mod auth_clients; // skopeo, podman, buildah, oras through HTTPS + token auth (skipped when absent)
mod auth_properties; // proptest: random policies and requests vs a model; refused requests change nothing
mod auth_support; // fixtures: users, policies, test CA, HTTPS clients, tokens
mod auth_tls; // HTTPS with a test CA, certificate reload without restart
mod bench; // marina bench against in-process servers: every workload, cleanup, compare
mod clients; // skopeo, buildah, podman against the server (skipped when absent)
mod conformance;
mod connections; // connections that stop moving bytes are closed, and free what they held
mod crash; // SIGKILL during pushes: acknowledged writes survive, no corrupt blob
mod durability;
mod gc; // garbage collection: reachability, grace, marina gc, a collector racing writers // restarts, concurrent identical pushes, upload expiry
mod harness_client; // the harness HTTP client: bearer tokens, redirects, redaction
mod harness_docker_registry; // the harness against distribution 2.8 (skipped when absent)
mod harness_extensions; // extension checks against registries that break one rule, and read-only runs
mod harness_reference; // the harness against the in-process reference server
mod harness_reports; // report rendering: terminal, JUnit, JSON, HTML
mod listing_api; // the _marina listing extension over HTTP: scenarios, paging, filters, sorting
mod listing_client;
mod listing_fixture; // the listing extension's scenario registry
mod openapi; // the generated document, spec/openapi.json, /docs
mod operations; // /metrics, access log, SIGTERM draining, health, 507, start-up failures
mod outages; // a frozen database or bucket: /readyz and requests answer 503, then recover
mod postgres; // the registry on PostgreSQL metadata (MARINA_TEST_POSTGRES_URL)
mod properties;
mod pull_through; // the pull-through cache: upstreams by prefix and ns, faults, shared downloads, real clients
mod pull_through_clients; // skopeo, podman (registries.conf mirror) and containerd (hosts.toml, ns=) through the cache
mod replicas; // three servers on PostgreSQL + S3 behind a round-robin proxy
mod shared_sessions; // upload sessions continued by another server over the same stores
mod storage_contract; // every storage backend against the shared contract // proptest: blob round trips under random chunkings // marina conformance: suite doubles, report parsing, verdicts, server lifecycle // marina list* and its client: via the extension, and via fallbacks on docker-registry
