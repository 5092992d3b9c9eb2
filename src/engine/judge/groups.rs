//! Coalescing groups: the connected components of "some client would coalesce".

use std::collections::{BTreeMap, HashMap};

use crate::engine::snapshot::GroupReport;

/// hosts' "host:port", `problem_origins` the origin of every problem pair.
pub(crate) fn groups(
    keys: &[String],
    links: &[(usize, usize)],
    problem_origins: &[usize],
) -> Vec<GroupReport> {
    let n = keys.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    for &(a, b) in links {
        let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
        if ra != rb {
            parent[ra.max(rb)] = ra.min(rb);
        }
    }
    let mut members: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..n {
        let r = find(&mut parent, i);
        members.entry(r).or_default().push(i);
    }
    // By key, as a pair names its origin (the last host wins if a key is listed twice).
    let group_of: HashMap<&str, usize> = (0..n).map(|i| (keys[i].as_str(), find(&mut parent, i))).collect();
    let mut problems_of: HashMap<usize, u32> = HashMap::new();
    for &a in problem_origins {
        if let Some(&root) = group_of.get(keys[a].as_str()) {
            *problems_of.entry(root).or_default() += 1;
        }
    }
    let mut out = Vec::new();
    for (root, m) in members.into_iter().filter(|(_, m)| m.len() > 1) {
        let problems = problems_of.get(&root).copied().unwrap_or(0);
        out.push(GroupReport {
            id: out.len() as u32 + 1,
            members: m.iter().map(|&i| keys[i].clone()).collect(),
            problems,
        });
    }
    out
}
