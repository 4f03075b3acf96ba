//! A ledger in a temp dir with a hand-moved clock and a seeded RNG, plus short helpers.

use std::collections::BTreeMap;
use std::sync::Arc;

use ledger_core::crypto::MasterKey;
use ledger_core::query::GetSecretValue;
use ledger_core::*;
use ledger_store::{Ledger, LedgerOptions, ManualClock, RequestMeta};

pub(crate) const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

pub(crate) struct Fixture {
    pub dir: tempfile::TempDir,
    pub ledger: Option<Ledger>,
    pub clock: Arc<ManualClock>,
    pub scope: Scope,
    pub options: LedgerOptions,
    /// Version ids in creation order, so traces can say v1, v2, ….
    pub created: Vec<String>,
    /// The PostgreSQL database the ledger lives in, instead of the temp dir's sled files.
    pub database_url: Option<String>,
}

pub(crate) fn master() -> MasterKey {
    MasterKey::from_bytes(1, [0x42; 32])
}

/// A 32-character token/version id numbered `n`.
pub(crate) fn tok(n: usize) -> String {
    format!("{n:0>32}")
}

impl Fixture {
    pub(crate) fn new() -> Fixture {
        Fixture::with_options(|_| {})
    }

    pub(crate) fn with_options(tweak: impl FnOnce(&mut LedgerOptions)) -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = Arc::new(ManualClock::new(T0));
        let mut options = LedgerOptions { clock: clock.clone(), rng_seed: Some([7; 32]), ..LedgerOptions::default() };
        tweak(&mut options);
        let ledger = Ledger::open(dir.path(), master(), options.clone()).expect("open ledger");
        Fixture {
            dir,
            ledger: Some(ledger),
            clock,
            scope: Scope::new("us-east-1", "123456789012"),
            options,
            created: Vec::new(),
            database_url: None,
        }
    }

    /// A fixture whose ledger lives in the (empty) PostgreSQL database at `url`.
    pub(crate) fn on_postgres(url: &str) -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = Arc::new(ManualClock::new(T0));
        let options = LedgerOptions { clock: clock.clone(), rng_seed: Some([7; 32]), ..LedgerOptions::default() };
        let mut f = Fixture {
            dir,
            ledger: None,
            clock,
            scope: Scope::new("us-east-1", "123456789012"),
            options,
            created: Vec::new(),
            database_url: Some(url.to_string()),
        };
        f.ledger = Some(f.open_ledger());
        f
    }

    /// Opens the ledger on the fixture's store.
    fn open_ledger(&self) -> Ledger {
        match &self.database_url {
            Some(url) => {
                let store = ledger_pg::PgStore::connect(url, ledger_pg::PgOptions::default()).expect("connect");
                Ledger::open_store(Arc::new(store), master(), self.options.clone()).expect("open ledger")
            }
            None => Ledger::open(self.dir.path(), master(), self.options.clone()).expect("open ledger"),
        }
    }

    pub(crate) fn ledger(&self) -> &Ledger {
        self.ledger.as_ref().expect("open")
    }

    /// The sled tree under the ledger, to forge damaged logs.
    pub(crate) fn tree(&self) -> &sled::Tree {
        sled_tree(self.ledger())
    }

    /// Closes the sled db and opens it again: the projection comes back from disk.
    pub(crate) fn reopen(&mut self) {
        self.ledger.take().expect("open").close().expect("close");
        self.ledger = Some(self.open_ledger());
    }

    pub(crate) fn exec(&mut self, cmd: Command) -> Result<Reply, SmError> {
        let meta = RequestMeta::local(self.scope.clone());
        let reply = self.ledger().execute(cmd, &meta).expect("storage works");
        if let Ok(Reply::Version { version_id, .. } | Reply::Secret { version_id: Some(version_id), .. }) = &reply {
            if !self.created.contains(version_id) {
                self.created.push(version_id.clone());
            }
        }
        reply
    }

    pub(crate) fn create(&mut self, name: &str, value: Option<&str>) -> Result<Reply, SmError> {
        let n = self.created.len() + 1000;
        self.exec(Command::CreateSecret(CreateSecret {
            name: name.into(),
            client_request_token: value.map(|_| tok(n)),
            value: value.map(SecretValue::string),
            ..CreateSecret::default()
        }))
    }

    pub(crate) fn put(
        &mut self,
        id: &str,
        token: &str,
        value: &str,
        stages: Option<&[&str]>,
    ) -> Result<Reply, SmError> {
        self.exec(Command::PutSecretValue(PutSecretValue {
            secret_id: id.into(),
            client_request_token: Some(token.into()),
            value: Some(SecretValue::string(value)),
            version_stages: stages.map(|s| s.iter().map(|l| l.to_string()).collect()),
        }))
    }

    pub(crate) fn stage(
        &mut self,
        id: &str,
        label: &str,
        move_to: Option<&str>,
        remove_from: Option<&str>,
    ) -> Result<Reply, SmError> {
        self.exec(Command::UpdateSecretVersionStage(UpdateSecretVersionStage {
            secret_id: id.into(),
            version_stage: label.into(),
            move_to_version_id: move_to.map(str::to_string),
            remove_from_version_id: remove_from.map(str::to_string),
        }))
    }

    pub(crate) fn get(
        &self,
        id: &str,
        version_id: Option<&str>,
        stage: Option<&str>,
    ) -> Result<(String, SecretValue), SmError> {
        let q = GetSecretValue {
            secret_id: id.into(),
            version_id: version_id.map(str::to_string),
            version_stage: stage.map(str::to_string),
        };
        self.ledger()
            .get_secret_value(&self.scope, &q)
            .expect("storage works")
            .map(|out| (out.location.version_id, out.value))
    }

    pub(crate) fn get_string(&self, id: &str) -> Result<String, SmError> {
        self.get(id, None, None).map(|(_, v)| match v {
            SecretValue::String(s) => s.to_string(),
            SecretValue::Binary(_) => panic!("binary"),
        })
    }

    /// Every version of a secret → its sorted labels (deprecated versions have none).
    pub(crate) fn labels(&self, name: &str) -> BTreeMap<String, Vec<String>> {
        self.ledger().with_state(|s| {
            let secret = s.by_name(&self.scope.region, name).expect("secret exists");
            secret.versions.iter().map(|(id, v)| (id.clone(), v.labels.iter().cloned().collect())).collect()
        })
    }

    /// Labels as a trace line: `v1[AWSPREVIOUS] v2[AWSCURRENT]`, versions in creation order.
    pub(crate) fn trace(&self, name: &str) -> String {
        let labels = self.labels(name);
        self.created
            .iter()
            .enumerate()
            .filter_map(|(i, id)| labels.get(id).map(|l| format!("v{}[{}]", i + 1, l.join(","))))
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub(crate) fn verify_ok(&self) -> u64 {
        match self.ledger().verify(&mut |_, _| {}).expect("storage works") {
            Ok(report) => report.events,
            Err(failure) => panic!("verify failed: {failure}"),
        }
    }
}

/// The sled tree under a ledger on a sled data dir, to forge damaged logs.
pub(crate) fn sled_tree(ledger: &Ledger) -> &sled::Tree {
    ledger.store().as_any().downcast_ref::<ledger_store::SledStore>().expect("a sled store").raw_tree()
}
