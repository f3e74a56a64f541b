//! The `mantis-gateway` binary: the gateway service as its own process (cluster mode).
//! Configuration: an optional TOML file (first argument or `MANTIS_CONFIG`) with `[infra]` and
//! `[gateway]` sections, overridden by `MANTIS_INFRA__*` and `MANTIS_GATEWAY__*` variables.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    mantis_runtime::service_main("gateway", mantis_gateway::build_cluster).await?;
    Ok(())
}
