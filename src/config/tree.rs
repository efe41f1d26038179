//! A located YAML tree: every key and value remembers where it came from (file, line,
//! column, or the `--set` argument that put it there).
//!
//! The loader parses a file into a [`Node`] tree with `serde-saphyr` (which rejects
//! malformed YAML and duplicate keys with their position), edits the tree (overrides,
//! grafting a topology file under `cluster`), then deserializes the typed raw structs of
//! [`super::raw`] from it through [`from_node`], whose errors carry the dotted path and
//! origin of the offending key. This module knows nothing about the scenario schema.

use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use serde::de::{
    self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use serde_saphyr::{MessageFormatter, Spanned};

use super::ConfigError;

/// Where a key or value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// A file path, `<built-in ...>`, or a `--set path=value` argument.
    pub source: Arc<str>,
    /// 1-based line and column; 0 when unknown (values given with `--set`).
    pub line: u64,
    pub col: u64,
}

impl Origin {
    pub fn new(source: &Arc<str>, line: u64, col: u64) -> Self {
        Origin {
            source: Arc::clone(source),
            line,
            col,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.source)
        } else {
            write!(f, "{}:{}:{}", self.source, self.line, self.col)
        }
    }
}

/// A YAML value with its origin.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

/// One `key: value` pair of a mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    /// Where the key itself is written (what error messages point at).
    pub key_origin: Origin,
    pub node: Node,
}

impl Node {
    pub fn new(value: Value, origin: Origin) -> Self {
        Node { value, origin }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The entry under `key` when this node is a mapping.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|e| e.key == key),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|e| &e.node)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        match &mut self.value {
            Value::Map(entries) => entries
                .iter_mut()
                .find(|e| e.key == key)
                .map(|e| &mut e.node),
            _ => None,
        }
    }

    /// Sets `key` to `node` in this mapping (replacing an existing value in place; the key
    /// then takes the new value's origin).
    /// Returns `false` when this node is not a mapping.
    pub fn insert(&mut self, key: &str, node: Node) -> bool {
        let Value::Map(entries) = &mut self.value else {
            return false;
        };
        if let Some(e) = entries.iter_mut().find(|e| e.key == key) {
            // The new value decides where errors about this key point.
            e.key_origin = node.origin.clone();
            e.node = node;
        } else {
            let key_origin = node.origin.clone();
            entries.push(Entry {
                key: key.to_string(),
                key_origin,
                node,
            });
        }
        true
    }

    /// The origin of the deepest key along `path` that exists (the key itself when the
    /// whole path exists), for pointing error messages at the right line.
    pub fn locate(&self, path: &[&str]) -> Origin {
        let mut node = self;
        let mut best = &self.origin;
        for key in path {
            match node.entry(key) {
                Some(e) => {
                    best = &e.key_origin;
                    node = &e.node;
                }
                None => break,
            }
        }
        best.clone()
    }

    /// Rewrites the origin of this node and everything below it.
    pub fn set_origin(&mut self, origin: &Origin) {
        self.origin = origin.clone();
        match &mut self.value {
            Value::Seq(items) => items.iter_mut().for_each(|n| n.set_origin(origin)),
            Value::Map(entries) => entries.iter_mut().for_each(|e| {
                e.key_origin = origin.clone();
                e.node.set_origin(origin);
            }),
            _ => {}
        }
    }

    /// A short description of the value's kind, for error messages.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::UInt(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

// ---------------------------------------------------------------------------------------
// Parsing: YAML text -> Node (through serde-saphyr, keeping spans).
// ---------------------------------------------------------------------------------------

/// The tree as serde-saphyr hands it over: values with spans but no source name yet.
enum Parsed {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Parsed>>),
    Map(Vec<(Spanned<String>, Spanned<Parsed>)>),
}

impl<'de> Deserialize<'de> for Parsed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ParsedVisitor)
    }
}

struct ParsedVisitor;

impl<'de> Visitor<'de> for ParsedVisitor {
    type Value = Parsed;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML value")
    }
    fn visit_unit<E>(self) -> Result<Parsed, E> {
        Ok(Parsed::Null)
    }
    fn visit_none<E>(self) -> Result<Parsed, E> {
        Ok(Parsed::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Parsed, D::Error> {
        Parsed::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Parsed, E> {
        Ok(Parsed::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Parsed, E> {
        Ok(Parsed::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Parsed, E> {
        Ok(Parsed::UInt(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Parsed, E> {
        Ok(Parsed::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Parsed, E> {
        Ok(Parsed::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Parsed, E> {
        Ok(Parsed::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Parsed, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Parsed>>()? {
            items.push(item);
        }
        Ok(Parsed::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            let value = map.next_value::<Spanned<Parsed>>()?;
            entries.push((key, value));
        }
        Ok(Parsed::Map(entries))
    }
}

fn origin_of(source: &Arc<str>, loc: &serde_saphyr::Location) -> Origin {
    Origin::new(source, loc.line(), loc.column())
}

fn to_node(source: &Arc<str>, parsed: Spanned<Parsed>) -> Node {
    let origin = origin_of(source, &parsed.referenced);
    let value = match parsed.value {
        Parsed::Null => Value::Null,
        Parsed::Bool(b) => Value::Bool(b),
        Parsed::Int(i) => Value::Int(i),
        Parsed::UInt(u) => Value::UInt(u),
        Parsed::Float(x) => Value::Float(x),
        Parsed::Str(s) => Value::Str(s),
        Parsed::Seq(items) => Value::Seq(items.into_iter().map(|p| to_node(source, p)).collect()),
        Parsed::Map(entries) => Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| Entry {
                    key: k.value,
                    key_origin: origin_of(source, &k.referenced),
                    node: to_node(source, v),
                })
                .collect(),
        ),
    };
    Node { value, origin }
}

/// Parses YAML `text` read from `source` (a file name for messages) into a located tree.
/// Malformed YAML, duplicate keys and non-string keys are errors with their position.
pub fn parse(source: &str, text: &str) -> Result<Node, ConfigError> {
    let name: Arc<str> = Arc::from(source);
    match serde_saphyr::from_str::<Spanned<Parsed>>(text) {
        Ok(parsed) => Ok(to_node(&name, parsed)),
        Err(e) => Err(saphyr_error(&name, &e)),
    }
}

fn saphyr_error(source: &Arc<str>, e: &serde_saphyr::Error) -> ConfigError {
    let plain = e.without_snippet();
    let message = serde_saphyr::UserMessageFormatter.format_message(plain);
    let message: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let location = match e.location() {
        Some(l) if l.line() > 0 => origin_of(source, &l),
        _ => Origin::new(source, 0, 0),
    };
    ConfigError::new(Some(&location), "", format!("invalid YAML: {message}"))
}

// ---------------------------------------------------------------------------------------
// Deserializing typed structs from a Node, with path-tracking errors.
// ---------------------------------------------------------------------------------------

/// A deserialization error that learns the path and origin of the innermost node it
/// passed through on its way out.
#[derive(Debug)]
pub struct DeError {
    message: String,
    at: Option<(String, Origin)>,
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            message: msg.to_string(),
            at: None,
        }
    }

    fn invalid_type(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::custom(format_args!(
            "invalid type: {unexp}, expected {}",
            plain_expected(&exp.to_string())
        ))
    }

    fn invalid_value(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::custom(format_args!(
            "invalid value: {unexp}, expected {}",
            plain_expected(&exp.to_string())
        ))
    }
}

/// What serde expects, in the words of the README's schema rather than Rust's type names
/// (`u64` becomes "a whole number from 0 to 18446744073709551615").
fn plain_expected(rust: &str) -> String {
    let whole = |max: u64| format!("a whole number from 0 to {max}");
    match rust {
        "u64" | "usize" => whole(u64::MAX),
        "u32" => whole(u32::MAX.into()),
        "u16" => whole(u16::MAX.into()),
        "u8" => whole(u8::MAX.into()),
        "f64" | "f32" => "a number".to_string(),
        "a boolean" => "true or false".to_string(),
        other => other.to_string(),
    }
}

impl DeError {
    fn locate(mut self, path: &str, origin: &Origin) -> Self {
        if self.at.is_none() {
            self.at = Some((path.to_string(), origin.clone()));
        }
        self
    }

    fn into_config_error(self, root_path: &str, root: &Origin) -> ConfigError {
        let (path, origin) = self
            .at
            .unwrap_or_else(|| (root_path.to_string(), root.clone()));
        ConfigError::new(Some(&origin), &path, self.message)
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Deserializes `T` from `node`, naming `path` (the node's dotted path) in errors.
pub fn from_node<'de, T: Deserialize<'de>>(node: &'de Node, path: &str) -> Result<T, ConfigError> {
    T::deserialize(NodeDe {
        node,
        path: path.to_string(),
        at: &node.origin,
    })
    .map_err(|e| e.into_config_error(path, &node.origin))
}

/// A serde `Deserializer` over a borrowed [`Node`].
pub struct NodeDe<'de> {
    node: &'de Node,
    path: String,
    /// Where errors about this node point: the value for scalars, the key for mappings
    /// and lists (whose own position is their first item's line).
    at: &'de Origin,
}

impl<'de> NodeDe<'de> {
    fn visit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match &self.node.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => visitor.visit_i64(*i),
            Value::UInt(u) => visitor.visit_u64(*u),
            Value::Float(x) => visitor.visit_f64(*x),
            Value::Str(s) => visitor.visit_borrowed_str(s),
            Value::Seq(items) => visitor.visit_seq(SeqDe {
                items: items.iter(),
                index: 0,
                path: &self.path,
            }),
            Value::Map(entries) => visitor.visit_map(MapDe {
                entries: entries.iter(),
                pending: None,
                path: &self.path,
            }),
        };
        result.map_err(|e| e.locate(&self.path, self.at))
    }
}

impl<'de> Deserializer<'de> for NodeDe<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.visit(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Str(s) => visitor
                .visit_enum(s.as_str().into_deserializer())
                .map_err(|e: DeError| e.locate(&self.path, self.at)),
            _ => Err(<DeError as de::Error>::custom(format!(
                "expected a string, found {}; allowed: {}",
                self.node.kind(),
                variants.join(", ")
            ))
            .locate(&self.path, self.at)),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
        ignored_any
    }
}

struct SeqDe<'a, 'de> {
    items: std::slice::Iter<'de, Node>,
    index: usize,
    path: &'a str,
}

impl<'de> SeqAccess<'de> for SeqDe<'_, 'de> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some(node) = self.items.next() else {
            return Ok(None);
        };
        let path = format!("{}[{}]", self.path, self.index);
        self.index += 1;
        seed.deserialize(NodeDe {
            node,
            path,
            at: &node.origin,
        })
        .map(Some)
    }
}

struct MapDe<'a, 'de> {
    entries: std::slice::Iter<'de, Entry>,
    pending: Option<&'de Entry>,
    path: &'a str,
}

impl<'de> MapAccess<'de> for MapDe<'_, 'de> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        self.pending = Some(entry);
        let key: de::value::BorrowedStrDeserializer<'de, DeError> =
            de::value::BorrowedStrDeserializer::new(&entry.key);
        seed.deserialize(key)
            .map(Some)
            .map_err(|e| e.locate(&join(self.path, &entry.key), &entry.key_origin))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some(entry) = self.pending.take() else {
            return Err(<DeError as de::Error>::custom(
                "value requested before its key",
            ));
        };
        let path = join(self.path, &entry.key);
        let at = match entry.node.value {
            Value::Map(_) | Value::Seq(_) => &entry.key_origin,
            _ => &entry.node.origin,
        };
        seed.deserialize(NodeDe {
            node: &entry.node,
            path,
            at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        a: u64,
        #[serde(default)]
        b: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        inner: Inner,
        list: Vec<u64>,
    }

    #[test]
    fn parses_with_positions() {
        let n = parse("f.yaml", "inner:\n  a: 1\n  b: x\nlist: [1, 2]\n").unwrap();
        let o = n.locate(&["inner", "b"]);
        assert_eq!((o.line, o.col), (3, 3));
        let typed: Outer = from_node(&n, "").unwrap();
        assert_eq!(typed.inner.a, 1);
        assert_eq!(typed.inner.b.as_deref(), Some("x"));
        assert_eq!(typed.list, vec![1, 2]);
    }

    #[test]
    fn unknown_key_is_located() {
        let n = parse("f.yaml", "inner:\n  a: 1\n  c: 2\nlist: []\n").unwrap();
        let e = from_node::<Outer>(&n, "").unwrap_err();
        assert_eq!(e.field, "inner.c");
        assert_eq!(e.location.as_deref(), Some("f.yaml:3:3"));
        assert!(e.message.contains("unknown field `c`"), "{e}");
    }

    #[test]
    fn wrong_type_is_located() {
        let n = parse("f.yaml", "inner:\n  a: many\nlist: [1, x]\n").unwrap();
        let e = from_node::<Outer>(&n, "").unwrap_err();
        assert_eq!(e.field, "inner.a");
        assert_eq!(e.location.as_deref(), Some("f.yaml:2:6"));
    }

    #[test]
    fn missing_field_points_at_the_mapping() {
        let n = parse("f.yaml", "inner:\n  b: x\nlist: []\n").unwrap();
        let e = from_node::<Outer>(&n, "").unwrap_err();
        assert_eq!(e.field, "inner");
        assert!(e.message.contains("missing field `a`"), "{e}");
    }

    #[test]
    fn duplicate_keys_and_bad_yaml_are_errors() {
        let e = parse("f.yaml", "a: 1\nb: 2\na: 3\n").unwrap_err();
        assert!(e.to_string().starts_with("f.yaml:3:"), "{e}");
        let e = parse("f.yaml", "a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.to_string().starts_with("f.yaml:"), "{e}");
    }
}
