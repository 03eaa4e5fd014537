#!/usr/bin/env bash
# Use the Redis at REDIS_URL (default 127.0.0.1:6379); start a local one if none answers and the
# binary exists, otherwise say how to install it.
set -euo pipefail
url=${REDIS_URL:-redis://127.0.0.1:6379/0}
hostport=${url#redis://}; hostport=${hostport%%/*}; hostport=${hostport##*@}
host=${hostport%%:*}; port=${hostport##*:}; [ "$port" = "$host" ] && port=6379
answer() { (exec 3<>"/dev/tcp/$host/$port" && printf 'PING\r\n' >&3 && timeout 2 head -c 5 <&3 | grep -q PONG) 2>/dev/null; }
if answer; then exit 0; fi
if [ "$host" != "127.0.0.1" ] && [ "$host" != "localhost" ]; then
  echo "Redis at $host:$port does not answer (REDIS_URL=$url)." >&2; exit 1
fi
if command -v redis-server >/dev/null 2>&1; then
  mkdir -p var/redis
  redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
    --dir "$PWD/var/redis" --logfile "$PWD/var/redis/redis.log" >/dev/null
  for _ in $(seq 50); do answer && { echo "Started redis-server on 127.0.0.1:$port."; exit 0; }; sleep 0.1; done
  echo "redis-server did not start; see var/redis/redis.log" >&2; exit 1
fi
echo "No Redis answers on $host:$port. Install it with: sudo apt-get install -y redis-server" >&2
exit 1
