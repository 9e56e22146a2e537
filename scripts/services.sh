#!/usr/bin/env bash
# Start the local services the test suite talks to (PostgreSQL, NATS JetStream) when they are
# installed but not running. A machine without them runs the suite with those tests skipped,
# unless PROVING_REQUIRE_SERVICES=1, which makes their absence a failure.
set -u
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! port_open 5432 && command -v pg_ctlcluster >/dev/null 2>&1; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
fi
if ! port_open 4222 && [ -x /usr/sbin/nats-server ]; then
  echo "starting NATS with JetStream"
  mkdir -p /var/lib/nats-server
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log || true
fi
for _ in $(seq 1 50); do
  { port_open 5432 || ! command -v pg_ctlcluster >/dev/null 2>&1; } &&
    { port_open 4222 || [ ! -x /usr/sbin/nats-server ]; } && break
  sleep 0.2
done
exit 0
