//! Module versions: immutable, identified by the sha256 of their bytes, owned by a
//! tenant under a module name. The compiled artifact is cached beside them so a
//! restart does not recompile.

use serde::{Deserialize, Serialize};

use super::{from_json, key, to_json, Result, Store};

/// Which module version: tenant, module name, version id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModuleKey {
    /// Owning tenant.
    pub tenant: String,
    /// Module name, unique within the tenant.
    pub name: String,
    /// Version id: lowercase hex sha256 of the component bytes.
    pub version: String,
}

impl std::fmt::Display for ModuleKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}@{}",
            self.tenant,
            self.name,
            &self.version[..12.min(self.version.len())]
        )
    }
}

/// What the registry knows of an uploaded version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleVersion {
    /// Owning tenant.
    pub tenant: String,
    /// Module name.
    pub name: String,
    /// sha256 of the bytes, hex.
    pub version: String,
    /// Size of the component in bytes.
    pub size: u64,
    /// Token name of the uploader.
    pub uploaded_by: String,
    /// Upload time, Unix milliseconds.
    pub uploaded_at_ms: u64,
    /// Free text from the uploader.
    pub description: String,
    /// The WIT world it implements, e.g. "switchyard:callctl/call-policy@0.1.0".
    pub world: String,
}

impl ModuleVersion {
    /// Its registry key.
    pub fn key(&self) -> ModuleKey {
        ModuleKey {
            tenant: self.tenant.clone(),
            name: self.name.clone(),
            version: self.version.clone(),
        }
    }
}

fn version_key(k: &ModuleKey) -> Vec<u8> {
    key(&[&k.tenant, &k.name, &k.version])
}

impl Store {
    /// Record a new version with its bytes (idempotent: same bytes, same id).
    pub fn put_module_version(&self, meta: &ModuleVersion, bytes: &[u8]) -> Result<()> {
        let k = version_key(&meta.key());
        self.module_bytes.insert(&k, bytes)?;
        self.modules.insert(&k, to_json(meta)?)?;
        Ok(())
    }

    /// One version's metadata.
    pub fn module_version(&self, k: &ModuleKey) -> Result<Option<ModuleVersion>> {
        self.modules
            .get(version_key(k))?
            .map(|v| from_json(&v))
            .transpose()
    }

    /// One version's component bytes.
    pub fn module_bytes(&self, k: &ModuleKey) -> Result<Option<Vec<u8>>> {
        Ok(self.module_bytes.get(version_key(k))?.map(|v| v.to_vec()))
    }

    /// Every version of a tenant's modules (of one module when `name` is given),
    /// oldest upload first.
    pub fn module_versions(&self, tenant: &str, name: Option<&str>) -> Result<Vec<ModuleVersion>> {
        let prefix = match name {
            Some(name) => key(&[tenant, name, ""]),
            None => key(&[tenant, ""]),
        };
        let mut versions = self
            .modules
            .scan_prefix(prefix)
            .map(|kv| from_json::<ModuleVersion>(&kv?.1))
            .collect::<Result<Vec<_>>>()?;
        versions.sort_by_key(|v| (v.name.clone(), v.uploaded_at_ms));
        Ok(versions)
    }

    /// The cached compiled artifact of a version for an engine whose compatibility
    /// hash is `engine_hash`.
    pub fn artifact(&self, k: &ModuleKey, engine_hash: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .artifacts
            .get(key(&[&k.tenant, &k.name, &k.version, engine_hash]))?
            .map(|v| v.to_vec()))
    }

    /// Cache a compiled artifact (not flushed: it can always be rebuilt).
    pub fn put_artifact(&self, k: &ModuleKey, engine_hash: &str, artifact: &[u8]) -> Result<()> {
        self.artifacts.insert(
            key(&[&k.tenant, &k.name, &k.version, engine_hash]),
            artifact,
        )?;
        Ok(())
    }
}
