#!/bin/sh
# One pod's Redis (`redis-ha.sh redis`) or its Sentinel (`redis-ha.sh sentinel`), prod overlay
# (redis.yaml runs both in each of the three `redis` pods).
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
    echo "usage: redis-ha.sh redis|sentinel" >&2
    exit 2
    ;;
esac
