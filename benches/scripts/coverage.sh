#!/usr/bin/env bash
# Coverage, cost and memory of `coalscope serve` over time (issue 15): starts the scale lab
# (`coalscope lab --scale N --group-size K`) and `serve` at its defaults (or the extra arguments
# given) on loopback, and every 30 s prints the elapsed time, VmRSS, CPU seconds so far
# (utime+stime), connections and requests so far, pair coverage and target coverage (from
# /metrics). Stops both processes (by PID) at the end, on error and on Ctrl-C.
#
#   benches/scripts/coverage.sh BIN N K SECONDS OUT [serve args...]
#   benches/scripts/coverage.sh target/release/coalscope 1000 10 900 /tmp/cov-1k.txt
set -euo pipefail
BIN=$(realpath "${1:?coalscope binary}"); N=${2:?names}; K=${3:?group size}; SECS=${4:?seconds}
OUT=${5:?output file}; shift 5
D=$(mktemp -d /tmp/coalscope-coverage.XXXX)
LAB=; SERVE=
cleanup() {
  [ -n "$SERVE" ] && kill "$SERVE" 2>/dev/null && wait "$SERVE" 2>/dev/null
  [ -n "$LAB" ] && kill "$LAB" 2>/dev/null && wait "$LAB" 2>/dev/null
  rm -rf "$D"
}
trap cleanup EXIT INT TERM
"$BIN" lab --scale "$N" --group-size "$K" --dir "$D" > "$D/lab.out" 2>&1 &
LAB=$!
for _ in $(seq 300); do grep -q "^watch-file:" "$D/lab.out" 2>/dev/null && break; sleep 0.2; done
DNS=$(sed -n 's/^DNS: *//p' "$D/lab.out")
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN" serve "$D/scale.watch" --listen "127.0.0.1:$PORT" --dns "$DNS" --ca-file "$D/ca.pem" "$@" > "$D/serve.out" 2>&1 &
SERVE=$!
HZ=$(getconf CLK_TCK)
{ head -1 "$D/lab.out"; echo "serve $* (defaults unless given)"; } > "$OUT"
echo "t_s rss_mb cpu_s connections requests pair_coverage target_coverage" | tee -a "$OUT"
for t in $(seq 30 30 "$SECS"); do
  sleep 30
  m=$(curl -s "http://127.0.0.1:$PORT/metrics")
  g() { echo "$m" | awk -v k="coalscope_$1" '$1 == k {print $2}'; }
  rss=$(awk '/VmRSS/{printf "%.1f", $2/1024}' "/proc/$SERVE/status")
  cpu=$(awk -v hz="$HZ" '{printf "%.2f", ($14+$15)/hz}' "/proc/$SERVE/stat")
  echo "$t $rss $cpu $(g connections_total) $(g requests_total) $(g pair_coverage_ratio) $(g target_coverage_ratio)" | tee -a "$OUT"
done
