#!/usr/bin/env python3
"""Drive a running secret-ledger server with boto3: the PutSecretValue story, binary values,
partial ARNs, pagination, two regions, raw unsigned / mis-signed / stale / malformed / token-less
requests (signed with botocore's SigV4Auth, then tampered), operations not served, rotation by an
external rotator, resource policies, the list filters' word rules (ListSecrets and
BatchGetSecretValue), LastAccessedDate and its sort order. Exits non-zero on the first failure.

Usage:
  tools/boto3_story.py --endpoint http://127.0.0.1:4590 --access-key-id AKIA... --secret-access-key ...
  tools/boto3_story.py --endpoint URL --credentials-file DATA_DIR/credentials
Environment fallbacks: SECRET_LEDGER_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY.
"""

import argparse
import base64
import datetime
import json
import os
import sys
import urllib.error
import urllib.request
import uuid

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials
import botocore.exceptions

TOKEN_MISSING = "You must provide a ClientRequestToken value. We recommend a UUID-type value."
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your AWS "
    "Secret Access Key and signing method. Consult the service documentation for details."
)

CHECKS = 0


def check(cond, what):
    global CHECKS
    CHECKS += 1
    if not cond:
        raise AssertionError(what)


def expect_error(code, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except botocore.exceptions.ClientError as e:
        got = e.response["Error"]["Code"]
        check(got == code, f"expected {code}, got {got}: {e.response['Error'].get('Message')}")
        check(e.response["ResponseMetadata"]["HTTPStatusCode"] == 400, f"{code} must be HTTP 400")
        return e.response["Error"].get("Message", "")
    raise AssertionError(f"expected {code}, the call succeeded")


def token():
    return str(uuid.uuid4())


def client(endpoint, akid, secret, region="us-east-1"):
    return boto3.client(
        "secretsmanager",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=akid,
        aws_secret_access_key=secret,
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )


def story(sm):
    name = "boto3/story"
    t1 = token()
    created = sm.create_secret(Name=name, SecretString="s1", ClientRequestToken=t1)
    check(created["VersionId"] == t1, "CreateSecret VersionId = token")
    arn = created["ARN"]
    check(arn.startswith(f"arn:aws:secretsmanager:us-east-1:000000000000:secret:{name}-"), arn)
    again = sm.create_secret(Name=name, SecretString="s1", ClientRequestToken=t1)
    check((again["ARN"], again["VersionId"]) == (arn, t1), "idempotent CreateSecret")
    msg = expect_error("ResourceExistsException", sm.create_secret, Name=name, SecretString="s1")
    check(msg == f"The operation failed because the secret {name} already exists.", msg)

    put = sm.put_secret_value(SecretId=name, SecretString="s2")  # boto3 fills the token
    v2 = put["VersionId"]
    check(put["VersionStages"] == ["AWSCURRENT"], put)
    check(sm.get_secret_value(SecretId=name)["SecretString"] == "s2", "current is s2")
    check(sm.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")["SecretString"] == "s1", "previous is s1")

    t3 = token()
    sm.put_secret_value(SecretId=name, SecretString="s3", ClientRequestToken=t3)
    retry = sm.put_secret_value(SecretId=name, SecretString="s3", ClientRequestToken=t3)
    check(retry["VersionId"] == t3 and retry["VersionStages"] == ["AWSCURRENT"], retry)
    msg = expect_error(
        "ResourceExistsException", sm.put_secret_value, SecretId=name, SecretString="other", ClientRequestToken=t3
    )
    check(msg.startswith(f"You can't use ClientRequestToken {t3} because"), msg)

    t4 = token()
    put = sm.put_secret_value(SecretId=name, SecretString="s4", ClientRequestToken=t4, VersionStages=["AWSPENDING"])
    check(put["VersionStages"] == ["AWSPENDING"], put)
    check(sm.get_secret_value(SecretId=name)["SecretString"] == "s3", "explicit stages leave AWSCURRENT")

    msg = expect_error(
        "InvalidParameterException",
        sm.update_secret_version_stage,
        SecretId=name,
        VersionStage="AWSCURRENT",
        MoveToVersionId=t4,
    )
    check("RemoveFromVersionId can't be empty" in msg and t3 in msg, msg)
    sm.update_secret_version_stage(SecretId=name, VersionStage="AWSCURRENT", MoveToVersionId=t4, RemoveFromVersionId=t3)
    stages = sm.describe_secret(SecretId=name)["VersionIdsToStages"]
    check(stages == {t4: ["AWSCURRENT", "AWSPENDING"], t3: ["AWSPREVIOUS"]}, stages)

    listed = sm.list_secret_version_ids(SecretId=name)["Versions"]
    check([v["VersionId"] for v in listed] == [t3, t4], listed)
    everything = sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]
    check([v["VersionId"] for v in everything] == [t1, v2, t3, t4], everything)
    check("VersionStages" not in everything[0], everything[0])
    check(everything[0]["KmsKeyIds"] == ["DefaultEncryptionKey"], everything[0])
    check(isinstance(everything[0]["CreatedDate"], datetime.datetime), "CreatedDate parses as a timestamp")
    check(sm.get_secret_value(SecretId=name, VersionId=t1)["SecretString"] == "s1", "deprecated readable by id")

    deleted = sm.delete_secret(SecretId=name, RecoveryWindowInDays=7)
    check(isinstance(deleted["DeletionDate"], datetime.datetime), deleted)
    msg = expect_error("InvalidRequestException", sm.get_secret_value, SecretId=name)
    check(msg == "You can't perform this operation on the secret because it was marked for deletion.", msg)
    check("DeletedDate" in sm.describe_secret(SecretId=name), "DescribeSecret shows DeletedDate")
    check(all(s["Name"] != name for s in sm.list_secrets()["SecretList"]), "ListSecrets hides scheduled")
    sm.restore_secret(SecretId=name)
    check(sm.get_secret_value(SecretId=name)["SecretString"] == "s4", "restored")
    return arn


def binary_arns_tags(sm):
    data = bytes(range(256))
    created = sm.create_secret(Name="boto3/bin", SecretBinary=data)
    got = sm.get_secret_value(SecretId="boto3/bin")
    check(got["SecretBinary"] == data and "SecretString" not in got, "binary round trip")
    arn = created["ARN"]
    check(sm.describe_secret(SecretId=arn[:-7])["ARN"] == arn, "partial ARN resolves")
    expect_error("ResourceNotFoundException", sm.describe_secret, SecretId=arn[:-7] + "-zzzzzz")
    check("Tags" not in sm.describe_secret(SecretId=arn), "no Tags before tagging")
    sm.tag_resource(SecretId=arn, Tags=[{"Key": "k", "Value": "v"}])
    sm.untag_resource(SecretId=arn, TagKeys=["k"])
    check(sm.describe_secret(SecretId=arn)["Tags"] == [], "Tags [] after untagging all")
    empty = sm.create_secret(Name="boto3/empty")
    check("VersionId" not in empty, empty)
    pw = sm.get_random_password(PasswordLength=24, ExcludePunctuation=True)["RandomPassword"]
    check(len(pw) == 24 and pw.isalnum(), "random password")
    batch = sm.batch_get_secret_value(SecretIdList=["boto3/bin", "boto3/missing"])
    check(len(batch["SecretValues"]) == 1 and batch["Errors"][0]["ErrorCode"] == "ResourceNotFoundException", batch)


def pagination(sm):
    names = [f"boto3/page/{i:02d}" for i in range(7)]
    for n in names:
        sm.create_secret(Name=n, SecretString="v")
    seen = []
    pages = sm.get_paginator("list_secrets").paginate(
        Filters=[{"Key": "name", "Values": ["boto3/page/"]}], PaginationConfig={"PageSize": 3}
    )
    n_pages = 0
    for page in pages:
        n_pages += 1
        check(len(page["SecretList"]) <= 3, page)
        seen += [s["Name"] for s in page["SecretList"]]
    check(seen == names, seen)
    check(n_pages == 3, n_pages)
    expect_error("InvalidNextTokenException", sm.list_secrets, NextToken="bm9wZQ")


def regions(endpoint, akid, secret):
    east = client(endpoint, akid, secret, "us-east-1")
    west = client(endpoint, akid, secret, "eu-west-1")
    east.create_secret(Name="boto3/regional", SecretString="east")
    west.create_secret(Name="boto3/regional", SecretString="west")
    check(east.get_secret_value(SecretId="boto3/regional")["SecretString"] == "east", "east value")
    check(west.get_secret_value(SecretId="boto3/regional")["SecretString"] == "west", "west value")
    west_names = [s["Name"] for s in west.list_secrets()["SecretList"]]
    check(west_names == ["boto3/regional"], west_names)


def raw_request(endpoint, target, body, akid, secret, region="us-east-1", when=None, tamper=None, sign=True):
    """POST a raw request signed by botocore's SigV4Auth; `tamper(headers, body)` runs after signing."""
    headers = {"Content-Type": "application/x-amz-json-1.1"}
    if target is not None:
        headers["X-Amz-Target"] = target
    request = botocore.awsrequest.AWSRequest(method="POST", url=endpoint + "/", data=body, headers=headers)
    if sign:
        signer = botocore.auth.SigV4Auth(botocore.credentials.Credentials(akid, secret), "secretsmanager", region)
        if when is not None:
            # SigV4Auth reads the clock through botocore.auth.get_current_datetime (older
            # botocore: datetime.datetime.utcnow); sign at a chosen time by swapping it briefly.
            if hasattr(botocore.auth, "get_current_datetime"):
                real = botocore.auth.get_current_datetime
                botocore.auth.get_current_datetime = lambda *a, **k: when
                try:
                    signer.add_auth(request)
                finally:
                    botocore.auth.get_current_datetime = real
            else:
                real = botocore.auth.datetime.datetime

                class Frozen(real):
                    @classmethod
                    def utcnow(cls):
                        return when

                botocore.auth.datetime.datetime = Frozen
                try:
                    signer.add_auth(request)
                finally:
                    botocore.auth.datetime.datetime = real
        else:
            signer.add_auth(request)
    prepared = request.prepare()
    out_headers = dict(prepared.headers.items())
    out_body = prepared.body if isinstance(prepared.body, bytes) else (prepared.body or "").encode()
    if tamper is not None:
        out_headers, out_body = tamper(out_headers, out_body)
    req = urllib.request.Request(prepared.url, data=out_body, headers=out_headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers.items()), json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers.items()), json.loads(e.read() or b"{}")


def expect_raw_error(result, code):
    status, headers, body = result
    check(status == 400, f"{code}: status {status} {body}")
    check(body.get("__type") == code, f"expected {code}, got {body}")
    lower = {k.lower(): v for k, v in headers.items()}
    check(lower.get("content-type") == "application/x-amz-json-1.1", headers)
    check(len(lower.get("x-amzn-requestid", "")) == 36, headers)
    return body.get("Message", "")


def raw_refusals(endpoint, akid, secret, sm):
    before = len(sm.list_secrets(IncludePlannedDeletion=True)["SecretList"])
    create = lambda name: json.dumps({"Name": name, "SecretString": "v", "ClientRequestToken": token()})  # noqa: E731
    target = "secretsmanager.CreateSecret"

    ok = raw_request(endpoint, "secretsmanager.ListSecrets", "{}", akid, secret)
    check(ok[0] == 200 and "SecretList" in ok[2], f"a correctly signed raw request works: {ok}")

    msg = expect_raw_error(raw_request(endpoint, target, create("raw/unsigned"), akid, secret, sign=False),
                           "MissingAuthenticationTokenException")
    check(msg == "Missing Authentication Token", msg)
    msg = expect_raw_error(raw_request(endpoint, target, create("raw/wrongkey"), akid, "not-the-secret"),
                           "InvalidSignatureException")
    check(msg == MISMATCH, msg)
    msg = expect_raw_error(raw_request(endpoint, target, create("raw/stranger"), "AKIANOBODY0000000000", secret),
                           "UnrecognizedClientException")
    check(msg == "The security token included in the request is invalid.", msg)

    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    stale = now - datetime.timedelta(minutes=10)
    msg = expect_raw_error(raw_request(endpoint, target, create("raw/stale"), akid, secret, when=stale),
                           "InvalidSignatureException")
    check(msg.startswith("Signature expired: ") and msg.endswith("- 5 min.)"), msg)

    def swap_body(headers, body):
        return headers, create("raw/tampered2").encode()

    expect_raw_error(raw_request(endpoint, target, create("raw/tampered"), akid, secret, tamper=swap_body),
                     "InvalidSignatureException")

    def swap_target(headers, body):
        headers["X-Amz-Target"] = "secretsmanager.DeleteSecret"
        return headers, body

    expect_raw_error(raw_request(endpoint, target, create("raw/target"), akid, secret, tamper=swap_target),
                     "InvalidSignatureException")

    def drop_signature(headers, body):
        headers["Authorization"] = headers["Authorization"].split(", Signature=")[0]
        return headers, body

    expect_raw_error(raw_request(endpoint, target, create("raw/incomplete"), akid, secret, tamper=drop_signature),
                     "IncompleteSignatureException")

    expect_raw_error(raw_request(endpoint, "secretsmanager.NoSuchThing", create("raw/op"), akid, secret),
                     "UnknownOperationException")
    expect_raw_error(raw_request(endpoint, target, '{"Name": "raw/bad", ', akid, secret), "SerializationException")
    expect_raw_error(raw_request(endpoint, target, '{"Name": 7}', akid, secret), "SerializationException")
    msg = expect_raw_error(raw_request(endpoint, target, '{"Name": "raw/notoken", "SecretString": "v"}', akid, secret),
                           "InvalidRequestException")
    check(msg == TOKEN_MISSING, msg)
    # PutSecretValue and UpdateSecret with a value need the token too (the SDKs fill it in);
    # RotateSecret answers InvalidParameterException. No version is made.
    versions = lambda: len(sm.list_secret_version_ids(SecretId="boto3/story", IncludeDeprecated=True)["Versions"])  # noqa: E731
    before_versions = versions()
    value = {"SecretId": "boto3/story", "SecretString": "no token"}
    for op in ("PutSecretValue", "UpdateSecret"):
        msg = expect_raw_error(raw_request(endpoint, f"secretsmanager.{op}", json.dumps(value), akid, secret),
                               "InvalidRequestException")
        check(msg == TOKEN_MISSING, f"{op}: {msg}")
    rotate = {"SecretId": "boto3/story", "RotationLambdaARN": "arn:aws:lambda:us-east-1:000000000000:function:f"}
    msg = expect_raw_error(raw_request(endpoint, "secretsmanager.RotateSecret", json.dumps(rotate), akid, secret),
                           "InvalidParameterException")
    check(msg == TOKEN_MISSING, f"RotateSecret: {msg}")
    check(versions() == before_versions, "no version without a token")
    check("RotationEnabled" not in sm.describe_secret(SecretId="boto3/story"), "no rotation configured")

    # Operations this server does not serve (the first two are newer than some botocores).
    unserved = [("ListResourcePolicies", {}),
                ("AssociateCrossAccountReplica", {"SecretId": "boto3/story", "ReplicaAccount": "111122223333"})]
    for op, body in unserved:
        expect_raw_error(raw_request(endpoint, f"secretsmanager.{op}", json.dumps(body), akid, secret),
                         "UnknownOperationException")
    expect_error("UnknownOperationException", sm.replicate_secret_to_regions, SecretId="boto3/story",
                 AddReplicaRegions=[{"Region": "eu-west-1"}])
    expect_error("UnknownOperationException", sm.stop_replication_to_replica, SecretId="boto3/story")

    # Raw JSON shapes.
    t = token()
    status, _, body = raw_request(endpoint, target, json.dumps(
        {"Name": "raw/shape", "SecretBinary": base64.b64encode(b"footest").decode(), "ClientRequestToken": t}),
        akid, secret)
    check(status == 200 and body["VersionId"] == t, body)
    status, _, body = raw_request(endpoint, "secretsmanager.GetSecretValue", '{"SecretId": "raw/shape"}', akid, secret)
    check(body["SecretBinary"] == "Zm9vdGVzdA==", body)
    check(isinstance(body["CreatedDate"], (int, float)), body)

    after = len(sm.list_secrets(IncludePlannedDeletion=True)["SecretList"])
    check(after == before + 1, f"refused requests appended nothing ({before} -> {after}, only raw/shape is new)")


def surface(sm):
    """Rotation driven from outside (no function runner on this server), trace F, resource
    policies, LastAccessedDate and the word rules of the list filters."""
    lam = "arn:aws:lambda:us-east-1:000000000000:function:rotate"
    name = f"surface/{uuid.uuid4().hex[:8]}"
    sm.create_secret(
        Name=name, SecretString="v1", Description="payments DB primary", Tags=[{"Key": "team", "Value": "payments"}]
    )
    first = sm.get_secret_value(SecretId=name)["VersionId"]
    msg = expect_error("InvalidRequestException", sm.rotate_secret, SecretId=name)
    check(msg == "No Lambda rotation function ARN is associated with this secret.", msg)
    msg = expect_error(
        "InvalidParameterException", sm.rotate_secret, SecretId="surface/none", RotationLambdaARN=lam,
        RotationRules={"AutomaticallyAfterDays": 1001},
    )
    check(msg == "RotationRules.AutomaticallyAfterDays must be within 1-1000.", msg)
    rules = {"ScheduleExpression": "cron(0 8 ? * MON *)", "Duration": "2h"}
    pending = sm.rotate_secret(SecretId=name, RotationLambdaARN=lam, RotationRules=rules)["VersionId"]
    d = sm.describe_secret(SecretId=name)
    check(d["RotationEnabled"] and d["RotationLambdaARN"] == lam and d["RotationRules"] == rules, d)
    nxt = d["NextRotationDate"].astimezone(datetime.timezone.utc)
    check(nxt.weekday() == 0 and (nxt.hour, nxt.minute) == (8, 0), f"NextRotationDate {nxt} is a Monday 08:00 UTC")
    expect_error("InvalidRequestException", sm.rotate_secret, SecretId=name)
    expect_error("ResourceNotFoundException", sm.get_secret_value, SecretId=name, VersionStage="AWSPENDING")
    sm.put_secret_value(SecretId=name, ClientRequestToken=pending, SecretString="v2", VersionStages=["AWSPENDING"])
    sm.update_secret_version_stage(
        SecretId=name, VersionStage="AWSCURRENT", MoveToVersionId=pending, RemoveFromVersionId=first
    )
    d = sm.describe_secret(SecretId=name)
    check("LastRotatedDate" in d and d["VersionIdsToStages"][pending] == ["AWSCURRENT", "AWSPENDING"], d)
    # Trace F: a default put takes AWSCURRENT and AWSPENDING off the promoted version.
    third = sm.put_secret_value(SecretId=name, SecretString="v3")["VersionId"]
    st = sm.describe_secret(SecretId=name)["VersionIdsToStages"]
    check(st[pending] == ["AWSPREVIOUS"] and st[third] == ["AWSCURRENT"], st)
    msg = expect_error("InvalidRequestException", sm.put_secret_value, SecretId=name)
    check(msg == "You must provide either SecretString or SecretBinary.", msg)
    cancelled = sm.cancel_rotate_secret(SecretId=name)
    check(cancelled["Name"] == name and not sm.describe_secret(SecretId=name)["RotationEnabled"], cancelled)

    # Resource policies: stored, returned as given, checked.
    policy = json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::000000000000:root"},
                       "Action": "secretsmanager:GetSecretValue", "Resource": "*"}],
    })
    public = policy.replace('"arn:aws:iam::000000000000:root"', '"*"')
    check("ResourcePolicy" not in sm.get_resource_policy(SecretId=name), "no policy yet")
    sm.put_resource_policy(SecretId=name, ResourcePolicy=policy, BlockPublicPolicy=True)
    check(sm.get_resource_policy(SecretId=name)["ResourcePolicy"] == policy, "policy returned as put")
    expect_error("PublicPolicyException", sm.put_resource_policy, SecretId=name, ResourcePolicy=public,
                 BlockPublicPolicy=True)
    expect_error("MalformedPolicyDocumentException", sm.put_resource_policy, SecretId=name, ResourcePolicy="{no")
    check(sm.validate_resource_policy(SecretId=name, ResourcePolicy=policy)["PolicyValidationPassed"], "valid")
    bad = sm.validate_resource_policy(ResourcePolicy='{"Statement": [{"Effect": "Allow"}]}')
    check(not bad["PolicyValidationPassed"] and len(bad["ValidationErrors"]) == 2, bad)
    sm.delete_resource_policy(SecretId=name)
    sm.delete_resource_policy(SecretId=name)
    check("ResourcePolicy" not in sm.get_resource_policy(SecretId=name), "policy deleted")

    # LastAccessedDate: a date once the value was read (a write behind the read settles it).
    unread = sm.create_secret(Name=f"{name}-unread", SecretString="x")["ARN"]
    check("LastAccessedDate" not in sm.describe_secret(SecretId=unread), "absent until read")
    sm.get_secret_value(SecretId=name)
    sm.tag_resource(SecretId=name, Tags=[{"Key": "read", "Value": "yes"}])
    accessed = sm.describe_secret(SecretId=name)["LastAccessedDate"].astimezone(datetime.timezone.utc)
    check((accessed.hour, accessed.minute, accessed.second) == (0, 0, 0), f"a date: {accessed}")

    # Filters: words of name, description and tags; prefixes of words; all terms must match.
    def listed(filters):
        return [s["Name"] for s in sm.list_secrets(Filters=filters)["SecretList"]]
    check(name in listed([{"Key": "all", "Values": ["payments db"]}]), "all: two terms")
    check(name in listed([{"Key": "description", "Values": ["PRIM"]}]), "description: case-insensitive prefix")
    check(name not in listed([{"Key": "description", "Values": ["rimary"]}]), "not the middle of a word")
    check(name in listed([{"Key": "all", "Values": ["surface"]}, {"Key": "tag-value", "Values": ["pay"]}]), "AND")
    msg = expect_error("InvalidParameterException", sm.list_secrets, Filters=[{"Key": "name"}])
    check(msg == "Invalid filter values for key: name", msg)


def listing(sm):
    """The list filters' word rules through ListSecrets and BatchGetSecretValue, filter errors,
    LastAccessedDate on ListSecrets and ListSecretVersionIds, and SortBy last-accessed-date."""
    u = "w" + uuid.uuid4().hex[:8]  # a name prefix of this run: no separator, no capital
    seps = [f"{u}{sep}AppZeta{sep}x" for sep in "/_+=.@-"]
    mixed, company, things = f"{u}-AppZeta/x", f"{u}/COMPANY/x", f"{u}/COMPANYthings/x"
    for n in seps + [mixed, company, things]:
        sm.create_secret(Name=n, SecretString="v")
    for n, description in [(f"{u}/d1", "one two"), (f"{u}/d2", "one"), (f"{u}/d3", "two")]:
        sm.create_secret(Name=n, SecretString="v", Description=description)

    def listed(*filters):
        fs = [{"Key": "name", "Values": [u]}] + [{"Key": k, "Values": [v]} for k, v in filters]
        return sorted(s["Name"] for s in sm.list_secrets(Filters=fs)["SecretList"])
    check(listed(("all", "AppZeta")) == sorted(seps), "each kind of separator splits words")
    check(listed(("all", "zeta")) == sorted(seps), "a lower-to-upper transition starts a word")
    check(listed(("all", mixed)) == [mixed], "two kinds of separator make one word")
    check(listed(("all", "+")) == [], "a separator alone matches nothing")
    check(listed(("all", "company")) == [company], "COMPANYthings splits as COMPAN, Ythings")
    check(listed(("all", "Ythings")) == [things], "the last capital starts the next word")
    check(listed(("all", "things")) == [] and listed(("all", "pany")) == [], "not word starts")
    check(listed(("description", "one two")) == [f"{u}/d1"], "all terms of a value must match")
    check(listed(("description", "o t")) == [f"{u}/d1"], "terms are word prefixes")
    check(listed(("description", "one"), ("description", "two")) == [f"{u}/d1"], "filters are ANDed")
    msg = expect_error("ValidationException", sm.list_secrets, Filters=[{"Key": "bogus", "Values": ["x"]}])
    check("Value 'bogus' at 'filters.1.member.key'" in msg, msg)
    msg = expect_error("InvalidParameterException", sm.list_secrets, Filters=[{"Values": ["x"]}])
    check(msg == "Invalid filter key", msg)

    # BatchGetSecretValue with the same filters, paged; reading sets LastAccessedDate.
    filters = [{"Key": "name", "Values": [u]}, {"Key": "all", "Values": ["AppZeta"]}]
    got, kwargs = [], {}
    while True:
        page = sm.batch_get_secret_value(Filters=filters, MaxResults=3, **kwargs)
        check(len(page["SecretValues"]) <= 3 and not page.get("Errors"), page)
        got += [(v["Name"], v["SecretString"]) for v in page["SecretValues"]]
        if "NextToken" not in page:
            break
        kwargs = {"NextToken": page["NextToken"]}
    check(sorted(got) == [(n, "v") for n in sorted(seps)], got)
    expect_error("InvalidParameterException", sm.batch_get_secret_value, SecretIdList=[seps[0]], Filters=filters)
    sm.tag_resource(SecretId=seps[0], Tags=[{"Key": "settle", "Value": "reads"}])  # behind the reads' events
    entries = {s["Name"]: s for s in sm.list_secrets(Filters=[{"Key": "name", "Values": [u]}])["SecretList"]}
    day = entries[seps[0]]["LastAccessedDate"].astimezone(datetime.timezone.utc)
    check((day.hour, day.minute, day.second) == (0, 0, 0), f"a date: {day}")
    check(all(entries[n].get("LastAccessedDate") == entries[seps[0]]["LastAccessedDate"] for n in seps), entries)
    check("LastAccessedDate" not in entries[company], "ListSecrets is no read")
    versions = sm.list_secret_version_ids(SecretId=seps[0])["Versions"]
    check(versions[0]["LastAccessedDate"] == entries[seps[0]]["LastAccessedDate"], versions)
    check("LastAccessedDate" not in sm.list_secret_version_ids(SecretId=company)["Versions"][0], "never read")

    # SortBy last-accessed-date: never read first (by creation), then by the day of the last read.
    ranked = [f"{u}/sort/{i}" for i in range(3)]
    for n in ranked:
        sm.create_secret(Name=n, SecretString="v")
    sm.get_secret_value(SecretId=ranked[0])
    sm.tag_resource(SecretId=ranked[0], Tags=[{"Key": "settle", "Value": "read"}])

    def by_access(order):
        out = sm.list_secrets(Filters=[{"Key": "name", "Values": [f"{u}/sort/"]}], SortBy="last-accessed-date",
                              SortOrder=order)
        return [s["Name"] for s in out["SecretList"]]
    check(by_access("asc") == [ranked[1], ranked[2], ranked[0]], by_access("asc"))
    check(by_access("desc") == [ranked[0], ranked[2], ranked[1]], by_access("desc"))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint", default=os.environ.get("SECRET_LEDGER_ENDPOINT"))
    parser.add_argument("--access-key-id", default=os.environ.get("AWS_ACCESS_KEY_ID"))
    parser.add_argument("--secret-access-key", default=os.environ.get("AWS_SECRET_ACCESS_KEY"))
    parser.add_argument("--credentials-file", help="secret-ledger credentials file (first ACCESS_KEY_ID:SECRET line)")
    args = parser.parse_args()
    akid, secret = args.access_key_id, args.secret_access_key
    if args.credentials_file:
        with open(args.credentials_file) as f:
            line = next(l.strip() for l in f if l.strip() and not l.strip().startswith("#"))
        akid, secret = line.split(":", 1)
    if not (args.endpoint and akid and secret):
        parser.error("need --endpoint and credentials (flags, --credentials-file or environment)")
    endpoint = args.endpoint.rstrip("/")

    sm = client(endpoint, akid, secret)
    steps = [
        ("story", lambda: story(sm)),
        ("binary, ARNs, tags", lambda: binary_arns_tags(sm)),
        ("pagination", lambda: pagination(sm)),
        ("regions", lambda: regions(endpoint, akid, secret)),
        ("raw refusals", lambda: raw_refusals(endpoint, akid, secret, sm)),
        ("rotation, policies, access dates, filters", lambda: surface(sm)),
        ("filters, batch reads, access dates, sorting", lambda: listing(sm)),
    ]
    for name, step in steps:
        try:
            step()
        except Exception as e:  # noqa: BLE001 - report which step failed, then fail
            print(f"FAIL {name}: {type(e).__name__}: {e}", file=sys.stderr)
            print("0 passed, 1 failed", file=sys.stderr)
            return 1
        print(f"ok   {name}")
    print(f"boto3_story: {CHECKS} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
