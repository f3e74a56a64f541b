-- Time-series tables. Each primary key includes its time column so that the table can become a
-- TimescaleDB hypertable (done at start-up by mantis-store when the extension is available; the
-- tables stay plain otherwise). No foreign keys: these are append-heavy and keyed by ids that
-- upstream services already validated. Measurement columns are nullable so that a value that is
-- not a number never makes a whole batch fail (SQLite stores NaN as NULL).

CREATE TABLE sensor_data_raw (
    time        timestamptz      NOT NULL,
    sensor_id   uuid             NOT NULL,
    tenant_id   uuid             NOT NULL DEFAULT '6d616e74-6973-4000-8000-000000000001',
    asset_id    uuid             NOT NULL,
    sensor_code text             NOT NULL,
    sensor_type text             NOT NULL,
    value       double precision,
    unit        text             NOT NULL,
    quality     smallint         NOT NULL CHECK (quality BETWEEN 0 AND 100),
    source      text             NOT NULL,
    metadata    jsonb            NOT NULL DEFAULT '{}',
    PRIMARY KEY (sensor_id, time)
);

CREATE INDEX sensor_data_raw_asset_time_idx ON sensor_data_raw (asset_id, time DESC);

CREATE TABLE sensor_data_windowed (
    window_start timestamptz      NOT NULL,
    sensor_id    uuid             NOT NULL,
    tenant_id    uuid             NOT NULL DEFAULT '6d616e74-6973-4000-8000-000000000001',
    asset_id     uuid             NOT NULL,
    sensor_type  text             NOT NULL,
    window_end   timestamptz      NOT NULL,
    sample_count bigint           NOT NULL CHECK (sample_count >= 0),
    mean         double precision,
    stddev       double precision,
    min          double precision,
    max          double precision,
    -- The samples in time order, as a JSON array of numbers.
    samples      jsonb            NOT NULL,
    PRIMARY KEY (sensor_id, window_start)
);

CREATE INDEX sensor_data_windowed_asset_start_idx ON sensor_data_windowed (asset_id, window_start DESC);

CREATE TABLE sensor_features (
    window_start        timestamptz      NOT NULL,
    sensor_id           uuid             NOT NULL,
    tenant_id           uuid             NOT NULL DEFAULT '6d616e74-6973-4000-8000-000000000001',
    asset_id            uuid             NOT NULL,
    sensor_type         text             NOT NULL,
    window_end          timestamptz      NOT NULL,
    feature_set_version text             NOT NULL,
    -- The features dashboards and ad-hoc SQL query most, as columns; all features are in
    -- `features` (name -> value).
    rms                 double precision,
    kurtosis            double precision,
    skewness            double precision,
    crest_factor        double precision,
    peak_frequency      double precision,
    spectral_entropy    double precision,
    features            jsonb            NOT NULL,
    PRIMARY KEY (sensor_id, window_start)
);

CREATE INDEX sensor_features_asset_start_idx ON sensor_features (asset_id, window_start DESC);

-- One row per scored window (written with each anomaly).
CREATE TABLE anomaly_scores (
    time             timestamptz      NOT NULL,
    sensor_id        uuid             NOT NULL,
    tenant_id        uuid             NOT NULL DEFAULT '6d616e74-6973-4000-8000-000000000001',
    asset_id         uuid             NOT NULL,
    anomaly_id       uuid,
    ensemble_score   double precision NOT NULL,
    threshold        double precision NOT NULL,
    severity         text,
    detection_method text             NOT NULL,
    PRIMARY KEY (sensor_id, time)
);

CREATE INDEX anomaly_scores_asset_time_idx ON anomaly_scores (asset_id, time DESC);

CREATE TABLE rul_predictions (
    predicted_at     timestamptz      NOT NULL,
    asset_id         uuid             NOT NULL,
    tenant_id        uuid             NOT NULL DEFAULT '6d616e74-6973-4000-8000-000000000001',
    rul_cycles       double precision NOT NULL,
    confidence_lower double precision NOT NULL,
    confidence_upper double precision NOT NULL,
    model_version    text             NOT NULL,
    PRIMARY KEY (asset_id, predicted_at)
);
