//! The in-memory driver: a sorted map of paths to bytes. For tests and throwaway registries.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use tokio::sync::RwLock;

use crate::window::{self, DirWindow, KeyWindow};
use crate::{DriverError, FileInfo, FileWriter, Persist, ReadStream, StorageDriver, check_path};

/// Slices handed out by `reader`.
const READ_CHUNK: usize = 256 * 1024;

type Files = BTreeMap<String, (Bytes, SystemTime)>;

/// Files in a map; directories are implied by the paths below them.
#[derive(Debug, Clone, Default)]
pub struct InMemoryDriver {
    files: Arc<RwLock<Files>>,
}

impl InMemoryDriver {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

fn dir_prefix(path: &str) -> String {
    if path == "/" {
        "/".to_owned()
    } else {
        format!("{path}/")
    }
}

fn under<'a>(files: &'a Files, prefix: &'a str) -> impl Iterator<Item = &'a String> + 'a {
    files
        .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
        .map(|(k, _)| k)
        .take_while(move |k| k.starts_with(prefix))
}

/// Up to `max` children of `prefix` whose keys (`name/` for a directory) come after
/// `after`, each directory once, as a delimited S3 listing answers them.
fn key_window(files: &Files, prefix: &str, after: &str, max: usize) -> KeyWindow {
    let mut w = KeyWindow::default();
    let mut from = match after.strip_suffix('/') {
        // After a directory's key: past every key under it (see below).
        Some(dir) => Bound::Included(format!("{prefix}{dir}0")),
        None => Bound::Excluded(format!("{prefix}{after}")),
    };
    let mut groups = 0;
    while let Some((key, _)) = files
        .range::<String, _>((from.clone(), Bound::Unbounded))
        .next()
    {
        let Some(rel) = key.strip_prefix(prefix) else {
            break;
        };
        if groups == max {
            w.next = w.last_key.clone();
            break;
        }
        groups += 1;
        match rel.split_once('/') {
            Some((dir, _)) => {
                w.dirs.push(dir.to_owned());
                w.last_key = Some(format!("{dir}/"));
                // Past every key under `dir/`: the next one after them sorts from `dir0`.
                from = Bound::Included(format!("{prefix}{dir}0"));
            }
            None => {
                w.last_key = Some(rel.to_owned());
                from = Bound::Excluded(key.clone());
            }
        }
    }
    w
}

#[async_trait]
impl StorageDriver for InMemoryDriver {
    fn name(&self) -> &'static str {
        "inmemory"
    }

    async fn get_content(&self, path: &str) -> Result<Bytes, DriverError> {
        check_path(path)?;
        let files = self.files.read().await;
        files
            .get(path)
            .map(|(b, _)| b.clone())
            .ok_or_else(|| DriverError::PathNotFound(path.into()))
    }

    async fn put_content(&self, path: &str, content: Bytes) -> Result<(), DriverError> {
        check_path(path)?;
        self.files
            .write()
            .await
            .insert(path.to_owned(), (content, SystemTime::now()));
        Ok(())
    }

    async fn ensure_content(
        &self,
        path: &str,
        content: Bytes,
        _persist: Persist,
    ) -> Result<(), DriverError> {
        check_path(path)?;
        let mut files = self.files.write().await;
        match files.get(path) {
            Some((b, _)) if *b == content => {}
            _ => {
                files.insert(path.to_owned(), (content, SystemTime::now()));
            }
        }
        Ok(())
    }

    async fn reader(
        &self,
        path: &str,
        offset: u64,
        len: Option<u64>,
    ) -> Result<ReadStream, DriverError> {
        let content = self.get_content(path).await?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        if start > content.len() {
            return Err(DriverError::InvalidOffset {
                path: path.to_owned(),
                offset,
            });
        }
        let end = match len {
            Some(l) => start
                .saturating_add(usize::try_from(l).unwrap_or(usize::MAX))
                .min(content.len()),
            None => content.len(),
        };
        let slice = content.slice(start..end);
        let chunks: Vec<std::io::Result<Bytes>> = (0..slice.len())
            .step_by(READ_CHUNK)
            .map(|i| Ok(slice.slice(i..(i + READ_CHUNK).min(slice.len()))))
            .collect();
        Ok(Box::pin(futures::stream::iter(chunks)))
    }

    fn writes_appear_on_commit(&self) -> bool {
        // A writer keeps its bytes aside until its commit inserts them.
        true
    }

    async fn writer(
        &self,
        path: &str,
        append: bool,
        _persist: Persist,
    ) -> Result<Box<dyn FileWriter>, DriverError> {
        check_path(path)?;
        let mut buf = BytesMut::new();
        if append && let Some((b, _)) = self.files.read().await.get(path) {
            buf.extend_from_slice(b);
        }
        Ok(Box::new(MemWriter {
            files: self.files.clone(),
            path: path.to_owned(),
            buf,
        }))
    }

    async fn stat(&self, path: &str) -> Result<FileInfo, DriverError> {
        check_path(path)?;
        let files = self.files.read().await;
        if let Some((b, t)) = files.get(path) {
            return Ok(FileInfo {
                size: b.len() as u64,
                is_dir: false,
                modified: Some(*t),
            });
        }
        let prefix = dir_prefix(path);
        if under(&files, &prefix).next().is_some() {
            return Ok(FileInfo {
                size: 0,
                is_dir: true,
                modified: None,
            });
        }
        Err(DriverError::PathNotFound(path.to_owned()))
    }

    async fn list(&self, path: &str) -> Result<Vec<String>, DriverError> {
        check_path(path)?;
        let files = self.files.read().await;
        let prefix = dir_prefix(path);
        let mut out: Vec<String> = Vec::new();
        for key in under(&files, &prefix) {
            let rest = &key[prefix.len()..];
            let child = rest.split('/').next().unwrap_or(rest);
            let full = format!("{prefix}{child}");
            if out.last() != Some(&full) {
                out.push(full);
            }
        }
        if out.is_empty() {
            return Err(DriverError::PathNotFound(path.to_owned()));
        }
        Ok(out)
    }

    async fn list_dirs(
        &self,
        path: &str,
        from: Bound<&str>,
        limit: usize,
    ) -> Result<DirWindow, DriverError> {
        check_path(path)?;
        let prefix = dir_prefix(path);
        let start = match from {
            Bound::Unbounded => String::new(),
            Bound::Included(f) | Bound::Excluded(f) => f.to_owned(),
        };
        // Windows in the map's byte order, as S3 lists keys, so that the name-order
        // rule is exercised wherever tests run on memory.
        window::dirs_in_name_order(from, |token| {
            let after = token.unwrap_or_else(|| start.clone());
            let files = self.files.clone();
            let prefix = prefix.clone();
            async move {
                Ok(key_window(
                    &*files.read().await,
                    &prefix,
                    &after,
                    limit.max(1),
                ))
            }
        })
        .await
    }

    async fn rename(&self, from: &str, to: &str, _persist: Persist) -> Result<(), DriverError> {
        check_path(from)?;
        check_path(to)?;
        let mut files = self.files.write().await;
        if let Some(v) = files.remove(from) {
            files.insert(to.to_owned(), v);
            return Ok(());
        }
        let prefix = dir_prefix(from);
        let moved: Vec<String> = under(&files, &prefix).cloned().collect();
        if moved.is_empty() {
            return Err(DriverError::PathNotFound(from.to_owned()));
        }
        for key in moved {
            if let Some(v) = files.remove(&key) {
                files.insert(format!("{to}/{}", &key[prefix.len()..]), v);
            }
        }
        Ok(())
    }

    async fn flush(&self, path: &str) -> Result<(), DriverError> {
        check_path(path)?;
        let files = self.files.read().await;
        if files.contains_key(path) || under(&files, &dir_prefix(path)).next().is_some() {
            Ok(())
        } else {
            Err(DriverError::PathNotFound(path.to_owned()))
        }
    }

    fn volatile_epoch(&self) -> &str {
        // Nothing written here outlives the instance, and nothing written is lost while
        // it lives.
        "memory"
    }

    async fn delete(&self, path: &str) -> Result<(), DriverError> {
        check_path(path)?;
        let mut files = self.files.write().await;
        let mut found = files.remove(path).is_some();
        let prefix = dir_prefix(path);
        let doomed: Vec<String> = under(&files, &prefix).cloned().collect();
        found |= !doomed.is_empty();
        for key in doomed {
            files.remove(&key);
        }
        if found {
            Ok(())
        } else {
            Err(DriverError::PathNotFound(path.to_owned()))
        }
    }
}

struct MemWriter {
    files: Arc<RwLock<Files>>,
    path: String,
    buf: BytesMut,
}

#[async_trait]
impl FileWriter for MemWriter {
    async fn write(&mut self, data: Bytes) -> Result<(), DriverError> {
        self.buf.extend_from_slice(&data);
        Ok(())
    }

    fn size(&self) -> u64 {
        self.buf.len() as u64
    }

    async fn commit(self: Box<Self>) -> Result<(), DriverError> {
        let MemWriter { files, path, buf } = *self;
        files
            .write()
            .await
            .insert(path, (buf.freeze(), SystemTime::now()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn passes_the_driver_suite() {
        crate::suite::run_all(&super::InMemoryDriver::new()).await;
    }
}
