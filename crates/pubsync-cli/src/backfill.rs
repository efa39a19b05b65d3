//! The commands over whole tables: `publish:trigger-events`, `sync:data` and `verify`, with a
//! progress display and Ctrl-C stopping after the current chunk.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use pubsync_backend::backfill::export::{ExportOptions, sync_data};
use pubsync_backend::backfill::trigger::{TriggerOptions, trigger_events};
use pubsync_backend::backfill::verify::{Differences, VerifyOptions, VerifyReport, verify};
use pubsync_backend::backfill::{Ending, Stop, TriggerSource};
use pubsync_backend::sync::renew_marker;
use pubsync_shared::synchronization::SynchronizationDefinition;

use crate::App;
use crate::progress::Reporter;
use crate::shutdown::Shutdown;

/// The exit status of a run stopped by Ctrl-C.
const STOPPED: u8 = 130;

/// A stop flag that SIGINT (Ctrl-C) or SIGTERM sets; a second signal exits at once. The
/// listener lives as long as the returned [`Shutdown`].
fn stop_on_signal() -> anyhow::Result<(Arc<Stop>, Shutdown)> {
    let stop = Arc::new(Stop::new());
    let on_signal = stop.clone();
    let shutdown = Shutdown::listen(move |signal| {
        eprintln!(
            "{}: stopping after the current chunk (run the command again to resume; a second signal stops at once)",
            signal.name()
        );
        on_signal.request();
    })?;
    Ok((stop, shutdown))
}

impl App {
    /// Every trigger source of the modules.
    pub fn trigger_sources(&self) -> Vec<&'static TriggerSource> {
        self.modules().trigger_sources()
    }

    /// The trigger sources of `resources` (all without any); an unknown one is an error
    /// naming the known ones.
    pub fn select_sources(
        &self,
        resources: &[String],
    ) -> anyhow::Result<Vec<&'static TriggerSource>> {
        let sources = self.trigger_sources();
        let known = || {
            let mut names: Vec<&str> = sources.iter().map(|source| source.resource).collect();
            names.sort_unstable();
            names.join(", ")
        };
        if resources.is_empty() {
            return Ok(sources.clone());
        }
        resources
            .iter()
            .map(|name| {
                sources
                    .iter()
                    .find(|source| source.resource == name)
                    .copied()
                    .with_context(|| {
                        format!(
                            "there is no resource with the name {name:?}; known resources: {}",
                            known()
                        )
                    })
            })
            .collect()
    }

    /// The storage tables of `resources` (all without any); an unknown one is an error naming
    /// the known ones.
    pub fn select_tables(
        &self,
        resources: &[String],
    ) -> anyhow::Result<Vec<&'static SynchronizationDefinition>> {
        let tables = self.storage_tables();
        if resources.is_empty() {
            return Ok(tables.to_vec());
        }
        let mut selected = Vec::new();
        for name in resources {
            let of: Vec<_> = tables
                .iter()
                .filter(|table| table.resource == name)
                .copied()
                .collect();
            if of.is_empty() {
                let mut known: Vec<&str> = tables.iter().map(|table| table.resource).collect();
                known.sort_unstable();
                known.dedup();
                bail!(
                    "there is no resource with the name {name:?}; known resources: {}",
                    known.join(", ")
                );
            }
            selected.extend(of);
        }
        Ok(selected)
    }
}

/// `publish:trigger-events`.
pub(crate) async fn trigger(
    app: &App,
    resources: &[String],
    ids: &[i64],
    options: TriggerOptions,
) -> anyhow::Result<ExitCode> {
    app.require_schema()?;
    if !ids.is_empty() && resources.is_empty() {
        bail!("--ids needs --resource: ids mean something only within one resource");
    }
    let sources = app.select_sources(resources)?;
    let worker = app.maintenance_worker().await?;
    let (stop, _signals) = stop_on_signal()?;
    let progress = Reporter::stdout();
    let ids = (!ids.is_empty()).then_some(ids);
    let mut failed = 0;
    for source in sources {
        let report = trigger_events(&worker, source, ids, &options, &progress, &stop)
            .await
            .with_context(|| format!("triggering the events of {}", source.resource))?;
        if let Some(after) = report.resumed_after {
            println!(
                "{}: resumed after id {after} (--restart starts over)",
                report.resource
            );
        }
        if options.enqueue {
            println!(
                "{}: {} events sent to the event queues ({} messages)",
                report.resource, report.triggered, report.outcome.messages
            );
        } else {
            println!(
                "{}: {} events triggered, {} published, {} retried, {} failed; {} changes sent to synchronization",
                report.resource,
                report.triggered,
                report.outcome.handled,
                report.outcome.retried,
                report.outcome.failed,
                report.sync_relayed
            );
        }
        failed += report.outcome.failed;
        if report.ending == Some(Ending::Stopped) {
            println!("stopped: run the same command again to resume");
            return Ok(ExitCode::from(STOPPED));
        }
    }
    if failed > 0 {
        println!("{failed} events failed and are in the error queues, with their reasons");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// `sync:data`.
pub(crate) async fn sync(
    app: &App,
    resources: &[String],
    ids: &[i64],
    options: ExportOptions,
) -> anyhow::Result<ExitCode> {
    app.require_schema()?;
    if !ids.is_empty() && resources.is_empty() {
        bail!("--ids needs a resource: ids mean something only within one resource");
    }
    let tables = app.select_tables(resources)?;
    let worker = app.maintenance_worker().await?;
    if !app.settings().sync.enabled {
        println!(
            "synchronization is off (the storage is the database, or [sync] enabled = false): \
             the storage tables are the read model, there is nothing to send"
        );
        return Ok(ExitCode::SUCCESS);
    }
    let (stop, _signals) = stop_on_signal()?;
    let progress = Reporter::stdout();
    let ids = (!ids.is_empty()).then_some(ids);
    for table in tables {
        if !table.is_synchronization_enabled(app.settings().sync.enabled) {
            println!(
                "{}: synchronization is off for this table, skipped",
                table.table
            );
            continue;
        }
        let report = sync_data(&worker, table, ids, &options, &progress, &stop)
            .await
            .with_context(|| format!("sending the rows of {}", table.table))?;
        if let Some(after) = &report.resumed_after {
            println!(
                "{}: resumed after key {after:?} (--restart starts over)",
                report.table
            );
        }
        println!(
            "{}: {} rows sent to synchronization ({} on {})",
            report.table, report.exported, report.sync_relayed, table.queue_group
        );
        if let Some(first) = &report.first_unreadable {
            eprintln!(
                "{}: {} rows left out, their key is not UTF-8 (the first: {first}); pubsync verify --repair deletes them",
                report.table, report.unreadable
            );
        }
        if report.ending == Some(Ending::Stopped) {
            println!("stopped: run the same command again to resume");
            return Ok(ExitCode::from(STOPPED));
        }
    }
    if resources.is_empty() && ids.is_none() {
        // Every row is on its way: the store is whole again, whatever it lost before.
        if let Some(store) = app.storage().await?.key_value_store() {
            renew_marker(app.database(), &store)
                .await
                .context("writing the key-value store's marker")?;
            println!("key-value store: marker renewed");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `verify`: exit status 0 when the read model equals the source, 1 when anything differed
/// (repaired or not), 130 when stopped.
pub(crate) async fn check(
    app: &App,
    resources: &[String],
    options: VerifyOptions,
) -> anyhow::Result<ExitCode> {
    app.require_schema()?;
    let sources = app.select_sources(resources)?;
    let worker = app.maintenance_worker().await?;
    let (stop, _signals) = stop_on_signal()?;
    let progress = Reporter::stdout();
    let mut clean = true;
    for source in sources {
        let tables: Vec<&'static SynchronizationDefinition> = app
            .storage_tables()
            .iter()
            .filter(|table| table.resource == source.resource)
            .copied()
            .collect();
        let report = verify(&worker, source, &tables, &options, &progress, &stop)
            .await
            .with_context(|| format!("verifying {}", source.resource))?;
        print_verify(&report);
        clean &= report.is_clean();
        if report.ending == Some(Ending::Stopped) {
            println!("stopped: {} not checked to the end", report.resource);
            return Ok(ExitCode::from(STOPPED));
        }
    }
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_verify(report: &VerifyReport) {
    let verdict = if report.is_clean() { "ok" } else { "DIFFERS" };
    println!(
        "{}: {verdict}: {} entities, {} keys expected",
        report.resource, report.entities, report.expected
    );
    print_differences("storage table", &report.storage);
    if let Some(key_value) = &report.key_value {
        print_differences("key-value store", key_value);
    }
    if report.orphan_scan_skipped {
        println!(
            "  key-value store not scanned for orphaned keys: too many rows are missing from \
             the storage table (run with --repair, or publish:trigger-events, first)"
        );
    }
    if let Some(repairs) = &report.repairs {
        println!(
            "  repaired: {} entities re-published, {} rows re-synced, {} orphaned keys deleted",
            repairs.republished, repairs.resynced, repairs.deleted
        );
        if repairs.unreadable_deleted > 0 {
            println!(
                "  repaired: {} storage rows deleted whose key is not UTF-8",
                repairs.unreadable_deleted
            );
        }
    }
}

fn print_differences(place: &str, differences: &Differences) {
    println!(
        "  {place}: {} missing, {} stale, {} orphaned",
        differences.missing.count, differences.stale.count, differences.orphaned.count
    );
    for (kind, found) in [
        ("missing", &differences.missing),
        ("stale", &differences.stale),
        ("orphaned", &differences.orphaned),
    ] {
        if found.count > 0 {
            let more = found.count - found.first.len();
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            println!("    {kind}: {}{more}", found.first.join(", "));
        }
    }
}
