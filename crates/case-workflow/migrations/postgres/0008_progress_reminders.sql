-- The contact a complainant is owed, implementation steps and cases left unassigned now wake
-- the sweeper too (D-CASE-8, D-INT-5): every open case is looked at once, so that its next
-- check includes them. A case whose complainant already waited too long is reminded once.
UPDATE cases SET next_check_us = 0 WHERE state NOT IN (7, 8);
