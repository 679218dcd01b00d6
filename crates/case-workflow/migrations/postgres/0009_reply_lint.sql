-- Whether a reply to the complainant on the case (a first response or decision notice) was
-- recorded while the knowledge base could not lint it (D-KB-3), so that the relinter finds the
-- cases to lint again without reading every case. Written with every change of the case.
ALTER TABLE cases ADD COLUMN lint_pending BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX cases_with_pending_lint ON cases (id) WHERE lint_pending;
