-- The plant overview counts each asset's unacknowledged alerts (and the critical ones among
-- them) in one query per tenant: a partial index holds only the open ones, so the count does not
-- walk an asset's whole alert history. (Active work orders are counted through the partial
-- unique index work_orders_one_active_per_asset_cause.)
CREATE INDEX alerts_open_asset_idx ON alerts (asset_id, severity) WHERE acknowledged_at IS NULL;
