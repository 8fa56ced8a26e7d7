//! References in a task's args: `{"$from": "<i>"}` or
//! `{"$from": "<i>/<JSON Pointer>"}` stands for task `i`'s value, or the
//! part of it the RFC 6901 pointer names, and is replaced by it before
//! the task is dispatched.

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

/// The key that makes a one-key object a reference.
pub const FROM_KEY: &str = "$from";

/// A reference to (part of) an earlier task's value, as a caller writes it
/// into args.
///
/// ```
/// use serde_json::json;
/// use toolfan_protocol::Ref;
///
/// let args = json!({"url": Ref::to(0).at("/url"), "all": Ref::to(1)});
/// assert_eq!(args, json!({"url": {"$from": "0/url"}, "all": {"$from": "1"}}));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ref {
    task: u32,
    pointer: String,
}

impl Ref {
    /// The whole value of task `task`.
    pub fn to(task: u32) -> Self {
        Self {
            task,
            pointer: String::new(),
        }
    }

    /// The part of the value the JSON Pointer `pointer` names (`"/url"`,
    /// `"/items/0/id"`; `~1` for a `/` in a key, `~0` for a `~`).
    pub fn at(mut self, pointer: impl Into<String>) -> Self {
        self.pointer = pointer.into();
        self
    }

    /// The task whose value this is.
    pub fn task(&self) -> u32 {
        self.task
    }

    /// The RFC 6901 pointer into that value (`""` for all of it).
    pub fn pointer(&self) -> &str {
        &self.pointer
    }

    /// Reads the text of a `$from` (`"3"`, `"3/url"`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (index, pointer) = match text.find('/') {
            Some(at) => text.split_at(at),
            None => (text, ""),
        };
        let task = index
            .parse::<u32>()
            .ok()
            .filter(|_| index.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| {
                format!("{text:?} is not \"<task index>\" or \"<task index>/<JSON Pointer>\"")
            })?;
        Ok(Self::to(task).at(pointer))
    }

    /// The reference an args value is, if it is one: an object whose only
    /// key is `$from`. A `$from` that is not a string is an error.
    pub fn of(value: &Value) -> Option<Result<Self, String>> {
        let Value::Object(map) = value else {
            return None;
        };
        if map.len() != 1 {
            return None;
        }
        let from = map.get(FROM_KEY)?;
        Some(match from {
            Value::String(text) => Self::parse(text),
            other => Err(format!("must be a string, not {other}")),
        })
    }

    /// The part of `value` this reference names, if it is there.
    pub fn pick<'v>(&self, value: &'v Value) -> Option<&'v Value> {
        value.pointer(&self.pointer)
    }
}

impl std::fmt::Display for Ref {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.task, self.pointer)
    }
}

impl Serialize for Ref {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Value::from(self.clone()).serialize(serializer)
    }
}

impl From<Ref> for Value {
    fn from(reference: Ref) -> Self {
        let mut map = Map::new();
        map.insert(FROM_KEY.into(), Value::String(reference.to_string()));
        Value::Object(map)
    }
}

/// Calls `found` with the JSON Pointer of every reference in `args` (as
/// the place it sits, e.g. `/pages/1`) and what it reads as.
pub fn each_reference(args: &Value, found: &mut dyn FnMut(&str, Result<Ref, String>)) {
    fn walk(value: &Value, at: &mut String, found: &mut dyn FnMut(&str, Result<Ref, String>)) {
        if let Some(reference) = Ref::of(value) {
            return found(at, reference);
        }
        let len = at.len();
        match value {
            Value::Object(map) => {
                for (key, item) in map {
                    at.push('/');
                    at.push_str(&key.replace('~', "~0").replace('/', "~1"));
                    walk(item, at, found);
                    at.truncate(len);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    at.push_str(&format!("/{i}"));
                    walk(item, at, found);
                    at.truncate(len);
                }
            }
            _ => {}
        }
    }
    walk(args, &mut String::new(), found)
}

/// A reference that could not be replaced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unresolved {
    /// The pointer names nothing in the task's value.
    #[error("{{\"$from\": \"{reference}\"}}: task {}'s value has nothing at {:?}", .reference.task(), .reference.pointer())]
    Pointer {
        /// The reference.
        reference: Ref,
    },
    /// The task's value is not at hand (it did not succeed).
    #[error("{{\"$from\": \"{0}\"}}: task {task} has no value", task = .0.task())]
    NoValue(Ref),
    /// The `$from` itself cannot be read (a job that was validated has none).
    #[error("{{\"$from\"}} at {at:?}: {reason}")]
    Malformed {
        /// Where in the args it sits.
        at: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// `args` with every reference replaced by what it names in
/// `value_of(task)`.
pub fn substitute<'v>(
    args: &Value,
    value_of: &dyn Fn(u32) -> Option<&'v Value>,
) -> Result<Value, Unresolved> {
    if let Some(reference) = Ref::of(args) {
        let reference = reference.map_err(|reason| Unresolved::Malformed {
            at: String::new(),
            reason,
        })?;
        let Some(value) = value_of(reference.task()) else {
            return Err(Unresolved::NoValue(reference));
        };
        return match reference.pick(value) {
            Some(part) => Ok(part.clone()),
            None => Err(Unresolved::Pointer { reference }),
        };
    }
    Ok(match args {
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, item) in map {
                out.insert(key.clone(), substitute(item, value_of)?);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| substitute(item, value_of))
                .collect::<Result<_, _>>()?,
        ),
        scalar => scalar.clone(),
    })
}
