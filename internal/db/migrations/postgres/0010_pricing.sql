-- Pricing: rate cards, their monthly versions, customer card assignments and
-- overrides. Months are text 'YYYY-MM' (as invoices.period), which sorts in
-- time order. The version's content (markets, categories, prices) is the
-- JSON of pricing.Version; see docs/PRICING.md.

CREATE TABLE rate_cards (
    id          text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    name        text NOT NULL,
    currency    char(3) NOT NULL,
    rounding    text NOT NULL DEFAULT 'half_even' CHECK (rounding IN ('half_even','half_up')),
    is_default  boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- At most one default card.
CREATE UNIQUE INDEX rate_cards_one_default ON rate_cards (is_default) WHERE is_default;

CREATE TABLE rate_card_versions (
    card_id         text NOT NULL REFERENCES rate_cards(id),
    number          int  NOT NULL CHECK (number >= 1),
    status          text NOT NULL CHECK (status IN ('draft','active')),
    effective_from  text CHECK (effective_from ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    note            text NOT NULL DEFAULT '',
    content         jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    activated_at    timestamptz,
    PRIMARY KEY (card_id, number),
    CHECK ((status = 'active') = (effective_from IS NOT NULL)),
    UNIQUE (card_id, effective_from)
);

-- An active version is history: it can be neither changed nor deleted.
CREATE FUNCTION rate_card_versions_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status = 'active' THEN
        RAISE EXCEPTION 'rate card version %/% is active and cannot change', OLD.card_id, OLD.number
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER rate_card_versions_immutable
    BEFORE UPDATE OR DELETE ON rate_card_versions
    FOR EACH ROW EXECUTE FUNCTION rate_card_versions_immutable();

-- A customer's card from a month on; without a row, the default card.
CREATE TABLE customer_rate_cards (
    customer_id     text NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    effective_from  text NOT NULL CHECK (effective_from ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    card_id         text NOT NULL REFERENCES rate_cards(id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, effective_from)
);

-- A customer's overrides (pricing.Overrides as JSON).
CREATE TABLE customer_pricing_overrides (
    customer_id  text PRIMARY KEY REFERENCES customers(id) ON DELETE CASCADE,
    overrides    jsonb NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
