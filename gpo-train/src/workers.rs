//! Work spread over threads, with its results in a fixed order.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Runs `work` on every item of `items` on up to `workers` threads, each thread with its own
/// state from `state` (made on that thread), and returns the results in the items' order. Items
/// are started in order; once an item fails no thread starts another (the results of the items
/// not started are `None`). `done` is told of each finished item.
pub fn in_order<I, S, R, E>(
    items: &[I],
    workers: usize,
    state: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, &I) -> Result<R, E> + Sync,
    done: impl Fn() + Sync,
) -> Vec<Option<Result<R, E>>>
where
    I: Sync,
    R: Send,
    E: Send,
{
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<R, E>>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..workers.clamp(1, items.len().max(1)) {
            let (next, results, state, work, done) = (&next, &results, &state, &work, &done);
            scope.spawn(move || {
                let mut state = state();
                loop {
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    let Some(item) = items.get(index) else { break };
                    let result = work(&mut state, item);
                    let failed = result.is_err();
                    if let Ok(mut slots) = results.lock() {
                        slots[index] = Some(result);
                    }
                    done();
                    if failed {
                        next.store(items.len(), Ordering::SeqCst);
                    }
                }
            });
        }
    });
    results.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::in_order;

    #[test]
    fn results_keep_the_items_order_whatever_the_workers() {
        let items: Vec<u64> = (0..23).collect();
        for workers in [1, 2, 3, 8, 100] {
            let counted = std::sync::atomic::AtomicUsize::new(0);
            let results = in_order(
                &items,
                workers,
                || 0usize,
                |calls, &i| {
                    *calls += 1;
                    Ok::<_, ()>(i * i)
                },
                || {
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                },
            );
            let squares: Vec<u64> = results.into_iter().map(|r| r.unwrap().unwrap()).collect();
            assert_eq!(squares, items.iter().map(|i| i * i).collect::<Vec<_>>(), "{workers} workers");
            assert_eq!(counted.into_inner(), items.len());
        }
    }

    #[test]
    fn no_item_starts_after_a_failure() {
        let items: Vec<u32> = (0..10).collect();
        let results = in_order(&items, 1, || (), |_, &i| if i == 3 { Err(i) } else { Ok(i) }, || {});
        assert_eq!(results[..3].iter().map(|r| r.unwrap().unwrap()).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(results[3], Some(Err(3)));
        assert!(results[4..].iter().all(Option::is_none));
        assert!(in_order(&[] as &[u8], 4, || (), |_, _| Ok::<_, ()>(()), || {}).is_empty());
    }
}
