-- Invoice lines become text. PostgreSQL parsed every invoice's lines on
-- write to check they were JSON (about 4 µs of its 20 per invoice in a
-- run writing 50,000 drafts; docs/BILLING.md, "Run speed"), and nothing
-- reads inside them any more (0031 moved the adjusted months to adjusts).
-- They are written only by postage's line encoder, which is tested byte
-- for byte against encoding/json, and read only by postage, which decodes
-- them whole. SQL that wants to look inside can still cast: lines::json.
ALTER TABLE invoices ALTER COLUMN lines TYPE text;
