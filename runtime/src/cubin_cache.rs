//! The on-disk cache of assembled GPU code: cubins keyed by everything that
//! made them.
//!
//! Why: nvJitLink (`nvjitlink.rs`) assembles a step's PTX in 0.1-1 s; the
//! driver's own JIT cache does not see cubins we load, so without this
//! every run of the same model would pay that again.
//!
//! An entry's key is the exact PTX text of one module plus the target
//! architecture, the nvJitLink and driver versions and this crate's
//! version. The file is named by a hash of the key and holds the key
//! itself and the cubin's length, so a hash collision, a truncated file or
//! another version's entry reads as a miss, never as wrong code; an entry
//! is written only after the driver has loaded its cubin, and one the
//! driver rejects later is assembled and written again. Writes go to a temporary
//! file in the same directory, then `rename` (atomic on POSIX): concurrent
//! runs that fill the same entry each write a whole file and the last
//! rename wins with identical content; readers never see half a file.
//! Nothing here fails a load: an unreadable or unwritable cache is a miss.
//!
//! The directory: `JLC_CACHE_DIR`, else `$XDG_CACHE_HOME/jaxlightning`,
//! else `$HOME/.cache/jaxlightning`; entries go in its `cubin/`.
//! `JLC_CACHE_DIR=off` turns the cache off. Entries are never evicted
//! (tens to hundreds of KB per program; delete the folder to reclaim).

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: &[u8] = b"JLC-CUBIN-2\n";

/// A cache folder (or none, when off or no home is known).
#[derive(Clone, Debug)]
pub struct CubinCache {
    dir: Option<PathBuf>,
}

impl CubinCache {
    /// The folder the environment names (see the module docs).
    pub fn from_env() -> CubinCache {
        let root = match std::env::var_os("JLC_CACHE_DIR") {
            Some(d) if d == "off" => None,
            Some(d) => Some(PathBuf::from(d)),
            None => std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
                .map(|d| d.join("jaxlightning")),
        };
        CubinCache { dir: root.map(|r| r.join("cubin")) }
    }

    /// A cache in `dir` itself (tests).
    pub fn at(dir: PathBuf) -> CubinCache {
        CubinCache { dir: Some(dir) }
    }

    /// The key of one module's cubin: its PTX and what else shaped it.
    pub fn key(ptx: &str, context: &str) -> Vec<u8> {
        format!("jaxlightning {}\n{context}\n{ptx}", env!("CARGO_PKG_VERSION")).into_bytes()
    }

    fn path(&self, key: &[u8]) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        // Not a stable hash across Rust releases, which only costs misses:
        // the key inside the file decides.
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        Some(dir.join(format!("{:016x}-{}.cubin", h.finish(), key.len())))
    }

    /// The cubin stored under `key`, if a whole entry with exactly this key
    /// is there.
    pub fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let bytes = std::fs::read(self.path(key)?).ok()?;
        let rest = bytes.strip_prefix(MAGIC)?;
        let (len, rest) = rest.split_first_chunk::<8>()?;
        let len = usize::try_from(u64::from_le_bytes(*len)).ok()?;
        if rest.len() < len || &rest[..len] != key {
            return None;
        }
        let (cubin_len, cubin) = rest[len..].split_first_chunk::<8>()?;
        // A file cut short (or grown) inside the cubin is a miss too.
        (usize::try_from(u64::from_le_bytes(*cubin_len)).ok()? == cubin.len()).then(|| cubin.to_vec())
    }

    /// Stores `cubin` under `key`; an error (no space, read-only folder)
    /// is returned for the caller to report, and leaves no partial entry.
    pub fn put(&self, key: &[u8], cubin: &[u8]) -> std::io::Result<()> {
        let Some(path) = self.path(key) else { return Ok(()) };
        let dir = path.parent().expect("an entry is inside the cache folder");
        std::fs::create_dir_all(dir)?;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let tmp = dir.join(format!(".tmp-{}-{nanos}-{:?}", std::process::id(), std::thread::current().id()));
        let written = (|| {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(MAGIC)?;
            file.write_all(&(key.len() as u64).to_le_bytes())?;
            file.write_all(key)?;
            file.write_all(&(cubin.len() as u64).to_le_bytes())?;
            file.write_all(cubin)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("jlc-cubin-cache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn returns_what_was_stored_under_exactly_that_key() {
        let dir = fresh_dir("roundtrip");
        let cache = CubinCache::at(dir.clone());
        let key = CubinCache::key(".entry a", "sm_90");
        assert_eq!(cache.get(&key), None, "empty cache");
        cache.put(&key, b"\x7fELF one").unwrap();
        assert_eq!(cache.get(&key).as_deref(), Some(&b"\x7fELF one"[..]));
        assert_eq!(cache.get(&CubinCache::key(".entry a", "sm_80")), None, "another architecture");
        assert_eq!(cache.get(&CubinCache::key(".entry b", "sm_90")), None, "other PTX");
        cache.put(&key, b"\x7fELF two").unwrap();
        assert_eq!(cache.get(&key).as_deref(), Some(&b"\x7fELF two"[..]), "overwritten whole");
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "no temporary files left: {names:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A truncated entry, or an entry whose stored key differs from the one
    /// asked for (as after a hash collision), reads as a miss.
    #[test]
    fn damaged_or_colliding_entries_are_misses() {
        let dir = fresh_dir("damaged");
        let cache = CubinCache::at(dir.clone());
        let key = CubinCache::key(".entry a", "sm_90");
        cache.put(&key, b"\x7fELF code").unwrap();
        let path = cache.path(&key).unwrap();
        let whole = std::fs::read(&path).unwrap();
        for cut in [0, 5, MAGIC.len() + 4, MAGIC.len() + 8 + key.len(), whole.len() - 1] {
            std::fs::write(&path, &whole[..cut]).unwrap();
            assert_eq!(cache.get(&key), None, "truncated to {cut} bytes");
        }
        let mut other = whole.clone();
        let at = MAGIC.len() + 8 + 3;
        other[at] ^= 1;
        std::fs::write(&path, &other).unwrap();
        assert_eq!(cache.get(&key), None, "a different key stored under this name");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Threads writing the same entry at once leave one whole entry.
    #[test]
    fn concurrent_writers_leave_one_whole_entry() {
        let dir = fresh_dir("concurrent");
        let cache = CubinCache::at(dir.clone());
        let key = CubinCache::key(".entry a", "sm_90");
        let cubin = vec![7u8; 1 << 20];
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| cache.put(&key, &cubin).unwrap());
            }
        });
        assert_eq!(cache.get(&key).as_deref(), Some(&cubin[..]));
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "only the entry remains");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn off_means_no_folder_and_only_misses() {
        let cache = CubinCache { dir: None };
        let key = CubinCache::key(".entry a", "sm_90");
        cache.put(&key, b"x").unwrap();
        assert_eq!(cache.get(&key), None);
    }
}
