# Deploy: pebble (ACME test CA) and its DNS mock, openssl to look at served certificates,
# systemd-analyze for the unit, pexpect for the interactive init, a real Helm engine (Helm v4's
# Go SDK via helm-python-sdk; Debian does not package helm) and Kubernetes schemas.
need_cmd pebble pebble
need_cmd pebble-challtestsrv pebble
need_cmd openssl openssl
need_cmd systemd-analyze systemd
need_py pexpect pexpect
need_py yaml pyyaml
need_py helm_python helm-python-sdk
need_py kubernetes_validate kubernetes-validate
