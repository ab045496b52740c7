#!/usr/bin/env python3
"""Lists a recording's mutating audit records in request order, with what their content says, as the
start of an expected-parents.tsv: one line per record, `auditID<TAB>?<TAB>#N user verb resource ns/name:
summary`. The `?` is for a person to replace with the parent the records' content and ../shared/CAUSALITY.md
give; nothing here comes from kausal's output.

    tests/e2e/list-records.py tests/fixtures/e2e/kubelet-crash-loop [--all]

Without --all, Lease renewals (the policy does not log them; kausal shows none)
are left out.
"""
import glob
import json
import os
import sys

WRITES = {"create", "update", "patch", "delete", "deletecollection"}


def actor(user):
    name = user.get("username", "")
    if name.startswith("system:serviceaccount:kube-system:"):
        return name.rsplit(":", 1)[1]
    if name.startswith("system:node:"):
        return "kubelet " + name.split(":", 2)[2]
    return name.replace("system:", "")


def conditions(status):
    out = []
    for c in status.get("conditions") or []:
        if c.get("type") in ("Ready", "ContainersReady") and "status" in c:
            out.append(f"{c['type']}={c['status']}" + (f"({c['reason']})" if c.get("reason") else ""))
    return out


def container(cs):
    state = cs.get("state") or {}
    kind = next(iter(state), "?")
    detail = (state.get(kind) or {}).get("reason") or ""
    last = (cs.get("lastState") or {}).get("terminated")
    text = f"{cs.get('name')}: {kind}{'/' + detail if detail else ''} ready={cs.get('ready')} restarts={cs.get('restartCount')}"
    if last:
        text += f" last=terminated/{last.get('reason')}({last.get('exitCode')})"
    return text


def summary(e):
    ref = e.get("objectRef") or {}
    req = e.get("requestObject") or {}
    resp = e.get("responseObject") or {}
    code = (e.get("responseStatus") or {}).get("code")
    parts = []
    if code and code >= 300:
        parts.append(f"failed ({code})")
    resource = ref.get("resource")
    if resource == "events":
        body = req if req.get("reason") else resp
        parts.append(f"{body.get('reason')} {json.dumps(body.get('message'))} count={body.get('count')}")
        inv = body.get("involvedObject") or body.get("regarding") or {}
        parts.append(f"about {inv.get('kind')} {inv.get('name')}")
    elif resource == "pods" and ref.get("subresource") == "status":
        status = req.get("status") or {}
        parts += conditions(status)
        parts += [container(c) for c in status.get("containerStatuses") or []]
        if status.get("phase"):
            parts.append(f"phase={status['phase']}")
        if status.get("podIP"):
            parts.append(f"ip={status['podIP']}")
    elif resource == "endpoints":
        for subset in (resp or req).get("subsets") or []:
            parts.append(f"ready={[a.get('targetRef', {}).get('name') for a in subset.get('addresses') or []]}")
            parts.append(f"notReady={[a.get('targetRef', {}).get('name') for a in subset.get('notReadyAddresses') or []]}")
    elif resource == "endpointslices":
        for ep in (resp or req).get("endpoints") or []:
            parts.append(f"{(ep.get('targetRef') or {}).get('name')} ready={ep.get('conditions', {}).get('ready')}")
    elif ref.get("subresource") == "status":
        parts.append(json.dumps({k: v for k, v in (req.get("status") or {}).items() if k != "conditions"}))
    rv = (resp.get("metadata") or {}).get("resourceVersion")
    if rv:
        parts.append(f"rv={rv}")
    return " ".join(parts)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    every = "--all" in sys.argv
    if len(args) != 1:
        sys.exit(__doc__)
    items = []
    for path in sorted(glob.glob(os.path.join(args[0], "audit-batches", "*.json"))):
        items += json.load(open(path))["items"]
    done = [e for e in items if e.get("stage") == "ResponseComplete" and e.get("verb") in WRITES]
    done.sort(key=lambda e: e["requestReceivedTimestamp"])
    for n, e in enumerate(done, 1):
        ref = e.get("objectRef") or {}
        resource = ref.get("resource", "") + ("/" + ref["subresource"] if ref.get("subresource") else "")
        user = actor(e.get("user") or {})
        if not every and resource.startswith("leases"):
            continue
        name = ref.get("name") or ((e.get("responseObject") or {}).get("metadata") or {}).get("name") or ""
        where = f"{ref.get('namespace', '')}/{name}" if ref.get("namespace") else name
        received = e["requestReceivedTimestamp"][11:]
        answered = e["stageTimestamp"][11:]
        print(f"{e['auditID']}\t?\t#{n} {user} {e['verb']} {resource} {where} [{received}→{answered}]: {summary(e)}")


if __name__ == "__main__":
    main()
