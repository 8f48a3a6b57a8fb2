//! Network allow rules (`host:port`, `*.suffix:port`, IP literals) and loopback forwards.
//!
//! Matching is deliberately literal: hostnames are canonicalised (lowercase, one trailing
//! dot stripped) and compared label-wise, so `*.example.com` never matches `example.com`,
//! `evilexample.com` or `example.com.evil.net`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::{Serialize, Serializer};

/// One `allow` rule: a host pattern and a port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct HostRule {
    pattern: HostPattern,
    port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum HostPattern {
    /// A canonical hostname, matched exactly.
    Exact(String),
    /// `*.suffix`: any host with at least one more label in front of `suffix`.
    Subdomains(String),
    /// An explicit IP literal (`10.0.0.5`, `[::1]`).
    Ip(IpAddr),
}

impl HostRule {
    /// Parses `host:port`, `*.suffix:port`, `a.b.c.d:port` or `[v6]:port`.
    ///
    /// Numeric look-alikes that are not canonical IP literals (`127.1`, `0x7f.0.0.1`,
    /// `2130706433`) are rejected: they would be resolved to addresses nobody reviewed.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (host, port) = split_host_port(text)?;
        let port = parse_port(port)?;
        if let Some(inner) = host.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| format!("`{host}`: unbalanced `[`"))?;
            let ip: Ipv6Addr = inner
                .parse()
                .map_err(|_| format!("`{inner}` is not an IPv6 address"))?;
            return Ok(Self {
                pattern: HostPattern::Ip(IpAddr::V6(ip)),
                port,
            });
        }
        if let Ok(ip) = host.parse::<Ipv4Addr>() {
            return Ok(Self {
                pattern: HostPattern::Ip(IpAddr::V4(ip)),
                port,
            });
        }
        let canonical = canonical_host(host);
        if let Some(suffix) = canonical.strip_prefix("*.") {
            validate_hostname(suffix)?;
            if !suffix.contains('.') {
                return Err(format!(
                    "`*.{suffix}` would match a whole top-level domain; name the registrable domain"
                ));
            }
            return Ok(Self {
                pattern: HostPattern::Subdomains(suffix.to_owned()),
                port,
            });
        }
        if canonical.contains('*') {
            return Err(format!(
                "`{host}`: a wildcard is only allowed as a leading `*.` label"
            ));
        }
        validate_hostname(&canonical)?;
        Ok(Self {
            pattern: HostPattern::Exact(canonical),
            port,
        })
    }

    /// The port this rule allows.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether a connection to `host:port` is allowed by this rule.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        if port != self.port {
            return false;
        }
        let Some(target) = Target::parse(host) else {
            return false;
        };
        match (&self.pattern, target) {
            (HostPattern::Ip(rule), Target::Ip(ip)) => *rule == ip,
            (HostPattern::Exact(rule), Target::Name(name)) => *rule == name,
            (HostPattern::Subdomains(suffix), Target::Name(name)) => is_subdomain(&name, suffix),
            (HostPattern::Ip(_), Target::Name(_))
            | (HostPattern::Exact(_) | HostPattern::Subdomains(_), Target::Ip(_)) => false,
        }
    }

    /// Whether everything this rule allows is also allowed by `bound`.
    pub(crate) fn covered_by(&self, bound: &HostRule) -> bool {
        if self.port != bound.port {
            return false;
        }
        match (&self.pattern, &bound.pattern) {
            (HostPattern::Ip(a), HostPattern::Ip(b)) => a == b,
            (HostPattern::Exact(a), HostPattern::Exact(b)) => a == b,
            (HostPattern::Exact(a), HostPattern::Subdomains(s)) => is_subdomain(a, s),
            (HostPattern::Subdomains(a), HostPattern::Subdomains(s)) => {
                a == s || is_subdomain(a, s)
            }
            (HostPattern::Ip(_), HostPattern::Exact(_) | HostPattern::Subdomains(_))
            | (HostPattern::Exact(_) | HostPattern::Subdomains(_), HostPattern::Ip(_))
            | (HostPattern::Subdomains(_), HostPattern::Exact(_)) => false,
        }
    }
}

impl fmt::Display for HostRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.pattern {
            HostPattern::Exact(h) => write!(f, "{h}:{}", self.port),
            HostPattern::Subdomains(s) => write!(f, "*.{s}:{}", self.port),
            HostPattern::Ip(IpAddr::V4(ip)) => write!(f, "{ip}:{}", self.port),
            HostPattern::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
        }
    }
}

impl Serialize for HostRule {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The effective `network.allow` list, as consulted by the egress proxy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct NetworkRules {
    rules: Vec<HostRule>,
}

impl NetworkRules {
    pub(crate) fn new(rules: Vec<HostRule>) -> Self {
        Self { rules }
    }

    /// The first rule allowing `host:port`, if any.
    pub fn matches(&self, host: &str, port: u16) -> Option<&HostRule> {
        self.rules.iter().find(|rule| rule.matches(host, port))
    }

    /// All rules, in policy order.
    pub fn rules(&self) -> &[HostRule] {
        &self.rules
    }

    /// Whether there are no rules at all.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// A `network.forward` entry: a TCP service on the host's loopback made reachable
/// inside the sandbox (e.g. an on-prem model server).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Forward {
    addr: SocketAddr,
}

impl Forward {
    /// Parses `127.0.0.1:11434`, `[::1]:8080` or `localhost:11434`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (host, port) = split_host_port(text)?;
        let port = parse_port(port)?;
        let ip = match host {
            "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
            bracketed if bracketed.starts_with('[') => bracketed
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<Ipv6Addr>()
                .map(IpAddr::V6)
                .map_err(|_| format!("`{host}` is not an IPv6 address"))?,
            other => other
                .parse::<Ipv4Addr>()
                .map(IpAddr::V4)
                .map_err(|_| format!("`{other}` is not a loopback address"))?,
        };
        if !ip.is_loopback() {
            return Err(format!(
                "`{ip}` is not on the host's loopback; use `allow` for remote hosts"
            ));
        }
        Ok(Self {
            addr: SocketAddr::new(ip, port),
        })
    }

    /// The loopback address and port on the host.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl fmt::Display for Forward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.addr.fmt(f)
    }
}

impl Serialize for Forward {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

enum Target {
    Name(String),
    Ip(IpAddr),
}

impl Target {
    fn parse(host: &str) -> Option<Self> {
        if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            return inner
                .parse::<Ipv6Addr>()
                .ok()
                .map(|ip| Self::Ip(IpAddr::V6(ip)));
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Some(Self::Ip(ip));
        }
        let canonical = canonical_host(host);
        validate_hostname(&canonical).ok()?;
        Some(Self::Name(canonical))
    }
}

fn split_host_port(text: &str) -> Result<(&str, &str), String> {
    text.trim()
        .rsplit_once(':')
        .filter(|(host, _)| !host.is_empty())
        .ok_or_else(|| format!("`{text}` needs the form host:port"))
}

fn parse_port(port: &str) -> Result<u16, String> {
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("`{port}` is not a port (1-65535)")),
        Ok(p) => Ok(p),
    }
}

fn canonical_host(host: &str) -> String {
    let lower = host.to_ascii_lowercase();
    match lower.strip_suffix('.') {
        Some(stripped) => stripped.to_owned(),
        None => lower,
    }
}

fn is_subdomain(name: &str, suffix: &str) -> bool {
    name.len() > suffix.len() + 1
        && name.ends_with(suffix)
        && name.as_bytes()[name.len() - suffix.len() - 1] == b'.'
}

fn validate_hostname(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 253 {
        return Err(format!("`{name}` is not a hostname"));
    }
    for label in name.split('.') {
        let valid = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !valid {
            return Err(format!("`{name}` is not a hostname (label `{label}`)"));
        }
    }
    // A last label that is numeric (or hex) makes resolvers treat the whole name as an
    // IPv4 address in a non-canonical spelling (`127.1`, `0x7f.1`).
    let last = name.rsplit('.').next().unwrap_or(name);
    let numeric = last.bytes().all(|b| b.is_ascii_digit())
        || (last.starts_with("0x") && last[2..].bytes().all(|b| b.is_ascii_hexdigit()));
    if numeric {
        return Err(format!(
            "`{name}` looks like an IP address in disguise; write the address as a canonical literal (e.g. 10.0.0.5:443)"
        ));
    }
    Ok(())
}

#[cfg(test)]
#[path = "network_tests.rs"]
mod tests;
