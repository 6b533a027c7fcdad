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

# Copies Kafka <version>'s broker, tools and their runtime dependencies from Maven Central into
# target/kafka/<version>/lib, unless a complete copy is already there.
ensure_kafka() {
  local version="$1"
  local dir="${REPO}/target/kafka/${version}"
  if [ -f "${dir}/complete" ]; then
    return 0
  fi
  if ! command -v mvn >/dev/null; then
    echo "mvn is not installed: apt-get install --no-install-recommends maven openjdk-17-jdk-headless" >&2
    return 1
  fi
  echo "fetching Kafka ${version} (broker, tools, clients) from Maven Central into ${dir}" >&2
  rm -rf "${dir}"
  mvn -q -B -Dstyle.color=never -f "${REPO}/tests/kafka/pom.xml" -Dkafka.version="${version}" \
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
  touch "${dir}/complete"
}

# The Prometheus JMX exporter agent the rendered units load (kcluster's pin, src/exporters.rs).
JMX_EXPORTER_VERSION="1.0.1"
JMX_EXPORTER_SHA256="7d61f737fd661610ccc14aea79764faa1ea94a340cbc8f0029b3d2edea3d80c1"

# Copies the JMX exporter agent jar from Maven Central into target/jmx-exporter/<version>/, apart
# from Kafka's lib directory (an agent is not on the classpath), and checks its SHA-256.
ensure_jmx_exporter() {
  local dir="${REPO}/target/jmx-exporter/${JMX_EXPORTER_VERSION}"
  local jar="${dir}/jmx_prometheus_javaagent-${JMX_EXPORTER_VERSION}.jar"
  if [ -f "${jar}" ] && echo "${JMX_EXPORTER_SHA256}  ${jar}" | sha256sum --check --strict --status; then
    return 0
  fi
  if ! command -v mvn >/dev/null; then
    echo "mvn is not installed: apt-get install --no-install-recommends maven openjdk-17-jdk-headless" >&2
    return 1
  fi
  echo "fetching the JMX exporter agent ${JMX_EXPORTER_VERSION} from Maven Central into ${dir}" >&2
  mvn -q -B -Dstyle.color=never -f "${REPO}/tests/kafka/pom.xml" \
    org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy \
    -Dartifact="io.prometheus.jmx:jmx_prometheus_javaagent:${JMX_EXPORTER_VERSION}" \
    -DoutputDirectory="${dir}"
  if ! echo "${JMX_EXPORTER_SHA256}  ${jar}" | sha256sum --check --strict --status; then
    echo "${jar} does not have the pinned SHA-256 ${JMX_EXPORTER_SHA256}" >&2
    rm -f "${jar}"
    return 1
  fi
}
