//! The command line, per the contract. Every option can also come from a `COALSCOPE_*`
//! environment variable (the command line wins).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::engine::probe::dns::ResolveOverride;
use crate::engine::snapshot::Protocol;

#[derive(Debug, Parser)]
#[command(
    name = "coalscope",
    version,
    about = "Find the hostnames browsers put on one HTTP/2 connection, and prove which pairs the servers answer with 421 or the wrong site",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Open the live dashboard on this watch-file (same as `coalscope watch WATCHFILE`).
    pub watchfile: Option<PathBuf>,
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub dashboard: DashboardArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the embedded lab on loopback and show it.
    Demo(DemoArgs),
    /// Live dashboard.
    Watch(WatchArgs),
    /// Probe a fixed number of rounds, print a report, exit (0 clean, 1 problems, 2 bad usage).
    Check(CheckArgs),
    /// Headless: keep probing, serve /metrics and /api/snapshot.
    Serve(ServeArgs),
    /// Start the embedded lab alone and print its hosts, DNS and CA.
    Lab(LabArgs),
    /// Print a watch-file of the names that can coalesce with these (their certificates'
    /// names, Certificate Transparency, shared addresses).
    Discover(DiscoverArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) on stdout.
    Completions(CompletionsArgs),
    /// Print a manual page (roff) on stdout: `coalscope man > coalscope.1`, `coalscope man
    /// check > coalscope-check.1`.
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// The subcommand whose page to print (none: the main page, which lists them).
    pub command: Option<String>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell, e.g. `bash` (install: `coalscope completions bash >
    /// /etc/bash_completion.d/coalscope`).
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Options common to watch, check and serve.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Nameserver to use instead of the system's resolv.conf: IP[:PORT] (repeatable).
    #[arg(long = "dns", value_name = "IP[:PORT]", env = "COALSCOPE_DNS", value_delimiter = ',', value_parser = parse_nameserver)]
    pub dns: Vec<SocketAddr>,
    /// Fixed addresses for a name, like curl's --resolve: HOST[:PORT]:ADDR[,ADDR…] (repeatable;
    /// in COALSCOPE_RESOLVE separate entries with spaces).
    #[arg(
        long = "resolve",
        value_name = "HOST[:PORT]:ADDR[,ADDR…]",
        env = "COALSCOPE_RESOLVE",
        value_delimiter = ' '
    )]
    pub resolve: Vec<ResolveOverride>,
    /// Extra trust anchors (PEM), added to the built-in web roots.
    #[arg(long = "ca-file", value_name = "PEM", env = "COALSCOPE_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Time between probe rounds of one host.
    #[arg(long, value_name = "DUR", default_value = "30s", env = "COALSCOPE_INTERVAL", value_parser = parse_duration)]
    pub interval: Duration,
    /// Bound on each DNS query, connect, handshake and request.
    #[arg(long, value_name = "DUR", default_value = "5s", env = "COALSCOPE_TIMEOUT", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Connections in flight at once, across all hosts.
    #[arg(long, value_name = "N", default_value_t = 32, env = "COALSCOPE_CONCURRENCY", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: u32,
    /// Requests per second at most, across all hosts (0 = unlimited).
    #[arg(
        long = "max-rps",
        value_name = "N",
        default_value_t = 50,
        env = "COALSCOPE_MAX_RPS"
    )]
    pub max_rps: u32,
    /// Path requested on every host unless the watch-file says otherwise.
    #[arg(long, value_name = "PATH", default_value = "/", env = "COALSCOPE_PATH", value_parser = parse_path)]
    pub path: String,
    /// The time window that rates are computed over.
    #[arg(long, value_name = "DUR", default_value = "5m", env = "COALSCOPE_WINDOW", value_parser = parse_duration)]
    pub window: Duration,
    /// How long after its TTL a last good DNS answer is still used while lookups fail
    /// (timeouts, SERVFAIL, REFUSED, no answer; not NXDOMAIN); then the name is a dns-error.
    #[arg(long = "dns-grace", value_name = "DUR", default_value = "5m", env = "COALSCOPE_DNS_GRACE", value_parser = parse_grace)]
    pub dns_grace: Duration,
    /// Protocols to probe coalescing over: HTTP/2 always; HTTP/3 where a host advertises it
    /// (Alt-Svc, or an HTTPS record's alpn). `--protocols h2` turns HTTP/3 off.
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = "h2,h3", env = "COALSCOPE_PROTOCOLS", value_parser = parse_protocol)]
    pub protocols: Vec<Protocol>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// `check` runs a fixed number of rounds: the live engine's `--interval` and `--window` do
/// nothing here, so its help leaves them out (they are still accepted, as before).
#[derive(Debug, Args)]
#[command(
    mut_arg("interval", |a| a.hide(true)),
    mut_arg("window", |a| a.hide(true)),
    mut_arg("dns_grace", |a| a.hide(true))
)]
pub struct CheckArgs {
    /// The watch-file, or `-` for standard input.
    pub watchfile: PathBuf,
    #[command(flatten)]
    pub common: CommonArgs,
    /// Fresh connections per (origin, address).
    #[arg(long, value_name = "N", default_value_t = 3, env = "COALSCOPE_ROUNDS", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub rounds: u32,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table, env = "COALSCOPE_FORMAT")]
    pub format: Format,
    /// Also list the pairs linked only by the certificate (no shared address).
    #[arg(long = "all-pairs", env = "COALSCOPE_ALL_PAIRS")]
    pub all_pairs: bool,
    /// Print no progress on stderr (the estimate, the bar or the phase lines).
    #[arg(short, long, env = "COALSCOPE_QUIET")]
    pub quiet: bool,
    /// In the table, explain and fix every problem pair on its own instead of once per cause.
    #[arg(short, long, env = "COALSCOPE_VERBOSE")]
    pub verbose: bool,
}

/// One of `--protocols`: "h2" or "h3".
fn parse_protocol(s: &str) -> Result<Protocol, String> {
    Protocol::ALL
        .into_iter()
        .find(|p| p.as_str().eq_ignore_ascii_case(s.trim()))
        .ok_or_else(|| format!("unknown protocol {s:?}: expected h2 or h3"))
}

/// `discover` reads certificates and asks Certificate Transparency: it sends no HTTP request to
/// the names, so the live engine's options and `--path`/`--max-rps` do nothing here and its
/// help leaves them out (they are still accepted).
#[derive(Debug, Args)]
#[command(
    mut_arg("interval", |a| a.hide(true)),
    mut_arg("window", |a| a.hide(true)),
    mut_arg("dns_grace", |a| a.hide(true)),
    mut_arg("path", |a| a.hide(true)),
    mut_arg("max_rps", |a| a.hide(true)),
    mut_arg("protocols", |a| a.hide(true))
)]
pub struct DiscoverArgs {
    /// The names to start from: HOST or HOST:PORT (as in a watch-file).
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,
    #[command(flatten)]
    pub common: CommonArgs,
    /// Certificate Transparency API in crt.sh's format (`?q=…&output=json`).
    #[arg(
        long = "ct-url",
        value_name = "URL",
        default_value = "https://crt.sh/",
        env = "COALSCOPE_CT_URL"
    )]
    pub ct_url: String,
    /// A saved crt.sh JSON answer to read instead of asking the API (every certificate in it
    /// counts, unless --ct-domain names the domains).
    #[arg(long = "ct-file", value_name = "FILE", env = "COALSCOPE_CT_FILE")]
    pub ct_file: Option<PathBuf>,
    /// Do not use Certificate Transparency: only the certificates the names serve.
    #[arg(long = "no-ct", env = "COALSCOPE_NO_CT")]
    pub no_ct: bool,
    /// Domain to ask Certificate Transparency about, e.g. example.com (repeatable) [the NAMEs].
    #[arg(
        long = "ct-domain",
        value_name = "DOMAIN",
        env = "COALSCOPE_CT_DOMAIN",
        value_delimiter = ','
    )]
    pub ct_domains: Vec<String>,
    /// Bound on each Certificate Transparency request (connect, answer and body); 4 attempts
    /// at most.
    #[arg(long = "ct-timeout", value_name = "DUR", default_value = "60s", env = "COALSCOPE_CT_TIMEOUT", value_parser = parse_duration)]
    pub ct_timeout: Duration,
    /// Fail (exit 2) when Certificate Transparency cannot be read, instead of printing the
    /// names from the certificates alone with a warning.
    #[arg(long = "require-ct", env = "COALSCOPE_REQUIRE_CT")]
    pub require_ct: bool,
    /// Keep the names of expired certificates found in Certificate Transparency.
    #[arg(long = "include-expired", env = "COALSCOPE_INCLUDE_EXPIRED")]
    pub include_expired: bool,
    /// Also list the names that share nothing (no certificate covering another name at a
    /// shared address).
    #[arg(long, env = "COALSCOPE_ALL")]
    pub all: bool,
    /// Names probed at most (the NAMEs always are).
    #[arg(long = "max-names", value_name = "N", default_value_t = 1000, env = "COALSCOPE_MAX_NAMES", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_names: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Theme {
    Dark,
    Light,
}

/// Options of the dashboard (watch and demo).
#[derive(Debug, Clone, Args)]
pub struct DashboardArgs {
    /// Colour theme (NO_COLOR turns colour off whatever the theme).
    #[arg(long, value_enum, default_value_t = Theme::Dark, env = "COALSCOPE_THEME")]
    pub theme: Theme,
    /// Directory where `e` writes JSON exports [current directory].
    #[arg(long = "export-dir", value_name = "DIR", env = "COALSCOPE_EXPORT_DIR")]
    pub export_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The watch-file probed here (may be left out when `--from` gives remote vantages).
    #[arg(required_unless_present = "from")]
    pub watchfile: Option<PathBuf>,
    /// A running `coalscope serve` to show beside (or instead of) local probing:
    /// [NAME=]URL, e.g. fra1=http://10.0.0.1:9421 (repeatable). Its /api/snapshot is fetched
    /// every 2s (or every --interval when given), each request bounded by --timeout (in
    /// COALSCOPE_FROM separate entries with spaces).
    #[arg(
        long = "from",
        value_name = "[NAME=]URL",
        env = "COALSCOPE_FROM",
        value_delimiter = ' ',
        value_parser = crate::remote::parse_source
    )]
    pub from: Vec<crate::remote::RemoteSource>,
    /// Set when --interval was given explicitly (the fetch interval of `--from` then follows
    /// it); filled in from the parsed matches, not an option.
    #[arg(skip)]
    pub interval_given: bool,
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub dashboard: DashboardArgs,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    pub watchfile: PathBuf,
    #[command(flatten)]
    pub common: CommonArgs,
    /// Address to serve /metrics and /api/snapshot on.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:9421",
        env = "COALSCOPE_LISTEN",
        value_parser = parse_listen
    )]
    pub listen: SocketAddr,
    /// Name of this vantage point, added as label `vantage` to every exported series.
    #[arg(long, value_name = "NAME", env = "COALSCOPE_VANTAGE", value_parser = parse_vantage)]
    pub vantage: Option<String>,
    /// Who may read the exporter: TLS, client certificates, basic-auth users (bcrypt) and
    /// response headers, in the Prometheus exporters' web-config format (exporter-toolkit).
    /// Read again when it changes; a bad edit keeps the last good one.
    #[arg(long = "web-config", value_name = "FILE", env = "COALSCOPE_WEB_CONFIG")]
    pub web_config: Option<PathBuf>,
    /// Pairs exported at most, problem pairs first; the exporter says how many it left out.
    #[arg(long = "max-pairs", value_name = "N", default_value_t = 1000, env = "COALSCOPE_MAX_PAIRS", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_pairs: u32,
    /// Connections the exporter keeps open at once (from all clients; 32 from one address).
    /// When full, the connection idle longest is closed to let a new one in, so idle or slow
    /// connections cannot keep scrapers out. Each takes a file descriptor.
    #[arg(long = "max-connections", value_name = "N", default_value_t = 256, env = "COALSCOPE_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,
}

/// `IP:PORT` (IPv6 as `[::1]:9421`) for `serve --listen`.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.trim().parse::<SocketAddr>().map_err(|_| {
        format!("invalid listen address {s:?}: expected IP:PORT, e.g. 127.0.0.1:9421 or [::1]:9421")
    })
}

/// A vantage name: non-empty, printable, at most 128 characters.
fn parse_vantage(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.is_empty() || t.len() > 128 || t.chars().any(char::is_control) {
        return Err(format!(
            "invalid vantage {s:?}: expected a short printable name, e.g. fra1"
        ));
    }
    Ok(t.to_string())
}

#[derive(Debug, Args)]
pub struct LabArgs {
    /// Port every lab server listens on (each on its own 127.0.0.x address) [free port].
    #[arg(long, env = "COALSCOPE_LAB_PORT")]
    pub port: Option<u16>,
    /// Port of the lab DNS server on 127.0.0.1 [free port].
    #[arg(long = "dns-port", env = "COALSCOPE_LAB_DNS_PORT")]
    pub dns_port: Option<u16>,
    /// Directory for the CA, certificates and watch-file [a new temporary directory].
    #[arg(long, env = "COALSCOPE_LAB_DIR")]
    pub dir: Option<PathBuf>,
    /// Let scenarios change their behaviour every minute, as in the demo.
    #[arg(long)]
    pub dynamic: bool,
    /// Serve N synthetic names for benchmarks instead of the scenarios (scale lab).
    #[arg(long, value_name = "N", conflicts_with = "dynamic", value_parser = clap::value_parser!(u32).range(1..=200_000))]
    pub scale: Option<u32>,
    /// Names per wildcard certificate in the scale lab.
    #[arg(long = "group-size", value_name = "K", default_value_t = 20, requires = "scale", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub group_size: u32,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Time between probe rounds of one host.
    #[arg(long, value_name = "DUR", default_value = "3s", value_parser = parse_duration)]
    pub interval: Duration,
    /// The time window that rates are computed over.
    #[arg(long, value_name = "DUR", default_value = "2m", value_parser = parse_duration)]
    pub window: Duration,
    /// How long after its TTL a last good DNS answer is still used while lookups fail.
    #[arg(long = "dns-grace", value_name = "DUR", default_value = "5m", value_parser = parse_grace)]
    pub dns_grace: Duration,
    /// Print one report of the lab instead of opening the dashboard (for a terminal-less run).
    #[arg(long)]
    pub once: bool,
    #[command(flatten)]
    pub dashboard: DashboardArgs,
}

/// `30s`, `500ms`, `5m`, `1h` (humantime syntax); zero is refused.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid duration {s:?}: {e} (try 30s, 500ms, 5m)"))?;
    if d.is_zero() {
        return Err(format!("invalid duration {s:?}: must be more than zero"));
    }
    Ok(d)
}

/// Longest `--dns-grace`: a day (an answer kept longer is not a grace but a stale list).
pub const MAX_DNS_GRACE: Duration = Duration::from_secs(86_400);

/// `--dns-grace`: a duration from zero (no grace: the failure counts once the TTL is over)
/// to a day.
pub fn parse_grace(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid --dns-grace {s:?}: {e} (try 0s, 30s, 5m)"))?;
    if d > MAX_DNS_GRACE {
        return Err(format!("invalid --dns-grace {s:?}: at most 24h"));
    }
    Ok(d)
}

/// `IP` or `IP:PORT`; IPv6 as `::1` or `[::1]:5353`. Port defaults to 53.
pub fn parse_nameserver(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Ok(sa);
    }
    let bare = s.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| {
            format!("invalid nameserver {s:?}: expected IP or IP:PORT, e.g. 127.0.0.1:5353 or [::1]:53")
        })
}

fn parse_path(s: &str) -> Result<String, String> {
    if !s.starts_with('/') || s.chars().any(|c| c.is_control() || c == ' ') {
        return Err(format!(
            "invalid path {s:?}: must start with / and contain no spaces or control characters"
        ));
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_check_options() {
        let cli = Cli::try_parse_from([
            "coalscope",
            "check",
            "hosts.txt",
            "--dns",
            "127.0.0.1:5353",
            "--dns",
            "::1",
            "--rounds",
            "5",
            "--format",
            "json",
            "--timeout",
            "500ms",
            "--all-pairs",
            "-q",
            "--verbose",
        ])
        .unwrap();
        let Some(Command::Check(c)) = cli.command else {
            panic!("not check")
        };
        assert_eq!(c.rounds, 5);
        assert_eq!(c.format, Format::Json);
        assert!(c.all_pairs);
        assert!(c.quiet && c.verbose);
        assert_eq!(c.common.timeout, Duration::from_millis(500));
        assert_eq!(
            c.common.dns,
            vec!["127.0.0.1:5353".parse().unwrap(), "[::1]:53".parse().unwrap()]
        );
        assert_eq!(c.common.interval, Duration::from_secs(30));
        assert_eq!(c.common.max_rps, 50);
    }

    #[test]
    fn parses_serve_options() {
        let cli = Cli::try_parse_from([
            "coalscope",
            "serve",
            "hosts.txt",
            "--listen",
            "[::1]:9500",
            "--vantage",
            "fra1",
            "--max-pairs",
            "50",
        ])
        .unwrap();
        let Some(Command::Serve(s)) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(s.listen, "[::1]:9500".parse().unwrap());
        assert_eq!(s.vantage.as_deref(), Some("fra1"));
        assert_eq!(s.max_pairs, 50);
        for args in [
            vec!["coalscope", "serve", "f", "--listen", "localhost"],
            vec!["coalscope", "serve", "f", "--listen", "127.0.0.1"],
            vec!["coalscope", "serve", "f", "--vantage", ""],
            vec!["coalscope", "serve", "f", "--max-pairs", "0"],
        ] {
            assert!(Cli::try_parse_from(&args).is_err(), "{args:?} accepted");
        }
    }

    #[test]
    fn parses_discover_options() {
        let cli = Cli::try_parse_from([
            "coalscope",
            "discover",
            "a.example",
            "b.example:8443",
            "--ct-url",
            "http://127.0.0.1:9/",
            "--ct-domain",
            "example.com,example.net",
            "--ct-timeout",
            "2s",
            "--all",
            "--include-expired",
            "--require-ct",
            "--max-names",
            "10",
        ])
        .unwrap();
        let Some(Command::Discover(d)) = cli.command else {
            panic!("not discover")
        };
        assert_eq!(d.names, vec!["a.example", "b.example:8443"]);
        assert_eq!(d.ct_url, "http://127.0.0.1:9/");
        assert_eq!(d.ct_domains, vec!["example.com", "example.net"]);
        assert_eq!(d.ct_timeout, Duration::from_secs(2));
        assert!(d.all && d.include_expired && d.require_ct && !d.no_ct);
        assert_eq!(d.max_names, 10);
        for args in [
            vec!["coalscope", "discover"],
            vec!["coalscope", "discover", "a", "--max-names", "0"],
            vec!["coalscope", "discover", "a", "--ct-timeout", "0s"],
        ] {
            assert!(Cli::try_parse_from(&args).is_err(), "{args:?} accepted");
        }
    }

    #[test]
    fn a_bare_watchfile_means_watch() {
        let cli = Cli::try_parse_from(["coalscope", "hosts.txt"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.watchfile.unwrap(), PathBuf::from("hosts.txt"));
    }

    #[test]
    fn bad_values_are_refused() {
        for args in [
            vec!["coalscope", "check", "f", "--timeout", "0s"],
            vec!["coalscope", "check", "f", "--timeout", "soon"],
            vec!["coalscope", "check", "f", "--dns", "not-an-ip"],
            vec!["coalscope", "check", "f", "--rounds", "0"],
            vec!["coalscope", "check", "f", "--path", "nope"],
            vec!["coalscope", "check", "f", "--format", "xml"],
        ] {
            assert!(Cli::try_parse_from(&args).is_err(), "{args:?} accepted");
        }
    }
}
