#!/bin/sh
# One pod's Redis (`redis-ha.sh redis`) or its Sentinel (`redis-ha.sh sentinel`), prod overlay
# (redis.yaml runs both in each of the three `redis` pods); `redis-ha.sh handover` is the
# Redis container's preStop: a master about to stop hands over first.
#
# At start both ask the other pods' Sentinels which Redis is the master now; a Redis that is
# not it starts as its replica. When no Sentinel answers (the very first start, or every pod
# down at once) the first of REDIS_NODES is the master. The Sentinels (quorum 2 of 3) promote
# a replica when the master has not answered for 5 s; clients (the services' redis+sentinel://
# URL, KEDA's redis-sentinel-streams triggers) ask them for the master on each new connection.
# Every address is a host name (`sentinel resolve-hostnames`/`announce-hostnames`): a pod's IP
# changes when it is rescheduled, its name in the headless Service does not.
#
# Environment (set by redis.yaml and the redis-ha ConfigMap; tests/reliability/
# test_redis_ha.py runs three of each on one host with other ports):
#   REDIS_NODES, SENTINELS       every Redis / every Sentinel as host:port, in pod order
#   REDIS_SELF, SENTINEL_SELF    this pod's own entry of each list
#   REDIS_MASTER_NAME            the name the Sentinels monitor the master under
#   REDIS_PASSWORD               the Redis servers' password (clients, replication, Sentinels)
#   REDIS_SENTINEL_PASSWORD      the Sentinels' own password (clients, and each other)
#   CONF_DIR                     writable: the generated configs (Sentinel rewrites its own)
#   DATA_DIR                     the Redis data folder (append-only file, on the pod's volume)
#   HANDOVER_S                   handover: how long to wait for the new master (default 20)
set -eu

host() { echo "${1%:*}"; }
port() { echo "${1##*:}"; }

# host:port of the master the other Sentinels name, if it is one of REDIS_NODES; else nothing.
current_master() {
  for sentinel in $(echo "$SENTINELS" | tr ',' ' '); do
    [ "$sentinel" = "$SENTINEL_SELF" ] && continue
    reply=$(REDISCLI_AUTH="$REDIS_SENTINEL_PASSWORD" timeout 3 redis-cli --raw \
      -h "$(host "$sentinel")" -p "$(port "$sentinel")" \
      sentinel get-master-addr-by-name "$REDIS_MASTER_NAME" 2>/dev/null) || true
    # shellcheck disable=SC2086 # the two lines (host, port) become one host:port
    answer=$(echo $reply | tr ' ' ':')
    case ",$REDIS_NODES," in
      *",$answer,"*) echo "$answer"; return ;;
    esac
  done
}

# This pod's Redis, with its password.
self_redis() {
  REDISCLI_AUTH="$REDIS_PASSWORD" timeout 3 redis-cli --raw \
    -h "$(host "$REDIS_SELF")" -p "$(port "$REDIS_SELF")" "$@"
}

# A planned stop (a rolling update, a drained node): when this Redis is the master, promote a
# replica now rather than leave the Sentinels to notice a master gone (5 s, then a failover
# like a crash's). Writes are paused here first (CLIENT PAUSE WRITE)
# until every replica has all of them: a Sentinel's failover does not stop the old master,
# and a write it took after the promotion (a replica not yet moved over acknowledged it)
# would be gone when it follows the new master. The clients it then drops ask the Sentinels
# again and write to the new master. A replica, or a handover that cannot be done, just
# stops: the Sentinels fail over as for a crash.
handover() {
  role=$(self_redis role 2>/dev/null | head -n 1) || true
  if [ "$role" != master ]; then
    echo "redis-ha: $REDIS_SELF is no master ($role); nothing to hand over"
    return 0
  fi
  wait_s=${HANDOVER_S:-20}
  self_redis client pause $((wait_s * 1000)) write >/dev/null
  deadline=$(( $(date +%s) + 3 ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    info=$(self_redis info replication | tr -d '\r')
    offset=$(echo "$info" | sed -n 's/^master_repl_offset://p')
    behind=$(echo "$info" | grep '^slave[0-9]*:' | grep -cv "offset=$offset," || true)
    [ "$behind" = 0 ] && break
    sleep 0.05
  done
  reply=$(REDISCLI_AUTH="$REDIS_SENTINEL_PASSWORD" timeout 3 redis-cli --raw \
    -h "$(host "$SENTINEL_SELF")" -p "$(port "$SENTINEL_SELF")" \
    sentinel failover "$REDIS_MASTER_NAME" 2>&1) || true
  if [ "$reply" != OK ]; then
    self_redis client unpause >/dev/null || true
    echo "redis-ha: the Sentinel refused the handover ($reply); the others fail over after the stop"
    return 0
  fi
  # The Sentinels move the replicas over at once but this old master only some seconds
  # later, and not while it is paused: it follows the new master itself, then lets go.
  deadline=$(( $(date +%s) + wait_s ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    now=$(current_master)
    if [ -n "$now" ] && [ "$now" != "$REDIS_SELF" ]; then
      self_redis replicaof "$(host "$now")" "$(port "$now")" >/dev/null || true
      self_redis client unpause >/dev/null || true
      echo "redis-ha: $REDIS_SELF handed over to $now"
      return 0
    fi
    sleep 0.1
  done
  self_redis client unpause >/dev/null || true
  echo "redis-ha: no new master within $wait_s s; stopping anyway"
}

if [ "${1:-}" = handover ]; then
  handover
  exit 0
fi

master=$(current_master)
[ -n "$master" ] || master=$(echo "$REDIS_NODES" | cut -d, -f1)

case "${1:-}" in
  redis)
    conf="$CONF_DIR/redis.conf"
    {
      echo "port $(port "$REDIS_SELF")"
      echo "dir $DATA_DIR"
      echo "appendonly yes"
      echo "requirepass \"$REDIS_PASSWORD\""
      echo "masterauth \"$REDIS_PASSWORD\""
      echo "replica-announce-ip $(host "$REDIS_SELF")"
      echo "replica-announce-port $(port "$REDIS_SELF")"
      # A master with no replica in sync refuses writes: what a client was told is accepted
      # is on two nodes (the services also WAIT for one replica: bus.replicas_to_ack).
      echo "min-replicas-to-write 1"
      echo "min-replicas-max-lag 10"
      if [ "$master" != "$REDIS_SELF" ]; then
        echo "replicaof $(host "$master") $(port "$master")"
      fi
    } > "$conf"
    echo "redis-ha: $REDIS_SELF starts; master is $master"
    exec redis-server "$conf"
    ;;
  sentinel)
    conf="$CONF_DIR/sentinel.conf"
    {
      echo "port $(port "$SENTINEL_SELF")"
      echo "dir $CONF_DIR"
      echo "sentinel resolve-hostnames yes"
      echo "sentinel announce-hostnames yes"
      echo "sentinel announce-ip $(host "$SENTINEL_SELF")"
      echo "sentinel announce-port $(port "$SENTINEL_SELF")"
      echo "requirepass \"$REDIS_SENTINEL_PASSWORD\""
      echo "sentinel monitor $REDIS_MASTER_NAME $(host "$master") $(port "$master") 2"
      echo "sentinel auth-pass $REDIS_MASTER_NAME \"$REDIS_PASSWORD\""
      echo "sentinel down-after-milliseconds $REDIS_MASTER_NAME 5000"
      echo "sentinel failover-timeout $REDIS_MASTER_NAME 60000"
      echo "sentinel parallel-syncs $REDIS_MASTER_NAME 1"
    } > "$conf"
    echo "redis-ha: Sentinel $SENTINEL_SELF starts; master is $master"
    exec redis-server "$conf" --sentinel
    ;;
  *)
    echo "usage: redis-ha.sh redis|sentinel|handover" >&2
    exit 2
    ;;
esac
