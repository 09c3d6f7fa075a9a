//! The metadata database: `<data-root>/meta.redb` (redb).
//!
//! # Format (schema version 2)
//!
//! One redb file with these tables, every key a UTF-8 string and every value a JSON document
//! (JSON so that a record can gain optional fields without a migration):
//!
//! | table       | key                                         | value |
//! |-------------|---------------------------------------------|-------|
//! | `meta`      | `schema_version`, `snapshot_seq`            | decimal string |
//! | `images`    | full image name (`docker.io/library/busybox:latest`; untagged images as `dangling@sha256:<config>`) | [`ImageRecord`]: target descriptor, labels, created/updated |
//! | `content`   | blob digest `sha256:<hex>`                  | [`ContentRecord`]: labels (GC references live here, as containerd's `containerd.io/gc.ref.*`) |
//! | `snapshots` | snapshot key or committed name (one key space) | [`SnapshotRecord`]: numeric id (the directory), kind, parent, labels |
//! | `leases`    | lease id                                    | [`LeaseRecord`]: content and snapshots an operation in progress holds against GC |
//! | `containers` | container id (64 hex)                      | `containers::ContainerRecord`: config, host config, name, state, restart count (since version 2) |
//!
//! # Versioning and migration rule
//!
//! [`SCHEMA_VERSION`] is written on creation. On open:
//! - no version (a new file) → the tables are created and the current version is written;
//! - an older version → each migration step `n → n+1` runs in order, all in one write
//!   transaction, so a crash leaves either the old or the new schema;
//! - a newer version → opening fails ([`Error::SchemaTooNew`]): a downgrade is never attempted,
//!   because an older skiffd cannot know what a newer one stored.
//!
//! Steps: `1 → 2` adds the `containers` table (nothing else changes).
//!
//! Leases do not survive a restart: every operation that held one died with the old process, so
//! [`MetadataStore::open`] drops them and the next garbage collection removes what they held.

use std::path::Path;

use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::ErrorKind;

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: u64 = 2;

const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
const IMAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("images");
const CONTENT: TableDefinition<&str, &[u8]> = TableDefinition::new("content");
const SNAPSHOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshots");
const LEASES: TableDefinition<&str, &[u8]> = TableDefinition::new("leases");
const CONTAINERS: TableDefinition<&str, &[u8]> = TableDefinition::new("containers");

/// The record tables, for the generic accessors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// [`ImageRecord`]s by name.
    Images,
    /// [`ContentRecord`]s by digest.
    Content,
    /// [`SnapshotRecord`]s by key.
    Snapshots,
    /// [`LeaseRecord`]s by id.
    Leases,
    /// Container records by id.
    Containers,
}

impl Table {
    fn def(self) -> TableDefinition<'static, &'static str, &'static [u8]> {
        match self {
            Table::Images => IMAGES,
            Table::Content => CONTENT,
            Table::Snapshots => SNAPSHOTS,
            Table::Leases => LEASES,
            Table::Containers => CONTAINERS,
        }
    }
}

/// Errors of the metadata database.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// redb failed (open, transaction, table, storage or commit).
    #[error("metadata database {op}")]
    Db {
        /// What was being done.
        op: &'static str,
        /// redb's error.
        #[source]
        source: Box<redb::Error>,
    },
    /// A stored record is not the JSON this build expects.
    #[error("corrupt metadata record {key:?}")]
    Corrupt {
        /// The record's key.
        key: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// The file was written by a newer skiffd.
    #[error(
        "metadata schema version {found} is newer than this skiffd supports ({SCHEMA_VERSION})"
    )]
    SchemaTooNew {
        /// The version in the file.
        found: u64,
    },
}

impl Error {
    /// The service-boundary class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Db { .. } | Error::Corrupt { .. } | Error::SchemaTooNew { .. } => {
                ErrorKind::Internal
            }
        }
    }
}

fn db_err<E: Into<redb::Error>>(op: &'static str) -> impl FnOnce(E) -> Error {
    move |e| Error::Db {
        op,
        source: Box::new(e.into()),
    }
}

/// An OCI descriptor (the fields the stores use).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    /// The media type of the referenced blob.
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// The blob's digest.
    pub digest: crate::digest::Digest,
    /// The blob's size in bytes.
    pub size: u64,
    /// The platform, for entries of an index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<serde_json::Value>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// An image: a name pointing at a manifest or index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The full name (`docker.io/library/busybox:latest`, or `dangling@sha256:…`).
    pub name: String,
    /// The manifest or index the name points at.
    pub target: Descriptor,
    /// The config digest of the selected platform's manifest: docker's image id.
    pub config: crate::digest::Digest,
    /// Free-form labels.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// Unix seconds of creation.
    pub created: i64,
    /// Unix seconds of the last change of target (docker's `LastTagTime`).
    pub updated: i64,
}

/// Metadata kept for a blob beside the file itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentRecord {
    /// Labels, e.g. `containerd.io/uncompressed=<diffID>`.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// The kind of a snapshot (containerd's three kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SnapshotKind {
    /// Writable, not yet committed.
    Active,
    /// Read-only view of a parent.
    View,
    /// Immutable; the only kind that can be a parent.
    Committed,
}

/// A snapshot's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    /// The directory number under `snapshots/overlay/`.
    pub id: u64,
    /// Active, view or committed.
    pub kind: SnapshotKind,
    /// The parent's key (a committed snapshot), if any.
    pub parent: Option<String>,
    /// Labels (`skiff.size` = uncompressed bytes of the applied layer).
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// Unix seconds of creation.
    pub created: i64,
}

/// What an operation in progress holds against garbage collection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// Blob digests.
    #[serde(default)]
    pub content: Vec<String>,
    /// Snapshot keys.
    #[serde(default)]
    pub snapshots: Vec<String>,
}

/// The metadata database.
#[derive(Debug)]
pub struct MetadataStore {
    db: Database,
}

/// A write transaction handed to [`MetadataStore::write`].
pub struct Writer<'a> {
    txn: &'a redb::WriteTransaction,
}

impl std::fmt::Debug for Writer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Writer")
    }
}

impl MetadataStore {
    /// Opens (or creates) the database at `path`, migrating it to [`SCHEMA_VERSION`] and dropping
    /// leases left by a previous process.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let db = Database::create(path).map_err(db_err("open"))?;
        let store = Self { db };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&self) -> Result<(), Error> {
        let txn = self.db.begin_write().map_err(db_err("begin write"))?;
        {
            let mut meta = txn.open_table(META).map_err(db_err("open meta"))?;
            let found = meta
                .get("schema_version")
                .map_err(db_err("read schema version"))?
                .map(|v| v.value().parse::<u64>().unwrap_or(0));
            match found {
                Some(v) if v > SCHEMA_VERSION => return Err(Error::SchemaTooNew { found: v }),
                // Each step `n → n+1` runs in order, in this transaction.
                Some(v) => {
                    if v < 2 {
                        migrate_1_to_2(&txn)?;
                    }
                    meta.insert("schema_version", SCHEMA_VERSION.to_string().as_str())
                        .map_err(db_err("write schema version"))?;
                }
                None => {
                    meta.insert("schema_version", SCHEMA_VERSION.to_string().as_str())
                        .map_err(db_err("write schema version"))?;
                }
            }
            for table in [
                Table::Images,
                Table::Content,
                Table::Snapshots,
                Table::Containers,
            ] {
                txn.open_table(table.def())
                    .map_err(db_err("create table"))?;
            }
            // Leases die with the process that held them.
            txn.delete_table(LEASES).map_err(db_err("drop leases"))?;
            txn.open_table(LEASES).map_err(db_err("create leases"))?;
        }
        txn.commit().map_err(db_err("commit migration"))
    }

    /// The schema version stored in the file.
    pub fn schema_version(&self) -> Result<u64, Error> {
        let txn = self.db.begin_read().map_err(db_err("begin read"))?;
        let meta = txn.open_table(META).map_err(db_err("open meta"))?;
        let v = meta
            .get("schema_version")
            .map_err(db_err("read schema version"))?
            .map(|v| v.value().parse::<u64>().unwrap_or(0))
            .unwrap_or(0);
        Ok(v)
    }

    /// Reads one record.
    pub fn get<T: DeserializeOwned>(&self, table: Table, key: &str) -> Result<Option<T>, Error> {
        let txn = self.db.begin_read().map_err(db_err("begin read"))?;
        let t = txn.open_table(table.def()).map_err(db_err("open table"))?;
        let v = t.get(key).map_err(db_err("get"))?;
        v.map(|v| decode(key, v.value())).transpose()
    }

    /// Reads every record of a table, in key order.
    pub fn list<T: DeserializeOwned>(&self, table: Table) -> Result<Vec<(String, T)>, Error> {
        let txn = self.db.begin_read().map_err(db_err("begin read"))?;
        let t = txn.open_table(table.def()).map_err(db_err("open table"))?;
        let mut out = Vec::new();
        for row in t.iter().map_err(db_err("iterate"))? {
            let (k, v) = row.map_err(db_err("iterate"))?;
            let key = k.value().to_owned();
            let rec = decode(&key, v.value())?;
            out.push((key, rec));
        }
        Ok(out)
    }

    /// Runs `f` in one write transaction; the changes are committed only if `f` returns `Ok`.
    pub fn write<T, E: From<Error>>(
        &self,
        f: impl FnOnce(&mut Writer<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let txn = self.db.begin_write().map_err(db_err("begin write"))?;
        let out = {
            let mut w = Writer { txn: &txn };
            f(&mut w)?
        };
        txn.commit().map_err(db_err("commit"))?;
        Ok(out)
    }

    /// Writes one record.
    pub fn put<T: Serialize>(&self, table: Table, key: &str, value: &T) -> Result<(), Error> {
        self.write(|w| w.put(table, key, value))
    }

    /// Deletes one record; whether it existed.
    pub fn delete(&self, table: Table, key: &str) -> Result<bool, Error> {
        self.write(|w| w.delete(table, key))
    }
}

impl Writer<'_> {
    /// Reads one record inside the transaction.
    pub fn get<T: DeserializeOwned>(&self, table: Table, key: &str) -> Result<Option<T>, Error> {
        let t = self
            .txn
            .open_table(table.def())
            .map_err(db_err("open table"))?;
        let v = t.get(key).map_err(db_err("get"))?;
        v.map(|v| decode(key, v.value())).transpose()
    }

    /// Reads every record of a table inside the transaction.
    pub fn list<T: DeserializeOwned>(&self, table: Table) -> Result<Vec<(String, T)>, Error> {
        let t = self
            .txn
            .open_table(table.def())
            .map_err(db_err("open table"))?;
        let mut out = Vec::new();
        for row in t.iter().map_err(db_err("iterate"))? {
            let (k, v) = row.map_err(db_err("iterate"))?;
            let key = k.value().to_owned();
            let rec = decode(&key, v.value())?;
            out.push((key, rec));
        }
        Ok(out)
    }

    /// Writes one record.
    pub fn put<T: Serialize>(&mut self, table: Table, key: &str, value: &T) -> Result<(), Error> {
        let bytes = serde_json::to_vec(value).map_err(|source| Error::Corrupt {
            key: key.to_owned(),
            source,
        })?;
        let mut t = self
            .txn
            .open_table(table.def())
            .map_err(db_err("open table"))?;
        t.insert(key, bytes.as_slice()).map_err(db_err("insert"))?;
        Ok(())
    }

    /// Deletes one record; whether it existed.
    pub fn delete(&mut self, table: Table, key: &str) -> Result<bool, Error> {
        let mut t = self
            .txn
            .open_table(table.def())
            .map_err(db_err("open table"))?;
        let existed = t.remove(key).map_err(db_err("remove"))?.is_some();
        Ok(existed)
    }

    /// Takes the next value of a counter in the `meta` table (starting at 1).
    pub fn next_sequence(&mut self, name: &str) -> Result<u64, Error> {
        let mut meta = self.txn.open_table(META).map_err(db_err("open meta"))?;
        let cur = meta
            .get(name)
            .map_err(db_err("read sequence"))?
            .map(|v| v.value().parse::<u64>().unwrap_or(0))
            .unwrap_or(0);
        let next = cur + 1;
        meta.insert(name, next.to_string().as_str())
            .map_err(db_err("write sequence"))?;
        Ok(next)
    }
}

/// Schema 1 → 2: the `containers` table appears; no existing record changes.
fn migrate_1_to_2(txn: &redb::WriteTransaction) -> Result<(), Error> {
    txn.open_table(CONTAINERS)
        .map_err(db_err("create containers table"))?;
    Ok(())
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|source| Error::Corrupt {
        key: key.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_versions_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.redb");
        {
            let m = MetadataStore::open(&path).unwrap();
            assert_eq!(m.schema_version().unwrap(), SCHEMA_VERSION);
            m.put(Table::Content, "k", &ContentRecord::default())
                .unwrap();
            m.put(Table::Leases, "l", &LeaseRecord::default()).unwrap();
        }
        let m = MetadataStore::open(&path).unwrap();
        assert!(
            m.get::<ContentRecord>(Table::Content, "k")
                .unwrap()
                .is_some()
        );
        // Leases are dropped on open.
        assert!(m.list::<LeaseRecord>(Table::Leases).unwrap().is_empty());
    }

    #[test]
    fn migrates_version_1() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.redb");
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert("schema_version", "1")
                .unwrap();
            txn.open_table(CONTENT)
                .unwrap()
                .insert("sha256:x", b"{}".as_slice())
                .unwrap();
            txn.commit().unwrap();
        }
        let m = MetadataStore::open(&path).unwrap();
        assert_eq!(m.schema_version().unwrap(), 2);
        assert!(
            m.get::<ContentRecord>(Table::Content, "sha256:x")
                .unwrap()
                .is_some()
        );
        assert!(
            m.list::<serde_json::Value>(Table::Containers)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn refuses_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.redb");
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert("schema_version", "99")
                .unwrap();
            txn.commit().unwrap();
        }
        let err = MetadataStore::open(&path).unwrap_err();
        assert!(matches!(err, Error::SchemaTooNew { found: 99 }), "{err}");
    }

    #[test]
    fn write_is_atomic() {
        let dir = tempfile::tempdir().unwrap();
        let m = MetadataStore::open(&dir.path().join("meta.redb")).unwrap();
        let r: Result<(), Error> = m.write(|w| {
            w.put(Table::Content, "a", &ContentRecord::default())?;
            Err(Error::SchemaTooNew { found: 0 })
        });
        assert!(r.is_err());
        assert!(
            m.get::<ContentRecord>(Table::Content, "a")
                .unwrap()
                .is_none()
        );
        let n1 = m.write(|w| w.next_sequence("s")).unwrap();
        let n2 = m.write(|w| w.next_sequence("s")).unwrap();
        assert_eq!((n1, n2), (1, 2));
    }
}
