//! Describing tools to callers: what each does and the JSON Schema of its
//! arguments, generated with schemars for typed tools, written by hand for
//! the others. Workers answer `toolfan.worker.tools` with these
//! ([`toolfan_protocol::WorkerTools`]); `toolfan tools` turns them into the
//! tool definitions an LLM API takes.

use std::sync::{Arc, RwLock};

use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde_json::{json, Value};

/// The descriptions a worker gives callers, which tools may change while it runs.
pub(crate) type Described = Arc<RwLock<Vec<toolfan_protocol::ToolDescription>>>;

/// The schema of a tool that says nothing about its arguments: any object.
pub fn any_object_schema() -> Value {
    json!({ "type": "object" })
}

/// The description and argument schema of a typed tool whose args are `A`:
/// the doc comment on `A` becomes the description, field docs become
/// property descriptions. Sub-schemas are inlined (no `$ref`), the form
/// every LLM API accepts.
pub fn schema_of<A: JsonSchema>() -> (String, Value) {
    let generator = SchemaSettings::draft07()
        .with(|s| {
            s.meta_schema = None;
            s.inline_subschemas = true;
        })
        .into_generator();
    let mut schema = generator.into_root_schema_for::<A>().to_value();
    let mut description = String::new();
    if let Some(object) = schema.as_object_mut() {
        object.remove("title");
        if let Some(Value::String(doc)) = object.remove("description") {
            description = doc;
        }
    }
    // `{}` or `true`: anything goes (e.g. `A = serde_json::Value`).
    if schema == json!({}) || schema == json!(true) {
        schema = any_object_schema();
    }
    (description, schema)
}

/// Why a schema cannot describe a tool's arguments.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SchemaError {
    /// Not a JSON object.
    #[error("the argument schema must be a JSON object, not {0}")]
    NotAnObject(Value),
    /// A `type` other than `"object"`.
    #[error("the argument schema must have \"type\": \"object\" (tool calls pass named arguments), not {0}")]
    NotObjectType(Value),
}

/// Checks that `schema` can describe a tool's arguments to an LLM: a JSON
/// object whose `type`, if given, is `"object"` (tool calls carry an object
/// of named arguments).
pub fn check_parameters(schema: &Value) -> Result<(), SchemaError> {
    let Some(object) = schema.as_object() else {
        return Err(SchemaError::NotAnObject(schema.clone()));
    };
    match object.get("type") {
        None => Ok(()),
        Some(Value::String(t)) if t == "object" => Ok(()),
        Some(other) => Err(SchemaError::NotObjectType(other.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Looks up the weather.
    #[derive(JsonSchema, serde::Deserialize)]
    #[allow(dead_code)]
    struct Weather {
        /// The city's name.
        city: String,
        days: Option<u32>,
        unit: Unit,
    }

    #[derive(JsonSchema, serde::Deserialize)]
    #[serde(rename_all = "lowercase")]
    #[allow(dead_code)]
    enum Unit {
        Celsius,
        Fahrenheit,
    }

    #[test]
    fn typed_args_give_an_inlined_object_schema() {
        let (description, schema) = schema_of::<Weather>();
        assert_eq!(description, "Looks up the weather.");
        assert_eq!(schema["type"], "object");
        assert_eq!(
            schema["properties"]["city"]["description"],
            "The city's name."
        );
        assert_eq!(
            schema["properties"]["unit"]["enum"],
            json!(["celsius", "fahrenheit"])
        );
        assert_eq!(schema["required"], json!(["city", "unit"]));
        assert!(schema.get("$schema").is_none() && schema.get("title").is_none());
        assert!(!schema.to_string().contains("$ref"), "{schema}");
        check_parameters(&schema).unwrap();
    }

    #[test]
    fn untyped_args_are_any_object() {
        let (description, schema) = schema_of::<Value>();
        assert_eq!((description.as_str(), schema), ("", any_object_schema()));
    }

    #[test]
    fn schemas_that_are_not_object_schemas_are_refused() {
        assert!(check_parameters(&json!({"type": "string"}))
            .unwrap_err()
            .to_string()
            .contains("\"type\": \"object\""));
        assert!(check_parameters(&json!(true)).is_err());
        check_parameters(&json!({"properties": {}})).unwrap();
    }
}
