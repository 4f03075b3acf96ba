#!/usr/bin/env bash
# Runs tools/boto3_story.py against a real `secret-ledger serve` process on a free port with a
# fresh data dir, then stops the server with SIGTERM and requires exit status 0. Also checks that
# a second server on the same data dir refuses to start with exit status 2.
# Needs: cargo (or SECRET_LEDGER_BIN), python3 with boto3.
set -euo pipefail

cd "$(dirname "$0")/.."
# SECRET_LEDGER_BIN points at a prebuilt binary; otherwise the debug binary is (re)built.
if [[ -n "${SECRET_LEDGER_BIN:-}" ]]; then
  BIN="$SECRET_LEDGER_BIN"
else
  cargo build -p secret-ledger
  BIN=target/debug/secret-ledger
fi

WORK="$(mktemp -d)"
DATA="$WORK/data"
SERVER_PID=""
cleanup() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN" serve --listen 127.0.0.1:0 --data-dir "$DATA" >"$WORK/stdout" 2>"$WORK/stderr" &
SERVER_PID=$!

# Wait (at most ~30 s) for the one "listening on http://HOST:PORT" line.
ENDPOINT=""
for _ in $(seq 1 300); do
  if LINE="$(grep -m1 '^listening on http://' "$WORK/stdout" 2>/dev/null)"; then
    ENDPOINT="${LINE#listening on }"
    break
  fi
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "server exited early:" >&2
    cat "$WORK/stderr" >&2
    exit 1
  fi
  sleep 0.1
done
if [[ -z "$ENDPOINT" ]]; then
  echo "server did not report its address" >&2
  cat "$WORK/stderr" >&2
  exit 1
fi
echo "server at $ENDPOINT (data dir $DATA)"

CREDENTIALS_LINE="$(grep -v '^#' "$DATA/credentials" | grep -m1 ':')"
AKID="${CREDENTIALS_LINE%%:*}"
SECRET="${CREDENTIALS_LINE#*:}"

# A second server on the same data dir must refuse with exit status 2.
set +e
"$BIN" serve --listen 127.0.0.1:0 --data-dir "$DATA" >"$WORK/second.out" 2>"$WORK/second.err"
SECOND=$?
set -e
if [[ "$SECOND" -ne 2 ]] || ! grep -q "in use" "$WORK/second.err"; then
  echo "second server on the same data dir: exit $SECOND, expected 2 with 'in use'" >&2
  cat "$WORK/second.err" >&2
  exit 1
fi
echo "ok   second server refused (exit 2)"

python3 tools/boto3_story.py --endpoint "$ENDPOINT" --access-key-id "$AKID" --secret-access-key="$SECRET"

# The AWS CLI signs X-Amz-Target too (the server refuses a request that does not).
if command -v aws >/dev/null 2>&1; then
  AWS_ACCESS_KEY_ID="$AKID" AWS_SECRET_ACCESS_KEY="$SECRET" AWS_DEFAULT_REGION=us-east-1 \
    aws secretsmanager create-secret --endpoint-url "$ENDPOINT" --name cli/check --secret-string from-the-cli >/dev/null
  VALUE="$(AWS_ACCESS_KEY_ID="$AKID" AWS_SECRET_ACCESS_KEY="$SECRET" AWS_DEFAULT_REGION=us-east-1 \
    aws secretsmanager get-secret-value --endpoint-url "$ENDPOINT" --secret-id cli/check --query SecretString --output text)"
  [[ "$VALUE" == "from-the-cli" ]] || { echo "AWS CLI: got '$VALUE'" >&2; exit 1; }
  echo "ok   AWS CLI"
else
  echo "AWS CLI not installed: skipped (pip install awscli)"
fi

kill -TERM "$SERVER_PID"
set +e
wait "$SERVER_PID"
STATUS=$?
set -e
SERVER_PID=""
if [[ "$STATUS" -ne 0 ]]; then
  echo "server exited with status $STATUS after SIGTERM" >&2
  cat "$WORK/stderr" >&2
  exit 1
fi
echo "ok   server stopped cleanly on SIGTERM"

# The log the server wrote verifies.
"$BIN" verify --data-dir "$DATA"

# Rotation through --lambda-endpoint: a Python rotation function behind a small Lambda Invoke
# API (tools/lambda_invoke_server.py), calling back into a second server with boto3.
ROT="$WORK/rotation"
mkdir -p "$ROT"
RAKID="AKIAROTATIONSTORY001"
RSECRET="$(python3 -c 'import secrets; print(secrets.token_hex(20))')"
echo "$RAKID:$RSECRET" >"$ROT/credentials"
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export AWS_ACCESS_KEY_ID="$RAKID" AWS_SECRET_ACCESS_KEY="$RSECRET" AWS_DEFAULT_REGION=us-east-1
SECRETS_MANAGER_ENDPOINT="http://127.0.0.1:$PORT" ROTATION_DATABASE_FILE="$ROT/database.json" \
  ROTATION_FAIL_TEST_FILE="$ROT/fail-test" \
  python3 -u tools/lambda_invoke_server.py --handler tools/rotation_function.py --function rotate-db \
  >"$ROT/lambda.out" 2>"$ROT/lambda.err" &
LAMBDA_PID=$!
cleanup_rotation() {
  kill "$LAMBDA_PID" 2>/dev/null || true
  cleanup
}
trap cleanup_rotation EXIT
LAMBDA_URL=""
for _ in $(seq 1 100); do
  if LINE="$(grep -m1 '^listening on http://' "$ROT/lambda.out" 2>/dev/null)"; then
    LAMBDA_URL="${LINE#listening on }"
    break
  fi
  sleep 0.1
done
[[ -n "$LAMBDA_URL" ]] || { echo "the Lambda Invoke server did not start" >&2; cat "$ROT/lambda.err" >&2; exit 1; }
"$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$ROT/data" --credentials "$ROT/credentials" \
  --lambda-endpoint "$LAMBDA_URL" --lambda-timeout 20 >"$ROT/stdout" 2>"$ROT/stderr" &
SERVER_PID=$!
for _ in $(seq 1 300); do
  grep -q '^listening on http://' "$ROT/stdout" 2>/dev/null && break
  kill -0 "$SERVER_PID" 2>/dev/null || { echo "rotation server exited early:" >&2; cat "$ROT/stderr" >&2; exit 1; }
  sleep 0.1
done
if ! python3 tools/boto3_rotation.py --endpoint "http://127.0.0.1:$PORT" --access-key-id "$RAKID" \
  --secret-access-key="$RSECRET" --fail-marker "$ROT/fail-test" --bin "$BIN"; then
  echo "--- server stderr" >&2; cat "$ROT/stderr" >&2
  echo "--- lambda stderr" >&2; cat "$ROT/lambda.err" >&2
  exit 1
fi
kill -TERM "$SERVER_PID"
wait "$SERVER_PID"
SERVER_PID=""
"$BIN" verify --data-dir "$ROT/data"
