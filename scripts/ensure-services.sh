#!/usr/bin/env bash
# Starts the machine's PostgreSQL and Redis when they are down, so that the
# test suite always talks to the real services (DEVELOPERS.md: real parts).
set -euo pipefail

pg_up()    { pg_isready -q -h 127.0.0.1 -p 5432; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

if ! pg_up; then
  echo "PostgreSQL is down; starting it"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
fi
if ! redis_up; then
  echo "Redis is down; starting it"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
    --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 30); do redis_up && break; sleep 1; done
fi
pg_up || { echo "PostgreSQL did not come up" >&2; exit 1; }
redis_up || { echo "Redis did not come up" >&2; exit 1; }
echo "PostgreSQL and Redis are up"
