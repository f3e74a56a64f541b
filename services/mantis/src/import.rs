//! `mantis import`: history files through the ingestion path of the configured platform, with
//! a progress line on stderr. The import runs in this process over the configured
//! infrastructure (Kafka and PostgreSQL in the cluster mode; in the embedded mode the
//! platform's log and database, which must not be in use by a running `mantis run`).

use mantis_ingestion::import::{
    HistorySource, ImportError, ImportOptions, ImportSummary, Progress,
};
use mantis_runtime::Infra;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Why `mantis import` failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The infrastructure cannot be reached or opened.
    #[error(transparent)]
    Infra(#[from] mantis_runtime::Error),
    /// The import stopped.
    #[error(transparent)]
    Import(#[from] ImportError),
}

/// Imports `source` with `options`, showing progress on stderr unless `quiet`; Ctrl-C stops
/// after the batch in flight (the next run resumes there).
pub async fn run(
    settings: &crate::Settings,
    source: &str,
    options: &ImportOptions,
    quiet: bool,
) -> Result<ImportSummary, Error> {
    let source = HistorySource::parse(source)?;
    let infra = Infra::connect(&settings.infra).await?;
    infra.ensure_topics(&[]).await?;
    // No edge buffer: a batch job that cannot publish stops and resumes later instead.
    let ingestor = Arc::new(mantis_ingestion::Ingestor::new(
        &infra,
        settings.ingestion.clone(),
    ));
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        mantis_telemetry::shutdown_signal().await;
        trigger.cancel();
    });
    let mut display = Display::new(quiet);
    let result = mantis_ingestion::import::import(
        ingestor,
        infra.store.as_ref(),
        &source,
        options,
        &mut |p: &Progress| display.show(p, false),
        &token,
    )
    .await;
    let summary = result?;
    display.show(&summary.progress, true);
    let p = &summary.progress;
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "{}: {} readings accepted, {} refused by validation (reported on data.quality.issues), {} unparsable lines, {}/{} files{}",
        if summary.interrupted {
            "interrupted"
        } else {
            "done"
        },
        p.accepted,
        p.refused,
        p.invalid,
        p.files_done,
        p.files_total,
        if summary.resumed { " (resumed)" } else { "" }
    );
    for e in &summary.errors {
        let _ = writeln!(err, "  {e}");
    }
    if summary.interrupted {
        let _ = writeln!(err, "run the same command again to resume");
    }
    Ok(summary)
}

/// The progress line: redrawn in place on a terminal, one line every few seconds otherwise.
struct Display {
    quiet: bool,
    terminal: bool,
    started: Instant,
    last: Option<Instant>,
}

impl Display {
    fn new(quiet: bool) -> Self {
        Self {
            quiet,
            terminal: std::io::stderr().is_terminal(),
            started: Instant::now(),
            last: None,
        }
    }

    fn show(&mut self, p: &Progress, last: bool) {
        if self.quiet {
            return;
        }
        let every = if self.terminal {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(5)
        };
        if !last && self.last.is_some_and(|t| t.elapsed() < every) {
            return;
        }
        self.last = Some(Instant::now());
        let fraction = if p.bytes_total == 0 {
            1.0
        } else {
            (p.bytes_done as f64 / p.bytes_total as f64).clamp(0.0, 1.0)
        };
        const WIDTH: usize = 30;
        let filled = (fraction * WIDTH as f64).round() as usize;
        let rate = p.accepted as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
        let line = format!(
            "[{}{}] {:5.1}%  {} readings  {}/{} files  {:.0} readings/s  {}",
            "#".repeat(filled),
            "-".repeat(WIDTH - filled),
            fraction * 100.0,
            p.accepted,
            p.files_done,
            p.files_total,
            rate,
            p.file
        );
        let mut err = std::io::stderr().lock();
        if self.terminal {
            let _ = write!(err, "\r\x1b[2K{line}");
            if last {
                let _ = writeln!(err);
            }
        } else {
            let _ = writeln!(err, "{line}");
        }
    }
}
