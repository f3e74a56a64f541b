//! The `mantis-preprocessing` binary: the preprocessing service as its own process (cluster mode).
//! Configuration: an optional TOML file (first argument or `MANTIS_CONFIG`) with `[infra]` and
//! `[preprocessing]` sections, overridden by `MANTIS_INFRA__*` and `MANTIS_PREPROCESSING__*` variables.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    mantis_runtime::service_main("preprocessing", mantis_preprocessing::build).await?;
    Ok(())
}
