//! Query-string access: single values, repeated values (`tag=a&tag=b`) and page sizes.

use berth_core::Error;

/// The decoded query pairs of a request.
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    /// Decodes `a=b&c=d` (absent query: empty).
    pub(crate) fn parse(raw: Option<&str>) -> Query {
        Query(
            url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }

    /// The first value of `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order.
    pub(crate) fn all(&self, key: &str) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `n` as a page size; malformed or negative values are `PAGINATION_NUMBER_INVALID`.
    pub(crate) fn page_size(&self) -> Result<Option<usize>, Error> {
        match self.get("n") {
            None | Some("") => Ok(None),
            Some(v) => v.parse::<usize>().map(Some).map_err(|_| {
                Error::PaginationInvalid(format!("n={v:?} is not a non-negative integer"))
            }),
        }
    }
}
