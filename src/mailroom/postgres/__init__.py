"""The PostgreSQL back end of a fleet of mailroom nodes (``store = "postgresql://..."``).

Every node is interchangeable: the messages (index and bodies), the outbound queue (with leases
a node renews while it delivers), tags, transcripts, fault rules, greylisting, rate and AUTH
failure counters and the directory live in one PostgreSQL database; live events reach every
node's web clients through LISTEN/NOTIFY. What must stay per node (sessions in flight, TLS
state, connection limits per client address) stays in the node.

- :mod:`.connection` — URLs, connecting, which errors mean "the database is unreachable"
- :mod:`.migrate` — the versioned schema (``migrations/*.sql``), ``mailroom db migrate``
- :mod:`.store` — the message store: group commit, 250 only after COMMIT
- :mod:`.events` — LISTEN/NOTIFY into the node's event hub

psycopg 3 is needed (``pip install 'mailroom[postgresql]'``); nothing here is imported unless
the configuration names a PostgreSQL database.
"""
