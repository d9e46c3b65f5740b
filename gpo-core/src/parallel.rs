//! Work split over scoped threads (with `std`): the sentence encoder splits its batches with it,
//! gpo-train's LLM embedder and choice scorer their prompts.

use alloc::vec::Vec;

/// Runs `work` on up to `threads` contiguous parts of `items`, each on its own scoped thread,
/// and concatenates the results in order (the whole of `items` on the calling thread when one part
/// holds them all, so a single thread or a target without threads never spawns); a thread that
/// panics gives `panicked()`.
pub fn in_parts<T: Sync, R: Send, E: Send>(
    items: &[T],
    threads: usize,
    work: impl Fn(&[T]) -> Result<Vec<R>, E> + Sync,
    panicked: impl Fn() -> E,
) -> Result<Vec<R>, E> {
    let part = items.len().div_ceil(threads.max(1)).max(1);
    if part >= items.len() {
        return work(items);
    }
    let work = &work;
    let parts: Vec<Result<Vec<R>, E>> = std::thread::scope(|scope| {
        let handles: Vec<_> = items.chunks(part).map(|chunk| scope.spawn(move || work(chunk))).collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(panicked()))).collect()
    });
    let mut out = Vec::new();
    for part in parts {
        out.extend(part?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::in_parts;
    use alloc::vec::Vec;

    #[test]
    fn parts_come_back_in_order_for_any_thread_count() {
        let items: Vec<u32> = (0..23).collect();
        for threads in [0, 1, 2, 3, 7, 23, 40] {
            let got = in_parts(&items, threads, |part| Ok::<_, ()>(part.iter().map(|x| x * 2).collect()), || ())
                .expect("no part fails");
            assert_eq!(got, items.iter().map(|x| x * 2).collect::<Vec<_>>(), "{threads} threads");
        }
    }

    #[test]
    fn a_failing_part_fails_the_whole() {
        let items: Vec<u32> = (0..10).collect();
        let got =
            in_parts(&items, 3, |part| if part.contains(&5) { Err("five") } else { Ok(part.to_vec()) }, || "panic");
        assert_eq!(got, Err("five"));
    }
}
