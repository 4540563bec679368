//! GitHub-style pagination: `per_page` (default 30, clamped to 100) and `page` (default 1) query
//! parameters, and the `Link` header with absolute URLs in GitHub's order
//! (`prev`, `next`, `last`, `first`).

const DEFAULT_PER_PAGE: usize = 30;
const MAX_PER_PAGE: usize = 100;

/// The page a list request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PageRequest {
    pub(crate) per_page: usize,
    pub(crate) page: usize,
}

impl PageRequest {
    /// Reads `per_page` and `page` from a raw query string; values that are missing, not positive
    /// integers or garbage fall back to the defaults, as on GitHub.
    pub(crate) fn from_query(query: &str) -> Self {
        let mut request = Self {
            per_page: DEFAULT_PER_PAGE,
            page: 1,
        };
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let Ok(number) = value.trim().parse::<usize>() else {
                continue;
            };
            match key.as_ref() {
                "per_page" if number > 0 => request.per_page = number.min(MAX_PER_PAGE),
                "page" if number > 0 => request.page = number,
                _ => {}
            }
        }
        request
    }
}

/// One page of `items` plus the `Link` header value for it (`None` when everything fits on one
/// page). `resource_url` is the absolute URL without query; `query` the request's raw query.
pub(crate) fn paginate<T>(
    items: Vec<T>,
    request: PageRequest,
    resource_url: &str,
    query: &str,
) -> (Vec<T>, Option<String>) {
    let total = items.len();
    let last = total.div_ceil(request.per_page).max(1);
    let start = request
        .per_page
        .saturating_mul(request.page.saturating_sub(1));
    let page: Vec<T> = items
        .into_iter()
        .skip(start)
        .take(request.per_page)
        .collect();
    let link = link_header(resource_url, query, request.page, last);
    (page, link)
}

/// The `Link` header for `page` of `last`, or `None` when there is no other page to point to.
pub(crate) fn link_header(
    resource_url: &str,
    query: &str,
    page: usize,
    last: usize,
) -> Option<String> {
    let mut relations: Vec<(usize, &str)> = Vec::new();
    if page > 1 {
        relations.push(((page - 1).min(last), "prev"));
    }
    if page < last {
        relations.push((page + 1, "next"));
        relations.push((last, "last"));
    }
    if page > 1 {
        relations.push((1, "first"));
    }
    if relations.is_empty() {
        return None;
    }
    let parts: Vec<String> = relations
        .into_iter()
        .map(|(target, rel)| {
            format!(
                "<{resource_url}?{}>; rel=\"{rel}\"",
                with_page(query, target)
            )
        })
        .collect();
    Some(parts.join(", "))
}

/// `query` with its `page` parameter set to `page` (replaced in place, or appended).
fn with_page(query: &str, page: usize) -> String {
    let page_value = page.to_string();
    let mut replaced = false;
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if key == "page" {
            if !replaced {
                out.append_pair("page", &page_value);
                replaced = true;
            }
        } else {
            out.append_pair(&key, &value);
        }
    }
    if !replaced {
        out.append_pair("page", &page_value);
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "http://ghes.test/api/v3/authorizations";

    #[test]
    fn defaults_and_clamping() {
        assert_eq!(
            PageRequest::from_query(""),
            PageRequest {
                per_page: 30,
                page: 1
            }
        );
        assert_eq!(PageRequest::from_query("per_page=500&page=3").per_page, 100);
        assert_eq!(PageRequest::from_query("per_page=500&page=3").page, 3);
        assert_eq!(
            PageRequest::from_query("per_page=0&page=-2"),
            PageRequest::from_query("per_page=x&page=0")
        );
        assert_eq!(PageRequest::from_query("per_page=0").per_page, 30);
    }

    #[test]
    fn single_page_has_no_link() {
        let request = PageRequest::from_query("per_page=10");
        let (items, link) = paginate((1..=10).collect(), request, URL, "per_page=10");
        assert_eq!(items.len(), 10);
        assert_eq!(link, None);
    }

    #[test]
    fn first_page_links_next_and_last() {
        let query = "client_id=abc&per_page=2";
        let (items, link) = paginate(
            (1..=5).collect(),
            PageRequest::from_query(query),
            URL,
            query,
        );
        assert_eq!(items, [1, 2]);
        assert_eq!(
            link.as_deref(),
            Some(concat!(
                "<http://ghes.test/api/v3/authorizations?client_id=abc&per_page=2&page=2>; rel=\"next\", ",
                "<http://ghes.test/api/v3/authorizations?client_id=abc&per_page=2&page=3>; rel=\"last\""
            ))
        );
    }

    #[test]
    fn middle_page_links_all_four_in_github_order() {
        let query = "per_page=2&page=2&client_id=abc";
        let (items, link) = paginate(
            (1..=5).collect(),
            PageRequest::from_query(query),
            URL,
            query,
        );
        assert_eq!(items, [3, 4]);
        let link = link.unwrap();
        let rels: Vec<&str> = link.split(", ").collect();
        assert_eq!(
            rels,
            [
                "<http://ghes.test/api/v3/authorizations?per_page=2&page=1&client_id=abc>; rel=\"prev\"",
                "<http://ghes.test/api/v3/authorizations?per_page=2&page=3&client_id=abc>; rel=\"next\"",
                "<http://ghes.test/api/v3/authorizations?per_page=2&page=3&client_id=abc>; rel=\"last\"",
                "<http://ghes.test/api/v3/authorizations?per_page=2&page=1&client_id=abc>; rel=\"first\"",
            ]
        );
    }

    #[test]
    fn last_page_has_no_next_and_beyond_last_is_empty() {
        let (items, link) = paginate(
            (1..=5).collect(),
            PageRequest::from_query("per_page=2&page=3"),
            URL,
            "per_page=2&page=3",
        );
        assert_eq!(items, [5]);
        let link = link.unwrap();
        assert!(!link.contains("rel=\"next\"") && link.contains("page=2>; rel=\"prev\""));
        let (items, link) = paginate(
            (1..=5).collect::<Vec<_>>(),
            PageRequest::from_query("per_page=2&page=9"),
            URL,
            "per_page=2&page=9",
        );
        assert!(items.is_empty());
        assert!(link.unwrap().starts_with(
            "<http://ghes.test/api/v3/authorizations?per_page=2&page=3>; rel=\"prev\""
        ));
    }

    #[test]
    fn exactly_full_pages() {
        let (_, link) = paginate(
            (1..=200).collect::<Vec<_>>(),
            PageRequest::from_query("per_page=100"),
            URL,
            "per_page=100",
        );
        assert_eq!(
            link.as_deref(),
            Some(
                "<http://ghes.test/api/v3/authorizations?per_page=100&page=2>; rel=\"next\", <http://ghes.test/api/v3/authorizations?per_page=100&page=2>; rel=\"last\""
            )
        );
    }
}
