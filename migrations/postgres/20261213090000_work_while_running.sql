-- Work that can be done while its asset runs (an inspection, a measurement, a lubrication
-- round): the maintenance plan does not move it into the asset's planned stops, and it
-- costs no production wherever it goes. Set by whoever creates or replans the work order;
-- rules/planning.toml may say so of a whole cause.

ALTER TABLE work_orders ADD COLUMN while_running boolean NOT NULL DEFAULT false;
