//! The `mantis-features` binary: the features service as its own process (cluster mode).
//! Configuration: an optional TOML file (first argument or `MANTIS_CONFIG`) with `[infra]` and
//! `[features]` sections, overridden by `MANTIS_INFRA__*` and `MANTIS_FEATURES__*` variables.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    mantis_runtime::service_main("features", mantis_features::build).await?;
    Ok(())
}
