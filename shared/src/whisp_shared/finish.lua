-- A consumer's finishes, many entries in one atomic step: one output per recording, never an
-- ack without it, and the done-marker's SET NX decides a race (the loser only acks).
-- KEYS: input stream, output stream, dead-letter stream, last-error hash, then one
--       done-marker per entry, in the entries' order
-- ARGV: group, output maxlen, dead-letter maxlen, done ttl, then 8 per entry:
--       kind ('done' | 'ack' | 'retry'), entry id,
--       output type, output data ('' = none), dead-letter type, dead-letter data ('' = none),
--       error text, delivery count
-- Returns one character per entry: '1' when this finish set the done-marker, else '0' (one
-- string, which redis-py reads in one piece, not one reply per entry).
-- Entries are plain `type` + `data` fields (whisp_shared.codec), dead letters add the error.
local stream, output, dead, errors = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local group, maxlen, dead_maxlen, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local results, acked = {}, {}
for i = 1, #KEYS - 4 do
  local a = 4 + (i - 1) * 8
  local kind, id = ARGV[a + 1], ARGV[a + 2]
  local first = '0'
  if kind == 'retry' then
    -- the handler failed and will be retried: the entry stays pending, its error kept
    redis.call('HSET', errors, id, ARGV[a + 7])
  else
    if kind == 'done' and redis.call('SET', KEYS[4 + i], id, 'NX', 'EX', ttl) then
      first = '1'
      if ARGV[a + 4] ~= '' then
        redis.call('XADD', output, 'MAXLEN', '~', maxlen, '*', 'type', ARGV[a + 3],
          'data', ARGV[a + 4])
      end
      if ARGV[a + 6] ~= '' then
        redis.call('XADD', dead, 'MAXLEN', '~', dead_maxlen, '*', 'type', ARGV[a + 5],
          'data', ARGV[a + 6], 'error', ARGV[a + 7], 'group', group, 'source_id', id,
          'deliveries', ARGV[a + 8])
      end
    end
    acked[#acked + 1] = id
  end
  results[i] = first
end
if #acked > 0 then  -- one XACK and one HDEL for the batch (`read_count` keeps it small)
  redis.call('XACK', stream, group, unpack(acked))
  redis.call('HDEL', errors, unpack(acked))
end
return table.concat(results)
