//! The IAM policy document model: every shape AWS accepts for bucket, key, trust and identity
//! policies, parsed without losing anything, so a document we did not write serialises back to the
//! same JSON value. Shapes (a single string vs a list, `Statement` as an object) are remembered.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Error;

/// `"2012-10-17"`: the policy language version every statement we write needs.
pub const POLICY_VERSION: &str = "2012-10-17";

/// A string or a list of strings, as `Action`, `Resource` and principal values may be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    /// A single value stays a bare string; several become a list.
    pub fn from_vec(mut values: Vec<String>) -> Self {
        if values.len() == 1 {
            OneOrMany::One(values.remove(0))
        } else {
            OneOrMany::Many(values)
        }
    }

    pub fn values(&self) -> &[String] {
        match self {
            OneOrMany::One(v) => std::slice::from_ref(v),
            OneOrMany::Many(v) => v,
        }
    }
}

/// `Principal` / `NotPrincipal`: `"*"` or a map of `AWS`, `Service`, `Federated`, `CanonicalUser`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Principal {
    /// Only `"*"` is valid here; anything else is reported by [`PolicyDocument::parse`].
    Wildcard(String),
    Map(BTreeMap<String, OneOrMany>),
}

impl Principal {
    /// The `AWS` principals of a principal map (an account id, an IAM ARN or `"*"`).
    pub fn aws(values: Vec<String>) -> Self {
        Principal::Map(BTreeMap::from([(
            "AWS".to_string(),
            OneOrMany::from_vec(values),
        )]))
    }

    pub fn aws_values(&self) -> &[String] {
        match self {
            Principal::Map(map) => map.get("AWS").map(OneOrMany::values).unwrap_or(&[]),
            Principal::Wildcard(_) => &[],
        }
    }
}

/// Condition block: operator -> condition key -> value(s). Values keep their JSON shape
/// (string, boolean, number or list) so foreign statements serialise back unchanged.
pub type Condition = BTreeMap<String, BTreeMap<String, Value>>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    #[serde(rename = "Sid", skip_serializing_if = "Option::is_none", default)]
    pub sid: Option<String>,
    #[serde(rename = "Effect")]
    pub effect: String,
    #[serde(rename = "Principal", skip_serializing_if = "Option::is_none", default)]
    pub principal: Option<Principal>,
    #[serde(
        rename = "NotPrincipal",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub not_principal: Option<Principal>,
    #[serde(rename = "Action", skip_serializing_if = "Option::is_none", default)]
    pub action: Option<OneOrMany>,
    #[serde(rename = "NotAction", skip_serializing_if = "Option::is_none", default)]
    pub not_action: Option<OneOrMany>,
    #[serde(rename = "Resource", skip_serializing_if = "Option::is_none", default)]
    pub resource: Option<OneOrMany>,
    #[serde(
        rename = "NotResource",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub not_resource: Option<OneOrMany>,
    #[serde(rename = "Condition", skip_serializing_if = "Option::is_none", default)]
    pub condition: Option<Condition>,
    /// Anything else a statement carries; kept so nothing foreign is lost.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Statement {
    /// An `Allow` statement with the given parts, as this crate writes them.
    pub fn allow(sid: impl Into<String>) -> Self {
        Statement {
            sid: Some(sid.into()),
            effect: "Allow".to_string(),
            principal: None,
            not_principal: None,
            action: None,
            not_action: None,
            resource: None,
            not_resource: None,
            condition: None,
            extra: Map::new(),
        }
    }

    pub fn actions(&self) -> &[String] {
        self.action.as_ref().map(OneOrMany::values).unwrap_or(&[])
    }

    pub fn resources(&self) -> &[String] {
        self.resource.as_ref().map(OneOrMany::values).unwrap_or(&[])
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum Statements {
    One(Box<Statement>),
    Many(Vec<Statement>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RawDocument {
    #[serde(rename = "Version", skip_serializing_if = "Option::is_none", default)]
    version: Option<String>,
    #[serde(rename = "Id", skip_serializing_if = "Option::is_none", default)]
    id: Option<String>,
    #[serde(rename = "Statement")]
    statement: Statements,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// A whole policy document. `statements` is always a list here; whether the source had a single
/// statement object is remembered so an unchanged document serialises as it came.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyDocument {
    pub version: Option<String>,
    pub id: Option<String>,
    pub statements: Vec<Statement>,
    pub extra: Map<String, Value>,
    single_statement_object: bool,
}

impl PolicyDocument {
    /// A new document with the current policy language version and no statements.
    pub fn new() -> Self {
        PolicyDocument {
            version: Some(POLICY_VERSION.to_string()),
            id: None,
            statements: Vec::new(),
            extra: Map::new(),
            single_statement_object: false,
        }
    }

    pub fn with_statements(statements: Vec<Statement>) -> Self {
        PolicyDocument {
            statements,
            ..PolicyDocument::new()
        }
    }

    /// Parses a policy as AWS returns or accepts it. `what` names the document in errors
    /// ("bucket policy", "key policy").
    ///
    /// A key written twice in one object, at any level, is refused: a JSON parser keeps one of
    /// them (serde_json the last), so a foreign `"Effect": "Deny", "Effect": "Allow"` would be
    /// read, and written back, as something its author may not have meant.
    pub fn parse(text: &str, what: &str) -> Result<Self, Error> {
        let malformed = |e: serde_json::Error| Error::Malformed {
            what: what.to_string(),
            detail: e.to_string(),
        };
        let written: Written = serde_json::from_str(text).map_err(malformed)?;
        if let Some((place, key)) = written.duplicate_key() {
            return Err(Error::DuplicateKey {
                what: what.to_string(),
                place,
                key,
            });
        }
        let value: Value = serde_json::from_str(text).map_err(malformed)?;
        Self::from_value(value, what)
    }

    pub fn from_value(value: Value, what: &str) -> Result<Self, Error> {
        let raw: RawDocument = serde_json::from_value(value).map_err(|e| Error::Malformed {
            what: what.to_string(),
            detail: e.to_string(),
        })?;
        let (statements, single) = match raw.statement {
            Statements::One(s) => (vec![*s], true),
            Statements::Many(v) => (v, false),
        };
        for statement in &statements {
            for p in [&statement.principal, &statement.not_principal]
                .into_iter()
                .flatten()
            {
                if let Principal::Wildcard(w) = p
                    && w != "*"
                {
                    return Err(Error::Malformed {
                        what: what.to_string(),
                        detail: format!("a Principal given as a string must be \"*\", found {w:?}"),
                    });
                }
            }
        }
        Ok(PolicyDocument {
            version: raw.version,
            id: raw.id,
            statements,
            extra: raw.extra,
            single_statement_object: single,
        })
    }

    pub fn to_value(&self) -> Value {
        let statement = if self.single_statement_object && self.statements.len() == 1 {
            Statements::One(Box::new(self.statements[0].clone()))
        } else {
            Statements::Many(self.statements.clone())
        };
        let raw = RawDocument {
            version: self.version.clone(),
            id: self.id.clone(),
            statement,
            extra: self.extra.clone(),
        };
        // Serialising plain strings, maps and serde_json values cannot fail.
        serde_json::to_value(raw).unwrap_or(Value::Null)
    }

    /// Compact JSON, as it is sent to AWS and as the size limits count it.
    pub fn to_json(&self) -> String {
        self.to_value().to_string()
    }

    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(&self.to_value()).unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }
}

impl Default for PolicyDocument {
    fn default() -> Self {
        Self::new()
    }
}

impl Serialize for PolicyDocument {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(serializer)
    }
}

/// A JSON value as written: every key of an object kept in order, repeated ones included, so
/// a repeated key can be found (`serde_json::Value` keeps only the last).
#[derive(Debug)]
enum Written {
    Object(Vec<(String, Written)>),
    Array(Vec<Written>),
    String(String),
    Other,
}

impl<'de> Deserialize<'de> for Written {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(WrittenVisitor)
    }
}

struct WrittenVisitor;

impl<'de> serde::de::Visitor<'de> for WrittenVisitor {
    type Value = Written;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Written, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry::<String, Written>()? {
            entries.push(entry);
        }
        Ok(Written::Object(entries))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Written, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Written>()? {
            items.push(item);
        }
        Ok(Written::Array(items))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Written, E> {
        Ok(Written::String(v.to_string()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Written, E> {
        Ok(Written::String(v))
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Written, E> {
        Ok(Written::Other)
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Written, E> {
        Ok(Written::Other)
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Written, E> {
        Ok(Written::Other)
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Written, E> {
        Ok(Written::Other)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Written, E> {
        Ok(Written::Other)
    }
}

impl Written {
    /// The first key written twice in one object of a policy document: where (`statement
    /// Guard`, `statement #2 (no Sid)`, `the document`) and the key's path within it
    /// (`Effect`, `Condition.StringEquals.aws:SourceVpc`).
    fn duplicate_key(&self) -> Option<(String, String)> {
        let Written::Object(entries) = self else {
            return self
                .repeated()
                .map(|p| ("the document".to_string(), p.join(".")));
        };
        if let Some(key) = first_repeated(entries) {
            return Some(("the document".to_string(), key.to_string()));
        }
        for (key, value) in entries {
            let statements: Vec<&Written> = match (key.as_str(), value) {
                ("Statement", Written::Array(items)) => items.iter().collect(),
                ("Statement", one @ Written::Object(_)) => vec![one],
                _ => {
                    if let Some(mut path) = value.repeated() {
                        path.insert(0, key.clone());
                        return Some(("the document".to_string(), path.join(".")));
                    }
                    continue;
                }
            };
            for (i, statement) in statements.into_iter().enumerate() {
                if let Some(path) = statement.repeated() {
                    return Some((statement.label(i), path.join(".")));
                }
            }
        }
        None
    }

    /// `statement SID`, or for a statement without a (string) Sid its position, from 1.
    fn label(&self, index: usize) -> String {
        let sid = match self {
            Written::Object(entries) => entries.iter().find_map(|(k, v)| match v {
                Written::String(sid) if k == "Sid" => Some(sid.as_str()),
                _ => None,
            }),
            _ => None,
        };
        match sid {
            Some(sid) => format!("statement {sid}"),
            None => format!("statement #{} (no Sid)", index + 1),
        }
    }

    /// The path to the first key written twice in one object, anywhere in this value.
    fn repeated(&self) -> Option<Vec<String>> {
        match self {
            Written::Object(entries) => {
                if let Some(key) = first_repeated(entries) {
                    return Some(vec![key.to_string()]);
                }
                entries.iter().find_map(|(key, value)| {
                    let mut path = value.repeated()?;
                    path.insert(0, key.clone());
                    Some(path)
                })
            }
            Written::Array(items) => items.iter().find_map(Written::repeated),
            Written::String(_) | Written::Other => None,
        }
    }
}

/// The first key that appears a second time among `entries`.
fn first_repeated(entries: &[(String, Written)]) -> Option<&str> {
    let mut seen = std::collections::HashSet::new();
    entries
        .iter()
        .map(|(k, _)| k.as_str())
        .find(|k| !seen.insert(*k))
}
