//! Resource policies: the checks of PutResourcePolicy and ValidateResourcePolicy. Policies are
//! stored and returned as given; they grant or deny nothing here (the credentials file does).

use serde_json::Value;

use crate::error::SmError;
use crate::limits::POLICY_CHARS_MAX;

/// One finding of ValidateResourcePolicy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub check_name: &'static str,
    pub error_message: String,
}

/// Parses a policy document: a JSON object, or `MalformedPolicyDocumentException`.
pub fn parse(text: &str) -> Result<Value, SmError> {
    match serde_json::from_str::<Value>(text) {
        Ok(doc @ Value::Object(_)) => Ok(doc),
        Ok(_) => Err(SmError::MalformedPolicy("The policy document must be a JSON object.".into())),
        // serde_json names a position, never the text.
        Err(e) => Err(SmError::MalformedPolicy(format!(
            "The policy document is not valid JSON (line {}, column {}).",
            e.line(),
            e.column()
        ))),
    }
}

fn statements(doc: &Value) -> Vec<&Value> {
    match doc.get("Statement") {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => Vec::new(),
    }
}

/// Whether a principal names everyone: `"*"`, or `{"AWS": "*"}` (alone or in a list).
fn is_everyone(principal: &Value) -> bool {
    let star = |v: &Value| match v {
        Value::String(s) => s == "*",
        Value::Array(items) => items.iter().any(|i| i.as_str() == Some("*")),
        _ => false,
    };
    match principal {
        Value::Object(map) => map.get("AWS").is_some_and(star),
        other => star(other),
    }
}

/// Whether the policy grants access to everyone: an `Allow` statement whose principal is
/// everyone and that has no condition.
pub fn is_public(doc: &Value) -> bool {
    statements(doc).into_iter().any(|s| {
        s.get("Effect").and_then(Value::as_str) == Some("Allow")
            && s.get("Principal").is_some_and(is_everyone)
            && s.get("Condition").is_none()
    })
}

/// The grammar checks of ValidateResourcePolicy: what a policy needs to mean anything.
pub fn findings(doc: &Value) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut finding = |error_message: String| out.push(Finding { check_name: "SYNTAX_CHECK", error_message });
    if let Some(version) = doc.get("Version") {
        if !matches!(version.as_str(), Some("2012-10-17" | "2008-10-17")) {
            finding("Version must be 2012-10-17 or 2008-10-17.".into());
        }
    }
    let all = statements(doc);
    if all.is_empty() {
        finding("The policy must contain a Statement (an object or a list of objects).".into());
    }
    for (i, s) in all.iter().enumerate() {
        let n = i + 1;
        if !s.is_object() {
            finding(format!("Statement {n} is not an object."));
            continue;
        }
        if !matches!(s.get("Effect").and_then(Value::as_str), Some("Allow" | "Deny")) {
            finding(format!("Statement {n}: Effect must be Allow or Deny."));
        }
        if s.get("Action").is_none() && s.get("NotAction").is_none() {
            finding(format!("Statement {n}: a resource policy statement needs Action or NotAction."));
        }
        if s.get("Principal").is_none() && s.get("NotPrincipal").is_none() {
            finding(format!("Statement {n}: a resource policy statement needs Principal or NotPrincipal."));
        }
    }
    out
}

/// The length check shared by both operations (before any lookup).
pub fn check_len(text: &str) -> Result<(), SmError> {
    crate::validate::check_len("resourcePolicy", text, 1, POLICY_CHARS_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_policies_and_findings() {
        let public = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}]}"#;
        let doc = parse(public).expect("json");
        assert!(is_public(&doc) && findings(&doc).is_empty());
        let conditioned = r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"*","Condition":{"StringEquals":{"aws:PrincipalAccount":"1"}}}}"#;
        assert!(!is_public(&parse(conditioned).expect("json")));
        let named = r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::1:root"},"Action":"*"}]}"#;
        assert!(!is_public(&parse(named).expect("json")));
        let bad = parse(r#"{"Version":"2020","Statement":[{"Effect":"Maybe"}]}"#).expect("json");
        assert_eq!(findings(&bad).len(), 4);
        assert!(matches!(parse("not json"), Err(SmError::MalformedPolicy(_))));
        assert!(matches!(parse("[1]"), Err(SmError::MalformedPolicy(_))));
    }
}
