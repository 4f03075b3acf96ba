"""An ordinary single-user rotation function, as written for AWS Secrets Manager (the four steps
of AWS's rotation template, boto3 inside). Configuration comes from the environment, as on
Lambda: SECRETS_MANAGER_ENDPOINT (the ledger's URL), AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_DEFAULT_REGION. For tests, ROTATION_FAIL_TEST_FILE names a file whose existence makes the
testSecret step fail (remove it to "fix" the function).

The "database" is a JSON file (ROTATION_DATABASE_FILE): setSecret stores the pending password
there, testSecret checks that the pending secret logs in.
"""

import json
import os

import boto3


def client():
    return boto3.client(
        "secretsmanager",
        endpoint_url=os.environ["SECRETS_MANAGER_ENDPOINT"],
        region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    )


def lambda_handler(event, context):
    arn, token, step = event["SecretId"], event["ClientRequestToken"], event["Step"]
    sm = client()
    metadata = sm.describe_secret(SecretId=arn)
    if not metadata.get("RotationEnabled"):
        raise ValueError(f"Secret {arn} is not enabled for rotation")
    versions = metadata["VersionIdsToStages"]
    if token not in versions:
        raise ValueError(f"Secret version {token} has no stage for rotation of secret {arn}.")
    if "AWSCURRENT" in versions[token]:
        return  # already current: nothing to do
    if "AWSPENDING" not in versions[token]:
        raise ValueError(f"Secret version {token} not set as AWSPENDING for rotation of secret {arn}.")
    {"createSecret": create_secret, "setSecret": set_secret, "testSecret": test_secret, "finishSecret": finish_secret}[
        step
    ](sm, arn, token)


def create_secret(sm, arn, token):
    current = json.loads(sm.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"])
    try:
        sm.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")
        return  # a reattempt: the pending value exists already
    except sm.exceptions.ResourceNotFoundException:
        pass
    current["password"] = sm.get_random_password(ExcludeCharacters="/@\"'\\")["RandomPassword"]
    sm.put_secret_value(
        SecretId=arn, ClientRequestToken=token, SecretString=json.dumps(current), VersionStages=["AWSPENDING"]
    )


def database():
    path = os.environ["ROTATION_DATABASE_FILE"]
    try:
        with open(path) as f:
            return path, json.load(f)
    except FileNotFoundError:
        return path, {}


def set_secret(sm, arn, token):
    pending = json.loads(sm.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")["SecretString"])
    path, db = database()
    db[pending["username"]] = pending["password"]
    with open(path, "w") as f:
        json.dump(db, f)


def test_secret(sm, arn, token):
    marker = os.environ.get("ROTATION_FAIL_TEST_FILE")
    if marker and os.path.exists(marker):
        raise RuntimeError("testSecret: cannot log in with the pending secret")
    pending = json.loads(sm.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")["SecretString"])
    _, db = database()
    if db.get(pending["username"]) != pending["password"]:
        raise RuntimeError("testSecret: the pending password does not log in")


def finish_secret(sm, arn, token):
    versions = sm.describe_secret(SecretId=arn)["VersionIdsToStages"]
    current = next(v for v, stages in versions.items() if "AWSCURRENT" in stages)
    if current == token:
        return
    sm.update_secret_version_stage(
        SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=token, RemoveFromVersionId=current
    )
