//! `poison_1pct_ratio`: what 1 % of poison messages cost. The changes of `e2e_sqlite_hello`
//! through the embedded default twice in the same invocation, with the same limits and one
//! message in each hundred long: once just under the limit (clean), once just over it
//! (poison: its storage row is refused, its events are retried and end in the error queue),
//! so that both runs write as much. The figure is the poisoned run's changes/s over the
//! clean run's, medians of the runs, taken alternately.

use anyhow::Context as _;

use crate::e2e::{Long, POISON_CONFIG, Plan, pubsync_plan_run};
use crate::report::Figure;
use crate::{Size, median, per_second};

/// The figure's name.
pub const NAME: &str = "poison_1pct_ratio";

/// `poison_1pct_ratio` (×), with both rates in its note.
pub async fn run(size: Size) -> anyhow::Result<Figure> {
    let changes = size.e2e_changes;
    let plan = Plan::new(changes);
    let mut clean_runs = Vec::new();
    let mut poisoned_runs = Vec::new();
    for run in 0..size.e2e_runs {
        let dir = tempfile::tempdir().context("temporary directory")?;
        eprintln!("bench:   clean, run {}:", run + 1);
        clean_runs.push(
            pubsync_plan_run(dir.path(), plan.with_long(Long::UnderLimit), POISON_CONFIG)
                .await
                .with_context(|| format!("clean run {}", run + 1))?,
        );
        let dir = tempfile::tempdir().context("temporary directory")?;
        eprintln!("bench:   1 % poison, run {}:", run + 1);
        poisoned_runs.push(
            pubsync_plan_run(dir.path(), plan.with_long(Long::Poison), POISON_CONFIG)
                .await
                .with_context(|| format!("poisoned run {}", run + 1))?,
        );
    }
    let clean = per_second(changes, median(clean_runs));
    let poisoned = per_second(changes, median(poisoned_runs));
    Ok(Figure {
        name: NAME.to_owned(),
        value: Some(poisoned / clean),
        unit: "×".to_owned(),
        ceiling: None,
        note: Some(format!(
            "{poisoned:.0} changes/s with 1 % poison, {clean:.0} clean"
        )),
    })
}
