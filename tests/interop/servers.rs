//! Config generators and launchers for the real servers: nginx, HAProxy, Caddy, Apache httpd,
//! Node.js's http2 (ORIGIN frames) and nghttpx (ALTSVC frames).
//! Every server runs in the foreground as the current user, with its config, pid file and logs
//! in the scenario's temp dir. Each site answers `site NAME` so that a wrong site is visible.

use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use super::harness::{is_root, Leaf, Scenario, APACHE, APACHE_MODULES, CADDY, HAPROXY, NGHTTPX, NGINX, NODE};

fn p(path: &Path) -> String {
    path.to_string_lossy().to_string()
}

/// One nginx `server` block.
pub struct NginxSite<'a> {
    pub names: Vec<String>,
    pub listen: SocketAddr,
    pub default_server: bool,
    pub http2: bool,
    pub leaf: &'a Leaf,
    /// Extra directives inside the block, e.g. `ssl_verify_client optional;`.
    pub extra: String,
    /// The body returned for every request.
    pub body: String,
}

/// Starts one nginx master (+1 worker) named `instance` serving `sites`.
pub fn nginx(sc: &mut Scenario, instance: &str, sites: &[NginxSite<'_>]) {
    let mut conf = String::new();
    let mut ready = Vec::new();
    for s in sites {
        let flags = match (s.http2, s.default_server) {
            (true, true) => " ssl http2 default_server",
            (true, false) => " ssl http2",
            (false, true) => " ssl default_server",
            (false, false) => " ssl",
        };
        writeln!(
            conf,
            "  server {{\n    listen {}{flags};\n    server_name {};\n\
             ssl_certificate {};\n    ssl_certificate_key {};\n    {}\n\
             location / {{ return 200 \"{}\\n\"; }}\n  }}",
            s.listen,
            s.names.join(" "),
            p(&s.leaf.cert),
            p(&s.leaf.key),
            s.extra,
            s.body
        )
        .unwrap();
        if !ready.contains(&s.listen) {
            ready.push(s.listen);
        }
    }
    nginx_servers(sc, instance, 256, &conf, &ready);
}

/// Starts one nginx master (+1 worker) named `instance` with `servers` (`server { … }` blocks,
/// written by the caller) inside the common `http` section, `worker_connections` per worker,
/// once every address in `ready` accepts connections.
pub fn nginx_servers(
    sc: &mut Scenario,
    instance: &str,
    worker_connections: u32,
    servers: &str,
    ready: &[SocketAddr],
) {
    let dir = sc.path(instance);
    fs::create_dir_all(dir.join("logs")).unwrap();
    sc.open_to_workers();
    let d = p(&dir);
    let mut conf = String::new();
    if is_root() {
        conf.push_str("user nobody nogroup;\n");
    }
    writeln!(
        conf,
        "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
         events {{ worker_connections {worker_connections}; }}\n\
         http {{\n  default_type text/plain;\n\
         log_format sni '$remote_addr sni=$ssl_server_name host=$host \"$request\" $status $server_protocol';\n\
         access_log {d}/access.log sni;\n\
         client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;\n\
         uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n"
    )
    .unwrap();
    conf.push_str(servers);
    conf.push_str("}\n");
    let conf_path = sc.write(&format!("{instance}/nginx.conf"), &conf);
    let mut cmd = Command::new(NGINX);
    cmd.arg("-p")
        .arg(&dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(&conf_path)
        .arg("-g")
        .arg("daemon off;");
    sc.start(
        instance,
        cmd,
        ready,
        &[dir.join("error.log"), dir.join("access.log")],
    );
}

/// Starts HAProxy with `body` (frontends/backends) after a common global/defaults section.
pub fn haproxy(sc: &mut Scenario, instance: &str, mode: &str, body: &str, ready: &[SocketAddr]) {
    let conf = format!(
        "global\n  maxconn 512\n  log stderr format raw local0 info\n\
         defaults\n  mode {mode}\n  log global\n  option {mode}log\n  timeout connect 5s\n\
         timeout client 30s\n  timeout server 30s\n\n{body}"
    );
    let path = sc.write(&format!("{instance}.cfg"), &conf);
    let mut cmd = Command::new(HAPROXY);
    cmd.arg("-f").arg(&path).arg("-db");
    sc.start(instance, cmd, ready, &[]);
}

/// Starts Caddy with a Caddyfile; HOME and XDG dirs point into the scenario dir, admin is off.
pub fn caddy(sc: &mut Scenario, caddyfile: &str, ready: &[SocketAddr]) {
    let path = sc.write("Caddyfile", caddyfile);
    let home = sc.path("caddy-home");
    fs::create_dir_all(&home).unwrap();
    let mut cmd = Command::new(CADDY);
    cmd.arg("run")
        .arg("--config")
        .arg(&path)
        .arg("--adapter")
        .arg("caddyfile")
        .env("HOME", &home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CONFIG_HOME", home.join("config"));
    sc.start("caddy", cmd, ready, &[]);
}

/// Starts Apache httpd (one process, `-X`) with the minimal modules for TLS + HTTP/2 and
/// `vhosts` (the `<VirtualHost>` sections and anything else after the common part).
pub fn apache(sc: &mut Scenario, listen: SocketAddr, vhosts: &str) {
    sc.open_to_workers();
    let d = p(sc.dir.path());
    let m = APACHE_MODULES;
    let user = if is_root() {
        "User nobody\nGroup nogroup\n"
    } else {
        ""
    };
    let conf = format!(
        "ServerRoot {d}\nDefaultRuntimeDir {d}\nPidFile {d}/apache.pid\nErrorLog {d}/apache-error.log\n\
         LogLevel info ssl:info http2:info\n{user}\
         LoadModule mpm_event_module {m}/mod_mpm_event.so\n\
         LoadModule authz_core_module {m}/mod_authz_core.so\n\
         LoadModule mime_module {m}/mod_mime.so\n\
         LoadModule dir_module {m}/mod_dir.so\n\
         TypesConfig /dev/null\nAddType text/html .html\n\
         LoadModule socache_shmcb_module {m}/mod_socache_shmcb.so\n\
         LoadModule ssl_module {m}/mod_ssl.so\n\
         LoadModule http2_module {m}/mod_http2.so\n\
         ServerName localhost\nListen {listen}\nProtocols h2 http/1.1\n\
         SSLSessionCache shmcb:{d}/ssl_scache(512000)\n\
         LogFormat \"%a sni=%{{SSL_TLS_SNI}}x host=%{{Host}}i \\\"%r\\\" %>s %H\" sni\n\
         CustomLog {d}/apache-access.log sni\n\
         DirectoryIndex index.html\n\n{vhosts}"
    );
    let path = sc.write("apache2.conf", &conf);
    let mut cmd = Command::new(APACHE);
    cmd.arg("-X").arg("-d").arg(sc.dir.path()).arg("-f").arg(&path);
    sc.start(
        "apache2",
        cmd,
        &[listen],
        &[sc.path("apache-error.log"), sc.path("apache-access.log")],
    );
}

/// What Node.js's `http2` server (`origin_server.js`) sends and refuses.
pub struct NodeSignals<'a> {
    /// The ORIGIN frame's origins (None: no ORIGIN frame).
    pub origins: Option<&'a [String]>,
    /// An ALTSVC frame's field value, sent on stream 0 for the connection's own origin.
    pub altsvc: Option<&'a str>,
    /// Names answered 421 on a connection opened for another name.
    pub refuse: &'a [&'a str],
}

/// Starts Node.js's `http2` server (`origin_server.js`) on `listen` with `leaf`, sending and
/// refusing what `signals` says; `site NAME` for everything else.
pub fn node_origin(sc: &mut Scenario, listen: &[SocketAddr], leaf: &Leaf, signals: &NodeSignals<'_>) {
    let conf = serde_json::json!({
        "listen": listen.iter().map(|a| (a.ip().to_string(), a.port())).collect::<Vec<_>>(),
        "cert": leaf.cert,
        "key": leaf.key,
        "origins": signals.origins,
        "refuse": signals.refuse,
        "altsvc": signals.altsvc,
    });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/origin_server.js");
    let mut cmd = Command::new(NODE);
    cmd.arg(script).arg(conf.to_string());
    sc.start("node-origin", cmd, listen, &[]);
}

/// Starts nghttpx (TLS + HTTP/2 frontend on `frontend`) in front of the plain HTTP/1.1
/// `backend`, with `extra` options (e.g. `--http2-altsvc=h3,443`).
pub fn nghttpx(sc: &mut Scenario, frontend: SocketAddr, backend: SocketAddr, leaf: &Leaf, extra: &[String]) {
    let mut cmd = Command::new(NGHTTPX);
    cmd.arg(format!("--frontend={},{}", frontend.ip(), frontend.port()))
        .arg(format!(
            "--backend={},{};;proto=http/1.1",
            backend.ip(),
            backend.port()
        ))
        .arg("--workers=1")
        .arg("--no-ocsp")
        .arg("--conf=/dev/null")
        .arg(format!("--pid-file={}", p(&sc.path("nghttpx.pid"))))
        .arg(format!("--errorlog-file={}", p(&sc.path("nghttpx-error.log"))))
        .arg("--accesslog-file=/dev/null")
        .args(extra)
        .arg(&leaf.key)
        .arg(&leaf.cert);
    if is_root() {
        cmd.arg("--user=root");
    }
    let log = sc.path("nghttpx-error.log");
    sc.start("nghttpx", cmd, &[frontend], &[log]);
}

/// Starts a plain HTTP/1.1 server (Node.js) on `listen` answering `site NAME` (NAME = the
/// Host header without port) to every request, with `headers` added (e.g. an Alt-Svc).
pub fn node_http1(sc: &mut Scenario, listen: SocketAddr, headers: &[(&str, &str)]) {
    let headers: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
        .collect();
    let script = format!(
        "const h = {}; require('http').createServer((q, r) => {{ \
           const n = String(q.headers.host || '').replace(/:\\d+$/, ''); \
           r.writeHead(200, Object.assign({{'content-type': 'text/plain'}}, h)); r.end('site ' + n + '\\n'); \
         }}).listen({}, '{}');",
        serde_json::Value::Object(headers),
        listen.port(),
        listen.ip()
    );
    let mut cmd = Command::new(NODE);
    cmd.arg("-e").arg(script);
    sc.start("node-http1", cmd, &[listen], &[]);
}

/// A document root `www-NAME/index.html` answering `site NAME`.
pub fn docroot(sc: &Scenario, name: &str) -> String {
    let path = sc.write(&format!("www-{name}/index.html"), &format!("site {name}\n"));
    p(path.parent().unwrap())
}
