//! Which probed names can coalesce: A and B are linked when the certificate one of them serves
//! at an address covers the other, and the other resolves to that address too (same port):
//! a browser holding a connection for one may send the other on it. Groups are the connected
//! components of those links; inside a group, names are sectioned by the certificate they
//! serve. Pure: no I/O.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use crate::engine::probe::cert;

use super::probe::Probed;

/// Names (indices into the probed list) that share a certificate and an address with another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Sections in the order written: by the certificate served, then names without one.
    pub sections: Vec<Section>,
}

/// The names of a group that serve one certificate (`cert`: its SHA-256), or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub cert: Option<String>,
    /// Indices into the probed list, sorted by name.
    pub names: Vec<usize>,
}

impl Group {
    pub fn len(&self) -> usize {
        self.sections.iter().map(|s| s.names.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn first(&self) -> usize {
        self.sections
            .iter()
            .flat_map(|s| &s.names)
            .copied()
            .min()
            .unwrap_or(usize::MAX)
    }
}

/// The groups, and the resolved names linked to no other (`alone`, sorted by name).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grouping {
    /// Ordered by their first name in the probed list (the NAMEs come first there).
    pub groups: Vec<Group>,
    pub alone: Vec<usize>,
}

/// Group `probed`; names that did not resolve are in no group and not `alone`.
pub fn group(probed: &[Probed]) -> Grouping {
    let mut sets = Sets::new(probed.len());
    // Names by (address, port): who a connection to that address may carry.
    let mut at: HashMap<(IpAddr, u16), Vec<usize>> = HashMap::new();
    for (i, p) in probed.iter().enumerate() {
        for addr in &p.addresses {
            at.entry((*addr, p.port)).or_default().push(i);
        }
    }
    for (a, p) in probed.iter().enumerate() {
        for (addr, served) in &p.served {
            let Ok(served) = served else { continue };
            for &b in at.get(&(*addr, p.port)).into_iter().flatten() {
                if b != a && cert::covering_san(&served.summary, &probed[b].host).is_some() {
                    sets.union(a, b);
                }
            }
        }
    }
    let mut components: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, p) in probed.iter().enumerate() {
        if !p.addresses.is_empty() {
            components.entry(sets.find(i)).or_default().push(i);
        }
    }
    let by_name = |a: &usize, b: &usize| probed[*a].host.cmp(&probed[*b].host).then(a.cmp(b));
    let mut grouping = Grouping::default();
    for members in components.into_values() {
        if members.len() == 1 {
            grouping.alone.extend(members);
            continue;
        }
        let mut sections: BTreeMap<Option<String>, Vec<usize>> = BTreeMap::new();
        for i in members {
            let key = probed[i].first_cert().map(|c| c.summary.sha256.clone());
            sections.entry(key).or_default().push(i);
        }
        let mut sections: Vec<Section> = sections
            .into_iter()
            .map(|(cert, mut names)| {
                names.sort_by(by_name);
                Section { cert, names }
            })
            .collect();
        // Certificates in the order of their first name; names without one last.
        sections.sort_by(|x, y| {
            (x.cert.is_none(), &probed[x.names[0]].host).cmp(&(y.cert.is_none(), &probed[y.names[0]].host))
        });
        grouping.groups.push(Group { sections });
    }
    grouping.groups.sort_by_key(Group::first);
    grouping.alone.sort_by(by_name);
    grouping
}

/// Union-find over name indices.
struct Sets(Vec<usize>);

impl Sets {
    fn new(n: usize) -> Sets {
        Sets((0..n).collect())
    }

    fn find(&mut self, mut i: usize) -> usize {
        while self.0[i] != i {
            self.0[i] = self.0[self.0[i]];
            i = self.0[i];
        }
        i
    }

    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        // The smaller index is the root: stable, whatever the order of the links.
        if ra != rb {
            let (root, child) = if ra < rb { (ra, rb) } else { (rb, ra) };
            self.0[child] = root;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::discover::probe::Served;
    use crate::engine::probe::cert::CertSummary;

    /// A probed name: `host` at 10.0.0.`octets`, serving a certificate for `sans` (none when
    /// `sans` is empty) on port 443.
    pub(crate) fn name(host: &str, octets: &[u8], sans: &[&str]) -> Probed {
        let addresses: Vec<IpAddr> = octets.iter().map(|o| IpAddr::from([10, 0, 0, *o])).collect();
        let served = addresses
            .iter()
            .map(|a| {
                let cert = if sans.is_empty() {
                    Err("connect: refused".to_string())
                } else {
                    Ok(Served {
                        summary: CertSummary {
                            subject: String::new(),
                            issuer: "CN=Test CA, O=Test".into(),
                            dns_sans: sans.iter().map(|s| s.to_string()).collect(),
                            ip_sans: vec![],
                            not_before: 0,
                            not_after: 0,
                            serial: "01".into(),
                            sha256: format!("{:0>64}", sans.join("+").len()) + &sans.join("+"),
                        },
                        chain_error: None,
                        alpn: Some("h2".into()),
                    })
                };
                (*a, cert)
            })
            .collect();
        Probed {
            host: host.into(),
            port: 443,
            addresses,
            dns_error: None,
            served,
        }
    }

    fn hosts(probed: &[Probed], ids: &[usize]) -> Vec<String> {
        ids.iter().map(|i| probed[*i].host.clone()).collect()
    }

    /// Each case: the probed names, then the groups (each a list of sections' names) and the
    /// names alone. One piece: a table of cases, read top to bottom.
    #[test]
    fn grouping_table() {
        type Case = (
            &'static str,
            Vec<Probed>,
            Vec<Vec<Vec<&'static str>>>,
            Vec<&'static str>,
        );
        let cases: Vec<Case> = vec![
            (
                "one wildcard certificate at one address",
                vec![
                    name("www.a.test", &[1], &["*.a.test"]),
                    name("api.a.test", &[1], &["*.a.test"]),
                ],
                vec![vec![vec!["api.a.test", "www.a.test"]]],
                vec![],
            ),
            (
                "a wildcard on two addresses links nothing",
                vec![
                    name("east.a.test", &[1], &["*.a.test"]),
                    name("west.a.test", &[2], &["*.a.test"]),
                ],
                vec![],
                vec!["east.a.test", "west.a.test"],
            ),
            (
                "one certificate per name at one address links nothing",
                vec![
                    name("one.a.test", &[1], &["one.a.test"]),
                    name("two.a.test", &[1], &["two.a.test"]),
                ],
                vec![],
                vec!["one.a.test", "two.a.test"],
            ),
            (
                "two certificates with the same SANs: one group, two sections",
                vec![
                    name("blog.a.test", &[1], &["blog.a.test", "docs.a.test"]),
                    name("docs.a.test", &[1], &["docs.a.test", "blog.a.test"]),
                ],
                vec![vec![vec!["blog.a.test"], vec!["docs.a.test"]]],
                vec![],
            ),
            (
                "one covering the other is enough; a name without a certificate comes last",
                vec![
                    name("www.a.test", &[1, 2], &["www.a.test", "api.a.test", "old.a.test"]),
                    name("api.a.test", &[2], &["api.a.test"]),
                    name("old.a.test", &[1], &[]),
                    name("x.b.test", &[1], &["x.b.test"]),
                ],
                vec![vec![vec!["api.a.test"], vec!["www.a.test"], vec!["old.a.test"]]],
                vec!["x.b.test"],
            ),
            (
                "two groups, in the order of their first name in the list",
                vec![
                    name("z.b.test", &[3], &["*.b.test"]),
                    name("a.a.test", &[1], &["*.a.test"]),
                    name("y.b.test", &[3], &["*.b.test"]),
                    name("b.a.test", &[1], &["*.a.test"]),
                ],
                vec![
                    vec![vec!["y.b.test", "z.b.test"]],
                    vec![vec!["a.a.test", "b.a.test"]],
                ],
                vec![],
            ),
        ];
        for (what, probed, want_groups, want_alone) in cases {
            let got = group(&probed);
            let groups: Vec<Vec<Vec<String>>> = got
                .groups
                .iter()
                .map(|g| g.sections.iter().map(|s| hosts(&probed, &s.names)).collect())
                .collect();
            assert_eq!(groups, want_groups, "{what}");
            assert_eq!(hosts(&probed, &got.alone), want_alone, "{what}");
        }
    }

    #[test]
    fn another_port_is_another_server() {
        let mut other = name("api.a.test", &[1], &["*.a.test"]);
        other.port = 8443;
        let probed = vec![name("www.a.test", &[1], &["*.a.test"]), other];
        let got = group(&probed);
        assert!(got.groups.is_empty());
        assert_eq!(got.alone.len(), 2);
    }

    #[test]
    fn unresolved_names_are_nowhere() {
        let mut ghost = name("ghost.a.test", &[], &[]);
        ghost.dns_error = Some("NXDOMAIN".into());
        let probed = vec![ghost, name("www.a.test", &[1], &["*.a.test"])];
        let got = group(&probed);
        assert_eq!(hosts(&probed, &got.alone), vec!["www.a.test"]);
    }
}
