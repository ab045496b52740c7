//! Memory: resident bytes per tracked object for graphs of 10k, 100k and 1M
//! objects, and whether memory stays flat over a long replay with the TTL and
//! the cap on.
//!
//!   cargo bench --bench memory            (add `-- --quick` for a smoke run)
//!
//! Each graph size is measured in a fresh child process (this same binary), so
//! that one measurement's freed-but-retained heap does not inflate the next.

mod support;

/// The same allocator as the `kausal` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::Command;

use kausal::core::{CoreConfig, Engine, Record};

/// Child mode: build one graph and print `objects rss_before rss_after
/// rss_after_collect`. The last is taken after asking mimalloc to return freed
/// pages to the OS: growing a hash map frees its old table, and whether those
/// pages are still resident at the moment of measuring is the allocator's
/// timing (seen: ±40 bytes per object between identical runs), not memory in use.
fn measure_one(objects: usize) {
    let template = support::capture_records();
    // SAFETY (both calls): mi_collect only walks and purges mimalloc's own
    // heaps, and this process's allocator is mimalloc (the global_allocator above).
    unsafe { libmimalloc_sys::mi_collect(true) };
    let before = support::rss_bytes();
    let (engine, _) = support::engine_with_objects(&template, objects);
    let after = support::rss_bytes();
    unsafe { libmimalloc_sys::mi_collect(true) };
    let collected = support::rss_bytes();
    println!("{} {before} {after} {collected}", engine.stats().graph.objects);
}

/// Replays the capture's workload (the Deployment, its ReplicaSet and pods,
/// the node: everything it creates, it deletes) round after round for
/// `passes` passes; prints RSS and graph size after each. The apiserver's own
/// bootstrap objects are left out: a real cluster does not create them anew
/// every ten minutes.
fn flat(passes: usize, rounds_per_pass: u32) {
    let template: Vec<Record> = support::capture_records()
        .into_iter()
        .filter(|r| match r {
            Record::Write(w) => matches!(&*w.resource, "deployments" | "replicasets" | "pods" | "nodes"),
            Record::Event(_) => true,
        })
        .collect();
    let mut engine = Engine::new(CoreConfig::default());
    let mut round = 1;
    let mut first = 0;
    for pass in 1..=passes {
        for _ in 0..rounds_per_pass {
            support::feed(&mut engine, support::round(&template, round));
            round += 1;
        }
        let rss = support::rss_bytes();
        if pass == 2 {
            first = rss;
        }
        let stats = engine.stats();
        println!(
            "pass {pass:>2}: rss {:>7.1} MB, graph {:>6} objects, pending {:>5}{}",
            rss as f64 / 1e6,
            stats.graph.objects,
            stats.pending,
            if pass > 2 {
                format!(", {:+.1} MB since pass 2", (rss as f64 - first as f64) / 1e6)
            } else {
                String::new()
            }
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child-objects") {
        measure_one(args[i + 1].parse().unwrap());
        return;
    }
    // `cargo bench` passes `--bench`; `--quick` (or `--test`, as CI's smoke run passes) keeps it short.
    let quick = args.iter().any(|a| a == "--quick" || a == "--test");
    let sizes: &[usize] = if quick { &[10_000] } else { &[10_000, 100_000, 1_000_000] };
    println!("graph size      RSS growth   bytes/object   (before returning freed pages: bytes/object)");
    for &objects in sizes {
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--child-objects", &objects.to_string()])
            .output()
            .expect("run the measuring child");
        let text = String::from_utf8_lossy(&out.stdout);
        let fields: Vec<u64> = text.split_whitespace().filter_map(|f| f.parse().ok()).collect();
        let [tracked, before, after, collected] = fields[..] else {
            panic!("child said: {text}{}", String::from_utf8_lossy(&out.stderr))
        };
        println!(
            "{tracked:>10}   {:>9.1} MB   {:>10.0}   ({:.0})",
            collected.saturating_sub(before) as f64 / 1e6,
            collected.saturating_sub(before) as f64 / tracked as f64,
            after.saturating_sub(before) as f64 / tracked as f64
        );
    }
    println!("\nflat memory over a long replay (the capture's workload round after round; TTL and cap on):");
    if quick { flat(3, 20) } else { flat(10, 400) }
}
