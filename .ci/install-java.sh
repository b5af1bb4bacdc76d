#!/usr/bin/env bash
# Java 17 and Maven for the local Kafka broker, from Debian's packages (run as root, as CI and our machines do).
set -euo pipefail
if command -v java >/dev/null && command -v mvn >/dev/null; then exit 0; fi
apt-get update -q
apt-get install -y -q openjdk-17-jre-headless maven
