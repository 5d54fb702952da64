//! The behaviour every `StorageDriver` must show. Each driver's tests call [`run_all`]
//! on a fresh, empty instance; a new driver (S3) joins by doing the same.

use bytes::Bytes;
use futures::TryStreamExt;

use crate::{DriverError, Persist, StorageDriver};

/// Runs every check against an empty driver; panics with a message on the first failure.
pub async fn run_all(d: &dyn StorageDriver) {
    content_round_trip(d).await;
    ensured_files(d).await;
    missing_paths(d).await;
    invalid_paths(d).await;
    streaming_reads(d).await;
    writers_append(d).await;
    writes_hidden_until_commit(d).await;
    volatile_writes(d).await;
    listing(d).await;
    directory_windows(d).await;
    rename_replaces(d).await;
    imports_local_files(d).await;
    delete_trees(d).await;
}

async fn read_all(d: &dyn StorageDriver, path: &str, offset: u64, len: Option<u64>) -> Vec<u8> {
    let stream = d.reader(path, offset, len).await.expect("reader");
    let chunks: Vec<Bytes> = stream.try_collect().await.expect("read stream");
    chunks.concat()
}

async fn content_round_trip(d: &dyn StorageDriver) {
    d.put_content("/rt/a", Bytes::from_static(b"one"))
        .await
        .unwrap();
    assert_eq!(d.get_content("/rt/a").await.unwrap(), "one");
    d.put_content("/rt/a", Bytes::from_static(b"two!"))
        .await
        .unwrap();
    assert_eq!(d.get_content("/rt/a").await.unwrap(), "two!");
    let st = d.stat("/rt/a").await.unwrap();
    assert_eq!((st.size, st.is_dir), (4, false));
    assert!(d.stat("/rt").await.unwrap().is_dir);
    d.put_content("/rt/empty", Bytes::new()).await.unwrap();
    assert_eq!(d.get_content("/rt/empty").await.unwrap().len(), 0);
}

async fn ensured_files(d: &dyn StorageDriver) {
    d.put_content("/new/empty", Bytes::new()).await.unwrap();
    // (path, content, unflushed, what the step shows); each step must leave `content`.
    let steps: [(&str, &'static [u8], bool, &str); 7] = [
        ("/new/deep/a", b"first", false, "created with its parents"),
        ("/new/deep/a", b"first", false, "the same bytes are kept"),
        ("/new/deep/a", b"second", false, "other bytes are replaced"),
        (
            "/new/deep/a",
            b"sec",
            false,
            "a longer file is not taken for a prefix",
        ),
        (
            "/new/empty",
            b"x",
            false,
            "an empty file (what a crash leaves) is replaced",
        ),
        ("/new/lazy/b", b"one", true, "unflushed files are created"),
        (
            "/new/lazy/b",
            b"two",
            true,
            "unflushed writes replace other bytes too",
        ),
    ];
    for (path, content, unflushed, why) in steps {
        let content = Bytes::from_static(content);
        let persist = if unflushed {
            Persist::Volatile
        } else {
            Persist::Durable
        };
        d.ensure_content(path, content.clone(), persist)
            .await
            .unwrap();
        assert_eq!(d.get_content(path).await.unwrap(), content, "{why}");
    }
    d.ensure_content("/new/none", Bytes::new(), Persist::Durable)
        .await
        .unwrap();
    assert_eq!(d.get_content("/new/none").await.unwrap().len(), 0);
    assert!(matches!(
        d.ensure_content("/new/../x", Bytes::new(), Persist::Durable)
            .await,
        Err(DriverError::InvalidPath(_))
    ));
}

async fn missing_paths(d: &dyn StorageDriver) {
    assert!(d.get_content("/nope/x").await.unwrap_err().is_not_found());
    assert!(d.stat("/nope/x").await.unwrap_err().is_not_found());
    assert!(
        d.reader("/nope/x", 0, None)
            .await
            .err()
            .expect("reader of missing")
            .is_not_found()
    );
    assert!(d.list("/nope").await.unwrap_err().is_not_found());
    assert!(d.delete("/nope").await.unwrap_err().is_not_found());
    assert!(
        d.rename("/nope/a", "/nope/b", Persist::Durable)
            .await
            .unwrap_err()
            .is_not_found()
    );
}

async fn invalid_paths(d: &dyn StorageDriver) {
    for bad in ["relative", "/a/../b", "/a//b", "/trailing/"] {
        assert!(
            matches!(d.get_content(bad).await, Err(DriverError::InvalidPath(_))),
            "{bad} accepted"
        );
        assert!(matches!(
            d.put_content(bad, Bytes::new()).await,
            Err(DriverError::InvalidPath(_))
        ));
    }
}

async fn streaming_reads(d: &dyn StorageDriver) {
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut w = d
        .writer("/big/file", false, Persist::Durable)
        .await
        .unwrap();
    for chunk in data.chunks(70_000) {
        w.write(Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    assert_eq!(w.size(), data.len() as u64);
    w.commit().await.unwrap();
    assert_eq!(read_all(d, "/big/file", 0, None).await, data);
    assert_eq!(
        read_all(d, "/big/file", 999_990, None).await,
        &data[999_990..]
    );
    assert_eq!(read_all(d, "/big/file", 10, Some(5)).await, &data[10..15]);
    assert_eq!(read_all(d, "/big/file", 1_000_000, None).await, b"");
    assert!(matches!(
        d.reader("/big/file", 1_000_001, None).await.err(),
        Some(DriverError::InvalidOffset { .. })
    ));
}

async fn writers_append(d: &dyn StorageDriver) {
    let mut w = d.writer("/app/f", false, Persist::Durable).await.unwrap();
    w.write(Bytes::from_static(b"abc")).await.unwrap();
    w.commit().await.unwrap();
    let mut w = d.writer("/app/f", true, Persist::Durable).await.unwrap();
    assert_eq!(w.size(), 3);
    w.write(Bytes::from_static(b"def")).await.unwrap();
    assert_eq!(w.size(), 6);
    w.commit().await.unwrap();
    assert_eq!(d.get_content("/app/f").await.unwrap(), "abcdef");
    let w = d.writer("/app/f", false, Persist::Durable).await.unwrap();
    assert_eq!(w.size(), 0, "a non-append writer truncates");
    w.commit().await.unwrap();
    assert_eq!(d.get_content("/app/f").await.unwrap(), "");
}

async fn writes_hidden_until_commit(d: &dyn StorageDriver) {
    if !d.writes_appear_on_commit() {
        return;
    }
    // Over S3's smallest part, so that S3 sends a part before the commit.
    let data: Vec<u8> = (0..6_000_000u32).map(|i| (i % 253) as u8).collect();
    d.put_content("/hid/old", Bytes::from_static(b"old"))
        .await
        .unwrap();
    for (path, commit) in [
        ("/hid/new", true),
        ("/hid/gone", false),
        ("/hid/old", false),
    ] {
        let mut w = d.writer(path, false, Persist::Durable).await.unwrap();
        for chunk in data.chunks(1 << 20) {
            w.write(Bytes::copy_from_slice(chunk)).await.unwrap();
        }
        let before = d.get_content(path).await;
        if path == "/hid/old" {
            assert_eq!(
                before.unwrap(),
                "old",
                "a file stays as it was until the commit"
            );
        } else {
            assert!(
                before.unwrap_err().is_not_found(),
                "{path} shown before its commit"
            );
        }
        if commit {
            w.commit().await.unwrap();
        } else {
            w.abort().await.unwrap();
        }
    }
    assert_eq!(read_all(d, "/hid/new", 0, None).await, data);
    assert!(d.stat("/hid/gone").await.unwrap_err().is_not_found());
    assert_eq!(d.get_content("/hid/old").await.unwrap(), "old");
}

async fn volatile_writes(d: &dyn StorageDriver) {
    let mut w = d.writer("/vol/f", false, Persist::Volatile).await.unwrap();
    w.write(Bytes::from_static(b"unflushed")).await.unwrap();
    w.commit().await.unwrap();
    assert_eq!(
        d.get_content("/vol/f").await.unwrap(),
        "unflushed",
        "volatile writes are readable at once"
    );
    d.flush("/vol/f").await.unwrap();
    d.flush("/vol").await.unwrap();
    d.rename("/vol/f", "/vol/g", Persist::Volatile)
        .await
        .unwrap();
    d.flush("/vol").await.unwrap();
    assert_eq!(d.get_content("/vol/g").await.unwrap(), "unflushed");
    assert!(d.flush("/vol/missing").await.unwrap_err().is_not_found());
    let epoch = d.volatile_epoch();
    assert!(!epoch.is_empty());
    assert_eq!(epoch, d.volatile_epoch(), "an epoch lasts");
}

async fn listing(d: &dyn StorageDriver) {
    for p in ["/ls/a/1", "/ls/a/2", "/ls/b", "/ls/c/d/e"] {
        d.put_content(p, Bytes::from_static(b"x")).await.unwrap();
    }
    let mut got = d.list("/ls").await.unwrap();
    got.sort();
    assert_eq!(got, ["/ls/a", "/ls/b", "/ls/c"]);
    let mut got = d.list("/ls/a").await.unwrap();
    got.sort();
    assert_eq!(got, ["/ls/a/1", "/ls/a/2"]);
    assert!(d.list("/").await.unwrap().contains(&"/ls".to_owned()));
}

/// Subdirectories in name order, a window at a time, whatever order the backend keeps
/// keys in: names that are prefixes of one another followed by characters sorting on
/// both sides of `/`, a nested directory, and a file among them.
async fn directory_windows(d: &dyn StorageDriver) {
    use std::ops::Bound;

    let dirs = ["-", "a", "a-", "a-b", "a.b", "a0", "ab", "b"];
    for name in dirs {
        d.put_content(&format!("/lw/{name}/f"), Bytes::from_static(b"x"))
            .await
            .unwrap();
    }
    d.put_content("/lw/a/x/f", Bytes::from_static(b"x"))
        .await
        .unwrap();
    d.put_content("/lw/a-c", Bytes::from_static(b"file"))
        .await
        .unwrap();
    let starts = [
        Bound::Unbounded,
        Bound::Included("a"),
        Bound::Excluded("a"),
        Bound::Included("a-"),
        Bound::Excluded("a-b"),
        Bound::Included("a/"),
        Bound::Excluded("zz"),
    ];
    for start in starts {
        let want: Vec<&str> = dirs
            .iter()
            .copied()
            .filter(|n| crate::window::within(n, start))
            .collect();
        for limit in 1..4 {
            let mut got: Vec<String> = Vec::new();
            let mut from = start.map(str::to_owned);
            loop {
                let w = d
                    .list_dirs("/lw", from.as_ref().map(String::as_str), limit)
                    .await
                    .unwrap();
                assert!(!(w.more && w.names.is_empty()), "{start:?}: empty window");
                got.extend(w.names.iter().cloned());
                match w.names.last() {
                    Some(last) if w.more => from = Bound::Excluded(last.clone()),
                    _ => break,
                }
            }
            // A driver listing the whole directory may name the file too.
            got.retain(|n| n != "a-c");
            assert_eq!(got, want, "from {start:?}, windows of {limit}");
        }
    }
    let missing = d.list_dirs("/lw-none", Bound::Unbounded, 10).await;
    assert!(
        missing
            .as_ref()
            .is_ok_and(|w| w.names.is_empty() && !w.more)
            || missing.is_err_and(|e| e.is_not_found())
    );
}

async fn rename_replaces(d: &dyn StorageDriver) {
    d.put_content("/mv/src", Bytes::from_static(b"new"))
        .await
        .unwrap();
    d.put_content("/mv/deep/dst", Bytes::from_static(b"old"))
        .await
        .unwrap();
    d.rename("/mv/src", "/mv/deep/dst", Persist::Durable)
        .await
        .unwrap();
    assert_eq!(d.get_content("/mv/deep/dst").await.unwrap(), "new");
    assert!(d.stat("/mv/src").await.unwrap_err().is_not_found());
    d.put_content("/mv/other", Bytes::from_static(b"o"))
        .await
        .unwrap();
    d.rename("/mv/other", "/mv/fresh/dir/file", Persist::Durable)
        .await
        .unwrap();
    assert_eq!(d.get_content("/mv/fresh/dir/file").await.unwrap(), "o");
}

async fn imports_local_files(d: &dyn StorageDriver) {
    let dir = std::env::temp_dir().join(format!("berth-suite-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let local = dir.join("blob");
    // Over a copy's read size, so a copying driver goes round more than once.
    let big: Vec<u8> = (0..(3 << 20) + 5).map(|i| (i % 251) as u8).collect();
    std::fs::write(&local, &big).unwrap();
    d.import(&local, "/imp/deep/blob", Persist::Durable)
        .await
        .unwrap();
    assert_eq!(read_all(d, "/imp/deep/blob", 0, None).await, big);
    assert_eq!(std::fs::read(&local).unwrap(), big, "the local file stays");
    std::fs::remove_file(&local).unwrap();
    std::fs::write(&local, b"newer").unwrap();
    d.import(&local, "/imp/deep/blob", Persist::Volatile)
        .await
        .unwrap();
    d.flush("/imp/deep/blob").await.unwrap();
    assert_eq!(d.get_content("/imp/deep/blob").await.unwrap(), "newer");
    std::fs::remove_file(&local).unwrap();
    let missing = d.import(&local, "/imp/other", Persist::Durable).await;
    assert!(missing.is_err(), "importing a missing file fails");
    assert!(d.stat("/imp/other").await.unwrap_err().is_not_found());
    std::fs::remove_dir_all(&dir).unwrap();
}

async fn delete_trees(d: &dyn StorageDriver) {
    for p in ["/del/t/a", "/del/t/b/c", "/del/keep"] {
        d.put_content(p, Bytes::from_static(b"x")).await.unwrap();
    }
    d.delete("/del/t").await.unwrap();
    assert!(d.stat("/del/t/a").await.unwrap_err().is_not_found());
    assert!(d.stat("/del/t/b/c").await.unwrap_err().is_not_found());
    assert_eq!(d.get_content("/del/keep").await.unwrap(), "x");
    d.delete("/del/keep").await.unwrap();
    assert!(d.get_content("/del/keep").await.unwrap_err().is_not_found());
}
