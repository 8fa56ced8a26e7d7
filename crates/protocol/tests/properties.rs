//! Properties of the wire types: decoding is total (any bytes give a value
//! or an error, never a panic) and what is encoded decodes to itself.

use proptest::prelude::*;
use toolfan_protocol::{
    decode, encode, CacheUse, ErrorKind, Job, JobLimits, ReplyEvent, ResultHead, TaskError,
    TaskMessage, TaskResult, ToolName, WorkerInfo,
};

const KINDS: [ErrorKind; 10] = [
    ErrorKind::Invalid,
    ErrorKind::Timeout,
    ErrorKind::DeadlineExceeded,
    ErrorKind::ToolError,
    ErrorKind::UnknownTool,
    ErrorKind::InvalidArgs,
    ErrorKind::RateLimited,
    ErrorKind::Cancelled,
    ErrorKind::ResultTooLarge,
    ErrorKind::Internal,
];

fn result() -> impl Strategy<Value = TaskResult> {
    let outcome = prop_oneof![
        any::<i64>().prop_map(|n| Ok(serde_json::json!({"n": n}))),
        ".{0,40}".prop_map(|s| Ok(serde_json::Value::String(s))),
        (0..KINDS.len(), ".{0,40}", any::<bool>()).prop_map(|(k, message, retryable)| Err(
            TaskError {
                kind: KINDS[k].clone(),
                message,
                retryable,
                retry_after_ms: None
            }
        )),
    ];
    (
        any::<u32>(),
        outcome,
        any::<u32>(),
        any::<u64>(),
        proptest::option::of("[a-z0-9-]{1,12}"),
        proptest::option::of(prop_oneof![Just(CacheUse::Hit), Just(CacheUse::Joined)]),
    )
        .prop_map(
            |(index, outcome, attempts, duration_ms, worker, cache)| TaskResult {
                index,
                outcome,
                attempts,
                duration_ms,
                worker,
                cache,
            },
        )
}

/// Text made of JSON's own characters, so the parser gets deep into it.
fn jsonish() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("{"),
            Just("}"),
            Just("["),
            Just("]"),
            Just(":"),
            Just(","),
            Just("\""),
            Just("tasks"),
            Just("tool"),
            Just("args"),
            Just("echo"),
            Just("1"),
            Just("-"),
            Just("null"),
            Just("\\u0000"),
            Just("é"),
        ],
        0..64,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #[test]
    fn any_bytes_parse_to_a_job_or_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Job::parse(&bytes, &JobLimits::default());
        let _ = decode::<TaskMessage>("task", &bytes);
        let _ = decode::<ReplyEvent>("event", &bytes);
        let _ = decode::<WorkerInfo>("heartbeat", &bytes);
        let _ = ResultHead::decode(&bytes);
    }

    #[test]
    fn jsonish_text_parses_to_a_job_or_an_error(text in jsonish()) {
        if let Ok(job) = Job::parse(text.as_bytes(), &JobLimits::default()) {
            // Whatever passes validation re-encodes and passes again.
            prop_assert_eq!(Job::parse(&encode(&job), &JobLimits::default()).unwrap(), job);
        }
    }

    #[test]
    fn results_round_trip_and_their_heads_agree(result in result()) {
        let bytes = encode(&result);
        prop_assert_eq!(decode::<TaskResult>("result", &bytes).unwrap(), result.clone());
        let head = ResultHead::decode(&bytes).unwrap();
        prop_assert_eq!(head.index, result.index);
        prop_assert_eq!(head.error, result.error().map(|e| e.kind.clone()));
        prop_assert_eq!(head.from_worker, result.worker.is_some());
    }

    #[test]
    fn tool_names_are_exactly_the_safe_subject_tokens(name in ".{0,70}") {
        let safe = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        prop_assert_eq!(ToolName::new(name.clone()).is_ok(), safe);
    }
}
