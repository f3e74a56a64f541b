//! The `mantis-ingestion` binary: the ingestion service as its own process (cluster mode).
//! Configuration: an optional TOML file (first argument or `MANTIS_CONFIG`) with `[infra]` and
//! `[ingestion]` sections, overridden by `MANTIS_INFRA__*` and `MANTIS_INGESTION__*` variables.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Devices keep sending while the bus is away, also across a restart of this process: it
    // starts without the bus (its edge buffer takes the readings).
    mantis_runtime::service_main_with(
        "ingestion",
        mantis_runtime::BusAtStart::Optional,
        mantis_ingestion::build,
    )
    .await?;
    Ok(())
}
