use serde_json::{json, Value};

use super::{substitute, Ref, Unresolved};
use crate::{Job, JobLimits, Task, ValidationError};

fn refused(tasks: Vec<Task>) -> (String, String) {
    match Job::new(tasks).validate(&JobLimits::default()) {
        Err(ValidationError::Field { field, reason }) => (field, reason),
        other => panic!("expected a refused field, got {other:?}"),
    }
}

#[test]
fn references_read_and_write_as_from_objects() {
    let r = Ref::parse("3/items/0/url").unwrap();
    assert_eq!((r.task(), r.pointer()), (3, "/items/0/url"));
    assert_eq!(Value::from(r), json!({"$from": "3/items/0/url"}));
    assert_eq!(Ref::parse("12").unwrap(), Ref::to(12));
    for bad in ["", "x", "-1", "+1", "/url", "99999999999"] {
        assert!(Ref::parse(bad).is_err(), "{bad:?} should not parse");
    }
    // Only a one-key object is a reference.
    assert!(Ref::of(&json!({"$from": "0", "other": 1})).is_none());
    assert!(Ref::of(&json!({"$from": 0})).unwrap().is_err());
}

#[test]
fn dependencies_join_after_and_references() {
    let task = Task::new(
        "t",
        json!({"a": Ref::to(2), "b": [Ref::to(0).at("/x"), {"c": Ref::to(2)}]}),
    )
    .after([1, 0]);
    assert_eq!(task.dependencies(), vec![0, 1, 2]);
    assert!(task.has_references());
    assert!(!Task::new("t", json!({"a": 1})).after([0]).has_references());
}

#[test]
fn substitution_follows_rfc_6901() {
    let values = [
        json!({"url": "https://a", "a/b": 1, "m~n": 2, "list": [10, 20]}),
        json!("plain"),
    ];
    let value_of = |i: u32| values.get(i as usize);
    let args = json!({
        "url": {"$from": "0/url"}, "slash": {"$from": "0/a~1b"}, "tilde": {"$from": "0/m~0n"},
        "second": {"$from": "0/list/1"}, "whole": {"$from": "1"}, "kept": {"$from": "0", "x": 1},
    });
    let out = substitute(&args, &value_of).unwrap();
    assert_eq!(
        out,
        json!({"url": "https://a", "slash": 1, "tilde": 2, "second": 20, "whole": "plain",
               "kept": {"$from": "0", "x": 1}})
    );
    let missing = substitute(&json!([{"$from": "0/nope"}]), &value_of).unwrap_err();
    assert!(matches!(missing, Unresolved::Pointer { .. }));
    assert!(missing.to_string().contains("\"/nope\""), "{missing}");
    let gone = substitute(&json!({"$from": "5"}), &value_of).unwrap_err();
    assert_eq!(gone, Unresolved::NoValue(Ref::to(5)));
}

#[test]
fn self_references_out_of_range_and_cycles_are_refused_naming_the_task() {
    let t = |after: &[u32]| Task::new("t", json!({})).after(after.iter().copied());
    let (field, reason) = refused(vec![t(&[]), t(&[1])]);
    assert_eq!(field, "tasks[1].after");
    assert!(reason.contains("itself"), "{reason}");

    let (field, reason) = refused(vec![t(&[]), Task::new("t", json!({"x": Ref::to(7)}))]);
    assert_eq!(field, "tasks[1].after");
    assert!(reason.contains("task 7 is out of range"), "{reason}");

    // 1 → 3 → 2 → 1; task 4 waits behind the cycle, task 0 is free.
    let (field, reason) = refused(vec![t(&[]), t(&[3]), t(&[1]), t(&[2]), t(&[1])]);
    assert_eq!(field, "tasks[1].after");
    assert!(reason.contains("1 → 3 → 2 → 1"), "{reason}");

    let (field, reason) = refused(vec![Task::new("t", json!({"q": {"p": {"$from": "zero"}}}))]);
    assert_eq!(field, "tasks[0].args/q/p.$from");
    assert!(reason.contains("\"zero\""), "{reason}");

    let chain = vec![t(&[]), t(&[0]), t(&[0, 1]), t(&[2])];
    assert!(Job::new(chain).validate(&JobLimits::default()).is_ok());
}

#[test]
fn after_is_on_the_wire_only_when_set() {
    let plain = serde_json::to_value(Task::new("t", json!({}))).unwrap();
    assert!(plain.get("after").is_none());
    let job: Job = serde_json::from_value(json!({"tasks": [
        {"tool": "a"}, {"tool": "b", "after": [0], "args": {"u": {"$from": "0/url"}}}
    ]}))
    .unwrap();
    assert_eq!(job.tasks[1].after, vec![0]);
    assert_eq!(job.tasks[1].dependencies(), vec![0]);
}
