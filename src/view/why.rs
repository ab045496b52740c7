//! `kausal why pod/web-5d894c86f5-2znrl -n default`: the chain of causes
//! from the object's create (and, once it is gone, its delete) up to the
//! intent at the root, asked of a running server's query API or answered
//! from recordings.

use std::path::PathBuf;

use anyhow::Context as _;
use serde::Deserialize;

use super::load;
use crate::linking_args::LinkingArgs;
use crate::query::objects::{self, Question, Why};
use crate::store::{ObjectRef, Store, StoredSpan};

#[derive(clap::Args, Debug)]
pub struct WhyArgs {
    /// The object, as kubectl names it: `pod/NAME`, `deployment/NAME`, `rs/NAME`...
    #[arg(value_name = "KIND/NAME")]
    pub object: String,
    /// Its namespace (none for cluster-scoped objects such as nodes).
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// Recordings to answer from, instead of a server.
    #[arg(value_name = "PATH")]
    pub paths: Vec<String>,
    /// The server's query API.
    #[arg(long, env = "KAUSAL_SERVER", default_value = "http://127.0.0.1:16686")]
    pub server: String,
    /// A bearer token for a server whose query API is off loopback.
    #[arg(long, env = "KAUSAL_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// The CA that signed the server's certificate (for https://).
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Print the answers as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub linking: LinkingArgs,
}

/// `kubectl`'s short names, to the resource kausal records.
fn resource_of(kind: &str) -> &str {
    let kind = kind.split('.').next().unwrap_or(kind);
    match kind {
        "po" => "pods",
        "deploy" => "deployments",
        "rs" => "replicasets",
        "sts" => "statefulsets",
        "ds" => "daemonsets",
        "cj" => "cronjobs",
        "svc" => "services",
        "ep" => "endpoints",
        "no" => "nodes",
        "ns" => "namespaces",
        "cm" => "configmaps",
        "sa" => "serviceaccounts",
        "pvc" => "persistentvolumeclaims",
        "pv" => "persistentvolumes",
        other => other,
    }
}

/// Runs the command; the answers go to stdout.
pub fn run(args: WhyArgs) -> anyhow::Result<()> {
    let (kind, name) = args
        .object
        .split_once('/')
        .filter(|(k, n)| !k.is_empty() && !n.is_empty())
        .with_context(|| format!("`{}`: name the object as KIND/NAME, e.g. pod/web-1", args.object))?;
    let kind = resource_of(kind);
    // A resource (`pods`) is also looked up as its kind's lower-case singular (`pod`).
    let answers = if args.paths.is_empty() {
        remote(&args, kind, name)?
    } else {
        let (store, _) = load::recordings(&args.paths, &args.linking, false)?;
        local(&store, kind, args.namespace.as_deref(), name)?
    };
    if answers.is_empty() {
        anyhow::bail!(
            "no {kind}/{name}{} in {}",
            args.namespace.as_deref().map(|n| format!(" in namespace {n}")).unwrap_or_default(),
            if args.paths.is_empty() { args.server.as_str() } else { "the recordings" }
        );
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answers)?);
    } else {
        for why in &answers {
            print!("{}", render(why));
        }
    }
    Ok(())
}

fn local(store: &Store, kind: &str, namespace: Option<&str>, name: &str) -> anyhow::Result<Vec<Why>> {
    let mut found = objects::find(store, kind, namespace, name)?;
    if found.is_empty() {
        found = objects::find(store, kind.trim_end_matches('s'), namespace, name)?;
    }
    let mut answers = Vec::new();
    for object in found {
        answers.push(objects::why(store, object.clone(), Question::Exists)?);
        let gone = objects::why(store, object, Question::Gone)?;
        if !gone.chain.is_empty() {
            answers.push(gone);
        }
    }
    Ok(answers)
}

#[derive(Deserialize)]
struct Data<T> {
    data: T,
}

fn remote(args: &WhyArgs, kind: &str, name: &str) -> anyhow::Result<Vec<Why>> {
    let mut client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30));
    if let Some(ca) = &args.ca_file {
        let pem = std::fs::read(ca).with_context(|| format!("reading --ca-file {}", ca.display()))?;
        client = client.add_root_certificate(reqwest::Certificate::from_pem(&pem)?);
    }
    let client = client.build()?;
    let token = match &args.token_file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .with_context(|| format!("reading --token-file {}", f.display()))?
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with('#'))
                .with_context(|| format!("--token-file {} holds no token", f.display()))?
                .to_owned(),
        ),
        None => None,
    };
    let base = args.server.trim_end_matches('/').to_owned();
    let get = |path: String| {
        let mut request = client.get(format!("{base}{path}"));
        if let Some(t) = &token {
            request = request.bearer_auth(t);
        }
        let base = base.clone();
        async move {
            let response =
                request.send().await.with_context(|| format!("asking {base} (is `kausal serve` running? --server)"))?;
            let status = response.status();
            let body = response.text().await?;
            if !status.is_success() {
                anyhow::bail!("{base}{path}: {status}: {body}");
            }
            Ok::<_, anyhow::Error>(body)
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let query = |k: &str| -> String {
            let mut q = form_urlencoded::Serializer::new(String::new());
            q.append_pair("kind", k).append_pair("name", name);
            if let Some(ns) = &args.namespace {
                q.append_pair("namespace", ns);
            }
            q.finish()
        };
        let mut found: Data<Vec<ObjectRef>> =
            serde_json::from_str(&get(format!("/api/kausal/objects?{}", query(kind))).await?)?;
        if found.data.is_empty() {
            found = serde_json::from_str(
                &get(format!("/api/kausal/objects?{}", query(kind.trim_end_matches('s')))).await?,
            )?;
        }
        let mut answers = Vec::new();
        for object in found.data {
            for question in ["exists", "gone"] {
                let why: Data<Why> = serde_json::from_str(
                    &get(format!("/api/kausal/objects/{}/why?question={question}", object.uid)).await?,
                )?;
                if question == "exists" || !why.data.chain.is_empty() {
                    answers.push(why.data);
                }
            }
        }
        Ok(answers)
    })
}

/// The answer as a person reads it: the write, then each cause above it.
pub fn render(why: &Why) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let object = &why.object;
    let _ = writeln!(
        out,
        "{} {}{}  (uid {})",
        object.kind.as_deref().unwrap_or("object"),
        object.namespace.as_deref().map(|n| format!("{n}/")).unwrap_or_default(),
        object.name.as_deref().unwrap_or("?"),
        object.uid
    );
    let _ =
        writeln!(out, "  {}", if why.question == Question::Exists { "exists because:" } else { "is gone because:" });
    for (n, span) in why.chain.iter().enumerate() {
        let _ = writeln!(out, "  {}{}", if n == 0 { "  " } else { "↑ " }, line(span));
    }
    if let Some(trace) = &why.trace {
        let _ = writeln!(out, "  trace {}  ({} spans)", trace.trace_id, trace.spans);
    }
    if let Some(note) = &why.note {
        let _ = writeln!(out, "  note: {note}");
    }
    out.push('\n');
    out
}

fn line(span: &StoredSpan) -> String {
    let when = jiff::Timestamp::from_microsecond(span.start_us).map(|t| t.to_string()).unwrap_or_default();
    let root = match span.root() {
        Some("intent") => format!("   ← intent by {}", span.attr_str("user.name").unwrap_or(&span.service)),
        Some(other) => format!("   ← root ({other})"),
        None => String::new(),
    };
    format!("{}  {}  {when}{root}", span.service, span.name)
}
