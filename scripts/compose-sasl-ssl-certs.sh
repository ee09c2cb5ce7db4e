#!/usr/bin/env bash
# Makes what docker-compose.sasl-ssl.yml mounts into the broker, in ./compose-secrets/ (or $1):
# a throw-away CA (ca.crt, the file clients trust), the broker's PKCS#12 keystore for localhost /
# 127.0.0.1 signed by it, the files holding its password (the apache/kafka image reads them), and
# the broker's JAAS file (SCRAM login module). Needs only the openssl CLI. For trying josefk over
# SASL_SSL on a laptop: a fresh CA every run, keys unencrypted on disk, never for production.
set -euo pipefail

out="${1:-compose-secrets}"
password="${JOSEFK_COMPOSE_STORE_PASSWORD:-changeit}"
mkdir -p "$out"
cd "$out"

openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=josefk-compose-ca" \
  -keyout ca.key -out ca.crt \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout broker.key -out broker.csr \
  2>/dev/null
cat > broker.ext <<EXT
subjectAltName=DNS:localhost,DNS:kafka,IP:127.0.0.1
extendedKeyUsage=serverAuth
EXT
openssl x509 -req -in broker.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 \
  -extfile broker.ext -out broker.crt 2>/dev/null
openssl pkcs12 -export -name kafka -inkey broker.key -in broker.crt -certfile ca.crt \
  -passout "pass:$password" -out kafka.keystore.p12
printf '%s' "$password" > keystore_creds
printf '%s' "$password" > key_creds
cat > kafka_server_jaas.conf <<JAAS
KafkaServer {
  org.apache.kafka.common.security.scram.ScramLoginModule required;
};
JAAS
rm -f broker.csr broker.ext ca.srl
# The container runs as a non-root user: it must read these.
chmod 0644 ./*
echo "wrote $(pwd): ca.crt (trust this), kafka.keystore.p12, keystore_creds, key_creds, kafka_server_jaas.conf"
