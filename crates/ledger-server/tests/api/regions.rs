//! Secrets are regional: the credential scope's region selects them, one server serves all.

use crate::common::TestServer;

#[tokio::test]
async fn two_regions_through_one_server_see_separate_secrets() {
    let t = TestServer::start().await;
    let east = t.client("us-east-1");
    let west = t.client("eu-west-1");

    let a = east.create_secret().name("shared/name").secret_string("east").send().await.unwrap();
    let b = west.create_secret().name("shared/name").secret_string("west").send().await.unwrap();
    assert!(a.arn().unwrap().starts_with("arn:aws:secretsmanager:us-east-1:000000000000:secret:shared/name-"));
    assert!(b.arn().unwrap().starts_with("arn:aws:secretsmanager:eu-west-1:000000000000:secret:shared/name-"));

    let got = east.get_secret_value().secret_id("shared/name").send().await.unwrap();
    assert_eq!(got.secret_string(), Some("east"));
    let got = west.get_secret_value().secret_id("shared/name").send().await.unwrap();
    assert_eq!(got.secret_string(), Some("west"));

    east.create_secret().name("only/east").secret_string("e").send().await.unwrap();
    let east_names: Vec<String> =
        east.list_secrets().send().await.unwrap().secret_list().iter().map(|s| s.name().unwrap().to_string()).collect();
    let west_names: Vec<String> =
        west.list_secrets().send().await.unwrap().secret_list().iter().map(|s| s.name().unwrap().to_string()).collect();
    assert_eq!(east_names, ["shared/name", "only/east"]);
    assert_eq!(west_names, ["shared/name"]);
    let err = west.describe_secret().secret_id("only/east").send().await.unwrap_err();
    assert_eq!(aws_sdk_secretsmanager::error::ProvideErrorMetadata::code(&err), Some("ResourceNotFoundException"));
    // An east ARN used from the west is not found either.
    let err = west.describe_secret().secret_id(a.arn().unwrap()).send().await.unwrap_err();
    assert_eq!(aws_sdk_secretsmanager::error::ProvideErrorMetadata::code(&err), Some("ResourceNotFoundException"));

    // Deleting in one region leaves the other alone.
    east.delete_secret().secret_id("shared/name").force_delete_without_recovery(true).send().await.unwrap();
    assert_eq!(west.get_secret_value().secret_id("shared/name").send().await.unwrap().secret_string(), Some("west"));
    t.stop().await;
}
