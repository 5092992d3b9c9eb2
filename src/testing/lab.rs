//! The embedded lab as a fixture of the tests that drive the engine in-process: a prober that
//! asks the lab's DNS server and trusts the lab's CA (what `coalscope check --dns … --ca-file …`
//! builds from its options).

use std::time::Duration;

use crate::engine::probe::dns::{Dns, DnsConfig};
use crate::engine::probe::tls::TlsSettings;
use crate::engine::prober::{ProbeOptions, Prober};
use crate::lab::Lab;

/// A prober for `lab`: its DNS server and its CA (plus the web roots), DNS and TLS bounded by
/// `timeout`, and `options` as given (their own `timeout` bounds the requests).
pub fn prober(lab: &Lab, timeout: Duration, options: ProbeOptions) -> Prober {
    let dns = Dns::new(DnsConfig {
        nameservers: vec![lab.dns],
        overrides: vec![],
        timeout,
    })
    .expect("a resolver for the lab's DNS server");
    let tls = TlsSettings::new(Some(&lab.ca_file), timeout).expect("TLS settings trusting the lab's CA");
    Prober::new(dns, tls, options)
}
