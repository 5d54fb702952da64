//! The key lists against the typed document. A tracing deserializer walks
//! [`Document`]: serde names a struct's fields when it asks for the struct, so each field
//! is visited in turn and anything that is not a struct with fields is a leaf.

use std::cell::RefCell;

use serde::Deserialize;
use serde::de::value::{Error, StrDeserializer};
use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, Visitor};

use super::{CHECKED_ONLY, SUPPORTED};
use crate::config::Document;

/// What the deserializer found at the path it was sent down.
enum Shape {
    Struct(&'static [&'static str]),
    Leaf,
}

/// Goes down `target`, one key per struct, and records the shape found at its end.
#[derive(Clone, Copy)]
struct Tracer<'a> {
    target: &'a [&'static str],
    depth: usize,
    found: &'a RefCell<Option<Shape>>,
}

impl Tracer<'_> {
    fn at_target(&self) -> bool {
        self.depth == self.target.len()
    }
}

impl<'de> Deserializer<'de> for Tracer<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Error> {
        if self.at_target() {
            *self.found.borrow_mut() = Some(Shape::Leaf);
        }
        // Nothing sensible can be made up for a leaf; the shape is already recorded.
        Err(Error::custom("leaf"))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        if self.at_target() {
            *self.found.borrow_mut() = Some(Shape::Struct(fields));
            return visitor.visit_map(Entries(None));
        }
        let next = Tracer {
            depth: self.depth + 1,
            ..self
        };
        visitor.visit_map(Entries(Some((self.target[self.depth], next))))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
        byte_buf unit unit_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

/// A map of at most one entry: the next key of the path, and the tracer for its value.
struct Entries<'a>(Option<(&'static str, Tracer<'a>)>);

impl<'de> MapAccess<'de> for Entries<'_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match &self.0 {
            Some((key, _)) => seed.deserialize(StrDeserializer::new(key)).map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        match self.0.take() {
            Some((_, tracer)) => seed.deserialize(tracer),
            None => Err(Error::custom("value without a key")),
        }
    }
}

fn shape(path: &[&'static str]) -> Option<Shape> {
    let found = RefCell::new(None);
    let _ = Document::deserialize(Tracer {
        target: path,
        depth: 0,
        found: &found,
    });
    found.into_inner()
}

/// Dotted paths of every leaf of the typed document.
fn typed_leaves() -> Vec<String> {
    let mut leaves = Vec::new();
    let mut todo: Vec<Vec<&'static str>> = vec![Vec::new()];
    while let Some(path) = todo.pop() {
        match shape(&path) {
            Some(Shape::Struct(fields)) if !fields.is_empty() => {
                for field in fields {
                    let mut child = path.clone();
                    child.push(field);
                    todo.push(child);
                }
            }
            Some(_) => leaves.push(path.join(".")),
            None => panic!("the tracer never reached {path:?}"),
        }
    }
    leaves.sort();
    leaves
}

#[test]
fn the_key_lists_name_exactly_the_typed_fields() {
    let leaves = typed_leaves();
    assert!(leaves.contains(&"storage.filesystem.rootdirectory".to_owned()));
    let mut listed: Vec<String> = SUPPORTED
        .iter()
        .chain(CHECKED_ONLY)
        .map(|k| (*k).to_owned())
        .collect();
    listed.sort();
    let typed_not_listed: Vec<&String> = leaves.iter().filter(|k| !listed.contains(k)).collect();
    let listed_not_typed: Vec<&String> = listed.iter().filter(|k| !leaves.contains(k)).collect();
    assert!(
        typed_not_listed.is_empty() && listed_not_typed.is_empty(),
        "typed but not listed: {typed_not_listed:?}; listed but not typed: {listed_not_typed:?}"
    );
    assert_eq!(listed.len(), leaves.len(), "a key is listed twice");
}
