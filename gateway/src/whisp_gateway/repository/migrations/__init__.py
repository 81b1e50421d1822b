"""The gateway's schema history, as Alembic revisions (`versions/`).

`whisp_gateway.repository.migrate.upgrade()` brings any database to the newest revision when
the gateway (or `whisp users add`) starts: a fresh one from nothing, one made before
migrations existed (by `metadata.create_all`, no `alembic_version` table) from the baseline,
which creates only the tables it lacks and so amounts to stamping it there.

A new revision: change `repository/tables.py`, then add `versions/vNNNN_<what>.py` with
`down_revision` naming the previous one (`alembic -c <an ini whose script_location is this
folder> revision -m "…"` writes the file from `script.py.mako`). Revisions spell out their
columns rather than importing `tables.py`, which only ever describes the newest schema.
"""
