#!/bin/bash
# Seconds from `make run` (install already done) to the first 200 on / (issue 12, item 11).
# Usage: bash scripts/time_first_page.sh [PORT]   - from a fresh clone whose .venv is installed
# (e.g. git clone -q <repo> /tmp/x && cd /tmp/x && ln -s <installed venv> .venv && touch .venv/.installed).
# Stops everything it started when done.
PORT=${1:-8133}
start=$(date +%s.%N)
setsid make run PORT="$PORT" > var-first-run.log 2>&1 &
group=$!
trap 'kill -TERM -- -$group 2>/dev/null' EXIT
for _ in $(seq 1 1200); do
  if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$PORT/")" = "200" ]; then
    echo "first page (200 on /) after $(echo "$(date +%s.%N) - $start" | bc) s; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
    exit 0
  fi
  sleep 0.5
done
echo "no 200 on / within 600 s (see var-first-run.log)"
exit 1
