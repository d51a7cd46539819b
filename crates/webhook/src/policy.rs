//! Which addresses callbacks may reach: the SSRF policy of assignment, fallback and event
//! callback URLs.
//!
//! A callback URL is chosen by whoever holds an account's credentials, and Taskyard POSTs to
//! it from inside the operator's network. Left unchecked, a URL such as
//! `http://169.254.169.254/latest/meta-data/` would make the server fetch the cloud
//! provider's instance metadata (credentials included) on the caller's behalf, and the
//! answer's body ends up in the `reservation.assignment-callback` event. [`Policy`] decides,
//! address by address, whether a callback may go there.
//!
//! ## The rule
//!
//! 1. Only `http` and `https` URLs with a host are callbacks at all.
//! 2. The operator's lists come first: among the entries of the allow list and the deny
//!    list that contain the address, the **most specific** (longest prefix) decides, and
//!    the deny list wins a tie. So `deny 10.0.0.0/8` with `allow 10.1.2.3/32` allows only
//!    that one host of the network, `allow 169.254.169.254/32` re-opens the metadata address
//!    alone, and `allow 0.0.0.0/0,::/0` turns every built-in refusal off.
//! 3. An address no operator entry contains is refused if the built-in list ([`BUILT_IN`])
//!    contains it: link-local (which holds the cloud metadata address 169.254.169.254),
//!    other cloud metadata addresses, unspecified, broadcast and multicast addresses.
//! 4. Everything else is allowed — loopback and private ranges included, because a
//!    self-hosted server usually calls applications on the same host or LAN. An operator who
//!    wants them refused says so (`deny 127.0.0.0/8,::1/128,10.0.0.0/8,…`).
//!
//! An IPv4-mapped IPv6 address (`::ffff:169.254.169.254`) is judged as the IPv4 address it
//! carries, in every list, so it cannot slip past an IPv4 entry; a list entry written that way
//! (`::ffff:10.0.0.0/104`) is read as its IPv4 block (`10.0.0.0/8`).
//!
//! ## When it is checked
//!
//! * When a URL is saved ([`Policy::check_url`]): an IP-literal host is checked as it is; a
//!   host name is resolved and refused if **any** of its addresses is refused. A name that
//!   does not resolve (yet) is accepted.
//! * When a callback connects ([`Client::with_policy`](crate::Client::with_policy)): the
//!   client's resolver drops refused addresses and fails the lookup when none is left, and
//!   an IP-literal host (which no resolver sees) is checked before anything is sent. This is
//!   what defeats DNS rebinding: a name that pointed somewhere harmless when it was saved and
//!   points at a refused address now is refused now. Redirects are never followed, so an
//!   allowed host cannot bounce a callback to a refused one.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::time::Duration;

use reqwest::Url;

/// An IP network: an address and a prefix length (`10.0.0.0/8`, `fd00:ec2::254/128`).
///
/// Parsed from `address/prefix` or a bare address (a single host: `/32` or `/128`); bits set
/// after the prefix (`10.1.0.0/8`) are an error, since they usually mean a typo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a CIDR block does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// The part before the `/` is not an IP address.
    #[error("{0:?} is not an IP address or CIDR block (such as 10.0.0.0/8 or fd00::/8)")]
    Address(String),
    /// The prefix length is not a number, or is longer than the address.
    #[error("{text:?}: the prefix length must be a number from 0 to {max}")]
    Prefix { text: String, max: u8 },
    /// Bits are set after the prefix.
    #[error("{text:?} has bits set after the prefix length; did you mean {suggestion}?")]
    HostBits { text: String, suggestion: String },
}

impl Cidr {
    const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Cidr {
        Cidr {
            network: IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
            prefix,
        }
    }

    const fn v6(segments: [u16; 8], prefix: u8) -> Cidr {
        let [a, b, c, d, e, f, g, h] = segments;
        Cidr {
            network: IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h)),
            prefix,
        }
    }

    /// The network's first address.
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address counts as its IPv4
    /// address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = mask_v4(self.prefix);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = mask_v6(self.prefix);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }

    /// A comma-separated list of blocks, as the server's `--callback-allow` and
    /// `--callback-deny` take them. Spaces around entries and empty entries are ignored, so
    /// an empty string is an empty list.
    pub fn parse_list(text: &str) -> Result<Vec<Cidr>, CidrError> {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect()
    }
}

fn mask_v4(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask_v6(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Cidr, CidrError> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address
            .parse()
            .map_err(|_| CidrError::Address(text.to_owned()))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            // `u8::from_str` takes a leading `+`; a prefix is digits only.
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(|| CidrError::Prefix {
                    text: text.to_owned(),
                    max,
                })?,
            Some(_) => {
                return Err(CidrError::Prefix {
                    text: text.to_owned(),
                    max,
                });
            }
        };
        // `::ffff:10.0.0.0/104` is the IPv4 block 10.0.0.0/8: addresses are judged as IPv4
        // once unmapped, so the entry must be too, or it would never match.
        let (network, prefix) = match network {
            IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => (IpAddr::V4(v4), prefix - 96),
                None => (network, prefix),
            },
            _ => (network, prefix),
        };
        let masked = match network {
            IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask_v4(prefix))),
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask_v6(prefix))),
        };
        if masked != network {
            return Err(CidrError::HostBits {
                text: text.to_owned(),
                suggestion: Cidr {
                    network: masked,
                    prefix,
                }
                .to_string(),
            });
        }
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The networks refused unless the operator allows them, each with the reason a refusal
/// gives.
pub const BUILT_IN: &[(Cidr, &str)] = &[
    // Linux connects 0.0.0.0 (and `::`) to the local host: without these, a deny list of
    // 127.0.0.0/8 would be bypassed by http://0.0.0.0/.
    (Cidr::v4(0, 0, 0, 0, 8), "unspecified"),
    (Cidr::v4(169, 254, 0, 0, 16), "link-local / cloud metadata"),
    (
        Cidr::v4(100, 100, 100, 200, 32),
        "cloud metadata (Alibaba Cloud)",
    ),
    (Cidr::v4(224, 0, 0, 0, 4), "multicast"),
    (Cidr::v4(255, 255, 255, 255, 32), "broadcast"),
    (Cidr::v6([0, 0, 0, 0, 0, 0, 0, 0], 128), "unspecified"),
    (Cidr::v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), "link-local"),
    (
        Cidr::v6([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254], 128),
        "cloud metadata (AWS, IPv6)",
    ),
    (Cidr::v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), "multicast"),
];

/// Which addresses callbacks may reach (see the [module](self) for the rule).
///
/// [`Policy::default`] is the built-in list alone; cheap to clone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    allow: Vec<Cidr>,
    deny: Vec<Cidr>,
}

/// Why a refused address is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// In the built-in list, with its reason ("link-local / cloud metadata").
    BuiltIn(&'static str),
    /// In the operator's deny list, as this entry.
    Denied(Cidr),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::BuiltIn(why) => f.write_str(why),
            Reason::Denied(cidr) => write!(f, "in the callback deny list as {cidr}"),
        }
    }
}

/// An address the policy refuses, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{address}, an address callbacks may not reach ({reason})")]
pub struct Refusal {
    pub address: IpAddr,
    pub reason: Reason,
}

/// Why a callback URL is refused.
///
/// The messages are written to follow the parameter's name: "EventCallbackUrl resolves to
/// 169.254.169.254, an address callbacks may not reach (link-local / cloud metadata)".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefusal {
    /// Not a URL at all.
    #[error("is not a valid URL ({0})")]
    Unparsable(String),
    /// A scheme other than `http` and `https`.
    #[error("uses the scheme {0:?}; callbacks must be http:// or https:// URLs")]
    Scheme(String),
    /// No host (`http:///path`).
    #[error("has no host")]
    NoHost,
    /// The host is an IP address the policy refuses.
    #[error("points to {0}")]
    Address(Refusal),
    /// The host is a name, and one of its addresses is refused.
    #[error("resolves to {refusal}")]
    Resolves { host: String, refusal: Refusal },
}

/// A host name whose addresses are all refused: the connect-time resolver's error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{host} resolves only to addresses callbacks may not reach: {}", list(.refusals))]
pub struct NameRefused {
    pub host: String,
    pub refusals: Vec<Refusal>,
}

fn list(refusals: &[Refusal]) -> String {
    refusals
        .iter()
        .map(|r| format!("{} ({})", r.address, r.reason))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Policy {
    /// The built-in list with the operator's `allow` and `deny` lists on top.
    pub fn new(allow: Vec<Cidr>, deny: Vec<Cidr>) -> Policy {
        Policy { allow, deny }
    }

    /// A policy that refuses no address (for URLs the operator configured, such as the media
    /// connector's). Schemes are still checked.
    pub fn unrestricted() -> Policy {
        Policy::new(
            vec![Cidr::v4(0, 0, 0, 0, 0), Cidr::v6([0; 8], 0)],
            Vec::new(),
        )
    }

    /// The operator's allow list.
    pub fn allow(&self) -> &[Cidr] {
        &self.allow
    }

    /// The operator's deny list.
    pub fn deny(&self) -> &[Cidr] {
        &self.deny
    }

    /// Whether a callback may connect to `ip`.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refusal> {
        let ip = ip.to_canonical();
        let most_specific = |list: &[Cidr]| {
            list.iter()
                .filter(|c| c.contains(ip))
                .max_by_key(|c| c.prefix)
                .copied()
        };
        let refuse = |reason| {
            Err(Refusal {
                address: ip,
                reason,
            })
        };
        match (most_specific(&self.allow), most_specific(&self.deny)) {
            (Some(allow), Some(deny)) if allow.prefix > deny.prefix => Ok(()),
            (_, Some(deny)) => refuse(Reason::Denied(deny)),
            (Some(_), None) => Ok(()),
            (None, None) => match BUILT_IN
                .iter()
                .filter(|(c, _)| c.contains(ip))
                .max_by_key(|(c, _)| c.prefix)
            {
                Some((_, why)) => refuse(Reason::BuiltIn(why)),
                None => Ok(()),
            },
        }
    }

    /// The checks that need no DNS: the scheme, the host, and an IP-literal host. Returns
    /// the host name when the host is not an IP literal.
    pub(crate) fn check_parsed<'u>(&self, url: &'u Url) -> Result<Option<&'u str>, UrlRefusal> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(UrlRefusal::Scheme(url.scheme().to_owned()));
        }
        let host = url.host_str().filter(|h| !h.is_empty());
        let host = host.ok_or(UrlRefusal::NoHost)?;
        match literal(host) {
            Some(ip) => self.check(ip).map(|()| None).map_err(UrlRefusal::Address),
            None => Ok(Some(host)),
        }
    }

    /// Checks a callback URL when it is saved: the scheme, and the host's address — as
    /// written for an IP literal, else every address the name resolves to within
    /// `lookup_timeout`. A name that does not resolve in that time (or at all) is accepted:
    /// it may exist later, and every connection is checked again anyway.
    ///
    /// IP literals in any form the URL standard reads as one (`http://2852039166/`,
    /// `http://0xa9.254.169.254/`) are read as that address first.
    pub async fn check_url(&self, url: &str, lookup_timeout: Duration) -> Result<(), UrlRefusal> {
        let parsed = Url::parse(url).map_err(|e| UrlRefusal::Unparsable(e.to_string()))?;
        let Some(name) = self.check_parsed(&parsed)? else {
            return Ok(());
        };
        let port = parsed.port_or_known_default().unwrap_or(80);
        let addresses =
            match tokio::time::timeout(lookup_timeout, tokio::net::lookup_host((name, port))).await
            {
                Ok(Ok(addresses)) => addresses,
                Ok(Err(_)) | Err(_) => return Ok(()),
            };
        for address in addresses {
            self.check(address.ip())
                .map_err(|refusal| UrlRefusal::Resolves {
                    host: name.to_owned(),
                    refusal,
                })?;
        }
        Ok(())
    }
}

/// The address of an IP-literal host, as the URL parser wrote it: every IPv4 form the URL
/// standard accepts (`2852039166`, `0xa9.254.169.254`) is already dotted decimal, and an IPv6
/// literal is in brackets. (This is also how the HTTP client tells a literal from a name.)
fn literal(host: &str) -> Option<IpAddr> {
    match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
        None => host.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn cidrs(s: &str) -> Vec<Cidr> {
        Cidr::parse_list(s).expect("test list")
    }

    fn refused(policy: &Policy, address: &str) -> bool {
        policy.check(ip(address)).is_err()
    }

    #[test]
    fn the_default_refuses_metadata_link_local_unspecified_broadcast_and_multicast() {
        let p = Policy::default();
        for address in [
            "169.254.169.254",
            "169.254.0.1",
            "169.254.255.255",
            "100.100.100.200",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "::",
            "fe80::1",
            "febf::1",
            "fd00:ec2::254",
            "ff02::1",
        ] {
            assert!(refused(&p, address), "{address} should be refused");
        }
    }

    #[test]
    fn the_default_allows_loopback_private_and_public_addresses() {
        let p = Policy::default();
        for address in [
            "127.0.0.1",
            "::1",
            "10.0.0.1",
            "172.16.0.1",
            "192.168.1.10",
            "100.100.100.201",
            "169.253.255.255",
            "169.255.0.0",
            "8.8.8.8",
            "fd00:ec2::253",
            "fd12:3456::1",
            "fec0::1",
            "2606:4700::1111",
            "223.255.255.255",
            "1.0.0.0",
        ] {
            assert!(!refused(&p, address), "{address} should be allowed");
        }
    }

    #[test]
    fn refusals_say_why() {
        let e = Policy::default()
            .check(ip("169.254.169.254"))
            .expect_err("metadata");
        assert_eq!(
            e.to_string(),
            "169.254.169.254, an address callbacks may not reach (link-local / cloud metadata)"
        );
        let e = Policy::new(vec![], cidrs("127.0.0.0/8"))
            .check(ip("127.0.0.1"))
            .expect_err("denied");
        assert_eq!(
            e.to_string(),
            "127.0.0.1, an address callbacks may not reach (in the callback deny list as 127.0.0.0/8)"
        );
    }

    #[test]
    fn ipv4_mapped_ipv6_addresses_are_judged_as_ipv4() {
        let p = Policy::default();
        assert!(refused(&p, "::ffff:169.254.169.254"));
        assert!(refused(&p, "::ffff:a9fe:a9fe"));
        assert!(refused(&p, "::ffff:0.0.0.0"));
        assert!(!refused(&p, "::ffff:127.0.0.1"));
        let e = p.check(ip("::ffff:169.254.169.254")).expect_err("mapped");
        assert_eq!(e.address, ip("169.254.169.254"));

        let deny_loopback = Policy::new(vec![], cidrs("127.0.0.0/8"));
        assert!(refused(&deny_loopback, "::ffff:127.0.0.1"));
        // Written mapped in a list, an entry is its IPv4 block.
        let mapped_entry = Policy::new(vec![], cidrs("::ffff:10.0.0.0/104"));
        assert_eq!(mapped_entry.deny(), cidrs("10.0.0.0/8").as_slice());
        assert!(refused(&mapped_entry, "10.9.9.9"));
        assert!(refused(&mapped_entry, "::ffff:10.9.9.9"));
        // Allowing the metadata address re-opens its mapped form too.
        let allow_metadata = Policy::new(cidrs("::ffff:169.254.169.254"), vec![]);
        assert!(!refused(&allow_metadata, "169.254.169.254"));
        assert!(!refused(&allow_metadata, "::ffff:169.254.169.254"));
        assert!(refused(&allow_metadata, "169.254.169.253"));
    }

    #[test]
    fn the_operators_deny_list_refuses_more() {
        let p = Policy::new(vec![], cidrs("127.0.0.0/8, ::1/128,10.0.0.0/8"));
        assert!(refused(&p, "127.0.0.1"));
        assert!(refused(&p, "127.255.0.1"));
        assert!(refused(&p, "::1"));
        assert!(refused(&p, "10.20.30.40"));
        assert!(!refused(&p, "192.168.0.1"));
        // The built-in list still applies.
        assert!(refused(&p, "169.254.169.254"));
    }

    #[test]
    fn an_allow_entry_overrides_the_built_in_list() {
        let p = Policy::new(cidrs("169.254.169.254/32,fe80::/10"), vec![]);
        assert!(!refused(&p, "169.254.169.254"));
        assert!(!refused(&p, "fe80::1"));
        assert!(refused(&p, "169.254.0.1"), "only the allowed part re-opens");
        assert!(refused(&p, "100.100.100.200"));

        let everything = Policy::unrestricted();
        for address in [
            "169.254.169.254",
            "0.0.0.0",
            "::",
            "fd00:ec2::254",
            "ff02::1",
        ] {
            assert!(!refused(&everything, address), "{address}");
        }
    }

    #[test]
    fn between_the_operators_lists_the_most_specific_entry_wins_and_deny_wins_a_tie() {
        // One host of a denied network.
        let p = Policy::new(cidrs("10.1.2.3"), cidrs("10.0.0.0/8"));
        assert!(!refused(&p, "10.1.2.3"));
        assert!(refused(&p, "10.1.2.4"));
        // One host of an allowed network.
        let p = Policy::new(cidrs("10.0.0.0/8"), cidrs("10.0.0.5/32"));
        assert!(refused(&p, "10.0.0.5"));
        assert!(!refused(&p, "10.0.0.6"));
        // The same block in both.
        let p = Policy::new(cidrs("10.0.0.0/8"), cidrs("10.0.0.0/8"));
        assert!(refused(&p, "10.0.0.1"));
        // An explicit deny of a built-in block says it is the operator's.
        let p = Policy::new(cidrs("169.254.0.0/16"), cidrs("169.254.169.254/32"));
        assert!(!refused(&p, "169.254.1.1"));
        assert_eq!(
            p.check(ip("169.254.169.254")).map_err(|r| r.reason),
            Err(Reason::Denied(cidrs("169.254.169.254/32")[0]))
        );
        // Families never mix: ::/0 says nothing about IPv4.
        let p = Policy::new(vec![], cidrs("::/0"));
        assert!(refused(&p, "2001:db8::1"));
        assert!(!refused(&p, "10.0.0.1"));
    }

    #[test]
    fn cidr_parsing() {
        let c: Cidr = "10.0.0.0/8".parse().expect("v4");
        assert_eq!((c.network(), c.prefix()), (ip("10.0.0.0"), 8));
        assert_eq!(c.to_string(), "10.0.0.0/8");
        let c: Cidr = "fd00:ec2::254".parse().expect("bare v6");
        assert_eq!(c.prefix(), 128);
        assert_eq!(c.to_string(), "fd00:ec2::254/128");
        let c: Cidr = " 192.168.1.1 ".parse().expect("bare v4");
        assert_eq!(c.prefix(), 32);
        let c: Cidr = "0.0.0.0/0".parse().expect("everything");
        assert!(c.contains(ip("203.0.113.9")));
        assert!(!c.contains(ip("2001:db8::1")));
        assert_eq!(cidrs(""), vec![]);
        assert_eq!(cidrs(" , 10.0.0.0/8 ,, ::1,").len(), 2);
    }

    #[test]
    fn cidr_parsing_errors_are_clear() {
        for (text, want) in [
            (
                "10.0.0.0/33",
                r#""10.0.0.0/33": the prefix length must be a number from 0 to 32"#,
            ),
            (
                "::/129",
                r#""::/129": the prefix length must be a number from 0 to 128"#,
            ),
            (
                "10.0.0.0/",
                r#""10.0.0.0/": the prefix length must be a number from 0 to 32"#,
            ),
            (
                "10.0.0.0/+8",
                r#""10.0.0.0/+8": the prefix length must be a number from 0 to 32"#,
            ),
            (
                "10.0.0.0/8/8",
                r#""10.0.0.0/8/8": the prefix length must be a number from 0 to 32"#,
            ),
            (
                "10.0.0/8",
                r#""10.0.0/8" is not an IP address or CIDR block (such as 10.0.0.0/8 or fd00::/8)"#,
            ),
            (
                "localhost",
                r#""localhost" is not an IP address or CIDR block (such as 10.0.0.0/8 or fd00::/8)"#,
            ),
            (
                "10.1.0.0/8",
                r#""10.1.0.0/8" has bits set after the prefix length; did you mean 10.0.0.0/8?"#,
            ),
            (
                "fe80::1/10",
                r#""fe80::1/10" has bits set after the prefix length; did you mean fe80::/10?"#,
            ),
        ] {
            let e = text.parse::<Cidr>().expect_err(text);
            assert_eq!(e.to_string(), want, "{text}");
        }
        assert!(matches!(
            Cidr::parse_list("10.0.0.0/8,nonsense"),
            Err(CidrError::Address(s)) if s == "nonsense"
        ));
    }

    #[test]
    fn masks_at_the_edges() {
        assert_eq!(mask_v4(0), 0);
        assert_eq!(mask_v4(32), u32::MAX);
        assert_eq!(mask_v4(8), 0xff00_0000);
        assert_eq!(mask_v6(0), 0);
        assert_eq!(mask_v6(128), u128::MAX);
        let host: Cidr = "203.0.113.7/32".parse().expect("host");
        assert!(host.contains(ip("203.0.113.7")));
        assert!(!host.contains(ip("203.0.113.6")));
    }

    #[tokio::test]
    async fn saved_urls_scheme_host_and_literals() {
        let p = Policy::default();
        let t = Duration::from_secs(2);
        let check = |url: &'static str| {
            let p = p.clone();
            async move { p.check_url(url, t).await }
        };
        assert_eq!(check("http://127.0.0.1:8080/assign").await, Ok(()));
        assert_eq!(check("https://[::1]/assign").await, Ok(()));
        assert!(matches!(
            check("ftp://example.com/x").await,
            Err(UrlRefusal::Scheme(s)) if s == "ftp"
        ));
        assert!(matches!(
            check("file:///etc/passwd").await,
            Err(UrlRefusal::Scheme(_))
        ));
        assert!(matches!(
            check("not a url").await,
            Err(UrlRefusal::Unparsable(_))
        ));
        for metadata in [
            "http://169.254.169.254/latest/meta-data/",
            "http://[::ffff:169.254.169.254]/",
            "http://2852039166/",
            "http://0xa9.0xfe.0xa9.0xfe/",
            "http://0xa9.254.169.254/",
            "http://169.254.43518/",
            "HTTP://169.254.169.254:80/",
        ] {
            match check(metadata).await {
                Err(UrlRefusal::Address(r)) => {
                    assert_eq!(r.address, ip("169.254.169.254"), "{metadata}")
                }
                other => panic!("{metadata}: {other:?}"),
            }
        }
        assert!(matches!(
            check("http://[fd00:ec2::254]/latest/meta-data/").await,
            Err(UrlRefusal::Address(_))
        ));
        assert!(matches!(
            check("http://0.0.0.0:8080/").await,
            Err(UrlRefusal::Address(_))
        ));
        let e = check("http://169.254.169.254/").await.expect_err("refused");
        assert_eq!(
            format!("AssignmentCallbackUrl {e}"),
            "AssignmentCallbackUrl points to 169.254.169.254, an address callbacks may not reach (link-local / cloud metadata)"
        );
    }

    #[tokio::test]
    async fn saved_names_are_resolved_and_refused_if_any_address_is() {
        let deny = Policy::new(vec![], cidrs("127.0.0.0/8,::1/128"));
        match deny
            .check_url("http://localhost:9/assign", Duration::from_secs(2))
            .await
        {
            Err(UrlRefusal::Resolves { host, refusal }) => {
                assert_eq!(host, "localhost");
                assert!(refusal.address.is_loopback(), "{refusal}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            Policy::default()
                .check_url("http://localhost:9/assign", Duration::from_secs(2))
                .await,
            Ok(())
        );
        // `.invalid` never resolves (RFC 6761): accepted, to be checked on each connection.
        assert_eq!(
            deny.check_url("https://callbacks.invalid/x", Duration::from_secs(2))
                .await,
            Ok(())
        );
    }
}
