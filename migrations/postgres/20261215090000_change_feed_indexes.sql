-- What changed since a time, for the live feed of every gateway replica (a change made
-- through another replica, or by the orchestrator, reaches its WebSocket clients too):
-- work orders by their last change, alerts by their acknowledgement.

CREATE INDEX work_orders_updated_idx ON work_orders (updated_at, id);
CREATE INDEX alerts_acknowledged_idx ON alerts (acknowledged_at, id) WHERE acknowledged_at IS NOT NULL;
