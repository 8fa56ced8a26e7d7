use super::*;

#[test]
fn never_more_than_the_window_in_flight() {
    let mut w = Window::new(10, 3);
    let first: Vec<u32> = std::iter::from_fn(|| w.take()).collect();
    assert_eq!(first, vec![0, 1, 2]);
    assert_eq!(w.take(), None);
    w.finished(1);
    assert_eq!(w.take(), Some(3));
    assert_eq!(w.take(), None);
}

#[test]
fn failed_dispatches_go_out_again_first() {
    let mut w = Window::new(5, 2);
    assert_eq!(w.take(), Some(0));
    assert_eq!(w.take(), Some(1));
    w.retry(0);
    assert_eq!(w.take(), Some(0));
    w.finished(0);
    w.finished(1);
    assert_eq!(w.take(), Some(2));
    assert_eq!(w.take(), Some(3));
    assert!(w.waiting());
    w.close();
    assert!(!w.waiting());
    w.finished(4); // a verdict for a task never sent
    assert!(!w.waiting());
}

#[test]
fn tasks_with_a_result_are_not_sent_and_free_no_place() {
    let mut w = Window::new(4, 2);
    w.finished(0); // recovered before dispatch
    w.finished(1);
    assert_eq!(w.take(), Some(2));
    assert_eq!(w.take(), Some(3));
    w.finished(0); // a duplicate does not free a place
    assert_eq!(w.in_flight, 2);
}

#[test]
fn a_group_without_room_is_held_and_the_others_go_on() {
    // Tasks 0, 2, 4 are group 0; 1, 3, 5 group 1.
    let mut w = Window::build(vec![0, 1, 0, 1, 0, 1], 10, (0..6).collect());
    let mut room = [1, 2];
    let mut held = [false, false];
    let taken: Vec<u32> = std::iter::from_fn(|| w.take_within(&mut room, &mut held)).collect();
    assert_eq!(taken, vec![0, 1, 3]);
    assert_eq!(held, [true, true], "both had more waiting");
    assert_eq!(w.out(), &[1, 2]);
    w.finished(1);
    w.retry(3);
    assert_eq!(w.out(), &[1, 0]);
    let mut room = [0, 5];
    let mut held = [false, false];
    let taken: Vec<u32> = std::iter::from_fn(|| w.take_within(&mut room, &mut held)).collect();
    assert_eq!(taken, vec![3, 5], "the retried task first");
    assert_eq!(held, [true, false]);
    assert_eq!(w.out(), &[1, 2]);
}

#[test]
fn empty_job_dispatches_nothing() {
    let mut w = Window::new(0, 16);
    assert_eq!(w.take(), None);
    assert!(!w.waiting());
}

#[test]
fn blocked_tasks_go_out_only_once_ready() {
    let mut w = Window::with_ready(3, 4, vec![0]);
    assert_eq!(w.take(), Some(0));
    assert_eq!(w.take(), None);
    assert!(!w.waiting());
    w.finished(0);
    w.ready(2);
    w.ready(0); // done: not sent again
    assert_eq!(w.take(), Some(2));
    assert_eq!(w.take(), None);
}

#[test]
fn a_task_waiting_for_a_person_keeps_its_window_place_but_no_fleet_place() {
    let mut w = Window::with_ready(4, 2, vec![0, 1, 2, 3]);
    assert_eq!(w.take(), Some(0));
    w.hold(0);
    assert_eq!(w.out(), &[0], "parked: not out in the fleet");
    assert_eq!(w.take(), Some(1));
    assert_eq!(w.take(), None, "but it holds one of the 2 window places");
    w.hold(3); // known to wait (a takeover), never sent
    w.finished(0);
    w.finished(1);
    assert_eq!(w.take(), Some(2));
    assert_eq!(w.take(), None, "task 3 still holds a place");
    w.finished(3);
    assert_eq!(w.out(), &[1]);
    assert!(!w.waiting());
}
