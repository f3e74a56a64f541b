-- Every scored window keeps each detector's calibrated score next to the ensemble's, and the
-- model version that scored it (NULL: the online robust baseline).
ALTER TABLE anomaly_scores ADD COLUMN zscore_score REAL;
ALTER TABLE anomaly_scores ADD COLUMN isolation_forest_score REAL;
ALTER TABLE anomaly_scores ADD COLUMN ocsvm_score REAL;
ALTER TABLE anomaly_scores ADD COLUMN autoencoder_score REAL;
ALTER TABLE anomaly_scores ADD COLUMN model_version TEXT;
