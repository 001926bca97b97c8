-- The audit trail: a hash chain over the code events (see domain/audit.py).
--
-- Orders write their events in their own transactions, as before, with no lock in
-- common. One background chainer at a time (an advisory lock) appends an entry for each
-- event not chained yet, in event id order. Ids can commit out of order, so an event that
-- commits late is chained late: verification walks the chain by seq, not by event id.

CREATE TABLE audit_chain (
    seq bigint PRIMARY KEY CHECK (seq >= 1),
    -- ON DELETE NO ACTION: an event cannot go while its entry points at it (short of a
    -- superuser switching the checks off, which verification notices).
    event_id bigint NOT NULL UNIQUE REFERENCES code_events (id) ON DELETE NO ACTION,
    prev_hash bytea NOT NULL CHECK (length(prev_hash) = 32),
    hash bytea NOT NULL CHECK (length(hash) = 32),
    chained_at timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER audit_chain_append_only BEFORE UPDATE OR DELETE ON audit_chain
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER audit_chain_no_truncate BEFORE TRUNCATE ON audit_chain
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();

-- Where the chainer's search for unchained events starts, so that a pass reads the
-- newest events only, never the whole log. Every event with id <= horizon is chained.
-- A pass that finds everything it can see chained proposes the highest id it saw as the
-- candidate; the next pass makes it the horizon once every transaction that began before
-- the candidate was seen has ended (one of them could still commit a lower id).
CREATE TABLE audit_chainer (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    horizon bigint NOT NULL DEFAULT 0,
    candidate bigint NOT NULL DEFAULT 0,
    candidate_at timestamptz
);
INSERT INTO audit_chainer DEFAULT VALUES;
