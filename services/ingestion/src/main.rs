//! The `mantis-ingestion` binary: the ingestion service as its own process (cluster mode).
//! Configuration: an optional TOML file (first argument or `MANTIS_CONFIG`) with `[infra]` and
//! `[ingestion]` sections, overridden by `MANTIS_INFRA__*` and `MANTIS_INGESTION__*` variables.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    mantis_runtime::service_main("ingestion", mantis_ingestion::build).await?;
    Ok(())
}
