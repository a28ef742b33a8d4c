"""Transactional writes: each command changes rows, appends to audit_log and to the outbox in
one PostgreSQL transaction, so that no event is ever published for a change that rolled back
and no change is ever committed without its event."""
