//! `REGISTRY_*` environment overrides, applied to the parsed YAML tree the way
//! distribution applies them: `REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/x` sets
//! `storage.filesystem.rootdirectory`, and `REGISTRY_STORAGE=inmemory` picks the driver.

use yaml_serde::{Mapping, Value};

/// Keys of the `storage` section that are settings rather than a driver name.
pub const STORAGE_SETTINGS: [&str; 4] = ["delete", "cache", "maintenance", "redirect"];

/// Applies every `REGISTRY_*` variable of `vars` to `root`.
pub fn apply(root: &mut Value, vars: impl IntoIterator<Item = (String, String)>) {
    let mut vars: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(k, _)| k.starts_with("REGISTRY_"))
        .collect();
    // Shorter paths first, so `REGISTRY_STORAGE` picks the driver before its parameters.
    vars.sort_by_key(|(k, _)| k.len());
    for (key, raw) in vars {
        let path: Vec<String> = key["REGISTRY_".len()..]
            .split('_')
            .map(str::to_lowercase)
            .collect();
        if path.iter().any(String::is_empty) {
            continue;
        }
        let value = yaml_serde::from_str::<Value>(&raw).unwrap_or(Value::String(raw.clone()));
        if path == ["storage"] {
            select_driver(root, &raw);
        } else {
            set(root, &path, value);
        }
    }
}

/// `v` as a mapping, replacing whatever else it holds. A tagged mapping (`!tag {...}`)
/// counts as something else: `is_mapping` looks through tags, the match below does not.
fn as_map(v: &mut Value) -> &mut Mapping {
    if !matches!(v, Value::Mapping(_)) {
        *v = Value::Mapping(Mapping::new());
    }
    match v {
        Value::Mapping(m) => m,
        _ => unreachable!("just made a mapping"),
    }
}

/// Finds a key case-insensitively (YAML keys may be written in any case).
fn key_for(map: &Mapping, segment: &str) -> Value {
    map.keys()
        .find(|k| k.as_str().is_some_and(|s| s.eq_ignore_ascii_case(segment)))
        .cloned()
        .unwrap_or_else(|| Value::String(segment.to_owned()))
}

fn set(root: &mut Value, path: &[String], value: Value) {
    let mut node = root;
    for (i, seg) in path.iter().enumerate() {
        let map = as_map(node);
        let key = key_for(map, seg);
        if i == path.len() - 1 {
            map.insert(key, value);
            return;
        }
        node = map.entry(key).or_insert(Value::Null);
    }
}

fn select_driver(root: &mut Value, driver: &str) {
    let storage = as_map(
        as_map(root)
            .entry(Value::from("storage"))
            .or_insert(Value::Null),
    );
    let drivers: Vec<Value> = storage
        .keys()
        .filter(|k| k.as_str().is_some_and(|s| !STORAGE_SETTINGS.contains(&s)))
        .filter(|k| k.as_str() != Some(driver))
        .cloned()
        .collect();
    for k in drivers {
        storage.remove(&k);
    }
    storage
        .entry(Value::from(driver))
        .or_insert(Value::Mapping(Mapping::new()));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `config` fuzz target: an override below a tagged mapping panicked.
    #[test]
    fn overrides_below_a_tagged_mapping_replace_it() {
        let mut root: Value = yaml_serde::from_str("berth: !custom {limits: {}}\n").unwrap();
        apply(
            &mut root,
            vars(&[("REGISTRY_BERTH_LIMITS_MAXUPLOADSESSIONS", "5")]),
        );
        assert_eq!(root["berth"]["limits"]["maxuploadsessions"], Value::from(5));
        let mut root: Value = yaml_serde::from_str("!top {storage: x}\n").unwrap();
        apply(&mut root, vars(&[("REGISTRY_STORAGE", "inmemory")]));
        assert!(root["storage"].get("inmemory").is_some());
    }

    fn vars(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn overrides() {
        let mut root: Value = yaml_serde::from_str(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /a\nhttp:\n  addr: :5000\n",
        )
        .unwrap();
        apply(
            &mut root,
            vars(&[
                ("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "/b"),
                ("REGISTRY_STORAGE_DELETE_ENABLED", "true"),
                ("REGISTRY_HTTP_ADDR", "127.0.0.1:6000"),
                ("OTHER", "x"),
            ]),
        );
        assert_eq!(
            root["storage"]["filesystem"]["rootdirectory"],
            Value::from("/b")
        );
        assert_eq!(root["storage"]["delete"]["enabled"], Value::from(true));
        assert_eq!(root["http"]["addr"], Value::from("127.0.0.1:6000"));
    }

    #[test]
    fn picks_the_driver() {
        let mut root: Value = yaml_serde::from_str(
            "storage:\n  filesystem: {rootdirectory: /a}\n  delete: {enabled: true}\n",
        )
        .unwrap();
        apply(&mut root, vars(&[("REGISTRY_STORAGE", "inmemory")]));
        assert!(root["storage"].get("filesystem").is_none());
        assert!(root["storage"].get("inmemory").is_some());
        assert_eq!(root["storage"]["delete"]["enabled"], Value::from(true));
    }
}
