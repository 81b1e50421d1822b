-- The consumer's finish, atomically: one output per recording, never an ack without it.
-- KEYS: done-marker, output stream, input stream, last-error hash, dead-letter stream
-- ARGV: done ttl, maxlen, group, entry id, output data ('' = none), dead-letter payload,
--       error text, delivery count, dead-letter? ('1' or ''), output type, dead-letter type
-- Entries are plain `type` + `data` fields (whisp_shared.codec), dead letters add the error.
local out_id = false
if redis.call('SET', KEYS[1], ARGV[4], 'NX', 'EX', ARGV[1]) then
  if ARGV[5] ~= '' then
    out_id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*',
      'type', ARGV[10], 'data', ARGV[5])
  end
  if ARGV[9] == '1' then
    redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[2], '*', 'type', ARGV[11], 'data', ARGV[6],
      'error', ARGV[7], 'group', ARGV[3], 'source_id', ARGV[4], 'deliveries', ARGV[8])
  end
end
redis.call('XACK', KEYS[3], ARGV[3], ARGV[4])
redis.call('HDEL', KEYS[4], ARGV[4])
return out_id
