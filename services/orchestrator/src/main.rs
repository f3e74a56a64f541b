//! The `mantis-orchestrator` binary: the orchestrator service as its own process (cluster mode).
//! Configuration: an optional TOML file (first argument or `MANTIS_CONFIG`) with `[infra]` and
//! `[orchestrator]` sections, overridden by `MANTIS_INFRA__*` and `MANTIS_ORCHESTRATOR__*` variables.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    mantis_runtime::service_main("orchestrator", mantis_orchestrator::build).await?;
    Ok(())
}
