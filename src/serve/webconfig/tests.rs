use std::time::{Duration, Instant};

use super::*;
use crate::lab::ca::Leaf;
use crate::testing::net::Pki;

/// A directory with `server.crt`, `server.key` and `ca.crt` (relative names, as the toolkit's
/// sample uses).
fn dir_with_pki() -> (tempfile::TempDir, Pki) {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new("web-config test CA");
    let issued = pki.ca().issue(&Leaf::for_names(&["localhost"]).unwrap()).unwrap();
    std::fs::write(dir.path().join("server.crt"), &issued.pem).unwrap();
    std::fs::write(dir.path().join("server.key"), issued.key_pem()).unwrap();
    std::fs::write(dir.path().join("ca.crt"), pki.ca_pem()).unwrap();
    (dir, pki)
}

fn parse_in(dir: &Path, text: &str) -> Result<WebConfig, (String, String)> {
    WebConfig::parse(text, dir)
}

fn field_of(r: Result<WebConfig, (String, String)>) -> String {
    match r {
        Ok(_) => panic!("loaded"),
        Err((field, message)) => format!("{field}: {message}"),
    }
}

#[test]
fn the_toolkits_sample_file_loads() {
    let (dir, _pki) = dir_with_pki();
    // exporter-toolkit's docs/web-config.yml, as published (rate limit included).
    let text = r#"
# TLS and basic authentication configuration example.
tls_server_config:
  cert_file: server.crt
  key_file: server.key
basic_auth_users:
  alice: $2y$10$mDwo.lAisC94iLAyP81MCesa29IzH37oigHC/42V2pdJlUprsJPze
  bob: $2y$10$hLqFl9jSjoAAy95Z/zw8Ye8wkdMBM8c5Bn1ptYqP/AXyV0.oy0S8m
rate_limit:
  interval: "1s"
  burst: 20
"#;
    let c = parse_in(dir.path(), text).unwrap();
    let tls = c.tls.expect("tls");
    assert_eq!(tls.config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    assert!(c.auth.is_some());
    assert!(c.rate_limit.is_some());
    // An empty file: plain HTTP, no users (the toolkit's behaviour without a file).
    let empty = parse_in(dir.path(), "").unwrap();
    assert!(empty.tls.is_none() && empty.auth.is_none());
}

#[test]
fn mistakes_name_their_field() {
    let (dir, _pki) = dir_with_pki();
    let d = dir.path();
    let cases: &[(&str, &str)] = &[
        ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  bogus: 1\n", "unknown field `bogus`"),
        ("tls_server_config:\n  cert_file: server.crt\n", "tls_server_config.key_file: missing"),
        ("tls_server_config:\n  cert_file: nope.crt\n  key_file: server.key\n", "tls_server_config.cert_file: "),
        ("tls_server_config:\n  cert_file: server.key\n  key_file: server.key\n", "tls_server_config.cert_file: no PEM certificate"),
        ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.crt\n", "tls_server_config.key_file: no PEM private key"),
        ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAnyClientCert\n  client_ca_file: ca.crt\n", "without verifying it"),
        ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n", "tls_server_config.client_ca_file: missing"),
        ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_ca_file: ca.crt\n", "client_auth_type is NoClientCert"),
        ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: Sometimes\n", "unknown variant `Sometimes`"),
        ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n  client_allowed_sans: [a]\n", "tls_server_config.client_allowed_sans"),
        ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  max_version: TLS11\n", "tls_server_config.max_version"),
        ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS13\n  max_version: TLS12\n", "tls_server_config.min_version"),
        ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n", "tls_server_config.cipher_suites: TLS_RSA_WITH_RC4_128_SHA"),
        ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  curve_preferences: [CurveP521]\n", "tls_server_config.curve_preferences: CurveP521"),
        ("basic_auth_users:\n  alice: hunter2\n", "basic_auth_users.alice: not a bcrypt hash"),
        ("http_server_config:\n  headers:\n    X-Powered-By: me\n", "http_server_config.headers.X-Powered-By"),
        ("http_server_config:\n  headers:\n    X-Frame-Options: allow\n", "http_server_config.headers.X-Frame-Options: deny or sameorigin"),
        ("rate_limit:\n  interval: soon\n  burst: 1\n", "rate_limit.interval"),
        ("rate_limit:\n  interval: 1s\n  burst: 0\n", "rate_limit.burst"),
        ("tls_server_config: [\n", "expected struct TlsFile at line 1"),
    ];
    for (text, expected) in cases {
        let got = field_of(parse_in(d, text));
        assert!(
            got.contains(expected),
            "{text:?}: {got:?} should contain {expected:?}"
        );
    }
}

#[test]
fn tls_options_map_onto_rustls() {
    let (dir, _pki) = dir_with_pki();
    let text = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  client_allowed_sans: [scraper.example]\n  min_version: TLS13\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305]\n  curve_preferences: [X25519, CurveP256]\n  prefer_server_cipher_suites: false\n";
    let c = parse_in(dir.path(), text).unwrap();
    let tls = c.tls.unwrap();
    assert_eq!(tls.allowed_sans, vec!["scraper.example".to_string()]);
    assert!(!tls.config.ignore_client_order);
    let suites: Vec<String> = tls
        .config
        .crypto_provider()
        .cipher_suites
        .iter()
        .map(|s| format!("{:?}", s.suite()))
        .collect();
    // TLS 1.3 suites stay (the toolkit's list is for TLS 1.2 only), then the two named.
    assert!(suites.iter().any(|s| s.starts_with("TLS13_")), "{suites:?}");
    assert_eq!(
        suites
            .iter()
            .filter(|s| !s.starts_with("TLS13_"))
            .collect::<Vec<_>>(),
        vec![
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
        ]
    );
    let groups: Vec<_> = tls
        .config
        .crypto_provider()
        .kx_groups
        .iter()
        .map(|g| g.name())
        .collect();
    assert_eq!(
        groups,
        vec![rustls::NamedGroup::X25519, rustls::NamedGroup::secp256r1]
    );
}

#[test]
fn headers_are_the_toolkits_five() {
    let c = WebConfig::parse(
        "http_server_config:\n  http2: true\n  headers:\n    X-Frame-Options: deny\n    Strict-Transport-Security: max-age=31536000\n    X-XSS-Protection: ''\n",
        Path::new("."),
    )
    .unwrap();
    let names: Vec<_> = c
        .headers
        .iter()
        .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap()))
        .collect();
    assert_eq!(
        names,
        vec![
            "strict-transport-security: max-age=31536000",
            "x-frame-options: deny"
        ]
    );
}

#[test]
fn the_rate_limit_is_a_token_bucket() {
    let r = RateLimit::new(Duration::from_secs(1), 2);
    let t0 = Instant::now();
    assert!(r.allow(t0));
    assert!(r.allow(t0));
    assert!(!r.allow(t0));
    assert!(!r.allow(t0 + Duration::from_millis(500)));
    assert!(r.allow(t0 + Duration::from_millis(1100)));
    assert!(!r.allow(t0 + Duration::from_millis(1100)));
    // Never more than the burst, however long the pause.
    let later = t0 + Duration::from_secs(3600);
    assert!(r.allow(later) && r.allow(later) && !r.allow(later));
    // interval 0 turns it off.
    let c = WebConfig::parse("rate_limit:\n  interval: 0s\n  burst: 5\n", Path::new(".")).unwrap();
    assert!(c.rate_limit.is_none());
}

#[test]
fn a_bad_edit_keeps_the_last_good_config() {
    let (dir, pki) = dir_with_pki();
    let path = dir.path().join("web.yml");
    let tls = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";
    let alice = "basic_auth_users:\n  alice: $2y$10$mDwo.lAisC94iLAyP81MCesa29IzH37oigHC/42V2pdJlUprsJPze\n";
    std::fs::write(&path, tls).unwrap();
    let source = WebConfigSource::open(&path).unwrap();
    let first = source.current();
    assert!(first.tls.is_some());
    let recheck = || source.state.lock().unwrap().checked -= RECHECK_EVERY;
    // A broken edit: the TLS config stays.
    std::fs::write(&path, format!("{tls}  # longer\nbogus: 1\n")).unwrap();
    recheck();
    assert!(Arc::ptr_eq(&source.current(), &first));
    // Edits that would drop TLS or basic auth (an empty file caught mid-save, a file without
    // the section) are refused: that takes a restart.
    for text in ["", alice] {
        std::fs::write(&path, text).unwrap();
        recheck();
        assert!(Arc::ptr_eq(&source.current(), &first), "{text:?} was taken");
    }
    // An edit that adds users is taken; one that then drops them is not.
    std::fs::write(&path, format!("{tls}{alice}")).unwrap();
    recheck();
    let with_users = source.current();
    assert!(with_users.tls.is_some() && with_users.auth.is_some());
    std::fs::write(&path, format!("{tls}# no users any more\n")).unwrap();
    recheck();
    assert!(source.current().auth.is_some());
    // A renewed certificate (the web config itself unchanged) is picked up.
    let renewed = pki
        .ca()
        .issue(&Leaf::for_names(&["localhost", "renewed.test"]).unwrap())
        .unwrap();
    std::fs::write(dir.path().join("server.crt"), &renewed.pem).unwrap();
    std::fs::write(dir.path().join("server.key"), renewed.key_pem()).unwrap();
    std::fs::write(&path, format!("{tls}{alice}")).unwrap();
    recheck();
    let before = source.current();
    std::fs::write(dir.path().join("server.crt"), format!("{}\n", renewed.pem)).unwrap();
    recheck();
    let after = source.current();
    assert!(
        !Arc::ptr_eq(&before, &after),
        "a changed certificate file reloads"
    );
    assert!(after.tls.is_some() && after.auth.is_some());
    // At start, a bad file is an error naming it.
    std::fs::write(&path, "nope: 1\n").unwrap();
    let e = WebConfigSource::open(&path).err().unwrap().to_string();
    assert!(e.contains("web.yml") && e.contains("unknown field `nope`"), "{e}");
}
