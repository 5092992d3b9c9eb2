#!/usr/bin/env bash
# The field report of issue 14, by hand: 1,000 names in groups of 10 per address
# (127.0.2.1-100), one *.scale.test certificate, nginx whose page prints
# host=$host sni=$ssl_server_name, n0 of each group behind ssl_verify_client (900 real 421 pairs).
# Runs `check --rounds 1` with the binary given (e.g. an older build, to compare) and prints the
# verdict counts; TIMEIT=1 also times it. Loopback only; stops its nginx by PID. The test
# `nginx_thousand_names_printing_host_and_sni_flag_only_the_real_421s` asserts the same.
set -euo pipefail
BIN=$(realpath "${1:?coalscope binary}")
OUT=$(realpath -m "${2:-/tmp/nginx1000.json}")
D=$(mktemp -d /tmp/nginx1000.XXXX)
PORT=18443
cd "$D"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 30 -subj "/CN=scale test CA" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout leaf.key -out leaf.csr -subj "/CN=*.scale.test" 2>/dev/null
printf "subjectAltName=DNS:*.scale.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n" > ext.cnf
openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out leaf.pem -days 30 -extfile ext.cnf 2>/dev/null
LISTEN=""; PROTECTED=""; RESOLVE=()
: > watch.txt
for g in $(seq 0 99); do
  ip="127.0.2.$((g+1))"
  LISTEN+="    listen $ip:$PORT ssl http2;"$'\n'
  PROTECTED+=" n0-g$g.scale.test"
  for i in $(seq 0 9); do
    echo "n$i-g$g.scale.test:$PORT" >> watch.txt
    RESOLVE+=(--resolve "n$i-g$g.scale.test:$PORT:$ip")
  done
done
cat > nginx.conf <<CONF
worker_processes 1;
pid $D/nginx.pid;
error_log $D/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 10000;
  ssl_certificate $D/leaf.pem;
  ssl_certificate_key $D/leaf.key;
  server {
$LISTEN    server_name *.scale.test;
    default_type text/plain;
    return 200 "host=\$host sni=\$ssl_server_name\n";
  }
  server {
$LISTEN    server_name$PROTECTED;
    ssl_verify_client optional;
    ssl_client_certificate $D/ca.pem;
    default_type text/plain;
    return 200 "host=\$host sni=\$ssl_server_name\n";
  }
}
CONF
nginx -p "$D" -e "$D/error.log" -c "$D/nginx.conf" -g 'daemon off;' &
NGINX=$!
trap 'kill $NGINX 2>/dev/null; wait $NGINX 2>/dev/null; rm -rf "$D"' EXIT
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.2.100/$PORT) 2>/dev/null && break; sleep 0.1; done
set +e
TIMER=(); [ -n "${TIMEIT:-}" ] && TIMER=(/usr/bin/time -f "check: %e s wall, %U s user, %S s sys, %M KB max RSS")
"${TIMER[@]}" "$BIN" check watch.txt --ca-file ca.pem --rounds 1 --format json --max-rps 1000000 --concurrency 512 "${RESOLVE[@]}" > "$OUT"
echo "exit $?"
set -e
python3 - "$OUT" <<'PY'
import json,sys
d=json.load(open(sys.argv[1]))
print("pairs", d["summary"]["pairs"], "verdicts", d["summary"]["verdicts"], "problems", d["summary"]["problems"], "connections", d["summary"]["connections"], "requests", d["summary"]["requests"])
c={}
for p in d["pairs"]:
    for a in p["addresses"]:
        k=a.get("content")
        c[k]=c.get(k,0)+1
print("content per address", c)
PY
