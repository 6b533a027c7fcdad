# Shared shell helpers for scripts/demo, scripts/test and bench/run: the Python venv with moto,
# and a moto EC2 server on a free 127.0.0.1 port.
# shellcheck shell=bash

MOTO_VERSION="5.2.5"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${KCLUSTER_VENV:-${REPO}/.venv}"

# Creates the venv with moto[server] unless it is already there.
ensure_moto() {
  if [ -x "${VENV}/bin/moto_server" ] && "${VENV}/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '${MOTO_VERSION}')" 2>/dev/null; then
    return 0
  fi
  echo "setting up ${VENV} with moto[server]==${MOTO_VERSION}" >&2
  python3 -m venv "${VENV}"
  "${VENV}/bin/pip" install --quiet --disable-pip-version-check "moto[server]==${MOTO_VERSION}"
}

# Prints a free TCP port on 127.0.0.1.
free_port() {
  "${VENV}/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_answering PID URL NAME: waits until URL answers (0), or NAME's process PID exits or
# never answers (1, saying so).
wait_answering() {
  local pid=$1 url=$2 name=$3 i
  for i in $(seq 1 100); do
    if curl --silent --output /dev/null "${url}"; then
      return 0
    fi
    if ! kill -0 "${pid}" 2>/dev/null; then
      echo "${name} exited at start" >&2
      return 1
    fi
    sleep 0.2
  done
  echo "${name} did not answer on ${url} after ${i} tries" >&2
  return 1
}

# Starts moto's EC2 server (AMI and instance-type validation on) and waits until it answers.
# Sets MOTO_PID and MOTO_URL.
start_moto() {
  local port
  port="$(free_port)"
  MOTO_ENABLE_AMI_VALIDATION=true MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION=true \
    "${VENV}/bin/moto_server" -H 127.0.0.1 -p "${port}" >"${MOTO_LOG:-/dev/null}" 2>&1 &
  MOTO_PID=$!
  MOTO_URL="http://127.0.0.1:${port}"
  wait_answering "${MOTO_PID}" "${MOTO_URL}/moto-api/" moto_server
}

# Starts bench/strict_ec2.py in front of moto (no throttling), so that EC2 answers as real EC2
# does where moto is lenient: above all, an interface detaches from its terminated instance,
# which moto never does (destroy waits for that). Sets STRICT_PID and MOTO_URL to the proxy.
start_strict_ec2() {
  local port upstream="${MOTO_URL#http://}"
  port="$(free_port)"
  "${VENV}/bin/python" "${REPO}/bench/strict_ec2.py" --listen "127.0.0.1:${port}" \
    --upstream "${upstream}" --detach-seconds 2 >"${STRICT_LOG:-/dev/null}" 2>&1 &
  STRICT_PID=$!
  wait_answering "${STRICT_PID}" "http://127.0.0.1:${port}/__stats" bench/strict_ec2.py || return 1
  MOTO_URL="http://127.0.0.1:${port}"
}

stop_moto() {
  if [ -n "${STRICT_PID:-}" ]; then
    kill "${STRICT_PID}" 2>/dev/null || true
    wait "${STRICT_PID}" 2>/dev/null || true
    STRICT_PID=""
  fi
  if [ -n "${MOTO_PID:-}" ]; then
    kill "${MOTO_PID}" 2>/dev/null || true
    wait "${MOTO_PID}" 2>/dev/null || true
    MOTO_PID=""
  fi
}

# Points the AWS SDK at the mock with throwaway credentials, whatever the user's setup says.
use_mock_aws() {
  export AWS_ENDPOINT_URL="${MOTO_URL}"
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
  export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
  unset AWS_PROFILE AWS_SESSION_TOKEN
  export KCLUSTER_POLL_SECONDS="${KCLUSTER_POLL_SECONDS:-0.2}"
}

# The Kafka versions the integration tests run for real (tests/it/kafka).
# shellcheck disable=SC2034 # read by the scripts that source this file
# 3.9.2 runs ZooKeeper-mode clusters (kcluster's default), 4.3.1 KRaft-mode ones.
KAFKA_TEST_VERSIONS=(3.9.2 4.3.1)

# Copies Kafka <version>'s broker, tools, Connect runtime and file connectors with their runtime
# dependencies from Maven Central into target/kafka/<version>/lib, unless a complete copy made
# from the same tests/kafka/pom.xml is already there (the `complete` marker holds the pom's
# SHA-256, so a dependency added to the pom fetches again instead of running with a partial set).
ensure_kafka() {
  local version="$1"
  local dir="${REPO}/target/kafka/${version}"
  local pom="${REPO}/tests/kafka/pom.xml"
  local want
  want="$(sha256sum "${pom}" | cut -d' ' -f1)"
  if [ -f "${dir}/complete" ] && [ "$(cat "${dir}/complete")" = "${want}" ]; then
    return 0
  fi
  if ! command -v mvn >/dev/null; then
    echo "mvn is not installed: apt-get install --no-install-recommends maven openjdk-17-jdk-headless" >&2
    return 1
  fi
  echo "fetching Kafka ${version} (broker, tools, clients, Connect) from Maven Central into ${dir}" >&2
  rm -rf "${dir}"
  mvn -q -B -Dstyle.color=never -f "${pom}" -Dkafka.version="${version}" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="${dir}/lib"
  # Kafka 4 logs through log4j 2, but its Maven artifacts leave the choice of slf4j binding to the
  # application; the tarball ships log4j's slf4j binding at its log4j version, and so does this.
  local log4j
  log4j="$(find "${dir}/lib" -name 'log4j-core-*.jar' -printf '%f\n' | sed 's/^log4j-core-\(.*\)\.jar$/\1/')"
  if [ -n "${log4j}" ]; then
    mvn -q -B -Dstyle.color=never -f "${REPO}/tests/kafka/pom.xml" \
      org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy \
      -Dartifact="org.apache.logging.log4j:log4j-slf4j-impl:${log4j}" \
      -DoutputDirectory="${dir}/lib"
  fi
  local jar
  for jar in kafka_2.13 kafka-tools connect-runtime connect-file; do
    if ! [ -f "${dir}/lib/${jar}-${version}.jar" ]; then
      echo "Maven Central gave no ${jar}-${version}.jar; the Kafka set in ${dir} is incomplete" >&2
      return 1
    fi
  done
  echo "${want}" >"${dir}/complete"
}

# Copies one Maven Central artifact ($3, `group:artifact:version[:type[:classifier]]`) into the
# directory $1 as the file $2, unless a copy with the checksum $5 (checked with $4sum, sha256 or
# sha512) is already there; a download with any other checksum is removed and refused.
ensure_pinned_artifact() {
  local dir="$1" file="$1/$2" artifact="$3" algorithm="$4" sum="$5"
  if [ -f "${file}" ] && echo "${sum}  ${file}" | "${algorithm}sum" --check --strict --status; then
    return 0
  fi
  if ! command -v mvn >/dev/null; then
    echo "mvn is not installed: apt-get install --no-install-recommends maven openjdk-17-jdk-headless" >&2
    return 1
  fi
  echo "fetching ${artifact} from Maven Central into ${dir}" >&2
  mvn -q -B -Dstyle.color=never -f "${REPO}/tests/kafka/pom.xml" \
    org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy \
    -Dartifact="${artifact}" -DoutputDirectory="${dir}"
  if ! echo "${sum}  ${file}" | "${algorithm}sum" --check --strict --status; then
    echo "${file} does not have the pinned ${algorithm} ${sum}" >&2
    rm -f "${file}"
    return 1
  fi
}

# A real connector plugin for the Connect tests (tests/it/fixtures/connect-3x3.yaml pins its URL
# and SHA-512): Debezium's PostgreSQL connector archive, into target/connect-plugins/.
ensure_connect_plugin() {
  ensure_pinned_artifact "${REPO}/target/connect-plugins" \
    debezium-connector-postgres-2.7.3.Final-plugin.tar.gz \
    io.debezium:debezium-connector-postgres:2.7.3.Final:tar.gz:plugin sha512 \
    5b64b910eefb39683e2d2c7e994b51b6d62dbee102084b6c85099e3191316cd4dce416ef29d5ea1a475ba8309ff63846f5165b8e309b557eb260250a4980cb73
}

# The Prometheus JMX exporter agent the rendered units load (kcluster's pin, src/render/exporters.rs).
JMX_EXPORTER_VERSION="1.0.1"
JMX_EXPORTER_SHA256="7d61f737fd661610ccc14aea79764faa1ea94a340cbc8f0029b3d2edea3d80c1"

# Copies the JMX exporter agent jar from Maven Central into target/jmx-exporter/<version>/, apart
# from Kafka's lib directory (an agent is not on the classpath), and checks its SHA-256.
ensure_jmx_exporter() {
  ensure_pinned_artifact "${REPO}/target/jmx-exporter/${JMX_EXPORTER_VERSION}" \
    "jmx_prometheus_javaagent-${JMX_EXPORTER_VERSION}.jar" \
    "io.prometheus.jmx:jmx_prometheus_javaagent:${JMX_EXPORTER_VERSION}" sha256 "${JMX_EXPORTER_SHA256}"
}
