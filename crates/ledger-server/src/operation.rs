//! Every operation the server answers, parsed once from `X-Amz-Target`: the Secrets Manager
//! operations under `secretsmanager.` and the audit operations under `SecretLedger.`.

/// The target prefix of the Secrets Manager operations.
pub const SECRETS_MANAGER_PREFIX: &str = "secretsmanager.";
/// The target prefix of the audit operations.
pub const AUDIT_PREFIX: &str = "SecretLedger.";

/// What an operation does, for access scopes and dispatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A Secrets Manager operation that changes nothing (allowed to an `ro` key).
    Read,
    /// A Secrets Manager operation that appends events.
    Write,
    /// A `SecretLedger.*` audit operation (reads the log; refused to `noaudit` keys).
    Audit,
}

macro_rules! operations {
    ($($op:ident: $kind:ident),* $(,)?) => {
        /// One operation, named as in its `X-Amz-Target`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Operation {
            $($op,)*
        }

        impl Operation {
            /// Every operation, Secrets Manager's first.
            pub const ALL: &'static [Operation] = &[$(Operation::$op,)*];

            /// The name after the target prefix.
            pub fn name(self) -> &'static str {
                match self {
                    $(Operation::$op => stringify!($op),)*
                }
            }

            pub fn kind(self) -> Kind {
                match self {
                    $(Operation::$op => Kind::$kind,)*
                }
            }
        }
    };
}

operations! {
    CreateSecret: Write,
    PutSecretValue: Write,
    GetSecretValue: Read,
    BatchGetSecretValue: Read,
    DescribeSecret: Read,
    ListSecretVersionIds: Read,
    ListSecrets: Read,
    UpdateSecret: Write,
    UpdateSecretVersionStage: Write,
    DeleteSecret: Write,
    RestoreSecret: Write,
    TagResource: Write,
    UntagResource: Write,
    GetRandomPassword: Read,
    RotateSecret: Write,
    CancelRotateSecret: Write,
    PutResourcePolicy: Write,
    GetResourcePolicy: Read,
    DeleteResourcePolicy: Write,
    ValidateResourcePolicy: Read,
    History: Audit,
    State: Audit,
    Export: Audit,
    Checkpoint: Audit,
    Prove: Audit,
    Verify: Audit,
}

impl Operation {
    /// The operation a whole `X-Amz-Target` names, if this server answers it.
    pub fn from_target(target: &str) -> Option<Operation> {
        let (prefix, name) = match target.strip_prefix(SECRETS_MANAGER_PREFIX) {
            Some(name) => (SECRETS_MANAGER_PREFIX, name),
            None => (AUDIT_PREFIX, target.strip_prefix(AUDIT_PREFIX)?),
        };
        Operation::ALL.iter().copied().find(|op| op.name() == name && op.prefix() == prefix)
    }

    /// The Secrets Manager operation called `name` (no prefix).
    pub fn secrets_manager(name: &str) -> Option<Operation> {
        Operation::from_target(&format!("{SECRETS_MANAGER_PREFIX}{name}"))
    }

    /// The target prefix the operation is answered under.
    pub fn prefix(self) -> &'static str {
        match self.kind() {
            Kind::Audit => AUDIT_PREFIX,
            Kind::Read | Kind::Write => SECRETS_MANAGER_PREFIX,
        }
    }

    /// The IAM-style action of the operation, as refusals name it: `secretsmanager:GetSecretValue`,
    /// `secretledger:History`.
    pub fn action(self) -> String {
        match self.kind() {
            Kind::Audit => format!("secretledger:{}", self.name()),
            Kind::Read | Kind::Write => format!("secretsmanager:{}", self.name()),
        }
    }

    /// The input member that names the secret: `Name` for `CreateSecret`, else `SecretId`.
    pub fn secret_member(self) -> &'static str {
        if self == Operation::CreateSecret {
            "Name"
        } else {
            "SecretId"
        }
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_to_their_operation_and_back() {
        for &op in Operation::ALL {
            let target = format!("{}{}", op.prefix(), op.name());
            assert_eq!(Operation::from_target(&target), Some(op), "{target}");
        }
        assert_eq!(Operation::ALL.iter().filter(|op| op.kind() == Kind::Audit).count(), 6);
        assert_eq!(Operation::ALL.iter().filter(|op| op.kind() == Kind::Read).count(), 8);
        for bad in ["", "secretsmanager.", "secretsmanager.History", "SecretLedger.GetSecretValue", "x.CreateSecret"] {
            assert_eq!(Operation::from_target(bad), None, "{bad}");
        }
    }
}
