#!/usr/bin/env python3
"""Prepares an unpacked legate image bundle (umoci unpack) to run under crun or runc the way
a hardened pod runs it: read-only root filesystem, the data directory bind-mounted from the
host at /data, no capabilities, no new privileges. `--host-net` keeps the host's network
namespace (so a test on the host can reach the loopback listeners).

    run-bundle.py BUNDLE DATA_DIR [--host-net] [-- ARGS...]
"""
import json
import sys


def main() -> None:
    args = sys.argv[1:]
    extra = []
    if "--" in args:
        i = args.index("--")
        args, extra = args[:i], args[i + 1:]
    bundle, data = args[0], args[1]
    host_net = "--host-net" in args
    path = f"{bundle}/config.json"
    with open(path) as f:
        cfg = json.load(f)
    cfg["root"]["readonly"] = True
    proc = cfg["process"]
    proc["terminal"] = False
    proc["noNewPrivileges"] = True
    proc["user"] = {"uid": 10001, "gid": 10001}
    for k in ("bounding", "effective", "inheritable", "permitted", "ambient"):
        proc.setdefault("capabilities", {})[k] = []
    if extra:
        proc["args"] = ["/usr/local/bin/legate", *extra]
    cfg["mounts"] = [m for m in cfg.get("mounts", []) if m.get("destination") != "/data"]
    cfg["mounts"].append(
        {"destination": "/data", "type": "bind", "source": data, "options": ["rbind", "rw"]}
    )
    cfg["mounts"].append(
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "nodev", "mode=1777", "size=64m"]}
    )
    # What a container engine provides: the resolver configuration and hosts file.
    for f in ("/etc/resolv.conf", "/etc/hosts"):
        cfg["mounts"].append(
            {"destination": f, "type": "bind", "source": f, "options": ["rbind", "ro"]}
        )
    if host_net:
        ns = cfg["linux"]["namespaces"]
        cfg["linux"]["namespaces"] = [n for n in ns if n.get("type") != "network"]
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2)


if __name__ == "__main__":
    main()
