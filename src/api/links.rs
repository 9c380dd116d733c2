//! OpenAPI `links` for the generated document. poem-openapi cannot declare
//! them, so they are added to its JSON: a pushed manifest or blob leads to the
//! operations that take its digest (`Docker-Content-Digest`), an upload session
//! to those that take its id (`Docker-Upload-UUID`, or the session in the
//! path). Fuzzers (schemathesis) and "Try it out" follow them to chain calls.

use serde_json::{json, Map, Value};

/// Where a link's values come from.
const NAME: &str = "$request.path.name";
const SESSION: &str = "$request.path.session";
const NEW_SESSION: &str = "$response.header.Docker-Upload-UUID";
const DIGEST: &str = "$response.header.Docker-Content-Digest";

/// `(operation, status, link name, target operation, [(parameter, value)])`.
type LinkRow = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// Every link of the document.
const LINKS: &[LinkRow] = &[
    (
        "putManifest",
        "201",
        "GetManifestByDigest",
        "getManifest",
        &[("name", NAME), ("reference", DIGEST)],
    ),
    (
        "putManifest",
        "201",
        "HeadManifestByDigest",
        "headManifest",
        &[("name", NAME), ("reference", DIGEST)],
    ),
    (
        "putManifest",
        "201",
        "DeleteManifestByDigest",
        "deleteManifest",
        &[("name", NAME), ("reference", DIGEST)],
    ),
    (
        "putManifest",
        "201",
        "ListReferrersOfManifest",
        "listReferrers",
        &[("name", NAME), ("digest", DIGEST)],
    ),
    (
        "startUpload",
        "201",
        "GetBlob",
        "getBlob",
        &[("name", NAME), ("digest", DIGEST)],
    ),
    (
        "startUpload",
        "201",
        "DeleteBlob",
        "deleteBlob",
        &[("name", NAME), ("digest", DIGEST)],
    ),
    (
        "startUpload",
        "202",
        "UploadChunk",
        "uploadChunk",
        &[("name", NAME), ("session", NEW_SESSION)],
    ),
    (
        "startUpload",
        "202",
        "FinishUpload",
        "finishUpload",
        &[("name", NAME), ("session", NEW_SESSION)],
    ),
    (
        "startUpload",
        "202",
        "UploadStatus",
        "uploadStatus",
        &[("name", NAME), ("session", NEW_SESSION)],
    ),
    (
        "startUpload",
        "202",
        "CancelUpload",
        "cancelUpload",
        &[("name", NAME), ("session", NEW_SESSION)],
    ),
    (
        "uploadChunk",
        "202",
        "NextChunk",
        "uploadChunk",
        &[("name", NAME), ("session", SESSION)],
    ),
    (
        "uploadChunk",
        "202",
        "FinishUpload",
        "finishUpload",
        &[("name", NAME), ("session", SESSION)],
    ),
    (
        "uploadChunk",
        "202",
        "UploadStatus",
        "uploadStatus",
        &[("name", NAME), ("session", SESSION)],
    ),
    (
        "uploadChunk",
        "202",
        "CancelUpload",
        "cancelUpload",
        &[("name", NAME), ("session", SESSION)],
    ),
    (
        "uploadStatus",
        "204",
        "UploadChunk",
        "uploadChunk",
        &[("name", NAME), ("session", SESSION)],
    ),
    (
        "uploadStatus",
        "204",
        "FinishUpload",
        "finishUpload",
        &[("name", NAME), ("session", SESSION)],
    ),
    (
        "finishUpload",
        "201",
        "GetBlob",
        "getBlob",
        &[("name", NAME), ("digest", DIGEST)],
    ),
    (
        "finishUpload",
        "201",
        "HeadBlob",
        "headBlob",
        &[("name", NAME), ("digest", DIGEST)],
    ),
    (
        "finishUpload",
        "201",
        "DeleteBlob",
        "deleteBlob",
        &[("name", NAME), ("digest", DIGEST)],
    ),
];

/// The document with [`LINKS`] added to the responses they start from. A row
/// whose operation or status the document lacks is skipped (and caught by the
/// tests).
pub(crate) fn with_links(document: &str) -> String {
    let Ok(mut doc) = serde_json::from_str::<Value>(document) else {
        return document.to_string();
    };
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            item.values_mut().for_each(add_links);
        }
    }
    serde_json::to_string_pretty(&doc).unwrap_or_else(|_| document.to_string())
}

/// Adds the rows that start from `op` to its responses.
fn add_links(op: &mut Value) {
    let Some(id) = op
        .get("operationId")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return;
    };
    for (_, status, name, to, params) in LINKS.iter().filter(|r| r.0 == id) {
        let Some(resp) = op.pointer_mut(&format!("/responses/{status}")) else {
            continue;
        };
        let Some(resp) = resp.as_object_mut() else {
            continue;
        };
        let links = resp.entry("links").or_insert_with(|| json!({}));
        let parameters: Map<String, Value> = params
            .iter()
            .map(|(p, v)| (p.to_string(), Value::String(v.to_string())))
            .collect();
        links[*name] = json!({ "operationId": to, "parameters": parameters });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every link starts from a response the document has, targets an
    /// operation it has, and fills only parameters that operation takes.
    #[test]
    fn every_link_joins_real_operations_and_parameters() {
        let doc: Value =
            serde_json::from_str(&with_links(&crate::api::openapi_document().unwrap())).unwrap();
        let mut ops = std::collections::HashMap::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                ops.insert(op["operationId"].as_str().unwrap().to_string(), op.clone());
            }
        }
        for (from, status, name, to, params) in LINKS {
            let link = &ops[*from]["responses"][*status]["links"][*name];
            assert_eq!(link["operationId"], *to, "{from} {status} {name}");
            let target = ops.get(*to).unwrap_or_else(|| panic!("no operation {to}"));
            let takes: Vec<&str> = target["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            for (p, _) in *params {
                assert!(takes.contains(p), "{to} takes no parameter {p} ({takes:?})");
            }
            let in_path = target["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap());
            for p in in_path {
                assert!(
                    params.iter().any(|(q, _)| *q == p),
                    "{from}->{to} leaves {p} unfilled"
                );
            }
            // The response header a value comes from is one the response documents.
            for (_, v) in *params {
                if let Some(h) = v.strip_prefix("$response.header.") {
                    let headers = ops[*from]["responses"][*status]["headers"]
                        .as_object()
                        .unwrap();
                    assert!(
                        headers.keys().any(|k| k.eq_ignore_ascii_case(h)),
                        "{from} {status} documents no {h} header"
                    );
                }
            }
        }
    }
}
