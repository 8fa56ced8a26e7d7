//! Unit tests of results: their wire shape, error kinds kept by name, heads.

use super::kind::KNOWN;
use super::*;
use serde_json::json;

#[test]
fn error_kinds_are_an_open_set_kept_by_name() {
    let json = r#"{"index":0,"ok":false,"error":{"kind":"http_error","message":"502"}}"#;
    let result: TaskResult = crate::decode("result", json.as_bytes()).unwrap();
    let error = result.error().unwrap();
    assert_eq!(error.kind, ErrorKind::Other("http_error".into()));
    assert_eq!(
        (error.kind.as_str(), error.kind.label()),
        ("http_error", "other")
    );
    assert!(String::from_utf8(crate::encode(&result))
        .unwrap()
        .contains(r#""kind":"http_error""#));
    let head = ResultHead::decode(json.as_bytes()).unwrap();
    assert_eq!(head.error, Some(ErrorKind::Other("http_error".into())));
    for (name, kind) in KNOWN {
        assert_eq!(ErrorKind::from(name.to_owned()), kind);
        assert_eq!((kind.as_str(), kind.label()), (name, name));
    }
}

#[test]
fn results_use_the_documented_flat_shape() {
    let ok = TaskResult {
        index: 3,
        outcome: Ok(json!({"x": 1})),
        attempts: 1,
        duration_ms: 104,
        worker: Some("w-7f3a".into()),
        cache: None,
    };
    assert_eq!(
        serde_json::to_value(&ok).unwrap(),
        json!({"index":3,"ok":true,"value":{"x":1},"attempts":1,"duration_ms":104,"worker":"w-7f3a"})
    );
    let failed = TaskResult::decided(2, TaskError::new(ErrorKind::DeadlineExceeded, "late"));
    let text = serde_json::to_string(&failed).unwrap();
    assert_eq!(
        text,
        r#"{"index":2,"ok":false,"error":{"kind":"deadline_exceeded","message":"late","retryable":false},"attempts":0,"duration_ms":0}"#
    );
    assert_eq!(serde_json::from_str::<TaskResult>(&text).unwrap(), failed);
    let joined = TaskResult {
        cache: Some(CacheUse::Joined),
        ..ok
    };
    let text = serde_json::to_string(&joined).unwrap();
    assert!(text.ends_with(r#","cache":"joined"}"#), "{text}");
    assert_eq!(serde_json::from_str::<TaskResult>(&text).unwrap(), joined);
}

#[test]
fn a_head_reads_what_a_full_decode_would() {
    let ok = serde_json::to_vec(&TaskResult {
        index: 7,
        outcome: Ok(json!({"big": [1, 2, 3]})),
        attempts: 1,
        duration_ms: 3,
        worker: Some("w".into()),
        cache: Some(CacheUse::Hit),
    })
    .unwrap();
    assert_eq!(
        ResultHead::decode(&ok).unwrap(),
        ResultHead {
            index: 7,
            error: None,
            from_worker: true
        }
    );
    let verdict = serde_json::to_vec(&TaskResult::decided(
        2,
        TaskError::new(ErrorKind::Cancelled, "x"),
    ))
    .unwrap();
    let head = ResultHead::decode(&verdict).unwrap();
    assert_eq!(
        (head.error, head.from_worker),
        (Some(ErrorKind::Cancelled), false)
    );
    assert!(ResultHead::decode(br#"{"index": 1, "ok": false}"#).is_err());
    assert!(ResultHead::decode(b"nope").is_err());
}

#[test]
fn contradictory_results_are_refused() {
    let err = serde_json::from_value::<TaskResult>(json!({"index": 0, "ok": false})).unwrap_err();
    assert!(err.to_string().contains("needs an error"), "{err}");
}
