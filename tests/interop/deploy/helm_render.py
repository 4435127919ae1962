"""Renders deploy/helm/legate with the Helm v4 engine (helm-python-sdk binds Helm's Go SDK)
and writes one YAML stream per values set. Lint findings of severity error fail the run.

usage: helm_render.py CHART OUTDIR
"""
import json
import os
import sys

import helm_python as helm

chart_dir, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)

report = helm.lint(chart_dir, strict=True)
errors = [m for m in report.get("messages") or [] if m.get("severity", 0) >= 2] + list(report.get("errors") or [])
if errors:
    print("helm lint:", json.dumps(errors, indent=1))
    sys.exit(1)

VALUES = {
    "default": {},
    "acme": {
        "acme": {"directory": "https://acme-v02.api.letsencrypt.org/directory",
                 "email": "ops@agents.example.com", "domains": ["mx.agents.example.com"],
                 "challenge": "tls-alpn-01"},
        "adminToken": {"value": "lg_" + "A" * 52},
        "serviceMonitor": {"enabled": True},
    },
    "files": {
        "tls": {"existingSecret": "legate-tls"},
        "masterKey": {"existingSecret": "legate-root"},
        "persistence": {"storageClass": "fast", "size": "50Gi"},
        "service": {"type": "ClusterIP"},
        "legate": {"extraConfig": "[[outbound.route]]\ndomain = \"b.test\"\nnext_hop = \"127.0.0.1:25\"\n"},
    },
    # Several nodes on one PostgreSQL database (issue 20): a Deployment, the URL from a Secret.
    "postgres": {
        "storage": {"backend": "postgres",
                    "postgres": {"existingSecret": "legate-db", "caSecret": "legate-db-ca"}},
        "replicaCount": 3,
        "tls": {"existingSecret": "legate-tls"},
    },
}

chart = helm.Chart.load(chart_dir)
for name, values in VALUES.items():
    rendered = chart.render(values, name="legate", namespace="mail", is_install=True)
    docs = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt") or not text.strip():
            continue
        docs.append(f"# Source: {path}\n{text.strip()}\n")
    with open(os.path.join(out, f"{name}.yaml"), "w") as f:
        f.write("---\n".join(docs))
    print(f"{name}: {len(docs)} manifests")

# Both certificate sources at once must be refused by the chart itself.
try:
    chart.render({"tls": {"existingSecret": "x"}, "acme": {"directory": "https://ca/dir"}},
                 name="legate", namespace="mail", is_install=True)
    print("chart accepted tls.existingSecret together with acme.directory")
    sys.exit(1)
except helm.HelmError as e:
    print("conflict refused:", str(e).splitlines()[0][:120])

# Several replicas on sled, or postgres without its Secret, must be refused too.
for bad in ({"replicaCount": 2}, {"storage": {"backend": "postgres"}, "replicaCount": 2},
            {"storage": {"backend": "postgres", "postgres": {"existingSecret": "db"}}, "replicaCount": 2,
             "acme": {"directory": "https://ca/dir"}}):
    try:
        chart.render(bad, name="legate", namespace="mail", is_install=True)
        print("chart accepted", bad)
        sys.exit(1)
    except helm.HelmError as e:
        print("refused:", str(e).splitlines()[0][:120])
