-- Time-series tables (SQLite flavour of migrations/postgres; see the metadata migration for the
-- type mapping). No foreign keys: these are append-heavy and keyed by ids that upstream services
-- already validated. Measurement columns are nullable because SQLite stores NaN as NULL.

CREATE TABLE sensor_data_raw (
    time        INTEGER NOT NULL,
    sensor_id   TEXT    NOT NULL,
    tenant_id   TEXT    NOT NULL DEFAULT '6d616e74-6973-4000-8000-000000000001',
    asset_id    TEXT    NOT NULL,
    sensor_code TEXT    NOT NULL,
    sensor_type TEXT    NOT NULL,
    value       REAL,
    unit        TEXT    NOT NULL,
    quality     INTEGER NOT NULL CHECK (quality BETWEEN 0 AND 100),
    source      TEXT    NOT NULL,
    metadata    TEXT    NOT NULL DEFAULT '{}',
    PRIMARY KEY (sensor_id, time)
) STRICT, WITHOUT ROWID;

CREATE INDEX sensor_data_raw_asset_time_idx ON sensor_data_raw (asset_id, time DESC);

CREATE TABLE sensor_data_windowed (
    window_start INTEGER NOT NULL,
    sensor_id    TEXT    NOT NULL,
    tenant_id    TEXT    NOT NULL DEFAULT '6d616e74-6973-4000-8000-000000000001',
    asset_id     TEXT    NOT NULL,
    sensor_type  TEXT    NOT NULL,
    window_end   INTEGER NOT NULL,
    sample_count INTEGER NOT NULL CHECK (sample_count >= 0),
    mean         REAL,
    stddev       REAL,
    min          REAL,
    max          REAL,
    -- The samples in time order, as a JSON array of numbers.
    samples      TEXT    NOT NULL,
    PRIMARY KEY (sensor_id, window_start)
) STRICT;

CREATE INDEX sensor_data_windowed_asset_start_idx ON sensor_data_windowed (asset_id, window_start DESC);

CREATE TABLE sensor_features (
    window_start        INTEGER NOT NULL,
    sensor_id           TEXT    NOT NULL,
    tenant_id           TEXT    NOT NULL DEFAULT '6d616e74-6973-4000-8000-000000000001',
    asset_id            TEXT    NOT NULL,
    sensor_type         TEXT    NOT NULL,
    window_end          INTEGER NOT NULL,
    feature_set_version TEXT    NOT NULL,
    rms                 REAL,
    kurtosis            REAL,
    skewness            REAL,
    crest_factor        REAL,
    peak_frequency      REAL,
    spectral_entropy    REAL,
    features            TEXT    NOT NULL,
    PRIMARY KEY (sensor_id, window_start)
) STRICT;

CREATE INDEX sensor_features_asset_start_idx ON sensor_features (asset_id, window_start DESC);

CREATE TABLE anomaly_scores (
    time             INTEGER NOT NULL,
    sensor_id        TEXT    NOT NULL,
    tenant_id        TEXT    NOT NULL DEFAULT '6d616e74-6973-4000-8000-000000000001',
    asset_id         TEXT    NOT NULL,
    anomaly_id       TEXT,
    ensemble_score   REAL    NOT NULL,
    threshold        REAL    NOT NULL,
    severity         TEXT,
    detection_method TEXT    NOT NULL,
    PRIMARY KEY (sensor_id, time)
) STRICT;

CREATE INDEX anomaly_scores_asset_time_idx ON anomaly_scores (asset_id, time DESC);

CREATE TABLE rul_predictions (
    predicted_at     INTEGER NOT NULL,
    asset_id         TEXT    NOT NULL,
    tenant_id        TEXT    NOT NULL DEFAULT '6d616e74-6973-4000-8000-000000000001',
    rul_cycles       REAL    NOT NULL,
    confidence_lower REAL    NOT NULL,
    confidence_upper REAL    NOT NULL,
    model_version    TEXT    NOT NULL,
    PRIMARY KEY (asset_id, predicted_at)
) STRICT;
