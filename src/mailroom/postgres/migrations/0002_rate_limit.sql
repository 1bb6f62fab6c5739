-- Messages per client address per minute, fleet-wide: allowed while this minute's count plus
-- the last minute's, weighed by how much of it still lies within the sliding minute, stays
-- under the limit (the two-bucket estimate of a sliding window). The row of this minute is
-- locked while deciding, so nodes deciding at once for one address take turns.
CREATE FUNCTION mailroom_rate_allow(ip text, now_s double precision, per_minute integer)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    this_minute bigint := floor(now_s / 60);
    current_count integer;
    previous integer;
BEGIN
    INSERT INTO rate_counts (client_ip, minute, count) VALUES (ip, this_minute, 0)
        ON CONFLICT DO NOTHING;
    SELECT count INTO current_count FROM rate_counts
        WHERE client_ip = ip AND minute = this_minute FOR UPDATE;
    SELECT coalesce(max(count), 0) INTO previous FROM rate_counts
        WHERE client_ip = ip AND minute = this_minute - 1;
    IF current_count + previous * (1 - (now_s / 60 - this_minute)) >= per_minute THEN
        RETURN false;
    END IF;
    UPDATE rate_counts SET count = count + 1 WHERE client_ip = ip AND minute = this_minute;
    RETURN true;
END $$;
