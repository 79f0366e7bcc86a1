#!/usr/bin/env bash
# The Debian packages the tests drive as real programs: the Azure CLI and
# Python azure-identity (clients), Chromium (the SSO tests' browser, driven by
# playwright-core), PostgreSQL (the shared backend; tests start their own
# servers on loopback), podman, runc and debootstrap (the container image),
# jq (the seed guide's shell lines, run verbatim), nginx and openssl (a TLS
# front with an operator's CA before the proxy, as ingress-nginx is), Go and
# go-autorest (a Go client built offline by the tests), faketime (the in-process
# suite again with the clock 400 days ahead: scripts/test-all.mjs), rsyslog with
# its TLS driver (the audit export's syslog receiver).
# Installs what is missing when run as root; otherwise says what to install.
set -euo pipefail

need=()
command -v az >/dev/null 2>&1 || need+=(azure-cli)
/usr/bin/python3 -c "import azure.identity, azure.mgmt.resource" >/dev/null 2>&1 || need+=(python3-azure)
for tool in podman runc debootstrap chromium jq openssl; do command -v "$tool" >/dev/null 2>&1 || need+=("$tool"); done
[ -x /usr/sbin/nginx ] || need+=(nginx)
command -v go >/dev/null 2>&1 || need+=(golang-go)
command -v faketime >/dev/null 2>&1 || need+=(faketime)
[ -d /usr/share/gocode/src/github.com/Azure/go-autorest/autorest/adal ] || need+=(golang-github-azure-go-autorest-dev)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
command -v rsyslogd >/dev/null 2>&1 || need+=(rsyslog)
ls /usr/lib/*/rsyslog/lmnsd_gtls.so >/dev/null 2>&1 || need+=(rsyslog-gnutls)

if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "The tests need these Debian packages: ${need[*]}"
  echo "Install them (sudo apt-get install -y ${need[*]}), then run the tests again."
  exit 1
fi
echo "Installing the Debian packages the tests need: ${need[*]}"
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
