use std::net::IpAddr;

use proptest::prelude::*;

use super::*;

fn list(patterns: &[&str]) -> AllowList {
    AllowList::parse(patterns).unwrap()
}

#[test]
fn every_form_parses_and_prints_back() {
    for text in [
        "shop.example.com",
        "shop.example.com:8443",
        "*.example.com",
        "*.example.com:443",
        "10.0.0.7",
        "10.0.0.7:8080",
        "10.0.0.0/8",
        "::1",
        "[::1]:8080",
        "fd00::/8",
    ] {
        let pattern = TargetPattern::parse(text).unwrap();
        assert_eq!(pattern.to_string(), text);
        assert_eq!(TargetPattern::parse(&pattern.to_string()).unwrap(), pattern);
    }
    // Host bits below the prefix are cleared; names are lower-cased.
    assert_eq!(
        TargetPattern::parse("10.1.2.3/8").unwrap().to_string(),
        "10.0.0.0/8"
    );
    assert_eq!(
        TargetPattern::parse("Shop.Example.COM.")
            .unwrap()
            .to_string(),
        "shop.example.com"
    );
}

#[test]
fn bad_patterns_say_what_is_wrong_and_what_is_allowed() {
    for (text, reason) in [
        ("", "it is empty"),
        ("  ", "it is empty"),
        ("http://shop.example.com", "give a host, not a URL"),
        ("shop.example.com/api", "give a host, not a URL"),
        ("user@shop.example.com", "give a host, not a URL"),
        ("10.0.0.0/33", "the prefix length must be 0 to 32"),
        ("fd00::/129", "the prefix length must be 0 to 128"),
        ("shop/8", "give a host, not a URL"),
        ("10.0.0.300/8", "the part before \"/\" is not an IP address"),
        (
            "shop.example.com:0",
            "the port must be a number from 1 to 65535",
        ),
        (
            "shop.example.com:99999",
            "the port must be a number from 1 to 65535",
        ),
        (
            "shop.example.com:",
            "the port must be a number from 1 to 65535",
        ),
        (
            "a.*.example.com",
            "a wildcard is only allowed as a whole first label (*.example.com)",
        ),
        (
            "*",
            "a wildcard is only allowed as a whole first label (*.example.com)",
        ),
        (
            "shop..example.com",
            "each dot-separated label must have 1 to 63 characters",
        ),
        (
            "shop example.com",
            "' ' is not allowed in a host name (letters, digits, '-', '_', '.')",
        ),
        ("[::1", "expected [IPv6]:port"),
    ] {
        let error = TargetPattern::parse(text).unwrap_err();
        assert_eq!(error.reason, reason, "{text:?}");
        let message = error.to_string();
        assert!(
            message.starts_with(&format!(
                "invalid target pattern {text:?}: {reason}; allowed: "
            )),
            "{message}"
        );
    }
}

#[test]
fn an_empty_list_allows_everything() {
    let open = AllowList::default();
    assert!(open.is_unrestricted());
    assert_eq!(
        open.check("http://anything.example:1").unwrap(),
        Check::Allowed
    );
    assert!(open.allows_addr("203.0.113.9".parse().unwrap(), 443));
}

#[test]
fn names_match_names_and_wildcards_match_subdomains_only() {
    let allow = list(&["shop.example.com", "*.staging.example.com:8443"]);
    assert_eq!(
        allow.check("https://SHOP.example.com.").unwrap(),
        Check::Allowed
    );
    assert_eq!(
        allow.check("http://shop.example.com:9000").unwrap(),
        Check::Allowed
    );
    assert_eq!(
        allow.check("https://a.staging.example.com:8443/").unwrap(),
        Check::Allowed
    );
    assert_eq!(
        allow.check("https://a.b.staging.example.com:8443").unwrap(),
        Check::Allowed
    );
    // The wildcard's port, the bare suffix, a look-alike name.
    assert_eq!(
        allow.check("https://a.staging.example.com").unwrap(),
        Check::Refused
    );
    assert_eq!(
        allow.check("https://staging.example.com:8443").unwrap(),
        Check::Refused
    );
    assert_eq!(
        allow.check("https://evilstaging.example.com:8443").unwrap(),
        Check::Refused
    );
    assert_eq!(
        allow.check("https://shop.example.com.evil.test").unwrap(),
        Check::Refused
    );
    // No address pattern: a name outside is refused without resolving.
    assert_eq!(allow.check("http://127.0.0.1").unwrap(), Check::Refused);
}

#[test]
fn addresses_match_blocks_and_names_need_resolving() {
    let allow = list(&["127.0.0.0/8", "[::1]:8080", "10.0.0.7:80"]);
    assert_eq!(
        allow.check("http://127.9.9.9:5000").unwrap(),
        Check::Allowed
    );
    assert_eq!(allow.check("http://[::1]:8080").unwrap(), Check::Allowed);
    assert_eq!(allow.check("http://[::1]:8081").unwrap(), Check::Refused);
    assert_eq!(allow.check("http://10.0.0.7").unwrap(), Check::Allowed);
    assert_eq!(allow.check("https://10.0.0.7").unwrap(), Check::Refused);
    assert_eq!(allow.check("http://128.0.0.1").unwrap(), Check::Refused);
    assert_eq!(
        allow.check("http://Localhost:5000").unwrap(),
        Check::Resolve {
            name: "localhost".into(),
            port: 5000
        }
    );
    // An IPv4-mapped IPv6 address is its IPv4 address.
    assert!(allow.allows_addr("::ffff:127.0.0.1".parse().unwrap(), 1));
    assert!(!allow.allows_addr("::ffff:128.0.0.1".parse().unwrap(), 1));
}

#[test]
fn hosts_that_are_not_urls_are_errors() {
    let allow = list(&["shop.example.com"]);
    for host in [
        "shop.example.com",
        "ftp://shop.example.com",
        "http://",
        "http://user@shop.example.com",
    ] {
        assert!(
            matches!(allow.check(host), Err(TargetError::InvalidHost { .. })),
            "{host}"
        );
    }
}

#[test]
fn the_refusal_names_the_target_and_the_list() {
    let allow = list(&["*.example.com", "10.0.0.0/8"]);
    assert_eq!(
        allow.refusal("http://evil.test").to_string(),
        "target http://evil.test is not in the allowed targets (*.example.com, 10.0.0.0/8); \
         the controller's --allow-target decides"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(crate::fuzz_cases(256)))]

    /// No text makes the parser panic; what parses prints back to itself.
    #[test]
    fn any_text_parses_or_errors(text in "\\PC{0,40}") {
        if let Ok(pattern) = TargetPattern::parse(&text) {
            prop_assert_eq!(TargetPattern::parse(&pattern.to_string()).unwrap(), pattern);
        }
    }

    #[test]
    fn any_url_checks_without_panicking(text in "(https?://)?\\PC{0,40}", port in any::<u16>()) {
        let allow = list(&["*.example.com", "10.0.0.0/8", "[::1]:8080"]);
        let _ = allow.check(&text);
        let _ = allow.check_host(&text, port);
    }

    /// A block contains exactly the addresses that share its first `prefix` bits.
    #[test]
    fn v4_blocks_contain_their_addresses(network in any::<u32>(), prefix in 0u8..=32, probe in any::<u32>()) {
        let pattern = TargetPattern::parse(&format!("{}/{prefix}", std::net::Ipv4Addr::from(network))).unwrap();
        let allow = AllowList { patterns: vec![pattern] };
        let shift = 32 - u32::from(prefix);
        let same = network.checked_shr(shift).unwrap_or(0) == probe.checked_shr(shift).unwrap_or(0);
        prop_assert_eq!(allow.allows_addr(IpAddr::V4(probe.into()), 80), same);
    }

    #[test]
    fn v6_blocks_contain_their_addresses(network in any::<u128>(), prefix in 0u8..=128, probe in any::<u128>()) {
        let pattern = TargetPattern::parse(&format!("{}/{prefix}", std::net::Ipv6Addr::from(network))).unwrap();
        let allow = AllowList { patterns: vec![pattern] };
        let shift = 128 - u32::from(prefix);
        let same = network.checked_shr(shift).unwrap_or(0) == probe.checked_shr(shift).unwrap_or(0);
        // Mapped v4 addresses count as v4: leave them out.
        prop_assume!(std::net::Ipv6Addr::from(probe).to_ipv4_mapped().is_none());
        prop_assert_eq!(allow.allows_addr(IpAddr::V6(probe.into()), 80), same);
    }

    /// A wildcard matches a name iff the name ends in `.SUFFIX` with a label before it.
    #[test]
    fn wildcards_match_exactly_the_subdomains(labels in proptest::collection::vec("[a-z0-9]{1,5}", 1..4), suffix in "[a-z]{1,5}\\.[a-z]{2,3}") {
        let allow = list(&[&format!("*.{suffix}")]);
        let sub = format!("{}.{suffix}", labels.join("."));
        prop_assert_eq!(allow.check_host(&sub, 80), Check::Allowed);
        prop_assert_eq!(allow.check_host(&suffix, 80), Check::Refused);
        let glued = format!("{}{suffix}", labels.join("."));
        prop_assert_eq!(allow.check_host(&glued, 80), Check::Refused);
    }
}
