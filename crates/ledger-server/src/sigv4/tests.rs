//! SigV4 known-answer tests: the AWS test-suite case `post-vanilla` and the Secrets Manager
//! vectors of spec §1.5, plus every refusal path of [`verify`].

use std::time::{Duration, SystemTime};

use axum::http::{HeaderMap, HeaderName, HeaderValue};

use super::*;

const AKID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const AMZ_DATE: &str = "20150830T123600Z";
const BODY: &[u8] = br#"{"SecretId":"MyTestSecret"}"#;
const SIG_LOCALHOST: &str = "25364705c2484248390e1dcdf214ee07cdb6fb83bcf3b7a2329ffd8d91b2a523";
const SIG_AWS_HOST: &str = "850e2e7bf5d9a27ceed85ab70fabb682bb6868d1dffca441f17dd9728b0f9786";

fn signed_at() -> SystemTime {
    parse_amz_date(AMZ_DATE).expect("valid date")
}

fn store() -> CredentialStore {
    let mut store = CredentialStore::default();
    store.insert(AKID, SECRET);
    store
}

fn sm_headers(host: &str, signature: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    let mut put = |k: &'static str, v: &str| {
        h.append(HeaderName::from_static(k), HeaderValue::from_str(v).unwrap());
    };
    put("content-type", "application/x-amz-json-1.1");
    put("host", host);
    put("x-amz-date", AMZ_DATE);
    put("x-amz-target", "secretsmanager.GetSecretValue");
    put("user-agent", "test/1.0");
    put(
        "authorization",
        &format!(
            "AWS4-HMAC-SHA256 Credential={AKID}/20150830/us-east-1/secretsmanager/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature={signature}"
        ),
    );
    h
}

#[test]
fn post_vanilla_matches_the_aws_test_suite() {
    let headers = [("host", "example.amazonaws.com"), ("x-amz-date", AMZ_DATE)];
    let input = SignInput {
        method: "POST",
        path_and_query: "/",
        headers: &headers,
        body: b"",
        access_key_id: AKID,
        secret_access_key: SECRET,
        region: "us-east-1",
        service: "service",
    };
    let sig = expected_signature(&input, signed_at()).unwrap();
    assert_eq!(sig, "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
}

#[test]
fn secrets_manager_vectors_compute() {
    for (host, want) in [("localhost:4566", SIG_LOCALHOST), ("secretsmanager.us-east-1.amazonaws.com", SIG_AWS_HOST)] {
        let headers = [
            ("content-type", "application/x-amz-json-1.1"),
            ("host", host),
            ("x-amz-date", AMZ_DATE),
            ("x-amz-target", "secretsmanager.GetSecretValue"),
        ];
        let input = SignInput {
            method: "POST",
            path_and_query: "/",
            headers: &headers,
            body: BODY,
            access_key_id: AKID,
            secret_access_key: SECRET,
            region: "us-east-1",
            service: SERVICE,
        };
        assert_eq!(expected_signature(&input, signed_at()).unwrap(), want, "host {host}");
    }
}

#[test]
fn secrets_manager_vectors_verify() {
    let now = signed_at() + Duration::from_secs(60);
    for (host, sig) in [("localhost:4566", SIG_LOCALHOST), ("secretsmanager.us-east-1.amazonaws.com", SIG_AWS_HOST)] {
        let verified = verify("POST", "/", &sm_headers(host, sig), BODY, &store(), now).unwrap();
        assert_eq!(verified, Verified { access_key_id: AKID.into(), region: "us-east-1".into() });
    }
}

#[test]
fn host_is_taken_verbatim() {
    // The localhost signature does not verify for another port.
    let err =
        verify("POST", "/", &sm_headers("localhost:4567", SIG_LOCALHOST), BODY, &store(), signed_at()).unwrap_err();
    assert_eq!(err.code(), "InvalidSignatureException");
    assert_eq!(err.to_string(), MISMATCH);
}

#[test]
fn body_and_path_are_signed() {
    let headers = sm_headers("localhost:4566", SIG_LOCALHOST);
    let err = verify("POST", "/", &headers, br#"{"SecretId":"MyTestSecreT"}"#, &store(), signed_at()).unwrap_err();
    assert_eq!(err.code(), "InvalidSignatureException");
    let err = verify("POST", "/prefix", &headers, BODY, &store(), signed_at()).unwrap_err();
    assert_eq!(err.code(), "InvalidSignatureException");
}

#[test]
fn signature_case_and_length_matter() {
    let upper = SIG_LOCALHOST.to_uppercase();
    let err = verify("POST", "/", &sm_headers("localhost:4566", &upper), BODY, &store(), signed_at()).unwrap_err();
    assert_eq!(err.code(), "InvalidSignatureException");
    let short = &SIG_LOCALHOST[..63];
    let err = verify("POST", "/", &sm_headers("localhost:4566", short), BODY, &store(), signed_at()).unwrap_err();
    assert_eq!(err.code(), "InvalidSignatureException");
}

#[test]
fn missing_authorization() {
    let mut headers = sm_headers("localhost:4566", SIG_LOCALHOST);
    headers.remove("authorization");
    let err = verify("POST", "/", &headers, BODY, &store(), signed_at()).unwrap_err();
    assert_eq!(err.code(), "MissingAuthenticationTokenException");
    assert_eq!(err.to_string(), "Missing Authentication Token");
}

#[test]
fn unknown_access_key() {
    let err = verify(
        "POST",
        "/",
        &sm_headers("localhost:4566", SIG_LOCALHOST),
        BODY,
        &CredentialStore::default(),
        signed_at(),
    )
    .unwrap_err();
    assert_eq!(err.code(), "UnrecognizedClientException");
    assert_eq!(err.to_string(), "The security token included in the request is invalid.");
}

#[test]
fn skew() {
    let headers = sm_headers("localhost:4566", SIG_LOCALHOST);
    let late = signed_at() + Duration::from_secs(5 * 60 + 1);
    let err = verify("POST", "/", &headers, BODY, &store(), late).unwrap_err();
    assert_eq!(err.code(), "InvalidSignatureException");
    assert_eq!(
        err.to_string(),
        "Signature expired: 20150830T123600Z is now earlier than 20150830T123601Z (20150830T124101Z - 5 min.)"
    );
    let early = signed_at() - Duration::from_secs(5 * 60 + 1);
    let err = verify("POST", "/", &headers, BODY, &store(), early).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Signature not yet current: 20150830T123600Z is still later than 20150830T123559Z (20150830T123059Z + 5 min.)"
    );
    // Exactly five minutes is still accepted.
    verify("POST", "/", &headers, BODY, &store(), signed_at() + Duration::from_secs(300)).unwrap();
}

#[test]
fn malformed_headers_are_incomplete() {
    let cases = [
        "AWS4-HMAC-SHA256",
        "AWS4-HMAC-SHA1 Credential=AKIDEXAMPLE/20150830/us-east-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/secretsmanager/aws4_request, SignedHeaders=host",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/secretsmanager, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/secretsmanager/aws4_requesT, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/US_EAST/secretsmanager/aws4_request, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/secretsmanager/aws4_request, SignedHeaders=x-amz-date, Signature=00",
        "Bearer abc",
    ];
    for case in cases {
        let mut headers = sm_headers("localhost:4566", SIG_LOCALHOST);
        headers.insert("authorization", HeaderValue::from_str(case).unwrap());
        let err = verify("POST", "/", &headers, BODY, &store(), signed_at()).unwrap_err();
        assert_eq!(err.code(), "IncompleteSignatureException", "{case}: {err}");
    }
}

#[test]
fn spaces_after_commas_are_optional() {
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={AKID}/20150830/us-east-1/secretsmanager/aws4_request,SignedHeaders=content-type;host;x-amz-date;x-amz-target,Signature={SIG_LOCALHOST}"
    );
    let mut headers = sm_headers("localhost:4566", SIG_LOCALHOST);
    headers.insert("authorization", HeaderValue::from_str(&auth).unwrap());
    verify("POST", "/", &headers, BODY, &store(), signed_at()).unwrap();
}

#[test]
fn missing_date_and_scope_date_mismatch() {
    let mut headers = sm_headers("localhost:4566", SIG_LOCALHOST);
    headers.remove("x-amz-date");
    let err = verify("POST", "/", &headers, BODY, &store(), signed_at()).unwrap_err();
    assert_eq!(err.code(), "IncompleteSignatureException");

    let mut headers = sm_headers("localhost:4566", SIG_LOCALHOST);
    headers.insert("x-amz-date", HeaderValue::from_static("20150831T123600Z"));
    let err = verify("POST", "/", &headers, BODY, &store(), signed_at()).unwrap_err();
    assert_eq!(err.code(), "InvalidSignatureException");
    assert!(err.to_string().starts_with("Date in Credential scope does not match"), "{err}");
}

#[test]
fn a_signed_header_that_is_absent_fails() {
    let mut headers = sm_headers("localhost:4566", SIG_LOCALHOST);
    headers.remove("x-amz-target");
    let err = verify("POST", "/", &headers, BODY, &store(), signed_at()).unwrap_err();
    assert_eq!(err.code(), "InvalidSignatureException");
}

#[test]
fn dates_round_trip() {
    for text in ["19700101T000000Z", "20150830T123600Z", "20000229T235959Z", "20991231T000001Z"] {
        assert_eq!(format_amz_date(parse_amz_date(text).unwrap()), text);
    }
    for bad in ["20150830T123600", "2015-08-30T12:36:00Z", "20151330T123600Z", "2015083xT123600Z", ""] {
        assert!(parse_amz_date(bad).is_none(), "{bad}");
    }
    assert_eq!(
        parse_amz_date("20150830T123600Z").unwrap(),
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160)
    );
}

proptest::proptest! {
    /// The fast path writes the same canonical request as the crate's signer for every request it
    /// takes, and declines the shapes it does not take.
    #[test]
    fn the_fast_path_signs_as_the_crate_does(
        names in proptest::collection::btree_set("[a-z][a-z0-9-]{0,12}", 1..6),
        values in proptest::collection::vec("[ -~]{0,8}( {1,3}[ -~]{0,8}){0,3}", 6),
        body in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        region in "[a-z]{2}-[a-z]{4,9}-[1-9]",
        shuffle in proptest::bool::ANY,
        dated in proptest::bool::ANY,
        path in proptest::sample::select(vec!["/", "/x", "/?a=b"]),
    ) {
        let mut headers: Vec<(&str, &str)> = names
            .iter()
            .filter(|n| {
                !matches!(
                    n.as_str(),
                    "x-amz-content-sha256" | "x-amz-security-token" | "authorization" | "host" | "x-amz-date"
                )
            })
            .zip(&values)
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        if dated {
            headers.push(("x-amz-date", AMZ_DATE));
        }
        headers.push(("host", "localhost:4590"));
        headers.sort();
        headers.dedup_by(|a, b| a.0 == b.0);
        if shuffle {
            headers.reverse();
        }
        let input = SignInput {
            method: "POST",
            path_and_query: path,
            headers: &headers,
            body: &body,
            access_key_id: AKID,
            secret_access_key: SECRET,
            region: &region,
            service: SERVICE,
        };
        let keys = store();
        match fast_signature(&keys, &input, signed_at()) {
            Some(fast) => {
                proptest::prop_assert_eq!(Some(fast), expected_signature(&input, signed_at()).ok());
                // And again from the remembered key.
                proptest::prop_assert_eq!(
                    fast_signature(&keys, &input, signed_at()),
                    expected_signature(&input, signed_at()).ok()
                );
            }
            None => proptest::prop_assert!(path != "/" || (shuffle && headers.len() > 1) || !dated),
        }
    }
}

/// An empty-bodied `POST /` of Secrets Manager signed by `access_key_id` for `region`.
fn empty_post<'a>(headers: &'a [(&'a str, &'a str)], access_key_id: &'a str, region: &'a str) -> SignInput<'a> {
    SignInput {
        method: "POST",
        path_and_query: "/",
        headers,
        body: b"",
        access_key_id,
        secret_access_key: SECRET,
        region,
        service: SERVICE,
    }
}

#[test]
fn signing_keys_are_remembered_within_a_bound() {
    let keys = store();
    let headers = [("host", "localhost"), ("x-amz-date", AMZ_DATE)];
    // One key per access key, day and region: a second request of the same scope reuses it,
    // another day derives another.
    for at in [signed_at(), signed_at() + Duration::from_secs(60), signed_at() + Duration::from_secs(86_400)] {
        let date = format_amz_date(at);
        let headers = [("host", "localhost"), ("x-amz-date", date.as_str())];
        let input = empty_post(&headers, AKID, "us-east-1");
        assert_eq!(fast_signature(&keys, &input, at), expected_signature(&input, at).ok());
    }
    assert_eq!(keys.signing_keys_held(), 2);
    for i in 0..1100 {
        let region = format!("us-east-{i}");
        let input = empty_post(&headers, AKID, &region);
        assert_eq!(fast_signature(&keys, &input, signed_at()), expected_signature(&input, signed_at()).ok());
    }
    // At most eight scopes per key id (and 1,024 in all).
    assert!(keys.signing_keys_held() <= 8, "{}", keys.signing_keys_held());
    // An unknown key has no signing key.
    let input = empty_post(&headers, "AKIDUNKNOWN", "us-east-1");
    assert_eq!(fast_signature(&keys, &input, signed_at()), None);
}

/// `sm_headers` with another access key id or region in the credential scope.
fn headers_for(akid: &str, region: &str, signature: &str) -> HeaderMap {
    let mut h = sm_headers("localhost:4566", signature);
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={akid}/20150830/{region}/secretsmanager/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature={signature}"
    );
    h.insert("authorization", HeaderValue::from_str(&auth).unwrap());
    h
}

#[test]
fn a_remembered_signing_key_verifies_only_its_own_key_region_and_signature() {
    let mut keys = store();
    keys.insert("AKIDOTHER", "another secret access key, as long as the first one");
    let now = signed_at() + Duration::from_secs(60);
    // Verified once: the key of (AKID, day, us-east-1) is remembered.
    assert!(verify("POST", "/", &headers_for(AKID, "us-east-1", SIG_LOCALHOST), BODY, &keys, now).is_ok());
    assert_eq!(keys.signing_keys_held(), 1);
    // The same signature under another key id or region is refused, and so is one a digit longer.
    for (akid, region, sig) in [
        ("AKIDOTHER", "us-east-1", SIG_LOCALHOST.to_string()),
        (AKID, "eu-west-1", SIG_LOCALHOST.to_string()),
        (AKID, "us-east-1", format!("{SIG_LOCALHOST}0")),
    ] {
        let err = verify("POST", "/", &headers_for(akid, region, &sig), BODY, &keys, now).unwrap_err();
        assert_eq!(err.code(), "InvalidSignatureException", "{akid} {region} {sig}");
    }
    // Refused requests leave nothing behind: only verified keys are remembered.
    assert_eq!(keys.signing_keys_held(), 1);
    for i in 0..50 {
        let region = format!("us-made-up-{i}");
        assert!(verify("POST", "/", &headers_for(AKID, &region, SIG_LOCALHOST), BODY, &keys, now).is_err());
    }
    assert_eq!(keys.signing_keys_held(), 1);
    // And the remembered key still verifies.
    assert!(verify("POST", "/", &headers_for(AKID, "us-east-1", SIG_LOCALHOST), BODY, &keys, now).is_ok());
}
