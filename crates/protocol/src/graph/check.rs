//! A job's tasks as a graph: every dependency a task of the job other
//! than itself, every reference readable, and no cycle.

use crate::{Task, ValidationError};

/// Checks the dependencies of `tasks`, naming the first task that is wrong.
pub(crate) fn check_graph(tasks: &[Task]) -> Result<(), ValidationError> {
    let mut deps: Vec<Vec<u32>> = Vec::with_capacity(tasks.len());
    let mut any = false;
    for (i, task) in tasks.iter().enumerate() {
        check_references(i, task)?;
        let own = task.dependencies();
        for &d in &own {
            check_index(i, d, tasks.len())?;
        }
        any |= !own.is_empty();
        deps.push(own);
    }
    if any {
        check_cycles(&deps)?;
    }
    Ok(())
}

/// Every `$from` of task `i` readable.
fn check_references(i: usize, task: &Task) -> Result<(), ValidationError> {
    let mut refused = None;
    super::each_reference(&task.args, &mut |at, reference| {
        if let (Err(reason), None) = (reference, &refused) {
            refused = Some(ValidationError::field(
                format!("tasks[{i}].args{at}.$from"),
                reason,
            ));
        }
    });
    refused.map_or(Ok(()), Err)
}

/// Dependency `d` of task `i` is another task of the job.
fn check_index(i: usize, d: u32, total: usize) -> Result<(), ValidationError> {
    let field = || format!("tasks[{i}].after");
    if d as usize == i {
        return Err(ValidationError::field(
            field(),
            format!("task {i} cannot depend on itself"),
        ));
    }
    if d as usize >= total {
        return Err(ValidationError::field(
            field(),
            format!("task {d} is out of range: the job has {total} tasks"),
        ));
    }
    Ok(())
}

/// Kahn's algorithm: what is never freed is on a cycle, or after one; the
/// cycle is named from the lowest such task.
fn check_cycles(deps: &[Vec<u32>]) -> Result<(), ValidationError> {
    let n = deps.len();
    let mut waiting: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut dependents: Vec<Vec<u32>> = vec![Vec::new(); n];
    for (i, own) in deps.iter().enumerate() {
        for &d in own {
            dependents[d as usize].push(i as u32);
        }
    }
    let mut free: Vec<u32> = (0..n as u32)
        .filter(|&i| waiting[i as usize] == 0)
        .collect();
    let mut freed = 0;
    while let Some(i) = free.pop() {
        freed += 1;
        for &d in &dependents[i as usize] {
            waiting[d as usize] -= 1;
            if waiting[d as usize] == 0 {
                free.push(d);
            }
        }
    }
    if freed == n {
        return Ok(());
    }
    let cycle = find_cycle(deps, &waiting);
    let first = cycle[0];
    let path: Vec<String> = cycle.iter().map(u32::to_string).collect();
    Err(ValidationError::field(
        format!("tasks[{first}].after"),
        format!(
            "the tasks wait for each other in a cycle (each for the next): {} → {first}",
            path.join(" → ")
        ),
    ))
}

/// A cycle among the tasks Kahn's algorithm left waiting: from the lowest,
/// follow a dependency that also waits until a task comes again.
fn find_cycle(deps: &[Vec<u32>], waiting: &[usize]) -> Vec<u32> {
    let stuck = |i: u32| waiting[i as usize] > 0;
    let start = (0..deps.len() as u32).find(|&i| stuck(i)).unwrap_or(0);
    let mut path = vec![start];
    let mut seen = vec![None; deps.len()];
    seen[start as usize] = Some(0);
    let mut at = start;
    loop {
        let Some(&next) = deps[at as usize].iter().find(|&&d| stuck(d)) else {
            return path;
        };
        if let Some(pos) = seen[next as usize] {
            return path.split_off(pos);
        }
        seen[next as usize] = Some(path.len());
        path.push(next);
        at = next;
    }
}
