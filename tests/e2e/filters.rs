//! ListSecrets filters, with the word rules observed on AWS for `description` and `all`:
//! prefixes of words, AND of the terms of one value and of filters with the same key,
//! separators, case transitions; and the errors for a filter without `Key` or `Values`.

use ledger_core::query::{Filter, ListSecrets};
use ledger_core::*;

use crate::fixture::Fixture;

fn secret(f: &mut Fixture, name: &str, description: Option<&str>, tags: &[(&str, &str)]) {
    f.exec(Command::CreateSecret(CreateSecret {
        name: name.into(),
        description: description.map(str::to_string),
        tags: (!tags.is_empty())
            .then(|| tags.iter().map(|(k, v)| Tag { key: k.to_string(), value: v.to_string() }).collect()),
        ..CreateSecret::default()
    }))
    .unwrap();
}

/// Names of the secrets that match every filter `(key, values)`.
fn names(f: &Fixture, filters: &[(&str, &[&str])]) -> Vec<String> {
    let q = ListSecrets {
        filters: filters
            .iter()
            .map(|(k, v)| Filter { key: k.to_string(), values: v.iter().map(|s| s.to_string()).collect() })
            .collect(),
        sort_by: Some("name".into()),
        ..ListSecrets::default()
    };
    f.ledger().list_secrets(&f.scope, &q).unwrap().secrets.into_iter().map(|s| s.name).collect()
}

#[test]
fn all_finds_names_descriptions_and_tags_by_word_prefix() {
    let mut f = Fixture::new();
    secret(&mut f, "SecretOne", Some("one two"), &[("1", "foo")]);
    secret(&mut f, "second", Some("one and two"), &[("foo", "v")]);
    secret(&mut f, "third", Some("one"), &[]);
    secret(&mut f, "fourth", Some("two"), &[]);
    secret(&mut f, "fifth", Some("DescTwo"), &[]);
    secret(&mut f, "sixth", Some("DescOne"), &[]);
    // Tags count for `all`, by key and by value.
    assert_eq!(names(&f, &[("all", &["foo"])]), ["SecretOne", "second"]);
    // A case-insensitive prefix of a word; not the middle of a word.
    for hit in ["Secret", "secret", "SECRET"] {
        assert_eq!(names(&f, &[("all", &[hit])]), ["SecretOne"], "{hit}");
    }
    assert_eq!(names(&f, &[("all", &["sec"])]), ["SecretOne", "second"]);
    assert!(names(&f, &[("all", &["ret"])]).is_empty());
    assert!(names(&f, &[("all", &["SomeSecret"])]).is_empty());
    // Terms of one value: all must match.
    assert_eq!(names(&f, &[("description", &["one two"])]), ["SecretOne", "second"]);
    assert_eq!(names(&f, &[("description", &["o t"])]), ["SecretOne", "second"]);
    assert_eq!(names(&f, &[("all", &["d t"])]), ["fifth"]);
    // Filters with the same key: AND.
    assert_eq!(names(&f, &[("description", &["one"]), ("description", &["two"])]), ["SecretOne", "second"]);
    // White space separates words whatever follows it.
    secret(&mut f, "seventh", Some("payments DB primary"), &[]);
    assert_eq!(names(&f, &[("all", &["payments db"])]), ["seventh"]);
    assert_eq!(names(&f, &[("description", &["PRIM"])]), ["seventh"]);
    // Values of one filter: OR; `!` negates.
    assert_eq!(names(&f, &[("name", &["third", "fourth"])]), ["fourth", "third"]);
    assert_eq!(names(&f, &[("name", &["!s"]), ("all", &["one"])]), ["SecretOne", "third"]);
}

#[test]
fn separators_and_case_transitions_split_words() {
    let mut f = Fixture::new();
    let forms = ["prod/AppBeta/x", "prod_AppBeta_x", "prod+AppBeta+x", "prod=AppBeta=x", "prod.AppBeta.x"];
    let more = ["prod@AppBeta@x", "prod-AppBeta-x", "prod-AppBeta/x"];
    for name in forms.iter().chain(&more) {
        secret(&mut f, name, None, &[]);
    }
    let mut split: Vec<&str> = forms.iter().chain(&more[..2]).copied().collect();
    split.sort();
    // Two kinds of separator in one name: not split at all.
    assert_eq!(names(&f, &[("all", &["AppBeta"])]), split);
    assert_eq!(names(&f, &[("all", &["Beta"])]), split);
    assert!(names(&f, &[("all", &["+"])]).is_empty(), "a separator alone matches nothing");

    let mut f = Fixture::new();
    for name in ["uat/COMPANY/x", "uat/COMPANYthings/x"] {
        secret(&mut f, name, None, &[]);
    }
    assert_eq!(names(&f, &[("all", &["company"])]), ["uat/COMPANY/x"]);
    for nothing in ["things", "N", "pany"] {
        assert!(names(&f, &[("all", &[nothing])]).is_empty(), "{nothing}");
    }
    assert_eq!(names(&f, &[("all", &["Ythings"])]), ["uat/COMPANYthings/x"]);
    // `name` is a case-sensitive prefix of the whole name.
    assert_eq!(names(&f, &[("name", &["uat/COMPANYt"])]), ["uat/COMPANYthings/x"]);
    assert!(names(&f, &[("name", &["UAT"])]).is_empty());
}
