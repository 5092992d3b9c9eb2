//! The interop harness: a throwaway CA (the lab's builder), real servers started from
//! generated configs in a temp dir, a real DNS server (dnsmasq) on loopback, and the real
//! `coalscope check` run against them. Every process is started in its own process group and stopped by that group
//! (SIGTERM, then SIGKILL) when its guard drops — also when a test panics — and
//! [`Scenario::finish`] checks that none of them is left.

use std::collections::BTreeMap;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use coalscope::lab::ca::{self, Ca};
use serde_json::Value;

pub const INSTALL_HINT: &str =
    "apt-get install -y --no-install-recommends nginx haproxy dnsmasq-base apache2-bin caddy nodejs nghttp2-proxy";

pub const NGINX: &str = "/usr/sbin/nginx";
pub const HAPROXY: &str = "/usr/sbin/haproxy";
pub const DNSMASQ: &str = "/usr/sbin/dnsmasq";
pub const APACHE: &str = "/usr/sbin/apache2";
pub const APACHE_MODULES: &str = "/usr/lib/apache2/modules";
pub const CADDY: &str = "/usr/bin/caddy";
pub const NODE: &str = "/usr/bin/node";
pub const NGHTTPX: &str = "/usr/sbin/nghttpx";

/// How long a server may take to accept connections before the scenario fails.
const READY_WITHIN: Duration = Duration::from_secs(15);

/// Whether the servers a scenario needs are installed. When one is missing: with
/// `COALSCOPE_REQUIRE_INTEROP=1` (CI), the test fails; otherwise it prints one loud line and
/// the caller skips the scenario (`common::interop_available`).
pub fn servers_available(scenario: &str, binaries: &[&str]) -> bool {
    servers_available_or(scenario, binaries, crate::common::interop_required())
}

/// [`servers_available`] with the requirement given explicitly.
pub fn servers_available_or(scenario: &str, binaries: &[&str], required: bool) -> bool {
    let missing: Vec<&str> = binaries
        .iter()
        .copied()
        .filter(|b| !Path::new(b).is_file())
        .collect();
    crate::common::interop_available_or(
        &format!("interop scenario {scenario}"),
        &missing,
        INSTALL_HINT,
        required,
    )
}

/// Whether this process runs as root (servers then need a `user` to drop to, and files they
/// read after dropping privileges must be world-readable).
pub use crate::common::is_root;

/// A throwaway certificate authority (the lab's builder, `coalscope::lab::ca`); its
/// certificate is written to `ca.pem`.
pub struct Pki {
    ca: Ca,
    dir: PathBuf,
    pub ca_file: PathBuf,
}

/// A leaf certificate on disk: `cert` (PEM), `key` (PEM), `combined` (cert + key, for HAProxy).
#[derive(Clone, Debug)]
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub combined: PathBuf,
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        let ca = Ca::new("coalscope interop CA").expect("CA");
        let ca_file = dir.join("ca.pem");
        fs::write(&ca_file, &ca.pem).expect("write ca.pem");
        Pki {
            ca,
            dir: dir.to_path_buf(),
            ca_file,
        }
    }

    /// Issues a server certificate for `sans`, written as `NAME.crt`, `NAME.key`, `NAME.pem`.
    pub fn issue(&self, name: &str, sans: &[&str]) -> Leaf {
        let issued = self
            .ca
            .issue(&ca::Leaf::for_names(sans).expect("certificate names"))
            .expect("leaf cert");
        let leaf = Leaf {
            cert: self.dir.join(format!("{name}.crt")),
            key: self.dir.join(format!("{name}.key")),
            combined: self.dir.join(format!("{name}.pem")),
        };
        let key = issued.key_pem();
        fs::write(&leaf.cert, &issued.pem).expect("write cert");
        fs::write(&leaf.key, &key).expect("write key");
        fs::write(&leaf.combined, format!("{}{key}", issued.pem)).expect("write combined pem");
        leaf
    }
}

/// A server process in its own process group; stopped (the whole group) on drop.
pub struct Proc {
    pub name: String,
    child: Child,
    pub pgid: i32,
    pub log: PathBuf,
    /// Log files the server writes itself (error logs), shown when it fails to start.
    pub server_logs: Vec<PathBuf>,
}

impl Proc {
    /// Starts `cmd` in a new process group with stdout and stderr going to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Proc {
        let out = fs::File::create(&log).expect("create log");
        let err = out.try_clone().expect("clone log");
        cmd.stdin(Stdio::null()).stdout(out).stderr(err).process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {name} ({cmd:?}): {e}"));
        let pgid = child.id() as i32;
        Proc {
            name: name.to_string(),
            child,
            pgid,
            log,
            server_logs: Vec::new(),
        }
    }

    pub fn log_text(&self) -> String {
        let mut text = fs::read_to_string(&self.log).unwrap_or_default();
        for l in &self.server_logs {
            let t = fs::read_to_string(l).unwrap_or_default();
            text.push_str(&format!("--- {} ---\n{t}", l.display()));
        }
        text
    }

    /// Waits (bounded) until `addr` accepts TCP connections; panics with the server's log if the
    /// process exits first or the time runs out.
    pub fn wait_ready(&mut self, addr: SocketAddr) {
        if let Err(e) = self.try_wait_ready(addr) {
            panic!("{e}");
        }
    }

    /// [`Proc::wait_ready`], returning the failure instead of panicking.
    pub fn try_wait_ready(&mut self, addr: SocketAddr) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "{} exited ({status}) before listening on {addr}; its output:\n{}",
                    self.name,
                    self.log_text()
                ));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if start.elapsed() > READY_WITHIN {
                return Err(format!(
                    "{} did not listen on {addr} within {READY_WITHIN:?}; its output:\n{}",
                    self.name,
                    self.log_text()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the whole process group: SIGTERM, then SIGKILL if anything is still alive after a
    /// grace period. Reaps the leader.
    pub fn stop(&mut self) {
        if group_members(self.pgid).is_empty() && self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        signal_group(self.pgid, "TERM");
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            let _ = self.child.try_wait();
            if group_members(self.pgid).is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if !group_members(self.pgid).is_empty() {
            signal_group(self.pgid, "KILL");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(3);
        while !group_members(self.pgid).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

fn signal_group(pgid: i32, signal: &str) {
    // `kill -SIG -- -PGID` signals the process group we created (never anything by name).
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(format!("-{pgid}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Live (non-zombie) processes in process group `pgid`, as "pid name".
pub fn group_members(pgid: i32) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return found;
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...; comm may contain spaces and parentheses.
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let comm = stat[stat.find('(').map_or(0, |i| i + 1)..close].to_string();
        let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        if rest.len() < 3 {
            continue;
        }
        if rest[2].parse::<i32>().ok() == Some(pgid) && rest[0] != "Z" && rest[0] != "X" {
            found.push(format!("{pid} {comm}"));
        }
    }
    found
}

/// Candidate ports, random, outside the kernel's ephemeral range: outgoing connections and
/// DNS queries (of coalscope, of other tests) take their source ports from that range, so a port
/// found free there could be taken again before the server binds it.
fn port_candidates() -> impl Iterator<Item = u16> {
    let range = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let mut it = range.split_whitespace().filter_map(|x| x.parse::<u32>().ok());
    let (lo, hi) = (it.next().unwrap_or(32768), it.next().unwrap_or(60999));
    let (from, to) = if lo > 11_000 {
        (10_000, lo - 1)
    } else {
        (hi.min(65_000) + 1, 65_535)
    };
    (0..200).map(move |_| rand::random_range(from..=to) as u16)
}

/// A TCP port free on every one of `addrs` (each scenario owns its addresses).
pub fn free_port(addrs: &[Ipv4Addr]) -> u16 {
    port_candidates()
        .find(|port| addrs.iter().all(|a| TcpListener::bind((*a, *port)).is_ok()))
        .unwrap_or_else(|| panic!("no common free port on {addrs:?}"))
}

/// A port free for both UDP and TCP on 127.0.0.1 (for the DNS server).
fn free_dns_port() -> u16 {
    port_candidates()
        .find(|port| {
            UdpSocket::bind((Ipv4Addr::LOCALHOST, *port)).is_ok()
                && TcpListener::bind((Ipv4Addr::LOCALHOST, *port)).is_ok()
        })
        .expect("no free DNS port")
}

/// One scenario: its temp dir, CA, DNS server, servers and the `coalscope check` runs.
pub struct Scenario {
    pub name: String,
    pub dir: tempfile::TempDir,
    pub pki: Pki,
    /// name → IPv4 addresses, answered by dnsmasq.
    records: BTreeMap<String, Vec<Ipv4Addr>>,
    /// HTTPS records (type 65), in wire format, answered by dnsmasq (`--dns-rr`).
    https: Vec<(String, Vec<u8>)>,
    pub dns: Option<SocketAddr>,
    procs: Vec<Proc>,
}

impl Scenario {
    pub fn new(name: &str) -> Scenario {
        let dir = tempfile::Builder::new()
            .prefix(&format!("coalscope-interop-{name}-"))
            .tempdir()
            .expect("temp dir");
        let pki = Pki::new(dir.path());
        Scenario {
            name: name.to_string(),
            dir,
            pki,
            records: BTreeMap::new(),
            https: Vec::new(),
            dns: None,
            procs: Vec::new(),
        }
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// Writes `text` to `file` in the scenario dir and returns its path.
    pub fn write(&self, file: &str, text: &str) -> PathBuf {
        let p = self.path(file);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).expect("mkdir");
        }
        fs::write(&p, text).expect("write file");
        p
    }

    /// Makes the scenario dir readable by servers that drop root privileges (nginx workers,
    /// Apache children run as `nobody`).
    pub fn open_to_workers(&self) {
        use std::os::unix::fs::PermissionsExt;
        let _ = fs::set_permissions(self.dir.path(), fs::Permissions::from_mode(0o755));
    }

    /// Adds an A record for `name` (several calls: several A records).
    pub fn record(&mut self, name: &str, addr: Ipv4Addr) {
        self.records.entry(name.to_string()).or_default().push(addr);
    }

    /// Adds an HTTPS record (RFC 9460), encoded by hickory from `spec`: dnsmasq serves it
    /// as given, in wire format (`--dns-rr=NAME,65,HEX`).
    pub fn https_record(&mut self, spec: &coalscope::lab::HttpsSpec) {
        let wire = spec.wire().expect("HTTPS record encodes");
        self.https.push((spec.name.clone(), wire));
    }

    /// Starts dnsmasq on 127.0.0.1 answering the records added so far, and nothing else.
    pub fn start_dns(&mut self) -> SocketAddr {
        // Another scenario's dnsmasq may take the same port between check and bind: try again.
        for attempt in 1.. {
            match self.try_start_dns() {
                Ok(addr) => return addr,
                Err(e) if attempt < 5 && e.contains("Address already in use") => continue,
                Err(e) => panic!("{e}"),
            }
        }
        unreachable!()
    }

    fn try_start_dns(&mut self) -> Result<SocketAddr, String> {
        let port = free_dns_port();
        let mut cmd = Command::new(DNSMASQ);
        cmd.arg("--no-daemon")
            .arg("--conf-file=/dev/null")
            .arg("--no-resolv")
            .arg("--no-hosts")
            .arg("--no-poll")
            .arg(format!("--port={port}"))
            .arg("--listen-address=127.0.0.1")
            .arg("--bind-interfaces")
            .arg("--pid-file=")
            .arg("--log-queries")
            .arg("--local-ttl=60");
        if is_root() {
            cmd.arg("--user=root");
        }
        for (name, addrs) in &self.records {
            for a in addrs {
                cmd.arg(format!("--host-record={name},{a}"));
            }
        }
        for (name, wire) in &self.https {
            cmd.arg(format!("--dns-rr={name},65,{}", hex::encode(wire)));
        }
        let log = self.path("dnsmasq.log");
        let mut p = Proc::spawn("dnsmasq", cmd, log);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        p.try_wait_ready(addr)?;
        self.procs.push(p);
        self.dns = Some(addr);
        Ok(addr)
    }

    /// Starts a server and waits until every address in `ready` accepts connections;
    /// `server_logs` are the log files it writes itself, shown if it fails.
    pub fn start(&mut self, name: &str, cmd: Command, ready: &[SocketAddr], server_logs: &[PathBuf]) {
        let log = self.path(&format!("{name}.out"));
        let mut p = Proc::spawn(name, cmd, log);
        p.server_logs = server_logs.to_vec();
        for a in ready {
            p.wait_ready(*a);
        }
        self.procs.push(p);
    }

    /// The output (stdout/stderr) of every process started so far, for failure messages.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for p in &self.procs {
            s.push_str(&format!("--- {} ---\n{}\n", p.name, p.log_text()));
        }
        s
    }

    /// Runs `coalscope check --format json` on `entries` with this scenario's DNS and CA.
    pub async fn check(&self, entries: &[String], rounds: u32) -> Report {
        let rounds = rounds.to_string();
        self.check_with(
            entries,
            &["--rounds", &rounds, "--timeout", "3s", "--max-rps", "0"],
        )
        .await
    }

    /// [`Scenario::check`] with the options given by the caller (`--rounds`, `--timeout`,
    /// `--concurrency`, …) instead of the usual ones.
    pub async fn check_with(&self, entries: &[String], options: &[&str]) -> Report {
        let watch = self.write("watch.txt", &(entries.join("\n") + "\n"));
        let watch = watch.to_string_lossy().to_string();
        let dns = self.dns.expect("start_dns first").to_string();
        let ca = self.pki.ca_file.to_string_lossy().to_string();
        let mut args = vec![
            "check",
            &watch,
            "--dns",
            &dns,
            "--ca-file",
            &ca,
            "--format",
            "json",
        ];
        args.extend_from_slice(options);
        let out = crate::common::run(&args, None).await;
        let doc = crate::common::stdout_json(&out);
        crate::common::assert_valid(&doc);
        Report {
            doc,
            exit: out.status.code(),
            stderr: String::from_utf8_lossy(&out.stderr).to_string(),
        }
    }

    /// The process groups of the processes started so far.
    pub fn pgids(&self) -> Vec<i32> {
        self.procs.iter().map(|p| p.pgid).collect()
    }

    /// Stops every process this scenario started and asserts that none of them is left.
    pub fn finish(mut self) {
        let groups: Vec<(String, i32)> = self.procs.iter().map(|p| (p.name.clone(), p.pgid)).collect();
        for p in self.procs.iter_mut() {
            p.stop();
        }
        let left: Vec<String> = groups
            .iter()
            .flat_map(|(name, g)| group_members(*g).into_iter().map(move |m| format!("{name}: {m}")))
            .collect();
        assert!(
            left.is_empty(),
            "scenario {}: server processes left after stopping: {left:?}",
            self.name
        );
        self.procs.clear();
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        // Stop in reverse order of start (servers, then DNS); each guard kills its group.
        while let Some(p) = self.procs.pop() {
            drop(p);
        }
    }
}

/// A `check --format json` result.
pub struct Report {
    pub doc: Value,
    pub exit: Option<i32>,
    pub stderr: String,
}

impl Report {
    pub fn pair(&self, origin: &str, target: &str) -> &Value {
        self.doc["pairs"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["origin"] == origin && p["target"] == target))
            .unwrap_or_else(|| panic!("pair {origin} → {target} missing:\n{:#}", self.doc))
    }

    pub fn host(&self, host: &str) -> &Value {
        let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
        self.doc["hosts"]
            .as_array()
            .and_then(|hs| hs.iter().find(|h| h["host"] == name))
            .unwrap_or_else(|| panic!("host {host} missing:\n{:#}", self.doc))
    }

    pub fn findings(&self, host: &str) -> Vec<String> {
        kinds(&self.host(host)["findings"])
    }

    /// Asserts that the report lists exactly `expected` pairs (origin, target, verdict, reason).
    pub fn assert_pairs(&self, expected: &[(&str, &str, &str, Option<&str>)]) {
        let mut failures = Vec::new();
        let pairs = self.doc["pairs"].as_array().cloned().unwrap_or_default();
        for (o, t, v, r) in expected {
            match pairs.iter().find(|p| p["origin"] == *o && p["target"] == *t) {
                None => failures.push(format!("{o} → {t}: missing")),
                Some(p) => {
                    let got = (p["verdict"].as_str().unwrap_or(""), p["reason"].as_str());
                    if got != (*v, *r) {
                        failures.push(format!(
                            "{o} → {t}: expected {v} {r:?}, got {} {:?}: {}",
                            got.0, got.1, p["explanation"]
                        ));
                    }
                }
            }
        }
        for p in &pairs {
            if !expected
                .iter()
                .any(|(o, t, _, _)| p["origin"] == *o && p["target"] == *t)
            {
                failures.push(format!(
                    "unexpected pair {} → {} ({})",
                    p["origin"], p["target"], p["verdict"]
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{}\n\nreport:\n{:#}\nstderr:\n{}",
            failures.join("\n"),
            self.doc,
            self.stderr
        );
    }

    /// The per-address entry of a pair.
    pub fn at(&self, origin: &str, target: &str, address: &str) -> &Value {
        self.pair(origin, target)["addresses"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["address"] == address))
            .unwrap_or_else(|| {
                panic!(
                    "{origin} → {target}: no address {address}:\n{:#}",
                    self.pair(origin, target)
                )
            })
    }
}

/// The kinds of a JSON list of findings, in order.
pub fn kinds(findings: &Value) -> Vec<String> {
    findings
        .as_array()
        .map(|fs| {
            fs.iter()
                .filter_map(|f| f["kind"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Status counts as a sorted map, e.g. {"421": 3}.
pub fn counts(v: &Value) -> BTreeMap<String, u64> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, n)| (k.clone(), n.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

/// A literal map for comparing with [`counts`].
pub fn map(entries: &[(&str, u64)]) -> BTreeMap<String, u64> {
    entries.iter().map(|(k, n)| (k.to_string(), *n)).collect()
}
