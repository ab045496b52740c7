// kausal's viewer: the recent intents, one trace as a causal tree beside a
// timeline, and an object's history. Everything comes from this server's
// own API; every value from the cluster is set as text, never as HTML.
"use strict";

const main = document.getElementById("main");

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

async function api(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const msg = (body.errors && body.errors[0] && body.errors[0].msg) || body.error || response.statusText;
    throw new Error(msg);
  }
  return body;
}

function when(us) {
  return new Date(us / 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function duration(us) {
  if (us < 1000) return us + "µs";
  if (us < 1e6) return (us / 1000).toFixed(1) + "ms";
  return (us / 1e6).toFixed(2) + "s";
}

function tagMap(span) {
  const tags = {};
  for (const t of span.tags || []) tags[t.key] = t.value;
  return tags;
}

function fail(error) {
  main.replaceChildren(el("p", { class: "err" }, "Could not load: " + error.message));
}

// The intent list.
async function showIntents(params) {
  const query = new URLSearchParams();
  for (const k of ["namespace", "object", "user", "service"]) if (params.get(k)) query.set(k, params.get(k));
  if (params.get("range")) query.set("start", String((Date.now() - Number(params.get("range")) * 1000) * 1000));
  const body = await api("/api/kausal/intents?" + query);
  const rows = body.data.map((t) => {
    const root = t.root || {};
    const attrs = root.attributes || {};
    return el("tr", { class: "intent", "data-trace-id": t.trace_id, "data-operation": root.name || "",
                      onclick: () => { location.hash = "#/trace/" + t.trace_id; } },
      el("td", {}, when(t.start_us)),
      el("td", {}, attrs["user.name"] || root.service || "?"),
      el("td", {}, el("a", { href: "#/trace/" + t.trace_id }, root.name || t.trace_id)),
      el("td", {}, attrs["kausal.root"] || ""),
      el("td", {}, t.spans),
      el("td", {}, t.actors),
      el("td", { class: t.errors ? "err" : "" }, t.errors || ""),
      el("td", {}, duration(t.end_us - t.start_us)));
  });
  main.replaceChildren(
    el("h1", {}, "Recent intents"),
    el("p", { class: "muted" }, "Who did what: each row is one trace, started by a person's, CI's or an operator's write."),
    rows.length === 0 ? el("p", { class: "muted", id: "empty" }, "No traces match.") :
      el("table", { id: "intents" },
        el("thead", {}, el("tr", {}, ["When", "Who", "What", "Root", "Spans", "Actors", "Errors", "Took"].map((h) => el("th", {}, h)))),
        el("tbody", {}, rows)));
}

// One trace: the causal tree (parents from CHILD_OF references) beside a timeline.
async function showTrace(id) {
  const body = await api("/api/traces/" + encodeURIComponent(id));
  const trace = body.data[0];
  const byId = new Map(trace.spans.map((s) => [s.spanID, s]));
  const children = new Map();
  const roots = [];
  for (const s of trace.spans) {
    const parent = (s.references || []).find((r) => r.refType === "CHILD_OF" && byId.has(r.spanID));
    if (parent) {
      if (!children.has(parent.spanID)) children.set(parent.spanID, []);
      children.get(parent.spanID).push(s);
    } else roots.push(s);
  }
  const byStart = (a, b) => a.startTime - b.startTime;
  roots.sort(byStart);
  for (const list of children.values()) list.sort(byStart);
  const start = Math.min(...trace.spans.map((s) => s.startTime));
  const end = Math.max(...trace.spans.map((s) => s.startTime + s.duration));
  const width = Math.max(end - start, 1);
  const bars = [];
  const detail = el("div", { class: "detail", id: "detail" }, el("p", { class: "muted" }, "Select a span to see its attributes."));

  function select(span, row) {
    for (const r of document.querySelectorAll(".row.selected")) r.classList.remove("selected");
    row.classList.add("selected");
    const tags = tagMap(span);
    const process = trace.processes[span.processID] || {};
    const uid = tags["k8s.object.uid"];
    const links = (span.references || []).filter((r) => r.refType === "FOLLOWS_FROM");
    detail.replaceChildren(
      el("h2", {}, span.operationName),
      el("p", {}, process.serviceName, " · ", when(span.startTime), " · ", duration(span.duration),
        uid ? el("span", {}, " · ", el("a", { href: "#/object/" + uid, id: "object-link" }, "this object's history")) : null),
      links.length ? el("p", { class: "links" }, links.map((l, n) =>
        el("span", {}, (tags["kausal.link." + n + ".reason"] || "link") + ": ",
          el("a", { href: "#/trace/" + l.traceID }, (byId.get(l.spanID) || {}).operationName || l.spanID), " "))) : null,
      el("table", {}, el("tbody", {}, Object.entries(tags).map(([k, v]) => el("tr", {}, el("td", {}, k), el("td", {}, String(v)))))),
      (span.logs || []).length ? el("div", {}, el("h2", {}, "Repeats"),
        el("ul", {}, span.logs.map((l) => el("li", {}, when(l.timestamp), " ", l.fields.map((f) => f.key + "=" + f.value).join(" "))))) : null);
  }

  function node(span) {
    const tags = tagMap(span);
    const kind = tags["kausal.span.kind"] === "event" ? "event" : "write";
    const failed = tags["error"] === true;
    const process = trace.processes[span.processID] || {};
    const runnerUps = (span.references || []).filter((r, n) => r.refType === "FOLLOWS_FROM").length;
    const row = el("div", { class: "row" + (failed ? " failed" : "") },
      el("span", { class: "kind " + kind, title: kind }),
      el("span", { class: "name" }, span.operationName),
      el("span", { class: "actor" }, process.serviceName),
      runnerUps ? el("span", { class: "links", title: "linked spans" }, "↗" + runnerUps) : null);
    row.addEventListener("click", () => select(span, row));
    const left = ((span.startTime - start) / width) * 100;
    const barWidth = Math.max((span.duration / width) * 100, 0.3);
    bars.push(el("div", { class: "bar-row" },
      el("div", { class: "bar " + kind + (failed ? " failed" : ""), style: `left:${left}%;width:${barWidth}%`,
                  title: span.operationName + " +" + duration(span.startTime - start) })));
    const kids = children.get(span.spanID) || [];
    return el("li", { "data-span-id": span.spanID, "data-operation": span.operationName, "data-kind": kind },
      row, kids.length ? el("ul", {}, kids.map(node)) : null);
  }

  const tree = el("div", { class: "tree" }, el("div", { class: "ticks" }, el("span", { style: "left:6px" }, "span")),
    el("ul", { id: "tree" }, roots.map(node)));
  const ticks = el("div", { class: "ticks" }, [0, 0.25, 0.5, 0.75].map((f) =>
    el("span", { style: `left:${f * 100}%` }, "+" + duration(Math.round(width * f)))));
  const root = roots[0] || trace.spans[0];
  main.replaceChildren(
    el("h1", {}, root.operationName),
    el("p", { class: "muted" }, (trace.processes[root.processID] || {}).serviceName, " · ", when(start), " · ",
      trace.spans.length, " spans · ", duration(end - start), " · trace ", el("code", {}, trace.traceID)),
    el("div", { class: "trace" }, tree, el("div", { class: "timeline" }, ticks, bars)),
    detail);
}

// One object: every span about it, with the intent each belongs to, and why it exists or is gone.
async function showObject(uid) {
  const [history, exists, gone] = await Promise.all([
    api("/api/kausal/objects/" + encodeURIComponent(uid) + "/history"),
    api("/api/kausal/objects/" + encodeURIComponent(uid) + "/why?question=exists"),
    api("/api/kausal/objects/" + encodeURIComponent(uid) + "/why?question=gone"),
  ]);
  const object = history.data.object;
  const chain = (why, title) => el("div", {}, el("h2", {}, title),
    why.data.chain.length === 0 ? el("p", { class: "muted" }, why.data.note || "nothing stored") :
      el("ol", { class: "chain" }, why.data.chain.map((s, n) => el("li", { class: n === why.data.chain.length - 1 ? "root" : "" },
        el("a", { href: "#/trace/" + s.trace_id }, s.name), " ", el("span", { class: "actor" }, "by " + s.service, " at ", when(s.start_us))))),
    why.data.note && why.data.chain.length ? el("p", { class: "muted" }, why.data.note) : null);
  main.replaceChildren(
    el("h1", {}, (object.kind || "object") + " " + (object.namespace ? object.namespace + "/" : "") + (object.name || uid)),
    el("p", { class: "muted" }, "uid ", el("code", {}, uid)),
    chain(exists, "Why it exists"),
    chain(gone, "Why it is gone"),
    el("h2", {}, "History"),
    el("table", { id: "history" },
      el("thead", {}, el("tr", {}, ["When", "What", "Actor", "Intent"].map((h) => el("th", {}, h)))),
      el("tbody", {}, history.data.entries.map((e) => el("tr", {},
        el("td", {}, when(e.span.start_us)),
        el("td", {}, el("a", { href: "#/trace/" + e.span.trace_id }, e.span.name)),
        el("td", {}, e.span.service),
        el("td", {}, e.intent ? e.intent.name + " (" + ((e.intent.attributes || {})["user.name"] || e.intent.service) + ")" : "—"))))));
}

function route() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, search] = hash.split("?");
  const params = new URLSearchParams(search || "");
  let shown;
  if (path.startsWith("/trace/")) shown = showTrace(decodeURIComponent(path.slice(7)));
  else if (path.startsWith("/object/")) shown = showObject(decodeURIComponent(path.slice(8)));
  else shown = showIntents(params);
  shown.catch(fail);
}

document.getElementById("search").addEventListener("submit", (e) => {
  e.preventDefault();
  const params = new URLSearchParams();
  for (const [k, v] of new FormData(e.target)) if (v) params.set(k, v);
  location.hash = "#/?" + params;
});
window.addEventListener("hashchange", route);
route();
