#!/usr/bin/env python3
"""boto3 and the AWS CLI against `secret-ledger serve --tls-cert --tls-key`, with a private CA
made here (the `cryptography` package): trusted through verify=/--ca-bundle, refused without
it; SIGHUP serves a new certificate; plain HTTP beyond loopback is refused at start.

    python3 tools/boto3_tls.py --bin target/debug/secret-ledger
"""

import argparse
import datetime
import ipaddress
import os
import signal
import subprocess
import sys
import tempfile
import time

import boto3
import botocore.config
import botocore.exceptions
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CHECKS = 0


def check(ok, what):
    global CHECKS
    if not ok:
        print(f"FAIL {what}", file=sys.stderr)
        sys.exit(1)
    CHECKS += 1
    print(f"ok   {what}")


def make_ca(work, name):
    """A CA and a server certificate for 127.0.0.1 / localhost; returns (cert, key, ca) paths."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"secret-ledger test CA {name}")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = tuple(os.path.join(work, f"{name}.{ext}") for ext in ("crt", "key", "ca.pem"))
    with open(paths[0], "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(paths[1], "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(paths[2], "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    return paths


def client(endpoint, akid, secret, verify):
    return boto3.client(
        "secretsmanager",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=akid,
        aws_secret_access_key=secret,
        verify=verify,
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default="target/debug/secret-ledger")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="secret-ledger-tls-")
    cert, key, ca = make_ca(work, "one")
    data = os.path.join(work, "data")

    # Plain HTTP beyond loopback: refused at start, saying how to proceed.
    refused = subprocess.run([args.bin, "serve", "--listen", "0.0.0.0:0", "--data-dir", data],
                             capture_output=True, text=True, timeout=60)
    check(refused.returncode != 0 and "--insecure-http" in refused.stderr, "plain HTTP on 0.0.0.0 refused")

    out = open(os.path.join(work, "stdout"), "w+")
    err = open(os.path.join(work, "stderr"), "w+")
    server = subprocess.Popen([args.bin, "serve", "--listen", "127.0.0.1:0", "--data-dir", data,
                               "--tls-cert", cert, "--tls-key", key], stdout=out, stderr=err)
    try:
        endpoint = None
        for _ in range(300):
            out.seek(0)
            line = out.readline()
            if line.startswith("listening on "):
                endpoint = line.split()[-1]
                break
            if server.poll() is not None:
                err.seek(0)
                sys.exit(f"server exited early: {err.read()}")
            time.sleep(0.1)
        check(endpoint is not None and endpoint.startswith("https://"), f"server says {endpoint}")
        akid, secret = open(os.path.join(data, "credentials")).read().split("\n")[-2].split(":", 1)

        sm = client(endpoint, akid, secret, ca)
        sm.create_secret(Name="tls/db", SecretString="over-tls")
        check(sm.get_secret_value(SecretId="tls/db")["SecretString"] == "over-tls", "boto3 with verify=ca.pem")
        try:
            client(endpoint, akid, secret, True).list_secrets()
            check(False, "a client without the CA is refused")
        except botocore.exceptions.SSLError:
            check(True, "a client without the CA is refused (SSLError)")

        env = dict(os.environ, AWS_ACCESS_KEY_ID=akid, AWS_SECRET_ACCESS_KEY=secret, AWS_DEFAULT_REGION="us-east-1")
        cli = subprocess.run(["aws", "secretsmanager", "get-secret-value", "--endpoint-url", endpoint,
                              "--ca-bundle", ca, "--secret-id", "tls/db", "--query", "SecretString",
                              "--output", "text"], capture_output=True, text=True, env=env, timeout=120)
        check(cli.returncode == 0 and cli.stdout.strip() == "over-tls", f"AWS CLI with --ca-bundle {cli.stderr}")

        # SIGHUP: new files, new certificate for new connections.
        cert2, key2, ca2 = make_ca(work, "two")
        os.replace(cert2, cert)
        os.replace(key2, key)
        server.send_signal(signal.SIGHUP)
        for _ in range(50):
            try:
                value = client(endpoint, akid, secret, ca2).get_secret_value(SecretId="tls/db")["SecretString"]
                break
            except botocore.exceptions.SSLError:
                time.sleep(0.1)
        else:
            value = None
        check(value == "over-tls", "after SIGHUP the new certificate is served")
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=60)
    check(code == 0, "server stopped cleanly on SIGTERM")
    print(f"boto3_tls: {CHECKS} checks passed")


if __name__ == "__main__":
    main()
