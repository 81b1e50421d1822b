-- A consumer's next batch of new entries, as ONE bulk string: redis-py without hiredis reads
-- a stream reply element by element (~35 µs an entry); one string is read in one piece.
-- Non-blocking (scripts cannot block): the caller blocks with a plain XREADGROUP when this
-- returns ''. The entries become pending for the consumer exactly as with XREADGROUP.
-- KEYS: stream; ARGV: group, consumer, count
-- Returns, for each entry: its id, its number of field strings, then those strings; every
-- string written `<length>:<bytes>`, the number `<n>:`.
local reply = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3],
  'STREAMS', KEYS[1], '>')
if not reply then
  return ''
end
local out = {}
for _, entry in ipairs(reply[1][2]) do
  local id, fields = entry[1], entry[2]
  out[#out + 1] = #id .. ':' .. id .. #fields .. ':'
  for _, s in ipairs(fields) do
    out[#out + 1] = #s .. ':' .. s
  end
end
return table.concat(out)
