-- mailroom's schema in PostgreSQL: everything a fleet of nodes shares.
-- Applied by `mailroom db migrate` in one transaction; times are Unix seconds (double
-- precision), as the Maildir store's index and queue keep them.

-- Tags compare without regard to case ("Invoice" and "invoice" are one tag), as the SQLite
-- index's COLLATE NOCASE does.
CREATE COLLATION mailroom_nocase (provider = icu, locale = 'und-u-ks-level2', deterministic = false);

-- -- messages ----------------------------------------------------------------------------------

-- One row per accepted message: what the index keeps, and the header of the copy the web
-- shows (the first destination's trace fields), which goes before the body.
CREATE TABLE messages (
    id text PRIMARY KEY,                 -- the queue id (sortable by time of arrival)
    received double precision NOT NULL,
    mailbox text NOT NULL,               -- local mailboxes, comma-separated, or "(queue)"
    sender text NOT NULL,
    recipients text NOT NULL,            -- a JSON array, as the SQLite index keeps it
    from_header text NOT NULL DEFAULT '',
    to_header text NOT NULL DEFAULT '',
    cc_header text NOT NULL DEFAULT '',
    subject text NOT NULL DEFAULT '',
    message_id text NOT NULL DEFAULT '',
    size bigint NOT NULL,                -- header + body, as a Maildir file would be
    client_ip text NOT NULL DEFAULT '',
    helo text NOT NULL DEFAULT '',
    auth_user text,
    tls boolean NOT NULL DEFAULT false,
    read boolean NOT NULL DEFAULT false,
    node text NOT NULL DEFAULT '',       -- the node that received it
    header bytea NOT NULL
);
CREATE INDEX messages_received ON messages (received DESC, id DESC);

-- The message as received (after our changes to its header section), in chunks of at most
-- 1 MiB, so neither the store nor a reader holds a large message whole.
CREATE TABLE message_bodies (
    id text NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    seq integer NOT NULL,
    chunk bytea NOT NULL,
    PRIMARY KEY (id, seq)
);

-- Local mailboxes' copies beyond the first (each with its own Delivered-To trace fields).
CREATE TABLE message_copies (
    id text NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    copy integer NOT NULL,
    mailbox text NOT NULL,
    header bytea NOT NULL,
    PRIMARY KEY (id, copy)
);

CREATE TABLE tags (
    id text NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    tag text COLLATE mailroom_nocase NOT NULL,
    PRIMARY KEY (id, tag)
);
CREATE INDEX tags_tag ON tags (tag);

-- The web's summary of a message (attachments, snippet, text to search): a cache any node
-- fills; deleted with the message.
CREATE TABLE web_summaries (
    id text PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    attachments integer NOT NULL,
    inline integer NOT NULL,
    snippet text NOT NULL,
    search_text text NOT NULL
);

-- -- the outbound queue --------------------------------------------------------------------------

-- One row per queued message. ``state`` is the queue entry (envelope and each recipient's
-- outcome) as the file queue's JSON holds it; ``header`` our Received field, sent before the
-- body. A node delivers an entry only while it holds its lease (``lease_owner`` until
-- ``lease_until``, database time); a dead node's leases run out and another node takes them.
CREATE TABLE queue_entries (
    id text PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    header bytea NOT NULL,
    state jsonb NOT NULL,
    next_attempt double precision NOT NULL DEFAULT 0,
    lease_owner text,
    lease_until double precision,
    updated double precision NOT NULL DEFAULT extract(epoch FROM clock_timestamp())
);
CREATE INDEX queue_entries_due ON queue_entries (next_attempt);

-- -- session transcripts (bounded: the newest ``transcripts`` of the fleet) -----------------------

CREATE TABLE transcripts (
    id text PRIMARY KEY,
    node text NOT NULL,
    started double precision NOT NULL,
    ended double precision NOT NULL,
    client text NOT NULL,
    listener text NOT NULL,
    sender text NOT NULL DEFAULT '',
    recipients text NOT NULL DEFAULT '',
    worst_code integer NOT NULL DEFAULT 0,
    stored integer NOT NULL DEFAULT 0,   -- messages the session stored
    messages text[] NOT NULL DEFAULT '{}',
    summary jsonb NOT NULL,
    data jsonb NOT NULL
);
CREATE INDEX transcripts_ended ON transcripts (ended DESC);
CREATE INDEX transcripts_messages ON transcripts USING gin (messages);

-- -- fault rules (every node applies them) ---------------------------------------------------------

CREATE TABLE fault_rules (
    id bigserial PRIMARY KEY,
    rule text NOT NULL,                  -- as written: STAGE[:MATCH][:OPTION...]:ACTION
    origin text NOT NULL DEFAULT '',
    made double precision NOT NULL DEFAULT extract(epoch FROM clock_timestamp())
);
-- A node's own rules (--fault) are numbered from 1; the fleet's from a million, apart.
ALTER SEQUENCE fault_rules_id_seq RESTART WITH 1000000;

-- -- counters the fleet shares -------------------------------------------------------------------

-- Greylisting (RFC 6647): a triple's first sighting, and when it last passed.
CREATE TABLE greylist (
    network text NOT NULL,
    sender text NOT NULL,
    recipient text NOT NULL,
    first_seen double precision NOT NULL,
    passed double precision,
    PRIMARY KEY (network, sender, recipient)
);

-- Messages per client address per minute (a sliding minute is weighed from two of these).
CREATE TABLE rate_counts (
    client_ip text NOT NULL,
    minute bigint NOT NULL,
    count integer NOT NULL,
    PRIMARY KEY (client_ip, minute)
);

-- Failed AUTH exchanges by client address.
CREATE TABLE auth_failures (
    client_ip text NOT NULL,
    at double precision NOT NULL
);
CREATE INDEX auth_failures_client ON auth_failures (client_ip, at);

-- -- the directory of the mail server mode ---------------------------------------------------------

CREATE TABLE domains (
    name text PRIMARY KEY                -- lower-case, no trailing dot
);

CREATE TABLE users (
    address text PRIMARY KEY,            -- canonical: as the directory compares addresses
    password text,                       -- argon2 hash (`mailroom passwd`); NULL: receive only
    scram text,                          -- SCRAM-SHA-256 secret, as `mailroom passwd` writes it
    quota bigint NOT NULL DEFAULT 0      -- octets; 0: none
);

-- One row per target of an alias ("@domain" for a catch-all); a moved user has moved_to.
CREATE TABLE aliases (
    address text NOT NULL,
    target text,
    moved_to text,
    CHECK ((target IS NULL) <> (moved_to IS NULL))
);
CREATE INDEX aliases_address ON aliases (address);

-- A change to the directory tells every node at once (each keeps a short-lived copy).
CREATE FUNCTION mailroom_directory_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('mailroom_directory', TG_TABLE_NAME);
    RETURN NULL;
END $$;
CREATE TRIGGER domains_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON domains
    FOR EACH STATEMENT EXECUTE FUNCTION mailroom_directory_changed();
CREATE TRIGGER users_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION mailroom_directory_changed();
CREATE TRIGGER aliases_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON aliases
    FOR EACH STATEMENT EXECUTE FUNCTION mailroom_directory_changed();

-- Fault rules, likewise.
CREATE FUNCTION mailroom_faults_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('mailroom_faults', '');
    RETURN NULL;
END $$;
CREATE TRIGGER fault_rules_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON fault_rules
    FOR EACH STATEMENT EXECUTE FUNCTION mailroom_faults_changed();
