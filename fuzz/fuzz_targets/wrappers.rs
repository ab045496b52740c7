//! Wrapper detection: the fuzzed text placed where cloud log wrappers carry
//! their payload (AKS `properties.log` as a string and as an object, GKE
//! `protoPayload`, a JSON array, a watch line) as well as alone. The decoder
//! must tell the wrapper from its content and never panic.
#![no_main]

use kausal::decode::{DecodeOptions, decode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let as_string = serde_json::to_string(text).expect("a str is always serialisable");
    let wrapped = [
        text.to_owned(),
        format!(r#"{{"records":[{{"category":"kube-audit","properties":{{"log":{as_string}}}}}]}}"#),
        format!(r#"{{"records":[{{"category":"kube-audit","properties":{{"log":{text}}}}}]}}"#),
        format!(r#"{{"protoPayload":{text},"resource":{{"type":"k8s_cluster"}}}}"#),
        format!(r#"[{text}]"#),
        format!(r#"{{"type":"ADDED","object":{text}}}"#),
    ];
    for document in &wrapped {
        let decoded = decode(document.as_bytes(), &DecodeOptions::default());
        let _ = decoded.stats.bad_total();
    }
});
