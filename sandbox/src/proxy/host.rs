//! What a requested host really is: canonical names, every numeric IPv4 spelling
//! (`127.1`, `0x7f.0.0.1`, `2130706433`, `0177.0.0.1`) turned into the address a resolver
//! would use, IPv6 literals (and IPv4-mapped ones) normalised, and which addresses are
//! not on the public internet.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A requested host in canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Host {
    /// A DNS name: lowercase, one trailing dot removed.
    Name(String),
    /// An address, whatever spelling it was written in.
    Ip(IpAddr),
}

impl Host {
    /// Canonicalises a host as found in a request (`CONNECT` authority, absolute URI).
    pub(crate) fn parse(raw: &str) -> Result<Host, String> {
        if let Some(inner) = raw.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| format!("`{raw}`: unbalanced `[`"))?;
            let ip: Ipv6Addr = inner
                .parse()
                .map_err(|_| format!("`{inner}` is not an IPv6 address"))?;
            return Ok(Host::Ip(unmap(IpAddr::V6(ip))));
        }
        let lower = raw.to_ascii_lowercase();
        let name = lower.strip_suffix('.').unwrap_or(&lower);
        if name.is_empty() || name.ends_with('.') {
            return Err(format!("`{raw}` is not a host name"));
        }
        if let Some(ip) = numeric_ipv4(name)? {
            return Ok(Host::Ip(IpAddr::V4(ip)));
        }
        if name.len() > 253 {
            return Err(format!("`{raw}` is too long for a host name"));
        }
        for label in name.split('.') {
            let ok = !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok {
                return Err(format!("`{raw}` is not a valid host name"));
            }
        }
        Ok(Host::Name(name.to_owned()))
    }

    /// The form allow rules are written in: the name, a dotted IPv4 address, `[v6]`.
    pub(crate) fn rule_form(&self) -> String {
        match self {
            Host::Name(name) => name.clone(),
            Host::Ip(ip) => ip_rule_form(*ip),
        }
    }
}

/// `10.0.0.5` or `[::1]`.
pub(crate) fn ip_rule_form(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) is the IPv4 address it carries.
pub(crate) fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The `inet_aton` reading of `name` when its last label is numeric (which is how
/// resolvers and browsers treat it); `Ok(None)` for an ordinary name.
fn numeric_ipv4(name: &str) -> Result<Option<Ipv4Addr>, String> {
    let parts: Vec<&str> = name.split('.').collect();
    let last = parts.last().copied().unwrap_or_default();
    if number(last).is_none() {
        return Ok(None);
    }
    let bad = || format!("`{name}` is a malformed numeric address");
    if parts.len() > 4 {
        return Err(bad());
    }
    let values = parts
        .iter()
        .map(|p| number(p).ok_or_else(bad))
        .collect::<Result<Vec<u64>, String>>()?;
    let (head, tail) = values.split_at(values.len() - 1);
    let tail_bits = 8 * (4 - head.len() as u32);
    if head.iter().any(|v| *v > 255) || tail[0] >= 1u64 << tail_bits {
        return Err(bad());
    }
    let mut addr = tail[0];
    for (i, v) in head.iter().enumerate() {
        addr |= v << (24 - 8 * i as u32);
    }
    Ok(Some(Ipv4Addr::from(addr as u32)))
}

/// One numeric part as `inet_aton` reads it: `0x` hex, leading-zero octal, or decimal.
fn number(part: &str) -> Option<u64> {
    let (digits, radix) = if let Some(hex) = part.strip_prefix("0x") {
        (hex, 16)
    } else if part.len() > 1 && part.starts_with('0') {
        (&part[1..], 8)
    } else {
        (part, 10)
    };
    if digits.is_empty() && radix == 16 {
        return Some(0);
    }
    if digits.is_empty() || digits.len() > 12 {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// Whether `ip` is an ordinary internet address (not loopback, private, link-local,
/// shared, reserved, multicast, documentation, or an IPv6 form embedding such an address).
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match unmap(ip) {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_unspecified()
                || v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || (a == 192 && b == 0))
        }
        IpAddr::V6(v6) => {
            let seg = v6.segments();
            // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) carry an IPv4 address.
            if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let o = v6.octets();
                return is_public(IpAddr::V4(Ipv4Addr::new(o[12], o[13], o[14], o[15])));
            }
            if seg[0] == 0x2002 {
                let o = v6.octets();
                return is_public(IpAddr::V4(Ipv4Addr::new(o[2], o[3], o[4], o[5])));
            }
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00
                || (seg[0] & 0xffc0) == 0xfe80
                || (seg[0] & 0xffc0) == 0xfec0
                || (seg[0] == 0x2001 && seg[1] == 0x0db8)
                || seg[..6] == [0, 0, 0, 0, 0, 0])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(raw: &str) -> String {
        Host::parse(raw).unwrap().rule_form()
    }

    #[test]
    fn numeric_spellings_are_the_address() {
        for raw in [
            "127.1",
            "0x7f.0.0.1",
            "0x7f000001",
            "2130706433",
            "0177.0.0.1",
            "127.0.1",
            "127.0.0.1.",
            "[::ffff:127.0.0.1]",
            "[::ffff:7f00:1]",
        ] {
            assert_eq!(ip(raw), "127.0.0.1", "{raw}");
        }
        assert_eq!(ip("[0:0::1]"), "[::1]");
        assert_eq!(ip("API.Example.COM."), "api.example.com");
    }

    #[test]
    fn malformed_hosts_are_refused() {
        for raw in [
            "256.0.0.1",
            "1.2.3.4.5",
            "0x1.0x100000000",
            "foo.123",
            "a..b",
            "example.com..",
            "",
            "ex ample.com",
            "exa%6dple.com",
            "[::1",
            "[fe80::1%eth0]",
        ] {
            assert!(Host::parse(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn private_and_special_addresses() {
        for raw in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2002:a00:1::",
            "224.0.0.1",
        ] {
            assert!(!is_public(raw.parse().unwrap()), "{raw}");
        }
        for raw in ["1.1.1.1", "93.184.216.34", "2606:4700::1111"] {
            assert!(is_public(raw.parse().unwrap()), "{raw}");
        }
    }
}
