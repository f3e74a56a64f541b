-- The orchestrator looks for overdue work orders every minute: a partial index holds only the
-- active ones, by due time, so the check reads the overdue ones, oldest first, and never the
-- history of closed work orders. (Its condition is the query's, word for word: SQLite uses a
-- partial index only then.)
CREATE INDEX work_orders_active_due_idx ON work_orders (due_by, id)
    WHERE status IN ('OPEN', 'SCHEDULED', 'IN_PROGRESS');
