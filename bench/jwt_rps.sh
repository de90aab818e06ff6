#!/usr/bin/env bash
# Requests per second for eth_blockNumber on ONE mockinfura server, measured in one run:
#   - no auth (an open key),
#   - a valid RS256 JWT (a require_jwt key),
#   - a valid ES256 JWT (another require_jwt key),
# each with wrk -t1 -c1 and -t1 -c16, server pinned to CPU 0 and wrk to CPU 1. Targets 127.0.0.1 only.
#
#   bench/jwt_rps.sh            # from the repo root; DURATION=5s CONNECTIONS="1 16" ROUNDS=3 by default
#
# The rounds are interleaved (none, RS256, ES256, none, ...) and the median reported, so that load from other
# processes on the machine hits every scenario alike.
#
# Needs wrk (apt-get install -y wrk), taskset (util-linux) and the repo's .venv.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PY:-$ROOT/.venv/bin/python}"
DURATION="${DURATION:-5s}"
CONNECTIONS="${CONNECTIONS:-1 16}"
ROUNDS="${ROUNDS:-3}"
SERVER_CPU="${SERVER_CPU:-0}"
WRK_CPU="${WRK_CPU:-1}"
OPEN_KEY="b0000000000000000000000000000000"
RS_KEY="b0000000000000000000000000000001"
ES_KEY="b0000000000000000000000000000002"
RS_KID="b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1"
ES_KID="b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2"

command -v wrk >/dev/null || { echo "wrk not found: apt-get install -y wrk" >&2; exit 2; }
WORK="$(mktemp -d -t mockinfura-bench-XXXXXX)"
SERVER_PID=""
cleanup() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- key pairs, config and tokens ---------------------------------------------------------------------------
"$PY" -m mockinfura keygen --alg RS256 --out "$WORK" --name rs >/dev/null
"$PY" -m mockinfura keygen --alg ES256 --out "$WORK" --name es >/dev/null
cat >"$WORK/bench.toml" <<EOF
[api_keys.open]
key = "$OPEN_KEY"

[api_keys.rs]
key = "$RS_KEY"
require_jwt = true
jwt_public_keys = [{ name = "rs", public_key = "$WORK/rs.public.pem", id = "$RS_KID" }]

[api_keys.es]
key = "$ES_KEY"
require_jwt = true
jwt_public_keys = [{ name = "es", public_key = "$WORK/es.public.pem", id = "$ES_KID" }]
EOF
RS_TOKEN="$("$PY" -m mockinfura token --private-key "$WORK/rs.private.pem" --kid "$RS_KID" --ttl 7200)"
ES_TOKEN="$("$PY" -m mockinfura token --private-key "$WORK/es.private.pem" --kid "$ES_KID" --ttl 7200)"

# --- the wrk script: POST eth_blockNumber, optional Authorization, count non-200 replies ----------------------
cat >"$WORK/post.lua" <<'EOF'
wrk.method = "POST"
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("BENCH_AUTHORIZATION")
if auth ~= nil and auth ~= "" then
  wrk.headers["Authorization"] = auth
end

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

non200 = 0
function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do
    bad = bad + (thread:get("non200") or 0)
  end
  io.write(string.format("NON200 %d\n", bad))
end
EOF

# --- the server ---------------------------------------------------------------------------------------------
taskset -c "$SERVER_CPU" "$PY" -m mockinfura serve --config "$WORK/bench.toml" --port 0 >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER_PID=$!
for _ in $(seq 1 300); do
  grep -q "^mockinfura listening on " "$WORK/server.out" 2>/dev/null && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.err" >&2; exit 1; }
  sleep 0.1
done
BASE="$(sed -n 's/^mockinfura listening on //p' "$WORK/server.out" | head -1)"
[[ "$BASE" == http://127.0.0.1:* ]] || { echo "unexpected listening address: $BASE" >&2; exit 1; }

declare -A URL=([none]="$BASE/v3/$OPEN_KEY" [RS256]="$BASE/v3/$RS_KEY" [ES256]="$BASE/v3/$ES_KEY")
declare -A AUTH=([none]="" [RS256]="Bearer $RS_TOKEN" [ES256]="Bearer $ES_TOKEN")
SCENARIOS=(none RS256 ES256)

# warm up (builds the mainnet chain) and check each scenario answers 200
for s in "${SCENARIOS[@]}"; do
  args=(-s -o /dev/null -w "%{http_code}" -H "Content-Type: application/json"
        -d '{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}')
  [[ -n "${AUTH[$s]}" ]] && args+=(-H "Authorization: ${AUTH[$s]}")
  code="$(curl "${args[@]}" "${URL[$s]}")"
  [[ "$code" == 200 ]] || { echo "warm-up for $s got HTTP $code" >&2; exit 1; }
done
for s in "${SCENARIOS[@]}"; do
  BENCH_AUTHORIZATION="${AUTH[$s]}" taskset -c "$WRK_CPU" wrk -t1 -c4 -d1s -s "$WORK/post.lua" "${URL[$s]}" >/dev/null
done

# --- measure: ROUNDS interleaved rounds (none, RS256, ES256, none, ...), the median of each -----------------
declare -A RPS
for c in $CONNECTIONS; do
  for round in $(seq 1 "$ROUNDS"); do
    for s in "${SCENARIOS[@]}"; do
      out="$(BENCH_AUTHORIZATION="${AUTH[$s]}" taskset -c "$WRK_CPU" wrk -t1 -c"$c" -d"$DURATION" -s "$WORK/post.lua" "${URL[$s]}")"
      rps="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
      bad="$(awk '/^NON200/ {print $2}' <<<"$out")"
      errors="$(awk '/Socket errors|Non-2xx/ {print}' <<<"$out")"
      if [[ "${bad:-0}" != 0 || -n "$errors" ]]; then
        echo "scenario $s c$c: $bad non-200 replies $errors" >&2
        exit 1
      fi
      RPS[$s,$c]="${RPS[$s,$c]:-} $rps"
    done
  done
done

median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

echo
echo "eth_blockNumber, one server ($(nproc) CPUs; server on CPU $SERVER_CPU, wrk -t1 on CPU $WRK_CPU;" \
     "$ROUNDS interleaved rounds of $DURATION, median; load average $(cut -d' ' -f1-3 /proc/loadavg))"
printf "%-8s" "auth"
for c in $CONNECTIONS; do printf " | %12s %8s" "rps c$c" "vs none"; done
printf " | %s\n" "all rounds (rps)"
for s in "${SCENARIOS[@]}"; do
  printf "%-8s" "$s"
  all=""
  for c in $CONNECTIONS; do
    m="$(median "${RPS[$s,$c]}")"
    base="$(median "${RPS[none,$c]}")"
    printf " | %12.0f %7.1f%%" "$m" "$(awk -v a="$m" -v b="$base" 'BEGIN {print 100*a/b}')"
    all="$all c$c:${RPS[$s,$c]}"
  done
  printf " |%s\n" "$all"
done
