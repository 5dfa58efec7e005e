//! Float buffers recycled between layers and photos: a fresh large allocation is
//! mmapped by the allocator and every page of it faults on first touch (6 ms of SCRFD's
//! 50 for a 2000×1125 photo), where a recycled buffer's pages are already mapped.
//!
//! Small buffers (a row's scratch) stay with their thread. Large ones (whole maps) go to
//! one pool shared by all threads: the layers of one photo run on whichever rayon
//! thread is free, so a per-thread pool kept losing the largest maps to threads that
//! never asked for them again.

use std::cell::RefCell;
use std::sync::Mutex;

/// Small buffers kept per thread.
const POOLED_SMALL: usize = 8;
/// Buffers of at least this many floats (1 MiB) are large: shared.
const LARGE: usize = 1 << 18;
/// Larger buffers (over 128 MiB) are returned to the allocator. O-Net's first map for a
/// batch of 256 crops is 69 MB: under a 64 MiB limit it was allocated fresh, and its
/// pages faulted in, for every batch.
const MAX_POOLED_LEN: usize = 32 << 20;
/// The shared pool holds at most this many floats (256 MiB), dropping the oldest first,
/// so that the maps of a photo size no longer seen are released.
const MAX_SHARED_FLOATS: usize = 64 << 20;

thread_local! {
    static SMALL: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// Large buffers, oldest first.
static SHARED: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());

/// The size class of a buffer of `len` floats: four classes per doubling, so that a
/// buffer wastes at most a quarter. A buffer serves requests of its own class only: a
/// 9 M map's buffer taken for a 6 M one left the 9 M map to a fresh allocation, every
/// photo; and batches of a varying number of faces (R-Net's and O-Net's crops, dlib's
/// chips) need sizes that differ a little from photo to photo.
fn class(len: usize) -> usize {
    let step = (len.next_power_of_two() / 8).max(1);
    len.div_ceil(step) * step
}

/// The index of a buffer of `pool` of `len`'s size class that holds `len` floats.
fn best_fit(pool: &[Vec<f32>], len: usize) -> Option<usize> {
    let want = class(len);
    pool.iter()
        .position(|v| v.capacity() >= len && class(v.capacity()) == want)
}

/// A pooled buffer that holds `len` floats, if any.
fn pooled(len: usize) -> Option<Vec<f32>> {
    if len >= LARGE {
        let mut pool = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        return best_fit(&pool, len).map(|i| pool.remove(i));
    }
    SMALL.with(|pool| {
        let mut pool = pool.borrow_mut();
        best_fit(&pool, len).map(|i| pool.swap_remove(i))
    })
}

/// A zeroed vector of `len` floats, from the pool when it has one that fits.
pub fn zeroed(len: usize) -> Vec<f32> {
    match pooled(len) {
        Some(mut v) => {
            v.clear();
            v.resize(len, 0.0);
            v
        }
        None => fresh(len),
    }
}

/// A vector of `len` floats whose values are unspecified (a pooled buffer's old values,
/// or zeros), for outputs that are written whole: it saves [`zeroed`]'s pass over
/// memory.
pub fn scratch(len: usize) -> Vec<f32> {
    match pooled(len) {
        Some(mut v) => {
            v.truncate(len);
            v.resize(len, 0.0);
            v
        }
        None => fresh(len),
    }
}

/// A new zeroed vector, with room for its whole size class.
fn fresh(len: usize) -> Vec<f32> {
    let mut v = vec![0.0; class(len)];
    v.truncate(len);
    v
}

/// Gives a buffer back to the pool (dropping the oldest large ones, or this thread's
/// smallest small one, when full).
pub fn recycle(v: Vec<f32>) {
    if v.capacity() == 0 || v.capacity() > MAX_POOLED_LEN {
        return;
    }
    if v.capacity() >= LARGE {
        let mut pool = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        pool.push(v);
        let mut total: usize = pool.iter().map(Vec::capacity).sum();
        while total > MAX_SHARED_FLOATS {
            total -= pool.remove(0).capacity();
        }
        return;
    }
    SMALL.with(|pool| {
        let mut pool = pool.borrow_mut();
        pool.push(v);
        if pool.len() > POOLED_SMALL {
            let smallest = pool
                .iter()
                .enumerate()
                .min_by_key(|(_, v)| v.capacity())
                .map(|(i, _)| i);
            if let Some(i) = smallest {
                pool.swap_remove(i);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recycled_buffers_come_back_zeroed() {
        let mut v = zeroed(1000);
        v.fill(7.0);
        recycle(v);
        let w = zeroed(500);
        assert_eq!(w.len(), 500);
        assert!(w.iter().all(|&x| x == 0.0));
    }

    #[test]
    fn size_classes_waste_at_most_a_quarter_and_keep_their_buffers() {
        for len in [1, 7, 100, 1000, 5_806_080, 6_967_296, 9_289_728] {
            let c = class(len);
            assert!(c >= len && c <= len + len / 4 + 1, "{len}: class {c}");
            assert_eq!(class(c), c, "{len}");
        }
        // SCRFD's 9.3 M, 7.0 M and 5.8 M maps are of different classes: none takes
        // another's buffer.
        let classes = [9_289_728, 6_967_296, 5_806_080].map(class);
        assert!(classes[0] != classes[1] && classes[1] != classes[2]);
        // A batch of a few more faces fits the buffer of the last one; a map of another
        // class does not take it.
        let pool = vec![fresh(3_000_000)];
        assert_eq!(best_fit(&pool, 3_100_000), Some(0));
        assert_eq!(best_fit(&pool, 2_000_000), None);
        assert_eq!(best_fit(&pool, 3_200_000), None);
    }

    #[test]
    fn scratch_buffers_have_the_length_asked_for() {
        let mut v = scratch(10);
        v.fill(3.0);
        recycle(v);
        let w = scratch(20);
        assert_eq!(w.len(), 20);
        recycle(w);
        assert_eq!(scratch(5).len(), 5);
    }
}
