//! Query parameters shared by the listing operations: page size, cursor, sort,
//! filters; parsed into the registry's types, and written back into `Link` URLs.

use poem_openapi::Enum;

use crate::api::error::ApiError;
use crate::api::headers::next_link;
use crate::oci::ErrorCode;
use crate::registry::listing::{
    decode_cursor, encode_cursor, AnnotationFilter, ManifestFilter, PageRequest, Position, Sort,
    SortField, SortOrder,
};

/// Page size when the request gives no `n`.
pub const DEFAULT_PAGE: u32 = 100;

/// What to sort by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "MarinaSortBy", rename_all = "lowercase")]
pub enum SortBy {
    /// Repository name, tag name, or manifest digest (byte order).
    Name,
    /// Time of the last push (ties broken by name).
    Pushed,
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "MarinaOrderBy", rename_all = "lowercase")]
pub enum OrderBy {
    /// Ascending.
    Asc,
    /// Descending.
    Desc,
}

/// The paging and sorting parameters of one request.
pub struct Paging {
    /// `n` as asked (before the registry caps it).
    pub n: u32,
    /// The sort.
    pub sort: Sort,
    /// Where to continue, from `next`.
    pub after: Option<Position>,
}

impl Paging {
    /// Reads `n`, `next`, `sort` and `order`.
    pub fn parse(
        n: Option<u32>,
        next: Option<&str>,
        sort: Option<SortBy>,
        order: Option<OrderBy>,
    ) -> Result<Paging, ApiError> {
        let sort = Sort {
            field: match sort.unwrap_or(SortBy::Name) {
                SortBy::Name => SortField::Name,
                SortBy::Pushed => SortField::Pushed,
            },
            order: match order.unwrap_or(OrderBy::Asc) {
                OrderBy::Asc => SortOrder::Asc,
                OrderBy::Desc => SortOrder::Desc,
            },
        };
        let after = match next.filter(|t| !t.is_empty()) {
            Some(t) => Some(
                decode_cursor(sort, t)
                    .map_err(|e| ApiError::bad_request(ErrorCode::Unsupported, e.to_string()))?,
            ),
            None => None,
        };
        Ok(Paging {
            n: n.unwrap_or(DEFAULT_PAGE),
            sort,
            after,
        })
    }

    /// The store's page request.
    pub fn request(&self) -> PageRequest {
        PageRequest {
            sort: self.sort,
            after: self.after.clone(),
            n: self.n,
        }
    }

    /// `Link: <path?…&next=…>; rel="next"` when more items follow `last`, carrying
    /// every other parameter of the request (`extra`) so the next page lists the
    /// same thing. `n` is the page size actually served.
    pub fn link(
        &self,
        path: &str,
        served: usize,
        more: bool,
        last: Option<Position>,
        extra: &[(&str, String)],
    ) -> Option<String> {
        let last = last.filter(|_| more && served > 0)?;
        let mut params: Vec<(&str, String)> = vec![
            ("n", served.to_string()),
            (
                "sort",
                match self.sort.field {
                    SortField::Name => "name",
                    SortField::Pushed => "pushed",
                }
                .to_string(),
            ),
            (
                "order",
                match self.sort.order {
                    SortOrder::Asc => "asc",
                    SortOrder::Desc => "desc",
                }
                .to_string(),
            ),
        ];
        params.extend(extra.iter().cloned());
        params.push(("next", encode_cursor(self.sort, &last)));
        let borrowed: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Some(next_link(path, &borrowed))
    }
}

/// Query parameters to repeat in a `Link`, in order.
pub type LinkParams = Vec<(&'static str, String)>;

/// Reads the `artifactType`, `annotation` and `tagged` filters, returning them with
/// the query parameters that repeat them in a `Link`.
pub fn parse_filter(
    artifact_type: Option<String>,
    annotations: &[String],
    tagged: Option<bool>,
) -> Result<(ManifestFilter, LinkParams), ApiError> {
    let mut link = Vec::new();
    let artifact_type = artifact_type.filter(|a| !a.is_empty());
    if let Some(a) = &artifact_type {
        link.push(("artifactType", a.clone()));
    }
    let mut parsed = Vec::new();
    for a in annotations {
        parsed.push(parse_annotation(a)?);
        link.push(("annotation", a.clone()));
    }
    if let Some(t) = tagged {
        link.push(("tagged", t.to_string()));
    }
    Ok((
        ManifestFilter {
            artifact_type,
            annotations: parsed,
            tagged,
        },
        link,
    ))
}

/// `KEY` (present) or `KEY=VALUE` (equal); the key cannot be empty.
pub fn parse_annotation(a: &str) -> Result<AnnotationFilter, ApiError> {
    let filter = match a.split_once('=') {
        Some((k, v)) => AnnotationFilter::Equals(k.to_string(), v.to_string()),
        None => AnnotationFilter::Present(a.to_string()),
    };
    match &filter {
        AnnotationFilter::Present(k) | AnnotationFilter::Equals(k, _) if k.is_empty() => {
            Err(ApiError::bad_request(
                ErrorCode::Unsupported,
                format!("annotation filter {a:?}: expected KEY or KEY=VALUE"),
            ))
        }
        _ => Ok(filter),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotation_filters() {
        assert_eq!(
            parse_annotation("org.opencontainers.image.created").unwrap(),
            AnnotationFilter::Present("org.opencontainers.image.created".into())
        );
        assert_eq!(
            parse_annotation("a=b=c").unwrap(),
            AnnotationFilter::Equals("a".into(), "b=c".into())
        );
        assert_eq!(
            parse_annotation("a=").unwrap(),
            AnnotationFilter::Equals("a".into(), "".into())
        );
        assert!(parse_annotation("").is_err());
        assert!(parse_annotation("=v").is_err());
    }

    #[test]
    fn links_carry_every_parameter_and_the_cursor() {
        let p = Paging::parse(Some(2), None, Some(SortBy::Pushed), Some(OrderBy::Desc)).unwrap();
        let last = Position {
            pushed_at: 7,
            key: "v1".into(),
        };
        let link = p
            .link(
                "/v2/a/_marina/list/tags",
                2,
                true,
                Some(last.clone()),
                &[("annotation", "k=v".into())],
            )
            .unwrap();
        let token = encode_cursor(p.sort, &last);
        assert_eq!(
            link,
            format!("</v2/a/_marina/list/tags?n=2&sort=pushed&order=desc&annotation=k%3Dv&next={token}>; rel=\"next\"")
        );
        assert!(p.link("/x", 2, false, Some(last.clone()), &[]).is_none());
        assert!(p.link("/x", 0, true, Some(last), &[]).is_none());
        let back = Paging::parse(
            None,
            Some(&token),
            Some(SortBy::Pushed),
            Some(OrderBy::Desc),
        )
        .unwrap();
        assert_eq!(
            back.after,
            Some(Position {
                pushed_at: 7,
                key: "v1".into()
            })
        );
        assert_eq!(back.n, DEFAULT_PAGE);
        assert!(Paging::parse(None, Some(&token), None, None).is_err());
        assert!(Paging::parse(None, Some("nothex"), None, None).is_err());
    }
}
