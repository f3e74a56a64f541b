//! The `mantis-rul` binary: the rul service as its own process (cluster mode).
//! Configuration: an optional TOML file (first argument or `MANTIS_CONFIG`) with `[infra]` and
//! `[rul]` sections, overridden by `MANTIS_INFRA__*` and `MANTIS_RUL__*` variables.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    mantis_runtime::service_main("rul", mantis_rul::build).await?;
    Ok(())
}
