-- Upstream cost (docs/PRICING.md, "Cost cards, cost-plus and exchange rates").
--
-- A card's kind: selling (postage's prices to customers) or cost (the
-- upstream's prices to postage). The seeded meta-2026-01 card is Meta's
-- price list: a cost card.
ALTER TABLE rate_cards ADD COLUMN kind text NOT NULL DEFAULT 'selling' CHECK (kind IN ('selling','cost'));
UPDATE rate_cards SET kind = 'cost' WHERE id = 'meta-2026-01';

-- The cost card in effect from a month on (until the next row's month):
-- usage of a month is rated at cost by exactly one card.
CREATE TABLE cost_card_schedule (
    effective_from  text PRIMARY KEY CHECK (effective_from ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    card_id         text NOT NULL REFERENCES rate_cards(id),
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION cost_card_schedule_kind() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM rate_cards WHERE id = NEW.card_id AND kind = 'cost') THEN
        RAISE EXCEPTION 'rate card % is not a cost card', NEW.card_id USING ERRCODE = 'PC422';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER cost_card_schedule_kind BEFORE INSERT OR UPDATE ON cost_card_schedule
    FOR EACH ROW EXECUTE FUNCTION cost_card_schedule_kind();

-- A card in the schedule stays a cost card.
CREATE FUNCTION rate_cards_cost_kind_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.kind <> 'cost' AND EXISTS (SELECT 1 FROM cost_card_schedule WHERE card_id = NEW.id) THEN
        RAISE EXCEPTION 'rate card % is scheduled as the cost card: it stays a cost card', NEW.id USING ERRCODE = 'PC409';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER rate_cards_cost_kind_kept BEFORE UPDATE OF kind ON rate_cards
    FOR EACH ROW EXECUTE FUNCTION rate_cards_cost_kind_kept();

INSERT INTO cost_card_schedule (effective_from, card_id)
SELECT '2026-01', id FROM rate_cards WHERE id = 'meta-2026-01';

-- Exchange rates: units of to_currency per unit of from_currency, for one
-- month. A month without its own rate is not rated (no_exchange_rate); a
-- recorded rate never changes (the months it rated may be invoiced).
CREATE TABLE exchange_rates (
    from_currency  char(3) NOT NULL,
    to_currency    char(3) NOT NULL,
    month          text NOT NULL CHECK (month ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    rate           numeric NOT NULL CHECK (rate > 0),
    source         text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (from_currency, to_currency, month),
    CHECK (from_currency <> to_currency)
);

CREATE FUNCTION exchange_rates_never_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the % to % rate of % is recorded and never changes', OLD.from_currency, OLD.to_currency, OLD.month
        USING ERRCODE = 'restrict_violation';
END $$;

CREATE TRIGGER exchange_rates_never_change BEFORE UPDATE OR DELETE ON exchange_rates
    FOR EACH ROW EXECUTE FUNCTION exchange_rates_never_change();
