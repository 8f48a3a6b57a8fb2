use super::*;

fn rule(text: &str) -> HostRule {
    HostRule::parse(text).unwrap()
}

#[test]
fn wildcard_matches_subdomains_only() {
    let r = rule("*.example.com:443");
    assert!(r.matches("a.example.com", 443));
    assert!(r.matches("a.b.example.com", 443));
    assert!(r.matches("A.Example.COM.", 443));
    assert!(!r.matches("example.com", 443));
    assert!(!r.matches("evilexample.com", 443));
    assert!(!r.matches("a.evilexample.com", 443));
    assert!(!r.matches("example.com.evil.net", 443));
    assert!(!r.matches(".example.com", 443));
    assert!(!r.matches("a..example.com", 443));
    assert!(!r.matches("a.example.com", 80));
}

#[test]
fn exact_rule_matches_exactly() {
    let r = rule("api.anthropic.com:443");
    assert!(r.matches("api.anthropic.com", 443));
    assert!(r.matches("API.anthropic.com.", 443));
    assert!(!r.matches("api.anthropic.com.", 80));
    assert!(!r.matches("xapi.anthropic.com", 443));
    assert!(!r.matches("api.anthropic.com.evil.net", 443));
    assert!(!r.matches("evil.api.anthropic.com", 443));
    assert!(!r.matches("api.anthropic.com..", 443));
}

#[test]
fn ip_literals_are_explicit_and_disguises_rejected() {
    let v4 = rule("10.0.0.5:8080");
    assert!(v4.matches("10.0.0.5", 8080));
    assert!(!v4.matches("10.0.0.6", 8080));
    let v6 = rule("[::1]:11434");
    assert!(v6.matches("[::1]", 11434));
    assert!(v6.matches("::1", 11434));
    for bad in [
        "127.1:80",
        "0x7f.0.0.1:80",
        "2130706433:80",
        "example.0x7f:80",
        "*.0.0.1:80",
        "*.com:443",
        "exa*mple.com:443",
        "example.com",
        "example.com:0",
        "example.com:99999",
        "-bad.example.com:443",
        "[::1:443",
    ] {
        assert!(HostRule::parse(bad).is_err(), "{bad} should be rejected");
    }
    // A name rule never matches an address and vice versa.
    assert!(!rule("localhost:80").matches("127.0.0.1", 80));
    assert!(!v4.matches("0x0a.0.0.5", 8080));
}

#[test]
fn coverage_for_floors() {
    let floor = rule("*.example.com:443");
    assert!(rule("a.example.com:443").covered_by(&floor));
    assert!(rule("*.a.example.com:443").covered_by(&floor));
    assert!(rule("*.example.com:443").covered_by(&floor));
    assert!(!rule("example.com:443").covered_by(&floor));
    assert!(!rule("a.example.com:80").covered_by(&floor));
    assert!(!rule("*.example.com:443").covered_by(&rule("a.example.com:443")));
}

#[test]
fn forwards_must_be_loopback() {
    assert_eq!(
        Forward::parse("127.0.0.1:11434").unwrap().to_string(),
        "127.0.0.1:11434"
    );
    assert_eq!(
        Forward::parse("localhost:8080").unwrap().to_string(),
        "127.0.0.1:8080"
    );
    assert_eq!(
        Forward::parse("[::1]:8080").unwrap().to_string(),
        "[::1]:8080"
    );
    assert!(Forward::parse("10.0.0.1:11434").is_err());
    assert!(Forward::parse("example.com:11434").is_err());
}

#[test]
fn rules_return_the_matching_rule() {
    let rules = NetworkRules::new(vec![rule("api.openai.com:443"), rule("*.example.com:443")]);
    assert_eq!(
        rules.matches("x.example.com", 443),
        Some(&rule("*.example.com:443"))
    );
    assert_eq!(rules.matches("example.com", 443), None);
}
