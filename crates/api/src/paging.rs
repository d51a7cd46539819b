//! Twilio's list envelope: `{"<key>": [...], "meta": {...}}` with keyset paging.
//!
//! Resources live in maps ordered by SID, and SIDs are time-ordered, so creation order is map
//! order. A page token names the SID the next page continues after (`PA<sid>`) or the SID the
//! previous page ends before (`PB<sid>`); both round-trip through `next_page_url` /
//! `previous_page_url`, which is all helper libraries use. Deleting or adding resources
//! between pages never repeats or skips one that existed throughout.

use std::collections::BTreeMap;
use std::ops::Bound;

use serde::Serialize;
use taskyard_engine::Sid;

use crate::error::ApiError;
use crate::params::Params;

pub const DEFAULT_PAGE_SIZE: usize = 50;
pub const MAX_PAGE_SIZE: usize = 1000;

/// Where a page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    Start,
    After(Sid),
    Before(Sid),
    /// Position in a list sorted by something other than creation (`PO<offset>`).
    Offset(usize),
}

/// The paging part of a list request, plus what is needed to build the meta URLs.
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub size: usize,
    pub page: u32,
    pub cursor: Cursor,
    /// `{public base}{path}`.
    pub url_base: String,
    /// The request's other query parameters, re-encoded, in request order.
    pub filters: String,
}

impl PageRequest {
    pub fn parse(query: &Params, url_base: String) -> Result<PageRequest, ApiError> {
        let size = match query.int::<usize>("PageSize")? {
            None => DEFAULT_PAGE_SIZE,
            Some(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
            Some(_) => {
                return Err(ApiError::invalid(format!(
                    "PageSize must be between 1 and {MAX_PAGE_SIZE}"
                )));
            }
        };
        let page = query.int::<u32>("Page")?.unwrap_or(0);
        let cursor = match query.str("PageToken") {
            None | Some("") => Cursor::Start,
            Some(t) => {
                let bad = || {
                    ApiError::invalid(format!("PageToken '{t}' is not a token this server issued"))
                };
                let (dir, sid) = t.split_at_checked(2).ok_or_else(bad)?;
                if dir == "PO" {
                    let n = t[2..].parse().map_err(|_| bad())?;
                    return Self::finish(query, url_base, size, page, Cursor::Offset(n));
                }
                let sid: Sid = sid.parse().map_err(|_| bad())?;
                match dir {
                    "PA" => Cursor::After(sid),
                    "PB" => Cursor::Before(sid),
                    _ => return Err(bad()),
                }
            }
        };
        Self::finish(query, url_base, size, page, cursor)
    }

    fn finish(
        query: &Params,
        url_base: String,
        size: usize,
        page: u32,
        cursor: Cursor,
    ) -> Result<PageRequest, ApiError> {
        if page > 0 && cursor == Cursor::Start {
            return Err(ApiError::invalid(
                "Absolute paging (Page without PageToken) is not supported; follow next_page_url (Twilio warning 40153)",
            ));
        }
        let mut filters = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &query.0 {
            if !matches!(k.as_str(), "PageSize" | "Page" | "PageToken") {
                filters.append_pair(k, v);
            }
        }
        Ok(PageRequest {
            size,
            page,
            cursor,
            url_base,
            filters: filters.finish(),
        })
    }

    fn url(&self, page: u32, token: Option<String>) -> String {
        let mut s = format!("{}?", self.url_base);
        if !self.filters.is_empty() {
            s.push_str(&self.filters);
            s.push('&');
        }
        s.push_str(&format!("PageSize={}&Page={page}", self.size));
        if let Some(t) = token {
            s.push_str("&PageToken=");
            s.push_str(&t);
        }
        s
    }

    fn token(&self) -> Option<String> {
        match self.cursor {
            Cursor::Start => None,
            Cursor::After(s) => Some(format!("PA{s}")),
            Cursor::Before(s) => Some(format!("PB{s}")),
            Cursor::Offset(n) => Some(format!("PO{n}")),
        }
    }

    /// Picks this page from `items`, a list already filtered and sorted some other way
    /// than by creation; tokens are offsets into it (`PO<n>`).
    pub fn select_sorted<'a, V>(&self, items: Vec<&'a V>) -> (Vec<&'a V>, Meta) {
        self.select_iter(items.into_iter())
    }

    /// [`select_sorted`](Self::select_sorted) over items produced in order, reading only as
    /// far as this page (and one more, to know whether there is a next one).
    pub fn select_iter<'a, V: 'a>(&self, items: impl Iterator<Item = &'a V>) -> (Vec<&'a V>, Meta) {
        let start = match self.cursor {
            Cursor::Offset(n) => n,
            _ => 0,
        };
        let mut page: Vec<&V> = items.skip(start).take(self.size + 1).collect();
        let more = page.len() > self.size;
        page.truncate(self.size);
        let next = more.then(|| format!("PO{}", start + self.size));
        let previous = (start > 0).then(|| format!("PO{}", start.saturating_sub(self.size)));
        (page, self.meta(previous, next))
    }

    /// The meta of a page of SID-ordered items from `first` to `last`, for lists paged by
    /// SID (tokens `PA<sid>` / `PB<sid>`).
    pub fn keyset_meta(
        &self,
        first: Option<Sid>,
        last: Option<Sid>,
        more_before: bool,
        more_after: bool,
    ) -> Meta {
        let next = last.filter(|_| more_after).map(|sid| format!("PA{sid}"));
        let previous = first.filter(|_| more_before).map(|sid| format!("PB{sid}"));
        self.meta(previous, next)
    }

    /// The meta of this page, given the tokens of the pages before and after it, if any.
    fn meta(&self, previous: Option<String>, next: Option<String>) -> Meta {
        Meta {
            page: self.page,
            page_size: self.size,
            first_page_url: self.url(0, None),
            previous_page_url: previous.map(|t| self.url(self.page.saturating_sub(1), Some(t))),
            url: self.url(self.page, self.token()),
            next_page_url: next.map(|t| self.url(self.page + 1, Some(t))),
            key: "",
        }
    }

    /// Picks this page's entries from `map` (those `keep` accepts) and builds the meta.
    pub fn select<'a, V>(
        &self,
        map: &'a BTreeMap<Sid, V>,
        keep: impl Fn(&V) -> bool,
    ) -> (Vec<&'a V>, Meta) {
        let n = self.size;
        let (items, more_before, more_after): (Vec<(&Sid, &V)>, bool, bool) = match self.cursor {
            Cursor::Start | Cursor::After(_) => {
                let lower = match self.cursor {
                    Cursor::After(s) => Bound::Excluded(s),
                    _ => Bound::Unbounded,
                };
                let mut items: Vec<_> = map
                    .range((lower, Bound::Unbounded))
                    .filter(|(_, v)| keep(v))
                    .take(n + 1)
                    .collect();
                let more = items.len() > n;
                items.truncate(n);
                (items, self.page > 0, more)
            }
            Cursor::Offset(_) => (Vec::new(), false, false),
            Cursor::Before(s) => {
                let mut items: Vec<_> = map
                    .range(..s)
                    .rev()
                    .filter(|(_, v)| keep(v))
                    .take(n + 1)
                    .collect();
                let more = items.len() > n;
                items.truncate(n);
                items.reverse();
                (items, more && self.page > 0, true)
            }
        };
        let meta = self.keyset_meta(
            items.first().map(|(s, _)| **s),
            items.last().map(|(s, _)| **s),
            more_before,
            more_after,
        );
        (items.into_iter().map(|(_, v)| v).collect(), meta)
    }
}

/// The `meta` object of a list response.
#[derive(Debug, Clone, Serialize)]
pub struct Meta {
    pub page: u32,
    pub page_size: usize,
    pub first_page_url: String,
    pub previous_page_url: Option<String>,
    pub url: String,
    pub next_page_url: Option<String>,
    pub key: &'static str,
}

/// Serializes `{"<key>": items, "meta": meta}`.
pub fn envelope<T: Serialize>(key: &'static str, items: Vec<T>, mut meta: Meta) -> String {
    meta.key = key;
    let mut map = serde_json::Map::new();
    map.insert(
        key.to_string(),
        serde_json::to_value(items).unwrap_or_default(),
    );
    map.insert(
        "meta".to_string(),
        serde_json::to_value(meta).unwrap_or_default(),
    );
    serde_json::Value::Object(map).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(n: u128) -> BTreeMap<Sid, u128> {
        (1..=n).map(|i| (Sid::new("WK", i), i)).collect()
    }

    fn req(q: &str) -> PageRequest {
        PageRequest::parse(&Params::parse(q.as_bytes()), "http://h/v1/X".into()).expect("valid")
    }

    fn token(url: &str) -> String {
        let q = url.split_once('?').expect("query").1;
        q.to_string()
    }

    #[test]
    fn walks_forward_and_back_through_all_items() {
        let m = map(7);
        let (items, meta) = req("FriendlyName=a%20b&PageSize=3").select(&m, |_| true);
        assert_eq!(items, vec![&1, &2, &3]);
        assert!(meta.previous_page_url.is_none());
        assert_eq!(
            meta.first_page_url,
            "http://h/v1/X?FriendlyName=a+b&PageSize=3&Page=0"
        );
        let next = meta.next_page_url.expect("next");
        let (items, meta) = req(&token(&next)).select(&m, |_| true);
        assert_eq!(items, vec![&4, &5, &6]);
        assert_eq!(meta.page, 1);
        let prev = meta.previous_page_url.clone().expect("previous");
        let (back, _) = req(&token(&prev)).select(&m, |_| true);
        assert_eq!(back, vec![&1, &2, &3]);
        let (items, meta) = req(&token(&meta.next_page_url.expect("next"))).select(&m, |_| true);
        assert_eq!(items, vec![&7]);
        assert!(meta.next_page_url.is_none());
    }

    #[test]
    fn filters_apply_before_paging() {
        let m = map(10);
        let (items, meta) = req("PageSize=2").select(&m, |v| v % 3 == 0);
        assert_eq!(items, vec![&3, &6]);
        let (items, meta2) =
            req(&token(&meta.next_page_url.expect("next"))).select(&m, |v| v % 3 == 0);
        assert_eq!(items, vec![&9]);
        assert!(meta2.next_page_url.is_none());
    }

    #[test]
    fn rejects_bad_paging_parameters() {
        for q in [
            "PageSize=0",
            "PageSize=1001",
            "PageSize=x",
            "Page=2",
            "PageToken=zz",
            "PageToken=PAnot",
        ] {
            assert!(
                PageRequest::parse(&Params::parse(q.as_bytes()), String::new()).is_err(),
                "{q}"
            );
        }
    }
}
