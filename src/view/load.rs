//! Recorded files into a store: the replay, then every span stored, for
//! `kausal view` and `kausal why PATH...`.

use crate::linking_args::LinkingArgs;
use crate::replay::{self, ReplayResult};
use crate::sources::files;
use crate::store::{Store, StoreConfig, StoredSpan};

/// A store in memory holding the traces of `paths`, and what the replay read.
pub fn recordings(paths: &[String], linking: &LinkingArgs, progress: bool) -> anyhow::Result<(Store, ReplayResult)> {
    let inputs = files::expand_paths(paths)?;
    if inputs.is_empty() {
        anyhow::bail!("no input files found in {}", paths.join(" "));
    }
    let result = replay::run(&inputs, linking.decode_options(), linking.core_config(), progress);
    if replay::nothing_read(&result) {
        anyhow::bail!(
            "nothing could be read: {} bad records and no audit event or Event in {} input(s)",
            result.decode.bad_total(),
            result.inputs
        );
    }
    // A recording is looked at as a whole: nothing is too old or too much.
    let store = Store::open(StoreConfig::default())?;
    for chunk in result.spans.chunks(10_000) {
        let stored: Vec<StoredSpan> = chunk.iter().map(|s| StoredSpan::from_span(s, "")).collect();
        store.insert(&stored)?;
    }
    Ok((store, result))
}

/// The end of the recording (µs): "now" for searches in it.
pub fn end_of(result: &ReplayResult) -> i64 {
    result.spans.iter().map(|s| s.end.max(s.start)).max().unwrap_or(0) + 1
}
