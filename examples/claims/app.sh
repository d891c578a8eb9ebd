#!/bin/sh
# Stands in for an application that connects to its database with a 5 s connect timeout
# and exits 3 when it cannot reach it. DB_HOST and DB_PORT come from the claim's run.env.
if timeout 5 bash -c "exec 3<>/dev/tcp/$DB_HOST/$DB_PORT" 2>/dev/null; then
  echo "app: connected to $DB_HOST:$DB_PORT"
  exit 0
fi
echo "app: cannot reach $DB_HOST:$DB_PORT within 5 s" >&2
exit 3
