//! Paging through list results: `per_page=100` and the `Link` header's `rel="next"`.

use http::HeaderMap;

/// The most items GHES returns in one page.
pub const PER_PAGE: u32 = 100;

/// An upper bound on pages followed for one listing (100,000 items), so a server that keeps
/// answering with a `next` link cannot hold the client forever.
pub const MAX_PAGES: usize = 1000;

/// The `rel="next"` target of a `Link` header, if any.
pub fn next_link(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::LINK)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(|entry| {
            let mut parts = entry.split(';');
            let target = parts.next()?.trim();
            let target = target.strip_prefix('<')?.strip_suffix('>')?;
            let is_next = parts.any(|param| {
                let Some((key, value)) = param.split_once('=') else {
                    return false;
                };
                key.trim().eq_ignore_ascii_case("rel")
                    && value
                        .trim()
                        .trim_matches('"')
                        .split_whitespace()
                        .any(|rel| rel.eq_ignore_ascii_case("next"))
            });
            is_next.then(|| target.to_owned())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn link(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::LINK, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn finds_next_among_other_relations() {
        let headers = link(
            r#"<https://h/api/v3/authorizations?page=1>; rel="prev", <https://h/api/v3/authorizations?page=3&per_page=100>; rel="next", <https://h/api/v3/authorizations?page=5>; rel="last""#,
        );
        assert_eq!(
            next_link(&headers).as_deref(),
            Some("https://h/api/v3/authorizations?page=3&per_page=100")
        );
    }

    #[test]
    fn no_next_on_the_last_page() {
        let headers =
            link(r#"<https://h/x?page=1>; rel="first", <https://h/x?page=2>; rel="prev""#);
        assert_eq!(next_link(&headers), None);
        assert_eq!(next_link(&HeaderMap::new()), None);
    }
}
