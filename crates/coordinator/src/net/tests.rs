//! The safety net's bookkeeping, without NATS.

use super::*;

fn task(index: u32, dispatch: u32) -> TaskRef {
    TaskRef { index, dispatch }
}

#[test]
fn budgets_cover_every_attempt() {
    let spec = Task::new("t", serde_json::json!({}))
        .timeout(Duration::from_secs(3))
        .retries(2);
    let ack_wait = Duration::from_secs(10);
    assert_eq!(budget(&spec, ack_wait), Duration::from_secs(9 + 2 + 10 + 2));
    let untimed = Task::new("t", serde_json::json!({}));
    assert_eq!(budget(&untimed, ack_wait), Duration::from_secs(12));
}

#[test]
fn only_overdue_open_tasks_are_looked_at() {
    let now = Instant::now();
    let mut net = Net::new(3);
    net.stored(task(0, 1), 10, Duration::from_secs(1), now);
    net.stored(task(1, 1), 11, Duration::from_secs(5), now);
    net.stored(task(2, 1), 12, Duration::from_secs(1), now);
    assert!(net.due(now, |_| true).is_empty(), "nothing is due yet");
    let later = now + Duration::from_secs(2);
    let looks = net.due(later, |i| i != 2);
    assert_eq!(
        looks,
        vec![Look {
            task: task(0, 1),
            sequence: 10
        }]
    );
    assert!(
        net.due(later, |_| true).is_empty(),
        "disarmed while looked at"
    );
}

#[test]
fn a_stored_task_is_left_alone_and_a_lost_one_sent_again() {
    let now = Instant::now();
    let mut net = Net::new(2);
    let budget = Duration::from_secs(1);
    net.stored(task(0, 1), 10, budget, now);
    net.stored(task(1, 1), 11, budget, now);
    let t1 = now + budget;
    let looks = net.due(t1, |_| true);
    let found = vec![(looks[0], Found::Stored), (looks[1], Found::Gone)];
    let lost = net.looked(
        Looked {
            found,
            caught_up: true,
            last: 20,
            seen: 20,
        },
        t1,
        |_| true,
    );
    assert_eq!(lost, vec![task(1, 2)]);
    assert_eq!(net.current(1), task(1, 2));
    assert_eq!(
        net.current(0),
        task(0, 1),
        "a queued task is never sent twice"
    );
    // The stored one is looked at again after its budget, then after twice that.
    assert!(net.due(t1 + budget / 2, |_| true).is_empty());
    let t2 = t1 + budget;
    let looks = net.due(t2, |_| true);
    assert_eq!(looks.len(), 1);
    let found = vec![(looks[0], Found::Stored)];
    net.looked(
        Looked {
            found,
            caught_up: true,
            last: 20,
            seen: 20,
        },
        t2,
        |_| true,
    );
    assert!(net.due(t2 + budget, |_| true).is_empty());
    assert_eq!(net.due(t2 + budget * 2, |_| true).len(), 1);
}

#[test]
fn a_follower_lagging_behind_new_results_still_settles_a_gone_task() {
    let now = Instant::now();
    let mut net = Net::new(1);
    net.stored(task(0, 1), 10, Duration::ZERO, now);
    let looks = net.due(now, |_| true);
    let found = vec![(looks[0], Found::Gone)];
    let first = Looked {
        found,
        caught_up: false,
        last: 20,
        seen: 15,
    };
    assert!(net.looked(first, now, |_| true).is_empty());
    // Later the stream has moved on to 40 and the follower is still
    // behind it, but past 20, where any result for the task would be.
    let again = now + Duration::from_secs(1);
    let looks = net.due(again, |_| true);
    let found = vec![(looks[0], Found::Gone)];
    let second = Looked {
        found,
        caught_up: false,
        last: 40,
        seen: 25,
    };
    assert_eq!(net.looked(second, again, |_| true), vec![task(0, 2)]);
}

#[test]
fn gone_is_trusted_only_once_the_follower_caught_up() {
    let now = Instant::now();
    let mut net = Net::new(1);
    net.stored(task(0, 1), 10, Duration::ZERO, now);
    let looks = net.due(now, |_| true);
    let found = vec![(looks[0], Found::Gone)];
    let lost = net.looked(
        Looked {
            found,
            caught_up: false,
            last: 20,
            seen: 19,
        },
        now,
        |_| true,
    );
    assert!(lost.is_empty(), "its result may still be on its way");
    let again = now + Duration::from_secs(1);
    let looks = net.due(again, |_| true);
    let found = vec![(looks[0], Found::Gone)];
    assert_eq!(
        net.looked(
            Looked {
                found,
                caught_up: true,
                last: 20,
                seen: 20
            },
            again,
            |_| true
        ),
        vec![task(0, 2)]
    );
    // A late report of the first dispatch does not re-arm anything.
    net.stored(task(0, 1), 10, Duration::ZERO, again);
    assert!(net.due(again, |_| true).is_empty());
}

#[test]
fn a_task_its_consumer_passed_is_sent_again_like_a_gone_one() {
    let now = Instant::now();
    let mut net = Net::new(1);
    net.stored(task(0, 1), 10, Duration::ZERO, now);
    let looks = net.due(now, |_| true);
    let found = vec![(looks[0], Found::Orphaned)];
    let looked = Looked {
        found,
        caught_up: true,
        last: 20,
        seen: 20,
    };
    assert_eq!(net.looked(looked, now, |_| true), vec![task(0, 2)]);
}
