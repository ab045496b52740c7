//! The built-in viewer in a real browser (Debian's chromium, headless,
//! through chromedriver), against `kausal view` over the real capture:
//! the intent list, the Deployment create's trace with the ReplicaSet
//! create nested under it and the pods under the ReplicaSet, a span's
//! attributes, and the pod's history with why it exists.
//!
//! The nesting expected is the capture's: Deployment `web` owns ReplicaSet
//! `web-5d894c86f5`, which owns the pods `web-5d894c86f5-*` (their
//! ownerReferences), and CAUSALITY.md puts each create under its owner's.
//!
//! Set KAUSAL_SCREENSHOT=PATH to keep a picture of the trace view (the
//! README's is made so).

mod common;

use common::browser::{self, Browser};
use common::fixture;
use common::viewer::View;

const DEPLOYMENT: &str = r#"li[data-operation="create deployments default/web"]"#;
const RS: &str = r#"li[data-operation="create replicasets default/web-5d894c86f5"]"#;
const PODS: &str = r#"li[data-operation^="create pods default/web-5d894c86f5-"]"#;

#[tokio::test]
async fn the_viewer_shows_the_deployment_apply_as_a_causal_tree() {
    if !browser::available() {
        eprintln!("SKIPPED: {} or {} is not installed", browser::CHROMIUM, browser::CHROMEDRIVER);
        return;
    }
    let view = View::start(&[&fixture("rollout-basic")]);
    let browser = Browser::start().await;
    browser.open(&view.url("/viewer/")).await;

    // The intent list: admin's five writes, the Deployment apply among them.
    let rows = browser.wait_for("#intents tr.intent").await;
    assert_eq!(rows.len(), 5, "admin's five intents: node create, apply, scale, delete, node delete");
    let apply = browser.wait_for(r#"tr.intent[data-operation="create deployments default/web"]"#).await;
    let row_text = browser.text(&apply[0]).await;
    assert!(row_text.contains("admin") && row_text.contains("17"), "the apply's row: {row_text}");
    browser.click(&apply[0]).await;

    // Its trace: the ReplicaSet create is a child of the Deployment create,
    // and both pod creates are children of the ReplicaSet create.
    browser.wait_for(&format!("#tree > {DEPLOYMENT}")).await;
    assert_eq!(browser.find_all(&format!("{DEPLOYMENT} > ul > {RS}")).await.len(), 1);
    assert_eq!(browser.find_all(&format!("{RS} > ul > {PODS}")).await.len(), 2);
    assert!(browser.find_all(&format!("#tree > {RS}")).await.is_empty(), "the ReplicaSet create is not a root");
    // Events are marked apart from writes, and every span has a bar on the timeline.
    let events = browser.find_all(r#"#tree li[data-kind="event"]"#).await.len();
    assert!(events >= 3, "ScalingReplicaSet, SuccessfulCreate and Scheduled are Events: {events}");
    let spans = browser.find_all("#tree li").await.len();
    assert_eq!(spans, 17, "the trace's 17 spans");
    assert_eq!(browser.find_all(".timeline .bar").await.len(), spans);

    if let Some(path) = std::env::var_os("KAUSAL_SCREENSHOT") {
        std::fs::write(&path, browser.screenshot().await).unwrap();
    }

    // A span's attributes, and from there the object's history.
    let pod_row = browser.find_all(&format!("{PODS} > .row")).await;
    browser.click(&pod_row[0]).await;
    let title = browser.wait_for("#detail h2").await;
    assert!(browser.text(&title[0]).await.starts_with("create pods default/web-5d894c86f5-"));
    let link = browser.wait_for("#object-link").await;
    browser.click(&link[0]).await;
    let history = browser.wait_for("#history tbody tr").await;
    assert!(history.len() >= 3, "the pod's create, binding and Scheduled Event: {}", history.len());
    let page = browser.script("return document.querySelector('main').innerText").await;
    let page = page.as_str().unwrap();
    let exists = page.find("Why it exists").expect("the why section");
    let after = &page[exists..];
    let rs_at = after.find("create replicasets default/web-5d894c86f5").expect("the ReplicaSet in the chain");
    let deployment_at = after.find("create deployments default/web").expect("the apply in the chain");
    assert!(rs_at < deployment_at, "the chain goes up from the ReplicaSet to the apply:\n{after}");
}

/// Cluster data is text, never markup: an Event whose reason and message are
/// HTML (anyone who may create Events can write them) shows as those
/// characters, and nothing in it runs.
#[tokio::test]
async fn an_event_written_as_html_is_shown_as_text_and_runs_nothing() {
    if !browser::available() {
        eprintln!("SKIPPED: {} or {} is not installed", browser::CHROMIUM, browser::CHROMEDRIVER);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let reason = r#"<img src=x onerror="document.title='pwned'">"#;
    let message = r#"<script>document.title='pwned'</script><b id="injected">bold</b>"#;
    let event = serde_json::json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "web.1", "namespace": "default", "uid": "0f0e0d0c-0b0a-4909-8807-060504030201",
                     "creationTimestamp": "2026-11-21T22:00:00Z"},
        "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web", "uid": "11111111-2222-4333-8444-555555555555"},
        "reason": reason, "message": message, "type": "Warning",
        "source": {"component": "someone"},
        "firstTimestamp": "2026-11-21T22:00:00Z", "lastTimestamp": "2026-11-21T22:00:00Z", "count": 1
    });
    let file = dir.path().join("events.json");
    std::fs::write(&file, serde_json::to_vec(&event).unwrap()).unwrap();
    let view = View::start(&[&file]);
    let (_, found) = view.get("/api/traces?start=0&end=4102444800000000").await;
    let trace = found["data"][0]["traceID"].as_str().expect("the Event's trace").to_owned();

    let browser = Browser::start().await;
    browser.open(&view.url(&format!("/viewer/#/trace/{trace}"))).await;
    let rows = browser.wait_for("#tree li .row").await;
    browser.click(&rows[0]).await;
    browser.wait_for("#detail table").await;
    let title = browser.script("return document.title").await;
    assert_eq!(title, "kausal", "markup from the cluster ran");
    assert!(
        browser.find_all("#main img, #injected, #main script").await.is_empty(),
        "markup from the cluster became elements"
    );
    let text = browser.script("return document.querySelector('main').innerText").await;
    let text = text.as_str().unwrap();
    assert!(text.contains(reason) && text.contains(message), "the reason and message are shown as written:\n{text}");
}
