//! Helpers shared by the integration tests: replaying fixtures and finding
//! spans and their parents by what a person would look for.
#![allow(dead_code)]

pub mod browser;
pub mod event_grouping;
pub mod otlp_receiver;
pub mod server;
pub mod viewer;
pub mod workload;

use std::path::{Path, PathBuf};

use kausal::core::CoreConfig;
use kausal::core::span::{RootKind, Span, SpanKind};
use kausal::decode::DecodeOptions;
use kausal::replay::{self, ReplayResult};
use kausal::sources::files::{self, Input};

pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel)
}

pub fn inputs(paths: &[PathBuf]) -> Vec<Input> {
    let paths: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    files::expand_paths(&paths).expect("fixture paths exist")
}

pub fn replay_paths(paths: &[PathBuf]) -> ReplayResult {
    replay::run(&inputs(paths), DecodeOptions::default(), CoreConfig::default(), false)
}

/// The real capture's audit batches, as the apiserver POSTed them.
pub fn rollout_audit() -> ReplayResult {
    replay_paths(&[fixture("rollout-basic/audit-batches")])
}

pub struct Spans<'a>(pub &'a [Span]);

impl<'a> Spans<'a> {
    pub fn all(&self, pred: impl Fn(&Span) -> bool) -> Vec<&'a Span> {
        self.0.iter().filter(|s| pred(s)).collect()
    }

    /// The one span matching; fails the test if there are none or several.
    pub fn one(&self, what: &str, pred: impl Fn(&Span) -> bool) -> &'a Span {
        let found = self.all(pred);
        assert_eq!(found.len(), 1, "expected exactly one span for {what}, found {}: {:#?}", found.len(), names(&found));
        found[0]
    }

    pub fn named(&self, name: &str) -> Vec<&'a Span> {
        self.all(|s| s.name == name)
    }

    pub fn parent(&self, span: &Span) -> Option<&'a Span> {
        let parent = span.parent_span_id?;
        self.0.iter().find(|s| s.span_id == parent && s.trace_id == span.trace_id)
    }

    pub fn children(&self, span: &Span) -> Vec<&'a Span> {
        self.all(|s| s.trace_id == span.trace_id && s.parent_span_id == Some(span.span_id))
    }

    pub fn event(&self, reason: &str, message_contains: &str) -> &'a Span {
        self.one(&format!("event {reason} ~ {message_contains}"), |s| {
            s.kind == SpanKind::Event
                && s.attr_str("k8s.event.reason") == Some(reason)
                && s.attr_str("k8s.event.message").is_some_and(|m| m.contains(message_contains))
        })
    }

    pub fn intent(&self, name: &str) -> &'a Span {
        self.one(&format!("intent {name}"), |s| s.name == name && s.root == Some(RootKind::Intent))
    }
}

pub fn names(spans: &[&Span]) -> Vec<String> {
    spans.iter().map(|s| format!("{} {}", s.actor, s.name)).collect()
}

/// Asserts that `child`'s direct parent is `parent`, printing both trees' names if not.
#[track_caller]
pub fn assert_parent(spans: &Spans<'_>, child: &Span, parent: &Span) {
    let actual = spans.parent(child);
    assert!(
        actual.is_some_and(|p| p.span_id == parent.span_id) && child.trace_id == parent.trace_id,
        "parent of `{} {}` should be `{} {}`, is {:?}",
        child.actor,
        child.name,
        parent.actor,
        parent.name,
        actual.map(|p| format!("{} {}", p.actor, p.name))
    );
}

/// The README's text block that starts with `first_line`, up to its closing
/// fence: the pictures the tests compare with what kausal prints.
pub fn readme_block(first_line: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    // At the start of a line: the same text may be quoted inside another picture.
    let start =
        readme.find(&format!("\n{first_line}")).unwrap_or_else(|| panic!("the README shows `{first_line}`")) + 1;
    readme[start..start + readme[start..].find("```").unwrap()].to_owned()
}

/// The trace of the rendered tree that starts with `first_line`, up to the
/// blank line after it.
pub fn rendered_trace(spans: &[Span], first_line: &str) -> String {
    let rendered = kausal::sinks::tree::render(spans, kausal::sinks::tree::TreeOptions { show_all: false });
    let at = rendered.find(first_line).unwrap_or_else(|| panic!("the replay prints `{first_line}`"));
    let printed = &rendered[at..];
    printed[..printed.find("\n\n").map_or(printed.len(), |e| e + 1)].to_owned()
}
