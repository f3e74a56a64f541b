//! The `mantis-anomaly` binary: the anomaly service as its own process (cluster mode).
//! Configuration: an optional TOML file (first argument or `MANTIS_CONFIG`) with `[infra]` and
//! `[anomaly]` sections, overridden by `MANTIS_INFRA__*` and `MANTIS_ANOMALY__*` variables.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    mantis_runtime::service_main("anomaly", mantis_anomaly::build).await?;
    Ok(())
}
