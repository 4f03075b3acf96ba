#!/usr/bin/env python3
"""Full rotations through `serve --lambda-endpoint`, with boto3, against a rotation function
written as an ordinary Lambda handler (tools/rotation_function.py) served by
tools/lambda_invoke_server.py. Three acts:

1. Happy path: RotateSecret answers at once; the function's four steps run; AWSCURRENT moves to
   the new version, LastRotatedDate is set, NextRotationDate follows the rules.
2. A failing testSecret: the rotation stops, AWSCURRENT is unchanged, AWSPENDING stays on the new
   version, a new RotateSecret is refused, and the failure is in the log.
3. The function fixed: RotateSecret with the same token reattempts the rotation and it succeeds.

Usage: tools/boto3_rotation.py --endpoint URL --access-key-id AKID --secret-access-key KEY
       --fail-marker FILE   (the file whose existence makes testSecret fail)
"""

import argparse
import json
import os
import subprocess
import sys
import time
import uuid

import boto3
import botocore.exceptions

LAMBDA = "arn:aws:lambda:us-east-1:000000000000:function:rotate-db"
CHECKS = 0


def check(cond, what):
    global CHECKS
    CHECKS += 1
    if not cond:
        raise AssertionError(what)


def wait_for(what, predicate, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def stages(sm, name):
    return sm.describe_secret(SecretId=name)["VersionIdsToStages"]


def holder(sm, name, label):
    return next((v for v, s in stages(sm, name).items() if label in s), None)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--access-key-id", required=True)
    p.add_argument("--secret-access-key", required=True)
    p.add_argument("--fail-marker", required=True)
    p.add_argument("--bin", required=True, help="the secret-ledger binary (for `history --endpoint`)")
    args = p.parse_args()

    def history_events(name):
        out = subprocess.run(
            [args.bin, "history", "--endpoint", args.endpoint, "--secret-id", name, "--region", "us-east-1", "--json"],
            env={**os.environ, "AWS_ACCESS_KEY_ID": args.access_key_id, "AWS_SECRET_ACCESS_KEY": args.secret_access_key},
            capture_output=True, text=True, check=True,
        )
        doc = json.loads(out.stdout)
        return [e for s in doc["secrets"] for e in s["events"]]

    sm = boto3.client(
        "secretsmanager",
        endpoint_url=args.endpoint,
        region_name="us-east-1",
        aws_access_key_id=args.access_key_id,
        aws_secret_access_key=args.secret_access_key,
    )
    name = f"rotation/db-{uuid.uuid4().hex[:8]}"
    sm.create_secret(Name=name, SecretString=json.dumps({"username": "app", "password": "initial"}))
    first = holder(sm, name, "AWSCURRENT")

    # 1. Happy path.
    started = sm.rotate_secret(
        SecretId=name, RotationLambdaARN=LAMBDA, RotationRules={"AutomaticallyAfterDays": 30}
    )
    token = started["VersionId"]
    check(started["Name"] == name and token != first, started)
    wait_for("the rotation to finish", lambda: holder(sm, name, "AWSCURRENT") == token)
    d = sm.describe_secret(SecretId=name)
    check(d["RotationEnabled"] and d["RotationLambdaARN"] == LAMBDA, d)
    check("LastRotatedDate" in d, "LastRotatedDate after a rotation")
    days = (d["NextRotationDate"] - d["LastRotatedDate"]).total_seconds() / 86400
    check(abs(days - 30) < 0.01, f"NextRotationDate is 30 days after the rotation, not {days}")
    check(holder(sm, name, "AWSPREVIOUS") == first, stages(sm, name))
    value = json.loads(sm.get_secret_value(SecretId=name)["SecretString"])
    check(value["username"] == "app" and value["password"] != "initial", "a new password")
    print("ok   happy path: four steps ran, AWSCURRENT moved, dates set")

    # 2. A failing testSecret.
    open(args.fail_marker, "w").close()
    second = sm.rotate_secret(SecretId=name)["VersionId"]
    failed = wait_for(
        "the failed step in the history",
        lambda: [e for e in history_events(name) if e["event"] == "RotationFailed"],
    )
    check(len(failed) == 1 and "failed at testSecret" in failed[0]["change"], failed)
    # The function's message may quote the secret: the log keeps the error type only.
    check(failed[0]["actor"] == "rotation" and "errorType RuntimeError" in failed[0]["change"], failed)
    check("cannot log in" not in failed[0]["change"], failed)
    check(holder(sm, name, "AWSCURRENT") == token, "AWSCURRENT unchanged after the failure")
    check(holder(sm, name, "AWSPENDING") == second, "AWSPENDING stays on the new version")
    try:
        sm.rotate_secret(SecretId=name)
        raise AssertionError("a new RotateSecret during an unfinished rotation succeeded")
    except botocore.exceptions.ClientError as e:
        check(e.response["Error"]["Code"] == "InvalidRequestException", e.response["Error"])
    print("ok   failing testSecret: AWSCURRENT unchanged, a new rotation refused")

    # 3. Fixed: the same token reattempts the rotation.
    os.remove(args.fail_marker)
    again = sm.rotate_secret(SecretId=name, ClientRequestToken=second)
    check(again["VersionId"] == second, again)
    wait_for("the reattempt to finish", lambda: holder(sm, name, "AWSCURRENT") == second)
    check(holder(sm, name, "AWSPREVIOUS") == token, stages(sm, name))
    print("ok   reattempt with the same token succeeded")
    events = [e["event"] for e in history_events(name)]
    check(events.count("RotationConfigured") == 1 and events.count("VersionReserved") == 2, events)
    check(events.count("VersionValueSet") == 2, events)
    print(f"boto3_rotation: {CHECKS} checks passed")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)
