//! `mantis train rul`: trains the in-platform RUL model of an asset type on the runs to failure
//! the configured platform holds, registers it and (unless told not to) promotes it, with a
//! progress line on stderr. It needs only the store and the object store, so it may run beside
//! a running platform: the RUL service's replicas pick the promoted version up at their next
//! registry check.

use mantis_rul::models::{ModelError, Models, TrainRequest, Trained};
use mantis_rul_model::tree::TrainProgress;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why `mantis train` failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store or the object store cannot be reached or opened.
    #[error(transparent)]
    Infra(#[from] mantis_runtime::Error),
    /// The object store is misconfigured.
    #[error(transparent)]
    Objects(#[from] mantis_objects::Error),
    /// Training failed.
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// Trains, registers and (when `promote`) promotes the RUL model of `fleet` (a tenant's assets
/// of one type).
pub async fn rul(
    settings: &crate::Settings,
    fleet: &mantis_domain::Fleet,
    promote: bool,
    quiet: bool,
) -> Result<Trained, Error> {
    settings.rul.validate()?;
    let store = mantis_runtime::connect_store(&settings.infra).await?;
    let objects = mantis_objects::connect(&settings.infra.objects, &settings.infra.data_dir)?;
    let models = Models::new(
        mantis_objects::registry::ModelRegistry::new(objects),
        store,
        settings.rul.max_rows_per_run,
        settings.rul.max_training_rows,
    );
    let display = Arc::new(std::sync::Mutex::new(Display::new(quiet)));
    let sink = display.clone();
    let trained = models
        .train(
            TrainRequest {
                asset_type: fleet.asset_type.clone(),
                tenant_id: fleet.tenant_id,
                settings_columns: settings.rul.settings_columns.clone(),
                config: settings.rul.training.clone(),
                promote,
            },
            Some(Box::new(move |p: &TrainProgress| {
                if let Ok(mut d) = sink.lock() {
                    d.show(p, false);
                }
            })),
        )
        .await?;
    if let Ok(mut d) = display.lock() {
        d.finish();
    }
    let r = &trained.report;
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "RUL model of `{}`: version {}{} — {} runs to failure ({} rows), {} trees, \
         cross-validated RMSE {:.1} cycles, 90 % interval ±{:.1} cycles, 1 cycle = {:.0} s, {:.1} s",
        fleet,
        trained.version,
        if trained.promoted { " (promoted)" } else { "" },
        r.units,
        r.rows,
        r.trees,
        r.validation_rmse,
        r.q90,
        trained.cycle_secs,
        r.seconds
    );
    Ok(trained)
}

/// The progress line: redrawn in place on a terminal, one line per stage change otherwise.
struct Display {
    quiet: bool,
    terminal: bool,
    started: Instant,
    last: Option<Instant>,
    stage: String,
}

impl Display {
    fn new(quiet: bool) -> Self {
        Self {
            quiet,
            terminal: std::io::stderr().is_terminal(),
            started: Instant::now(),
            last: None,
            stage: String::new(),
        }
    }

    fn show(&mut self, p: &TrainProgress, force: bool) {
        if self.quiet {
            return;
        }
        let changed = p.stage != self.stage;
        let every = if self.terminal {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(5)
        };
        if !force && !changed && self.last.is_some_and(|t| t.elapsed() < every) {
            return;
        }
        self.last = Some(Instant::now());
        self.stage.clone_from(&p.stage);
        let fraction = if p.total == 0 {
            1.0
        } else {
            (p.done as f64 / p.total as f64).clamp(0.0, 1.0)
        };
        const WIDTH: usize = 30;
        let filled = (fraction * WIDTH as f64).round() as usize;
        let line = format!(
            "[{}{}] {:5.1}%  {:<12} {}/{}  {:.1} s",
            "#".repeat(filled),
            "-".repeat(WIDTH - filled),
            fraction * 100.0,
            p.stage,
            p.done,
            p.total,
            self.started.elapsed().as_secs_f64()
        );
        let mut err = std::io::stderr().lock();
        if self.terminal {
            let _ = write!(err, "\r\x1b[2K{line}");
        } else {
            let _ = writeln!(err, "{line}");
        }
    }

    fn finish(&mut self) {
        if !self.quiet && self.terminal {
            let _ = writeln!(std::io::stderr());
        }
    }
}
