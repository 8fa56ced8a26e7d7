//! Unit tests of jobs: defaults, policies, and errors that name the field.

use super::*;

#[test]
fn tasks_alone_is_a_job_with_defaults() {
    let job = Job::from_json(br#"{"tasks": [{"tool": "echo"}]}"#).unwrap();
    assert_eq!(job.max_concurrency, 16);
    assert_eq!(job.deadline_ms, 30_000);
    assert_eq!(job.policy, Policy::All);
    assert_eq!(job.tasks[0].args, serde_json::json!({}));
    assert_eq!(job.tasks[0].cost, 1);
    job.validate(&JobLimits::default()).unwrap();
}

#[test]
fn policies_parse_in_their_documented_forms() {
    for (text, policy) in [
        (r#""all""#, Policy::All),
        (r#""fail_fast""#, Policy::FailFast),
        (r#""first_ok""#, Policy::FirstOk),
        (r#"{"quorum": 2}"#, Policy::Quorum(2)),
    ] {
        assert_eq!(serde_json::from_str::<Policy>(text).unwrap(), policy);
    }
}

#[test]
fn errors_name_the_field() {
    let err = Job::from_json(br#"{"tasks": [{"tool": "a.b"}]}"#).unwrap_err();
    assert!(err.to_string().contains("tool name \"a.b\""), "{err}");
    let err = Job::from_json(br#"{"tasks": [], "deadline": 5}"#).unwrap_err();
    assert!(
        err.to_string().contains("unknown field `deadline`"),
        "{err}"
    );
    let err = Job::from_json(b"not json").unwrap_err();
    assert!(err.to_string().starts_with("malformed job"), "{err}");

    let limits = JobLimits {
        max_tasks: 2,
        ..JobLimits::default()
    };
    let three = Job::new(vec![Task::new("echo", serde_json::json!({})); 3]);
    let err = three.validate(&limits).unwrap_err();
    assert_eq!(
        err.to_string(),
        "tasks: 3 tasks is over this cluster's limit of 2 per job"
    );
    let err = Job::new(vec![])
        .max_concurrency(0)
        .validate(&limits)
        .unwrap_err();
    assert!(err.to_string().starts_with("max_concurrency"), "{err}");
    let big = Job::new(vec![Task::new(
        "echo",
        serde_json::json!({"s": "x".repeat(100)}),
    )]);
    let small_args = JobLimits {
        max_args_bytes: 50,
        ..JobLimits::default()
    };
    let err = big.validate(&small_args).unwrap_err();
    assert_eq!(
        err.to_string(),
        "tasks[0].args: 108 bytes is over this cluster's limit of 50 bytes per task"
    );
    let bad_tool = Job::new(vec![Task::new(">", serde_json::json!({}))]);
    let err = bad_tool.validate(&limits).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("tasks[0].tool: invalid tool name \">\""),
        "{err}"
    );
    let zero_timeout = Job::new(vec![
        Task::new("echo", serde_json::json!({})).timeout(Duration::ZERO)
    ]);
    let err = zero_timeout.validate(&limits).unwrap_err();
    assert!(err.to_string().starts_with("tasks[0].timeout_ms"), "{err}");
}

#[test]
fn oversized_bodies_are_refused_before_parsing() {
    let limits = JobLimits {
        max_job_bytes: 10,
        ..JobLimits::default()
    };
    let err = Job::parse(br#"{"tasks": []}"#, &limits).unwrap_err();
    assert_eq!(
        err.to_string(),
        "job: 13 bytes is over this cluster's limit of 10 bytes per job"
    );
}

#[test]
fn other_protocol_versions_are_refused() {
    let job = Job::from_json(br#"{"v": 2, "tasks": []}"#).unwrap();
    assert_eq!(
        job.validate(&JobLimits::default()).unwrap_err(),
        ValidationError::Version(2)
    );
}
